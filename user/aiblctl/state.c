// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * One read of the pinned maps for a command. Every map is opened read-only
 * and checked against include/aibl.h (user/common/maps.c) before a byte of
 * it is decoded, aibl_globals first so that another ABI is named as such.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ctl.h"

/* Whole array map NAME into a new buffer of *n values (per-CPU: summed). */
static int read_array(const char *name, void **out, __u32 *n, char *err, size_t errlen)
{
	struct aibl_map m;
	void *raw = NULL, *vals = NULL;
	int ret;

	*out = NULL;
	ret = aibl_map__open(&m, ctl.bpffs, name, true, err, errlen);
	if (ret)
		return ret;
	raw = calloc(m.max_entries ? m.max_entries : 1, m.value_stride);
	if (!raw) {
		ret = -ENOMEM;
		goto out;
	}
	ret = aibl_map__read_array(&m, 0, m.max_entries, raw);
	if (ret) {
		snprintf(err, errlen, "map %s: read failed: %s", name, strerror(-ret));
		goto out;
	}
	if (m.desc->type == BPF_MAP_TYPE_PERCPU_ARRAY) {
		vals = calloc(m.max_entries ? m.max_entries : 1, m.desc->value_size);
		if (!vals) {
			ret = -ENOMEM;
			goto out;
		}
		for (__u32 i = 0; i < m.max_entries; i++)
			aibl_map__sum_u64(&m, (char *)raw + (size_t)i * m.value_stride,
					  (char *)vals + (size_t)i * m.desc->value_size);
		free(raw);
		raw = NULL;
	} else {
		vals = raw;
		raw = NULL;
	}
	*out = vals;
	*n = m.max_entries;
out:
	free(raw);
	aibl_map__close(&m);
	return ret;
}

/* Every entry of hash map NAME. */
static int dump_hash(const char *name, void **keys, void **vals, __u32 *n, char *err, size_t errlen)
{
	struct aibl_map m;
	int ret;

	ret = aibl_map__open(&m, ctl.bpffs, name, true, err, errlen);
	if (ret)
		return ret;
	ret = aibl_map__dump(&m, keys, vals, n);
	if (ret)
		snprintf(err, errlen, "map %s: dump failed: %s", name, strerror(-ret));
	aibl_map__close(&m);
	return ret;
}

static int vip_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct ctl_vip *)a)->key, &((const struct ctl_vip *)b)->key,
		      sizeof(struct aibl_vip_key));
}

static int load_vips(struct ctl_state *s, char *err, size_t errlen)
{
	struct aibl_vip_key *keys = NULL;
	struct aibl_vip *vals = NULL;
	__u32 n = 0;
	int ret;

	ret = dump_hash(AIBL_MAP_VIPS, (void **)&keys, (void **)&vals, &n, err, errlen);
	if (ret)
		return ret;
	s->vips = calloc(n ? n : 1, sizeof(*s->vips));
	if (!s->vips) {
		ret = -ENOMEM;
		goto out;
	}
	for (__u32 i = 0; i < n; i++) {
		s->vips[i].key = keys[i];
		s->vips[i].val = vals[i];
	}
	s->nvips = n;
	qsort(s->vips, n, sizeof(*s->vips), vip_cmp);
out:
	free(keys);
	free(vals);
	return ret;
}

/*
 * Array map NAME into a new zeroed buffer *dst of want + 1 values of esz
 * bytes: ids the map does not have (sized smaller at load) read as zero,
 * and the spare last entry gives lookups of an invalid id somewhere to land.
 */
static int read_array_n(const char *name, void **dst, size_t esz, __u32 want, char *err,
			size_t errlen)
{
	void *vals = NULL;
	__u32 n;
	int ret;

	free(*dst);
	*dst = calloc((size_t)want + 1, esz);
	if (!*dst)
		return -ENOMEM;
	ret = read_array(name, &vals, &n, err, errlen);
	if (ret)
		return ret;
	memcpy(*dst, vals, esz * (n < want ? n : want));
	free(vals);
	return 0;
}

static int load_stats(struct ctl_state *s, char *err, size_t errlen)
{
	__u64 *cnt = NULL;
	int ret;

	ret = read_array_n(AIBL_MAP_STATS, (void **)&cnt, sizeof(*cnt), AIBL_CNT__MAX, err, errlen);
	if (!ret)
		memcpy(s->counters, cnt, sizeof(s->counters));
	free(cnt);
	if (!ret)
		ret = read_array_n(AIBL_MAP_SVC_STATS, (void **)&s->svc_traffic,
				   sizeof(*s->svc_traffic), s->nsvc, err, errlen);
	if (!ret)
		ret = read_array_n(AIBL_MAP_BE_STATS, (void **)&s->be_traffic,
				   sizeof(*s->be_traffic), s->nbe, err, errlen);
	return ret;
}

/* every way of aibl_affinity that holds a client's entry, live or expired */
static int load_affinity(struct ctl_state *s, char *err, size_t errlen)
{
	struct aibl_affinity_bucket *b = NULL;
	size_t live = 0;
	__u32 nb = 0;
	int ret;

	ret = read_array(AIBL_MAP_AFFINITY, (void **)&b, &nb, err, errlen);
	if (ret)
		return ret;
	/* the live entries only: a table of 2^16 buckets is mostly empty */
	for (__u32 i = 0; i < nb; i++)
		for (int w = 0; w < AIBL_AFFINITY_WAYS; w++)
			live += b[i].way[w].family != 0;
	s->akeys = calloc(live + 1, sizeof(*s->akeys));
	s->avals = calloc(live + 1, sizeof(*s->avals));
	if (!s->akeys || !s->avals) {
		free(b);
		return -ENOMEM;
	}
	s->aff_capacity = nb * AIBL_AFFINITY_WAYS;
	for (__u32 i = 0; i < nb; i++)
		for (int w = 0; w < AIBL_AFFINITY_WAYS; w++) {
			const struct aibl_affinity *af = &b[i].way[w];

			if (!af->family)
				continue;
			s->akeys[s->naff] = (struct aibl_pin_key){
			    .svc_id = af->svc_id, .family = af->family, .client = af->client};
			s->avals[s->naff++] = *af;
		}
	free(b);
	return 0;
}

int ctl_state__load(struct ctl_state *s, unsigned int what, char *err, size_t errlen)
{
	struct aibl_backend *be = NULL;
	struct aibl_map gm;
	__u32 n, nbe_meta;
	int ret;

	memset(s, 0, sizeof(*s));
	ret = aibl_map__open(&gm, ctl.bpffs, AIBL_MAP_GLOBALS, true, err, errlen);
	if (ret)
		return ret;
	ret = aibl_globals__check(&gm, &s->g, err, errlen);
	aibl_map__close(&gm);
	if (ret)
		return ret;

	ret = read_array(AIBL_MAP_SVC_META, (void **)&s->svc_meta, &s->nsvc, err, errlen);
	if (ret)
		goto out;
	ret = read_array(AIBL_MAP_BE_META, (void **)&s->be_meta, &nbe_meta, err, errlen);
	if (ret)
		goto out;
	ret = read_array(AIBL_MAP_BACKENDS, (void **)&be, &n, err, errlen);
	if (ret)
		goto out;
	/* both arrays are indexed by backend id; use the ids both can hold */
	s->be = be;
	s->nbe = n < nbe_meta ? n : nbe_meta;
	ret = load_vips(s, err, errlen);
	if (ret)
		goto out;
	ret = dump_hash(AIBL_MAP_MEMBERS, (void **)&s->mkeys, (void **)&s->mvals, &s->nmembers, err,
			errlen);
	if (ret)
		goto out;
	if (what & CTL_LOAD_STATS) {
		ret = load_stats(s, err, errlen);
		if (ret)
			goto out;
	}
	if (what & CTL_LOAD_LOAD) {
		ret = read_array_n(AIBL_MAP_LOAD, (void **)&s->load, sizeof(*s->load), s->nbe, err,
				   errlen);
		if (!ret)
			ret = read_array_n(AIBL_MAP_COST, (void **)&s->cost, sizeof(*s->cost),
					   s->nbe, err, errlen);
		if (ret)
			goto out;
	}
	if (what & CTL_LOAD_CONNS) {
		ret = dump_hash(AIBL_MAP_CONNS, (void **)&s->ckeys, (void **)&s->cvals, &s->nconns,
				err, errlen);
		if (ret)
			goto out;
		/* commands group flows by service, often per backend: resolve each once */
		s->csvc = calloc(s->nconns + 1, sizeof(*s->csvc));
		if (!s->csvc) {
			ret = -ENOMEM;
			goto out;
		}
		for (__u32 i = 0; i < s->nconns; i++)
			s->csvc[i] = ctl_state__flow_svc(s, &s->ckeys[i]);
	}
	if (what & CTL_LOAD_PINS) {
		ret = dump_hash(AIBL_MAP_PINS, (void **)&s->pkeys, (void **)&s->pvals, &s->npins,
				err, errlen);
		if (ret)
			goto out;
	}
	if (what & CTL_LOAD_AFFINITY) {
		ret = load_affinity(s, err, errlen);
		if (ret)
			goto out;
	}
out:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory reading the maps");
	if (ret)
		ctl_state__free(s);
	return ret;
}

int ctl_load(struct ctl_state *s, unsigned int what)
{
	char err[512];

	if (ctl_state__load(s, what, err, sizeof(err)))
		return ctl_fail("%s", err);
	return 0;
}

void ctl_state__free(struct ctl_state *s)
{
	free(s->svc_meta);
	free(s->be_meta);
	free(s->be);
	free(s->vips);
	free(s->mkeys);
	free(s->mvals);
	free(s->svc_traffic);
	free(s->be_traffic);
	free(s->load);
	free(s->cost);
	free(s->ckeys);
	free(s->cvals);
	free(s->csvc);
	free(s->pkeys);
	free(s->pvals);
	free(s->akeys);
	free(s->avals);
	memset(s, 0, sizeof(*s));
}

bool ctl_state__svc_exists(const struct ctl_state *s, __u32 id)
{
	if (id < s->nsvc && s->svc_meta[id].valid)
		return true;
	for (__u32 i = 0; i < s->nvips; i++)
		if (s->vips[i].val.svc_id == id)
			return true;
	return false;
}

/* a name from a map as aiblctl prints it: printable ASCII (aibld writes
 * no other; a map written by something else may hold anything, and JSON
 * output refuses what is not UTF-8) */
static const char *map_text(char *buf, size_t len, const char *name, size_t max)
{
	size_t i;

	for (i = 0; i + 1 < len && i < max && name[i]; i++)
		buf[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
	if (len)
		buf[i] = '\0';
	return buf;
}

static const char *map_name(char *buf, size_t len, const char *name)
{
	return map_text(buf, len, name, AIBL_NAME_LEN);
}

const char *ctl_state__svc_model(const struct ctl_state *s, __u32 id, char *buf, size_t len)
{
	return map_text(buf, len,
			id < s->nsvc && s->svc_meta[id].valid ? s->svc_meta[id].model : "",
			AIBL_MODEL_LEN);
}

const char *ctl_state__svc_name(const struct ctl_state *s, __u32 id, char *buf, size_t len)
{
	if (id < s->nsvc && s->svc_meta[id].valid && s->svc_meta[id].name[0])
		return map_name(buf, len, s->svc_meta[id].name);
	/* no name written (yet): an id still tells the operator which one */
	snprintf(buf, len, "svc%u", id);
	return buf;
}

const char *ctl_state__be_name(const struct ctl_state *s, __u32 id, char *buf, size_t len)
{
	if (id < s->nbe && s->be_meta[id].valid && s->be_meta[id].name[0])
		return map_name(buf, len, s->be_meta[id].name);
	snprintf(buf, len, id == AIBL_NO_BACKEND ? "none" : "be%u", id);
	return buf;
}

const struct ctl_vip *ctl_state__vip_lookup(const struct ctl_state *s, __u8 family,
					    const union aibl_addr *a, __be16 port, __u8 proto)
{
	struct ctl_vip want = {};
	const struct ctl_vip *hit;

	want.key.addr = *a;
	want.key.port = port;
	want.key.proto = proto;
	want.key.family = family;
	hit = bsearch(&want, s->vips, s->nvips, sizeof(*s->vips), vip_cmp);
	if (hit || !port)
		return hit;
	/* like the data plane: port 0 is the wildcard for every port of the address */
	want.key.port = 0;
	return bsearch(&want, s->vips, s->nvips, sizeof(*s->vips), vip_cmp);
}

int ctl_state__flow_svc(const struct ctl_state *s, const struct aibl_flow_key *k)
{
	const struct ctl_vip *v = ctl_state__vip_lookup(s, k->family, &k->dst, k->dport, k->proto);

	return v ? (int)v->val.svc_id : -1;
}

const struct ctl_vip *ctl_state__svc_vip(const struct ctl_state *s, __u32 id)
{
	const struct ctl_vip *first = NULL;

	for (__u32 i = 0; i < s->nvips; i++) {
		if (s->vips[i].val.svc_id != id)
			continue;
		if (id < s->nsvc && s->svc_meta[id].valid &&
		    memcmp(&s->vips[i].key, &s->svc_meta[id].vip, sizeof(s->vips[i].key)) == 0)
			return &s->vips[i];
		if (!first)
			first = &s->vips[i];
	}
	return first;
}

int ctl_state__find_service(const struct ctl_state *s, const char *spec, __u32 *id, char *err,
			    size_t errlen)
{
	char buf[AIBL_NAME_LEN + 1], host[80];
	const char *slash = strrchr(spec, '/');
	union aibl_addr a;
	__u8 family, proto = IPPROTO_TCP;
	__u16 port;

	for (__u32 i = 0; i < s->nsvc; i++) {
		if (!s->svc_meta[i].valid)
			continue;
		if (strcmp(ctl_state__svc_name(s, i, buf, sizeof(buf)), spec) == 0) {
			*id = i;
			return 0;
		}
	}
	/* VIP:PORT[/proto] */
	snprintf(host, sizeof(host), "%.*s", slash ? (int)(slash - spec) : (int)strlen(spec), spec);
	if ((!slash || ctl_parse_proto(slash + 1, &proto) == 0) &&
	    ctl_parse_endpoint(host, false, &family, &a, &port) == 0) {
		const struct ctl_vip *v = ctl_state__vip_lookup(s, family, &a, htons(port), proto);

		if (v) {
			*id = v->val.svc_id;
			return 0;
		}
		snprintf(err, errlen, "no service has VIP %s/%s (see 'aiblctl service list')", host,
			 ctl_proto_str(proto));
		return -ENOENT;
	}
	/* svcN, as printed for services without a name */
	if (sscanf(spec, "svc%u", id) == 1 && ctl_state__svc_exists(s, *id))
		return 0;
	snprintf(err, errlen, "no service '%s' (see 'aiblctl service list')", spec);
	return -ENOENT;
}

int ctl_find_service(const struct ctl_state *s, const char *spec, __u32 *id)
{
	char err[512];

	if (ctl_state__find_service(s, spec, id, err, sizeof(err)))
		return ctl_fail("%s", err);
	return 0;
}

json_t *ctl_json_vip(const struct ctl_vip *v)
{
	char addr[64];

	ctl_fmt_addr(addr, sizeof(addr), v->key.family, &v->key.addr);
	return json_pack("{s:s,s:i,s:s,s:i}", "address", addr, "port", ntohs(v->key.port), "proto",
			 ctl_proto_str(v->key.proto), "family", v->key.family);
}
