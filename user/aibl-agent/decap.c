// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The node's TC ingress decap program loader, see decap.h. libbpf 1.1 APIs only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int decap__detach_ifindex(int ifindex, __u32 handle, __u32 priority)
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
	tc.prog_id = 0;
	tc.prog_fd = 0;
	tc.flags = 0;
	err = bpf_tc_detach(&hook, &tc);
	if (err && err != -ENOENT)
		pr_warn("decap: detach from ifindex %d: %s", ifindex, strerror(-err));
	return err;
}

int decap__detach(struct decap *d)
{
	int err;

	if (!d)
		return 0;
	err = decap__detach_ifindex(d->ifindex, d->handle, d->priority);
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
