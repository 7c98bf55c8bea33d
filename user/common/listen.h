/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Listen addresses of the HTTP servers (aibld's status_listen, the agent's
 * and the simnode's --listen), one parser for all of them:
 *
 *   HOST:PORT      HOST an IPv4 address, a name (localhost, /etc/hosts,
 *                  DNS: IPv4 first) or, unbracketed, an IPv6 address
 *   [HOST]:PORT    the same, the usual way to write IPv6
 *   :PORT          any IPv4 address
 *
 * PORT is 0..65535 (0: the kernel picks). A name is resolved once, here.
 */
#ifndef AIBL_LISTEN_H
#define AIBL_LISTEN_H

#include <stdbool.h>
#include <sys/socket.h>

/* 0 or -EINVAL; msg (when not NULL) says why. len may be NULL. */
int listen_addr__parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *msg,
		       size_t msglen);
/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104 */
bool listen_addr__is_loopback(const struct sockaddr_storage *ss);

/* a parsed listen address with its text, as cliopt's CLIOPT_LISTEN stores it */
struct listen_addr {
	const char *spec;
	struct sockaddr_storage ss;
	socklen_t len;
};

#endif
