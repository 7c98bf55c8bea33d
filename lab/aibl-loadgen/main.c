// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-loadgen: command line. See loadgen.h for what the workloads do. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include "cliopt.h"
#include "loadgen.h"
#include "log.h"

/* --target URL[,URL..], into struct lg_common */
static int lg_opt_target(const char *arg, void *dst, char *msg, size_t msglen)
{
	char *copy = strdup(arg), *save = NULL, *t;
	struct lg_common *c = dst;
	int err = 0;

	if (!copy)
		return -ENOMEM;
	for (t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(t);

		while (n && t[n - 1] == '/')
			t[--n] = '\0';
		if (strncmp(t, "http://", 7) && strncmp(t, "https://", 8)) {
			snprintf(msg, msglen, "\"%s\" is not an http:// or https:// URL", t);
			err = -EINVAL;
			break;
		}
		if (c->ntargets >= LG_MAX_TARGETS || n >= LG_URL_LEN) {
			snprintf(msg, msglen, "at most %d URLs of %d characters", LG_MAX_TARGETS,
				 LG_URL_LEN - 1);
			err = -E2BIG;
			break;
		}
		snprintf(c->targets[c->ntargets++], LG_URL_LEN, "%s", t);
	}
	free(copy);
	return err;
}

/* --model NAME[:WEIGHT][=URL], into struct lg_chat_cfg */
static int lg_opt_model(const char *arg, void *dst, char *msg, size_t msglen)
{
	char buf[LG_NAME_LEN + LG_URL_LEN + 32], *url, *w, *end;
	struct lg_chat_cfg *cfg = dst;
	struct lg_model *m;
	double weight = 1;

	if (cfg->nmodels >= LG_MAX_MODELS || strlen(arg) >= sizeof(buf)) {
		snprintf(msg, msglen, "at most %d models, or too long", LG_MAX_MODELS);
		return -E2BIG;
	}
	snprintf(buf, sizeof(buf), "%s", arg);
	url = strchr(buf, '=');
	if (url)
		*url++ = '\0';
	w = strrchr(buf, ':');
	if (w) {
		*w++ = '\0';
		errno = 0;
		weight = strtod(w, &end);
		if (errno || *end || end == w || !(weight >= 0 && weight <= 1e9)) {
			snprintf(msg, msglen, "the weight \"%s\" is not a number 0..1e9", w);
			return -EINVAL;
		}
	}
	if (!buf[0] || strlen(buf) >= LG_NAME_LEN) {
		snprintf(msg, msglen, "a name of 1-%d characters", LG_NAME_LEN - 1);
		return -EINVAL;
	}
	if (url && strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		snprintf(msg, msglen, "\"%s\" is not an http:// or https:// URL", url);
		return -EINVAL;
	}
	m = &cfg->models[cfg->nmodels++];
	snprintf(m->name, sizeof(m->name), "%s", buf);
	m->weight = weight;
	if (url) {
		size_t n = strlen(url);

		while (n && url[n - 1] == '/')
			url[--n] = '\0';
		snprintf(m->url, sizeof(m->url), "%s", url);
	}
	return 0;
}

static int lg_opt_source(const char *arg, void *dst, char *msg, size_t msglen)
{
	return lg_addrs__parse(dst, arg, msg, msglen);
}

static int lg_opt_path(const char *arg, void *dst, char *msg, size_t msglen)
{
	if (arg[0] != '/' || strlen(arg) >= LG_URL_LEN) {
		snprintf(msg, msglen, "an absolute path under %d characters", LG_URL_LEN);
		return -EINVAL;
	}
	snprintf(dst, LG_URL_LEN, "%s", arg);
	return 0;
}

/* what the command line sets; chat.c and http.c are copied from c */
struct lg_opts {
	struct lg_common c;
	struct lg_chat_cfg chat;
	struct lg_http_cfg http;
	double rate; /* < 0: the workload's default */
	bool json, verbose;
};

enum { LG_CHAT = 1, LG_HTTP };

#define LG_OPT(name, type, m, ...) CLIOPT(name, type, struct lg_opts, m, __VA_ARGS__)
static const struct cliopt lg_rows[] = {
    LG_OPT("target", FUNC, c, .fn = lg_opt_target, .def = "http://127.0.0.1:8000",
	   .metavar = "URL[,URL..]",
	   .help = "base URL(s), repeatable; sessions/requests take them in turn"),
    LG_OPT("source", FUNC, c.src, .fn = lg_opt_source, .metavar = "LIST",
	   .def_help = "the kernel's choice",
	   .help = "client addresses: A, A-B ranges, comma separated, IPv4\n"
		   "and IPv6; each session (chat), connection (http\n"
		   "--keepalive) or request (http) uses the next one of the\n"
		   "target's family"),
    LG_OPT("seed", UNUM, c.seed, .max = 9007199254740992.0, .def = "1",
	   .help = "seed of every random choice"),
    LG_OPT("duration", DOUBLE, c.duration_s, .max = 1e7, .metavar = "S",
	   .def_help = "chat 0: until every session is done; http 10",
	   .help = "start no request after S seconds"),
    LG_OPT("requests", UNUM, c.max_requests, .max = 1e15, .def = "0",
	   .help = "start at most N requests (0: no cap)"),
    LG_OPT("timeout-ms", DOUBLE, c.timeout_ms, .min = 1, .max = 1e9, .metavar = "MS",
	   .def_help = "60000 chat, 5000 http", .help = "per request"),
    LG_OPT("rate", DOUBLE, rate, .max = 1e7, .metavar = "R", .def_help = "chat 4, http 0",
	   .help = "chat: session arrivals per second, Poisson (0: all at\n"
		   "once); http: offered requests/s, open loop (0: saturation)"),
    LG_OPT("keepalive", FLAG, c.keepalive,
	   .help = "reuse connections (default: a new TCP connection per\n"
		   "request, so an L4 balancer decides every request)"),
    LG_OPT("json", FLAG, json, .help = "print results as JSON on stdout"),
    LG_OPT("samples", STR, c.samples_path, .metavar = "FILE",
	   .help = "write one tab-separated line per request to FILE"),
    LG_OPT("no-progress", FLAG, c.progress, .neg = true, .help = "no progress line on stderr"),
    LG_OPT("verbose", FLAG, verbose, .short_name = 'v', .help = "debug logging"),

    LG_OPT("model", FUNC, chat, .fn = lg_opt_model, .def = "sim-model", .group = LG_CHAT,
	   .metavar = "NAME[:W][=URL]",
	   .help = "model with mix weight W (default 1), optionally served at\n"
		   "its own base URL; repeatable"),
    LG_OPT("sessions", UNUM, chat.sessions, .min = 1, .max = 1e7, .def = "64", .group = LG_CHAT,
	   .help = "sessions in the run"),
    LG_OPT("turns", UNUM, chat.turns, .min = 1, .max = 1e6, .def = "4", .group = LG_CHAT,
	   .help = "turns per session"),
    LG_OPT("context-tokens", UNUM, chat.context_tokens, .max = 1e7, .def = "2000", .group = LG_CHAT,
	   .help = "long per-session context sent every turn"),
    LG_OPT("turn-tokens", UNUM, chat.turn_tokens, .min = 1, .max = 1e7, .def = "100",
	   .group = LG_CHAT, .help = "new user text per turn"),
    LG_OPT("output-tokens", UNUM, chat.output_tokens, .min = 1, .max = 65536, .def = "32",
	   .group = LG_CHAT, .help = "max_tokens of every request"),
    LG_OPT("burst-prob", DOUBLE, chat.burst_prob, .max = 1, .def = "0.1", .metavar = "P",
	   .group = LG_CHAT, .help = "an arrival is a burst with probability P"),
    LG_OPT("burst-size", UNUM, chat.burst_size, .min = 1, .max = 1e6, .def = "8", .group = LG_CHAT,
	   .help = "sessions arriving together in a burst"),
    LG_OPT("calm-sessions", UNUM, chat.calm_sessions, .max = 1e7, .def = "0", .metavar = "N",
	   .group = LG_CHAT,
	   .help = "the first N sessions arrive one at a time, a warm-up\n"
		   "without bursts (an arrival drawn as a burst brings one)"),
    LG_OPT("think-ms", DOUBLE, chat.think_ms, .max = 1e9, .def = "200", .metavar = "MS",
	   .group = LG_CHAT, .help = "mean pause between a reply and the next turn, exponential"),
    LG_OPT("sessions-per-source", UNUM, chat.sessions_per_source, .min = 1, .max = 1e6, .def = "1",
	   .group = LG_CHAT,
	   .help = "N consecutive sessions share one client address, as\n"
		   "behind a NAT or an API gateway"),
    LG_OPT("max-inflight", UNUM, chat.max_inflight, .max = 1e7, .def = "0", .group = LG_CHAT,
	   .help = "requests in flight at most (0: open loop)"),
    LG_OPT("chars-per-token", DOUBLE, chat.chars_per_token, .min = 0.1, .max = 1e6, .def = "4",
	   .metavar = "F", .group = LG_CHAT, .help = "characters per token of the generated text"),

    LG_OPT("path", FUNC, http.path, .fn = lg_opt_path, .def = "/health", .metavar = "PATH",
	   .group = LG_HTTP, .help = "request path"),
    LG_OPT("conns", UNUM, http.conns, .min = 1, .max = 100000, .def = "16", .group = LG_HTTP,
	   .help = "transfers in flight at most"),
};

static const struct cliopt_group lg_groups[] = {
    [LG_CHAT] = {"a chat", "chat options:"},
    [LG_HTTP] = {"an http", "http options:"},
};

static struct cliopt_prog lg_prog = {
    .name = "aibl-loadgen",
    .synopsis = "Usage: aibl-loadgen chat [OPTIONS]   multi-turn streaming chat sessions\n"
		"       aibl-loadgen http [OPTIONS]   short HTTP requests (connection/request "
		"rate)",
    .epilog = "Results: per node (X-Aibl-Node response header) and per model: requests, "
	      "failures,\nprefix-cache hit rate (cached / prompt tokens), cold starts, p50/p99 "
	      "time to first\ntoken and end-to-end latency, output tokens/s; http: share per "
	      "node, reconnects of\nkept-alive connections, p50/p99 latency, requests/s. Exit "
	      "status 1 when a request\nfailed, 2 on a usage error.",
    .opts = lg_rows,
    .nopts = CLIOPT_NOPTS(lg_rows),
    .title = "Common options:",
    .groups = lg_groups,
    .ngroups = LG_HTTP,
};

/* whether --source (when given) has an address of URL's family; says not */
static bool src_for(const struct lg_addrs *src, const char *url)
{
	int fam = lg_url_family(url);

	if (!src->n || lg_addrs__count(src, fam))
		return true;
	pr_err("--source has no %s address for %s\n", fam == AF_INET ? "IPv4" : "IPv6", url);
	return false;
}

int main(int argc, char **argv)
{
	struct lg_opts o = {.c = {.timeout_ms = -1, .duration_s = -1, .progress = 1}, .rate = -1};
	struct lg_chat_cfg *chat = &o.chat;
	struct lg_http_cfg *http = &o.http;
	struct lg_common *c = &o.c;
	struct lg_run run = {0};
	bool is_chat, need_targets;
	char title[512], *cfg_json = NULL;
	json_t *cfg_o = NULL;
	int err = 0, ret = 2, i;

	log_set_ident("aibl-loadgen", false);
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		cliopt__usage(&lg_prog, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "chat") && strcmp(argv[1], "http")) {
		pr_err("unknown workload \"%s\" (chat or http)\n", argv[1]);
		fprintf(stderr, "Try 'aibl-loadgen --help'.\n");
		return 2;
	}
	is_chat = !strcmp(argv[1], "chat");
	lg_prog.group = is_chat ? LG_CHAT : LG_HTTP;
	err = cliopt__parse(&lg_prog, argc - 1, argv + 1, &o);
	if (err)
		return err > 0 ? 0 : 2;
	if (o.verbose)
		log_set_level(LOG_LVL_DEBUG);
	if (c->timeout_ms < 0)
		c->timeout_ms = is_chat ? 60000 : 5000;
	if (c->duration_s < 0)
		c->duration_s = is_chat ? 0 : 10;
	if (!is_chat && !c->duration_s && !c->max_requests) {
		pr_err("http needs --duration or --requests\n");
		goto out;
	}
	/* every URL a request goes to needs a source of its family: chat's
	 * models with a URL of their own, --target for the others */
	need_targets = !is_chat || !chat->nmodels;
	for (i = 0; is_chat && i < chat->nmodels; i++) {
		if (!chat->models[i].url[0])
			need_targets = true;
		else if (!src_for(&c->src, chat->models[i].url))
			goto out;
	}
	for (i = 0; need_targets && i < c->ntargets; i++)
		if (!src_for(&c->src, c->targets[i]))
			goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		pr_err("libcurl initialisation failed\n");
		ret = 1;
		goto out;
	}
	if (is_chat) {
		double wsum = 0;

		chat->c = *c;
		chat->rate = o.rate >= 0 ? o.rate : 4; /* as --rate's help says */
		for (i = 0; i < chat->nmodels; i++)
			wsum += chat->models[i].weight;
		if (!(wsum > 0)) {
			pr_err("--model: the weights add up to 0\n");
			goto out;
		}
		cfg_o = json_pack(
		    "{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:i, s:i, s:f, s:i, s:b, s:I, "
		    "s:i, s:i, s:i}",
		    "sessions", (int)chat->sessions, "turns", (int)chat->turns, "context_tokens",
		    (int)chat->context_tokens, "turn_tokens", (int)chat->turn_tokens,
		    "output_tokens", (int)chat->output_tokens, "rate", chat->rate, "burst_prob",
		    chat->burst_prob, "burst_size", (int)chat->burst_size, "calm_sessions",
		    (int)chat->calm_sessions, "think_ms", chat->think_ms, "max_inflight",
		    (int)chat->max_inflight, "keepalive", c->keepalive, "seed", (json_int_t)c->seed,
		    "sources", (int)c->src.n, "targets", c->ntargets, "sessions_per_source",
		    (int)chat->sessions_per_source);
		snprintf(title, sizeof(title),
			 "aibl-loadgen chat: %u sessions x %u turns, context %u + %u/turn tokens, "
			 "%u output tokens, %.1f sessions/s (bursts %.0f%% x %u), seed %llu",
			 chat->sessions, chat->turns, chat->context_tokens, chat->turn_tokens,
			 chat->output_tokens, chat->rate, chat->burst_prob * 100, chat->burst_size,
			 (unsigned long long)c->seed);
		err = lg_chat__run(chat, &run);
	} else {
		http->c = *c;
		if (o.rate > 0)
			http->rate = o.rate;
		cfg_o = json_pack("{s:s, s:f, s:i, s:b, s:f, s:I, s:i, s:i}", "path", http->path,
				  "rate", http->rate, "conns", (int)http->conns, "keepalive",
				  c->keepalive, "duration_s", c->duration_s, "requests",
				  (json_int_t)c->max_requests, "sources", (int)c->src.n, "targets",
				  c->ntargets);
		if (http->rate > 0)
			snprintf(
			    title, sizeof(title),
			    "aibl-loadgen http: GET %s, %s, offered %.0f requests/s, %u in flight "
			    "at most",
			    http->path,
			    c->keepalive ? "kept-alive connections" : "new connection each",
			    http->rate, http->conns);
		else
			snprintf(title, sizeof(title),
				 "aibl-loadgen http: GET %s, %s, saturation with %u in flight",
				 http->path,
				 c->keepalive ? "kept-alive connections" : "new connection each",
				 http->conns);
		err = lg_http__run(http, &run);
	}
	if (err) {
		ret = 1;
		goto out;
	}
	cfg_json = cfg_o ? json_dumps(cfg_o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (c->samples_path) {
		err = lg_report__samples(c->samples_path, &run);
		if (err)
			pr_err("--samples %s: %s\n", c->samples_path, strerror(-err));
	}
	if (o.json)
		lg_report__json(stdout, &run, cfg_json);
	else
		lg_report__table(stdout, &run, title);
	ret = 0;
	for (size_t k = 0; k < run.samples.n; k++)
		if (!run.samples.s[k].ok)
			ret = 1;
	if (err)
		ret = 1;
out:
	json_decref(cfg_o);
	free(cfg_json);
	lg_run__free(&run);
	lg_addrs__free(&c->src);
	curl_global_cleanup();
	return ret;
}
