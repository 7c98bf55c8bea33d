// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Weighted consistent lookup tables: Maglev permutations, rendezvous
 * ownership.
 *
 * Every backend walks its own Maglev permutation of the m slots,
 * slot(j) = (offset + j * skip) mod m, offset and skip from xxhash of its
 * name and the seed (Eisenbud et al., NSDI'16). Plain Maglev gives a slot
 * to whichever backend reaches it first *counting turns*, so a removed
 * backend shifts everyone else's turns and moves far more than 1/N of the
 * table (measured: 1.75/N at N = 64, 5.3/N at N = 256 for m = 16381).
 *
 * Here the j-th position of backend b is reached at a time instead,
 *
 *	t_b(j) = -ln(1 - j/m) / w_b
 *
 * and a slot belongs to the backend that reaches it earliest. That is
 * weighted rendezvous hashing with the permutation as the random source:
 * the owner of a slot depends only on the backends that want it, so
 * removing one moves exactly its own slots (disruption 1/N), and since
 * j/m is uniform, -ln(1 - j/m) is exponential and backend b wins a slot
 * with probability w_b / W: slot shares follow weight shares up to
 * binomial noise, standard deviation sqrt(p(1-p)/m) <= 0.39 % of the
 * table for m = 16381.
 *
 * Determinism across hosts: -ln(1 - j/m) is computed once per table size
 * and rounded to 24 fractional bits; every time after that is integer
 * arithmetic (tau * 2^32 / w), ties go to the name that sorts first. The
 * config order of nodes plays no part.
 *
 * Cost: the walk proceeds in rounds of unit time and stops after the
 * first round that leaves no slot empty, ~ m ln m visits of a few
 * instructions each.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <linux/types.h>
#include "aibl.h"
#include "maglev.h"

#define MG_TAU_SHIFT 24

struct mg_ent {
	const char *name;
	__u32 idx; /* position in the caller's array */
	__u32 weight;
	__u32 skip, pos, next; /* permutation step, current slot, next position j */
	__u64 inv;	       /* 2^32 / weight: time of position j is tau[j] * inv */
};

/* per slot: the earliest claim so far */
struct mg_slot {
	__u64 key;   /* claim time, tau * inv */
	__u32 owner; /* sorted position */
	__u32 pad;
};

/* -ln(1 - j/m) in fixed point, per table size; j = m has no finite time */
static __u32 *mg_tau;
static __u32 mg_tau_m;
static pthread_mutex_t mg_tau_lock = PTHREAD_MUTEX_INITIALIZER;

static const __u32 *mg_tau_get(__u32 m)
{
	__u32 *t;

	pthread_mutex_lock(&mg_tau_lock);
	if (mg_tau_m != m) {
		t = malloc((size_t)m * sizeof(*t));
		if (!t) {
			pthread_mutex_unlock(&mg_tau_lock);
			return NULL;
		}
		for (__u32 j = 0; j < m; j++)
			t[j] = (__u32)llround(-log1p(-(double)j / m) * (1 << MG_TAU_SHIFT));
		free(mg_tau);
		mg_tau = t;
		mg_tau_m = m;
	}
	t = mg_tau;
	pthread_mutex_unlock(&mg_tau_lock);
	return t;
}

static int mg_cmp(const void *a, const void *b)
{
	const struct mg_ent *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool is_prime(__u32 m)
{
	if (m < 2 || (m > 2 && !(m & 1)))
		return false;
	for (__u32 d = 3; d * d <= m; d += 2)
		if (!(m % d))
			return false;
	return true;
}

int maglev__build(const struct maglev_in *in, int n, __u32 seed, __u32 *table, __u32 m)
{
	struct mg_slot *own = NULL;
	struct mg_ent *e = NULL;
	const __u32 *tau;
	__u64 total = 0, round, round_key;
	__u32 filled = 0;
	int na = 0, err = 0;

	/* a size that is not prime leaves a node whose skip shares a factor
	 * with it short of slots: its round would never end */
	if (m < 3 || m > (1U << 24) || n < 0 || !is_prime(m))
		return -EINVAL;
	for (__u32 s = 0; s < m; s++)
		table[s] = AIBL_NO_BACKEND;
	tau = mg_tau_get(m);
	e = calloc(n ? n : 1, sizeof(*e));
	own = malloc((size_t)m * sizeof(*own));
	if (!tau || !e || !own) {
		err = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		size_t len;

		if (!in[i].weight)
			continue;
		len = strlen(in[i].name);
		e[na].name = in[i].name;
		e[na].idx = i;
		e[na].weight = in[i].weight;
		e[na].inv = (1ULL << 32) / in[i].weight;
		e[na].pos = XXH64(in[i].name, len, seed) % m;
		e[na].skip = XXH64(in[i].name, len, (__u64)seed << 32 | 0x5bd1e995) % (m - 1) + 1;
		total += in[i].weight;
		na++;
	}
	if (!na)
		goto out;
	qsort(e, na, sizeof(*e), mg_cmp);
	for (__u32 s = 0; s < m; s++) {
		own[s].key = UINT64_MAX;
		own[s].owner = UINT32_MAX;
	}

	/*
	 * Time of position j of backend b: tau[j] * inv_b, inv_b = 2^32 / w_b
	 * (< 2^60, integer, so identical on every host). Rounds end at
	 * normalised times 1, 2, ... (in units of 1/W): key r * 2^56 / W.
	 * A round stops each backend at its first later position; the fill
	 * is complete once a whole round leaves no slot empty, since every
	 * later visit is later than every claim made so far.
	 */
	for (round = 1; filled < m; round++) {
		round_key = (round << (MG_TAU_SHIFT + 32)) / total;
		for (int i = 0; i < na; i++) {
			struct mg_ent *b = &e[i];
			__u32 pos = b->pos, next = b->next, skip = b->skip;
			__u64 inv = b->inv;

			while (next < m) {
				__u64 key = (__u64)tau[next] * inv;
				struct mg_slot *sl;

				if (key >= round_key)
					break;
				sl = &own[pos];
				/* earlier time wins; a tie keeps the earlier name */
				if (key < sl->key) {
					filled += sl->owner == UINT32_MAX;
					sl->key = key;
					sl->owner = i;
				}
				next++;
				pos += skip;
				if (pos >= m)
					pos -= m;
			}
			b->pos = pos;
			b->next = next;
		}
	}
	for (__u32 s = 0; s < m; s++)
		table[s] = e[own[s].owner].idx;
out:
	free(own);
	free(e);
	return err;
}
