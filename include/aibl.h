/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibl shared ABI: every map key/value, flag and map name used by both the
 * BPF programs (bpf/) and userspace (user/). This is the only copy.
 *
 * The header includes nothing: BPF code includes it after vmlinux.h,
 * userspace after <linux/types.h>. All multi-byte fields in network byte
 * order say so in their type (__be16/__be32).
 *
 * Changing any struct layout here is an ABI change: bump AIBL_ABI_VERSION so
 * that aiblctl/aibld refuse maps pinned by an older program instead of
 * decoding garbage.
 */
#ifndef AIBL_H
#define AIBL_H

#define AIBL_ABI_VERSION 7

/* ---- capacity limits (build time; counts are also load-time settable) ---- */

/* Services (VIP:port:proto entries share one svc_id per configured service). */
#ifndef AIBL_MAX_SERVICES
#define AIBL_MAX_SERVICES 256
#endif
/* Backends (inference nodes), global ids shared by all services. */
#ifndef AIBL_MAX_BACKENDS
#define AIBL_MAX_BACKENDS 4096
#endif
/*
 * Maglev lookup table size per service. Must be prime. 65537 like Katran
 * would cost 256 * 2 * 65537 * 8 B = 256 MiB (BPF arrays store each value in
 * 8 bytes); 16381 keeps the table well above 16x the backends of a large
 * service at 64 MiB for 256 services.
 * Build time only: BPF and userspace must agree (see aibl_globals.ring_size).
 */
#ifndef AIBL_RING_SIZE
#define AIBL_RING_SIZE 16381
#endif
/* Connection table (LRU): ~ 56 B key+value, ~ 120 B with LRU overhead. */
#ifndef AIBL_MAX_CONNS
#define AIBL_MAX_CONNS 262144
#endif
/*
 * Handshake table: buckets of AIBL_SYN_WAYS TCP handshakes in progress (SYN
 * seen, handshake not yet completed), 64 B each: 1024 buckets hold 4096
 * handshakes in 64 KiB, small enough to stay in cache on the SYN path
 * (4096 buckets measured ~10 ns more per SYN on the development VM).
 * Power of two.
 */
#ifndef AIBL_SYN_BUCKETS
#define AIBL_SYN_BUCKETS 1024
#endif
#define AIBL_SYN_WAYS 4
/*
 * A handshake entry's age is in jiffies (bpf_jiffies64(), inlined by the
 * verifier, where a ktime helper call cost ~8 ns per SYN). An entry older
 * than this is free: 10 s at HZ=1000, 40 s at HZ=250, more than a SYN's
 * first retries; an older record matched again does no harm (see docs/dataplane.md).
 */
#define AIBL_SYN_TTL 10000
/*
 * Flow cache: per CPU, a direct-mapped copy of the decisions for
 * established flows, one 64 B entry each (see struct aibl_fcache_entry):
 * 2^11 entries = 128 KiB per CPU, small enough that a miss stays cheap
 * (2^12 and 2^13 entries measured 20-60 ns more per missing packet on the
 * development VM, in established_64k). Log2 of the entries.
 */
#ifndef AIBL_FCACHE_BITS
#define AIBL_FCACHE_BITS 11
#endif
#define AIBL_FCACHE_ENTRIES (1U << AIBL_FCACHE_BITS)
/* CPUs whose entries a flow's FIN/RST or re-steer clears: at most this many
 * (the kernel's NR_CPUS limit), in practice up to the last possible CPU */
#define AIBL_FCACHE_MAX_CPUS 8192
/* an entry is void this long after the full path wrote it: the flow's next
 * packet takes the full path, which refreshes the connection entry */
#define AIBL_FCACHE_TTL_MS 500
/*
 * Flow cache bypass (struct aibl_fcache_ctl): each CPU judges its cache by
 * samples of this many lookups (its size: a working set that fits is warm
 * by the end of one; a sample without a hit in its first eighth ends
 * there). A sample with fewer than 1 in AIBL_FCACHE_MIN_HIT_INV hits turns
 * the lookups off for the CPU's next AIBL_FCACHE_BYPASS_MIN established
 * packets, twice that after each further such sample, up to
 * AIBL_FCACHE_BYPASS_MAX.
 */
#define AIBL_FCACHE_SAMPLE	AIBL_FCACHE_ENTRIES
#define AIBL_FCACHE_MIN_HIT_INV 4
#define AIBL_FCACHE_BYPASS_MIN	(16 * AIBL_FCACHE_SAMPLE)
#define AIBL_FCACHE_BYPASS_MAX	(128 * AIBL_FCACHE_SAMPLE)
/* Session pins from cache hints. */
#ifndef AIBL_MAX_PINS
#define AIBL_MAX_PINS 65536
#endif
/* (service, backend) membership entries. */
#ifndef AIBL_MAX_MEMBERS
#define AIBL_MAX_MEMBERS 65536
#endif
/* Client affinities the data plane learns (aibl_affinity): buckets of
 * AIBL_AFFINITY_WAYS entries, AIBL_MAX_AFFINITY entries in all. */
#ifndef AIBL_MAX_AFFINITY
#define AIBL_MAX_AFFINITY 65536
#endif
#define AIBL_AFFINITY_WAYS    2
#define AIBL_AFFINITY_BUCKETS (AIBL_MAX_AFFINITY / AIBL_AFFINITY_WAYS)
/* Node side: clients seen per node, for cache hints. */
#ifndef AIBL_NODE_MAX_CLIENTS
#define AIBL_NODE_MAX_CLIENTS 65536
#endif
/* How far bounded load probes onward in the table past an unusable slot. */
#ifndef AIBL_MAX_PROBES
#define AIBL_MAX_PROBES 16
#endif
/* Maximum IPv6 extension headers walked before giving up (drop + count). */
#ifndef AIBL_MAX_EXT_HDRS
#define AIBL_MAX_EXT_HDRS 6
#endif

#define AIBL_NAME_LEN  32
#define AIBL_MODEL_LEN 64

/* Invalid backend id (empty table slot, no pin). */
#define AIBL_NO_BACKEND 0xffffffffU

/* ---- map names: pinned by name under the bpffs directory ---- */
#define AIBL_DEFAULT_BPFFS "/sys/fs/bpf/aibl"

#define AIBL_MAP_VIPS	   "aibl_vips"
#define AIBL_MAP_BACKENDS  "aibl_backends"
#define AIBL_MAP_RING	   "aibl_ring"
#define AIBL_MAP_COST	   "aibl_cost"
#define AIBL_MAP_LOAD	   "aibl_load"
#define AIBL_MAP_CONNS	   "aibl_conns"
#define AIBL_MAP_PINS	   "aibl_pins"
#define AIBL_MAP_AFFINITY  "aibl_affinity"
#define AIBL_MAP_MEMBERS   "aibl_members"
#define AIBL_MAP_STATS	   "aibl_stats"
#define AIBL_MAP_SVC_STATS "aibl_svc_stats"
#define AIBL_MAP_BE_STATS  "aibl_be_stats"
#define AIBL_MAP_GLOBALS   "aibl_globals"
#define AIBL_MAP_RR_POS	   "aibl_rr_pos"
#define AIBL_MAP_SVC_META  "aibl_svc_meta"
#define AIBL_MAP_BE_META   "aibl_be_meta"
#define AIBL_MAP_FILTER	   "aibl_filter"
#define AIBL_MAP_RATE	   "aibl_rate"
#define AIBL_MAP_SYNS	   "aibl_syns"
#define AIBL_MAP_FCACHE	   "aibl_fcache"
#define AIBL_MAP_FC_CTL	   "aibl_fcache_ctl"
/* the XDP program itself, pinned by aibld so aiblctl can test-run it */
#define AIBL_PIN_PROG "aibl_xdp_prog"
/* node side (decap program) */
#define AIBL_MAP_NODE_CLIENTS "aibl_node_cli"
#define AIBL_MAP_NODE_STATS   "aibl_node_stats"
#define AIBL_MAP_NODE_ADDRS   "aibl_node_addrs"
#define AIBL_MAP_NODE_SRCS    "aibl_node_srcs"
#define AIBL_MAP_NODE_CFG     "aibl_node_cfg"

/* address families as stored in maps (not AF_*: stable across libcs) */
enum aibl_family {
	AIBL_AF_NONE = 0,
	AIBL_AF_INET = 4,
	AIBL_AF_INET6 = 6,
};

union aibl_addr {
	__be32 v4; /* IPv4 in the first 4 bytes, rest zero */
	__be32 v6[4];
	__u8 b[16];
};

/* ---- service (VIP) lookup: aibl_vips, HASH ---- */
struct aibl_vip_key {
	union aibl_addr addr;
	__be16 port; /* 0: wildcard for every port of this address */
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 family; /* enum aibl_family */
};

/*
 * ---- enums with names ----
 * Each enum whose values have a name (config keys, aiblctl output, the
 * status API) is one X-macro, X(SUFFIX, value, "name"), like the counters:
 * the enum and every name table are expansions of it, so a name is written
 * once. Values are listed in ascending order without gaps (a table indexed
 * by value has no hole); they are ABI where a map stores them.
 */

/* new-flow choice in the data plane */
#define AIBL_MODES(X)                                                                              \
	X(HASH, 0, "hash") /* Maglev slot of hash(session key) */                                  \
	X(RR, 1, "rr")	   /* walk the table in order (weighted rr) */                             \
	X(P2C, 2, "p2c")   /* two table candidates, lower cost wins */

enum aibl_mode {
#define AIBL_X_ENUM(n, v, s) AIBL_MODE_##n = v,
	AIBL_MODES(AIBL_X_ENUM)
#undef AIBL_X_ENUM
	    AIBL_MODE__MAX
};

#define AIBL_SESSION_KEYS(X)                                                                       \
	X(SRC_IP, 0, "src_ip")                                                                     \
	X(FIVE_TUPLE, 1, "five_tuple")

enum aibl_session_key {
#define AIBL_X_ENUM(n, v, s) AIBL_KEY_##n = v,
	AIBL_SESSION_KEYS(AIBL_X_ENUM)
#undef AIBL_X_ENUM
	    AIBL_KEY__MAX
};

/* aibl_vip.flags */
#define AIBL_VIP_F_NO_CONNTRACK 0x01 /* stateless: always take the table */
/* p2c: a client's new flows follow its last p2c choice (struct aibl_affinity) */
#define AIBL_VIP_F_AFFINITY 0x02

struct aibl_vip {
	__u32 svc_id;	  /* index into per-service arrays, < AIBL_MAX_SERVICES */
	__u8 mode;	  /* enum aibl_mode */
	__u8 session_key; /* enum aibl_session_key */
	__u8 ring_half;	  /* active half of the double-buffered table: 0 or 1 */
	__u8 flags;	  /* AIBL_VIP_F_* */
};

/* ---- backends: aibl_backends, ARRAY indexed by backend id ---- */
#define AIBL_BE_F_VALID	     0x01 /* slot in use */
#define AIBL_BE_F_DOWN	     0x02 /* failing health checks: re-steer its flows */
#define AIBL_BE_F_DRAINING   0x04 /* no new flows, existing ones continue */
#define AIBL_BE_F_OVERLOADED 0x08 /* no new flows while others can take them */
/* the controller's mark, ignored by the data plane: DRAINING is set because the
 * node's agent is not trusted (its backend answers), not by an operator */
#define AIBL_BE_F_UNHEALTHY 0x10

struct aibl_backend {
	union aibl_addr addr;
	__u8 family; /* enum aibl_family */
	__u8 flags;  /* AIBL_BE_F_* */
	/* next-hop MAC when bpf_fib_lookup has no neighbour; all-zero: none */
	__u8 mac[6];
};

/*
 * ---- Maglev table: aibl_ring, ARRAY of __u32 backend ids ----
 * index = (svc_id * 2 + ring_half) * AIBL_RING_SIZE + slot
 * The controller fills the inactive half, then flips aibl_vip.ring_half.
 */
#define AIBL_RING_INDEX(svc, half, slot)                                                           \
	(((__u32)(svc)*2 + (__u32)(half)) * (__u32)AIBL_RING_SIZE + (__u32)(slot))

/* ---- p2c cost: aibl_cost (controller) and aibl_load (data plane) ----
 * p2c compares the two candidates' costs, each
 *   per_flow == 0: cost + active                 (units of one active flow)
 *   per_flow  > 0: cost + max(0, active - free) * per_flow
 * The second is the ai policy's price in ms: the node's unloaded request
 * latency, plus per_flow ms for every flow beyond the free slots (the wait
 * a queued flow has and the one it adds behind it, docs/aibld.md); the
 * data plane's live flow count makes a burst of new flows spread within
 * one controller interval. Two candidates priced so compare by cost even
 * when one is AIBL_BE_F_OVERLOADED: the queue that overloads a node is in
 * its price.
 */
struct aibl_cost {
	__u32 cost;
	__u16 free;	/* per_flow > 0: active flows that still find a slot */
	__u16 per_flow; /* ms one more flow adds once the slots are full; 0: flows */
	/* per_flow > 0: ms of the node's compute a new session's prompt takes
	 * where prefills take turns on it (0: they do not); see aibl_load */
	__u16 prefill_ms;
	__u16 flags; /* AIBL_COST_F_* */
};

/* ai: the node's unloaded request latency is beyond latency_spread x the
 * best node's (+ latency_slack_ms), a slower node: a client's affinity to it
 * yields to a p2c choice that is cheaper, has a free slot now and no prompt
 * waiting for its compute, as a slower node's session pin does
 * (AIBL_PIN_F_SLOWER) */
#define AIBL_COST_F_SLOWER 0x0001

/*
 * A p2c flow counts from its SYN: the choice is made there, and a burst of
 * SYNs that arrive together would otherwise all see the same counts and all
 * go to the same candidate (a herd). A begun handshake counts in syn_new or
 * syn_old, by the epoch of its SYN (bpf_ktime_get_coarse_ns() >>
 * AIBL_SYN_EPOCH_SHIFT, 67 ms), until its ACK moves it into active; one that
 * never completes (a lost or spoofed SYN) stops counting after one to two
 * epochs, so a SYN flood cannot inflate the counts for longer.
 */
#define AIBL_SYN_EPOCH_SHIFT 26

struct aibl_load {
	__s64 active;	 /* flows opened minus flows seen closing (FIN/RST) */
	__u32 syn_epoch; /* the epoch of syn_new */
	__s32 syn_new;	 /* handshakes begun in syn_epoch and not complete */
	__s32 syn_old;	 /* ... begun in the epoch before */
	__u32 pad;
	/* CLOCK_MONOTONIC ns until which the prefills of the sessions this
	 * balancer sent there keep its compute busy (aibl_cost.prefill_ms) */
	__u64 prefill_until_ns;
};

/* ---- connection table: aibl_conns, LRU_HASH ---- */
struct aibl_flow_key {
	union aibl_addr src;
	union aibl_addr dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

#define AIBL_CONN_F_CLOSING 0x01 /* FIN/RST seen: counted out of aibl_load */
#define AIBL_CONN_F_PINNED  0x02 /* chosen through a session pin */
/* closing by a RST: a later packet without FIN/RST that opens no new
 * handshake shows the RST was blind (spoofed), and the flow counts again */
#define AIBL_CONN_F_RST 0x04
/*
 * Closing by a FIN whose place in the client's sequence space the entry
 * keeps in its upper flag bits, so a later segment can show the FIN was
 * forged (docs/dataplane.md: forged FIN). Bits, not a wider entry: the
 * table keeps its 16-byte values and a pinned table its layout.
 *   bits 8..31  the FIN's sequence number (seq + payload) / 256
 *   bits 5..7   bare segments seen behind the FIN (up to 7)
 *   FIN_AT      a segment at the FIN's place came: the FIN was the client's
 */
#define AIBL_CONN_F_FIN		   0x08
#define AIBL_CONN_F_FIN_AT	   0x10
#define AIBL_CONN_FIN_BEHIND_SHIFT 5
#define AIBL_CONN_FIN_BEHIND_MAX   7
#define AIBL_CONN_FIN_SEQ_SHIFT	   8

struct aibl_conn {
	__u32 backend;
	__u32 flags;	    /* AIBL_CONN_F_* */
	__u64 last_seen_ns; /* bpf_ktime_get_ns(), refreshed at most ~1/s */
};

/* ---- session pins: aibl_pins, HASH ---- */
struct aibl_pin_key {
	__u32 svc_id;
	__u8 family;
	__u8 pad[3];
	union aibl_addr client;
};

struct aibl_pin {
	__u32 backend;
	/* a p2c service's new flow leaves the pin for its p2c choice when
	 * the queue expected there (aibl_cost beyond the free slots) is more
	 * than spill_ms shorter; 0: never */
	__u16 spill_ms;
	__u16 flags;	  /* AIBL_PIN_F_* */
	__u64 expires_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns); 0: no expiry */
};

/*
 * ---- client affinity: aibl_affinity, ARRAY of AIBL_AFFINITY_BUCKETS ----
 * A p2c service with AIBL_VIP_F_AFFINITY records where p2c sent each
 * client's new flow; the same client's next new flow to the service,
 * within aibl_globals.affinity_ms and with no session pin, goes there too
 * unless the queue expected there (beyond the free slots, and the prompts
 * waiting for the node's compute) is more than affinity_spill_ms longer
 * than at the p2c choice. It bridges the time before the node's cache
 * hints make a pin, and it keeps the sessions behind one address (a NAT,
 * an API gateway), which no pin tells apart, on the node that holds their
 * prefixes. Only a backend still in the service's table (aibl_members) is
 * followed. Never in cluster mode.
 * A (service, client) lives in the bucket aibl_affinity_index() names, in
 * the way that holds it, else the way that expires first (an empty way has
 * expires_ns 0). Written in place, without the insert and eviction an LRU
 * hash pays on each new client (about 360 ns a SYN here, more than the
 * rest of the new-flow path): an entry lost to a newer client costs one
 * flow the affinity, as an LRU's eviction does. Two CPUs writing one way
 * at once can mix two entries; what is read is checked whole (client,
 * service, family, a backend in the service's table), so a mixed entry is
 * at worst a p2c choice of the same service followed.
 */
struct aibl_affinity {
	union aibl_addr client;
	__u32 svc_id;
	__u32 backend;
	__u8 family; /* AIBL_AF_*, 0: an empty way */
	__u8 pad[7];
	__u64 expires_ns; /* bpf_ktime_get_coarse_ns() */
};

struct aibl_affinity_bucket {
	struct aibl_affinity way[AIBL_AFFINITY_WAYS];
};

/* the pinned node is measured beyond its service's latency bound (a slower
 * tier): a p2c service's new flow leaves the pin for a p2c choice that is
 * cheaper and has a free slot now (struct aibl_cost) */
#define AIBL_PIN_F_SLOWER 0x0001

/* ---- service membership: aibl_members, HASH (for inspection) ---- */
struct aibl_member_key {
	__u32 svc_id;
	__u32 backend;
};

struct aibl_member {
	__u32 weight;	  /* effective weight the table was built from */
	__u32 cfg_weight; /* configured static weight */
	__u32 slots;	  /* slots of the active table half */
	__u32 pad;
};

/* ---- counters ---- */
#define AIBL_COUNTERS(X)                                                                           \
	X(PASS, "pass", "packets not for a VIP, passed to the stack")                              \
	X(VIP_PKTS, "vip_packets", "packets addressed to a VIP")                                   \
	X(TX, "tx", "forwarded with XDP_TX")                                                       \
	X(REDIRECT, "redirect", "forwarded with bpf_redirect")                                     \
	X(CONN_HIT, "conn_hit", "connection table hits")                                           \
	X(CONN_MISS, "conn_miss", "connection table misses (new flows)")                           \
	X(CONN_MISS_MIDFLOW, "conn_miss_midflow", "misses on non-SYN TCP")                         \
	X(CONN_INSERT_FAIL, "conn_insert_fail", "connection table insert errors")                  \
	X(RESTEER, "resteer", "flows moved off a down backend")                                    \
	X(PIN_HIT, "pin_hit", "new flows steered by a session pin")                                \
	X(PIN_SKIP, "pin_skip",                                                                    \
	  "pins ignored: backend unusable, expired, or spilled (pin_spill_ms)")                    \
	X(AFFINITY_HIT, "affinity_hit",                                                            \
	  "new flows that followed their client's last p2c choice (aibl_affinity)")                \
	X(AFFINITY_SKIP, "affinity_skip",                                                          \
	  "affinities left for the p2c choice: a longer queue, or the backend left the table")     \
	X(PROBE, "bounded_probe", "new flows that skipped an overloaded slot")                     \
	X(FIB_FAIL, "fib_fail", "next hop lookups that failed")                                    \
	X(ICMP_FWD, "icmp_fwd", "ICMP errors forwarded to a flow's backend")                       \
	X(TOOBIG_SENT, "toobig_sent", "ICMP frag-needed/too-big sent")                             \
	X(FRAG_FWD, "frag_fwd", "fragments forwarded by client address")                           \
	X(DROP_TRUNC, "drop_truncated", "dropped: truncated header")                               \
	X(DROP_BAD_HDR, "drop_bad_header", "dropped: inconsistent header")                         \
	X(DROP_FRAG, "drop_fragment", "dropped: fragment not steerable")                           \
	X(DROP_EXT_HDR, "drop_ext_header", "dropped: IPv6 ext header chain")                       \
	X(DROP_NO_BACKEND, "drop_no_backend", "dropped: no usable backend")                        \
	X(DROP_TOO_BIG, "drop_too_big", "dropped: over MTU after encap")                           \
	X(DROP_ICMP, "drop_icmp", "dropped: ICMP error for no known flow")                         \
	X(DROP_ENCAP, "drop_encap", "dropped: header adjust failed")                               \
	X(DROP_NO_FIB, "drop_no_nexthop", "dropped: no next hop MAC")                              \
	X(CONN_UNTRACKED, "conn_untracked", "new flows not tracked: rate guard")                   \
	X(SYN_RECORD, "syn_record", "SYNs recorded in the handshake table")                        \
	X(SYN_HIT, "syn_hit", "handshakes completed on their SYN's backend")                       \
	X(FCACHE_HIT, "flow_cache_hit", "established packets from the flow cache")                 \
	X(FCACHE_FILL, "flow_cache_fill", "flow cache entries written")                            \
	X(CONN_NOINSERT, "conn_no_insert", "misses not inserted: RST/FIN/SYN-ACK or unverified")   \
	X(CONN_REOPEN, "conn_reopen", "flows counted again after a blind RST")                     \
	X(DROP_JUMBO, "drop_jumbo", "dropped: multi-buffer (jumbo) frame")                         \
	X(FCACHE_BYPASS, "flow_cache_bypass", "flow cache bypasses begun: its samples missed")     \
	X(CONN_FIN_FORGED, "conn_fin_forged", "flows counted again after a forged FIN")

enum aibl_counter {
#define AIBL_X_ENUM(n, s, d) AIBL_CNT_##n,
	AIBL_COUNTERS(AIBL_X_ENUM)
#undef AIBL_X_ENUM
	    AIBL_CNT__MAX
};

/* aibl_svc_stats (per svc_id) and aibl_be_stats (per backend), PERCPU_ARRAY */
struct aibl_traffic {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 pin_hits;
};

/* ---- instance configuration: aibl_globals, ARRAY of one ---- */
#define AIBL_FWD_MODES(X)                                                                          \
	X(IPIP, 0, "ipip")   /* IPv4-in-IPv4 / IPv6-in-IPv6 / IPv4-in-IPv6 */                      \
	X(L2DSR, 1, "l2dsr") /* rewrite MACs only; backend holds the VIP */

enum aibl_fwd_mode {
#define AIBL_X_ENUM(n, v, s) AIBL_FWD_##n = v,
	AIBL_FWD_MODES(AIBL_X_ENUM)
#undef AIBL_X_ENUM
	    AIBL_FWD__MAX
};

#define AIBL_G_F_TOOBIG_ICMP 0x01 /* answer oversize packets with ICMP */
/* the writer keeps aibl_filter[AIBL_FILTER_VIP] a superset of aibl_vips'
 * addresses: a packet whose address bit is clear is passed at once */
#define AIBL_G_F_VIP_FILTER 0x02
/* the writer keeps aibl_filter[AIBL_FILTER_PIN] a superset of aibl_pins:
 * a new flow whose (service, client) bit is clear skips the pin lookup */
#define AIBL_G_F_PIN_FILTER 0x04
/* established flows take the flow cache (aibl_fcache) first; the writer
 * bumps aibl_globals.epoch after changing anything the cache holds */
#define AIBL_G_F_FLOW_CACHE 0x08
/*
 * Cluster mode (docs/cluster.md): a new choice is a function of the packet
 * and the shared plan alone, so every balancer of an ECMP group makes the
 * same one and a flow moved to another balancer mid-way re-derives it
 * there: rr takes the hash choice, p2c compares aibl_cost only (the plan's
 * costs, not this balancer's active flows), and every choice for a p2c
 * service is the p2c one, a mid-flow miss's and a guarded flow's included.
 */
#define AIBL_G_F_CLUSTER 0x10

struct aibl_globals {
	__u32 abi_version; /* AIBL_ABI_VERSION of the writer */
	__u32 ring_size;   /* AIBL_RING_SIZE of the writer */
	__u8 fwd_mode;	   /* enum aibl_fwd_mode */
	__u8 flags;	   /* AIBL_G_F_* */
	__u16 mtu;	   /* egress MTU for encapsulated packets; 0: no check */
	__u32 ifindex;	   /* interface the XDP program is attached to */
	/* outer IPv4 source: (src4 & ~src4_mask) | (flow hash & src4_mask) */
	__be32 src4;
	__be32 src4_mask;
	/* outer IPv6 source: src6 with its last 32 bits xored with the hash */
	__be32 src6[4];
	__u8 gw_mac[6];	 /* next hop MAC when fib and backend mac fail */
	__u8 if_mac[6];	 /* our MAC, source of rewritten frames */
	__u32 hash_seed; /* same on every balancer behind one ECMP group */
	/* new-connection rate guard: connection-table inserts per second per
	 * CPU; a new flow beyond it is forwarded by the hash choice without an
	 * entry (a SYN flood cannot evict established flows). 0: unlimited */
	__u32 max_conn_rate;
	/*
	 * Flow cache entries written under another epoch are void. Writers
	 * bump it after deleting or rewriting connection entries or changing
	 * or deleting a VIP (dp__globals_write() and dp__epoch_bump() do).
	 */
	__u32 epoch;
	/* p2c services with AIBL_VIP_F_AFFINITY: how long a client's new
	 * flows follow its last p2c choice, and the longer queue (ms of
	 * aibl_cost) at which they leave it; 0: no affinity */
	__u32 affinity_ms;
	__u32 affinity_spill_ms;
};

/*
 * ---- flow cache: aibl_fcache, PERCPU_ARRAY of AIBL_FCACHE_ENTRIES ----
 * A packet of an established flow (a TCP packet without SYN, FIN or RST,
 * or UDP) first looks here, at aibl_fcache_index() of its flow key: an
 * entry with the same key, the current aibl_globals.epoch, younger than
 * AIBL_FCACHE_TTL_MS, whose backend is up, gives its service and backend
 * without the VIP and connection table lookups or the flow hash. The full
 * path writes the entry on a connection-table hit of a flow that is not
 * closing; a flow's FIN/RST or re-steer clears it on every CPU. Only the
 * data plane writes entries; userspace invalidates them through the epoch.
 */
struct aibl_fcache_entry {
	struct aibl_flow_key key; /* family 0: empty */
	__u32 backend;
	__u32 svc_id;
	__u32 flow_hash; /* aibl_hash_flow() of key: outer source / flow label */
	__u32 epoch;	 /* aibl_globals.epoch when written */
	__u64 expires;	 /* bpf_jiffies64() past which the entry is void */
};

/*
 * ---- flow cache bypass: aibl_fcache_ctl, PERCPU_ARRAY of one ----
 * Where flows outnumber the cache (many concurrent flows per CPU, each seen
 * rarely) nearly every lookup misses, and a miss costs a cold line on top
 * of the full path. Each CPU counts its lookups and hits; a sample of
 * AIBL_FCACHE_SAMPLE lookups below 1 in AIBL_FCACHE_MIN_HIT_INV hits makes
 * the CPU's next `skip` established packets take the full path without a
 * lookup or a fill; then the cache is sampled again. Only the data plane
 * writes it.
 */
struct aibl_fcache_ctl {
	__u32 probes; /* lookups in the current sample */
	__u32 hits;   /* of them, hits */
	__u32 skip;   /* established packets still to take past the cache */
	__u32 bypass; /* the next bypass's length (0: AIBL_FCACHE_BYPASS_MIN) */
};

/*
 * Unverified inserts: a connection-table miss that is no completed TCP
 * handshake (a TCP packet without SYN that matches no handshake record, a
 * UDP packet) is inserted at most this many times per second per CPU; the
 * rest are forwarded by the hash choice without an entry. Anyone can send
 * such packets from random sources, and every insert past the table's size
 * evicts an established flow. Build-time setting.
 */
#ifndef AIBL_UNVERIFIED_RATE
#define AIBL_UNVERIFIED_RATE 64
#endif

/* ---- rate guard state: aibl_rate, PERCPU_ARRAY of AIBL_RATE__MAX ---- */
enum aibl_rate_idx {
	AIBL_RATE_CONN = 0,	  /* completed handshakes, limit max_conn_rate */
	AIBL_RATE_UNVERIFIED = 1, /* the others, limit AIBL_UNVERIFIED_RATE */
	AIBL_RATE__MAX
};

struct aibl_rate {
	__u64 window_start_ns; /* bpf_ktime_get_coarse_ns() when the window opened */
	__u64 count;	       /* connection-table inserts in this window */
};

/*
 * ---- handshakes in progress: aibl_syns, ARRAY of AIBL_SYN_BUCKETS ----
 * A SYN does not touch the connection table: its choice is kept here, in
 * the bucket of its flow hash, and the first packet that completes the
 * handshake (a non-SYN packet that misses aibl_conns) moves it into
 * aibl_conns. A SYN flood thus fills only this small table and never
 * evicts established flows, and half-open flows do not count as active.
 * Way i is free when tag[i] is 0 or ts[i] is older than AIBL_SYN_TTL.
 */
#define AIBL_SYN_F_PINNED 0x80000000U
/* the handshake completed without an entry (the rate guard refused it):
 * its new flow is counted, its later packets follow the record uncounted */
#define AIBL_SYN_F_COUNTED 0x40000000U
/* the SYN counts in aibl_load's syn_new (a p2c choice, load_syn_begin()),
 * from the syn epoch in the bits AIBL_SYN_EPOCH_POS up (its low 13 bits:
 * 9 minutes of epochs, past any record's life): its ACK takes back that
 * count, and only while that epoch's counts live. The backend id is the
 * word's low 16 bits (AIBL_SYN_ID_MASK) */
#define AIBL_SYN_F_LOAD	    0x20000000U
#define AIBL_SYN_EPOCH_POS  16
#define AIBL_SYN_EPOCH_MASK 0x1fffU
#define AIBL_SYN_ID_MASK    0xffffU
struct aibl_syn_bucket {
	/* low 32 bits: aibl_syn_index()'s tag, never 0; high 32: the SYN's
	 * sequence number (its ISN: a closed tuple is reused only by a packet
	 * that acknowledges it, ISN + 1); 0: empty */
	__u64 tag[AIBL_SYN_WAYS];
	__u32 backend[AIBL_SYN_WAYS]; /* | AIBL_SYN_F_PINNED (a session pin), _COUNTED */
	__u32 ts[AIBL_SYN_WAYS];      /* bpf_jiffies64() when written, low 32 bits */
};

/*
 * ---- pre-filters: aibl_filter, ARRAY of AIBL_FILTER__MAX bitmaps ----
 * A hash lookup that misses costs a cache (and TLB) miss in a big bucket
 * array; one bit in an 8 KiB bitmap (an ARRAY lookup, inlined by the
 * verifier) answers most of those misses first. Bit numbers come from
 * aibl_filter_vip_bit() / aibl_filter_pin_bit() in aibl_hash.h. A set bit
 * only means "look it up": writers may leave stale bits (after a delete)
 * but must set a key's bit after writing the key, and enable the filter
 * with its AIBL_G_F_*_FILTER flag only while they maintain it
 * (user/common/dataplane.h: dp__vip_filter_rebuild(), dp__pin_filter_rebuild()).
 */
enum aibl_filter_idx {
	AIBL_FILTER_VIP = 0, /* bit of each VIP address (any port, proto) */
	AIBL_FILTER_PIN = 1, /* bit of each pinned (service, client) */
	AIBL_FILTER__MAX
};

#define AIBL_FILTER_BITS 65536 /* power of two */

struct aibl_filter {
	__u64 bits[AIBL_FILTER_BITS / 64];
};

/* ---- names for inspection: aibl_svc_meta / aibl_be_meta, ARRAY ---- */
#define AIBL_POLICIES(X)                                                                           \
	X(RR, 0, "rr")                                                                             \
	X(WRR, 1, "wrr")                                                                           \
	X(HASH, 2, "hash")                                                                         \
	X(LEAST_CONN, 3, "least_conn")                                                             \
	X(LEAST_TIME, 4, "least_time")                                                             \
	X(AI, 5, "ai")

enum aibl_policy {
#define AIBL_X_ENUM(n, v, s) AIBL_POL_##n = v,
	AIBL_POLICIES(AIBL_X_ENUM)
#undef AIBL_X_ENUM
	    AIBL_POL__MAX
};

struct aibl_svc_meta {
	char name[AIBL_NAME_LEN];
	char model[AIBL_MODEL_LEN];
	struct aibl_vip_key vip;
	__u8 valid;
	__u8 policy; /* enum aibl_policy */
	__u16 nbackends;
	__u32 generation; /* bumped on every table rewrite */
};

#define AIBL_ACCELS(X)                                                                             \
	X(NONE, 0, "none") /* CPU only */                                                          \
	X(GPU, 1, "gpu")                                                                           \
	X(OTHER, 2, "other")

enum aibl_accel {
#define AIBL_X_ENUM(n, v, s) AIBL_ACCEL_##n = v,
	AIBL_ACCELS(AIBL_X_ENUM)
#undef AIBL_X_ENUM
	    AIBL_ACCEL__MAX
};

struct aibl_be_meta {
	char name[AIBL_NAME_LEN];
	__u32 cfg_weight;
	__u8 valid;
	__u8 accel; /* enum aibl_accel */
	/* no longer configured: draining out, its flags aibld's, not an
	 * operator's (a restart that finds it configured again starts it
	 * afresh) */
	__u8 retired;
	__u8 pad;
};

/* ---- node side: aibl_node_cli, LRU_HASH, filled by the decap program ---- */
struct aibl_node_client_key {
	union aibl_addr client;
	union aibl_addr vip;
	__be16 vport;
	__u8 proto;
	__u8 family;
};

struct aibl_node_client {
	__u64 first_seen_ns;
	__u64 last_seen_ns;
	__u64 packets;
	__u64 bytes;
};

/*
 * ---- node side: what the decap program accepts ----
 * A tunnel packet is decapsulated only when its outer destination is one
 * of the node's addresses (aibl_node_addrs, AIBL_NODE_ADDR_LOCAL), its
 * outer source lies in a balancer's source prefix (aibl_node_srcs, LPM
 * trie) and its inner destination is a VIP the node holds
 * (AIBL_NODE_ADDR_VIP). Each check applies while its flag is set in
 * aibl_node_cfg (the agent sets the flag once it has filled the table).
 */
enum aibl_node_addr_kind {
	AIBL_NODE_ADDR_LOCAL = 1, /* outer destination: the node itself */
	AIBL_NODE_ADDR_VIP = 2,	  /* inner destination: a VIP held on lo / dummy */
};

struct aibl_node_addr_key {
	union aibl_addr addr;
	__u8 family; /* enum aibl_family */
	__u8 kind;   /* enum aibl_node_addr_kind */
	__u16 pad;
};

/* LPM trie key: prefixlen counts the family byte (8 bits) too */
struct aibl_node_src_key {
	__u32 prefixlen;
	__u8 family;
	__u8 addr[16];
	__u8 pad[3];
};

#define AIBL_NODE_F_CHECK_LOCAL	 0x01
#define AIBL_NODE_F_CHECK_SOURCE 0x02
#define AIBL_NODE_F_CHECK_VIP	 0x04

struct aibl_node_cfg {
	__u32 flags; /* AIBL_NODE_F_* */
	__u32 pad;
};

#define AIBL_NODE_COUNTERS(X)                                                                      \
	X(PASS, "pass", "packets not encapsulated, passed")                                        \
	X(DECAP4, "decap_ipip", "IPv4-in-IPv4 packets decapsulated")                               \
	X(DECAP6, "decap_ip6ip6", "IPv6-in-IPv6 packets decapsulated")                             \
	X(DECAP46, "decap_ip4ip6", "IPv4-in-IPv6 packets decapsulated")                            \
	X(DROP_TRUNC, "drop_truncated", "dropped: truncated tunnel packet")                        \
	X(DROP_ADJUST, "drop_adjust", "dropped: header removal failed")                            \
	X(NOT_LOCAL, "refuse_not_local", "tunnels to another address, passed")                     \
	X(DROP_SOURCE, "drop_source", "dropped: outer source not a balancer")                      \
	X(DROP_NOT_VIP, "drop_not_vip", "dropped: inner destination not a VIP here")               \
	X(DROP_BAD_OUTER, "drop_bad_outer", "dropped: outer checksum or length wrong")             \
	X(DROP_BAD_INNER, "drop_bad_inner", "dropped: inner header version or lengths wrong")      \
	X(DIRECT, "direct_vip", "plain packets to a VIP here (l2dsr), client recorded")            \
	X(ECN_CE, "ecn_ce", "congestion marks (CE) of the outer header copied to the inner one")   \
	X(DROP_ECN, "drop_ecn",                                                                    \
	  "dropped: an outer CE mark on a packet not ECN-capable (RFC 6040)")                      \
	X(UNCONFIRMED, "unconfirmed", "new TCP clients not recorded: no connection here yet")

enum aibl_node_counter {
#define AIBL_X_ENUM(n, s, d) AIBL_NCNT_##n,
	AIBL_NODE_COUNTERS(AIBL_X_ENUM)
#undef AIBL_X_ENUM
	    AIBL_NCNT__MAX
};

/* ---- layout checks: both compilers must agree ---- */
_Static_assert(sizeof(union aibl_addr) == 16, "aibl_addr");
_Static_assert(sizeof(struct aibl_vip_key) == 20, "aibl_vip_key");
_Static_assert(sizeof(struct aibl_vip) == 8, "aibl_vip");
_Static_assert(sizeof(struct aibl_backend) == 24, "aibl_backend");
_Static_assert(sizeof(struct aibl_cost) == 12, "aibl_cost");
_Static_assert(sizeof(struct aibl_load) == 32, "aibl_load");
_Static_assert(sizeof(struct aibl_flow_key) == 40, "aibl_flow_key");
_Static_assert(sizeof(struct aibl_conn) == 16, "aibl_conn");
_Static_assert(sizeof(struct aibl_pin_key) == 24, "aibl_pin_key");
_Static_assert(sizeof(struct aibl_pin) == 16, "aibl_pin");
_Static_assert(sizeof(struct aibl_affinity) == 40, "aibl_affinity");
_Static_assert((AIBL_AFFINITY_BUCKETS & (AIBL_AFFINITY_BUCKETS - 1)) == 0,
	       "affinity buckets: power of two");
_Static_assert(sizeof(struct aibl_member_key) == 8, "aibl_member_key");
_Static_assert(sizeof(struct aibl_member) == 16, "aibl_member");
_Static_assert(sizeof(struct aibl_traffic) == 32, "aibl_traffic");
_Static_assert(sizeof(struct aibl_globals) == 72, "aibl_globals");
_Static_assert(sizeof(struct aibl_rate) == 16, "aibl_rate");
_Static_assert(sizeof(struct aibl_fcache_entry) == 64, "aibl_fcache_entry: one cache line");
_Static_assert(sizeof(struct aibl_fcache_ctl) == 16, "aibl_fcache_ctl");
_Static_assert(AIBL_FCACHE_BITS >= 4 && AIBL_FCACHE_BITS <= 24, "flow cache bits: 4..24");
_Static_assert(sizeof(struct aibl_syn_bucket) == 64, "aibl_syn_bucket: one cache line");
_Static_assert((AIBL_SYN_BUCKETS & (AIBL_SYN_BUCKETS - 1)) == 0, "syn buckets: power of two");
_Static_assert(AIBL_MAX_BACKENDS <= AIBL_SYN_ID_MASK + 1, "backend ids fit a syn record's word");
_Static_assert(sizeof(struct aibl_filter) == 8192, "aibl_filter");
_Static_assert((AIBL_FILTER_BITS & (AIBL_FILTER_BITS - 1)) == 0, "filter bits: power of two");
_Static_assert(sizeof(struct aibl_svc_meta) == 124, "aibl_svc_meta");
_Static_assert(sizeof(struct aibl_be_meta) == 40, "aibl_be_meta");
_Static_assert(sizeof(struct aibl_node_client_key) == 36, "aibl_node_client_key");
_Static_assert(sizeof(struct aibl_node_client) == 32, "aibl_node_client");
_Static_assert(sizeof(struct aibl_node_addr_key) == 20, "aibl_node_addr_key");
_Static_assert(sizeof(struct aibl_node_src_key) == 24, "aibl_node_src_key");
_Static_assert(sizeof(struct aibl_node_cfg) == 8, "aibl_node_cfg");
_Static_assert((AIBL_RING_SIZE & 1) == 1, "ring size must be odd (prime)");

#endif /* AIBL_H */
