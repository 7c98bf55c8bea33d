// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Two GLib indexes over one set of hints: a hash table by the hint's key
 * (client, VIP, port, proto, model), for put's lookup, and a sequence
 * ordered by expiry, for the hint nearest to expiry (eviction, expiry).
 * Every hint ages at the same rate at a time, so a hint's expiry is kept
 * on one "aged" clock that every tick moves on: ticks do not touch the
 * hints, and the order never changes but by a put. Before, the table was
 * an array scanned by each put: a poll that refreshed 4,096 traffic
 * hints made about 8 million comparisons under the agent's lock, and each
 * new hint into a full table scanned it once more for the victim.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <xxhash.h>
#include "hints.h"

struct agent_hint {
	struct ar_hint h; /* h.ttl_ms is the initial lifetime */
	double expires;	  /* on the table's aged clock */
	uint64_t seq;	  /* order of insertion: ties in expires */
	GSequenceIter *at;
};

static guint hint_hash(gconstpointer p)
{
	const struct ar_hint *h = p;
	struct {
		union aibl_addr client, vip;
		uint16_t port;
		uint8_t proto, client_family, vip_family, pad[3];
	} k = {.client = h->client,
	       .vip = h->vip,
	       .port = h->port,
	       .proto = h->proto,
	       .client_family = h->client_family,
	       .vip_family = h->vip_family};

	/* the address, port and family fields, then the model, seeded by them */
	return (guint)XXH64(h->model, strnlen(h->model, sizeof(h->model)), XXH64(&k, sizeof(k), 0));
}

/* the same hint: client, VIP, port, proto, families and model */
static gboolean hint_equal(gconstpointer pa, gconstpointer pb)
{
	const struct ar_hint *a = pa, *b = pb;

	return a->port == b->port && a->proto == b->proto && a->client_family == b->client_family &&
	       a->vip_family == b->vip_family &&
	       !memcmp(&a->client, &b->client, sizeof(a->client)) &&
	       !memcmp(&a->vip, &b->vip, sizeof(a->vip)) && !strcmp(a->model, b->model);
}

/* by expiry, then by insertion */
static gint hint_cmp(gconstpointer a, gconstpointer b, gpointer unused)
{
	const struct agent_hint *x = a, *y = b;

	if (x->expires != y->expires)
		return x->expires < y->expires ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int agent_hints__init(struct agent_hints *t, int max, double pressure_start, double max_rate)
{
	memset(t, 0, sizeof(*t));
	if (max < 1 || max > AR_MAX_HINTS || pressure_start < 0 || pressure_start >= 1 ||
	    max_rate < 1)
		return -EINVAL;
	/* the hint's key is its ar_hint, the struct's first member; the
	 * sequence owns the hints */
	t->by_key = g_hash_table_new(hint_hash, hint_equal);
	t->by_expiry = g_sequence_new(free);
	t->max = max;
	t->pressure_start = pressure_start;
	t->max_rate = max_rate;
	return 0;
}

void agent_hints__fini(struct agent_hints *t)
{
	if (t->by_key)
		g_hash_table_destroy(t->by_key);
	if (t->by_expiry)
		g_sequence_free(t->by_expiry);
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

static void hints_remove(struct agent_hints *t, struct agent_hint *e)
{
	g_hash_table_remove(t->by_key, &e->h);
	g_sequence_remove(e->at); /* frees e */
	t->n--;
}

/* the hint nearest to expiry, NULL none */
static struct agent_hint *hints_first(const struct agent_hints *t)
{
	GSequenceIter *it = g_sequence_get_begin_iter(t->by_expiry);

	return g_sequence_iter_is_end(it) ? NULL : g_sequence_get(it);
}

void agent_hints__tick(struct agent_hints *t, uint64_t now_ms, double kv)
{
	struct agent_hint *e;

	if (!t->last_tick_ms || now_ms < t->last_tick_ms) {
		t->last_tick_ms = now_ms;
		return;
	}
	t->aged += (double)(now_ms - t->last_tick_ms) * agent_hints__rate(t, kv);
	t->last_tick_ms = now_ms;
	while ((e = hints_first(t)) && e->expires - t->aged <= 0)
		hints_remove(t, e);
}

void agent_hints__put(struct agent_hints *t, const struct ar_hint *h)
{
	struct agent_hint *e = g_hash_table_lookup(t->by_key, h), *victim;

	if (!h->ttl_ms) {
		if (e)
			hints_remove(t, e);
		return;
	}
	if (e) {
		e->h = *h;
		e->expires = t->aged + h->ttl_ms;
		e->seq = t->seq++;
		g_sequence_sort_changed(e->at, hint_cmp, NULL);
		return;
	}
	if (t->n >= t->max) {
		/* full: the hint nearest to expiry makes room */
		victim = hints_first(t);
		if (victim->expires - t->aged > h->ttl_ms)
			return; /* every held hint outlives the new one */
		hints_remove(t, victim);
		t->dropped++;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return; /* a hint is a hint: the next report or poll brings it */
	e->h = *h;
	e->expires = t->aged + h->ttl_ms;
	e->seq = t->seq++;
	e->at = g_sequence_insert_sorted(t->by_expiry, e, hint_cmp, NULL);
	g_hash_table_add(t->by_key, &e->h);
	t->n++;
}

int agent_hints__export(const struct agent_hints *t, struct ar_hint *out, int max)
{
	GSequenceIter *it = g_sequence_get_end_iter(t->by_expiry);
	int n = 0;

	/* the longest-lived first: a report that cannot hold them all keeps
	 * those */
	while (n < max && !g_sequence_iter_is_begin(it)) {
		const struct agent_hint *e;
		double life;

		it = g_sequence_iter_prev(it);
		e = g_sequence_get(it);
		life = e->expires - t->aged;
		out[n] = e->h;
		out[n].ttl_ms = life > UINT32_MAX ? UINT32_MAX : (uint32_t)life;
		n++;
	}
	return n;
}

void agent_hints__drop_if(struct agent_hints *t, bool (*gone)(const struct ar_hint *h, void *arg),
			  void *arg)
{
	GSequenceIter *it = g_sequence_get_begin_iter(t->by_expiry);

	while (!g_sequence_iter_is_end(it)) {
		struct agent_hint *e = g_sequence_get(it);

		it = g_sequence_iter_next(it);
		if (gone(&e->h, arg))
			hints_remove(t, e);
	}
}
