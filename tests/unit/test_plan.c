// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Cluster plan (user/aibld/plan.c): encode/decode round trip, refusal of
 * malformed plans, and the digest: a pure function of the tables (the same
 * for any balancer given the same plan, whatever the version), changed by a
 * weight, a flag or the seed, and equal to the digest of the same tables
 * handed in slot by slot (what a balancer reads back from its maps).
 * Also the etcd gateway's base64.
 */
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include "test.h"
#include "aibl.h"
#include "../../user/aibld/etcd.h"
#include "../../user/aibld/maglev.h"
#include "../../user/aibld/plan.h"

static void sample(struct plan *p)
{
	static const char *const nodes[] = {"n1", "n2", "n3"};

	memset(p, 0, sizeof(*p));
	p->version = 7;
	strcpy(p->planner, "b1");
	p->hash_seed = 0x6169626c;
	p->nnodes = 3;
	p->nodes = calloc(3, sizeof(*p->nodes));
	for (int i = 0; i < 3; i++) {
		strcpy(p->nodes[i].name, nodes[i]);
		p->nodes[i].flags = AIBL_BE_F_VALID;
	}
	p->nsvcs = 2;
	p->svcs = calloc(2, sizeof(*p->svcs));
	strcpy(p->svcs[0].name, "web");
	p->svcs[0].n = 3;
	p->svcs[0].m = calloc(3, sizeof(struct plan_member));
	for (int i = 0; i < 3; i++) {
		strcpy(p->svcs[0].m[i].name, nodes[i]);
		p->svcs[0].m[i].weight = 100 * (i + 1);
	}
	strcpy(p->svcs[1].name, "chat");
	p->svcs[1].n = 1;
	p->svcs[1].m = calloc(1, sizeof(struct plan_member));
	strcpy(p->svcs[1].m[0].name, "n2");
	p->svcs[1].m[0].weight = 5;
	plan__digest(p, p->digest);
}

static void round_trip(void)
{
	struct plan a, b;
	char *t1, *t2;

	sample(&a);
	t1 = plan__encode(&a);
	ASSERT_TRUE(t1 != NULL, "encode");
	ASSERT_OK(plan__decode(t1, &b), "decode");
	ASSERT_EQ(b.version, 7, "version");
	ASSERT_STREQ(b.planner, "b1", "planner");
	ASSERT_STREQ(b.digest, a.digest, "digest");
	ASSERT_TRUE(plan__same_content(&a, &b), "same content");
	t2 = plan__encode(&b);
	ASSERT_STREQ(t2, t1, "encoding is canonical");
	ASSERT_EQ(plan__node_flags(&b, "n3"), AIBL_BE_F_VALID, "flags");
	ASSERT_EQ(plan__node_flags(&b, "n9"), -1, "unknown node");
	free(t1);
	free(t2);
	plan__free(&a);
	plan__free(&b);
}

static void malformed(void)
{
	static const char *const bad[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"version\":0,\"planner\":\"b\",\"hash_seed\":1,\"digest\":\"x\","
	    "\"nodes\":[],\"services\":[]}",
	    "{\"version\":1,\"planner\":\"b\",\"hash_seed\":1,\"digest\":\"x\",\"nodes\":[{}],"
	    "\"services\":[]}",
	    "{\"version\":1,\"planner\":\"b\",\"hash_seed\":1,\"digest\":\"x\",\"nodes\":[],"
	    "\"services\":[{\"name\":\"s\",\"members\":[{\"node\":\"n\",\"weight\":-1}]}]}",
	    "{\"version\":1,\"planner\":\"this-name-is-far-too-long-for-aibl\",\"hash_seed\":1,"
	    "\"digest\":\"x\",\"nodes\":[],\"services\":[]}",
	};
	struct plan p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(plan__decode(bad[i], &p), -EINVAL, bad[i]);
		ASSERT_EQ(p.nsvcs, 0, "left empty");
	}
}

static void digest_sensitivity(void)
{
	struct plan a;
	char d0[PLAN_DIGEST_LEN], d1[PLAN_DIGEST_LEN];

	sample(&a);
	strcpy(d0, a.digest);
	ASSERT_EQ(strlen(d0), 16, "16 hex digits");
	a.version = 99;
	plan__digest(&a, d1);
	ASSERT_STREQ(d1, d0, "version is not part of the tables");
	a.svcs[0].m[1].weight++;
	plan__digest(&a, d1);
	ASSERT_TRUE(strcmp(d1, d0) != 0, "a weight changes it");
	a.svcs[0].m[1].weight--;
	a.nodes[2].flags |= AIBL_BE_F_DOWN;
	plan__digest(&a, d1);
	ASSERT_TRUE(strcmp(d1, d0) != 0, "a flag changes it");
	a.nodes[2].flags = AIBL_BE_F_VALID;
	a.hash_seed++;
	plan__digest(&a, d1);
	ASSERT_TRUE(strcmp(d1, d0) != 0, "the seed changes it");
	plan__free(&a);
}

/* a balancer's view: the tables handed in as built, by another route */
static int given_table(void *arg, const struct plan *p, int si, __u16 *pos, __u8 *flags)
{
	const struct plan_svc *s = &p->svcs[si];
	struct maglev_in in[8];
	__u32 *idx = malloc(AIBL_RING_SIZE * sizeof(*idx));
	int *corrupt = arg;

	for (int k = 0; k < s->n; k++) {
		in[k].name = s->m[k].name;
		in[k].weight = s->m[k].weight;
		flags[k] = plan__node_flags(p, s->m[k].name);
	}
	maglev__build(in, s->n, p->hash_seed, idx, AIBL_RING_SIZE);
	for (int i = 0; i < AIBL_RING_SIZE; i++)
		pos[i] = idx[i] == AIBL_NO_BACKEND ? PLAN_NO_POS : idx[i];
	if (*corrupt && si == 0)
		pos[123] = pos[123] == 0 ? 1 : 0; /* one slot off */
	free(idx);
	return 0;
}

static void digest_of_loaded_tables(void)
{
	char d[PLAN_DIGEST_LEN];
	struct plan a;
	int corrupt = 0;

	sample(&a);
	ASSERT_OK(plan__digest_with(&a, given_table, &corrupt, d), "digest");
	ASSERT_STREQ(d, a.digest, "loaded tables digest as the plan's");
	corrupt = 1;
	ASSERT_OK(plan__digest_with(&a, given_table, &corrupt, d), "digest");
	ASSERT_TRUE(strcmp(d, a.digest) != 0, "one slot off: another digest");
	plan__free(&a);
}

static void base64(void)
{
	static const char *const in[] = {"", "a", "ab", "abc", "/aibl/plan", "{\"x\":1}"};

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char *b = etcd__b64(in[i], strlen(in[i]));
		size_t n = 99;
		char *back = etcd__unb64(b, &n);

		ASSERT_TRUE(back != NULL, "decodes");
		ASSERT_EQ(n, strlen(in[i]), "length");
		ASSERT_STREQ(back, in[i], "round trip");
		free(b);
		free(back);
	}
	ASSERT_TRUE(etcd__unb64("abc", NULL) == NULL, "not a multiple of 4");
}

static const struct test_case cases[] = {
    {"round_trip", round_trip},
    {"malformed", malformed},
    {"digest_sensitivity", digest_sensitivity},
    {"digest_of_loaded_tables", digest_of_loaded_tables},
    {"base64", base64},
};

TEST_MAIN("plan", cases)
