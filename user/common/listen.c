// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "listen.h"

int listen_addr__parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *msg,
		       size_t msglen)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	char host[64];
	const char *colon, *hstart = spec, *hend;
	unsigned long port;
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (spec[0] == '[') {
		hstart = spec + 1;
		hend = strchr(spec, ']');
		if (!hend || hend[1] != ':')
			goto bad;
		colon = hend + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			goto bad;
		hend = colon;
	}
	if ((size_t)(hend - hstart) >= sizeof(host))
		goto bad;
	memcpy(host, hstart, hend - hstart);
	host[hend - hstart] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port > 65535)
		goto bad;
	if (spec[0] == '[') {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto bad;
		*len = sizeof(*s6);
		return 0;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	if (!host[0])
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		goto bad;
	*len = sizeof(*s4);
	return 0;
bad:
	snprintf(msg, msglen, "invalid listen address \"%s\" (want ADDR:PORT or [ADDR6]:PORT)",
		 spec);
	return -EINVAL;
}
