// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * YAML configuration through libyaml's document API: the whole file is
 * loaded as a node tree (each node knows its line), then walked with one
 * key table per mapping. A table row says where a key lands in the struct,
 * its type and its range, so the defaults (config__defaults), the parser
 * and the error messages cannot drift apart. Any problem stops the parse
 * with "FILE:LINE: problem" and the caller's running config is untouched.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <yaml.h>
#include "config.h"
#include "listen.h"

static const char *const policy_names[] = { "rr", "wrr", "hash", "least_conn", "least_time", "ai",
					    NULL };
static const char *const accel_names[] = { "none", "gpu", "other", NULL };
static const char *const xdp_mode_names[] = { "native", "generic", NULL };
static const char *const fwd_names[] = { "ipip", "l2dsr", NULL };
static const char *const key_names[] = { "src_ip", "five_tuple", NULL };
static const char *const proto_names[] = { "tcp", "udp", NULL };
static const int proto_values[] = { IPPROTO_TCP, IPPROTO_UDP };

static int parse_uint(const char *s, unsigned long long *out);

const char *config__policy_name(int policy)
{
	return policy >= 0 && policy <= AIBL_POL_AI ? policy_names[policy] : "?";
}

const char *config__accel_name(int accel)
{
	return accel >= 0 && accel <= AIBL_ACCEL_OTHER ? accel_names[accel] : "any";
}

void config__defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->xdp_mode = CFG_XDP_NATIVE;
	cfg->fwd_mode = AIBL_FWD_IPIP;
	snprintf(cfg->bpffs, sizeof(cfg->bpffs), "%s", AIBL_DEFAULT_BPFFS);
	cfg->poll_interval_ms = 1000;
	cfg->poll_timeout_ms = 500;
	snprintf(cfg->status_listen, sizeof(cfg->status_listen), "127.0.0.1:7070");
	cfg->hash_seed = 0x6169626c; /* "aibl": any constant shared by an ECMP group */
	cfg->mtu = 1500;
	cfg->icmp_too_big = true;
	cfg->flow_cache = true;
	cfg->map_conns = AIBL_MAX_CONNS;
	cfg->map_pins = AIBL_MAX_PINS;
	cfg->fail_after = 3;
	cfg->rise_after = 2;
	cfg->min_rewrite_interval_ms = 1000;
	cfg->hysteresis_pct = 10;
	cfg->pins_per_node = 1024;
	cfg->pins_per_service = 8192;
	cfg->pin_max_ttl_ms = 600000;
	cfg->lt_smoothing = 0.3;
	cfg->lt_ms_per_flow = 20;
	cfg->ai = (struct cfg_ai){
		.util_weight = 0.25,
		.mem_weight = 0.15,
		.temp_weight = 0.10,
		.queue_weight = 0.20,
		.kv_weight = 0.20,
		.inflight_weight = 0.10,
		.temp_soft_c = 75,
		.temp_hard_c = 90,
		.queue_ref = 32,
		.inflight_ref = 64,
		.overload_kv = 0.95,
		.min_headroom = 0.05,
		.cold_start_factor = 0.25,
		.load_cost = 32,
		.saturation_queue = 4,
		.latency_spread = 1.25,
		.latency_slack_ms = 50,
		.stale_ms = 0,
		.cold_start_after_ms = 60000,
	};
}

void config__free(struct config *cfg)
{
	for (int i = 0; i < cfg->nservices; i++)
		free(cfg->services[i].nodes);
	free(cfg->services);
	free(cfg->nodes);
	cfg->services = NULL;
	cfg->nodes = NULL;
	cfg->nservices = cfg->nnodes = 0;
}

int config__parse_addr(const char *text, union aibl_addr *addr, __u8 *family)
{
	memset(addr, 0, sizeof(*addr));
	if (inet_pton(AF_INET, text, &addr->v4) == 1) {
		*family = AIBL_AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, addr->b) == 1) {
		*family = AIBL_AF_INET6;
		return 0;
	}
	return -EINVAL;
}

int config__parse_mac(const char *text, __u8 mac[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = b[i];
	return 0;
}

int config__parse_listen(const char *text, struct sockaddr_storage *ss, bool *loopback)
{
	char host[CFG_ADDR_LEN];
	const char *colon;
	unsigned long long port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *end = strchr(text, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		hl = end - text - 1;
		colon = end + 1;
		text++;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		hl = colon - text;
	}
	if (hl == 0 || hl >= sizeof(host) || parse_uint(colon + 1, &port) || !port || port > 65535)
		return -EINVAL;
	memcpy(host, text, hl);
	host[hl] = 0;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		*loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		return 0;
	}
	return -EINVAL;
}

int config__node_index(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nnodes; i++)
		if (!strcmp(cfg->nodes[i].name, name))
			return i;
	return -1;
}

/* ---- the walker ---- */

struct pctx {
	const char *name;
	char *err;
	size_t errlen;
	yaml_document_t *doc;
	struct config *cfg;
};

static int vfail(struct pctx *c, size_t line, const char *fmt, va_list ap)
{
	char msg[CFG_ERR_LEN];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s:%zu: %s", c->name, line, msg);
	return -EINVAL;
}

static int fail(struct pctx *c, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_at(struct pctx *c, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct pctx *c, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vfail(c, n ? n->start_mark.line + 1 : 1, fmt, ap);
	va_end(ap);
	return ret;
}

static int fail_at(struct pctx *c, size_t line, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = vfail(c, line, fmt, ap);
	va_end(ap);
	return ret;
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

enum ktype { K_STR, K_UINT, K_DBL, K_BOOL, K_ENUM, K_ADDR, K_FUNC };

struct kspec;
typedef int (*kfunc_t)(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj);

struct kspec {
	const char *key;
	enum ktype type;
	size_t off;
	size_t size; /* K_STR buffer size, K_UINT width in bytes */
	double min, max;
	const char *const *names; /* K_ENUM */
	bool required;
	kfunc_t fn; /* K_FUNC */
};

#define KS(k, t, s, f, ...) { .key = k, .type = t, .off = offsetof(s, f), \
			      .size = sizeof(((s *)0)->f), __VA_ARGS__ }

static int enum_list(const char *const *names, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = 0;
	for (int i = 0; names[i]; i++)
		used += snprintf(buf + used, used < len ? len - used : 0, "%s%s", i ? ", " : "",
				 names[i]);
	return 0;
}

static int parse_uint(const char *s, unsigned long long *out)
{
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

static int set_value(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	char *field = (char *)obj + k->off;
	const char *s = scalar(v);
	unsigned long long u;
	char list[128];
	double d;
	char *end;

	if (k->type == K_FUNC)
		return k->fn(c, k, v, obj);
	if (!s)
		return fail(c, v, "'%s' must be a single value, not a list or mapping", k->key);

	switch (k->type) {
	case K_STR:
		if (strlen(s) >= k->size)
			return fail(c, v, "'%s' is too long (at most %zu characters)", k->key,
				    k->size - 1);
		strcpy(field, s);
		return 0;
	case K_UINT:
		if (parse_uint(s, &u) || u < k->min || u > k->max)
			return fail(c, v, "'%s' must be an integer from %.0f to %.0f, not '%s'",
				    k->key, k->min, k->max, s);
		if (k->size == 2)
			*(__u16 *)field = u;
		else
			*(__u32 *)field = u;
		return 0;
	case K_DBL:
		errno = 0;
		d = strtod(s, &end);
		if (!*s || errno || *end || !isfinite(d) || d < k->min || d > k->max)
			return fail(c, v, "'%s' must be a number from %g to %g, not '%s'", k->key,
				    k->min, k->max, s);
		*(double *)field = d;
		return 0;
	case K_BOOL:
		if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
			*(bool *)field = true;
		else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
			*(bool *)field = false;
		else
			return fail(c, v, "'%s' must be true or false, not '%s'", k->key, s);
		return 0;
	case K_ENUM:
		for (int i = 0; k->names[i]; i++) {
			if (!strcmp(s, k->names[i])) {
				*(int *)field = k->names == proto_names ? proto_values[i] : i;
				return 0;
			}
		}
		enum_list(k->names, list, sizeof(list));
		return fail(c, v, "'%s' must be one of %s, not '%s'", k->key, list, s);
	default:
		return fail(c, v, "internal: bad key type");
	}
}

static int walk_map(struct pctx *c, yaml_node_t *map, const struct kspec *specs, void *obj,
		    const char *what)
{
	unsigned long long seen = 0;
	yaml_node_pair_t *p;
	int i, err;

	if (map->type != YAML_MAPPING_NODE)
		return fail(c, map, "%s must be a mapping", what);
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(kn);

		if (!key)
			return fail(c, kn, "keys must be plain words");
		for (i = 0; specs[i].key; i++)
			if (!strcmp(specs[i].key, key))
				break;
		if (!specs[i].key)
			return fail(c, kn, "unknown key '%s' in %s", key, what);
		if (seen & (1ULL << i))
			return fail(c, kn, "duplicate key '%s' in %s", key, what);
		seen |= 1ULL << i;
		err = set_value(c, &specs[i], vn, obj);
		if (err)
			return err;
	}
	for (i = 0; specs[i].key; i++)
		if (specs[i].required && !(seen & (1ULL << i)))
			return fail(c, map, "missing required key '%s' in %s", specs[i].key, what);
	return 0;
}

/* ---- nested sections ---- */

static const struct kspec health_keys[] = {
	KS("fail_after", K_UINT, struct config, fail_after, .min = 1, .max = 100),
	KS("rise_after", K_UINT, struct config, rise_after, .min = 1, .max = 100),
	{}
};

/* map sizes: applied when aibld creates the maps; pinned maps keep theirs */
static const struct kspec maps_keys[] = {
	KS("conns", K_UINT, struct config, map_conns, .min = 1024, .max = 67108864),
	KS("pins", K_UINT, struct config, map_pins, .min = 1024, .max = 16777216),
	{}
};

static const struct kspec tables_keys[] = {
	KS("min_rewrite_interval_ms", K_UINT, struct config, min_rewrite_interval_ms, .min = 0,
	   .max = 600000),
	KS("hysteresis_pct", K_UINT, struct config, hysteresis_pct, .min = 0, .max = 100),
	{}
};

static const struct kspec pins_keys[] = {
	KS("max_per_node", K_UINT, struct config, pins_per_node, .min = 0, .max = AIBL_MAX_PINS),
	KS("max_per_service", K_UINT, struct config, pins_per_service, .min = 0,
	   .max = AIBL_MAX_PINS),
	KS("max_ttl_ms", K_UINT, struct config, pin_max_ttl_ms, .min = 1000, .max = 86400000),
	{}
};

static const struct kspec lt_keys[] = {
	KS("smoothing", K_DBL, struct config, lt_smoothing, .min = 0.01, .max = 1),
	KS("ms_per_flow", K_DBL, struct config, lt_ms_per_flow, .min = 0.1, .max = 100000),
	{}
};

static const struct kspec ai_keys[] = {
	KS("util_weight", K_DBL, struct cfg_ai, util_weight, .min = 0, .max = 100),
	KS("mem_weight", K_DBL, struct cfg_ai, mem_weight, .min = 0, .max = 100),
	KS("temp_weight", K_DBL, struct cfg_ai, temp_weight, .min = 0, .max = 100),
	KS("queue_weight", K_DBL, struct cfg_ai, queue_weight, .min = 0, .max = 100),
	KS("kv_weight", K_DBL, struct cfg_ai, kv_weight, .min = 0, .max = 100),
	KS("inflight_weight", K_DBL, struct cfg_ai, inflight_weight, .min = 0, .max = 100),
	KS("temp_soft_c", K_DBL, struct cfg_ai, temp_soft_c, .min = 0, .max = 200),
	KS("temp_hard_c", K_DBL, struct cfg_ai, temp_hard_c, .min = 1, .max = 200),
	KS("queue_ref", K_DBL, struct cfg_ai, queue_ref, .min = 1, .max = 1e6),
	KS("inflight_ref", K_DBL, struct cfg_ai, inflight_ref, .min = 1, .max = 1e6),
	KS("overload_kv", K_DBL, struct cfg_ai, overload_kv, .min = 0.01, .max = 1),
	KS("min_headroom", K_DBL, struct cfg_ai, min_headroom, .min = 0.001, .max = 1),
	KS("cold_start_factor", K_DBL, struct cfg_ai, cold_start_factor, .min = 0.001, .max = 1),
	KS("load_cost", K_DBL, struct cfg_ai, load_cost, .min = 0, .max = 1e6),
	KS("saturation_queue", K_DBL, struct cfg_ai, saturation_queue, .min = 1, .max = 1e6),
	KS("latency_spread", K_DBL, struct cfg_ai, latency_spread, .min = 1, .max = 1000),
	KS("latency_slack_ms", K_DBL, struct cfg_ai, latency_slack_ms, .min = 0, .max = 1e6),
	KS("stale_ms", K_UINT, struct cfg_ai, stale_ms, .min = 0, .max = 3600000),
	KS("cold_start_after_ms", K_UINT, struct cfg_ai, cold_start_after_ms, .min = 0,
	   .max = 86400000),
	{}
};

static int sub_health(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	return walk_map(c, v, health_keys, obj, "'health'");
}

static int sub_maps(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	return walk_map(c, v, maps_keys, obj, "'maps'");
}

static int sub_tables(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	return walk_map(c, v, tables_keys, obj, "'tables'");
}

static int sub_pins(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	return walk_map(c, v, pins_keys, obj, "'pins'");
}

static int sub_lt(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	return walk_map(c, v, lt_keys, obj, "'least_time'");
}

static int sub_ai(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	return walk_map(c, v, ai_keys, &((struct config *)obj)->ai, "'ai'");
}

/* an address key: text kept for messages, parsed form next to it */
static int set_addr(struct pctx *c, const char *key, yaml_node_t *v, char *text, size_t textlen,
		    union aibl_addr *addr, __u8 *family)
{
	const char *s = scalar(v);

	if (!s || strlen(s) >= textlen || config__parse_addr(s, addr, family))
		return fail(c, v, "'%s' is not an IPv4 or IPv6 address: '%s'", key,
			    s ? s : "(not a scalar)");
	strcpy(text, s);
	return 0;
}

static int node_address(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	struct cfg_node *n = obj;

	return set_addr(c, k->key, v, n->address, sizeof(n->address), &n->addr, &n->family);
}

static int svc_vip(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	struct cfg_service *s = obj;

	return set_addr(c, k->key, v, s->vip_text, sizeof(s->vip_text), &s->vip, &s->family);
}

static int svc_accel(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	struct kspec e = { .key = k->key, .type = K_ENUM, .names = accel_names };

	return set_value(c, &e, v, &((struct cfg_service *)obj)->accel);
}

static int node_models(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	struct cfg_node *n = obj;
	yaml_node_item_t *it;

	if (v->type != YAML_SEQUENCE_NODE)
		return fail(c, v, "'models' must be a list of model names");
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		yaml_node_t *m = yaml_document_get_node(c->doc, *it);
		const char *s = scalar(m);

		if (!s || !*s || strlen(s) >= AIBL_MODEL_LEN)
			return fail(c, m, "model names must be 1 to %d characters", AIBL_MODEL_LEN - 1);
		if (n->nmodels == CFG_NODE_MODELS)
			return fail(c, m, "at most %d models per node", CFG_NODE_MODELS);
		strcpy(n->models[n->nmodels++], s);
	}
	return 0;
}

/*
 * A service's node list may name nodes defined later in the file: remember
 * the sequence (as -(yaml node index) - 1 in nnodes) and resolve it once
 * every section is read.
 */
static int svc_nodes(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	struct cfg_service *s = obj;

	if (v->type != YAML_SEQUENCE_NODE)
		return fail(c, v, "'nodes' must be a list of node names");
	s->nnodes = -(int)(v - c->doc->nodes.start) - 1;
	return 0;
}

static const struct kspec node_keys[] = {
	KS("name", K_STR, struct cfg_node, name, .required = true),
	{ .key = "address", .type = K_FUNC, .fn = node_address, .required = true },
	KS("agent", K_STR, struct cfg_node, agent),
	KS("accelerator", K_ENUM, struct cfg_node, accel, .names = accel_names),
	KS("weight", K_UINT, struct cfg_node, weight, .min = 0, .max = 65535),
	KS("health_port", K_UINT, struct cfg_node, health_port, .min = 1, .max = 65535),
	{ .key = "models", .type = K_FUNC, .fn = node_models },
	{}
};

static const struct kspec svc_keys[] = {
	KS("name", K_STR, struct cfg_service, name, .required = true),
	{ .key = "vip", .type = K_FUNC, .fn = svc_vip, .required = true },
	KS("port", K_UINT, struct cfg_service, port, .min = 0, .max = 65535, .required = true),
	KS("proto", K_ENUM, struct cfg_service, proto, .names = proto_names),
	KS("model", K_STR, struct cfg_service, model),
	{ .key = "accelerator", .type = K_FUNC, .fn = svc_accel },
	KS("policy", K_ENUM, struct cfg_service, policy, .names = policy_names),
	KS("session_key", K_ENUM, struct cfg_service, session_key, .names = key_names),
	KS("conntrack", K_BOOL, struct cfg_service, conntrack),
	{ .key = "nodes", .type = K_FUNC, .fn = svc_nodes },
	{}
};

static int seq_items(struct pctx *c, yaml_node_t *v, const char *key, int max, size_t elem,
		     void **out, int *count)
{
	int n;

	if (v->type != YAML_SEQUENCE_NODE)
		return fail(c, v, "'%s' must be a list", key);
	n = v->data.sequence.items.top - v->data.sequence.items.start;
	if (n > max)
		return fail(c, v, "too many %s: %d (at most %d)", key, n, max);
	*out = calloc(n ? n : 1, elem);
	if (!*out)
		return -ENOMEM;
	*count = n;
	return 0;
}

static int sec_nodes(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	struct config *cfg = obj;
	char what[64];
	int err, i;

	err = seq_items(c, v, "nodes", AIBL_MAX_BACKENDS, sizeof(struct cfg_node),
			(void **)&cfg->nodes, &cfg->nnodes);
	if (err)
		return err;
	for (i = 0; i < cfg->nnodes; i++) {
		yaml_node_t *m = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
		struct cfg_node *n = &cfg->nodes[i];

		n->accel = AIBL_ACCEL_GPU;
		n->weight = 100;
		n->line = m->start_mark.line + 1;
		snprintf(what, sizeof(what), "nodes[%d]", i);
		err = walk_map(c, m, node_keys, n, what);
		if (err)
			return err;
		if (!n->name[0])
			return fail(c, m, "node name must not be empty");
		for (int j = 0; j < i; j++)
			if (!strcmp(cfg->nodes[j].name, n->name))
				return fail(c, m, "duplicate node name '%s'", n->name);
	}
	return 0;
}

static int sec_services(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	struct config *cfg = obj;
	char what[64];
	int err, i;

	err = seq_items(c, v, "services", AIBL_MAX_SERVICES, sizeof(struct cfg_service),
			(void **)&cfg->services, &cfg->nservices);
	if (err)
		return err;
	for (i = 0; i < cfg->nservices; i++) {
		yaml_node_t *m = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
		struct cfg_service *s = &cfg->services[i];

		s->proto = IPPROTO_TCP;
		s->accel = -1;
		s->policy = AIBL_POL_AI;
		s->session_key = AIBL_KEY_SRC_IP;
		s->conntrack = true;
		s->line = m->start_mark.line + 1;
		snprintf(what, sizeof(what), "services[%d]", i);
		err = walk_map(c, m, svc_keys, s, what);
		if (err)
			return err;
		if (!s->name[0])
			return fail(c, m, "service name must not be empty");
		for (int j = 0; j < i; j++) {
			struct cfg_service *o = &cfg->services[j];

			if (!strcmp(o->name, s->name))
				return fail(c, m, "duplicate service name '%s'", s->name);
			if (o->family == s->family && o->port == s->port && o->proto == s->proto &&
			    !memcmp(&o->vip, &s->vip, sizeof(s->vip)))
				return fail(c, m,
					    "service '%s' has the same VIP, port and proto as '%s'",
					    s->name, o->name);
		}
	}
	return 0;
}

static const struct kspec top_keys[] = {
	KS("interface", K_STR, struct config, interface, .required = true),
	KS("xdp_mode", K_ENUM, struct config, xdp_mode, .names = xdp_mode_names),
	KS("forwarding", K_ENUM, struct config, fwd_mode, .names = fwd_names),
	KS("bpffs", K_STR, struct config, bpffs),
	KS("poll_interval_ms", K_UINT, struct config, poll_interval_ms, .min = 10, .max = 3600000),
	KS("poll_timeout_ms", K_UINT, struct config, poll_timeout_ms, .min = 10, .max = 600000),
	KS("status_listen", K_STR, struct config, status_listen),
	KS("agent_key_file", K_STR, struct config, agent_key_file),
	KS("api_token_file", K_STR, struct config, api_token_file),
	KS("hash_seed", K_UINT, struct config, hash_seed, .min = 0, .max = UINT32_MAX),
	KS("mtu", K_UINT, struct config, mtu, .min = 0, .max = 65535),
	KS("icmp_too_big", K_BOOL, struct config, icmp_too_big),
	KS("flow_cache", K_BOOL, struct config, flow_cache),
	KS("max_conn_rate", K_UINT, struct config, max_conn_rate, .min = 0, .max = 100000000),
	KS("tunnel_source4", K_STR, struct config, tunnel_source4),
	KS("tunnel_source6", K_STR, struct config, tunnel_source6),
	KS("tunnel_source_hash_bits", K_UINT, struct config, tunnel_source_hash_bits, .min = 0,
	   .max = 16),
	KS("gateway_mac", K_STR, struct config, gateway_mac),
	{ .key = "health", .type = K_FUNC, .fn = sub_health },
	{ .key = "maps", .type = K_FUNC, .fn = sub_maps },
	{ .key = "tables", .type = K_FUNC, .fn = sub_tables },
	{ .key = "pins", .type = K_FUNC, .fn = sub_pins },
	{ .key = "least_time", .type = K_FUNC, .fn = sub_lt },
	{ .key = "ai", .type = K_FUNC, .fn = sub_ai },
	{ .key = "nodes", .type = K_FUNC, .fn = sec_nodes, .required = true },
	{ .key = "services", .type = K_FUNC, .fn = sec_services, .required = true },
	{}
};

static const yaml_node_t *top_key_node(struct pctx *c, yaml_node_t *root, const char *key)
{
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);

		if (scalar(kn) && !strcmp(scalar(kn), key))
			return kn;
	}
	return root;
}

/* Checks that need the whole file: node references, families, globals. */
static int resolve(struct pctx *c, yaml_node_t *root)
{
	struct config *cfg = c->cfg;
	struct sockaddr_storage ss;
	union aibl_addr a;
	bool loopback;
	__u8 fam, mac[6];

	if (cfg->tunnel_source4[0] && (config__parse_addr(cfg->tunnel_source4, &a, &fam) ||
				       fam != AIBL_AF_INET))
		return fail(c, top_key_node(c, root, "tunnel_source4"),
			    "'tunnel_source4' is not an IPv4 address: '%s'", cfg->tunnel_source4);
	if (cfg->tunnel_source6[0] && (config__parse_addr(cfg->tunnel_source6, &a, &fam) ||
				       fam != AIBL_AF_INET6))
		return fail(c, top_key_node(c, root, "tunnel_source6"),
			    "'tunnel_source6' is not an IPv6 address: '%s'", cfg->tunnel_source6);
	if (cfg->gateway_mac[0] && config__parse_mac(cfg->gateway_mac, mac))
		return fail(c, top_key_node(c, root, "gateway_mac"),
			    "'gateway_mac' is not a MAC address like 02:00:00:00:00:01: '%s'",
			    cfg->gateway_mac);
	if (cfg->ai.temp_soft_c >= cfg->ai.temp_hard_c)
		return fail(c, top_key_node(c, root, "ai"),
			    "'ai.temp_soft_c' must be below 'ai.temp_hard_c'");
	if (!cfg->interface[0])
		return fail(c, top_key_node(c, root, "interface"), "'interface' must not be empty");
	/* the parser's reason goes to c->err, which fail() reads before rewriting it */
	if (listen_addr__parse(cfg->status_listen, &ss, NULL, c->err, c->errlen))
		return fail(c, top_key_node(c, root, "status_listen"), "'status_listen': %s",
			    c->err ? c->err : "invalid");
	loopback = listen_addr__is_loopback(&ss);
	if (!loopback && !cfg->api_token_file[0])
		return fail(c, top_key_node(c, root, "status_listen"),
			    "'status_listen' %s is not a loopback address: set 'api_token_file'",
			    cfg->status_listen);

	for (int i = 0; i < cfg->nservices; i++) {
		struct cfg_service *s = &cfg->services[i];
		yaml_node_t *list = NULL;
		__u32 total = 0;
		int n;

		if (s->nnodes < 0) {
			list = &c->doc->nodes.start[-s->nnodes - 1];
			n = list->data.sequence.items.top - list->data.sequence.items.start;
		} else {
			n = cfg->nnodes;
		}
		s->nodes = calloc(n ? n : 1, sizeof(int));
		if (!s->nodes)
			return -ENOMEM;
		s->nnodes = 0;
		for (int j = 0; j < n; j++) {
			int idx = j;

			if (list) {
				yaml_node_t *m = yaml_document_get_node(
					c->doc, list->data.sequence.items.start[j]);
				const char *name = scalar(m);

				idx = name ? config__node_index(cfg, name) : -1;
				if (idx < 0)
					return fail(c, m, "service '%s' names unknown node '%s'",
						    s->name, name ? name : "(not a scalar)");
				for (int q = 0; q < s->nnodes; q++)
					if (s->nodes[q] == idx)
						return fail(c, m, "service '%s' lists node '%s' twice",
							    s->name, name);
			}
			s->nodes[s->nnodes++] = idx;
			total += cfg->nodes[idx].weight;
			if (cfg->fwd_mode == AIBL_FWD_IPIP && s->family == AIBL_AF_INET6 &&
			    cfg->nodes[idx].family == AIBL_AF_INET)
				return fail_at(c, s->line,
					       "service '%s': an IPv6 VIP cannot be tunnelled to "
					       "IPv4 node '%s'",
					       s->name, cfg->nodes[idx].name);
		}
		if (s->nnodes == 0 || total == 0)
			return fail_at(c, s->line, "service '%s' has no node with a weight above 0",
				       s->name);
	}
	return 0;
}

int config__parse(struct config *cfg, const char *name, const char *text, size_t len, char *err,
		  size_t errlen)
{
	struct pctx c = { .name = name, .err = err, .errlen = errlen, .cfg = cfg };
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int ret;

	config__defaults(cfg);
	if (err && errlen)
		err[0] = 0;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s:%zu: YAML syntax error: %s%s%s", name,
			 parser.problem_mark.line + 1, parser.problem ? parser.problem : "?",
			 parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	c.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (!root) {
		ret = fail_at(&c, 1, "empty configuration");
		goto out;
	}
	ret = walk_map(&c, root, top_keys, cfg, "the top level");
	if (!ret)
		ret = resolve(&c, root);
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (ret)
		config__free(cfg);
	else
		snprintf(cfg->path, sizeof(cfg->path), "%s", name);
	return ret;
}

int config__load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int ret;

	config__defaults(cfg);
	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-ret));
		return ret;
	}
	buf = malloc(1 << 20);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	len = fread(buf, 1, (1 << 20) - 1, f);
	if (ferror(f)) {
		ret = -EIO;
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	if (!feof(f)) {
		ret = -E2BIG;
		snprintf(err, errlen, "%s: larger than 1 MiB", path);
		goto out;
	}
	buf[len] = 0;
	ret = config__parse(cfg, path, buf, len, err, errlen);
out:
	free(buf);
	fclose(f);
	return ret;
}
