#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Install the Debian 12 packages aibl needs to build, package, test, benchmark
# and run its demo, and nothing else: every package below names what uses it
# (grep the tree for the tool before adding or dropping one). Works on a
# bare Debian 12 (debootstrap --variant=minbase plus make): it needs only
# apt and dpkg. Idempotent: installs only what is missing, and says what
# and why; needs root when something is missing.
#
# .ci/run proves the list complete: it runs make demo and make test in a
# fresh Debian root (scripts/clean-root.sh) where nothing else is installed.
set -euo pipefail

# package               used by
PKGS='
make                    build: the Makefile
gcc                     build: userspace C (cc)
libc6-dev               build: the C library headers (gcc only recommends them)
linux-libc-dev          build: <linux/*.h> in userspace
pkg-config              build: libnl'\''s include path
clang                   build: BPF objects (-target bpf) and fuzzers (tests/fuzz)
clang-format            tests: the tree stays formatted (test_format, make format)
llvm                    tests: llvm-symbolizer, for function names in fuzzer/sanitizer reports
libclang-rt-14-dev      tests: libFuzzer, ASan, UBSan runtimes for clang (fuzzers in make test)
bpftool                 build: build/vmlinux.h, skeletons; benchmarks: xdp-null (bench-path)
libbpf-dev              build: libbpf, <bpf/bpf_helpers.h>
libelf-dev              build: libbpf links -lelf
zlib1g-dev              build: libbpf links -lz
libnl-3-dev             build: netlink (links, neighbours, routes)
libnl-route-3-dev       build: netlink routes
libyaml-dev             build: aibld configuration
libjansson-dev          build: JSON (agent reports, APIs, -j output)
libmicrohttpd-dev       build: HTTP servers (aibld API, agent, simnode)
libcurl4-openssl-dev    build: HTTP client (aibld polling agents, loadgen)
libxxhash-dev           build: hashing (Maglev, promtext, simnode)
libglib2.0-dev          build: the hint table of aibl-agent (hash table, expiry order)
libssl-dev              build: libcrypto, HMAC of agent reports
iproute2                lab, tests: ip, ip netns, bridge, ss, nstat
iputils-ping            tests: ping (test_lab, test_faults)
ethtool                 lab: veth offloads
procps                  lab, tests: sysctl
python3                 lab, tests, benchmarks: JSON checks, fault proxy, reports
curl                    lab, tests: HTTP checks (lab.sh, test_caps)
libcap2-bin             tests: capsh (test_caps)
valgrind                tests: make valgrind
nftables                benchmarks: nftables DNAT case (bench-path)
haproxy                 benchmarks: HAProxy case (bench-path)
gnuplot-nox             benchmarks: plots (bench-routing)
python3-docutils        build: man pages, rst2man (make man, make install)
man-db                  tests: man -l renders the man pages (tests/install)
systemd                 tests: systemd-analyze verify on the units (tests/install)
build-essential         package: dpkg-buildpackage requires it (implicit Build-Depends; test_deb)
dpkg-dev                package: dpkg-buildpackage (debian/, tests/install/test_deb.sh)
debhelper               package: dh, debian/rules (test_deb)
lintian                 tests: lintian on the built packages (test_deb)
mmdebstrap              tests: the fresh Debian root test_deb installs the packages into
bird2                   lab, tests, benchmarks: BGP+BFD router and balancers (lab --ecmp, test_ecmp, bench-failover)
etcd-server             lab, tests, benchmarks: the cluster plan store (lab --ecmp, test_ecmp, bench-failover)
'

missing=()
while read -r p _; do
	[ -n "$p" ] || continue
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done <<<"$PKGS"

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps: ${#missing[@]} Debian package(s) missing, with what uses them:" >&2
for p in "${missing[@]}"; do
	grep -E "^$p " <<<"$PKGS" | sed 's/^/  /' >&2
done
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: not root; run: sudo $0" >&2
	exit 1
fi
echo "deps: installing them with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# another apt (unattended-upgrades, a second build) may hold dpkg's lock
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
apt_get update -qq
apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# haproxy's package starts a system service, and so do etcd's and BIRD's;
# the benchmarks and the ECMP lab run their own. Only a service this run
# installed is stopped: one already there may be the host's (a cluster
# balancer's BIRD, announcing its VIPs), and stays as it was.
just_installed() { # PACKAGE
	local m
	for m in "${missing[@]}"; do [ "$m" = "$1" ] && return 0; done
	return 1
}
if command -v systemctl >/dev/null 2>&1; then
	just_installed haproxy && { systemctl disable --now haproxy >/dev/null 2>&1 || true; }
	just_installed etcd-server && { systemctl disable --now etcd >/dev/null 2>&1 || true; }
	just_installed bird2 && { systemctl disable --now bird >/dev/null 2>&1 || true; }
fi
echo "deps: done" >&2
