// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hints.h"

int agent_hints__init(struct agent_hints *t, int max, double pressure_start, double max_rate)
{
	memset(t, 0, sizeof(*t));
	if (max < 1 || max > AR_MAX_HINTS || pressure_start < 0 || pressure_start >= 1 ||
	    max_rate < 1)
		return -EINVAL;
	t->v = calloc(max, sizeof(*t->v));
	if (!t->v)
		return -ENOMEM;
	t->max = max;
	t->pressure_start = pressure_start;
	t->max_rate = max_rate;
	return 0;
}

void agent_hints__fini(struct agent_hints *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

double agent_hints__rate(const struct agent_hints *t, double kv)
{
	if (kv <= t->pressure_start)
		return 1;
	if (kv > 1)
		kv = 1;
	return 1 + (t->max_rate - 1) * (kv - t->pressure_start) / (1 - t->pressure_start);
}

static void hints_remove(struct agent_hints *t, int i)
{
	t->v[i] = t->v[--t->n];
}

void agent_hints__tick(struct agent_hints *t, uint64_t now_ms, double kv)
{
	double dt;

	if (!t->last_tick_ms || now_ms < t->last_tick_ms) {
		t->last_tick_ms = now_ms;
		return;
	}
	dt = (double)(now_ms - t->last_tick_ms) * agent_hints__rate(t, kv);
	t->last_tick_ms = now_ms;
	for (int i = 0; i < t->n;) {
		t->v[i].life_ms -= dt;
		if (t->v[i].life_ms <= 0)
			hints_remove(t, i);
		else
			i++;
	}
}

static bool hints_same(const struct ar_hint *a, const struct ar_hint *b)
{
	return a->port == b->port && a->proto == b->proto && a->client_family == b->client_family &&
	       a->vip_family == b->vip_family &&
	       !memcmp(&a->client, &b->client, sizeof(a->client)) &&
	       !memcmp(&a->vip, &b->vip, sizeof(a->vip)) && !strcmp(a->model, b->model);
}

void agent_hints__put(struct agent_hints *t, const struct ar_hint *h)
{
	int i, victim = -1;

	for (i = 0; i < t->n; i++)
		if (hints_same(&t->v[i].h, h))
			break;
	if (!h->ttl_ms) {
		if (i < t->n)
			hints_remove(t, i);
		return;
	}
	if (i == t->n) {
		if (t->n < t->max) {
			t->n++;
		} else {
			/* full: the hint nearest to expiry makes room */
			for (int k = 0; k < t->n; k++)
				if (victim < 0 || t->v[k].life_ms < t->v[victim].life_ms)
					victim = k;
			if (t->v[victim].life_ms > h->ttl_ms)
				return; /* every held hint outlives the new one */
			i = victim;
			t->dropped++;
		}
	}
	t->v[i].h = *h;
	t->v[i].life_ms = h->ttl_ms;
}

int agent_hints__export(const struct agent_hints *t, struct ar_hint *out, int max)
{
	int n = t->n < max ? t->n : max;

	for (int i = 0; i < n; i++) {
		out[i] = t->v[i].h;
		out[i].ttl_ms =
		    t->v[i].life_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)t->v[i].life_ms;
	}
	return n;
}

void agent_hints__drop_if(struct agent_hints *t, bool (*gone)(const struct ar_hint *h, void *arg),
			  void *arg)
{
	for (int i = 0; i < t->n;) {
		if (gone(&t->v[i].h, arg))
			hints_remove(t, i);
		else
			i++;
	}
}

void agent_hints__clear(struct agent_hints *t)
{
	t->n = 0;
}
