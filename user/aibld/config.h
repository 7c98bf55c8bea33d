/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibld configuration: the YAML file parsed into plain structs. Every key,
 * its default and its range is documented in docs/aibld.md ("Controller
 * configuration"); config__defaults() is the single place defaults live.
 */
#ifndef AIBLD_CONFIG_H
#define AIBLD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <net/if.h>
#include <linux/types.h>
#include "aibl.h"

#define CFG_PATH_LEN	256
#define CFG_URL_LEN	256
#define CFG_ADDR_LEN	64
#define CFG_NODE_MODELS 8
#define CFG_ERR_LEN	512
/*
 * max_conn_rate left unset: aibld derives it from the connection table so
 * that new flows refill a CPU's share of the LRU no faster than once in
 * CFG_CONN_RATE_REFILL_S (established flows that live that long are never
 * evicted by new ones), at least CFG_CONN_RATE_MIN.
 */
#define CFG_CONN_RATE_AUTO     0xffffffffU
#define CFG_CONN_RATE_REFILL_S 10
#define CFG_CONN_RATE_MIN      64

enum cfg_xdp_mode {
	CFG_XDP_NATIVE = 0,
	CFG_XDP_GENERIC = 1,
};

/* an address key, parsed once by the config parser */
struct cfg_addr {
	union aibl_addr addr;
	__u8 family;		 /* enum aibl_family; AIBL_AF_NONE: not set */
	char text[CFG_ADDR_LEN]; /* as written, for messages and URLs */
};

/* a MAC address key */
struct cfg_mac {
	__u8 b[6];
	bool set;
};

struct cfg_node {
	char name[AIBL_NAME_LEN];
	struct cfg_addr address;
	int accel;	   /* enum aibl_accel */
	__u16 health_port; /* 0: the port of the first service it serves */
	__u32 weight;
	char agent[CFG_URL_LEN]; /* "" : no agent, TCP health check */
	int nmodels;		 /* models the node serves/loads without an agent report */
	char models[CFG_NODE_MODELS][AIBL_MODEL_LEN];
	int line;
};

struct cfg_service {
	char name[AIBL_NAME_LEN];
	struct cfg_addr vip;
	int proto;		    /* IPPROTO_TCP / IPPROTO_UDP */
	__u16 port;		    /* host order; 0: every port of the VIP */
	char model[AIBL_MODEL_LEN]; /* "" : any */
	int accel;		    /* required enum aibl_accel, -1: any */
	int policy;		    /* enum aibl_policy */
	int session_key;	    /* enum aibl_session_key */
	bool conntrack;
	/* MiB the model takes on a node, 0 unknown: ai loads it only where that
	 * much GPU memory is free (policy__free_mb) while a node serves it */
	unsigned int memory_mb;
	int nnodes;
	int *nodes; /* indices into config.nodes */
	int line;
};

struct cfg_ai {
	double util_weight, mem_weight, temp_weight, queue_weight, kv_weight, inflight_weight;
	double temp_soft_c, temp_hard_c;  /* pressure 0 at soft, 1 (and overloaded) at hard */
	double queue_ref;		  /* queue depth of full pressure; overloaded at/above it */
	double inflight_ref;		  /* in-flight requests of full pressure */
	double overload_kv;		  /* KV-cache usage at/above which a node is overloaded */
	double min_headroom;		  /* floor of (1 - load) so a busy node keeps a share */
	double cold_start_factor;	  /* weight factor for a node that must load the model */
	double load_cost;		  /* p2c cost of a fully loaded node, in active flows */
	double saturation_queue;	  /* waiting requests at which a node is saturated */
	double latency_spread;		  /* no new sessions where lat > spread x the best */
	double latency_slack_ms;	  /* ... + this, so tiny figures do not split nodes */
	unsigned int pin_spill_ms;	  /* a pin yields to a node expected this much sooner */
	unsigned int affinity_ms;	  /* a client's new flows follow its last p2c choice */
	unsigned int stale_ms;		  /* a report older than this is unknown, 0: 3 polls */
	unsigned int cold_start_after_ms; /* saturation that justifies a load */
	/* a cold start beside resident nodes loads in the background (the
	 * node's agent, POST /v1/load) and takes flows once resident or after
	 * this long; 0: its flows wait for the load */
	unsigned int background_load_ms;
	/* a model this balancer loaded beside resident nodes is unloaded
	 * (the node's agent, POST /v1/unload) once they have carried the
	 * service's load this long without it; 0: never */
	unsigned int background_unload_ms;
};

/* cluster mode (docs/cluster.md): set when the config has an etcd section */
struct cfg_etcd {
	char endpoint[CFG_URL_LEN];	 /* "" : single host, no cluster */
	char prefix[64];		 /* key prefix of this ECMP group */
	char name[AIBL_NAME_LEN];	 /* this balancer's name in the group */
	char api_url[CFG_URL_LEN];	 /* where peers reach this balancer's API */
	unsigned int lease_ttl_s;	 /* planner election and liveness */
	unsigned int cost_step;		 /* p2c costs in the plan move by more than this */
	unsigned int compact_interval_s; /* the planner compacts etcd's history; 0 never */
};

/* VIP announcement through BIRD (needs the etcd section) */
struct cfg_bgp {
	char include[CFG_PATH_LEN];	/* "" : no announcing; the file aibld writes */
	char bird_socket[CFG_PATH_LEN]; /* birdc -s */
	char birdc[CFG_PATH_LEN];	/* the birdc program */
};

struct config {
	char path[CFG_PATH_LEN];
	char interface[IF_NAMESIZE];
	int xdp_mode; /* enum cfg_xdp_mode */
	int fwd_mode; /* enum aibl_fwd_mode */
	char bpffs[CFG_PATH_LEN];
	unsigned int poll_interval_ms;
	unsigned int poll_timeout_ms;
	char status_listen[CFG_ADDR_LEN];
	char agent_key_file[CFG_PATH_LEN];
	char api_token_file[CFG_PATH_LEN];
	__u32 hash_seed;
	__u16 mtu;
	bool icmp_too_big;
	bool flow_cache;     /* established flows take the per-CPU flow cache */
	__u32 max_conn_rate; /* conn-table inserts per second per CPU; 0: unlimited; unset:
			      * CFG_CONN_RATE_AUTO */
	__u32 map_conns;     /* aibl_conns entries (fixed once the maps are pinned) */
	__u32 map_pins;	     /* aibl_pins entries (likewise) */
	struct cfg_addr tunnel_source4; /* unset: the interface's address */
	struct cfg_addr tunnel_source6;
	unsigned int tunnel_source_hash_bits;
	struct cfg_mac gateway_mac; /* unset: the default gateway's */
	unsigned int fail_after;    /* consecutive failures that mark a node down */
	unsigned int rise_after;    /* consecutive successes that mark it up */
	unsigned int min_rewrite_interval_ms;
	unsigned int hysteresis_pct;
	unsigned int pins_per_node, pins_per_service, pin_max_ttl_ms;
	double lt_smoothing;   /* least_time EWMA factor of the newest sample */
	double lt_ms_per_flow; /* least_time: ms of TTFT that cost one active flow */
	struct cfg_ai ai;
	struct cfg_etcd etcd;
	struct cfg_bgp bgp;

	int nnodes;
	struct cfg_node *nodes;
	int nservices;
	struct cfg_service *services;
};

void config__defaults(struct config *cfg);
/* Parse YAML text; name is what errors call the file. 0 or -errno, err gets
 * "NAME:LINE: problem". On failure cfg holds nothing to free. */
int config__parse(struct config *cfg, const char *name, const char *text, size_t len, char *err,
		  size_t errlen);
int config__load(struct config *cfg, const char *path, char *err, size_t errlen);
void config__free(struct config *cfg);

/*
 * The key table, for documentation and its test: fn(path, help, arg) once
 * per key in table order, path "key" at the top level and "section.key"
 * inside a section or list (a section itself is not a key). Stops at and
 * returns fn's first nonzero return.
 */
int config__for_each_key(int (*fn)(const char *path, const char *help, void *arg), void *arg);

int config__node_index(const struct config *cfg, const char *name);
/* the port of node idx's TCP check: health_port, else the port of the
 * first TCP service that lists it; 0 none (a UDP port is no TCP check) */
__u16 config__check_port(const struct config *cfg, int idx);
/* whether node idx has something aibld polls: an agent, or a TCP port */
bool config__checkable(const struct config *cfg, int idx);
const char *config__policy_name(int policy);
/* whether node c may take the service's flows at all: a weight above 0
 * and the accelerator the service needs, if it names one (the policies'
 * test, and the config's: a service needs one such node) */
bool config__may_serve(const struct cfg_service *svc, const struct cfg_node *c);
const char *config__accel_name(int accel);

#endif
