#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# One balancer of a group: how it keeps BIRD and etcd. A reload that moves
# or removes the 'bgp' section withdraws what the old one announced: the old
# include file is emptied and its BIRD told, else that BIRD would announce
# this balancer's VIPs for good, fenced or stopped. A BIRD that does not
# answer holds neither the loop nor the lease. The planner compacts etcd's
# history. One aibld in cluster mode with a real etcd on loopback, generic
# XDP on a veth pair, one node up (its health check: aibld's own API port,
# as a VIP is announced while a node can serve it), and a birdc stand-in
# that logs which socket it was asked to reconfigure (BIRD itself:
# tests/e2e/test_ecmp.sh).
#   announced          the VIP in the first include once the plan is held
#   etcd_compacted     the planner compacts etcd (compact_interval_s: 1):
#                      etcd answers a read at revision 1 "compacted"
#   etcd_rebuilt       etcd restarted empty at a revision below the one
#                      compacted: compaction starts over on the new store
#                      (kept, the old marks stopped it until the new store
#                      passed the old revision)
#   cluster_get_only   GET /v1/cluster answers, a POST is refused (405)
#   include_moved      reload to another include: the old one emptied, its
#                      BIRD told, the new one announces
#   socket_moved       the same include read by another BIRD: the old BIRD
#                      told, the new one announces
#   bgp_removed        reload without 'bgp': the include emptied
#   kept_on_same       a reload that leaves 'bgp' as it is does not withdraw
#   birdc_hangs        a birdc that never answers (killed at 3 s, run again)
#                      does not hold the loop, nor do reloads meanwhile that
#                      leave 'bgp' as it is: the 2 s lease is renewed, the
#                      balancer stays planner; once BIRD answers, the new
#                      VIP is announced
#   birdc_fails        a failed birdc leaves the include unknown: written
#                      again when the routes wanted are those from before
#   fenced_peer_skipped  a peer fenced on an older plan (it cannot read
#                      this one) does not hold the planner's next plan
#   stop_withdraws     SIGTERM empties the include in force
. "$(dirname "$0")/../lib/lib.sh"
# lab_wait SECONDS CMD...
. "$AIBL_ROOT/lab/lab.sh"
CASES=(announced etcd_compacted etcd_rebuilt cluster_get_only include_moved socket_moved kept_on_same birdc_hangs birdc_fails bgp_removed fenced_peer_skipped stop_withdraws)
skip_all() { for c in "${CASES[@]}"; do t_skip "$c" "$1"; done; t_done; }
[ "$(id -u)" = 0 ] || skip_all "needs root"
command -v etcd >/dev/null || skip_all "needs etcd (scripts/deps.sh: etcd-server)"
[ -x "$AIBL_BUILD/aibld" ] || skip_all "build aibld first"

tmp=$(mktemp -d /tmp/aibl-cluster.XXXXXX)
ifa=tcl$$a ifb=tcl$$b bpffs=/sys/fs/bpf/aibl-t-cl-$$
etcd_pid="" aibld_pid=""
cleanup() {
	[ -n "$aibld_pid" ] && kill "$aibld_pid" 2>/dev/null && wait "$aibld_pid" 2>/dev/null
	[ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
	ip link del "$ifa" 2>/dev/null
	rm -rf "$bpffs"
	[ -n "${AIBL_TEST_VERBOSE:-}" ] && cat "$tmp/aibld.log" >&2
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
announces() { grep -q 'route 10.97.0.1/32 blackhole' "$1" 2>/dev/null; }
empty() { [ -f "$1" ] && ! grep -q route "$1"; }
told() { grep -q -- "-s $1 configure" "$tmp/birdc.log" 2>/dev/null; }

ep=$(free_port) pp=$(free_port) api=$(free_port)
# start_etcd DIR: a one-member etcd on the ports above, its data in DIR
start_etcd() {
	etcd --name t --data-dir "$1" --listen-client-urls "http://127.0.0.1:$ep" \
		--advertise-client-urls "http://127.0.0.1:$ep" --listen-peer-urls "http://127.0.0.1:$pp" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pp" \
		--initial-cluster "t=http://127.0.0.1:$pp" --log-level error >>"$tmp/etcd.log" 2>&1 &
	etcd_pid=$!
}
start_etcd "$tmp/etcd"
ip link add "$ifa" type veth peer name "$ifb" && ip link set "$ifa" up && ip link set "$ifb" up ||
	skip_all "cannot create a veth pair"
cat >"$tmp/birdc" <<EOF
#!/bin/sh
echo "\$*" >>"$tmp/birdc.log"
[ -e "$tmp/hang" ] && exec sleep 30
[ -e "$tmp/fail" ] && exit 1
echo "\$*" >>"$tmp/birdc.ok"
exit 0
EOF
chmod +x "$tmp/birdc"

# config BGP-YAML [SERVICE-YAML]: the balancer's config with that 'bgp'
# section (and one more service)
config() {
	cat >"$tmp/aibld.yaml" <<-EOF
		interface: $ifa
		xdp_mode: generic
		bpffs: $bpffs
		status_listen: 127.0.0.1:$api
		poll_interval_ms: 200
		etcd: {endpoint: 'http://127.0.0.1:$ep', prefix: /aibl-t-$$, name: b1,
		       api_url: 'http://127.0.0.1:$api', compact_interval_s: 1}
		$1
		services:
		  - {name: web, vip: 10.97.0.1, port: 80, policy: wrr, nodes: [n1]}
		  ${2:-}
		nodes:
		  - {name: n1, address: 127.0.0.1, health_port: $api}
	EOF
}
bgp() { echo "bgp: {include: $tmp/$1.conf, bird_socket: $tmp/$2.ctl, birdc: $tmp/birdc}"; }
# reload: SIGHUP, then wait for the reload to be logged
reloads=0
reload() {
	reloads=$((reloads + 1))
	kill -HUP "$aibld_pid"
	lab_wait 5 eval "[ \$(grep -c '^.*reloaded ' '$tmp/aibld.log') -ge $reloads ]"
}

config "$(bgp a bird-a)"
"$AIBL_BUILD/aibld" --config "$tmp/aibld.yaml" >"$tmp/aibld.log" 2>&1 &
aibld_pid=$!
if lab_wait 15 announces "$tmp/a.conf" && told "$tmp/bird-a.ctl"; then
	t_pass announced
else
	t_fail announced "$tmp/a.conf: $(head -c 300 "$tmp/a.conf" 2>&1); log: $(tail -5 "$tmp/aibld.log")"
fi

# etcd_kv OP JSON: etcd's v3 JSON API
etcd_kv() { curl -s --max-time 2 -X POST -d "$2" "http://127.0.0.1:$ep/v3/kv/$1"; }
compacted() {
	local r
	r=$(curl -s --max-time 2 "http://127.0.0.1:$api/v1/cluster" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["etcd_compacted_revision"])')
	[ "${r:-0}" -gt 1 ] && etcd_kv range '{"key": "Lw==", "revision": "1"}' | grep -q 'has been compacted'
}
if lab_wait 8 compacted; then
	t_pass etcd_compacted
else
	t_fail etcd_compacted "$(curl -s "http://127.0.0.1:$api/v1/cluster" | head -c 300); etcd: $(etcd_kv range '{"key": "Lw==", "revision": "1"}')"
fi

# etcd_rebuilt: the old store's revision past 300, compacted there, then
# etcd restarted on an empty data directory (its revision back near 1)
cl_field() {
	curl -s --max-time 2 "http://127.0.0.1:$api/v1/cluster" |
		python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])" 2>/dev/null
}
python3 - "$ep" <<'PY'
import json, sys, urllib.request
for i in range(300):
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v3/kv/put",
                                 data=json.dumps({"key": "L3g=", "value": "eA=="}).encode())
    urllib.request.urlopen(req, timeout=2).read()
PY
old_done() { [ "$(cl_field etcd_compacted_revision)" -gt 300 ] 2>/dev/null; }
# compacted on the new store: below the old mark, and revision 1 gone
new_done() {
	local r
	r=$(cl_field etcd_compacted_revision)
	[ "${r:-0}" -gt 1 ] && [ "$r" -lt 300 ] &&
		etcd_kv range '{"key": "Lw==", "revision": "1"}' | grep -q 'has been compacted'
}
if ! lab_wait 8 old_done; then
	t_fail etcd_rebuilt "the old store not compacted past 300: $(cl_field etcd_compacted_revision)"
else
	kill "$etcd_pid" && wait "$etcd_pid" 2>/dev/null
	start_etcd "$tmp/etcd2"
	if lab_wait 15 new_done; then
		t_pass etcd_rebuilt
	else
		t_fail etcd_rebuilt "compacted revision $(cl_field etcd_compacted_revision) on a store at $(etcd_kv range '{"key": "Lw=="}' | head -c 200); log: $(grep -i compact "$tmp/aibld.log" | tail -3)"
	fi
fi

code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$api/v1/cluster")
get=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api/v1/cluster")
if [ "$code" = 405 ] && [ "$get" = 200 ]; then
	t_pass cluster_get_only
else
	t_fail cluster_get_only "POST /v1/cluster: $code, GET: $get"
fi

config "$(bgp b bird-b)"
: >"$tmp/birdc.log"
if reload && lab_wait 5 announces "$tmp/b.conf" && empty "$tmp/a.conf" &&
	told "$tmp/bird-a.ctl" && told "$tmp/bird-b.ctl"; then
	t_pass include_moved
else
	t_fail include_moved "a: $(grep -c route "$tmp/a.conf") routes, b: $(grep -c route "$tmp/b.conf" 2>&1) routes; birdc: $(tr '\n' ';' <"$tmp/birdc.log")"
fi

config "$(bgp b bird-c)"
: >"$tmp/birdc.log"
if reload && lab_wait 5 eval "told '$tmp/bird-b.ctl' && told '$tmp/bird-c.ctl'" &&
	lab_wait 5 announces "$tmp/b.conf"; then
	t_pass socket_moved
else
	t_fail socket_moved "b: $(grep -c route "$tmp/b.conf") routes; birdc: $(tr '\n' ';' <"$tmp/birdc.log")"
fi

: >"$tmp/birdc.log"
if reload && sleep 1 && announces "$tmp/b.conf" && ! [ -s "$tmp/birdc.log" ]; then
	t_pass kept_on_same
else
	t_fail kept_on_same "b: $(grep -c route "$tmp/b.conf") routes; birdc: $(tr '\n' ';' <"$tmp/birdc.log")"
fi

# a BIRD that does not answer: birdc hangs until killed at its 3 s timeout,
# tried again and again, while the loop renews the 2 s lease
log_from=$(($(wc -l <"$tmp/aibld.log") + 1)) # what this case logs
touch "$tmp/hang"
config "$(bgp b bird-c)" "- {name: web2, vip: 10.97.0.2, port: 80, policy: wrr, nodes: [n1]}"
reload
# reloads that leave 'bgp' as it is, while birdc hangs: none waits for it
sleep 1
reload
sleep 1
reload
sleep 3
rm "$tmp/hang"
since() { tail -n "+$log_from" "$tmp/aibld.log"; }
if lab_wait 8 grep -q 10.97.0.2 "$tmp/b.conf" && ! since | grep -q 'lease .* expired' &&
	! since | grep -q 'elected planner' && since | grep -q 'did not answer in 3000 ms'; then
	t_pass birdc_hangs
else
	t_fail birdc_hangs "$(since | grep -E 'lease|elected|did not answer' | tr '\n' ';' | head -c 600)"
fi

# a birdc that fails on a new service's routes (BIRD restarting): the
# include names them anyway. A reload back to the routes announced before
# must write the include again, not take it for done
# first BIRD takes web and web2 (the last case's hung birdc may still be
# waited out), then it fails
rm -f "$tmp/birdc.ok"
lab_wait 8 test -s "$tmp/birdc.ok"
touch "$tmp/fail"
config "$(bgp b bird-c)" "- {name: web3, vip: 10.97.0.3, port: 80, policy: wrr, nodes: [n1]}"
reload && lab_wait 5 grep -q 10.97.0.3 "$tmp/b.conf"
config "$(bgp b bird-c)" "- {name: web2, vip: 10.97.0.2, port: 80, policy: wrr, nodes: [n1]}"
reload
# (BIRD still failing: each change of the routes wanted is written at once)
if lab_wait 8 eval "grep -q 10.97.0.2 '$tmp/b.conf' && ! grep -q 10.97.0.3 '$tmp/b.conf'"; then
	t_pass birdc_fails
else
	t_fail birdc_fails "b: $(grep route "$tmp/b.conf" | tr '\n' ';')"
fi
rm "$tmp/fail"

config ""
: >"$tmp/birdc.log"
if reload && lab_wait 5 empty "$tmp/b.conf" && told "$tmp/bird-c.ctl"; then
	t_pass bgp_removed
else
	t_fail bgp_removed "b: $(grep -c route "$tmp/b.conf") routes; birdc: $(tr '\n' ';' <"$tmp/birdc.log")"
fi

# a peer fenced on an older plan (one that cannot read this build's plans,
# or has none yet) announces nothing: the planner moves on without it
b64() { printf %s "$1" | base64 -w0; }
# the last case's plan written and applied, none more under way
settled() { [ "$(cl_field version)" = "$(cl_field plans_written)" ] 2>/dev/null; }
lab_wait 5 settled && sleep 0.5
v0=$(cl_field version)
etcd_kv put "{\"key\": \"$(b64 "/aibl-t-$$/balancers/b9")\", \"value\": \"$(b64 \
	'{"name":"b9","version":1,"digest":"-","fenced":true,"announcing":false,"reason":"no plan this balancer can read","etcd_ok":true}')\"}" >/dev/null
config "" "- {name: web4, vip: 10.97.0.4, port: 80, policy: wrr, nodes: [n1]}"
newer() { [ "$(cl_field version)" -gt "$v0" ] 2>/dev/null; }
if reload && lab_wait 5 newer; then
	t_pass fenced_peer_skipped
else
	t_fail fenced_peer_skipped "plan version $(cl_field version), was $v0; log: $(tail -3 "$tmp/aibld.log" | tr '\n' ';')"
fi

# back on a: a stop empties it
config "$(bgp a bird-a)"
reload && lab_wait 5 announces "$tmp/a.conf"
was=$?
kill "$aibld_pid"
wait "$aibld_pid"
aibld_pid=""
if [ $was = 0 ] && empty "$tmp/a.conf"; then
	t_pass stop_withdraws
else
	t_fail stop_withdraws "a: $(grep -c route "$tmp/a.conf") routes"
fi
t_done
