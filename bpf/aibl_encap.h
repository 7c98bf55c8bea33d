/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * How a packet leaves for its backend: next hop (the backend's MAC, the
 * kernel's FIB, else the gateway), the L2 header rewritten with the VLAN
 * tags the frame came with, the outer IP header (ipip mode) or only the
 * MACs (l2dsr), and XDP_TX or a redirect.
 *
 * The ICMP answer to a packet too big to encapsulate is here too, not
 * with the received ICMP in aibl_icmp.h: forward() sends it, and it is
 * framed by the same L2 rewrite.
 */
#ifndef AIBL_ENCAP_H
#define AIBL_ENCAP_H

#include "aibl_maps.h"
#include "aibl_parse.h"

/* bytes of the offending packet quoted in a generated ICMP error: enough
 * for an IPv4 header with options / an IPv6 header with a few extension
 * headers, plus the L4 ports the client's stack needs to find its socket.
 * IPv4: the longest header (60 bytes) and the 8 more RFC 792 asks for;
 * Linux discards an error that quotes less (icmp_socket_deliver()), and
 * with 64 a client whose packets carry 40 bytes of options never learnt
 * its path MTU. A multiple of 4 (bpf_csum_diff). */
#define TOOBIG_QUOTE4 68
#define TOOBIG_QUOTE6 128

/* ---------------- L2 and next hop ---------------- */

struct next_hop {
	__u8 dmac[6];
	__u8 smac[6];
	__u32 ifindex; /* 0: out of the ingress interface (XDP_TX) */
};

/*
 * MACs sit at 2-byte aligned offsets in the map values, stack structs and
 * frames here: three 16-bit moves instead of the six byte moves that
 * __builtin_memcpy() makes of an __u8[6].
 */
static __always_inline bool mac_zero(const void *m)
{
	const __u16 *w = m;

	return !(w[0] | w[1] | w[2]);
}

static __always_inline void mac_copy(void *dst, const void *src)
{
	const __u16 *s = src;
	__u16 *d = dst;

	d[0] = s[0];
	d[1] = s[1];
	d[2] = s[2];
}

/* The backend entry has no MAC: ask the kernel's FIB, else the gateway. */
static __noinline int fib_nexthop(struct xdp_md *ctx, const struct aibl_backend *be,
				  const struct aibl_globals *g, const struct pkt *p,
				  struct next_hop *nh)
{
	struct bpf_fib_lookup fib = {};
	long rc;

	fib.ifindex = ctx->ingress_ifindex;
	fib.l4_protocol = p->fk.proto;
	if (be->family == AIBL_AF_INET) {
		fib.family = AF_INET;
		fib.tot_len = p->l3_len;
		fib.ipv4_dst = be->addr.v4;
	} else {
		fib.family = AF_INET6;
		fib.tot_len = p->l3_len;
		__builtin_memcpy(fib.ipv6_dst, be->addr.v6, 16);
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		mac_copy(nh->dmac, fib.dmac);
		if (mac_zero(g->if_mac))
			mac_copy(nh->smac, fib.smac);
		if (fib.ifindex != ctx->ingress_ifindex)
			nh->ifindex = fib.ifindex;
		return 0;
	}
	count(AIBL_CNT_FIB_FAIL);
	if (!mac_zero(g->gw_mac)) {
		mac_copy(nh->dmac, g->gw_mac);
		return 0;
	}
	count(AIBL_CNT_DROP_NO_FIB);
	return -1;
}

/* Next hop MAC: the backend's own, else the kernel's FIB, else the gateway. */
static __always_inline int resolve_nexthop(struct xdp_md *ctx, const struct aibl_backend *be,
					   const struct aibl_globals *g, const struct pkt *p,
					   struct next_hop *nh)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	nh->ifindex = 0;
	/* source MAC: configured, else the address the frame was sent to (us) */
	if (!mac_zero(g->if_mac))
		mac_copy(nh->smac, g->if_mac);
	else
		mac_copy(nh->smac, eth->h_dest);
	if (!mac_zero(be->mac)) {
		mac_copy(nh->dmac, be->mac);
		return 0;
	}
	return fib_nexthop(ctx, be, g, p, nh);
}

/* Writes Ethernet (+ the VLAN tags the frame came with) at data. */
static __always_inline int write_l2(void *data, void *data_end, const struct pkt *p,
				    const void *dmac, const void *smac, __be16 proto)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	mac_copy(eth->h_dest, dmac);
	mac_copy(eth->h_source, smac);
	if (p->nvlan == 0) {
		eth->h_proto = proto;
		return 0;
	}
	if (data + 22 > data_end)
		return -1;
	*(__u32 *)(data + 12) = p->vlan[0];
	if (p->nvlan == 1) {
		*(__be16 *)(data + 16) = proto;
		return 0;
	}
	*(__u32 *)(data + 16) = p->vlan[1];
	*(__be16 *)(data + 20) = proto;
	return 0;
}

static __always_inline int xmit(const struct next_hop *nh)
{
	if (nh->ifindex) {
		count(AIBL_CNT_REDIRECT);
		return bpf_redirect(nh->ifindex, 0);
	}
	count(AIBL_CNT_TX);
	return XDP_TX;
}

/* ---------------- encapsulation ---------------- */

/*
 * Answers an oversize packet with ICMP fragmentation-needed (IPv4 with DF)
 * or ICMPv6 packet-too-big, sent back out of the ingress interface from the
 * VIP, quoting the head of the packet. mtu is the path MTU the client
 * should use (our MTU minus the tunnel header).
 */
static __noinline int send_toobig(struct xdp_md *ctx, const struct pkt *p, __u32 mtu)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 dmac[3], smac[3];
	__u32 l2 = p->l2_len & 0x1f, quote, hdr;
	int delta;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	mac_copy(dmac, eth->h_source);
	mac_copy(smac, eth->h_dest);
	if (p->fk.family == AIBL_AF_INET) {
		quote = TOOBIG_QUOTE4;
		hdr = sizeof(struct iphdr) + sizeof(struct icmphdr);
	} else {
		quote = TOOBIG_QUOTE6;
		hdr = sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr);
	}
	if (data + l2 + quote > data_end)
		goto drop;
	/* [L2][quote...] -> [L2][IP][ICMP][quote] */
	if (bpf_xdp_adjust_head(ctx, -(int)hdr))
		goto drop;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* the whole frame: a multi-buffer one is cut from its last buffer */
	delta = (int)(l2 + hdr + quote) - (int)bpf_xdp_get_buff_len(ctx);
	if (delta < 0 && bpf_xdp_adjust_tail(ctx, delta))
		goto drop;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (write_l2(data, data_end, p, dmac, smac,
		     bpf_htons(p->fk.family == AIBL_AF_INET ? ETH_P_IP : ETH_P_IPV6)))
		goto drop;

	if (p->fk.family == AIBL_AF_INET) {
		struct iphdr *iph = data + l2;
		struct icmphdr *ic = (void *)(iph + 1);
		__s64 sum;

		if ((void *)(ic + 1) + TOOBIG_QUOTE4 > data_end)
			goto drop;
		*(__u16 *)iph = bpf_htons(0x4500 | 0xc0); /* version, ihl, tos CS6 */
		iph->tot_len = bpf_htons(hdr + quote);
		iph->id = 0;
		iph->frag_off = 0;
		iph->ttl = 64;
		iph->protocol = IPPROTO_ICMP;
		iph->check = 0;
		iph->saddr = p->fk.dst.v4; /* from the VIP the client talked to */
		iph->daddr = p->fk.src.v4;
		iph->check = ipv4_csum20(iph);
		ic->type = ICMP_DEST_UNREACH;
		ic->code = ICMP_FRAG_NEEDED;
		ic->checksum = 0;
		ic->un.frag.__unused = 0;
		ic->un.frag.mtu = bpf_htons(mtu);
		sum = bpf_csum_diff(NULL, 0, (void *)ic, sizeof(*ic) + TOOBIG_QUOTE4, 0);
		if (sum < 0)
			goto drop;
		ic->checksum = csum_fold(sum);
	} else {
		struct ipv6hdr *ip6 = data + l2;
		struct icmp6hdr *ic = (void *)(ip6 + 1);
		__u32 plen = sizeof(*ic) + TOOBIG_QUOTE6;
		__s64 sum;

		if ((void *)(ic + 1) + TOOBIG_QUOTE6 > data_end)
			goto drop;
		*(__be32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(plen);
		ip6->nexthdr = IPPROTO_ICMPV6;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, &p->fk.dst, 16);
		__builtin_memcpy(&ip6->daddr, &p->fk.src, 16);
		ic->icmp6_type = ICMPV6_PKT_TOOBIG;
		ic->icmp6_code = 0;
		ic->icmp6_cksum = 0;
		ic->icmp6_mtu = bpf_htonl(mtu);
		/* pseudo header: addresses, upper-layer length, next header */
		sum = bpf_csum_diff(NULL, 0, (void *)&ip6->saddr, 32, 0);
		if (sum < 0)
			goto drop;
		sum += bpf_htonl(plen);
		sum += bpf_htonl(IPPROTO_ICMPV6);
		sum = bpf_csum_diff(NULL, 0, (void *)ic, plen, csum_fold32(sum));
		if (sum < 0)
			goto drop;
		ic->icmp6_cksum = csum_fold(sum);
	}
	count(AIBL_CNT_TOOBIG_SENT);
	count(AIBL_CNT_TX);
	return XDP_TX;
drop:
	count(AIBL_CNT_DROP_TOO_BIG);
	return XDP_DROP;
}

/*
 * Sends the packet to backend be: IP-in-IP (outer source spread by the flow
 * hash so the backend's RSS spreads flows over its queues) or, in l2dsr
 * mode, with only the MACs rewritten.
 */
static __always_inline int forward(struct xdp_md *ctx, struct pkt *p, const struct aibl_backend *be,
				   const struct aibl_globals *g, __u32 flow_hash)
{
	void *data, *data_end;
	struct next_hop nh;
	__u32 outer, l2 = p->l2_len & 0x1f;
	__be32 saddr;

	if (g->fwd_mode == AIBL_FWD_L2DSR) {
		if (resolve_nexthop(ctx, be, g, p, &nh))
			return XDP_DROP;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		if (data + 12 > data_end)
			return XDP_DROP;
		mac_copy(data, nh.dmac);
		mac_copy(data + 6, nh.smac);
		return xmit(&nh);
	}

	if (be->family == AIBL_AF_INET) {
		if (p->fk.family != AIBL_AF_INET) {
			/* 6in4: no node-side decap for it */
			count(AIBL_CNT_DROP_ENCAP);
			return XDP_DROP;
		}
		outer = sizeof(struct iphdr);
	} else {
		outer = sizeof(struct ipv6hdr);
	}
	/* past the outer header's 16-bit length whatever the MTU (0: no
	 * check): a 64 KiB multi-buffer frame went out with an outer length
	 * wrapped around (IPv4: the packet and the outer header; IPv6: the
	 * payload, the inner packet) */
	if (p->l3_len + (be->family == AIBL_AF_INET ? outer : 0) > 0xffff) {
		count(AIBL_CNT_DROP_TOO_BIG);
		return XDP_DROP;
	}
	if (g->mtu && p->l3_len + outer > g->mtu) {
		/* the only ICMP forwarded is an error about a VIP flow, and an
		 * ICMP error is never answered with one (RFC 1122 3.2.2, RFC
		 * 4443 2.4(e)) */
		if ((g->flags & AIBL_G_F_TOOBIG_ICMP) && p->df && g->mtu > outer + 68 &&
		    p->fk.proto != IPPROTO_ICMP && p->fk.proto != IPPROTO_ICMPV6)
			return send_toobig(ctx, p, g->mtu - outer);
		count(AIBL_CNT_DROP_TOO_BIG);
		return XDP_DROP;
	}
	if (resolve_nexthop(ctx, be, g, p, &nh))
		return XDP_DROP;
	if (bpf_xdp_adjust_head(ctx, -(int)outer)) {
		count(AIBL_CNT_DROP_ENCAP);
		return XDP_DROP;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (write_l2(data, data_end, p, nh.dmac, nh.smac,
		     bpf_htons(be->family == AIBL_AF_INET ? ETH_P_IP : ETH_P_IPV6)))
		goto bad;

	if (be->family == AIBL_AF_INET) {
		struct iphdr *iph = data + l2;

		if ((void *)(iph + 1) > data_end)
			goto bad;
		*(__u16 *)iph = bpf_htons(0x4500 | p->tos);
		iph->tot_len = bpf_htons(p->l3_len + outer);
		iph->id = 0;
		iph->frag_off = bpf_htons(AIBL_IP_DF);
		iph->ttl = 64;
		iph->protocol = IPPROTO_IPIP;
		saddr = (g->src4 & ~g->src4_mask) | (bpf_htonl(flow_hash) & g->src4_mask);
		iph->saddr = saddr;
		iph->daddr = be->addr.v4;
		/* the one's complement sum of the words just written, from
		 * registers rather than read back from the frame */
		iph->check = csum_fold((__u64)bpf_htons(0x4500 | p->tos) +
				       bpf_htons(p->l3_len + outer) + bpf_htons(AIBL_IP_DF) +
				       bpf_htons(64 << 8 | IPPROTO_IPIP) + saddr + be->addr.v4);
	} else {
		struct ipv6hdr *ip6 = data + l2;

		if ((void *)(ip6 + 1) > data_end)
			goto bad;
		/* flow label from the flow hash: ECMP and RSS on the way spread */
		*(__be32 *)ip6 =
		    bpf_htonl(0x60000000 | ((__u32)p->tos << 20) | (flow_hash & 0xfffff));
		ip6->payload_len = bpf_htons(p->l3_len);
		ip6->nexthdr = p->fk.family == AIBL_AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, g->src6, 16);
		ip6->saddr.in6_u.u6_addr32[3] ^= bpf_htonl(flow_hash);
		__builtin_memcpy(&ip6->daddr, be->addr.v6, 16);
	}
	return xmit(&nh);
bad:
	count(AIBL_CNT_DROP_ENCAP);
	return XDP_DROP;
}

/* Counts the packet to its service and backend, then forwards it. */
static __always_inline int send_to(struct xdp_md *ctx, struct pkt *p, __u32 svc, __u32 id,
				   const struct aibl_backend *be, const struct aibl_globals *g,
				   bool new_flow, bool pinned, __u32 flow_hash)
{
	/* a multi-buffer frame counts whole: its length was read once, when
	 * it was parsed, so single-buffer frames pay no helper call */
	__u64 bytes = p->frame_len ?: ctx->data_end - ctx->data;

	traffic_add(bpf_map_lookup_elem(&aibl_svc_stats, &svc), bytes, new_flow, pinned);
	traffic_add(bpf_map_lookup_elem(&aibl_be_stats, &id), bytes, new_flow, pinned);
	return forward(ctx, p, be, g, flow_hash);
}

#endif /* AIBL_ENCAP_H */
