// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The XDP balancer through BPF_PROG_TEST_RUN: the real compiled program,
 * loaded with dp__open_load() into a private bpffs directory, fed crafted
 * frames. Every case asserts the verdict and the output bytes; a failing
 * case writes input, expected and actual frames to
 * $AIBL_TEST_PCAP_DIR (default /tmp)/aibl-test-xdp-<case>.pcap.
 *
 * The suite runs in its own network namespace so bpf_fib_lookup sees a
 * known, empty routing table (and a lab route where a case adds one).
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/if_link.h>
#include "test.h"
#include "xdp_env.h"

#define VIP4 "10.100.0.1" /* tcp/80 hash src_ip, svc 0 */
#define VIP4W "10.100.0.2" /* udp/any hash src_ip, svc 2 */
#define VIP4T "10.100.0.3" /* udp/any hash 5-tuple, svc 3 */
#define VIP6 "fd00:100::1" /* tcp/80 hash src_ip, svc 1 */
#define VIP6W "fd00:100::2" /* tcp/any hash src_ip, svc 4 */
#define CLI4 "192.0.2.10"
#define CLI6 "2001:db8::10"

static char pcap_path[256];

static void fail_pcap(const char *desc, const struct pkt_buf *in, const struct pkt_buf *exp,
		      const struct xe_result *r)
{
	const void *frames[3] = { in->buf, exp ? exp->buf : in->buf, r->data };
	size_t lens[3] = { in->len, exp ? exp->len : in->len, r->len };
	const char *dir = getenv("AIBL_TEST_PCAP_DIR") ?: "/tmp";

	snprintf(pcap_path, sizeof(pcap_path), "%s/aibl-test-xdp-%s.pcap", dir, test__case);
	if (pkt__pcap_write(pcap_path, frames, lens, 3) == 0)
		printf("  %s: input, expected, actual frames appended to %s\n", desc, pcap_path);
}

/* Runs in and checks verdict and bytes (exp NULL: in unchanged). */
static bool expect(const char *desc, const struct pkt_buf *in, __u32 verdict,
		   const struct pkt_buf *exp, struct xe_result *r)
{
	static struct xe_result local;
	const struct pkt_buf *want = exp ? exp : in;
	bool ok;

	if (!r)
		r = &local;
	xe_run(in, r);
	if (!ASSERT_OK(r->err, desc))
		return false;
	ok = ASSERT_EQ(r->verdict, verdict, desc);
	if (verdict != XDP_DROP) {
		bool same = r->len == want->len && memcmp(r->data, want->buf, want->len) == 0;

		if (!same)
			pkt__diff(desc, want->buf, want->len, r->data, r->len);
		ok = ASSERT_TRUE(same, desc) && ok;
	}
	if (!ok)
		fail_pcap(desc, in, exp, r);
	return ok;
}

/* ---------------- standard service setup ---------------- */

static const __u32 RING_B1[] = { 1 };
static const __u32 RING_B2[] = { 2 };
static const __u32 RING_B3[] = { 3 };

static bool std_env(void)
{
	if (!test__can_bpf()) {
		SKIP("needs root");
		return false;
	}
	if (!ASSERT_OK(xe_up(&(struct dp_sizes){ .max_services = 8, .max_backends = 64,
						  .max_conns = 4096, .max_pins = 64,
						  .max_members = 64 }),
		       "load"))
		return false;
	for (__u32 i = 1; i < XE_NBE; i++)
		if (!ASSERT_OK(xe_backend(i, AIBL_BE_F_VALID, true), "backend"))
			return false;
	return ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, 0),
			 "vip4") &&
	       ASSERT_OK(xe_vip(VIP6, 80, IPPROTO_TCP, 1, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, 0),
			 "vip6") &&
	       ASSERT_OK(xe_vip(VIP4W, 0, IPPROTO_UDP, 2, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, 0),
			 "vip4w") &&
	       ASSERT_OK(xe_vip(VIP4T, 0, IPPROTO_UDP, 3, AIBL_MODE_HASH, AIBL_KEY_FIVE_TUPLE, 0,
				0),
			 "vip4t") &&
	       ASSERT_OK(xe_vip(VIP6W, 0, IPPROTO_TCP, 4, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, 0),
			 "vip6w") &&
	       ASSERT_OK(xe_ring(0, 0, RING_B1, 1), "ring0") &&
	       ASSERT_OK(xe_ring(1, 0, RING_B3, 1), "ring1") &&
	       ASSERT_OK(xe_ring(2, 0, RING_B2, 1), "ring2") &&
	       ASSERT_OK(xe_ring(3, 0, RING_B2, 1), "ring3") &&
	       ASSERT_OK(xe_ring(4, 0, RING_B3, 1), "ring4");
}

/* ---------------- input builders ---------------- */

static void tcp4(struct pkt_buf *b, const char *src, const char *dst, __u16 sport, __u16 dport,
		 __u8 flags)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, src, dst, NULL);
	pkt__tcp(b, sport, dport, flags);
	pkt__fill(b, 32);
	pkt__finish(b);
}

static void tcp6(struct pkt_buf *b, const char *src, const char *dst, __u16 sport, __u16 dport,
		 __u8 flags)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(b, src, dst, 0, 0x12345);
	pkt__tcp(b, sport, dport, flags);
	pkt__fill(b, 32);
	pkt__finish(b);
}

static void in_v4_syn(struct pkt_buf *b)
{
	tcp4(b, CLI4, VIP4, 40000, 80, PKT_TCP_SYN);
}

static void in_v4_options(struct pkt_buf *b)
{
	/* router alert + NOP padding: legal traffic, forwarded as is */
	static const uint8_t opts[8] = { 0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00 };
	struct pkt_ip4_opts o = { .tos = 0x28, .ttl = 50, .options = opts, .options_len = 8 };

	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, CLI4, VIP4, &o);
	pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
	pkt__fill(b, 10);
	pkt__finish(b);
}

static void in_v4_vlan(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__vlan(b, 0x8100, 100);
	pkt__ipv4(b, CLI4, VIP4, NULL);
	pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
	pkt__finish(b);
}

static void in_v4_qinq(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__vlan(b, 0x88a8, 10);
	pkt__vlan(b, 0x8100, 200);
	pkt__ipv4(b, CLI4, VIP4, NULL);
	pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
	pkt__fill(b, 3);
	pkt__finish(b);
}

static void in_v4_udp_wild(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, CLI4, VIP4W, NULL);
	pkt__udp(b, 5353, 9999);
	pkt__fill(b, 20);
	pkt__finish(b);
}

static void in_v6_syn(struct pkt_buf *b)
{
	tcp6(b, CLI6, VIP6, 40000, 80, PKT_TCP_SYN);
}

static void in_v6_ext(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(b, CLI6, VIP6, 0x10, 7);
	pkt__ipv6_ext(b, IPPROTO_HOPOPTS, 0);
	pkt__ipv6_ext(b, IPPROTO_DSTOPTS, 1);
	pkt__ipv6_ext(b, IPPROTO_ROUTING, 0);
	pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
	pkt__fill(b, 8);
	pkt__finish(b);
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
	static const uint8_t arp[28] = { 0, 1, 8, 0, 6, 4, 0, 1 };

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
	{ "ipv4 tcp syn to vip: 4in4", in_v4_syn, XDP_TX, 1, AIBL_CNT_SYN_RECORD, CLI4, VIP4, 40000,
	  80, IPPROTO_TCP },
	{ "ipv4 with options: forwarded whole", in_v4_options, XDP_TX, 1, AIBL_CNT_TX, CLI4, VIP4,
	  40000, 80, IPPROTO_TCP },
	{ "802.1Q tag kept (same flow: its handshake's ACK)", in_v4_vlan, XDP_TX, 1, AIBL_CNT_SYN_HIT,
	  CLI4, VIP4, 40000, 80, IPPROTO_TCP },
	{ "802.1ad + 802.1Q tags kept", in_v4_qinq, XDP_TX, 1, AIBL_CNT_TX, CLI4, VIP4, 40000, 80,
	  IPPROTO_TCP },
	{ "udp to port-0 wildcard vip", in_v4_udp_wild, XDP_TX, 2, AIBL_CNT_TX, CLI4, VIP4W, 5353,
	  9999, IPPROTO_UDP },
	{ "ipv6 tcp syn to vip: 6in6", in_v6_syn, XDP_TX, 3, AIBL_CNT_TX, CLI6, VIP6, 40000, 80,
	  IPPROTO_TCP },
	{ "ipv6 hop-by-hop, dstopts, routing headers", in_v6_ext, XDP_TX, 3, AIBL_CNT_TX, CLI6,
	  VIP6, 40000, 80, IPPROTO_TCP },
	{ "ipv6 extension chain too long", in_v6_ext_long, XDP_DROP, 0, AIBL_CNT_DROP_EXT_HDR },
	{ "tcp header cut", in_v4_tcp_cut, XDP_DROP, 0, AIBL_CNT_DROP_TRUNC },
	{ "ipv4 options cut", in_v4_opts_cut, XDP_DROP, 0, AIBL_CNT_DROP_TRUNC },
	{ "ipv4 total length beyond frame", in_v4_totlen_long, XDP_DROP, 0,
	  AIBL_CNT_DROP_BAD_HDR },
	{ "ipv4 ihl below 5", in_v4_ihl_small, XDP_DROP, 0, AIBL_CNT_DROP_BAD_HDR },
	{ "tcp data offset below 5", in_v4_doff_small, XDP_DROP, 0, AIBL_CNT_DROP_BAD_HDR },
	{ "ipv6 payload length beyond frame", in_v6_plen_long, XDP_DROP, 0,
	  AIBL_CNT_DROP_BAD_HDR },
	{ "ipv4 not a vip: passed", in_nonvip4, XDP_PASS, 0, AIBL_CNT_PASS },
	{ "vip address, other port: passed", in_nonvip_port, XDP_PASS, 0, AIBL_CNT_PASS },
	{ "ipv6 not a vip: passed", in_nonvip6, XDP_PASS, 0, AIBL_CNT_PASS },
	{ "cut ipv4 header, not a vip: passed", in_nonvip_cut, XDP_PASS, 0, AIBL_CNT_PASS },
	{ "cut tcp header, not a vip: passed", in_nonvip_tcp_cut, XDP_PASS, 0, AIBL_CNT_PASS },
	{ "arp: passed", in_arp, XDP_PASS, 0, AIBL_CNT_PASS },
	{ "three vlan tags: passed", in_three_tags, XDP_PASS, 0, AIBL_CNT_PASS },
	{ "icmp echo to a vip: passed", in_echo_vip, XDP_PASS, 0, AIBL_CNT_PASS },
	{ "sctp to a vip: passed", in_sctp_vip, XDP_PASS, 0, AIBL_CNT_PASS },
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
			struct aibl_flow_key fk = xe_fk(f->src, f->dst, f->sport, f->dport, f->proto);

			xe_exp_ipip(&exp, &in, f->backend, NULL, aibl_hash_flow(&fk, XE_SEED));
		}
		expect(f->desc, &in, f->verdict, f->backend ? &exp : NULL, NULL);
		if (f->counter >= 0)
			ASSERT_EQ(xe_counter(f->counter), before + 1, f->desc);
	}
out:
	xe_down();
}

/* ---------------- forwarding modes ---------------- */

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
	uint8_t nbr[6] = { 2, 0, 0, 0, 9, 1 }, ifmac[6];
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

/* ---------------- selection ---------------- */

/* A TCP packet with flags of client c's (198.18.x) flow; returns the
 * backend it went to, -1 on an error. */
static int tcp_from(__u32 c, __u16 sport, const char *vip, __u16 dport, __u8 flags,
		    struct xe_result *r)
{
	struct pkt_buf in;
	char src[INET_ADDRSTRLEN];
	struct in_addr a = { htonl(0xc6120000u + c) }; /* 198.18.0.0/15 */

	inet_ntop(AF_INET, &a, src, sizeof(src));
	tcp4(&in, src, vip, sport, dport, flags);
	xe_run(&in, r);
	if (r->err || (r->verdict != XDP_TX && r->verdict != XDP_REDIRECT))
		return -1;
	return xe_out_backend(r);
}

/* Opens a flow from client c: SYN, then the handshake's ACK (which moves
 * it into the connection table); returns the backend both went to, -1 on
 * an error or when they differ. */
static int syn_from(__u32 c, __u16 sport, const char *vip, __u16 dport, struct xe_result *r)
{
	int be = tcp_from(c, sport, vip, dport, PKT_TCP_SYN, r);

	if (be < 0)
		return -1;
	return tcp_from(c, sport, vip, dport, PKT_TCP_ACK, r) == be ? be : -1;
}

/* A packet (ACK) of client c's flow; returns the backend it went to. */
static int ack_from(__u32 c, __u16 sport, const char *vip, __u16 dport, struct xe_result *r)
{
	return tcp_from(c, sport, vip, dport, PKT_TCP_ACK, r);
}

static __u32 client_hash(__u32 c)
{
	struct aibl_flow_key fk = {};

	fk.family = AIBL_AF_INET;
	fk.src.v4 = htonl(0xc6120000u + c);
	return aibl_hash_client(&fk, XE_SEED);
}

static void test_sel_hash_weights(void)
{
	static __u32 pat[6] = { 1, 2, 2, 5, 5, 5 }; /* weights 1:2:3 */
	struct xe_result r;
	int n[XE_NBE] = { 0 }, N = 3000;
	bool exact = true;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(xe_ring(0, 0, pat, 6), "ring"))
		goto out;
	for (int c = 0; c < N; c++) {
		int be = syn_from(c, 1000, VIP4, 80, &r);
		__u32 want = xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE);

		if (be < 0 || be >= XE_NBE) {
			ASSERT_TRUE(false, "forwarded");
			goto out;
		}
		n[be]++;
		exact &= (__u32)be == want;
	}
	ASSERT_TRUE(exact, "every flow on the backend of its Maglev slot");
	/* slot shares are 1/6, 2/6, 3/6: flows follow within 3 points */
	ASSERT_LE(abs(n[1] * 600 / N - 100), 30, "share of weight 1 (per 600)");
	ASSERT_LE(abs(n[2] * 600 / N - 200), 30, "share of weight 2 (per 600)");
	ASSERT_LE(abs(n[5] * 600 / N - 300), 30, "share of weight 3 (per 600)");
	ASSERT_EQ(n[1] + n[2] + n[5], N, "all flows");
out:
	xe_down();
}

static int pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

static void test_sel_rr(void)
{
	static __u32 pat[4] = { 1, 1, 2, 5 };
	static const int order[8] = { 1, 1, 2, 5, 1, 1, 2, 5 };
	struct xe_result r;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(pin_cpu0(), "pin to cpu 0") ||
	    !ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_FIVE_TUPLE, 0, 0),
		       "rr vip") ||
	    !ASSERT_OK(xe_ring(0, 0, pat, 4), "ring"))
		goto out;
	for (int i = 0; i < 8; i++) {
		char d[32];

		snprintf(d, sizeof(d), "rr flow %d", i);
		ASSERT_EQ(syn_from(7, 2000 + i, VIP4, 80, &r), order[i], d);
	}
	/* a draining backend's slot is skipped, the walk goes on after it */
	ASSERT_OK(xe_be_flags(2, AIBL_BE_F_VALID | AIBL_BE_F_DRAINING), "drain 2");
	ASSERT_EQ(syn_from(7, 3000, VIP4, 80, &r), 1, "rr after skip 1");
	ASSERT_EQ(syn_from(7, 3001, VIP4, 80, &r), 1, "rr after skip 2");
	ASSERT_EQ(syn_from(7, 3002, VIP4, 80, &r), 5, "rr skips draining");
	ASSERT_EQ(syn_from(7, 3003, VIP4, 80, &r), 1, "rr wraps");
out:
	xe_down();
}

static void test_sel_p2c(void)
{
	static __u32 pat[2] = { 1, 2 };
	struct aibl_cost c1 = { .cost = 10 }, c2 = { .cost = 0 };
	__u32 one = 1, two = 2;
	struct xe_result r;
	int differ = 0, to2 = 0;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_P2C, AIBL_KEY_SRC_IP, 0, 0),
		       "p2c vip") ||
	    !ASSERT_OK(xe_ring(0, 0, pat, 2), "ring") ||
	    !ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &one, &c1, 0), "cost1") ||
	    !ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, &c2, 0), "cost2"))
		goto out;
	for (int c = 0; c < 200; c++) {
		__u32 h = client_hash(c);
		__u32 a = xe_ring_get(0, 0, h % AIBL_RING_SIZE);
		__u32 b = xe_ring_get(0, 0, aibl_hash_second(h) % AIBL_RING_SIZE);
		int be = syn_from(c, 1000, VIP4, 80, &r);

		if (a != b) {
			differ++;
			/* backend 2 gains active flows: 10 of them tip it over */
			to2 += be == 2;
		} else {
			ASSERT_EQ(be, (int)a, "both candidates the same backend");
		}
	}
	{
		struct aibl_load l1, l2;

		bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1);
		bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l2);
		ASSERT_EQ(l1.active + l2.active, 200, "active flows counted");
		/* lower cost + active wins each time: the two stay within 1 of
		 * each other once backend 2 caught up its 10-flow head start */
		ASSERT_LE(llabs((l1.active + 10) - l2.active), 40, "balanced by cost");
		ASSERT_GE(to2, 10, "cheaper backend took the first flows");
	}
	ASSERT_GE(differ, 50, "enough two-candidate flows");
	/* strict check on a fresh pair: cost decides */
	c2.cost = 1000;
	bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, &c2, 0);
	for (int c = 1000; c < 1100; c++) {
		__u32 h = client_hash(c);
		__u32 a = xe_ring_get(0, 0, h % AIBL_RING_SIZE);
		__u32 b = xe_ring_get(0, 0, aibl_hash_second(h) % AIBL_RING_SIZE);

		if (a != b)
			ASSERT_EQ(syn_from(c, 1000, VIP4, 80, &r), 1, "lower cost wins");
	}
out:
	xe_down();
}

static void test_sel_bounded(void)
{
	static __u32 pat[3] = { 1, 2, 5 };
	struct xe_result r;
	__u64 probes;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(xe_ring(0, 0, pat, 3), "ring") ||
	    !ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DRAINING), "drain 1") ||
	    !ASSERT_OK(xe_be_flags(2, AIBL_BE_F_VALID | AIBL_BE_F_OVERLOADED), "overload 2"))
		goto out;
	probes = xe_counter(AIBL_CNT_PROBE);
	for (int c = 0; c < 60; c++)
		if (!ASSERT_EQ(syn_from(c, 1, VIP4, 80, &r), 5, "only backend 5 takes new flows"))
			goto out;
	ASSERT_GE(xe_counter(AIBL_CNT_PROBE) - probes, 30, "probes counted");
	/* nothing better left: the overloaded one, never the draining one */
	ASSERT_OK(xe_be_flags(5, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "down 5");
	for (int c = 100; c < 130; c++)
		if (!ASSERT_EQ(syn_from(c, 1, VIP4, 80, &r), 2, "overloaded as last resort"))
			goto out;
	ASSERT_OK(xe_be_flags(2, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "down 2");
	ASSERT_EQ(syn_from(200, 1, VIP4, 80, &r), -1, "no usable backend");
	ASSERT_EQ(r.verdict, XDP_DROP, "dropped");
	ASSERT_EQ(xe_counter(AIBL_CNT_DROP_NO_BACKEND), 1, "drop_no_backend");
out:
	xe_down();
}

static int pin_set(__u32 svc, const char *client, __u32 be, __u64 expires)
{
	struct aibl_pin_key k = { .svc_id = svc, .family = AIBL_AF_INET };
	struct aibl_pin v = { .backend = be, .expires_ns = expires };

	xe_addr(&k.client, AIBL_AF_INET, client);
	if (bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY))
		return -errno;
	return xe_pin_filter();
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void test_pins(void)
{
	struct xe_result r;
	struct aibl_traffic t;

	if (!std_env())
		goto out;
	/* ring: backend 1; pins override for new flows */
	ASSERT_OK(pin_set(0, "198.18.0.1", 2, 0), "pin forever");
	ASSERT_OK(pin_set(0, "198.18.0.2", 5, mono_ns() + 60000000000ull), "pin 60 s");
	ASSERT_OK(pin_set(0, "198.18.0.3", 5, mono_ns() - 1000), "expired pin");
	ASSERT_OK(pin_set(0, "198.18.0.4", 6, 0), "pin to draining");
	ASSERT_OK(xe_be_flags(6, AIBL_BE_F_VALID | AIBL_BE_F_DRAINING), "drain 6");
	ASSERT_EQ(syn_from(1, 1, VIP4, 80, &r), 2, "pinned");
	ASSERT_EQ(syn_from(2, 1, VIP4, 80, &r), 5, "pinned until later");
	ASSERT_EQ(syn_from(3, 1, VIP4, 80, &r), 1, "expired pin ignored");
	ASSERT_EQ(syn_from(4, 1, VIP4, 80, &r), 1, "pin to draining backend ignored");
	ASSERT_EQ(syn_from(5, 1, VIP4, 80, &r), 1, "no pin");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_HIT), 2, "pin_hit");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_SKIP), 2, "pin_skip");
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t);
	ASSERT_EQ(t.pin_hits, 2, "service pin hits");
	ASSERT_EQ(t.new_flows, 5, "service new flows");
	/* pins steer new flows only: an established flow stays */
	ASSERT_OK(pin_set(0, "198.18.0.5", 2, 0), "pin after the fact");
	ASSERT_EQ(ack_from(5, 1, VIP4, 80, &r), 1, "established flow ignores new pin");
	{
		struct aibl_flow_key fk = xe_fk("198.18.0.1", VIP4, 1, 80, IPPROTO_TCP);
		struct aibl_conn c;

		ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &c), "conn");
		ASSERT_EQ(c.flags & AIBL_CONN_F_PINNED, AIBL_CONN_F_PINNED, "conn marked pinned");
	}
out:
	xe_down();
}

/*
 * Pre-filters: with a flag set the program trusts its bitmap (a key written
 * without the rebuild is not seen); without it, the map alone decides, so
 * writers that do not maintain a filter keep working.
 */
static void test_prefilters(void)
{
	struct aibl_vip_key k = { .port = htons(80), .proto = IPPROTO_TCP,
				  .family = AIBL_AF_INET };
	struct aibl_vip v = { .svc_id = 0 };
	struct aibl_pin_key pk = { .svc_id = 0, .family = AIBL_AF_INET };
	struct aibl_pin pv = { .backend = 2 };
	struct xe_result r;
	__u8 flags = AIBL_G_F_VIP_FILTER | AIBL_G_F_PIN_FILTER;

	if (!std_env())
		goto out;
	ASSERT_EQ(xe_glob.flags & flags, flags, "fixtures run with both filters");
	/* a VIP address the filter was not told about */
	xe_addr(&k.addr, AIBL_AF_INET, "10.100.9.9");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_VIPS), &k, &v, BPF_ANY) ? -errno : 0, "vip");
	ASSERT_EQ(syn_from(1, 1, "10.100.9.9", 80, &r), -1, "filter on, not rebuilt: not steered");
	ASSERT_EQ(r.verdict, XDP_PASS, "passed");
	ASSERT_EQ(xe_counter(AIBL_CNT_PASS), 1, "counted as pass");
	xe_glob.flags &= ~AIBL_G_F_VIP_FILTER;
	ASSERT_OK(xe_globals_write(), "vip filter off");
	ASSERT_EQ(syn_from(2, 1, "10.100.9.9", 80, &r), 1, "filter off: the map decides");
	xe_glob.flags |= AIBL_G_F_VIP_FILTER;
	ASSERT_OK(xe_globals_write(), "vip filter on");
	ASSERT_OK(dp__vip_filter_rebuild(xe_fd(AIBL_MAP_FILTER), xe_fd(AIBL_MAP_VIPS)), "rebuild");
	ASSERT_EQ(syn_from(3, 1, "10.100.9.9", 80, &r), 1, "rebuilt: steered");
	/* a deleted VIP leaves a stale bit: the lookup still decides */
	ASSERT_OK(bpf_map_delete_elem(xe_fd(AIBL_MAP_VIPS), &k) ? -errno : 0, "delete vip");
	ASSERT_EQ(syn_from(4, 1, "10.100.9.9", 80, &r), -1, "deleted: passed");
	ASSERT_EQ(r.verdict, XDP_PASS, "passed after delete");

	/* a pin the filter was not told about is not consulted */
	xe_addr(&pk.client, AIBL_AF_INET, "198.18.0.10");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &pk, &pv, BPF_ANY) ? -errno : 0, "pin");
	ASSERT_EQ(syn_from(10, 1, VIP4, 80, &r), 1, "pin filter on, not rebuilt: ring");
	xe_glob.flags &= ~AIBL_G_F_PIN_FILTER;
	ASSERT_OK(xe_globals_write(), "pin filter off");
	ASSERT_EQ(syn_from(10, 2, VIP4, 80, &r), 2, "pin filter off: pinned");
	xe_glob.flags |= AIBL_G_F_PIN_FILTER;
	ASSERT_OK(xe_globals_write(), "pin filter on");
	ASSERT_OK(xe_pin_filter(), "rebuild pins");
	ASSERT_EQ(syn_from(10, 3, VIP4, 80, &r), 2, "rebuilt: pinned");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_HIT), 2, "pin_hit");
out:
	xe_down();
}

/* ---------------- connection table ---------------- */

static void test_conn_sticky_flip(void)
{
	struct xe_result r;

	if (!std_env())
		goto out;
	for (int c = 0; c < 20; c++)
		ASSERT_EQ(syn_from(c, 5, VIP4, 80, &r), 1, "half 0: backend 1");
	/* controller writes the other half and flips */
	ASSERT_OK(xe_ring(0, 1, RING_B2, 1), "half 1");
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 1, 0), "flip");
	for (int c = 0; c < 20; c++)
		ASSERT_EQ(ack_from(c, 5, VIP4, 80, &r), 1, "established flows stay");
	for (int c = 0; c < 20; c++)
		ASSERT_EQ(syn_from(c, 6, VIP4, 80, &r), 2, "new flows take the new table");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_HIT), 20, "conn_hit");
	ASSERT_EQ(xe_counter(AIBL_CNT_SYN_HIT), 40, "every handshake completed on its syn's backend");
out:
	xe_down();
}

static void test_conn_resteer(void)
{
	static __u32 pat[2] = { 1, 2 };
	struct xe_result r;
	struct aibl_load l;
	__u32 one = 1, two = 2;
	int c;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(xe_ring(0, 0, pat, 2), "ring"))
		goto out;
	/* a client whose slot holds backend 1 */
	for (c = 0; xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE) != 1; c++)
		;
	ASSERT_EQ(syn_from(c, 9, VIP4, 80, &r), 1, "flow on 1");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DRAINING), "drain 1");
	ASSERT_EQ(ack_from(c, 9, VIP4, 80, &r), 1, "draining keeps the flow");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_OVERLOADED), "overload 1");
	ASSERT_EQ(ack_from(c, 9, VIP4, 80, &r), 1, "overloaded keeps the flow");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "down 1");
	ASSERT_EQ(ack_from(c, 9, VIP4, 80, &r), 2, "down: re-steered");
	ASSERT_EQ(xe_counter(AIBL_CNT_RESTEER), 1, "resteer");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID), "up 1");
	ASSERT_EQ(ack_from(c, 9, VIP4, 80, &r), 2, "stays on its new backend");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 0, "active moved off 1");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l);
	ASSERT_EQ(l.active, 1, "active moved to 2");
out:
	xe_down();
}

static void test_conn_accounting(void)
{
	struct pkt_buf in;
	struct xe_result r;
	struct aibl_load l;
	__u32 one = 1;

	if (!std_env())
		goto out;
	tcp4(&in, CLI4, VIP4, 555, 80, PKT_TCP_SYN);
	xe_run(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "syn forwarded");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 0, "a half-open flow is not active");
	tcp4(&in, CLI4, VIP4, 555, 80, PKT_TCP_ACK);
	xe_run(&in, &r);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 1, "the completed handshake counts a flow");
	tcp4(&in, CLI4, VIP4, 555, 80, PKT_TCP_FIN | PKT_TCP_ACK);
	xe_run(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "fin forwarded");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 0, "fin counts it out");
	tcp4(&in, CLI4, VIP4, 555, 80, PKT_TCP_RST);
	xe_run(&in, &r);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 0, "only once");
	/* udp flows never close: not counted */
	in_v4_udp_wild(&in);
	xe_run(&in, &r);
	one = 2;
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 0, "udp not counted");
	/* mid-flow miss: steered like a new flow, remembered */
	tcp4(&in, CLI4, VIP4, 777, 80, PKT_TCP_ACK);
	xe_run(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "mid-flow miss forwarded");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW), 1, "conn_miss_midflow");
	{
		struct aibl_flow_key fk = xe_fk(CLI4, VIP4, 777, 80, IPPROTO_TCP);
		struct aibl_conn c;

		ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &c), "inserted");
		ASSERT_EQ(c.backend, 1, "its backend");
	}
out:
	xe_down();
}

static __s64 active_of(__u32 id)
{
	struct aibl_load l = {};

	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &id, &l);
	return l.active;
}

/*
 * The handshake table: a SYN is recorded, not inserted, and counts no new
 * flow; its ACK inserts on the SYN's backend and counts it; a SYN flood
 * leaves the connection table, the active counts and new_flows alone; a
 * retransmitted SYN follows the first; a closed tuple reused by a new
 * handshake takes the new SYN's backend; a SYN whose backend goes down
 * before its ACK is re-chosen at the ACK.
 */
static void test_handshake(void)
{
	static __u32 only1[1] = { 1 }, only2[1] = { 2 }, both[2] = { 1, 2 };
	struct aibl_traffic t, t2;
	struct xe_result r;
	__u32 nconns;
	int c;

	if (!std_env() || !ASSERT_OK(xe_ring(0, 0, only1, 1), "ring 1"))
		goto out;
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_SYN, &r), 1, "SYN on 1");
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t);
	ASSERT_EQ(t.new_flows, 0, "a SYN is no new flow yet");
	ASSERT_EQ(active_of(1), 0, "half-open: not active");
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_ACK, &r), 1, "ACK on 1");
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t);
	ASSERT_EQ(t.new_flows, 1, "the completed handshake is");
	ASSERT_EQ(active_of(1), 1, "active");
	ASSERT_EQ(xe_counter(AIBL_CNT_SYN_RECORD), 1, "syn_record");
	ASSERT_EQ(xe_counter(AIBL_CNT_SYN_HIT), 1, "syn_hit");

	/* closed, then the tuple reused after the table moved to 2 */
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_FIN | PKT_TCP_ACK, &r), 1, "FIN on 1");
	ASSERT_EQ(active_of(1), 0, "closed");
	ASSERT_OK(xe_ring(0, 0, only2, 1), "ring 2");
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_SYN, &r), 2, "reused tuple: SYN by the new choice");
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_ACK, &r), 2,
		  "its ACK follows the SYN, not the old entry");
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "and stays");
	ASSERT_EQ(active_of(1), 0, "nothing on 1");
	ASSERT_EQ(active_of(2), 1, "the new connection on 2");

	/* a retransmitted SYN follows the first one across a table change */
	ASSERT_EQ(tcp_from(2, 9, VIP4, 80, PKT_TCP_SYN, &r), 2, "SYN on 2");
	ASSERT_OK(xe_ring(0, 0, only1, 1), "ring 1 again");
	ASSERT_EQ(tcp_from(2, 9, VIP4, 80, PKT_TCP_SYN, &r), 2, "retransmission on 2");
	ASSERT_EQ(tcp_from(2, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "ACK on 2");

	/* a SYN flood: recorded only */
	nconns = xe_conns_count();
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t);
	for (c = 1000; c < 1500; c++)
		if (!ASSERT_EQ(tcp_from(c, 7, VIP4, 80, PKT_TCP_SYN, &r), 1, "flood SYN forwarded"))
			break;
	ASSERT_EQ(xe_conns_count(), nconns, "no connection entry for a SYN");
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t2);
	ASSERT_EQ(t2.new_flows, t.new_flows, "no new flow counted");
	ASSERT_EQ(active_of(1), 0, "no active flow");

	/* the SYN's backend goes down before its ACK: re-chosen there */
	ASSERT_OK(xe_ring(0, 0, both, 2), "ring 1,2");
	for (c = 0; xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE) != 1; c++)
		;
	ASSERT_EQ(tcp_from(c, 11, VIP4, 80, PKT_TCP_SYN, &r), 1, "SYN on 1");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "down 1");
	ASSERT_EQ(tcp_from(c, 11, VIP4, 80, PKT_TCP_ACK, &r), 2, "ACK re-chosen: 2");
	ASSERT_EQ(tcp_from(c, 11, VIP4, 80, PKT_TCP_ACK, &r), 2, "and kept there");
	ASSERT_EQ(active_of(2), 3, "on 2: the reused tuple, client 2, this one");
out:
	xe_down();
}

/* Writes e into the flow cache slot of e->key on every CPU. */
static int fcache_set_all(const struct aibl_fcache_entry *e)
{
	return xe_percpu_set(AIBL_MAP_FCACHE, aibl_fcache_index(&e->key), e, sizeof(*e));
}

/* Sends in warm times (opening its flow), then once on the full path,
 * which writes the flow cache entry, then once more: a cache hit that must
 * put out the full path's frame. */
static void cache_like_full(const struct pkt_buf *in, int warm, const char *desc)
{
	static struct xe_result full, hit;
	__u64 h0, f0;

	for (int i = 0; i < warm; i++)
		xe_run(in, &full);
	h0 = xe_counter(AIBL_CNT_FCACHE_HIT);
	f0 = xe_counter(AIBL_CNT_FCACHE_FILL);
	xe_run(in, &full);
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL) - f0, 1, desc);
	xe_run(in, &hit);
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT) - h0, 1, desc);
	ASSERT_TRUE(!full.err && !hit.err && full.verdict == XDP_TX && hit.verdict == XDP_TX &&
			    full.len == hit.len && !memcmp(full.data, hit.data, full.len),
		    desc);
}

static __u32 globals_epoch(void)
{
	struct aibl_globals g = {};

	bpf_map_lookup_elem(xe_fd(AIBL_MAP_GLOBALS), &(__u32){ 0 }, &g);
	return g.epoch;
}

/*
 * The flow cache (aibl_fcache): an established flow's packet that hit the
 * connection table writes its decision; the flow's next packets take it
 * (same frame out, counted as traffic) without the table, while the
 * backend is up; a backend going down re-steers through the full path; a
 * new epoch, an expired entry or the flag off send packets the full way;
 * a FIN clears the flow's entry on every CPU; SYNs never use it.
 */
static void test_flow_cache(void)
{
	static __u32 both[2] = { 1, 2 };
	struct aibl_fcache_entry e;
	struct aibl_traffic t0, t1;
	struct aibl_flow_key fk;
	struct aibl_conn conn;
	struct pkt_buf in, exp;
	struct xe_result r;
	char src[INET_ADDRSTRLEN];
	__u64 hit, fill, chit;
	int c;

	/* one CPU: the entry written by one packet is the one the next reads */
	if (!std_env() || !ASSERT_OK(pin_cpu0(), "cpu 0") || !ASSERT_OK(xe_ring(0, 0, both, 2), "ring"))
		goto out;
	for (c = 0; xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE) != 1; c++)
		;
	inet_ntop(AF_INET, &(struct in_addr){ htonl(0xc6120000u + c) }, src, sizeof(src));
	fk = xe_fk(src, VIP4, 20, 80, IPPROTO_TCP);
	tcp4(&in, src, VIP4, 20, 80, PKT_TCP_ACK);

	ASSERT_EQ(syn_from(c, 20, VIP4, 80, &r), 1, "flow on 1");
	ASSERT_EQ(xe_fcache_cpus(&fk, NULL), 0, "the handshake writes no entry");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL), 0, "no fill");
	xe_exp_ipip(&exp, &in, 1, NULL, aibl_hash_flow(&fk, XE_SEED));
	if (!expect("established: table hit", &in, XDP_TX, &exp, &r))
		goto out;
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL), 1, "filled");
	ASSERT_EQ(xe_fcache_cpus(&fk, &e), 1, "entry on this CPU");
	ASSERT_EQ(e.backend, 1, "entry: backend");
	ASSERT_EQ(e.svc_id, 0, "entry: service");
	ASSERT_EQ(e.flow_hash, aibl_hash_flow(&fk, XE_SEED), "entry: flow hash");
	ASSERT_EQ(e.epoch, globals_epoch(), "entry: epoch");

	chit = xe_counter(AIBL_CNT_CONN_HIT);
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t0);
	if (!expect("established: from the cache, the same frame", &in, XDP_TX, &exp, &r))
		goto out;
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), 1, "flow_cache_hit");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_HIT), chit, "no table lookup");
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t1);
	ASSERT_EQ(t1.packets - t0.packets, 1, "service packets counted");
	ASSERT_EQ(t1.bytes - t0.bytes, in.len, "service bytes counted");
	ASSERT_EQ(t1.new_flows, t0.new_flows, "no new flow");

	/* draining keeps the flow, from the cache; down re-steers it */
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DRAINING), "drain 1");
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 1, "draining: kept");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), 2, "from the cache");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "down 1");
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 2, "down: re-steered");
	ASSERT_EQ(xe_counter(AIBL_CNT_RESTEER), 1, "by the full path");
	ASSERT_EQ(xe_fcache_cpus(&fk, NULL), 0, "the re-steer cleared the entry");
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 2, "table hit on 2");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID), "up 1");
	hit = xe_counter(AIBL_CNT_FCACHE_HIT);
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 2, "stays on 2 when 1 is back");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), hit + 1, "from the cache");

	/* userspace moves the flow: the cache keeps its decision until the
	 * writer moves to a new epoch */
	ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &conn), "entry");
	conn.backend = 1;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_CONNS), &fk, &conn, BPF_EXIST), "move to 1");
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 2, "cached decision");
	fill = xe_counter(AIBL_CNT_FCACHE_FILL);
	ASSERT_OK(xe_epoch_bump(), "new epoch");
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 1, "new epoch: the table's backend");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL), fill + 1, "written again");
	ASSERT_EQ(xe_fcache_cpus(&fk, &e), 1, "entry");
	ASSERT_EQ(e.epoch, globals_epoch(), "under the new epoch");

	/* an entry past its age takes the full path */
	e.expires = 0;
	ASSERT_OK(fcache_set_all(&e), "age the entry");
	hit = xe_counter(AIBL_CNT_FCACHE_HIT);
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 1, "expired: full path");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), hit, "no hit");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL), fill + 2, "written again");

	/* a FIN clears the entry on every CPU, not just its own */
	ASSERT_TRUE(xe_fcache_cpus(&fk, &e) >= 1, "cached");
	ASSERT_OK(fcache_set_all(&e), "on every CPU");
	ASSERT_EQ(tcp_from(c, 20, VIP4, 80, PKT_TCP_FIN | PKT_TCP_ACK, &r), 1, "FIN on 1");
	ASSERT_EQ(xe_fcache_cpus(&fk, NULL), 0, "cleared everywhere");
	hit = xe_counter(AIBL_CNT_FCACHE_HIT);
	fill = xe_counter(AIBL_CNT_FCACHE_FILL);
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 1, "last packets: its backend");
	ASSERT_EQ(ack_from(c, 20, VIP4, 80, &r), 1, "still");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), hit, "a closing flow is not cached");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL), fill, "nor written");

	/* a SYN on a cached tuple never takes the cached decision */
	ASSERT_EQ(syn_from(c, 22, VIP4, 80, &r), 1, "flow on 1");
	ASSERT_EQ(ack_from(c, 22, VIP4, 80, &r), 1, "cached");
	ASSERT_OK(xe_ring(0, 0, RING_B2, 1), "ring 2");
	ASSERT_EQ(tcp_from(c, 22, VIP4, 80, PKT_TCP_SYN, &r), 2, "SYN: the service's choice");
	ASSERT_EQ(xe_counter(AIBL_CNT_SYN_RECORD), 3, "recorded, not cached");
	hit = xe_counter(AIBL_CNT_FCACHE_HIT);
	fill = xe_counter(AIBL_CNT_FCACHE_FILL);

	/* IPv6 (6in6) and UDP to a port-0 wildcard VIP alike */
	tcp6(&in, CLI6, VIP6, 30, 80, PKT_TCP_SYN);
	xe_run(&in, &r);
	tcp6(&in, CLI6, VIP6, 30, 80, PKT_TCP_ACK);
	cache_like_full(&in, 1, "ipv6: the hit puts out the full path's frame");
	in_v4_udp_wild(&in);
	cache_like_full(&in, 1, "udp wildcard: the hit puts out the full path's frame");
	hit = xe_counter(AIBL_CNT_FCACHE_HIT);
	fill = xe_counter(AIBL_CNT_FCACHE_FILL);

	/* the flag off: every packet the full way */
	xe_glob.flags &= ~AIBL_G_F_FLOW_CACHE;
	if (!ASSERT_OK(xe_globals_write(), "cache off"))
		goto out;
	ASSERT_EQ(syn_from(c, 21, VIP4, 80, &r), 2, "new flow on 2");
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(ack_from(c, 21, VIP4, 80, &r), 2, "established");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL), fill, "nothing written");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), hit, "nothing taken");
out:
	xe_down();
}

static void test_no_conntrack(void)
{
	struct xe_result r;
	struct aibl_flow_key fk = xe_fk("198.18.0.3", VIP4, 4, 80, IPPROTO_TCP);
	struct aibl_conn c;

	if (!std_env())
		goto out;
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0,
			 AIBL_VIP_F_NO_CONNTRACK),
		  "stateless vip");
	ASSERT_EQ(syn_from(3, 4, VIP4, 80, &r), 1, "table");
	ASSERT_ERR(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &c), "no conn entry");
	ASSERT_OK(xe_ring(0, 0, RING_B2, 1), "rewrite");
	ASSERT_EQ(syn_from(3, 4, VIP4, 80, &r), 2, "follows the table");
out:
	xe_down();
}

/* ---------------- new-connection rate guard ---------------- */

/* every CPU's guard window back to empty (a new window opens on the next
 * new flow) */
static int rate_reset(void)
{
	return xe_percpu_set(AIBL_MAP_RATE, 0, &(struct aibl_rate){}, sizeof(struct aibl_rate));
}

static int rate_set(__u32 limit)
{
	xe_glob.max_conn_rate = limit;
	return xe_globals_write() ?: rate_reset();
}

/* backend hash mode picks for client c of svc 0 (every backend usable) */
static __u32 hash_choice(__u32 c)
{
	return xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE);
}

/* Client c's packet to VIP4:80 from sport must be forwarded (verdict and
 * bytes) to backend be; true when the flow is in the table afterwards. */
static bool guard_send(__u32 c, __u16 sport, __u8 flags, __u32 be, const char *desc,
		       bool *tracked)
{
	struct aibl_flow_key fk;
	struct pkt_buf in, exp;
	struct aibl_conn conn;
	char src[INET_ADDRSTRLEN];
	struct in_addr a = { htonl(0xc6120000u + c) };
	bool ok;

	inet_ntop(AF_INET, &a, src, sizeof(src));
	fk = xe_fk(src, VIP4, sport, 80, IPPROTO_TCP);
	tcp4(&in, src, VIP4, sport, 80, flags);
	xe_exp_ipip(&exp, &in, be, NULL, aibl_hash_flow(&fk, XE_SEED));
	ok = expect(desc, &in, XDP_TX, &exp, NULL);
	if (flags == PKT_TCP_SYN) {
		/* and the handshake's ACK, which goes where its SYN went */
		tcp4(&in, src, VIP4, sport, 80, PKT_TCP_ACK);
		xe_exp_ipip(&exp, &in, be, NULL, aibl_hash_flow(&fk, XE_SEED));
		ok = expect(desc, &in, XDP_TX, &exp, NULL) && ok;
	}
	*tracked = !bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &conn);
	if (*tracked)
		ok = ASSERT_EQ(conn.backend, be, desc) && ok;
	return ok;
}

static __u32 verified_insns(void)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(dp__prog_fd(xe_dp), &info, &len))
		return 0;
	return info.verified_insns;
}

static __s64 active_sum(void)
{
	struct aibl_load l;
	__s64 sum = 0;

	for (__u32 id = 1; id < XE_NBE; id++)
		if (!bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &id, &l))
			sum += l.active;
	return sum;
}

static void test_rate_guard(void)
{
	static __u32 pat[3] = { 1, 2, 5 };
	const __u32 N = 5;
	__u64 untracked, hits, miss_mid;
	bool tracked;
	__u32 insns;

	if (!std_env())
		goto out;
	insns = verified_insns();
	printf("  aibl_xdp verified_insns=%u (limit 1000000)\n", insns);
	ASSERT_LE(insns, 1000000, "verifier instruction count");
	/* the guard's window is per CPU: keep every run on one */
	if (!ASSERT_OK(pin_cpu0(), "pin to cpu 0") || !ASSERT_OK(xe_ring(0, 0, pat, 3), "ring") ||
	    !ASSERT_OK(rate_set(N), "max_conn_rate"))
		goto out;
	untracked = xe_counter(AIBL_CNT_CONN_UNTRACKED);
	/* the first N new flows of the window go into the table, the next
	 * ones are forwarded to the same hash choice without an entry */
	for (__u32 c = 0; c < 2 * N; c++) {
		char d[48];

		snprintf(d, sizeof(d), "syn %u: hash choice", c);
		if (!guard_send(c, 1000, PKT_TCP_SYN, hash_choice(c), d, &tracked))
			goto out;
		snprintf(d, sizeof(d), "syn %u %s", c, c < N ? "inserted" : "not inserted");
		ASSERT_EQ(tracked, c < N, d);
	}
	/* each refused flow twice: its SYN and its handshake's ACK */
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_UNTRACKED) - untracked, 2 * N, "conn_untracked counted");
	ASSERT_EQ(active_sum(), N, "only tracked flows count in aibl_load");

	/* established flows keep hitting the table while the guard refuses */
	hits = xe_counter(AIBL_CNT_CONN_HIT);
	for (__u32 c = 0; c < N; c++)
		if (!guard_send(c, 1000, PKT_TCP_ACK, hash_choice(c), "established", &tracked) ||
		    !ASSERT_TRUE(tracked, "still tracked"))
			goto out;
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_HIT) - hits, N, "conn_hit for established");

	/* a SYN while the guard refuses skips the table lookup: a flow
	 * tracked before the flood (its entry on x, not its hash choice y, as
	 * after a table change) has a retransmitted SYN steered to y, the
	 * entry untouched; its ACK still looks the entry up and goes to x */
	{
		__u32 c = 400, x, y;
		struct aibl_conn set = {}, got;
		struct aibl_flow_key fk;
		struct pkt_buf in, exp;
		char src[INET_ADDRSTRLEN];
		struct in_addr a = { htonl(0xc6120000u + c) };
		__u64 miss = xe_counter(AIBL_CNT_CONN_MISS), hit = xe_counter(AIBL_CNT_CONN_HIT);
		__u64 unt = xe_counter(AIBL_CNT_CONN_UNTRACKED);

		y = hash_choice(c);
		x = y == pat[0] ? pat[1] : pat[0];
		inet_ntop(AF_INET, &a, src, sizeof(src));
		fk = xe_fk(src, VIP4, 1000, 80, IPPROTO_TCP);
		set.backend = x;
		set.last_seen_ns = 1;
		if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_CONNS), &fk, &set, BPF_NOEXIST),
			       "entry on x"))
			goto out;
		tcp4(&in, src, VIP4, 1000, 80, PKT_TCP_SYN);
		xe_exp_ipip(&exp, &in, y, NULL, aibl_hash_flow(&fk, XE_SEED));
		if (!expect("guarded syn of a tracked flow: hash choice y", &in, XDP_TX, &exp,
			    NULL))
			goto out;
		ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &got), "entry kept");
		ASSERT_MEMEQ(&got, &set, sizeof(got), "entry untouched by the guarded syn");
		ASSERT_EQ(xe_counter(AIBL_CNT_CONN_UNTRACKED) - unt, 1, "guarded syn untracked");
		ASSERT_EQ(xe_counter(AIBL_CNT_CONN_MISS) - miss, 0, "no table lookup: no miss");
		ASSERT_EQ(xe_counter(AIBL_CNT_CONN_HIT) - hit, 0, "no table lookup: no hit");
		if (!guard_send(c, 1000, PKT_TCP_ACK, x, "its ack follows the entry: x", &tracked))
			goto out;
		ASSERT_TRUE(tracked, "entry still there");
		ASSERT_EQ(xe_counter(AIBL_CNT_CONN_HIT) - hit, 1, "ack hit the entry");
		ASSERT_OK(bpf_map_delete_elem(xe_fd(AIBL_MAP_CONNS), &fk), "drop entry");
		ASSERT_OK(xe_epoch_bump(), "epoch");
	}

	/* an untracked flow's later packets follow its SYN */
	miss_mid = xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW);
	if (!guard_send(N + 1, 1000, PKT_TCP_ACK, hash_choice(N + 1), "untracked ack", &tracked))
		goto out;
	ASSERT_FALSE(tracked, "untracked ack not inserted");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW) - miss_mid, 1, "midflow miss");

	/* rr and p2c services under the guard: the hash slot, not their own
	 * (non-deterministic) choice */
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_SRC_IP, 0, 0), "rr vip");
	for (__u32 c = 100; c < 112; c++)
		if (!guard_send(c, 1000, PKT_TCP_SYN, hash_choice(c), "rr guarded: hash slot",
				&tracked) ||
		    !ASSERT_FALSE(tracked, "rr guarded: not inserted"))
			goto out;
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_P2C, AIBL_KEY_SRC_IP, 0, 0), "p2c vip");
	{
		/* backend 1 is expensive: p2c alone would move every client
		 * whose hash slot holds 1 and second candidate another backend */
		struct aibl_cost expensive = { .cost = 1000 };
		__u32 one = 1, n = 0;

		ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &one, &expensive, 0), "cost");
		for (__u32 c = 200; n < 12; c++) {
			__u32 h = client_hash(c);

			if (hash_choice(c) != 1 ||
			    xe_ring_get(0, 0, aibl_hash_second(h) % AIBL_RING_SIZE) == 1)
				continue;
			n++;
			if (!guard_send(c, 1000, PKT_TCP_SYN, 1, "p2c guarded: hash slot",
					&tracked) ||
			    !ASSERT_FALSE(tracked, "p2c guarded: not inserted"))
				goto out;
		}
	}
	/* every refused packet: N and 24 handshakes (SYN and ACK each), the
	 * guarded SYN of a tracked flow, the untracked ACK */
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_UNTRACKED) - untracked, 2 * N + 1 + 1 + 2 * 24,
		  "every refused packet counted");

	/* a new window admits again: rr's own choice for a SYN, the hash
	 * choice for a mid-flow miss (it may be a flow the guard refused) */
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_SRC_IP, 0, 0), "rr vip");
	ASSERT_OK(rate_reset(), "new window");
	if (!guard_send(N + 1, 1000, PKT_TCP_ACK, hash_choice(N + 1), "admitted midflow: hash",
			&tracked))
		goto out;
	ASSERT_TRUE(tracked, "admitted midflow inserted");
	{
		__u32 pos = 0, c = 300;
		int ncpu = libbpf_num_possible_cpus();
		__u32 cur[ncpu > 0 ? ncpu : 1];

		/* rr's next slot on this CPU decides; find a client whose hash
		 * slot holds another backend so the two choices differ */
		if (!bpf_map_lookup_elem(xe_fd(AIBL_MAP_RR_POS), &(__u32){ 0 }, cur))
			pos = cur[0];
		while (hash_choice(c) == pat[pos % 3])
			c++;
		if (!guard_send(c, 1000, PKT_TCP_SYN, pat[pos % 3], "admitted syn: rr choice",
				&tracked))
			goto out;
		ASSERT_TRUE(tracked, "admitted syn inserted");
	}
out:
	xe_down();
}

static void test_rate_guard_off(void)
{
	static __u32 pat[3] = { 1, 2, 5 };
	bool tracked;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(pin_cpu0(), "pin to cpu 0") || !ASSERT_OK(xe_ring(0, 0, pat, 3), "ring") ||
	    !ASSERT_OK(rate_set(0), "max_conn_rate 0"))
		goto out;
	for (__u32 c = 0; c < 300; c++)
		if (!guard_send(c, 1000, PKT_TCP_SYN, hash_choice(c), "unlimited", &tracked) ||
		    !ASSERT_TRUE(tracked, "every flow inserted"))
			goto out;
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_UNTRACKED), 0, "nothing untracked");
	ASSERT_EQ(active_sum(), 300, "every flow counted");
	{
		/* a SYN never reads or writes the connection table: one on
		 * the tuple of a tracked flow (spoofed, or the tuple reused
		 * without a close seen) takes a new choice and cannot move
		 * or refresh the flow, whose packets keep its entry x */
		__u32 x = hash_choice(0) == pat[0] ? pat[1] : pat[0];
		struct in_addr a = { htonl(0xc6120000u) };
		char src[INET_ADDRSTRLEN];
		struct aibl_flow_key fk;
		struct aibl_conn e;

		inet_ntop(AF_INET, &a, src, sizeof(src));
		fk = xe_fk(src, VIP4, 1000, 80, IPPROTO_TCP);
		if (!ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &e), "entry"))
			goto out;
		e.backend = x;
		ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_CONNS), &fk, &e, BPF_EXIST), "move");
		ASSERT_OK(xe_epoch_bump(), "epoch");
		struct pkt_buf in, exp;

		tcp4(&in, src, VIP4, 1000, 80, PKT_TCP_SYN);
		xe_exp_ipip(&exp, &in, hash_choice(0), NULL, aibl_hash_flow(&fk, XE_SEED));
		if (!expect("unlimited: syn takes a new choice", &in, XDP_TX, &exp, NULL) ||
		    !guard_send(0, 1000, PKT_TCP_ACK, x, "unlimited: the flow keeps its entry",
				&tracked))
			goto out;
		ASSERT_TRUE(tracked, "entry kept");
	}
	{
		/* the guard's window stays untouched while it is off */
		int ncpu = libbpf_num_possible_cpus();
		struct aibl_rate v[ncpu > 0 ? ncpu : 1];
		__u64 sum = 0;

		ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_RATE), &(__u32){ 0 }, v), "read");
		for (int i = 0; i < ncpu; i++)
			sum += v[i].count + v[i].window_start_ns;
		ASSERT_EQ(sum, 0, "no window kept");
	}
out:
	xe_down();
}

/* ---------------- ICMP errors ---------------- */

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

/* ---------------- fragments ---------------- */

static void frag4(struct pkt_buf *b, const char *src, const char *dst, __u16 fo, bool l4)
{
	struct pkt_ip4_opts o = { .id = 77, .frag_off = fo, .ttl = 64 };

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
	static __u32 pat[3] = { 1, 2, 5 };
	struct pkt_buf in, exp;
	struct aibl_flow_key fk;
	__u32 h, want;

	if (!std_env())
		goto out;
	ASSERT_OK(xe_ring(2, 0, pat, 3), "ring");
	fk = xe_fk(CLI4, VIP4W, 0, 0, IPPROTO_UDP);
	h = aibl_hash_client(&fk, XE_SEED);
	want = xe_ring_get(2, 0, h % AIBL_RING_SIZE);
	/* later fragment first (reordered), then the first fragment */
	frag4(&in, CLI4, VIP4W, 185, false);
	xe_exp_ipip(&exp, &in, want, NULL, h);
	expect("later fragment: by client address", &in, XDP_TX, &exp, NULL);
	frag4(&in, CLI4, VIP4W, 0x2000, true);
	xe_exp_ipip(&exp, &in, want, NULL, h);
	expect("first fragment: same backend", &in, XDP_TX, &exp, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_FRAG_FWD), 2, "frag_fwd");

	frag4(&in, CLI4, VIP4T, 185, false);
	expect("fragment to a 5-tuple service: dropped", &in, XDP_DROP, NULL, NULL);
	frag4(&in, CLI4, VIP4, 185, false);
	in.buf[xe_l3(&in) + 9] = IPPROTO_TCP;
	expect("later fragment to a port-only vip address: passed (cannot tell)", &in, XDP_PASS,
	       NULL, NULL);
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(&in, CLI4, VIP4, &(struct pkt_ip4_opts){ .frag_off = 0x2000 });
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
out:
	xe_down();
}

/* ---------------- MTU ---------------- */

static void big4(struct pkt_buf *b, size_t payload, bool df)
{
	struct pkt_ip4_opts o = { .ttl = 64, .no_df = !df };

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
	struct pkt_ip4_opts io = { .tos = 0xc0, .ttl = 64, .no_df = true };
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
	pkt__payload(&exp, in.buf + xe_l3(&in), 64);
	pkt__finish(&exp);
	expect("frag-needed back to the client", &in, XDP_TX, &exp, NULL);
	ASSERT_EQ(xe_counter(AIBL_CNT_TOOBIG_SENT), 1, "toobig_sent");
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

/* ---------------- loader ---------------- */

static void test_loader_pins(void)
{
	struct dp *dp2 = NULL;
	struct dp_opts o = {};
	struct aibl_flow_key fk = xe_fk(CLI4, VIP4, 40000, 80, IPPROTO_TCP);
	struct aibl_conn c;
	struct xe_result r;
	struct pkt_buf in;
	char path[128];
	int fd;

	if (!std_env())
		goto out;
	in_v4_syn(&in);
	xe_run(&in, &r);
	/* its handshake's ACK puts the flow into the connection table */
	tcp4(&in, CLI4, VIP4, 40000, 80, PKT_TCP_ACK);
	xe_run(&in, &r);
	/* a second load (restarted controller) finds the connection table */
	o.pin_dir = xe_dir;
	if (!ASSERT_OK(dp__open_load(&o, &dp2), "reload"))
		goto out;
	ASSERT_TRUE(dp2->reused, "reused pins");
	ASSERT_EQ(dp2->sizes.max_conns, 4096, "pinned size wins");
	ASSERT_OK(bpf_map_lookup_elem(dp__map_fd(dp2, AIBL_MAP_CONNS), &fk, &c), "flow kept");
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_PIN_PROG);
	fd = bpf_obj_get(path);
	ASSERT_GE(fd, 0, "program pinned");
	if (fd >= 0)
		close(fd);
	dp__close(dp2);
	dp2 = NULL;

	/* counters of an older build (fewer of them): replaced, so the ones
	 * appended since get a slot; everything else is still reused */
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_MAP_STATS);
	unlink(path);
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "aibl_stats", 4, 8, AIBL_CNT__MAX - 1, NULL);
	ASSERT_GE(fd, 0, "older stats map");
	ASSERT_OK(bpf_obj_pin(fd, path), "pin older stats");
	close(fd);
	if (!ASSERT_OK(dp__open_load(&o, &dp2), "reload over older stats"))
		goto out;
	{
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		fd = bpf_obj_get(path);
		ASSERT_GE(fd, 0, "stats pinned again");
		ASSERT_OK(fd >= 0 ? bpf_obj_get_info_by_fd(fd, &info, &len) : -1, "stats info");
		ASSERT_EQ(info.max_entries, AIBL_CNT__MAX, "every counter has a slot");
		if (fd >= 0)
			close(fd);
	}
	ASSERT_OK(bpf_map_lookup_elem(dp__map_fd(dp2, AIBL_MAP_CONNS), &fk, &c), "flow kept");
	dp__close(dp2);
	dp2 = NULL;

	/* a pin with another layout is refused with a clear error */
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_MAP_COST);
	unlink(path);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aibl_cost", 4, 16, 8, NULL);
	ASSERT_GE(fd, 0, "foreign map");
	ASSERT_OK(bpf_obj_pin(fd, path), "pin foreign");
	close(fd);
	ASSERT_EQ(dp__open_load(&o, &dp2), -EINVAL, "layout mismatch refused");
out:
	dp__close(dp2);
	xe_down();
}

static void test_loader_attach(void)
{
	struct dp *dp2 = NULL;
	struct dp_opts o = {};
	int ifi, err, fd;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(system("ip link add dpa0 type veth peer name dpa1"), "veth"))
		goto out;
	ifi = if_nametoindex("dpa0");
	ASSERT_OK(dp__attach(xe_dp, ifi, NULL), "attach native");
	o.pin_dir = xe_dir;
	if (!ASSERT_OK(dp__open_load(&o, &dp2), "second instance"))
		goto out;
	ASSERT_OK(dp__attach(dp2, ifi, NULL), "atomic replace of an aibl program");
	{
		__u32 id = 0;
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		bpf_xdp_query_id(ifi, XDP_FLAGS_DRV_MODE, &id);
		bpf_obj_get_info_by_fd(dp__prog_fd(dp2), &info, &len);
		ASSERT_EQ(id, info.id, "new program attached");
	}
	ASSERT_OK(dp__detach(ifi, false), "detach");
	ASSERT_EQ(dp__detach(ifi, false), -ENOENT, "nothing attached");
	ASSERT_OK(dp__attach(xe_dp, ifi, &(struct dp_attach_opts){ .mode = DP_ATTACH_GENERIC }),
		  "attach generic");
	ASSERT_OK(dp__detach(ifi, false), "detach generic");
	/* a foreign program is not replaced without force */
	{
		const struct bpf_insn pass[] = {
			{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
			{ .code = BPF_JMP | BPF_EXIT },
		};

		fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "foreign", "GPL", pass, 2, NULL);
		if (!ASSERT_GE(fd, 0, "foreign program"))
			goto out;
		err = bpf_xdp_attach(ifi, fd, XDP_FLAGS_DRV_MODE, NULL);
		close(fd);
		if (!ASSERT_OK(err, "attach foreign"))
			goto out;
	}
	ASSERT_EQ(dp__attach(xe_dp, ifi, NULL), -EBUSY, "foreign refused");
	ASSERT_EQ(dp__detach(ifi, false), -EBUSY, "foreign not detached");
	ASSERT_OK(dp__attach(xe_dp, ifi, &(struct dp_attach_opts){ .force = true }), "forced");
	ASSERT_OK(dp__detach(ifi, false), "detach");
out:
	dp__close(dp2);
	system("ip link del dpa0 2>/dev/null");
	xe_down();
}

static const struct test_case cases[] = {
	{ "parse", test_parse },
	{ "fwd_l2dsr", test_fwd_l2dsr },
	{ "fwd_ipip_spread_4in6", test_fwd_ipip_spread },
	{ "fwd_nexthop", test_fwd_nexthop },
	{ "sel_hash_weights", test_sel_hash_weights },
	{ "sel_rr_order", test_sel_rr },
	{ "sel_p2c_cost", test_sel_p2c },
	{ "sel_bounded_load", test_sel_bounded },
	{ "pins", test_pins },
	{ "prefilters", test_prefilters },
	{ "conn_sticky_table_flip", test_conn_sticky_flip },
	{ "conn_resteer_down", test_conn_resteer },
	{ "conn_active_accounting", test_conn_accounting },
	{ "handshake", test_handshake },
	{ "flow_cache", test_flow_cache },
	{ "no_conntrack", test_no_conntrack },
	{ "rate_guard", test_rate_guard },
	{ "rate_guard_off", test_rate_guard_off },
	{ "icmp_errors", test_icmp_errors },
	{ "fragments", test_fragments },
	{ "mtu_too_big", test_mtu },
	{ "loader_pins", test_loader_pins },
	{ "loader_attach", test_loader_attach },
};

int main(int argc, char **argv)
{
	/* own netns: fib lookups see an empty table unless a case adds routes */
	if (test__can_bpf() && unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return 1;
	}
	return test__main(argc, argv, "xdp", cases, sizeof(cases) / sizeof(cases[0]));
}
