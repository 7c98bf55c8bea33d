#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make bench-routing: does inference-aware routing pay off against classic
# policies configured as an operator would? The same chat workload
# (aibl-loadgen chat: multi-turn sessions, each from its own client address,
# a long shared context per session, bursty Poisson arrivals, several
# models) through the lab's aibl-simnode nodes under each policy, at each
# load level of a sweep, with fresh nodes (same residency, empty caches)
# and a fresh aibld for every run.
#
# Default node mix (--mix, one KIND:RESIDENT-MODELS per node):
#   n1 fast GPU  m-a,m-b     n2 fast GPU  m-a,m-c     n3 slow GPU (x2.5) m-b,m-c
#   n4 CPU-only (x8) m-c
# Models m-a and m-b take 40 GB, m-c 16 GB; a GPU node holds 80 GB, so a
# request for a model a node does not hold loads it (--load-ms, x slowdown)
# and evicts another: a cold start (a --mix whose resident models do not fit
# a node, 80 GB or a CPU node's 20 GB, is refused). One service (VIP) per
# model, ipip mode;
# m-a and m-b need a GPU (accelerator: gpu); node weights 100, the CPU
# node 25.
#
# Policies (--policies, default least_conn,least_time,hash,ai): rr and wrr
# are left out of the default run to keep it under 15 minutes, not to
# flatter ai: rr came last at every rate of the default scenario when it
# was in the run (--policies rr,wrr,... adds them).
#
# L7 comparators (--policies ...,haproxy,haproxy-bounded; not in the
# default run): every AI-aware router today is an L7 proxy. Both are
# Debian's HAProxy in the balancer's namespace, in HTTP mode, as an
# operator sets it up for multi-turn chat: a frontend per model VIP, its
# backend the same nodes as the classic policies' (--baseline) with their
# weights, each request hashed on its session header (X-Session-Id, which
# aibl-loadgen sends) with consistent hashing, HTTP health checks every
# second. "haproxy" keeps a session on its node whatever the load, as vLLM
# production-stack's session router does; "haproxy-bounded" bounds each
# node at 1.5x the average load (hash-balance-factor 150: a session spills
# to the next node on the ring while its own carries more). They see every
# request and its session, which an L4 balancer does not, and every byte of
# the answers passes through them (no direct server return). Their lines
# are printed as the others; the goals compare ai with the classic policies
# only, and "l7" lines give ai's figures over each one's.
#
# Baseline (--baseline): "resident" (default) lists, for every classic
# service, the nodes where its model is resident at the start, as an
# operator of a classic balancer would; "all" gives them every node (they
# then cold-start models). ai services list no nodes: finding where a model
# is resident is the ai policy's job.
#
# Scenarios (--scenarios LIST, default: all of them):
#   default      the mix above
#   kv-pressure  KV caches of 12000 tokens per node (simnode
#                --cache-tokens), below the sessions' working set: prefixes
#                are evicted, and a node whose running prompts fill it holds
#                the next one back
#   dynamic      a third into each run an operator moves models: n1 unloads
#                m-b, n2 unloads m-c and loads m-b; classic lists go stale.
#                The unloads go through the nodes' agents, which drain
#                first, and m-b's old copy goes once its new one is
#                loaded (move_models below): n2's m-c goes about 3.3 s in,
#                n1's m-b about 7.4 s in, as the last measured turns end
#                (cold starts are expected for them, not a goal for ai)
#   keepalive    clients keep their connection for every turn (--keepalive)
#   nat          8 sessions behind each client address (--sessions-per-source)
#   burst        arrivals in bursts beyond capacity (--burst-prob 0.3
#                --burst-size 24)
# Load sweep (--rates LIST, arrivals/s, default 3,6,12): aibl-loadgen's
# --rate is of arrivals, and an arrival is one new session or, with
# probability --burst-prob, a burst of --burst-size (its defaults 0.1 and
# 8: 1.7 sessions an arrival on average; burst's 0.3 and 24: 7.9), so
# sessions come at rate x (1 - p + p x size) a second (each scenario's
# line says it). Each run is one aibl-loadgen run whose first rate x
# --warmup-s sessions (default 2 s), at least 6, arrive one at a time
# (aibl-loadgen --calm-sessions: no burst) and are not measured; the
# measured ones follow, bursts and all: rate x --run-s (default 4)
# sessions, at least 18 (72 requests or more for a p99), over less time
# than --run-s where bursts bring several at once.
# That is the steady state of a balancer that has been running: what
# least_time and ai learn of the nodes they learn in the warm-up, and the
# measured sessions meet the load the earlier ones still put on the nodes.
# (Without a calm warm-up a burst of 24 took the whole warm-up in one
# arrival, and the measured sessions met balancers that had seen nothing.)
# Figures of a run are computed here from its samples (--samples), over the
# measured sessions: tok_s is their output tokens over the time from the
# first one's start to the last one's end. Cold starts alone count the
# warm-up's requests too (a load there evicts a model the measured ones
# may need).
# Loadgen defaults otherwise (see aibl-loadgen --help), model mix m-a:3
# m-b:2 m-c:1, less any model no node of the mix holds (an operator runs
# no service for it); anything after `--` goes to aibl-loadgen chat (e.g.
# -- --seed 2 --context-tokens 3000; --sessions fixes the count at every rate;
# --model m-a:1 --model m-c:2 is a mix of one's own, each sent to its VIP;
# --rate, --samples, --json, --target and --source are the bench's own).
#
# Output: a line per scenario, rate and policy
#   policy <name> rate=<r> scenario=<s> ttft_p99_ms=.. e2e_p99_ms=.. tok_s=..
#          cache_hit=.. cold_starts=.. failed=..
# (cold_starts: requests that waited for a model load), the goal checks per
# scenario and rate, a summary table (per scenario and rate, ai's TTFT p99
# and tok/s over the best classic policy's and the goals it missed), and
# $AIBL_BUILD/bench/routing/ttft-p99-<scenario>.png
# (TTFT p99 against rate per policy). Each run leaves, in
# $AIBL_BUILD/bench/routing/<scenario>/<policy>-r<rate>.*, the load
# generator's samples (.tsv) and result (.json), the figures (.stats.json)
# and aibld's log (.aibld.log). A missed TTFT goal that lies below
# the floor of every policy (the p99 of each request's prefill on the
# fastest node that may serve it, its earlier turns cached, no queue) says
# so: no routing meets it.
#
#   lab/bench-routing.sh [--prefix P] [--policies LIST] [--mix SPEC]
#       [--load-ms MS] [--baseline resident|all] [--rates LIST] [--run-s S]
#       [--warmup-s S] [--scenarios LIST] [--sim-args ARGS] [--ai KEY=VALUE]...
#       [--gpu-memory] [--family 4|6] [--forwarding ipip|l2dsr] [--keep-lab]
#       [--report] [-- LOADGEN-ARGS]
# --sim-args gives every node's aibl-simnode more flags (e.g.
# "--shared-prefill": prefills take turns on a node's compute).
# --ai sets a key of the controller's ai section (docs/aibld.md), e.g.
# cold_start_after_ms=5000, for an experiment: the goals hold every policy
# to its documented defaults.
# --gpu-memory gives every GPU node a fake GPU (tests/libfake_nvml.so, lab.sh
# LAB_FAKE_NVML) whose memory its simnode fills as models load: ai loads a
# model beside resident nodes only where it fits (services' memory_mb, the
# model's size here, is always in the config; without figures it is moot).
# --family 6 runs it all over IPv6: the VIPs (fd00:200::N), the clients'
# addresses and the nodes' (IPv6-in-IPv6 tunnels; the nodes' decap, their
# agents' cache hints and ai's pins and client affinity for IPv6 clients).
# --forwarding l2dsr: the balancer rewrites MAC addresses only (default
# ipip: it tunnels); the nodes' decap program then records the clients of
# plain packets to their VIPs, for ai's traffic hints.
# --report prints the lines, goals and plots of the last run again (same
# --scenarios, --rates and --policies) without running anything.
set -uo pipefail
cd "$(dirname "$0")/.."
export AIBL_ROOT=$PWD
export AIBL_BUILD=${AIBL_BUILD:-$PWD/build}
export LAB_SIM_PORT=23080 LAB_AGENT_PORT=23071 LAB_API=http://127.0.0.1:23070
export LAB_SCRAPE_MS=200 LAB_POLL_MS=200 LAB_WATCH_MS=50
# agents time each node's speed once, idle, before its first request
# (aibl-agent --speed-probe); LAB_AGENT_ARGS= (empty) runs them without
export LAB_AGENT_ARGS=${LAB_AGENT_ARGS-"--speed-probe"}
# LAB_STATED_SLOTS=1: the agents state their simnodes' slots (lab.sh), off
# by default: measured a trade (docs/benchmarks.md, "Stated slots")
# a node is up at its first good check: every run starts with fresh nodes
export LAB_RISE_AFTER=1
# shellcheck source=lab/lab.sh
. lab/lab.sh

ALL_SCENARIOS="default kv-pressure dynamic keepalive nat burst"
PREFIX=bm
POLICIES="least_conn least_time hash ai"
MIX="fast:m-a,m-b fast:m-a,m-c slow:m-b,m-c cpu:m-c"
LOAD_MS=3000
JITTER=0.1 # every simnode's request times vary by +-10 %
BASELINE=resident
RATES="3 6 12"
RUN_S=4
WARMUP_S=2
SCENARIOS=$ALL_SCENARIOS
FAMILY=4
FORWARDING=ipip
KEEP_LAB=0
REPORT=0
LG_ARGS=()
SIM_ARGS=()
AI_SET=()
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) PREFIX=$2; shift 2 ;;
	--policies) POLICIES=${2//,/ }; shift 2 ;;
	--mix) MIX=$2; shift 2 ;;
	--load-ms) LOAD_MS=$2; shift 2 ;;
	--baseline) BASELINE=$2; shift 2 ;;
	--rates) RATES=${2//,/ }; shift 2 ;;
	--run-s) RUN_S=$2; shift 2 ;;
	--warmup-s) WARMUP_S=$2; shift 2 ;;
	--scenarios) SCENARIOS=${2//,/ }; shift 2 ;;
	--sim-args) read -r -a SIM_ARGS <<<"$2"; shift 2 ;;
	--gpu-memory) export LAB_FAKE_NVML=$AIBL_BUILD/tests/libfake_nvml.so; shift ;;
	--family) FAMILY=$2; shift 2 ;;
	--forwarding) FORWARDING=$2; shift 2 ;;
	--ai)
		[[ "$2" =~ ^[a-z_]+=[0-9]+([.][0-9]+)?$ ]] ||
			{ echo "bench-routing: --ai: '$2' is not KEY=NUMBER" >&2; exit 2; }
		AI_SET+=("$2"); shift 2 ;;
	--keep-lab) KEEP_LAB=1; shift ;;
	--report) REPORT=1; shift ;;
	--) shift; LG_ARGS=("$@"); break ;;
	-h|--help) sed -n '3,/^set -uo/{/^set -uo/!p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-routing: unknown option $1" >&2; exit 2 ;;
	esac
done
die() {
	echo "bench-routing: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || [ "$REPORT" = 1 ] ||
	{ echo "bench-routing: needs root (network namespaces, XDP)" >&2; exit 2; }
[ -z "${LAB_FAKE_NVML:-}" ] || [ -e "$LAB_FAKE_NVML" ] || [ "$REPORT" = 1 ] ||
	{ echo "bench-routing: --gpu-memory: $LAB_FAKE_NVML not built (make bench-routing builds it)" >&2; exit 2; }
for t in gnuplot python3; do
	command -v $t >/dev/null || { echo "bench-routing: $t missing (scripts/deps.sh)" >&2; exit 2; }
done
for p in $POLICIES; do
	case "$p" in
	haproxy | haproxy-bounded) ;;
	haproxy*) echo "bench-routing: --policies: unknown L7 comparator '$p' (haproxy, haproxy-bounded)" >&2; exit 2 ;;
	esac
done
case " $POLICIES " in
*" haproxy"*)
	command -v haproxy >/dev/null ||
		{ echo "bench-routing: --policies haproxy: haproxy missing (scripts/deps.sh)" >&2; exit 2; } ;;
esac
case "$BASELINE" in resident|all) ;; *) echo "bench-routing: --baseline resident|all" >&2; exit 2 ;; esac
case "$FAMILY" in 4|6) ;; *) echo "bench-routing: --family 4|6" >&2; exit 2 ;; esac
case "$FORWARDING" in ipip|l2dsr) ;; *) echo "bench-routing: --forwarding ipip|l2dsr" >&2; exit 2 ;; esac
for s in $SCENARIOS; do
	case " $ALL_SCENARIOS " in *" $s "*) ;; *) echo "bench-routing: unknown scenario '$s' ($ALL_SCENARIOS)" >&2; exit 2 ;; esac
done
for r in $RATES; do
	[[ "$r" =~ ^[0-9]+([.][0-9]+)?$ ]] && [ "$r" != 0 ] ||
		{ echo "bench-routing: --rates: '$r' is not a positive number" >&2; exit 2; }
done
[[ "$RUN_S" =~ ^[0-9]+$ ]] && [ "$RUN_S" -gt 0 ] || { echo "bench-routing: --run-s: whole seconds" >&2; exit 2; }
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || { echo "bench-routing: --warmup-s: whole seconds" >&2; exit 2; }

read -ra NODEV <<<"$MIX"
NODES=${#NODEV[@]}
MODELS="m-a:40000,m-b:40000,m-c:16000"
GPU_ONLY="m-a m-b" # their services say accelerator: gpu
SLOW_FACTOR=2.5    # simnode --slowdown of a slow node
CPU_FACTOR=8       # simnode --cpu-factor of a CPU node
OUT=$AIBL_BUILD/bench/routing
CFG=$OUT/aibld.yaml
PORT=$LAB_SIM_PORT

# simnode flags of a node kind
kind_args() {
	case "$1" in
	fast) echo "--mem-mb 80000" ;;
	slow) echo "--mem-mb 80000 --slowdown $SLOW_FACTOR" ;;
	cpu) echo "--mem-mb 20000 --cpu --cpu-factor $CPU_FACTOR" ;;
	*) echo "bench-routing: --mix: unknown node kind '$1' (fast, slow, cpu)" >&2; exit 2 ;;
	esac
}
for n in "${NODEV[@]}"; do kind_args "${n%%:*}" >/dev/null; done
# a node's resident models must fit its memory: aibl-simnode refuses to
# start otherwise, and a run with a node missing measures something else
MIX_MEM=()
for n in "${NODEV[@]}"; do
	MIX_MEM+=("$(kind_args "${n%%:*}" | sed -n 's/.*--mem-mb \([0-9]*\).*/\1/p'):$n")
done
python3 - "$MODELS" "${MIX_MEM[@]}" <<-'EOF' || exit 2
	import sys
	size = {m: int(mb) for m, mb in (x.split(":") for x in sys.argv[1].split(","))}
	for i, spec in enumerate(sys.argv[2:], 1):
	    if spec.count(":") < 2:
	        sys.exit("bench-routing: --mix: node n%d: '%s' is not KIND:MODELS" % (i, spec.split(":", 1)[1]))
	    mem, kind, res = spec.split(":", 2)
	    mem = int(mem)
	    models = [m for m in res.split(",") if m]
	    for m in models:
	        if m not in size:
	            sys.exit("bench-routing: --mix: node n%d: unknown model '%s' (%s)" % (i, m, ", ".join(size)))
	    need = sum(size[m] for m in models)
	    if need > mem:
	        sys.exit("bench-routing: --mix: node n%d (%s) cannot hold %s: %d MB, more than its %d MB"
	                 % (i, kind, ",".join(models), need, mem))
	if not any(spec.split(":", 2)[2].strip(",") for spec in sys.argv[2:]):
	    sys.exit("bench-routing: --mix: no node holds a model: nothing to serve")
	EOF
# the last run's results go only once the arguments are known to be good
mkdir -p "$OUT"
[ "$REPORT" = 1 ] || rm -rf "${OUT:?}"/*

# what a scenario changes: simnode flags, loadgen flags
scen_sim() {
	case "$1" in
	kv-pressure) echo "--cache-tokens 12000" ;;
	esac
}
scen_lg() {
	case "$1" in
	keepalive) echo "--keepalive" ;;
	nat) echo "--sessions-per-source 8" ;;
	burst) echo "--burst-prob 0.3 --burst-size 24" ;;
	esac
}

nodes_start() { # SCENARIO
	local i kind res
	for i in $(seq "$NODES"); do
		kind=${NODEV[$((i - 1))]%%:*}
		res=${NODEV[$((i - 1))]#*:}
		# one simulator seed for every node: a request's reply text and
		# jitter are then the same whichever node serves it, so the
		# policies see one workload (with a seed per node, a reply's
		# words, and so the next turn's length, followed the routing)
		# shellcheck disable=SC2046
		lab_start_node "$i" --models "$MODELS" --resident "$res" --load-ms "$LOAD_MS" \
			--jitter "$JITTER" --seed 1 $(kind_args "$kind") $(scen_sim "$1") \
			"${SIM_ARGS[@]}" ||
			die "node n$i did not start"
	done
	# no wait here: aibld's "up" (health port and agent) is the wait
}

# every node's agent and simnode, stopped at once (each lab_stop waits for
# its process)
nodes_stop() {
	local i pids=()
	for i in $(seq "$NODES"); do
		lab_stop "agent-n$i" &
		pids+=($!)
		lab_stop "sim-n$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
}

# the dynamic scenario's move: n1 gives up m-b, n2 trades m-c for m-b
model_op() { # NODE OP MODEL
	lab_run "n$1" curl -sf --max-time 30 -X POST -H 'Content-Type: application/json' \
		-d "{\"lora_name\": \"$3\"}" "http://127.0.0.1:$PORT/v1/${2}_lora_adapter" >/dev/null
}
# An unload goes through the node's agent, as an operator of aibl moves a
# model (docs/agent.md, "Drain, then unload"): the agent drains first (its
# reports say the model is gone, every balancer polling sees that, then
# --drain-ms, 1 s by default, for the flows they sent before) and then
# unloads it on the engine. Every policy's run moves so; the classic lists
# never follow the reports, so for them it only sets when the unload lands.
# drain_timeout_ms 0: the move comes at the same time under every policy. A
# classic policy's stale list keeps sending the model's connections to the
# node, so a wait for them to close (the agent's default) would put its move
# off to the drain timeout, past the run, and the lists would never go stale.
agent_unload() { # NODE MODEL: until the agent has unloaded it
	local code
	code=$(lab_run "n$1" curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
		-H 'Content-Type: application/json' \
		-d "{\"model\": \"$2\", \"drain_timeout_ms\": 0}" \
		"http://127.0.0.1:$LAB_AGENT_PORT/v1/unload")
	# 200: not resident there (a --mix without it), nothing to drain
	[ "$code" = 200 ] && return 0
	[ "$code" = 202 ] || return 1
	for _ in $(seq 1500); do
		lab_run "n$1" curl -sf --max-time 1 "http://127.0.0.1:$LAB_AGENT_PORT/v1/load" |
			grep -q '"busy":false' && return 0
		sleep 0.02
	done
	return 1
}
# The move, as an operator moves a model: room first (n2's m-c goes), then
# the new copy (m-b loads on n2), and only then the old one goes (n1's m-b),
# so m-b never has fewer nodes than before the move began. The first drain
# begins DRAIN_LEAD_S before SECONDS, so n2's unload of m-c and its load of
# m-b begin about when they did when the engines were told directly.
DRAIN_LEAD_S=1.1
move_models() { # SECONDS
	sleep "$(python3 -c "print(max(0, $1 - $DRAIN_LEAD_S))")"
	agent_unload 2 m-c
	model_op 2 load m-b
	agent_unload 1 m-b
}

# whether MODEL is resident on a node of the mix at the start. The
# workload asks only for those: an operator runs no service for a model
# that no node serves (listing no node, a classic service was refused;
# listing every node that could load it, each would load it)
served() {
	[ -n "$(resident_on "$1")" ]
}

# the models of MODELS that a node of the mix holds at the start, in
# MODELS' order: those a service (VIP) is run for
served_models() {
	local m
	for m in ${MODELS//,/ }; do
		served "${m%%:*}" && echo "${m%%:*}"
	done
}

# the VIP of MODEL's service: 10.200.0.N (--family 6: fd00:200::N), N its
# place in MODELS, served or not, so a model keeps its VIP whatever the mix
model_vip() {
	local i=0 m
	for m in ${MODELS//,/ }; do
		i=$((i + 1))
		[ "${m%%:*}" = "$1" ] || continue
		if [ "$FAMILY" = 6 ]; then echo "fd00:200::$i"; else echo "10.200.0.$i"; fi
		return 0
	done
	return 1
}

# MODEL's service as a URL's host: its VIP, an IPv6 one in brackets
model_host() {
	local v
	v=$(model_vip "$1") || return 1
	case "$v" in *:*) echo "[$v]" ;; *) echo "$v" ;; esac
}

# the MiB MODEL takes, from MODELS
model_mb() {
	local m
	for m in ${MODELS//,/ }; do
		[ "${m%%:*}" = "$1" ] && { echo "${m#*:}"; return 0; }
	done
	return 1
}

# nodes where MODEL is resident at the start, from the mix
resident_on() {
	local i
	for i in $(seq "$NODES"); do
		case ",${NODEV[$((i - 1))]#*:}," in *",$1,"*) echo "n$i" ;; esac
	done
}

# The loadgen's arguments: those after `--`, where a `--model NAME[:W]`
# without a URL is sent to NAME's VIP (the mix weights of one's own), and
# the default mix when they name no model. A model that is not one of
# MODELS, or that no node holds at the start, is refused here rather than
# measured as a run of failed requests.
LG_RUN=()
have_model=0
for ((i = 0; i < ${#LG_ARGS[@]}; i++)); do
	a=${LG_ARGS[$i]}
	case "$a" in
	--rate | --rate=* | --samples | --samples=* | --json | --target | --target=* | --source | --source=*)
		# each run's own: the sweep's rate, the samples the figures come
		# from, the VIPs and the lab's client addresses
		hint=
		[ "${a%%=*}" = --rate ] && hint=" (the sweep: --rates)"
		echo "bench-routing: ${a%%=*} after --: the bench sets it for each run$hint" >&2
		exit 2 ;;
	--model) m=${LG_ARGS[$((i + 1))]:-}; i=$((i + 1)) ;;
	--model=*) m=${a#--model=} ;;
	*) LG_RUN+=("$a"); continue ;;
	esac
	have_model=1
	if [[ "$m" != *=* ]]; then
		model_vip "${m%%:*}" >/dev/null ||
			{ echo "bench-routing: --model '$m': unknown model '${m%%:*}' ($(sed 's/:[0-9]*//g; s/,/, /g' <<<"$MODELS"))" >&2; exit 2; }
		served "${m%%:*}" ||
			{ echo "bench-routing: --model '$m': no node of --mix holds ${m%%:*}" >&2; exit 2; }
		m="$m=http://$(model_host "${m%%:*}"):$PORT"
	fi
	LG_RUN+=(--model "$m")
done
if [ $have_model = 0 ]; then
	for m in m-a:3 m-b:2 m-c:1; do
		served "${m%%:*}" && LG_RUN+=(--model "$m=http://$(model_host "${m%%:*}"):$PORT")
	done
fi

write_config() { # POLICY
	local i kind m kv
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
		if [ ${#AI_SET[@]} -gt 0 ]; then
			echo "ai:"
			for kv in "${AI_SET[@]}"; do echo "  ${kv%%=*}: ${kv#*=}"; done
		fi
		echo "services:"
		for m in $(served_models); do
			echo "  - name: $m"
			echo "    vip: \"$(model_vip "$m")\""
			echo "    port: $PORT"
			echo "    proto: tcp"
			echo "    model: $m"
			echo "    memory_mb: $(model_mb "$m")"
			echo "    policy: $1"
			case " $GPU_ONLY " in *" $m "*) echo "    accelerator: gpu" ;; esac
			if [ "$1" != ai ] && [ "$BASELINE" = resident ]; then
				echo "    nodes: [$(resident_on "$m" | paste -sd, | sed 's/,/, /g')]"
			fi
		done
		# shellcheck disable=SC2046
		LAB_NODE_FAMILY=$FAMILY lab_yaml_nodes $(for i in $(seq "$NODES"); do
			[ "${NODEV[$((i - 1))]%%:*}" = cpu ] && echo 25 || echo 100
		done)
	} >"$CFG"
}

# An L7 comparator's configuration (above, "L7 comparators"): a frontend
# per served model on its VIP, a backend of the nodes a classic service of
# the model lists, with their weights
HAP_CFG=$OUT/haproxy.cfg
hap_config() { # haproxy|haproxy-bounded
	local m i kind host
	{
		cat <<-EOF
			global
			    maxconn 4096
			defaults
			    mode http
			    option http-no-delay
			    # the client's address to the engines, whose sessions
			    # key their jitter and cache by it (as through aibl)
			    option forwardfor
			    timeout connect 5s
			    timeout client 300s
			    timeout server 300s
			    timeout http-keep-alive 60s
		EOF
		for m in $(served_models); do
			printf 'frontend fe-%s\n    bind %s:%s\n    default_backend be-%s\n' \
				"$m" "$(model_vip "$m")" "$PORT" "$m"
			printf 'backend be-%s\n    balance hdr(X-Session-Id)\n    hash-type consistent\n' "$m"
			[ "$1" = haproxy-bounded ] && printf '    hash-balance-factor 150\n'
			printf '    option httpchk GET /health\n'
			for i in $(seq "$NODES"); do
				kind=${NODEV[$((i - 1))]%%:*}
				if [ "$BASELINE" = resident ]; then
					# no pipe into grep -q: under pipefail, resident_on
					# killed by SIGPIPE after a match dropped the node
					[[ " $(echo $(resident_on "$m")) " == *" n$i "* ]] || continue
				else
					case " $GPU_ONLY " in *" $m "*) [ "$kind" = cpu ] && continue ;; esac
				fi
				host=$(lab_node "$i" IP$FAMILY)
				printf '    server n%s %s:%s check inter 1s weight %s\n' "$i" "$host" "$PORT" \
					"$([ "$kind" = cpu ] && echo 25 || echo 100)"
			done
		done
	} >"$HAP_CFG"
}
hap_vips() { # add|del
	local m v
	for m in $(served_models); do
		v=$(model_vip "$m")
		if [ "$1" = add ]; then
			lab_run lb ip addr replace "$v/$([ "$FAMILY" = 6 ] && echo 128 || echo 32)" dev lo
		else
			lab_run lb ip addr del "$v/$([ "$FAMILY" = 6 ] && echo 128 || echo 32)" dev lo 2>/dev/null
		fi
	done
	return 0
}
# haproxy runs, and every node's engine answers its health check from the
# balancer, and every model's VIP from the client, through haproxy
hap__up() {
	local i m
	[ -n "$(lab_pid haproxy)" ] || return 1
	for i in $(seq "$NODES"); do
		lab_run lb curl -sf --max-time 1 -o /dev/null \
			"http://$(lab_node "$i" IP$FAMILY | sed 's/.*:.*/[&]/'):$PORT/health" || return 1
	done
	for m in $(served_models); do
		lab_run cli curl -sf --max-time 1 -o /dev/null "http://$(model_host "$m"):$PORT/health" ||
			return 1
	done
}
hap_start() { # haproxy|haproxy-bounded
	hap_config "$1"
	hap_vips add
	lab_spawn lb haproxy haproxy -db -f "$HAP_CFG" || return 1
	lab_wait 20 hap__up
}
hap_stop() {
	lab_stop haproxy
	hap_vips del
}

cleanup() {
	trap - EXIT INT TERM
	[ -n "${MOVER:-}" ] && kill "$MOVER" 2>/dev/null
	lab_stop aibld 2>/dev/null
	hap_stop 2>/dev/null
	[ -s "$CFG" ] && lab_run lb "$AIBL_BUILD/aibld" --teardown --config "$CFG" >/dev/null 2>&1
	nodes_stop 2>/dev/null
	[ "$KEEP_LAB" = 0 ] && lab/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1
	return 0
}

# measure TSV WARM: the figures of the sessions after the first WARM ones
# (sessions are numbered in arrival order; cold starts: of every session),
# as JSON (nearest-rank percentiles, as aibl-loadgen computes them).
# ttft_floor_p99_ms: the TTFT p99 no policy goes under. Each request's
# prefill on the fastest node that may serve its model, with the model
# resident, the session's earlier prompt and reply cached, no queue and no
# network (aibl-simnode's --prefill-base-ms + --prefill-ms-per-tok per
# uncached token, 2 ms and 0.05 ms unless --sim-args says otherwise, x its
# --slowdown and --cpu-factor, x the least of its --jitter). Every request
# takes at least its own, so a run's p99 is at least their p99.
sim_arg() { # NAME DEFAULT: the value --sim-args gives the nodes (the last one wins)
	local i v=$2
	for ((i = 0; i < ${#SIM_ARGS[@]}; i++)); do
		[ "${SIM_ARGS[i]}" = "--$1" ] && v=${SIM_ARGS[i + 1]:-$v}
		case ${SIM_ARGS[i]} in --$1=*) v=${SIM_ARGS[i]#--$1=} ;; esac
	done
	echo "$v"
}
measure() {
	python3 - "$1" "$2" "$MIX" "$(sim_arg jitter "$JITTER")" "$SLOW_FACTOR" "$CPU_FACTOR" \
		"$GPU_ONLY" "$(sim_arg prefill-base-ms 2)" "$(sim_arg prefill-ms-per-tok 0.05)" <<-'EOF'
		import json, math, sys
		every = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")]
		rows = [r for r in every if int(r[3]) >= int(sys.argv[2])]
		if not rows:
		    sys.exit(1)
		ok = [r for r in rows if r[6] == "1"]
		def pct(v, p):
		    v = sorted(v)
		    return v[min(len(v), max(1, math.ceil(p / 100 * len(v)))) - 1] if v else float("nan")
		kinds = [n.split(":")[0] for n in sys.argv[3].split()]
		mult = {"fast": 1.0, "slow": float(sys.argv[5]), "cpu": float(sys.argv[6])}
		def fastest(model):
		    return (1 - float(sys.argv[4])) * min(mult[k] for k in kinds
		                                          if k != "cpu" or model not in sys.argv[7].split())
		base, per_tok = float(sys.argv[8]), float(sys.argv[9])
		done = {(r[3], int(r[4])): (int(r[10]), int(r[9])) for r in ok}
		def floor(r):
		    # the session's latest earlier turn that succeeded: a failed one
		    # leaves nothing in the conversation, the one before stays cached
		    prompt, t = int(r[10]), int(r[4]) - 1
		    while t >= 0 and (r[3], t) not in done:
		        t -= 1
		    prev = done.get((r[3], t))
		    return (base + per_tok * (max(1, prompt - prev[0] - prev[1]) if prev else prompt)) * fastest(r[2])
		ttft = [float(r[7]) for r in ok if float(r[7]) >= 0]
		e2e = [float(r[8]) for r in ok]
		prompt = sum(int(r[10]) for r in ok)
		t0 = min(float(r[0]) for r in rows)
		t1 = max(float(r[0]) + float(r[8]) for r in ok) if ok else t0
		print(json.dumps({
		    "sessions": len({r[3] for r in rows}), "requests": len(rows), "failed": len(rows) - len(ok),
		    "ttft_p50_ms": pct(ttft, 50), "ttft_p99_ms": pct(ttft, 99),
		    "ttft_floor_p99_ms": pct([floor(r) for r in ok], 99),
		    "e2e_p50_ms": pct(e2e, 50), "e2e_p99_ms": pct(e2e, 99),
		    "tok_s": sum(int(r[9]) for r in ok) / ((t1 - t0) / 1000) if t1 > t0 else 0,
		    "cache_hit": sum(int(r[11]) for r in ok) / prompt if prompt else 0,
		    # a cold start counts failed or not, and in the warm-up too: a
		    # load there costs the measured sessions the model it evicted
		    "cold_starts": sum(int(r[12]) for r in every)}))
	EOF
}

# first_missing: SCENARIO/POLICY-rRATE of the first run of the arguments
# whose results (load generator's, figures) are not there; fails if none
first_missing() {
	local scen rate p
	for scen in $SCENARIOS; do
		for rate in $RATES; do
			for p in $POLICIES; do
				if [ ! -s "$OUT/$scen/$p-r$rate.json" ] || [ ! -s "$OUT/$scen/$p-r$rate.stats.json" ]; then
					echo "$scen/$p-r$rate"
					return 0
				fi
			done
		done
	done
	return 1
}

run_all() {
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	lab/lab.sh down --prefix "$PREFIX" >/dev/null 2>&1
	lab/lab.sh up --prefix "$PREFIX" --nodes "$NODES" --clients 512 --mode "$FORWARDING" \
		>/dev/null 2>&1 ||
		die "lab up failed (lab/lab.sh up --prefix $PREFIX --nodes $NODES --mode $FORWARDING)"
	lab_load "$PREFIX" || exit 1

	SRC_ADDRS=LAB_CLIENT_ADDRS$FAMILY # the clients' addresses, from lab.env
	have_sessions=0
	for a in "${LG_ARGS[@]}"; do
		[ "$a" = --sessions ] && have_sessions=1
	done

	start=$(date +%s)
	for scen in $SCENARIOS; do
		mkdir -p "$OUT/$scen"
		for rate in $RATES; do
			WARM=$(python3 -c "import math; print(max(6, math.ceil($rate * $WARMUP_S)))")
			SESS_ARGS=(--calm-sessions "$WARM")
			[ $have_sessions = 0 ] &&
				SESS_ARGS+=(--sessions "$(python3 -c "import math; print($WARM + max(18, math.ceil($rate * $RUN_S)))")")
			for p in $POLICIES; do
				nodes_start "$scen"
				# each run's balancer log is kept beside its samples
				if [[ "$p" = haproxy* ]]; then
					: >"$LAB_DIR/haproxy.log"
					hap_start "$p" || die "haproxy did not start or a node did not answer (logs: $LAB_DIR/haproxy.log, sim-n*.log)"
				else
					write_config "$p"
					: >"$LAB_DIR/aibld.log"
					lab_start_aibld "$CFG" || die "$p: aibld did not start (log: $LAB_DIR/aibld.log)"
					lab_wait_nodes_up "$NODES" 20 ||
						die "$p: not all $NODES nodes up (logs: $LAB_DIR/sim-n*.log, agent-n*.log)"
				fi
				echo "bench-routing: $scen rate $rate policy $p ($(($(date +%s) - start)) s) ..." >&2
				f=$OUT/$scen/$p-r$rate
				MOVER=
				if [ "$scen" = dynamic ]; then
					move_models "$(python3 -c "print($WARMUP_S + $RUN_S / 3)")" &
					MOVER=$!
				fi
				# shellcheck disable=SC2046
				lab_run cli "$AIBL_BUILD/aibl-loadgen" chat --source "${!SRC_ADDRS}" \
					--rate "$rate" "${SESS_ARGS[@]}" $(scen_lg "$scen") \
					--json --no-progress --samples "$f.tsv" "${LG_RUN[@]}" \
					>"$f.json" 2>"$f.err"
				rc=$?
				[ -n "$MOVER" ] && { wait "$MOVER"; MOVER=; }
				[ -s "$f.json" ] && [ -s "$f.tsv" ] ||
					die "$scen $p: the load generator gave no result (rc $rc): $(head -c 300 "$f.err")"
				# a result all the same, but one that says more of the lab than of the policy
				awk -F'\t' '!/^#/ && $7 == 1 { ok = 1; exit } END { exit !ok }' "$f.tsv" ||
					echo "bench-routing: $scen $p rate $rate: every request failed ($f.err: $(head -c 200 "$f.err"))" >&2
				# the figures are computed while the next run starts
				measure "$f.tsv" "$WARM" >"$f.stats.json" &
				if [[ "$p" = haproxy* ]]; then
					hap_stop &
				else
					lab_stop aibld &
				fi
				nodes_stop
				wait
				if [[ "$p" = haproxy* ]]; then
					cp "$LAB_DIR/haproxy.log" "$f.haproxy.log" 2>/dev/null
				else
					cp "$LAB_DIR/aibld.log" "$f.aibld.log" 2>/dev/null
					lab_run lb "$AIBL_BUILD/aibld" --teardown --config "$CFG" >/dev/null 2>&1
				fi
			done
		done
	done
	wait
	if m=$(first_missing); then
		die "no measured request in $OUT/$m.tsv"
	fi
	echo "bench-routing: $(($(date +%s) - start)) s of runs" >&2
	cleanup
}
if [ "$REPORT" = 0 ]; then
	run_all
elif m=$(first_missing); then
	die "--report: no result for $m in $OUT (it reports the last run of the same --scenarios, --rates and --policies)"
fi

python3 - "$OUT" "$SCENARIOS" "$RATES" "$POLICIES" "$BASELINE" <<-'EOF'
	import json, math, sys
	out, scens, rates, policies, baseline = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), \
	    sys.argv[4].split(), sys.argv[5]
	met = missed = below = 0
	table = {}  # (scenario, rate): (TTFT ratio, tok/s ratio, marks)
	for s in scens:
	    res = {}
	    for r in rates:
	        for p in policies:
	            j = json.load(open(f"{out}/{s}/{p}-r{r}.json"))
	            t = res[(r, p)] = json.load(open(f"{out}/{s}/{p}-r{r}.stats.json"))
	            print(f"policy {p} rate={r} scenario={s} ttft_p99_ms={t['ttft_p99_ms']:.0f}"
	                  f" e2e_p99_ms={t['e2e_p99_ms']:.0f} tok_s={t['tok_s']:.1f}"
	                  f" cache_hit={t['cache_hit']:.3f} cold_starts={t['cold_starts']}"
	                  f" failed={t['failed']}")
	    with open(f"{out}/{s}.p99", "w") as f:
	        f.write("# rate " + " ".join(policies) + "\n")
	        for r in rates:
	            f.write(r + " " + " ".join(f"{res[(r, p)]['ttft_p99_ms']:.1f}" for p in policies) + "\n")
	    cfg = j.get("config", {})
	    print(f"# {s}: {t['sessions']} measured sessions at the last rate after {cfg.get('sessions') - t['sessions']} warming up,"
	          f" {cfg.get('turns')} turns, context {cfg.get('context_tokens')} +"
	          f" {cfg.get('turn_tokens')}/turn tokens, {cfg.get('output_tokens')} output tokens,"
	          f" bursts {cfg.get('burst_prob')} x {cfg.get('burst_size')} (rate x"
	          f" {1 - (cfg.get('burst_prob') or 0) + (cfg.get('burst_prob') or 0) * (cfg.get('burst_size') or 1):.1f}"
	          f" sessions/s), seed {cfg.get('seed')},"
	          f" {cfg.get('sessions_per_source')} session(s) per address, keepalive"
	          f" {cfg.get('keepalive')}, baseline {baseline}")
	    l7 = [p for p in policies if p in ("haproxy", "haproxy-bounded")]
	    for h7 in l7 if "ai" in policies else []:
	        for r in rates:
	            a, h = res[(r, "ai")], res[(r, h7)]
	            print(f"l7 {s} rate={r} ai/{h7} ttft_p99={a['ttft_p99_ms'] / h['ttft_p99_ms']:.2f}"
	                  f" tok_s={a['tok_s'] / h['tok_s'] if h['tok_s'] else float('nan'):.3f}"
	                  f" cache_hit={a['cache_hit']:.3f}/{h['cache_hit']:.3f}"
	                  f" cold_starts={a['cold_starts']}/{h['cold_starts']} failed={a['failed']}/{h['failed']}")
	    classic = [p for p in policies if p != "ai" and p not in l7]
	    if "ai" not in policies or not classic:
	        continue
	    for r in rates:
	        ai = res[(r, "ai")]
	        floor = ai.get("ttft_floor_p99_ms", 0) # not in runs before it was
	        # a classic run with no request served has no p99 (NaN): it is
	        # no best, whatever its place in the list
	        best = min(classic, key=lambda p: (math.isnan(res[(r, p)]["ttft_p99_ms"]),
	                                           res[(r, p)]["ttft_p99_ms"]))
	        best_tok = max(res[(r, p)]["tok_s"] for p in classic)
	        fewest = min(res[(r, p)]["cold_starts"] for p in classic)
	        checks = [
	            (f"ttft_p99 <= 0.7 x {best}", ai["ttft_p99_ms"] <= 0.7 * res[(r, best)]["ttft_p99_ms"],
	             f"{ai['ttft_p99_ms'] / res[(r, best)]['ttft_p99_ms']:.2f}"),
	            ("tok_s >= best classic", ai["tok_s"] >= best_tok,
	             f"{ai['tok_s'] / best_tok:.3f}" if best_tok else "-"),
	            ("failed == 0", ai["failed"] == 0, str(ai["failed"])),
	        ]
	        if s != "dynamic":
	            checks.append(("cold_starts <= fewest classic", ai["cold_starts"] <= fewest,
	                           f"{ai['cold_starts']} vs {fewest}"))
	        goal_ms = 0.7 * res[(r, best)]["ttft_p99_ms"]
	        marks = "".join(m for m, (_, ok, _) in zip("tofc", checks) if not ok)
	        if "t" in marks and goal_ms < floor:
	            marks = marks.replace("t", "F", 1)
	        table[(s, r)] = (checks[0][2], checks[1][2], marks)
	        for name, ok, v in checks:
	            met += ok
	            missed += not ok
	            why = ""
	            if not ok and name.startswith("ttft") and goal_ms < floor:
	                below += 1
	                why = f" (0.7 x {best} = {goal_ms:.0f} ms, below the {floor:.0f} ms floor of every policy)"
	            print(f"goal {s} rate={r} ai {name}: {v} {'met' if ok else 'MISSED'}{why}")
	print(f"goals: {met} met, {missed} missed" +
	      (f" ({below} of them a TTFT p99 below the floor of every policy)" if below else ""))
	if table:
	    # one line per scenario, one column per rate: ai's TTFT p99 and
	    # tok/s over the best classic policy's, then the goals it missed
	    print("# ai / best classic: TTFT p99 (goal <= 0.70), tok/s (goal >= 1.000), missed:"
	          " t TTFT, F TTFT with 0.7x below the floor of every policy, o tok/s,"
	          " f failed, c cold starts")
	    print("summary scenario    " + "".join(f"{'rate=' + r:<20}" for r in rates).rstrip())
	    for s in scens:
	        if any((s, r) in table for r in rates):
	            cells = [table.get((s, r)) for r in rates]
	            print(f"summary {s:<12}" + "".join(
	                f"{c[0] + ' ' + c[1] + (' ' + c[2] if c[2] else ''):<20}" if c else f"{'-':<20}"
	                for c in cells).rstrip())
EOF

colors=('#7b3294' '#1b9e77' '#2c7fb8' '#d95f02' '#e41a1c' '#666666' '#a6761d')
for scen in $SCENARIOS; do
	# a scenario whose every run failed has no point to draw
	if ! awk '!/^#/ { for (i = 2; i <= NF; i++) if ($i != "nan") f = 1 } END { exit !f }' "$OUT/$scen.p99"; then
		echo "plot: none for $scen (no request succeeded)" >&2
		continue
	fi
	{
		echo "set terminal png size 900,560"
		echo "set output '$OUT/ttft-p99-$scen.png'"
		echo "set title 'TTFT p99 against offered load, scenario $scen (make bench-routing)'"
		echo "set xlabel 'arrivals per second (--rates)'"
		echo "set ylabel 'time to first token p99 (ms, log scale)'"
		echo "set termoption noenhanced"
		echo "set logscale y; set grid; set key top left box opaque"
		sep="plot"
		k=0
		for p in $POLICIES; do
			echo "$sep '$OUT/$scen.p99' using 1:$((k + 2)) with linespoints" \
				"lw $([ "$p" = ai ] && echo 3 || echo 2) pt 7" \
				"lc rgb '${colors[$((k % ${#colors[@]}))]}' title '$p' \\"
			sep="    ,"
			k=$((k + 1))
		done
		echo
	} >"$OUT/ttft-p99-$scen.gp"
	gnuplot "$OUT/ttft-p99-$scen.gp" 2>"$OUT/gnuplot.err" ||
		die "gnuplot failed: $(cat "$OUT/gnuplot.err")"
	echo "plot: $OUT/ttft-p99-$scen.png"
done
