/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing and checksum helpers for the aibl BPF programs, in the
 * style of xdp-tools' parsing_helpers.h: every header read is preceded by a
 * bounds check against data_end, offsets are kept small and bounded so the
 * verifier can follow them, and byte order lives in the field types.
 */
#ifndef AIBL_PARSE_H
#define AIBL_PARSE_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aibl_uapi.h"
#include "aibl.h"
#include "aibl_hash.h"

#define AIBL_IP_DF	0x4000
#define AIBL_IP_MF	0x2000
#define AIBL_IP_OFFSET	0x1fff
#define AIBL_IP6_MF	0x0001
#define AIBL_IP6_OFFSET 0xfff8

#define AIBL_TCP_FIN 0x01
#define AIBL_TCP_SYN 0x02
#define AIBL_TCP_RST 0x04
#define AIBL_TCP_ACK 0x10

/* the largest header offset we follow: two VLAN tags + IPv4 with options
 * or IPv6 with extension headers, and an ICMP error quoting another */
#define AIBL_MAX_OFF 2048

/* Result of parsing an IP packet (or the packet quoted in an ICMP error). */
enum parse_rc {
	PARSE_OK = 0,
	PARSE_NOADDR, /* the IP header itself is cut or not IP: addresses unknown */
	PARSE_TRUNC,  /* a header after the fixed IP header is cut */
	PARSE_BAD,    /* lengths or fields contradict each other */
	PARSE_EXT,    /* IPv6 extension header chain too long or unparsable */
};

enum frag_kind {
	FRAG_NONE = 0,
	FRAG_FIRST = 1, /* offset 0, more fragments: carries the L4 header */
	FRAG_LATER = 2, /* offset > 0: no L4 header */
};

struct pkt {
	/* src, dst, ports (when known), proto, family; 8-byte aligned: read
	 * as five words by aibl_fcache_index() and the flow cache */
	struct aibl_flow_key fk __attribute__((aligned(8)));
	__u32 l2_len;  /* Ethernet + VLAN tags */
	__u32 l4_off;  /* from the start of the frame */
	__u32 l3_len;  /* IP total length (IPv6: 40 + payload length) */
	__u32 vlan[2]; /* raw TPID+TCI of the tags, restored when re-framing */
	__u8 nvlan;
	__u8 frag; /* enum frag_kind */
	__u8 tcp_flags;
	__u8 tos;   /* IPv4 TOS / IPv6 traffic class, copied to the outer header */
	__u8 df;    /* IPv4 don't-fragment (IPv6: always set) */
	__u8 ports; /* the ports in fk were read */
	__u16 pad;
	/* a multi-buffer frame's whole length (aibl_parse_frags()), else 0:
	 * the first buffer, [data, data_end), is the frame */
	__u32 frame_len;
};

/* Ethernet and up to two 802.1Q / 802.1ad tags. Returns the L3 ethertype
 * (network order) or 0 when the frame is too short or has more tags. */
static __always_inline __be16 parse_l2(void *data, void *data_end, struct pkt *p)
{
	struct ethhdr *eth = data;
	__be16 proto;
	__u32 off = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		__be16 *tag;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		tag = data + off;
		if ((void *)(tag + 2) > data_end)
			return 0;
		/* raw TPID + TCI, the TPID sits 2 bytes before the TCI */
		p->vlan[i] = *(__u32 *)((void *)tag - 2);
		proto = tag[1];
		off += 4;
		p->nvlan = i + 1;
	}
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return 0; /* a third tag: not ours to understand */
	p->l2_len = off;
	return proto;
}

/*
 * Parses the L4 ports at p->l4_off. For a packet quoted in an ICMP error
 * only the ports are needed (8 bytes are guaranteed by RFC 792).
 */
static __always_inline enum parse_rc parse_l4(void *data, void *data_end, struct pkt *p,
					      bool quoted, __u32 l3_end)
{
	void *l4 = data + p->l4_off;
	struct tcphdr *th = l4;

	if (p->fk.proto != IPPROTO_TCP && p->fk.proto != IPPROTO_UDP)
		return PARSE_OK;
	/* one pointer for the check and the reads: clang would otherwise
	 * recompute data + l4_off for the reads (aibl_decap), a copy the
	 * verifier has no bound for */
	barrier_var(l4);
	/* both headers start with sport, dport: they tell which service */
	if (l4 + 4 > data_end)
		return PARSE_TRUNC;
	p->fk.sport = *(__be16 *)l4;
	p->fk.dport = *(__be16 *)(l4 + 2);
	p->ports = 1;
	if (quoted)
		return PARSE_OK;
	if (p->fk.proto == IPPROTO_UDP)
		return l4 + sizeof(struct udphdr) > data_end ? PARSE_TRUNC : PARSE_OK;
	if ((void *)(th + 1) > data_end)
		return PARSE_TRUNC;
	p->tcp_flags = ((__u8 *)th)[13];
	/* the header's own length must fit in the packet the IP header
	 * declares (a data offset of 15 on a 20-byte header does not) */
	if (th->doff < 5 || p->l4_off + th->doff * 4 > l3_end)
		return PARSE_BAD;
	return PARSE_OK;
}

/*
 * A whole (not quoted) packet's L4 header must lie inside the length its IP
 * header declares. Bytes after that are Ethernet padding or a length lie:
 * parsing ports from them and forwarding would send the backend a packet
 * whose header is outside the packet (found by tests/bpf/test_xdp_fuzz.c).
 */
static __always_inline __u32 l4_min(__u8 proto)
{
	if (proto == IPPROTO_TCP)
		return sizeof(struct tcphdr);
	if (proto == IPPROTO_UDP)
		return sizeof(struct udphdr);
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
		return 8;
	return 0;
}

/*
 * IPv4 at off. quoted: only the head of the packet is at hand, so its
 * lengths describe more than the bytes up to data_end, and of L4 only the
 * ports are read: the packet quoted in an ICMP error, or at TC an skb
 * whose linear data ends before the packet does (aibl_decap).
 * frame_len: the whole frame's length when it reaches past data_end (a
 * multi-buffer XDP frame: headers are read from its first buffer, lengths
 * checked against the whole), else 0.
 */
static __always_inline enum parse_rc parse_ipv4_len(void *data, void *data_end, __u32 off,
						    struct pkt *p, bool quoted, __u32 frame_len)
{
	struct iphdr *iph = data + off;
	enum parse_rc rc, bad = PARSE_OK;
	__u32 hlen, tot;

	if ((void *)(iph + 1) > data_end || iph->version != 4)
		return PARSE_NOADDR;
	p->fk.family = AIBL_AF_INET;
	p->fk.src.v4 = iph->saddr;
	p->fk.dst.v4 = iph->daddr;
	p->fk.proto = iph->protocol;
	p->tos = iph->tos;
	p->df = !!(iph->frag_off & bpf_htons(AIBL_IP_DF));
	hlen = iph->ihl * 4;
	tot = bpf_ntohs(iph->tot_len);
	p->l3_len = tot;
	if (hlen < sizeof(*iph) || tot < hlen)
		return PARSE_BAD;
	if (data + off + hlen > data_end)
		return PARSE_TRUNC; /* options cut */
	/* Ethernet padding may follow the packet; a packet longer than the
	 * frame cannot be forwarded honestly. Read on for the ports: they tell
	 * whether it was addressed to a service. */
	if (!quoted &&
	    ((frame_len ? off + tot > frame_len : data + off + tot > data_end) ||
	     (!(iph->frag_off & bpf_htons(AIBL_IP_OFFSET)) && tot < hlen + l4_min(p->fk.proto))))
		bad = PARSE_BAD;
	p->l4_off = off + hlen;
	if (iph->frag_off & bpf_htons(AIBL_IP_MF | AIBL_IP_OFFSET)) {
		if (iph->frag_off & bpf_htons(AIBL_IP_OFFSET)) {
			p->frag = FRAG_LATER;
			return bad;
		}
		p->frag = FRAG_FIRST;
	}
	rc = parse_l4(data, data_end, p, quoted, off + tot);
	return rc != PARSE_OK ? rc : bad;
}

static __always_inline enum parse_rc parse_ipv4(void *data, void *data_end, __u32 off,
						struct pkt *p, bool quoted)
{
	return parse_ipv4_len(data, data_end, off, p, quoted, 0);
}

struct ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
	__be16 frag_off; /* only meaningful in a fragment header */
};

/* IPv6 at off and its extension headers; quoted and frame_len as for
 * parse_ipv4_len() */
static __always_inline enum parse_rc parse_ipv6_len(void *data, void *data_end, __u32 off,
						    struct pkt *p, bool quoted, __u32 frame_len)
{
	struct ipv6hdr *ip6 = data + off;
	enum parse_rc rc, bad = PARSE_OK;
	__u32 l3_end;
	__u8 nh;

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
		return PARSE_NOADDR;
	p->fk.family = AIBL_AF_INET6;
	__builtin_memcpy(&p->fk.src, &ip6->saddr, 16);
	__builtin_memcpy(&p->fk.dst, &ip6->daddr, 16);
	p->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	p->df = 1;
	p->l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	nh = ip6->nexthdr;
	p->fk.proto = nh;
	/* jumbograms never reach XDP; longer than the frame: inconsistent */
	if (!quoted && (ip6->payload_len == 0 || (frame_len ? off + p->l3_len > frame_len
							    : data + off + p->l3_len > data_end)))
		bad = PARSE_BAD;
	l3_end = off + p->l3_len;
	off += sizeof(*ip6);

#pragma unroll
	for (int i = 0; i < AIBL_MAX_EXT_HDRS; i++) {
		struct ipv6_ext *ext = data + off;

		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
		    nh != IPPROTO_FRAGMENT && nh != IPPROTO_AH)
			goto l4;
		if ((void *)(ext + 1) > data_end)
			return PARSE_TRUNC;
		if (nh == IPPROTO_FRAGMENT) {
			__u16 fo = bpf_ntohs(ext->frag_off);

			nh = ext->nexthdr;
			off += 8;
			/* an atomic fragment (offset 0, no MF) is a whole packet */
			if (fo & AIBL_IP6_OFFSET) {
				p->frag = FRAG_LATER;
				p->fk.proto = nh;
				p->l4_off = off;
				if (!quoted && off > l3_end)
					bad = PARSE_BAD; /* extension headers past the packet */
				return bad;
			}
			if (fo & AIBL_IP6_MF) {
				p->frag = FRAG_FIRST;
				/* another extension header after this one
				 * (Destination Options, AH): its later fragments
				 * name that header, not TCP or UDP, and are not
				 * steered; nor is this one, so the datagram stays
				 * whole (walked on to its ports, it went to a
				 * backend and the rest to the host) */
				if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
				    nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT ||
				    nh == IPPROTO_AH) {
					p->fk.proto = nh;
					p->l4_off = off;
					if (!quoted && off > l3_end)
						bad = PARSE_BAD;
					return bad;
				}
			}
		} else if (nh == IPPROTO_AH) {
			nh = ext->nexthdr;
			off += (ext->hdrlen + 2) * 4;
		} else {
			nh = ext->nexthdr;
			off += (ext->hdrlen + 1) * 8;
		}
		if (off > AIBL_MAX_OFF)
			return PARSE_EXT;
	}
	if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	    nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH)
		return PARSE_EXT; /* more headers than we walk */
l4:
	p->fk.proto = nh;
	p->l4_off = off;
	if (!quoted && off + l4_min(nh) > l3_end)
		bad = PARSE_BAD;
	rc = parse_l4(data, data_end, p, quoted, l3_end);
	return rc != PARSE_OK ? rc : bad;
}

static __always_inline enum parse_rc parse_ipv6(void *data, void *data_end, __u32 off,
						struct pkt *p, bool quoted)
{
	return parse_ipv6_len(data, data_end, off, p, quoted, 0);
}

/* ---- checksums ---- */

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* 64-bit one's complement sum to 32 bits, not inverted: a csum_diff seed */
static __always_inline __u32 csum_fold32(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return sum;
}

/* header checksum of a 20-byte IPv4 header whose check field is zero */
static __always_inline __u16 ipv4_csum20(const void *hdr)
{
	const __u32 *w = hdr;
	__u64 sum = 0;

#pragma unroll
	for (int i = 0; i < 5; i++)
		sum += w[i];
	return csum_fold(sum);
}

#endif /* AIBL_PARSE_H */
