/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packets for a VIP that carry no ports of their own to look the flow up
 * by: ICMP errors quoting a VIP flow (path MTU discovery for the backend
 * that holds it) and IP fragments. Both are steered without the
 * connection table's insert path.
 */
#ifndef AIBL_ICMP_H
#define AIBL_ICMP_H

#include "aibl_maps.h"
#include "aibl_parse.h"
#include "aibl_select.h"
#include "aibl_encap.h"

/* a choice without a connection entry: counted to its service and backend,
 * as a new flow when new_flow */
static __always_inline int send_new(struct xdp_md *ctx, struct pkt *p, const struct aibl_vip *vip,
				    const struct choice *ch, const struct aibl_globals *g,
				    __u32 flow_hash, bool new_flow)
{
	__u32 id = ch->backend;
	struct aibl_backend *be = bpf_map_lookup_elem(&aibl_backends, &id);

	if (!be) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	return send_to(ctx, p, vip->svc_id, id, be, g, new_flow, ch->pinned, flow_hash);
}

/*
 * Fragments: only the first carries ports, so the only service a later
 * fragment can be matched to is the address's port-0 wildcard entry. For
 * such a service keyed by client address every fragment is steered by the
 * client address alone (pin, else the Maglev slot of hash(client), same
 * bounded probing), never through the connection table, so all fragments
 * of a datagram reach the same backend in whatever order they come.
 * Anything else addressed to a VIP is dropped (drop_fragment).
 */
static __noinline int handle_frag(struct xdp_md *ctx, struct pkt *p, const struct aibl_globals *g)
{
	struct aibl_vip vip_copy;
	struct aibl_vip *vip = vip_lookup(&p->fk.dst, p->fk.family, 0, p->fk.proto, &vip_copy);
	struct choice ch;
	__u32 h;

	if (!vip) {
		/* a first fragment names its port: still ours, still dropped */
		if (p->frag == FRAG_FIRST && p->ports &&
		    vip_find(&p->fk.dst, p->fk.family, p->fk.dport, p->fk.proto))
			goto drop;
		count(AIBL_CNT_PASS);
		return XDP_PASS;
	}
	if (vip->session_key != AIBL_KEY_SRC_IP)
		goto drop;
	/* a first fragment to a port with a service of its own: unfragmented,
	 * the datagram is that port's, and its later fragments (no ports) the
	 * wildcard's, on another backend; steered as the wildcard's, it split
	 * from the 5-tuple's other datagrams. Dropped, as with no wildcard */
	if (p->frag == FRAG_FIRST && p->ports) {
		const struct aibl_vip *pv =
		    vip_find(&p->fk.dst, p->fk.family, p->fk.dport, p->fk.proto);

		if (pv && READ_ONCE(pv->svc_id) != vip->svc_id)
			goto drop;
	}
	count(AIBL_CNT_VIP_PKTS);
	h = aibl_hash_client(&p->fk, g->hash_seed);
	choose(vip, p, h, AIBL_MODE_HASH, &ch);
	if (ch.backend == AIBL_NO_BACKEND) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	count(AIBL_CNT_FRAG_FWD);
	/* ports differ between fragments: the client hash picks the outer
	 * source. A datagram is one new flow, counted at its first fragment */
	return send_new(ctx, p, vip, &ch, g, h, p->frag == FRAG_FIRST);
drop:
	count(AIBL_CNT_VIP_PKTS);
	count(AIBL_CNT_DROP_FRAG);
	return XDP_DROP;
}

/*
 * ICMP errors (destination unreachable incl. fragmentation needed, time
 * exceeded; ICMPv6 also packet too big) sent to a VIP by a router on the
 * path of a backend's reply quote that reply: VIP:port -> client. The
 * flow's backend is found by the reversed tuple in the connection table
 * (for hash services also by recomputing the choice), so path MTU
 * discovery works for the backend that holds the connection.
 */
static __noinline int handle_icmp(struct xdp_md *ctx, struct pkt *p, const struct aibl_globals *g)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u8 *ic = data + (p->l4_off & 0x7ff);
	struct pkt q = {};
	struct aibl_backend *be;
	struct aibl_conn *conn;
	const struct aibl_vip *vip;
	enum parse_rc rc;
	struct choice ch;
	__u32 id, svc;
	int ret;

	if ((void *)(ic + 8) > data_end || p->frag)
		goto pass;
	if (p->fk.family == AIBL_AF_INET) {
		if (ic[0] != ICMP_DEST_UNREACH && ic[0] != ICMP_TIME_EXCEEDED)
			goto pass;
		rc = parse_ipv4(data, data_end, (p->l4_off & 0x7ff) + 8, &q, true);
	} else {
		if (ic[0] != ICMPV6_DEST_UNREACH && ic[0] != ICMPV6_PKT_TOOBIG &&
		    ic[0] != ICMPV6_TIME_EXCEED)
			goto pass;
		rc = parse_ipv6(data, data_end, (p->l4_off & 0x7ff) + 8, &q, true);
	}
	/* only errors about packets this address sent are about a VIP flow */
	if (rc == PARSE_NOADDR || q.fk.family != p->fk.family || !addr_eq(&q.fk.src, &p->fk.dst) ||
	    (q.fk.proto != IPPROTO_TCP && q.fk.proto != IPPROTO_UDP))
		goto pass;
	if (rc != PARSE_OK || !q.ports) {
		/* quotes a VIP address but too little to find the flow */
		if (!vip_find(&q.fk.src, q.fk.family, 0, q.fk.proto))
			goto pass;
		goto drop;
	}
	vip = vip_find(&q.fk.src, q.fk.family, q.fk.sport, q.fk.proto);
	if (!vip)
		goto pass;

	/* reverse the quoted tuple in place: client -> VIP, the flow's key */
	{
		union aibl_addr a = q.fk.src;
		__be16 port = q.fk.sport;

		q.fk.src = q.fk.dst;
		q.fk.dst = a;
		q.fk.sport = q.fk.dport;
		q.fk.dport = port;
	}
	id = AIBL_NO_BACKEND;
	conn = bpf_map_lookup_elem(&aibl_conns, &q.fk);
	if (conn) {
		id = conn->backend;
		svc = READ_ONCE(vip->svc_id);
	} else {
		/* where a flow without an entry goes in every mode (aibl_flow):
		 * one the rate guard refused, one the table lost */
		struct aibl_vip v;

		vip_get(vip, &v);
		choose(&v, &q, session_hash(&v, &q, g->hash_seed), AIBL_MODE_HASH, &ch);
		id = ch.backend;
		svc = v.svc_id;
	}
	be = bpf_map_lookup_elem(&aibl_backends, &id);
	if (!be_up(be))
		goto drop;
	count(AIBL_CNT_VIP_PKTS);
	/* the flow's own hash: same outer source, same backend RSS queue */
	ret = send_to(ctx, p, svc, id, be, g, false, false, aibl_hash_flow(&q.fk, g->hash_seed));
	/* counted only when it left (not when too big or without next hop) */
	if (ret == XDP_TX || ret == XDP_REDIRECT)
		count(AIBL_CNT_ICMP_FWD);
	return ret;
drop:
	count(AIBL_CNT_VIP_PKTS);
	count(AIBL_CNT_DROP_ICMP);
	return XDP_DROP;
pass:
	count(AIBL_CNT_PASS);
	return XDP_PASS;
}

#endif /* AIBL_ICMP_H */
