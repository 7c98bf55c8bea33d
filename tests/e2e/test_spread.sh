#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Spread through the real data path: client sockets -> XDP on the balancer's
# NIC -> nodes -> straight back to the client, in both forwarding modes and
# for IPv4 and IPv6 VIPs. Three nodes weighted 100/200/300 (shares 16.7%,
# 33.3%, 50%); 1200 new TCP connections per service from 64 client
# addresses. Tolerance: each node's share within 5 percentage points of its
# weight share (wrr walks the Maglev table, whose slot shares are within
# 0.1% of the weights; hash over the 5-tuple is binomial, sd <= 1.5 points
# at 1200 connections, so 5 points is > 3 sd). rr: every node visited,
# shares within 5 points of a third each.
. "$(dirname "$0")/e2e.sh"
CASES=()
for m in ipip l2dsr; do
	CASES+=("$m/wrr_ipv4" "$m/wrr_ipv6" "$m/hash_ipv4" "$m/rr_ipv4" "$m/no_failures")
done
e2e_need "${CASES[@]}"
e2e_lab sp --nodes 3 --clients 64 || { t_fail lab "lab up failed"; t_done; }

for i in 1 2 3; do lab_start_node "$i" --models m1:1000; done
for i in 1 2 3; do lab_wait_http "n$i" "http://127.0.0.1:$LAB_SIM_PORT/health" || t_fail "simnode n$i"; done
set -- $LAB_VIP4_LIST
VIP_HASH=$2 VIP_RR=$3

check_shares() { # CASE FILE EXPECTED-n1 EXPECTED-n2 EXPECTED-n3
	local c=$1 f=$2 bad="" i s want
	for i in 1 2 3; do
		s=$(e2e_share "$f" "n$i")
		want=$(eval echo "\$$((i + 2))")
		e2e_within "$s" "$want" 5 || bad+=" n$i=$s% (want $want%)"
	done
	if [ -z "$bad" ]; then t_pass "$c"; else e2e_fail_log "$c" "shares:$bad"; fi
}

for mode in ipip l2dsr; do
	cfg=$E2E_TMP/aibld-$mode.yaml
	{
		LAB_MODE=$mode lab_yaml_head
		cat <<-EOF2
			services:
			  - {name: wrr4, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: wrr}
			  - {name: wrr6, vip: "$LAB_VIP6", port: $LAB_SIM_PORT, policy: wrr}
			  - {name: hash4, vip: $VIP_HASH, port: $LAB_SIM_PORT, policy: hash, session_key: five_tuple}
			  - {name: rr4, vip: $VIP_RR, port: $LAB_SIM_PORT, policy: rr}
		EOF2
		LAB_NODE_FAMILY=6 lab_yaml_nodes 100 200 300
	} >"$cfg"
	if ! e2e_restart_aibld "$cfg"; then
		e2e_fail_log "$mode/wrr_ipv4" "aibld did not come up with every node"
		continue
	fi
	failed=""
	run() { # NAME URL SOURCES
		local j=$E2E_TMP/$mode-$1.json
		lab_loadgen http --target "$2" --source "$3" --requests 1200 --conns 8 \
			--json --no-progress >"$j" 2>"$E2E_TMP/$mode-$1.err" ||
			failed+=" $1: $(e2e_json "$j" "'%d of %d failed, first: %s' % (j['total']['failed'], j['total']['requests'], j['first_error'])" 2>/dev/null || head -c 200 "$E2E_TMP/$mode-$1.err");"
	}
	run wrr4 "http://$LAB_VIP4:$LAB_SIM_PORT" "$LAB_CLIENT_ADDRS4"
	run wrr6 "http://[$LAB_VIP6]:$LAB_SIM_PORT" "$LAB_CLIENT_ADDRS6"
	run hash4 "http://$VIP_HASH:$LAB_SIM_PORT" "$LAB_CLIENT_ADDRS4"
	run rr4 "http://$VIP_RR:$LAB_SIM_PORT" "$LAB_CLIENT_ADDRS4"
	check_shares "$mode/wrr_ipv4" "$E2E_TMP/$mode-wrr4.json" 16.7 33.3 50
	check_shares "$mode/wrr_ipv6" "$E2E_TMP/$mode-wrr6.json" 16.7 33.3 50
	check_shares "$mode/hash_ipv4" "$E2E_TMP/$mode-hash4.json" 16.7 33.3 50
	check_shares "$mode/rr_ipv4" "$E2E_TMP/$mode-rr4.json" 33.3 33.3 33.3
	if [ -z "$failed" ]; then
		t_pass "$mode/no_failures"
	else
		t_fail "$mode/no_failures" "failed requests:$failed"
	fi
done
t_done
