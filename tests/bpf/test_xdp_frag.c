// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * IP fragments: steered by the client address for a port-0 wildcard
 * service keyed by client, in whatever order they come; dropped for any
 * other service; passed when not for a VIP.
 */
#include <stdint.h>
#include "xdp_fixture.h"

static void frag4(struct pkt_buf *b, const char *src, const char *dst, __u16 fo, bool l4)
{
	struct pkt_ip4_opts o = {.id = 77, .frag_off = fo, .ttl = 64};

	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, src, dst, &o);
	if (l4)
		pkt__udp(b, 5000, 6000);
	else
		pkt__next_proto(b, IPPROTO_UDP);
	pkt__fill(b, 48);
	pkt__finish(b);
}

static void test_fragments(void)
{
	static __u32 pat[3] = {1, 2, 5};
	struct pkt_buf in, exp;
	struct aibl_flow_key fk;
	struct aibl_traffic t0, t1;
	__u32 h, want;

	if (!std_env())
		goto out;
	ASSERT_OK(xe_ring(2, 0, pat, 3), "ring");
	fk = xe_fk(CLI4, VIP4W, 0, 0, IPPROTO_UDP);
	h = aibl_hash_client(&fk, XE_SEED);
	want = xe_ring_get(2, 0, h % AIBL_RING_SIZE);
	xe_traffic(AIBL_MAP_SVC_STATS, 2, &t0);
	/* later fragment first (reordered), then the first fragment */
	frag4(&in, CLI4, VIP4W, 185, false);
	xe_exp_ipip(&exp, &in, want, NULL, h);
	expect("later fragment: by client address", &in, XDP_TX, &exp, NULL);
	frag4(&in, CLI4, VIP4W, 0x2000, true);
	xe_exp_ipip(&exp, &in, want, NULL, h);
	expect("first fragment: same backend", &in, XDP_TX, &exp, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_FRAG_FWD), 2, "frag_fwd");
	xe_traffic(AIBL_MAP_SVC_STATS, 2, &t1);
	ASSERT_EQ(t1.packets - t0.packets, 2, "both fragments counted to the service");
	ASSERT_EQ(t1.new_flows - t0.new_flows, 1, "the datagram one new flow, at its first");

	frag4(&in, CLI4, VIP4T, 185, false);
	expect("fragment to a 5-tuple service: dropped", &in, XDP_DROP, NULL, NULL);
	frag4(&in, CLI4, VIP4, 185, false);
	in.buf[xe_l3(&in) + 9] = IPPROTO_TCP;
	expect("later fragment to a port-only vip address: passed (cannot tell)", &in, XDP_PASS,
	       NULL, NULL);
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(&in, CLI4, VIP4, &(struct pkt_ip4_opts){.frag_off = 0x2000});
	pkt__tcp(&in, 40000, 80, PKT_TCP_ACK);
	pkt__finish(&in);
	expect("first fragment to a port-only vip: dropped", &in, XDP_DROP, NULL, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_FRAG), 2, "drop_fragment");
	frag4(&in, CLI4, "10.100.0.99", 185, false);
	expect("fragment to a non-vip: passed", &in, XDP_PASS, NULL, NULL);

	/* IPv6: fragment header, wildcard tcp service keyed by client */
	fk = xe_fk(CLI6, VIP6W, 0, 0, IPPROTO_TCP);
	h = aibl_hash_client(&fk, XE_SEED);
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(&in, CLI6, VIP6W, 0, 0);
	pkt__ipv6_frag(&in, 0, true, 99);
	pkt__tcp(&in, 40000, 443, PKT_TCP_ACK);
	pkt__fill(&in, 40);
	pkt__finish(&in);
	xe_exp_ipip(&exp, &in, 3, NULL, h);
	expect("ipv6 first fragment", &in, XDP_TX, &exp, NULL);
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(&in, CLI6, VIP6W, 0, 0);
	pkt__ipv6_frag(&in, 64, false, 99);
	pkt__next_proto(&in, IPPROTO_TCP);
	pkt__fill(&in, 40);
	pkt__finish(&in);
	xe_exp_ipip(&exp, &in, 3, NULL, h);
	expect("ipv6 later fragment", &in, XDP_TX, &exp, NULL);

	/* Destination Options after the Fragment header: the later fragments
	 * name that header, not TCP, and are passed; so is the first, not
	 * walked on to its ports and sent to a backend alone */
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(&in, CLI6, VIP6W, 0, 0);
	pkt__ipv6_frag(&in, 0, true, 100);
	pkt__ipv6_ext(&in, IPPROTO_DSTOPTS, 0);
	pkt__tcp(&in, 40000, 443, PKT_TCP_ACK);
	pkt__fill(&in, 40);
	pkt__finish(&in);
	expect("ipv6 first fragment, options after the fragment header: passed", &in, XDP_PASS,
	       NULL, NULL);
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(&in, CLI6, VIP6W, 0, 0);
	pkt__ipv6_frag(&in, 64, false, 100);
	pkt__next_proto(&in, IPPROTO_DSTOPTS);
	pkt__fill(&in, 40);
	pkt__finish(&in);
	expect("its later fragment: passed too", &in, XDP_PASS, NULL, NULL);

	/* a port of the wildcard's address with a service of its own: a first
	 * fragment to it is that port's datagram, its later fragments the
	 * wildcard's; dropped, never split between the two services */
	if (!ASSERT_OK(
		xe_vip(VIP4W, 6000, IPPROTO_UDP, 1, AIBL_MODE_HASH, AIBL_KEY_FIVE_TUPLE, 0, 0),
		"a port of its own"))
		goto out;
	frag4(&in, CLI4, VIP4W, 0x2000, true);
	expect("first fragment to a port with its own service: dropped", &in, XDP_DROP, NULL, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_FRAG), 3, "drop_fragment");
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"fragments", test_fragments},
};

XF_MAIN(cases)
