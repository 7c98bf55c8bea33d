// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Each policy's scoring against hand-computed values. */
#include <math.h>
#include <stdlib.h>
#include "test.h"
#include "../../user/aibld/policy.h"

#define NN 4

static struct config cfg;
static struct cfg_node cn[NN];
static struct cfg_service svc;
static int svc_nodes[NN] = {0, 1, 2, 3};
static struct agent_report rep[NN];
static struct policy_node pn[NN];
static struct policy_out out[NN];

static __u32 cost_of(int policy, const struct policy_node *n)
{
	struct aibl_cost c;

	policy__cost(&cfg, policy, n, &c);
	return c.cost;
}

static void setup(int policy)
{
	config__defaults(&cfg);
	memset(cn, 0, sizeof(cn));
	memset(&svc, 0, sizeof(svc));
	for (int i = 0; i < NN; i++) {
		snprintf(cn[i].name, sizeof(cn[i].name), "n%d", i);
		cn[i].weight = 100 * (i + 1);
		cn[i].accel = AIBL_ACCEL_GPU;
		agent_report__init(&rep[i]);
		pn[i] = (struct policy_node){.cfg = &cn[i],
					     .usable = true,
					     .ttft_ms = -1,
					     .lat_ms = -1,
					     .active = -1,
					     .lat_floor_ms = -1,
					     .slots = -1,
					     .run_ms = -1,
					     .since_finish_ms = -1,
					     .rep_active = -1,
					     .prev_other = NAN,
					     .ours_max = -1,
					     .ours_min = -1,
					     .best_lat_floor_ms = -1,
					     .best_per_flow_ms = -1};
	}
	cfg.nodes = cn;
	cfg.nnodes = NN;
	svc.policy = policy;
	svc.accel = -1;
	svc.nodes = svc_nodes;
	svc.nnodes = NN;
}

/* a report with every pressure at `p` (0..1) of its reference */
static void pressure(struct agent_report *r, double p)
{
	r->nvml = true;
	r->ngpus = 1;
	r->gpus[0].util_pct = 100 * p;
	r->gpus[0].mem_total_bytes = 80e9;
	r->gpus[0].mem_used_bytes = 80e9 * p;
	r->gpus[0].temp_c = cfg.ai.temp_soft_c + p * (cfg.ai.temp_hard_c - cfg.ai.temp_soft_c);
	r->queue_depth = cfg.ai.queue_ref * p;
	r->kv_cache_usage = p;
	r->in_flight = cfg.ai.inflight_ref * p;
}

static void modes(void)
{
	ASSERT_EQ(policy__mode(AIBL_POL_RR), AIBL_MODE_RR, "rr");
	ASSERT_EQ(policy__mode(AIBL_POL_WRR), AIBL_MODE_RR, "wrr");
	ASSERT_EQ(policy__mode(AIBL_POL_HASH), AIBL_MODE_HASH, "hash");
	ASSERT_EQ(policy__mode(AIBL_POL_LEAST_CONN), AIBL_MODE_P2C, "least_conn");
	ASSERT_EQ(policy__mode(AIBL_POL_LEAST_TIME), AIBL_MODE_P2C, "least_time");
	ASSERT_EQ(policy__mode(AIBL_POL_AI), AIBL_MODE_P2C, "ai");
}

static void rr_wrr_hash(void)
{
	setup(AIBL_POL_RR);
	pn[1].usable = false; /* down or draining */
	cn[2].weight = 0;     /* standby */
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "rr");
	ASSERT_EQ(out[0].weight, 1, "rr equal");
	ASSERT_EQ(out[1].weight, 0, "rr unusable");
	ASSERT_EQ(out[2].weight, 0, "rr standby");
	ASSERT_EQ(out[3].weight, 1, "rr equal");

	setup(AIBL_POL_WRR);
	cn[3].accel = AIBL_ACCEL_NONE;
	svc.accel = AIBL_ACCEL_GPU;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "wrr");
	ASSERT_EQ(out[0].weight, 100, "wrr weight");
	ASSERT_EQ(out[2].weight, 300, "wrr weight");
	ASSERT_EQ(out[3].weight, 0, "wrr: wrong accelerator");
	/* what aibld also asks when it counts a service's saturated nodes */
	ASSERT_TRUE(config__may_serve(&svc, &cn[0]), "may serve");
	ASSERT_FALSE(config__may_serve(&svc, &cn[3]), "may not: wrong accelerator");
	cn[0].weight = 0;
	ASSERT_FALSE(config__may_serve(&svc, &cn[0]), "may not: weight 0");
	cn[0].weight = 100;

	setup(AIBL_POL_HASH);
	pressure(&rep[0], 1); /* load does not matter for hash */
	pn[0].rep = &rep[0];
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "hash");
	ASSERT_EQ(out[0].weight, 100, "hash ignores load");
	ASSERT_EQ(cost_of(AIBL_POL_HASH, &pn[0]), 0, "hash no cost");
}

static void least_conn_time(void)
{
	setup(AIBL_POL_LEAST_CONN);
	rep[0].in_flight = 7.4;
	pn[0].rep = &rep[0];
	ASSERT_EQ(cost_of(AIBL_POL_LEAST_CONN, &pn[0]), 7, "in-flight");
	ASSERT_EQ(cost_of(AIBL_POL_LEAST_CONN, &pn[1]), 0, "no report");
	/* a report whose count is unknown: this balancer's flows there */
	rep[1].in_flight = -1;
	pn[1].rep = &rep[1];
	pn[1].active = 5;
	ASSERT_EQ(cost_of(AIBL_POL_LEAST_CONN, &pn[1]), 5,
		  "unknown in-flight: our flows, not idle");
	pn[1].rep = NULL;
	pn[1].active = 0;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "least_conn");
	ASSERT_EQ(out[1].weight, 200, "least_conn table weight = cfg");

	/* least_time: EWMA of TTFT, cost = ttft / ms_per_flow */
	pn[0].ttft_ms = policy__ewma(-1, 100, 0.3);
	ASSERT_LE(fabs(pn[0].ttft_ms - 100), 1e-9, "first sample");
	pn[0].ttft_ms = policy__ewma(pn[0].ttft_ms, 200, 0.3);
	ASSERT_LE(fabs(pn[0].ttft_ms - 130), 1e-9, "ewma");
	pn[0].ttft_ms = policy__ewma(pn[0].ttft_ms, -1, 0.3);
	ASSERT_LE(fabs(pn[0].ttft_ms - 130), 1e-9, "unknown sample kept");
	ASSERT_EQ(cost_of(AIBL_POL_LEAST_TIME, &pn[0]), 7, "130 / 20 ms");
	ASSERT_EQ(cost_of(AIBL_POL_LEAST_TIME, &pn[1]), 0, "unknown time");
}

static void ai_load(void)
{
	struct agent_report r;

	setup(AIBL_POL_AI);
	ASSERT_EQ(policy__ai_load(&cfg.ai, NULL, -1), 0, "no report");
	agent_report__init(&r);
	ASSERT_EQ(policy__ai_load(&cfg.ai, &r, -1), 0, "nothing known");
	pressure(&r, 0.5);
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, -1) - 0.5), 1e-9, "all at half");
	pressure(&r, 1);
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, -1) - 1), 1e-9, "all full");
	/* only queue known: L is the queue pressure alone */
	agent_report__init(&r);
	r.queue_depth = 8;
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, -1) - 0.25), 1e-9, "queue only");
	/* GPU only: util 40, mem 10 %, cold: (0.25*0.4 + 0.15*0.1 + 0) / 0.5 */
	agent_report__init(&r);
	r.nvml = true;
	r.ngpus = 2;
	r.gpus[0].util_pct = 60;
	r.gpus[1].util_pct = 20;
	r.gpus[0].mem_total_bytes = r.gpus[1].mem_total_bytes = 50;
	r.gpus[0].mem_used_bytes = 10;
	r.gpus[0].temp_c = 40;
	r.gpus[1].temp_c = 30;
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, -1) - (0.25 * 0.4 + 0.15 * 0.1) / 0.5), 1e-9,
		  "gpu only");
	/* an agent that says idle while the data plane counts flows there */
	agent_report__init(&r);
	r.in_flight = 0;
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, 32) - 0.5), 1e-9, "active flows count");
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, 0)), 1e-9, "idle when both agree");
	/* nothing measured anywhere: in flows, load_cost * L */
	pressure(&rep[0], 0.5);
	pn[0].rep = &rep[0];
	ASSERT_EQ(cost_of(AIBL_POL_AI, &pn[0]), 16, "32 * 0.5");
}

/* what the data plane adds up for a node with active flows (be_cost()) */
static long long dp_cost(const struct aibl_cost *c, long long active)
{
	return c->cost + (active > c->free ? active - c->free : 0) * c->per_flow;
}

/* ai prices node n at cost ms, free slots, per_flow ms each beyond them */
static bool ai_priced(const struct policy_node *n, __u32 cost, __u16 free, __u16 per_flow,
		      const char *what)
{
	struct aibl_cost c;

	policy__cost(&cfg, AIBL_POL_AI, n, &c);
	return ASSERT_EQ(c.cost, cost, what) && ASSERT_EQ(c.free, free, what) &&
	       ASSERT_EQ(c.per_flow, per_flow, what);
}

/* node 0's report in flight, this balancer's flows then, the report
 * before's excess and the most flows it can have had open at the scrape */
static void ai_counts(double in_flight, __s64 rep_active, double prev_other, __s64 ours_max)
{
	rep[0].in_flight = in_flight;
	pn[0].rep_active = rep_active;
	pn[0].prev_other = prev_other;
	pn[0].ours_max = ours_max;
}

/* ai's p2c cost: the latency a new request can expect, in ms */
/* a report of in_flight requests, queue of them waiting, into slots and ran */
static void slots_feed(double *slots, double *ran, struct agent_report *r, double in_flight,
		       double queue)
{
	r->in_flight = in_flight;
	r->queue_depth = queue;
	policy__slots_update(slots, ran, r, 0.5);
}

static void ai_expected_latency(void)
{
	struct aibl_cost c;
	struct agent_report r;
	double slots = -1, ran = 0;

	setup(AIBL_POL_AI);
	/* slots: what it runs while requests wait; without a queue, what it
	 * ran at once is a lower bound */
	agent_report__init(&r);
	policy__slots_update(&slots, &ran, &r, 0.5);
	ASSERT_TRUE(slots < 0 && ran == 0, "nothing reported: unknown");
	slots_feed(&slots, &ran, &r, 3, 0);
	ASSERT_TRUE(slots < 0, "3 running, none waiting: the limit unknown");
	ASSERT_LE(fabs(ran - 3), 1e-9, "but at least 3");
	slots_feed(&slots, &ran, &r, 2, 0);
	ASSERT_LE(fabs(ran - 3), 1e-9, "2 running: still at least 3");
	slots_feed(&slots, &ran, &r, 10, 2);
	ASSERT_LE(fabs(slots - 8), 1e-9, "8 running while 2 wait");
	ASSERT_LE(fabs(ran - 8), 1e-9, "ran 8 at once");
	slots_feed(&slots, &ran, &r, 12, 0);
	ASSERT_LE(fabs(slots - 8) + fabs(ran - 12), 1e-9, "12 running without a queue: ran 12");
	slots_feed(&slots, &ran, &r, 10, 4);
	ASSERT_LE(fabs(slots - 7), 1e-9, "queued again with 6 running: ewma down");
	ASSERT_LE(fabs(ran - 6), 1e-9, "and 6 is what it runs at once now, not the 12 before");
	slots_feed(&slots, &ran, &r, 1e9, 0);
	ASSERT_LE(fabs(ran - 28), 1e-9, "an implausible peak: at most 4 x its 7 slots");
	/* never queued, its agent states 8 slots (which price it): bounded
	 * by those, or one report priced it, and the fleet, free for good */
	slots = -1;
	ran = 0;
	r.slots = 8;
	slots_feed(&slots, &ran, &r, 1e9, 0);
	ASSERT_LE(fabs(ran - 32), 1e-9, "an implausible peak: at most 4 x its 8 stated slots");
	r.slots = -1;

	/* measured, no node has queued yet: its floor, and every flow
	 * counted here costs a token 1 ms, priced twice as any flow beyond
	 * the slots (below), a tie-break between equals; what it ran at once
	 * is no limit */
	pn[0].rep = &rep[0];
	pn[0].fresh = true;
	pn[0].lat_floor_ms = 240;
	ai_priced(&pn[0], 240, 0, 2, "floor, no slot limit known: every flow counts 2 x 1 ms");
	pn[0].ran = 3;
	ai_priced(&pn[0], 240, 0, 2, "ran 3 at once: still 2 x 1 ms a flow");
	/* a node that queued runs 6 at once: every node that never queued
	 * gets those slots, whatever it ran itself, so equal nodes share a
	 * burst by their counts, and a flow beyond them waits a slot's
	 * turnover (not 1 ms: twenty flows at once are not 20 ms), priced
	 * twice: its own wait, and the one it adds to each flow behind it */
	pn[0].fleet_slots = 6;
	pn[0].ran = 2;
	ai_priced(&pn[0], 240, 5, 80, "floor, the fleet's 6 slots - 1, 2 x 240 / 6 a flow");
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c);
	ASSERT_EQ(dp_cost(&c, 21), 240 + 16 * 80, "21 flows at once: 16 wait");
	{
		struct aibl_cost c6, c2;

		pn[0].ran = 6;
		policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c6);
		pn[0].ran = 2;
		policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c2);
		ASSERT_TRUE(c6.free == c2.free && c6.per_flow == c2.per_flow,
			    "ran 6 or 2: the same price");
	}
	/* a node's own measured slots come before the fleet's */
	pn[0].slots = 4;
	ai_priced(&pn[0], 240, 3, 120, "its own 4 slots - 1, 2 x 240 / 4 a flow");
	/* the requests there now hold a slot 1.2 s (long answers, not the
	 * short requests its floor was measured on): a slot turns over in
	 * 1200 / 4 ms (priced 2 x); a new request that finds one still takes
	 * the floor */
	pn[0].run_ms = 1200;
	ai_priced(&pn[0], 240, 3, 600, "floor, 2 x 1200 / 4 a flow");
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c);
	ASSERT_EQ(dp_cost(&c, 40), 240 + 37 * 600,
		  "40 flows: 37 wait a quarter of 1.2 s, priced twice");
	pn[0].slots = -1;
	ai_priced(&pn[0], 240, 5, 400, "never queued: 2 x 1200 / the fleet's 6");
	/* none of its requests has finished for 2 s: a slot is held at least
	 * that long, whatever earlier ones took */
	pn[0].slots = 4;
	pn[0].since_finish_ms = 2000;
	ai_priced(&pn[0], 240, 3, 1000, "floor, 2 x 2000 / 4 a flow");
	pn[0].since_finish_ms = 100;
	ai_priced(&pn[0], 240, 3, 600, "finished 100 ms ago: 2 x 1200 / 4 still");
	pn[0].since_finish_ms = -1;
	pn[0].run_ms = -1;
	{
		double fleet = 0;

		policy__fleet_slots_add(&fleet, -1, 5);
		ASSERT_LE(fabs(fleet), 1e-9, "ran 5 without a queue: no fleet slots");
		policy__fleet_slots_add(&fleet, 6, 4);
		ASSERT_LE(fabs(fleet - 6), 1e-9, "a node queued at 6");
		policy__fleet_slots_add(&fleet, 7.5, 9);
		ASSERT_LE(fabs(fleet - 9), 1e-9, "another queued, and ran 9 since");
		policy__fleet_slots_add(&fleet, 2, 2);
		ASSERT_LE(fabs(fleet - 9), 1e-9, "a smaller node does not lower it");
	}
	/* the price of a node not measured yet follows the best node's
	 * turnover, at the fleet's slots while that one never queued */
	ASSERT_LE(fabs(policy__per_flow_ms(&(struct policy_node){
			   .lat_floor_ms = 240, .slots = -1, .fleet_slots = 6}) -
		       40),
		  1e-9, "240 / the fleet's 6");
	ASSERT_LE(
	    fabs(policy__per_flow_ms(&(struct policy_node){.lat_floor_ms = 240, .slots = -1})),
	    1e-9, "no node has queued: 0");
	pn[0].fleet_slots = 0;
	pn[0].ran = 0;
	/* 8 slots: 7 flows still find one, each beyond waits 240 / 8 ms */
	pn[0].slots = 8;
	ai_priced(&pn[0], 240, 7, 60, "floor, slots - 1, 2 x 240 / 8 a flow");
	/* the node ran 5 requests more than this balancer counted: others'
	 * requests hold slots; 16 more fill them and 9 queue ahead, priced
	 * twice; kept-alive connections between requests leave theirs free */
	ai_counts(9, 4, NAN, -1);
	ai_priced(&pn[0], 240, 2, 60, "7 - 5 others");
	ai_counts(20, 4, NAN, -1);
	ai_priced(&pn[0], 240 + 9 * 60, 0, 60, "slots full with others' requests, 9 ahead");
	ai_counts(1, 6, NAN, -1);
	ai_priced(&pn[0], 240, 12, 60, "7 + 5 idle connections");
	/* a stale report is not believed either way */
	pn[0].fresh = false;
	ai_priced(&pn[0], 240, 7, 60, "stale: slots - 1");
	pn[0].fresh = true;
	/* after the first report, only what two reports agree on: the agent
	 * scraped before the poll, and a burst's flows came and went between */
	ai_counts(9, 4, 2, -1);
	ai_priced(&pn[0], 240, 5, 60, "5 and 2 others: 2");
	ai_counts(9, 4, -3, -1);
	ai_priced(&pn[0], 240, 7, 60, "5 others, then 3 idle connections: none");
	ai_counts(1, 6, -3, -1);
	ai_priced(&pn[0], 240, 10, 60, "5 and 3 idle connections: 3");
	/* beyond all this balancer can have had open as the agent scraped
	 * (ours_max), one report is enough: a flood straight to the node */
	ai_counts(40, 4, -3, 6);
	ai_priced(&pn[0], 240 + 27 * 60, 0, 60, "34 others for sure, the reports disagree");
	ai_counts(40, 4, 30, 6);
	ai_priced(&pn[0], 240 + 27 * 60, 0, 60, "agreed on 30, sure of 34: 34");
	ai_counts(9, 4, 2, 6);
	ai_priced(&pn[0], 240, 4, 60, "agreed on 2, sure of 3: 3");
	ai_counts(9, 4, 2, 9);
	ai_priced(&pn[0], 240, 5, 60, "sure of none: what two agree on");
	/* fewer requests than the fewest flows it can have had open then
	 * (ours_min): kept-alive connections between requests, for sure; a
	 * drained queue's idle connections are priced at one report */
	pn[0].ours_min = 20;
	ai_counts(8, 24, 5, 26);
	ai_priced(&pn[0], 240, 19, 60, "the reports disagree, 12 idle for sure");
	ai_counts(8, 24, -13, 26);
	ai_priced(&pn[0], 240, 20, 60, "agreed on 13 idle (the smaller), sure of 12: 13");
	ai_counts(8, 24, -10, 26);
	ai_priced(&pn[0], 240, 19, 60, "agreed on 10 idle, sure of 12: 12");
	ai_counts(30, 24, -3, 26);
	ai_priced(&pn[0], 240, 3, 60, "sure of 4 others, the reports disagree: ours_min is moot");
	pn[0].ours_min = -1;
	ai_counts(8, 24, 5, 26);
	ai_priced(&pn[0], 240, 7, 60, "unknown: the reports disagree, none");
	ai_counts(9, 4, NAN, -1);

	{
		double floor = -1;

		r.queue_depth = 3;
		policy__floor_update(&floor, 200, &r, 0.5);
		ASSERT_LE(fabs(floor - 200), 1e-9, "queued from the start: the first sample");
		policy__floor_update(&floor, 300, &r, 0.5);
		ASSERT_LE(fabs(floor - 200), 1e-9, "a larger queued sample: kept");
		policy__floor_update(&floor, 150, &r, 0.5);
		ASSERT_LE(fabs(floor - 150), 1e-9, "a smaller one: taken");
		/* the queue empty, but the window's requests waited: loaded */
		r.queue_depth = 0;
		r.run_avg_ms = 100;
		policy__floor_update(&floor, 6000, &r, 0.5);
		ASSERT_LE(fabs(floor - 150), 1e-9, "waited 59x its run: kept");
		policy__floor_update(&floor, 140, &r, 0.5);
		ASSERT_LE(fabs(floor - 145), 1e-9, "ran unloaded: averaged in");
		r.run_avg_ms = -1;
		r.queue_depth = 0;
		policy__floor_update(&floor, 250, &r, 0.5);
		ASSERT_LE(fabs(floor - 197.5), 1e-9, "unloaded: ewma");
	}

	/* within the latency bound of the best node it costs the best's
	 * floor (flow counts decide between equals); beyond it, its own */
	pn[0].fresh = true;
	rep[0].in_flight = -1;
	pn[0].best_lat_floor_ms = 200;
	pn[0].best_lat_ms = 220;
	pn[0].lat_ms = 250;
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c);
	ASSERT_EQ(c.cost, 200, "250 <= 1.25 x 220 + 50: the best floor");
	pn[0].lat_ms = 600;
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c);
	ASSERT_EQ(c.cost, 240, "beyond the bound: its own floor");

	/* not measured beside a measured node of the same weight: priced as
	 * that one unloaded, with no free slot, never as an idle node */
	pn[1].rep = &rep[1];
	pn[1].fresh = true;
	pn[1].best_lat_floor_ms = 200;
	pn[1].best_per_flow_ms = 25;
	pn[1].best_weight = cn[1].weight;
	policy__cost(&cfg, AIBL_POL_AI, &pn[1], &c);
	ASSERT_EQ(c.cost, 200, "the best node's floor");
	ASSERT_EQ(c.free, 0, "every flow queues");
	ASSERT_EQ(c.per_flow, 50, "2 x the best node's");
	/* so an idle node the first requests missed costs no more than its
	 * measured equal running one flow, and a second flow goes there only
	 * once that one's slots are full, until it is measured */
	{
		struct aibl_cost best = {.cost = 200, .free = 7, .per_flow = 50};

		ASSERT_TRUE(dp_cost(&c, 0) <= dp_cost(&best, 1), "not priced above its equal");
		ASSERT_TRUE(dp_cost(&c, 1) > dp_cost(&best, 7),
			    "a second flow waits to be measured");
	}
	/* weighed at a quarter of the best node (a CPU node beside GPU
	 * ones): priced four times as slow until measured */
	pn[1].best_weight = 4 * cn[1].weight;
	policy__cost(&cfg, AIBL_POL_AI, &pn[1], &c);
	ASSERT_EQ(c.cost, 4 * (1.25 * 200 + 50), "4 x the edge");
	ASSERT_EQ(c.per_flow, 200, "2 x 4 x the best node's turnover");
	/* weighed above the best node: not priced below it */
	pn[1].best_weight = cn[1].weight / 2;
	policy__cost(&cfg, AIBL_POL_AI, &pn[1], &c);
	ASSERT_EQ(c.cost, 200, "never under the best floor");
	/* no node has queued: every flow still counts, 2 x 1 ms each */
	pn[1].best_per_flow_ms = 0;
	policy__cost(&cfg, AIBL_POL_AI, &pn[1], &c);
	ASSERT_TRUE(c.free == 0 && c.per_flow == 2, "flows counted, 2 x 1 ms each");
}

/*
 * A queued flow is priced twice, its own wait and the one it adds behind
 * it: with long answers beyond a fast node's slots, an idle node 2.5x
 * slower takes the next flow once 7 wait at the fast one, not 13 (priced
 * by its own wait alone it stayed idle behind a 1.2 s queue)
 */
static void ai_queue_toll(void)
{
	struct aibl_cost fast, slow;

	setup(AIBL_POL_AI);
	/* 256-token answers: the fast node holds each of its 8 slots 1.4 s,
	 * the slow one 3.5 s */
	for (int i = 0; i < 2; i++) {
		pn[i].rep = &rep[i];
		pn[i].fresh = true;
		pn[i].slots = 8;
		pn[i].lat_floor_ms = i ? 3500 : 1400;
	}
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &fast);
	policy__cost(&cfg, AIBL_POL_AI, &pn[1], &slow);
	ASSERT_TRUE(dp_cost(&fast, 8 + 2) < dp_cost(&slow, 0),
		    "3 waiting at the fast node (0.5 s): still the fast node");
	ASSERT_TRUE(dp_cost(&slow, 0) < dp_cost(&fast, 8 + 6),
		    "7 waiting at the fast node (1.2 s): the idle slower node");
}

/*
 * A node not measured yet whose agent timed a speed probe is priced by it
 * (the controller sets its latency to policy__probe_estimate()): one that
 * probes 2.5x slower than the best measured node does not take a flow
 * while that node has a free slot; one that probes alike costs the best
 * floor, as a node without a probe does (explored as an equal).
 */
static void ai_probe_estimate(void)
{
	struct aibl_cost fast, slow, unprobed, equal;

	ASSERT_TRUE(policy__probe_estimate(200, 10, 25) == 500, "the best floor x 2.5");
	ASSERT_TRUE(policy__probe_estimate(200, 10, 6) == 200, "never under the best floor");
	ASSERT_TRUE(policy__probe_estimate(200, -1, 25) < 0, "the best node not probed: none");
	ASSERT_TRUE(policy__probe_estimate(-1, 10, 25) < 0, "nothing measured: none");
	ASSERT_TRUE(policy__probe_estimate(200, 10, 0) < 0, "a probe of 0: none");

	setup(AIBL_POL_AI);
	for (int i = 0; i < 4; i++) {
		pn[i].rep = &rep[i];
		pn[i].fresh = true;
		pn[i].best_lat_floor_ms = pn[i].best_lat_ms = 200;
		pn[i].best_per_flow_ms = 25;
		pn[i].best_weight = cn[i].weight;
		pn[i].fleet_slots = 8;
	}
	/* n0 measured: 200 ms unloaded, 8 slots */
	pn[0].lat_floor_ms = pn[0].lat_ms = 200;
	pn[0].slots = 8;
	/* n1 estimated from a probe 2.5x the best's, n3 from one 1.1x */
	pn[1].lat_floor_ms = pn[1].lat_ms = policy__probe_estimate(200, 10, 25);
	pn[3].lat_floor_ms = pn[3].lat_ms = policy__probe_estimate(200, 10, 11);
	/* n2: neither measured nor probed */
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &fast);
	policy__cost(&cfg, AIBL_POL_AI, &pn[1], &slow);
	policy__cost(&cfg, AIBL_POL_AI, &pn[2], &unprobed);
	policy__cost(&cfg, AIBL_POL_AI, &pn[3], &equal);
	ASSERT_EQ(slow.cost, 500, "priced at its estimate");
	ASSERT_TRUE(dp_cost(&fast, 7) < dp_cost(&slow, 0),
		    "a measured fast node's last free slot before the probed slow node");
	ASSERT_TRUE(dp_cost(&unprobed, 0) <= dp_cost(&fast, 7),
		    "without a probe: explored as the best node's equal");
	ASSERT_EQ(equal.cost, 200, "probed alike: the best floor, counts decide");
	ASSERT_TRUE(dp_cost(&equal, 1) <= dp_cost(&fast, 2), "and it shares the flows");
}

static void gpu_nan(struct ar_gpu *g)
{
	g->util_pct = g->mem_used_bytes = g->mem_total_bytes = g->temp_c = g->power_w = NAN;
}

/* point 6: a figure the GPU cannot give (MIG utilisation, vGPU temperature)
 * drops out of the load; it is not a reading of 0 */
static void ai_unknown_gpu_figures(void)
{
	struct agent_report r;
	double want;

	setup(AIBL_POL_AI);
	agent_report__init(&r);
	r.nvml = true;
	r.ngpus = 2;
	gpu_nan(&r.gpus[0]);
	gpu_nan(&r.gpus[1]);
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, -1)), 1e-9, "nothing known: nothing counted");
	ASSERT_TRUE(policy__gpu_util(&r) == -1, "no mean of nothing");
	r.gpus[0].util_pct = 60;
	r.gpus[0].mem_total_bytes = r.gpus[1].mem_total_bytes = 50;
	r.gpus[0].mem_used_bytes = 10;
	r.gpus[1].mem_used_bytes = 0;
	/* util 60 (GPU 1 has none), mem 10 %, temperature unknown */
	want = (0.25 * 0.6 + 0.15 * 0.1) / (0.25 + 0.15);
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, -1) - want), 1e-9, "unknown util and temp");
	ASSERT_TRUE(policy__gpu_util(&r) == 60, "mean of the known");
	ASSERT_FALSE(policy__overloaded(&cfg.ai, &r, false), "no temperature: not too hot");
	r.gpus[1].temp_c = 91;
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &r, false), "the one known is too hot");

	/* MIG: the parent's aggregate memory counts once, its instances' only
	 * when the parent cannot be read (a container holding one slice) */
	agent_report__init(&r);
	r.nvml = true;
	r.ngpus = 3;
	for (int i = 0; i < 3; i++) {
		gpu_nan(&r.gpus[i]);
		r.gpus[i].index = 0;
	}
	r.gpus[0].mig_enabled = true;
	r.gpus[0].mem_total_bytes = 80;
	r.gpus[0].mem_used_bytes = 40;
	r.gpus[0].temp_c = 30;
	for (int i = 1; i < 3; i++) {
		r.gpus[i].mig = true;
		r.gpus[i].mig_index = i - 1;
		r.gpus[i].mem_total_bytes = 40;
		r.gpus[i].mem_used_bytes = 10;
	}
	want = (0.15 * 0.5) / (0.15 + 0.1);
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, -1) - want), 1e-9, "parent's memory once");
	r.gpus[0].mem_used_bytes = NAN;
	want = (0.15 * 0.25) / (0.15 + 0.1);
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r, -1) - want), 1e-9, "the instances' instead");

	/* room for a model: an engine runs in one instance, so the largest
	 * instance's free memory, not the parent's aggregate (which also
	 * holds slices no instance was made of) nor the instances' sum */
	r.gpus[0].mem_used_bytes = 20;
	r.gpus[2].mem_used_bytes = 25;
	ASSERT_LE(fabs(policy__free_mb(&r) * 1048576 - 30), 1e-6, "the largest instance's room");
	/* a whole GPU beside it: whole GPUs add up, the larger room counts */
	r.ngpus = 4;
	gpu_nan(&r.gpus[3]);
	r.gpus[3].index = 1;
	r.gpus[3].mem_total_bytes = 50;
	r.gpus[3].mem_used_bytes = 30;
	ASSERT_LE(fabs(policy__free_mb(&r) * 1048576 - 30), 1e-6, "20 on the whole GPU: 30");
	r.gpus[3].mem_used_bytes = 10;
	ASSERT_LE(fabs(policy__free_mb(&r) * 1048576 - 40), 1e-6, "40 on the whole GPU");
	/* instances not read: the parent's aggregate promises no engine room */
	r.ngpus = 3;
	gpu_nan(&r.gpus[1]);
	gpu_nan(&r.gpus[2]);
	ASSERT_EQ(policy__free_mb(&r), -1, "a MIG GPU without its instances: unknown");
}

static void ai_overload(void)
{
	struct agent_report r;

	setup(AIBL_POL_AI);
	agent_report__init(&r);
	r.queue_depth = 31;
	ASSERT_FALSE(policy__overloaded(&cfg.ai, &r, false), "below queue_ref");
	r.queue_depth = 32;
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &r, false), "at queue_ref");
	r.queue_depth = 30;
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &r, true), "hysteresis: stays until < 28.8");
	r.queue_depth = 28;
	ASSERT_FALSE(policy__overloaded(&cfg.ai, &r, true), "clears");
	r.queue_depth = 0;
	r.kv_cache_usage = 0.96;
	ASSERT_FALSE(policy__overloaded(&cfg.ai, &r, false), "kv full, nothing waits: no overload");
	r.queue_depth = 1;
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &r, false), "kv full and requests wait");
	r.queue_depth = -1;
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &r, false), "kv full, queue unknown");
	r.queue_depth = 0;
	r.kv_cache_usage = 0.5;
	r.nvml = true;
	r.ngpus = 1;
	r.gpus[0].temp_c = 91;
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &r, false), "too hot");
	ASSERT_FALSE(policy__overloaded(&cfg.ai, NULL, true), "no report: not overloaded");
}

/* every node resident with a fresh report, idle */
static void ai_setup(void)
{
	setup(AIBL_POL_AI);
	snprintf(svc.model, sizeof(svc.model), "llama");
	svc.accel = AIBL_ACCEL_GPU;
	for (int i = 0; i < NN; i++) {
		pn[i].rep = &rep[i];
		pn[i].fresh = pn[i].monitored = true;
		rep[i].nmodels = 1;
		snprintf(rep[i].models[0].name, sizeof(rep[i].models[0].name), "llama");
		rep[i].models[0].resident = true;
	}
}

static void ai_weights(void)
{
	ai_setup();
	pressure(&rep[0], 0);
	pressure(&rep[1], 0.5);
	pressure(&rep[2], 1);
	rep[3].models[0].resident = false; /* loadable */

	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "weights");
	ASSERT_EQ(out[0].weight, 100, "idle: full weight");
	ASSERT_EQ(out[1].weight, 100, "half loaded: 200 * 0.5");
	ASSERT_EQ(out[2].weight, 15, "saturated: min headroom 300 * 0.05");
	ASSERT_EQ(out[3].weight, 0, "loadable not used while resident capacity remains");

	/* resident nodes overloaded: they keep serving, no cold start */
	pn[0].usable = false;
	pn[1].overloaded = pn[2].overloaded = true;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "busy");
	ASSERT_EQ(out[1].weight, 100, "overloaded resident keeps its share");
	ASSERT_FALSE(out[1].cold, "not cold");
	ASSERT_EQ(out[3].weight, 0, "no load to absorb a burst");

	/* wrong accelerator and absent model are never eligible */
	setup(AIBL_POL_AI);
	snprintf(svc.model, sizeof(svc.model), "llama");
	svc.accel = AIBL_ACCEL_GPU;
	cn[0].accel = AIBL_ACCEL_NONE;
	pn[1].rep = &rep[1]; /* reports no model at all */
	pn[1].fresh = pn[1].monitored = true;
	cn[2].nmodels = 1; /* static list, no agent */
	snprintf(cn[2].models[0], sizeof(cn[2].models[0]), "mistral");
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "eligibility");
	ASSERT_EQ(out[0].weight, 0, "cpu node");
	ASSERT_EQ(out[1].weight, 0, "model absent per agent");
	ASSERT_EQ(out[2].weight, 0, "model absent per static list");
	ASSERT_EQ(out[3].weight, 400, "no list, no agent: assumed resident");
	ASSERT_EQ(policy__model_state(&pn[3], ""), MODEL_RESIDENT, "no model asked");

	/* weight 1 on every node (an "equal" config): headroom and speed
	 * keep their resolution; at 1 each, every node's share rounded to 1 */
	ai_setup();
	for (int i = 0; i < NN; i++) {
		cn[i].weight = 1;
		pn[i].lat_ms = 200;
	}
	pn[3].lat_ms = 2000; /* 10x slower: beyond the bound */
	pressure(&rep[1], 0.5);
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "weights of 1");
	ASSERT_EQ(out[0].weight, 100, "idle: computed at 100");
	ASSERT_EQ(out[1].weight, 50, "half loaded: half of it");
	ASSERT_TRUE(out[3].weight >= 1 && out[3].weight < out[0].weight / 10,
		    "10x slower: a spill candidate's small share");
}

/*
 * A node overloaded by its queue or a full KV cache stays in the table: its
 * expected latency prices the wait, and the data plane compares it with a
 * slower node that is not overloaded (test_xdp_select sel_p2c_overloaded).
 * A GPU too hot is left out while another node can serve.
 */
static void ai_overloaded_priced(void)
{
	ai_setup();
	for (int i = 0; i < NN; i++)
		cn[i].weight = 100;
	cn[3].accel = AIBL_ACCEL_NONE;
	svc.accel = -1;
	pn[0].lat_ms = pn[1].lat_ms = 260;
	pn[3].lat_ms = 2100; /* a CPU node, 8x slower */
	pn[2].usable = false;
	for (int i = 0; i < 2; i++) {
		rep[i].queue_depth = 5;
		rep[i].in_flight = 13;
		rep[i].kv_cache_usage = 1;
		pn[i].overloaded = policy__overloaded(&cfg.ai, &rep[i], false);
	}
	ASSERT_TRUE(pn[0].overloaded, "KV full while requests wait");
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "GPU nodes overloaded");
	ASSERT_TRUE(out[0].weight > 0 && out[1].weight > 0, "overloaded GPU nodes stay candidates");
	ASSERT_TRUE(out[3].weight > 0, "the CPU node too: p2c compares expected latencies");
	ASSERT_TRUE(out[3].weight < out[0].weight, "the CPU node a spill candidate");

	/* too hot: out, while another node can serve */
	rep[0].nvml = true;
	rep[0].ngpus = 1;
	gpu_nan(&rep[0].gpus[0]);
	rep[0].gpus[0].temp_c = cfg.ai.temp_hard_c;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "one GPU node hot");
	ASSERT_EQ(out[0].weight, 0, "the hot node takes no new sessions");
	ASSERT_TRUE(out[1].weight > 0, "the other overloaded one does");
	rep[0].gpus[0].temp_c = cfg.ai.temp_hard_c - 2;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "cooling, within the hysteresis");
	ASSERT_EQ(out[0].weight, 0, "still out until 3 C under the limit");
	rep[0].gpus[0].temp_c = cfg.ai.temp_hard_c - 3.5;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "cooled");
	ASSERT_TRUE(out[0].weight > 0, "back");
	/* every node hot or gone: a slow answer beats none */
	rep[0].gpus[0].temp_c = cfg.ai.temp_hard_c;
	pn[1].usable = pn[3].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "only the hot node");
	ASSERT_TRUE(out[0].weight > 0, "the hot node as last resort");
}

/*
 * A GPU NVML calls lost (fallen off the bus) or in need of a reset: its
 * figures are unknown, which alone reads as a cool, idle GPU with room. The
 * node is out of new sessions while another can serve, and no load target.
 */
static void ai_gpu_lost(void)
{
	ai_setup();
	for (int i = 0; i < NN; i++) {
		rep[i].nvml = true;
		rep[i].ngpus = 2;
		for (int g = 0; g < 2; g++) {
			rep[i].gpus[g].util_pct = 20;
			rep[i].gpus[g].temp_c = 50;
			rep[i].gpus[g].mem_total_bytes = 80e9;
			rep[i].gpus[g].mem_used_bytes = 60e9;
		}
	}
	ASSERT_FALSE(policy__gpu_lost(&rep[0]), "all read");
	ASSERT_FALSE(policy__overloaded(&cfg.ai, &rep[0], false), "idle, cool");
	gpu_nan(&rep[0].gpus[1]);
	snprintf(rep[0].gpus[1].error, sizeof(rep[0].gpus[1].error),
		 "util: GPU is lost; mem: GPU is lost; temp: GPU is lost");
	ASSERT_FALSE(policy__gpu_lost(&rep[0]), "unknown figures alone: not lost");
	rep[0].gpus[1].lost = true;
	ASSERT_TRUE(policy__gpu_lost(&rep[0]), "lost");
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &rep[0], false), "a lost GPU: overloaded");
	pn[0].overloaded = policy__overloaded(&cfg.ai, &rep[0], false);
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "one node with a GPU lost");
	ASSERT_EQ(out[0].weight, 0, "no new sessions there");
	ASSERT_TRUE(out[1].weight > 0 && out[2].weight > 0 && out[3].weight > 0, "the others");
	/* as for a hot GPU, a slow answer beats none */
	pn[1].usable = pn[2].usable = pn[3].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "only that node");
	ASSERT_TRUE(out[0].weight > 0, "the last resort");

	/* not a node to load a model on, however much room it seems to have */
	ai_setup();
	for (int i = 0; i < NN; i++)
		rep[i].models[0].resident = false;
	pressure(&rep[2], 0.5);
	pressure(&rep[3], 0.0);
	rep[2].queue_depth = rep[3].queue_depth = 0;
	pn[0].usable = pn[1].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "none resident");
	ASSERT_TRUE(out[3].cold && out[3].weight > 0, "the loadable node with most headroom");
	rep[3].nvml = true;
	rep[3].ngpus = 1;
	gpu_nan(&rep[3].gpus[0]);
	rep[3].gpus[0].lost = true;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "its GPU lost");
	ASSERT_FALSE(out[3].cold || out[3].weight, "not loaded there");
	ASSERT_TRUE(out[2].cold && out[2].weight > 0, "the other loadable node");
	pn[2].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "only the lost one loadable");
	ASSERT_FALSE(out[3].cold || out[3].weight, "still not");
}

/* a cold start is a cost: only with no resident node, or after sustained saturation */
static void ai_cold_start(void)
{
	struct policy_svc st = {};

	ai_setup();
	rep[2].models[0].resident = rep[3].models[0].resident = false;
	pressure(&rep[2], 0.5);
	pressure(&rep[3], 0.25);
	rep[2].queue_depth = rep[3].queue_depth = 0; /* L 0.4 and 0.2 */

	/* no resident node at all: the one loadable node with most headroom */
	pn[0].usable = pn[1].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "none resident");
	ASSERT_EQ(out[2].weight, 0, "one load at a time, not every loadable node");
	ASSERT_TRUE(out[3].cold, "the loadable node with the most headroom");
	ASSERT_EQ(out[3].weight, 80, "400 * (1 - 0.2) * cold_start_factor 0.25");
	/* one load at a time a node: not the one loading (or unloading)
	 * another service's model while another can, headroom or not */
	pn[3].loading_other = true;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "none resident, n3 busy");
	ASSERT_TRUE(out[2].cold && out[2].weight > 0 && !out[3].weight, "the node free to load");
	pn[2].loading_other = true;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "none resident, both busy");
	ASSERT_TRUE(out[3].cold && !out[2].weight, "both loading: the most headroom, as before");
	pn[2].loading_other = pn[3].loading_other = false;

	/* residents saturated (requests queue) but only briefly: no load */
	pn[0].usable = pn[1].usable = true;
	rep[0].queue_depth = rep[1].queue_depth = cfg.ai.saturation_queue;
	ASSERT_TRUE(policy__saturated(&cfg.ai, &rep[0]), "queue at saturation_queue");
	rep[0].in_flight = 3 * cfg.ai.saturation_queue;
	ASSERT_FALSE(policy__saturated(&cfg.ai, &rep[0]), "fewer wait than run: not saturated");
	rep[0].in_flight = 2 * cfg.ai.saturation_queue;
	ASSERT_TRUE(policy__saturated(&cfg.ai, &rep[0]), "a batch's worth waits");
	st.saturated_ms = cfg.ai.cold_start_after_ms - 1;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "burst");
	ASSERT_EQ(out[2].weight + out[3].weight, 0, "a burst does not pay for a load");
	ASSERT_TRUE(out[0].weight > 0 && out[1].weight > 0, "residents serve it");

	/* sustained: one load, beside the residents */
	st.saturated_ms = cfg.ai.cold_start_after_ms;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "sustained");
	ASSERT_TRUE(out[3].cold && out[3].weight > 0, "cold start after sustained saturation");
	ASSERT_EQ(out[2].weight, 0, "only one node loads");
	ASSERT_TRUE(out[0].weight > 0 && out[1].weight > 0, "residents keep serving");

	/* beside residents, a load goes only where the model fits: n2 has
	 * 40 GB of its 80 free (38147 MiB), n3 5 GB once filled */
	ASSERT_TRUE(fabs(policy__free_mb(&rep[2]) - 40e9 / 1048576) < 1e-6, "free MiB");
	rep[3].gpus[0].mem_used_bytes = 75e9;
	svc.memory_mb = 30000;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "fit");
	ASSERT_TRUE(out[2].cold && out[2].weight > 0, "the node with room loads it");
	ASSERT_EQ(out[3].weight, 0, "not where it would evict a model");
	/* the node with room loads another service's model: that load takes
	 * it, one at a time; with room on n3 too, n3 loads this one */
	pn[2].loading_other = true;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "room taken by another load");
	ASSERT_EQ(out[2].weight + out[3].weight, 0, "no other room: no load");
	rep[3].gpus[0].mem_used_bytes = 20e9;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "room elsewhere");
	ASSERT_EQ(out[2].weight, 0, "not the node that loads another model");
	ASSERT_TRUE(out[3].cold && out[3].weight > 0, "the other node with room");
	pn[2].loading_other = false;
	rep[3].gpus[0].mem_used_bytes = 75e9;
	svc.memory_mb = 40000;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "no room");
	ASSERT_EQ(out[2].weight + out[3].weight, 0, "no room anywhere: no load");
	ASSERT_TRUE(out[0].weight > 0 && out[1].weight > 0, "residents keep serving");
	rep[3].nvml = false;
	ASSERT_EQ(policy__free_mb(&rep[3]), -1, "no NVML: unknown");
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "unknown memory");
	ASSERT_TRUE(out[3].cold && out[3].weight > 0, "unknown room: as without memory_mb");
	rep[3].nvml = true;
	pn[0].usable = pn[1].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "none resident, no room");
	ASSERT_TRUE(out[2].cold || out[3].cold, "with no node serving, a load evicts if it must");
	pn[0].usable = pn[1].usable = true;
	svc.memory_mb = 0;
	rep[3].gpus[0].mem_used_bytes = 20e9;

	/* a loadable node that is itself saturated or stale is no candidate */
	rep[3].queue_depth = rep[3].in_flight = cfg.ai.saturation_queue;
	rep[2].queue_depth = 0;
	pn[2].fresh = false;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "no candidate");
	ASSERT_EQ(out[2].weight + out[3].weight, 0, "stale and saturated nodes load nothing");

	/* cold_start_after_ms 0: never while a resident node exists */
	pn[2].fresh = true;
	cfg.ai.cold_start_after_ms = 0;
	st.saturated_ms = 1000000;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "disabled");
	ASSERT_EQ(out[2].weight, 0, "disabled");

	/* loadable nodes saturated themselves: a candidate only where a
	 * request waits less than half as long as at the resident nodes.
	 * Every slot turns over in 400 ms, 4 slots: 100 ms a place */
	cfg.ai.cold_start_after_ms = 60000;
	for (int i = 0; i < NN; i++) {
		pn[i].lat_floor_ms = 100;
		pn[i].slots = 4;
		pn[i].run_ms = 400;
	}
	rep[0].queue_depth = rep[1].queue_depth = 40; /* 4 s */
	rep[0].in_flight = rep[1].in_flight = 44;
	rep[2].queue_depth = rep[3].queue_depth = 2 * cfg.ai.saturation_queue; /* 0.8 s */
	rep[2].in_flight = rep[3].in_flight = 2 * cfg.ai.saturation_queue + 4;
	ASSERT_TRUE(policy__saturated(&cfg.ai, &rep[3]), "the loadable nodes are saturated");
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "short queue beside a long one");
	ASSERT_TRUE(fabs(st.res_wait_ms - 4000) < 1e-6, "the residents' least wait, 40 x 100 ms");
	ASSERT_TRUE((out[2].cold && out[2].weight) || (out[3].cold && out[3].weight),
		    "0.8 s against 4 s: one of them loads");
	pn[2].overloaded = pn[3].overloaded = true;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "overloaded, short queue");
	ASSERT_TRUE((out[2].cold && out[2].weight) || (out[3].cold && out[3].weight),
		    "overloaded too: the queue decides");
	pn[0].usable = pn[1].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "overloaded, none resident");
	ASSERT_EQ(out[2].weight + out[3].weight, 0, "nothing to compare with: no load there");
	/* ... unless it is the cold start under way: the queue is its load's */
	pn[3].serving = true;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "loading, queued behind its load");
	ASSERT_TRUE(out[3].cold && out[3].weight > 0, "the load under way keeps its flows");
	ASSERT_EQ(out[2].weight, 0, "and no second load");
	pn[2].overloaded = false;
	rep[2].queue_depth = rep[2].in_flight = 0;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "loading, an idle node beside it");
	ASSERT_TRUE(out[3].cold && out[3].weight > 0 && !out[2].weight,
		    "not moved to an idle node: that would be a second load");
	pn[3].fresh = false;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "the loading node's report stale");
	ASSERT_TRUE(out[2].cold && out[2].weight > 0 && !out[3].weight, "no news: the idle node");
	pn[3].fresh = true;
	pn[3].serving = false;
	pn[2].overloaded = true;
	rep[2].queue_depth = 2 * cfg.ai.saturation_queue;
	rep[2].in_flight = 2 * cfg.ai.saturation_queue + 4;
	pn[0].usable = pn[1].usable = true;
	pn[2].overloaded = pn[3].overloaded = false;
	rep[2].queue_depth = rep[3].queue_depth = 25; /* 2.5 s */
	rep[2].in_flight = rep[3].in_flight = 29;
	ASSERT_OK(policy__weights(&cfg, &svc, &st, pn, out), "queues alike");
	ASSERT_EQ(out[2].weight + out[3].weight, 0, "2.5 s against 4 s: no load");
}

/* a background load: the node takes the service's flows only once a request
 * would wait longer at the resident nodes than for the rest of the load */
static void ai_background_release(void)
{
	struct agent_report r = {.queue_depth = 6};
	struct policy_node p = {.rep = &r, .lat_floor_ms = 300, .slots = 4, .run_ms = 800};

	/* six wait for four slots each held 800 ms: 200 ms a place */
	ASSERT_TRUE(fabs(policy__per_flow_ms(&p) - 200) < 1e-9, "a slot's turnover");
	ASSERT_TRUE(fabs(policy__queue_wait_ms(&p) - 1200) < 1e-9, "6 x 200 ms");
	r.queue_depth = 0;
	ASSERT_EQ(policy__queue_wait_ms(&p), 0, "nothing waits");
	r.queue_depth = -1;
	ASSERT_TRUE(policy__queue_wait_ms(&p) < 0, "queue not reported: unknown");
	p.rep = NULL;
	ASSERT_TRUE(policy__queue_wait_ms(&p) < 0, "no report: unknown");

	ASSERT_FALSE(policy__load_release(1200, 3000, 1000),
		     "2 s of load left: the queue is shorter");
	ASSERT_TRUE(policy__load_release(1200, 3000, 1800), "1.2 s left: the queue is as long");
	ASSERT_TRUE(policy__load_release(0, 3000, 4000), "overdue: nothing to wait out");
	ASSERT_FALSE(policy__load_release(1e6, -1, 0), "no load measured there: no flows");
	ASSERT_FALSE(policy__load_release(-1, 3000, 2900), "the residents' wait unknown: no flows");

	/* the policy names node 0 for a cold start while node 1 loads the
	 * model already: the start and its share move to node 1, whichever
	 * comes first in the list */
	{
		struct policy_out out[3] = {{.weight = 40, .cold = true}, {0}, {.weight = 60}};

		policy__cold_move(out, 3, 1);
		ASSERT_TRUE(out[1].cold && out[1].weight == 40, "node 1 loads: cold, the share");
		ASSERT_TRUE(!out[0].cold && !out[0].weight, "node 0: neither");
		ASSERT_EQ(out[2].weight, 60, "a resident node keeps its own");
		out[0] = (struct policy_out){0};
		out[1] = (struct policy_out){0};
		out[2] = (struct policy_out){.weight = 40, .cold = true};
		policy__cold_move(out, 3, 0);
		ASSERT_TRUE(out[0].cold && out[0].weight == 40, "the loading node before it");
		ASSERT_TRUE(!out[2].cold && !out[2].weight, "node 2: neither");
	}
}

/*
 * A background load taken back (aibld's background_unload_ms): node 0
 * holds a load; the others as fast carry the service without it only
 * while nobody waits there and their free slots hold all node 0 runs.
 */
static void carry_setup(double in_flight)
{
	ai_setup();
	for (int i = 0; i < NN; i++) {
		pn[i].lat_floor_ms = pn[i].lat_ms = 100;
		pn[i].slots = 8;
		rep[i].queue_depth = 0;
		rep[i].in_flight = in_flight;
	}
}

static void ai_others_carry(void)
{
	carry_setup(2);
	pn[3].lat_floor_ms = pn[3].lat_ms = 1000; /* 10x slower: not as fast */
	rep[3].in_flight = 0;
	rep[0].in_flight = 12;
	ASSERT_TRUE(policy__others_carry(&cfg.ai, &svc, pn, 0), "12 runs there, 6 + 6 free");
	rep[0].in_flight = 13;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0),
		     "13: the idle slower node's slots do not count");
	rep[0].in_flight = 4;
	rep[2].queue_depth = 1;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0), "one waits at node 2");
	rep[2].queue_depth = 0;
	pn[1].overloaded = true;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0), "node 1 overloaded");
	pn[1].overloaded = false;
	pn[2].slots = -1;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0), "node 2's room not known");
	pn[2].fleet_slots = 8;
	ASSERT_TRUE(policy__others_carry(&cfg.ai, &svc, pn, 0), "the fleet's slots: known");
	pn[2].fresh = false;
	pn[1].rep = NULL;
	pn[1].fresh = false;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0),
		     "a stale and a silent node carry nothing: nobody else as fast");
	carry_setup(0);
	rep[3].models[0].resident = false; /* nodes 1 and 2 alone serve it beside 0 */
	pn[0].lat_floor_ms = -1;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0), "node 0 not measured");
	for (int i = 0; i < NN; i++)
		rep[i].probe_ms_per_token = 5;
	ASSERT_TRUE(policy__others_carry(&cfg.ai, &svc, pn, 0), "its speed probed: as fast");
	pn[0].lat_floor_ms = 100;
	pn[1].lat_floor_ms = pn[2].lat_floor_ms = 3000; /* flooded with long answers */
	ASSERT_TRUE(policy__others_carry(&cfg.ai, &svc, pn, 0), "the probes, not the floors");
	rep[1].probe_ms_per_token = rep[2].probe_ms_per_token = 12.5;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0), "2.5x slower by the probes");
	rep[1].probe_ms_per_token = rep[2].probe_ms_per_token = 5;
	cn[1].accel = cn[2].accel = AIBL_ACCEL_NONE;
	svc.accel = -1;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0), "CPU nodes beside a GPU one");
	cn[1].accel = cn[2].accel = AIBL_ACCEL_GPU;
	svc.accel = AIBL_ACCEL_GPU;
	rep[0].in_flight = -1;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0), "node 0's requests unknown");
	rep[0].in_flight = 0;
	for (int i = 1; i < NN; i++)
		rep[i].models[0].resident = false;
	ASSERT_FALSE(policy__others_carry(&cfg.ai, &svc, pn, 0), "the only node with the model");

	/* a model drained for an unload is neither served nor loadable */
	rep[1].models[0].unloading = true;
	ASSERT_EQ(policy__model_state(&pn[1], "llama"), MODEL_ABSENT, "unloading");
	ASSERT_EQ(policy__model_state(&pn[2], "llama"), MODEL_LOADABLE, "listed, not resident");
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "weights");
	ASSERT_TRUE(out[0].weight && !out[1].weight && !out[1].cold, "no share, no load");
}

/* a slower node's pins and clients' affinity yield to a faster node's free
 * slot (AIBL_PIN_F_SLOWER, AIBL_COST_F_SLOWER): by unloaded latency */
static void ai_slower(void)
{
	struct aibl_cost c;

	ai_setup();
	ASSERT_FALSE(policy__slower(&cfg.ai, -1, 150), "its floor unknown");
	ASSERT_FALSE(policy__slower(&cfg.ai, 390, -1), "the best floor unknown");
	/* 1.25 x 150 + 50 ms = 237.5 ms */
	ASSERT_TRUE(policy__slower(&cfg.ai, 390, 150),
		    "2.6x the best floor, its cached turns inside the bound");
	ASSERT_FALSE(policy__slower(&cfg.ai, 237, 150), "just inside the bound");
	ASSERT_TRUE(policy__slower(&cfg.ai, 238, 150), "just beyond it");
	/* the data plane learns it from the node's price, against the floor
	 * of reference aibld__fleet_update() gave it (ref_floor_ms: its ai
	 * services' best) */
	pn[0].lat_ms = pn[0].lat_floor_ms = 390;
	pn[0].best_lat_floor_ms = pn[0].ref_floor_ms = 150;
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c);
	ASSERT_EQ(c.flags, AIBL_COST_F_SLOWER, "priced as slower");
	pn[0].ref_floor_ms = 380;
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c);
	ASSERT_EQ(c.flags, 0, "as fast as its services' best: not flagged");
	pn[0].ref_floor_ms = 150;
	pn[0].lat_ms = pn[0].lat_floor_ms = 160;
	policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c);
	ASSERT_EQ(c.flags, 0, "as fast as the best: not flagged");
}

/* slower nodes stay out while the fast ones keep the tail short */
static void ai_latency_spill(void)
{
	ai_setup();
	cfg.ai.latency_spread = 2; /* round figures below; the default is 1.25 */
	for (int i = 0; i < NN; i++)
		cn[i].weight = 100;
	pn[0].lat_ms = 100;
	pn[1].lat_ms = 150;
	pn[2].lat_ms = 300; /* 2.5x slower accelerator */
	pn[3].lat_ms = -1;  /* never measured: explored at full weight */
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "light load");
	ASSERT_EQ(out[0].weight, 100, "fastest");
	ASSERT_EQ(out[1].weight, 67, "in proportion to speed: 100 * 100 / 150");
	ASSERT_EQ(out[2].weight, 11,
		  "beyond 2 x 100 + 50 ms: a spill candidate, 100 * (100 / 300)^2");
	ASSERT_FALSE(out[2].slow, "the fast nodes' slots unknown: the slow node keeps its pins");
	ASSERT_TRUE(out[2].beyond && !out[0].beyond && !out[1].beyond,
		    "beyond the bound: its pins yield to a free fast slot (AIBL_PIN_F_SLOWER)");
	/* 8 slots each, 3 flows at the first: room for a moved session's prefill */
	pn[0].slots = pn[1].slots = 8;
	pn[0].active = 3;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "light load, slots known");
	ASSERT_TRUE(
	    out[2].slow && !out[0].slow && !out[1].slow,
	    "a slower tier while the fast one has room: its sessions' pins go (test_nodes)");
	ASSERT_EQ(out[3].weight, 50, "unknown latency explored at 1 / latency_spread");
	ASSERT_FALSE(out[3].slow, "not measured: not known to be slow");
	pn[0].active = 4;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "half the slots taken");
	ASSERT_FALSE(out[2].slow, "a fast node runs half what it can: the pins hold");
	pn[0].active = 0;
	cn[3].weight = 25; /* the operator says it is weaker */
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "weaker unknown");
	ASSERT_EQ(out[3].weight, 0, "weaker and unknown: not while measured nodes have room");
	/* one request waits at each fast node beside many running: not busy */
	rep[0].queue_depth = rep[1].queue_depth = 1;
	rep[0].in_flight = rep[1].in_flight = 9;
	ASSERT_FALSE(policy__busy(&rep[0]), "1 waiting, 8 running");
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "fast tier not busy");
	ASSERT_EQ(out[2].weight, 11, "slow node still only a spill candidate");
	ASSERT_FALSE(out[2].slow, "a request waits inside the bound: the pins hold");
	/* half a batch waits at both fast nodes: the bound widens to the slow tier */
	rep[0].queue_depth = rep[1].queue_depth = 4;
	rep[0].in_flight = rep[1].in_flight = 12;
	ASSERT_TRUE(policy__busy(&rep[0]), "4 waiting, 8 running");
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "fast tier busy");
	ASSERT_EQ(out[2].weight, 33, "slow node spills in: 100 * 100 / 300");
	ASSERT_FALSE(out[2].slow, "the slower tier open: its pins hold");
	ASSERT_FALSE(out[2].beyond, "inside the widened bound: not a slower tier now");
	ASSERT_EQ(out[3].weight, 0, "the weaker unknown still waits: the slow node has room");
	rep[2].queue_depth = 0;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "slow node idle");
	ASSERT_EQ(out[2].weight, 33, "idle nodes of the wider tier serve too");
	/* open, it stays open while requests still wait at both */
	pn[2].serving = true;
	rep[0].queue_depth = rep[1].queue_depth = 1;
	rep[0].in_flight = rep[1].in_flight = 9;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "tier open, queues shrink");
	ASSERT_EQ(out[2].weight, 33, "stays open while requests wait everywhere inside");
	rep[0].queue_depth = 0;
	rep[0].in_flight = 8;
	pn[2].lat_ms = 400; /* beyond 1.25 x the base bound too */
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "one fast node free");
	ASSERT_EQ(out[2].weight, 6, "back to a spill candidate: 100 * (100 / 400)^2");
	ASSERT_FALSE(out[2].slow, "closed again, but one request still waits at n1: pins hold");
	rep[1].queue_depth = 0;
	rep[1].in_flight = 3;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "both fast nodes free");
	ASSERT_TRUE(out[2].slow, "nobody waits inside the bound: its pins go");
	pn[2].serving = false;
	pn[2].lat_ms = 300;
	/* every measured node saturated: the weaker unknown one still waits */
	for (int i = 0; i < 3; i++) {
		rep[i].queue_depth = cfg.ai.saturation_queue;
		rep[i].in_flight = 2 * cfg.ai.saturation_queue;
	}
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "measured ones saturated");
	ASSERT_EQ(out[3].weight, 0, "saturated is not enough for the last resort");
	/* all but one overloaded: still room */
	pn[0].overloaded = pn[1].overloaded = true;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "two overloaded");
	ASSERT_EQ(out[3].weight, 0, "one measured node takes new sessions");
	pn[2].overloaded = true;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "all overloaded");
	ASSERT_EQ(out[3].weight, 13,
		  "then explored beside them (still candidates, their queues priced): 25 / 2");
	pn[0].overloaded = pn[1].overloaded = pn[2].overloaded = false;
	cn[3].weight = 100;
	for (int i = 0; i < 3; i++) {
		rep[i].queue_depth = 0;
		rep[i].in_flight = -1;
	}
	for (int i = 0; i < 3; i++)
		pn[i].lat_ms = -1;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "nothing measured");
	ASSERT_TRUE(out[0].weight == out[3].weight && out[3].weight > 0, "all explored alike");
	/* a CPU-only node (a service that accepts any) is not explored while
	 * an accelerator node is ready; measured, it competes on latency */
	svc.accel = -1;
	cn[3].accel = AIBL_ACCEL_NONE;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "cpu node, nothing measured");
	ASSERT_EQ(out[3].weight, 0, "cpu node not explored beside ready GPU nodes");
	ASSERT_TRUE(out[0].weight > 0 && out[2].weight > 0, "the GPU nodes are");
	pn[0].overloaded = pn[1].overloaded = pn[2].overloaded = true;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "GPU nodes overloaded");
	ASSERT_TRUE(out[3].weight > 0, "then the cpu node takes new sessions");
	pn[0].overloaded = pn[1].overloaded = pn[2].overloaded = false;
	pn[3].lat_ms = 120;
	pn[0].lat_ms = 100;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "cpu node measured");
	ASSERT_TRUE(out[3].weight > 0, "measured and within the bound: it serves");
	pn[3].lat_ms = -1;
	cn[3].accel = AIBL_ACCEL_GPU;
	svc.accel = AIBL_ACCEL_GPU;
	pn[0].lat_ms = 100;
	pn[1].lat_ms = 150;
	pn[2].lat_ms = 300;

	/* near the bound: a node already serving stays up to 1.25 x it */
	pn[2].lat_ms = 260;
	pn[2].serving = true;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "hysteresis in");
	ASSERT_EQ(out[2].weight, 38, "serving, 260 < 1.25 x 200 + 50: stays, 100 * 100 / 260");
	pn[2].serving = false;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "hysteresis out");
	ASSERT_EQ(out[2].weight, 15,
		  "not serving, 260 > 2 x 100 + 50: a spill candidate, 100 * (100 / 260)^2");
	pn[2].lat_ms = 300;

	/* the fast nodes queue: their latency rises, the slow one is let in */
	pn[0].lat_ms = 400;
	pn[1].lat_ms = 450;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "loaded");
	ASSERT_EQ(out[2].weight, 100, "now the fastest");
	ASSERT_EQ(out[0].weight, 75, "300 / 400");

	/* latency decays back to the unloaded figure while the node idles */
	{
		struct agent_report r;
		double floor = -1, lat = -1;

		agent_report__init(&r);
		r.queue_depth = 0;
		r.in_flight = 1;
		r.e2e_avg_ms = 100;
		lat = policy__lat_update(lat, &floor, &r, 0.5);
		ASSERT_LE(fabs(lat - 100) + fabs(floor - 100), 1e-9, "first sample, no queue");
		r.queue_depth = 10;
		r.e2e_avg_ms = 900;
		lat = policy__lat_update(lat, &floor, &r, 0.5);
		ASSERT_LE(fabs(lat - 500), 1e-9, "queued sample raises the estimate");
		ASSERT_LE(fabs(floor - 100), 1e-9, "but not the floor");
		r.queue_depth = 0;
		r.in_flight = 0;
		r.e2e_avg_ms = -1; /* served nothing since the last scrape */
		lat = policy__lat_update(lat, &floor, &r, 0.5);
		ASSERT_LE(fabs(lat - 300), 1e-9, "idle: halfway back to the floor");
		r.in_flight = 3;
		lat = policy__lat_update(lat, &floor, &r, 0.5);
		ASSERT_LE(fabs(lat - 300), 1e-9, "busy with no new sample: kept");
		r.in_flight = -1; /* an engine that says neither queue nor running */
		lat = policy__lat_update(lat, &floor, &r, 0.5);
		ASSERT_LE(fabs(lat - 300), 1e-9, "unknown load with no new sample: kept");
	}
}

/* a stale or missing report does not look like an idle node */
static void ai_stale(void)
{
	ai_setup();
	pressure(&rep[0], 0.9);
	pressure(&rep[1], 0);
	pn[1].fresh = false; /* its last report said idle, but it is old */
	pn[2].rep = NULL;    /* agent configured, nothing heard yet */
	pn[2].fresh = false;
	pn[3].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "stale");
	ASSERT_EQ(out[0].weight, 10, "the busy but known node: 100 * (1 - 0.9)");
	ASSERT_EQ(out[1].weight, 0, "stale report: no new sessions while a known node serves");
	ASSERT_EQ(out[2].weight, 0, "no report yet");

	/* nothing known: the unknown nodes, as a last resort */
	pn[0].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "all unknown");
	ASSERT_TRUE(out[1].weight > 0 && out[2].weight > 0, "unknown nodes beat none");
	ASSERT_FALSE(out[1].cold || out[2].cold, "and are not cold starts");
	/* their old reports promise nothing: one said busy, one idle; they
	 * share by their configured weights (200 and 300) */
	pressure(&rep[1], 0.9);
	pressure(&rep[2], 0);
	pn[2].rep = &rep[2];
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "all stale");
	ASSERT_TRUE(out[1].weight * 3 == out[2].weight * 2,
		    "stale busy and stale idle weigh by their configured weights");

	/* a node without an agent is not stale: nothing was ever promised */
	ai_setup();
	pn[0].rep = NULL;
	pn[0].fresh = pn[0].monitored = false;
	cn[0].nmodels = 1;
	snprintf(cn[0].models[0], sizeof(cn[0].models[0]), "llama");
	ASSERT_OK(policy__weights(&cfg, &svc, NULL, pn, out), "agentless");
	ASSERT_EQ(out[0].weight, 100, "agentless node with the model listed");
}

/* one window of the engine's prefill figures into pf */
static void prefill_window(struct policy_prefill *pf, double ms, double tokens)
{
	struct agent_report r;

	agent_report__init(&r);
	r.prefill_avg_ms = ms;
	r.prefill_tokens_avg = tokens;
	policy__prefill_update(pf, &r, 0.3);
}

/*
 * Whether a node's prefills take turns on its compute: from the engine's
 * time per computed prompt token. Prefills in slots of their own take
 * their tokens' time (simnode's defaults: 2 ms + 0.05 ms a token, +-10 %),
 * however many run; prefills that take turns take the others' too.
 */
static void ai_prefill_shared(void)
{
	struct policy_prefill pf;

	config__defaults(&cfg);
	policy__prefill_init(&pf);
	prefill_window(&pf, -1, -1);
	ASSERT_TRUE(pf.floor < 0 && !pf.shared, "nothing finished: nothing known");
	/* a window of 0 ms (a histogram whose sum did not move) is no
	 * compute at all: it would set a floor of 0, and every prefill after
	 * would look like a wait */
	prefill_window(&pf, 0, 2000);
	prefill_window(&pf, 102, 2000);
	ASSERT_TRUE(pf.floor > 0 && !pf.shared, "0 ms: not a figure");
	/* a billion tokens in 1 ms: no engine's, nor its floor */
	prefill_window(&pf, 1, 1e9);
	ASSERT_TRUE(fabs(pf.floor - 102.0 / 2000) < 1e-9, "an implausible window: not the floor");
	for (int i = 0; i < 5; i++)
		prefill_window(&pf, 102, 2000);
	ASSERT_FALSE(pf.shared, "and the prefills after it not waits");
	policy__prefill_init(&pf);
	/* slots of their own: whole prompts, cached turns of 130 tokens whose
	 * 2 ms overhead is a quarter of their time, jitter both ways */
	for (int i = 0; i < 40; i++) {
		double j = i % 3 == 0 ? 0.9 : i % 3 == 1 ? 1.1 : 1;

		if (i % 4 == 0)
			prefill_window(&pf, (2 + 2000 * 0.05) * j, 2000);
		else if (i % 4 == 1)
			prefill_window(&pf, (2 + 130 * 0.05) * j, 130);
		else
			prefill_window(&pf, (2 + 130 * 0.05 + 2 + 2000 * 0.05) / 2 * j, 1065);
	}
	ASSERT_FALSE(pf.shared, "their own compute each: not shared");
	ASSERT_TRUE(fabs(pf.floor - 0.9 * 0.051) < 1e-3, "floor: the fastest per token");
	/* taking turns: three whole prompts at once, the last waits for two */
	for (int i = 0; i < 3; i++) {
		prefill_window(&pf, 102 * 2, 2000);
		prefill_window(&pf, 102 * 3, 2000);
	}
	ASSERT_TRUE(pf.shared, "waits longer than their compute: shared");
	ASSERT_TRUE(pf.wait_ms > pf.own_ms, "the wait measured");
	for (int i = 0; i < 20; i++)
		prefill_window(&pf, 92, 2000);
	ASSERT_TRUE(pf.shared, "idle again: still the same engine");
	ASSERT_TRUE(pf.wait_ms < 0.2 * pf.own_ms, "and its wait back to nothing");

	/* a pin's spill there: as many more as a prefill waits for */
	ASSERT_EQ(policy__pin_spill(&cfg.ai, 0), cfg.ai.pin_spill_ms, "no wait: pin_spill_ms");
	ASSERT_EQ(policy__pin_spill(&cfg.ai, 3), 4 * cfg.ai.pin_spill_ms, "three ahead: 4x");
	ASSERT_EQ(policy__pin_spill(&cfg.ai, 1e6), 16 * cfg.ai.pin_spill_ms,
		  "an agent's claim of a million ahead: the last of 16 at most");
	cfg.ai.pin_spill_ms = 10000;
	ASSERT_EQ(policy__pin_spill(&cfg.ai, 15), 65535, "within the field");
	cfg.ai.pin_spill_ms = 0;
	ASSERT_EQ(policy__pin_spill(&cfg.ai, 3), 0, "0: pins always win, still");
	config__defaults(&cfg);
}

/*
 * The compute a new session's prompt takes where prefills take turns: the
 * node's time per computed token times its requests' whole prompts
 * (vLLM's request_prompt_tokens), on a node marked shared or, once some
 * node of the fleet is, on one not marked yet; nothing where prefills run
 * in slots of their own. ai_cost() hands it to the data plane.
 */
static void ai_prefill_price(void)
{
	/* the price handed to the data plane (ms -1: the node's own) */
	static const struct {
		double ms;
		__u16 want;
		const char *what;
	} priced[] = {
	    {-1, 112, "2,200 tokens at 0.051 ms"},
	    {0, 0, "slots of their own: none"},
	    {1e9, 65535, "an agent's huge figures: within the field"},
	};
	struct policy_prefill pf;
	struct agent_report r;
	struct aibl_cost c;

	config__defaults(&cfg);
	policy__prefill_init(&pf);
	ASSERT_TRUE(policy__prefill_ms(&pf, true) == 0, "nothing known: no price");
	agent_report__init(&r);
	r.prefill_avg_ms = 102;
	r.prefill_tokens_avg = 2000;
	r.prompt_tokens_avg = 2200;
	policy__prefill_update(&pf, &r, 0.3);
	ASSERT_TRUE(fabs(pf.prompt_tok - 2200) < 1e-9, "whole prompts");
	ASSERT_TRUE(policy__prefill_ms(&pf, false) == 0, "not seen taking turns: no price");
	ASSERT_TRUE(fabs(policy__prefill_ms(&pf, true) - 2200 * 0.051) < 1e-9,
		    "another node takes turns: its prompts at its own speed");
	/* a window without the histogram keeps what was learnt */
	r.prompt_tokens_avg = -1;
	policy__prefill_update(&pf, &r, 0.3);
	ASSERT_TRUE(fabs(pf.prompt_tok - 2200) < 1e-9, "kept");
	for (int i = 0; i < 3; i++) {
		prefill_window(&pf, 102 * 2, 2000);
		prefill_window(&pf, 102 * 3, 2000);
	}
	ASSERT_TRUE(pf.shared, "marked");
	ASSERT_TRUE(fabs(policy__prefill_ms(&pf, false) - 2200 * 0.051) < 1e-9, "its own price");

	/* the cost handed to the data plane: the node's price, where ai
	 * prices in ms */
	setup(AIBL_POL_AI);
	pn[0].lat_ms = pn[0].lat_floor_ms = pn[0].best_lat_floor_ms = 300;
	pn[0].best_lat_ms = 300;
	pn[0].slots = 8;
	pn[0].run_ms = 300;
	for (size_t i = 0; i < sizeof(priced) / sizeof(priced[0]); i++) {
		pn[0].prefill_ms =
		    priced[i].ms >= 0 ? priced[i].ms : policy__prefill_ms(&pf, false);
		policy__cost(&cfg, AIBL_POL_AI, &pn[0], &c);
		ASSERT_EQ(c.prefill_ms, priced[i].want, priced[i].what);
		ASSERT_EQ(c.cost, 300, "the latency floor as before");
	}
	pn[0].prefill_ms = 112;
	policy__cost(&cfg, AIBL_POL_LEAST_TIME, &pn[0], &c);
	ASSERT_EQ(c.prefill_ms, 0, "least_time: no ms price, none");

	/* a request's wait for the compute in its slot is priced by
	 * prefill_ms there, not again in how long it holds the slot */
	pn[0].run_ms = 700;
	pn[0].prefill_wait_ms = 400;
	pn[0].prefill_ms = 112;
	ASSERT_TRUE(policy__hold_ms(&pn[0]) == 300, "700 ms held, 400 of them waiting");
	pn[0].prefill_wait_ms = 600;
	ASSERT_TRUE(policy__hold_ms(&pn[0]) == 300, "never below the floor");
	pn[0].prefill_ms = 0;
	ASSERT_TRUE(policy__hold_ms(&pn[0]) == 700, "no prompt priced: the whole hold");
	pn[0].prefill_wait_ms = -1;
	pn[0].prefill_ms = 112;
	ASSERT_TRUE(policy__hold_ms(&pn[0]) == 700, "no wait measured: the whole hold");

	/* a node with none of its own measured: the reference's at its speed */
	ASSERT_TRUE(policy__prefill_scaled(100, 250, 625) == 250,
		    "2.5x the floor, 2.5x the prompt");
	ASSERT_TRUE(policy__prefill_scaled(100, 250, -1) == 0, "its speed unknown: none");
	ASSERT_TRUE(policy__prefill_scaled(-1, 250, 625) == 0, "no reference: none");
	config__defaults(&cfg);
}

static void hysteresis(void)
{
	ASSERT_EQ(policy__hysteresis(100, 105, 10), 100, "5 % move kept");
	ASSERT_EQ(policy__hysteresis(100, 111, 10), 111, "11 % move applied");
	ASSERT_EQ(policy__hysteresis(100, 90, 10), 100, "exactly 10 % kept");
	ASSERT_EQ(policy__hysteresis(100, 0, 10), 0, "to zero always");
	ASSERT_EQ(policy__hysteresis(0, 3, 10), 3, "from zero always");
	ASSERT_EQ(policy__hysteresis(100, 101, 0), 101, "no hysteresis");
}

/*
 * Client affinity pays only where prompts find their prefixes: on at 5 %
 * of prompt tokens found cached, off below 2 %, a band between; nothing
 * reported keeps what was.
 */
static void ai_reuse(void)
{
	double hit = -1;
	bool on = true;
	int t;

	ASSERT_TRUE(policy__reuse(true, -1, 0), "nothing reported: stays on");
	ASSERT_FALSE(policy__reuse(false, -1, 0), "nothing reported: stays off");
	ASSERT_TRUE(policy__reuse(true, 0.5, 0), "no node reported: the mean is not read");
	ASSERT_FALSE(policy__reuse(true, 0, 3), "single-turn prompts: off");
	ASSERT_FALSE(policy__reuse(true, 0.019, 3), "just below the band: off");
	ASSERT_TRUE(policy__reuse(true, 0.03, 3), "in the band, on: stays on");
	ASSERT_FALSE(policy__reuse(false, 0.03, 3), "in the band, off: stays off");
	ASSERT_TRUE(policy__reuse(false, 0.05, 3), "at 5 %: on");
	ASSERT_TRUE(policy__reuse(false, 0.7, 2), "multi-turn chat: on");
	ASSERT_TRUE(policy__reuse(true, NAN, 1), "a NaN keeps what was");

	/* the hit rate as aibld smooths it (policy__ewma), a report every
	 * 200 ms: the first figure decides; a workload that turns single-turn
	 * takes affinity off within seconds, and one that turns multi-turn
	 * puts it back within a second */
	hit = policy__ewma(-1, 0, 1 - exp(-200 / AI_REUSE_TAU_MS));
	ASSERT_FALSE(policy__reuse(true, hit, 1), "first turns only at the start: off");
	for (int i = 0; i < 10; i++)
		hit = policy__ewma(hit, 0.7, 1 - exp(-200 / AI_REUSE_TAU_MS));
	on = policy__reuse(false, hit, 1);
	ASSERT_TRUE(on, "multi-turn: on");
	for (t = 0; on && t < 200; t++) {
		hit = policy__ewma(hit, 0, 1 - exp(-200 / AI_REUSE_TAU_MS));
		on = policy__reuse(on, hit, 1);
	}
	ASSERT_TRUE(!on && t * 200 <= 20000, "single-turn: off within 20 s");
	ASSERT_TRUE(t * 200 >= 5000, "but not at the first few windows");
	for (t = 0; !on && t < 200; t++) {
		hit = policy__ewma(hit, 0.7, 1 - exp(-200 / AI_REUSE_TAU_MS));
		on = policy__reuse(on, hit, 1);
	}
	ASSERT_TRUE(on && t * 200 <= 1000, "multi-turn again: on within a second");
}

static const struct test_case cases[] = {
    {"modes", modes},
    {"rr_wrr_hash", rr_wrr_hash},
    {"least_conn_time", least_conn_time},
    {"ai_load", ai_load},
    {"ai_expected_latency", ai_expected_latency},
    {"ai_queue_toll", ai_queue_toll},
    {"ai_probe_estimate", ai_probe_estimate},
    {"ai_overload", ai_overload},
    {"ai_overloaded_priced", ai_overloaded_priced},
    {"ai_unknown_gpu_figures", ai_unknown_gpu_figures},
    {"ai_gpu_lost", ai_gpu_lost},
    {"ai_weights", ai_weights},
    {"ai_cold_start", ai_cold_start},
    {"ai_background_release", ai_background_release},
    {"ai_others_carry", ai_others_carry},
    {"ai_slower", ai_slower},
    {"ai_latency_spill", ai_latency_spill},
    {"ai_stale", ai_stale},
    {"ai_prefill_shared", ai_prefill_shared},
    {"ai_prefill_price", ai_prefill_price},
    {"ai_reuse", ai_reuse},
    {"hysteresis", hysteresis},
};

TEST_MAIN("policy", cases)
