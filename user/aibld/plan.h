/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The cluster plan (docs/cluster.md): what every balancer of an ECMP group
 * compiles its tables from, so that all of them hold the same tables. One
 * elected planner writes it to etcd; it names each node with the flags the
 * data plane gets for it, and each service's nodes with the integer
 * weights its Maglev table is built from (the policy's output after
 * hysteresis: already quantized, so load noise does not make new plans).
 *
 * The digest is a hash of the compiled tables in a form free of local ids:
 * per service its name, its nodes' names and data-plane flags, and every
 * slot of its table as the position of its node in the plan. The planner
 * computes it from the plan (the tables every balancer must build); each
 * balancer computes it from the maps it wrote (read back) and publishes
 * it. A balancer whose digest differs fences itself.
 */
#ifndef AIBLD_PLAN_H
#define AIBLD_PLAN_H

#include <stdbool.h>
#include <linux/types.h>
#include "aibl.h"

#define PLAN_DIGEST_LEN 17 /* 16 hex digits and NUL */
#define PLAN_NO_POS	0xffffU

struct plan_node {
	char name[AIBL_NAME_LEN];
	__u8 flags; /* AIBL_BE_F_* the data plane gets */
};

struct plan_member {
	char name[AIBL_NAME_LEN];
	__u32 weight;
};

struct plan_svc {
	char name[AIBL_NAME_LEN];
	int n;
	struct plan_member *m;
};

struct plan {
	__u64 version; /* 0: no plan */
	char planner[AIBL_NAME_LEN];
	__u32 hash_seed;
	int nnodes;
	struct plan_node *nodes;
	int nsvcs;
	struct plan_svc *svcs;
	char digest[PLAN_DIGEST_LEN];
};

void plan__free(struct plan *p);
/* JSON text (malloc'd) of p, or NULL */
char *plan__encode(const struct plan *p);
/* 0, or -EINVAL with p empty */
int plan__decode(const char *text, struct plan *p);
/* same tables (nodes, flags, services, weights, seed): version and digest aside */
bool plan__same_content(const struct plan *a, const struct plan *b);
/* flags of node name in the plan, -1: not in it */
int plan__node_flags(const struct plan *p, const char *name);

/*
 * A service's table as the digest sees it: pos[AIBL_RING_SIZE], each the
 * index of the slot's node in p->svcs[si].m (PLAN_NO_POS: none), and
 * flags[p->svcs[si].n]. 0 or -errno (the digest then fails).
 */
typedef int (*plan_table_fn)(void *arg, const struct plan *p, int si, __u16 *pos, __u8 *flags);
int plan__digest_with(const struct plan *p, plan_table_fn fn, void *arg, char out[PLAN_DIGEST_LEN]);
/* the digest of the tables the plan asks for (Maglev over its weights) */
int plan__digest(const struct plan *p, char out[PLAN_DIGEST_LEN]);

#endif
