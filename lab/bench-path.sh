#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make bench-path: the packet path against what a user would pick instead,
# on the lab topology (lab/lab.sh), with the same load generator
# (aibl-loadgen http) and the same nodes (aibl-simnode), one after another:
#
#   direct      client straight to node 1, no balancer (the ceiling)
#   direct-all  the client itself takes the nodes in turn, no balancer (what
#               spreading over the same nodes costs on this machine)
#   xdp-null    the least an XDP balancer can do (tests/bench/
#               xdp_null_fwd.bpf.c: hash to a node, MAC rewrite, XDP_TX):
#               what the balancer's hop itself costs in the lab
#   aibl-ipip   aibld + agents, XDP on the balancer, IP-in-IP to the nodes
#   aibl-l2dsr  the same in l2dsr mode (MAC rewrite)
#   nft         nftables DNAT on the balancer host, Kubernetes nftables
#               proxy style (numgen random vmap to per-endpoint dnat chains);
#               replies return through the balancer for un-NAT
#   haproxy     HAProxy (Debian) in TCP mode, balance leastconn, 2 threads,
#               in the balancer netns
#
# Workloads: GET /health on a new TCP connection each (conn_*) and on
# kept-alive connections (req_*), each at saturation (closed loop, --conns
# in flight) and at a fixed offered load (open loop, --load-pct of the rate
# direct reached in a warm-up run; latency counts from when a request was
# due). The cases run interleaved for --rounds rounds (each round starting
# at the next case) and every figure is the median over the rounds, so the
# drift of a noisy machine hits every case alike.
#
# Output: one line per case and metric,
#   path <case> <metric>=<value> ratio_to_direct=<r>
# where r is performance relative to direct (> 1 better): value/direct for
# rates, direct/value for latencies; then a table, and the regime lines
# (cores busy, the load generator's own CPU use). Raw loadgen JSON in
# $AIBL_BUILD/bench/path/.
#
# --profile: perf samples the whole machine during each case's saturation
# runs of round 1 and prints where the cycles went (the aibl XDP and decap
# programs, veth, bridge, netfilter, HAProxy, the generator, the servers).
#
#   lab/bench-path.sh [--prefix P] [--nodes N] [--rounds R] [--duration S]
#                         [--conns N] [--load-pct P] [--cases LIST] [--keep-lab]
#                         [--profile] [--xdp-mode native|generic]
#
# --xdp-mode: how the XDP cases attach in the lab (lab/lab.sh up
# --xdp-mode). generic (default) suits the lab's veth NIC: native XDP on a
# veth copies every frame out of its skb, needs an XDP_PASS program on the
# bridge side of the balancer's link (NAPI there) and checksums completed
# before frames reach the balancer, which every case's balancer traffic
# then pays, nftables' and HAProxy's too. On a real NIC native is right.
set -uo pipefail
cd "$(dirname "$0")/.."
export AIBL_ROOT=$PWD
export AIBL_BUILD=${AIBL_BUILD:-$PWD/build}
# the benchmark's ports (inside its own namespaces; 23000-23999 is ours)
export LAB_SIM_PORT=23080 LAB_AGENT_PORT=23071 LAB_API=http://127.0.0.1:23070
LAB_SCRAPE_MS=500
# shellcheck source=lab/lab.sh
. lab/lab.sh

PREFIX=bm
NODES=2
ROUNDS=5
DURATION=1.5
CONNS=16
LOAD_PCT=25
CASES="direct direct-all xdp-null aibl-ipip aibl-l2dsr nft haproxy"
KEEP_LAB=0
PROFILE=0
XDP_MODE=generic
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) PREFIX=$2; shift 2 ;;
	--nodes) NODES=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--conns) CONNS=$2; shift 2 ;;
	--load-pct) LOAD_PCT=$2; shift 2 ;;
	--cases) CASES=${2//,/ }; shift 2 ;;
	--keep-lab) KEEP_LAB=1; shift ;;
	--profile) PROFILE=1; shift ;;
	--xdp-mode) XDP_MODE=$2; shift 2 ;;
	-h|--help) sed -n '3,/^set -uo/{/^set -uo/!p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-path: unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-path: needs root (network namespaces, XDP)" >&2; exit 2; }
for t in nft haproxy python3; do
	command -v $t >/dev/null || { echo "bench-path: $t missing (scripts/deps.sh)" >&2; exit 2; }
done

[ "$PROFILE" = 0 ] || command -v perf >/dev/null ||
	{ echo "bench-path: --profile needs perf (Debian: linux-perf)" >&2; exit 2; }
OUT=$AIBL_BUILD/bench/path
RES=$OUT/results.tsv
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$RES"
VIP_AIBL=10.200.0.1 # XDP service
VIP_NFT=10.200.0.2 # DNAT rules
VIP_HAP=10.200.0.3 # HAProxy's frontend, on the balancer's loopback
VIP_NULL=10.200.0.4 # xdp-null (on the nodes' loopback, as every lab VIP)
NULL_OBJ=$AIBL_BUILD/tests/bench/xdp_null_fwd.bpf.o
NULL_PIN=/sys/fs/bpf/aibl-bench-path-$PREFIX-null
PORT=$LAB_SIM_PORT
AIBLD_CFG=$OUT/aibld.yaml
HAP_CFG=$OUT/haproxy.cfg

die() {
	echo "bench-path: $*" >&2
	exit 1
}

# ---- cases: setup / teardown ----
aibl_up() { # MODE
	LAB_MODE=$1
	{
		lab_yaml_head
		cat <<-EOF
			services:
			  - name: web
			    vip: $VIP_AIBL
			    port: $PORT
			    proto: tcp
			    policy: least_conn
		EOF
		lab_yaml_nodes
	} >"$AIBLD_CFG"
	lab_start_aibld "$AIBLD_CFG" || die "aibld did not start (log: $LAB_DIR/aibld.log)"
	lab_wait_nodes_up "$NODES" 20 || die "aibld: not all $NODES nodes up"
}

aibl_down() {
	lab_stop aibld
	lab_run lb "$AIBL_BUILD/aibld" --teardown --config "$AIBLD_CFG" >/dev/null 2>&1
}

# the XDP attach mode of the run, as bpftool names it
xdp_attach_type() {
	[ "$XDP_MODE" = generic ] && echo xdpgeneric || echo xdpdrv
}

# hex bytes of a MAC or an IPv4 address, for bpftool
hex_mac() { echo "${1//:/ }"; }
hex_ip4() {
	local IFS=.
	# shellcheck disable=SC2086
	printf '%02x %02x %02x %02x' $1
}

null_up() {
	local i
	[ -r "$NULL_OBJ" ] || die "xdp-null: no $NULL_OBJ (make $NULL_OBJ)"
	rm -rf "$NULL_PIN"
	mkdir -p "$NULL_PIN"
	bpftool prog load "$NULL_OBJ" "$NULL_PIN/prog" type xdp pinmaps "$NULL_PIN" ||
		die "xdp-null: bpftool prog load failed"
	# shellcheck disable=SC2046
	bpftool map update pinned "$NULL_PIN/null_fwd_cfg" key 0 0 0 0 \
		value hex $(hex_ip4 "$VIP_NULL") "$(printf '%02x' "$NODES")" 00 00 00 || die "xdp-null: map"
	for i in $(seq "$NODES"); do
		# shellcheck disable=SC2046
		bpftool map update pinned "$NULL_PIN/null_fwd_macs" key "$((i - 1))" 0 0 0 \
			value hex $(hex_mac "$(lab_node "$i" MAC)") 00 00 || die "xdp-null: map"
	done
	lab_run lb bpftool net attach "$(xdp_attach_type)" pinned "$NULL_PIN/prog" dev "$LAB_IF" ||
		die "xdp-null: attach to $LAB_IF failed"
}

null_down() {
	lab_run lb bpftool net detach "$(xdp_attach_type)" dev "$LAB_IF" 2>/dev/null
	rm -rf "$NULL_PIN"
	return 0
}

nft_up() {
	local i chains="" vmap=""
	for i in $(seq "$NODES"); do
		chains+="	chain ep-n$i {
		meta l4proto tcp dnat to $(lab_node "$i" IP4):$PORT
	}
"
		vmap+="${vmap:+, }$((i - 1)) : goto ep-n$i"
	done
	lab_run lb nft -f - <<-EOF || die "nft rules refused"
		table ip bmbench {
		$chains
			chain svc-web {
				numgen random mod $NODES vmap { $vmap }
			}
			chain prerouting {
				type nat hook prerouting priority dstnat; policy accept;
				ip daddr . meta l4proto . th dport vmap { $VIP_NFT . tcp . $PORT : goto svc-web }
			}
		}
	EOF
	# the balancer routes DNATed packets; replies must come back through
	# it to be un-NATed (no DSR): the nodes route the client addresses via
	# the balancer while this case runs
	lab_run lb sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
		net.ipv4.conf.eth0.send_redirects=0
	for i in $(seq "$NODES"); do
		lab_run "n$i" ip route replace 10.10.1.0/24 via "$LAB_LB_IP4"
	done
}

nft_down() {
	local i
	lab_run lb nft delete table ip bmbench 2>/dev/null
	lab_run lb sysctl -qw net.ipv4.ip_forward=0
	for i in $(seq "$NODES"); do
		lab_run "n$i" ip route del 10.10.1.0/24 2>/dev/null
	done
	return 0
}

hap_up() {
	local i
	{
		cat <<-EOF
			global
			    maxconn 8000
			    nbthread 2
			defaults
			    mode tcp
			    timeout connect 5s
			    timeout client 30s
			    timeout server 30s
			frontend fe
			    bind $VIP_HAP:$PORT
			    default_backend be
			backend be
			    balance leastconn
		EOF
		for i in $(seq "$NODES"); do
			echo "    server n$i $(lab_node "$i" IP4):$PORT"
		done
	} >"$HAP_CFG"
	lab_run lb ip addr replace "$VIP_HAP/32" dev lo
	# the usual tuning for a proxy that opens a connection per client
	# connection: reuse TIME_WAIT ports, a wide port range, less the lab's
	# own ports: a proxy connection left in TIME_WAIT on aibld's API port
	# kept the next case's aibld from binding it (EADDRINUSE, 1 run in 2)
	lab_run lb sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000" \
		net.ipv4.ip_local_reserved_ports="${LAB_API##*:},$LAB_AGENT_PORT,$LAB_SIM_PORT"
	lab_spawn lb haproxy haproxy -db -f "$HAP_CFG" || die "haproxy did not start"
}

hap_down() {
	lab_stop haproxy
	lab_run lb ip addr del "$VIP_HAP/32" dev lo 2>/dev/null
	return 0
}

case_target() {
	case "$1" in
	direct) echo "http://$LAB_NODE_1_IP4:$PORT" ;;
	direct-all)
		local i t=""
		for i in $(seq "$NODES"); do
			t+="${t:+,}http://$(lab_node "$i" IP4):$PORT"
		done
		echo "$t"
		;;
	xdp-null) echo "http://$VIP_NULL:$PORT" ;;
	aibl-*) echo "http://$VIP_AIBL:$PORT" ;;
	nft) echo "http://$VIP_NFT:$PORT" ;;
	haproxy) echo "http://$VIP_HAP:$PORT" ;;
	esac
}

case_up() {
	case "$1" in
	aibl-ipip) aibl_up ipip ;;
	aibl-l2dsr) aibl_up l2dsr ;;
	xdp-null) null_up ;;
	nft) nft_up ;;
	haproxy) hap_up ;;
	esac
	local t
	for t in $(case_target "$1" | tr , ' '); do
		lab_wait 10 lab_run cli curl -sf -o /dev/null --max-time 1 \
			--interface "${LAB_CLIENT_ADDRS4%%-*}" "$t/health" || die "$1: $t does not answer"
	done
}

case_down() {
	case "$1" in
	aibl-*) aibl_down ;;
	xdp-null) null_down ;;
	nft) nft_down ;;
	haproxy) hap_down ;;
	esac
}

cleanup() {
	local c
	trap - EXIT INT TERM
	for c in aibl-ipip xdp-null nft haproxy; do case_down "$c" >/dev/null 2>&1; done
	if [ "$KEEP_LAB" = 0 ]; then
		lab/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1
	fi
}

# ---- one load generator run ----
NCPU=$(nproc)
# CPU time busy and in all so far, every CPU. From the cpuidle residency
# counters (microseconds, exact) where the kernel has them: /proc/stat's
# tick sampling misses much of a load that sleeps between ticks (it showed
# 0.06 cores busy for a run that kept 0.7 busy). /proc/stat otherwise.
cpu_busy() {
	local idle now
	idle=$(cat /sys/devices/system/cpu/cpu[0-9]*/cpuidle/state[0-9]*/time 2>/dev/null |
		awk '{s += $1} END {if (NR) printf "%.0f\n", s}')
	if [ -n "$idle" ]; then
		now=$(($(date +%s%N) / 1000))
		echo $((NCPU * now - idle)) $((NCPU * now))
	else
		awk '/^cpu /{t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t}' /proc/stat
	fi
}

# run CASE WORKLOAD(conn|req) REGIME(sat|fixed) ROUND
run() {
	local c=$1 wl=$2 reg=$3 r=$4 f b0 t0 b1 t1 args=() perf_pid=
	f=$OUT/$c-$wl-$reg-r$r.json
	[ "$wl" = req ] && args+=(--keepalive)
	if [ "$reg" = sat ]; then
		args+=(--conns "$CONNS")
	else
		args+=(--conns 256 --rate "$(eval echo "\$RATE_$wl")")
	fi
	if [ "$PROFILE" = 1 ] && [ "$r" = 1 ] && [ "$reg" = sat ]; then
		perf record -a -q -o "$OUT/$c-$wl.perf" -- sleep "$DURATION" >/dev/null 2>&1 &
		perf_pid=$!
	fi
	read -r b0 t0 < <(cpu_busy)
	# `times` in the subshell: CPU time of the generator (nsenter's waited
	# child), to tell how much of the two cores it took itself
	(
		lab_run cli "$AIBL_BUILD/aibl-loadgen" http --target "$(case_target "$c")" \
			--source "$LAB_CLIENT_ADDRS4" --duration "$DURATION" --timeout-ms 2000 \
			--no-progress --json "${args[@]}" >"$f" 2>"$f.err"
		times >"$f.times"
	)
	read -r b1 t1 < <(cpu_busy)
	[ -z "$perf_pid" ] || wait "$perf_pid"
	python3 - "$f" "$c" "$wl" "$reg" "$r" $((b1 - b0)) $((t1 - t0)) "$NCPU" >>"$RES" <<-'EOF'
		import json, re, sys
		f, c, wl, reg, r, busy, total, ncpu = sys.argv[1:]
		try:
		    j = json.load(open(f))
		except ValueError:
		    print(open(f + ".err").read(), file=sys.stderr)
		    sys.exit(1)
		t = j["total"]
		# second line of `times`: children's user and system time
		u, s = [float(m[0]) * 60 + float(m[1])
		        for m in re.findall(r"(\d+)m([\d.]+)s", open(f + ".times").read().splitlines()[1])]
		lg = (u + s) / j["wall_s"] if j["wall_s"] else 0
		print("\t".join(map(str, [c, wl, reg, r, t["req_s"], t["e2e_p50_ms"], t["e2e_p99_ms"],
		                          t["failed"], t["requests"], j["late_starts"], round(lg, 3),
		                          round(int(ncpu) * int(busy) / max(int(total), 1), 3)])))
	EOF
}

# ---- main ----
trap cleanup EXIT
trap 'exit 130' INT TERM
# a fresh lab: nothing left running from an earlier --keep-lab
lab/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1
lab/lab.sh up --prefix "$PREFIX" --nodes "$NODES" --xdp-mode "$XDP_MODE" >/dev/null 2>&1 ||
	die "lab up failed (lab/lab.sh up --prefix $PREFIX --nodes $NODES --xdp-mode $XDP_MODE)"
lab_load "$PREFIX" || exit 1
for i in $(seq "$NODES"); do
	lab_start_node "$i" >/dev/null 2>&1 &&
		lab_wait_http "n$i" "http://127.0.0.1:$PORT/health" 10 ||
		die "node n$i did not start (log: $LAB_DIR/sim-n$i.log)"
done
# replies are DSR in the aibl cases and routed through the balancer for nft
lab_run cli sysctl -qw net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.eth0.accept_redirects=0

echo "bench-path: lab '$PREFIX' ($NODES nodes, $XDP_MODE XDP), $ROUNDS rounds x $DURATION s per run," \
	"saturation with $CONNS in flight, fixed load $LOAD_PCT% of direct's saturation" >&2
# warm-up: direct at saturation sets the fixed offered loads
RATE_conn=1 RATE_req=1
run direct conn sat 0
run direct req sat 0
RATE_conn=$(awk -F'\t' -v p="$LOAD_PCT" '$1=="direct" && $2=="conn" && $4==0 {printf "%d", $5*p/100}' "$RES")
RATE_req=$(awk -F'\t' -v p="$LOAD_PCT" '$1=="direct" && $2=="req" && $4==0 {printf "%d", $5*p/100}' "$RES")
[ "${RATE_conn:-0}" -gt 0 ] && [ "${RATE_req:-0}" -gt 0 ] || die "warm-up: direct served nothing"
echo "bench-path: fixed offered load: $RATE_conn new connections/s, $RATE_req requests/s kept-alive" >&2

read -ra CASEV <<<"$CASES"
for r in $(seq "$ROUNDS"); do
	# each round starts at another case, so none always follows the same one
	for k in $(seq 0 $((${#CASEV[@]} - 1))); do
		c=${CASEV[$(((k + r - 1) % ${#CASEV[@]}))]}
		case_up "$c"
		for wl in conn req; do
			for reg in sat fixed; do
				run "$c" "$wl" "$reg" "$r" || die "$c $wl $reg: the load generator gave no result"
			done
		done
		# the XDP counters of the round (connection table regime)
		[[ $c == aibl-* ]] && "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" -j stats \
			>"$OUT/$c-stats-r$r.json" 2>/dev/null
		case_down "$c"
		echo "bench-path: round $r/$ROUNDS: $c done" >&2
	done
done

python3 - "$RES" "$CASES" "$RATE_conn" "$RATE_req" "$CONNS" "$NCPU" <<-'EOF'
	import statistics, sys
	res, cases, rate_conn, rate_req, conns, ncpu = sys.argv[1:]
	cases = cases.split()
	rows = [l.rstrip("\n").split("\t") for l in open(res)]
	rows = [r for r in rows if r[3] != "0"]  # not the warm-up
	def med(c, wl, reg, col):
	    v = [float(r[col]) for r in rows if r[:3] == [c, wl, reg] and r[col] != "None"]
	    return statistics.median(v) if v else float("nan")
	def tot(c, wl, reg, col):
	    return sum(int(r[col]) for r in rows if r[:3] == [c, wl, reg])
	# metric name, workload, regime, column, higher is better
	metrics = []
	for wl in ("conn", "req"):
	    for reg in ("sat", "fixed"):
	        metrics += [(f"{wl}_s_{reg}", wl, reg, 4, True),
	                    (f"{wl}_p50_ms_{reg}", wl, reg, 5, False),
	                    (f"{wl}_p99_ms_{reg}", wl, reg, 6, False)]
	val = {(c, m[0]): med(c, m[1], m[2], m[3]) for c in cases for m in metrics}
	def ratio(c, m):
	    d, v = val[("direct", m[0])], val[(c, m[0])]
	    if not (d > 0 and v > 0):
	        return float("nan")
	    return v / d if m[4] else d / v
	for c in cases:
	    for m in metrics:
	        v = val[(c, m[0])]
	        print(f"path {c} {m[0]}={v:.0f} ratio_to_direct={ratio(c, m):.2f}" if m[3] == 4 else
	              f"path {c} {m[0]}={v:.3f} ratio_to_direct={ratio(c, m):.2f}")
	print()
	print(f"new connection each (conn) and kept-alive (req): sat = {conns} in flight, closed loop;"
	      f" fixed = {rate_conn} conn/s and {rate_req} req/s offered, open loop")
	hdr = ["case"] + [m[0] for m in metrics]
	w = [11] + [max(len(h), 8) for h in hdr[1:]]
	print("  ".join(h.rjust(w[i]) if i else h.ljust(w[i]) for i, h in enumerate(hdr)))
	for c in cases:
	    cells = [c] + [f"{val[(c, m[0])]:.0f}" if m[3] == 4 else f"{val[(c, m[0])]:.3f}"
	                   for m in metrics]
	    print("  ".join(x.rjust(w[i]) if i else x.ljust(w[i]) for i, x in enumerate(cells)))
	    cells = ["  ratio"] + [f"{ratio(c, m):.2f}" for m in metrics]
	    print("  ".join(x.rjust(w[i]) if i else x.ljust(w[i]) for i, x in enumerate(cells)))
	print()
	print(f"regime (medians over rounds): busy = cores busy of {ncpu}, loadgen = cores the load"
	      " generator used itself, failed/late = summed")
	for c in cases:
	    parts = []
	    for wl in ("conn", "req"):
	        for reg in ("sat", "fixed"):
	            parts.append(f"{wl}_{reg}: busy {med(c, wl, reg, 11):.2f} loadgen"
	                         f" {med(c, wl, reg, 10):.2f} failed {tot(c, wl, reg, 7)}"
	                         f" late {tot(c, wl, reg, 9)}")
	    print(f"regime {c}: " + "; ".join(parts))
EOF

[ "$PROFILE" = 1 ] || exit 0
echo
echo "profile (round 1, saturation): share of all samples on the machine, %"
printf '%-11s %-4s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n' case wl aibl_xdp decap veth bridge \
	netfilt haproxy loadgen servers other
for c in $CASES; do
	for wl in conn req; do
		f=$OUT/$c-$wl.perf
		[ -s "$f" ] || continue
		perf report -i "$f" --no-children --sort comm,sym -g none --stdio 2>/dev/null |
			awk -v c="$c" -v wl="$wl" '
			/^#/ || NF < 3 { next }
			{
				p = $1; sub("%", "", p); comm = $2; sym = $NF
				if (sym ~ /aibl_xdp|xdp_null_fwd/) k = "xdp"
				else if (sym ~ /aibl_decap/) k = "decap"
				else if (sym ~ /^veth_|xdp/) k = "veth"
				else if (sym ~ /^br_|^__br_/) k = "bridge"
				else if (sym ~ /^nf_|^nft_|^__nf_|conntrack/) k = "nf"
				else if (comm == "haproxy") k = "hap"
				else if (comm == "aibl-loadgen") k = "lg"
				else if (comm ~ /^MHD|aibl-simnode/) k = "srv"
				else k = "other"
				s[k] += p
			}
			END {
				printf "%-11s %-4s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f\n", c, wl,
					s["xdp"], s["decap"], s["veth"], s["bridge"], s["nf"], s["hap"], s["lg"],
					s["srv"], s["other"]
			}'
	done
done
echo "(kernel work on behalf of a process, e.g. its TCP stack, counts in that process's column)"
