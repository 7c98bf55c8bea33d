/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The character set of node and service names: they travel in URLs
 * (/v1/nodes/NAME/drain), log lines, Prometheus labels, aiblctl's tables
 * and the per-node key derivation, so none of those has to quote them.
 * A letter or digit first, then letters, digits, '.', '_' and '-'.
 * Header-only: the config parser's fuzzer builds from source.
 */
#ifndef AIBL_NAMES_H
#define AIBL_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define AIBL_NAME_CHARSET "[A-Za-z0-9][A-Za-z0-9._-]*"

static inline bool aibl_name__char_ok(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (!first && (c == '.' || c == '_' || c == '-'));
}

/* 1 to max - 1 characters of the set */
static inline bool aibl_name__valid(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (i + 1 >= max || !aibl_name__char_ok(s[i], i == 0))
			return false;
	return i > 0;
}

#endif
