// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What someone who reaches a port, or writes a config, can do to the
 * daemons (issue #20), one case per hole found, each as the attacker would
 * try it:
 *
 *   - a signed hint post replayed in another spelling of its header;
 *   - drain/undrain URLs that are not UTF-8, or carry a newline for the log;
 *   - node and service names and agent URLs the config must refuse;
 *   - a range error that printed a rounded value;
 *   - slow, trickling connections by the thousand against an agent and
 *     against aibld's API (the controller's polls and /v1/status must go on).
 *
 * The API runs in this process (api__start on a bare struct aibld: no data
 * plane needed); agents run as processes. Ports 22300-22399; the flood's
 * sources are 127.0.0.2 and up, the controller's 127.0.0.1.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "test.h"
#include "auth.h"
#include "log.h"
#include "report.h"
#include "../../user/aibld/aibld.h"

#define AGENT_PORT 22301
#define API_PORT   22310
#define TOKEN	   "abuse-test-token-0123456789"
#define KEY	   "abuse-test-key-0123456789abcdef"

/* ---- plumbing ---- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* a TCP connection to 127.0.0.1:port from src (NULL: any), blocking */
static int tcp_connect(const char *src, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (src) {
		struct sockaddr_in b = {.sin_family = AF_INET};

		inet_pton(AF_INET, src, &b.sin_addr);
		if (bind(fd, (void *)&b, sizeof(b))) {
			close(fd);
			return -1;
		}
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (void *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Send req as is (the URL and headers exactly as written) from src, read
 * the answer until the server closes or timeout_ms passes. The status
 * (0: no HTTP answer) and the body (after the blank line) into body.
 */
static int raw_http(const char *src, int port, const char *req, char *body, size_t blen,
		    int timeout_ms)
{
	char buf[8192];
	size_t got = 0;
	double end = now_ms() + timeout_ms;
	int fd = tcp_connect(src, port), status = 0;
	const char *b;

	if (body && blen)
		body[0] = 0;
	if (fd < 0)
		return -1;
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -1;
	}
	while (got < sizeof(buf) - 1 && now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, (int)(end - now_ms()) + 1) <= 0)
			break;
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += n;
		buf[got] = 0;
		/* an answer with Content-Length is complete when the body is in */
		b = strstr(buf, "\r\n\r\n");
		if (b) {
			const char *cl = strcasestr(buf, "\r\nContent-Length:");

			if (cl && cl < b &&
			    (size_t)(buf + got - (b + 4)) >= strtoul(cl + 17, NULL, 10))
				break;
		}
	}
	buf[got] = 0;
	close(fd);
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = 0;
	b = strstr(buf, "\r\n\r\n");
	if (body && blen)
		snprintf(body, blen, "%s", b ? b + 4 : "");
	return status;
}

static pid_t spawn(const char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}

static char agent_bin[512], key_path[64];

static bool have_agent(void)
{
	const char *b = getenv("AIBL_BUILD");

	snprintf(agent_bin, sizeof(agent_bin), "%s/aibl-agent", b ? b : "build");
	if (access(agent_bin, X_OK)) {
		SKIP("build aibl-agent first");
		return false;
	}
	return true;
}

static bool write_key(const char *text)
{
	int fd;

	snprintf(key_path, sizeof(key_path), "/tmp/aibl-abuse-key-%d", getpid());
	fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (!ASSERT_TRUE(fd >= 0, "key file"))
		return false;
	if (!ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text), "write key")) {
		close(fd);
		return false;
	}
	close(fd);
	return true;
}

/* an agent on AGENT_PORT with the given extra arguments; up when /healthz answers */
static pid_t agent_start(const char *const extra[])
{
	char listen[32];
	const char *argv[32] = {agent_bin,
				"--listen",
				listen,
				"--name",
				"ab-node",
				"--model-server",
				"http://127.0.0.1:22399",
				"--no-nvml"};
	int n = 8;
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", AGENT_PORT);
	for (int i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid = spawn(argv);
	for (int i = 0; i < 100; i++) {
		if (raw_http(NULL, AGENT_PORT, "GET /healthz HTTP/1.0\r\n\r\n", NULL, 0, 1000) ==
		    200)
			return pid;
		usleep(50000);
	}
	ASSERT_TRUE(false, "agent came up");
	stop(&pid);
	return -1;
}

/* ---- point 2: one signature, one spelling ---- */

static int post_hints(const char *body, const char *sig, char *answer, size_t alen)
{
	char req[2048];

	snprintf(req, sizeof(req),
		 "POST /v1/hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		 "Content-Type: application/json\r\n" AIBL_AUTH_HEADER ": %s\r\n"
		 "Content-Length: %zu\r\n\r\n%s",
		 sig, strlen(body), body);
	return raw_http(NULL, AGENT_PORT, req, answer, alen, 5000);
}

static void sig_spellings(void)
{
	struct aibl_key k = {.len = strlen(KEY)};
	char h[AIBL_AUTH_HDR_MAX], v[AIBL_AUTH_HDR_MAX + 8];
	struct aibl_sig s;
	const char *why = NULL;

	memcpy(k.key, KEY, k.len);
	ASSERT_OK(aibl_auth__sign(&k, 1000, NULL, "{}", 2, h, sizeof(h)), "sign");
	ASSERT_OK(aibl_auth__parse(h, &s, NULL), "the canonical spelling parses");
	/* each is the same signature written differently */
	snprintf(v, sizeof(v), "t=01000%s", strchr(h, ','));
	ASSERT_EQ(aibl_auth__parse(v, &s, &why), -EBADMSG, "leading zero refused");
	snprintf(v, sizeof(v), "t=+1000%s", strchr(h, ','));
	ASSERT_EQ(aibl_auth__parse(v, &s, &why), -EBADMSG, "leading + refused");
	snprintf(v, sizeof(v), "t= 1000%s", strchr(h, ','));
	ASSERT_EQ(aibl_auth__parse(v, &s, &why), -EBADMSG, "leading space refused");
	printf("  reason: %s\n", why);
	snprintf(v, sizeof(v), "%s", h);
	for (char *p = strstr(v, "sig=") + 4; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p -= 'a' - 'A';
	ASSERT_EQ(aibl_auth__parse(v, &s, &why), -EBADMSG, "upper-case hex refused");
	printf("  reason: %s\n", why);
	snprintf(v, sizeof(v), "%s ", h);
	ASSERT_EQ(aibl_auth__parse(v, &s, &why), -EBADMSG, "trailing text refused");
}

static void hints_replay_respelled(void)
{
	static const char body[] =
	    "{\"hints\":[{\"client\":\"10.9.9.9\",\"model\":\"m1\",\"ttl_ms\":60000}]}";
	const char *extra[] = {"--key", key_path, NULL};
	struct aibl_key k = {.len = strlen(KEY)};
	char sig[AIBL_AUTH_HDR_MAX], v[AIBL_AUTH_HDR_MAX + 8], ans[512];
	unsigned long long t = (unsigned long long)time(NULL);
	pid_t agent;

	if (!have_agent() || !write_key(KEY))
		return;
	memcpy(k.key, KEY, k.len);
	agent = agent_start(extra);
	if (agent < 0)
		goto out;
	aibl_auth__sign(&k, t, NULL, body, strlen(body), sig, sizeof(sig));
	ASSERT_EQ(post_hints(body, sig, ans, sizeof(ans)), 200, "signed post accepted");
	ASSERT_EQ(post_hints(body, sig, ans, sizeof(ans)), 401, "replay refused");
	printf("  replay: %s\n", ans);
	ASSERT_TRUE(strstr(ans, "replay") != NULL, "the answer says replay");
	/* the spellings that got through before */
	snprintf(v, sizeof(v), "%s", sig);
	for (char *p = strstr(v, "sig=") + 4; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p -= 'a' - 'A';
	ASSERT_EQ(post_hints(body, v, ans, sizeof(ans)), 401, "upper-case hex: refused");
	printf("  upper case: %s\n", ans);
	ASSERT_TRUE(strstr(ans, "malformed") != NULL, "the answer says malformed");
	snprintf(v, sizeof(v), "t=0%llu%s", t, strchr(sig, ','));
	ASSERT_EQ(post_hints(body, v, ans, sizeof(ans)), 401, "leading zero: refused");
	snprintf(v, sizeof(v), "t=+%llu%s", t, strchr(sig, ','));
	ASSERT_EQ(post_hints(body, v, ans, sizeof(ans)), 401, "leading +: refused");
	snprintf(v, sizeof(v), "t= %llu%s", t, strchr(sig, ','));
	ASSERT_EQ(post_hints(body, v, ans, sizeof(ans)), 401, "leading space: refused");
	printf("  leading space: %s\n", ans);
	ASSERT_EQ(raw_http(NULL, AGENT_PORT, "GET /healthz HTTP/1.0\r\n\r\n", NULL, 0, 2000), 200,
		  "agent alive");
out:
	stop(&agent);
	unlink(key_path);
}

/* a POST that cannot be authorised is answered at its headers: its body
 * (a megabyte a connection) is never waited for, nor held. So is one whose
 * signature header cannot be a signature, or is out of its time window,
 * and a load or unload announcing more than a name and a drain bound */
static void post_refused_unread(void)
{
	static const char *const urls[] = {"/v1/hints", "/v1/load", "/v1/unload"};
	const char *extra[] = {"--key", key_path, NULL};
	struct aibl_key k = {.len = strlen(KEY)};
	char req[1024], ans[512], sig[AIBL_AUTH_HDR_MAX], old[AIBL_AUTH_HDR_MAX];
	const char *const sigs[] = {"t=1,n=x,sig=zz", old};
	pid_t agent;

	if (!have_agent() || !write_key(KEY))
		return;
	agent = agent_start(extra);
	if (agent < 0)
		goto out;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		snprintf(req, sizeof(req),
			 "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
			 "Content-Length: 1000000\r\n\r\n",
			 urls[i]);
		ASSERT_EQ(raw_http(NULL, AGENT_PORT, req, ans, sizeof(ans), 3000), 401, urls[i]);
		ASSERT_TRUE(strstr(ans, "no " AIBL_AUTH_HEADER " header") != NULL, ans);
	}
	memcpy(k.key, KEY, k.len);
	aibl_auth__sign_req(&k, time(NULL) - 3600, "n1", AIBL_AUTH_REQ_LOAD "m1", old, sizeof(old));
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		snprintf(req, sizeof(req),
			 "POST /v1/load HTTP/1.1\r\nHost: x\r\nContent-Type: "
			 "application/json\r\n" AIBL_AUTH_HEADER
			 ": %s\r\nContent-Length: 1000000\r\n\r\n",
			 sigs[i]);
		ASSERT_EQ(raw_http(NULL, AGENT_PORT, req, ans, sizeof(ans), 3000), 401, sigs[i]);
		ASSERT_TRUE(strstr(ans, "load refused: ") != NULL, ans);
		printf("  %s\n", ans);
	}
	/* signed now, with whatever key: a name and a drain bound take no 4 KiB */
	aibl_auth__sign_req(&k, time(NULL), "n2", AIBL_AUTH_REQ_LOAD "m1", sig, sizeof(sig));
	for (size_t i = 1; i < sizeof(urls) / sizeof(urls[0]); i++) {
		snprintf(req, sizeof(req),
			 "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
			 "application/json\r\n" AIBL_AUTH_HEADER
			 ": %s\r\nContent-Length: 4097\r\n\r\n",
			 urls[i], sig);
		ASSERT_EQ(raw_http(NULL, AGENT_PORT, req, ans, sizeof(ans), 3000), 413, urls[i]);
		ASSERT_TRUE(strstr(ans, "a body over 4096 bytes") != NULL, ans);
	}
	snprintf(req, sizeof(req),
		 "POST /v1/report HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
	ASSERT_EQ(raw_http(NULL, AGENT_PORT, req, ans, sizeof(ans), 3000), 405, "POST /v1/report");
	ASSERT_EQ(raw_http(NULL, AGENT_PORT, "GET /healthz HTTP/1.0\r\n\r\n", NULL, 0, 2000), 200,
		  "agent alive");
out:
	stop(&agent);
	unlink(key_path);
}

/* ---- points 3 and 4: the API's answers and log lines ---- */

static struct aibld api_d;
static struct api *api;

static bool api_start(void)
{
	if (api)
		return true;
	pthread_mutex_init(&api_d.lock, NULL);
	config__defaults(&api_d.cfg);
	snprintf(api_d.cfg.status_listen, sizeof(api_d.cfg.status_listen), "127.0.0.1:%d",
		 API_PORT);
	api_d.wake_fd = -1;
	api_d.start_ms = clock_mono_ms();
	for (int i = 0; i < 50; i++) {
		if (!api__start(&api_d, TOKEN, &api))
			return true;
		usleep(100000);
	}
	return ASSERT_TRUE(false, "API started");
}

static void api_bad_name(void)
{
	static const char *const urls[] = {"/v1/nodes/%ff%fe/drain", "/v1/nodes/%c3%a9/undrain",
					   "/v1/nodes/a%20b/drain", "/v1/nodes/%00x/drain"};
	char req[512], ans[512];

	if (!api_start())
		return;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		int st;

		snprintf(req, sizeof(req),
			 "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			 "Authorization: Bearer " TOKEN "\r\nContent-Length: 0\r\n\r\n",
			 urls[i]);
		st = raw_http(NULL, API_PORT, req, ans, sizeof(ans), 3000);
		printf("  %s: %d %s", urls[i], st, ans);
		ASSERT_EQ(st, 404, urls[i]);
		ASSERT_TRUE(strstr(ans, "\"error\"") != NULL, "a JSON reason");
	}
}

static void api_log_injection(void)
{
	char path[] = "/tmp/aibl-abuse-log-XXXXXX", log[8192] = "", ans[256];
	int fd, saved, st;
	ssize_t n;

	if (!api_start())
		return;
	fd = mkstemp(path);
	if (!ASSERT_TRUE(fd >= 0, "mkstemp"))
		return;
	log_set_ident("aibld", false);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	st = raw_http(NULL, API_PORT,
		      "POST /v1/nodes/x%0aaibld%20warn:%20FORGED/drain HTTP/1.1\r\nHost: x\r\n"
		      "Connection: close\r\nContent-Length: 0\r\n\r\n",
		      ans, sizeof(ans), 3000);
	/* a flood of refusals: one line for the lot (a counter counts them) */
	for (int i = 0; i < 20; i++)
		raw_http(NULL, API_PORT,
			 "POST /v1/nodes/x/drain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			 "Content-Length: 0\r\n\r\n",
			 NULL, 0, 3000);
	usleep(100000);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, log, sizeof(log) - 1, 0);
	log[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
	printf("  log: %s", log);
	ASSERT_EQ(st, 401, "no token: 401");
	ASSERT_TRUE(strstr(log, "refused") != NULL, "the refusal is logged");
	ASSERT_TRUE(strstr(log, "\naibld warn: FORGED") == NULL &&
			strncmp(log, "aibld warn: FORGED", 18),
		    "no forged line");
	ASSERT_TRUE(strstr(log, "x\\x0aaibld warn: FORGED") != NULL, "the newline escaped");
	{
		int lines = 0;

		for (const char *p = log; (p = strstr(p, "bearer token")); p++)
			lines++;
		ASSERT_EQ(lines, 1, "21 refusals, one line");
	}
}

/* ---- point 6: names and agent URLs ---- */

static void config_expect(const char *what, const char *node_extra, const char *svc_name,
			  const char *msg)
{
	char text[1024], err[CFG_ERR_LEN];
	struct config cfg;
	int ret;

	snprintf(text, sizeof(text),
		 "interface: lo\n"
		 "services:\n"
		 "  - name: %s\n"
		 "    vip: 10.100.0.1\n"
		 "    port: 80\n"
		 "nodes:\n"
		 "  - address: 10.1.0.1\n"
		 "%s",
		 svc_name, node_extra);
	ret = config__parse(&cfg, "t.yaml", text, strlen(text), err, sizeof(err));
	if (!msg) {
		if (ASSERT_OK(ret, what))
			config__free(&cfg);
		else
			printf("  %s\n", err);
		return;
	}
	if (!ASSERT_EQ(ret, -EINVAL, what)) {
		config__free(&cfg);
		return;
	}
	printf("  %s: %s\n", what, err);
	ASSERT_TRUE(strstr(err, msg) != NULL, msg);
	ASSERT_TRUE(!strncmp(err, "t.yaml:", 7) && err[7] >= '1' && err[7] <= '9', "FILE:LINE");
}

static void config_names_urls(void)
{
	config_expect("plain names", "    name: gpu-a.rack_1\n    agent: http://10.1.0.1:9100\n",
		      "chat", NULL);
	config_expect("https agent", "    name: a\n    agent: https://agent.example:9100/x/\n",
		      "chat", NULL);
	config_expect("newline in a node name", "    name: \"gpu\\nb\"\n", "chat", "node name");
	config_expect("space in a node name", "    name: \"gpu b\"\n", "chat", "node name");
	config_expect("slash in a node name", "    name: a/b\n", "chat", "node name");
	config_expect("UTF-8 in a node name", "    name: \"gpu\xc3\xa9\"\n", "chat", "node name");
	config_expect("newline in a service name", "    name: a\n", "\"chat\\nx\"", "service name");
	config_expect("file URL", "    name: a\n    agent: file:///etc/passwd\n", "chat",
		      "http:// or https://");
	config_expect("gopher URL", "    name: a\n    agent: gopher://10.1.0.1:70/\n", "chat",
		      "http:// or https://");
	config_expect("not a URL", "    name: a\n    agent: not a url\n", "chat",
		      "http:// or https://");
	config_expect("no host", "    name: a\n    agent: http:///v1\n", "chat", "no host");
	config_expect("credentials", "    name: a\n    agent: http://u:p@10.1.0.1/\n", "chat",
		      "credentials");
	config_expect("space in URL", "    name: a\n    agent: \"http://10.1.0.1/ x\"\n", "chat",
		      "space");
}

/* ---- point 7: the value refused is the value sent ---- */

static void range_text(void)
{
	struct agent_report r, out;
	char err[256], *js, *p, *fixed;

	agent_report__init(&r);
	snprintf(r.node, sizeof(r.node), "n1");
	r.kv_cache_usage = 0.5;
	js = agent_report__to_json(&r);
	agent_report__free(&r);
	if (!ASSERT_OK_PTR(js, "to_json"))
		return;
	p = strstr(js, "\"kv_cache_usage\":0.5");
	if (!ASSERT_OK_PTR(p, "kv_cache_usage in the report")) {
		free(js);
		return;
	}
	if (asprintf(&fixed, "%.*s\"kv_cache_usage\":1.0000001%s", (int)(p - js), js,
		     p + strlen("\"kv_cache_usage\":0.5")) < 0) {
		free(js);
		return;
	}
	agent_report__init(&out);
	ASSERT_EQ(agent_report__parse(fixed, strlen(fixed), &out, err, sizeof(err)), -EINVAL,
		  "refused");
	printf("  %s\n", err);
	ASSERT_TRUE(strstr(err, "1.0000001 out of range") != NULL, "the value as sent");
	agent_report__free(&out);
	free(fixed);
	free(js);
}

/* ---- point 8: per-node keys, reports only for signed requests ---- */

static int get_report_signed(const struct aibl_key *k, char *ans, size_t alen)
{
	char nonce[40], sig[AIBL_AUTH_HDR_MAX], req[512];

	aibl_auth__nonce(nonce, sizeof(nonce));
	if (k)
		aibl_auth__sign_req(k, time(NULL), nonce, AIBL_AUTH_REQ_REPORT, sig, sizeof(sig));
	snprintf(req, sizeof(req),
		 "GET /v1/report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AIBL_NONCE_HEADER
		 ": %s\r\n%s%s%s\r\n",
		 nonce, k ? AIBL_AUTH_HEADER ": " : "", k ? sig : "", k ? "\r\n" : "");
	return raw_http(NULL, AGENT_PORT, req, ans, alen, 3000);
}

static void node_keys(void)
{
	struct aibl_key master = {.len = strlen(KEY)}, k1, k1b, k2;
	char h[AIBL_AUTH_HDR_MAX], ans[4096], cmd[700], out[128] = "";
	const char *extra[] = {"--key", key_path, NULL};
	static const char body[] = "{\"node\":\"n1\"}";
	pid_t agent = -1;
	FILE *f;

	memcpy(master.key, KEY, master.len);
	ASSERT_OK(aibl_key__derive(&master, "n1", &k1), "derive n1");
	ASSERT_OK(aibl_key__derive(&master, "n1", &k1b), "again");
	ASSERT_OK(aibl_key__derive(&master, "n2", &k2), "derive n2");
	ASSERT_EQ(k1.len, 64, "64 hex characters");
	ASSERT_TRUE(k1.len == k1b.len && !memcmp(k1.key, k1b.key, k1.len), "deterministic");
	ASSERT_TRUE(memcmp(k1.key, k2.key, 64) != 0, "another node, another key");
	/* n2's holder signs a report as n1: the controller checks it with n1's key */
	aibl_auth__sign(&k2, time(NULL), "nonce1", body, strlen(body), h, sizeof(h));
	ASSERT_EQ(aibl_auth__verify(&k1, h, "nonce1", body, strlen(body), time(NULL), 30), -EPERM,
		  "n2's key cannot sign n1's report");
	aibl_auth__sign(&master, time(NULL), "nonce1", body, strlen(body), h, sizeof(h));
	ASSERT_EQ(aibl_auth__verify(&k1, h, "nonce1", body, strlen(body), time(NULL), 30), -EPERM,
		  "nor can the master key itself (no shared-key fallback)");

	if (!have_agent())
		return;
	/* aibl-agent --derive-key prints what aibld derives */
	if (!write_key(KEY))
		return;
	snprintf(cmd, sizeof(cmd), "%s --derive-key %s ab-node", agent_bin, key_path);
	f = popen(cmd, "r");
	if (ASSERT_OK_PTR(f, "popen")) {
		if (!fgets(out, sizeof(out), f))
			out[0] = 0;
		pclose(f);
	}
	ASSERT_OK(aibl_key__derive(&master, "ab-node", &k1), "derive ab-node");
	ASSERT_TRUE(strlen(out) == 65 && !memcmp(out, k1.key, 64), "--derive-key agrees");
	/* the agent with its node key */
	if (!write_key((const char *)k1.key))
		return;
	agent = agent_start(extra);
	if (agent < 0)
		goto out;
	ASSERT_EQ(get_report_signed(NULL, ans, sizeof(ans)), 401, "unsigned request: 401");
	printf("  unsigned: %s\n", ans);
	ASSERT_TRUE(strstr(ans, "not signed") != NULL && !strstr(ans, "\"hints\""),
		    "a reason, no report");
	ASSERT_EQ(get_report_signed(&k2, ans, sizeof(ans)), 401, "another node's key: 401");
	ASSERT_EQ(get_report_signed(&master, ans, sizeof(ans)), 401, "the master key: 401");
	ASSERT_EQ(get_report_signed(&k1, ans, sizeof(ans)), 200, "the node's key: 200");
	ASSERT_TRUE(strstr(ans, "\"node\":\"ab-node\"") != NULL, "the report");
out:
	stop(&agent);
	unlink(key_path);
}

/* ---- points 1 and 5: floods of slow connections ---- */

struct flood {
	int n, fds[4096];
	bool closed[4096];
};

static bool raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return false;
	if (rl.rlim_cur >= want)
		return true;
	rl.rlim_cur = want;
	if (rl.rlim_max < want)
		rl.rlim_max = want; /* root may */
	return !setrlimit(RLIMIT_NOFILE, &rl);
}

/*
 * n connections to port from nsrc source addresses 127.0.0.2 and up, each
 * with the first line and a header of a request and no end: what a
 * slowloris sends. Non-blocking, so a refused one costs nothing here.
 */
static void flood_open(struct flood *f, int port, int n, int nsrc)
{
	static const char part[] = "GET /v1/status HTTP/1.1\r\nHost: x\r\n";

	f->n = 0;
	for (int i = 0; i < n && i < (int)(sizeof(f->fds) / sizeof(f->fds[0])); i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
		struct sockaddr_in b = {.sin_family = AF_INET};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		if (fd < 0)
			break;
		b.sin_addr.s_addr = htonl(0x7f000002 + (uint32_t)(i % nsrc));
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd, (void *)&b, sizeof(b)) ||
		    (connect(fd, (void *)&sa, sizeof(sa)) && errno != EINPROGRESS)) {
			close(fd);
			continue;
		}
		f->closed[f->n] = false;
		f->fds[f->n++] = fd;
	}
	usleep(200000);
	for (int i = 0; i < f->n; i++)
		if (write(f->fds[i], part, sizeof(part) - 1) < 0 && errno != EAGAIN)
			f->closed[i] = true;
}

/* one more byte on every connection the server has not closed; how many are open */
static int flood_trickle(struct flood *f)
{
	int open = 0;

	for (int i = 0; i < f->n; i++) {
		struct pollfd p = {.fd = f->fds[i], .events = POLLIN};
		char buf[256];

		if (f->closed[i])
			continue;
		if (poll(&p, 1, 0) > 0 &&
		    (p.revents & (POLLHUP | POLLERR) || read(f->fds[i], buf, sizeof(buf)) <= 0)) {
			f->closed[i] = true;
			continue;
		}
		if (write(f->fds[i], "X", 1) < 0 && errno != EAGAIN) {
			f->closed[i] = true;
			continue;
		}
		open++;
	}
	return open;
}

static void flood_close(struct flood *f)
{
	for (int i = 0; i < f->n; i++)
		close(f->fds[i]);
	f->n = 0;
}

/* the controller's (or aiblctl's) side: a request every 200 ms from 127.0.0.1 */
struct prober {
	int port;
	const char *req;
	const struct aibl_key
	    *key; /* sign each request as aibld does (req: up to the headers' end) */
	int timeout_ms;
	volatile bool stop;
	int ok, failed, worst_run;
	pthread_t th;
};

static void *prober_run(void *arg)
{
	struct prober *p = arg;
	int run = 0;

	while (!p->stop) {
		char ans[256], req[512], nonce[40], sig[AIBL_AUTH_HDR_MAX];
		int st;

		snprintf(req, sizeof(req), "%s\r\n", p->req);
		if (p->key) {
			aibl_auth__nonce(nonce, sizeof(nonce));
			aibl_auth__sign_req(p->key, time(NULL), nonce, AIBL_AUTH_REQ_REPORT, sig,
					    sizeof(sig));
			snprintf(req, sizeof(req), "%s" AIBL_AUTH_HEADER ": %s\r\n\r\n", p->req,
				 sig);
		}
		st = raw_http("127.0.0.1", p->port, req, ans, sizeof(ans), p->timeout_ms);

		if (st == 200) {
			p->ok++;
			run = 0;
		} else {
			p->failed++;
			if (++run > p->worst_run)
				p->worst_run = run;
		}
		usleep(200000);
	}
	return NULL;
}

/*
 * The attack and the goal: 2000 slowloris connections from 100
 * addresses against an agent; the controller's polls from its own address
 * (--controller) keep answering within aibld's 500 ms poll timeout, and
 * the trickle is cut at the request deadline.
 */
static void agent_flood(void)
{
	const char *extra[] = {"--controller", "127.0.0.1", "--request-timeout-ms", "3000", "--key",
			       key_path,       NULL};
	struct aibl_key master = {.len = strlen(KEY)}, node_key;
	static struct flood f;
	struct prober p = {
	    .port = AGENT_PORT,
	    .req = "GET /v1/report HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
	    .key = &node_key,
	    .timeout_ms = 500,
	};
	int open1 = 0, open_end = 0;
	double t0;
	pid_t agent;

	if (!have_agent())
		return;
	if (!raise_nofile(8192))
		return SKIP("cannot raise the open file limit");
	/* the agent holds its node's key; the polls are signed with it */
	memcpy(master.key, KEY, master.len);
	if (!ASSERT_OK(aibl_key__derive(&master, "ab-node", &node_key), "derive") ||
	    !write_key((const char *)node_key.key))
		return;
	agent = agent_start(extra);
	if (agent < 0)
		return;
	pthread_create(&p.th, NULL, prober_run, &p);
	t0 = now_ms();
	flood_open(&f, AGENT_PORT, 2000, 100);
	printf("  %d flood connections opened\n", f.n);
	/* a byte a second, for longer than the deadline */
	for (int s = 0; s < 6; s++) {
		sleep(1);
		open_end = flood_trickle(&f);
		if (s == 0)
			open1 = open_end;
		printf("  %.1f s: %d flood connections held by the agent\n", (now_ms() - t0) / 1e3,
		       open_end);
	}
	p.stop = true;
	pthread_join(p.th, NULL);
	printf("  controller polls: %d ok, %d failed, longest failing run %d\n", p.ok, p.failed,
	       p.worst_run);
	ASSERT_GE(f.n, 1900, "the flood connected");
	ASSERT_LE(open1, 256 + 16, "the agent holds at most --max-connections of them");
	ASSERT_EQ(open_end, 0, "trickling connections cut at the request deadline");
	ASSERT_GE(p.ok, 15, "polls answered during the flood");
	/* aibld marks a node unhealthy after fail_after (3) failed polls in a row */
	ASSERT_LE(p.worst_run, 2, "fewer failed polls in a row than fail_after: the node stays up");
	ASSERT_TRUE(waitpid(agent, NULL, WNOHANG) == 0, "agent alive");
	flood_close(&f);
	stop(&agent);
	unlink(key_path);
}

/* the same from one address: the per-source limit, no --controller needed */
static void agent_flood_one_source(void)
{
	static struct flood f;
	int open;
	pid_t agent;

	if (!have_agent())
		return;
	if (!raise_nofile(8192))
		return SKIP("cannot raise the open file limit");
	agent = agent_start(NULL);
	if (agent < 0)
		return;
	flood_open(&f, AGENT_PORT, 1100, 1);
	sleep(1);
	open = flood_trickle(&f);
	printf("  1100 from 127.0.0.2: %d held\n", open);
	ASSERT_LE(open, 16, "at most --max-connections-per-source from one address");
	ASSERT_EQ(raw_http(NULL, AGENT_PORT, "GET /v1/report HTTP/1.0\r\n\r\n", NULL, 0, 500), 200,
		  "reports still served to others");
	ASSERT_EQ(raw_http(NULL, AGENT_PORT, "GET /healthz HTTP/1.0\r\n\r\n", NULL, 0, 500), 200,
		  "and /healthz");
	flood_close(&f);
	stop(&agent);
}

/* 500 slow connections from 100 addresses leave /v1/status answering locally */
static void api_flood(void)
{
	static struct flood f;
	struct prober p = {
	    .port = API_PORT,
	    .req = "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n",
	    .timeout_ms = 1000,
	};
	int open = 0;

	if (!api_start())
		return;
	if (!raise_nofile(8192))
		return SKIP("cannot raise the open file limit");
	pthread_create(&p.th, NULL, prober_run, &p);
	flood_open(&f, API_PORT, 500, 100);
	for (int s = 0; s < 4; s++) {
		sleep(1);
		open = flood_trickle(&f);
	}
	p.stop = true;
	pthread_join(p.th, NULL);
	printf("  %d flood connections, %d held; /v1/status: %d ok, %d failed\n", f.n, open, p.ok,
	       p.failed);
	ASSERT_GE(f.n, 490, "the flood connected");
	ASSERT_LE(open, 64 + 8, "the API holds at most its limit of them");
	ASSERT_GE(p.ok, 10, "/v1/status answered during the flood");
	ASSERT_EQ(p.failed, 0, "and never failed");
	flood_close(&f);
}

/* 64 half-open connections, each trickling: cut at 10 s whatever they send */
static void api_trickle_cut(void)
{
	static struct flood f;
	int open = 0;
	double t0;

	if (!api_start())
		return;
	t0 = now_ms();
	flood_open(&f, API_PORT, 64, 16);
	while (now_ms() - t0 < 12500) {
		sleep(1);
		open = flood_trickle(&f);
		if (!open)
			break;
	}
	printf("  all %d cut after %.1f s of trickling\n", f.n, (now_ms() - t0) / 1e3);
	ASSERT_EQ(open, 0, "none outlives the request deadline");
	ASSERT_GE(now_ms() - t0, 9000, "none cut before it");
	flood_close(&f);
}

/* one per line */
/* clang-format off */
static const struct test_case cases[] = {
    {"sig_spellings", sig_spellings},
    {"hints_replay_respelled", hints_replay_respelled},
    {"post_refused_unread", post_refused_unread},
    {"api_bad_name", api_bad_name},
    {"api_log_injection", api_log_injection},
    {"config_names_urls", config_names_urls},
    {"range_text", range_text},
    {"node_keys", node_keys},
    {"agent_flood", agent_flood},
    {"agent_flood_one_source", agent_flood_one_source},
    {"api_flood", api_flood},
    {"api_trickle_cut", api_trickle_cut},
};
/* clang-format on */

int main(int argc, char **argv)
{
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = test__main(argc, argv, "abuse", cases, sizeof(cases) / sizeof(cases[0]));
	api__stop(api);
	return rc;
}
