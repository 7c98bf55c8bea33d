/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* "ADDR:PORT" / "[V6ADDR]:PORT" listen addresses for the HTTP servers. */
#ifndef AIBL_LISTEN_H
#define AIBL_LISTEN_H

#include <sys/socket.h>

/* 0 or -EINVAL (msg says why). An empty ADDR means any IPv4 address. */
int listen_addr__parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *msg,
		       size_t msglen);

#endif
