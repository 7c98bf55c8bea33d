// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Cluster mode (docs/cluster.md has the why). Keys under etcd.prefix P:
 *
 *   P/planner          the elected planner's name, on its lease
 *   P/plan             the plan (plan.h), written only by the planner, in a
 *                      txn that checks it still holds P/planner
 *   P/balancers/NAME   each balancer's status, on its lease: the plan version
 *                      it applied, the digest of the tables it loaded,
 *                      announcing or fenced and why, whether it reaches etcd
 *
 * Every balancer polls the node agents as a single host does; the local
 * weights and flags that come out are only the planner's proposal. Tables
 * come from the plan alone: cluster__weights() and cluster__node_flags()
 * replace the local figures in the recompute, so every balancer builds the
 * same Maglev tables from the same inputs. cluster__node_cost() and
 * cluster__pins() do the same for the p2c costs and the session pins, so a
 * new flow's choice (pin, hash, p2c: aibl.h AIBL_G_F_CLUSTER) is the same on
 * every balancer, and a flow the router moves finds its backend again.
 *
 * One tick per controller loop, after the recompute: renew the lease, read
 * every key under P in one range, run the election, apply a new plan version
 * (recompute, read the tables back, digest), propose a plan when planner,
 * publish the status, and announce or withdraw the VIPs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <curl/curl.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "aibld.h"
#include "bgp.h"
#include "cluster.h"
#include "etcd.h"
#include "httpbody.h"
#include "log.h"
#include "plan.h"
#include "curlopt.h"

#define KEY_LEN 192

struct cluster {
	struct etcd *e;
	char k_planner[KEY_LEN], k_plan[KEY_LEN], k_bal[KEY_LEN], k_me[KEY_LEN + AIBL_NAME_LEN];
	unsigned int ttl_s;
	__s64 lease;
	__u64 renewed_ms;

	bool etcd_ok;
	__u64 etcd_ok_ms;
	char planner[AIBL_NAME_LEN]; /* "" : none elected */
	bool is_planner;

	struct plan plan;   /* the applied plan (version 0: none yet) */
	__s64 plan_mod_rev; /* the plan key's revision as last read, 0 none */
	/* the plan key holds what this build cannot read (a hand edit, a
	 * newer release's plan), or is gone: the planner writes its plan
	 * over it, another balancer, left on its last plan, fences */
	bool plan_unread, plan_gone;
	char digest[PLAN_DIGEST_LEN]; /* of the tables loaded, read back */
	bool digest_ok;

	/* cfg service si -> plan service, and its node k -> plan member */
	int nsvcs;
	int *svc_pos;
	int **mem_pos;
	__u32 **local_w;   /* local weights per cfg service node: the proposal */
	__u32 *local_cost; /* per d->nodes[] index (cfg order): the proposal */
	int nlocal_cost;
	struct plan_pin *local_pins; /* the pins local hints ask for: the proposal */
	int nlocal_pins;

	json_t *peers; /* the balancers' status objects, as last read */
	/* when a balancer's key last left the group (ms_now()), 0 never: the
	 * planner holds a new plan until one cut off from etcd has had time
	 * to tell and fence itself (fence_ms()) */
	__u64 peer_left_ms;
	bool fenced;
	/* a peer reached etcd while we did not: until we read it again,
	 * whatever the peers answer since (one restarting, all of them out
	 * of reach too), our plan may be behind theirs */
	bool cut_off;
	char reason[128];
	bool announcing;
	char *announced; /* include text last applied, NULL: not yet */
	/* the birdc run under way (run_pid 0: none), started at run_ms: the
	 * include holds run_text, which announces (run_announce) or withdraws
	 * for run_reason; it becomes `announced` once birdc succeeds */
	pid_t run_pid;
	__u64 run_ms;
	char *run_text;
	bool run_announce;
	char run_reason[128];
	char *status_sent;
	__u64 status_ms;
	__u64 plans_written, plans_applied;
	/* etcd's history: the store's revision at the last read, the one the
	 * planner compacts to next (seen one interval before) and when */
	__s64 store_rev, compact_mark, compacted_rev;
	__u64 compact_ms;
	__u64 applied_at_ms; /* wall clock, when the plan in force was applied */

	/* a thread watches P/planner and wakes the loop (w_fd) when it is
	 * gone, so the election follows the old lease's expiry at once
	 * instead of at the next poll interval */
	struct etcd_watch *w;
	pthread_t w_thread;
	bool w_running;
	int w_fd;
	unsigned int w_retry_ms;
};

static __u64 ms_now(void)
{
	return clock_mono_ms();
}

/* ---- mapping of config services and nodes to the plan ---- */

static void map_free(struct cluster *cl)
{
	for (int i = 0; i < cl->nsvcs; i++) {
		free(cl->mem_pos ? cl->mem_pos[i] : NULL);
		free(cl->local_w ? cl->local_w[i] : NULL);
	}
	free(cl->svc_pos);
	free(cl->mem_pos);
	free(cl->local_w);
	free(cl->local_cost);
	cl->local_cost = NULL;
	cl->nlocal_cost = 0;
	cl->svc_pos = NULL;
	cl->mem_pos = NULL;
	cl->local_w = NULL;
	cl->nsvcs = 0;
}

static int map_build(struct aibld *d)
{
	struct cluster *cl = d->cl;
	const struct config *c = &d->cfg;

	map_free(cl);
	cl->svc_pos = calloc(c->nservices + 1, sizeof(int));
	cl->mem_pos = calloc(c->nservices + 1, sizeof(int *));
	cl->local_w = calloc(c->nservices + 1, sizeof(__u32 *));
	cl->local_cost = calloc(d->nnodes + 1, sizeof(__u32));
	if (!cl->svc_pos || !cl->mem_pos || !cl->local_w || !cl->local_cost)
		return -ENOMEM;
	cl->nlocal_cost = d->nnodes;
	cl->nsvcs = c->nservices;
	for (int si = 0; si < c->nservices; si++) {
		const struct cfg_service *cs = &c->services[si];

		cl->svc_pos[si] = -1;
		cl->mem_pos[si] = malloc((cs->nnodes + 1) * sizeof(int));
		cl->local_w[si] = calloc(cs->nnodes + 1, sizeof(__u32));
		if (!cl->mem_pos[si] || !cl->local_w[si])
			return -ENOMEM;
		for (int k = 0; k < cs->nnodes; k++)
			cl->mem_pos[si][k] = -1;
		for (int p = 0; p < cl->plan.nsvcs; p++) {
			const struct plan_svc *ps = &cl->plan.svcs[p];

			if (strcmp(ps->name, cs->name))
				continue;
			cl->svc_pos[si] = p;
			for (int k = 0; k < cs->nnodes; k++)
				for (int m = 0; m < ps->n; m++)
					if (!strcmp(ps->m[m].name, c->nodes[cs->nodes[k]].name))
						cl->mem_pos[si][k] = m;
		}
	}
	return 0;
}

void cluster__weights(struct aibld *d, int si, __u32 *w)
{
	struct cluster *cl = d->cl;
	const struct cfg_service *cs = &d->cfg.services[si];

	if (!cl || si >= cl->nsvcs)
		return;
	memcpy(cl->local_w[si], w, cs->nnodes * sizeof(__u32));
	if (!cl->plan.version)
		return; /* no plan yet: local tables, never announced */
	for (int k = 0; k < cs->nnodes; k++) {
		int p = cl->svc_pos[si], m = cl->mem_pos[si][k];

		w[k] = p < 0 || m < 0 ? 0 : cl->plan.svcs[p].m[m].weight;
	}
}

void cluster__node_flags(struct aibld *d, const struct node_rt *n, __u8 *flags)
{
	int f;

	if (!d->cl || !d->cl->plan.version || n->cfg_idx < 0)
		return;
	f = plan__node_flags(&d->cl->plan, n->name);
	if (f >= 0)
		*flags = f;
}

__u32 cluster__hash_seed(struct aibld *d)
{
	return d->cl && d->cl->plan.version ? d->cl->plan.hash_seed : d->cfg.hash_seed;
}

void cluster__node_cost(struct aibld *d, const struct node_rt *n, __u32 *cost)
{
	struct cluster *cl = d->cl;
	long i = n - d->nodes;

	if (!cl || n->cfg_idx < 0)
		return;
	if (i >= 0 && i < cl->nlocal_cost)
		cl->local_cost[i] = *cost;
	if (cl->plan.version)
		*cost = plan__node_cost(&cl->plan, n->name);
}

static struct svc_rt *svc_by_name(struct aibld *d, const char *name)
{
	for (int s = 0; s < d->cfg.nservices; s++)
		if (!strcmp(d->svcs[s].name, name))
			return &d->svcs[s];
	return NULL;
}

static const char *svc_name_of(struct aibld *d, __u32 svc_id)
{
	for (int s = 0; s < d->cfg.nservices; s++)
		if (d->svcs[s].id == svc_id)
			return d->svcs[s].name;
	return NULL;
}

static const char *node_name_of(struct aibld *d, __u32 id)
{
	for (int i = 0; i < d->nnodes; i++)
		if (d->nodes[i].id == id)
			return d->nodes[i].name;
	return NULL;
}

/* the local pins (the proposal), their expiry on the wall clock */
static void pins_record(struct aibld *d, const struct pin_ent *want, int nwant)
{
	struct cluster *cl = d->cl;
	__u64 mono = clock_mono_ns(), real = clock_wall_ms();
	struct plan_pin *pp = calloc(nwant + 1, sizeof(*pp));
	int n = 0;

	if (!pp)
		return;
	for (int i = 0; i < nwant; i++) {
		const char *svc = svc_name_of(d, want[i].key.svc_id);
		const char *node = node_name_of(d, want[i].val.backend);
		__u64 left = want[i].val.expires_ns > mono ? want[i].val.expires_ns - mono : 0;

		if (!svc || !node || !left)
			continue;
		snprintf(pp[n].svc, sizeof(pp[n].svc), "%s", svc);
		snprintf(pp[n].node, sizeof(pp[n].node), "%s", node);
		pp[n].family = want[i].key.family;
		pp[n].client = want[i].key.client;
		pp[n].ttl_ms = left / 1000000;
		pp[n].expires_ms = real + pp[n].ttl_ms;
		n++;
	}
	free(cl->local_pins);
	cl->local_pins = pp;
	cl->nlocal_pins = n;
}

void cluster__pins(struct aibld *d, struct pin_ent **want, int *nwant)
{
	struct cluster *cl = d->cl;
	__u64 mono, real, left;
	struct pin_ent *w;
	int n = 0;

	if (!cl)
		return;
	pins_record(d, *want, *nwant);
	if (!cl->plan.version)
		return; /* no plan yet: local pins, never announced */
	w = calloc(cl->plan.npins + 1, sizeof(*w));
	if (!w)
		return;
	mono = clock_mono_ns();
	real = clock_wall_ms();
	for (int i = 0; i < cl->plan.npins; i++) {
		const struct plan_pin *pp = &cl->plan.pins[i];
		struct node_rt *nd = aibld__node(d, pp->node);
		struct svc_rt *sr = svc_by_name(d, pp->svc);

		/* not known here: left out, and the digest tells (fenced) */
		if (!nd || !sr)
			continue;
		w[n].key.svc_id = sr->id;
		w[n].key.family = pp->family;
		w[n].key.client = pp->client;
		w[n].val.backend = nd->id;
		/* the plan's wall-clock expiry on this host's monotonic clock,
		 * no further on than the pin's ttl (an expiry centuries on
		 * would overflow, and differ from host to host); one already
		 * past stays in the map, expired (0 would be never) */
		left = pp->expires_ms > real ? pp->expires_ms - real : 0;
		if (left > pp->ttl_ms)
			left = pp->ttl_ms;
		w[n].val.expires_ns = left ? mono + left * 1000000ULL : 1;
		n++;
	}
	qsort(w, n, sizeof(*w), nodes__pin_cmp_key);
	/* one pin per key (a plan is written with one) */
	{
		int k = 0;

		for (int i = 0; i < n; i++)
			if (!k || nodes__pin_cmp_key(&w[k - 1], &w[i]))
				w[k++] = w[i];
		n = k;
	}
	free(*want);
	*want = w;
	*nwant = n;
}

void cluster__config_changed(struct aibld *d)
{
	if (d->cl && map_build(d))
		pr_warn("cluster: out of memory mapping the plan");
}

/* the birdc run under way: reaped if it ended (with wait, waited for, up
 * to its timeout); its text is what is announced once it succeeded */
static void bgp_run_end(struct aibld *d, const struct cfg_bgp *cfg, bool wait)
{
	struct cluster *cl = d->cl;
	int err = bgp__reap(cfg, cl->run_pid, cl->run_ms, wait);

	if (err == 1)
		return;
	cl->run_pid = 0;
	if (!err) {
		if (cl->run_announce != cl->announcing)
			pr_info("cluster: %s the VIPs%s%s",
				cl->run_announce ? "announcing" : "withdrew",
				cl->run_announce ? "" : ": ",
				cl->run_announce ? "" : cl->run_reason);
		free(cl->announced);
		cl->announced = cl->run_text;
		cl->run_text = NULL;
		pthread_mutex_lock(&d->lock);
		cl->announcing = cl->run_announce;
		pthread_mutex_unlock(&d->lock);
	} else {
		/* the include holds run_text now, and BIRD may have taken it
		 * (a configure killed at its timeout) or will at its next
		 * start: what it announces is not known. Kept as the text
		 * before, a tick that wanted that text again ran nothing, and
		 * the include went on naming VIPs no longer wanted (fenced, or
		 * a service gone) */
		free(cl->announced);
		cl->announced = NULL;
	}
	free(cl->run_text);
	cl->run_text = NULL;
}

void cluster__bgp_changed(struct aibld *d, const struct cfg_bgp *old)
{
	const struct cfg_bgp *now = &d->cfg.bgp;
	struct cluster *cl = d->cl;
	int err;

	if (!cl || !old->include[0])
		return;
	/* the same file read by the same BIRD: it announces what it did, and
	 * a new birdc is used from the next change on. A run under way is
	 * reaped by the ticks as ever: waited for here, a BIRD that does not
	 * answer held every reload, and the loop with it, for birdc's 3 s,
	 * past the 2 s lease */
	if (!strcmp(old->include, now->include) && !strcmp(old->bird_socket, now->bird_socket))
		return;
	/* a run of the old settings ends first (its timeout bounds the wait) */
	if (cl->run_pid)
		bgp_run_end(d, old, true);
	/* else the BIRD of the old settings would announce this balancer's
	 * VIPs for good, fenced or stopped (cluster__fini withdraws through
	 * the new ones): withdrawn there, and the next tick announces through
	 * the new ones from nothing */
	err = bgp__withdraw(old);
	if (err)
		pr_warn(
		    "cluster: the 'bgp' section changed, and withdrawing the VIPs through %s and "
		    "%s failed: %s; that BIRD may announce them until it reads the file again",
		    old->include, old->bird_socket, strerror(-err));
	else
		pr_info("cluster: the 'bgp' section changed: withdrew the VIPs through %s",
			old->include);
	free(cl->announced);
	cl->announced = NULL;
}

/* ---- the digest of what this balancer loaded, read back from the maps ---- */

/*
 * The first service of the plan whose VIP steers here otherwise than the
 * plan says (its aibl_vips entry read back: another mode or session key,
 * no connection table), NULL none. The same tables steered otherwise send
 * a flow ECMP moves here to another node than the group does: fenced, as
 * for tables that differ. Apart from the digest, which a balancer older
 * than plan_svc.how computes without it and would refuse the plan on.
 */
static const char *steer_differs(struct aibld *d, const struct plan *p)
{
	for (int si = 0; si < p->nsvcs; si++) {
		const struct plan_svc *ps = &p->svcs[si];
		struct svc_rt *s = svc_by_name(d, ps->name);
		struct aibl_vip_key vk;
		struct aibl_vip v;

		if (!ps->how || !s)
			continue;
		aibld__vip_key(&d->cfg.services[s - d->svcs], &vk);
		if (bpf_map_lookup_elem(d->fd_vips, &vk, &v) || plan__svc_how(&v) != ps->how)
			return ps->name;
	}
	return NULL;
}

static int loaded_table(void *arg, const struct plan *p, int si, __u16 *pos, __u8 *flags,
			__u32 *costs)
{
	struct aibld *d = arg;
	const struct plan_svc *ps = &p->svcs[si];
	__u32 *ids = malloc(AIBL_RING_SIZE * sizeof(*ids));
	__u16 *by_id = malloc(d->max_backends * sizeof(*by_id));
	struct svc_rt *s = NULL;
	int err = -ENOENT;

	if (!ids || !by_id) {
		err = -ENOMEM;
		goto out;
	}
	s = svc_by_name(d, ps->name);
	if (!s || !s->have_table)
		goto out;
	for (__u32 i = 0; i < d->max_backends; i++)
		by_id[i] = PLAN_NO_POS;
	for (int k = 0; k < ps->n; k++) {
		struct node_rt *n = aibld__node(d, ps->m[k].name);
		struct aibl_backend be;
		struct aibl_cost c;

		flags[k] = 0;
		if (!n || n->id >= d->max_backends)
			continue;
		by_id[n->id] = k;
		if (!bpf_map_lookup_elem(d->fd_backends, &n->id, &be))
			flags[k] = be.flags;
		if (!bpf_map_lookup_elem(d->fd_cost, &n->id, &c))
			costs[k] = c.cost;
	}
	err = tables__read_ring(d, s->id, s->half, ids);
	if (err)
		goto out;
	for (__u32 i = 0; i < AIBL_RING_SIZE; i++)
		pos[i] = ids[i] < d->max_backends ? by_id[ids[i]] : PLAN_NO_POS;
out:
	free(ids);
	free(by_id);
	return err;
}

/* the pins of aibl_pins, read back, as names (an unknown id: "?", which
 * no plan names, so the digest differs) */
static int loaded_pins(void *arg, const struct plan *p, struct plan_pin **out, int *n)
{
	struct aibld *d = arg;
	struct aibl_pin_key k, next;
	struct plan_pin *pp = NULL;
	int cap = 0, more;

	(void)p;
	*out = NULL;
	*n = 0;
	if (bpf_map_get_next_key(d->fd_pins, NULL, &k))
		return 0;
	do {
		struct aibl_pin v;
		const char *svc, *node;

		more = !bpf_map_get_next_key(d->fd_pins, &k, &next);
		if (!bpf_map_lookup_elem(d->fd_pins, &k, &v)) {
			if (*n == cap) {
				struct plan_pin *np;

				cap = cap ? cap * 2 : 64;
				np = realloc(pp, cap * sizeof(*pp));
				if (!np) {
					free(pp);
					*n = 0;
					return -ENOMEM;
				}
				pp = np;
			}
			svc = svc_name_of(d, k.svc_id);
			node = node_name_of(d, v.backend);
			memset(&pp[*n], 0, sizeof(pp[*n]));
			snprintf(pp[*n].svc, sizeof(pp[*n].svc), "%s", svc ? svc : "?");
			snprintf(pp[*n].node, sizeof(pp[*n].node), "%s", node ? node : "?");
			pp[*n].family = k.family;
			pp[*n].client = k.client;
			(*n)++;
		}
		k = next;
	} while (more);
	*out = pp;
	return 0;
}

/* ---- etcd ---- */

static int lease_keep(struct aibld *d)
{
	struct cluster *cl = d->cl;
	__u64 now = ms_now();
	int err;

	if (cl->lease && now - cl->renewed_ms < cl->ttl_s * 1000ULL / 3)
		return 0;
	if (cl->lease) {
		err = etcd__lease_keepalive(cl->e, cl->lease);
		if (!err) {
			cl->renewed_ms = now;
			return 0;
		}
		if (err != -ENOENT)
			return err;
		pr_warn("cluster: lease %llx expired: a new one", (unsigned long long)cl->lease);
		cl->lease = 0;
	}
	err = etcd__lease_grant(cl->e, cl->ttl_s, &cl->lease);
	if (!err)
		cl->renewed_ms = now;
	return err;
}

/* the planner key's value into planner (len bytes), as etcd has it now:
 * who won the election this balancer tried */
static void planner_now(struct cluster *cl, char *planner, size_t len)
{
	struct etcd_kv *kvs;
	int n;

	if (etcd__range(cl->e, cl->k_planner, &kvs, &n, NULL))
		return;
	for (int i = 0; i < n; i++)
		if (!strcmp(kvs[i].key, cl->k_planner))
			snprintf(planner, len, "%s", kvs[i].val);
	etcd__kvs_free(kvs, n);
}

/* one range over the prefix: planner, plan, balancers. New plan in *next. */
static int read_state(struct aibld *d, struct plan *next, bool *have_next)
{
	struct cluster *cl = d->cl;
	struct etcd_kv *kvs;
	json_t *peers = json_array(), *old;
	char planner[sizeof(cl->planner)] = "";
	bool planner_seen = false, is_planner = false, unread = cl->plan_unread, nomem = false;
	__s64 plan_rev = 0; /* the plan key's revision now, 0 none */
	int n, err;

	*have_next = false;
	err = etcd__range(cl->e, d->cfg.etcd.prefix, &kvs, &n, &cl->store_rev);
	if (err) {
		json_decref(peers);
		return err;
	}
	for (int i = 0; i < n; i++) {
		struct etcd_kv *kv = &kvs[i];

		if (!strcmp(kv->key, cl->k_planner)) {
			snprintf(planner, sizeof(planner), "%s", kv->val);
			is_planner = !strcmp(kv->val, d->cfg.etcd.name) && kv->lease == cl->lease;
			planner_seen = true;
		} else if (!strcmp(kv->key, cl->k_plan)) {
			plan_rev = kv->mod_rev;
			if (kv->mod_rev == cl->plan_mod_rev)
				continue;
			err = plan__decode(kv->val, next);
			/* out of memory says nothing of the plan: read again */
			if (err == -ENOMEM) {
				nomem = true;
				continue;
			}
			unread = err != 0;
			if (unread)
				pr_warn(
				    "cluster: %s holds no plan this balancer can read (revision "
				    "%lld): %s",
				    kv->key, (long long)kv->mod_rev,
				    cl->is_planner ? "writing the plan over it"
						   : "fenced on plan until the planner writes one");
			else
				*have_next = true;
		} else if (!strncmp(kv->key, cl->k_bal, strlen(cl->k_bal))) {
			json_t *j = json_loads(kv->val, 0, NULL);

			if (json_is_object(j))
				json_array_append(peers, j);
			json_decref(j);
		}
	}
	etcd__kvs_free(kvs, n);
	/* the revision the planner's write is conditioned on: the key's as it
	 * is, valid or not, 0 once gone (a deleted plan, an etcd restored
	 * empty); kept only at the valid plans' revision, the write waited
	 * on a revision that never came back and the group kept its last
	 * plan for good */
	if (!plan_rev && cl->plan_mod_rev)
		pr_warn("cluster: %s is gone: %s", cl->k_plan,
			cl->is_planner ? "writing the plan again" : "the planner writes it again");
	cl->plan_mod_rev = nomem ? 0 : plan_rev;
	cl->plan_unread = plan_rev && unread;
	cl->plan_gone = !plan_rev;
	/* the election: the planner key, created on our lease when there is none */
	if (!planner_seen && cl->lease) {
		struct etcd_cmp cmp = {.key = cl->k_planner, .target = "CREATE", .num = 0};
		bool ok;

		if (!etcd__txn_put(cl->e, &cmp, 1, cl->k_planner, d->cfg.etcd.name, cl->lease,
				   &ok) &&
		    ok) {
			pr_info("cluster: elected planner of %s", d->cfg.etcd.prefix);
			snprintf(planner, sizeof(planner), "%s", d->cfg.etcd.name);
			is_planner = true;
		} else {
			planner_now(cl, planner, sizeof(planner));
		}
	}
	/* a balancer gone from the group: dead, or cut off from etcd */
	{
		size_t i, k;
		json_t *o, *p;

		json_array_foreach(cl->peers, i, o)
		{
			const char *name = json_string_value(json_object_get(o, "name"));
			bool still = false;

			json_array_foreach(peers, k, p)
			{
				const char *pn = json_string_value(json_object_get(p, "name"));

				still |= name && pn && !strcmp(name, pn);
			}
			if (name && !still)
				cl->peer_left_ms = ms_now();
		}
	}
	/* what the API reads (GET /v1/cluster, under d->lock) changes under it */
	pthread_mutex_lock(&d->lock);
	snprintf(cl->planner, sizeof(cl->planner), "%s", planner);
	cl->is_planner = is_planner;
	old = cl->peers;
	cl->peers = peers;
	pthread_mutex_unlock(&d->lock);
	json_decref(old);
	return 0;
}

/* the planner's proposal from its local state; caller holds d->lock */
static int propose(struct aibld *d, struct plan *p)
{
	struct cluster *cl = d->cl;
	const struct config *c = &d->cfg;

	memset(p, 0, sizeof(*p));
	p->version = cl->plan.version + 1;
	snprintf(p->planner, sizeof(p->planner), "%s", c->etcd.name);
	p->hash_seed = c->hash_seed;
	p->nodes = calloc(c->nnodes + 1, sizeof(*p->nodes));
	p->svcs = calloc(c->nservices + 1, sizeof(*p->svcs));
	if (!p->nodes || !p->svcs)
		goto nomem;
	for (int i = 0; i < c->nnodes; i++) {
		__u32 local = i < cl->nlocal_cost ? cl->local_cost[i] : 0;
		__u32 cur = plan__node_cost(&cl->plan, c->nodes[i].name);
		__u32 diff = local > cur ? local - cur : cur - local;

		memcpy(p->nodes[i].name, c->nodes[i].name, AIBL_NAME_LEN);
		p->nodes[i].flags = aibld__be_flags(&d->nodes[i]);
		/* the published cost moves only by more than cost_step and the
		 * hysteresis: every new cost is a plan version, and a moved
		 * flow's p2c choice holds while the order of its two costs does */
		p->nodes[i].cost =
		    diff > c->etcd.cost_step && (__u64)diff * 100 > (__u64)c->hysteresis_pct * cur
			? local
			: cur;
		p->nnodes++;
	}
	if (cl->nlocal_pins) {
		p->pins = malloc(cl->nlocal_pins * sizeof(*p->pins));
		if (!p->pins)
			goto nomem;
		memcpy(p->pins, cl->local_pins, cl->nlocal_pins * sizeof(*p->pins));
		p->npins = cl->nlocal_pins;
		plan__bound_pins(p);
	}
	for (int si = 0; si < c->nservices && si < cl->nsvcs; si++) {
		const struct cfg_service *cs = &c->services[si];
		struct plan_svc *ps = &p->svcs[p->nsvcs++];
		struct aibl_vip v = {};

		memcpy(ps->name, cs->name, AIBL_NAME_LEN);
		aibld__vip_steer(d, si, &v);
		ps->how = plan__svc_how(&v);
		ps->m = calloc(cs->nnodes + 1, sizeof(*ps->m));
		if (!ps->m)
			goto nomem;
		for (int k = 0; k < cs->nnodes; k++) {
			memcpy(ps->m[k].name, c->nodes[cs->nodes[k]].name, AIBL_NAME_LEN);
			ps->m[k].weight = cl->local_w[si][k];
		}
		ps->n = cs->nnodes;
	}
	return plan__digest(p, p->digest);
nomem:
	plan__free(p);
	return -ENOMEM;
}

/*
 * Every live balancer that may carry traffic applied the current plan: a
 * new one may follow. A fenced one withdrew its VIPs: one that cannot read
 * the plan (another build's), or has none yet, stays fenced on an older
 * version, and waiting for it held the whole group at this plan for as
 * long as it lived, a node gone down in every table.
 */
static bool all_applied(struct cluster *cl)
{
	size_t i;
	json_t *b;

	json_array_foreach(cl->peers, i, b)
	{
		if (json_is_true(json_object_get(b, "fenced")))
			continue;
		if ((__u64)json_integer_value(json_object_get(b, "version")) != cl->plan.version)
			return false;
	}
	return true;
}

static int write_plan(struct aibld *d, struct plan *p)
{
	struct cluster *cl = d->cl;
	struct etcd_cmp cmp[2] = {
	    {.key = cl->k_planner, .target = "VALUE", .val = d->cfg.etcd.name},
	    {.key = cl->k_plan,
	     .target = cl->plan_mod_rev ? "MOD" : "CREATE",
	     .num = cl->plan_mod_rev},
	};
	char *text = plan__encode(p);
	bool ok = false;
	int err;

	if (!text)
		return -ENOMEM;
	err = etcd__txn_put(cl->e, cmp, 2, cl->k_plan, text, 0, &ok);
	free(text);
	if (!err && ok) {
		char what[96];

		pthread_mutex_lock(&d->lock);
		cl->plans_written++;
		pthread_mutex_unlock(&d->lock);
		plan__what_changed(p, &cl->plan, what, sizeof(what));
		pr_info("cluster: wrote plan %llu (digest %s): %s", (unsigned long long)p->version,
			p->digest, what);
	}
	return err ? err : ok ? 0 : -EAGAIN;
}

/* ---- the partition check: cut off from etcd, ask the peers ---- */

static size_t peer_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	size_t n = size * nmemb;

	return http_body__feed(ud, ptr, n, 1 << 20) ? 0 : n;
}

/*
 * How long a balancer cut off from etcd may take to fence itself: it asks
 * its peers once a loop, and counts itself cut off once one of them
 * reached etcd more than two poll intervals and a timeout after it lost
 * etcd (peer_reaches_etcd()); one loop more to act on it.
 */
static __u64 fence_ms(const struct aibld *d)
{
	return 3ULL * d->cfg.poll_interval_ms + 2ULL * d->cfg.poll_timeout_ms;
}

/*
 * GET URL/v1/cluster: did that balancer reach etcd after we lost it? A
 * peer that merely has not noticed yet (etcd down for all) reached it no
 * later than a poll round after our last success; one that is well past
 * that reaches etcd while we do not: we are the one cut off.
 */
static bool peer_reaches_etcd(struct aibld *d, const char *url, __u64 lost_ms)
{
	__u64 margin = 2ULL * d->cfg.poll_interval_ms + d->cfg.poll_timeout_ms;
	json_t *age;
	struct http_body body = {};
	char full[CFG_URL_LEN + 16];
	CURL *h = curl_easy_init();
	json_t *j = NULL;
	long code = 0;
	bool yes;

	if (!h)
		return false;
	snprintf(full, sizeof(full), "%s/v1/cluster", url);
	aibl_curl__direct(h);
	curl_easy_setopt(h, CURLOPT_URL, full);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)d->cfg.poll_timeout_ms);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, peer_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (code == 200)
		j = json_loads(http_body__str(&body), 0, NULL);
	age = json_object_get(j, "etcd_age_ms");
	yes = json_is_true(json_object_get(j, "etcd_ok")) && json_is_integer(age) &&
	      json_integer_value(age) >= 0 && (__u64)json_integer_value(age) + margin < lost_ms;
	json_decref(j);
	http_body__free(&body);
	curl_easy_cleanup(h);
	return yes;
}

/* the peers' API URLs from the last read, then asked without the lock */
static bool partitioned(struct aibld *d, __u64 lost_ms)
{
	struct cluster *cl = d->cl;
	char(*urls)[CFG_URL_LEN];
	int n = 0;
	bool yes = false;
	size_t i;
	json_t *b;

	urls = calloc(json_array_size(cl->peers) + 1, sizeof(*urls));
	if (!urls)
		return false;
	json_array_foreach(cl->peers, i, b)
	{
		const char *u = json_string_value(json_object_get(b, "api"));
		const char *name = json_string_value(json_object_get(b, "name"));

		if (u && *u && name && strcmp(name, d->cfg.etcd.name))
			snprintf(urls[n++], CFG_URL_LEN, "%s", u);
	}
	for (int k = 0; k < n && !yes; k++)
		yes = peer_reaches_etcd(d, urls[k], lost_ms);
	free(urls);
	return yes;
}

/* ---- status and announcement ---- */

static bool xdp_attached(struct aibld *d)
{
	__u32 id = 0;

	return !bpf_xdp_query_id(d->ifindex, 0, &id) && id;
}

static json_t *status_obj(struct aibld *d)
{
	struct cluster *cl = d->cl;

	return json_pack("{s:s,s:I,s:s,s:b,s:b,s:s,s:s,s:b,s:s}", "name", d->cfg.etcd.name,
			 "version", (json_int_t)cl->plan.version, "digest", cl->digest,
			 "announcing", cl->announcing, "fenced", cl->fenced, "reason", cl->reason,
			 "planner", cl->planner, "etcd_ok", cl->etcd_ok, "api",
			 d->cfg.etcd.api_url);
}

/* the VIPs of services with an eligible backend in the plan */
static char *announce_text(struct aibld *d, bool announce)
{
	const char **vips = calloc(d->cfg.nservices + 1, sizeof(*vips));
	struct cluster *cl = d->cl;
	int n = 0;
	char *text;

	if (!vips)
		return NULL;
	for (int si = 0; announce && si < d->cfg.nservices && si < cl->nsvcs; si++) {
		const struct cfg_service *cs = &d->cfg.services[si];
		int p = cl->svc_pos[si];
		bool eligible = false, dup = false;

		for (int m = 0; p >= 0 && m < cl->plan.svcs[p].n; m++) {
			const struct plan_member *pm = &cl->plan.svcs[p].m[m];
			int f = plan__node_flags(&cl->plan, pm->name);

			eligible |= pm->weight > 0 && f >= 0 && !(f & AIBL_BE_F_DOWN);
		}
		for (int k = 0; k < n; k++)
			dup |= !strcmp(vips[k], cs->vip.text);
		if (eligible && !dup)
			vips[n++] = cs->vip.text;
	}
	text = bgp__render(vips, n);
	free(vips);
	return text;
}

/*
 * etcd keeps every revision of every key until someone compacts: the
 * status keys, rewritten every third of a lease TTL, and the plans would
 * fill its quota (2 GiB by default) in days, and then every put and lease
 * grant fails. The planner, one balancer of the group, compacts every
 * compact_interval_s to the revision it read one interval before, as
 * Kubernetes' API server does; a watch starts at the revision just read,
 * never that far back.
 */
static void compact(struct aibld *d, __u64 now)
{
	struct cluster *cl = d->cl;
	__u64 iv = d->cfg.etcd.compact_interval_s * 1000ULL;
	int err;

	if (!iv || !cl->is_planner || !cl->etcd_ok || cl->store_rev <= 0)
		return;
	if (cl->store_rev < cl->compact_mark || cl->store_rev < cl->compacted_rev) {
		/* the revision went back: an etcd rebuilt or restored. The old
		 * store's marks are none of this one's: kept, the mark was a
		 * "future revision" refused every interval, or every new one
		 * fell below what was compacted and none was, until the new
		 * store passed the old one's revision */
		pr_info("cluster: etcd's revision went back to %lld (compacted to %lld): "
			"compaction starts over",
			(long long)cl->store_rev, (long long)cl->compacted_rev);
		pthread_mutex_lock(&d->lock);
		cl->compacted_rev = 0;
		pthread_mutex_unlock(&d->lock);
		cl->compact_mark = cl->store_rev;
		cl->compact_ms = now;
		return;
	}
	if (cl->compact_ms && now - cl->compact_ms < iv)
		return;
	if (cl->compact_mark > 0 && cl->compact_mark > cl->compacted_rev) {
		err = etcd__compact(cl->e, cl->compact_mark);
		if (err) {
			/* tried again an interval on (a refusal, say for want
			 * of permission, is not said every loop) */
			pr_warn("cluster: compact etcd to revision %lld: %s",
				(long long)cl->compact_mark, strerror(-err));
			cl->compact_ms = now;
			return;
		}
		pr_debug("cluster: compacted etcd to revision %lld", (long long)cl->compact_mark);
		pthread_mutex_lock(&d->lock);
		cl->compacted_rev = cl->compact_mark;
		pthread_mutex_unlock(&d->lock);
	}
	cl->compact_mark = cl->store_rev;
	cl->compact_ms = now;
}

void cluster__tick(struct aibld *d)
{
	struct cluster *cl = d->cl;
	struct plan next = {}, prop = {};
	bool have_next = false, want_write = false, cut_off = false, announce;
	const char *steer;
	__u64 now;
	char *text;
	json_t *st;
	int err;

	if (!cl)
		return;
	/* etcd, without the lock: the API thread reads on meanwhile */
	err = lease_keep(d);
	if (!err)
		err = read_state(d, &next, &have_next);
	now = ms_now();
	if (err && cl->etcd_ok)
		pr_warn("cluster: etcd %s unreachable: %s; forwarding on plan %llu",
			d->cfg.etcd.endpoint, strerror(-err), (unsigned long long)cl->plan.version);
	else if (!err && !cl->etcd_ok && cl->etcd_ok_ms)
		pr_info("cluster: etcd reachable again");
	if (err)
		cut_off = cl->cut_off || partitioned(d, cl->etcd_ok_ms ? now - cl->etcd_ok_ms : 0);

	pthread_mutex_lock(&d->lock);
	/* read by GET /v1/cluster (a peer's partition check) under the lock */
	cl->etcd_ok = !err;
	cl->cut_off = cut_off;
	if (!err)
		cl->etcd_ok_ms = now;
	/* a new revision of the key: applied when it says anything new (a
	 * rewrite at the same version, by hand, is applied too: a restarted
	 * balancer would read it, and the group must agree) */
	if (have_next &&
	    (next.version != cl->plan.version || strcmp(next.digest, cl->plan.digest) ||
	     !plan__same_content(&next, &cl->plan))) {
		__u32 seed = cluster__hash_seed(d);

		plan__free(&cl->plan);
		cl->plan = next;
		memset(&next, 0, sizeof(next));
		map_build(d);
		/* a planner configured with another seed: its seed, in the
		 * data plane's flow hash as in the rings */
		if (cl->plan.hash_seed != seed) {
			if (cl->plan.hash_seed != d->cfg.hash_seed)
				pr_warn("cluster: plan %llu's hash_seed %u is not the configured "
					"%u: the plan's is used",
					(unsigned long long)cl->plan.version, cl->plan.hash_seed,
					d->cfg.hash_seed);
			err = aibld__write_globals(d);
			if (err)
				pr_warn("cluster: globals for plan %llu: %s",
					(unsigned long long)cl->plan.version, strerror(-err));
		}
		/* the switch: every table rebuilt from the new plan now */
		err = aibld__recompute(d, true);
		if (err)
			pr_warn("cluster: applying plan %llu: %s",
				(unsigned long long)cl->plan.version, strerror(-err));
		cl->plans_applied++;
		{
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			cl->applied_at_ms = ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
		}
		pr_info("cluster: applied plan %llu from %s", (unsigned long long)cl->plan.version,
			cl->plan.planner);
	}
	plan__free(&next);
	cl->digest_ok = false;
	steer = NULL;
	if (cl->plan.version) {
		err = plan__digest_with(&cl->plan, loaded_table, loaded_pins, d, cl->digest);
		cl->digest_ok = !err && !strcmp(cl->digest, cl->plan.digest);
		if (err)
			snprintf(cl->digest, sizeof(cl->digest), "-");
		steer = steer_differs(d, &cl->plan);
	}
	/* the planner proposes what its own polls say, and writes its plan
	 * over one gone or unreadable */
	if (cl->is_planner && cl->etcd_ok && !propose(d, &prop))
		want_write = !cl->plan.version || !plan__same_content(&prop, &cl->plan) ||
			     cl->plan_unread || cl->plan_gone;

	/* announce only with the plan's tables, attached, and not cut off */
	cl->fenced = true;
	if (!cl->plan.version)
		snprintf(cl->reason, sizeof(cl->reason), "no plan yet");
	else if (!cl->digest_ok && (__u32)cl->plan.npins > d->max_pins)
		/* a pinned map of an earlier start, smaller than the config's
		 * (kept so no flow is lost): its pins cannot all be written */
		snprintf(cl->reason, sizeof(cl->reason),
			 "plan %llu has %d pins, aibl_pins here %u: resize it (aibld --teardown, "
			 "start)",
			 (unsigned long long)cl->plan.version, cl->plan.npins, d->max_pins);
	else if (!cl->digest_ok)
		snprintf(cl->reason, sizeof(cl->reason), "tables differ from plan %llu",
			 (unsigned long long)cl->plan.version);
	else if (steer)
		snprintf(
		    cl->reason, sizeof(cl->reason),
		    "service %.31s steers otherwise than plan %llu (its policy, session_key or "
		    "conntrack)",
		    steer, (unsigned long long)cl->plan.version);
	else if (cl->plan_unread && !cl->is_planner)
		snprintf(cl->reason, sizeof(cl->reason),
			 "the plan in etcd is not one this balancer can read; on plan %llu",
			 (unsigned long long)cl->plan.version);
	else if (cut_off)
		snprintf(cl->reason, sizeof(cl->reason), "cut off from etcd, which peers reach");
	else if (!xdp_attached(d))
		snprintf(cl->reason, sizeof(cl->reason), "XDP program not attached");
	else
		cl->fenced = false;
	if (!cl->fenced)
		cl->reason[0] = 0;
	announce = !cl->fenced;
	text = announce_text(d, announce);
	st = status_obj(d);
	pthread_mutex_unlock(&d->lock);

	/* birdc runs beside the loop: a BIRD that does not answer must not
	 * hold the lease renewal (a TTL of 2 s against birdc's 3 s timeout) */
	if (cl->run_pid)
		bgp_run_end(d, &d->cfg.bgp, false);
	if (d->cfg.bgp.include[0] && text && !cl->run_pid &&
	    (!cl->announced || strcmp(text, cl->announced))) {
		cl->run_ms = clock_mono_ms();
		if (!bgp__start(&d->cfg.bgp, text, &cl->run_pid)) {
			cl->run_text = text;
			text = NULL;
			cl->run_announce = announce;
			snprintf(cl->run_reason, sizeof(cl->run_reason), "%s", cl->reason);
			/* most answer at once: said in this tick */
			bgp_run_end(d, &d->cfg.bgp, false);
		} else {
			/* the include may be written, BIRD not told */
			cl->run_pid = 0;
			free(cl->announced);
			cl->announced = NULL;
		}
	} else if (!d->cfg.bgp.include[0]) {
		pthread_mutex_lock(&d->lock);
		cl->announcing = announce;
		pthread_mutex_unlock(&d->lock);
	}
	free(text);

	/* not while a balancer that left may still be fencing itself: its
	 * key expired (a lease TTL) before it could tell it was cut off,
	 * and a plan now would leave it announcing the one before */
	/* a plan key gone or unreadable is applied by nobody: a balancer
	 * that (re)started since stays at no plan, and waiting for it to
	 * apply the current one would freeze the group for good */
	if (want_write && (all_applied(cl) || cl->plan_gone || cl->plan_unread) &&
	    (!cl->peer_left_ms || now - cl->peer_left_ms >= fence_ms(d))) {
		err = write_plan(d, &prop);
		if (err && err != -EAGAIN)
			pr_warn("cluster: write plan: %s", strerror(-err));
	}
	plan__free(&prop);
	compact(d, now);

	/* the status, when it changed or a third of the TTL passed */
	if (cl->etcd_ok && cl->lease && st) {
		char *s;

		json_object_set_new(st, "announcing", json_boolean(cl->announcing));
		s = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
		if (s && (!cl->status_sent || strcmp(s, cl->status_sent) ||
			  now - cl->status_ms >= cl->ttl_s * 1000ULL / 3)) {
			if (!etcd__put(cl->e, cl->k_me, s, cl->lease)) {
				free(cl->status_sent);
				cl->status_sent = s;
				s = NULL;
				cl->status_ms = now;
			}
		}
		free(s);
	}
	json_decref(st);
}

json_t *cluster__json(struct aibld *d)
{
	struct cluster *cl = d->cl;
	json_t *j;

	if (!cl)
		return NULL;
	j = status_obj(d);
	json_object_set_new(j, "prefix", json_string(d->cfg.etcd.prefix));
	json_object_set_new(j, "is_planner", json_boolean(cl->is_planner));
	json_object_set_new(j, "plan_digest", json_string(cl->plan.digest));
	json_object_set_new(j, "plan_planner", json_string(cl->plan.planner));
	json_object_set_new(j, "plans_written", json_integer(cl->plans_written));
	json_object_set_new(j, "plans_applied", json_integer(cl->plans_applied));
	json_object_set_new(j, "etcd_compacted_revision", json_integer(cl->compacted_rev));
	json_object_set_new(j, "plan_pins", json_integer(cl->plan.npins));
	json_object_set_new(j, "applied_at_ms", json_integer(cl->applied_at_ms));
	json_object_set_new(
	    j, "etcd_age_ms",
	    json_integer(cl->etcd_ok_ms ? (json_int_t)(ms_now() - cl->etcd_ok_ms) : -1));
	json_object_set_new(j, "balancers", json_deep_copy(cl->peers ? cl->peers : json_null()));
	return j;
}

/* ---- the planner key's watch ---- */

static void *watch_planner(void *arg)
{
	struct cluster *cl = arg;
	__u64 one = 1;
	int err;

	for (;;) {
		err = etcd__watch_absent(cl->w, cl->k_planner);
		if (err == -ECANCELED)
			break;
		if (!err && write(cl->w_fd, &one, sizeof(one)) != sizeof(one))
			pr_debug("cluster: waking the loop: %s", strerror(errno));
		/* gone: the loop runs the election now; asked again in a moment
		 * (still gone: woken again). etcd unreachable: the loop's own
		 * tries go on, this one retries at its pace */
		if (etcd__watch_sleep(cl->w, err ? cl->w_retry_ms : 100))
			break;
	}
	return NULL;
}

static void watch_start(struct aibld *d)
{
	struct cluster *cl = d->cl;
	int err;

	cl->w_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	err = cl->w_fd < 0 ? -errno
			   : etcd__watch_open(d->cfg.etcd.endpoint, d->cfg.poll_timeout_ms, &cl->w);
	if (!err)
		err = -pthread_create(&cl->w_thread, NULL, watch_planner, cl);
	if (!err) {
		cl->w_running = true;
		return;
	}
	/* the loop still elects once per poll interval */
	pr_warn("cluster: no watch on %s (%s): a takeover waits for the next poll", cl->k_planner,
		strerror(-err));
	etcd__watch_close(cl->w);
	cl->w = NULL;
}

static void watch_stop(struct cluster *cl)
{
	if (cl->w_running) {
		etcd__watch_stop(cl->w);
		pthread_join(cl->w_thread, NULL);
	}
	etcd__watch_close(cl->w);
	if (cl->w_fd >= 0)
		close(cl->w_fd);
}

int cluster__fd(struct aibld *d)
{
	return d->cl && d->cl->w_running ? d->cl->w_fd : -1;
}

void cluster__woken(struct aibld *d)
{
	__u64 v;

	if (read(d->cl->w_fd, &v, sizeof(v)) == sizeof(v))
		cluster__tick(d);
}

int cluster__init(struct aibld *d)
{
	const struct cfg_etcd *c = &d->cfg.etcd;
	struct cluster *cl;
	int err;

	d->cl = NULL;
	if (!c->endpoint[0])
		return 0;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return -ENOMEM;
	cl->ttl_s = c->lease_ttl_s;
	snprintf(cl->k_planner, sizeof(cl->k_planner), "%s/planner", c->prefix);
	snprintf(cl->k_plan, sizeof(cl->k_plan), "%s/plan", c->prefix);
	snprintf(cl->k_bal, sizeof(cl->k_bal), "%s/balancers/", c->prefix);
	snprintf(cl->k_me, sizeof(cl->k_me), "%s%s", cl->k_bal, c->name);
	snprintf(cl->reason, sizeof(cl->reason), "starting");
	cl->fenced = true;
	cl->peers = json_array();
	cl->w_fd = -1;
	cl->w_retry_ms = d->cfg.poll_interval_ms;
	err = etcd__open(c->endpoint, d->cfg.poll_timeout_ms, &cl->e);
	if (err) {
		free(cl);
		return err;
	}
	d->cl = cl;
	watch_start(d);
	err = map_build(d);
	if (err)
		return err;
	/* nothing announced until this balancer holds the plan's tables */
	if (d->cfg.bgp.include[0] && !bgp__withdraw(&d->cfg.bgp))
		cl->announced = bgp__render(NULL, 0);
	pr_info("cluster: balancer '%s' of %s at %s", c->name, c->prefix, c->endpoint);
	return 0;
}

void cluster__fini(struct aibld *d)
{
	struct cluster *cl = d->cl;

	if (!cl)
		return;
	watch_stop(cl);
	if (cl->run_pid)
		bgp_run_end(d, &d->cfg.bgp, true);
	/* withdraw first: the router moves the flows while we still forward */
	if (d->cfg.bgp.include[0] && !bgp__withdraw(&d->cfg.bgp))
		pr_info("cluster: withdrew the VIPs");
	if (cl->etcd_ok) {
		etcd__delete(cl->e, cl->k_me);
		if (cl->lease)
			etcd__lease_revoke(cl->e, cl->lease); /* the planner key goes with it */
	}
	etcd__close(cl->e);
	map_free(cl);
	free(cl->local_pins);
	plan__free(&cl->plan);
	json_decref(cl->peers);
	free(cl->announced);
	free(cl->run_text);
	free(cl->status_sent);
	free(cl);
	d->cl = NULL;
}
