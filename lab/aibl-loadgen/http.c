// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The plain HTTP workload: short GET requests, each on a new TCP connection
 * (new-connection rate) or on kept-alive connections (request rate), either
 * at a fixed offered rate (open loop: request k is due at k / rate; its
 * latency counts from when it was due, so a stalled server is not hidden by
 * the generator waiting for it) or at saturation (closed loop: --conns
 * transfers always in flight). Records the node that answered (X-Aibl-Node)
 * so tests can check the spread, and on kept-alive connections whether a
 * connection had to be re-opened (a balancer that broke it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <curl/curl.h>
#include "loadgen.h"
#include "log.h"

struct lg_hx {
	CURL *h;
	bool busy, used;
	double t_due, t0;
	char node[LG_NAME_LEN];
	char errbuf[CURL_ERROR_SIZE];
	char iface[INET6_ADDRSTRLEN + 8];
	uint32_t idx;
};

static size_t lg_hx_header(char *b, size_t size, size_t n, void *ud)
{
	struct lg_hx *x = ud;
	size_t len = size * n;

	if (len > 12 && !strncasecmp(b, "X-Aibl-Node:", 12)) {
		size_t k = len - 12;

		b += 12;
		while (k && (*b == ' ' || *b == '\t'))
			b++, k--;
		while (k && (b[k - 1] == '\r' || b[k - 1] == '\n' || b[k - 1] == ' '))
			k--;
		if (k >= sizeof(x->node))
			k = sizeof(x->node) - 1;
		memcpy(x->node, b, k);
		x->node[k] = '\0';
	}
	return len;
}

static size_t lg_hx_discard(char *b, size_t size, size_t n, void *ud)
{
	return size * n;
}

static int lg_hx_start(const struct lg_http_cfg *cfg, CURLM *multi, struct lg_hx *x, uint64_t k,
		       double due)
{
	const char *base = cfg->c.targets[k % cfg->c.ntargets];
	char url[LG_URL_LEN * 2];

	snprintf(url, sizeof(url), "%s%s", base, cfg->path);
	if (!x->h) {
		x->h = curl_easy_init();
		if (!x->h)
			return -ENOMEM;
		/* kept-alive connections keep their client address; new
		 * connections take the next address each time */
		lg_addrs__interface(&cfg->c.src, lg_url_family(base), x->idx, x->iface,
				    sizeof(x->iface));
		lg_curl_common(x->h, &cfg->c, x->iface, x->errbuf);
		curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, lg_hx_header);
		curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
		curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, lg_hx_discard);
		curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	}
	if (!cfg->c.keepalive) {
		lg_addrs__interface(&cfg->c.src, lg_url_family(base), k, x->iface,
				    sizeof(x->iface));
		if (x->iface[0])
			curl_easy_setopt(x->h, CURLOPT_INTERFACE, x->iface);
	}
	curl_easy_setopt(x->h, CURLOPT_URL, url);
	snprintf(x->node, sizeof(x->node), "-");
	x->errbuf[0] = '\0';
	x->t_due = due;
	x->t0 = clock_mono_msf();
	if (curl_multi_add_handle(multi, x->h) != CURLM_OK)
		return -EIO;
	x->busy = true;
	return 0;
}

static int lg_hx_done(const struct lg_http_cfg *cfg, struct lg_run *run, struct lg_hx *x,
		      CURLcode res, double t_run0)
{
	struct lg_sample smp = {0};
	long status = 0, conns = 0;
	int node;

	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &conns);
	node = lg_names__intern(&run->nodes, x->node);
	if (node < 0)
		return node;
	smp.t_start_ms = x->t0 - t_run0;
	smp.e2e_ms = clock_mono_msf() - (cfg->rate > 0 ? x->t_due : x->t0);
	smp.ttft_ms = -1;
	smp.node = node;
	smp.session = x->idx;
	smp.status = res == CURLE_OK ? status : 0;
	smp.ok = res == CURLE_OK && status >= 200 && status < 300;
	/* a kept-alive handle that had to connect again lost its connection */
	smp.reconnect = cfg->c.keepalive && x->used && conns > 0;
	if (!smp.ok && !run->first_error[0])
		snprintf(run->first_error, sizeof(run->first_error), "%s",
			 res != CURLE_OK ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(res))
					 : "HTTP status not 2xx");
	x->used = true;
	x->busy = false;
	return lg_samples__add(&run->samples, &smp);
}

int lg_http__run(const struct lg_http_cfg *cfg, struct lg_run *run)
{
	struct lg_hx *xs = calloc(cfg->conns, sizeof(*xs));
	CURLM *multi = curl_multi_init();
	/* wakes the loop at the next start (fixed rate); without it 1 ms steps */
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct lg_progress prog;
	double t0, now, due, wait;
	size_t inflight = 0;
	uint64_t k = 0;
	bool stop = false;
	int err = 0, running;
	uint32_t i, cur = 0;
	CURLMsg *msg;

	run->mode = "http";
	if (!xs || !multi) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < cfg->conns; i++)
		xs[i].idx = i;
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)cfg->conns * 2);
	t0 = clock_mono_msf();
	run->start_unix_ms = clock_wall_msf();
	lg_progress__init(&prog, cfg->c.progress, t0);
	for (;;) {
		now = clock_mono_msf();
		if ((cfg->c.duration_s > 0 && now - t0 >= cfg->c.duration_s * 1e3) ||
		    (cfg->c.max_requests && k >= cfg->c.max_requests))
			stop = true;
		/* start what is due on free handles, taking them in turn so that
		 * every kept-alive connection carries its share */
		for (i = 0; !stop && i < cfg->conns; i++) {
			struct lg_hx *x = &xs[cur];

			due = cfg->rate > 0 ? t0 + k * 1e3 / cfg->rate : now;
			if (!x->busy && due > now)
				break; /* this handle takes the next request when due */
			cur = (cur + 1) % cfg->conns;
			if (x->busy)
				continue;
			if (now - due > 10)
				run->late++;
			err = lg_hx_start(cfg, multi, x, k, due);
			if (err)
				goto out;
			k++;
			inflight++;
			if (cfg->c.max_requests && k >= cfg->c.max_requests)
				break;
		}
		run->started = k;
		if (stop && !inflight)
			break;
		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &running))) {
			struct lg_hx *x;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			curl_multi_remove_handle(multi, x->h);
			inflight--;
			err = lg_hx_done(cfg, run, x, msg->data.result, t0);
			if (err)
				goto out;
		}
		now = clock_mono_msf();
		lg_progress__update(&prog, now, run, inflight, false);
		if (cfg->rate > 0) {
			wait = t0 + k * 1e3 / cfg->rate - now;
			if (wait > 50)
				wait = 50;
		} else {
			wait = inflight < cfg->conns ? 0 : 50;
		}
		/* at a fixed rate the next start is often < 1 ms away: sleep
		 * until it on a timerfd (poll's own timeout has 1 ms steps,
		 * which latencies from the due time would include) rather
		 * than spin, which took a whole core of a small machine */
		if (cfg->rate > 0 && wait > 0 && tfd >= 0) {
			double at = t0 + k * 1e3 / cfg->rate;
			struct itimerspec its = {
			    .it_value = {.tv_sec = (time_t)(at / 1e3),
					 .tv_nsec = (long)(fmod(at, 1e3) * 1e6)},
			};
			struct curl_waitfd wfd = {.fd = tfd, .events = CURL_WAIT_POLLIN};
			uint64_t fired;

			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
			curl_multi_poll(multi, &wfd, 1, (int)wait + 1, NULL);
			if (read(tfd, &fired, sizeof(fired)) < 0 && errno != EAGAIN)
				pr_debug("timerfd read: %s\n", strerror(errno));
		} else if (wait > 0 || inflight == cfg->conns) {
			curl_multi_poll(multi, NULL, 0, wait < 1 ? 1 : (int)wait, NULL);
		}
	}
	run->wall_s = (clock_mono_msf() - t0) / 1e3;
	lg_progress__update(&prog, clock_mono_msf(), run, 0, true);
out:
	if (xs) {
		for (i = 0; i < cfg->conns; i++) {
			if (!xs[i].h)
				continue;
			if (xs[i].busy)
				curl_multi_remove_handle(multi, xs[i].h);
			curl_easy_cleanup(xs[i].h);
		}
	}
	if (multi)
		curl_multi_cleanup(multi);
	if (tfd >= 0)
		close(tfd);
	free(xs);
	if (err)
		pr_err("http workload: %s\n", strerror(-err));
	return err;
}
