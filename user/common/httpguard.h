/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection limits for the libmicrohttpd servers that face a network
 * (aibl-agent's port, aibld's API), against floods of slow connections:
 *
 *   - at most max_conns connections from ordinary sources together, and
 *     max_per_src from any one address: over either, a new connection is
 *     closed at accept (MHD's own limit is set above ours, so MHD never
 *     stops accepting and leaves a priority client in the backlog);
 *   - reserve more for the priority addresses (the controller polling an
 *     agent, the local host on aibld's API): a flood from elsewhere cannot
 *     take those;
 *   - a request must be in and answered within request_ms of the
 *     connection's start or of the previous request's end. MHD's
 *     CONNECTION_TIMEOUT is an idle timeout that every byte resets: one
 *     byte every few seconds held a connection for ever. A reaper thread
 *     shuts such a connection's socket down, MHD then closes it.
 *
 * Also MHD's error log goes through log.h (escaped, at most one line a
 * second, info level). Use: http_guard__new, then MHD_start_daemon with
 * http_guard__accept as the accept policy (cls: the guard) and, first of
 * its options, MHD_OPTION_ARRAY of http_guard__options; http_guard__free after
 * MHD_stop_daemon.
 */
#ifndef AIBL_HTTPGUARD_H
#define AIBL_HTTPGUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <microhttpd.h>

#define HTTP_GUARD_PRIO_MAX 16
#define HTTP_GUARD_NOPTS    6

struct http_guard_cfg {
	const char *what;	  /* names the server in log lines */
	unsigned int max_conns;	  /* ordinary sources together */
	unsigned int max_per_src; /* one ordinary source address */
	unsigned int reserve;	  /* priority sources only, beyond max_conns */
	unsigned int request_ms;  /* a request, from its first byte (or the last answer) */
	int nprio;
	struct in6_addr prio[HTTP_GUARD_PRIO_MAX]; /* IPv4 as ::ffff:a.b.c.d */
	/* called after the guard's own bookkeeping (MHD takes one such callback) */
	MHD_RequestCompletedCallback completed;
	void *completed_cls;
};

struct http_guard_stats {
	unsigned int open, open_prio;
	uint64_t refused_total, refused_per_src, reaped;
};

struct http_guard;

/* "10.0.0.1" or "fd00::1" into cfg->prio; 0 or -EINVAL / -E2BIG */
int http_guard__add_prio(struct http_guard_cfg *cfg, const char *addr);
/* sa (IPv4 or IPv6) is one of cfg's priority addresses */
bool http_guard__is_prio(const struct http_guard_cfg *cfg, const struct sockaddr *sa);
/* sa's address, numeric, without its port (an IPv4-mapped one as IPv4):
 * false for another family */
bool http_guard__addr_str(const struct sockaddr *sa, char *buf, size_t len);
/* 0 or -errno; starts the reaper thread, raises RLIMIT_NOFILE when needed */
int http_guard__new(const struct http_guard_cfg *cfg, struct http_guard **out);
void http_guard__free(struct http_guard *g);
/* the options to pass with MHD_OPTION_ARRAY (terminated) */
void http_guard__options(struct http_guard *g, struct MHD_OptionItem opts[HTTP_GUARD_NOPTS]);
/* the accept policy callback, cls the guard */
enum MHD_Result http_guard__accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void http_guard__stats(struct http_guard *g, struct http_guard_stats *st);

#endif
