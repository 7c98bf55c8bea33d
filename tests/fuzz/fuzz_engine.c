// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness: what the agent makes of a model server's answers
 * (scrape.c), past the text parser fuzz_promtext covers. Every input is
 * taken as each of them in turn: a metrics page, taken twice by a server of
 * each kind so that the second take's windows read the first one's
 * counters; a /v1/models list; Ollama's /api/ps and /api/tags; the info
 * pages that state a batch limit (llama.cpp /props, SGLang /server_info).
 * An engine is not trusted to be well-formed, and what the agent reports
 * from it goes to every balancer, so besides ASan/UBSan findings the
 * harness checks the promises of scrape.h and report.h: a refusal says
 * why and returns a documented code; every figure of an accepted page is
 * finite and in its range (a fraction 0..1, a count or a time >= 0, or -1
 * unknown), model names are strings within their arrays, and a stated
 * batch limit lies in 1..AR_MAX_SLOTS.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../user/aibl-agent/scrape.h"

static const char *const kinds[] = {"", "vllm", "sglang", "trtllm", "triton", "tgi", "llamacpp"};

/* a refusal says why (success may leave msg untouched) */
static void check_msg(int ret, const char *msg, size_t len)
{
	if (ret < 0 && (!memchr(msg, '\0', len) || !msg[0]))
		abort();
}

/* 0, or -EINVAL saying why: the JSON readers' promise */
static void check_json_ret(int ret, const char *msg, size_t len)
{
	if (ret && ret != -EINVAL)
		abort();
	check_msg(ret, msg, len);
}

/* -1 unknown, else in [lo, hi] */
static void check_fig_(double v, double lo, double hi, const char *name)
{
	if (v == -1)
		return;
	if (!isfinite(v) || v < lo || v > hi) {
		fprintf(stderr, "fuzz_engine: %s = %g, not -1 nor in [%g, %g]\n", name, v, lo, hi);
		abort();
	}
}
#define check_fig(v, lo, hi) check_fig_(v, lo, hi, #v)

static void check_name(const char *s, size_t len)
{
	if (!memchr(s, '\0', len))
		abort();
}

/* the figures of a page taken */
static void check_figures(const struct agent_server *srv)
{
	const struct ar_server *s = &srv->s;

	check_name(s->kind, sizeof(s->kind));
	check_name(s->error, sizeof(s->error));
	check_fig(s->queue_depth, 0, INFINITY);
	check_fig(s->running, 0, INFINITY);
	check_fig(s->kv_cache_usage, 0, 1);
	check_fig(s->prefix_cache_hit_rate, 0, 1);
	check_fig(s->ttft_avg_ms, 0, INFINITY);
	check_fig(s->e2e_avg_ms, 0, INFINITY);
	check_fig(s->run_avg_ms, 0, INFINITY);
	check_fig(s->prefill_avg_ms, 0, INFINITY);
	check_fig(s->prefill_tokens_avg, 0, INFINITY);
	check_fig(s->prompt_tokens_avg, 0, INFINITY);
	check_fig(s->since_finish_ms, 0, INFINITY);
	check_fig(s->slots, 1, AR_MAX_SLOTS);
}

/* the model lists, whatever was taken */
static void check_models(const struct agent_server *srv)
{
	if (srv->nmodels < 0 || srv->nmodels > AGENT_SERVER_MODELS)
		abort();
	for (int i = 0; i < srv->nmodels; i++)
		check_name(srv->models[i].name, sizeof(srv->models[i].name));
	if (srv->npage_models < 0 || srv->npage_models > AGENT_SERVER_MODELS)
		abort();
	for (int i = 0; i < srv->npage_models; i++)
		check_name(srv->page_models[i], sizeof(srv->page_models[i]));
	if (srv->nloras < 0 || srv->nloras > AGENT_SERVER_MODELS)
		abort();
	for (int i = 0; i < srv->nloras; i++)
		check_name(srv->loras[i], sizeof(srv->loras[i]));
}

static void new_server(struct agent_server *srv, const char *spec)
{
	char msg[128];

	memset(srv, 0, sizeof(*srv));
	if (agent_server__spec(srv, spec, msg, sizeof(msg)))
		abort();	      /* the harness's own specs are valid */
	agent_server__unscraped(srv); /* as the agent starts a server */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	static struct agent_server srv; /* large: not on the stack */
	unsigned int slots;
	char msg[256], spec[96];
	int ret;

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		snprintf(spec, sizeof(spec), "http://127.0.0.1:8000%s%s",
			 kinds[k][0] ? ",kind=" : "", kinds[k]);
		new_server(&srv, spec);
		/* the usual paths tried in turn, as an agent given none does */
		for (int take = 0; take < 2; take++) {
			memset(msg, 'x', sizeof(msg));
			ret = agent_metrics__take(&srv, 200, body, size,
						  1700000000000ULL + take * 1000, msg, sizeof(msg));
			if (ret && ret != -EAGAIN && ret != -EIO && ret != -EINVAL &&
			    ret != -E2BIG && ret != -ENOMEM)
				abort();
			check_msg(ret, msg, sizeof(msg));
			if (!ret) {
				agent_server__since_finish(&srv, 5000 + take * 1000);
				check_figures(&srv);
			}
			check_models(&srv);
		}
	}

	new_server(&srv, "http://127.0.0.1:8000");
	memset(msg, 'x', sizeof(msg));
	ret = agent_models__parse(body, size, &srv, msg, sizeof(msg));
	check_json_ret(ret, msg, sizeof(msg));
	check_models(&srv);

	new_server(&srv, "http://127.0.0.1:11434,kind=ollama");
	memset(msg, 'x', sizeof(msg));
	ret = agent_ollama__ps(body, size, &srv, 1700000000000ULL, msg, sizeof(msg));
	check_json_ret(ret, msg, sizeof(msg));
	if (!ret)
		check_figures(&srv);
	check_models(&srv);
	memset(msg, 'x', sizeof(msg));
	ret = agent_ollama__tags(body, size, &srv, msg, sizeof(msg));
	check_json_ret(ret, msg, sizeof(msg));
	check_models(&srv);

	for (int k = 0; k < 2; k++) {
		slots = 0;
		memset(msg, 'x', sizeof(msg));
		ret = agent_info__slots(k ? "sglang" : "llamacpp", body, size, &slots, msg,
					sizeof(msg));
		if (ret && ret != -ENOENT && ret != -EINVAL)
			abort();
		check_msg(ret == -ENOENT ? 0 : ret, msg, sizeof(msg)); /* -ENOENT: not said */
		if (!ret && (slots < 1 || slots > AR_MAX_SLOTS))
			abort();
	}
	return 0;
}
