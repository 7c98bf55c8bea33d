// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "listen.h"

#define LISTEN_HOST_MAX 256 /* a DNS name's length, and then some */

/*
 * Only text that cannot be an address goes to the resolver: a mistyped
 * address ("10.0.0.300", "fe80:::1") is an error here, not a DNS query
 * that may take seconds to fail.
 */
static bool listen_is_name(const char *host)
{
	bool letter = false;

	for (const char *p = host; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
			letter = true;
		else if (!(*p >= '0' && *p <= '9') && *p != '-' && *p != '.')
			return false;
	}
	return letter;
}

static int listen_resolve(const char *host, int flags, int family, struct sockaddr_storage *ss,
			  socklen_t *len, int *gai)
{
	struct addrinfo hints = {.ai_family = family, .ai_flags = flags}, *ai;

	*gai = getaddrinfo(host, NULL, &hints, &ai);
	if (*gai)
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* every dot-separated part a number as inet_aton reads one (decimal,
 * octal, 0x hex): 10.0.300, 0x7f.1, 010.1.2.3; a name has a part that is
 * not (1bad.cafe) */
static bool aton_form(const char *host)
{
	const char *p = host;

	while (*p) {
		size_t n = strcspn(p, ".");

		if (!n)
			return false;
		if (n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
			for (size_t i = 2; i < n; i++)
				if (!isxdigit((unsigned char)p[i]))
					return false;
		} else {
			for (size_t i = 0; i < n; i++)
				if (!isdigit((unsigned char)p[i]))
					return false;
		}
		p += n;
		if (*p == '.')
			p++;
	}
	return true;
}

int listen_addr__parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len, char *msg,
		       size_t msglen)
{
	const char *hstart = spec, *hend, *colon, *why;
	char host[LISTEN_HOST_MAX], ebuf[LISTEN_HOST_MAX + 64];
	unsigned long port = 0;
	struct in_addr a4;
	socklen_t sslen;
	int gai = 0;

	memset(ss, 0, sizeof(*ss));
	if (spec[0] == '[') {
		hstart = spec + 1;
		hend = strchr(spec, ']');
		why = "no ']' before the ':PORT'";
		if (!hend || hend[1] != ':')
			goto bad;
		why = "nothing between '[' and ']'";
		if (hend == hstart)
			goto bad;
		colon = hend + 1;
	} else {
		colon = strrchr(spec, ':');
		why = "no ':PORT'";
		if (!colon)
			goto bad;
		hend = colon;
	}
	why = "host name too long";
	if ((size_t)(hend - hstart) >= sizeof(host))
		goto bad;
	memcpy(host, hstart, hend - hstart);
	host[hend - hstart] = '\0';
	why = "the port is not a number from 0 to 65535";
	if (!colon[1] || strlen(colon + 1) > 5 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		goto bad;
	port = strtoul(colon + 1, NULL, 10);
	if (port > 65535)
		goto bad;

	if (!host[0] || (!strchr(host, ':') && inet_pton(AF_INET, host, &a4) == 1)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = host[0] ? a4.s_addr : htonl(INADDR_ANY);
		sslen = sizeof(*s4);
	} else if (!strchr(host, ':') && aton_form(host)) {
		/* IPv4 is a dotted quad of decimals, as everywhere else here:
		 * getaddrinfo reads inet_aton's forms too, and 10.0.0.010
		 * bound 10.0.0.8, 10.0.300 10.0.1.44, 0 every address */
		why = "not an IPv4 address (four decimal numbers)";
		goto bad;
	} else if (strchr(host, ':') &&
		   !listen_resolve(host, AI_NUMERICHOST, AF_INET6, ss, &sslen, &gai)) {
		/* an IPv6 address (with a %scope if need be); IPv4 is above */
	} else if (!listen_is_name(host)) {
		why = "not an IPv4 or IPv6 address";
		goto bad;
	} else if (listen_resolve(host, 0, AF_INET, ss, &sslen, &gai) &&
		   listen_resolve(host, 0, AF_INET6, ss, &sslen, &gai)) {
		/* IPv4 first: localhost is 127.0.0.1, as it always was here */
		snprintf(ebuf, sizeof(ebuf), "cannot resolve \"%s\": %s", host, gai_strerror(gai));
		why = ebuf;
		goto bad;
	}
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	if (len)
		*len = sslen;
	return 0;
bad:
	memset(ss, 0, sizeof(*ss));
	if (msg)
		snprintf(msg, msglen,
			 "invalid listen address \"%s\": %s (want HOST:PORT, [HOST]:PORT or :PORT)",
			 spec, why);
	return -EINVAL;
}

bool listen_addr__is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a6) ||
		       (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	}
	return false;
}
