// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibl balancer: XDP program that steers packets addressed to a service VIP
 * to one of that service's backends (inference nodes) and passes everything
 * else untouched. The controller (aibld) fills the maps; this program only
 * reads them, except for the connection table, per-backend active flows,
 * the rr positions and the counters.
 *
 * Packet path:
 *   parse L2 (<= 2 VLAN tags) / IPv4 (options) / IPv6 (ext headers) / L4
 *   -> established flow in this CPU's flow cache (aibl_fcache): its
 *      service and backend, straight to forwarding
 *   -> VIP lookup (addr, port, proto), then (addr, 0, proto) wildcard
 *   -> connection table hit: that backend (re-steer when it is down); the
 *      decision goes into the flow cache
 *   -> miss: session pin, else the service's mode (hash / rr / p2c) over
 *      its Maglev table, probing past draining/overloaded/down backends;
 *      past the new-connection rate (aibl_globals.max_conn_rate) the hash
 *      choice, and no table entry (a SYN then skips the table lookup)
 *   -> forward: ipip (4in4, 6in6, 4in6) or l2dsr, next hop MAC from the
 *      backend entry, bpf_fib_lookup or the configured gateway
 *
 * The established path does no map writes except per-CPU counters, the
 * flow cache's per-CPU sample and, at most once a second per flow, the
 * connection's last_seen and its flow cache entry.
 *
 * This file keeps the packet's way; the parts it takes are in
 *   aibl_parse.h      headers and checksums (shared with aibl_decap)
 *   aibl_maps.h       every map, with why it exists; counters
 *   aibl_select.h     VIP lookup, backend choice (pins, hash/rr/p2c, probing)
 *   aibl_flowstate.h  rate guard, handshake table, active flows, flow cache,
 *                     connection-table writes
 *   aibl_encap.h      next hop, L2 rewrite, encapsulation, ICMP too-big, xmit
 *   aibl_icmp.h       ICMP errors quoting a VIP flow, fragments
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aibl_uapi.h"
#include "aibl.h"
#include "aibl_parse.h"
#include "aibl_maps.h"
#include "aibl_select.h"
#include "aibl_flowstate.h"
#include "aibl_encap.h"
#include "aibl_icmp.h"

/*
 * Loaded as an xdp.frags program (multi-buffer frames: jumbo frames on a
 * driver in multi-buffer mode). The loader clears it when it falls back to
 * the plain program on a kernel without frags programs.
 */
const volatile bool aibl_frags = false;

/* ---------------- packets we could not parse ---------------- */

static __always_inline int drop_reason(enum parse_rc rc)
{
	switch (rc) {
	case PARSE_TRUNC:
		count(AIBL_CNT_DROP_TRUNC);
		break;
	case PARSE_EXT:
		count(AIBL_CNT_DROP_EXT_HDR);
		break;
	default:
		count(AIBL_CNT_DROP_BAD_HDR);
		break;
	}
	return XDP_DROP;
}

/* A header we could not parse fully: drop it when the destination is a VIP
 * (for the parts we could read), else hand it to the stack unchanged. */
static __noinline int bad_packet(struct xdp_md *ctx, struct pkt *p, enum parse_rc rc)
{
	bool vip;

	if (p->fk.proto == IPPROTO_TCP || p->fk.proto == IPPROTO_UDP)
		vip = vip_find(&p->fk.dst, p->fk.family, p->ports ? p->fk.dport : 0, p->fk.proto);
	else
		vip = vip_find(&p->fk.dst, p->fk.family, 0, IPPROTO_TCP) ||
		      vip_find(&p->fk.dst, p->fk.family, 0, IPPROTO_UDP);
	if (!vip) {
		count(AIBL_CNT_PASS);
		return XDP_PASS;
	}
	count(AIBL_CNT_VIP_PKTS);
	/*
	 * A multi-buffer frame (a jumbo frame on a driver in multi-buffer
	 * mode): only its first buffer is in [data, data_end), so its IP
	 * length reads as past the frame. The plain program (the loader's
	 * fallback) does not forward those (docs/dataplane.md: jumbo
	 * frames). The helper is called here only, off the hot path.
	 */
	if (rc == PARSE_BAD && ctx && !aibl_frags &&
	    bpf_xdp_get_buff_len(ctx) > (__u64)(ctx->data_end - ctx->data)) {
		count(AIBL_CNT_DROP_JUMBO);
		return XDP_DROP;
	}
	return drop_reason(rc);
}

/*
 * A frame whose IP length reached past its data: a multi-buffer frame is
 * parsed again, headers from its first buffer and lengths against the
 * whole frame (bpf_xdp_get_buff_len()); for any other frame the header is
 * bad. Only called when the first parse found PARSE_BAD, so single-buffer
 * frames never pay the helper call. A global function: verified once.
 */
__noinline int aibl_parse_frags(struct xdp_md *ctx, struct pkt *p)
{
	void *data, *data_end;
	__u32 len;
	__be16 proto;

	if (!ctx || !p)
		return PARSE_BAD;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	len = bpf_xdp_get_buff_len(ctx);
	if (len <= (__u32)(ctx->data_end - ctx->data))
		return PARSE_BAD; /* one buffer: the header lies */
	__builtin_memset(p, 0, sizeof(*p));
	p->frame_len = len;
	proto = parse_l2(data, data_end, p);
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4_len(data, data_end, p->l2_len, p, false, len);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6_len(data, data_end, p->l2_len, p, false, len);
	return PARSE_BAD;
}

/* ---------------- per-flow decision ---------------- */

struct flow_out {
	__u32 backend;
	__u32 flow_hash; /* the packet's aibl_hash_flow() */
	__u32 svc_id;	 /* the service's, as the choice read it (vip_get()) */
	__u8 new_flow;
	__u8 pinned;
	__u8 cache; /* an established hit the flow cache may keep */
	__u8 pad;
};

/* What a path of aibl_flow() left to do. */
enum flow_step {
	FLOW_DONE,   /* the flow_out is filled */
	FLOW_CHOSEN, /* the handshake table named the backend (in the choice) */
	FLOW_CHOOSE, /* a new choice, in flow_ctx.mode */
};

/* What the paths learn about the packet's flow and hand to the next step. */
struct flow_ctx {
	struct aibl_conn *conn;	    /* its connection entry, when it has one */
	struct aibl_syn_bucket *sb; /* its handshake bucket, once looked up */
	__u32 tag;		    /* its tag in sb */
	int way;		    /* the way of its live handshake record in sb, else -1 */
	__u32 now_ts;		    /* syn_now() of a SYN, for its record */
	__u8 mode;		    /* enum aibl_mode of a new choice */
	bool tcp;
	bool closing;	/* a TCP FIN or RST */
	bool record;	/* a SYN whose choice goes to the handshake table */
	bool track;	/* a new flow the connection table admits */
	bool counted;	/* a handshake completed without an entry, counted before */
	__u32 syn_load; /* what load_syn_begin() counted for a SYN, for its record */
};

static __always_inline void flow_done(struct flow_out *o, __u32 id, bool new_flow, bool pinned,
				      bool cache)
{
	o->backend = id;
	o->new_flow = new_flow;
	o->pinned = pinned;
	o->cache = cache;
}

/*
 * A SYN opens a handshake: its choice goes into the small handshake table,
 * not the connection table (see aibl.h); a retransmitted SYN follows the
 * first one while that backend still takes new flows.
 */
static __always_inline enum flow_step flow_syn(const struct aibl_globals *g, __u32 fh,
					       struct flow_ctx *f, struct choice *ch)
{
	f->now_ts = syn_now();
	/* a retransmission follows its first SYN's record, guard or not:
	 * the handshake's ACK will follow that record too */
	if (syn_match(fh, f->now_ts, &f->sb, &f->tag, &f->way, &ch->backend, &ch->pinned) &&
	    be_usable(bpf_map_lookup_elem(&aibl_backends, &ch->backend))) {
		f->record = true;
		/* the record is written again: it keeps its SYN's count */
		f->syn_load = syn_load_kept(f->sb, f->way);
		return FLOW_CHOSEN;
	}
	if (conn_rate_engaged(g)) {
		/*
		 * Guard engaged: a handshake on a new tuple will not be
		 * admitted to the connection table, so its later packets will
		 * take the hash choice; the SYN takes it too, whatever the
		 * service's mode. It is recorded all the same: a client port
		 * reused after a FIN or RST (or after an end the balancer did
		 * not see) has an entry that its ACK rewrites from the record,
		 * inserting nothing. Unrecorded, that ACK would follow the old
		 * entry's backend while the SYN went to the hash choice.
		 */
		count(AIBL_CNT_CONN_UNTRACKED);
		f->mode = AIBL_MODE_HASH;
	}
	f->record = f->sb != NULL;
	return FLOW_CHOOSE;
}

/*
 * A closed flow's packet: its last ones, or its tuple reused by a new
 * handshake (a client port used again), which then takes the new SYN's
 * backend. Reused only by a packet that acknowledges that SYN (its ISN + 1,
 * the ACK and the first data): a blind RST or FIN followed by a SYN on the
 * tuple must not move the connection it hit, whose next packet is in its
 * own sequence space.
 */
static __always_inline enum flow_step flow_closed(struct xdp_md *ctx, const struct pkt *p, __u32 fh,
						  struct flow_ctx *f, struct flow_out *o, bool up)
{
	struct aibl_conn *conn = f->conn;
	struct aibl_backend *be;
	bool pinned = false;
	__u32 id = conn->backend, rec;

	if (!f->tcp || (p->tcp_flags & AIBL_TCP_SYN) ||
	    !syn_match(fh, syn_now(), &f->sb, &f->tag, &f->way, &id, &pinned) ||
	    tcp_seq(ctx, p) != syn_isn(f->sb, f->way) + 1) {
		id = conn->backend;
		/* no new handshake on its tuple: its backend down, re-steered */
		if (!up)
			return FLOW_CHOOSE;
		if (f->tcp && !f->closing && !(p->tcp_flags & AIBL_TCP_SYN)) {
			if (conn->flags & AIBL_CONN_F_RST) {
				/* the flow went on after its RST: that RST was blind */
				conn->flags &= AIBL_CONN_F_PINNED;
				load_add(id, 1);
				count(AIBL_CNT_CONN_REOPEN);
			} else if ((conn->flags & AIBL_CONN_F_FIN) &&
				   conn_fin_forged(ctx, p, conn)) {
				conn->flags &= AIBL_CONN_F_PINNED;
				load_add(id, 1);
				count(AIBL_CNT_CONN_FIN_FORGED);
			}
		}
		flow_done(o, id, false, false, false);
		return FLOW_DONE;
	}
	be = bpf_map_lookup_elem(&aibl_backends, &id);
	rec = syn_word(f->sb, f->way);
	/* the record is used up either way */
	syn_free(f->sb, f->way);
	if (!be_up(be)) {
		/* the SYN's backend went down: a new choice; the new connection
		 * is open, not closing (its count moves to the choice at the
		 * re-steer) */
		conn->flags &= AIBL_CONN_F_PINNED;
		load_add(conn->backend, 1);
		return FLOW_CHOOSE;
	}
	count(AIBL_CNT_SYN_HIT);
	conn->backend = id;
	conn->flags =
	    (pinned ? AIBL_CONN_F_PINNED : 0) | (f->closing ? conn_closing_flags(ctx, p) : 0);
	conn->last_seen_ns = bpf_ktime_get_coarse_ns();
	load_syn_end(rec);
	if (!f->closing)
		load_add(id, 1);
	flow_done(o, id, true, pinned, false);
	return FLOW_DONE;
}

/*
 * An open flow's tuple reused by a new handshake: its previous connection
 * ended without this balancer seeing the end (a server's RST goes straight
 * to the client, as does the RST of a node a flow was re-steered to), the
 * client's port came round again, and this segment acknowledges the new
 * SYN (its ISN + 1), whose record may name another backend than the old
 * entry. Asked only of an entry last refreshed over CONN_REFRESH_NS ago (a
 * busy flow: once a second; no handshake lookup per packet).
 */
static __always_inline bool flow_reused(struct xdp_md *ctx, const struct pkt *p, __u32 fh,
					struct flow_ctx *f)
{
	__u32 id;
	bool pinned;

	if (p->tcp_flags & AIBL_TCP_SYN)
		return false;
	return syn_match(fh, syn_now(), &f->sb, &f->tag, &f->way, &id, &pinned) &&
	       tcp_seq(ctx, p) == syn_isn(f->sb, f->way) + 1;
}

/*
 * A packet of a flow in the connection table: its backend while that is up
 * (draining and overloaded backends keep their flows), else a new choice
 * that re-steers it.
 */
static __always_inline enum flow_step flow_established(struct xdp_md *ctx, const struct pkt *p,
						       __u32 fh, struct flow_ctx *f,
						       struct flow_out *o)
{
	struct aibl_conn *conn = f->conn;
	__u32 id = conn->backend;
	bool up = be_up(bpf_map_lookup_elem(&aibl_backends, &id));
	__u64 now;

	/* a closed flow's tuple reused by a new handshake takes its SYN's
	 * backend, whatever became of the old one */
	if (conn->flags & AIBL_CONN_F_CLOSING) {
		if (up)
			count(AIBL_CNT_CONN_HIT);
		return flow_closed(ctx, p, fh, f, o, up);
	}
	now = bpf_ktime_get_coarse_ns();
	/* its backend down: re-steered, unless this segment acknowledges a
	 * new SYN on the tuple (its old flow's end unseen), whose backend it
	 * takes, as below. Re-steered by a fresh choice, the handshake's ACK
	 * went one way and its SYN another */
	if (f->tcp && !f->closing && (!up || now - conn->last_seen_ns > CONN_REFRESH_NS) &&
	    flow_reused(ctx, p, fh, f)) {
		/* its old flow ended unseen: counted out, and its cached
		 * decision voided on every CPU; the new one as a closed
		 * tuple's reuse */
		if (up)
			count(AIBL_CNT_CONN_HIT);
		load_add(id, -1);
		fcache_forget(&p->fk);
		conn->flags = (conn->flags & AIBL_CONN_F_PINNED) | AIBL_CONN_F_CLOSING;
		return flow_closed(ctx, p, fh, f, o, up);
	}
	if (!up)
		return FLOW_CHOOSE;
	count(AIBL_CNT_CONN_HIT);
	if (f->closing) {
		/* RSS keeps a flow on one CPU: no race to count it twice */
		conn->flags = (conn->flags & AIBL_CONN_F_PINNED) | conn_closing_flags(ctx, p);
		load_add(id, -1);
		fcache_forget(&p->fk);
	}
	if (now - conn->last_seen_ns > CONN_REFRESH_NS)
		conn->last_seen_ns = now;
	flow_done(o, id, false, false, !f->closing);
	return FLOW_DONE;
}

/*
 * Not in the connection table. A TCP miss without SYN is mostly the packet
 * that completes a handshake: its SYN's backend is in the handshake table,
 * and the flow goes into the table (within the rate guard). Anything else
 * is unverified (docs/dataplane.md: insert policy): a flow the table has lost or never
 * held (mid-connection miss), a new UDP flow, or any of these spoofed from
 * random sources. RST, FIN and SYN+ACK misses are never inserted, the
 * others at most AIBL_UNVERIFIED_RATE a second per CPU, so no flood of them
 * can evict established flows.
 */
static __always_inline enum flow_step flow_miss(const struct pkt *p, const struct aibl_globals *g,
						__u32 fh, struct flow_ctx *f, struct choice *ch)
{
	bool synack = f->tcp && (p->tcp_flags & AIBL_TCP_SYN);
	bool midflow = f->tcp;

	count(AIBL_CNT_CONN_MISS);
	if (midflow && !synack) {
		if (syn_match(fh, syn_now(), &f->sb, &f->tag, &f->way, &ch->backend, &ch->pinned) &&
		    be_up(bpf_map_lookup_elem(&aibl_backends, &ch->backend))) {
			count(AIBL_CNT_SYN_HIT);
			if (f->closing) {
				/* an aborted handshake: its SYN's backend, no entry */
				count(AIBL_CNT_CONN_NOINSERT);
				return FLOW_CHOSEN;
			}
			f->track = conn_rate_admit(g);
			if (!f->track) {
				count(AIBL_CNT_CONN_UNTRACKED);
				f->counted = syn_counted(f->sb, f->way);
			}
			return FLOW_CHOSEN;
		}
	}
	if (midflow)
		count(AIBL_CNT_CONN_MISS_MIDFLOW);
	/*
	 * An untracked flow's later packets miss the table too: only the hash
	 * choice (pin, else Maglev slot with bounded probing) sends them all
	 * to one backend; rr and p2c would scatter them. A TCP miss without a
	 * handshake record may be such a packet: it always takes that choice.
	 */
	if (midflow)
		f->mode = AIBL_MODE_HASH;
	if (f->closing || synack || !unverified_admit()) {
		count(AIBL_CNT_CONN_NOINSERT);
		f->mode = AIBL_MODE_HASH;
		return FLOW_CHOOSE;
	}
	f->track = conn_rate_admit(g);
	if (!f->track) {
		count(AIBL_CNT_CONN_UNTRACKED);
		f->mode = AIBL_MODE_HASH;
	}
	return FLOW_CHOOSE;
}

/*
 * A SYN: its choice kept for the rest of the handshake. The new flow is
 * counted (service, backend, pin hit) when the handshake completes, so SYN
 * floods and retransmissions do not inflate new_flows.
 */
static __always_inline void flow_record(struct xdp_md *ctx, const struct pkt *p,
					const struct flow_ctx *f, const struct choice *ch,
					struct flow_out *o)
{
	count(AIBL_CNT_SYN_RECORD);
	syn_record(f->sb, f->way, f->tag, tcp_seq(ctx, p),
		   ch->backend | (ch->pinned ? AIBL_SYN_F_PINNED : 0) | f->syn_load, f->now_ts);
	flow_done(o, ch->backend, false, ch->pinned, false);
}

/*
 * The backend of a packet for service vip: its connection's, its
 * handshake's, or a new choice (recorded for a SYN, inserted otherwise).
 * 0 with o filled (its flow_hash too), or -1 (counted) to drop. ctx: only
 * read for a segment's sequence number (a SYN's, for its record; a closing
 * flow's). A global
 * function: verified once on its own, not once per parse path of the
 * caller.
 */
__noinline int aibl_flow(struct xdp_md *ctx, struct pkt *p, const struct aibl_vip *entry,
			 const struct aibl_globals *g, struct flow_out *o)
{
	struct flow_ctx f = {.way = -1};
	struct aibl_vip v, *vip = &v;
	enum flow_step step;
	struct choice ch;
	__u32 fh;

	if (!ctx || !p || !entry || !g || !o)
		return -1;
	vip_get(entry, &v);
	o->svc_id = v.svc_id;
	fh = aibl_hash_flow(&p->fk, g->hash_seed);
	o->flow_hash = fh;
	f.tcp = p->fk.proto == IPPROTO_TCP;
	f.closing = f.tcp && (p->tcp_flags & (AIBL_TCP_FIN | AIBL_TCP_RST));
	f.mode = vip->mode;

	if (vip->flags & AIBL_VIP_F_NO_CONNTRACK) {
		/* stateless service: every packet takes the service's mode */
		step = FLOW_CHOOSE;
	} else if (f.tcp && (p->tcp_flags & (AIBL_TCP_SYN | AIBL_TCP_ACK)) == AIBL_TCP_SYN) {
		step = flow_syn(g, fh, &f, &ch);
	} else {
		f.conn = bpf_map_lookup_elem(&aibl_conns, &p->fk);
		step = f.conn ? flow_established(ctx, p, fh, &f, o) : flow_miss(p, g, fh, &f, &ch);
	}

	if (step == FLOW_DONE)
		return 0;
	if (step == FLOW_CHOOSE && choose_flow(vip, p, fh, g->hash_seed, f.mode, &ch))
		return -1;
	if (f.record) {
		if (step == FLOW_CHOOSE && f.mode == AIBL_MODE_P2C) {
			f.syn_load = load_syn_begin(ch.backend);
			if (!ch.pinned && !(g->flags & AIBL_G_F_CLUSTER))
				load_prefill_begin(ch.backend);
		}
		flow_record(ctx, p, &f, &ch, o);
		return 0;
	}
	/* a new flow, or one moved off its backend */
	if (f.conn) {
		conn_resteer(f.conn, &p->fk, ch.backend, ch.pinned, f.tcp,
			     f.closing ? conn_closing_flags(ctx, p) : 0);
	} else if (f.track && !conn_insert(&p->fk, ch.backend, ch.pinned, f.tcp, f.closing)) {
		/* the handshake is complete */
		if (f.sb && f.way >= 0) {
			/* or it completed under the guard, its flow counted
			 * then, and a later packet of it is admitted now */
			__u32 rec = syn_word(f.sb, f.way);

			f.counted = rec & AIBL_SYN_F_COUNTED;
			syn_free(f.sb, f.way);
			load_syn_end(rec);
		}
		if (f.counted) {
			flow_done(o, ch.backend, false, ch.pinned, false);
			return 0;
		}
	} else if (f.counted ||
		   (f.tcp && (p->tcp_flags & (AIBL_TCP_SYN | AIBL_TCP_ACK)) != AIBL_TCP_SYN &&
		    (f.closing || step == FLOW_CHOOSE)) ||
		   (!f.tcp && !(vip->flags & AIBL_VIP_F_NO_CONNTRACK))) {
		/* a TCP packet that neither opens (a SYN of a stateless
		 * service) nor completes a handshake and is not admitted: a
		 * later packet of a handshake the guard refused an entry (its
		 * first packet counted it), a flow the table lost, an aborted
		 * handshake, or one spoofed from anywhere, a SYN+ACK too; or a
		 * UDP packet refused an entry, which may be any packet of its
		 * flow. Counting them would let a flood of any of these
		 * inflate new_flows, which aibld reads as its own flows */
		flow_done(o, ch.backend, false, ch.pinned, false);
		return 0;
	}
	flow_done(o, ch.backend, true, ch.pinned, false);
	return 0;
}

/* loaded as an xdp.frags program: the loader sets BPF_F_XDP_HAS_FRAGS
 * (libbpf adds it for SEC("xdp.frags") whatever the program's flags say,
 * which would leave no way to load the plain fallback) */
SEC("xdp")
int aibl_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct aibl_fcache_entry *fc = NULL;
	struct aibl_fcache_ctl *fctl;
	struct flow_out fo = {};
	struct aibl_globals *g;
	struct aibl_backend *be;
	struct aibl_vip *vip;
	struct pkt p = {};
	enum parse_rc rc;
	__u32 zero = 0, id, fh, svc;
	__be16 proto;

	proto = parse_l2(data, data_end, &p);
	if (proto == bpf_htons(ETH_P_IP))
		rc = parse_ipv4(data, data_end, p.l2_len, &p, false);
	else if (proto == bpf_htons(ETH_P_IPV6))
		rc = parse_ipv6(data, data_end, p.l2_len, &p, false);
	else
		goto pass;
	if (rc == PARSE_BAD && aibl_frags)
		rc = aibl_parse_frags(ctx, &p);
	if (rc == PARSE_NOADDR)
		goto pass;
	g = bpf_map_lookup_elem(&aibl_globals, &zero);
	if (!g)
		goto pass;
	/* not a VIP address: every path below would find no service and pass
	 * (bad headers, fragments, ICMP errors quoting this address alike) */
	if ((g->flags & AIBL_G_F_VIP_FILTER) &&
	    !filter_maybe(AIBL_FILTER_VIP, aibl_filter_vip_bit(&p.fk.dst, p.fk.family)))
		goto pass;
	if (rc == PARSE_OK && p.frag == FRAG_NONE) {
		if (p.fk.proto != IPPROTO_TCP && p.fk.proto != IPPROTO_UDP)
			goto other;
		/* an established flow's packet: the flow cache first, unless
		 * this CPU bypasses it for now */
		if ((g->flags & AIBL_G_F_FLOW_CACHE) &&
		    !(p.tcp_flags & (AIBL_TCP_SYN | AIBL_TCP_FIN | AIBL_TCP_RST)) &&
		    fcache_probe(&fctl)) {
			if (fcache_get(&p, g, &fc) && fc) {
				id = fc->backend;
				be = bpf_map_lookup_elem(&aibl_backends, &id);
				if (be_up(be)) {
					fcache_sample(fctl, true);
					count(AIBL_CNT_VIP_PKTS);
					count(AIBL_CNT_FCACHE_HIT);
					svc = fc->svc_id;
					fh = fc->flow_hash;
					goto send;
				}
			}
			fcache_sample(fctl, false);
		}
		vip = vip_find(&p.fk.dst, p.fk.family, p.fk.dport, p.fk.proto);
		if (!vip)
			goto pass;
	} else {
		goto other;
	}

	count(AIBL_CNT_VIP_PKTS);
	if (aibl_flow(ctx, &p, vip, g, &fo))
		return XDP_DROP;
	id = fo.backend;
	fh = fo.flow_hash;
	be = bpf_map_lookup_elem(&aibl_backends, &id);
	if (!be) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	svc = fo.svc_id;
	/* fc: set when the flow cache was looked up for this packet (flag on,
	 * no SYN/FIN/RST, not bypassed) and missed */
	if (fo.cache && fc)
		fcache_put(fc, &p, g, svc, id, fh);
send:
	/* one call site: a single copy of the forwarding code on the hot path */
	return send_to(ctx, &p, svc, id, be, g, fo.new_flow, fo.new_flow && fo.pinned, fh);

other:
	if ((p.fk.family == AIBL_AF_INET && p.fk.proto == IPPROTO_ICMP) ||
	    (p.fk.family == AIBL_AF_INET6 && p.fk.proto == IPPROTO_ICMPV6)) {
		/* a broken header is dropped when its address has a service,
		 * as for any other protocol (README: malformed packets) */
		if (rc != PARSE_OK)
			return bad_packet(ctx, &p, rc);
		return handle_icmp(ctx, &p, g);
	}
	if (rc != PARSE_OK)
		return bad_packet(ctx, &p, rc);
	if (p.frag && (p.fk.proto == IPPROTO_TCP || p.fk.proto == IPPROTO_UDP))
		return handle_frag(ctx, &p, g);
pass:
	count(AIBL_CNT_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
