// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibld's loader: a reload reuses the pinned maps (an older counter map
 * is replaced, a map of another layout refused), and attach / detach on a
 * veth replace an aibl program atomically but a foreign one only when
 * forced.
 */
#include <net/if.h>
#include <linux/if_link.h>
#include "xdp_fixture.h"
#include "maps.h"

static void test_loader_pins(void)
{
	struct dp *dp2 = NULL;
	struct dp_opts o = {};
	struct aibl_flow_key fk = xe_fk(CLI4, VIP4, 40000, 80, IPPROTO_TCP);
	struct aibl_conn c;
	struct xe_result r;
	struct pkt_buf in;
	char path[128];
	int fd;

	if (!std_env())
		goto out;
	open_v4_flow(&in, &r);
	/* a second load (restarted controller) finds the connection table */
	o.pin_dir = xe_dir;
	if (!ASSERT_OK(dp__open_load(&o, &dp2), "reload"))
		goto out;
	ASSERT_TRUE(dp2->reused, "reused pins");
	ASSERT_EQ(dp2->sizes.max_conns, 4096, "pinned size wins");
	ASSERT_OK(bpf_map_lookup_elem(dp__map_fd(dp2, AIBL_MAP_CONNS), &fk, &c), "flow kept");
	/* the program pinned is still the first one's: this load is not
	 * attached (a start that fails before its attach leaves the pin
	 * naming the program that runs) */
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_PIN_PROG);
	fd = bpf_obj_get(path);
	if (ASSERT_GE(fd, 0, "program pinned")) {
		struct bpf_prog_info a = {}, b = {};
		__u32 la = sizeof(a), lb = sizeof(b);

		ASSERT_OK(bpf_obj_get_info_by_fd(fd, &a, &la), "pinned info");
		ASSERT_OK(bpf_obj_get_info_by_fd(dp__prog_fd(xe_dp), &b, &lb), "first info");
		ASSERT_EQ(a.id, b.id, "the first load's program, not the second's");
		close(fd);
	}
	dp__close(dp2);
	dp2 = NULL;

	/* counters of an older build (fewer of them): replaced, so the ones
	 * appended since get a slot; everything else is still reused */
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_MAP_STATS);
	unlink(path);
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "aibl_stats", 4, 8, AIBL_CNT__MAX - 1, NULL);
	ASSERT_GE(fd, 0, "older stats map");
	ASSERT_OK(bpf_obj_pin(fd, path), "pin older stats");
	close(fd);
	if (!ASSERT_OK(dp__open_load(&o, &dp2), "reload over older stats"))
		goto out;
	{
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		fd = bpf_obj_get(path);
		ASSERT_GE(fd, 0, "stats pinned again");
		ASSERT_OK(fd >= 0 ? bpf_obj_get_info_by_fd(fd, &info, &len) : -1, "stats info");
		ASSERT_EQ(info.max_entries, AIBL_CNT__MAX, "every counter has a slot");
		if (fd >= 0)
			close(fd);
	}
	ASSERT_OK(bpf_map_lookup_elem(dp__map_fd(dp2, AIBL_MAP_CONNS), &fk, &c), "flow kept");
	dp__close(dp2);
	dp2 = NULL;

	/* an older build's aibl_load, not mmapable: replaced (its counts are
	 * transient, and the reconcile sets them again from the connection
	 * table, which is kept); the new one maps */
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_MAP_LOAD);
	unlink(path);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aibl_load", 4, sizeof(struct aibl_load), 64, NULL);
	ASSERT_GE(fd, 0, "older load map");
	ASSERT_OK(bpf_obj_pin(fd, path), "pin older load");
	{
		struct aibl_load *l;
		__s64 sum = 0;
		__u32 n = 0;

		errno = 0;
		ASSERT_TRUE(!aibl_load__mmap(fd, &n) && errno == EINVAL,
			    "the older one: not mapped");
		close(fd);
		if (!ASSERT_OK(dp__open_load(&o, &dp2), "reload over an older load map"))
			goto out;
		ASSERT_OK(bpf_map_lookup_elem(dp__map_fd(dp2, AIBL_MAP_CONNS), &fk, &c),
			  "flow kept");
		ASSERT_EQ(dp__load_reconcile(dp__map_fd(dp2, AIBL_MAP_CONNS),
					     dp__map_fd(dp2, AIBL_MAP_LOAD), XE_NBE),
			  1, "its count set again from the table");
		l = aibl_load__mmap(dp__map_fd(dp2, AIBL_MAP_LOAD), &n);
		ASSERT_TRUE(l && n >= XE_NBE, "the new one: mapped, every backend");
		for (__u32 id = 0; l && id < XE_NBE; id++)
			sum += l[id].active;
		ASSERT_EQ(sum, 1, "the open flow counted, on its backend");
		ASSERT_EQ(l ? l[c.backend].active : -1, 1, "on its backend");
		aibl_load__munmap(l, n);
	}
	dp__close(dp2);
	dp2 = NULL;

	/* a pin with another layout is refused with a clear error */
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_MAP_COST);
	unlink(path);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aibl_cost", 4, 16, 8, NULL);
	ASSERT_GE(fd, 0, "foreign map");
	ASSERT_OK(bpf_obj_pin(fd, path), "pin foreign");
	close(fd);
	ASSERT_EQ(dp__open_load(&o, &dp2), -EINVAL, "layout mismatch refused");
out:
	dp__close(dp2);
	xe_down();
}

/* the pinned object's id (a map's, or the program's), 0 when nothing is
 * pinned there */
static __u32 pinned_id(const char *name)
{
	bool prog = !strcmp(name, AIBL_PIN_PROG);
	struct bpf_prog_info pi = {};
	struct bpf_map_info mi = {};
	__u32 len = prog ? sizeof(pi) : sizeof(mi), id = 0;
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", xe_dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (!bpf_obj_get_info_by_fd(fd, prog ? (void *)&pi : (void *)&mi, &len))
		id = prog ? pi.id : mi.id;
	close(fd);
	return id;
}

/* pins removed under a running controller come back at its next loop,
 * the same objects: one alone, or the whole directory */
static void test_loader_repin(void)
{
	__u32 conns, stats, prog;
	char path[128];
	int n;

	if (!std_env())
		goto out;
	conns = pinned_id(AIBL_MAP_CONNS);
	stats = pinned_id(AIBL_MAP_STATS);
	prog = pinned_id(AIBL_PIN_PROG);
	ASSERT_TRUE(conns && stats && prog, "pinned at the start");
	ASSERT_EQ(dp__repin(xe_dp), 0, "nothing missing: nothing done");

	/* one map's pin alone (the connection table and program still there) */
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_MAP_STATS);
	ASSERT_OK(unlink(path), "unlink stats");
	ASSERT_EQ(dp__repin(xe_dp), 1, "the one pin put back");
	ASSERT_EQ(pinned_id(AIBL_MAP_STATS), stats, "the same map");

	/* the program's pin alone */
	snprintf(path, sizeof(path), "%s/%s", xe_dir, AIBL_PIN_PROG);
	ASSERT_OK(unlink(path), "unlink program");
	ASSERT_EQ(dp__repin(xe_dp), 1, "the program's pin put back");
	ASSERT_EQ(pinned_id(AIBL_PIN_PROG), prog, "the same program");

	/* the whole directory */
	ASSERT_OK(dp__teardown(xe_dir), "unlink every pin");
	ASSERT_TRUE(access(xe_dir, F_OK) && errno == ENOENT, "the directory gone");
	n = dp__repin(xe_dp);
	ASSERT_TRUE(n > 2, "every pin put back");
	printf("  %d pins re-created after the directory went\n", n);
	ASSERT_EQ(pinned_id(AIBL_MAP_CONNS), conns, "the same connection table");
	ASSERT_EQ(pinned_id(AIBL_MAP_STATS), stats, "the same counters");
	ASSERT_EQ(pinned_id(AIBL_PIN_PROG), prog, "the same program");
	ASSERT_EQ(dp__repin(xe_dp), 0, "then nothing missing");
out:
	xe_down();
}

static void test_loader_attach(void)
{
	struct dp *dp2 = NULL;
	struct dp_opts o = {};
	int ifi, err, fd;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(system("ip link add dpa0 type veth peer name dpa1"), "veth"))
		goto out;
	ifi = if_nametoindex("dpa0");
	ASSERT_OK(dp__attach(xe_dp, ifi, NULL), "attach native");
	o.pin_dir = xe_dir;
	if (!ASSERT_OK(dp__open_load(&o, &dp2), "second instance"))
		goto out;
	ASSERT_OK(dp__attach(dp2, ifi, NULL), "atomic replace of an aibl program");
	{
		__u32 id = 0;
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		bpf_xdp_query_id(ifi, XDP_FLAGS_DRV_MODE, &id);
		bpf_obj_get_info_by_fd(dp__prog_fd(dp2), &info, &len);
		ASSERT_EQ(id, info.id, "new program attached");
	}
	ASSERT_OK(dp__detach(ifi, false), "detach");
	ASSERT_EQ(dp__detach(ifi, false), -ENOENT, "nothing attached");
	ASSERT_OK(dp__attach(xe_dp, ifi, &(struct dp_attach_opts){.mode = DP_ATTACH_GENERIC}),
		  "attach generic");
	ASSERT_OK(dp__detach(ifi, false), "detach generic");
	/* a foreign program is not replaced without force */
	{
		const struct bpf_insn pass[] = {
		    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
		    {.code = BPF_JMP | BPF_EXIT},
		};

		fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "foreign", "GPL", pass, 2, NULL);
		if (!ASSERT_GE(fd, 0, "foreign program"))
			goto out;
		err = bpf_xdp_attach(ifi, fd, XDP_FLAGS_DRV_MODE, NULL);
		close(fd);
		if (!ASSERT_OK(err, "attach foreign"))
			goto out;
	}
	ASSERT_EQ(dp__attach(xe_dp, ifi, NULL), -EBUSY, "foreign refused");
	ASSERT_EQ(dp__detach(ifi, false), -EBUSY, "foreign not detached");
	ASSERT_OK(dp__attach(xe_dp, ifi, &(struct dp_attach_opts){.force = true}), "forced");
	ASSERT_OK(dp__detach(ifi, false), "detach");
out:
	dp__close(dp2);
	system("ip link del dpa0 2>/dev/null");
	xe_down();
}

/*
 * Jumbo frames on a driver in multi-buffer mode: a veth with MTU 9000 takes
 * the xdp.frags program natively and refuses the plain one (the loader's
 * fallback), which then runs only in generic mode.
 */
static void test_loader_jumbo_mtu(void)
{
	struct dp *plain = NULL;
	struct dp_opts o = {};
	int ifi;

	if (!std_env())
		goto out;
	if (!ASSERT_OK(system("ip link add dpj0 mtu 9000 type veth peer name dpj1 mtu 9000"),
		       "veth mtu 9000"))
		goto out;
	ifi = if_nametoindex("dpj0");
	ASSERT_TRUE(xe_dp->frags, "loaded as xdp.frags");
	ASSERT_OK(dp__attach(xe_dp, ifi, NULL), "xdp.frags: attached natively");
	ASSERT_OK(dp__detach(ifi, false), "detach");
	o.pin_dir = xe_dir;
	o.no_frags = true;
	if (!ASSERT_OK(dp__open_load(&o, &plain), "plain program"))
		goto out;
	ASSERT_TRUE(!plain->frags, "plain");
	ASSERT_TRUE(dp__attach(plain, ifi, NULL) < 0, "plain: refused natively at MTU 9000");
	ASSERT_OK(dp__attach(plain, ifi, &(struct dp_attach_opts){.mode = DP_ATTACH_GENERIC}),
		  "plain: generic");
	ASSERT_OK(dp__detach(ifi, false), "detach generic");
out:
	dp__close(plain);
	system("ip link del dpj0 2>/dev/null");
	xe_down();
}

static const struct test_case cases[] = {
    {"loader_pins", test_loader_pins},
    {"loader_repin", test_loader_repin},
    {"loader_attach", test_loader_attach},
    {"loader_jumbo_mtu", test_loader_jumbo_mtu},
};

XF_MAIN(cases)
