/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the agent knows about each model server, from its metrics page
 * (Prometheus text; Ollama: /api/ps JSON) and its model list
 * (OpenAI-compatible /v1/models; Ollama: /api/tags).
 *
 * Kinds are recognised from metric names, HELP/TYPE lines included:
 * vllm: / ray_vllm: / ray_vllm_ (vLLM, alone or under Ray Serve),
 * sglang: or sglang_ (SGLang), trtllm_ / trtllm: / pytrtllm: or the
 * unprefixed names with engine_type="trtllm" (TensorRT-LLM, trtllm-serve),
 * tgi_ (TGI), nv_ (Triton), llamacpp: (llama.cpp server). A server can be
 * given its kind and metrics path instead (agent_server__spec). Figures a
 * kind does not expose stay -1 (unknown). docs/engines.md lists every
 * metric read.
 */
#ifndef AIBL_AGENT_SCRAPE_H
#define AIBL_AGENT_SCRAPE_H

#include <stdbool.h>
#include <stdint.h>
#include "promtext.h"
#include "report.h"

#define AGENT_SERVER_MODELS AR_MAX_MODELS /* as many as a report carries */
/* label sets remembered per counter (engines, models, ranks of a server);
 * a page with more has that counter's window unknown, not counted whole */
#define AGENT_COUNTER_SERIES 128
/* label sets of one gauge summed from a page; more: the figure is unknown
 * (no engine writes that many, and each is compared with every other) */
#define AGENT_GAUGE_SERIES 1024

/*
 * One counter (summed over its label sets) remembered between scrapes,
 * series by series: an engine of several that restarts resets only its
 * own series, and the others' growth still counts.
 */
struct agent_counter {
	int n;
	uint64_t h[AGENT_COUNTER_SERIES]; /* hash of the label set */
	double v[AGENT_COUNTER_SERIES];
};

/* counters remembered between scrapes for windowed rates */
struct agent_counters {
	bool valid;
	struct agent_counter ttft_sum, ttft_count; /* seconds (ms for Triton) */
	struct agent_counter e2e_sum, e2e_count;   /* request latency, seconds */
	struct agent_counter run_sum, run_count;   /* time requests ran, seconds */
	/* the PREFILL phase, seconds, and the prompt tokens it computed */
	struct agent_counter prefill_sum, prefill_count, computed_sum, computed_count;
	struct agent_counter prompt_sum, prompt_count; /* whole prompts, tokens */
	struct agent_counter hits, queries;	       /* prefix cache, tokens */
};

struct agent_server {
	struct ar_server s;  /* what goes into the report */
	uint64_t last_ok_ms; /* monotonic, 0 never */
	struct agent_counters prev;
	int nmodels;
	struct ar_model models[AGENT_SERVER_MODELS];
	uint64_t models_ok_ms; /* monotonic: that list last read, 0 never */
	/* vLLM: LoRA adapters running now (lora_requests_info) */
	int nloras;
	char loras[AGENT_SERVER_MODELS][AR_MODEL_LEN];
	/* model names the metrics page itself names (model_name labels,
	 * Ollama's /api/ps), all resident: --read-metrics shows them */
	int npage_models;
	char page_models[AGENT_SERVER_MODELS][AR_MODEL_LEN];
	bool restarted;		 /* the last page's counters went backwards: a new server */
	bool probed;		 /* the speed probe ran on this server process */
	uint64_t probe_after_ms; /* monotonic: no probe before (after a failure) */
	bool e2e_seen;		 /* the last page had a request latency count */
	uint64_t busy_since_ms;	 /* monotonic: running, nothing finished since; 0 not */
	/* settings (agent_server__spec); "" = detect / the kind's default */
	char kind_cfg[16];
	char metrics_path[64];
	unsigned int slots_cfg; /* slots=N, 0 not stated */
	uint16_t port;		/* the URL's (its scheme's default), 0 unparsed:
				 * where the server is the one that serves a VIP
				 * port (agent__init) */
	/* the requests the engine says it runs at once (its info page,
	 * agent_server__info_path), 0 unknown */
	unsigned int slots_engine;
	uint64_t info_after_ms; /* monotonic: that page is fetched again after */
	int info_probe;		/* which of the kind's info paths is tried now */
	/* with no path set: which of the usual metrics paths is tried now */
	int probe;
};

/*
 * "URL[,kind=K][,metrics=PATH][,slots=N]" (a --model-server argument): the
 * base URL into srv->s.url, the settings into srv. 0 or -EINVAL (msg).
 */
int agent_server__spec(struct agent_server *srv, const char *spec, char *msg, size_t msglen);
/* a server as before its first scrape: kind "unknown", error "not scraped
 * yet", every figure -1 (unknown) */
void agent_server__unscraped(struct agent_server *srv);
/* the server's kind: kind=K where set, else the one its pages showed */
const char *agent_server__kind(const struct agent_server *srv);
/* the path to fetch the metrics page from, the model list from */
const char *agent_server__metrics_path(const struct agent_server *srv);
const char *agent_server__models_path(const struct agent_server *srv);
/*
 * The metrics fetch answered status with body: true when that answer
 * means "not here, try the next usual path" (404, 405, a JSON body where
 * Prometheus text was expected); srv->probe moves on and *why says so.
 */
bool agent_server__probe_next(struct agent_server *srv, long status, const char *body, size_t len,
			      const char **why);

/*
 * The page where the server's engine says how many requests it runs at
 * once, for the kind it is: llama.cpp /props (total_slots, its
 * --parallel), SGLang /server_info, before 2026 /get_server_info (the
 * scheduler's max_running_requests); NULL where the engine says it
 * nowhere (vLLM, TGI, Triton, TensorRT-LLM, Ollama) or the kind is not
 * known yet. agent_server__info_next: that path answered 404, try the
 * kind's next one (false: none left).
 */
const char *agent_server__info_path(const struct agent_server *srv);
bool agent_server__info_next(struct agent_server *srv);
/*
 * Read the batch limit from an info page (agent_server__info_path) of an
 * engine of this kind into *slots: 0; -ENOENT the page does not say;
 * -EINVAL not a page of that kind, or a count out of 1..AR_MAX_SLOTS
 * (msg says why).
 */
int agent_info__slots(const char *kind, const char *body, size_t len, unsigned int *slots,
		      char *msg, size_t msglen);

/*
 * After a page was taken at mono_ms: srv->s.since_finish_ms, how long the
 * server has run requests without finishing one (its request latency
 * count did not grow): 0 when one finished in the page's window or nothing
 * runs, -1 when it exports no request latency or running count.
 */
void agent_server__since_finish(struct agent_server *srv, uint64_t mono_ms);

/*
 * Take what a metrics fetch answered (HTTP status, body) into srv: 0 the
 * server is up and its figures are updated (msg may carry a note, e.g.
 * llama.cpp without --metrics); -EAGAIN not the metrics path, the next
 * usual one is tried at the next scrape; -EIO, -EINVAL, -E2BIG the answer
 * cannot be used. msg says why. now_ms: wall clock (Ollama's expiry).
 */
int agent_metrics__take(struct agent_server *srv, long status, const char *body, size_t len,
			uint64_t now_ms, char *msg, size_t msglen);

/* recognise the server kind from a page's metric names */
const char *agent_metrics__kind(const struct prom_page *pg);
/*
 * Update srv->s figures from a parsed page; rates (TTFT mean, prefix hit
 * rate) are over the window since the previous page (the whole life of
 * the counters on the first one, the last window's value when no request
 * came in between). The mean request latency (e2e_avg_ms) is -1 for a
 * window in which no request finished: the node served nothing new.
 */
void agent_metrics__extract(const struct prom_page *pg, struct agent_server *srv);
/* Parse a /v1/models body into srv->models. 0 or -EINVAL (msg). */
int agent_models__parse(const char *body, size_t len, struct agent_server *srv, char *msg,
			size_t msglen);
/*
 * Ollama: /api/ps (loaded models; one whose expires_at is before now_ms,
 * wall clock, is on its way out; now_ms 0 checks no expiry) into
 * srv->page_models and the figures (kind "ollama", loads unknown), or
 * /api/tags (what it could load) into srv->models, not resident.
 * 0 or -EINVAL (msg).
 */
int agent_ollama__ps(const char *body, size_t len, struct agent_server *srv, uint64_t now_ms,
		     char *msg, size_t msglen);
int agent_ollama__tags(const char *body, size_t len, struct agent_server *srv, char *msg,
		       size_t msglen);

#endif
