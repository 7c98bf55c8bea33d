// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>
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

enum MHD_Result http_reply(struct MHD_Connection *c, unsigned int status, const char *type,
			   char *body, const char *hname, const char *hval)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	if (hname)
		MHD_add_response_header(r, hname, hval);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

void http_body__completed(void *cls, struct MHD_Connection *c, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct http_body *b = *con_cls;

	if (b) {
		http_body__free(b);
		free(b);
		*con_cls = NULL;
	}
}
