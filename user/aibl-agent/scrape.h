/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the agent knows about each model server, from its /metrics page
 * (Prometheus text) and its OpenAI-compatible /v1/models.
 *
 * Kinds are recognised from metric names: vllm: (vLLM), sglang: or
 * sglang_ (SGLang), trtllm_ / trtllm: (TensorRT-LLM), tgi_ (TGI), nv_
 * (Triton). Figures a kind does not expose stay -1 (unknown).
 */
#ifndef AIBL_AGENT_SCRAPE_H
#define AIBL_AGENT_SCRAPE_H

#include <stdbool.h>
#include <stdint.h>
#include "promtext.h"
#include "report.h"

#define AGENT_SERVER_MODELS 32

/* counters remembered between scrapes for windowed rates */
struct agent_counters {
	bool valid;
	double ttft_sum, ttft_count; /* seconds (ms for Triton, see scale) */
	double e2e_sum, e2e_count; /* request latency histogram, seconds */
	double hits, queries; /* prefix cache, tokens */
};

struct agent_server {
	struct ar_server s; /* what goes into the report */
	uint64_t last_ok_ms; /* monotonic, 0 never */
	struct agent_counters prev;
	int nmodels;
	struct ar_model models[AGENT_SERVER_MODELS];
	char lora[256]; /* vLLM: running LoRA adapters, comma separated */
	bool restarted; /* the last page's counters went backwards: a new server */
};

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

#endif
