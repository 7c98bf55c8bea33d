/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibl-simnode's latency model, apart from its HTTP front so tests can
 * drive it directly. A request goes through:
 *
 *   sim__admit()   waits for its model (loading it, evicting the least
 *                  recently used idle model to fit the memory budget),
 *                  then for one of the concurrent slots in arrival order;
 *                  looks its session up in the prefix cache
 *   prefill        sim__prefill_ms(): tokens not in the cache x per-token
 *   first token    sim__first_token() records time to first token
 *   decode         sim__decode_ms() per output token, sim__token() each
 *   sim__finish()  stores the session's prefix (prompt + reply), frees
 *                  the slot and the model
 *
 * Every duration is multiplied by the slowdown factor (and the CPU factor
 * in CPU-only mode) and by a jitter derived from the seed and the request
 * content only, so a run is reproducible whatever the arrival order.
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

struct sim_cfg {
	unsigned int slots;	   /* requests served concurrently */
	unsigned int queue_max;	   /* waiting requests beyond which 429 */
	double prefill_base_ms;	   /* per request */
	double prefill_ms_per_tok; /* per prompt token not cached */
	double decode_ms_per_tok;  /* per output token */
	double batch_penalty;	   /* decode slower by this fraction per other running request */
	uint64_t cache_tokens;	   /* KV/prefix cache capacity */
	unsigned int max_sessions; /* prefix cache entries */
	uint64_t mem_mb;	   /* model memory budget */
	double load_ms;		   /* loading a non-resident model */
	double slowdown;	   /* >= 1 for slower accelerators */
	bool cpu;		   /* CPU-only node */
	double cpu_factor;	   /* extra slowdown in CPU-only mode */
	double jitter;		   /* +- fraction, deterministic per request */
	uint64_t seed;
	double chars_per_token;
	unsigned int default_max_tokens;
};

struct sim_model {
	char name[SIM_MODEL_LEN];
	uint64_t size_mb;
	bool resident;
	bool loading;
	unsigned int users; /* requests holding it (not evictable) */
	uint64_t last_used; /* LRU sequence */
	/* metrics */
	uint64_t loads, evictions;
	unsigned int running, waiting;
	uint64_t requests, prompt_tokens, gen_tokens;
	uint64_t ttft_buckets[SIM_TTFT_BUCKETS]; /* cumulative at render time only */
	double ttft_sum;
	uint64_t ttft_count;
	double e2e_sum;
	uint64_t e2e_count;
};

struct sim_session {
	uint64_t key_hash;
	char key[SIM_SESSION_LEN];
	uint64_t full_hash, prompt_hash; /* of the first full_chars / prompt_chars */
	size_t full_chars, prompt_chars;
	uint32_t full_tokens, prompt_tokens;
	int lru_prev, lru_next; /* doubly linked, most recent at head */
	int hnext;		/* hash chain */
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
};

struct sim_req {
	int model;
	char session[SIM_SESSION_LEN];
	const char *prompt; /* rendered prompt text */
	size_t prompt_len;
	uint32_t prompt_tokens;
	uint32_t max_tokens;
	/* filled by sim__admit */
	uint32_t cached_tokens;
	bool cold; /* waited for a model load */
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

/* Fills rq->prompt_tokens and jitter from the content; call first. */
void sim__req_init(struct sim *s, struct sim_req *rq);
/* 0, -EBUSY (queue full), -E2BIG (model larger than the memory budget) */
int sim__admit(struct sim *s, struct sim_req *rq);
double sim__prefill_ms(const struct sim *s, const struct sim_req *rq);
double sim__decode_ms(struct sim *s, const struct sim_req *rq);
void sim__first_token(struct sim *s, struct sim_req *rq);
void sim__token(struct sim *s, struct sim_req *rq);
/* cont: how the reply continues the prompt in the next turn's prompt
 * (the rendered assistant message), cached after the prompt */
void sim__finish(struct sim *s, struct sim_req *rq, const char *cont, size_t cont_len);

/* the next output token's text, deterministic in (seed, prompt, index) */
const char *sim__token_text(const struct sim *s, const struct sim_req *rq, uint32_t i);

/* Prometheus text (vLLM names) and the /v1/models JSON; malloc'd */
char *sim__metrics(struct sim *s);
char *sim__models_json(struct sim *s);

/* prefix cache, exposed for tests */
uint32_t sim__cache_lookup(struct sim *s, const char *session, const char *text, size_t len);

#endif
