#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# The ai policy with simnodes that differ in residency, load and speed:
#   n1 fast, m1 resident (m2 loadable, 1.5 s cold start), 4 slots
#   n2 3x slower, m1 resident (m2 loadable)
#   n3 fast, m2 resident (m1 loadable)
# - a multi-turn session's later turns go back to the node that holds its
#   prefix cache (>= 90% of turns 2..4 on the turn-1 node) while that node
#   is not saturated (sticky until saturated: a turn that would queue there
#   behind a whole batch spills, so this workload stays below that);
# - no cold start while a node has the model resident (m2 -> n3 only),
#   where rr over the same nodes does cause cold starts;
# - an overloaded node (queue >= ai.queue_ref) gets no new flows while
#   another resident node can take them (>= 90% of new sessions on n2),
#   its queue priced by how long its requests hold a slot (ai_hold_ms > 3x
#   the floor measured on short requests);
# - the data plane records clients' p2c choices as their affinity, read
#   by name with aiblctl affinity list (one per address, on m1's nodes);
# - an operator moves m2 from n3 to n2 (vLLM's runtime load/unload API):
#   m2's sessions follow it (none to n3, no cold start).
. "$(dirname "$0")/e2e.sh"
CASES=(sessions_return_to_cache cache_hits affinity_recorded no_cold_starts rr_contrast_cold overload_detected
	load_moved_off flood_priced follows_moved_model no_failures)
e2e_need "${CASES[@]}"
e2e_lab ai --nodes 3 --clients 64 || { t_fail lab "lab up failed"; t_done; }
common=(--models m1:1000,m2:1000 --mem-mb 1500 --load-ms 1500 --decode-ms-per-tok 5)
lab_start_node 1 "${common[@]}" --resident m1 --slots 4
lab_start_node 2 "${common[@]}" --resident m1 --slowdown 3
lab_start_node 3 "${common[@]}" --resident m2
set -- $LAB_VIP4_LIST
VIP1=$1 VIP2=$2 VIP3=$3
cfg=$E2E_TMP/aibld.yaml
{
	lab_yaml_head
	cat <<-EOF2
		ai:
		  queue_ref: 6
		services:
		  - {name: chat-m1, vip: $VIP1, port: $LAB_SIM_PORT, policy: ai, model: m1}
		  - {name: chat-m2, vip: $VIP2, port: $LAB_SIM_PORT, policy: ai, model: m2}
		  - {name: rr-m2, vip: $VIP3, port: $LAB_SIM_PORT, policy: rr, model: m2}
	EOF2
	lab_yaml_nodes 100 100 100
} >"$cfg"
e2e_restart_aibld "$cfg" || { e2e_fail_log sessions_return_to_cache "aibld not up"; t_done; }
# let every agent report its models before the first session
sleep 1
failed=0
chat() { # NAME VIP SOURCES ARGS...
	local name=$1 vip=$2 src=$3
	shift 3
	lab_loadgen chat --target "http://$vip:$LAB_SIM_PORT" --source "$src" --json --no-progress \
		--samples "$E2E_TMP/$name.tsv" "$@" >"$E2E_TMP/$name.json" 2>"$E2E_TMP/$name.err" ||
		failed=$((failed + 1))
}

# 1. multi-turn sessions on m1, one client address each, a new connection per turn
# no bursts: 8 first turns at once would queue at n1's 4 slots and spill
chat sessions "$VIP1" 10.10.1.1-10.10.1.16 --model m1 --sessions 16 --turns 4 --rate 4 --burst-prob 0 \
	--think-ms 1000 --context-tokens 1500 --turn-tokens 100 --output-tokens 16 --seed 3
same=$(awk -F'\t' '!/^#/ && $7 == 1 { if ($5 == 0) first[$4] = $2; else { n++; node[n] = $2; sess[n] = $4 } }
	END { for (i = 1; i <= n; i++) s += (node[i] == first[sess[i]]); printf "%d %d\n", s, n }' \
	"$E2E_TMP/sessions.tsv")
set -- $same
echo "# later turns on the session's first node: $1 of $2"
t_check sessions_return_to_cache [ "$2" -gt 0 -a $(($1 * 100)) -ge $(($2 * 90)) ]
hit=$(e2e_json "$E2E_TMP/sessions.json" "j['total']['cache_hit']")
echo "# prefix-cache hit rate (tokens): $hit"
# 16 sessions x 4 turns, ~1600..1900 prompt tokens a turn: a turn that finds
# its prefix re-uses ~90% of its prompt, so 3 of 4 turns hitting is ~0.7
if e2e_within "$hit" 0.85 0.2; then t_pass cache_hits; else t_fail cache_hits "hit rate $hit"; fi
# affinities of chat-m1: one entry per client address at most, each a
# session's address, on a node that holds m1. Not all 16: the first turns
# found no prefix, so affinity came on with the second turns' hits
# (docs/aibld.md "Client affinity")
aff=$(lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j affinity list --service chat-m1 \
	2>&1 | python3 -c "import json,sys
a = json.load(sys.stdin)['affinities']
c = {x['client'] for x in a}
ok = 0 < len(a) == len(c) and c <= {'10.10.1.%d' % i for i in range(1, 17)} and \
	{x['backend'] for x in a} <= {'n1', 'n2'}
print(len(a), sorted({x['backend'] for x in a}), 'ok' if ok else 'wrong')" 2>&1)
echo "# affinities of chat-m1 (entries, backends): $aff"
t_check affinity_recorded [ "${aff##* }" = ok ]

# 2. m2 is resident on n3 only: the ai policy sends it there, rr does not
chat m2 "$VIP2" 10.10.1.17-10.10.1.32 --model m2 --sessions 12 --turns 2 --rate 8 \
	--think-ms 200 --context-tokens 500 --output-tokens 8 --seed 4
r=$(e2e_json "$E2E_TMP/m2.json" "(j['total']['cold_starts'], sorted(n['name'] for n in j['nodes']))")
echo "# ai m2: (cold starts, nodes) = $r"
t_check no_cold_starts [ "$r" = "(0, ['n3'])" ]

# 3. n1 overloaded by a flood straight to its address (4 slots, queue >> 6):
#    new m1 sessions through the VIP go to n2 while n1 is overloaded
lab_run cli "$AIBL_BUILD/aibl-loadgen" chat --target "http://$LAB_NODE_1_IP4:$LAB_SIM_PORT" \
	--model m1 --sessions 40 --turns 1 --rate 0 --context-tokens 100 --output-tokens 400 \
	--no-progress >/dev/null 2>&1 &
flood=$!
state_of() {
	lab_api /v1/status | python3 -c "import json,sys; print([n['state'] for n in json.load(sys.stdin)['nodes'] if n['name'] == '$1'][0])"
}
is_overloaded() { [ "$(state_of n1)" = overloaded ]; }
if lab_wait 8 is_overloaded; then t_pass overload_detected; else
	e2e_fail_log overload_detected "n1 is $(state_of n1)"
fi
chat overload "$VIP1" 10.10.1.33-10.10.1.64 --model m1 --sessions 32 --turns 1 --rate 20 \
	--context-tokens 200 --output-tokens 4 --seed 5
share=$(e2e_share "$E2E_TMP/overload.json" n2)
echo "# new m1 sessions on n2 while n1 is overloaded: $share% (n1 state $(state_of n1))"
t_check load_moved_off e2e_within "$share" 100 10
# why: n1's requests hold a slot for their 400 tokens, not the short
# requests' time its unloaded floor was measured on
fig=$(lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n1'][0]
print(round(n['ai_hold_ms']), round(n['ai_floor_ms']))")
set -- $fig
echo "# n1 holds a slot $1 ms, its floor $2 ms"
t_check flood_priced [ "${1:-0}" -gt $((3 * ${2:-1000000})) ]
kill "$flood" 2>/dev/null
wait "$flood" 2>/dev/null

# 4. contrast: rr over the same nodes loads m2 where it is not resident
chat rr "$VIP3" 10.10.1.17-10.10.1.32 --model m2 --sessions 12 --turns 1 --rate 8 \
	--context-tokens 200 --output-tokens 4 --seed 6
cold=$(e2e_json "$E2E_TMP/rr.json" "j['total']['cold_starts']")
echo "# rr m2 cold starts: $cold"
t_check rr_contrast_cold [ "$cold" -gt 0 ]
# 5. the operator moves m2: n3 unloads it, n2 loads it (evicting its idle m1;
#    n1 still works off the flood above)
model_op() { # NODE OP MODEL
	lab_run "n$1" curl -sf --max-time 10 -X POST -H 'Content-Type: application/json' \
		-d "{\"lora_name\": \"$3\"}" "http://127.0.0.1:$LAB_SIM_PORT/v1/${2}_lora_adapter"
}
model_op 3 unload m2 >/dev/null && model_op 2 load m2 >/dev/null ||
	t_fail follows_moved_model "the runtime model API refused the move"
# the agents scrape, aibld polls: both well under a second here, and on a
# loaded machine longer: wait until chat-m2 has n2 and not n3 (its pins
# go in the same recompute)
moved_seen() { local s=" $(e2e_serving chat-m2) "; [[ $s == *" n2 "* && $s != *" n3 "* ]]; }
lab_wait 10 moved_seen || echo "# chat-m2 still on: $(e2e_serving chat-m2)"
# the same clients as m2's sessions in 2: their pins to n3 must not survive
# the unload
chat moved "$VIP2" 10.10.1.17-10.10.1.28 --model m2 --sessions 12 --turns 2 --rate 8 \
	--think-ms 200 --context-tokens 500 --output-tokens 8 --seed 7
r=$(e2e_json "$E2E_TMP/moved.json" "(j['total']['cold_starts'], sorted(n['name'] for n in j['nodes']))")
echo "# ai m2 after the move: (cold starts, nodes) = $r"
# rr's run above may have loaded m2 on n2 as well: what counts is no cold
# start and nothing sent to n3, which no longer has it
ok=$(e2e_json "$E2E_TMP/moved.json" \
	"j['total']['requests'] == 24 and j['total']['failed'] == 0 and
	j['total']['cold_starts'] == 0 and 'n3' not in [n['name'] for n in j['nodes']]")
t_check follows_moved_model [ "$ok" = True ]

if [ $failed -eq 0 ]; then t_pass no_failures; else
	t_fail no_failures "$failed workloads had failures: $(cat "$E2E_TMP"/*.err | grep -m1 -i error)"
fi
t_done
