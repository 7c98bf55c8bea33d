#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Benchmark dispatcher: lab/bench.sh NAME runs lab/bench-NAME.sh;
# "all" runs every lab/bench-*.sh in order. Each benchmark prints its
# own result lines (see docs/benchmarks.md).
#   lab/bench.sh [NAME|all] [ARGS...]   ARGS go to that benchmark
#   lab/bench.sh NAME --help            its options
set -euo pipefail
cd "$(dirname "$0")/.."
# the build to measure: AIBL_BUILD, else BUILD (as for make and tests/run.sh)
build=${BUILD:-build}
[[ $build = /* ]] || build=$PWD/$build
export AIBL_ROOT=$PWD AIBL_BUILD=${AIBL_BUILD:-$build}
what=${1:-all}
case "$what" in
-h | --help) sed -n '3,/^set -euo/{/^set -euo/!p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
if [ "$what" = all ]; then
	rc=0
	for b in lab/bench-*.sh; do
		[ -x "$b" ] || continue
		echo "== $(basename "$b" .sh)"
		"$b" || rc=1
	done
	exit $rc
fi
if [ ! -x "lab/bench-$what.sh" ]; then
	echo "bench: no benchmark '$what' (have: $(ls lab/bench-*.sh 2>/dev/null | sed 's|lab/bench-||;s|\.sh||' | tr '\n' ' '))" >&2
	exit 2
fi
shift || true
exec "lab/bench-$what.sh" "$@"
