/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibl-loadgen: load generator for the lab, the demo, the end-to-end tests
 * and the benchmarks. Two workloads on one libcurl multi loop:
 *
 *   chat  multi-turn chat sessions against OpenAI-compatible servers
 *         (POST /v1/chat/completions, stream true), each session from its
 *         own client address, prompt growing every turn, several models,
 *         bursty Poisson arrivals; measures time to first token from the
 *         SSE stream, end-to-end latency, output tokens, prefix-cache hits
 *         and cold starts (aibl-simnode's X-Simnode-* headers or the usage
 *         object) per node (X-Aibl-Node) and per model.
 *   http  short plain HTTP requests, a new TCP connection per request or
 *         kept-alive connections, at a fixed offered rate or at saturation;
 *         records which backend served each request.
 *
 * Everything random comes from --seed, so a workload is reproducible.
 * Names are prefixed lg_ (the tool's library is linked into every test).
 */
#ifndef AIBL_LOADGEN_H
#define AIBL_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include "clock.h"

#define LG_NAME_LEN    64
#define LG_MAX_MODELS  32
#define LG_MAX_TARGETS 64
#define LG_URL_LEN     256

/* ---- client source addresses: "10.0.0.1-10.0.0.9,fd00::1-fd00::20,10.1.1.1" ---- */
struct lg_addr {
	int family; /* AF_INET / AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct lg_addrs {
	struct lg_addr *a;
	size_t n, cap;
};

#define LG_MAX_ADDRS (1u << 20)

int lg_addrs__parse(struct lg_addrs *l, const char *spec, char *err, size_t errlen);
void lg_addrs__free(struct lg_addrs *l);
size_t lg_addrs__count(const struct lg_addrs *l, int family);
/* i-th address of that family (modulo their count) as CURLOPT_INTERFACE
 * "host!ADDR"; "" when the list holds none of that family */
void lg_addrs__interface(const struct lg_addrs *l, int family, size_t i, char *out, size_t len);

/* AF_INET6 when the URL's host is a bracketed IPv6 literal, else AF_INET */
int lg_url_family(const char *url);

/* ---- deterministic random numbers (splitmix64) ---- */
struct lg_rng {
	uint64_t s;
};

void lg_rng__seed(struct lg_rng *r, uint64_t seed, uint64_t stream);
uint64_t lg_rng__next(struct lg_rng *r);
double lg_rng__uniform(struct lg_rng *r); /* [0, 1) */
double lg_rng__exp(struct lg_rng *r, double mean);

/* ---- server-sent events: split a byte stream into "data:" payloads ---- */
struct lg_sse {
	char *buf;
	size_t len, cap;
};

/* Calls cb(payload, ctx) for every complete event's data (NUL-terminated,
 * multi-line data joined with '\n'). Returns 0, -ENOMEM, or cb's error. */
int lg_sse__feed(struct lg_sse *s, const char *data, size_t len,
		 int (*cb)(const char *payload, void *ctx), void *ctx);
void lg_sse__free(struct lg_sse *s);

/* ---- results ---- */
struct lg_sample {
	double t_start_ms; /* since the run started */
	double ttft_ms;	   /* chat: first content token; http: < 0 */
	double e2e_ms;
	uint32_t out_tokens, prompt_tokens, cached_tokens;
	uint32_t session, turn;
	uint16_t node;	/* index into lg_run.nodes */
	uint16_t model; /* index into the models (chat) */
	int status;	/* HTTP status, 0 when the transfer failed */
	bool ok, cold, reconnect;
};

/* interned names (nodes seen in X-Aibl-Node) */
struct lg_names {
	char (*name)[LG_NAME_LEN];
	size_t n, cap;
};

int lg_names__intern(struct lg_names *t, const char *name);
void lg_names__free(struct lg_names *t);

struct lg_samples {
	struct lg_sample *s;
	size_t n, cap;
};

int lg_samples__add(struct lg_samples *v, const struct lg_sample *s);

/* nearest-rank percentile of v[0..n) (sorted in place); NAN when n == 0 */
double lg_percentile(double *v, size_t n, double p);

/* ---- workloads ---- */
struct lg_model {
	char name[LG_NAME_LEN];
	double weight;
	char url[LG_URL_LEN]; /* "" : the default targets */
};

struct lg_common {
	char targets[LG_MAX_TARGETS][LG_URL_LEN]; /* base URLs, e.g. http://10.200.0.1:8000 */
	int ntargets;
	struct lg_addrs src;
	uint64_t seed;
	double duration_s;     /* 0: no time cap */
	uint64_t max_requests; /* 0: no cap */
	double timeout_ms;
	bool keepalive;
	int progress; /* 0 off, 1 auto */
	const char *samples_path;
};

struct lg_chat_cfg {
	struct lg_common c;
	struct lg_model models[LG_MAX_MODELS];
	int nmodels;
	uint32_t sessions;
	uint32_t turns;
	uint32_t context_tokens; /* long per-session context (system message) */
	uint32_t turn_tokens;	 /* new user text per turn */
	uint32_t output_tokens;	 /* max_tokens per request */
	double rate;		 /* session arrivals per second */
	double burst_prob;	 /* an arrival is a burst of burst_size sessions */
	uint32_t burst_size;
	uint32_t calm_sessions;	      /* the first ones arrive one at a time */
	double think_ms;	      /* mean pause between a reply and the next turn */
	uint32_t max_inflight;	      /* 0: open loop */
	uint32_t sessions_per_source; /* consecutive sessions sharing an address */
	double chars_per_token;
};

struct lg_http_cfg {
	struct lg_common c;
	char path[LG_URL_LEN];
	double rate;	/* requests/s offered; 0: saturation (closed loop) */
	uint32_t conns; /* concurrent connections / transfers */
};

struct lg_run {
	const char *mode; /* "chat" / "http" */
	struct lg_names nodes;
	struct lg_samples samples;
	const char *model_names[LG_MAX_MODELS];
	int nmodels;
	double wall_s;
	double start_unix_ms;	/* wall clock at the start: t_start_ms + this = absolute */
	uint64_t started, late; /* http fixed rate: starts more than 10 ms late */
	uint32_t sessions_done, sessions_total;
	char first_error[256];
};

int lg_chat__run(const struct lg_chat_cfg *cfg, struct lg_run *run);
int lg_http__run(const struct lg_http_cfg *cfg, struct lg_run *run);
void lg_run__free(struct lg_run *run);

/* progress line on stderr: one updating line on a TTY, else every 5 s */
struct lg_progress {
	bool enabled, tty;
	double last_ms, start_ms;
};

void lg_progress__init(struct lg_progress *p, int mode, double now_ms);
void lg_progress__update(struct lg_progress *p, double now_ms, const struct lg_run *run,
			 size_t inflight, bool final);

/* easy-handle options shared by both workloads (source address, timeouts,
 * a fresh connection per transfer unless keepalive) */
void lg_curl_common(void *curl, const struct lg_common *c, const char *iface, char *errbuf);

/* ---- reports ---- */
void lg_report__table(FILE *f, const struct lg_run *run, const char *title);
int lg_report__json(FILE *f, const struct lg_run *run, const char *config_json);
int lg_report__samples(const char *path, const struct lg_run *run);

#endif
