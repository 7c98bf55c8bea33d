// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Katran's balancer.bpf.o (built by lab/bench-xdp.sh --katran DIR from a
 * Katran checkout the user provides) set up as Katran's userspace does by
 * default, for bench_xdp's side-by-side mode: one VIP (10.100.0.1:80 tcp,
 * no flags), 100 IPv4 reals in its 65,537-slot ring (equal weights,
 * interleaved), a 1M-entry LRU per CPU in lru_mapping (Katran's own default
 * is 8M split over the forwarding cores, 4M each on two: the smaller table,
 * if anything, favours Katran's cache), the gateway MAC in ctl_array. Map layouts below mirror
 * Katran's balancer_structs.h (its ABI; Katran's userspace keeps the same copy).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "katran_env.h"

#define K_RING_SIZE 65537
#define K_REALS	    100
#define K_LRU_SIZE  1000000

struct k_vip_definition {
	union {
		__be32 vip;
		__be32 vipv6[4];
	};
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct k_vip_meta {
	__u32 flags;
	__u32 vip_num;
};

struct k_real_definition {
	union {
		__be32 dst;
		__be32 dstv6[4];
	};
	__u8 flags;
	__u8 pad[3];
};

struct k_flow_key {
	union {
		__be32 src;
		__be32 srcv6[4];
	};
	union {
		__be32 dst;
		__be32 dstv6[4];
	};
	__u32 ports;
	__u8 proto;
	__u8 pad[3];
};

struct k_real_pos_lru {
	__u32 pos;
	__u32 pad;
	__u64 atime;
};

static struct bpf_object *k_obj;
static int k_prog = -1;

int katran__fd(void)
{
	return k_prog;
}

static int map_fd(const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(k_obj, name);

	return m ? bpf_map__fd(m) : -ENOENT;
}

int katran__load(const char *path, const __u8 gw_mac[6])
{
	struct k_vip_definition vip = {.port = htons(80), .proto = 6};
	struct k_vip_meta meta = {.flags = 0, .vip_num = 0};
	int ncpu = libbpf_num_possible_cpus(), err, fd;
	struct bpf_program *prog;
	__u64 ctl = 0;
	__u32 key;

	k_obj = bpf_object__open_file(path, NULL);
	if (!k_obj)
		return -errno;
	/* the object's pin paths are Katran's; nothing is pinned here */
	struct bpf_map *m;

	bpf_object__for_each_map(m, k_obj) bpf_map__set_pin_path(m, NULL);
	err = bpf_object__load(k_obj);
	if (err)
		return err;
	prog = bpf_object__find_program_by_name(k_obj, "balancer_ingress");
	if (!prog)
		return -ENOENT;
	k_prog = bpf_program__fd(prog);

	inet_pton(AF_INET, "10.100.0.1", &vip.vip);
	if (bpf_map_update_elem(map_fd("vip_map"), &vip, &meta, BPF_ANY))
		return -errno;
	for (__u32 i = 1; i <= K_REALS; i++) {
		struct k_real_definition r = {.dst = htonl(0x0a010000 + i)};

		if (bpf_map_update_elem(map_fd("reals"), &i, &r, BPF_ANY))
			return -errno;
	}
	fd = map_fd("ch_rings");
	for (__u32 s = 0; s < K_RING_SIZE; s++) {
		__u32 real = 1 + s % K_REALS;

		key = s; /* vip_num 0 */
		if (bpf_map_update_elem(fd, &key, &real, BPF_ANY))
			return -errno;
	}
	memcpy(&ctl, gw_mac, 6);
	key = 0;
	if (bpf_map_update_elem(map_fd("ctl_array"), &key, &ctl, BPF_ANY))
		return -errno;
	/* one LRU per CPU, as KatranLb::initLrus() makes them */
	for (int c = 0; c < ncpu && c < 128; c++) {
		int lru =
		    bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "katran_lru", sizeof(struct k_flow_key),
				   sizeof(struct k_real_pos_lru), K_LRU_SIZE, NULL);
		__u32 cpu = c;

		if (lru < 0)
			return -errno;
		err = bpf_map_update_elem(map_fd("lru_mapping"), &cpu, &lru, BPF_ANY) ? -errno : 0;
		close(lru);
		if (err)
			return err;
	}
	return 0;
}

void katran__close(void)
{
	bpf_object__close(k_obj);
	k_obj = NULL;
	k_prog = -1;
}
