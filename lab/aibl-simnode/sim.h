/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibl-simnode's latency model, apart from its HTTP front so tests can
 * drive it directly. A request goes through:
 *
 *   sim__admit()   waits for its model (loading it, evicting the least
 *                  recently used idle model to fit the memory budget),
 *                  then for one of the concurrent slots in arrival order;
 *                  looks its session up in the prefix cache
 *   prefill        sim__prefill_ms(): tokens not in the cache x per-token;
 *                  sim__prefill_end() says when it ends: at once in its
 *                  slot, or with shared_prefill after the prefills
 *                  started before it (one accelerator's compute)
 *   first token    sim__first_token() records time to first token
 *   decode         sim__decode_ms() per output token, sim__token() each
 *   sim__finish()  stores the session's prefix (prompt + reply), frees
 *                  the slot and the model
 *
 * Every duration is multiplied by the slowdown factor (and the CPU factor
 * in CPU-only mode) and by a jitter derived from the seed and the request
 * content only, so a run is reproducible whatever the arrival order.
 *
 * LoRA adapters as vLLM serves them: sim__lora_load() takes lora_load_ms
 * (the adapter is not servable meanwhile), a request naming a loaded
 * adapter runs on its parent base model (its memory, its slots, its
 * prefix cache) a lora_overhead fraction slower, and the
 * vllm:lora_requests_info gauge says which adapters run and wait.
 */
#ifndef AIBL_SIMNODE_SIM_H
#define AIBL_SIMNODE_SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "clock.h"

#define SIM_MAX_MODELS	 32
#define SIM_MODEL_LEN	 128
#define SIM_SESSION_LEN	 256
#define SIM_TTFT_BUCKETS 23
/* distinct adapter names a simnode ever loads (a running/waiting set is a
 * bitmask of them) and lora_requests_info label sets it keeps */
#define SIM_MAX_LORAS 64
#define SIM_LORA_SETS 8
#define SIM_LORA_PATH 256

struct sim_cfg {
	unsigned int slots;	   /* requests served concurrently */
	unsigned int queue_max;	   /* waiting requests beyond which 429 */
	double prefill_base_ms;	   /* per request */
	double prefill_ms_per_tok; /* per prompt token not cached */
	double decode_ms_per_tok;  /* per output token */
	double batch_penalty;	   /* decode slower by this fraction per other running request */
	bool shared_prefill;	   /* prefills take turns on the node's compute, first come first */
	uint64_t cache_tokens;	   /* KV/prefix cache capacity */
	unsigned int max_sessions; /* prefix cache entries */
	uint64_t mem_mb;	   /* model memory budget */
	/* written with the memory its models take, as the fake NVML's
	 * controls (tests/fake/fake_nvml.c); NULL: not */
	const char *nvml_ctl;
	double load_ms;	      /* loading a non-resident model */
	double lora_load_ms;  /* loading an adapter */
	double lora_overhead; /* an adapter's request slower by this fraction */
	double slowdown;      /* >= 1 for slower accelerators */
	bool cpu;	      /* CPU-only node */
	double cpu_factor;    /* extra slowdown in CPU-only mode */
	double jitter;	      /* +- fraction, deterministic per request */
	uint64_t seed;
	double chars_per_token;
	unsigned int default_max_tokens;
	/* imitate llama-server instead of vLLM: its metrics names (no latency
	 * histograms) and GET /props (sim__props) */
	bool llamacpp;
};

struct sim_model {
	char name[SIM_MODEL_LEN];
	uint64_t size_mb;
	bool resident;
	bool loading;
	unsigned int users; /* requests holding it (not evictable) */
	uint64_t last_used; /* LRU sequence */
	uint32_t gen;	    /* bumped when it leaves the memory */
	/* metrics */
	uint64_t loads, evictions;
	unsigned int running, waiting;
	uint64_t requests, prompt_tokens, gen_tokens;
	uint64_t ttft_buckets[SIM_TTFT_BUCKETS]; /* cumulative at render time only */
	double ttft_sum;
	uint64_t ttft_count;
	double e2e_sum;
	uint64_t e2e_count;
	/* of the finished requests (e2e_count): seconds waiting for a slot (or
	 * the model's load) and seconds holding one, as vLLM's
	 * request_queue_time / request_inference_time histograms; seconds
	 * from a slot to the first token and the prompt tokens computed there
	 * (not found in the prefix cache), as request_prefill_time and
	 * request_prefill_kv_computed_tokens; its whole prompt, cached or
	 * not, as request_prompt_tokens */
	double queue_sum, run_sum, prefill_sum;
	uint64_t computed_tokens, request_prompt_tokens;
};

struct sim_lora {
	char name[SIM_MODEL_LEN];
	char path[SIM_LORA_PATH]; /* "root" in /v1/models */
	int parent;		  /* base model index */
	bool loaded, loading;
	uint32_t gen; /* bumped when it is unloaded */
	unsigned int running, waiting;
	uint64_t requests;
};

/* one label set of vllm:lora_requests_info and when it was last current */
struct sim_lora_set {
	uint64_t running, waiting; /* bit i: adapter i */
	double ts;		   /* seconds since the epoch */
};

struct sim_session {
	uint64_t key_hash;
	char key[SIM_SESSION_LEN];
	uint64_t full_hash, prompt_hash; /* of the first full_chars / prompt_chars */
	size_t full_chars, prompt_chars;
	uint32_t full_tokens, prompt_tokens;
	int lru_prev, lru_next;	      /* doubly linked, most recent at head */
	int hnext;		      /* hash chain */
	unsigned int users;	      /* running requests reusing this prefix: not evictable */
	int model, lora;	      /* whose KV it is: the base model, the adapter (-1 none) */
	uint32_t model_gen, lora_gen; /* and their generations then (sim_req's) */
	bool used;
};

struct sim {
	struct sim_cfg cfg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct sim_model models[SIM_MAX_MODELS];
	int nmodels;
	uint64_t mem_used_mb;
	uint64_t seq;
	/* slots: FIFO by ticket */
	unsigned int running, waiting;
	uint64_t next_ticket, head_ticket;
	uint64_t running_tokens;
	/* of running_tokens, the prefixes reused from the cache: their blocks
	 * are the cached ones, held once (vLLM shares a hit's blocks) */
	uint64_t shared_tokens;
	/* shared_prefill: when the prefills started so far are done */
	double prefill_free_ms;
	/* prefix cache */
	struct sim_session *sessions;
	int *hbuckets;
	unsigned int nbuckets;
	int lru_head, lru_tail, free_head;
	unsigned int nsessions;
	uint64_t cached_tokens;
	uint64_t cache_queries, cache_hits; /* in tokens, like vLLM */
	uint64_t cache_evictions;
	uint64_t rejected;
	double start_ms;
	/* adapters: entries are never reused, a name keeps its bit */
	struct sim_lora loras[SIM_MAX_LORAS];
	int nloras;
	struct sim_lora_set lora_sets[SIM_LORA_SETS];
	int nlora_sets;
};

struct sim_req {
	int model;    /* the base model that runs it */
	bool adapter; /* through adapter `lora` of that model */
	int lora;
	char session[SIM_SESSION_LEN];
	const char *prompt; /* rendered prompt text */
	size_t prompt_len;
	uint32_t prompt_tokens;
	uint32_t max_tokens;
	/* filled by sim__admit */
	uint32_t cached_tokens;
	int cache_entry; /* the prefix it reuses (held until finish), or -1 */
	bool cold;	 /* waited for a model load */
	/* the model's and the adapter's generations it ran on: either
	 * unloaded before it finished takes its KV along */
	uint32_t model_gen, lora_gen;
	double t_arrival, t_admitted, t_first;
	double jitter;	       /* multiplier */
	uint64_t content_hash; /* of the prompt, seeds the output text */
	uint32_t generated;
};

/* "name:size_mb,name:size_mb"; resident: "name,name" or NULL (fill in order). */
int sim__init(struct sim *s, const struct sim_cfg *cfg, const char *models, const char *resident,
	      char *err, size_t errlen);
void sim__fini(struct sim *s);

int sim__model_find(const struct sim *s, const char *name);
uint32_t sim__tokens(const struct sim *s, size_t chars);
void sim__sleep_until(double t_ms);

/* The runtime model API (an operator or autoscaler moving models): load
 * model i as a request would (waits for the load, evicting idle models;
 * 0 or -E2BIG), or unload it now (requests holding it finish; 0, -ENOENT
 * when not resident, -EBUSY while it loads). */
int sim__model_load(struct sim *s, int i);
int sim__model_unload(struct sim *s, int i);

/* vLLM's runtime adapter API. Load: 0 once loaded (after lora_load_ms),
 * -EEXIST (loaded), -EBUSY (loading), -ENOENT (parent not a base model),
 * -ENOSPC (SIM_MAX_LORAS names used). Unload: 0, -ENOENT (not loaded);
 * its running requests finish. */
int sim__lora_load(struct sim *s, const char *name, const char *path, const char *parent);
int sim__lora_unload(struct sim *s, const char *name);
/* a request for adapter `name`: fills rq->model/adapter/lora; -ENOENT
 * when it is not loaded (vLLM: "The model `x` does not exist.") */
int sim__lora_route(struct sim *s, const char *name, struct sim_req *rq);

/* Fills rq->prompt_tokens and jitter from the content; call first. */
void sim__req_init(struct sim *s, struct sim_req *rq);
/* 0, -EBUSY (queue full), -E2BIG (model larger than the memory budget) */
int sim__admit(struct sim *s, struct sim_req *rq);
/* Shutting down: every simulated wait (prefill, decode, a load, a slot)
 * ends at once, so the requests in flight finish and their connections
 * close. */
void sim__stop(struct sim *s);
double sim__prefill_ms(const struct sim *s, const struct sim_req *rq);
/* The prefill of an admitted request starts: when it ends (clock_mono_msf
 * time). In its own slot it ends sim__prefill_ms() after admission; with
 * shared_prefill the node's compute does one prefill at a time, in the
 * order they start, as a GPU's batch shares its FLOPs (vLLM's FCFS chunked
 * prefill: a step's token budget goes to the earliest requests first). */
double sim__prefill_end(struct sim *s, const struct sim_req *rq);
double sim__decode_ms(struct sim *s, const struct sim_req *rq);
void sim__first_token(struct sim *s, struct sim_req *rq);
void sim__token(struct sim *s, struct sim_req *rq);
/* cont: how the reply continues the prompt in the next turn's prompt
 * (the rendered assistant message), cached after the prompt */
void sim__finish(struct sim *s, struct sim_req *rq, const char *cont, size_t cont_len);

/* the next output token's text, deterministic in (seed, prompt, index) */
const char *sim__token_text(const struct sim *s, const struct sim_req *rq, uint32_t i);

/* Prometheus text (vLLM names; llama.cpp's with cfg.llamacpp), the
 * /v1/models JSON and llama-server's GET /props (total_slots: the slots);
 * malloc'd */
char *sim__metrics(struct sim *s);
char *sim__models_json(struct sim *s);
char *sim__props(struct sim *s);

/* prefix cache, exposed for tests */
uint32_t sim__cache_lookup(struct sim *s, const char *session, const char *text, size_t len);

#endif
