// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The chat workload: multi-turn sessions on one libcurl multi loop.
 *
 * A session arrives at a time drawn from a Poisson process (an arrival is a
 * burst of --burst-size sessions with probability --burst-prob), picks a
 * model by weight and a client address, then runs its turns one after the
 * other with an exponential think time between them. Every turn resends the
 * whole conversation: a long per-session context (system message), all
 * previous user messages and the replies the server streamed back, plus a
 * new user message, so a server holding the session's prefix cache only
 * has to prefill the new part. Each turn opens a new connection unless
 * --keepalive, so an L4 balancer chooses a node for every turn.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <jansson.h>
#include "loadgen.h"
#include "log.h"

enum lg_sess_state { LG_S_WAIT, LG_S_BUSY, LG_S_DONE };

struct lg_session {
	uint32_t idx, turn;
	int model;
	enum lg_sess_state state;
	double due_ms;
	char url[LG_URL_LEN + 32];
	char iface[INET6_ADDRSTRLEN + 8];
	char sid[48];
	json_t *messages;
	struct lg_rng rng;
	struct lg_xfer *x; /* the turn in flight */
};

struct lg_xfer {
	CURL *h;
	struct lg_session *s;
	struct curl_slist *hdrs;
	char *body;
	double t0, tfirst;
	struct lg_sse sse;
	char *reply;
	size_t rlen, rcap;
	uint32_t tokens;
	long status;
	long u_completion, u_prompt, u_cached; /* from the usage object, -1 unknown */
	long h_prompt, h_cached;	       /* from X-Simnode-* headers, -1 unknown */
	bool cold, done_seen, bad_event;
	char node[LG_NAME_LEN];
	char errbuf[CURL_ERROR_SIZE];
	char errbody[160];
	size_t errlen;
};

static const char *const lg_words[] = {
    "the",    "model",	"token",   "cache",   "prefix", "node",	    "request", "latency",
    "batch",  "memory", "context", "session", "answer", "question", "vector",  "layer",
    "weight", "kernel", "packet",  "table",   "hash",	"route",    "queue",   "server",
    "client", "stream", "prompt",  "reply",   "gpu",	"load",	    "time",    "first",
    "and",    "of",	"to",	   "in",      "is",	"for",	    "with",    "on",
    "a",      "that",	"this",	   "by",      "from",	"as",	    "we",      "it",
    "an",     "be",	"fast",	   "slow",    "warm",	"cold",	    "large",   "small",
    "high",   "low",	"new",	   "old",     "each",	"every",    "some",    "more",
};

/* about `tokens` tokens of text at chars_per_token characters each */
static int lg_text(struct lg_rng *r, uint32_t tokens, double cpt, const char *prefix, char **out)
{
	size_t want = (size_t)(tokens * cpt), len = 0, cap = want + 64;
	char *s = malloc(cap);

	if (!s)
		return -ENOMEM;
	len = snprintf(s, cap, "%s", prefix);
	while (len < want) {
		const char *w =
		    lg_words[lg_rng__next(r) % (sizeof(lg_words) / sizeof(lg_words[0]))];
		size_t n = strlen(w);

		if (len + n + 2 >= cap) {
			char *p = realloc(s, cap * 2 + n);

			if (!p) {
				free(s);
				return -ENOMEM;
			}
			s = p;
			cap = cap * 2 + n;
		}
		if (len)
			s[len++] = ' ';
		memcpy(s + len, w, n + 1);
		len += n;
	}
	*out = s;
	return 0;
}

static int lg_msg_append(json_t *msgs, const char *role, const char *text)
{
	json_t *m = json_pack("{s:s, s:s}", "role", role, "content", text);

	if (!m || json_array_append_new(msgs, m))
		return -ENOMEM;
	return 0;
}

static size_t lg_xfer_header(char *b, size_t size, size_t n, void *ud)
{
	struct lg_xfer *x = ud;
	size_t len = size * n, k;
	char line[256], *v;

	k = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
	memcpy(line, b, k);
	line[k] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	v = strchr(line, ':');
	if (!v)
		return len;
	*v++ = '\0';
	v += strspn(v, " \t");
	if (!strcasecmp(line, "X-Aibl-Node"))
		snprintf(x->node, sizeof(x->node), "%s", v);
	else if (!strcasecmp(line, "X-Simnode-Cached-Tokens"))
		x->h_cached = strtol(v, NULL, 10);
	else if (!strcasecmp(line, "X-Simnode-Prompt-Tokens"))
		x->h_prompt = strtol(v, NULL, 10);
	else if (!strcasecmp(line, "X-Simnode-Cold-Start"))
		x->cold = !strcmp(v, "1");
	return len;
}

static long lg_json_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long)json_integer_value(v) : -1;
}

static int lg_xfer_event(const char *payload, void *ctx)
{
	struct lg_xfer *x = ctx;
	json_t *ev, *choice, *content, *usage;
	const char *text;
	size_t n;

	if (!strcmp(payload, "[DONE]")) {
		x->done_seen = true;
		return 0;
	}
	ev = json_loads(payload, 0, NULL);
	if (!json_is_object(ev)) {
		x->bad_event = true;
		json_decref(ev);
		return 0;
	}
	choice = json_array_get(json_object_get(ev, "choices"), 0);
	content = json_object_get(json_object_get(choice, "delta"), "content");
	text = json_string_value(content);
	if (text && text[0]) {
		if (!x->tfirst)
			x->tfirst = clock_mono_msf();
		x->tokens++;
		n = strlen(text);
		if (x->rlen + n + 1 > x->rcap) {
			size_t cap = (x->rlen + n + 1) * 2;
			char *p = realloc(x->reply, cap);

			if (!p) {
				json_decref(ev);
				return -ENOMEM;
			}
			x->reply = p;
			x->rcap = cap;
		}
		memcpy(x->reply + x->rlen, text, n + 1);
		x->rlen += n;
	}
	usage = json_object_get(ev, "usage");
	if (json_is_object(usage)) {
		x->u_completion = lg_json_int(usage, "completion_tokens");
		x->u_prompt = lg_json_int(usage, "prompt_tokens");
		x->u_cached =
		    lg_json_int(json_object_get(usage, "prompt_tokens_details"), "cached_tokens");
	}
	json_decref(ev);
	return 0;
}

static size_t lg_xfer_write(char *b, size_t size, size_t n, void *ud)
{
	struct lg_xfer *x = ud;
	size_t len = size * n, k;

	if (!x->status)
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status != 200) {
		/* keep the start of an error body for the message */
		k = sizeof(x->errbody) - 1 - x->errlen;
		if (k > len)
			k = len;
		memcpy(x->errbody + x->errlen, b, k);
		x->errlen += k;
		x->errbody[x->errlen] = '\0';
		return len;
	}
	if (lg_sse__feed(&x->sse, b, len, lg_xfer_event, x))
		return 0; /* out of memory: abort the transfer */
	return len;
}

static void lg_xfer_free(struct lg_xfer *x)
{
	if (!x)
		return;
	if (x->h)
		curl_easy_cleanup(x->h);
	curl_slist_free_all(x->hdrs);
	free(x->body);
	free(x->reply);
	lg_sse__free(&x->sse);
	free(x);
}

/* Common easy-handle options of both workloads. */
void lg_curl_common(void *h, const struct lg_common *c, const char *iface, char *errbuf)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (iface && iface[0])
		curl_easy_setopt(h, CURLOPT_INTERFACE, iface);
	if (c->timeout_ms > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	if (!c->keepalive) {
		curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	}
}

static int lg_turn_start(const struct lg_chat_cfg *cfg, CURLM *multi, struct lg_session *s)
{
	struct lg_xfer *x = calloc(1, sizeof(*x));
	char prefix[128], *text = NULL;
	json_t *req = NULL;
	int err = -ENOMEM;

	if (!x)
		return -ENOMEM;
	x->s = s;
	x->u_completion = x->u_prompt = x->u_cached = -1;
	x->h_prompt = x->h_cached = -1;
	snprintf(x->node, sizeof(x->node), "-");
	snprintf(prefix, sizeof(prefix), "Turn %u of %s:", s->turn + 1, s->sid);
	if (lg_text(&s->rng, cfg->turn_tokens, cfg->chars_per_token, prefix, &text) ||
	    lg_msg_append(s->messages, "user", text))
		goto out;
	req = json_pack("{s:s, s:O, s:b, s:{s:b}, s:i, s:s}", "model", cfg->models[s->model].name,
			"messages", s->messages, "stream", 1, "stream_options", "include_usage", 1,
			"max_tokens", (int)cfg->output_tokens, "user", s->sid);
	x->body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!x->body)
		goto out;
	x->h = curl_easy_init();
	if (!x->h)
		goto out;
	x->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	/* no "Expect: 100-continue" round trip before a long prompt */
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	snprintf(prefix, sizeof(prefix), "X-Session-Id: %s", s->sid);
	x->hdrs = curl_slist_append(x->hdrs, prefix);
	if (!x->hdrs)
		goto out;
	lg_curl_common(x->h, &cfg->c, s->iface, x->errbuf);
	curl_easy_setopt(x->h, CURLOPT_URL, s->url);
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, lg_xfer_header);
	curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, lg_xfer_write);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	x->t0 = clock_mono_msf();
	if (curl_multi_add_handle(multi, x->h) != CURLM_OK)
		goto out;
	s->state = LG_S_BUSY;
	s->x = x;
	err = 0;
out:
	json_decref(req);
	free(text);
	if (err) {
		if (json_array_size(s->messages))
			json_array_remove(s->messages, json_array_size(s->messages) - 1);
		lg_xfer_free(x);
	}
	return err;
}

static void lg_note_error(struct lg_run *run, const char *what, const char *why)
{
	if (!run->first_error[0])
		snprintf(run->first_error, sizeof(run->first_error), "%.120s: %.120s", what, why);
}

static int lg_turn_done(const struct lg_chat_cfg *cfg, struct lg_run *run, struct lg_xfer *x,
			CURLcode res, double t_run0)
{
	struct lg_session *s = x->s;
	struct lg_sample smp = {0};
	double now = clock_mono_msf();
	int node, err;

	if (!x->status)
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
	node = lg_names__intern(&run->nodes, x->node);
	if (node < 0)
		return node;
	smp.t_start_ms = x->t0 - t_run0;
	smp.e2e_ms = now - x->t0;
	smp.ttft_ms = x->tfirst ? x->tfirst - x->t0 : -1;
	smp.out_tokens = x->u_completion >= 0 ? x->u_completion : x->tokens;
	smp.prompt_tokens = x->u_prompt >= 0 ? x->u_prompt : x->h_prompt >= 0 ? x->h_prompt : 0;
	smp.cached_tokens = x->u_cached >= 0 ? x->u_cached : x->h_cached >= 0 ? x->h_cached : 0;
	smp.session = s->idx;
	smp.turn = s->turn;
	smp.node = node;
	smp.model = s->model;
	smp.status = res == CURLE_OK ? x->status : 0;
	smp.cold = x->cold;
	/* a later turn of a --keepalive session that opened a connection:
	 * its own was closed (or busy with another session of its address) */
	if (cfg->c.keepalive && s->turn > 0) {
		long nc = 0;

		curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &nc);
		smp.reconnect = nc > 0;
	}
	smp.ok = res == CURLE_OK && x->status == 200 && x->done_seen && !x->bad_event;
	if (!smp.ok) {
		char code[32];

		snprintf(code, sizeof(code), "HTTP %ld", x->status);
		if (res != CURLE_OK)
			lg_note_error(run, s->url,
				      x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
		else if (x->status != 200)
			lg_note_error(run, code, x->errbody);
		else
			lg_note_error(run, s->url,
				      x->bad_event ? "malformed stream event"
						   : "stream ended early");
	}
	err = lg_samples__add(&run->samples, &smp);
	if (err)
		return err;
	if (smp.ok) {
		err = lg_msg_append(s->messages, "assistant", x->reply ? x->reply : "");
		if (err)
			return err;
	} else {
		/* the failed turn leaves no trace in the conversation */
		json_array_remove(s->messages, json_array_size(s->messages) - 1);
	}
	s->turn++;
	if (s->turn >= cfg->turns) {
		s->state = LG_S_DONE;
		run->sessions_done++;
		json_decref(s->messages);
		s->messages = NULL;
	} else {
		s->state = LG_S_WAIT;
		s->due_ms =
		    now - t_run0 + (cfg->think_ms > 0 ? lg_rng__exp(&s->rng, cfg->think_ms) : 0);
	}
	return 0;
}

static int lg_sessions_init(const struct lg_chat_cfg *cfg, struct lg_session *ss)
{
	struct lg_rng arr, pick;
	double t = 0, wsum = 0, u;
	uint32_t i = 0, k, n;
	char *ctx = NULL, prefix[128];
	const char *base;
	int m;

	lg_rng__seed(&arr, cfg->c.seed, 0xa5a5);
	lg_rng__seed(&pick, cfg->c.seed, 0x5a5a);
	for (m = 0; m < cfg->nmodels; m++)
		wsum += cfg->models[m].weight;
	while (i < cfg->sessions) {
		if (cfg->rate > 0)
			t += lg_rng__exp(&arr, 1000.0 / cfg->rate);
		/* drawn for a calm session too: the same seed gives the
		 * same arrival times with or without a calm warm-up */
		n = lg_rng__uniform(&arr) < cfg->burst_prob ? cfg->burst_size : 1;
		if (i < cfg->calm_sessions)
			n = 1;
		for (k = 0; k < n && i < cfg->sessions; k++, i++) {
			struct lg_session *s = &ss[i];

			s->idx = i;
			s->due_ms = t;
			s->state = LG_S_WAIT;
			u = lg_rng__uniform(&pick) * wsum;
			for (m = 0; m < cfg->nmodels - 1 && u >= cfg->models[m].weight; m++)
				u -= cfg->models[m].weight;
			s->model = m;
			base = cfg->models[m].url[0] ? cfg->models[m].url
						     : cfg->c.targets[i % cfg->c.ntargets];
			snprintf(s->url, sizeof(s->url), "%s/v1/chat/completions", base);
			lg_addrs__interface(
			    &cfg->c.src, lg_url_family(base),
			    i / (cfg->sessions_per_source ? cfg->sessions_per_source : 1), s->iface,
			    sizeof(s->iface));
			snprintf(s->sid, sizeof(s->sid), "lg%llu-s%u",
				 (unsigned long long)cfg->c.seed, i);
			lg_rng__seed(&s->rng, cfg->c.seed, i + 1);
			s->messages = json_array();
			snprintf(prefix, sizeof(prefix), "Shared context of %s:", s->sid);
			if (!s->messages || lg_text(&s->rng, cfg->context_tokens,
						    cfg->chars_per_token, prefix, &ctx))
				return -ENOMEM;
			if (lg_msg_append(s->messages, "system", ctx)) {
				free(ctx);
				return -ENOMEM;
			}
			free(ctx);
			ctx = NULL;
		}
	}
	return 0;
}

int lg_chat__run(const struct lg_chat_cfg *cfg, struct lg_run *run)
{
	struct lg_session *ss = calloc(cfg->sessions ? cfg->sessions : 1, sizeof(*ss));
	struct lg_progress prog;
	CURLM *multi = curl_multi_init();
	double t0, now, next;
	size_t inflight = 0;
	bool stop_new = false;
	uint32_t i, left;
	int err = 0, running, m;
	CURLMsg *msg;

	run->mode = "chat";
	run->sessions_total = cfg->sessions;
	run->nmodels = cfg->nmodels;
	for (m = 0; m < cfg->nmodels; m++)
		run->model_names[m] = cfg->models[m].name;
	if (!ss || !multi) {
		err = -ENOMEM;
		goto out;
	}
	err = lg_sessions_init(cfg, ss);
	if (err)
		goto out;
	/* every session's connection waits in the cache between its turns:
	 * libcurl's default size (4 x the transfers added, here the turns in
	 * flight) closed most of them, and a --keepalive session reconnected
	 * about every other turn */
	if (cfg->c.keepalive)
		curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)cfg->sessions + 1);
	t0 = clock_mono_msf();
	run->start_unix_ms = clock_wall_msf();
	lg_progress__init(&prog, cfg->c.progress, t0);
	for (;;) {
		now = clock_mono_msf() - t0;
		if ((cfg->c.duration_s > 0 && now >= cfg->c.duration_s * 1e3) ||
		    (cfg->c.max_requests && run->started >= cfg->c.max_requests))
			stop_new = true;
		next = now + 100;
		left = 0;
		for (i = 0; i < cfg->sessions; i++) {
			struct lg_session *s = &ss[i];

			if (s->state != LG_S_WAIT)
				continue;
			if (stop_new) {
				/* unfinished: its remaining turns are not run */
				s->state = LG_S_DONE;
				continue;
			}
			left++;
			if (s->due_ms > now) {
				if (s->due_ms < next)
					next = s->due_ms;
				continue;
			}
			if (cfg->max_inflight && inflight >= cfg->max_inflight)
				continue;
			if (cfg->c.max_requests && run->started >= cfg->c.max_requests)
				continue;
			err = lg_turn_start(cfg, multi, s);
			if (err)
				goto out;
			inflight++;
			run->started++;
		}
		if (!inflight && !left)
			break;
		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &running))) {
			struct lg_xfer *x;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			err = lg_turn_done(cfg, run, x, msg->data.result, t0);
			curl_multi_remove_handle(multi, x->h);
			x->s->x = NULL;
			lg_xfer_free(x);
			inflight--;
			if (err)
				goto out;
		}
		now = clock_mono_msf();
		lg_progress__update(&prog, now, run, inflight, false);
		next -= now - t0;
		if (next > 100)
			next = 100;
		if (next < 0)
			next = 0;
		curl_multi_poll(multi, NULL, 0, (int)next, NULL);
	}
	run->wall_s = (clock_mono_msf() - t0) / 1e3;
	lg_progress__update(&prog, clock_mono_msf(), run, 0, true);
out:
	if (ss) {
		for (i = 0; i < cfg->sessions; i++) {
			/* on error: drop what is still in flight */
			if (ss[i].x) {
				curl_multi_remove_handle(multi, ss[i].x->h);
				lg_xfer_free(ss[i].x);
			}
			json_decref(ss[i].messages);
		}
	}
	if (multi)
		curl_multi_cleanup(multi);
	free(ss);
	if (err)
		pr_err("chat workload: %s\n", strerror(-err));
	return err;
}
