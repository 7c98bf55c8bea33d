#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# aibl network lab: the topology of a real deployment inside network
# namespaces on one machine.
#
#   lab/lab.sh up     [--prefix P] [--nodes N] [--clients N] [--vips N] [--mode ipip|l2dsr]
#                         [--xdp-mode native|generic] [--ecmp K]
#                     (--ecmp K: K balancers behind a BGP router, etcd: lab/ecmp.sh)
#   lab/lab.sh down   [--prefix P]
#   lab/lab.sh status [--prefix P]
#   lab/lab.sh env    [--prefix P]        print the lab state file
#   lab/lab.sh exec   [--prefix P] HOST CMD...   run CMD on a host (cli, lb, n1.., br)
#
#           P-cli (client host)            P-lb (edge balancer host)
#           eth0 10.10.0.1/16              eth0 10.10.0.2/16  <- XDP program
#           + N client addresses           (aibld runs here)
#           10.10.1.1..  fd00:10::1:1..         |
#                 |                             |
#   P-br:  [cli]--+------------ br0 ------------+--[lb]  (its bridge side: XDP_PASS
#                 |              |              |         with native XDP, so XDP_TX
#                 |              |              |         frames arrive)
#               [n1]           [n2]    ...    [nN]
#                 |              |              |
#           P-n1: eth0 10.10.0.11 (TC decap), VIPs on lo, aibl-simnode + aibl-agent
#
# The client routes the VIP prefixes (10.200.0.0/24, fd00:200::/64) via the
# balancer; the balancer's XDP program forwards (ipip: encapsulated to the
# node address, l2dsr: MAC rewrite) and each node answers the client
# directly from the VIP on its loopback (direct server return).
#
# Every name carries the prefix, so labs with different prefixes coexist:
# addresses repeat between labs but each lab lives in its own namespaces.
# The state file $LAB_DIR/lab.env (default /run/aibl-lab/P/lab.env) holds
# every address for tests, the demo and benchmarks (source it, or
# `source lab/lab.sh` and call lab_load P).
#
# Sourcing this file defines the lab_* helpers without running anything:
#   lab_load P                load the state file of lab P into LAB_* variables
#   lab_ns HOST               netns name of a host (cli, lb, br, n1, n2, ...)
#   lab_run HOST CMD...       run CMD in the host's netns, keeping the host bpffs
#   lab_spawn HOST NAME CMD.. start CMD in the background there; pid and log in $LAB_DIR
#   lab_stop NAME [SIG]       stop a process lab_spawn started (TERM, then KILL)
#   lab_pid NAME              its pid (empty when not running)
#   lab_node I FIELD          a field of node I (IP4, IP6, MAC, NAME, NS)

LAB_STATE_ROOT=${LAB_STATE_ROOT:-/run/aibl-lab}
AIBL_ROOT=${AIBL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
AIBL_BUILD=${AIBL_BUILD:-$AIBL_ROOT/build}

# Address plan: one L2 segment, fixed addresses (each lab is its own world).
LAB_NET4_PREFIX=10.10
LAB_NET6=fd00:10:
LAB_VIP4_NET=10.200.0
LAB_VIP6_NET=fd00:200:
LAB_MAC_BASE=02:a1:b1:00

lab__die() {
	echo "lab: $*" >&2
	exit 1
}

lab_ns() {
	echo "${LAB_PREFIX:?lab not loaded}-$1"
}

lab_load() {
	local p=${1:-${LAB_PREFIX:-lb}}
	local f=$LAB_STATE_ROOT/$p/lab.env
	[ -r "$f" ] || {
		echo "lab: no lab '$p' (no $f); run lab/lab.sh up --prefix $p" >&2
		return 1
	}
	# shellcheck disable=SC1090
	. "$f"
}

# Run in a host's netns with nsenter (ip netns exec would remount /sys and
# hide /sys/fs/bpf, which aibld and the agent need).
lab_run() {
	local host=$1
	shift
	nsenter --net="/run/netns/$(lab_ns "$host")" -- "$@"
}

lab_pid() {
	local f=$LAB_DIR/$1.pid pid
	[ -r "$f" ] || return 0
	pid=$(cat "$f")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "$pid"
	fi
}

lab_spawn() {
	local host=$1 name=$2
	shift 2
	[ -z "$(lab_pid "$name")" ] || {
		echo "lab: $name already running (pid $(lab_pid "$name"))" >&2
		return 1
	}
	nsenter --net="/run/netns/$(lab_ns "$host")" -- "$@" >>"$LAB_DIR/$name.log" 2>&1 &
	echo $! >"$LAB_DIR/$name.pid"
}

lab_stop() {
	local name=$1 sig=${2:-TERM} pid i
	pid=$(lab_pid "$name")
	[ -n "$pid" ] || {
		rm -f "$LAB_DIR/$name.pid"
		return 0
	}
	kill -"$sig" "$pid" 2>/dev/null
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && { echo "lab_stop: $name ($pid) still running 5 s after SIG$sig: KILL" >&2; kill -KILL "$pid" 2>/dev/null; }
	wait "$pid" 2>/dev/null
	rm -f "$LAB_DIR/$name.pid"
	return 0
}

# Wait until CMD succeeds or TIMEOUT seconds pass: lab_wait TIMEOUT CMD...
lab_wait() {
	local t=$1 end
	shift
	end=$((SECONDS + t))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}

# ---- the aibl processes of a lab (tests, demo and benchmarks use these) ----
LAB_SIM_PORT=${LAB_SIM_PORT:-8000}
LAB_AGENT_PORT=${LAB_AGENT_PORT:-7071}
LAB_API=${LAB_API:-http://127.0.0.1:7070}

# lab_start_node I [SIMNODE-ARGS...]: aibl-simnode on [::]:8000 (every VIP and
# the node address, IPv4 and IPv6) and aibl-agent on the node address with
# the decap program on eth0. The node is named nI (X-Aibl-Node too).
# LAB_FAKE_NVML=PATH (tests/libfake_nvml.so): a node that is not --cpu has a
# fake GPU whose memory its simnode fills as models load (--nvml-ctl), and
# its agent reads it through that library, as a real node's reads NVML.
# LAB_STATED_SLOTS=1: its agent states the simnode's slots (--slots, 8 by
# default) as an operator states an engine's (--model-server URL,slots=N).
lab_start_node() {
	local i=$1 a nvml=() slots=8 prev=
	shift
	printf -v "LAB__NVML_$i" '%s' ""
	printf -v "LAB__SLOTS_$i" '%s' ""
	if [ "${LAB_STATED_SLOTS:-0}" = 1 ]; then
		for a in "$@"; do
			[ "$prev" = --slots ] && slots=$a
			case $a in --slots=*) slots=${a#--slots=} ;; esac
			prev=$a
		done
		printf -v "LAB__SLOTS_$i" '%s' ",slots=$slots"
	fi
	if [ -n "${LAB_FAKE_NVML:-}" ]; then
		nvml=(--nvml-ctl "$LAB_DIR/nvml-n$i.ctl")
		for a in "$@"; do [ "$a" = --cpu ] && nvml=(); done
		[ ${#nvml[@]} -gt 0 ] && printf -v "LAB__NVML_$i" '%s' "$LAB_DIR/nvml-n$i.ctl"
	fi
	lab_spawn "n$i" "sim-n$i" "$AIBL_BUILD/aibl-simnode" --listen "[::]:$LAB_SIM_PORT" \
		--node-name "n$i" "${nvml[@]}" "$@" || return 1
	lab_start_agent "$i"
}

# lab_start_agent I [AGENT-ARGS...] (started by lab_start_node; separate so
# a test can stop and restart it). The decap program opens only tunnels
# from the balancers' sources (IPv6: the /96 its flow hash varies in; an
# ECMP lab: each balancer's address). It
# listens on every IPv4 address of the node so that hints can be posted
# from the node itself over loopback (an agent without --key accepts hint
# posts only from loopback). The balancers are its --controller addresses:
# their polls get reserved connections, and their background loads
# (POST /v1/load) are taken without a key.
lab_start_agent() {
	local i=$1 b src=() extra=() pre=() ctl="LAB__NVML_$1" slots="LAB__SLOTS_$1"
	shift
	# LAB_AGENT_ARGS: more options for every node's agent (bench-routing:
	# --speed-probe)
	[ -n "${LAB_AGENT_ARGS:-}" ] && read -r -a extra <<<"$LAB_AGENT_ARGS"
	# its fake GPU (lab_start_node)
	ctl=${!ctl:-}
	[ -n "$ctl" ] && { pre=(env "FAKE_NVML_CTL=$ctl"); extra+=(--nvml-lib "$LAB_FAKE_NVML"); }
	if [ "${LAB_ECMP:-0}" -gt 0 ]; then
		# an ECMP lab: every balancer tunnels (IPv4 only), and every
		# balancer's aibld is told when the node changes
		for b in $(seq "$LAB_ECMP"); do
			eval "src+=(--decap-source \"\$LAB_BAL_${b}_IP4\")"
			eval "src+=(--notify \"http://\$LAB_BAL_${b}_IP4:7070\")"
			eval "src+=(--controller \"\$LAB_BAL_${b}_IP4\")"
		done
	else
		src=(--decap-source "$LAB_LB_IP4" --decap-source "$LAB_LB_IP6/96"
			--notify "http://$LAB_LB_IP4:${LAB_API##*:}" --controller "$LAB_LB_IP4")
	fi
	lab_spawn "n$i" "agent-n$i" "${pre[@]}" "$AIBL_BUILD/aibl-agent" --listen "0.0.0.0:$LAB_AGENT_PORT" \
		--name "n$i" --model-server "http://127.0.0.1:$LAB_SIM_PORT${!slots:-}" --decap eth0 \
		"${src[@]}" --scrape-interval-ms "${LAB_SCRAPE_MS:-200}" \
		--watch-interval-ms "${LAB_WATCH_MS:-100}" "${extra[@]}" "$@"
}

# lab_wait_http HOST URL [SECONDS]: until URL answers 2xx from HOST
lab_wait_http() {
	lab_wait "${3:-10}" lab_run "$1" curl -sf -o /dev/null --max-time 1 "$2"
}

# lab_yaml_head [POLICY]: the controller's global settings for this lab
# (every key documented in docs/aibld.md, "Configuration reference")
lab_yaml_head() {
	cat <<-EOF2
		interface: eth0
		xdp_mode: ${LAB_XDP_MODE:-native}
		forwarding: $LAB_MODE
		bpffs: $LAB_BPFFS
		status_listen: 0.0.0.0:${LAB_API##*:}
		api_token_file: $LAB_DIR/api.token
		poll_interval_ms: ${LAB_POLL_MS:-200}
		poll_timeout_ms: ${LAB_POLL_TIMEOUT_MS:-150}
		tunnel_source4: $LAB_LB_IP4
		tunnel_source6: $LAB_LB_IP6
		mtu: $LAB_MTU
		health:
		  fail_after: ${LAB_FAIL_AFTER:-3}
		  rise_after: ${LAB_RISE_AFTER:-2}
		tables:
		  min_rewrite_interval_ms: ${LAB_REWRITE_MS:-200}
	EOF2
}

# lab_node I FIELD: a field of node I from the state file (IP4, IP6, MAC,
# NAME, NS)
lab_node() {
	local v="LAB_NODE_${1}_$2"
	echo "${!v}"
}

# lab_yaml_nodes [WEIGHT...]: the nodes section, weight i for node i
# (default 100); each node has its agent. LAB_NODE_i_YAML adds lines,
# indented as node keys ("    accelerator: gpu").
# LAB_NODE_FAMILY=6 gives the nodes their IPv6 addresses: in ipip mode an
# IPv6 VIP needs them (IPv6-in-IPv6; IPv4 VIPs then go IPv4-in-IPv6).
lab_yaml_nodes() {
	local i w extra
	echo "nodes:"
	for i in $(seq "$LAB_NODES"); do
		w=${1:-100}
		[ $# -gt 0 ] && shift
		echo "  - name: n$i"
		echo "    address: $(lab_node "$i" "IP${LAB_NODE_FAMILY:-4}")"
		echo "    agent: http://$(lab_node "$i" IP4):$LAB_AGENT_PORT"
		echo "    weight: $w"
		echo "    health_port: $LAB_SIM_PORT"
		extra="LAB_NODE_${i}_YAML"
		extra=${!extra:-}
		[ -n "$extra" ] && printf '%s\n' "$extra"
	done
	return 0
}

# lab_start_aibld CONFIG: the controller on the balancer host (nsenter keeps
# the host bpffs visible); waits for its API
lab_start_aibld() {
	lab_spawn lb aibld "$AIBL_BUILD/aibld" --config "$1" || return 1
	lab_wait_http lb "$LAB_API/v1/status" 15
}

# lab_api PATH [CURL-ARGS...]: the controller API, from the balancer host
lab_api() {
	local path=$1
	shift
	lab_run lb curl -sS --max-time 5 -H "Authorization: Bearer $(cat "$LAB_DIR/api.token")" \
		"$@" "$LAB_API$path"
}

# lab_nodes_up: number of nodes the controller reports up after a good
# poll (a node is up from the start, before its first poll: counted then,
# a node whose server never started passed the wait and a run went on
# without it)
lab_nodes_up() {
	lab_api /v1/status 2>/dev/null |
		python3 -c 'import json,sys; print(sum(n["state"] == "up" and n["last_report_age_ms"] >= 0
			for n in json.load(sys.stdin)["nodes"]))' 2>/dev/null || echo 0
}

lab__nodes_up_ge() { [ "$(lab_nodes_up)" -ge "$1" ]; }

# lab_wait_nodes_up N [SECONDS]
lab_wait_nodes_up() {
	lab_wait "${2:-15}" lab__nodes_up_ge "$1"
}

# lab_hint I CLIENT VIP PORT [SCORE] [TTL_MS]: post a server cache hint to
# node I's agent ("node I holds CLIENT's context on VIP:PORT")
lab_hint() {
	lab_run "n$1" curl -sf --max-time 3 -H 'Content-Type: application/json' \
		-d "{\"hints\":[{\"client\":\"$2\",\"vip\":\"$3\",\"port\":$4,\"proto\":\"tcp\",\"ttl_ms\":${6:-60000},\"score\":${5:-1.0}}]}" \
		"http://127.0.0.1:$LAB_AGENT_PORT/v1/hints"
}

# lab_loadgen ARGS...: aibl-loadgen on the client host
lab_loadgen() {
	lab_run cli "$AIBL_BUILD/aibl-loadgen" "$@"
}

# ---- address helpers ----
lab__node_ip4() { echo "$LAB_NET4_PREFIX.0.$((10 + $1))"; }
lab__node_ip6() { echo "${LAB_NET6}:$((10 + $1))"; }
lab__mac() { printf '%s:%02x:%02x\n' "$LAB_MAC_BASE" "$1" "$2"; }
# i-th (0-based) client address: 10.10.1.1 + i, fd00:10::1:0 + i + 1
lab__cli_ip4() {
	local n=$((256 + 1 + $1))
	echo "${LAB_CLI4_PREFIX:-$LAB_NET4_PREFIX}.$((n >> 8)).$((n & 255))"
}
lab__cli_ip6() {
	local n=$((65536 + 1 + $1))
	printf '%s:%x:%x\n' "$LAB_NET6" $((n >> 16)) $((n & 65535))
}

# An XDP program that passes everything, compiled once per machine.
lab__xdp_pass_obj() {
	local o=$LAB_STATE_ROOT/xdp_pass.bpf.o
	if [ ! -s "$o" ]; then
		mkdir -p "$LAB_STATE_ROOT"
		printf '%s\n' '#include <linux/bpf.h>' \
			'__attribute__((section("xdp"), used)) int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }' \
			'char _license[] __attribute__((section("license"), used)) = "GPL";' |
			clang -O2 -target bpf -I "/usr/include/$(gcc -dumpmachine)" -x c -c - -o "$o.tmp" &&
			mv "$o.tmp" "$o"
	fi
	echo "$o"
}

# ---- up / down ----
lab__usage() {
	sed -n '3,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

lab__down() {
	local p=$LAB_PREFIX ns pid pids dir=$LAB_STATE_ROOT/$LAB_PREFIX
	# Processes first: a process inside keeps its netns alive after `ip netns del`.
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$p-(br|cli|lb|rt|etcd|b[0-9]+|n[0-9]+)$"); do
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -n "$pids" ] && kill -TERM $pids 2>/dev/null
		for pid in $pids; do
			for _ in $(seq 30); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null
		done
	done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$p-(br|cli|lb|rt|etcd|b[0-9]+|n[0-9]+)$"); do
		ip netns del "$ns" 2>/dev/null
	done
	# Pinned maps of this lab's controller (its bpffs dir is lab-private).
	[ -d "/sys/fs/bpf/aibl-lab-$p" ] && rm -rf "/sys/fs/bpf/aibl-lab-$p"
	rm -rf "/sys/fs/bpf/aibl-lab-$p-b"[0-9]* 2>/dev/null
	rm -rf "$dir"
	return 0
}

lab__write_state() {
	local f=$LAB_DIR/lab.env.tmp i vips4="" vips6=""
	for i in $(seq "$LAB_VIPS"); do
		vips4+="$LAB_VIP4_NET.$i "
		vips6+="${LAB_VIP6_NET}:$i "
	done
	{
		echo "# aibl lab '$LAB_PREFIX', written by lab/lab.sh up on $(date -u +%FT%TZ)"
		echo "LAB_PREFIX=$LAB_PREFIX"
		echo "LAB_DIR=$LAB_DIR"
		echo "LAB_MODE=$LAB_MODE"
		echo "LAB_XDP_MODE=$LAB_XDP_MODE"
		echo "LAB_IF=eth0"
		echo "LAB_BPFFS=/sys/fs/bpf/aibl-lab-$LAB_PREFIX"
		echo "LAB_NS_BR=$LAB_PREFIX-br"
		echo "LAB_NS_CLIENT=$LAB_PREFIX-cli"
		echo "LAB_NS_LB=$LAB_PREFIX-lb"
		echo "LAB_MTU=$LAB_MTU"
		echo "LAB_CLIENT_MTU=$LAB_CLIENT_MTU"
		echo "LAB_CLIENT_IP4=$LAB_NET4_PREFIX.0.1"
		echo "LAB_CLIENT_IP6=${LAB_NET6}:1"
		echo "LAB_CLIENT_MAC=$(lab__mac 0 1)"
		echo "LAB_CLIENTS=$LAB_CLIENTS"
		echo "LAB_CLIENT_ADDRS4=$(lab__cli_ip4 0)-$(lab__cli_ip4 $((LAB_CLIENTS - 1)))"
		echo "LAB_CLIENT_ADDRS6=$(lab__cli_ip6 0)-$(lab__cli_ip6 $((LAB_CLIENTS - 1)))"
		echo "LAB_LB_IP4=$LAB_NET4_PREFIX.0.2"
		echo "LAB_LB_IP6=${LAB_NET6}:2"
		echo "LAB_LB_MAC=$(lab__mac 0 2)"
		echo "LAB_VIP4_NET=$LAB_VIP4_NET.0/24"
		echo "LAB_VIP6_NET=${LAB_VIP6_NET}:/64"
		echo "LAB_VIPS=$LAB_VIPS"
		echo "LAB_VIP4_LIST=\"${vips4% }\""
		echo "LAB_VIP6_LIST=\"${vips6% }\""
		echo "LAB_VIP4=$LAB_VIP4_NET.1"
		echo "LAB_VIP6=${LAB_VIP6_NET}:1"
		echo "LAB_NODES=$LAB_NODES"
		for i in $(seq "$LAB_NODES"); do
			echo "LAB_NODE_${i}_NAME=n$i"
			echo "LAB_NODE_${i}_NS=$LAB_PREFIX-n$i"
			echo "LAB_NODE_${i}_IP4=$(lab__node_ip4 "$i")"
			echo "LAB_NODE_${i}_IP6=$(lab__node_ip6 "$i")"
			echo "LAB_NODE_${i}_MAC=$(lab__mac 1 "$i")"
		done
	} >"$f"
	mv "$f" "$LAB_DIR/lab.env"
}

# Host with one NIC "eth0" on the bridge; its bridge port is named PORT.
lab__add_host() {
	local host=$1 port=$2 mac=$3 mtu=$4 ns br
	ns=$(lab_ns "$host")
	br=$(lab_ns br)
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link add eth0 address "$mac" mtu "$mtu" type veth peer name "$port" netns "$br" mtu "$LAB_MTU"
	# IPv6 addresses must be usable at once: no duplicate address detection.
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.disable_ipv6=0
	ip -n "$br" link set "$port" master br0
	ip -n "$br" link set "$port" up
	ip -n "$ns" link set eth0 up
}

# Start a lab afresh under $LAB_PREFIX: what an earlier one left goes, its
# state directory is made, and a failing command from here on removes
# what was made (the ERR trap and set -E hold for the rest of "up").
lab__begin() {
	lab__down
	LAB_DIR=$LAB_STATE_ROOT/$LAB_PREFIX
	mkdir -p "$LAB_DIR"
	# a bearer token for the controllers' API: it listens beyond loopback,
	# for the agents' --notify and an ECMP lab's peers
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$LAB_DIR/api.token"
	chmod 600 "$LAB_DIR/api.token"
	trap 'trap - ERR; echo "lab: up failed at line $LINENO; removing what was made" >&2; lab__down; exit 1' ERR
	set -E
}

# The bridge namespace NS with br0: a plain switch, no STP delay, no
# multicast snooping (which would hold back IPv6 neighbour discovery until
# MLD reports arrive), and no bridged frame handed to iptables/ip6tables/
# arptables (br_netfilter's default once loaded: every frame would cross
# the netfilter hooks, twice on its way through the balancer).
lab__bridge() {
	ip netns add "$1"
	ip -n "$1" link set lo up
	ip -n "$1" link add br0 mtu "$LAB_MTU" type bridge forward_delay 0 stp_state 0 mcast_snooping 0
	ip -n "$1" link set br0 up
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip netns exec "$1" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
		net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
}

lab__up() {
	local i ns br cli lb f
	f=$LAB_STATE_ROOT/$LAB_PREFIX/lab.env
	if [ -r "$f" ] && lab__complete "$LAB_NODES"; then
		echo "lab: '$LAB_PREFIX' already up ($f)" >&2
		return 0
	fi
	lab__begin

	br=$(lab_ns br)
	cli=$(lab_ns cli)
	lb=$(lab_ns lb)
	lab__bridge "$br"

	# client host: the primary address plus the client addresses
	lab__add_host cli cli "$(lab__mac 0 1)" "$LAB_CLIENT_MTU"
	ip -n "$cli" addr add "$LAB_NET4_PREFIX.0.1/16" dev eth0
	ip -n "$cli" -6 addr add "${LAB_NET6}:1/64" dev eth0 nodad
	{
		for i in $(seq 0 $((LAB_CLIENTS - 1))); do
			echo "addr add $(lab__cli_ip4 "$i")/16 dev eth0"
			echo "addr add $(lab__cli_ip6 "$i")/64 dev eth0 nodad"
		done
	} | ip -n "$cli" -batch -
	ip -n "$cli" route add "$LAB_VIP4_NET.0/24" via "$LAB_NET4_PREFIX.0.2"
	ip -n "$cli" -6 route add "${LAB_VIP6_NET}:/64" via "${LAB_NET6}:2"
	# Replies come from the nodes' MACs with the VIP as source: loose rp_filter.
	ip netns exec "$cli" sysctl -qw net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.eth0.rp_filter=2 \
		net.ipv4.ip_local_port_range="10000 60999"
	# Pinned neighbours: the first packet must not wait on resolution.
	ip -n "$cli" neigh replace "$LAB_NET4_PREFIX.0.2" lladdr "$(lab__mac 0 2)" dev eth0 nud permanent
	ip -n "$cli" neigh replace "${LAB_NET6}:2" lladdr "$(lab__mac 0 2)" dev eth0 nud permanent

	# edge balancer host: the XDP program goes on its eth0; it does not
	# route VIP traffic itself (forwarding stays off).
	lab__add_host lb lb "$(lab__mac 0 2)" "$LAB_MTU"
	# Native XDP needs two things on the bridge side of the balancer's link
	# (generic XDP transmits and keeps an ordinary skb: neither):
	# - A veth receives the frames its peer sends with XDP_TX/redirect only
	#   in NAPI mode: an XDP program there (XDP_PASS; enabling GRO there did
	#   not do it on this kernel).
	# - Checksums complete before frames reach the balancer. A veth hands
	#   its native XDP program a copy of the frame without the skb's partial
	#   (offloaded) checksum state, so a frame forwarded with XDP_TX would
	#   reach the node with a wrong checksum and TCP drops it.
	if [ "$LAB_XDP_MODE" != generic ]; then
		ip -n "$br" link set dev lb xdpdrv obj "$(lab__xdp_pass_obj)" sec xdp
		ip netns exec "$br" ethtool -K lb tx off >/dev/null
	fi
	ip -n "$lb" addr add "$LAB_NET4_PREFIX.0.2/16" dev eth0
	ip -n "$lb" -6 addr add "${LAB_NET6}:2/64" dev eth0 nodad
	ip netns exec "$lb" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0

	# inference nodes
	for i in $(seq "$LAB_NODES"); do
		ns=$(lab_ns "n$i")
		lab__add_host "n$i" "n$i" "$(lab__mac 1 "$i")" "$LAB_MTU"
		ip -n "$ns" addr add "$(lab__node_ip4 "$i")/16" dev eth0
		ip -n "$ns" -6 addr add "$(lab__node_ip6 "$i")/64" dev eth0 nodad
		for f in $(seq "$LAB_VIPS"); do
			ip -n "$ns" addr add "$LAB_VIP4_NET.$f/32" dev lo
			ip -n "$ns" -6 addr add "${LAB_VIP6_NET}:$f/128" dev lo
		done
		# VIPs on lo answer traffic but never ARP on eth0 (arp_ignore=1),
		# ARP requests use eth0's own address as source, not a VIP
		# (arp_announce=2); loose rp_filter so decapsulated packets from
		# clients are accepted whatever interface they seem to come in on.
		ip netns exec "$ns" sysctl -qw \
			net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1 \
			net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_announce=2 \
			net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.eth0.rp_filter=2 \
			net.ipv4.conf.default.rp_filter=2
		ip -n "$lb" neigh replace "$(lab__node_ip4 "$i")" lladdr "$(lab__mac 1 "$i")" dev eth0 nud permanent
		ip -n "$lb" -6 neigh replace "$(lab__node_ip6 "$i")" lladdr "$(lab__mac 1 "$i")" dev eth0 nud permanent
	done

	lab__write_state
	trap - ERR
	set +E
	# the controller pins its maps under the host's bpffs, which a fresh
	# machine may not have mounted
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	mkdir -p "/sys/fs/bpf/aibl-lab-$LAB_PREFIX" 2>/dev/null || true
	echo "lab: '$LAB_PREFIX' up: client, balancer, $LAB_NODES nodes, $LAB_CLIENTS client addresses," \
		"$LAB_VIPS VIPs; state in $LAB_DIR/lab.env" >&2
}

# True when every namespace of the lab described by the state file exists.
lab__complete() {
	(
		lab_load "$LAB_PREFIX" 2>/dev/null || exit 1
		[ "$LAB_NODES" = "$1" ] || exit 1
		for h in br cli lb $(seq -f 'n%g' "$LAB_NODES"); do
			[ -e "/run/netns/$LAB_PREFIX-$h" ] || exit 1
		done
	)
}

lab__status() {
	local rc=0 h ns f
	if ! lab_load "$LAB_PREFIX" 2>/dev/null; then
		echo "lab '$LAB_PREFIX': down"
		[ -n "$(ip netns list | awk '{print $1}' | grep -E "^$LAB_PREFIX-(br|cli|lb|n[0-9]+)$")" ] &&
			echo "  leftover namespaces: run lab/lab.sh down --prefix $LAB_PREFIX"
		return 3
	fi
	echo "lab '$LAB_PREFIX': mode $LAB_MODE, $LAB_NODES nodes, state $LAB_DIR/lab.env"
	for h in cli lb $(seq -f 'n%g' "$LAB_NODES"); do
		ns=$(lab_ns "$h")
		if [ ! -e "/run/netns/$ns" ]; then
			printf '  %-10s MISSING\n' "$ns"
			rc=1
			continue
		fi
		printf '  %-10s %-16s %s %s\n' "$ns" \
			"$(ip -n "$ns" -4 -o addr show dev eth0 | awk 'NR==1{print $4}')" \
			"$(ip -n "$ns" link show dev eth0 | grep -o 'prog/xdp[a-z]* id [0-9]*' || true)" \
			"$(ip netns pids "$ns" | xargs -r -n1 -I{} cat /proc/{}/comm 2>/dev/null | tr '\n' ' ')"
	done
	for f in "$LAB_DIR"/*.pid; do
		[ -e "$f" ] || continue
		printf '  process %-20s %s\n' "$(basename "$f" .pid)" \
			"$(lab_pid "$(basename "$f" .pid)" | sed 's/^/pid /;s/^$/stopped/')"
	done
	return $rc
}

lab__main() {
	local cmd=${1:-}
	[ -n "$cmd" ] || lab__usage
	shift
	LAB_PREFIX=${LAB_PREFIX:-lb}
	LAB_NODES=3
	LAB_CLIENTS=32
	LAB_VIPS=4
	LAB_MODE=ipip
	LAB_XDP_MODE=native
	# Room for the outer IPv6 header (40 B) on the balancer-node segment;
	# the client keeps 1500 so its MSS leaves that room.
	LAB_MTU=1600
	LAB_CLIENT_MTU=1500
	LAB_ECMP=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--prefix) LAB_PREFIX=$2; shift 2 ;;
		--nodes) LAB_NODES=$2; shift 2 ;;
		--clients) LAB_CLIENTS=$2; shift 2 ;;
		--vips) LAB_VIPS=$2; shift 2 ;;
		--mode) LAB_MODE=$2; shift 2 ;;
		--xdp-mode) LAB_XDP_MODE=$2; shift 2 ;;
		--ecmp) LAB_ECMP=$2; shift 2 ;;
		--) shift; break ;;
		-h|--help) lab__usage ;;
		*) [ "$cmd" = exec ] && break; lab__die "unknown option $1" ;;
		esac
	done
	[[ $LAB_PREFIX =~ ^[a-z][a-z0-9]{0,11}$ ]] || lab__die "--prefix: 1-12 of [a-z0-9], starting with a letter"
	[[ $LAB_NODES =~ ^[0-9]+$ ]] && [ "$LAB_NODES" -ge 1 ] && [ "$LAB_NODES" -le 200 ] ||
		lab__die "--nodes: 1..200"
	[[ $LAB_CLIENTS =~ ^[0-9]+$ ]] && [ "$LAB_CLIENTS" -ge 1 ] && [ "$LAB_CLIENTS" -le 60000 ] ||
		lab__die "--clients: 1..60000"
	[[ $LAB_VIPS =~ ^[0-9]+$ ]] && [ "$LAB_VIPS" -ge 1 ] && [ "$LAB_VIPS" -le 250 ] ||
		lab__die "--vips: 1..250"
	case "$LAB_MODE" in ipip|l2dsr) ;; *) lab__die "--mode: ipip or l2dsr" ;; esac
	case "$LAB_XDP_MODE" in native|generic) ;; *) lab__die "--xdp-mode: native or generic" ;; esac
	LAB_DIR=$LAB_STATE_ROOT/$LAB_PREFIX
	case "$cmd" in
	up|down|exec|status) [ "$(id -u)" -eq 0 ] || lab__die "$cmd needs root" ;;
	esac
	case "$cmd" in
	up)
		if [ "$LAB_ECMP" -gt 0 ]; then
			[[ $LAB_ECMP =~ ^[0-9]$ ]] || lab__die "--ecmp: 1..8 balancers"
			LAB_CLI4_PREFIX=$LAB_CLI4_NET
			lab_ecmp__up
		else
			lab__up
		fi
		;;
	down) lab__down; echo "lab: '$LAB_PREFIX' down" >&2 ;;
	status) lab__status ;;
	env) cat "$LAB_DIR/lab.env" 2>/dev/null || lab__die "no lab '$LAB_PREFIX'" ;;
	exec)
		[ $# -ge 2 ] || lab__die "exec HOST CMD..."
		lab_load "$LAB_PREFIX" || exit 1
		local host=$1
		shift
		lab_run "$host" "$@"
		;;
	*) lab__usage ;;
	esac
}

. "$(dirname "${BASH_SOURCE[0]}")/ecmp.sh"

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -uo pipefail
	lab__main "$@"
fi
