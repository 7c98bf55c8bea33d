#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# kill -9 of aibld during traffic, then a restart: the data plane keeps
# forwarding on its pinned maps meanwhile and the restarted controller
# reuses them (connection table included), so not one connection breaks:
# new connections, kept-alive connections and streamed replies all finish.
. "$(dirname "$0")/e2e.sh"
CASES=(forwarding_without_controller restarted new_conns_unbroken keepalive_unbroken
	streams_unbroken)
e2e_need "${CASES[@]}"
e2e_lab rs --nodes 3 --clients 64 || { t_fail lab "lab up failed"; t_done; }
for i in 1 2 3; do lab_start_node "$i" --models m1:1000 --decode-ms-per-tok 25 --slots 64; done
cfg=$E2E_TMP/aibld.yaml
{
	lab_yaml_head
	echo "services:"
	echo "  - {name: web, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: wrr}"
	lab_yaml_nodes 100 200 300
} >"$cfg"
e2e_restart_aibld "$cfg" || { e2e_fail_log restarted "aibld not up"; t_done; }
W=http://$LAB_VIP4:$LAB_SIM_PORT

lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --rate 200 --conns 32 --duration 8 \
	--timeout-ms 2000 --json --no-progress >"$E2E_TMP/new.json" 2>"$E2E_TMP/new.err" &
pid_new=$!
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --keepalive --conns 12 --rate 120 \
	--duration 8 --json --no-progress >"$E2E_TMP/ka.json" 2>"$E2E_TMP/ka.err" &
pid_ka=$!
lab_loadgen chat --target "$W" --source "$LAB_CLIENT_ADDRS4" --model m1 --sessions 8 --turns 2 \
	--rate 2 --think-ms 500 --context-tokens 200 --output-tokens 120 --json --no-progress \
	>"$E2E_TMP/chat.json" 2>"$E2E_TMP/chat.err" &
pid_chat=$!
sleep 2
pid=$(lab_pid aibld)
kill -9 "$pid"
wait "$pid" 2>/dev/null
rm -f "$LAB_DIR/aibld.pid"
# with no controller at all, new connections still get through
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --requests 100 --conns 4 --json \
	--no-progress >"$E2E_TMP/gap.json" 2>/dev/null
t_check forwarding_without_controller [ "$(e2e_json "$E2E_TMP/gap.json" "j['total']['ok']")" = 100 ]
sleep 1
if lab_start_aibld "$cfg" && lab_wait_nodes_up 3 10; then t_pass restarted; else
	e2e_fail_log restarted "aibld did not come back"
fi
wait $pid_new; rc_new=$?
wait $pid_ka; rc_ka=$?
wait $pid_chat; rc_chat=$?
e2e_expect new_conns_unbroken $rc_new "$E2E_TMP/new.json" \
	"(j['total']['failed'], j['total']['ok'] > 1000)" "(0, True)"
e2e_expect keepalive_unbroken $rc_ka "$E2E_TMP/ka.json" \
	"(j['total']['failed'], j['total']['reconnects'])" "(0, 0)"
e2e_expect streams_unbroken $rc_chat "$E2E_TMP/chat.json" \
	"(j['total']['ok'], j['total']['failed'])" "(16, 0)"
t_done
