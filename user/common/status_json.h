/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The controller API's JSON (contract 3): every member name, spelled once.
 * aibld writes it (user/aibld/api.c), aiblctl reads it (user/aiblctl/
 * cmd_api.c). The names are string literals, so they go into json_pack()
 * argument lists and string concatenation alike. A renamed member is a
 * changed contract: the tests spell the wire names themselves on purpose.
 *
 * GET /v1/status, in the order aibld writes it (-1: not known):
 *   { VERSION s, UPTIME_S i,
 *     SERVICES [ { NAME s, VIP s, PORT i, PROTO s ("tcp"|"udp"), POLICY s,
 *                  MODEL s, ID i, GENERATION i, PINS i, PACKETS i, BYTES i,
 *                  NODES [ { NAME s, WEIGHT i (applied), CFG_WEIGHT i,
 *                            SLOTS i, STATE s } ] ,
 *                  an ai service also AI_PREFIX_HIT f, AI_AFFINITY b } ],
 *     NODES [ { NAME s, ADDRESS s, STATE s, REASON s ("" unless down or
 *               unhealthy), HEALTHY b, LAST_REPORT_AGE_MS i, MODELS [s],
 *               GPU_UTIL_PCT f, QUEUE_DEPTH f, IN_FLIGHT f,
 *               KV_CACHE_USAGE f (0..1), TTFT_AVG_MS f, FAILURES i
 *               (consecutive), POLL_ERRORS i, ID i, ACTIVE_FLOWS i, PINS i,
 *               COST i, LAST_ERROR s, CONFIGURED b } ] }
 * POST /v1/nodes/NAME/drain|undrain: { NODE s, DRAINING b }
 * any refused request:               { ERROR s }
 */
#ifndef AIBL_STATUS_JSON_H
#define AIBL_STATUS_JSON_H

/* the document */
#define AIBL_SJ_VERSION	 "version"
#define AIBL_SJ_UPTIME_S "uptime_s"
#define AIBL_SJ_SERVICES "services"
#define AIBL_SJ_NODES	 "nodes" /* the document's nodes and a service's members */

/* shared by services, their members and nodes */
#define AIBL_SJ_NAME  "name"
#define AIBL_SJ_STATE "state"
#define AIBL_SJ_ID    "id"
#define AIBL_SJ_PINS  "pins"

/* a service */
#define AIBL_SJ_VIP	   "vip"
#define AIBL_SJ_PORT	   "port"
#define AIBL_SJ_PROTO	   "proto"
#define AIBL_SJ_POLICY	   "policy"
#define AIBL_SJ_MODEL	   "model"
#define AIBL_SJ_GENERATION "generation"
#define AIBL_SJ_PACKETS	   "packets"
#define AIBL_SJ_BYTES	   "bytes"

/* a service's member */
#define AIBL_SJ_WEIGHT	   "weight"
#define AIBL_SJ_CFG_WEIGHT "cfg_weight"
#define AIBL_SJ_SLOTS	   "slots"

/* a node */
#define AIBL_SJ_ADDRESS		   "address"
#define AIBL_SJ_REASON		   "reason"
#define AIBL_SJ_HEALTHY		   "healthy"
#define AIBL_SJ_LAST_REPORT_AGE_MS "last_report_age_ms"
#define AIBL_SJ_MODELS		   "models"
#define AIBL_SJ_GPU_UTIL_PCT	   "gpu_util_pct"
#define AIBL_SJ_QUEUE_DEPTH	   "queue_depth"
#define AIBL_SJ_IN_FLIGHT	   "in_flight"
#define AIBL_SJ_KV_CACHE_USAGE	   "kv_cache_usage"
#define AIBL_SJ_TTFT_AVG_MS	   "ttft_avg_ms"
/* ai's figures of the node (docs/aibld.md "ai's expected latency"), -1 unknown */
#define AIBL_SJ_AI_LATENCY_MS "ai_latency_ms" /* the estimate that sets its tier */
#define AIBL_SJ_AI_FLOOR_MS   "ai_floor_ms"   /* its unloaded request latency */
#define AIBL_SJ_AI_SLOTS      "ai_slots"      /* requests it runs before new ones wait */
#define AIBL_SJ_AI_HOLD_MS    "ai_hold_ms"    /* how long its requests hold a slot */
#define AIBL_SJ_AI_PROBE_MS   "ai_probe_ms"   /* its agent's speed probe, ms per token */
#define AIBL_SJ_FAILURES      "failures"
#define AIBL_SJ_POLL_ERRORS   "poll_errors"
#define AIBL_SJ_ACTIVE_FLOWS  "active_flows"
#define AIBL_SJ_COST	      "cost"
#define AIBL_SJ_LAST_ERROR    "last_error"
#define AIBL_SJ_CONFIGURED    "configured"

/* ai: how long a node's prefills wait beyond their own compute, and whether
 * they were seen taking turns on it (struct policy_prefill) */
#define AIBL_SJ_AI_PREFILL_WAIT_MS "ai_prefill_wait_ms"
#define AIBL_SJ_AI_PREFILL_SHARED  "ai_prefill_shared"
#define AIBL_SJ_AI_PREFILL_MS	   "ai_prefill_ms"

/* ai: the share of prompt tokens found cached (a node's, over its engines,
 * smoothed; a service's, the mean over its resident nodes of the engine
 * serving its model there; -1 unknown), and whether
 * the service's VIP has client affinity on (policy__reuse) */
#define AIBL_SJ_AI_PREFIX_HIT "ai_prefix_hit"
#define AIBL_SJ_AI_AFFINITY   "ai_affinity"
/* ai: a service's least queue wait at a node that serves it, ms (-1
 * unknown): its need, by which services claim background loads */
#define AIBL_SJ_AI_WAIT_MS "ai_wait_ms"
/* ai: how long every node where its model is resident has been saturated,
 * ms, 0 not now: the cold-start clock (cold_start_after_ms), which a
 * reload keeps */
#define AIBL_SJ_AI_SATURATED_MS "ai_saturated_ms"

/* ai: a node's background load, while one is asked or refused (absent
 * otherwise): {"op","model","service","state","for_ms","error"}, op "load"
 * or "unload" (taking one back), state "queued" (asked at the next poll),
 * "loading" or "unloading" (the agent took it) or "refused" (a load's
 * flows load the model until it is asked again) */
#define AIBL_SJ_LOAD	     "load"
#define AIBL_SJ_LOAD_OP	     "op"
#define AIBL_SJ_LOAD_MODEL   "model"
#define AIBL_SJ_LOAD_SERVICE "service"
#define AIBL_SJ_LOAD_STATE   "state"
#define AIBL_SJ_LOAD_FOR_MS  "for_ms"
#define AIBL_SJ_LOAD_ERROR   "error"

/* ai: the models this balancer loaded on the node and holds there, each
 * taken back once the service's other nodes carry its load without it
 * (background_unload_ms; absent with none): [{"model","service",
 * "resident_ms","quiet_ms"}], how long it has been resident and how long
 * the others have carried the service (0: not now) */
#define AIBL_SJ_HELD		 "held"
#define AIBL_SJ_HELD_RESIDENT_MS "resident_ms"
#define AIBL_SJ_HELD_QUIET_MS	 "quiet_ms"
#define AIBL_SJ_HELD_WANTED_BY	 "wanted_by"

/* a node whose agent drains a model for an unload, until its engine has
 * answered the unload (absent otherwise):
 * {"model","open_flows"}, the connections of it this balancer holds
 * there (-1 while its tables still give the node a share, or not
 * counted), what it states on its polls */
#define AIBL_SJ_UNLOADING	"unloading"
#define AIBL_SJ_UNLOADING_MODEL "model"
#define AIBL_SJ_UNLOADING_OPEN	"open_flows"

/* a node whose agent runs the decap program (aibl-agent --decap; absent
 * otherwise), as its last report stated: {"interface","counters":{name:
 * N},"dropped"}, dropped the drop_* counters summed */
#define AIBL_SJ_DECAP	      "decap"
#define AIBL_SJ_DECAP_IF      "interface"
#define AIBL_SJ_DECAP_COUNTS  "counters"
#define AIBL_SJ_DECAP_DROPPED "dropped"

/* the answer to drain/undrain and poll, and an error */
#define AIBL_SJ_NODE	 "node"
#define AIBL_SJ_DRAINING "draining"
#define AIBL_SJ_POLL	 "poll"
#define AIBL_SJ_ERROR	 "error"

#endif /* AIBL_STATUS_JSON_H */
