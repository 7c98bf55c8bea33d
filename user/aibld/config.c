// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * YAML configuration through libyaml's document API: the whole file is
 * loaded as a node tree (each node knows its line), then walked with one
 * key table per mapping. A table row says where a key lands in the struct,
 * its type, its range and a line of help, so the defaults
 * (config__defaults), the parser, the error messages and the documented
 * keys (tests/unit/test_config.c holds docs/aibld.md's key tables equal to
 * this one) cannot drift apart. Addresses and MACs are parsed here, once,
 * into binary fields: nothing downstream parses a config string again.
 * Any problem stops the parse with "FILE:LINE: problem" and the caller's
 * running config is untouched.
 */
#include <ctype.h>
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
#include "addr.h"
#include "config.h"
#include "listen.h"
#include "names.h"
#include "mac.h"
#include "plan.h"

/* K_ENUM tables: indexed by value, NULL after the last (aibl.h's X-macros) */
#define AIBL_X_NAME(n, v, s) [v] = s,
static const char *const policy_names[AIBL_POL__MAX + 1] = {AIBL_POLICIES(AIBL_X_NAME)};
static const char *const accel_names[AIBL_ACCEL__MAX + 1] = {AIBL_ACCELS(AIBL_X_NAME)};
static const char *const fwd_names[AIBL_FWD__MAX + 1] = {AIBL_FWD_MODES(AIBL_X_NAME)};
static const char *const key_names[AIBL_KEY__MAX + 1] = {AIBL_SESSION_KEYS(AIBL_X_NAME)};
#undef AIBL_X_NAME
static const char *const xdp_mode_names[] = {"native", "generic", NULL};
static const char *const proto_names[] = {"tcp", "udp", NULL};
static const int proto_values[] = {IPPROTO_TCP, IPPROTO_UDP};

static int parse_uint(const char *s, unsigned long long *out);

const char *config__policy_name(int policy)
{
	return policy >= 0 && policy < AIBL_POL__MAX ? policy_names[policy] : "?";
}

const char *config__accel_name(int accel)
{
	return accel >= 0 && accel < AIBL_ACCEL__MAX ? accel_names[accel] : "any";
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
	cfg->max_conn_rate = CFG_CONN_RATE_AUTO;
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
	    .pin_spill_ms = 500,
	    .affinity_ms = 2000,
	    .stale_ms = 0,
	    .cold_start_after_ms = 60000,
	    .background_load_ms = 300000,
	    .background_unload_ms = 600000,
	};
	snprintf(cfg->etcd.prefix, sizeof(cfg->etcd.prefix), "/aibl");
	cfg->etcd.lease_ttl_s = 2;
	cfg->etcd.cost_step = 4;
	cfg->etcd.compact_interval_s = 300;
	snprintf(cfg->bgp.bird_socket, sizeof(cfg->bgp.bird_socket), "/run/bird/bird.ctl");
	snprintf(cfg->bgp.birdc, sizeof(cfg->bgp.birdc), "birdc");
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

/*
 * Key kinds, after xdp-tools' params.h: each parses the text once into the
 * field's own type, so nothing downstream parses a config string again.
 */
enum ktype {
	K_STR,	/* char[size] */
	K_UINT, /* __u16 or __u32 (size), min .. max */
	K_DBL,	/* double, min .. max */
	K_BOOL, /* bool: true/yes/on, false/no/off */
	K_ENUM, /* int: the index of the name in names (proto: its IPPROTO_ value) */
	K_IP,	/* struct cfg_addr, IPv4 or IPv6 */
	K_IP4,	/* struct cfg_addr, IPv4 */
	K_IP6,	/* struct cfg_addr, IPv6 */
	K_MAC,	/* struct cfg_mac */
	K_MAP,	/* a mapping of the keys in sub, into the struct at off */
	K_FUNC, /* anything else: fn (sub: the keys of a list's items) */
};

struct kspec;
typedef int (*kfunc_t)(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj);

struct kspec {
	const char *key;
	enum ktype type;
	size_t off;
	size_t size;		  /* K_STR buffer size, K_UINT width in bytes */
	double min, max;	  /* K_UINT, K_DBL */
	const char *const *names; /* K_ENUM */
	const struct kspec *sub;  /* K_MAP, K_FUNC over a list of mappings */
	bool required;
	bool nonempty;	  /* K_STR: "" is refused */
	kfunc_t fn;	  /* K_FUNC */
	const char *help; /* one line; docs/aibld.md has the whole story */
};

/* a key stored in field f of struct s */
#define KS(k, t, s, f, h, ...)                                                                     \
	{                                                                                          \
		.key = k, .type = t, .off = offsetof(s, f), .size = sizeof(((s *)0)->f),           \
		.help = h, __VA_ARGS__                                                             \
	}
/* a key handled by a function */
#define KF(k, f, h, ...)                                                                           \
	{                                                                                          \
		.key = k, .type = K_FUNC, .fn = f, .help = h, __VA_ARGS__                          \
	}

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

	/* strtoull skips blanks and takes a sign: " -1" would wrap */
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

static int walk_map(struct pctx *c, yaml_node_t *map, const struct kspec *specs, void *obj,
		    const char *what);

/* an address: the family the kind allows; "" leaves an optional key unset */
static int set_ip(struct pctx *c, const struct kspec *k, yaml_node_t *v, const char *s,
		  struct cfg_addr *a)
{
	static const char *const what[] = {
	    [K_IP] = "an IPv4 or IPv6", [K_IP4] = "an IPv4", [K_IP6] = "an IPv6"};
	__u8 want = k->type == K_IP4 ? AIBL_AF_INET : k->type == K_IP6 ? AIBL_AF_INET6 : 0;

	if (!*s && !k->required) {
		memset(a, 0, sizeof(*a));
		return 0;
	}
	if (strlen(s) >= sizeof(a->text) || aibl_addr__parse(s, &a->addr, &a->family) ||
	    (want && a->family != want)) {
		memset(a, 0, sizeof(*a));
		return fail(c, v, "'%s' is not %s address: '%s'", k->key, what[k->type], s);
	}
	strcpy(a->text, s);
	return 0;
}

static int set_value(struct pctx *c, const struct kspec *k, yaml_node_t *v, void *obj)
{
	char *field = (char *)obj + k->off;
	const char *s = scalar(v);
	struct cfg_mac *mac;
	unsigned long long u;
	char list[128];
	double d;
	char *end;

	if (k->type == K_FUNC)
		return k->fn(c, k, v, obj);
	if (k->type == K_MAP) {
		char what[64];

		snprintf(what, sizeof(what), "'%s'", k->key);
		return walk_map(c, v, k->sub, field, what);
	}
	if (!s)
		return fail(c, v, "'%s' must be a single value, not a list or mapping", k->key);

	switch (k->type) {
	case K_STR:
		if (k->nonempty && !s[0])
			return fail(c, v, "'%s' must not be empty", k->key);
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
	case K_IP:
	case K_IP4:
	case K_IP6:
		return set_ip(c, k, v, s, (struct cfg_addr *)field);
	case K_MAC:
		mac = (struct cfg_mac *)field;
		mac->set = false;
		if (!*s)
			return 0;
		if (aibl_mac__parse(s, mac->b))
			return fail(c, v, "'%s' is not a MAC address like 02:00:00:00:00:01: '%s'",
				    k->key, s);
		mac->set = true;
		return 0;
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
    KS("fail_after", K_UINT, struct config, fail_after,
       "consecutive failed polls that mark a node unhealthy or down", .min = 1, .max = 100),
    KS("rise_after", K_UINT, struct config, rise_after,
       "consecutive good polls that mark it up again", .min = 1, .max = 100),
    {}};

/* map sizes: applied when aibld creates the maps; pinned maps keep theirs */
static const struct kspec maps_keys[] = {KS("conns", K_UINT, struct config, map_conns,
					    "connection-table entries", .min = 1024,
					    .max = 67108864),
					 KS("pins", K_UINT, struct config, map_pins,
					    "session-pin entries", .min = 1024, .max = 16777216),
					 {}};

static const struct kspec tables_keys[] = {
    KS("min_rewrite_interval_ms", K_UINT, struct config, min_rewrite_interval_ms,
       "least time between rewrites of a table whose weights merely drifted", .min = 0,
       .max = 600000),
    KS("hysteresis_pct", K_UINT, struct config, hysteresis_pct,
       "change of a weight, in percent, that replaces the applied one", .min = 0, .max = 100),
    {}};

static const struct kspec pins_keys[] = {
    KS("max_per_node", K_UINT, struct config, pins_per_node, "best-scored hints kept per node",
       .min = 0, .max = AIBL_MAX_PINS),
    KS("max_per_service", K_UINT, struct config, pins_per_service,
       "best-scored pins kept per service", .min = 0, .max = AIBL_MAX_PINS),
    KS("max_ttl_ms", K_UINT, struct config, pin_max_ttl_ms, "cap on a hint's TTL", .min = 1000,
       .max = 86400000),
    {}};

static const struct kspec lt_keys[] = {
    KS("smoothing", K_DBL, struct config, lt_smoothing,
       "EWMA weight of the newest time-to-first-token sample", .min = 0.01, .max = 1),
    KS("ms_per_flow", K_DBL, struct config, lt_ms_per_flow,
       "milliseconds of TTFT that cost as much as one active flow", .min = 0.1, .max = 100000),
    {}};

#define KAI(k, t, h, ...) KS(#k, t, struct cfg_ai, k, h, __VA_ARGS__)
static const struct kspec ai_keys[] = {
    KAI(util_weight, K_DBL, "weight of GPU utilisation in the load", .min = 0, .max = 100),
    KAI(mem_weight, K_DBL, "weight of GPU memory in use", .min = 0, .max = 100),
    KAI(temp_weight, K_DBL, "weight of temperature", .min = 0, .max = 100),
    KAI(queue_weight, K_DBL, "weight of queue depth", .min = 0, .max = 100),
    KAI(kv_weight, K_DBL, "weight of KV-cache usage", .min = 0, .max = 100),
    KAI(inflight_weight, K_DBL, "weight of in-flight requests", .min = 0, .max = 100),
    KAI(temp_soft_c, K_DBL, "temperature where pressure starts", .min = 0, .max = 200),
    KAI(temp_hard_c, K_DBL, "temperature of full pressure: overloaded", .min = 1, .max = 200),
    KAI(queue_ref, K_DBL, "queue depth of full pressure: overloaded", .min = 1, .max = 1e6),
    KAI(inflight_ref, K_DBL, "in-flight requests of full pressure", .min = 1, .max = 1e6),
    KAI(overload_kv, K_DBL, "KV-cache usage at which a node is overloaded", .min = 0.01, .max = 1),
    KAI(min_headroom, K_DBL, "floor of 1 - load, so a busy node keeps a share", .min = 0.001,
	.max = 1),
    KAI(cold_start_factor, K_DBL, "weight factor of a node that must load the model", .min = 0.001,
	.max = 1),
    KAI(load_cost, K_DBL, "p2c cost of a fully loaded node, in active flows", .min = 0, .max = 1e6),
    KAI(saturation_queue, K_DBL, "waiting requests at which a node is saturated", .min = 1,
	.max = 1e6),
    KAI(latency_spread, K_DBL, "no new sessions above this many times the best latency", .min = 1,
	.max = 1000),
    KAI(latency_slack_ms, K_DBL, "added to that bound so small figures do not split nodes",
	.min = 0, .max = 1e6),
    KAI(pin_spill_ms, K_UINT,
	"a pinned session's request goes elsewhere when expected this much sooner there; 0: never",
	.min = 0, .max = 65535),
    KAI(affinity_ms, K_UINT,
	"a client's new flows follow its last p2c choice this long (spill: pin_spill_ms), "
	"where its nodes find prompts' prefixes cached; 0: off",
	.min = 0, .max = 600000),
    KAI(stale_ms, K_UINT, "a report older than this is unknown; 0: 3 poll intervals", .min = 0,
	.max = 3600000),
    KAI(cold_start_after_ms, K_UINT, "saturation of every resident node that loads another",
	.min = 0, .max = 86400000),
    KAI(background_load_ms, K_UINT,
	"a cold start beside resident nodes loads in the background and takes flows once "
	"resident, or after this long; 0: its flows wait for the load",
	.min = 0, .max = 86400000),
    KAI(background_unload_ms, K_UINT,
	"a model aibld loaded beside resident nodes is unloaded once they have carried the "
	"service's load without it this long; 0: never",
	.min = 0, .max = 86400000),
    {}};
#undef KAI

/* cluster mode: docs/cluster.md */
static const struct kspec etcd_keys[] = {
    KS("endpoint", K_STR, struct cfg_etcd, endpoint,
       "etcd v3 JSON gateway URL; the section turns cluster mode on", .required = true,
       .nonempty = true),
    KS("prefix", K_STR, struct cfg_etcd, prefix, "key prefix of this ECMP group", .nonempty = true),
    KS("name", K_STR, struct cfg_etcd, name, "this balancer's unique name in the group",
       .required = true, .nonempty = true),
    KS("api_url", K_STR, struct cfg_etcd, api_url,
       "URL at which peers reach this balancer's API; none: no partition check"),
    KS("lease_ttl_s", K_UINT, struct cfg_etcd, lease_ttl_s,
       "etcd lease TTL: planner takeover and balancer liveness", .min = 1, .max = 600),
    KS("cost_step", K_UINT, struct cfg_etcd, cost_step,
       "p2c cost (active flows) a node's cost in the plan must move by", .min = 0, .max = 1000000),
    KS("compact_interval_s", K_UINT, struct cfg_etcd, compact_interval_s,
       "the planner compacts etcd's history this often, to the revision of one interval before; "
       "0: never (an etcd that compacts itself)",
       .min = 0, .max = 86400),
    {}};

static const struct kspec bgp_keys[] = {
    KS("include", K_STR, struct cfg_bgp, include,
       "BIRD include file aibld writes the announced VIP routes to", .required = true,
       .nonempty = true),
    KS("bird_socket", K_STR, struct cfg_bgp, bird_socket, "BIRD control socket (birdc -s)",
       .nonempty = true),
    KS("birdc", K_STR, struct cfg_bgp, birdc, "birdc program that reconfigures BIRD",
       .nonempty = true),
    {}};

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
			return fail(c, m, "model names must be 1 to %d characters",
				    AIBL_MODEL_LEN - 1);
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
    KS("name", K_STR, struct cfg_node, name, "unique name, the node's identity everywhere",
       .required = true),
    KS("address", K_IP, struct cfg_node, address, "address packets are tunnelled to",
       .required = true),
    KS("agent", K_STR, struct cfg_node, agent, "agent base URL; none: a TCP health check"),
    KS("accelerator", K_ENUM, struct cfg_node, accel, "the node's accelerator",
       .names = accel_names),
    KS("weight", K_UINT, struct cfg_node, weight, "static weight, 0: standby", .min = 0,
       .max = 65535),
    KS("health_port", K_UINT, struct cfg_node, health_port,
       "TCP health-check port; default: its first service's", .min = 1, .max = 65535),
    KF("models", node_models, "models it serves without an agent, or can load with one"),
    {}};

static const struct kspec svc_keys[] = {
    KS("name", K_STR, struct cfg_service, name, "unique service name", .required = true),
    KS("vip", K_IP, struct cfg_service, vip, "the virtual IP address", .required = true),
    KS("port", K_UINT, struct cfg_service, port, "port, 0: every port of the VIP", .min = 0,
       .max = 65535, .required = true),
    KS("proto", K_ENUM, struct cfg_service, proto, "tcp or udp", .names = proto_names),
    KS("model", K_STR, struct cfg_service, model, "model the service serves"),
    KS("accelerator", K_ENUM, struct cfg_service, accel,
       "only nodes with this accelerator; default: any", .names = accel_names),
    KS("policy", K_ENUM, struct cfg_service, policy, "how nodes are weighted",
       .names = policy_names),
    KS("session_key", K_ENUM, struct cfg_service, session_key, "what a new flow is hashed on",
       .names = key_names),
    KS("conntrack", K_BOOL, struct cfg_service, conntrack,
       "false: stateless, every packet takes the table"),
    KS("memory_mb", K_UINT, struct cfg_service, memory_mb,
       "MiB the model takes on a node: ai loads it only where that much GPU memory is free; "
       "0: unknown",
       .min = 0, .max = 16777216),
    KF("nodes", svc_nodes, "names of the nodes that serve it; default: all"),
    {}};

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

/* the line of key in mapping m, m's own when it is absent */
static const yaml_node_t *key_node(struct pctx *c, const yaml_node_t *m, const char *key)
{
	if (m->type != YAML_MAPPING_NODE)
		return m;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);

		if (scalar(kn) && !strcmp(scalar(kn), key))
			return kn;
	}
	return m;
}

static int check_name(struct pctx *c, const yaml_node_t *m, const char *what, const char *name)
{
	if (!name[0])
		return fail(c, m, "%s name must not be empty", what);
	if (!aibl_name__valid(name, AIBL_NAME_LEN))
		return fail(c, key_node(c, m, "name"),
			    "%s name '%s' has a character outside %s (names appear in URLs, "
			    "logs and tables unquoted)",
			    what, name, AIBL_NAME_CHARSET);
	return 0;
}

/*
 * An agent URL is http:// or https://, a host, an optional port and path;
 * nothing libcurl would read as another protocol, a file, credentials or
 * a query that /v1/report would be appended to. The poller also limits
 * libcurl to HTTP(S) (CURLOPT_PROTOCOLS_STR).
 */
static const char *agent_url_problem(const char *u)
{
	const char *host, *end;

	if (!strncasecmp(u, "http://", 7))
		host = u + 7;
	else if (!strncasecmp(u, "https://", 8))
		host = u + 8;
	else
		return "must start with http:// or https://";
	for (const char *p = u; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return "has a space, control or non-ASCII character";
	end = host + strcspn(host, "/");
	if (end == host)
		return "has no host";
	if (memchr(host, '@', end - host))
		return "must not carry credentials (user@)";
	if (strpbrk(u, "?#"))
		return "must not have a query or fragment ('?', '#')";
	return NULL;
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
		err = walk_map(c, m, k->sub, n, what);
		if (err)
			return err;
		err = check_name(c, m, "node", n->name);
		if (err)
			return err;
		if (n->agent[0]) {
			const char *why = agent_url_problem(n->agent);

			if (why)
				return fail(c, key_node(c, m, "agent"),
					    "node '%s': agent URL '%s' %s", n->name, n->agent, why);
		}
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
		err = walk_map(c, m, k->sub, s, what);
		if (err)
			return err;
		err = check_name(c, m, "service", s->name);
		if (err)
			return err;
		for (int j = 0; j < i; j++) {
			struct cfg_service *o = &cfg->services[j];

			if (!strcmp(o->name, s->name))
				return fail(c, m, "duplicate service name '%s'", s->name);
			if (o->vip.family == s->vip.family && o->port == s->port &&
			    o->proto == s->proto &&
			    !memcmp(&o->vip.addr, &s->vip.addr, sizeof(s->vip.addr)))
				return fail(c, m,
					    "service '%s' has the same VIP, port and proto as '%s'",
					    s->name, o->name);
		}
	}
	return 0;
}

/* a section whose keys are in struct config (or in its member f) */
#define KMAP(k, keys, h)                                                                           \
	{                                                                                          \
		.key = k, .type = K_MAP, .sub = keys, .help = h                                    \
	}
#define KMAP_IN(k, f, keys, h)                                                                     \
	{                                                                                          \
		.key = k, .type = K_MAP, .off = offsetof(struct config, f), .sub = keys, .help = h \
	}

static const struct kspec top_keys[] = {
    KS("interface", K_STR, struct config, interface, "interface the XDP program attaches to",
       .required = true),
    KS("xdp_mode", K_ENUM, struct config, xdp_mode, "native (driver) or generic (skb)",
       .names = xdp_mode_names),
    KS("forwarding", K_ENUM, struct config, fwd_mode,
       "ipip (tunnel) or l2dsr (MAC rewrite; nodes hold the VIP)", .names = fwd_names),
    KS("bpffs", K_STR, struct config, bpffs, "where the maps and the program are pinned"),
    KS("poll_interval_ms", K_UINT, struct config, poll_interval_ms, "node polls and recompute",
       .min = 10, .max = 3600000),
    KS("poll_timeout_ms", K_UINT, struct config, poll_timeout_ms, "per poll, HTTP or TCP connect",
       .min = 10, .max = 600000),
    KS("status_listen", K_STR, struct config, status_listen,
       "HTTP API address, HOST:PORT or [V6]:PORT"),
    KS("agent_key_file", K_STR, struct config, agent_key_file,
       "HMAC key shared with the agents: reports must be signed"),
    KS("api_token_file", K_STR, struct config, api_token_file, "bearer token for drain/undrain"),
    KS("hash_seed", K_UINT, struct config, hash_seed,
       "seed of the flow hash and tables, the same across an ECMP group", .min = 0,
       .max = UINT32_MAX),
    KS("mtu", K_UINT, struct config, mtu, "egress MTU checked after encapsulation, 0: none",
       .min = 0, .max = 65535),
    KS("icmp_too_big", K_BOOL, struct config, icmp_too_big,
       "answer oversize packets with ICMP too-big"),
    KS("flow_cache", K_BOOL, struct config, flow_cache,
       "established flows take the per-CPU flow cache first"),
    KS("max_conn_rate", K_UINT, struct config, max_conn_rate,
       "connection-table inserts per second per CPU, 0: unlimited; default: from maps.conns",
       .min = 0, .max = 100000000),
    KS("tunnel_source4", K_IP4, struct config, tunnel_source4,
       "outer IPv4 source; default: the interface's first"),
    KS("tunnel_source6", K_IP6, struct config, tunnel_source6,
       "outer IPv6 source; default: the interface's first global"),
    KS("tunnel_source_hash_bits", K_UINT, struct config, tunnel_source_hash_bits,
       "low bits of the outer IPv4 source taken from the flow hash", .min = 0, .max = 16),
    KS("gateway_mac", K_MAC, struct config, gateway_mac,
       "next hop MAC when no neighbour or FIB entry gives one"),
    KMAP("health", health_keys, "the circuit breaker"),
    KMAP("maps", maps_keys, "map sizes, when aibld creates the maps"),
    KMAP("tables", tables_keys, "table rewrites"),
    KMAP("pins", pins_keys, "session pins from cache hints"),
    KMAP("least_time", lt_keys, "the least_time policy"),
    KMAP_IN("ai", ai, ai_keys, "the inference-aware policy"),
    KMAP_IN("etcd", etcd, etcd_keys, "cluster mode: shared plan in etcd"),
    KMAP_IN("bgp", bgp, bgp_keys, "cluster mode: VIPs announced through BIRD"),
    KF("nodes", sec_nodes, "the inference nodes", .sub = node_keys, .required = true),
    KF("services", sec_services, "the services (VIPs)", .sub = svc_keys, .required = true),
    {}};

static int for_each_key(const struct kspec *specs, const char *prefix,
			int (*fn)(const char *path, const char *help, void *arg), void *arg)
{
	char path[128];
	int err;

	for (int i = 0; specs[i].key; i++) {
		if (specs[i].sub) {
			err = for_each_key(specs[i].sub, specs[i].key, fn, arg);
		} else {
			snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
				 specs[i].key);
			err = fn(path, specs[i].help, arg);
		}
		if (err)
			return err;
	}
	return 0;
}

int config__for_each_key(int (*fn)(const char *path, const char *help, void *arg), void *arg)
{
	return for_each_key(top_keys, "", fn, arg);
}

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
	bool loopback;

	if (cfg->ai.temp_soft_c >= cfg->ai.temp_hard_c)
		return fail(c, top_key_node(c, root, "ai"),
			    "'ai.temp_soft_c' must be below 'ai.temp_hard_c'");
	if (!cfg->interface[0])
		return fail(c, top_key_node(c, root, "interface"), "'interface' must not be empty");
	/* the parser's reason goes to c->err, which fail() reads before rewriting it */
	if (listen_addr__parse(cfg->status_listen, &ss, NULL, c->err, c->errlen))
		return fail(c, top_key_node(c, root, "status_listen"), "'status_listen': %s",
			    c->err ? c->err : "invalid");
	if (cfg->etcd.endpoint[0]) {
		const char *why = agent_url_problem(cfg->etcd.endpoint);

		if (why)
			return fail(c, top_key_node(c, root, "etcd"), "'etcd.endpoint' '%s' %s",
				    cfg->etcd.endpoint, why);
		if (cfg->etcd.api_url[0] && (why = agent_url_problem(cfg->etcd.api_url)))
			return fail(c, top_key_node(c, root, "etcd"), "'etcd.api_url' '%s' %s",
				    cfg->etcd.api_url, why);
		/* it is a key and a value in etcd, and peers' logs name it */
		if (!aibl_name__valid(cfg->etcd.name, AIBL_NAME_LEN))
			return fail(c, top_key_node(c, root, "etcd"),
				    "'etcd.name' '%s' has a character outside %s", cfg->etcd.name,
				    AIBL_NAME_CHARSET);
	}
	/* every balancer writes every pin of the plan: one whose map holds
	 * fewer failed the rest, its tables differed from the plan, and it
	 * stayed fenced */
	if (cfg->etcd.endpoint[0] && cfg->map_pins < PLAN_MAX_PINS)
		return fail(c, top_key_node(c, root, "maps"),
			    "'maps.pins' %u is below the %d pins a cluster plan carries: with "
			    "'etcd' it must be at least %d",
			    cfg->map_pins, PLAN_MAX_PINS, PLAN_MAX_PINS);
	if (cfg->bgp.include[0] && !cfg->etcd.endpoint[0])
		return fail(
		    c, top_key_node(c, root, "bgp"),
		    "'bgp' needs the 'etcd' section: a VIP is announced only with the plan");
	/* the lease is renewed once a control loop (cluster__tick): a TTL that
	 * two loops do not fit in expires between renewals, and the planner
	 * key and this balancer's status come and go */
	if (cfg->etcd.endpoint[0] &&
	    (__u64)cfg->etcd.lease_ttl_s * 1000 <
		2ULL * (cfg->poll_interval_ms > cfg->poll_timeout_ms ? cfg->poll_interval_ms
								     : cfg->poll_timeout_ms))
		return fail(c, top_key_node(c, root, "etcd"),
			    "'etcd.lease_ttl_s' %u is renewed once a loop: it must be at least "
			    "two of 'poll_interval_ms' (and of 'poll_timeout_ms'), %u and %u",
			    cfg->etcd.lease_ttl_s, cfg->poll_interval_ms, cfg->poll_timeout_ms);
	/* a good agent's reports come up to a round and a timeout apart (a
	 * round lasts the interval, or the timeout where that is longer): a
	 * shorter age made every one unknown between two polls, and each
	 * recompute in that gap (a drain, a neighbour event) took the nodes
	 * out of ai's ready class and put them back at the next */
	if (cfg->ai.stale_ms &&
	    (__u64)cfg->ai.stale_ms < (__u64)(cfg->poll_interval_ms > cfg->poll_timeout_ms
						  ? cfg->poll_interval_ms
						  : cfg->poll_timeout_ms) +
					  cfg->poll_timeout_ms)
		return fail(c, top_key_node(c, root, "ai"),
			    "'ai.stale_ms' %u is shorter than polls can be apart: it must be 0 or "
			    "at least the longer of 'poll_interval_ms' and 'poll_timeout_ms' "
			    "(%u, %u) plus 'poll_timeout_ms'",
			    cfg->ai.stale_ms, cfg->poll_interval_ms, cfg->poll_timeout_ms);
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
			const struct cfg_node *cn;
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
						return fail(c, m,
							    "service '%s' lists node '%s' twice",
							    s->name, name);
			}
			s->nodes[s->nnodes++] = idx;
			cn = &cfg->nodes[idx];
			if (config__may_serve(s, cn))
				total += cn->weight;
			if (cfg->fwd_mode == AIBL_FWD_IPIP && s->vip.family == AIBL_AF_INET6 &&
			    cn->address.family == AIBL_AF_INET)
				return fail_at(c, s->line,
					       "service '%s': an IPv6 VIP cannot be tunnelled to "
					       "IPv4 node '%s'",
					       s->name, cn->name);
			if (cfg->fwd_mode == AIBL_FWD_IPIP && cfg->mtu) {
				/* a too-big reply must advertise what the client
				 * may use: IPv6's minimum link MTU, IPv4's 576 */
				unsigned int outer = cn->address.family == AIBL_AF_INET ? 20 : 40;
				unsigned int least =
				    (s->vip.family == AIBL_AF_INET6 ? 1280 : 576) + outer;

				if (cfg->mtu < least)
					return fail(
					    c, top_key_node(c, root, "mtu"),
					    "'mtu' %u leaves service '%s' less than %u bytes "
					    "inside the %u-byte tunnel header to node '%s': "
					    "at least %u, or 0 for no check",
					    cfg->mtu, s->name, least - outer, outer, cn->name,
					    least);
			}
		}
		if (s->nnodes == 0 || total == 0)
			return fail_at(c, s->line,
				       "service '%s' has no node with a weight above 0%s%s",
				       s->name, s->accel < 0 ? "" : " and accelerator ",
				       s->accel < 0 ? "" : accel_names[s->accel]);
		/* stateless: every packet takes the service's choice afresh, and
		 * only the hash choice is the same for every packet of a flow */
		if (!s->conntrack && s->proto == IPPROTO_TCP && s->policy != AIBL_POL_HASH)
			return fail_at(c, s->line,
				       "service '%s': 'conntrack: false' needs 'policy: hash' for "
				       "TCP (any other policy chooses anew for every packet and "
				       "splits a connection across nodes)",
				       s->name);
	}
	/* a node without an agent is judged by a TCP connect alone: one that
	 * serves and has no port to connect to would never be checked */
	for (int i = 0; i < cfg->nnodes; i++) {
		bool serves = false;

		for (int s = 0; s < cfg->nservices && !serves; s++)
			for (int k = 0; k < cfg->services[s].nnodes && !serves; k++)
				serves = cfg->services[s].nodes[k] == i;
		if (serves && !config__checkable(cfg, i))
			return fail_at(c, cfg->nodes[i].line,
				       "node '%s' has no agent and no TCP service port to check "
				       "(its services are UDP or every port): set 'health_port'",
				       cfg->nodes[i].name);
	}
	return 0;
}

bool config__may_serve(const struct cfg_service *svc, const struct cfg_node *c)
{
	return c->weight && (svc->accel < 0 || c->accel == svc->accel);
}

__u16 config__check_port(const struct config *cfg, int idx)
{
	if (cfg->nodes[idx].health_port)
		return cfg->nodes[idx].health_port;
	for (int s = 0; s < cfg->nservices; s++)
		for (int k = 0; k < cfg->services[s].nnodes; k++)
			if (cfg->services[s].nodes[k] == idx && cfg->services[s].port &&
			    cfg->services[s].proto == IPPROTO_TCP)
				return cfg->services[s].port;
	return 0;
}

bool config__checkable(const struct config *cfg, int idx)
{
	return cfg->nodes[idx].agent[0] || config__check_port(cfg, idx);
}

int config__parse(struct config *cfg, const char *name, const char *text, size_t len, char *err,
		  size_t errlen)
{
	struct pctx c = {.name = name, .err = err, .errlen = errlen, .cfg = cfg};
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
	{
		/* one document: what follows a '---' would otherwise go unread,
		 * its errors and unknown keys unreported */
		yaml_document_t more;

		if (!yaml_parser_load(&parser, &more)) {
			ret = fail_at(&c, parser.problem_mark.line + 1, "YAML syntax error: %s",
				      parser.problem ? parser.problem : "?");
			goto out;
		}
		if (yaml_document_get_root_node(&more)) {
			ret = fail_at(&c, more.start_mark.line + 1,
				      "a second YAML document ('---'): the configuration is one");
			yaml_document_delete(&more);
			goto out;
		}
		yaml_document_delete(&more);
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
