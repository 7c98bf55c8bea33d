#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make demo [POLICY=rr]  ->  lab/demo.sh [--policy P] [--sessions N] [--keep]
#
# The whole system on one machine, as root: installs what is missing, builds,
# brings up a lab (lab/lab.sh) with 4 simulated inference nodes
#
#   n1  fast GPU   resident: llama-8b, qwen-14b     (mistral-7b loadable)
#   n2  fast GPU   resident: llama-8b, mistral-7b   (qwen-14b loadable)
#   n3  slow GPU   resident: qwen-14b, mistral-7b   (2.5x slower)
#   n4  CPU only   resident: llama-8b               (10x slower, 2 slots,
#                                                     configured weight 25)
#
# serving 3 models on 3 VIPs, runs aibld with the ai policy (or --policy),
# drives multi-turn chat sessions with aibl-loadgen from 64 client addresses,
# prints the per-node and per-model results and `aiblctl service show`, and
# tears the lab down. Loading a model that is not resident takes 3 s and
# evicts another one when the node's memory is full (a cold start).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
POLICY=ai
SESSIONS=48
KEEP=0
while [ $# -gt 0 ]; do
	case "$1" in
	--policy) POLICY=$2; shift 2 ;;
	--sessions) SESSIONS=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '3,/^set -euo/{/^set -euo/!p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "demo: unknown option $1" >&2; exit 2 ;;
	esac
done
case "$POLICY" in
rr|wrr|hash|least_conn|least_time|ai) ;;
*) echo "demo: --policy is one of rr wrr hash least_conn least_time ai" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (network namespaces, XDP): sudo make demo" >&2; exit 1; }

say() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }

say "dependencies and build"
scripts/deps.sh
export AIBL_BUILD=${AIBL_BUILD:-$ROOT/build}
make -s BUILD="${AIBL_BUILD#"$ROOT"/}" all

# shellcheck source=lab/lab.sh
. lab/lab.sh
PREFIX=demo
cleanup() {
	if [ "$KEEP" = 1 ]; then
		echo "demo: lab kept; remove it with: lab/lab.sh down --prefix $PREFIX" >&2
	else
		say "teardown"
		lab/lab.sh down --prefix "$PREFIX"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "lab: client host, edge balancer (XDP), 4 inference nodes"
lab/lab.sh down --prefix "$PREFIX" 2>/dev/null
lab/lab.sh up --prefix "$PREFIX" --nodes 4 --clients 64
lab_load "$PREFIX"

MODELS=llama-8b:8000,qwen-14b:14000,mistral-7b:7000
node() { # I MEM-MB SLOTS RESIDENT [EXTRA...]
	local i=$1 mem=$2 slots=$3 res=$4
	shift 4
	lab_start_node "$i" --models "$MODELS" --mem-mb "$mem" --slots "$slots" --resident "$res" \
		--load-ms 3000 --decode-ms-per-tok 4 --prefill-ms-per-tok 0.08 --jitter 0.1 \
		--seed "$i" "$@"
}
node 1 24000 8 llama-8b,qwen-14b
node 2 16000 8 llama-8b,mistral-7b
node 3 22000 8 qwen-14b,mistral-7b --slowdown 2.5
node 4 9000 2 llama-8b --cpu
for i in 1 2 3 4; do
	lab_wait_http "n$i" "http://127.0.0.1:$LAB_SIM_PORT/health" || { echo "demo: simnode n$i did not start" >&2; exit 1; }
done

set -- $LAB_VIP4_LIST
VIP_LLAMA=$1 VIP_QWEN=$2 VIP_MISTRAL=$3
CFG=$LAB_DIR/aibld.yaml
{
	lab_yaml_head
	cat <<-EOF
		services:
		  - {name: chat-llama, vip: $VIP_LLAMA, port: $LAB_SIM_PORT, model: llama-8b, policy: $POLICY}
		  - {name: chat-qwen, vip: $VIP_QWEN, port: $LAB_SIM_PORT, model: qwen-14b, policy: $POLICY}
		  - {name: chat-mistral, vip: $VIP_MISTRAL, port: $LAB_SIM_PORT, model: mistral-7b, policy: $POLICY}
	EOF
	LAB_NODE_1_YAML="    accelerator: gpu" LAB_NODE_2_YAML="    accelerator: gpu" \
		LAB_NODE_3_YAML="    accelerator: gpu" LAB_NODE_4_YAML="    accelerator: none" \
		lab_yaml_nodes 100 100 100 25
} >"$CFG"

say "aibld on the balancer host, policy $POLICY"
lab_start_aibld "$CFG" || { tail "$LAB_DIR/aibld.log" >&2; exit 1; }
lab_wait_nodes_up 4 15 || { echo "demo: nodes not up" >&2; tail "$LAB_DIR/aibld.log" >&2; exit 1; }
sleep 1 # one more agent report each: models and load known before traffic
cat <<EOF
  nodes     n1 fast GPU (llama-8b, qwen-14b)   n2 fast GPU (llama-8b, mistral-7b)
            n3 slow GPU (qwen-14b, mistral-7b)  n4 CPU only (llama-8b)
  services  chat-llama $VIP_LLAMA:$LAB_SIM_PORT  chat-qwen $VIP_QWEN:$LAB_SIM_PORT  chat-mistral $VIP_MISTRAL:$LAB_SIM_PORT
  config    $CFG
EOF

say "load: $SESSIONS multi-turn chat sessions from 64 client addresses"
# a failed request fails the demo (after the maps are shown): CI runs it
load_rc=0
lab_loadgen chat --source "$LAB_CLIENT_ADDRS4" \
	--model "llama-8b:5=http://$VIP_LLAMA:$LAB_SIM_PORT" \
	--model "qwen-14b:3=http://$VIP_QWEN:$LAB_SIM_PORT" \
	--model "mistral-7b:2=http://$VIP_MISTRAL:$LAB_SIM_PORT" \
	--sessions "$SESSIONS" --turns 4 --context-tokens 1500 --turn-tokens 100 \
	--output-tokens 24 --rate 4 --burst-prob 0.15 --burst-size 6 --think-ms 600 \
	--seed 1 --timeout-ms 60000 || load_rc=$?

say "aiblctl service show (the maps, read by aiblctl on the balancer host)"
for s in chat-llama chat-qwen chat-mistral; do
	lab_run lb "$AIBL_BUILD/aiblctl" --bpffs "$LAB_BPFFS" service show "$s"
	echo
done
if [ "$POLICY" = ai ]; then
	echo "Compare with a classic policy: make demo POLICY=rr"
else
	echo "Compare with the inference-aware policy: make demo"
fi
# a classic policy's failed requests (a model that does not fit where it is
# sent) are what the comparison shows, not a failure of the demo
if [ "$load_rc" -eq 1 ] && [ "$POLICY" != ai ]; then
	echo "demo: requests failed under $POLICY, as the table shows"
elif [ "$load_rc" -ne 0 ]; then
	echo "demo: failed: aibl-loadgen exited $load_rc (failed requests, or it could not run)" >&2
	exit 1
fi
