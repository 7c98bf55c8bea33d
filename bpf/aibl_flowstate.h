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
static __always_inline struct aibl_syn_bucket *syn_bucket(__u32 fh, __u32 *tag)
{
	__u32 idx = aibl_syn_index(fh, tag);

	return bpf_map_lookup_elem(&aibl_syns, &idx);
}

static __always_inline __u32 syn_now(void)
{
	return bpf_jiffies64();
}

/* the way holding tag and not expired, else -1 */
static __always_inline int syn_find(const struct aibl_syn_bucket *b, __u32 tag, __u32 now)
{
#pragma unroll
	for (int i = 0; i < AIBL_SYN_WAYS; i++)
		if ((__u32)b->tag[i] == tag && now - b->ts[i] < AIBL_SYN_TTL)
			return i;
	return -1;
}

/*
 * The flow's live handshake record: true with its bucket, way, backend id
 * and whether that choice was a session pin filled. *sb and *tag are
 * filled whenever the bucket exists, so a SYN can record into it.
 */
static __always_inline bool syn_match(__u32 fh, __u32 now, struct aibl_syn_bucket **sb, __u32 *tag,
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
	*id = v & AIBL_SYN_ID_MASK;
	*pinned = v & AIBL_SYN_F_PINNED;
	return true;
}

/*
 * A handshake completed without an entry follows its record while it lives:
 * the first packet after the SYN counts the new flow and marks the record;
 * true for every later one, which counts nothing (racy across CPUs: two
 * packets at once may both count, never every packet).
 */
static __always_inline bool syn_counted(struct aibl_syn_bucket *b, int way)
{
	__u32 *v = &b->backend[way & (AIBL_SYN_WAYS - 1)];
	__u32 old = READ_ONCE(*v);

	if (old & AIBL_SYN_F_COUNTED)
		return true;
	WRITE_ONCE(*v, old | AIBL_SYN_F_COUNTED);
	return false;
}

/* the sequence number of the SYN recorded in way */
static __always_inline __u32 syn_isn(const struct aibl_syn_bucket *b, int way)
{
	return READ_ONCE(b->tag[way & (AIBL_SYN_WAYS - 1)]) >> 32;
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
static __always_inline void syn_record(struct aibl_syn_bucket *b, int way, __u32 tag, __u32 isn,
				       __u32 backend, __u32 now)
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
	WRITE_ONCE(b->tag[way], ((__u64)isn << 32) | tag);
}

/* ---------------- active flows per backend ---------------- */

static __always_inline void load_add(__u32 id, __s64 v)
{
	struct aibl_load *l = bpf_map_lookup_elem(&aibl_load, &id);

	if (l)
		__sync_fetch_and_add(&l->active, v);
}

/* a p2c handshake begun on backend id: counted from its SYN (aibl.h).
 * Returns what its record keeps of the count (AIBL_SYN_F_LOAD and the
 * epoch), 0 when it counted nowhere */
static __always_inline __u32 load_syn_begin(__u32 id)
{
	struct aibl_load *l = bpf_map_lookup_elem(&aibl_load, &id);
	__u32 e = syn_epoch();

	if (!l)
		return 0;
	if (READ_ONCE(l->syn_epoch) != e) {
		/* a new epoch: the last one's handshakes become the old ones
		 * (racy across CPUs: a lost count only shortens a count) */
		WRITE_ONCE(l->syn_old, l->syn_epoch + 1 == e ? READ_ONCE(l->syn_new) : 0);
		WRITE_ONCE(l->syn_new, 0);
		WRITE_ONCE(l->syn_epoch, e);
	}
	__sync_fetch_and_add(&l->syn_new, 1);
	return AIBL_SYN_F_LOAD | (e & AIBL_SYN_EPOCH_MASK) << AIBL_SYN_EPOCH_POS;
}

/* a new session's flow sent to backend id by p2c, not by its pin: its
 * prompt is not cached there, and where prefills take turns on the node's
 * compute the next ones wait for it (prefill_wait()) */
static __always_inline void load_prefill_begin(__u32 id)
{
	struct aibl_cost *c = bpf_map_lookup_elem(&aibl_cost, &id);
	struct aibl_load *l;
	__u64 now, until, cap;

	if (!c || !c->per_flow || !c->prefill_ms)
		return;
	l = bpf_map_lookup_elem(&aibl_load, &id);
	if (!l)
		return;
	now = bpf_ktime_get_coarse_ns();
	until = READ_ONCE(l->prefill_until_ns);
	until = (until > now ? until : now) + c->prefill_ms * 1000000ULL;
	/* at most a prompt for each flow counted there, this one's SYN
	 * included (load_syn_begin() came first): a SYN flood's wait goes
	 * no further than its counts, which age out (prefill_wait()) */
	cap = now + load_flows(l, now >> AIBL_SYN_EPOCH_SHIFT) * c->prefill_ms * 1000000ULL;
	/* racy across CPUs: a lost update only shortens the wait */
	WRITE_ONCE(l->prefill_until_ns, until < cap ? until : cap);
}

/*
 * A handshake completed (rec: its record's word): it now counts in active,
 * and its SYN's count on the record's backend stops (a flow whose backend
 * went down since is chosen anew, but the count is the SYN's backend's).
 * Only the SYN's own: in
 * syn_new while that is still its epoch's, in syn_old one rotation on,
 * nowhere after (aged out). Before, the ACK took back whatever count was
 * there: a slow client's (its SYN's count gone after two epochs), a
 * retransmitted SYN's, or a SYN the rate guard never counted took back
 * other handshakes' counts, and bursts herded onto one node again.
 */
static __always_inline void load_syn_end(__u32 rec)
{
	__u32 se = rec >> AIBL_SYN_EPOCH_POS & AIBL_SYN_EPOCH_MASK, id = rec & AIBL_SYN_ID_MASK, le;
	struct aibl_load *l;

	if (!(rec & AIBL_SYN_F_LOAD))
		return;
	l = bpf_map_lookup_elem(&aibl_load, &id);
	if (!l)
		return;
	le = READ_ONCE(l->syn_epoch);
	if ((le & AIBL_SYN_EPOCH_MASK) == se) {
		if (READ_ONCE(l->syn_new) > 0)
			__sync_fetch_and_add(&l->syn_new, -1);
	} else if (((le - 1) & AIBL_SYN_EPOCH_MASK) == se) {
		if (READ_ONCE(l->syn_old) > 0)
			__sync_fetch_and_add(&l->syn_old, -1);
	}
}

/* the word of a handshake record (backend id and flags) */
static __always_inline __u32 syn_word(const struct aibl_syn_bucket *b, int way)
{
	return READ_ONCE(b->backend[way & (AIBL_SYN_WAYS - 1)]);
}

/* what a record keeps of its SYN's count (load_syn_begin()'s return), for
 * the record written again */
static __always_inline __u32 syn_load_kept(const struct aibl_syn_bucket *b, int way)
{
	return syn_word(b, way) & (AIBL_SYN_F_LOAD | AIBL_SYN_EPOCH_MASK << AIBL_SYN_EPOCH_POS);
}

/*
 * A forged FIN. The balancer sees only the client's half of a connection.
 * After the client's real FIN (its sequence number F: the segment's seq
 * plus its payload), none of the client's later segments reaches beyond
 * it: retransmitted or reordered data ends at or before F, and a bare ACK
 * carries at most F + 1. Nor does any lie more than a window (at most 2^30
 * bytes, RFC 7323) behind it. A segment outside that range shows the FIN
 * was not the client's: a forged FIN behind the client's stream is found
 * by the client's next segment, data or bare ACK.
 *
 * A forged FIN ahead of the stream (within a window) is not found by one
 * segment: the client's next ones lie behind it, as retransmissions would.
 * But after a real FIN the client's bare ACKs (to the server's data or
 * FIN) carry exactly F + 1, and bare ACKs behind it are rare (one sent
 * before the FIN and overtaken); a client that receives a streamed
 * response sends many. So the entry counts bare segments behind the FIN
 * and, once one at the FIN came (FIN_AT), stops: the
 * AIBL_CONN_FIN_BEHIND_MAX + 1st behind it shows the FIN was forged. Data
 * behind the FIN never counts: a real FIN's lost tail is retransmitted
 * behind it, many segments after an RTO.
 *
 * Positions are kept in 256-byte units (24 bits in the flags): a segment
 * within the FIN's unit counts as at it, so rounding can hide a forgery
 * but never invent one.
 */
#define FIN_UNIT_SHIFT	 AIBL_CONN_FIN_SEQ_SHIFT
#define FIN_UNIT_MASK	 (0xffffffffU >> FIN_UNIT_SHIFT)
#define FIN_WINDOW_UNITS ((1U << 30) >> FIN_UNIT_SHIFT)

/* the packet's TCP header, NULL when it cannot be read (not expected) */
static __always_inline struct tcphdr *tcp_hdr(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u32 off = p->l4_off;
	struct tcphdr *th;

	if (off > AIBL_MAX_OFF)
		return NULL;
	th = data + off;
	if ((void *)(th + 1) > data_end)
		return NULL;
	return th;
}

/*
 * A TCP segment's place in the client's sequence space: its seq plus its
 * payload (a FIN's own number, data's end), a bare segment's seq - 1 (so
 * the bare ACK after a FIN is at the FIN). *len: its payload. False when
 * the header cannot be read (parse_l4() read it: not expected).
 */
static __always_inline bool tcp_pos(struct xdp_md *ctx, const struct pkt *p, __u32 *pos, __u32 *len)
{
	struct tcphdr *th = tcp_hdr(ctx, p);

	if (!th)
		return false;
	/* parse_l4() checked that the header fits in the IP packet */
	*len = p->l2_len + p->l3_len - p->l4_off - th->doff * 4;
	*pos = bpf_ntohl(th->seq) + *len;
	if (!*len && !(p->tcp_flags & AIBL_TCP_FIN))
		*pos -= 1;
	return true;
}

/* the segment's sequence number, 0 when unreadable (not expected) */
static __always_inline __u32 tcp_seq(struct xdp_md *ctx, const struct pkt *p)
{
	struct tcphdr *th = tcp_hdr(ctx, p);

	return th ? bpf_ntohl(th->seq) : 0;
}

/*
 * The flags a FIN or RST adds to its entry: closing, and what tells a
 * forged one later (a RST: that it was one; a FIN: its place).
 */
static __always_inline __u32 conn_closing_flags(struct xdp_md *ctx, const struct pkt *p)
{
	__u32 pos, len;

	if (p->tcp_flags & AIBL_TCP_RST)
		return AIBL_CONN_F_CLOSING | AIBL_CONN_F_RST;
	if (!tcp_pos(ctx, p, &pos, &len))
		return AIBL_CONN_F_CLOSING;
	return AIBL_CONN_F_CLOSING | AIBL_CONN_F_FIN | (pos & ~((1U << FIN_UNIT_SHIFT) - 1));
}

/*
 * A segment without SYN, FIN or RST on conn, closed by a FIN: true when it
 * shows that FIN was forged (see above); else it may mark conn's FIN as
 * the client's or count a bare segment behind it.
 */
static __always_inline bool conn_fin_forged(struct xdp_md *ctx, const struct pkt *p,
					    struct aibl_conn *conn)
{
	__u32 pos, len, behind, flags = conn->flags;

	if (!tcp_pos(ctx, p, &pos, &len))
		return false;
	/* units from the segment up to the FIN: 0 at it, small behind it,
	 * large (wrapped) beyond it */
	behind = ((flags >> FIN_UNIT_SHIFT) - (pos >> FIN_UNIT_SHIFT)) & FIN_UNIT_MASK;
	if (behind > FIN_WINDOW_UNITS)
		return true;
	if (flags & AIBL_CONN_F_FIN_AT)
		return false;
	if (!behind) {
		conn->flags = flags | AIBL_CONN_F_FIN_AT;
		return false;
	}
	if (len)
		return false;
	if (((flags >> AIBL_CONN_FIN_BEHIND_SHIFT) & AIBL_CONN_FIN_BEHIND_MAX) ==
	    AIBL_CONN_FIN_BEHIND_MAX)
		return true;
	conn->flags = flags + (1U << AIBL_CONN_FIN_BEHIND_SHIFT);
	return false;
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

/* refresh a connection's last_seen at most this often; an entry last
 * refreshed longer ago is asked whether its tuple was reused (flow_reused) */
#define CONN_REFRESH_NS 1000000000ULL

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
 * it (or ends, when this packet is its FIN/RST: closing holds its
 * conn_closing_flags(), else 0).
 */
static __always_inline void conn_resteer(struct aibl_conn *conn, const struct aibl_flow_key *fk,
					 __u32 id, bool pinned, bool tcp, __u32 closing)
{
	count(AIBL_CNT_RESTEER);
	fcache_forget(fk);
	if (tcp && !(conn->flags & AIBL_CONN_F_CLOSING)) {
		load_add(conn->backend, -1);
		if (closing)
			conn->flags = (conn->flags & AIBL_CONN_F_PINNED) | closing;
		else
			load_add(id, 1);
	}
	conn->backend = id;
	/* a closing flow keeps what tells a forged FIN or RST */
	conn->flags = (conn->flags & ~AIBL_CONN_F_PINNED) | (pinned ? AIBL_CONN_F_PINNED : 0);
	conn->last_seen_ns = bpf_ktime_get_coarse_ns();
	/* an open TCP flow moved mid-connection: its new backend has no
	 * socket for it and resets it, and the client's port may come back
	 * with a new handshake at once. Seen as idle from here, so that
	 * handshake's ACK is asked about (flow_reused); a packet of the flow
	 * itself refreshes it */
	if (tcp && !(conn->flags & AIBL_CONN_F_CLOSING))
		conn->last_seen_ns -= CONN_REFRESH_NS + 1;
}

#endif /* AIBL_FLOWSTATE_H */
