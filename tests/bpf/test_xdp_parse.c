// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Parsing: frames the program must forward whole (IPv4 options, VLAN and
 * QinQ tags, IPv6 extension headers, the port-0 wildcard), drop when cut
 * or inconsistent and addressed to a VIP, and pass untouched otherwise;
 * one fixture row per frame, with the counter that must go up.
 */
#include <stdint.h>
#include "xdp_fixture.h"

static void in_v4_vlan(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__vlan(b, 0x8100, 100);
	pkt__ipv4(b, CLI4, VIP4, NULL);
	pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
	pkt__finish(b);
}

static void in_v6_syn(struct pkt_buf *b)
{
	tcp6(b, CLI6, VIP6, 40000, 80, PKT_TCP_SYN);
}

static void in_v6_ext_long(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(b, CLI6, VIP6W, 0, 0);
	for (int i = 0; i <= AIBL_MAX_EXT_HDRS; i++)
		pkt__ipv6_ext(b, IPPROTO_DSTOPTS, 0);
	pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
	pkt__finish(b);
}

static void in_v4_tcp_cut(struct pkt_buf *b)
{
	in_v4_syn(b);
	b->len = xe_l3(b) + 20 + 10; /* 10 of 20 TCP header bytes */
}

static void in_v4_opts_cut(struct pkt_buf *b)
{
	in_v4_udp_wild(b);
	b->buf[xe_l3(b)] = 0x4f; /* ihl 15: 60 bytes claimed */
	b->buf[xe_l3(b) + 2] = 0;
	b->buf[xe_l3(b) + 3] = 100;
	b->len = xe_l3(b) + 40;
}

static void in_v4_totlen_long(struct pkt_buf *b)
{
	in_v4_syn(b);
	b->buf[xe_l3(b) + 2] = 0x05; /* tot_len 1280+ on a short frame */
}

static void in_v4_ihl_small(struct pkt_buf *b)
{
	in_v4_udp_wild(b);
	b->buf[xe_l3(b)] = 0x44;
}

static void in_v4_doff_small(struct pkt_buf *b)
{
	in_v4_syn(b);
	b->buf[xe_l3(b) + 20 + 12] = 0x40;
}

/* data offset 15 (60 bytes) on a 20-byte header with 32 bytes after it */
static void in_v4_doff_big(struct pkt_buf *b)
{
	in_v4_syn(b);
	b->buf[xe_l3(b) + 20 + 12] = 0xf0;
}

static void in_v6_doff_big(struct pkt_buf *b)
{
	in_v6_syn(b);
	b->buf[xe_l3(b) + 40 + 12] = 0xf0;
}

static void in_v6_plen_long(struct pkt_buf *b)
{
	in_v6_syn(b);
	b->buf[xe_l3(b) + 4] = 0x10;
}

static void in_nonvip4(struct pkt_buf *b)
{
	tcp4(b, CLI4, "10.100.0.99", 40000, 80, PKT_TCP_SYN);
}

static void in_nonvip_port(struct pkt_buf *b)
{
	tcp4(b, CLI4, VIP4, 40000, 22, PKT_TCP_SYN);
}

static void in_nonvip6(struct pkt_buf *b)
{
	tcp6(b, CLI6, "fd00:100::99", 40000, 80, PKT_TCP_SYN);
}

static void in_nonvip_cut(struct pkt_buf *b)
{
	in_nonvip4(b);
	b->len = xe_l3(b) + 10;
}

static void in_nonvip_tcp_cut(struct pkt_buf *b)
{
	in_nonvip4(b);
	b->len = xe_l3(b) + 22;
}

static void in_arp(struct pkt_buf *b)
{
	static const uint8_t arp[28] = {0, 1, 8, 0, 6, 4, 0, 1};

	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__payload(b, arp, sizeof(arp));
	pkt__finish(b);
	b->buf[12] = 0x08;
	b->buf[13] = 0x06;
}

static void in_three_tags(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__vlan(b, 0x88a8, 1);
	pkt__vlan(b, 0x8100, 2);
	pkt__vlan(b, 0x8100, 3);
	pkt__ipv4(b, CLI4, VIP4, NULL);
	pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
	pkt__finish(b);
}

static void in_echo_vip(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, CLI4, VIP4, NULL);
	pkt__icmp(b, 8, 0, 0x00010001);
	pkt__fill(b, 16);
	pkt__finish(b);
}

static void in_sctp_vip(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, CLI4, VIP4, NULL);
	pkt__next_proto(b, 132);
	pkt__fill(b, 16);
	pkt__finish(b);
}

/* ---------------- parsing fixture table ---------------- */

struct fixture {
	const char *desc;
	void (*build)(struct pkt_buf *in);
	__u32 verdict;
	/* forwarded: expected backend (ipip); 0: unchanged or dropped */
	__u32 backend;
	/* the one counter that must go up (-1: none checked) */
	int counter;
	/* flow for the outer header hash */
	const char *src, *dst;
	__u16 sport, dport;
	__u8 proto;
};

static const struct fixture parse_fixtures[] = {
    {"ipv4 tcp syn to vip: 4in4", in_v4_syn, XDP_TX, 1, AIBL_CNT_SYN_RECORD, CLI4, VIP4, 40000, 80,
     IPPROTO_TCP},
    {"ipv4 with options: forwarded whole", in_v4_options, XDP_TX, 1, AIBL_CNT_TX, CLI4, VIP4, 40000,
     80, IPPROTO_TCP},
    {"802.1Q tag kept (same flow: its handshake's ACK)", in_v4_vlan, XDP_TX, 1, AIBL_CNT_SYN_HIT,
     CLI4, VIP4, 40000, 80, IPPROTO_TCP},
    {"802.1ad + 802.1Q tags kept", in_v4_qinq, XDP_TX, 1, AIBL_CNT_TX, CLI4, VIP4, 40000, 80,
     IPPROTO_TCP},
    {"udp to port-0 wildcard vip", in_v4_udp_wild, XDP_TX, 2, AIBL_CNT_TX, CLI4, VIP4W, 5353, 9999,
     IPPROTO_UDP},
    {"ipv6 tcp syn to vip: 6in6", in_v6_syn, XDP_TX, 3, AIBL_CNT_TX, CLI6, VIP6, 40000, 80,
     IPPROTO_TCP},
    {"ipv6 hop-by-hop, dstopts, routing headers", in_v6_ext, XDP_TX, 3, AIBL_CNT_TX, CLI6, VIP6,
     40000, 80, IPPROTO_TCP},
    {"ipv6 extension chain too long", in_v6_ext_long, XDP_DROP, 0, AIBL_CNT_DROP_EXT_HDR},
    {"tcp header cut", in_v4_tcp_cut, XDP_DROP, 0, AIBL_CNT_DROP_TRUNC},
    {"ipv4 options cut", in_v4_opts_cut, XDP_DROP, 0, AIBL_CNT_DROP_TRUNC},
    {"ipv4 total length beyond frame", in_v4_totlen_long, XDP_DROP, 0, AIBL_CNT_DROP_BAD_HDR},
    {"ipv4 ihl below 5", in_v4_ihl_small, XDP_DROP, 0, AIBL_CNT_DROP_BAD_HDR},
    {"tcp data offset below 5", in_v4_doff_small, XDP_DROP, 0, AIBL_CNT_DROP_BAD_HDR},
    {"tcp data offset past the packet", in_v4_doff_big, XDP_DROP, 0, AIBL_CNT_DROP_BAD_HDR},
    {"ipv6 tcp data offset past the packet", in_v6_doff_big, XDP_DROP, 0, AIBL_CNT_DROP_BAD_HDR},
    {"ipv6 payload length beyond frame", in_v6_plen_long, XDP_DROP, 0, AIBL_CNT_DROP_BAD_HDR},
    {"ipv4 not a vip: passed", in_nonvip4, XDP_PASS, 0, AIBL_CNT_PASS},
    {"vip address, other port: passed", in_nonvip_port, XDP_PASS, 0, AIBL_CNT_PASS},
    {"ipv6 not a vip: passed", in_nonvip6, XDP_PASS, 0, AIBL_CNT_PASS},
    {"cut ipv4 header, not a vip: passed", in_nonvip_cut, XDP_PASS, 0, AIBL_CNT_PASS},
    {"cut tcp header, not a vip: passed", in_nonvip_tcp_cut, XDP_PASS, 0, AIBL_CNT_PASS},
    {"arp: passed", in_arp, XDP_PASS, 0, AIBL_CNT_PASS},
    {"three vlan tags: passed", in_three_tags, XDP_PASS, 0, AIBL_CNT_PASS},
    {"icmp echo to a vip: passed", in_echo_vip, XDP_PASS, 0, AIBL_CNT_PASS},
    {"sctp to a vip: passed", in_sctp_vip, XDP_PASS, 0, AIBL_CNT_PASS},
};

static void test_parse(void)
{
	struct pkt_buf in, exp;

	if (!std_env())
		goto out;
	for (size_t i = 0; i < sizeof(parse_fixtures) / sizeof(parse_fixtures[0]); i++) {
		const struct fixture *f = &parse_fixtures[i];
		__u64 before = f->counter >= 0 ? xe_counter(f->counter) : 0;

		f->build(&in);
		if (f->backend) {
			struct aibl_flow_key fk =
			    xe_fk(f->src, f->dst, f->sport, f->dport, f->proto);

			xe_exp_ipip(&exp, &in, f->backend, NULL, aibl_hash_flow(&fk, XE_SEED));
		}
		expect(f->desc, &in, f->verdict, f->backend ? &exp : NULL, NULL);
		if (f->counter >= 0)
			ASSERT_EQ(xe_counter(f->counter), before + 1, f->desc);
	}
out:
	xe_down();
}

/* a 9000-byte frame from cli to dst:80 (TCP ACK), IP length set to match */
static size_t jumbo(uint8_t *f, const char *dst)
{
	struct pkt_buf b;
	int l3;

	tcp4(&b, CLI4, dst, 40000, 80, PKT_TCP_ACK);
	l3 = xe_l3(&b);
	memset(f, 0xab, 9000);
	memcpy(f, b.buf, l3 + 40);
	f[l3 + 2] = (9000 - l3) >> 8;
	f[l3 + 3] = (9000 - l3) & 0xff;
	return 9000;
}

/* runs the 9000-byte frame in[] through the program; out[] holds the result */
static int run_jumbo(const uint8_t *in, size_t len, uint8_t *out, size_t out_size, __u32 *out_len)
{
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = in, .data_size_in = len, .data_out = out,
		    .data_size_out = out_size, .repeat = 1);

	if (bpf_prog_test_run_opts(dp__prog_fd(xe_dp), &t))
		return -errno;
	*out_len = t.data_size_out;
	return t.retval;
}

/*
 * Jumbo frames: aibl_xdp is an xdp.frags program. A multi-buffer frame,
 * which BPF_PROG_TEST_RUN makes of anything longer than a page, is parsed
 * from its first buffer with its lengths checked against the whole frame:
 * to a VIP it is encapsulated whole (the outer header prepended to the
 * first buffer, its length the whole packet's) and its bytes counted
 * whole, over the MTU it is
 * answered with ICMP (the reply cut to its quote), with an IP length past
 * the whole frame it is a bad header; to another address it is passed.
 */
static void test_jumbo(void)
{
	static uint8_t in[9000], out[9000 + 512];
	struct aibl_traffic t;
	__u32 len, l3, be;
	int v;

	if (!std_env() || !ASSERT_TRUE(xe_dp->frags, "loaded as xdp.frags"))
		goto out;
	jumbo(in, VIP4);
	l3 = 14;
	v = run_jumbo(in, sizeof(in), out, sizeof(out), &len);
	ASSERT_EQ(v, XDP_TX, "jumbo to a vip: forwarded");
	ASSERT_EQ(len, 9000 + 20, "whole, plus the outer header");
	ASSERT_EQ(out[l3] >> 4, 4, "outer ipv4");
	ASSERT_EQ(out[l3 + 9], IPPROTO_IPIP, "ipip");
	ASSERT_EQ((out[l3 + 2] << 8) | out[l3 + 3], 9000 - 14 + 20, "outer length: the whole");
	ASSERT_TRUE(!memcmp(out + l3 + 20, in + l3, 9000 - l3), "inner packet unchanged");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_JUMBO), 0, "no drop_jumbo");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_BAD_HDR), 0, "no bad header");
	/* counted whole to its service and backend: on the miss that inserted
	 * it, then from the connection table and the flow cache */
	be = out[5];
	for (int i = 0; i < 2; i++) {
		v = run_jumbo(in, sizeof(in), out, sizeof(out), &len);
		ASSERT_EQ(v, XDP_TX, "jumbo again: forwarded");
		ASSERT_EQ(out[5], be, "to the same backend");
	}
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_HIT), 1, "the second from the table");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), 1, "the third from the flow cache");
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t);
	ASSERT_EQ(t.packets, 3, "service packets");
	ASSERT_EQ(t.bytes, 3 * 9000, "service bytes: whole frames");
	xe_traffic(AIBL_MAP_BE_STATS, be, &t);
	ASSERT_EQ(t.bytes, 3 * 9000, "backend bytes: whole frames");

	/* over the MTU, DF: fragmentation needed, quoting the head */
	xe_glob.mtu = 1500;
	xe_glob.flags |= AIBL_G_F_TOOBIG_ICMP;
	if (!ASSERT_OK(xe_globals_write(), "mtu"))
		goto out;
	in[l3 + 6] |= 0x40; /* DF */
	v = run_jumbo(in, sizeof(in), out, sizeof(out), &len);
	ASSERT_EQ(v, XDP_TX, "too big: answered");
	ASSERT_EQ(xe_counter(AIBL_CNT_TOOBIG_SENT), 1, "toobig_sent");
	ASSERT_EQ(len, 14 + 20 + 8 + 68, "the reply: headers and the quote");
	ASSERT_TRUE(!memcmp(out + 14 + 28, in + l3, 68), "quotes the packet's head");
	xe_glob.mtu = 0;
	if (!ASSERT_OK(xe_globals_write(), "no mtu"))
		goto out;

	/* no MTU set, a packet of the longest IPv4 length: the outer header's
	 * length would wrap past 16 bits, so it is dropped as too big */
	{
		static uint8_t big[14 + 65535], bout[14 + 65535 + 64];
		struct pkt_buf b;
		__u64 before = xe_counter(AIBL_CNT_DROP_TOO_BIG);

		tcp4(&b, CLI4, VIP4, 40001, 80, PKT_TCP_ACK);
		memset(big, 0xab, sizeof(big));
		memcpy(big, b.buf, l3 + 40);
		big[l3 + 2] = 0xff;
		big[l3 + 3] = 0xff;
		big[l3 + 10] = big[l3 + 11] = 0; /* the IPv4 checksum again */
		{
			__u32 sum = 0;

			for (int k = 0; k < 20; k += 2)
				sum += big[l3 + k] << 8 | big[l3 + k + 1];
			while (sum >> 16)
				sum = (sum & 0xffff) + (sum >> 16);
			big[l3 + 10] = ~sum >> 8;
			big[l3 + 11] = ~sum & 0xff;
		}
		v = run_jumbo(big, sizeof(big), bout, sizeof(bout), &len);
		ASSERT_EQ(v, XDP_DROP, "65535 bytes, no mtu: dropped, its outer length would wrap");
		ASSERT_EQ(xe_counter(AIBL_CNT_DROP_TOO_BIG), before + 1, "drop_too_big");
	}

	/* an IP length past the whole frame lies */
	jumbo(in, VIP4);
	in[l3 + 2] = (9100 - l3) >> 8;
	in[l3 + 3] = (9100 - l3) & 0xff;
	v = run_jumbo(in, sizeof(in), out, sizeof(out), &len);
	ASSERT_EQ(v, XDP_DROP, "longer than the frame: dropped");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_BAD_HDR), 1, "drop_bad_header");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_JUMBO), 0, "not drop_jumbo");

	jumbo(in, "10.100.0.77");
	v = run_jumbo(in, sizeof(in), out, sizeof(out), &len);
	ASSERT_EQ(v, XDP_PASS, "jumbo to another address: passed");
	ASSERT_EQ(len, 9000, "whole");
out:
	xe_down();
}

/*
 * The loader's fallback, the plain program (a kernel without xdp.frags
 * programs): only a multi-buffer frame's first buffer is in [data,
 * data_end), so to a VIP it is dropped and counted as drop_jumbo (not as a
 * bad header); to another address it is passed.
 */
static void test_jumbo_plain(void)
{
	static uint8_t in[9000], out[9000 + 512];
	__u32 len;
	int v;

	xe_no_frags = true;
	if (!std_env() || !ASSERT_TRUE(!xe_dp->frags, "plain program"))
		goto out;
	jumbo(in, VIP4);
	v = run_jumbo(in, sizeof(in), out, sizeof(out), &len);
	ASSERT_EQ(v, XDP_DROP, "jumbo to a vip: dropped");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_JUMBO), 1, "drop_jumbo");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_BAD_HDR), 0, "not a bad header");
	jumbo(in, "10.100.0.77");
	v = run_jumbo(in, sizeof(in), out, sizeof(out), &len);
	ASSERT_EQ(v, XDP_PASS, "jumbo to another address: passed");
	ASSERT_EQ(len, 9000, "whole");
out:
	xe_no_frags = false;
	xe_down();
}

static const struct test_case cases[] = {
    {"parse", test_parse},
    {"jumbo", test_jumbo},
    {"jumbo_plain", test_jumbo_plain},
};

XF_MAIN(cases)
