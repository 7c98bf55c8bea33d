// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <string.h>
#include "affinity.h"

int test_affinity__way(const struct aibl_affinity_bucket *b, __u32 svc_id, __u8 family,
		       const union aibl_addr *client)
{
	for (int i = 0; i < AIBL_AFFINITY_WAYS; i++) {
		const struct aibl_affinity *w = &b->way[i];

		if (w->family && w->family == family && w->svc_id == svc_id &&
		    !memcmp(&w->client, client, sizeof(*client)))
			return i;
	}
	return -1;
}

int test_affinity__put(struct aibl_affinity_bucket *b, const struct aibl_affinity *a)
{
	int way = test_affinity__way(b, a->svc_id, a->family, &a->client);

	for (int i = 0; way < 0 && i < AIBL_AFFINITY_WAYS; i++)
		if (!b->way[i].family)
			way = i;
	if (way < 0)
		return -ENOSPC;
	b->way[way] = *a;
	return 0;
}
