/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * libmicrohttpd helpers shared by aibld, aibl-agent and aibl-simnode:
 * collecting a request body across the upload callbacks, with a size limit
 * (over it the rest is dropped and too_big set, so the handler can answer
 * 413 once the upload is over), and queueing a reply.
 */
#ifndef AIBL_HTTPBODY_H
#define AIBL_HTTPBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <microhttpd.h>

struct http_body {
	char *buf; /* NUL-terminated, NULL while empty */
	size_t len;
	bool too_big;
};

/* 0 or -ENOMEM */
int http_body__feed(struct http_body *b, const char *data, size_t n, size_t max);
/* the body, "" while empty */
const char *http_body__str(const struct http_body *b);
void http_body__free(struct http_body *b);

/*
 * MHD_OPTION_NOTIFY_COMPLETED callback for handlers that keep a malloc'd
 * struct http_body in *con_cls: frees it however the request ended.
 */
void http_body__completed(void *cls, struct MHD_Connection *c, void **con_cls,
			  enum MHD_RequestTerminationCode toe);
/*
 * Queue a reply that takes ownership of the malloc'd, NUL-terminated body
 * (freed on every path), with Content-Type and, when hname is not NULL, one
 * more header. NULL body: MHD_NO (the connection is closed).
 */
enum MHD_Result http_reply(struct MHD_Connection *c, unsigned int status, const char *type,
			   char *body, const char *hname, const char *hval);

#endif
