#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Controller recompute benchmark (make bench-controller): time for aibld to
# evaluate every policy, build every lookup table and write all maps, for
# 16/64/256 services x 64/256/1024 nodes against the real data plane maps
# (loaded, not attached), plus the kernel memory of the maps at default
# sizes. Target: services=64 nodes=256 <= 20 ms. Needs root (loads BPF).
#   RUNS=N  measured runs per size (median printed; default 7)
case "${1:-}" in
-h | --help) sed -n '3,/^set -euo/{/^set -euo/!p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
'') ;;
*) echo "bench-controller: takes no argument (RUNS=N in the environment; --help)" >&2; exit 2 ;;
esac
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${AIBL_BUILD:-$PWD/build}
bin=$BUILD/tests/bench/bench_controller
if [ "$(id -u)" -ne 0 ]; then
	echo "bench-controller: skipped (needs root to load the data plane)"
	exit 0
fi
[ -x "$bin" ] || { echo "bench-controller: $bin missing (make)" >&2; exit 1; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
echo "# controller: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); ms = median"
echo "# of ${RUNS:-7} forced recomputes (every table rebuilt and rewritten), 'unchanged' ="
echo "# a recompute that finds nothing to write; ring written through its mmap"
"$bin" "${RUNS:-7}"
