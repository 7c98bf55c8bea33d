/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Katran's XDP balancer for bench_xdp's side-by-side mode (katran_env.c).
 */
#ifndef AIBL_BENCH_KATRAN_ENV_H
#define AIBL_BENCH_KATRAN_ENV_H

#include <linux/types.h>

/* Loads Katran's balancer.bpf.o from path and fills its maps (one VIP
 * 10.100.0.1:80/tcp, 100 reals 10.1.0.1.., next hop gw_mac); 0 or -errno */
int katran__load(const char *path, const __u8 gw_mac[6]);
int katran__fd(void);
void katran__close(void);

#endif /* AIBL_BENCH_KATRAN_ENV_H */
