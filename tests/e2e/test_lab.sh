#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# lab/lab.sh itself: two labs with different prefixes coexist with the
# same addresses, `up` twice is harmless, the client reaches every node
# (IPv4 and IPv6, from its extra client addresses), nodes carry the DSR
# sysctls and VIPs on loopback, the client routes the VIPs via the
# balancer (in native XDP mode with an XDP_PASS program on the bridge side
# of its link and checksums completed before frames reach it, in generic
# mode neither), the bridge runs no netfilter, a bad --xdp-mode is refused, and
# `down` leaves nothing behind (also for a lab that does not exist, and
# after a failed `up`).
. "$(dirname "$0")/../lib/lib.sh"
CASES=(two_labs up_idempotent reach_nodes dsr_node_setup vip_route balancer_port_xdp
	generic_xdp_mode tx_checksum_by_mode bridge_no_netfilter bad_xdp_mode down_removes_all
	down_missing_ok failed_up_cleans)
if [ "$(id -u)" -ne 0 ]; then
	for c in "${CASES[@]}"; do t_skip "$c" "needs root (network namespaces)"; done
	exit 0
fi
LAB=$AIBL_ROOT/lab/lab.sh
A="lblta$(($$ % 1000))" B="lbltb$(($$ % 1000))"
cleanup() { "$LAB" down --prefix "$A" 2>/dev/null; "$LAB" down --prefix "$B" 2>/dev/null; }
trap cleanup EXIT
# shellcheck disable=SC2053 # $2 is a glob pattern
matches() { [[ $1 == $2 ]]; }
nss() { ip netns list | awk '{print $1}' | grep -cE "^$1-" || true; }

"$LAB" up --prefix "$A" --nodes 2 --clients 8 2>/dev/null &&
	"$LAB" up --prefix "$B" --nodes 3 --clients 4 --xdp-mode generic 2>/dev/null
t_check two_labs [ "$(nss "$A")/$(nss "$B")" = 5/6 ]
"$LAB" up --prefix "$A" --nodes 2 --clients 8 2>/dev/null
t_check up_idempotent [ "$(nss "$A")" = 5 ]
ok=1
for dst in 10.10.0.11 10.10.0.12 fd00:10::11 fd00:10::12; do
	case $dst in *:*) src=fd00:10::1:8 ;; *) src=10.10.1.8 ;; esac
	"$LAB" exec --prefix "$A" cli ping -c1 -W2 -I "$src" "$dst" >/dev/null 2>&1 || ok=0
done
t_check reach_nodes [ $ok = 1 ]
n=$("$LAB" exec --prefix "$B" n3 sh -c 'sysctl -n net.ipv4.conf.eth0.arp_ignore net.ipv4.conf.eth0.arp_announce net.ipv4.conf.all.rp_filter; ip -o addr show dev lo' | tr '\n' ' ')
t_check dsr_node_setup matches "$n" "1 2 2 *10.200.0.1/32*fd00:200::1/128*"
r=$("$LAB" exec --prefix "$A" cli ip route get 10.200.0.3)
t_check vip_route matches "$r" "*via 10.10.0.2 dev eth0*"
x=$("$LAB" exec --prefix "$A" br ip link show dev lb)
t_check balancer_port_xdp matches "$x" "*xdp*"
x=$("$LAB" exec --prefix "$B" br ip link show dev lb)
t_check generic_xdp_mode eval '! matches "$x" "*xdp*" && "$LAB" env --prefix "$B" | grep -qx LAB_XDP_MODE=generic'
x=$("$LAB" exec --prefix "$A" br ethtool -k lb | grep '^tx-checksumming:')
y=$("$LAB" exec --prefix "$B" br ethtool -k lb | grep '^tx-checksumming:')
t_check tx_checksum_by_mode [ "$x/$y" = "tx-checksumming: off/tx-checksumming: on" ]
# where the kernel has br_netfilter (its sysctls exist only then)
x=$("$LAB" exec --prefix "$A" br sh -c 'cat /proc/sys/net/bridge/bridge-nf-call-* 2>/dev/null' | sort -u | tr '\n' ' ')
t_check bridge_no_netfilter eval '[ -z "$x" ] || [ "$x" = "0 " ]'
"$LAB" up --prefix "lbltc$(($$ % 1000))" --xdp-mode offload 2>/dev/null
rc=$?
t_check bad_xdp_mode [ "$rc/$(nss "lbltc$(($$ % 1000))")" = 1/0 ]
"$LAB" down --prefix "$A" 2>/dev/null
"$LAB" down --prefix "$B" 2>/dev/null
left=$(ls -d "/run/aibl-lab/$A" "/run/aibl-lab/$B" "/sys/fs/bpf/aibl-lab-$A" 2>/dev/null)
t_check down_removes_all [ "$(nss "$A")$(nss "$B")/$left" = 00/ ]
"$LAB" down --prefix "$A" 2>/dev/null
t_check down_missing_ok [ $? -eq 0 ]
# a failure half way through `up` (here: ethtool breaks after the bridge
# and the client host exist) removes what was made
mkdir -p "$AIBL_BUILD/tests/lab-broken-path"
printf '#!/bin/sh\nexit 1\n' >"$AIBL_BUILD/tests/lab-broken-path/ethtool"
chmod +x "$AIBL_BUILD/tests/lab-broken-path/ethtool"
PATH="$AIBL_BUILD/tests/lab-broken-path:$PATH" "$LAB" up --prefix "$A" --nodes 2 >"$AIBL_BUILD/tests/lab-broken-path/log" 2>&1
rc=$?
rm -rf "$AIBL_BUILD/tests/lab-broken-path"
left=$(ls -d "/run/aibl-lab/$A" 2>/dev/null)
t_check failed_up_cleans [ "$rc/$(nss "$A")/$left" = 1/0/ ]
t_done
