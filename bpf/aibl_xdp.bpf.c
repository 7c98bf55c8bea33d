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
 * The established path does no map writes except per-CPU counters and,
 * at most once a second per flow, the connection's last_seen and its flow
 * cache entry.
 *
 * This file keeps the packet's way; the parts it takes are in
 *   aibl_parse.h      headers and checksums (shared with aibl_decap)
 *   aibl_maps.h       every map, with why it exists; counters
 *   aibl_select.h     VIP lookup, backend choice (pins, hash/rr/p2c, probing)
 *   aibl_flowstate.h  rate guard, handshake table, active flows, flow cache
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

/* refresh a connection's last_seen at most this often */
#define CONN_REFRESH_NS 1000000000ULL

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
static __noinline int bad_packet(struct pkt *p, enum parse_rc rc)
{
	bool vip;

	if (p->fk.proto == IPPROTO_TCP || p->fk.proto == IPPROTO_UDP)
		vip = vip_lookup(&p->fk.dst, p->fk.family, p->ports ? p->fk.dport : 0, p->fk.proto);
	else
		vip = vip_lookup(&p->fk.dst, p->fk.family, 0, IPPROTO_TCP) ||
		      vip_lookup(&p->fk.dst, p->fk.family, 0, IPPROTO_UDP);
	if (!vip) {
		count(AIBL_CNT_PASS);
		return XDP_PASS;
	}
	count(AIBL_CNT_VIP_PKTS);
	return drop_reason(rc);
}

/* ---------------- per-flow decision ---------------- */

struct flow_out {
	__u32 backend;
	__u8 new_flow;
	__u8 pinned;
	__u8 cache; /* an established hit the flow cache may keep */
	__u8 pad;
};

/*
 * The backend of a packet for service vip: its connection's, its
 * handshake's, or a new choice (recorded for a SYN, inserted otherwise).
 * fh is the packet's aibl_hash_flow(). 0 with o filled, or -1 (counted) to
 * drop. A global function: verified once on its own, not once per parse
 * path of the caller.
 */
__noinline int aibl_flow(struct pkt *p, const struct aibl_vip *vip, const struct aibl_globals *g,
			 __u32 fh, struct flow_out *o)
{
	struct aibl_conn *conn = NULL, nc;
	struct aibl_syn_bucket *sb = NULL;
	struct aibl_backend *be;
	struct choice ch;
	bool tcp, closing, new_flow = false, pinned = false, track = false, syn = false;
	__u32 id, now_ts = 0;
	__u64 tag = 0;
	__u8 mode;
	int way = -1;

	if (!p || !vip || !g || !o)
		return -1;
	tcp = p->fk.proto == IPPROTO_TCP;
	closing = tcp && (p->tcp_flags & (AIBL_TCP_FIN | AIBL_TCP_RST));
	mode = vip->mode;

	if (vip->flags & AIBL_VIP_F_NO_CONNTRACK) {
		/* stateless service: every packet takes the service's mode */
	} else if (tcp && (p->tcp_flags & (AIBL_TCP_SYN | AIBL_TCP_ACK)) == AIBL_TCP_SYN) {
		if (conn_rate_engaged(g)) {
			/*
			 * Guard engaged: the handshake will not be admitted to
			 * the connection table, so its later packets will take
			 * the hash choice; the SYN takes it too, whatever the
			 * service's mode, and is not recorded.
			 */
			count(AIBL_CNT_CONN_UNTRACKED);
			mode = AIBL_MODE_HASH;
		} else {
			/*
			 * A SYN opens a handshake: its choice goes into the
			 * small handshake table, not the connection table (see
			 * aibl.h); a retransmitted SYN follows the first one
			 * while that backend still takes new flows.
			 */
			now_ts = syn_now();
			if (syn_match(fh, now_ts, &sb, &tag, &way, &id, &pinned)) {
				be = bpf_map_lookup_elem(&aibl_backends, &id);
				if (be_usable(be)) {
					syn = true;
					goto record;
				}
			}
			syn = sb != NULL;
		}
	} else {
		conn = bpf_map_lookup_elem(&aibl_conns, &p->fk);
		if (conn) {
			id = conn->backend;
			be = bpf_map_lookup_elem(&aibl_backends, &id);
			if (be_up(be) && !(conn->flags & AIBL_CONN_F_CLOSING)) {
				/* established: draining/overloaded keep their flows */
				__u64 now;

				count(AIBL_CNT_CONN_HIT);
				if (closing) {
					/* RSS keeps a flow on one CPU: no race to count it twice */
					conn->flags |= AIBL_CONN_F_CLOSING;
					load_add(id, -1);
					fcache_forget(&p->fk);
				}
				now = bpf_ktime_get_coarse_ns();
				if (now - conn->last_seen_ns > CONN_REFRESH_NS)
					conn->last_seen_ns = now;
				o->cache = !closing;
				goto out;
			}
			if (be_up(be)) {
				/*
				 * A closed flow: its last packets, or its tuple
				 * reused by a new handshake (a client port used
				 * again), which then takes the new SYN's backend.
				 */
				count(AIBL_CNT_CONN_HIT);
				if (!tcp || (p->tcp_flags & AIBL_TCP_SYN) ||
				    !syn_match(fh, syn_now(), &sb, &tag, &way, &id, &pinned))
					goto out;
				be = bpf_map_lookup_elem(&aibl_backends, &id);
				/* the record is used up either way */
				syn_free(sb, way);
				if (!be_up(be)) {
					/* the SYN's backend went down: a new choice;
					 * the new connection is open, not closing (its
					 * count moves to the choice at the re-steer) */
					conn->flags &= ~AIBL_CONN_F_CLOSING;
					load_add(conn->backend, 1);
					goto pick;
				}
				count(AIBL_CNT_SYN_HIT);
				new_flow = true;
				conn->backend = id;
				conn->flags = (pinned ? AIBL_CONN_F_PINNED : 0) |
					      (closing ? AIBL_CONN_F_CLOSING : 0);
				conn->last_seen_ns = bpf_ktime_get_coarse_ns();
				if (!closing)
					load_add(id, 1);
				goto out;
			}
		} else {
			count(AIBL_CNT_CONN_MISS);
			/*
			 * A TCP miss without SYN is mostly the packet that
			 * completes a handshake: its SYN's backend is in the
			 * handshake table. Otherwise it is a flow the table has
			 * lost or never held (README: mid-connection miss).
			 */
			if (tcp && !(p->tcp_flags & AIBL_TCP_SYN)) {
				if (syn_match(fh, syn_now(), &sb, &tag, &way, &id, &pinned)) {
					be = bpf_map_lookup_elem(&aibl_backends, &id);
					if (be_up(be)) {
						count(AIBL_CNT_SYN_HIT);
						new_flow = true;
						track = conn_rate_admit(g);
						if (!track)
							count(AIBL_CNT_CONN_UNTRACKED);
						goto insert;
					}
				}
				count(AIBL_CNT_CONN_MISS_MIDFLOW);
			}
			/*
			 * An untracked flow's later packets miss the table too:
			 * only the hash choice (pin, else Maglev slot with
			 * bounded probing) sends them all to one backend; rr
			 * and p2c would scatter them. With the guard on, a TCP
			 * miss without SYN may be such a packet admitted once
			 * the flood is over: it takes the same choice.
			 */
			track = conn_rate_admit(g);
			if (!track) {
				count(AIBL_CNT_CONN_UNTRACKED);
				mode = AIBL_MODE_HASH;
			} else if (g->max_conn_rate && tcp && !(p->tcp_flags & AIBL_TCP_SYN)) {
				mode = AIBL_MODE_HASH;
			}
		}
	}

pick:
	choose(vip, p, vip->session_key == AIBL_KEY_FIVE_TUPLE ? fh : session_hash(vip, p, g->hash_seed),
	       mode, &ch);
	id = ch.backend;
	pinned = ch.pinned;
	be = bpf_map_lookup_elem(&aibl_backends, &id);
	if (!be) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return -1;
	}
	if (syn) {
record:
		/*
		 * A SYN: its choice kept for the rest of the handshake. The
		 * new flow is counted (service, backend, pin hit) when the
		 * handshake completes, so SYN floods and retransmissions do
		 * not inflate new_flows.
		 */
		count(AIBL_CNT_SYN_RECORD);
		syn_record(sb, way, tag, id | (pinned ? AIBL_SYN_F_PINNED : 0), now_ts);
		goto out;
	}
	new_flow = true;
insert:
	if (conn) {
		/* its backend went down: re-steer and move its active count */
		count(AIBL_CNT_RESTEER);
		fcache_forget(&p->fk);
		if (tcp && !(conn->flags & AIBL_CONN_F_CLOSING)) {
			load_add(conn->backend, -1);
			if (closing)
				conn->flags |= AIBL_CONN_F_CLOSING;
			else
				load_add(id, 1);
		}
		conn->backend = id;
		conn->flags = (conn->flags & AIBL_CONN_F_CLOSING) | (pinned ? AIBL_CONN_F_PINNED : 0);
		conn->last_seen_ns = bpf_ktime_get_coarse_ns();
	} else if (track) {
		nc.backend = id;
		nc.flags = (pinned ? AIBL_CONN_F_PINNED : 0) | (closing ? AIBL_CONN_F_CLOSING : 0);
		nc.last_seen_ns = bpf_ktime_get_coarse_ns();
		if (bpf_map_update_elem(&aibl_conns, &p->fk, &nc, BPF_ANY)) {
			count(AIBL_CNT_CONN_INSERT_FAIL);
		} else {
			if (tcp && !closing)
				load_add(id, 1);
			/* the handshake is complete */
			if (sb && way >= 0)
				syn_free(sb, way);
		}
	}
out:
	o->backend = id;
	o->new_flow = new_flow;
	o->pinned = pinned;
	return 0;
}

SEC("xdp")
int aibl_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct aibl_fcache_entry *fc = NULL;
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
		/* an established flow's packet: the flow cache first */
		if ((g->flags & AIBL_G_F_FLOW_CACHE) &&
		    !(p.tcp_flags & (AIBL_TCP_SYN | AIBL_TCP_FIN | AIBL_TCP_RST)) &&
		    fcache_get(&p, g, &fc) && fc) {
			id = fc->backend;
			be = bpf_map_lookup_elem(&aibl_backends, &id);
			if (be_up(be)) {
				count(AIBL_CNT_VIP_PKTS);
				count(AIBL_CNT_FCACHE_HIT);
				svc = fc->svc_id;
				fh = fc->flow_hash;
				goto send;
			}
		}
		vip = vip_lookup(&p.fk.dst, p.fk.family, p.fk.dport, p.fk.proto);
		if (!vip)
			goto pass;
	} else {
		goto other;
	}

	count(AIBL_CNT_VIP_PKTS);
	fh = aibl_hash_flow(&p.fk, g->hash_seed);
	if (aibl_flow(&p, vip, g, fh, &fo))
		return XDP_DROP;
	id = fo.backend;
	be = bpf_map_lookup_elem(&aibl_backends, &id);
	if (!be) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	svc = vip->svc_id;
	/* fc: set when the flow cache was looked up for this packet (flag on,
	 * no SYN/FIN/RST) and missed */
	if (fo.cache && fc)
		fcache_put(fc, &p, g, svc, id, fh);
send:
	/* one call site: a single copy of the forwarding code on the hot path */
	return send_to(ctx, &p, svc, id, be, g, fo.new_flow, fo.new_flow && fo.pinned, fh);

other:
	if ((p.fk.family == AIBL_AF_INET && p.fk.proto == IPPROTO_ICMP) ||
	    (p.fk.family == AIBL_AF_INET6 && p.fk.proto == IPPROTO_ICMPV6)) {
		if (rc != PARSE_OK)
			goto pass;
		return handle_icmp(ctx, &p, g);
	}
	if (rc != PARSE_OK)
		return bad_packet(&p, rc);
	if (p.frag && (p.fk.proto == IPPROTO_TCP || p.fk.proto == IPPROTO_UDP))
		return handle_frag(ctx, &p, g);
pass:
	count(AIBL_CNT_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
