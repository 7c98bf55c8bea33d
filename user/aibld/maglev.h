/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Weighted Maglev lookup tables. A pure function of (names, weights, seed,
 * table size): every balancer behind one ECMP group that is given the same
 * inputs builds the same table, whatever order its config lists nodes in.
 */
#ifndef AIBLD_MAGLEV_H
#define AIBLD_MAGLEV_H

#include <linux/types.h>

struct maglev_in {
	const char *name; /* identity hashed into the permutation */
	__u32 weight;	  /* 0: not in the table */
};

/*
 * Fill table[0..m) (m prime) with indices into in[], or AIBL_NO_BACKEND
 * everywhere when every weight is 0. Each slot goes to the backend whose
 * permutation reaches it first in weighted time (maglev.c): shares follow
 * the weights up to binomial noise (<= 0.39 % of the table at m = 16381),
 * and removing a backend moves its own slots only. 0 or -errno (-EINVAL:
 * m not prime, or outside 3 .. 2^24).
 */
int maglev__build(const struct maglev_in *in, int n, __u32 seed, __u32 *table, __u32 m);

#endif
