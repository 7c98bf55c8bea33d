// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-loadgen: command line. See loadgen.h for what the workloads do. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include "cliopt.h"
#include "loadgen.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: aibl-loadgen chat [OPTIONS]   multi-turn streaming chat sessions\n"
		"       aibl-loadgen http [OPTIONS]   short HTTP requests (connection/request rate)\n"
		"\n"
		"Common options:\n"
		"  --target URL[,URL..]     base URL(s), repeatable (default http://127.0.0.1:8000);\n"
		"                           sessions/requests take them in turn\n"
		"  --source LIST            client addresses: A, A-B ranges, comma separated, IPv4\n"
		"                           and IPv6; each session (chat), connection (http\n"
		"                           --keepalive) or request (http) uses the next one of the\n"
		"                           target's family (default: the kernel's choice)\n"
		"  --seed N                 seed of every random choice (default 1)\n"
		"  --duration S             start no request after S seconds (chat default 0: until\n"
		"                           every session is done; http default 10)\n"
		"  --requests N             start at most N requests (default 0: no cap)\n"
		"  --timeout-ms MS          per request (default 60000 chat, 5000 http)\n"
		"  --keepalive              reuse connections (default: a new TCP connection per\n"
		"                           request, so an L4 balancer decides every request)\n"
		"  --json                   print results as JSON on stdout\n"
		"  --samples FILE           write one tab-separated line per request to FILE\n"
		"  --no-progress            no progress line on stderr\n"
		"  -v, --verbose            debug logging\n"
		"\n"
		"chat options:\n"
		"  --model NAME[:W][=URL]   model with mix weight W (default 1), optionally served at\n"
		"                           its own base URL; repeatable (default sim-model)\n"
		"  --sessions N             sessions in the run (default 64)\n"
		"  --turns N                turns per session (default 4)\n"
		"  --context-tokens N       long per-session context sent every turn (default 2000)\n"
		"  --turn-tokens N          new user text per turn (default 100)\n"
		"  --output-tokens N        max_tokens of every request (default 32)\n"
		"  --rate R                 session arrivals per second, Poisson (default 4; 0: all\n"
		"                           at once)\n"
		"  --burst-prob P           an arrival is a burst with probability P (default 0.1)\n"
		"  --burst-size N           sessions arriving together in a burst (default 8)\n"
		"  --think-ms MS            mean pause between a reply and the next turn, exponential\n"
		"                           (default 200)\n"
		"  --sessions-per-source N  N consecutive sessions share one client address, as\n"
		"                           behind a NAT or an API gateway (default 1)\n"
		"  --max-inflight N         requests in flight at most (default 0: open loop)\n"
		"  --chars-per-token F      characters per token of the generated text (default 4)\n"
		"\n"
		"http options:\n"
		"  --path PATH              request path (default /health)\n"
		"  --rate R                 offered requests/s, open loop (default 0: saturation)\n"
		"  --conns N                transfers in flight at most (default 16)\n"
		"\n"
		"Results: per node (X-Aibl-Node response header) and per model: requests, failures,\n"
		"prefix-cache hit rate (cached / prompt tokens), cold starts, p50/p99 time to first\n"
		"token and end-to-end latency, output tokens/s; http: share per node, reconnects of\n"
		"kept-alive connections, p50/p99 latency, requests/s. Exit status 1 when a request\n"
		"failed, 2 on a usage error.\n");
}

static int lg_add_targets(struct lg_common *c, const char *arg)
{
	char *copy = strdup(arg), *save = NULL, *t;
	int err = 0;

	if (!copy)
		return -ENOMEM;
	for (t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(t);

		while (n && t[n - 1] == '/')
			t[--n] = '\0';
		if (strncmp(t, "http://", 7) && strncmp(t, "https://", 8)) {
			pr_err("--target: \"%s\" is not an http:// or https:// URL\n", t);
			err = -EINVAL;
			break;
		}
		if (c->ntargets >= LG_MAX_TARGETS || n >= LG_URL_LEN) {
			pr_err("--target: at most %d URLs of %d characters\n", LG_MAX_TARGETS,
			       LG_URL_LEN - 1);
			err = -E2BIG;
			break;
		}
		snprintf(c->targets[c->ntargets++], LG_URL_LEN, "%s", t);
	}
	free(copy);
	return err;
}

/* NAME[:WEIGHT][=URL] */
static int lg_add_model(struct lg_chat_cfg *cfg, const char *arg)
{
	char buf[LG_NAME_LEN + LG_URL_LEN + 32], *url, *w;
	struct lg_model *m;
	double weight = 1;

	if (cfg->nmodels >= LG_MAX_MODELS || strlen(arg) >= sizeof(buf)) {
		pr_err("--model: at most %d models, \"%s\" too long?\n", LG_MAX_MODELS, arg);
		return -E2BIG;
	}
	snprintf(buf, sizeof(buf), "%s", arg);
	url = strchr(buf, '=');
	if (url)
		*url++ = '\0';
	w = strrchr(buf, ':');
	if (w) {
		*w++ = '\0';
		if (cliopt__double("--model weight", w, 0, 1e9, &weight))
			return -EINVAL;
	}
	if (!buf[0] || strlen(buf) >= LG_NAME_LEN) {
		pr_err("--model: name of 1-%d characters in \"%s\"\n", LG_NAME_LEN - 1, arg);
		return -EINVAL;
	}
	if (url && strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		pr_err("--model: \"%s\" is not an http:// or https:// URL\n", url);
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

int main(int argc, char **argv)
{
	enum {
		O_TARGET = 256, O_SOURCE, O_SEED, O_DURATION, O_REQUESTS, O_TIMEOUT, O_KEEPALIVE,
		O_JSON, O_SAMPLES, O_NOPROG, O_MODEL, O_SESSIONS, O_TURNS, O_CTX, O_TURNTOK,
		O_OUTTOK, O_RATE, O_BPROB, O_BSIZE, O_THINK, O_INFLIGHT, O_CPT, O_PATH, O_CONNS,
		O_PERSRC,
	};
	static const struct option opts[] = {
		{ "target", required_argument, NULL, O_TARGET },
		{ "source", required_argument, NULL, O_SOURCE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "requests", required_argument, NULL, O_REQUESTS },
		{ "timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "keepalive", no_argument, NULL, O_KEEPALIVE },
		{ "json", no_argument, NULL, O_JSON },
		{ "samples", required_argument, NULL, O_SAMPLES },
		{ "no-progress", no_argument, NULL, O_NOPROG },
		{ "model", required_argument, NULL, O_MODEL },
		{ "sessions", required_argument, NULL, O_SESSIONS },
		{ "turns", required_argument, NULL, O_TURNS },
		{ "context-tokens", required_argument, NULL, O_CTX },
		{ "turn-tokens", required_argument, NULL, O_TURNTOK },
		{ "output-tokens", required_argument, NULL, O_OUTTOK },
		{ "rate", required_argument, NULL, O_RATE },
		{ "burst-prob", required_argument, NULL, O_BPROB },
		{ "burst-size", required_argument, NULL, O_BSIZE },
		{ "think-ms", required_argument, NULL, O_THINK },
		{ "sessions-per-source", required_argument, NULL, O_PERSRC },
		{ "max-inflight", required_argument, NULL, O_INFLIGHT },
		{ "chars-per-token", required_argument, NULL, O_CPT },
		{ "path", required_argument, NULL, O_PATH },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct lg_chat_cfg chat = {
		.sessions = 64, .turns = 4, .context_tokens = 2000, .turn_tokens = 100,
		.output_tokens = 32, .rate = 4, .burst_prob = 0.1, .burst_size = 8, .think_ms = 200,
		.chars_per_token = 4, .sessions_per_source = 1,
	};
	struct lg_http_cfg http = { .path = "/health", .conns = 16 };
	struct lg_common c = { .seed = 1, .timeout_ms = -1, .duration_s = -1, .progress = 1 };
	struct lg_run run = { 0 };
	bool is_chat, json = false;
	char err_msg[256], title[512], *cfg_json = NULL;
	json_t *cfg_o = NULL;
	double v, rate = -1;
	int o, err = 0, ret = 2, i;

	log_set_ident("aibl-loadgen", false);
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "chat") && strcmp(argv[1], "http")) {
		pr_err("unknown workload \"%s\" (chat or http)\n", argv[1]);
		usage(stderr);
		return 2;
	}
	is_chat = !strcmp(argv[1], "chat");
	optind = 2;
	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (!is_chat && (o == O_MODEL || (o >= O_SESSIONS && o <= O_CPT && o != O_RATE))) {
			pr_err("%s is a chat option\n", argv[optind - 1]);
			goto out;
		}
		if (is_chat && (o == O_PATH || o == O_CONNS)) {
			pr_err("%s is an http option\n", argv[optind - 1]);
			goto out;
		}
		switch (o) {
		case O_TARGET:
			err = lg_add_targets(&c, optarg);
			break;
		case O_SOURCE:
			err = lg_addrs__parse(&c.src, optarg, err_msg, sizeof(err_msg));
			if (err)
				pr_err("--source: %s\n", err_msg);
			break;
		case O_SEED:
			err = cliopt__double("--seed", optarg, 0, 9007199254740992.0, &v);
			c.seed = v;
			break;
		case O_DURATION:
			err = cliopt__double("--duration", optarg, 0, 1e7, &c.duration_s);
			break;
		case O_REQUESTS:
			err = cliopt__double("--requests", optarg, 0, 1e15, &v);
			c.max_requests = v;
			break;
		case O_TIMEOUT:
			err = cliopt__double("--timeout-ms", optarg, 1, 1e9, &c.timeout_ms);
			break;
		case O_KEEPALIVE:
			c.keepalive = true;
			break;
		case O_JSON:
			json = true;
			break;
		case O_SAMPLES:
			c.samples_path = optarg;
			break;
		case O_NOPROG:
			c.progress = 0;
			break;
		case O_MODEL:
			err = lg_add_model(&chat, optarg);
			break;
		case O_SESSIONS:
			err = cliopt__double("--sessions", optarg, 1, 1e7, &v);
			chat.sessions = v;
			break;
		case O_TURNS:
			err = cliopt__double("--turns", optarg, 1, 1e6, &v);
			chat.turns = v;
			break;
		case O_CTX:
			err = cliopt__double("--context-tokens", optarg, 0, 1e7, &v);
			chat.context_tokens = v;
			break;
		case O_TURNTOK:
			err = cliopt__double("--turn-tokens", optarg, 1, 1e7, &v);
			chat.turn_tokens = v;
			break;
		case O_OUTTOK:
			err = cliopt__double("--output-tokens", optarg, 1, 65536, &v);
			chat.output_tokens = v;
			break;
		case O_RATE:
			err = cliopt__double("--rate", optarg, 0, 1e7, &rate);
			break;
		case O_BPROB:
			err = cliopt__double("--burst-prob", optarg, 0, 1, &chat.burst_prob);
			break;
		case O_BSIZE:
			err = cliopt__double("--burst-size", optarg, 1, 1e6, &v);
			chat.burst_size = v;
			break;
		case O_THINK:
			err = cliopt__double("--think-ms", optarg, 0, 1e9, &chat.think_ms);
			break;
		case O_PERSRC:
			err = cliopt__double("--sessions-per-source", optarg, 1, 1e6, &v);
			chat.sessions_per_source = v;
			break;
		case O_INFLIGHT:
			err = cliopt__double("--max-inflight", optarg, 0, 1e7, &v);
			chat.max_inflight = v;
			break;
		case O_CPT:
			err = cliopt__double("--chars-per-token", optarg, 0.1, 1e6, &chat.chars_per_token);
			break;
		case O_PATH:
			if (optarg[0] != '/' || strlen(optarg) >= sizeof(http.path)) {
				pr_err("--path: an absolute path under %zu characters\n",
				       sizeof(http.path));
				err = -EINVAL;
			}
			snprintf(http.path, sizeof(http.path), "%s", optarg);
			break;
		case O_CONNS:
			err = cliopt__double("--conns", optarg, 1, 100000, &v);
			http.conns = v;
			break;
		case 'v':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			ret = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
		if (err)
			goto out;
	}
	if (optind < argc) {
		pr_err("unexpected argument \"%s\"\n", argv[optind]);
		goto out;
	}
	if (!c.ntargets)
		lg_add_targets(&c, "http://127.0.0.1:8000");
	if (c.timeout_ms < 0)
		c.timeout_ms = is_chat ? 60000 : 5000;
	if (c.duration_s < 0)
		c.duration_s = is_chat ? 0 : 10;
	if (!is_chat && !c.duration_s && !c.max_requests) {
		pr_err("http needs --duration or --requests\n");
		goto out;
	}
	for (i = 0; i < c.ntargets; i++) {
		int fam = lg_url_family(c.targets[i]);

		if (c.src.n && !lg_addrs__count(&c.src, fam)) {
			pr_err("--source has no %s address for %s\n", fam == AF_INET ? "IPv4" : "IPv6",
			       c.targets[i]);
			goto out;
		}
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		pr_err("libcurl initialisation failed\n");
		ret = 1;
		goto out;
	}
	if (is_chat) {
		double wsum = 0;

		chat.c = c;
		if (rate >= 0)
			chat.rate = rate;
		if (!chat.nmodels)
			lg_add_model(&chat, "sim-model");
		for (i = 0; i < chat.nmodels; i++)
			wsum += chat.models[i].weight;
		if (!(wsum > 0)) {
			pr_err("--model: the weights add up to 0\n");
			goto out;
		}
		cfg_o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:i, s:f, s:i, s:b, s:I, "
				  "s:i, s:i, s:i}",
				  "sessions", (int)chat.sessions, "turns", (int)chat.turns,
				  "context_tokens", (int)chat.context_tokens, "turn_tokens",
				  (int)chat.turn_tokens, "output_tokens", (int)chat.output_tokens,
				  "rate", chat.rate, "burst_prob", chat.burst_prob, "burst_size",
				  (int)chat.burst_size, "think_ms", chat.think_ms, "max_inflight",
				  (int)chat.max_inflight, "keepalive", c.keepalive, "seed",
				  (json_int_t)c.seed, "sources", (int)c.src.n, "targets", c.ntargets,
				  "sessions_per_source", (int)chat.sessions_per_source);
		snprintf(title, sizeof(title),
			 "aibl-loadgen chat: %u sessions x %u turns, context %u + %u/turn tokens, "
			 "%u output tokens, %.1f sessions/s (bursts %.0f%% x %u), seed %llu",
			 chat.sessions, chat.turns, chat.context_tokens, chat.turn_tokens,
			 chat.output_tokens, chat.rate, chat.burst_prob * 100, chat.burst_size,
			 (unsigned long long)c.seed);
		err = lg_chat__run(&chat, &run);
	} else {
		http.c = c;
		if (rate > 0)
			http.rate = rate;
		cfg_o = json_pack("{s:s, s:f, s:i, s:b, s:f, s:I, s:i, s:i}", "path", http.path,
				  "rate", http.rate, "conns", (int)http.conns, "keepalive", c.keepalive,
				  "duration_s", c.duration_s, "requests", (json_int_t)c.max_requests,
				  "sources", (int)c.src.n, "targets", c.ntargets);
		if (http.rate > 0)
			snprintf(title, sizeof(title),
				 "aibl-loadgen http: GET %s, %s, offered %.0f requests/s, %u in flight "
				 "at most",
				 http.path, c.keepalive ? "kept-alive connections" : "new connection each",
				 http.rate, http.conns);
		else
			snprintf(title, sizeof(title),
				 "aibl-loadgen http: GET %s, %s, saturation with %u in flight", http.path,
				 c.keepalive ? "kept-alive connections" : "new connection each",
				 http.conns);
		err = lg_http__run(&http, &run);
	}
	if (err) {
		ret = 1;
		goto out;
	}
	cfg_json = cfg_o ? json_dumps(cfg_o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (c.samples_path) {
		err = lg_report__samples(c.samples_path, &run);
		if (err)
			pr_err("--samples %s: %s\n", c.samples_path, strerror(-err));
	}
	if (json)
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
	lg_addrs__free(&c.src);
	curl_global_cleanup();
	return ret;
}
