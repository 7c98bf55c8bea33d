// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Agent report <-> JSON (schema 1), through jansson.
 *
 * The parser is the controller's trust boundary towards every node: it
 * checks the type of every field it knows, every range that has a meaning
 * (percentages, ratios, ports, addresses) and every limit of report.h, and
 * refuses the whole report with a one-line reason rather than keeping part
 * of it. Unknown members are ignored so that a newer agent that adds a
 * field still talks to an older controller; a different "schema" is not.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <jansson.h>
#include "addr.h"
#include "report.h"

const char *const agent_report__decap_names[AIBL_NCNT__MAX] = {
#define AIBL_X_NAME(n, s, d) s,
    AIBL_NODE_COUNTERS(AIBL_X_NAME)
#undef AIBL_X_NAME
};

int64_t agent_report__decap_dropped(const struct agent_report *r)
{
	int64_t sum = 0;

	if (!r->decap)
		return -1;
	for (int i = 0; i < AIBL_NCNT__MAX; i++)
		if (!strncmp(agent_report__decap_names[i], "drop_", 5) && r->decap_counters[i] > 0)
			sum = agent_report__count_add(sum, r->decap_counters[i]);
	return sum;
}

void agent_report__init(struct agent_report *r)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < AIBL_NCNT__MAX; i++)
		r->decap_counters[i] = -1;
	r->schema = AGENT_REPORT_SCHEMA;
	r->queue_depth = -1;
	r->in_flight = -1;
	r->kv_cache_usage = -1;
	r->prefix_cache_hit_rate = -1;
	r->ttft_avg_ms = r->e2e_avg_ms = r->run_avg_ms = r->since_finish_ms = -1;
	r->probe_ms_per_token = r->slots = -1;
	r->prefill_avg_ms = r->prefill_tokens_avg = r->prompt_tokens_avg = -1;
}

void agent_report__free(struct agent_report *r)
{
	free(r->hints);
	r->hints = NULL;
	r->nhints = 0;
}

/* ---- parsing ---- */

struct ar_ctx {
	char *err;
	size_t errlen;
};

static int ar_fail(struct ar_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ar_fail(struct ar_ctx *c, int code, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Optional string member copied into dst[size]; absent leaves dst alone. */
static int ar_str(struct ar_ctx *c, json_t *obj, const char *path, const char *key, char *dst,
		  size_t size, bool required)
{
	json_t *v = json_object_get(obj, key);
	size_t len;

	if (!v) {
		if (required)
			return ar_fail(c, -EINVAL, "%s.%s: missing", path, key);
		return 0;
	}
	if (!json_is_string(v))
		return ar_fail(c, -EINVAL, "%s.%s: expected a string", path, key);
	len = json_string_length(v);
	if (len >= size)
		return ar_fail(c, -E2BIG, "%s.%s: %zu bytes, limit %zu", path, key, len, size - 1);
	if (memchr(json_string_value(v), '\0', len))
		return ar_fail(c, -EINVAL, "%s.%s: contains a NUL byte", path, key);
	memcpy(dst, json_string_value(v), len + 1);
	return 0;
}

/*
 * Optional number member in [lo, hi]. JSON has no NaN; the agent writes
 * null for "unknown", which reads as unknown_val (only where the field has
 * one: allow_null).
 */
/*
 * A number as the peer wrote it, near enough: the shortest %g that reads
 * back as the same double. Plain %g rounds to 6 digits, so 1.0000001 out
 * of [0, 1] would be reported as "1 out of range [0, 1]".
 */
static const char *ar_numstr(double d, char *buf, size_t len)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return buf;
}

static int ar_num(struct ar_ctx *c, json_t *obj, const char *path, const char *key, double *dst,
		  double lo, double hi, bool allow_null, double unknown_val)
{
	json_t *v = json_object_get(obj, key);
	char nb[32];
	double d;

	if (!v)
		return 0;
	if (json_is_null(v) && allow_null) {
		*dst = unknown_val;
		return 0;
	}
	if (!json_is_number(v))
		return ar_fail(c, -EINVAL, "%s.%s: expected a number", path, key);
	d = json_number_value(v);
	/* -1 is the schema's "unknown" for the fields that allow null */
	if (allow_null && d == -1) {
		*dst = -1;
		return 0;
	}
	if (!(d >= lo && d <= hi))
		return ar_fail(c, -EINVAL, "%s.%s: %s out of range [%g, %g]", path, key,
			       ar_numstr(d, nb, sizeof(nb)), lo, hi);
	*dst = d;
	return 0;
}

static int ar_int(struct ar_ctx *c, json_t *obj, const char *path, const char *key, long long *dst,
		  long long lo, long long hi, bool required)
{
	json_t *v = json_object_get(obj, key);
	long long n;

	if (!v) {
		if (required)
			return ar_fail(c, -EINVAL, "%s.%s: missing", path, key);
		return 0;
	}
	if (!json_is_integer(v))
		return ar_fail(c, -EINVAL, "%s.%s: expected an integer", path, key);
	n = json_integer_value(v);
	if (n < lo || n > hi)
		return ar_fail(c, -EINVAL, "%s.%s: %lld out of range [%lld, %lld]", path, key, n,
			       lo, hi);
	*dst = n;
	return 0;
}

static int ar_bool(struct ar_ctx *c, json_t *obj, const char *path, const char *key, bool *dst)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return ar_fail(c, -EINVAL, "%s.%s: expected true or false", path, key);
	*dst = json_is_true(v);
	return 0;
}

/* Optional array member with at most max elements; *arr NULL when absent. */
static int ar_array(struct ar_ctx *c, json_t *obj, const char *key, size_t max, json_t **arr)
{
	json_t *v = json_object_get(obj, key);

	*arr = NULL;
	if (!v)
		return 0;
	if (!json_is_array(v))
		return ar_fail(c, -EINVAL, "%s: expected an array", key);
	if (json_array_size(v) > max)
		return ar_fail(c, -E2BIG, "%s: %zu entries, limit %zu", key, json_array_size(v),
			       max);
	*arr = v;
	return 0;
}

/* A GPU figure: null or absent is unknown (NAN), a number is range-checked.
 * No -1 here: it is a temperature. */
static int ar_gnum(struct ar_ctx *c, json_t *obj, const char *path, const char *key, double *dst,
		   double lo, double hi)
{
	json_t *v = json_object_get(obj, key);
	char nb[32];
	double d;

	*dst = NAN;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return ar_fail(c, -EINVAL, "%s.%s: expected a number or null", path, key);
	d = json_number_value(v);
	if (!(d >= lo && d <= hi))
		return ar_fail(c, -EINVAL, "%s.%s: %s out of range [%g, %g]", path, key,
			       ar_numstr(d, nb, sizeof(nb)), lo, hi);
	*dst = d;
	return 0;
}

static int ar_parse_gpu(struct ar_ctx *c, json_t *o, const char *p, struct ar_gpu *g)
{
	long long idx = 0, mig = 0;
	json_t *m;
	int err;

	if (!json_is_object(o))
		return ar_fail(c, -EINVAL, "%s: expected an object", p);
	m = json_object_get(o, "mig_index");
	if ((err = ar_int(c, o, p, "index", &idx, 0, 1023, true)) ||
	    (m && !json_is_null(m) &&
	     (err = ar_int(c, o, p, "mig_index", &mig, 0, AR_MAX_GPUS - 1, false))) ||
	    (err = ar_bool(c, o, p, "mig_enabled", &g->mig_enabled)) ||
	    (err = ar_bool(c, o, p, "lost", &g->lost)) ||
	    (err = ar_str(c, o, p, "name", g->name, sizeof(g->name), false)) ||
	    (err = ar_str(c, o, p, "uuid", g->uuid, sizeof(g->uuid), false)) ||
	    (err = ar_str(c, o, p, "pci_bus_id", g->pci_bus_id, sizeof(g->pci_bus_id), false)) ||
	    (err = ar_str(c, o, p, "error", g->error, sizeof(g->error), false)) ||
	    (err = ar_gnum(c, o, p, "util_pct", &g->util_pct, 0, 100)) ||
	    (err = ar_gnum(c, o, p, "mem_used_bytes", &g->mem_used_bytes, 0, 1e18)) ||
	    (err = ar_gnum(c, o, p, "mem_total_bytes", &g->mem_total_bytes, 0, 1e18)) ||
	    (err = ar_gnum(c, o, p, "temp_c", &g->temp_c, -100, 300)) ||
	    (err = ar_gnum(c, o, p, "power_w", &g->power_w, 0, 1e6)))
		return err;
	g->index = idx;
	g->mig = m && !json_is_null(m);
	g->mig_index = mig;
	/* false when either is unknown */
	if (g->mem_used_bytes > g->mem_total_bytes) {
		char a[32], b[32];

		return ar_fail(c, -EINVAL, "%s: mem_used_bytes %s exceeds mem_total_bytes %s", p,
			       ar_numstr(g->mem_used_bytes, a, sizeof(a)),
			       ar_numstr(g->mem_total_bytes, b, sizeof(b)));
	}
	return 0;
}

static const char *const ar_kinds[] = {"vllm", "sglang",   "trtllm", "triton",
				       "tgi",  "llamacpp", "ollama", "unknown"};

static int ar_parse_server(struct ar_ctx *c, json_t *o, const char *p, struct ar_server *s)
{
	long long age = 0;
	bool kind_ok = false;
	int err;

	s->kv_cache_usage = s->prefix_cache_hit_rate = s->ttft_avg_ms = s->e2e_avg_ms = -1;
	s->run_avg_ms = s->since_finish_ms = s->probe_ms_per_token = s->slots = -1;
	s->prefill_avg_ms = s->prefill_tokens_avg = s->prompt_tokens_avg = -1;
	s->queue_depth = s->running = -1;
	if (!json_is_object(o))
		return ar_fail(c, -EINVAL, "%s: expected an object", p);
	if ((err = ar_str(c, o, p, "url", s->url, sizeof(s->url), true)) ||
	    (err = ar_str(c, o, p, "kind", s->kind, sizeof(s->kind), false)) ||
	    (err = ar_bool(c, o, p, "up", &s->up)) ||
	    (err = ar_int(c, o, p, "age_ms", &age, 0, INT64_MAX, false)) ||
	    (err = ar_str(c, o, p, "error", s->error, sizeof(s->error), false)) ||
	    (err = ar_num(c, o, p, "queue_depth", &s->queue_depth, 0, AR_MAX_FIGURE, true, -1)) ||
	    (err = ar_num(c, o, p, "running", &s->running, 0, AR_MAX_FIGURE, true, -1)) ||
	    (err = ar_num(c, o, p, "kv_cache_usage", &s->kv_cache_usage, 0, 1, true, -1)) ||
	    (err = ar_num(c, o, p, "prefix_cache_hit_rate", &s->prefix_cache_hit_rate, 0, 1, true,
			  -1)) ||
	    (err = ar_num(c, o, p, "ttft_avg_ms", &s->ttft_avg_ms, 0, AR_MAX_FIGURE, true, -1)) ||
	    (err = ar_num(c, o, p, "e2e_avg_ms", &s->e2e_avg_ms, 0, AR_MAX_FIGURE, true, -1)) ||
	    (err = ar_num(c, o, p, "run_avg_ms", &s->run_avg_ms, 0, AR_MAX_FIGURE, true, -1)) ||
	    (err = ar_num(c, o, p, "prefill_avg_ms", &s->prefill_avg_ms, 0, AR_MAX_FIGURE, true,
			  -1)) ||
	    (err = ar_num(c, o, p, "prefill_tokens_avg", &s->prefill_tokens_avg, 0, AR_MAX_FIGURE,
			  true, -1)) ||
	    (err = ar_num(c, o, p, "prompt_tokens_avg", &s->prompt_tokens_avg, 0, AR_MAX_FIGURE,
			  true, -1)) ||
	    (err = ar_num(c, o, p, "since_finish_ms", &s->since_finish_ms, 0, 1e12, true, -1)) ||
	    (err =
		 ar_num(c, o, p, "probe_ms_per_token", &s->probe_ms_per_token, 0, 1e6, true, -1)) ||
	    (err = ar_num(c, o, p, "slots", &s->slots, 1, AR_MAX_SLOTS, true, -1)))
		return err;
	s->age_ms = age;
	if (!s->kind[0])
		strcpy(s->kind, "unknown");
	for (size_t i = 0; i < sizeof(ar_kinds) / sizeof(ar_kinds[0]); i++)
		kind_ok |= strcmp(s->kind, ar_kinds[i]) == 0;
	if (!kind_ok)
		return ar_fail(c, -EINVAL, "%s.kind: unknown server kind \"%s\"", p, s->kind);
	return 0;
}

static int ar_parse_model(struct ar_ctx *c, json_t *o, const char *p, struct ar_model *m)
{
	int err;

	if (!json_is_object(o))
		return ar_fail(c, -EINVAL, "%s: expected an object", p);
	if ((err = ar_str(c, o, p, "name", m->name, sizeof(m->name), true)) ||
	    (err = ar_bool(c, o, p, "resident", &m->resident)) ||
	    (err = ar_str(c, o, p, "server", m->server, sizeof(m->server), false)) ||
	    (err = ar_bool(c, o, p, "unloading", &m->unloading)))
		return err;
	if (m->unloading && m->resident)
		return ar_fail(c, -EINVAL, "%s: unloading and resident", p);
	if (!m->name[0])
		return ar_fail(c, -EINVAL, "%s.name: empty", p);
	return 0;
}

static int ar_parse_hint(struct ar_ctx *c, json_t *o, const char *p, struct ar_hint *h)
{
	char proto[8] = "", client[AR_ADDR_LEN] = "", vip[AR_ADDR_LEN] = "";
	long long port = 0, ttl = 0;
	int err;

	if (!json_is_object(o))
		return ar_fail(c, -EINVAL, "%s: expected an object", p);
	if ((err = ar_str(c, o, p, "client", client, sizeof(client), true)) ||
	    (err = ar_str(c, o, p, "vip", vip, sizeof(vip), false)) ||
	    (err = ar_int(c, o, p, "port", &port, 0, 65535, false)) ||
	    (err = ar_str(c, o, p, "proto", proto, sizeof(proto), false)) ||
	    (err = ar_str(c, o, p, "model", h->model, sizeof(h->model), false)) ||
	    (err = ar_int(c, o, p, "ttl_ms", &ttl, 0, UINT32_MAX, true)) ||
	    (err = ar_num(c, o, p, "score", &h->score, 0, 1, false, 0)) ||
	    (err = ar_str(c, o, p, "source", h->source, sizeof(h->source), false)))
		return err;
	/* a model's name is text: a control character is garbage, and each
	 * one would take six bytes of the report (\u00XX) */
	for (const char *q = h->model; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			return ar_fail(c, -EINVAL, "%s.model: a control character (0x%02x)", p,
				       (unsigned char)*q);
	if (aibl_addr__parse(client, &h->client, &h->client_family))
		return ar_fail(c, -EINVAL, "%s.client: \"%s\" is not an IP address", p, client);
	if (vip[0] && aibl_addr__parse(vip, &h->vip, &h->vip_family))
		return ar_fail(c, -EINVAL, "%s.vip: \"%s\" is not an IP address", p, vip);
	/* a server on a dual-stack socket names an IPv4 client (or VIP)
	 * ::ffff:a.b.c.d: kept so, its pin's key would never be looked up */
	aibl_addr__unmap(&h->client, &h->client_family);
	if (vip[0])
		aibl_addr__unmap(&h->vip, &h->vip_family);
	if (!h->vip_family && !h->model[0])
		return ar_fail(c, -EINVAL, "%s: needs a vip or a model", p);
	if (!strcmp(proto, "tcp"))
		h->proto = IPPROTO_TCP;
	else if (!strcmp(proto, "udp"))
		h->proto = IPPROTO_UDP;
	else if (proto[0])
		return ar_fail(c, -EINVAL, "%s.proto: \"%s\" is not tcp or udp", p, proto);
	h->port = port;
	h->ttl_ms = ttl;
	if (!h->source[0])
		strcpy(h->source, "server");
	if (strcmp(h->source, "traffic") && strcmp(h->source, "server"))
		return ar_fail(c, -EINVAL, "%s.source: \"%s\" is not traffic or server", p,
			       h->source);
	return 0;
}

/*
 * "decap": {"interface": "eth0", "counters": {"pass": N, ...}}, optional:
 * the counters this build knows are read (each a whole number, absent
 * ones stay -1), others are ignored, as a newer agent may count more.
 */
static int ar_parse_decap(struct ar_ctx *c, json_t *root, struct agent_report *r)
{
	json_t *d = json_object_get(root, "decap"), *cnt;
	long long n;
	int err;

	if (!d || json_is_null(d))
		return 0;
	if (!json_is_object(d))
		return ar_fail(c, -EINVAL, "decap: expected an object");
	if ((err = ar_str(c, d, "decap", "interface", r->decap_if, sizeof(r->decap_if), true)))
		return err;
	cnt = json_object_get(d, "counters");
	if (!json_is_object(cnt))
		return ar_fail(c, -EINVAL, "decap.counters: %s",
			       cnt ? "expected an object" : "missing");
	for (int i = 0; i < AIBL_NCNT__MAX; i++) {
		n = -1;
		if ((err = ar_int(c, cnt, "decap.counters", agent_report__decap_names[i], &n, 0,
				  INT64_MAX, false)))
			return err;
		r->decap_counters[i] = n;
	}
	r->decap = true;
	return 0;
}

static int ar_parse_root(struct ar_ctx *c, json_t *root, struct agent_report *r)
{
	json_t *arr, *v;
	long long n;
	char p[32];
	size_t i;
	int err;

	if (!json_is_object(root))
		return ar_fail(c, -EINVAL, "report: expected a JSON object");
	v = json_object_get(root, "schema");
	if (!v)
		return ar_fail(c, -EINVAL, "report.schema: missing");
	if (!json_is_integer(v))
		return ar_fail(c, -EINVAL, "report.schema: expected an integer");
	if (json_integer_value(v) != AGENT_REPORT_SCHEMA)
		return ar_fail(c, -EPROTO,
			       "report.schema: %lld not supported (this build reads %d)",
			       (long long)json_integer_value(v), AGENT_REPORT_SCHEMA);

	n = 0;
	if ((err = ar_str(c, root, "report", "node", r->node, sizeof(r->node), true)) ||
	    (err = ar_int(c, root, "report", "timestamp_ms", &n, 0, INT64_MAX, false)) ||
	    (err = ar_str(c, root, "report", "version", r->version, sizeof(r->version), false)) ||
	    (err = ar_str(c, root, "report", "accel", r->accel, sizeof(r->accel), false)) ||
	    (err = ar_bool(c, root, "report", "nvml", &r->nvml)) ||
	    (err = ar_str(c, root, "report", "nvml_error", r->nvml_error, sizeof(r->nvml_error),
			  false)) ||
	    (err = ar_num(c, root, "report", "queue_depth", &r->queue_depth, 0, AR_MAX_FIGURE, true,
			  -1)) ||
	    (err = ar_num(c, root, "report", "in_flight", &r->in_flight, 0, AR_MAX_FIGURE, true,
			  -1)) ||
	    (err =
		 ar_num(c, root, "report", "kv_cache_usage", &r->kv_cache_usage, 0, 1, true, -1)) ||
	    (err = ar_num(c, root, "report", "prefix_cache_hit_rate", &r->prefix_cache_hit_rate, 0,
			  1, true, -1)) ||
	    (err = ar_num(c, root, "report", "ttft_avg_ms", &r->ttft_avg_ms, 0, AR_MAX_FIGURE, true,
			  -1)) ||
	    (err = ar_num(c, root, "report", "e2e_avg_ms", &r->e2e_avg_ms, 0, AR_MAX_FIGURE, true,
			  -1)) ||
	    (err = ar_num(c, root, "report", "run_avg_ms", &r->run_avg_ms, 0, AR_MAX_FIGURE, true,
			  -1)) ||
	    (err = ar_num(c, root, "report", "prefill_avg_ms", &r->prefill_avg_ms, 0, AR_MAX_FIGURE,
			  true, -1)) ||
	    (err = ar_num(c, root, "report", "prefill_tokens_avg", &r->prefill_tokens_avg, 0,
			  AR_MAX_FIGURE, true, -1)) ||
	    (err = ar_num(c, root, "report", "prompt_tokens_avg", &r->prompt_tokens_avg, 0,
			  AR_MAX_FIGURE, true, -1)) ||
	    (err = ar_num(c, root, "report", "since_finish_ms", &r->since_finish_ms, 0, 1e12, true,
			  -1)) ||
	    (err = ar_num(c, root, "report", "probe_ms_per_token", &r->probe_ms_per_token, 0, 1e6,
			  true, -1)) ||
	    (err = ar_num(c, root, "report", "slots", &r->slots, 1,
			  (double)AR_MAX_SLOTS * AR_MAX_SERVERS, true, -1)) ||
	    (err = ar_bool(c, root, "report", "stale", &r->stale)))
		return err;
	r->timestamp_ms = n;
	if (!r->node[0])
		return ar_fail(c, -EINVAL, "report.node: empty");

	n = 0;
	if ((err = ar_int(c, root, "report", "gpus_omitted", &n, 0, 1000000, false)))
		return err;
	r->gpus_omitted = n;
	if ((err = ar_array(c, root, "gpus", AR_MAX_GPUS, &arr)))
		return err;
	if (arr && !r->nvml && json_array_size(arr))
		return ar_fail(c, -EINVAL, "gpus: present but nvml is false");
	json_array_foreach(arr, i, v)
	{
		snprintf(p, sizeof(p), "gpus[%zu]", i);
		if ((err = ar_parse_gpu(c, v, p, &r->gpus[i])))
			return err;
		r->ngpus = i + 1;
	}

	if ((err = ar_array(c, root, "servers", AR_MAX_SERVERS, &arr)))
		return err;
	json_array_foreach(arr, i, v)
	{
		snprintf(p, sizeof(p), "servers[%zu]", i);
		if ((err = ar_parse_server(c, v, p, &r->servers[i])))
			return err;
		r->nservers = i + 1;
	}

	if ((err = ar_array(c, root, "models", AR_MAX_MODELS, &arr)))
		return err;
	json_array_foreach(arr, i, v)
	{
		snprintf(p, sizeof(p), "models[%zu]", i);
		if ((err = ar_parse_model(c, v, p, &r->models[i])))
			return err;
		r->nmodels = i + 1;
	}

	if ((err = ar_array(c, root, "hints", AR_MAX_HINTS, &arr)))
		return err;
	if (arr && json_array_size(arr)) {
		r->hints = calloc(json_array_size(arr), sizeof(*r->hints));
		if (!r->hints)
			return ar_fail(c, -ENOMEM, "hints: out of memory");
	}
	json_array_foreach(arr, i, v)
	{
		snprintf(p, sizeof(p), "hints[%zu]", i);
		if ((err = ar_parse_hint(c, v, p, &r->hints[i])))
			return err;
		r->nhints = i + 1;
	}
	return ar_parse_decap(c, root, r);
}

int agent_report__parse(const char *body, size_t len, struct agent_report *r, char *err,
			size_t errlen)
{
	struct ar_ctx c = {.err = err, .errlen = errlen};
	json_error_t jerr;
	json_t *root = NULL;
	int ret;

	agent_report__init(r);
	if (err && errlen)
		err[0] = '\0';
	if (!body)
		return ar_fail(&c, -EINVAL, "report: no body");
	if (len > AR_MAX_BYTES)
		return ar_fail(&c, -E2BIG, "report: %zu bytes, limit %d", len, AR_MAX_BYTES);
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return ar_fail(&c, -EINVAL, "report: invalid JSON at line %d column %d: %s",
			       jerr.line, jerr.column, jerr.text);
	ret = ar_parse_root(&c, root, r);
	json_decref(root);
	if (ret) {
		agent_report__free(r);
		agent_report__init(r);
	}
	return ret;
}

int agent_hints__parse(const char *body, size_t len, struct ar_hint **out, int *n, char *err,
		       size_t errlen)
{
	struct ar_ctx c = {.err = err, .errlen = errlen};
	struct ar_hint *hints = NULL;
	json_t *root, *arr, *v;
	json_error_t jerr;
	char p[32];
	size_t i;
	int ret;

	*out = NULL;
	*n = 0;
	if (err && errlen)
		err[0] = '\0';
	if (len > AR_MAX_BYTES)
		return ar_fail(&c, -E2BIG, "hints: %zu bytes, limit %d", len, AR_MAX_BYTES);
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return ar_fail(&c, -EINVAL, "hints: invalid JSON at line %d column %d: %s",
			       jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root)) {
		ret = ar_fail(&c, -EINVAL, "hints: expected a JSON object");
		goto out;
	}
	if ((ret = ar_array(&c, root, "hints", AR_MAX_HINTS, &arr)))
		goto out;
	if (!arr) {
		ret = ar_fail(&c, -EINVAL, "hints: missing");
		goto out;
	}
	hints = calloc(json_array_size(arr) ? json_array_size(arr) : 1, sizeof(*hints));
	if (!hints) {
		ret = ar_fail(&c, -ENOMEM, "hints: out of memory");
		goto out;
	}
	json_array_foreach(arr, i, v)
	{
		snprintf(p, sizeof(p), "hints[%zu]", i);
		hints[i].score = 1;
		if ((ret = ar_parse_hint(&c, v, p, &hints[i])))
			goto out;
		strcpy(hints[i].source, "server");
	}
	*out = hints;
	*n = json_array_size(arr);
	hints = NULL;
out:
	free(hints);
	json_decref(root);
	return ret;
}

/* ---- serialising ---- */

/* -1 ("unknown") and anything JSON cannot carry (NaN, inf) become null */
static json_t *ar_jnum(double d, bool unknown_ok)
{
	if (!isfinite(d) || (unknown_ok && d < 0))
		return json_null();
	return json_real(d);
}

/*
 * A string as JSON can carry it: what an engine wrote (a model name, a
 * parser's note on its page) may be no UTF-8, and json_string() refuses
 * that, which refused the whole report (500 to every balancer, the node
 * taken for broken). Bytes outside printable ASCII then become '?'.
 */
static json_t *ar_text(const char *s)
{
	json_t *j = json_string(s);
	size_t n;
	char *c;

	if (j)
		return j;
	n = strlen(s);
	c = malloc(n + 1);
	if (!c)
		return NULL;
	for (size_t i = 0; i < n; i++)
		c[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	c[n] = '\0';
	j = json_string(c);
	free(c);
	return j;
}

static int ar_set(json_t *obj, const char *key, json_t *v)
{
	/* json_object_set_new() takes ownership even on failure */
	return (!v || json_object_set_new(obj, key, v)) ? -ENOMEM : 0;
}

static int ar_set_arr(json_t *obj, json_t *arr, json_t *v)
{
	return (!v || json_array_append_new(arr, v)) ? -ENOMEM : 0;
}

static json_t *ar_gpu_json(const struct ar_gpu *g)
{
	json_t *o = json_object();

	if (!o || ar_set(o, "index", json_integer(g->index)) ||
	    ar_set(o, "mig_index", !g->mig ? json_null() : json_integer(g->mig_index)) ||
	    ar_set(o, "mig_enabled", json_boolean(g->mig_enabled)) ||
	    ar_set(o, "name", ar_text(g->name)) || ar_set(o, "uuid", ar_text(g->uuid)) ||
	    ar_set(o, "pci_bus_id", ar_text(g->pci_bus_id)) ||
	    ar_set(o, "util_pct", ar_jnum(g->util_pct, false)) ||
	    ar_set(o, "mem_used_bytes", ar_jnum(g->mem_used_bytes, false)) ||
	    ar_set(o, "mem_total_bytes", ar_jnum(g->mem_total_bytes, false)) ||
	    ar_set(o, "temp_c", ar_jnum(g->temp_c, false)) ||
	    ar_set(o, "power_w", ar_jnum(g->power_w, false)) ||
	    ar_set(o, "error", ar_text(g->error)) || ar_set(o, "lost", json_boolean(g->lost))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *ar_server_json(const struct ar_server *s)
{
	json_t *o = json_object();

	if (!o || ar_set(o, "url", ar_text(s->url)) ||
	    ar_set(o, "kind", ar_text(s->kind[0] ? s->kind : "unknown")) ||
	    ar_set(o, "up", json_boolean(s->up)) ||
	    ar_set(o, "age_ms", json_integer((json_int_t)s->age_ms)) ||
	    ar_set(o, "error", ar_text(s->error)) ||
	    ar_set(o, "queue_depth", ar_jnum(s->queue_depth, true)) ||
	    ar_set(o, "running", ar_jnum(s->running, true)) ||
	    ar_set(o, "kv_cache_usage", ar_jnum(s->kv_cache_usage, true)) ||
	    ar_set(o, "prefix_cache_hit_rate", ar_jnum(s->prefix_cache_hit_rate, true)) ||
	    ar_set(o, "ttft_avg_ms", ar_jnum(s->ttft_avg_ms, true)) ||
	    ar_set(o, "e2e_avg_ms", ar_jnum(s->e2e_avg_ms, true)) ||
	    ar_set(o, "run_avg_ms", ar_jnum(s->run_avg_ms, true)) ||
	    ar_set(o, "prefill_avg_ms", ar_jnum(s->prefill_avg_ms, true)) ||
	    ar_set(o, "prefill_tokens_avg", ar_jnum(s->prefill_tokens_avg, true)) ||
	    ar_set(o, "prompt_tokens_avg", ar_jnum(s->prompt_tokens_avg, true)) ||
	    ar_set(o, "since_finish_ms", ar_jnum(s->since_finish_ms, true)) ||
	    ar_set(o, "probe_ms_per_token", ar_jnum(s->probe_ms_per_token, true)) ||
	    ar_set(o, "slots", ar_jnum(s->slots, true))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *ar_model_json(const struct ar_model *m)
{
	json_t *o = json_object();

	if (!o || ar_set(o, "name", ar_text(m->name)) ||
	    ar_set(o, "resident", json_boolean(m->resident)) ||
	    ar_set(o, "server", ar_text(m->server)) ||
	    (m->unloading && ar_set(o, "unloading", json_true()))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *ar_hint_json(const struct ar_hint *h)
{
	const char *proto = h->proto == IPPROTO_TCP ? "tcp" : h->proto == IPPROTO_UDP ? "udp" : "";
	char client[INET6_ADDRSTRLEN], vip[INET6_ADDRSTRLEN];
	json_t *o = json_object();

	aibl_addr__str(&h->client, h->client_family, client, sizeof(client));
	aibl_addr__str(&h->vip, h->vip_family, vip, sizeof(vip));
	if (!o || ar_set(o, "client", ar_text(client)) || ar_set(o, "vip", ar_text(vip)) ||
	    ar_set(o, "port", json_integer(h->port)) || ar_set(o, "proto", ar_text(proto)) ||
	    ar_set(o, "model", ar_text(h->model)) || ar_set(o, "ttl_ms", json_integer(h->ttl_ms)) ||
	    ar_set(o, "score", ar_jnum(h->score, false)) ||
	    ar_set(o, "source", ar_text(h->source[0] ? h->source : "server"))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *agent_report__decap_json(const struct agent_report *r)
{
	json_t *cnt = json_object();

	for (int i = 0; cnt && i < AIBL_NCNT__MAX; i++)
		if (r->decap_counters[i] >= 0 &&
		    ar_set(cnt, agent_report__decap_names[i],
			   json_integer((json_int_t)r->decap_counters[i]))) {
			json_decref(cnt);
			cnt = NULL;
		}
	/* an interface name is any bytes but '/' and blanks: not UTF-8, json_pack
	 * refused it, and with it the whole report (500 to every balancer) */
	return cnt ? json_pack("{s:o, s:o}", "interface", ar_text(r->decap_if), "counters", cnt)
		   : NULL;
}

/* real numbers keep 17 significant digits: a round trip is exact */
#define AR_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

/*
 * The hints, last in the report, as many as fit AR_MAX_BYTES with the rest
 * (root, with an empty arr): every reader refuses a longer report whole, and
 * a node whose report never passes would be out of the balancers for as long
 * as its hints live. The table's order decides which go.
 */
static int ar_hints_json(json_t *root, json_t *arr, const struct agent_report *r)
{
	char *base = r->nhints ? json_dumps(root, AR_DUMP_FLAGS) : NULL;
	size_t len;

	if (!r->nhints)
		return 0;
	if (!base)
		return -ENOMEM;
	len = strlen(base);
	free(base);
	for (int i = 0; i < r->nhints; i++) {
		json_t *h = ar_hint_json(&r->hints[i]);
		char *t = h ? json_dumps(h, AR_DUMP_FLAGS) : NULL;
		size_t n = t ? strlen(t) + 1 : 0; /* and its comma */

		free(t);
		if (!n) {
			json_decref(h);
			return -ENOMEM;
		}
		if (len + n > AR_MAX_BYTES) {
			json_decref(h);
			break;
		}
		if (ar_set_arr(root, arr, h))
			return -ENOMEM;
		len += n;
	}
	return 0;
}

char *agent_report__to_json(const struct agent_report *r)
{
	json_t *root, *arr;
	char *out = NULL;
	int i, err = -ENOMEM;

	if (r->ngpus < 0 || r->ngpus > AR_MAX_GPUS || r->nservers < 0 ||
	    r->nservers > AR_MAX_SERVERS || r->nmodels < 0 || r->nmodels > AR_MAX_MODELS ||
	    r->nhints < 0 || r->nhints > AR_MAX_HINTS || (r->nhints && !r->hints)) {
		errno = E2BIG;
		return NULL;
	}
	root = json_object();
	if (!root)
		goto out;
	if (ar_set(root, "schema", json_integer(AGENT_REPORT_SCHEMA)) ||
	    ar_set(root, "node", ar_text(r->node)) ||
	    ar_set(root, "timestamp_ms", json_integer((json_int_t)r->timestamp_ms)) ||
	    ar_set(root, "version", ar_text(r->version)) ||
	    ar_set(root, "accel", ar_text(r->accel)) ||
	    ar_set(root, "nvml", json_boolean(r->nvml)) ||
	    ar_set(root, "nvml_error", ar_text(r->nvml_error)) ||
	    ar_set(root, "queue_depth", ar_jnum(r->queue_depth, true)) ||
	    ar_set(root, "in_flight", ar_jnum(r->in_flight, true)) ||
	    ar_set(root, "kv_cache_usage", ar_jnum(r->kv_cache_usage, true)) ||
	    ar_set(root, "prefix_cache_hit_rate", ar_jnum(r->prefix_cache_hit_rate, true)) ||
	    ar_set(root, "ttft_avg_ms", ar_jnum(r->ttft_avg_ms, true)) ||
	    ar_set(root, "e2e_avg_ms", ar_jnum(r->e2e_avg_ms, true)) ||
	    ar_set(root, "run_avg_ms", ar_jnum(r->run_avg_ms, true)) ||
	    ar_set(root, "prefill_avg_ms", ar_jnum(r->prefill_avg_ms, true)) ||
	    ar_set(root, "prefill_tokens_avg", ar_jnum(r->prefill_tokens_avg, true)) ||
	    ar_set(root, "prompt_tokens_avg", ar_jnum(r->prompt_tokens_avg, true)) ||
	    ar_set(root, "since_finish_ms", ar_jnum(r->since_finish_ms, true)) ||
	    ar_set(root, "probe_ms_per_token", ar_jnum(r->probe_ms_per_token, true)) ||
	    ar_set(root, "slots", ar_jnum(r->slots, true)) ||
	    ar_set(root, "stale", json_boolean(r->stale)) ||
	    ar_set(root, "gpus_omitted", json_integer(r->gpus_omitted)))
		goto out;

	if (ar_set(root, "gpus", arr = json_array()))
		goto out;
	for (i = 0; r->nvml && i < r->ngpus; i++)
		if (ar_set_arr(root, arr, ar_gpu_json(&r->gpus[i])))
			goto out;
	if (ar_set(root, "servers", arr = json_array()))
		goto out;
	for (i = 0; i < r->nservers; i++)
		if (ar_set_arr(root, arr, ar_server_json(&r->servers[i])))
			goto out;
	if (ar_set(root, "models", arr = json_array()))
		goto out;
	for (i = 0; i < r->nmodels; i++)
		if (ar_set_arr(root, arr, ar_model_json(&r->models[i])))
			goto out;
	if (r->decap && ar_set(root, "decap", agent_report__decap_json(r)))
		goto out;
	if (ar_set(root, "hints", arr = json_array()))
		goto out;
	err = ar_hints_json(root, arr, r);
	if (err)
		goto out;
	err = -ENOMEM;

	out = json_dumps(root, AR_DUMP_FLAGS);
	if (out)
		err = 0;
out:
	json_decref(root);
	if (err)
		errno = -err;
	return out;
}

const char *agent_report__unloading(const struct agent_report *r)
{
	for (int i = 0; i < r->nmodels; i++)
		if (r->models[i].unloading)
			return r->models[i].name;
	return NULL;
}

int agent_report__parse_open(const char *v, long *n, char *model, size_t modellen)
{
	const char *sp;
	char *end;
	size_t len;

	model[0] = '\0';
	if (!v || *v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	*n = strtol(v, &end, 10);
	if (errno || *n > AR_OPEN_MAX || (*end && *end != ' '))
		return -EINVAL;
	if (!*end)
		return 0;
	sp = end + 1;
	len = strlen(sp);
	if (!len || len >= modellen || len >= AR_MODEL_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)sp[i] < 0x21 || sp[i] == 0x7f)
			return -EINVAL;
	memcpy(model, sp, len + 1);
	return 0;
}
