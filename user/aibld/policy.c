// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Policy formulas (docs/aibld.md "Policies" has the same in prose):
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
 *   ai          nodes with the model resident and a fresh report; weight =
 *               cfg weight * max(min_headroom, 1 - L) * s, s = best latency
 *               / node latency within latency_spread x (+ slack) of the
 *               best, s^2 beyond (a spill candidate), where L is the
 *               weighted mean of the pressures the node reported (below);
 *               mode P2C, cost = the latency a new request can expect
 *               there in ms: unloaded latency + twice a slot's turnover
 *               (how long its requests hold one / slots: its own wait and
 *               the one it adds behind it) for each flow beyond its free
 *               slots (ai_cost()). A cold start (a
 *               node that must load the model, at cold_start_factor weight)
 *               only when no node has it resident, or when every resident
 *               node has been saturated for cold_start_after_ms.
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
		for (int i = 0; i < n->rep->nmodels; i++) {
			const struct ar_model *m = &n->rep->models[i];

			if (strcmp(m->name, model))
				continue;
			/* drained for an unload: neither served nor loadable
			 * until it is gone (a load asked now would meet the
			 * agent busy with the unload) */
			return m->resident    ? MODEL_RESIDENT
			       : m->unloading ? MODEL_ABSENT
					      : MODEL_LOADABLE;
		}
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

/* hottest GPU, -1 when no temperature is known (vGPU guests have none) */
static double max_temp(const struct agent_report *r)
{
	double t = -1;

	if (!r->nvml)
		return -1;
	for (int i = 0; i < r->ngpus; i++)
		if (ar_gpu_known(r->gpus[i].temp_c) && r->gpus[i].temp_c > t)
			t = r->gpus[i].temp_c;
	return t;
}

bool policy__gpu_lost(const struct agent_report *r)
{
	for (int i = 0; r && r->nvml && i < r->ngpus; i++)
		if (r->gpus[i].lost)
			return true;
	return false;
}

/*
 * Whether gpus[i]'s memory goes into the node's sum: a GPU's when known; a
 * MIG instance's only when its parent's aggregate is not (a container that
 * holds a slice may not read the parent), so nothing counts twice.
 */
static bool gpu_mem_counts(const struct agent_report *r, int i)
{
	const struct ar_gpu *g = &r->gpus[i];

	if (!ar_gpu_known(g->mem_used_bytes) || !ar_gpu_known(g->mem_total_bytes))
		return false;
	if (!g->mig)
		return true;
	for (int k = 0; k < r->ngpus; k++)
		if (!r->gpus[k].mig && r->gpus[k].index == g->index)
			return !ar_gpu_known(r->gpus[k].mem_used_bytes) ||
			       !ar_gpu_known(r->gpus[k].mem_total_bytes);
	return true;
}

/*
 * Room for a model: what one engine can use. Whole GPUs add up (tensor
 * parallelism spans them); a GPU in MIG mode is its instances, each a
 * device of its own to the engine in it, so the largest one's free memory
 * counts, not the parent's aggregate (which also holds the slices no
 * instance was made of: a 30 GB model "fitted" a GPU cut into 10 GB
 * instances).
 */
double policy__free_mb(const struct agent_report *r)
{
	double whole = 0, slice = 0;
	bool known = false;

	if (!r || !r->nvml)
		return -1;
	for (int i = 0; i < r->ngpus; i++) {
		const struct ar_gpu *g = &r->gpus[i];
		double free;

		if (g->mig_enabled || !ar_gpu_known(g->mem_used_bytes) ||
		    !ar_gpu_known(g->mem_total_bytes))
			continue;
		free = fmax(g->mem_total_bytes - g->mem_used_bytes, 0);
		if (g->mig)
			slice = fmax(slice, free);
		else
			whole += free;
		known = true;
	}
	return known ? fmax(whole, slice) / (1024.0 * 1024.0) : -1;
}

double policy__gpu_util(const struct agent_report *r)
{
	double util = 0;
	int n = 0;

	for (int i = 0; r && r->nvml && i < r->ngpus; i++) {
		if (ar_gpu_known(r->gpus[i].util_pct)) {
			util += r->gpus[i].util_pct;
			n++;
		}
	}
	return n ? util / n : -1;
}

/*
 * L = sum(a_k * p_k) / sum(a_k) over the pressures the node reported:
 *   util      mean GPU utilisation / 100
 *   mem       used / total GPU memory (all GPUs together)
 *   temp      (hottest GPU - temp_soft_c) / (temp_hard_c - temp_soft_c)
 *   queue     queue depth / queue_ref
 *   kv        KV-cache usage (0..1)
 *   inflight  in-flight requests / inflight_ref
 * each clamped to 0..1, a_k the *_weight keys. Unknown pressures drop out,
 * and so do unknown GPU figures (null in the report, NAN here): a GPU that
 * cannot report utilisation (MIG) or temperature (vGPU) is not an idle or
 * a cold one.
 */
double policy__ai_load(const struct cfg_ai *ai, const struct agent_report *r, __s64 active)
{
	double sum = 0, wsum = 0, inflight;

	if (!r)
		return 0;
	if (r->nvml && r->ngpus > 0) {
		double util = policy__gpu_util(r), used = 0, total = 0, t = max_temp(r);

		for (int i = 0; i < r->ngpus; i++) {
			if (gpu_mem_counts(r, i)) {
				used += r->gpus[i].mem_used_bytes;
				total += r->gpus[i].mem_total_bytes;
			}
		}
		if (util >= 0) {
			sum += ai->util_weight * clamp01(util / 100);
			wsum += ai->util_weight;
		}
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
	/* an agent that reports an idle server while the data plane counts
	 * flows to it is not believed: the larger figure counts */
	inflight = r->in_flight;
	if (active > inflight)
		inflight = active;
	if (inflight >= 0) {
		sum += ai->inflight_weight * clamp01(inflight / ai->inflight_ref);
		wsum += ai->inflight_weight;
	}
	return wsum > 0 ? sum / wsum : 0;
}

/*
 * Overloaded on queue >= queue_ref, KV-cache >= overload_kv while requests
 * wait (or the queue is not reported), hottest GPU >= temp_hard_c, or a GPU
 * NVML calls lost (policy__gpu_lost(): its figures are unknown, which alone
 * would read as a cool, idle GPU, while the work on it fails); it clears
 * only below 90 % of the queue limit, 0.05 under the KV limit and
 * 3 C under the temperature limit, so a node hovering at a threshold does
 * not toggle every poll. A full KV cache alone is no overload: engines keep
 * finished requests' prefixes in it until the space is needed, and a
 * server that admits every request it gets is not saturated.
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
	return policy__gpu_lost(r) || (r->queue_depth >= 0 && r->queue_depth >= q_lim) ||
	       (r->kv_cache_usage >= 0 && r->kv_cache_usage >= kv_lim && r->queue_depth != 0) ||
	       (t >= 0 && t >= t_lim);
}

bool policy__busy(const struct agent_report *r)
{
	/* in_flight is running + waiting: waiting >= running / 2 */
	return r && r->queue_depth >= 1 && (r->in_flight < 0 || 3 * r->queue_depth >= r->in_flight);
}

bool policy__saturated(const struct cfg_ai *ai, const struct agent_report *r)
{
	/* in_flight is running + waiting */
	return r && r->queue_depth >= ai->saturation_queue &&
	       (r->in_flight < 0 || 2 * r->queue_depth >= r->in_flight);
}

/*
 * The latency estimate follows the reported mean request latency (EWMA,
 * alpha): time to first token, queueing included, plus the decode that
 * sets how soon the slot is free again and what a user waits for the
 * answer; a CPU node may start answering a cached prompt quickly and still
 * take ten times longer to finish. Samples taken while nothing queued also
 * feed *floor, the node's unloaded figure. A window in which the node
 * finished nothing and holds nothing in flight means it idles: the
 * estimate returns to the floor at the same pace, so a node left out for
 * being slow under a burst is tried again once the burst is over.
 */
void policy__floor_update(double *floor, double sample, const struct agent_report *r, double alpha)
{
	/* loaded: requests wait now, or the window's requests waited (their
	 * latency half again the time they ran, where the engine says): a
	 * flood's last requests finish with the queue empty, and with them
	 * n1's floor went from 83 ms to 6 s */
	bool loaded = r->queue_depth > 0 || (r->run_avg_ms >= 0 && sample > 1.5 * r->run_avg_ms);

	/* a node that has queued since it started (a burst on arrival) still
	 * gets a floor: its first sample, lowered by any smaller one, until
	 * unloaded samples refine it */
	if (sample >= 0 && (!loaded || *floor < 0 || sample < *floor))
		*floor = policy__ewma(*floor, sample, loaded ? 1 : alpha);
}

double policy__lat_update(double lat, double *floor, const struct agent_report *r, double alpha)
{
	double sample = r->e2e_avg_ms;

	if (sample >= 0) {
		policy__floor_update(floor, sample, r, alpha);
		return policy__ewma(lat, sample, alpha);
	}
	/* idle, as its report says (-1: it does not say) */
	if (r->in_flight == 0 && *floor >= 0 && lat > *floor)
		return lat + alpha * (*floor - lat);
	return lat;
}

void policy__prefill_init(struct policy_prefill *pf)
{
	*pf = (struct policy_prefill){.floor = -1, .wait_ms = -1, .own_ms = -1, .prompt_tok = -1};
}

/* 1 us a prompt token: a million tokens a second, several times what an
 * engine computes on one request today (simnode's fast node: 50 us) */
#define AI_PREFILL_MIN_MS_TOK 1e-3

bool policy__prefill_update(struct policy_prefill *pf, const struct agent_report *r, double alpha)
{
	double ms = r->prefill_avg_ms, tok = r->prefill_tokens_avg, own;

	if (r->prompt_tokens_avg >= 1)
		pf->prompt_tok = policy__ewma(pf->prompt_tok, r->prompt_tokens_avg, alpha);
	/* no request finished in the window, or the engine does not say (0
	 * ms of compute is no figure: a floor of 0 would make every prefill
	 * after it a wait) */
	if (!(ms > 0) || !(tok >= 1))
		return false;
	/* faster than any engine computes a prompt is no figure either: the
	 * floor only goes down, and one such window made every prefill after
	 * it a wait, the node shared for good */
	if (ms / tok < AI_PREFILL_MIN_MS_TOK)
		return false;
	if (pf->floor < 0 || ms / tok < pf->floor)
		pf->floor = ms / tok;
	own = tok * pf->floor;
	pf->wait_ms = policy__ewma(pf->wait_ms, fmax(0, ms - own), alpha);
	pf->own_ms = policy__ewma(pf->own_ms, own, alpha);
	if (pf->shared || !(pf->wait_ms > pf->own_ms))
		return false;
	pf->shared = true;
	return true;
}

/*
 * The prompt of a session that p2c sends to a node (a new session, or one
 * moved off its cache) is computed there whole. Where prefills take turns
 * on the node's compute, the next session sent there waits for it: the
 * data plane adds this much to the node's wait for each such flow and
 * works it off in real time (bpf/aibl_select.h, prefill_wait()). Free
 * slots do not show it: in the lab with shared prefill at 12 sessions/s,
 * the slow n3 took 15 first turns within 1.5 s while its 8 slots looked
 * free, and their prefills queued behind each other (TTFT up to 3.1 s). A node
 * not marked itself is priced so once another node of the fleet is: its
 * engine is most likely the same, and marking needs a loaded window, so
 * priced alone the fast nodes, marked first, sent their bursts to the slow
 * one not marked yet.
 */
double policy__prefill_ms(const struct policy_prefill *pf, bool fleet)
{
	if (!(pf->shared || fleet) || !(pf->floor > 0) || !(pf->prompt_tok >= 1))
		return 0;
	return pf->floor * pf->prompt_tok;
}

/*
 * A node that has answered nothing yet has no prefill of its own measured,
 * and looked free: in the lab with shared prefill the slow n3, priced by
 * its speed probe, took 9 first turns in the 0.7 s before its first answer
 * came back, the fast nodes already priced for theirs (TTFT up to 2.1 s).
 * Its speed against the reference node's is what its latency floor says
 * (measured, or estimated from its agent's speed probe).
 */
double policy__prefill_scaled(double ref_ms, double ref_floor_ms, double floor_ms)
{
	if (!(ref_ms > 0) || !(ref_floor_ms > 0) || !(floor_ms > 0))
		return 0;
	return ref_ms * floor_ms / ref_floor_ms;
}

/*
 * Moving a session off its cache costs its whole prompt's prefill where it
 * lands, and where prefills share the compute, every request queued there
 * waits for that prefill too: as many as a prefill waits for (contention,
 * measured). The pin yields only to a queue that much longer. pin_spill_ms
 * 0 stays 0: pins always win. At most AI_MAX_CONTENTION: the figures are an
 * agent's, and one that claims its prefills wait for a million others must
 * not make every pin of the service permanent.
 */
#define AI_MAX_CONTENTION 15  /* the last of 16 prompts admitted together */
#define AI_RAN_MAX_X	  4   /* what a node runs without a queue: at most x its slots */
#define AI_WEIGHT_RES	  100 /* the least highest weight ai's weights are computed at */

__u16 policy__pin_spill(const struct cfg_ai *ai, double contention)
{
	double v = ai->pin_spill_ms * (1 + fmin(AI_MAX_CONTENTION, fmax(0, contention)));

	return v >= 65535 ? 65535 : (__u16)lround(v);
}

static __u32 to_cost(double v)
{
	if (!(v > 0))
		return 0;
	return v > 1e6 ? 1000000 : (__u32)lround(v);
}

void policy__slots_update(double *slots, double *ran, const struct agent_report *r, double alpha)
{
	double running, bound;

	if (!r || r->in_flight < 0 || r->queue_depth < 0)
		return;
	running = r->in_flight - r->queue_depth;
	if (running < 1)
		return;
	/* requests wait: it runs all it can (a batch limit, or the KV cache).
	 * That is also the most it runs at once now: a peak from shorter
	 * prompts, or one implausible report, no longer counts as free slots
	 * of a node that queues */
	if (r->queue_depth >= 1) {
		*slots = policy__ewma(*slots, running, alpha);
		*ran = running;
		return;
	}
	/* without a queue, more than its slots (a peak from shorter
	 * prompts), but not without bound: one implausible report (in_flight
	 * 1e9, which the parser takes) priced the node as free whatever its
	 * flows until it queued again. The bound is its measured slots, or
	 * where it never queued those its agent states (they price it too,
	 * nodes__slots(): unbounded, that one report also raised the fleet's
	 * slots, and every node that never queued was priced free) */
	bound = *slots >= 1 ? *slots : r->slots >= 1 ? r->slots : -1;
	if (bound >= 1 && running > AI_RAN_MAX_X * bound)
		running = AI_RAN_MAX_X * bound;
	if (running > *ran)
		*ran = running;
}

void policy__fleet_slots_add(double *fleet, double slots, double ran)
{
	/* slots are measured only where a node queued; what a node ran
	 * without a queue is no limit */
	if (slots >= 1 && fmax(slots, ran) > *fleet)
		*fleet = fmax(slots, ran);
}

double policy__hold_ms(const struct policy_node *n)
{
	double hold;

	if (!(n->lat_floor_ms > 0))
		return -1;
	/* what the requests there now take, queueing aside: a node flooded
	 * with long answers turns a slot over slower than the short requests
	 * its floor was measured on (priced by the floor, 36 queued answers
	 * of 400 tokens looked a quarter as long as they were) */
	hold = n->run_ms > 0 ? n->run_ms : n->lat_floor_ms;
	/* where prefills take turns and the prompts waiting for the compute
	 * are priced (prefill_ms), a request's wait for it in its slot is
	 * priced there: counted in the hold as well, a fast node's queue cost
	 * 2.4 s while its first turns' median TTFT was 0.6 s, and the slow
	 * node took the first turns (docs/benchmarks.md) */
	if (n->prefill_ms > 0 && n->prefill_wait_ms > 0)
		hold = fmax(hold - n->prefill_wait_ms, n->lat_floor_ms);
	/* and none of them has finished for longer: at least that (a flood
	 * of long answers is priced before the first one ends) */
	if (n->since_finish_ms > hold)
		hold = n->since_finish_ms;
	return hold;
}

double policy__probe_estimate(double best_floor_ms, double best_probe_ms, double probe_ms)
{
	if (!(best_floor_ms > 0) || !(best_probe_ms > 0) || !(probe_ms > 0))
		return -1;
	/* a node that probes faster than the best measured one is priced
	 * as that one until it is measured itself: one probe of 16 tokens
	 * is not worth a burst */
	return best_floor_ms * fmax(1, probe_ms / best_probe_ms);
}

double policy__per_flow_ms(const struct policy_node *n)
{
	double hold = policy__hold_ms(n);

	if (!(hold > 0))
		return -1;
	if (n->slots >= 1)
		return hold / n->slots;
	/* never queued and none stated: the fleet's slots; no node has
	 * queued or states them: no slot limit known */
	return n->fleet_slots >= 1 ? hold / n->fleet_slots : 0;
}

double policy__queue_wait_ms(const struct policy_node *n)
{
	double per;

	if (!n->rep || n->rep->queue_depth < 0)
		return -1;
	if (n->rep->queue_depth < 1)
		return 0;
	per = policy__per_flow_ms(n);
	return per > 0 ? n->rep->queue_depth * per : -1;
}

bool policy__load_release(double wait_ms, double est_ms, double elapsed_ms)
{
	if (wait_ms < 0 || !(est_ms > 0))
		return false;
	return wait_ms >= est_ms - elapsed_ms;
}

void policy__cold_move(struct policy_out *out, int n, int to)
{
	for (int j = 0; j < n; j++) {
		/* not `to` itself: made cold by an earlier j, it would hand
		 * its share to itself and then lose it */
		if (j == to || !out[j].cold)
			continue;
		out[to].cold = true;
		out[to].weight = out[j].weight;
		out[j].cold = false;
		out[j].weight = 0;
	}
}

/*
 * ai: the latency a new request can expect at the node, in ms, as the data
 * plane completes it with the flows it counts (struct aibl_cost): the
 * node's unloaded request latency, plus, once its slots are full, twice a
 * slot's turnover (policy__per_flow_ms()) for every flow ahead (the price
 * of a flow that queues, below). The whole request:
 * a session's first turn, the one a balancer places, has no cached prefix,
 * its prefill and decode both scale with the node's speed, and a mean TTFT
 * over cached later turns would hide it (an uncached TTFT estimated from a
 * window's TTFT and prefix hit rate was tried: the two counters' windows
 * do not cover the same requests, and a slow node looked fastest).
 * Requests the node runs for others (another balancer, clients that bypass
 * this one) take slots first; connections counted here that carry no
 * request leave theirs. A node not measured yet is priced with no free
 * slot, exploring it must not look free: weighed as the best node, at the
 * best node's floor; weighed below it, at the edge of its latency bound
 * and as much slower as the weights say. Nothing
 * measured anywhere: in flows, as least_conn with the reported pressure
 * (load_cost * L).
 */
/*
 * Requests the node ran beyond the flows counted here when its report came:
 * others' requests hold slots (> 0), kept-alive connections between requests
 * leave theirs free (< 0). Only what the last two reports agree on, the
 * smaller excess of the same sign: an agent scrapes its server up to a
 * scrape interval before the poll that brings the report, and the flows a
 * burst opened or closed in between looked like others' requests. In the
 * lab, where no others send requests, n1 was priced with 3 and a burst of 18
 * first turns gave the ninth to n2, to wait for one of its 8 slots (`burst`
 * at 3 sessions/s, seed 1: TTFT p99 345 ms; 123 ms with two reports agreeing).
 * Beyond the most flows this balancer can have had open as the agent
 * scraped (ours_max), one report is enough; so it is for the fewest it can
 * have had open then (ours_min) beyond what the node ran.
 */
static double ai_others(const struct policy_node *n)
{
	double o, sure = 0;

	if (!n->fresh || !n->rep || n->rep->in_flight < 0 || n->rep_active < 0)
		return 0;
	o = n->rep->in_flight - n->rep_active;
	if (isnan(n->prev_other))
		return o;
	/* beyond all this balancer can have had open while the agent
	 * scraped, the node's requests are others' in this report alone: a
	 * flood sent straight to a node is priced at its first report (with
	 * two to agree, 3 of 32 new sessions went to a node whose queue of
	 * 36 had just been reported, and waited 18 s there) */
	if (n->ours_max >= 0 && n->rep->in_flight > n->ours_max)
		sure = n->rep->in_flight - n->ours_max;
	/* fewer requests than the fewest flows this balancer can have had
	 * open: kept-alive connections between requests, in this report
	 * alone too. A queue that drained leaves them open, and with two
	 * reports to agree their slots looked taken a poll longer: keepalive
	 * at 12 sessions/s, a fast node given 6 to 8 requests for its 8 slots was
	 * priced with 9 queued, and new sessions went to the 2.5x slower n3 */
	else if (n->ours_min >= 0 && n->rep->in_flight < n->ours_min)
		sure = n->rep->in_flight - n->ours_min;
	if (o > 0 && n->prev_other > 0)
		return fmax(sure, fmin(o, n->prev_other));
	if (o < 0 && n->prev_other < 0)
		return fmin(sure, fmax(o, n->prev_other));
	return sure;
}

static void ai_cost(const struct config *cfg, const struct policy_node *n, struct aibl_cost *c)
{
	double lat = n->lat_floor_ms, per = policy__per_flow_ms(n), slots = n->slots;
	double other = 0, free = 65535;

	if (!(lat > 0)) {
		double weaker = 1;

		if (!(n->best_lat_floor_ms > 0)) {
			c->cost = to_cost(cfg->ai.load_cost *
					  policy__ai_load(&cfg->ai, n->rep, n->active));
			return;
		}
		/* its configured weight, against the best node's, is all that
		 * is known of its speed. Weighed as the best node, it is
		 * priced as that one unloaded: each flow sent there queues
		 * (slots = 1 below), so it is explored a flow at a time and
		 * takes a share only once measured. Priced at the edge of the
		 * best node's bound instead, a fast node that had no request
		 * in its first second took none while the measured one queued
		 * (default at 3 sessions/s, seed 2: 59 of 70 requests on n1,
		 * TTFT p99 301 ms; 122 ms priced so). A node weighed below the
		 * best (a CPU node at a quarter beside GPU ones) is priced at
		 * that edge and four times as slow, so a burst does not pour
		 * into it before its first answer: at the best floor times
		 * four, a CPU node eight times slower took a session whose
		 * cache was gone (kv-pressure at 12 sessions/s: TTFT 1.0 s,
		 * the run's tok/s 0.81x) */
		if (n->best_weight > n->cfg->weight && n->cfg->weight)
			weaker = (double)n->best_weight / n->cfg->weight;
		lat = weaker > 1 ? weaker * (cfg->ai.latency_spread * n->best_lat_floor_ms +
					     cfg->ai.latency_slack_ms)
				 : n->best_lat_floor_ms;
		per = weaker * (n->best_per_flow_ms > 1 ? n->best_per_flow_ms : 1);
		slots = 1;
	} else {
		/* nodes of about the same speed (request latency within the
		 * bound of the best, as for the table's weights) cost the same
		 * while they have room, so their flow counts decide, not the
		 * noise in their latency floors */
		if (n->best_lat_floor_ms > 0 && n->lat_ms > 0 && n->best_lat_ms > 0 &&
		    n->lat_ms <=
			cfg->ai.latency_spread * n->best_lat_ms + cfg->ai.latency_slack_ms &&
		    lat > n->best_lat_floor_ms)
			lat = n->best_lat_floor_ms;
		if (n->slots >= 1) {
			/* it queued: its slots are measured, or it has run
			 * more at once since; or its agent states them */
			if (n->ran > slots)
				slots = n->ran;
		} else if (per > 0) {
			/* no queue seen here yet: its own slots are not known,
			 * and what it ran at once does not measure them (the
			 * node that was given more ran more, and would be
			 * given more again). The fleet's, learnt where another
			 * node queued (policy__per_flow_ms): every node that
			 * has not queued gets them alike, so equal nodes share
			 * a burst by their counts, and each flow beyond them
			 * costs a slot's turnover. At 1 ms a flow, a burst of
			 * twenty sessions arriving at once cost a fast node
			 * 20 ms more and all went there, to wait, while an
			 * equal node took none */
			slots = n->fleet_slots;
		} else {
			/* no node has queued: no limit is known. Every flow
			 * costs a token 1 ms, a tie-break between equals; what
			 * nodes ran without a queue is no limit (priced as
			 * one, a light load's third concurrent request sent
			 * sessions to slower nodes) */
			slots = 1;
			per = 1;
		}
	}
	if (per > 0) {
		/* a flow beyond the free slots is priced twice: the wait it
		 * has, and the same again that it adds to each flow that comes
		 * behind it (the toll of Naor's queue-joining problem). Priced
		 * by its own wait alone, each choice was right for the request
		 * and the fleet's spare capacity stayed idle: with 256-token
		 * answers beyond the fast nodes' capacity a 2.5x slower node
		 * took none of a model's 33 requests while they waited up to
		 * 1.4 s at the fast one, as its whole answer was longer still.
		 * A pin's spill (pin_spill_ms) weighs waits priced so too */
		per *= 2;
		/* others' requests hold slots; kept-alive connections
		 * between requests leave theirs free (ai_others()) */
		other = ai_others(n);
		free = floor(slots - 1 - other);
		if (free < 0) {
			lat += -free * per;
			free = 0;
		}
	}
	c->cost = to_cost(lat);
	c->free = free > 65535 ? 65535 : (__u16)free;
	c->per_flow = per >= 65535 ? 65535 : per < 1 ? 1 : (__u16)lround(per);
	if (per > 0 && n->prefill_ms > 0)
		c->prefill_ms = n->prefill_ms >= 65535 ? 65535 : (__u16)lround(n->prefill_ms);
	if (policy__slower(&cfg->ai, n->lat_floor_ms, n->ref_floor_ms))
		c->flags = AIBL_COST_F_SLOWER;
}

void policy__cost(const struct config *cfg, int policy, const struct policy_node *n,
		  struct aibl_cost *c)
{
	memset(c, 0, sizeof(*c));
	switch (policy) {
	case AIBL_POL_LEAST_CONN:
		/* a node whose agent cannot read its count (in_flight -1:
		 * llama.cpp without --metrics, Triton without its TensorRT
		 * figures) is priced with this balancer's flows there, what
		 * most of a known count is: priced 0, it looked idle beside
		 * nodes priced with every balancer's requests */
		if (n->rep && n->rep->in_flight >= 0)
			c->cost = to_cost(n->rep->in_flight);
		else if (n->rep)
			c->cost = to_cost((double)(n->active > 0 ? n->active : 0));
		break;
	case AIBL_POL_LEAST_TIME:
		c->cost = to_cost(n->ttft_ms / cfg->lt_ms_per_flow);
		break;
	case AIBL_POL_AI:
		ai_cost(cfg, n, c);
		break;
	default:
		break;
	}
}

bool policy__mixed_price(const struct config *cfg, int node, int *ai_svc, int *other_svc)
{
	*ai_svc = *other_svc = -1;
	for (int s = 0; s < cfg->nservices; s++) {
		const struct cfg_service *cs = &cfg->services[s];
		int *slot = cs->policy == AIBL_POL_AI ? ai_svc
			    : cs->policy == AIBL_POL_LEAST_CONN || cs->policy == AIBL_POL_LEAST_TIME
				? other_svc
				: NULL;

		for (int k = 0; slot && *slot < 0 && k < cs->nnodes; k++)
			if (cs->nodes[k] == node)
				*slot = s;
	}
	return *ai_svc >= 0 && *other_svc >= 0;
}

/*
 * What ai's weights scale the configured ones by: 1 at the default 100,
 * and so much more where the service's highest is below 100 that
 * headroom, speed and the spill's share keep their resolution (at weight
 * 1 on every node each of them rounded to 1, the slowest node's share
 * the fastest's)
 */
static double ai_weight_scale(const struct cfg_service *svc, const struct policy_node *in)
{
	__u32 max = 0;

	for (int k = 0; k < svc->nnodes; k++)
		if (in[k].cfg->weight > max)
			max = in[k].cfg->weight;
	return max && max < AI_WEIGHT_RES ? (double)AI_WEIGHT_RES / max : 1;
}

static __u32 ai_weight(const struct config *cfg, const struct policy_node *n, double scale,
		       double speed, bool cold)
{
	/* a stale report promises nothing, neither load nor idleness: the
	 * unknown nodes, a last resort, share by their configured weights */
	double head = 1 - policy__ai_load(&cfg->ai, n->fresh ? n->rep : NULL, n->active), w;

	if (head < cfg->ai.min_headroom)
		head = cfg->ai.min_headroom;
	w = n->cfg->weight * scale * head * speed * (cold ? cfg->ai.cold_start_factor : 1);
	return w < 1 ? 1 : (__u32)lround(w);
}

/* what a node can do for the service, best first */
enum ai_class {
	AI_NONE,     /* not eligible */
	AI_LOADABLE, /* could load the model: a cold start */
	AI_UNKNOWN,  /* resident, but its report is stale or missing */
	AI_BUSY,     /* resident, overloaded and its GPU hot, or a GPU lost */
	AI_READY,    /* resident, known, not hot (a queue is priced, ai_cost()) */
};

/* overloaded while its hottest GPU is within 3 C of temp_hard_c (the
 * temperature's hysteresis), or with a GPU lost: heat and a failing GPU are
 * not priced */
static bool ai_hot(const struct cfg_ai *ai, const struct policy_node *p)
{
	return p->rep && (policy__gpu_lost(p->rep) ||
			  (p->overloaded && max_temp(p->rep) >= ai->temp_hard_c - 3));
}

static enum ai_class ai_class(const struct cfg_ai *ai, const struct cfg_service *svc,
			      const struct policy_node *p)
{
	enum model_state ms;

	if (!p->usable || !config__may_serve(svc, p->cfg))
		return AI_NONE;
	ms = policy__model_state(p, svc->model);
	/* a stale report is no news, good or bad: it cannot promise the
	 * memory a load needs, nor that the node is idle (how busy it may be
	 * to load: ai_weights) */
	if (ms == MODEL_LOADABLE)
		return p->fresh && !policy__gpu_lost(p->rep) ? AI_LOADABLE : AI_NONE;
	if (ms != MODEL_RESIDENT)
		return AI_NONE;
	if (p->monitored && !p->fresh)
		return AI_UNKNOWN;
	/* a node overloaded by its queue or a full KV cache is still a
	 * candidate: its expected latency (ai_cost) prices the wait, and a
	 * slower node that is not overloaded takes the flow only when it is
	 * expected to answer sooner. A hot GPU is left out */
	if (ai_hot(ai, p))
		return AI_BUSY;
	return AI_READY;
}

static bool ai_measured(const struct cfg_ai *ai, const struct cfg_service *svc,
			const struct policy_node *p)
{
	return ai_class(ai, svc, p) == AI_READY && p->lat_ms > 0;
}

/*
 * The latency bound of new sessions: latency_spread x the best measured
 * node's (+ slack), widened to the next slower tier while every node inside
 * it is busy: a slower node's answer beats a queue. A tier already open
 * stays open while requests wait at every node inside.
 */
static double ai_bound(const struct cfg_ai *ai, const struct cfg_service *svc,
		       const struct policy_node *in, double best)
{
	double bound = ai->latency_spread * best + ai->latency_slack_ms;

	for (;;) {
		bool busy = true, queued = true, open = false;
		double next = -1;

		for (int k = 0; k < svc->nnodes; k++) {
			const struct policy_node *p = &in[k];

			if (!ai_measured(ai, svc, p))
				continue;
			if (p->lat_ms <= bound) {
				busy &= policy__busy(p->rep);
				queued &= p->rep && p->rep->queue_depth >= 1;
			} else {
				if (next < 0 || p->lat_ms < next)
					next = p->lat_ms;
				open |= p->serving;
			}
		}
		/* once open, the slower tier stays open while requests still
		 * wait everywhere inside: no flapping at the threshold */
		if (!(busy || (open && queued)) || next < 0)
			return bound;
		bound = ai->latency_spread * next + ai->latency_slack_ms;
	}
}

/*
 * p about as fast as me (within latency_spread): never a CPU node beside an
 * accelerator one; by their agents' speed probes where both timed one (the
 * engine alone), else by their unloaded request latencies, which the mix of
 * requests each ran sets as well
 */
static bool as_fast(const struct cfg_ai *ai, const struct policy_node *p,
		    const struct policy_node *me)
{
	double pp = p->rep->probe_ms_per_token, mp = me->rep->probe_ms_per_token;

	if (me->cfg->accel != AIBL_ACCEL_NONE && p->cfg->accel == AIBL_ACCEL_NONE)
		return false;
	if (pp > 0 && mp > 0)
		return pp <= ai->latency_spread * mp;
	return p->lat_floor_ms > 0 && me->lat_floor_ms > 0 &&
	       p->lat_floor_ms <= ai->latency_spread * me->lat_floor_ms + ai->latency_slack_ms;
}

bool policy__others_carry(const struct cfg_ai *ai, const struct cfg_service *svc,
			  const struct policy_node *in, int k)
{
	const struct policy_node *me = &in[k];
	double spare = 0;
	int others = 0;

	if (ai_class(ai, svc, me) != AI_READY || !me->fresh || !me->rep || me->rep->in_flight < 0)
		return false;
	for (int j = 0; j < svc->nnodes; j++) {
		const struct policy_node *p = &in[j];
		double slots = p->slots >= 1 ? p->slots : p->fleet_slots;

		if (j == k || ai_class(ai, svc, p) != AI_READY || !p->fresh || !p->rep ||
		    !as_fast(ai, p, me))
			continue;
		/* one that queues or cannot say its room vetoes */
		if (p->overloaded || p->rep->queue_depth < 0 || p->rep->queue_depth >= 1 ||
		    p->rep->in_flight < 0 || !(slots >= 1))
			return false;
		spare += fmax(slots - p->rep->in_flight, 0);
		others++;
	}
	return others && spare >= me->rep->in_flight;
}

/*
 * ai eligibility, in order of preference:
 *  1. READY nodes (resident, reported recently, not overloaded for the
 *     heat of a GPU), each in
 *     proportion to its headroom and its speed, less those whose latency
 *     is beyond latency_spread x the best one's (+ slack): they would only
 *     lengthen the tail while faster nodes keep up. The bound widens to the
 *     next slower tier once every node inside it is busy (policy__busy), the
 *     estimates rise with queueing, so slower nodes take a share as the
 *     fast ones fill.
 *     A node with no latency measured yet gets a small share to learn it;
 *     one configured with less weight than a measured node waits until
 *     every measured one is overloaded, and a CPU-only one until every
 *     accelerator node is (the others are explored alike while none is
 *     measured).
 *     A node overloaded by its queue or a full KV cache stays READY: the
 *     data plane's bounded load draws the nodes that are not overloaded
 *     first, and compares ai's expected latencies, which price the queue,
 *     so a slower tier takes a flow only when it answers sooner than the
 *     queue of a faster one (left out, they sent every flow to a CPU node
 *     while the GPU nodes' KV caches were full);
 *  2. none READY: BUSY nodes (the data plane still prefers a node without
 *     the overloaded flag should one come back between two writes), then
 *     UNKNOWN ones: a slow answer beats none;
 *  3. a cold start, on the one LOADABLE node with the most headroom: when
 *     no node has the model at all, or when demand has kept every resident
 *     node saturated for cold_start_after_ms. A load takes seconds to
 *     minutes and evicts models other services need: a burst that the
 *     resident nodes drain sooner never pays for it, and beside resident
 *     nodes only a node with room for the model (svc->memory_mb against
 *     its free GPU memory, where both are known) and no other service's
 *     load under way (loading_other) loads it. A loadable node
 *     that is overloaded or saturated itself is a candidate only where a
 *     request waits less than half as long as at the resident nodes.
 */
static void ai_weights(const struct config *cfg, const struct cfg_service *svc,
		       struct policy_svc *st, const struct policy_node *in, struct policy_out *out)
{
	const struct cfg_ai *ai = &cfg->ai;
	int n = svc->nnodes, counts[AI_READY + 1] = {}, best_cold = -1, best_fit = -1;
	enum ai_class want = AI_NONE;
	double best_lat = -1, best_head = -1, best_fit_head = -1, bound = 0;
	bool room = false;	 /* a measured node is not overloaded */
	bool idle = true;	 /* the nodes inside the bound: none waiting, half free */
	bool accel_room = false; /* an accelerator node is ready, not overloaded */
	__u32 best_w = 0;	 /* the highest configured weight of a measured node */
	double res_wait = -1;	 /* the least a request waits at a resident node */
	double scale = ai_weight_scale(svc, in);

	for (int k = 0; k < n; k++) {
		enum ai_class c = ai_class(ai, svc, &in[k]);
		double q = policy__queue_wait_ms(&in[k]);

		if ((c == AI_READY || c == AI_BUSY) && q >= 0 && (res_wait < 0 || q < res_wait))
			res_wait = q;
	}
	if (st)
		st->res_wait_ms = res_wait;
	for (int k = 0; k < n; k++) {
		enum ai_class c = ai_class(ai, svc, &in[k]);
		double q = c == AI_LOADABLE ? policy__queue_wait_ms(&in[k]) : -1;

		counts[c]++;
		accel_room |=
		    c == AI_READY && !in[k].overloaded && in[k].cfg->accel != AIBL_ACCEL_NONE;
		if (ai_measured(ai, svc, &in[k])) {
			if (best_lat < 0 || in[k].lat_ms < best_lat)
				best_lat = in[k].lat_ms;
			if (in[k].cfg->weight > best_w)
				best_w = in[k].cfg->weight;
			room |= !in[k].overloaded;
		}
		/* a node overloaded or saturated itself loads only where a
		 * request waits less than half as long as at the resident nodes
		 * (a fast node's queue beside a CPU node's far longer one) */
		if (c == AI_LOADABLE && ((!in[k].overloaded && !policy__saturated(ai, in[k].rep)) ||
					 (res_wait > 0 && q >= 0 && 2 * q < res_wait))) {
			double h =
			    in[k].cfg->weight * (1 - policy__ai_load(ai, in[k].rep, in[k].active));
			double free = policy__free_mb(in[k].rep);

			/* one loading or unloading another service's model only
			 * where no other can (one load at a time a node) */
			if (best_cold < 0 || (in[best_cold].loading_other != in[k].loading_other
						  ? !in[k].loading_other
						  : h > best_head)) {
				best_head = h;
				best_cold = k;
			}
			/* room for the model without evicting another (or not
			 * known), and no other service's model loading there:
			 * one load at a time, and that one takes room too */
			if (!in[k].loading_other &&
			    (!svc->memory_mb || free < 0 || free >= svc->memory_mb) &&
			    h > best_fit_head) {
				best_fit_head = h;
				best_fit = k;
			}
		}
	}
	if (best_lat > 0) {
		bound = ai_bound(ai, svc, in, best_lat);
		/* the nodes inside the bound have nobody waiting and run
		 * under half the requests they can at once */
		for (int k = 0; k < n; k++) {
			const struct policy_node *p = &in[k];

			if (ai_measured(ai, svc, p) && p->lat_ms <= bound &&
			    (!p->rep || p->rep->queue_depth >= 1 || p->slots <= 0 ||
			     (double)p->active >= p->slots / 2))
				idle = false;
		}
	}
	for (enum ai_class c = AI_READY; c > AI_LOADABLE && want == AI_NONE; c--)
		if (counts[c])
			want = c;
	for (int k = 0; k < n && want != AI_NONE; k++) {
		const struct policy_node *p = &in[k];
		double speed = 1;

		if (ai_class(ai, svc, p) != want)
			continue;
		/* a CPU-only node is not explored while an accelerator node can
		 * take the session: before anything is measured all nodes look
		 * alike, and one session placed there sets the tail and, kept
		 * by its pin, its later turns. Measured, it competes on latency */
		if (want == AI_READY && p->lat_ms <= 0 && p->cfg->accel == AIBL_ACCEL_NONE &&
		    accel_room)
			continue;
		if (want == AI_READY && best_lat > 0 && p->lat_ms > 0) {
			speed = best_lat / p->lat_ms;
			/* beyond the bound (a node in the table leaves it only
			 * past 1.25 x, so one near it does not flap every poll):
			 * a spill candidate at a speed^2 share. The p2c cost, the
			 * latency expected with the flows counted in the data
			 * plane, takes it only over a faster candidate whose
			 * slots are full, so a burst spills within the poll
			 * interval */
			if (p->lat_ms > bound * (p->serving ? 1.25 : 1)) {
				speed *= speed;
				out[k].slow = idle;
				out[k].beyond = true;
			}
		} else if (want == AI_READY && best_lat > 0) {
			/* not measured yet beside measured nodes: a small share,
			 * enough to learn its latency. One the operator weighed
			 * below a measured node (a CPU node beside GPU ones) is the
			 * last resort: it waits until every measured node is
			 * overloaded, as one session there sets the tail and, kept
			 * by its pin, the end of the run */
			if (room && p->cfg->weight < best_w)
				continue;
			speed = 1 / ai->latency_spread;
		}
		out[k].weight = ai_weight(cfg, p, scale, speed, false);
	}
	/* beside nodes that serve it, a load may not evict another model:
	 * only a node with room for it (svc->memory_mb) loads it. With none
	 * resident, the one with the most headroom loads it, room or not */
	if (want != AI_NONE)
		best_cold = best_fit;
	else
		/* with none resident, a cold start under way stays where its
		 * flows load the model, queue or not: the queue there is the
		 * load's own, and moving on starts a second load (another
		 * eviction), or, with every other node busy, none at all */
		for (int k = 0; k < n; k++)
			if (in[k].serving && !in[k].loading_other &&
			    ai_class(ai, svc, &in[k]) == AI_LOADABLE) {
				best_cold = k;
				break;
			}
	if (best_cold >= 0 && (want == AI_NONE || (st && ai->cold_start_after_ms &&
						   st->saturated_ms >= ai->cold_start_after_ms))) {
		out[best_cold].cold = true;
		out[best_cold].weight = ai_weight(cfg, &in[best_cold], scale, 1, true);
	}
}

int policy__weights(const struct config *cfg, const struct cfg_service *svc, struct policy_svc *st,
		    const struct policy_node *in, struct policy_out *out)
{
	memset(out, 0, sizeof(*out) * svc->nnodes);
	if (st)
		st->res_wait_ms = -1;
	if (svc->policy == AIBL_POL_AI) {
		ai_weights(cfg, svc, st, in, out);
		return 0;
	}
	if (svc->policy < 0 || svc->policy > AIBL_POL_AI)
		return -EINVAL;
	for (int k = 0; k < svc->nnodes; k++) {
		const struct policy_node *p = &in[k];

		if (!p->usable || !config__may_serve(svc, p->cfg))
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

bool policy__reuse(bool was, double reuse, int n)
{
	if (n <= 0 || !(reuse >= 0))
		return was;
	return was ? reuse >= AI_REUSE_OFF : reuse >= AI_REUSE_ON;
}

bool policy__slower(const struct cfg_ai *ai, double floor_ms, double best_floor_ms)
{
	/* a service's latency bound is judged on what the node's requests
	 * take now, and a slow node's cached turns are inside it (1.25 x the
	 * best's, 1.25 x again once it serves): held there, a session's every
	 * later turn decoded 2.5x slower, 430 ms against 160 cached on a fast
	 * node and 270 without its cache (kv-pressure at 3 sessions/s, seed
	 * 2: the run's tok/s 0.89x least_time's). Floors weigh speeds alike */
	return floor_ms > 0 && best_floor_ms > 0 &&
	       floor_ms > ai->latency_spread * best_floor_ms + ai->latency_slack_ms;
}

double policy__ewma(double old, double sample, double alpha)
{
	if (sample < 0)
		return old;
	if (old < 0)
		return sample;
	return old + alpha * (sample - old);
}
