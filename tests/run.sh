#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Runs every test suite and prints one summary line CI can read:
#   "test: N passed, N failed, N skipped"
# Suites: build/tests/DIR/test_* (C, built by make) and tests/DIR/test_*.sh.
# Each prints PASS/FAIL/SKIP lines per case; a suite that crashes or exits
# non-zero without a FAIL line counts as one failure.
# Usage: tests/run.sh [FILTER...]   (substring of the suite path)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-600}
export AIBL_ROOT=$PWD AIBL_BUILD=$PWD/$BUILD

[ -d /sys/fs/bpf ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null && [ "$(id -u)" -eq 0 ] &&
	mount -t bpf bpf /sys/fs/bpf

# Order: unit, bpf, integration, e2e, then anything else.
suites=()
for dir in unit bpf integration e2e $(ls tests | grep -vE '^(unit|bpf|integration|e2e|lib|fuzz)$'); do
	[ -d "tests/$dir" ] || continue
	for f in "$BUILD"/tests/$dir/test_* tests/$dir/test_*.sh; do
		[ -x "$f" ] && [ -f "$f" ] || continue
		case "$f" in *.o|*.d) continue ;; esac
		suites+=("$f")
	done
done

pass=0 fail=0 skip=0
failed_names=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for s in "${suites[@]}"; do
	if [ $# -gt 0 ]; then
		m=0
		for pat in "$@"; do case "$s" in *"$pat"*) m=1 ;; esac; done
		[ $m -eq 1 ] || continue
	fi
	echo "== $s"
	start=$(date +%s)
	timeout --kill-after=10 "$SUITE_TIMEOUT" "$s" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(grep -c '^PASS ' "$log")
	f=$(grep -c '^FAIL ' "$log")
	k=$(grep -c '^SKIP ' "$log")
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $s (exit $rc$([ $rc -eq 124 ] && echo ', timed out'))"
		f=1
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + k))
	[ "$f" -gt 0 ] && failed_names+=("$s")
	echo "== $s: $p passed, $f failed, $k skipped ($(($(date +%s) - start)) s)"
done

if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed suites: ${failed_names[*]}"
fi
echo "test: $pass passed, $fail failed, $skip skipped"
# in CI (scripts/clean-root.sh passes CI on) a skip is a failure: suites
# skip for a missing tool, and the clean root has every one deps.sh
# installs, so a skip there is an install step missing
if [ -n "${CI:-}" ] && [ "$skip" -gt 0 ]; then
	echo "test: $skip skipped in CI: every suite must run (a missing package in scripts/deps.sh?)"
	exit 1
fi
[ $fail -eq 0 ] && [ $((pass + skip)) -gt 0 ]
