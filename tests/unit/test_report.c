// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* agent_report__parse / __to_json: round trip, refusals, limits. */
#include <stdlib.h>
#include <math.h>
#include <netinet/in.h>
#include "test.h"
#include "addr.h"
#include "report.h"

static void fill(struct agent_report *r)
{
	agent_report__init(r);
	strcpy(r->node, "node-a");
	strcpy(r->version, "0.1");
	r->timestamp_ms = 1700000000123ULL;
	r->nvml = true;
	r->ngpus = 2;
	for (int i = 0; i < 2; i++) {
		r->gpus[i].index = i;
		snprintf(r->gpus[i].name, sizeof(r->gpus[i].name), "NVIDIA H100 80GB HBM3 #%d", i);
		r->gpus[i].util_pct = 37.5 + i;
		r->gpus[i].mem_used_bytes = 12345678901.0;
		r->gpus[i].mem_total_bytes = 85899345920.0;
		r->gpus[i].temp_c = 61;
		r->gpus[i].power_w = 301.25;
	}
	r->nservers = 1;
	strcpy(r->servers[0].url, "http://127.0.0.1:8000");
	strcpy(r->servers[0].kind, "vllm");
	r->servers[0].up = true;
	r->servers[0].age_ms = 250;
	r->servers[0].queue_depth = 3;
	r->servers[0].running = 8;
	r->servers[0].kv_cache_usage = 0.4321;
	r->servers[0].prefix_cache_hit_rate = -1;
	r->servers[0].ttft_avg_ms = 123.456;
	r->servers[0].e2e_avg_ms = 654.5;
	r->servers[0].run_avg_ms = 432.25;
	r->servers[0].prefill_avg_ms = 101.5;
	r->servers[0].prefill_tokens_avg = 2048;
	r->servers[0].prompt_tokens_avg = 2100.5;
	r->servers[0].since_finish_ms = 1800;
	r->servers[0].probe_ms_per_token = 12.5;
	r->servers[0].slots = 256;
	r->nmodels = 2;
	strcpy(r->models[0].name, "llama-3-8b");
	r->models[0].resident = true;
	strcpy(r->models[0].server, r->servers[0].url);
	strcpy(r->models[1].name, "mistral \"7b\"\n\\x");
	r->models[1].unloading = true;
	r->queue_depth = 3;
	r->in_flight = 11;
	r->kv_cache_usage = 0.4321;
	r->ttft_avg_ms = 123.456;
	r->e2e_avg_ms = 654.5;
	r->run_avg_ms = 432.25;
	r->prefill_avg_ms = 101.5;
	r->prompt_tokens_avg = 2100.5;
	r->since_finish_ms = 1800;
	r->probe_ms_per_token = 12.5;
	r->slots = 256;
	r->nhints = 2;
	r->hints = calloc(2, sizeof(*r->hints));
	aibl_addr__parse("10.0.0.5", &r->hints[0].client, &r->hints[0].client_family);
	aibl_addr__parse("10.100.0.1", &r->hints[0].vip, &r->hints[0].vip_family);
	r->hints[0].port = 80;
	r->hints[0].proto = IPPROTO_TCP;
	r->hints[0].ttl_ms = 60000;
	r->hints[0].score = 0.9;
	strcpy(r->hints[0].source, "traffic");
	aibl_addr__parse("2001:db8::5", &r->hints[1].client, &r->hints[1].client_family);
	strcpy(r->hints[1].model, "llama-3-8b");
	r->hints[1].ttl_ms = 1000;
	r->hints[1].score = 0.25;
	strcpy(r->hints[1].source, "server");
	r->decap = true;
	strcpy(r->decap_if, "eth0");
	for (int i = 0; i < AIBL_NCNT__MAX; i++)
		r->decap_counters[i] = 1000 + i;
	r->decap_counters[AIBL_NCNT_DECAP4] = 9007199254740993LL; /* past a double's 2^53 */
}

static void round_trip(void)
{
	struct agent_report a, b;
	char err[256], ip[INET6_ADDRSTRLEN], *js, *js2 = NULL;

	fill(&a);
	js = agent_report__to_json(&a);
	if (!ASSERT_OK_PTR(js, "to_json"))
		goto out;
	if (!ASSERT_OK(agent_report__parse(js, strlen(js), &b, err, sizeof(err)), err))
		goto out;
	ASSERT_EQ(b.schema, AGENT_REPORT_SCHEMA, "schema");
	ASSERT_STREQ(b.node, "node-a", "node");
	ASSERT_EQ(b.timestamp_ms, a.timestamp_ms, "timestamp");
	ASSERT_TRUE(b.nvml, "nvml");
	ASSERT_EQ(b.ngpus, 2, "ngpus");
	ASSERT_STREQ(b.gpus[1].name, a.gpus[1].name, "gpu name");
	ASSERT_TRUE(b.gpus[1].util_pct == a.gpus[1].util_pct, "util exact");
	ASSERT_TRUE(b.gpus[0].mem_used_bytes == a.gpus[0].mem_used_bytes, "mem exact");
	ASSERT_TRUE(b.gpus[0].power_w == 301.25, "power");
	ASSERT_EQ(b.nservers, 1, "nservers");
	ASSERT_STREQ(b.servers[0].kind, "vllm", "kind");
	ASSERT_TRUE(b.servers[0].up, "up");
	ASSERT_EQ(b.servers[0].age_ms, 250, "age");
	ASSERT_TRUE(b.servers[0].kv_cache_usage == 0.4321, "kv exact");
	ASSERT_TRUE(b.servers[0].prefix_cache_hit_rate == -1, "unknown stays unknown");
	ASSERT_TRUE(b.prefix_cache_hit_rate == -1, "node unknown");
	ASSERT_TRUE(b.ttft_avg_ms == 123.456, "ttft");
	ASSERT_TRUE(b.e2e_avg_ms == 654.5 && b.servers[0].e2e_avg_ms == 654.5, "e2e");
	ASSERT_TRUE(b.run_avg_ms == 432.25 && b.servers[0].run_avg_ms == 432.25, "run");
	ASSERT_TRUE(b.prefill_avg_ms == 101.5 && b.servers[0].prefill_avg_ms == 101.5, "prefill");
	ASSERT_TRUE(b.prefill_tokens_avg == -1 && b.servers[0].prefill_tokens_avg == 2048,
		    "prefill tokens: the node's unknown, the server's sent");
	ASSERT_TRUE(b.prompt_tokens_avg == 2100.5 && b.servers[0].prompt_tokens_avg == 2100.5,
		    "whole prompts");
	ASSERT_TRUE(b.since_finish_ms == 1800 && b.servers[0].since_finish_ms == 1800,
		    "since finish");
	ASSERT_TRUE(b.probe_ms_per_token == 12.5 && b.servers[0].probe_ms_per_token == 12.5,
		    "speed probe");
	ASSERT_TRUE(b.slots == 256 && b.servers[0].slots == 256, "stated slots");
	ASSERT_EQ(b.nmodels, 2, "nmodels");
	ASSERT_STREQ(b.models[1].name, a.models[1].name, "escaped model name");
	ASSERT_FALSE(b.models[1].resident, "not resident");
	ASSERT_TRUE(b.models[1].unloading, "unloading");
	ASSERT_FALSE(b.models[0].unloading, "not unloading");
	ASSERT_STREQ(agent_report__unloading(&b), a.models[1].name, "the model unloading");
	ASSERT_EQ(b.nhints, 2, "nhints");
	ASSERT_STREQ(aibl_addr__str(&b.hints[0].vip, b.hints[0].vip_family, ip, sizeof(ip)),
		     "10.100.0.1", "hint vip");
	ASSERT_MEMEQ(&b.hints[0].client, &a.hints[0].client, sizeof(a.hints[0].client),
		     "hint client binary");
	ASSERT_EQ(b.hints[0].port, 80, "hint port");
	ASSERT_EQ(b.hints[0].proto, IPPROTO_TCP, "hint proto");
	ASSERT_STREQ(b.hints[0].source, "traffic", "hint source");
	ASSERT_STREQ(aibl_addr__str(&b.hints[1].client, b.hints[1].client_family, ip, sizeof(ip)),
		     "2001:db8::5", "v6 client");
	ASSERT_EQ(b.hints[1].vip_family, AIBL_AF_NONE, "no vip");
	ASSERT_EQ(b.hints[1].proto, 0, "no proto");
	ASSERT_TRUE(b.hints[1].score == 0.25, "score");
	ASSERT_TRUE(b.decap, "decap");
	ASSERT_STREQ(b.decap_if, "eth0", "decap interface");
	ASSERT_MEMEQ(b.decap_counters, a.decap_counters, sizeof(a.decap_counters),
		     "decap counters exact");
	/* drop_truncated, drop_adjust, drop_source, drop_not_vip, drop_bad_outer,
	 * drop_bad_inner and drop_ecn; not pass, the decapsulated,
	 * refuse_not_local (passed on), direct_vip, ecn_ce nor unconfirmed (passed,
	 * unrecorded) */
	ASSERT_EQ(agent_report__decap_dropped(&b),
		  7000 + AIBL_NCNT_DROP_TRUNC + AIBL_NCNT_DROP_ADJUST + AIBL_NCNT_DROP_SOURCE +
		      AIBL_NCNT_DROP_NOT_VIP + AIBL_NCNT_DROP_BAD_OUTER + AIBL_NCNT_DROP_BAD_INNER +
		      AIBL_NCNT_DROP_ECN,
		  "dropped: the drop_ counters");
	/* serialising the parsed copy gives the same bytes */
	js2 = agent_report__to_json(&b);
	if (ASSERT_OK_PTR(js2, "to_json 2"))
		ASSERT_STREQ(js2, js, "stable");
	agent_report__free(&b);
out:
	free(js);
	free(js2);
	agent_report__free(&a);
}

static void nan_is_null(void)
{
	struct agent_report a, b;
	char err[256], *js;

	agent_report__init(&a);
	strcpy(a.node, "n");
	a.kv_cache_usage = NAN;
	a.ttft_avg_ms = INFINITY;
	js = agent_report__to_json(&a);
	if (!ASSERT_OK_PTR(js, "to_json"))
		return;
	ASSERT_TRUE(strstr(js, "\"kv_cache_usage\":null") != NULL, "null in JSON");
	if (ASSERT_OK(agent_report__parse(js, strlen(js), &b, err, sizeof(err)), err)) {
		ASSERT_TRUE(b.kv_cache_usage == -1, "reads as unknown");
		ASSERT_TRUE(b.ttft_avg_ms == -1, "inf reads as unknown");
		ASSERT_FALSE(b.nvml, "no nvml");
		ASSERT_EQ(b.ngpus, 0, "no gpus");
	}
	agent_report__free(&b);
	free(js);
}

/*
 * What an engine wrote that is no UTF-8 (a LoRA name, a byte quoted in its
 * parser's note) still makes a report, those bytes as '?': refused, it
 * made every balancer take the node for broken.
 */
static void text_not_utf8(void)
{
	struct agent_report a, b;
	char err[256], *js;

	fill(&a);
	strcpy(a.servers[0].error, "metrics /metrics: line 3: unexpected '\xc3'");
	strcpy(a.models[0].name, "caf\xe9");
	/* an interface name is any bytes (ip link set eth1 name $'\xff1') */
	strcpy(a.decap_if, "\xff"
			   "1");
	js = agent_report__to_json(&a);
	if (!ASSERT_OK_PTR(js, "to_json"))
		return;
	if (ASSERT_OK(agent_report__parse(js, strlen(js), &b, err, sizeof(err)), err)) {
		ASSERT_STREQ(b.models[0].name, "caf?", "the name, its byte as '?'");
		ASSERT_STREQ(b.decap_if, "?1", "the decap interface likewise");
		ASSERT_STREQ(b.servers[0].error, "metrics /metrics: line 3: unexpected '?'",
			     "the note likewise");
		agent_report__free(&b);
	}
	agent_report__free(&a);
	free(js);
}

/* hints past what fits AR_MAX_BYTES are left out: a report every reader
 * refuses would take the node out for as long as its hints live */
static void hints_fit(void)
{
	struct agent_report a, b;
	char err[256], *js;
	struct ar_hint *h;

	fill(&a);
	h = realloc(a.hints, AR_MAX_HINTS * sizeof(*h));
	if (!ASSERT_OK_PTR(h, "hints"))
		return;
	a.hints = h;
	for (int i = 0; i < AR_MAX_HINTS; i++) {
		memset(&h[i], 0, sizeof(h[i]));
		aibl_addr__parse("2001:db8:1234:5678:9abc:def0:1234:5678", &h[i].client,
				 &h[i].client_family);
		/* the longest name a hint may carry */
		snprintf(h[i].model, sizeof(h[i].model), "lora-%05d-%0*d", i,
			 (int)sizeof(h[i].model) - 12, 0);
		h[i].ttl_ms = 60000;
		h[i].score = 0.123456789;
		strcpy(h[i].source, "server");
	}
	a.nhints = AR_MAX_HINTS;
	js = agent_report__to_json(&a);
	if (!ASSERT_OK_PTR(js, "to_json"))
		goto out;
	ASSERT_LE(strlen(js), AR_MAX_BYTES, "within what readers take");
	if (ASSERT_OK(agent_report__parse(js, strlen(js), &b, err, sizeof(err)), err)) {
		printf("  %d of %d hints in %zu bytes\n", b.nhints, AR_MAX_HINTS, strlen(js));
		ASSERT_TRUE(b.nhints > 1000 && b.nhints < AR_MAX_HINTS, "the first hints kept");
		ASSERT_STREQ(b.hints[0].model, a.hints[0].model, "in the table's order");
		ASSERT_EQ(b.nservers, a.nservers, "the rest whole");
		agent_report__free(&b);
	}
	free(js);
out:
	agent_report__free(&a);
}

/* minimal valid prefix; each case appends its own members */
#define HEAD "{\"schema\":1,\"node\":\"n\""

static const struct bad_case {
	const char *name;
	const char *body;
	int err;
	const char *msg; /* substring of the message */
} bad_cases[] = {
    {"not json", "{\"schema\":1,", -EINVAL, "invalid JSON"},
    {"not object", "[1,2]", -EINVAL, "expected a JSON object"},
    {"empty", "", -EINVAL, "invalid JSON"},
    {"no schema", "{\"node\":\"n\"}", -EINVAL, "schema: missing"},
    {"schema string", "{\"schema\":\"1\",\"node\":\"n\"}", -EINVAL, "schema: expected"},
    {"schema 2", "{\"schema\":2,\"node\":\"n\"}", -EPROTO, "not supported"},
    {"no node", "{\"schema\":1}", -EINVAL, "node: missing"},
    {"empty node", "{\"schema\":1,\"node\":\"\"}", -EINVAL, "node: empty"},
    {"node number", "{\"schema\":1,\"node\":5}", -EINVAL, "node: expected a string"},
    {"duplicate key", HEAD ",\"node\":\"m\"}", -EINVAL, "duplicate"},
    {"nvml string", HEAD ",\"nvml\":\"yes\"}", -EINVAL, "nvml: expected true"},
    {"timestamp negative", HEAD ",\"timestamp_ms\":-5}", -EINVAL, "out of range"},
    {"timestamp real", HEAD ",\"timestamp_ms\":1.5}", -EINVAL, "expected an integer"},
    {"kv over 1", HEAD ",\"kv_cache_usage\":1.5}", -EINVAL, "kv_cache_usage: 1.5 out of range"},
    {"queue string", HEAD ",\"queue_depth\":\"3\"}", -EINVAL, "queue_depth: expected a number"},
    {"probe negative", HEAD ",\"probe_ms_per_token\":-3}", -EINVAL,
     "probe_ms_per_token: -3 out of range"},
    {"slots 0", HEAD ",\"slots\":0}", -EINVAL, "slots: 0 out of range"},
    {"server slots huge", HEAD ",\"servers\":[{\"url\":\"u\",\"up\":true,\"slots\":1e6}]}", -EINVAL,
     "servers[0].slots: 1e+06 out of range"},
    {"prefill negative", HEAD ",\"prefill_avg_ms\":-2}", -EINVAL,
     "prefill_avg_ms: -2 out of range"},
    {"prefill tokens string", HEAD ",\"prefill_tokens_avg\":\"many\"}", -EINVAL,
     "prefill_tokens_avg: expected a number"},
    {"prompt tokens huge", HEAD ",\"prompt_tokens_avg\":1e12}", -EINVAL,
     "prompt_tokens_avg: 1e+12 out of range"},
    {"gpus not array", HEAD ",\"nvml\":true,\"gpus\":{}}", -EINVAL, "gpus: expected an array"},
    {"gpus without nvml", HEAD ",\"gpus\":[{\"index\":0}]}", -EINVAL, "nvml is false"},
    {"gpu not object", HEAD ",\"nvml\":true,\"gpus\":[3]}", -EINVAL, "gpus[0]: expected"},
    {"gpu util 101", HEAD ",\"nvml\":true,\"gpus\":[{\"index\":0,\"util_pct\":101}]}", -EINVAL,
     "gpus[0].util_pct"},
    {"gpu temp string", HEAD ",\"nvml\":true,\"gpus\":[{\"index\":0,\"temp_c\":\"hot\"}]}", -EINVAL,
     "gpus[0].temp_c: expected a number or null"},
    {"gpu mig index", HEAD ",\"nvml\":true,\"gpus\":[{\"index\":0,\"mig_index\":-1}]}", -EINVAL,
     "gpus[0].mig_index"},
    {"gpus omitted", HEAD ",\"gpus_omitted\":-1}", -EINVAL, "gpus_omitted"},
    {"gpu no index", HEAD ",\"nvml\":true,\"gpus\":[{\"util_pct\":1}]}", -EINVAL,
     "gpus[0].index: missing"},
    {"gpu mem used > total",
     HEAD ",\"nvml\":true,\"gpus\":[{\"index\":0,\"mem_used_bytes\":10,\"mem_total_bytes\":5}]}",
     -EINVAL, "exceeds"},
    {"server no url", HEAD ",\"servers\":[{\"kind\":\"vllm\"}]}", -EINVAL, "servers[0].url"},
    {"server bad kind", HEAD ",\"servers\":[{\"url\":\"u\",\"kind\":\"koboldcpp\"}]}", -EINVAL,
     "unknown server kind"},
    {"server up string", HEAD ",\"servers\":[{\"url\":\"u\",\"up\":1}]}", -EINVAL, "servers[0].up"},
    {"model no name", HEAD ",\"models\":[{\"resident\":true}]}", -EINVAL, "models[0].name"},
    {"unloading resident",
     HEAD ",\"models\":[{\"name\":\"m\",\"resident\":true,\"unloading\":true}]}", -EINVAL,
     "models[0]: unloading and resident"},
    {"unloading string", HEAD ",\"models\":[{\"name\":\"m\",\"unloading\":\"yes\"}]}", -EINVAL,
     "models[0].unloading: expected true"},
    {"model empty name", HEAD ",\"models\":[{\"name\":\"\"}]}", -EINVAL, "empty"},
    {"hint bad client",
     HEAD ",\"hints\":[{\"client\":\"10.0.0\",\"vip\":\"10.1.1.1\",\"ttl_ms\":1}]}", -EINVAL,
     "not an IP address"},
    {"hint bad vip", HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"vip\":\"x\",\"ttl_ms\":1}]}",
     -EINVAL, "hints[0].vip"},
    {"hint no target", HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"ttl_ms\":1}]}", -EINVAL,
     "needs a vip or a model"},
    {"hint port",
     HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"vip\":\"10.1.1.1\",\"port\":70000,"
	  "\"ttl_ms\":1}]}",
     -EINVAL, "hints[0].port"},
    {"hint proto",
     HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"vip\":\"10.1.1.1\",\"proto\":\"sctp\","
	  "\"ttl_ms\":1}]}",
     -EINVAL, "not tcp or udp"},
    {"hint no ttl", HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"vip\":\"10.1.1.1\"}]}", -EINVAL,
     "ttl_ms: missing"},
    {"hint score 2",
     HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"model\":\"m\",\"ttl_ms\":1,"
	  "\"score\":2}]}",
     -EINVAL, "score"},
    {"hint model control",
     HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"model\":\"m\\u0001\",\"ttl_ms\":1}]}", -EINVAL,
     "hints[0].model: a control character (0x01)"},
    {"hint source",
     HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"model\":\"m\",\"ttl_ms\":1,"
	  "\"source\":\"rumour\"}]}",
     -EINVAL, "hints[0].source"},
    {"second hint bad",
     HEAD ",\"hints\":[{\"client\":\"10.0.0.1\",\"model\":\"m\",\"ttl_ms\":1},"
	  "{\"client\":\"10.0.0.2\",\"model\":7,\"ttl_ms\":1}]}",
     -EINVAL, "hints[1].model"},
    {"decap not object", HEAD ",\"decap\":[1]}", -EINVAL, "decap: expected an object"},
    {"decap no interface", HEAD ",\"decap\":{\"counters\":{}}}", -EINVAL,
     "decap.interface: missing"},
    {"decap no counters", HEAD ",\"decap\":{\"interface\":\"eth0\"}}", -EINVAL,
     "decap.counters: missing"},
    {"decap counter negative",
     HEAD ",\"decap\":{\"interface\":\"eth0\",\"counters\":{\"drop_source\":-1}}}", -EINVAL,
     "decap.counters.drop_source: -1 out of range"},
    {"decap counter real", HEAD ",\"decap\":{\"interface\":\"eth0\",\"counters\":{\"pass\":1.5}}}",
     -EINVAL, "decap.counters.pass: expected an integer"},
    {"decap interface long",
     HEAD ",\"decap\":{\"interface\":\"0123456789abcdef\",\"counters\":{}}}", -E2BIG,
     "decap.interface: 16 bytes, limit 15"},
    {"node too long",
     "{\"schema\":1,\"node\":\""
     "0123456789012345678901234567890123456789012345678901234567890123"
     "\"}",
     -E2BIG, "limit 63"},
};

static void bad_reports(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct agent_report r;
		char err[256] = "";
		int ret;

		ret = agent_report__parse(c->body, strlen(c->body), &r, err, sizeof(err));
		ASSERT_EQ(ret, c->err, c->name);
		if (!ASSERT_TRUE(strstr(err, c->msg) != NULL, c->name))
			fprintf(stderr, "  message was: %s\n", err);
		/* refused whole: nothing of it kept */
		ASSERT_EQ(r.nhints, 0, c->name);
		ASSERT_TRUE(r.hints == NULL, c->name);
		ASSERT_EQ(r.nservers + r.ngpus + r.nmodels, 0, c->name);
		ASSERT_STREQ(r.node, "", c->name);
		ASSERT_FALSE(r.decap, c->name);
	}
}

/* build {"schema":1,"node":"n","KEY":[ITEM,ITEM,...]} with n items */
static char *array_body(const char *key, const char *item, int n, bool nvml)
{
	size_t len = 64 + strlen(key) + (size_t)n * (strlen(item) + 1);
	char *s = malloc(len), *p;

	if (!s)
		return NULL;
	p = s + sprintf(s, "{\"schema\":1,\"node\":\"n\",%s\"%s\":[", nvml ? "\"nvml\":true," : "",
			key);
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", item);
	strcpy(p, "]}");
	return s;
}

static void limits(void)
{
	static const struct {
		const char *key, *item;
		int max;
		bool nvml;
	} arrays[] = {
	    {"gpus", "{\"index\":0}", AR_MAX_GPUS, true},
	    {"servers", "{\"url\":\"u\"}", AR_MAX_SERVERS, false},
	    {"models", "{\"name\":\"m\"}", AR_MAX_MODELS, false},
	    {"hints", "{\"client\":\"10.0.0.1\",\"model\":\"m\",\"ttl_ms\":5}", AR_MAX_HINTS,
	     false},
	};
	struct agent_report r;
	char err[256], *body, *big;

	for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++) {
		body = array_body(arrays[i].key, arrays[i].item, arrays[i].max, arrays[i].nvml);
		if (!ASSERT_OK_PTR(body, "alloc"))
			return;
		ASSERT_OK(agent_report__parse(body, strlen(body), &r, err, sizeof(err)), err);
		agent_report__free(&r);
		free(body);
		body = array_body(arrays[i].key, arrays[i].item, arrays[i].max + 1, arrays[i].nvml);
		if (!ASSERT_OK_PTR(body, "alloc"))
			return;
		ASSERT_EQ(agent_report__parse(body, strlen(body), &r, err, sizeof(err)), -E2BIG,
			  arrays[i].key);
		ASSERT_TRUE(strstr(err, "limit") != NULL, err);
		ASSERT_EQ(r.nhints, 0, "nothing kept");
		free(body);
	}

	/* a body over AR_MAX_BYTES is refused before it is parsed */
	big = malloc(AR_MAX_BYTES + 2);
	if (!ASSERT_OK_PTR(big, "alloc"))
		return;
	memset(big, ' ', AR_MAX_BYTES + 1);
	memcpy(big, HEAD "}", strlen(HEAD "}"));
	big[AR_MAX_BYTES + 1] = '\0';
	ASSERT_EQ(agent_report__parse(big, AR_MAX_BYTES + 1, &r, err, sizeof(err)), -E2BIG, "size");
	/* and exactly at the limit it is fine (whitespace is valid JSON) */
	ASSERT_OK(agent_report__parse(big, AR_MAX_BYTES, &r, err, sizeof(err)), err);
	free(big);

	/* to_json refuses counts over the limits instead of writing them */
	agent_report__init(&r);
	strcpy(r.node, "n");
	r.nmodels = AR_MAX_MODELS + 1;
	errno = 0;
	ASSERT_TRUE(agent_report__to_json(&r) == NULL, "to_json over limit");
	ASSERT_EQ(errno, E2BIG, "errno");
}

/* an older agent's report has fewer counters, a newer one's more: the
 * known ones are read, the others ignored, the missing ones unknown */
static void decap_counters_unknown(void)
{
	const char *body = HEAD ",\"decap\":{\"interface\":\"ens5\",\"counters\":{\"pass\":7,"
				"\"drop_source\":3,\"decap_gue\":9}}}";
	struct agent_report r;
	char err[256];
	char *js;

	if (!ASSERT_OK(agent_report__parse(body, strlen(body), &r, err, sizeof(err)), err))
		return;
	ASSERT_TRUE(r.decap, "decap");
	ASSERT_EQ(r.decap_counters[AIBL_NCNT_PASS], 7, "pass");
	ASSERT_EQ(r.decap_counters[AIBL_NCNT_DROP_SOURCE], 3, "drop_source");
	ASSERT_EQ(r.decap_counters[AIBL_NCNT_DIRECT], -1, "not sent: unknown");
	ASSERT_EQ(agent_report__decap_dropped(&r), 3, "dropped: the known ones");
	/* and sent on without the unknown ones */
	js = agent_report__to_json(&r);
	if (ASSERT_OK_PTR(js, "to_json")) {
		ASSERT_TRUE(strstr(js, "\"drop_source\":3") != NULL, "known kept");
		ASSERT_TRUE(strstr(js, "direct_vip") == NULL, "unknown not invented");
	}
	free(js);
	agent_report__free(&r);
	/* counters a hostile agent sets to the most: the sum saturates */
	body = HEAD ",\"decap\":{\"interface\":\"ens5\",\"counters\":{"
		    "\"drop_source\":9223372036854775807,\"drop_not_vip\":9223372036854775807}}}";
	if (ASSERT_OK(agent_report__parse(body, strlen(body), &r, err, sizeof(err)), err))
		ASSERT_EQ(agent_report__decap_dropped(&r), INT64_MAX, "dropped saturates");
	agent_report__free(&r);
	/* no decap program: none in the report, dropped unknown */
	agent_report__init(&r);
	ASSERT_EQ(agent_report__decap_dropped(&r), -1, "no decap");
	js = agent_report__to_json(&r);
	if (ASSERT_OK_PTR(js, "to_json without"))
		ASSERT_TRUE(strstr(js, "decap") == NULL, "no decap member");
	free(js);
}

static void unknown_members_ignored(void)
{
	const char *body = HEAD ",\"future_field\":{\"x\":[1,2]},\"servers\":[{\"url\":\"u\","
				"\"kind\":\"sglang\",\"new\":true}]}";
	struct agent_report r;
	char err[256];

	if (ASSERT_OK(agent_report__parse(body, strlen(body), &r, err, sizeof(err)), err)) {
		ASSERT_EQ(r.nservers, 1, "server kept");
		ASSERT_STREQ(r.servers[0].kind, "sglang", "kind");
		ASSERT_TRUE(r.servers[0].kv_cache_usage == -1, "absent = unknown");
	}
	agent_report__free(&r);
}

/* a GPU figure NVML could not read travels as null and comes back unknown
 * (NAN: -1 is a temperature); MIG instances keep their parent's index */
static void gpu_unknown_and_mig(void)
{
	struct agent_report a, b;
	char err[256], *js;
	const char *old = HEAD ",\"nvml\":true,\"gpus\":[{\"index\":0,\"util_pct\":5,"
			       "\"temp_c\":-1,\"power_w\":0}]}";

	fill(&a);
	a.ngpus = 3;
	a.gpus_omitted = 4;
	a.gpus[0].temp_c = a.gpus[0].power_w = a.gpus[0].util_pct = NAN;
	strcpy(a.gpus[0].error, "util: Not Supported; temp: Not Supported");
	strcpy(a.gpus[0].uuid, "GPU-fa4e0000-0000-4000-8000-000000000000");
	strcpy(a.gpus[0].pci_bus_id, "00000000:18:00.0");
	a.gpus[0].mig_enabled = true;
	a.gpus[2] = a.gpus[0];
	a.gpus[2].mig_enabled = false;
	a.gpus[2].mig = true;
	a.gpus[2].mig_index = 6;
	a.gpus[2].mem_used_bytes = NAN;
	strcpy(a.gpus[2].uuid, "MIG-fa4e0000-0000-4000-8000-000000000006");
	a.gpus[1].lost = true;
	js = agent_report__to_json(&a);
	if (!ASSERT_OK_PTR(js, "to_json"))
		goto out;
	ASSERT_TRUE(strstr(js, "\"temp_c\":null") != NULL, "null temperature");
	ASSERT_TRUE(strstr(js, "\"mig_index\":null") != NULL, "a GPU: no MIG index");
	if (ASSERT_OK(agent_report__parse(js, strlen(js), &b, err, sizeof(err)), err)) {
		ASSERT_EQ(b.gpus_omitted, 4, "omitted");
		ASSERT_FALSE(ar_gpu_known(b.gpus[0].temp_c) || ar_gpu_known(b.gpus[0].power_w) ||
				 ar_gpu_known(b.gpus[0].util_pct),
			     "unknown stays unknown");
		ASSERT_TRUE(b.gpus[0].mem_used_bytes == a.gpus[0].mem_used_bytes, "known kept");
		ASSERT_STREQ(b.gpus[0].error, a.gpus[0].error, "why");
		ASSERT_STREQ(b.gpus[0].uuid, a.gpus[0].uuid, "uuid");
		ASSERT_STREQ(b.gpus[0].pci_bus_id, "00000000:18:00.0", "pci");
		ASSERT_TRUE(b.gpus[0].mig_enabled && !b.gpus[0].mig, "MIG parent");
		ASSERT_TRUE(!b.gpus[1].mig && b.gpus[1].temp_c == 61, "plain GPU");
		ASSERT_TRUE(b.gpus[2].mig && b.gpus[2].mig_index == 6 && b.gpus[2].index == 0,
			    "MIG instance");
		ASSERT_FALSE(ar_gpu_known(b.gpus[2].mem_used_bytes), "used unknown, total known");
		ASSERT_TRUE(b.gpus[1].lost && !b.gpus[0].lost, "lost");
	}
	agent_report__free(&b);
	/* an older agent's report: figures present, none of the new members */
	if (ASSERT_OK(agent_report__parse(old, strlen(old), &b, err, sizeof(err)), err)) {
		ASSERT_TRUE(b.gpus[0].temp_c == -1, "-1 C is a temperature");
		ASSERT_TRUE(b.gpus[0].power_w == 0, "0 W read");
		ASSERT_FALSE(ar_gpu_known(b.gpus[0].mem_total_bytes), "absent is unknown");
		ASSERT_FALSE(b.gpus[0].mig, "a GPU");
		ASSERT_FALSE(b.gpus[0].lost, "not lost");
	}
	agent_report__free(&b);
out:
	free(js);
	agent_report__free(&a);
}

/* AR_OPEN_HEADER: what a balancer states on its poll of an agent draining
 * a model; anything else states nothing */
static void open_header(void)
{
	char model[AR_MODEL_LEN], big[AR_MODEL_LEN + 8];
	long n;

	/* the header's grammar */
	ASSERT_TRUE(!agent_report__parse_open("0", &n, model, sizeof(model)) && n == 0 && !model[0],
		    "\"0\": none unloading");
	ASSERT_TRUE(!agent_report__parse_open("12 m-b:7b", &n, model, sizeof(model)) && n == 12 &&
			!strcmp(model, "m-b:7b"),
		    "\"12 m-b:7b\"");
	ASSERT_EQ(agent_report__parse_open("", &n, model, sizeof(model)), -EINVAL,
		  "empty: refused");
	ASSERT_EQ(agent_report__parse_open("-1 m1", &n, model, sizeof(model)), -EINVAL, "negative");
	ASSERT_EQ(agent_report__parse_open("1 ", &n, model, sizeof(model)), -EINVAL, "no model");
	ASSERT_EQ(agent_report__parse_open("1 m1 m2", &n, model, sizeof(model)), -EINVAL,
		  "a space");
	ASSERT_EQ(agent_report__parse_open("1x m1", &n, model, sizeof(model)), -EINVAL,
		  "not a number");
	ASSERT_EQ(agent_report__parse_open("99999999999999999999 m1", &n, model, sizeof(model)),
		  -EINVAL, "too large");
	memset(big, 'm', sizeof(big) - 1);
	big[0] = '1';
	big[1] = ' ';
	big[sizeof(big) - 1] = '\0';
	ASSERT_EQ(agent_report__parse_open(big, &n, model, sizeof(model)), -EINVAL,
		  "a model name over the limit");
	ASSERT_EQ(agent_report__parse_open("1 m\x01", &n, model, sizeof(model)), -EINVAL,
		  "a control character");
	ASSERT_EQ(agent_report__parse_open(NULL, &n, model, sizeof(model)), -EINVAL, "none");
}

static const struct test_case cases[] = {
    {"round_trip", round_trip},
    {"nan_is_null", nan_is_null},
    {"text_not_utf8", text_not_utf8},
    {"hints_fit", hints_fit},
    {"gpu_unknown_and_mig", gpu_unknown_and_mig},
    {"bad_reports", bad_reports},
    {"limits", limits},
    {"unknown_members_ignored", unknown_members_ignored},
    {"open_header", open_header},
    {"decap_counters_unknown", decap_counters_unknown},
};

TEST_MAIN("report", cases)
