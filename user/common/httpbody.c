// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "httpbody.h"

int http_body__feed(struct http_body *b, const char *data, size_t n, size_t max)
{
	char *p;

	if (b->too_big || b->len + n > max) {
		b->too_big = true;
		return 0;
	}
	p = realloc(b->buf, b->len + n + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p + b->len, data, n);
	b->len += n;
	p[b->len] = '\0';
	b->buf = p;
	return 0;
}

const char *http_body__str(const struct http_body *b)
{
	return b->buf ? b->buf : "";
}

void http_body__free(struct http_body *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}
