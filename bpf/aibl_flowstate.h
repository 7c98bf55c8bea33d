/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The state the program keeps about flows: the new-connection rate guard,
 * the table of TCP handshakes in progress, the active-flow count per
 * backend, the per-CPU flow cache of established flows, and the writes to
 * the connection table that keep them in step. aibl_flow() in
 * aibl_xdp.bpf.c decides when each is read or written.
 */
#ifndef AIBL_FLOWSTATE_H
#define AIBL_FLOWSTATE_H

#include "aibl_maps.h"
#include "aibl_parse.h"

/* the rate guard's window: max_conn_rate counts inserts per second */
#define RATE_WINDOW_NS 1000000000ULL

/* ---------------- new-connection rate guard ---------------- */

/*
 * May this CPU insert one more flow of class idx (enum aibl_rate_idx) into
 * the connection table in the current one-second window, limit per window?
 */
static __always_inline bool rate_admit(__u32 idx, __u32 limit)
{
	struct aibl_rate *r;
	__u64 now;

	r = bpf_map_lookup_elem(&aibl_rate, &idx);
	if (!r)
		return true;
	now = bpf_ktime_get_coarse_ns();
	if (now - r->window_start_ns >= RATE_WINDOW_NS) {
		r->window_start_ns = now;
		r->count = 0;
	}
	if (r->count >= limit)
		return false;
	r->count++;
	return true;
}

/*
 * Rate guard (Katran's max_conn_rate) for completed handshakes. A burst of
 * new flows past the limit would otherwise churn the LRU and evict
 * established flows, which then lose their backend.
 */
static __always_inline bool conn_rate_admit(const struct aibl_globals *g)
{
	if (!g->max_conn_rate)
		return true;
	return rate_admit(AIBL_RATE_CONN, g->max_conn_rate);
}

/*
 * Everything else that misses the table (README: insert policy): bounded
 * always, since any host can send it from random sources. Checked before
 * the guard, whose window then counts only what this one let through.
 */
static __always_inline bool unverified_admit(void)
{
	return rate_admit(AIBL_RATE_UNVERIFIED, AIBL_UNVERIFIED_RATE);
}

/*
 * Is the guard refusing on this CPU right now (its window still open and
 * already at max_conn_rate)? A read-only, inlined per-CPU array read: lets
 * a SYN skip the connection-table lookup miss (a cache and TLB miss) when
 * it could not be inserted anyway. A stale window reads as not engaged;
 * conn_rate_admit() on the normal path then opens the next one.
 */
static __always_inline bool conn_rate_engaged(const struct aibl_globals *g)
{
	__u32 idx = AIBL_RATE_CONN;
	struct aibl_rate *r;

	if (!g->max_conn_rate)
		return false;
	r = bpf_map_lookup_elem(&aibl_rate, &idx);
	if (!r || r->count < g->max_conn_rate)
		return false;
	return bpf_ktime_get_coarse_ns() - r->window_start_ns < RATE_WINDOW_NS;
}

/* ---------------- handshakes in progress ---------------- */

/* the flow's bucket in aibl_syns and its tag there; fh is its flow hash */
static __always_inline struct aibl_syn_bucket *syn_bucket(__u32 fh, __u64 *tag)
{
	__u32 idx = aibl_syn_index(fh, tag);

	return bpf_map_lookup_elem(&aibl_syns, &idx);
}

static __always_inline __u32 syn_now(void)
{
	return bpf_jiffies64();
}

/* the way holding tag and not expired, else -1 */
static __always_inline int syn_find(const struct aibl_syn_bucket *b, __u64 tag, __u32 now)
{
#pragma unroll
	for (int i = 0; i < AIBL_SYN_WAYS; i++)
		if (b->tag[i] == tag && now - b->ts[i] < AIBL_SYN_TTL)
			return i;
	return -1;
}

/*
 * The flow's live handshake record: true with its bucket, way, backend id
 * and whether that choice was a session pin filled. *sb and *tag are
 * filled whenever the bucket exists, so a SYN can record into it.
 */
static __always_inline bool syn_match(__u32 fh, __u32 now, struct aibl_syn_bucket **sb, __u64 *tag,
				      int *way, __u32 *id, bool *pinned)
{
	__u32 v;

	*sb = syn_bucket(fh, tag);
	if (!*sb)
		return false;
	*way = syn_find(*sb, *tag, now);
	if (*way < 0)
		return false;
	v = (*sb)->backend[*way & (AIBL_SYN_WAYS - 1)];
	*id = v & ~AIBL_SYN_F_PINNED;
	*pinned = v & AIBL_SYN_F_PINNED;
	return true;
}

/* the handshake is over: its way is free again */
static __always_inline void syn_free(struct aibl_syn_bucket *b, int way)
{
	WRITE_ONCE(b->tag[way & (AIBL_SYN_WAYS - 1)], 0);
}

/*
 * Records the SYN's backend: in its own way (a retransmission), else a free
 * (empty or expired) one, else over the oldest. The tag is written last: a
 * reader on another CPU that matches it finds the backend already there.
 */
static __always_inline void syn_record(struct aibl_syn_bucket *b, int way, __u64 tag, __u32 backend,
				       __u32 now)
{
	__u32 oldest = 0, age = 0;

	if (way < 0) {
#pragma unroll
		for (int i = 0; i < AIBL_SYN_WAYS; i++) {
			__u32 a = b->tag[i] ? now - b->ts[i] : AIBL_SYN_TTL;

			if (a >= AIBL_SYN_TTL) {
				way = i;
				break;
			}
			if (a >= age) {
				age = a;
				oldest = i;
			}
		}
		if (way < 0)
			way = oldest;
	}
	way &= AIBL_SYN_WAYS - 1;
	WRITE_ONCE(b->backend[way], backend);
	WRITE_ONCE(b->ts[way], now);
	WRITE_ONCE(b->tag[way], tag);
}

/* ---------------- active flows per backend ---------------- */

static __always_inline void load_add(__u32 id, __s64 v)
{
	struct aibl_load *l = bpf_map_lookup_elem(&aibl_load, &id);

	if (l)
		__sync_fetch_and_add(&l->active, v);
}

/* a p2c handshake begun on backend id: counted from its SYN (aibl.h) */
static __always_inline void load_syn_begin(__u32 id)
{
	struct aibl_load *l = bpf_map_lookup_elem(&aibl_load, &id);
	__u32 e = syn_epoch();

	if (!l)
		return;
	if (READ_ONCE(l->syn_epoch) != e) {
		/* a new epoch: the last one's handshakes become the old ones
		 * (racy across CPUs: a lost count only shortens a count) */
		WRITE_ONCE(l->syn_old, l->syn_epoch + 1 == e ? READ_ONCE(l->syn_new) : 0);
		WRITE_ONCE(l->syn_new, 0);
		WRITE_ONCE(l->syn_epoch, e);
	}
	__sync_fetch_and_add(&l->syn_new, 1);
}

/* a p2c handshake on backend id completed: it now counts in active; the
 * oldest begun handshake still counted stops counting */
static __always_inline void load_syn_end(__u32 id)
{
	struct aibl_load *l = bpf_map_lookup_elem(&aibl_load, &id);
	__u32 e = syn_epoch();

	if (!l)
		return;
	if (l->syn_epoch == e && READ_ONCE(l->syn_old) > 0)
		__sync_fetch_and_add(&l->syn_old, -1);
	else if ((l->syn_epoch == e || l->syn_epoch + 1 == e) && READ_ONCE(l->syn_new) > 0)
		__sync_fetch_and_add(&l->syn_new, -1);
}

/* ---------------- flow cache ---------------- */

/* the kernel's tick rate, from its configuration when libbpf finds it */
extern const unsigned int CONFIG_HZ __kconfig __weak;

/* AIBL_FCACHE_TTL_MS in jiffies (bpf_jiffies64() is inlined by the
 * verifier, a ktime helper is a call) */
static __always_inline __u64 fcache_ttl(void)
{
	__u64 hz = CONFIG_HZ ?: 1000;

	return hz * AIBL_FCACHE_TTL_MS / 1000;
}

static __always_inline bool key_eq(const struct aibl_flow_key *a, const struct aibl_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]));
}

struct fcache_forget_ctx {
	const struct aibl_flow_key *key;
	__u32 idx;
};

static long fcache_forget_cpu(__u32 cpu, void *arg)
{
	struct fcache_forget_ctx *c = arg;
	struct aibl_fcache_entry *e = bpf_map_lookup_percpu_elem(&aibl_fcache, &c->idx, cpu);

	if (!e)
		return 1; /* past the last CPU */
	if (key_eq(&e->key, c->key))
		WRITE_ONCE(e->key.family, 0);
	return 0;
}

/*
 * The flow's connection entry changed (closing, or re-steered): its flow
 * cache entry goes, on every CPU, so that no CPU still forwards it by the
 * old decision. Once per connection, not per packet.
 */
static __always_inline void fcache_forget(const struct aibl_flow_key *key)
{
	struct fcache_forget_ctx c = {.key = key, .idx = aibl_fcache_index(key)};

	bpf_loop(AIBL_FCACHE_MAX_CPUS, fcache_forget_cpu, &c, 0);
}

/*
 * This CPU's flow cache entry for an established packet: true (with *ep)
 * when it holds the packet's flow under the current epoch and has not
 * expired. The caller still checks that its backend is up: one that is
 * down sends the packet the full way, which re-steers the flow.
 */
static __always_inline bool fcache_get(const struct pkt *p, const struct aibl_globals *g,
				       struct aibl_fcache_entry **ep)
{
	__u32 idx = aibl_fcache_index(&p->fk);
	struct aibl_fcache_entry *e = bpf_map_lookup_elem(&aibl_fcache, &idx);

	*ep = e;
	return e && key_eq(&e->key, &p->fk) && e->epoch == g->epoch &&
	       (__s64)(e->expires - bpf_jiffies64()) > 0;
}

/*
 * Does this packet look in the flow cache? Not while this CPU bypasses it
 * (its last sample missed too often): then the packet takes the full path
 * and writes no entry, and counts one off the bypass. *cp is this CPU's
 * sample, for fcache_sample().
 */
static __always_inline bool fcache_probe(struct aibl_fcache_ctl **cp)
{
	__u32 zero = 0;
	struct aibl_fcache_ctl *c = bpf_map_lookup_elem(&aibl_fcache_ctl, &zero);

	*cp = c;
	if (!c || !c->skip)
		return true;
	c->skip--;
	return false;
}

/*
 * One lookup's outcome into this CPU's sample. At the end of a sample with
 * fewer than 1 in AIBL_FCACHE_MIN_HIT_INV hits the cache costs more than it
 * saves (a miss reads a cold line, a hit saves the VIP and connection table
 * lookups): the next packets pass it by, for twice as long after each
 * further such sample, and then a new sample decides again.
 */
static __always_inline void fcache_sample(struct aibl_fcache_ctl *c, bool hit)
{
	__u32 b;

	if (!c)
		return;
	c->hits += hit;
	/* a sample without a hit in its first eighth ends there: where every
	 * lookup misses, the samples are what the cache still costs */
	if (++c->probes < AIBL_FCACHE_SAMPLE && (c->hits || c->probes < AIBL_FCACHE_SAMPLE / 8))
		return;
	if (c->hits * AIBL_FCACHE_MIN_HIT_INV < c->probes) {
		b = c->bypass < AIBL_FCACHE_BYPASS_MIN ? AIBL_FCACHE_BYPASS_MIN : c->bypass;
		c->skip = b;
		c->bypass = b < AIBL_FCACHE_BYPASS_MAX ? 2 * b : AIBL_FCACHE_BYPASS_MAX;
		count(AIBL_CNT_FCACHE_BYPASS);
	} else {
		c->bypass = AIBL_FCACHE_BYPASS_MIN;
	}
	c->probes = 0;
	c->hits = 0;
}

/* Writes the decision into e, the flow's entry that fcache_get() found. */
static __always_inline void fcache_put(struct aibl_fcache_entry *e, const struct pkt *p,
				       const struct aibl_globals *g, __u32 svc, __u32 id, __u32 fh)
{
	e->key = p->fk;
	e->backend = id;
	e->svc_id = svc;
	e->flow_hash = fh;
	e->epoch = g->epoch;
	e->expires = bpf_jiffies64() + fcache_ttl();
	count(AIBL_CNT_FCACHE_FILL);
}

/* ---------------- connection table ---------------- */

/*
 * A new flow on backend id into the connection table: 0, or -1 (counted)
 * when the insert failed. An open TCP flow counts as active on id.
 */
static __always_inline int conn_insert(const struct aibl_flow_key *fk, __u32 id, bool pinned,
				       bool tcp, bool closing)
{
	struct aibl_conn nc = {
	    .backend = id,
	    .flags = (pinned ? AIBL_CONN_F_PINNED : 0) | (closing ? AIBL_CONN_F_CLOSING : 0),
	    .last_seen_ns = bpf_ktime_get_coarse_ns(),
	};

	if (bpf_map_update_elem(&aibl_conns, fk, &nc, BPF_ANY)) {
		count(AIBL_CNT_CONN_INSERT_FAIL);
		return -1;
	}
	if (tcp && !closing)
		load_add(id, 1);
	return 0;
}

/*
 * The flow's backend went down: its entry conn moves to backend id, its
 * flow cache entries go, and an open TCP flow's active count moves with
 * it (or ends, when this packet is its FIN/RST).
 */
static __always_inline void conn_resteer(struct aibl_conn *conn, const struct aibl_flow_key *fk,
					 __u32 id, bool pinned, bool tcp, bool closing)
{
	count(AIBL_CNT_RESTEER);
	fcache_forget(fk);
	if (tcp && !(conn->flags & AIBL_CONN_F_CLOSING)) {
		load_add(conn->backend, -1);
		if (closing)
			conn->flags |= AIBL_CONN_F_CLOSING;
		else
			load_add(id, 1);
	}
	conn->backend = id;
	conn->flags = (conn->flags & (AIBL_CONN_F_CLOSING | AIBL_CONN_F_RST)) |
		      (pinned ? AIBL_CONN_F_PINNED : 0);
	conn->last_seen_ns = bpf_ktime_get_coarse_ns();
}

#endif /* AIBL_FLOWSTATE_H */
