#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Traffic hints become session pins in both forwarding modes and both
# families. The nodes' program records the clients of the tunnels it opens
# (ipip) and of the plain packets to its VIPs (l2dsr: before, it recorded
# none, and ai had no pins there); the agents report them; aibld pins each
# client to the node that holds its cache. Two equal nodes, an ai service
# on an IPv4 and on an IPv6 VIP, client affinity off (affinity_ms 0), so
# that only the pins bring a session's later turns back to its node:
# - one pin per session address, to the node of the session's first turn;
# - >= 75 % of later turns on the first turn's node (p2c between the two
#   equal nodes without pins: about half).
. "$(dirname "$0")/e2e.sh"
CASES=()
for mode in ipip l2dsr; do
	for fam in 4 6; do CASES+=("$mode/pins_ipv$fam" "$mode/return_ipv$fam"); done
done
CASES+=(no_failures)
e2e_need "${CASES[@]}"
e2e_lab hints --nodes 2 --clients 16 || { t_fail lab "lab up failed"; t_done; }

failed=0
# check MODE FAM SAMPLES: the service's pins against its sessions' first
# nodes (one pin per session address, to that node), and the later turns'
# nodes
check() {
	local mode=$1 fam=$2 tsv=$3 r
	r=$(lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j pin list --service "chat$fam" |
		python3 -c '
import json, sys
pins = sorted(p["backend"] for p in json.load(sys.stdin)["pins"])
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")]
rows = [r for r in rows if r[6] == "1"]
first = {r[3]: r[1] for r in rows if r[4] == "0"}
later = [r for r in rows if r[4] != "0" and r[3] in first]
print(len(pins), int(pins == sorted(first.values())), len(later),
      sum(r[1] == first[r[3]] for r in later))' "$tsv" 2>&1)
	echo "# $mode IPv$fam: pins, pins = first nodes, later turns, on the first node: $r"
	set -- $r
	t_check "$mode/pins_ipv$fam" [ "${1:-0}" = 8 -a "${2:-0}" = 1 ]
	t_check "$mode/return_ipv$fam" [ "${3:-0}" -gt 0 -a $((${4:-0} * 100)) -ge $((${3:-1} * 75)) ]
}

for mode in ipip l2dsr; do
	# fresh nodes: no client the agents saw in the other mode is still a
	# hint (a traffic hint lives 60 s)
	for i in 1 2; do
		lab_stop "agent-n$i"
		lab_stop "sim-n$i"
		lab_start_node "$i" --models m1:1000 --resident m1
	done
	cfg=$E2E_TMP/aibld-$mode.yaml
	{
		LAB_MODE=$mode lab_yaml_head
		cat <<-EOF2
			ai:
			  affinity_ms: 0
			services:
			  - {name: chat4, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: ai, model: m1}
			  - {name: chat6, vip: "$LAB_VIP6", port: $LAB_SIM_PORT, policy: ai, model: m1}
		EOF2
		LAB_NODE_FAMILY=6 lab_yaml_nodes 100 100
	} >"$cfg"
	if ! e2e_restart_aibld "$cfg"; then
		for c in "${CASES[@]}"; do
			[[ "$c" == "$mode/"* ]] && e2e_fail_log "$c" "aibld did not come up with every node"
		done
		continue
	fi
	# 8 sessions of 4 turns per family at once, each from its own address,
	# seconds apart: a pin comes within a scrape and a poll of a first turn
	pid4= pid6=
	for fam in 4 6; do
		if [ $fam = 4 ]; then url="http://$LAB_VIP4:$LAB_SIM_PORT" src=$LAB_CLIENT_ADDRS4
		else url="http://[$LAB_VIP6]:$LAB_SIM_PORT" src=$LAB_CLIENT_ADDRS6; fi
		lab_loadgen chat --model "m1=$url" --source "$src" --sessions 8 --turns 4 --rate 8 \
			--burst-prob 0 --think-ms 1500 --context-tokens 500 --output-tokens 8 --seed $fam \
			--json --no-progress --samples "$E2E_TMP/$mode-$fam.tsv" \
			>"$E2E_TMP/$mode-$fam.json" 2>"$E2E_TMP/$mode-$fam.err" &
		printf -v "pid$fam" '%s' $!
	done
	for fam in 4 6; do
		pid="pid$fam"
		wait "${!pid}" || failed=$((failed + 1))
		check "$mode" "$fam" "$E2E_TMP/$mode-$fam.tsv"
	done
done
if [ $failed -eq 0 ]; then t_pass no_failures; else
	t_fail no_failures "$failed runs had failed requests: $(cat "$E2E_TMP"/*.err | grep -m1 error)"
fi
t_done
