#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Drain through the controller's API: a draining node takes no new flows
# while its established ones finish on it; undrain gives it new flows again.
. "$(dirname "$0")/e2e.sh"
CASES=(drain_api no_new_flows existing_finish_on_node no_failures undrain unknown_node_404
	stated_slots engine_slots)
e2e_need "${CASES[@]}"
e2e_lab dr --nodes 3 --clients 64 || { t_fail lab "lab up failed"; t_done; }
lab_start_node 1 --models m1:1000
# n2 imitates llama-server, whose /props says its slots: its agent reads them
lab_start_node 2 --models m1:1000 --llamacpp --slots 5
# n3's agent states its engine's slots (lab.sh LAB_STATED_SLOTS), n1's not
LAB_STATED_SLOTS=1 lab_start_node 3 --models m1:1000 --slots 6
cfg=$E2E_TMP/aibld.yaml
{
	lab_yaml_head
	echo "services:"
	echo "  - {name: web, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: wrr}"
	lab_yaml_nodes 100 100 100
} >"$cfg"
e2e_restart_aibld "$cfg" || { e2e_fail_log drain_api "aibld not up"; t_done; }
W=http://$LAB_VIP4:$LAB_SIM_PORT
node_slots() {
	lab_api /v1/status | python3 -c "import json,sys; print([n['ai_slots'] for n in json.load(sys.stdin)['nodes'] if n['name'] == '$1'][0])"
}
# before any queue: n3's stated 6, n2's engine's 5, n1's unknown
slots_are() { [ "$(node_slots n3)/$(node_slots n2)/$(node_slots n1)" = "$1" ]; }
if lab_wait 5 slots_are 6.0/5.0/-1.0; then
	t_pass engine_slots
	# and aiblctl status's SLOTS column (the ninth): 6 and -
	view=$(lab_run lb "$AIBL_BUILD/aiblctl" --api "$LAB_API" --token-file "$LAB_DIR/api.token" \
		status 2>&1)
	echo "$view" | grep -E '^(NODE|n1|n3) ' | sed 's/^/# /'
	cols=$(awk '$1 == "n3" || $1 == "n1" { print $1 "=" $9 }' <<<"$view" | sort | tr '\n' ' ')
	t_check stated_slots [ "$cols" = "n1=- n3=6 " ]
else
	got="$(node_slots n3)/$(node_slots n2)/$(node_slots n1)"
	t_fail stated_slots "ai_slots n3/n2/n1: $got, want 6.0/5.0/-1.0"
	t_fail engine_slots "ai_slots n3/n2/n1: $got, want 6.0/5.0/-1.0"
fi
node_state() {
	lab_api /v1/status | python3 -c "import json,sys; print([n['state'] for n in json.load(sys.stdin)['nodes'] if n['name'] == '$1'][0])"
}
state_is() { [ "$(node_state "$1")" = "$2" ]; }
# the API answers at once and the state follows the drain at once; the
# data plane's DRAINING flag waits for the loop's next recompute
flag_is() { [ "$(e2e_backend "$1" "b['flags']['draining']")" = "$2" ]; } # NODE True|False

lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --keepalive --conns 12 --rate 120 \
	--duration 6 --json --no-progress --samples "$E2E_TMP/ka.tsv" >"$E2E_TMP/ka.json" \
	2>"$E2E_TMP/ka.err" &
pid_ka=$!
sleep 2
drain_ms=$(date +%s%3N)
r=$(lab_api /v1/nodes/n2/drain -X POST)
if [ "$(echo "$r" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["node"], j["draining"])')" = "n2 True" ] &&
	lab_wait 5 state_is n2 draining; then
	t_pass drain_api
else
	e2e_fail_log drain_api "answer '$r', state $(node_state n2)"
fi
lab_wait 5 flag_is n2 True
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --requests 600 --conns 8 --json \
	--no-progress >"$E2E_TMP/new.json" 2>/dev/null
rc_new=$?
# every request answered, none by n2 (a failed request has no node: a data
# plane that dropped n2's new flows would show n2 at 0 % too)
e2e_expect no_new_flows $rc_new "$E2E_TMP/new.json" \
	"(j['total']['failed'], j['total']['ok'], round(100.0 * sum(n['requests'] for n in j['nodes'] if n['name'] == 'n2') / max(1, j['total']['requests']), 1))" \
	"(0, 600, 0.0)"
wait $pid_ka
start_ka=$(e2e_json "$E2E_TMP/ka.json" "int(j['start_unix_ms'])")
# connections that were on n2 before the drain: still answered by n2 after
# it (the load generator gives every kept-alive connection its turn)
summary=$(awk -F'\t' -v s="$start_ka" -v d="$drain_ms" '!/^#/ {
	t = s + $1 - d; c = $4
	if (t < 0 && !(c in first)) first[c] = $2
	if (t > 500 && first[c] == "n2") {
		after[c]++; if ($2 != "n2") moved[c]++
		if ($9 > slow[c]) slow[c] = $9
	}
} END {
	for (c in first) if (first[c] == "n2") {
		on2++; if (after[c] > 0 && !moved[c]) stayed++
		detail = detail sprintf(" conn%s:%d/%d/%.0fms", c, after[c], moved[c], slow[c])
	}
	printf "%d %d%s\n", on2, stayed, detail
}' "$E2E_TMP/ka.tsv")
set -- $summary
echo "# $1 kept-alive connections on n2 at the drain, $2 kept being served by n2"
if [ "$1" -gt 0 ] && [ "$2" -eq "$1" ]; then t_pass existing_finish_on_node; else
	t_fail existing_finish_on_node "$summary (per connection: requests after the drain/answered elsewhere/slowest)"
fi
t_check no_failures [ "$(e2e_json "$E2E_TMP/ka.json" "(j['total']['failed'], j['total']['reconnects'])")" = "(0, 0)" ]
r=$(lab_api /v1/nodes/n2/undrain -X POST)
lab_wait 5 state_is n2 up
lab_wait 5 flag_is n2 False
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --requests 600 --conns 8 --json \
	--no-progress >"$E2E_TMP/undrain.json" 2>/dev/null
s=$(e2e_share "$E2E_TMP/undrain.json" n2)
if e2e_within "$s" 33.3 8; then t_pass undrain; else t_fail undrain "n2 share $s% after undrain ($r)"; fi
code=$(lab_api /v1/nodes/nope/drain -X POST -o /dev/null -w '%{http_code}')
t_check unknown_node_404 [ "$code" = 404 ]
t_done
