// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The balancer's XDP program loader, see dataplane.h. libbpf 1.1 APIs only.
 */
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "dataplane.h"
#include "aibl_hash.h"
#include "bpfutil.h"
#include "maps.h"
#include "log.h"
#include "aibl_xdp.skel.h"

/* ---------------- XDP balancer ---------------- */

#define DP_PROG_NAME "aibl_xdp"

static const char *const dp_pin_names[] = {
    AIBL_MAP_VIPS,	   AIBL_MAP_BACKENDS,	AIBL_MAP_RING,	    AIBL_MAP_COST,
    AIBL_MAP_LOAD,	   AIBL_MAP_CONNS,	AIBL_MAP_PINS,	    AIBL_MAP_AFFINITY,
    AIBL_MAP_MEMBERS,	   AIBL_MAP_STATS,	AIBL_MAP_SVC_STATS, AIBL_MAP_BE_STATS,
    AIBL_MAP_GLOBALS,	   AIBL_MAP_RR_POS,	AIBL_MAP_SVC_META,  AIBL_MAP_BE_META,
    AIBL_MAP_NODE_CLIENTS, AIBL_MAP_NODE_STATS, AIBL_MAP_FILTER,    AIBL_MAP_RATE,
    AIBL_MAP_SYNS,	   AIBL_MAP_FCACHE,	AIBL_MAP_FC_CTL,    AIBL_PIN_PROG,
};

static int dp__mkdir(const char *dir)
{
	struct statfs st;
	struct stat sb;
	int err;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		char parent[PATH_MAX], *slash;

		err = -errno;
		/* the usual cause: no bpffs mounted where the pins go */
		snprintf(parent, sizeof(parent), "%s", dir);
		slash = strrchr(parent, '/');
		if (slash && slash != parent)
			*slash = 0;
		if (slash && !statfs(parent, &st) && st.f_type != BPF_FS_MAGIC)
			pr_warn("dataplane: mkdir %s: %s: %s is not a bpf filesystem "
				"(mount -t bpf bpf %s)",
				dir, strerror(-err), parent, parent);
		else
			pr_warn("dataplane: mkdir %s: %s", dir, strerror(-err));
		return err;
	}
	if (statfs(dir, &st)) {
		err = -errno;
		pr_warn("dataplane: statfs %s: %s", dir, strerror(-err));
		return err;
	}
	if (st.f_type != BPF_FS_MAGIC) {
		pr_warn("dataplane: %s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)",
			dir);
		return -EINVAL;
	}
	/* Pins found here are reused by the next load, and /sys/fs/bpf is often
	 * mode 1777: a directory someone else owns or may write to lets them
	 * remove our pins (the connection table with them) or plant their own. */
	if (stat(dir, &sb)) {
		err = -errno;
		pr_warn("dataplane: stat %s: %s", dir, strerror(-err));
		return err;
	}
	if (!S_ISDIR(sb.st_mode)) {
		pr_warn("dataplane: %s is not a directory", dir);
		return -ENOTDIR;
	}
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) || (sb.st_uid != 0 && sb.st_uid != geteuid())) {
		pr_warn("dataplane: %s is owned by uid %u with mode %03o: refusing to pin there "
			"(it must belong to root or us and not be writable by group or others)",
			dir, sb.st_uid, sb.st_mode & 0777);
		return -EPERM;
	}
	return 0;
}

/*
 * A map pinned by an earlier load is reused only when it has exactly our
 * layout: maps.h checks type, key and value against include/aibl.h (as
 * aiblctl does, with the same message); the flags are checked here.
 * Its size wins: the data in it (connection table!) must survive.
 */
static int dp__check_pin(struct bpf_map *map, const char *path)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct aibl_map m;
	char why[256];
	int fd, err = 0;

	fd = bpf_obj_get(path);
	if (fd < 0) {
		err = -errno;
		if (err == -ENOENT)
			return 0;
		pr_warn("dataplane: open pinned %s: %s", path, strerror(-err));
		return err;
	}
	err = aibl_map__check_fd(&m, fd, bpf_map__name(map), path, why, sizeof(why));
	if (err) {
		pr_warn("dataplane: %s; remove the pins (aibld --teardown) to start over", why);
		err = -EINVAL;
		goto out;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		err = -errno;
		pr_warn("dataplane: inspect pinned %s: %s", path, strerror(-err));
		goto out;
	}
	/* aibl_load, mmapable since 2026-12-07 (userspace moves its counts
	 * with atomic adds), holds only transient figures: the reconciles
	 * set its open-flow counts again from the connection table (the
	 * first at the start, the next within 10 s, after the old program,
	 * which counts in the old map until the new one replaces it), its
	 * handshake and prefill figures last under a second */
	if (!strcmp(bpf_map__name(map), AIBL_MAP_LOAD) &&
	    info.map_flags != bpf_map__map_flags(map)) {
		pr_info("dataplane: pinned %s has flags 0x%x, this build 0x%x: it starts over",
			path, info.map_flags, bpf_map__map_flags(map));
		goto start_over;
	}
	if (info.map_flags != bpf_map__map_flags(map)) {
		pr_warn(
		    "dataplane: pinned map %s has flags 0x%x, this build 0x%x: it was created "
		    "by a different aibl version; remove the pins (aibld --teardown) to start over",
		    path, info.map_flags, bpf_map__map_flags(map));
		err = -EINVAL;
		goto out;
	}
	/* counters appended to AIBL_COUNTERS by a newer build have no slot in
	 * an older, smaller aibl_stats, nor a newer build's rate windows in an
	 * older aibl_rate: both hold only transient figures, so they start
	 * over rather than lose the new slots for good */
	if ((!strcmp(bpf_map__name(map), AIBL_MAP_STATS) ||
	     !strcmp(bpf_map__name(map), AIBL_MAP_RATE)) &&
	    info.max_entries < bpf_map__max_entries(map)) {
		pr_info("dataplane: pinned %s has %u entries, this build %u: it starts over", path,
			info.max_entries, bpf_map__max_entries(map));
		goto start_over;
	}
	err = bpf_map__set_max_entries(map, info.max_entries);
	if (!err)
		err = 1; /* reused */
	goto out;
start_over:
	if (unlink(path)) {
		err = -errno;
		pr_warn("dataplane: unpin %s: %s", path, strerror(-err));
	}
out:
	close(fd);
	return err;
}

static void dp__apply_size(struct bpf_map *map, __u32 n)
{
	if (n)
		bpf_map__set_max_entries(map, n);
}

/*
 * Opens the program with its sizes and map pins and loads it, as an
 * xdp.frags (multi-buffer) program when frags, else as a plain one.
 */
static int dp__load_skel(struct dp *dp, const struct dp_opts *opts, bool frags)
{
	struct aibl_xdp *skel;
	struct bpf_map *map;
	char path[512];
	int err;

	skel = dp->skel = aibl_xdp__open();
	if (!skel) {
		err = -errno;
		pr_warn("dataplane: open program: %s", strerror(-err));
		return err;
	}
	dp__apply_size(skel->maps.aibl_vips, opts->sizes.max_services * 4);
	dp__apply_size(skel->maps.aibl_svc_stats, opts->sizes.max_services);
	dp__apply_size(skel->maps.aibl_svc_meta, opts->sizes.max_services);
	dp__apply_size(skel->maps.aibl_rr_pos, opts->sizes.max_services);
	dp__apply_size(skel->maps.aibl_ring, opts->sizes.max_services * 2 * AIBL_RING_SIZE);
	dp__apply_size(skel->maps.aibl_backends, opts->sizes.max_backends);
	dp__apply_size(skel->maps.aibl_cost, opts->sizes.max_backends);
	dp__apply_size(skel->maps.aibl_load, opts->sizes.max_backends);
	dp__apply_size(skel->maps.aibl_be_stats, opts->sizes.max_backends);
	dp__apply_size(skel->maps.aibl_be_meta, opts->sizes.max_backends);
	dp__apply_size(skel->maps.aibl_conns, opts->sizes.max_conns);
	dp__apply_size(skel->maps.aibl_pins, opts->sizes.max_pins);
	dp__apply_size(skel->maps.aibl_members, opts->sizes.max_members);

	bpf_object__for_each_map(map, skel->obj)
	{
		if (bpf_map__is_internal(map))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dp->pin_dir, bpf_map__name(map));
		err = dp__check_pin(map, path);
		if (err < 0)
			return err;
		if (err == 1)
			dp->reused = true;
		err = bpf_map__set_pin_path(map, path);
		if (err)
			return err;
	}
	/* an xdp.frags program, as SEC("xdp.frags") would make it (libbpf
	 * 1.1 adds the flag for that section name whatever the program's
	 * flags say: no plain fallback could be loaded from it); the plain
	 * program is the same code, dropping multi-buffer frames (drop_jumbo) */
	skel->rodata->aibl_frags = frags;
	if (frags)
		bpf_program__set_flags(skel->progs.aibl_xdp,
				       bpf_program__flags(skel->progs.aibl_xdp) |
					   BPF_F_XDP_HAS_FRAGS);
	dp->frags = frags;
	return aibl_xdp__load(skel);
}

int dp__pin_prog(struct dp *dp)
{
	char path[512], tmp[512];
	int err;

	/* under a temporary name, then renamed over the old pin: readers
	 * always find a program (bpffs names may not contain dots) */
	snprintf(path, sizeof(path), "%s/%s", dp->pin_dir, AIBL_PIN_PROG);
	snprintf(tmp, sizeof(tmp), "%s/%s_new_%d", dp->pin_dir, AIBL_PIN_PROG, getpid());
	unlink(tmp);
	err = bpf_program__pin(dp->skel->progs.aibl_xdp, tmp);
	if (err) {
		pr_warn("dataplane: pin program at %s: %s", tmp, strerror(-err));
		return err;
	}
	if (rename(tmp, path)) {
		err = -errno;
		pr_warn("dataplane: pin program at %s: %s", path, strerror(-err));
		unlink(tmp);
		return err;
	}
	return 0;
}

int dp__open_load(const struct dp_opts *opts, struct dp **out)
{
	struct dp_opts def = {};
	struct aibl_globals g;
	struct aibl_xdp *skel;
	char path[512];
	__u32 zero = 0;
	struct dp *dp;
	int err;

	*out = NULL;
	if (!opts)
		opts = &def;
	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return -ENOMEM;
	dp->old_prog_fd = -1;
	snprintf(dp->pin_dir, sizeof(dp->pin_dir), "%s", opts->pin_dir ?: AIBL_DEFAULT_BPFFS);
	err = dp__mkdir(dp->pin_dir);
	if (err)
		goto out;

	err = dp__load_skel(dp, opts, !opts->no_frags);
	if (err && !opts->no_frags && err != -EPERM && err != -EACCES) {
		/* a kernel without xdp.frags programs (before 5.18) */
		pr_info("dataplane: load as xdp.frags: %s; loading the plain program, which "
			"drops multi-buffer (jumbo) frames",
			strerror(-err));
		aibl_xdp__destroy(dp->skel);
		dp->skel = NULL;
		err = dp__load_skel(dp, opts, false);
	}
	if (err) {
		pr_warn("dataplane: load XDP program: %s%s", strerror(-err),
			(err == -EPERM || err == -EACCES) && !bpf_capable()
			    ? " (needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)"
			    : "");
		goto out;
	}
	skel = dp->skel;

	/* refuse a table written by a build with another ring size or ABI */
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.aibl_globals), &zero, &g))
		g.abi_version = 0;
	if (g.abi_version && (g.abi_version != AIBL_ABI_VERSION || g.ring_size != AIBL_RING_SIZE)) {
		pr_warn("dataplane: maps in %s were written by ABI %u ring %u, this build is ABI "
			"%u ring %u; remove the pins to start over",
			dp->pin_dir, g.abi_version, g.ring_size, AIBL_ABI_VERSION, AIBL_RING_SIZE);
		err = -EINVAL;
		goto out;
	}

	/* the program pinned so far (an earlier aibld's, maybe attached):
	 * kept open, as a restart's attach replaces it (dp__attach), and
	 * pinned until then. Pinned over here, a start that failed before
	 * its attach left the pin naming a program never attached, and
	 * without CAP_SYS_ADMIN (the attached one not found by id) no later
	 * start could replace the one attached */
	snprintf(path, sizeof(path), "%s/%s", dp->pin_dir, AIBL_PIN_PROG);
	dp->old_prog_fd = bpf_obj_get(path);
	dp->prev_ifindex = g.abi_version ? (int)g.ifindex : 0;

	dp->sizes.max_services = bpf_map__max_entries(skel->maps.aibl_svc_stats);
	dp->sizes.max_backends = bpf_map__max_entries(skel->maps.aibl_backends);
	dp->sizes.max_conns = bpf_map__max_entries(skel->maps.aibl_conns);
	dp->sizes.max_pins = bpf_map__max_entries(skel->maps.aibl_pins);
	dp->sizes.max_members = bpf_map__max_entries(skel->maps.aibl_members);
	*out = dp;
	dp = NULL;
out:
	dp__close(dp);
	return err;
}

void dp__close(struct dp *dp)
{
	if (!dp)
		return;
	aibl_xdp__destroy(dp->skel);
	if (dp->old_prog_fd >= 0)
		close(dp->old_prog_fd);
	free(dp);
}

int dp__map_fd(const struct dp *dp, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(dp->skel->obj, name);

	return map ? bpf_map__fd(map) : -ENOENT;
}

int dp__prog_fd(const struct dp *dp)
{
	return bpf_program__fd(dp->skel->progs.aibl_xdp);
}

/* the pinned program (dp->old_prog_fd) is the one with this id: a dup of it */
static int dp__pinned_prog(const struct dp *dp, __u32 id)
{
	if (!dp || !id || bpf_prog_fd_id(dp->old_prog_fd) != id)
		return -1;
	return dup(dp->old_prog_fd);
}

/*
 * Is the program with this id an aibl balancer? fd returned in *fd. By id
 * (CAP_SYS_ADMIN), else, for the service's three capabilities, the program
 * an earlier aibld pinned (dp, NULL: none).
 */
static int dp__prog_is_aibl(const struct dp *dp, __u32 id, int *fd, bool *is_aibl)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int err = -ENOENT;

	*fd = bpf_prog_get_fd_by_id(id);
	if (*fd < 0) {
		err = -errno;
		*fd = dp__pinned_prog(dp, id);
	}
	if (*fd < 0) {
		pr_warn("dataplane: open attached program %u: %s%s", id, strerror(-err),
			err == -EPERM ? " (not the one pinned: opening another by id needs "
					"CAP_SYS_ADMIN)"
				      : "");
		return err;
	}
	if (bpf_obj_get_info_by_fd(*fd, &info, &len)) {
		err = -errno;
		close(*fd);
		*fd = -1;
		return err;
	}
	*is_aibl = strcmp(info.name, DP_PROG_NAME) == 0;
	return 0;
}

/*
 * The previous run attached to another interface (interface: changed, or
 * the one it named renamed): left there, its program went on steering
 * with tables frozen and the globals of the new interface (its MAC as the
 * frames' source), and --teardown, which looks at the configured
 * interface only, could not take it off. Detached when it is the program
 * pinned (the previous run's, by the pin: no CAP_SYS_ADMIN needed).
 */
static void dp__detach_previous(struct dp *dp, int prev)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = dp->old_prog_fd);
	__u32 id, mode, pinned = bpf_prog_fd_id(dp->old_prog_fd);
	char name[IF_NAMESIZE] = "?";
	int err;

	if (bpf_xdp_query(prev, 0, &q))
		return; /* gone, with what it ran */
	id = q.drv_prog_id ?: q.skb_prog_id;
	mode = q.drv_prog_id ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	if_indextoname(prev, name);
	if (!id || !pinned)
		return;
	if (pinned != id) {
		pr_warn("dataplane: %s (ifindex %d), where the previous run attached, runs "
			"program %u, not the one pinned: left there",
			name, prev, id);
		return;
	}
	err = bpf_xdp_detach(prev, mode | XDP_FLAGS_REPLACE, &ao);
	if (err)
		pr_warn("dataplane: detach the previous run's program from %s (ifindex %d): %s",
			name, prev, strerror(-err));
	else
		pr_info("dataplane: detached from %s (ifindex %d), where the previous run was "
			"attached",
			name, prev);
}

int dp__attach(struct dp *dp, int ifindex, const struct dp_attach_opts *opts)
{
	struct dp_attach_opts def = {};
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao);
	__u32 mode, other, cur;
	bool is_aibl = false;
	int err, old_fd = -1;

	if (!opts)
		opts = &def;
	mode = opts->mode == DP_ATTACH_GENERIC ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	err = bpf_xdp_query(ifindex, 0, &q);
	if (err) {
		pr_warn("dataplane: query XDP on ifindex %d: %s", ifindex, strerror(-err));
		return err;
	}
	cur = mode == XDP_FLAGS_SKB_MODE ? q.skb_prog_id : q.drv_prog_id;
	other = mode == XDP_FLAGS_SKB_MODE ? q.drv_prog_id : q.skb_prog_id;
	if (other) {
		pr_warn("dataplane: ifindex %d has an XDP program in %s mode; detach it first "
			"(native and generic cannot both be active)",
			ifindex, mode == XDP_FLAGS_SKB_MODE ? "native" : "generic");
		return -EBUSY;
	}
	if (cur) {
		err = dp__prog_is_aibl(dp, cur, &old_fd, &is_aibl);
		if (err)
			return err;
		if (!is_aibl && !opts->force) {
			pr_warn("dataplane: ifindex %d runs another XDP program (id %u); "
				"refusing to replace it without force",
				ifindex, cur);
			err = -EBUSY;
			goto out;
		}
		/* atomic swap, and only of the program we looked at */
		ao.old_prog_fd = old_fd;
		err = bpf_xdp_attach(ifindex, dp__prog_fd(dp), mode | XDP_FLAGS_REPLACE, &ao);
	} else {
		err = bpf_xdp_attach(ifindex, dp__prog_fd(dp), mode | XDP_FLAGS_UPDATE_IF_NOEXIST,
				     NULL);
	}
	if (err)
		pr_warn("dataplane: attach XDP (%s) on ifindex %d: %s%s",
			mode == XDP_FLAGS_SKB_MODE ? "generic" : "native", ifindex, strerror(-err),
			!dp->frags && mode != XDP_FLAGS_SKB_MODE
			    ? " (the plain program, without multi-buffer frames: an MTU above "
			      "about 3.5 KB needs generic mode)"
			    : "");
out:
	if (old_fd >= 0)
		close(old_fd);
	/* attached: the pin names it from now on (the earlier program is
	 * replaced, or was never attached here). A pin that fails here
	 * (bpffs full) is no reason to fail what is attached: dp__repin()
	 * tries it again every loop, as a restart finds the attached program
	 * by the pin */
	if (!err && dp__pin_prog(dp)) {
		pr_warn("dataplane: the attached program is not pinned yet: tried again every "
			"loop");
		dp->pin_stale = true;
	}
	if (!err && dp->prev_ifindex > 0 && dp->prev_ifindex != ifindex && dp->old_prog_fd >= 0)
		dp__detach_previous(dp, dp->prev_ifindex);
	if (!err) {
		dp->prev_ifindex = 0;
		if (dp->old_prog_fd >= 0)
			close(dp->old_prog_fd);
		dp->old_prog_fd = -1;
	}
	return err;
}

bool dp__attached(struct dp *dp, int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	__u32 id = bpf_prog_fd_id(dp__prog_fd(dp));

	/* a query that fails (the interface going away) is the netlink
	 * events' news, not this one's */
	if (bpf_xdp_query(ifindex, 0, &q) || !id)
		return true;
	return q.drv_prog_id == id || q.skb_prog_id == id;
}

int dp__detach(int ifindex, bool force)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao);
	bool is_aibl = false;
	__u32 id, mode;
	int err, fd = -1;

	err = bpf_xdp_query(ifindex, 0, &q);
	if (err) {
		pr_warn("dataplane: query XDP on ifindex %d: %s", ifindex, strerror(-err));
		return err;
	}
	if (q.drv_prog_id) {
		id = q.drv_prog_id;
		mode = XDP_FLAGS_DRV_MODE;
	} else if (q.skb_prog_id) {
		id = q.skb_prog_id;
		mode = XDP_FLAGS_SKB_MODE;
	} else {
		return -ENOENT;
	}
	err = dp__prog_is_aibl(NULL, id, &fd, &is_aibl);
	if (err)
		return err;
	if (!is_aibl && !force) {
		pr_warn("dataplane: ifindex %d runs another XDP program (id %u); not detaching it",
			ifindex, id);
		err = -EBUSY;
		goto out;
	}
	ao.old_prog_fd = fd;
	err = bpf_xdp_attach(ifindex, -1, mode | XDP_FLAGS_REPLACE, &ao);
	if (err)
		pr_warn("dataplane: detach XDP from ifindex %d: %s", ifindex, strerror(-err));
out:
	close(fd);
	return err;
}

/*
 * The pin directory can vanish under a running controller (rm -rf, a bpffs
 * remount). The program and maps live on through our fds and the
 * attachment, but aiblctl is blind and the next start would create fresh
 * maps: the connection table, and every established flow with it, lost.
 * Put back whatever pin is missing. Every pin is looked at on every call
 * (an access() each, a few dozen a loop): a single pin removed, or an
 * rm -rf still walking the directory while the last call pinned again,
 * is mended by the next.
 */
int dp__repin(struct dp *dp)
{
	struct bpf_map *map;
	char path[512];
	bool dir_ok = false;
	int n = 0, err;

	snprintf(path, sizeof(path), "%s/%s", dp->pin_dir, AIBL_PIN_PROG);
	if (dp->pin_stale && !dp__pin_prog(dp)) {
		dp->pin_stale = false;
		n++;
	}
	bpf_object__for_each_map(map, dp->skel->obj)
	{
		const char *pp = bpf_map__pin_path(map);

		if (!pp || !access(pp, F_OK))
			continue;
		if (!dir_ok && (err = dp__mkdir(dp->pin_dir)))
			return err;
		dir_ok = true;
		if (bpf_obj_pin(bpf_map__fd(map), pp)) {
			err = -errno;
			pr_warn("dataplane: re-pin %s: %s", pp, strerror(-err));
			return err;
		}
		n++;
	}
	if (access(path, F_OK)) {
		if (!dir_ok && (err = dp__mkdir(dp->pin_dir)))
			return err;
		if (bpf_obj_pin(bpf_program__fd(dp->skel->progs.aibl_xdp), path)) {
			err = -errno;
			pr_warn("dataplane: re-pin %s: %s", path, strerror(-err));
			return err;
		}
		n++;
	}
	return n;
}

int dp__teardown(const char *pin_dir)
{
	char path[512];
	int err = 0;

	if (!pin_dir)
		pin_dir = AIBL_DEFAULT_BPFFS;
	for (size_t i = 0; i < sizeof(dp_pin_names) / sizeof(dp_pin_names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, dp_pin_names[i]);
		if (unlink(path) && errno != ENOENT && !err) {
			err = -errno;
			pr_warn("dataplane: unpin %s: %s", path, strerror(-err));
		}
	}
	if (rmdir(pin_dir) && errno != ENOENT && errno != ENOTEMPTY && !err) {
		err = -errno;
		pr_warn("dataplane: remove %s: %s", pin_dir, strerror(-err));
	}
	return err;
}

/* writes v as aibl_globals' entry */
static int dp__globals_put(int fd, const struct aibl_globals *v)
{
	__u32 zero = 0;
	int err;

	if (bpf_map_update_elem(fd, &zero, v, BPF_ANY)) {
		err = -errno;
		pr_warn("dataplane: write %s: %s", AIBL_MAP_GLOBALS, strerror(-err));
		return err;
	}
	return 0;
}

int dp__globals_write_fd(int fd, const struct aibl_globals *g)
{
	struct aibl_globals v = *g, cur;
	__u32 zero = 0;

	v.abi_version = AIBL_ABI_VERSION;
	v.ring_size = AIBL_RING_SIZE;
	/* a new epoch: flow cache entries decided under the old settings go */
	v.epoch = bpf_map_lookup_elem(fd, &zero, &cur) ? 1 : cur.epoch + 1;
	return dp__globals_put(fd, &v);
}

int dp__globals_write(struct dp *dp, const struct aibl_globals *g)
{
	return dp__globals_write_fd(bpf_map__fd(dp->skel->maps.aibl_globals), g);
}

int dp__epoch_bump(int fd)
{
	struct aibl_globals g;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &g))
		return -errno;
	/* an unwritten entry (abi_version 0) stays so: nothing is cached yet */
	if (!g.abi_version)
		return 0;
	g.epoch++;
	return dp__globals_put(fd, &g);
}

/* ---------------- pre-filters ---------------- */

static void dp__filter_set(struct aibl_filter *f, __u32 bit)
{
	f->bits[bit / 64] |= 1ULL << (bit % 64);
}

void dp__filter_add_vip(struct aibl_filter *f, const struct aibl_vip_key *k)
{
	dp__filter_set(f, aibl_filter_vip_bit(&k->addr, k->family));
}

void dp__filter_add_pin(struct aibl_filter *f, const struct aibl_pin_key *k)
{
	dp__filter_set(f, aibl_filter_pin_bit(k->svc_id, &k->client, k->family));
}

int dp__filter_write(int filter_fd, __u32 which, const struct aibl_filter *f)
{
	int err;

	if (bpf_map_update_elem(filter_fd, &which, f, BPF_ANY)) {
		err = -errno;
		pr_warn("dataplane: write %s[%u]: %s", AIBL_MAP_FILTER, which, strerror(-err));
		return err;
	}
	return 0;
}

/* Bitmap of every key of a hash map; add() sets a key's bit. */
static int dp__filter_rebuild(int filter_fd, __u32 which, int map_fd, size_t key_size,
			      void (*add)(struct aibl_filter *, const void *))
{
	struct aibl_filter *f = calloc(1, sizeof(*f));
	char key[64], next[64];
	int err = 0;

	if (!f)
		return -ENOMEM;
	if (key_size > sizeof(key)) {
		err = -EINVAL;
		goto out;
	}
	for (void *prev = NULL; !bpf_map_get_next_key(map_fd, prev, next); prev = key) {
		add(f, next);
		memcpy(key, next, key_size);
	}
	if (errno != ENOENT) {
		err = -errno;
		pr_warn("dataplane: walk map for %s[%u]: %s", AIBL_MAP_FILTER, which,
			strerror(-err));
		goto out;
	}
	err = dp__filter_write(filter_fd, which, f);
out:
	free(f);
	return err;
}

int dp__vip_filter_add(int filter_fd, const struct aibl_vip_key *k)
{
	/* a read, a bit, a write of one shared entry: aibld's recompute
	 * workers write services in parallel, and two new VIPs' bits set at
	 * once lost one (the data plane then passed that VIP to the kernel) */
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	__u32 which = AIBL_FILTER_VIP, bit = aibl_filter_vip_bit(&k->addr, k->family);
	struct aibl_filter *f = malloc(sizeof(*f));
	int err = 0;

	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&lock);
	if (bpf_map_lookup_elem(filter_fd, &which, f)) {
		err = -errno;
		pr_warn("dataplane: read %s[%u]: %s", AIBL_MAP_FILTER, which, strerror(-err));
		goto out;
	}
	if (!(f->bits[bit / 64] & (1ULL << (bit % 64)))) {
		dp__filter_set(f, bit);
		err = dp__filter_write(filter_fd, which, f);
	}
out:
	pthread_mutex_unlock(&lock);
	free(f);
	return err;
}

static void dp__filter_add_vip_key(struct aibl_filter *f, const void *k)
{
	dp__filter_add_vip(f, k);
}

static void dp__filter_add_pin_key(struct aibl_filter *f, const void *k)
{
	dp__filter_add_pin(f, k);
}

int dp__vip_filter_rebuild(int filter_fd, int vips_fd)
{
	return dp__filter_rebuild(filter_fd, AIBL_FILTER_VIP, vips_fd, sizeof(struct aibl_vip_key),
				  dp__filter_add_vip_key);
}

int dp__pin_filter_rebuild(int filter_fd, int pins_fd)
{
	return dp__filter_rebuild(filter_fd, AIBL_FILTER_PIN, pins_fd, sizeof(struct aibl_pin_key),
				  dp__filter_add_pin_key);
}

/* ---------------- active-flow reconcile ---------------- */

int dp__conns_walk(int conns_fd, dp_conn_fn fn, void *ud)
{
	struct aibl_flow_key *keys = calloc(DP_RECONCILE_BATCH, sizeof(*keys));
	struct aibl_conn *vals = calloc(DP_RECONCILE_BATCH, sizeof(*vals));
	DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, opts);
	struct aibl_flow_key k, *prev = NULL;
	__u32 batch = 0, n;
	bool first = true, done = false;
	int err = 0;

	if (!keys || !vals) {
		err = -ENOMEM;
		goto out;
	}
	while (!done) {
		n = DP_RECONCILE_BATCH;
		err = bpf_map_lookup_batch(conns_fd, first ? NULL : &batch, &batch, keys, vals, &n,
					   &opts);
		if (err) {
			err = -errno;
			if (err == -ENOENT) {
				err = 0;
				done = true; /* the last batch: n holds its entries */
			} else if (first && (err == -EINVAL || err == -EOPNOTSUPP)) {
				break; /* no batch ops: one by one below */
			} else {
				goto out;
			}
		}
		first = false;
		for (__u32 i = 0; i < n; i++)
			fn(&keys[i], &vals[i], ud);
	}
	if (err) {
		/* kernels without batch lookups on LRU maps */
		err = 0;
		while (!bpf_map_get_next_key(conns_fd, prev, &k)) {
			struct aibl_conn c;

			prev = &k;
			if (!bpf_map_lookup_elem(conns_fd, &k, &c))
				fn(&k, &c, ud);
		}
	}
out:
	free(keys);
	free(vals);
	return err;
}

struct open_count {
	__s64 *count;
	__u32 nbackends;
};

static void dp__count_open(const struct aibl_flow_key *k, const struct aibl_conn *c, void *ud)
{
	struct open_count *oc = ud;

	if (k->proto == IPPROTO_TCP && c->backend < oc->nbackends &&
	    !(c->flags & AIBL_CONN_F_CLOSING))
		oc->count[c->backend]++;
}

int dp__load_reconcile(int conns_fd, int load_fd, __u32 nbackends)
{
	__s64 *before = calloc(nbackends, sizeof(__s64)), *count = calloc(nbackends, sizeof(__s64));
	struct open_count oc = {.count = count, .nbackends = nbackends};
	struct aibl_load *load = NULL;
	__u32 nload = 0;
	int err, fixed = 0;

	if (!before || !count) {
		err = -ENOMEM;
		goto out;
	}
	load = aibl_load__mmap(load_fd, &nload);
	if (!load) {
		err = -errno;
		goto out;
	}
	if (nload < nbackends)
		nbackends = oc.nbackends = nload;
	for (__u32 id = 0; id < nbackends; id++)
		before[id] = __atomic_load_n(&load[id].active, __ATOMIC_RELAXED);
	err = dp__conns_walk(conns_fd, dp__count_open, &oc);
	if (err)
		goto out;
	for (__u32 id = 0; id < nbackends; id++) {
		/* what the table holds, plus the flows opened and closed since
		 * it was read (and the handshakes the data plane counts), the
		 * data plane's adds meanwhile kept: one atomic add of the
		 * difference, as the data plane's own */
		if (count[id] == before[id])
			continue;
		__atomic_fetch_add(&load[id].active, count[id] - before[id], __ATOMIC_RELAXED);
		fixed++;
	}
	err = fixed;
out:
	aibl_load__munmap(load, nload);
	free(before);
	free(count);
	return err;
}
