#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Background loads across services: two ai services want the one node with
# room for a model, and the one whose requests wait longer gets it.
#   n1 m1 resident, 2 slots, 20 answers of 300 tokens queued straight at it
#   n2 m3 resident, room (a fake GPU of 2500 MiB) for one more model
#   n3 m2 resident, 1 slot, 16 answers of 300 tokens queued straight at it,
#      no room for another model (1500 MiB)
# services: "first" (m1, listed first) and "second" (m2), 1000 MiB each,
# no node list. With cold_start_after_ms 0 (no load beside a resident
# node) both queues build up; a reload sets it to 1000 ms, so both
# services start counting their saturation in one poll round:
# - both services' least wait at their nodes is known (status ai_wait_ms),
#   m2's the longer (39 queued behind one slot of 1.5 s against 18 behind
#   two);
# - n2 loads m2, although "first" comes first in the config;
# - once m2 is resident n2 has no room for m1: it never loads m1, and
#   "first" keeps n1 alone;
# - once m2's queue at n3 is over, n3 carries m2 alone: after
#   background_unload_ms (3 s) aibld takes its load of m2 on n2 back, and
#   "first", saturated again by a second flood at n1, loads m1 in the room
#   that left.
# The agents time their engines (--speed-probe): n2 ran no request of m2,
# and the probes say it is as fast as n3.
. "$(dirname "$0")/e2e.sh"
CASES=(both_waits_known neediest_loads no_second_load room_given_back)
e2e_need "${CASES[@]}"
e2e_need_fake_nvml "${CASES[@]}"
export LAB_AGENT_ARGS=--speed-probe
e2e_lab bp --nodes 3 --clients 8 || { t_fail lab "lab up failed"; t_done; }
common=(--models m1:1000,m2:1000,m3:1000 --mem-mb 2500 --load-ms 3000 --decode-ms-per-tok 5)
lab_start_node 1 "${common[@]}" --resident m1 --slots 2
lab_start_node 2 "${common[@]}" --resident m3
lab_start_node 3 "${common[@]}" --resident m2 --slots 1 --mem-mb 1500
set -- $LAB_VIP4_LIST
VIP1=$1 VIP2=$2
cfg=$E2E_TMP/aibld.yaml
config() { # COLD-START-AFTER-MS
	{
		lab_yaml_head
		cat <<-EOF2
			ai:
			  cold_start_after_ms: $1
			  background_load_ms: 30000
			  background_unload_ms: 3000
			services:
			  - {name: first, vip: $VIP1, port: $LAB_SIM_PORT, policy: ai, model: m1, memory_mb: 1000}
			  - {name: second, vip: $VIP2, port: $LAB_SIM_PORT, policy: ai, model: m2, memory_mb: 1000}
		EOF2
		lab_yaml_nodes 100 100 100
	} >"$cfg"
}
config 0
e2e_restart_aibld "$cfg" || { e2e_fail_log both_waits_known "aibld not up"; t_done; }

# MODEL of n2's background load in /v1/status ("" none)
load_model() {
	lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n2'][0]
print(n.get('load', {}).get('model', ''))"
}
# the services' ai_wait_ms, "first second"
waits() {
	lab_api /v1/status | python3 -c "import json,sys
s = {s['name']: s['ai_wait_ms'] for s in json.load(sys.stdin)['services']}
print(round(s['first']), round(s['second']))"
}
waits_known() { set -- $(waits); [ "$1" -gt 0 ] && [ "$2" -gt 0 ]; }
resident_n2() {
	lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n2'][0]
print(' '.join(sorted(n['models'])))"
}
has_m2() { [ "$(resident_n2)" = "m2 m3" ]; }

flood() { # NODE MODEL SESSIONS TOKENS
	lab_run cli "$AIBL_BUILD/aibl-loadgen" chat --target "http://$(lab_node "$1" IP4):$LAB_SIM_PORT" \
		--model "$2" --sessions "$3" --turns 1 --rate 0 --context-tokens 100 --output-tokens "$4" \
		--no-progress >/dev/null 2>&1 &
	floods+=($!)
}
floods=()
flood 1 m1 20 300
flood 3 m2 16 300
# the first answers end at 1.5 s: the nodes' slots and hold times are
# measured, so are the queues' waits (about 21 s for m2's 14 queued behind
# one slot, 12 s for m1's 16 behind two); both stay saturated 10 s more
lab_wait 10 waits_known
w=$(waits)
echo "# least waits at the resident nodes, first and second: $w ms; n2's load '$(load_model)'"
set -- $w
t_check both_waits_known [ "$1" -gt 0 -a "$2" -gt "$1" -a -z "$(load_model)" ]

config 1000
kill -HUP "$(lab_pid aibld)"
got_load() { [ -n "$(load_model)" ]; }
lab_wait 10 got_load
m=$(load_model)
echo "# n2 loads '$m'"
t_check neediest_loads [ "$m" = m2 ]
lab_wait 10 has_m2
sleep 3
r="$(resident_n2)|$(load_model)"
echo "# n2's models and load 3 s after m2 was resident: $r"
t_check no_second_load [ "$r" = "m2 m3|" ]

# m2's flood ends (24 s from its start): n3 carries m2 alone, and n1
# saturates again with a second flood of m1
n3_idle() {
	lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n3'][0]
sys.exit(0 if n['in_flight'] == 0 else 1)"
}
lab_wait 40 n3_idle
flood 1 m1 30 300
has_m1() { [ "$(resident_n2)" = "m1 m3" ]; }
lab_wait 30 has_m1
r=$(resident_n2)
said=$(grep -c "model 'm2', which this balancer loaded there .* is unloaded" "$LAB_DIR/aibld.log")
echo "# n2's models after m2's demand ended: '$r'; its take-back said $said times"
t_check room_given_back [ "$r|$said" = "m1 m3|1" ]
kill "${floods[@]}" 2>/dev/null
wait "${floods[@]}" 2>/dev/null
grep -E "background|loads model|resident .* after|unload" "$LAB_DIR/aibld.log" | sed 's/^/# aibld: /'
t_done
