#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Install the Debian 12 packages aibl needs to build, test, benchmark and
# run its demo. Idempotent: installs only what is missing; needs root when
# something is missing.
set -euo pipefail

PKGS=(
	# toolchain and BPF
	make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev pkg-config
	# libFuzzer runtime and sanitizers for clang (tests/fuzz)
	libclang-rt-14-dev
	# netlink, config, JSON, HTTP server and client, hashing, crypto
	libnl-3-dev libnl-route-3-dev libyaml-dev libjansson-dev libmicrohttpd-dev
	libcurl4-openssl-dev libxxhash-dev libssl-dev
	# lab, tests, benchmarks
	iproute2 iputils-ping ethtool nftables haproxy gnuplot-nox tcpdump xdp-tools procps psmisc
	python3 curl valgrind libcap2-bin
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages and not root; run: sudo $0" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# haproxy's package starts a system service; the benchmarks run their own.
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
