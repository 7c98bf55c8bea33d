/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A MAC address as operators write it: six groups of one or two hex
 * digits, ':' between. sscanf's %x alone took "-1" (as ff, the broadcast),
 * a '+' and leading blanks. Header-only: the config parser's fuzzer builds
 * from source.
 */
#ifndef AIBL_MAC_H
#define AIBL_MAC_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 0, or -EINVAL with mac untouched */
static inline int aibl_mac__parse(const char *text, uint8_t mac[6])
{
	uint8_t b[6];
	const char *p = text;

	for (int i = 0; i < 6; i++) {
		size_t n = strspn(p, "0123456789abcdefABCDEF");

		if (n < 1 || n > 2 || p[n] != (i < 5 ? ':' : '\0'))
			return -EINVAL;
		b[i] = (uint8_t)strtoul(p, NULL, 16);
		p += n + 1;
	}
	memcpy(mac, b, sizeof(b));
	return 0;
}

#endif
