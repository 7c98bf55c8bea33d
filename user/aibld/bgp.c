// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* VIP announcement through BIRD: see bgp.h */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <time.h>
#include <sys/wait.h>
#include "bgp.h"
#include "clock.h"
#include "log.h"

/* birdc answers in milliseconds; one stuck on a wedged control socket is
 * killed after this, and the controller loop does not wait for it
 * (bgp__reap without wait: its lease, its polls go on) */
#define BGP_BIRDC_TIMEOUT_MS 3000

char *bgp__render(const char *const *vips, int n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "# written by aibld (cluster mode): the VIPs this balancer announces now\n");
	for (int fam = 4; fam <= 6; fam += 2) {
		fprintf(f, "protocol static aibl_vips%d {\n\tipv%d;\n", fam, fam);
		for (int i = 0; i < n; i++)
			if (!strchr(vips[i], ':') == (fam == 4))
				fprintf(f, "\troute %s/%d blackhole;\n", vips[i],
					fam == 4 ? 32 : 128);
		fprintf(f, "}\n");
	}
	fclose(f);
	return buf;
}

static int write_file(const char *path, const char *text)
{
	char tmp[CFG_PATH_LEN + 8];
	size_t n = strlen(text);
	int fd, err = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	/* BIRD, another user, reads it: 0644 whatever the umask (the
	 * unit's is 0077); a list of VIPs, which the routers see anyway */
	if (fchmod(fd, 0644))
		err = -errno;
	if (!err && write(fd, text, n) != (ssize_t)n)
		err = -EIO;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

int bgp__start(const struct cfg_bgp *cfg, const char *text, pid_t *pid)
{
	int err = write_file(cfg->include, text), fd;

	if (err) {
		pr_warn("bgp: write %s: %s", cfg->include, strerror(-err));
		return err;
	}
	*pid = fork();
	if (*pid < 0) {
		err = -errno;
		pr_warn("bgp: fork %s: %s", cfg->birdc, strerror(-err));
		return err;
	}
	if (*pid == 0) {
		fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
		}
		execlp(cfg->birdc, cfg->birdc, "-s", cfg->bird_socket, "configure", (char *)NULL);
		_exit(127);
	}
	return 0;
}

int bgp__reap(const struct cfg_bgp *cfg, pid_t pid, uint64_t started_ms, bool wait)
{
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		struct timespec ts = {0, 5 * 1000 * 1000};

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (clock_mono_ms() >= started_ms + BGP_BIRDC_TIMEOUT_MS) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			pr_warn("bgp: %s -s %s configure did not answer in %d ms: killed",
				cfg->birdc, cfg->bird_socket, BGP_BIRDC_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		if (!wait)
			return 1;
		nanosleep(&ts, NULL);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		pr_warn("bgp: %s -s %s configure failed (exit %d)", cfg->birdc, cfg->bird_socket,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	return 0;
}

int bgp__apply(const struct cfg_bgp *cfg, const char *text)
{
	uint64_t t0 = clock_mono_ms();
	pid_t pid;
	int err = bgp__start(cfg, text, &pid);

	return err ?: bgp__reap(cfg, pid, t0, true);
}

int bgp__withdraw(const struct cfg_bgp *cfg)
{
	char *t = bgp__render(NULL, 0);
	int err = t ? bgp__apply(cfg, t) : -ENOMEM;

	free(t);
	return err;
}
