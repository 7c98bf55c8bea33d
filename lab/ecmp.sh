# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# shellcheck shell=bash
# The ECMP topology of lab/lab.sh (lab/lab.sh up --ecmp K): K balancers
# behind a router that spreads flows over them, each announcing the VIPs
# over BGP (BIRD 2, BFD), one plan shared through etcd (docs/cluster.md).
# Sourced by lab.sh.
#
#   P-cli  eth0 10.11.0.1/16 + client addresses 10.11.1.1..
#     |  (point-to-point veth)
#   P-rt   eth1 10.11.0.254   BIRD: BGP+BFD to every balancer, ECMP routes
#          eth0 10.10.0.254   to the VIPs (kernel multipath, L4 hash policy)
#     |
#   P-br:  ----+------------+------------+-----------+---- br0 ----
#              |            |            |           |
#          P-b1 .2      P-b2 .3  ...  P-etcd .250   P-n1 .11, P-n2 .12 ...
#          XDP on eth0, aibld + BIRD    etcd 3       TC decap, VIPs on lo,
#                                                    replies via the router
#
# The balancers, the router's inside leg, etcd and the nodes share one L2
# segment, as lb and the nodes do in the single-host lab: a balancer's XDP
# program gets the VIP traffic the router sends to its MAC and sends it on
# to the nodes with XDP_TX on the same interface, which the existing data
# path does. Each balancer's link is its own veth into the bridge, so
# "take its link down" is one `ip link set eth0 down` there.
#
# Helpers (after lab_load):
#   lab_ecmp_yaml I           aibld config head of balancer bI (cluster mode)
#   lab_start_etcd / lab_start_bird HOST / lab_start_balancer I CONFIG
#   lab_rt_nexthops VIP       the router's next hops for VIP (balancer IPs)

LAB_CLI4_NET=10.11
LAB_RT_IP4=10.10.0.254
LAB_ETCD_IP4=10.10.0.250
LAB_ETCD_URL=http://10.10.0.250:2379
LAB_BIRD_BFD_MS=${LAB_BIRD_BFD_MS:-50}

lab__bal_ip4() { echo "$LAB_NET4_PREFIX.0.$((1 + $1))"; }

lab__ecmp_bird_rt() {
	local i
	cat <<-EOF
		log "$LAB_DIR/bird-rt.log" all;
		router id $LAB_RT_IP4;
		protocol device { scan time 1; }
		protocol kernel { ipv4 { import none; export all; }; merge paths on limit 16; }
		protocol bfd {
		  interface "eth0" { min rx interval $LAB_BIRD_BFD_MS ms; min tx interval $LAB_BIRD_BFD_MS ms; multiplier 3; };
		}
		template bgp bal {
		  local $LAB_RT_IP4 as 65000; bfd on; hold time 3; keepalive time 1; connect retry time 1;
		  error wait time 1, 5;
		  ipv4 { import all; export none; };
		}
	EOF
	for i in $(seq "$LAB_ECMP"); do
		echo "protocol bgp b$i from bal { neighbor $(lab__bal_ip4 "$i") as 65001; }"
	done
}

lab__ecmp_bird_bal() {
	local i=$1
	cat <<-EOF
		log "$LAB_DIR/bird-b$i.log" all;
		router id $(lab__bal_ip4 "$i");
		protocol device { scan time 1; }
		protocol bfd {
		  interface "eth0" { min rx interval $LAB_BIRD_BFD_MS ms; min tx interval $LAB_BIRD_BFD_MS ms; multiplier 3; };
		}
		include "$LAB_DIR/b$i-vips.conf";
		protocol bgp uplink {
		  local $(lab__bal_ip4 "$i") as 65001; neighbor $LAB_RT_IP4 as 65000;
		  bfd on; hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;
		  ipv4 { import none; export where source = RTS_STATIC; };
		  ipv6 { import none; export none; };
		}
	EOF
}

# what aibld writes when it announces nothing (bgp__render with no VIPs)
lab__ecmp_no_vips() {
	printf '%s\n' "# written by lab/lab.sh: nothing announced yet" \
		"protocol static aibl_vips4 {" "	ipv4;" "}" "protocol static aibl_vips6 {" "	ipv6;" "}"
}

lab_ecmp__up() {
	local i ns br cli rt f
	lab__begin
	br=$(lab_ns br)
	cli=$(lab_ns cli)
	rt=$(lab_ns rt)
	lab__bridge "$br"

	# the router: inside leg on the bridge, client on a veth of its own;
	# multipath routes hashed on the 5-tuple (policy 1: L4)
	lab__add_host rt rt "$(lab__mac 3 1)" "$LAB_MTU"
	ip -n "$rt" addr add "$LAB_RT_IP4/16" dev eth0
	ip netns add "$cli"
	ip -n "$cli" link set lo up
	ip -n "$cli" link add eth0 address "$(lab__mac 0 1)" mtu "$LAB_CLIENT_MTU" type veth peer name eth1 \
		netns "$rt" address "$(lab__mac 3 3)" mtu "$LAB_CLIENT_MTU"
	ip -n "$rt" addr add "$LAB_CLI4_NET.0.254/16" dev eth1
	ip -n "$rt" link set eth1 up
	ip -n "$cli" link set eth0 up
	ip netns exec "$rt" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0

	ip -n "$cli" addr add "$LAB_CLI4_NET.0.1/16" dev eth0
	{
		for i in $(seq 0 $((LAB_CLIENTS - 1))); do
			echo "addr add $(lab__cli_ip4 "$i")/16 dev eth0"
		done
	} | ip -n "$cli" -batch -
	ip -n "$cli" route add "$LAB_VIP4_NET.0/24" via "$LAB_CLI4_NET.0.254"
	ip netns exec "$cli" sysctl -qw net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.eth0.rp_filter=2 \
		net.ipv4.ip_local_port_range="10000 60999"

	# balancers: as lb in the single-host lab
	for i in $(seq "$LAB_ECMP"); do
		ns=$(lab_ns "b$i")
		lab__add_host "b$i" "b$i" "$(lab__mac 2 "$i")" "$LAB_MTU"
		if [ "$LAB_XDP_MODE" != generic ]; then
			ip -n "$br" link set dev "b$i" xdpdrv obj "$(lab__xdp_pass_obj)" sec xdp
			ip netns exec "$br" ethtool -K "b$i" tx off >/dev/null
		fi
		ip -n "$ns" addr add "$(lab__bal_ip4 "$i")/16" dev eth0
		ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0
		mkdir -p "/sys/fs/bpf/aibl-lab-$LAB_PREFIX-b$i" 2>/dev/null || true
		lab__ecmp_bird_bal "$i" >"$LAB_DIR/bird-b$i.conf"
		lab__ecmp_no_vips >"$LAB_DIR/b$i-vips.conf"
	done
	lab__ecmp_bird_rt >"$LAB_DIR/bird-rt.conf"

	lab__add_host etcd etcd "$(lab__mac 3 2)" "$LAB_MTU"
	ip -n "$(lab_ns etcd)" addr add "$LAB_ETCD_IP4/16" dev eth0

	for i in $(seq "$LAB_NODES"); do
		ns=$(lab_ns "n$i")
		lab__add_host "n$i" "n$i" "$(lab__mac 1 "$i")" "$LAB_MTU"
		ip -n "$ns" addr add "$(lab__node_ip4 "$i")/16" dev eth0
		ip -n "$ns" route add "$LAB_CLI4_NET.0.0/16" via "$LAB_RT_IP4"
		for f in $(seq "$LAB_VIPS"); do
			ip -n "$ns" addr add "$LAB_VIP4_NET.$f/32" dev lo
		done
		ip netns exec "$ns" sysctl -qw \
			net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1 \
			net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.eth0.arp_announce=2 \
			net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.eth0.rp_filter=2 \
			net.ipv4.conf.default.rp_filter=2
		for f in $(seq "$LAB_ECMP"); do
			ip -n "$(lab_ns "b$f")" neigh replace "$(lab__node_ip4 "$i")" \
				lladdr "$(lab__mac 1 "$i")" dev eth0 nud permanent
		done
	done

	lab__write_state
	{
		echo "LAB_ECMP=$LAB_ECMP"
		echo "LAB_CLIENT_IP4=$LAB_CLI4_NET.0.1"
		echo "LAB_RT_IP4=$LAB_RT_IP4"
		echo "LAB_ETCD_URL=$LAB_ETCD_URL"
		for i in $(seq "$LAB_ECMP"); do
			echo "LAB_BAL_${i}_IP4=$(lab__bal_ip4 "$i")"
		done
	} >>"$LAB_DIR/lab.env"
	trap - ERR
	set +E
	echo "lab: '$LAB_PREFIX' up (ECMP): router, $LAB_ECMP balancers, etcd, $LAB_NODES nodes;" \
		"state in $LAB_DIR/lab.env" >&2
}

lab_start_etcd() {
	lab_spawn etcd etcd etcd --name "$LAB_PREFIX" --data-dir "$LAB_DIR/etcd.data" \
		--listen-client-urls "$LAB_ETCD_URL" --advertise-client-urls "$LAB_ETCD_URL" \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$LAB_PREFIX=http://127.0.0.1:2380" \
		--heartbeat-interval 50 --election-timeout 500 --log-level warn || return 1
	lab_wait 20 lab_run etcd curl -sf --max-time 1 -o /dev/null "$LAB_ETCD_URL/health"
}

# lab_start_bird HOST (rt, b1, b2, ...)
lab_start_bird() {
	rm -f "$LAB_DIR/bird-$1.ctl"
	lab_spawn "$1" "bird-$1" bird -f -c "$LAB_DIR/bird-$1.conf" -s "$LAB_DIR/bird-$1.ctl" \
		-P "$LAB_DIR/bird-$1.birdpid" || return 1
	lab_wait 10 test -S "$LAB_DIR/bird-$1.ctl" && [ -n "$(lab_pid "bird-$1")" ]
}

# lab_ecmp_yaml I: the global settings of balancer bI's aibld
lab_ecmp_yaml() {
	local i=$1 ip
	ip=$(lab__bal_ip4 "$i")
	cat <<-EOF
		interface: eth0
		xdp_mode: ${LAB_XDP_MODE:-native}
		forwarding: $LAB_MODE
		bpffs: /sys/fs/bpf/aibl-lab-$LAB_PREFIX-b$i
		status_listen: 0.0.0.0:7070
		api_token_file: $LAB_DIR/api.token
		poll_interval_ms: ${LAB_POLL_MS:-200}
		poll_timeout_ms: ${LAB_POLL_TIMEOUT_MS:-150}
		tunnel_source4: $ip
		mtu: $LAB_MTU
		health:
		  fail_after: ${LAB_FAIL_AFTER:-3}
		  rise_after: ${LAB_RISE_AFTER:-2}
		tables:
		  min_rewrite_interval_ms: ${LAB_REWRITE_MS:-200}
		etcd:
		  endpoint: $LAB_ETCD_URL
		  prefix: /aibl/$LAB_PREFIX
		  name: b$i
		  api_url: http://$ip:7070
		  lease_ttl_s: ${LAB_LEASE_TTL_S:-2}
		  cost_step: ${LAB_COST_STEP:-4}
		bgp:
		  include: $LAB_DIR/b$i-vips.conf
		  bird_socket: $LAB_DIR/bird-b$i.ctl
		  birdc: birdc
	EOF
}

# lab_start_balancer I CONFIG: aibld of bI (waits for its API)
lab_start_balancer() {
	lab_spawn "b$1" "aibld-b$1" "$AIBL_BUILD/aibld" --config "$2" || return 1
	lab_wait_http "b$1" "http://127.0.0.1:7070/v1/status" 15
}

# lab_bal_api I PATH: balancer bI's API
lab_bal_api() {
	lab_run "b$1" curl -sS --max-time 3 "http://127.0.0.1:7070$2"
}

# lab_rt_nexthops VIP: the router's next hops for VIP, sorted, space-separated
lab_rt_nexthops() {
	lab_run rt ip -4 route show "$1/32" 2>/dev/null |
		grep -oE 'via [0-9.]+' | awk '{print $2}' | sort | tr '\n' ' ' | sed 's/ $//'
}
