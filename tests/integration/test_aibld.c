// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibld as a process against the real data plane: XDP attached (generic)
 * to a veth whose peer lives in a private netns, maps pinned under a
 * private bpffs dir, nodes polled over real HTTP -- two real aibl-agent +
 * aibl-simnode pairs with a shared key, one agent-less node behind a TCP
 * listener, and four misbehaving agents served here with libmicrohttpd
 * (garbage, silent, a report for another node, an unsigned report). The
 * garbage, foreign and unsigned agents' nodes have a live backend (the TCP
 * listener): they become unhealthy; the silent one's has none: down.
 *
 * Ports 19000-19999; names ct*; everything removed on exit.
 */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include "test.h"
#include "aibl.h"
#include "auth.h"
#include "report.h"

#define API   "http://127.0.0.1:19070"
#define KEY   "ct-integration-shared-key-0123456789"
#define TOKEN "ct-api-token-abcdefghijklmnop"

static char bin_aibld[512], bin_agent[512], bin_sim[512], bin_loadgen[512];
static char dir[128], cfgpath[128], keypath[128], tokpath[128], logpath[128];
static char nodekey[2][128]; /* n1's and n2's keys, derived from KEY */
static char ifa[IF_NAMESIZE], ifb[IF_NAMESIZE], netns[32];
/* sims[i]: node i's engine of m1; sims[2 + i]: its engine of m2 */
static pid_t aibld_pid = -1, sims[4] = {-1, -1, -1, -1}, agents[2] = {-1, -1};
static struct MHD_Daemon *bad[4];
static int tcp_listener = -1;
static pthread_t tcp_thread;
static bool tcp_thread_on;

/* The health port accepts and closes: connections left in the accept
 * queue would fill its backlog after a few seconds of checks, and the
 * checks would then time out. */
static void *tcp_accept_loop(void *arg)
{
	for (;;) {
		int c = accept(tcp_listener, NULL, NULL);

		if (c >= 0)
			close(c);
		else if (errno != EINTR && errno != ECONNABORTED)
			return NULL; /* shut down */
	}
}

static bool ready;

/* ---- processes ---- */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static pid_t spawn(const char *const argv[], const char *out)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static int stop_pid(pid_t *pid, int sig)
{
	int status = -1;

	if (*pid <= 0)
		return -1;
	kill(*pid, sig);
	for (int i = 0; i < 100; i++) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = -1;
			return status;
		}
		usleep(50000);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = -1;
	return -1;
}

static bool alive(pid_t pid)
{
	return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* ---- HTTP ---- */

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *d, size_t s, size_t n, void *ud)
{
	struct buf *b = ud;
	char *np = realloc(b->p, b->n + s * n + 1);

	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, d, s * n);
	b->n += s * n;
	b->p[b->n] = 0;
	return s * n;
}

/* status code of METHOD url with one more header line (NULL: none) and,
 * for POST, body; the answer in *out (caller frees; NULL: dropped) */
static long http_req(const char *method, const char *url, const char *hdr, const char *body,
		     char **out)
{
	struct curl_slist *h = NULL;
	struct buf b = {};
	long code = -1;
	CURL *c = curl_easy_init();

	if (!c)
		return -1;
	if (hdr) {
		h = curl_slist_append(h, hdr);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	if (out)
		*out = b.p;
	else
		free(b.p);
	return code;
}

/* status code, body in *out (caller frees); auth: the API's bearer token */
static long http(const char *method, const char *url, const char *auth, char **out)
{
	char hdr[128];

	if (auth)
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", auth);
	return http_req(method, url, auth ? hdr : NULL, NULL, out);
}

static json_t *status(void)
{
	char *body = NULL;
	json_t *j = NULL;

	if (http("GET", API "/v1/status", NULL, &body) == 200)
		j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

/* state of node name in /v1/status, "" when unknown */
static const char *node_state(json_t *st, const char *name)
{
	size_t i;
	json_t *n;

	json_array_foreach(
	    json_object_get(st, "nodes"), i,
	    n) if (!strcmp(json_string_value(json_object_get(n, "name")),
			   name)) return json_string_value(json_object_get(n, "state"));
	return "";
}

/* a number of node name in /v1/status, -2 when absent */
static double node_num(json_t *st, const char *name, const char *key)
{
	size_t i;
	json_t *n;

	json_array_foreach(json_object_get(st, "nodes"), i, n)
	{
		json_t *v = json_object_get(n, key);

		if (!strcmp(json_string_value(json_object_get(n, "name")), name))
			return json_is_number(v) ? json_number_value(v) : -2;
	}
	return -2;
}

/* wait until node has state (bounded) */
static bool wait_state(const char *name, const char *state, int ms)
{
	double end = now_ms() + ms;

	while (now_ms() < end) {
		json_t *st = status();
		bool ok = st && !strcmp(node_state(st, name), state);

		json_decref(st);
		if (ok)
			return true;
		usleep(100000);
	}
	return false;
}

/* whether a status node's resident models include model */
static bool has_model(json_t *n, const char *model)
{
	json_t *m;
	size_t i;

	json_array_foreach(json_object_get(n, "models"), i, m)
	{
		if (json_is_string(m) && !strcmp(json_string_value(m), model))
			return true;
	}
	return false;
}

/* wait until aibld has a good report from node name (bounded): "up" alone
 * is also the optimistic state before the first poll. Both its engines
 * scraped (m1 and m2 resident): a report from an agent that has reached one
 * engine so far leaves the other's model out of its services' tables */
static bool wait_report(const char *name, int ms)
{
	double end = now_ms() + ms;

	while (now_ms() < end) {
		json_t *st = status(), *n;
		bool ok = false;
		size_t i;

		json_array_foreach(
		    json_object_get(st, "nodes"), i,
		    n) if (!strcmp(json_string_value(json_object_get(n, "name")), name)) ok =
		    json_integer_value(json_object_get(n, "last_report_age_ms")) >= 0 &&
		    json_is_integer(json_object_get(n, "last_report_age_ms")) &&
		    has_model(n, "m1") && has_model(n, "m2");
		json_decref(st);
		if (ok)
			return true;
		usleep(100000);
	}
	return false;
}

/* ---- misbehaving agents ---- */

enum bad_mode { BAD_GARBAGE, BAD_SILENT, BAD_FOREIGN, BAD_UNSIGNED };
static const char *const bad_names[] = {"bad-garbage", "bad-silent", "bad-foreign", "bad-unsigned"};
static volatile int silent_stop;

static enum MHD_Result bad_handler(void *cls, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, const char *upload,
				   size_t *upload_size, void **con_cls)
{
	enum bad_mode mode = (enum bad_mode)(long)cls;
	const char *nonce = MHD_lookup_connection_value(c, MHD_HEADER_KIND, AIBL_NONCE_HEADER);
	struct MHD_Response *r;
	struct agent_report rep;
	char *body, sig[AIBL_AUTH_HDR_MAX];
	struct aibl_key master = {.len = strlen(KEY)}, k;
	enum MHD_Result ret;

	/* each bad agent holds its node's key: what fails is what it sends */
	memcpy(master.key, KEY, master.len);
	aibl_key__derive(&master, bad_names[mode], &k);
	if (mode == BAD_SILENT) {
		for (int i = 0; i < 20 && !silent_stop; i++)
			usleep(100000);
		return MHD_NO;
	}
	if (mode == BAD_GARBAGE) {
		body = strdup("{\"schema\": 1, \"node\": [this is not json");
	} else {
		agent_report__init(&rep);
		snprintf(rep.node, sizeof(rep.node), "%s",
			 mode == BAD_FOREIGN ? "somebody-else" : bad_names[mode]);
		rep.timestamp_ms = (uint64_t)time(NULL) * 1000;
		snprintf(rep.version, sizeof(rep.version), "test");
		body = agent_report__to_json(&rep);
	}
	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	/* garbage is signed: it must fail as garbage, not as unsigned */
	if (mode != BAD_UNSIGNED && !aibl_auth__sign(&k, time(NULL), nonce ? nonce : "", body,
						     strlen(body), sig, sizeof(sig)))
		MHD_add_response_header(r, AIBL_AUTH_HEADER, sig);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- maps ---- */

static int map_fd(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bpf_obj_get(path);
}

/* max_entries of a pinned map, 0 when it cannot be read */
static __u32 max_entries(const char *name)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd = map_fd(name);

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.max_entries = 0;
	close(fd);
	return info.max_entries;
}

/* backend id of a node from aibl_be_meta, -1 when absent */
static int be_id(const char *name)
{
	int fd = map_fd(AIBL_MAP_BE_META), id = -1;
	struct aibl_be_meta m;

	for (__u32 i = 0; fd >= 0 && i < AIBL_MAX_BACKENDS && id < 0; i++)
		if (!bpf_map_lookup_elem(fd, &i, &m) && m.valid && !strcmp(m.name, name))
			id = i;
	if (fd >= 0)
		close(fd);
	return id;
}

static int vip_lookup(const char *addr, __u16 port, struct aibl_vip *v)
{
	struct aibl_vip_key k = {.port = htons(port), .proto = IPPROTO_TCP, .family = AIBL_AF_INET};
	int fd = map_fd(AIBL_MAP_VIPS), err;

	inet_pton(AF_INET, addr, &k.addr.v4);
	err = bpf_map_lookup_elem(fd, &k, v) ? -errno : 0;
	close(fd);
	return err;
}

/* slots per backend id in the active half of the VIP's table */
static int ring_counts(const char *vip, __u16 port, int *counts, int n, __u32 *sum)
{
	int fd = map_fd(AIBL_MAP_RING);
	struct aibl_vip v;
	__u64 h = 1469598103934665603ULL;

	memset(counts, 0, n * sizeof(int));
	if (fd < 0 || vip_lookup(vip, port, &v)) {
		if (fd >= 0)
			close(fd);
		return -ENOENT;
	}
	for (__u32 s = 0; s < AIBL_RING_SIZE; s++) {
		__u32 k = AIBL_RING_INDEX(v.svc_id, v.ring_half, s), id;

		if (bpf_map_lookup_elem(fd, &k, &id))
			break;
		h = (h ^ id) * 1099511628211ULL;
		if ((int)id < n)
			counts[id]++;
	}
	close(fd);
	if (sum)
		*sum = (__u32)(h ^ (h >> 32));
	return 0;
}

static __u8 be_flags(int id)
{
	int fd = map_fd(AIBL_MAP_BACKENDS);
	struct aibl_backend be = {};
	__u32 k = id;

	bpf_map_lookup_elem(fd, &k, &be);
	close(fd);
	return be.flags;
}

/* the API answers before the loop has written the maps: wait for them */
static bool wait_flag(int id, __u8 flag, bool set)
{
	for (int i = 0; i < 30; i++) {
		if (!!(be_flags(id) & flag) == set)
			return true;
		usleep(100000);
	}
	return false;
}

/* the backend's flags are written before its slots, in the same
 * recompute: a slot count read just after a flag changed waits for them */
static double wait_ring_share(const char *vip, __u16 port, int id, double want)
{
	int counts[AIBL_MAX_BACKENDS];
	double share = 0;

	for (int i = 0; i < 30; i++) {
		ring_counts(vip, port, counts, AIBL_MAX_BACKENDS, NULL);
		share = (double)counts[id] / AIBL_RING_SIZE;
		if (fabs(share - want) <= 0.01)
			break;
		usleep(100000);
	}
	return share;
}

/* ---- the lab ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
	chmod(path, mode);
}

/* how n1 is checked: its agent, or (sighup) a TCP port */
static const char *n1_check = "agent: 'http://127.0.0.1:19111'";
static const char *web_nodes = "n1, n2";

static void write_config(unsigned int n1_weight, const char *extra)
{
	char text[4096];

	snprintf(
	    text, sizeof(text),
	    "interface: %s\n"
	    "xdp_mode: generic\n"
	    "bpffs: %s\n"
	    "poll_interval_ms: 200\n"
	    "poll_timeout_ms: 300\n"
	    "status_listen: 127.0.0.1:19070\n"
	    "agent_key_file: %s\n"
	    "api_token_file: %s\n"
	    "health: {fail_after: 2, rise_after: 2}\n"
	    "tables: {min_rewrite_interval_ms: 0}\n"
	    "maps: {conns: 65536, pins: 4096}\n"
	    "services:\n"
	    "  - {name: web, vip: 10.99.0.1, port: 19080, policy: wrr, nodes: [%s]}\n"
	    "  - {name: chat, vip: 10.99.0.2, port: 19081, policy: ai, model: m1,\n"
	    "     nodes: [n1, n2, tcp1]}\n"
	    "  - {name: misc, vip: 10.99.0.3, port: 19082, policy: hash,\n"
	    "     nodes: [bad-garbage, bad-silent, bad-foreign, bad-unsigned, tcp1]}\n"
	    "  - {name: code, vip: 10.99.0.4, port: 19083, policy: ai, model: m2,\n"
	    "     nodes: [n1, n2]}\n"
	    "nodes:\n"
	    "  - {name: n1, address: 10.98.0.2, %s, weight: %u}\n"
	    "  - {name: n2, address: 10.98.0.3, agent: 'http://127.0.0.1:19112', weight: 300}\n"
	    "  - {name: tcp1, address: 127.0.0.1, health_port: 19131, models: [m1]}\n"
	    "  - {name: bad-garbage, address: 127.0.0.1, health_port: 19131,\n"
	    "     agent: 'http://127.0.0.1:19121'}\n"
	    "  - {name: bad-silent, address: 10.98.0.5, agent: 'http://127.0.0.1:19122'}\n"
	    "  - {name: bad-foreign, address: 127.0.0.1, health_port: 19131,\n"
	    "     agent: 'http://127.0.0.1:19123'}\n"
	    "  - {name: bad-unsigned, address: 127.0.0.1, health_port: 19131,\n"
	    "     agent: 'http://127.0.0.1:19124'}\n"
	    "%s",
	    ifa, dir, keypath, tokpath, web_nodes, n1_check, n1_weight, extra ? extra : "");
	write_file(cfgpath, text, 0644);
}

/* node i: an agent that reads two engines, one for m1 and one for m2; n1's
 * agent states their slots (5 and 3), n2's does not */
static pid_t start_pair(int i)
{
	char sl[32], sl2[32], al[32], srv[48], srv2[48], name[8];
	const char *sargv[] = {bin_sim, "--listen",    sl,   "--models", "m1:100", "--resident",
			       "m1",	"--node-name", name, NULL};
	const char *sargv2[] = {bin_sim,      "--listen", sl2,		 "--models", "m2:100",
				"--resident", "m2",	  "--node-name", name,	     NULL};
	const char *aargv[] = {bin_agent,
			       "--listen",
			       al,
			       "--name",
			       name,
			       "--model-server",
			       srv,
			       "--model-server",
			       srv2,
			       "--key",
			       nodekey[i],
			       "--no-nvml",
			       "--scrape-interval-ms",
			       "100",
			       NULL};

	snprintf(sl, sizeof(sl), "127.0.0.1:%d", 19101 + i);
	snprintf(al, sizeof(al), "127.0.0.1:%d", 19111 + i);
	snprintf(srv, sizeof(srv), "http://127.0.0.1:%d%s", 19101 + i, i ? "" : ",slots=5");
	snprintf(sl2, sizeof(sl2), "127.0.0.1:%d", 19103 + i);
	snprintf(srv2, sizeof(srv2), "http://127.0.0.1:%d%s", 19103 + i, i ? "" : ",slots=3");
	snprintf(name, sizeof(name), "n%d", i + 1);
	if (sims[i] < 0)
		sims[i] = spawn(sargv, NULL);
	if (sims[2 + i] < 0)
		sims[2 + i] = spawn(sargv2, NULL);
	agents[i] = spawn(aargv, NULL);
	return agents[i];
}

static void start_aibld(void)
{
	const char *argv[] = {bin_aibld, "--config", cfgpath, NULL};

	aibld_pid = spawn(argv, logpath);
}

static void teardown(void)
{
	silent_stop = 1;
	stop_pid(&aibld_pid, SIGTERM);
	for (int i = 0; i < 2; i++) {
		stop_pid(&agents[i], SIGTERM);
		stop_pid(&sims[i], SIGTERM);
		stop_pid(&sims[2 + i], SIGTERM);
	}
	for (int i = 0; i < 4; i++)
		if (bad[i])
			MHD_stop_daemon(bad[i]);
	if (tcp_listener >= 0) {
		/* wakes the blocked accept() */
		shutdown(tcp_listener, SHUT_RDWR);
		if (tcp_thread_on)
			pthread_join(tcp_thread, NULL);
		tcp_thread_on = false;
		close(tcp_listener);
	}
	if (ifa[0]) {
		sh("ip link del %s 2>/dev/null", ifa);
		sh("ip netns del %s 2>/dev/null", netns);
	}
	if (dir[0])
		sh("rm -rf %s", dir);
	unlink(cfgpath);
	unlink(keypath);
	unlink(nodekey[0]);
	unlink(nodekey[1]);
	unlink(tokpath);
	if (getenv("AIBL_TEST_VERBOSE"))
		sh("cat %s >&2", logpath);
	unlink(logpath);
}

static void on_signal(int sig)
{
	teardown();
	_exit(1);
}

static bool setup(void)
{
	const char *b = getenv("AIBL_BUILD");
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(19131)};
	int one = 1, pid = getpid(), err = -1;

	snprintf(bin_aibld, sizeof(bin_aibld), "%s/aibld", b ? b : "build");
	snprintf(bin_agent, sizeof(bin_agent), "%s/aibl-agent", b ? b : "build");
	snprintf(bin_sim, sizeof(bin_sim), "%s/aibl-simnode", b ? b : "build");
	snprintf(bin_loadgen, sizeof(bin_loadgen), "%s/aibl-loadgen", b ? b : "build");
	if (access(bin_aibld, X_OK) || access(bin_agent, X_OK) || access(bin_sim, X_OK) ||
	    access(bin_loadgen, X_OK)) {
		SKIP("build aibld, aibl-agent, aibl-simnode and aibl-loadgen first");
		return false;
	}
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/aibl-t-ct-%d", pid);
	snprintf(cfgpath, sizeof(cfgpath), "/tmp/aibl-ct-%d.yaml", pid);
	snprintf(keypath, sizeof(keypath), "/tmp/aibl-ct-%d.key", pid);
	snprintf(tokpath, sizeof(tokpath), "/tmp/aibl-ct-%d.token", pid);
	snprintf(logpath, sizeof(logpath), "/tmp/aibl-ct-%d.log", pid);
	snprintf(ifa, sizeof(ifa), "ct%da", pid % 100000);
	snprintf(ifb, sizeof(ifb), "ct%db", pid % 100000);
	snprintf(netns, sizeof(netns), "ct-%d", pid);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (sh("ip netns add %s && ip link add %s type veth peer name %s netns %s && "
	       "ip addr add 10.98.0.1/24 dev %s && ip link set %s up && "
	       "ip -n %s link set %s up && ip -n %s addr add 10.98.0.2/24 dev %s",
	       netns, ifa, ifb, netns, ifa, ifa, netns, ifb, netns, ifb)) {
		SKIP("cannot create the veth/netns lab");
		return false;
	}
	write_file(keypath, KEY "\n", 0600);
	for (int i = 0; i < 2; i++) {
		struct aibl_key master = {.len = strlen(KEY)}, nk;
		char name[8], text[80];

		memcpy(master.key, KEY, master.len);
		snprintf(name, sizeof(name), "n%d", i + 1);
		snprintf(nodekey[i], sizeof(nodekey[i]), "/tmp/aibl-ct-%d-%s.key", pid, name);
		if (!ASSERT_OK(aibl_key__derive(&master, name, &nk), "derive"))
			return false;
		snprintf(text, sizeof(text), "%.*s\n", (int)nk.len, (const char *)nk.key);
		write_file(nodekey[i], text, 0600);
	}
	write_file(tokpath, TOKEN "\n", 0600);
	/* ports of a previous run may linger a moment: retry for a few seconds */
	for (int i = 0; i < 4; i++) {
		for (int t = 0; t < 50 && !bad[i]; t++) {
			bad[i] = MHD_start_daemon(
			    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
			    19121 + i, NULL, NULL, bad_handler, (void *)(long)i, MHD_OPTION_END);
			if (!bad[i])
				usleep(100000);
		}
		if (!ASSERT_OK_PTR(bad[i], "bad agent server"))
			return false;
	}
	tcp_listener = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(tcp_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int t = 0; t < 50 && (err = bind(tcp_listener, (void *)&sa, sizeof(sa))); t++)
		usleep(100000);
	if (!ASSERT_OK(err, "bind 19131") || !ASSERT_OK(listen(tcp_listener, 64), "listen"))
		return false;
	if (!ASSERT_OK(pthread_create(&tcp_thread, NULL, tcp_accept_loop, NULL), "accept thread"))
		return false;
	tcp_thread_on = true;
	start_pair(0);
	start_pair(1);
	write_config(100, NULL);
	start_aibld();
	if (!ASSERT_TRUE(wait_state("n1", "up", 10000) && wait_state("n2", "up", 5000) &&
			     wait_report("n1", 5000) && wait_report("n2", 5000),
			 "agents up and reporting")) {
		sh("cat %s >&2", logpath);
		return false;
	}
	return true;
}

/* ---- cases ---- */

static void maps_reflect_config(void)
{
	int n1 = be_id("n1"), n2 = be_id("n2"), tcp = be_id("tcp1"), counts[AIBL_MAX_BACKENDS];
	int fd, g_fd;
	struct aibl_svc_meta sm;
	struct aibl_member m;
	struct aibl_globals g;
	struct aibl_vip v;
	__u32 zero = 0;

	if (!ready)
		return SKIP("lab not ready");
	ASSERT_TRUE(n1 >= 0 && n2 >= 0 && tcp >= 0, "backend meta names");
	ASSERT_EQ(max_entries(AIBL_MAP_CONNS), 65536, "maps.conns sizes aibl_conns");
	ASSERT_EQ(max_entries(AIBL_MAP_PINS), 4096, "maps.pins sizes aibl_pins");
	if (!ASSERT_OK(vip_lookup("10.99.0.1", 19080, &v), "web VIP"))
		return;
	ASSERT_EQ(v.mode, AIBL_MODE_RR, "wrr runs as RR");
	ASSERT_EQ(v.flags & AIBL_VIP_F_AFFINITY, 0, "a classic policy: no client affinity");
	if (!ASSERT_OK(ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, NULL), "ring"))
		return;
	printf("  web shares: n1 %.4f n2 %.4f\n", (double)counts[n1] / AIBL_RING_SIZE,
	       (double)counts[n2] / AIBL_RING_SIZE);
	ASSERT_LE(fabs((double)counts[n1] / AIBL_RING_SIZE - 0.25), 0.01, "n1 share 1/4");
	ASSERT_LE(fabs((double)counts[n2] / AIBL_RING_SIZE - 0.75), 0.01, "n2 share 3/4");
	ASSERT_EQ(counts[n1] + counts[n2], AIBL_RING_SIZE, "no other node, no empty slot");

	fd = map_fd(AIBL_MAP_SVC_META);
	ASSERT_OK(bpf_map_lookup_elem(fd, &v.svc_id, &sm), "svc meta");
	ASSERT_STREQ(sm.name, "web", "svc meta name");
	ASSERT_EQ(sm.policy, AIBL_POL_WRR, "svc meta policy");
	close(fd);
	fd = map_fd(AIBL_MAP_MEMBERS);
	ASSERT_OK(bpf_map_lookup_elem(fd, &(struct aibl_member_key){v.svc_id, n2}, &m),
		  "member n2");
	ASSERT_EQ(m.cfg_weight, 300, "member cfg weight");
	ASSERT_EQ(m.slots, counts[n2], "member slots = ring");
	close(fd);

	/* ai service: the agent-less node counts via TCP and its static model */
	ASSERT_OK(vip_lookup("10.99.0.2", 19081, &v), "chat VIP");
	ASSERT_EQ(v.mode, AIBL_MODE_P2C, "ai runs as P2C");
	ASSERT_EQ(v.flags & AIBL_VIP_F_AFFINITY, AIBL_VIP_F_AFFINITY, "ai: client affinity");
	/* the poller stores the reports setup waited for; the recompute that
	 * gives their nodes slots comes after it */
	for (int i = 0; i < 30; i++) {
		ring_counts("10.99.0.2", 19081, counts, AIBL_MAX_BACKENDS, NULL);
		if (counts[n1] && counts[n2] && counts[tcp])
			break;
		usleep(100000);
	}
	ASSERT_TRUE(counts[n1] && counts[n2] && counts[tcp], "chat: all three nodes");
	ASSERT_EQ(be_flags(tcp) & AIBL_BE_F_DOWN, 0, "tcp1 up");

	g_fd = map_fd(AIBL_MAP_GLOBALS);
	ASSERT_OK(bpf_map_lookup_elem(g_fd, &zero, &g), "globals");
	ASSERT_EQ(g.abi_version, AIBL_ABI_VERSION, "abi");
	ASSERT_EQ(g.ifindex, if_nametoindex(ifa), "ifindex from netlink");
	ASSERT_EQ(g.hash_seed, 0x6169626c, "seed");
	ASSERT_EQ(g.src4, inet_addr("10.98.0.1"), "tunnel source from the interface");
	ASSERT_TRUE(g.flags & AIBL_G_F_FLOW_CACHE, "flow cache on by default");
	ASSERT_EQ(g.affinity_ms, 2000, "client affinity: ai.affinity_ms by default");
	ASSERT_EQ(g.affinity_spill_ms, 500, "its spill: ai.pin_spill_ms");
	{
		/* a neighbour that is none of the globals' facts (not the
		 * gateway), then a new interface MAC: one globals write, the
		 * MAC's (each write voids the flow cache) */
		static const __u8 mac[6] = {0x02, 0x00, 0x00, 0x00, 0x42, 0x42};
		__u8 old_mac[6];
		__u32 e0 = g.epoch;
		bool seen = false;

		memcpy(old_mac, g.if_mac, 6);
		ASSERT_OK(sh("ip neigh replace 10.98.0.77 lladdr 02:00:00:00:00:77 dev %s", ifa),
			  "neighbour");
		/* handled apart from the MAC's event (aibld reads netlink at
		 * once; were it slower, the two would be one write and this
		 * check would pass without telling) */
		usleep(500000);
		ASSERT_OK(sh("ip link set dev %s address 02:00:00:00:42:42", ifa), "new MAC");
		for (int i = 0; i < 50 && !seen; i++) {
			usleep(100000);
			seen = !bpf_map_lookup_elem(g_fd, &zero, &g) && !memcmp(g.if_mac, mac, 6);
		}
		ASSERT_TRUE(seen, "the new MAC in the globals");
		ASSERT_EQ(g.epoch, e0 + 1, "one globals write: the MAC's, not the neighbour's");
		sh("ip link set dev %s address %02x:%02x:%02x:%02x:%02x:%02x", ifa, old_mac[0],
		   old_mac[1], old_mac[2], old_mac[3], old_mac[4], old_mac[5]);
		sh("ip neigh del 10.98.0.77 dev %s", ifa);
	}
	close(g_fd);
	ASSERT_EQ(sh("ip link show %s | grep -q xdpgeneric", ifa), 0, "attached generic");
}

/*
 * A bad agent in front of a live backend: unhealthy (DRAINING: no new
 * flows, established ones continue), never DOWN; the silent agent's node
 * has no backend either: DOWN.
 */
static void bad_agents_unhealthy(void)
{
	json_t *st;

	if (!ready)
		return SKIP("lab not ready");
	for (int i = 0; i < 4; i++) {
		bool dead = i == BAD_SILENT;
		int id = be_id(bad_names[i]);

		ASSERT_TRUE(wait_state(bad_names[i], dead ? "down" : "unhealthy", 5000),
			    bad_names[i]);
		ASSERT_TRUE(wait_flag(id, dead ? AIBL_BE_F_DOWN : AIBL_BE_F_DRAINING, true),
			    dead ? "DOWN flag" : "DRAINING flag");
		if (!dead) {
			ASSERT_EQ(be_flags(id) & AIBL_BE_F_DOWN, 0, "not DOWN: flows stay");
			ASSERT_TRUE(be_flags(id) & AIBL_BE_F_UNHEALTHY, "the controller's mark");
		}
	}
	st = status();
	if (ASSERT_OK_PTR(st, "status")) {
		size_t i;
		json_t *n;

		json_array_foreach(json_object_get(st, "nodes"), i, n)
		{
			const char *name = json_string_value(json_object_get(n, "name"));
			const char *e = json_string_value(json_object_get(n, "last_error"));
			const char *r = json_string_value(json_object_get(n, "reason"));

			if (strncmp(name, "bad-", 4))
				continue;
			printf("  %s: %s (%s)\n", name, e, r);
			ASSERT_TRUE(json_is_false(json_object_get(n, "healthy")), "not healthy");
			if (!strcmp(name, "bad-garbage"))
				ASSERT_TRUE(strstr(e, "bad report") && !strcmp(r, "bad_report"),
					    "garbage reason");
			if (!strcmp(name, "bad-silent"))
				ASSERT_TRUE(strstr(e, "timeout") && !strcmp(r, "backend_check"),
					    "silent reason");
			if (!strcmp(name, "bad-foreign"))
				ASSERT_TRUE(strstr(e, "somebody-else") &&
						!strcmp(r, "foreign_report"),
					    "foreign reason");
			if (!strcmp(name, "bad-unsigned"))
				ASSERT_TRUE(strstr(e, "unsigned") && !strcmp(r, "auth"),
					    "unsigned reason");
		}
		json_decref(st);
	}
	ASSERT_TRUE(alive(aibld_pid), "controller survived");
	/* misc keeps only tcp1: every slot */
	{
		int counts[AIBL_MAX_BACKENDS];

		ring_counts("10.99.0.3", 19082, counts, AIBL_MAX_BACKENDS, NULL);
		ASSERT_EQ(counts[be_id("tcp1")], AIBL_RING_SIZE, "misc all on tcp1");
	}
}

static void breaker_down_up(void)
{
	int n2 = be_id("n2"), counts[AIBL_MAX_BACKENDS];

	if (!ready)
		return SKIP("lab not ready");
	/* n2's address has no backend behind it: the agent's failure is confirmed */
	stop_pid(&agents[1], SIGKILL);
	ASSERT_TRUE(wait_state("n2", "down", 5000), "n2 down without its agent");
	ASSERT_TRUE(wait_flag(n2, AIBL_BE_F_DOWN, true), "DOWN flag");
	ASSERT_LE(wait_ring_share("10.99.0.1", 19080, n2, 0), 0, "n2 out of the table");
	ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, NULL);
	ASSERT_EQ(counts[be_id("n1")], AIBL_RING_SIZE, "n1 takes all");
	start_pair(1);
	ASSERT_TRUE(wait_state("n2", "up", 8000), "n2 up again");
	ASSERT_TRUE(wait_flag(n2, AIBL_BE_F_DOWN, false), "DOWN cleared");
	ASSERT_LE(fabs(wait_ring_share("10.99.0.1", 19080, n2, 0.75) - 0.75), 0.01,
		  "n2 share back");
}

static void metrics_and_status(void)
{
	char *body = NULL;
	json_t *st, *svc;

	if (!ready)
		return SKIP("lab not ready");
	ASSERT_EQ(http("GET", API "/metrics", NULL, &body), 200, "GET /metrics");
	if (ASSERT_OK_PTR(body, "metrics body")) {
		static const char *const want[] = {
		    "aibl_service_node_weight{service=\"web\",node=\"n2\"} 300",
		    "aibl_service_node_slot_share{service=\"web\",node=\"n1\"} 0.2",
		    "aibl_node_up{node=\"n1\"} 1",
		    "aibl_node_up{node=\"bad-garbage\"} 0",
		    "aibl_node_unhealthy{node=\"bad-garbage\"} 1",
		    "aibl_node_state{node=\"bad-foreign\",state=\"unhealthy\","
		    "reason=\"foreign_report\"} 1",
		    "aibl_node_state{node=\"bad-silent\",state=\"down\","
		    "reason=\"backend_check\"} 1",
		    "aibl_node_state{node=\"n1\",state=\"up\",reason=\"\"} 1",
		    "aibl_node_active_flows{node=\"n1\"} ",
		    "aibl_service_packets_total{service=\"web\"} ",
		    "aibl_node_pins{node=\"n1\"} ",
		    "aibl_node_ai_slots{node=\"n1\"} ",
		    "aibl_node_ai_hold_ms{node=\"bad-silent\"} -1.0",
		    "aibl_node_ai_prefill_wait_ms{node=\"bad-silent\"} -1.0",
		    "aibl_node_ai_prefill_shared{node=\"n1\"} 0",
		    "aibl_node_ai_prefill_ms{node=\"n1\"} 0.0",
		    "aibl_controller_loop_seconds ",
		    "aibl_node_poll_errors_total{node=\"bad-silent\"} ",
		    "aibl_dataplane_events_total{event=\"conn_miss\"} ",
		};

		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
			ASSERT_TRUE(strstr(body, want[i]), want[i]);
	}
	free(body);
	st = status();
	if (!ASSERT_OK_PTR(st, "status json"))
		return;
	ASSERT_TRUE(json_is_string(json_object_get(st, "version")), "version");
	ASSERT_TRUE(json_is_integer(json_object_get(st, "uptime_s")), "uptime");
	svc = json_array_get(json_object_get(st, "services"), 0);
	ASSERT_STREQ(json_string_value(json_object_get(svc, "name")), "web", "service name");
	ASSERT_STREQ(json_string_value(json_object_get(svc, "vip")), "10.99.0.1", "vip");
	ASSERT_EQ(json_integer_value(json_object_get(svc, "port")), 19080, "port");
	ASSERT_STREQ(json_string_value(json_object_get(svc, "proto")), "tcp", "proto");
	ASSERT_STREQ(json_string_value(json_object_get(svc, "policy")), "wrr", "policy");
	ASSERT_TRUE(json_is_string(json_object_get(svc, "model")), "model");
	svc = json_array_get(json_object_get(svc, "nodes"), 1);
	ASSERT_STREQ(json_string_value(json_object_get(svc, "name")), "n2", "member name");
	ASSERT_EQ(json_integer_value(json_object_get(svc, "weight")), 300, "member weight");
	ASSERT_TRUE(json_integer_value(json_object_get(svc, "slots")) > 0, "member slots");
	ASSERT_STREQ(json_string_value(json_object_get(svc, "state")), "up", "member state");
	{
		json_t *n = json_array_get(json_object_get(st, "nodes"), 0);
		static const char *const keys[] = {
		    "name",
		    "address",
		    "state",
		    "healthy",
		    "last_report_age_ms",
		    "models",
		    "gpu_util_pct",
		    "queue_depth",
		    "in_flight",
		    "kv_cache_usage",
		    "ttft_avg_ms",
		    "failures",
		    "ai_latency_ms",
		    "ai_floor_ms",
		    "ai_slots",
		    "ai_hold_ms",
		    "ai_probe_ms",
		    "ai_prefill_wait_ms",
		    "ai_prefill_shared",
		    "ai_prefill_ms",
		};

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			ASSERT_TRUE(json_object_get(n, keys[i]), keys[i]);
		ASSERT_TRUE(json_is_number(json_object_get(n, "ai_hold_ms")),
			    "ai_hold_ms a number");
		/* no queue seen at n1 yet: its engines' stated slots, summed;
		 * n2's agent states none */
		ASSERT_TRUE(json_number_value(json_object_get(n, "ai_slots")) == 8,
			    "n1's stated slots");
		ASSERT_TRUE(json_number_value(json_object_get(
				json_array_get(json_object_get(st, "nodes"), 1), "ai_slots")) == -1,
			    "n2's unknown");
		ASSERT_TRUE(json_is_true(json_object_get(n, "healthy")), "n1 healthy");
		ASSERT_STREQ(json_string_value(json_array_get(json_object_get(n, "models"), 0)),
			     "m1", "resident model from the agent");
	}
	json_decref(st);
}

/* the chat service in /v1/status (a new reference), NULL when absent */
static json_t *svc_status(const char *name)
{
	json_t *st = status(), *s, *out = NULL;
	size_t i;

	json_array_foreach(json_object_get(st, "services"), i,
			   s) if (!strcmp(json_string_value(json_object_get(s, "name")), name))
	    out = json_incref(s);
	json_decref(st);
	return out;
}

static json_t *chat_status(void)
{
	return svc_status("chat");
}

/* chat sessions of model m1 (or m2) straight at its engines on both nodes
 * (whose metrics the agents read), arriving at rate a second: 0 on success */
static int model_sessions(const char *model, const char *sessions, const char *turns,
			  const char *rate, const char *seed)
{
	const char *argv[] = {bin_loadgen,
			      "chat",
			      "--target",
			      strcmp(model, "m2") ? "http://127.0.0.1:19101,http://127.0.0.1:19102"
						  : "http://127.0.0.1:19103,http://127.0.0.1:19104",
			      "--model",
			      model,
			      "--sessions",
			      sessions,
			      "--turns",
			      turns,
			      "--rate",
			      rate,
			      "--burst-prob",
			      "0",
			      "--think-ms",
			      "0",
			      "--context-tokens",
			      "400",
			      "--output-tokens",
			      "2",
			      "--no-progress",
			      "--seed",
			      seed,
			      NULL};
	pid_t pid = spawn(argv, NULL);
	int status = -1;

	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* whether service name's VIP (vip:port) has client affinity as on says,
 * and its status and its metric say so, within ms */
static bool svc_affinity(const char *name, const char *vip, int port, bool on, int ms)
{
	struct aibl_vip v;
	char *body = NULL, metric[96];
	bool ok = false;

	snprintf(metric, sizeof(metric), "aibl_service_ai_affinity{service=\"%s\"} %d", name, on);
	for (int t = 0; t < ms / 100 && !ok; t++) {
		json_t *s = svc_status(name);

		ok = !vip_lookup(vip, port, &v) && !!(v.flags & AIBL_VIP_F_AFFINITY) == on &&
		     json_is_boolean(json_object_get(s, "ai_affinity")) &&
		     json_is_true(json_object_get(s, "ai_affinity")) == on;
		json_decref(s);
		if (ok && http("GET", API "/metrics", NULL, &body) == 200)
			ok = strstr(body, metric);
		free(body);
		body = NULL;
		if (!ok)
			usleep(100000);
	}
	return ok;
}

/*
 * Client affinity where prompts find their prefixes (policy__reuse), from
 * the engines' own prefix-cache counters through the agents: single-turn
 * sessions find none and take it off the ai VIP, multi-turn ones put it
 * back; the classic VIP never has it.
 */
static void affinity_follows_reuse(void)
{
	struct aibl_vip v;
	json_t *s;

	if (!ready)
		return SKIP("lab not ready");
	if (!ASSERT_OK(model_sessions("m1", "24", "1", "0", "5"), "single-turn sessions"))
		return;
	ASSERT_TRUE(svc_affinity("chat", "10.99.0.2", 19081, false, 5000),
		    "no prefix found: affinity off");
	s = chat_status();
	ASSERT_TRUE(json_is_number(json_object_get(s, "ai_prefix_hit")) &&
			json_number_value(json_object_get(s, "ai_prefix_hit")) < 0.02,
		    "the hit rate it was decided from");
	json_decref(s);
	if (!ASSERT_OK(model_sessions("m1", "12", "4", "0", "6"), "four-turn sessions"))
		return;
	ASSERT_TRUE(svc_affinity("chat", "10.99.0.2", 19081, true, 5000),
		    "prefixes found again: affinity on");
	s = chat_status();
	ASSERT_TRUE(json_number_value(json_object_get(s, "ai_prefix_hit")) >= 0.05, "its hit rate");
	json_decref(s);
	ASSERT_OK(vip_lookup("10.99.0.1", 19080, &v), "web VIP");
	ASSERT_EQ(v.flags & AIBL_VIP_F_AFFINITY, 0, "wrr: never");
}

/* metric{service="svc"} from /metrics, NAN unreadable */
static double svc_metric(const char *metric, const char *svc)
{
	char *body = NULL, key[128];
	const char *at;
	double v = NAN;

	snprintf(key, sizeof(key), "%s{service=\"%s\"} ", metric, svc);
	http("GET", API "/metrics", NULL, &body);
	if (body && (at = strstr(body, key)))
		v = strtod(at + strlen(key), NULL);
	free(body);
	return v;
}

/*
 * Each service reads the engine that serves its model. Both nodes run m1
 * (the chat above: prefixes found) and m2 (here single-turn: none), each
 * in an engine of its own: code's VIP loses client affinity and chat's
 * keeps it. Read from the node's figure, the mean of its engines, code
 * kept it (chat's hits outweighed) and, while only m2 ran, chat's figure
 * fell with code's.
 */
static void affinity_per_engine(void)
{
	json_t *s;

	if (!ready)
		return SKIP("lab not ready");
	if (!ASSERT_TRUE(svc_affinity("chat", "10.99.0.2", 19081, true, 5000), "chat: on") ||
	    !ASSERT_OK(model_sessions("m2", "24", "1", "0", "7"), "m2: single-turn sessions"))
		return;
	ASSERT_TRUE(svc_affinity("code", "10.99.0.4", 19083, false, 5000), "code: none found, off");
	ASSERT_TRUE(svc_affinity("chat", "10.99.0.2", 19081, true, 100), "chat: still on");
	s = svc_status("code");
	ASSERT_TRUE(json_number_value(json_object_get(s, "ai_prefix_hit")) < 0.02,
		    "code: m2's engines' hit rate");
	json_decref(s);
	s = chat_status();
	ASSERT_TRUE(json_number_value(json_object_get(s, "ai_prefix_hit")) >= 0.05,
		    "chat: m1's engines' hit rate");
	json_decref(s);
	ASSERT_TRUE(svc_metric("aibl_service_ai_prefix_hit", "code") < 0.02, "code's metric");
	ASSERT_TRUE(svc_metric("aibl_service_ai_prefix_hit", "chat") >= 0.05, "chat's metric");
	ASSERT_TRUE(svc_metric("aibl_service_ai_prefix_hit", "web") == -1, "wrr: -1");
}

static void drain_api(void)
{
	char *body = NULL;
	int n1 = be_id("n1");
	json_t *j;

	if (!ready)
		return SKIP("lab not ready");
	ASSERT_EQ(http("POST", API "/v1/nodes/n1/drain", NULL, NULL), 401, "no token");
	ASSERT_EQ(http("POST", API "/v1/nodes/n1/drain", "wrong-token-wrong-token", NULL), 401,
		  "wrong token");
	ASSERT_EQ(http("POST", API "/v1/nodes/n1/drain", TOKEN "q", NULL), 401,
		  "the token and more");
	ASSERT_EQ(http("POST", API "/v1/nodes/n1/drain", "ct-api-token-abcdefghijklmno", NULL), 401,
		  "the token but its last byte");
	ASSERT_FALSE(be_flags(n1) & AIBL_BE_F_DRAINING, "not draining after refusals");
	ASSERT_EQ(http("POST", API "/v1/nodes/n1/drain", TOKEN, &body), 200, "drain");
	j = body ? json_loads(body, 0, NULL) : NULL;
	ASSERT_STREQ(json_string_value(json_object_get(j, "node")), "n1", "reply node");
	ASSERT_TRUE(json_is_true(json_object_get(j, "draining")), "reply draining");
	json_decref(j);
	free(body);
	ASSERT_TRUE(wait_state("n1", "draining", 2000), "state draining");
	ASSERT_TRUE(wait_flag(n1, AIBL_BE_F_DRAINING, true), "DRAINING flag");
	ASSERT_EQ(http("POST", API "/v1/nodes/nope/drain", TOKEN, NULL), 404, "unknown node");
	ASSERT_EQ(http("GET", API "/v1/nodes/n1/drain", TOKEN, NULL), 405, "GET refused");
	ASSERT_EQ(http("POST", API "/v1/nodes/n1/undrain", TOKEN, &body), 200, "undrain");
	j = body ? json_loads(body, 0, NULL) : NULL;
	ASSERT_TRUE(json_is_false(json_object_get(j, "draining")), "reply not draining");
	json_decref(j);
	free(body);
	ASSERT_TRUE(wait_state("n1", "up", 2000), "state up");
	ASSERT_TRUE(wait_flag(n1, AIBL_BE_F_DRAINING, false), "DRAINING cleared");
}

/* aibl_controller_reloads_total{result} from /metrics, -1 unreadable */
static long reloads(const char *result)
{
	char *body = NULL, key[96];
	const char *at;
	long v = -1;

	snprintf(key, sizeof(key), "aibl_controller_reloads_total{result=\"%s\"} ", result);
	http("GET", API "/metrics", NULL, &body);
	if (body && (at = strstr(body, key)))
		v = strtol(at + strlen(key), NULL, 10);
	free(body);
	return v;
}

/* SIGHUP, then wait (bounded) until aibld has counted the reload with that
 * result: a reload that succeeds has written its tables by then */
static bool sighup_wait(const char *result)
{
	long before = reloads(result);
	double end = now_ms() + 5000;

	/* never kill(-1, ...): that signals every process there is */
	if (aibld_pid <= 0)
		return false;
	kill(aibld_pid, SIGHUP);
	while (now_ms() < end) {
		if (reloads(result) > before)
			return true;
		usleep(50000);
	}
	return false;
}

static void sighup(void)
{
	int counts[AIBL_MAX_BACKENDS], n1 = be_id("n1"), n2 = be_id("n2");
	__u32 before, after;
	struct aibl_vip v1, v2;
	char *body = NULL;
	bool ok = false;
	json_t *st;

	if (!ready)
		return SKIP("lab not ready");
	ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, &before);
	vip_lookup("10.99.0.1", 19080, &v1);
	/* a broken file: refused, nothing changes */
	write_file(cfgpath, "interface: [\n", 0644);
	ASSERT_TRUE(sighup_wait("refused"), "bad reload refused");
	ASSERT_TRUE(alive(aibld_pid), "alive after a bad reload");
	ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, &after);
	vip_lookup("10.99.0.1", 19080, &v2);
	ASSERT_EQ(after, before, "table untouched");
	ASSERT_EQ(v2.ring_half, v1.ring_half, "no flip");
	http("GET", API "/metrics", NULL, &body);
	ASSERT_TRUE(body && strstr(body, "aibl_controller_reloads_total{result=\"refused\"} 1"),
		    "refusal counted");
	free(body);
	/* the flow cache switched off and on: each globals write voids the
	 * cached decisions (a new epoch) */
	{
		int g_fd = map_fd(AIBL_MAP_GLOBALS);
		struct aibl_globals g0 = {}, g1 = {};
		__u32 zero = 0;

		bpf_map_lookup_elem(g_fd, &zero, &g0);
		write_config(100, "flow_cache: false\n");
		ASSERT_TRUE(sighup_wait("ok"), "reloaded");
		bpf_map_lookup_elem(g_fd, &zero, &g1);
		ASSERT_FALSE(g1.flags & AIBL_G_F_FLOW_CACHE, "flow_cache: false clears the flag");
		ASSERT_TRUE(g1.epoch > g0.epoch, "new epoch");
		write_config(100, NULL);
		ASSERT_TRUE(sighup_wait("ok"), "reloaded");
		bpf_map_lookup_elem(g_fd, &zero, &g0);
		ASSERT_TRUE(g0.flags & AIBL_G_F_FLOW_CACHE, "back on");
		ASSERT_TRUE(g0.epoch > g1.epoch, "new epoch again");
		close(g_fd);
	}

	/* a good one: n1 100 -> 300, shares become 1/2 each */
	write_config(300, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "reloaded");
	ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, &after);
	ASSERT_LE(fabs((double)counts[n1] / AIBL_RING_SIZE - 0.5), 0.01, "n1 half");
	ASSERT_LE(fabs((double)counts[n2] / AIBL_RING_SIZE - 0.5), 0.01, "n2 half");
	ASSERT_EQ(be_id("n1"), n1, "ids kept over the reload");
	vip_lookup("10.99.0.1", 19080, &v2);
	ASSERT_NEQ(v2.ring_half, v1.ring_half, "written to the other half, flipped");

	/* a new token, the listener kept: it takes the new one at the reload */
	write_file(tokpath, "ct-api-token-rotated-0123456789\n", 0600);
	write_config(300, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "reloaded with a new token");
	ASSERT_EQ(http("POST", API "/v1/nodes/nope/unload?model=m1", TOKEN, NULL), 401,
		  "the old token: refused");
	ASSERT_EQ(http("POST", API "/v1/nodes/nope/unload?model=m1",
		       "ct-api-token-rotated-0123456789", NULL),
		  404, "the new one: taken");
	write_file(tokpath, TOKEN "\n", 0600);
	write_config(300, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "the token back");

	/* n1's agent taken out of the config: the report it sent is
	 * forgotten, not kept fresh for good by the TCP checks that follow */
	st = status();
	ASSERT_TRUE(node_num(st, "n1", "in_flight") >= 0, "n1 reported before");
	json_decref(st);
	n1_check = "health_port: 19131";
	write_config(300, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "reloaded without n1's agent");
	st = status();
	ASSERT_EQ(node_num(st, "n1", "in_flight"), -1, "n1's report forgotten");
	ASSERT_EQ(node_num(st, "n1", "queue_depth"), -1, "its queue unknown");
	json_decref(st);
	n1_check = "agent: 'http://127.0.0.1:19111'";
	write_config(300, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "n1's agent back");
	for (int i = 0; i < 60; i++) {
		st = status();
		ok = node_num(st, "n1", "in_flight") >= 0 && !strcmp(node_state(st, "n1"), "up");
		json_decref(st);
		if (ok)
			break;
		usleep(100 * 1000);
	}
	ASSERT_TRUE(ok, "n1 reports and is up again");

	/* a cluster joined (or left) on the fly: the cluster takes etcd's
	 * settings at start, so the reload is refused and nothing changes */
	write_config(300, "etcd: {endpoint: 'http://127.0.0.1:9', name: b1}\n");
	ASSERT_TRUE(sighup_wait("refused"), "an etcd change refused");
	ASSERT_TRUE(alive(aibld_pid), "alive");
	write_config(300, NULL);
}

/* a member's weight in service svc's status (its "nodes", as the
 * document's: node_num()), -2 where it has none */
static long member_weight(const char *svc, const char *node)
{
	json_t *s = svc_status(svc);
	long w = (long)node_num(s, node, "weight");

	json_decref(s);
	return w;
}

/*
 * A reload carries each node's applied weight by the node's name, so that
 * hysteresis goes on from what is in the table: with the service's node
 * list reordered, weights carried by position would swap n1's and n2's,
 * and within the hysteresis (285 and 300: 5 %; 10 % the default) the swap
 * would stay. A weight the operator changed is applied, however small the
 * change.
 */
static void reload_keeps_weights(void)
{
	if (!ready)
		return SKIP("lab not ready");
	/* n1 at 200, then 285: each step beyond the hysteresis */
	write_config(200, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "n1 at 200");
	write_config(285, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "n1 at 285");
	if (!ASSERT_EQ(member_weight("web", "n1"), 285, "n1 285") ||
	    !ASSERT_EQ(member_weight("web", "n2"), 300, "n2 300"))
		goto out;
	web_nodes = "n2, n1";
	write_config(285, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "reordered");
	/* the recomputes after the reload keep what it carried */
	usleep(600 * 1000);
	ASSERT_EQ(member_weight("web", "n1"), 285, "n1 kept its weight");
	ASSERT_EQ(member_weight("web", "n2"), 300, "n2 kept its weight");
	/* the operator's own change, however small, is no drift to hold back:
	 * 285 -> 290 is applied at the reload, not at the next restart */
	write_config(290, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "n1 at 290");
	ASSERT_EQ(member_weight("web", "n1"), 290, "the configured weight");
out:
	web_nodes = "n1, n2";
	write_config(100, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "back as it was");
}

/* the interface deleted and created again under its name: aibld learns
 * the new index from netlink, attaches the program there and writes it to
 * aibl_globals; the program taken off it is put back too */
static void interface_recreated(void)
{
	int before = if_nametoindex(ifa), after = 0, fd = -1, i;
	struct aibl_globals g = {};
	__u32 zero = 0;

	if (!ready)
		return SKIP("lab not ready");
	ASSERT_OK(sh("ip link del %s", ifa), "interface deleted");
	if (!ASSERT_OK(sh("ip link add %s type veth peer name %s netns %s && "
			  "ip addr add 10.98.0.1/24 dev %s && ip link set %s up && "
			  "ip -n %s link set %s up && ip -n %s addr add 10.98.0.2/24 dev %s",
			  ifa, ifb, netns, ifa, ifa, netns, ifb, netns, ifb),
		       "created again"))
		return;
	after = if_nametoindex(ifa);
	ASSERT_NEQ(after, before, "a new index");
	for (i = 0; i < 50 && sh("ip link show %s | grep -q xdpgeneric", ifa); i++)
		usleep(100000);
	ASSERT_EQ(sh("ip link show %s | grep -q xdpgeneric", ifa), 0, "attached again");
	fd = map_fd(AIBL_MAP_GLOBALS);
	for (i = 0; i < 30; i++) {
		if (!bpf_map_lookup_elem(fd, &zero, &g) && (int)g.ifindex == after)
			break;
		usleep(100000);
	}
	close(fd);
	ASSERT_EQ(g.ifindex, after, "aibl_globals has the new index");
	ASSERT_EQ(sh("grep -q 're-attached to %s (ifindex %d)' %s", ifa, after, logpath), 0,
		  "logged");
	ASSERT_TRUE(alive(aibld_pid), "controller alive");
	ASSERT_TRUE(wait_state("n1", "up", 8000), "n1 up behind it");

	/* the program taken off the same interface (ip link set ... xdp off,
	 * another tool): put back within a loop or two. Left off, nothing
	 * was balanced until a restart */
	ASSERT_OK(sh("ip link set %s xdpgeneric off", ifa), "taken off");
	for (i = 0; i < 50 && sh("ip link show %s | grep -q xdpgeneric", ifa); i++)
		usleep(100000);
	ASSERT_EQ(sh("ip link show %s | grep -q xdpgeneric", ifa), 0, "attached again");
	ASSERT_EQ(sh("grep -q 'no longer attached to %s' %s", ifa, logpath), 0, "said");
}

static void restart_keeps_flows(void)
{
	struct aibl_flow_key fk = {.sport = htons(40000),
				   .dport = htons(19080),
				   .proto = IPPROTO_TCP,
				   .family = AIBL_AF_INET};
	struct aibl_conn cv = {.flags = 0}, got;
	int fd, ids[3], counts[AIBL_MAX_BACKENDS];
	__u32 before, after;
	struct aibl_vip v1, v2;

	if (!ready)
		return SKIP("lab not ready");
	ids[0] = be_id("n1");
	ids[1] = be_id("n2");
	ids[2] = be_id("tcp1");
	inet_pton(AF_INET, "10.97.0.9", &fk.src.v4);
	inet_pton(AF_INET, "10.99.0.1", &fk.dst.v4);
	cv.backend = ids[1];
	fd = map_fd(AIBL_MAP_CONNS);
	ASSERT_OK(bpf_map_update_elem(fd, &fk, &cv, BPF_ANY), "established flow");
	ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, &before);
	vip_lookup("10.99.0.1", 19080, &v1);

	stop_pid(&aibld_pid, SIGKILL);
	ASSERT_EQ(sh("ip link show %s | grep -q xdpgeneric", ifa), 0, "still attached after -9");
	ASSERT_OK(bpf_map_lookup_elem(fd, &fk, &got), "flow survives the crash");
	start_aibld();
	ASSERT_TRUE(wait_state("n1", "up", 8000), "restarted");
	ASSERT_OK(bpf_map_lookup_elem(fd, &fk, &got), "flow survives the restart");
	ASSERT_EQ(got.backend, ids[1], "same backend");
	ASSERT_EQ(be_id("n1"), ids[0], "n1 id kept");
	ASSERT_EQ(be_id("n2"), ids[1], "n2 id kept");
	ASSERT_EQ(be_id("tcp1"), ids[2], "tcp1 id kept");
	ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, &after);
	vip_lookup("10.99.0.1", 19080, &v2);
	ASSERT_EQ(after, before, "same table");
	ASSERT_EQ(v2.svc_id, v1.svc_id, "same service id");
	ASSERT_EQ(v2.ring_half, v1.ring_half, "unchanged table not rewritten");
	close(fd);
	/* an unhealthy node's DRAINING is not taken for an operator's drain */
	{
		char *body = NULL;

		http("GET", API "/metrics", NULL, &body);
		ASSERT_TRUE(body && strstr(body, "aibl_node_draining{node=\"bad-garbage\"} 0") &&
				strstr(body, "aibl_node_unhealthy{node=\"bad-garbage\"} 1"),
			    "unhealthy adopted as unhealthy, not drained");
		free(body);
	}

	/* clean exit leaves it forwarding */
	ASSERT_EQ(stop_pid(&aibld_pid, SIGTERM), 0, "exit 0 on SIGTERM");
	ASSERT_EQ(sh("ip link show %s | grep -q xdpgeneric", ifa), 0, "attached after exit");
	{
		char p[256];

		snprintf(p, sizeof(p), "%s/%s", dir, AIBL_PIN_PROG);
		ASSERT_OK(access(p, F_OK), "program pin stays");
	}
}

static void teardown_cmd(void)
{
	const char *argv[] = {bin_aibld, "--teardown", "--config", cfgpath, NULL};
	pid_t p;
	int status = -1;

	if (!ready)
		return SKIP("lab not ready");
	p = spawn(argv, logpath);
	waitpid(p, &status, 0);
	ASSERT_EQ(status, 0, "teardown exit");
	ASSERT_NEQ(sh("ip link show %s | grep -q xdp", ifa), 0, "detached");
	ASSERT_NEQ(access(dir, F_OK), 0, "pins removed");
}

/*
 * A node a reload adds takes no new flow before a poll answers: one at a
 * closed port never gets a slot (before, it got its share at the reload and
 * blackholed it for fail_after polls); one that answers is in a round later.
 */
static void new_node_pending(void)
{
	int counts[AIBL_MAX_BACKENDS], closed, open;
	bool in = false;
	json_t *st;

	if (!ready)
		return SKIP("lab not ready");
	web_nodes = "n1, n2, new-closed, new-open";
	write_config(300, "  - {name: new-closed, address: 127.0.0.1, health_port: 19139}\n"
			  "  - {name: new-open, address: 127.0.0.1, health_port: 19131}\n");
	ASSERT_TRUE(sighup_wait("ok"), "reloaded with two new nodes");
	closed = be_id("new-closed");
	open = be_id("new-open");
	if (!ASSERT_TRUE(closed >= 0 && open >= 0, "both have ids"))
		goto out;
	ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, NULL);
	ASSERT_EQ(counts[closed], 0, "the closed one: no slot at the reload");
	for (int i = 0; i < 40 && !in; i++) {
		usleep(50000);
		ring_counts("10.99.0.1", 19080, counts, AIBL_MAX_BACKENDS, NULL);
		in = counts[open] > 0;
		ASSERT_EQ(counts[closed], 0, "the closed one: never a slot");
	}
	ASSERT_TRUE(in, "the open one: in once its check answered");
	usleep(3 * 200000);
	st = status();
	ASSERT_STREQ(node_state(st, "new-closed"), "down", "the closed one: down at fail_after");
	json_decref(st);
out:
	web_nodes = "n1, n2";
	write_config(300, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "the config back");
}

/* aibld --check on the lab's config: its exit status */
static int check_status(void)
{
	const char *argv[] = {bin_aibld, "--check", "--config", cfgpath, NULL};
	pid_t p = spawn(argv, logpath);
	int status = -1;

	waitpid(p, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * --check reads the key and token files as a start does: an ok is a start
 * that gets past them. A token of the documented longest, 256 bytes, is
 * taken by both.
 */
static void check_cmd(void)
{
	char tok[258];

	if (!ready)
		return SKIP("lab not ready");
	ASSERT_EQ(check_status(), 0, "the lab's config");
	chmod(keypath, 0644);
	ASSERT_EQ(check_status(), 1, "a key file others may read: refused, as a start refuses it");
	chmod(keypath, 0600);
	memset(tok, 'k', 256);
	strcpy(tok + 256, "\n");
	write_file(tokpath, tok, 0600);
	ASSERT_EQ(check_status(), 0, "a 256-byte token");
	write_config(300, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "a reload takes it too");
	write_file(tokpath, TOKEN "\n", 0600);
	write_config(300, NULL);
	ASSERT_TRUE(sighup_wait("ok"), "the token back");
}

/* POST body to url with an X-Aibl-Signature header (sig NULL: none) */
static long post_signed(const char *url, const char *body, const char *sig)
{
	char hdr[AIBL_AUTH_HDR_MAX + 32];

	if (sig)
		snprintf(hdr, sizeof(hdr), "%s: %s", AIBL_AUTH_HEADER, sig);
	return http_req("POST", url, sig ? hdr : NULL, body, NULL);
}

/*
 * A keyed agent takes a background load (POST /v1/load) only signed with
 * its node's key for that model, and each signature once: unsigned, signed
 * by another node's key, for another model, as a report request, or
 * replayed, it is refused (401) and nothing is loaded. A model that is
 * resident already is answered 200, resident.
 */
static void agent_load_signed(void)
{
	struct aibl_key master = {.len = strlen(KEY)}, k1, k2;
	char sig[AIBL_AUTH_HDR_MAX], nonce[AIBL_AUTH_NONCE_MAX];
	const char *url = "http://127.0.0.1:19111/v1/load", *body = "{\"model\":\"m1\"}";
	__u64 t = (__u64)time(NULL);

	if (!ready)
		return SKIP("lab not up");
	memcpy(master.key, KEY, master.len);
	if (!ASSERT_OK(aibl_key__derive(&master, "n1", &k1), "derive n1") ||
	    !ASSERT_OK(aibl_key__derive(&master, "n2", &k2), "derive n2"))
		return;
	ASSERT_EQ(post_signed(url, body, NULL), 401, "unsigned load refused");
	ASSERT_OK(aibl_auth__nonce(nonce, sizeof(nonce)), "nonce");
	ASSERT_OK(aibl_auth__sign_req(&k2, t, nonce, AIBL_AUTH_REQ_LOAD "m1", sig, sizeof(sig)),
		  "sign n2");
	ASSERT_EQ(post_signed(url, body, sig), 401, "another node's key refused");
	ASSERT_OK(aibl_auth__sign_req(&k1, t, nonce, AIBL_AUTH_REQ_LOAD "m2", sig, sizeof(sig)),
		  "sign m2");
	ASSERT_EQ(post_signed(url, body, sig), 401, "signed for another model refused");
	ASSERT_OK(aibl_auth__sign_req(&k1, t, nonce, AIBL_AUTH_REQ_REPORT, sig, sizeof(sig)),
		  "sign report");
	ASSERT_EQ(post_signed(url, body, sig), 401, "a report request's signature refused");
	ASSERT_OK(aibl_auth__sign_req(&k1, t, nonce, AIBL_AUTH_REQ_LOAD "m1", sig, sizeof(sig)),
		  "sign m1");
	ASSERT_EQ(post_signed(url, body, sig), 200, "signed load of a resident model: 200");
	ASSERT_EQ(post_signed(url, body, sig), 401, "the same signature again refused (replay)");
	ASSERT_EQ(post_signed(url, "{\"model\": 5}", NULL), 401, "auth before anything else");
	ASSERT_TRUE(alive(agents[0]), "agent n1 alive");
}

/* m2 resident on n2's second engine (aibl-simnode /v1/models), -1 no answer */
static int m2_on_n2(void)
{
	char *body = NULL;
	json_t *j, *m;
	size_t i;
	int ret = -1;

	if (http("GET", "http://127.0.0.1:19104/v1/models", NULL, &body) != 200)
		goto out;
	j = json_loads(body, 0, NULL);
	ret = 0;
	json_array_foreach(json_object_get(j, "data"), i, m)
	{
		if (!strcmp(json_string_value(json_object_get(m, "id")) ?: "", "m2"))
			ret = json_is_true(json_object_get(m, "resident"));
	}
	json_decref(j);
out:
	free(body);
	return ret;
}

/* a connection in aibl_conns from 10.97.0.SRC:port to vip:vport at node's backend */
static int conn_put(int fd, int src, __u16 port, const char *vip, __u16 vport, const char *node,
		    __u32 flags, struct aibl_flow_key *fk)
{
	struct aibl_conn cv = {.backend = be_id(node), .flags = flags};
	char a[32];

	memset(fk, 0, sizeof(*fk));
	fk->sport = htons(port);
	fk->dport = htons(vport);
	fk->proto = IPPROTO_TCP;
	fk->family = AIBL_AF_INET;
	snprintf(a, sizeof(a), "10.97.0.%d", src);
	inet_pton(AF_INET, a, &fk->src.v4);
	inet_pton(AF_INET, vip, &fk->dst.v4);
	return bpf_map_update_elem(fd, fk, &cv, BPF_ANY);
}

/* GET /v1/nodes/n2/load until the agent's state has what (substring of its
 * JSON), at most ms; the agent's object then in *out (decref) */
static bool n2_load_until(const char *what, int ms, json_t **out)
{
	char *body = NULL, *txt = NULL;
	json_t *j = NULL;
	bool ok = false;

	for (double t0 = now_ms(), n = 0; !ok; usleep(50000), n++) {
		if (n && now_ms() - t0 >= ms)
			break; /* one look at least */
		json_decref(j);
		free(body);
		free(txt);
		body = txt = NULL;
		j = NULL;
		if (http("GET", API "/v1/nodes/n2/load", TOKEN, &body) != 200)
			continue;
		j = body ? json_loads(body, 0, NULL) : NULL;
		txt = json_dumps(json_object_get(j, "agent"), JSON_COMPACT);
		ok = txt && strstr(txt, what);
	}
	*out = json_incref(json_object_get(j, "agent"));
	json_decref(j);
	free(body);
	free(txt);
	return ok;
}

/*
 * An operator unloads a model through the API (aiblctl node unload): aibld
 * passes it to the node's agent, signed with that node's key (the agents
 * here take only signed requests, so a 202 is a signature taken), and
 * passes the agent's answer back; GET .../load follows the drain to its
 * end. Refused without the token, for an unknown node, without a model,
 * with a bad drain_timeout_ms. aibl_conns holds a connection of m2's
 * service (code) at n2, as a kept-alive client's: the agent's drain waits
 * for it, as aibld counts it on its polls (X-Aibl-Open-Flows), and not for
 * the one at n1, the web service's at n2 or a closing one; once it
 * closes, the agent unloads. n2's m2 is loaded again afterwards.
 */
#define M63 "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
#define M64 M63 "m"

static void unload_api(void)
{
	const char *url = API "/v1/nodes/n2/unload?model=m2&drain_timeout_ms=20000";
	struct aibl_flow_key kept, other[3];
	char *body = NULL, *unl = NULL;
	json_t *j = NULL, *a = NULL, *n;
	size_t i;
	int fd;

	if (!ready)
		return SKIP("lab not ready");
	ASSERT_EQ(http("POST", url, NULL, NULL), 401, "no token");
	ASSERT_EQ(http("POST", API "/v1/nodes/n2/unload", TOKEN, NULL), 400, "no model");
	ASSERT_EQ(http("POST", API "/v1/nodes/n2/unload?model=m%202", TOKEN, NULL), 400,
		  "a space in the model");
	/* not a name aibld can hold or pass on: 400, not the agent's 502 */
	ASSERT_EQ(http("POST", API "/v1/nodes/n2/unload?model=m%C3", TOKEN, NULL), 400,
		  "a byte that is no text");
	/* a name as long as an agent reports (a LoRA adapter, a hub id) is
	 * passed on: this one is resident nowhere, nothing to unload */
	ASSERT_EQ(http("POST", API "/v1/nodes/n2/unload?model=" M64 M63, TOKEN, NULL), 200,
		  "127 characters: the agent's answer");
	ASSERT_EQ(http("POST", API "/v1/nodes/n2/unload?model=" M64 M64, TOKEN, NULL), 400,
		  "128 characters");
	ASSERT_EQ(http("POST", API "/v1/nodes/nope/unload?model=m2", TOKEN, NULL), 404,
		  "unknown node");
	ASSERT_EQ(http("GET", url, TOKEN, NULL), 405, "GET refused");
	ASSERT_EQ(http("POST", API "/v1/nodes/n2/unload?model=m2&drain_timeout_ms=5s", TOKEN, NULL),
		  400, "drain_timeout_ms not a number");
	ASSERT_EQ(
	    http("POST", API "/v1/nodes/n2/unload?model=m2&drain_timeout_ms=3600001", TOKEN, NULL),
	    400, "drain_timeout_ms over an hour");
	fd = map_fd(AIBL_MAP_CONNS);
	if (!ASSERT_OK(conn_put(fd, 20, 41000, "10.99.0.4", 19083, "n2", 0, &kept),
		       "a kept-alive connection of m2 at n2") ||
	    !ASSERT_OK(conn_put(fd, 21, 41001, "10.99.0.4", 19083, "n1", 0, &other[0]), "at n1") ||
	    !ASSERT_OK(conn_put(fd, 22, 41002, "10.99.0.1", 19080, "n2", 0, &other[1]),
		       "web's at n2") ||
	    !ASSERT_OK(
		conn_put(fd, 23, 41003, "10.99.0.4", 19083, "n2", AIBL_CONN_F_CLOSING, &other[2]),
		"a closing one"))
		goto out;
	ASSERT_EQ(http("GET", API "/v1/nodes/n2/load", NULL, NULL), 401, "load state: no token");
	ASSERT_EQ(m2_on_n2(), 1, "m2 on n2's engine before");
	ASSERT_EQ(http("POST", url, TOKEN, &body), 202, "unload asked: the agent's 202");
	j = body ? json_loads(body, 0, NULL) : NULL;
	ASSERT_STREQ(json_string_value(json_object_get(j, "node")), "n2", "reply node");
	ASSERT_EQ(json_integer_value(json_object_get(j, "agent_status")), 202, "agent_status");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(j, "agent"), "model")), "m2",
		     "the agent's answer");
	json_decref(j);
	j = NULL;
	ASSERT_TRUE(n2_load_until("\"open_flows\":1", 5000, &a), "the agent waits for 1 open");
	json_decref(a);
	usleep(1500000);
	ASSERT_TRUE(n2_load_until("\"draining\":true", 0, &a), "still draining 1.5 s later");
	json_decref(a);
	ASSERT_EQ(m2_on_n2(), 1, "m2 on n2's engine while it is open");
	/* what the operator sees: status and metrics */
	j = status();
	json_array_foreach(json_object_get(j, "nodes"), i, n)
	{
		if (!strcmp(json_string_value(json_object_get(n, "name")), "n2"))
			unl = json_dumps(json_object_get(n, "unloading"), JSON_COMPACT);
	}
	ASSERT_STREQ(unl ? unl : "(none)", "{\"model\":\"m2\",\"open_flows\":1}",
		     "status: n2 drains m2, 1 open here");
	json_decref(j);
	j = NULL;
	free(body);
	body = NULL;
	http("GET", API "/metrics", NULL, &body);
	ASSERT_TRUE(body &&
			strstr(body, "aibl_node_unload_open_flows{node=\"n2\",model=\"m2\"} 1\n"),
		    "metrics: the same");
	ASSERT_OK(bpf_map_delete_elem(fd, &kept), "the connection closes");
	ASSERT_TRUE(n2_load_until("\"busy\":false", 8000, &a),
		    "the agent drained and unloaded within 8 s");
	ASSERT_STREQ(json_string_value(json_object_get(a, "op")), "unload", "op");
	ASSERT_EQ(json_integer_value(json_object_get(a, "status")), 200, "the engine's 200");
	ASSERT_EQ(json_integer_value(json_object_get(a, "open_flows")), 0, "none open at the end");
	ASSERT_TRUE(json_is_false(json_object_get(a, "open_timed_out")), "no timeout");
	ASSERT_EQ(m2_on_n2(), 0, "m2 gone from n2's engine");
	ASSERT_EQ(http_req("POST", "http://127.0.0.1:19104/v1/load_lora_adapter", NULL,
			   "{\"lora_name\":\"m2\"}", NULL),
		  200, "m2 loaded again");
	ASSERT_TRUE(alive(agents[1]), "agent n2 alive");
out:
	for (int i = 0; i < 3; i++)
		bpf_map_delete_elem(fd, &other[i]);
	bpf_map_delete_elem(fd, &kept);
	close(fd);
	json_decref(a);
	json_decref(j);
	free(body);
	free(unl);
}

struct forward {
	int status; /* -1 until the forward's answer came */
};

static void *forward_silent(void *arg)
{
	struct forward *f = arg;
	int st = http("POST", API "/v1/nodes/bad-silent/unload?model=m1", TOKEN, NULL);

	__atomic_store_n(&f->status, st, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * An unload passed to an agent that never answers holds one of the API's
 * threads for up to 2 s; the API still answers others meanwhile (an
 * operator's status, Prometheus' scrape), and the forward then fails with
 * 502 naming the agent.
 */
static void api_answers_during_forward(void)
{
	struct forward f = {.status = -1};
	pthread_t t;

	if (!ready)
		return SKIP("lab not ready");
	if (!ASSERT_OK(pthread_create(&t, NULL, forward_silent, &f), "forward thread"))
		return;
	usleep(300000);
	ASSERT_EQ(http("GET", API "/v1/status", NULL, NULL), 200, "status answered");
	ASSERT_EQ(http("GET", API "/metrics", NULL, NULL), 200, "metrics answered");
	ASSERT_EQ(__atomic_load_n(&f.status, __ATOMIC_ACQUIRE), -1,
		  "while the forward to the silent agent still waits");
	pthread_join(t, NULL);
	ASSERT_EQ(f.status, 502, "the silent agent: 502");
}

static void lab_up(void)
{
	if (!test__can_bpf())
		return SKIP("needs root");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ready = setup();
}

static void lab_down(void)
{
	teardown();
}

static const struct test_case cases[] = {
    {"lab_up", lab_up},
    {"maps_reflect_config", maps_reflect_config},
    {"bad_agents_unhealthy", bad_agents_unhealthy},
    {"breaker_down_up", breaker_down_up},
    {"metrics_and_status", metrics_and_status},
    {"affinity_follows_reuse", affinity_follows_reuse},
    {"affinity_per_engine", affinity_per_engine},
    {"drain_api", drain_api},
    {"agent_load_signed", agent_load_signed},
    {"unload_api", unload_api},
    {"api_answers_during_forward", api_answers_during_forward},
    {"reload_keeps_weights", reload_keeps_weights},
    {"sighup", sighup},
    {"new_node_pending", new_node_pending},
    {"check", check_cmd},
    {"interface_recreated", interface_recreated},
    {"restart_keeps_flows", restart_keeps_flows},
    {"teardown", teardown_cmd},
    {"lab_down", lab_down},
};

TEST_MAIN("aibld", cases)
