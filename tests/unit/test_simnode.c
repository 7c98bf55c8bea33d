// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-simnode's latency model without HTTP: prefix cache, model
 * residency, LoRA adapters, durations, determinism, and its /metrics page. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include "test.h"
#include "../../user/aibl-agent/promtext.h"
#include "../../user/aibl-agent/scrape.h"
#include "../../lab/aibl-simnode/sim.h"

static struct sim_cfg cfg_default(void)
{
	return (struct sim_cfg){
	    .slots = 2,
	    .queue_max = 16,
	    .prefill_base_ms = 1,
	    .prefill_ms_per_tok = 0.5,
	    .decode_ms_per_tok = 0,
	    .cache_tokens = 1000,
	    .max_sessions = 4,
	    .mem_mb = 200,
	    .load_ms = 0,
	    .slowdown = 1,
	    .cpu_factor = 10,
	    .seed = 7,
	    .chars_per_token = 4,
	    .default_max_tokens = 4,
	};
}

/* a request admitted (a slot, its prefix looked up): 0 or sim__admit's error */
static int req_start(struct sim *s, struct sim_req *rq, const char *model, const char *session,
		     const char *prompt)
{
	rq->model = sim__model_find(s, model);
	snprintf(rq->session, sizeof(rq->session), "%s", session);
	rq->prompt = prompt;
	rq->prompt_len = strlen(prompt);
	sim__req_init(s, rq);
	return sim__admit(s, rq);
}

/* the rest of an admitted request: first token, tokens, finish */
static void req_end(struct sim *s, struct sim_req *rq, const char *cont)
{
	sim__first_token(s, rq);
	for (uint32_t i = 0; i < rq->max_tokens; i++)
		sim__token(s, rq);
	sim__finish(s, rq, cont, strlen(cont));
}

/* one whole request: admit, first token, tokens, finish; returns cached */
static uint32_t run(struct sim *s, const char *model, const char *session, const char *prompt,
		    const char *cont, bool *cold)
{
	struct sim_req rq = {};

	if (req_start(s, &rq, model, session, prompt))
		return UINT32_MAX;
	req_end(s, &rq, cont);
	if (cold)
		*cold = rq.cold;
	return rq.cached_tokens;
}

static void init_errors(void)
{
	struct sim_cfg c = cfg_default();
	struct sim s;
	char err[256];

	ASSERT_EQ(sim__init(&s, &c, "a:100,a:50", NULL, err, sizeof(err)), -EINVAL, "twice");
	sim__fini(&s);
	ASSERT_EQ(sim__init(&s, &c, "a:1x", NULL, err, sizeof(err)), -EINVAL, "bad size");
	sim__fini(&s);
	ASSERT_EQ(sim__init(&s, &c, "a:150,b:150", "a,b", err, sizeof(err)), -E2BIG, "over budget");
	ASSERT_TRUE(strstr(err, "does not fit") != NULL, err);
	sim__fini(&s);
	ASSERT_EQ(sim__init(&s, &c, "a:100", "zz", err, sizeof(err)), -EINVAL, "unknown resident");
	sim__fini(&s);
	/* names with ':' keep it: the size follows the last one */
	if (ASSERT_OK(sim__init(&s, &c, "llama3:8b:100", NULL, err, sizeof(err)), err))
		ASSERT_EQ(sim__model_find(&s, "llama3:8b"), 0, "colon name");
	sim__fini(&s);
}

static void prefix_cache(void)
{
	struct sim_cfg c = cfg_default();
	struct sim s;
	char err[256], p1[401], p2[1024];
	struct sim_req rq = {};

	if (!ASSERT_OK(sim__init(&s, &c, "m:100", NULL, err, sizeof(err)), err))
		return;
	memset(p1, 'a', 400);
	p1[400] = '\0'; /* 100 tokens */
	ASSERT_EQ(run(&s, "m", "c1", p1, "REPLY", NULL), 0, "first turn: cold cache");
	/* the client rewrote the reply: only the old prompt matches */
	snprintf(p2, sizeof(p2), "%sOTHER and more", p1);
	ASSERT_EQ(sim__cache_lookup(&s, "c1", p2, strlen(p2)), 100, "prompt-only hit");
	/* next turn = prompt + reply + more: all of the previous turn is cached
	 * (100 prompt + 4 generated tokens) */
	snprintf(p2, sizeof(p2), "%sREPLY and more words here", p1);
	ASSERT_EQ(run(&s, "m", "c1", p2, "R2", NULL), 104, "prompt + reply cached");
	/* another session has nothing, another prompt nothing */
	ASSERT_EQ(sim__cache_lookup(&s, "c2", p1, strlen(p1)), 0, "other session");
	ASSERT_EQ(sim__cache_lookup(&s, "c1", "b", 1), 0, "other prompt");

	/* prefill time: tokens not cached x per token */
	rq.prompt = p1;
	rq.prompt_len = 400;
	rq.prompt_tokens = 100;
	rq.cached_tokens = 0;
	rq.jitter = 1;
	ASSERT_TRUE(sim__prefill_ms(&s, &rq) == 1 + 50, "cold prefill");
	rq.cached_tokens = 99;
	ASSERT_TRUE(sim__prefill_ms(&s, &rq) == 1 + 0.5, "warm prefill");
	s.cfg.slowdown = 2;
	s.cfg.cpu = true;
	ASSERT_TRUE(sim__prefill_ms(&s, &rq) == (1 + 0.5) * 2 * 10, "slowdown x cpu factor");
	sim__fini(&s);
}

static void prefix_cache_lru(void)
{
	struct sim_cfg c = cfg_default();
	struct sim s;
	char err[256], p[2001];

	c.cache_tokens = 1000;
	if (!ASSERT_OK(sim__init(&s, &c, "m:100", NULL, err, sizeof(err)), err))
		return;
	memset(p, 'x', 1200);
	p[1200] = '\0'; /* 300 tokens + 4 generated each */
	run(&s, "m", "s1", p, "", NULL);
	run(&s, "m", "s2", p, "", NULL);
	run(&s, "m", "s3", p, "", NULL);
	ASSERT_EQ(s.nsessions, 3, "three fit (912 tokens)");
	/* s1 used again: s2 becomes the least recent */
	ASSERT_TRUE(sim__cache_lookup(&s, "s1", p, strlen(p)) > 0, "s1 hit");
	run(&s, "m", "s4", p, "", NULL);
	ASSERT_EQ(s.nsessions, 3, "one evicted");
	ASSERT_EQ(sim__cache_lookup(&s, "s2", p, strlen(p)), 0, "LRU s2 evicted");
	ASSERT_TRUE(sim__cache_lookup(&s, "s1", p, strlen(p)) > 0, "s1 kept");
	ASSERT_TRUE(s.cached_tokens <= c.cache_tokens, "within capacity");
	/* a prefix bigger than the whole cache is never held */
	memset(p, 'y', 2000);
	p[2000] = '\0';
	c.cache_tokens = 100;
	s.cfg.cache_tokens = 100;
	run(&s, "m", "big", p, "", NULL);
	ASSERT_EQ(sim__cache_lookup(&s, "big", p, strlen(p)), 0, "too big to cache");
	ASSERT_TRUE(s.cached_tokens <= 100, "evicted down to capacity");
	sim__fini(&s);
}

/*
 * A running turn that reuses its session's prefix holds those tokens once,
 * as vLLM shares a prefix hit's blocks with the request, and its prefix is
 * not evicted while it runs.
 */
static void prefix_cache_shared(void)
{
	struct sim_cfg c = cfg_default();
	struct sim_req rq = {};
	struct sim s;
	char err[256], p[1201], p2[1601];

	c.cache_tokens = 1000;
	if (!ASSERT_OK(sim__init(&s, &c, "m:100", NULL, err, sizeof(err)), err))
		return;
	memset(p, 'x', 1200);
	p[1200] = '\0'; /* 300 tokens + 4 generated */
	run(&s, "m", "s1", p, "", NULL);
	run(&s, "m", "s2", p, "", NULL);
	ASSERT_EQ(s.cached_tokens, 608, "two prefixes of 304");
	/* s1's next turn: its 304 cached tokens and 96 new ones */
	memcpy(p2, p, 1200);
	memset(p2 + 1200, 'z', 400);
	p2[1600] = '\0';
	if (!ASSERT_OK(req_start(&s, &rq, "m", "s1", p2), "admit s1's second turn"))
		return;
	ASSERT_EQ(rq.cached_tokens, 304, "s1's prefix reused");
	ASSERT_EQ(s.shared_tokens, 304, "held once");
	/* 608 cached + 400 running - 304 shared fit in 1000: counted twice
	 * (1008) s2 was evicted */
	ASSERT_EQ(s.nsessions, 2, "s2 kept beside the running turn");
	/* s1's prefix least recent and in use: a new session evicts s2 */
	ASSERT_TRUE(sim__cache_lookup(&s, "s2", p, strlen(p)) > 0, "s2 hit");
	run(&s, "m", "s3", p, "", NULL);
	ASSERT_EQ(sim__cache_lookup(&s, "s2", p, strlen(p)), 0, "idle s2 evicted");
	ASSERT_TRUE(sim__cache_lookup(&s, "s1", p2, strlen(p2)) > 0,
		    "s1's prefix kept while its turn runs");
	req_end(&s, &rq, "");
	ASSERT_EQ(s.shared_tokens, 0, "released at finish");
	ASSERT_EQ(s.running_tokens, 0, "nothing runs");
	ASSERT_TRUE(s.cached_tokens <= c.cache_tokens, "within capacity");
	sim__fini(&s);
}

/*
 * When prefills end: in its own slot each ends its prefill after its
 * admission; with shared_prefill the node's compute takes them one at a
 * time, first come first, and a request admitted after the others are done
 * waits for nobody. Two requests of 100 uncached tokens (1 + 50 ms each)
 * admitted at t = 0, then one at t = 500.
 */
static void shared_prefill(void)
{
	struct sim_cfg c = cfg_default();
	struct sim_req a = {.prompt_tokens = 100, .jitter = 1, .t_admitted = 0},
		       b = {.prompt_tokens = 100, .jitter = 1, .t_admitted = 0},
		       later = {.prompt_tokens = 100, .jitter = 1, .t_admitted = 500};
	struct sim s;
	char err[256];

	if (!ASSERT_OK(sim__init(&s, &c, "m:100", NULL, err, sizeof(err)), err))
		return;
	ASSERT_TRUE(sim__prefill_end(&s, &a) == 51, "per slot: the first at 51 ms");
	ASSERT_TRUE(sim__prefill_end(&s, &b) == 51, "per slot: the second alongside");
	sim__fini(&s);

	c.shared_prefill = true;
	if (!ASSERT_OK(sim__init(&s, &c, "m:100", NULL, err, sizeof(err)), err))
		return;
	ASSERT_TRUE(sim__prefill_end(&s, &a) == 51, "shared: the first at 51 ms");
	ASSERT_TRUE(sim__prefill_end(&s, &b) == 102, "shared: the second after it");
	ASSERT_TRUE(sim__prefill_end(&s, &later) == 551, "shared: none left, no wait");
	sim__fini(&s);
}

static void model_residency(void)
{
	struct sim_cfg c = cfg_default();
	struct sim s;
	char err[256];
	struct sim_req rq = {}, rq2 = {};
	bool cold = false;

	c.mem_mb = 250;
	c.load_ms = 1;
	if (!ASSERT_OK(sim__init(&s, &c, "a:100,b:100,c:100,huge:300", NULL, err, sizeof(err)),
		       err))
		return;
	ASSERT_TRUE(s.models[0].resident && s.models[1].resident, "a, b loaded at start");
	ASSERT_FALSE(s.models[2].resident, "c does not fit");
	run(&s, "a", "x", "hello", "", &cold);
	ASSERT_FALSE(cold, "a warm");
	run(&s, "b", "x", "hello", "", &cold);
	run(&s, "a", "x", "hello", "", &cold); /* b is now the least recently used */
	run(&s, "c", "x", "hello", "", &cold);
	ASSERT_TRUE(cold, "c cold start");
	ASSERT_TRUE(s.models[2].resident, "c loaded");
	ASSERT_FALSE(s.models[1].resident, "b (LRU) evicted");
	ASSERT_TRUE(s.models[0].resident, "a kept");
	ASSERT_EQ(s.models[2].loads, 1, "one load");
	ASSERT_EQ(s.models[1].evictions, 1, "one eviction");
	ASSERT_TRUE(s.mem_used_mb <= c.mem_mb, "within budget");
	run(&s, "c", "x", "hello", "", &cold);
	ASSERT_FALSE(cold, "c warm now");
	ASSERT_EQ(run(&s, "huge", "x", "hello", "", &cold), UINT32_MAX, "never fits");

	/* the runtime API: an operator moves models */
	ASSERT_EQ(sim__model_unload(&s, 1), -ENOENT, "b was not loaded");
	ASSERT_OK(sim__model_unload(&s, 0), "unload a");
	ASSERT_FALSE(s.models[0].resident, "a gone");
	ASSERT_OK(sim__model_load(&s, 1), "load b");
	ASSERT_TRUE(s.models[1].resident && s.models[2].resident, "b fits beside c");
	ASSERT_EQ(s.models[1].loads, 1, "an explicit load counts as a load");
	ASSERT_EQ(sim__model_load(&s, 3), -E2BIG, "huge never fits");
	ASSERT_TRUE(s.mem_used_mb <= c.mem_mb, "within budget");
	run(&s, "a", "x", "hello", "", &cold);
	ASSERT_TRUE(cold, "a request for the unloaded model is a cold start again");

	/* a model's KV cache goes with it: a prefix computed by b is no hit
	 * once b is unloaded (or evicted) and loaded again */
	run(&s, "b", "kv", "hello world, a prefix", "!", NULL);
	ASSERT_TRUE(run(&s, "b", "kv", "hello world, a prefix and more", "", NULL) > 0,
		    "b's prefix: a hit");
	ASSERT_OK(sim__model_unload(&s, 1), "unload b");
	ASSERT_OK(sim__model_load(&s, 1), "load b again");
	ASSERT_EQ(run(&s, "b", "kv", "hello world, a prefix and more", "", NULL), 0,
		  "its prefix went with it");

	/* unloaded while a turn runs: the turn finishes, and neither the
	 * prefix it reused nor what it computed outlives the engine */
	run(&s, "b", "run", "hello world, a prefix", "!", NULL);
	if (!ASSERT_OK(req_start(&s, &rq, "b", "run", "hello world, a prefix! and more"), "admit"))
		goto out;
	ASSERT_TRUE(rq.cached_tokens > 0, "the running turn reuses its prefix");
	ASSERT_OK(sim__model_unload(&s, 1), "unload b under it");
	ASSERT_OK(sim__model_load(&s, 1), "load b again before it ends");
	/* the prefix it holds outlives the unload while it runs, but is no
	 * hit on the engine loaded since */
	if (!ASSERT_OK(req_start(&s, &rq2, "b", "run", "hello world, a prefix! and more"),
		       "admit on the new engine"))
		goto out;
	ASSERT_EQ(rq2.cached_tokens, 0, "the old engine's prefix: no hit");
	req_end(&s, &rq, "?");
	ASSERT_EQ(run(&s, "b", "run", "hello world, a prefix! and more? next", "", NULL), 0,
		  "nothing of the unloaded engine's KV is a hit");
	/* what the new engine computed stays */
	req_end(&s, &rq2, "!");
	ASSERT_TRUE(run(&s, "b", "run", "hello world, a prefix! and more! again", "", NULL) > 0,
		    "the new engine's prefix: a hit");
out:
	sim__fini(&s);
}

struct admit_arg {
	struct sim *s;
	struct sim_req rq;
	int err;
};

static void *admit_bg(void *p)
{
	struct admit_arg *a = p;

	a->err = sim__admit(a->s, &a->rq);
	return NULL;
}

/* a stop ends every simulated wait at once: a request queued for a slot is
 * let through and a prefill's sleep returns, so the daemon's connection
 * threads finish (a CPU node with a queue took 6.6 s to exit on SIGTERM,
 * and the lab killed it) */
static void stop_ends_waits(void)
{
	struct sim_cfg c = cfg_default();
	struct admit_arg a = {};
	struct sim_req first = {};
	pthread_t th;
	struct sim s;
	char err[256];
	double t0;

	c.slots = 1;
	if (!ASSERT_OK(sim__init(&s, &c, "a:100", NULL, err, sizeof(err)), err))
		return;
	first.model = a.rq.model = 0;
	snprintf(first.session, sizeof(first.session), "x");
	snprintf(a.rq.session, sizeof(a.rq.session), "y");
	first.prompt = a.rq.prompt = "hello";
	first.prompt_len = a.rq.prompt_len = 5;
	sim__req_init(&s, &first);
	sim__req_init(&s, &a.rq);
	if (!ASSERT_OK(sim__admit(&s, &first), "the one slot"))
		goto out;
	a.s = &s;
	a.err = -1;
	if (!ASSERT_OK(pthread_create(&th, NULL, admit_bg, &a), "second request"))
		goto out;
	usleep(50 * 1000);
	ASSERT_EQ(a.err, -1, "it waits for the slot");
	t0 = clock_mono_msf();
	sim__stop(&s);
	pthread_join(th, NULL);
	ASSERT_OK(a.err, "let through by the stop");
	sim__sleep_until(clock_mono_msf() + 10000);
	ASSERT_LE(clock_mono_msf() - t0, 1000, "a 10 s prefill ends at once");
	sim__finish(&s, &a.rq, "", 0);
	sim__finish(&s, &first, "", 0);
	sim__fini(&s);
	/* the next node of the process waits again */
	if (!ASSERT_OK(sim__init(&s, &c, "a:100", NULL, err, sizeof(err)), err))
		return;
	t0 = clock_mono_msf();
	sim__sleep_until(clock_mono_msf() + 100);
	ASSERT_GE(clock_mono_msf() - t0, 90, "a new node sleeps its 100 ms");
out:
	sim__fini(&s);
}

/* admit_bg's request admitted within ms milliseconds? */
static bool admitted_within(struct admit_arg *a, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (__atomic_load_n(&a->err, __ATOMIC_ACQUIRE) != -1)
			return true;
		usleep(10 * 1000);
	}
	return __atomic_load_n(&a->err, __ATOMIC_ACQUIRE) != -1;
}

static int admit_start(struct sim *s, struct admit_arg *a, pthread_t *th, const char *session,
		       const char *prompt)
{
	memset(a, 0, sizeof(*a));
	a->s = s;
	a->err = -1;
	a->rq.model = 0;
	snprintf(a->rq.session, sizeof(a->rq.session), "%s", session);
	a->rq.prompt = prompt;
	a->rq.prompt_len = strlen(prompt);
	sim__req_init(s, &a->rq);
	return pthread_create(th, NULL, admit_bg, a);
}

/* a waiting request is let through once its KV fits beside the running
 * requests, as vLLM's scheduler does, a slot free or not; one bigger than
 * the whole cache runs when it is alone */
static void kv_admission(void)
{
	struct sim_cfg c = cfg_default();
	char p600a[2401], p600b[2401], p1200[4801];
	struct sim_req a = {}, big = {};
	struct admit_arg b;
	pthread_t th;
	struct sim s;
	char err[256];

	c.slots = 2; /* a slot free: only the KV holds a request back */
	memset(p600a, 'a', 2400);
	memset(p600b, 'b', 2400);
	memset(p1200, 'c', 4800);
	p600a[2400] = p600b[2400] = p1200[4800] = '\0';
	if (!ASSERT_OK(sim__init(&s, &c, "m:100", NULL, err, sizeof(err)), err))
		return;
	/* 600 tokens of 1,000 run: another 600 wait */
	if (!ASSERT_OK(req_start(&s, &a, "m", "sa", p600a), "a runs"))
		goto out;
	if (!ASSERT_OK(admit_start(&s, &b, &th, "sb", p600b), "b arrives")) {
		req_end(&s, &a, "R");
		goto out;
	}
	ASSERT_FALSE(admitted_within(&b, 100), "b waits for KV with a slot free");
	pthread_mutex_lock(&s.lock);
	ASSERT_EQ(s.waiting, 1, "b counts as waiting");
	pthread_mutex_unlock(&s.lock);
	req_end(&s, &a, "REPLY");
	pthread_join(th, NULL);
	ASSERT_OK(b.err, "b runs once a finished");
	req_end(&s, &b.rq, "REPLY");
	/* 1,200 tokens on a node of 1,000: alone, it runs */
	if (ASSERT_OK(req_start(&s, &big, "m", "sbig", p1200), "bigger than the cache, alone"))
		req_end(&s, &big, "R");
	ASSERT_EQ(s.running_tokens, 0, "nothing left running");
out:
	sim__fini(&s);
}

/* a running request's reused prefix is held as surely as what it computes:
 * its blocks are pinned while it runs (vLLM's ref counts), not free for a
 * waiting request. With the prefix counted free, a node whose later turns
 * ran on cache hits admitted past its capacity (the kv-pressure scenario) */
static void kv_admission_counts_reused_prefix(void)
{
	struct sim_cfg c = cfg_default();
	char pa[2401], pa2[2801], pb[2401];
	struct sim_req t2 = {};
	struct admit_arg b;
	pthread_t th;
	struct sim s;
	char err[256];

	c.slots = 2;
	c.cache_tokens = 1000;
	memset(pa, 'a', 2400);
	pa[2400] = '\0';
	memcpy(pa2, pa, 2400);
	memset(pa2 + 2400, 'z', 400);
	pa2[2800] = '\0';
	memset(pb, 'b', 2400);
	pb[2400] = '\0';
	if (!ASSERT_OK(sim__init(&s, &c, "m:100", NULL, err, sizeof(err)), err))
		return;
	run(&s, "m", "sa", pa, "", NULL);
	/* sa's second turn: 700 tokens, about 600 of them its cached prefix */
	if (!ASSERT_OK(req_start(&s, &t2, "m", "sa", pa2), "sa's second turn runs"))
		goto out;
	ASSERT_TRUE(t2.cached_tokens >= 600, "its prefix reused");
	/* 600 more beside 700 held: over 1,000, sb waits, a slot free */
	if (!ASSERT_OK(admit_start(&s, &b, &th, "sb", pb), "sb arrives")) {
		req_end(&s, &t2, "");
		goto out;
	}
	ASSERT_FALSE(admitted_within(&b, 100), "sb waits: the reused prefix is held");
	req_end(&s, &t2, "");
	pthread_join(th, NULL);
	ASSERT_OK(b.err, "sb runs once the turn finished");
	req_end(&s, &b.rq, "");
out:
	sim__fini(&s);
}

struct lora_load_arg {
	struct sim *s;
	int err;
};

static void *lora_load_bg(void *p)
{
	struct lora_load_arg *a = p;

	a->err = sim__lora_load(a->s, "sql", "/adapters/sql", "base");
	return NULL;
}

/* the adapters the agent reads from the page: the newest label set's */
static void agent_loras(struct sim *s, char *out, size_t len)
{
	struct agent_server srv = {.s.kind = "unknown"};
	char *text = sim__metrics(s), err[128];
	struct prom_page pg;

	out[0] = '\0';
	if (!text || promtext__parse(&pg, text, strlen(text), err, sizeof(err))) {
		snprintf(out, len, "(no page)");
		free(text);
		return;
	}
	agent_metrics__extract(&pg, &srv);
	for (int k = 0; k < srv.nloras; k++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s", k ? "," : "", srv.loras[k]);
	promtext__free(&pg);
	free(text);
}

/* adapters as vLLM serves them: not servable while loading, then listed
 * with their parent, run on the parent, gone when unloaded */
static void lora_adapters(void)
{
	struct sim_cfg c = cfg_default();
	struct lora_load_arg bg;
	struct sim_req rq = {}, r2 = {};
	pthread_t t;
	struct sim s;
	char err[256], got[256], *js;

	c.lora_load_ms = 100;
	c.lora_overhead = 0.5;
	c.decode_ms_per_tok = 2;
	if (!ASSERT_OK(sim__init(&s, &c, "other:50,base:100", NULL, err, sizeof(err)), err))
		return;
	ASSERT_EQ(sim__lora_route(&s, "sql", &rq), -ENOENT, "not loaded: no such model");
	bg = (struct lora_load_arg){.s = &s, .err = 1};
	if (!ASSERT_OK(pthread_create(&t, NULL, lora_load_bg, &bg), "thread"))
		goto out;
	/* the load takes 100 ms: meanwhile not listed, not servable */
	usleep(30 * 1000);
	ASSERT_EQ(sim__lora_route(&s, "sql", &rq), -ENOENT, "loading: not servable yet");
	js = sim__models_json(&s);
	ASSERT_TRUE(js && !strstr(js, "sql"), "loading: not listed");
	free(js);
	ASSERT_EQ(sim__lora_load(&s, "sql", "/x", NULL), -EBUSY, "loading already");
	pthread_join(t, NULL);
	ASSERT_OK(bg.err, "loaded");
	js = sim__models_json(&s);
	ASSERT_TRUE(js && strstr(js, "{\"id\":\"sql\",\"object\":\"model\",\"created\":0,"
				     "\"owned_by\":\"aibl-simnode\",\"root\":\"/adapters/sql\","
				     "\"parent\":\"base\",\"resident\":true}"),
		    "listed with its parent");
	free(js);
	ASSERT_EQ(sim__lora_load(&s, "sql", "/x", NULL), -EEXIST, "already loaded");
	ASSERT_EQ(sim__lora_load(&s, "x", "/x", "zz"), -ENOENT, "unknown parent");
	ASSERT_EQ(sim__lora_load(&s, "a,b", "/x", NULL), -EINVAL, "a ',' in the name");

	/* a request for it runs on the parent, slower by the overhead */
	if (!ASSERT_OK(sim__lora_route(&s, "sql", &rq), "route"))
		goto out;
	ASSERT_TRUE(rq.adapter && rq.model == sim__model_find(&s, "base"), "on its parent");
	strcpy(rq.session, "s");
	rq.prompt = "select 1";
	rq.prompt_len = strlen(rq.prompt);
	sim__req_init(&s, &rq);
	r2 = rq;
	r2.adapter = false;
	ASSERT_TRUE(fabs(sim__decode_ms(&s, &rq) - 1.5 * sim__decode_ms(&s, &r2)) < 1e-9,
		    "lora_overhead");
	if (!ASSERT_OK(sim__admit(&s, &rq), "admit"))
		goto out;
	agent_loras(&s, got, sizeof(got));
	ASSERT_STREQ(got, "sql", "running: on the newest label set");
	/* unloaded while it runs: it finishes, no new one gets in */
	ASSERT_OK(sim__lora_unload(&s, "sql"), "unload");
	ASSERT_EQ(sim__lora_route(&s, "sql", &r2), -ENOENT, "unloaded: no such model");
	js = sim__models_json(&s);
	ASSERT_TRUE(js && !strstr(js, "sql"), "unloaded: not listed");
	free(js);
	sim__first_token(&s, &rq);
	sim__finish(&s, &rq, "", 0);
	agent_loras(&s, got, sizeof(got));
	ASSERT_STREQ(got, "", "finished: the newest set is empty, the older one stays behind it");
	ASSERT_EQ(s.loras[0].requests, 1, "one request");
	ASSERT_EQ(sim__lora_unload(&s, "sql"), -ENOENT, "unload again");
	ASSERT_OK(sim__lora_load(&s, "sql", "/adapters/sql2", "other"), "load again elsewhere");
	ASSERT_EQ(s.nloras, 1, "the name keeps its entry");
out:
	sim__fini(&s);
}

static void determinism(void)
{
	struct sim_cfg c = cfg_default();
	struct sim a, b, d;
	struct sim_req r1 = {}, r2 = {}, r3 = {};
	char err[256], t1[256] = "", t2[256] = "", t3[256] = "";

	c.jitter = 0.3;
	if (!ASSERT_OK(sim__init(&a, &c, "m:1", NULL, err, sizeof(err)), err) ||
	    !ASSERT_OK(sim__init(&b, &c, "m:1", NULL, err, sizeof(err)), err))
		return;
	c.seed = 8;
	if (!ASSERT_OK(sim__init(&d, &c, "m:1", NULL, err, sizeof(err)), err))
		return;
	r1.prompt = r2.prompt = r3.prompt = "the same prompt";
	r1.prompt_len = r2.prompt_len = r3.prompt_len = strlen(r1.prompt);
	strcpy(r1.session, "s");
	strcpy(r2.session, "s");
	strcpy(r3.session, "s");
	sim__req_init(&a, &r1);
	sim__req_init(&b, &r2);
	sim__req_init(&d, &r3);
	for (uint32_t i = 0; i < 16; i++) {
		strcat(t1, sim__token_text(&a, &r1, i));
		strcat(t2, sim__token_text(&b, &r2, i));
		strcat(t3, sim__token_text(&d, &r3, i));
	}
	ASSERT_STREQ(t1, t2, "same seed, same text");
	ASSERT_TRUE(strcmp(t1, t3) != 0, "another seed, another text");
	ASSERT_TRUE(r1.jitter == r2.jitter, "same jitter");
	ASSERT_TRUE(r1.jitter >= 0.7 && r1.jitter <= 1.3, "jitter within bounds");
	sim__fini(&a);
	sim__fini(&b);
	sim__fini(&d);
}

static void metrics_page(void)
{
	struct sim_cfg c = cfg_default();
	struct prom_page pg;
	struct sim s;
	char err[256], *text;
	double v;

	if (!ASSERT_OK(sim__init(&s, &c, "m\"1:100,m2:100", NULL, err, sizeof(err)), err))
		return;
	run(&s, "m\"1", "a", "0123456789012345678901234567890123456789", "", NULL);
	text = sim__metrics(&s);
	if (!ASSERT_OK_PTR(text, "metrics"))
		goto out;
	/* the page our own parser reads, with the names the agent looks for */
	if (!ASSERT_OK(promtext__parse(&pg, text, strlen(text), err, sizeof(err)), err)) {
		fprintf(stderr, "%s\n", text);
		goto out_page;
	}
	ASSERT_EQ(promtext__sum_where(&pg, "vllm:request_success_total", "model_name", "m\"1", &v),
		  1, "escaped label");
	ASSERT_TRUE(v == 1, "one request");
	ASSERT_EQ(promtext__sum(&pg, "vllm:prefix_cache_queries_total", &v), 1, "queries");
	ASSERT_TRUE(v == 10, "10 prompt tokens");
	ASSERT_EQ(promtext__sum(&pg, "vllm:time_to_first_token_seconds_count", &v), 2, "ttft");
	ASSERT_TRUE(v == 1, "one ttft");
	/* a finished request's time splits into waiting and running, as
	 * vLLM's request_queue_time and request_inference_time do */
	ASSERT_EQ(promtext__sum(&pg, "vllm:request_inference_time_seconds_count", &v), 2, "run");
	ASSERT_TRUE(v == 1, "one run");
	{
		double q, r, e;

		promtext__sum(&pg, "vllm:request_queue_time_seconds_sum", &q);
		promtext__sum(&pg, "vllm:request_inference_time_seconds_sum", &r);
		promtext__sum(&pg, "vllm:e2e_request_latency_seconds_sum", &e);
		ASSERT_TRUE(r > 0 && q >= 0 && fabs(q + r - e) < 1e-6, "queue + run = e2e");
	}
	/* and, as vLLM's request_prefill_time and
	 * request_prefill_kv_computed_tokens, the part from its slot to its
	 * first token and the prompt tokens it computed (10, none cached) */
	ASSERT_EQ(promtext__sum(&pg, "vllm:request_prefill_time_seconds_count", &v), 2, "prefill");
	ASSERT_TRUE(v == 1, "one prefill");
	{
		double p, r;

		promtext__sum(&pg, "vllm:request_prefill_time_seconds_sum", &p);
		promtext__sum(&pg, "vllm:request_inference_time_seconds_sum", &r);
		ASSERT_TRUE(p >= 0 && p <= r, "the prefill is part of the run");
	}
	ASSERT_EQ(promtext__sum(&pg, "vllm:request_prefill_kv_computed_tokens_sum", &v), 2,
		  "computed tokens");
	ASSERT_TRUE(v == 10, "10 tokens computed");
	free(text);
	promtext__free(&pg);
	/* the same prompt again: all but its last token from the cache */
	run(&s, "m\"1", "a", "0123456789012345678901234567890123456789", "", NULL);
	text = sim__metrics(&s);
	if (!ASSERT_OK_PTR(text, "metrics") ||
	    !ASSERT_OK(promtext__parse(&pg, text, strlen(text), err, sizeof(err)), err))
		goto out;
	ASSERT_EQ(promtext__sum(&pg, "vllm:request_prefill_kv_computed_tokens_sum", &v), 2,
		  "computed tokens again");
	ASSERT_TRUE(v == 11, "one more token computed: the rest was cached");
	/* vLLM's request_prompt_tokens: each finished request's whole prompt,
	 * the cached part too */
	{
		double all, total;

		ASSERT_EQ(promtext__sum(&pg, "vllm:request_prompt_tokens_count", &v), 2,
			  "prompt tokens");
		ASSERT_TRUE(v == 2, "two requests");
		promtext__sum(&pg, "vllm:request_prompt_tokens_sum", &all);
		promtext__sum(&pg, "vllm:prompt_tokens_total", &total);
		ASSERT_TRUE(all == total && all > 11, "whole prompts, cached ones too");
	}
	ASSERT_EQ(promtext__sum(&pg, "vllm:num_requests_running", &v), 2, "running per model");
	ASSERT_TRUE(v == 0, "idle");
	/* vLLM's gauge counts running requests' blocks only: an idle node with
	 * a cached prefix reports 0, the prefix shows in the simnode figure */
	ASSERT_EQ(promtext__sum(&pg, "vllm:kv_cache_usage_perc", &v), 1, "kv");
	ASSERT_TRUE(v == 0, "kv of an idle node is 0 although a prefix is cached");
	ASSERT_EQ(promtext__sum(&pg, "aibl_simnode_prefix_cache_tokens", &v), 1, "prefix tokens");
	ASSERT_TRUE(v > 0, "the idle prefix is cached");
out_page:
	promtext__free(&pg);
out:
	free(text);
	sim__fini(&s);
}

/* --llamacpp: llama-server's metrics names, which the agent takes as a
 * llama.cpp server, and its /props with the slots */
static void llamacpp_pages(void)
{
	struct sim_cfg c = cfg_default();
	struct prom_page pg;
	struct sim s;
	char err[256], *text = NULL, *props = NULL;
	unsigned int slots = 0;
	double v;

	c.llamacpp = true;
	c.slots = 3;
	if (!ASSERT_OK(sim__init(&s, &c, "m1:100", NULL, err, sizeof(err)), err))
		return;
	run(&s, "m1", "a", "0123456789012345678901234567890123456789", "", NULL);
	text = sim__metrics(&s);
	if (!ASSERT_OK_PTR(text, "metrics") ||
	    !ASSERT_OK(promtext__parse(&pg, text, strlen(text), err, sizeof(err)), err))
		goto out;
	ASSERT_STREQ(agent_metrics__kind(&pg), "llamacpp", "read as llama.cpp");
	ASSERT_EQ(promtext__sum(&pg, "vllm:num_requests_running", &v), 0, "no vLLM names");
	ASSERT_EQ(promtext__sum(&pg, "llamacpp:prompt_tokens_total", &v), 1, "prompt tokens");
	ASSERT_TRUE(v == 10, "10 prompt tokens");
	ASSERT_EQ(promtext__sum(&pg, "llamacpp:requests_processing", &v), 1, "processing");
	ASSERT_TRUE(v == 0, "idle");
	ASSERT_EQ(promtext__sum(&pg, "aibl_simnode_model_resident", &v), 1, "the lab's own");
	promtext__free(&pg);
	props = sim__props(&s);
	if (ASSERT_OK_PTR(props, "props"))
		ASSERT_OK(
		    agent_info__slots("llamacpp", props, strlen(props), &slots, err, sizeof(err)),
		    err);
	ASSERT_EQ(slots, 3, "total_slots: --slots");
out:
	free(props);
	free(text);
	sim__fini(&s);
}

static const struct test_case cases[] = {
    {"init_errors", init_errors},
    {"prefix_cache", prefix_cache},
    {"prefix_cache_lru", prefix_cache_lru},
    {"prefix_cache_shared", prefix_cache_shared},
    {"model_residency", model_residency},
    {"lora_adapters", lora_adapters},
    {"determinism", determinism},
    {"metrics_page", metrics_page},
    {"stop_ends_waits", stop_ends_waits},
    {"shared_prefill", shared_prefill},
    {"llamacpp_pages", llamacpp_pages},
    {"kv_admission", kv_admission},
    {"kv_admission_counts_reused_prefix", kv_admission_counts_reused_prefix},
};

TEST_MAIN("simnode", cases)
