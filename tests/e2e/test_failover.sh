#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# A node dies mid-test (its NIC goes down) under new-connection and
# kept-alive load, then comes back.
#  - new connections stop going to it within the bound: poll interval x
#    failure threshold + one poll = 400 ms x 2 + 400 ms = 1200 ms after the
#    failure, plus 500 ms for scheduling delays on a busy 2-core machine
#    (the generator's own clock included): every failed request started
#    within 1700 ms of the failure;
#  - its established flows are re-steered (the resteer counter moves and its
#    kept-alive connections carry on on other nodes);
#  - nothing else is disturbed: kept-alive connections on the other nodes
#    see no failure and no reconnect;
#  - it returns after recovery (new connections reach it again).
. "$(dirname "$0")/e2e.sh"
CASES=(marked_down new_conns_stop_within_bound resteered others_undisturbed its_conns_continue
	returns_after_recovery)
e2e_need "${CASES[@]}"
e2e_lab fo --nodes 3 --clients 64 || { t_fail lab "lab up failed"; t_done; }
for i in 1 2 3; do lab_start_node "$i" --models m1:1000; done
cfg=$E2E_TMP/aibld.yaml
{
	LAB_POLL_MS=400 LAB_POLL_TIMEOUT_MS=300 LAB_FAIL_AFTER=2 LAB_RISE_AFTER=2 lab_yaml_head
	echo "services:"
	echo "  - {name: web, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: wrr}"
	lab_yaml_nodes 100 100 100
} >"$cfg"
e2e_restart_aibld "$cfg" || { e2e_fail_log marked_down "aibld not up"; t_done; }
BOUND_MS=1700
W=http://$LAB_VIP4:$LAB_SIM_PORT
node_state() {
	lab_api /v1/status | python3 -c "import json,sys; print([n['state'] for n in json.load(sys.stdin)['nodes'] if n['name'] == '$1'][0])"
}
state_is() { [ "$(node_state "$1")" = "$2" ]; }

lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --rate 200 --conns 64 --duration 8 \
	--timeout-ms 1000 --json --no-progress --samples "$E2E_TMP/new.tsv" >"$E2E_TMP/new.json" \
	2>"$E2E_TMP/new.err" &
pid_new=$!
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --keepalive --conns 24 --rate 120 \
	--duration 8 --timeout-ms 1000 --json --no-progress --samples "$E2E_TMP/ka.tsv" \
	>"$E2E_TMP/ka.json" 2>"$E2E_TMP/ka.err" &
pid_ka=$!
sleep 2
kill_ms=$(date +%s%3N)
ip -n "$LAB_NODE_2_NS" link set eth0 down
if lab_wait 5 state_is n2 down; then
	t_pass marked_down
	echo "# n2 marked down $(($(date +%s%3N) - kill_ms)) ms after its NIC went down"
else
	e2e_fail_log marked_down "n2 is $(node_state n2)"
fi
sleep 2
ip -n "$LAB_NODE_2_NS" link set eth0 up
lab_wait 8 state_is n2 up
wait $pid_new
wait $pid_ka

start_new=$(e2e_json "$E2E_TMP/new.json" "int(j['start_unix_ms'])")
start_ka=$(e2e_json "$E2E_TMP/ka.json" "int(j['start_unix_ms'])")
# failed new connections: the latest start relative to the failure
late=$(awk -F'\t' -v s="$start_new" -v k="$kill_ms" '!/^#/ && $7 == 0 {
	t = s + $1 - k; if (t > m) m = t; n++ } END { printf "%d %d\n", n, m }' "$E2E_TMP/new.tsv")
set -- $late
if [ "$1" -gt 0 ] && [ "$2" -le $BOUND_MS ]; then
	t_pass new_conns_stop_within_bound
	echo "# $1 new connections failed, the last started $2 ms after the failure (bound $BOUND_MS ms)"
else
	t_fail new_conns_stop_within_bound "$1 failed, the last started $2 ms after the failure (bound $BOUND_MS ms)"
	awk -F'\t' -v s="$start_new" -v k="$kill_ms" -v b=$BOUND_MS '!/^#/ && $7 == 0 && s + $1 - k > b {
		printf "#   late failure: started %d ms after, node %s, status %s, e2e %.0f ms\n", s + $1 - k, $2, $6, $9 }' \
		"$E2E_TMP/new.tsv" | head -20
	echo "#   failure at $(date -d "@$((kill_ms / 1000))" +%T).$(printf %03d $((kill_ms % 1000)))"
	grep -w n2 "$LAB_DIR/aibld.log" | tail -n 12 | sed 's/^/    aibld: /'
fi
resteer=$(lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j stats |
	python3 -c '
import json, sys
def find(o):
    if isinstance(o, dict):
        if o.get("name") == "resteer" and "value" in o:
            return o["value"]
        if isinstance(o.get("resteer"), int):
            return o["resteer"]
        o = list(o.values())
    if isinstance(o, list):
        for v in o:
            r = find(v)
            if r is not None:
                return r
    return None
print(find(json.load(sys.stdin)))')
echo "# resteer=$resteer"; t_check resteered [ "${resteer:-0}" -gt 0 ]
# kept-alive connections by the node that served them before the failure
summary=$(awk -F'\t' -v s="$start_ka" -v k="$kill_ms" '!/^#/ {
	t = s + $1 - k; c = $4
	if (t < 0 && !(c in first)) first[c] = $2
	if (t >= 0) { bad[c] += ($7 == 0) + $14; if ($7 == 1 && t > 1000) later[c] = $2 }
} END {
	for (c in first) {
		if (first[c] == "n2") { on2++; if (later[c] != "" && later[c] != "n2") moved++ }
		else { others++; dist += bad[c] }
	}
	printf "%d %d %d %d\n", on2, moved, others, dist
}' "$E2E_TMP/ka.tsv")
set -- $summary
echo "# kept-alive connections: $1 on n2 ($2 carried on elsewhere), $3 on n1/n3 with $4 failures+reconnects"
t_check others_undisturbed [ "$3" -gt 0 -a "$4" -eq 0 ]
if [ "$1" -eq 0 ]; then
	t_skip its_conns_continue "no kept-alive connection happened to be on n2"
else
	t_check its_conns_continue [ "$2" -eq "$1" ]
fi
lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --requests 600 --conns 8 --json \
	--no-progress >"$E2E_TMP/after.json" 2>/dev/null
s=$(e2e_share "$E2E_TMP/after.json" n2)
if e2e_within "$s" 33.3 8; then t_pass returns_after_recovery; else
	e2e_fail_log returns_after_recovery "n2 share after recovery $s% (state $(node_state n2))"
fi
t_done
