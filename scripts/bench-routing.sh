#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make bench-routing: does inference-aware routing pay off? The same chat
# workload (aibl-loadgen chat: multi-turn sessions, each from its own client
# address, a long shared context per session, bursty Poisson arrivals,
# several models) through the lab's aibl-simnode nodes under each policy,
# with fresh nodes (same residency, empty caches) for every policy.
#
# Default node mix (--mix, one KIND:RESIDENT-MODELS per node):
#   n1 fast GPU  m-a,m-b     n2 fast GPU  m-a,m-c     n3 slow GPU (x2.5) m-b,m-c
#   n4 CPU-only (x8) m-c
# Models m-a and m-b take 40 GB, m-c 16 GB; a GPU node holds 80 GB, so a
# request for a model a node does not hold loads it (--load-ms, x slowdown)
# and evicts another: a cold start. Services (one VIP per model, all in
# ipip mode): m-a and m-b on the GPU nodes (accelerator: gpu), m-c on all;
# node weights 100, the CPU node 25 (what an operator would write).
# Loadgen defaults (see aibl-loadgen --help) apart from the model mix
# m-a:3 m-b:2 m-c:1 and one client address per session; anything after
# `--` goes to aibl-loadgen chat (e.g. -- --sessions 128 --rate 8 --seed 2).
#
# Output: per policy
#   policy <name> ttft_p99_ms=.. e2e_p99_ms=.. tok_s=.. cache_hit=.. cold_starts=.. failed=..
# (cold_starts: requests that waited for a model load), a table with the
# p50s and the model loads the nodes counted, the goal checks, and
# $AIBL_BUILD/bench/routing/ttft-cdf.png (TTFT distribution per policy).
#
#   scripts/bench-routing.sh [--prefix P] [--policies LIST] [--mix SPEC]
#                            [--load-ms MS] [--keep-lab] [-- LOADGEN-ARGS]
set -uo pipefail
cd "$(dirname "$0")/.."
export AIBL_ROOT=$PWD
export AIBL_BUILD=${AIBL_BUILD:-$PWD/build}
export LAB_SIM_PORT=23080 LAB_AGENT_PORT=23071 LAB_API=http://127.0.0.1:23070
export LAB_SCRAPE_MS=200 LAB_POLL_MS=200
# shellcheck source=scripts/lab.sh
. scripts/lab.sh

PREFIX=bm
POLICIES="rr least_conn least_time hash ai"
MIX="fast:m-a,m-b fast:m-a,m-c slow:m-b,m-c cpu:m-c"
LOAD_MS=3000
KEEP_LAB=0
LG_ARGS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) PREFIX=$2; shift 2 ;;
	--policies) POLICIES=${2//,/ }; shift 2 ;;
	--mix) MIX=$2; shift 2 ;;
	--load-ms) LOAD_MS=$2; shift 2 ;;
	--keep-lab) KEEP_LAB=1; shift ;;
	--) shift; LG_ARGS=("$@"); break ;;
	-h|--help) sed -n '3,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-routing: unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-routing: needs root (network namespaces, XDP)" >&2; exit 2; }
for t in gnuplot python3; do
	command -v $t >/dev/null || { echo "bench-routing: $t missing (scripts/deps.sh)" >&2; exit 2; }
done

read -ra NODEV <<<"$MIX"
NODES=${#NODEV[@]}
MODELS="m-a:40000,m-b:40000,m-c:16000"
OUT=$AIBL_BUILD/bench/routing
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.tsv "$OUT"/*.cdf "$OUT"/*.png
CFG=$OUT/aibld.yaml
PORT=$LAB_SIM_PORT

die() {
	echo "bench-routing: $*" >&2
	exit 1
}

# simnode flags of a node kind
kind_args() {
	case "$1" in
	fast) echo "--mem-mb 80000" ;;
	slow) echo "--mem-mb 80000 --slowdown 2.5" ;;
	cpu) echo "--mem-mb 20000 --cpu --cpu-factor 8" ;;
	*) die "--mix: unknown node kind '$1' (fast, slow, cpu)" ;;
	esac
}

nodes_start() {
	local i kind res
	for i in $(seq "$NODES"); do
		kind=${NODEV[$((i - 1))]%%:*}
		res=${NODEV[$((i - 1))]#*:}
		# shellcheck disable=SC2046
		lab_start_node "$i" --models "$MODELS" --resident "$res" --load-ms "$LOAD_MS" \
			--jitter 0.1 --seed "$i" $(kind_args "$kind") ||
			die "node n$i did not start"
	done
	for i in $(seq "$NODES"); do
		lab_wait_http "n$i" "http://127.0.0.1:$PORT/health" 10 ||
			die "node n$i does not answer (log: $LAB_DIR/sim-n$i.log)"
	done
}

nodes_stop() {
	local i
	for i in $(seq "$NODES"); do
		lab_stop "agent-n$i"
		lab_stop "sim-n$i"
	done
}

# model loads counted by the nodes (cold starts that happened)
nodes_loads() {
	local i n=0 l
	for i in $(seq "$NODES"); do
		l=$(lab_run "n$i" curl -sf --max-time 2 "http://127.0.0.1:$PORT/metrics" |
			awk '/^aibl_simnode_model_loads_total/ {s += $NF} END {print s + 0}')
		n=$((n + ${l:-0}))
	done
	echo "$n"
}

write_config() { # POLICY
	local i kind v=0 m
	for i in $(seq "$NODES"); do
		kind=${NODEV[$((i - 1))]%%:*}
		if [ "$kind" = cpu ]; then
			eval "LAB_NODE_${i}_YAML='    accelerator: none'"
		else
			eval "LAB_NODE_${i}_YAML='    accelerator: gpu'"
		fi
	done
	{
		lab_yaml_head
		echo "services:"
		for m in m-a m-b m-c; do
			v=$((v + 1))
			echo "  - name: $m"
			echo "    vip: 10.200.0.$v"
			echo "    port: $PORT"
			echo "    proto: tcp"
			echo "    model: $m"
			echo "    policy: $1"
			[ "$m" != m-c ] && echo "    accelerator: gpu"
		done
		# shellcheck disable=SC2046
		lab_yaml_nodes $(for i in $(seq "$NODES"); do
			[ "${NODEV[$((i - 1))]%%:*}" = cpu ] && echo 25 || echo 100
		done)
	} >"$CFG"
}

cleanup() {
	trap - EXIT INT TERM
	lab_stop aibld 2>/dev/null
	[ -s "$CFG" ] && lab_run lb "$AIBL_BUILD/aibld" --teardown --config "$CFG" >/dev/null 2>&1
	nodes_stop 2>/dev/null
	[ "$KEEP_LAB" = 0 ] && scripts/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1
	return 0
}

trap cleanup EXIT
trap 'exit 130' INT TERM
scripts/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1
scripts/lab.sh up --prefix "$PREFIX" --nodes "$NODES" --clients 256 >/dev/null 2>&1 ||
	die "lab up failed (scripts/lab.sh up --prefix $PREFIX --nodes $NODES)"
lab_load "$PREFIX" || exit 1

have_model=0
for a in "${LG_ARGS[@]}"; do [ "$a" = --model ] && have_model=1; done
MODEL_ARGS=()
[ $have_model = 0 ] && MODEL_ARGS=(--model "m-a:3=http://10.200.0.1:$PORT"
	--model "m-b:2=http://10.200.0.2:$PORT" --model "m-c:1=http://10.200.0.3:$PORT")

for p in $POLICIES; do
	nodes_start
	write_config "$p"
	lab_start_aibld "$CFG" || die "$p: aibld did not start (log: $LAB_DIR/aibld.log)"
	lab_wait_nodes_up "$NODES" 20 || die "$p: not all $NODES nodes up"
	echo "bench-routing: policy $p ..." >&2
	lab_run cli "$AIBL_BUILD/aibl-loadgen" chat --source "$LAB_CLIENT_ADDRS4" \
		"${MODEL_ARGS[@]}" --json --no-progress --samples "$OUT/$p.tsv" "${LG_ARGS[@]}" \
		>"$OUT/$p.json" 2>"$OUT/$p.err"
	rc=$?
	[ -s "$OUT/$p.json" ] || die "$p: the load generator gave no result (rc $rc): $(head -c 300 "$OUT/$p.err")"
	echo "$p $(nodes_loads)" >>"$OUT/loads.txt"
	lab_stop aibld
	lab_run lb "$AIBL_BUILD/aibld" --teardown --config "$CFG" >/dev/null 2>&1
	nodes_stop
done

python3 - "$OUT" "$POLICIES" <<-'EOF'
	import json, math, sys
	out, policies = sys.argv[1], sys.argv[2].split()
	loads = dict(l.split() for l in open(f"{out}/loads.txt"))
	res = {}
	for p in policies:
	    j = json.load(open(f"{out}/{p}.json"))
	    t = j["total"]
	    res[p] = t
	    print(f"policy {p} ttft_p99_ms={t['ttft_p99_ms']:.0f} e2e_p99_ms={t['e2e_p99_ms']:.0f}"
	          f" tok_s={t['tok_s']:.1f} cache_hit={t['cache_hit']:.3f}"
	          f" cold_starts={t['cold_starts']} failed={t['failed']}")
	    # the CDF of time to first token for the plot
	    v = sorted(float(l.split("\t")[7]) for l in open(f"{out}/{p}.tsv")
	               if not l.startswith("#") and l.split("\t")[6] == "1" and float(l.split("\t")[7]) >= 0)
	    with open(f"{out}/{p}.cdf", "w") as f:
	        for i, x in enumerate(v):
	            f.write(f"{x:.3f}\t{(i + 1) / len(v):.5f}\n")
	print()
	cfg = j.get("config", {})
	print(f"workload: {cfg.get('sessions')} sessions x {cfg.get('turns')} turns, context"
	      f" {cfg.get('context_tokens')} + {cfg.get('turn_tokens')}/turn tokens,"
	      f" {cfg.get('output_tokens')} output tokens, {cfg.get('rate')} sessions/s"
	      f" (bursts {cfg.get('burst_prob')} x {cfg.get('burst_size')}), seed {cfg.get('seed')},"
	      f" {cfg.get('sources')} client addresses")
	hdr = ("policy", "reqs", "failed", "cache_hit", "cold", "loads", "ttft_p50", "ttft_p99",
	       "e2e_p50", "e2e_p99", "tok_s")
	print("%-11s %6s %6s %9s %5s %5s %9s %9s %9s %9s %7s" % hdr)
	for p in policies:
	    t = res[p]
	    print("%-11s %6d %6d %9.3f %5d %5s %9.0f %9.0f %9.0f %9.0f %7.1f" % (
	        p, t["requests"], t["failed"], t["cache_hit"], t["cold_starts"], loads.get(p, "-"),
	        t["ttft_p50_ms"], t["ttft_p99_ms"], t["e2e_p50_ms"], t["e2e_p99_ms"], t["tok_s"]))
	print("(ms; cache_hit = prompt tokens served from the prefix cache; cold = requests that"
	      " waited for a model load; loads = model loads the nodes counted)")
	if "ai" in res and "rr" in res:
	    ai, rr = res["ai"], res["rr"]
	    classic = [p for p in res if p != "ai"]
	    best = min(classic, key=lambda p: res[p]["ttft_p99_ms"])
	    goals = [
	        ("ai ttft_p99 <= 0.5 x rr", ai["ttft_p99_ms"] / rr["ttft_p99_ms"], 0.5, True),
	        (f"ai ttft_p99 <= 0.7 x best classic ({best})",
	         ai["ttft_p99_ms"] / res[best]["ttft_p99_ms"], 0.7, True),
	        ("ai cache_hit >= 2 x rr", ai["cache_hit"] / rr["cache_hit"] if rr["cache_hit"] else
	         math.inf, 2, False),
	    ]
	    print()
	    for name, r, lim, le in goals:
	        ok = r <= lim if le else r >= lim
	        print(f"goal {name}: ratio {r:.2f} {'met' if ok else 'MISSED'}")
	    print(f"goal ai failed == 0: {ai['failed']} {'met' if ai['failed'] == 0 else 'MISSED'}")
	    fewer = all(ai["cold_starts"] < res[p]["cold_starts"] for p in classic)
	    print(f"goal ai fewer cold starts than every other policy: {ai['cold_starts']} vs"
	          f" {min(res[p]['cold_starts'] for p in classic)} {'met' if fewer else 'MISSED'}")
EOF

{
	echo "set terminal png size 900,560"
	echo "set output '$OUT/ttft-cdf.png'"
	echo "set title 'Time to first token per policy, CDF (make bench-routing)'"
	echo "set xlabel 'time to first token (ms, log scale)'"
	echo "set ylabel 'fraction of requests'"
	# noenhanced: policy names keep their underscores
	echo "set termoption noenhanced"
	echo "set logscale x; set grid; set key top left box opaque; set yrange [0:1.02]"
	sep="plot"
	k=0
	colors=('#7b3294' '#1b9e77' '#2c7fb8' '#d95f02' '#e41a1c' '#666666' '#a6761d')
	for p in $POLICIES; do
		echo "$sep '$OUT/$p.cdf' using 1:2 with steps lw $([ "$p" = ai ] && echo 3 || echo 2)" \
			"lc rgb '${colors[$((k % ${#colors[@]}))]}' title '$p' \\"
		sep="    ,"
		k=$((k + 1))
	done
	echo
} >"$OUT/ttft-cdf.gp"
gnuplot "$OUT/ttft-cdf.gp" 2>"$OUT/gnuplot.err" || die "gnuplot failed: $(cat "$OUT/gnuplot.err")"
echo "plot: $OUT/ttft-cdf.png"
