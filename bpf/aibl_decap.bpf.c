// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibl node side: TC ingress program that removes the outer header of the
 * packets the balancer's ipip mode sends (IPv4-in-IPv4, IPv6-in-IPv6,
 * IPv4-in-IPv6), so an inference node needs no ipip/ip6tnl kernel module.
 * The inner packet then reaches the stack as if the client had sent it to
 * the VIP, which the node holds on a local interface (lo or dummy).
 *
 * It also records which clients talk to which VIP:port in aibl_node_cli
 * (LRU), which the node agent turns into cache hints.
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

/*
 * The decap flags arrived in kernel 6.3 (an enum, so no #ifdef to test);
 * vmlinux.h comes from the build machine's kernel, which may predate them
 * (Debian 12's 6.1). Values from include/uapi/linux/bpf.h.
 */
#define AIBL_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define AIBL_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)

/* IPv4 fragment bits, from the kernel's include/net/ip.h (not uapi) */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

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

static __always_inline void node_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&aibl_node_stats, &idx);

	if (v)
		*v += 1;
}

/* Parses the inner packet at [inner, data_end) into a client key; the ports
 * are read only from unfragmented or first-fragment TCP/UDP. */
static __always_inline int inner_key(void *inner, void *data_end, __u8 inner_af,
				     struct aibl_node_client_key *k)
{
	__u8 proto;
	void *l4;

	if (inner_af == AIBL_AF_INET) {
		struct iphdr *iph = inner;

		if ((void *)(iph + 1) > data_end || iph->ihl < 5)
			return -1;
		k->client.v4 = iph->saddr;
		k->vip.v4 = iph->daddr;
		proto = iph->protocol;
		if (iph->frag_off & bpf_htons(IP_OFFSET))
			proto = 0; /* later fragment: no ports */
		l4 = inner + (iph->ihl & 0xf) * 4;
	} else {
		struct ipv6hdr *ip6 = inner;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		__builtin_memcpy(k->client.b, &ip6->saddr, 16);
		__builtin_memcpy(k->vip.b, &ip6->daddr, 16);
		/* extension headers: record the VIP without a port */
		proto = ip6->nexthdr;
		l4 = ip6 + 1;
	}
	k->family = inner_af;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		k->proto = proto;
		/* both headers start with sport, dport */
		if (l4 + 4 <= data_end)
			k->vport = *(__be16 *)(l4 + 2);
	}
	return 0;
}

static __always_inline void record_client(const struct aibl_node_client_key *k, __u64 bytes)
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

SEC("tc")
int aibl_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct aibl_node_client_key key = {};
	struct ethhdr *eth = data;
	__u8 inner_af, outer_af;
	__u32 outer_len, cnt;
	__u64 flags;
	void *inner;
	long err;

	if ((void *)(eth + 1) > data_end)
		goto pass;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_IPIP)
			goto pass;
		/* a broken or fragmented outer header is the stack's business */
		if (iph->ihl < 5 || (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			goto pass;
		outer_af = AIBL_AF_INET;
		outer_len = (iph->ihl & 0xf) * 4;
		inner_af = AIBL_AF_INET;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			goto pass;
		if (ip6->nexthdr == IPPROTO_IPV6)
			inner_af = AIBL_AF_INET6;
		else if (ip6->nexthdr == IPPROTO_IPIP)
			inner_af = AIBL_AF_INET;
		else
			goto pass;
		outer_af = AIBL_AF_INET6;
		outer_len = sizeof(*ip6);
	} else {
		goto pass;
	}

	inner = (void *)(eth + 1) + outer_len;
	if (inner_key(inner, data_end, inner_af, &key)) {
		node_count(AIBL_NCNT_DROP_TRUNC);
		return TC_ACT_SHOT;
	}

	/*
	 * Remove the outer header right behind the MAC header. FIXED_GSO: the
	 * payload per segment of an aggregated packet does not change when
	 * only a header goes away.
	 */
	flags = BPF_F_ADJ_ROOM_FIXED_GSO |
		(inner_af == AIBL_AF_INET ? AIBL_ADJ_ROOM_DECAP_L3_IPV4 : AIBL_ADJ_ROOM_DECAP_L3_IPV6);
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
	record_client(&key, skb->len);
	return TC_ACT_OK;

pass:
	node_count(AIBL_NCNT_PASS);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
