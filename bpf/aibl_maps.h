/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the XDP balancer, each with the reason it exists, and the
 * counter helpers. The layouts, names (AIBL_MAP_*) and the rules for their
 * writers are in include/aibl.h; every map is pinned by name, so aibld,
 * aiblctl and bpftool find it there, and a restarted controller reuses it.
 *
 * aibld writes the configuration; the program writes only aibl_conns,
 * aibl_load, aibl_rr_pos, aibl_syns, aibl_affinity, aibl_fcache,
 * aibl_fcache_ctl, aibl_rate and the counters. It reads aibl_members only
 * to check a client affinity's backend, and never aibl_svc_meta or
 * aibl_be_meta: they are here so that loading the program creates and pins
 * them for aiblctl.
 */
#ifndef AIBL_MAPS_H
#define AIBL_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "aibl.h"

/* a load or store the compiler neither tears nor moves across another
 * volatile one (fields other CPUs write) */
#define READ_ONCE(x)	 (*(const volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

/* which service a packet is for: (VIP, port, proto), port 0 the address's wildcard */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* a service may have a v4 and a v6 address, tcp and udp */
	__uint(max_entries, AIBL_MAX_SERVICES * 4);
	__type(key, struct aibl_vip_key);
	__type(value, struct aibl_vip);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_vips SEC(".maps");

/* where a backend id sends to (address, next hop MAC) and whether it takes flows */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_backends SEC(".maps");

/* each service's Maglev table, two halves so aibld swaps a table in one write */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_SERVICES * 2 * AIBL_RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	/* aibld stores a table half straight into the mapping (each __u32 in
	 * an 8-byte element): a syscall per slot made 64 tables take ~170 ms
	 * (user/aibld/tables.c) */
	__uint(map_flags, BPF_F_MMAPABLE);
} aibl_ring SEC(".maps");

/* the controller's cost of each backend, p2c's slow-moving half */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_cost);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_cost SEC(".maps");

/* active flows per backend (opened minus closing), p2c's fast-moving half;
 * mmapable: userspace corrects the counts with atomic adds too */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_load);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_load SEC(".maps");

/* keeps an open flow on its backend when tables change; LRU: a full table drops the idlest */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AIBL_MAX_CONNS);
	__type(key, struct aibl_flow_key);
	__type(value, struct aibl_conn);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_conns SEC(".maps");

/* session pins from cache hints: a client's new flows to the node holding its cache */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AIBL_MAX_PINS);
	__type(key, struct aibl_pin_key);
	__type(value, struct aibl_pin);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_pins SEC(".maps");

/* client affinities the data plane learns: a client's next new flow to a
 * p2c service follows its last p2c choice (include/aibl.h) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_AFFINITY_BUCKETS);
	__type(key, __u32);
	__type(value, struct aibl_affinity_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_affinity SEC(".maps");

/* which backends each service's table was built from, for aiblctl */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AIBL_MAX_MEMBERS);
	__type(key, struct aibl_member_key);
	__type(value, struct aibl_member);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_members SEC(".maps");

/* one __u64 per AIBL_CNT_* (aiblctl stats, bpftool map dump) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_stats SEC(".maps");

/* packets, bytes, new flows and pin hits per service */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct aibl_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_svc_stats SEC(".maps");

/* the same per backend: what the controller's load view is built from */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_be_stats SEC(".maps");

/* the instance's settings: forwarding mode, MTU, outer sources, seed, flags */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aibl_globals);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_globals SEC(".maps");

/* per-CPU next slot of each rr service: no shared cache line to bounce */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_rr_pos SEC(".maps");

/* service names and models by svc_id, for aiblctl */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct aibl_svc_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_svc_meta SEC(".maps");

/* backend names and weights by id, for aiblctl */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_be_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_be_meta SEC(".maps");

/* pre-filters in front of hash lookups that mostly miss (see aibl.h) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_FILTER__MAX);
	__type(key, __u32);
	__type(value, struct aibl_filter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_filter SEC(".maps");

/* TCP handshakes in progress (see aibl.h): shared, since a SYN and its
 * handshake's ACK may be seen on different CPUs */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_SYN_BUCKETS);
	__type(key, __u32);
	__type(value, struct aibl_syn_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_syns SEC(".maps");

/* established flows' decisions, per CPU (see aibl.h): RSS keeps a flow on
 * one CPU, so its entry lives in that CPU's cache */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_FCACHE_ENTRIES);
	__type(key, __u32);
	__type(value, struct aibl_fcache_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_fcache SEC(".maps");

/* per-CPU hit sample of the flow cache and its bypass (see aibl.h): a
 * cache that keeps missing is skipped for a while instead of paid for */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aibl_fcache_ctl);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_fcache_ctl SEC(".maps");

/* per-CPU windows of the new-connection rate guard and of unverified
 * inserts (enum aibl_rate_idx): no shared cache line on the new-flow path,
 * and RSS spreads a flood over the CPUs anyway */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_RATE__MAX);
	__type(key, __u32);
	__type(value, struct aibl_rate);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_rate SEC(".maps");

/* ---------------- counters and pre-filters ---------------- */

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&aibl_stats, &idx);

	if (v)
		*v += 1;
}

static __always_inline void traffic_add(struct aibl_traffic *t, __u64 bytes, bool new_flow,
					bool pin_hit)
{
	if (!t)
		return;
	t->packets++;
	t->bytes += bytes;
	if (new_flow) {
		t->new_flows++;
		t->pin_hits += pin_hit;
	}
}

/* false only when the bitmap says the key cannot be in the table */
static __always_inline bool filter_maybe(__u32 which, __u32 bit)
{
	struct aibl_filter *f = bpf_map_lookup_elem(&aibl_filter, &which);

	if (!f)
		return true;
	return (f->bits[(bit / 64) & (AIBL_FILTER_BITS / 64 - 1)] >> (bit % 64)) & 1;
}

#endif /* AIBL_MAPS_H */
