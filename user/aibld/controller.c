// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The controller's core: ids that survive restarts, and the recompute that
 * turns config + node state into the maps the XDP program reads.
 *
 * Restart safety rests on ids: aibl_conns stores backend ids and the ring
 * stores them too, so a restarted aibld must give every node the id it had.
 * The names in aibl_be_meta / aibl_svc_meta are the record: at start a
 * node or service gets the id its name already has there, and only new
 * names get new ids. A node removed from the config keeps its id as a
 * draining backend ("retired"), so its established flows finish where they
 * are; its id is reused only when no never-used id is left.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "aibld.h"
#include "cluster.h"
#include "dataplane.h"
#include "log.h"
#include "maglev.h"
#include "policy.h"

static void svc_rt_free(struct svc_rt *s)
{
	free(s->table);
	free(s->applied);
	free(s->slots);
	free(s->slow);
	free(s->beyond);
	free(s->carried);
	free(s->mem_ids);
	free(s->mem_val);
}

void aibld__vip_key(const struct cfg_service *s, struct aibl_vip_key *k)
{
	memset(k, 0, sizeof(*k));
	k->addr = s->vip.addr;
	k->port = htons(s->port);
	k->proto = s->proto;
	k->family = s->vip.family;
}

/* ---- ids ---- */

struct id_record {
	char name[AIBL_NAME_LEN];
	__u32 id;
};

/* names recorded in a meta map: be_meta (backends) or svc_meta (services) */
static int read_be_names(struct aibld *d, struct id_record **out, int *n)
{
	struct id_record *r = calloc(d->max_backends, sizeof(*r));
	struct aibl_be_meta m;

	*n = 0;
	if (!r)
		return -ENOMEM;
	for (__u32 id = 0; id < d->max_backends; id++) {
		if (bpf_map_lookup_elem(d->fd_be_meta, &id, &m) || !m.valid || !m.name[0])
			continue;
		memcpy(r[*n].name, m.name, AIBL_NAME_LEN);
		r[*n].name[AIBL_NAME_LEN - 1] = 0;
		r[(*n)++].id = id;
	}
	*out = r;
	return 0;
}

/*
 * The retired node among nodes[from..n) whose id can go to a new node: its
 * flows have all ended (no open flow counted in aibl_load), the one at the
 * highest index first; -1 none. One still carrying flows would hand them
 * to the new node's address, and reset every one (the id is what the
 * connection table and the flow cache steer by).
 */
static int drained_retired(struct aibld *d, const struct node_rt *nodes, int from, int n)
{
	for (int r = n - 1; r >= from; r--) {
		struct aibl_load l;

		/* (its handshake counts age out only at its next SYN, which a
		 * retired node never gets: not looked at) */
		if (bpf_map_lookup_elem(d->fd_load, &nodes[r].id, &l) || l.active <= 0)
			return r;
	}
	return -1;
}

static int alloc_id(const bool *used, __u32 max, __u32 *id)
{
	for (__u32 i = 0; i < max; i++) {
		if (!used[i]) {
			*id = i;
			return 0;
		}
	}
	return -ENOSPC;
}

static void be_meta_write(struct aibld *d, const struct node_rt *n, const struct cfg_node *c)
{
	struct aibl_be_meta m = {.valid = 1};

	memcpy(m.name, n->name, AIBL_NAME_LEN);
	m.cfg_weight = c ? c->weight : 0;
	m.accel = c ? c->accel : AIBL_ACCEL_NONE;
	m.retired = !c;
	if (bpf_map_update_elem(d->fd_be_meta, &n->id, &m, BPF_ANY))
		pr_warn("write aibl_be_meta[%u]: %s", n->id, strerror(errno));
}

/* what a node's reports taught: unknown again */
static void node_figures_reset(struct node_rt *nn)
{
	nn->ttft_ms = nn->lat_ms = nn->lat_floor_ms = nn->slots = nn->run_ms = -1;
	nn->ran = 0;
	nn->hit_rate = -1;
	memset(nn->srv_hit, 0, sizeof(nn->srv_hit));
	policy__prefill_init(&nn->pf);
	nn->rep_active = -1;
	nn->prev_other = NAN;
	nn->ours_max = nn->ours_min = -1;
}

/*
 * A node whose agent the new config removes or moves: its last report
 * (fetched from the old agent) is forgotten, else it would stay fresh for
 * good (a TCP check's success keeps last_ok_ms new) with every figure,
 * model and hint frozen. Without an agent nothing can be loaded or unloaded
 * there either: the balancer's loads and holds end.
 */
static void node_agent_changed(struct node_rt *nn, bool removed)
{
	agent_report__free(&nn->rep);
	agent_report__init(&nn->rep);
	nn->have_rep = false;
	node_figures_reset(nn);
	nn->open_model[0] = '\0';
	if (!removed)
		return;
	memset(&nn->load, 0, sizeof(nn->load));
	nn->nheld = 0;
	nn->load_for[0] = '\0';
}

/*
 * A kept node (old, of the running config) that is another host now, or
 * one nothing checked before: it waits for a poll as a new one does. Its
 * address or agent changed, or it had nothing to poll (in no TCP service,
 * no agent) and a reload puts it in one.
 */
static bool node_unchecked_again(const struct aibld *d, const struct config *cfg, int i,
				 const struct node_rt *old)
{
	const struct cfg_node *was, *now = &cfg->nodes[i];

	if (!config__checkable(cfg, i))
		return false;
	if (old->cfg_idx < 0) /* retired, configured again: not polled since */
		return true;
	was = &d->cfg.nodes[old->cfg_idx];
	return !config__checkable(&d->cfg, old->cfg_idx) ||
	       was->address.family != now->address.family ||
	       memcmp(&was->address.addr, &now->address.addr,
		      now->address.family == AIBL_AF_INET6 ? 16 : 4) ||
	       strcmp(was->agent, now->agent);
}

/*
 * Build the node list for cfg: configured nodes first (same index as
 * cfg->nodes), then retired ones. old: the current list (state carried by
 * name) or NULL at start, when ids come from aibl_be_meta.
 */
static int build_nodes(struct aibld *d, const struct config *cfg, struct node_rt *old, int nold,
		       struct node_rt **out, int *nout, int **from_out, int *nall_out)
{
	struct id_record *rec = NULL;
	struct node_rt *nodes = NULL;
	bool *used = NULL;
	int *from = NULL; /* the old node each new one copies, -1 none */
	int nrec = 0, n = 0, nall, err;

	used = calloc(d->max_backends, sizeof(*used));
	if (!used)
		return -ENOMEM;
	if (old) {
		rec = calloc(nold ? nold : 1, sizeof(*rec));
		if (!rec) {
			err = -ENOMEM;
			goto out;
		}
		for (int i = 0; i < nold; i++) {
			memcpy(rec[i].name, old[i].name, AIBL_NAME_LEN);
			rec[i].id = old[i].id;
		}
		nrec = nold;
	} else {
		err = read_be_names(d, &rec, &nrec);
		if (err)
			goto out;
	}
	nodes = calloc(cfg->nnodes + nrec + 1, sizeof(*nodes));
	from = malloc((cfg->nnodes + nrec + 1) * sizeof(*from));
	if (!nodes || !from) {
		err = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < cfg->nnodes + nrec + 1; i++)
		from[i] = -1;
	/* the old nodes stay as they are until nothing can fail: a refused
	 * reload keeps the running state whole (their reports are only
	 * handed over at the end) */
	/* configured nodes that already have an id keep it */
	for (int i = 0; i < cfg->nnodes; i++) {
		struct node_rt *nn = &nodes[i];

		memcpy(nn->name, cfg->nodes[i].name, AIBL_NAME_LEN);
		nn->cfg_idx = i;
		nn->id = AIBL_NO_BACKEND;
		node_figures_reset(nn);
		agent_report__init(&nn->rep);
		/* a node with something to poll takes no flow before a poll
		 * answers (a mistyped address would blackhole its share for
		 * fail_after polls); a kept one keeps its state below, and a
		 * start adopts the state a previous instance left */
		nn->unchecked = config__checkable(cfg, i);
		for (int r = 0; r < nrec; r++) {
			if (strcmp(rec[r].name, nn->name))
				continue;
			if (old) {
				*nn = old[r]; /* state, report and all */
				nn->cfg_idx = i;
				from[i] = r;
				if (node_unchecked_again(d, cfg, i, &old[r]))
					nn->unchecked = true;
			}
			nn->id = rec[r].id;
			used[nn->id] = true;
			rec[r].name[0] = 0; /* taken */
			break;
		}
	}
	n = cfg->nnodes;
	/* recorded names no longer configured: retired, draining */
	for (int r = 0; r < nrec; r++) {
		struct node_rt *rn;

		if (!rec[r].name[0])
			continue;
		if (old)
			from[n] = r;
		rn = &nodes[n++];
		if (old)
			*rn = old[r];
		memcpy(rn->name, rec[r].name, AIBL_NAME_LEN);
		rn->cfg_idx = -1;
		rn->unchecked = false; /* retired: draining, not polled */
		rn->id = rec[r].id;
		rn->ttft_ms = -1;
		used[rn->id] = true;
	}
	nall = n;
	/* new names: a never-used id, else a retired one's whose flows have
	 * all ended */
	for (int i = 0; i < cfg->nnodes; i++) {
		if (nodes[i].id != AIBL_NO_BACKEND)
			continue;
		if (alloc_id(used, d->max_backends, &nodes[i].id)) {
			int r = drained_retired(d, nodes, cfg->nnodes, n);

			if (r < 0) {
				pr_err(
				    "no free backend id for node '%s': the %u ids hold configured "
				    "nodes, or retired ones whose flows have not ended: remove "
				    "nodes in one reload, add new ones in a later one once their "
				    "flows have ended (aiblctl backend list)",
				    nodes[i].name, d->max_backends);
				err = -ENOSPC;
				goto out;
			}
			/* the last retired one moves into r's place */
			if (r != n - 1) {
				struct node_rt t = nodes[r];
				int f = from[r];

				nodes[r] = nodes[n - 1];
				from[r] = from[n - 1];
				nodes[n - 1] = t;
				from[n - 1] = f;
			}
			nodes[i].id = nodes[--n].id;
			pr_info("node '%s' reuses the id of retired node '%s'", nodes[i].name,
				nodes[n].name);
		}
		used[nodes[i].id] = true;
		nodes[i].fresh_id = true;
	}
	/* done: the reports change hands in nodes_hand_over(), once nothing
	 * else of the reload can fail */
	*out = nodes;
	*nout = n;
	*from_out = from;
	*nall_out = nall;
	nodes = NULL;
	from = NULL;
	err = 0;
out:
	free(nodes);
	free(from);
	free(rec);
	free(used);
	return err;
}

/*
 * build_nodes()' new nodes take their reports from the old ones (from[k]:
 * the old node new node k copies, -1 none; n of nall kept), a retired node
 * whose id went to a new one taking its report with it. Called once nothing
 * else of the reload can fail: a refused reload keeps the running nodes'
 * reports (and their hints) whole. d->cfg is still the old configuration.
 */
static void nodes_hand_over(struct aibld *d, const struct config *cfg, struct node_rt *old,
			    struct node_rt *nodes, const int *from, int nall, int n)
{
	for (int k = 0; k < nall; k++) {
		const struct node_rt *o;
		const char *was;

		if (from[k] < 0)
			continue;
		o = &old[from[k]];
		was = o->cfg_idx >= 0 ? d->cfg.nodes[o->cfg_idx].agent : "";
		old[from[k]].have_rep = false;
		old[from[k]].rep.hints = NULL;
		if (k >= n)
			agent_report__free(&nodes[k].rep);
		else if (k < cfg->nnodes && strcmp(was, cfg->nodes[k].agent))
			node_agent_changed(&nodes[k], !cfg->nodes[k].agent[0]);
	}
}

/*
 * What a reload keeps of a service (new index i, s) that old was: the
 * weights it gave each node, by the node's name (positions change with the
 * node list), so hysteresis and the nodes that serve it (a cold start under
 * way) go on, but not where the node's configured weight changed: that is
 * the operator's word, and hysteresis would hold back a change of under
 * hysteresis_pct until a restart; and, for the same model, how long it has
 * been saturated, so that reloads (config automation) do not restart the
 * cold-start clock; and since when it has done without each node
 * (svc_rt.carried), which another service's take-back waits for.
 * The first recompute after the reload builds its table all the same
 * (svc_rt.reloaded): the weights carried over may match while the node
 * list changed.
 */
static void carry_svc_state(const struct aibld *d, const struct config *cfg, int i,
			    struct svc_rt *s, const struct svc_rt *old)
{
	const struct cfg_service *ns = &cfg->services[i], *os = &d->cfg.services[old->cfg_idx];

	/* how long its loads take: the model's own figure */
	if (!strcmp(ns->model, os->model)) {
		s->saturated_since_ms = old->saturated_since_ms;
		s->load_est_ms = old->load_est_ms;
	}
	for (int k = 0; k < ns->nnodes; k++)
		for (int m = 0; m < os->nnodes; m++) {
			const struct cfg_node *nn = &cfg->nodes[ns->nodes[k]],
					      *on = &d->cfg.nodes[os->nodes[m]];

			if (strcmp(nn->name, on->name))
				continue;
			if (nn->weight == on->weight)
				s->applied[k] = old->applied[m];
			s->slow[k] = old->slow[m];
			s->beyond[k] = old->beyond[m];
			s->carried[k] = old->carried[m];
			break;
		}
}

static int build_svcs(struct aibld *d, const struct config *cfg, struct svc_rt *old, int nold,
		      struct svc_rt **out)
{
	struct svc_rt *svcs = calloc(cfg->nservices + 1, sizeof(*svcs));
	bool *used = calloc(d->max_services, sizeof(*used)), *live = NULL;
	int *src = malloc((cfg->nservices + 1) * sizeof(*src)); /* the old one, -1 none */
	struct aibl_svc_meta m;
	struct aibl_vip_key vk;
	struct aibl_vip v;
	int err = 0;

	for (int i = 0; src && i < cfg->nservices; i++)
		src[i] = -1;
	if (!svcs || !used || !src) {
		err = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < cfg->nservices; i++) {
		struct svc_rt *s = &svcs[i];

		memcpy(s->name, cfg->services[i].name, AIBL_NAME_LEN);
		s->cfg_idx = i;
		s->id = AIBL_NO_BACKEND;
		s->reuse = true;
		s->reuse_hit = -1;
		s->need_ms = -1;
		s->load_est_ms = -1;
		s->table = malloc(AIBL_RING_SIZE * sizeof(__u32));
		s->applied = calloc(cfg->services[i].nnodes + 1, sizeof(__u32));
		s->slots = calloc(cfg->services[i].nnodes + 1, sizeof(__u32));
		s->slow = calloc(cfg->services[i].nnodes + 1, sizeof(bool));
		s->beyond = calloc(cfg->services[i].nnodes + 1, sizeof(bool));
		s->carried = calloc(cfg->services[i].nnodes + 1, sizeof(__u64));
		if (!s->table || !s->applied || !s->slots || !s->slow || !s->beyond ||
		    !s->carried) {
			err = -ENOMEM;
			goto out;
		}
		for (int j = 0; old && j < nold; j++) {
			if (strcmp(old[j].name, s->name))
				continue;
			s->id = old[j].id;
			s->half = old[j].half;
			s->have_table = old[j].have_table;
			memcpy(s->table, old[j].table, AIBL_RING_SIZE * sizeof(__u32));
			s->last_write_ms = old[j].last_write_ms;
			s->generation = old[j].generation;
			s->reuse = old[j].reuse;
			s->reuse_hit = old[j].reuse_hit;
			s->need_ms = old[j].need_ms;
			/* the member lists are shared until nothing can fail,
			 * then the old service lets go of them (below) */
			s->mem_ids = old[j].mem_ids;
			s->mem_val = old[j].mem_val;
			s->nmem = old[j].nmem;
			src[i] = j;
			carry_svc_state(d, cfg, i, s, &old[j]);
			s->reloaded = true;
			break;
		}
		if (!old) {
			for (__u32 id = 0; id < d->max_services; id++) {
				if (bpf_map_lookup_elem(d->fd_svc_meta, &id, &m) || !m.valid ||
				    strncmp(m.name, s->name, AIBL_NAME_LEN))
					continue;
				s->id = id;
				s->generation = m.generation;
				break;
			}
		}
		if (s->id != AIBL_NO_BACKEND)
			used[s->id] = true;
	}
	/*
	 * A new name takes the id its VIP reads, when that id is free (a
	 * service renamed: its VIP stays in force, write_service keeps off
	 * the half it reads). Otherwise no id a VIP in force reads: that VIP
	 * (of a renamed or removed service, rewritten or deleted later in
	 * this loop) would forward with the new service's first table, and
	 * its pins (tables__sync_pins drops them only after the recompute)
	 * would steer the new service's clients.
	 */
	live = calloc(d->max_services, sizeof(*live));
	if (!live) {
		err = -ENOMEM;
		goto out;
	}
	if (!bpf_map_get_next_key(d->fd_vips, NULL, &vk)) {
		for (;;) {
			struct aibl_vip_key next;
			int more = !bpf_map_get_next_key(d->fd_vips, &vk, &next);

			if (!bpf_map_lookup_elem(d->fd_vips, &vk, &v) && v.svc_id < d->max_services)
				live[v.svc_id] = true;
			if (!more)
				break;
			vk = next;
		}
	}
	for (int i = 0; i < cfg->nservices; i++) {
		struct svc_rt *s = &svcs[i];

		if (s->id != AIBL_NO_BACKEND)
			continue;
		aibld__vip_key(&cfg->services[i], &vk);
		if (!bpf_map_lookup_elem(d->fd_vips, &vk, &v) && v.svc_id < d->max_services &&
		    !used[v.svc_id]) {
			s->id = v.svc_id;
			used[s->id] = true;
			s->fresh_id = true;
		}
	}
	for (int i = 0; i < cfg->nservices; i++) {
		struct svc_rt *s = &svcs[i];

		if (s->id != AIBL_NO_BACKEND)
			continue;
		for (__u32 id = 0; id < d->max_services; id++)
			live[id] = live[id] || used[id];
		/* an id no VIP reads; failing that (every free one is read),
		 * any free one, as before */
		if (alloc_id(live, d->max_services, &s->id) &&
		    alloc_id(used, d->max_services, &s->id)) {
			pr_err("no free service id for '%s' (max %u)", s->name, d->max_services);
			err = -ENOSPC;
			goto out;
		}
		used[s->id] = true;
		s->fresh_id = true;
	}
	/* done: the services carried over let go of their lists */
	for (int i = 0; i < cfg->nservices; i++) {
		if (src[i] < 0)
			continue;
		old[src[i]].mem_ids = NULL;
		old[src[i]].mem_val = NULL;
	}
	*out = svcs;
	svcs = NULL;
out:
	if (svcs) {
		/* a refused reload: the running services keep their lists */
		for (int i = 0; i < cfg->nservices; i++) {
			if (src && src[i] >= 0) {
				svcs[i].mem_ids = NULL;
				svcs[i].mem_val = NULL;
			}
			svc_rt_free(&svcs[i]);
		}
		free(svcs);
	}
	free(src);
	free(used);
	free(live);
	return err;
}

/* a configured service has VIP key vk (a service renamed, or two that
 * swapped VIPs): its entry is rewritten in place by the next recompute, not
 * deleted first, which would pass its packets, established flows' too, to
 * the kernel until then */
static bool vip_configured(const struct aibld *d, const struct aibl_vip_key *vk)
{
	struct aibl_vip_key k;

	for (int i = 0; i < d->cfg.nservices; i++) {
		aibld__vip_key(&d->cfg.services[i], &k);
		if (!memcmp(&k, vk, sizeof(k)))
			return true;
	}
	return false;
}

/*
 * Services in the maps that the config does not have (any more): their
 * VIP entry, meta, members and pins go. Also a configured service whose
 * VIP key changed loses the old key.
 */
static void prune_services(struct aibld *d)
{
	struct aibl_member_key mk, next;
	struct aibl_vip_key vk;
	struct aibl_svc_meta m;
	bool *keep = calloc(d->max_services, sizeof(*keep));
	bool gone = false;
	int pos = -1, err;

	if (!keep)
		return;
	for (int i = 0; i < d->cfg.nservices; i++)
		keep[d->svcs[i].id] = true;
	for (__u32 id = 0; id < d->max_services; id++) {
		if (bpf_map_lookup_elem(d->fd_svc_meta, &id, &m) || !m.valid)
			continue;
		for (int i = 0; i < d->cfg.nservices; i++)
			if (d->svcs[i].id == id)
				pos = i;
		if (keep[id]) {
			aibld__vip_key(&d->cfg.services[pos], &vk);
			if (memcmp(&vk, &m.vip, sizeof(vk)) && !vip_configured(d, &m.vip))
				gone |= !bpf_map_delete_elem(d->fd_vips, &m.vip);
			continue;
		}
		pr_info("service '%.*s' (id %u) is no longer configured: removing its VIP",
			AIBL_NAME_LEN, m.name, id);
		if (!vip_configured(d, &m.vip))
			gone |= !bpf_map_delete_elem(d->fd_vips, &m.vip);
		memset(&m, 0, sizeof(m));
		bpf_map_update_elem(d->fd_svc_meta, &id, &m, BPF_ANY);
	}
	/* members of services that are gone; a kept service's stale members
	 * are known to it (svc_rt.mem_ids) except right after start */
	if (!bpf_map_get_next_key(d->fd_members, NULL, &mk)) {
		for (;;) {
			int more = !bpf_map_get_next_key(d->fd_members, &mk, &next);
			bool del = mk.svc_id >= d->max_services || !keep[mk.svc_id];

			for (int i = 0; !del && i < d->cfg.nservices; i++) {
				const struct cfg_service *cs = &d->cfg.services[i];

				if (d->svcs[i].id != mk.svc_id || d->svcs[i].mem_ids)
					continue;
				del = true;
				for (int k = 0; k < cs->nnodes && del; k++)
					del = d->nodes[cs->nodes[k]].id != mk.backend;
			}
			if (del)
				bpf_map_delete_elem(d->fd_members, &mk);
			if (!more)
				break;
			mk = next;
		}
	}
	free(keep);
	/* the flow cache must not keep forwarding a removed VIP's flows */
	if (gone && (err = dp__epoch_bump(d->fd_globals)))
		pr_warn("flow cache epoch: %s", strerror(-err));
}

/* node entries: backends, meta, retired ones draining */
static void write_node_meta(struct aibld *d)
{
	for (int i = 0; i < d->nnodes; i++) {
		struct node_rt *n = &d->nodes[i];

		be_meta_write(d, n, n->cfg_idx >= 0 ? &d->cfg.nodes[n->cfg_idx] : NULL);
		n->be_written = false;
	}
}

/* at start: the state a previous instance left in aibl_backends */
static void adopt_backend_state(struct aibld *d)
{
	for (int i = 0; i < d->nnodes; i++) {
		struct node_rt *n = &d->nodes[i];
		struct aibl_be_meta m;
		struct aibl_backend be;

		/* the state is the node's own: not that of a retired node
		 * whose id it took, nor the draining aibld gave a node it
		 * retired, which is configured again now */
		if (n->fresh_id || (n->cfg_idx >= 0 &&
				    !bpf_map_lookup_elem(d->fd_be_meta, &n->id, &m) && m.retired))
			continue;
		if (bpf_map_lookup_elem(d->fd_backends, &n->id, &be) ||
		    !(be.flags & AIBL_BE_F_VALID))
			continue;
		n->down = be.flags & AIBL_BE_F_DOWN;
		/* DRAINING with the UNHEALTHY mark is the agent's state, not an
		 * operator's drain (node_flags) */
		n->unhealthy = be.flags & AIBL_BE_F_UNHEALTHY && !n->down;
		n->draining = be.flags & AIBL_BE_F_DRAINING && !n->unhealthy && n->cfg_idx >= 0;
		/* an operator's drain hides whether a poll ever answered (the
		 * flags mark no pending node under a drain): a drained node
		 * waits for one again, so an undrain gives no flows to a node
		 * nothing checked. Any other state was the previous
		 * instance's verdict. */
		if (!n->draining || n->down)
			n->unchecked = false;
		n->overloaded = be.flags & AIBL_BE_F_OVERLOADED;
		if (n->down || n->unhealthy)
			pr_info("node '%s' was %s: it needs %u good polls", n->name,
				n->down ? "down" : "unhealthy", d->cfg.rise_after);
	}
}

/* at start: active halves and tables a previous instance wrote */
static void adopt_tables(struct aibld *d)
{
	for (int i = 0; i < d->cfg.nservices; i++) {
		struct svc_rt *s = &d->svcs[i];
		struct aibl_vip_key k;
		struct aibl_vip v;

		aibld__vip_key(&d->cfg.services[i], &k);
		if (bpf_map_lookup_elem(d->fd_vips, &k, &v) || v.svc_id != s->id)
			continue;
		s->half = v.ring_half & 1;
		s->have_table = !tables__read_ring(d, s->id, s->half, s->table);
	}
}

void aibld__wake(int fd)
{
	__u64 one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		pr_debug("wake: %s", strerror(errno));
}

/* a node priced in two units (policy__mixed_price()): said at each start
 * and reload, as the config allows it */
static void warn_mixed_prices(const struct config *cfg)
{
	int a, o;

	for (int i = 0; i < cfg->nnodes; i++)
		if (policy__mixed_price(cfg, i, &a, &o))
			pr_warn(
			    "node '%s' is in ai service '%s' and %s service '%s': its one p2c "
			    "price is ai's, in ms, which '%s' weighs against its other nodes' "
			    "prices in flows; give '%s' nodes of its own, or policy wrr or hash",
			    cfg->nodes[i].name, cfg->services[a].name,
			    config__policy_name(cfg->services[o].policy), cfg->services[o].name,
			    cfg->services[o].name, cfg->services[o].name);
}

/*
 * A service or node given a new id (a new or renamed one, or one that takes
 * a retired node's id) must not show the traffic of the id's last owner:
 * its Prometheus series would start at the other's totals. Its counters
 * start from zero, once the config is in force (a refused reload changes
 * nothing).
 */
static void fresh_ids_zero(struct aibld *d)
{
	for (int i = 0; i < d->cfg.nservices; i++) {
		struct svc_rt *s = &d->svcs[i];

		if (s->fresh_id && tables__traffic_zero(d, d->fd_svc_stats, s->id))
			pr_warn("service '%s': counters of id %u kept from its last owner", s->name,
				s->id);
		s->fresh_id = false;
	}
	for (int i = 0; i < d->nnodes; i++) {
		struct node_rt *n = &d->nodes[i];

		if (n->fresh_id && tables__traffic_zero(d, d->fd_be_stats, n->id))
			pr_warn("node '%s': counters of id %u kept from its last owner", n->name,
				n->id);
		n->fresh_id = false;
	}
}

int aibld__init(struct aibld *d, struct config *cfg, struct dp *dp)
{
	int err, nall, *from = NULL;

	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->load_lock, NULL);
	d->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	d->dp = dp;
	d->wake_fd = d->poll_fd = -1;
	d->start_ms = clock_mono_ms();
	err = tables__open(d);
	if (err)
		return err;
	err = build_nodes(d, &d->cfg, NULL, 0, &d->nodes, &d->nnodes, &from, &nall);
	free(from); /* no old nodes: nothing to hand over */
	if (err)
		return err;
	err = build_svcs(d, &d->cfg, NULL, 0, &d->svcs);
	if (err)
		return err;
	adopt_backend_state(d);
	adopt_tables(d);
	prune_services(d);
	write_node_meta(d);
	fresh_ids_zero(d);
	warn_mixed_prices(&d->cfg);
	err = tables__load_pins(d);
	if (err)
		pr_warn("reading existing pins: %s (they will be rewritten)", strerror(-err));
	return 0;
}

void aibld__fini(struct aibld *d)
{
	for (int i = 0; i < d->nnodes; i++)
		agent_report__free(&d->nodes[i].rep);
	free(d->nodes);
	for (int i = 0; i < d->cfg.nservices && d->svcs; i++)
		svc_rt_free(&d->svcs[i]);
	free(d->svcs);
	free(d->pins);
	tables__close(d);
	config__free(&d->cfg);
	d->nodes = NULL;
	d->svcs = NULL;
	d->pins = NULL;
}

int aibld__apply_config(struct aibld *d, struct config *cfg)
{
	struct node_rt *nodes;
	struct svc_rt *svcs;
	int nnodes, nall, *from = NULL, err;

	err = build_nodes(d, cfg, d->nodes, d->nnodes, &nodes, &nnodes, &from, &nall);
	if (err)
		return err;
	err = build_svcs(d, cfg, d->svcs, d->cfg.nservices, &svcs);
	if (err) {
		/* the new nodes only shared the running ones' reports */
		free(nodes);
		free(from);
		return err;
	}
	nodes_hand_over(d, cfg, d->nodes, nodes, from, nall, nnodes);
	free(from);
	for (int i = 0; i < d->nnodes; i++)
		agent_report__free(&d->nodes[i].rep);
	free(d->nodes);
	for (int i = 0; i < d->cfg.nservices; i++)
		svc_rt_free(&d->svcs[i]);
	free(d->svcs);
	/* ids of nodes that vanished entirely (retired id reused) are cleared
	 * by the new owner's writes; nothing else to free */
	config__free(&d->cfg);
	d->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	d->nodes = nodes;
	d->nnodes = nnodes;
	d->svcs = svcs;
	prune_services(d);
	write_node_meta(d);
	fresh_ids_zero(d);
	warn_mixed_prices(&d->cfg);
	cluster__config_changed(d);
	return 0;
}

/* ---- recompute ---- */

/* may take new flows: up, healthy, not draining */
static bool node_usable(const struct node_rt *n)
{
	return !n->down && !n->unhealthy && !n->draining && !n->unchecked;
}

void aibld__policy_node(const struct aibld *d, const struct node_rt *n, __u64 now_ms,
			struct policy_node *pn)
{
	const struct cfg_node *cn = &d->cfg.nodes[n->cfg_idx];
	__u64 stale = d->cfg.ai.stale_ms ? d->cfg.ai.stale_ms : 3ULL * d->cfg.poll_interval_ms;

	*pn = (struct policy_node){
	    .cfg = cn,
	    .usable = node_usable(n),
	    .overloaded = n->overloaded,
	    .rep = n->have_rep ? &n->rep : NULL,
	    .ttft_ms = n->ttft_ms,
	    .active = n->active,
	    .lat_ms = n->lat_ms,
	    .best_lat_ms = d->best_lat_ms,
	    .lat_floor_ms = n->lat_floor_ms,
	    .slots = nodes__slots(n),
	    .ran = n->ran,
	    .run_ms = n->run_ms,
	    .since_finish_ms = n->have_rep ? n->rep.since_finish_ms : -1,
	    .rep_active = n->rep_active,
	    .prev_other = n->prev_other,
	    .ours_max = n->ours_max,
	    .ours_min = n->ours_min,
	    .best_lat_floor_ms = d->best_lat_floor_ms,
	    .best_per_flow_ms = d->best_per_flow_ms,
	    .best_weight = d->best_weight,
	    .ref_floor_ms = n->ref_floor_ms,
	    .fleet_slots = d->fleet_slots,
	    .monitored = cn->agent[0] != 0,
	    /* a failed poll keeps the last report until the breaker opens:
	     * from then on its age says how much it is worth */
	    .fresh = n->have_rep && !n->rep.stale && n->last_ok_ms &&
		     (n->last_ok_ms >= now_ms || now_ms - n->last_ok_ms <= stale),
	};
	/* not measured yet, but its agent timed a speed probe: priced, weighed
	 * and bounded as the best measured node's floor scaled by the two
	 * probes, not explored as an equal of the best (a slow node's first
	 * sessions set the tail) nor left out */
	if (!(pn->lat_floor_ms > 0) && pn->fresh) {
		double est = policy__probe_estimate(d->best_lat_floor_ms, d->best_probe_ms,
						    n->rep.probe_ms_per_token);

		if (est > 0)
			pn->lat_ms = pn->lat_floor_ms = est;
	}
	pn->prefill_ms = policy__prefill_ms(&n->pf, d->prefill_shared);
	pn->prefill_wait_ms = n->pf.wait_ms;
	/* no prefill of its own measured yet: the fleet's reference node's,
	 * scaled by the two latency floors (its own, or its probe's estimate) */
	if (!(pn->prefill_ms > 0) && d->prefill_shared)
		pn->prefill_ms = policy__prefill_scaled(d->prefill_ref_ms, d->prefill_ref_floor_ms,
							pn->lat_floor_ms);
}

static __u8 node_flags(const struct node_rt *n)
{
	__u8 f = AIBL_BE_F_VALID;

	if (n->down)
		f |= AIBL_BE_F_DOWN;
	if (n->draining || n->cfg_idx < 0)
		f |= AIBL_BE_F_DRAINING;
	/* unhealthy: no new flows, established ones continue. Marked only
	 * when no operator drain is in force, so a restarted aibld tells the
	 * two apart (adopt_backend_state); with both, it keeps the drain and
	 * learns the agent's state again from its polls */
	else if (n->unhealthy || n->unchecked)
		f |= AIBL_BE_F_DRAINING | AIBL_BE_F_UNHEALTHY;
	if (n->overloaded)
		f |= AIBL_BE_F_OVERLOADED;
	return f;
}

__u8 aibld__be_flags(const struct node_rt *n)
{
	return node_flags(n);
}

static int cost_rank(int policy)
{
	return policy == AIBL_POL_AI	       ? 3
	       : policy == AIBL_POL_LEAST_TIME ? 2
	       : policy == AIBL_POL_LEAST_CONN ? 1
					       : 0;
}

/*
 * aibl_cost is per backend, but a node in several p2c services could be
 * priced by several policies: the most informed one wins (ai, then
 * least_time, then least_conn).
 */
static void write_nodes(struct aibld *d, const int *cost_pol)
{
	__u64 now = clock_mono_ms();

	for (int i = 0; i < d->nnodes; i++) {
		struct node_rt *n = &d->nodes[i];
		struct aibl_backend be = {};
		struct aibl_cost c = {};
		struct policy_node pn;

		if (n->cfg_idx >= 0) {
			const struct cfg_node *cn = &d->cfg.nodes[n->cfg_idx];

			be.addr = cn->address.addr;
			be.family = cn->address.family;
			memcpy(be.mac, n->mac, 6);
			aibld__policy_node(d, n, now, &pn);
			if (cost_pol[i] >= 0)
				policy__cost(&d->cfg, cost_pol[i], &pn, &c);
		} else if (!bpf_map_lookup_elem(d->fd_backends, &n->id, &be)) {
			/* retired: address as it was */
		}
		be.flags = node_flags(n);
		cluster__node_flags(d, n, &be.flags);
		cluster__node_cost(d, n, &c.cost);
		/* what was written is remembered only once written: a failed
		 * write is tried again next loop, not skipped as unchanged (a
		 * node gone down would take new flows until its next change) */
		if (!n->be_written || memcmp(&be, &n->be, sizeof(be))) {
			if (bpf_map_update_elem(d->fd_backends, &n->id, &be, BPF_ANY)) {
				pr_warn("write aibl_backends[%u]: %s", n->id, strerror(errno));
				n->be_written = false;
				continue;
			}
			n->be = be;
		}
		if (!n->be_written || memcmp(&c, &n->cost, sizeof(c))) {
			if (bpf_map_update_elem(d->fd_cost, &n->id, &c, BPF_ANY)) {
				pr_warn("write aibl_cost[%u]: %s", n->id, strerror(errno));
				n->be_written = false;
				continue;
			}
			n->cost = c;
		}
		n->be_written = true;
	}
}

/*
 * aibl_members of one service: the entries whose content changed (a new
 * table moves slot counts; unchanged members are not rewritten), in one
 * batch update (hash batches: kernel >= 5.6), element by element for
 * what a batch leaves (a full map). prev/nprev: what was written before,
 * by position.
 */
static int write_members(struct aibld *d, const struct cfg_service *cs, struct svc_rt *s,
			 const __u32 *weights, const __u32 *prev_ids,
			 const struct aibl_member *prev_val, int nprev)
{
	struct aibl_member_key *mk = malloc((cs->nnodes + 1) * sizeof(*mk));
	struct aibl_member *mv = malloc((cs->nnodes + 1) * sizeof(*mv));
	int *pos = malloc((cs->nnodes + 1) * sizeof(*pos)); /* mk[j] is member pos[j] */
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 n = 0, done;

	if (!mk || !mv || !pos) {
		free(mk);
		free(mv);
		free(pos);
		/* the lists the caller installed, as if nothing was written:
		 * the next loop's delete pass and comparison read them */
		for (int k = 0; k < cs->nnodes; k++) {
			s->mem_ids[k] = d->nodes[cs->nodes[k]].id;
			memset(&s->mem_val[k], 0xff, sizeof(s->mem_val[0]));
		}
		s->rewrite = true;
		return -ENOMEM;
	}
	for (int k = 0; k < cs->nnodes; k++) {
		struct aibl_member m = {.weight = weights[k],
					.cfg_weight = d->cfg.nodes[cs->nodes[k]].weight,
					.slots = s->slots[k]};
		__u32 id = d->nodes[cs->nodes[k]].id;

		s->mem_ids[k] = id;
		s->mem_val[k] = m;
		if (k < nprev && prev_ids[k] == id && !memcmp(&prev_val[k], &m, sizeof(m)))
			continue;
		mk[n] = (struct aibl_member_key){.svc_id = s->id, .backend = id};
		pos[n] = k;
		mv[n++] = m;
	}
	done = n;
	if (n && bpf_map_update_batch(d->fd_members, mk, mv, &done, &opts))
		for (__u32 k = done < n ? done : 0; k < n; k++)
			if (bpf_map_update_elem(d->fd_members, &mk[k], &mv[k], BPF_ANY)) {
				__atomic_fetch_add(&d->member_errors, 1, __ATOMIC_RELAXED);
				/* not written: no remembered value equals it, and
				 * the next loop writes the service again (the data
				 * plane checks a client affinity's node against
				 * its member entry's slots) */
				memset(&s->mem_val[pos[k]], 0xff, sizeof(s->mem_val[0]));
				s->rewrite = true;
			}
	free(mk);
	free(mv);
	free(pos);
	return 0;
}

bool aibld__svc_affinity(const struct aibld *d, int i)
{
	/* in cluster mode every balancer must choose alike: no balancer's own
	 * memory of its clients decides */
	return d->cfg.services[i].policy == AIBL_POL_AI && d->cfg.ai.affinity_ms &&
	       d->svcs[i].reuse && !d->cfg.etcd.endpoint[0];
}

void aibld__vip_steer(const struct aibld *d, int si, struct aibl_vip *v)
{
	const struct cfg_service *cs = &d->cfg.services[si];

	v->mode = policy__mode(cs->policy);
	v->session_key = cs->session_key;
	v->flags = cs->conntrack ? 0 : AIBL_VIP_F_NO_CONNTRACK;
	/* cache awareness is the ai policy's: a classic policy's p2c
	 * (least_conn, least_time) spreads by its counts alone */
	if (aibld__svc_affinity(d, si))
		v->flags |= AIBL_VIP_F_AFFINITY;
}

/* idx: the table as positions in the service's node list, ids: as backend ids */
static int write_service(struct aibld *d, int si, const __u32 *weights, const __u32 *idx,
			 const __u32 *ids, bool table_changed)
{
	const struct cfg_service *cs = &d->cfg.services[si];
	struct svc_rt *s = &d->svcs[si];
	struct aibl_svc_meta meta = {};
	struct aibl_vip_key vk;
	struct aibl_vip v = {}, old;
	__u8 half = s->half;
	bool bump = false, had_vip;
	int err;

	aibld__vip_key(cs, &vk);
	had_vip = !bpf_map_lookup_elem(d->fd_vips, &vk, &old);
	if (table_changed) {
		/* never the half the data plane reads: with a table of our own,
		 * the other one; without, the other one of a VIP in force under
		 * our id (a reload that renamed a service hands the new name
		 * the freed id, and the VIP reads its old table until the flip) */
		if (s->have_table)
			half = !s->half;
		else if (had_vip && old.svc_id == s->id)
			half = !(old.ring_half & 1);
		err = tables__write_ring(d, s->id, half, ids);
		if (err) {
			pr_err("service '%s': write table: %s", s->name, strerror(-err));
			return err;
		}
		__atomic_fetch_add(&d->st.table_writes, 1, __ATOMIC_RELAXED);
	}
	/* the flip: one hash update, atomic for the data plane */
	v.svc_id = s->id;
	v.ring_half = half;
	aibld__vip_steer(d, si, &v);
	/* a VIP that now names another service or stops tracking flows voids
	 * the flow cache's decisions (a table flip alone does not) */
	if (had_vip && (old.svc_id != v.svc_id || old.flags != v.flags))
		bump = true;
	/* the pre-filter bit first: the data plane passes addresses without one */
	err = dp__vip_filter_add(d->fd_filter, &vk);
	if (err) {
		pr_err("service '%s': write aibl_filter: %s", s->name, strerror(-err));
		return err;
	}
	/* an entry that holds this already is left alone: each update of a
	 * key recycles the element it replaces for the next update of any
	 * key, under a data plane that may still read it (vip_get()) */
	if ((!had_vip || memcmp(&old, &v, sizeof(v))) &&
	    bpf_map_update_elem(d->fd_vips, &vk, &v, BPF_ANY)) {
		err = -errno;
		pr_err("service '%s': write aibl_vips: %s", s->name, strerror(-err));
		return err;
	}
	if (bump && (err = dp__epoch_bump(d->fd_globals)))
		pr_warn("service '%s': flow cache epoch: %s", s->name, strerror(-err));
	/* the table in force only once flipped to: a flip that failed leaves
	 * s->table as the data plane has it, so the next recompute writes
	 * the new one again rather than find it unchanged */
	if (table_changed) {
		memcpy(s->table, ids, AIBL_RING_SIZE * sizeof(__u32));
		s->generation++;
	}
	s->half = half;
	s->have_table = true;
	s->last_write_ms = clock_mono_ms();

	memset(s->slots, 0, cs->nnodes * sizeof(__u32));
	for (__u32 slot = 0; slot < AIBL_RING_SIZE; slot++)
		if (idx[slot] != AIBL_NO_BACKEND)
			s->slots[idx[slot]]++;
	/* members written last time that are no longer the service's nodes: a
	 * delete that fails fails the write, and the lists stay as they were,
	 * so the next loop deletes it again (with its old slots, a client's
	 * affinity to a node the service no longer has would be honoured) */
	err = 0;
	for (int i = 0; i < s->nmem; i++) {
		struct aibl_member_key mk = {.svc_id = s->id, .backend = s->mem_ids[i]};
		bool still = false;

		for (int k = 0; k < cs->nnodes && !still; k++)
			still = d->nodes[cs->nodes[k]].id == s->mem_ids[i];
		if (!still && bpf_map_delete_elem(d->fd_members, &mk) && errno != ENOENT)
			err = -errno;
	}
	if (err) {
		pr_warn("delete aibl_members entries of service '%s': %s", s->name, strerror(-err));
		return err;
	}
	{
		/* the previous lists are kept until the new ones are written */
		__u32 *pids = s->mem_ids;
		struct aibl_member *pval = s->mem_val;
		int nprev = s->nmem;

		s->mem_ids = malloc((cs->nnodes + 1) * sizeof(__u32));
		s->mem_val = malloc((cs->nnodes + 1) * sizeof(*s->mem_val));
		if (!s->mem_ids || !s->mem_val) {
			free(s->mem_ids);
			free(s->mem_val);
			s->mem_ids = pids;
			s->mem_val = pval;
			return -ENOMEM;
		}
		s->nmem = cs->nnodes;
		err = write_members(d, cs, s, weights, pids, pval, pval ? nprev : 0);
		free(pids);
		free(pval);
		if (err)
			return err;
	}
	memcpy(meta.name, cs->name, AIBL_NAME_LEN);
	memcpy(meta.model, cs->model, AIBL_MODEL_LEN);
	meta.vip = vk;
	meta.valid = 1;
	meta.policy = cs->policy;
	meta.nbackends = cs->nnodes;
	meta.generation = s->generation;
	if (bpf_map_update_elem(d->fd_svc_meta, &s->id, &meta, BPF_ANY))
		pr_warn("write aibl_svc_meta: %s", strerror(errno));
	memcpy(s->applied, weights, cs->nnodes * sizeof(__u32));
	return 0;
}

struct svc_work {
	struct policy_node *in;
	struct policy_out *out;
	struct maglev_in *mg;
	__u32 *w, *idx, *ids;
};

/* ai: ask node n for a background load of the service's model */
static void load_queue(struct node_rt *n, const struct cfg_service *cs, __u64 saturated_ms,
		       __u64 now)
{
	struct node_load *l = &n->load;

	l->state = NODE_LOAD_QUEUED;
	snprintf(l->model, sizeof(l->model), "%s", cs->model);
	snprintf(l->svc, sizeof(l->svc), "%s", cs->name);
	l->since_ms = now;
	l->error[0] = '\0';
	pr_info("service '%s': every resident node saturated for %llu ms: node '%s' loads model "
		"'%s' in the background",
		cs->name, (unsigned long long)saturated_ms, n->name, cs->model);
}

/* the load l is the service's, for its model (a reload may have changed it) */
static bool load_of(const struct node_load *l, const struct cfg_service *cs)
{
	return !strcmp(l->svc, cs->name) && !strcmp(l->model, cs->model);
}

/*
 * ai: a cold start beside nodes that serve (policy_out.cold while another
 * node has weight) loads in the background. The node's agent is asked to
 * load the model (the next poll round, POST /v1/load) and the node takes
 * no flow until its report has the model resident, so no request waits
 * for a load that the resident nodes can wait out. Only once a request
 * would wait longer at the resident nodes than for the rest of the load
 * (policy__load_release: the earlier loads of the same model, on any
 * node, tell how long one takes; the model, not the node, sets most of
 * it: an adapter loads in a second, a base model in minutes) does the
 * node take its cold share, whose flows wait for the load's end. Refused,
 * or not resident after background_load_ms, it falls back to the cold
 * start: the node's flows load the model, and it is asked again that much
 * later.
 * With no node serving, the cold node's flows are the only way and it
 * keeps them. One load per node at a time: a node loading another
 * service's model takes no cold flows either. Services claim loads in the
 * order of their need (svc_rt.need_ms, aibld__recompute()). Caller holds
 * d->load_lock.
 */
static void background_loads(struct aibld *d, int si, struct svc_work *w,
			     const struct policy_svc *st, __u64 now)
{
	const struct cfg_service *cs = &d->cfg.services[si];
	struct svc_rt *s = &d->svcs[si];
	const struct cfg_ai *ai = &d->cfg.ai;
	bool others = false;
	double wait = st->res_wait_ms; /* the least a request waits at a resident node */

	s->need_ms = cs->policy == AIBL_POL_AI ? wait : -1;
	if (cs->policy != AIBL_POL_AI)
		return;
	for (int k = 0; k < cs->nnodes; k++) {
		struct node_rt *n = &d->nodes[cs->nodes[k]];
		struct node_load *l = &n->load;

		others |= w->out[k].weight && !w->out[k].cold;
		/* by the node's own recent report: one forgotten (its breaker
		 * open) falls back to the configured list, which says nothing
		 * of a load */
		if (l->state == NODE_LOAD_NONE || l->unload || !load_of(l, cs) || !w->in[k].rep ||
		    !w->in[k].fresh || policy__model_state(&w->in[k], cs->model) != MODEL_RESIDENT)
			continue;
		/* loaded beside nodes that served: taken back once they carry
		 * the service without it (take_back()) */
		nodes__held_add(n, cs->name, cs->model, now);
		aibld__bg_count(&d->st, false, BG_DONE);
		if (l->state != NODE_LOAD_REFUSED) {
			double took = (double)(now - l->since_ms);

			s->load_est_ms =
			    s->load_est_ms > 0 ? policy__ewma(s->load_est_ms, took, 0.5) : took;
			pr_info("node '%s': model '%s' resident %.0f ms after the background load "
				"was asked",
				n->name, l->model, took);
		}
		memset(l, 0, sizeof(*l));
	}
	if (!others || !ai->background_load_ms)
		return;
	/* one load at a time for the service too: the policy may name another
	 * node while the first one's model is not resident yet (its memory
	 * taken by the load, it may no longer look like the best room), and
	 * the cold start stays with the node that loads */
	for (int k = 0; k < cs->nnodes; k++) {
		const struct node_load *l = &d->nodes[cs->nodes[k]].load;

		if ((l->state != NODE_LOAD_QUEUED && l->state != NODE_LOAD_ASKED) || l->unload ||
		    !load_of(l, cs) || w->out[k].cold || !w->in[k].usable || !w->in[k].fresh)
			continue;
		policy__cold_move(w->out, cs->nnodes, k);
	}
	for (int k = 0; k < cs->nnodes; k++) {
		struct node_rt *n = &d->nodes[cs->nodes[k]];
		struct node_load *l = &n->load;

		if (!w->out[k].cold || !d->cfg.nodes[n->cfg_idx].agent[0])
			continue;
		if (l->unload) {
			/* unloading another model: no load there meanwhile */
			w->out[k].cold = false;
			w->out[k].weight = 0;
			continue;
		}
		if (l->state == NODE_LOAD_NONE ||
		    (l->state == NODE_LOAD_REFUSED && (now >= l->retry_ms || !load_of(l, cs)))) {
			/* another service's refused load holds nothing there */
			load_queue(n, cs, st->saturated_ms, now);
			aibld__bg_count(&d->st, false, BG_ASKED);
		} else if (l->state == NODE_LOAD_REFUSED) {
			continue; /* its flows load the model */
		} else if (now - l->since_ms >= ai->background_load_ms) {
			char why[NODE_ERR_LEN];

			snprintf(why, sizeof(why), "not resident %llu ms after it was asked",
				 (unsigned long long)(now - l->since_ms));
			nodes__load_refused(d, n, why);
			continue;
		} else if (l->state == NODE_LOAD_ASKED && load_of(l, cs) &&
			   policy__load_release(wait, s->load_est_ms,
						(double)(now - l->since_ms))) {
			/* the resident nodes' queue is the longer wait */
			if (!l->released)
				pr_info(
				    "service '%s': node '%s' takes flows while it loads '%s': a "
				    "request waits %.0f ms at the resident nodes, the load about "
				    "%.0f ms more",
				    cs->name, n->name, l->model, wait,
				    fmax(s->load_est_ms - (double)(now - l->since_ms), 0));
			l->released = true;
			continue;
		}
		w->out[k].weight = 0;
	}
}

/* ai: ask node n's agent to unload the model it loaded for the service */
static void unload_queue(struct node_rt *n, struct node_held *h, __u64 now)
{
	struct node_load *l = &n->load;

	memset(l, 0, sizeof(*l));
	l->state = NODE_LOAD_QUEUED;
	l->unload = true;
	snprintf(l->model, sizeof(l->model), "%s", h->model);
	snprintf(l->svc, sizeof(l->svc), "%s", h->svc);
	l->since_ms = now;
	pr_info("service '%s': its other nodes have carried its load without node '%s' for "
		"%llu ms: model '%s', which this balancer loaded there %llu ms ago, is unloaded",
		h->svc, n->name, (unsigned long long)(now - h->quiet_ms), h->model,
		(unsigned long long)(now - h->since_ms));
}

/*
 * ai: a load is a cost paid for demand beyond the resident nodes; once the
 * demand has gone, its memory is wanted elsewhere (another service's
 * background load needs room: ai_weights). A model this balancer loaded
 * beside the service's nodes (struct node_held) is taken back once those
 * nodes, as fast, have carried the service's load without it
 * (policy__others_carry: nobody waiting there, their free slots hold all
 * the node runs) for background_unload_ms without a break, and no resident
 * node has been saturated since: its agent drains it (the node takes no
 * new flow of the service from now on, its open connections end) and
 * unloads it (POST /v1/unload). Another service of the same model that
 * still wants it there holds it (nodes__model_wanted: a classic service
 * that lists the node, an ai one that has not done without the node as
 * long), and every ai service of the model drains the node for the
 * unload, as every one loses the model there. One load or unload at a
 * time per node, one unload at a time per service. Caller holds
 * d->load_lock.
 */
static void take_back(struct aibld *d, int si, struct svc_work *w, const struct policy_svc *st,
		      __u64 now)
{
	const struct cfg_service *cs = &d->cfg.services[si];
	const struct cfg_ai *ai = &d->cfg.ai;
	struct svc_rt *s = &d->svcs[si];
	bool unloading = false;
	int j;

	if (cs->policy != AIBL_POL_AI)
		return;
	/* what another service's take-back of the model asks of this one: a
	 * node it gives no share, or whose share its other nodes carry */
	for (int k = 0; k < cs->nnodes; k++) {
		if (w->out[k].weight &&
		    (st->saturated_ms || !policy__others_carry(ai, cs, w->in, k)))
			s->carried[k] = 0;
		else if (!s->carried[k])
			s->carried[k] = now;
	}
	/* one unload at a time for the service: until a node's report says
	 * its model is on the way out, it still looks as if it carried its
	 * share, and two held nodes would each vouch for the other */
	for (int k = 0; k < cs->nnodes; k++) {
		const struct node_load *l = &d->nodes[cs->nodes[k]].load;

		unloading |= l->unload && l->state != NODE_LOAD_NONE && !strcmp(l->svc, cs->name);
	}
	for (int k = 0; k < cs->nnodes; k++) {
		struct node_rt *n = &d->nodes[cs->nodes[k]];
		struct node_load *l = &n->load;
		struct node_held *h = nodes__held(n, cs->name, cs->model);

		if (l->unload && l->state != NODE_LOAD_NONE && !strcmp(l->model, cs->model)) {
			/* drained: no new flow of the model there */
			w->out[k].weight = 0;
			w->out[k].cold = false;
			continue;
		}
		if (!h)
			continue;
		if (w->in[k].fresh && policy__model_state(&w->in[k], cs->model) != MODEL_RESIDENT) {
			/* gone (an operator's unload, an eviction): not ours now */
			nodes__held_drop(n, h);
			continue;
		}
		if (!ai->background_unload_ms || l->state != NODE_LOAD_NONE || st->saturated_ms ||
		    !d->cfg.nodes[n->cfg_idx].agent[0] || !policy__others_carry(ai, cs, w->in, k)) {
			h->quiet_ms = 0;
			h->wanted_by[0] = '\0';
			continue;
		}
		if (!h->quiet_ms)
			h->quiet_ms = now;
		if (now - h->quiet_ms < ai->background_unload_ms || now < h->retry_ms || unloading)
			continue;
		j = nodes__model_wanted(d, si, n, cs->model, now);
		if (j >= 0) {
			if (strcmp(h->wanted_by, d->cfg.services[j].name))
				pr_info(
				    "service '%s': model '%s', which this balancer loaded on node "
				    "'%s', stays while service '%s' still wants it there",
				    cs->name, cs->model, n->name, d->cfg.services[j].name);
			snprintf(h->wanted_by, sizeof(h->wanted_by), "%s", d->cfg.services[j].name);
			continue;
		}
		h->wanted_by[0] = '\0';
		unload_queue(n, h, now);
		unloading = true;
		aibld__bg_count(&d->st, true, BG_ASKED);
		w->out[k].weight = 0;
		w->out[k].cold = false;
	}
}

static int recompute_service(struct aibld *d, int si, bool force, struct svc_work *w, __u64 now)
{
	const struct cfg_service *cs = &d->cfg.services[si];
	struct svc_rt *s = &d->svcs[si];
	bool members_changed = false, weights_changed = false, table_changed;
	bool resident = false, all_saturated = true, reuse, flag_changed = false;
	struct policy_svc st = {};
	double hit = 0;
	int err, nhit = 0;

	for (int k = 0; k < cs->nnodes; k++) {
		const struct node_rt *n = &d->nodes[cs->nodes[k]];
		struct policy_node *p = &w->in[k];
		double h;

		aibld__policy_node(d, n, now, p);
		p->serving = s->have_table && s->applied[k];
		p->loading_other = n->load_for[0] && strcmp(n->load_for, cs->name);
		/* the nodes that may serve it: one of another accelerator, or
		 * of weight 0, never takes its flows, so is never saturated */
		if (cs->policy != AIBL_POL_AI || !p->usable || !p->fresh ||
		    !config__may_serve(cs, p->cfg) ||
		    policy__model_state(p, cs->model) != MODEL_RESIDENT)
			continue;
		resident = true;
		if (!p->overloaded && !policy__saturated(&d->cfg.ai, p->rep))
			all_saturated = false;
		/* the engine that serves this model, not the node's others */
		h = nodes__model_hit(n, cs->model);
		if (h >= 0) {
			hit += h;
			nhit++;
		}
	}
	/* client affinity where prompts find their prefixes (policy__reuse) */
	s->reuse_hit = nhit ? hit / nhit : -1;
	reuse = policy__reuse(s->reuse, s->reuse_hit, nhit);
	if (reuse != s->reuse) {
		pr_info(
		    "service '%s': %.1f %% of prompt tokens found cached by its model's engines: "
		    "client affinity %s",
		    s->name, 100 * s->reuse_hit, reuse ? "on" : "off");
		s->reuse = reuse;
		flag_changed = true; /* the VIP's, write_service() */
	}
	if (!resident || !all_saturated)
		s->saturated_since_ms = 0;
	else if (!s->saturated_since_ms)
		s->saturated_since_ms = now;
	st.saturated_ms = s->saturated_since_ms ? now - s->saturated_since_ms : 0;
	err = policy__weights(&d->cfg, cs, &st, w->in, w->out);
	if (err)
		return err;
	pthread_mutex_lock(&d->load_lock);
	background_loads(d, si, w, &st, now);
	take_back(d, si, w, &st, now);
	pthread_mutex_unlock(&d->load_lock);
	for (int k = 0; k < cs->nnodes; k++) {
		s->slow[k] = w->out[k].slow;
		s->beyond[k] = w->out[k].beyond;
	}
	for (int k = 0; k < cs->nnodes; k++)
		w->w[k] =
		    policy__hysteresis(s->applied[k], w->out[k].weight, d->cfg.hysteresis_pct);
	/* cluster mode: these are the planner's proposal, the plan's weights rule */
	cluster__weights(d, si, w->w);
	for (int k = 0; k < cs->nnodes; k++) {
		__u32 a = s->applied[k];

		if (!w->w[k] != !a)
			members_changed = true;
		else if (w->w[k] != a)
			weights_changed = true;
	}
	if (!force && s->have_table && !members_changed && !flag_changed && !s->reloaded &&
	    !s->rewrite) {
		if (!weights_changed)
			return 0;
		/* weight drift alone waits for the rewrite interval */
		if (now - s->last_write_ms < d->cfg.min_rewrite_interval_ms)
			return 0;
	}
	for (int k = 0; k < cs->nnodes; k++) {
		w->mg[k].name = d->nodes[cs->nodes[k]].name;
		w->mg[k].weight = w->w[k];
	}
	err = maglev__build(w->mg, cs->nnodes, cluster__hash_seed(d), w->idx, AIBL_RING_SIZE);
	if (err)
		return err;
	for (__u32 slot = 0; slot < AIBL_RING_SIZE; slot++)
		w->ids[slot] = w->idx[slot] == AIBL_NO_BACKEND
				   ? AIBL_NO_BACKEND
				   : d->nodes[cs->nodes[w->idx[slot]]].id;
	table_changed =
	    force || !s->have_table || memcmp(w->ids, s->table, AIBL_RING_SIZE * sizeof(__u32));
	if (!table_changed)
		__atomic_fetch_add(&d->st.table_skips, 1, __ATOMIC_RELAXED);
	s->rewrite = false;
	err = write_service(d, si, w->w, w->idx, w->ids, table_changed);
	/* a write that failed is tried again at the next loop, whatever
	 * started it (a flag or a forced rewrite is not seen again) */
	if (!err)
		s->reloaded = false;
	else
		s->rewrite = true;
	return err;
}

static int work_alloc(struct svc_work *w, int maxn)
{
	w->in = calloc(maxn, sizeof(*w->in));
	w->out = calloc(maxn, sizeof(*w->out));
	w->mg = calloc(maxn, sizeof(*w->mg));
	w->w = calloc(maxn, sizeof(*w->w));
	w->idx = malloc(AIBL_RING_SIZE * sizeof(__u32));
	w->ids = malloc(AIBL_RING_SIZE * sizeof(__u32));
	return w->in && w->out && w->mg && w->w && w->idx && w->ids ? 0 : -ENOMEM;
}

static void work_free(struct svc_work *w)
{
	free(w->in);
	free(w->out);
	free(w->mg);
	free(w->w);
	free(w->idx);
	free(w->ids);
}

/*
 * Services are independent (own table half, own members, own meta), so
 * they are built and written by a few threads that take the next service
 * index in turn; map writes are safe from several threads.
 */
struct rc_worker {
	struct aibld *d;
	bool force;
	__u64 now;
	const int *order; /* service indexes, in the order they are taken */
	int *next;
	int maxn;
	int err;
	pthread_t tid;
};

static void *rc_worker_run(void *arg)
{
	struct rc_worker *rw = arg;
	struct svc_work w = {};
	int i;

	rw->err = work_alloc(&w, rw->maxn);
	if (rw->err) {
		work_free(&w);
		return NULL;
	}
	/* a service whose write failed (tried again at the next loop) does
	 * not hold back the others */
	while ((i = __atomic_fetch_add(rw->next, 1, __ATOMIC_RELAXED)) < rw->d->cfg.nservices) {
		int e;

		i = rw->order[i];
		e = recompute_service(rw->d, i, rw->force, &w, rw->now);

		if (e) {
			pr_warn("service '%s': %s", rw->d->svcs[i].name, strerror(-e));
			if (!rw->err)
				rw->err = e;
		}
	}
	work_free(&w);
	return NULL;
}

/*
 * ai's references from the whole fleet: the lowest latency estimate, the
 * node with the lowest latency floor (its floor, configured weight and ms
 * per queued flow price a node not measured yet) and the fleet's slots.
 * From the usable nodes with a report that the config still lists: a node
 * removed from it keeps its last report while its flows drain, unpolled,
 * and has no configured weight, so as the best node it would have priced
 * a node not measured yet with no handicap for a lower weight (a CPU node
 * as fast as the GPU node gone).
 */
void aibld__fleet_update(struct aibld *d, __u64 now_ms)
{
	const struct node_rt *best = NULL;

	d->best_lat_ms = d->best_lat_floor_ms = d->best_per_flow_ms = -1;
	d->best_weight = 0;
	d->best_probe_ms = -1;
	d->fleet_slots = 0;
	d->prefill_shared = false;
	d->prefill_ref_ms = d->prefill_ref_floor_ms = -1;
	for (int i = 0; i < d->nnodes; i++) {
		const struct node_rt *n = &d->nodes[i];
		double prompt_ms;

		/* an engine's property: a node down or draining still says
		 * what the fleet's engine does */
		if (n->cfg_idx >= 0)
			d->prefill_shared |= n->pf.shared;
		if (n->cfg_idx < 0 || !node_usable(n) || !n->have_rep)
			continue;
		/* the fastest node whose prompts' compute is measured */
		prompt_ms = policy__prefill_ms(&n->pf, true);
		if (n->lat_floor_ms > 0 && prompt_ms > 0 &&
		    (d->prefill_ref_floor_ms < 0 || n->lat_floor_ms < d->prefill_ref_floor_ms)) {
			d->prefill_ref_floor_ms = n->lat_floor_ms;
			d->prefill_ref_ms = prompt_ms;
		}
		if (n->lat_ms > 0 && (d->best_lat_ms < 0 || n->lat_ms < d->best_lat_ms))
			d->best_lat_ms = n->lat_ms;
		if (n->lat_floor_ms > 0 && (!best || n->lat_floor_ms < best->lat_floor_ms))
			best = n;
		policy__fleet_slots_add(&d->fleet_slots, nodes__slots(n), n->ran);
	}
	if (best) {
		struct policy_node pn;

		aibld__policy_node(d, best, now_ms, &pn);
		d->best_lat_floor_ms = best->lat_floor_ms;
		d->best_weight = pn.cfg->weight;
		d->best_per_flow_ms = policy__per_flow_ms(&pn);
		d->best_probe_ms = best->rep.probe_ms_per_token;
	}
	/* slower than what: a node beside the nodes that serve its sessions'
	 * model, not beside one that serves another, smaller model (a 70B
	 * model's nodes all slower than an 8B one's, their sessions' pins
	 * yielded to each other's free slot by the noise in their floors) */
	for (int s = 0; s < d->cfg.nservices; s++) {
		const struct cfg_service *cs = &d->cfg.services[s];
		double *best_s = &d->svcs[s].best_floor_ms;

		*best_s = -1;
		if (cs->policy != AIBL_POL_AI)
			continue;
		for (int k = 0; k < cs->nnodes; k++) {
			const struct node_rt *n = &d->nodes[cs->nodes[k]];
			struct policy_node pn = {.cfg = &d->cfg.nodes[cs->nodes[k]],
						 .rep = &n->rep};

			if (n->cfg_idx < 0 || !node_usable(n) || !n->have_rep ||
			    !(n->lat_floor_ms > 0) ||
			    policy__model_state(&pn, cs->model) != MODEL_RESIDENT)
				continue;
			if (*best_s < 0 || n->lat_floor_ms < *best_s)
				*best_s = n->lat_floor_ms;
		}
	}
	for (int i = 0; i < d->nnodes; i++)
		d->nodes[i].ref_floor_ms = -1;
	for (int s = 0; s < d->cfg.nservices; s++) {
		const struct cfg_service *cs = &d->cfg.services[s];

		for (int k = 0; k < cs->nnodes && d->svcs[s].best_floor_ms > 0; k++) {
			double *ref = &d->nodes[cs->nodes[k]].ref_floor_ms;

			if (*ref < d->svcs[s].best_floor_ms)
				*ref = d->svcs[s].best_floor_ms;
		}
	}
	for (int i = 0; i < d->nnodes; i++)
		if (d->nodes[i].ref_floor_ms < 0)
			d->nodes[i].ref_floor_ms = d->best_lat_floor_ms;
}

#define RC_MAX_THREADS 8

/* a service's need, what svc_order() sorts by: unknown (< 0) as -1 */
static double svc_need(const struct svc_rt *s)
{
	return s->need_ms >= 0 ? s->need_ms : -1;
}

/* the longest wait first; none known last; ties in config order */
static int svc_need_cmp(const void *a, const void *b, void *arg)
{
	const struct svc_rt *svcs = arg;
	int x = *(const int *)a, y = *(const int *)b;
	double nx = svc_need(&svcs[x]), ny = svc_need(&svcs[y]);

	if (nx != ny)
		return nx > ny ? -1 : 1;
	return x - y;
}

/*
 * The order services are recomputed in. Where two services' background
 * loads want one node's room, the one taken first claims it (one load per
 * node): the service whose requests waited longest at the nodes that serve
 * it goes first. With several threads the order is that of their start.
 */
static int *svc_order(const struct aibld *d)
{
	int *order = calloc(d->cfg.nservices + 1, sizeof(*order));

	if (!order)
		return NULL;
	for (int i = 0; i < d->cfg.nservices; i++)
		order[i] = i;
	qsort_r(order, d->cfg.nservices, sizeof(*order), svc_need_cmp, d->svcs);
	return order;
}

int aibld__recompute(struct aibld *d, bool force)
{
	struct rc_worker rw[RC_MAX_THREADS] = {};
	int maxn = 1, err = 0, *cost_pol, next = 0, nthr;
	__u64 t0 = clock_mono_ns(), now = t0 / 1000000;
	struct pin_ent *want = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nwant = 0, *order;

	force |= d->force_next;
	d->force_next = false;
	for (int i = 0; i < d->cfg.nservices; i++)
		if (d->cfg.services[i].nnodes > maxn)
			maxn = d->cfg.services[i].nnodes;
	cost_pol = malloc(sizeof(int) * (d->nnodes + 1));
	order = svc_order(d);
	if (!cost_pol || !order) {
		free(cost_pol);
		free(order);
		return -ENOMEM;
	}
	tables__read_counters(d);

	/* bounded load: decided per node from its latest report */
	for (int i = 0; i < d->nnodes; i++) {
		struct node_rt *n = &d->nodes[i];
		bool lost = n->have_rep && policy__gpu_lost(&n->rep);

		if (lost != n->gpu_lost)
			pr_warn("node '%s': %s", n->name,
				lost ? "its agent reports a GPU lost or in need of a reset: no new "
				       "flows while other nodes can take them, no model loads"
				     : "no GPU reported lost any more");
		n->gpu_lost = lost;
		n->overloaded =
		    !n->down && !n->unhealthy &&
		    policy__overloaded(&d->cfg.ai, n->have_rep ? &n->rep : NULL, n->overloaded);
		cost_pol[i] = -1;
		nodes__load_check(d, n, now);
		snprintf(n->load_for, sizeof(n->load_for), "%s",
			 n->load.state == NODE_LOAD_QUEUED || n->load.state == NODE_LOAD_ASKED
			     ? n->load.svc
			     : "");
	}
	aibld__fleet_update(d, now);
	for (int i = 0; i < d->cfg.nservices; i++) {
		const struct cfg_service *cs = &d->cfg.services[i];

		for (int k = 0; k < cs->nnodes; k++)
			if (cost_rank(cs->policy) >
			    (cost_pol[cs->nodes[k]] < 0 ? 0 : cost_rank(cost_pol[cs->nodes[k]])))
				cost_pol[cs->nodes[k]] = cs->policy;
	}
	/* backend flags first: a node going down stops taking flows at once,
	 * before its slots are rewritten */
	write_nodes(d, cost_pol);

	/* a thread per CPU when there is enough to share, at least 8 services each */
	nthr = d->cfg.nservices / 8;
	if (nthr > ncpu)
		nthr = ncpu;
	if (nthr > RC_MAX_THREADS)
		nthr = RC_MAX_THREADS;
	if (nthr < 1)
		nthr = 1;
	for (int t = 0; t < nthr; t++) {
		rw[t] = (struct rc_worker){.d = d,
					   .force = force,
					   .now = now,
					   .order = order,
					   .next = &next,
					   .maxn = maxn};
		if (t && pthread_create(&rw[t].tid, NULL, rc_worker_run, &rw[t])) {
			nthr = t;
			break;
		}
	}
	rc_worker_run(&rw[0]);
	for (int t = 0; t < nthr; t++) {
		if (t)
			pthread_join(rw[t].tid, NULL);
		if (rw[t].err && !err)
			err = rw[t].err;
	}
	d->st.member_errors += d->member_errors;
	if (d->member_errors) {
		/* one line per recompute, not one per entry: the map is full */
		pr_warn("aibl_members: %u entries not written (map full?), tried again next loop; "
			"until then aiblctl does not show them and client affinity to those "
			"nodes is not checked against them",
			d->member_errors);
		d->member_errors = 0;
	}
	if (!nodes__build_pins(d, &want, &nwant)) {
		cluster__pins(d, &want, &nwant);
		tables__sync_pins(d, want, nwant);
		free(want);
	}
	d->st.recompute_ms = (clock_mono_ns() - t0) / 1e6;
	free(cost_pol);
	free(order);
	return err;
}

int aibld__write_globals(struct aibld *d)
{
	const struct config *c = &d->cfg;
	struct aibl_globals g = {};

	g.fwd_mode = c->fwd_mode;
	g.flags = c->icmp_too_big ? AIBL_G_F_TOOBIG_ICMP : 0;
	g.mtu = c->mtu;
	g.ifindex = d->ifindex;
	g.src4 = c->tunnel_source4.family ? c->tunnel_source4.addr.v4 : d->if_addr4.v4;
	g.src4_mask =
	    c->tunnel_source_hash_bits ? htonl((1U << c->tunnel_source_hash_bits) - 1) : 0;
	memcpy(g.src6, c->tunnel_source6.family ? c->tunnel_source6.addr.v6 : d->if_addr6.v6, 16);
	memcpy(g.gw_mac, c->gateway_mac.set ? c->gateway_mac.b : d->gw_mac, 6);
	memcpy(g.if_mac, d->if_mac, 6);
	g.hash_seed = cluster__hash_seed(d); /* the plan's in a group */
	g.max_conn_rate = c->max_conn_rate;
	/* read by ai services only (AIBL_VIP_F_AFFINITY) */
	g.affinity_ms = c->ai.affinity_ms;
	g.affinity_spill_ms = c->ai.pin_spill_ms;
	if (c->max_conn_rate == CFG_CONN_RATE_AUTO) {
		__u32 per_cpu = d->dp->sizes.max_conns / (d->ncpus > 0 ? d->ncpus : 1);

		g.max_conn_rate = per_cpu / CFG_CONN_RATE_REFILL_S;
		if (g.max_conn_rate < CFG_CONN_RATE_MIN)
			g.max_conn_rate = CFG_CONN_RATE_MIN;
	}
	/* pre-filters (include/aibl.h): built from the maps before the data
	 * plane trusts them, then kept current where aibl_vips / aibl_pins
	 * are written; one that cannot be built stays off */
	if (!dp__vip_filter_rebuild(d->fd_filter, d->fd_vips))
		g.flags |= AIBL_G_F_VIP_FILTER;
	if (!dp__pin_filter_rebuild(d->fd_filter, d->fd_pins))
		g.flags |= AIBL_G_F_PIN_FILTER;
	if (c->flow_cache)
		g.flags |= AIBL_G_F_FLOW_CACHE;
	if (c->etcd.endpoint[0])
		g.flags |= AIBL_G_F_CLUSTER;
	return dp__globals_write_fd(d->fd_globals, &g);
}
