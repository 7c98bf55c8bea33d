// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness: agent_hints__parse(), the body parser of the agent's
 * POST /v1/hints (user/aibl-agent/main.c), which local model servers and,
 * with a key, other hosts call. Checks beyond the sanitizers: a refusal
 * says why and hands back nothing; accepted hints are within the limits,
 * name a client address, a VIP or a model, and come out as "server" hints.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ar_hint *hints = (struct ar_hint *)1;
	char err[256];
	int n = -1, ret;

	memset(err, 'x', sizeof(err));
	ret = agent_hints__parse((const char *)data, size, &hints, &n, err, sizeof(err));
	if (ret) {
		if (ret != -EINVAL && ret != -E2BIG && ret != -ENOMEM)
			abort();
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		if (hints || n != 0)
			abort(); /* nothing half-parsed reaches the hint table */
		return 0;
	}
	if (n < 0 || n > AR_MAX_HINTS || (n && !hints))
		abort();
	for (int i = 0; i < n; i++) {
		const struct ar_hint *h = &hints[i];

		/* addresses arrive parsed: a family, a VIP only with one */
		if ((h->client_family != AIBL_AF_INET && h->client_family != AIBL_AF_INET6) ||
		    (h->vip_family != AIBL_AF_NONE && h->vip_family != AIBL_AF_INET &&
		     h->vip_family != AIBL_AF_INET6) ||
		    !memchr(h->model, '\0', sizeof(h->model)) || (!h->vip_family && !h->model[0]))
			abort();
		if (strcmp(h->source, "server") || !(h->score >= 0 && h->score <= 1))
			abort();
		if (h->proto != 0 && h->proto != IPPROTO_TCP && h->proto != IPPROTO_UDP)
			abort();
	}
	free(hints);
	return 0;
}
