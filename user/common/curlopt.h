/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The settings every libcurl handle of the daemons takes: plain HTTP(S)
 * only, redirects included, and never a proxy from the environment (an
 * http_proxy or ALL_PROXY in a shell that starts a daemon would send its
 * calls to engines, agents, peers and etcd, signed ones included, through
 * that proxy, and a --controller address check would refuse them).
 */
#ifndef AIBL_CURLOPT_H
#define AIBL_CURLOPT_H

#include <curl/curl.h>

static inline void aibl_curl__direct(CURL *h)
{
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
}

#endif
