#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# LoRA adapters are models for routing (issue #17). Three simnodes hold the
# base model; an operator loads and unloads adapter sql-lora with vLLM's
# runtime API; one service is the adapter's name, policy ai, no node list:
# - while no node holds the adapter the service has no node (the base
#   model alone does not make a node eligible);
# - loaded on n1: every request goes to n1;
# - loaded on n2 as well: requests go to n1 and n2 only;
# - unloaded from n1: the controller drops n1 within a few polls and every
#   new request goes to n2, also those of the clients that n1 had served;
# - n1 answers vLLM's 404 for the adapter it no longer holds;
# - loaded on n1 again, then unloaded from n2 by `aiblctl node unload`
#   (aibld passes it to n2's agent, POST /v1/unload: drain, then unload)
#   while sessions stream through the VIP:
#   none of their requests fails (an unload on the engine in their midst
#   gets vLLM's 404 for those already on their way), the agent tells how it
#   went, and the service is left with n1;
# - loaded on n2 again and unloaded from it amid kept-alive sessions: the
#   agent waits for the connections aibld holds there to close, and none
#   of their requests fails;
# - no request through the VIP fails.
. "$(dirname "$0")/e2e.sh"
CASES=(none_without_adapter only_holder holders_only follows_unload moved_to_second old_node_404
	drain_unload_no_failures drain_unload_done keepalive_unload_waits no_failures)
e2e_need "${CASES[@]}"
e2e_lab lora --nodes 3 --clients 16 || { t_fail lab "lab up failed"; t_done; }
# n2's agent looks at the model lists only at its scrape, every second: an
# unload on its engine reaches the controller up to a second late, and the
# drain must not depend on the watch (phase 4)
for i in 1 2 3; do
	if [ "$i" = 2 ]; then
		LAB_WATCH_MS=0 LAB_SCRAPE_MS=1000 lab_start_node "$i" --models base:1000 \
			--lora-load-ms 300 --decode-ms-per-tok 2
	else
		lab_start_node "$i" --models base:1000 --lora-load-ms 300 --decode-ms-per-tok 2
	fi
done
set -- $LAB_VIP4_LIST
VIP=$1
cfg=$E2E_TMP/aibld.yaml
{
	lab_yaml_head
	cat <<-EOF2
		services:
		  - {name: sql, vip: $VIP, port: $LAB_SIM_PORT, policy: ai, model: sql-lora}
	EOF2
	lab_yaml_nodes 100 100 100
} >"$cfg"
e2e_restart_aibld "$cfg" || { e2e_fail_log none_without_adapter "aibld not up"; t_done; }

# lora NODE load|unload: vLLM's runtime adapter API on the node; the HTTP status
lora() {
	lab_run "n$1" curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' \
		-d '{"lora_name": "sql-lora", "lora_path": "/adapters/sql-lora"}' \
		"http://127.0.0.1:$LAB_SIM_PORT/v1/${2}_lora_adapter"
}
# the nodes the controller gives the adapter's service a share of
serving() { e2e_serving sql; }
serving_is() { [ "$(serving)" = "$1" ]; }
failed=0
# chat NAME: the adapter's sessions through the VIP, the same 12 clients
# every time (so pins from an earlier phase are put to the test)
chat() {
	lab_loadgen chat --target "http://$VIP:$LAB_SIM_PORT" --source 10.10.1.1-10.10.1.12 \
		--model sql-lora --sessions 12 --turns 2 --rate 12 --think-ms 100 \
		--context-tokens 200 --output-tokens 4 --seed "$2" --json --no-progress \
		>"$E2E_TMP/$1.json" 2>"$E2E_TMP/$1.err" || failed=$((failed + 1))
}
# nodes NAME: "NODE... FAILED", the nodes that answered and the failed requests
nodes() {
	e2e_json "$E2E_TMP/$1.json" \
		"' '.join(sorted(n['name'] for n in j['nodes'] if n['requests'])), j['total']['failed']"
}

# every agent has reported the base model alone by now (nodes up)
sleep 1
# the service is listed with no node: an API or service missing prints
# nothing at all, not the empty list
r=$(lab_api /v1/status | python3 -c "import json,sys
s = [s for s in json.load(sys.stdin)['services'] if s['name'] == 'sql']
print('nodes:' + ' '.join(sorted(n['name'] for n in s[0]['nodes'] if n['weight'] > 0)) if s else 'no service')")
echo "# no node holds the adapter: service $r"
t_check none_without_adapter [ "$r" = "nodes:" ]

# 1. on n1 only
[ "$(lora 1 load)" = 200 ] || t_fail only_holder "load on n1 refused"
lab_wait 5 serving_is n1 || e2e_fail_log only_holder "service nodes '$(serving)', want n1"
chat one 1
r=$(nodes one)
echo "# held by n1: (nodes, failed) = $r"
t_check only_holder [ "$r" = "n1 0" ]

# 2. on n1 and n2: either may serve, n3 never
[ "$(lora 2 load)" = 200 ] || t_fail holders_only "load on n2 refused"
lab_wait 5 serving_is "n1 n2" || e2e_fail_log holders_only "service nodes '$(serving)', want n1 n2"
chat two 2
r=$(nodes two)
echo "# held by n1 and n2: (nodes, failed) = $r"
ok=$(e2e_json "$E2E_TMP/two.json" \
	"j['total']['failed'] == 0 and j['total']['requests'] == 24 and
	set(n['name'] for n in j['nodes'] if n['requests']) <= {'n1', 'n2'}")
t_check holders_only [ "$ok" = True ]

# 3. the operator unloads it from n1: the report drops it at the next
#    scrape, the controller at its next poll (200 ms each here)
[ "$(lora 1 unload)" = 200 ] || t_fail follows_unload "unload on n1 refused"
t0=$SECONDS
if lab_wait 10 serving_is n2; then t_pass follows_unload; else
	e2e_fail_log follows_unload "service nodes '$(serving)' $((SECONDS - t0)) s after the unload, want n2"
fi
chat three 3
r=$(nodes three)
echo "# held by n2 only: (nodes, failed) = $r"
t_check moved_to_second [ "$r" = "n2 0" ]

# n1 itself: vLLM's answer for a model it does not have
code=$(lab_run cli curl -sS --max-time 5 -o "$E2E_TMP/404.json" -w '%{http_code}' \
	-H 'Content-Type: application/json' -d '{"model": "sql-lora", "prompt": "x"}' \
	"http://$LAB_NODE_1_IP4:$LAB_SIM_PORT/v1/completions")
msg=$(e2e_json "$E2E_TMP/404.json" "j['error']['type'], j['error']['message']" 2>&1)
echo "# n1 asked directly: $code $msg"
t_check old_node_404 [ "$code $msg" = "404 NotFoundError The model \`sql-lora\` does not exist." ]

# unload_amid NAME LOADGEN-ARGS...: 32 sessions through the VIP (results in
# $E2E_TMP/NAME.json) while the operator's command, 0.8 s in, unloads the
# adapter from n2 through aibld's API to n2's agent, until it is done. Sets
# out and code (aiblctl's) and r: "REQUESTS FAILED NODES..."
unload_amid() {
	local name=$1 lg
	shift
	lab_loadgen chat --target "http://$VIP:$LAB_SIM_PORT" --source 10.10.1.1-10.10.1.16 \
		--model sql-lora --sessions 32 --rate 16 --context-tokens 200 --output-tokens 4 \
		--json --no-progress "$@" >"$E2E_TMP/$name.json" 2>"$E2E_TMP/$name.err" &
	lg=$!
	sleep 0.8
	out=$(lab_run lb "$AIBL_BUILD/aiblctl" --api "$LAB_API" --token-file "$LAB_DIR/api.token" \
		node unload n2 sql-lora 2>&1)
	code=$?
	echo "$out" | sed 's/^/# aiblctl: /'
	wait "$lg" || failed=$((failed + 1))
	r=$(e2e_json "$E2E_TMP/$name.json" \
		"j['total']['requests'], j['total']['failed'], ' '.join(sorted(n['name'] for n in j['nodes'] if n['requests']))")
}

# 4. back on n1; then n2's agent drains and unloads it amid the traffic
[ "$(lora 1 load)" = 200 ] || t_fail drain_unload_no_failures "load on n1 refused"
lab_wait 5 serving_is "n1 n2" ||
	e2e_fail_log drain_unload_no_failures "service nodes '$(serving)', want n1 n2"
unload_amid four --turns 3 --think-ms 50 --seed 4
echo "# unloaded from n2 through its agent amid 32 sessions: (requests, failed, nodes) = $r"
t_check drain_unload_no_failures [ "$code ${r#* }" = "0 0 n1 n2" ]
state() {
	lab_run n2 curl -sS --max-time 2 "http://127.0.0.1:$LAB_AGENT_PORT/v1/load"
}
done_ok() {
	state | python3 -c "import json,sys
j = json.load(sys.stdin)
sys.exit(not (j['op'] == 'unload' and not j['busy'] and j['status'] == 200 and not j['error']))"
}
if lab_wait 5 done_ok && lab_wait 10 serving_is n1; then
	echo "# n2's agent: $(state)"
	t_pass drain_unload_done
else
	e2e_fail_log drain_unload_done "agent: $(state); service nodes '$(serving)', want n1"
fi

# 5. kept-alive clients (--keepalive: one connection per session, as an
#    OpenAI client's pool keeps it): a connection chosen before the unload
#    carries its session's later turns to n2, which no table change moves.
#    aibld counts those it holds (X-Aibl-Open-Flows on its polls) and n2's
#    agent unloads only once they have closed
# n2's agent hides the adapter until its lists show it gone (its scrape,
# every second here): loaded again before that, it would stay hidden up
# to 10 s (docs/agent.md, "Drain, then unload")
unhidden() { state | grep -q '"hidden":false'; }
lab_wait 5 unhidden || e2e_fail_log keepalive_unload_waits "agent still hides it: $(state)"
[ "$(lora 2 load)" = 200 ] || t_fail keepalive_unload_waits "load on n2 refused"
lab_wait 5 serving_is "n1 n2" ||
	e2e_fail_log keepalive_unload_waits "service nodes '$(serving)', want n1 n2"
unload_amid five --turns 8 --think-ms 300 --keepalive --seed 5
echo "# unloaded from n2 amid 32 kept-alive sessions: (requests, failed, nodes) = $r"
# the agent waited for open connections, and none of their requests failed
if [ "$code ${r#* }" = "0 0 n1 n2" ] && grep -q "waiting for [0-9]* open connection" <<<"$out" &&
	lab_wait 5 done_ok; then
	echo "# n2's agent: $(state)"
	t_pass keepalive_unload_waits
else
	e2e_fail_log keepalive_unload_waits "aiblctl $code: $out; (requests, failed, nodes) = $r; agent: $(state)"
fi

if [ $failed -eq 0 ]; then t_pass no_failures; else
	t_fail no_failures "$failed workloads had failures: $(cat "$E2E_TMP"/*.err | grep -m1 -i error)"
fi
t_done
