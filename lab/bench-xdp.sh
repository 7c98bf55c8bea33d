#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# make bench-xdp: per-packet cost of the XDP program through
# BPF_PROG_TEST_RUN beside an empty XDP_TX program (tests/bench/bench_xdp.c).
# Prints "xdp <case> ratio=<cost/empty> ns=<ns>" for established (flow
# cache), established_full_path (cache off), established_64k and
# established_64k_full_path (65536 flows cycled), new_flow, new_flow_guarded
# (rate guard engaged), new_conn and non_vip (lab/bench-xdp.sh CASE: that
# case only). Needs root.
# The build measured: AIBL_BUILD, else BUILD (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
[[ $build = /* ]] || build=$PWD/$build
AIBL_BUILD=${AIBL_BUILD:-$build}
export AIBL_BUILD
[ -d /sys/fs/bpf ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null && mount -t bpf bpf /sys/fs/bpf
exec "$AIBL_BUILD/tests/bench/bench_xdp" "$@"
