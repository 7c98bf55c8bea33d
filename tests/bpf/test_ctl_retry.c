// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibld's table writer when a map write fails: a backend's flags and a
 * service's member entries not written (or not deleted) are written (or
 * deleted) at the next recompute, not remembered as written; and a reload the controller refuses
 * keeps the running nodes' reports; a renamed service's first table goes into the half the data
 * plane does not read; a service or node given a freed id starts its counters from zero. The real
 * maps (loaded, not attached, pinned under a private bpffs dir); the failures come from a read-only
 * fd of the map put in place of aibld's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "test.h"
#include "xdp_env.h"
#include "addr.h"
#include "../../user/aibld/aibld.h"
#include "../../user/aibld/dataplane.h"

/* two nodes, one wrr service over both */
static int two_nodes(struct config *cfg)
{
	struct cfg_service *c;

	config__defaults(cfg);
	snprintf(cfg->interface, sizeof(cfg->interface), "lo");
	cfg->nodes = calloc(2, sizeof(*cfg->nodes));
	cfg->services = calloc(1, sizeof(*cfg->services));
	if (!cfg->nodes || !cfg->services)
		return -ENOMEM;
	cfg->nnodes = 2;
	cfg->nservices = 1;
	for (int i = 0; i < 2; i++) {
		struct cfg_node *n = &cfg->nodes[i];

		snprintf(n->name, sizeof(n->name), "n%d", i + 1);
		snprintf(n->address.text, sizeof(n->address.text), "10.1.0.%d", i + 1);
		aibl_addr__parse(n->address.text, &n->address.addr, &n->address.family);
		n->accel = AIBL_ACCEL_GPU;
		n->weight = i ? 300 : 100;
	}
	c = &cfg->services[0];
	snprintf(c->name, sizeof(c->name), "web");
	snprintf(c->vip.text, sizeof(c->vip.text), "10.200.0.1");
	aibl_addr__parse(c->vip.text, &c->vip.addr, &c->vip.family);
	c->port = 8000;
	c->proto = 6;
	c->accel = -1;
	c->policy = AIBL_POL_WRR;
	c->conntrack = true;
	c->nnodes = 2;
	c->nodes = malloc(2 * sizeof(int));
	if (!c->nodes)
		return -ENOMEM;
	c->nodes[0] = 0;
	c->nodes[1] = 1;
	return 0;
}

/* what a poll round in which every node answered does: the nodes a start
 * or reload made pending (new ones) take flows from here (aibld polls
 * once before its first recompute; these tests do not poll) */
static void answered(struct aibld *d)
{
	for (int i = 0; i < d->nnodes; i++)
		if (d->nodes[i].cfg_idx >= 0 && d->nodes[i].unchecked)
			nodes__poll_ok(d, &d->nodes[i], NULL);
}

/* aibld with cfg over fresh maps pinned under a private dir (o: the
 * maps' sizes, NULL the defaults), after a first forced recompute */
static bool ctl_up(struct aibld *d, struct config *cfg, struct dp **dp, char *dir, size_t len,
		   struct dp_opts *o)
{
	struct dp_opts def = {};

	if (!o)
		o = &def;
	snprintf(dir, len, "/sys/fs/bpf/aibl-t-cr-%d", getpid());
	dp__teardown(dir);
	o->pin_dir = dir;
	return ASSERT_OK(dp__open_load(o, dp), "load") &&
	       ASSERT_OK(aibld__init(d, cfg, *dp), "init") && (answered(d), true) &&
	       ASSERT_OK(aibld__recompute(d, true), "first recompute");
}

/* maps for a few services and backends, the rest small */
static struct dp_opts small_maps(__u32 services, __u32 backends)
{
	return (struct dp_opts){.sizes = {.max_services = services,
					  .max_backends = backends,
					  .max_conns = 4096,
					  .max_pins = 64,
					  .max_members = 64}};
}

static void ctl_down(struct aibld *d, struct config *cfg, struct dp *dp, const char *dir)
{
	if (d->nodes)
		aibld__fini(d);
	else
		config__free(cfg);
	dp__close(dp);
	if (dir[0])
		dp__teardown(dir);
}

static __u8 flags_of(struct aibld *d, __u32 id, int fd)
{
	struct aibl_backend be = {};

	bpf_map_lookup_elem(fd, &id, &be);
	return be.flags;
}

static __u32 member_weight(struct aibld *d, int node, int fd)
{
	struct aibl_member_key k = {.svc_id = d->svcs[0].id, .backend = d->nodes[node].id};
	struct aibl_member m = {};

	bpf_map_lookup_elem(fd, &k, &m);
	return m.weight;
}

static void failed_writes_retried(void)
{
	struct aibld d = {};
	struct config cfg;
	struct dp *dp = NULL;
	char dir[64] = "";
	int rw, ro;
	__u32 w;

	if (!test__can_bpf())
		return SKIP("needs root");
	if (!ASSERT_OK(two_nodes(&cfg), "config") || !ctl_up(&d, &cfg, &dp, dir, sizeof(dir), NULL))
		goto out;
	ASSERT_EQ(flags_of(&d, d.nodes[0].id, d.fd_backends) & AIBL_BE_F_DOWN, 0, "n1 up");

	/* n1 goes down while aibl_backends cannot be written */
	rw = d.fd_backends;
	ro = xe_map_rdonly(rw);
	if (!ASSERT_GE(ro, 0, "read-only fd"))
		goto out;
	d.fd_backends = ro;
	d.nodes[0].down = true;
	aibld__recompute(&d, false);
	ASSERT_EQ(flags_of(&d, d.nodes[0].id, rw) & AIBL_BE_F_DOWN, 0, "the write failed");
	d.fd_backends = rw;
	close(ro);
	ASSERT_OK(aibld__recompute(&d, false), "recompute, nothing else changed");
	ASSERT_EQ(flags_of(&d, d.nodes[0].id, rw) & AIBL_BE_F_DOWN, AIBL_BE_F_DOWN,
		  "written at the next recompute");
	d.nodes[0].down = false;
	aibld__recompute(&d, false);

	/* n2's weight changes while aibl_members cannot be written */
	w = member_weight(&d, 1, d.fd_members);
	rw = d.fd_members;
	ro = xe_map_rdonly(rw);
	if (!ASSERT_GE(ro, 0, "read-only fd"))
		goto out;
	d.fd_members = ro;
	d.cfg.nodes[1].weight = 100;
	aibld__recompute(&d, true);
	ASSERT_EQ(member_weight(&d, 1, rw), w, "the member write failed");
	d.fd_members = rw;
	close(ro);
	ASSERT_OK(aibld__recompute(&d, false), "recompute, nothing else changed");
	ASSERT_NEQ(member_weight(&d, 1, rw), w, "written at the next recompute");
	printf("  n2's member weight %u, then %u\n", w, member_weight(&d, 1, rw));

	/* a reload takes n2 out of the service while its member entry cannot
	 * be deleted: deleted at the next recompute */
	{
		struct aibl_member_key k = {.svc_id = d.svcs[0].id, .backend = d.nodes[1].id};
		struct aibl_member m;
		struct config one;

		if (!ASSERT_OK(two_nodes(&one), "config without n2"))
			goto out;
		one.services[0].nnodes = 1;
		if (!ASSERT_OK(aibld__apply_config(&d, &one), "reload")) {
			config__free(&one);
			goto out;
		}
		ro = xe_map_rdonly(rw);
		if (!ASSERT_GE(ro, 0, "read-only fd"))
			goto out;
		d.fd_members = ro;
		ASSERT_ERR(aibld__recompute(&d, false), "the delete fails");
		ASSERT_OK(bpf_map_lookup_elem(rw, &k, &m), "n2's entry still there");
		d.fd_members = rw;
		close(ro);
		ASSERT_OK(aibld__recompute(&d, false), "recompute, nothing else changed");
		ASSERT_ERR(bpf_map_lookup_elem(rw, &k, &m), "n2's entry deleted");
	}
out:
	ctl_down(&d, &cfg, dp, dir);
}

/* the config of two_nodes() with a second wrr service over both, web2 */
static int two_services(struct config *cfg)
{
	struct cfg_service *sv;
	int err = two_nodes(cfg);

	if (err)
		return err;
	sv = realloc(cfg->services, 2 * sizeof(*sv));
	if (!sv)
		return -ENOMEM;
	cfg->services = sv;
	sv[1] = sv[0];
	sv[1].nodes = NULL;
	cfg->nservices = 2;
	snprintf(sv[1].name, sizeof(sv[1].name), "web2");
	aibl_addr__parse("10.200.0.2", &sv[1].vip.addr, &sv[1].vip.family);
	sv[1].nodes = malloc(2 * sizeof(int));
	if (!sv[1].nodes)
		return -ENOMEM;
	sv[1].nodes[0] = 0;
	sv[1].nodes[1] = 1;
	return 0;
}

/* a reload refused by the controller (no free service id: the maps hold
 * one service) keeps the running nodes' reports and their hints */
static void refused_reload_keeps_reports(void)
{
	struct dp_opts o = small_maps(1, 64);
	struct aibld d = {};
	struct config cfg, more;
	struct dp *dp = NULL;
	char dir[64] = "";

	if (!test__can_bpf())
		return SKIP("needs root");
	memset(&more, 0, sizeof(more));
	if (!ASSERT_OK(two_nodes(&cfg), "config") || !ctl_up(&d, &cfg, &dp, dir, sizeof(dir), &o))
		goto out;
	/* n1 has reported: a queue and one cache hint */
	d.nodes[0].have_rep = true;
	d.nodes[0].rep.queue_depth = 3;
	d.nodes[0].rep.hints = calloc(1, sizeof(*d.nodes[0].rep.hints));
	d.nodes[0].rep.nhints = d.nodes[0].rep.hints ? 1 : 0;

	/* the same nodes and a second service: no id for it */
	if (!ASSERT_OK(two_services(&more), "second config"))
		goto out;
	ASSERT_EQ(aibld__apply_config(&d, &more), -ENOSPC, "refused: no free service id");
	ASSERT_TRUE(d.nodes[0].have_rep && d.nodes[0].rep.queue_depth == 3, "n1's report kept");
	ASSERT_TRUE(d.nodes[0].rep.nhints == 1 && d.nodes[0].rep.hints, "and its hint");
	ASSERT_EQ(d.cfg.nservices, 1, "the running config kept");
	ASSERT_OK(aibld__recompute(&d, false), "recompute after the refusal");
out:
	config__free(&more);
	ctl_down(&d, &cfg, dp, dir);
}

/* one service's failed write does not hold back the others' */
/*
 * A reload that puts another host behind a kept name (its address changed),
 * or a node nothing polled before into a TCP service, makes it pending as
 * a new node is; a node as it was keeps its state, and one the reload
 * retires is not pending (it is draining, not polled).
 */
static void reload_pending(void)
{
	struct dp_opts o = small_maps(1, 64);
	struct aibld d = {};
	struct config cfg, next;
	struct dp *dp = NULL;
	char dir[64] = "";

	if (!test__can_bpf())
		return SKIP("needs root");
	memset(&next, 0, sizeof(next));
	if (!ASSERT_OK(two_nodes(&cfg), "config") || !ctl_up(&d, &cfg, &dp, dir, sizeof(dir), &o))
		goto out;
	ASSERT_FALSE(d.nodes[0].unchecked || d.nodes[1].unchecked, "both answered");
	/* n2 at another address */
	if (!ASSERT_OK(two_nodes(&next), "next config"))
		goto out;
	snprintf(next.nodes[1].address.text, sizeof(next.nodes[1].address.text), "10.1.0.9");
	aibl_addr__parse("10.1.0.9", &next.nodes[1].address.addr, &next.nodes[1].address.family);
	if (!ASSERT_OK(aibld__apply_config(&d, &next), "reload, n2 moved"))
		goto out;
	ASSERT_FALSE(d.nodes[0].unchecked, "n1 as it was: its state kept");
	ASSERT_TRUE(d.nodes[1].unchecked, "n2, another host now: pending");
	ASSERT_OK(aibld__recompute(&d, false), "recompute");
	ASSERT_TRUE(flags_of(&d, d.nodes[1].id, d.fd_backends) & AIBL_BE_F_DRAINING,
		    "no new flows to n2 before a poll answers");
	nodes__poll_ok(&d, &d.nodes[1], NULL);
	/* n2 out of the config while pending: retired, not pending */
	d.nodes[1].unchecked = true;
	if (!ASSERT_OK(two_nodes(&next), "config without n2"))
		goto out;
	next.nnodes = 1;
	next.services[0].nnodes = 1;
	if (!ASSERT_OK(aibld__apply_config(&d, &next), "reload without n2"))
		goto out;
	ASSERT_TRUE(d.nnodes == 2 && d.nodes[1].cfg_idx < 0, "n2 retired");
	ASSERT_FALSE(d.nodes[1].unchecked, "a retired node is not pending");
	ASSERT_STREQ(aibld__node_state(&d.nodes[1]), "draining", "it drains");
out:
	ctl_down(&d, &cfg, dp, dir);
}

/*
 * A node drained while pending (no poll ever answered), then a restart: the
 * maps say only "draining" (a drain marks no pending node), so the new
 * instance took it for a checked one, and an undrain gave it flows before
 * any poll answered. It waits for a poll again; a drained node's restart
 * does not make a down one pending.
 */
static void restart_drained_pending(void)
{
	struct aibld d = {}, d2 = {};
	struct config cfg, cfg2;
	struct dp *dp = NULL;
	char dir[64] = "";

	if (!test__can_bpf())
		return SKIP("needs root");
	memset(&cfg2, 0, sizeof(cfg2));
	if (!ASSERT_OK(two_nodes(&cfg), "config") || !ctl_up(&d, &cfg, &dp, dir, sizeof(dir), NULL))
		goto out;
	d.nodes[1].unchecked = true; /* n2: no poll answered yet */
	if (!ASSERT_OK(nodes__set_drain(&d, "n2", true), "drain n2") ||
	    !ASSERT_OK(aibld__recompute(&d, true), "recompute"))
		goto out;
	aibld__fini(&d);
	/* the restart, over the same maps */
	if (!ASSERT_OK(two_nodes(&cfg2), "config again") ||
	    !ASSERT_OK(aibld__init(&d2, &cfg2, dp), "init again"))
		goto out2;
	ASSERT_TRUE(d2.nodes[1].draining, "the drain kept");
	ASSERT_TRUE(d2.nodes[1].unchecked, "n2 waits for a poll");
	ASSERT_FALSE(d2.nodes[0].unchecked, "n1, checked and up: its state adopted");
	if (!ASSERT_OK(nodes__set_drain(&d2, "n2", false), "undrain n2") ||
	    !ASSERT_OK(aibld__recompute(&d2, true), "recompute again"))
		goto out2;
	ASSERT_STREQ(aibld__node_state(&d2.nodes[1]), "pending", "pending");
	ASSERT_TRUE(flags_of(&d2, d2.nodes[1].id, d2.fd_backends) & AIBL_BE_F_DRAINING,
		    "no new flows to n2 before a poll answers");
	ASSERT_EQ(member_weight(&d2, 1, d2.fd_members), 0, "no weight in the table");
	nodes__poll_ok(&d2, &d2.nodes[1], NULL);
	ASSERT_OK(aibld__recompute(&d2, true), "recompute after its poll");
	ASSERT_FALSE(flags_of(&d2, d2.nodes[1].id, d2.fd_backends) & AIBL_BE_F_DRAINING,
		     "new flows once its poll answered");
out2:
	ctl_down(&d2, &cfg2, dp, dir);
	return;
out:
	ctl_down(&d, &cfg, dp, dir);
}

/* pins for clients 10.9.0.FIRST .. FIRST+N-1 of the service, to n1 */
static void pins_range(struct aibld *d, struct pin_ent *w, int first, int n)
{
	char ip[32];

	memset(w, 0, n * sizeof(*w));
	for (int k = 0; k < n; k++) {
		snprintf(ip, sizeof(ip), "10.9.0.%d", first + k);
		w[k].key.svc_id = d->svcs[0].id;
		aibl_addr__parse(ip, &w[k].key.client, &w[k].key.family);
		w[k].val.backend = d->nodes[0].id;
		w[k].val.expires_ns = clock_mono_ns() + 60000000000ULL;
	}
}

/*
 * A full pin map takes a new pin whose key sorts below the one it
 * replaces: the stale one is deleted first. Before, the new key met the
 * full map (E2BIG) and was lost until the next sync.
 */
static void pins_full_map(void)
{
	struct dp_opts o = small_maps(1, 64);
	struct aibl_pin v;
	struct pin_ent w[4];
	struct aibld d = {};
	struct config cfg;
	struct dp *dp = NULL;
	char dir[64] = "";

	if (!test__can_bpf())
		return SKIP("needs root");
	o.sizes.max_pins = 4;
	if (!ASSERT_OK(two_nodes(&cfg), "config") || !ctl_up(&d, &cfg, &dp, dir, sizeof(dir), &o))
		goto out;
	pins_range(&d, w, 2, 4);
	if (!ASSERT_OK(tables__sync_pins(&d, w, 4), "clients 2..5: the map full"))
		goto out;
	pins_range(&d, w, 1, 4);
	ASSERT_OK(tables__sync_pins(&d, w, 4), "clients 1..4: 5 out, 1 in");
	ASSERT_OK(bpf_map_lookup_elem(d.fd_pins, &w[0].key, &v), "client 1 pinned");
	ASSERT_EQ(d.npins, 4, "the mirror holds four");
out:
	ctl_down(&d, &cfg, dp, dir);
}

static void one_failure_not_others(void)
{
	struct aibld d = {};
	struct config cfg, next;
	struct dp *dp = NULL;
	char dir[64] = "";
	int rw, ro;

	if (!test__can_bpf())
		return SKIP("needs root");
	memset(&next, 0, sizeof(next));
	if (!ASSERT_OK(two_services(&cfg), "config") ||
	    !ctl_up(&d, &cfg, &dp, dir, sizeof(dir), NULL))
		goto out;
	ASSERT_EQ(d.svcs[1].applied[1], 300, "web2: n2 at 300");
	/* web loses n2 (a member entry to delete), web2's n2 goes to 100 */
	if (!ASSERT_OK(two_services(&next), "next config"))
		goto out;
	next.services[0].nnodes = 1;
	next.nodes[1].weight = 100;
	if (!ASSERT_OK(aibld__apply_config(&d, &next), "reload"))
		goto out;
	answered(&d);
	rw = d.fd_members;
	ro = xe_map_rdonly(rw);
	if (!ASSERT_GE(ro, 0, "read-only fd"))
		goto out;
	d.fd_members = ro;
	ASSERT_ERR(aibld__recompute(&d, false), "web's delete fails");
	ASSERT_EQ(d.svcs[1].applied[1], 100, "web2 written all the same");
	d.fd_members = rw;
	close(ro);
	ASSERT_OK(aibld__recompute(&d, false), "then both");
out:
	config__free(&next);
	ctl_down(&d, &cfg, dp, dir);
}

/* the half of the ring that the data plane reads for service 0's VIP */
static __u8 vip_half(struct aibld *d)
{
	const struct cfg_service *cs = &d->cfg.services[0];
	struct aibl_vip_key k = {.addr = cs->vip.addr,
				 .port = htons(cs->port),
				 .proto = cs->proto,
				 .family = cs->vip.family};
	struct aibl_vip v = {.ring_half = 0xff};

	bpf_map_lookup_elem(d->fd_vips, &k, &v);
	return v.ring_half;
}

/* aibld up with two_nodes() (its service "web"), and the table web's VIP
 * reads: the service's id, the VIP's half and that half's ring */
static bool ctl_up_web(struct aibld *d, struct config *cfg, struct dp **dp, char *dir, size_t len,
		       __u32 *id, __u8 *h, __u32 *ring)
{
	if (!ASSERT_OK(two_nodes(cfg), "config") || !ctl_up(d, cfg, dp, dir, len, NULL))
		return false;
	*id = d->svcs[0].id;
	*h = vip_half(d);
	return ASSERT_TRUE(*h < 2, "the VIP's half") &&
	       ASSERT_OK(tables__read_ring(d, *id, *h, ring), "the table in force");
}

/* a reload that renames a service hands the new name the freed id while
 * the VIP, kept in place, still reads the old name's table: the first
 * table of the new name goes into the other half, never the one read */
static void renamed_service_other_half(void)
{
	__u32 *before = malloc(AIBL_RING_SIZE * sizeof(__u32)),
	      *after = malloc(AIBL_RING_SIZE * sizeof(__u32));
	struct aibld d = {};
	struct config cfg, next;
	struct dp *dp = NULL;
	char dir[64] = "";
	__u32 id;
	__u8 h;

	if (!test__can_bpf())
		return SKIP("needs root");
	memset(&next, 0, sizeof(next));
	if (!ASSERT_TRUE(before && after, "alloc") ||
	    !ctl_up_web(&d, &cfg, &dp, dir, sizeof(dir), &id, &h, before))
		goto out;
	/* renamed, and n1 at the weight of n2: another table */
	if (!ASSERT_OK(two_nodes(&next), "renamed config"))
		goto out;
	snprintf(next.services[0].name, sizeof(next.services[0].name), "web-new");
	next.nodes[0].weight = 300;
	if (!ASSERT_OK(aibld__apply_config(&d, &next), "reload"))
		goto out;
	answered(&d);
	if (!ASSERT_EQ(d.svcs[0].id, id, "the new name has the freed id"))
		goto out;
	ASSERT_OK(aibld__recompute(&d, false), "recompute");
	ASSERT_EQ(vip_half(&d), !h, "the VIP flipped to the other half");
	ASSERT_OK(tables__read_ring(&d, id, h, after), "the old half");
	ASSERT_EQ(memcmp(before, after, AIBL_RING_SIZE * sizeof(__u32)), 0,
		  "the half read before the flip untouched");
	ASSERT_OK(tables__read_ring(&d, id, !h, after), "the new half");
	ASSERT_NEQ(memcmp(before, after, AIBL_RING_SIZE * sizeof(__u32)), 0,
		   "the new table in the other half");
out:
	free(before);
	free(after);
	config__free(&next);
	ctl_down(&d, &cfg, dp, dir);
}

/* a reload that adds a service (listed first) and renames the old one: the
 * new name takes the id its VIP reads, the new service another one, so no
 * VIP in force ever reads a table that is not its own service's */
static void new_service_off_live_ids(void)
{
	__u32 *before = malloc(AIBL_RING_SIZE * sizeof(__u32)),
	      *after = malloc(AIBL_RING_SIZE * sizeof(__u32));
	struct aibld d = {};
	struct config cfg, next;
	struct cfg_service *sv;
	struct dp *dp = NULL;
	char dir[64] = "";
	__u32 id;
	__u8 h;

	if (!test__can_bpf())
		return SKIP("needs root");
	memset(&next, 0, sizeof(next));
	if (!ASSERT_TRUE(before && after, "alloc") ||
	    !ctl_up_web(&d, &cfg, &dp, dir, sizeof(dir), &id, &h, before))
		goto out;
	/* [other on a new VIP, only n1; web-new on web's VIP] */
	if (!ASSERT_OK(two_nodes(&next), "next config"))
		goto out;
	sv = realloc(next.services, 2 * sizeof(*sv));
	if (!ASSERT_TRUE(sv != NULL, "alloc"))
		goto out;
	next.services = sv;
	next.nservices = 2;
	sv[1] = sv[0];
	snprintf(sv[1].name, sizeof(sv[1].name), "web-new");
	sv[0].nodes = malloc(sizeof(int));
	if (!ASSERT_TRUE(sv[0].nodes != NULL, "alloc"))
		goto out;
	sv[0].nodes[0] = 0;
	sv[0].nnodes = 1;
	snprintf(sv[0].name, sizeof(sv[0].name), "other");
	snprintf(sv[0].vip.text, sizeof(sv[0].vip.text), "10.200.0.9");
	aibl_addr__parse(sv[0].vip.text, &sv[0].vip.addr, &sv[0].vip.family);
	if (!ASSERT_OK(aibld__apply_config(&d, &next), "reload"))
		goto out;
	answered(&d);
	ASSERT_EQ(d.svcs[1].id, id, "the renamed service has its VIP's id");
	ASSERT_NEQ(d.svcs[0].id, id, "the new service another one");
	ASSERT_OK(aibld__recompute(&d, false), "recompute");
	ASSERT_OK(tables__read_ring(&d, id, h, after), "the half web's VIP read");
	ASSERT_EQ(memcmp(before, after, AIBL_RING_SIZE * sizeof(__u32)), 0,
		  "the half read before the flip untouched");
out:
	free(before);
	free(after);
	config__free(&next);
	ctl_down(&d, &cfg, dp, dir);
}

/* a node retired by a reload (aibld drains it out) and configured again
 * by a restart starts afresh, not drained for good as if by an operator;
 * an operator's drain of another node survives the restart */
static void retired_node_back_after_restart(void)
{
	struct aibld d = {}, d2 = {};
	struct config cfg, next, again;
	struct dp *dp = NULL;
	char dir[64] = "";
	__u32 id2;

	if (!test__can_bpf())
		return SKIP("needs root");
	memset(&next, 0, sizeof(next));
	memset(&again, 0, sizeof(again));
	if (!ASSERT_OK(two_nodes(&cfg), "config") || !ctl_up(&d, &cfg, &dp, dir, sizeof(dir), NULL))
		goto out;
	id2 = d.nodes[1].id;
	/* n2 out of the config: retired, draining */
	if (!ASSERT_OK(two_nodes(&next), "next config"))
		goto out;
	next.nnodes = 1;
	next.services[0].nnodes = 1;
	if (!ASSERT_OK(aibld__apply_config(&d, &next), "reload without n2") ||
	    !ASSERT_OK(nodes__set_drain(&d, "n1", true), "operator drains n1") ||
	    !ASSERT_OK(aibld__recompute(&d, true), "recompute"))
		goto out;
	ASSERT_TRUE(flags_of(&d, id2, d.fd_backends) & AIBL_BE_F_DRAINING, "n2 draining out");
	/* restart with n2 back */
	aibld__fini(&d);
	memset(&d, 0, sizeof(d));
	if (!ASSERT_OK(two_nodes(&again), "config again") ||
	    !ASSERT_OK(aibld__init(&d2, &again, dp), "restart"))
		goto out;
	ASSERT_EQ(d2.nodes[1].id, id2, "n2 has its id back");
	ASSERT_FALSE(d2.nodes[1].draining, "n2 not drained by the restart");
	ASSERT_TRUE(d2.nodes[0].draining, "the operator's drain of n1 kept");
	answered(&d2);
	ASSERT_OK(aibld__recompute(&d2, true), "recompute");
	ASSERT_FALSE(flags_of(&d2, id2, d2.fd_backends) & AIBL_BE_F_DRAINING, "n2 takes new flows");
out:
	if (d2.nodes)
		aibld__fini(&d2);
	else
		config__free(&again);
	config__free(&next);
	ctl_down(&d, &cfg, dp, dir);
}

/* set a per-CPU traffic entry: packets on CPU 0 */
static void traffic_set(struct aibld *d, int fd, __u32 id, __u64 packets)
{
	struct aibl_traffic v[d->ncpus];

	memset(v, 0, sizeof(v));
	v[0].packets = packets;
	bpf_map_update_elem(fd, &id, v, BPF_ANY);
}

static __u64 traffic_packets(struct aibld *d, int fd, __u32 id)
{
	struct aibl_traffic v[d->ncpus];
	__u64 sum = 0;

	if (bpf_map_lookup_elem(fd, &id, v))
		return ~0ULL;
	for (int c = 0; c < d->ncpus; c++)
		sum += v[c].packets;
	return sum;
}

/* a service renamed by a reload takes the freed id, and a new node the id
 * of a retired one when none is free: neither shows the traffic of the
 * id's last owner (Prometheus series that start at another's totals);
 * a service and a node that keep their names keep their counters */
static void fresh_id_counters_zeroed(void)
{
	struct dp_opts o = small_maps(4, 2);
	struct aibld d = {};
	struct config cfg, next;
	struct dp *dp = NULL;
	char dir[64] = "";
	__u32 sid, n1, n2;

	if (!test__can_bpf())
		return SKIP("needs root");
	memset(&next, 0, sizeof(next));
	if (!ASSERT_OK(two_nodes(&cfg), "config") || !ctl_up(&d, &cfg, &dp, dir, sizeof(dir), &o))
		goto out;
	sid = d.svcs[0].id, n1 = d.nodes[0].id, n2 = d.nodes[1].id;
	traffic_set(&d, d.fd_svc_stats, sid, 1000);
	traffic_set(&d, d.fd_be_stats, n1, 600);
	traffic_set(&d, d.fd_be_stats, n2, 400);
	/* web renamed web-new; n2 replaced by n3 (no free id: n2's, retired).
	 * While n2 still carries flows its id is not handed over: they would
	 * go to n3's address and reset */
	if (!ASSERT_OK(two_nodes(&next), "next config"))
		goto out;
	snprintf(next.services[0].name, sizeof(next.services[0].name), "web-new");
	snprintf(next.nodes[1].name, sizeof(next.nodes[1].name), "n3");
	{
		struct aibl_load busy = {.active = 3}, idle = {};

		if (!ASSERT_OK(bpf_map_update_elem(d.fd_load, &n2, &busy, 0), "n2 busy") ||
		    !ASSERT_EQ(aibld__apply_config(&d, &next), -ENOSPC,
			       "no id while n2's flows go on: refused") ||
		    !ASSERT_TRUE(d.nnodes == 2 && !strcmp(d.nodes[1].name, "n2"),
				 "the running nodes kept") ||
		    !ASSERT_OK(bpf_map_update_elem(d.fd_load, &n2, &idle, 0), "n2's flows ended"))
			goto out;
	}
	if (!ASSERT_OK(aibld__apply_config(&d, &next), "reload"))
		goto out;
	answered(&d);
	if (!ASSERT_EQ(d.svcs[0].id, sid, "web-new has web's id") ||
	    !ASSERT_EQ(d.nodes[1].id, n2, "n3 has retired n2's id"))
		goto out;
	ASSERT_EQ(traffic_packets(&d, d.fd_svc_stats, sid), 0, "web-new starts from zero");
	ASSERT_EQ(traffic_packets(&d, d.fd_be_stats, n2), 0, "n3 starts from zero");
	ASSERT_EQ(traffic_packets(&d, d.fd_be_stats, n1), 600, "n1 keeps its own");
out:
	config__free(&next);
	ctl_down(&d, &cfg, dp, dir);
}

static const struct test_case cases[] = {
    {"fresh_id_counters_zeroed", fresh_id_counters_zeroed},
    {"renamed_service_other_half", renamed_service_other_half},
    {"new_service_off_live_ids", new_service_off_live_ids},
    {"retired_node_back_after_restart", retired_node_back_after_restart},
    {"failed_writes_retried", failed_writes_retried},
    {"refused_reload_keeps_reports", refused_reload_keeps_reports},
    {"reload_pending", reload_pending},
    {"restart_drained_pending", restart_drained_pending},
    {"pins_full_map", pins_full_map},
    {"one_failure_not_others", one_failure_not_others},
};

TEST_MAIN("ctl", cases)
