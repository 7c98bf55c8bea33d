// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aiblctl status, node drain|undrain: the controller's HTTP API (contract
 * 3: GET /v1/status, POST /v1/nodes/NAME/drain|undrain), through libcurl.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include "addr.h"
#include "clock.h"
#include "ctl.h"
#include "curlopt.h"
#include "report.h"
#include "status_json.h"

#define API_TIMEOUT_MS	       10000
#define API_CONNECT_TIMEOUT_MS 3000
#define TOKEN_MAX	       4096

/* the most of an answer kept; the status document is far smaller */
#define API_MAX_BODY (64 << 20)
/* the most of an error page an error message quotes */
#define API_REASON_MAX 240

struct api_buf {
	char *data;
	size_t len;
	bool too_big; /* cut at API_MAX_BODY */
};

static size_t api_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct api_buf *b = userdata;
	size_t n = size * nmemb;
	char *d;

	/* the status document is small; refuse to buffer anything absurd */
	if (b->len + n > API_MAX_BODY) {
		b->too_big = true;
		return 0;
	}
	d = realloc(b->data, b->len + n + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, ptr, n);
	b->data = d;
	b->len += n;
	d[b->len] = '\0';
	return n;
}

/* --token-file, else $AIBL_API_TOKEN; "" when neither. 0, or -1 and why in err */
static int api_token(char *tok, size_t len, char *err, size_t errlen)
{
	const char *env = getenv("AIBL_API_TOKEN");
	size_t n = 0;
	FILE *f;

	tok[0] = '\0';
	if (!ctl.token_file) {
		if (env)
			snprintf(tok, len, "%s", env);
		goto trim;
	}
	f = fopen(ctl.token_file, "r");
	if (!f) {
		snprintf(err, errlen, "token file %s: %s", ctl.token_file, strerror(errno));
		return -1;
	}
	n = fread(tok, 1, len - 1, f);
	fclose(f);
	tok[n] = '\0';
trim:
	n = strlen(tok);
	while (n && isspace((unsigned char)tok[n - 1]))
		tok[--n] = '\0';
	if (ctl.token_file && !n) {
		snprintf(err, errlen, "token file %s is empty", ctl.token_file);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isgraph((unsigned char)tok[i])) {
			snprintf(err, errlen, "the API token holds a space or control character");
			return -1;
		}
	}
	return 0;
}

/*
 * One request; *code the HTTP status, *body the response. Errors that stop
 * the request (no controller, timeout) are reported here.
 */
static int api_call(const char *method, const char *path, long *code, struct api_buf *body)
{
	char url[2048], errbuf[CURL_ERROR_SIZE] = "", tok[TOKEN_MAX], auth[TOKEN_MAX + 32];
	char tokerr[512] = "";
	struct curl_slist *hdrs = NULL;
	size_t alen = strlen(ctl.api);
	CURLcode rc;
	CURL *c;
	int ret = 0;

	/* a token that cannot be read or sent is no reason to fail what
	 * needs none (status, node poll): asked without it, said on a 401 */
	if (api_token(tok, sizeof(tok), tokerr, sizeof(tokerr)))
		tok[0] = '\0';
	/* allow --api http://host:port/ as well as without the slash */
	while (alen && ctl.api[alen - 1] == '/')
		alen--;
	snprintf(url, sizeof(url), "%.*s%s", (int)alen, ctl.api, path);
	c = curl_easy_init();
	if (!c)
		return ctl_fail("cannot start libcurl");
	/* never through a proxy from the environment (http_proxy for pip
	 * and model downloads): it would get the bearer token, and cannot
	 * reach a loopback API anyway */
	aibl_curl__direct(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)API_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)API_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, api_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "aiblctl/" CTL_VERSION);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
	if (tok[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
		hdrs = curl_slist_append(hdrs, auth);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		ret = ctl_fail("controller API %s: %s%s", url,
			       body->too_big ? "an answer over 64 MiB, not a controller's"
			       : errbuf[0]   ? errbuf
					     : curl_easy_strerror(rc),
			       rc == CURLE_COULDNT_CONNECT ? " (is aibld running? see --api)" : "");
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
	if (*code == 401 && tokerr[0])
		ret = ctl_fail("controller API %s: HTTP 401, no token sent: %s", url, tokerr);
out:
	/* the token is a secret: do not leave it in freed memory */
	explicit_bzero(tok, sizeof(tok));
	explicit_bzero(auth, sizeof(auth));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return ret;
}

/* The "error" member of a JSON error body, else the body itself (trimmed). */
static const char *api_reason(json_t *doc, struct api_buf *b)
{
	const char *e = json_string_value(json_object_get(doc, AIBL_SJ_ERROR));

	if (e)
		return e;
	if (!b->data)
		return "empty response";
	/* a page that is not the API's (a proxy's, a web server's): its
	 * start says whose, the rest would flood the terminal */
	if (b->len > API_REASON_MAX)
		strcpy(b->data + API_REASON_MAX - 3, "...");
	for (size_t n = strlen(b->data); n && isspace((unsigned char)b->data[n - 1]); n--)
		b->data[n - 1] = '\0';
	return b->data;
}

int ctl_api_get(const char *path, json_t **doc)
{
	struct api_buf b = {};
	json_error_t jerr;
	long code = 0;
	int ret;

	*doc = NULL;
	ret = api_call("GET", path, &code, &b);
	if (ret)
		goto out;
	*doc = b.data ? json_loadb(b.data, b.len, 0, &jerr) : NULL;
	if (code != 200 || !json_is_object(*doc)) {
		ret = ctl_fail("controller API: GET %s: HTTP %ld: %s", path, code,
			       api_reason(*doc, &b));
		json_decref(*doc);
		*doc = NULL;
	}
out:
	free(b.data);
	return ret;
}

static void status_help(FILE *f)
{
	fprintf(f,
		"Usage: aiblctl [--api URL] status\n"
		"\n"
		"The controller's view (GET /v1/status): version, uptime, services with their\n"
		"nodes' weights and slots, and every node's state, health, report age, GPU\n"
		"utilisation, queue depth, in-flight requests, KV-cache usage and TTFT.\n"
		"Needs aibld running (default API %s).\n",
		CTL_DEFAULT_API);
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

/* a node's resident model that aibld loaded there (status "held") */
static bool held(json_t *node, const char *model)
{
	json_t *h;
	size_t i;

	json_array_foreach(json_object_get(node, AIBL_SJ_HELD), i, h)
	{
		if (!strcmp(jstr(h, AIBL_SJ_LOAD_MODEL), model))
			return true;
	}
	return false;
}

/*
 * A JSON number as text: integers exact, reals with d decimals. The
 * controller reports -1 for what it does not know (a node without an agent
 * has no GPU figures): shown as "-".
 */
static char *jnum(char *buf, size_t len, json_t *o, const char *k, int d, const char *unit)
{
	json_t *v = json_object_get(o, k);

	if (json_is_number(v) && json_number_value(v) < 0)
		snprintf(buf, len, "-");
	else if (json_is_integer(v))
		snprintf(buf, len, "%lld%s", (long long)json_integer_value(v), unit);
	else if (json_is_real(v))
		snprintf(buf, len, "%.*f%s", d, json_real_value(v), unit);
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
	else
		snprintf(buf, len, "-");
	return buf;
}

/* an ai service's least queue wait at a node that serves it ("-" unknown):
 * the order in which services claim background loads */
static const char *svc_wait(char *buf, size_t len, json_t *sv)
{
	json_t *w = json_object_get(sv, AIBL_SJ_AI_WAIT_MS);
	double ms = json_is_number(w) ? json_number_value(w) : -1;

	if (!(ms >= 0))
		return "-";
	if (ms < 1)
		return "0ms";
	/* a figure past any real wait still converts to a u64 */
	return ctl_fmt_dur_ns(buf, len, (__u64)(fmin(ms, 1e12) * 1e6));
}

/* how long every resident node of an ai service has been saturated ("-"
 * not now, or not an ai service): the cold-start clock */
static const char *svc_saturated(char *buf, size_t len, json_t *sv)
{
	json_t *v = json_object_get(sv, AIBL_SJ_AI_SATURATED_MS);

	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return "-";
	return ctl_fmt_dur_ns(buf, len, (__u64)json_integer_value(v) * 1000000);
}

/*
 * A node's decap program as its agent last reported it: "N in, M dropped",
 * in the packets it took for a VIP here (decapsulated, or plain in
 * l2dsr), dropped those it refused; "-" without one.
 */
static const char *node_decap(char *buf, size_t len, json_t *n)
{
	static const int in[] = {AIBL_NCNT_DECAP4, AIBL_NCNT_DECAP6, AIBL_NCNT_DECAP46,
				 AIBL_NCNT_DIRECT};
	json_t *dc = json_object_get(n, AIBL_SJ_DECAP), *cnt, *v;
	int64_t sum = 0;

	cnt = json_object_get(dc, AIBL_SJ_DECAP_COUNTS);
	v = json_object_get(dc, AIBL_SJ_DECAP_DROPPED);
	if (!json_is_object(cnt) || !json_is_integer(v))
		return "-";
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		json_t *c = json_object_get(cnt, agent_report__decap_names[in[i]]);

		if (json_is_integer(c) && json_integer_value(c) > 0)
			sum = agent_report__count_add(sum, json_integer_value(c));
	}
	snprintf(buf, len, "%lld in, %lld dropped", (long long)sum,
		 (long long)json_integer_value(v));
	return buf;
}

static void status_print(json_t *doc)
{
	static const char *const shdr[] = {"SERVICE",	    "VIP",  "POLICY",	 "MODEL",
					   "PREFIX CACHED", "WAIT", "SATURATED", "NODES"};
	static const char *const nhdr[] = {"NODE", "ADDRESS",  "STATE",	    "HEALTHY", "REPORT AGE",
					   "GPU",  "QUEUE",    "IN-FLIGHT", "SLOTS",   "KV CACHE",
					   "TTFT", "FAILURES", "DECAP",	    "MODELS"};
	json_t *svcs = json_object_get(doc, AIBL_SJ_SERVICES),
	       *nodes = json_object_get(doc, AIBL_SJ_NODES);
	json_t *uptime = json_object_get(doc, AIBL_SJ_UPTIME_S);
	struct ctl_table *t;
	char b1[32], b2[32], b3[32], ep[INET6_ADDRSTRLEN + 16];
	union aibl_addr va;
	__u8 vf;
	size_t i, j;
	json_t *sv, *n;

	printf("aibld %s, up %s\n\n", jstr(doc, AIBL_SJ_VERSION),
	       ctl_fmt_dur_ns(b1, sizeof(b1),
			      (__u64)(json_number_value(uptime) * 1e9 > 0
					  ? json_number_value(uptime) * 1e9
					  : 0)));
	t = ctl_table__new(8, shdr, "lllllrrl");
	json_array_foreach(svcs, i, sv)
	{
		json_t *nl = json_object_get(sv, AIBL_SJ_NODES), *nd;
		char *nodes_s = NULL;
		size_t nlen = 0;
		FILE *f = open_memstream(&nodes_s, &nlen);

		json_array_foreach(nl, j, nd)
		{
			if (f)
				fprintf(f, "%s%s(w%s,%s slots,%s)", j ? " " : "",
					jstr(nd, AIBL_SJ_NAME),
					jnum(b1, sizeof(b1), nd, AIBL_SJ_WEIGHT, 0, ""),
					jnum(b2, sizeof(b2), nd, AIBL_SJ_SLOTS, 0, ""),
					jstr(nd, AIBL_SJ_STATE));
		}
		if (f)
			fclose(f);
		ctl_table__cell(t, "%s", jstr(sv, AIBL_SJ_NAME));
		/* as service list writes endpoints: [v6]:port, * every port */
		if (aibl_addr__parse(jstr(sv, AIBL_SJ_VIP), &va, &vf))
			snprintf(ep, sizeof(ep), "%s", jstr(sv, AIBL_SJ_VIP));
		else
			ctl_fmt_endpoint(
			    ep, sizeof(ep), vf, &va,
			    htons((__u16)json_integer_value(json_object_get(sv, AIBL_SJ_PORT))));
		ctl_table__cell(t, "%s/%s", ep, jstr(sv, AIBL_SJ_PROTO));
		ctl_table__cell(t, "%s", jstr(sv, AIBL_SJ_POLICY));
		ctl_table__cell(t, "%s", jstr(sv, AIBL_SJ_MODEL));
		/* an ai service: the share of prompt tokens its model's engines found
		 * cached, and whether its VIP has client affinity for it */
		if (json_is_boolean(json_object_get(sv, AIBL_SJ_AI_AFFINITY))) {
			json_t *ph = json_object_get(sv, AIBL_SJ_AI_PREFIX_HIT);

			ctl_table__cell(t, "%s, %s",
					json_is_number(ph) && json_number_value(ph) >= 0
					    ? ctl_fmt_pct(b3, sizeof(b3), json_number_value(ph))
					    : "-",
					json_is_true(json_object_get(sv, AIBL_SJ_AI_AFFINITY))
					    ? "affinity"
					    : "no affinity");
		} else {
			ctl_table__cell(t, "-");
		}
		ctl_table__cell(t, "%s", svc_wait(b3, sizeof(b3), sv));
		ctl_table__cell(t, "%s", svc_saturated(b3, sizeof(b3), sv));
		ctl_table__cell(t, "%s", nodes_s && nodes_s[0] ? nodes_s : "-");
		free(nodes_s);
	}
	ctl_table__print(t, stdout);
	ctl_table__free(t);
	putchar('\n');
	t = ctl_table__new(14, nhdr, "llllrrrrrrrrll");
	json_array_foreach(nodes, i, n)
	{
		json_t *models = json_object_get(n, AIBL_SJ_MODELS), *m;
		json_t *kv = json_object_get(n, AIBL_SJ_KV_CACHE_USAGE);
		/* the whole list, however long (64 adapters of 127 bytes): cut
		 * short, a name read as another and the load's marks were lost */
		char *ms = NULL;
		size_t mlen = 0;
		FILE *f = open_memstream(&ms, &mlen);

		json_t *load = json_object_get(n, AIBL_SJ_LOAD);
		json_t *unl = json_object_get(n, AIBL_SJ_UNLOADING);

		json_array_foreach(models, j, m)
		{
			const char *name = json_string_value(m) ? json_string_value(m) : "?";

			/* loaded by aibld in the background: "m-c*" */
			if (f)
				fprintf(f, "%s%s%s", j ? "," : "", name, held(n, name) ? "*" : "");
		}
		/* a background load: "+m-c (loading)"; one taken back, until its
		 * agent drains it (below): "-m-c (unloading)" */
		if (json_is_object(load) && f) {
			bool unload = !strcmp(jstr(load, AIBL_SJ_LOAD_OP), "unload");

			if (!unload || !json_is_object(unl))
				fprintf(f, "%s%c%s (%s)", ftell(f) ? " " : "", unload ? '-' : '+',
					jstr(load, AIBL_SJ_LOAD_MODEL),
					jstr(load, AIBL_SJ_LOAD_STATE));
		}
		/* an unload's drain: "-m-b (draining, 3 open)", "?" not counted yet */
		if (json_is_object(unl) && f) {
			json_t *o = json_object_get(unl, AIBL_SJ_UNLOADING_OPEN);

			if (json_is_integer(o) && json_integer_value(o) >= 0)
				fprintf(f, "%s-%s (draining, %lld open)", ftell(f) ? " " : "",
					jstr(unl, AIBL_SJ_UNLOADING_MODEL),
					(long long)json_integer_value(o));
			else
				fprintf(f, "%s-%s (draining, ? open)", ftell(f) ? " " : "",
					jstr(unl, AIBL_SJ_UNLOADING_MODEL));
		}
		if (f)
			fclose(f);
		ctl_table__cell(t, "%s", jstr(n, AIBL_SJ_NAME));
		ctl_table__cell(t, "%s", jstr(n, AIBL_SJ_ADDRESS));
		ctl_table__cell(t, "%s", jstr(n, AIBL_SJ_STATE));
		ctl_table__cell(t, "%s", jnum(b1, sizeof(b1), n, AIBL_SJ_HEALTHY, 0, ""));
		/* -1: never reported */
		if (json_is_number(json_object_get(n, AIBL_SJ_LAST_REPORT_AGE_MS)) &&
		    json_number_value(json_object_get(n, AIBL_SJ_LAST_REPORT_AGE_MS)) >= 0)
			ctl_table__cell(t, "%s",
					ctl_fmt_dur_ns(b1, sizeof(b1),
						       (__u64)(json_number_value(json_object_get(
								   n, AIBL_SJ_LAST_REPORT_AGE_MS)) *
							       1e6)));
		else
			ctl_table__cell(t, "-");
		ctl_table__cell(t, "%s", jnum(b1, sizeof(b1), n, AIBL_SJ_GPU_UTIL_PCT, 1, "%"));
		ctl_table__cell(t, "%s", jnum(b1, sizeof(b1), n, AIBL_SJ_QUEUE_DEPTH, 0, ""));
		ctl_table__cell(t, "%s", jnum(b1, sizeof(b1), n, AIBL_SJ_IN_FLIGHT, 0, ""));
		/* ai: what it runs before new requests wait, seen or stated */
		ctl_table__cell(t, "%s", jnum(b1, sizeof(b1), n, AIBL_SJ_AI_SLOTS, 0, ""));
		/* kv_cache_usage is a fraction 0..1 (vLLM's gpu_cache_usage_perc) */
		ctl_table__cell(t, "%s",
				json_is_number(kv) && json_number_value(kv) >= 0
				    ? ctl_fmt_pct(b2, sizeof(b2), json_number_value(kv))
				    : "-");
		ctl_table__cell(t, "%s", jnum(b3, sizeof(b3), n, AIBL_SJ_TTFT_AVG_MS, 1, " ms"));
		ctl_table__cell(t, "%s", jnum(b1, sizeof(b1), n, AIBL_SJ_FAILURES, 0, ""));
		ctl_table__cell(t, "%s", node_decap(b1, sizeof(b1), n));
		ctl_table__cell(t, "%s", ms && ms[0] ? ms : "-");
		free(ms);
	}
	ctl_table__print(t, stdout);
	ctl_table__free(t);
}

int ctl_cmd_status(int argc, char **argv)
{
	struct api_buf b = {};
	json_error_t jerr;
	json_t *doc = NULL;
	long code = 0;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(status_help);
	if (argc)
		return ctl_usage("status takes no arguments");
	ret = api_call("GET", "/v1/status", &code, &b);
	if (ret)
		goto out;
	doc = b.data ? json_loadb(b.data, b.len, 0, &jerr) : NULL;
	if (code != 200) {
		ret = ctl_fail("controller API: GET /v1/status: HTTP %ld: %s", code,
			       api_reason(doc, &b));
		goto out;
	}
	if (!json_is_object(doc)) {
		ret = ctl_fail("controller API: GET /v1/status: not a JSON object%s%s",
			       doc ? "" : ": ",
			       doc	? ""
			       : b.data ? jerr.text
					: "an empty body");
		goto out;
	}
	if (ctl.json) {
		ret = ctl_json_print(json_incref(doc));
		goto out;
	}
	status_print(doc);
out:
	json_decref(doc);
	free(b.data);
	return ret;
}

static void node_help(FILE *f)
{
	fprintf(f,
		"Usage: aiblctl [--api URL] [--token-file F] node drain|undrain|poll NAME\n"
		"       aiblctl [--api URL] [--token-file F] node unload NAME MODEL [--no-wait]\n"
		"                                               [--drain-timeout MS]\n"
		"\n"
		"drain:   the node takes no new flows; its established flows continue.\n"
		"undrain: the node takes new flows again.\n"
		"poll:    the controller polls its nodes now (after a model was loaded or\n"
		"         unloaded by hand), no sooner than poll_interval_ms / 10 after the\n"
		"         last round. Needs no token.\n"
		"unload:  the node's agent drains MODEL (its reports drop it, every balancer\n"
		"         polling it sees that, the connections of it they hold close or\n"
		"         --drain-timeout MS passes (the agent's --drain-timeout-ms without\n"
		"         it; 0: not waited for), then its --drain-ms pass) and then unloads\n"
		"         it from the engine; waits until the agent is done, and fails if\n"
		"         the engine refused (--no-wait: returns once the agent has begun).\n"
		"Through the controller (POST /v1/nodes/NAME/drain|undrain|poll, POST\n"
		"/v1/nodes/NAME/unload?model=MODEL[&drain_timeout_ms=MS], GET\n"
		"/v1/nodes/NAME/load). When aibld\n"
		"has an api_token_file, pass the token with --token-file F or $AIBL_API_TOKEN.\n");
}

static int node_set(int argc, char **argv, const char *action)
{
	bool poll = !strcmp(action, "poll");
	const char *key = poll ? AIBL_SJ_POLL : AIBL_SJ_DRAINING;
	char path[512], *esc = NULL;
	struct api_buf b = {};
	json_error_t jerr;
	json_t *doc = NULL;
	long code = 0;
	CURL *c;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(node_help);
	if (argc != 1)
		return ctl_usage("node %s needs one node NAME", action);
	c = curl_easy_init();
	esc = c ? curl_easy_escape(c, argv[0], 0) : NULL;
	if (!esc) {
		if (c)
			curl_easy_cleanup(c);
		return ctl_fail("out of memory");
	}
	snprintf(path, sizeof(path), "/v1/nodes/%s/%s", esc, action);
	curl_free(esc);
	curl_easy_cleanup(c);
	ret = api_call("POST", path, &code, &b);
	if (ret)
		goto out;
	doc = b.data ? json_loadb(b.data, b.len, 0, &jerr) : NULL;
	if (code == 404) {
		ret = ctl_fail("unknown node '%s' (controller: %s)", argv[0], api_reason(doc, &b));
		goto out;
	}
	if (code == 401 || code == 403) {
		ret = ctl_fail("controller refused node %s (HTTP %ld: %s): pass the API token with "
			       "--token-file F or AIBL_API_TOKEN",
			       action, code, api_reason(doc, &b));
		goto out;
	}
	/* a poll is asked for (202), a drain done (200) */
	if (code != (poll ? 202 : 200)) {
		ret = ctl_fail("controller API: POST %s: HTTP %ld: %s", path, code,
			       api_reason(doc, &b));
		goto out;
	}
	if (!json_is_object(doc) || !json_is_boolean(json_object_get(doc, key))) {
		ret = ctl_fail("controller API: POST %s: answer lacks \"%s\"", path, key);
		goto out;
	}
	if (ctl.json) {
		ret = ctl_json_print(json_incref(doc));
		goto out;
	}
	if (poll)
		printf("node %s: poll asked for (the controller polls its nodes within "
		       "poll_interval_ms / 10)\n",
		       argv[0]);
	else
		printf("node %s: %s\n", argv[0],
		       json_is_true(json_object_get(doc, AIBL_SJ_DRAINING))
			   ? "draining (no new flows; established flows continue)"
			   : "not draining (takes new flows)");
out:
	json_decref(doc);
	free(b.data);
	return ret;
}

static int node_drain(int argc, char **argv)
{
	return node_set(argc, argv, "drain");
}

static int node_undrain(int argc, char **argv)
{
	return node_set(argc, argv, "undrain");
}

static int node_poll(int argc, char **argv)
{
	return node_set(argc, argv, "poll");
}

/* the agent's answer in a forwarded call ({"node","agent_status","agent"}) */
static const char *agent_reason(json_t *doc, struct api_buf *b)
{
	json_t *a = json_object_get(doc, "agent");
	const char *e = json_string_value(json_object_get(a, AIBL_SJ_ERROR));

	return e ? e : api_reason(doc, b);
}

#define UNLOAD_WAIT_MS 600000 /* the engine's call: the agent's --load-timeout-ms */

static int node_unload(int argc, char **argv)
{
	char path[1024], *node = NULL, *model = NULL, *pos[2], *end;
	struct api_buf b = {};
	bool wait = true;
	json_t *doc = NULL, *a;
	long code = 0, timeout = -1, open_said = -2;
	int npos = 0;
	__u64 engine_t0 = 0; /* monotonic ms: the engine's call seen under way */
	CURL *c;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(node_help);
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--no-wait")) {
			wait = false;
		} else if (!strcmp(argv[i], "--drain-timeout")) {
			if (++i == argc)
				return ctl_usage("--drain-timeout needs MS");
			errno = 0;
			timeout = strtol(argv[i], &end, 10);
			if (errno || *end || end == argv[i] || timeout < 0 ||
			    timeout > AR_DRAIN_TIMEOUT_MAX_MS)
				return ctl_usage("--drain-timeout: MS from 0 to 3600000");
		} else if (argv[i][0] == '-' || npos == 2) {
			return ctl_usage("node unload NAME MODEL [--no-wait] [--drain-timeout MS]");
		} else {
			pos[npos++] = argv[i];
		}
	}
	if (npos != 2)
		return ctl_usage("node unload needs a node NAME and a MODEL");
	argv = pos;
	c = curl_easy_init();
	node = c ? curl_easy_escape(c, argv[0], 0) : NULL;
	model = c ? curl_easy_escape(c, argv[1], 0) : NULL;
	if (!node || !model) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	if (timeout >= 0)
		snprintf(path, sizeof(path), "/v1/nodes/%s/unload?model=%s&drain_timeout_ms=%ld",
			 node, model, timeout);
	else
		snprintf(path, sizeof(path), "/v1/nodes/%s/unload?model=%s", node, model);
	ret = api_call("POST", path, &code, &b);
	if (ret)
		goto out;
	doc = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
	/* the controller's own refusal; the agent's comes with its status */
	if ((code == 401 || code == 403) && !json_object_get(doc, "agent_status")) {
		ret = ctl_fail("controller refused node unload (HTTP %ld: %s): pass the API token "
			       "with --token-file F or AIBL_API_TOKEN",
			       code, api_reason(doc, &b));
		goto out;
	}
	if (code == 200) {
		/* nothing to do: no server there holds it */
		if (ctl.json)
			ret = ctl_json_print(json_incref(doc));
		else
			printf("node %s: %s is not resident there: nothing to unload\n", argv[0],
			       argv[1]);
		goto out;
	}
	if (code != 202) {
		ret = ctl_fail("node %s: unload of %s refused (HTTP %ld%s): %s", argv[0], argv[1],
			       code, json_object_get(doc, "agent_status") ? " from its agent" : "",
			       agent_reason(doc, &b));
		goto out;
	}
	if (!ctl.json)
		printf("node %s: draining %s, then unloading it from %s\n", argv[0], argv[1],
		       jstr(json_object_get(doc, "agent"), "server"));
	snprintf(path, sizeof(path), "/v1/nodes/%s/load", node);
	while (wait) {
		json_decref(doc);
		doc = NULL;
		free(b.data);
		b = (struct api_buf){};
		usleep(200 * 1000);
		ret = api_call("GET", path, &code, &b);
		if (ret)
			goto out;
		doc = b.data ? json_loadb(b.data, b.len, 0, NULL) : NULL;
		a = json_object_get(doc, "agent");
		if (code != 200 || !json_is_object(a)) {
			ret = ctl_fail("node %s: the agent's load state: HTTP %ld: %s", argv[0],
				       code, agent_reason(doc, &b));
			goto out;
		}
		/* another operation on the agent now (a balancer's load after
		 * this unload ended between two looks): its wait and its
		 * connections are not this unload's */
		if (strcmp(jstr(a, "op"), "unload") || strcmp(jstr(a, "model"), argv[1])) {
			ret = ctl_fail("node %s: the agent's last operation is %s %s now, not this "
				       "unload: see aiblctl status for %s",
				       argv[0], jstr(a, "op"), jstr(a, "model"), argv[1]);
			goto out;
		}
		if (json_is_true(json_object_get(a, "busy"))) {
			json_t *o = json_object_get(a, "open_flows");

			/* the drain's wait has its own bound (the agent's
			 * --drain-timeout-ms), the engine's call this one */
			if (json_is_true(json_object_get(a, "draining"))) {
				if (!ctl.json && json_is_integer(o) && json_integer_value(o) > 0 &&
				    json_integer_value(o) != open_said)
					printf(
					    "node %s: waiting for %lld open connection(s) of %s to "
					    "close\n",
					    argv[0], (long long)json_integer_value(o), argv[1]);
				if (json_is_integer(o))
					open_said = (long)json_integer_value(o);
			} else if (!engine_t0) {
				engine_t0 = clock_mono_ms();
			} else if (clock_mono_ms() - engine_t0 >= UNLOAD_WAIT_MS) {
				/* by the clock: each look may take a slow agent's
				 * seconds, and counting the sleeps alone made the
				 * 600 s an hour or more */
				ret = ctl_fail("node %s: still unloading %s after %d s", argv[0],
					       argv[1], UNLOAD_WAIT_MS / 1000);
				goto out;
			}
			continue;
		}
		if (jstr(a, "error")[0] && strcmp(jstr(a, "error"), "-")) {
			ret = ctl_fail("node %s: unloading %s failed: %s", argv[0], argv[1],
				       jstr(a, "error"));
			goto out;
		}
		break;
	}
	if (ctl.json)
		ret = ctl_json_print(json_incref(doc));
	else if (wait &&
		 json_is_true(json_object_get(json_object_get(doc, "agent"), "open_timed_out")))
		printf("node %s: %s unloaded at the drain timeout with %lld connection(s) still "
		       "open (%.0f ms)\n",
		       argv[0], argv[1],
		       (long long)json_integer_value(
			   json_object_get(json_object_get(doc, "agent"), "open_flows")),
		       json_number_value(json_object_get(json_object_get(doc, "agent"), "ms")));
	else if (wait)
		printf("node %s: %s drained and unloaded (%.0f ms)\n", argv[0], argv[1],
		       json_number_value(json_object_get(json_object_get(doc, "agent"), "ms")));
out:
	json_decref(doc);
	free(b.data);
	curl_free(node);
	curl_free(model);
	if (c)
		curl_easy_cleanup(c);
	return ret;
}

int ctl_cmd_node(int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
	    {"drain", node_drain}, {"undrain", node_undrain},
	    {"poll", node_poll},   {"unload", node_unload},
	    {NULL, NULL},
	};

	return ctl_dispatch("node verb", cmds, argc, argv, node_help);
}
