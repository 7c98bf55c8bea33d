/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-service policies: which nodes take new flows, with which table
 * weight, and what each node costs the data plane's power-of-two choice.
 * Pure functions of the config and the nodes' latest reports, so every
 * formula is unit-tested; docs/aibld.md ("Policies") documents them.
 */
#ifndef AIBLD_POLICY_H
#define AIBLD_POLICY_H

#include <stdbool.h>
#include <linux/types.h>
#include "aibl.h"
#include "config.h"
#include "report.h"

/*
 * ai: whether a node's prefills share its compute, from the engine's own
 * figures (vLLM's request_prefill_time_seconds and
 * request_prefill_kv_computed_tokens: the same finished requests). The
 * fastest time per computed token seen is the node's alone (floor); what
 * the window's prefills took beyond it (wait_ms) against what their own
 * compute was (own_ms), both EWMAs: prefills that wait longer than their
 * own compute take turns on it, as on a GPU, and the node is marked
 * shared for good (a property of its engine, seen only under load).
 * prompt_tok: the EWMA of its requests' whole prompts (vLLM's
 * request_prompt_tokens), what a session's turn computes where none of it
 * is cached.
 */
struct policy_prefill {
	double floor; /* ms per computed token, < 0 unknown */
	double wait_ms, own_ms;
	double prompt_tok; /* < 0 unknown */
	bool shared;
};

/* what the controller knows of one node when it computes a service */
struct policy_node {
	const struct cfg_node *cfg;
	bool usable;			/* up and not draining */
	bool overloaded;		/* AIBL_BE_F_OVERLOADED as last decided */
	const struct agent_report *rep; /* NULL: no agent or no good report yet */
	double ttft_ms;			/* smoothed time to first token, < 0 unknown */
	__s64 active;			/* data-plane active flows */
	/* ai: time to first token a new request can expect there now (queueing
	 * included, back to the node's unloaded figure while it idles), < 0
	 * unknown; see nodes__poll_ok() */
	double lat_ms;
	bool fresh;	    /* the report in rep is recent and the agent reached its
			     * model server (never true without rep) */
	bool monitored;	    /* an agent is configured: no report means unknown */
	bool serving;	    /* has new-flow weight in this service's table now */
	bool loading_other; /* loads another service's model (one load at a time) */
	double best_lat_ms; /* the lowest lat_ms of any usable node, < 0 none */
	/* ai's expected latency (policy__cost): the unloaded request
	 * latency and the requests the node runs at once before it queues
	 * (nodes__slots(): seen where it queued, else its agent's reported
	 * ones; < 0 unknown; a node not measured yet whose agent timed a speed
	 * probe has lat_ms and lat_floor_ms estimated by
	 * policy__probe_estimate(), in aibld__policy_node()); best_*: the
	 * usable node with the lowest floor, the price of one not measured
	 * yet, and its configured weight */
	double lat_floor_ms, slots;
	double ran;    /* the most it ran at once since it last queued, 0 none */
	double run_ms; /* how long its requests hold a slot (EWMA), < 0 unknown */
	/* how long it has run requests without finishing one (its report's,
	 * while fresh), < 0 unknown: a slot is held at least that long */
	double since_finish_ms;
	__s64 rep_active;  /* active when the report arrived, < 0 unknown */
	double prev_other; /* in_flight - rep_active of the report before, NAN unknown */
	/* the most flows this balancer can have had open there while its
	 * agent scraped, < 0 unknown: what the node ran beyond it is others' */
	__s64 ours_max;
	/* the fewest it can have had open there then, < 0 unknown: those
	 * beyond what the node ran carried no request (kept alive) */
	__s64 ours_min;
	/* the most requests a usable node that has queued, or states its
	 * slots, runs at once (its slots, or more it ran since), 0 none: the
	 * slots of a node that has neither (policy__per_flow_ms) */
	double fleet_slots;
	double best_lat_floor_ms, best_per_flow_ms;
	__u32 best_weight;
	/* the floor it is judged slower against (node_rt.ref_floor_ms) */
	double ref_floor_ms;
	/* where its prefills take turns on its compute (struct policy_prefill):
	 * ms of it a new session's prompt takes there, 0 otherwise */
	double prefill_ms;
	/* how long its prefills waited beyond their own compute (EWMA), < 0
	 * unknown */
	double prefill_wait_ms;
};

/* what the controller tracks per ai service across recomputes */
struct policy_svc {
	/* how long every resident node has been saturated or overloaded
	 * without a break, 0: not now */
	__u64 saturated_ms;
	/* out (ai): the least a request waits at a resident node that can
	 * serve (policy__queue_wait_ms()), < 0 none or not known */
	double res_wait_ms;
};

enum model_state {
	MODEL_ABSENT = 0,
	MODEL_LOADABLE = 1,
	MODEL_RESIDENT = 2,
};

struct policy_out {
	__u32 weight; /* table weight, 0: no new flows */
	bool cold;    /* chosen although the model must be loaded first */
	/* ai: measured beyond the latency bound while the nodes inside it have
	 * room (nobody waiting, under half their slots running): its sessions'
	 * pins go (a slower tier keeps them while it is open) */
	bool slow;
	/* ai: measured beyond the latency bound: its pins yield to a faster
	 * node with a free slot (AIBL_PIN_F_SLOWER) */
	bool beyond;
};

/* enum aibl_mode the data plane runs for this policy */
__u8 policy__mode(int policy);
enum model_state policy__model_state(const struct policy_node *n, const char *model);
/* the node's free GPU memory in MiB for one engine: its whole GPUs
 * together, or its largest MIG instance's when that is more; -1 unknown
 * (no NVML figures, or a MIG GPU whose instances are not read) */
double policy__free_mb(const struct agent_report *r);
/* mean utilisation of the GPUs that report one, -1 none */
double policy__gpu_util(const struct agent_report *r);
/* combined pressure 0..1 of the ai policy; 0 with nothing reported.
 * active: the data plane's active flows to the node (< 0 unknown), a floor
 * under the in-flight figure the report gives */
double policy__ai_load(const struct cfg_ai *ai, const struct agent_report *r, __s64 active);
/* bounded load: true when the node should take no new flows while others can */
bool policy__overloaded(const struct cfg_ai *ai, const struct agent_report *r, bool was);
/* a GPU of the node NVML calls lost or in need of a reset (ar_gpu.lost) */
bool policy__gpu_lost(const struct agent_report *r);
/* ai: requests wait at the node, at least half as many as it runs: a new
 * session's wait there is of the order of a prefill, so the next slower tier
 * of nodes is worth opening */
bool policy__busy(const struct agent_report *r);
/* node (config index) in an ai service and in a least_conn or least_time
 * one: its one aibl_cost is ai's, in ms, which the other compares with its
 * other nodes' prices in flows. True with the first such pair */
bool policy__mixed_price(const struct config *cfg, int node, int *ai_svc, int *other_svc);
/* ai: more requests wait at the node than ai.saturation_queue and than it
 * runs (a whole batch's worth waits): every resident node saturated for
 * ai.cold_start_after_ms is what may justify loading the model elsewhere
 * (a pinned session's spill is the data plane's, by pin_spill_ms) */
bool policy__saturated(const struct cfg_ai *ai, const struct agent_report *r);
/*
 * ai: whether the service's other nodes carry what node k runs without
 * it: those as fast as k (their agents' speed probes within
 * latency_spread x k's where both have one, else their unloaded request
 * latencies within latency_spread x k's + slack; never a CPU node beside
 * an accelerator one) that serve the model (resident, fresh, not hot)
 * have nobody waiting, are not overloaded, know their slots (measured
 * where they queued, stated, or the fleet's), and their free slots
 * together hold all k runs now (its in_flight, every model's). False with
 * no such node: what a background load that is no longer needed looks
 * like (background_unload_ms)
 */
bool policy__others_carry(const struct cfg_ai *ai, const struct cfg_service *svc,
			  const struct policy_node *in, int k);
/* ai: the node's latency estimate after a report (see policy_node.lat_ms);
 * *floor is its unloaded figure, updated from samples taken with no queue */
double policy__lat_update(double lat, double *floor, const struct agent_report *r, double alpha);
/* ai: *floor follows unloaded samples (EWMA, alpha); until one comes, the
 * smallest sample seen */
void policy__floor_update(double *floor, double sample, const struct agent_report *r, double alpha);
/* ai: from a report, *slots: the requests the node serves at once before
 * new ones wait (EWMA of what it runs while requests wait, < 0 unknown);
 * *ran: the most it was seen running at once, a lower bound (0 none) */
void policy__slots_update(double *slots, double *ran, const struct agent_report *r, double alpha);
/* ai: a usable node's part in policy_node.fleet_slots (start from 0): a
 * node that queued or states its slots (slots >= 1) raises it to what it
 * runs at once */
void policy__fleet_slots_add(double *fleet, double slots, double ran);
/*
 * ai: the latency of a node not measured yet whose agent timed a speed
 * probe (ms per output token), from the best measured node's floor and
 * probe: scaled by the two probes, never under the best's. < 0 when a
 * figure is missing.
 */
double policy__probe_estimate(double best_floor_ms, double best_probe_ms, double probe_ms);
/* ai: how long the node's requests hold a slot, ms: run_ms, its unloaded
 * request latency where the engine does not say, at least since_finish_ms;
 * < 0 unknown (nothing measured) */
double policy__hold_ms(const struct policy_node *n);
/* ai: ms of waiting one more flow adds at a node once its slots are full:
 * a slot's turnover, how long its requests hold one (run_ms; its unloaded
 * request latency where the engine does not say) / its slots, or the
 * fleet's while it never queued; < 0 unknown */
double policy__per_flow_ms(const struct policy_node *n);
/* ai: how long a new request can expect to wait at the node for a slot:
 * its reported queue times a slot's turnover (policy__per_flow_ms); 0 with
 * nothing waiting, < 0 unknown */
double policy__queue_wait_ms(const struct policy_node *n);
/*
 * ai: whether a node loading the service's model in the background takes
 * the service's flows now: a request would wait at the resident nodes
 * (wait_ms, the least of their waits) at least as long as for the rest of
 * the load, estimated to take est_ms in all (the model's earlier loads),
 * of which elapsed_ms have passed. Unknown (< 0) either: no.
 */
bool policy__load_release(double wait_ms, double est_ms, double elapsed_ms);
/* one load at a time for a service: the cold start the policy named on
 * another of its n nodes moves to node `to`, which loads the model already
 * (its weight with it) */
void policy__cold_move(struct policy_out *out, int n, int to);
/* p2c cost of a node for the given policy (see struct aibl_cost): in
 * active flows, or for ai the expected request latency in ms */
void policy__cost(const struct config *cfg, int policy, const struct policy_node *n,
		  struct aibl_cost *c);
/* weights for every node of svc (in[k] is svc->nodes[k]); st: the ai
 * service's tracked state (NULL: none), res_wait_ms set; 0 or -errno */
int policy__weights(const struct config *cfg, const struct cfg_service *svc, struct policy_svc *st,
		    const struct policy_node *in, struct policy_out *out);
/* applied weight after hysteresis: keep old unless target moved > pct % */
__u32 policy__hysteresis(__u32 applied, __u32 target, unsigned int pct);
/* smoothed least_time sample */
double policy__ewma(double old, double sample, double alpha);

void policy__prefill_init(struct policy_prefill *pf);
/* ai: a report's prefill figures into pf (EWMA alpha); true when this one
 * marks the node shared */
bool policy__prefill_update(struct policy_prefill *pf, const struct agent_report *r, double alpha);
/* ai: ms of the node's compute a new session's prompt takes where its
 * prefills take turns on it (pf->shared, or fleet: some node of the fleet
 * was seen so, and this one has not queued enough to show it yet); 0 where
 * they do not or nothing is known (struct aibl_cost.prefill_ms) */
double policy__prefill_ms(const struct policy_prefill *pf, bool fleet);
/* ai: the prefill of a node whose own is not measured yet, from a reference
 * node's (ref_ms at a latency floor of ref_floor_ms) scaled by the two
 * floors; 0 when any is unknown */
double policy__prefill_scaled(double ref_ms, double ref_floor_ms, double floor_ms);
/*
 * ai: client affinity pays only where prompts find their prefixes cached:
 * it keeps an address's sessions on the node its pin will name. reuse is
 * the mean over the service's resident nodes of the prefix-cache hit rate
 * of the engine that serves its model there (prompt tokens found cached,
 * smoothed; nodes__model_hit()), n how many reported one. On at
 * AI_REUSE_ON and above, off below AI_REUSE_OFF (a band, so noise does not
 * flip it); nothing reported keeps what was (initially on: an engine that
 * does not say is not taken for one without a cache). The first figure
 * decides: a start that sees first turns only has nothing to keep yet,
 * and the hits of the second turns put it back within a second.
 */
#define AI_REUSE_ON  0.05
#define AI_REUSE_OFF 0.02
/* the hit rate's smoothing time: reports at every poll, each a window of
 * the agent's scrapes */
#define AI_REUSE_TAU_MS 5000.0
bool policy__reuse(bool was, double reuse, int n);
/*
 * ai: a slower node, whose unloaded request latency (floor_ms) is beyond
 * latency_spread x the best node's + latency_slack_ms: its sessions' pins
 * (AIBL_PIN_F_SLOWER, as where it is beyond a service's latency bound,
 * policy_out.beyond) and clients' affinity (AIBL_COST_F_SLOWER) yield to a
 * faster node's free slot
 */
bool policy__slower(const struct cfg_ai *ai, double floor_ms, double best_floor_ms);

/* ai: the spill of a pin at a node whose prefills share its compute, where
 * each prefill waits for `contention` others (pin_spill_ms scaled) */
__u16 policy__pin_spill(const struct cfg_ai *ai, double contention);

#endif
