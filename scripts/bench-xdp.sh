#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# make bench-xdp: per-packet cost of the XDP program through
# BPF_PROG_TEST_RUN beside an empty XDP_TX program (tests/bench/bench_xdp.c).
# Prints "xdp <case> ratio=<cost/empty> ns=<ns>" for established, new_flow
# and non_vip. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
AIBL_BUILD=${AIBL_BUILD:-$PWD/build}
export AIBL_BUILD
[ -d /sys/fs/bpf ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null && mount -t bpf bpf /sys/fs/bpf
exec "$AIBL_BUILD/tests/bench/bench_xdp"
