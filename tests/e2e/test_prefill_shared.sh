#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Whether a node's prefills take turns on its compute, read from the engine's
# own figures through the real path (simnode's vLLM histograms, the agent's
# report, aibld's poll):
#   n1 --shared-prefill (one prefill at a time, as on a GPU)
#   n2 each slot prefills on its own (the simulator's default)
# - the same burst of long prompts straight at each node: aibld marks n1
#   prefill-shared (status ai_prefill_shared, with the wait it measured)
#   and never n2;
# - a session pinned to n1 by a cache hint carries a spill scaled by the
#   contention measured there (aiblctl pin list: spill_ms over
#   pin_spill_ms), one pinned to n2 pin_spill_ms;
# - from then on a new session's prompt is priced at both nodes (n1 marked,
#   n2 as a node of the same fleet): its 3,000 tokens at the node's own
#   speed, in aibld's status (ai_prefill_ms) and in the data plane's
#   aibl_cost (aiblctl backend list: prefill_ms).
. "$(dirname "$0")/e2e.sh"
CASES=(shared_marked parallel_not_marked pin_spill_scaled prompt_priced no_failures)
e2e_need "${CASES[@]}"
e2e_lab prefill --nodes 2 --clients 32 || { t_fail lab "lab up failed"; t_done; }
common=(--models m1:1000 --mem-mb 1500 --slots 8 --decode-ms-per-tok 2)
lab_start_node 1 "${common[@]}" --resident m1 --shared-prefill
lab_start_node 2 "${common[@]}" --resident m1
set -- $LAB_VIP4_LIST
VIP1=$1
cfg=$E2E_TMP/aibld.yaml
{
	lab_yaml_head
	cat <<-EOF2
		services:
		  - {name: chat-m1, vip: $VIP1, port: $LAB_SIM_PORT, policy: ai, model: m1}
	EOF2
	lab_yaml_nodes 100 100
} >"$cfg"
e2e_restart_aibld "$cfg" || { e2e_fail_log shared_marked "aibld not up"; t_done; }
sleep 1
failed=0

figure() { # NODE KEY: a node's field of aibld's status
	lab_api /v1/status | python3 -c "import json,sys
n = [n for n in json.load(sys.stdin)['nodes'] if n['name'] == '$1'][0]
print(n['$2'])"
}
burst() { # NODE SEED: 16 first turns of 3,000 tokens at once, straight at the node
	local ip
	eval "ip=\$LAB_NODE_${1}_IP4"
	lab_run cli "$AIBL_BUILD/aibl-loadgen" chat --target "http://$ip:$LAB_SIM_PORT" \
		--model m1 --sessions 16 --turns 1 --rate 0 --context-tokens 3000 --output-tokens 4 \
		--seed "$2" --no-progress >/dev/null 2>"$E2E_TMP/burst-n$1.err"
}
shared() { [ "$(figure n1 ai_prefill_shared)" = True ]; }

# three bursts a second apart: each is a few report windows of prefills that
# waited for each other (n1) or did not (n2)
for s in 1 2 3; do
	burst 1 "$s" &
	pid=$!
	burst 2 "$s" || failed=$((failed + 1))
	# not a bare wait: the lab's daemons are this shell's jobs too
	wait "$pid" || failed=$((failed + 1))
	sleep 1
done
echo "# n1: shared $(figure n1 ai_prefill_shared), wait $(figure n1 ai_prefill_wait_ms) ms;" \
	"n2: shared $(figure n2 ai_prefill_shared), wait $(figure n2 ai_prefill_wait_ms) ms"
if lab_wait 5 shared; then t_pass shared_marked; else
	e2e_fail_log shared_marked "n1 not marked: wait $(figure n1 ai_prefill_wait_ms) ms"
fi
t_check parallel_not_marked [ "$(figure n2 ai_prefill_shared)" = False ]

# a server's cache hint for a client at each node: the pin at n1 carries
# pin_spill_ms (500) scaled by the contention measured there, n2's 500
lab_hint 1 10.10.1.1 "$VIP1" "$LAB_SIM_PORT" >/dev/null
lab_hint 2 10.10.1.2 "$VIP1" "$LAB_SIM_PORT" >/dev/null
spills() {
	lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j pin list 2>/dev/null |
		python3 -c "import json,sys
j = json.load(sys.stdin)
pins = j['pins'] if isinstance(j, dict) else j
s = {p['backend']: p['spill_ms'] for p in pins}
print(s.get('n1', 0), s.get('n2', 0))" 2>/dev/null
}
two_pins() { set -- $(spills); [ "${1:-0}" -gt 0 ] && [ "${2:-0}" -gt 0 ]; }
lab_wait 5 two_pins
spill=$(spills)
echo "# pin spill at n1 and n2: ${spill:-none} ms"
set -- $spill
t_check pin_spill_scaled [ "${1:-0}" -gt 500 -a "${2:-0}" -eq 500 ]

# 3,000-token prompts at 2 ms + 0.05 ms a token (+-10 %): about 150 ms each
dp_prefill() { e2e_backend "$1" "b['prefill_ms']"; } # NODE: aibl_cost.prefill_ms
in_range() { python3 -c "import sys; sys.exit(not 100 <= float('$1') <= 250)" 2>/dev/null; }
priced() { in_range "$(dp_prefill n1)" && in_range "$(dp_prefill n2)"; }
lab_wait 5 priced
echo "# a prompt's price: n1 $(figure n1 ai_prefill_ms) ms (data plane $(dp_prefill n1))," \
	"n2 $(figure n2 ai_prefill_ms) ms (data plane $(dp_prefill n2))"
t_check prompt_priced priced

if [ $failed -eq 0 ]; then t_pass no_failures; else
	t_fail no_failures "$failed workloads failed: $(cat "$E2E_TMP"/*.err | grep -m1 -i error)"
fi
t_done
