// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-agent collector: scrapes, NVML, traffic hints, and the report. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include <curl/curl.h>
#include <jansson.h>
#include <xxhash.h>
#include "aibl.h"
#include "agent.h"
#include "httpbody.h"
#include "log.h"
#include "curlopt.h"

/* the port url names, or its scheme's (libcurl's parser); 0 unparsed */
static uint16_t url_port(const char *url)
{
	CURLU *u = curl_url();
	char *port = NULL;
	long v = 0;

	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT))
		v = strtol(port, NULL, 10);
	curl_free(port);
	curl_url_cleanup(u);
	return v > 0 && v <= 65535 ? (uint16_t)v : 0;
}

int agent__init(struct agent *a, const struct agent_cfg *cfg, char *msg, size_t msglen)
{
	int err;

	memset(a, 0, sizeof(*a));
	a->cfg = *cfg;
	a->cli_fd = -1;
	a->start_ms = clock_mono_ms();
	a->caches_since_ms = a->start_ms;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	for (int i = 0; i < cfg->nservers; i++) {
		/* URL[,kind=K][,metrics=PATH][,slots=N] */
		err = agent_server__spec(&a->servers[i], cfg->urls[i], msg, msglen);
		if (err)
			return err;
		agent_server__unscraped(&a->servers[i]);
		a->servers[i].port = url_port(a->servers[i].s.url);
	}
	err = agent_hints__init(&a->hints, cfg->max_hints, cfg->pressure_start,
				cfg->pressure_max_rate);
	if (err) {
		snprintf(msg, msglen, "invalid hint settings (max 1..%d, pressure 0..1, rate >= 1)",
			 AR_MAX_HINTS);
		return err;
	}
	if (!a->cfg.nvml_retry_min_ms)
		a->cfg.nvml_retry_min_ms = AGENT_NVML_RETRY_MIN_MS;
	if (a->cfg.nvml_retry_max_ms < a->cfg.nvml_retry_min_ms)
		a->cfg.nvml_retry_max_ms = a->cfg.nvml_retry_min_ms > AGENT_NVML_RETRY_MAX_MS
					       ? a->cfg.nvml_retry_min_ms
					       : AGENT_NVML_RETRY_MAX_MS;
	if (!a->cfg.nvml_deadline_ms)
		a->cfg.nvml_deadline_ms = AGENT_NVML_DEADLINE_MS;
	/* NVML is opened by the first GPU round, not here: a driver that hangs
	 * in nvmlInit_v2 (a GPU fallen off the bus) must not keep the agent
	 * from serving its engines' figures; the watchdog names the call */
	if (cfg->no_nvml)
		snprintf(a->nvml_error, sizeof(a->nvml_error), "NVML disabled (--no-nvml)");
	return 0;
}

void agent__fini(struct agent *a)
{
	agent__stop(a);
	agent_hints__fini(&a->hints);
	if (a->gpu_thread_stuck)
		return; /* it still holds NVML and will take the lock when back */
	agent_nvml__close(a->nvml);
	a->nvml = NULL;
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->wake);
}

/* ---- model servers ---- */

struct fetch {
	CURL *h;
	struct http_body body;
	char url[AR_URL_LEN + 16];
	CURLcode res;
	long status;
};

static size_t fetch_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct fetch *f = ud;
	size_t n = size * nmemb;

	/* over the limit or out of memory: returning 0 aborts the transfer */
	if (http_body__feed(&f->body, ptr, n, PROM_MAX_BYTES) || f->body.too_big)
		return 0;
	return n;
}

static int fetch_setup(struct fetch *f, const char *base, const char *path, unsigned int tmo)
{
	snprintf(f->url, sizeof(f->url), "%s%s", base, path);
	f->h = curl_easy_init();
	if (!f->h)
		return -ENOMEM;
	aibl_curl__direct(f->h);
	curl_easy_setopt(f->h, CURLOPT_URL, f->url);
	curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(f->h, CURLOPT_TIMEOUT_MS, (long)tmo);
	curl_easy_setopt(f->h, CURLOPT_CONNECTTIMEOUT_MS, (long)(tmo < 1000 ? tmo : 1000));
	curl_easy_setopt(f->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(f->h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(f->h, CURLOPT_USERAGENT, AGENT_VERSION);
	curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
	return 0;
}

/* why a fetch failed, "" when it did not */
static void fetch_error(const struct fetch *f, const char *what, char *out, size_t len)
{
	out[0] = '\0';
	if (f->body.too_big)
		snprintf(out, len, "%s: page over %d bytes", what, PROM_MAX_BYTES);
	else if (f->res != CURLE_OK)
		snprintf(out, len, "%s: %s", what, curl_easy_strerror(f->res));
	else if (f->status != 200)
		snprintf(out, len, "%s: HTTP %ld", what, f->status);
}

/* run the transfers added to m until every one is done or timed out; each
 * fetch's res and status say how it ended */
static void fetch_run(CURLM *m)
{
	int running = 0;
	CURLMsg *msg;

	do {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		if (running && curl_multi_poll(m, NULL, 0, 100, NULL) != CURLM_OK)
			break;
	} while (running);
	while ((msg = curl_multi_info_read(m, &running))) {
		struct fetch *f = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
		f->res = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &f->status);
	}
}

/* one fetch's handle (out of m, may be NULL) and body; f itself stays */
static void fetch_clean(struct fetch *f, CURLM *m)
{
	if (f->h) {
		if (m)
			curl_multi_remove_handle(m, f->h);
		curl_easy_cleanup(f->h);
	}
	http_body__free(&f->body);
}

/* one fetch set up, alone and to its end: its result and status */
static void fetch_one(struct fetch *f)
{
	f->res = curl_easy_perform(f->h);
	curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &f->status);
}

/* the n fetches of f (some never set up), f itself and m (may be NULL) */
static void fetch_free(struct fetch *f, int n, CURLM *m)
{
	for (int i = 0; f && i < n; i++)
		fetch_clean(&f[i], m);
	free(f);
	if (m)
		curl_multi_cleanup(m);
}

/* ---- speed probe ---- */

/*
 * The speed probe: one short chat completion (AGENT_PROBE_TOKENS output
 * tokens) to a resident model of an idle server, timed here. Its time per
 * output token is the server's speed before any client request measured it
 * (the controller prices a node it has not measured by it). The engine
 * counts the probe in its latency histograms: a metrics page taken right
 * after it becomes the counters' baseline, so no window the report gives
 * holds it. 0 or -errno, err says why.
 */
static int speed_probe(const struct agent *a, struct agent_server *w, char *err, size_t errlen)
{
	struct curl_slist *hdr = NULL;
	struct fetch f = {0}, fm = {0};
	json_t *req = NULL, *resp = NULL, *tok;
	const char *model = NULL;
	struct agent_server *t = NULL;
	curl_off_t us = 0;
	char *body = NULL, note[100];
	int ret = -EIO;

	err[0] = '\0';
	for (int k = 0; k < w->nmodels && !model; k++)
		if (w->models[k].resident)
			model = w->models[k].name;
	if (!model) {
		snprintf(err, errlen, "no resident model to ask");
		return -ENOENT;
	}
	req = json_pack("{s:s, s:[{s:s, s:s}], s:i, s:i, s:b}", "model", model, "messages", "role",
			"user", "content", "aibl-agent speed probe: count from one to twenty.",
			"max_tokens", AGENT_PROBE_TOKENS, "temperature", 0, "stream", 0);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	hdr = curl_slist_append(NULL, "Content-Type: application/json");
	/* the scrape thread waits for it: within half the stale time, so a
	 * probe that hangs never makes a healthy server look down */
	if (!body || !hdr ||
	    fetch_setup(&f, w->s.url, "/v1/chat/completions",
			a->cfg.stale_ms / 2 < AGENT_PROBE_TIMEOUT_MS ? a->cfg.stale_ms / 2
								     : AGENT_PROBE_TIMEOUT_MS)) {
		ret = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(f.h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(f.h, CURLOPT_POSTFIELDS, body);
	fetch_one(&f);
	curl_easy_getinfo(f.h, CURLINFO_TOTAL_TIME_T, &us);
	fetch_error(&f, "speed probe", err, errlen);
	if (err[0])
		goto out;
	resp = json_loadb(http_body__str(&f.body), f.body.len, 0, NULL);
	tok = json_object_get(json_object_get(resp, "usage"), "completion_tokens");
	if (!json_is_integer(tok) || json_integer_value(tok) < 1 ||
	    json_integer_value(tok) > 4 * AGENT_PROBE_TOKENS || us <= 0) {
		snprintf(err, errlen, "speed probe: no usage.completion_tokens in the answer");
		goto out;
	}
	/* the probe into the counters' baseline, the figures as they were */
	t = malloc(sizeof(*t));
	if (!t ||
	    fetch_setup(&fm, w->s.url, agent_server__metrics_path(w), a->cfg.scrape_timeout_ms)) {
		ret = -ENOMEM;
		goto out;
	}
	fetch_one(&fm);
	*t = *w;
	if (fm.res != CURLE_OK || fm.body.too_big ||
	    agent_metrics__take(t, fm.status, http_body__str(&fm.body), fm.body.len,
				clock_wall_ms(), note, sizeof(note))) {
		snprintf(err, errlen, "speed probe: no metrics page after it");
		goto out;
	}
	w->prev = t->prev;
	w->s.probe_ms_per_token = us / 1e3 / json_integer_value(tok);
	ret = 0;
out:
	free(t);
	fetch_clean(&fm, NULL);
	fetch_clean(&f, NULL);
	curl_slist_free_all(hdr);
	free(body);
	json_decref(req);
	json_decref(resp);
	return ret;
}

/* probe w now: the option is on, it is up and idle, not probed since it
 * (re)started, no failure lately. True when it probed (or tried) */
static bool maybe_probe(const struct agent *a, struct agent_server *w)
{
	uint64_t now = clock_mono_ms();
	char err[128];

	if (!a->cfg.speed_probe || w->probed || now < w->probe_after_ms || !w->prev.valid ||
	    w->s.running != 0 || w->s.queue_depth > 0)
		return false;
	if (speed_probe(a, w, err, sizeof(err))) {
		w->probe_after_ms = now + AGENT_PROBE_RETRY_MS;
		pr_info("%s: %s (again in %d s)\n", w->s.url, err, AGENT_PROBE_RETRY_MS / 1000);
		return true;
	}
	w->probed = true;
	pr_info("%s: speed probe %.2f ms per output token\n", w->s.url, w->s.probe_ms_per_token);
	return true;
}

/*
 * The engine's own word on how many requests it runs at once, where its
 * kind has one (agent_server__info_path): fetched with the round's other
 * pages when the server is first up, again after it restarted (its
 * settings may have changed), and every AGENT_INFO_EVERY_MS; a fetch that
 * fails keeps what was read and tries again sooner. Not asked where
 * slots=N is stated: that wins. info_due: the path to fetch this round.
 */
static const char *info_due(const struct agent_server *w, uint64_t now)
{
	const char *path = agent_server__info_path(w);

	return path && !w->slots_cfg && now >= w->info_after_ms ? path : NULL;
}

/* the answer f to the info fetch of path into w, which is up */
static void info_take(struct agent_server *w, const struct fetch *f, const char *path, uint64_t now)
{
	unsigned int slots = w->slots_engine;
	char msg[100] = "";

	w->info_after_ms = now + AGENT_INFO_RETRY_MS;
	if (f->res == CURLE_OK && f->status == 404 && agent_server__info_next(w)) {
		w->info_after_ms = 0; /* the kind's other path, next round */
	} else if (f->res == CURLE_OK && !f->body.too_big && f->status == 200) {
		if (agent_info__slots(agent_server__kind(w), http_body__str(&f->body), f->body.len,
				      &slots, msg, sizeof(msg)) == -EINVAL)
			pr_info("%s%s: %s\n", w->s.url, path, msg);
		w->info_after_ms = now + AGENT_INFO_EVERY_MS;
	} else if (f->res == CURLE_OK && f->status == 404) {
		slots = 0; /* an engine without the page */
		w->info_after_ms = now + AGENT_INFO_EVERY_MS;
	}
	if (slots != w->slots_engine) {
		if (slots)
			pr_info("%s: the engine runs %u requests at once (%s)\n", w->s.url, slots,
				path);
		else
			pr_info("%s: the engine no longer says how many requests it runs at "
				"once (%s)\n",
				w->s.url, path);
		w->slots_engine = slots;
	}
}

/* the server holds model: resident in its list, a LoRA adapter running, or
 * (Ollama) loaded by its /api/ps */
static bool server_holds(const struct agent_server *w, const char *model)
{
	for (int k = 0; k < w->nmodels; k++)
		if (w->models[k].resident && !strcmp(w->models[k].name, model))
			return true;
	for (int k = 0; k < w->nloras; k++)
		if (!strcmp(w->loras[k], model))
			return true;
	if (!strcmp(w->s.kind, "ollama"))
		for (int k = 0; k < w->npage_models; k++)
			if (!strcmp(w->page_models[k], model))
				return true;
	return false;
}

/*
 * The unloaded model is gone from srv's lists, read by a scrape begun at
 * asked_ms (monotonic): reported as they say from now on. So it is when a
 * vLLM list asked for after the engine answered the unload still holds
 * it: vLLM drops an adapter from its list before it answers, so it was
 * loaded again (by someone else, or by a request naming it), and is
 * resident: hidden until hide_until_ms it would be a resident model no
 * balancer sends to. Ollama answers keep_alive 0 once it has told its
 * scheduler to expire the model, before it has left memory, so its lists
 * may hold it a while: the bound covers that. asked_ms 0: the lists were
 * not read this time, no news. Under a->lock, after srv's lists were read.
 */
static void unload_seen(struct agent *a, const struct agent_server *srv, uint64_t asked_ms)
{
	struct agent_load *l = &a->load;

	if (!asked_ms || !l->hidden || l->busy || strcmp(l->server, srv->s.url))
		return;
	if (!server_holds(srv, l->model)) {
		l->hidden = false;
	} else if (!strcmp(srv->s.kind, "vllm") && asked_ms > l->ended_ms) {
		pr_info("%s: %s loaded again since its unload\n", srv->s.url, l->model);
		l->hidden = false;
	}
}

struct restart_ctx {
	const struct agent *a;
	const struct agent_server *was, *now; /* the server before and after */
};

/*
 * A hint of the restarted server's sessions: one of a model the old or the
 * new process holds; one without a model, of the server whose URL has the
 * hint's VIP port (an engine serves and exports its metrics on one port:
 * vLLM, SGLang, TensorRT-LLM), or, where no server's port is the hint's,
 * of any (it cannot be told whose: it goes, as every hint went before).
 */
static bool hint_of_restarted(const struct ar_hint *h, void *arg)
{
	const struct restart_ctx *rc = arg;

	if (h->model[0])
		return server_holds(rc->was, h->model) || server_holds(rc->now, h->model);
	for (int j = 0; h->port && j < rc->a->cfg.nservers; j++)
		if (rc->a->servers[j].port == h->port)
			return h->port == rc->now->port;
	return true;
}

/* Scrape every server at once (curl multi): a slow one delays no other. */
static void scrape_all(struct agent *a)
{
	int n = a->cfg.nservers;
	/* per server: its metrics page, its model list, its info page when due */
	struct fetch *f = calloc(3 * n, sizeof(*f));
	/* only this thread writes servers[]: it works on a copy unlocked and
	 * publishes it under the lock, so a big page never holds up a report */
	struct agent_server *w = malloc(sizeof(*w));
	char paths[AR_MAX_SERVERS][3][64];
	CURLM *m = curl_multi_init();
	uint64_t now = clock_mono_ms();
	const char *info;
	bool probed = false;

	if (!f || !w || !m) {
		pr_warn("scrape: out of memory\n");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		snprintf(paths[i][0], sizeof(paths[i][0]), "%s",
			 agent_server__metrics_path(&a->servers[i]));
		snprintf(paths[i][1], sizeof(paths[i][1]), "%s",
			 agent_server__models_path(&a->servers[i]));
		info = info_due(&a->servers[i], now);
		snprintf(paths[i][2], sizeof(paths[i][2]), "%s", info ?: "");
	}
	for (int i = 0; i < 3 * n; i++) {
		if (!paths[i / 3][i % 3][0])
			continue;
		if (fetch_setup(&f[i], a->servers[i / 3].s.url, paths[i / 3][i % 3],
				a->cfg.scrape_timeout_ms))
			goto out;
		curl_multi_add_handle(m, f[i].h);
	}
	fetch_run(m);

	for (int i = 0; i < n; i++) {
		struct fetch *fm = &f[3 * i], *fv = &f[3 * i + 1];
		struct agent_server *srv = &a->servers[i];
		char err[128], note[100]; /* fits ar_server.error with its prefix */
		bool page_ok = false, tags = !strcmp(paths[i][1], "/api/tags"), listed = false;
		int ret;

		*w = *srv;
		fetch_error(fm, "metrics", err, sizeof(err));
		note[0] = '\0';
		/* an HTTP error can still say something (llama.cpp's 501, a 404
		 * that sends the agent to the next usual metrics path) */
		if (!fm->body.too_big && fm->res == CURLE_OK) {
			ret =
			    agent_metrics__take(w, fm->status, http_body__str(&fm->body),
						fm->body.len, clock_wall_ms(), note, sizeof(note));
			if (ret)
				snprintf(err, sizeof(err), "metrics %s: %s", paths[i][0], note);
			else
				page_ok = true;
		}
		if (page_ok) {
			w->last_ok_ms = clock_mono_ms();
			agent_server__since_finish(w, w->last_ok_ms);
			snprintf(w->s.error, sizeof(w->s.error), "%s", note);
		} else {
			snprintf(w->s.error, sizeof(w->s.error), "%s", err);
		}
		/* residency: /v1/models (Ollama: /api/tags, what it could
		 * load); a server without it (Triton: 404) has none. A list
		 * fetched before the server was known as Ollama is not used:
		 * its /v1/models lists every model on disk. */
		if (tags != !strcmp(agent_server__models_path(w), "/api/tags")) {
			/* the kind changed under this fetch: wait for the next */
		} else if (fv->res == CURLE_OK && fv->status == 200) {
			const char *b = http_body__str(&fv->body);

			note[0] = '\0';
			ret = tags ? agent_ollama__tags(b, fv->body.len, w, note, sizeof(note))
				   : agent_models__parse(b, fv->body.len, w, note, sizeof(note));
			/* an error, or a model left out of a list taken */
			if (note[0] && page_ok)
				snprintf(w->s.error, sizeof(w->s.error), "%s", note);
			listed = !ret;
		} else if (fv->res == CURLE_OK && fv->status == 404) {
			w->nmodels = 0;
			listed = true;
		} else if (page_ok) {
			fetch_error(fv, "models", w->s.error, sizeof(w->s.error));
		}
		/* a page that failed (a timeout, an HTTP error, garbage) is no
		 * news that the server is down: up it stays, its figures
		 * aging, until stale_ms passes without a good one. Down at
		 * once, one slow page took its models out of the report, and a
		 * stale report is a failed poll at aibld. A refused connection
		 * is news: no process listens, down now */
		if (listed)
			w->models_ok_ms = now;
		else if (page_ok && w->restarted)
			w->models_ok_ms = 0; /* the old process's list */
		if (page_ok)
			w->s.up = true;
		else if (fm->res == CURLE_COULDNT_CONNECT ||
			 clock_mono_ms() - w->last_ok_ms > a->cfg.stale_ms)
			w->s.up = false;
		if (page_ok && paths[i][2][0])
			info_take(w, &f[3 * i + 2], paths[i][2], clock_mono_ms());
		else if (page_ok && w->restarted)
			w->info_after_ms = 0; /* a new process: read it next round */
		/* a new process: its speed is measured again. Here, not in
		 * maybe_probe(), which a round calls until one server probed:
		 * two servers restarted together, the second kept the old
		 * process's figure for good */
		if (page_ok && w->restarted) {
			w->probed = false;
			w->s.probe_ms_per_token = -1;
		}
		/* one probe a round: each may take up to half of stale_ms, and
		 * the servers after it wait for the round to publish them */
		if (page_ok && !probed)
			probed = maybe_probe(a, w);
		pthread_mutex_lock(&a->lock);
		if (page_ok && w->restarted) {
			/* its prefix caches went with the old process: the
			 * hints of its sessions go, and the traffic before now
			 * makes none again. The node's other servers keep
			 * theirs. */
			struct restart_ctx rc = {.a = a, .was = srv, .now = w};

			a->caches_since_ms = w->last_ok_ms;
			agent_hints__drop_if(&a->hints, hint_of_restarted, &rc);
		}
		*srv = *w;
		/* a list not read this time is no news of the unload's model */
		unload_seen(a, srv, listed ? now : 0);
		pthread_mutex_unlock(&a->lock);
		if (!page_ok)
			pr_debug("scrape %s: %s\n", srv->s.url, err);
	}
out:
	fetch_free(f, 3 * n, m);
	free(w);
}

/* ---- residency watch: the model lists between scrapes ---- */

/* a hash of what the controllers are told of when it changes: each server's
 * health and the models it holds (its list, LoRA adapters running, the
 * names its metrics page gives) */
static uint64_t residency_sig(struct agent *a)
{
	XXH3_state_t *st = XXH3_createState();
	uint64_t h;

	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < a->cfg.nservers; i++) {
		const struct agent_server *srv = &a->servers[i];

		XXH3_64bits_update(st, &srv->s.up, sizeof(srv->s.up));
		for (int k = 0; k < srv->nmodels; k++) {
			XXH3_64bits_update(st, srv->models[k].name,
					   strlen(srv->models[k].name) + 1);
			XXH3_64bits_update(st, &srv->models[k].resident,
					   sizeof(srv->models[k].resident));
		}
		XXH3_64bits_update(st, "|", 1);
		for (int k = 0; k < srv->nloras; k++)
			XXH3_64bits_update(st, srv->loras[k], strlen(srv->loras[k]) + 1);
		XXH3_64bits_update(st, "|", 1);
		for (int k = 0; k < srv->npage_models; k++)
			XXH3_64bits_update(st, srv->page_models[k],
					   strlen(srv->page_models[k]) + 1);
		XXH3_64bits_update(st, "/", 1);
	}
	pthread_mutex_unlock(&a->lock);
	h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

/* two model lists name the same models, resident alike, in the same order */
static bool same_models(const struct agent_server *x, const struct agent_server *y)
{
	if (x->nmodels != y->nmodels)
		return false;
	for (int k = 0; k < x->nmodels; k++)
		if (strcmp(x->models[k].name, y->models[k].name) ||
		    x->models[k].resident != y->models[k].resident)
			return false;
	return true;
}

/*
 * Fetch the model list of every server that is up (an OpenAI server's
 * /v1/models: a few hundred bytes, where its metrics page is tens of KB):
 * true when one differs from the last scrape's, so a model loaded or
 * unloaded is seen within watch_interval_ms. Ollama's list (/api/tags) is
 * what it could load, not what it holds: its residency waits for the
 * scrape. A failed fetch says nothing; the scrape judges health.
 */
static bool watch_models(struct agent *a)
{
	int n = a->cfg.nservers;
	struct fetch *f = calloc(n, sizeof(*f));
	struct agent_server *w = malloc(sizeof(*w));
	CURLM *m = curl_multi_init();
	unsigned int tmo = a->cfg.watch_interval_ms < a->cfg.scrape_timeout_ms
			       ? a->cfg.watch_interval_ms
			       : a->cfg.scrape_timeout_ms;
	bool changed = false;

	if (!f || !w || !m)
		goto out;
	for (int i = 0; i < n; i++) {
		const struct agent_server *srv = &a->servers[i];

		/* only this thread writes servers[] */
		if (!srv->s.up || !strcmp(agent_server__models_path(srv), "/api/tags"))
			continue;
		if (fetch_setup(&f[i], srv->s.url, agent_server__models_path(srv),
				tmo < 50 ? 50 : tmo))
			goto out;
		curl_multi_add_handle(m, f[i].h);
	}
	fetch_run(m);
	for (int i = 0; i < n && !changed; i++) {
		char note[100];

		if (!f[i].h || f[i].status != 200 || f[i].body.too_big)
			continue;
		*w = a->servers[i];
		if (agent_models__parse(http_body__str(&f[i].body), f[i].body.len, w, note,
					sizeof(note)))
			continue;
		changed = !same_models(w, &a->servers[i]);
	}
out:
	fetch_free(f, n, m);
	free(w);
	return changed;
}

/*
 * Tell every --notify controller that this node changed: POST
 * URL/v1/nodes/NAME/poll, all at once, each bounded by 250 ms. The
 * controller then polls the node (its answer is checked, signed, as ever).
 * A controller that does not answer loses nothing but the early look.
 */
static void notify_controllers(struct agent *a)
{
	int n = a->cfg.nnotify;
	struct fetch *f = calloc(n, sizeof(*f));
	CURLM *m = curl_multi_init();
	char path[AR_NAME_LEN + 32];

	if (!f || !m)
		goto out;
	snprintf(path, sizeof(path), "/v1/nodes/%s/poll", a->cfg.name);
	for (int i = 0; i < n; i++) {
		if (fetch_setup(&f[i], a->cfg.notify[i], path, 250))
			goto out;
		curl_easy_setopt(f[i].h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(f[i].h, CURLOPT_POSTFIELDSIZE, 0L);
		curl_multi_add_handle(m, f[i].h);
	}
	fetch_run(m);
	for (int i = 0; i < n; i++) {
		/* a change is rare: each one a controller missed is worth a line */
		if (f[i].res != CURLE_OK)
			pr_warn("notify %s%s: %s (it sees the change at its next poll)\n",
				a->cfg.notify[i], path, curl_easy_strerror(f[i].res));
		else if (f[i].status / 100 != 2)
			pr_warn("notify %s%s: HTTP %ld (it sees the change at its next poll)\n",
				a->cfg.notify[i], path, f[i].status);
	}
out:
	fetch_free(f, n, m);
}

/* ---- GPUs ---- */

/* NVML failed: closed by the caller, reopened after a doubling backoff */
static void nvml_failed(struct agent *a, const char *msg, uint64_t now)
{
	unsigned int b = a->nvml_backoff_ms;

	if (!b)
		b = a->cfg.nvml_retry_min_ms;
	else
		b = b > a->cfg.nvml_retry_max_ms / 2 ? a->cfg.nvml_retry_max_ms : 2 * b;
	if (!a->nvml_opened && !a->nvml_error[0])
		pr_info("no GPU figures: %s\n", msg); /* a CPU node, or a driver not loaded yet */
	else if (a->nvml_ok || strcmp(a->nvml_error, msg))
		pr_warn("GPU figures unavailable: %s (retrying, every %u ms at most)\n", msg,
			a->cfg.nvml_retry_max_ms);
	a->nvml_backoff_ms = b;
	a->nvml_retry_ms = now + b;
	a->nvml_ok = false;
	a->ngpus = a->gpus_omitted = 0;
	snprintf(a->nvml_error, sizeof(a->nvml_error), "%s", msg);
}

/* The GPU thread enters an NVML call, for the watchdog: call names one
 * made without a->nvml (the open, the close), NULL one through it */
static void nvml_busy(struct agent *a, const char *call)
{
	pthread_mutex_lock(&a->lock);
	a->nvml_busy_ms = clock_mono_ms();
	a->nvml_busy_call = call;
	pthread_mutex_unlock(&a->lock);
}

/* nv, no longer a->nvml, closed under the watchdog: nvmlShutdown talks
 * to the driver too */
static void nvml_close(struct agent *a, struct agent_nvml *nv)
{
	nvml_busy(a, "nvmlShutdown");
	agent_nvml__close(nv);
	pthread_mutex_lock(&a->lock);
	a->nvml_busy_ms = 0;
	pthread_mutex_unlock(&a->lock);
}

/* what the GPU thread is in; under a->lock, with a->nvml_busy_ms set */
static const char *nvml_busy_name(const struct agent *a)
{
	const char *call = a->nvml ? agent_nvml__busy(a->nvml) : a->nvml_busy_call;

	return call ? call : "(between calls)";
}

/* One GPU round: (re)open NVML when due, sample it, publish. Only one
 * thread runs it: the GPU thread, or collect_once when there is none. */
static void gpu_round(struct agent *a)
{
	struct agent_nvml_sample *s;
	struct agent_nvml *nv;
	char msg[128] = "";
	uint64_t now = clock_mono_ms();
	int err;

	if (a->cfg.no_nvml)
		return;
	nv = a->nvml;
	if (!nv) {
		if (now < a->nvml_retry_ms)
			return;
		nvml_busy(a, "nvmlInit_v2");
		/* nvmlInit_v2 may hang as well */
		err = agent_nvml__open(a->cfg.nvml_lib, &nv, msg, sizeof(msg));
		pthread_mutex_lock(&a->lock);
		a->nvml_busy_ms = 0;
		if (err)
			nvml_failed(a, msg, clock_mono_ms());
		else
			a->nvml = nv;
		pthread_mutex_unlock(&a->lock);
		if (err)
			return;
		pr_info("NVML opened%s\n", a->nvml_opened ? " again" : "");
		a->nvml_opened = true;
	}
	s = malloc(sizeof(*s));
	if (!s)
		return;
	nvml_busy(a, NULL);
	err = agent_nvml__sample(nv, s, msg, sizeof(msg));
	pthread_mutex_lock(&a->lock);
	a->nvml_busy_ms = 0;
	if (err) {
		/* the driver went away or changed under us: only a fresh
		 * dlopen + nvmlInit_v2 sees the new one */
		a->nvml = NULL;
		nvml_failed(a, msg, clock_mono_ms());
	} else {
		if (s->denied != a->gpus_denied)
			pr_info("%d GPU(s) not accessible to this process (NVML: no permission), "
				"left out\n",
				s->denied);
		if (s->omitted && s->omitted != a->gpus_omitted)
			pr_warn(
			    "%d GPU(s)/MIG instance(s) over the report's limit of %d, left out\n",
			    s->omitted, AR_MAX_GPUS);
		a->nvml_ok = true;
		a->gpus_seen |= s->n > 0;
		a->nvml_backoff_ms = 0;
		a->nvml_error[0] = '\0';
		a->ngpus = s->n;
		a->gpus_omitted = s->omitted;
		a->gpus_denied = s->denied;
		memcpy(a->gpus, s->gpus, s->n * sizeof(s->gpus[0]));
	}
	pthread_mutex_unlock(&a->lock);
	free(s);
	if (err)
		nvml_close(a, nv);
}

/* ---- traffic hints from the decap program's client map ---- */

struct seen {
	struct aibl_node_client_key k;
	uint64_t last_ns, bytes;
};

static int seen_newer(const void *x, const void *y)
{
	const struct seen *a = x, *b = y;

	return a->last_ns < b->last_ns ? 1 : a->last_ns > b->last_ns ? -1 : 0;
}

static double node_kv(const struct agent *a);

static void poll_traffic(struct agent *a)
{
	struct aibl_node_client_key k, next, *prev = NULL;
	struct aibl_node_client v;
	struct seen *seen = NULL;
	size_t n = 0, cap = 0;
	uint64_t now_ns, window_ns, since_ns;
	double rate;
	int max;

	if (a->cli_fd < 0)
		return;
	now_ns = clock_mono_ns(); /* bpf_ktime_get_ns() clock */
	pthread_mutex_lock(&a->lock);
	/* under cache pressure the node forgets sooner */
	rate = 1;
	for (int i = 0; i < a->cfg.nservers; i++)
		if (a->servers[i].s.up)
			rate = fmax(rate,
				    agent_hints__rate(&a->hints, a->servers[i].s.kv_cache_usage));
	max = a->hints.max;
	since_ns = a->caches_since_ms * 1000000ULL;
	pthread_mutex_unlock(&a->lock);
	window_ns = (uint64_t)(a->cfg.traffic_window_ms / rate) * 1000000ULL;

	/* bounded by the table's size: a key evicted under the walk makes
	 * the kernel start again from the first one, and a flood of new
	 * clients would keep it walking (and seen growing) */
	for (size_t steps = 0;
	     steps < AIBL_NODE_MAX_CLIENTS && bpf_map_get_next_key(a->cli_fd, prev, &next) == 0;
	     steps++) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(a->cli_fd, &k, &v))
			continue; /* evicted meanwhile */
		/* seen after now_ns was read (a client that streams on,
		 * late in the walk): seen now */
		if (v.last_seen_ns > now_ns)
			v.last_seen_ns = now_ns;
		if (now_ns - v.last_seen_ns >= window_ns || v.last_seen_ns < since_ns)
			continue;
		if (n == cap) {
			struct seen *p = realloc(seen, (cap ? cap * 2 : 256) * sizeof(*seen));

			if (!p)
				break;
			seen = p;
			cap = cap ? cap * 2 : 256;
		}
		seen[n++] = (struct seen){.k = k, .last_ns = v.last_seen_ns, .bytes = v.bytes};
	}
	/* the most recent clients first; the table holds at most max (none
	 * seen: no array, and qsort's base must not be NULL) */
	if (n > 1)
		qsort(seen, n, sizeof(*seen), seen_newer);
	if (n > (size_t)max)
		n = max;
	pthread_mutex_lock(&a->lock);
	/* the table's hints aged to now first: the tick after would age
	 * these new ones by the time since the last tick as well */
	agent_hints__tick(&a->hints, clock_mono_ms(), node_kv(a));
	for (size_t i = 0; i < n; i++) {
		struct ar_hint h = {};
		uint64_t left_ns = window_ns - (now_ns - seen[i].last_ns);

		/* the decap program's key is binary already: carried as it is */
		h.client = seen[i].k.client;
		h.vip = seen[i].k.vip;
		h.client_family = h.vip_family =
		    seen[i].k.family == AIBL_AF_INET6 ? AIBL_AF_INET6 : AIBL_AF_INET;
		h.port = ntohs(seen[i].k.vport);
		h.proto = seen[i].k.proto;
		h.ttl_ms = left_ns / 1000000ULL;
		if (!h.ttl_ms)
			continue;
		/* warmth: how recently it spoke */
		h.score = (double)left_ns / window_ns;
		strcpy(h.source, "traffic");
		agent_hints__put(&a->hints, &h);
	}
	a->traffic_polls++;
	pthread_mutex_unlock(&a->lock);
	free(seen);
}

/* ---- the loop ---- */

static double node_kv(const struct agent *a)
{
	double kv = -1;

	for (int i = 0; i < a->cfg.nservers; i++)
		if (a->servers[i].s.up)
			kv = fmax(kv, a->servers[i].s.kv_cache_usage);
	return kv;
}

void agent__collect_once(struct agent *a)
{
	scrape_all(a);
	if (!a->gpu_thread_started)
		gpu_round(a);
	poll_traffic(a);
	pthread_mutex_lock(&a->lock);
	agent_hints__tick(&a->hints, clock_mono_ms(), node_kv(a));
	a->scrapes++;
	pthread_mutex_unlock(&a->lock);
}

/* sleep to ms (monotonic), or until told to stop; the caller holds the
 * lock. The collector's wait (early) ends when a notify is asked too. */
static void wait_until(struct agent *a, uint64_t ms, bool early)
{
	struct timespec until = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (!a->stop && clock_mono_ms() < ms && !(early && a->notify_asked))
		pthread_cond_timedwait(&a->wake, &a->lock, &until);
}

/* run round() every scrape interval until told to stop */
static void agent_loop(struct agent *a, void (*round)(struct agent *))
{
	uint64_t next;

	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		pthread_mutex_unlock(&a->lock);
		next = clock_mono_ms() + a->cfg.scrape_interval_ms;
		round(a);
		pthread_mutex_lock(&a->lock);
		wait_until(a, next, false);
	}
	pthread_mutex_unlock(&a->lock);
}

/*
 * The collector: a full round every scrape interval and, between rounds,
 * a look at the model lists every watch interval. A change there starts
 * the full round at once; a round that changes what the node holds or a
 * server's health tells the controllers (--notify).
 */
static void *collector(void *arg)
{
	struct agent *a = arg;
	uint64_t next = 0, sig = 0, now, until_ms;
	bool have_sig = false;

	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		bool full, asked = a->notify_asked;

		a->notify_asked = false;
		pthread_mutex_unlock(&a->lock);
		/* an unload's drain begins: the controllers poll now */
		if (asked && a->cfg.nnotify)
			notify_controllers(a);
		now = clock_mono_ms();
		full = now >= next;
		if (!full && a->cfg.watch_interval_ms && watch_models(a))
			full = true;
		if (full) {
			uint64_t s;

			next = now + a->cfg.scrape_interval_ms;
			agent__collect_once(a);
			s = residency_sig(a);
			if (have_sig && s != sig && a->cfg.nnotify)
				notify_controllers(a);
			sig = s;
			have_sig = true;
		}
		until_ms = next;
		if (a->cfg.watch_interval_ms && clock_mono_ms() + a->cfg.watch_interval_ms < next)
			until_ms = clock_mono_ms() + a->cfg.watch_interval_ms;
		pthread_mutex_lock(&a->lock);
		wait_until(a, until_ms, true);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static void *gpu_thread(void *arg)
{
	struct agent *a = arg;
	struct agent_nvml *nv;

	agent_loop(a, gpu_round);
	/* closed here, not by agent__fini: agent__stop waits for this thread
	 * a bounded time, so a hanging nvmlShutdown cannot hang the exit */
	pthread_mutex_lock(&a->lock);
	nv = a->nvml;
	a->nvml = NULL;
	pthread_mutex_unlock(&a->lock);
	nvml_close(a, nv);
	return NULL;
}

int agent__start(struct agent *a)
{
	pthread_condattr_t ca;
	int err;

	/* the wait above uses CLOCK_MONOTONIC deadlines */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&a->wake);
	pthread_cond_init(&a->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (!a->cfg.no_nvml) {
		err = -pthread_create(&a->gpu_thread, NULL, gpu_thread, a);
		if (err)
			return err;
		a->gpu_thread_started = true;
	}
	err = -pthread_create(&a->thread, NULL, collector, a);
	if (!err)
		a->thread_started = true;
	else
		agent__stop(a);
	return err;
}

void agent__stop(struct agent *a)
{
	struct timespec ts;

	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->wake);
	pthread_mutex_unlock(&a->lock);
	/* a load under way gives up (load_progress) */
	if (a->load_joinable)
		pthread_join(a->load_thread, NULL);
	a->load_joinable = false;
	if (!a->thread_started && !a->gpu_thread_started)
		return;
	if (a->thread_started)
		pthread_join(a->thread, NULL);
	a->thread_started = false;
	if (!a->gpu_thread_started)
		return;
	/* a GPU thread stuck in the driver is not waited for: stopping the
	 * agent must not hang on NVML either */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	if (pthread_timedjoin_np(a->gpu_thread, NULL, &ts)) {
		const char *call;

		/* the thread may be back and freeing a->nvml: a string
		 * literal is all that leaves the lock */
		pthread_mutex_lock(&a->lock);
		call = nvml_busy_name(a);
		pthread_mutex_unlock(&a->lock);
		pr_warn("NVML still busy at exit (%s), not waited for\n", call);
		pthread_detach(a->gpu_thread);
		a->gpu_thread_stuck = true;
	}
	a->gpu_thread_started = false;
}

/* ---- model loads (POST /v1/load) ---- */

/* a load under way gives up when the agent stops */
static int load_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const struct agent *a = ud;

	return __atomic_load_n(&a->stop, __ATOMIC_RELAXED);
}

/* p was not polling when the unload was asked, or has stopped since
 * (silent AGENT_POLLER_GONE_MS): not waited for. Under a->lock. */
static bool poller_gone(const struct agent *a, const struct agent_poller *p, uint64_t now)
{
	/* now may be older than its last poll: read before the lock that
	 * poll's agent__served() took first (a wrap would count a balancer
	 * that polls, and holds connections, as gone) */
	return p->last_ms + AGENT_POLLER_GONE_MS < a->load.started_ms ||
	       (now > p->last_ms && now - p->last_ms > AGENT_POLLER_GONE_MS);
}

/* every balancer that was polling when the unload was asked has fetched
 * a report since (poller_gone() ones aside). Under a->lock. */
static bool drain_fenced(const struct agent *a, uint64_t now)
{
	for (int i = 0; i < a->npollers; i++) {
		const struct agent_poller *p = &a->pollers[i];

		if (p->seq > a->load.mark_seq || poller_gone(a, p, now))
			continue; /* has it, or not waited for */
		return false;
	}
	return true;
}

/* sleep ms, or less when the agent stops: false then */
static bool nap(struct agent *a, uint64_t ms)
{
	bool go_on;

	pthread_mutex_lock(&a->lock);
	wait_until(a, clock_mono_ms() + ms, false);
	go_on = !a->stop;
	pthread_mutex_unlock(&a->lock);
	return go_on;
}

/*
 * The connections of the unload's model that the balancers polling here
 * still hold to this node, as they stated them (AR_OPEN_HEADER) on a poll
 * after fetching a report that says it is unloading: true when none is
 * open, or *open (the sum, or -1 where a balancer has not stated it yet).
 * A client that states nothing counts no connections and is not waited
 * for. Under a->lock.
 */
static bool drain_closed(const struct agent *a, uint64_t now, long *open)
{
	bool closed = true;

	*open = 0;
	for (int i = 0; i < a->npollers; i++) {
		const struct agent_poller *p = &a->pollers[i];

		if (poller_gone(a, p, now) || !p->counts)
			continue; /* not polling, or counts nothing */
		if (p->open_seq <= a->load.mark_seq || strcmp(p->open_model, a->load.model)) {
			*open = -1; /* not stated for this unload yet */
			closed = false;
		} else if (p->open > 0) {
			if (*open >= 0)
				*open += p->open;
			closed = false;
		}
	}
	return closed;
}

/*
 * an unload's drain (struct agent_load): the balancers' tables, then
 * their connections of the model, then drain_ms; false when the agent
 * stops
 */
static bool drain(struct agent *a, const char *url, const char *model)
{
	uint64_t t0 = clock_mono_ms(), t1;
	bool fenced = false, closed;
	unsigned int wait_ms;
	long open = -1;

	while (!fenced) {
		pthread_mutex_lock(&a->lock);
		fenced = drain_fenced(a, clock_mono_ms());
		pthread_mutex_unlock(&a->lock);
		if (!fenced && !nap(a, 10))
			return false;
	}
	t1 = clock_mono_ms();
	pthread_mutex_lock(&a->lock);
	/* still served elsewhere on this node (no report said unloading):
	 * none to wait for; not waited for (a timeout of 0): as said so far */
	closed = !a->load.flagged || drain_closed(a, t1, &open);
	a->load.open = closed ? 0 : open;
	wait_ms = a->load.open_wait_ms;
	closed |= !wait_ms;
	pthread_mutex_unlock(&a->lock);
	pr_info("%s: every balancer polling has %s gone after %llu ms%s\n", url, model,
		(unsigned long long)(t1 - t0),
		closed ? "" : "; waiting for the connections of it they hold to close");
	while (!closed) {
		uint64_t now = clock_mono_ms();

		pthread_mutex_lock(&a->lock);
		closed = drain_closed(a, now, &open);
		a->load.open = closed ? 0 : open;
		if (!closed && now - t1 >= wait_ms) {
			a->load.open_timed_out = true;
			pthread_mutex_unlock(&a->lock);
			if (open >= 0)
				pr_warn("%s: %ld connection(s) of %s still open after %u ms; "
					"unloading\n",
					url, open, model, wait_ms);
			else
				pr_warn(
				    "%s: a balancer has not said whether it holds connections of "
				    "%s after %u ms; unloading\n",
				    url, model, wait_ms);
			break;
		}
		pthread_mutex_unlock(&a->lock);
		if (closed)
			pr_info("%s: no balancer holds a connection of %s after %llu ms\n", url,
				model, (unsigned long long)(now - t1));
		else if (!nap(a, 10))
			return false;
	}
	pthread_mutex_lock(&a->lock);
	a->load.draining = false;
	pthread_mutex_unlock(&a->lock);
	pr_info("%s: unloading %s in %u ms\n", url, model, a->cfg.drain_ms);
	return nap(a, a->cfg.drain_ms);
}

/*
 * The engine's own load and unload calls: vLLM's runtime adapter API
 * (POST /v1/load_lora_adapter and /v1/unload_lora_adapter, with
 * VLLM_ALLOW_RUNTIME_LORA_UPDATING), Ollama's generate call without a
 * prompt, which loads the model and keeps it, or with keep_alive 0, which
 * unloads it. An unload drains first (struct agent_load).
 */
static void *load_thread(void *arg)
{
	struct agent *a = arg;
	struct curl_slist *hdr = NULL;
	struct fetch f = {0};
	char model[AR_MODEL_LEN], url[AR_URL_LEN], kind[16], path[PATH_MAX], err[160] = "";
	const char *what, *api;
	bool ollama, unload;
	json_t *req;
	char *body = NULL;
	uint64_t t0;

	pthread_mutex_lock(&a->lock);
	memcpy(model, a->load.model, sizeof(model));
	memcpy(url, a->load.server, sizeof(url));
	memcpy(kind, a->load.kind, sizeof(kind));
	t0 = a->load.started_ms;
	unload = a->load.unload;
	pthread_mutex_unlock(&a->lock);
	ollama = !strcmp(kind, "ollama");
	what = unload ? "unload" : "load";
	if (ollama)
		api = "/api/generate";
	else
		api = unload ? "/v1/unload_lora_adapter" : "/v1/load_lora_adapter";
	if (ollama && unload)
		req = json_pack("{s:s, s:i, s:b}", "model", model, "keep_alive", 0, "stream", 0);
	else if (ollama)
		req = json_pack("{s:s, s:b}", "model", model, "stream", 0);
	else if (a->cfg.lora_dir && !unload)
		req = json_pack("{s:s, s:s}", "lora_name", model, "lora_path",
				snprintf(path, sizeof(path), "%s/%s", a->cfg.lora_dir, model) <
					(int)sizeof(path)
				    ? path
				    : "");
	else
		req = json_pack("{s:s}", "lora_name", model);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	hdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (unload && !drain(a, url, model)) {
		snprintf(err, sizeof(err), "the agent stopped while draining");
	} else if (!body || !hdr || fetch_setup(&f, url, api, a->cfg.load_timeout_ms)) {
		snprintf(err, sizeof(err), "out of memory");
	} else {
		curl_easy_setopt(f.h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(f.h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(f.h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(f.h, CURLOPT_XFERINFOFUNCTION, load_progress);
		curl_easy_setopt(f.h, CURLOPT_XFERINFODATA, a);
		fetch_one(&f);
		fetch_error(&f, what, err, sizeof(err));
	}
	if (err[0])
		pr_warn("%s: %sing %s failed after %llu ms: %s%s%.*s\n", url, what, model,
			(unsigned long long)(clock_mono_ms() - t0), err, f.body.len ? ": " : "",
			(int)(f.body.len < 120 ? f.body.len : 120), http_body__str(&f.body));
	else
		pr_info("%s: %sed %s in %llu ms\n", url, what, model,
			(unsigned long long)(clock_mono_ms() - t0));
	pthread_mutex_lock(&a->lock);
	a->load.busy = false;
	a->load.ended_ms = clock_mono_ms();
	a->load.status = f.status;
	snprintf(a->load.error, sizeof(a->load.error), "%s", err);
	/* still there after a failed unload: reported as it is again; gone,
	 * hidden until the lists say so (unload_seen()) */
	if (unload && err[0])
		a->load.hidden = false;
	a->load.hide_until_ms = clock_mono_ms() + AGENT_UNLOAD_HIDE_MS;
	/* the collector sees the lists change at its next watch of them
	 * (--watch-interval-ms), else at its next round: woken here, its
	 * wait goes on unless a stop or a notify was asked meanwhile */
	pthread_cond_broadcast(&a->wake);
	pthread_mutex_unlock(&a->lock);
	fetch_clean(&f, NULL);
	curl_slist_free_all(hdr);
	free(body);
	json_decref(req);
	return NULL;
}

/* an engine with a load call */
static bool can_load(const struct agent_server *w)
{
	return !strcmp(w->s.kind, "vllm") || !strcmp(w->s.kind, "ollama");
}

/*
 * Whether a load or unload of model may begin: -ESHUTDOWN the agent stops;
 * another one runs: -EINPROGRESS the same one asked again (or by another
 * balancer; *server: where), -EBUSY another. 0 it may. Under a->lock.
 */
static int op_check(struct agent *a, const char *model, bool unload, char *server, size_t serverlen,
		    char *msg, size_t msglen)
{
	if (a->stop) {
		snprintf(msg, msglen, "the agent is stopping");
		return -ESHUTDOWN;
	}
	if (!a->load.busy)
		return 0;
	snprintf(msg, msglen, "%sloading %s on %s for %llu ms", a->load.unload ? "un" : "",
		 a->load.model, a->load.server,
		 (unsigned long long)(clock_mono_ms() - a->load.started_ms));
	if (strcmp(a->load.model, model) || a->load.unload != unload)
		return -EBUSY;
	snprintf(server, serverlen, "%s", a->load.server);
	return -EINPROGRESS;
}

/* start the thread that loads or unloads model on w. Under a->lock. */
static int op_start(struct agent *a, const struct agent_server *w, const char *model, bool unload,
		    char *msg, size_t msglen)
{
	int err;

	if (a->load_joinable) {
		/* the last one's thread has ended (busy is false) */
		pthread_join(a->load_thread, NULL);
		a->load_joinable = false;
	}
	memset(&a->load, 0, sizeof(a->load));
	snprintf(a->load.model, sizeof(a->load.model), "%s", model);
	snprintf(a->load.server, sizeof(a->load.server), "%s", w->s.url);
	snprintf(a->load.kind, sizeof(a->load.kind), "%s", w->s.kind);
	a->load.started_ms = clock_mono_ms();
	a->load.busy = true;
	a->load.unload = unload;
	a->load.hidden = unload;
	a->load.draining = unload;
	a->load.open = -1;
	a->load.mark_seq = a->report_seq;
	err = -pthread_create(&a->load_thread, NULL, load_thread, a);
	if (err) {
		a->load.busy = false;
		a->load.hidden = false;
		snprintf(msg, msglen, "cannot start the %sload: %s", unload ? "un" : "",
			 strerror(-err));
		return err;
	}
	a->load_joinable = true;
	msg[0] = '\0';
	pr_info("%s: %s %s (asked)\n", w->s.url, unload ? "draining, then unloading" : "loading",
		model);
	if (unload) {
		/* the controllers poll now rather than at their next round */
		a->notify_asked = true;
		pthread_cond_broadcast(&a->wake);
	}
	return 0;
}

int agent__load(struct agent *a, const char *model, char *server, size_t serverlen, char *msg,
		size_t msglen)
{
	const struct agent_server *pick = NULL;
	int err;

	pthread_mutex_lock(&a->lock);
	err = op_check(a, model, false, server, serverlen, msg, msglen);
	if (err)
		goto out;
	for (int i = 0; i < a->cfg.nservers; i++) {
		const struct agent_server *w = &a->servers[i];

		if (!w->s.up)
			continue;
		/* held in every way the report counts: a LoRA adapter running,
		 * Ollama's loaded models (its /api/tags lists what it could
		 * load, none resident) */
		if (server_holds(w, model)) {
			snprintf(server, serverlen, "%s", w->s.url);
			snprintf(msg, msglen, "%s is resident on %s", model, w->s.url);
			err = -EALREADY;
			goto out;
		}
		for (int k = 0; k < w->nmodels; k++) {
			if (strcmp(w->models[k].name, model))
				continue;
			if (can_load(w) && !pick)
				pick = w;
		}
	}
	/* not listed (vLLM lists only adapters it has loaded): the first
	 * server up that can load */
	for (int i = 0; i < a->cfg.nservers && !pick; i++)
		if (a->servers[i].s.up && can_load(&a->servers[i]))
			pick = &a->servers[i];
	if (!pick) {
		snprintf(msg, msglen, "no model server up here can load models (vLLM, Ollama)");
		err = -EOPNOTSUPP;
		goto out;
	}
	err = op_start(a, pick, model, false, msg, msglen);
	if (!err)
		snprintf(server, serverlen, "%s", pick->s.url);
out:
	pthread_mutex_unlock(&a->lock);
	return err;
}

int agent__unload(struct agent *a, const char *model, long open_wait_ms, char *server,
		  size_t serverlen, char *msg, size_t msglen)
{
	const struct agent_server *pick = NULL, *other = NULL;
	int err;

	pthread_mutex_lock(&a->lock);
	err = op_check(a, model, true, server, serverlen, msg, msglen);
	if (err)
		goto out;
	for (int i = 0; i < a->cfg.nservers && !pick; i++) {
		const struct agent_server *w = &a->servers[i];

		if (!w->s.up || !server_holds(w, model))
			continue;
		if (can_load(w))
			pick = w;
		else if (!other)
			other = w;
	}
	if (!pick && other) {
		snprintf(server, serverlen, "%s", other->s.url);
		snprintf(msg, msglen, "%s runs %s on %s, which has no unload call (vLLM, Ollama)",
			 model, other->s.kind[0] ? other->s.kind : "an unknown engine",
			 other->s.url);
		err = -EOPNOTSUPP;
		goto out;
	}
	if (!pick) {
		snprintf(msg, msglen, "%s is not resident on any model server up here", model);
		err = -EALREADY;
		goto out;
	}
	err = op_start(a, pick, model, true, msg, msglen);
	if (!err) {
		/* the thread reads it under a->lock, after the fence */
		a->load.open_wait_ms =
		    open_wait_ms < 0 ? a->cfg.drain_timeout_ms : (unsigned int)open_wait_ms;
		snprintf(server, serverlen, "%s", pick->s.url);
	}
out:
	pthread_mutex_unlock(&a->lock);
	return err;
}

void agent__load_state(struct agent *a, struct agent_load *out)
{
	pthread_mutex_lock(&a->lock);
	*out = a->load;
	pthread_mutex_unlock(&a->lock);
}

void agent__served(struct agent *a, const char *addr, uint64_t seq, const char *open)
{
	uint64_t now = clock_mono_ms();
	struct agent_poller *p = NULL;
	char model[AR_MODEL_LEN];
	bool counts;
	long n = 0;

	/* a value that does not parse states nothing */
	counts = open && !agent_report__parse_open(open, &n, model, sizeof(model));

	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < a->npollers && !p; i++)
		if (!strcmp(a->pollers[i].addr, addr))
			p = &a->pollers[i];
	if (!p && a->npollers < AGENT_POLLERS)
		p = &a->pollers[a->npollers++];
	if (!p) {
		/* full: the one silent longest makes room */
		p = &a->pollers[0];
		for (int i = 1; i < a->npollers; i++)
			if (a->pollers[i].last_ms < p->last_ms)
				p = &a->pollers[i];
	}
	if (strcmp(p->addr, addr)) {
		snprintf(p->addr, sizeof(p->addr), "%s", addr);
		p->seq = 0;
		p->counts = false;
	}
	p->last_ms = now;
	/* the count is of the report it fetched before this one. A poll that
	 * states none changes nothing: another client on the balancer's host
	 * (an operator's curl) must not end the wait for its connections */
	if (counts) {
		p->counts = true;
		p->open = n;
		snprintf(p->open_model, sizeof(p->open_model), "%s", model);
		p->open_seq = p->seq;
	}
	if (seq > p->seq)
		p->seq = seq;
	pthread_mutex_unlock(&a->lock);
}

void agent__put_hints(struct agent *a, const struct ar_hint *h, int n)
{
	pthread_mutex_lock(&a->lock);
	agent_hints__tick(&a->hints, clock_mono_ms(), node_kv(a));
	for (int i = 0; i < n; i++)
		agent_hints__put(&a->hints, &h[i]);
	pthread_mutex_unlock(&a->lock);
}

/* ---- the report ---- */

static void add_model(struct agent_report *r, const char *name, bool resident, const char *url)
{
	for (int i = 0; i < r->nmodels; i++) {
		if (!strcmp(r->models[i].name, name)) {
			/* on two servers: servable if either has it loaded */
			if (resident && !r->models[i].resident) {
				r->models[i].resident = true;
				snprintf(r->models[i].server, sizeof(r->models[i].server), "%s",
					 url);
			}
			return;
		}
	}
	if (r->nmodels >= AR_MAX_MODELS) {
		/* said on the server's line, not dropped unseen: the
		 * controller would take the model for absent here */
		for (int i = 0; i < r->nservers; i++)
			if (!strcmp(r->servers[i].url, url) && !r->servers[i].error[0])
				snprintf(r->servers[i].error, sizeof(r->servers[i].error),
					 "model '%.40s' and any after it not reported: a report "
					 "carries %d",
					 name, AR_MAX_MODELS);
		return;
	}
	snprintf(r->models[r->nmodels].name, AR_MODEL_LEN, "%s", name);
	snprintf(r->models[r->nmodels].server, AR_URL_LEN, "%s", url);
	r->models[r->nmodels++].resident = resident;
}

/* hide: a model being unloaded there (struct agent_load), NULL none */
static void add_loras(struct agent_report *r, const struct agent_server *srv, bool up,
		      const char *hide)
{
	for (int i = 0; i < srv->nloras; i++)
		add_model(r, srv->loras[i], up && !(hide && !strcmp(hide, srv->loras[i])),
			  srv->s.url);
	/* Ollama's loaded models are on its metrics answer (/api/ps) */
	if (!strcmp(srv->s.kind, "ollama"))
		for (int i = 0; i < srv->npage_models; i++)
			add_model(r, srv->page_models[i],
				  up && !(hide && !strcmp(hide, srv->page_models[i])), srv->s.url);
}

int agent__report(struct agent *a, struct agent_report *r)
{
	return agent__report_seq(a, r, NULL);
}

/* a hint of a model's cache whose model r does not hold resident */
static bool hint_model_gone(const struct ar_hint *h, void *arg)
{
	const struct agent_report *r = arg;

	if (!h->model[0])
		return false;
	for (int i = 0; i < r->nmodels; i++)
		if (!strcmp(r->models[i].name, h->model))
			return !r->models[i].resident;
	return true;
}

int agent__report_seq(struct agent *a, struct agent_report *r, uint64_t *seq)
{
	const char *hide = NULL;
	double q = 0, inflight = 0, hit = 0, ttft = 0, e2e = 0, run = 0, pf = 0, pft = 0, pt = 0;
	double slots = 0;
	int nq = 0, nin = 0, nhit = 0, nttft = 0, ne2e = 0, nrun = 0, npf = 0, npt = 0;
	uint64_t now;
	/* unseen: an up server whose requests in flight are unknown (its
	 * running count unread: a Triton without TensorRT-LLM's figures, a
	 * llama.cpp without --metrics) */
	bool fresh = false, unstated = false, unseen = false;

	agent_report__init(r);
	snprintf(r->node, sizeof(r->node), "%s", a->cfg.name);
	snprintf(r->version, sizeof(r->version), "%s", AGENT_VERSION);
	r->timestamp_ms = clock_wall_ms();

	pthread_mutex_lock(&a->lock);
	now = clock_mono_ms();
	if (seq)
		*seq = ++a->report_seq;
	if (a->load.hidden && !a->load.busy && now > a->load.hide_until_ms) {
		/* the engine unloaded it and lists it still, or had it loaded
		 * again by a request: what it lists is what it holds */
		pr_warn("%s: %s still listed %d ms after its unload\n", a->load.server,
			a->load.model, AGENT_UNLOAD_HIDE_MS);
		a->load.hidden = false;
	}
	if (a->load.hidden)
		hide = a->load.model;
	r->nvml = a->nvml_ok;
	if (a->nvml_busy_ms && now - a->nvml_busy_ms > a->cfg.nvml_deadline_ms) {
		/* the GPU thread is stuck in the driver: what it last read is no
		 * longer news; a->nvml cannot go away while it is in there */
		r->nvml = false;
		snprintf(r->nvml_error, sizeof(r->nvml_error),
			 "NVML call %s has not returned for %llu ms", nvml_busy_name(a),
			 (unsigned long long)(now - a->nvml_busy_ms));
	} else if (a->nvml_ok) {
		r->ngpus = a->ngpus;
		r->gpus_omitted = a->gpus_omitted;
		memcpy(r->gpus, a->gpus, a->ngpus * sizeof(a->gpus[0]));
	} else {
		snprintf(r->nvml_error, sizeof(r->nvml_error), "%s",
			 a->nvml_error[0] ? a->nvml_error : "NVML not sampled yet");
	}
	snprintf(r->accel, sizeof(r->accel), "%s",
		 a->cfg.accel	? a->cfg.accel
		 : a->gpus_seen ? "gpu"
				: "cpu");

	r->nservers = a->cfg.nservers;
	for (int i = 0; i < a->cfg.nservers; i++) {
		const struct agent_server *srv = &a->servers[i];
		struct ar_server *s = &r->servers[i];
		const char *h = hide && !strcmp(a->load.server, srv->s.url) ? hide : NULL;
		bool up, listed;

		*s = srv->s;
		s->slots = srv->slots_cfg      ? (double)srv->slots_cfg
			   : srv->slots_engine ? (double)srv->slots_engine
					       : -1;
		s->age_ms = now - (srv->last_ok_ms ? srv->last_ok_ms : a->start_ms);
		up = srv->s.up && s->age_ms <= a->cfg.stale_ms;
		s->up = up;
		if (srv->s.up && !up)
			snprintf(s->error, sizeof(s->error), "no scrape for %llu ms",
				 (unsigned long long)s->age_ms);
		/* a list not read for stale_ms is no news of what is loaded
		 * now: its models are listed, not resident, but for those
		 * the metrics page names (model_name labels) */
		listed = srv->models_ok_ms && now - srv->models_ok_ms <= a->cfg.stale_ms;
		if (up && !listed) {
			char why[sizeof(s->error)];

			snprintf(why, sizeof(why), "%s", s->error);
			if (srv->models_ok_ms)
				snprintf(s->error, sizeof(s->error),
					 "model list unread for %llu ms%s%.64s",
					 (unsigned long long)(now - srv->models_ok_ms),
					 why[0] ? ": " : "", why);
			else
				snprintf(s->error, sizeof(s->error),
					 "model list not read from this server process%s%.64s",
					 why[0] ? ": " : "", why);
		}
		for (int k = 0; k < srv->nmodels; k++)
			add_model(r, srv->models[k].name,
				  up && listed && srv->models[k].resident &&
				      !(h && !strcmp(h, srv->models[k].name)),
				  s->url);
		add_loras(r, srv, up, h);
		for (int k = 0;
		     up && !listed && strcmp(srv->s.kind, "ollama") && k < srv->npage_models; k++)
			add_model(r, srv->page_models[k], !(h && !strcmp(h, srv->page_models[k])),
				  s->url);
		if (!up)
			continue;
		fresh = true;
		if (s->queue_depth >= 0) {
			q += s->queue_depth;
			nq++;
		}
		/* the node's in flight: every up server's running and waiting,
		 * or unknown where one's running is (a sum without it would
		 * call a busy node idle: in_flight 0 is idle to aibld) */
		if (s->running >= 0) {
			inflight += fmax(s->queue_depth, 0) + s->running;
			nin++;
		} else {
			unseen = true;
		}
		if (s->kv_cache_usage >= 0)
			r->kv_cache_usage = fmax(r->kv_cache_usage, s->kv_cache_usage);
		if (s->prefix_cache_hit_rate >= 0) {
			hit += s->prefix_cache_hit_rate;
			nhit++;
		}
		if (s->ttft_avg_ms >= 0) {
			ttft += s->ttft_avg_ms;
			nttft++;
		}
		if (s->e2e_avg_ms >= 0) {
			e2e += s->e2e_avg_ms;
			ne2e++;
		}
		if (s->run_avg_ms >= 0) {
			run += s->run_avg_ms;
			nrun++;
		}
		/* the two figures of the same servers */
		if (s->prefill_avg_ms >= 0 && s->prefill_tokens_avg >= 0) {
			pf += s->prefill_avg_ms;
			pft += s->prefill_tokens_avg;
			npf++;
		}
		if (s->prompt_tokens_avg >= 0) {
			pt += s->prompt_tokens_avg;
			npt++;
		}
		r->since_finish_ms = fmax(r->since_finish_ms, s->since_finish_ms);
		if (s->probe_ms_per_token > 0 &&
		    (r->probe_ms_per_token < 0 || s->probe_ms_per_token < r->probe_ms_per_token))
			r->probe_ms_per_token = s->probe_ms_per_token;
		/* the node's: every up server's, or unknown (a server whose
		 * limit is neither stated nor said may run any number) */
		if (s->slots >= 1 && !unstated)
			slots += s->slots;
		else
			unstated = true;
	}
	/* servers' sums held within the report's bound (AR_MAX_FIGURE) */
	r->queue_depth = nq ? agent_report__figure(q) : -1;
	r->in_flight = nin && !unseen ? agent_report__figure(inflight) : -1;
	r->prefix_cache_hit_rate = nhit ? hit / nhit : -1;
	r->ttft_avg_ms = nttft ? ttft / nttft : -1;
	r->e2e_avg_ms = ne2e ? e2e / ne2e : -1;
	r->run_avg_ms = nrun ? run / nrun : -1;
	r->prefill_avg_ms = npf ? pf / npf : -1;
	r->prefill_tokens_avg = npf ? pft / npf : -1;
	r->prompt_tokens_avg = npt ? pt / npt : -1;
	r->slots = fresh && !unstated ? slots : -1;
	r->stale = !fresh;
	/* being unloaded (drained, then the engine's unload until it answers)
	 * and served nowhere else here: the balancers state their open
	 * connections of it on their next polls, and know it is not gone yet
	 * (nor loadable: a load asked now would meet this one) */
	for (int i = 0; hide && a->load.unload && a->load.busy && i < r->nmodels; i++) {
		if (strcmp(r->models[i].name, hide) || r->models[i].resident)
			continue;
		r->models[i].unloading = true;
		a->load.flagged = true;
	}

	/* a model no longer resident here (unloaded, evicted, unloading, its
	 * list aged out) took its sessions' KV along: their hints go for
	 * good. Only left out of this report, they came back with the model,
	 * and pinned the sessions to a cold cache */
	agent_hints__drop_if(&a->hints, hint_model_gone, r);
	agent_hints__tick(&a->hints, now, node_kv(a));
	if (a->hints.n) {
		r->hints = calloc(a->hints.n, sizeof(*r->hints));
		if (!r->hints) {
			pthread_mutex_unlock(&a->lock);
			return -ENOMEM;
		}
		r->nhints = agent_hints__export(&a->hints, r->hints, a->hints.n);
	}
	pthread_mutex_unlock(&a->lock);
	return 0;
}
