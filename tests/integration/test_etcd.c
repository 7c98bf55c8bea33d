// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The etcd client's watch (user/aibld/etcd.c) against a real etcd started
 * here on loopback (free ports, a data dir under /tmp): what the planner
 * takeover rests on (docs/cluster.md). etcd__watch_absent returns at once
 * for an absent key, blocks while the key stays (a put does not wake it),
 * returns when the key is deleted or its lease revoked, and returns
 * -ECANCELED when stopped from another thread; etcd__watch_sleep wakes on
 * the stop; a watch whose etcd goes away returns an error, not 0, and does
 * not hang; a compaction keeps the keys. Skipped when no etcd binary is installed (scripts/deps.sh:
 * etcd-server).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "test.h"
#include "../../user/aibld/etcd.h"

static pid_t etcd_pid;
static char etcd_url[64], etcd_dir[64];
static bool etcd_tried, etcd_ok;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* a loopback port nobody listens on now */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static void etcd_stop(void)
{
	int status;

	if (etcd_pid > 0) {
		kill(etcd_pid, SIGTERM);
		for (int i = 0; i < 300 && waitpid(etcd_pid, &status, WNOHANG) != etcd_pid; i++)
			usleep(10000);
		kill(etcd_pid, SIGKILL);
		waitpid(etcd_pid, &status, 0);
		etcd_pid = 0;
	}
	if (etcd_dir[0]) {
		char cmd[96];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", etcd_dir);
		if (system(cmd))
			fprintf(stderr, "could not remove %s\n", etcd_dir);
		etcd_dir[0] = 0;
	}
}

/* one etcd for every case, started by the first; false (skipped) without one */
static bool etcd_up(void)
{
	char peer[64], client[64], name[32];
	struct etcd *e;

	if (etcd_tried) {
		if (!etcd_ok)
			SKIP("no etcd");
		return etcd_ok;
	}
	etcd_tried = true;
	if (system("command -v etcd >/dev/null 2>&1")) {
		SKIP("needs etcd (scripts/deps.sh: etcd-server)");
		return false;
	}
	snprintf(etcd_dir, sizeof(etcd_dir), "/tmp/aibl-test-etcd.XXXXXX");
	if (!ASSERT_TRUE(mkdtemp(etcd_dir) != NULL, "data dir"))
		return false;
	snprintf(client, sizeof(client), "http://127.0.0.1:%d", free_port());
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", free_port());
	snprintf(name, sizeof(name), "t%d", (int)getpid());
	snprintf(etcd_url, sizeof(etcd_url), "%s", client);
	atexit(etcd_stop);
	etcd_pid = fork();
	if (etcd_pid == 0) {
		char cluster[128];
		int fd = open("/dev/null", O_WRONLY);

		snprintf(cluster, sizeof(cluster), "%s=%s", name, peer);
		if (fd >= 0 && !getenv("AIBL_TEST_VERBOSE")) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("etcd", "etcd", "--name", name, "--data-dir", etcd_dir,
		       "--listen-client-urls", client, "--advertise-client-urls", client,
		       "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		       "--initial-cluster", cluster, "--log-level", "error", (char *)NULL);
		_exit(127);
	}
	if (!ASSERT_TRUE(etcd_pid > 0, "fork"))
		return false;
	if (!ASSERT_OK(etcd__open(etcd_url, 500, &e), "client"))
		return false;
	for (int i = 0; i < 200 && !etcd_ok; i++) {
		struct etcd_kv *kvs;
		int n;

		etcd_ok = !etcd__range(e, "/probe", &kvs, &n, NULL);
		if (etcd_ok)
			etcd__kvs_free(kvs, n);
		else
			usleep(50000);
	}
	etcd__close(e);
	return ASSERT_TRUE(etcd_ok, "etcd answers within 10 s");
}

struct watcher {
	struct etcd_watch *w;
	const char *key;
	pthread_t tid;
	int ret;
	double done_ms;
	bool done;
};

static void *watch_run(void *arg)
{
	struct watcher *x = arg;

	x->ret = etcd__watch_absent(x->w, x->key);
	x->done_ms = now_ms();
	__atomic_store_n(&x->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static bool watch_start(struct watcher *x, const char *key)
{
	memset(x, 0, sizeof(*x));
	x->key = key;
	if (!ASSERT_OK(etcd__watch_open(etcd_url, 500, &x->w), "watch open"))
		return false;
	return ASSERT_OK(pthread_create(&x->tid, NULL, watch_run, x), "thread");
}

static bool watch_done(struct watcher *x)
{
	return __atomic_load_n(&x->done, __ATOMIC_ACQUIRE);
}

/* wait up to ms for the watch to return; it is stopped and joined either way */
static bool watch_end(struct watcher *x, int ms)
{
	bool done;

	for (int i = 0; i < ms / 10 && !watch_done(x); i++)
		usleep(10000);
	done = watch_done(x);
	etcd__watch_stop(x->w);
	pthread_join(x->tid, NULL);
	etcd__watch_close(x->w);
	return done;
}

static void absent_at_once(void)
{
	struct etcd_watch *w;

	if (!etcd_up() || !ASSERT_OK(etcd__watch_open(etcd_url, 500, &w), "watch open"))
		return;
	ASSERT_OK(etcd__watch_absent(w, "/t/absent/never-written"), "absent key: 0 at once");
	etcd__watch_close(w);
}

static void deleted(void)
{
	struct watcher x;
	struct etcd *e;
	double t0;

	if (!etcd_up() || !ASSERT_OK(etcd__open(etcd_url, 500, &e), "client"))
		return;
	if (!ASSERT_OK(etcd__put(e, "/t/del/key", "v1", 0), "put") ||
	    !watch_start(&x, "/t/del/key"))
		goto out;
	usleep(300000);
	ASSERT_FALSE(watch_done(&x), "blocks while the key stays");
	/* a put is no deletion: the watch filters them out */
	ASSERT_OK(etcd__put(e, "/t/del/key", "v2", 0), "put again");
	usleep(300000);
	ASSERT_FALSE(watch_done(&x), "a put does not wake it");
	t0 = now_ms();
	ASSERT_OK(etcd__delete(e, "/t/del/key"), "delete");
	if (ASSERT_TRUE(watch_end(&x, 2000), "returns after the delete")) {
		ASSERT_OK(x.ret, "0: gone");
		printf("  returned %.0f ms after the delete\n", x.done_ms - t0);
	}
out:
	etcd__close(e);
}

/* the planner key's way out when its owner dies: the lease */
static void lease_revoked(void)
{
	struct watcher x;
	struct etcd *e;
	__s64 lease;
	double t0;

	if (!etcd_up() || !ASSERT_OK(etcd__open(etcd_url, 500, &e), "client"))
		return;
	if (!ASSERT_OK(etcd__lease_grant(e, 30, &lease), "lease") ||
	    !ASSERT_OK(etcd__put(e, "/t/lease/planner", "b1", lease), "put on the lease") ||
	    !watch_start(&x, "/t/lease/planner"))
		goto out;
	usleep(200000);
	ASSERT_FALSE(watch_done(&x), "blocks while the lease lives");
	t0 = now_ms();
	ASSERT_OK(etcd__lease_revoke(e, lease), "revoke");
	if (ASSERT_TRUE(watch_end(&x, 2000), "returns after the revoke")) {
		ASSERT_OK(x.ret, "0: gone");
		printf("  returned %.0f ms after the revoke\n", x.done_ms - t0);
	}
	ASSERT_EQ(etcd__lease_keepalive(e, lease), -ENOENT, "the lease is gone");
out:
	etcd__close(e);
}

static void stopped(void)
{
	struct watcher x;
	struct etcd *e;
	double t0;

	if (!etcd_up() || !ASSERT_OK(etcd__open(etcd_url, 500, &e), "client"))
		return;
	if (!ASSERT_OK(etcd__put(e, "/t/stop/key", "v", 0), "put") ||
	    !watch_start(&x, "/t/stop/key"))
		goto out;
	usleep(200000);
	ASSERT_FALSE(watch_done(&x), "blocks while the key stays");
	t0 = now_ms();
	etcd__watch_stop(x.w);
	for (int i = 0; i < 200 && !watch_done(&x); i++)
		usleep(10000);
	if (ASSERT_TRUE(watch_done(&x), "returns after the stop")) {
		ASSERT_EQ(x.ret, -ECANCELED, "-ECANCELED");
		printf("  returned %.0f ms after the stop\n", x.done_ms - t0);
		ASSERT_EQ(etcd__watch_absent(x.w, "/t/absent/never-written"), -ECANCELED,
			  "stopped for good");
		t0 = now_ms();
		ASSERT_EQ(etcd__watch_sleep(x.w, 5000), -ECANCELED, "sleep: -ECANCELED");
		/* at once, not after its 5 s: no latency bound in a pass/fail test */
		ASSERT_LE(now_ms() - t0, 2500.0, "sleep returns once stopped, not after 5 s");
	}
	watch_end(&x, 0);
	etcd__delete(e, "/t/stop/key");
out:
	etcd__close(e);
}

/* last: stops the suite's etcd */
static void etcd_gone(void)
{
	struct watcher x;
	struct etcd *e;

	if (!etcd_up() || !ASSERT_OK(etcd__open(etcd_url, 500, &e), "client"))
		return;
	if (!ASSERT_OK(etcd__put(e, "/t/gone/key", "v", 0), "put") ||
	    !watch_start(&x, "/t/gone/key"))
		goto out;
	usleep(200000);
	ASSERT_FALSE(watch_done(&x), "blocks while the key stays");
	etcd_stop();
	/* the stream ends with etcd's process (the loop then retries at its pace) */
	if (ASSERT_TRUE(watch_end(&x, 5000), "returns when etcd goes away"))
		ASSERT_TRUE(x.ret < 0 && x.ret != -ECANCELED,
			    "an error, not 0: the key was not deleted");
out:
	etcd__close(e);
}

/* the planner's compaction: history before a revision dropped, every key
 * keeps its value; compacting again to an older revision is no error, to
 * a revision not yet reached is */
static void compact(void)
{
	struct etcd_kv *kvs = NULL;
	struct etcd *e;
	__s64 rev = 0;
	int n = 0;

	if (!etcd_up() || !ASSERT_OK(etcd__open(etcd_url, 500, &e), "client"))
		return;
	if (!ASSERT_OK(etcd__put(e, "/t/compact/key", "v1", 0), "put") ||
	    !ASSERT_OK(etcd__put(e, "/t/compact/key", "v2", 0), "put again") ||
	    !ASSERT_OK(etcd__range(e, "/t/compact/", &kvs, &n, &rev), "range"))
		goto out;
	etcd__kvs_free(kvs, n);
	ASSERT_OK(etcd__compact(e, rev), "compact to the store's revision");
	ASSERT_OK(etcd__compact(e, rev - 1), "to an older one: compacted already, 0");
	ASSERT_ERR(etcd__compact(e, rev + 1000), "to a revision not reached: an error");
	if (ASSERT_OK(etcd__range(e, "/t/compact/", &kvs, &n, NULL), "range after") &&
	    ASSERT_EQ(n, 1, "the key kept"))
		ASSERT_STREQ(kvs[0].val, "v2", "its last value");
	etcd__kvs_free(kvs, n);
out:
	etcd__close(e);
}

static const struct test_case cases[] = {
    {"absent_at_once", absent_at_once}, {"deleted", deleted}, {"compact", compact},
    {"lease_revoked", lease_revoked},	{"stopped", stopped}, {"etcd_gone", etcd_gone},
};

TEST_MAIN("etcd", cases)
