#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# aibl-loadgen against two real aibl-simnode servers on loopback (ports
# 21101-21102): the chat workload completes every turn with cache hits from
# the second turn on, the counts per node add up, and the http workload
# keeps connections alive when asked and opens one per request otherwise;
# a third on [::1]:21103 takes a chat run from IPv6 sources only.
. "$(dirname "$0")/../lib/lib.sh"
B=$AIBL_BUILD
pids=()
tmp=$(mktemp -d)
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

for i in 1 2; do
	"$B/aibl-simnode" --listen "127.0.0.1:2110$i" --node-name "sim$i" \
		--models m1:1000,m2:1000 --decode-ms-per-tok 1 2>"$tmp/sim$i.log" &
	pids+=($!)
done
for i in 1 2; do
	for _ in $(seq 50); do
		curl -sf "http://127.0.0.1:2110$i/health" >/dev/null && break
		sleep 0.1
	done
done

# json FILE PYTHON-EXPR: evaluate EXPR with j = the parsed file
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

t_before=$(date +%s%3N)
"$B/aibl-loadgen" chat --target http://127.0.0.1:21101,http://127.0.0.1:21102 \
	--model m1:3 --model m2:1 --sessions 12 --turns 3 --rate 50 --context-tokens 400 \
	--output-tokens 8 --think-ms 10 --seed 7 --json --no-progress \
	--samples "$tmp/samples.tsv" >"$tmp/chat.json" 2>"$tmp/chat.err"
rc=$?
t_after=$(date +%s%3N)
if [ $rc -eq 0 ] && [ "$(json "$tmp/chat.json" "j['total']['ok']")" = 36 ]; then
	t_pass chat_all_turns
else
	t_fail chat_all_turns "rc $rc: $(head -c 300 "$tmp/chat.err") $(json "$tmp/chat.json" "j['first_error']" 2>&1)"
fi
# sessions alternate between the two targets and keep them: every turn
# after the first finds its prefix (context + earlier turns) cached
# the start to the millisecond, between the wall clock before and after
# the run: tests add the samples' t_start_ms to it (written as a real of
# ten digits it was whole seconds, up to 999 ms early)
t_check chat_start_unix_ms [ "$(json "$tmp/chat.json" \
	"type(j['start_unix_ms']) is int and $t_before <= j['start_unix_ms'] <= $t_after")" = True ]
t_check chat_per_node_sum [ "$(json "$tmp/chat.json" "sum(n['requests'] for n in j['nodes'])")" = 36 ]
t_check chat_models [ "$(json "$tmp/chat.json" "sorted((m['name'], m['requests'] > 0) for m in j['models'])")" = "[('m1', True), ('m2', True)]" ]
hits=$(awk -F'\t' '!/^#/ && $5 > 0 && $12 == 0' "$tmp/samples.tsv" | wc -l)
t_check chat_later_turns_hit_cache [ "$hits" -eq 0 ]
first=$(awk -F'\t' '!/^#/ && $5 == 0 && $12 > 0' "$tmp/samples.tsv" | wc -l)
t_check chat_first_turns_cold_cache [ "$first" -eq 0 ]
t_check chat_samples_lines [ "$(grep -vc '^#' "$tmp/samples.tsv")" = 36 ]
# same seed, same workload: the per-model request counts repeat
"$B/aibl-loadgen" chat --target http://127.0.0.1:21101,http://127.0.0.1:21102 \
	--model m1:3 --model m2:1 --sessions 12 --turns 3 --rate 50 --context-tokens 400 \
	--output-tokens 8 --think-ms 10 --seed 7 --json --no-progress >"$tmp/chat2.json" 2>/dev/null
t_check chat_deterministic [ "$(json "$tmp/chat.json" "[m['requests'] for m in j['models']]")" = \
	"$(json "$tmp/chat2.json" "[m['requests'] for m in j['models']]")" ]
# a calm warm-up: every arrival is a burst of 4, but the first 4 sessions
# come one at a time (seed 7 at 4/s spaces them over 50 ms apart) and the next 4
# together
"$B/aibl-loadgen" chat --target http://127.0.0.1:21101,http://127.0.0.1:21102 \
	--sessions 8 --turns 1 --rate 4 --burst-prob 1 --burst-size 4 --calm-sessions 4 \
	--context-tokens 100 --output-tokens 4 --seed 7 --json --no-progress \
	--samples "$tmp/calm.tsv" >"$tmp/calm.json" 2>/dev/null
t_check chat_calm_sessions awk -F'\t' '!/^#/ { t[$4] = $1 } END {
	for (i = 1; i < 4; i++) if (t[i] - t[i - 1] < 50) exit 1
	for (i = 5; i < 8; i++) if (t[i] - t[4] > 20 || t[4] - t[i] > 20) exit 1
	exit t[4] - t[3] < 50 }' "$tmp/calm.tsv"
t_check chat_calm_sessions_json [ "$(json "$tmp/calm.json" "j['config']['calm_sessions']")" = 4 ]

# --keepalive chat: each session keeps its connection between its turns
# (24 sessions, each its own address, waiting between turns with few
# turns in flight: libcurl's default cache closed some)
"$B/aibl-loadgen" chat --target http://127.0.0.1:21101 --model m1 --source 127.0.0.2-127.0.0.25 \
	--sessions 24 --turns 6 --rate 50 --think-ms 50 --keepalive --context-tokens 100 \
	--output-tokens 4 --seed 7 --json --no-progress >"$tmp/chatka.json" 2>/dev/null
t_check chat_keepalive_no_reconnect [ "$(json "$tmp/chatka.json" "(j['total']['ok'], j['total']['reconnects'])")" = "(144, 0)" ]

"$B/aibl-loadgen" http --target http://127.0.0.1:21101 --keepalive --conns 4 --requests 400 \
	--json --no-progress >"$tmp/ka.json" 2>/dev/null
t_check http_keepalive_no_reconnect [ "$(json "$tmp/ka.json" "(j['total']['ok'], j['total']['reconnects'])")" = "(400, 0)" ]
# at a fixed rate every kept-alive connection takes its turn: about equal
# shares (a turn whose connection is still busy, on a loaded machine, goes
# to the next idle one, so exact equality would test the machine's load)
"$B/aibl-loadgen" http --target http://127.0.0.1:21101 --keepalive --conns 4 --rate 100 \
	--requests 120 --json --no-progress --samples "$tmp/ka.tsv" >/dev/null 2>&1
t_check http_keepalive_turns awk -F'\t' '!/^#/ {n[$4]++} END {
	k = 0; for (c in n) { k++; if (n[c] < 24 || n[c] > 36) exit 1 }
	exit k != 4 }' "$tmp/ka.tsv"
"$B/aibl-loadgen" http --target http://127.0.0.1:21101,http://127.0.0.1:21102 --conns 4 \
	--requests 400 --rate 2000 --json --no-progress >"$tmp/nc.json" 2>/dev/null
t_check http_new_conns_spread [ "$(json "$tmp/nc.json" "sorted((n['name'], n['requests']) for n in j['nodes'])")" = "[('sim1', 200), ('sim2', 200)]" ]

# a dead target is a failure with a reason and exit status 1
"$B/aibl-loadgen" http --target http://127.0.0.1:21109 --requests 3 --json --no-progress \
	>"$tmp/dead.json" 2>/dev/null
rc=$?
t_check http_dead_target_fails [ "$rc/$(json "$tmp/dead.json" "j['total']['failed']")" = 1/3 ]
"$B/aibl-loadgen" chat --sessions 0 >/dev/null 2>&1
t_check usage_error_exit_2 [ $? -eq 2 ]

# --source must hold an address of each URL's family, and only of the URLs
# a request goes to: models with a URL of their own never use --target
# (an IPv6-only run was refused for the default target's IPv4)
"$B/aibl-simnode" --listen "[::1]:21103" --node-name sim6 --models m1:1000 2>"$tmp/sim6.log" &
pids+=($!)
for _ in $(seq 50); do
	curl -sf "http://[::1]:21103/health" >/dev/null && break
	sleep 0.1
done
"$B/aibl-loadgen" chat --model "m1=http://[::1]:21103" --source ::1 --sessions 2 --turns 2 \
	--rate 50 --think-ms 10 --context-tokens 100 --output-tokens 4 --json --no-progress \
	>"$tmp/chat6.json" 2>"$tmp/chat6.err"
t_check chat_ipv6_sources_only [ "$?/$(json "$tmp/chat6.json" "j['total']['ok']")" = 0/4 ]
"$B/aibl-loadgen" chat --model "m1=http://[::1]:21103" --source 127.0.0.2 --sessions 2 \
	--no-progress >/dev/null 2>"$tmp/chat6.err"
t_check chat_source_family_refused [ "$?|$(cat "$tmp/chat6.err")" = "2|aibl-loadgen error: --source has no IPv6 address for http://[::1]:21103" ]
t_done
