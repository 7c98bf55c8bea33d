// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The circuit breakers (node state machine), drain and cache hints -> pins, without maps. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>
#include "test.h"
#include "addr.h"
#include "../../user/aibld/aibld.h"

static const char yaml[] = "interface: lo\n"
			   "health: {fail_after: 3, rise_after: 2}\n"
			   "pins: {max_per_node: 3, max_per_service: 4, max_ttl_ms: 10000}\n"
			   "services:\n"
			   "  - {name: chat, vip: 10.0.0.1, port: 80, model: m1, policy: ai}\n"
			   "  - {name: code, vip: 10.0.0.2, port: 80, model: m2, policy: ai}\n"
			   "  - {name: web, vip: 10.0.0.3, port: 80, policy: hash}\n"
			   "nodes:\n"
			   "  - {name: a, address: 10.0.1.1}\n"
			   "  - {name: b, address: 10.0.1.2}\n"
			   "  - {name: g, address: 10.0.1.3, agent: 'http://10.0.1.3:9100'}\n";

static struct aibld d;

static bool setup_yaml(const char *y)
{
	char err[CFG_ERR_LEN];

	memset(&d, 0, sizeof(d));
	if (!ASSERT_OK(config__parse(&d.cfg, "t.yaml", y, strlen(y), err, sizeof(err)), err))
		return false;
	d.nnodes = d.cfg.nnodes;
	d.nodes = calloc(d.nnodes, sizeof(*d.nodes));
	d.svcs = calloc(d.cfg.nservices, sizeof(*d.svcs));
	for (int i = 0; i < d.nnodes; i++) {
		snprintf(d.nodes[i].name, AIBL_NAME_LEN, "%s", d.cfg.nodes[i].name);
		d.nodes[i].id = 10 + i;
		d.nodes[i].cfg_idx = i;
		d.nodes[i].ttft_ms = -1;
		agent_report__init(&d.nodes[i].rep);
	}
	for (int s = 0; s < d.cfg.nservices; s++) {
		d.svcs[s].id = 20 + s;
		/* every node in every table, as the recompute before would */
		d.svcs[s].applied = calloc(d.cfg.services[s].nnodes, sizeof(__u32));
		d.svcs[s].slow = calloc(d.cfg.services[s].nnodes, sizeof(bool));
		d.svcs[s].beyond = calloc(d.cfg.services[s].nnodes, sizeof(bool));
		d.svcs[s].carried = calloc(d.cfg.services[s].nnodes, sizeof(__u64));
		for (int k = 0; k < d.cfg.services[s].nnodes; k++)
			d.svcs[s].applied[k] = 1;
		d.svcs[s].have_table = true;
	}
	d.max_pins = 100;
	return true;
}

static bool setup(void)
{
	return setup_yaml(yaml);
}

static void cleanup(void)
{
	for (int i = 0; i < d.nnodes; i++)
		agent_report__free(&d.nodes[i].rep);
	for (int s = 0; s < d.cfg.nservices; s++) {
		free(d.svcs[s].applied);
		free(d.svcs[s].slow);
		free(d.svcs[s].beyond);
		free(d.svcs[s].carried);
	}
	free(d.nodes);
	free(d.svcs);
	config__free(&d.cfg);
}

static void breaker(void)
{
	struct node_rt *a;
	struct agent_report r;

	if (!setup())
		return;
	a = &d.nodes[0];
	nodes__poll_fail(&d, a, NODE_FAIL_TIMEOUT, "timeout");
	nodes__poll_fail(&d, a, NODE_FAIL_TIMEOUT, "timeout");
	ASSERT_FALSE(a->down, "2 failures: still up");
	nodes__poll_ok(&d, a, NULL);
	nodes__poll_fail(&d, a, NODE_FAIL_BAD_REPORT, "garbage");
	nodes__poll_fail(&d, a, NODE_FAIL_BAD_REPORT, "garbage");
	ASSERT_FALSE(a->down, "a success in between resets the count");
	nodes__poll_fail(&d, a, NODE_FAIL_AUTH, "bad signature");
	ASSERT_TRUE(a->down, "3 in a row: down");
	ASSERT_STREQ(a->last_error, "bad signature", "last error kept");
	ASSERT_EQ(a->poll_errors, 5, "errors counted");
	agent_report__init(&r);
	r.ttft_avg_ms = 100;
	nodes__poll_ok(&d, a, &r);
	ASSERT_TRUE(a->down, "1 success: still down");
	ASSERT_TRUE(a->have_rep, "report kept while down");
	nodes__poll_ok(&d, a, NULL);
	ASSERT_FALSE(a->down, "2 successes: up");
	ASSERT_EQ(a->ttft_ms, 100, "ttft sampled");
	ASSERT_STREQ(aibld__node_state(a), "up", "state");

	ASSERT_OK(nodes__set_drain(&d, "a", true), "drain");
	ASSERT_STREQ(aibld__node_state(a), "draining", "draining");
	ASSERT_EQ(nodes__set_drain(&d, "zz", true), -ENOENT, "unknown node");
	for (int i = 0; i < 3; i++)
		nodes__poll_fail(&d, a, NODE_FAIL_UNREACHABLE, "x");
	ASSERT_STREQ(aibld__node_state(a), "down", "down wins over draining");
	ASSERT_TRUE(a->draining, "drain survives down");
	ASSERT_FALSE(a->unhealthy, "no agent: never unhealthy");
	cleanup();
}

static void hint(struct agent_report *r, const char *client, const char *vip, const char *model,
		 double score, unsigned int ttl)
{
	struct ar_hint *h;

	r->hints = realloc(r->hints, (r->nhints + 1) * sizeof(*r->hints));
	h = &r->hints[r->nhints++];
	memset(h, 0, sizeof(*h));
	aibl_addr__parse(client, &h->client, &h->client_family);
	if (vip[0])
		aibl_addr__parse(vip, &h->vip, &h->vip_family);
	snprintf(h->model, sizeof(h->model), "%s", model);
	h->port = vip[0] ? 80 : 0;
	h->proto = vip[0] ? 6 : 0;
	h->score = score;
	h->ttl_ms = ttl;
}

/* the agent says the node has these models resident */
static void resident(struct agent_report *r, const char *m1, const char *m2)
{
	const char *m[] = {m1, m2};

	r->nmodels = 0;
	for (int i = 0; i < 2; i++) {
		if (!m[i])
			continue;
		snprintf(r->models[r->nmodels].name, sizeof(r->models[0].name), "%s", m[i]);
		r->models[r->nmodels++].resident = true;
	}
}

static int pins_to(int backend)
{
	struct pin_ent *p = NULL;
	int n = 0, k = 0;

	if (!ASSERT_OK(nodes__build_pins(&d, &p, &n), "build"))
		return -1;
	for (int i = 0; i < n; i++)
		k += p[i].val.backend == (__u32)backend;
	free(p);
	return k;
}

/* sticky until saturated: pins go only where the session is still well served */
static void pins_only_where_useful(void)
{
	struct node_rt *a;

	if (!setup())
		return;
	a = &d.nodes[0];
	a->have_rep = true;
	resident(&a->rep, "m1", "m2");
	hint(&a->rep, "192.0.2.1", "10.0.0.1", "", 0.9, 60000);
	ASSERT_EQ(pins_to(a->id), 1, "pinned");

	/* saturation is the data plane's call, with the flows it counts now
	 * (test_xdp_select/pin_spill): the pin stays and carries the bound */
	a->rep.queue_depth = d.cfg.ai.saturation_queue;
	a->rep.in_flight = 2 * d.cfg.ai.saturation_queue;
	ASSERT_EQ(pins_to(a->id), 1, "saturated: the pin stays");
	{
		double floor, best;
		struct pin_ent *p;
		int n;

		ASSERT_OK(nodes__build_pins(&d, &p, &n), "build");
		ASSERT_TRUE(n == 1 && p[0].val.spill_ms == d.cfg.ai.pin_spill_ms,
			    "with pin_spill_ms for the data plane");
		ASSERT_TRUE(n == 1 && !(p[0].val.flags & AIBL_PIN_F_SLOWER), "not a slower tier");
		free(p);
		/* beyond the latency bound (ai_latency_spill): the data plane
		 * lets the pin go for a faster node with a free slot */
		d.svcs[0].beyond[0] = true;
		ASSERT_OK(nodes__build_pins(&d, &p, &n), "build");
		ASSERT_TRUE(n == 1 && (p[0].val.flags & AIBL_PIN_F_SLOWER), "flagged slower");
		free(p);
		d.svcs[0].beyond[0] = false;
		/* inside the bound on what its requests take now (cached
		 * turns), 2.5x the best node's unloaded latency: its session's
		 * later turns decode slower there than a fast node serves them
		 * without the cache */
		floor = a->lat_floor_ms;
		best = d.best_lat_floor_ms;
		d.best_lat_floor_ms = 150;
		a->lat_floor_ms = 390;
		ASSERT_OK(nodes__build_pins(&d, &p, &n), "build");
		ASSERT_TRUE(n == 1 && (p[0].val.flags & AIBL_PIN_F_SLOWER),
			    "a slower floor: flagged slower");
		free(p);
		a->lat_floor_ms = 160;
		ASSERT_OK(nodes__build_pins(&d, &p, &n), "build");
		ASSERT_TRUE(n == 1 && !(p[0].val.flags & AIBL_PIN_F_SLOWER),
			    "a floor as fast as the best's: not flagged");
		free(p);
		a->lat_floor_ms = floor;
		d.best_lat_floor_ms = best;
	}
	a->rep.queue_depth = 0;

	resident(&a->rep, "m2", NULL);
	ASSERT_EQ(pins_to(a->id), 0, "model unloaded: its caches went with it");
	resident(&a->rep, "m1", "m2");
	/* this balancer takes m1 back: from its ask on, before the agent's
	 * report shows the drain, no session is pinned there */
	a->load.unload = true;
	a->load.state = NODE_LOAD_QUEUED;
	snprintf(a->load.model, sizeof(a->load.model), "m1");
	ASSERT_EQ(pins_to(a->id), 0, "an unload asked: no pin");
	snprintf(a->load.model, sizeof(a->load.model), "m2");
	ASSERT_EQ(pins_to(a->id), 1, "another model's unload: the pin stays");
	memset(&a->load, 0, sizeof(a->load));

	d.svcs[0].applied[0] = 0;
	ASSERT_EQ(pins_to(a->id), 1, "out of the table for new sessions: the pin stays");
	d.svcs[0].applied[0] = 1;

	/* a node the service may not use: the data plane checks a pin's
	 * backend, not whether the service has it */
	{
		__u32 w = d.cfg.nodes[0].weight;
		int acc = d.cfg.services[0].accel;

		d.cfg.nodes[0].weight = 0;
		ASSERT_EQ(pins_to(a->id), 0, "standby (weight 0): no pin");
		d.cfg.nodes[0].weight = w;
		d.cfg.services[0].accel =
		    d.cfg.nodes[0].accel == AIBL_ACCEL_GPU ? AIBL_ACCEL_OTHER : AIBL_ACCEL_GPU;
		ASSERT_EQ(pins_to(a->id), 0, "another accelerator than the service's: no pin");
		d.cfg.services[0].accel = acc;
		ASSERT_EQ(pins_to(a->id), 1, "back");
	}

	/* measured beyond the latency bound while a faster node has room
	 * (ai_latency_spill): later turns lose more there than the cached
	 * prefix saves, so the session goes back to the p2c choice */
	d.svcs[0].slow[0] = true;
	ASSERT_EQ(pins_to(a->id), 0, "a slower tier while the fast one has room: no pin");
	d.svcs[0].slow[0] = false;
	ASSERT_EQ(pins_to(a->id), 1, "the slower tier open: the pin holds");

	/* prefills that take turns on the node's compute (struct
	 * policy_prefill), each waiting for three others: a move costs the
	 * session's whole prefill where it lands, and the three behind it
	 * wait for it too. The pin yields to a queue four times as long, and
	 * not to a faster node's free slot */
	a->pf =
	    (struct policy_prefill){.floor = 0.05, .wait_ms = 300, .own_ms = 100, .shared = true};
	d.svcs[0].slow[0] = d.svcs[0].beyond[0] = true;
	{
		struct pin_ent *p;
		int n;

		ASSERT_OK(nodes__build_pins(&d, &p, &n), "build");
		ASSERT_EQ(n, 1, "shared compute: a slower tier keeps its pins");
		ASSERT_TRUE(n == 1 && p[0].val.spill_ms == 4 * d.cfg.ai.pin_spill_ms,
			    "the spill scaled by the contention");
		ASSERT_TRUE(n == 1 && !(p[0].val.flags & AIBL_PIN_F_SLOWER),
			    "no yield to a faster node's free slot");
		free(p);
	}
	d.svcs[0].slow[0] = d.svcs[0].beyond[0] = false;
	cleanup();
}

static void pins(void)
{
	struct node_rt *a, *b;
	struct pin_ent *p = NULL;
	int n = 0, for_b = 0;
	__u64 now;

	if (!setup())
		return;
	a = &d.nodes[0];
	b = &d.nodes[1];
	a->have_rep = b->have_rep = true;
	resident(&a->rep, "m1", "m2");
	resident(&b->rep, "m1", "m2");
	hint(&a->rep, "192.0.2.1", "10.0.0.1", "", 0.9, 60000); /* chat by VIP */
	hint(&a->rep, "192.0.2.2", "", "m2", 0.5, 5000);	/* code by model */
	hint(&a->rep, "192.0.2.3", "10.0.0.3", "", 0.9, 5000);	/* web: hash, no pins */
	hint(&a->rep, "not-an-ip", "10.0.0.1", "", 0.9, 5000);
	hint(&a->rep, "192.0.2.4", "10.0.0.9", "", 0.9, 5000);	/* no such VIP */
	hint(&b->rep, "192.0.2.1", "10.0.0.1", "", 0.95, 5000); /* same client, better */
	now = clock_mono_ns();
	if (!ASSERT_OK(nodes__build_pins(&d, &p, &n), "build"))
		return;
	ASSERT_EQ(n, 2, "one pin per (service, client), only ai services");
	for (int i = 0; i < n; i++) {
		if (p[i].key.svc_id == 20) {
			ASSERT_EQ(p[i].val.backend, b->id, "higher score wins");
			ASSERT_LE(p[i].val.expires_ns, now + 5000000000ULL + 1000000000ULL, "ttl");
		} else {
			ASSERT_EQ(p[i].key.svc_id, 21, "model hint: the m2 service");
			ASSERT_EQ(p[i].val.backend, a->id, "a");
		}
		ASSERT_TRUE(i == 0 || memcmp(&p[i - 1].key, &p[i].key, sizeof(p[i].key)) < 0,
			    "sorted by key");
	}
	free(p);

	/* bounds: a node keeps its 3 best, a service holds 4 */
	for (int i = 0; i < 10; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		hint(&b->rep, ip, "10.0.0.1", "", i / 10.0, 1000000);
	}
	ASSERT_OK(nodes__build_pins(&d, &p, &n), "build bounded");
	for (int i = 0; i < n; i++)
		for_b += p[i].val.backend == b->id;
	ASSERT_EQ(for_b, 3, "max_per_node");
	ASSERT_LE(d.svcs[0].npins, 4, "max_per_service");
	for (int i = 0; i < n; i++)
		if (p[i].val.backend == b->id)
			ASSERT_LE(p[i].val.expires_ns, clock_mono_ns() + 10000000000ULL,
				  "ttl capped at max_ttl_ms");
	free(p);

	/* a down node loses its pins */
	b->down = true;
	ASSERT_OK(nodes__build_pins(&d, &p, &n), "build down");
	for (int i = 0; i < n; i++)
		ASSERT_NEQ(p[i].val.backend, b->id, "no pin to a down node");
	free(p);
	cleanup();
}

/*
 * Two nodes' servers give one client score 1: the fresher hint (the node it
 * moved to) wins. A hint naming a VIP and a model pins only in that model's
 * service. A hint's life counts from its report. A pending node has none.
 */
static void pins_ties_and_life(void)
{
	struct node_rt *a, *b;
	struct pin_ent *p = NULL;
	__u64 now_ms = clock_mono_ms();
	int n = 0;

	if (!setup())
		return;
	a = &d.nodes[0];
	b = &d.nodes[1];
	a->have_rep = b->have_rep = true;
	a->last_ok_ms = b->last_ok_ms = now_ms;
	resident(&a->rep, "m1", "m2");
	resident(&b->rep, "m1", "m2");
	hint(&a->rep, "192.0.2.1", "10.0.0.1", "", 1.0, 3000);
	hint(&b->rep, "192.0.2.1", "10.0.0.1", "", 1.0, 8000);
	ASSERT_EQ(pins_to(b->id), 1, "a tie: the fresher hint's node");
	ASSERT_EQ(pins_to(a->id), 0, "not the lower index");

	agent_report__free(&a->rep);
	agent_report__free(&b->rep);
	b->have_rep = false;
	resident(&a->rep, "m1", "m2");
	/* chat is m1 on 10.0.0.1:80: a hint for m2 there has no cache of m1 */
	hint(&a->rep, "192.0.2.7", "10.0.0.1", "m2", 1.0, 5000);
	ASSERT_EQ(pins_to(a->id), 0, "a VIP and another model: no pin");
	hint(&a->rep, "192.0.2.8", "10.0.0.1", "m1", 1.0, 5000);
	ASSERT_EQ(pins_to(a->id), 1, "a VIP and its model: a pin");

	/* the report came 5 s ago; a 1 s hint in it has ended, a 9 s one
	 * ends 9 s after the report, not after this recompute */
	agent_report__free(&a->rep);
	resident(&a->rep, "m1", "m2");
	a->last_ok_ms = now_ms - 5000;
	hint(&a->rep, "192.0.2.9", "10.0.0.1", "", 1.0, 1000);
	hint(&a->rep, "192.0.2.10", "10.0.0.1", "", 1.0, 9000);
	if (ASSERT_OK(nodes__build_pins(&d, &p, &n), "build")) {
		ASSERT_EQ(n, 1, "the ended hint: no pin");
		if (n == 1)
			ASSERT_LE(p[0].val.expires_ns, (now_ms - 5000 + 9000) * 1000000ULL,
				  "its life from the report");
	}
	free(p);
	a->unchecked = true;
	ASSERT_EQ(pins_to(a->id), 0, "a pending node: no pins");
	cleanup();
}

/* one poll round of node g (has an agent): the backend check first, if any */
static void round_(struct node_rt *n, int backend, bool agent_ok, enum node_fail kind)
{
	ASSERT_EQ(nodes__want_backend_check(&d, n), backend >= 0,
		  backend >= 0 ? "backend check wanted" : "no backend check");
	if (backend >= 0)
		nodes__backend_result(&d, n, backend, backend ? "" : "Connection refused");
	if (agent_ok)
		nodes__poll_ok(&d, n, NULL);
	else
		nodes__poll_fail(&d, n, kind, "%s", nodes__fail_name(kind));
}

/* the agent breaker and the backend check of a node with an agent */
static void agent_vs_backend(void)
{
	struct pin_ent *p = NULL;
	struct node_rt *g;
	int n = 0;

	if (!setup())
		return;
	g = &d.nodes[2];
	ASSERT_TRUE(nodes__has_agent(&d, g), "g has an agent");
	ASSERT_FALSE(nodes__has_agent(&d, &d.nodes[0]), "a has none");
	ASSERT_FALSE(nodes__want_backend_check(&d, &d.nodes[0]), "a: its poll is the check");

	/* garbage, backend fine: unhealthy on the 3rd failure, not down */
	round_(g, -1, false, NODE_FAIL_BAD_REPORT);
	round_(g, -1, false, NODE_FAIL_BAD_REPORT);
	g->have_rep = true;
	round_(g, 1, false, NODE_FAIL_BAD_REPORT); /* the round that opens the breaker */
	ASSERT_TRUE(g->unhealthy && !g->down, "agent broken, backend answers: unhealthy");
	ASSERT_STREQ(aibld__node_state(g), "unhealthy", "state name");
	ASSERT_STREQ(nodes__fail_name(g->reason), "bad_report", "reason");
	ASSERT_FALSE(g->have_rep, "its last report forgotten");
	/* no pins, and more agent failures change nothing while the backend answers */
	g->have_rep = true;
	hint(&g->rep, "192.0.2.1", "10.0.0.1", "", 0.9, 60000);
	for (int i = 0; i < 5; i++)
		round_(g, 1, false, NODE_FAIL_FOREIGN);
	ASSERT_TRUE(g->unhealthy && !g->down, "still unhealthy");
	ASSERT_STREQ(nodes__fail_name(g->reason), "bad_report", "reason of the change kept");
	ASSERT_OK(nodes__build_pins(&d, &p, &n), "build");
	ASSERT_EQ(n, 0, "no pins to an unhealthy node");
	free(p);
	g->have_rep = false;
	agent_report__free(&g->rep);
	/* recovery: rise_after good reports in a row */
	round_(g, 1, true, 0);
	ASSERT_TRUE(g->unhealthy, "1 good report: still unhealthy");
	round_(g, 1, false, NODE_FAIL_AUTH);
	round_(g, 1, true, 0);
	ASSERT_TRUE(g->unhealthy, "a failure in between resets the count");
	round_(g, 1, true, 0);
	ASSERT_FALSE(g->unhealthy || g->down, "2 good reports: up");
	ASSERT_STREQ(aibld__node_state(g), "up", "up");
	ASSERT_FALSE(nodes__want_backend_check(&d, g), "no check while the agent is fine");

	/* the backend dead too: down, as before */
	round_(g, -1, false, NODE_FAIL_STALE);
	round_(g, -1, false, NODE_FAIL_STALE);
	round_(g, 0, false, NODE_FAIL_STALE);
	ASSERT_TRUE(g->down && !g->unhealthy, "agent and backend fail: down");
	ASSERT_STREQ(nodes__fail_name(g->reason), "backend_check", "reason: the backend");
	/* the backend answers again, the agent not yet: unhealthy after rise_after */
	round_(g, 1, false, NODE_FAIL_UNREACHABLE);
	ASSERT_TRUE(g->down, "1 good check: still down");
	round_(g, 1, false, NODE_FAIL_UNREACHABLE);
	ASSERT_TRUE(g->unhealthy && !g->down, "2 good checks: unhealthy");
	/* while unhealthy, the backend dies: down after fail_after failed checks */
	round_(g, 0, false, NODE_FAIL_UNREACHABLE);
	round_(g, 0, false, NODE_FAIL_UNREACHABLE);
	ASSERT_TRUE(g->unhealthy, "2 failed checks: still unhealthy");
	round_(g, 0, false, NODE_FAIL_UNREACHABLE);
	ASSERT_TRUE(g->down && !g->unhealthy, "3 failed checks: down");
	/* down -> up directly on good reports */
	round_(g, 0, true, 0);
	round_(g, 1, true, 0);
	ASSERT_FALSE(g->down || g->unhealthy, "2 good reports: up from down");

	/* an operator drain is independent of both */
	ASSERT_OK(nodes__set_drain(&d, "g", true), "drain");
	round_(g, -1, false, NODE_FAIL_TIMEOUT);
	round_(g, -1, false, NODE_FAIL_TIMEOUT);
	round_(g, 1, false, NODE_FAIL_TIMEOUT);
	ASSERT_STREQ(aibld__node_state(g), "unhealthy", "unhealthy shown over draining");
	round_(g, 1, true, 0);
	round_(g, 1, true, 0);
	ASSERT_STREQ(aibld__node_state(g), "draining", "drain survives unhealthy");
	ASSERT_OK(nodes__set_drain(&d, "g", false), "undrain");
	ASSERT_STREQ(aibld__node_state(g), "up", "up after undrain");

	/* a node with an agent but no port to check: no evidence, down */
	d.cfg.nodes[2].health_port = 0;
	for (int s = 0; s < d.cfg.nservices; s++)
		d.cfg.services[s].port = 0;
	for (int i = 0; i < 3; i++) /* the poller finds no port: no check ran */
		nodes__poll_fail(&d, g, NODE_FAIL_TIMEOUT, "timeout");
	ASSERT_TRUE(g->down && !g->unhealthy, "no backend check result: down");
	ASSERT_STREQ(nodes__fail_name(g->reason), "timeout", "reason: the agent's");
	cleanup();
}

/* ai's fleet references: from the usable nodes the config lists, each
 * node's figures, the best floor's node's weight and ms per flow */
static void fleet_references(void)
{
	struct node_rt *a, *b, *g, *gone;

	if (!setup())
		return;
	a = &d.nodes[0], b = &d.nodes[1], g = &d.nodes[2];
	d.cfg.nodes[1].weight = 25;
	aibld__fleet_update(&d, 1000);
	ASSERT_TRUE(d.best_lat_floor_ms < 0 && d.best_lat_ms < 0 && d.best_per_flow_ms < 0,
		    "nothing measured: no references");
	ASSERT_EQ(d.fleet_slots, 0, "no fleet slots");

	a->have_rep = b->have_rep = g->have_rep = true;
	a->lat_ms = 300, a->lat_floor_ms = 250, a->run_ms = 200, a->slots = 0, a->ran = 3;
	b->lat_ms = 120, b->lat_floor_ms = 100, b->run_ms = 80, b->slots = 4, b->ran = 4;
	g->lat_ms = 900, g->lat_floor_ms = 800, g->slots = 6, g->ran = 5;
	aibld__fleet_update(&d, 1000);
	ASSERT_EQ(d.best_lat_ms, 120, "lowest estimate");
	ASSERT_EQ(d.best_lat_floor_ms, 100, "lowest floor: b's");
	ASSERT_EQ(d.best_weight, 25, "b's configured weight");
	ASSERT_EQ(d.best_per_flow_ms, 20, "b's run time / its 4 slots");
	ASSERT_EQ(d.fleet_slots, 6, "the most a queued node runs (g)");

	/* a node down, unhealthy, draining or without a report sets nothing */
	b->draining = true;
	g->down = true;
	aibld__fleet_update(&d, 1000);
	ASSERT_EQ(d.best_lat_floor_ms, 250, "b draining: a's floor");
	ASSERT_EQ(d.best_weight, 100, "a's weight");
	ASSERT_EQ(d.best_per_flow_ms, 0, "a never queued, nor has any node left: no limit known");
	ASSERT_EQ(d.fleet_slots, 0, "no queued node left");
	b->draining = g->down = false;

	/* removed from the config (kept while its flows drain, its last
	 * report frozen, no configured weight): not part of the fleet */
	d.nnodes = 4;
	d.nodes = realloc(d.nodes, d.nnodes * sizeof(*d.nodes));
	gone = &d.nodes[3];
	memset(gone, 0, sizeof(*gone));
	agent_report__init(&gone->rep);
	gone->cfg_idx = -1;
	gone->have_rep = true;
	gone->lat_ms = 60, gone->lat_floor_ms = 50, gone->run_ms = 40, gone->slots = 16;
	aibld__fleet_update(&d, 1000);
	ASSERT_EQ(d.best_lat_floor_ms, 100, "a removed node's floor is no reference");
	ASSERT_EQ(d.best_lat_ms, 120, "nor its estimate");
	ASSERT_EQ(d.best_weight, 25, "the best configured node's weight");
	ASSERT_EQ(d.fleet_slots, 6, "nor its slots");
	cleanup();
}

/*
 * A node's slots: measured where it queued, else its agent's stated ones
 * (the report's slots), else unknown; stated slots count in the fleet's
 * as measured ones do.
 */
static void stated_slots(void)
{
	struct node_rt *a, *b, *g;

	if (!setup())
		return;
	a = &d.nodes[0], b = &d.nodes[1], g = &d.nodes[2];
	a->slots = b->slots = g->slots = -1;
	ASSERT_TRUE(nodes__slots(a) < 0, "no report: unknown");
	a->have_rep = b->have_rep = g->have_rep = true;
	ASSERT_TRUE(nodes__slots(a) < 0, "none stated: unknown");
	a->rep.slots = 12;
	ASSERT_EQ(nodes__slots(a), 12, "stated");
	a->slots = 5;
	ASSERT_EQ(nodes__slots(a), 5, "seen queueing at 5: the measure wins");
	a->slots = -1;
	a->lat_ms = 300, a->lat_floor_ms = 250, a->run_ms = 200, a->ran = 3;
	b->lat_ms = 120, b->lat_floor_ms = 100, b->run_ms = 80, b->slots = 4, b->ran = 4;
	aibld__fleet_update(&d, 1000);
	ASSERT_EQ(d.fleet_slots, 12, "a's stated 12 in the fleet's, beside b's measured 4");
	a->rep.slots = -1;
	aibld__fleet_update(&d, 1000);
	ASSERT_EQ(d.fleet_slots, 4, "unstated: b's alone");
	cleanup();
}

/*
 * Where prefills take turns: once one node of the fleet is seen so, every
 * node is priced for a new session's prompt (policy_node.prefill_ms) at
 * its own speed, and a node that has measured no prefill of its own yet at
 * the fastest measured node's, scaled by their latency floors.
 */
static void fleet_prefill(void)
{
	struct node_rt *a, *b, *g;
	struct policy_node pn;

	if (!setup())
		return;
	a = &d.nodes[0], b = &d.nodes[1], g = &d.nodes[2];
	a->have_rep = b->have_rep = g->have_rep = true;
	a->lat_ms = a->lat_floor_ms = 250;
	b->lat_ms = b->lat_floor_ms = 300;
	g->lat_ms = g->lat_floor_ms = 750;
	/* a and b: 0.05 and 0.06 ms a token, prompts of 2,000; g nothing yet */
	a->pf.floor = 0.05, a->pf.prompt_tok = 2000;
	b->pf.floor = 0.06, b->pf.prompt_tok = 2000;
	aibld__fleet_update(&d, 1000);
	ASSERT_FALSE(d.prefill_shared, "no node seen taking turns");
	for (int i = 0; i < 3; i++) {
		aibld__policy_node(&d, &d.nodes[i], 1000, &pn);
		ASSERT_TRUE(pn.prefill_ms == 0, "no price");
	}

	b->pf.shared = true;
	aibld__fleet_update(&d, 1000);
	ASSERT_TRUE(d.prefill_shared, "b takes turns");
	ASSERT_TRUE(d.prefill_ref_floor_ms == 250 && fabs(d.prefill_ref_ms - 100) < 1e-9,
		    "the reference: a, the fastest measured");
	aibld__policy_node(&d, a, 1000, &pn);
	ASSERT_TRUE(fabs(pn.prefill_ms - 100) < 1e-9, "a, not marked: its own prompts, 100 ms");
	aibld__policy_node(&d, b, 1000, &pn);
	ASSERT_TRUE(fabs(pn.prefill_ms - 120) < 1e-9, "b: its own, 120 ms");
	aibld__policy_node(&d, g, 1000, &pn);
	ASSERT_TRUE(fabs(pn.prefill_ms - 300) < 1e-9, "g, none measured: a's at 3x the floor");
	g->lat_ms = g->lat_floor_ms = -1;
	aibld__policy_node(&d, g, 1000, &pn);
	ASSERT_TRUE(pn.prefill_ms == 0, "nor its speed: none (priced as a node not measured)");

	/* the marked node down: the fleet's engine is still the same, but
	 * its prompts are no reference */
	b->down = true;
	a->pf.floor = -1;
	aibld__fleet_update(&d, 1000);
	ASSERT_TRUE(d.prefill_shared, "b down: still the fleet's engine");
	ASSERT_TRUE(d.prefill_ref_ms < 0, "no usable node's prompts measured: no reference");
	aibld__policy_node(&d, a, 1000, &pn);
	ASSERT_TRUE(pn.prefill_ms == 0, "a's own unknown now, and no reference: no price");
	cleanup();
}

/* a report of node g: m1 served by the engine at :8000, m2 by :8001, with
 * those prefix-cache hit rates (< 0: no figure), the node's their mean */
static void two_engines(struct agent_report *r, double h1, double h2, const char *url2)
{
	agent_report__init(r);
	resident(r, "m1", "m2");
	r->nservers = 2;
	snprintf(r->servers[0].url, sizeof(r->servers[0].url), "http://10.0.1.3:8000");
	snprintf(r->servers[1].url, sizeof(r->servers[1].url), "%s", url2);
	snprintf(r->models[0].server, sizeof(r->models[0].server), "http://10.0.1.3:8000");
	snprintf(r->models[1].server, sizeof(r->models[1].server), "%s", url2);
	r->servers[0].prefix_cache_hit_rate = h1;
	r->servers[1].prefix_cache_hit_rate = h2;
	r->prefix_cache_hit_rate = h1 >= 0 && h2 >= 0 ? (h1 + h2) / 2 : h1 >= 0 ? h1 : h2;
}

/*
 * A node that runs a chat model and a single-turn one, each in an engine
 * of its own: each service reads its own engine's prefix-cache hit rate
 * (client affinity follows it), not the node's mean of both.
 */
static void model_hit(void)
{
	struct agent_report r;
	struct node_rt *g;
	double h;

	if (!setup())
		return;
	g = &d.nodes[2];
	g->hit_rate = -1; /* as aibld starts a node */
	ASSERT_TRUE(nodes__model_hit(g, "m1") < 0, "no report: unknown");
	two_engines(&r, 0.8, 0, "http://10.0.1.3:8001");
	nodes__poll_ok(&d, g, &r);
	ASSERT_TRUE(fabs(nodes__model_hit(g, "m1") - 0.8) < 1e-9, "m1: its engine's, 0.8");
	ASSERT_TRUE(nodes__model_hit(g, "m2") == 0, "m2: its engine's, 0");
	ASSERT_TRUE(fabs(g->hit_rate - 0.4) < 1e-9, "the node's: both");
	ASSERT_TRUE(fabs(nodes__model_hit(g, "m3") - 0.4) < 1e-9,
		    "a model not reported: the node's");
	ASSERT_TRUE(fabs(nodes__model_hit(g, NULL) - 0.4) < 1e-9, "no model: the node's");

	/* smoothed, each under its engine's URL */
	two_engines(&r, 0, 0, "http://10.0.1.3:8001");
	nodes__poll_ok(&d, g, &r);
	h = nodes__model_hit(g, "m1");
	ASSERT_TRUE(h > 0 && h < 0.8, "m1 falls, smoothed");
	ASSERT_TRUE(nodes__model_hit(g, "m2") == 0, "m2 stays");
	/* no figure this time (no prompt in the window): the last one stays */
	two_engines(&r, -1, 0, "http://10.0.1.3:8001");
	nodes__poll_ok(&d, g, &r);
	ASSERT_TRUE(nodes__model_hit(g, "m1") == h, "m1 kept");

	/* m2's engine replaced (another URL): its figure starts anew */
	two_engines(&r, -1, 0.5, "http://10.0.1.3:8002");
	nodes__poll_ok(&d, g, &r);
	ASSERT_TRUE(nodes__model_hit(g, "m2") == 0.5, "a new engine: its first figure");
	ASSERT_TRUE(nodes__model_hit(g, "m1") == h, "m1 kept still");

	/* an engine with no figure ever, or a model that names no engine:
	 * the node's */
	two_engines(&r, 0.6, -1, "http://10.0.1.3:8003");
	r.models[0].server[0] = 0;
	nodes__poll_ok(&d, g, &r);
	ASSERT_TRUE(nodes__model_hit(g, "m2") == g->hit_rate, "engine without a figure: node's");
	ASSERT_TRUE(nodes__model_hit(g, "m1") == g->hit_rate, "no engine named: node's");
	cleanup();
}

/* the most flows this balancer can have had open at a node while its agent
 * scraped: at the last poll before the scrape, plus all opened since */
static void ours_bound(void)
{
	struct agent_report r;
	struct node_rt *a;
	__u64 now;

	if (!setup())
		return;
	a = &d.nodes[0];
	d.fd_load = d.fd_be_stats = -1;
	d.cfg.poll_timeout_ms = 100;
	now = clock_mono_ms();
	a->ours_hist[0] = (struct ours_snap){.t_ms = now - 2000, .active = 3, .flows = 100};
	a->ours_hist[1] = (struct ours_snap){.t_ms = now - 1000, .active = 8, .flows = 110};
	a->ours_hist[2] = (struct ours_snap){.t_ms = now - 300, .active = 2, .flows = 125};
	a->ours_next = 3;
	a->active = 4;
	a->traffic.new_flows = 130;
	agent_report__init(&r);
	r.nservers = 1;
	r.servers[0].up = true;
	r.servers[0].age_ms = 500;
	nodes__poll_ok(&d, a, &r);
	ASSERT_EQ(a->ours_max, 8 + 20,
		  "scraped 500 ms ago (+100 for the poll): 8 then, 20 opened since");
	ASSERT_EQ(a->ours_min, 0, "4 open now, 20 opened since: none for sure");
	ASSERT_EQ(a->ours_next, 4, "this poll kept");
	/* scraped as the poll came: the poll just before, none opened since */
	r.servers[0].age_ms = 0;
	d.cfg.poll_timeout_ms = 0;
	nodes__poll_ok(&d, a, &r);
	ASSERT_EQ(a->ours_max, 4, "the last poll's 4");
	ASSERT_EQ(a->ours_min, 4, "none opened since: the 4 open now");
	a->active = 9;
	nodes__poll_ok(&d, a, &r);
	ASSERT_EQ(a->ours_max, 9, "never fewer than are open now");
	ASSERT_EQ(a->ours_min, 9, "none opened since: the 9 open now");
	a->traffic.new_flows = 133;
	a->active = 12;
	nodes__poll_ok(&d, a, &r);
	ASSERT_EQ(a->ours_min, 9, "12 open now, 3 opened since the poll before");
	d.cfg.poll_timeout_ms = 100;
	r.servers[0].age_ms = 5000;
	nodes__poll_ok(&d, a, &r);
	ASSERT_EQ(a->ours_max, -1, "scraped before the history: unknown");
	ASSERT_EQ(a->ours_min, -1, "scraped before the history: unknown");
	r.servers[0].age_ms = 500;
	r.servers[0].up = false;
	nodes__poll_ok(&d, a, &r);
	ASSERT_EQ(a->ours_max, -1, "no server scraped: unknown");
	r.servers[0].up = true;
	a->traffic.new_flows = 1;
	nodes__poll_ok(&d, a, &r);
	ASSERT_EQ(a->ours_max, -1, "the counter went back: unknown");
	agent_report__free(&r);
	cleanup();
}

/* run one poll of node n with report r, what aibld logs in out[len] */
static void poll_logged(struct node_rt *n, struct agent_report *r, char *out, size_t len)
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t got = 0;

	out[0] = '\0';
	if (!ASSERT_OK_PTR(f, "tmpfile") || !ASSERT_GE(saved, 0, "dup")) {
		if (f)
			fclose(f);
		return;
	}
	fflush(stderr);
	dup2(fileno(f), STDERR_FILENO);
	nodes__poll_ok(&d, n, r);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	got = fread(out, 1, len - 1, f);
	out[got] = '\0';
	fclose(f);
}

/* a report of a decap program on eth1 that decapsulated n packets */
static void decap_report(struct agent_report *r, int64_t n)
{
	agent_report__init(r);
	r->decap = true;
	strcpy(r->decap_if, "eth1");
	for (int i = 0; i < AIBL_NCNT__MAX; i++)
		r->decap_counters[i] = 0;
	r->decap_counters[AIBL_NCNT_DECAP4] = n;
}

/* a node whose decap program starts dropping is said, with what grew,
 * once a minute at most; a node without one, or with none dropped, not */
static void decap_drops_said(void)
{
	struct agent_report r;
	struct node_rt *g;
	char log[1024];

	if (!setup())
		return;
	g = &d.nodes[2];
	decap_report(&r, 100);
	poll_logged(g, &r, log, sizeof(log));
	ASSERT_STREQ(log, "", "first report: nothing to compare");
	decap_report(&r, 250);
	r.decap_counters[AIBL_NCNT_NOT_LOCAL] = 4;
	r.decap_counters[AIBL_NCNT_PASS] = 9;
	poll_logged(g, &r, log, sizeof(log));
	ASSERT_STREQ(log, "", "more decapsulated and passed: no drop");
	r.decap_counters[AIBL_NCNT_DROP_SOURCE] = 5;
	r.decap_counters[AIBL_NCNT_DROP_NOT_VIP] = 2;
	poll_logged(g, &r, log, sizeof(log));
	ASSERT_TRUE(strstr(log, "node 'g': its decap program on eth1 dropped") &&
			strstr(log, "drop_source +5, drop_not_vip +2"),
		    "drops said with what grew");
	r.decap_counters[AIBL_NCNT_DROP_SOURCE] = 50;
	poll_logged(g, &r, log, sizeof(log));
	ASSERT_STREQ(log, "", "within the minute: not said again");
	g->decap_warned_ms -= 60000;
	r.decap_counters[AIBL_NCNT_DROP_SOURCE] = 51;
	poll_logged(g, &r, log, sizeof(log));
	ASSERT_TRUE(strstr(log, "drop_source +1") != NULL, "a minute on: said again");
	/* an agent restarted without --decap: nothing to compare */
	agent_report__init(&r);
	poll_logged(g, &r, log, sizeof(log));
	ASSERT_STREQ(log, "", "no decap program");
	cleanup();
}

/* an unload asked of n's agent: the reports in turn */
static void unload_asked(struct node_rt *n, __u64 now)
{
	memset(&n->load, 0, sizeof(n->load));
	n->load.state = NODE_LOAD_ASKED;
	n->load.unload = true;
	snprintf(n->load.model, sizeof(n->load.model), "m1");
	snprintf(n->load.svc, sizeof(n->load.svc), "chat");
	n->load.since_ms = now;
	n->have_rep = true;
	n->last_ok_ms = now;
}

/*
 * The end of an unload that takes a background load back, as the node's
 * reports show it: the agent flags the model unloading from the ask until
 * its engine has answered (ar_model.unloading). Gone then: done. Resident
 * again after the flag: the engine kept it, the model stays held and is
 * asked again background_unload_ms on. No answer for background_load_ms:
 * refused.
 */
static void unload_end(void)
{
	struct node_rt *g;
	struct node_held *h;
	__u64 now = clock_mono_ms();

	if (!setup())
		return;
	g = &d.nodes[2];
	nodes__held_add(g, "chat", "m1", now - 60000);
	unload_asked(g, now);
	/* a report from before the ask counts for nothing, even one
	 * without the model */
	resident(&g->rep, "m2", NULL);
	g->last_ok_ms = now - 1;
	nodes__load_check(&d, g, now + 200);
	ASSERT_EQ(g->load.state, NODE_LOAD_ASKED, "a report from before the ask: still asked");
	resident(&g->rep, "m1", "m2");
	g->last_ok_ms = now;
	nodes__load_check(&d, g, now + 200);
	ASSERT_EQ(g->load.state, NODE_LOAD_ASKED, "still resident: still asked");
	g->rep.models[0].resident = false;
	g->rep.models[0].unloading = true;
	nodes__load_check(&d, g, now + 400);
	ASSERT_EQ(g->load.state, NODE_LOAD_ASKED, "draining, or the engine not answered: asked");
	g->rep.models[0].unloading = false;
	nodes__load_check(&d, g, now + 1500);
	ASSERT_EQ(g->load.state, NODE_LOAD_NONE, "neither resident nor unloading: gone");
	ASSERT_EQ(d.st.bg[1][BG_DONE], 1, "counted done");

	/* the engine refuses: resident again after the flag */
	unload_asked(g, now);
	g->rep.models[0].unloading = true;
	nodes__load_check(&d, g, now + 400);
	g->rep.models[0].unloading = false;
	g->rep.models[0].resident = true;
	nodes__load_check(&d, g, now + 1500);
	h = nodes__held(g, "chat", "m1");
	ASSERT_EQ(g->load.state, NODE_LOAD_NONE, "refused: no op on the node");
	ASSERT_EQ(d.st.bg[1][BG_REFUSED], 1, "counted refused");
	ASSERT_TRUE(h && h->retry_ms >= now + d.cfg.ai.background_unload_ms && !h->quiet_ms,
		    "still held, asked again background_unload_ms on");

	/* an agent that never gets to it */
	unload_asked(g, now);
	nodes__load_check(&d, g, now + d.cfg.ai.background_load_ms);
	ASSERT_EQ(d.st.bg[1][BG_REFUSED], 2, "late: refused");
	nodes__held_drop(g, h);
	ASSERT_EQ(g->nheld, 0, "dropped");
	cleanup();
}

/*
 * A background load ends when its model turns resident (aibld's
 * background_loads(), while its service wants it) or, whether or not the
 * service still wants it, when it is not resident background_load_ms after
 * the ask: refused then. A refused load holds the node until its retry_ms
 * and is forgotten there, so it keeps no take-back and no other service's
 * load off the node for good.
 */
/*
 * A model one ai service loaded and would take back, wanted on the node by
 * another service of it: an ai one of the same model (its second port)
 * until it has done without the node for background_unload_ms, a
 * classic one that lists the node while the node has a weight.
 */
static void model_wanted(void)
{
	static const char y[] =
	    "interface: lo\n"
	    "ai: {background_unload_ms: 4000}\n"
	    "services:\n"
	    "  - {name: chat, vip: 10.0.0.1, port: 80, model: m1, policy: ai}\n"
	    "  - {name: chat2, vip: 10.0.0.1, port: 8000, model: m1, policy: ai}\n"
	    "  - {name: code, vip: 10.0.0.2, port: 80, model: m2, policy: ai}\n"
	    "  - name: fixed\n"
	    "    vip: 10.0.0.4\n"
	    "    port: 80\n"
	    "    model: m1\n"
	    "    policy: wrr\n"
	    "    nodes: [a]\n"
	    "nodes:\n"
	    "  - {name: a, address: 10.0.1.1}\n"
	    "  - {name: b, address: 10.0.1.2}\n"
	    "  - {name: g, address: 10.0.1.3, agent: 'http://10.0.1.3:9100'}\n";
	__u64 now = clock_mono_ms();
	struct node_rt *a, *g;

	if (!setup_yaml(y))
		return;
	a = &d.nodes[0];
	g = &d.nodes[2];
	/* chat2 lists every node: g at position 2 */
	ASSERT_EQ(d.cfg.services[1].nnodes, 3, "chat2's nodes");
	ASSERT_EQ(nodes__model_wanted(&d, 0, g, "m1", now), 1, "chat2 has not done without g");
	d.svcs[1].carried[2] = now - 3999;
	ASSERT_EQ(nodes__model_wanted(&d, 0, g, "m1", now), 1, "chat2 without g for 3999 ms");
	d.svcs[1].carried[2] = now - 4000;
	ASSERT_EQ(nodes__model_wanted(&d, 0, g, "m1", now), -1,
		  "chat2 without g for 4000 ms, code serves another model, fixed lists a only");
	ASSERT_EQ(nodes__model_wanted(&d, 1, g, "m1", now), 0,
		  "chat2's own take-back: chat wants g");
	ASSERT_EQ(nodes__model_wanted(&d, 2, g, "m2", now), -1,
		  "code's m2: no other service of it");

	/* a: the classic service lists it */
	d.svcs[1].carried[0] = now - 4000;
	ASSERT_EQ(nodes__model_wanted(&d, 0, a, "m1", now), 3, "fixed lists a");
	d.cfg.nodes[0].weight = 0;
	ASSERT_EQ(nodes__model_wanted(&d, 0, a, "m1", now), -1, "a at weight 0: fixed sends none");
	cleanup();
}

static void load_end(void)
{
	struct node_rt *g;
	__u64 now = clock_mono_ms(), limit;

	if (!setup())
		return;
	limit = d.cfg.ai.background_load_ms;
	g = &d.nodes[2];
	g->load.state = NODE_LOAD_ASKED;
	snprintf(g->load.model, sizeof(g->load.model), "m1");
	snprintf(g->load.svc, sizeof(g->load.svc), "chat");
	g->load.since_ms = now;
	nodes__load_check(&d, g, now + limit - 1);
	ASSERT_EQ(g->load.state, NODE_LOAD_ASKED, "within the bound: asked");
	nodes__load_check(&d, g, now + limit);
	ASSERT_EQ(g->load.state, NODE_LOAD_REFUSED, "not resident at the bound: refused");
	ASSERT_TRUE(strstr(g->load.error, "not resident") != NULL, g->load.error);
	ASSERT_EQ(d.st.bg[0][BG_REFUSED], 1, "counted refused");
	g->load.retry_ms = now + 1000;
	nodes__load_check(&d, g, now + 999);
	ASSERT_EQ(g->load.state, NODE_LOAD_REFUSED, "before its retry: refused");
	nodes__load_check(&d, g, now + 1000);
	ASSERT_EQ(g->load.state, NODE_LOAD_NONE, "at its retry: forgotten");
	ASSERT_STREQ(g->load.model, "", "nothing of it left");
	/* one queued and never sent is bound alike */
	g->load.state = NODE_LOAD_QUEUED;
	g->load.since_ms = now;
	nodes__load_check(&d, g, now + limit);
	ASSERT_EQ(g->load.state, NODE_LOAD_REFUSED, "queued past the bound: refused");
	cleanup();
}

/*
 * Slower than what: a node is judged beside the nodes that hold its
 * sessions' model. chat's m1 (a large model) lives on a and b, code's m2
 * (a small one) on g, ten times as fast: a and b are not slower for chat's
 * sessions, whose pins then hold, and b, once twice as slow as a, is.
 */
static void slower_beside_its_model(void)
{
	struct node_rt *a, *b, *g;
	struct aibl_cost c;
	struct policy_node pn;
	struct pin_ent *p;
	int n;

	if (!setup())
		return;
	a = &d.nodes[0], b = &d.nodes[1], g = &d.nodes[2];
	a->have_rep = b->have_rep = g->have_rep = true;
	resident(&a->rep, "m1", NULL);
	resident(&b->rep, "m1", NULL);
	resident(&g->rep, "m2", NULL);
	a->lat_ms = a->lat_floor_ms = 2000;
	b->lat_ms = b->lat_floor_ms = 1900;
	g->lat_ms = g->lat_floor_ms = 200;
	aibld__fleet_update(&d, 1000);
	ASSERT_TRUE(d.best_lat_floor_ms == 200, "the fleet's best: g");
	ASSERT_TRUE(d.svcs[0].best_floor_ms == 1900 && d.svcs[1].best_floor_ms == 200,
		    "each service's best: of the nodes holding its model");
	hint(&a->rep, "192.0.2.1", "10.0.0.1", "", 0.9, 60000);
	if (ASSERT_OK(nodes__build_pins(&d, &p, &n), "build")) {
		ASSERT_TRUE(n == 1 && !(p[0].val.flags & AIBL_PIN_F_SLOWER),
			    "a beside b, chat's nodes: not slower");
		free(p);
	}
	aibld__policy_node(&d, a, 1000, &pn);
	policy__cost(&d.cfg, AIBL_POL_AI, &pn, &c);
	ASSERT_EQ(c.flags & AIBL_COST_F_SLOWER, 0, "nor priced as slower");

	a->lat_ms = a->lat_floor_ms = 4000;
	aibld__fleet_update(&d, 1000);
	if (ASSERT_OK(nodes__build_pins(&d, &p, &n), "build")) {
		ASSERT_TRUE(n == 1 && (p[0].val.flags & AIBL_PIN_F_SLOWER),
			    "twice as slow as b: slower");
		free(p);
	}
	aibld__policy_node(&d, a, 1000, &pn);
	policy__cost(&d.cfg, AIBL_POL_AI, &pn, &c);
	ASSERT_EQ(c.flags & AIBL_COST_F_SLOWER, AIBL_COST_F_SLOWER, "and priced so");
	cleanup();
}

/* a node priced in two units: in an ai service (ms) and a least_conn or
 * least_time one (flows), which aibld warns of at start and reload */
static void mixed_price(void)
{
	static const char y[] = "interface: lo\n"
				"services:\n"
				"  - {name: chat, vip: 10.0.0.1, port: 80, model: m1, policy: ai}\n"
				"  - {name: web, vip: 10.0.0.3, port: 80, policy: hash}\n"
				"  - {name: api, vip: 10.0.0.4, port: 80, policy: least_conn,\n"
				"     nodes: [b]}\n"
				"nodes:\n"
				"  - {name: a, address: 10.0.1.1}\n"
				"  - {name: b, address: 10.0.1.2}\n";
	int ai, other;

	if (!setup_yaml(y))
		return;
	ASSERT_FALSE(policy__mixed_price(&d.cfg, 0, &ai, &other), "a: ai and hash, one unit");
	ASSERT_TRUE(policy__mixed_price(&d.cfg, 1, &ai, &other), "b: ai and least_conn");
	ASSERT_TRUE(ai == 0 && other == 2, "the pair named");
	cleanup();
}

/* rounds an agent's ask brought forward (anyone may ask, up to ten an
 * interval) count a failure only an interval after the last one counted:
 * an ask flood during a 300 ms agent restart must not reach fail_after */
static void asked_rounds(void)
{
	struct node_rt *a;
	__u64 iv;

	if (!setup())
		return;
	a = &d.nodes[0];
	iv = d.cfg.poll_interval_ms;
	d.round_t0_ms = 10 * iv;
	nodes__poll_fail(&d, a, NODE_FAIL_UNREACHABLE, "refused"); /* scheduled */
	d.round_early = true;
	for (int i = 1; i < 10; i++) {
		d.round_t0_ms = 10 * iv + i * iv / 10;
		nodes__poll_fail(&d, a, NODE_FAIL_UNREACHABLE, "refused");
	}
	ASSERT_EQ(a->fails, 1, "nine asked rounds within the interval: no more counted");
	ASSERT_FALSE(a->down, "still up");
	ASSERT_EQ(a->poll_errors, 10, "every failed poll still counted as an error");
	d.round_t0_ms = 11 * iv;
	nodes__poll_fail(&d, a, NODE_FAIL_UNREACHABLE, "refused");
	ASSERT_EQ(a->fails, 2, "an asked round an interval on counts");
	d.round_early = false;
	d.round_t0_ms = 11 * iv + 1;
	nodes__poll_fail(&d, a, NODE_FAIL_UNREACHABLE, "refused");
	ASSERT_TRUE(a->down, "a scheduled round always counts: down at fail_after");

	/* an unhealthy node's backend checks: counted an interval apart too */
	a->down = false;
	a->unhealthy = true;
	a->be_fails = 0;
	d.round_t0_ms = 20 * iv;
	nodes__backend_result(&d, a, false, "refused"); /* scheduled */
	d.round_early = true;
	for (int i = 1; i < 10; i++) {
		d.round_t0_ms = 20 * iv + i * iv / 10;
		nodes__backend_result(&d, a, false, "refused");
	}
	ASSERT_EQ(a->be_fails, 1, "backend: nine asked rounds within the interval, one counted");
	ASSERT_FALSE(a->down, "backend: still unhealthy, not down");
	d.round_early = false;
	for (int i = 1; i < (int)d.cfg.fail_after; i++) {
		d.round_t0_ms = (20 + i) * iv;
		nodes__backend_result(&d, a, false, "refused");
	}
	ASSERT_TRUE(a->down && a->reason == NODE_FAIL_BACKEND,
		    "backend: down at fail_after scheduled rounds");
	cleanup();
}

/* a new node: in at its first good poll, down or unhealthy as any other
 * after fail_after failed ones, and named "pending" until then */
static void pending_first_poll(void)
{
	struct node_rt *a, *g;

	if (!setup())
		return;
	a = &d.nodes[0];
	g = &d.nodes[2];
	a->unchecked = g->unchecked = true;
	ASSERT_STREQ(aibld__node_state(a), "pending", "pending until a poll answers");
	ASSERT_EQ(aibld__be_flags(a) & (AIBL_BE_F_DRAINING | AIBL_BE_F_UNHEALTHY),
		  AIBL_BE_F_DRAINING | AIBL_BE_F_UNHEALTHY, "no new flows, marked as unhealthy");
	nodes__poll_ok(&d, a, NULL);
	ASSERT_FALSE(a->unchecked, "its first good poll brings it in");
	ASSERT_STREQ(aibld__node_state(a), "up", "up at once, not after rise_after");

	for (unsigned int i = 0; i + 1 < d.cfg.fail_after; i++) {
		d.round_t0_ms += d.cfg.poll_interval_ms;
		nodes__poll_fail(&d, g, NODE_FAIL_UNREACHABLE, "refused");
	}
	ASSERT_TRUE(g->unchecked && !g->down, "pending through the failures before fail_after");
	d.round_t0_ms += d.cfg.poll_interval_ms;
	nodes__poll_fail(&d, g, NODE_FAIL_UNREACHABLE, "refused");
	ASSERT_TRUE(g->down && !g->unchecked, "down at fail_after, no backend checked");
	ASSERT_STREQ(aibld__node_state(g), "down", "named down");
	cleanup();
}

static const struct test_case cases[] = {
    {"pending_first_poll", pending_first_poll},
    {"asked_rounds", asked_rounds},
    {"mixed_price", mixed_price},
    {"load_end", load_end},
    {"model_wanted", model_wanted},
    {"unload_end", unload_end},
    {"model_hit", model_hit},
    {"decap_drops_said", decap_drops_said},
    {"fleet_references", fleet_references},
    {"stated_slots", stated_slots},
    {"fleet_prefill", fleet_prefill},
    {"ours_bound", ours_bound},
    {"breaker", breaker},
    {"agent_vs_backend", agent_vs_backend},
    {"pins", pins},
    {"pins_ties_and_life", pins_ties_and_life},
    {"pins_only_where_useful", pins_only_where_useful},
    {"slower_beside_its_model", slower_beside_its_model},
};

TEST_MAIN("nodes", cases)
