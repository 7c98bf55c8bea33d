/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Which service a packet is for (VIP lookup) and which backend a new flow
 * of that service gets: a session pin, else the service's mode (hash, rr or
 * p2c) over its Maglev table, probing past backends that take no new
 * flows (bounded load).
 */
#ifndef AIBL_SELECT_H
#define AIBL_SELECT_H

#include "aibl_maps.h"
#include "aibl_parse.h"

/* ---------------- backend choice ---------------- */

static __always_inline bool be_usable(const struct aibl_backend *be)
{
	return be && (be->flags & (AIBL_BE_F_VALID | AIBL_BE_F_DOWN | AIBL_BE_F_DRAINING |
				   AIBL_BE_F_OVERLOADED)) == AIBL_BE_F_VALID;
}

static __always_inline bool be_up(const struct aibl_backend *be)
{
	return be && (be->flags & (AIBL_BE_F_VALID | AIBL_BE_F_DOWN)) == AIBL_BE_F_VALID;
}

struct pick {
	__u32 backend;
	__u32 slot;	 /* ring slot the backend was taken from */
	bool overloaded; /* only an overloaded backend was left */
	bool probed;	 /* skipped at least one slot */
};

/*
 * Bounded load: from slot onward, the first backend that takes new flows;
 * a slot of a backend that is down or draining is skipped, an overloaded
 * one is remembered as a last resort. At most AIBL_MAX_PROBES slots. A
 * slot of backend `avoid` is skipped too (p2c's second candidate is
 * another backend than its first).
 */
static __always_inline void ring_pick(__u32 base, __u32 slot, __u32 avoid, struct pick *pk)
{
	__u32 fb = AIBL_NO_BACKEND, fb_slot = 0;
	bool skipped = false;

	pk->backend = AIBL_NO_BACKEND;
	pk->overloaded = false;
	pk->probed = false;
	/* new flows only: keep the code small rather than unrolled */
#pragma clang loop unroll(disable)
	for (int i = 0; i < AIBL_MAX_PROBES;
	     i++, slot = slot + 1 == AIBL_RING_SIZE ? 0 : slot + 1) {
		struct aibl_backend *be;
		__u32 idx, id, *ent;

		idx = base + slot;
		ent = bpf_map_lookup_elem(&aibl_ring, &idx);
		if (!ent)
			break;
		id = *ent;
		if (id == avoid)
			continue;
		be = bpf_map_lookup_elem(&aibl_backends, &id);
		if (be_usable(be)) {
			pk->backend = id;
			pk->slot = slot;
			pk->probed = skipped;
			return;
		}
		skipped = true;
		if (fb == AIBL_NO_BACKEND && be_up(be) && !(be->flags & AIBL_BE_F_DRAINING)) {
			fb = id;
			fb_slot = slot;
		}
	}
	pk->backend = fb;
	pk->slot = fb_slot;
	pk->overloaded = fb != AIBL_NO_BACKEND;
	pk->probed = true;
}

/* the epoch of a handshake's count in aibl_load (aibl.h) */
static __always_inline __u32 syn_epoch(void)
{
	return bpf_ktime_get_coarse_ns() >> AIBL_SYN_EPOCH_SHIFT;
}

/* a backend's flows: the open ones and the handshakes begun lately */
static __always_inline __s64 load_flows(const struct aibl_load *l, __u32 epoch)
{
	__s32 n = 0, o = 0;

	if (!l)
		return 0;
	if (l->syn_epoch == epoch) {
		n = READ_ONCE(l->syn_new);
		o = READ_ONCE(l->syn_old);
	} else if (l->syn_epoch + 1 == epoch) {
		o = READ_ONCE(l->syn_new); /* now the epoch before */
	}
	/* active below 0 (a close counted for a flow opened before the
	 * counters were) is none */
	return (l->active > 0 ? l->active : 0) + (n > 0 ? n : 0) + (o > 0 ? o : 0);
}

/*
 * ai, where a node's prefills take turns on its compute (aibl_cost's
 * prefill_ms): the ms its compute stays busy with the prompts of the new
 * sessions this balancer sent there (load_prefill_begin()). Free slots do
 * not say it: eight first turns sent to a node with eight free slots wait
 * for each other's prefills. now: bpf_ktime_get_coarse_ns(), read once by
 * choose() (a u64 in place of the epoch: choose()'s frame has no room for
 * another)
 */
static __always_inline __s64 prefill_wait(const struct aibl_cost *c, const struct aibl_load *l,
					  __u64 now, __s64 a)
{
	__u64 until;

	if (!c->prefill_ms || !l)
		return 0;
	/* never more prompts than flows counted there now: a flood's SYNs
	 * (spoofed, never completed) pushed it ahead, and stop counting
	 * after one to two epochs; so does what they added */
	until = READ_ONCE(l->prefill_until_ns);
	if (until > now + a * c->prefill_ms * 1000000ULL)
		until = now + a * c->prefill_ms * 1000000ULL;
	return until > now ? (until - now) / 1000000 : 0;
}

/* ai's price of the a flows at a node beyond its free slots, in ms */
static __always_inline __s64 queue_ms(const struct aibl_cost *c, __s64 a)
{
	return a > c->free ? (a - c->free) * c->per_flow : 0;
}

/*
 * The part of a p2c cost (ai: ms) that is queueing, beyond the free slots;
 * with prefill (a constant), also the prompts waiting for the node's
 * compute (prefill_wait): the whole wait a new flow can expect there. A
 * flow count where the backend is not priced by ai.
 */
static __always_inline __s64 be_wait(__u32 id, __u64 now, bool prefill)
{
	struct aibl_cost *c = bpf_map_lookup_elem(&aibl_cost, &id);
	struct aibl_load *l = bpf_map_lookup_elem(&aibl_load, &id);
	__s64 a = load_flows(l, now >> AIBL_SYN_EPOCH_SHIFT);

	if (!c || !c->per_flow)
		return a;
	return queue_ms(c, a) + (prefill ? prefill_wait(c, l, now, a) : 0);
}

/* priced by ai: expected ms, queueing included */
static __always_inline bool be_priced(__u32 id)
{
	struct aibl_cost *c = bpf_map_lookup_elem(&aibl_cost, &id);

	return c && c->per_flow;
}

/*
 * p2c rank of a backend, lowest first: its cost (the controller's, plus this
 * balancer's flows unless priced by ai, or unless the choice must be the
 * same on every balancer, AIBL_G_F_CLUSTER; priced by ai, its queue beyond
 * the free slots and the prompts waiting for its compute), then at an equal cost its
 * flows. Equal costs are common: ai prices nodes of one speed alike while
 * they have free slots, and one client's new flows (a NAT address's
 * sessions) share a key hash, hence both candidates: at an equal cost every
 * one of them took the first. Only ever compared, so one number, the flows
 * in its low 20 bits: a second number, or a clamp, would not fit choose()'s
 * stack (aibl_xdp -> handle_icmp -> choose may use 512 bytes).
 */
static __always_inline __s64 be_cost(__u32 id, bool local, __u64 now)
{
	struct aibl_cost *c = bpf_map_lookup_elem(&aibl_cost, &id);
	struct aibl_load *l = local ? bpf_map_lookup_elem(&aibl_load, &id) : NULL;
	__s64 v, a = load_flows(l, now >> AIBL_SYN_EPOCH_SHIFT);

	if (!c)
		v = a;
	else if (!c->per_flow)
		v = c->cost + a;
	else
		/* queue_ms() spelt out: through it, clang gave choose() a
		 * frame 16 bytes larger (528 combined, over 512) */
		v = c->cost + (a > c->free ? (a - c->free) * c->per_flow : 0) +
		    prefill_wait(c, l, now, a);
	return v * (1 << 20) + (a & 0xfffff);
}

/*
 * A slower node's session (a pin with AIBL_PIN_F_SLOWER, an affinity to a
 * node with AIBL_COST_F_SLOWER) leaves it for backend to when that is not
 * overloaded, has a free slot now (with prefill, no prompt waiting for its
 * compute either) and costs less than from: the prefix cached at from saves
 * one prefill on a faster node, less than every later turn loses there
 */
static __always_inline bool faster_free(__u32 to, bool overloaded, __u32 from, __u64 now,
					bool prefill)
{
	return !overloaded && !be_wait(to, now, prefill) &&
	       be_cost(to, true, now) < be_cost(from, true, now);
}

struct choice {
	__u32 backend;
	bool pinned; /* by a session pin */
	bool pin;    /* a live session pin was found, followed or not */
};

/*
 * New-flow choice for service vip: a session pin first (unless expired or
 * its backend cannot take new flows), else per mode. key_hash is the hash of
 * the service's session key. In p2c mode a pin with spill_ms yields to the
 * p2c choice when the queue expected there is more than spill_ms shorter:
 * sticky until saturated, judged with the flows counted now rather than
 * the last report. Queues, not speeds: the session's cache is worth more
 * than a faster node's prefill of its whole prompt.
 */
__noinline int choose(const struct aibl_vip *vip, const struct pkt *p, __u32 key_hash, __u8 mode,
		      struct choice *ch)
{
	struct aibl_pin_key pk = {};
	struct aibl_pin *pin = NULL;
	struct aibl_globals *g;
	__u32 zero = 0, svc, base, pinned = AIBL_NO_BACKEND, spill = 0;
	bool slower = false;
	struct pick a, b;
	__u64 now = 0;
	bool local = true;

	/* a global function: verified once, for any caller */
	if (!vip || !p || !ch)
		return 0;
	svc = vip->svc_id;
	base = AIBL_RING_INDEX(svc, vip->ring_half & 1, 0);
	pk.svc_id = svc;
	pk.family = p->fk.family;
	ch->backend = AIBL_NO_BACKEND;
	ch->pinned = false;
	ch->pin = false;

	/* most clients have no pin: a miss in the big pin table costs a cache
	 * miss (~180 ns here), the filter bit an inlined array read */
	g = bpf_map_lookup_elem(&aibl_globals, &zero);
	if (g && (g->flags & AIBL_G_F_CLUSTER)) {
		/* the choice must be re-derivable on any balancer (aibl.h): the
		 * caller's hash fallback (a mid-flow miss, an untracked flow) is
		 * the p2c choice itself, rr's walk is the hash slot */
		mode = vip->mode == AIBL_MODE_P2C ? AIBL_MODE_P2C : AIBL_MODE_HASH;
		local = false;
	}
	if (!g || !(g->flags & AIBL_G_F_PIN_FILTER) ||
	    filter_maybe(AIBL_FILTER_PIN, aibl_filter_pin_bit(svc, &p->fk.src, p->fk.family))) {
		pk.client = p->fk.src;
		pin = bpf_map_lookup_elem(&aibl_pins, &pk);
	}
	if (pin) {
		__u32 id = pin->backend;

		if ((!pin->expires_ns || bpf_ktime_get_ns() < pin->expires_ns) &&
		    be_usable(bpf_map_lookup_elem(&aibl_backends, &id))) {
			ch->pin = true;
			/* cluster mode: every balancer must choose alike, and
			 * the queue is this balancer's count: the pin wins */
			slower = pin->flags & AIBL_PIN_F_SLOWER;
			if (mode != AIBL_MODE_P2C || (!pin->spill_ms && !slower) || !local) {
				count(AIBL_CNT_PIN_HIT);
				ch->backend = id;
				ch->pinned = true;
				return 0;
			}
			pinned = id;
			spill = pin->spill_ms ? pin->spill_ms : 0xffffffffU;
		} else {
			count(AIBL_CNT_PIN_SKIP);
		}
	}

	if (mode == AIBL_MODE_RR) {
		__u32 *pos = bpf_map_lookup_elem(&aibl_rr_pos, &svc);
		__u32 slot;

		if (!pos)
			return 0;
		slot = *pos;
		if (slot >= AIBL_RING_SIZE)
			slot = 0;
		ring_pick(base, slot, AIBL_NO_BACKEND, &a);
		if (a.backend != AIBL_NO_BACKEND) {
			slot = a.slot + 1;
			*pos = slot == AIBL_RING_SIZE ? 0 : slot;
		}
	} else if (mode == AIBL_MODE_P2C) {
		now = bpf_ktime_get_coarse_ns();
		ring_pick(base, key_hash % AIBL_RING_SIZE, AIBL_NO_BACKEND, &a);
		ring_pick(base, aibl_hash_second(key_hash) % AIBL_RING_SIZE, a.backend, &b);
		/* an overloaded candidate loses to one that is not, unless both
		 * are priced in expected ms (ai): that price holds the queue
		 * that overloads a node, and the sooner answer wins */
		if (b.backend != AIBL_NO_BACKEND) {
			bool by_cost = a.overloaded == b.overloaded ||
				       (be_priced(a.backend) && be_priced(b.backend));

			if (a.backend == AIBL_NO_BACKEND ||
			    (by_cost
				 ? be_cost(b.backend, local, now) < be_cost(a.backend, local, now)
				 : a.overloaded))
				a = b;
		}
	} else {
		ring_pick(base, key_hash % AIBL_RING_SIZE, AIBL_NO_BACKEND, &a);
	}
	if (pinned != AIBL_NO_BACKEND) {
		if (a.backend == AIBL_NO_BACKEND || a.backend == pinned ||
		    (be_wait(pinned, now, false) <= be_wait(a.backend, now, false) + spill &&
		     !(slower && faster_free(a.backend, a.overloaded, pinned, now, false)))) {
			count(AIBL_CNT_PIN_HIT);
			ch->backend = pinned;
			ch->pinned = true;
			return 0;
		}
		count(AIBL_CNT_PIN_SKIP);
	}
	if (a.probed && a.backend != AIBL_NO_BACKEND)
		count(AIBL_CNT_PROBE);
	ch->backend = a.backend;
	return 0;
}

static __always_inline __u32 session_hash(const struct aibl_vip *vip, const struct pkt *p,
					  __u32 seed)
{
	return vip->session_key == AIBL_KEY_FIVE_TUPLE ? aibl_hash_flow(&p->fk, seed)
						       : aibl_hash_client(&p->fk, seed);
}

/* the same address, all 16 bytes (an IPv4 one is zero-padded) */
static __always_inline bool addr_eq(const union aibl_addr *a, const union aibl_addr *b)
{
	return !((a->v6[0] ^ b->v6[0]) | (a->v6[1] ^ b->v6[1]) | (a->v6[2] ^ b->v6[2]) |
		 (a->v6[3] ^ b->v6[3]));
}

/*
 * A client's affinity to backend id, a slower node (AIBL_COST_F_SLOWER),
 * yields to the p2c choice (backend to) as a slower pin does in choose()
 * (faster_free()), where no prompt waits for the choice's compute either
 */
static __always_inline bool slower_yields(__u32 id, __u32 to, __u64 now)
{
	struct aibl_cost *c = bpf_map_lookup_elem(&aibl_cost, &id);
	struct aibl_backend *be = bpf_map_lookup_elem(&aibl_backends, &to);

	return c && (c->flags & AIBL_COST_F_SLOWER) && be &&
	       faster_free(to, be->flags & AIBL_BE_F_OVERLOADED, id, now, true);
}

/*
 * Client affinity (struct aibl_affinity), after choose() made a p2c choice
 * that no session pin decided: the client's last p2c choice for the service,
 * while it lasts, is still in the service's table and can take new flows,
 * wins unless its expected wait is more than affinity_spill_ms longer, or it
 * is a slower node that yields (slower_yields()). A
 * session pin, followed or spilled, is the node's word and wins over it.
 * Where the choice stands, it becomes the client's affinity, in its own way
 * of the bucket or in the one that expires first; a followed one is not
 * renewed, so the pins from cache hints take over once they come, and a
 * session that left a node is not held there.
 * Its own global function, called by the new-flow path only: choose()'s
 * frame, under handle_icmp's, leaves no room for it (512 bytes combined).
 */
__noinline int choose_affinity(const struct aibl_vip *vip, const struct pkt *p, struct choice *ch)
{
	struct aibl_affinity_bucket *bk;
	struct aibl_affinity *af = NULL, *w;
	struct aibl_member_key mk;
	struct aibl_member *m;
	struct aibl_globals *g;
	__u32 zero = 0, id, idx;
	__u64 now;

	if (!vip || !p || !ch || ch->pin || ch->backend == AIBL_NO_BACKEND)
		return 0;
	g = bpf_map_lookup_elem(&aibl_globals, &zero);
	if (!g || !g->affinity_ms || (g->flags & AIBL_G_F_CLUSTER))
		return 0;
	idx = aibl_affinity_index(vip->svc_id, &p->fk.src, p->fk.family);
	bk = bpf_map_lookup_elem(&aibl_affinity, &idx);
	if (!bk)
		return 0;
	for (int i = 0; i < AIBL_AFFINITY_WAYS; i++) {
		w = &bk->way[i];
		if (w->family == p->fk.family && w->svc_id == vip->svc_id &&
		    addr_eq(&w->client, &p->fk.src)) {
			af = w;
			break;
		}
	}
	now = bpf_ktime_get_coarse_ns();
	if (af && now < READ_ONCE(af->expires_ns)) {
		id = READ_ONCE(af->backend);
		if (id == ch->backend) {
			count(AIBL_CNT_AFFINITY_HIT);
			return 0;
		}
		mk.svc_id = vip->svc_id;
		mk.backend = id;
		m = bpf_map_lookup_elem(&aibl_members, &mk);
		if (m && m->slots && be_usable(bpf_map_lookup_elem(&aibl_backends, &id)) &&
		    be_wait(id, now, true) <=
			be_wait(ch->backend, now, true) + g->affinity_spill_ms &&
		    !slower_yields(id, ch->backend, now)) {
			count(AIBL_CNT_AFFINITY_HIT);
			ch->backend = id;
			return 0;
		}
		count(AIBL_CNT_AFFINITY_SKIP);
	}
	if (!af) {
		/* the way that expires first: an empty one (0), an expired one,
		 * else the client whose affinity has least time left */
		af = &bk->way[0];
		for (int i = 1; i < AIBL_AFFINITY_WAYS; i++)
			if (READ_ONCE(bk->way[i].expires_ns) < READ_ONCE(af->expires_ns))
				af = &bk->way[i];
		af->client = p->fk.src;
		af->svc_id = vip->svc_id;
		af->family = p->fk.family;
	}
	WRITE_ONCE(af->backend, ch->backend);
	WRITE_ONCE(af->expires_ns, now + (__u64)g->affinity_ms * 1000000);
	return 0;
}

/*
 * A new flow's choice in mode (the service's, or hash where the flow will
 * not be tracked): 0 with ch filled, or -1 (counted) when there is no
 * backend. fh is the packet's aibl_hash_flow(), the five-tuple key's hash.
 */
static __always_inline int choose_flow(const struct aibl_vip *vip, const struct pkt *p, __u32 fh,
				       __u32 seed, __u8 mode, struct choice *ch)
{
	choose(vip, p, vip->session_key == AIBL_KEY_FIVE_TUPLE ? fh : session_hash(vip, p, seed),
	       mode, ch);
	if (mode == AIBL_MODE_P2C && (vip->flags & AIBL_VIP_F_AFFINITY))
		choose_affinity(vip, p, ch);
	if (!bpf_map_lookup_elem(&aibl_backends, &ch->backend)) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return -1;
	}
	return 0;
}

/* ---------------- VIP lookup ---------------- */

/*
 * The entry of (addr, port, proto), port 0 the address's wildcard, in
 * aibl_vips, NULL none. Read it through vip_get() only, or one field once:
 * aibl_vips is a hash map whose update of a key hands the replaced element
 * to the updating CPU's spare, which that CPU's next update of any key
 * overwrites. aibld writes the services' entries in turn, so a program that
 * read the element's fields one by one could take another service's id
 * with this one's ring half.
 */
static __always_inline struct aibl_vip *vip_find(const union aibl_addr *addr, __u8 family,
						 __be16 port, __u8 proto)
{
	struct aibl_vip_key k = {
	    .addr = *addr,
	    .port = port,
	    .proto = proto,
	    .family = family,
	};
	struct aibl_vip *v = NULL;

	if (port)
		v = bpf_map_lookup_elem(&aibl_vips, &k);
	if (!v) {
		k.port = 0;
		v = bpf_map_lookup_elem(&aibl_vips, &k);
	}
	return v;
}

/* the entry v copied into *out in one 8-byte load: this key's old value or
 * its new one, whole */
static __always_inline void vip_get(const struct aibl_vip *v, struct aibl_vip *out)
{
	__u64 w = READ_ONCE(*(const __u64 *)v);

	__builtin_memcpy(out, &w, sizeof(*out));
}

/* vip_find() and vip_get() into *out: out, or NULL */
static __always_inline struct aibl_vip *vip_lookup(const union aibl_addr *addr, __u8 family,
						   __be16 port, __u8 proto, struct aibl_vip *out)
{
	struct aibl_vip *v = vip_find(addr, family, port, proto);

	if (!v)
		return NULL;
	vip_get(v, out);
	return out;
}

#endif /* AIBL_SELECT_H */
