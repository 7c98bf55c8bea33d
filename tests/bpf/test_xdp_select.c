// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A new flow's backend: the Maglev slot of the client's hash in weight
 * proportions, rr in table order, p2c by cost and active flows, bounded
 * load past draining and overloaded backends, and session pins ahead of
 * all of them while they are live and their backend takes new flows.
 * Cluster mode (AIBL_G_F_CLUSTER): p2c on the controller's costs alone and
 * the same choice for a mid-flow miss, rr as the hash slot. An ai service's
 * client follows its last p2c choice for a while (client affinity).
 */
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include "xdp_fixture.h"
#include "maps.h"
#include "affinity.h"
#include "../../user/aibld/aibld.h"

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void test_sel_hash_weights(void)
{
	static __u32 pat[6] = {1, 2, 2, 5, 5, 5}; /* weights 1:2:3 */
	struct xe_result r;
	int n[XE_NBE] = {0}, N = 3000;
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

static void test_sel_rr(void)
{
	static __u32 pat[4] = {1, 1, 2, 5};
	static const int order[8] = {1, 1, 2, 5, 1, 1, 2, 5};
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

/* a p2c service on VIP4:80 over the ring pattern pat, backends 1 and 2
 * priced c1 and c2 */
static bool p2c_env(const __u32 *pat, __u32 n, const struct aibl_cost *c1,
		    const struct aibl_cost *c2)
{
	__u32 one = 1, two = 2;

	return std_env() &&
	       ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_P2C, AIBL_KEY_SRC_IP, 0, 0),
			 "p2c vip") &&
	       ASSERT_OK(xe_ring(0, 0, pat, n), "ring") &&
	       ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &one, c1, 0), "cost1") &&
	       ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, c2, 0), "cost2");
}

static void test_sel_p2c(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_cost c1 = {.cost = 10}, c2 = {.cost = 0};
	__u32 one = 1, two = 2;
	struct xe_result r;
	int differ = 0, to2 = 0;

	if (!p2c_env(pat, 2, &c1, &c2))
		goto out;
	for (int c = 0; c < 200; c++) {
		__u32 h = client_hash(c);
		__u32 a = xe_ring_get(0, 0, h % AIBL_RING_SIZE);
		__u32 b = xe_ring_get(0, 0, aibl_hash_second(h) % AIBL_RING_SIZE);
		int be = syn_from(c, 1000, VIP4, 80, &r);

		/* a == b: the second candidate is the next other backend on
		 * the ring (sel_p2c_distinct) */
		if (a != b) {
			differ++;
			/* backend 2 gains active flows: 10 of them tip it over */
			to2 += be == 2;
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

/* p2c's second candidate is never its first: a backend with a small share
 * of the ring is still compared with the big one on every new flow */
static void test_sel_p2c_distinct(void)
{
	static __u32 pat[8] = {1, 1, 1, 1, 1, 1, 1, 2};
	struct aibl_cost c1 = {.cost = 1000}, c2 = {.cost = 0};
	struct xe_result r;
	int same = 0;

	if (!p2c_env(pat, 8, &c1, &c2))
		goto out;
	for (int c = 0; c < 100; c++) {
		__u32 h = client_hash(c);

		same += xe_ring_get(0, 0, h % AIBL_RING_SIZE) ==
			xe_ring_get(0, 0, aibl_hash_second(h) % AIBL_RING_SIZE);
		if (!ASSERT_EQ(syn_from(c, 1000, VIP4, 80, &r), 2,
			       "the cheap small one every time"))
			goto out;
	}
	ASSERT_GE(same, 50, "most flows drew backend 1 twice from the ring");
	ASSERT_EQ(xe_counter(AIBL_CNT_PROBE), 0, "skipping the first candidate is no probe");
out:
	xe_down();
}

/* ai's cost (aibl_cost.per_flow > 0): ms, free slots, then per_flow per flow */
static void test_sel_p2c_slots(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_cost c1 = {.cost = 100, .free = 2, .per_flow = 50};
	struct aibl_cost c2 = {.cost = 275, .free = 65535, .per_flow = 1};
	__u32 one = 1;
	struct aibl_load l;
	struct xe_result r;

	if (!p2c_env(pat, 2, &c1, &c2))
		goto out;
	/* backend 1 costs 100 ms while 2 flows run, +50 for each one beyond:
	 * 100, 100, 100, 150, 200, 250 < 275, then 300 > 275 */
	for (int c = 0; c < 6; c++)
		if (!ASSERT_EQ(syn_from(c, 1000, VIP4, 80, &r), 1, "fast node while it has room"))
			goto out;
	for (int c = 6; c < 10; c++)
		if (!ASSERT_EQ(syn_from(c, 1000, VIP4, 80, &r), 2, "slower idle node past 275 ms"))
			goto out;
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 6, "six flows on the fast node");
out:
	xe_down();
}

/*
 * A SYN flood (spoofed, never completed) adds a prompt's prefill for each
 * SYN p2c places: its wait goes no further than the flows counted there,
 * and once its SYNs age out (one to two epochs) nothing of it is left to
 * price, so the node is not avoided for hours, nor is a node that missed
 * the flood chosen by every new session meanwhile.
 */
static void test_sel_p2c_prefill_flood(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_cost fast = {.cost = 100, .free = 8, .per_flow = 50, .prefill_ms = 100};
	struct aibl_cost slow = {.cost = 250, .free = 8, .per_flow = 50, .prefill_ms = 250};
	struct aibl_load l1 = {};
	__u32 one = 1, two = 2;
	struct xe_result r;

	if (!p2c_env(pat, 2, &fast, &slow))
		goto out;
	/* what an hour of flood would have left without the bound */
	l1.prefill_until_ns = mono_ns() + 3600ULL * 1000000000ULL;
	if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1, 0), "load1"))
		goto out;
	ASSERT_EQ(syn_from(0, 1000, VIP4, 80, &r), 1, "no flow counted: no prompt waits there");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1);
	ASSERT_LE(l1.prefill_until_ns, mono_ns() + 100 * 1000000ULL,
		  "one flow counted: one prompt's wait, not an hour");
	/* a flood of 40 SYNs never completed, all to the fast node (the slow
	 * one priced out meanwhile): they price it while they count ... */
	slow.cost = 60000;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, &slow, 0), "cost2");
	for (int c = 1; c < 41; c++)
		tcp_from(c, 2000 + c, VIP4, 80, PKT_TCP_SYN, &r);
	slow.cost = 250;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, &slow, 0), "cost2");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1);
	ASSERT_GE(l1.prefill_until_ns, mono_ns() + 2000 * 1000000ULL, "the flood's prompts wait");
	ASSERT_LE(l1.prefill_until_ns, mono_ns() + 41 * 100 * 1000000ULL,
		  "a prompt a flow, no more");
	ASSERT_EQ(syn_from(2, 3000, VIP4, 80, &r), 2, "while they count, the slow node");
	/* ... and no longer once they have aged out (two epochs of 67 ms) */
	usleep(2 * ((1U << AIBL_SYN_EPOCH_SHIFT) / 1000) + 20000);
	ASSERT_EQ(syn_from(9, 1000, VIP4, 80, &r), 1, "aged out: the fast node again");
out:
	xe_down();
}

/*
 * Where a node's prefills take turns on its compute (aibl_cost.prefill_ms),
 * each new session sent there by p2c adds its prompt's prefill to what the
 * next one waits, free slots or not; a pinned session's turn (its prompt
 * cached there) adds none, and the wait wears off as the compute works.
 */
static void test_sel_p2c_prefill(void)
{
	static __u32 pat[2] = {1, 2};
	/* a fast node at 100 ms and a slow one at 250, slots free at both;
	 * a new prompt takes 100 ms of the fast one's compute, 250 of the
	 * slow one's */
	struct aibl_cost fast = {.cost = 100, .free = 8, .per_flow = 50, .prefill_ms = 100};
	struct aibl_cost slow = {.cost = 250, .free = 8, .per_flow = 50, .prefill_ms = 250};
	static const int want[5] = {1, 1, 2, 1, 1};
	struct aibl_pin_key k = {.svc_id = 0, .family = AIBL_AF_INET};
	struct aibl_pin v = {.backend = 2};
	struct aibl_load l1, l2, l;
	__u32 one = 1, two = 2;
	struct xe_result r;

	if (!p2c_env(pat, 2, &fast, &slow))
		goto out;
	/* fast 100 < 250; 200 < 250; 300 > 250: slow; then fast 300 < 500,
	 * 400 < 500 */
	for (int c = 0; c < 5; c++) {
		char d[48];

		snprintf(d, sizeof(d), "new session %d", c);
		if (!ASSERT_EQ(syn_from(c, 1000, VIP4, 80, &r), want[c], d))
			goto out;
	}
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l2);
	ASSERT_GE(l1.prefill_until_ns, mono_ns() + 300 * 1000000ULL,
		  "four prompts at the fast node");
	ASSERT_LE(l1.prefill_until_ns, mono_ns() + 400 * 1000000ULL, "four prompts, not more");

	/* a pinned turn adds no prefill where it is pinned */
	xe_addr(&k.client, AIBL_AF_INET, "198.18.0.1");
	if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY), "pin") ||
	    !ASSERT_OK(xe_pin_filter(), "filter"))
		goto out;
	ASSERT_EQ(syn_from(1, 2000, VIP4, 80, &r), 2, "pinned");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l);
	ASSERT_EQ(l.prefill_until_ns, l2.prefill_until_ns, "the pinned turn added none");

	/* the fast node's compute has worked its prompts off */
	l1.prefill_until_ns = 0;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1, 0), "load1");
	ASSERT_EQ(syn_from(9, 1000, VIP4, 80, &r), 1, "the fast node again");

	/* prefill_ms 0 (prefills in slots of their own): free slots decide */
	fast.prefill_ms = slow.prefill_ms = 0;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &one, &fast, 0), "cost1");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, &slow, 0), "cost2");
	for (int c = 10; c < 14; c++)
		if (!ASSERT_EQ(syn_from(c, 1000, VIP4, 80, &r), 1, "free slots: the fast node"))
			goto out;
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_LE(l.prefill_until_ns, mono_ns() + 100 * 1000000ULL, "and no prefill added");
out:
	xe_down();
}

/*
 * Equal prices (ai's nodes of one speed with free slots): the candidate with
 * fewer flows. One client's flows (a NAT address's sessions) share a key
 * hash, so both candidates, and all took the first one while it had room.
 */
static void test_sel_p2c_tie(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_cost c = {.cost = 100, .free = 8, .per_flow = 50};
	struct aibl_load l1, l2;
	__u32 one = 1, two = 2;
	struct xe_result r;
	int to[3] = {};

	if (!p2c_env(pat, 2, &c, &c))
		goto out;
	for (int i = 0; i < 8; i++) {
		int be = syn_from(7, 1000 + i, VIP4, 80, &r);

		if (!ASSERT_TRUE(be == 1 || be == 2, "forwarded"))
			goto out;
		to[be]++;
	}
	ASSERT_EQ(to[1], 4, "one client's flows: half on backend 1");
	ASSERT_EQ(to[2], 4, "and half on backend 2");
	/* a difference in price still decides before the counts */
	c.cost = 99;
	bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &one, &c, 0);
	for (int i = 8; i < 12; i++)
		if (!ASSERT_EQ(syn_from(7, 1000 + i, VIP4, 80, &r), 1, "cheaper, more flows"))
			goto out;
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l2);
	ASSERT_EQ(l1.active, 8, "backend 1: its four and the cheaper four");
	ASSERT_EQ(l2.active, 4, "backend 2: four");
out:
	xe_down();
}

/*
 * An overloaded candidate loses to one that is not, unless both are priced
 * by ai (per_flow > 0): the queue that overloads a node is in its price,
 * and a slower node that is not overloaded takes a flow only when it is
 * expected to answer sooner (a CPU node beside GPU nodes whose KV caches
 * are full and requests wait).
 */
/* p2c over backends 1 and 2 at costs c1 and c2, backend 1 overloaded */
static bool overloaded_env(const struct aibl_cost *c1, const struct aibl_cost *c2)
{
	static __u32 pat[2] = {1, 2};

	return p2c_env(pat, 2, c1, c2) &&
	       ASSERT_OK(xe_be_flags(1, AIBL_BE_F_VALID | AIBL_BE_F_OVERLOADED), "overload 1");
}

/* n new flows, from client `from` on, all to backend `want` */
static bool flows_to(int from, int n, int want, const char *what)
{
	struct xe_result r;

	for (int c = from; c < from + n; c++)
		if (!ASSERT_EQ(syn_from(c, 1000, VIP4, 80, &r), want, what))
			return false;
	return true;
}

static void test_sel_p2c_overloaded(void)
{
	struct aibl_cost gpu = {.cost = 300, .free = 0, .per_flow = 50};
	struct aibl_cost cpu = {.cost = 900, .free = 0, .per_flow = 900};
	struct aibl_cost flows1 = {.cost = 0}, flows2 = {.cost = 50};
	__u32 one = 1;
	struct aibl_load l;

	/* 300, 350, ... 850 < 900: twelve flows queue at the overloaded fast
	 * node, then at 900 against 900 the slower one takes one */
	if (!overloaded_env(&gpu, &cpu) || !flows_to(0, 12, 1, "overloaded, still sooner") ||
	    !flows_to(12, 1, 2, "the slower node once it is sooner"))
		goto out;
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.active, 12, "twelve flows on the overloaded node");
	xe_down();

	/* priced in flows (least_conn, least_time): the flag decides */
	if (!overloaded_env(&flows1, &flows2) ||
	    !flows_to(0, 20, 2, "flows: the one not overloaded"))
		goto out;
	xe_down();

	/* one priced in ms, one in flows: the units do not compare, the flag
	 * decides */
	if (overloaded_env(&gpu, &flows2))
		flows_to(0, 20, 2, "mixed: the one not overloaded");
out:
	xe_down();
}

/*
 * A burst of SYNs that arrive before any of their handshakes completes: each
 * sees the ones before it (aibl_load.syn_new), so they do not all go to the
 * candidate that was cheapest when the burst began. Their ACKs move them
 * into active; a retransmitted SYN is not counted twice.
 */
static void test_sel_p2c_burst(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_cost c1 = {.cost = 0}, c2 = {.cost = 3};
	struct aibl_load l1, l2;
	__u32 one = 1, two = 2;
	struct xe_result r;
	int to[3] = {}, n = 0;

	if (!p2c_env(pat, 2, &c1, &c2))
		goto out;
	for (int c = 0; n < 8; c++) {
		__u32 h = client_hash(c);
		int be;

		if (xe_ring_get(0, 0, h % AIBL_RING_SIZE) ==
		    xe_ring_get(0, 0, aibl_hash_second(h) % AIBL_RING_SIZE))
			continue; /* not a two-candidate flow */
		be = tcp_from(c, 1000, VIP4, 80, PKT_TCP_SYN, &r);
		if (!ASSERT_TRUE(be == 1 || be == 2, "SYN forwarded"))
			goto out;
		to[be]++;
		ASSERT_EQ(tcp_from(c, 1000, VIP4, 80, PKT_TCP_SYN, &r), be, "retransmit: same");
		n++;
	}
	/* backend 1 costs 0 + its handshakes, 2 costs 3: 1 takes the first
	 * three or four, then they alternate */
	ASSERT_GE(to[2], 2, "the burst spreads");
	ASSERT_GE(to[1], 3, "the cheaper one takes more");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l2);
	ASSERT_EQ(l1.syn_new + l1.syn_old, to[1], "backend 1: begun handshakes, once each");
	ASSERT_EQ(l2.syn_new + l2.syn_old, to[2], "backend 2: begun handshakes, once each");
	ASSERT_EQ(l1.active + l2.active, 0, "none open yet");
	for (int c = 0, k = 0; k < n; c++) {
		__u32 h = client_hash(c);

		if (xe_ring_get(0, 0, h % AIBL_RING_SIZE) ==
		    xe_ring_get(0, 0, aibl_hash_second(h) % AIBL_RING_SIZE))
			continue;
		ack_from(c, 1000, VIP4, 80, &r);
		k++;
	}
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l1);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &two, &l2);
	ASSERT_EQ(l1.active, to[1], "backend 1: open flows");
	ASSERT_EQ(l2.active, to[2], "backend 2: open flows");
	ASSERT_EQ(l1.syn_new + l1.syn_old + l2.syn_new + l2.syn_old, 0,
		  "no handshake left counted");
out:
	xe_down();
}

/*
 * A handshake's ACK takes back its own SYN's count, not another's: a slow
 * client's SYN stops counting after two epochs (134 ms), and its ACK then
 * must leave the counts of the SYNs since alone. Before, it took one of
 * theirs, and a burst behind slow clients herded onto one node again.
 */
static void test_sel_p2c_syn_own_count(void)
{
	static __u32 pat[2] = {1, 1}; /* one backend: nothing to spread to */
	struct aibl_cost c1 = {.cost = 0}, c2 = {.cost = 0};
	struct aibl_load l;
	__u32 one = 1;
	struct xe_result r;
	int a = 0, b = 1, d = 2;

	if (!p2c_env(pat, 2, &c1, &c2))
		goto out;
	ASSERT_EQ(tcp_from(a, 1000, VIP4, 80, PKT_TCP_SYN, &r), 1, "slow client's SYN");
	usleep(150 * 1000); /* past two epochs: its count aged out */
	ASSERT_EQ(tcp_from(b, 1000, VIP4, 80, PKT_TCP_SYN, &r), 1, "a SYN since");
	ASSERT_EQ(tcp_from(d, 1000, VIP4, 80, PKT_TCP_SYN, &r), 1, "another");
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.syn_new + l.syn_old, 2, "the two recent handshakes count");
	ack_from(a, 1000, VIP4, 80, &r);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.syn_new + l.syn_old, 2, "the slow one's ACK leaves them counted");
	ASSERT_EQ(l.active, 1, "and it is open");
	ack_from(b, 1000, VIP4, 80, &r);
	ack_from(d, 1000, VIP4, 80, &r);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &one, &l);
	ASSERT_EQ(l.syn_new + l.syn_old, 0, "each ACK its own");
	ASSERT_EQ(l.active, 3, "three open");
out:
	xe_down();
}

/*
 * Cluster mode: every balancer of the group must make the same choice from
 * the same tables and costs, and a flow moved to another balancer mid-way
 * (a connection-table miss without SYN) must find it again. So p2c ignores
 * this balancer's active flows, and a mid-flow miss re-runs p2c instead of
 * taking the hash slot; rr walks nothing (local position): the hash slot.
 */
static void test_sel_cluster(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_cost c1 = {.cost = 10}, c2 = {.cost = 0};
	struct aibl_load heavy = {.active = 1000};
	__u32 two = 2;
	struct xe_result r;
	int differ = 0, bad_syn = 0, bad_miss = 0, bad_rr = 0;

	if (!p2c_env(pat, 2, &c1, &c2))
		goto out;
	xe_glob.flags |= AIBL_G_F_CLUSTER;
	if (!ASSERT_OK(xe_globals_write(), "cluster flag") ||
	    /* backend 2 already has many flows here: a single host would stop
	     * sending it more, a balancer of a group must not look */
	    !ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &two, &heavy, 0), "load2"))
		goto out;
	for (int c = 0; c < 200; c++) {
		__u32 h = client_hash(c);
		__u32 a = xe_ring_get(0, 0, h % AIBL_RING_SIZE);
		__u32 b = xe_ring_get(0, 0, aibl_hash_second(h) % AIBL_RING_SIZE);
		/* the second candidate is always the other backend */
		int want = 2;

		differ += a != b;
		bad_syn += syn_from(c, 1000, VIP4, 80, &r) != want;
		/* the same client's other flow, first seen mid-way (moved here) */
		bad_miss += ack_from(c, 2000, VIP4, 80, &r) != want;
	}
	ASSERT_GE(differ, 50, "enough two-candidate flows");
	ASSERT_EQ(bad_syn, 0, "new flows: the lower plan cost, whatever the active flows");
	ASSERT_EQ(bad_miss, 0, "mid-flow misses: the same p2c choice");

	/* rr: the hash slot, new flow or mid-flow miss alike */
	if (!ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_RR, AIBL_KEY_SRC_IP, 0, 0),
		       "rr vip"))
		goto out;
	for (int c = 300; c < 400; c++) {
		int want = (int)xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE);

		bad_rr += syn_from(c, 1000, VIP4, 80, &r) != want;
		bad_rr += ack_from(c, 2000, VIP4, 80, &r) != want;
	}
	ASSERT_EQ(bad_rr, 0, "rr in cluster mode: the hash slot");
out:
	xe_down();
}

static void test_sel_bounded(void)
{
	static __u32 pat[3] = {1, 2, 5};
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

/* ---------------- session pins ---------------- */

static int pin_set(__u32 svc, const char *client, __u32 be, __u64 expires)
{
	struct aibl_pin_key k = {.svc_id = svc, .family = AIBL_AF_INET};
	struct aibl_pin v = {.backend = be, .expires_ns = expires};

	xe_addr(&k.client, AIBL_AF_INET, client);
	if (bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY))
		return -errno;
	return xe_pin_filter();
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

/* in p2c mode a pin with spill_ms yields while its node's queue is that
 * much longer than the p2c choice's */
static void test_pin_spill(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_cost c1 = {.cost = 100, .free = 0, .per_flow = 100};
	struct aibl_cost c2 = {.cost = 400, .free = 65535, .per_flow = 1};
	struct aibl_pin_key k = {.svc_id = 0, .family = AIBL_AF_INET};
	struct aibl_pin v = {.backend = 1, .spill_ms = 500};
	struct aibl_load l = {.active = 4};
	__u32 one = 1;
	struct xe_result r;

	if (!p2c_env(pat, 2, &c1, &c2) ||
	    !ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l, 0), "load1"))
		goto out;
	xe_addr(&k.client, AIBL_AF_INET, "198.18.0.1");
	if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY), "pin") ||
	    !ASSERT_OK(xe_pin_filter(), "filter"))
		goto out;
	/* 4 flows queue at backend 1: 400 ms of queue vs none, within 500 */
	ASSERT_EQ(syn_from(1, 1, VIP4, 80, &r), 1, "queue within spill_ms: pinned");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_HIT), 1, "pin_hit");
	/* now 5 (the flow above): 500 ms, not more than spill_ms */
	ASSERT_EQ(syn_from(1, 2, VIP4, 80, &r), 1, "exactly spill_ms: pinned");
	/* 6: 600 ms more queue than backend 2's */
	ASSERT_EQ(syn_from(1, 3, VIP4, 80, &r), 2, "queue beyond spill_ms: spilled");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_SKIP), 1, "pin_skip");
	/* spill_ms 0: the pin always wins */
	v.spill_ms = 0;
	bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY);
	ASSERT_EQ(syn_from(1, 4, VIP4, 80, &r), 1, "spill_ms 0: pinned");
out:
	xe_down();
}

/*
 * A pin to a node of a slower tier (AIBL_PIN_F_SLOWER) yields to a p2c
 * choice that is cheaper and has a free slot now; while that choice would
 * queue the flow, or costs more, the pin holds.
 */
static void test_pin_slower(void)
{
	static __u32 pat[2] = {1, 2};
	struct aibl_cost fast = {.cost = 260, .free = 2, .per_flow = 30};
	struct aibl_cost slow = {.cost = 650, .free = 6, .per_flow = 80};
	struct aibl_pin_key k = {.svc_id = 0, .family = AIBL_AF_INET};
	struct aibl_pin v = {.backend = 2, .spill_ms = 500, .flags = AIBL_PIN_F_SLOWER};
	struct aibl_load l = {.active = 2};
	__u32 one = 1, two = 2;
	struct xe_result r;

	if (!p2c_env(pat, 2, &fast, &slow))
		goto out;
	xe_addr(&k.client, AIBL_AF_INET, "198.18.0.1");
	if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY), "pin") ||
	    !ASSERT_OK(xe_pin_filter(), "filter"))
		goto out;
	/* two flows run at the fast node, a third still has a slot */
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l, 0), "load fast");
	ASSERT_EQ(syn_from(1, 1, VIP4, 80, &r), 1, "slower pin: the fast node's free slot");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_SKIP), 1, "pin_skip");
	/* now three: the next flow would wait there, so the cache wins */
	ASSERT_EQ(syn_from(1, 2, VIP4, 80, &r), 2, "fast node full: pinned");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_HIT), 1, "pin_hit");

	/* room again; the same pin without the flag holds (queues, not speeds) */
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l, 0), "load fast");
	v.flags = 0;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY), "pin, no flag");
	ASSERT_EQ(syn_from(1, 3, VIP4, 80, &r), 2, "no flag: pinned");

	/* flagged, but the pinned node is the cheaper one: it holds */
	v.flags = AIBL_PIN_F_SLOWER;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY), "pin, flag");
	slow.cost = 200;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, &slow, 0), "cost2");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l, 0), "load fast");
	ASSERT_EQ(syn_from(1, 4, VIP4, 80, &r), 2, "pinned node cheaper: pinned");

	/* spill_ms 0 (never by queue) does not keep a session on a slower tier */
	slow.cost = 650;
	v.spill_ms = 0;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, &slow, 0), "cost2");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY), "pin, spill 0");
	ASSERT_EQ(syn_from(1, 5, VIP4, 80, &r), 1, "spill_ms 0, slower: the free fast slot");
out:
	xe_down();
}

/* aibld's pin writer: a pin whose flags or spill_ms change is rewritten
 * even when its backend and expiry stay (tables__sync_pins) */
static void test_pin_sync(void)
{
	struct aibld d = {};
	struct pin_ent p = {.key = {.svc_id = 0, .family = AIBL_AF_INET}};
	struct aibl_pin v;

	if (!std_env())
		goto out;
	d.fd_pins = xe_fd(AIBL_MAP_PINS);
	d.fd_filter = xe_fd(AIBL_MAP_FILTER);
	xe_addr(&p.key.client, AIBL_AF_INET, "198.18.0.1");
	p.val = (struct aibl_pin){.backend = 2, .spill_ms = 500, .expires_ns = mono_ns() + 60e9};
	if (!ASSERT_OK(tables__sync_pins(&d, &p, 1), "write"))
		goto out;
	p.val.flags = AIBL_PIN_F_SLOWER;
	ASSERT_OK(tables__sync_pins(&d, &p, 1), "flag it");
	ASSERT_OK(bpf_map_lookup_elem(d.fd_pins, &p.key, &v), "lookup");
	ASSERT_EQ(v.flags, AIBL_PIN_F_SLOWER, "the flag reached the map");
	p.val.spill_ms = 0;
	ASSERT_OK(tables__sync_pins(&d, &p, 1), "spill 0");
	ASSERT_OK(bpf_map_lookup_elem(d.fd_pins, &p.key, &v), "lookup");
	ASSERT_EQ(v.spill_ms, 0, "so did spill_ms");
	ASSERT_EQ(syn_from(1, 1, VIP4, 80, &(struct xe_result){}), 2, "the pin steers");
	ASSERT_OK(tables__sync_pins(&d, NULL, 0), "none wanted");
	ASSERT_ERR(bpf_map_lookup_elem(d.fd_pins, &p.key, &v), "deleted");

	/* writes that fail (a read-only fd of the map): the mirror keeps what
	 * the map holds, so the pin is deleted once writes work again */
	p.val.backend = 2;
	ASSERT_OK(tables__sync_pins(&d, &p, 1), "pinned again");
	{
		int rw = d.fd_pins, rdonly = xe_map_rdonly(rw);

		if (!ASSERT_GE(rdonly, 0, "read-only fd"))
			goto out;
		d.fd_pins = rdonly;
		p.val.backend = 3;
		ASSERT_ERR(tables__sync_pins(&d, &p, 1), "moved: the write fails");
		ASSERT_TRUE(d.npins == 1 && d.pins[0].val.backend == 2,
			    "the mirror holds what the map holds");
		ASSERT_ERR(tables__sync_pins(&d, NULL, 0), "none wanted: the delete fails");
		ASSERT_EQ(d.npins, 1, "still in the mirror");
		d.fd_pins = rw;
		close(rdonly);
		ASSERT_OK(tables__sync_pins(&d, NULL, 0), "writes work again");
		ASSERT_ERR(bpf_map_lookup_elem(d.fd_pins, &p.key, &v), "deleted at last");
		ASSERT_EQ(d.npins, 0, "the mirror empty");
	}
out:
	free(d.pins);
	xe_down();
}

/* ---------------- client affinity ---------------- */

static int aff_member(__u32 be, __u32 slots)
{
	struct aibl_member_key k = {.svc_id = 0, .backend = be};
	struct aibl_member v = {.weight = 1, .slots = slots};

	return bpf_map_update_elem(xe_fd(AIBL_MAP_MEMBERS), &k, &v, BPF_ANY) ? -errno : 0;
}

/* syn_from()'s client c, and its affinity's bucket for service 0 */
static __u32 aff_client(__u32 c, union aibl_addr *addr)
{
	struct in_addr a = {htonl(0xc6120000u + c)};

	memset(addr, 0, sizeof(*addr));
	memcpy(addr, &a, sizeof(a));
	return aibl_affinity_index(0, addr, AIBL_AF_INET);
}

/* client c's bucket (at *idx) and its way there (*way, -1 none) */
static int aff_bucket(__u32 c, union aibl_addr *addr, __u32 *idx, struct aibl_affinity_bucket *b,
		      int *way)
{
	*idx = aff_client(c, addr);
	if (bpf_map_lookup_elem(xe_fd(AIBL_MAP_AFFINITY), idx, b))
		return -errno;
	*way = test_affinity__way(b, 0, AIBL_AF_INET, addr);
	return 0;
}

static int aff_get(__u32 c, struct aibl_affinity *v)
{
	struct aibl_affinity_bucket b;
	union aibl_addr addr;
	int err, way;
	__u32 idx;

	err = aff_bucket(c, &addr, &idx, &b, &way);
	if (err)
		return err;
	if (way < 0)
		return -ENOENT;
	*v = b.way[way];
	return 0;
}

/* client c's affinity, in its own way, else the bucket's first empty one */
static int aff_set(__u32 c, __u32 be, __u64 expires)
{
	struct aibl_affinity a = {.backend = be, .family = AIBL_AF_INET, .expires_ns = expires};
	struct aibl_affinity_bucket b;
	int err, way;
	__u32 idx;

	err = aff_bucket(c, &a.client, &idx, &b, &way);
	if (!err)
		err = test_affinity__put(&b, &a);
	if (err)
		return err;
	return bpf_map_update_elem(xe_fd(AIBL_MAP_AFFINITY), &idx, &b, BPF_ANY) ? -errno : 0;
}

/* an ai service (p2c over backends 1 and 2, both members, priced c1 and
 * c2) with client affinity: 60 s, a spill of 500 ms */
static bool aff_env(struct aibl_cost c1, struct aibl_cost c2)
{
	static __u32 pat[2] = {1, 2};

	if (!p2c_env(pat, 2, &c1, &c2) ||
	    !ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_P2C, AIBL_KEY_SRC_IP, 0,
			      AIBL_VIP_F_AFFINITY),
		       "affinity vip") ||
	    !ASSERT_OK(aff_member(1, 100), "member 1") ||
	    !ASSERT_OK(aff_member(2, 100), "member 2"))
		return false;
	xe_glob.affinity_ms = 60000;
	xe_glob.affinity_spill_ms = 500;
	return ASSERT_OK(xe_globals_write(), "globals");
}

/*
 * An ai service's client (AIBL_VIP_F_AFFINITY) sends its next new flow
 * where p2c sent its last one, within affinity_ms, unless the wait there is
 * affinity_spill_ms longer than at the p2c choice: a NAT address's
 * sessions stay with the prefixes they share. A session pin wins over it,
 * and it is not followed to a backend that left the service's table, once
 * it lapsed, with affinity_ms 0, for a service without the flag, or in
 * cluster mode.
 */
static void test_sel_affinity(void)
{
	static __u32 pat[2] = {1, 2}, only1[1] = {1};
	struct aibl_cost c1 = {.cost = 100, .free = 8, .per_flow = 100};
	struct aibl_cost c2 = {.cost = 150, .free = 8, .per_flow = 100};
	struct aibl_load l = {.active = 14};
	__u32 one = 1;
	struct aibl_affinity a;
	struct xe_result r;

	if (!aff_env(c1, c2))
		goto out;

	ASSERT_EQ(syn_from(1, 1, VIP4, 80, &r), 1, "first flow: the p2c choice");
	if (!ASSERT_OK(aff_get(1, &a), "affinity learnt") || !ASSERT_EQ(a.backend, 1, "to 1"))
		goto out;
	/* backend 1 now costs more: p2c would take 2, the client stays */
	c1.cost = 300;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &one, &c1, 0), "cost1");
	ASSERT_EQ(syn_from(1, 2, VIP4, 80, &r), 1, "second flow follows the first");
	ASSERT_EQ(xe_counter(AIBL_CNT_AFFINITY_HIT), 1, "affinity_hit");
	{
		struct aibl_flow_key fk = xe_fk("198.18.0.1", VIP4, 2, 80, IPPROTO_TCP);
		struct aibl_conn c;

		ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &c), "conn");
		ASSERT_EQ(c.flags & AIBL_CONN_F_PINNED, 0, "not a session pin");
	}
	ASSERT_EQ(syn_from(2, 1, VIP4, 80, &r), 2, "another client: the p2c choice");

	/* 14 flows at backend 1, 8 free slots: 600 ms of queue, more than
	 * 500 beyond backend 2's none */
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l, 0), "load1");
	ASSERT_EQ(syn_from(1, 3, VIP4, 80, &r), 2, "a queue beyond the spill: p2c");
	ASSERT_EQ(xe_counter(AIBL_CNT_AFFINITY_SKIP), 1, "affinity_skip");
	ASSERT_OK(aff_get(1, &a), "affinity");
	ASSERT_EQ(a.backend, 2, "moved with the flow");
	l.active = 0;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l, 0), "load1 idle");

	/* a session pin is the node's word: it wins, the affinity stays */
	ASSERT_OK(pin_set(0, "198.18.0.1", 1, 0), "pin to 1");
	ASSERT_EQ(syn_from(1, 4, VIP4, 80, &r), 1, "pinned");
	ASSERT_OK(aff_get(1, &a), "affinity");
	ASSERT_EQ(a.backend, 2, "left as it was");
	{
		struct aibl_pin_key k = {.svc_id = 0, .family = AIBL_AF_INET};

		xe_addr(&k.client, AIBL_AF_INET, "198.18.0.1");
		ASSERT_OK(bpf_map_delete_elem(xe_fd(AIBL_MAP_PINS), &k), "unpin");
		ASSERT_OK(xe_pin_filter(), "filter");
	}

	/* backend 2 left the service's table (its model unloaded there) */
	c1.cost = 100;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &one, &c1, 0), "cost1");
	{
		struct aibl_member_key k = {.svc_id = 0, .backend = 2};

		ASSERT_OK(xe_ring(0, 0, only1, 1), "ring without 2");
		ASSERT_OK(bpf_map_delete_elem(xe_fd(AIBL_MAP_MEMBERS), &k), "member 2 gone");
	}
	ASSERT_EQ(syn_from(1, 5, VIP4, 80, &r), 1, "not followed out of the table");
	ASSERT_OK(xe_ring(0, 0, pat, 2), "ring 1, 2");
	ASSERT_OK(aff_member(2, 100), "member 2 back");

	/* lapsed, switched off, not an ai service, cluster mode: p2c alone */
	ASSERT_OK(aff_set(3, 2, mono_ns() - 1000000000ull), "lapsed affinity");
	ASSERT_EQ(syn_from(3, 1, VIP4, 80, &r), 1, "lapsed: p2c");
	ASSERT_OK(aff_set(4, 2, mono_ns() + 60000000000ull), "live affinity");
	ASSERT_EQ(syn_from(4, 1, VIP4, 80, &r), 2, "live: followed");
	ASSERT_OK(aff_set(4, 2, mono_ns() + 60000000000ull), "again");
	xe_glob.affinity_ms = 0;
	ASSERT_OK(xe_globals_write(), "affinity_ms 0");
	ASSERT_EQ(syn_from(4, 2, VIP4, 80, &r), 1, "affinity_ms 0: p2c");
	xe_glob.affinity_ms = 60000;
	ASSERT_OK(xe_globals_write(), "affinity_ms back");
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_P2C, AIBL_KEY_SRC_IP, 0, 0),
		  "vip without the flag");
	ASSERT_EQ(syn_from(4, 3, VIP4, 80, &r), 1, "no flag: p2c");
	ASSERT_OK(xe_vip(VIP4, 80, IPPROTO_TCP, 0, AIBL_MODE_P2C, AIBL_KEY_SRC_IP, 0,
			 AIBL_VIP_F_AFFINITY),
		  "flag back");
	ASSERT_EQ(syn_from(4, 4, VIP4, 80, &r), 2, "flag back: followed");
	ASSERT_OK(aff_set(4, 2, mono_ns() + 60000000000ull), "again");
	xe_glob.flags |= AIBL_G_F_CLUSTER;
	ASSERT_OK(xe_globals_write(), "cluster");
	ASSERT_EQ(syn_from(4, 5, VIP4, 80, &r), 1, "cluster mode: p2c");
out:
	xe_glob.flags &= ~AIBL_G_F_CLUSTER;
	xe_glob.affinity_ms = xe_glob.affinity_spill_ms = 0;
	xe_down();
}

/*
 * aibl_affinity is a table of buckets written in place: three clients whose
 * (service, address) share a bucket of two ways. The third takes the way
 * that expires first (a lapsed entry before a live one, then the live one
 * with least time left), and each client finds its own way whichever it
 * is. An entry of another service, or of the same address in the other
 * family, is not the client's: the p2c choice stands.
 */
/*
 * A client's affinity to a slower node (AIBL_COST_F_SLOWER) yields to a p2c
 * choice that is cheaper and has a free slot now, as a slower node's pin
 * does (test_pin_slower); while that choice would queue the flow, or
 * without the flag, the affinity holds.
 */
static void test_sel_affinity_slower(void)
{
	struct aibl_cost fast = {.cost = 260, .free = 2, .per_flow = 30};
	struct aibl_cost slow = {
	    .cost = 650, .free = 6, .per_flow = 80, .flags = AIBL_COST_F_SLOWER};
	struct aibl_load l = {.active = 2};
	__u32 one = 1, two = 2;
	struct xe_result r;

	if (!aff_env(fast, slow))
		goto out;
	/* two flows run at the fast node, a third still has a slot */
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l, 0), "load fast");
	ASSERT_OK(aff_set(1, 2, mono_ns() + 60000000000ull), "affinity to the slower node");
	ASSERT_EQ(syn_from(1, 1, VIP4, 80, &r), 1, "slower: the fast node's free slot");
	ASSERT_EQ(xe_counter(AIBL_CNT_AFFINITY_SKIP), 1, "affinity_skip");
	/* now three: the next flow would wait there, so the cache wins */
	ASSERT_OK(aff_set(1, 2, mono_ns() + 60000000000ull), "affinity again");
	ASSERT_EQ(syn_from(1, 2, VIP4, 80, &r), 2, "fast node full: followed");
	ASSERT_EQ(xe_counter(AIBL_CNT_AFFINITY_HIT), 1, "affinity_hit");
	/* room again; without the flag the affinity holds (queues, not speeds) */
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &one, &l, 0), "load fast");
	slow.flags = 0;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &two, &slow, 0), "cost2, no flag");
	ASSERT_EQ(syn_from(1, 3, VIP4, 80, &r), 2, "no flag: followed");
out:
	xe_down();
}

static void test_sel_affinity_ways(void)
{
	struct aibl_cost c1 = {.cost = 100, .free = 8, .per_flow = 100};
	struct aibl_cost c2 = {.cost = 150, .free = 8, .per_flow = 100};
	__u32 cl[3] = {1}, n = 1, idx, one = 1;
	struct aibl_affinity_bucket b;
	struct aibl_affinity a;
	union aibl_addr addr;
	struct xe_result r;

	_Static_assert(AIBL_AFFINITY_WAYS == 2, "three clients fill a bucket of two ways");
	idx = aff_client(1, &addr);
	for (__u32 c = 2; n < 3 && c < (1u << 22); c++)
		if (aff_client(c, &addr) == idx)
			cl[n++] = c;
	if (!ASSERT_EQ(n, 3, "three clients of one bucket") || !aff_env(c1, c2))
		goto out;

	/* the first two clients fill the bucket, each to the p2c choice (1) */
	ASSERT_EQ(syn_from(cl[0], 1, VIP4, 80, &r), 1, "client a: p2c");
	ASSERT_EQ(syn_from(cl[1], 1, VIP4, 80, &r), 1, "client b: p2c");
	ASSERT_OK(aff_get(cl[0], &a), "a learnt");
	ASSERT_OK(aff_get(cl[1], &a), "b learnt");
	/* p2c now prefers 2; a and b each follow their own way to 1 */
	c1.cost = 300;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &one, &c1, 0), "cost1");
	ASSERT_EQ(syn_from(cl[0], 2, VIP4, 80, &r), 1, "a follows its way");
	ASSERT_EQ(syn_from(cl[1], 2, VIP4, 80, &r), 1, "b follows its way");

	/* a lapses: c takes a's way, b's live entry stays */
	ASSERT_OK(aff_set(cl[0], 1, mono_ns() - 1000000000ull), "a lapsed");
	ASSERT_EQ(syn_from(cl[2], 1, VIP4, 80, &r), 2, "client c: p2c");
	ASSERT_EQ(aff_get(cl[0], &a), -ENOENT, "a's way taken");
	ASSERT_OK(aff_get(cl[1], &a), "b kept");
	ASSERT_EQ(a.backend, 1, "b to 1");
	ASSERT_OK(aff_get(cl[2], &a), "c learnt");
	ASSERT_EQ(a.backend, 2, "c to 2");
	ASSERT_EQ(syn_from(cl[1], 3, VIP4, 80, &r), 1, "b still follows");

	/* both live: a new entry for a takes the way expiring first (b's) */
	ASSERT_OK(aff_set(cl[1], 1, mono_ns() + 30000000000ull), "b expires sooner");
	ASSERT_EQ(syn_from(cl[0], 3, VIP4, 80, &r), 2, "a again: p2c");
	ASSERT_EQ(aff_get(cl[1], &a), -ENOENT, "b's way taken");
	ASSERT_OK(aff_get(cl[2], &a), "c kept");
	ASSERT_OK(aff_get(cl[0], &a), "a learnt again");

	/* not the client's: a's address under another service, and the same
	 * 16 bytes as an IPv6 address, both live and to 1 */
	aff_client(cl[0], &addr);
	memset(&b, 0, sizeof(b));
	b.way[0] = (struct aibl_affinity){.client = addr,
					  .svc_id = 7,
					  .backend = 1,
					  .family = AIBL_AF_INET,
					  .expires_ns = mono_ns() + 60000000000ull};
	b.way[1] = b.way[0];
	b.way[1].svc_id = 0;
	b.way[1].family = AIBL_AF_INET6;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_AFFINITY), &idx, &b, BPF_ANY), "foreign");
	ASSERT_EQ(syn_from(cl[0], 4, VIP4, 80, &r), 2, "a: p2c, not another's entry");
out:
	xe_glob.affinity_ms = xe_glob.affinity_spill_ms = 0;
	xe_down();
}

/* a new flow of IPv6 client SRC to VIP6 port 80 (SYN, then the ACK that
 * opens it): its backend, or -1 */
static int syn6_from(const char *src, __u16 sport, struct xe_result *r)
{
	struct pkt_buf in;
	int be;

	tcp6(&in, src, VIP6, sport, 80, PKT_TCP_SYN);
	xe_run(&in, r);
	if (r->err || (r->verdict != XDP_TX && r->verdict != XDP_REDIRECT))
		return -1;
	be = xe_out_backend(r);
	tcp6(&in, src, VIP6, sport, 80, PKT_TCP_ACK);
	xe_run(&in, r);
	if (r->err || (r->verdict != XDP_TX && r->verdict != XDP_REDIRECT))
		return -1;
	return xe_out_backend(r) == be ? be : -1;
}

/*
 * An ai service on an IPv6 VIP, its clients IPv6 (a dual-stack cluster):
 * the client's affinity, its session pin, the pin's spill and the pin
 * filter work on the whole 16-byte address. Service 1 (VIP6), p2c over
 * the IPv6 backends 3 and 4, both members.
 */
static void test_sel_ipv6_clients(void)
{
	static __u32 pat[2] = {3, 4};
	struct aibl_cost c3 = {.cost = 100, .free = 8, .per_flow = 100};
	struct aibl_cost c4 = {.cost = 150, .free = 8, .per_flow = 100};
	struct aibl_pin_key k = {.svc_id = 1, .family = AIBL_AF_INET6};
	struct aibl_pin v = {.backend = 4, .spill_ms = 500};
	struct aibl_affinity_bucket b;
	struct aibl_load l = {.active = 14};
	union aibl_addr a;
	__u32 three = 3, four = 4, idx;
	struct xe_result r;
	bool found = false;

	if (!std_env() ||
	    !ASSERT_OK(xe_vip(VIP6, 80, IPPROTO_TCP, 1, AIBL_MODE_P2C, AIBL_KEY_SRC_IP, 0,
			      AIBL_VIP_F_AFFINITY),
		       "ai vip6") ||
	    !ASSERT_OK(xe_ring(1, 0, pat, 2), "ring 3, 4") ||
	    !ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &three, &c3, 0), "cost3") ||
	    !ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &four, &c4, 0), "cost4"))
		goto out;
	for (__u32 be = 3; be <= 4; be++) {
		struct aibl_member_key mk = {.svc_id = 1, .backend = be};
		struct aibl_member m = {.weight = 1, .slots = 100};

		if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_MEMBERS), &mk, &m, BPF_ANY),
			       "member"))
			goto out;
	}
	xe_glob.affinity_ms = 60000;
	xe_glob.affinity_spill_ms = 500;
	if (!ASSERT_OK(xe_globals_write(), "globals"))
		goto out;

	/* affinity: learnt for the whole address, followed against p2c */
	ASSERT_EQ(syn6_from("2001:db8:1::7", 1, &r), 3, "first flow: the p2c choice");
	xe_addr(&a, AIBL_AF_INET6, "2001:db8:1::7");
	idx = aibl_affinity_index(1, &a, AIBL_AF_INET6);
	if (ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_AFFINITY), &idx, &b), "bucket"))
		for (int i = 0; i < AIBL_AFFINITY_WAYS; i++)
			found |= b.way[i].family == AIBL_AF_INET6 && b.way[i].svc_id == 1 &&
				 !memcmp(&b.way[i].client, &a, sizeof(a)) && b.way[i].backend == 3;
	ASSERT_TRUE(found, "affinity learnt: the IPv6 client to 3");
	c3.cost = 300;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &three, &c3, 0), "cost3 up");
	ASSERT_EQ(syn6_from("2001:db8:1::7", 2, &r), 3, "next flow follows its affinity");
	ASSERT_EQ(xe_counter(AIBL_CNT_AFFINITY_HIT), 1, "affinity_hit");
	/* an address that differs in its last byte only is another client */
	ASSERT_EQ(syn6_from("2001:db8:1::8", 1, &r), 4, "its neighbour: p2c");

	/* a session pin, keyed by the whole address: wins, and spills past
	 * a queue longer by more than spill_ms */
	c3.cost = 100;
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &three, &c3, 0), "cost3 back");
	xe_addr(&k.client, AIBL_AF_INET6, "2001:db8:2::1");
	if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &k, &v, BPF_ANY), "pin") ||
	    !ASSERT_OK(xe_pin_filter(), "filter"))
		goto out;
	ASSERT_EQ(syn6_from("2001:db8:2::1", 1, &r), 4, "pinned to 4");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_HIT), 1, "pin_hit");
	{
		struct aibl_flow_key fk = xe_fk("2001:db8:2::1", VIP6, 1, 80, IPPROTO_TCP);
		struct aibl_conn c;

		ASSERT_OK(bpf_map_lookup_elem(xe_fd(AIBL_MAP_CONNS), &fk, &c), "conn");
		ASSERT_EQ(c.flags & AIBL_CONN_F_PINNED, AIBL_CONN_F_PINNED, "conn marked pinned");
	}
	ASSERT_EQ(syn6_from("2001:db8:2::2", 1, &r), 3, "not the pinned address: p2c");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_LOAD), &four, &l, 0), "load4");
	ASSERT_EQ(syn6_from("2001:db8:2::1", 2, &r), 3, "a queue beyond spill_ms: spilled");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_SKIP), 1, "pin_skip");
out:
	xe_glob.affinity_ms = xe_glob.affinity_spill_ms = 0;
	xe_down();
}

static const struct test_case cases[] = {
    {"sel_hash_weights", test_sel_hash_weights},
    {"sel_rr_order", test_sel_rr},
    {"sel_p2c_cost", test_sel_p2c},
    {"sel_p2c_distinct", test_sel_p2c_distinct},
    {"sel_p2c_slots", test_sel_p2c_slots},
    {"sel_p2c_tie", test_sel_p2c_tie},
    {"sel_p2c_prefill", test_sel_p2c_prefill},
    {"sel_p2c_prefill_flood", test_sel_p2c_prefill_flood},
    {"sel_p2c_overloaded", test_sel_p2c_overloaded},
    {"sel_p2c_burst", test_sel_p2c_burst},
    {"sel_p2c_syn_own_count", test_sel_p2c_syn_own_count},
    {"pin_spill", test_pin_spill},
    {"pin_slower", test_pin_slower},
    {"pin_sync", test_pin_sync},
    {"sel_cluster_same_choice", test_sel_cluster},
    {"sel_bounded_load", test_sel_bounded},
    {"pins", test_pins},
    {"sel_affinity", test_sel_affinity},
    {"sel_affinity_slower", test_sel_affinity_slower},
    {"sel_affinity_ways", test_sel_affinity_ways},
    {"sel_ipv6_clients", test_sel_ipv6_clients},
};

XF_MAIN(cases)
