/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet builder: stack Ethernet / VLAN / IPv4 (+options) / IPv6 (+extension
 * headers) / TCP / UDP / ICMP / ICMPv6 / raw bytes, then pkt__finish() fills
 * the next-protocol fields, lengths and checksums from the inside out.
 * aiblctl simulate builds its flows with it, the tests their fixtures
 * (tests/lib/pkt.h adds a pcap writer and a frame diff); a test that wants a
 * broken packet edits pkt.buf afterwards. Ports are in host order.
 *
 *	struct pkt_buf b;
 *	pkt__init(&b);
 *	pkt__eth(&b, MAC_LB, MAC_CLIENT);
 *	pkt__ipv4(&b, "10.0.0.5", "10.100.0.1", NULL);
 *	pkt__tcp(&b, 40000, 80, PKT_TCP_SYN);
 *	pkt__payload(&b, "hello", 5);
 *	pkt__finish(&b);
 */
#ifndef AIBL_PKTBUILD_H
#define AIBL_PKTBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_MAX	       4096
#define PKT_MAX_LAYERS 16

#define PKT_TCP_FIN 0x01
#define PKT_TCP_SYN 0x02
#define PKT_TCP_RST 0x04
#define PKT_TCP_PSH 0x08
#define PKT_TCP_ACK 0x10

enum pkt_layer_type {
	PKT_L_ETH,
	PKT_L_VLAN,
	PKT_L_IPV4,
	PKT_L_IPV6,
	PKT_L_IPV6_EXT, /* hop-by-hop, routing, destination options */
	PKT_L_IPV6_FRAG,
	PKT_L_TCP,
	PKT_L_UDP,
	PKT_L_ICMP,
	PKT_L_ICMP6,
	PKT_L_RAW,
};

struct pkt_layer {
	enum pkt_layer_type type;
	size_t off;
	size_t len;
	uint8_t ext_type; /* PKT_L_IPV6_EXT: its protocol number */
	int next_proto;	  /* >0: next-protocol field when the next layer is raw */
};

struct pkt_buf {
	uint8_t buf[PKT_MAX];
	size_t len;
	struct pkt_layer l[PKT_MAX_LAYERS];
	int n;
};

/* IPv4 header knobs; NULL means: tos 0, id 0, DF, ttl 64, no options */
struct pkt_ip4_opts {
	uint8_t tos;
	uint16_t id;
	uint16_t frag_off; /* host order, flags included (0x4000 DF, 0x2000 MF) */
	uint8_t ttl;
	const uint8_t *options; /* multiple of 4 bytes */
	size_t options_len;
	bool no_df; /* with frag_off == 0: clear DF */
};

void pkt__init(struct pkt_buf *b);
void pkt__eth(struct pkt_buf *b, const uint8_t dst[6], const uint8_t src[6]);
void pkt__vlan(struct pkt_buf *b, uint16_t tpid, uint16_t tci);
/* addresses as text (tests) */
void pkt__ipv4(struct pkt_buf *b, const char *src, const char *dst, const struct pkt_ip4_opts *o);
void pkt__ipv6(struct pkt_buf *b, const char *src, const char *dst, uint8_t tclass,
	       uint32_t flow_label);
/* addresses in network order: 4 bytes each for IPv4, 16 for IPv6 */
void pkt__ipv4_bin(struct pkt_buf *b, const void *src, const void *dst,
		   const struct pkt_ip4_opts *o);
void pkt__ipv6_bin(struct pkt_buf *b, const void *src, const void *dst, uint8_t tclass,
		   uint32_t flow_label);
/* type: 0 hop-by-hop, 43 routing, 60 destination options; len8: length in
 * 8-byte units beyond the first 8 (hdrlen field) */
void pkt__ipv6_ext(struct pkt_buf *b, uint8_t type, uint8_t len8);
/* offset in bytes (multiple of 8), more: MF */
void pkt__ipv6_frag(struct pkt_buf *b, uint16_t offset, bool more, uint32_t id);
/* seq 1000 (a SYN: 999, its ISN, so that the handshake's ACK and the
 * segments after it are numbered as a client numbers them), ack_seq 2000
 * with PKT_TCP_ACK (else 0), window 65535 */
void pkt__tcp(struct pkt_buf *b, uint16_t sport, uint16_t dport, uint8_t flags);
/* the same with the sequence numbers and window given */
void pkt__tcp_seq(struct pkt_buf *b, uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq,
		  uint32_t ack_seq, uint16_t window);
void pkt__udp(struct pkt_buf *b, uint16_t sport, uint16_t dport);
void pkt__icmp(struct pkt_buf *b, uint8_t type, uint8_t code, uint32_t rest);
void pkt__icmp6(struct pkt_buf *b, uint8_t type, uint8_t code, uint32_t rest);
void pkt__payload(struct pkt_buf *b, const void *data, size_t len);
/* n bytes of a repeating pattern */
void pkt__fill(struct pkt_buf *b, size_t n);
/* Sets the next-protocol field of the last layer (IP or extension header)
 * when what follows is raw bytes, e.g. an encapsulated packet. */
void pkt__next_proto(struct pkt_buf *b, int proto);
/* Next-protocol fields, lengths and checksums, innermost layer first. A
 * UDP checksum that computes to 0 is sent as 0xffff (RFC 768: 0 means none). */
void pkt__finish(struct pkt_buf *b);
/* Offset of the first layer of a type (-1: none). */
int pkt__off(const struct pkt_buf *b, enum pkt_layer_type type);

/* Internet checksum helpers (host-side reference) */
uint32_t pkt__csum_add(uint32_t sum, const void *data, size_t len);
uint16_t pkt__csum_fold(uint32_t sum);

#endif /* AIBL_PKTBUILD_H */
