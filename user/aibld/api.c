// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The controller's HTTP API through libmicrohttpd (its own thread):
 *
 *   GET  /metrics                   Prometheus text
 *   GET  /v1/status                 JSON, the shape aiblctl reads
 *   POST /v1/nodes/NAME/drain       200 {"node":NAME,"draining":true}
 *   POST /v1/nodes/NAME/undrain     200 {"node":NAME,"draining":false}
 *   POST /v1/nodes/NAME/unload?model=M[&drain_timeout_ms=MS]
 *                                        the node's agent's POST /v1/unload
 *   GET  /v1/nodes/NAME/load             the node's agent's GET /v1/load
 *
 * State-changing requests need "Authorization: Bearer <token>" when
 * api_token_file is set (the config refuses a non-loopback listener
 * without one). Every handler reads the controller under its lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "aibld.h"
#include "cluster.h"
#include "httpbody.h"
#include "httpguard.h"
#include "listen.h"
#include "log.h"
#include "names.h"
#include "status_json.h"
#include "curlopt.h"

/*
 * Connection limits (httpguard.h): 64 from other hosts together, 8 from
 * any one, and 16 more only for the local host (aiblctl, a local
 * scraper), so a flood from the network leaves /v1/status answering
 * locally. A request must be in and answered within 10 s, however slowly
 * it trickles; 10 s idle closes a connection too.
 */
#define API_MAX_CONNS	64
#define API_MAX_PER_SRC 8
#define API_RESERVE	16
#define API_REQUEST_MS	10000

struct api {
	struct MHD_Daemon *mhd;
	struct http_guard *guard;
	struct aibld *d;
	pthread_mutex_t tlock;
	char token[AIBLD_TOKEN_LEN]; /* "" : none required */
	/* refusals for a missing or wrong token: logged once per
	 * API_AUTH_LOG_EVERY_MS at most (under tlock) */
	__u64 auth_log_ms, auth_unlogged;
};

#define API_AUTH_LOG_EVERY_MS 10000

/* one line per API_AUTH_LOG_EVERY_MS, whatever the flood: requests are
 * cheap, and a flood of lines would push the daemon's real warnings out
 * of journald's rate limit (the counter counts every refusal) */
static void auth_refused_log(struct api *a, const char *method, const char *url)
{
	__u64 now = clock_mono_ms(), more;

	pthread_mutex_lock(&a->tlock);
	if (a->auth_log_ms && now - a->auth_log_ms < API_AUTH_LOG_EVERY_MS) {
		a->auth_unlogged++;
		pthread_mutex_unlock(&a->tlock);
		return;
	}
	more = a->auth_unlogged;
	a->auth_unlogged = 0;
	a->auth_log_ms = now;
	pthread_mutex_unlock(&a->tlock);
	/* the URL is the client's: log() escapes it */
	if (more)
		pr_warn("API: %s %s refused: missing or wrong bearer token (and %llu more "
			"since the last line)",
			method, url, (unsigned long long)more);
	else
		pr_warn("API: %s %s refused: missing or wrong bearer token", method, url);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *type,
			     char *body)
{
	return http_reply(c, status, type, body,
			  status == MHD_HTTP_UNAUTHORIZED ? "WWW-Authenticate" : NULL, "Bearer");
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned int status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	size_t l = s ? strlen(s) : 0;
	char *body = s ? realloc(s, l + 2) : NULL;

	json_decref(j);
	if (!body) {
		/* never drop the connection unanswered (jansson refuses text that is
		 * not UTF-8; every caller checks its strings, this is the backstop) */
		free(s);
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json",
			     strdup("{\"error\":\"cannot encode the answer\"}\n"));
	}
	body[l] = '\n';
	body[l + 1] = 0;
	return reply(c, status, "application/json", body);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned int status, const char *msg)
{
	return reply_json(c, status, json_pack("{s:s}", AIBL_SJ_ERROR, msg));
}

static const char *proto_name(int p)
{
	return p == 17 ? "udp" : "tcp";
}

/* why a node is down or unhealthy (enum node_fail), "" when it is not */
static const char *node_reason(const struct node_rt *n)
{
	return n->down || n->unhealthy ? nodes__fail_name(n->reason) : "";
}

/* ai: how long the node's requests hold a slot, ms, -1 unknown */
static double node_hold_ms(const struct aibld *d, const struct node_rt *n, __u64 now)
{
	struct policy_node pn;
	double hold;

	if (n->cfg_idx < 0)
		return -1;
	aibld__policy_node(d, n, now, &pn);
	hold = policy__hold_ms(&pn);
	return hold > 0 ? hold : -1;
}

/* ai: the node's unloaded request latency, ms, -1 unknown */
static double node_floor_ms(const struct node_rt *n)
{
	return n->lat_floor_ms > 0 ? n->lat_floor_ms : -1;
}

/* ai: its agent's speed probe, ms per output token, -1 none */
static double node_probe_ms(const struct node_rt *n)
{
	return n->have_rep && n->rep.probe_ms_per_token > 0 ? n->rep.probe_ms_per_token : -1;
}

/* ai: how long its prefills waited beyond their own compute, ms, -1 unknown */
static double node_prefill_wait_ms(const struct node_rt *n)
{
	return n->pf.wait_ms >= 0 ? n->pf.wait_ms : -1;
}

/* ai: ms of its compute each new session sent there adds to the next one's
 * wait (aibl_cost.prefill_ms: its own, or the reference node's scaled), 0
 * where prefills are not seen taking turns */
static double node_prefill_ms(const struct aibld *d, const struct node_rt *n, __u64 now)
{
	struct policy_node pn;

	if (n->cfg_idx < 0)
		return 0;
	aibld__policy_node(d, n, now, &pn);
	return pn.prefill_ms;
}

/* ai's learnt figures of a node (-1 unknown): why it is priced as it is */
/* the node's decap program as its agent's last report states it, and
 * the drop_* counters summed */
static json_t *decap_json(const struct agent_report *r)
{
	json_t *j = agent_report__decap_json(r);

	if (j && json_object_set_new(j, AIBL_SJ_DECAP_DROPPED,
				     json_integer((json_int_t)agent_report__decap_dropped(r)))) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static void ai_figures(const struct aibld *d, const struct node_rt *n, __u64 now, json_t *jn)
{
	json_object_set_new(jn, AIBL_SJ_AI_LATENCY_MS, json_real(n->lat_ms > 0 ? n->lat_ms : -1));
	json_object_set_new(jn, AIBL_SJ_AI_FLOOR_MS, json_real(node_floor_ms(n)));
	json_object_set_new(jn, AIBL_SJ_AI_SLOTS, json_real(nodes__slots(n)));
	json_object_set_new(jn, AIBL_SJ_AI_HOLD_MS, json_real(node_hold_ms(d, n, now)));
	json_object_set_new(jn, AIBL_SJ_AI_PROBE_MS, json_real(node_probe_ms(n)));
	json_object_set_new(jn, AIBL_SJ_AI_PREFILL_WAIT_MS, json_real(node_prefill_wait_ms(n)));
	json_object_set_new(jn, AIBL_SJ_AI_PREFILL_SHARED, json_boolean(n->pf.shared));
	json_object_set_new(jn, AIBL_SJ_AI_PREFILL_MS, json_real(node_prefill_ms(d, n, now)));
	json_object_set_new(jn, AIBL_SJ_AI_PREFIX_HIT, json_real(n->hit_rate));
}

static json_t *status_json(struct aibld *d)
{
	json_t *root = json_object(), *svcs = json_array(), *nodes = json_array();
	__u64 now = clock_mono_ms();

	json_object_set_new(root, AIBL_SJ_VERSION, json_string(AIBLD_VERSION));
	json_object_set_new(root, AIBL_SJ_UPTIME_S, json_integer((now - d->start_ms) / 1000));
	for (int i = 0; i < d->cfg.nservices; i++) {
		const struct cfg_service *cs = &d->cfg.services[i];
		const struct svc_rt *s = &d->svcs[i];
		json_t *js, *jn = json_array();

		for (int k = 0; k < cs->nnodes; k++) {
			const struct node_rt *n = &d->nodes[cs->nodes[k]];

			/* one member a line */
			/* clang-format off */
			json_array_append_new(jn, json_pack("{s:s,s:I,s:I,s:I,s:s}",
				AIBL_SJ_NAME, n->name,
				AIBL_SJ_WEIGHT, (json_int_t)s->applied[k],
				AIBL_SJ_CFG_WEIGHT, (json_int_t)d->cfg.nodes[cs->nodes[k]].weight,
				AIBL_SJ_SLOTS, (json_int_t)s->slots[k],
				AIBL_SJ_STATE, aibld__node_state(n)));
		}
		js = json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:o}",
			AIBL_SJ_NAME, cs->name,
			AIBL_SJ_VIP, cs->vip.text,
			AIBL_SJ_PORT, cs->port,
			AIBL_SJ_PROTO, proto_name(cs->proto),
			AIBL_SJ_POLICY, config__policy_name(cs->policy),
			AIBL_SJ_MODEL, cs->model,
			AIBL_SJ_ID, (json_int_t)s->id,
			AIBL_SJ_GENERATION, (json_int_t)s->generation,
			AIBL_SJ_PINS, (json_int_t)s->npins,
			AIBL_SJ_PACKETS, (json_int_t)s->traffic.packets,
			AIBL_SJ_BYTES, (json_int_t)s->traffic.bytes,
			AIBL_SJ_NODES, jn);
		/* clang-format on */
		if (cs->policy == AIBL_POL_AI) {
			json_object_set_new(js, AIBL_SJ_AI_PREFIX_HIT, json_real(s->reuse_hit));
			json_object_set_new(js, AIBL_SJ_AI_AFFINITY,
					    json_boolean(aibld__svc_affinity(d, i)));
			json_object_set_new(js, AIBL_SJ_AI_WAIT_MS, json_real(s->need_ms));
			json_object_set_new(
			    js, AIBL_SJ_AI_SATURATED_MS,
			    json_integer(s->saturated_since_ms
					     ? (json_int_t)(now - s->saturated_since_ms)
					     : 0));
		}
		json_array_append_new(svcs, js);
	}
	for (int i = 0; i < d->nnodes; i++) {
		const struct node_rt *n = &d->nodes[i];
		const struct cfg_node *c = n->cfg_idx >= 0 ? &d->cfg.nodes[n->cfg_idx] : NULL;
		json_t *models = json_array(), *jn;
		double util = -1;

		if (n->have_rep) {
			for (int m = 0; m < n->rep.nmodels; m++)
				if (n->rep.models[m].resident)
					json_array_append_new(models,
							      json_string(n->rep.models[m].name));
			util = policy__gpu_util(&n->rep);
		} else if (c) {
			for (int m = 0; m < c->nmodels; m++)
				json_array_append_new(models, json_string(c->models[m]));
		}
		/* one member a line */
		/* clang-format off */
		jn = json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:o,s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:I,s:I,"
			       "s:I,s:I,s:s,s:b}",
			AIBL_SJ_NAME, n->name,
			AIBL_SJ_ADDRESS, c ? c->address.text : "",
			AIBL_SJ_STATE, aibld__node_state(n),
			AIBL_SJ_REASON, node_reason(n),
			AIBL_SJ_HEALTHY, !n->down && !n->unhealthy && !n->unchecked,
			AIBL_SJ_LAST_REPORT_AGE_MS,
				(json_int_t)(n->last_ok_ms ? (json_int_t)(now - n->last_ok_ms) : -1),
			AIBL_SJ_MODELS, models,
			AIBL_SJ_GPU_UTIL_PCT, util,
			AIBL_SJ_QUEUE_DEPTH, n->have_rep ? n->rep.queue_depth : -1,
			AIBL_SJ_IN_FLIGHT, n->have_rep ? n->rep.in_flight : -1,
			AIBL_SJ_KV_CACHE_USAGE, n->have_rep ? n->rep.kv_cache_usage : -1,
			AIBL_SJ_TTFT_AVG_MS, n->ttft_ms,
			AIBL_SJ_FAILURES, (json_int_t)n->fails,
			AIBL_SJ_POLL_ERRORS, (json_int_t)n->poll_errors,
			AIBL_SJ_ID, (json_int_t)n->id,
			AIBL_SJ_ACTIVE_FLOWS, (json_int_t)n->active,
			AIBL_SJ_PINS, (json_int_t)n->npins,
			AIBL_SJ_COST, (json_int_t)n->cost.cost,
			AIBL_SJ_LAST_ERROR, n->last_error,
			AIBL_SJ_CONFIGURED, c != NULL);
		/* clang-format on */
		if (jn)
			ai_figures(d, n, now, jn);
		if (jn && n->load.state != NODE_LOAD_NONE)
			json_object_set_new(
			    jn, AIBL_SJ_LOAD,
			    json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", AIBL_SJ_LOAD_OP,
				      n->load.unload ? "unload" : "load", AIBL_SJ_LOAD_MODEL,
				      n->load.model, AIBL_SJ_LOAD_SERVICE, n->load.svc,
				      AIBL_SJ_LOAD_STATE,
				      n->load.state == NODE_LOAD_QUEUED ? "queued"
				      : n->load.state == NODE_LOAD_ASKED
					  ? (n->load.unload ? "unloading" : "loading")
					  : "refused",
				      AIBL_SJ_LOAD_FOR_MS, (json_int_t)(now - n->load.since_ms),
				      AIBL_SJ_LOAD_ERROR, n->load.error));
		if (jn && n->nheld) {
			json_t *ha = json_array();

			for (int h = 0; ha && h < n->nheld; h++)
				json_array_append_new(
				    ha,
				    json_pack(
					"{s:s,s:s,s:I,s:I,s:s*}", AIBL_SJ_LOAD_MODEL,
					n->held[h].model, AIBL_SJ_LOAD_SERVICE, n->held[h].svc,
					AIBL_SJ_HELD_RESIDENT_MS,
					(json_int_t)(now - n->held[h].since_ms),
					AIBL_SJ_HELD_QUIET_MS,
					(json_int_t)(n->held[h].quiet_ms ? now - n->held[h].quiet_ms
									 : 0),
					AIBL_SJ_HELD_WANTED_BY,
					n->held[h].wanted_by[0] ? n->held[h].wanted_by : NULL));
			json_object_set_new(jn, AIBL_SJ_HELD, ha);
		}
		if (jn && n->have_rep && n->rep.decap)
			json_object_set_new(jn, AIBL_SJ_DECAP, decap_json(&n->rep));
		if (jn && n->open_model[0])
			json_object_set_new(
			    jn, AIBL_SJ_UNLOADING,
			    json_pack("{s:s,s:I}", AIBL_SJ_UNLOADING_MODEL, n->open_model,
				      AIBL_SJ_UNLOADING_OPEN,
				      (json_int_t)(n->open_ok ? n->open_flows : -1)));
		json_array_append_new(nodes, jn);
	}
	json_object_set_new(root, AIBL_SJ_SERVICES, svcs);
	json_object_set_new(root, AIBL_SJ_NODES, nodes);
	return root;
}

/* Prometheus label values: escape backslash, quote and newline */
static void label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*s, f);
	}
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static char *metrics_text(struct aibld *d)
{
	static const struct {
		const char *name, *help;
	} counters[] = {
#define AIBL_X_NAME(n, s, h) {s, h},
	    AIBL_COUNTERS(AIBL_X_NAME)
#undef AIBL_X_NAME
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	__u64 now = clock_mono_ms();
	__u64 *pc;

	if (!f)
		return NULL;
	metric_head(f, "aibl_service_node_weight", "gauge", "table weight of a node in a service");
	for (int i = 0; i < d->cfg.nservices; i++)
		for (int k = 0; k < d->cfg.services[i].nnodes; k++) {
			fputs("aibl_service_node_weight{service=\"", f);
			label(f, d->svcs[i].name);
			fputs("\",node=\"", f);
			label(f, d->nodes[d->cfg.services[i].nodes[k]].name);
			fprintf(f, "\"} %u\n", d->svcs[i].applied[k]);
		}
	metric_head(f, "aibl_service_node_slot_share", "gauge",
		    "share of the service's lookup table a node holds (0..1)");
	for (int i = 0; i < d->cfg.nservices; i++)
		for (int k = 0; k < d->cfg.services[i].nnodes; k++) {
			fputs("aibl_service_node_slot_share{service=\"", f);
			label(f, d->svcs[i].name);
			fputs("\",node=\"", f);
			label(f, d->nodes[d->cfg.services[i].nodes[k]].name);
			fprintf(f, "\"} %.6f\n", (double)d->svcs[i].slots[k] / AIBL_RING_SIZE);
		}
#define SVC_METRIC(mname, type, help, fmt, expr)                                                   \
	do {                                                                                       \
		metric_head(f, mname, type, help);                                                 \
		for (int i = 0; i < d->cfg.nservices; i++) {                                       \
			const struct svc_rt *s = &d->svcs[i];                                      \
			fputs(mname "{service=\"", f);                                             \
			label(f, s->name);                                                         \
			fprintf(f, "\"} " fmt "\n", expr);                                         \
		}                                                                                  \
	} while (0)
#define SVC_COUNT(mname, type, help, expr)                                                         \
	SVC_METRIC(mname, type, help, "%llu", (unsigned long long)(expr))
	SVC_COUNT("aibl_service_packets_total", "counter", "packets to the service",
		  s->traffic.packets);
	SVC_COUNT("aibl_service_bytes_total", "counter", "bytes to the service", s->traffic.bytes);
	SVC_COUNT("aibl_service_new_flows_total", "counter", "new flows", s->traffic.new_flows);
	SVC_COUNT("aibl_service_pin_hits_total", "counter", "new flows steered by a pin",
		  s->traffic.pin_hits);
	SVC_COUNT("aibl_service_pins", "gauge", "session pins of the service", s->npins);
	SVC_COUNT("aibl_service_table_generation", "counter", "table rewrites", s->generation);
	SVC_COUNT("aibl_service_ai_affinity", "gauge",
		  "ai: 1 while the VIP has client affinity (prompts find their prefixes on "
		  "its nodes)",
		  aibld__svc_affinity(d, i));
	SVC_METRIC("aibl_service_ai_prefix_hit", "gauge",
		   "ai: share of prompt tokens found cached by the engines that serve its model, "
		   "mean over its resident nodes, smoothed (client affinity's figure); -1 unknown "
		   "or not ai",
		   "%.4f", d->cfg.services[i].policy == AIBL_POL_AI ? s->reuse_hit : -1.0);
#undef SVC_COUNT
#undef SVC_METRIC
#define NODE_METRIC(mname, type, help, fmt, expr)                                                  \
	do {                                                                                       \
		metric_head(f, mname, type, help);                                                 \
		for (int i = 0; i < d->nnodes; i++) {                                              \
			const struct node_rt *n = &d->nodes[i];                                    \
			fputs(mname "{node=\"", f);                                                \
			label(f, n->name);                                                         \
			fprintf(f, "\"} " fmt "\n", expr);                                         \
		}                                                                                  \
	} while (0)
	NODE_METRIC("aibl_node_up", "gauge",
		    "1 when neither down nor unhealthy, nor pending its first poll", "%d",
		    !n->down && !n->unhealthy && !n->unchecked);
	NODE_METRIC("aibl_node_unhealthy", "gauge",
		    "1 when the node's agent failed but its backend answers: no new flows", "%d",
		    n->unhealthy);
	NODE_METRIC("aibl_node_draining", "gauge", "1 when draining", "%d",
		    n->draining || n->cfg_idx < 0);
	NODE_METRIC("aibl_node_overloaded", "gauge", "1 when bounded load skips the node", "%d",
		    n->overloaded);
	NODE_METRIC("aibl_node_active_flows", "gauge", "active flows seen by the data plane",
		    "%lld", (long long)n->active);
	NODE_METRIC("aibl_node_packets_total", "counter", "packets forwarded to the node", "%llu",
		    (unsigned long long)n->traffic.packets);
	NODE_METRIC("aibl_node_bytes_total", "counter", "bytes forwarded to the node", "%llu",
		    (unsigned long long)n->traffic.bytes);
	NODE_METRIC("aibl_node_new_flows_total", "counter", "new flows sent to the node", "%llu",
		    (unsigned long long)n->traffic.new_flows);
	NODE_METRIC("aibl_node_pins", "gauge", "session pins to the node", "%u", n->npins);
	NODE_METRIC("aibl_node_cost", "gauge",
		    "p2c cost before the data plane adds its flows: least_conn in-flight "
		    "requests, least_time TTFT / ms_per_flow, ai expected request latency in ms",
		    "%u", n->cost.cost);
	NODE_METRIC("aibl_node_ai_floor_ms", "gauge",
		    "ai: the node's unloaded request latency in ms, -1 unknown", "%.1f",
		    node_floor_ms(n));
	NODE_METRIC("aibl_node_ai_slots", "gauge",
		    "ai: requests the node runs before new ones wait, -1 unknown", "%.1f",
		    nodes__slots(n));
	NODE_METRIC("aibl_node_ai_hold_ms", "gauge",
		    "ai: how long the node's requests hold a slot in ms, -1 unknown", "%.1f",
		    node_hold_ms(d, n, now));
	NODE_METRIC("aibl_node_ai_probe_ms", "gauge",
		    "ai: the node agent's speed probe, ms per output token of a short request, "
		    "-1 none",
		    "%.2f", node_probe_ms(n));
	NODE_METRIC("aibl_node_ai_prefill_wait_ms", "gauge",
		    "ai: how long the node's prefills waited beyond their own compute in ms "
		    "(EWMA), -1 unknown",
		    "%.1f", node_prefill_wait_ms(n));
	NODE_METRIC("aibl_node_ai_prefill_shared", "gauge",
		    "ai: 1 once the node's prefills were seen taking turns on its compute", "%d",
		    n->pf.shared ? 1 : 0);
	NODE_METRIC("aibl_node_ai_prefill_ms", "gauge",
		    "ai: ms of the node's compute each new session sent there adds to the next "
		    "one's wait, 0 where prefills are not seen taking turns",
		    "%.1f", node_prefill_ms(d, n, now));
	NODE_METRIC("aibl_node_ai_prefix_hit", "gauge",
		    "ai: share of prompt tokens the node found cached (EWMA), -1 unknown", "%.3f",
		    n->hit_rate);
	NODE_METRIC("aibl_node_poll_errors_total", "counter", "failed polls of the node", "%llu",
		    (unsigned long long)n->poll_errors);
	NODE_METRIC("aibl_node_consecutive_failures", "gauge", "failed polls in a row", "%u",
		    n->fails);
#undef NODE_METRIC
	metric_head(f, "aibl_node_state", "gauge",
		    "1 for the node's state; reason: the failure that made it down or unhealthy");
	for (int i = 0; i < d->nnodes; i++) {
		fputs("aibl_node_state{node=\"", f);
		label(f, d->nodes[i].name);
		fprintf(f, "\",state=\"%s\",reason=\"%s\"} 1\n", aibld__node_state(&d->nodes[i]),
			node_reason(&d->nodes[i]));
	}
	metric_head(
	    f, "aibl_node_unload_open_flows", "gauge",
	    "open connections this balancer holds of the model the node's agent drains "
	    "for an unload, -1 while its tables still give the node a share or not counted");
	for (int i = 0; i < d->nnodes; i++) {
		const struct node_rt *n = &d->nodes[i];

		if (!n->open_model[0])
			continue;
		fputs("aibl_node_unload_open_flows{node=\"", f);
		label(f, n->name);
		fputs("\",model=\"", f);
		label(f, n->open_model);
		fprintf(f, "\"} %ld\n", n->open_ok ? n->open_flows : -1);
	}
	metric_head(f, "aibl_node_decap_packets_total", "counter",
		    "the node's decap program's packets by counter (docs/dataplane.md "
		    "\"Counters\"), as its agent's last report stated them; nodes without one "
		    "have none");
	for (int i = 0; i < d->nnodes; i++) {
		const struct node_rt *n = &d->nodes[i];

		for (int k = 0; n->have_rep && n->rep.decap && k < AIBL_NCNT__MAX; k++) {
			if (n->rep.decap_counters[k] < 0)
				continue;
			fputs("aibl_node_decap_packets_total{node=\"", f);
			label(f, n->name);
			fprintf(f, "\",counter=\"%s\"} %lld\n", agent_report__decap_names[k],
				(long long)n->rep.decap_counters[k]);
		}
	}
	metric_head(f, "aibl_controller_loop_seconds", "gauge", "duration of the last loop");
	fprintf(f, "aibl_controller_loop_seconds %.6f\n", d->st.loop_ms / 1e3);
	metric_head(f, "aibl_controller_loop_seconds_max", "gauge", "longest loop so far");
	fprintf(f, "aibl_controller_loop_seconds_max %.6f\n", d->st.loop_ms_max / 1e3);
	metric_head(f, "aibl_controller_recompute_seconds", "gauge",
		    "last recompute and map write");
	fprintf(f, "aibl_controller_recompute_seconds %.6f\n", d->st.recompute_ms / 1e3);
	metric_head(f, "aibl_controller_poll_errors_total", "counter", "failed node polls");
	fprintf(f, "aibl_controller_poll_errors_total %llu\n",
		(unsigned long long)d->st.poll_errors);
	metric_head(f, "aibl_controller_auth_failures_total", "counter",
		    "refused agent reports (unsigned, bad signature) and API requests (token)");
	fprintf(f, "aibl_controller_auth_failures_total{source=\"agent\"} %llu\n",
		(unsigned long long)__atomic_load_n(&d->st.auth_fail_agent, __ATOMIC_RELAXED));
	fprintf(f, "aibl_controller_auth_failures_total{source=\"api\"} %llu\n",
		(unsigned long long)__atomic_load_n(&d->st.auth_fail_api, __ATOMIC_RELAXED));
	metric_head(f, "aibl_controller_polls_asked_total", "counter",
		    "early polls asked for (POST /v1/nodes/NAME/poll: an agent saw a change)");
	fprintf(f, "aibl_controller_polls_asked_total %llu\n",
		(unsigned long long)__atomic_load_n(&d->st.polls_asked, __ATOMIC_RELAXED));
	metric_head(f, "aibl_controller_polls_early_total", "counter",
		    "poll rounds started early because one was asked for");
	fprintf(f, "aibl_controller_polls_early_total %llu\n",
		(unsigned long long)__atomic_load_n(&d->st.polls_early, __ATOMIC_RELAXED));
	metric_head(f, "aibl_controller_background_total", "counter",
		    "ai: background loads (op=load) and the unloads that take them back "
		    "(op=unload), by what became of them: asked of the node's agent, done "
		    "(resident; gone), refused (by the agent, failed or late)");
	for (int u = 0; u < 2; u++)
		for (int r = 0; r < BG__MAX; r++)
			fprintf(
			    f, "aibl_controller_background_total{op=\"%s\",result=\"%s\"} %llu\n",
			    u ? "unload" : "load",
			    r == BG_ASKED  ? "asked"
			    : r == BG_DONE ? "done"
					   : "refused",
			    (unsigned long long)__atomic_load_n(&d->st.bg[u][r], __ATOMIC_RELAXED));
	metric_head(f, "aibl_controller_table_writes_total", "counter", "lookup tables written");
	fprintf(f, "aibl_controller_table_writes_total %llu\n",
		(unsigned long long)d->st.table_writes);
	metric_head(f, "aibl_controller_reloads_total", "counter", "config reloads by result");
	fprintf(f, "aibl_controller_reloads_total{result=\"ok\"} %llu\n",
		(unsigned long long)d->st.reloads_ok);
	fprintf(f, "aibl_controller_reloads_total{result=\"refused\"} %llu\n",
		(unsigned long long)d->st.reloads_failed);
	metric_head(f, "aibl_dataplane_events_total", "counter", "XDP program counters");
	pc = calloc(d->ncpus, sizeof(*pc));
	for (__u32 c = 0; pc && c < AIBL_CNT__MAX; c++) {
		unsigned long long sum = 0;

		if (!bpf_map_lookup_elem(d->fd_stats, &c, pc))
			for (int cpu = 0; cpu < d->ncpus; cpu++)
				sum += pc[cpu];
		fprintf(f, "aibl_dataplane_events_total{event=\"%s\"} %llu\n", counters[c].name,
			sum);
	}
	free(pc);
	fclose(f);
	return buf;
}

/*
 * POST /v1/nodes/NAME/unload?model=M and GET /v1/nodes/NAME/load, passed
 * to the node's agent (POST /v1/unload, GET /v1/load: docs/agent.md "Drain,
 * then unload"). The unload is signed with the node's key where
 * agent_key_file is set, so an operator drains and unloads a model with
 * the API token, not the node's key; the agent takes this controller's
 * address as a --controller one. The agent's answer comes back as
 * {"node", "agent_status", "agent"} with its HTTP status, 502 when it gave
 * none. On one of the API's threads, so bounded by API_AGENT_MS; the
 * other answers meanwhile.
 */
#define API_AGENT_MS 2000
#define API_THREADS  2 /* the handlers read the controller under its lock */

/* a drain_timeout_ms of a query: decimal digits, at most
 * AR_DRAIN_TIMEOUT_MAX_MS; 0 or -EINVAL */
static int api_parse_ms(const char *v, long *ms)
{
	char *end;

	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	*ms = strtol(v, &end, 10);
	return errno || *end || *ms > AR_DRAIN_TIMEOUT_MAX_MS ? -EINVAL : 0;
}

static size_t agent_body(char *p, size_t size, size_t n, void *ud)
{
	struct http_body *b = ud;

	if (http_body__feed(b, p, size * n, AR_MAX_BYTES) || b->too_big)
		return 0;
	return size * n;
}

static enum MHD_Result agent_forward(struct aibld *d, struct MHD_Connection *c, const char *node,
				     const char *model, long wait_ms)
{
	char url[CFG_URL_LEN + 16], nonce[AIBL_AUTH_NONCE_MAX], sig[AIBL_AUTH_HDR_MAX];
	char what[AIBL_AUTH_WHAT_MAX], hdr[AIBL_AUTH_HDR_MAX + 32];
	char errbuf[CURL_ERROR_SIZE] = "", msg[CURL_ERROR_SIZE + 64], *post = NULL;
	struct curl_slist *hdrs = NULL;
	struct http_body b = {};
	const struct node_rt *n;
	struct aibl_key nk;
	json_t *ans;
	int err = 0;
	long code = 0;
	CURLcode rc;
	CURL *h;

	pthread_mutex_lock(&d->lock);
	n = aibld__node(d, node);
	if (!n || n->cfg_idx < 0) {
		pthread_mutex_unlock(&d->lock);
		snprintf(msg, sizeof(msg), "unknown node '%s'", node);
		return reply_error(c, MHD_HTTP_NOT_FOUND, msg);
	}
	if (!d->cfg.nodes[n->cfg_idx].agent[0]) {
		pthread_mutex_unlock(&d->lock);
		snprintf(msg, sizeof(msg), "node '%s' has no agent to ask", node);
		return reply_error(c, MHD_HTTP_CONFLICT, msg);
	}
	poller__agent_url(url, sizeof(url), d->cfg.nodes[n->cfg_idx].agent,
			  model ? "v1/unload" : "v1/load");
	/* the unload is signed as the poller signs its requests (sig "" without
	 * agent_key_file) */
	sig[0] = '\0';
	if (model) {
		err = aibl_auth__unload_what(what, sizeof(what), model, wait_ms) ?:
			  aibl_auth__nonce(nonce, sizeof(nonce))
			  ?: poller__sign(d, node, nonce, what, &nk, sig, sizeof(sig));
		OPENSSL_cleanse(&nk, sizeof(nk));
	}
	pthread_mutex_unlock(&d->lock);
	if (err)
		return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot sign the request");

	h = curl_easy_init();
	if (!h)
		return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot start libcurl");
	if (model) {
		json_t *o = json_pack("{s:s}", "model", model);

		if (o && wait_ms >= 0 &&
		    json_object_set_new(o, "drain_timeout_ms", json_integer(wait_ms))) {
			json_decref(o);
			o = NULL;
		}

		post = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		if (sig[0]) {
			snprintf(hdr, sizeof(hdr), "%s: %s", AIBL_AUTH_HEADER, sig);
			hdrs = curl_slist_append(hdrs, hdr);
		}
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post ? post : "");
	}
	aibl_curl__direct(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)API_AGENT_MS);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, agent_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	rc = model && !post ? CURLE_FAILED_INIT : curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	free(post);
	if (rc != CURLE_OK || code < 100 || code > 599) {
		http_body__free(&b);
		snprintf(msg, sizeof(msg), "agent %s: %s", url,
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		pr_warn("API: %s", msg);
		return reply_error(c, MHD_HTTP_BAD_GATEWAY, msg);
	}
	ans = json_loadb(http_body__str(&b), b.len, 0, NULL);
	if (!ans)
		ans = json_string(b.len ? "(not JSON)" : "");
	http_body__free(&b);
	if (model)
		pr_info("API: node %s: unload of %s asked of its agent: HTTP %ld", node, model,
			code);
	return reply_json(c, (unsigned int)code,
			  json_pack("{s:s, s:i, s:o}", AIBL_SJ_NODE, node, "agent_status",
				    (int)code, "agent", ans));
}

static bool token_ok(struct api *a, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	char token[sizeof(a->token)];
	size_t tl;
	bool ok;

	pthread_mutex_lock(&a->tlock);
	memcpy(token, a->token, sizeof(token));
	pthread_mutex_unlock(&a->tlock);
	tl = strlen(token);
	if (!tl)
		return true;
	if (!h || strncasecmp(h, "Bearer ", 7)) {
		ok = false;
	} else {
		unsigned char got[EVP_MAX_MD_SIZE], want[EVP_MAX_MD_SIZE];
		unsigned int n = 0;

		h += 7;
		while (*h == ' ')
			h++;
		/* digests compared: the time taken tells nothing of the
		 * token's length, as comparing the texts' lengths first did */
		ok = EVP_Digest(h, strlen(h), got, &n, EVP_sha256(), NULL) &&
		     EVP_Digest(token, tl, want, &n, EVP_sha256(), NULL) &&
		     !CRYPTO_memcmp(got, want, n);
		OPENSSL_cleanse(want, sizeof(want));
	}
	OPENSSL_cleanse(token, sizeof(token));
	return ok;
}

void api__set_token(struct api *a, const char *token)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->tlock);
	snprintf(a->token, sizeof(a->token), "%s", token);
	pthread_mutex_unlock(&a->tlock);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	struct api *a = cls;
	struct aibld *d = a->d;
	enum MHD_Result ret;

	if (!*con_cls) {
		*con_cls = (void *)1; /* headers seen; body (if any) next */
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* drain/undrain take no body */
		return MHD_YES;
	}
	if (!strcmp(url, "/metrics") || !strcmp(url, "/v1/status")) {
		bool metrics = url[1] == 'm';

		if (strcmp(method, "GET") && strcmp(method, "HEAD"))
			return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
		pthread_mutex_lock(&d->lock);
		if (metrics) {
			char *t = metrics_text(d);

			pthread_mutex_unlock(&d->lock);
			return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", t);
		}
		{
			json_t *j = status_json(d);

			pthread_mutex_unlock(&d->lock);
			return reply_json(c, MHD_HTTP_OK, j);
		}
	}
	if (!strcmp(url, "/v1/cluster")) {
		json_t *j;

		if (strcmp(method, "GET") && strcmp(method, "HEAD"))
			return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
		pthread_mutex_lock(&d->lock);
		j = cluster__json(d);
		pthread_mutex_unlock(&d->lock);
		if (!j)
			return reply_error(c, MHD_HTTP_NOT_FOUND, "not in cluster mode (no etcd)");
		return reply_json(c, MHD_HTTP_OK, j);
	}
	if (!strncmp(url, "/v1/nodes/", 10)) {
		const char *name = url + 10, *slash = strrchr(name, '/');
		char node[AIBL_NAME_LEN + 1];
		bool drain, poll, unload, load;
		int err;

		if (!slash ||
		    (strcmp(slash, "/drain") && strcmp(slash, "/undrain") &&
		     strcmp(slash, "/poll") && strcmp(slash, "/unload") &&
		     strcmp(slash, "/load")) ||
		    slash == name || (size_t)(slash - name) > AIBL_NAME_LEN)
			return reply_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint");
		load = !strcmp(slash, "/load");
		unload = !strcmp(slash, "/unload");
		if (strcmp(method, load ? "GET" : "POST"))
			return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
					   load ? "use GET" : "use POST");
		/* a poll asked for early needs no token: all it can cause is a
		 * poll, whose answer is checked as ever (and signed, with
		 * agent_key_file), no sooner than poll_interval_ms / 10 after
		 * the last one */
		poll = !strcmp(slash, "/poll");
		if (!poll && !token_ok(a, c)) {
			__atomic_fetch_add(&d->st.auth_fail_api, 1, __ATOMIC_RELAXED);
			auth_refused_log(a, method, url);
			return reply_error(c, MHD_HTTP_UNAUTHORIZED,
					   "missing or wrong bearer token");
		}
		memcpy(node, name, slash - name);
		node[slash - name] = 0;
		/* names are from a safe set (config.c); anything else is no node,
		 * and is not echoed */
		if (!aibl_name__valid(node, AIBL_NAME_LEN))
			return reply_error(c, MHD_HTTP_NOT_FOUND,
					   "no such node (names are " AIBL_NAME_CHARSET ")");
		if (unload || load) {
			const char *model = NULL, *wait;
			long wait_ms = -1;
			size_t ml;

			if (unload) {
				model =
				    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
				ml = model ? strlen(model) : 0;
				/* a model name as an agent reports it: status lists
				 * adapters and hub ids up to 127 bytes, and each
				 * must be unloadable */
				if (!ml || ml >= AR_MODEL_LEN)
					return reply_error(
					    c, MHD_HTTP_BAD_REQUEST,
					    "?model= (1 to 127 characters) is required");
				for (size_t i = 0; i < ml; i++)
					if ((unsigned char)model[i] < 0x21 ||
					    (unsigned char)model[i] >= 0x7f)
						return reply_error(
						    c, MHD_HTTP_BAD_REQUEST,
						    "model: printable ASCII, no spaces");
				/* the unload's own bound on the wait for the
				 * balancers' connections (the agent's default
				 * without it) */
				wait = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
								   "drain_timeout_ms");
				if (wait && api_parse_ms(wait, &wait_ms))
					return reply_error(c, MHD_HTTP_BAD_REQUEST,
							   "drain_timeout_ms: an integer from 0 "
							   "to 3600000");
			}
			return agent_forward(d, c, node, model, wait_ms);
		}
		drain = !strcmp(slash, "/drain");
		pthread_mutex_lock(&d->lock);
		if (poll) {
			const struct node_rt *n = aibld__node(d, node);

			err = n && n->cfg_idx >= 0 ? 0 : -ENOENT;
		} else {
			err = nodes__set_drain(d, node, drain);
		}
		pthread_mutex_unlock(&d->lock);
		if (err) {
			char msg[96];

			snprintf(msg, sizeof(msg), "unknown node '%s'", node);
			return reply_error(c, MHD_HTTP_NOT_FOUND, msg);
		}
		if (poll) {
			__atomic_fetch_add(&d->st.polls_asked, 1, __ATOMIC_RELAXED);
			aibld__wake(d->poll_fd);
			return reply_json(
			    c, MHD_HTTP_ACCEPTED,
			    json_pack("{s:s,s:b}", AIBL_SJ_NODE, node, AIBL_SJ_POLL, 1));
		}
		aibld__wake(d->wake_fd);
		ret =
		    reply_json(c, MHD_HTTP_OK,
			       json_pack("{s:s,s:b}", AIBL_SJ_NODE, node, AIBL_SJ_DRAINING, drain));
		return ret;
	}
	return reply_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint");
}

int api__start(struct aibld *d, const char *token, struct api **out)
{
	struct http_guard_cfg gcfg = {
	    .what = "API",
	    .max_conns = API_MAX_CONNS,
	    .max_per_src = API_MAX_PER_SRC,
	    .reserve = API_RESERVE,
	    .request_ms = API_REQUEST_MS,
	};
	struct MHD_OptionItem gopts[HTTP_GUARD_NOPTS];
	struct sockaddr_storage ss;
	struct api *a;
	int err;

	if (listen_addr__parse(d->cfg.status_listen, &ss, NULL, NULL, 0))
		return -EINVAL;
	http_guard__add_prio(&gcfg, "127.0.0.1");
	http_guard__add_prio(&gcfg, "::1");
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->d = d;
	pthread_mutex_init(&a->tlock, NULL);
	snprintf(a->token, sizeof(a->token), "%s", token);
	err = http_guard__new(&gcfg, &a->guard);
	if (err) {
		OPENSSL_cleanse(a->token, sizeof(a->token));
		free(a);
		return err;
	}
	http_guard__options(a->guard, gopts);
	a->mhd = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
		(ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	    0, http_guard__accept, a->guard, handle, a, MHD_OPTION_ARRAY, gopts,
	    MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_CONNECTION_TIMEOUT, 10U,
	    /* a forward to a node's agent holds its thread up to
	     * API_AGENT_MS: the other answers meanwhile */
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)API_THREADS, MHD_OPTION_END);
	if (!a->mhd) {
		pr_err("cannot listen on %s (in use?)", d->cfg.status_listen);
		http_guard__free(a->guard);
		OPENSSL_cleanse(a->token, sizeof(a->token));
		free(a);
		return -EADDRINUSE;
	}
	pr_info("API on http://%s", d->cfg.status_listen);
	*out = a;
	return 0;
}

void api__stop(struct api *a)
{
	if (!a)
		return;
	MHD_stop_daemon(a->mhd);
	http_guard__free(a->guard);
	pthread_mutex_destroy(&a->tlock);
	OPENSSL_cleanse(a->token, sizeof(a->token));
	free(a);
}
