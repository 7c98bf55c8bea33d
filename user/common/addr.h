/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * union aibl_addr <-> text, for the boundaries that read addresses (the
 * controller's config, the agents' reports and hints): parsed there once,
 * carried in binary from then on. Header-only so that a parser built from
 * its own source (tests/fuzz) needs nothing else.
 */
#ifndef AIBL_ADDR_H
#define AIBL_ADDR_H

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/types.h>
#include "aibl.h"

/* "10.0.0.1" or "fd00::1" -> addr (rest zero) and AIBL_AF_*; 0 or -EINVAL */
static inline int aibl_addr__parse(const char *text, union aibl_addr *addr, __u8 *family)
{
	memset(addr, 0, sizeof(*addr));
	*family = AIBL_AF_NONE;
	if (inet_pton(AF_INET, text, &addr->v4) == 1) {
		*family = AIBL_AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, addr->b) == 1) {
		*family = AIBL_AF_INET6;
		return 0;
	}
	memset(addr, 0, sizeof(*addr));
	return -EINVAL;
}

/* an IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a dual-stack socket
 * names an IPv4 peer) as the IPv4 address it is */
static inline void aibl_addr__unmap(union aibl_addr *addr, __u8 *family)
{
	static const __u8 mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	__u32 v4;

	if (*family != AIBL_AF_INET6 || memcmp(addr->b, mapped, sizeof(mapped)))
		return;
	memcpy(&v4, addr->b + 12, 4);
	memset(addr, 0, sizeof(*addr));
	addr->v4 = v4;
	*family = AIBL_AF_INET;
}

/* the text of addr; "" for AIBL_AF_NONE. len >= INET6_ADDRSTRLEN. */
static inline const char *aibl_addr__str(const union aibl_addr *addr, __u8 family, char *out,
					 size_t len)
{
	out[0] = 0;
	if (family == AIBL_AF_INET)
		inet_ntop(AF_INET, &addr->v4, out, len);
	else if (family == AIBL_AF_INET6)
		inet_ntop(AF_INET6, addr->b, out, len);
	return out;
}

#endif
