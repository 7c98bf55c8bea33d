/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared fixture environment for the XDP program's tests and benchmark:
 * the real compiled program loaded through dp__open_load() into a private
 * bpffs directory, map setters, a test-run wrapper and expected-packet
 * builders. The functions are in xdp_env.c, which the Makefile links into
 * every test of tests/bpf (a folder's helpers) and tests/bench/Makefile.inc
 * into bench_xdp.
 */
#ifndef AIBL_TEST_XDP_ENV_H
#define AIBL_TEST_XDP_ENV_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "aibl.h"
#include "aibl_hash.h"
#include "../../user/aibld/dataplane.h"
#include "bpfutil.h"
#include "log.h"
#include "pkt.h"

#define XE_SEED 0x5eed1234u
#define XE_SRC4 "10.0.0.100"
#define XE_SRC6 "fd00::100"

extern const uint8_t XE_MAC_LB[6];  /* the balancer's MAC */
extern const uint8_t XE_MAC_RTR[6]; /* the router frames come from */
extern const uint8_t XE_MAC_GW[6];  /* the configured gateway */

/* backend ids 1..XE_NBE-1 used by the tests, MAC 02:00:00:00:01:<id> */
#define XE_NBE 8
struct xe_be {
	const char *addr;
	__u8 family;
};
extern const struct xe_be XE_BE[XE_NBE];

/* the loaded program, its pin directory and the globals last written */
extern struct dp *xe_dp;
extern char xe_dir[64];
extern struct aibl_globals xe_glob;

struct xe_result {
	int err;
	__u32 verdict;
	__u32 len;
	__u32 duration;
	uint8_t data[PKT_MAX + 256];
};

void xe_be_mac(__u32 id, uint8_t mac[6]);

void xe_addr(union aibl_addr *a, __u8 family, const char *s);

int xe_fd(const char *name);

/* a second, read-only fd of the map behind fd (its writes fail with
 * EPERM: a map write that fails, for the writer's error paths); -1 on
 * an error */
int xe_map_rdonly(int fd);

/* entries in the connection table now */
__u32 xe_conns_count(void);

int xe_globals_write(void);

/* after deleting or rewriting aibl_conns entries: void the flow cache */
int xe_epoch_bump(void);

/* val (size bytes) as every CPU's value of key in a per-CPU map; 0 or
 * -errno */
int xe_percpu_set(const char *map, __u32 key, const void *val, size_t size);

/* CPUs whose flow cache holds fk now; *e: the last such entry */
int xe_fcache_cpus(const struct aibl_flow_key *fk, struct aibl_fcache_entry *e);

void xe_down(void);

/* Loads the program into /sys/fs/bpf/aibl-t-dp-<pid> with the given sizes
 * (zero: defaults) and default globals (ipip, gateway MAC set, both
 * pre-filters on as aibld runs them: xe_vip() and xe_pin_filter() keep
 * them current). */
int xe_up(const struct dp_sizes *sizes);
/* xe_up() loads the plain program, the loader's fallback for kernels
 * without xdp.frags programs */
extern bool xe_no_frags;

int xe_vip(const char *addr, __u16 port, __u8 proto, __u32 svc, __u8 mode, __u8 key, __u8 half,
	   __u8 flags);

/* after writing aibl_pins directly */
int xe_pin_filter(void);

/* backend id from XE_BE; with_mac: next hop MAC in the entry */
int xe_backend(__u32 id, __u8 flags, bool with_mac);

int xe_be_flags(__u32 id, __u8 flags);

/* slot i of the service's table half gets pattern[i % n] */
int xe_ring(__u32 svc, __u8 half, const __u32 *pattern, __u32 n);

__u32 xe_ring_get(__u32 svc, __u8 half, __u32 slot);

/* sum over CPUs of a per-CPU __u64 slot */
__u64 xe_counter(__u32 idx);

void xe_traffic(const char *map, __u32 idx, struct aibl_traffic *t);

void xe_run_fd(int prog_fd, const void *in, size_t len, struct xe_result *r);

void xe_run(const struct pkt_buf *in, struct xe_result *r);

struct aibl_flow_key xe_fk(const char *src, const char *dst, __u16 sport, __u16 dport, __u8 proto);

/* offset of the first IP header of a built packet */
int xe_l3(const struct pkt_buf *b);

/* Ethernet with dst/src and the VLAN tags of in */
void xe_exp_l2(struct pkt_buf *o, const struct pkt_buf *in, const uint8_t *dst, const uint8_t *src);

/*
 * What ipip forwarding of in to backend be must produce: in's L2 header
 * with the backend's MAC (dst_mac NULL) or dst_mac, an outer header from
 * the configured source (IPv6: low 32 bits xor the flow hash, flow label
 * from it) and in's IP packet unchanged.
 */
void xe_exp_ipip(struct pkt_buf *o, const struct pkt_buf *in, __u32 be, const uint8_t *dst_mac,
		 __u32 flow_hash);

/* l2dsr: in with only the MACs rewritten */
void xe_exp_l2dsr(struct pkt_buf *o, const struct pkt_buf *in, __u32 be);

/* aibl_load's active flows summed over the test backends */
__s64 xe_active_sum(void);

/* Which backend an output frame was sent to, from its destination MAC. */
int xe_out_backend(const struct xe_result *r);

#endif /* AIBL_TEST_XDP_ENV_H */
