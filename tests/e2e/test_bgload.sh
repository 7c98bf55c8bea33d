#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The ai policy's background load: a cold start beside a node that serves
# loads the model without making a request wait for it.
#   n1 m1 resident, 2 slots, flooded straight at its address (saturated)
#   n2 m2 resident, m1 loadable (fits beside m2: nothing evicted), 5 s load
# each node with a fake GPU of 2500 MiB whose memory its simnode fills
# (lab.sh LAB_FAKE_NVML), with ai.cold_start_after_ms 1000, one ai service
# for m1 (1000 MiB), no node list:
# - while the service says m1 takes more than n2 has free (2000 MiB against
#   1500), n2 is not asked to load it: a load there would evict a model;
#   a reload keeps how long the service has been saturated (status
#   ai_saturated_ms), the clock cold_start_after_ms is measured on;
# - once n1 has been saturated for a second, aibld asks n2's agent to load
#   m1 (POST /v1/load) and /v1/status and aiblctl show the load;
# - while it loads n2 takes no flow of the service: m1's sessions through
#   the VIP meanwhile all go to n1, and none waits for a load;
# - once n2 reports m1 resident, it takes a share, with no cold start;
# - aibld holds n2's m1 as its own load (/v1/status node `held`, aiblctl
#   status `m1*`), and once
#   n1 has carried m1's sessions alone for background_unload_ms (the flood
#   over), takes it back: n2's agent drains and unloads m1, n2 leaves the
#   service, and n1's m1 (the operator's) and n2's m2 stay;
# - but not while another ai service of m1 ("pinned", on a second VIP,
#   listing n2 alone) still wants n2's m1 (/v1/status held `wanted_by`):
#   only once a reload has removed that service;
# - n2's agent refuses a load from an address that is neither the node
#   nor a --controller (403), and loads nothing for it;
# - a load the agent refuses (409: another model loading there; the
#   service's memory_mb unknown, so room is not asked) falls back to the
#   cold start: n2 takes the service's flows, which load m1.
. "$(dirname "$0")/e2e.sh"
CASES=(no_room_no_load clock_kept_over_reload load_asked shown_by_aiblctl no_flows_while_loading served_once_resident no_cold_start
	held kept_for_another taken_back stranger_refused refused_falls_back no_failures)
e2e_need "${CASES[@]}"
e2e_need_fake_nvml "${CASES[@]}"
# the agents time their engines (--speed-probe): flooded with long answers,
# n1's request latency is 100 times n2's, and the probes say they are as
# fast (the take-back counts only the room of nodes as fast)
export LAB_AGENT_ARGS=--speed-probe
e2e_lab bg --nodes 2 --clients 32 || { t_fail lab "lab up failed"; t_done; }
common=(--models m1:1000,m2:1000,m3:1000 --mem-mb 2500 --load-ms 5000 --decode-ms-per-tok 5)
lab_start_node 1 "${common[@]}" --resident m1 --slots 2
lab_start_node 2 "${common[@]}" --resident m2
set -- $LAB_VIP4_LIST
VIP=$1 VIP2=$2
cfg=$E2E_TMP/aibld.yaml
config() { # MODEL-MiB [pinned]
	{
		lab_yaml_head
		cat <<-EOF2
			ai:
			  cold_start_after_ms: 1000
			  background_load_ms: 30000
			  background_unload_ms: 4000
			services:
			  - {name: chat, vip: $VIP, port: $LAB_SIM_PORT, policy: ai, model: m1, memory_mb: $1}
		EOF2
		[ -z "${2:-}" ] ||
			echo "  - {name: pinned, vip: $VIP2, port: $LAB_SIM_PORT, policy: ai, model: m1, nodes: [n2]}"
		lab_yaml_nodes 100 100
	} >"$cfg"
}
config 2000
e2e_restart_aibld "$cfg" || { e2e_fail_log no_room_no_load "aibld not up"; t_done; }
sleep 1
failed=0

# FIELD of n2's background load in /v1/status ("" none)
load_of() {
	lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n2'][0]
print(n.get('load', {}).get('$1', ''))"
}
loading() { [ "$(load_of state)" = loading ]; }
# the nodes with a share of the service
serving() { e2e_serving chat; }
serving_is() { [ "$(serving)" = "$1" ]; }
# NODE's resident models, sorted
models_of() {
	lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == '$1'][0]
print(' '.join(sorted(n['models'])))"
}
# what aibld holds on n2: 'MODEL/SERVICE ...'
held_on_n2() {
	lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n2'][0]
print(' '.join(h['model'] + '/' + h['service'] for h in n.get('held', [])))"
}

# a stranger (a client address) asks n2's agent for a load first
code=$(lab_run cli curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
	-d '{"model": "m1"}' "http://$LAB_NODE_2_IP4:$LAB_AGENT_PORT/v1/load")
echo "# a load asked from a client address: HTTP $code"
t_check stranger_refused [ "$code" = 403 ]

# saturate n1: 24 long answers straight at its address, 2 at a time (24 s
# of them: n1 stays saturated until n2 has served m1)
lab_run cli "$AIBL_BUILD/aibl-loadgen" chat --target "http://$LAB_NODE_1_IP4:$LAB_SIM_PORT" \
	--model m1 --sessions 24 --turns 1 --rate 0 --context-tokens 100 --output-tokens 400 \
	--no-progress >/dev/null 2>&1 &
flood=$!
sat() {
	lab_api /v1/status | python3 -c "import json,sys
print([s for s in json.load(sys.stdin)['services'] if s['name'] == 'chat'][0]['ai_saturated_ms'])"
}
# the clock starts once a poll saw n1 saturated: on a loaded machine, give
# it the moment it can take to reach 2 s
sat_2s() { [ "$(sat)" -ge 2000 ]; }
# m1 at 2000 MiB has no room on n2: saturated for twice cold_start_after_ms
# (so past the moment a load would be asked), no load is asked
lab_wait 8 sat_2s || echo "# the service was not seen saturated for 2 s: $(sat) ms"
gpu=$(lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n2'][0]
print(n.get('load', {}).get('state', 'none'), n['state'])")
echo "# m1 said to need 2000 MiB, n2 1500 free: its load '${gpu% *}', service nodes '$(serving)'"
t_check no_room_no_load [ "${gpu% *}|$(serving)|$(sat_2s && echo sat)" = "none|n1|sat" ]
# a reload (the model said to need 1900 MiB: still no room) keeps the
# cold-start clock: the service has been saturated as long as before
reloads() { grep -c 'reloaded ' "$LAB_DIR/aibld.log"; }
r0=$(reloads) s0=$(sat)
config 1900
kill -HUP "$(lab_pid aibld)"
reloaded() { [ "$(reloads)" -gt "$r0" ]; }
lab_wait 5 reloaded
s1=$(sat)
row=$(lab_run lb "$AIBL_BUILD/aiblctl" --api "$LAB_API" --token-file "$LAB_DIR/api.token" status 2>&1 |
	grep -E '^chat ')
echo "# saturated ${s0} ms before the reload, ${s1} ms after it; aiblctl: $row"
shown=$(grep -cE '^chat .* [0-9]+\.[0-9]s +n1\(' <<<"$row")
t_check clock_kept_over_reload [ "$s0" -ge 2000 -a "$s1" -ge "$s0" -a "$shown" = 1 ]
# m1 at its size, 1000 MiB: room on n2; a second service of m1 on n2 alone
config 1000 pinned
e2e_restart_aibld "$cfg" || { e2e_fail_log load_asked "aibld not up again"; t_done; }
if lab_wait 10 loading; then
	t_pass load_asked
else
	e2e_fail_log load_asked "n2's load: '$(load_of state)' $(load_of error)"
fi
view=$(lab_run lb "$AIBL_BUILD/aiblctl" --api "$LAB_API" --token-file "$LAB_DIR/api.token" status 2>&1)
echo "$view" | grep -E '^n2 ' | sed 's/^/# /'
t_check shown_by_aiblctl grep -qE '^n2 .*\+m1 \(loading\)' <<<"$view"

# m1 sessions through the VIP while n2 loads: n1 alone, no cold start
during=$(serving)
lab_loadgen chat --target "http://$VIP:$LAB_SIM_PORT" --source 10.10.1.1-10.10.1.8 --model m1 \
	--sessions 8 --turns 1 --rate 8 --context-tokens 100 --output-tokens 4 --seed 1 --json \
	--no-progress >"$E2E_TMP/during.json" 2>"$E2E_TMP/during.err" || failed=$((failed + 1))
r=$(e2e_json "$E2E_TMP/during.json" "' '.join(sorted(n['name'] for n in j['nodes'] if n['requests'])), j['total']['cold_starts']")
echo "# during the load: service nodes '$during', (nodes, cold starts) = $r, load $(load_of state)"
t_check no_flows_while_loading [ "$during|$r" = "n1|n1 0" ]

# once resident, n2 serves m1 too
if lab_wait 15 serving_is "n1 n2"; then :; else
	e2e_fail_log served_once_resident "service nodes '$(serving)', n2's load '$(load_of state)'"
fi
lab_loadgen chat --target "http://$VIP:$LAB_SIM_PORT" --source 10.10.1.9-10.10.1.32 --model m1 \
	--sessions 24 --turns 1 --rate 12 --context-tokens 100 --output-tokens 4 --seed 2 --json \
	--no-progress >"$E2E_TMP/after.json" 2>"$E2E_TMP/after.err" || failed=$((failed + 1))
n2=$(e2e_share "$E2E_TMP/after.json" n2)
cold=$(e2e_json "$E2E_TMP/after.json" "j['total']['cold_starts']")
echo "# after the load: n2 served $n2% of m1's requests, $cold cold starts, load entry '$(load_of state)'"
t_check served_once_resident python3 -c "import sys; sys.exit(0 if $n2 > 0 else 1)"
t_check no_cold_start [ "$cold" = 0 ]
h=$(held_on_n2)
row=$(lab_run lb "$AIBL_BUILD/aiblctl" --api "$LAB_API" status 2>&1 | grep -E '^n2 ')
echo "# aibld holds on n2: '$h'; aiblctl: $row"
t_check held [ "$h|$(grep -oE 'm1\*' <<<"$row")" = "m1/chat|m1*" ]
kill "$flood" 2>/dev/null
wait "$flood" 2>/dev/null

# the flood over (what n1 still runs of it ends: the simulator finishes
# what it took), n1 carries m1 alone: 4 s later aibld takes n2's m1 back,
# and the unload ends (the drain's wait, then the engine's answer)
n1_idle() {
	lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n1'][0]
sys.exit(0 if n['in_flight'] == 0 else 1)"
}
lab_wait 40 n1_idle
# "pinned" has no other node for m1: held past background_unload_ms
sleep 6
wanted_by=$(lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n2'][0]
print(' '.join(h.get('wanted_by', '-') for h in n.get('held', [])))")
kept="$(models_of n2)|$(load_of op)|$(held_on_n2)|$wanted_by|$(grep -c 'is unloaded' "$LAB_DIR/aibld.log")"
echo "# 6 s after n1 went idle, with 'pinned': n2's models|unload|held|wanted by|said = '$kept'"
t_check kept_for_another [ "$kept" = "m1 m2||m1/chat|pinned|0" ]
# the reload removes it: nothing else wants n2's m1
config 1000
kill -HUP "$(lab_pid aibld)"
gone() { [ "$(models_of n2)|$(load_of op)|$(held_on_n2)" = "m2||" ] && serving_is n1; }
if lab_wait 30 gone; then :; else
	e2e_fail_log taken_back "n2's models '$(models_of n2)', service nodes '$(serving)', held '$(held_on_n2)', its load '$(load_of op) $(load_of state)'"
fi
said=$(grep -c "model 'm1', which this balancer loaded there .* is unloaded" "$LAB_DIR/aibld.log")
after=$(models_of n1)/$(models_of n2)/$(held_on_n2)
# this aibld's loads and unloads: op/result=N, in /metrics order
ops=$(lab_api /metrics | sed -n 's/^aibl_controller_background_total{op="\([a-z]*\)",result="\([a-z]*\)"} \([0-9]*\)$/\1\/\2=\3/p' | tr '\n' ' ')
echo "# taken back: models n1/n2/held '$after', service nodes '$(serving)', said $said times; /metrics: $ops"
t_check taken_back [ "$after|$(serving)|$said|$ops" = \
	"m1/m2/|n1|1|load/asked=1 load/done=1 load/refused=0 unload/asked=1 unload/done=1 unload/refused=0 " ]

# n2 loads m3 (asked on the node itself); n1 saturates again, and aibld's
# load of m1 meets the agent busy with m3
# m1's size unknown now: m3 beside m2 leaves no room for a known 1000 MiB
config 0
e2e_restart_aibld "$cfg" || { e2e_fail_log refused_falls_back "aibld not up again"; t_done; }
lab_wait 5 serving_is n1 || t_fail refused_falls_back "service nodes '$(serving)' after the unload"
code=$(lab_run n2 curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
	-d '{"model": "m3"}' "http://127.0.0.1:$LAB_AGENT_PORT/v1/load")
echo "# n2 loads m3, asked on the node: HTTP $code"
lab_run cli "$AIBL_BUILD/aibl-loadgen" chat --target "http://$LAB_NODE_1_IP4:$LAB_SIM_PORT" \
	--model m1 --sessions 24 --turns 1 --rate 0 --context-tokens 100 --output-tokens 300 \
	--seed 3 --no-progress >/dev/null 2>&1 &
flood=$!
refused() { [ "$(load_of state)" = refused ]; }
lab_wait 10 refused
# the refusal is stored by the poller; n2's weight comes back at the
# recompute after it
lab_wait 10 serving_is "n1 n2"
why=$(load_of error)
during=$(serving)
echo "# n2's load: '$(load_of state)' ($why), service nodes '$during'"
t_check refused_falls_back [ "$code|${why:0:8}|$during" = "202|HTTP 409|n1 n2" ]
kill "$flood" 2>/dev/null
wait "$flood" 2>/dev/null
grep -E "background|loads model|resident .* after|unload" "$LAB_DIR/aibld.log" | sed 's/^/# aibld: /'

if [ $failed -eq 0 ]; then t_pass no_failures; else
	t_fail no_failures "$failed workloads had failures: $(cat "$E2E_TMP"/*.err | grep -m1 -i error)"
fi
t_done
