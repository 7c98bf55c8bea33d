// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness: plan__decode(), the cluster plan every balancer of an
 * ECMP group reads from etcd (docs/cluster.md), written there by whichever
 * balancer is the planner, or by anyone who can write to etcd. Besides
 * ASan/UBSan findings it checks plan.h's promises: a refusal is -EINVAL
 * (or -ENOMEM) and leaves the plan empty; an accepted plan encodes, decodes
 * back to the same content and the same digest, and its encoding is
 * canonical; its pins can be bounded and its digest computed (a plan whose
 * members name a node it does not list may be refused there, never read
 * out of bounds).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../user/aibld/plan.h"

static void check_empty(const struct plan *p)
{
	if (p->nnodes || p->nsvcs || p->npins || p->nodes || p->svcs || p->pins || p->version)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *t1 = NULL, *t2 = NULL, d1[PLAN_DIGEST_LEN],
	     d2[PLAN_DIGEST_LEN], why[256];
	struct plan a, b;
	int ret, r1, r2;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0'; /* etcd values come as strings: text up to a NUL */
	ret = plan__decode(text, &a);
	free(text);
	if (ret) {
		if (ret != -EINVAL && ret != -ENOMEM)
			abort();
		check_empty(&a);
		return 0;
	}
	if (a.nnodes < 0 || a.nsvcs < 0 || a.npins < 0 || a.npins > PLAN_MAX_PINS)
		abort();
	for (int i = 0; i < a.nsvcs; i++)
		if (a.svcs[i].n < 0)
			abort();
	t1 = plan__encode(&a);
	if (!t1)
		abort();
	if (plan__decode(t1, &b))
		abort(); /* what a planner would write, every balancer must read */
	if (!plan__same_content(&a, &b) || !plan__same_content(&b, &a) ||
	    strcmp(a.digest, b.digest) || a.version != b.version || strcmp(a.planner, b.planner))
		abort();
	t2 = plan__encode(&b);
	if (!t2 || strcmp(t1, t2))
		abort(); /* canonical */
	r1 = plan__digest(&a, d1);
	r2 = plan__digest(&b, d2);
	if (r1 != r2 || (!r1 && strcmp(d1, d2)))
		abort();
	if (!r1 && (strlen(d1) != PLAN_DIGEST_LEN - 1))
		abort();
	plan__what_changed(&a, &b, why, sizeof(why));
	if (!memchr(why, '\0', sizeof(why)))
		abort();
	for (int i = 0; i < a.nnodes; i++)
		if (plan__node_flags(&a, a.nodes[i].name) < 0)
			abort();
	plan__bound_pins(&a);
	free(t1);
	free(t2);
	plan__free(&a);
	plan__free(&b);
	return 0;
}
