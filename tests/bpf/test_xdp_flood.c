// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The insert policy (README: "Mid-connection packet that misses the
 * table"): floods of spoofed packets that are no completed handshake (ACK,
 * RST, FIN, SYN+ACK, UDP) from random sources cannot evict established
 * flows, and a blind RST or a forged FIN does not end a flow's active count
 * for good.
 */
#include <stdint.h>
#include <time.h>
#include "xdp_fixture.h"

#define NEST 100 /* established flows */

static __u32 rnd_state = 0x9e3779b9u;

static __u32 rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

/* one spoofed packet from a random source: kind 0 ACK, 1 RST, 2 UDP, 3
 * SYN+ACK, 4 FIN; true when forwarded */
static bool spoof(int kind)
{
	static const __u8 flags[] = {PKT_TCP_ACK, PKT_TCP_RST, 0, PKT_TCP_SYN | PKT_TCP_ACK,
				     PKT_TCP_FIN | PKT_TCP_ACK};
	struct in_addr a = {htonl(rnd() | 0x01000000u)};
	char src[INET_ADDRSTRLEN];
	struct xe_result r;
	struct pkt_buf in;

	inet_ntop(AF_INET, &a, src, sizeof(src));
	if (kind == 2) {
		pkt__init(&in);
		pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
		pkt__ipv4(&in, src, VIP4W, NULL);
		pkt__udp(&in, rnd() & 0xffff, 1 + (rnd() & 0x7fff));
		pkt__fill(&in, 20);
		pkt__finish(&in);
	} else {
		tcp4(&in, src, VIP4, 1024 + (rnd() & 0x7fff), 80, flags[kind]);
	}
	xe_run(&in, &r);
	return !r.err && r.verdict == XDP_TX;
}

static __u64 clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int unverified_reset(void)
{
	return xe_percpu_set(AIBL_MAP_RATE, AIBL_RATE_UNVERIFIED, &(struct aibl_rate){},
			     sizeof(struct aibl_rate));
}

/*
 * NEST flows of an rr service (whose re-choice would move them) are
 * established on a table of 4096 entries; then 10 x the table's size of
 * each spoofed kind from random sources. First all in one second (the
 * adversarial burst), then again as a long flood: the unverified window is
 * reset every 512 packets, as if each second brought 512, while the
 * established flows go on sending. At least 99 % of them must still be on
 * their backends, by their entries and by where their packets go.
 */
static void test_flood(void)
{
	static __u32 pat[3] = {1, 2, 5};
	__u32 be[NEST], table = 4096, kept = 0, nconns;
	__u64 noinsert, midflow, t0, secs;
	struct aibl_traffic tcp0, tcp1, udp0, udp1;
	struct xe_result r;
	int c;

	if (!std_env())
		goto out;
	/* LRU lists and rate windows are per CPU: keep every run on one */
	if (!ASSERT_OK(pin_cpu0(), "pin to cpu 0") || !ASSERT_OK(xe_ring(0, 0, pat, 3), "ring") ||
	    !ASSERT_OK(xe_ring(2, 0, pat, 3), "udp ring") ||
	    !ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_SRC_IP, 0, 0),
		       "rr vip"))
		goto out;
	for (c = 0; c < NEST; c++) {
		int b = syn_from(c, 7, VIP4, 80, &r);

		if (!ASSERT_TRUE(b > 0, "established"))
			goto out;
		be[c] = b;
	}
	ASSERT_EQ(xe_active_sum(), NEST, "every flow active");

	/* the burst: every kind at 10 x the table within one window */
	if (!ASSERT_OK(unverified_reset(), "window"))
		goto out;
	t0 = clock_ns();
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &tcp0);
	xe_traffic(AIBL_MAP_SVC_STATS, 2, &udp0);
	noinsert = xe_counter(AIBL_CNT_CONN_NOINSERT);
	midflow = xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW);
	for (int kind = 0; kind < 5; kind++)
		for (__u32 i = 0; i < 10 * table; i++)
			if (!ASSERT_TRUE(spoof(kind), "spoofed packet forwarded"))
				goto out;
	secs = (clock_ns() - t0) / 1000000000ULL + 2; /* windows the burst may span */
	nconns = xe_conns_count();
	printf("  burst: %u entries after 5 x %u spoofed packets\n", nconns, 10 * table);
	ASSERT_LE(nconns, NEST + secs * AIBL_UNVERIFIED_RATE, "at most the unverified budget");
	ASSERT_GE(xe_counter(AIBL_CNT_CONN_NOINSERT) - noinsert,
		  50 * table - secs * AIBL_UNVERIFIED_RATE, "conn_no_insert");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW) - midflow, 40 * table,
		  "conn_miss_midflow: every TCP kind, SYN+ACK too");
	/* a mid-flow ACK let in counts as an active flow, as a recovered one should */
	ASSERT_LE(xe_active_sum(), NEST + secs * AIBL_UNVERIFIED_RATE, "active: bounded as well");
	/* new flows as well: what was let in, not every refused packet (a
	 * UDP packet refused an entry counted one, and aibld reads them) */
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &tcp1);
	xe_traffic(AIBL_MAP_SVC_STATS, 2, &udp1);
	ASSERT_LE(tcp1.new_flows - tcp0.new_flows, secs * AIBL_UNVERIFIED_RATE,
		  "TCP new flows: those let in");
	ASSERT_LE(udp1.new_flows - udp0.new_flows, secs * AIBL_UNVERIFIED_RATE,
		  "UDP new flows: those let in");

	/* the long flood: ACK, RST, UDP interleaved, 512 a "second" */
	for (__u32 i = 0; i < 10 * table; i++) {
		for (int kind = 0; kind < 3; kind++)
			if (!ASSERT_TRUE(spoof(kind), "spoofed packet forwarded"))
				goto out;
		if (i % 512 == 511) {
			if (!ASSERT_OK(unverified_reset(), "next window"))
				goto out;
			for (c = 0; c < NEST; c++)
				ack_from(c, 7, VIP4, 80, &r);
		}
	}
	for (c = 0; c < NEST; c++) {
		char src[INET_ADDRSTRLEN];
		struct in_addr a = {htonl(0xc6120000u + c)};
		struct aibl_flow_key fk;
		struct aibl_conn e;

		inet_ntop(AF_INET, &a, src, sizeof(src));
		fk = xe_fk(src, VIP4, 7, 80, IPPROTO_TCP);
		if (!bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &e) && e.backend == be[c] &&
		    ack_from(c, 7, VIP4, 80, &r) == (int)be[c])
			kept++;
	}
	printf("  long flood: %u of %d established flows kept their backend, %u entries\n", kept,
	       NEST, xe_conns_count());
	ASSERT_GE(kept * 100, NEST * 99, ">= 99% of established flows on their backends");
out:
	xe_down();
}

/*
 * A blind RST on a known tuple counts the flow out; its next packet shows
 * that the flow went on and counts it in again. A SYN+ACK, FIN or RST
 * that misses the table is forwarded by the hash choice and not inserted.
 */
static void test_blind_rst(void)
{
	struct xe_result r;
	struct aibl_flow_key fk = xe_fk("198.18.0.1", VIP4, 9, 80, IPPROTO_TCP);
	struct aibl_conn e;
	__u32 n;

	if (!std_env())
		goto out;
	ASSERT_EQ(syn_from(1, 9, VIP4, 80, &r), 1, "established on 1");
	ASSERT_EQ(xe_active_sum(), 1, "active");
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_RST, &r), 1, "RST forwarded to 1");
	ASSERT_EQ(xe_active_sum(), 0, "RST counts it out");
	ASSERT_EQ(ack_from(1, 9, VIP4, 80, &r), 1, "the flow goes on, on 1");
	ASSERT_EQ(xe_active_sum(), 1, "and counts again");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_REOPEN), 1, "conn_reopen");
	ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &e), "entry");
	ASSERT_EQ(e.flags & (AIBL_CONN_F_CLOSING | AIBL_CONN_F_RST), 0, "open again");
	ASSERT_EQ(ack_from(1, 9, VIP4, 80, &r), 1, "once");
	ASSERT_EQ(xe_active_sum(), 1, "counted once");
	/* a FIN ends it; ACKs after a FIN are normal and keep it closed */
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_FIN | PKT_TCP_ACK, &r), 1, "FIN");
	ASSERT_EQ(ack_from(1, 9, VIP4, 80, &r), 1, "ACK after FIN");
	ASSERT_EQ(xe_active_sum(), 0, "closed by its FIN");

	n = xe_conns_count();
	ASSERT_EQ(tcp_from(50, 9, VIP4, 80, PKT_TCP_SYN | PKT_TCP_ACK, &r), 1, "SYN+ACK miss");
	ASSERT_EQ(tcp_from(51, 9, VIP4, 80, PKT_TCP_RST, &r), 1, "RST miss");
	ASSERT_EQ(tcp_from(52, 9, VIP4, 80, PKT_TCP_FIN | PKT_TCP_ACK, &r), 1, "FIN miss");
	ASSERT_EQ(xe_conns_count(), n, "none inserted");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW), 3, "all three mid-flow misses");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_NOINSERT), 3, "conn_no_insert");
out:
	xe_down();
}

/* a segment of client c's flow from port sport to VIP4:80 with sequence
 * number seq and payload bytes; returns the backend it went to */
static int seg_from(__u32 c, __u16 sport, __u8 flags, __u32 seq, size_t payload)
{
	struct in_addr a = {htonl(0xc6120000u + c)}; /* 198.18.0.0/15, as tcp_from() */
	char src[INET_ADDRSTRLEN];
	struct xe_result r;
	struct pkt_buf in;

	inet_ntop(AF_INET, &a, src, sizeof(src));
	pkt__init(&in);
	pkt__eth(&in, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(&in, src, VIP4, NULL);
	pkt__tcp_seq(&in, sport, 80, flags, seq, 2000, 65535);
	pkt__fill(&in, payload);
	pkt__finish(&in);
	xe_run(&in, &r);
	if (r.err || r.verdict != XDP_TX)
		return -1;
	return xe_out_backend(&r);
}

static __u32 conn_flags(__u32 c, __u16 sport)
{
	struct in_addr a = {htonl(0xc6120000u + c)};
	char src[INET_ADDRSTRLEN];
	struct aibl_flow_key fk;
	struct aibl_conn e = {};

	inet_ntop(AF_INET, &a, src, sizeof(src));
	fk = xe_fk(src, VIP4, sport, 80, IPPROTO_TCP);
	if (bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &e))
		return ~0U;
	return e.flags;
}

#define ACK PKT_TCP_ACK
#define FIN (PKT_TCP_FIN | PKT_TCP_ACK)

/* client 1's flow to VIP4:80 from port 9, established, then closed by a
 * FIN at seq with len bytes of data: its backend, counted out; -1 */
static int fin_flow(__u32 seq, size_t len)
{
	struct xe_result r;
	int be = syn_from(1, 9, VIP4, 80, &r);

	if (!ASSERT_TRUE(be > 0, "established") ||
	    !ASSERT_EQ(seg_from(1, 9, FIN, seq, len), be, "the FIN") ||
	    !ASSERT_EQ(xe_active_sum(), 0, "counted out"))
		return -1;
	return be;
}

/*
 * A forged FIN behind the client's stream: the client's next segment
 * reaches beyond it (data, or a bare ACK), which no segment after a real
 * FIN does: the flow counts again, once, and a later real FIN ends it. A
 * re-steer keeps the FIN's place.
 */
static void test_fin_forged(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_load l, l2;
	struct xe_result r;
	__u32 two = 2, c;
	int be;

	if (!std_env())
		goto out;
	be = syn_from(1, 9, VIP4, 80, &r);
	ASSERT_TRUE(be > 0, "established");
	ASSERT_EQ(seg_from(1, 9, ACK, 1000, 1000), be, "data up to 2000");
	ASSERT_EQ(seg_from(1, 9, FIN, 600, 0), be, "a forged FIN at 600");
	ASSERT_EQ(xe_active_sum(), 0, "counted out");
	ASSERT_EQ(seg_from(1, 9, ACK, 2000, 100), be, "data on, ending at 2100");
	ASSERT_EQ(xe_active_sum(), 1, "counted again");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_FIN_FORGED), 1, "conn_fin_forged");
	ASSERT_EQ(conn_flags(1, 9), 0, "open, nothing of the FIN kept");
	ASSERT_EQ(seg_from(1, 9, ACK, 2100, 100), be, "more data");
	ASSERT_EQ(xe_active_sum(), 1, "counted once");
	/* aibld's reconcile counts the entry as the data plane did */
	ASSERT_EQ(dp__load_reconcile(xe_fd(AIBL_MAP_CONNS), xe_fd(AIBL_MAP_LOAD), XE_NBE), 0,
		  "reconcile: nothing to correct");
	ASSERT_EQ(seg_from(1, 9, FIN, 2200, 0), be, "the real FIN");
	ASSERT_EQ(seg_from(1, 9, ACK, 2201, 0), be, "its ACK");
	ASSERT_EQ(xe_active_sum(), 0, "ended by it");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_FIN_FORGED), 1, "one forged FIN");

	/* a client that only ACKs (a streamed response): its bare ACK at
	 * 2000 lies beyond a FIN at 600 + 1 */
	be = syn_from(2, 9, VIP4, 80, &r);
	ASSERT_EQ(seg_from(2, 9, ACK, 1000, 1000), be, "request up to 2000");
	ASSERT_EQ(seg_from(2, 9, FIN, 600, 0), be, "a forged FIN at 600");
	ASSERT_EQ(xe_active_sum(), 0, "counted out");
	ASSERT_EQ(seg_from(2, 9, ACK, 2000, 0), be, "a bare ACK at 2000");
	ASSERT_EQ(xe_active_sum(), 1, "counted again");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_FIN_FORGED), 2, "conn_fin_forged");

	/* closed by a forged FIN on a backend that then goes down: re-steered
	 * closing, with the FIN's place; data past it counts the flow again on
	 * its new backend */
	if (!ASSERT_OK(xe_ring(0, 0, pat, 2), "ring"))
		goto out;
	for (c = 10; xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE) != 1; c++)
		;
	ASSERT_EQ(syn_from(c, 9, VIP4, 80, &r), 1, "flow on 1");
	ASSERT_EQ(seg_from(c, 9, FIN, 600, 0), 1, "a forged FIN at 600");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "down 1");
	ASSERT_EQ(seg_from(c, 9, ACK, 500, 0), 2, "re-steered");
	ASSERT_EQ(conn_flags(c, 9) & (AIBL_CONN_F_CLOSING | AIBL_CONN_F_FIN),
		  AIBL_CONN_F_CLOSING | AIBL_CONN_F_FIN, "still closing, by its FIN");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID), "up 1");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l2);
	ASSERT_EQ(seg_from(c, 9, ACK, 2000, 100), 2, "data past the FIN, on 2");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l);
	ASSERT_EQ(l.active, l2.active + 1, "counted again on 2");
	ASSERT_EQ(xe_active_sum(), 2, "and nowhere else");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_FIN_FORGED), 3, "conn_fin_forged");
out:
	xe_down();
}

/*
 * A real FIN (seq 10000 with 100 bytes: the FIN is 10100): retransmitted
 * and reordered data ends at or before it, the bare ACK after it is at
 * 10101, the FIN may come again: the flow stays counted out, once. Data
 * behind the FIN never counts towards a forgery (a lost tail retransmitted
 * after an RTO), nor do bare ACKs once a segment at the FIN came.
 */
static void test_fin_real(void)
{
	struct xe_result r;
	int be;

	if (!std_env() || (be = fin_flow(10000, 100)) < 0)
		goto out;
	for (__u32 i = 0; i < 20; i++)
		ASSERT_EQ(seg_from(1, 9, ACK, 1000 + i * 450, 450), be, "data retransmitted");
	ASSERT_EQ(seg_from(1, 9, ACK, 9000, 1000), be, "data reordered, ending at 10000");
	ASSERT_EQ(seg_from(1, 9, ACK, 10000, 100), be, "data ending at the FIN");
	ASSERT_EQ(seg_from(1, 9, FIN, 10000, 100), be, "the FIN again");
	ASSERT_EQ(xe_active_sum(), 0, "not counted out twice");
	ASSERT_EQ(seg_from(1, 9, ACK, 10101, 0), be, "the ACK after the FIN");
	for (__u32 i = 0; i < 20; i++)
		ASSERT_EQ(seg_from(1, 9, ACK, 9000, 0), be, "bare ACKs sent before the FIN");
	ASSERT_EQ(xe_active_sum(), 0, "still out");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_FIN_FORGED), 0, "no forged FIN");
	ASSERT_EQ(conn_flags(1, 9) & AIBL_CONN_F_CLOSING, AIBL_CONN_F_CLOSING, "closing");

	/* the tuple used again: a new handshake as before (port reuse) */
	ASSERT_EQ(syn_from(1, 9, VIP4, 80, &r), be, "a new connection on the tuple");
	ASSERT_EQ(xe_active_sum(), 1, "counted");
	ASSERT_EQ(conn_flags(1, 9), 0, "open");
out:
	xe_down();
}

/*
 * A forged FIN ahead of the client's stream: its segments lie behind it,
 * as a real FIN's retransmissions would. Data does not tell; bare ACKs
 * behind it, which after a real FIN carry its number + 1, do: the
 * AIBL_CONN_FIN_BEHIND_MAX + 1st counts the flow again. A FIN more than a
 * window (2^30) ahead is found by the next segment.
 */
static void test_fin_forged_ahead(void)
{
	struct xe_result r;
	int be;

	/* a forged FIN at 1000000 */
	if (!std_env() || (be = fin_flow(1000000, 0)) < 0)
		goto out;
	for (__u32 i = 0; i < 20; i++)
		ASSERT_EQ(seg_from(1, 9, ACK, 1032 + i * 100, 100), be, "data behind it");
	for (__u32 i = 0; i < AIBL_CONN_FIN_BEHIND_MAX; i++)
		ASSERT_EQ(seg_from(1, 9, ACK, 3032, 0), be, "bare ACKs behind it");
	ASSERT_EQ(xe_active_sum(), 0, "not yet");
	ASSERT_EQ(seg_from(1, 9, ACK, 3032, 0), be, "one more");
	ASSERT_EQ(xe_active_sum(), 1, "counted again");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_FIN_FORGED), 1, "conn_fin_forged");
	ASSERT_EQ(seg_from(1, 9, ACK, 3032, 0), be, "and on");
	ASSERT_EQ(xe_active_sum(), 1, "counted once");

	be = syn_from(2, 9, VIP4, 80, &r);
	ASSERT_EQ(seg_from(2, 9, FIN, 1032 + 0x60000000u, 0), be, "a forged FIN 1.5 GiB ahead");
	ASSERT_EQ(xe_active_sum(), 1, "counted out");
	ASSERT_EQ(seg_from(2, 9, ACK, 1032, 100), be, "data more than a window behind it");
	ASSERT_EQ(xe_active_sum(), 2, "counted again");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_FIN_FORGED), 2, "conn_fin_forged");
out:
	xe_down();
}

/*
 * A blind RST (or a forged FIN), then a spoofed SYN on the same tuple, whose
 * new choice is another backend: the connection's next segment is numbered
 * in its own sequence space, not the SYN's ISN + 1, so it keeps its backend
 * and counts again. A real reuse of the tuple (a SYN, then the ACK of that
 * SYN) takes the new SYN's backend.
 */
static void test_closed_then_syn(void)
{
	static __u32 only1[1] = {1}, only2[1] = {2};
	struct xe_result r;

	if (!std_env() || !ASSERT_OK(xe_ring(0, 0, only1, 1), "ring 1"))
		goto out;
	ASSERT_EQ(syn_from(1, 9, VIP4, 80, &r), 1, "client 1 on 1");
	ASSERT_EQ(syn_from(2, 9, VIP4, 80, &r), 1, "client 2 on 1");
	ASSERT_EQ(seg_from(1, 9, PKT_TCP_RST, 777777, 0), 1, "a blind RST on 1's tuple");
	ASSERT_EQ(seg_from(2, 9, FIN, 600, 0), 1, "a forged FIN on 2's");
	ASSERT_OK(xe_ring(0, 0, only2, 1), "ring 2");
	ASSERT_EQ(seg_from(1, 9, PKT_TCP_SYN, 555555, 0), 2, "a spoofed SYN: the new choice, 2");
	ASSERT_EQ(seg_from(2, 9, PKT_TCP_SYN, 424242, 0), 2, "another: 2");
	ASSERT_EQ(seg_from(1, 9, ACK, 5000, 100), 1, "1's next segment: still on 1");
	ASSERT_EQ(seg_from(2, 9, ACK, 5000, 100), 1, "2's: still on 1");
	ASSERT_EQ(seg_from(1, 9, ACK, 5100, 0), 1, "and they stay");
	ASSERT_EQ(xe_active_sum(), 2, "both count again");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_REOPEN), 1, "the RST taken for blind");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_FIN_FORGED), 1, "the FIN for forged");

	/* client 1 ends its connection and reuses the port */
	ASSERT_EQ(seg_from(1, 9, PKT_TCP_RST, 5100, 0), 1, "the client's own RST");
	ASSERT_EQ(seg_from(1, 9, PKT_TCP_SYN, 9000, 0), 2, "its new SYN: 2");
	ASSERT_EQ(seg_from(1, 9, ACK, 9001, 0), 2, "the ACK of that SYN: 2");
	ASSERT_EQ(seg_from(1, 9, ACK, 9001, 50), 2, "and its data");
	ASSERT_EQ(xe_active_sum(), 2, "one on each");
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"flood_keeps_established", test_flood},
    {"blind_rst", test_blind_rst},
    {"fin_forged", test_fin_forged},
    {"fin_real", test_fin_real},
    {"fin_forged_ahead", test_fin_forged_ahead},
    {"closed_then_syn", test_closed_then_syn},
};

XF_MAIN(cases)
