#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Traffic hints become session pins in both forwarding modes and both
# families. The nodes' program records the clients of the tunnels it opens
# (ipip) and of the plain packets to its VIPs (l2dsr: before, it recorded
# none, and ai had no pins there); the agents report them; aibld pins each
# client to the node that holds its cache. Two equal nodes, an ai service
# on an IPv4 and on an IPv6 VIP, client affinity off (affinity_ms 0), so
# that it is the pins that bring a session's later turns back to its node:
# - one pin per session address, to the node of the session's last turn;
# - >= 75 % of later turns on the node of the turn before, which holds the
#   session's cache (a turn that comes before its session's pin, within a
#   scrape and a poll, may still go elsewhere). Without pins p2c between
#   two idle equal nodes also mostly picks the same one for a client: the
#   pins are what the first check sees;
# - the nodes' counters (the agent's GET /v1/decap) say which way the
#   packets came: tunnels opened in ipip, plain packets to a VIP in l2dsr;
#   and the controller has them from the agents' reports (aiblctl status,
#   /metrics), none dropped; three tunnels from outside --decap-source
#   then show as dropped there, and aibld logs it once.
. "$(dirname "$0")/e2e.sh"
CASES=()
for mode in ipip l2dsr; do
	for fam in 4 6; do CASES+=("$mode/pins_ipv$fam" "$mode/return_ipv$fam"); done
	CASES+=("$mode/node_counters" "$mode/controller_counters")
done
CASES+=(ipip/drops_said)
CASES+=(no_failures)
e2e_need "${CASES[@]}"
e2e_lab hints --nodes 2 --clients 16 || { t_fail lab "lab up failed"; t_done; }

failed=0
# check MODE FAM SAMPLES: the service's pins against its sessions' last
# turns' nodes (one pin per session address, to the node that holds its
# latest cache), and the later turns' nodes against the turn before's
check() {
	local mode=$1 fam=$2 tsv=$3 r end=$((SECONDS + 4))
	# the last turns' records reach the pins through an agent's scrape and
	# aibld's poll (200 ms each): read again until they match, or 4 s
	while :; do
		pins_vs_turns "$tsv" "$fam"
		set -- $r
		[ "${1:-0}" = 8 -a "${2:-0}" = 1 ] || [ $SECONDS -ge $end ] && break
		sleep 0.2
	done
	echo "# $mode IPv$fam: pins, pins = last turns' nodes, later turns, on the turn before's node: $r"
	t_check "$mode/pins_ipv$fam" [ "${1:-0}" = 8 -a "${2:-0}" = 1 ]
	t_check "$mode/return_ipv$fam" [ "${3:-0}" -gt 0 -a $((${4:-0} * 100)) -ge $((${3:-1} * 75)) ]
}
# pins_vs_turns SAMPLES FAM: sets r to "pins, pins = last turns' nodes, later
# turns, later turns on the turn before's node"
pins_vs_turns() {
	local tsv=$1 fam=$2
	r=$(lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j pin list --service "chat$fam" |
		python3 -c '
import json, sys
pins = sorted(p["backend"] for p in json.load(sys.stdin)["pins"])
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")]
rows = [r for r in rows if r[6] == "1"]
node = {(r[3], int(r[4])): r[1] for r in rows}
last = {s: n for (s, t), n in sorted(node.items(), key=lambda x: x[0][1])}
later = [(s, t) for s, t in node if t and (s, t - 1) in node]
print(len(pins), int(pins == sorted(last.values())), len(later),
      sum(node[(s, t)] == node[(s, t - 1)] for s, t in later))' "$tsv" 2>&1)
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
	# its turns 2.5 s apart on average: a pin comes within a scrape and a
	# poll of a first turn
	pid4= pid6=
	for fam in 4 6; do
		if [ $fam = 4 ]; then url="http://$LAB_VIP4:$LAB_SIM_PORT" src=$LAB_CLIENT_ADDRS4
		else url="http://[$LAB_VIP6]:$LAB_SIM_PORT" src=$LAB_CLIENT_ADDRS6; fi
		lab_loadgen chat --model "m1=$url" --source "$src" --sessions 8 --turns 4 --rate 8 \
			--burst-prob 0 --think-ms 2500 --context-tokens 500 --output-tokens 8 --seed $fam \
			--json --no-progress --samples "$E2E_TMP/$mode-$fam.tsv" \
			>"$E2E_TMP/$mode-$fam.json" 2>"$E2E_TMP/$mode-$fam.err" &
		printf -v "pid$fam" '%s' $!
	done
	for fam in 4 6; do
		pid="pid$fam"
		wait "${!pid}" || failed=$((failed + 1))
	done
	for fam in 4 6; do check "$mode" "$fam" "$E2E_TMP/$mode-$fam.tsv"; done
	# the nodes' program counts by name (the agent's GET /v1/decap, from
	# the node): ipip's tunnels (IPv4 and IPv6 inside IPv6) or l2dsr's
	# plain packets to a VIP, never both on fresh nodes
	r=$(for i in 1 2; do
		lab_run "n$i" curl -sf --max-time 2 "http://127.0.0.1:$LAB_AGENT_PORT/v1/decap"; echo
	done | python3 -c '
import json, sys
c = [json.loads(l)["counters"] for l in sys.stdin if l.strip()]
tun = sum(x["decap_ip4ip6"] + x["decap_ip6ip6"] for x in c)
print(len(c), int(tun > 0), int(sum(x["direct_vip"] for x in c) > 0))' 2>&1)
	echo "# $mode: nodes counted, tunnels opened, plain packets to a VIP: $r"
	if [ $mode = ipip ]; then want="2 1 0"; else want="2 0 1"; fi
	t_check "$mode/node_counters" [ "$r" = "$want" ]
	# the same through the controller, from the agents' signed reports:
	# each node's interface and counts in aiblctl status, nothing dropped,
	# and one /metrics series per node and counter
	r=$(lab_run lb "$AIBL_BUILD/aiblctl" --api "$LAB_API" --token-file "$LAB_DIR/api.token" \
		-j status | python3 -c '
import json, sys
d = [n["decap"] for n in json.load(sys.stdin)["nodes"] if "decap" in n]
c = [x["counters"] for x in d]
print(len(d), int(all(x["interface"] for x in d)),
      int(sum(x["decap_ip4ip6"] + x["decap_ip6ip6"] for x in c) > 0),
      int(sum(x["direct_vip"] for x in c) > 0), sum(x["dropped"] for x in d))' 2>&1)
	m=$(lab_api /metrics | grep -c '^aibl_node_decap_packets_total{node="n[12]",counter="direct_vip"} ')
	echo "# $mode: aibld: nodes, interfaces named, tunnels, plain, dropped: $r; direct_vip series: $m"
	t_check "$mode/controller_counters" [ "$r" = "2 1 ${want#2 } 0" -a "$m" = 2 ]
	[ $mode = ipip ] || continue
	# three tunnels to n1 from the client's address, outside the agents'
	# --decap-source (a raw socket: the kernel writes an outer IPv4 header
	# of protocol 4 around a TCP SYN to the VIP): n1's program drops them,
	# and the controller shows it and logs what grew
	lab_run cli python3 -c '
import socket, struct, sys
inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0,
                    socket.inet_aton("10.10.1.7"), socket.inet_aton(sys.argv[2]))
inner += struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 8192, 0, 0)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
for _ in range(3):
    s.sendto(inner, (sys.argv[1], 0))' "$(lab_node 1 IP4)" "$LAB_VIP4"
	# the drops reach aibld at its next poll of n1's agent: read again
	# until they have, or 4 s
	drops_seen() {
		r=$(lab_run lb "$AIBL_BUILD/aiblctl" --api "$LAB_API" --token-file "$LAB_DIR/api.token" \
			-j status | python3 -c '
import json, sys
n = {n["name"]: n.get("decap", {}) for n in json.load(sys.stdin)["nodes"]}
print(n["n1"].get("dropped"), n["n1"].get("counters", {}).get("drop_source"), n["n2"].get("dropped"))' 2>&1)
		said=$(grep -c "node 'n1': its decap program on eth0 dropped packets since the poll before (drop_source +" \
			"$LAB_DIR/aibld.log")
		[ "$r" = "3 3 0" -a "$said" = 1 ]
	}
	lab_wait 10 drops_seen
	sleep 0.5 # and no second line for the same drops
	drops_seen
	echo "# ipip: spoofed tunnels: n1 dropped, drop_source, n2 dropped: $r; said $said time(s)"
	t_check ipip/drops_said [ "$r" = "3 3 0" -a "$said" = 1 ]
done
if [ $failed -eq 0 ]; then t_pass no_failures; else
	t_fail no_failures "$failed runs had failed requests: $(cat "$E2E_TMP"/*.err | grep -m1 error)"
fi
t_done
