// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibl-agent: runs on every inference node and tells the controller what
 * the node can take: GPU figures (NVML), model server load, residency and
 * cache state (their /metrics and /v1/models), and cache hints (traffic
 * seen by the node-side decap program, POST /v1/hints). Serves them as
 * GET /v1/report (report.h), signed when it has a key.
 */
#include <errno.h>
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
#include "readmetrics.h"
#include "cliopt.h"
#include "httpbody.h"
#include "listen.h"
#include "names.h"
#include <openssl/crypto.h>
#include "httpguard.h"
#include "bpfutil.h"
#include "log.h"

static struct agent ag;
static struct decap *ag_decap; /* --decap: attached before the server starts */
static struct aibl_key ag_key;
static bool ag_has_key;
static struct aibl_replay ag_replay;	 /* signed hint posts already taken */
static struct aibl_replay ag_req_replay; /* signed report and load requests already served */
/* the connection guard's settings: its --controller addresses */
static struct http_guard_cfg ag_gcfg = {.what = "agent"};
static volatile sig_atomic_t ag_stop;
/* a load's or an unload's body: {"model": up to 127 bytes, "drain_timeout_ms": N} */
#define AG_OP_MAX_BYTES 4096

/* what the command line sets */
struct ag_opts {
	struct agent_cfg cfg;
	struct listen_addr listen;
	const char *decap_if, *pin_dir, *key_file;
	const char *controllers[HTTP_GUARD_PRIO_MAX];
	int ncontrollers;
	unsigned int max_conns, max_per_src, reserve, request_ms;
	const char *decap_src[8];
	int ndecap_src;
	bool verbose;
};

/* how often the decap program learns the node's addresses and VIPs again */
#define DECAP_REFRESH_S 5

/* what the decap program accepts: the balancers' sources from the command
 * line, the node's addresses and VIPs from its interfaces. decap_opts.prepare
 * (arg: the options), so it is set before the program is attached (attached
 * first, its checks were off until filled: a spoofed tunnel from anywhere
 * was opened and fed the hints meanwhile) */
static int decap_accept(struct decap *d, void *arg)
{
	const struct ag_opts *o = arg;
	struct decap_prefix p[8];
	int err;

	for (int i = 0; i < o->ndecap_src; i++)
		if (decap__parse_prefix(o->decap_src[i], &p[i])) {
			pr_err("--decap-source %s: not ADDR[/LEN]\n", o->decap_src[i]);
			return -EINVAL;
		}
	err = decap__set_sources(d, p, o->ndecap_src);
	if (!err)
		err = decap__refresh_addrs(d);
	if (err)
		pr_err("decap: cannot configure what it accepts: %s\n", strerror(-err));
	else if (!o->ndecap_src)
		pr_warn("decap: no --decap-source: tunnels from any source are accepted\n");
	return err;
}

static const struct cliopt ag_rows[] = {
    CLIOPT("listen", LISTEN, struct ag_opts, listen, .required = true,
	   .help = "where to serve (e.g. 10.0.0.2:7071)"),
    CLIOPT("name", STR, struct ag_opts, cfg.name, .required = true, .metavar = "NODE",
	   .help = "node name as the controller knows it"),
    CLIOPT("model-server", STRV, struct ag_opts, cfg.urls, .required = true,
	   .count_off = CLIOPT_COUNT(struct ag_opts, cfg.nservers), .metavar = "URL",
	   .help = "model server base URL, repeatable;\n"
		   "URL/metrics and URL/v1/models are scraped;\n"
		   "'URL,kind=K,metrics=PATH,slots=N' sets the engine\n"
		   "kind, the metrics path and the requests it runs at\n"
		   "once (vLLM --max-num-seqs; llama.cpp and SGLang say\n"
		   "it themselves; docs/engines.md)"),
    CLIOPT("decap", STR, struct ag_opts, decap_if, .metavar = "IFACE",
	   .help = "attach the node-side decap program at IFACE's TC\n"
		   "ingress (detached on exit); its client map feeds\ntraffic hints "
		   "(ipip tunnels, and l2dsr's plain\npackets to the node's VIPs)"),
    CLIOPT("decap-source", STRV, struct ag_opts, decap_src, .metavar = "ADDR[/LEN]",
	   .count_off = CLIOPT_COUNT(struct ag_opts, ndecap_src), .def_help = "any",
	   .help = "a balancer's outer source prefix, repeatable;\n"
		   "tunnels from elsewhere are dropped"),
    CLIOPT("decap-pin-dir", STR, struct ag_opts, pin_dir, .metavar = "DIR", .def_help = "private",
	   .help = "pin the decap maps there"),
    CLIOPT("key", PATH, struct ag_opts, key_file, .metavar = "FILE",
	   .help = "HMAC key: sign reports, require signed hint posts"),
    CLIOPT("scrape-interval-ms", UINT, struct ag_opts, cfg.scrape_interval_ms, .min = 10,
	   .max = 3600000, .def = "1000", .metavar = "MS", .help = "collection period"),
    CLIOPT("watch-interval-ms", UINT, struct ag_opts, cfg.watch_interval_ms, .max = 3600000,
	   .def = "100", .metavar = "MS",
	   .help = "between scrapes, fetch only the model lists this\n"
		   "often; a change scrapes at once (0: off)"),
    CLIOPT("notify", STRV, struct ag_opts, cfg.notify,
	   .count_off = CLIOPT_COUNT(struct ag_opts, cfg.nnotify), .metavar = "URL",
	   .help = "aibld's API (http://HOST:PORT), repeatable: on a\n"
		   "change of models or health, POST URL/v1/nodes/NAME/poll\n"
		   "so it polls now, not at its next interval"),
    CLIOPT("scrape-timeout-ms", UINT, struct ag_opts, cfg.scrape_timeout_ms, .min = 10,
	   .max = 600000, .def = "800", .metavar = "MS", .help = "per model server request"),
    CLIOPT("stale-ms", UINT, struct ag_opts, cfg.stale_ms, .min = 10, .max = 86400000,
	   .def = "5000", .metavar = "MS", .help = "a server unscraped this long is down"),
    CLIOPT("lora-dir", STR, struct ag_opts, cfg.lora_dir, .metavar = "DIR",
	   .def_help = "the name alone",
	   .help = "POST /v1/load: vLLM loads adapter NAME from DIR/NAME"),
    CLIOPT("load-timeout-ms", UINT, struct ag_opts, cfg.load_timeout_ms, .min = 1000,
	   .max = 3600000, .def = "600000", .metavar = "MS",
	   .help = "POST /v1/load, /v1/unload: how long the engine's\n"
		   "load or unload call may take"),
    CLIOPT("drain-timeout-ms", UINT, struct ag_opts, cfg.drain_timeout_ms,
	   .max = AR_DRAIN_TIMEOUT_MAX_MS, .def = "30000", .metavar = "MS",
	   .help = "POST /v1/unload: once every balancer polling has\n"
		   "a report without the model, wait at most this long\n"
		   "for the connections of it they hold to close\n"
		   "(kept-alive clients); 0: do not wait for them"),
    CLIOPT("drain-ms", UINT, struct ag_opts, cfg.drain_ms, .max = 600000, .def = "1000",
	   .metavar = "MS",
	   .help = "POST /v1/unload: then wait this long for the\n"
		   "flows they sent before, then unload"),
    CLIOPT("speed-probe", FLAG, struct ag_opts, cfg.speed_probe,
	   .help = "time one short chat completion (16 tokens) on each\n"
		   "model server while it is idle, once it is up and after\n"
		   "it restarts; the controller prices a node it has not\n"
		   "measured yet by it (report: probe_ms_per_token)"),
    CLIOPT("nvml-lib", STR, struct ag_opts, cfg.nvml_lib, .metavar = "PATH",
	   .def_help = "libnvidia-ml.so.1", .help = "NVML library"),
    CLIOPT("no-nvml", FLAG, struct ag_opts, cfg.no_nvml, .help = "do not load NVML (CPU node)"),
    CLIOPT("accel", STR, struct ag_opts, cfg.accel, .metavar = "NAME",
	   .def_help = "gpu/cpu from NVML", .help = "accelerator kind to report"),
    CLIOPT("max-hints", INT, struct ag_opts, cfg.max_hints, .min = 1, .max = AR_MAX_HINTS,
	   .def = "1024", .help = "cache hints held"),
    CLIOPT("hint-pressure", DOUBLE, struct ag_opts, cfg.pressure_start, .min = 0, .max = 0.99,
	   .def = "0.7", .metavar = "KV", .help = "KV-cache usage above which hints age faster"),
    CLIOPT("hint-max-rate", DOUBLE, struct ag_opts, cfg.pressure_max_rate, .min = 1, .max = 1000,
	   .def = "4", .metavar = "F", .help = "aging rate at full KV cache"),
    CLIOPT("traffic-window-ms", UINT, struct ag_opts, cfg.traffic_window_ms, .min = 1,
	   .max = 86400000, .def = "60000", .metavar = "MS",
	   .help = "traffic hint lifetime after the last packet"),
    CLIOPT("controller", STRV, struct ag_opts, controllers,
	   .count_off = CLIOPT_COUNT(struct ag_opts, ncontrollers), .metavar = "ADDR",
	   .help = "aibld's source address, repeatable: its polls\n"
		   "get reserved connections a flood cannot take"),
    CLIOPT("max-connections", UINT, struct ag_opts, max_conns, .min = 1, .max = 65536, .def = "256",
	   .metavar = "N", .help = "connections from other sources, together"),
    CLIOPT("max-connections-per-source", UINT, struct ag_opts, max_per_src, .min = 1, .max = 65536,
	   .def = "16", .metavar = "N", .help = "connections from one address"),
    CLIOPT("controller-connections", UINT, struct ag_opts, reserve, .min = 1, .max = 65536,
	   .def = "32", .metavar = "N", .help = "reserved for --controller addresses"),
    CLIOPT("request-timeout-ms", UINT, struct ag_opts, request_ms, .min = 100, .max = 600000,
	   .def = "10000", .metavar = "MS",
	   .help = "a request must be in and answered within this,\n"
		   "however slowly its bytes trickle"),
    CLIOPT("verbose", FLAG, struct ag_opts, verbose, .short_name = 'v',
	   .help = "debug logging (and libbpf's)"),
};

static const struct cliopt_prog ag_prog = {
    .name = "aibl-agent",
    .synopsis = "Usage: aibl-agent --listen ADDR:PORT --name NODE --model-server URL [OPTIONS]\n"
		"       aibl-agent --read-metrics FILE...  (what the agent reads from scrapes)\n"
		"       aibl-agent --derive-key MASTER_KEY_FILE NODE  (the node's --key)\n"
		"Node agent: serves GET /v1/report for aibld.",
    .opts = ag_rows,
    .nopts = CLIOPT_NOPTS(ag_rows),
};

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

/*
 * With a key, only a request signed with it for what it asks (what: the
 * AIBL_AUTH_REQ_* string, a load's with the model's name) is served: the
 * controller signs each poll and each load with the node's key and a
 * fresh nonce. The report names clients, and an agent that signed any
 * nonce it was sent would be a signing oracle; a load takes memory. A
 * request signature is taken once (replay guard). label names the
 * request in msg.
 */
static int ag_req_auth(struct MHD_Connection *c, const char *what, const char *label,
		       struct aibl_sig *as, char *msg, size_t len)
{
	const char *hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, AIBL_AUTH_HEADER);
	const char *why = NULL;
	int err;

	if (!hdr) {
		snprintf(msg, len,
			 "%s refused: the request is not signed (" AIBL_AUTH_HEADER
			 " with the node's key)",
			 label);
		return -ENOKEY;
	}
	err = aibl_auth__parse(hdr, as, &why);
	if (!err)
		err = aibl_auth__verify_req_sig(&ag_key, as, what, time(NULL), AIBL_AUTH_WINDOW_S);
	if (!err && aibl_replay__seen(&ag_req_replay, as, time(NULL), AIBL_AUTH_WINDOW_S))
		err = -EALREADY;
	if (err)
		snprintf(msg, len, "%s refused: %s%s%s", label,
			 err == -EALREADY ? "request signature already used (replay)"
					  : aibl_auth__strerror(err),
			 why ? ": " : "", why ? why : "");
	return err;
}

/* the client's address, numeric, without its port */
static bool ag_client_addr(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return ci && http_guard__addr_str(ci->client_addr, buf, len);
}

/*
 * The open-connection count a poll states (AR_OPEN_HEADER), NULL none.
 * With a key, only one signed for the poll's nonce (as, verified):
 * anyone on the way could otherwise end an unload's wait for a balancer's
 * connections, or stretch it to its timeout. One not taken states nothing
 * (agent__served), as a poll without a count; said once a minute.
 */
static const char *ag_open_count(struct MHD_Connection *c, const struct aibl_sig *as,
				 const char *addr)
{
	static uint64_t warned_ms;
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, AR_OPEN_HEADER);
	const char *hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, AIBL_OPEN_SIG_HEADER);
	char what[sizeof(AIBL_AUTH_REQ_OPEN) + 32 + AR_MODEL_LEN];
	const char *why = NULL;
	struct aibl_sig os;
	uint64_t now, last;
	int err;

	if (!v || !ag_has_key)
		return v;
	err = hdr ? aibl_auth__parse(hdr, &os, &why) : -ENOKEY;
	if (!err && strcmp(os.nonce, as->nonce))
		err = -ESTALE;
	if (!err && strlen(v) + sizeof(AIBL_AUTH_REQ_OPEN) > sizeof(what))
		err = -EBADMSG;
	if (!err) {
		snprintf(what, sizeof(what), "%s%s", AIBL_AUTH_REQ_OPEN, v);
		err = aibl_auth__verify_req_sig(&ag_key, &os, what, time(NULL), AIBL_AUTH_WINDOW_S);
	}
	if (!err)
		return v;
	now = clock_mono_ms();
	last = __atomic_load_n(&warned_ms, __ATOMIC_RELAXED);
	if ((!last || now - last >= 60000) &&
	    __atomic_compare_exchange_n(&warned_ms, &last, now, false, __ATOMIC_RELAXED,
					__ATOMIC_RELAXED))
		pr_warn("report: the open-connection count of %s's poll not taken: %s%s%s\n",
			addr ? addr : "a client",
			err == -ENOKEY ? "no " AIBL_OPEN_SIG_HEADER " header"
				       : aibl_auth__strerror(err),
			why ? ": " : "", why ? why : "");
	return NULL;
}

/*
 * The decap program's counters and interface into r (the report's "decap",
 * GET /v1/decap): read when asked, so a report has them as of its poll.
 * 0, or -errno where they cannot be read (r->decap stays false).
 */
static int ag_decap_fill(struct agent_report *r)
{
	__u64 v[AIBL_NCNT__MAX];
	int err;

	if (!ag_decap)
		return -ENOENT;
	err = decap__counters(ag_decap, v);
	if (err)
		return err;
	for (int i = 0; i < AIBL_NCNT__MAX; i++)
		r->decap_counters[i] = v[i] > INT64_MAX ? INT64_MAX : (int64_t)v[i];
	if (!if_indextoname(decap__ifindex(ag_decap), r->decap_if))
		r->decap_if[0] = '\0';
	r->decap = true;
	return 0;
}

/* a --controller address */
static bool ag_client_is_controller(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return ci && http_guard__is_prio(&ag_gcfg, ci->client_addr);
}

static enum MHD_Result ag_report(struct MHD_Connection *c)
{
	char sig[AIBL_AUTH_HDR_MAX], msg[256], addr[INET6_ADDRSTRLEN];
	struct agent_report r;
	uint64_t seq;
	struct aibl_sig as = {};
	char *body;
	int err;

	if (ag_has_key && ag_req_auth(c, AIBL_AUTH_REQ_REPORT, "report", &as, msg, sizeof(msg)))
		return ag_error(c, MHD_HTTP_UNAUTHORIZED, msg);
	err = agent__report_seq(&ag, &r, &seq);
	/* who polls, for an unload's drain (the answer is sent below; a
	 * poller that loses it polls again and is waited for). Without a key,
	 * where --controller names the balancers, only they: anyone may fetch
	 * a report, and 16 others polling faster pushed the balancer out of
	 * the pollers' table, so an unload waited for them and not for it */
	if (!err && (ag_has_key || !ag_gcfg.nprio || ag_client_is_controller(c)) &&
	    ag_client_addr(c, addr, sizeof(addr)))
		agent__served(&ag, addr, seq, ag_open_count(c, &as, addr));
	if (err) {
		agent_report__free(&r);
		return ag_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, strerror(-err));
	}
	/* a report without them still tells the controller all else */
	if (ag_decap && (err = ag_decap_fill(&r)))
		pr_warn("report: decap counters not read: %s\n", strerror(-err));
	body = agent_report__to_json(&r);
	agent_report__free(&r);
	if (!body)
		return ag_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, strerror(errno));
	if (!ag_has_key)
		return ag_send(c, MHD_HTTP_OK, "application/json", body, NULL);
	/* the controller's nonce makes a recorded report useless later */
	err = aibl_auth__sign(&ag_key, time(NULL), as.nonce, body, strlen(body), sig, sizeof(sig));
	if (err) {
		free(body);
		return ag_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot sign the report");
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
		struct aibl_sig as;
		const char *why = NULL;

		/* no nonce: a report's signature (the poll's nonce, the same
		 * key) is no hint post's, or a recorded report carrying hints
		 * could be posted back to keep them alive */
		err = sig ? aibl_auth__parse(sig, &as, &why) : -ENOKEY;
		if (!err)
			err = aibl_auth__verify_sig(&ag_key, &as, "", http_body__str(cc), cc->len,
						    time(NULL), AIBL_AUTH_WINDOW_S);
		if (!err && aibl_replay__seen(&ag_replay, &as, time(NULL), AIBL_AUTH_WINDOW_S))
			return ag_error(c, MHD_HTTP_UNAUTHORIZED,
					"hints refused: signature already used (replay)");
		if (err) {
			snprintf(msg, sizeof(msg), "hints refused: %s%s%s",
				 err == -ENOKEY ? "no " AIBL_AUTH_HEADER " header"
						: aibl_auth__strerror(err),
				 why ? ": " : "", why ? why : "");
			return ag_error(c, MHD_HTTP_UNAUTHORIZED, msg);
		}
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

/*
 * POST /v1/load {"model": NAME}: load a model in the background (the
 * controller's background load, docs/agent.md). POST /v1/unload: drain it,
 * then unload it (an operator or an autoscaler moving a model). With a key
 * the request is signed like a report request, for AIBL_AUTH_REQ_LOAD or
 * AIBL_AUTH_REQ_UNLOAD and the name; without one only the node itself and
 * the --controller addresses may ask: a load takes memory and may evict
 * another model, an unload takes the model away.
 */
static enum MHD_Result ag_post_op(struct MHD_Connection *c, const struct http_body *cc, bool unload)
{
	const char *op = unload ? "unload" : "load";
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, AIBL_AUTH_HEADER);
	char msg[AR_MODEL_LEN + AR_URL_LEN + 64], server[AR_URL_LEN] = "", *body = NULL;
	char model[AR_MODEL_LEN];
	json_t *req = NULL, *m;
	const char *name;
	long wait_ms = -1;
	unsigned int status;
	size_t len;
	int err;

	if (cc->too_big)
		return ag_error(c, 413, "body over the size limit");
	if (ag_has_key && !sig)
		return ag_error(c, MHD_HTTP_UNAUTHORIZED,
				unload ? "unload refused: no " AIBL_AUTH_HEADER " header"
				       : "load refused: no " AIBL_AUTH_HEADER " header");
	req = json_loadb(http_body__str(cc), cc->len, 0, NULL);
	m = json_object_get(req, "model");
	name = json_string_value(m);
	len = name ? json_string_length(m) : 0;
	if (!json_is_object(req) || !name || !len || len >= AR_MODEL_LEN || strlen(name) != len) {
		json_decref(req);
		return ag_error(c, MHD_HTTP_BAD_REQUEST,
				"a JSON object with \"model\" (1 to 127 characters) is required");
	}
	memcpy(model, name, len + 1);
	/* an unload's own bound on the wait for open connections */
	m = json_object_get(req, "drain_timeout_ms");
	if (m && (!unload || !json_is_integer(m) || json_integer_value(m) < 0 ||
		  json_integer_value(m) > AR_DRAIN_TIMEOUT_MAX_MS)) {
		json_decref(req);
		return ag_error(c, MHD_HTTP_BAD_REQUEST,
				unload ? "\"drain_timeout_ms\": an integer from 0 to 3600000"
				       : "\"drain_timeout_ms\" is for unloads");
	}
	if (m)
		wait_ms = (long)json_integer_value(m);
	json_decref(req);
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)model[i] < 0x21 || model[i] == 0x7f)
			return ag_error(c, MHD_HTTP_BAD_REQUEST,
					"\"model\": no spaces or control characters");
	}
	/* an adapter is a directory under --lora-dir, never a path out of it */
	if (ag.cfg.lora_dir && (strchr(model, '/') || model[0] == '.'))
		return ag_error(c, MHD_HTTP_BAD_REQUEST,
				"\"model\": an adapter name under --lora-dir has no '/' and no "
				"leading '.'");
	if (ag_has_key) {
		struct aibl_sig as;
		char what[AIBL_AUTH_WHAT_MAX];

		/* an unload's drain bound is signed with it */
		if (unload)
			aibl_auth__unload_what(what, sizeof(what), model, wait_ms);
		else
			snprintf(what, sizeof(what), "%s%s", AIBL_AUTH_REQ_LOAD, model);
		if (ag_req_auth(c, what, op, &as, msg, sizeof(msg)))
			return ag_error(c, MHD_HTTP_UNAUTHORIZED, msg);
	} else if (!ag_client_is_loopback(c) && !ag_client_is_controller(c)) {
		return ag_error(c, MHD_HTTP_FORBIDDEN,
				unload ? "unloads come from this node or a --controller address, "
					 "or are signed (--key)"
				       : "loads come from this node or a --controller address, or "
					 "are signed (--key)");
	}
	err = unload ? agent__unload(&ag, model, wait_ms, server, sizeof(server), msg, sizeof(msg))
		     : agent__load(&ag, model, server, sizeof(server), msg, sizeof(msg));
	switch (err) {
	case 0:
	case -EINPROGRESS:
		status = MHD_HTTP_ACCEPTED;
		break;
	case -EALREADY:
		status = MHD_HTTP_OK;
		break;
	case -EBUSY:
		status = MHD_HTTP_CONFLICT;
		break;
	case -EOPNOTSUPP:
		status = MHD_HTTP_NOT_IMPLEMENTED;
		break;
	default:
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
	}
	if (err && err != -EALREADY && err != -EINPROGRESS)
		return ag_error(c, status, msg);
	/* resident: what the model is (loaded already; unloaded already, or
	 * hidden from the reports from now on) */
	req = json_pack("{s:s, s:s, s:b}", "model", model, "server", server, "resident",
			!unload && err == -EALREADY);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!body)
		return MHD_NO;
	return ag_send(c, status, "application/json", body, NULL);
}

/*
 * GET /v1/load: the last load or unload asked (POST /v1/load, /v1/unload):
 * {"op", "model", "server", "busy", "hidden", "ms", "status", "error"}, or
 * {} none: busy while it runs, hidden while the reports say an unload's
 * model is not resident, ms how long it has run or took, status the
 * engine's HTTP answer (0 none yet), error why it failed ("" it did not);
 * an unload's also "draining" (the engine not asked yet), "open_flows"
 * (the connections of the model the balancers last said they hold here,
 * -1 not said yet) and "open_timed_out" (unloaded with some still open).
 * Only for loopback and --controller clients.
 */
static enum MHD_Result ag_get_load(struct MHD_Connection *c)
{
	struct agent_load l;
	json_t *j;
	char *body;

	/* what a node loads is in its reports, which a key guards */
	if (!ag_client_is_loopback(c) && !ag_client_is_controller(c))
		return ag_error(c, MHD_HTTP_FORBIDDEN,
				"the load state is for this node and the --controller addresses");
	agent__load_state(&ag, &l);
	if (!l.model[0])
		j = json_object();
	else
		j = json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:i, s:s}", "op",
			      l.unload ? "unload" : "load", "model", l.model, "server", l.server,
			      "busy", l.busy, "hidden", l.hidden, "ms",
			      (json_int_t)((l.busy ? clock_mono_ms() : l.ended_ms) - l.started_ms),
			      "status", (int)l.status, "error", l.error);
	/* an unload's wait for the balancers' connections */
	if (j && l.model[0] && l.unload &&
	    (json_object_set_new(j, "draining", json_boolean(l.draining)) ||
	     json_object_set_new(j, "open_flows", json_integer(l.open)) ||
	     json_object_set_new(j, "open_timed_out", json_boolean(l.open_timed_out)))) {
		json_decref(j);
		j = NULL;
	}
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!body)
		return MHD_NO;
	return ag_send(c, MHD_HTTP_OK, "application/json", body, NULL);
}

/*
 * GET /v1/decap: the node program's counters by name (include/aibl.h,
 * AIBL_NODE_COUNTERS), summed over the CPUs, and where it is attached:
 * {"interface", "counters": {"pass": N, "decap_ipip": N, ...}}. What an
 * operator reads to see whether the balancer's packets arrive and why
 * some are refused. 404 without --decap. Only for loopback and
 * --controller clients, as /v1/load.
 */
static enum MHD_Result ag_get_decap(struct MHD_Connection *c)
{
	struct agent_report r;
	char *body;
	json_t *j;
	int err;

	if (!ag_client_is_loopback(c) && !ag_client_is_controller(c))
		return ag_error(
		    c, MHD_HTTP_FORBIDDEN,
		    "the decap counters are for this node and the --controller addresses");
	if (!ag_decap)
		return ag_error(c, MHD_HTTP_NOT_FOUND,
				"no decap program here (aibl-agent --decap IFACE)");
	agent_report__init(&r);
	err = ag_decap_fill(&r);
	if (err)
		return ag_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, strerror(-err));
	j = agent_report__decap_json(&r);
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!body)
		return MHD_NO;
	return ag_send(c, MHD_HTTP_OK, "application/json", body, NULL);
}

/* the largest body a POST to url may have: a load's or an unload's is a
 * model name and a drain bound, hints up to a report's worth */
static size_t ag_post_max(const char *url)
{
	return !strcmp(url, "/v1/hints") ? AR_MAX_BYTES : AG_OP_MAX_BYTES;
}

/*
 * A POST that can never be authorised is answered at its headers: its body
 * (up to ag_post_max()) is not read and held first. A keyed agent needs a
 * signature header that parses, of a time within the window (its MAC needs
 * the body); one without a key takes hints from this node only, and loads
 * and unloads from this node and the --controller addresses. A body
 * announced over the limit is refused too. The full checks run once the
 * body is in. true: answered (*ret).
 */
static bool ag_post_refused(struct MHD_Connection *c, const char *url, enum MHD_Result *ret)
{
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, AIBL_AUTH_HEADER);
	const char *clen =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	bool hints = !strcmp(url, "/v1/hints"), unload = !strcmp(url, "/v1/unload");
	const char *op = hints ? "hints" : unload ? "unload" : "load";

	if (!hints && !unload && strcmp(url, "/v1/load")) {
		*ret = ag_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		return true;
	}
	if (ag_has_key && !sig) {
		*ret = ag_error(c, MHD_HTTP_UNAUTHORIZED,
				hints	 ? "hints refused: no " AIBL_AUTH_HEADER " header"
				: unload ? "unload refused: no " AIBL_AUTH_HEADER " header"
					 : "load refused: no " AIBL_AUTH_HEADER " header");
		return true;
	}
	if (ag_has_key) {
		const char *why = NULL;
		struct aibl_sig as;
		char msg[256];
		int err = aibl_auth__parse(sig, &as, &why);

		if (!err)
			err = aibl_auth__check_time(&as, time(NULL), AIBL_AUTH_WINDOW_S);
		if (err) {
			snprintf(msg, sizeof(msg), "%s refused: %s%s%s", op,
				 aibl_auth__strerror(err), why ? ": " : "", why ? why : "");
			*ret = ag_error(c, MHD_HTTP_UNAUTHORIZED, msg);
			return true;
		}
	}
	/* libmicrohttpd has checked it is a number; one too large for
	 * strtoull reads as ULLONG_MAX */
	if (clen && strtoull(clen, NULL, 10) > ag_post_max(url)) {
		char msg[128];

		snprintf(msg, sizeof(msg), "%s refused: a body over %zu bytes", op,
			 ag_post_max(url));
		*ret = ag_error(c, 413, msg);
		return true;
	}
	if (ag_has_key || ag_client_is_loopback(c) || (!hints && ag_client_is_controller(c)))
		return false;
	*ret = ag_error(c, MHD_HTTP_FORBIDDEN,
			hints	 ? "hints from other hosts need a key (--key) and a signature"
			: unload ? "unloads come from this node or a --controller address, or are "
				   "signed (--key)"
				 : "loads come from this node or a --controller address, or are "
				   "signed (--key)");
	return true;
}

static enum MHD_Result ag_handler(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http_body *cc = *con_cls;
	bool post = !strcmp(method, "POST");

	if (post && !cc) {
		enum MHD_Result ret;

		if (ag_post_refused(c, url, &ret))
			return ret;
		cc = calloc(1, sizeof(*cc));
		if (!cc)
			return MHD_NO;
		*con_cls = cc;
		return MHD_YES;
	}
	if (post && *upload_size) {
		if (http_body__feed(cc, upload, *upload_size, ag_post_max(url)))
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/v1/load") && !strcmp(method, "GET"))
		return ag_get_load(c);
	if (!strcmp(url, "/v1/load") || !strcmp(url, "/v1/unload")) {
		if (!post)
			return ag_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
					url[4] == 'l' ? "GET or POST" : "POST only");
		return ag_post_op(c, cc, url[4] == 'u');
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
	if (!strcmp(url, "/v1/decap"))
		return ag_get_decap(c);
	if (!strcmp(url, "/healthz"))
		return ag_send(c, MHD_HTTP_OK, "text/plain", strdup("ok"), NULL);
	return ag_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint");
}

/*
 * aibl-agent --derive-key MASTER_FILE NODE: the node's key (auth.h) on
 * stdout, for the node's --key file. Run where the master key is (the
 * controller); only the derived key goes to the node.
 */
static int ag_derive_key(int argc, char **argv)
{
	struct aibl_key master, nk;
	char msg[256];
	int err;

	if (argc != 2) {
		fprintf(stderr, "Usage: aibl-agent --derive-key MASTER_KEY_FILE NODE\n");
		return 2;
	}
	if (!aibl_name__valid(argv[1], AR_NAME_LEN)) {
		pr_err("node name '%s': 1 to %d of %s", argv[1], AR_NAME_LEN - 1,
		       AIBL_NAME_CHARSET);
		return 2;
	}
	err = aibl_key__load(argv[0], &master, msg, sizeof(msg));
	if (err) {
		pr_err("%s", msg);
		return 2;
	}
	err = aibl_key__derive(&master, argv[1], &nk);
	OPENSSL_cleanse(&master, sizeof(master));
	if (err) {
		pr_err("cannot derive the key: %s", strerror(-err));
		return 1;
	}
	printf("%.*s\n", (int)nk.len, (const char *)nk.key);
	OPENSSL_cleanse(&nk, sizeof(nk));
	return 0;
}

static void ag_on_signal(int sig)
{
	ag_stop = 1;
}

int main(int argc, char **argv)
{
	struct ag_opts o = {};
	struct agent_cfg *cfg = &o.cfg;
	struct sigaction sa = {.sa_handler = ag_on_signal};
	struct decap_opts dopts = {};
	struct decap *decap = NULL;
	struct MHD_Daemon *d = NULL;
	struct http_guard_cfg *gcfg = &ag_gcfg;
	struct MHD_OptionItem gopts[HTTP_GUARD_NOPTS];
	struct http_guard *guard = NULL;
	bool inited = false;
	char msg[256];
	int err = 0, ifindex;

	log_set_ident("aibl-agent", false);
	/* an offline mode, not an agent: see readmetrics.h */
	if (argc > 1 && !strcmp(argv[1], "--read-metrics"))
		return agent__read_metrics(argc - 2, argv + 2);
	if (argc > 1 && !strcmp(argv[1], "--derive-key"))
		return ag_derive_key(argc - 2, argv + 2);
	err = cliopt__parse(&ag_prog, argc, argv, &o);
	if (err)
		return err > 0 ? 0 : 2;
	if (o.verbose)
		log_set_level(LOG_LVL_DEBUG);
	if (!cfg->name[0] || strlen(cfg->name) >= AR_NAME_LEN) {
		pr_err("--name: 1 to %d characters\n", AR_NAME_LEN - 1);
		return 2;
	}
	for (int i = 0; i < cfg->nnotify; i++) {
		const char *u = cfg->notify[i];

		if ((strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) ||
		    strlen(u) >= AR_URL_LEN) {
			pr_err(
			    "--notify %s: not an http:// or https:// URL of under %d characters\n",
			    u, AR_URL_LEN);
			return 2;
		}
	}
	/* it goes into the path the controllers are told on */
	if (cfg->nnotify && !aibl_name__valid(cfg->name, AIBL_NAME_LEN)) {
		pr_err("--notify needs a --name of 1 to %d of %s\n", AIBL_NAME_LEN - 1,
		       AIBL_NAME_CHARSET);
		return 2;
	}
	if (cfg->accel && strlen(cfg->accel) >= sizeof(((struct agent_report *)0)->accel)) {
		pr_err("--accel: name too long\n");
		return 2;
	}
	if (o.key_file) {
		err = aibl_key__load(o.key_file, &ag_key, msg, sizeof(msg));
		if (err) {
			pr_err("%s\n", msg);
			return 2;
		}
		ag_has_key = true;
		aibl_replay__init(&ag_replay);
		aibl_replay__init(&ag_req_replay);
	}
	for (int i = 0; i < o.ncontrollers; i++) {
		if (http_guard__add_prio(gcfg, o.controllers[i])) {
			pr_err("--controller %s: not an IPv4 or IPv6 address", o.controllers[i]);
			return 2;
		}
	}
	if (!o.ncontrollers && !listen_addr__is_loopback(&o.listen.ss))
		pr_warn("no --controller: aibld's polls have no reserved connections, so a flood "
			"of connections from elsewhere can make them fail and take this node out; "
			"name aibld's source address with --controller\n");
	gcfg->max_conns = o.max_conns;
	gcfg->max_per_src = o.max_per_src;
	gcfg->reserve = o.reserve;
	gcfg->request_ms = o.request_ms;
	gcfg->completed = http_body__completed;
	log_setup_libbpf(o.verbose);
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		pr_err("libcurl initialisation failed\n");
		return 1;
	}
	err = agent__init(&ag, cfg, msg, sizeof(msg));
	if (err) {
		pr_err("%s\n", msg);
		err = 2;
		goto out;
	}
	inited = true;

	if (o.decap_if) {
		ifindex = if_nametoindex(o.decap_if);
		if (!ifindex) {
			pr_err("--decap %s: %s\n", o.decap_if, strerror(errno));
			err = 1;
			goto out;
		}
		dopts.pin_dir = o.pin_dir;
		dopts.prepare = decap_accept;
		dopts.prepare_arg = &o;
		err = decap__attach(ifindex, &dopts, &decap);
		if (err) {
			pr_err("--decap %s: cannot attach the decap program: %s\n", o.decap_if,
			       strerror(-err));
			err = 1;
			goto out;
		}
		ag.cli_fd = decap__clients_fd(decap);
		ag_decap = decap;
		pr_info("decap program attached at %s ingress\n", o.decap_if);
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
	err = http_guard__new(gcfg, &guard);
	if (err) {
		pr_err("connection guard: %s\n", strerror(-err));
		err = 1;
		goto out;
	}
	http_guard__options(guard, gopts);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
				 (o.listen.ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
			     0, http_guard__accept, guard, ag_handler, NULL, MHD_OPTION_ARRAY,
			     gopts, MHD_OPTION_SOCK_ADDR, &o.listen.ss, MHD_OPTION_THREAD_POOL_SIZE,
			     (unsigned int)2, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
			     MHD_OPTION_END);
	if (!d) {
		pr_err("cannot listen on %s: %s\n", o.listen.spec, strerror(errno));
		err = 1;
		goto out;
	}
	pr_info("node %s: serving on %s, %d model server(s)%s%s\n", cfg->name, o.listen.spec,
		cfg->nservers, ag_has_key ? ", signed reports" : "",
		cfg->no_nvml ? "" : ", GPUs from NVML");
	while (!ag_stop) {
		/* signals end the sleep early */
		sleep(DECAP_REFRESH_S);
		if (decap && !ag_stop && decap__refresh_addrs(decap))
			pr_warn("decap: cannot read the node's addresses\n");
	}
	pr_info("stopping\n");
	err = 0;
out:
	if (d)
		MHD_stop_daemon(d);
	http_guard__free(guard);
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
	/* a GPU thread still in the driver: the library's destructors, which
	 * exit() runs, may wait for the very lock the hung call holds */
	if (inited && ag.gpu_thread_stuck) {
		fflush(NULL);
		_exit(err);
	}
	return err;
}
