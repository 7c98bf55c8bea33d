// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ICMP errors sent to a VIP about a flow's reply: forwarded to the flow's
 * backend (by the connection table, or the hash choice recomputed, in every
 * mode: where a flow without an entry goes), dropped
 * when no backend can be found, passed when they are about the host's own
 * traffic.
 */
#include <stdint.h>
#include "xdp_fixture.h"

/* an ICMP error from router rtr to the VIP, quoting the VIP's reply */
static void icmp4_err(struct pkt_buf *b, __u8 type, __u8 code, __u32 rest, const char *vip,
		      __u16 vport, const char *cli, __u16 cport)
{
	struct pkt_buf q;

	pkt__init(&q);
	pkt__ipv4(&q, vip, cli, NULL);
	pkt__tcp(&q, vport, cport, PKT_TCP_ACK);
	pkt__fill(&q, 100);
	pkt__finish(&q);
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, "203.0.113.1", vip, NULL);
	pkt__icmp(b, type, code, rest);
	pkt__payload(b, q.buf, 28); /* a router quotes the header + 8 bytes */
	pkt__finish(b);
}

static void icmp6_err(struct pkt_buf *b, __u8 type, __u32 rest, const char *vip, __u16 vport,
		      const char *cli, __u16 cport)
{
	struct pkt_buf q;

	pkt__init(&q);
	pkt__ipv6(&q, vip, cli, 0, 0);
	pkt__tcp(&q, vport, cport, PKT_TCP_ACK);
	pkt__fill(&q, 1400);
	pkt__finish(&q);
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(b, "2001:db8:ffff::1", vip, 0, 0);
	pkt__icmp6(b, type, 0, rest);
	pkt__payload(b, q.buf, 1280 - 48); /* as much as fits the minimum MTU */
	pkt__finish(b);
}

static void test_icmp_errors(void)
{
	struct pkt_buf in, exp;
	struct xe_result r;
	struct aibl_flow_key fk;

	if (!std_env())
		goto out;
	/* flow CLI4:40000 -> VIP4:80 on backend 1; then the table moves to 2 */
	open_v4_flow(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "flow");
	ASSERT_OK(xe_ring(0, 1, RING_B2, 1), "half 1");
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 1, 0), "flip");

	fk = xe_fk(CLI4, VIP4, 40000, 80, IPPROTO_TCP);
	icmp4_err(&in, 3, 4, 1400, VIP4, 80, CLI4, 40000);
	xe_exp_ipip(&exp, &in, 1, NULL, aibl_hash_flow(&fk, XE_SEED));
	expect("frag-needed follows the flow to its backend", &in, XDP_TX, &exp, NULL);
	icmp4_err(&in, 11, 0, 0, VIP4, 80, CLI4, 40000);
	xe_exp_ipip(&exp, &in, 1, NULL, aibl_hash_flow(&fk, XE_SEED));
	expect("time exceeded follows the flow", &in, XDP_TX, &exp, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_ICMP_FWD), 2, "icmp_fwd");

	/* no conn entry, hash service: the choice is recomputed */
	fk = xe_fk("192.0.2.99", VIP4, 1111, 80, IPPROTO_TCP);
	icmp4_err(&in, 3, 4, 1400, VIP4, 80, "192.0.2.99", 1111);
	xe_exp_ipip(&exp, &in, 2, NULL, aibl_hash_flow(&fk, XE_SEED));
	expect("unknown flow of a hash service: table choice", &in, XDP_TX, &exp, NULL);

	/* rr service, unknown flow: the hash choice too, where the packets of
	 * a flow without an entry go (one the rate guard refused, one the
	 * table lost), so its path MTU discovery works */
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_SRC_IP, 1, 0), "rr");
	fk = xe_fk("192.0.2.98", VIP4, 1111, 80, IPPROTO_TCP);
	icmp4_err(&in, 3, 4, 1400, VIP4, 80, "192.0.2.98", 1111);
	xe_exp_ipip(&exp, &in, 2, NULL, aibl_hash_flow(&fk, XE_SEED));
	expect("unknown flow of an rr service: hash choice", &in, XDP_TX, &exp, NULL);
	/* that backend down: nobody to give it to */
	ASSERT_OK(xe_backend(2, AIBL_BE_F_DOWN, true), "backend 2 down");
	icmp4_err(&in, 3, 4, 1400, VIP4, 80, "192.0.2.98", 1111);
	expect("its backend down: dropped", &in, XDP_DROP, NULL, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_ICMP), 1, "drop_icmp");
	ASSERT_OK(xe_backend(2, 0, true), "backend 2 up");

	/* about the host's own traffic: not ours */
	icmp4_err(&in, 3, 4, 1400, "10.100.0.77", 80, CLI4, 40000);
	expect("icmp about a non-vip: passed", &in, XDP_PASS, NULL, NULL);
	icmp4_err(&in, 3, 4, 1400, VIP4, 22, CLI4, 40000);
	expect("icmp about another port of the vip address: passed", &in, XDP_PASS, NULL, NULL);

	/* ICMPv6 packet too big */
	tcp6(&in, CLI6, VIP6, 40000, 80, PKT_TCP_SYN);
	xe_run(&in, &r);
	tcp6(&in, CLI6, VIP6, 40000, 80, PKT_TCP_ACK);
	xe_run(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "flow6");
	ASSERT_OK(xe_ring(1, 1, RING_B2, 1), "half 1");
	ASSERT_OK(xe_vip(VIP6, 80, IPPROTO_TCP, 1, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 1, 0), "flip");
	fk = xe_fk(CLI6, VIP6, 40000, 80, IPPROTO_TCP);
	icmp6_err(&in, 2, 1280, VIP6, 80, CLI6, 40000);
	xe_exp_ipip(&exp, &in, 3, NULL, aibl_hash_flow(&fk, XE_SEED));
	expect("packet-too-big follows the flow to its backend", &in, XDP_TX, &exp, NULL);
	icmp6_err(&in, 1, 0, VIP6, 80, CLI6, 40000);
	xe_exp_ipip(&exp, &in, 3, NULL, aibl_hash_flow(&fk, XE_SEED));
	expect("icmpv6 unreachable follows the flow", &in, XDP_TX, &exp, NULL);
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(&in, CLI6, VIP6, 0, 0);
	pkt__icmp6(&in, 128, 0, 0);
	pkt__finish(&in);
	expect("icmpv6 echo: passed", &in, XDP_PASS, NULL, NULL);
out:
	xe_down();
}

/*
 * An ICMP error about a VIP flow that is too big for the MTU once
 * encapsulated is dropped, never answered with an ICMP too-big (RFC 1122
 * 3.2.2, RFC 4443 2.4(e)), and not counted as forwarded.
 */
static void test_icmp_no_error_on_error(void)
{
	struct pkt_buf in, q;
	struct xe_result r;

	if (!std_env())
		goto out;
	ASSERT_EQ(syn_from(1, 40000, VIP4, 80, &r), 1, "flow on 1");
	xe_glob.mtu = 120;
	xe_glob.flags |= AIBL_G_F_TOOBIG_ICMP;
	if (!ASSERT_OK(xe_globals_write(), "mtu 120, too-big on"))
		goto out;
	/* frag-needed quoting 120 bytes: 148 + 20 outer > 120, DF set */
	pkt__init(&q);
	pkt__ipv4(&q, VIP4, "198.18.0.1", NULL);
	pkt__tcp(&q, 80, 40000, PKT_TCP_ACK);
	pkt__fill(&q, 200);
	pkt__finish(&q);
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(&in, "203.0.113.1", VIP4, NULL);
	pkt__icmp(&in, 3, 4, 1400);
	pkt__payload(&in, q.buf, 120);
	pkt__finish(&in);
	expect("oversized frag-needed: dropped, not answered", &in, XDP_DROP, NULL, &r);
	ASSERT_EQ(xe_counter(AIBL_CNT_TOOBIG_SENT), 0, "no too-big sent");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_TOO_BIG), 1, "drop_too_big");
	ASSERT_EQ(xe_counter(AIBL_CNT_ICMP_FWD), 0, "icmp_fwd: nothing forwarded");

	/* ICMPv6 packet-too-big of 1280 bytes, mtu 1300 < 1280 + 40 */
	xe_glob.mtu = 1300;
	if (!ASSERT_OK(xe_globals_write(), "mtu 1300"))
		goto out;
	tcp6(&in, CLI6, VIP6, 40000, 80, PKT_TCP_SYN);
	xe_run(&in, &r);
	tcp6(&in, CLI6, VIP6, 40000, 80, PKT_TCP_ACK);
	xe_run(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "flow6");
	icmp6_err(&in, 2, 1280, VIP6, 80, CLI6, 40000);
	expect("oversized packet-too-big: dropped, not answered", &in, XDP_DROP, NULL, &r);
	ASSERT_EQ(xe_counter(AIBL_CNT_TOOBIG_SENT), 0, "no too-big sent (v6)");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_TOO_BIG), 2, "drop_too_big (v6)");
	ASSERT_EQ(xe_counter(AIBL_CNT_ICMP_FWD), 0, "icmp_fwd (v6)");
	/* a TCP packet of that size still gets its too-big */
	xe_glob.mtu = 120;
	if (!ASSERT_OK(xe_globals_write(), "mtu 120"))
		goto out;
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(&in, "198.18.0.1", VIP4, NULL);
	pkt__tcp(&in, 40000, 80, PKT_TCP_ACK);
	pkt__fill(&in, 200);
	pkt__finish(&in);
	xe_run(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "tcp: too-big sent back");
	ASSERT_EQ(xe_counter(AIBL_CNT_TOOBIG_SENT), 1, "toobig_sent for tcp");
out:
	xe_down();
}

/* An ICMP packet to a VIP address whose IP header lies (total length past
 * the frame) is dropped as a bad header, as any other protocol's. */
static void test_icmp_bad_header(void)
{
	struct pkt_buf in;
	int l3;

	if (!std_env())
		goto out;
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(&in, CLI4, VIP4W, NULL);
	pkt__icmp(&in, 8, 0, 0x12340001);
	pkt__fill(&in, 16);
	pkt__finish(&in);
	l3 = xe_l3(&in);
	in.buf[l3 + 2] = 0x05; /* tot_len 0x05xx: beyond the frame */
	expect("echo with tot_len beyond the frame to a udp wildcard vip: dropped", &in, XDP_DROP,
	       NULL, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_BAD_HDR), 1, "drop_bad_header");
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(&in, CLI4, "10.100.0.77", NULL);
	pkt__icmp(&in, 8, 0, 0x12340001);
	pkt__fill(&in, 16);
	pkt__finish(&in);
	in.buf[l3 + 2] = 0x05;
	expect("the same to a non-vip: passed", &in, XDP_PASS, NULL, NULL);
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"icmp_errors", test_icmp_errors},
    {"icmp_no_error_on_error", test_icmp_no_error_on_error},
    {"icmp_bad_header", test_icmp_bad_header},
};

XF_MAIN(cases)
