#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Benchmark dispatcher: scripts/bench.sh NAME runs scripts/bench-NAME.sh;
# "all" runs every scripts/bench-*.sh in order. Each benchmark prints its
# own result lines (see README, "Benchmarks").
set -euo pipefail
cd "$(dirname "$0")/.."
# the build to measure: AIBL_BUILD, else BUILD (as for make and tests/run.sh)
build=${BUILD:-build}
[[ $build = /* ]] || build=$PWD/$build
export AIBL_ROOT=$PWD AIBL_BUILD=${AIBL_BUILD:-$build}
what=${1:-all}
if [ "$what" = all ]; then
	rc=0
	for b in scripts/bench-*.sh; do
		[ -x "$b" ] || continue
		echo "== $(basename "$b" .sh)"
		"$b" || rc=1
	done
	exit $rc
fi
if [ ! -x "scripts/bench-$what.sh" ]; then
	echo "bench: no benchmark '$what' (have: $(ls scripts/bench-*.sh 2>/dev/null | sed 's|scripts/bench-||;s|\.sh||' | tr '\n' ' '))" >&2
	exit 2
fi
shift || true
exec "scripts/bench-$what.sh" "$@"
