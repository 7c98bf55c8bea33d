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
#include <stddef.h>
#include <linux/types.h>
#include "aibl.h"

#define PLAN_DIGEST_LEN 17 /* 16 hex digits and NUL */
#define PLAN_NO_POS	0xffffU

/*
 * Session pins the plan carries, at most this many: the most recently
 * refreshed (latest expiry) are kept. ~120 bytes of JSON each: 4096 keep
 * the plan well under etcd's default 1.5 MiB request limit.
 */
#ifndef PLAN_MAX_PINS
#define PLAN_MAX_PINS 4096
#endif

struct plan_node {
	char name[AIBL_NAME_LEN];
	__u8 flags; /* AIBL_BE_F_* the data plane gets */
	__u32 cost; /* p2c cost (aibl_cost) every balancer writes for it */
};

/* a session pin: new flows of client to service go to node */
struct plan_pin {
	char svc[AIBL_NAME_LEN];
	char node[AIBL_NAME_LEN];
	__u8 family; /* enum aibl_family */
	union aibl_addr client;
	__u64 expires_ms; /* wall clock (CLOCK_REALTIME) */
	__u32 ttl_ms;	  /* its life when proposed: when to publish it again */
};

struct plan_member {
	char name[AIBL_NAME_LEN];
	__u32 weight;
};

struct plan_svc {
	char name[AIBL_NAME_LEN];
	/* how its VIP steers with its table (plan__svc_how: mode, session
	 * key, flags), as the planner's config says; each balancer compares
	 * its own aibl_vips entry with it, apart from the digest (which an
	 * older balancer computes without it). 0: a plan from a planner
	 * built before it (2026-12-07) does not say, not compared */
	__u32 how;
	int n;
	struct plan_member *m;
};

/* the aibl_vip settings that, beside the table, decide a flow's node */
static inline __u32 plan__svc_how(const struct aibl_vip *v)
{
	return 1U << 24 | (__u32)v->flags << 16 | (__u32)v->session_key << 8 | v->mode;
}

struct plan {
	__u64 version; /* 0: no plan */
	char planner[AIBL_NAME_LEN];
	__u32 hash_seed;
	int nnodes;
	struct plan_node *nodes;
	int nsvcs;
	struct plan_svc *svcs;
	int npins;
	struct plan_pin *pins;
	char digest[PLAN_DIGEST_LEN];
};

void plan__free(struct plan *p);
/* JSON text (malloc'd) of p, or NULL */
char *plan__encode(const struct plan *p);
/* 0, or -EINVAL with p empty */
int plan__decode(const char *text, struct plan *p);
/*
 * Nothing in proposal prop that plan does not already give (nodes, flags,
 * costs, services, weights, seed, pins): version and digest aside. A pin
 * the plan holds counts as the same until its expiry in the plan is more
 * than half its TTL older than the proposal's (then it is published again).
 */
bool plan__same_content(const struct plan *prop, const struct plan *plan);
/* flags of node name in the plan, -1: not in it */
int plan__node_flags(const struct plan *p, const char *name);

/* the first difference of prop from plan, for the log */
void plan__what_changed(const struct plan *prop, const struct plan *plan, char *buf, size_t len);
/* cost of node name in the plan, 0: not in it */
__u32 plan__node_cost(const struct plan *p, const char *name);
/* keep the PLAN_MAX_PINS latest-expiring of p's pins */
void plan__bound_pins(struct plan *p);

/*
 * A service's table as the digest sees it: pos[AIBL_RING_SIZE], each the
 * index of the slot's node in p->svcs[si].m (PLAN_NO_POS: none), and
 * flags[p->svcs[si].n], costs[p->svcs[si].n]. 0 or -errno (the digest then
 * fails).
 */
typedef int (*plan_table_fn)(void *arg, const struct plan *p, int si, __u16 *pos, __u8 *flags,
			     __u32 *costs);
/* the pins as loaded (malloc'd array in *out, any order): 0 or -errno */
typedef int (*plan_pins_fn)(void *arg, const struct plan *p, struct plan_pin **out, int *n);
/* the digest covers the tables and the pins (service, client, node; not
 * the expiry, which each balancer keeps on its own clock) */
int plan__digest_with(const struct plan *p, plan_table_fn fn, plan_pins_fn pins_fn, void *arg,
		      char out[PLAN_DIGEST_LEN]);
/* the digest of the tables the plan asks for (Maglev over its weights) */
int plan__digest(const struct plan *p, char out[PLAN_DIGEST_LEN]);

#endif
