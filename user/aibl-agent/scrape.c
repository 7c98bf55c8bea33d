// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Model server pages into report figures (scrape.h). What each engine
 * exposes, and why each figure is read the way it is, is in
 * docs/engines.md; tests/unit/test_agent.c holds the expected figures of
 * every recorded page in tests/data/metrics/.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "scrape.h"

/* ---- settings ---- */

static const char *const known_kinds[] = {"vllm", "sglang",   "trtllm", "triton",
					  "tgi",  "llamacpp", "ollama", NULL};

/* the usual metrics paths, tried in turn when none is set: trtllm-serve's
 * /metrics is JSON iteration stats, Ollama has no Prometheus page at all */
static const struct {
	const char *path;
	bool json;
} probes[] = {
    {"/metrics", false},
    {"/prometheus/metrics", false},
    {"/api/ps", true},
};
#define NPROBES ((int)(sizeof(probes) / sizeof(probes[0])))

void agent_server__unscraped(struct agent_server *srv)
{
	struct ar_server *s = &srv->s;

	strcpy(s->kind, "unknown");
	strcpy(s->error, "not scraped yet");
	s->queue_depth = s->running = s->kv_cache_usage = -1;
	s->prefix_cache_hit_rate = s->ttft_avg_ms = s->e2e_avg_ms = s->run_avg_ms = -1;
	s->since_finish_ms = s->probe_ms_per_token = -1;
	s->prefill_avg_ms = s->prefill_tokens_avg = s->prompt_tokens_avg = -1;
	/* the report states slots from the settings or the info page */
	s->slots = -1;
}

int agent_server__spec(struct agent_server *srv, const char *spec, char *msg, size_t msglen)
{
	const char *comma = strchr(spec, ',');
	size_t n = comma ? (size_t)(comma - spec) : strlen(spec);

	if (!n || n >= sizeof(srv->s.url) - 16) {
		snprintf(msg, msglen, "model server URL empty or too long: %s", spec);
		return -EINVAL;
	}
	memcpy(srv->s.url, spec, n);
	srv->s.url[n] = '\0';
	while (n > 0 && srv->s.url[n - 1] == '/')
		srv->s.url[--n] = '\0';
	srv->kind_cfg[0] = srv->metrics_path[0] = '\0';
	srv->slots_cfg = 0;
	while (comma) {
		const char *opt = comma + 1, *eq;
		size_t len;

		comma = strchr(opt, ',');
		len = comma ? (size_t)(comma - opt) : strlen(opt);
		eq = memchr(opt, '=', len);
		if (eq && eq - opt == 4 && !strncmp(opt, "kind", 4)) {
			size_t vl = len - 5;
			bool ok = false;

			for (int i = 0; known_kinds[i]; i++)
				ok |= strlen(known_kinds[i]) == vl &&
				      !strncmp(eq + 1, known_kinds[i], vl);
			if (!ok) {
				snprintf(msg, msglen,
					 "%s: unknown kind \"%.*s\" (vllm, sglang, trtllm, "
					 "triton, tgi, llamacpp, ollama)",
					 spec, (int)vl, eq + 1);
				return -EINVAL;
			}
			memcpy(srv->kind_cfg, eq + 1, vl);
			srv->kind_cfg[vl] = '\0';
		} else if (eq && eq - opt == 7 && !strncmp(opt, "metrics", 7)) {
			size_t vl = len - 8;

			if (!vl || eq[1] != '/' || vl >= sizeof(srv->metrics_path)) {
				snprintf(msg, msglen, "%s: metrics= takes a path starting with /",
					 spec);
				return -EINVAL;
			}
			memcpy(srv->metrics_path, eq + 1, vl);
			srv->metrics_path[vl] = '\0';
		} else if (eq && eq - opt == 5 && !strncmp(opt, "slots", 5)) {
			char num[16], *end;
			size_t vl = len - 6;
			unsigned long v = 0;

			if (vl && vl < sizeof(num)) {
				memcpy(num, eq + 1, vl);
				num[vl] = '\0';
				errno = 0;
				v = strtoul(num, &end, 10);
				if (errno || *end || num[0] < '0' || num[0] > '9')
					v = 0;
			}
			if (!v || v > AR_MAX_SLOTS) {
				snprintf(msg, msglen, "%s: slots= takes a count of 1 to %d", spec,
					 AR_MAX_SLOTS);
				return -EINVAL;
			}
			srv->slots_cfg = v;
		} else {
			snprintf(msg, msglen,
				 "%s: unknown setting \"%.*s\" (kind=K, metrics=PATH, slots=N)",
				 spec, (int)len, opt);
			return -EINVAL;
		}
	}
	return 0;
}

const char *agent_server__kind(const struct agent_server *srv)
{
	return srv->kind_cfg[0] ? srv->kind_cfg : srv->s.kind;
}

static bool is_ollama(const struct agent_server *srv)
{
	return !strcmp(agent_server__kind(srv), "ollama");
}

const char *agent_server__metrics_path(const struct agent_server *srv)
{
	if (srv->metrics_path[0])
		return srv->metrics_path;
	if (!strcmp(srv->kind_cfg, "ollama"))
		return "/api/ps";
	if (!strcmp(srv->kind_cfg, "trtllm"))
		return "/prometheus/metrics";
	return probes[srv->probe % NPROBES].path;
}

const char *agent_server__models_path(const struct agent_server *srv)
{
	return is_ollama(srv) ? "/api/tags" : "/v1/models";
}

static bool json_path(const struct agent_server *srv)
{
	if (srv->metrics_path[0])
		return !strcmp(srv->kind_cfg, "ollama");
	if (srv->kind_cfg[0])
		return !strcmp(srv->kind_cfg, "ollama");
	return probes[srv->probe % NPROBES].json;
}

static bool looks_json(const char *body, size_t len)
{
	size_t i = 0;

	while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
		i++;
	return i < len && (body[i] == '[' || body[i] == '{');
}

bool agent_server__probe_next(struct agent_server *srv, long status, const char *body, size_t len,
			      const char **why)
{
	bool wrong;

	if (srv->metrics_path[0] || srv->kind_cfg[0])
		return false; /* told where: no guessing */
	wrong = status == 404 || status == 405 ||
		(status == 200 && !probes[srv->probe % NPROBES].json && looks_json(body, len));
	if (!wrong)
		return false;
	*why = status == 200 ? "a JSON answer, not a Prometheus page" : "not found";
	srv->probe = (srv->probe + 1) % NPROBES;
	return true;
}

/* ---- the engine's own word on its batch limit ---- */

/* each kind's info paths, in the order tried */
static const struct {
	const char *kind, *paths[2];
} info_pages[] = {
    {"llamacpp", {"/props", NULL}},
    /* SGLang logs /get_server_info as deprecated since 2026 */
    {"sglang", {"/server_info", "/get_server_info"}},
};
#define NINFO ((int)(sizeof(info_pages) / sizeof(info_pages[0])))

const char *agent_server__info_path(const struct agent_server *srv)
{
	for (int i = 0; i < NINFO; i++)
		if (!strcmp(agent_server__kind(srv), info_pages[i].kind))
			return info_pages[i].paths[srv->info_probe % 2] ?: info_pages[i].paths[0];
	return NULL;
}

bool agent_server__info_next(struct agent_server *srv)
{
	for (int i = 0; i < NINFO; i++)
		if (!strcmp(agent_server__kind(srv), info_pages[i].kind) &&
		    info_pages[i].paths[1]) {
			/* false once both were asked (and back at the first
			 * for the next try): an engine with neither page is
			 * asked again in AGENT_INFO_EVERY_MS, not every round */
			srv->info_probe = (srv->info_probe + 1) % 2;
			return srv->info_probe != 0;
		}
	return false;
}

/* a count the report takes: 1 .. AR_MAX_SLOTS */
static bool slot_count(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 1 &&
	       json_integer_value(v) <= AR_MAX_SLOTS;
}

int agent_info__slots(const char *kind, const char *body, size_t len, unsigned int *slots,
		      char *msg, size_t msglen)
{
	json_t *root = json_loadb(body, len, 0, NULL), *v, *st;
	json_int_t sum = 0;
	const char *field;
	int ret = -ENOENT;
	size_t i;

	*slots = 0;
	msg[0] = '\0';
	if (!json_is_object(root)) {
		snprintf(msg, msglen, "not a JSON object");
		ret = -EINVAL;
		goto out;
	}
	if (!strcmp(kind, "llamacpp")) {
		field = "total_slots";
		v = json_object_get(root, field);
		if (v && !slot_count(v))
			goto bad;
		sum = v ? json_integer_value(v) : 0;
	} else if (!strcmp(kind, "sglang")) {
		/* one state per data-parallel scheduler, each with its own
		 * limit; a server from before the per-scheduler figure has
		 * its argument, resolved, at the top */
		field = "effective_max_running_requests_per_dp";
		st = json_object_get(root, "internal_states");
		json_array_foreach(st, i, v)
		{
			json_t *n = json_object_get(v, field);

			if (!n) {
				sum = 0;
				break;
			}
			if (!slot_count(n) || (sum += json_integer_value(n)) > AR_MAX_SLOTS)
				goto bad;
		}
		if (!sum) {
			field = "max_running_requests";
			v = json_object_get(root, field);
			if (v && !json_is_null(v) && !slot_count(v))
				goto bad;
			sum = slot_count(v) ? json_integer_value(v) : 0;
		}
	} else {
		snprintf(msg, msglen, "%s has no info page", kind);
		ret = -EINVAL;
		goto out;
	}
	if (sum) {
		*slots = sum;
		ret = 0;
	}
	goto out;
bad:
	snprintf(msg, msglen, "%s is not a count of 1 to %d", field, AR_MAX_SLOTS);
	ret = -EINVAL;
out:
	json_decref(root);
	return ret;
}

/* ---- reading a page ---- */

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* a sample or a HELP/TYPE line names a metric starting with prefix */
static bool page_has_prefix(const struct prom_page *pg, const char *prefix)
{
	for (size_t i = 0; i < pg->nfamilies; i++)
		if (has_prefix(pg->families[i].name, prefix))
			return true;
	for (size_t i = 0; i < pg->nsamples; i++)
		if (has_prefix(pg->samples[i].name, prefix))
			return true;
	return false;
}

static bool page_has_label(const struct prom_page *pg, const char *lname, const char *lval)
{
	const char *v;

	for (size_t i = 0; i < pg->nsamples; i++)
		if ((v = prom_sample__label(pg, &pg->samples[i], lname)) && !strcmp(v, lval))
			return true;
	return false;
}

/* the prefix of a kind's metric names on this page; "" unprefixed */
static const char *kind_prefix(const struct prom_page *pg, const char *const *list)
{
	for (; *list; list++)
		if (page_has_prefix(pg, *list))
			return *list;
	return "";
}

static const char *const vllm_prefixes[] = {"vllm:", "ray_vllm:", "ray_vllm_", NULL};
/* trtllm-serve's prefixes over its releases; its first Prometheus page wrote
 * none (trtllm_unprefixed()) */
static const char *const trtllm_prefixes[] = {"trtllm_", "trtllm:", "pytrtllm:", NULL};
/* the families of trtllm-serve's first Prometheus page (TensorRT-LLM PR
 * 5785): vLLM's names without a prefix */
static const char *const trtllm_bare[] = {
    "time_to_first_token_seconds", "time_per_output_token_seconds", "e2e_request_latency_seconds",
    "request_queue_time_seconds",  "request_success_total",	    NULL};

/*
 * trtllm-serve's unprefixed page: one of its families with an engine_type
 * label (set to "undefined" there). NVIDIA NIM writes the same unprefixed
 * names without that label; SGLang's engine_type comes with its prefix.
 */
static bool trtllm_unprefixed(const struct prom_page *pg)
{
	for (size_t i = 0; i < pg->nsamples; i++) {
		const struct prom_sample *s = &pg->samples[i];

		if (!prom_sample__label(pg, s, "engine_type"))
			continue;
		for (const char *const *b = trtllm_bare; *b; b++)
			if (has_prefix(s->name, *b))
				return true;
	}
	return false;
}

const char *agent_metrics__kind(const struct prom_page *pg)
{
	/* most specific first: Triton's nv_ appears next to others' metrics */
	if (kind_prefix(pg, vllm_prefixes)[0])
		return "vllm";
	if (page_has_prefix(pg, "sglang:") || page_has_prefix(pg, "sglang_"))
		return "sglang";
	if (kind_prefix(pg, trtllm_prefixes)[0] || page_has_label(pg, "engine_type", "trtllm") ||
	    trtllm_unprefixed(pg))
		return "trtllm";
	if (page_has_prefix(pg, "tgi_"))
		return "tgi";
	if (page_has_prefix(pg, "llamacpp:"))
		return "llamacpp";
	if (page_has_prefix(pg, "nv_inference_") || page_has_prefix(pg, "nv_trt_llm_"))
		return "triton";
	return "unknown";
}

/* labels that only say which rank of one server wrote a series: its
 * tensor/pipeline/expert-parallel ranks report the same scheduler state */
static bool rank_label(const char *name)
{
	return !strcmp(name, "tp_rank") || !strcmp(name, "pp_rank") ||
	       !strcmp(name, "moe_ep_rank") || !strcmp(name, "attn_tp_rank") ||
	       !strcmp(name, "attn_cp_rank");
}

static bool wanted(const struct prom_page *pg, const struct prom_sample *s, const char *name,
		   const char *lname, const char *lval)
{
	const char *v;

	if (strcmp(s->name, name) || !isfinite(s->value))
		return false;
	return !lname || ((v = prom_sample__label(pg, s, lname)) && !strcmp(v, lval));
}

struct series {
	uint64_t key; /* its labels' hash, ranks aside */
	uint32_t i;   /* its sample */
};

static int series_cmp(const void *a, const void *b)
{
	const struct series *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * A gauge over its label sets (those with label lname = lval when lname):
 * summed over engines and models, but the ranks of one server counted
 * once (their largest figure). A negative sample says nothing of a count
 * and is skipped (added, it turned a busy server's sum unknown). -1 when
 * the page has none, or more than AGENT_GAUGE_SERIES (a hostile page of
 * 200,000 took minutes). Series are compared only within the groups their
 * labels' hash sorts them into: each compared with every other, a page
 * of 1,024 series of 64 labels for each of two gauges took 18 s to read.
 */
/*
 * A per-priority breakdown beside its total: SGLang with priority
 * scheduling writes num_running_reqs and num_queue_reqs under its labels
 * (priority="") and again per priority (priority="0", "5", ...),
 * SchedulerMetricsCollector._log_gauge_queue_count() in
 * python/sglang/srt/metrics/collector.py. Counted, the breakdown doubled
 * the node's queue and running requests.
 */
static bool breakdown(const struct prom_page *pg, const struct prom_sample *s)
{
	const char *v = prom_sample__label(pg, s, "priority");

	return v && v[0];
}

static double m_sum_where(const struct prom_page *pg, const char *name, const char *lname,
			  const char *lval)
{
	struct series sr[AGENT_GAUGE_SERIES];
	bool totals = false;
	double total = 0;
	size_t m = 0;
	int n = 0;

	/* a breakdown is skipped where its total is on the page; alone, it
	 * is all there is and adds up to the total */
	for (size_t i = 0; i < pg->nsamples && !totals; i++)
		totals = wanted(pg, &pg->samples[i], name, lname, lval) &&
			 pg->samples[i].value >= 0 && !breakdown(pg, &pg->samples[i]);
	for (size_t i = 0; i < pg->nsamples; i++) {
		if (!wanted(pg, &pg->samples[i], name, lname, lval) || pg->samples[i].value < 0 ||
		    (totals && breakdown(pg, &pg->samples[i])))
			continue;
		if (m == AGENT_GAUGE_SERIES)
			return -1;
		sr[m].key = prom_sample__labels_hash(pg, &pg->samples[i], rank_label);
		sr[m++].i = (uint32_t)i;
	}
	qsort(sr, m, sizeof(sr[0]), series_cmp);
	for (size_t g = 0, e; g < m; g = e) {
		for (e = g + 1; e < m && sr[e].key == sr[g].key;)
			e++;
		for (size_t a = g; a < e; a++) {
			const struct prom_sample *s = &pg->samples[sr[a].i];
			double mx = s->value;
			bool seen = false;

			for (size_t b = g; b < a && !seen; b++)
				seen = prom_sample__same_labels(pg, s, &pg->samples[sr[b].i],
								rank_label);
			if (seen)
				continue;
			for (size_t b = a + 1; b < e; b++)
				if (prom_sample__same_labels(pg, s, &pg->samples[sr[b].i],
							     rank_label))
					mx = fmax(mx, pg->samples[sr[b].i].value);
			total += mx;
			n++;
		}
	}
	return n ? total : -1;
}

static double m_sum(const struct prom_page *pg, const char *name)
{
	return m_sum_where(pg, name, NULL, NULL);
}

/* the fullest of several engines or models: one full engine is a full
 * server, whatever the others have free. -1 when absent. */
static double m_max_where(const struct prom_page *pg, const char *name, const char *lname,
			  const char *lval)
{
	double v = -1;
	bool any = false;

	for (size_t i = 0; i < pg->nsamples; i++) {
		if (!wanted(pg, &pg->samples[i], name, lname, lval))
			continue;
		v = any ? fmax(v, pg->samples[i].value) : pg->samples[i].value;
		any = true;
	}
	return any ? v : -1;
}

static double m_max(const struct prom_page *pg, const char *name)
{
	return m_max_where(pg, name, NULL, NULL);
}

static bool m_has(const struct prom_page *pg, const char *name)
{
	for (size_t i = 0; i < pg->nsamples; i++)
		if (!strcmp(pg->samples[i].name, name))
			return true;
	return false;
}

/* a 0..1 figure; a percentage (87.58) or a negative one is refused, not
 * clamped: it would read as "full" or as a perfect hit rate */
static double unit01(double v)
{
	if (!(v >= 0) || v > 1 + 1e-9)
		return -1;
	return v > 1 ? 1 : v;
}

static uint64_t labels_hash(const struct prom_page *pg, const struct prom_sample *s)
{
	uint64_t h = 0;

	/* summed per label: the order labels are written in does not count */
	for (unsigned int i = 0; i < s->nlabels; i++) {
		const struct prom_label *l = &pg->labels[s->label_off + i];
		uint64_t x = 1469598103934665603ULL;

		for (const char *c = l->name; *c; c++)
			x = (x ^ (unsigned char)*c) * 1099511628211ULL;
		x = (x ^ '=') * 1099511628211ULL;
		for (const char *c = l->value; *c; c++)
			x = (x ^ (unsigned char)*c) * 1099511628211ULL;
		h += x;
	}
	return h;
}

/* the remembered series of c with label hash h, -1 none */
static int ctr_series(const struct agent_counter *c, uint64_t h)
{
	for (int j = 0; j < c->n; j++)
		if (c->h[j] == h)
			return j;
	return -1;
}

static bool ctr_sample(const struct prom_sample *s, const char *name)
{
	return !strcmp(s->name, name) && isfinite(s->value) && s->value >= 0;
}

/* add the label hashes of counter `name`'s series that went backwards
 * since the previous page to reset[*n..max) */
static void ctr_resets(const struct prom_page *pg, const char *name, const struct agent_counter *c,
		       uint64_t *reset, int *n, int max)
{
	for (size_t i = 0; i < pg->nsamples && *n < max; i++) {
		const struct prom_sample *s = &pg->samples[i];
		uint64_t h;
		int k;

		if (!ctr_sample(s, name))
			continue;
		h = labels_hash(pg, s);
		k = ctr_series(c, h);
		if (k >= 0 && s->value < c->v[k])
			reset[(*n)++] = h;
	}
}

/*
 * How much counter `name` grew since the previous page, series by series
 * (all of it on a first page); a series in reset[0..nreset) restarted and
 * all of its value is new. -1 when the page lacks it, or has more series
 * than are remembered (AGENT_COUNTER_SERIES: the others' whole values
 * would count as growth on every page).
 */
static double ctr_growth(const struct prom_page *pg, const char *name, struct agent_counter *c,
			 bool first, const uint64_t *reset, int nreset)
{
	struct agent_counter nc = {0};
	double g = 0;
	int n = 0;

	for (size_t i = 0; i < pg->nsamples; i++) {
		const struct prom_sample *s = &pg->samples[i];
		bool whole = first;
		uint64_t h;
		int k;

		if (!ctr_sample(s, name))
			continue;
		if (nc.n == AGENT_COUNTER_SERIES)
			return -1;
		h = labels_hash(pg, s);
		k = ctr_series(c, h);
		for (int r = 0; r < nreset && !whole; r++)
			whole = reset[r] == h;
		if (whole || k < 0 || s->value < c->v[k])
			g += s->value;
		else
			g += s->value - c->v[k];
		nc.h[nc.n] = h;
		nc.v[nc.n++] = s->value;
		n++;
	}
	*c = nc;
	return n ? g : -1;
}

/*
 * num/den over the window since the previous page: a histogram's mean
 * (sum/count), a hit rate (hits/queries). 0 and *out set when the window
 * saw any denominator; -1 when it saw none or a counter is missing.
 * A series of the pair (one engine's, by its labels) is one process's:
 * where either of its two counters went backwards, both are taken whole,
 * as a restarted process's (a count that has passed its old value since
 * would give its growth over a whole new sum).
 */
static int window(struct agent_server *srv, const struct prom_page *pg, const char *num,
		  const char *den, struct agent_counter *cn, struct agent_counter *cd, double *out)
{
	uint64_t reset[2 * AGENT_COUNTER_SERIES];
	bool first = !srv->prev.valid;
	double dn, dd;
	int nreset = 0;

	if (!first) {
		ctr_resets(pg, num, cn, reset, &nreset, AGENT_COUNTER_SERIES);
		ctr_resets(pg, den, cd, reset, &nreset, 2 * AGENT_COUNTER_SERIES);
	}
	if (nreset)
		srv->restarted = true;
	dn = ctr_growth(pg, num, cn, first, reset, nreset);
	dd = ctr_growth(pg, den, cd, first, reset, nreset);
	if (dn < 0 || dd < 0 || !(dd > 0))
		return -1;
	*out = dn / dd;
	return 0;
}

static const char *cat(char *buf, size_t len, const char *prefix, const char *base)
{
	snprintf(buf, len, "%s%s", prefix, base);
	return buf;
}

/* mean TTFT in ms of histogram base (prefix + base + _sum/_count); a
 * window with no request keeps the last window's figure */
static void window_ttft(struct agent_server *srv, const struct prom_page *pg, const char *prefix,
			const char *base, double to_ms)
{
	char a[128], b[128], n[128];
	double v;

	snprintf(n, sizeof(n), "%s_sum", base);
	cat(a, sizeof(a), prefix, n);
	snprintf(n, sizeof(n), "%s_count", base);
	cat(b, sizeof(b), prefix, n);
	if (!m_has(pg, a) || !m_has(pg, b))
		srv->s.ttft_avg_ms = -1;
	else if (!window(srv, pg, a, b, &srv->prev.ttft_sum, &srv->prev.ttft_count, &v))
		srv->s.ttft_avg_ms = v * to_ms;
}

/* a histogram's window mean in ms (seconds on the page), -1 when no
 * request finished in the window or the histogram is not there */
static double window_mean_ms(struct agent_server *srv, const struct prom_page *pg, const char *sum,
			     const char *count, struct agent_counter *cs, struct agent_counter *cc)
{
	double v;

	return window(srv, pg, sum, count, cs, cc, &v) ? -1 : v * 1e3;
}

/* mean request latency in ms, -1 when the window saw no request finish */
static void window_e2e(struct agent_server *srv, const struct prom_page *pg, const char *sum,
		       const char *count)
{
	srv->e2e_seen = m_has(pg, count);
	srv->s.e2e_avg_ms =
	    window_mean_ms(srv, pg, sum, count, &srv->prev.e2e_sum, &srv->prev.e2e_count);
}

/* mean time a finished request ran (held a batch slot, queueing aside) in
 * ms, -1 when none finished or the engine does not export it */
static void window_run(struct agent_server *srv, const struct prom_page *pg, const char *sum,
		       const char *count)
{
	srv->s.run_avg_ms =
	    window_mean_ms(srv, pg, sum, count, &srv->prev.run_sum, &srv->prev.run_count);
}

/* the window's mean PREFILL phase in ms, mean prompt tokens computed there
 * and mean whole prompt (vLLM records all three as each request finishes:
 * the same requests), -1 when none finished or the engine does not export
 * them */
static void window_prefill(struct agent_server *srv, const struct prom_page *pg, const char *p)
{
	char a[128], b[128];
	double v;

	srv->s.prefill_avg_ms =
	    window_mean_ms(srv, pg, cat(a, sizeof(a), p, "request_prefill_time_seconds_sum"),
			   cat(b, sizeof(b), p, "request_prefill_time_seconds_count"),
			   &srv->prev.prefill_sum, &srv->prev.prefill_count);
	srv->s.prefill_tokens_avg =
	    window(srv, pg, cat(a, sizeof(a), p, "request_prefill_kv_computed_tokens_sum"),
		   cat(b, sizeof(b), p, "request_prefill_kv_computed_tokens_count"),
		   &srv->prev.computed_sum, &srv->prev.computed_count, &v)
		? -1
		: v;
	/* their whole prompts, cached tokens too: what a session's turn costs
	 * where none of it is cached */
	srv->s.prompt_tokens_avg =
	    window(srv, pg, cat(a, sizeof(a), p, "request_prompt_tokens_sum"),
		   cat(b, sizeof(b), p, "request_prompt_tokens_count"), &srv->prev.prompt_sum,
		   &srv->prev.prompt_count, &v)
		? -1
		: v;
}

/* prefix cache hit rate over the window: 0 when it was read */
static int window_hits(struct agent_server *srv, const struct prom_page *pg, const char *hits,
		       const char *queries)
{
	double v;

	if (!m_has(pg, hits) || !m_has(pg, queries))
		return -1;
	if (!window(srv, pg, hits, queries, &srv->prev.hits, &srv->prev.queries, &v))
		srv->s.prefix_cache_hit_rate = unit01(v);
	return 0;
}

static void add_name(char (*list)[AR_MODEL_LEN], int *n, const char *name, size_t len)
{
	/* a name that does not fit is left out, never cut into another one */
	if (!len || len >= AR_MODEL_LEN || *n >= AGENT_SERVER_MODELS)
		return;
	for (int i = 0; i < *n; i++)
		if (strlen(list[i]) == len && !strncmp(list[i], name, len))
			return;
	memcpy(list[*n], name, len);
	list[(*n)++][len] = '\0';
}

/* the model names a page's own metrics carry (prefix: the kind's names);
 * none: a label value that names no model (NULL: every value does) */
static void page_models(const struct prom_page *pg, struct agent_server *srv, const char *prefix,
			const char *lname, const char *none)
{
	const char *v;

	srv->npage_models = 0;
	for (size_t i = 0; i < pg->nsamples; i++) {
		const struct prom_sample *s = &pg->samples[i];

		if (!has_prefix(s->name, prefix) || !(v = prom_sample__label(pg, s, lname)) ||
		    (none && !strcmp(v, none)))
			continue;
		add_name(srv->page_models, &srv->npage_models, v, strlen(v));
	}
}

static void extract_vllm(const struct prom_page *pg, struct agent_server *srv)
{
	/* counter pairs, newest names first: vLLM 0.9.2 renamed gpu_prefix_* */
	static const char *const hit_pairs[][2] = {
	    {"prefix_cache_hits_total", "prefix_cache_queries_total"},
	    {"prefix_cache_hits", "prefix_cache_queries"},
	    {"gpu_prefix_cache_hits_total", "gpu_prefix_cache_queries_total"},
	    {"gpu_prefix_cache_hits", "gpu_prefix_cache_queries"},
	};
	const char *p = kind_prefix(pg, vllm_prefixes);
	struct ar_server *s = &srv->s;
	const struct prom_sample *info = NULL;
	char a[128], b[128];
	const char *run;
	bool hit_read = false;

	s->queue_depth = m_sum(pg, cat(a, sizeof(a), p, "num_requests_waiting"));
	s->running = m_sum(pg, cat(a, sizeof(a), p, "num_requests_running"));
	s->kv_cache_usage = m_max(pg, cat(a, sizeof(a), p, "kv_cache_usage_perc"));
	if (s->kv_cache_usage < 0)
		s->kv_cache_usage = m_max(pg, cat(a, sizeof(a), p, "gpu_cache_usage_perc"));
	s->kv_cache_usage = unit01(s->kv_cache_usage);
	for (size_t i = 0; i < sizeof(hit_pairs) / sizeof(hit_pairs[0]) && !hit_read; i++)
		hit_read = !window_hits(srv, pg, cat(a, sizeof(a), p, hit_pairs[i][0]),
					cat(b, sizeof(b), p, hit_pairs[i][1]));
	if (!hit_read) /* V0: a gauge, -1 when prefix caching is off */
		s->prefix_cache_hit_rate =
		    unit01(m_max(pg, cat(a, sizeof(a), p, "gpu_prefix_cache_hit_rate")));
	window_ttft(srv, pg, p, "time_to_first_token_seconds", 1e3);
	window_e2e(srv, pg, cat(a, sizeof(a), p, "e2e_request_latency_seconds_sum"),
		   cat(b, sizeof(b), p, "e2e_request_latency_seconds_count"));
	/* the RUNNING phase: prefill and decode, no queueing */
	window_run(srv, pg, cat(a, sizeof(a), p, "request_inference_time_seconds_sum"),
		   cat(b, sizeof(b), p, "request_inference_time_seconds_count"));
	window_prefill(srv, pg, p);

	/*
	 * LoRA adapters running now count as resident models. The gauge keeps
	 * every label set it ever had; its value is when that set was last
	 * true (a timestamp), so the current one is the largest.
	 */
	cat(a, sizeof(a), p, "lora_requests_info");
	for (size_t i = 0; i < pg->nsamples; i++) {
		const struct prom_sample *x = &pg->samples[i];

		if (!strcmp(x->name, a) && !isnan(x->value) && (!info || x->value > info->value))
			info = x;
	}
	srv->nloras = 0;
	run = info ? prom_sample__label(pg, info, "running_lora_adapters") : NULL;
	if (info && !run) /* its first release's label name */
		run = prom_sample__label(pg, info, "running_adapters");
	while (run && *run) {
		size_t len = strcspn(run, ",");

		add_name(srv->loras, &srv->nloras, run, len);
		run += len + (run[len] == ',');
	}
	page_models(pg, srv, p, "model_name", NULL);
}

/* "sglang:x", or "sglang_x" as sgl-router's aggregated page (colons turned
 * into underscores) and some releases (SGLang PR 15758) write it; read
 * whichever the page has */
static const char *sg(const struct prom_page *pg, char *buf, size_t len, const char *base)
{
	snprintf(buf, len, "sglang:%s", base);
	if (m_has(pg, buf))
		return buf;
	snprintf(buf, len, "sglang_%s", base);
	return buf;
}

static void extract_sglang(const struct prom_page *pg, struct agent_server *srv)
{
	struct ar_server *s = &srv->s;
	char a[96], b[96];
	const char *p;

	s->queue_depth = m_sum(pg, sg(pg, a, sizeof(a), "num_queue_reqs"));
	s->running = m_sum(pg, sg(pg, a, sizeof(a), "num_running_reqs"));
	s->kv_cache_usage = unit01(m_max(pg, sg(pg, a, sizeof(a), "token_usage")));
	/* the cache_hit_rate gauge is the last prefill batch's, reset to 0
	 * while decoding (and a percentage in early releases): the token
	 * counters give the window's real rate */
	if (window_hits(srv, pg, sg(pg, a, sizeof(a), "cached_tokens_total"),
			sg(pg, b, sizeof(b), "prompt_tokens_total")))
		s->prefix_cache_hit_rate =
		    unit01(m_max(pg, sg(pg, a, sizeof(a), "cache_hit_rate")));
	p = m_has(pg, "sglang:time_to_first_token_seconds_sum") ? "sglang:" : "sglang_";
	window_ttft(srv, pg, p, "time_to_first_token_seconds", 1e3);
	window_e2e(srv, pg, sg(pg, a, sizeof(a), "e2e_request_latency_seconds_sum"),
		   sg(pg, b, sizeof(b), "e2e_request_latency_seconds_count"));
	page_models(pg, srv, "sglang", "model_name", NULL);
	if (!srv->npage_models) /* its first releases */
		page_models(pg, srv, "sglang", "name", NULL);
}

static void extract_trtllm(const struct prom_page *pg, struct agent_server *srv)
{
	const char *p = kind_prefix(pg, trtllm_prefixes);
	struct ar_server *s = &srv->s;
	char a[128], b[128];

	s->queue_depth = m_sum(pg, cat(a, sizeof(a), p, "num_requests_waiting"));
	s->running = m_sum(pg, cat(a, sizeof(a), p, "num_requests_running"));
	s->kv_cache_usage = unit01(m_max(pg, cat(a, sizeof(a), p, "kv_cache_utilization")));
	s->prefix_cache_hit_rate = unit01(m_max(pg, cat(a, sizeof(a), p, "kv_cache_hit_rate")));
	window_ttft(srv, pg, p, "time_to_first_token_seconds", 1e3);
	window_e2e(srv, pg, cat(a, sizeof(a), p, "e2e_request_latency_seconds_sum"),
		   cat(b, sizeof(b), p, "e2e_request_latency_seconds_count"));
	/* "undefined": trtllm-serve's label when it was not told the model's
	 * name */
	page_models(pg, srv, p, "model_name", "undefined");
}

static void extract_triton(const struct prom_page *pg, struct agent_server *srv)
{
	struct ar_server *s = &srv->s;
	double v;

	/* the TensorRT-LLM backend knows its own queue; else Triton's. Queues
	 * and running requests add up over models; the KV cache is each
	 * model's own, and the fullest one is what the node can take. */
	v = m_sum_where(pg, "nv_trt_llm_request_metrics", "request_type", "waiting");
	s->queue_depth = v >= 0 ? v : m_sum(pg, "nv_inference_pending_request_count");
	s->running = m_sum_where(pg, "nv_trt_llm_request_metrics", "request_type", "active");
	s->kv_cache_usage = unit01(m_max_where(pg, "nv_trt_llm_kv_cache_block_metrics",
					       "kv_cache_block_type", "fraction"));
	window_ttft(srv, pg, "", "nv_inference_first_response_histogram_ms", 1);
	page_models(pg, srv, "nv_inference_request_success", "model", NULL);
}

static void extract_tgi(const struct prom_page *pg, struct agent_server *srv)
{
	srv->s.queue_depth = m_sum(pg, "tgi_queue_size");
	srv->s.running = m_sum(pg, "tgi_batch_current_size");
	window_e2e(srv, pg, "tgi_request_duration_sum", "tgi_request_duration_count");
	/* from the batch's start to the last token, queueing aside (the
	 * router's inference_time, in seconds): how long requests ran */
	window_run(srv, pg, "tgi_request_inference_duration_sum",
		   "tgi_request_inference_duration_count");
}

static void extract_llamacpp(const struct prom_page *pg, struct agent_server *srv)
{
	/* deferred: requests waiting for a free slot */
	srv->s.queue_depth = m_sum(pg, "llamacpp:requests_deferred");
	srv->s.running = m_sum(pg, "llamacpp:requests_processing");
	/* until b5450 (removed with the KV cache rework) */
	srv->s.kv_cache_usage = unit01(m_max(pg, "llamacpp:kv_cache_usage_ratio"));
}

static void start_page(struct agent_server *srv, const char *kind)
{
	struct ar_server *s = &srv->s;

	if (strcmp(s->kind, kind))
		srv->prev.valid = false; /* another server behind the URL */
	snprintf(s->kind, sizeof(s->kind), "%s", kind);
	s->queue_depth = s->running = s->kv_cache_usage = s->e2e_avg_ms = s->run_avg_ms = -1;
	s->prefill_avg_ms = s->prefill_tokens_avg = s->prompt_tokens_avg = -1;
	srv->restarted = false;
	srv->e2e_seen = false;
	srv->nloras = srv->npage_models = 0;
	if (!srv->prev.valid) {
		s->prefix_cache_hit_rate = s->ttft_avg_ms = -1;
		memset(&srv->prev, 0, sizeof(srv->prev));
	}
}

static void end_page(struct agent_server *srv)
{
	struct ar_server *s = &srv->s;

	/* the report refuses negative counts other than -1, and figures
	 * past AR_MAX_FIGURE: one engine's absurd figure would have every
	 * balancer refuse the whole node's report, so it is held there (a
	 * huge queue is still a long one) */
	s->queue_depth = agent_report__figure(s->queue_depth);
	s->running = agent_report__figure(s->running);
	s->ttft_avg_ms = agent_report__figure(s->ttft_avg_ms);
	s->e2e_avg_ms = agent_report__figure(s->e2e_avg_ms);
	s->run_avg_ms = agent_report__figure(s->run_avg_ms);
	s->prefill_avg_ms = agent_report__figure(s->prefill_avg_ms);
	s->prefill_tokens_avg = agent_report__figure(s->prefill_tokens_avg);
	s->prompt_tokens_avg = agent_report__figure(s->prompt_tokens_avg);
	srv->prev.valid = true;
}

void agent_metrics__extract(const struct prom_page *pg, struct agent_server *srv)
{
	const char *kind = srv->kind_cfg[0] ? srv->kind_cfg : agent_metrics__kind(pg);

	start_page(srv, kind);
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
	else if (!strcmp(kind, "llamacpp"))
		extract_llamacpp(pg, srv);
	end_page(srv);
}

void agent_server__since_finish(struct agent_server *srv, uint64_t mono_ms)
{
	struct ar_server *s = &srv->s;

	if (!srv->e2e_seen || s->running < 0) {
		s->since_finish_ms = -1;
		srv->busy_since_ms = 0;
		return;
	}
	if (s->running <= 0) {
		srv->busy_since_ms = 0;
		s->since_finish_ms = 0;
		return;
	}
	/* seen running, or a finish in the window: the clock starts (when
	 * the requests running now began is not known; from here is the
	 * least it can be) */
	if (s->e2e_avg_ms >= 0 || !srv->busy_since_ms)
		srv->busy_since_ms = mono_ms;
	s->since_finish_ms = mono_ms - srv->busy_since_ms;
}

int agent_metrics__take(struct agent_server *srv, long status, const char *body, size_t len,
			uint64_t now_ms, char *msg, size_t msglen)
{
	struct prom_page pg;
	const char *why;
	char perr[100];
	int err;

	msg[0] = '\0';
	/* llama-server started without --metrics: up, no load figures */
	if (status == 501 && memmem(body, len, "--metrics", 9)) {
		start_page(srv, "llamacpp");
		end_page(srv);
		snprintf(msg, msglen, "llama.cpp without --metrics: no load figures");
		return 0;
	}
	if (agent_server__probe_next(srv, status, body, len, &why)) {
		snprintf(msg, msglen, "%s; trying %s next", why, agent_server__metrics_path(srv));
		return -EAGAIN;
	}
	if (status != 200) {
		snprintf(msg, msglen, "HTTP %ld", status);
		return -EIO;
	}
	if (json_path(srv))
		return agent_ollama__ps(body, len, srv, now_ms, msg, msglen);
	if (looks_json(body, len)) {
		snprintf(msg, msglen,
			 "JSON, not a Prometheus page (trtllm-serve: metrics=/prometheus/"
			 "metrics)");
		return -EINVAL;
	}
	err = promtext__parse(&pg, body, len, perr, sizeof(perr));
	if (err)
		snprintf(msg, msglen, "%s", perr);
	else
		agent_metrics__extract(&pg, srv);
	promtext__free(&pg);
	return err;
}

/* ---- model lists ---- */

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
	/* the whole list checked before any of it is taken: a bad entry
	 * after good ones left the good ones' names over the old list */
	json_array_foreach(data, i, m)
	{
		id = json_object_get(m, "id");
		if (!json_is_string(id) || !json_string_length(id)) {
			snprintf(msg, msglen, "/v1/models: data[%zu].id missing", i);
			err = -EINVAL;
			goto out;
		}
	}
	msg[0] = '\0';
	json_array_foreach(data, i, m)
	{
		struct ar_model *am;

		id = json_object_get(m, "id");
		/* a name no report can carry (a LoRA named by its path) is
		 * left out, and said: refusing the whole list kept the last
		 * one read, its unloaded models resident for good */
		if (json_string_length(id) >= AR_MODEL_LEN) {
			snprintf(msg, msglen,
				 "/v1/models: data[%zu].id longer than %d bytes: not listed", i,
				 AR_MODEL_LEN - 1);
			continue;
		}
		/* a server with more models than a report carries: the rest
		 * are said, not dropped unseen (vLLM lists every adapter) */
		if (n >= AGENT_SERVER_MODELS) {
			snprintf(msg, msglen,
				 "/v1/models: %zu models, a report carries %d: those from "
				 "data[%zu] on are not listed",
				 json_array_size(data), AGENT_SERVER_MODELS, i);
			break;
		}
		am = &srv->models[n++];
		memset(am, 0, sizeof(*am));
		snprintf(am->name, sizeof(am->name), "%s", json_string_value(id));
		/* am is in srv too: copied whole, the same size */
		_Static_assert(sizeof(am->server) == sizeof(srv->s.url), "url sizes");
		memcpy(am->server, srv->s.url, sizeof(am->server));
		am->server[sizeof(am->server) - 1] = '\0';
		/* OpenAI servers list what they serve (vLLM: LoRA adapters
		 * loaded now, with their "parent"); aibl-simnode also lists
		 * what it could load, marked "resident": false */
		res = json_object_get(m, "resident");
		am->resident = !json_is_boolean(res) || json_is_true(res);
	}
	srv->nmodels = n;
out:
	json_decref(root);
	return err;
}

/* RFC 3339 ("2025-07-31T00:50:57.706998+02:00") to ms since the epoch */
static int rfc3339_ms(const char *s, uint64_t *out)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
	double frac = 0;
	const char *p;
	long long t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return -EINVAL;
	p = s + n;
	if (*p == '.') {
		char *e;

		frac = strtod(p, &e);
		p = e;
	}
	if (*p == '+' || *p == '-') {
		if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
			return -EINVAL;
		if (*p == '-')
			oh = -oh, om = -om;
	} else if (*p != 'Z') {
		return -EINVAL;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (long long)timegm(&tm) - (oh * 3600LL + om * 60LL);
	if (t < 0)
		return -EINVAL;
	*out = (uint64_t)t * 1000 + (uint64_t)(frac * 1000);
	return 0;
}

static json_t *ollama_models(const char *body, size_t len, const char *what, char *msg,
			     size_t msglen)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr);

	if (!root) {
		snprintf(msg, msglen, "%s: invalid JSON: %s", what, jerr.text);
		return NULL;
	}
	if (!json_is_array(json_object_get(root, "models"))) {
		snprintf(msg, msglen, "%s: no \"models\" array", what);
		json_decref(root);
		return NULL;
	}
	return root;
}

static const char *ollama_name(json_t *m)
{
	json_t *n = json_object_get(m, "model");

	if (!json_is_string(n))
		n = json_object_get(m, "name");
	return json_is_string(n) ? json_string_value(n) : NULL;
}

int agent_ollama__ps(const char *body, size_t len, struct agent_server *srv, uint64_t now_ms,
		     char *msg, size_t msglen)
{
	json_t *root = ollama_models(body, len, "/api/ps", msg, msglen), *m;
	size_t i;

	if (!root)
		return -EINVAL;
	start_page(srv, "ollama");
	json_array_foreach(json_object_get(root, "models"), i, m)
	{
		const char *name = ollama_name(m), *exp;
		uint64_t at;

		if (!name)
			continue;
		/* past its keep-alive it is being unloaded: not for new work */
		exp = json_string_value(json_object_get(m, "expires_at"));
		if (now_ms && exp && !rfc3339_ms(exp, &at) && at < now_ms)
			continue;
		add_name(srv->page_models, &srv->npage_models, name, strlen(name));
	}
	end_page(srv);
	json_decref(root);
	return 0;
}

int agent_ollama__tags(const char *body, size_t len, struct agent_server *srv, char *msg,
		       size_t msglen)
{
	json_t *root = ollama_models(body, len, "/api/tags", msg, msglen), *m;
	size_t i;
	int n = 0;

	if (!root)
		return -EINVAL;
	json_array_foreach(json_object_get(root, "models"), i, m)
	{
		const char *name = ollama_name(m);
		struct ar_model *am;

		if (!name || !*name || strlen(name) >= AR_MODEL_LEN || n >= AGENT_SERVER_MODELS)
			continue;
		am = &srv->models[n++];
		memset(am, 0, sizeof(*am));
		memcpy(am->name, name, strlen(name) + 1);
		memcpy(am->server, srv->s.url, sizeof(am->server));
		am->resident = false; /* on disk; /api/ps says what is loaded */
	}
	srv->nmodels = n;
	json_decref(root);
	return 0;
}
