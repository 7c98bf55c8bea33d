// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "scrape.h"

static bool page_has_prefix(const struct prom_page *pg, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i < pg->nsamples; i++)
		if (!strncmp(pg->samples[i].name, prefix, n))
			return true;
	return false;
}

const char *agent_metrics__kind(const struct prom_page *pg)
{
	/* most specific first: Triton's nv_ appears next to others' metrics */
	if (page_has_prefix(pg, "vllm:"))
		return "vllm";
	if (page_has_prefix(pg, "sglang:") || page_has_prefix(pg, "sglang_"))
		return "sglang";
	if (page_has_prefix(pg, "trtllm_") || page_has_prefix(pg, "trtllm:"))
		return "trtllm";
	if (page_has_prefix(pg, "tgi_"))
		return "tgi";
	if (page_has_prefix(pg, "nv_inference_") || page_has_prefix(pg, "nv_trt_llm_"))
		return "triton";
	return "unknown";
}

/* sum of a metric over its label sets, -1 when absent */
static double m_sum(const struct prom_page *pg, const char *name)
{
	double v;

	return promtext__sum(pg, name, &v) ? v : -1;
}

static double m_mean(const struct prom_page *pg, const char *name)
{
	double v;
	int n = promtext__sum(pg, name, &v);

	return n ? v / n : -1;
}

static double m_where(const struct prom_page *pg, const char *name, const char *l,
		      const char *val)
{
	double v;

	return promtext__sum_where(pg, name, l, val, &v) ? v : -1;
}

/* first name of a list that the page has */
static double m_first(double (*f)(const struct prom_page *, const char *),
		      const struct prom_page *pg, const char *const *names)
{
	double v = -1;

	for (; *names && v < 0; names++)
		v = f(pg, *names);
	return v;
}

static double clamp01(double v)
{
	if (v < 0 || isnan(v))
		return -1;
	return v > 1 ? 1 : v;
}

/*
 * A ratio of two counters over the window since the previous scrape
 * (num/den growth; their whole value on the first page): a histogram's
 * mean (sum/count), a hit rate (hits/queries). A counter going backwards
 * is a restarted server: start over from it. Remembers the counters in
 * pnum and pden; 0 and *out set when the window saw any denominator, -1
 * when it saw none or a counter is missing.
 */
static int window(struct agent_server *srv, double *pnum, double *pden, double num,
		  double den, double *out)
{
	double dn = num, dd = den;

	if (num < 0 || den < 0)
		return -1;
	if (srv->prev.valid && den >= *pden && num >= *pnum) {
		dn = num - *pnum;
		dd = den - *pden;
	} else if (srv->prev.valid) {
		srv->restarted = true;
	}
	*pnum = num;
	*pden = den;
	if (!(dd > 0))
		return -1;
	*out = dn / dd;
	return 0;
}

/* mean TTFT in ms; a window with no request keeps the last window's figure */
static void window_ttft(struct agent_server *srv, double sum, double count, double to_ms)
{
	double v;

	if (sum < 0 || count < 0)
		srv->s.ttft_avg_ms = -1;
	else if (!window(srv, &srv->prev.ttft_sum, &srv->prev.ttft_count, sum, count, &v))
		srv->s.ttft_avg_ms = v * to_ms;
}

/* mean request latency in ms, -1 when the window saw no request finish */
static void window_e2e(struct agent_server *srv, double sum, double count)
{
	double v;

	srv->s.e2e_avg_ms = -1;
	if (!window(srv, &srv->prev.e2e_sum, &srv->prev.e2e_count, sum, count, &v))
		srv->s.e2e_avg_ms = v * 1e3;
}

static void window_hits(struct agent_server *srv, double hits, double queries)
{
	double v;

	if (!window(srv, &srv->prev.hits, &srv->prev.queries, hits, queries, &v))
		srv->s.prefix_cache_hit_rate = clamp01(v);
}

static void extract_vllm(const struct prom_page *pg, struct agent_server *srv)
{
	static const char *const kv[] = { "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
					  NULL };
	static const char *const hits[] = { "vllm:prefix_cache_hits_total",
					    "vllm:prefix_cache_hits", NULL };
	static const char *const queries[] = { "vllm:prefix_cache_queries_total",
					       "vllm:prefix_cache_queries", NULL };
	struct ar_server *s = &srv->s;
	double h, q;

	s->queue_depth = m_sum(pg, "vllm:num_requests_waiting");
	s->running = m_sum(pg, "vllm:num_requests_running");
	s->kv_cache_usage = clamp01(m_first(m_mean, pg, kv));
	h = m_first(m_sum, pg, hits);
	q = m_first(m_sum, pg, queries);
	if (h >= 0 && q >= 0)
		window_hits(srv, h, q);
	else
		s->prefix_cache_hit_rate = clamp01(m_mean(pg, "vllm:gpu_prefix_cache_hit_rate"));
	window_ttft(srv, m_sum(pg, "vllm:time_to_first_token_seconds_sum"),
		    m_sum(pg, "vllm:time_to_first_token_seconds_count"), 1e3);
	window_e2e(srv, m_sum(pg, "vllm:e2e_request_latency_seconds_sum"),
		   m_sum(pg, "vllm:e2e_request_latency_seconds_count"));

	/* LoRA adapters being served count as resident models */
	srv->lora[0] = '\0';
	for (size_t i = 0; i < pg->nsamples; i++) {
		const char *v;

		if (strcmp(pg->samples[i].name, "vllm:lora_requests_info"))
			continue;
		v = prom_sample__label(pg, &pg->samples[i], "running_lora_adapters");
		if (v)
			snprintf(srv->lora, sizeof(srv->lora), "%s", v);
	}
}

/* SGLang renamed "sglang:x" to "sglang_x"; read whichever the page has */
static double sg(double (*f)(const struct prom_page *, const char *), const struct prom_page *pg,
		 const char *base)
{
	char a[96], b[96];
	const char *const names[] = { a, b, NULL };

	snprintf(a, sizeof(a), "sglang:%s", base);
	snprintf(b, sizeof(b), "sglang_%s", base);
	return m_first(f, pg, names);
}

static void extract_sglang(const struct prom_page *pg, struct agent_server *srv)
{
	struct ar_server *s = &srv->s;

	s->queue_depth = sg(m_sum, pg, "num_queue_reqs");
	s->running = sg(m_sum, pg, "num_running_reqs");
	s->kv_cache_usage = clamp01(sg(m_mean, pg, "token_usage"));
	s->prefix_cache_hit_rate = clamp01(sg(m_mean, pg, "cache_hit_rate"));
	window_ttft(srv, sg(m_sum, pg, "time_to_first_token_seconds_sum"),
		    sg(m_sum, pg, "time_to_first_token_seconds_count"), 1e3);
	window_e2e(srv, sg(m_sum, pg, "e2e_request_latency_seconds_sum"),
		   sg(m_sum, pg, "e2e_request_latency_seconds_count"));
}

static void extract_trtllm(const struct prom_page *pg, struct agent_server *srv)
{
	static const char *const ttft_sum[] = { "trtllm_time_to_first_token_seconds_sum",
						"trtllm:time_to_first_token_seconds_sum", NULL };
	static const char *const ttft_cnt[] = { "trtllm_time_to_first_token_seconds_count",
						"trtllm:time_to_first_token_seconds_count", NULL };
	static const char *const kv[] = { "trtllm_kv_cache_utilization",
					  "trtllm:kv_cache_utilization", NULL };
	static const char *const hit[] = { "trtllm_kv_cache_hit_rate", "trtllm:kv_cache_hit_rate",
					   NULL };
	static const char *const waiting[] = { "trtllm_num_requests_waiting",
					       "trtllm:num_requests_waiting", NULL };
	static const char *const running[] = { "trtllm_num_requests_running",
					       "trtllm:num_requests_running", NULL };
	struct ar_server *s = &srv->s;

	s->queue_depth = m_first(m_sum, pg, waiting);
	s->running = m_first(m_sum, pg, running);
	s->kv_cache_usage = clamp01(m_first(m_mean, pg, kv));
	s->prefix_cache_hit_rate = clamp01(m_first(m_mean, pg, hit));
	window_ttft(srv, m_first(m_sum, pg, ttft_sum), m_first(m_sum, pg, ttft_cnt), 1e3);
}

static void extract_triton(const struct prom_page *pg, struct agent_server *srv)
{
	struct ar_server *s = &srv->s;
	double v;

	/* the TensorRT-LLM backend knows its own queue; else Triton's */
	v = m_where(pg, "nv_trt_llm_request_metrics", "request_type", "waiting");
	s->queue_depth = v >= 0 ? v : m_sum(pg, "nv_inference_pending_request_count");
	s->running = m_where(pg, "nv_trt_llm_request_metrics", "request_type", "active");
	s->kv_cache_usage = clamp01(m_where(pg, "nv_trt_llm_kv_cache_block_metrics",
					    "kv_cache_block_type", "fraction"));
	window_ttft(srv, m_sum(pg, "nv_inference_first_response_histogram_ms_sum"),
		    m_sum(pg, "nv_inference_first_response_histogram_ms_count"), 1);
}

static void extract_tgi(const struct prom_page *pg, struct agent_server *srv)
{
	srv->s.queue_depth = m_sum(pg, "tgi_queue_size");
	srv->s.running = m_sum(pg, "tgi_batch_current_size");
	window_e2e(srv, m_sum(pg, "tgi_request_duration_sum"),
		   m_sum(pg, "tgi_request_duration_count"));
}

void agent_metrics__extract(const struct prom_page *pg, struct agent_server *srv)
{
	struct ar_server *s = &srv->s;
	const char *kind = agent_metrics__kind(pg);

	if (strcmp(s->kind, kind))
		srv->prev.valid = false; /* another server behind the URL */
	snprintf(s->kind, sizeof(s->kind), "%s", kind);
	s->queue_depth = s->running = s->kv_cache_usage = s->e2e_avg_ms = -1;
	srv->restarted = false;
	if (!srv->prev.valid)
		s->prefix_cache_hit_rate = s->ttft_avg_ms = -1;
	if (!strcmp(kind, "vllm"))
		extract_vllm(pg, srv);
	else if (!strcmp(kind, "sglang"))
		extract_sglang(pg, srv);
	else if (!strcmp(kind, "trtllm"))
		extract_trtllm(pg, srv);
	else if (!strcmp(kind, "triton"))
		extract_triton(pg, srv);
	else if (!strcmp(kind, "tgi"))
		extract_tgi(pg, srv);
	/* the report refuses negative counts other than -1 */
	if (s->queue_depth < 0 || isnan(s->queue_depth))
		s->queue_depth = -1;
	if (s->running < 0 || isnan(s->running))
		s->running = -1;
	if (s->ttft_avg_ms < 0 || isnan(s->ttft_avg_ms))
		s->ttft_avg_ms = -1;
	if (s->e2e_avg_ms < 0 || isnan(s->e2e_avg_ms))
		s->e2e_avg_ms = -1;
	srv->prev.valid = true;
}

int agent_models__parse(const char *body, size_t len, struct agent_server *srv, char *msg,
			size_t msglen)
{
	json_error_t jerr;
	json_t *root, *data, *m, *id, *res;
	size_t i;
	int n = 0, err = 0;

	root = json_loadb(body, len, 0, &jerr);
	if (!root) {
		snprintf(msg, msglen, "/v1/models: invalid JSON: %s", jerr.text);
		return -EINVAL;
	}
	data = json_object_get(root, "data");
	if (!json_is_array(data)) {
		snprintf(msg, msglen, "/v1/models: no \"data\" array");
		err = -EINVAL;
		goto out;
	}
	json_array_foreach(data, i, m) {
		struct ar_model *am;

		id = json_object_get(m, "id");
		if (!json_is_string(id) || !json_string_length(id) ||
		    json_string_length(id) >= AR_MODEL_LEN) {
			snprintf(msg, msglen, "/v1/models: data[%zu].id missing or too long", i);
			err = -EINVAL;
			goto out;
		}
		if (n >= AGENT_SERVER_MODELS)
			break; /* a server with more models than a report carries */
		am = &srv->models[n++];
		memset(am, 0, sizeof(*am));
		snprintf(am->name, sizeof(am->name), "%s", json_string_value(id));
		snprintf(am->server, sizeof(am->server), "%s", srv->s.url);
		/* OpenAI servers list what they serve; aibl-simnode also lists
		 * what it could load, marked "resident": false */
		res = json_object_get(m, "resident");
		am->resident = !json_is_boolean(res) || json_is_true(res);
	}
	srv->nmodels = n;
out:
	json_decref(root);
	return err;
}
