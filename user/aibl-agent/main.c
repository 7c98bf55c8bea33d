// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibl-agent: runs on every inference node and tells the controller what
 * the node can take: GPU figures (NVML), model server load, residency and
 * cache state (their /metrics and /v1/models), and cache hints (traffic
 * seen by the node-side decap program, POST /v1/hints). Serves them as
 * GET /v1/report (report.h), signed when it has a key.
 */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <linux/types.h>
#include "aibl.h"
#include "agent.h"
#include "decap.h"
#include "cliopt.h"
#include "httpbody.h"
#include "listen.h"
#include "bpfutil.h"
#include "log.h"

static struct agent ag;
static struct aibl_key ag_key;
static bool ag_has_key;
static struct aibl_replay ag_replay; /* signed hint posts already taken */
static volatile sig_atomic_t ag_stop;


static void usage(FILE *f)
{
	fprintf(f,
		"Usage: aibl-agent --listen ADDR:PORT --name NODE --model-server URL [OPTIONS]\n"
		"Node agent: serves GET /v1/report for aibld.\n\n"
		"  --listen ADDR:PORT        where to serve (e.g. 10.0.0.2:7071)\n"
		"  --name NODE               node name as the controller knows it\n"
		"  --model-server URL        model server base URL (repeat, up to %d);\n"
		"                            URL/metrics and URL/v1/models are scraped\n"
		"  --decap IFACE             attach the node-side decap program at IFACE's TC\n"
		"                            ingress (detached on exit); its client map feeds\n"
		"                            traffic hints\n"
		"  --decap-pin-dir DIR       pin the decap maps there (default: private)\n"
		"  --key FILE                HMAC key: sign reports, require signed hint posts\n"
		"  --scrape-interval-ms MS   collection period (default 1000)\n"
		"  --scrape-timeout-ms MS    per model server request (default 800)\n"
		"  --stale-ms MS             a server unscraped this long is down (default 5000)\n"
		"  --nvml-lib PATH           NVML library (default libnvidia-ml.so.1)\n"
		"  --no-nvml                 do not load NVML (CPU node)\n"
		"  --accel NAME              accelerator kind to report (default gpu/cpu from NVML)\n"
		"  --max-hints N             cache hints held (default 1024, at most %d)\n"
		"  --hint-pressure KV        KV-cache usage above which hints age faster (default 0.7)\n"
		"  --hint-max-rate F         aging rate at full KV cache (default 4)\n"
		"  --traffic-window-ms MS    traffic hint lifetime after the last packet (default 60000)\n"
		"  -v, --verbose             debug logging (and libbpf's)\n"
		"  -h, --help                this text\n",
		AR_MAX_SERVERS, AR_MAX_HINTS);
}

/* ---- HTTP ---- */

static enum MHD_Result ag_send(struct MHD_Connection *c, unsigned int status, const char *type,
			       char *body, const char *sig)
{
	return http_reply(c, status, type, body, sig ? AIBL_AUTH_HEADER : NULL, sig);
}

static enum MHD_Result ag_error(struct MHD_Connection *c, unsigned int status, const char *msg)
{
	char *body = NULL;
	json_t *o = json_pack("{s:s}", "error", msg);

	if (o)
		body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return ag_send(c, status, "application/json", body, NULL);
}

static enum MHD_Result ag_report(struct MHD_Connection *c)
{
	const char *nonce = MHD_lookup_connection_value(c, MHD_HEADER_KIND, AIBL_NONCE_HEADER);
	char sig[AIBL_AUTH_HDR_MAX];
	struct agent_report r;
	char *body;
	int err;

	err = agent__report(&ag, &r);
	if (err) {
		agent_report__free(&r);
		return ag_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, strerror(-err));
	}
	body = agent_report__to_json(&r);
	agent_report__free(&r);
	if (!body)
		return ag_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, strerror(errno));
	if (!ag_has_key)
		return ag_send(c, MHD_HTTP_OK, "application/json", body, NULL);
	/* the controller's nonce makes a recorded report useless later */
	err = aibl_auth__sign(&ag_key, time(NULL), nonce, body, strlen(body), sig, sizeof(sig));
	if (err) {
		free(body);
		return ag_error(c, MHD_HTTP_BAD_REQUEST,
				err == -EINVAL ? "bad X-Aibl-Nonce (at most 64 of [A-Za-z0-9_-])"
					       : "cannot sign the report");
	}
	return ag_send(c, MHD_HTTP_OK, "application/json", body, sig);
}

static bool ag_client_is_loopback(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	if (sa && sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a6) ||
		       (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	}
	return false;
}

static enum MHD_Result ag_post_hints(struct MHD_Connection *c, const struct http_body *cc)
{
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, AIBL_AUTH_HEADER);
	struct ar_hint *hints = NULL;
	char msg[256], *body;
	int n = 0, err;

	if (cc->too_big)
		return ag_error(c, 413, "body over the report size limit");
	if (ag_has_key) {
		err = aibl_auth__verify(&ag_key, sig, NULL, http_body__str(cc), cc->len,
					time(NULL), AIBL_AUTH_WINDOW_S);
		if (err) {
			snprintf(msg, sizeof(msg), "hints refused: %s",
				 !sig ? "no " AIBL_AUTH_HEADER " header" : err == -EBADMSG ? "malformed signature" : err == -ETIME ? "signature outside the time window" : "bad signature");
			return ag_error(c, MHD_HTTP_UNAUTHORIZED, msg);
		}
		if (aibl_replay__seen(&ag_replay, sig, time(NULL), AIBL_AUTH_WINDOW_S))
			return ag_error(c, MHD_HTTP_UNAUTHORIZED,
					"hints refused: signature already used (replay)");
	} else if (!ag_client_is_loopback(c)) {
		/* without a key only local model servers may plant hints */
		return ag_error(c, MHD_HTTP_FORBIDDEN,
				"hints from other hosts need a key (--key) and a signature");
	}
	err = agent_hints__parse(http_body__str(cc), cc->len, &hints, &n, msg, sizeof(msg));
	if (err) {
		free(hints);
		return ag_error(c, err == -E2BIG ? 413 : MHD_HTTP_BAD_REQUEST, msg);
	}
	agent__put_hints(&ag, hints, n);
	free(hints);
	if (asprintf(&body, "{\"accepted\":%d}", n) < 0)
		return MHD_NO;
	return ag_send(c, MHD_HTTP_OK, "application/json", body, NULL);
}

static enum MHD_Result ag_handler(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http_body *cc = *con_cls;
	bool post = !strcmp(method, "POST");

	if (post && !cc) {
		cc = calloc(1, sizeof(*cc));
		if (!cc)
			return MHD_NO;
		*con_cls = cc;
		return MHD_YES;
	}
	if (post && *upload_size) {
		if (http_body__feed(cc, upload, *upload_size, AR_MAX_BYTES))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/v1/hints")) {
		if (!post)
			return ag_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only");
		return ag_post_hints(c, cc);
	}
	if (strcmp(method, "GET"))
		return ag_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
	if (!strcmp(url, "/v1/report"))
		return ag_report(c);
	if (!strcmp(url, "/healthz"))
		return ag_send(c, MHD_HTTP_OK, "text/plain", strdup("ok"), NULL);
	return ag_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint");
}

static void ag_on_signal(int sig)
{
	ag_stop = 1;
}

int main(int argc, char **argv)
{
	enum {
		O_LISTEN = 256, O_NAME, O_SERVER, O_DECAP, O_PINDIR, O_KEY, O_INTERVAL, O_TIMEOUT,
		O_STALE, O_NVML, O_NONVML, O_ACCEL, O_MAXH, O_PRESS, O_RATE, O_WINDOW,
	};
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "name", required_argument, NULL, O_NAME },
		{ "model-server", required_argument, NULL, O_SERVER },
		{ "decap", required_argument, NULL, O_DECAP },
		{ "decap-pin-dir", required_argument, NULL, O_PINDIR },
		{ "key", required_argument, NULL, O_KEY },
		{ "scrape-interval-ms", required_argument, NULL, O_INTERVAL },
		{ "scrape-timeout-ms", required_argument, NULL, O_TIMEOUT },
		{ "stale-ms", required_argument, NULL, O_STALE },
		{ "nvml-lib", required_argument, NULL, O_NVML },
		{ "no-nvml", no_argument, NULL, O_NONVML },
		{ "accel", required_argument, NULL, O_ACCEL },
		{ "max-hints", required_argument, NULL, O_MAXH },
		{ "hint-pressure", required_argument, NULL, O_PRESS },
		{ "hint-max-rate", required_argument, NULL, O_RATE },
		{ "traffic-window-ms", required_argument, NULL, O_WINDOW },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct agent_cfg cfg = {
		.scrape_interval_ms = 1000, .scrape_timeout_ms = 800, .stale_ms = 5000,
		.max_hints = 1024, .pressure_start = 0.7, .pressure_max_rate = 4,
		.traffic_window_ms = 60000,
	};
	const char *listen = NULL, *decap_if = NULL, *pin_dir = NULL, *key_file = NULL;
	struct sigaction sa = { .sa_handler = ag_on_signal };
	struct decap_opts dopts = {};
	struct decap *decap = NULL;
	struct MHD_Daemon *d = NULL;
	struct sockaddr_storage ss;
	bool verbose = false, inited = false;
	unsigned int u;
	socklen_t sslen;
	char msg[256];
	int o, err = 0, ifindex;

	log_set_ident("aibl-agent", false);
	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (o) {
		case O_LISTEN:
			listen = optarg;
			break;
		case O_NAME:
			cfg.name = optarg;
			break;
		case O_SERVER:
			if (cfg.nservers >= AR_MAX_SERVERS) {
				pr_err("at most %d --model-server\n", AR_MAX_SERVERS);
				return 2;
			}
			cfg.urls[cfg.nservers++] = optarg;
			break;
		case O_DECAP:
			decap_if = optarg;
			break;
		case O_PINDIR:
			pin_dir = optarg;
			break;
		case O_KEY:
			key_file = optarg;
			break;
		case O_INTERVAL:
			err = cliopt__uint("--scrape-interval-ms", optarg, 10, 3600000,
					 &cfg.scrape_interval_ms);
			break;
		case O_TIMEOUT:
			err = cliopt__uint("--scrape-timeout-ms", optarg, 10, 600000,
					 &cfg.scrape_timeout_ms);
			break;
		case O_STALE:
			err = cliopt__uint("--stale-ms", optarg, 10, 86400000, &cfg.stale_ms);
			break;
		case O_NVML:
			cfg.nvml_lib = optarg;
			break;
		case O_NONVML:
			cfg.no_nvml = true;
			break;
		case O_ACCEL:
			cfg.accel = optarg;
			break;
		case O_MAXH:
			err = cliopt__uint("--max-hints", optarg, 1, AR_MAX_HINTS, &u);
			cfg.max_hints = u;
			break;
		case O_PRESS:
			err = cliopt__double("--hint-pressure", optarg, 0, 0.99, &cfg.pressure_start);
			break;
		case O_RATE:
			err = cliopt__double("--hint-max-rate", optarg, 1, 1000, &cfg.pressure_max_rate);
			break;
		case O_WINDOW:
			err = cliopt__uint("--traffic-window-ms", optarg, 1, 86400000,
					 &cfg.traffic_window_ms);
			break;
		case 'v':
			verbose = true;
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (err)
			return 2;
	}
	if (optind < argc || !listen || !cfg.name || !cfg.nservers) {
		if (optind < argc)
			pr_err("unexpected argument \"%s\"\n", argv[optind]);
		else
			pr_err("--listen, --name and at least one --model-server are required\n");
		usage(stderr);
		return 2;
	}
	if (!cfg.name[0] || strlen(cfg.name) >= AR_NAME_LEN) {
		pr_err("--name: 1 to %d characters\n", AR_NAME_LEN - 1);
		return 2;
	}
	if (cfg.accel && strlen(cfg.accel) >= sizeof(((struct agent_report *)0)->accel)) {
		pr_err("--accel: name too long\n");
		return 2;
	}
	if (listen_addr__parse(listen, &ss, &sslen, msg, sizeof(msg))) {
		pr_err("%s\n", msg);
		return 2;
	}
	if (key_file) {
		err = aibl_key__load(key_file, &ag_key, msg, sizeof(msg));
		if (err) {
			pr_err("%s\n", msg);
			return 2;
		}
		ag_has_key = true;
		aibl_replay__init(&ag_replay);
	}
	log_setup_libbpf(verbose);
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		pr_err("libcurl initialisation failed\n");
		return 1;
	}
	err = agent__init(&ag, &cfg, msg, sizeof(msg));
	if (err) {
		pr_err("%s\n", msg);
		err = 2;
		goto out;
	}
	inited = true;

	if (decap_if) {
		ifindex = if_nametoindex(decap_if);
		if (!ifindex) {
			pr_err("--decap %s: %s\n", decap_if, strerror(errno));
			err = 1;
			goto out;
		}
		dopts.pin_dir = pin_dir;
		err = decap__attach(ifindex, &dopts, &decap);
		if (err) {
			pr_err("--decap %s: cannot attach the decap program: %s\n", decap_if,
			       strerror(-err));
			err = 1;
			goto out;
		}
		ag.cli_fd = decap__clients_fd(decap);
		pr_info("decap program attached at %s ingress\n", decap_if);
	}

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	err = agent__start(&ag);
	if (err) {
		pr_err("collector thread: %s\n", strerror(-err));
		err = 1;
		goto out;
	}
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
				     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
			     0, NULL, NULL, ag_handler, NULL, MHD_OPTION_SOCK_ADDR, &ss,
			     MHD_OPTION_NOTIFY_COMPLETED, http_body__completed, NULL,
			     MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)2,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30, MHD_OPTION_END);
	if (!d) {
		pr_err("cannot listen on %s: %s\n", listen, strerror(errno));
		err = 1;
		goto out;
	}
	pr_info("node %s: serving on %s, %d model server(s)%s%s\n", cfg.name, listen,
		cfg.nservers, ag_has_key ? ", signed reports" : "", ag.nvml ? ", NVML" : "");
	while (!ag_stop)
		pause();
	pr_info("stopping\n");
	err = 0;
out:
	if (d)
		MHD_stop_daemon(d);
	if (inited)
		agent__fini(&ag);
	if (decap) {
		int derr = decap__detach(decap);

		if (derr)
			pr_warn("detaching the decap program: %s\n", strerror(-derr));
		else
			pr_info("decap program detached\n");
	}
	curl_global_cleanup();
	return err;
}
