// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Security properties that are not one component's feature: what the data
 * plane leaves in bpffs and where it refuses to pin.
 *
 * /sys/fs/bpf is often mode 1777. Pins are reused by the next load, so a
 * pin directory another user owns or may write to would let them remove
 * the pins (and the connection table with them) or plant their own.
 *
 * Signed hint posts carry no nonce the agent chose, so the agent refuses a
 * signature it has already accepted within the window (replay).
 * Agent port 22102.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include "test.h"
#include "auth.h"
#include "../../user/aibld/dataplane.h"
#include "bpfutil.h"
#include "log.h"

static char dir[64];

static void rm_dir(void)
{
	dp__teardown(dir);
	rmdir(dir);
}

/* every pin and the directory: owned by us, not writable by group/others */
static void bpffs_modes(void)
{
	struct dp_opts o = {.pin_dir = dir};
	struct dp *dp = NULL;
	struct dirent *e;
	struct stat sb;
	int entries = 0;
	DIR *d;

	if (!test__can_bpf())
		return SKIP("needs root");
	rm_dir();
	/* the program pinned as it is once attached (dp__attach) */
	if (!ASSERT_OK(dp__open_load(&o, &dp), "load") || !ASSERT_OK(dp__pin_prog(dp), "pin"))
		goto out;
	if (!ASSERT_OK(stat(dir, &sb), "stat dir"))
		goto out;
	ASSERT_EQ(sb.st_mode & 0077, 0, "pin directory private (0700)");
	ASSERT_EQ(sb.st_uid, geteuid(), "pin directory ours");
	d = opendir(dir);
	if (!ASSERT_OK_PTR(d, "opendir"))
		goto out;
	while ((e = readdir(d))) {
		char p[512];

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (!ASSERT_OK(stat(p, &sb), p))
			continue;
		entries++;
		if (sb.st_mode & 0022)
			printf("  %s: mode %03o\n", e->d_name, sb.st_mode & 0777);
		ASSERT_EQ(sb.st_mode & 0022, 0, "pin not writable by group/others");
	}
	closedir(d);
	ASSERT_GE(entries, 16, "maps and program pinned");
out:
	dp__close(dp);
	rm_dir();
}

/* a pin directory prepared by someone else is refused, nothing pinned in it */
static void bpffs_foreign_dir(void)
{
	struct dp_opts o = {.pin_dir = dir};
	struct dp *dp = NULL;
	char prog[256];

	if (!test__can_bpf())
		return SKIP("needs root");
	rm_dir();
	snprintf(prog, sizeof(prog), "%s/%s", dir, AIBL_PIN_PROG);
	if (!ASSERT_OK(mkdir(dir, 0700), "mkdir") || !ASSERT_OK(chmod(dir, 0777), "chmod 777"))
		goto out;
	ASSERT_EQ(dp__open_load(&o, &dp), -EPERM, "world-writable directory refused");
	ASSERT_NEQ(access(prog, F_OK), 0, "nothing pinned there");
	dp__close(dp);
	dp = NULL;
	/* private mode, but another user's */
	if (!ASSERT_OK(chmod(dir, 0700), "chmod 700") ||
	    !ASSERT_OK(chown(dir, 65534, 65534), "chown"))
		goto out;
	ASSERT_EQ(dp__open_load(&o, &dp), -EPERM, "another user's directory refused");
	ASSERT_NEQ(access(prog, F_OK), 0, "nothing pinned there");
	dp__close(dp);
	dp = NULL;
	/* ours again: fine */
	if (!ASSERT_OK(chown(dir, geteuid(), getegid()), "chown back"))
		goto out;
	ASSERT_OK(dp__open_load(&o, &dp), "own private directory accepted");
out:
	dp__close(dp);
	rm_dir();
}

/* the guard remembers parsed signatures: what aibl_auth__parse made of hdr */
static bool seen(struct aibl_replay *r, const char *hdr, uint64_t now)
{
	struct aibl_sig s;

	if (!ASSERT_OK(aibl_auth__parse(hdr, &s, NULL), "parse"))
		return false;
	return aibl_replay__seen(r, &s, now, 30);
}

static void replay_guard(void)
{
	static struct aibl_replay r;
	struct aibl_key k = {.len = 24};
	char h1[AIBL_AUTH_HDR_MAX], h2[AIBL_AUTH_HDR_MAX];

	memcpy(k.key, "a-long-enough-shared-key", 24);
	aibl_replay__init(&r);
	ASSERT_OK(aibl_auth__sign(&k, 1000, NULL, "{}", 2, h1, sizeof(h1)), "sign");
	ASSERT_OK(aibl_auth__sign(&k, 1001, NULL, "{}", 2, h2, sizeof(h2)), "sign");
	ASSERT_FALSE(seen(&r, h1, 1000), "first use");
	ASSERT_TRUE(seen(&r, h1, 1010), "same signature again: replay");
	ASSERT_FALSE(seen(&r, h2, 1010), "same body, new timestamp: fresh");
	/* older than the window: verify() refuses it anyway, the guard forgets */
	ASSERT_FALSE(seen(&r, h1, 1031), "outside the window");
	/* the guard holds AIBL_REPLAY_SLOTS signatures */
	for (int i = 0; i < AIBL_REPLAY_SLOTS; i++) {
		char h[AIBL_AUTH_HDR_MAX];

		aibl_auth__sign(&k, 2000, NULL, &i, sizeof(i), h, sizeof(h));
		if (!ASSERT_FALSE(seen(&r, h, 2000), "distinct"))
			break;
	}
	aibl_auth__sign(&k, 2000, NULL, &(int){AIBL_REPLAY_SLOTS - 1}, sizeof(int), h1, sizeof(h1));
	ASSERT_TRUE(seen(&r, h1, 2000), "the newest is still remembered");
}

static size_t discard(char *d, size_t s, size_t n, void *ud)
{
	return s * n;
}

static long post_hints(const char *body, const char *sig)
{
	struct curl_slist *h = NULL;
	char hdr[AIBL_AUTH_HDR_MAX + 32];
	long status = -1;
	CURL *c = curl_easy_init();

	if (!c)
		return -1;
	snprintf(hdr, sizeof(hdr), "%s: %s", AIBL_AUTH_HEADER, sig);
	h = curl_slist_append(h, hdr);
	curl_easy_setopt(c, CURLOPT_URL, "http://127.0.0.1:22102/v1/hints");
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return status;
}

/* a running agent with a key takes a signed hint post once */
static void hints_replay_refused(void)
{
	const char *b = getenv("AIBL_BUILD");
	static const char body[] =
	    "{\"hints\":[{\"client\":\"10.9.9.9\",\"model\":\"m1\",\"ttl_ms\":60000}]}";
	char bin[512], kpath[] = "/tmp/aibl-rs-key-XXXXXX", sig[AIBL_AUTH_HDR_MAX];
	struct aibl_key k = {.len = 32};
	long st = -1;
	pid_t pid;
	int fd;

	snprintf(bin, sizeof(bin), "%s/aibl-agent", b ? b : "build");
	if (access(bin, X_OK))
		return SKIP("build aibl-agent first");
	memcpy(k.key, "rs-replay-test-key-0123456789abc", 32);
	fd = mkstemp(kpath);
	if (!ASSERT_TRUE(fd >= 0, "mkstemp") ||
	    !ASSERT_EQ(write(fd, k.key, k.len), (ssize_t)k.len, "key"))
		return;
	close(fd);
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);

		dup2(nul, 1);
		dup2(nul, 2);
		execl(bin, bin, "--listen", "127.0.0.1:22102", "--name", "rs-sec", "--model-server",
		      "http://127.0.0.1:22199", "--no-nvml", "--key", kpath, (char *)NULL);
		_exit(127);
	}
	aibl_auth__sign(&k, (uint64_t)time(NULL), NULL, body, strlen(body), sig, sizeof(sig));
	for (int i = 0; i < 100 && st < 0; i++) {
		usleep(50000);
		st = post_hints(body, sig);
	}
	ASSERT_EQ(st, 200, "signed hints accepted");
	ASSERT_EQ(post_hints(body, sig), 401, "the same signed post again: refused");
	aibl_auth__sign(&k, (uint64_t)time(NULL) + 1, NULL, body, strlen(body), sig, sizeof(sig));
	ASSERT_EQ(post_hints(body, sig), 200, "signed afresh: accepted");
	/* what the agent signs a report with: the poll's nonce, the same key */
	aibl_auth__sign(&k, (uint64_t)time(NULL), "poll-nonce-1", body, strlen(body), sig,
			sizeof(sig));
	ASSERT_EQ(post_hints(body, sig), 401, "a report's signature is no hint post's");
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(kpath);
}

static const struct test_case cases[] = {
    {"replay_guard", replay_guard},
    {"hints_replay_refused", hints_replay_refused},
    {"bpffs_modes", bpffs_modes},
    {"bpffs_foreign_dir", bpffs_foreign_dir},
};

int main(int argc, char **argv)
{
	log_setup_libbpf(getenv("AIBL_TEST_VERBOSE") != NULL);
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/aibl-t-rs-%d", getpid());
	return test__main(argc, argv, "security", cases, sizeof(cases) / sizeof(cases[0]));
}
