// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Forwarding: l2dsr rewrites the MACs only; ipip spreads the outer source
 * by the flow hash and carries IPv4 in IPv6 (not IPv6 in IPv4); the next
 * hop is the backend's MAC, else the FIB's neighbour (redirected), else
 * the gateway; a packet over the MTU once encapsulated is dropped or
 * answered with ICMP fragmentation-needed / packet-too-big.
 */
#include <stdint.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include "xdp_fixture.h"

static void test_fwd_l2dsr(void)
{
	struct pkt_buf in, exp;

	if (!std_env())
		goto out;
	xe_glob.fwd_mode = AIBL_FWD_L2DSR;
	if (!ASSERT_OK(xe_globals_write(), "globals"))
		goto out;
	in_v4_options(&in);
	xe_exp_l2dsr(&exp, &in, 1);
	expect("l2dsr ipv4: macs only", &in, XDP_TX, &exp, NULL);
	in_v4_qinq(&in);
	xe_exp_l2dsr(&exp, &in, 1);
	expect("l2dsr ipv4 qinq: macs only", &in, XDP_TX, &exp, NULL);
	in_v6_ext(&in);
	xe_exp_l2dsr(&exp, &in, 3);
	expect("l2dsr ipv6: macs only", &in, XDP_TX, &exp, NULL);
out:
	xe_down();
}

static void test_fwd_ipip_spread(void)
{
	struct pkt_buf in, exp;
	struct aibl_flow_key fk;

	if (!std_env())
		goto out;
	/* backends' RSS hashes the outer header: spread the source */
	inet_pton(AF_INET, "0.0.0.255", &xe_glob.src4_mask);
	if (!ASSERT_OK(xe_globals_write(), "globals"))
		goto out;
	for (__u16 port = 40000; port < 40004; port++) {
		tcp4(&in, CLI4, VIP4, port, 80, PKT_TCP_SYN);
		fk = xe_fk(CLI4, VIP4, port, 80, IPPROTO_TCP);
		xe_exp_ipip(&exp, &in, 1, NULL, aibl_hash_flow(&fk, XE_SEED));
		expect("ipv4 outer source from flow hash", &in, XDP_TX, &exp, NULL);
	}
	/* 4in6: an IPv4 service with an IPv6 backend */
	if (!ASSERT_OK(xe_ring(0, 0, RING_B3, 1), "ring"))
		goto out;
	tcp4(&in, "192.0.2.77", VIP4, 1234, 80, PKT_TCP_SYN);
	fk = xe_fk("192.0.2.77", VIP4, 1234, 80, IPPROTO_TCP);
	xe_exp_ipip(&exp, &in, 3, NULL, aibl_hash_flow(&fk, XE_SEED));
	expect("ipv4 vip to ipv6 backend: 4in6", &in, XDP_TX, &exp, NULL);
	/* 6in4 has no decap on the node side: refused */
	if (!ASSERT_OK(xe_ring(1, 0, RING_B1, 1), "ring"))
		goto out;
	tcp6(&in, CLI6, VIP6, 1, 80, PKT_TCP_SYN);
	expect("ipv6 vip to ipv4 backend: dropped", &in, XDP_DROP, NULL, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_ENCAP), 1, "drop_encap");
out:
	xe_down();
}

/* next hop: backend MAC, else FIB (route in this netns), else gateway MAC */
static void test_fwd_nexthop(void)
{
	struct pkt_buf in, exp;
	struct xe_result r;
	struct aibl_flow_key fk;
	__u32 h;
	uint8_t nbr[6] = {2, 0, 0, 0, 9, 1}, ifmac[6];
	int ifi;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(xe_backend(1, AIBL_BE_F_VALID, false), "backend without mac"))
		goto out;
	in_v4_syn(&in);
	fk = xe_fk(CLI4, VIP4, 40000, 80, IPPROTO_TCP);
	h = aibl_hash_flow(&fk, XE_SEED);
	xe_exp_ipip(&exp, &in, 1, XE_MAC_GW, h);
	expect("no route: gateway mac", &in, XDP_TX, &exp, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_FIB_FAIL), 1, "fib_fail");

	memset(xe_glob.gw_mac, 0, 6);
	if (!ASSERT_OK(xe_globals_write(), "globals"))
		goto out;
	expect("no route, no gateway: dropped", &in, XDP_DROP, NULL, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_NO_FIB), 1, "drop_no_nexthop");

	/* a route and a neighbour: fib gives the MAC and another ifindex */
	if (!ASSERT_OK(system("ip link add dpt0 type veth peer name dpt1 && ip link set dpt0 up && "
			      "ip link set dpt1 up && ip addr add 10.1.0.254/24 dev dpt0"),
		       "lab link") ||
	    !ASSERT_OK(system("ip neigh replace 10.1.0.1 lladdr 02:00:00:00:09:01 dev dpt0 "
			      "nud permanent"),
		       "lab neighbour") ||
	    /* bpf_fib_lookup forwards from the ingress device (lo in a test run) */
	    !ASSERT_OK(system("sysctl -qw net.ipv4.conf.all.forwarding=1 "
			      "net.ipv4.conf.lo.forwarding=1"),
		       "forwarding"))
		goto out;
	ifi = if_nametoindex("dpt0");
	{
		/* sysfs shows the host's netns: ask the kernel here */
		struct ifreq ifr = {};
		int sk = socket(AF_INET, SOCK_DGRAM, 0);

		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "dpt0");
		if (!ASSERT_OK(ioctl(sk, SIOCGIFHWADDR, &ifr), "dpt0 mac")) {
			close(sk);
			goto out;
		}
		close(sk);
		memcpy(ifmac, ifr.ifr_hwaddr.sa_data, 6);
	}
	memset(xe_glob.if_mac, 0, 6); /* source MAC from the fib too */
	if (!ASSERT_OK(xe_globals_write(), "globals"))
		goto out;
	xe_exp_ipip(&exp, &in, 1, nbr, h);
	memcpy(exp.buf + 6, ifmac, 6);
	expect("fib: neighbour mac, redirect", &in, XDP_REDIRECT, &exp, &r);
	ASSERT_EQ(xe_counter(AIBL_CNT_REDIRECT), 1, "redirect");
	ASSERT_GE(ifi, 1, "ifindex");
out:
	system("ip link del dpt0 2>/dev/null");
	xe_down();
}

/* ---------------- MTU ---------------- */

static void big4(struct pkt_buf *b, size_t payload, bool df)
{
	struct pkt_ip4_opts o = {.ttl = 64, .no_df = !df};

	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, CLI4, VIP4, &o);
	pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
	pkt__fill(b, payload);
	pkt__finish(b);
}

static void test_mtu(void)
{
	struct pkt_buf in, exp;
	struct pkt_ip4_opts io = {.tos = 0xc0, .ttl = 64, .no_df = true};
	struct aibl_flow_key fk;

	if (!std_env())
		goto out;
	xe_glob.mtu = 1000;
	if (!ASSERT_OK(xe_globals_write(), "globals"))
		goto out;
	big4(&in, 1000 - 20 - 40, true); /* exactly fits with the outer header */
	fk = xe_fk(CLI4, VIP4, 40000, 80, IPPROTO_TCP);
	xe_exp_ipip(&exp, &in, 1, NULL, aibl_hash_flow(&fk, XE_SEED));
	expect("fits the mtu", &in, XDP_TX, &exp, NULL);
	big4(&in, 1000 - 20 - 40 + 1, true);
	expect("one byte over, no icmp configured: dropped", &in, XDP_DROP, NULL, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_TOO_BIG), 1, "drop_too_big");

	xe_glob.flags |= AIBL_G_F_TOOBIG_ICMP;
	if (!ASSERT_OK(xe_globals_write(), "globals"))
		goto out;
	pkt__init(&exp);
	pkt__eth(&exp, XE_MAC_RTR, XE_MAC_LB);
	pkt__ipv4(&exp, VIP4, CLI4, &io);
	pkt__icmp(&exp, 3, 4, 1000 - 20);
	pkt__payload(&exp, in.buf + xe_l3(&in), 68);
	pkt__finish(&exp);
	expect("frag-needed back to the client", &in, XDP_TX, &exp, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_TOOBIG_SENT), 1, "toobig_sent");
	/* 40 bytes of IPv4 options: the quote holds the 60-byte header and 8
	 * bytes beyond it, as the client's stack needs to take the error */
	{
		static const uint8_t nops[40] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
						 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
						 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
		struct pkt_ip4_opts oo = {.ttl = 64, .options = nops, .options_len = 40};

		pkt__init(&in);
		pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
		pkt__ipv4(&in, CLI4, VIP4, &oo);
		pkt__tcp(&in, 40000, 80, PKT_TCP_ACK);
		pkt__fill(&in, 1000);
		pkt__finish(&in);
		pkt__init(&exp);
		pkt__eth(&exp, XE_MAC_RTR, XE_MAC_LB);
		pkt__ipv4(&exp, VIP4, CLI4, &io);
		pkt__icmp(&exp, 3, 4, 1000 - 20);
		pkt__payload(&exp, in.buf + xe_l3(&in), 60 + 8);
		pkt__finish(&exp);
		expect("options: frag-needed quoting header and 8 bytes", &in, XDP_TX, &exp, NULL);
	}
	big4(&in, 1000, false);
	expect("no DF: dropped, not answered", &in, XDP_DROP, NULL, NULL);

	/* IPv6 with a v6 backend: outer 40 bytes */
	xe_glob.mtu = 1300;
	if (!ASSERT_OK(xe_globals_write(), "globals"))
		goto out;
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(&in, CLI6, VIP6, 0, 0);
	pkt__tcp(&in, 40000, 80, PKT_TCP_ACK);
	pkt__fill(&in, 1300);
	pkt__finish(&in);
	pkt__init(&exp);
	pkt__eth(&exp, XE_MAC_RTR, XE_MAC_LB);
	pkt__ipv6(&exp, VIP6, CLI6, 0, 0);
	pkt__icmp6(&exp, 2, 0, 1300 - 40);
	pkt__payload(&exp, in.buf + xe_l3(&in), 128);
	pkt__finish(&exp);
	expect("packet-too-big back to the client", &in, XDP_TX, &exp, NULL);
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"fwd_l2dsr", test_fwd_l2dsr},
    {"fwd_ipip_spread_4in6", test_fwd_ipip_spread},
    {"fwd_nexthop", test_fwd_nexthop},
    {"mtu_too_big", test_mtu},
};

XF_MAIN(cases)
