// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The floor for a balancer on the lab's packet path (make bench-path, case
 * xdp-null): an XDP program that does the least a balancer must do. TCP to
 * one IPv4 VIP goes to a node chosen by a hash of the client address and
 * ports, with only the destination MAC rewritten (as aibl's l2dsr), and
 * leaves with XDP_TX; everything else passes. No connection table, no
 * health, no counters. lab/bench-path.sh fills the two maps.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aibl_uapi.h"

#define NULL_FWD_MAX_NODES 64

struct null_fwd_cfg {
	__be32 vip;
	__u32 nodes; /* entries of null_fwd_macs in use */
};

struct null_fwd_mac {
	__u8 mac[ETH_ALEN];
	__u8 pad[2];
};

_Static_assert(sizeof(struct null_fwd_cfg) == 8, "bench-path writes 8 bytes");
_Static_assert(sizeof(struct null_fwd_mac) == 8, "bench-path writes 8 bytes");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct null_fwd_cfg);
} null_fwd_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NULL_FWD_MAX_NODES);
	__type(key, __u32);
	__type(value, struct null_fwd_mac);
} null_fwd_macs SEC(".maps");

SEC("xdp")
int xdp_null_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);
	struct null_fwd_cfg *cfg;
	struct null_fwd_mac *m;
	__u32 zero = 0, idx;

	if ((void *)(tcp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&null_fwd_cfg, &zero);
	if (!cfg || !cfg->nodes || ip->daddr != cfg->vip)
		return XDP_PASS;
	idx =
	    ((ip->saddr ^ ((__u32)tcp->source << 16 | tcp->dest)) * 0x9e3779b1u >> 16) % cfg->nodes;
	m = bpf_map_lookup_elem(&null_fwd_macs, &idx);
	if (!m)
		return XDP_PASS;
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, m->mac, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
