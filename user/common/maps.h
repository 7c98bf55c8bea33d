/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Pinned aibl maps from userspace: open a map by name under a bpffs
 * directory and refuse it unless its type, key size and value size are
 * those include/aibl.h describes (a map pinned by another aibl version
 * would otherwise be decoded as garbage), then dump it in batches.
 *
 * Every function returns 0 or -errno; where an errbuf is taken, a failure
 * leaves a sentence there that names the map, what was expected and what
 * was found, fit to show an operator as is.
 */
#ifndef AIBL_MAPS_H
#define AIBL_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include "aibl.h"

/* What include/aibl.h says one map looks like. */
struct aibl_map_desc {
	const char *name;
	enum bpf_map_type type;
	__u32 key_size;
	__u32 value_size;	/* per CPU for per-CPU maps */
	const char *value_type; /* C type of one value, for messages */
};

/* The description of map NAME (AIBL_MAP_*), or NULL when aibl has none. */
const struct aibl_map_desc *aibl_map__desc(const char *name);
/* Printable name of a map type ("hash", "percpu_array", ...). */
const char *aibl_map__type_str(enum bpf_map_type type);

struct aibl_map {
	int fd;
	const struct aibl_map_desc *desc;
	__u32 max_entries;
	int ncpus;	     /* 1 unless per-CPU */
	size_t value_stride; /* bytes of one key's value in a lookup buffer */
};

/*
 * Open <dir>/<name> and check it against aibl_map__desc(name). rdonly opens
 * the pin with BPF_F_RDONLY so inspection can never write. m->fd is -1 on
 * failure; the message in errbuf names the map, expected and found.
 */
int aibl_map__open(struct aibl_map *m, const char *dir, const char *name, bool rdonly, char *errbuf,
		   size_t errlen);
/* Check an already open fd against the description of name. */
int aibl_map__check_fd(struct aibl_map *m, int fd, const char *name, const char *path, char *errbuf,
		       size_t errlen);
void aibl_map__close(struct aibl_map *m);

/*
 * aibl_load mapped into this process (it is BPF_F_MMAPABLE): the data plane
 * moves its counts with atomic adds, and a writer here must too (a read
 * and a write back by syscall lose whatever the data plane counted in
 * between, and put back the other fields as they were). All of its
 * entries, *n of them; NULL with errno set where the map is not mmapable
 * (a pin of an older build) or the mapping fails. fd must be writable.
 */
struct aibl_load *aibl_load__mmap(int fd, __u32 *n);
void aibl_load__munmap(struct aibl_load *l, __u32 n);

/*
 * Read aibl_globals from an open map and check that its writer used this
 * ABI (abi_version) and ring size; a mismatch is an error naming both.
 */
int aibl_globals__check(const struct aibl_map *m, struct aibl_globals *g, char *errbuf,
			size_t errlen);

/*
 * Every entry of the map: *keys and *values are malloc'ed arrays of *count
 * keys (key_size apart) and values (value_stride apart; per-CPU maps hold
 * ncpus rounded values each). Uses BPF_MAP_LOOKUP_BATCH and falls back to
 * get_next_key + lookup where the kernel lacks batching for the map type.
 * At most max_entries entries are returned (entries inserted during the
 * dump may be missed, as with any walk of a live map).
 */
int aibl_map__dump(const struct aibl_map *m, void **keys, void **values, __u32 *count);

/* Values of array indexes [start, start + count) into values (value_stride apart). */
int aibl_map__read_array(const struct aibl_map *m, __u32 start, __u32 count, void *values);

/*
 * Sum one per-CPU value made of __u64 fields (counters, struct
 * aibl_traffic) into out (value_size bytes). percpu points at ncpus values
 * value_stride / ncpus apart, as a lookup returns them.
 */
void aibl_map__sum_u64(const struct aibl_map *m, const void *percpu, void *out);

/* Number of possible CPUs (per-CPU value count), or -errno. */
int aibl_map__ncpus(void);

#endif
