// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The test_xdp_* cases' shared fixture (see xdp_fixture.h).
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include "xdp_fixture.h"

const __u32 RING_B1[1] = {1};
const __u32 RING_B2[1] = {2};
const __u32 RING_B3[1] = {3};

static char pcap_path[256];

static void fail_pcap(const char *desc, const struct pkt_buf *in, const struct pkt_buf *exp,
		      const struct xe_result *r)
{
	const void *frames[3] = {in->buf, exp ? exp->buf : in->buf, r->data};
	size_t lens[3] = {in->len, exp ? exp->len : in->len, r->len};
	const char *dir = getenv("AIBL_TEST_PCAP_DIR") ?: "/tmp";

	snprintf(pcap_path, sizeof(pcap_path), "%s/aibl-test-xdp-%s.pcap", dir, test__case);
	if (pkt__pcap_write(pcap_path, frames, lens, 3) == 0)
		printf("  %s: input, expected, actual frames appended to %s\n", desc, pcap_path);
}

bool std_env(void)
{
	if (!test__can_bpf()) {
		SKIP("needs root");
		return false;
	}
	if (!ASSERT_OK(xe_up(&(struct dp_sizes){.max_services = 8,
						.max_backends = 64,
						.max_conns = 4096,
						.max_pins = 64,
						.max_members = 64}),
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
	       ASSERT_OK(
		   xe_vip(VIP4T, 0, IPPROTO_UDP, 3, AIBL_MODE_HASH, AIBL_KEY_FIVE_TUPLE, 0, 0),
		   "vip4t") &&
	       ASSERT_OK(xe_vip(VIP6W, 0, IPPROTO_TCP, 4, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, 0),
			 "vip6w") &&
	       ASSERT_OK(xe_ring(0, 0, RING_B1, 1), "ring0") &&
	       ASSERT_OK(xe_ring(1, 0, RING_B3, 1), "ring1") &&
	       ASSERT_OK(xe_ring(2, 0, RING_B2, 1), "ring2") &&
	       ASSERT_OK(xe_ring(3, 0, RING_B2, 1), "ring3") &&
	       ASSERT_OK(xe_ring(4, 0, RING_B3, 1), "ring4");
}

bool expect(const char *desc, const struct pkt_buf *in, __u32 verdict, const struct pkt_buf *exp,
	    struct xe_result *r)
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

void tcp4(struct pkt_buf *b, const char *src, const char *dst, __u16 sport, __u16 dport, __u8 flags)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, src, dst, NULL);
	pkt__tcp(b, sport, dport, flags);
	pkt__fill(b, 32);
	pkt__finish(b);
}

void tcp6(struct pkt_buf *b, const char *src, const char *dst, __u16 sport, __u16 dport, __u8 flags)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv6(b, src, dst, 0, 0x12345);
	pkt__tcp(b, sport, dport, flags);
	pkt__fill(b, 32);
	pkt__finish(b);
}

void in_v4_syn(struct pkt_buf *b)
{
	tcp4(b, CLI4, VIP4, 40000, 80, PKT_TCP_SYN);
}

void open_v4_flow(struct pkt_buf *in, struct xe_result *r)
{
	in_v4_syn(in);
	xe_run(in, r);
	tcp4(in, CLI4, VIP4, 40000, 80, PKT_TCP_ACK);
	xe_run(in, r);
}

void in_v4_options(struct pkt_buf *b)
{
	/* router alert + NOP padding: legal traffic, forwarded as is */
	static const uint8_t opts[8] = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};
	struct pkt_ip4_opts o = {.tos = 0x28, .ttl = 50, .options = opts, .options_len = 8};

	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, CLI4, VIP4, &o);
	pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
	pkt__fill(b, 10);
	pkt__finish(b);
}

void in_v4_qinq(struct pkt_buf *b)
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

void in_v4_udp_wild(struct pkt_buf *b)
{
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, CLI4, VIP4W, NULL);
	pkt__udp(b, 5353, 9999);
	pkt__fill(b, 20);
	pkt__finish(b);
}

void in_v6_ext(struct pkt_buf *b)
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

int tcp_from(__u32 c, __u16 sport, const char *vip, __u16 dport, __u8 flags, struct xe_result *r)
{
	struct pkt_buf in;
	char src[INET_ADDRSTRLEN];
	struct in_addr a = {htonl(0xc6120000u + c)}; /* 198.18.0.0/15 */

	inet_ntop(AF_INET, &a, src, sizeof(src));
	tcp4(&in, src, vip, sport, dport, flags);
	xe_run(&in, r);
	if (r->err || (r->verdict != XDP_TX && r->verdict != XDP_REDIRECT))
		return -1;
	return xe_out_backend(r);
}

int syn_from(__u32 c, __u16 sport, const char *vip, __u16 dport, struct xe_result *r)
{
	int be = tcp_from(c, sport, vip, dport, PKT_TCP_SYN, r);

	if (be < 0)
		return -1;
	return tcp_from(c, sport, vip, dport, PKT_TCP_ACK, r) == be ? be : -1;
}

int ack_from(__u32 c, __u16 sport, const char *vip, __u16 dport, struct xe_result *r)
{
	return tcp_from(c, sport, vip, dport, PKT_TCP_ACK, r);
}

__u32 client_hash(__u32 c)
{
	struct aibl_flow_key fk = {};

	fk.family = AIBL_AF_INET;
	fk.src.v4 = htonl(0xc6120000u + c);
	return aibl_hash_client(&fk, XE_SEED);
}

int pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

int xf_main(int argc, char **argv, const struct test_case *cases, size_t n)
{
	/* own netns: fib lookups see an empty table unless a case adds routes */
	if (test__can_bpf() && unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return 1;
	}
	return test__main(argc, argv, "xdp", cases, n);
}
