// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The node's TC ingress decap program loader, see decap.h. libbpf 1.1 APIs only.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "decap.h"
#include "bpfutil.h"
#include "log.h"
#include "aibl_decap.skel.h"

#define DECAP_DEF_HANDLE 0xa1b1
#define DECAP_DEF_PRIO	 1

static void decap__hook_init(struct bpf_tc_hook *hook, int ifindex)
{
	memset(hook, 0, sizeof(*hook));
	hook->sz = sizeof(*hook);
	hook->ifindex = ifindex;
	hook->attach_point = BPF_TC_INGRESS;
}

/*
 * One process decapsulates at a filter slot: an abstract unix socket named
 * for it (per network namespace, as the interface; released when the
 * process ends, killed or not). Without it a second agent started by hand
 * replaced the running one's program, and its exit (a failed listen) took
 * the filter away: every tunnel to the node dropped while the running one
 * reported healthy.
 */
static int decap__lock(int ifindex, __u32 handle)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), n, err;

	if (fd < 0)
		return -errno;
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "aibl-decap-%d-%x", ifindex, handle);
	if (bind(fd, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + 1 + n)) {
		err = -errno;
		close(fd);
		if (err == -EADDRINUSE) {
			pr_warn("decap: another process (an aibl-agent) decapsulates at ifindex "
				"%d already",
				ifindex);
			return -EBUSY;
		}
		return err;
	}
	return fd;
}

/*
 * Counters appended to AIBL_NODE_COUNTERS by a newer build have no slot in
 * the smaller aibl_node_stats an older agent pinned, and libbpf refuses to
 * reuse a pin of another size, so the attach failed after an upgrade. The
 * counters are transient: that pin starts over.
 */
static void decap__stale_stats_pin(struct bpf_map *map, const char *path)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd;

	if (strcmp(bpf_map__name(map), AIBL_MAP_NODE_STATS))
		return;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
	    info.max_entries < bpf_map__max_entries(map)) {
		pr_info("decap: pinned %s has %u counters, this build %u: it starts over", path,
			info.max_entries, bpf_map__max_entries(map));
		if (unlink(path))
			pr_warn("decap: unpin %s: %s", path, strerror(errno));
	}
	close(fd);
}

int decap__attach(int ifindex, const struct decap_opts *opts, struct decap **out)
{
	struct decap_opts def = {};
	libbpf_print_fn_t old_print;
	struct bpf_tc_hook hook;
	struct bpf_map *map;
	struct decap *d;
	char path[512];
	int err;

	*out = NULL;
	if (!opts)
		opts = &def;
	if (ifindex <= 0)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ifindex = ifindex;
	d->handle = opts->handle ?: DECAP_DEF_HANDLE;
	d->priority = opts->priority ?: DECAP_DEF_PRIO;
	d->lock_fd = decap__lock(ifindex, d->handle);
	if (d->lock_fd < 0) {
		err = d->lock_fd;
		goto out;
	}

	d->skel = aibl_decap__open();
	if (!d->skel) {
		err = -errno;
		pr_warn("decap: open: %s", strerror(-err));
		goto out;
	}
	bpf_object__for_each_map(map, d->skel->obj)
	{
		if (opts->pin_dir) {
			snprintf(path, sizeof(path), "%s/%s", opts->pin_dir, bpf_map__name(map));
			decap__stale_stats_pin(map, path);
			err = bpf_map__set_pin_path(map, path);
		} else {
			/* the source says PIN_BY_NAME; private maps here */
			err = bpf_map__set_pin_path(map, NULL);
		}
		if (err)
			goto out;
	}
	err = aibl_decap__load(d->skel);
	if (err) {
		pr_warn("decap: load: %s%s", strerror(-err),
			(err == -EPERM || err == -EACCES) && !bpf_capable()
			    ? " (needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)"
			    : "");
		goto out;
	}

	if (opts->prepare) {
		err = opts->prepare(d, opts->prepare_arg);
		if (err)
			goto out;
	}
	decap__hook_init(&hook, ifindex);
	/* an existing clsact is the normal case (agent restart): keep
	 * libbpf from logging the kernel's "exclusivity flag" complaint */
	old_print = libbpf_set_print(NULL);
	err = bpf_tc_hook_create(&hook);
	libbpf_set_print(old_print);
	if (err && err != -EEXIST) {
		pr_warn("decap: create clsact on ifindex %d: %s", ifindex, strerror(-err));
		goto out;
	}
	LIBBPF_OPTS(bpf_tc_opts, tc, .handle = d->handle, .priority = d->priority,
		    .flags = BPF_TC_F_REPLACE,
		    .prog_fd = bpf_program__fd(d->skel->progs.aibl_decap));
	err = bpf_tc_attach(&hook, &tc);
	if (err) {
		pr_warn("decap: attach on ifindex %d: %s", ifindex, strerror(-err));
		goto out;
	}
	*out = d;
	d = NULL;
out:
	decap__close(d);
	return err;
}

/*
 * Removes the filter at ifindex/handle/priority, only when it runs program
 * only_id (0: whatever it runs). -ENOENT none there, -EBUSY another's.
 */
static int decap__detach_filter(int ifindex, __u32 handle, __u32 priority, __u32 only_id)
{
	libbpf_print_fn_t old_print;
	struct bpf_tc_hook hook;
	int err;

	decap__hook_init(&hook, ifindex);
	LIBBPF_OPTS(bpf_tc_opts, tc, .handle = handle ?: DECAP_DEF_HANDLE,
		    .priority = priority ?: DECAP_DEF_PRIO);
	/* the kernel answers a missing filter or qdisc with EINVAL/ENOENT
	 * and a log line: ask quietly first */
	old_print = libbpf_set_print(NULL);
	err = bpf_tc_query(&hook, &tc);
	libbpf_set_print(old_print);
	if (err)
		return -ENOENT;
	if (only_id && tc.prog_id != only_id)
		return -EBUSY;
	tc.prog_id = 0;
	tc.prog_fd = 0;
	tc.flags = 0;
	err = bpf_tc_detach(&hook, &tc);
	if (err && err != -ENOENT)
		pr_warn("decap: detach from ifindex %d: %s", ifindex, strerror(-err));
	return err;
}

int decap__detach_ifindex(int ifindex, __u32 handle, __u32 priority)
{
	return decap__detach_filter(ifindex, handle, priority, 0);
}

int decap__detach(struct decap *d)
{
	int err;

	if (!d)
		return 0;
	/* another program there now (someone replaced it): not ours to remove */
	err = decap__detach_filter(d->ifindex, d->handle, d->priority,
				   bpf_prog_fd_id(bpf_program__fd(d->skel->progs.aibl_decap)));
	if (err == -EBUSY) {
		pr_warn("decap: ifindex %d runs another program at our filter: left there",
			d->ifindex);
		err = 0;
	}
	/* the interface (or its netns) may be gone already: nothing to undo */
	if (err == -ENOENT || err == -ENODEV)
		err = 0;
	decap__close(d);
	return err;
}

void decap__close(struct decap *d)
{
	if (!d)
		return;
	aibl_decap__destroy(d->skel);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	free(d);
}

int decap__clients_fd(const struct decap *d)
{
	return bpf_map__fd(d->skel->maps.aibl_node_cli);
}

int decap__stats_fd(const struct decap *d)
{
	return bpf_map__fd(d->skel->maps.aibl_node_stats);
}

int decap__counters(const struct decap *d, __u64 out[AIBL_NCNT__MAX])
{
	int ncpu = libbpf_num_possible_cpus(), fd = decap__stats_fd(d);
	__u64 *v;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	v = calloc(ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (__u32 i = 0; i < AIBL_NCNT__MAX; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, v)) {
			int err = -errno;

			free(v);
			return err;
		}
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
	return 0;
}

int decap__ifindex(const struct decap *d)
{
	return d->ifindex;
}

/* ---------------- what the program accepts ---------------- */

static int decap__cfg_flag(struct decap *d, __u32 flag, bool on)
{
	int fd = bpf_map__fd(d->skel->maps.aibl_node_cfg);
	struct aibl_node_cfg c = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &c))
		return -errno;
	c.flags = on ? c.flags | flag : c.flags & ~flag;
	return bpf_map_update_elem(fd, &zero, &c, BPF_ANY) ? -errno : 0;
}

int decap__set_sources(struct decap *d, const struct decap_prefix *p, int n)
{
	int fd = bpf_map__fd(d->skel->maps.aibl_node_srcs), err;
	struct aibl_node_src_key k, next;
	bool more;
	__u8 one = 1;

	/* off while the trie is rewritten: never a moment that refuses all */
	err = decap__cfg_flag(d, AIBL_NODE_F_CHECK_SOURCE, false);
	if (err)
		return err;
	for (more = !bpf_map_get_next_key(fd, NULL, &k); more; k = next) {
		more = !bpf_map_get_next_key(fd, &k, &next);
		bpf_map_delete_elem(fd, &k);
	}
	for (int i = 0; i < n; i++) {
		memset(&k, 0, sizeof(k));
		k.prefixlen = 8 + p[i].len;
		k.family = p[i].family;
		memcpy(k.addr, &p[i].addr, 16);
		if (bpf_map_update_elem(fd, &k, &one, BPF_ANY))
			return -errno;
	}
	return decap__cfg_flag(d, AIBL_NODE_F_CHECK_SOURCE, n > 0);
}

static bool decap__has(const struct decap_prefix *a, int n, const struct aibl_node_addr_key *k)
{
	for (int i = 0; i < n; i++)
		if (a[i].family == k->family && !memcmp(&a[i].addr, &k->addr, 16))
			return true;
	return false;
}

/* the entries of kind not in a[0..n) out of aibl_node_addrs */
static void decap__prune_addrs(struct decap *d, __u8 kind, const struct decap_prefix *a, int n)
{
	int fd = bpf_map__fd(d->skel->maps.aibl_node_addrs);
	struct aibl_node_addr_key k, next;
	bool more;

	for (more = !bpf_map_get_next_key(fd, NULL, &k); more; k = next) {
		more = !bpf_map_get_next_key(fd, &k, &next);
		if (k.kind == kind && !decap__has(a, n, &k))
			bpf_map_delete_elem(fd, &k);
	}
}

int decap__set_addrs(struct decap *d, __u8 kind, const struct decap_prefix *a, int n)
{
	int fd = bpf_map__fd(d->skel->maps.aibl_node_addrs);
	__u32 flag = kind == AIBL_NODE_ADDR_LOCAL ? AIBL_NODE_F_CHECK_LOCAL : AIBL_NODE_F_CHECK_VIP;
	struct aibl_node_addr_key k;
	__u8 one = 1;

	/* the stale ones out, then the new set in: an address in both is
	 * never missing, and the table never holds old and new sets at once
	 * (inserted first, a set that changed much filled it, every insert
	 * after failed, and nothing stale was ever taken out) */
	decap__prune_addrs(d, kind, a, n);
	for (int i = 0; i < n; i++) {
		memset(&k, 0, sizeof(k));
		k.addr = a[i].addr;
		k.family = a[i].family;
		k.kind = kind;
		if (bpf_map_update_elem(fd, &k, &one, BPF_ANY))
			return -errno;
	}
	return decap__cfg_flag(d, flag, n > 0);
}

int decap__refresh_addrs(struct decap *d)
{
	__u32 cap = bpf_map__max_entries(d->skel->maps.aibl_node_addrs);
	struct decap_prefix *local = NULL, *vip = NULL;
	struct ifaddrs *ifa = NULL;
	int nl = 0, nv = 0, n = 0, err;
	bool over;

	if (getifaddrs(&ifa)) {
		err = -errno;
		goto out;
	}
	/* as many as the host has (a node with kube-proxy's IPVS holds every
	 * ClusterIP on kube-ipvs0): a fixed 256 left the rest out, IPv6
	 * first (listed after IPv4), and their tunnels were dropped */
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
		n++;
	local = calloc(n + 1, sizeof(*local));
	vip = calloc(n + 1, sizeof(*vip));
	if (!local || !vip) {
		err = -ENOMEM;
		goto out;
	}
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		struct decap_prefix p = {};
		bool on_dev, vip_dev;

		if (!i->ifa_addr || !i->ifa_name)
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;

			if ((ntohl(a.s_addr) >> 24) == 127 || (ntohl(a.s_addr) >> 16) == 0xa9fe)
				continue;
			p.family = AIBL_AF_INET;
			p.addr.v4 = a.s_addr;
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;

			if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a))
				continue;
			p.family = AIBL_AF_INET6;
			memcpy(&p.addr, a, 16);
		} else {
			continue;
		}
		on_dev = if_nametoindex(i->ifa_name) == (unsigned int)d->ifindex;
		vip_dev = (i->ifa_flags & IFF_LOOPBACK) || (i->ifa_flags & IFF_NOARP);
		if (on_dev)
			local[nl++] = p;
		else if (vip_dev)
			vip[nv++] = p;
	}
	/* more than the table holds: a check on part of them would drop the
	 * tunnels to the rest, so that check is off, and said once */
	over = (__u32)(nl + nv) > cap;
	if (over != d->addrs_over)
		pr_warn("decap: %d local and %d VIP addresses, the table holds %u: %s", nl, nv, cap,
			over ? "the VIP check is off (any inner address taken)"
			     : "the VIP check is on again");
	/* (the local ones alone past it: that check off too) */
	d->addrs_over = over;
	if (over && (__u32)nl > cap)
		nl = 0;
	if (over)
		nv = 0;
	/* both kinds' stale entries out before either's new ones go in */
	decap__prune_addrs(d, AIBL_NODE_ADDR_LOCAL, local, nl);
	decap__prune_addrs(d, AIBL_NODE_ADDR_VIP, vip, nv);
	err = decap__set_addrs(d, AIBL_NODE_ADDR_LOCAL, local, nl)
		  ?: decap__set_addrs(d, AIBL_NODE_ADDR_VIP, vip, nv);
out:
	if (ifa)
		freeifaddrs(ifa);
	free(local);
	free(vip);
	return err;
}

int decap__parse_prefix(const char *s, struct decap_prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long len;

	memset(p, 0, sizeof(*p));
	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return -EINVAL;
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, &p->addr) == 1)
		p->family = AIBL_AF_INET;
	else if (inet_pton(AF_INET6, buf, &p->addr) == 1)
		p->family = AIBL_AF_INET6;
	else
		return -EINVAL;
	p->len = p->family == AIBL_AF_INET ? 32 : 128;
	if (slash) {
		len = strtol(slash, &end, 10);
		if (*slash == '\0' || *end || len < 0 || len > p->len)
			return -EINVAL;
		p->len = len;
	}
	return 0;
}
