#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make bench-failover: losing one of three balancers behind the ECMP router
# (lab/lab.sh up --ecmp 3, docs/cluster.md), each way a balancer can fail:
#
#   graceful  aibld stopped with SIGTERM: it withdraws the VIPs first
#             (birdc configure), BGP carries the withdrawal; BIRD stays up
#   killed    kill -9 of aibld and BIRD on the balancer: the BGP session's
#             TCP connection closes, BFD stops answering
#   hung      SIGSTOP to every process in the balancer's namespace (aibld,
#             BIRD): nothing closes, only BFD (50 ms x 3) can tell; SIGCONT
#             after --hang seconds
#   link      the balancer's link down (ip link set eth0 down there): BFD
#
# Each case, --rounds times, the failed balancer rotating b1, b2, b3 over
# the rounds: --conns kept-alive HTTP connections from the lab's 64 client
# addresses (aibl-loadgen http --keepalive, --rate requests/s in all), which
# the router hashes over the three balancers; the failure 2 s into the
# run, which lasts --duration seconds. Measured:
#
#   ms      from the failure to the router's kernel route to the VIP no
#           longer having the balancer as a next hop: the timestamp `ip
#           -ts monitor route` gives that change in the router's namespace
#   broken  kept-alive connections that had to connect again (the load
#           generator's reconnects) over all rounds; failed: requests failed
#
# Between cases the balancer is brought back (aibld, BIRD, SIGCONT or the
# link) and the next case waits until the router uses all three again.
# Output: one line per round on stderr, then per case
#   failover <case> ms=<median> broken=<sum> ms_min=.. ms_max=.. failed=<sum> rounds=R conns=N policy=P
# Raw loadgen JSON in $AIBL_BUILD/bench/failover/.
#
#   lab/bench-failover.sh [--prefix P] [--rounds R] [--cases LIST] [--conns N]
#                         [--rate R] [--duration S] [--hang S] [--keep-lab]
#                         [--xdp-mode native|generic] [--policy P]
#
# --policy: the service's policy (default hash, on the 5-tuple); a p2c one
# (least_conn) measures the cluster-mode choice a moved flow re-derives
# (docs/cluster.md, moved flows)
set -uo pipefail
cd "$(dirname "$0")/.."
export AIBL_ROOT=$PWD
export AIBL_BUILD=${AIBL_BUILD:-$PWD/build}
# the benchmark's ports (inside its own namespaces; 23000-23999 is ours)
export LAB_SIM_PORT=23080 LAB_AGENT_PORT=23071
# shellcheck source=lab/lab.sh
. lab/lab.sh

PREFIX=bmfo
ROUNDS=3
CASES="graceful killed hung link"
CONNS=48
RATE=240
DURATION=6
HANG=2
KEEP_LAB=0
XDP_MODE=native
POLICY=hash
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) PREFIX=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--cases) CASES=${2//,/ }; shift 2 ;;
	--conns) CONNS=$2; shift 2 ;;
	--rate) RATE=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--hang) HANG=$2; shift 2 ;;
	--keep-lab) KEEP_LAB=1; shift ;;
	--xdp-mode) XDP_MODE=$2; shift 2 ;;
	--policy) POLICY=$2; shift 2 ;;
	-h|--help) sed -n '3,/^set -uo/{/^set -uo/!p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-failover: unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-failover: needs root (network namespaces, XDP)" >&2; exit 2; }
for t in bird birdc etcd python3; do
	command -v $t >/dev/null || { echo "bench-failover: $t missing (scripts/deps.sh: bird2, etcd-server)" >&2; exit 2; }
done
for c in $CASES; do
	case "$c" in graceful|killed|hung|link) ;; *) echo "bench-failover: no case '$c'" >&2; exit 2 ;; esac
done
OUT=$AIBL_BUILD/bench/failover
RES=$OUT/results.tsv
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.err "$OUT"/*.yaml "$OUT"/*.routes "$RES"

die() {
	echo "bench-failover: $*" >&2
	exit 1
}

ip_of() { echo "$LAB_NET4_PREFIX.0.$((1 + $1))"; }
all_hops() { echo "$(ip_of 1) $(ip_of 2) $(ip_of 3)"; }
nexthops_are() { [ "$(lab_rt_nexthops "$LAB_VIP4")" = "$1" ]; }
# field F of balancer I's /v1/cluster ("" when it does not answer)
bal() {
	lab_bal_api "$1" /v1/cluster 2>/dev/null |
		python3 -c "import json,sys; v=json.load(sys.stdin)['$2']; print(str(v).lower() if isinstance(v,bool) else v)" 2>/dev/null
}
announcing() { [ "$(bal "$1" announcing)" = true ]; }

# the router's route changes, with timestamps, while a case runs: the
# figure is the kernel's event, not when a look here happened to see it
# (one `ip route show` takes tens of ms on a loaded 2-core host)
mon_start() {
	ip -n "$(lab_ns rt)" -ts monitor route >"$1" 2>/dev/null &
	MON=$!
	sleep 0.2 # subscribed
}
mon_stop() {
	kill "$MON" 2>/dev/null
	wait "$MON" 2>/dev/null
}
# until the router's route to the VIP has no next hop via IP (10 s at most)
wait_gone() {
	local end=$((SECONDS + 10)) r
	while [ $SECONDS -lt $end ]; do
		r=$(ip -n "$(lab_ns rt)" -4 route show "$LAB_VIP4/32" 2>/dev/null)
		[[ "$r " == *"via $1 "* ]] || return 0
	done
	return 1
}
# ms from T0 (an $EPOCHREALTIME) to the first route message in FILE (ip
# -ts monitor) after T0 by which the VIP's route stops using IP: a
# deletion of it, or a route without that next hop
gone_ms() {
	python3 - "$1" "$2" "$LAB_VIP4" "$3" <<-'PY'
		import datetime, re, sys
		f, t0, vip, ip = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
		msgs = []
		for line in open(f):
		    m = re.match(r"\[([^\]]+)\] (.*)", line)
		    if m:
		        msgs.append([datetime.datetime.fromisoformat(m[1]).timestamp(), m[2]])
		    elif msgs:
		        msgs[-1][1] += " " + line.strip()
		for t, text in msgs:
		    words = text.split()
		    if words[:1] == ["Deleted"]:
		        words = words[1:]
		    if t < t0 or words[:1] not in ([vip], [vip + "/32"]):
		        continue
		    if text.startswith("Deleted") or ("via %s " % ip) not in text + " ":
		        print(round((t - t0) * 1000))
		        break
		else:
		    print("-")
	PY
}

# fail balancer I the case's way, at once (no waiting)
fail() {
	case "$1" in
	graceful) kill -TERM "$(lab_pid "aibld-b$2")" ;;
	killed) kill -KILL "$(lab_pid "aibld-b$2")" "$(lab_pid "bird-b$2")" ;;
	hung)
		# shellcheck disable=SC2046
		kill -STOP $(ip netns pids "$(lab_ns "b$2")")
		;;
	link) lab_run "b$2" ip link set eth0 down ;;
	esac
}

# the part of the failure that ends by itself while the load still runs
unfail_early() {
	[ "$1" = hung ] || return 0
	sleep "$HANG"
	# shellcheck disable=SC2046
	kill -CONT $(ip netns pids "$(lab_ns "b$2")") 2>/dev/null
}

# bring balancer I back and wait until the router uses all three again
restore() {
	local c=$1 i=$2
	case "$c" in
	graceful)
		lab_stop "aibld-b$i" # gone already; clears the pid file
		lab_start_balancer "$i" "$OUT/b$i.yaml" || die "b$i: aibld did not start again"
		;;
	killed)
		rm -f "$LAB_DIR/aibld-b$i.pid" "$LAB_DIR/bird-b$i.pid"
		lab_start_bird "b$i" || die "b$i: BIRD did not start again"
		lab_start_balancer "$i" "$OUT/b$i.yaml" || die "b$i: aibld did not start again"
		;;
	hung) ;;
	link) lab_run "b$i" ip link set eth0 up ;;
	esac
	stable_hops 3 40 && lab_wait 10 announcing "$i" ||
		die "$c: b$i not back (router: $(lab_rt_nexthops "$LAB_VIP4"); b$i: $(bal "$i" reason))"
}

# until the router has used all three for S seconds in a row (T at most):
# a balancer back from a hang may flap once (its BFD timers expire on
# SIGCONT and take its fresh BGP session down)
stable_hops() {
	local s=$1 end=$((SECONDS + $2)) since=""
	while [ $SECONDS -lt $end ]; do
		if nexthops_are "$(all_hops)"; then
			since=${since:-$SECONDS}
			[ $((SECONDS - since)) -lt "$s" ] || return 0
		else
			since=""
		fi
		sleep 0.2
	done
	return 1
}

cleanup() {
	trap - EXIT INT TERM
	# stopped processes would not see lab.sh down's SIGTERM
	if [ -n "${LAB_DIR:-}" ]; then
		for i in 1 2 3; do
			# shellcheck disable=SC2046
			kill -CONT $(ip netns pids "$(lab_ns "b$i")" 2>/dev/null) 2>/dev/null
		done
	fi
	[ "$KEEP_LAB" = 1 ] || lab/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1
}

# ---- main ----
trap cleanup EXIT
trap 'exit 130' INT TERM
lab/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1
lab/lab.sh up --prefix "$PREFIX" --ecmp 3 --nodes 3 --clients 64 --xdp-mode "$XDP_MODE" \
	>"$OUT/lab.log" 2>&1 || die "lab up failed (log: $OUT/lab.log)"
lab_load "$PREFIX" || exit 1
lab_start_etcd || die "etcd did not start (log: $LAB_DIR/etcd.log)"
for h in rt b1 b2 b3; do lab_start_bird "$h" || die "BIRD on $h did not start"; done
for i in 1 2 3; do
	lab_start_node "$i" >/dev/null 2>&1 &&
		lab_wait_http "n$i" "http://127.0.0.1:$LAB_SIM_PORT/health" 10 ||
		die "node n$i did not start (log: $LAB_DIR/sim-n$i.log)"
done
for i in 1 2 3; do
	{
		lab_ecmp_yaml "$i"
		echo "services:"
		# keyed on the 5-tuple: a flow the router moves to another balancer
		# takes the same table slot there (hash), or the same p2c choice
		# from the plan's costs, hence the same node
		echo "  - {name: web, vip: $LAB_VIP4, port: $LAB_SIM_PORT, policy: $POLICY, session_key: five_tuple}"
		lab_yaml_nodes 100 200 300
	} >"$OUT/b$i.yaml"
	lab_start_balancer "$i" "$OUT/b$i.yaml" || die "b$i: aibld did not start (log: $LAB_DIR/aibld-b$i.log)"
done
stable_hops 3 40 || die "the router does not use all three: $(lab_rt_nexthops "$LAB_VIP4")"
echo "bench-failover: lab '$PREFIX' (3 balancers, BFD ${LAB_BIRD_BFD_MS} ms x 3, lease TTL" \
	"${LAB_LEASE_TTL_S:-2} s, $XDP_MODE XDP, policy $POLICY), $ROUNDS rounds; $CONNS kept-alive connections," \
	"$RATE req/s, $DURATION s, the failure at 2 s" >&2

for r in $(seq "$ROUNDS"); do
	for c in $CASES; do
		i=$(((r - 1) % 3 + 1))
		f=$OUT/$c-r$r.json
		lab_loadgen http --target "http://$LAB_VIP4:$LAB_SIM_PORT" --source "$LAB_CLIENT_ADDRS4" \
			--keepalive --conns "$CONNS" --rate "$RATE" --duration "$DURATION" --timeout-ms 3000 \
			--json --no-progress >"$f" 2>"$f.err" &
		lg=$!
		sleep 2
		nexthops_are "$(all_hops)" || die "$c round $r: the router does not use all three before the failure"
		mon_start "$OUT/$c-r$r.routes"
		t0=$EPOCHREALTIME
		fail "$c" "$i"
		wait_gone "$(ip_of "$i")"
		mon_stop
		ms=$(gone_ms "$OUT/$c-r$r.routes" "$t0" "$(ip_of "$i")")
		unfail_early "$c" "$i"
		wait "$lg"
		lgrc=$?
		read -r ok failed broken < <(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["total"]
print(t["ok"], t["failed"], t["reconnects"])' "$f" 2>/dev/null) ||
			die "$c round $r: the load generator gave no result (exit $lgrc): $(head -c 300 "$f.err")"
		[ "$ms" != - ] || die "$c round $r: the router still uses b$i after 10 s ($OUT/$c-r$r.routes)"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$r" "b$i" "$ms" "$broken" "$failed" "$ok" >>"$RES"
		echo "bench-failover: round $r $c b$i: router dropped it after $ms ms," \
			"$ok requests ok, $failed failed, $broken connections broken" >&2
		restore "$c" "$i"
	done
done

python3 - "$RES" "$CASES" "$CONNS" "$POLICY" <<-'EOF'
	import statistics, sys
	res, cases, conns, policy = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
	rows = [l.rstrip("\n").split("\t") for l in open(res)]
	for c in cases:
	    rs = [r for r in rows if r[0] == c]
	    ms = [int(r[3]) for r in rs]
	    print(f"failover {c} ms={statistics.median(ms):.0f} broken={sum(int(r[4]) for r in rs)}"
	          f" ms_min={min(ms)} ms_max={max(ms)} failed={sum(int(r[5]) for r in rs)}"
	          f" rounds={len(rs)} conns={conns} policy={policy}")
EOF
