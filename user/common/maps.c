// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Open and check pinned aibl maps (see maps.h). The descriptions below are
 * the userspace half of include/aibl.h: sizes come from the structs
 * themselves, so a layout change there changes what is accepted here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "maps.h"

#define DESC(n, t, k, v)                                                                           \
	{                                                                                          \
		n, t, sizeof(k), sizeof(v), #v                                                     \
	}

static const struct aibl_map_desc map_descs[] = {
    DESC(AIBL_MAP_VIPS, BPF_MAP_TYPE_HASH, struct aibl_vip_key, struct aibl_vip),
    DESC(AIBL_MAP_BACKENDS, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_backend),
    DESC(AIBL_MAP_RING, BPF_MAP_TYPE_ARRAY, __u32, __u32),
    DESC(AIBL_MAP_COST, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_cost),
    DESC(AIBL_MAP_LOAD, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_load),
    DESC(AIBL_MAP_CONNS, BPF_MAP_TYPE_LRU_HASH, struct aibl_flow_key, struct aibl_conn),
    DESC(AIBL_MAP_PINS, BPF_MAP_TYPE_HASH, struct aibl_pin_key, struct aibl_pin),
    DESC(AIBL_MAP_AFFINITY, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_affinity_bucket),
    DESC(AIBL_MAP_MEMBERS, BPF_MAP_TYPE_HASH, struct aibl_member_key, struct aibl_member),
    DESC(AIBL_MAP_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64),
    DESC(AIBL_MAP_SVC_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aibl_traffic),
    DESC(AIBL_MAP_BE_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aibl_traffic),
    /* the data plane's own round-robin cursors, per CPU */
    DESC(AIBL_MAP_RR_POS, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u32),
    DESC(AIBL_MAP_GLOBALS, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_globals),
    DESC(AIBL_MAP_SVC_META, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_svc_meta),
    DESC(AIBL_MAP_BE_META, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_be_meta),
    DESC(AIBL_MAP_FILTER, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_filter),
    /* the data plane's own rate guard windows, per CPU */
    DESC(AIBL_MAP_RATE, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aibl_rate),
    /* the data plane's own handshakes in progress */
    DESC(AIBL_MAP_SYNS, BPF_MAP_TYPE_ARRAY, __u32, struct aibl_syn_bucket),
    /* the data plane's own flow cache, per CPU */
    DESC(AIBL_MAP_FCACHE, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aibl_fcache_entry),
    /* its per-CPU hit samples and bypass */
    DESC(AIBL_MAP_FC_CTL, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, struct aibl_fcache_ctl),
    DESC(AIBL_MAP_NODE_CLIENTS, BPF_MAP_TYPE_LRU_HASH, struct aibl_node_client_key,
	 struct aibl_node_client),
    DESC(AIBL_MAP_NODE_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, __u32, __u64),
};

const struct aibl_map_desc *aibl_map__desc(const char *name)
{
	for (size_t i = 0; i < sizeof(map_descs) / sizeof(map_descs[0]); i++)
		if (strcmp(map_descs[i].name, name) == 0)
			return &map_descs[i];
	return NULL;
}

const char *aibl_map__type_str(enum bpf_map_type type)
{
	switch (type) {
	case BPF_MAP_TYPE_HASH:
		return "hash";
	case BPF_MAP_TYPE_ARRAY:
		return "array";
	case BPF_MAP_TYPE_PERCPU_HASH:
		return "percpu_hash";
	case BPF_MAP_TYPE_PERCPU_ARRAY:
		return "percpu_array";
	case BPF_MAP_TYPE_LRU_HASH:
		return "lru_hash";
	case BPF_MAP_TYPE_LRU_PERCPU_HASH:
		return "lru_percpu_hash";
	default:
		return "other";
	}
}

static bool type_is_percpu(enum bpf_map_type t)
{
	return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       t == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

int aibl_map__ncpus(void)
{
	return libbpf_num_possible_cpus();
}

int aibl_map__check_fd(struct aibl_map *m, int fd, const char *name, const char *path, char *errbuf,
		       size_t errlen)
{
	const struct aibl_map_desc *d = aibl_map__desc(name);
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int err;

	m->fd = -1;
	if (!d) {
		snprintf(errbuf, errlen, "map %s: not an aibl map", name);
		return -EINVAL;
	}
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err) {
		err = -errno;
		snprintf(errbuf, errlen, "map %s (%s): cannot read its info: %s", name, path,
			 strerror(-err));
		return err;
	}
	if (info.type != d->type || info.key_size != d->key_size ||
	    info.value_size != d->value_size) {
		snprintf(
		    errbuf, errlen,
		    "map %s (%s) does not match this aibl build (ABI %d): expected %s key %u B "
		    "value %u B (%s), found %s key %u B value %u B; it was pinned by another "
		    "aibl version",
		    name, path, AIBL_ABI_VERSION, aibl_map__type_str(d->type), d->key_size,
		    d->value_size, d->value_type, aibl_map__type_str(info.type), info.key_size,
		    info.value_size);
		return -EPROTO;
	}
	m->desc = d;
	m->max_entries = info.max_entries;
	if (type_is_percpu(d->type)) {
		m->ncpus = aibl_map__ncpus();
		if (m->ncpus < 0) {
			snprintf(errbuf, errlen, "map %s: cannot count CPUs: %s", name,
				 strerror(-m->ncpus));
			return m->ncpus;
		}
		/* the kernel copies per-CPU values 8-byte aligned */
		m->value_stride = (size_t)m->ncpus * ((d->value_size + 7) & ~7U);
	} else {
		m->ncpus = 1;
		m->value_stride = d->value_size;
	}
	m->fd = fd;
	return 0;
}

int aibl_map__open(struct aibl_map *m, const char *dir, const char *name, bool rdonly, char *errbuf,
		   size_t errlen)
{
	LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = rdonly ? BPF_F_RDONLY : 0);
	char path[4096];
	int fd, err;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
		snprintf(errbuf, errlen, "map %s: bpffs path too long", name);
		return -ENAMETOOLONG;
	}
	fd = bpf_obj_get_opts(path, &opts);
	if (fd < 0) {
		err = -errno;
		if (err == -ENOENT)
			snprintf(errbuf, errlen,
				 "map %s not found at %s: is the balancer loaded there? "
				 "(choose the directory with --bpffs)",
				 name, path);
		else
			snprintf(errbuf, errlen, "map %s: cannot open %s: %s", name, path,
				 strerror(-err));
		return err;
	}
	err = aibl_map__check_fd(m, fd, name, path, errbuf, errlen);
	if (err)
		close(fd);
	return err;
}

void aibl_map__close(struct aibl_map *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

/* an mmapable array's elements lie round_up(value_size, 8) apart */
_Static_assert(sizeof(struct aibl_load) % 8 == 0, "aibl_load: its mmap stride");

static size_t load_bytes(__u32 n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return ((size_t)n * sizeof(struct aibl_load) + pg - 1) / pg * pg;
}

struct aibl_load *aibl_load__mmap(int fd, __u32 *n)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	void *p;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return NULL;
	if (!(info.map_flags & BPF_F_MMAPABLE) || !info.max_entries ||
	    info.value_size != sizeof(struct aibl_load)) {
		errno = EINVAL;
		return NULL;
	}
	p = mmap(NULL, load_bytes(info.max_entries), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	*n = info.max_entries;
	return p;
}

void aibl_load__munmap(struct aibl_load *l, __u32 n)
{
	if (l)
		munmap(l, load_bytes(n));
}

int aibl_globals__check(const struct aibl_map *m, struct aibl_globals *g, char *errbuf,
			size_t errlen)
{
	__u32 zero = 0;
	int err;

	err = bpf_map_lookup_elem(m->fd, &zero, g);
	if (err) {
		err = -errno;
		snprintf(errbuf, errlen, "map %s: cannot read entry 0: %s", AIBL_MAP_GLOBALS,
			 strerror(-err));
		return err;
	}
	if (g->abi_version != AIBL_ABI_VERSION) {
		snprintf(errbuf, errlen,
			 "map %s: abi_version %u, expected %u: the loaded data plane is another "
			 "aibl version; use the matching aiblctl",
			 AIBL_MAP_GLOBALS, g->abi_version, AIBL_ABI_VERSION);
		return -EPROTO;
	}
	if (g->ring_size != AIBL_RING_SIZE) {
		snprintf(errbuf, errlen,
			 "map %s: ring_size %u, expected %u: the data plane was built with another "
			 "AIBL_RING_SIZE",
			 AIBL_MAP_GLOBALS, g->ring_size, AIBL_RING_SIZE);
		return -EPROTO;
	}
	return 0;
}

/* Fallback walk for kernels or map types without batch lookups. */
static int dump_walk(const struct aibl_map *m, char *keys, char *vals, __u32 cap, __u32 *count)
{
	size_t ks = m->desc->key_size;
	char *prev = NULL;
	__u32 n = 0;
	int err;

	while (n < cap) {
		char *key = keys + n * ks;

		err = bpf_map_get_next_key(m->fd, prev, key);
		if (err) {
			err = -errno;
			if (err == -ENOENT)
				break;
			return err;
		}
		err = bpf_map_lookup_elem(m->fd, key, vals + n * m->value_stride);
		if (err) {
			err = -errno;
			/* deleted under us: the walk ends here, as a hash
			 * map's next key after one it no longer holds is its
			 * first key again (the walk would repeat itself) */
			if (err == -ENOENT)
				break;
			return err;
		}
		prev = key;
		n++;
	}
	*count = n;
	return 0;
}

int aibl_map__dump(const struct aibl_map *m, void **keys_out, void **values_out, __u32 *count)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	size_t ks = m->desc->key_size, vs = m->value_stride;
	/* batch tokens: a bucket index for hashes, the last key for arrays */
	__u64 tok_in[8] = {}, tok_out[8] = {};
	__u32 cap = m->max_entries, n = 0;
	char *keys, *vals;
	bool first = true;
	int err = 0;

	*keys_out = *values_out = NULL;
	*count = 0;
	keys = calloc((size_t)cap + 1, ks);
	vals = calloc((size_t)cap + 1, vs);
	if (!keys || !vals) {
		err = -ENOMEM;
		goto out;
	}
	while (n < cap) {
		__u32 cnt = cap - n;

		err = bpf_map_lookup_batch(m->fd, first ? NULL : tok_in, tok_out, keys + n * ks,
					   vals + n * vs, &cnt, &opts);
		if (err)
			err = -errno;
		/* only ENOENT (end) and ENOSPC report a count; other errors leave cnt as asked */
		if (err && err != -ENOENT && err != -ENOSPC) {
			/* no batch support for this map type here */
			if (first)
				err = dump_walk(m, keys, vals, cap, &n);
			goto out;
		}
		n += cnt;
		/* ENOSPC: a hash bucket larger than the room left, the map grew under us */
		if (err) {
			err = 0;
			break;
		}
		memcpy(tok_in, tok_out, sizeof(tok_in));
		first = false;
	}
out:
	if (err) {
		free(keys);
		free(vals);
		return err;
	}
	*keys_out = keys;
	*values_out = vals;
	*count = n;
	return 0;
}

int aibl_map__read_array(const struct aibl_map *m, __u32 start, __u32 count, void *values)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	char *vals = values;
	__u32 *keys = NULL;
	__u32 n = 0, tok_in, tok_out;
	int err = 0;

	if (m->desc->key_size != sizeof(__u32) || (__u64)start + count > m->max_entries)
		return -EINVAL;
	keys = calloc(count ? count : 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	/* the array batch cursor is the last index read: start - 1 begins at start */
	tok_in = start - 1;
	while (n < count) {
		__u32 cnt = count - n;

		err =
		    bpf_map_lookup_batch(m->fd, start + n == 0 ? NULL : &tok_in, &tok_out, keys + n,
					 vals + (size_t)n * m->value_stride, &cnt, &opts);
		if (err)
			err = -errno;
		if (err && err != -ENOENT)
			break;
		n += cnt;
		if (err)
			break;
		tok_in = tok_out;
	}
	/* no batch lookups (or an early end): one syscall per remaining index */
	for (; n < count; n++) {
		__u32 idx = start + n;

		err = bpf_map_lookup_elem(m->fd, &idx, vals + (size_t)n * m->value_stride);
		if (err) {
			err = -errno;
			goto out;
		}
	}
	err = 0;
out:
	free(keys);
	return err;
}

void aibl_map__sum_u64(const struct aibl_map *m, const void *percpu, void *out)
{
	size_t nf = m->desc->value_size / sizeof(__u64);
	size_t step = m->value_stride / (size_t)m->ncpus;
	__u64 *sum = out;

	memset(out, 0, m->desc->value_size);
	for (int c = 0; c < m->ncpus; c++) {
		const __u64 *v = (const void *)((const char *)percpu + (size_t)c * step);

		for (size_t f = 0; f < nf; f++)
			sum[f] += v[f];
	}
}
