#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Run the libFuzzer harnesses built by tests/fuzz/Makefile.inc.
#   tests/fuzz/run.sh [--time S | --runs N] [--keep] [NAME...]
# --runs N   N executions with a fixed seed (reproducible; make test)
# --time S   S seconds per harness (make fuzz)
# --keep     keep what libFuzzer finds in $BUILD/fuzz/corpus-NAME (else a
#            scratch dir); the seeds (tests/fuzz/corpus/NAME, and for promtext
#            tests/data/metrics, for config etc/) stay as they are
# Prints PASS/FAIL fuzz/NAME; a crash leaves $BUILD/fuzz/crash-NAME-* and the
# command to reproduce it. Exit status 1 when any harness failed.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
FUZZ_DIR=$BUILD/fuzz
mode=(-runs=20000 -seed=1) keep=0 names=()
while [ $# -gt 0 ]; do
	case "$1" in
	--time) mode=(-max_total_time="$2"); shift ;;
	--runs) mode=(-runs="$2" -seed=1); shift ;;
	--keep) keep=1 ;;
	*) names+=("$1") ;;
	esac
	shift
done
if [ ${#names[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do
		n=${f##*/fuzz_}
		names+=("${n%.c}")
	done
fi

scratch=$(mktemp -d /tmp/aibl-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
rc=0
for n in "${names[@]}"; do
	bin=$FUZZ_DIR/fuzz_$n
	if [ ! -x "$bin" ]; then
		echo "FAIL fuzz/$n ($bin not built: make BUILD=$BUILD $bin)"
		rc=1
		continue
	fi
	work=$scratch/corpus-$n
	[ $keep -eq 1 ] && work=$FUZZ_DIR/corpus-$n
	mkdir -p "$work"
	log=$scratch/$n.log
	# seeds: the harness's own corpus plus the fixtures the tests already
	# keep (real engines' pages, the example config), read where they are
	seeds=()
	[ -d "tests/fuzz/corpus/$n" ] && seeds+=("tests/fuzz/corpus/$n")
	case $n in
	promtext | engine) seeds+=(tests/data/metrics) ;;
	config) seeds+=(etc) ;;
	esac
	# -timeout: one input over 10 s is a hang; -rss_limit_mb: a parser
	# that balloons on small input is a finding too.
	"$bin" "${mode[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-artifact_prefix="$FUZZ_DIR/crash-$n-" -print_final_stats=1 \
		"$work" "${seeds[@]}" >"$log" 2>&1
	st=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ $st -eq 0 ]; then
		echo "PASS fuzz/$n (${runs:-?} inputs)"
	else
		grep -E 'ERROR|SUMMARY|#[0-9]+ 0x.* in ' "$log" | head -20
		art=$(sed -n "s/.*Test unit written to \(.*\)/\1/p" "$log" | tail -1)
		echo "FAIL fuzz/$n (exit $st${art:+; reproduce: $bin $art})"
		rc=1
	fi
done
exit $rc
