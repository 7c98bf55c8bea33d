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

#include <linux/types.h>

struct decap_opts {
	/* pin aibl_node_cli / aibl_node_stats by name here (reusing existing
	 * pins); NULL: keep them private to this handle (several simulated
	 * nodes on one host must not share them) */
	const char *pin_dir;
	__u32 handle;	/* tc filter handle, 0: 0xa1b1 */
	__u32 priority; /* tc filter priority, 0: 1 */
};

struct aibl_decap; /* skeleton, build/aibl_decap.skel.h */

struct decap {
	struct aibl_decap *skel;
	int ifindex;
	__u32 handle;
	__u32 priority;
};

/*
 * Loads aibl_decap and attaches it at TC ingress of ifindex (creating the
 * clsact qdisc when missing), replacing a filter at the same handle and
 * priority. The filter stays after the process exits; decap__detach()
 * removes it.
 */
int decap__attach(int ifindex, const struct decap_opts *opts, struct decap **out);
/* Removes the filter (the clsact qdisc stays: others may use it) and frees
 * d. NULL is fine. */
int decap__detach(struct decap *d);
/* Frees d and leaves the filter attached. NULL is fine. */
void decap__close(struct decap *d);
/* Removes an aibl decap filter by ifindex/handle/priority (0: defaults),
 * e.g. left by a process that is gone. -ENOENT when there is none. */
int decap__detach_ifindex(int ifindex, __u32 handle, __u32 priority);
int decap__clients_fd(const struct decap *d); /* aibl_node_cli */
int decap__stats_fd(const struct decap *d);   /* aibl_node_stats */

#endif /* AIBL_DECAP_H */
