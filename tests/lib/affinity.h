/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibl_affinity buckets as the data plane's choose_affinity() reads and
 * writes them, for tests that set or check a client's entry by hand.
 */
#ifndef AIBL_TEST_AFFINITY_H
#define AIBL_TEST_AFFINITY_H

#include <linux/types.h>
#include "aibl.h"

/*
 * The way of bucket b (the one aibl_affinity_index() names) that holds the
 * client's affinity for the service, or -1: what choose_affinity() finds.
 */
int test_affinity__way(const struct aibl_affinity_bucket *b, __u32 svc_id, __u8 family,
		       const union aibl_addr *client);

/*
 * a into bucket b: in its client's own way, else the first empty one.
 * 0, or -ENOSPC where both ways hold other clients.
 */
int test_affinity__put(struct aibl_affinity_bucket *b, const struct aibl_affinity *a);

#endif /* AIBL_TEST_AFFINITY_H */
