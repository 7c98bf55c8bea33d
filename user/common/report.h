/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node agent's report (GET /v1/report), schema version 1. The agent
 * produces it with agent_report__to_json(), the controller reads it with
 * agent_report__parse(). The JSON form is documented in docs/agent.md
 * ("Agent report schema"); this struct is its in-memory form.
 *
 * Limits are part of the schema: a report over them is refused whole
 * (parse returns -E2BIG with a message), never truncated silently.
 */
#ifndef AIBL_REPORT_H
#define AIBL_REPORT_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "aibl.h"

#define AGENT_REPORT_SCHEMA 1
#define AR_MAX_BYTES	    (1024 * 1024) /* largest report body accepted */
/* GPUs and MIG instances together: 8 GPUs with 7 instances each fit;
 * what a node has beyond this is counted in gpus_omitted, not sent */
#ifndef AR_MAX_GPUS
#define AR_MAX_GPUS 64
#endif
#define AR_MAX_SERVERS 16
#define AR_MAX_MODELS  64
#define AR_MAX_HINTS   4096
#define AR_MAX_SLOTS   100000 /* a server's slots (ar_server.slots) */
/* the largest count or ms a report carries (queue_depth, running,
 * in_flight, the *_avg figures); the parser refuses a report past it */
#define AR_MAX_FIGURE  1e9
#define AR_NAME_LEN    64
#define AR_MODEL_LEN   128
#define AR_URL_LEN     256
#define AR_ADDR_LEN    48 /* longest textual IPv4/IPv6 address read */
#define AR_UUID_LEN    64 /* "GPU-<36>", "MIG-<36>", old "MIG-GPU-<36>/gi/ci" */
#define AR_PCI_LEN     32 /* "00000000:18:00.0" */
#define AR_GPU_ERR_LEN 96
#define AR_IFNAME_LEN  16 /* IF_NAMESIZE */

/*
 * One physical GPU, or one MIG instance (mig) of the GPU with the same
 * index. A figure NVML could not read is NAN ("null" in JSON;
 * temp_c has no spare negative value to mean unknown), and error says why.
 */
struct ar_gpu {
	int index;	  /* NVML enumeration order: not the CUDA index, not stable */
	bool mig;	  /* a MIG instance of the GPU with this index (zeroed: a GPU) */
	int mig_index;	  /* with mig: its MIG device index under that GPU */
	bool mig_enabled; /* physical GPU in MIG mode: its instances follow it */
	char name[AR_NAME_LEN];
	char uuid[AR_UUID_LEN];	     /* "" unknown: what ties a GPU to its model server */
	char pci_bus_id[AR_PCI_LEN]; /* "" unknown; a MIG instance has its parent's */
	double util_pct;	     /* 0..100 */
	double mem_used_bytes;
	double mem_total_bytes;
	double temp_c;
	double power_w;
	char error[AR_GPU_ERR_LEN]; /* why figures are unknown, "" none */
	/* NVML answered that the GPU is lost (fell off the bus) or needs a
	 * reset: the work on it fails, whatever its server's metrics say */
	bool lost;
};

/* a GPU figure that was read (not NAN) */
static inline bool ar_gpu_known(double v)
{
	return !__builtin_isnan(v);
}

/* one scraped model server */
struct ar_server {
	char url[AR_URL_LEN];
	char kind[16]; /* "vllm", "sglang", "trtllm", "triton", "tgi", "llamacpp", "ollama",
			  "unknown" */
	bool up;
	uint64_t age_ms;	      /* since the last successful scrape */
	char error[128];	      /* last error, "" when none */
	double queue_depth;	      /* requests waiting */
	double running;		      /* requests being served */
	double kv_cache_usage;	      /* 0..1, -1 unknown */
	double prefix_cache_hit_rate; /* 0..1, -1 unknown */
	double ttft_avg_ms;	      /* mean time to first token since last scrape, -1 unknown */
	double e2e_avg_ms;	      /* mean request latency since last scrape, -1 none finished */
	/* of the same requests, the mean time each ran (held a batch slot:
	 * prefill and decode, no queueing), -1 none finished or not exported */
	double run_avg_ms;
	/* of the same requests, the mean time from a batch slot to the first
	 * token (the PREFILL phase: its own prompt's compute and, where
	 * prefills share the accelerator, the others' ahead of it) and the
	 * mean prompt tokens computed (not found in the prefix cache); -1
	 * none finished or not exported */
	double prefill_avg_ms, prefill_tokens_avg;
	/* of the same requests, the mean whole prompt in tokens, cached ones
	 * too (vLLM's request_prompt_tokens), -1 none finished or not
	 * exported */
	double prompt_tokens_avg;
	/* how long it has run requests without finishing one (ms; 0 when one
	 * finished since the scrape before, or nothing runs), -1 unknown */
	double since_finish_ms;
	/* the agent's speed probe (--speed-probe): a short request's time
	 * per output token in ms, taken while the server was idle; -1 none */
	double probe_ms_per_token;
	/* the requests it runs at once at most, as its operator stated it
	 * (--model-server URL,slots=N: vLLM's --max-num-seqs, SGLang's
	 * --max-running-requests, llama-server's --parallel), else as the
	 * engine says it (llama.cpp /props, SGLang /server_info); -1 neither */
	double slots;
};

struct ar_model {
	char name[AR_MODEL_LEN];
	bool resident;		 /* loaded and servable now */
	char server[AR_URL_LEN]; /* which model server has it */
	/* not resident: the agent unloads it (POST /v1/unload), from the ask
	 * until the engine has answered: it drains it first and waits for the
	 * balancers' open connections of it to end, which they state on
	 * their polls (AR_OPEN_HEADER) */
	bool unloading;
};

/*
 * On a balancer's GET /v1/report: "<count>" or "<count> <model>", the open
 * TCP connections (not closing) it holds to this node on the services of
 * the model the last report it fetched says is unloading, counted after
 * its tables dropped the node for that model. No model: it is a balancer
 * and nothing is unloading. With a key, signed on its own
 * (AIBL_OPEN_SIG_HEADER, auth.h): the agent takes no count without it.
 */
#define AR_OPEN_HEADER "X-Aibl-Open-Flows"
#define AR_OPEN_MAX    1000000000L
/* an unload's drain_timeout_ms (agent, aibld's API, aiblctl): at most an
 * hour */
#define AR_DRAIN_TIMEOUT_MAX_MS 3600000

/*
 * "this node holds warm context for client X on VIP:port (or model)".
 * Addresses are parsed once, by agent_report__parse()/agent_hints__parse(),
 * and carried in binary (the JSON has their text).
 */
struct ar_hint {
	union aibl_addr client;
	union aibl_addr vip;
	__u8 client_family;	  /* enum aibl_family */
	__u8 vip_family;	  /* AIBL_AF_NONE when only the model is known */
	uint16_t port;		  /* 0 without a vip */
	uint8_t proto;		  /* IPPROTO_TCP / IPPROTO_UDP, 0 unknown */
	char model[AR_MODEL_LEN]; /* "" when unknown */
	uint32_t ttl_ms;	  /* remaining lifetime */
	double score;		  /* 0..1 confidence/warmth */
	char source[16];	  /* "traffic" or "server" */
};

struct agent_report {
	int schema; /* AGENT_REPORT_SCHEMA */
	char node[AR_NAME_LEN];
	uint64_t timestamp_ms; /* agent wall clock */
	char version[32];
	char accel[32]; /* accelerator kind: --accel, else "gpu" with NVML devices, "cpu" */

	bool nvml;	      /* NVML loaded: gpus[] is meaningful */
	char nvml_error[128]; /* why not, when !nvml */
	int ngpus;
	struct ar_gpu gpus[AR_MAX_GPUS];
	int gpus_omitted; /* devices beyond AR_MAX_GPUS the agent did not send */

	int nservers;
	struct ar_server servers[AR_MAX_SERVERS];

	int nmodels;
	struct ar_model models[AR_MAX_MODELS];

	/* node totals, aggregated over servers (-1 where unknown) */
	double queue_depth;
	double in_flight; /* running + waiting */
	double kv_cache_usage;
	double prefix_cache_hit_rate;
	double ttft_avg_ms;
	double e2e_avg_ms;	   /* mean over the servers that finished requests, -1 none */
	double run_avg_ms;	   /* likewise, of the servers that export it */
	double prefill_avg_ms;	   /* likewise */
	double prefill_tokens_avg; /* likewise */
	double prompt_tokens_avg;  /* likewise */
	double since_finish_ms;	   /* the longest of the servers', -1 unknown */
	double probe_ms_per_token; /* the fastest server's speed probe, -1 none */
	double slots;		   /* the up servers' slots, summed; -1 where one has none */
	bool stale;		   /* no model server scraped successfully recently */

	int nhints;
	struct ar_hint *hints; /* heap, nhints entries; agent_report__free() */

	/* the node's decap program (aibl-agent --decap): where it is attached
	 * and its counters (AIBL_NODE_COUNTERS) summed over the CPUs, each -1
	 * where the agent did not send it (an older agent with fewer) */
	bool decap;
	char decap_if[AR_IFNAME_LEN];
	int64_t decap_counters[AIBL_NCNT__MAX];
};

/* a count or ms figure as a report carries it: -1 (unknown) for a
 * negative or non-finite one, at most AR_MAX_FIGURE */
static inline double agent_report__figure(double v)
{
	return !(v >= 0) || v == INFINITY ? -1 : v > AR_MAX_FIGURE ? AR_MAX_FIGURE : v;
}

/* a + b for counters (both >= 0), saturated at INT64_MAX rather than
 * wrapping: a report's counters go up to INT64_MAX each */
static inline int64_t agent_report__count_add(int64_t a, int64_t b)
{
	return b > INT64_MAX - a ? INT64_MAX : a + b;
}

/* the decap counters' names in the report, in enum aibl_node_counter order */
extern const char *const agent_report__decap_names[AIBL_NCNT__MAX];
/* the packets the decap program refused: the drop_* counters summed
 * (saturated at INT64_MAX), -1 without r->decap */
int64_t agent_report__decap_dropped(const struct agent_report *r);
/* the report's "decap" member, {"interface", "counters": {NAME: N}} (the
 * known counters only), a new reference; NULL out of memory */
struct json_t;
struct json_t *agent_report__decap_json(const struct agent_report *r);

void agent_report__init(struct agent_report *r);
void agent_report__free(struct agent_report *r);

/*
 * Parse a report body. 0 on success; -EINVAL malformed or wrong types,
 * -E2BIG over a limit, -EPROTO unsupported schema. err gets a one-line
 * reason on failure. On failure r is left initialised and empty.
 */
int agent_report__parse(const char *body, size_t len, struct agent_report *r, char *err,
			size_t errlen);

/*
 * Parse a POST /v1/hints body {"hints":[{...}]}: each hint has the members
 * of a report's hints (same checks); source is forced to "server" and a
 * missing score reads as 1. *out is malloc'd (free() it), *n entries.
 * Same return codes as agent_report__parse.
 */
int agent_hints__parse(const char *body, size_t len, struct ar_hint **out, int *n, char *err,
		       size_t errlen);

/* Serialise; returns a malloc'd NUL-terminated string or NULL (errno set). */
char *agent_report__to_json(const struct agent_report *r);
/* AR_OPEN_HEADER's value: 0 and *n, *model ("" none), or -EINVAL */
int agent_report__parse_open(const char *v, long *n, char *model, size_t modellen);
/* the model r says is unloading (ar_model.unloading), NULL none */
const char *agent_report__unloading(const struct agent_report *r);

#endif
