// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * See httpguard.h. Every open connection has an entry (MHD's socket
 * context) in one list under the guard's lock: the accept policy counts
 * a source's connections by walking it (a few hundred entries at most,
 * bounded by the limits themselves), the reaper walks it for deadlines.
 * The accept policy adds the entry itself, pending until MHD's STARTED
 * notification takes it: MHD's listener threads accept at once, and an
 * entry added only at STARTED let two of them both admit a source's
 * last allowed connection (17 held for a limit of 16).
 * MHD calls the CLOSED notification before it closes the socket, and the
 * reaper shuts sockets down under the same lock, so the reaper never
 * touches a descriptor MHD has closed (and the kernel may have reused).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include "clock.h"
#include "httpguard.h"
#include "log.h"

#define GUARD_TICK_MS	   100
#define GUARD_LOG_EVERY_MS 10000
/* an accepted connection MHD has not started within this is dropped (MHD
 * may still refuse one after the accept policy, and then says nothing) */
#define GUARD_PENDING_MS 1000

struct guard_conn {
	struct guard_conn *prev, *next;
	struct in6_addr src;
	int fd;
	bool prio, reaped;
	bool pending;	      /* accepted, not started yet: fd unknown */
	uint64_t deadline_ms; /* of its request, or of the pending state */
};

struct http_guard {
	struct http_guard_cfg cfg;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	pthread_t reaper;
	struct guard_conn *conns;
	unsigned int open, open_prio;
	uint64_t refused_total, refused_per_src, reaped;
	/* refusals since the last log line */
	uint64_t log_refused, log_reaped, log_ms;
	uint64_t mhd_log_ms, mhd_log_dropped;
};

int http_guard__add_prio(struct http_guard_cfg *cfg, const char *addr)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (cfg->nprio >= HTTP_GUARD_PRIO_MAX)
		return -E2BIG;
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		memset(&a6, 0, sizeof(a6));
		a6.s6_addr[10] = a6.s6_addr[11] = 0xff;
		memcpy(&a6.s6_addr[12], &a4, 4);
	} else if (inet_pton(AF_INET6, addr, &a6) != 1) {
		return -EINVAL;
	}
	cfg->prio[cfg->nprio++] = a6;
	return 0;
}

static bool guard_src(const struct sockaddr *sa, struct in6_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa && sa->sa_family == AF_INET) {
		out->s6_addr[10] = out->s6_addr[11] = 0xff;
		memcpy(&out->s6_addr[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa && sa->sa_family == AF_INET6) {
		*out = ((const struct sockaddr_in6 *)sa)->sin6_addr;
		return true;
	}
	return false;
}

static bool cfg_is_prio(const struct http_guard_cfg *cfg, const struct in6_addr *a)
{
	for (int i = 0; i < cfg->nprio; i++)
		if (!memcmp(&cfg->prio[i], a, sizeof(*a)))
			return true;
	return false;
}

static bool guard_is_prio(const struct http_guard *g, const struct in6_addr *a)
{
	return cfg_is_prio(&g->cfg, a);
}

bool http_guard__is_prio(const struct http_guard_cfg *cfg, const struct sockaddr *sa)
{
	struct in6_addr a;

	return guard_src(sa, &a) && cfg_is_prio(cfg, &a);
}

static const char *guard_addr_str(const struct in6_addr *a, char *buf, size_t len)
{
	if (IN6_IS_ADDR_V4MAPPED(a))
		return inet_ntop(AF_INET, &a->s6_addr[12], buf, len);
	return inet_ntop(AF_INET6, a, buf, len);
}

bool http_guard__addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	struct in6_addr a;

	return guard_src(sa, &a) && guard_addr_str(&a, buf, len);
}

/* caller holds lock */
static void conn_link(struct http_guard *g, struct guard_conn *c)
{
	if (c->prio)
		g->open_prio++;
	else
		g->open++;
	c->prev = NULL;
	c->next = g->conns;
	if (g->conns)
		g->conns->prev = c;
	g->conns = c;
}

/* caller holds lock */
static void conn_unlink(struct http_guard *g, struct guard_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		g->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->prio)
		g->open_prio--;
	else
		g->open--;
}

/* a new entry for a connection from src, counted; caller holds lock */
static struct guard_conn *conn_add(struct http_guard *g, const struct in6_addr *src)
{
	struct guard_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->src = *src;
	c->fd = -1;
	/* a priority source takes the ordinary share while there is room, so
	 * the reserve is left for when a flood has filled it */
	c->prio = guard_is_prio(g, src) && g->open >= g->cfg.max_conns;
	conn_link(g, c);
	return c;
}

/* one line per GUARD_LOG_EVERY_MS at most, whatever the flood; caller holds lock */
static void guard_log(struct http_guard *g, const struct in6_addr *last, const char *why)
{
	uint64_t now = clock_mono_ms();
	char a[INET6_ADDRSTRLEN] = "?";

	if (g->log_ms && now - g->log_ms < GUARD_LOG_EVERY_MS)
		return;
	if (last)
		guard_addr_str(last, a, sizeof(a));
	pr_warn("%s: %llu connection(s) refused, %llu cut at the %u ms request deadline since "
		"the last report (latest refusal: %s, %s; open %u + %u priority)",
		g->cfg.what, (unsigned long long)g->log_refused, (unsigned long long)g->log_reaped,
		g->cfg.request_ms, a, why, g->open, g->open_prio);
	g->log_ms = now;
	g->log_refused = g->log_reaped = 0;
}

enum MHD_Result http_guard__accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct http_guard *g = cls;
	struct in6_addr src;
	const char *why = NULL;
	unsigned int same = 0;

	if (!guard_src(addr, &src))
		return MHD_NO;
	pthread_mutex_lock(&g->lock);
	if (guard_is_prio(g, &src)) {
		if (g->open_prio >= g->cfg.reserve && g->open >= g->cfg.max_conns)
			why = "priority reserve and ordinary share full";
	} else if (g->open >= g->cfg.max_conns) {
		why = "connection limit";
	} else {
		for (struct guard_conn *c = g->conns; c; c = c->next)
			same += !memcmp(&c->src, &src, sizeof(src));
		if (same >= g->cfg.max_per_src) {
			why = "per-source limit";
			g->refused_per_src++;
		}
	}
	if (!why) {
		struct guard_conn *c = conn_add(g, &src);

		if (c) {
			c->pending = true;
			c->deadline_ms = clock_mono_ms() + GUARD_PENDING_MS;
		} else {
			why = "out of memory";
		}
	}
	if (why) {
		g->refused_total++;
		g->log_refused++;
		guard_log(g, &src, why);
	}
	pthread_mutex_unlock(&g->lock);
	return why ? MHD_NO : MHD_YES;
}

static void guard_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
			 enum MHD_ConnectionNotificationCode toe)
{
	struct http_guard *g = cls;
	struct guard_conn *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fi =
		    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ai =
		    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		struct in6_addr src;

		guard_src(ai ? ai->client_addr : NULL, &src);
		pthread_mutex_lock(&g->lock);
		/* the entry its accept added; any pending one of the source
		 * will do, they are alike */
		for (c = g->conns; c; c = c->next)
			if (c->pending && !memcmp(&c->src, &src, sizeof(src)))
				break;
		if (!c)
			c = conn_add(g, &src); /* its pending entry expired */
		if (c) {
			c->pending = false;
			c->fd = fi ? fi->connect_fd : -1;
			c->deadline_ms = clock_mono_ms() + g->cfg.request_ms;
		}
		pthread_mutex_unlock(&g->lock);
		*socket_context = c; /* NULL: not tracked, neither counted nor reaped */
		return;
	}
	if (!c)
		return;
	pthread_mutex_lock(&g->lock);
	conn_unlink(g, c);
	pthread_mutex_unlock(&g->lock);
	free(c);
	*socket_context = NULL;
}

static void guard_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
			    enum MHD_RequestTerminationCode toe)
{
	struct http_guard *g = cls;
	const union MHD_ConnectionInfo *si =
	    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct guard_conn *c = si ? si->socket_context : NULL;

	if (c) {
		/* the next request on this connection has its own time */
		pthread_mutex_lock(&g->lock);
		c->deadline_ms = clock_mono_ms() + g->cfg.request_ms;
		pthread_mutex_unlock(&g->lock);
	}
	if (g->cfg.completed)
		g->cfg.completed(g->cfg.completed_cls, mc, con_cls, toe);
}

static void *guard_reaper(void *arg)
{
	struct http_guard *g = arg;
	struct timespec ts;

	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		uint64_t now = clock_mono_ms();

		for (struct guard_conn *c = g->conns, *next; c; c = next) {
			next = c->next;
			if (c->pending && now >= c->deadline_ms) {
				conn_unlink(g, c);
				free(c);
				continue;
			}
			if (c->reaped || c->fd < 0 || now < c->deadline_ms)
				continue;
			/* MHD sees the end of the stream and closes it */
			shutdown(c->fd, SHUT_RDWR);
			c->reaped = true;
			g->reaped++;
			g->log_reaped++;
		}
		/* the monotonic clock (the condvar's, below): on the wall
		 * clock, a step back by X slept X, and no slow client was cut
		 * meanwhile */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += GUARD_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->wake, &g->lock, &ts);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

/* MHD's own messages (mostly clients that went away): escaped by log.h,
 * at most one a second, at info level */
static void guard_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_guard *g = cls;
	uint64_t now = clock_mono_ms(), dropped = 0;
	char msg[512];
	bool show;

	pthread_mutex_lock(&g->lock);
	show = !g->mhd_log_ms || now - g->mhd_log_ms >= 1000;
	if (show) {
		g->mhd_log_ms = now;
		dropped = g->mhd_log_dropped;
		g->mhd_log_dropped = 0;
	} else {
		g->mhd_log_dropped++;
	}
	pthread_mutex_unlock(&g->lock);
	if (!show)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = 0;
	if (dropped)
		pr_info("%s: libmicrohttpd: %s (%llu more not shown)", g->cfg.what, msg,
			(unsigned long long)dropped);
	else
		pr_info("%s: libmicrohttpd: %s", g->cfg.what, msg);
}

int http_guard__new(const struct http_guard_cfg *cfg, struct http_guard **out)
{
	pthread_condattr_t ca;
	struct http_guard *g;
	struct rlimit rl;
	rlim_t need;
	int err;

	*out = NULL;
	if (!cfg->max_conns || !cfg->max_per_src || !cfg->request_ms)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->cfg = *cfg;
	if (!g->cfg.what)
		g->cfg.what = "HTTP";
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	/* every connection is a descriptor, and MHD may hold a few refused ones
	 * a moment longer: keep well clear of EMFILE */
	need = 2 * ((rlim_t)cfg->max_conns + cfg->reserve) + 256;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			pr_warn("%s: cannot raise the open file limit to %llu: %s", g->cfg.what,
				(unsigned long long)need, strerror(errno));
	}
	err = -pthread_create(&g->reaper, NULL, guard_reaper, g);
	if (err) {
		free(g);
		return err;
	}
	*out = g;
	return 0;
}

void http_guard__free(struct http_guard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->reaper, NULL);
	/* MHD_stop_daemon closed every connection, with a CLOSED notification */
	while (g->conns) {
		struct guard_conn *c = g->conns;

		g->conns = c->next;
		free(c);
	}
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->wake);
	free(g);
}

void http_guard__options(struct http_guard *g, struct MHD_OptionItem opts[HTTP_GUARD_NOPTS])
{
	/* MHD's limit is above ours (and split across a thread pool's workers):
	 * at its limit MHD stops accepting, which would leave a priority
	 * client in the listen backlog */
	unsigned int mhd_limit = 2 * (g->cfg.max_conns + g->cfg.reserve) + 16;
	int n = 0;

	/* the logger first, or MHD logs what comes before it on its own */
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)guard_mhd_log, g};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, mhd_limit, NULL};
	opts[n++] =
	    (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)guard_notify, g};
	opts[n++] =
	    (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)guard_completed, g};
	opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
}

void http_guard__stats(struct http_guard *g, struct http_guard_stats *st)
{
	pthread_mutex_lock(&g->lock);
	st->open = g->open;
	st->open_prio = g->open_prio;
	st->refused_total = g->refused_total;
	st->refused_per_src = g->refused_per_src;
	st->reaped = g->reaped;
	pthread_mutex_unlock(&g->lock);
}
