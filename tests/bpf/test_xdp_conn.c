// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The connection table: established flows stay on their backend across a
 * table flip and while it drains or is overloaded, move when it goes down;
 * active flows are counted from the handshake to FIN/RST; a stateless
 * service keeps no entries.
 */
#include "xdp_fixture.h"

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
	ASSERT_EQ(xe_counter(AIBL_CNT_SYN_HIT), 40,
		  "every handshake completed on its syn's backend");
out:
	xe_down();
}

static void test_conn_resteer(void)
{
	static __u32 pat[2] = {1, 2};
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

/*
 * aibld's reconcile (dp__load_reconcile): counts that drifted (spoofed or
 * evicted flows, an entry deleted from outside) are set back to the open
 * TCP entries of each backend; closing entries and UDP flows do not count.
 */
static void test_load_reconcile(void)
{
	struct aibl_flow_key fk = xe_fk("198.18.0.2", VIP4, 5, 80, IPPROTO_TCP);
	struct aibl_load drift = {.active = 3034}, l;
	struct pkt_buf in;
	struct xe_result r;
	__u32 one = 1, two = 2;

	if (!std_env())
		goto out;
	for (int c = 0; c < 10; c++)
		ASSERT_EQ(syn_from(c, 5, VIP4, 80, &r), 1, "flow on 1");
	ASSERT_EQ(tcp_from(9, 5, VIP4, 80, PKT_TCP_FIN | PKT_TCP_ACK, &r), 1, "one closing");
	in_v4_udp_wild(&in);
	xe_run(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "a udp flow on 2");
	/* drift: a count far off, an entry gone without its FIN */
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &drift, 0), "drift 1");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &two, &drift, 0), "drift 2");
	ASSERT_OK(bpf_map_delete_elem(xe_fd(AIBL_MAP_CONNS), &fk), "evicted");
	ASSERT_EQ(dp__load_reconcile(xe_fd(AIBL_MAP_CONNS), xe_fd(AIBL_MAP_LOAD), 64), 2,
		  "two counts corrected");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 8, "1: ten flows, one closing, one gone");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l);
	ASSERT_EQ(l.active, 0, "2: udp does not count");
	ASSERT_EQ(dp__load_reconcile(xe_fd(AIBL_MAP_CONNS), xe_fd(AIBL_MAP_LOAD), 64), 0,
		  "nothing left to correct");
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"load_reconcile", test_load_reconcile},  {"conn_sticky_table_flip", test_conn_sticky_flip},
    {"conn_resteer_down", test_conn_resteer}, {"conn_active_accounting", test_conn_accounting},
    {"no_conntrack", test_no_conntrack},
};

XF_MAIN(cases)
