// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The new-connection rate guard (aibl_globals.max_conn_rate): past the
 * limit new flows take the hash choice without a connection entry, and
 * established flows keep theirs; off, it keeps no state.
 */
#include <stdint.h>
#include "xdp_fixture.h"

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
static bool guard_send(__u32 c, __u16 sport, __u8 flags, __u32 be, const char *desc, bool *tracked)
{
	struct aibl_flow_key fk;
	struct pkt_buf in, exp;
	struct aibl_conn conn;
	char src[INET_ADDRSTRLEN];
	struct in_addr a = {htonl(0xc6120000u + c)};
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

static void test_rate_guard(void)
{
	static __u32 pat[3] = {1, 2, 5};
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
	ASSERT_EQ(xe_active_sum(), N, "only tracked flows count in aibl_load");

	{
		/* a refused handshake counts its flow once, at its ACK: a SYN
		 * flood under the guard inflates no new_flows */
		struct in_addr a = {htonl(0xc6120000u + 600)};
		char src[INET_ADDRSTRLEN];
		struct aibl_traffic t0, t1, t2;
		struct aibl_flow_key fk;
		struct pkt_buf in, exp;

		inet_ntop(AF_INET, &a, src, sizeof(src));
		fk = xe_fk(src, VIP4, 1000, 80, IPPROTO_TCP);
		xe_traffic(AIBL_MAP_SVC_STATS, 0, &t0);
		tcp4(&in, src, VIP4, 1000, 80, PKT_TCP_SYN);
		xe_exp_ipip(&exp, &in, hash_choice(600), NULL, aibl_hash_flow(&fk, XE_SEED));
		if (!expect("guarded syn", &in, XDP_TX, &exp, NULL) ||
		    !expect("guarded syn retransmitted", &in, XDP_TX, &exp, NULL))
			goto out;
		xe_traffic(AIBL_MAP_SVC_STATS, 0, &t1);
		ASSERT_EQ(t1.new_flows - t0.new_flows, 0, "guarded syns: no new flow");
		tcp4(&in, src, VIP4, 1000, 80, PKT_TCP_ACK);
		xe_exp_ipip(&exp, &in, hash_choice(600), NULL, aibl_hash_flow(&fk, XE_SEED));
		if (!expect("guarded ack", &in, XDP_TX, &exp, NULL) ||
		    !expect("guarded data", &in, XDP_TX, &exp, NULL))
			goto out;
		xe_traffic(AIBL_MAP_SVC_STATS, 0, &t2);
		ASSERT_EQ(t2.new_flows - t1.new_flows, 1, "guarded handshake: one new flow");
		/* its SYN, ACK and data refused (the retransmission follows the
		 * record): left out of the tally below */
		untracked += 3;
	}

	/* established flows keep hitting the table while the guard refuses */
	hits = xe_counter(AIBL_CNT_CONN_HIT);
	for (__u32 c = 0; c < N; c++)
		if (!guard_send(c, 1000, PKT_TCP_ACK, hash_choice(c), "established", &tracked) ||
		    !ASSERT_TRUE(tracked, "still tracked"))
			goto out;
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_HIT) - hits, N, "conn_hit for established");

	/* a client port reused while the guard refuses: the tuple's entry
	 * (on x, the hash choice being y) closed by a FIN, or open but idle
	 * for over a second (its end unseen). The new handshake inserts
	 * nothing: its SYN is recorded (and counted untracked, the guard
	 * refusing when it came), and SYN, ACK and later packets all go to
	 * the SYN's choice y, the entry rewritten to y. Unrecorded, the SYN
	 * went to y and the ACK to x. */
	for (int closed = 1; closed >= 0; closed--) {
		__u32 c = 400 + closed, x, y;
		struct aibl_conn set = {}, got;
		struct aibl_flow_key fk;
		struct pkt_buf in, exp;
		struct aibl_traffic t0, t1;
		char src[INET_ADDRSTRLEN], d[64];
		struct in_addr a = {htonl(0xc6120000u + c)};
		__u64 unt = xe_counter(AIBL_CNT_CONN_UNTRACKED);
		const char *how = closed ? "closed" : "ended unseen";

		y = hash_choice(c);
		x = y == pat[0] ? pat[1] : pat[0];
		inet_ntop(AF_INET, &a, src, sizeof(src));
		fk = xe_fk(src, VIP4, 1000, 80, IPPROTO_TCP);
		set.backend = x;
		set.last_seen_ns = 1;
		set.flags = closed ? AIBL_CONN_F_CLOSING | AIBL_CONN_F_FIN : 0;
		if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_CONNS), &fk, &set, BPF_NOEXIST),
			       "entry on x") ||
		    !ASSERT_OK(xe_epoch_bump(), "epoch"))
			goto out;
		xe_traffic(AIBL_MAP_SVC_STATS, 0, &t0);
		snprintf(d, sizeof(d), "guarded reuse (%s): syn and ack to y", how);
		if (!guard_send(c, 1000, PKT_TCP_SYN, y, d, &tracked))
			goto out;
		snprintf(d, sizeof(d), "guarded reuse (%s): entry on y", how);
		ASSERT_TRUE(tracked, d);
		ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &got), "entry");
		snprintf(d, sizeof(d), "guarded reuse (%s): entry open", how);
		ASSERT_EQ(got.flags & AIBL_CONN_F_CLOSING, 0, d);
		tcp4(&in, src, VIP4, 1000, 80, PKT_TCP_ACK);
		xe_exp_ipip(&exp, &in, y, NULL, aibl_hash_flow(&fk, XE_SEED));
		snprintf(d, sizeof(d), "guarded reuse (%s): a later packet to y", how);
		if (!expect(d, &in, XDP_TX, &exp, NULL))
			goto out;
		xe_traffic(AIBL_MAP_SVC_STATS, 0, &t1);
		snprintf(d, sizeof(d), "guarded reuse (%s): one new flow", how);
		ASSERT_EQ(t1.new_flows - t0.new_flows, 1, d);
		snprintf(d, sizeof(d), "guarded reuse (%s): its syn counted untracked", how);
		ASSERT_EQ(xe_counter(AIBL_CNT_CONN_UNTRACKED) - unt, 1, d);
		ASSERT_OK(bpf_map_delete_elem(xe_fd(AIBL_MAP_CONNS), &fk), "drop entry");
		ASSERT_OK(xe_epoch_bump(), "epoch");
	}

	/* an untracked flow's later packets follow its SYN, through its
	 * record (kept: nothing was inserted) */
	miss_mid = xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW);
	hits = xe_counter(AIBL_CNT_SYN_HIT);
	if (!guard_send(N + 1, 1000, PKT_TCP_ACK, hash_choice(N + 1), "untracked ack", &tracked))
		goto out;
	ASSERT_FALSE(tracked, "untracked ack not inserted");
	ASSERT_EQ(xe_counter(AIBL_CNT_SYN_HIT) - hits, 1, "untracked ack: its syn's record");
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW) - miss_mid, 0, "not a midflow miss");
	{
		/* and without a record (lost, or overwritten in a flood): a
		 * midflow miss, to the same hash choice */
		struct in_addr a = {htonl(0xc6120000u + 500)};
		char src[INET_ADDRSTRLEN];
		struct pkt_buf in, exp;
		struct aibl_flow_key fk;

		inet_ntop(AF_INET, &a, src, sizeof(src));
		fk = xe_fk(src, VIP4, 1000, 80, IPPROTO_TCP);
		tcp4(&in, src, VIP4, 1000, 80, PKT_TCP_ACK);
		xe_exp_ipip(&exp, &in, hash_choice(500), NULL, aibl_hash_flow(&fk, XE_SEED));
		if (!expect("untracked ack without record: hash choice", &in, XDP_TX, &exp, NULL))
			goto out;
		ASSERT_EQ(xe_counter(AIBL_CNT_CONN_MISS_MIDFLOW) - miss_mid, 1, "midflow miss");
	}

	/* rr and p2c services under the guard: the hash slot, not their own
	 * (non-deterministic) choice */
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_SRC_IP, 0, 0), "rr vip");
	for (__u32 c = 100; c < 112; c++)
		if (!guard_send(c, 1000, PKT_TCP_SYN, hash_choice(c), "rr guarded: hash slot",
				&tracked) ||
		    !ASSERT_FALSE(tracked, "rr guarded: not inserted"))
			goto out;
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_P2C, AIBL_KEY_SRC_IP, 0, 0),
		  "p2c vip");
	{
		/* backend 1 is expensive: p2c alone would move every client
		 * whose hash slot holds 1 and second candidate another backend */
		struct aibl_cost expensive = {.cost = 1000};
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
	 * two reusing SYNs, the two untracked ACKs */
	ASSERT_EQ(xe_counter(AIBL_CNT_CONN_UNTRACKED) - untracked, 2 * N + 2 + 2 + 2 * 24,
		  "every refused packet counted");

	/* a new window admits again: rr's own choice for a SYN, the hash
	 * choice for a mid-flow miss (it may be a flow the guard refused) */
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_SRC_IP, 0, 0), "rr vip");
	ASSERT_OK(rate_reset(), "new window");
	{
		struct aibl_traffic t0, t1;

		/* N + 1's handshake completed under the guard, counted then;
		 * its record lives on: admitted now, it is inserted, and not
		 * counted a second time */
		xe_traffic(AIBL_MAP_SVC_STATS, 0, &t0);
		if (!guard_send(N + 1, 1000, PKT_TCP_ACK, hash_choice(N + 1),
				"admitted midflow: hash", &tracked))
			goto out;
		ASSERT_TRUE(tracked, "admitted midflow inserted");
		xe_traffic(AIBL_MAP_SVC_STATS, 0, &t1);
		ASSERT_EQ(t1.new_flows - t0.new_flows, 0,
			  "a handshake counted under the guard: not again once admitted");
	}
	{
		__u32 pos = 0, c = 300;
		int ncpu = libbpf_num_possible_cpus();
		__u32 cur[ncpu > 0 ? ncpu : 1];

		/* rr's next slot on this CPU decides; find a client whose hash
		 * slot holds another backend so the two choices differ */
		if (!bpf_map_lookup_elem(xe_fd(AIBL_MAP_RR_POS), &(__u32){0}, cur))
			pos = cur[0];
		while (hash_choice(c) == pat[pos % 3])
			c++;
		if (!guard_send(c, 1000, PKT_TCP_SYN, pat[pos % 3], "admitted syn: rr choice",
				&tracked))
			goto out;
		ASSERT_TRUE(tracked, "admitted syn inserted");
	}
	/* a SYN recorded before the guard engaged: retransmitted while it is
	 * engaged, it follows its record (rr's choice x, not the hash slot),
	 * as the handshake's ACK does */
	{
		__u32 pos = 0, c = 700, x;
		int ncpu = libbpf_num_possible_cpus();
		__u32 cur[ncpu > 0 ? ncpu : 1];
		struct pkt_buf in, exp;
		struct aibl_flow_key fk;
		char src[INET_ADDRSTRLEN];
		struct in_addr a;

		ASSERT_OK(rate_reset(), "new window");
		if (!bpf_map_lookup_elem(xe_fd(AIBL_MAP_RR_POS), &(__u32){0}, cur))
			pos = cur[0];
		x = pat[pos % 3];
		while (hash_choice(c) == x)
			c++;
		a.s_addr = htonl(0xc6120000u + c);
		inet_ntop(AF_INET, &a, src, sizeof(src));
		fk = xe_fk(src, VIP4, 1000, 80, IPPROTO_TCP);
		tcp4(&in, src, VIP4, 1000, 80, PKT_TCP_SYN);
		xe_exp_ipip(&exp, &in, x, NULL, aibl_hash_flow(&fk, XE_SEED));
		if (!expect("recorded syn: rr choice x", &in, XDP_TX, &exp, NULL))
			goto out;
		/* the window filled by N other handshakes: the guard engages */
		ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, 0),
			  "hash vip");
		for (__u32 k = 0; k < N; k++)
			if (!guard_send(800 + k, 1000, PKT_TCP_SYN, hash_choice(800 + k), "fill",
					&tracked))
				goto out;
		if (!guard_send(900, 1000, PKT_TCP_SYN, hash_choice(900), "guard engaged",
				&tracked) ||
		    !ASSERT_FALSE(tracked, "guard engaged: not inserted"))
			goto out;
		if (!expect("retransmitted under the guard: its record's x", &in, XDP_TX, &exp,
			    NULL))
			goto out;
		tcp4(&in, src, VIP4, 1000, 80, PKT_TCP_ACK);
		xe_exp_ipip(&exp, &in, x, NULL, aibl_hash_flow(&fk, XE_SEED));
		{
			struct aibl_traffic t0, t1;

			/* its ACK and later packets: all to x, one new flow */
			xe_traffic(AIBL_MAP_SVC_STATS, 0, &t0);
			for (int k = 0; k < 4; k++)
				if (!expect(k ? "a later packet: x" : "its ACK: x as well", &in,
					    XDP_TX, &exp, NULL))
					goto out;
			xe_traffic(AIBL_MAP_SVC_STATS, 0, &t1);
			ASSERT_EQ(t1.new_flows - t0.new_flows, 1,
				  "the untracked handshake counted once, not at every packet");
		}
	}
out:
	xe_down();
}

static void test_rate_guard_off(void)
{
	static __u32 pat[3] = {1, 2, 5};
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
	ASSERT_EQ(xe_active_sum(), 300, "every flow counted");
	{
		/* a SYN never reads or writes the connection table: one on
		 * the tuple of a tracked flow (spoofed, or the tuple reused
		 * without a close seen) takes a new choice and cannot move
		 * or refresh the flow, whose packets keep its entry x */
		__u32 x = hash_choice(0) == pat[0] ? pat[1] : pat[0];
		struct in_addr a = {htonl(0xc6120000u)};
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

		ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_RATE), &(__u32){0}, v), "read");
		for (int i = 0; i < ncpu; i++)
			sum += v[i].count + v[i].window_start_ns;
		ASSERT_EQ(sum, 0, "no window kept");
	}
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"rate_guard", test_rate_guard},
    {"rate_guard_off", test_rate_guard_off},
};

XF_MAIN(cases)
