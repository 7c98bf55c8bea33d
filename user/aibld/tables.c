// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Map access for the controller: file descriptors, the ring (the bulk of
 * every write), pins and the counters it reads back.
 *
 * The ring is written one service half at a time. When aibl_ring is
 * BPF_F_MMAPABLE the half is stored straight into the mapping; otherwise one
 * bpf_map_update_batch per half (kernel >= 5.6), or element by element
 * where batches are refused. The half written is never the one the
 * data plane reads: the caller flips aibl_vip.ring_half only afterwards.
 * A reader that fetched the old ring_half just before the flip finishes
 * its lookup in microseconds, while that half is next rewritten no sooner
 * than one controller loop later (min_rewrite_interval_ms for weight
 * changes), so no packet ever sees a half-written table.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "aibld.h"
#include "dataplane.h"
#include "log.h"

/*
 * An mmapable array lays its elements out at round_up(value_size, 8): the
 * __u32 ids sit 8 bytes apart, in the low half of each (little or big
 * endian alike, the value is the first 4 bytes of its element).
 */
#define RING_STRIDE 2 /* __u32 words per element */

static size_t ring_bytes(const struct aibld *d)
{
	size_t sz = (size_t)d->max_services * 2 * AIBL_RING_SIZE * RING_STRIDE * sizeof(__u32);
	long pg = sysconf(_SC_PAGESIZE);

	return (sz + pg - 1) / pg * pg;
}

int tables__open(struct aibld *d)
{
	static const struct {
		const char *name;
		size_t off;
	} maps[] = {
#define M(n, f) {n, offsetof(struct aibld, f)}
	    M(AIBL_MAP_VIPS, fd_vips),		 M(AIBL_MAP_BACKENDS, fd_backends),
	    M(AIBL_MAP_RING, fd_ring),		 M(AIBL_MAP_COST, fd_cost),
	    M(AIBL_MAP_LOAD, fd_load),		 M(AIBL_MAP_PINS, fd_pins),
	    M(AIBL_MAP_MEMBERS, fd_members),	 M(AIBL_MAP_STATS, fd_stats),
	    M(AIBL_MAP_SVC_STATS, fd_svc_stats), M(AIBL_MAP_BE_STATS, fd_be_stats),
	    M(AIBL_MAP_SVC_META, fd_svc_meta),	 M(AIBL_MAP_BE_META, fd_be_meta),
	    M(AIBL_MAP_GLOBALS, fd_globals),	 M(AIBL_MAP_FILTER, fd_filter),
#undef M
	};
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int err;

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		int fd = dp__map_fd(d->dp, maps[i].name);

		if (fd < 0) {
			pr_err("data plane has no map %s", maps[i].name);
			return -ENOENT;
		}
		*(int *)((char *)d + maps[i].off) = fd;
	}
	d->ncpus = libbpf_num_possible_cpus();
	if (d->ncpus < 1)
		return d->ncpus ? d->ncpus : -EINVAL;
	d->max_backends = d->dp->sizes.max_backends;
	d->max_services = d->dp->sizes.max_services;
	d->max_pins = d->dp->sizes.max_pins;
	if (d->max_backends > AIBL_MAX_BACKENDS)
		d->max_backends = AIBL_MAX_BACKENDS;
	if (d->max_services > AIBL_MAX_SERVICES)
		d->max_services = AIBL_MAX_SERVICES;

	if (bpf_obj_get_info_by_fd(d->fd_ring, &info, &len)) {
		err = -errno;
		pr_err("inspect aibl_ring: %s", strerror(-err));
		return err;
	}
	if (info.max_entries < (__u64)d->max_services * 2 * AIBL_RING_SIZE) {
		pr_err("aibl_ring holds %u entries, %u services need %llu", info.max_entries,
		       d->max_services, (unsigned long long)d->max_services * 2 * AIBL_RING_SIZE);
		return -EINVAL;
	}
	if (info.map_flags & BPF_F_MMAPABLE) {
		void *p =
		    mmap(NULL, ring_bytes(d), PROT_READ | PROT_WRITE, MAP_SHARED, d->fd_ring, 0);

		if (p == MAP_FAILED)
			pr_warn("mmap aibl_ring: %s; writing it by syscall", strerror(errno));
		else
			d->ring_mmap = p;
	}
	d->batch_ok = true;
	pr_debug("aibl_ring written by %s", d->ring_mmap ? "mmap" : "batch update");
	return 0;
}

void tables__close(struct aibld *d)
{
	if (d->ring_mmap)
		munmap(d->ring_mmap, ring_bytes(d));
	d->ring_mmap = NULL;
}

int tables__write_ring(struct aibld *d, __u32 svc_id, __u8 half, const __u32 *ids)
{
	__u32 base = AIBL_RING_INDEX(svc_id, half, 0), n = AIBL_RING_SIZE, *keys;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	int err = 0;

	if (d->ring_mmap) {
		__u32 *p = d->ring_mmap + (size_t)base * RING_STRIDE;

		for (__u32 i = 0; i < n; i++)
			p[i * RING_STRIDE] = ids[i];
		/* the flip that follows is a syscall: a full barrier */
		return 0;
	}
	keys = malloc(n * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (__u32 i = 0; i < n; i++)
		keys[i] = base + i;
	if (d->batch_ok) {
		__u32 count = n;

		if (!bpf_map_update_batch(d->fd_ring, keys, ids, &count, &opts))
			goto out;
		err = -errno;
		if (err != -EINVAL && err != -EOPNOTSUPP && err != -524 /* ENOTSUPP */)
			goto out;
		pr_info("batch updates refused (%s): writing aibl_ring element by element",
			strerror(-err));
		d->batch_ok = false;
		err = 0;
	}
	for (__u32 i = 0; i < n; i++) {
		if (bpf_map_update_elem(d->fd_ring, &keys[i], &ids[i], BPF_ANY)) {
			err = -errno;
			break;
		}
	}
out:
	free(keys);
	return err;
}

int tables__read_ring(struct aibld *d, __u32 svc_id, __u8 half, __u32 *ids)
{
	__u32 base = AIBL_RING_INDEX(svc_id, half, 0);

	if (d->ring_mmap) {
		const __u32 *p = d->ring_mmap + (size_t)base * RING_STRIDE;

		for (__u32 i = 0; i < AIBL_RING_SIZE; i++)
			ids[i] = p[i * RING_STRIDE];
		return 0;
	}
	for (__u32 i = 0; i < AIBL_RING_SIZE; i++) {
		__u32 k = base + i;

		if (bpf_map_lookup_elem(d->fd_ring, &k, &ids[i]))
			return -errno;
	}
	return 0;
}

/* ---- pins: the map mirrors d->pins (sorted by key) ---- */

static int pin_key_cmp(const struct pin_ent *a, const struct pin_ent *b)
{
	return memcmp(&a->key, &b->key, sizeof(a->key));
}

static int pin_qsort_cmp(const void *a, const void *b)
{
	return pin_key_cmp(a, b);
}

int tables__load_pins(struct aibld *d)
{
	struct aibl_pin_key k, next;
	struct pin_ent *arr = NULL;
	int n = 0, cap = 0, more;

	free(d->pins);
	d->pins = NULL;
	d->npins = 0;
	if (bpf_map_get_next_key(d->fd_pins, NULL, &k))
		return 0;
	do {
		more = !bpf_map_get_next_key(d->fd_pins, &k, &next);
		if (n == cap) {
			struct pin_ent *na;

			cap = cap ? cap * 2 : 256;
			na = realloc(arr, cap * sizeof(*arr));
			if (!na) {
				free(arr);
				return -ENOMEM;
			}
			arr = na;
		}
		memset(&arr[n], 0, sizeof(arr[n]));
		arr[n].key = k;
		if (!bpf_map_lookup_elem(d->fd_pins, &k, &arr[n].val))
			n++;
		k = next;
	} while (more);
	qsort(arr, n, sizeof(*arr), pin_qsort_cmp);
	d->pins = arr;
	d->npins = n;
	return 0;
}

/* aibl_filter[AIBL_FILTER_PIN] from the pins in a and b (see aibl.h) */
static void tables__pin_filter(struct aibld *d, const struct pin_ent *a, int na,
			       const struct pin_ent *b, int nb)
{
	static struct aibl_filter f;

	memset(&f, 0, sizeof(f));
	for (int i = 0; i < na; i++)
		dp__filter_add_pin(&f, &a[i].key);
	for (int i = 0; i < nb; i++)
		dp__filter_add_pin(&f, &b[i].key);
	dp__filter_write(d->fd_filter, AIBL_FILTER_PIN, &f);
}

/*
 * Merge the wanted set into the map: delete what is no longer wanted,
 * write what is new, moved to another backend, or whose expiry moved by
 * more than a quarter of its remaining life (capped at 5 s) so steady
 * hints do not cause a write per pin per poll.
 */
int tables__sync_pins(struct aibld *d, struct pin_ent *want, int nwant)
{
	__u64 now = clock_mono_ns();
	int i = 0, j = 0, n = 0, err = 0;
	struct pin_ent *keep;
	bool *left;

	/* the new mirror, in key order as the walk goes: what the map holds */
	keep = malloc((d->npins + nwant + 1) * sizeof(*keep));
	left = calloc(d->npins + 1, sizeof(*left));
	if (!keep || !left) {
		free(keep);
		free(left);
		return -ENOMEM;
	}
	/* the pin pre-filter covers old and new pins while the map changes */
	tables__pin_filter(d, d->pins, d->npins, want, nwant);
	/* what is no longer wanted goes first: a full map takes a new pin
	 * only once the ones it replaces are out (in key order, a new key
	 * below a retiring one met a full map, and was lost until the next
	 * sync) */
	for (i = 0, j = 0; i < d->npins; i++) {
		while (j < nwant && pin_key_cmp(&want[j], &d->pins[i]) < 0)
			j++;
		if (j < nwant && !pin_key_cmp(&want[j], &d->pins[i]))
			continue;
		/* still in the map after a failed delete: kept in the mirror,
		 * so the next sync deletes it */
		if (bpf_map_delete_elem(d->fd_pins, &d->pins[i].key) && errno != ENOENT) {
			err = -errno;
			left[i] = true;
		}
	}
	i = j = 0;
	while (i < d->npins || j < nwant) {
		int c = i == d->npins ? 1 : j == nwant ? -1 : pin_key_cmp(&d->pins[i], &want[j]);
		const struct pin_ent *old = NULL;

		if (c < 0) {
			if (left[i])
				keep[n++] = d->pins[i];
			i++;
			continue;
		}
		if (c == 0) {
			const struct aibl_pin *o = &d->pins[i].val, *nv = &want[j].val;
			__u64 left = nv->expires_ns > now ? nv->expires_ns - now : 0;
			__u64 slack = left / 4 < 5000000000ULL ? left / 4 : 5000000000ULL;
			__u64 diff = o->expires_ns > nv->expires_ns
					 ? o->expires_ns - nv->expires_ns
					 : nv->expires_ns - o->expires_ns;

			if (o->backend == nv->backend && o->spill_ms == nv->spill_ms &&
			    o->flags == nv->flags && diff <= slack) {
				want[j].val = *o;
				keep[n++] = want[j];
				i++;
				j++;
				continue;
			}
			old = &d->pins[i];
			i++;
		}
		if (bpf_map_update_elem(d->fd_pins, &want[j].key, &want[j].val, BPF_ANY)) {
			err = -errno;
			pr_warn("write aibl_pins: %s", strerror(-err));
			/* the map holds what it held: the old entry (written
			 * again, or deleted, at the next sync), or nothing */
			if (old)
				keep[n++] = *old;
			j++;
			continue;
		}
		keep[n++] = want[j];
		j++;
	}
	free(left);
	free(d->pins);
	d->pins = keep;
	d->npins = n;
	/* then exactly what the map holds (after an error: the superset stays) */
	if (!err)
		tables__pin_filter(d, d->pins, d->npins, NULL, 0);
	return err;
}

/* ---- counters read back for status and metrics ---- */

int tables__traffic_zero(struct aibld *d, int fd, __u32 id)
{
	struct aibl_traffic *v = calloc(d->ncpus, sizeof(*v));
	int err = 0;

	if (!v)
		return -ENOMEM;
	if (fd >= 0 && bpf_map_update_elem(fd, &id, v, BPF_ANY))
		err = -errno;
	free(v);
	return err;
}

/* a read that fails keeps the last sums: a counter that dropped to 0 and
 * came back would read as two resets to Prometheus' rate() */
static void sum_traffic(struct aibld *d, int fd, __u32 key, struct aibl_traffic *out)
{
	struct aibl_traffic *v = calloc(d->ncpus, sizeof(*v));

	if (!v)
		return;
	if (!bpf_map_lookup_elem(fd, &key, v)) {
		memset(out, 0, sizeof(*out));
		for (int c = 0; c < d->ncpus; c++) {
			out->packets += v[c].packets;
			out->bytes += v[c].bytes;
			out->new_flows += v[c].new_flows;
			out->pin_hits += v[c].pin_hits;
		}
	}
	free(v);
}

void tables__read_node(struct aibld *d, struct node_rt *n)
{
	struct aibl_load l;

	/* no data plane (a unit test): the counts as they are */
	if (d->fd_load < 0 || d->fd_be_stats < 0)
		return;
	sum_traffic(d, d->fd_be_stats, n->id, &n->traffic);
	if (!bpf_map_lookup_elem(d->fd_load, &n->id, &l))
		n->active = l.active;
}

/* ---- connections of a model a node's agent drains ---- */

/* a node's count (tables__count_open): the model its agent drains ("" none),
 * its open connections, counted or not */
struct open_count {
	char model[AR_MODEL_LEN];
	long flows;
	bool ok;
	bool walk; /* its connections are counted in the table's walk */
};

struct open_walk {
	const struct aibld *d;
	int *node_of; /* backend id -> index in d->nodes, -1 none counted */
	struct open_count *oc;
};

/* an open TCP connection to a draining node on a service of its model */
static void open_one(const struct aibl_flow_key *k, const struct aibl_conn *c, void *ud)
{
	const struct open_walk *w = ud;
	const struct config *cfg = &w->d->cfg;
	struct open_count *oc;

	if (k->proto != IPPROTO_TCP || (c->flags & AIBL_CONN_F_CLOSING) ||
	    c->backend >= w->d->max_backends || w->node_of[c->backend] < 0)
		return;
	oc = &w->oc[w->node_of[c->backend]];
	for (int i = 0; i < cfg->nservices; i++) {
		const struct cfg_service *s = &cfg->services[i];

		if (s->proto != IPPROTO_TCP || s->vip.family != k->family ||
		    (s->port && htons(s->port) != k->dport) ||
		    memcmp(&s->vip.addr, &k->dst, sizeof(k->dst)) || strcmp(s->model, oc->model))
			continue;
		oc->flows++;
		return;
	}
}

/* whether node i still has a share of a table of model's services: its
 * connections are no count to state yet (in cluster mode the plan that
 * drops it may come a round after the report) */
static bool in_model_tables(const struct aibld *d, int i, const char *model)
{
	for (int si = 0; si < d->cfg.nservices; si++) {
		const struct cfg_service *cs = &d->cfg.services[si];
		const struct svc_rt *s = &d->svcs[si];

		if (strcmp(cs->model, model) || !s->have_table || !s->slots)
			continue;
		for (int k = 0; k < cs->nnodes; k++)
			if (cs->nodes[k] == i && s->slots[k])
				return true;
	}
	return false;
}

void tables__count_open(struct aibld *d)
{
	int fd = d->dp ? dp__map_fd(d->dp, AIBL_MAP_CONNS) : -1, err = 0, todo = 0;
	struct open_count *oc = calloc(d->nnodes ? d->nnodes : 1, sizeof(*oc));
	struct open_walk w = {.d = d, .oc = oc};

	/* counted on the controller thread, which alone writes the reports;
	 * stored under the lock, as the API reads them */
	if (!oc) {
		pr_warn("counting the connections of a draining model: %s", strerror(ENOMEM));
		return;
	}
	for (int i = 0; i < d->nnodes; i++) {
		const struct node_rt *n = &d->nodes[i];
		const char *m = n->have_rep ? agent_report__unloading(&n->rep) : NULL;

		snprintf(oc[i].model, sizeof(oc[i].model), "%s", m ? m : "");
		oc[i].ok = !m;
		if (!m || n->id >= d->max_backends)
			continue;
		if (in_model_tables(d, i, m)) {
			/* not yet: nothing to count, stated where it could be */
			oc[i].flows = -1;
			oc[i].ok = fd >= 0;
		} else {
			oc[i].walk = true;
			todo++;
		}
	}
	if (todo) {
		w.node_of = malloc(d->max_backends * sizeof(*w.node_of));
		err = w.node_of ? 0 : -ENOMEM;
		for (__u32 id = 0; !err && id < d->max_backends; id++)
			w.node_of[id] = -1;
		for (int i = 0; !err && i < d->nnodes; i++)
			if (oc[i].walk)
				w.node_of[d->nodes[i].id] = i;
		if (!err)
			err = fd < 0 ? fd : dp__conns_walk(fd, open_one, &w);
		if (err)
			pr_warn("counting the connections of a draining model: %s", strerror(-err));
		for (int i = 0; i < d->nnodes; i++)
			if (oc[i].walk)
				oc[i].ok = !err;
		free(w.node_of);
	}
	pthread_mutex_lock(&d->lock);
	for (int i = 0; i < d->nnodes; i++) {
		struct node_rt *n = &d->nodes[i];

		memcpy(n->open_model, oc[i].model, sizeof(n->open_model));
		n->open_flows = oc[i].flows;
		n->open_ok = oc[i].ok;
	}
	pthread_mutex_unlock(&d->lock);
	free(oc);
}

/* how often the active-flow counts are set from the connection table */
#define RECONCILE_INTERVAL_MS 10000

int tables__read_counters(struct aibld *d)
{
	__u64 now = clock_mono_ns() / 1000000;

	if (now - d->reconcile_ms >= RECONCILE_INTERVAL_MS) {
		int fd = dp__map_fd(d->dp, AIBL_MAP_CONNS);
		int n = fd < 0 ? fd : dp__load_reconcile(fd, d->fd_load, d->max_backends);

		d->reconcile_ms = now;
		if (n < 0)
			pr_warn("active-flow reconcile: %s", strerror(-n));
		else if (n)
			pr_debug("active-flow reconcile: %d backend counts corrected", n);
	}
	for (int i = 0; i < d->nnodes; i++)
		tables__read_node(d, &d->nodes[i]);
	for (int i = 0; i < d->cfg.nservices; i++)
		sum_traffic(d, d->fd_svc_stats, d->svcs[i].id, &d->svcs[i].traffic);
	return 0;
}
