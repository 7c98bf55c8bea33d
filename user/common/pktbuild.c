// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include "pktbuild.h"

static uint8_t *pkt__push(struct pkt_buf *b, enum pkt_layer_type t, size_t len)
{
	uint8_t *p;

	if (b->len + len > PKT_MAX || b->n >= PKT_MAX_LAYERS) {
		fprintf(stderr, "pkt: packet too long\n");
		return NULL;
	}
	p = b->buf + b->len;
	memset(p, 0, len);
	b->l[b->n].type = t;
	b->l[b->n].off = b->len;
	b->l[b->n].len = len;
	b->n++;
	b->len += len;
	return p;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v);
}

void pkt__init(struct pkt_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void pkt__eth(struct pkt_buf *b, const uint8_t dst[6], const uint8_t src[6])
{
	uint8_t *p = pkt__push(b, PKT_L_ETH, 14);

	if (!p)
		return;
	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
}

void pkt__vlan(struct pkt_buf *b, uint16_t tpid, uint16_t tci)
{
	uint8_t *p;

	/* a tag is TPID+TCI between the MACs and the type: the TPID goes
	 * into the previous type field, the tag carries TCI + next type */
	if (b->n == 0)
		return;
	p = pkt__push(b, PKT_L_VLAN, 4);
	if (!p)
		return;
	put16(b->buf + b->l[b->n - 2].off + b->l[b->n - 2].len - 2, tpid);
	put16(p, tci);
}

void pkt__ipv4_bin(struct pkt_buf *b, const void *src, const void *dst,
		   const struct pkt_ip4_opts *o)
{
	struct pkt_ip4_opts def = {.ttl = 64};
	size_t olen;
	uint8_t *p;

	if (!o)
		o = &def;
	olen = o->options_len;
	p = pkt__push(b, PKT_L_IPV4, 20 + olen);
	if (!p)
		return;
	p[0] = 0x40 | ((20 + olen) / 4);
	p[1] = o->tos;
	put16(p + 4, o->id);
	put16(p + 6, o->frag_off ? o->frag_off : (o->no_df ? 0 : 0x4000));
	p[8] = o->ttl ? o->ttl : 64;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	if (olen)
		memcpy(p + 20, o->options, olen);
}

void pkt__ipv4(struct pkt_buf *b, const char *src, const char *dst, const struct pkt_ip4_opts *o)
{
	uint8_t s[4] = {0}, d[4] = {0};

	inet_pton(AF_INET, src, s);
	inet_pton(AF_INET, dst, d);
	pkt__ipv4_bin(b, s, d, o);
}

void pkt__ipv6_bin(struct pkt_buf *b, const void *src, const void *dst, uint8_t tclass,
		   uint32_t flow_label)
{
	uint8_t *p = pkt__push(b, PKT_L_IPV6, 40);

	if (!p)
		return;
	put32(p, 0x60000000u | ((uint32_t)tclass << 20) | (flow_label & 0xfffff));
	p[7] = 64;
	memcpy(p + 8, src, 16);
	memcpy(p + 24, dst, 16);
}

void pkt__ipv6(struct pkt_buf *b, const char *src, const char *dst, uint8_t tclass,
	       uint32_t flow_label)
{
	uint8_t s[16] = {0}, d[16] = {0};

	inet_pton(AF_INET6, src, s);
	inet_pton(AF_INET6, dst, d);
	pkt__ipv6_bin(b, s, d, tclass, flow_label);
}

void pkt__ipv6_ext(struct pkt_buf *b, uint8_t type, uint8_t len8)
{
	uint8_t *p = pkt__push(b, PKT_L_IPV6_EXT, 8 + 8 * (size_t)len8);

	if (!p)
		return;
	p[1] = len8;
	/* PadN over the rest so the options parse */
	p[2] = 1;
	p[3] = 4 + 8 * len8;
	b->l[b->n - 1].ext_type = type;
}

void pkt__ipv6_frag(struct pkt_buf *b, uint16_t offset, bool more, uint32_t id)
{
	uint8_t *p = pkt__push(b, PKT_L_IPV6_FRAG, 8);

	if (!p)
		return;
	put16(p + 2, (offset & 0xfff8) | (more ? 1 : 0));
	put32(p + 4, id);
}

void pkt__tcp_seq(struct pkt_buf *b, uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq,
		  uint32_t ack_seq, uint16_t window)
{
	uint8_t *p = pkt__push(b, PKT_L_TCP, 20);

	if (!p)
		return;
	put16(p, sport);
	put16(p + 2, dport);
	put32(p + 4, seq);
	put32(p + 8, ack_seq);
	p[12] = 5 << 4;
	p[13] = flags;
	put16(p + 14, window);
}

void pkt__tcp(struct pkt_buf *b, uint16_t sport, uint16_t dport, uint8_t flags)
{
	/* a SYN's number is its ISN: what comes after it starts at ISN + 1 */
	bool syn = (flags & (PKT_TCP_SYN | PKT_TCP_ACK)) == PKT_TCP_SYN;

	pkt__tcp_seq(b, sport, dport, flags, syn ? 999 : 1000, flags & PKT_TCP_ACK ? 2000 : 0,
		     65535);
}

void pkt__udp(struct pkt_buf *b, uint16_t sport, uint16_t dport)
{
	uint8_t *p = pkt__push(b, PKT_L_UDP, 8);

	if (!p)
		return;
	put16(p, sport);
	put16(p + 2, dport);
}

/* ICMP and ICMPv6 share the header layout; only the checksum differs */
static void pkt__icmp_any(struct pkt_buf *b, enum pkt_layer_type t, uint8_t type, uint8_t code,
			  uint32_t rest)
{
	uint8_t *p = pkt__push(b, t, 8);

	if (!p)
		return;
	p[0] = type;
	p[1] = code;
	put32(p + 4, rest);
}

void pkt__icmp(struct pkt_buf *b, uint8_t type, uint8_t code, uint32_t rest)
{
	pkt__icmp_any(b, PKT_L_ICMP, type, code, rest);
}

void pkt__icmp6(struct pkt_buf *b, uint8_t type, uint8_t code, uint32_t rest)
{
	pkt__icmp_any(b, PKT_L_ICMP6, type, code, rest);
}

void pkt__payload(struct pkt_buf *b, const void *data, size_t len)
{
	uint8_t *p = pkt__push(b, PKT_L_RAW, len);

	if (p)
		memcpy(p, data, len);
}

void pkt__fill(struct pkt_buf *b, size_t n)
{
	uint8_t *p = pkt__push(b, PKT_L_RAW, n);

	for (size_t i = 0; p && i < n; i++)
		p[i] = (uint8_t)(i * 7 + 3);
}

uint32_t pkt__csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t s = sum;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 32)
		s = (s & 0xffffffff) + (s >> 32);
	return (uint32_t)s;
}

uint16_t pkt__csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* next-protocol number for the layer following an IP header */
static int l3_proto_of(enum pkt_layer_type t, const struct pkt_layer *l)
{
	switch (t) {
	case PKT_L_IPV4:
		return 4;
	case PKT_L_IPV6:
		return 41;
	case PKT_L_IPV6_EXT:
		return l->ext_type;
	case PKT_L_IPV6_FRAG:
		return 44;
	case PKT_L_TCP:
		return 6;
	case PKT_L_UDP:
		return 17;
	case PKT_L_ICMP:
		return 1;
	case PKT_L_ICMP6:
		return 58;
	default:
		return -1;
	}
}

static int ethertype_of(enum pkt_layer_type t)
{
	switch (t) {
	case PKT_L_IPV4:
		return 0x0800;
	case PKT_L_IPV6:
		return 0x86dd;
	default:
		return -1;
	}
}

/* pseudo header sum of the nearest IP layer before layer i */
static uint32_t pseudo_sum(const struct pkt_buf *b, int i, uint8_t proto, size_t len)
{
	for (int j = i - 1; j >= 0; j--) {
		const uint8_t *ip = b->buf + b->l[j].off;
		uint32_t s = 0;
		uint8_t tail[8] = {0};

		if (b->l[j].type == PKT_L_IPV4) {
			s = pkt__csum_add(s, ip + 12, 8);
			tail[1] = proto;
			put16(tail + 2, len);
			return pkt__csum_add(s, tail, 4);
		}
		if (b->l[j].type == PKT_L_IPV6) {
			s = pkt__csum_add(s, ip + 8, 32);
			put32(tail, len);
			tail[7] = proto;
			return pkt__csum_add(s, tail, 8);
		}
	}
	return 0;
}

void pkt__next_proto(struct pkt_buf *b, int proto)
{
	if (b->n)
		b->l[b->n - 1].next_proto = proto;
}

void pkt__finish(struct pkt_buf *b)
{
	for (int i = b->n - 1; i >= 0; i--) {
		struct pkt_layer *l = &b->l[i];
		uint8_t *p = b->buf + l->off;
		size_t rest = b->len - l->off; /* this layer and everything after */
		int next = i + 1 < b->n ? l3_proto_of(b->l[i + 1].type, &b->l[i + 1]) : -1;
		int et = i + 1 < b->n ? ethertype_of(b->l[i + 1].type) : -1;
		uint16_t sum16;

		if (next < 0 && l->next_proto > 0)
			next = l->next_proto;

		switch (l->type) {
		case PKT_L_ETH:
			if (et >= 0)
				put16(p + 12, et);
			break;
		case PKT_L_VLAN:
			if (et >= 0)
				put16(p + 2, et);
			break;
		case PKT_L_IPV4:
			if (next >= 0)
				p[9] = next;
			put16(p + 2, rest);
			put16(p + 10, 0);
			put16(p + 10, pkt__csum_fold(pkt__csum_add(0, p, l->len)));
			break;
		case PKT_L_IPV6:
			if (next >= 0)
				p[6] = next;
			put16(p + 4, rest - 40);
			break;
		case PKT_L_IPV6_EXT:
		case PKT_L_IPV6_FRAG:
			if (next >= 0)
				p[0] = next;
			break;
		case PKT_L_TCP:
			put16(p + 16, 0);
			put16(p + 16,
			      pkt__csum_fold(pkt__csum_add(pseudo_sum(b, i, 6, rest), p, rest)));
			break;
		case PKT_L_UDP:
			put16(p + 4, rest);
			put16(p + 6, 0);
			sum16 = pkt__csum_fold(pkt__csum_add(pseudo_sum(b, i, 17, rest), p, rest));
			put16(p + 6, sum16 ? sum16 : 0xffff);
			break;
		case PKT_L_ICMP:
			put16(p + 2, 0);
			put16(p + 2, pkt__csum_fold(pkt__csum_add(0, p, rest)));
			break;
		case PKT_L_ICMP6:
			put16(p + 2, 0);
			put16(p + 2,
			      pkt__csum_fold(pkt__csum_add(pseudo_sum(b, i, 58, rest), p, rest)));
			break;
		case PKT_L_RAW:
			break;
		}
	}
}

int pkt__off(const struct pkt_buf *b, enum pkt_layer_type type)
{
	for (int i = 0; i < b->n; i++)
		if (b->l[i].type == type)
			return (int)b->l[i].off;
	return -1;
}
