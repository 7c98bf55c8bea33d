#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# A model loaded or unloaded on a node reaches the controller in well under
# its poll interval: the agent watches the model lists between scrapes
# (--watch-interval-ms) and asks aibld to poll now (--notify, POST
# /v1/nodes/NAME/poll). Here aibld polls every 20 s and the agents scrape
# every 60 s, so only the watch and the ask can move the service within 5 s:
# - unload_seen: n1 unloads the service's model; the service drops n1;
# - load_seen: n1 loads it again; the service takes n1 back;
# - poll_refused: an unknown node gets 404, GET gets 405;
# - poll_flood: 300 asks from the client host make at most one early round
#   per 2 s (a tenth of the interval; one more already due when they begin)
#   and leave aibld answering, both nodes up.
. "$(dirname "$0")/e2e.sh"
CASES=(unload_seen load_seen poll_refused poll_flood)
e2e_need "${CASES[@]}"
e2e_lab notify --nodes 2 --clients 4 || { t_fail lab "lab up failed"; t_done; }
for i in 1 2; do
	# the server answers before the agent's first scrape: the next is a
	# minute away
	lab_spawn "n$i" "sim-n$i" "$AIBL_BUILD/aibl-simnode" --listen "[::]:$LAB_SIM_PORT" \
		--node-name "n$i" --models m-a:1000 --resident m-a --load-ms 200
	lab_wait_http "n$i" "http://127.0.0.1:$LAB_SIM_PORT/v1/models" 10
	LAB_SCRAPE_MS=60000 LAB_WATCH_MS=50 lab_start_agent "$i"
done
set -- $LAB_VIP4_LIST
cfg=$E2E_TMP/aibld.yaml
{
	LAB_POLL_MS=20000 LAB_RISE_AFTER=1 lab_yaml_head
	cat <<-EOF2
		services:
		  - {name: a, vip: $1, port: $LAB_SIM_PORT, policy: ai, model: m-a}
	EOF2
	lab_yaml_nodes 100 100
} >"$cfg"
e2e_restart_aibld "$cfg" || { e2e_fail_log unload_seen "aibld not up"; t_done; }

serving() { e2e_serving a; }
serving_is() { [ "$(serving)" = "$1" ]; }
metric() { lab_api /metrics | awk -v m="$1" '$1 == m { print $2 }'; }
model() { # NODE load|unload
	lab_run "n$1" curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' -d '{"lora_name": "m-a"}' \
		"http://127.0.0.1:$LAB_SIM_PORT/v1/${2}_lora_adapter"
}

lab_wait 5 serving_is "n1 n2" || e2e_fail_log unload_seen "service nodes '$(serving)', want n1 n2"
[ "$(model 1 unload)" = 200 ] || t_fail unload_seen "unload on n1 refused"
t0=$(date +%s%N)
if lab_wait 5 serving_is n2; then
	echo "# unloaded on n1: the service dropped it after $((($(date +%s%N) - t0) / 1000000)) ms (polls every 20 s)"
	t_pass unload_seen
else
	e2e_fail_log unload_seen "service nodes '$(serving)' 5 s after the unload, want n2"
fi
[ "$(model 1 load)" = 200 ] || t_fail load_seen "load on n1 refused"
if lab_wait 5 serving_is "n1 n2"; then
	t_pass load_seen
else
	e2e_fail_log load_seen "service nodes '$(serving)' 5 s after the load, want n1 n2"
fi

c404=$(lab_api /v1/nodes/nope/poll -X POST -o /dev/null -w '%{http_code}')
c405=$(lab_api /v1/nodes/n1/poll -o /dev/null -w '%{http_code}')
echo "# poll of an unknown node: $c404, GET: $c405"
t_check poll_refused [ "$c404" = 404 -a "$c405" = 405 ]

asked0=$(metric aibl_controller_polls_asked_total)
early0=$(metric aibl_controller_polls_early_total)
args=()
for i in $(seq 300); do
	args+=(-o /dev/null "http://$LAB_LB_IP4:${LAB_API##*:}/v1/nodes/n1/poll")
done
t0=$SECONDS
lab_run cli curl -s --max-time 20 -X POST "${args[@]}" || true
most=$(((SECONDS - t0) / 2 + 2))
asked=$(($(metric aibl_controller_polls_asked_total) - asked0))
early=$(($(metric aibl_controller_polls_early_total) - early0))
up=$(lab_api /v1/status | python3 -c "import json,sys
print(' '.join(n['name'] for n in json.load(sys.stdin)['nodes'] if n['state'] == 'up'))")
echo "# 300 asks from the client host: $asked taken, $early early rounds (at most $most); nodes up: $up"
t_check poll_flood [ "$asked" -ge 300 -a "$early" -le "$most" -a "$up" = "n1 n2" ]
t_done
