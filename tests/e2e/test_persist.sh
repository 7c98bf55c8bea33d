#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Established connections survive table rewrites, weight changes and pin
# changes: while kept-alive connections keep sending requests and streamed
# chat replies are in flight, the weights change twice by SIGHUP (the
# second one takes n1 out of the table) and cache hints re-pin clients to
# another node. Not one request may fail and not one kept-alive connection
# may be re-opened; new connections must follow the new table and pins.
. "$(dirname "$0")/e2e.sh"
CASES=(keepalive_survive streams_survive ai_conns_survive pins_applied new_flows_follow_pins
	new_flows_follow_weights reloads_applied)
e2e_need "${CASES[@]}"
e2e_lab ps --nodes 3 --clients 64 || { t_fail lab "lab up failed"; t_done; }

for i in 1 2 3; do
	lab_start_node "$i" --models m1:1000 --decode-ms-per-tok 30 --slots 64
done
set -- $LAB_VIP4_LIST
VIP_AI=$2
cfg=$E2E_TMP/aibld.yaml
write_cfg() {
	{
		lab_yaml_head
		cat <<-EOF2
			services:
			  - {name: web, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: wrr}
			  - {name: chat, vip: $VIP_AI, port: $LAB_SIM_PORT, policy: ai, model: m1}
		EOF2
		lab_yaml_nodes "$@"
	} >"$cfg.tmp" && mv "$cfg.tmp" "$cfg"
}
write_cfg 100 100 100
e2e_restart_aibld "$cfg" || { e2e_fail_log keepalive_survive "aibld not up"; t_done; }

W=http://$LAB_VIP4:$LAB_SIM_PORT
A=http://$VIP_AI:$LAB_SIM_PORT
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --keepalive --conns 24 --rate 300 \
	--duration 9 --json --no-progress >"$E2E_TMP/ka.json" 2>"$E2E_TMP/ka.err" &
pid_ka=$!
lab_loadgen chat --target "$W" --source "$LAB_CLIENT_ADDRS4" --model m1 --sessions 12 --turns 1 \
	--rate 0 --context-tokens 200 --output-tokens 150 --json --no-progress \
	>"$E2E_TMP/chat.json" 2>"$E2E_TMP/chat.err" &
pid_chat=$!
# the first 8 client addresses, one kept-alive connection each, on the ai service
lab_loadgen http --target "$A" --source "$LAB_CLIENT_ADDRS4" --keepalive --conns 8 --rate 100 \
	--duration 9 --json --no-progress --samples "$E2E_TMP/ai.tsv" >"$E2E_TMP/ai.json" 2>"$E2E_TMP/ai.err" &
pid_ai=$!

sleep 1
write_cfg 100 200 300
kill -HUP "$(lab_pid aibld)"
sleep 1.5
# re-pin the ai connections' clients to n3 (server hints outscore traffic hints)
for k in $(seq 1 8); do lab_hint 3 "10.10.1.$k" "$VIP_AI" "$LAB_SIM_PORT" 1.0 >/dev/null; done
pins_to_n3() {
	[ "$(lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j pin list --service chat |
		python3 -c 'import json,sys; j=json.load(sys.stdin); p=j if isinstance(j, list) else j.get("pins", []); print(sum(1 for x in p if x.get("backend") == "n3" and x.get("client", "").startswith("10.10.1.") and int(x["client"].split(".")[3]) <= 8))')" -ge 8 ]
}
if lab_wait 5 pins_to_n3; then t_pass pins_applied; else
	e2e_fail_log pins_applied "no pins of 10.10.1.1-8 to n3: $(lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" pin list --service chat 2>&1 | head -5)"
fi
sleep 1
write_cfg 0 100 100
kill -HUP "$(lab_pid aibld)"
sleep 1
# a new connection from a re-pinned client goes to n3
node=$(lab_run cli curl -s -o /dev/null -D - --max-time 3 --interface 10.10.1.3 "$A/health" |
	tr -d '\r' | awk -F': ' 'tolower($1) == "x-aibl-node" {print $2}')
t_check new_flows_follow_pins [ "$node" = n3 ]

wait $pid_ka; rc_ka=$?
wait $pid_chat; rc_chat=$?
wait $pid_ai; rc_ai=$?
e2e_expect keepalive_survive $rc_ka "$E2E_TMP/ka.json" \
	"(j['total']['failed'], j['total']['reconnects'], j['total']['ok'] > 1000)" "(0, 0, True)"
e2e_expect streams_survive $rc_chat "$E2E_TMP/chat.json" \
	"(j['total']['ok'], j['total']['failed'], j['total']['output_tokens'])" "(12, 0, 1800)"
e2e_expect ai_conns_survive $rc_ai "$E2E_TMP/ai.json" \
	"(j['total']['failed'], j['total']['reconnects'])" "(0, 0)"

# the table did change under the established flows: n1 gets no new ones
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --requests 300 --conns 4 --json \
	--no-progress >"$E2E_TMP/after.json" 2>/dev/null
rc_after=$?
# every request answered, none by n1 (a failed request has no node)
e2e_expect new_flows_follow_weights $rc_after "$E2E_TMP/after.json" \
	"(j['total']['failed'], j['total']['ok'], round(100.0 * sum(n['requests'] for n in j['nodes'] if n['name'] == 'n1') / max(1, j['total']['requests']), 1))" \
	"(0, 300, 0.0)"
ok=$(lab_api /metrics | awk '/^aibl_controller_reloads_total\{result="ok"\}/ {print $2}')
t_check reloads_applied [ "$ok" = 2 ]
t_done
