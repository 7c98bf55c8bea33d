/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The balancer's XDP program (bpf/aibl_xdp.bpf.c) loader.
 *
 * dp__open_load() opens the skeleton and pins every map by name under
 * one bpffs directory (reusing maps already pinned there, so a restarted
 * controller keeps the connection table). dp__attach() puts the program on
 * an interface, atomically replacing an older aibl program, and pins it at
 * <dir>/AIBL_PIN_PROG; dp__detach() takes it off; dp__teardown() removes
 * every pin.
 *
 * All functions return 0 or a negative errno and log why with pr_warn.
 */
#ifndef AIBL_DATAPLANE_H
#define AIBL_DATAPLANE_H

#include <stdbool.h>
#include <linux/types.h>
#include "aibl.h"

/* ---------------- XDP balancer ---------------- */

/* Load-time sizes; 0 takes the default from aibl.h. */
struct dp_sizes {
	__u32 max_services; /* aibl_svc_stats, aibl_svc_meta, aibl_rr_pos, ring */
	__u32 max_backends; /* aibl_backends, aibl_cost, aibl_load, stats, meta */
	__u32 max_conns;    /* aibl_conns (LRU) */
	__u32 max_pins;	    /* aibl_pins */
	__u32 max_members;  /* aibl_members */
};

struct dp_opts {
	const char *pin_dir; /* NULL: AIBL_DEFAULT_BPFFS */
	struct dp_sizes sizes;
	/* load the plain XDP program, not the xdp.frags one (the fallback
	 * on a kernel without frags programs): it drops multi-buffer frames */
	bool no_frags;
};

struct aibl_xdp; /* skeleton, build/aibl_xdp.skel.h */

struct dp {
	struct aibl_xdp *skel;
	char pin_dir[256];
	struct dp_sizes sizes; /* what was loaded (pinned maps' sizes when reused) */
	bool reused;	       /* at least one map came from an existing pin */
	bool frags;	       /* loaded as xdp.frags: forwards multi-buffer frames */
	/* the program pinned before this load's (an earlier aibld's, maybe
	 * still attached), -1 none: what dp__attach() replaces it by without
	 * CAP_SYS_ADMIN, which a lookup by id needs */
	int old_prog_fd;
	/* where the previous run attached (its aibl_globals.ifindex), 0 none:
	 * dp__attach() takes that program off it when it attaches elsewhere */
	int prev_ifindex;
	/* attached but its pin failed: dp__repin() pins it */
	bool pin_stale;
};

/*
 * Opens and loads the XDP program with its maps pinned under opts->pin_dir
 * (created when missing); the program is pinned once attached (dp__attach,
 * or dp__pin_prog without an interface). Existing map pins are reused when their
 * type, key size, value size and flags match this build; a pin with another
 * layout fails with -EINVAL and a message naming the map (run
 * `aibld --teardown`, i.e. dp__teardown() to start over). Sizes of
 * reused maps win over opts->sizes.
 */
int dp__open_load(const struct dp_opts *opts, struct dp **out);
/* Frees the userspace side; pins and attachments stay. NULL is fine. */
void dp__close(struct dp *dp);
/* Pins the program at <dir>/AIBL_PIN_PROG, atomically over an older pin */
int dp__pin_prog(struct dp *dp);

/* fd of one of the program's maps by name (AIBL_MAP_*), or -ENOENT */
int dp__map_fd(const struct dp *dp, const char *name);
int dp__prog_fd(const struct dp *dp);

enum dp_attach_mode {
	DP_ATTACH_NATIVE = 0,  /* driver mode (default) */
	DP_ATTACH_GENERIC = 1, /* skb mode, works everywhere, slower */
};

struct dp_attach_opts {
	enum dp_attach_mode mode;
	/* replace a program that is not aibl's; without it that is -EBUSY */
	bool force;
};

/*
 * Attaches the program on ifindex. An aibl XDP program already there (any
 * version) is replaced atomically (XDP_FLAGS_REPLACE), so packets never see
 * a gap and established flows keep their backend through the shared
 * connection table; then it is pinned at <dir>/AIBL_PIN_PROG (a failed
 * attach leaves the pin naming the program attached). opts NULL: native,
 * not forced.
 */
int dp__attach(struct dp *dp, int ifindex, const struct dp_attach_opts *opts);
/* dp's program is attached on ifindex (true too when that cannot be asked) */
bool dp__attached(struct dp *dp, int ifindex);
/*
 * Detaches the aibl XDP program from ifindex (whichever mode it is in).
 * -ENOENT when nothing is attached; -EBUSY when the attached program is not
 * aibl's (force detaches it anyway).
 */
int dp__detach(int ifindex, bool force);
/* Removes the program pin and every aibl map pin under pin_dir (NULL:
 * default) and the directory when it ends up empty. Missing pins are fine. */
int dp__teardown(const char *pin_dir);
/* Pins again every map and the program whose pin is missing (the directory
 * removed under a running controller). Number re-pinned, or -errno. */
int dp__repin(struct dp *dp);
/* Writes aibl_globals; fills abi_version and ring_size itself and moves to
 * the next flow cache epoch (g->epoch is ignored). */
int dp__globals_write(struct dp *dp, const struct aibl_globals *g);
/* The same on an aibl_globals map fd. */
int dp__globals_write_fd(int fd, const struct aibl_globals *g);
/*
 * Voids every flow cache entry (aibl_fcache, include/aibl.h) by moving
 * aibl_globals to the next epoch. Call after deleting or rewriting
 * aibl_conns entries or changing or deleting a VIP. 0 or -errno.
 */
int dp__epoch_bump(int fd_globals);

/*
 * Pre-filters (aibl_filter, see include/aibl.h). Every writer of aibl_vips
 * (aibl_pins) that sets AIBL_G_F_VIP_FILTER (AIBL_G_F_PIN_FILTER) in the
 * globals calls the rebuild after writing keys; deleting keys needs no
 * rebuild (a stale bit only costs the lookup it saves). A rebuild reads
 * the whole map and writes the bitmap in one update: bits of keys present
 * before and after never read as clear.
 */
void dp__filter_add_vip(struct aibl_filter *f, const struct aibl_vip_key *k);
void dp__filter_add_pin(struct aibl_filter *f, const struct aibl_pin_key *k);
/* writes f as aibl_filter[which] (enum aibl_filter_idx) */
int dp__filter_write(int filter_fd, __u32 which, const struct aibl_filter *f);
/* rebuilds aibl_filter[AIBL_FILTER_VIP] from the keys of aibl_vips */
int dp__vip_filter_rebuild(int filter_fd, int vips_fd);
/* rebuilds aibl_filter[AIBL_FILTER_PIN] from the keys of aibl_pins */
int dp__pin_filter_rebuild(int filter_fd, int pins_fd);

/*
 * Calls fn for every entry of aibl_conns (the connection table), read in
 * batches of DP_RECONCILE_BATCH, one by one where the kernel has no batch
 * lookups on LRU maps. Entries added or removed meanwhile may be seen or
 * not. 0 or -errno.
 */
#define DP_RECONCILE_BATCH 4096
typedef void (*dp_conn_fn)(const struct aibl_flow_key *k, const struct aibl_conn *c, void *ud);
int dp__conns_walk(int conns_fd, dp_conn_fn fn, void *ud);

/*
 * Active-flow reconcile: sets aibl_load[id].active of every backend id <
 * nbackends to the open (not closing) TCP entries aibl_conns holds for it.
 * The data plane's +1/-1 drift (an LRU eviction or a lost FIN/RST never
 * counts down; an entry rewritten from outside never counts) ends here.
 * The table is read by dp__conns_walk(); what the data plane
 * added to a count while the table was read is kept on top, as is what it
 * adds while the count is set: the difference goes in by one atomic add on
 * the mapped map (aibl_load__mmap), never a read and a write back. Number
 * of counts corrected, or -errno.
 */
int dp__load_reconcile(int conns_fd, int load_fd, __u32 nbackends);
/* sets the bit of one VIP key (before writing it); no write when set */
int dp__vip_filter_add(int filter_fd, const struct aibl_vip_key *k);

#endif /* AIBL_DATAPLANE_H */
