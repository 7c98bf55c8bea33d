// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Cluster plan (user/aibld/plan.c): encode/decode round trip, refusal of
 * malformed plans, and the digest: a pure function of the tables (the same
 * for any balancer given the same plan, whatever the version), changed by a
 * weight, a flag or the seed, and equal to the digest of the same tables
 * handed in slot by slot (what a balancer reads back from its maps).
 * The plan's p2c costs and session pins: round trip, in the digest (pins
 * as a set, without their expiry), bounded to the latest PLAN_MAX_PINS,
 * and published again only when half a pin's TTL has passed.
 * Also the etcd gateway's base64.
 */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
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
	p->svcs[0].how = plan__svc_how(&(struct aibl_vip){.mode = AIBL_MODE_HASH});
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
	p->nodes[1].cost = 12;
	p->npins = 2;
	p->pins = calloc(2, sizeof(*p->pins));
	for (int i = 0; i < 2; i++) {
		struct plan_pin *pp = &p->pins[i];

		strcpy(pp->svc, "chat");
		strcpy(pp->node, "n2");
		pp->expires_ms = 1764680000000ULL + i;
		pp->ttl_ms = 60000;
	}
	p->pins[0].family = AIBL_AF_INET;
	inet_pton(AF_INET, "198.18.0.7", &p->pins[0].client);
	p->pins[1].family = AIBL_AF_INET6;
	inet_pton(AF_INET6, "2001:db8::7", &p->pins[1].client);
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
	plan__free(&b);
	/* a digest that is not the content's: refused, as the planner then
	 * writes the plan again */
	{
		char *t3 = strdup(t1), *d = strstr(t3, a.digest);

		if (ASSERT_TRUE(d != NULL, "digest in the text")) {
			d[0] = d[0] == '0' ? '1' : '0';
			ASSERT_EQ(plan__decode(t3, &b), -EINVAL, "wrong digest refused");
		}
		free(t3);
	}
	/* a pin's time as text is no 0 (the digest covers no times) */
	{
		const char *at = strstr(t1, "\"expires_ms\":");
		char t4[8192];

		if (ASSERT_TRUE(at && strlen(t1) + 2 < sizeof(t4), "a pin in the text")) {
			size_t head = at - t1 + strlen("\"expires_ms\":");
			const char *num = t1 + head, *end = num + strspn(num, "0123456789");

			snprintf(t4, sizeof(t4), "%.*s\"%.*s\"%s", (int)head, t1, (int)(end - num),
				 num, end);
			ASSERT_EQ(plan__decode(t4, &b), -EINVAL, "expires_ms as a string refused");
		}
	}
	ASSERT_OK(plan__decode(t1, &b), "decode again");
	ASSERT_EQ(plan__node_flags(&b, "n3"), AIBL_BE_F_VALID, "flags");
	ASSERT_EQ(plan__node_flags(&b, "n9"), -1, "unknown node");
	ASSERT_EQ(plan__node_cost(&b, "n2"), 12, "cost");
	ASSERT_EQ(b.svcs[0].how, a.svcs[0].how, "how the VIP steers");
	ASSERT_EQ(b.svcs[1].how, 0, "not said");
	ASSERT_EQ(b.npins, 2, "pins");
	ASSERT_TRUE(b.npins == 2 && !memcmp(b.pins, a.pins, 2 * sizeof(*a.pins)), "pins as sent");
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
	    /* what no planner writes, and balancers would compile apart: a
	     * node or service named twice, a member twice or not among the
	     * nodes, two pins for one service and client */
	    "{\"version\":1,\"planner\":\"b\",\"hash_seed\":1,\"digest\":\"x\",\"nodes\":["
	    "{\"name\":\"n1\",\"flags\":1,\"cost\":0},{\"name\":\"n1\",\"flags\":1,\"cost\":5}],"
	    "\"services\":[]}",
	    "{\"version\":1,\"planner\":\"b\",\"hash_seed\":1,\"digest\":\"x\",\"nodes\":[],"
	    "\"services\":[{\"name\":\"s\",\"members\":[]},{\"name\":\"s\",\"members\":[]}]}",
	    "{\"version\":1,\"planner\":\"b\",\"hash_seed\":1,\"digest\":\"x\",\"nodes\":["
	    "{\"name\":\"n1\",\"flags\":1,\"cost\":0}],\"services\":[{\"name\":\"s\",\"members\":["
	    "{\"node\":\"n1\",\"weight\":1},{\"node\":\"n1\",\"weight\":2}]}]}",
	    "{\"version\":1,\"planner\":\"b\",\"hash_seed\":1,\"digest\":\"x\",\"nodes\":["
	    "{\"name\":\"n1\",\"flags\":1,\"cost\":0}],\"services\":[{\"name\":\"s\",\"members\":["
	    "{\"node\":\"n2\",\"weight\":1}]}]}",
	    "{\"version\":1,\"planner\":\"b\",\"hash_seed\":1,\"digest\":\"x\",\"nodes\":[],"
	    "\"services\":[],\"pins\":[{\"service\":\"s\",\"client\":\"10.0.0.1\",\"node\":\"n1\","
	    "\"expires_ms\":1,\"ttl_ms\":1},{\"service\":\"s\",\"client\":\"10.0.0.1\",\"node\":"
	    "\"n2\",\"expires_ms\":2,\"ttl_ms\":1}]}",
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
	a.hash_seed--;
	a.nodes[1].cost++;
	plan__digest(&a, d1);
	ASSERT_TRUE(strcmp(d1, d0) != 0, "a cost changes it");
	a.nodes[1].cost--;
	strcpy(a.pins[0].node, "n3");
	plan__digest(&a, d1);
	ASSERT_TRUE(strcmp(d1, d0) != 0, "a pin's node changes it");
	strcpy(a.pins[0].node, "n2");
	a.pins[0].expires_ms += 5000;
	plan__digest(&a, d1);
	ASSERT_STREQ(d1, d0, "a pin's expiry does not");
	a.npins = 1;
	plan__digest(&a, d1);
	ASSERT_TRUE(strcmp(d1, d0) != 0, "a pin less changes it");
	plan__free(&a);
}

/* a balancer's view: the tables handed in as built, by another route */
static int given_table(void *arg, const struct plan *p, int si, __u16 *pos, __u8 *flags,
		       __u32 *costs)
{
	const struct plan_svc *s = &p->svcs[si];
	struct maglev_in in[8];
	__u32 *idx = malloc(AIBL_RING_SIZE * sizeof(*idx));
	int *corrupt = arg;

	for (int k = 0; k < s->n; k++) {
		in[k].name = s->m[k].name;
		in[k].weight = s->m[k].weight;
		flags[k] = plan__node_flags(p, s->m[k].name);
		costs[k] = plan__node_cost(p, s->m[k].name);
	}
	maglev__build(in, s->n, p->hash_seed, idx, AIBL_RING_SIZE);
	for (int i = 0; i < AIBL_RING_SIZE; i++)
		pos[i] = idx[i] == AIBL_NO_BACKEND ? PLAN_NO_POS : idx[i];
	if (*corrupt == 1 && si == 0)
		pos[123] = pos[123] == 0 ? 1 : 0; /* one slot off */
	free(idx);
	return 0;
}

/* the pins as a balancer reads them back: in map order (reversed here),
 * without expiry; corrupt 2: one pin on another node */
static int given_pins(void *arg, const struct plan *p, struct plan_pin **out, int *n)
{
	int *corrupt = arg;

	*out = calloc(p->npins + 1, sizeof(**out));
	for (int i = 0; i < p->npins; i++) {
		(*out)[i] = p->pins[p->npins - 1 - i];
		(*out)[i].expires_ms = 0;
	}
	if (*corrupt == 2 && p->npins)
		strcpy((*out)[0].node, "n1");
	*n = p->npins;
	return 0;
}

static void digest_of_loaded_tables(void)
{
	char d[PLAN_DIGEST_LEN];
	struct plan a;
	int corrupt = 0;

	sample(&a);
	ASSERT_OK(plan__digest_with(&a, given_table, given_pins, &corrupt, d), "digest");
	ASSERT_STREQ(d, a.digest, "loaded tables and pins digest as the plan's");
	corrupt = 1;
	ASSERT_OK(plan__digest_with(&a, given_table, given_pins, &corrupt, d), "digest");
	ASSERT_TRUE(strcmp(d, a.digest) != 0, "one slot off: another digest");
	corrupt = 2;
	ASSERT_OK(plan__digest_with(&a, given_table, given_pins, &corrupt, d), "digest");
	ASSERT_TRUE(strcmp(d, a.digest) != 0, "one pin elsewhere: another digest");
	/* how a VIP steers is compared apart (cluster.c): a balancer older
	 * than it computes the digest without it, and must read the plan */
	corrupt = 0;
	a.svcs[0].how ^= 1;
	ASSERT_OK(plan__digest_with(&a, given_table, given_pins, &corrupt, d), "digest");
	ASSERT_STREQ(d, a.digest, "how: not in the digest");
	plan__free(&a);
}

static void pins_refresh_and_bound(void)
{
	struct plan plan, prop;

	sample(&plan);
	sample(&prop);
	ASSERT_TRUE(plan__same_content(&prop, &plan), "same");
	/* the proposal's expiry moves on with every poll: no new plan until
	 * half the TTL passed */
	prop.pins[0].expires_ms += 30000;
	ASSERT_TRUE(plan__same_content(&prop, &plan), "refreshed by half the TTL: same");
	prop.pins[0].expires_ms += 1;
	ASSERT_FALSE(plan__same_content(&prop, &plan), "past half the TTL: publish again");
	prop.pins[0].expires_ms = plan.pins[0].expires_ms;
	strcpy(prop.pins[1].node, "n1");
	ASSERT_FALSE(plan__same_content(&prop, &plan), "a pin moved");
	strcpy(prop.pins[1].node, "n2");
	prop.nodes[0].cost = 3;
	ASSERT_FALSE(plan__same_content(&prop, &plan), "a cost moved");
	plan__free(&prop);

	/* PLAN_MAX_PINS + 10 pins: the latest-expiring kept */
	prop.npins = PLAN_MAX_PINS + 10;
	prop.pins = calloc(prop.npins, sizeof(*prop.pins));
	for (int i = 0; i < prop.npins; i++) {
		strcpy(prop.pins[i].svc, "chat");
		strcpy(prop.pins[i].node, "n1");
		prop.pins[i].family = AIBL_AF_INET;
		prop.pins[i].client.v4 = htonl(0x0a000000 + i);
		prop.pins[i].expires_ms = 1000 + (i * 7919) % prop.npins;
	}
	plan__bound_pins(&prop);
	ASSERT_EQ(prop.npins, PLAN_MAX_PINS, "bounded");
	{
		__u64 min = ~0ULL;

		for (int i = 0; i < prop.npins; i++)
			if (prop.pins[i].expires_ms < min)
				min = prop.pins[i].expires_ms;
		ASSERT_EQ(min, 1000 + 10, "the 10 oldest dropped");
	}
	free(prop.pins);
	plan__free(&plan);
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
    {"pins_refresh_and_bound", pins_refresh_and_bound},
    {"base64", base64},
};

TEST_MAIN("plan", cases)
