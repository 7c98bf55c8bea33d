#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# make valgrind: the integration suites that start daemons (aibld,
# aibl-agent, aibl-simnode) with every daemon under valgrind memcheck
# (definite leaks count as errors). The suites see a build directory of
# links whose daemons are wrappers. Some cases may fail on timing (valgrind
# is 20-50x slower); the verdict is valgrind's: any report fails the run.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
REAL=$PWD/$BUILD
VG=$(mktemp -d /tmp/aibl-valgrind.XXXXXX)
trap 'rm -rf "$VG"' EXIT
for f in "$REAL"/*; do ln -s "$f" "$VG/"; done
for d in aibld aibl-agent aibl-simnode; do
	rm -f "$VG/$d"
	cat >"$VG/$d" <<EOS
#!/bin/sh
exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--suppressions=$PWD/tests/reliability/valgrind.supp --log-file=$VG/log.%p.$d "$REAL/$d" "\$@"
EOS
	chmod +x "$VG/$d"
done
for t in integration/test_aibld integration/test_node reliability/test_limits; do
	echo "== $t (daemons under valgrind)"
	AIBL_BUILD=$VG AIBL_ROOT=$PWD timeout 600 "$REAL/tests/$t" 2>&1 | grep -E '^(PASS|FAIL|SKIP)'
done
bad=0
for l in "$VG"/log.*; do
	# errors are "==PID== ..." lines; "--PID-- WARNING: unhandled eBPF
	# command" only says valgrind does not model that bpf(2) command
	grep -q '^==[0-9]*== ' "$l" || continue
	echo "valgrind: ${l##*/log.}:"
	grep '^==[0-9]*== ' "$l" | head -n 40
	bad=1
done
[ $bad -eq 0 ] && echo "valgrind: no errors, no definite leaks in $(ls "$VG"/log.* 2>/dev/null | wc -l) daemon runs"
exit $bad
