// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Plan encode/decode (JSON) and digest (see plan.h). The JSON:
 *   {"version": N, "planner": "b1", "hash_seed": S, "digest": "hex",
 *    "nodes": [{"name": "n1", "flags": 1}, ...],
 *    "services": [{"name": "web", "members": [{"node": "n1", "weight": 100}, ...]}]}
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <xxhash.h>
#include "maglev.h"
#include "plan.h"

void plan__free(struct plan *p)
{
	for (int i = 0; p->svcs && i < p->nsvcs; i++)
		free(p->svcs[i].m);
	free(p->svcs);
	free(p->nodes);
	memset(p, 0, sizeof(*p));
}

char *plan__encode(const struct plan *p)
{
	json_t *nodes = json_array(), *svcs = json_array(), *j;
	char *text;

	for (int i = 0; i < p->nnodes; i++)
		json_array_append_new(nodes, json_pack("{s:s,s:i}", "name", p->nodes[i].name,
						       "flags", (int)p->nodes[i].flags));
	for (int i = 0; i < p->nsvcs; i++) {
		json_t *m = json_array();

		for (int k = 0; k < p->svcs[i].n; k++)
			json_array_append_new(m, json_pack("{s:s,s:I}", "node",
							   p->svcs[i].m[k].name, "weight",
							   (json_int_t)p->svcs[i].m[k].weight));
		json_array_append_new(
		    svcs, json_pack("{s:s,s:o}", "name", p->svcs[i].name, "members", m));
	}
	j = json_pack("{s:I,s:s,s:I,s:s,s:o,s:o}", "version", (json_int_t)p->version, "planner",
		      p->planner, "hash_seed", (json_int_t)p->hash_seed, "digest", p->digest,
		      "nodes", nodes, "services", svcs);
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

int plan__decode(const char *text, struct plan *p)
{
	json_t *j = json_loads(text, 0, NULL), *nodes, *svcs, *it, *m;
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
	if (ver <= 0 || seed < 0 || seed > 0xffffffffLL || !dig || strlen(dig) >= PLAN_DIGEST_LEN ||
	    !json_is_array(nodes) || !json_is_array(svcs) ||
	    name_copy(p->planner, json_object_get(j, "planner")))
		goto out;
	p->version = ver;
	p->hash_seed = seed;
	strcpy(p->digest, dig);
	p->nodes = calloc(json_array_size(nodes) + 1, sizeof(*p->nodes));
	p->svcs = calloc(json_array_size(svcs) + 1, sizeof(*p->svcs));
	if (!p->nodes || !p->svcs) {
		err = -ENOMEM;
		goto out;
	}
	json_array_foreach(nodes, i, it)
	{
		json_int_t f = json_integer_value(json_object_get(it, "flags"));

		if (name_copy(p->nodes[i].name, json_object_get(it, "name")) || f < 0 || f > 255)
			goto out;
		p->nodes[i].flags = f;
		p->nnodes++;
	}
	json_array_foreach(svcs, i, it)
	{
		struct plan_svc *s = &p->svcs[i];
		json_t *mem = json_object_get(it, "members");

		if (name_copy(s->name, json_object_get(it, "name")) || !json_is_array(mem))
			goto out;
		s->m = calloc(json_array_size(mem) + 1, sizeof(*s->m));
		p->nsvcs++;
		if (!s->m) {
			err = -ENOMEM;
			goto out;
		}
		json_array_foreach(mem, k, m)
		{
			json_int_t w = json_integer_value(json_object_get(m, "weight"));

			if (name_copy(s->m[k].name, json_object_get(m, "node")) || w < 0 ||
			    w > 0xffffffffLL)
				goto out;
			s->m[k].weight = w;
			s->n++;
		}
	}
	err = 0;
out:
	json_decref(j);
	if (err)
		plan__free(p);
	return err;
}

bool plan__same_content(const struct plan *a, const struct plan *b)
{
	if (a->hash_seed != b->hash_seed || a->nnodes != b->nnodes || a->nsvcs != b->nsvcs)
		return false;
	for (int i = 0; i < a->nnodes; i++)
		if (strcmp(a->nodes[i].name, b->nodes[i].name) ||
		    a->nodes[i].flags != b->nodes[i].flags)
			return false;
	for (int i = 0; i < a->nsvcs; i++) {
		const struct plan_svc *x = &a->svcs[i], *y = &b->svcs[i];

		if (strcmp(x->name, y->name) || x->n != y->n)
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

int plan__digest_with(const struct plan *p, plan_table_fn fn, void *arg, char out[PLAN_DIGEST_LEN])
{
	__u16 *pos = malloc(AIBL_RING_SIZE * sizeof(*pos));
	XXH3_state_t *st = XXH3_createState();
	__u8 *flags = NULL;
	int err = 0;

	out[0] = 0;
	if (!pos || !st || XXH3_64bits_reset(st)) {
		err = -ENOMEM;
		goto out;
	}
	XXH3_64bits_update(st, &p->hash_seed, sizeof(p->hash_seed));
	for (int si = 0; si < p->nsvcs; si++) {
		const struct plan_svc *s = &p->svcs[si];

		free(flags);
		flags = calloc(s->n + 1, 1);
		if (!flags) {
			err = -ENOMEM;
			goto out;
		}
		err = fn(arg, p, si, pos, flags);
		if (err)
			goto out;
		XXH3_64bits_update(st, s->name, strlen(s->name) + 1);
		for (int k = 0; k < s->n; k++) {
			XXH3_64bits_update(st, s->m[k].name, strlen(s->m[k].name) + 1);
			XXH3_64bits_update(st, &flags[k], 1);
		}
		XXH3_64bits_update(st, pos, AIBL_RING_SIZE * sizeof(*pos));
	}
	snprintf(out, PLAN_DIGEST_LEN, "%016llx", (unsigned long long)XXH3_64bits_digest(st));
out:
	free(flags);
	free(pos);
	XXH3_freeState(st);
	return err;
}

/* the table the plan asks for: Maglev over the plan's weights and seed */
static int plan_table(void *arg, const struct plan *p, int si, __u16 *pos, __u8 *flags)
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
	return plan__digest_with(p, plan_table, NULL, out);
}
