/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hashes of the XDP program, shared with userspace so tools and
 * tests can tell which table slot (and outer source address) a client or
 * flow gets: Maglev slot = hash % AIBL_RING_SIZE. Include after aibl.h.
 *
 * A murmur3-style mix: a few multiplies, well spread, cheap enough for
 * every packet. seed is aibl_globals.hash_seed.
 */
#ifndef AIBL_HASH_H
#define AIBL_HASH_H

static inline __u32 aibl_mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static inline __u32 aibl_hash_step(__u32 h, __u32 w)
{
	h ^= w * 0xcc9e2d51;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

static inline __u32 aibl_hash_addr(__u32 h, const union aibl_addr *a, __u8 family)
{
	h = aibl_hash_step(h, a->v6[0]);
	if (family == AIBL_AF_INET6) {
		h = aibl_hash_step(h, a->v6[1]);
		h = aibl_hash_step(h, a->v6[2]);
		h = aibl_hash_step(h, a->v6[3]);
	}
	return h;
}

/* session key AIBL_KEY_SRC_IP (and fragments) */
static inline __u32 aibl_hash_client(const struct aibl_flow_key *fk, __u32 seed)
{
	return aibl_mix32(aibl_hash_addr(seed, &fk->src, fk->family));
}

/* session key AIBL_KEY_FIVE_TUPLE, and the outer source / flow label */
static inline __u32 aibl_hash_flow(const struct aibl_flow_key *fk, __u32 seed)
{
	__u32 h = aibl_hash_addr(seed, &fk->src, fk->family);

	h = aibl_hash_addr(h, &fk->dst, fk->family);
	h = aibl_hash_step(h, ((__u32)fk->sport << 16) | fk->dport);
	h = aibl_hash_step(h, fk->proto);
	return aibl_mix32(h);
}

/* p2c's second candidate slot comes from this hash of the first */
static inline __u32 aibl_hash_second(__u32 h)
{
	return aibl_mix32(h ^ 0x9e3779b9);
}

/*
 * A flow's bucket in the handshake table aibl_syns and its tag there, from
 * fh = aibl_hash_flow() of the flow: the tag is fh (bit 0 set: never 0), the
 * bucket index comes from a remix of it. A way keeps the tag in the low half
 * of its word, the SYN's sequence number in the high half (aibl.h).
 */
static inline __u32 aibl_syn_index(__u32 fh, __u32 *tag)
{
	*tag = fh | 1;
	return aibl_mix32(fh ^ 0x2545f491) & (AIBL_SYN_BUCKETS - 1);
}

/*
 * A flow's entry in the flow cache aibl_fcache: the key's five 64-bit words
 * folded and multiplied (Fibonacci hashing), far cheaper per packet than
 * aibl_hash_flow(); a collision only costs the full path. The key must be
 * 8-byte aligned.
 */
static inline __u32 aibl_fcache_index(const struct aibl_flow_key *fk)
{
	const __u64 *w = (const __u64 *)fk;
	__u64 x = w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4];

	return (__u32)((x * 0x9e3779b97f4a7c15ULL) >> (64 - AIBL_FCACHE_BITS));
}

/* aibl_filter bit of a VIP address (the port and protocol are left out so
 * that the port-0 wildcard entries are covered too) */
static inline __u32 aibl_filter_vip_bit(const union aibl_addr *a, __u8 family)
{
	return aibl_mix32(a->v6[0] ^ a->v6[1] ^ a->v6[2] ^ a->v6[3] ^ family) &
	       (AIBL_FILTER_BITS - 1);
}

/* aibl_filter bit of a session pin (service, client address) */
static inline __u32 aibl_filter_pin_bit(__u32 svc_id, const union aibl_addr *client, __u8 family)
{
	__u32 h = aibl_hash_step(svc_id, family);

	return aibl_mix32(aibl_hash_addr(h, client, family)) & (AIBL_FILTER_BITS - 1);
}

/* aibl_affinity's bucket of a (service, client address): another remix
 * than the pin filter's bit, so a client that collides in one does not
 * collide in the other */
static inline __u32 aibl_affinity_index(__u32 svc_id, const union aibl_addr *client, __u8 family)
{
	__u32 h = aibl_hash_step(svc_id ^ 0x7f4a7c15, family);

	return aibl_mix32(aibl_hash_addr(h, client, family)) & (AIBL_AFFINITY_BUCKETS - 1);
}

#endif /* AIBL_HASH_H */
