// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Plan encode/decode (JSON) and digest (see plan.h). The JSON:
 *   {"version": N, "planner": "b1", "hash_seed": S, "digest": "hex",
 *    "nodes": [{"name": "n1", "flags": 1, "cost": 0}, ...],
 *    "services": [{"name": "web", "how": 16777216,
 *                  "members": [{"node": "n1", "weight": 100}, ...]}],
 *    "pins": [{"service": "chat", "client": "10.0.0.7", "node": "n1",
 *              "expires_ms": 1764680000000, "ttl_ms": 60000}, ...]}
 * Every field of its type and range; a plan without "pins" has none, a
 * service without "how" (a planner built before it, 2026-12-07) says nothing of it
 * ("how" is not in the digest: a balancer before it reads the plan). A
 * digest that is not the content's is refused as well: every balancer
 * would withdraw, fenced on tables that differ from it, and the planner,
 * whose proposal has the same content, would never write it again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <xxhash.h>
#include "addr.h"
#include "maglev.h"
#include "plan.h"

void plan__free(struct plan *p)
{
	for (int i = 0; p->svcs && i < p->nsvcs; i++)
		free(p->svcs[i].m);
	free(p->svcs);
	free(p->nodes);
	free(p->pins);
	memset(p, 0, sizeof(*p));
}

char *plan__encode(const struct plan *p)
{
	json_t *nodes = json_array(), *svcs = json_array(), *pins = json_array(), *j;
	char *text;

	for (int i = 0; i < p->nnodes; i++)
		json_array_append_new(nodes, json_pack("{s:s,s:i,s:I}", "name", p->nodes[i].name,
						       "flags", (int)p->nodes[i].flags, "cost",
						       (json_int_t)p->nodes[i].cost));
	for (int i = 0; i < p->npins; i++) {
		const struct plan_pin *pp = &p->pins[i];
		char a[INET6_ADDRSTRLEN];

		aibl_addr__str(&pp->client, pp->family, a, sizeof(a));
		json_array_append_new(pins, json_pack("{s:s,s:s,s:s,s:I,s:I}", "service", pp->svc,
						      "client", a, "node", pp->node, "expires_ms",
						      (json_int_t)pp->expires_ms, "ttl_ms",
						      (json_int_t)pp->ttl_ms));
	}
	for (int i = 0; i < p->nsvcs; i++) {
		json_t *m = json_array();

		for (int k = 0; k < p->svcs[i].n; k++)
			json_array_append_new(m, json_pack("{s:s,s:I}", "node",
							   p->svcs[i].m[k].name, "weight",
							   (json_int_t)p->svcs[i].m[k].weight));
		json_array_append_new(svcs,
				      json_pack("{s:s,s:I,s:o}", "name", p->svcs[i].name, "how",
						(json_int_t)p->svcs[i].how, "members", m));
	}
	j = json_pack("{s:I,s:s,s:I,s:s,s:o,s:o,s:o}", "version", (json_int_t)p->version, "planner",
		      p->planner, "hash_seed", (json_int_t)p->hash_seed, "digest", p->digest,
		      "nodes", nodes, "services", svcs, "pins", pins);
	if (!j)
		return NULL;
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return text;
}

static int name_copy(char *dst, json_t *v)
{
	const char *s = json_string_value(v);

	if (!s || !*s || strlen(s) >= AIBL_NAME_LEN)
		return -EINVAL;
	strcpy(dst, s);
	return 0;
}

/* a pin from its JSON object: 0 or -EINVAL */
static int pin_decode(json_t *it, struct plan_pin *pp)
{
	const char *a = json_string_value(json_object_get(it, "client"));
	json_int_t exp = json_integer_value(json_object_get(it, "expires_ms"));
	json_int_t ttl = json_integer_value(json_object_get(it, "ttl_ms"));

	if (name_copy(pp->svc, json_object_get(it, "service")) ||
	    name_copy(pp->node, json_object_get(it, "node")) || !a ||
	    !json_is_integer(json_object_get(it, "expires_ms")) ||
	    !json_is_integer(json_object_get(it, "ttl_ms")) || exp < 0 || ttl < 0 ||
	    ttl > 0xffffffffLL)
		return -EINVAL;
	if (aibl_addr__parse(a, &pp->client, &pp->family))
		return -EINVAL;
	pp->expires_ms = exp;
	pp->ttl_ms = ttl;
	return 0;
}

static int name_cmp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* names[n] sorted (a copy of the pointers): one repeats */
static bool names_repeat(const char **names, int n)
{
	qsort(names, n, sizeof(*names), name_cmp);
	for (int i = 1; i < n; i++)
		if (!strcmp(names[i - 1], names[i]))
			return true;
	return false;
}

static int pin_key_cmp(const void *x, const void *y);

/*
 * What a planner writes and every balancer compiles alike: each node and
 * each service named once, a service's members once each and all among
 * the plan's nodes, one pin per service and client (cluster__pins() keeps
 * one per key, so a second one would tell the balancers' digests apart
 * from the planner's, and fence them). 0, -EINVAL or -ENOMEM.
 */
static int plan_check(struct plan *p)
{
	int most = p->nnodes > p->nsvcs ? p->nnodes : p->nsvcs, err = -EINVAL;
	const char **nodes = calloc(p->nnodes + 1, sizeof(*nodes));
	const char **names = NULL;
	struct plan_pin *pins = NULL;

	for (int i = 0; i < p->nsvcs; i++)
		most = p->svcs[i].n > most ? p->svcs[i].n : most;
	names = calloc(most + 1, sizeof(*names));
	pins = calloc(p->npins + 1, sizeof(*pins));
	if (!nodes || !names || !pins) {
		err = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < p->nnodes; i++)
		nodes[i] = p->nodes[i].name;
	if (names_repeat(nodes, p->nnodes)) /* sorts nodes: searched below */
		goto out;
	for (int i = 0; i < p->nsvcs; i++)
		names[i] = p->svcs[i].name;
	if (names_repeat(names, p->nsvcs))
		goto out;
	for (int i = 0; i < p->nsvcs; i++) {
		for (int k = 0; k < p->svcs[i].n; k++) {
			const char *m = p->svcs[i].m[k].name;

			if (!bsearch(&m, nodes, p->nnodes, sizeof(*nodes), name_cmp))
				goto out;
			names[k] = m;
		}
		if (names_repeat(names, p->svcs[i].n))
			goto out;
	}
	memcpy(pins, p->pins, p->npins * sizeof(*pins));
	qsort(pins, p->npins, sizeof(*pins), pin_key_cmp);
	for (int i = 1; i < p->npins; i++)
		if (!pin_key_cmp(&pins[i - 1], &pins[i]))
			goto out;
	err = 0;
out:
	free(nodes);
	free(names);
	free(pins);
	return err;
}

int plan__decode(const char *text, struct plan *p)
{
	json_t *j = json_loads(text, 0, NULL), *nodes, *svcs, *pins, *it, *m;
	json_int_t ver, seed;
	const char *dig;
	size_t i, k;
	int err = -EINVAL;

	memset(p, 0, sizeof(*p));
	if (!j)
		return -EINVAL;
	ver = json_integer_value(json_object_get(j, "version"));
	seed = json_integer_value(json_object_get(j, "hash_seed"));
	dig = json_string_value(json_object_get(j, "digest"));
	nodes = json_object_get(j, "nodes");
	svcs = json_object_get(j, "services");
	pins = json_object_get(j, "pins");
	/* a version the planner can still count on from (version + 1) */
	if (ver <= 0 || ver >= INT64_MAX / 2 || !json_is_integer(json_object_get(j, "hash_seed")) ||
	    seed < 0 || seed > 0xffffffffLL || !dig || strlen(dig) >= PLAN_DIGEST_LEN ||
	    !json_is_array(nodes) || !json_is_array(svcs) || (pins && !json_is_array(pins)) ||
	    json_array_size(pins) > PLAN_MAX_PINS ||
	    name_copy(p->planner, json_object_get(j, "planner")))
		goto out;
	p->version = ver;
	p->hash_seed = seed;
	strcpy(p->digest, dig);
	p->nodes = calloc(json_array_size(nodes) + 1, sizeof(*p->nodes));
	p->svcs = calloc(json_array_size(svcs) + 1, sizeof(*p->svcs));
	p->pins = calloc(json_array_size(pins) + 1, sizeof(*p->pins));
	if (!p->nodes || !p->svcs || !p->pins) {
		err = -ENOMEM;
		goto out;
	}
	json_array_foreach(nodes, i, it)
	{
		json_int_t f = json_integer_value(json_object_get(it, "flags"));
		json_int_t c = json_integer_value(json_object_get(it, "cost"));

		/* every field of its type: a string or a float is no 0 */
		if (name_copy(p->nodes[i].name, json_object_get(it, "name")) ||
		    !json_is_integer(json_object_get(it, "flags")) ||
		    !json_is_integer(json_object_get(it, "cost")) || f < 0 || f > 255 || c < 0 ||
		    c > 0xffffffffLL)
			goto out;
		p->nodes[i].flags = f;
		p->nodes[i].cost = c;
		p->nnodes++;
	}
	json_array_foreach(svcs, i, it)
	{
		struct plan_svc *s = &p->svcs[i];
		json_t *mem = json_object_get(it, "members"), *how = json_object_get(it, "how");

		if (name_copy(s->name, json_object_get(it, "name")) || !json_is_array(mem) ||
		    (how && (!json_is_integer(how) || json_integer_value(how) < 0 ||
			     json_integer_value(how) > 0xffffffffLL)))
			goto out;
		s->how = json_integer_value(how);
		s->m = calloc(json_array_size(mem) + 1, sizeof(*s->m));
		p->nsvcs++;
		if (!s->m) {
			err = -ENOMEM;
			goto out;
		}
		json_array_foreach(mem, k, m)
		{
			json_int_t w = json_integer_value(json_object_get(m, "weight"));

			if (name_copy(s->m[k].name, json_object_get(m, "node")) ||
			    !json_is_integer(json_object_get(m, "weight")) || w < 0 ||
			    w > 0xffffffffLL)
				goto out;
			s->m[k].weight = w;
			s->n++;
		}
	}
	json_array_foreach(pins, i, it)
	{
		if (pin_decode(it, &p->pins[i]))
			goto out;
		p->npins++;
	}
	err = plan_check(p);
	if (!err) {
		char dig[PLAN_DIGEST_LEN];

		err = plan__digest(p, dig);
		if (!err && strcmp(dig, p->digest))
			err = -EINVAL;
	}
out:
	json_decref(j);
	if (err)
		plan__free(p);
	return err;
}

/* a pin's key: service, client (one pin each) */
static int pin_key_cmp(const void *x, const void *y)
{
	const struct plan_pin *a = x, *b = y;
	int c = strcmp(a->svc, b->svc);

	if (!c)
		c = (int)a->family - (int)b->family;
	if (!c)
		c = memcmp(&a->client, &b->client, sizeof(a->client));
	return c;
}

/* a pin's identity: service, client, node (what the digest covers) */
static int pin_cmp(const void *x, const void *y)
{
	const struct plan_pin *a = x, *b = y;
	int c = pin_key_cmp(a, b);

	if (!c)
		c = strcmp(a->node, b->node);
	return c;
}

/* latest expiry first */
static int pin_cmp_recent(const void *x, const void *y)
{
	const struct plan_pin *a = x, *b = y;

	if (a->expires_ms != b->expires_ms)
		return a->expires_ms > b->expires_ms ? -1 : 1;
	return pin_cmp(a, b);
}

void plan__bound_pins(struct plan *p)
{
	if (p->npins <= PLAN_MAX_PINS)
		return;
	qsort(p->pins, p->npins, sizeof(*p->pins), pin_cmp_recent);
	p->npins = PLAN_MAX_PINS;
}

static bool pins_same(const struct plan *prop, const struct plan *plan)
{
	if (prop->npins != plan->npins)
		return false;
	for (int i = 0; i < prop->npins; i++) {
		const struct plan_pin *a = &prop->pins[i], *b = NULL;

		/* small sets (PLAN_MAX_PINS), compared once per poll on the planner */
		for (int k = 0; k < plan->npins && !b; k++)
			if (!pin_cmp(a, &plan->pins[k]))
				b = &plan->pins[k];
		/* half the TTL, but not less than a second: near its end a pin's
		 * TTL is small and the poll's jitter alone would republish it */
		if (!b ||
		    (a->expires_ms > b->expires_ms &&
		     a->expires_ms - b->expires_ms > (a->ttl_ms / 2 > 1000 ? a->ttl_ms / 2 : 1000)))
			return false;
	}
	return true;
}

bool plan__same_content(const struct plan *a, const struct plan *b)
{
	if (a->hash_seed != b->hash_seed || a->nnodes != b->nnodes || a->nsvcs != b->nsvcs ||
	    !pins_same(a, b))
		return false;
	for (int i = 0; i < a->nnodes; i++)
		if (strcmp(a->nodes[i].name, b->nodes[i].name) ||
		    a->nodes[i].flags != b->nodes[i].flags || a->nodes[i].cost != b->nodes[i].cost)
			return false;
	for (int i = 0; i < a->nsvcs; i++) {
		const struct plan_svc *x = &a->svcs[i], *y = &b->svcs[i];

		if (strcmp(x->name, y->name) || x->how != y->how || x->n != y->n)
			return false;
		for (int k = 0; k < x->n; k++)
			if (strcmp(x->m[k].name, y->m[k].name) || x->m[k].weight != y->m[k].weight)
				return false;
	}
	return true;
}

int plan__node_flags(const struct plan *p, const char *name)
{
	for (int i = 0; i < p->nnodes; i++)
		if (!strcmp(p->nodes[i].name, name))
			return p->nodes[i].flags;
	return -1;
}

void plan__what_changed(const struct plan *prop, const struct plan *plan, char *buf, size_t len)
{
	snprintf(buf, len, "new");
	if (!plan->version)
		return;
	snprintf(buf, len, "nodes, services or seed");
	for (int i = 0; i < prop->nnodes && i < plan->nnodes; i++) {
		const struct plan_node *a = &prop->nodes[i], *b = &plan->nodes[i];

		if (strcmp(a->name, b->name))
			return;
		if (a->flags != b->flags) {
			snprintf(buf, len, "%s flags 0x%x -> 0x%x", a->name, b->flags, a->flags);
			return;
		}
		if (a->cost != b->cost) {
			snprintf(buf, len, "%s cost %u -> %u", a->name, b->cost, a->cost);
			return;
		}
	}
	for (int i = 0; i < prop->nsvcs && i < plan->nsvcs; i++)
		if (prop->svcs[i].how != plan->svcs[i].how) {
			snprintf(buf, len, "%s steering 0x%x -> 0x%x", prop->svcs[i].name,
				 plan->svcs[i].how, prop->svcs[i].how);
			return;
		}
	for (int i = 0; i < prop->nsvcs && i < plan->nsvcs; i++)
		for (int k = 0; k < prop->svcs[i].n && k < plan->svcs[i].n; k++)
			if (prop->svcs[i].m[k].weight != plan->svcs[i].m[k].weight) {
				snprintf(buf, len, "%s/%s weight %u -> %u", prop->svcs[i].name,
					 prop->svcs[i].m[k].name, plan->svcs[i].m[k].weight,
					 prop->svcs[i].m[k].weight);
				return;
			}
	if (!pins_same(prop, plan))
		snprintf(buf, len, "pins (%d -> %d)", plan->npins, prop->npins);
}

__u32 plan__node_cost(const struct plan *p, const char *name)
{
	for (int i = 0; i < p->nnodes; i++)
		if (!strcmp(p->nodes[i].name, name))
			return p->nodes[i].cost;
	return 0;
}

int plan__digest_with(const struct plan *p, plan_table_fn fn, plan_pins_fn pins_fn, void *arg,
		      char out[PLAN_DIGEST_LEN])
{
	__u16 *pos = malloc(AIBL_RING_SIZE * sizeof(*pos));
	XXH3_state_t *st = XXH3_createState();
	struct plan_pin *pins = NULL;
	__u32 *costs = NULL;
	__u8 *flags = NULL;
	int err = 0, npins = 0;

	out[0] = 0;
	if (!pos || !st || XXH3_64bits_reset(st)) {
		err = -ENOMEM;
		goto out;
	}
	XXH3_64bits_update(st, &p->hash_seed, sizeof(p->hash_seed));
	for (int si = 0; si < p->nsvcs; si++) {
		const struct plan_svc *s = &p->svcs[si];

		free(flags);
		free(costs);
		flags = calloc(s->n + 1, 1);
		costs = calloc(s->n + 1, sizeof(*costs));
		if (!flags || !costs) {
			err = -ENOMEM;
			goto out;
		}
		err = fn(arg, p, si, pos, flags, costs);
		if (err)
			goto out;
		XXH3_64bits_update(st, s->name, strlen(s->name) + 1);
		for (int k = 0; k < s->n; k++) {
			XXH3_64bits_update(st, s->m[k].name, strlen(s->m[k].name) + 1);
			XXH3_64bits_update(st, &flags[k], 1);
			XXH3_64bits_update(st, &costs[k], sizeof(costs[k]));
		}
		XXH3_64bits_update(st, pos, AIBL_RING_SIZE * sizeof(*pos));
	}
	/* the pins as a set: sorted by identity, each hashed without its expiry */
	if (pins_fn) {
		err = pins_fn(arg, p, &pins, &npins);
		if (err)
			goto out;
	} else if (p->npins) {
		pins = malloc(p->npins * sizeof(*pins));
		if (!pins) {
			err = -ENOMEM;
			goto out;
		}
		memcpy(pins, p->pins, p->npins * sizeof(*pins));
		npins = p->npins;
	}
	if (npins)
		qsort(pins, npins, sizeof(*pins), pin_cmp);
	for (int i = 0; i < npins; i++) {
		XXH3_64bits_update(st, pins[i].svc, strlen(pins[i].svc) + 1);
		XXH3_64bits_update(st, &pins[i].family, 1);
		XXH3_64bits_update(st, &pins[i].client, sizeof(pins[i].client));
		XXH3_64bits_update(st, pins[i].node, strlen(pins[i].node) + 1);
	}
	snprintf(out, PLAN_DIGEST_LEN, "%016llx", (unsigned long long)XXH3_64bits_digest(st));
out:
	free(pins);
	free(costs);
	free(flags);
	free(pos);
	XXH3_freeState(st);
	return err;
}

/* the table the plan asks for: Maglev over the plan's weights and seed */
static int plan_table(void *arg, const struct plan *p, int si, __u16 *pos, __u8 *flags,
		      __u32 *costs)
{
	const struct plan_svc *s = &p->svcs[si];
	struct maglev_in *in = calloc(s->n + 1, sizeof(*in));
	__u32 *idx = malloc(AIBL_RING_SIZE * sizeof(*idx));
	int err = -ENOMEM;

	if (!in || !idx)
		goto out;
	for (int k = 0; k < s->n; k++) {
		int f = plan__node_flags(p, s->m[k].name);

		in[k].name = s->m[k].name;
		in[k].weight = s->m[k].weight;
		flags[k] = f < 0 ? 0 : f;
		costs[k] = plan__node_cost(p, s->m[k].name);
	}
	err = maglev__build(in, s->n, p->hash_seed, idx, AIBL_RING_SIZE);
	if (err)
		goto out;
	for (__u32 i = 0; i < AIBL_RING_SIZE; i++)
		pos[i] = idx[i] == AIBL_NO_BACKEND ? PLAN_NO_POS : idx[i];
out:
	free(in);
	free(idx);
	return err;
}

int plan__digest(const struct plan *p, char out[PLAN_DIGEST_LEN])
{
	return plan__digest_with(p, plan_table, NULL, NULL, out);
}
