// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Every input limit gone past by one, with a clear refusal and nothing
 * half-taken. Limits the owners' suites already push (report counts and
 * size: tests/unit/test_report.c; Prometheus page: test_promtext.c; pins
 * per node/service: test_nodes.c) are not repeated here. This suite covers:
 *
 *   - POST /v1/hints bodies: AR_MAX_HINTS hints, AR_MAX_BYTES bytes, parser
 *     and over HTTP against a running aibl-agent (413 and the agent lives);
 *   - oversized request headers on the agent (refused, agent lives);
 *   - the controller config: file size (1 MiB), nodes (AIBL_MAX_BACKENDS),
 *     services (AIBL_MAX_SERVICES), models per node (CFG_NODE_MODELS).
 *
 * Ports 22100-22199.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include "test.h"
#include "report.h"
#include "../../user/aibld/config.h"

#define AGENT_PORT 22101

static char *hints_body(int n, size_t *len)
{
	static const char one[] = "{\"client\":\"10.1.%d.%d\",\"model\":\"m\",\"ttl_ms\":5000},";
	size_t cap = 16 + (size_t)n * (sizeof(one) + 8), off;
	char *b = malloc(cap);

	if (!b)
		return NULL;
	off = (size_t)snprintf(b, cap, "{\"hints\":[");
	for (int i = 0; i < n; i++)
		off += (size_t)snprintf(b + off, cap - off, one, i / 250, i % 250);
	if (n)
		off--; /* last comma */
	off += (size_t)snprintf(b + off, cap - off, "]}");
	*len = off;
	return b;
}

static void hints_parser(void)
{
	struct ar_hint *h = NULL;
	char err[256];
	size_t len;
	char *body;
	int n = -1;

	body = hints_body(AR_MAX_HINTS, &len);
	if (!ASSERT_OK_PTR(body, "body"))
		return;
	ASSERT_OK(agent_hints__parse(body, len, &h, &n, err, sizeof(err)), err);
	ASSERT_EQ(n, AR_MAX_HINTS, "at the limit: all taken");
	free(h);
	free(body);

	body = hints_body(AR_MAX_HINTS + 1, &len);
	if (!ASSERT_OK_PTR(body, "body"))
		return;
	h = NULL;
	ASSERT_EQ(agent_hints__parse(body, len, &h, &n, err, sizeof(err)), -E2BIG, "one too many");
	printf("  %s\n", err);
	ASSERT_TRUE(strstr(err, "4096") != NULL, "message names the limit");
	ASSERT_TRUE(h == NULL && n == 0, "nothing handed back");
	free(body);

	body = malloc(AR_MAX_BYTES + 1);
	if (!ASSERT_OK_PTR(body, "big"))
		return;
	memset(body, ' ', AR_MAX_BYTES + 1);
	ASSERT_EQ(agent_hints__parse(body, AR_MAX_BYTES + 1, &h, &n, err, sizeof(err)), -E2BIG,
		  "one byte too many");
	printf("  %s\n", err);
	ASSERT_TRUE(strstr(err, "limit") != NULL, "message names the limit");
	free(body);
}

/* ---- against a running agent ---- */

static pid_t agent = -1;

struct resp {
	long status;
	char body[512];
	size_t n;
};

static size_t on_data(char *d, size_t s, size_t n, void *ud)
{
	struct resp *r = ud;
	size_t k = s * n, room = sizeof(r->body) - 1 - r->n;

	memcpy(r->body + r->n, d, k < room ? k : room);
	r->n += k < room ? k : room;
	r->body[r->n] = '\0';
	return s * n;
}

/* POST body (NULL: GET) with one extra header line (NULL: none) */
static CURLcode req(const char *path, const char *body, size_t len, const char *hdr, struct resp *r)
{
	struct curl_slist *h = NULL;
	char url[128];
	CURLcode rc;
	CURL *c = curl_easy_init();

	memset(r, 0, sizeof(*r));
	if (!c)
		return CURLE_FAILED_INIT;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", AGENT_PORT, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	if (hdr) {
		h = curl_slist_append(h, hdr);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return rc;
}

static bool agent_alive(void)
{
	struct resp r;

	return agent > 0 && waitpid(agent, NULL, WNOHANG) == 0 &&
	       req("/healthz", NULL, 0, NULL, &r) == CURLE_OK && r.status == 200;
}

static bool agent_start(void)
{
	const char *b = getenv("AIBL_BUILD");
	char bin[512], listen[32];

	snprintf(bin, sizeof(bin), "%s/aibl-agent", b ? b : "build");
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", AGENT_PORT);
	if (access(bin, X_OK)) {
		SKIP("build aibl-agent first");
		return false;
	}
	agent = fork();
	if (agent == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		/* the model server is absent: limits do not depend on it */
		execl(bin, bin, "--listen", listen, "--name", "rs-limits", "--model-server",
		      "http://127.0.0.1:22199", "--no-nvml", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (agent_alive())
			return true;
		usleep(50000);
	}
	return ASSERT_TRUE(false, "agent came up");
}

static void agent_stop(void)
{
	if (agent > 0) {
		kill(agent, SIGTERM);
		waitpid(agent, NULL, 0);
	}
	agent = -1;
}

static void agent_http(void)
{
	struct resp r;
	size_t len;
	char *body, *hdr;

	if (!agent_start())
		goto out;
	/* one hint too many: 413 with the parser's reason */
	body = hints_body(AR_MAX_HINTS + 1, &len);
	if (!ASSERT_OK_PTR(body, "body"))
		goto out;
	ASSERT_EQ(req("/v1/hints", body, len, NULL, &r), CURLE_OK, "post");
	ASSERT_EQ(r.status, 413, "too many hints: 413");
	printf("  %zu hints: %ld %s\n", (size_t)AR_MAX_HINTS + 1, r.status, r.body);
	ASSERT_TRUE(strstr(r.body, "limit") != NULL, "reason in the answer");
	free(body);

	/* one byte over AR_MAX_BYTES: 413, the body is not kept */
	body = malloc(AR_MAX_BYTES + 1);
	if (!ASSERT_OK_PTR(body, "big"))
		goto out;
	memset(body, ' ', AR_MAX_BYTES + 1);
	ASSERT_EQ(req("/v1/hints", body, AR_MAX_BYTES + 1, NULL, &r), CURLE_OK, "post big");
	ASSERT_EQ(r.status, 413, "body over the limit: 413");
	printf("  %d bytes: %ld %s\n", AR_MAX_BYTES + 1, r.status, r.body);
	free(body);

	/* a 64 KiB header: refused by the HTTP server, the agent lives on */
	hdr = malloc(65536 + 16);
	if (!ASSERT_OK_PTR(hdr, "hdr"))
		goto out;
	memcpy(hdr, "X-Padding: ", 11);
	memset(hdr + 11, 'a', 65536);
	hdr[11 + 65536] = '\0';
	req("/healthz", NULL, 0, hdr, &r);
	printf("  64 KiB header: HTTP %ld\n", r.status);
	ASSERT_TRUE(r.status == 0 || (r.status >= 400 && r.status < 500), "big header refused");
	free(hdr);

	ASSERT_TRUE(agent_alive(), "agent alive after oversize requests");
	/* and still takes a normal request */
	body = hints_body(3, &len);
	ASSERT_EQ(req("/v1/hints", body, len, NULL, &r), CURLE_OK, "post small");
	ASSERT_EQ(r.status, 200, "normal hints accepted");
	free(body);
out:
	agent_stop();
}

/* ---- controller config ---- */

static char *yaml_nodes(int nnodes, int nsvcs, int nmodels)
{
	size_t cap = 256 + (size_t)nnodes * 64 + (size_t)nsvcs * 96 + (size_t)nmodels * 8, off;
	char *t = malloc(cap);

	if (!t)
		return NULL;
	off = (size_t)snprintf(t, cap, "interface: lo\nservices:\n");
	for (int s = 0; s < nsvcs; s++)
		off += (size_t)snprintf(t + off, cap - off,
					"  - {name: s%d, vip: 10.100.%d.%d, port: 80}\n", s,
					s / 250, 1 + s % 250);
	off += (size_t)snprintf(t + off, cap - off, "nodes:\n");
	for (int i = 0; i < nnodes; i++) {
		off += (size_t)snprintf(t + off, cap - off, "  - {name: n%d, address: 10.1.%d.%d",
					i, i / 250, 1 + i % 250);
		if (i == 0 && nmodels) {
			off += (size_t)snprintf(t + off, cap - off, ", models: [");
			for (int m = 0; m < nmodels; m++)
				off +=
				    (size_t)snprintf(t + off, cap - off, "%sm%d", m ? ", " : "", m);
			off += (size_t)snprintf(t + off, cap - off, "]");
		}
		off += (size_t)snprintf(t + off, cap - off, "}\n");
	}
	return t;
}

static void config_expect(const char *what, char *text, int want, const char *msg)
{
	char err[CFG_ERR_LEN];
	struct config cfg;
	int ret;

	if (!ASSERT_OK_PTR(text, what))
		return;
	ret = config__parse(&cfg, "t.yaml", text, strlen(text), err, sizeof(err));
	if (ASSERT_EQ(ret, want, what) && want) {
		printf("  %s: %s\n", what, err);
		ASSERT_TRUE(strstr(err, msg) != NULL, msg);
	}
	if (!ret)
		config__free(&cfg);
	free(text);
}

static void config_limits(void)
{
	char path[] = "/tmp/aibl-rs-limits-XXXXXX", err[CFG_ERR_LEN];
	struct config cfg;
	char *big;
	int fd;

	config_expect("nodes at the limit", yaml_nodes(AIBL_MAX_BACKENDS, 1, 0), 0, "");
	config_expect("one node too many", yaml_nodes(AIBL_MAX_BACKENDS + 1, 1, 0), -EINVAL,
		      "too many nodes");
	config_expect("services at the limit", yaml_nodes(1, AIBL_MAX_SERVICES, 0), 0, "");
	config_expect("one service too many", yaml_nodes(1, AIBL_MAX_SERVICES + 1, 0), -EINVAL,
		      "too many services");
	config_expect("models at the limit", yaml_nodes(1, 1, CFG_NODE_MODELS), 0, "");
	config_expect("one model too many", yaml_nodes(1, 1, CFG_NODE_MODELS + 1), -EINVAL,
		      "models per node");

	/* a file over 1 MiB: refused before parsing, whatever it holds */
	fd = mkstemp(path);
	if (!ASSERT_TRUE(fd >= 0, "mkstemp"))
		return;
	big = malloc((1 << 20) + 1);
	if (ASSERT_OK_PTR(big, "big")) {
		memset(big, '#', (1 << 20) + 1);
		ASSERT_EQ(write(fd, big, (1 << 20) + 1), (1 << 20) + 1, "write");
		ASSERT_EQ(config__load(&cfg, path, err, sizeof(err)), -E2BIG, "file over 1 MiB");
		printf("  big file: %s\n", err);
		ASSERT_TRUE(strstr(err, "larger than 1 MiB") != NULL, "message");
	}
	free(big);
	close(fd);
	unlink(path);
}

static const struct test_case cases[] = {
    {"hints_parser", hints_parser},
    {"agent_http", agent_http},
    {"config_limits", config_limits},
};

int main(int argc, char **argv)
{
	int rc;

	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = test__main(argc, argv, "limits", cases, sizeof(cases) / sizeof(cases[0]));
	agent_stop();
	curl_global_cleanup();
	return rc;
}
