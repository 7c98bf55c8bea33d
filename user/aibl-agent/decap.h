/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node side TC ingress decap program (bpf/aibl_decap.bpf.c) loader: the
 * agent attaches it where tunnelled requests arrive; it strips the outer
 * header and counts the balancer's clients (aibl_node_cli, aibl_node_stats).
 *
 * All functions return 0 or a negative errno and log why with pr_warn.
 */
#ifndef AIBL_DECAP_H
#define AIBL_DECAP_H

#include <stdbool.h>
#include <linux/types.h>
#include "aibl.h"

struct decap;

struct decap_opts {
	/* pin aibl_node_cli / aibl_node_stats by name here (reusing existing
	 * pins); NULL: keep them private to this handle (several simulated
	 * nodes on one host must not share them) */
	const char *pin_dir;
	__u32 handle;	/* tc filter handle, 0: 0xa1b1 */
	__u32 priority; /* tc filter priority, 0: 1 */
	/* run on the loaded program before it is attached (what it accepts:
	 * decap__set_sources, decap__refresh_addrs), so no packet meets it
	 * with its checks off; an error stops the attach. NULL: none */
	int (*prepare)(struct decap *d, void *arg);
	void *prepare_arg;
};

struct aibl_decap; /* skeleton, build/aibl_decap.skel.h */

struct decap {
	struct aibl_decap *skel;
	int ifindex;
	__u32 handle;
	__u32 priority;
	/* held while this process decapsulates there: an abstract socket
	 * named for the interface and handle, freed when the process ends */
	int lock_fd;
	bool addrs_over; /* more addresses than aibl_node_addrs holds: VIP check off */
};

/*
 * Loads aibl_decap and attaches it at TC ingress of ifindex (creating the
 * clsact qdisc when missing), replacing a filter at the same handle and
 * priority: one an earlier process left (an agent restarted, or killed).
 * -EBUSY, nothing attached, while another live process holds that filter
 * (a second agent started by hand). The filter stays after the process
 * exits; decap__detach() removes it.
 */
int decap__attach(int ifindex, const struct decap_opts *opts, struct decap **out);
/* Removes the filter, while it is still this one's (the clsact qdisc
 * stays: others may use it), and frees d. NULL is fine. */
int decap__detach(struct decap *d);
/* Frees d and leaves the filter attached. NULL is fine. */
void decap__close(struct decap *d);
/* Removes an aibl decap filter by ifindex/handle/priority (0: defaults),
 * e.g. left by a process that is gone. -ENOENT when there is none. */
int decap__detach_ifindex(int ifindex, __u32 handle, __u32 priority);
/*
 * What the program accepts (include/aibl.h, aibl_node_cfg). Each set turns
 * its check on when it is not empty, off when it is: an agent that knows
 * nothing of a kind accepts any.
 */
struct decap_prefix {
	union aibl_addr addr;
	__u8 family; /* enum aibl_family */
	__u8 len;    /* prefix length in bits */
};

/* the outer sources the balancers use (their tunnel_source4/6 with the
 * flow-hash bits left out: IPv4 /(32 - hash bits), IPv6 /96) */
int decap__set_sources(struct decap *d, const struct decap_prefix *p, int n);
/* kind AIBL_NODE_ADDR_LOCAL or _VIP: exactly these n addresses */
int decap__set_addrs(struct decap *d, __u8 kind, const struct decap_prefix *a, int n);
/*
 * From the host's addresses now: LOCAL those of the decap interface, VIP
 * those held on loopback or NOARP (dummy) interfaces, leaving out
 * 127.0.0.0/8, ::1 and link-local ones. Call again when addresses change.
 */
int decap__refresh_addrs(struct decap *d);
/* "ADDR[/LEN]" into p (LEN default: the whole address); 0 or -EINVAL */
int decap__parse_prefix(const char *s, struct decap_prefix *p);
int decap__clients_fd(const struct decap *d); /* aibl_node_cli */
int decap__stats_fd(const struct decap *d);   /* aibl_node_stats */
/* the counters (enum aibl_node_counter) summed over the CPUs; 0 or -errno */
int decap__counters(const struct decap *d, __u64 out[AIBL_NCNT__MAX]);
int decap__ifindex(const struct decap *d); /* where it is attached */

#endif /* AIBL_DECAP_H */
