// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-loadgen results: the per-node / per-model table, --json, --samples. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "loadgen.h"

enum lg_by { LG_BY_ALL, LG_BY_NODE, LG_BY_MODEL };

struct lg_group {
	uint64_t requests, ok, failed, cold, prompt, cached, out_tokens, hit_reqs, reconnects;
	double ttft_p50, ttft_p99, e2e_p50, e2e_p99;
	double cache_hit; /* cached / prompt tokens, NAN when no prompt tokens */
	double tok_s, req_s;
};

static int lg_group__compute(const struct lg_run *run, enum lg_by by, int key, struct lg_group *g)
{
	double *ttft = malloc((run->samples.n + 1) * sizeof(double));
	double *e2e = malloc((run->samples.n + 1) * sizeof(double));
	size_t i, nt = 0, ne = 0;

	memset(g, 0, sizeof(*g));
	if (!ttft || !e2e) {
		free(ttft);
		free(e2e);
		return -ENOMEM;
	}
	for (i = 0; i < run->samples.n; i++) {
		const struct lg_sample *s = &run->samples.s[i];

		if ((by == LG_BY_NODE && s->node != key) || (by == LG_BY_MODEL && s->model != key))
			continue;
		g->requests++;
		g->reconnects += s->reconnect;
		/* a request that waited for a load and then failed was a cold
		 * start all the same: counted, a policy's failures cannot hide
		 * its cold starts */
		g->cold += s->cold;
		if (!s->ok) {
			g->failed++;
			continue;
		}
		g->ok++;
		g->prompt += s->prompt_tokens;
		g->cached += s->cached_tokens;
		g->hit_reqs += s->cached_tokens > 0;
		g->out_tokens += s->out_tokens;
		e2e[ne++] = s->e2e_ms;
		if (s->ttft_ms >= 0)
			ttft[nt++] = s->ttft_ms;
	}
	g->ttft_p50 = lg_percentile(ttft, nt, 50);
	g->ttft_p99 = lg_percentile(ttft, nt, 99);
	g->e2e_p50 = lg_percentile(e2e, ne, 50);
	g->e2e_p99 = lg_percentile(e2e, ne, 99);
	g->cache_hit = g->prompt ? (double)g->cached / g->prompt : NAN;
	g->tok_s = run->wall_s > 0 ? g->out_tokens / run->wall_s : 0;
	g->req_s = run->wall_s > 0 ? g->ok / run->wall_s : 0;
	free(ttft);
	free(e2e);
	return 0;
}

static void lg_ms(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (v < 10)
		snprintf(buf, len, "%.2f ms", v);
	else
		snprintf(buf, len, "%.0f ms", v);
}

static void lg_row(FILE *f, const struct lg_run *run, const char *name, const struct lg_group *g,
		   const struct lg_group *all)
{
	char t50[32], t99[32], e50[32], e99[32], hit[16];

	lg_ms(t50, sizeof(t50), g->ttft_p50);
	lg_ms(t99, sizeof(t99), g->ttft_p99);
	lg_ms(e50, sizeof(e50), g->e2e_p50);
	lg_ms(e99, sizeof(e99), g->e2e_p99);
	if (!strcmp(run->mode, "chat")) {
		if (isnan(g->cache_hit))
			snprintf(hit, sizeof(hit), "-");
		else
			snprintf(hit, sizeof(hit), "%.1f%%", g->cache_hit * 100);
		fprintf(f, "%-16s %6llu %6llu %9s %5llu %9s %9s %9s %9s %8.1f\n", name,
			(unsigned long long)g->requests, (unsigned long long)g->failed, hit,
			(unsigned long long)g->cold, t50, t99, e50, e99, g->tok_s);
	} else {
		fprintf(f, "%-16s %8llu %6.1f%% %6llu %7llu %9s %9s %9.1f\n", name,
			(unsigned long long)g->requests,
			all->requests ? 100.0 * g->requests / all->requests : 0.0,
			(unsigned long long)g->failed, (unsigned long long)g->reconnects, e50, e99,
			g->req_s);
	}
}

void lg_report__table(FILE *f, const struct lg_run *run, const char *title)
{
	struct lg_group all, g;
	bool chat = !strcmp(run->mode, "chat");
	size_t i;

	if (lg_group__compute(run, LG_BY_ALL, 0, &all))
		return;
	fprintf(f, "%s\n", title);
	if (chat)
		fprintf(f, "%-16s %6s %6s %9s %5s %9s %9s %9s %9s %8s\n", "NODE", "REQS", "FAILED",
			"CACHE-HIT", "COLD", "TTFT-P50", "TTFT-P99", "E2E-P50", "E2E-P99", "TOK/S");
	else
		fprintf(f, "%-16s %8s %7s %6s %7s %9s %9s %9s\n", "NODE", "REQS", "SHARE", "FAILED",
			"RECONN", "LAT-P50", "LAT-P99", "REQ/S");
	for (i = 0; i < run->nodes.n; i++) {
		if (lg_group__compute(run, LG_BY_NODE, i, &g))
			return;
		lg_row(f, run, run->nodes.name[i], &g, &all);
	}
	if (chat && run->nmodels) {
		fprintf(f, "%-16s\n", "MODEL");
		for (i = 0; i < (size_t)run->nmodels; i++) {
			if (lg_group__compute(run, LG_BY_MODEL, i, &g))
				return;
			lg_row(f, run, run->model_names[i], &g, &all);
		}
	}
	lg_row(f, run, "total", &all, &all);
	if (chat)
		fprintf(f,
			"%u/%u sessions finished, %.1f s; CACHE-HIT = prompt tokens served from "
			"the prefix cache\n",
			run->sessions_done, run->sessions_total, run->wall_s);
	else
		fprintf(f, "%.1f s, %.0f requests/s%s\n", run->wall_s, all.req_s,
			run->late ? " (some starts late: the generator was the bottleneck)" : "");
	if (run->first_error[0])
		fprintf(f, "first error: %s\n", run->first_error);
}

static json_t *lg_num(double v)
{
	return isnan(v) ? json_null() : json_real(round(v * 1000) / 1000);
}

static json_t *lg_group__json(const struct lg_group *g, const char *name)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (name)
		json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "requests", json_integer(g->requests));
	json_object_set_new(o, "ok", json_integer(g->ok));
	json_object_set_new(o, "failed", json_integer(g->failed));
	json_object_set_new(o, "reconnects", json_integer(g->reconnects));
	json_object_set_new(o, "cold_starts", json_integer(g->cold));
	json_object_set_new(o, "prompt_tokens", json_integer(g->prompt));
	json_object_set_new(o, "cached_tokens", json_integer(g->cached));
	json_object_set_new(o, "cache_hit", lg_num(g->cache_hit));
	json_object_set_new(o, "requests_with_cache_hit", json_integer(g->hit_reqs));
	json_object_set_new(o, "output_tokens", json_integer(g->out_tokens));
	json_object_set_new(o, "ttft_p50_ms", lg_num(g->ttft_p50));
	json_object_set_new(o, "ttft_p99_ms", lg_num(g->ttft_p99));
	json_object_set_new(o, "e2e_p50_ms", lg_num(g->e2e_p50));
	json_object_set_new(o, "e2e_p99_ms", lg_num(g->e2e_p99));
	json_object_set_new(o, "tok_s", lg_num(g->tok_s));
	json_object_set_new(o, "req_s", lg_num(g->req_s));
	return o;
}

int lg_report__json(FILE *f, const struct lg_run *run, const char *config_json)
{
	json_t *o = json_object(), *nodes = json_array(), *models = json_array(), *cfg = NULL;
	struct lg_group g;
	int err = -ENOMEM;
	size_t i;

	if (!o || !nodes || !models)
		goto out;
	json_object_set_new(o, "mode", json_string(run->mode));
	json_object_set_new(o, "wall_s", lg_num(run->wall_s));
	/* an integer: as a real under JSON_REAL_PRECISION(10) it kept ten
	 * digits of thirteen, whole seconds, and the e2e tests that add a
	 * sample's t_start_ms to it were off by up to a second */
	json_object_set_new(o, "start_unix_ms",
			    json_integer((json_int_t)floor(run->start_unix_ms)));
	if (!strcmp(run->mode, "chat")) {
		json_object_set_new(o, "sessions", json_integer(run->sessions_total));
		json_object_set_new(o, "sessions_finished", json_integer(run->sessions_done));
	} else {
		json_object_set_new(o, "late_starts", json_integer(run->late));
	}
	if (config_json && (cfg = json_loads(config_json, 0, NULL)))
		json_object_set(o, "config", cfg);
	if (lg_group__compute(run, LG_BY_ALL, 0, &g))
		goto out;
	json_object_set_new(o, "total", lg_group__json(&g, NULL));
	for (i = 0; i < run->nodes.n; i++) {
		if (lg_group__compute(run, LG_BY_NODE, i, &g))
			goto out;
		json_array_append_new(nodes, lg_group__json(&g, run->nodes.name[i]));
	}
	for (i = 0; i < (size_t)run->nmodels; i++) {
		if (lg_group__compute(run, LG_BY_MODEL, i, &g))
			goto out;
		json_array_append_new(models, lg_group__json(&g, run->model_names[i]));
	}
	json_object_set(o, "nodes", nodes);
	json_object_set(o, "models", models);
	json_object_set_new(o, "first_error",
			    run->first_error[0] ? json_string(run->first_error) : json_null());
	err = json_dumpf(o, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
		  ? -EIO
		  : 0;
	fputc('\n', f);
out:
	json_decref(cfg);
	json_decref(nodes);
	json_decref(models);
	json_decref(o);
	return err;
}

int lg_report__samples(const char *path, const struct lg_run *run)
{
	FILE *f = fopen(path, "w");
	size_t i;
	int err;

	if (!f)
		return -errno;
	fprintf(f, "# t_start_ms\tnode\tmodel\tsession\tturn\tstatus\tok\tttft_ms\te2e_ms\t"
		   "out_tokens\tprompt_tokens\tcached_tokens\tcold\treconnect\n");
	for (i = 0; i < run->samples.n; i++) {
		const struct lg_sample *s = &run->samples.s[i];

		fprintf(f, "%.3f\t%s\t%s\t%u\t%u\t%d\t%d\t%.3f\t%.3f\t%u\t%u\t%u\t%d\t%d\n",
			s->t_start_ms, run->nodes.name[s->node],
			run->nmodels ? run->model_names[s->model] : "-", s->session, s->turn,
			s->status, s->ok, s->ttft_ms, s->e2e_ms, s->out_tokens, s->prompt_tokens,
			s->cached_tokens, s->cold, s->reconnect);
	}
	err = ferror(f) ? -EIO : 0;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}
