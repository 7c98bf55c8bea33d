// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibl-agent --read-metrics FILE...: what the agent reads from recorded
 * scrapes of one server (consecutive, in order, so windowed figures come
 * out as they would live), as one JSON object with the keys of a report's
 * servers[] element and the models the page names. Lets an operator check
 * an engine the agent has never met, from a `curl .../metrics > f`. A
 * JSON object after the pages that show a llama.cpp or SGLang server is
 * its info page (`curl .../props`, `.../server_info`): "slots".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "readmetrics.h"
#include "scrape.h"

static char *slurp(const char *path, size_t *len, char *msg, size_t msglen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f) {
		snprintf(msg, msglen, "%s", strerror(errno));
		return NULL;
	}
	do {
		if (n + 65536 > cap) {
			char *p = realloc(buf, cap = n + 65536 + 1);

			if (!p || cap > PROM_MAX_BYTES + 65536 + 1) {
				snprintf(msg, msglen, p ? "over %d bytes" : "out of memory",
					 PROM_MAX_BYTES);
				free(p ? p : buf);
				fclose(f);
				return NULL;
			}
			buf = p;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* a JSON answer: Ollama's /api/ps or /api/tags, or unusable */
static int take_json(struct agent_server *srv, const char *body, size_t len, char *msg,
		     size_t msglen)
{
	json_t *root = json_loadb(body, len, 0, NULL), *models, *m;
	bool ps = false;
	size_t i;
	int err;

	models = json_object_get(root, "models");
	if (!models && json_is_object(root) && agent_server__info_path(srv)) {
		/* the info page of the kind the pages before it showed: the
		 * engine's batch limit (llama.cpp /props, SGLang /server_info) */
		json_decref(root);
		err = agent_info__slots(srv->s.kind, body, len, &srv->slots_engine, msg, msglen);
		return err == -ENOENT ? 0 : err;
	}
	if (!json_is_array(models)) {
		snprintf(msg, msglen, "JSON, not a Prometheus page%s",
			 json_is_array(root) ? " (trtllm-serve iteration stats: its Prometheus "
					       "page is /prometheus/metrics)"
					     : "");
		json_decref(root);
		return -EINVAL;
	}
	json_array_foreach(models, i, m) ps |=
	    json_object_get(m, "size_vram") || json_object_get(m, "expires_at");
	json_decref(root);
	/* no expiry check: a recorded /api/ps is read as of when it was taken */
	return ps ? agent_ollama__ps(body, len, srv, 0, msg, msglen)
		  : agent_ollama__tags(body, len, srv, msg, msglen);
}

static json_t *num(double v)
{
	return v < 0 ? json_null() : json_real(v);
}

static void add_model(json_t *list, const char *name, bool resident)
{
	size_t i;
	json_t *m;

	json_array_foreach(list, i,
			   m) if (!strcmp(json_string_value(json_object_get(m, "name")), name))
	{
		if (resident)
			json_object_set_new(m, "resident", json_true());
		return;
	}
	json_array_append_new(list, json_pack("{s:s,s:b}", "name", name, "resident", resident));
}

int agent__read_metrics(int nfiles, char **files)
{
	struct agent_server *srv = calloc(1, sizeof(*srv));
	json_t *out, *models;
	char msg[256];
	int ret = 1;

	if (!srv || nfiles < 1) {
		fprintf(stderr, "aibl-agent: --read-metrics needs at least one FILE\n");
		goto out;
	}
	strcpy(srv->s.kind, "unknown");
	for (int i = 0; i < nfiles; i++) {
		size_t len = 0;
		char *body = slurp(files[i], &len, msg, sizeof(msg));
		size_t k = 0;
		int err;

		if (!body) {
			fprintf(stderr, "aibl-agent: %s: %s\n", files[i], msg);
			goto out;
		}
		while (k < len && strchr(" \t\r\n", body[k]))
			k++;
		if (k < len && (body[k] == '{' || body[k] == '['))
			err = take_json(srv, body, len, msg, sizeof(msg));
		else
			err = agent_metrics__take(srv, 200, body, len, 0, msg, sizeof(msg));
		free(body);
		if (err) {
			fprintf(stderr, "aibl-agent: %s: %s\n", files[i], msg);
			goto out;
		}
	}
	models = json_array();
	for (int i = 0; i < srv->npage_models; i++)
		add_model(models, srv->page_models[i], true);
	for (int i = 0; i < srv->nloras; i++)
		add_model(models, srv->loras[i], true);
	for (int i = 0; i < srv->nmodels; i++)
		add_model(models, srv->models[i].name, srv->models[i].resident);
	out = json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "kind", srv->s.kind, "queue_depth",
			num(srv->s.queue_depth), "running", num(srv->s.running), "kv_cache_usage",
			num(srv->s.kv_cache_usage), "prefix_cache_hit_rate",
			num(srv->s.prefix_cache_hit_rate), "ttft_avg_ms", num(srv->s.ttft_avg_ms),
			"slots", srv->slots_engine ? json_integer(srv->slots_engine) : json_null(),
			"models", models);
	if (out && !json_dumpf(out, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10)) &&
	    putchar('\n') != EOF)
		ret = 0;
	json_decref(out);
out:
	free(srv);
	return ret;
}
