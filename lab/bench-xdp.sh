#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# make bench-xdp: per-packet cost of the XDP program through
# BPF_PROG_TEST_RUN beside an empty XDP_TX program (tests/bench/bench_xdp.c).
# Prints "xdp <case> ratio=<cost/empty> ns=<ns>" for established (flow
# cache), established_full_path (cache off), established_64k and
# established_64k_full_path (65536 flows cycled), new_flow, new_flow_guarded
# (rate guard engaged), new_conn and non_vip (lab/bench-xdp.sh CASE: that
# case only). Needs root. --mode p2c|ai: the service as aibld runs an ai
# service (p2c over priced backends; ai: with client affinity), default hash.
#
# lab/bench-xdp.sh --katran DIR [CASE]: side by side with Katran. DIR is a
# Katran checkout (or a bare git dir) the user provides; its
# katran/lib/bpf/balancer.bpf.c is built here with its default constants
# (clang -O2 -target bpf, its linux_includes) and measured on the same
# frames in the same rounds, then the like-for-like pairs are named. CI
# does not run it.
# The build measured: AIBL_BUILD, else BUILD (default build).
case "${1:-}" in
-h | --help) sed -n '3,/^set -euo/{/^set -euo/!p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
[[ $build = /* ]] || build=$PWD/$build
AIBL_BUILD=${AIBL_BUILD:-$build}
export AIBL_BUILD
[ -d /sys/fs/bpf ] && ! mountpoint -q /sys/fs/bpf 2>/dev/null && mount -t bpf bpf /sys/fs/bpf

args=()
if [ "${1:-}" = --katran ]; then
	dir=${2:?--katran DIR: a Katran checkout}
	shift 2
	out=$AIBL_BUILD/katran
	rm -rf "$out" && mkdir -p "$out/src" "$out/inc/gnu"
	if [ -d "$dir/katran/lib/bpf" ]; then
		cp -r "$dir/katran" "$out/src/"
	else # a bare repository
		git -C "$dir" archive HEAD katran/lib/bpf katran/lib/linux_includes | tar -x -C "$out/src"
	fi
	cp "$out/src/katran/lib/linux_includes/"* "$out/inc/"
	# the BPF target has no 32-bit glibc stubs; Katran's sources include <string.h>
	: >"$out/inc/gnu/stubs-32.h"
	${CLANG:-clang} -O2 -g -target bpf -D__KERNEL__ -Wno-unused-value -Wno-pointer-sign \
		-Wno-compare-distinct-pointer-types -I "$out/inc" -I "$out/src" \
		-I "/usr/include/$(uname -m)-linux-gnu" \
		-c "$out/src/katran/lib/bpf/balancer.bpf.c" -o "$out/balancer.bpf.o" 2>"$out/build.log" || {
		cat "$out/build.log" >&2
		exit 1
	}
	echo "# katran: $(git -C "$dir" rev-parse --short=8 HEAD 2>/dev/null || echo "$dir"), built to $out/balancer.bpf.o"
	args=(--katran "$out/balancer.bpf.o")
fi
exec "$AIBL_BUILD/tests/bench/bench_xdp" "${args[@]}" "$@"
