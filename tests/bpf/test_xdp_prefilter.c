// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The pre-filters in front of the VIP and pin lookups (aibl_filter).
 */
#include <pthread.h>
#include <stdlib.h>
#include "xdp_fixture.h"

/*
 * Pre-filters: with a flag set the program trusts its bitmap (a key written
 * without the rebuild is not seen); without it, the map alone decides, so
 * writers that do not maintain a filter keep working.
 */
static void test_prefilters(void)
{
	struct aibl_vip_key k = {.port = htons(80), .proto = IPPROTO_TCP, .family = AIBL_AF_INET};
	struct aibl_vip v = {.svc_id = 0};
	struct aibl_pin_key pk = {.svc_id = 0, .family = AIBL_AF_INET};
	struct aibl_pin pv = {.backend = 2};
	struct xe_result r;
	__u8 flags = AIBL_G_F_VIP_FILTER | AIBL_G_F_PIN_FILTER;

	if (!std_env())
		goto out;
	ASSERT_EQ(xe_glob.flags & flags, flags, "fixtures run with both filters");
	/* a VIP address the filter was not told about */
	xe_addr(&k.addr, AIBL_AF_INET, "10.100.9.9");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_VIPS), &k, &v, BPF_ANY) ? -errno : 0, "vip");
	ASSERT_EQ(syn_from(1, 1, "10.100.9.9", 80, &r), -1, "filter on, not rebuilt: not steered");
	ASSERT_EQ(r.verdict, XDP_PASS, "passed");
	ASSERT_EQ(xe_counter(AIBL_CNT_PASS), 1, "counted as pass");
	xe_glob.flags &= ~AIBL_G_F_VIP_FILTER;
	ASSERT_OK(xe_globals_write(), "vip filter off");
	ASSERT_EQ(syn_from(2, 1, "10.100.9.9", 80, &r), 1, "filter off: the map decides");
	xe_glob.flags |= AIBL_G_F_VIP_FILTER;
	ASSERT_OK(xe_globals_write(), "vip filter on");
	ASSERT_OK(dp__vip_filter_rebuild(xe_fd(AIBL_MAP_FILTER), xe_fd(AIBL_MAP_VIPS)), "rebuild");
	ASSERT_EQ(syn_from(3, 1, "10.100.9.9", 80, &r), 1, "rebuilt: steered");
	/* a deleted VIP leaves a stale bit: the lookup still decides */
	ASSERT_OK(bpf_map_delete_elem(xe_fd(AIBL_MAP_VIPS), &k) ? -errno : 0, "delete vip");
	ASSERT_EQ(syn_from(4, 1, "10.100.9.9", 80, &r), -1, "deleted: passed");
	ASSERT_EQ(r.verdict, XDP_PASS, "passed after delete");

	/* a pin the filter was not told about is not consulted */
	xe_addr(&pk.client, AIBL_AF_INET, "198.18.0.10");
	ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_PINS), &pk, &pv, BPF_ANY) ? -errno : 0, "pin");
	ASSERT_EQ(syn_from(10, 1, VIP4, 80, &r), 1, "pin filter on, not rebuilt: ring");
	xe_glob.flags &= ~AIBL_G_F_PIN_FILTER;
	ASSERT_OK(xe_globals_write(), "pin filter off");
	ASSERT_EQ(syn_from(10, 2, VIP4, 80, &r), 2, "pin filter off: pinned");
	xe_glob.flags |= AIBL_G_F_PIN_FILTER;
	ASSERT_OK(xe_globals_write(), "pin filter on");
	ASSERT_OK(xe_pin_filter(), "rebuild pins");
	ASSERT_EQ(syn_from(10, 3, VIP4, 80, &r), 2, "rebuilt: pinned");
	ASSERT_EQ(xe_counter(AIBL_CNT_PIN_HIT), 2, "pin_hit");
out:
	xe_down();
}

struct filter_adder {
	int fd, from, n;
};

static void *filter_add_run(void *arg)
{
	const struct filter_adder *a = arg;

	for (int i = a->from; i < a->from + a->n; i++) {
		struct aibl_vip_key k = {.family = AIBL_AF_INET};

		k.addr.v4 = htonl(0x0a640000 + i); /* 10.100.x.y */
		if (dp__vip_filter_add(a->fd, &k))
			break;
	}
	return NULL;
}

/*
 * aibld's recompute workers write services in parallel, each VIP's bit
 * into the one shared bitmap: none may be lost (a VIP without its bit is
 * passed to the kernel while BGP announces it).
 */
static void test_vip_bits_parallel(void)
{
	struct filter_adder a[4];
	pthread_t t[4];
	struct aibl_filter *f = calloc(1, sizeof(*f));
	__u32 which = AIBL_FILTER_VIP;
	int missing = 0;

	if (!ASSERT_TRUE(f != NULL, "alloc") || !std_env())
		goto out;
	if (!ASSERT_OK(bpf_map_update_elem(xe_fd(AIBL_MAP_FILTER), &which, f, 0) ? -errno : 0,
		       "cleared"))
		goto out;
	for (int i = 0; i < 4; i++) {
		a[i] =
		    (struct filter_adder){.fd = xe_fd(AIBL_MAP_FILTER), .from = i * 500, .n = 500};
		pthread_create(&t[i], NULL, filter_add_run, &a[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	bpf_map_lookup_elem(xe_fd(AIBL_MAP_FILTER), &which, f);
	for (int i = 0; i < 2000; i++) {
		union aibl_addr addr = {};
		__u32 bit;

		addr.v4 = htonl(0x0a640000 + i);
		bit = aibl_filter_vip_bit(&addr, AIBL_AF_INET);
		missing += !(f->bits[bit / 64] & (1ULL << (bit % 64)));
	}
	ASSERT_EQ(missing, 0, "2,000 VIPs' bits from four threads, none lost");
out:
	free(f);
	xe_down();
}

static const struct test_case cases[] = {
    {"prefilters", test_prefilters},
    {"vip_bits_parallel", test_vip_bits_parallel},
};

XF_MAIN(cases)
