// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy formulas (README.md "Policies" has the same in prose):
 *
 *   rr          weight 1 for every usable node with cfg weight > 0, mode RR
 *   wrr         cfg weight, mode RR: the data plane walks the Maglev table in
 *               order, and the table holds each node in proportion to its
 *               weight, spread out, so consecutive new flows visit nodes in
 *               weighted round robin. RR rather than HASH because wrr
 *               promises shares, not affinity; the connection table keeps a
 *               flow on its node either way.
 *   hash        cfg weight, mode HASH (affinity on the session key)
 *   least_conn  cfg weight, mode P2C, cost = agent in-flight requests (the
 *               data plane adds its own active flow count)
 *   least_time  cfg weight, mode P2C, cost = EWMA(TTFT) / ms_per_flow
 *   ai          eligible nodes only, weight = cfg weight * max(min_headroom,
 *               1 - L) (* cold_start_factor when the model must be loaded),
 *               mode P2C, cost = load_cost * L, where L is the weighted mean
 *               of the pressures the node reported (below).
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <linux/types.h>
#include "aibl.h"
#include "policy.h"

__u8 policy__mode(int policy)
{
	switch (policy) {
	case AIBL_POL_RR:
	case AIBL_POL_WRR:
		return AIBL_MODE_RR;
	case AIBL_POL_HASH:
		return AIBL_MODE_HASH;
	default:
		return AIBL_MODE_P2C;
	}
}

static double clamp01(double v)
{
	return v < 0 ? 0 : v > 1 ? 1 : v;
}

enum model_state policy__model_state(const struct policy_node *n, const char *model)
{
	const struct cfg_node *c = n->cfg;

	if (!model || !model[0])
		return MODEL_RESIDENT;
	/* an agent's word wins over the static list: it sees what is loaded */
	if (n->rep) {
		for (int i = 0; i < n->rep->nmodels; i++)
			if (!strcmp(n->rep->models[i].name, model))
				return n->rep->models[i].resident ? MODEL_RESIDENT : MODEL_LOADABLE;
		for (int i = 0; i < c->nmodels; i++)
			if (!strcmp(c->models[i], model))
				return MODEL_LOADABLE;
		return MODEL_ABSENT;
	}
	/* no report: a node with no model list is assumed to serve everything */
	if (!c->nmodels)
		return MODEL_RESIDENT;
	for (int i = 0; i < c->nmodels; i++)
		if (!strcmp(c->models[i], model))
			return MODEL_RESIDENT;
	return MODEL_ABSENT;
}

static double max_temp(const struct agent_report *r)
{
	double t = -1;

	if (!r->nvml)
		return -1;
	for (int i = 0; i < r->ngpus; i++)
		if (r->gpus[i].temp_c > t)
			t = r->gpus[i].temp_c;
	return t;
}

/*
 * L = sum(a_k * p_k) / sum(a_k) over the pressures the node reported:
 *   util      mean GPU utilisation / 100
 *   mem       used / total GPU memory (all GPUs together)
 *   temp      (hottest GPU - temp_soft_c) / (temp_hard_c - temp_soft_c)
 *   queue     queue depth / queue_ref
 *   kv        KV-cache usage (0..1)
 *   inflight  in-flight requests / inflight_ref
 * each clamped to 0..1, a_k the *_weight keys. Unknown pressures drop out.
 */
double policy__ai_load(const struct cfg_ai *ai, const struct agent_report *r)
{
	double sum = 0, wsum = 0;

	if (!r)
		return 0;
	if (r->nvml && r->ngpus > 0) {
		double util = 0, used = 0, total = 0, t = max_temp(r);

		for (int i = 0; i < r->ngpus; i++) {
			util += r->gpus[i].util_pct;
			used += r->gpus[i].mem_used_bytes;
			total += r->gpus[i].mem_total_bytes;
		}
		sum += ai->util_weight * clamp01(util / r->ngpus / 100);
		wsum += ai->util_weight;
		if (total > 0) {
			sum += ai->mem_weight * clamp01(used / total);
			wsum += ai->mem_weight;
		}
		if (t >= 0) {
			sum += ai->temp_weight *
			       clamp01((t - ai->temp_soft_c) / (ai->temp_hard_c - ai->temp_soft_c));
			wsum += ai->temp_weight;
		}
	}
	if (r->queue_depth >= 0) {
		sum += ai->queue_weight * clamp01(r->queue_depth / ai->queue_ref);
		wsum += ai->queue_weight;
	}
	if (r->kv_cache_usage >= 0) {
		sum += ai->kv_weight * clamp01(r->kv_cache_usage);
		wsum += ai->kv_weight;
	}
	if (r->in_flight >= 0) {
		sum += ai->inflight_weight * clamp01(r->in_flight / ai->inflight_ref);
		wsum += ai->inflight_weight;
	}
	return wsum > 0 ? sum / wsum : 0;
}

/*
 * Overloaded on queue >= queue_ref, KV-cache >= overload_kv or hottest GPU
 * >= temp_hard_c; it clears only below 90 % of the queue limit, 0.05 under
 * the KV limit and 3 C under the temperature limit, so a node hovering at
 * a threshold does not toggle every poll.
 */
bool policy__overloaded(const struct cfg_ai *ai, const struct agent_report *r, bool was)
{
	double q_lim = ai->queue_ref, kv_lim = ai->overload_kv, t_lim = ai->temp_hard_c;
	double t;

	if (!r)
		return false;
	if (was) {
		q_lim *= 0.9;
		kv_lim -= 0.05;
		t_lim -= 3;
	}
	t = max_temp(r);
	return (r->queue_depth >= 0 && r->queue_depth >= q_lim) ||
	       (r->kv_cache_usage >= 0 && r->kv_cache_usage >= kv_lim) || (t >= 0 && t >= t_lim);
}

static __u32 to_cost(double v)
{
	if (!(v > 0))
		return 0;
	return v > 1e6 ? 1000000 : (__u32)lround(v);
}

__u32 policy__cost(const struct config *cfg, int policy, const struct policy_node *n)
{
	switch (policy) {
	case AIBL_POL_LEAST_CONN:
		return n->rep ? to_cost(n->rep->in_flight) : 0;
	case AIBL_POL_LEAST_TIME:
		return to_cost(n->ttft_ms / cfg->lt_ms_per_flow);
	case AIBL_POL_AI:
		return to_cost(cfg->ai.load_cost * policy__ai_load(&cfg->ai, n->rep));
	default:
		return 0;
	}
}

static bool accel_ok(const struct cfg_service *svc, const struct cfg_node *c)
{
	return svc->accel < 0 || c->accel == svc->accel;
}

static __u32 ai_weight(const struct config *cfg, const struct policy_node *n, bool cold)
{
	double head = 1 - policy__ai_load(&cfg->ai, n->rep), w;

	if (head < cfg->ai.min_headroom)
		head = cfg->ai.min_headroom;
	w = n->cfg->weight * head * (cold ? cfg->ai.cold_start_factor : 1);
	return w < 1 ? 1 : (__u32)lround(w);
}

/*
 * ai eligibility, in order of preference:
 *  1. usable, right accelerator, model resident and not overloaded;
 *  2. when (1) is empty (resident capacity exhausted): nodes that can load
 *     the model and are not overloaded, at cold_start_factor weight;
 *  3. when both are empty: resident nodes even if overloaded, since a slow
 *     answer beats none (their flag still lets the data plane skip them
 *     should a better node come back between two table writes).
 */
static void ai_weights(const struct config *cfg, const struct cfg_service *svc,
		       const struct policy_node *in, struct policy_out *out)
{
	int n = svc->nnodes, found = 0;

	for (int pass = 1; pass <= 3 && !found; pass++) {
		for (int k = 0; k < n; k++) {
			const struct policy_node *p = &in[k];
			enum model_state ms;

			if (!p->usable || !p->cfg->weight || !accel_ok(svc, p->cfg))
				continue;
			ms = policy__model_state(p, svc->model);
			if (pass == 1 && (ms != MODEL_RESIDENT || p->overloaded))
				continue;
			if (pass == 2 && (ms != MODEL_LOADABLE || p->overloaded))
				continue;
			if (pass == 3 && ms != MODEL_RESIDENT)
				continue;
			out[k].cold = pass == 2;
			out[k].weight = ai_weight(cfg, p, out[k].cold);
			found++;
		}
	}
}

int policy__weights(const struct config *cfg, const struct cfg_service *svc,
		    const struct policy_node *in, struct policy_out *out)
{
	memset(out, 0, sizeof(*out) * svc->nnodes);
	if (svc->policy == AIBL_POL_AI) {
		ai_weights(cfg, svc, in, out);
		return 0;
	}
	if (svc->policy < 0 || svc->policy > AIBL_POL_AI)
		return -EINVAL;
	for (int k = 0; k < svc->nnodes; k++) {
		const struct policy_node *p = &in[k];

		if (!p->usable || !p->cfg->weight || !accel_ok(svc, p->cfg))
			continue;
		out[k].weight = svc->policy == AIBL_POL_RR ? 1 : p->cfg->weight;
	}
	return 0;
}

__u32 policy__hysteresis(__u32 applied, __u32 target, unsigned int pct)
{
	__u64 diff;

	if (!applied || !target)
		return target;
	diff = applied > target ? applied - target : target - applied;
	return diff * 100 > (__u64)pct * applied ? target : applied;
}

double policy__ewma(double old, double sample, double alpha)
{
	if (sample < 0)
		return old;
	if (old < 0)
		return sample;
	return old + alpha * (sample - old);
}
