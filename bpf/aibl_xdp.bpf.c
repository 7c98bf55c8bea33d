// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibl balancer: XDP program that steers packets addressed to a service VIP
 * to one of that service's backends (inference nodes) and passes everything
 * else untouched. The controller (aibld) fills the maps; this program only
 * reads them, except for the connection table, per-backend active flows,
 * the rr positions and the counters.
 *
 * Packet path:
 *   parse L2 (<= 2 VLAN tags) / IPv4 (options) / IPv6 (ext headers) / L4
 *   -> established flow in this CPU's flow cache (aibl_fcache): its
 *      service and backend, straight to forwarding
 *   -> VIP lookup (addr, port, proto), then (addr, 0, proto) wildcard
 *   -> connection table hit: that backend (re-steer when it is down); the
 *      decision goes into the flow cache
 *   -> miss: session pin, else the service's mode (hash / rr / p2c) over
 *      its Maglev table, probing past draining/overloaded/down backends;
 *      past the new-connection rate (aibl_globals.max_conn_rate) the hash
 *      choice, and no table entry (a SYN then skips the table lookup)
 *   -> forward: ipip (4in4, 6in6, 4in6) or l2dsr, next hop MAC from the
 *      backend entry, bpf_fib_lookup or the configured gateway
 *
 * The established path does no map writes except per-CPU counters and,
 * at most once a second per flow, the connection's last_seen and its flow
 * cache entry.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "aibl_uapi.h"
#include "aibl.h"
#include "aibl_parse.h"

/* bytes of the offending packet quoted in a generated ICMP error: enough
 * for an IPv4 header with options / an IPv6 header with a few extension
 * headers, plus the L4 ports the client's stack needs to find its socket */
#define TOOBIG_QUOTE4 64
#define TOOBIG_QUOTE6 128

/* refresh a connection's last_seen at most this often */
#define CONN_REFRESH_NS 1000000000ULL
/* the rate guard's window: max_conn_rate counts inserts per second */
#define RATE_WINDOW_NS 1000000000ULL

/* a store the compiler neither tears nor moves across another volatile one */
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

/* ---------------- maps (see include/aibl.h for the layouts) ---------------- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* a service may have a v4 and a v6 address, tcp and udp */
	__uint(max_entries, AIBL_MAX_SERVICES * 4);
	__type(key, struct aibl_vip_key);
	__type(value, struct aibl_vip);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_backends SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_cost);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_cost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_load);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_load SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AIBL_MAX_CONNS);
	__type(key, struct aibl_flow_key);
	__type(value, struct aibl_conn);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AIBL_MAX_PINS);
	__type(key, struct aibl_pin_key);
	__type(value, struct aibl_pin);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_pins SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AIBL_MAX_MEMBERS);
	__type(key, struct aibl_member_key);
	__type(value, struct aibl_member);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_members SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct aibl_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AIBL_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct aibl_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_be_stats SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AIBL_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct aibl_svc_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_svc_meta SEC(".maps");

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

/* per-CPU window of the new-connection rate guard: no shared cache line
 * on the new-flow path, and RSS spreads a flood over the CPUs anyway */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aibl_rate);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aibl_rate SEC(".maps");

/* ---------------- counters ---------------- */

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

/* ---------------- backend choice ---------------- */

static __always_inline bool be_usable(const struct aibl_backend *be)
{
	return be && (be->flags & (AIBL_BE_F_VALID | AIBL_BE_F_DOWN | AIBL_BE_F_DRAINING |
				   AIBL_BE_F_OVERLOADED)) == AIBL_BE_F_VALID;
}

static __always_inline bool be_up(const struct aibl_backend *be)
{
	return be && (be->flags & (AIBL_BE_F_VALID | AIBL_BE_F_DOWN)) == AIBL_BE_F_VALID;
}

struct pick {
	__u32 backend;
	__u32 slot; /* ring slot the backend was taken from */
	bool overloaded; /* only an overloaded backend was left */
	bool probed; /* skipped at least one slot */
};

/*
 * Bounded load: from slot onward, the first backend that takes new flows;
 * a slot of a backend that is down or draining is skipped, an overloaded
 * one is remembered as a last resort. At most AIBL_MAX_PROBES slots.
 */
static __always_inline void ring_pick(__u32 base, __u32 slot, struct pick *pk)
{
	__u32 fb = AIBL_NO_BACKEND, fb_slot = 0;

	pk->backend = AIBL_NO_BACKEND;
	pk->overloaded = false;
	pk->probed = false;
	/* new flows only: keep the code small rather than unrolled */
#pragma clang loop unroll(disable)
	for (int i = 0; i < AIBL_MAX_PROBES; i++) {
		struct aibl_backend *be;
		__u32 idx, id, *ent;

		idx = base + slot;
		ent = bpf_map_lookup_elem(&aibl_ring, &idx);
		if (!ent)
			break;
		id = *ent;
		be = bpf_map_lookup_elem(&aibl_backends, &id);
		if (be_usable(be)) {
			pk->backend = id;
			pk->slot = slot;
			pk->probed = i > 0;
			return;
		}
		if (fb == AIBL_NO_BACKEND && be_up(be) && !(be->flags & AIBL_BE_F_DRAINING)) {
			fb = id;
			fb_slot = slot;
		}
		if (++slot == AIBL_RING_SIZE)
			slot = 0;
	}
	pk->backend = fb;
	pk->slot = fb_slot;
	pk->overloaded = fb != AIBL_NO_BACKEND;
	pk->probed = true;
}

static __always_inline __s64 be_cost(__u32 id)
{
	struct aibl_cost *c = bpf_map_lookup_elem(&aibl_cost, &id);
	struct aibl_load *l = bpf_map_lookup_elem(&aibl_load, &id);
	__s64 v = 0;

	if (c)
		v += c->cost;
	if (l)
		v += l->active;
	return v;
}

struct choice {
	__u32 backend;
	bool pinned;
};

/*
 * New-flow choice for service vip: a session pin first (unless expired or
 * its backend cannot take new flows), else per mode. key_hash is the hash of
 * the service's session key.
 */
__noinline int choose(const struct aibl_vip *vip, const struct pkt *p, __u32 key_hash, __u8 mode,
		      struct choice *ch)
{
	struct aibl_pin_key pk = {};
	struct aibl_pin *pin = NULL;
	struct aibl_globals *g;
	__u32 zero = 0, svc, base;
	struct pick a, b;

	/* a global function: verified once, for any caller */
	if (!vip || !p || !ch)
		return 0;
	svc = vip->svc_id;
	base = AIBL_RING_INDEX(svc, vip->ring_half & 1, 0);
	pk.svc_id = svc;
	pk.family = p->fk.family;
	ch->backend = AIBL_NO_BACKEND;
	ch->pinned = false;

	/* most clients have no pin: a miss in the big pin table costs a cache
	 * miss (~180 ns here), the filter bit an inlined array read */
	g = bpf_map_lookup_elem(&aibl_globals, &zero);
	if (!g || !(g->flags & AIBL_G_F_PIN_FILTER) ||
	    filter_maybe(AIBL_FILTER_PIN, aibl_filter_pin_bit(svc, &p->fk.src, p->fk.family))) {
		pk.client = p->fk.src;
		pin = bpf_map_lookup_elem(&aibl_pins, &pk);
	}
	if (pin) {
		__u32 id = pin->backend;

		if ((!pin->expires_ns || bpf_ktime_get_ns() < pin->expires_ns) &&
		    be_usable(bpf_map_lookup_elem(&aibl_backends, &id))) {
			count(AIBL_CNT_PIN_HIT);
			ch->backend = id;
			ch->pinned = true;
			return 0;
		}
		count(AIBL_CNT_PIN_SKIP);
	}

	if (mode == AIBL_MODE_RR) {
		__u32 *pos = bpf_map_lookup_elem(&aibl_rr_pos, &svc);
		__u32 slot;

		if (!pos)
			return 0;
		slot = *pos;
		if (slot >= AIBL_RING_SIZE)
			slot = 0;
		ring_pick(base, slot, &a);
		if (a.backend != AIBL_NO_BACKEND) {
			slot = a.slot + 1;
			*pos = slot == AIBL_RING_SIZE ? 0 : slot;
		}
	} else if (mode == AIBL_MODE_P2C) {
		ring_pick(base, key_hash % AIBL_RING_SIZE, &a);
		ring_pick(base, aibl_hash_second(key_hash) % AIBL_RING_SIZE, &b);
		/* an overloaded candidate loses to one that is not */
		if (b.backend != AIBL_NO_BACKEND &&
		    (a.backend == AIBL_NO_BACKEND || (a.overloaded && !b.overloaded) ||
		     (a.overloaded == b.overloaded && be_cost(b.backend) < be_cost(a.backend))))
			a = b;
	} else {
		ring_pick(base, key_hash % AIBL_RING_SIZE, &a);
	}
	if (a.probed && a.backend != AIBL_NO_BACKEND)
		count(AIBL_CNT_PROBE);
	ch->backend = a.backend;
	return 0;
}

static __always_inline __u32 session_hash(const struct aibl_vip *vip, const struct pkt *p,
					  __u32 seed)
{
	return vip->session_key == AIBL_KEY_FIVE_TUPLE ? aibl_hash_flow(&p->fk, seed)
						       : aibl_hash_client(&p->fk, seed);
}

/* ---------------- VIP lookup ---------------- */

static __always_inline bool addr_eq(const union aibl_addr *a, const union aibl_addr *b)
{
	return !((a->v6[0] ^ b->v6[0]) | (a->v6[1] ^ b->v6[1]) | (a->v6[2] ^ b->v6[2]) |
		 (a->v6[3] ^ b->v6[3]));
}

static __always_inline struct aibl_vip *vip_lookup(const union aibl_addr *addr, __u8 family,
						   __be16 port, __u8 proto)
{
	struct aibl_vip_key k = {
		.addr = *addr,
		.port = port,
		.proto = proto,
		.family = family,
	};
	struct aibl_vip *v = NULL;

	if (port)
		v = bpf_map_lookup_elem(&aibl_vips, &k);
	if (!v) {
		k.port = 0;
		v = bpf_map_lookup_elem(&aibl_vips, &k);
	}
	return v;
}

/* ---------------- forwarding ---------------- */

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
	delta = (int)(l2 + hdr + quote) - (int)(data_end - data);
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
	if (g->mtu && p->l3_len + outer > g->mtu) {
		if ((g->flags & AIBL_G_F_TOOBIG_ICMP) && p->df && g->mtu > outer + 68)
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
		*(__be32 *)ip6 = bpf_htonl(0x60000000 | ((__u32)p->tos << 20) |
					   (flow_hash & 0xfffff));
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

/* ---------------- packet classes ---------------- */

static __always_inline int drop_reason(enum parse_rc rc)
{
	switch (rc) {
	case PARSE_TRUNC:
		count(AIBL_CNT_DROP_TRUNC);
		break;
	case PARSE_EXT:
		count(AIBL_CNT_DROP_EXT_HDR);
		break;
	default:
		count(AIBL_CNT_DROP_BAD_HDR);
		break;
	}
	return XDP_DROP;
}

/* A header we could not parse fully: drop it when the destination is a VIP
 * (for the parts we could read), else hand it to the stack unchanged. */
static __noinline int bad_packet(struct pkt *p, enum parse_rc rc)
{
	bool vip;

	if (p->fk.proto == IPPROTO_TCP || p->fk.proto == IPPROTO_UDP)
		vip = vip_lookup(&p->fk.dst, p->fk.family, p->ports ? p->fk.dport : 0, p->fk.proto);
	else
		vip = vip_lookup(&p->fk.dst, p->fk.family, 0, IPPROTO_TCP) ||
		      vip_lookup(&p->fk.dst, p->fk.family, 0, IPPROTO_UDP);
	if (!vip) {
		count(AIBL_CNT_PASS);
		return XDP_PASS;
	}
	count(AIBL_CNT_VIP_PKTS);
	return drop_reason(rc);
}

static __always_inline int send_to(struct xdp_md *ctx, struct pkt *p, __u32 svc, __u32 id,
				   const struct aibl_backend *be, const struct aibl_globals *g,
				   bool new_flow, bool pinned, __u32 flow_hash)
{
	__u64 bytes = ctx->data_end - ctx->data;

	traffic_add(bpf_map_lookup_elem(&aibl_svc_stats, &svc), bytes, new_flow, pinned);
	traffic_add(bpf_map_lookup_elem(&aibl_be_stats, &id), bytes, new_flow, pinned);
	return forward(ctx, p, be, g, flow_hash);
}

static __always_inline int send_new(struct xdp_md *ctx, struct pkt *p, const struct aibl_vip *vip,
				    const struct choice *ch, const struct aibl_globals *g,
				    __u32 flow_hash)
{
	__u32 id = ch->backend;
	struct aibl_backend *be = bpf_map_lookup_elem(&aibl_backends, &id);

	if (!be) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	return send_to(ctx, p, vip->svc_id, id, be, g, true, ch->pinned, flow_hash);
}

/*
 * Fragments: only the first carries ports, so the only service a later
 * fragment can be matched to is the address's port-0 wildcard entry. For
 * such a service keyed by client address every fragment is steered by the
 * client address alone (pin, else the Maglev slot of hash(client), same
 * bounded probing), never through the connection table, so all fragments
 * of a datagram reach the same backend in whatever order they come.
 * Anything else addressed to a VIP is dropped (drop_fragment).
 */
static __noinline int handle_frag(struct xdp_md *ctx, struct pkt *p,
				       const struct aibl_globals *g)
{
	struct aibl_vip *vip = vip_lookup(&p->fk.dst, p->fk.family, 0, p->fk.proto);
	struct choice ch;
	__u32 h;

	if (!vip) {
		/* a first fragment names its port: still ours, still dropped */
		if (p->frag == FRAG_FIRST && p->ports &&
		    vip_lookup(&p->fk.dst, p->fk.family, p->fk.dport, p->fk.proto))
			goto drop;
		count(AIBL_CNT_PASS);
		return XDP_PASS;
	}
	if (vip->session_key != AIBL_KEY_SRC_IP)
		goto drop;
	count(AIBL_CNT_VIP_PKTS);
	h = aibl_hash_client(&p->fk, g->hash_seed);
	choose(vip, p, h, AIBL_MODE_HASH, &ch);
	if (ch.backend == AIBL_NO_BACKEND) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	count(AIBL_CNT_FRAG_FWD);
	/* ports differ between fragments: the client hash picks the outer source */
	return send_new(ctx, p, vip, &ch, g, h);
drop:
	count(AIBL_CNT_VIP_PKTS);
	count(AIBL_CNT_DROP_FRAG);
	return XDP_DROP;
}

/*
 * ICMP errors (destination unreachable incl. fragmentation needed, time
 * exceeded; ICMPv6 also packet too big) sent to a VIP by a router on the
 * path of a backend's reply quote that reply: VIP:port -> client. The
 * flow's backend is found by the reversed tuple in the connection table
 * (for hash services also by recomputing the choice), so path MTU
 * discovery works for the backend that holds the connection.
 */
static __noinline int handle_icmp(struct xdp_md *ctx, struct pkt *p,
				       const struct aibl_globals *g)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u8 *ic = data + (p->l4_off & 0x7ff);
	struct pkt q = {};
	struct aibl_backend *be;
	struct aibl_conn *conn;
	struct aibl_vip *vip;
	enum parse_rc rc;
	struct choice ch;
	__u32 id;

	if ((void *)(ic + 8) > data_end || p->frag)
		goto pass;
	if (p->fk.family == AIBL_AF_INET) {
		if (ic[0] != ICMP_DEST_UNREACH && ic[0] != ICMP_TIME_EXCEEDED)
			goto pass;
		rc = parse_ipv4(data, data_end, (p->l4_off & 0x7ff) + 8, &q, true);
	} else {
		if (ic[0] != ICMPV6_DEST_UNREACH && ic[0] != ICMPV6_PKT_TOOBIG &&
		    ic[0] != ICMPV6_TIME_EXCEED)
			goto pass;
		rc = parse_ipv6(data, data_end, (p->l4_off & 0x7ff) + 8, &q, true);
	}
	/* only errors about packets this address sent are about a VIP flow */
	if (rc == PARSE_NOADDR || q.fk.family != p->fk.family ||
	    !addr_eq(&q.fk.src, &p->fk.dst) ||
	    (q.fk.proto != IPPROTO_TCP && q.fk.proto != IPPROTO_UDP))
		goto pass;
	if (rc != PARSE_OK || !q.ports) {
		/* quotes a VIP address but too little to find the flow */
		vip = vip_lookup(&q.fk.src, q.fk.family, 0, q.fk.proto);
		if (!vip)
			goto pass;
		goto drop;
	}
	vip = vip_lookup(&q.fk.src, q.fk.family, q.fk.sport, q.fk.proto);
	if (!vip)
		goto pass;

	/* reverse the quoted tuple in place: client -> VIP, the flow's key */
	{
		union aibl_addr a = q.fk.src;
		__be16 port = q.fk.sport;

		q.fk.src = q.fk.dst;
		q.fk.dst = a;
		q.fk.sport = q.fk.dport;
		q.fk.dport = port;
	}
	id = AIBL_NO_BACKEND;
	conn = bpf_map_lookup_elem(&aibl_conns, &q.fk);
	if (conn) {
		id = conn->backend;
	} else if (vip->mode == AIBL_MODE_HASH) {
		choose(vip, &q, session_hash(vip, &q, g->hash_seed), AIBL_MODE_HASH, &ch);
		id = ch.backend;
	}
	be = bpf_map_lookup_elem(&aibl_backends, &id);
	if (!be_up(be))
		goto drop;
	count(AIBL_CNT_VIP_PKTS);
	count(AIBL_CNT_ICMP_FWD);
	/* the flow's own hash: same outer source, same backend RSS queue */
	return send_to(ctx, p, vip->svc_id, id, be, g, false, false,
		       aibl_hash_flow(&q.fk, g->hash_seed));
drop:
	count(AIBL_CNT_VIP_PKTS);
	count(AIBL_CNT_DROP_ICMP);
	return XDP_DROP;
pass:
	count(AIBL_CNT_PASS);
	return XDP_PASS;
}

/*
 * Rate guard (Katran's max_conn_rate): may this CPU insert one more flow
 * into the connection table in the current one-second window? A burst of
 * new flows (SYN flood) past the limit would otherwise churn the LRU and
 * evict established flows, which then lose their backend.
 */
static __always_inline bool conn_rate_admit(const struct aibl_globals *g)
{
	struct aibl_rate *r;
	__u32 zero = 0;
	__u64 now;

	if (!g->max_conn_rate)
		return true;
	r = bpf_map_lookup_elem(&aibl_rate, &zero);
	if (!r)
		return true;
	now = bpf_ktime_get_coarse_ns();
	if (now - r->window_start_ns >= RATE_WINDOW_NS) {
		r->window_start_ns = now;
		r->count = 0;
	}
	if (r->count >= g->max_conn_rate)
		return false;
	r->count++;
	return true;
}

/*
 * Is the guard refusing on this CPU right now (its window still open and
 * already at max_conn_rate)? A read-only, inlined per-CPU array read: lets
 * a SYN skip the connection-table lookup miss (a cache and TLB miss) when
 * it could not be inserted anyway. A stale window reads as not engaged;
 * conn_rate_admit() on the normal path then opens the next one.
 */
static __always_inline bool conn_rate_engaged(const struct aibl_globals *g)
{
	struct aibl_rate *r;
	__u32 zero = 0;

	if (!g->max_conn_rate)
		return false;
	r = bpf_map_lookup_elem(&aibl_rate, &zero);
	if (!r || r->count < g->max_conn_rate)
		return false;
	return bpf_ktime_get_coarse_ns() - r->window_start_ns < RATE_WINDOW_NS;
}

/* ---------------- handshakes in progress ---------------- */

/* the flow's bucket in aibl_syns and its tag there; fh is its flow hash */
static __always_inline struct aibl_syn_bucket *syn_bucket(__u32 fh, __u64 *tag)
{
	__u32 idx = aibl_syn_index(fh, tag);

	return bpf_map_lookup_elem(&aibl_syns, &idx);
}

static __always_inline __u32 syn_now(void)
{
	return bpf_jiffies64();
}

/* the way holding tag and not expired, else -1 */
static __always_inline int syn_find(const struct aibl_syn_bucket *b, __u64 tag, __u32 now)
{
#pragma unroll
	for (int i = 0; i < AIBL_SYN_WAYS; i++)
		if (b->tag[i] == tag && now - b->ts[i] < AIBL_SYN_TTL)
			return i;
	return -1;
}

/*
 * The flow's live handshake record: true with its bucket, way, backend id
 * and whether that choice was a session pin filled. *sb and *tag are
 * filled whenever the bucket exists, so a SYN can record into it.
 */
static __always_inline bool syn_match(__u32 fh, __u32 now, struct aibl_syn_bucket **sb,
				      __u64 *tag, int *way, __u32 *id, bool *pinned)
{
	__u32 v;

	*sb = syn_bucket(fh, tag);
	if (!*sb)
		return false;
	*way = syn_find(*sb, *tag, now);
	if (*way < 0)
		return false;
	v = (*sb)->backend[*way & (AIBL_SYN_WAYS - 1)];
	*id = v & ~AIBL_SYN_F_PINNED;
	*pinned = v & AIBL_SYN_F_PINNED;
	return true;
}

/* the handshake is over: its way is free again */
static __always_inline void syn_free(struct aibl_syn_bucket *b, int way)
{
	WRITE_ONCE(b->tag[way & (AIBL_SYN_WAYS - 1)], 0);
}

/*
 * Records the SYN's backend: in its own way (a retransmission), else a free
 * (empty or expired) one, else over the oldest. The tag is written last: a
 * reader on another CPU that matches it finds the backend already there.
 */
static __always_inline void syn_record(struct aibl_syn_bucket *b, int way, __u64 tag,
				       __u32 backend, __u32 now)
{
	__u32 oldest = 0, age = 0;

	if (way < 0) {
#pragma unroll
		for (int i = 0; i < AIBL_SYN_WAYS; i++) {
			__u32 a = b->tag[i] ? now - b->ts[i] : AIBL_SYN_TTL;

			if (a >= AIBL_SYN_TTL) {
				way = i;
				break;
			}
			if (a >= age) {
				age = a;
				oldest = i;
			}
		}
		if (way < 0)
			way = oldest;
	}
	way &= AIBL_SYN_WAYS - 1;
	WRITE_ONCE(b->backend[way], backend);
	WRITE_ONCE(b->ts[way], now);
	WRITE_ONCE(b->tag[way], tag);
}

static __always_inline void load_add(__u32 id, __s64 v)
{
	struct aibl_load *l = bpf_map_lookup_elem(&aibl_load, &id);

	if (l)
		__sync_fetch_and_add(&l->active, v);
}

/* ---------------- flow cache ---------------- */

/* the kernel's tick rate, from its configuration when libbpf finds it */
extern const unsigned int CONFIG_HZ __kconfig __weak;

/* AIBL_FCACHE_TTL_MS in jiffies (bpf_jiffies64() is inlined by the
 * verifier, a ktime helper is a call) */
static __always_inline __u64 fcache_ttl(void)
{
	__u64 hz = CONFIG_HZ ?: 1000;

	return hz * AIBL_FCACHE_TTL_MS / 1000;
}

static __always_inline bool key_eq(const struct aibl_flow_key *a, const struct aibl_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]));
}

struct fcache_forget_ctx {
	const struct aibl_flow_key *key;
	__u32 idx;
};

static long fcache_forget_cpu(__u32 cpu, void *arg)
{
	struct fcache_forget_ctx *c = arg;
	struct aibl_fcache_entry *e = bpf_map_lookup_percpu_elem(&aibl_fcache, &c->idx, cpu);

	if (!e)
		return 1; /* past the last CPU */
	if (key_eq(&e->key, c->key))
		WRITE_ONCE(e->key.family, 0);
	return 0;
}

/*
 * The flow's connection entry changed (closing, or re-steered): its flow
 * cache entry goes, on every CPU, so that no CPU still forwards it by the
 * old decision. Once per connection, not per packet.
 */
static __always_inline void fcache_forget(const struct aibl_flow_key *key)
{
	struct fcache_forget_ctx c = { .key = key, .idx = aibl_fcache_index(key) };

	bpf_loop(AIBL_FCACHE_MAX_CPUS, fcache_forget_cpu, &c, 0);
}

struct flow_out {
	__u32 backend;
	__u8 new_flow;
	__u8 pinned;
	__u8 cache; /* an established hit the flow cache may keep */
	__u8 pad;
};

/*
 * The backend of a packet for service vip: its connection's, its
 * handshake's, or a new choice (recorded for a SYN, inserted otherwise).
 * fh is the packet's aibl_hash_flow(). 0 with o filled, or -1 (counted) to
 * drop. A global function: verified once on its own, not once per parse
 * path of the caller.
 */
__noinline int aibl_flow(struct pkt *p, const struct aibl_vip *vip, const struct aibl_globals *g,
			 __u32 fh, struct flow_out *o)
{
	struct aibl_conn *conn = NULL, nc;
	struct aibl_syn_bucket *sb = NULL;
	struct aibl_backend *be;
	struct choice ch;
	bool tcp, closing, new_flow = false, pinned = false, track = false, syn = false;
	__u32 id, now_ts = 0;
	__u64 tag = 0;
	__u8 mode;
	int way = -1;

	if (!p || !vip || !g || !o)
		return -1;
	tcp = p->fk.proto == IPPROTO_TCP;
	closing = tcp && (p->tcp_flags & (AIBL_TCP_FIN | AIBL_TCP_RST));
	mode = vip->mode;

	if (vip->flags & AIBL_VIP_F_NO_CONNTRACK) {
		/* stateless service: every packet takes the service's mode */
	} else if (tcp && (p->tcp_flags & (AIBL_TCP_SYN | AIBL_TCP_ACK)) == AIBL_TCP_SYN) {
		if (conn_rate_engaged(g)) {
			/*
			 * Guard engaged: the handshake will not be admitted to
			 * the connection table, so its later packets will take
			 * the hash choice; the SYN takes it too, whatever the
			 * service's mode, and is not recorded.
			 */
			count(AIBL_CNT_CONN_UNTRACKED);
			mode = AIBL_MODE_HASH;
		} else {
			/*
			 * A SYN opens a handshake: its choice goes into the
			 * small handshake table, not the connection table (see
			 * aibl.h); a retransmitted SYN follows the first one
			 * while that backend still takes new flows.
			 */
			now_ts = syn_now();
			if (syn_match(fh, now_ts, &sb, &tag, &way, &id, &pinned)) {
				be = bpf_map_lookup_elem(&aibl_backends, &id);
				if (be_usable(be)) {
					syn = true;
					goto record;
				}
			}
			syn = sb != NULL;
		}
	} else {
		conn = bpf_map_lookup_elem(&aibl_conns, &p->fk);
		if (conn) {
			id = conn->backend;
			be = bpf_map_lookup_elem(&aibl_backends, &id);
			if (be_up(be) && !(conn->flags & AIBL_CONN_F_CLOSING)) {
				/* established: draining/overloaded keep their flows */
				__u64 now;

				count(AIBL_CNT_CONN_HIT);
				if (closing) {
					/* RSS keeps a flow on one CPU: no race to count it twice */
					conn->flags |= AIBL_CONN_F_CLOSING;
					load_add(id, -1);
					fcache_forget(&p->fk);
				}
				now = bpf_ktime_get_coarse_ns();
				if (now - conn->last_seen_ns > CONN_REFRESH_NS)
					conn->last_seen_ns = now;
				o->cache = !closing;
				goto out;
			}
			if (be_up(be)) {
				/*
				 * A closed flow: its last packets, or its tuple
				 * reused by a new handshake (a client port used
				 * again), which then takes the new SYN's backend.
				 */
				count(AIBL_CNT_CONN_HIT);
				if (!tcp || (p->tcp_flags & AIBL_TCP_SYN) ||
				    !syn_match(fh, syn_now(), &sb, &tag, &way, &id, &pinned))
					goto out;
				be = bpf_map_lookup_elem(&aibl_backends, &id);
				/* the record is used up either way */
				syn_free(sb, way);
				if (!be_up(be)) {
					/* the SYN's backend went down: a new choice;
					 * the new connection is open, not closing (its
					 * count moves to the choice at the re-steer) */
					conn->flags &= ~AIBL_CONN_F_CLOSING;
					load_add(conn->backend, 1);
					goto pick;
				}
				count(AIBL_CNT_SYN_HIT);
				new_flow = true;
				conn->backend = id;
				conn->flags = (pinned ? AIBL_CONN_F_PINNED : 0) |
					      (closing ? AIBL_CONN_F_CLOSING : 0);
				conn->last_seen_ns = bpf_ktime_get_coarse_ns();
				if (!closing)
					load_add(id, 1);
				goto out;
			}
		} else {
			count(AIBL_CNT_CONN_MISS);
			/*
			 * A TCP miss without SYN is mostly the packet that
			 * completes a handshake: its SYN's backend is in the
			 * handshake table. Otherwise it is a flow the table has
			 * lost or never held (README: mid-connection miss).
			 */
			if (tcp && !(p->tcp_flags & AIBL_TCP_SYN)) {
				if (syn_match(fh, syn_now(), &sb, &tag, &way, &id, &pinned)) {
					be = bpf_map_lookup_elem(&aibl_backends, &id);
					if (be_up(be)) {
						count(AIBL_CNT_SYN_HIT);
						new_flow = true;
						track = conn_rate_admit(g);
						if (!track)
							count(AIBL_CNT_CONN_UNTRACKED);
						goto insert;
					}
				}
				count(AIBL_CNT_CONN_MISS_MIDFLOW);
			}
			/*
			 * An untracked flow's later packets miss the table too:
			 * only the hash choice (pin, else Maglev slot with
			 * bounded probing) sends them all to one backend; rr
			 * and p2c would scatter them. With the guard on, a TCP
			 * miss without SYN may be such a packet admitted once
			 * the flood is over: it takes the same choice.
			 */
			track = conn_rate_admit(g);
			if (!track) {
				count(AIBL_CNT_CONN_UNTRACKED);
				mode = AIBL_MODE_HASH;
			} else if (g->max_conn_rate && tcp && !(p->tcp_flags & AIBL_TCP_SYN)) {
				mode = AIBL_MODE_HASH;
			}
		}
	}

pick:
	choose(vip, p, vip->session_key == AIBL_KEY_FIVE_TUPLE ? fh : session_hash(vip, p, g->hash_seed),
	       mode, &ch);
	id = ch.backend;
	pinned = ch.pinned;
	be = bpf_map_lookup_elem(&aibl_backends, &id);
	if (!be) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return -1;
	}
	if (syn) {
record:
		/*
		 * A SYN: its choice kept for the rest of the handshake. The
		 * new flow is counted (service, backend, pin hit) when the
		 * handshake completes, so SYN floods and retransmissions do
		 * not inflate new_flows.
		 */
		count(AIBL_CNT_SYN_RECORD);
		syn_record(sb, way, tag, id | (pinned ? AIBL_SYN_F_PINNED : 0), now_ts);
		goto out;
	}
	new_flow = true;
insert:
	if (conn) {
		/* its backend went down: re-steer and move its active count */
		count(AIBL_CNT_RESTEER);
		fcache_forget(&p->fk);
		if (tcp && !(conn->flags & AIBL_CONN_F_CLOSING)) {
			load_add(conn->backend, -1);
			if (closing)
				conn->flags |= AIBL_CONN_F_CLOSING;
			else
				load_add(id, 1);
		}
		conn->backend = id;
		conn->flags = (conn->flags & AIBL_CONN_F_CLOSING) | (pinned ? AIBL_CONN_F_PINNED : 0);
		conn->last_seen_ns = bpf_ktime_get_coarse_ns();
	} else if (track) {
		nc.backend = id;
		nc.flags = (pinned ? AIBL_CONN_F_PINNED : 0) | (closing ? AIBL_CONN_F_CLOSING : 0);
		nc.last_seen_ns = bpf_ktime_get_coarse_ns();
		if (bpf_map_update_elem(&aibl_conns, &p->fk, &nc, BPF_ANY)) {
			count(AIBL_CNT_CONN_INSERT_FAIL);
		} else {
			if (tcp && !closing)
				load_add(id, 1);
			/* the handshake is complete */
			if (sb && way >= 0)
				syn_free(sb, way);
		}
	}
out:
	o->backend = id;
	o->new_flow = new_flow;
	o->pinned = pinned;
	return 0;
}

/*
 * This CPU's flow cache entry for an established packet: true (with *ep)
 * when it holds the packet's flow under the current epoch and has not
 * expired. The caller still checks that its backend is up: one that is
 * down sends the packet the full way, which re-steers the flow.
 */
static __always_inline bool fcache_get(const struct pkt *p, const struct aibl_globals *g,
				       struct aibl_fcache_entry **ep)
{
	__u32 idx = aibl_fcache_index(&p->fk);
	struct aibl_fcache_entry *e = bpf_map_lookup_elem(&aibl_fcache, &idx);

	*ep = e;
	return e && key_eq(&e->key, &p->fk) && e->epoch == g->epoch &&
	       (__s64)(e->expires - bpf_jiffies64()) > 0;
}

/* Writes the decision into e, the flow's entry that fcache_get() found. */
static __always_inline void fcache_put(struct aibl_fcache_entry *e, const struct pkt *p,
				       const struct aibl_globals *g, __u32 svc, __u32 id, __u32 fh)
{
	e->key = p->fk;
	e->backend = id;
	e->svc_id = svc;
	e->flow_hash = fh;
	e->epoch = g->epoch;
	e->expires = bpf_jiffies64() + fcache_ttl();
	count(AIBL_CNT_FCACHE_FILL);
}

SEC("xdp")
int aibl_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct aibl_fcache_entry *fc = NULL;
	struct flow_out fo = {};
	struct aibl_globals *g;
	struct aibl_backend *be;
	struct aibl_vip *vip;
	struct pkt p = {};
	enum parse_rc rc;
	__u32 zero = 0, id, fh, svc;
	__be16 proto;

	proto = parse_l2(data, data_end, &p);
	if (proto == bpf_htons(ETH_P_IP))
		rc = parse_ipv4(data, data_end, p.l2_len, &p, false);
	else if (proto == bpf_htons(ETH_P_IPV6))
		rc = parse_ipv6(data, data_end, p.l2_len, &p, false);
	else
		goto pass;
	if (rc == PARSE_NOADDR)
		goto pass;
	g = bpf_map_lookup_elem(&aibl_globals, &zero);
	if (!g)
		goto pass;
	/* not a VIP address: every path below would find no service and pass
	 * (bad headers, fragments, ICMP errors quoting this address alike) */
	if ((g->flags & AIBL_G_F_VIP_FILTER) &&
	    !filter_maybe(AIBL_FILTER_VIP, aibl_filter_vip_bit(&p.fk.dst, p.fk.family)))
		goto pass;
	if (rc == PARSE_OK && p.frag == FRAG_NONE) {
		if (p.fk.proto != IPPROTO_TCP && p.fk.proto != IPPROTO_UDP)
			goto other;
		/* an established flow's packet: the flow cache first */
		if ((g->flags & AIBL_G_F_FLOW_CACHE) &&
		    !(p.tcp_flags & (AIBL_TCP_SYN | AIBL_TCP_FIN | AIBL_TCP_RST)) &&
		    fcache_get(&p, g, &fc) && fc) {
			id = fc->backend;
			be = bpf_map_lookup_elem(&aibl_backends, &id);
			if (be_up(be)) {
				count(AIBL_CNT_VIP_PKTS);
				count(AIBL_CNT_FCACHE_HIT);
				svc = fc->svc_id;
				fh = fc->flow_hash;
				goto send;
			}
		}
		vip = vip_lookup(&p.fk.dst, p.fk.family, p.fk.dport, p.fk.proto);
		if (!vip)
			goto pass;
	} else {
		goto other;
	}

	count(AIBL_CNT_VIP_PKTS);
	fh = aibl_hash_flow(&p.fk, g->hash_seed);
	if (aibl_flow(&p, vip, g, fh, &fo))
		return XDP_DROP;
	id = fo.backend;
	be = bpf_map_lookup_elem(&aibl_backends, &id);
	if (!be) {
		count(AIBL_CNT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	svc = vip->svc_id;
	/* fc: set when the flow cache was looked up for this packet (flag on,
	 * no SYN/FIN/RST) and missed */
	if (fo.cache && fc)
		fcache_put(fc, &p, g, svc, id, fh);
send:
	/* one call site: a single copy of the forwarding code on the hot path */
	return send_to(ctx, &p, svc, id, be, g, fo.new_flow, fo.new_flow && fo.pinned, fh);

other:
	if ((p.fk.family == AIBL_AF_INET && p.fk.proto == IPPROTO_ICMP) ||
	    (p.fk.family == AIBL_AF_INET6 && p.fk.proto == IPPROTO_ICMPV6)) {
		if (rc != PARSE_OK)
			goto pass;
		return handle_icmp(ctx, &p, g);
	}
	if (rc != PARSE_OK)
		return bad_packet(&p, rc);
	if (p.frag && (p.fk.proto == IPPROTO_TCP || p.fk.proto == IPPROTO_UDP))
		return handle_frag(ctx, &p, g);
pass:
	count(AIBL_CNT_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
