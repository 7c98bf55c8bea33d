#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# Faults injected into a running lab (3 nodes, wrr, polls every 200 ms,
# timeout 150 ms, down after 3 failures, up after 2 successes) while
# kept-alive and new-connection traffic runs through the VIP. Node n3's
# agent is fronted by a fault-injecting proxy (python3, in n3's netns) that
# answers like the real agent, or: not at all (process gone), slowly (1 s,
# beyond the poll timeout), headers and half a body then nothing (hang),
# garbage, a report naming another node, or alternately good and garbage
# (flapping). Also: n3's model server killed behind its live agent; a bad
# config on SIGHUP; the bpffs directory removed under the running
# controller; aibld kill -9 in the middle of a storm of table rewrites.
#
# For each fault the suite prints one "# FAULT ..." line: what was
# injected, what the controller did, time to detect and to recover, and
# connections lost (kept-alive connections that failed or had to
# reconnect, new connections that failed). Pass/fail checks only what must
# hold whatever the timing: the fault is detected and the node recovers,
# the controller survives, nodes that stayed healthy lose nothing, the
# data plane keeps a complete table. An agent fault in front of a live
# model server makes n3 "unhealthy" (no new flows, established ones
# continue), never "down": its kept-alive connections must lose no request
# and never reconnect.
. "$(dirname "$0")/e2e.sh"
CASES=(unreachable slow hang garbage foreign flapping server_down bad_config bpffs_removed
	kill9_mid_update)
e2e_need "${CASES[@]}"
e2e_lab fa --nodes 3 --clients 64 || { t_fail lab "lab up failed"; t_done; }
for i in 1 2; do lab_start_node "$i" --models m1:1000; done
lab_spawn n3 sim-n3 "$AIBL_BUILD/aibl-simnode" --listen "[::]:$LAB_SIM_PORT" --node-name n3 \
	--models m1:1000
LAB_AGENT_PORT=7072 lab_start_agent 3

MODE=$E2E_TMP/n3.mode
echo ok >"$MODE"
cat >"$E2E_TMP/fault_agent.py" <<'EOF'
# The agent's API in front of the real agent, with faults on demand.
import http.server, json, os, socketserver, sys, time, urllib.request

MODE, UP, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        mode = open(MODE).read().strip()
        try:
            body = urllib.request.urlopen(UP + self.path, timeout=2).read()
        except Exception:
            body = b""
        if mode == "slow":
            time.sleep(1.0)
        elif mode == "garbage":
            body = b'{"schema": 1, "node": [garbage'
        elif mode == "foreign" and body:
            j = json.loads(body)
            j["node"] = "n1"
            body = json.dumps(j).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "hang":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(5)
            return
        self.wfile.write(body)

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

S(("0.0.0.0", PORT), H).serve_forever()
EOF
proxy_start() {
	lab_spawn n3 fault-n3 python3 "$E2E_TMP/fault_agent.py" "$MODE" "http://127.0.0.1:7072" \
		"$LAB_AGENT_PORT"
	lab_wait_http n3 "http://127.0.0.1:$LAB_AGENT_PORT/healthz" 5
}
proxy_start

cfg=$E2E_TMP/aibld.yaml
write_cfg() { # WEIGHTS...
	{
		lab_yaml_head
		echo "services:"
		echo "  - {name: web, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: wrr}"
		lab_yaml_nodes "$@"
	} >"$cfg.new" && mv "$cfg.new" "$cfg"
}
write_cfg 100 100 100
e2e_restart_aibld "$cfg" || { e2e_fail_log unreachable "aibld not up"; t_done; }
W=http://$LAB_VIP4:$LAB_SIM_PORT

now_ms() { date +%s%3N; }
node_state() {
	lab_api /v1/status 2>/dev/null |
		python3 -c "import json,sys; print([n['state'] for n in json.load(sys.stdin)['nodes'] if n['name'] == '$1'][0])" \
			2>/dev/null
}
state_is() { [ "$(node_state "$1")" = "$2" ]; }
aibld_alive() { [ -n "$(lab_pid aibld)" ]; }
metric() { # NAME{LABELS}: value from /metrics
	lab_api /metrics 2>/dev/null | awk -v m="$1" '$1 == m { print $2 }'
}

# traffic TAG SECONDS: kept-alive connections (12) and new connections
traffic() {
	lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --keepalive --conns 12 \
		--rate 60 --duration "$2" --timeout-ms 1000 --json --no-progress \
		>"$E2E_TMP/$1.ka.json" 2>/dev/null &
	TR_KA=$!
	lab_loadgen http --target "$W" --source "$LAB_CLIENT_ADDRS4" --rate 40 --conns 16 \
		--duration "$2" --timeout-ms 1000 --json --no-progress >"$E2E_TMP/$1.new.json" \
		2>/dev/null &
	TR_NEW=$!
}
# lost TAG: "ka_failed ka_reconnects new_failed" (after traffic_wait)
traffic_wait() { wait "$TR_KA" "$TR_NEW"; }
lost() {
	echo "$(e2e_json "$E2E_TMP/$1.ka.json" "j['total']['failed']") $(e2e_json \
		"$E2E_TMP/$1.ka.json" "j['total']['reconnects']") $(e2e_json "$E2E_TMP/$1.new.json" \
		"j['total']['failed']")"
}

# agent_fault CASE MODE: inject, time detection (n3 "unhealthy": its model
# server still answers), hold, restore, time recovery (n3 "up" again),
# count connections lost: none of the kept-alive ones may fail or reconnect
agent_fault() {
	local c=$1 m=$2 t0 det rec t1 l err e why down=no
	lab_wait 10 state_is n3 up || { e2e_fail_log "$c" "n3 not up before the fault"; return; }
	traffic "$c" 6
	sleep 1
	t0=$(now_ms)
	if [ "$m" = unreachable ]; then lab_stop fault-n3 KILL; else echo "$m" >"$MODE"; fi
	if lab_wait 6 state_is n3 unhealthy; then det=$(($(now_ms) - t0)); else det=-1; fi
	err=$(lab_api /v1/status | python3 -c "import json,sys; n=[n for n in json.load(sys.stdin)['nodes'] if n['name'] == 'n3'][0]; print(n.get('reason', '') + '|' + n.get('last_error', ''))")
	why=$(metric "aibl_node_state{node=\"n3\",state=\"unhealthy\",reason=\"${err%%|*}\"}")
	e=${err#*|}
	for _ in 1 2 3 4 5; do state_is n3 down && down=yes; sleep 0.2; done
	t1=$(now_ms)
	echo ok >"$MODE"
	[ "$m" = unreachable ] && proxy_start
	if lab_wait 8 state_is n3 up; then rec=$(($(now_ms) - t1)); else rec=-1; fi
	traffic_wait
	l=$(lost "$c")
	echo "# FAULT agent-$m: controller marked n3 unhealthy (reason ${err%%|*}: '${e:0:70}'), detect ${det} ms, recover ${rec} ms after repair; lost (kept-alive failed, reconnects, new failed): $l"
	set -- $l
	if [ "$det" -ge 0 ] && [ "$rec" -ge 0 ] && aibld_alive && [ "$why" = 1 ] &&
		[ "$down" = no ] && [ "$1 $2" = "0 0" ]; then
		t_pass "$c"
	else
		e2e_fail_log "$c" "detect $det recover $rec alive $(aibld_alive && echo yes || echo no) metric '$why' went down $down lost $l"
	fi
}

agent_fault unreachable unreachable
agent_fault slow slow
agent_fault hang hang
agent_fault garbage garbage
agent_fault foreign foreign

# flapping: good and garbage alternate every 250 ms (fewer failures in a
# row than fail_after), then every 1.5 s (long enough to trip it)
# (n3 counted "out" when it leaves "up"; it must never be "down")
lab_wait 10 state_is n3 up
traffic flap 9
downs_fast=0 downs_slow=0 prev=up went_down=no
flap_end=$((SECONDS + 3))
while [ $SECONDS -lt $flap_end ]; do
	echo garbage >"$MODE"; sleep 0.25; echo ok >"$MODE"; sleep 0.25
	s=$(node_state n3); [ "$s" != up ] && [ "$prev" = up ] && downs_fast=$((downs_fast + 1)); prev=$s
	[ "$s" = down ] && went_down=yes
done
for k in 1 2; do
	echo garbage >"$MODE"; sleep 1.5
	s=$(node_state n3); [ "$s" != up ] && [ "$prev" = up ] && downs_slow=$((downs_slow + 1)); prev=$s
	[ "$s" = down ] && went_down=yes
	echo ok >"$MODE"; sleep 1.5
	s=$(node_state n3); prev=$s
done
echo ok >"$MODE"
lab_wait 8 state_is n3 up && rec=ok || rec=no
traffic_wait
l=$(lost flap)
echo "# FAULT agent-flapping: 250 ms flaps -> n3 left up $downs_fast times; 1.5 s flaps -> unhealthy $downs_slow of 2 (down: $went_down); recovered: $rec; lost: $l"
set -- $l
if [ "$downs_fast" -eq 0 ] && [ "$downs_slow" -ge 1 ] && [ "$rec" = ok ] && aibld_alive &&
	[ "$went_down" = no ] && [ "$1 $2" = "0 0" ]; then
	t_pass flapping
else
	e2e_fail_log flapping "fast $downs_fast slow $downs_slow down $went_down recovered $rec lost $l"
fi

# the model server dies behind a live agent: the agent reports stale
lab_wait 10 state_is n3 up
traffic srv 6
sleep 1
t0=$(now_ms)
lab_stop sim-n3 KILL
if lab_wait 8 state_is n3 down; then det=$(($(now_ms) - t0)); else det=-1; fi
sleep 1
t1=$(now_ms)
lab_spawn n3 sim-n3 "$AIBL_BUILD/aibl-simnode" --listen "[::]:$LAB_SIM_PORT" --node-name n3 \
	--models m1:1000
if lab_wait 10 state_is n3 up; then rec=$(($(now_ms) - t1)); else rec=-1; fi
traffic_wait
l=$(lost srv)
echo "# FAULT model-server-down: n3 marked down, detect ${det} ms, recover ${rec} ms after restart; lost (connections on the dead server cannot survive): $l"
if [ "$det" -ge 0 ] && [ "$rec" -ge 0 ] && aibld_alive; then t_pass server_down; else
	e2e_fail_log server_down "detect $det recover $rec"
fi

# a broken config on SIGHUP: refused, old one kept, traffic unaffected
lab_wait 10 state_is n3 up
traffic cfg 4
sleep 1
before=$(metric 'aibl_controller_reloads_total{result="refused"}')
cp "$cfg" "$cfg.good"
echo "services: [ {name: web, vip: not-an-address" >"$cfg"
t0=$(now_ms)
kill -HUP "$(lab_pid aibld)"
det=-1
for _ in $(seq 50); do
	[ "$(metric 'aibl_controller_reloads_total{result="refused"}')" != "$before" ] &&
		det=$(($(now_ms) - t0)) && break
	sleep 0.05
done
mv "$cfg.good" "$cfg"
traffic_wait
l=$(lost cfg)
why=$(grep -i 'reload\|refus' "$LAB_DIR/aibld.log" | tail -1 | cut -c14-110)
echo "# FAULT bad-config-SIGHUP: refused in ${det} ms ('$why'), old config kept; lost: $l"
set -- $l
if [ "$det" -ge 0 ] && aibld_alive && [ "$1 $2 $3" = "0 0 0" ]; then t_pass bad_config; else
	e2e_fail_log bad_config "refused after $det ms, lost $l"
fi

# the bpffs directory removed under the running controller: forwarding
# goes on through its fds; it pins everything again within a loop, so
# aiblctl sees the maps and a restarted controller adopts the connection
# table (a restart under traffic loses no connection)
lab_wait 10 lab__nodes_up_ge 3
traffic bpffs 8
sleep 1
rm -rf "$LAB_BPFFS"
t0=$(now_ms)
if lab_wait 5 test -e "$LAB_BPFFS/aibl_conns" -a -e "$LAB_BPFFS/aibl_xdp_prog"; then
	det=$(($(now_ms) - t0))
else
	det=-1
fi
# every other pin too (an rm -rf still walking the directory when aibld
# pinned again is mended at its next loop)
ctl_services() {
	ctl=$(lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j service list 2>&1 |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)["services"]))' 2>&1)
	[ "$ctl" = 1 ]
}
lab_wait 3 ctl_services
sleep 1
lab_stop aibld
lab_start_aibld "$cfg" && lab_wait_nodes_up 3 10
traffic_wait
l=$(lost bpffs)
echo "# FAULT bpffs-removed: forwarding went on; pins re-created by aibld ${det} ms after the removal (aiblctl sees $ctl service); aibld restarted afterwards under traffic; lost: $l"
set -- $l
if [ "$det" -ge 0 ] && [ "$ctl" = 1 ] && aibld_alive && [ "$1 $2 $3" = "0 0 0" ]; then
	t_pass bpffs_removed
else
	e2e_fail_log bpffs_removed "re-pinned after $det ms, aiblctl '$ctl', lost $l"
fi
# start clean again for the last case
write_cfg 100 100 100
e2e_restart_aibld "$cfg" || { e2e_fail_log kill9_mid_update "aibld not back"; t_done; }

# kill -9 in the middle of a storm of table rewrites (weights alternate on
# every SIGHUP, min_rewrite_interval 200 ms): the data plane must keep a
# complete table (every slot a member, both halves' VIP entries agree)
# and the restarted controller must adopt it without breaking a connection.
cp "$cfg" "$cfg.a"
write_cfg 300 100 100
cp "$cfg" "$cfg.b"
traffic k9 8
sleep 1
for k in $(seq 12); do
	if [ $((k % 2)) -eq 0 ]; then cp "$cfg.a" "$cfg"; else cp "$cfg.b" "$cfg"; fi
	kill -HUP "$(lab_pid aibld)" 2>/dev/null
	sleep 0.13
	if [ "$k" -eq 9 ]; then
		pid=$(lab_pid aibld)
		kill -9 "$pid"
		t0=$(now_ms)
		wait "$pid" 2>/dev/null
		rm -f "$LAB_DIR/aibld.pid"
		break
	fi
done
table=$(lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j table show web 2>&1)
consistent=$(echo "$table" | python3 -c '
import json, sys
t = json.load(sys.stdin)["table"]
ok = t["empty_slots"] == 0 and t["halves_agree"] and \
     all(b["member"] for b in t["backends"] if b["slots"] > 0) and \
     sum(b["slots"] for b in t["backends"]) == t["ring_size"]
print("yes" if ok else "no")' 2>/dev/null)
sleep 0.5
lab_start_aibld "$cfg" && lab_wait_nodes_up 3 10
rec=$(($(now_ms) - t0))
traffic_wait
l=$(lost k9)
echo "# FAULT aibld-kill9-mid-update: table after the kill complete and consistent: $consistent; restarted and all nodes up ${rec} ms after the kill (0.5 s of it waiting); lost: $l"
set -- $l
if [ "$consistent" = yes ] && aibld_alive && [ "$1 $2 $3" = "0 0 0" ]; then t_pass kill9_mid_update
else
	e2e_fail_log kill9_mid_update "consistent $consistent, lost $l"
fi
t_done
