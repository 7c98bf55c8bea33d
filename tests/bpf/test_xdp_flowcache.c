// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The per-CPU flow cache of established flows (aibl_fcache).
 */
#include <stdint.h>
#include "xdp_fixture.h"

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

	bpf_map_lookup_elem(xe_fd(AIBL_MAP_GLOBALS), &(__u32){0}, &g);
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
	static __u32 both[2] = {1, 2};
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
	if (!std_env() || !ASSERT_OK(pin_cpu0(), "cpu 0") ||
	    !ASSERT_OK(xe_ring(0, 0, both, 2), "ring"))
		goto out;
	for (c = 0; xe_ring_get(0, 0, client_hash(c) % AIBL_RING_SIZE) != 1; c++)
		;
	inet_ntop(AF_INET, &(struct in_addr){htonl(0xc6120000u + c)}, src, sizeof(src));
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

/* this CPU's (cpu 0's) flow cache sample and bypass */
static struct aibl_fcache_ctl fcache_ctl_get(void)
{
	int ncpu = libbpf_num_possible_cpus();
	struct aibl_fcache_ctl *v = calloc(ncpu > 0 ? ncpu : 1, sizeof(*v)), c = {};

	if (v && !bpf_map_lookup_elem(xe_fd(AIBL_MAP_FC_CTL), &(__u32){0}, v))
		c = v[0];
	free(v);
	return c;
}

/*
 * The bypass (aibl_fcache_ctl): a sample of AIBL_FCACHE_SAMPLE lookups that
 * mostly missed turns the cache off on that CPU for its next
 * AIBL_FCACHE_BYPASS_MIN established packets (flow_cache_bypass counts
 * it): they take the full path (same backend, same frame) without a lookup
 * or a fill; after the bypass a new sample begins, and one that hits often
 * enough keeps the cache on. The bypass doubles while samples keep
 * missing, up to its cap, and starts over after a good one. A sample
 * without a hit in its first eighth ends there.
 */
static void test_bypass(void)
{
	struct aibl_fcache_ctl c;
	struct pkt_buf in, exp;
	struct xe_result r;
	struct aibl_flow_key fk;
	__u64 hit, fill, byp;
	int i;

	if (!std_env() || !ASSERT_OK(pin_cpu0(), "cpu 0"))
		goto out;
	open_v4_flow(&in, &r);
	ASSERT_EQ(r.verdict, XDP_TX, "flow open");
	fk = xe_fk(CLI4, VIP4, 40000, 80, IPPROTO_TCP);

	/* a sample one lookup short of its end, with no hit so far */
	c = (struct aibl_fcache_ctl){.probes = AIBL_FCACHE_SAMPLE - 1};
	if (!ASSERT_OK(xe_percpu_set(AIBL_MAP_FC_CTL, 0, &c, sizeof(c)), "sample"))
		goto out;
	fill = xe_counter(AIBL_CNT_FCACHE_FILL);
	byp = xe_counter(AIBL_CNT_FCACHE_BYPASS);
	xe_run(&in, &r); /* a miss: the sample ends, under 1 in 4 hits */
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL), fill + 1, "the last sampled miss fills");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_BYPASS), byp + 1, "flow_cache_bypass");
	c = fcache_ctl_get();
	ASSERT_EQ(c.skip, AIBL_FCACHE_BYPASS_MIN, "bypass for the next packets");
	ASSERT_EQ(c.bypass, 2 * AIBL_FCACHE_BYPASS_MIN, "the next one twice as long");
	ASSERT_EQ(c.probes, 0, "a new sample after it");

	/* while bypassed: the full path, the same frame, nothing read or written */
	c.skip = 3;
	ASSERT_OK(xe_percpu_set(AIBL_MAP_FC_CTL, 0, &c, sizeof(c)), "3 to go");
	hit = xe_counter(AIBL_CNT_FCACHE_HIT);
	xe_exp_ipip(&exp, &in, xe_out_backend(&r), NULL, aibl_hash_flow(&fk, XE_SEED));
	for (i = 0; i < 3; i++)
		if (!expect("bypassed: the full path's frame", &in, XDP_TX, &exp, &r))
			goto out;
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), hit, "no hit while bypassed");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_FILL), fill + 1, "no fill while bypassed");
	c = fcache_ctl_get();
	ASSERT_EQ(c.probes, 0, "no lookup while bypassed");
	ASSERT_EQ(c.skip, 0, "bypass over");

	/* sampled again: the flow's entry is still there, and hits */
	if (!expect("sampled again: a hit", &in, XDP_TX, &exp, &r))
		goto out;
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), hit + 1, "flow_cache_hit");
	c = fcache_ctl_get();
	ASSERT_EQ(c.probes, 1, "one lookup in the sample");
	ASSERT_EQ(c.hits, 1, "one hit");

	/* a sample with 1 in 4 hits keeps the cache on and the bypass short */
	c = (struct aibl_fcache_ctl){.probes = AIBL_FCACHE_SAMPLE - 1,
				     .hits = AIBL_FCACHE_SAMPLE / 4 - 1,
				     .bypass = AIBL_FCACHE_BYPASS_MAX};
	ASSERT_OK(xe_percpu_set(AIBL_MAP_FC_CTL, 0, &c, sizeof(c)), "a good sample");
	hit = xe_counter(AIBL_CNT_FCACHE_HIT);
	byp = xe_counter(AIBL_CNT_FCACHE_BYPASS);
	xe_run(&in, &r);
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_HIT), hit + 1, "its last lookup hits");
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_BYPASS), byp, "no bypass");
	c = fcache_ctl_get();
	ASSERT_EQ(c.skip, 0, "no bypass");
	ASSERT_EQ(c.bypass, AIBL_FCACHE_BYPASS_MIN, "the next bypass short again");

	/* a bypass never grows past its cap */
	c = (struct aibl_fcache_ctl){.probes = AIBL_FCACHE_SAMPLE - 1,
				     .bypass = AIBL_FCACHE_BYPASS_MAX};
	ASSERT_OK(xe_percpu_set(AIBL_MAP_FC_CTL, 0, &c, sizeof(c)), "a bad sample");
	tcp4(&in, CLI4, VIP4, 40001, 80, PKT_TCP_ACK); /* no entry: a miss */
	xe_run(&in, &r);
	c = fcache_ctl_get();
	ASSERT_EQ(c.skip, AIBL_FCACHE_BYPASS_MAX, "the longest bypass");
	ASSERT_EQ(c.bypass, AIBL_FCACHE_BYPASS_MAX, "capped");

	/* a sample with hits goes on past its first eighth */
	c = (struct aibl_fcache_ctl){.probes = AIBL_FCACHE_SAMPLE / 8 - 1, .hits = 1};
	ASSERT_OK(xe_percpu_set(AIBL_MAP_FC_CTL, 0, &c, sizeof(c)), "an eighth, a hit");
	xe_run(&in, &r);
	c = fcache_ctl_get();
	ASSERT_EQ(c.probes, AIBL_FCACHE_SAMPLE / 8, "the sample goes on");
	ASSERT_EQ(c.skip, 0, "no bypass");

	/* end to end: distinct flows, each seen once, all miss; a sample
	 * without a hit ends after its first eighth */
	c = (struct aibl_fcache_ctl){};
	ASSERT_OK(xe_percpu_set(AIBL_MAP_FC_CTL, 0, &c, sizeof(c)), "fresh");
	byp = xe_counter(AIBL_CNT_FCACHE_BYPASS);
	for (i = 0; i < (int)AIBL_FCACHE_SAMPLE / 8; i++) {
		tcp4(&in, CLI4, VIP4, 1024 + i, 80, PKT_TCP_ACK);
		xe_run(&in, &r);
	}
	ASSERT_EQ(xe_counter(AIBL_CNT_FCACHE_BYPASS), byp + 1, "many flows: bypassed");
	ASSERT_EQ(fcache_ctl_get().skip, AIBL_FCACHE_BYPASS_MIN, "for the next packets");
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"flow_cache", test_flow_cache},
    {"bypass", test_bypass},
};

XF_MAIN(cases)
