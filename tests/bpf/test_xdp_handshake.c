// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The handshake table (aibl_syns): SYNs are recorded there, not in the
 * connection table, and the handshake's ACK moves the flow over.
 */
#include "xdp_fixture.h"

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
	static __u32 only1[1] = {1}, only2[1] = {2}, only3[1] = {3}, both[2] = {1, 2};
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
	ASSERT_EQ(tcp_from(1, 9, VIP4, 80, PKT_TCP_SYN, &r), 2,
		  "reused tuple: SYN by the new choice");
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

	/* a closed flow's backend goes down, then its tuple is reused: the
	 * new handshake's ACK follows its SYN's record, not a fresh choice */
	ASSERT_OK(xe_ring(0, 0, only1, 1), "ring 1");
	ASSERT_EQ(tcp_from(3, 9, VIP4, 80, PKT_TCP_SYN, &r), 1, "SYN on 1");
	ASSERT_EQ(tcp_from(3, 9, VIP4, 80, PKT_TCP_ACK, &r), 1, "ACK on 1");
	ASSERT_EQ(tcp_from(3, 9, VIP4, 80, PKT_TCP_FIN | PKT_TCP_ACK, &r), 1, "FIN on 1");
	ASSERT_OK(xe_ring(0, 0, only2, 1), "ring 2");
	ASSERT_EQ(tcp_from(3, 9, VIP4, 80, PKT_TCP_SYN, &r), 2, "reused tuple: SYN on 2");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "1 down");
	ASSERT_OK(xe_ring(0, 0, only3, 1), "ring 3");
	ASSERT_EQ(tcp_from(3, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "its ACK follows the SYN: 2");
	ASSERT_EQ(active_of(2), 3, "2: plus client 3");
	ASSERT_EQ(tcp_from(3, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "and stays");
	ASSERT_EQ(tcp_from(3, 9, VIP4, 80, PKT_TCP_FIN | PKT_TCP_ACK, &r), 2, "closed on 2");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID), "1 up");
	ASSERT_EQ(active_of(1), 0, "nothing left on 1");
	ASSERT_EQ(active_of(2), 2, "2: the reused tuple, client 2");

	/* the SYN's backend goes down before its ACK: re-chosen there */
	ASSERT_OK(xe_ring(0, 0, both, 2), "ring 1,2");
	for (c = 0; xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE) != 1; c++)
		;
	ASSERT_EQ(tcp_from(c, 11, VIP4, 80, PKT_TCP_SYN, &r), 1, "SYN on 1");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "down 1");
	ASSERT_EQ(tcp_from(c, 11, VIP4, 80, PKT_TCP_ACK, &r), 2, "ACK re-chosen: 2");
	ASSERT_EQ(tcp_from(c, 11, VIP4, 80, PKT_TCP_ACK, &r), 2, "and kept there");
	ASSERT_EQ(active_of(2), 3, "on 2: the reused tuple, client 2, this one");

	/* packets that neither open nor complete a handshake count no new
	 * flow: an ACK flood beyond the unverified budget, RSTs, FINs */
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t);
	for (c = 2000; c < 2300; c++)
		if (!ASSERT_TRUE(tcp_from(c, 7, VIP4, 80, c % 3 ? PKT_TCP_ACK : PKT_TCP_RST, &r) >
				     0,
				 "flood packet forwarded"))
			break;
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t2);
	ASSERT_LE(t2.new_flows - t.new_flows, AIBL_UNVERIFIED_RATE * libbpf_num_possible_cpus(),
		  "only the admitted ones count");
	ASSERT_EQ(t2.packets - t.packets, 300, "every packet counted as a packet");
out:
	xe_down();
}

/* every connection entry seen last ns longer ago, and the flow cache's
 * decisions gone (its entries live 500 ms: an entry idle for a second has
 * none) */
static void age_conns(__u64 ns)
{
	int fd = xe_fd(AIBL_MAP_CONNS);
	struct aibl_flow_key k, next;
	struct aibl_conn c;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (!bpf_map_lookup_elem(fd, &k, &c)) {
			c.last_seen_ns -= ns;
			bpf_map_update_elem(fd, &k, &c, BPF_EXIST);
		}
	}
	ASSERT_OK(xe_epoch_bump(), "flow cache voided");
}

/*
 * A tuple whose connection ended without this balancer seeing it (a
 * server's RST goes straight to the client; a re-steered flow's new
 * backend answers RST) is reused by a new handshake: its ACK, at the new
 * SYN's ISN + 1, takes the SYN's backend, not the stale entry's (which
 * answered it with a RST: test_failover's late failure). Only an entry
 * idle for a while is taken so; a packet of a live connection keeps it.
 */
static void test_reused_live(void)
{
	static __u32 only1[1] = {1}, only2[1] = {2}, only3[1] = {3};
	struct aibl_traffic t0, t1;
	struct xe_result r;

	if (!std_env() || !ASSERT_OK(xe_ring(0, 0, only1, 1), "ring 1"))
		goto out;
	ASSERT_EQ(syn_from(5, 9, VIP4, 80, &r), 1, "open on 1");
	ASSERT_EQ(active_of(1), 1, "active on 1");
	/* its end unseen; the table moves on, the tuple comes back with a SYN */
	ASSERT_OK(xe_ring(0, 0, only2, 1), "ring 2");
	/* fresh entry: a SYN and its ACK do not move it (a live connection) */
	ASSERT_EQ(tcp_from(5, 9, VIP4, 80, PKT_TCP_SYN, &r), 2, "SYN by the new choice");
	ASSERT_EQ(tcp_from(5, 9, VIP4, 80, PKT_TCP_ACK, &r), 1, "a live entry keeps its flow");
	age_conns(2000000000ull);
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t0);
	ASSERT_EQ(tcp_from(5, 9, VIP4, 80, PKT_TCP_SYN, &r), 2, "SYN on the idle tuple: 2");
	ASSERT_EQ(tcp_from(5, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "its ACK follows the SYN");
	ASSERT_EQ(tcp_from(5, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "and stays");
	ASSERT_EQ(active_of(1), 0, "the old flow ended on 1");
	ASSERT_EQ(active_of(2), 1, "the new one on 2");
	xe_traffic(AIBL_MAP_SVC_STATS, 0, &t1);
	ASSERT_EQ(t1.new_flows - t0.new_flows, 1, "one new flow");
	/* an idle entry whose next segment is not its SYN's ISN + 1 stays */
	ASSERT_OK(xe_ring(0, 0, only1, 1), "ring 1");
	age_conns(2000000000ull);
	ASSERT_EQ(tcp_from(5, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "no new SYN: stays on 2");

	/* a flow re-steered mid-connection (its new backend resets it): its
	 * tuple's next handshake is taken at once, idle or not */
	ASSERT_EQ(syn_from(6, 9, VIP4, 80, &r), 1, "open on 1");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "1 down");
	ASSERT_OK(xe_ring(0, 0, only2, 1), "ring 2");
	ASSERT_EQ(tcp_from(6, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "re-steered to 2");
	ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID), "1 up");
	ASSERT_OK(xe_ring(0, 0, only3, 1), "ring 3");
	ASSERT_EQ(tcp_from(6, 9, VIP4, 80, PKT_TCP_SYN, &r), 3, "its port again: SYN on 3");
	ASSERT_EQ(tcp_from(6, 9, VIP4, 80, PKT_TCP_ACK, &r), 3, "its ACK follows the SYN");

	/* an open entry whose backend went down, its end unseen: the tuple's
	 * next handshake is its SYN's. Re-steered by a fresh choice instead,
	 * its ACK went to 3 while the SYN went to 2 (which then reset it) */
	{
		__s64 a1, a2;

		ASSERT_OK(xe_ring(0, 0, only1, 1), "ring 1");
		ASSERT_EQ(syn_from(7, 9, VIP4, 80, &r), 1, "open on 1");
		a1 = active_of(1);
		a2 = active_of(2);
		ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_DOWN), "1 down");
		ASSERT_OK(xe_ring(0, 0, only2, 1), "ring 2");
		ASSERT_EQ(tcp_from(7, 9, VIP4, 80, PKT_TCP_SYN, &r), 2, "its port again: SYN on 2");
		ASSERT_OK(xe_ring(0, 0, only3, 1), "ring 3");
		ASSERT_EQ(tcp_from(7, 9, VIP4, 80, PKT_TCP_ACK, &r), 2,
			  "backend down: its ACK follows the SYN");
		ASSERT_EQ(tcp_from(7, 9, VIP4, 80, PKT_TCP_ACK, &r), 2, "and stays");
		ASSERT_EQ(active_of(1), a1 - 1, "the old flow counted out of 1");
		ASSERT_EQ(active_of(2), a2 + 1, "the new one counted on 2");
		ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID), "1 up");
	}
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"handshake", test_handshake},
    {"reused_live", test_reused_live},
};

XF_MAIN(cases)
