/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Cluster mode (docs/cluster.md): N balancers behind an ECMP router share
 * one plan in etcd, hold the same tables, and announce their VIPs through
 * BIRD only while they do. Active when the config has an etcd section;
 * every hook below is a no-op for a single host (d->cl NULL).
 */
#ifndef AIBLD_CLUSTER_H
#define AIBLD_CLUSTER_H

#include <jansson.h>
#include <linux/types.h>

struct aibld;
struct node_rt;
struct cfg_bgp;

/* start cluster mode when cfg has an etcd section (else 0, d->cl NULL) */
int cluster__init(struct aibld *d);
/* graceful leave: withdraw the VIPs, drop the balancer key and the lease */
void cluster__fini(struct aibld *d);
/* the config changed (reload): services and nodes are mapped to the plan again */
void cluster__config_changed(struct aibld *d);
/* after a reload, without d->lock: a 'bgp' section that moved (another
 * include file or BIRD socket, or none) withdraws what it announced */
void cluster__bgp_changed(struct aibld *d, const struct cfg_bgp *old);
/* once per loop, without d->lock: etcd, election, plan, digest, announce */
void cluster__tick(struct aibld *d);
/* readable when the planner key is gone (-1: none): the loop then calls
 * cluster__woken, which runs a tick (the election) at once */
int cluster__fd(struct aibld *d);
void cluster__woken(struct aibld *d);

/* recompute hooks (caller holds d->lock): the local weights of service si
 * are recorded for the planner, then replaced by the plan's */
void cluster__weights(struct aibld *d, int si, __u32 *w);
/* the data-plane flags of node n: the plan's when it names the node */
void cluster__node_flags(struct aibld *d, const struct node_rt *n, __u8 *flags);

/* the p2c cost of node n (aibl_cost): recorded for the planner, then the plan's */
void cluster__node_cost(struct aibld *d, const struct node_rt *n, __u32 *cost);
/* the hash seed of the tables and the data plane's flow hash (caller
 * holds d->lock): the plan's once one is applied, as every balancer of
 * the group must build the same rings, else the configured one */
__u32 cluster__hash_seed(struct aibld *d);
/* the session pins local hints ask for (sorted by key, malloc'd): recorded
 * for the planner, then replaced by the plan's (sorted by key) */
struct pin_ent;
void cluster__pins(struct aibld *d, struct pin_ent **want, int *nwant);

/* GET /v1/cluster (caller holds d->lock); NULL when not in cluster mode */
json_t *cluster__json(struct aibld *d);

#endif
