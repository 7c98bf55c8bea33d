// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ICMP errors sent to a VIP about a flow's reply: forwarded to the flow's
 * backend (by the connection table, or the hash choice recomputed), dropped
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
	in_v4_syn(&in);
	xe_run(&in, &r);
	/* its handshake's ACK puts the flow into the connection table */
	tcp4(&in, CLI4, VIP4, 40000, 80, PKT_TCP_ACK);
	xe_run(&in, &r);
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

	/* rr service, unknown flow: nobody to give it to */
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_SRC_IP, 1, 0), "rr");
	icmp4_err(&in, 3, 4, 1400, VIP4, 80, "192.0.2.98", 1111);
	expect("unknown flow of an rr service: dropped", &in, XDP_DROP, NULL, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_ICMP), 1, "drop_icmp");

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

static const struct test_case cases[] = {
    {"icmp_errors", test_icmp_errors},
};

XF_MAIN(cases)
