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
static int svc_nodes[NN] = { 0, 1, 2, 3 };
static struct agent_report rep[NN];
static struct policy_node pn[NN];
static struct policy_out out[NN];

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
		pn[i] = (struct policy_node){ .cfg = &cn[i], .usable = true, .ttft_ms = -1 };
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
	cn[2].weight = 0; /* standby */
	ASSERT_OK(policy__weights(&cfg, &svc, pn, out), "rr");
	ASSERT_EQ(out[0].weight, 1, "rr equal");
	ASSERT_EQ(out[1].weight, 0, "rr unusable");
	ASSERT_EQ(out[2].weight, 0, "rr standby");
	ASSERT_EQ(out[3].weight, 1, "rr equal");

	setup(AIBL_POL_WRR);
	cn[3].accel = AIBL_ACCEL_NONE;
	svc.accel = AIBL_ACCEL_GPU;
	ASSERT_OK(policy__weights(&cfg, &svc, pn, out), "wrr");
	ASSERT_EQ(out[0].weight, 100, "wrr weight");
	ASSERT_EQ(out[2].weight, 300, "wrr weight");
	ASSERT_EQ(out[3].weight, 0, "wrr: wrong accelerator");

	setup(AIBL_POL_HASH);
	pressure(&rep[0], 1); /* load does not matter for hash */
	pn[0].rep = &rep[0];
	ASSERT_OK(policy__weights(&cfg, &svc, pn, out), "hash");
	ASSERT_EQ(out[0].weight, 100, "hash ignores load");
	ASSERT_EQ(policy__cost(&cfg, AIBL_POL_HASH, &pn[0]), 0, "hash no cost");
}

static void least_conn_time(void)
{
	setup(AIBL_POL_LEAST_CONN);
	rep[0].in_flight = 7.4;
	pn[0].rep = &rep[0];
	ASSERT_EQ(policy__cost(&cfg, AIBL_POL_LEAST_CONN, &pn[0]), 7, "in-flight");
	ASSERT_EQ(policy__cost(&cfg, AIBL_POL_LEAST_CONN, &pn[1]), 0, "no report");
	ASSERT_OK(policy__weights(&cfg, &svc, pn, out), "least_conn");
	ASSERT_EQ(out[1].weight, 200, "least_conn table weight = cfg");

	/* least_time: EWMA of TTFT, cost = ttft / ms_per_flow */
	pn[0].ttft_ms = policy__ewma(-1, 100, 0.3);
	ASSERT_LE(fabs(pn[0].ttft_ms - 100), 1e-9, "first sample");
	pn[0].ttft_ms = policy__ewma(pn[0].ttft_ms, 200, 0.3);
	ASSERT_LE(fabs(pn[0].ttft_ms - 130), 1e-9, "ewma");
	pn[0].ttft_ms = policy__ewma(pn[0].ttft_ms, -1, 0.3);
	ASSERT_LE(fabs(pn[0].ttft_ms - 130), 1e-9, "unknown sample kept");
	ASSERT_EQ(policy__cost(&cfg, AIBL_POL_LEAST_TIME, &pn[0]), 7, "130 / 20 ms");
	ASSERT_EQ(policy__cost(&cfg, AIBL_POL_LEAST_TIME, &pn[1]), 0, "unknown time");
}

static void ai_load(void)
{
	struct agent_report r;

	setup(AIBL_POL_AI);
	ASSERT_EQ(policy__ai_load(&cfg.ai, NULL), 0, "no report");
	agent_report__init(&r);
	ASSERT_EQ(policy__ai_load(&cfg.ai, &r), 0, "nothing known");
	pressure(&r, 0.5);
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r) - 0.5), 1e-9, "all at half");
	pressure(&r, 1);
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r) - 1), 1e-9, "all full");
	/* only queue known: L is the queue pressure alone */
	agent_report__init(&r);
	r.queue_depth = 8;
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r) - 0.25), 1e-9, "queue only");
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
	ASSERT_LE(fabs(policy__ai_load(&cfg.ai, &r) - (0.25 * 0.4 + 0.15 * 0.1) / 0.5), 1e-9,
		  "gpu only");
	/* cost: load_cost * L */
	pressure(&rep[0], 0.5);
	pn[0].rep = &rep[0];
	ASSERT_EQ(policy__cost(&cfg, AIBL_POL_AI, &pn[0]), 16, "32 * 0.5");
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
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &r, false), "kv cache full");
	r.kv_cache_usage = 0.5;
	r.nvml = true;
	r.ngpus = 1;
	r.gpus[0].temp_c = 91;
	ASSERT_TRUE(policy__overloaded(&cfg.ai, &r, false), "too hot");
	ASSERT_FALSE(policy__overloaded(&cfg.ai, NULL, true), "no report: not overloaded");
}

static void ai_weights(void)
{
	setup(AIBL_POL_AI);
	snprintf(svc.model, sizeof(svc.model), "llama");
	svc.accel = AIBL_ACCEL_GPU;
	for (int i = 0; i < NN; i++) {
		pn[i].rep = &rep[i];
		rep[i].nmodels = 1;
		snprintf(rep[i].models[0].name, sizeof(rep[i].models[0].name), "llama");
		rep[i].models[0].resident = true;
	}
	pressure(&rep[0], 0);
	pressure(&rep[1], 0.5);
	pressure(&rep[2], 1);
	rep[3].models[0].resident = false; /* loadable */

	ASSERT_OK(policy__weights(&cfg, &svc, pn, out), "weights");
	ASSERT_EQ(out[0].weight, 100, "idle: full weight");
	ASSERT_EQ(out[1].weight, 100, "half loaded: 200 * 0.5");
	ASSERT_EQ(out[2].weight, 15, "saturated: min headroom 300 * 0.05");
	ASSERT_EQ(out[3].weight, 0, "loadable not used while resident capacity remains");

	/* resident nodes overloaded or down: the loadable one, cold */
	pn[0].usable = false;
	pn[1].overloaded = pn[2].overloaded = true;
	ASSERT_OK(policy__weights(&cfg, &svc, pn, out), "exhausted");
	ASSERT_EQ(out[1].weight + out[2].weight, 0, "overloaded skipped");
	ASSERT_TRUE(out[3].cold, "cold start");
	ASSERT_EQ(out[3].weight, 100, "400 * cold_start_factor 0.25");

	/* nothing loadable either: overloaded resident nodes are the last resort */
	pn[3].usable = false;
	ASSERT_OK(policy__weights(&cfg, &svc, pn, out), "last resort");
	ASSERT_EQ(out[1].weight, 100, "overloaded resident used");
	ASSERT_FALSE(out[1].cold, "not cold");

	/* wrong accelerator and absent model are never eligible */
	setup(AIBL_POL_AI);
	snprintf(svc.model, sizeof(svc.model), "llama");
	svc.accel = AIBL_ACCEL_GPU;
	cn[0].accel = AIBL_ACCEL_NONE;
	pn[1].rep = &rep[1]; /* reports no model at all */
	cn[2].nmodels = 1; /* static list, no agent */
	snprintf(cn[2].models[0], sizeof(cn[2].models[0]), "mistral");
	ASSERT_OK(policy__weights(&cfg, &svc, pn, out), "eligibility");
	ASSERT_EQ(out[0].weight, 0, "cpu node");
	ASSERT_EQ(out[1].weight, 0, "model absent per agent");
	ASSERT_EQ(out[2].weight, 0, "model absent per static list");
	ASSERT_EQ(out[3].weight, 400, "no list, no agent: assumed resident");
	ASSERT_EQ(policy__model_state(&pn[3], ""), MODEL_RESIDENT, "no model asked");
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

static const struct test_case cases[] = {
	{ "modes", modes },
	{ "rr_wrr_hash", rr_wrr_hash },
	{ "least_conn_time", least_conn_time },
	{ "ai_load", ai_load },
	{ "ai_overload", ai_overload },
	{ "ai_weights", ai_weights },
	{ "hysteresis", hysteresis },
};

TEST_MAIN("policy", cases)
