/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibld's state: the config in force, what it knows of every node and
 * service, and the handles it writes through. One struct aibld per
 * process (tests and the benchmark build their own). The API thread reads
 * it under `lock`; the controller loop holds `lock` while it changes it.
 */
#ifndef AIBLD_H
#define AIBLD_H

#include <pthread.h>
#include <stdbool.h>
#include <linux/types.h>
#include "clock.h"
#include "aibl.h"
#include "auth.h"
#include "config.h"
#include "policy.h"
#include "report.h"

#define AIBLD_VERSION "0.1.0"
/* the API's bearer token (api_token_file), NUL included; each listener
 * holds its own copy (api__start()) */
#define AIBLD_TOKEN_LEN (AIBL_AUTH_KEY_MAX + 1)
#define NODE_ERR_LEN	160

/* polls of history kept to bound this balancer's flows at a scrape: at
 * 200 ms a poll, 3 s back (the agent scrapes every second by default) */
#define OURS_HIST 16

/* ai: a background load asked of a node's agent (POST /v1/load), or the
 * unload that takes one back (POST /v1/unload): one at a time a node */
enum node_load_state {
	NODE_LOAD_NONE,
	NODE_LOAD_QUEUED,  /* to ask at the next poll round */
	NODE_LOAD_ASKED,   /* the agent took it: until the model turns up resident
			    * (an unload: until the report has it no more) */
	NODE_LOAD_REFUSED, /* refused or timed out: cold flows load it (until
			    * retry_ms); an unload refused ends at once */
};

struct node_load {
	__u8 state;  /* enum node_load_state */
	bool unload; /* taking back a background load (node_held) */
	char model[AIBL_MODEL_LEN];
	char svc[AIBL_NAME_LEN]; /* the service that wants it */
	__u64 since_ms;		 /* queued at (monotonic) */
	__u64 retry_ms;		 /* REFUSED: asked again from then */
	bool released;		 /* ASKED: takes flows, the resident nodes' queue is longer */
	bool left;		 /* an unload ASKED: a report since flagged the model unloading */
	char error[NODE_ERR_LEN];
};

/*
 * ai: a model this balancer loaded on the node beside nodes that served
 * it (a background load, or the cold start it fell back to), resident
 * now: unloaded once those nodes carry the service's load without it for
 * cfg.ai.background_unload_ms (policy__others_carry). Only this process's
 * own loads: an operator's models, and loads from before a restart, stay.
 */
#define NODE_HELD_MAX 8
struct node_held {
	char model[AIBL_MODEL_LEN];
	char svc[AIBL_NAME_LEN];
	__u64 since_ms; /* resident since (monotonic) */
	__u64 quiet_ms; /* the other nodes have carried the service since, 0 not */
	__u64 retry_ms; /* an unload refused: not asked again before */
	/* the unload is due, but this other service of the model still wants
	 * it there (nodes__model_wanted), "" none */
	char wanted_by[AIBL_NAME_LEN];
};

struct node_rt {
	char name[AIBL_NAME_LEN];
	int cfg_idx;	/* index in cfg.nodes, -1: retired (removed from config) */
	__u32 id;	/* backend id, stable across restarts (aibl_be_meta) */
	bool down;	/* circuit breaker open, backend not answering: flows re-steered */
	bool unhealthy; /* agent breaker open, backend answers: no new flows */
	bool draining;	/* operator: no new flows */
	/* new (configured since the last start or reload, or at a start
	 * with no state left in the maps) and no poll answered yet: no new
	 * flows until one does, as a node out for fail_after polls would
	 * have none. A first good poll brings it in */
	bool unchecked;
	bool overloaded;	 /* bounded load: no new flows while others can */
	bool gpu_lost;		 /* its report names a GPU lost (policy__gpu_lost) */
	unsigned int fails, oks; /* consecutive poll failures / successes */
	__u64 fail_round_ms;	 /* start of the round whose failure fails last counted */
	/* backend TCP checks of a node with an agent, while its agent fails */
	unsigned int be_fails, be_oks; /* consecutive */
	__u64 be_fail_round_ms;	       /* as fail_round_ms, for be_fails */
	bool be_checked;	       /* a check result arrived in this poll round */
	__u8 last_fail;		       /* enum node_fail of the last failed poll */
	__u8 reason;		       /* enum node_fail that made it down or unhealthy */
	__u64 polls, poll_errors;
	char last_error[NODE_ERR_LEN];
	__u64 last_ok_ms; /* monotonic ms of the last good poll, 0: never */
	bool have_rep;
	struct agent_report rep;
	double ttft_ms;		     /* least_time EWMA, < 0 unknown */
	double lat_ms, lat_floor_ms; /* ai latency estimate and unloaded figure */
	/* ai: the floor it is judged slower against (policy__slower(), its
	 * AIBL_COST_F_SLOWER): the most lenient of its ai services' best
	 * floors (svc_rt.best_floor_ms), else the fleet's; < 0 none */
	double ref_floor_ms;
	double slots;	 /* ai: requests it runs at once, < 0 unknown */
	double ran;	 /* ai: the most it ran at once since it last queued */
	double run_ms;	 /* ai: how long its requests hold a slot, < 0 unknown */
	double hit_rate; /* ai: prefix-cache hit rate, smoothed, < 0 unknown */
	/* ai: each model server's prefix-cache hit rate in the last report,
	 * smoothed as hit_rate (< 0 unknown; url "": no server); a model's
	 * is its server's (nodes__model_hit()) */
	struct node_srv_hit {
		char url[AR_URL_LEN];
		double hit;
	} srv_hit[AR_MAX_SERVERS];
	struct policy_prefill pf; /* ai: do its prefills wait for each other */
	__s64 rep_active;	  /* active when the report arrived */
	double prev_other;	  /* in_flight - rep_active of the report before, NAN unknown */
	/* the most flows this balancer can have had open at the node while
	 * the agent scraped (nodes__poll_ok), < 0 unknown */
	__s64 ours_max;
	/* the fewest it can have had open then, < 0 unknown */
	__s64 ours_min;
	/* active and traffic.new_flows at the last good polls (a ring) */
	struct ours_snap {
		__u64 t_ms; /* monotonic */
		__s64 active;
		__u64 flows;
	} ours_hist[OURS_HIST];
	unsigned int ours_next;	     /* next slot of ours_hist to write */
	__s64 active;		     /* aibl_load */
	struct aibl_traffic traffic; /* aibl_be_stats summed over CPUs */
	unsigned int npins;
	__u8 mac[6]; /* neighbour MAC, zero when not on-link */
	/* last written, to skip unchanged writes */
	bool be_written;
	bool fresh_id; /* its id newly given: counters of the id's last owner go */
	struct aibl_backend be;
	struct aibl_cost cost;
	struct node_load load; /* ai: a background load, or an unload of one */
	struct node_held held[NODE_HELD_MAX];
	int nheld;
	/* ai: the service whose load was pending (queued or asked) as the
	 * recompute began, "" none: what the round's services read of it,
	 * as load is written by them under aibld.load_lock */
	char load_for[AIBL_NAME_LEN];
	/* the model its agent drains for an unload (the last report's
	 * ar_model.unloading, "" none) and the open connections of it this
	 * balancer holds there, counted before the poll round that states
	 * them (AR_OPEN_HEADER), -1 while a table of the model's services
	 * still gives the node a share; open_ok false: not counted (no data
	 * plane, the table unreadable), and then not stated */
	char open_model[AR_MODEL_LEN];
	long open_flows;
	bool open_ok;
	__u64 decap_warned_ms; /* monotonic ms its decap drops were last said, 0 never */
};

struct svc_rt {
	char name[AIBL_NAME_LEN];
	__u32 id; /* svc_id, stable across restarts (aibl_svc_meta) */
	int cfg_idx;
	__u8 half;		     /* active ring half */
	bool have_table;	     /* table[] mirrors the active half */
	__u32 *table;		     /* AIBL_RING_SIZE backend ids */
	__u32 *applied;		     /* per service node (cfg order): weight in the table */
	__u32 *slots;		     /* per service node: slots in the active half */
	bool *slow;		     /* per service node: policy_out.slow, last recompute */
	bool *beyond;		     /* per service node: policy_out.beyond, last recompute */
	__u32 *mem_ids;		     /* backend ids written to aibl_members for it */
	struct aibl_member *mem_val; /* and what was written, to skip repeats */
	int nmem;
	__u64 last_write_ms;
	__u32 generation;
	unsigned int npins;
	struct aibl_traffic traffic;
	__u64 saturated_since_ms; /* ai: every resident node saturated since, 0: not */
	bool reloaded;		  /* carried over a reload: its table is built once more */
	bool fresh_id;		  /* its id newly given: counters of the id's last owner go */
	bool rewrite; /* a write of its tables failed, or of a member entry: again next loop */
	/* ai: prompts find their prefixes on its nodes (policy__reuse), and the
	 * mean hit rate it was decided from (< 0: none reported): client
	 * affinity on (AIBL_VIP_F_AFFINITY) while reuse holds */
	bool reuse;
	double reuse_hit;
	/* ai: the least a request waited at a node that serves it, last
	 * recompute (< 0 none or not known): services claim background
	 * loads in the order of it, the longest wait first */
	double need_ms;
	/* ai: the lowest latency floor of a usable node holding the model
	 * (< 0 none): its sessions' pins are flagged slower against it, not
	 * against a node that serves another, smaller, model */
	double best_floor_ms;
	/* ai: how long background loads of its model took, from asked to
	 * resident, on any node (EWMA), < 0 none measured */
	double load_est_ms;
	/* ai, per service node: since when the service has done without it,
	 * 0 not: the node had no share, or its other nodes carried the
	 * service's load without it (policy__others_carry, the service not
	 * saturated); another service's take-back of the same model there
	 * waits for it (nodes__model_wanted) */
	__u64 *carried;
};

struct pin_ent {
	struct aibl_pin_key key;
	struct aibl_pin val;
	double score;
	int node; /* index in nodes[] while building */
};

/* what became of a background load or of its unload (aibld_stats.bg) */
enum bg_result {
	BG_ASKED,   /* queued for its agent */
	BG_DONE,    /* the model resident, or gone */
	BG_REFUSED, /* refused by the agent, failed, or late */
	BG__MAX,
};

struct aibld_stats {
	double loop_ms, loop_ms_max;
	double recompute_ms;
	__u64 loops, table_writes, table_skips, reloads_ok, reloads_failed;
	__u64 poll_errors;
	__u64 member_errors; /* aibl_members entries not written (map full) */
	/* authentication refusals: agent reports (unsigned, bad signature) and
	 * API requests without the right token; atomics, the API thread adds */
	__u64 auth_fail_agent, auth_fail_api;
	__u64 polls_asked; /* POST /v1/nodes/NAME/poll (atomic) */
	__u64 polls_early; /* rounds started before poll_interval_ms for one */
	/* ai: background loads and the unloads that take them back, by what
	 * became of them (atomics: the services' threads add) */
	__u64 bg[2][BG__MAX]; /* [unload][enum bg_result] */
};

static inline void aibld__bg_count(struct aibld_stats *st, bool unload, enum bg_result r)
{
	__atomic_fetch_add(&st->bg[unload][r], 1, __ATOMIC_RELAXED);
}

struct dp;
struct nl;
struct poller;
struct api;
struct cluster;

struct aibld {
	pthread_mutex_t lock;
	/* node_rt.load while services recompute in parallel */
	pthread_mutex_t load_lock;
	struct config cfg;
	char cfg_path[CFG_PATH_LEN];
	bool have_key;
	struct aibl_key key;

	int nnodes; /* cfg nodes first (same index), then retired ones */
	struct node_rt *nodes;
	struct svc_rt *svcs; /* cfg.nservices, same index */

	/* maps */
	struct dp *dp;
	int fd_vips, fd_backends, fd_ring, fd_cost, fd_load, fd_pins, fd_members, fd_stats,
	    fd_svc_stats, fd_be_stats, fd_svc_meta, fd_be_meta, fd_globals, fd_filter;
	__u32 *ring_mmap; /* aibl_ring when BPF_F_MMAPABLE, else NULL */
	bool batch_ok;	  /* bpf_map_update_batch works on aibl_ring */
	int ncpus;
	__u32 max_backends, max_services, max_pins;

	struct pin_ent *pins; /* sorted by key: what aibl_pins holds */
	int npins;

	/* interface facts (netlink) */
	int ifindex;
	__u8 if_mac[6];
	bool if_up;
	__u8 gw_mac[6];
	union aibl_addr if_addr4, if_addr6;

	__u64 start_ms;
	/* the poll round under way: when it started, and whether an agent's
	 * ask brought it forward (nodes__poll_fail) */
	__u64 round_t0_ms;
	bool round_early;
	struct aibld_stats st;
	double best_lat_ms; /* ai: lowest latency estimate of a usable node, < 0 none */
	/* ai: the usable node with the lowest latency floor: it and its ms
	 * per queued flow, < 0 none, and its configured weight */
	double best_lat_floor_ms, best_per_flow_ms;
	__u32 best_weight;
	double best_probe_ms; /* ai: that node's agent's speed probe, < 0 none */
	double fleet_slots;   /* ai: policy_node.fleet_slots */
	bool prefill_shared;  /* ai: a configured node's prefills take turns (policy__prefill_ms) */
	/* ai: the usable node of the lowest latency floor whose prompts'
	 * compute is measured: that, and its floor, < 0 none */
	double prefill_ref_ms, prefill_ref_floor_ms;
	int wake_fd;	 /* eventfd: API changed something, recompute now */
	int poll_fd;	 /* eventfd: an agent saw a change, poll early */
	bool force_next; /* rewrite every table on the next recompute */
	unsigned int member_errors;
	struct cluster *cl; /* cluster mode (cluster.c), NULL: single host */
	__u64 reconcile_ms; /* last active-flow reconcile (tables__read_counters) */
};

/* controller.c: state, recompute, reload */
int aibld__init(struct aibld *d, struct config *cfg, struct dp *dp);
void aibld__fini(struct aibld *d);
/* Recompute every service and write what changed; force: ignore the
 * rewrite interval and rewrite even unchanged tables. Caller holds lock. */
int aibld__recompute(struct aibld *d, bool force);
/* Swap in a validated config; nodes and services keep state by name. */
int aibld__apply_config(struct aibld *d, struct config *cfg);
struct node_rt *aibld__node(struct aibld *d, const char *name);
/* tell the main loop through eventfd fd (wake_fd, poll_fd); -1: none */
void aibld__wake(int fd);
int aibld__write_globals(struct aibld *d);
/* the data-plane flags (AIBL_BE_F_*) of node n, from its local state */
__u8 aibld__be_flags(const struct node_rt *n);
/* node state string for status/metrics: up, down, unhealthy, draining, overloaded */
const char *aibld__node_state(const struct node_rt *n);
/* whether service i's VIP has client affinity (AIBL_VIP_F_AFFINITY): an ai
 * service, ai.affinity_ms set, prompts finding their prefixes on its nodes
 * (svc_rt.reuse), not in cluster mode */
bool aibld__svc_affinity(const struct aibld *d, int i);
/* service si's VIP key, and how its VIP steers (mode, session_key, flags
 * of its aibl_vip) */
void aibld__vip_key(const struct cfg_service *s, struct aibl_vip_key *k);
void aibld__vip_steer(const struct aibld *d, int si, struct aibl_vip *v);
/* what the policies see of node n */
void aibld__policy_node(const struct aibld *d, const struct node_rt *n, __u64 now_ms,
			struct policy_node *pn);
/* ai's fleet references (best_lat_ms, best_lat_floor_ms, best_weight,
 * best_per_flow_ms, best_probe_ms, fleet_slots, prefill_shared,
 * prefill_ref_*) from the nodes the config lists; each ai service's
 * best_floor_ms and each node's ref_floor_ms */
void aibld__fleet_update(struct aibld *d, __u64 now_ms);

/* why a poll failed; the kind that changed a node's state is its reason */
enum node_fail {
	NODE_FAIL_UNREACHABLE,
	NODE_FAIL_TIMEOUT,
	NODE_FAIL_HTTP, /* agent answered non-200 */
	NODE_FAIL_TOO_LARGE,
	NODE_FAIL_AUTH,	      /* unsigned or badly signed report */
	NODE_FAIL_BAD_REPORT, /* garbage */
	NODE_FAIL_FOREIGN,    /* a report for another node */
	NODE_FAIL_STALE,      /* the agent reaches no model server */
	NODE_FAIL_BACKEND,    /* TCP check of the service port failed (agent broken too) */
};

/* nodes.c: circuit breakers and report intake */
const char *nodes__fail_name(unsigned int kind);
bool nodes__has_agent(const struct aibld *d, const struct node_rt *n);
/* true when this round should also check the backend of an agent node */
bool nodes__want_backend_check(const struct aibld *d, const struct node_rt *n);
/* a backend TCP check's result; record it before the agent's of the round */
void nodes__backend_result(struct aibld *d, struct node_rt *n, bool ok, const char *err);
/* the node's background load was refused or failed (why): its service's
 * cold flows load the model, and it is asked again background_load_ms on */
void nodes__load_refused(struct aibld *d, struct node_rt *n, const char *why);
/* ai: the models this balancer loaded on n (struct node_held): the entry
 * of a service's model, NULL none; add one (a load turned resident; the
 * entry held longest makes room when full), drop one */
struct node_held *nodes__held(struct node_rt *n, const char *svc, const char *model);
void nodes__held_add(struct node_rt *n, const char *svc, const char *model, __u64 now);
void nodes__held_drop(struct node_rt *n, struct node_held *h);
/*
 * ai: the service other than si that still wants model on node n, so that
 * si's take-back of it there waits, -1 none: a classic service of the
 * model that lists the node (at a weight above 0: its operator routes the
 * model there), or an ai service of it that has not done without n for
 * background_unload_ms (svc_rt.carried)
 */
int nodes__model_wanted(const struct aibld *d, int si, const struct node_rt *n, const char *model,
			__u64 now);
/* ai: the end of n's load or unload, checked every recompute. A load is
 * refused (nodes__load_refused()) when its model is not resident
 * background_load_ms (300 s where 0) after it was asked, whether or not its
 * service still wants it; a refused one is forgotten at its retry_ms. An
 * unload asked of n's agent ends once a report since has the model neither
 * resident nor flagged unloading (the agent flags it until its engine has
 * answered); it is refused once the model is resident again after the
 * flag, or at the same bound */
void nodes__load_check(struct aibld *d, struct node_rt *n, __u64 now);
void nodes__poll_ok(struct aibld *d, struct node_rt *n, struct agent_report *rep);
/*
 * ai: the prefix-cache hit rate of the model server that serves model at
 * node n (smoothed), where its agent names one with a figure; else the
 * node's, over all its servers (hit_rate); < 0 unknown. A node that runs
 * a chat model and a single-turn one, each in an engine of its own, tells
 * the two apart.
 */
double nodes__model_hit(const struct node_rt *n, const char *model);
/*
 * ai: the requests node n runs at once before new ones wait: measured
 * where it queued (slots), else what its agent reports (the report's
 * slots: its operator's slots=N, or the engine's own word); < 0 unknown.
 * The measure wins: a KV cache full of long prompts runs fewer than the
 * engine's limit.
 */
double nodes__slots(const struct node_rt *n);
void nodes__poll_fail(struct aibld *d, struct node_rt *n, enum node_fail kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int nodes__set_drain(struct aibld *d, const char *name, bool drain);
int nodes__build_pins(struct aibld *d, struct pin_ent **out, int *count);
/* qsort order of pin entries: by key */
int nodes__pin_cmp_key(const void *a, const void *b);

/* tables.c: map access */
int tables__open(struct aibld *d);
void tables__close(struct aibld *d);
int tables__write_ring(struct aibld *d, __u32 svc_id, __u8 half, const __u32 *ids);
int tables__read_ring(struct aibld *d, __u32 svc_id, __u8 half, __u32 *ids);
/* a per-CPU struct aibl_traffic entry (aibl_svc_stats, aibl_be_stats) set to
 * zero on every CPU. 0 or -errno */
int tables__traffic_zero(struct aibld *d, int fd, __u32 id);
int tables__sync_pins(struct aibld *d, struct pin_ent *want, int nwant);
int tables__load_pins(struct aibld *d);
int tables__read_counters(struct aibld *d);
/* node_rt.open_* of every node: one read of the connection table while an
 * agent drains a model (controller thread, before a poll round) */
void tables__count_open(struct aibld *d);
/* one node's active flows and traffic counters, read now */
void tables__read_node(struct aibld *d, struct node_rt *n);

/* poller.c */
int poller__init(void);
void poller__fini(void);
/* Poll every node once (concurrently, bounded by poll_timeout_ms). Takes
 * d->lock itself to record results. */
int poller__run(struct aibld *d);
/* an agent's URL for path ("v1/report"): its base URL, one '/', the path */
void poller__agent_url(char *buf, size_t len, const char *agent, const char *path);
/*
 * With agent_key_file: the X-Aibl-Signature value for a request to node's
 * agent, for what and nonce, in sig, signed by the node's own key (into
 * *key: it signs no other node's request). Without a key sig is "". 0 or
 * -EIO.
 */
int poller__sign(const struct aibld *d, const char *node, const char *nonce, const char *what,
		 struct aibl_key *key, char *sig, size_t siglen);

/* netlink.c */
int netlink__open(struct nl **out);
void netlink__close(struct nl *nl);
int netlink__fd(const struct nl *nl);
/* true when an event arrived since the last call (facts may have changed) */
bool netlink__events(struct nl *nl);
int netlink__refresh(struct nl *nl, struct aibld *d);

/* api.c */
/* the listener on d->cfg.status_listen, taking the bearer token given
 * (its own copy: a reload that moves the listener starts the new one with
 * the new token while the old one keeps the old, never one without) */
int api__start(struct aibld *d, const char *token, struct api **out);
/* a kept listener's token, at a reload */
void api__set_token(struct api *a, const char *token);
void api__stop(struct api *a);

#endif
