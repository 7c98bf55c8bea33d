// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The XDP tests' and benchmark's fixture environment (see xdp_env.h):
 * compiled once, linked into every test of tests/bpf and into
 * tests/bench/bench_xdp.
 */
#include "xdp_env.h"

const uint8_t XE_MAC_LB[6] = {2, 0, 0, 0, 0, 1};
const uint8_t XE_MAC_RTR[6] = {2, 0, 0, 0, 0, 2};
const uint8_t XE_MAC_GW[6] = {2, 0, 0, 0, 0, 0xfe};

const struct xe_be XE_BE[XE_NBE] = {
    [1] = {"10.1.0.1", AIBL_AF_INET},	[2] = {"10.1.0.2", AIBL_AF_INET},
    [3] = {"fd00:1::3", AIBL_AF_INET6}, [4] = {"fd00:1::4", AIBL_AF_INET6},
    [5] = {"10.1.0.5", AIBL_AF_INET},	[6] = {"10.1.0.6", AIBL_AF_INET},
    [7] = {"10.1.0.7", AIBL_AF_INET},
};

struct dp *xe_dp;
char xe_dir[64];
struct aibl_globals xe_glob;
bool xe_no_frags;

void xe_be_mac(__u32 id, uint8_t mac[6])
{
	const uint8_t m[6] = {2, 0, 0, 0, 1, (uint8_t)id};

	memcpy(mac, m, 6);
}

void xe_addr(union aibl_addr *a, __u8 family, const char *s)
{
	memset(a, 0, sizeof(*a));
	inet_pton(family == AIBL_AF_INET ? AF_INET : AF_INET6, s, a);
}

int xe_fd(const char *name)
{
	return dp__map_fd(xe_dp, name);
}

int xe_map_rdonly(int fd)
{
	LIBBPF_OPTS(bpf_get_fd_by_id_opts, ro, .open_flags = BPF_F_RDONLY);
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -1;
	return bpf_map_get_fd_by_id_opts(info.id, &ro);
}

__u32 xe_conns_count(void)
{
	struct aibl_flow_key k, *prev = NULL;
	int fd = xe_fd(AIBL_MAP_CONNS);
	__u32 n = 0;

	while (!bpf_map_get_next_key(fd, prev, &k)) {
		n++;
		prev = &k;
	}
	return n;
}

int xe_globals_write(void)
{
	return dp__globals_write(xe_dp, &xe_glob);
}

int xe_epoch_bump(void)
{
	return dp__epoch_bump(xe_fd(AIBL_MAP_GLOBALS));
}

int xe_percpu_set(const char *map, __u32 key, const void *val, size_t size)
{
	int ncpu = libbpf_num_possible_cpus(), err;
	size_t stride = (size + 7) & ~(size_t)7; /* the kernel's per-CPU value stride */
	char *v;

	if (ncpu <= 0)
		return -EINVAL;
	v = calloc(ncpu, stride);
	if (!v)
		return -ENOMEM;
	for (int c = 0; c < ncpu; c++)
		memcpy(v + c * stride, val, size);
	err = bpf_map_update_elem(xe_fd(map), &key, v, BPF_ANY) ? -errno : 0;
	free(v);
	return err;
}

int xe_fcache_cpus(const struct aibl_flow_key *fk, struct aibl_fcache_entry *e)
{
	int ncpu = libbpf_num_possible_cpus(), n = 0;
	__u32 idx = aibl_fcache_index(fk);
	struct aibl_fcache_entry *v;

	if (ncpu <= 0)
		return -1;
	v = calloc(ncpu, sizeof(*v));
	if (!v || bpf_map_lookup_elem(xe_fd(AIBL_MAP_FCACHE), &idx, v)) {
		free(v);
		return -1;
	}
	for (int c = 0; c < ncpu; c++)
		if (!memcmp(&v[c].key, fk, sizeof(*fk))) {
			n++;
			if (e)
				*e = v[c];
		}
	free(v);
	return n;
}

void xe_down(void)
{
	dp__close(xe_dp);
	xe_dp = NULL;
	if (xe_dir[0])
		dp__teardown(xe_dir);
}

int xe_up(const struct dp_sizes *sizes)
{
	struct dp_opts o = {};
	int err;

	log_setup_libbpf(getenv("AIBL_TEST_VERBOSE") != NULL);
	snprintf(xe_dir, sizeof(xe_dir), "/sys/fs/bpf/aibl-t-dp-%d", getpid());
	dp__teardown(xe_dir);
	o.pin_dir = xe_dir;
	o.no_frags = xe_no_frags;
	if (sizes)
		o.sizes = *sizes;
	/* pinned as aibld pins it once attached (aiblctl simulate runs it) */
	err = dp__open_load(&o, &xe_dp) ?: dp__pin_prog(xe_dp);
	if (err) {
		/* the maps may be pinned already (a program the verifier
		 * refused): no test leaves its directory behind */
		dp__teardown(xe_dir);
		return err;
	}
	memset(&xe_glob, 0, sizeof(xe_glob));
	xe_glob.fwd_mode = AIBL_FWD_IPIP;
	inet_pton(AF_INET, XE_SRC4, &xe_glob.src4);
	inet_pton(AF_INET6, XE_SRC6, xe_glob.src6);
	memcpy(xe_glob.if_mac, XE_MAC_LB, 6);
	memcpy(xe_glob.gw_mac, XE_MAC_GW, 6);
	xe_glob.hash_seed = XE_SEED;
	xe_glob.flags = AIBL_G_F_VIP_FILTER | AIBL_G_F_PIN_FILTER | AIBL_G_F_FLOW_CACHE;
	return xe_globals_write();
}

int xe_vip(const char *addr, __u16 port, __u8 proto, __u32 svc, __u8 mode, __u8 key, __u8 half,
	   __u8 flags)
{
	struct aibl_vip_key k = {};
	struct aibl_vip v = {
	    .svc_id = svc, .mode = mode, .session_key = key, .ring_half = half, .flags = flags};

	k.family = strchr(addr, ':') ? AIBL_AF_INET6 : AIBL_AF_INET;
	xe_addr(&k.addr, k.family, addr);
	k.port = htons(port);
	k.proto = proto;
	if (bpf_map_update_elem(xe_fd(AIBL_MAP_VIPS), &k, &v, BPF_ANY))
		return -errno;
	/* as aibld: a VIP changed under cached flows voids their decisions */
	return dp__vip_filter_rebuild(xe_fd(AIBL_MAP_FILTER), xe_fd(AIBL_MAP_VIPS))
		   ?: xe_epoch_bump();
}

int xe_pin_filter(void)
{
	return dp__pin_filter_rebuild(xe_fd(AIBL_MAP_FILTER), xe_fd(AIBL_MAP_PINS));
}

int xe_backend(__u32 id, __u8 flags, bool with_mac)
{
	struct aibl_backend b = {};

	b.family = XE_BE[id].family;
	xe_addr(&b.addr, b.family, XE_BE[id].addr);
	b.flags = flags;
	if (with_mac)
		xe_be_mac(id, b.mac);
	return bpf_map_update_elem(xe_fd(AIBL_MAP_BACKENDS), &id, &b, BPF_ANY) ? -errno : 0;
}

int xe_be_flags(__u32 id, __u8 flags)
{
	struct aibl_backend b;

	if (bpf_map_lookup_elem(xe_fd(AIBL_MAP_BACKENDS), &id, &b))
		return -errno;
	b.flags = flags;
	return bpf_map_update_elem(xe_fd(AIBL_MAP_BACKENDS), &id, &b, BPF_ANY) ? -errno : 0;
}

int xe_ring(__u32 svc, __u8 half, const __u32 *pattern, __u32 n)
{
	static __u32 keys[AIBL_RING_SIZE], vals[AIBL_RING_SIZE];
	__u32 count = AIBL_RING_SIZE;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	for (__u32 i = 0; i < AIBL_RING_SIZE; i++) {
		keys[i] = AIBL_RING_INDEX(svc, half, i);
		vals[i] = pattern[i % n];
	}
	return bpf_map_update_batch(xe_fd(AIBL_MAP_RING), keys, vals, &count, &bo) ? -errno : 0;
}

__u32 xe_ring_get(__u32 svc, __u8 half, __u32 slot)
{
	__u32 k = AIBL_RING_INDEX(svc, half, slot), v = AIBL_NO_BACKEND;

	bpf_map_lookup_elem(xe_fd(AIBL_MAP_RING), &k, &v);
	return v;
}

__u64 xe_counter(__u32 idx)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 vals[ncpu > 0 ? ncpu : 1], sum = 0;

	if (ncpu <= 0 || bpf_map_lookup_elem(xe_fd(AIBL_MAP_STATS), &idx, vals))
		return 0;
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

void xe_traffic(const char *map, __u32 idx, struct aibl_traffic *t)
{
	int ncpu = libbpf_num_possible_cpus();
	struct aibl_traffic vals[ncpu > 0 ? ncpu : 1];

	memset(t, 0, sizeof(*t));
	if (ncpu <= 0 || bpf_map_lookup_elem(xe_fd(map), &idx, vals))
		return;
	for (int i = 0; i < ncpu; i++) {
		t->packets += vals[i].packets;
		t->bytes += vals[i].bytes;
		t->new_flows += vals[i].new_flows;
		t->pin_hits += vals[i].pin_hits;
	}
}

void xe_run_fd(int prog_fd, const void *in, size_t len, struct xe_result *r)
{
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = in, .data_size_in = len, .data_out = r->data,
		    .data_size_out = sizeof(r->data), .repeat = 1);

	r->err = bpf_prog_test_run_opts(prog_fd, &t) ? -errno : 0;
	r->verdict = t.retval;
	r->len = t.data_size_out;
	r->duration = t.duration;
}

void xe_run(const struct pkt_buf *in, struct xe_result *r)
{
	xe_run_fd(dp__prog_fd(xe_dp), in->buf, in->len, r);
}

/* ---- flow keys and expected outputs ---- */

struct aibl_flow_key xe_fk(const char *src, const char *dst, __u16 sport, __u16 dport, __u8 proto)
{
	struct aibl_flow_key fk = {};

	fk.family = strchr(src, ':') ? AIBL_AF_INET6 : AIBL_AF_INET;
	xe_addr(&fk.src, fk.family, src);
	xe_addr(&fk.dst, fk.family, dst);
	fk.sport = htons(sport);
	fk.dport = htons(dport);
	fk.proto = proto;
	return fk;
}

int xe_l3(const struct pkt_buf *b)
{
	for (int i = 0; i < b->n; i++)
		if (b->l[i].type == PKT_L_IPV4 || b->l[i].type == PKT_L_IPV6)
			return (int)b->l[i].off;
	return -1;
}

void xe_exp_l2(struct pkt_buf *o, const struct pkt_buf *in, const uint8_t *dst, const uint8_t *src)
{
	pkt__eth(o, dst, src);
	for (int i = 1; i < in->n && in->l[i].type == PKT_L_VLAN; i++) {
		const uint8_t *tpid = in->buf + in->l[i].off - 2;
		const uint8_t *tci = in->buf + in->l[i].off;

		pkt__vlan(o, (uint16_t)(tpid[0] << 8 | tpid[1]), (uint16_t)(tci[0] << 8 | tci[1]));
	}
}

void xe_exp_ipip(struct pkt_buf *o, const struct pkt_buf *in, __u32 be, const uint8_t *dst_mac,
		 __u32 flow_hash)
{
	int l3 = xe_l3(in);
	uint8_t mac[6], tos;
	bool inner4 = (in->buf[l3] >> 4) == 4;

	xe_be_mac(be, mac);
	tos = inner4 ? in->buf[l3 + 1] : (uint8_t)((in->buf[l3] & 0xf) << 4 | in->buf[l3 + 1] >> 4);
	pkt__init(o);
	xe_exp_l2(o, in, dst_mac ? dst_mac : mac, XE_MAC_LB);
	if (XE_BE[be].family == AIBL_AF_INET) {
		struct pkt_ip4_opts io = {.tos = tos, .ttl = 64};
		uint32_t src = ntohl(xe_glob.src4 & ~xe_glob.src4_mask) |
			       (flow_hash & ntohl(xe_glob.src4_mask));
		char s[INET_ADDRSTRLEN];
		struct in_addr a = {htonl(src)};

		inet_ntop(AF_INET, &a, s, sizeof(s));
		pkt__ipv4(o, s, XE_BE[be].addr, &io);
		pkt__next_proto(o, inner4 ? IPPROTO_IPIP : IPPROTO_IPV6);
	} else {
		__u32 s6[4];
		char s[INET6_ADDRSTRLEN];

		memcpy(s6, xe_glob.src6, 16);
		s6[3] ^= htonl(flow_hash);
		inet_ntop(AF_INET6, s6, s, sizeof(s));
		pkt__ipv6(o, s, XE_BE[be].addr, tos, flow_hash & 0xfffff);
		pkt__next_proto(o, inner4 ? IPPROTO_IPIP : IPPROTO_IPV6);
	}
	pkt__payload(o, in->buf + l3, in->len - l3);
	pkt__finish(o);
}

void xe_exp_l2dsr(struct pkt_buf *o, const struct pkt_buf *in, __u32 be)
{
	*o = *in;
	xe_be_mac(be, o->buf);
	memcpy(o->buf + 6, XE_MAC_LB, 6);
}

int xe_out_backend(const struct xe_result *r)
{
	if (r->len < 6 || r->data[0] != 2 || r->data[4] != 1)
		return -1;
	return r->data[5];
}

__s64 xe_active_sum(void)
{
	struct aibl_load l;
	__s64 sum = 0;

	for (__u32 id = 1; id < XE_NBE; id++)
		if (!bpf_map_lookup_elem(xe_fd(AIBL_MAP_LOAD), &id, &l))
			sum += l.active;
	return sum;
}
