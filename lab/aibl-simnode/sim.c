// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-simnode latency model: see sim.h */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <xxhash.h>
#include "sim.h"

static const double ttft_le[SIM_TTFT_BUCKETS - 1] = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0,   2.5,	  5.0,	7.5,  10,   20,	  40,	80,  160,  640, 2560,
};

/* set by sim__stop(): every simulated wait ends at once */
static volatile sig_atomic_t sim_stopping;

void sim__sleep_until(double t_ms)
{
	struct timespec ts;

	/* in slices of at most 50 ms, so a stop is not held up by a CPU
	 * node's long prefill or a model load */
	while (!sim_stopping) {
		double now = clock_mono_msf(), until = fmin(t_ms, now + 50);

		if (until <= now)
			return;
		ts.tv_sec = (time_t)(until / 1e3);
		ts.tv_nsec = (long)((until - ts.tv_sec * 1e3) * 1e6);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
}

void sim__stop(struct sim *s)
{
	pthread_mutex_lock(&s->lock);
	sim_stopping = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static double sim_mult(const struct sim *s)
{
	return s->cfg.slowdown * (s->cfg.cpu ? s->cfg.cpu_factor : 1.0);
}

uint32_t sim__tokens(const struct sim *s, size_t chars)
{
	double t = ceil((double)chars / s->cfg.chars_per_token);

	return t < 1 ? 1 : t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

int sim__model_find(const struct sim *s, const char *name)
{
	for (int i = 0; i < s->nmodels; i++)
		if (!strcmp(s->models[i].name, name))
			return i;
	return -1;
}

static int sim_parse_models(struct sim *s, const char *spec, char *err, size_t errlen)
{
	char *copy = strdup(spec), *save = NULL, *tok, *colon, *end;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct sim_model *m;
		unsigned long long mb = 0;

		if (s->nmodels >= SIM_MAX_MODELS) {
			snprintf(err, errlen, "more than %d models", SIM_MAX_MODELS);
			ret = -E2BIG;
			break;
		}
		/* the size follows the last ':' (names like llama3:8b keep theirs) */
		colon = strrchr(tok, ':');
		if (colon) {
			errno = 0;
			mb = strtoull(colon + 1, &end, 10);
			if (errno || *end || end == colon + 1) {
				snprintf(err, errlen,
					 "model \"%s\": size \"%s\" is not a number of MiB", tok,
					 colon + 1);
				ret = -EINVAL;
				break;
			}
			*colon = '\0';
		}
		if (!*tok || strlen(tok) >= SIM_MODEL_LEN) {
			snprintf(err, errlen, "model name \"%s\" empty or too long", tok);
			ret = -EINVAL;
			break;
		}
		if (sim__model_find(s, tok) >= 0) {
			snprintf(err, errlen, "model \"%s\" listed twice", tok);
			ret = -EINVAL;
			break;
		}
		m = &s->models[s->nmodels++];
		strcpy(m->name, tok);
		m->size_mb = colon ? mb : 1000;
	}
	free(copy);
	if (!ret && !s->nmodels) {
		snprintf(err, errlen, "no models");
		ret = -EINVAL;
	}
	return ret;
}

/*
 * --nvml-ctl: the memory the resident and loading models take, as the
 * fake NVML's controls (tests/fake/fake_nvml.c) read them: an agent that
 * loads that library sees one GPU whose memory fills as models load, where
 * a real node's agent reads NVML. Utilisation, temperature and power read
 * as not supported: nothing here simulates them. Written whole, then
 * renamed into place; the caller holds s->lock.
 */
static void sim_nvml_write(const struct sim *s)
{
	char tmp[4096];
	FILE *f;

	if (!s->cfg.nvml_ctl ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", s->cfg.nvml_ctl) >= (int)sizeof(tmp))
		return;
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f,
		"FAKE_NVML_MEM_USED_MB=%llu\nFAKE_NVML_MEM_TOTAL_MB=%llu\n"
		"FAKE_NVML_FAIL=util:0=3,temp:0=3,tempv:0=3,power:0=3\n",
		(unsigned long long)s->mem_used_mb, (unsigned long long)s->cfg.mem_mb);
	if (fclose(f) || rename(tmp, s->cfg.nvml_ctl))
		unlink(tmp);
}

static int sim_make_resident(struct sim *s, int i, char *err, size_t errlen)
{
	struct sim_model *m = &s->models[i];

	if (m->resident)
		return 0;
	if (s->mem_used_mb + m->size_mb > s->cfg.mem_mb) {
		snprintf(
		    err, errlen,
		    "model %s (%llu MiB) does not fit the memory budget (%llu of %llu MiB used)",
		    m->name, (unsigned long long)m->size_mb, (unsigned long long)s->mem_used_mb,
		    (unsigned long long)s->cfg.mem_mb);
		return -E2BIG;
	}
	m->resident = true;
	m->last_used = ++s->seq;
	s->mem_used_mb += m->size_mb;
	return 0;
}

int sim__init(struct sim *s, const struct sim_cfg *cfg, const char *models, const char *resident,
	      char *err, size_t errlen)
{
	int ret, i;

	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	sim_stopping = 0; /* one simulated node a process; tests make several */
	if (!cfg->slots || !cfg->max_sessions || cfg->chars_per_token <= 0 || cfg->slowdown <= 0 ||
	    cfg->cpu_factor <= 0 || cfg->jitter < 0 || cfg->jitter >= 1 || cfg->lora_overhead < 0) {
		snprintf(err, errlen, "invalid latency model settings");
		return -EINVAL;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->lru_head = s->lru_tail = -1;
	s->start_ms = clock_mono_msf();
	ret = sim_parse_models(s, models, err, errlen);
	if (ret)
		return ret;
	if (resident) {
		char *copy = strdup(resident), *save = NULL, *tok;

		if (!copy)
			return -ENOMEM;
		for (tok = strtok_r(copy, ",", &save); tok && !ret;
		     tok = strtok_r(NULL, ",", &save)) {
			i = sim__model_find(s, tok);
			if (i < 0) {
				snprintf(err, errlen, "resident model \"%s\" is not in --models",
					 tok);
				ret = -EINVAL;
			} else {
				ret = sim_make_resident(s, i, err, errlen);
			}
		}
		free(copy);
		if (ret)
			return ret;
	} else {
		for (i = 0; i < s->nmodels; i++)
			if (s->mem_used_mb + s->models[i].size_mb <= cfg->mem_mb)
				sim_make_resident(s, i, err, errlen);
	}
	sim_nvml_write(s);

	s->nbuckets = cfg->max_sessions * 2;
	s->sessions = calloc(cfg->max_sessions, sizeof(*s->sessions));
	s->hbuckets = malloc(s->nbuckets * sizeof(*s->hbuckets));
	if (!s->sessions || !s->hbuckets)
		return -ENOMEM;
	for (unsigned int b = 0; b < s->nbuckets; b++)
		s->hbuckets[b] = -1;
	/* free list through hnext */
	for (unsigned int k = 0; k < cfg->max_sessions; k++)
		s->sessions[k].hnext = k + 1 < cfg->max_sessions ? (int)k + 1 : -1;
	s->free_head = 0;
	return 0;
}

void sim__fini(struct sim *s)
{
	free(s->sessions);
	free(s->hbuckets);
	s->sessions = NULL;
	s->hbuckets = NULL;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
}

/* ---- prefix cache: hash table + LRU list over a fixed array ---- */

static void lru_unlink(struct sim *s, int i)
{
	struct sim_session *e = &s->sessions[i];

	if (e->lru_prev >= 0)
		s->sessions[e->lru_prev].lru_next = e->lru_next;
	else
		s->lru_head = e->lru_next;
	if (e->lru_next >= 0)
		s->sessions[e->lru_next].lru_prev = e->lru_prev;
	else
		s->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = -1;
}

static void lru_push(struct sim *s, int i)
{
	struct sim_session *e = &s->sessions[i];

	e->lru_prev = -1;
	e->lru_next = s->lru_head;
	if (s->lru_head >= 0)
		s->sessions[s->lru_head].lru_prev = i;
	s->lru_head = i;
	if (s->lru_tail < 0)
		s->lru_tail = i;
}

static int sess_find(struct sim *s, const char *key, uint64_t h)
{
	for (int i = s->hbuckets[h % s->nbuckets]; i >= 0; i = s->sessions[i].hnext)
		if (s->sessions[i].key_hash == h && !strcmp(s->sessions[i].key, key))
			return i;
	return -1;
}

static void sess_drop(struct sim *s, int i)
{
	struct sim_session *e = &s->sessions[i];
	int *pp = &s->hbuckets[e->key_hash % s->nbuckets];

	while (*pp != i)
		pp = &s->sessions[*pp].hnext;
	*pp = e->hnext;
	lru_unlink(s, i);
	s->cached_tokens -= e->full_tokens;
	s->nsessions--;
	s->cache_evictions++;
	memset(e, 0, sizeof(*e));
	e->hnext = s->free_head;
	s->free_head = i;
}

/*
 * A KV cache is its model's: the prefixes computed by model i (or, with
 * lora >= 0, by that adapter of it) go when the model leaves the memory,
 * unloaded or evicted, as vLLM's blocks go with its engine. One a running
 * request reuses stays until that request ends with it.
 */
static void cache_drop_model(struct sim *s, int model, int lora)
{
	if (lora < 0)
		s->models[model].gen++;
	else
		s->loras[lora].gen++;
	for (unsigned int k = 0; k < s->cfg.max_sessions; k++) {
		const struct sim_session *e = &s->sessions[k];

		if (e->used && !e->users && e->model == model && (lora < 0 || e->lora == lora))
			sess_drop(s, (int)k);
	}
}

/*
 * The cache holds the idle prefixes and the running requests' tokens, a
 * running request's reused prefix once: vLLM's prefix caching shares a
 * hit's blocks with the request, which allocates blocks only for what it
 * computes. Counted twice, a node running 8 cached turns of 3,000 tokens
 * had 52,000 of its 100,000 left for idle prefixes, not 76,000.
 */
static uint64_t cache_used(const struct sim *s)
{
	return s->cached_tokens + s->running_tokens - s->shared_tokens;
}

/* the least recently used evictable prefix from entry i towards the most
 * recent: not `keep`, nor one a running request reuses; -1 if none */
static int lru_evictable(const struct sim *s, int i, int keep)
{
	while (i >= 0 && (i == keep || s->sessions[i].users))
		i = s->sessions[i].lru_prev;
	return i;
}

/* evict least recently used prefixes until the cache fits */
static void cache_fit(struct sim *s, int keep)
{
	int victim = lru_evictable(s, s->lru_tail, keep);

	while (victim >= 0 && cache_used(s) > s->cfg.cache_tokens) {
		int prev = lru_evictable(s, s->sessions[victim].lru_prev, keep);

		sess_drop(s, victim);
		victim = prev;
	}
}

static uint32_t cache_lookup_locked(struct sim *s, const char *session, const char *text,
				    size_t len, int *entry)
{
	uint64_t h = XXH3_64bits(session, strlen(session));
	struct sim_session *e;
	uint32_t hit = 0;
	int i = sess_find(s, session, h);

	if (entry)
		*entry = i;
	if (i < 0)
		return 0;
	e = &s->sessions[i];
	/* the previous turn's prompt and reply, or at least its prompt */
	if (e->full_chars && len >= e->full_chars &&
	    XXH3_64bits_withSeed(text, e->full_chars, s->cfg.seed) == e->full_hash)
		hit = e->full_tokens;
	else if (e->prompt_chars && len >= e->prompt_chars &&
		 XXH3_64bits_withSeed(text, e->prompt_chars, s->cfg.seed) == e->prompt_hash)
		hit = e->prompt_tokens;
	lru_unlink(s, i);
	lru_push(s, i);
	return hit;
}

uint32_t sim__cache_lookup(struct sim *s, const char *session, const char *text, size_t len)
{
	uint32_t hit;

	pthread_mutex_lock(&s->lock);
	hit = cache_lookup_locked(s, session, text, len, NULL);
	pthread_mutex_unlock(&s->lock);
	return hit;
}

static void cache_store_locked(struct sim *s, const struct sim_req *rq, const char *cont,
			       size_t cont_len)
{
	uint64_t h = XXH3_64bits(rq->session, strlen(rq->session));
	uint32_t full_tokens = rq->prompt_tokens + rq->generated;
	XXH3_state_t *st;
	struct sim_session *e;
	int i;

	if (full_tokens > s->cfg.cache_tokens)
		return; /* could never be held */
	i = sess_find(s, rq->session, h);
	if (i < 0) {
		if (s->free_head < 0) {
			int victim = lru_evictable(s, s->lru_tail, -1);

			if (victim < 0)
				return; /* every entry is in use */
			sess_drop(s, victim);
		}
		i = s->free_head;
		e = &s->sessions[i];
		s->free_head = e->hnext;
		memset(e, 0, sizeof(*e));
		e->used = true;
		e->key_hash = h;
		snprintf(e->key, sizeof(e->key), "%s", rq->session);
		e->hnext = s->hbuckets[h % s->nbuckets];
		s->hbuckets[h % s->nbuckets] = i;
		e->lru_prev = e->lru_next = -1;
		lru_push(s, i);
		s->nsessions++;
	} else {
		e = &s->sessions[i];
		s->cached_tokens -= e->full_tokens;
		lru_unlink(s, i);
		lru_push(s, i);
	}
	e->model = rq->model;
	e->lora = rq->adapter ? rq->lora : -1;
	e->model_gen = rq->model_gen;
	e->lora_gen = rq->lora_gen;
	e->prompt_chars = rq->prompt_len;
	e->prompt_tokens = rq->prompt_tokens;
	e->prompt_hash = XXH3_64bits_withSeed(rq->prompt, rq->prompt_len, s->cfg.seed);
	e->full_chars = rq->prompt_len + cont_len;
	e->full_tokens = full_tokens;
	st = XXH3_createState();
	if (st && XXH3_64bits_reset_withSeed(st, s->cfg.seed) == XXH_OK &&
	    XXH3_64bits_update(st, rq->prompt, rq->prompt_len) == XXH_OK &&
	    XXH3_64bits_update(st, cont, cont_len) == XXH_OK) {
		e->full_hash = XXH3_64bits_digest(st);
	} else {
		/* no memory for the state: keep only the prompt prefix */
		e->full_chars = 0;
		e->full_tokens = e->prompt_tokens;
	}
	XXH3_freeState(st);
	s->cached_tokens += e->full_tokens;
	cache_fit(s, i);
}

/* ---- requests ---- */

void sim__req_init(struct sim *s, struct sim_req *rq)
{
	uint64_t h;
	double u;

	rq->prompt_tokens = sim__tokens(s, rq->prompt_len);
	if (!rq->max_tokens)
		rq->max_tokens = s->cfg.default_max_tokens;
	rq->content_hash = XXH3_64bits_withSeed(rq->prompt, rq->prompt_len, s->cfg.seed);
	h = XXH3_64bits_withSeed(rq->session, strlen(rq->session), rq->content_hash);
	u = (double)(h >> 11) / (double)(1ULL << 53);
	rq->jitter = 1.0 + s->cfg.jitter * (2 * u - 1);
	rq->t_arrival = clock_mono_msf();
}

/* Wait until model i is resident and take a reference on it. */
static int model_acquire(struct sim *s, struct sim_req *rq)
{
	struct sim_model *m = &s->models[rq->model];

	if (m->size_mb > s->cfg.mem_mb)
		return -E2BIG;
	for (;;) {
		if (m->resident) {
			m->users++;
			m->last_used = ++s->seq;
			return 0;
		}
		rq->cold = true;
		if (m->loading) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		/* make room: evict idle resident models, least recently used first */
		while (s->mem_used_mb + m->size_mb > s->cfg.mem_mb) {
			struct sim_model *lru = NULL;

			for (int i = 0; i < s->nmodels; i++) {
				struct sim_model *o = &s->models[i];

				if (o->resident && !o->users &&
				    (!lru || o->last_used < lru->last_used))
					lru = o;
			}
			if (!lru)
				break;
			lru->resident = false;
			lru->evictions++;
			s->mem_used_mb -= lru->size_mb;
			cache_drop_model(s, (int)(lru - s->models), -1);
			sim_nvml_write(s);
		}
		if (s->mem_used_mb + m->size_mb > s->cfg.mem_mb) {
			/* every resident model is busy: wait for one to go idle */
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		m->loading = true;
		s->mem_used_mb += m->size_mb;
		sim_nvml_write(s);
		pthread_mutex_unlock(&s->lock);
		sim__sleep_until(clock_mono_msf() + s->cfg.load_ms * s->cfg.slowdown);
		pthread_mutex_lock(&s->lock);
		m->loading = false;
		m->resident = true;
		m->loads++;
		pthread_cond_broadcast(&s->cond);
	}
}

int sim__model_load(struct sim *s, int i)
{
	struct sim_req rq = {.model = i};
	int err;

	pthread_mutex_lock(&s->lock);
	err = model_acquire(s, &rq);
	if (!err) {
		s->models[i].users--;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

int sim__model_unload(struct sim *s, int i)
{
	struct sim_model *m = &s->models[i];
	int err = 0;

	pthread_mutex_lock(&s->lock);
	if (!m->resident) {
		err = m->loading ? -EBUSY : -ENOENT;
	} else {
		m->resident = false;
		s->mem_used_mb -= m->size_mb;
		cache_drop_model(s, i, -1);
		sim_nvml_write(s);
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* ---- LoRA adapters ---- */

static int lora_find(const struct sim *s, const char *name)
{
	for (int i = 0; i < s->nloras; i++)
		if (!strcmp(s->loras[i].name, name))
			return i;
	return -1;
}

int sim__lora_load(struct sim *s, const char *name, const char *path, const char *parent)
{
	int p = parent ? sim__model_find(s, parent) : 0, i, err = 0;
	struct sim_lora *l;

	if (p < 0)
		return -ENOENT;
	/* a ',' would split it in lora_requests_info's list */
	if (!*name || strlen(name) >= SIM_MODEL_LEN || strchr(name, ','))
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	i = lora_find(s, name);
	if (i < 0 && s->nloras >= SIM_MAX_LORAS)
		err = -ENOSPC;
	else if (i >= 0 && s->loras[i].loaded)
		err = -EEXIST;
	else if (i >= 0 && s->loras[i].loading)
		err = -EBUSY;
	if (err) {
		pthread_mutex_unlock(&s->lock);
		return err;
	}
	if (i < 0) {
		i = s->nloras++;
		snprintf(s->loras[i].name, sizeof(s->loras[i].name), "%s", name);
	}
	l = &s->loras[i];
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->parent = p;
	l->loading = true;
	pthread_mutex_unlock(&s->lock);
	/* reading the weights: small next to a base model's load, not free */
	sim__sleep_until(clock_mono_msf() + s->cfg.lora_load_ms * s->cfg.slowdown);
	pthread_mutex_lock(&s->lock);
	l->loading = false;
	l->loaded = true;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int sim__lora_unload(struct sim *s, const char *name)
{
	int i, err = 0;

	pthread_mutex_lock(&s->lock);
	i = lora_find(s, name);
	if (i < 0 || !s->loras[i].loaded) {
		err = -ENOENT;
	} else {
		s->loras[i].loaded = false;
		cache_drop_model(s, s->loras[i].parent, i);
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

int sim__lora_route(struct sim *s, const char *name, struct sim_req *rq)
{
	int i, err = 0;

	pthread_mutex_lock(&s->lock);
	i = lora_find(s, name);
	if (i < 0 || !s->loras[i].loaded) {
		err = -ENOENT;
	} else {
		rq->model = s->loras[i].parent;
		rq->adapter = true;
		rq->lora = i;
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

/*
 * Does the request's KV fit beside the running ones? vLLM's scheduler
 * takes a waiting request only when its blocks can be had: free ones, or
 * idle cached ones (evictable, so counted free; reused, they leave the
 * free pool all the same); only a prefix a running request holds already
 * costs nothing more. A running request holds all its tokens, the prefix
 * it reused from the cache too (its blocks are pinned while it runs): the
 * held tokens are running_tokens, the figure vllm:kv_cache_usage_perc
 * shows. Until 2026-12-07 the reused prefix was counted free, and a node
 * whose turns ran on cache hits admitted past its capacity. First come first served: the head of
 * the queue waits, and everyone behind it, until running requests finish. A request alone on the
 * node always runs (vLLM refuses a prompt longer than the model's context up front instead).
 * Running requests still grow by their decoded tokens past the capacity: the preemption vLLM would
 * do then is not modelled.
 */
static bool kv_fits(struct sim *s, const struct sim_req *rq)
{
	uint64_t held = s->running_tokens, need = rq->prompt_tokens;
	uint32_t hit;
	int entry;

	if (!s->running)
		return true;
	hit = cache_lookup_locked(s, rq->session, rq->prompt, rq->prompt_len, &entry);
	if (hit && entry >= 0 && s->sessions[entry].users)
		need -= hit < rq->prompt_tokens ? hit : rq->prompt_tokens - 1;
	return held + need <= s->cfg.cache_tokens;
}

int sim__admit(struct sim *s, struct sim_req *rq)
{
	struct sim_model *m = &s->models[rq->model];
	struct sim_lora *l = rq->adapter ? &s->loras[rq->lora] : NULL;
	uint64_t ticket;
	int err;

	pthread_mutex_lock(&s->lock);
	if (s->waiting >= s->cfg.queue_max) {
		s->rejected++;
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	s->waiting++;
	m->waiting++;
	if (l)
		l->waiting++;
	err = model_acquire(s, rq);
	if (err) {
		s->waiting--;
		m->waiting--;
		if (l)
			l->waiting--;
		pthread_mutex_unlock(&s->lock);
		return err;
	}
	/* slots are handed out in arrival order, each once its KV fits */
	ticket = s->next_ticket++;
	while (!sim_stopping &&
	       (s->running >= s->cfg.slots || ticket != s->head_ticket || !kv_fits(s, rq)))
		pthread_cond_wait(&s->cond, &s->lock);
	s->head_ticket++;
	s->waiting--;
	m->waiting--;
	s->running++;
	m->running++;
	m->requests++;
	if (l) {
		l->waiting--;
		l->running++;
		l->requests++;
	}
	rq->t_admitted = clock_mono_msf();
	/* the engines it runs on: an unload while it waited for a slot, and
	 * a load after, gave it another one than it first found */
	rq->model_gen = m->gen;
	rq->lora_gen = l ? l->gen : 0;
	rq->cached_tokens =
	    cache_lookup_locked(s, rq->session, rq->prompt, rq->prompt_len, &rq->cache_entry);
	/* a prefix an earlier engine computed (held past its unload by a
	 * request still running then) is no hit on this one */
	if (rq->cache_entry >= 0 && (s->sessions[rq->cache_entry].model_gen != rq->model_gen ||
				     s->sessions[rq->cache_entry].lora_gen != rq->lora_gen))
		rq->cached_tokens = 0;
	if (rq->cached_tokens >= rq->prompt_tokens)
		rq->cached_tokens = rq->prompt_tokens - 1; /* the last token is always computed */
	if (rq->cached_tokens && rq->cache_entry >= 0) {
		s->sessions[rq->cache_entry].users++;
		s->shared_tokens += rq->cached_tokens;
	} else {
		rq->cache_entry = -1;
	}
	s->cache_queries += rq->prompt_tokens;
	s->cache_hits += rq->cached_tokens;
	m->prompt_tokens += rq->prompt_tokens;
	s->running_tokens += rq->prompt_tokens;
	cache_fit(s, -1);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* the request's multiplier: node, jitter, and the adapter's extra math */
static double req_mult(const struct sim *s, const struct sim_req *rq)
{
	return sim_mult(s) * rq->jitter * (rq->adapter ? 1 + s->cfg.lora_overhead : 1);
}

double sim__prefill_ms(const struct sim *s, const struct sim_req *rq)
{
	return (s->cfg.prefill_base_ms +
		(rq->prompt_tokens - rq->cached_tokens) * s->cfg.prefill_ms_per_tok) *
	       req_mult(s, rq);
}

double sim__prefill_end(struct sim *s, const struct sim_req *rq)
{
	double start = rq->t_admitted, end;

	if (!s->cfg.shared_prefill)
		return start + sim__prefill_ms(s, rq);
	pthread_mutex_lock(&s->lock);
	if (s->prefill_free_ms > start)
		start = s->prefill_free_ms;
	end = start + sim__prefill_ms(s, rq);
	s->prefill_free_ms = end;
	pthread_mutex_unlock(&s->lock);
	return end;
}

double sim__decode_ms(struct sim *s, const struct sim_req *rq)
{
	unsigned int running;

	pthread_mutex_lock(&s->lock);
	running = s->running;
	pthread_mutex_unlock(&s->lock);
	return s->cfg.decode_ms_per_tok * (1 + s->cfg.batch_penalty * (running ? running - 1 : 0)) *
	       req_mult(s, rq);
}

static void hist_add(uint64_t *buckets, double v)
{
	int b = 0;

	while (b < SIM_TTFT_BUCKETS - 1 && v > ttft_le[b])
		b++;
	buckets[b]++;
}

void sim__first_token(struct sim *s, struct sim_req *rq)
{
	struct sim_model *m = &s->models[rq->model];
	double ttft;

	rq->t_first = clock_mono_msf();
	ttft = (rq->t_first - rq->t_arrival) / 1e3;
	pthread_mutex_lock(&s->lock);
	hist_add(m->ttft_buckets, ttft);
	m->ttft_sum += ttft;
	m->ttft_count++;
	pthread_mutex_unlock(&s->lock);
}

void sim__token(struct sim *s, struct sim_req *rq)
{
	pthread_mutex_lock(&s->lock);
	rq->generated++;
	s->models[rq->model].gen_tokens++;
	s->running_tokens++;
	pthread_mutex_unlock(&s->lock);
}

void sim__finish(struct sim *s, struct sim_req *rq, const char *cont, size_t cont_len)
{
	struct sim_model *m = &s->models[rq->model];
	double now;
	bool gone;

	pthread_mutex_lock(&s->lock);
	s->running--;
	m->running--;
	m->users--;
	if (rq->adapter)
		s->loras[rq->lora].running--;
	m->last_used = ++s->seq;
	now = clock_mono_msf();
	m->e2e_sum += (now - rq->t_arrival) / 1e3;
	m->queue_sum += (rq->t_admitted - rq->t_arrival) / 1e3;
	m->run_sum += (now - rq->t_admitted) / 1e3;
	/* vLLM records both phases when the request finishes */
	m->prefill_sum += ((rq->t_first > 0 ? rq->t_first : now) - rq->t_admitted) / 1e3;
	m->computed_tokens += rq->prompt_tokens - rq->cached_tokens;
	m->request_prompt_tokens += rq->prompt_tokens;
	m->e2e_count++;
	s->running_tokens -= rq->prompt_tokens + rq->generated;
	/* its model or adapter was unloaded while it ran: its KV went with
	 * the engine, the prefix it reused included once no one holds it */
	gone = rq->model_gen != m->gen || (rq->adapter && rq->lora_gen != s->loras[rq->lora].gen);
	if (rq->cache_entry >= 0) {
		struct sim_session *e = &s->sessions[rq->cache_entry];

		e->users--;
		s->shared_tokens -= rq->cached_tokens;
		/* unless a request on the engine loaded since stored its
		 * own prefix there */
		if (gone && !e->users && e->model_gen == rq->model_gen &&
		    e->lora_gen == rq->lora_gen)
			sess_drop(s, rq->cache_entry);
		rq->cache_entry = -1;
	}
	if (!gone)
		cache_store_locked(s, rq, cont, cont_len);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static const char *const vocab[] = {
    " the",   " model",	 " token", " cache", " prefix", " node", " route", " session",
    " queue", " batch",	 " fast",  " warm",  " cold",	" load", " GPU",   " memory",
    " and",   " of",	 " to",	   " in",    " is",	" a",	 " that",  " for",
    " with",  " answer", " data",  " time",  " first",	" next", " more",  " less",
};

const char *sim__token_text(const struct sim *s, const struct sim_req *rq, uint32_t i)
{
	uint64_t h = XXH3_64bits_withSeed(&i, sizeof(i), rq->content_hash);

	return vocab[h % (sizeof(vocab) / sizeof(vocab[0]))];
}

/* ---- exposition ---- */

static void prom_label_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

#define PER_MODEL(f, s, mname, type, help, fmt, expr)                                              \
	do {                                                                                       \
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", mname, help, mname, type);              \
		for (int _i = 0; _i < (s)->nmodels; _i++) {                                        \
			const struct sim_model *m = &(s)->models[_i];                              \
			fprintf(f, "%s{model_name=\"", mname);                                     \
			prom_label_value(f, m->name);                                              \
			fprintf(f, "\"} " fmt "\n", expr);                                         \
		}                                                                                  \
	} while (0)

/* which of a model's request histograms prom_hist() writes */
enum sim_hist {
	SIM_HIST_TTFT, /* with buckets */
	SIM_HIST_E2E,  /* the rest: sum and count, the +Inf bucket only */
	SIM_HIST_QUEUE,
	SIM_HIST_RUN,
	SIM_HIST_PREFILL,
	SIM_HIST_COMPUTED,
	SIM_HIST_PROMPT,
};

static double hist_sum(const struct sim_model *m, enum sim_hist h)
{
	switch (h) {
	case SIM_HIST_TTFT:
		return m->ttft_sum;
	case SIM_HIST_QUEUE:
		return m->queue_sum;
	case SIM_HIST_RUN:
		return m->run_sum;
	case SIM_HIST_PREFILL:
		return m->prefill_sum;
	case SIM_HIST_COMPUTED:
		return (double)m->computed_tokens;
	case SIM_HIST_PROMPT:
		return (double)m->request_prompt_tokens;
	default:
		return m->e2e_sum;
	}
}

static void prom_hist(FILE *f, const struct sim *s, const char *name, const char *help,
		      enum sim_hist h)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < s->nmodels; i++) {
		const struct sim_model *m = &s->models[i];
		uint64_t cum = 0, count = h == SIM_HIST_TTFT ? m->ttft_count : m->e2e_count;

		if (h == SIM_HIST_TTFT) {
			for (int b = 0; b < SIM_TTFT_BUCKETS; b++) {
				cum += m->ttft_buckets[b];
				fprintf(f, "%s_bucket{model_name=\"", name);
				prom_label_value(f, m->name);
				if (b < SIM_TTFT_BUCKETS - 1)
					fprintf(f, "\",le=\"%g\"} %llu\n", ttft_le[b],
						(unsigned long long)cum);
				else
					fprintf(f, "\",le=\"+Inf\"} %llu\n",
						(unsigned long long)cum);
			}
		} else {
			fprintf(f, "%s_bucket{model_name=\"", name);
			prom_label_value(f, m->name);
			fprintf(f, "\",le=\"+Inf\"} %llu\n", (unsigned long long)count);
		}
		fprintf(f, "%s_sum{model_name=\"", name);
		prom_label_value(f, m->name);
		fprintf(f, "\"} %.9g\n", hist_sum(m, h));
		fprintf(f, "%s_count{model_name=\"", name);
		prom_label_value(f, m->name);
		fprintf(f, "\"} %llu\n", (unsigned long long)count);
	}
}

static void lora_names(FILE *f, const struct sim *s, uint64_t set)
{
	bool first = true;

	for (int i = 0; i < s->nloras; i++) {
		if (!(set & 1ULL << i))
			continue;
		if (!first)
			fputc(',', f);
		prom_label_value(f, s->loras[i].name);
		first = false;
	}
}

/*
 * vLLM's vllm:lora_requests_info: prometheus_client keeps every label set
 * the gauge ever had on the page, each valued when it was last current
 * (set_to_current_time), so the current one is the largest value. Here
 * the last SIM_LORA_SETS sets; the current one is made strictly newest.
 * max_lora: the adapters a batch may hold, any number here.
 */
static void lora_info(FILE *f, struct sim *s)
{
	struct sim_lora_set *cur = NULL;
	uint64_t run = 0, wait = 0;
	double now = floor(clock_wall_msf()) / 1e3, last = 0;

	for (int i = 0; i < s->nloras; i++) {
		if (s->loras[i].running)
			run |= 1ULL << i;
		if (s->loras[i].waiting)
			wait |= 1ULL << i;
	}
	for (int k = 0; k < s->nlora_sets; k++) {
		struct sim_lora_set *e = &s->lora_sets[k];

		last = fmax(last, e->ts);
		if (e->running == run && e->waiting == wait)
			cur = e;
	}
	if (!cur && s->nlora_sets < SIM_LORA_SETS) {
		cur = &s->lora_sets[s->nlora_sets++];
	} else if (!cur) {
		cur = &s->lora_sets[0];
		for (int k = 1; k < s->nlora_sets; k++)
			if (s->lora_sets[k].ts < cur->ts)
				cur = &s->lora_sets[k];
	}
	cur->running = run;
	cur->waiting = wait;
	cur->ts = now > last ? now : last + 1e-3;
	fprintf(f, "# HELP vllm:lora_requests_info Running stats on lora requests.\n"
		   "# TYPE vllm:lora_requests_info gauge\n");
	for (int k = 0; k < s->nlora_sets; k++) {
		const struct sim_lora_set *e = &s->lora_sets[k];

		fprintf(f, "vllm:lora_requests_info{max_lora=\"%d\",running_lora_adapters=\"",
			SIM_MAX_LORAS);
		lora_names(f, s, e->running);
		fprintf(f, "\",waiting_lora_adapters=\"");
		lora_names(f, s, e->waiting);
		fprintf(f, "\"} %.3f\n", e->ts);
	}
}

/*
 * llama-server's /metrics (its --metrics page): one scheduler, no model
 * label, no latency histograms; the HELP texts as in llama.cpp PRs 11512
 * and 13196 (tests/data/metrics/). The caller holds the lock.
 */
static void llamacpp_metrics(FILE *f, const struct sim *s)
{
	uint64_t prompt = 0, gen = 0;

	for (int i = 0; i < s->nmodels; i++) {
		prompt += s->models[i].prompt_tokens;
		gen += s->models[i].gen_tokens;
	}
	fprintf(f,
		"# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
		"# TYPE llamacpp:prompt_tokens_total counter\n"
		"llamacpp:prompt_tokens_total %llu\n"
		"# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
		"# TYPE llamacpp:tokens_predicted_total counter\n"
		"llamacpp:tokens_predicted_total %llu\n"
		"# HELP llamacpp:requests_processing Number of requests processing.\n"
		"# TYPE llamacpp:requests_processing gauge\n"
		"llamacpp:requests_processing %u\n"
		"# HELP llamacpp:requests_deferred Number of requests deferred.\n"
		"# TYPE llamacpp:requests_deferred gauge\n"
		"llamacpp:requests_deferred %u\n",
		(unsigned long long)prompt, (unsigned long long)gen, s->running, s->waiting);
}

char *sim__metrics(struct sim *s)
{
	char *buf = NULL;
	size_t len = 0;
	uint64_t idle;
	double kv;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	pthread_mutex_lock(&s->lock);
	/*
	 * vLLM's gauge is BlockPool.get_usage(), 1 - free/total blocks, and a
	 * finished request's blocks count as free while they keep their prefix
	 * hash (evictable on demand): only running requests hold the cache.
	 * The idle prefixes are aibl_simnode_prefix_cache_tokens below.
	 */
	kv = s->cfg.cache_tokens ? (double)s->running_tokens / s->cfg.cache_tokens : 0;
	if (kv > 1)
		kv = 1;
	/* two turns of one session at once may leave the held part above the
	 * entry's (the later one's store replaced it) */
	idle = s->cached_tokens > s->shared_tokens ? s->cached_tokens - s->shared_tokens : 0;
	if (s->cfg.llamacpp) {
		llamacpp_metrics(f, s);
		goto own;
	}
	PER_MODEL(f, s, "vllm:num_requests_running", "gauge",
		  "Number of requests in model execution batches.", "%u", m->running);
	PER_MODEL(f, s, "vllm:num_requests_waiting", "gauge",
		  "Number of requests waiting to be processed.", "%u", m->waiting);
	fprintf(f,
		"# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
		"# TYPE vllm:kv_cache_usage_perc gauge\n"
		"vllm:kv_cache_usage_perc{engine=\"0\"} %.6f\n",
		kv);
	fprintf(f,
		"# HELP vllm:prefix_cache_queries_total Prefix cache queries, in tokens.\n"
		"# TYPE vllm:prefix_cache_queries_total counter\n"
		"vllm:prefix_cache_queries_total{engine=\"0\"} %llu\n",
		(unsigned long long)s->cache_queries);
	fprintf(f,
		"# HELP vllm:prefix_cache_hits_total Prefix cache hits, in tokens.\n"
		"# TYPE vllm:prefix_cache_hits_total counter\n"
		"vllm:prefix_cache_hits_total{engine=\"0\"} %llu\n",
		(unsigned long long)s->cache_hits);
	PER_MODEL(f, s, "vllm:request_success_total", "counter", "Requests served.", "%llu",
		  (unsigned long long)m->e2e_count);
	lora_info(f, s);
	PER_MODEL(f, s, "vllm:prompt_tokens_total", "counter", "Prefill tokens processed.", "%llu",
		  (unsigned long long)m->prompt_tokens);
	PER_MODEL(f, s, "vllm:generation_tokens_total", "counter", "Generation tokens processed.",
		  "%llu", (unsigned long long)m->gen_tokens);
	prom_hist(f, s, "vllm:time_to_first_token_seconds",
		  "Histogram of time to first token in seconds.", SIM_HIST_TTFT);
	prom_hist(f, s, "vllm:e2e_request_latency_seconds",
		  "Histogram of end to end request latency in seconds.", SIM_HIST_E2E);
	prom_hist(f, s, "vllm:request_queue_time_seconds",
		  "Histogram of time spent in WAITING phase for request.", SIM_HIST_QUEUE);
	prom_hist(f, s, "vllm:request_inference_time_seconds",
		  "Histogram of time spent in RUNNING phase for request.", SIM_HIST_RUN);
	prom_hist(f, s, "vllm:request_prefill_time_seconds",
		  "Histogram of time spent in PREFILL phase for request.", SIM_HIST_PREFILL);
	prom_hist(f, s, "vllm:request_prefill_kv_computed_tokens",
		  "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
		  SIM_HIST_COMPUTED);
	prom_hist(f, s, "vllm:request_prompt_tokens", "Number of prefill tokens processed.",
		  SIM_HIST_PROMPT);
own:
	PER_MODEL(f, s, "aibl_simnode_model_resident", "gauge",
		  "1 when the model is loaded and servable.", "%d", m->resident ? 1 : 0);
	PER_MODEL(f, s, "aibl_simnode_model_loads_total", "counter", "Model loads (cold starts).",
		  "%llu", (unsigned long long)m->loads);
	PER_MODEL(f, s, "aibl_simnode_model_evictions_total", "counter", "Models evicted.", "%llu",
		  (unsigned long long)m->evictions);
	fprintf(
	    f,
	    "# HELP aibl_simnode_prefix_cache_sessions Sessions with a cached prefix.\n"
	    "# TYPE aibl_simnode_prefix_cache_sessions gauge\n"
	    "aibl_simnode_prefix_cache_sessions %u\n"
	    "# HELP aibl_simnode_prefix_cache_tokens Tokens of idle cached prefixes (evictable).\n"
	    "# TYPE aibl_simnode_prefix_cache_tokens gauge\n"
	    "aibl_simnode_prefix_cache_tokens %llu\n"
	    "# HELP aibl_simnode_cache_capacity_tokens KV/prefix cache capacity in tokens.\n"
	    "# TYPE aibl_simnode_cache_capacity_tokens gauge\n"
	    "aibl_simnode_cache_capacity_tokens %llu\n"
	    "# HELP aibl_simnode_prefix_cache_evictions_total Prefixes evicted.\n"
	    "# TYPE aibl_simnode_prefix_cache_evictions_total counter\n"
	    "aibl_simnode_prefix_cache_evictions_total %llu\n"
	    "# HELP aibl_simnode_rejected_total Requests refused with 429 (queue full).\n"
	    "# TYPE aibl_simnode_rejected_total counter\n"
	    "aibl_simnode_rejected_total %llu\n"
	    "# HELP aibl_simnode_info Simulated node settings.\n"
	    "# TYPE aibl_simnode_info gauge\n"
	    "aibl_simnode_info{accel=\"%s\",slots=\"%u\",slowdown=\"%g\"} 1\n",
	    s->nsessions, (unsigned long long)idle, (unsigned long long)s->cfg.cache_tokens,
	    (unsigned long long)s->cache_evictions, (unsigned long long)s->rejected,
	    s->cfg.cpu ? "cpu" : "gpu", s->cfg.slots, s->cfg.slowdown);
	pthread_mutex_unlock(&s->lock);
	if (fclose(f))
		return NULL;
	return buf;
}

char *sim__props(struct sim *s)
{
	json_t *root;
	char *out;

	pthread_mutex_lock(&s->lock);
	root = json_pack("{s:i, s:s, s:s}", "total_slots", (int)s->cfg.slots, "model_path",
			 s->nmodels ? s->models[0].name : "", "build_info", "aibl-simnode");
	pthread_mutex_unlock(&s->lock);
	out = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	return out;
}

char *sim__models_json(struct sim *s)
{
	json_t *root = json_object(), *data = json_array(), *o;
	char *out = NULL;

	if (!root || !data || json_object_set_new(root, "object", json_string("list")) ||
	    json_object_set(root, "data", data))
		goto out;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->nmodels; i++) {
		const struct sim_model *m = &s->models[i];

		o = json_pack("{s:s, s:s, s:i, s:s, s:b, s:b, s:I}", "id", m->name, "object",
			      "model", "created", 0, "owned_by", "aibl-simnode", "resident",
			      m->resident, "loadable", 1, "size_mb", (json_int_t)m->size_mb);
		if (!o || json_array_append_new(data, o))
			break;
	}
	/* vLLM lists a loaded adapter with its base model as "parent"; it is
	 * servable at once while the parent is resident */
	for (int i = 0; i < s->nloras; i++) {
		const struct sim_lora *l = &s->loras[i];
		const struct sim_model *p = &s->models[l->parent];

		if (!l->loaded)
			continue;
		o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:b}", "id", l->name, "object",
			      "model", "created", 0, "owned_by", "aibl-simnode", "root", l->path,
			      "parent", p->name, "resident", p->resident);
		if (!o || json_array_append_new(data, o))
			break;
	}
	pthread_mutex_unlock(&s->lock);
	out = json_dumps(root, JSON_COMPACT);
out:
	json_decref(data);
	json_decref(root);
	return out;
}
