// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet fuzzing of the real XDP balancer through BPF_PROG_TEST_RUN:
 * random and mutated frames (truncation at every header boundary, bogus
 * lengths, IHL and extension-header lies, fragments, VLAN stacks, ICMP
 * errors quoting garbage) against a fixed service setup. After every frame
 * the invariants a balancer must keep whatever arrives:
 *
 *   - a frame not addressed to a VIP comes back XDP_PASS, byte for byte;
 *   - XDP_PASS never modifies a frame;
 *   - TX/REDIRECT only for frames a reference parser (below, independent
 *     of bpf/aibl_parse.h) finds well-formed and addressed to a service,
 *     to a backend of that service that is valid and not down, and the
 *     output carries the input's IP packet unchanged behind a correct
 *     outer header (ipip) or only new MACs (l2dsr);
 *   - counters add up per frame: exactly one of pass / (vip_packets and
 *     one of tx, redirect, one drop reason);
 *   - the maps hold only valid backend references (connection entries),
 *     the program creates no pins, and the active-flow counts match the
 *     open TCP connections.
 *
 * Deterministic: fixed seed, AIBL_FUZZ_FRAMES frames (default 30000). A
 * failing frame is written to $AIBL_TEST_PCAP_DIR (/tmp)/aibl-xdp-fuzz.pcap.
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include "test.h"
#include "xdp_env.h"

#define NCLI	  64
#define MAX_FAILS 5

/* services: svc id, address, port (0 wildcard), proto, mode, key, flags, backends */
struct fz_svc {
	const char *vip;
	__u16 port;
	__u8 proto;
	__u8 mode;
	__u8 key;
	__u8 flags;
	__u32 ring[4];
	int nring;
};

static const struct fz_svc SVCS[] = {
    {"10.100.0.1", 80, IPPROTO_TCP, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, {1, 2, 5, 6}, 4},
    {"10.100.0.1", 53, IPPROTO_UDP, AIBL_MODE_RR, AIBL_KEY_FIVE_TUPLE, 0, {1, 5}, 2},
    {"fd00:100::1", 443, IPPROTO_TCP, AIBL_MODE_P2C, AIBL_KEY_FIVE_TUPLE, 0, {3, 4}, 2},
    {"10.100.0.2", 0, IPPROTO_UDP, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, {2, 7}, 2},
    {"10.100.0.3",
     8080,
     IPPROTO_TCP,
     AIBL_MODE_HASH,
     AIBL_KEY_FIVE_TUPLE,
     AIBL_VIP_F_NO_CONNTRACK,
     {5, 6, 7},
     3},
    {"fd00:100::2", 0, IPPROTO_TCP, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 0, {3, 4}, 2},
};
#define NSVC (sizeof(SVCS) / sizeof(SVCS[0]))
/* backend 7 drains, backend 6 goes down half way: flows move off it */
#define BE_DRAIN 7
#define BE_DOWN	 6

struct fz_svc_bin {
	union aibl_addr vip;
	__u8 family;
};
static struct fz_svc_bin svc_bin[NSVC];

/* ---------------- deterministic randomness ---------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

static uint32_t rn(uint32_t n)
{
	return n ? rnd() % n : 0;
}

/* ---------------- reference parser ---------------- */

struct ref {
	bool l2ok;  /* Ethernet with at most two tags */
	size_t l3;  /* IP header offset */
	int family; /* 4, 6, 0: not IP */
	union aibl_addr src, dst;
	__u8 proto;   /* L4 protocol after extension headers */
	size_t iplen; /* declared IP packet length (header included) */
	size_t l4;    /* L4 offset */
	int frag;     /* 0 none, 1 first, 2 later */
	bool ports;
	__u16 sport, dport; /* host order */
	bool well_formed;   /* lengths consistent, headers inside the declared packet */
};

static __u16 rd16(const uint8_t *p)
{
	return (__u16)(p[0] << 8 | p[1]);
}

static void ref_parse(const uint8_t *f, size_t len, struct ref *r)
{
	size_t off = 14, end;
	__u16 et;
	__u8 nh;

	memset(r, 0, sizeof(*r));
	if (len < 14)
		return;
	et = rd16(f + 12);
	for (int i = 0; i < 3 && (et == ETH_P_8021Q || et == ETH_P_8021AD); i++) {
		if (i == 2 || off + 4 > len)
			return;
		et = rd16(f + off + 2);
		off += 4;
	}
	r->l2ok = true;
	r->l3 = off;
	if (et == ETH_P_IP) {
		size_t ihl;

		if (off + 20 > len || f[off] >> 4 != 4)
			return;
		r->family = 4;
		memcpy(&r->src.v4, f + off + 12, 4);
		memcpy(&r->dst.v4, f + off + 16, 4);
		r->proto = f[off + 9];
		ihl = (f[off] & 0xf) * 4;
		r->iplen = rd16(f + off + 2);
		if (ihl < 20 || r->iplen < ihl || off + r->iplen > len)
			return;
		r->l4 = off + ihl;
		if (rd16(f + off + 6) & 0x1fff)
			r->frag = 2;
		else if (rd16(f + off + 6) & 0x2000)
			r->frag = 1;
	} else if (et == ETH_P_IPV6) {
		if (off + 40 > len || f[off] >> 4 != 6)
			return;
		r->family = 6;
		memcpy(&r->src, f + off + 8, 16);
		memcpy(&r->dst, f + off + 24, 16);
		r->iplen = 40 + rd16(f + off + 4);
		if (r->iplen == 40 || off + r->iplen > len)
			return;
		nh = f[off + 6];
		end = off + r->iplen;
		off += 40;
		for (int i = 0;; i++) {
			size_t hl;

			if (nh != 0 && nh != 43 && nh != 60 && nh != 44 && nh != 51)
				break;
			if (i == AIBL_MAX_EXT_HDRS || off + 8 > end)
				return;
			if (nh == 44) {
				__u16 fo = rd16(f + off + 2);

				if (fo & 0xfff8)
					r->frag = 2;
				else if (fo & 1)
					r->frag = 1;
				hl = 8;
			} else {
				hl = nh == 51 ? (f[off + 1] + 2) * 4u : (f[off + 1] + 1) * 8u;
			}
			nh = f[off];
			off += hl;
			if (off > end)
				return;
			if (r->frag == 2)
				break;
		}
		r->proto = nh;
		r->l4 = off;
	} else {
		return;
	}
	end = r->l3 + r->iplen;
	if (r->frag == 2) {
		r->well_formed = true;
		return;
	}
	if (r->proto == IPPROTO_TCP || r->proto == IPPROTO_UDP) {
		size_t hl = r->proto == IPPROTO_TCP ? 20 : 8;

		/* a first fragment needs its ports, a whole packet its full header */
		if (r->l4 + (r->frag ? 4 : hl) > end)
			return;
		r->ports = true;
		r->sport = rd16(f + r->l4);
		r->dport = rd16(f + r->l4 + 2);
		if (!r->frag && r->proto == IPPROTO_TCP && (f[r->l4 + 12] >> 4) < 5)
			return;
	} else if (r->proto == IPPROTO_ICMP || r->proto == IPPROTO_ICMPV6) {
		if (r->l4 + 8 > end)
			return;
	}
	r->well_formed = true;
}

/* service a well-formed TCP/UDP packet belongs to: exact port, else wildcard */
static int ref_svc(const struct ref *r, bool want_wild)
{
	int wild = -1;

	for (size_t i = 0; i < NSVC; i++) {
		if (svc_bin[i].family != r->family || SVCS[i].proto != r->proto ||
		    memcmp(&svc_bin[i].vip, r->family == 4 ? (void *)&r->dst.v4 : (void *)&r->dst,
			   r->family == 4 ? 4 : 16))
			continue;
		if (SVCS[i].port == 0)
			wild = (int)i;
		else if (!want_wild && r->ports && SVCS[i].port == r->dport)
			return (int)i;
	}
	return wild;
}

static bool ref_dst_is_vip(const struct ref *r)
{
	for (size_t i = 0; i < NSVC; i++)
		if (svc_bin[i].family == r->family &&
		    !memcmp(&svc_bin[i].vip, &r->dst, r->family == 4 ? 4 : 16))
			return true;
	return false;
}

/* ---------------- frame generator ---------------- */

static void cli_addr(char *s, size_t n, int family)
{
	if (family == 4)
		snprintf(s, n, "192.0.2.%u", 1 + rn(NCLI));
	else
		snprintf(s, n, "2001:db8::%x", 1 + rn(NCLI));
}

/* destination: a service VIP (likely), or a stranger */
static const char *pick_dst(int family, __u16 *port, __u8 *proto)
{
	static const char *const other4[] = {"10.100.0.9", "198.51.100.1", "10.100.0.1"};
	static const char *const other6[] = {"fd00:100::9", "2001:db8:ffff::1"};
	uint32_t k = rn(10);

	if (k < 7) {
		for (int tries = 0; tries < 8; tries++) {
			const struct fz_svc *s = &SVCS[rn(NSVC)];

			if ((strchr(s->vip, ':') ? 6 : 4) != family)
				continue;
			*port = s->port ? s->port : (__u16)(1 + rn(65535));
			*proto = s->proto;
			if (rn(8) == 0)
				*port = (__u16)rn(65536); /* right address, maybe wrong port */
			if (rn(8) == 0)
				*proto = *proto == IPPROTO_TCP ? IPPROTO_UDP : IPPROTO_TCP;
			return s->vip;
		}
	}
	*port = (__u16)rn(65536);
	*proto = rn(2) ? IPPROTO_TCP : IPPROTO_UDP;
	return family == 4 ? other4[rn(3)] : other6[rn(2)];
}

static void gen_l4(struct pkt_buf *b, __u8 proto, __u16 sport, __u16 dport)
{
	static const __u8 flags[] = {PKT_TCP_SYN,
				     PKT_TCP_ACK,
				     PKT_TCP_ACK | PKT_TCP_PSH,
				     PKT_TCP_FIN | PKT_TCP_ACK,
				     PKT_TCP_RST,
				     0xff,
				     0};

	if (proto == IPPROTO_TCP)
		pkt__tcp(b, sport, dport, flags[rn(sizeof(flags))]);
	else
		pkt__udp(b, sport, dport);
}

/* an ICMP error from a router to a VIP quoting (maybe) the VIP's reply */
static void gen_icmp_err(struct pkt_buf *b, int family, const char *dst, __u16 dport, __u8 proto)
{
	char cli[64];

	cli_addr(cli, sizeof(cli), family);
	if (family == 4) {
		pkt__icmp(b, rn(4) ? ICMP_DEST_UNREACH : (rn(2) ? ICMP_TIME_EXCEEDED : ICMP_ECHO),
			  rn(2) ? ICMP_FRAG_NEEDED : (__u8)rn(16), 1400);
		if (rn(6) == 0) {
			pkt__fill(b, rn(40)); /* quotes garbage */
			return;
		}
		pkt__ipv4(b, rn(8) ? dst : "10.9.9.9", cli, NULL);
	} else {
		pkt__icmp6(b, rn(4) ? ICMPV6_PKT_TOOBIG : (__u8)rn(5), 0, 1280);
		if (rn(6) == 0) {
			pkt__fill(b, rn(60));
			return;
		}
		pkt__ipv6(b, rn(8) ? dst : "fd00:9::9", cli, 0, 0);
	}
	gen_l4(b, proto, dport, (__u16)(1024 + rn(64)));
	pkt__fill(b, rn(24));
}

static void gen_frame(struct pkt_buf *b)
{
	int family = rn(3) ? 4 : 6;
	char src[64];
	const char *dst;
	__u16 dport, sport = (__u16)(1024 + rn(64));
	__u8 proto;
	uint32_t kind = rn(20);

	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	for (uint32_t t = rn(8) == 0 ? 1 + rn(3) : 0; t > 0; t--)
		pkt__vlan(b, rn(2) ? ETH_P_8021Q : ETH_P_8021AD, (__u16)rn(4096));
	cli_addr(src, sizeof(src), family);
	dst = pick_dst(family, &dport, &proto);
	if (family == 4) {
		struct pkt_ip4_opts o = {.ttl = 64};
		static const uint8_t opts[40] = {0x94, 4, 0, 0, 1, 1, 1, 1};

		if (kind < 3) { /* fragments */
			o.frag_off = (__u16)(rn(2) ? 0x2000 : (1 + rn(100)) | (rn(2) ? 0x2000 : 0));
			o.id = (__u16)rnd();
		}
		if (rn(6) == 0) {
			o.options = opts;
			o.options_len = 4 * (1 + rn(10));
		}
		pkt__ipv4(b, src, dst, &o);
	} else {
		pkt__ipv6(b, src, dst, (__u8)rn(256), rnd() & 0xfffff);
		for (uint32_t e = rn(4) == 0 ? 1 + rn(5) : 0; e > 0; e--) {
			static const __u8 types[] = {0, 43, 60};

			pkt__ipv6_ext(b, types[rn(3)], (__u8)rn(3));
		}
		if (kind < 3)
			pkt__ipv6_frag(b, (__u16)(rn(2) ? 0 : 8 * (1 + rn(100))), rn(2), rnd());
	}
	if (kind == 3 || kind == 4) {
		gen_icmp_err(b, family, dst, dport, proto);
	} else if (kind == 5) {
		pkt__payload(b, "\x08\x00\x00\x00", 4); /* not TCP/UDP: raw */
		pkt__next_proto(b, rn(2) ? 47 : 132);
		pkt__fill(b, rn(64));
	} else {
		gen_l4(b, proto, sport, dport);
		pkt__fill(b, rn(4) ? rn(200) : rn(1400));
	}
	pkt__finish(b);
}

/* boundaries of every layer, for truncation */
static size_t layer_cut(const struct pkt_buf *b)
{
	const struct pkt_layer *l = &b->l[rn(b->n)];
	size_t cut = l->off + rn(4) * (l->len / 3 + 1) / 2;

	return cut < b->len ? cut : b->len;
}

static void mutate(struct pkt_buf *b)
{
	int l3 = xe_l3(b);
	uint32_t m = rn(12);

	switch (m) {
	case 0: /* truncate at (or near) a header boundary */
		b->len = layer_cut(b);
		break;
	case 1: /* truncate anywhere */
		b->len = rn((uint32_t)b->len + 1);
		break;
	case 2: /* flip bytes in the headers */
		for (uint32_t i = 1 + rn(4); i > 0; i--)
			b->buf[rn((uint32_t)(b->len < 120 ? b->len : 120))] ^=
			    (uint8_t)(1 + rn(255));
		break;
	case 3: /* length lies */
		if (l3 < 0)
			break;
		if ((b->buf[l3] >> 4) == 4) {
			b->buf[l3 + 2] = (uint8_t)rnd();
			b->buf[l3 + 3] = (uint8_t)rnd();
		} else {
			b->buf[l3 + 4] = (uint8_t)rn(4);
			b->buf[l3 + 5] = (uint8_t)rnd();
		}
		break;
	case 4: /* IHL lies / extension header length lies */
		if (l3 < 0)
			break;
		if ((b->buf[l3] >> 4) == 4) {
			b->buf[l3] = 0x40 | (uint8_t)rn(16);
		} else {
			for (int i = 0; i < b->n; i++)
				if (b->l[i].type == PKT_L_IPV6_EXT)
					b->buf[b->l[i].off + 1] = (uint8_t)rnd();
		}
		break;
	case 5: /* TCP data offset / ports lies */
		for (int i = 0; i < b->n; i++)
			if (b->l[i].type == PKT_L_TCP && b->l[i].off + 13 <= b->len)
				b->buf[b->l[i].off + 12] = (uint8_t)(rn(16) << 4);
		break;
	case 6: /* trailing bytes beyond the IP packet (Ethernet padding) */
		if (b->len + 64 <= PKT_MAX) {
			memset(b->buf + b->len, 0xa5, 64);
			b->len += 1 + rn(64);
		}
		break;
	default:
		break; /* well-formed */
	}
}

/* ---------------- the checker ---------------- */

struct fz {
	__u64 cnt[AIBL_CNT__MAX];
	__u64 sent, verdicts[5];
	int fails;
	bool l2dsr;
	int ncpu;
};

static int read_counters(struct fz *z, __u64 out[AIBL_CNT__MAX])
{
	static __u64 vals[AIBL_CNT__MAX * 512];
	static __u32 keys[AIBL_CNT__MAX];
	__u32 count = AIBL_CNT__MAX, batch = 0;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	int err;

	if (z->ncpu > 512)
		return -E2BIG;
	err = bpf_map_lookup_batch(xe_fd(AIBL_MAP_STATS), NULL, &batch, keys, vals, &count, &bo);
	if (err && errno != ENOENT)
		return -errno;
	memset(out, 0, sizeof(__u64) * AIBL_CNT__MAX);
	for (__u32 i = 0; i < count; i++)
		for (int c = 0; c < z->ncpu; c++)
			out[keys[i]] += vals[i * z->ncpu + c];
	return 0;
}

static void fail_frame(struct fz *z, const char *why, const struct pkt_buf *in,
		       const struct xe_result *r)
{
	const void *frames[2] = {in->buf, r->data};
	size_t lens[2] = {in->len, r->len};
	char path[256];

	snprintf(path, sizeof(path), "%s/aibl-xdp-fuzz.pcap",
		 getenv("AIBL_TEST_PCAP_DIR") ?: "/tmp");
	if (z->fails < MAX_FAILS) {
		test__fail_msg(__FILE__, __LINE__, "frame %llu (%zu bytes, verdict %u): %s",
			       (unsigned long long)z->sent, in->len, r->verdict, why);
		if (pkt__pcap_write(path, frames, lens, 2) == 0)
			printf("  input and output appended to %s\n", path);
	}
	z->fails++;
}

static __u64 drops(const __u64 *d)
{
	__u64 s = 0;

	for (int i = AIBL_CNT_DROP_TRUNC; i <= AIBL_CNT_DROP_NO_FIB; i++)
		s += d[i];
	return s;
}

/* the output of a forwarded frame: right backend, input's packet intact */
static const char *check_forward(struct fz *z, const struct pkt_buf *in, const struct ref *r,
				 const struct xe_result *out)
{
	int be = xe_out_backend(out), svc;
	struct aibl_backend bv;
	__u32 id = (__u32)be;
	struct ref q;
	size_t outer;
	const uint8_t *o;

	if (!r->well_formed)
		return "malformed frame forwarded";
	if (be <= 0 || be >= XE_NBE)
		return "forwarded to an unknown MAC";
	if (bpf_map_lookup_elem(xe_fd(AIBL_MAP_BACKENDS), &id, &bv) ||
	    !(bv.flags & AIBL_BE_F_VALID) || (bv.flags & AIBL_BE_F_DOWN))
		return "forwarded to an invalid or down backend";
	if (memcmp(out->data + 6, XE_MAC_LB, 6))
		return "source MAC is not ours";
	if (r->proto == IPPROTO_TCP || r->proto == IPPROTO_UDP) {
		svc = ref_svc(r, r->frag != 0);
		if (svc < 0)
			return "forwarded a packet no service matches";
		bool member = false;

		for (int i = 0; i < SVCS[svc].nring; i++)
			member |= SVCS[svc].ring[i] == id;
		if (!member)
			return "forwarded to a backend outside the service";
		if (r->frag && SVCS[svc].key != AIBL_KEY_SRC_IP)
			return "fragment forwarded for a five-tuple service";
	} else if (!ref_dst_is_vip(r)) {
		return "forwarded a packet not addressed to a VIP";
	}
	if (z->l2dsr) {
		if (out->len != in->len || memcmp(out->data + 12, in->buf + 12, in->len - 12))
			return "l2dsr changed more than the MACs";
		return NULL;
	}
	outer = XE_BE[id].family == AIBL_AF_INET ? 20 : 40;
	if (out->len != in->len + outer)
		return "ipip output length is not input + outer header";
	if (memcmp(out->data + 12, in->buf + 12, r->l3 - 12))
		return "VLAN tags changed";
	if (memcmp(out->data + r->l3 + outer, in->buf + r->l3, in->len - r->l3))
		return "inner packet changed";
	o = out->data + r->l3;
	if (outer == 20) {
		uint32_t sum = pkt__csum_add(0, o, 20);

		if (rd16(out->data + r->l3 - 2) != ETH_P_IP || o[0] != 0x45 ||
		    rd16(o + 2) != r->iplen + 20 || o[9] != (r->family == 4 ? 4 : 41) ||
		    memcmp(o + 16, &bv.addr.v4, 4) || pkt__csum_fold(sum) != 0)
			return "bad outer IPv4 header";
	} else {
		if (rd16(out->data + r->l3 - 2) != ETH_P_IPV6 || o[0] >> 4 != 6 ||
		    rd16(o + 4) != r->iplen || o[6] != (r->family == 4 ? 4 : 41) ||
		    memcmp(o + 24, &bv.addr, 16))
			return "bad outer IPv6 header";
	}
	/* the frame the backend sees parses as the same packet */
	ref_parse(out->data, out->len, &q);
	if (!q.well_formed)
		return "encapsulated frame is malformed";
	return NULL;
}

static void check_frame(struct fz *z, const struct pkt_buf *in)
{
	static struct xe_result res;
	__u64 now[AIBL_CNT__MAX], d[AIBL_CNT__MAX];
	const char *why = NULL;
	struct ref r;

	ref_parse(in->buf, in->len, &r);
	xe_run(in, &res);
	if (in->len < ETH_HLEN) {
		/* runts never reach XDP; the test run refuses them likewise */
		if (res.err != -EINVAL)
			fail_frame(z, "a runt frame was run", in, &res);
		return;
	}
	z->sent++;
	if (res.err) {
		fail_frame(z, "test run failed", in, &res);
		return;
	}
	if (res.verdict < 5)
		z->verdicts[res.verdict]++;
	if (read_counters(z, now)) {
		fail_frame(z, "reading counters", in, &res);
		return;
	}
	for (int i = 0; i < AIBL_CNT__MAX; i++)
		d[i] = now[i] - z->cnt[i];
	memcpy(z->cnt, now, sizeof(now));

	switch (res.verdict) {
	case XDP_PASS:
		if (res.len != in->len || memcmp(res.data, in->buf, in->len))
			why = "XDP_PASS with a modified frame";
		else if (d[AIBL_CNT_PASS] != 1 || d[AIBL_CNT_VIP_PKTS] || drops(d) ||
			 d[AIBL_CNT_TX] || d[AIBL_CNT_REDIRECT])
			why = "XDP_PASS counted other than pass=1";
		else if (r.well_formed && r.family && !r.frag &&
			 (r.proto == IPPROTO_TCP || r.proto == IPPROTO_UDP) &&
			 ref_svc(&r, false) >= 0)
			why = "a well-formed service packet was passed";
		break;
	case XDP_DROP:
		if (!r.l2ok || !r.family || !ref_dst_is_vip(&r))
			why = "dropped a frame not addressed to a VIP";
		else if (d[AIBL_CNT_VIP_PKTS] != 1 || drops(d) != 1 || d[AIBL_CNT_PASS] ||
			 d[AIBL_CNT_TX] || d[AIBL_CNT_REDIRECT])
			why = "XDP_DROP counted other than vip_packets=1 and one drop reason";
		break;
	case XDP_TX:
	case XDP_REDIRECT:
		if (!r.l2ok || !r.family || !ref_dst_is_vip(&r))
			why = "forwarded a frame not addressed to a VIP";
		else if (d[AIBL_CNT_VIP_PKTS] != 1 || drops(d) || d[AIBL_CNT_PASS] ||
			 d[res.verdict == XDP_TX ? AIBL_CNT_TX : AIBL_CNT_REDIRECT] != 1)
			why = "forward counted other than vip_packets=1 and tx/redirect=1";
		else
			why = check_forward(z, in, &r, &res);
		break;
	default:
		why = "unexpected verdict";
	}
	if (why)
		fail_frame(z, why, in, &res);
}

/* every connection entry names a valid backend; active counts add up */
static bool check_maps(bool exact_load)
{
	static struct aibl_flow_key keys[4096];
	static struct aibl_conn vals[4096];
	struct aibl_flow_key *in = NULL, out;
	__s64 open_tcp[XE_NBE] = {}, active;
	__u32 count, n = 0, pins = 0;
	struct aibl_pin_key pk, *pprev = NULL;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	bool ok = true;
	int err;

	do {
		count = 4096;
		err =
		    bpf_map_lookup_batch(xe_fd(AIBL_MAP_CONNS), in, &out, keys, vals, &count, &bo);
		if (err && errno != ENOENT)
			return ASSERT_OK(-errno, "conn batch lookup");
		for (__u32 i = 0; i < count; i++) {
			struct aibl_backend bv;
			__u32 id = vals[i].backend;

			n++;
			if (id >= XE_NBE ||
			    bpf_map_lookup_elem(xe_fd(AIBL_MAP_BACKENDS), &id, &bv) ||
			    !(bv.flags & AIBL_BE_F_VALID)) {
				ok = ASSERT_TRUE(false, "connection entry with an invalid backend");
				continue;
			}
			if (keys[i].proto == IPPROTO_TCP && !(vals[i].flags & AIBL_CONN_F_CLOSING))
				open_tcp[id]++;
		}
		in = &out;
	} while (!err);
	while (!bpf_map_get_next_key(xe_fd(AIBL_MAP_PINS), pprev, &pk)) {
		pins++;
		pprev = &pk;
	}
	ok = ASSERT_EQ(pins, 2, "pins: the program writes none") && ok;
	for (__u32 id = 1; id < XE_NBE && exact_load; id++) {
		struct aibl_load l = {};

		bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &id, &l);
		active = l.active;
		if (active != open_tcp[id]) {
			printf("  backend %u: active %lld, open tcp connections %lld\n", id,
			       (long long)active, (long long)open_tcp[id]);
			ok = ASSERT_TRUE(false, "active flows match open connections") && ok;
		}
	}
	return ok;
}

/* end of a fuzz run: the maps still consistent, and what the frames got */
static void finish_run(const struct fz *z)
{
	check_maps(true);
	printf("  %llu frames: pass %llu drop %llu tx %llu redirect %llu\n",
	       (unsigned long long)z->sent, (unsigned long long)z->verdicts[XDP_PASS],
	       (unsigned long long)z->verdicts[XDP_DROP], (unsigned long long)z->verdicts[XDP_TX],
	       (unsigned long long)z->verdicts[XDP_REDIRECT]);
}

/* ---------------- setup ---------------- */

static bool fz_env(const struct dp_sizes *sizes)
{
	struct aibl_pin_key pk = {.svc_id = 0, .family = AIBL_AF_INET};
	struct aibl_pin pv = {.backend = 2};

	if (!test__can_bpf()) {
		SKIP("needs root");
		return false;
	}
	if (!ASSERT_OK(xe_up(sizes), "load"))
		return false;
	for (__u32 i = 1; i < XE_NBE; i++)
		if (!ASSERT_OK(
			xe_backend(i, AIBL_BE_F_VALID | (i == BE_DRAIN ? AIBL_BE_F_DRAINING : 0),
				   true),
			"backend"))
			return false;
	for (size_t i = 0; i < NSVC; i++) {
		const struct fz_svc *s = &SVCS[i];

		svc_bin[i].family = strchr(s->vip, ':') ? AIBL_AF_INET6 : AIBL_AF_INET;
		svc_bin[i].family = svc_bin[i].family == AIBL_AF_INET ? 4 : 6;
		xe_addr(&svc_bin[i].vip, svc_bin[i].family == 4 ? AIBL_AF_INET : AIBL_AF_INET6,
			s->vip);
		if (!ASSERT_OK(
			xe_vip(s->vip, s->port, s->proto, (__u32)i, s->mode, s->key, 0, s->flags),
			"vip") ||
		    !ASSERT_OK(xe_ring((__u32)i, 0, s->ring, (__u32)s->nring), "ring"))
			return false;
	}
	/* two session pins, one to the backend that will go down */
	xe_addr(&pk.client, AIBL_AF_INET, "192.0.2.1");
	if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &pk, &pv, BPF_ANY) ? -errno : 0,
		       "pin"))
		return false;
	xe_addr(&pk.client, AIBL_AF_INET, "192.0.2.2");
	pv.backend = BE_DOWN; /* usable until it goes down half way */
	return ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &pk, &pv, BPF_ANY) ? -errno : 0,
			 "pin") &&
	       ASSERT_OK(xe_pin_filter(), "pin filter");
}

static unsigned long nframes(void)
{
	const char *e = getenv("AIBL_FUZZ_FRAMES");

	return e ? strtoul(e, NULL, 0) : 30000;
}

/* every prefix of a set of well-formed frames: each header boundary and
 * every byte between */
static void test_truncation(void)
{
	struct fz z = {.ncpu = libbpf_num_possible_cpus()};
	struct pkt_buf b, cut;

	rng_state = 0x7275636174ULL;
	if (!fz_env(NULL))
		goto out;
	if (!ASSERT_OK(read_counters(&z, z.cnt), "counters"))
		goto out;
	for (int i = 0; i < 200 && z.fails < MAX_FAILS; i++) {
		gen_frame(&b);
		for (size_t len = 0; len <= b.len && len <= 200; len++) {
			cut = b;
			cut.len = len;
			check_frame(&z, &cut);
		}
	}
	ASSERT_EQ(z.fails, 0, "frames breaking an invariant");
	finish_run(&z);
out:
	xe_down();
}

static void run_random(bool l2dsr)
{
	struct fz z = {.ncpu = libbpf_num_possible_cpus(), .l2dsr = l2dsr};
	unsigned long n = nframes();
	struct pkt_buf b;

	rng_state = l2dsr ? 0x6c3264737200ULL : 0x6662757a7a00ULL;
	if (!fz_env(NULL))
		goto out;
	if (l2dsr) {
		xe_glob.fwd_mode = AIBL_FWD_L2DSR;
		if (!ASSERT_OK(xe_globals_write(), "globals"))
			goto out;
	}
	if (!ASSERT_OK(read_counters(&z, z.cnt), "counters"))
		goto out;
	for (unsigned long i = 0; i < n && z.fails < MAX_FAILS; i++) {
		if (i == n / 2) {
			/* a backend fails half way: its flows must move, none may stay on it */
			if (!ASSERT_OK(xe_be_flags(BE_DOWN, AIBL_BE_F_VALID | AIBL_BE_F_DOWN),
				       "down"))
				goto out;
		}
		gen_frame(&b);
		mutate(&b);
		check_frame(&z, &b);
		if (i % 5000 == 4999 && !check_maps(true))
			goto out;
		/* a second passes every 500 frames: the unverified-insert
		 * budget (64/s per CPU) lets random flows into the table, so
		 * some are on the backend that fails */
		if (i % 500 == 499 &&
		    !ASSERT_OK(xe_percpu_set(AIBL_MAP_RATE, AIBL_RATE_UNVERIFIED,
					     &(struct aibl_rate){}, sizeof(struct aibl_rate)),
			       "next window"))
			goto out;
	}
	ASSERT_EQ(z.fails, 0, "frames breaking an invariant");
	/* totals: every frame counted once, every VIP frame has one fate */
	ASSERT_EQ(z.cnt[AIBL_CNT_PASS] + z.cnt[AIBL_CNT_VIP_PKTS], z.sent, "pass + vip == frames");
	ASSERT_EQ(z.cnt[AIBL_CNT_TX] + z.cnt[AIBL_CNT_REDIRECT] + drops(z.cnt),
		  z.cnt[AIBL_CNT_VIP_PKTS], "tx + redirect + drops == vip packets");
	ASSERT_EQ(z.cnt[AIBL_CNT_PASS], z.verdicts[XDP_PASS], "pass verdicts");
	ASSERT_EQ(drops(z.cnt), z.verdicts[XDP_DROP], "drop verdicts");
	ASSERT_EQ(z.cnt[AIBL_CNT_TX], z.verdicts[XDP_TX], "tx verdicts");
	/* the mix must reach every fate, or the fuzzer tests little */
	ASSERT_GE(z.verdicts[XDP_TX], n / 20, "some frames forwarded");
	ASSERT_GE(z.verdicts[XDP_DROP], n / 50, "some frames dropped");
	ASSERT_GE(z.verdicts[XDP_PASS], n / 20, "some frames passed");
	ASSERT_GE(z.cnt[AIBL_CNT_ICMP_FWD], 1, "an ICMP error forwarded");
	ASSERT_GE(z.cnt[AIBL_CNT_FRAG_FWD], 1, "a fragment forwarded");
	ASSERT_GE(z.cnt[AIBL_CNT_RESTEER], 1, "a flow re-steered");
	finish_run(&z);
out:
	xe_down();
}

static void test_random_ipip(void)
{
	run_random(false);
}

static void test_random_l2dsr(void)
{
	run_random(true);
}

/* TCP from client i (172.16.x.y) to the first service */
static void client_pkt(struct pkt_buf *b, int i, __u8 flags)
{
	char src[32];

	snprintf(src, sizeof(src), "172.16.%d.%d", i / 250, 1 + i % 250);
	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	pkt__ipv4(b, src, "10.100.0.1", NULL);
	pkt__tcp(b, 40000, 80, flags);
	pkt__finish(b);
}

/*
 * Connection table sized to 64 entries: 4000 new flows from distinct
 * clients. Every SYN must still be forwarded and counted as a new flow,
 * spread over all backends; a mid-flow packet of an evicted connection
 * finds the same backend again through the hash (src-ip service).
 */
static void test_conn_table_full(void)
{
	struct dp_sizes sz = {.max_conns = 64};
	__u64 before[AIBL_CNT__MAX], after[AIBL_CNT__MAX];
	struct fz z = {.ncpu = libbpf_num_possible_cpus()};
	static int first_be[4000];
	unsigned int per_be[XE_NBE] = {};
	struct xe_result res;
	struct pkt_buf b;

	if (!fz_env(&sz))
		goto out;
	if (!ASSERT_EQ(xe_dp->sizes.max_conns, 64, "conn table size"))
		goto out;
	if (!ASSERT_OK(read_counters(&z, before), "counters"))
		goto out;
	/* each connection: its SYN (handshake table), then its ACK (inserted) */
	for (int i = 0; i < 4000; i++) {
		client_pkt(&b, i, PKT_TCP_SYN);
		xe_run(&b, &res);
		if (!ASSERT_EQ(res.verdict, XDP_TX, "SYN forwarded"))
			goto out;
		first_be[i] = xe_out_backend(&res);
		client_pkt(&b, i, PKT_TCP_ACK);
		xe_run(&b, &res);
		if (!ASSERT_EQ(res.verdict, XDP_TX, "new flow forwarded with a full table") ||
		    !ASSERT_EQ(xe_out_backend(&res), first_be[i], "ACK follows its SYN"))
			goto out;
		if (first_be[i] > 0 && first_be[i] < XE_NBE)
			per_be[first_be[i]]++;
	}
	if (!ASSERT_OK(read_counters(&z, after), "counters"))
		goto out;
	ASSERT_EQ(after[AIBL_CNT_CONN_MISS] - before[AIBL_CNT_CONN_MISS], 4000,
		  "every new flow counted");
	ASSERT_EQ(after[AIBL_CNT_SYN_HIT] - before[AIBL_CNT_SYN_HIT], 4000,
		  "every handshake completed from its record");
	ASSERT_EQ(after[AIBL_CNT_CONN_INSERT_FAIL] - before[AIBL_CNT_CONN_INSERT_FAIL], 0,
		  "LRU evicts instead of failing");
	ASSERT_EQ(after[AIBL_CNT_TX] - before[AIBL_CNT_TX], 8000, "tx counted");
	ASSERT_LE(xe_conns_count(), 64, "table holds at most its size");
	/* weights are equal: each of 4 backends gets 1000 +- a wide margin */
	for (int i = 0; i < SVCS[0].nring; i++) {
		__u32 id = SVCS[0].ring[i];

		printf("  backend %u: %u new flows\n", id, per_be[id]);
		ASSERT_GE(per_be[id], 700, "balanced with a full table");
	}
	/* evicted flows continue on the same backend */
	for (int i = 0; i < 4000; i += 97) {
		client_pkt(&b, i, PKT_TCP_ACK);
		xe_run(&b, &res);
		if (!ASSERT_EQ(xe_out_backend(&res), first_be[i], "evicted flow keeps its backend"))
			break;
	}
	check_maps(false); /* evictions leave active counts of flows no longer listed */
out:
	xe_down();
}

static const struct test_case cases[] = {
    {"truncation", test_truncation},
    {"random_ipip", test_random_ipip},
    {"random_l2dsr", test_random_l2dsr},
    {"conn_table_full", test_conn_table_full},
};

int main(int argc, char **argv)
{
	/* own network namespace: bpf_fib_lookup sees an empty table */
	if (test__can_bpf() && unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return 1;
	}
	return test__main(argc, argv, "xdp_fuzz", cases, sizeof(cases) / sizeof(cases[0]));
}
