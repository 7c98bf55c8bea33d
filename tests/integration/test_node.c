// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The node side over real HTTP: aibl-simnode and aibl-agent started as
 * processes on loopback (ports 18100-18199), read with libcurl, reports
 * read back with the controller's parser and checked with auth.h.
 */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include "test.h"
#include "auth.h"
#include "addr.h"
#include "report.h"

static char bin_sim[512], bin_agent[512], fake_nvml[512];

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	usleep(ms * 1000);
}

/* start argv[0] with extra environment ("K=V", NULL-terminated), its
 * standard error to errfile (NULL: this one's) */
static pid_t spawn_err(const char *const argv[], const char *const env[], const char *errfile)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		if (fd >= 0 && !getenv("AIBL_TEST_VERBOSE"))
			dup2(fd, 1);
		if (errfile) {
			fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd < 0)
				_exit(126);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static pid_t spawn(const char *const argv[], const char *const env[])
{
	return spawn_err(argv, env, NULL);
}

/* SIGTERM and wait: the exit status, or -1 when it had to be killed */
static int stop(pid_t pid)
{
	int status;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

struct resp {
	char *body;
	size_t len;
	long status;
	char sig[AIBL_AUTH_HDR_MAX];
	char hdr_name[64], hdr_val[64]; /* one response header to capture */
	double t_start, t_first_byte;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *r = ud;
	char *nb = realloc(r->body, r->len + sz * n + 1);

	if (!nb)
		return 0;
	if (!r->t_first_byte && sz * n > 0)
		r->t_first_byte = now_ms();
	memcpy(nb + r->len, p, sz * n);
	r->len += sz * n;
	nb[r->len] = '\0';
	r->body = nb;
	return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *r = ud;
	size_t len = sz * n, hl;
	const char *names[2] = {AIBL_AUTH_HEADER, r->hdr_name};
	char *dst[2] = {r->sig, r->hdr_val};
	size_t dlen[2] = {sizeof(r->sig), sizeof(r->hdr_val)};

	for (int k = 0; k < 2; k++) {
		hl = strlen(names[k]);
		if (!hl || len < hl + 2 || strncasecmp(p, names[k], hl) || p[hl] != ':')
			continue;
		snprintf(dst[k], dlen[k], "%.*s", (int)(len - hl - 1), p + hl + 1);
		/* trim blanks and CRLF */
		memmove(dst[k], dst[k] + strspn(dst[k], " "), strlen(dst[k]) + 1);
		dst[k][strcspn(dst[k], "\r\n")] = '\0';
	}
	return len;
}

/* the source address of the requests below, NULL the kernel's choice */
static const char *http_src;

/* GET (body NULL) or POST; extra header lines "Name: value" in hdrs, up
 * to a NULL */
static int http_hdrs(const char *url, const char *body, const char *const *hdrs, long tmo_ms,
		     struct resp *r)
{
	struct curl_slist *hl = NULL;
	CURL *c = curl_easy_init();
	CURLcode res;

	free(r->body);
	r->body = NULL;
	r->len = 0;
	r->status = 0;
	r->sig[0] = r->hdr_val[0] = '\0';
	r->t_first_byte = 0;
	if (!c)
		return -1;
	for (int i = 0; hdrs && hdrs[i]; i++)
		hl = curl_slist_append(hl, hdrs[i]);
	if (body) {
		hl = curl_slist_append(hl, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, tmo_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (http_src)
		curl_easy_setopt(c, CURLOPT_INTERFACE, http_src);
	r->t_start = now_ms();
	res = curl_easy_perform(c);
	if (res == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return res == CURLE_OK ? 0 : -1;
}

/* the same with up to two extra header lines, h1 and h2 (NULL none) */
static int http(const char *url, const char *body, const char *h1, const char *h2, long tmo_ms,
		struct resp *r)
{
	const char *hdrs[3] = {h1 ? h1 : h2, h1 ? h2 : NULL, NULL};

	return http_hdrs(url, body, hdrs, tmo_ms, r);
}

static bool wait_ok(const char *url)
{
	struct resp r = {};
	bool ok = false;

	for (int i = 0; i < 300 && !ok; i++) {
		ok = http(url, NULL, NULL, NULL, 1000, &r) == 0 && r.status == 200;
		if (!ok)
			sleep_ms(20);
	}
	free(r.body);
	return ok;
}

/* fetch and parse the agent's report */
/* GET /v1/report with header h (NULL none) */
static bool get_report_h(int port, const char *h, struct agent_report *rep)
{
	char url[128], err[256];
	struct resp r = {};
	bool ok;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/report", port);
	ok = http(url, NULL, h, NULL, 3000, &r) == 0 && r.status == 200 &&
	     agent_report__parse(r.body, r.len, rep, err, sizeof(err)) == 0;
	if (!ok) {
		agent_report__init(rep);
		if (r.body)
			fprintf(stderr, "  report refused: %s\n  %s\n", err, r.body);
	}
	free(r.body);
	return ok;
}

static bool get_report(int port, struct agent_report *rep)
{
	return get_report_h(port, NULL, rep);
}

/* poll until the agent has scraped server 0 successfully */
/* server 0 scraped, and the GPU thread's first round done: the two threads
 * start apart, and until that round the report says "NVML not sampled yet" */
static bool wait_server_up(int port, struct agent_report *rep)
{
	for (int i = 0; i < 250; i++) {
		if (get_report(port, rep) && rep->nservers && rep->servers[0].up &&
		    (rep->nvml || strcmp(rep->nvml_error, "NVML not sampled yet")))
			return true;
		agent_report__free(rep);
		sleep_ms(20);
	}
	return false;
}

static const struct ar_model *find_model(const struct agent_report *r, const char *name)
{
	for (int i = 0; i < r->nmodels; i++)
		if (!strcmp(r->models[i].name, name))
			return &r->models[i];
	return NULL;
}

/* spawn argv (env) and wait until url answers: its pid, -1 (asserted) */
static pid_t spawn_ready(const char *const argv[], const char *const env[], const char *url,
			 const char *what)
{
	pid_t pid = spawn(argv, env);

	if (!ASSERT_TRUE(pid > 0 && wait_ok(url), what)) {
		stop(pid);
		return -1;
	}
	return pid;
}

static pid_t start_sim(int port, const char *extra1, const char *extra2, const char *extra3)
{
	char listen[64], url[128];
	const char *argv[16] = {
	    bin_sim,	"--listen", listen,	 "--models", "m1:100,m2:100,m3:100",
	    "--mem-mb", "200",	    "--load-ms", "300",	     "--decode-ms-per-tok",
	    "2"};
	int n = 11;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	if (extra1)
		argv[n++] = extra1;
	if (extra2)
		argv[n++] = extra2;
	if (extra3)
		argv[n++] = extra3;
	argv[n] = NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", port);
	return spawn_ready(argv, NULL, url, "simnode up");
}

static pid_t start_agent(int port, int sim_port, const char *key, const char *timeout_ms,
			 const char *const env[])
{
	char listen[64], srv[64], url[128];
	const char *argv[24] = {bin_agent, "--listen",	     listen,   "--name",
				"node-a",  "--model-server", srv,      "--scrape-interval-ms",
				"100",	   "--nvml-lib",     fake_nvml};
	int n = 11;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(srv, sizeof(srv), "http://127.0.0.1:%d", sim_port);
	if (key) {
		argv[n++] = "--key";
		argv[n++] = key;
	}
	if (timeout_ms) {
		argv[n++] = "--scrape-timeout-ms";
		argv[n++] = timeout_ms;
	}
	argv[n] = NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	return spawn_ready(argv, env, url, "agent up");
}

static void report_basic(void)
{
	/* a proxy in the agent's environment (a shell that set one) is not
	 * where it asks its engines: nothing listens on port 9 */
	static const char *const env[] = {"FAKE_NVML_COUNT=2",
					  "FAKE_NVML_UTIL=30,70",
					  "FAKE_NVML_MEM_USED_MB=4096",
					  "FAKE_NVML_FAIL=tempv:1,power:1=15",
					  "http_proxy=http://127.0.0.1:9",
					  "ALL_PROXY=http://127.0.0.1:9",
					  "no_proxy=",
					  "NO_PROXY=",
					  NULL};
	pid_t sim = start_sim(18100, NULL, NULL, NULL), agent = -1;
	struct agent_report r;
	const struct ar_model *m;

	agent_report__init(&r);
	if (sim < 0)
		return;
	agent = start_agent(18101, 18100, NULL, NULL, env);
	if (agent < 0)
		goto out;
	if (!ASSERT_TRUE(wait_server_up(18101, &r), "server scraped"))
		goto out;
	ASSERT_EQ(r.schema, AGENT_REPORT_SCHEMA, "schema");
	ASSERT_STREQ(r.node, "node-a", "node");
	ASSERT_STREQ(r.servers[0].kind, "vllm", "simnode speaks vLLM");
	ASSERT_STREQ(r.servers[0].error, "", "no error");
	ASSERT_FALSE(r.stale, "fresh");
	ASSERT_TRUE(r.nvml, "fake NVML loaded");
	ASSERT_STREQ(r.accel, "gpu", "accel");
	if (ASSERT_EQ(r.ngpus, 2, "two GPUs")) {
		ASSERT_TRUE(r.gpus[0].util_pct == 30 && r.gpus[1].util_pct == 70, "util");
		ASSERT_TRUE(r.gpus[1].mem_used_bytes == 4096.0 * 1048576, "mem");
		/* through JSON: null, not 0, and why */
		ASSERT_FALSE(ar_gpu_known(r.gpus[1].temp_c), "temperature unknown");
		ASSERT_STREQ(r.gpus[1].error, "temp: Not Supported; power: GPU is lost", "why");
		ASSERT_TRUE(r.gpus[1].lost && !r.gpus[0].lost, "GPU 1 lost");
		ASSERT_TRUE(r.gpus[0].temp_c == 40, "GPU 0 temperature");
		ASSERT_STREQ(r.gpus[0].uuid, "GPU-fa4e0000-0000-4000-8000-000000000000", "uuid");
	}
	/* residency: m1, m2 fit the 200 MiB budget, m3 does not */
	m = find_model(&r, "m1");
	ASSERT_TRUE(m && m->resident, "m1 resident");
	m = find_model(&r, "m3");
	ASSERT_TRUE(m && !m->resident, "m3 loadable, not resident");
	ASSERT_TRUE(r.queue_depth == 0 && r.in_flight == 0, "idle");
	ASSERT_TRUE(r.probe_ms_per_token < 0, "no --speed-probe: no probe");
out:
	agent_report__free(&r);
	ASSERT_EQ(stop(agent), 0, "agent exits cleanly on SIGTERM");
	ASSERT_EQ(stop(sim), 0, "simnode exits cleanly on SIGTERM");
}

/*
 * A driver that hangs in nvmlShutdown at exit, and whose teardown waits for
 * that call (the fake's destructor, as a driver's takes the lock the call
 * holds): the agent gives up on its GPU thread after 2 s and leaves with
 * _exit(), so SIGTERM still ends it, with status 0; exit() would run the
 * library's teardown and wait there (30 s in the fake, for ever in such a
 * driver).
 */
static void exit_nvml_hung(void)
{
	static const char *const env[] = {"FAKE_NVML_COUNT=1", "FAKE_NVML_HANG=shutdown:-", NULL};
	pid_t sim = start_sim(18185, NULL, NULL, NULL), agent = -1;
	struct agent_report r;
	double t0;

	agent_report__init(&r);
	if (sim < 0)
		return;
	agent = start_agent(18186, 18185, NULL, NULL, env);
	if (agent < 0)
		goto out;
	if (!ASSERT_TRUE(wait_server_up(18186, &r), "server scraped"))
		goto out;
	ASSERT_TRUE(r.nvml && r.ngpus == 1, "its GPU reported (the driver answers until the exit)");
	t0 = now_ms();
	ASSERT_EQ(stop(agent), 0, "SIGTERM ends it, status 0");
	ASSERT_LE(now_ms() - t0, 4000, "within the 2 s it gives the GPU thread, and a margin");
	agent = -1;
out:
	agent_report__free(&r);
	if (agent > 0)
		stop(agent);
	ASSERT_EQ(stop(sim), 0, "simnode exits cleanly on SIGTERM");
}

/* the simnode's own count of finished requests (every model's), -1 unreadable */
static double sim_finished(int port)
{
	static const char key[] = "\nvllm:request_success_total{";
	char url[128];
	struct resp r = {};
	double v = -1, x;
	const char *p, *sp;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	if (http(url, NULL, NULL, NULL, 3000, &r) == 0 && r.status == 200 && r.body)
		for (p = strstr(r.body, key); p; p = strstr(p + 1, key))
			if ((sp = strchr(p + 1, ' ')) && sscanf(sp, "%lf", &x) == 1)
				v = (v < 0 ? 0 : v) + x;
	free(r.body);
	return v;
}

/*
 * an agent on two simnodes, servers "URL" + suffix each (",slots=N"), with
 * a short --stale-ms so that a stopped server drops out quickly
 */
static pid_t start_two_server_agent(int port, int sim1, const char *suf1, int sim2,
				    const char *suf2)
{
	char listen[64], s1[96], s2[96], url[128];
	const char *argv[] = {bin_agent,
			      "--listen",
			      listen,
			      "--name",
			      "node-s",
			      "--no-nvml",
			      "--model-server",
			      s1,
			      "--model-server",
			      s2,
			      "--scrape-interval-ms",
			      "50",
			      "--stale-ms",
			      "300",
			      NULL};

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(s1, sizeof(s1), "http://127.0.0.1:%d%s", sim1, suf1);
	snprintf(s2, sizeof(s2), "http://127.0.0.1:%d%s", sim2, suf2);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	return spawn_ready(argv, NULL, url, "agent up");
}

/* the agent's report once it has the node's slots as want (-1: unknown
 * with both servers up) */
static bool wait_slots(int port, double want, struct agent_report *r)
{
	for (int i = 0; i < 200; i++) {
		agent_report__free(r);
		if (get_report(port, r) && r->slots == want &&
		    (want >= 0 || (r->nservers == 2 && r->servers[0].up && r->servers[1].up)))
			return true;
		sleep_ms(20);
	}
	return false;
}

/*
 * --model-server URL,slots=N: each server's stated slots are reported, the
 * node's are the up servers' sum, and unknown where an up server states
 * none (it may run any number); a server that goes down leaves the sum
 */
static void stated_slots(void)
{
	pid_t a = start_sim(18170, NULL, NULL, NULL), b = start_sim(18172, NULL, NULL, NULL);
	pid_t both = -1, one = -1;
	struct agent_report r;

	agent_report__init(&r);
	if (a < 0 || b < 0)
		goto out;
	both = start_two_server_agent(18171, 18170, ",slots=4", 18172, ",kind=vllm,slots=6");
	one = start_two_server_agent(18173, 18170, ",slots=4", 18172, "");
	if (both < 0 || one < 0)
		goto out;
	if (ASSERT_TRUE(wait_slots(18171, 10, &r), "the node's slots: 4 + 6"))
		ASSERT_TRUE(r.servers[0].slots == 4 && r.servers[1].slots == 6, "each server's");
	if (ASSERT_TRUE(wait_slots(18173, -1, &r), "a server without: the node's unknown"))
		ASSERT_TRUE(r.servers[0].slots == 4 && r.servers[1].slots == -1,
			    "the stated one still reported");
	ASSERT_EQ(stop(b), 0, "simnode exit");
	b = -1;
	ASSERT_TRUE(wait_slots(18171, 4, &r), "a server down leaves the sum");
	ASSERT_TRUE(wait_slots(18173, 4, &r), "and the one that stated none the node");
out:
	agent_report__free(&r);
	ASSERT_EQ(stop(both), 0, "agent exit");
	ASSERT_EQ(stop(one), 0, "agent exit");
	ASSERT_EQ(stop(a), 0, "simnode exit");
	if (b > 0)
		ASSERT_EQ(stop(b), 0, "simnode exit");
}

/*
 * An agent named name on port for the simnode on sim_port, scraping every
 * 100 ms, no NVML, with the options extra (NULL-terminated, 8 at most);
 * its pid once its /healthz answers, or -1
 */
static pid_t start_agent_on(int port, int sim_port, const char *name, const char *const *extra)
{
	char listen[64], srv[64], url[128];
	const char *argv[20] = {bin_agent, "--listen",	listen,
				"--name",  name,	"--model-server",
				srv,	   "--no-nvml", "--scrape-interval-ms",
				"100"};
	int n = 10;

	for (int i = 0; extra && extra[i] && n < 18; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(srv, sizeof(srv), "http://127.0.0.1:%d", sim_port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	return spawn_ready(argv, NULL, url, "agent up");
}

/* an agent with --speed-probe on simnode sim_port, reports on port */
static pid_t start_probing_agent(int port, int sim_port)
{
	const char *const extra[] = {"--speed-probe", NULL};

	return start_agent_on(port, sim_port, "node-p", extra);
}

/* the agent's report once its speed probe is in, -1 when it never came */
static double wait_probe(int port, struct agent_report *r)
{
	for (int i = 0; i < 200; i++) {
		agent_report__free(r);
		if (get_report(port, r) && r->probe_ms_per_token > 0)
			return r->probe_ms_per_token;
		sleep_ms(25);
	}
	return -1;
}

/*
 * --speed-probe: the agent times one short completion on an idle server
 * and reports its time per output token; a server five times slower
 * probes slower (by far more than a loaded CI machine's noise), the
 * engine did serve the probe, and no window of the report holds it (no
 * client request has finished: no request latency)
 */
static void speed_probe(void)
{
	pid_t fast = start_sim(18160, NULL, NULL, NULL), slow = -1, af = -1, as = -1;
	struct agent_report r;
	double pf, ps;

	agent_report__init(&r);
	slow = start_sim(18162, "--slowdown", "5", NULL);
	if (fast < 0 || slow < 0)
		goto out;
	af = start_probing_agent(18161, 18160);
	as = start_probing_agent(18163, 18162);
	if (af < 0 || as < 0)
		goto out;
	pf = wait_probe(18161, &r);
	ASSERT_TRUE(pf > 0 && r.servers[0].probe_ms_per_token == pf, "fast node probed");
	ps = wait_probe(18163, &r);
	ASSERT_TRUE(ps > 0, "slow node probed");
	ASSERT_TRUE(ps > 2 * pf, "the 5x slower node probes slower");
	ASSERT_TRUE(sim_finished(18162) == 1, "the engine served the probe, once");
	/* a few more scrapes: the probe is in the counters' baseline */
	sleep_ms(350);
	agent_report__free(&r);
	if (ASSERT_TRUE(get_report(18163, &r), "report"))
		ASSERT_TRUE(r.e2e_avg_ms < 0 && r.servers[0].e2e_avg_ms < 0,
			    "no client request finished: no request latency");
	ASSERT_TRUE(r.probe_ms_per_token == ps, "the probe stays");
	ASSERT_TRUE(sim_finished(18162) == 1, "and is not repeated");
out:
	agent_report__free(&r);
	ASSERT_EQ(stop(af), 0, "agent exit");
	ASSERT_EQ(stop(as), 0, "agent exit");
	ASSERT_EQ(stop(fast), 0, "simnode exit");
	ASSERT_EQ(stop(slow), 0, "simnode exit");
}

/* both servers' probes of an agent's report, false until both are in */
static bool both_probed(int port, double *p0, double *p1)
{
	struct agent_report r;
	bool ok = false;

	agent_report__init(&r);
	if (get_report(port, &r) && r.nservers == 2 && r.servers[0].probe_ms_per_token > 0 &&
	    r.servers[1].probe_ms_per_token > 0) {
		*p0 = r.servers[0].probe_ms_per_token;
		*p1 = r.servers[1].probe_ms_per_token;
		ok = true;
	}
	agent_report__free(&r);
	return ok;
}

/*
 * Two engines of one agent restarted together, now five times slower: both
 * are probed again. Before, a round's probe of the first took the second's
 * restart along with it, and the second kept the old process's speed.
 */
static void speed_probe_restart(void)
{
	const char *const extra[] = {"--speed-probe", "--model-server", "http://127.0.0.1:18165",
				     NULL};
	pid_t s0 = start_sim(18164, NULL, NULL, NULL), s1 = start_sim(18165, NULL, NULL, NULL);
	pid_t ag = -1;
	double a0 = -1, a1 = -1, b0 = -1, b1 = -1;
	bool in = false;

	if (s0 < 0 || s1 < 0)
		goto out;
	ag = start_agent_on(18166, 18164, "node-r", extra);
	if (ag < 0)
		goto out;
	for (int i = 0; i < 200 && !in; i++) {
		in = both_probed(18166, &a0, &a1);
		sleep_ms(25);
	}
	if (!ASSERT_TRUE(in, "both engines probed"))
		goto out;
	/* the agent held still while both restart: its next round meets both */
	kill(ag, SIGSTOP);
	ASSERT_EQ(stop(s0), 0, "simnode exit");
	ASSERT_EQ(stop(s1), 0, "simnode exit");
	s0 = start_sim(18164, "--slowdown", "5", NULL);
	s1 = start_sim(18165, "--slowdown", "5", NULL);
	kill(ag, SIGCONT);
	in = false;
	for (int i = 0; i < 200 && !in; i++) {
		in = both_probed(18166, &b0, &b1) && b0 > 2 * a0 && b1 > 2 * a1;
		sleep_ms(25);
	}
	ASSERT_TRUE(in, "both probed again, five times slower");
	ASSERT_TRUE(sim_finished(18164) == 1 && sim_finished(18165) == 1,
		    "each new engine served one probe");
out:
	if (ag > 0)
		kill(ag, SIGCONT);
	ASSERT_EQ(stop(ag), 0, "agent exit");
	ASSERT_EQ(stop(s0), 0, "simnode exit");
	ASSERT_EQ(stop(s1), 0, "simnode exit");
}

/* the clients of the report's hints on port, as "a b c" in the report's
 * order; false when no report */
static bool hint_clients(int port, char *out, size_t len)
{
	struct agent_report r;
	char ip[INET6_ADDRSTRLEN];
	bool ok;

	agent_report__init(&r);
	out[0] = '\0';
	ok = get_report(port, &r);
	for (int i = 0; ok && i < r.nhints; i++)
		snprintf(
		    out + strlen(out), len - strlen(out), "%s%s", i ? " " : "",
		    aibl_addr__str(&r.hints[i].client, r.hints[i].client_family, ip, sizeof(ip)));
	agent_report__free(&r);
	return ok;
}

/*
 * One of a node's two engines restarts: the hints of its sessions go, the
 * other engine's stay. Its sessions' hints are those of a model it held
 * and those without a model whose VIP port is its URL's; one whose port no
 * engine has cannot be told whose and goes too. Before, every hint of the
 * node went, and the other engine's sessions lost their pins.
 */
static void restart_hints_own_server(void)
{
	const char *const extra[] = {"--speed-probe", "--model-server", "http://127.0.0.1:18143",
				     NULL};
	const char *hints = "{\"hints\":["
			    "{\"client\":\"10.1.1.1\",\"model\":\"m1\",\"ttl_ms\":60000},"
			    "{\"client\":\"10.1.1.2\",\"model\":\"m2\",\"ttl_ms\":59000},"
			    "{\"client\":\"10.1.1.3\",\"vip\":\"10.100.0.1\",\"port\":18143,"
			    "\"proto\":\"tcp\",\"ttl_ms\":58000},"
			    "{\"client\":\"10.1.1.4\",\"vip\":\"10.100.0.1\",\"port\":18142,"
			    "\"proto\":\"tcp\",\"ttl_ms\":57000},"
			    "{\"client\":\"10.1.1.5\",\"vip\":\"10.100.0.1\",\"port\":80,"
			    "\"proto\":\"tcp\",\"ttl_ms\":56000}]}";
	pid_t s0 = start_sim(18142, "--resident", "m1", NULL),
	      s1 = start_sim(18143, "--resident", "m2", NULL), ag = -1;
	double p0, p1;
	char got[128] = "";
	struct resp r = {};
	bool in = false;

	if (s0 < 0 || s1 < 0)
		goto out;
	ag = start_agent_on(18144, 18142, "node-h", extra);
	if (ag < 0)
		goto out;
	/* the probes: each engine has served a request, so a restart shows */
	for (int i = 0; i < 200 && !in; i++) {
		in = both_probed(18144, &p0, &p1);
		sleep_ms(25);
	}
	if (!ASSERT_TRUE(in, "both engines probed"))
		goto out;
	http("http://127.0.0.1:18144/v1/hints", hints, NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 200, "hints posted");
	if (!ASSERT_TRUE(hint_clients(18144, got, sizeof(got)), "report") ||
	    !ASSERT_STREQ(got, "10.1.1.1 10.1.1.2 10.1.1.3 10.1.1.4 10.1.1.5", "five hints"))
		goto out;
	/* engine 0 restarts while the agent holds still */
	kill(ag, SIGSTOP);
	ASSERT_EQ(stop(s0), 0, "simnode exit");
	s0 = start_sim(18142, "--resident", "m1", NULL);
	kill(ag, SIGCONT);
	in = false;
	for (int i = 0; i < 200 && !in; i++) {
		in = hint_clients(18144, got, sizeof(got)) &&
		     strcmp(got, "10.1.1.1 10.1.1.2 "
				 "10.1.1.3 10.1.1.4 10.1.1.5");
		sleep_ms(25);
	}
	ASSERT_STREQ(got, "10.1.1.2 10.1.1.3", "engine 1's hints kept, engine 0's gone");
out:
	free(r.body);
	if (ag > 0)
		kill(ag, SIGCONT);
	ASSERT_EQ(stop(ag), 0, "agent exit");
	ASSERT_EQ(stop(s0), 0, "simnode exit");
	ASSERT_EQ(stop(s1), 0, "simnode exit");
}

static void cpu_node(void)
{
	pid_t sim = start_sim(18110, NULL, NULL, NULL), agent = -1;
	char listen[] = "127.0.0.1:18111";
	const char *argv[] = {bin_agent,
			      "--listen",
			      listen,
			      "--name",
			      "cpu-1",
			      "--model-server",
			      "http://127.0.0.1:18110",
			      "--scrape-interval-ms",
			      "100",
			      "--nvml-lib",
			      "/nonexistent/libnvidia-ml.so.1",
			      NULL};
	struct agent_report r;

	agent_report__init(&r);
	if (sim < 0)
		return;
	agent = spawn(argv, NULL);
	if (!ASSERT_TRUE(wait_ok("http://127.0.0.1:18111/healthz"), "agent up") ||
	    !ASSERT_TRUE(wait_server_up(18111, &r), "scraped"))
		goto out;
	ASSERT_FALSE(r.nvml, "no NVML");
	ASSERT_EQ(r.ngpus, 0, "no GPU figures");
	ASSERT_TRUE(strstr(r.nvml_error, "NVML not available") != NULL, r.nvml_error);
	ASSERT_STREQ(r.accel, "cpu", "CPU node");
out:
	agent_report__free(&r);
	ASSERT_EQ(stop(agent), 0, "agent exit");
	ASSERT_EQ(stop(sim), 0, "simnode exit");
}

struct load_arg {
	const char *url, *body;
	long status;
};

static void *load_one(void *p)
{
	struct load_arg *a = p;
	struct resp r = {};

	http(a->url, a->body, NULL, NULL, 20000, &r);
	a->status = r.status;
	free(r.body);
	return NULL;
}

static void load_figures(void)
{
	/* one slot, 40 ms per token: 6 requests of 10 tokens queue up */
	pid_t sim = start_sim(18120, "--slots", "1", "--decode-ms-per-tok=40"), agent = -1;
	struct load_arg args[6];
	pthread_t th[6];
	struct agent_report r;
	double max_q = 0, max_in = 0, max_run = -1, max_since = -1, max_wait = -1;
	int started = 0;

	agent_report__init(&r);
	if (sim < 0)
		return;
	agent = start_agent(18121, 18120, NULL, NULL, NULL);
	if (agent < 0 || !ASSERT_TRUE(wait_server_up(18121, &r), "scraped"))
		goto out;
	ASSERT_TRUE(r.ttft_avg_ms == -1, "no TTFT before any request");
	agent_report__free(&r);
	for (int i = 0; i < 6; i++) {
		args[i].url = "http://127.0.0.1:18120/v1/completions";
		args[i].body =
		    "{\"model\":\"m1\",\"prompt\":\"load test prompt\",\"max_tokens\":10}";
		args[i].status = 0;
		if (pthread_create(&th[i], NULL, load_one, &args[i]) == 0)
			started++;
	}
	/* watch the agent's figures while the requests run */
	for (int i = 0; i < 60; i++) {
		if (get_report(18121, &r)) {
			max_q = fmax(max_q, r.queue_depth);
			max_in = fmax(max_in, r.in_flight);
			max_run = fmax(max_run, r.run_avg_ms);
			max_since = fmax(max_since, r.since_finish_ms);
			if (r.run_avg_ms >= 0 && r.e2e_avg_ms >= 0)
				max_wait = fmax(max_wait, r.e2e_avg_ms - r.run_avg_ms);
		}
		agent_report__free(&r);
		sleep_ms(50);
	}
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		ASSERT_EQ(args[i].status, 200, "request served");
	}
	ASSERT_EQ(started, 6, "threads");
	ASSERT_GE(max_q, 2, "queue depth seen under load");
	ASSERT_GE(max_in, 3, "in flight seen under load");
	/* each request holds the one slot for the 9 tokens after its first,
	 * 40 ms each (simulated sleeps: they only ever take longer), and
	 * those behind it wait */
	ASSERT_GE(max_run, 360, "how long requests ran (request_inference_time)");
	ASSERT_GE(max_wait, 300, "finished requests had waited: e2e beyond their run");
	ASSERT_GE(max_since, 200, "running, none finished yet: since_finish_ms");
	/* afterwards: idle again, and a TTFT figure from the histogram */
	sleep_ms(400);
	if (ASSERT_TRUE(get_report(18121, &r), "report")) {
		ASSERT_TRUE(r.queue_depth == 0 && r.in_flight == 0, "idle again");
		ASSERT_GE(r.ttft_avg_ms, 1, "TTFT measured (queueing included)");
		ASSERT_GE(r.servers[0].kv_cache_usage, 0, "kv known");
	}
out:
	agent_report__free(&r);
	ASSERT_EQ(stop(agent), 0, "agent exit");
	ASSERT_EQ(stop(sim), 0, "simnode exit");
}

static bool write_key(char *path, const char *key)
{
	int fd = mkstemp(path);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, key, strlen(key)) == (ssize_t)strlen(key);
	fchmod(fd, 0600);
	close(fd);
	return ok;
}

static void signed_reports(void)
{
	char kpath[] = "/tmp/aibl-ag-key-XXXXXX", hdr[AIBL_AUTH_HDR_MAX], nonce[40];
	char hint_hdr[AIBL_AUTH_HDR_MAX + 32];
	const char *hints =
	    "{\"hints\":[{\"client\":\"10.9.9.9\",\"model\":\"m1\",\"ttl_ms\":60000}]}";
	struct aibl_key key = {}, other = {};
	pid_t sim = -1, agent = -1;
	struct resp r = {};
	struct agent_report rep;
	char msg[256], nh[80], ip[INET6_ADDRSTRLEN], rq[AIBL_AUTH_HDR_MAX + 32];
	char resp_sig[AIBL_AUTH_HDR_MAX + 32];

	agent_report__init(&rep);
	if (!ASSERT_TRUE(write_key(kpath, "0123456789abcdef-node-key\n"), "key file"))
		return;
	if (!ASSERT_OK(aibl_key__load(kpath, &key, msg, sizeof(msg)), msg))
		goto out;
	memcpy(&other, &key, sizeof(key));
	other.key[0] ^= 1;
	sim = start_sim(18130, NULL, NULL, NULL);
	if (sim < 0)
		goto out;
	agent = start_agent(18131, 18130, kpath, NULL, NULL);
	if (agent < 0)
		goto out;

	/* an unsigned request gets no report: the agent is no signing oracle */
	aibl_auth__nonce(nonce, sizeof(nonce));
	snprintf(nh, sizeof(nh), "%s: %s", AIBL_NONCE_HEADER, nonce);
	http("http://127.0.0.1:18131/v1/report", NULL, nh, NULL, 3000, &r);
	ASSERT_EQ(r.status, 401, "unsigned request refused");
	ASSERT_TRUE(r.body && strstr(r.body, "not signed") != NULL, "says why");
	/* signed as aibld signs it: the report, signed for our nonce */
	aibl_auth__sign_req(&key, time(NULL), nonce, AIBL_AUTH_REQ_REPORT, hdr, sizeof(hdr));
	snprintf(rq, sizeof(rq), "%s: %s", AIBL_AUTH_HEADER, hdr);
	if (!ASSERT_OK(http("http://127.0.0.1:18131/v1/report", NULL, rq, NULL, 3000, &r), "get") ||
	    !ASSERT_EQ(r.status, 200, "status"))
		goto out;
	ASSERT_OK(aibl_auth__verify(&key, r.sig, nonce, r.body, r.len, time(NULL), 30),
		  "signed with our nonce verifies");
	snprintf(resp_sig, sizeof(resp_sig), "%s: %s", AIBL_AUTH_HEADER, r.sig);
	ASSERT_EQ(aibl_auth__verify(&key, r.sig, "another-nonce", r.body, r.len, time(NULL), 30),
		  -ESTALE, "replay for another nonce refused");
	ASSERT_EQ(aibl_auth__verify(&other, r.sig, nonce, r.body, r.len, time(NULL), 30), -EPERM,
		  "rogue key refused");
	r.body[r.len / 2] ^= 1;
	ASSERT_EQ(aibl_auth__verify(&key, r.sig, nonce, r.body, r.len, time(NULL), 30), -EPERM,
		  "tampered body refused");
	ASSERT_EQ(aibl_auth__verify(&key, "garbage", nonce, r.body, r.len, time(NULL), 30),
		  -EBADMSG, "garbage header refused");
	ASSERT_EQ(aibl_auth__verify(&key, NULL, nonce, r.body, r.len, time(NULL), 30), -EBADMSG,
		  "unsigned refused");
	/* the same signed request again: refused (one report per request) */
	http("http://127.0.0.1:18131/v1/report", NULL, rq, NULL, 3000, &r);
	ASSERT_EQ(r.status, 401, "replayed request refused");
	/* another key's request, and a report's signature used as a request's */
	aibl_auth__nonce(nonce, sizeof(nonce));
	aibl_auth__sign_req(&other, time(NULL), nonce, AIBL_AUTH_REQ_REPORT, hdr, sizeof(hdr));
	snprintf(rq, sizeof(rq), "%s: %s", AIBL_AUTH_HEADER, hdr);
	http("http://127.0.0.1:18131/v1/report", NULL, rq, NULL, 3000, &r);
	ASSERT_EQ(r.status, 401, "request signed with another key refused");
	http("http://127.0.0.1:18131/v1/report", NULL, resp_sig, NULL, 3000, &r);
	ASSERT_EQ(r.status, 401, "a report's signature is no request's");

	/* hints: unsigned refused, signed accepted and reported */
	http("http://127.0.0.1:18131/v1/hints", hints, NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 401, "unsigned hints refused");
	ASSERT_TRUE(r.body && strstr(r.body, "no X-Aibl-Signature") != NULL, "says why");
	aibl_auth__sign(&other, time(NULL), NULL, hints, strlen(hints), hdr, sizeof(hdr));
	snprintf(hint_hdr, sizeof(hint_hdr), "%s: %s", AIBL_AUTH_HEADER, hdr);
	http("http://127.0.0.1:18131/v1/hints", hints, hint_hdr, NULL, 3000, &r);
	ASSERT_EQ(r.status, 401, "wrong key refused");
	aibl_auth__sign(&key, time(NULL), NULL, hints, strlen(hints), hdr, sizeof(hdr));
	snprintf(hint_hdr, sizeof(hint_hdr), "%s: %s", AIBL_AUTH_HEADER, hdr);
	http("http://127.0.0.1:18131/v1/hints", hints, hint_hdr, NULL, 3000, &r);
	ASSERT_EQ(r.status, 200, "signed hints accepted");
	http("http://127.0.0.1:18131/v1/hints", "{\"hints\":[{\"client\":\"nope\"}]}", hint_hdr,
	     NULL, 3000, &r);
	ASSERT_EQ(r.status, 401, "signature over another body refused");
	aibl_auth__nonce(nonce, sizeof(nonce));
	aibl_auth__sign_req(&key, time(NULL), nonce, AIBL_AUTH_REQ_REPORT, hdr, sizeof(hdr));
	snprintf(rq, sizeof(rq), "%s: %s", AIBL_AUTH_HEADER, hdr);
	if (ASSERT_OK(http("http://127.0.0.1:18131/v1/report", NULL, rq, NULL, 3000, &r), "get") &&
	    ASSERT_EQ(r.status, 200, "signed request") &&
	    ASSERT_OK(agent_report__parse(r.body, r.len, &rep, msg, sizeof(msg)), "report")) {
		ASSERT_EQ(rep.nhints, 1, "hint reported");
		if (rep.nhints == 1) {
			ASSERT_STREQ(aibl_addr__str(&rep.hints[0].client,
						    rep.hints[0].client_family, ip, sizeof(ip)),
				     "10.9.9.9", "client");
			ASSERT_STREQ(rep.hints[0].source, "server", "source");
			ASSERT_LE(rep.hints[0].ttl_ms, 60000, "ttl counts down");
		}
	}
out:
	free(r.body);
	agent_report__free(&rep);
	ASSERT_EQ(stop(agent), 0, "agent exit");
	ASSERT_EQ(stop(sim), 0, "simnode exit");
	unlink(kpath);
}

static void unsigned_hints_local_only(void)
{
	pid_t sim = start_sim(18135, NULL, NULL, NULL), agent = -1;
	struct resp r = {};
	struct agent_report rep;

	agent_report__init(&rep);
	if (sim < 0)
		return;
	agent = start_agent(18136, 18135, NULL, NULL, NULL);
	if (agent < 0)
		goto out;
	http("http://127.0.0.1:18136/v1/hints",
	     "{\"hints\":[{\"client\":\"10.1.1.1\",\"vip\":\"10.100.0.1\","
	     "\"port\":80,\"proto\":\"tcp\",\"ttl_ms\":5000,\"score\":0.5}]}",
	     NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 200, "loopback poster without key");
	http("http://127.0.0.1:18136/v1/hints", "{\"hints\":[{\"client\":\"10.1.1.1\"}]}", NULL,
	     NULL, 3000, &r);
	ASSERT_EQ(r.status, 400, "invalid hint");
	ASSERT_TRUE(r.body && strstr(r.body, "ttl_ms") != NULL, "says why");
	http("http://127.0.0.1:18136/v1/hints", NULL, NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 405, "GET on hints");
	http("http://127.0.0.1:18136/nope", NULL, NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 404, "unknown path");
	if (ASSERT_TRUE(get_report(18136, &rep), "report") &&
	    ASSERT_EQ(rep.nhints, 1, "one hint")) {
		ASSERT_EQ(rep.hints[0].port, 80, "port");
		ASSERT_EQ(rep.hints[0].proto, 6, "tcp");
	}
out:
	free(r.body);
	agent_report__free(&rep);
	ASSERT_EQ(stop(agent), 0, "agent exit");
	ASSERT_EQ(stop(sim), 0, "simnode exit");
}

static void slow_server(void)
{
	/* a "model server" that accepts connections and never answers */
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(18140)};
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
	char listen_s[] = "127.0.0.1:18141";
	const char *argv[] = {bin_agent,
			      "--listen",
			      listen_s,
			      "--name",
			      "slow",
			      "--model-server",
			      "http://127.0.0.1:18140",
			      "--scrape-interval-ms",
			      "100",
			      "--scrape-timeout-ms",
			      "2500",
			      "--stale-ms",
			      "1000",
			      "--no-nvml",
			      NULL};
	struct agent_report r;
	pid_t agent = -1;
	bool timed_out = false;

	agent_report__init(&r);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!ASSERT_OK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), "bind") ||
	    !ASSERT_OK(listen(lfd, 64), "listen"))
		goto out;
	agent = spawn(argv, NULL);
	if (!ASSERT_TRUE(wait_ok("http://127.0.0.1:18141/healthz"), "agent up"))
		goto out;
	/* while the scrape hangs (2.5 s), reports keep coming (each within 1 s) */
	for (int i = 0; i < 10; i++) {
		if (!ASSERT_TRUE(get_report(18141, &r), "report while the scrape hangs"))
			break;
		ASSERT_FALSE(r.servers[0].up, "not up");
		ASSERT_TRUE(r.stale, "stale");
		agent_report__free(&r);
		sleep_ms(100);
	}
	/* then the timeout is reported as the server's error */
	for (int i = 0; i < 100 && !timed_out; i++) {
		if (get_report(18141, &r))
			timed_out = strstr(r.servers[0].error, "Timeout") != NULL;
		if (!timed_out)
			agent_report__free(&r);
		sleep_ms(50);
	}
	if (ASSERT_TRUE(timed_out, "scrape timeout reported")) {
		ASSERT_GE(r.servers[0].age_ms, 2000, "age grows");
		ASSERT_TRUE(r.queue_depth == -1 && r.ttft_avg_ms == -1, "no figures from it");
	}
out:
	agent_report__free(&r);
	ASSERT_EQ(stop(agent), 0, "agent exits while a scrape hangs");
	close(lfd);
}

/* one streaming chat turn (h2: another header, NULL none); returns time to
 * the first SSE byte in ms */
static double chat_turn_h(int port, const char *sid, const char *h2, const char *prompt,
			  char *cached, size_t clen, char **body)
{
	char url[128], hdr[128], *req = NULL;
	struct resp r = {};
	double ttft = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", port);
	snprintf(hdr, sizeof(hdr), "X-Session-Id: %s", sid);
	strcpy(r.hdr_name, "X-Simnode-Cached-Tokens");
	if (asprintf(&req,
		     "{\"model\":\"m1\",\"stream\":true,\"max_tokens\":4,\"messages\":"
		     "[{\"role\":\"user\",\"content\":\"%s\"}]}",
		     prompt) < 0)
		return -1;
	if (http(url, req, hdr, h2, 10000, &r) == 0 && r.status == 200 && r.t_first_byte)
		ttft = r.t_first_byte - r.t_start;
	snprintf(cached, clen, "%.31s", r.hdr_val);
	if (body)
		*body = r.body;
	else
		free(r.body);
	free(req);
	return ttft;
}

static double chat_turn(int port, const char *sid, const char *prompt, char *cached, size_t clen,
			char **body)
{
	return chat_turn_h(port, sid, NULL, prompt, cached, clen, body);
}

static void simnode_prefix_ttft(void)
{
	/* 8000 characters = 2000 tokens at 0.25 ms: 500 ms of prefill when cold */
	pid_t sim = start_sim(18150, "--prefill-ms-per-tok=0.25", NULL, NULL);
	char *prompt = malloc(8001), cached[32], *body = NULL;
	double cold, warm, other;

	if (sim < 0 || !ASSERT_OK_PTR(prompt, "alloc"))
		goto out;
	for (int i = 0; i < 8000; i++)
		prompt[i] = 'a' + i % 26;
	prompt[8000] = '\0';
	cold = chat_turn(18150, "conv-1", prompt, cached, sizeof(cached), &body);
	ASSERT_STREQ(cached, "0", "first turn: nothing cached");
	ASSERT_TRUE(body && strstr(body, "data: [DONE]") != NULL, "SSE stream ends with DONE");
	ASSERT_TRUE(body && strstr(body, "chat.completion.chunk") != NULL, "chunks");
	warm = chat_turn(18150, "conv-1", prompt, cached, sizeof(cached), NULL);
	/* "user: " + 8000 + "\n" = 8007 characters, 2002 tokens; the last is
	 * always computed */
	ASSERT_STREQ(cached, "2001", "same prompt again: all but the last token cached");
	other = chat_turn(18150, "conv-2", prompt, cached, sizeof(cached), NULL);
	ASSERT_STREQ(cached, "0", "another conversation is another session");
	fprintf(stderr, "  ttft cold %.1f ms, warm %.1f ms, other session %.1f ms\n", cold, warm,
		other);
	/* 500 ms of prefill against ~2: a ratio, not an absolute time */
	ASSERT_TRUE(cold > 0 && warm > 0 && warm * 3 < cold, "prefix hit lowers TTFT");
	ASSERT_TRUE(other * 0.5 > warm, "cold again for another session");
	/* behind an L7 proxy the client is the one X-Forwarded-For names:
	 * the same conversation of another client is another session */
	chat_turn_h(18150, "conv-3", "X-Forwarded-For: 192.0.2.7", prompt, cached, sizeof(cached),
		    NULL);
	chat_turn_h(18150, "conv-3", "X-Forwarded-For: 192.0.2.7, 10.0.0.1", prompt, cached,
		    sizeof(cached), NULL);
	ASSERT_STREQ(cached, "2001", "the same forwarded client: its cache");
	chat_turn_h(18150, "conv-3", "X-Forwarded-For: 192.0.2.8", prompt, cached, sizeof(cached),
		    NULL);
	ASSERT_STREQ(cached, "0", "another forwarded client: another session");
out:
	free(body);
	free(prompt);
	ASSERT_EQ(stop(sim), 0, "simnode exit");
}

static void simnode_cold_start(void)
{
	pid_t sim = start_sim(18160, NULL, NULL, NULL);
	struct resp r = {};
	const char *body = "{\"model\":\"m3\",\"prompt\":\"hello\",\"max_tokens\":2}";
	double t_cold, t_warm;

	if (sim < 0)
		return;
	strcpy(r.hdr_name, "X-Simnode-Cold-Start");
	http("http://127.0.0.1:18160/v1/completions", body, NULL, NULL, 10000, &r);
	t_cold = now_ms() - r.t_start;
	ASSERT_EQ(r.status, 200, "served");
	ASSERT_STREQ(r.hdr_val, "1", "cold start on a non-resident model");
	http("http://127.0.0.1:18160/v1/completions", body, NULL, NULL, 10000, &r);
	t_warm = now_ms() - r.t_start;
	ASSERT_STREQ(r.hdr_val, "0", "resident now");
	fprintf(stderr, "  cold %.1f ms, warm %.1f ms (load 300 ms)\n", t_cold, t_warm);
	/* a sleep never ends early: the cold one took at least the load time */
	ASSERT_GE(t_cold, 300, "the load time shows");
	/* m1 (least recently used) made room */
	http("http://127.0.0.1:18160/v1/models", NULL, NULL, NULL, 3000, &r);
	ASSERT_TRUE(r.body && strstr(r.body, "\"id\":\"m3\",\"object\":\"model\",\"created\":0,"
					     "\"owned_by\":\"aibl-simnode\",\"resident\":true"),
		    "m3 resident");
	ASSERT_TRUE(r.body && strstr(r.body, "\"id\":\"m1\",\"object\":\"model\",\"created\":0,"
					     "\"owned_by\":\"aibl-simnode\",\"resident\":false"),
		    "m1 evicted");
	http("http://127.0.0.1:18160/v1/completions", "{\"model\":\"zz\",\"prompt\":\"x\"}", NULL,
	     NULL, 3000, &r);
	ASSERT_EQ(r.status, 404, "unknown model");
	http("http://127.0.0.1:18160/v1/completions",
	     "{\"model\":\"m1\",\"prompt\":\"x\","
	     "\"max_tokens\":0}",
	     NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 400, "bad max_tokens");
	free(r.body);
	ASSERT_EQ(stop(sim), 0, "simnode exit");
}

/* the runtime model API: an operator moves a model; the agent's report
 * follows within a scrape (the ai policy then moves the traffic) */
static void simnode_model_api(void)
{
	static const struct {
		const char *op, *body, *what;
		long status;
	} ops[] = {
	    {"unload", "{\"lora_name\":\"m1\"}", "unload m1", 200},
	    {"unload", "{\"lora_name\":\"m1\"}", "unload again: not loaded", 409},
	    {"load", "{\"lora_name\":\"m2\"}", "load m2 (waits for the 300 ms load)", 200},
	    {"load", "{\"lora_name\":\"zz\"}", "not a model, no lora_path (vLLM: 400)", 400},
	    {"load", "{\"name\":\"m2\"}", "no lora_name", 400},
	};
	pid_t sim = start_sim(18175, "--resident", "m1", NULL), agent = -1;
	struct agent_report rep;
	const struct ar_model *m;
	struct resp r = {};
	bool seen = false;

	if (sim < 0)
		return;
	agent = start_agent(18176, 18175, NULL, NULL, NULL);
	if (agent < 0 || !ASSERT_TRUE(wait_server_up(18176, &rep), "agent scraped the node"))
		goto out;
	m = find_model(&rep, "m1");
	ASSERT_TRUE(m && m->resident, "m1 resident at the start");
	agent_report__free(&rep);

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		char url[96];

		snprintf(url, sizeof(url), "http://127.0.0.1:18175/v1/%s_lora_adapter", ops[i].op);
		http(url, ops[i].body, NULL, NULL, 5000, &r);
		ASSERT_EQ(r.status, ops[i].status, ops[i].what);
	}

	/* the agent scrapes every 100 ms */
	for (int i = 0; i < 50 && !seen; i++) {
		const struct ar_model *m1, *m2;

		sleep_ms(20);
		if (!get_report(18176, &rep))
			continue;
		m1 = find_model(&rep, "m1");
		m2 = find_model(&rep, "m2");
		seen = m1 && !m1->resident && m2 && m2->resident;
		agent_report__free(&rep);
	}
	ASSERT_TRUE(seen, "the report follows the move within a second");
out:
	free(r.body);
	if (agent > 0)
		stop(agent);
	ASSERT_EQ(stop(sim), 0, "simnode exit");
}

/* poll the agent until adapter `name` is resident (want) or gone (!want) */
static bool report_has(int port, const char *name, bool want)
{
	struct agent_report rep;
	bool ok = false;

	/* the agent scrapes every 100 ms */
	for (int i = 0; i < 50 && !ok; i++) {
		const struct ar_model *m;

		sleep_ms(20);
		if (!get_report(port, &rep))
			continue;
		m = find_model(&rep, name);
		ok = want ? m && m->resident : !m;
		agent_report__free(&rep);
	}
	return ok;
}

/* LoRA adapters as vLLM serves them: listed with their parent once
 * loaded, a resident model in the agent's report, gone from it within a
 * scrape of the unload; a request naming one not loaded gets vLLM's 404 */
static void simnode_lora(void)
{
	const char *req = "{\"model\":\"sql\",\"prompt\":\"select\",\"max_tokens\":2}";
	pid_t sim = start_sim(18177, "--lora-load-ms", "200", NULL), agent = -1;
	struct agent_report rep;
	struct resp r = {};
	double t;

	if (sim < 0)
		return;
	agent = start_agent(18178, 18177, NULL, NULL, NULL);
	if (agent < 0 || !ASSERT_TRUE(wait_server_up(18178, &rep), "agent scraped the node"))
		goto out;
	agent_report__free(&rep);
	http("http://127.0.0.1:18177/v1/completions", req, NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 404, "not loaded: 404");
	ASSERT_TRUE(r.body &&
			strstr(r.body, "{\"error\":{\"message\":\"The model `sql` does "
				       "not exist.\",\"type\":\"NotFoundError\",\"code\":404}"),
		    "vLLM's error");
	http("http://127.0.0.1:18177/v1/load_lora_adapter",
	     "{\"lora_name\":\"sql\",\"lora_path\":\"/adapters/sql\"}", NULL, NULL, 3000, &r);
	t = now_ms() - r.t_start;
	ASSERT_EQ(r.status, 200, "load");
	ASSERT_GE(t, 200, "the load takes its time");
	http("http://127.0.0.1:18177/v1/models", NULL, NULL, NULL, 3000, &r);
	ASSERT_TRUE(r.body && strstr(r.body, "{\"id\":\"sql\",\"object\":\"model\",\"created\":0,"
					     "\"owned_by\":\"aibl-simnode\",\"root\":\"/adapters/"
					     "sql\",\"parent\":\"m1\""),
		    "listed with its parent");
	ASSERT_TRUE(report_has(18178, "sql", true), "the agent reports it resident");
	http("http://127.0.0.1:18177/v1/completions", req, NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 200, "served");
	ASSERT_TRUE(r.body && strstr(r.body, "\"model\":\"sql\""), "answered as the adapter");
	http("http://127.0.0.1:18177/v1/unload_lora_adapter", "{\"lora_name\":\"sql\"}", NULL, NULL,
	     3000, &r);
	ASSERT_EQ(r.status, 200, "unload");
	ASSERT_TRUE(report_has(18178, "sql", false), "gone from the report");
	http("http://127.0.0.1:18177/v1/completions", req, NULL, NULL, 3000, &r);
	ASSERT_EQ(r.status, 404, "unloaded: 404");
	http("http://127.0.0.1:18177/v1/unload_lora_adapter", "{\"lora_name\":\"sql\"}", NULL, NULL,
	     3000, &r);
	ASSERT_EQ(r.status, 404, "unload again: vLLM's 404");
out:
	free(r.body);
	if (agent > 0)
		stop(agent);
	ASSERT_EQ(stop(sim), 0, "simnode exit");
}

/* whether file holds needle, looked for every 20 ms for up to ms */
static bool file_says(const char *path, const char *needle, int ms)
{
	for (int t = 0; t <= ms; t += 20) {
		char buf[8192];
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = '\0';
		if (strstr(buf, needle))
			return true;
		sleep_ms(20);
	}
	return false;
}

/*
 * A notify that fails says why: a controller not listening (connection
 * refused, not "no answer") and one that refuses the ask (its HTTP status).
 * m2 loaded on the node changes what it holds; the agent watches every
 * 20 ms and tells both --notify URLs: 18182 has no listener, the simnode
 * itself answers the POST with 404.
 */
static void notify_error_named(void)
{
	char errfile[] = "/tmp/aibl-test-notify-XXXXXX";
	const char *argv[] = {bin_agent,
			      "--listen",
			      "127.0.0.1:18181",
			      "--name",
			      "node-a",
			      "--model-server",
			      "http://127.0.0.1:18180",
			      "--no-nvml",
			      "--watch-interval-ms",
			      "20",
			      "--notify",
			      "http://127.0.0.1:18182",
			      "--notify",
			      "http://127.0.0.1:18180",
			      NULL};
	pid_t sim = start_sim(18180, "--resident", "m1", NULL), agent = -1;
	struct agent_report rep;
	struct resp r = {};
	int fd = mkstemp(errfile);

	if (sim < 0 || !ASSERT_TRUE(fd >= 0, "log file"))
		goto out;
	close(fd);
	agent = spawn_err(argv, NULL, errfile);
	if (!ASSERT_TRUE(agent > 0 && wait_ok("http://127.0.0.1:18181/healthz"), "agent up") ||
	    !ASSERT_TRUE(wait_server_up(18181, &rep), "agent scraped the node"))
		goto out;
	agent_report__free(&rep);
	http("http://127.0.0.1:18180/v1/load_lora_adapter", "{\"lora_name\":\"m2\"}", NULL, NULL,
	     5000, &r);
	ASSERT_EQ(r.status, 200, "m2 loaded");
	ASSERT_TRUE(file_says(errfile,
			      "notify http://127.0.0.1:18182/v1/nodes/node-a/poll: "
			      "Couldn't connect to server",
			      3000),
		    "no controller: curl's reason");
	ASSERT_TRUE(file_says(errfile,
			      "notify http://127.0.0.1:18180/v1/nodes/node-a/poll: HTTP 404", 3000),
		    "the ask refused: its status");
out:
	free(r.body);
	if (agent > 0)
		stop(agent);
	if (sim > 0)
		stop(sim);
	unlink(errfile);
}

/* the engine's own word (aibl-simnode GET /v1/models): 1 model resident,
 * 0 not, -1 no answer */
static int sim_resident(int port, const char *model)
{
	char url[96], id[64];
	struct resp r = {};
	const char *p, *end;
	int ret = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/models", port);
	snprintf(id, sizeof(id), "\"id\":\"%s\"", model);
	if (!http(url, NULL, NULL, NULL, 2000, &r) && r.status == 200 && r.body) {
		p = strstr(r.body, id);
		end = p ? strchr(p, '}') : NULL;
		ret = 0;
		if (p && end) {
			const char *t = strstr(p, "\"resident\":true");

			ret = t && t < end;
		}
	}
	free(r.body);
	return ret;
}

/* GET the agent's /v1/load into r: it says what (a JSON fragment) */
static bool load_says(int port, const char *what, struct resp *r)
{
	char url[96];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/load", port);
	return !http(url, NULL, NULL, NULL, 2000, r) && r->status == 200 && r->body &&
	       strstr(r->body, what);
}

/* the same, polled every 10 ms for up to ms: the engine's lists change
 * before its answer reaches the agent, which then ends the operation */
static bool load_comes_to(int port, const char *what, int ms, struct resp *r)
{
	for (int waited = 0;; waited += 10) {
		if (load_says(port, what, r))
			return true;
		if (waited >= ms)
			return false;
		sleep_ms(10);
	}
}

/*
 * A simnode holding m1 and m2 on sim_port and an agent on agent_port that
 * drains for drain_ms (each scrape 100 ms, each watch 20 ms), both up and
 * scraped; the agent's pid, or -1 (*sim stopped then). With key (a key
 * file, NULL none) the agent takes only signed polls: the caller waits for
 * its first scrape with its own.
 */
static pid_t start_unload_pair(int agent_port, int sim_port, const char *drain_ms, const char *key,
			       pid_t *sim)
{
	const char *const extra[] = {"--watch-interval-ms", "20", "--drain-ms", drain_ms,
				     key ? "--key" : NULL,  key,  NULL};
	struct agent_report rep;
	pid_t agent;

	agent_report__init(&rep);
	*sim = start_sim(sim_port, "--resident", "m1,m2", NULL);
	if (*sim < 0)
		return -1;
	agent = start_agent_on(agent_port, sim_port, "node-a", extra);
	/* a key makes every report request a signed one */
	if (agent < 0 ||
	    !ASSERT_TRUE(key || wait_server_up(agent_port, &rep), "agent scraped the node")) {
		if (agent > 0)
			stop(agent);
		stop(*sim);
		*sim = -1;
		return -1;
	}
	agent_report__free(&rep);
	return agent;
}

/* when the engine on port no longer has model (ms), polled every 5 ms up
 * to tries times; 0 it still has it */
static double engine_drops(int port, const char *model, int tries)
{
	for (int i = 0; i < tries; i++) {
		if (sim_resident(port, model) == 0)
			return now_ms();
		sleep_ms(5);
	}
	return 0;
}

/*
 * POST /v1/unload drains before it unloads: the reports say at once that
 * m1 is not resident, while the engine keeps it until the balancer that
 * polls (this test) has fetched such a report and --drain-ms (300) more
 * have passed; then the agent asks the engine (vLLM's unload call), and
 * GET /v1/load tells how it went. What it refuses, it refuses without
 * touching the engine.
 */
static void unload_drains(void)
{
	const char *unload = "http://127.0.0.1:18193/v1/unload";
	pid_t sim, agent = start_unload_pair(18193, 18192, "300", NULL, &sim);
	const struct ar_model *m1, *m2;
	struct agent_report rep;
	struct resp r = {};
	double t1, t2;

	if (agent < 0)
		return;

	/* refused or nothing to do: the engine is not asked */
	http(unload, "{\"model\":\"m3\"}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 200, "m3 not resident: nothing to unload");
	ASSERT_TRUE(r.body && strstr(r.body, "\"resident\":false"), "and says so");
	http(unload, "{\"name\":\"m1\"}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 400, "no \"model\": 400");
	http(unload, NULL, NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 405, "GET /v1/unload: 405");
	ASSERT_TRUE(load_says(18193, "{}", &r), "nothing started");
	ASSERT_EQ(sim_resident(18192, "m1"), 1, "m1 still on the engine");
	/* an agent without --decap has no node program to count */
	http("http://127.0.0.1:18193/v1/decap", NULL, NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 404, "GET /v1/decap without --decap: 404");

	/* the balancer (this test) polls, then the unload is asked */
	if (!ASSERT_TRUE(get_report(18193, &rep), "a poll before the ask"))
		goto out;
	agent_report__free(&rep);
	http(unload, "{\"model\":\"m1\"}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 202, "unload asked: 202");
	http(unload, "{\"model\":\"m1\"}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 202, "asked again: under way, 202");
	http("http://127.0.0.1:18193/v1/load", "{\"model\":\"m3\"}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 409, "a load meanwhile: 409");
	sleep_ms(600);
	ASSERT_EQ(sim_resident(18192, "m1"), 1,
		  "the engine keeps m1 while a balancer polling has not seen it gone");
	ASSERT_TRUE(load_says(18193, "\"busy\":true,\"hidden\":true", &r), "draining");

	t1 = now_ms();
	if (!ASSERT_TRUE(get_report(18193, &rep), "the poll after the ask"))
		goto out;
	m1 = find_model(&rep, "m1");
	m2 = find_model(&rep, "m2");
	ASSERT_TRUE(m1 && !m1->resident, "the report: m1 not resident");
	ASSERT_TRUE(m2 && m2->resident, "m2 resident as before");
	agent_report__free(&rep);
	t2 = engine_drops(18192, "m1", 300);
	if (!ASSERT_TRUE(t2 > 0, "m1 unloaded on the engine"))
		goto out;
	ASSERT_GE(t2 - t1, 300, "no sooner than --drain-ms after the poll");
	ASSERT_TRUE(load_comes_to(18193, "\"busy\":false", 2000, &r), "done");
	ASSERT_TRUE(r.body && strstr(r.body, "\"status\":200") && strstr(r.body, "\"error\":\"\""),
		    "the engine's 200, no error");
	ASSERT_TRUE(report_has(18193, "m2", true), "m2 still resident");

	/* asked to load again, it is resident again */
	http("http://127.0.0.1:18193/v1/load", "{\"model\":\"m1\"}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 202, "load m1 again: 202");
	ASSERT_TRUE(report_has(18193, "m1", true), "m1 resident again");
out:
	free(r.body);
	if (agent > 0)
		stop(agent);
	if (sim > 0)
		stop(sim);
}

/*
 * An agent without a key whose balancer is named (--controller 127.0.0.2):
 * only its polls count for an unload's drain. Seventeen other addresses
 * that fetch reports (anyone may), faster than it, pushed it out of the
 * agent's 16 pollers, and the unload waited for them, not for it.
 */
static void unload_controller_polls(void)
{
	const char *const extra[] = {
	    "--controller", "127.0.0.2", "--watch-interval-ms", "20", "--drain-ms", "300", NULL};
	char src[32];
	pid_t sim = start_sim(18210, "--resident", "m1,m2", NULL), agent = -1;
	struct agent_report rep;
	struct resp r = {};
	double t1, t2;

	agent_report__init(&rep);
	if (sim < 0)
		return;
	agent = start_agent_on(18211, 18210, "node-a", extra);
	if (agent < 0 || !ASSERT_TRUE(wait_server_up(18211, &rep), "agent scraped the node"))
		goto out;
	agent_report__free(&rep);
	/* the balancer polls, then seventeen others */
	http_src = "127.0.0.2";
	ASSERT_TRUE(get_report(18211, &rep), "the balancer's poll");
	agent_report__free(&rep);
	for (int i = 3; i < 20; i++) {
		snprintf(src, sizeof(src), "127.0.0.%d", i);
		http_src = src;
		ASSERT_TRUE(get_report(18211, &rep), "another's poll");
		agent_report__free(&rep);
	}
	http_src = NULL;
	http("http://127.0.0.1:18211/v1/unload", "{\"model\":\"m1\"}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 202, "unload asked: 202");
	/* the others poll again; the balancer does not */
	for (int round = 0; round < 3; round++) {
		for (int i = 3; i < 20; i++) {
			snprintf(src, sizeof(src), "127.0.0.%d", i);
			http_src = src;
			get_report(18211, &rep);
			agent_report__free(&rep);
		}
		sleep_ms(200);
	}
	http_src = NULL;
	ASSERT_EQ(sim_resident(18210, "m1"), 1,
		  "the engine keeps m1 while the balancer has not seen it gone");
	t1 = now_ms();
	http_src = "127.0.0.2";
	ASSERT_TRUE(get_report(18211, &rep), "the balancer's poll after the ask");
	http_src = NULL;
	agent_report__free(&rep);
	t2 = engine_drops(18210, "m1", 300);
	if (ASSERT_TRUE(t2 > 0, "then m1 unloaded on the engine"))
		ASSERT_GE(t2 - t1, 300, "no sooner than --drain-ms after its poll");
out:
	http_src = NULL;
	free(r.body);
	agent_report__free(&rep);
	if (agent > 0)
		stop(agent);
	stop(sim);
}

/* a balancer's poll (GET /v1/report) stating header h; the report is not read */
static void poll_stating(int port, const char *h)
{
	struct agent_report rep;

	get_report_h(port, h, &rep);
	agent_report__free(&rep);
}

/*
 * A balancer that counts its connections (AR_OPEN_HEADER on its polls, as
 * aibld sends it) holds the unload until it says none of the model's is
 * open, or the unload's drain_timeout_ms passes: the report flags the
 * model unloading, the engine keeps it while the balancer says 2 are
 * open, and unloads it no sooner than --drain-ms (200) after it says 0.
 * A count for another model, or one made before the report that flagged
 * it, does not end the wait; a value that does not parse, or a poll
 * without one from the same address, states nothing.
 */
static void unload_waits_connections(void)
{
	const char *unload = "http://127.0.0.1:18195/v1/unload";
	const char *none = AR_OPEN_HEADER ": 0";
	pid_t sim, agent = start_unload_pair(18195, 18194, "200", NULL, &sim);
	const struct ar_model *m;
	struct agent_report rep;
	struct resp r = {};
	double t1, t2;

	if (agent < 0)
		return;

	/* a counting balancer (this test) polls, then m1's unload is asked */
	if (!ASSERT_TRUE(get_report_h(18195, none, &rep), "a poll before the ask"))
		goto out;
	agent_report__free(&rep);
	http(unload, "{\"model\":\"m1\",\"drain_timeout_ms\":\"5\"}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 400, "drain_timeout_ms not an integer: 400");
	http(unload, "{\"model\":\"m1\",\"drain_timeout_ms\":3600001}", NULL, NULL, 2000, &r);
	ASSERT_EQ(r.status, 400, "drain_timeout_ms over an hour: 400");
	http("http://127.0.0.1:18195/v1/load", "{\"model\":\"m3\",\"drain_timeout_ms\":5}", NULL,
	     NULL, 2000, &r);
	ASSERT_EQ(r.status, 400, "drain_timeout_ms on a load: 400");
	ASSERT_TRUE(load_says(18195, "{}", &r), "nothing started");
	http(unload, "{\"model\":\"m1\"}", NULL, NULL, 2000, &r);
	if (!ASSERT_EQ(r.status, 202, "unload m1 asked: 202"))
		goto out;
	/* a count made before it saw m1 unloading does not end the wait */
	if (!ASSERT_TRUE(get_report_h(18195, AR_OPEN_HEADER ": 0 m1", &rep), "the poll after"))
		goto out;
	m = find_model(&rep, "m1");
	ASSERT_TRUE(m && !m->resident && m->unloading, "the report: m1 unloading");
	agent_report__free(&rep);
	/* the balancer's next poll: 2 open; another model's 0 is no answer */
	poll_stating(18195, AR_OPEN_HEADER ": 2 m1");
	sleep_ms(400);
	ASSERT_EQ(sim_resident(18194, "m1"), 1, "the engine keeps m1 while 2 are open");
	ASSERT_TRUE(load_says(18195, "\"draining\":true", &r), "still draining");
	ASSERT_TRUE(r.body && strstr(r.body, "\"open_flows\":2"), "2 open, as said");
	poll_stating(18195, AR_OPEN_HEADER ": 0 m2");
	sleep_ms(300);
	ASSERT_EQ(sim_resident(18194, "m1"), 1, "another model's count ends nothing");
	/* another client on the balancer's address, stating garbage or
	 * nothing, still gets its report and ends nothing */
	http("http://127.0.0.1:18195/v1/report", NULL, AR_OPEN_HEADER ": lots", NULL, 2000, &r);
	ASSERT_EQ(r.status, 200, "a garbage count still gets its report");
	poll_stating(18195, NULL);
	sleep_ms(300);
	ASSERT_EQ(sim_resident(18194, "m1"), 1, "the engine still keeps m1");
	t1 = now_ms();
	poll_stating(18195, AR_OPEN_HEADER ": 0 m1");
	t2 = engine_drops(18194, "m1", 300);
	if (!ASSERT_TRUE(t2 > 0, "m1 unloaded once none is open"))
		goto out;
	ASSERT_GE(t2 - t1, 200, "no sooner than --drain-ms after");
	ASSERT_TRUE(load_comes_to(18195, "\"busy\":false", 2000, &r), "done");
	ASSERT_TRUE(r.body && strstr(r.body, "\"open_flows\":0") &&
			strstr(r.body, "\"open_timed_out\":false") &&
			strstr(r.body, "\"status\":200"),
		    "none open, no timeout, the engine's 200");

	/* the unload's own bound: m2 goes with 3 still open after 400 ms */
	http(unload, "{\"model\":\"m2\",\"drain_timeout_ms\":400}", NULL, NULL, 2000, &r);
	if (!ASSERT_EQ(r.status, 202, "unload m2 asked: 202"))
		goto out;
	t1 = now_ms();
	poll_stating(18195, none);
	poll_stating(18195, AR_OPEN_HEADER ": 3 m2");
	t2 = engine_drops(18194, "m2", 400);
	if (!ASSERT_TRUE(t2 > 0, "m2 unloaded at its drain timeout"))
		goto out;
	ASSERT_GE(t2 - t1, 600, "after its 400 ms and --drain-ms");
	ASSERT_TRUE(load_says(18195, "\"open_timed_out\":true", &r), "timed out");
	ASSERT_TRUE(r.body && strstr(r.body, "\"open_flows\":3"), "with 3 open");
out:
	free(r.body);
	if (agent > 0)
		stop(agent);
	if (sim > 0)
		stop(sim);
}

/*
 * A model loaded again on the engine directly right after the agent's
 * unload, before the agent has seen it gone (its watch off, a scrape a
 * second): vLLM lists an adapter only while it holds it, so the first list
 * read after the unload's answer that has it again ends the hide, rather
 * than the 10 s bound for engines whose lists lag their unload.
 */
static void unload_reloaded_on_engine(void)
{
	const char *const extra[] = {
	    "--watch-interval-ms", "0", "--scrape-interval-ms", "1000", "--drain-ms", "0", NULL};
	pid_t sim = start_sim(18198, "--resident", "m1,m2", NULL), agent = -1;
	struct agent_report rep;
	struct resp r = {};
	bool back = false;
	double t0;

	agent_report__init(&rep);
	if (sim < 0)
		return;
	agent = start_agent_on(18199, 18198, "node-a", extra);
	if (agent < 0 || !ASSERT_TRUE(wait_server_up(18199, &rep), "agent scraped the node"))
		goto out;
	agent_report__free(&rep);
	http("http://127.0.0.1:18199/v1/unload", "{\"model\":\"m1\"}", NULL, NULL, 2000, &r);
	/* this test polled before: its poll since lets the drain go on */
	if (!ASSERT_EQ(r.status, 202, "unload m1 asked: 202") ||
	    !ASSERT_TRUE(get_report(18199, &rep), "a poll after the ask"))
		goto out;
	agent_report__free(&rep);
	if (!ASSERT_TRUE(engine_drops(18198, "m1", 400) > 0, "m1 unloaded on the engine"))
		goto out;
	http("http://127.0.0.1:18198/v1/load_lora_adapter", "{\"lora_name\":\"m1\"}", NULL, NULL,
	     2000, &r);
	if (!ASSERT_EQ(r.status, 200, "m1 loaded again on the engine at once"))
		goto out;
	/* the agent's next scrape, a second at most, lists it */
	t0 = now_ms();
	while (!back && now_ms() - t0 < 3000) {
		const struct ar_model *m;

		sleep_ms(50);
		if (!get_report(18199, &rep))
			continue;
		m = find_model(&rep, "m1");
		back = m && m->resident;
		agent_report__free(&rep);
	}
	ASSERT_TRUE(back, "m1 resident in the report within 3 s, not 10");
	ASSERT_TRUE(load_says(18199, "\"hidden\":false", &r), "the hide ended");
out:
	agent_report__free(&rep);
	free(r.body);
	if (agent > 0)
		stop(agent);
	stop(sim);
}

/* how poll_signed() signs the count it states */
enum count_sig {
	COUNT_SIGNED,	   /* as aibld does: for this poll's nonce */
	COUNT_UNSIGNED,	   /* no AIBL_OPEN_SIG_HEADER */
	COUNT_OTHER_NONCE, /* for another poll's nonce */
	COUNT_OTHER_VALUE, /* for another count */
	COUNT_OTHER_KEY,   /* with another key */
};

/*
 * A balancer's poll of the agent on port with a key: the report request
 * signed with key for a fresh nonce, stating count (NULL none), signed as
 * how says. The report, parsed, in rep when not NULL. The HTTP status.
 */
static long poll_signed(int port, const struct aibl_key *key, const char *count, enum count_sig how,
			struct agent_report *rep)
{
	char url[96], nonce[40], other[40], sig[AIBL_AUTH_HDR_MAX], what[128], err[256];
	char h_req[AIBL_AUTH_HDR_MAX + 32], h_count[96], h_sig[AIBL_AUTH_HDR_MAX + 32];
	const char *hdrs[4] = {h_req, NULL, NULL, NULL};
	struct aibl_key k = *key;
	struct resp r = {};
	long status;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/report", port);
	aibl_auth__nonce(nonce, sizeof(nonce));
	aibl_auth__nonce(other, sizeof(other));
	aibl_auth__sign_req(key, time(NULL), nonce, AIBL_AUTH_REQ_REPORT, sig, sizeof(sig));
	snprintf(h_req, sizeof(h_req), "%s: %s", AIBL_AUTH_HEADER, sig);
	if (count) {
		snprintf(h_count, sizeof(h_count), "%s: %s", AR_OPEN_HEADER, count);
		hdrs[1] = h_count;
	}
	if (count && how != COUNT_UNSIGNED) {
		if (how == COUNT_OTHER_KEY)
			k.key[0] ^= 1;
		snprintf(what, sizeof(what), "%s%s", AIBL_AUTH_REQ_OPEN,
			 how == COUNT_OTHER_VALUE ? "9 m1" : count);
		aibl_auth__sign_req(&k, time(NULL), how == COUNT_OTHER_NONCE ? other : nonce, what,
				    sig, sizeof(sig));
		snprintf(h_sig, sizeof(h_sig), "%s: %s", AIBL_OPEN_SIG_HEADER, sig);
		hdrs[2] = h_sig;
	}
	http_hdrs(url, NULL, hdrs, 3000, &r);
	status = r.status;
	if (rep && (status != 200 || agent_report__parse(r.body, r.len, rep, err, sizeof(err))))
		status = -1;
	free(r.body);
	return status;
}

/*
 * With a key, the agent takes a balancer's count of open connections only
 * signed for the poll it comes on (AIBL_OPEN_SIG_HEADER): one unsigned, or
 * signed for another poll, another count or with another key, states
 * nothing, and the report is still served, so that nobody between a
 * balancer and the agent can end the wait for its connections (or stretch
 * it). The unload is asked signed, as aibld's API forwards it.
 */
static void unload_signed_counts(void)
{
	char kpath[] = "/tmp/aibl-ag-key-XXXXXX", msg[256], sig[AIBL_AUTH_HDR_MAX], nonce[40];
	char h_sig[AIBL_AUTH_HDR_MAX + 32];
	const char *unload = "http://127.0.0.1:18197/v1/unload";
	static const enum count_sig bad[] = {COUNT_UNSIGNED, COUNT_OTHER_NONCE, COUNT_OTHER_VALUE,
					     COUNT_OTHER_KEY};
	struct aibl_key key = {};
	pid_t sim = -1, agent = -1;
	const struct ar_model *m = NULL;
	struct agent_report rep;
	struct resp r = {};
	double t1, t2;

	agent_report__init(&rep);
	if (!ASSERT_TRUE(write_key(kpath, "0123456789abcdef-node-key\n"), "key file"))
		return;
	if (!ASSERT_OK(aibl_key__load(kpath, &key, msg, sizeof(msg)), msg))
		goto out;
	agent = start_unload_pair(18197, 18196, "200", kpath, &sim);
	if (agent < 0)
		goto out;
	/* a counting balancer's signed polls, until the agent has scraped m1 */
	for (int i = 0; i < 100 && !(m && m->resident); i++) {
		agent_report__free(&rep);
		if (poll_signed(18197, &key, "0", COUNT_SIGNED, &rep) != 200)
			sleep_ms(20);
		m = find_model(&rep, "m1");
	}
	if (!ASSERT_TRUE(m && m->resident, "signed polls: m1 resident"))
		goto out;
	/* a drain bound the signature does not cover: set on the path, as
	 * 0 it would unload with the connections open */
	aibl_auth__nonce(nonce, sizeof(nonce));
	aibl_auth__sign_req(&key, time(NULL), nonce, AIBL_AUTH_REQ_UNLOAD "m1", sig, sizeof(sig));
	snprintf(h_sig, sizeof(h_sig), "%s: %s", AIBL_AUTH_HEADER, sig);
	http(unload, "{\"model\":\"m1\",\"drain_timeout_ms\":0}", h_sig, NULL, 2000, &r);
	ASSERT_EQ(r.status, 401, "a drain bound not signed: refused");
	aibl_auth__nonce(nonce, sizeof(nonce));
	aibl_auth__sign_req(&key, time(NULL), nonce, AIBL_AUTH_REQ_UNLOAD "m1 drain_timeout_ms=0",
			    sig, sizeof(sig));
	snprintf(h_sig, sizeof(h_sig), "%s: %s", AIBL_AUTH_HEADER, sig);
	http(unload, "{\"model\":\"m1\",\"drain_timeout_ms\":5}", h_sig, NULL, 2000, &r);
	ASSERT_EQ(r.status, 401, "signed for another bound: refused");
	aibl_auth__nonce(nonce, sizeof(nonce));
	aibl_auth__sign_req(&key, time(NULL), nonce, AIBL_AUTH_REQ_UNLOAD "m1", sig, sizeof(sig));
	snprintf(h_sig, sizeof(h_sig), "%s: %s", AIBL_AUTH_HEADER, sig);
	http(unload, "{\"model\":\"m1\"}", h_sig, NULL, 2000, &r);
	if (!ASSERT_EQ(r.status, 202, "signed unload of m1 asked: 202"))
		goto out;
	/* the poll that sees m1 unloading, then the count of 2 after it */
	agent_report__free(&rep);
	ASSERT_EQ(poll_signed(18197, &key, "0", COUNT_SIGNED, &rep), 200, "the poll after");
	m = find_model(&rep, "m1");
	ASSERT_TRUE(m && m->unloading, "the report: m1 unloading");
	ASSERT_EQ(poll_signed(18197, &key, "2 m1", COUNT_SIGNED, NULL), 200, "2 open, signed");
	ASSERT_TRUE(load_comes_to(18197, "\"open_flows\":2", 2000, &r), "taken: 2 open");
	/* none of these ends the wait, and each poll still gets its report */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_EQ(poll_signed(18197, &key, "0 m1", bad[i], NULL), 200, "report served");
	sleep_ms(400);
	ASSERT_EQ(sim_resident(18196, "m1"), 1, "a count not signed for its poll ends nothing");
	ASSERT_TRUE(load_says(18197, "\"open_flows\":2", &r), "still 2 open");
	t1 = now_ms();
	ASSERT_EQ(poll_signed(18197, &key, "0 m1", COUNT_SIGNED, NULL), 200, "0 open, signed");
	t2 = engine_drops(18196, "m1", 300);
	if (ASSERT_TRUE(t2 > 0, "m1 unloaded once a signed count says none is open"))
		ASSERT_GE(t2 - t1, 200, "no sooner than --drain-ms after");
out:
	agent_report__free(&rep);
	free(r.body);
	if (agent > 0)
		stop(agent);
	if (sim > 0)
		stop(sim);
	unlink(kpath);
}

static void simnode_determinism(void)
{
	pid_t a = start_sim(18170, "--seed", "42", NULL),
	      b = start_sim(18171, "--seed", "42", NULL);
	pid_t c = start_sim(18172, "--seed", "43", NULL);
	const char *body = "{\"model\":\"m1\",\"prompt\":\"tell me\",\"max_tokens\":12}";
	struct resp ra = {}, rb = {}, rc = {};

	if (a < 0 || b < 0 || c < 0)
		goto out;
	http("http://127.0.0.1:18170/v1/completions", body, NULL, NULL, 5000, &ra);
	http("http://127.0.0.1:18171/v1/completions", body, NULL, NULL, 5000, &rb);
	http("http://127.0.0.1:18172/v1/completions", body, NULL, NULL, 5000, &rc);
	if (ASSERT_TRUE(ra.body && rb.body && rc.body, "answers")) {
		ASSERT_STREQ(ra.body, rb.body, "same seed, same answer");
		ASSERT_TRUE(strcmp(ra.body, rc.body) != 0, "another seed, another answer");
	}
out:
	free(ra.body);
	free(rb.body);
	free(rc.body);
	stop(a);
	stop(b);
	stop(c);
}

static const struct test_case cases[] = {
    {"report_basic", report_basic},
    {"cpu_node", cpu_node},
    {"speed_probe", speed_probe},
    {"speed_probe_restart", speed_probe_restart},
    {"restart_hints_own_server", restart_hints_own_server},
    {"stated_slots", stated_slots},
    {"load_figures", load_figures},
    {"unload_drains", unload_drains},
    {"unload_controller_polls", unload_controller_polls},
    {"unload_waits_connections", unload_waits_connections},
    {"unload_signed_counts", unload_signed_counts},
    {"unload_reloaded_on_engine", unload_reloaded_on_engine},
    {"signed_reports", signed_reports},
    {"unsigned_hints_local_only", unsigned_hints_local_only},
    {"slow_server", slow_server},
    {"simnode_prefix_ttft", simnode_prefix_ttft},
    {"simnode_cold_start", simnode_cold_start},
    {"simnode_determinism", simnode_determinism},
    {"simnode_model_api", simnode_model_api},
    {"simnode_lora", simnode_lora},
    {"notify_error_named", notify_error_named},
    {"exit_nvml_hung", exit_nvml_hung},
};

int main(int argc, char **argv)
{
	const char *b = getenv("AIBL_BUILD");

	snprintf(bin_sim, sizeof(bin_sim), "%s/aibl-simnode", b ? b : "build");
	snprintf(bin_agent, sizeof(bin_agent), "%s/aibl-agent", b ? b : "build");
	snprintf(fake_nvml, sizeof(fake_nvml), "%s/tests/libfake_nvml.so", b ? b : "build");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	signal(SIGPIPE, SIG_IGN);
	return test__main(argc, argv, "node", cases, sizeof(cases) / sizeof(cases[0]));
}
