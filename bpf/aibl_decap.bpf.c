// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibl node side: TC ingress program that removes the outer header of the
 * packets the balancer's ipip mode sends (IPv4-in-IPv4, IPv6-in-IPv6,
 * IPv4-in-IPv6), so an inference node needs no ipip/ip6tnl kernel module.
 * The inner packet then reaches the stack as if the client had sent it to
 * the VIP, which the node holds on a local interface (lo or dummy).
 *
 * It also records which clients talk to which VIP:port in aibl_node_cli
 * (LRU), which the node agent turns into cache hints: those of the
 * tunnels it opens, and, once the agent has said which VIPs the node
 * holds, those of plain packets to them (the balancer's l2dsr mode).
 *
 * Everything that is not one of those three encapsulations passes
 * untouched (TC_ACT_OK). Untagged Ethernet only: a tagged frame reaches TC
 * ingress with its tag already stripped by the stack on common drivers.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aibl_uapi.h"
#include "aibl.h"
#include "aibl_parse.h"

/*
 * The decap flags arrived in kernel 6.3 (an enum, so no #ifdef to test);
 * vmlinux.h comes from the build machine's kernel, which may predate them
 * (Debian 12's 6.1). Values from include/uapi/linux/bpf.h.
 */
#define AIBL_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define AIBL_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AIBL_NODE_MAX_CLIENTS);
	__type(key, struct aibl_node_client_key);
	__type(value, struct aibl_node_client);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_node_cli SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_NCNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_node_stats SEC(".maps");

/* what this node accepts (include/aibl.h): the agent fills them */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct aibl_node_addr_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_node_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__type(key, struct aibl_node_src_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_node_srcs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aibl_node_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_node_cfg SEC(".maps");

static __always_inline void node_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&aibl_node_stats, &idx);

	if (v)
		*v += 1;
}

/*
 * The outer header of one of the balancer's three encapsulations at off:
 * the family of the packet inside, or 0 for anything else (not ours, or a
 * broken or fragmented outer header: the stack's business), or -1 when
 * the outer header is cut. *inner_off: where the inner packet starts.
 */
static __always_inline int outer_header(void *data, void *data_end, __be16 proto, __u32 off,
					__u32 *inner_off, struct pkt *op)
{
	struct pkt o = {};
	enum parse_rc rc;

	/* quoted: data_end may be the end of the skb's linear data, short of
	 * the lengths in the header */
	if (proto == bpf_htons(ETH_P_IP)) {
		rc = parse_ipv4(data, data_end, off, &o, true);
		if (rc == PARSE_NOADDR || rc == PARSE_BAD || o.fk.proto != IPPROTO_IPIP || o.frag)
			return 0;
		if (rc == PARSE_TRUNC)
			return -1; /* options cut */
		*inner_off = o.l4_off;
		*op = o;
		return AIBL_AF_INET;
	}
	if (proto != bpf_htons(ETH_P_IPV6))
		return 0;
	rc = parse_ipv6(data, data_end, off, &o, true);
	/* the balancer sends no extension headers */
	if (rc == PARSE_NOADDR || o.l4_off != off + sizeof(struct ipv6hdr))
		return 0;
	*inner_off = o.l4_off;
	*op = o;
	if (o.fk.proto == IPPROTO_IPV6)
		return AIBL_AF_INET6;
	return o.fk.proto == IPPROTO_IPIP ? AIBL_AF_INET : 0;
}

/*
 * The inner packet at off into a client key: 0, AIBL_NCNT_DROP_TRUNC when
 * its IP header is cut, AIBL_NCNT_DROP_BAD_INNER when it is of another
 * version than the outer header says or its lengths contradict each other
 * or the packet (len: bytes from off to the end of the skb). The port is
 * read only from unfragmented or first-fragment TCP and UDP, and only when
 * it lies in the linear data.
 */
static __always_inline int inner_key(void *data, void *data_end, __u32 off, __u8 inner_af,
				     __u32 len, struct aibl_node_client_key *k, __be16 *sport)
{
	__u8 *v = data + (off & (AIBL_MAX_OFF - 1));
	struct pkt p = {};
	enum parse_rc rc;

	off &= AIBL_MAX_OFF - 1;
	if ((void *)(v + 1) > data_end)
		return AIBL_NCNT_DROP_TRUNC;
	if (*v >> 4 != inner_af)
		return AIBL_NCNT_DROP_BAD_INNER;
	if (inner_af == AIBL_AF_INET)
		rc = parse_ipv4(data, data_end, off, &p, true);
	else
		rc = parse_ipv6(data, data_end, off, &p, true);
	if (rc == PARSE_NOADDR)
		return AIBL_NCNT_DROP_TRUNC;
	if (rc == PARSE_BAD || p.l3_len > len)
		return AIBL_NCNT_DROP_BAD_INNER;
	k->client = p.fk.src;
	k->vip = p.fk.dst;
	k->family = inner_af;
	if ((p.fk.proto == IPPROTO_TCP || p.fk.proto == IPPROTO_UDP) && p.frag != FRAG_LATER) {
		k->proto = p.fk.proto;
		if (p.ports) {
			k->vport = p.fk.dport;
			*sport = p.fk.sport;
		}
	}
	return 0;
}

/*
 * RFC 6040 (the kernel's own tunnels do the same): a congestion mark (CE)
 * that a switch set on the outer header on the way is the inner packet's.
 * Called when the outer ECN field is CE: an ECN-capable inner header
 * (ECT(0), ECT(1)) becomes CE, its IPv4 checksum mended; 0, or the counter
 * to drop by: a not-ECN-capable one (drop_ecn: loss is the only signal it
 * can carry).
 */
static __always_inline __u32 ecn_decap(struct __sk_buff *skb, __u32 off, int inner_af)
{
	__be16 old, new;
	__u16 h;
	__u8 ecn;

	/* IPv4: version, IHL, TOS; IPv6: version, traffic class, 4 bits of
	 * the flow label */
	if (bpf_skb_load_bytes(skb, off, &old, sizeof(old)))
		return AIBL_NCNT_DROP_TRUNC;
	h = bpf_ntohs(old);
	ecn = inner_af == AIBL_AF_INET ? h & 3 : (h >> 4) & 3;
	if (!ecn)
		return AIBL_NCNT_DROP_ECN;
	if (ecn == 3)
		return 0;
	new = bpf_htons(inner_af == AIBL_AF_INET ? h | 3 : h | 0x30);
	/* IPv4's header checksum takes the change back out of the packet's
	 * sum; nothing in IPv6's does, so a CHECKSUM_COMPLETE skb's csum is
	 * updated with it (as the kernel's IP6_ECN_set_ce does): stale, the
	 * inner TCP/UDP check failed, and the stack logged a csum fault */
	if (bpf_skb_store_bytes(skb, off, &new, sizeof(new),
				inner_af == AIBL_AF_INET ? 0 : BPF_F_RECOMPUTE_CSUM) ||
	    (inner_af == AIBL_AF_INET &&
	     bpf_l3_csum_replace(skb, off + __builtin_offsetof(struct iphdr, check), old, new,
				 sizeof(new))))
		return AIBL_NCNT_DROP_ADJUST;
	node_count(AIBL_NCNT_ECN_CE);
	return 0;
}

/*
 * Whether a TCP packet from client k (source port sport) may give its
 * client a record: not while the server here is only listening. Sources of
 * SYNs and of stray segments can be forged by anyone, and a flood of
 * records for them would push the real clients' out of the LRU map and
 * their hints out of the agent's table. So a new client counts once its
 * connection is established: its socket found in this namespace. Found
 * no socket at all (the server runs in another namespace, a container,
 * behind this interface; or nothing serves the port), the packet cannot be
 * judged here and counts as before. Only a packet that meets no record
 * asks: a recorded client's packets just refresh it.
 */
static __always_inline bool tcp_unconfirmed(struct __sk_buff *skb,
					    const struct aibl_node_client_key *k, __be16 sport)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	bool listening;
	__u32 len;

	if (k->family == AIBL_AF_INET) {
		t.ipv4.saddr = k->client.v4;
		t.ipv4.daddr = k->vip.v4;
		t.ipv4.sport = sport;
		t.ipv4.dport = k->vport;
		len = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, k->client.v6, 16);
		__builtin_memcpy(t.ipv6.daddr, k->vip.v6, 16);
		t.ipv6.sport = sport;
		t.ipv6.dport = k->vport;
		len = sizeof(t.ipv6);
	}
	/* a request socket (a handshake under way, SYN cookies too) is
	 * returned as its listener */
	sk = bpf_sk_lookup_tcp(skb, &t, len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return false;
	listening = sk->state == BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return listening;
}

static __always_inline void record_client(struct __sk_buff *skb,
					  const struct aibl_node_client_key *k, __be16 sport,
					  __u64 bytes)
{
	struct aibl_node_client *c, init = {};
	__u64 now = bpf_ktime_get_ns();

	c = bpf_map_lookup_elem(&aibl_node_cli, k);
	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, bytes);
		/* a racing CPU writing a slightly older time is harmless */
		if (now - c->last_seen_ns > 1000000ULL)
			c->last_seen_ns = now;
		return;
	}
	if (k->proto == IPPROTO_TCP && k->vport && tcp_unconfirmed(skb, k, sport)) {
		node_count(AIBL_NCNT_UNCONFIRMED);
		return;
	}
	init.first_seen_ns = now;
	init.last_seen_ns = now;
	init.packets = 1;
	init.bytes = bytes;
	/* BPF_NOEXIST: a concurrent first packet already counted itself */
	if (bpf_map_update_elem(&aibl_node_cli, k, &init, BPF_NOEXIST)) {
		c = bpf_map_lookup_elem(&aibl_node_cli, k);
		if (c) {
			__sync_fetch_and_add(&c->packets, 1);
			__sync_fetch_and_add(&c->bytes, bytes);
		}
	}
}

static __always_inline bool node_addr(const union aibl_addr *a, __u8 family, __u8 kind)
{
	struct aibl_node_addr_key k = {.addr = *a, .family = family, .kind = kind};

	return bpf_map_lookup_elem(&aibl_node_addrs, &k) != NULL;
}

static __always_inline bool node_src(const union aibl_addr *a, __u8 family)
{
	struct aibl_node_src_key k = {.prefixlen = 8 + (family == AIBL_AF_INET ? 32 : 128),
				      .family = family};

	__builtin_memcpy(k.addr, a, 16);
	return bpf_map_lookup_elem(&aibl_node_srcs, &k) != NULL;
}

/*
 * The outer header as the balancer writes it: IPv4 of 20 bytes with a
 * right checksum, or IPv6; its length within the packet. 0, or the
 * counter of the refusal.
 */
static __always_inline __u32 outer_check(struct __sk_buff *skb, void *data, void *data_end,
					 const struct pkt *l2, const struct pkt *o)
{
	struct iphdr *iph = data + (l2->l2_len & 0xff);

	if (o->l3_len > skb->len - l2->l2_len)
		return AIBL_NCNT_DROP_BAD_OUTER;
	if (o->fk.family != AIBL_AF_INET)
		return 0;
	if ((void *)(iph + 1) > data_end)
		return AIBL_NCNT_DROP_TRUNC;
	if (iph->ihl != 5 || ipv4_csum20(iph) != 0)
		return AIBL_NCNT_DROP_BAD_OUTER;
	return 0;
}

SEC("tc")
int aibl_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct aibl_node_client_key key = {};
	struct aibl_node_cfg *cfg;
	__be16 sport = 0;
	struct pkt l2 = {}, o = {};
	__u32 outer_len, inner_off = 0, cnt, zero = 0;
	__u8 outer_af;
	int inner_af;
	__be16 proto;
	__u64 flags;
	long err;

	/* untagged only (see above): a tag left in the frame is not ours */
	proto = parse_l2(data, data_end, &l2);
	if (!proto || l2.nvlan)
		goto pass;
	inner_af = outer_header(data, data_end, proto, l2.l2_len, &inner_off, &o);
	cfg = bpf_map_lookup_elem(&aibl_node_cfg, &zero);
	flags = cfg ? cfg->flags : 0;
	if (!inner_af)
		goto plain;
	if (inner_af < 0) {
		node_count(AIBL_NCNT_DROP_TRUNC);
		return TC_ACT_SHOT;
	}
	/* not addressed to this node: not ours to open (the stack routes or
	 * drops it) */
	if ((flags & AIBL_NODE_F_CHECK_LOCAL) &&
	    !node_addr(&o.fk.dst, o.fk.family, AIBL_NODE_ADDR_LOCAL)) {
		node_count(AIBL_NCNT_NOT_LOCAL);
		return TC_ACT_OK;
	}
	cnt = outer_check(skb, data, data_end, &l2, &o);
	if (!cnt && (flags & AIBL_NODE_F_CHECK_SOURCE) && !node_src(&o.fk.src, o.fk.family))
		cnt = AIBL_NCNT_DROP_SOURCE;
	if (!cnt)
		cnt = inner_key(data, data_end, inner_off, inner_af, skb->len - inner_off, &key,
				&sport);
	if (!cnt && (flags & AIBL_NODE_F_CHECK_VIP) &&
	    !node_addr(&key.vip, key.family, AIBL_NODE_ADDR_VIP))
		cnt = AIBL_NCNT_DROP_NOT_VIP;
	if (cnt) {
		/* refused: no decap, and no hint from it */
		node_count(cnt);
		return TC_ACT_SHOT;
	}
	if ((o.tos & 3) == 3) {
		cnt = ecn_decap(skb, inner_off, inner_af);
		if (cnt) {
			node_count(cnt);
			return TC_ACT_SHOT;
		}
	}
	outer_af = proto == bpf_htons(ETH_P_IP) ? AIBL_AF_INET : AIBL_AF_INET6;
	outer_len = inner_off - l2.l2_len;

	/*
	 * Remove the outer header right behind the MAC header. FIXED_GSO: the
	 * payload per segment of an aggregated packet does not change when
	 * only a header goes away.
	 */
	flags = BPF_F_ADJ_ROOM_FIXED_GSO | (inner_af == AIBL_AF_INET ? AIBL_ADJ_ROOM_DECAP_L3_IPV4
								     : AIBL_ADJ_ROOM_DECAP_L3_IPV6);
	err = bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC, flags);
	if (err == -EINVAL && inner_af == outer_af)
		/* kernel < 6.3 knows no decap flags; same family needs none */
		err = bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC,
					  BPF_F_ADJ_ROOM_FIXED_GSO);
	if (err) {
		node_count(AIBL_NCNT_DROP_ADJUST);
		return TC_ACT_SHOT;
	}
	if (inner_af != outer_af) {
		__be16 proto = bpf_htons(ETH_P_IP);

		if (bpf_skb_store_bytes(skb, __builtin_offsetof(struct ethhdr, h_proto), &proto,
					sizeof(proto), 0)) {
			node_count(AIBL_NCNT_DROP_ADJUST);
			return TC_ACT_SHOT;
		}
	}

	if (inner_af == AIBL_AF_INET6)
		cnt = AIBL_NCNT_DECAP6;
	else if (outer_af == AIBL_AF_INET6)
		cnt = AIBL_NCNT_DECAP46;
	else
		cnt = AIBL_NCNT_DECAP4;
	node_count(cnt);
	record_client(skb, &key, sport, skb->len);
	return TC_ACT_OK;

plain:
	/*
	 * Not a tunnel: in l2dsr mode the balancer sends the client's own
	 * packet, only its MAC rewritten. One to a VIP held here, TCP or UDP,
	 * is a client of this node's engines: recorded like a decapsulated
	 * one, so the ai policy gets its traffic hints in either mode. It
	 * passes whatever it is (a malformed one is the stack's to drop).
	 */
	if ((flags & AIBL_NODE_F_CHECK_VIP) &&
	    (proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6)) &&
	    !inner_key(data, data_end, l2.l2_len,
		       proto == bpf_htons(ETH_P_IP) ? AIBL_AF_INET : AIBL_AF_INET6,
		       skb->len - l2.l2_len, &key, &sport) &&
	    key.proto && node_addr(&key.vip, key.family, AIBL_NODE_ADDR_VIP)) {
		node_count(AIBL_NCNT_DIRECT);
		record_client(skb, &key, sport, skb->len);
		return TC_ACT_OK;
	}
pass:
	node_count(AIBL_NCNT_PASS);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
