// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Node state: circuit breakers and cache hints.
 *
 * A node's agent can fail while its model server is fine; re-steering the
 * node's established flows then breaks connections that would have
 * finished. So "we cannot see/trust the agent" and "the backend is dead"
 * are two states:
 *
 *	from		to		when
 *	UP		UNHEALTHY	fail_after failed agent polls in a row and the
 *					backend check of that round answers
 *	UP		DOWN		the same but the backend check failed (or the
 *					node has no agent, or no port to check)
 *	UNHEALTHY	DOWN		fail_after failed backend checks in a row
 *	DOWN		UNHEALTHY	rise_after good backend checks in a row (the
 *					agent still failing)
 *	UNHEALTHY, DOWN	UP		rise_after good polls in a row
 *
 * A failed poll is anything that is not a well-formed, correctly signed
 * report for this very node: unreachable, timeout, HTTP error, garbage,
 * failed authentication, a report naming another node, a stale report (no
 * model server answered the agent). The content of a failed poll is never
 * used. Nodes without an agent: a TCP connect is the poll, UP <-> DOWN only.
 *
 * The backend check is the same TCP connect, to the node's health_port or
 * first service port; for a node with an agent it runs beside the agent
 * poll from the round that can open the breaker on, and every round while
 * the node is UNHEALTHY or DOWN. UNHEALTHY: no new flows (DRAINING in the
 * data plane), out of every table, no pins, its last report forgotten;
 * established flows continue. DOWN: AIBL_BE_F_DOWN, established flows are
 * re-steered. A report for another node or with a bad signature is treated
 * alike: a rogue answer never attracts traffic, it only stops new flows.
 * Draining is orthogonal (operator's choice) and survives all of this.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include "aibld.h"
#include "log.h"
#include "policy.h"

const char *aibld__node_state(const struct node_rt *n)
{
	if (n->down)
		return "down";
	if (n->unhealthy)
		return "unhealthy";
	if (n->unchecked)
		return "pending";
	if (n->draining || n->cfg_idx < 0)
		return "draining";
	if (n->overloaded)
		return "overloaded";
	return "up";
}

struct node_rt *aibld__node(struct aibld *d, const char *name)
{
	for (int i = 0; i < d->nnodes; i++)
		if (!strcmp(d->nodes[i].name, name))
			return &d->nodes[i];
	return NULL;
}

const char *nodes__fail_name(unsigned int kind)
{
	static const char *const names[] = {
	    [NODE_FAIL_UNREACHABLE] = "unreachable",
	    [NODE_FAIL_TIMEOUT] = "timeout",
	    [NODE_FAIL_HTTP] = "http_status",
	    [NODE_FAIL_TOO_LARGE] = "too_large",
	    [NODE_FAIL_AUTH] = "auth",
	    [NODE_FAIL_BAD_REPORT] = "bad_report",
	    [NODE_FAIL_FOREIGN] = "foreign_report",
	    [NODE_FAIL_STALE] = "stale",
	    [NODE_FAIL_BACKEND] = "backend_check",
	};

	return kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "unknown";
}

bool nodes__has_agent(const struct aibld *d, const struct node_rt *n)
{
	return n->cfg_idx >= 0 && d->cfg.nodes[n->cfg_idx].agent[0];
}

bool nodes__want_backend_check(const struct aibld *d, const struct node_rt *n)
{
	return nodes__has_agent(d, n) &&
	       (n->down || n->unhealthy || n->fails + 1 >= d->cfg.fail_after);
}

/* what it reported no longer describes it */
static void forget_report(struct node_rt *n)
{
	n->have_rep = false;
	agent_report__free(&n->rep);
}

struct node_held *nodes__held(struct node_rt *n, const char *svc, const char *model)
{
	for (int i = 0; i < n->nheld; i++)
		if (!strcmp(n->held[i].svc, svc) && !strcmp(n->held[i].model, model))
			return &n->held[i];
	return NULL;
}

void nodes__held_add(struct node_rt *n, const char *svc, const char *model, __u64 now)
{
	struct node_held *h = nodes__held(n, svc, model);

	if (!h && n->nheld < NODE_HELD_MAX)
		h = &n->held[n->nheld++];
	if (!h) {
		/* full: the one held longest makes room */
		h = &n->held[0];
		for (int i = 1; i < n->nheld; i++)
			if (n->held[i].since_ms < h->since_ms)
				h = &n->held[i];
		pr_info("node '%s': model '%s' (service '%s') is no longer taken back: %d loads "
			"held there",
			n->name, h->model, h->svc, NODE_HELD_MAX);
	}
	memset(h, 0, sizeof(*h));
	snprintf(h->model, sizeof(h->model), "%s", model);
	snprintf(h->svc, sizeof(h->svc), "%s", svc);
	h->since_ms = now;
}

void nodes__held_drop(struct node_rt *n, struct node_held *h)
{
	int i = (int)(h - n->held);

	if (i < 0 || i >= n->nheld)
		return;
	memmove(&n->held[i], &n->held[i + 1], (n->nheld - i - 1) * sizeof(*h));
	n->nheld--;
}

int nodes__model_wanted(const struct aibld *d, int si, const struct node_rt *n, const char *model,
			__u64 now)
{
	const struct config *c = &d->cfg;

	for (int j = 0; j < c->nservices; j++) {
		const struct cfg_service *cs = &c->services[j];
		const struct svc_rt *s = &d->svcs[j];

		if (j == si || strcmp(cs->model, model))
			continue;
		for (int k = 0; k < cs->nnodes; k++) {
			if (cs->nodes[k] != n->cfg_idx)
				continue;
			if (cs->policy != AIBL_POL_AI) {
				if (c->nodes[n->cfg_idx].weight)
					return j;
			} else if (!s->carried[k] ||
				   now - s->carried[k] < c->ai.background_unload_ms) {
				return j;
			}
		}
	}
	return -1;
}

/* what the report says of the model: 2 being unloaded, 1 resident, 0 not
 * (listed loadable, or not listed) */
static int rep_model(const struct agent_report *r, const char *model)
{
	for (int i = 0; i < r->nmodels; i++)
		if (!strcmp(r->models[i].name, model))
			return r->models[i].unloading ? 2 : r->models[i].resident;
	return 0;
}

void nodes__load_check(struct aibld *d, struct node_rt *n, __u64 now)
{
	struct node_load *l = &n->load;
	__u64 limit = d->cfg.ai.background_load_ms ? d->cfg.ai.background_load_ms : 300000;
	char why[NODE_ERR_LEN];
	int m;

	if (l->state == NODE_LOAD_REFUSED) {
		/* due to be asked again: the service asks if it still needs
		 * the load (background_loads()); until then nothing of it
		 * holds the node (a take-back, another service's load) */
		if (now >= l->retry_ms)
			memset(l, 0, sizeof(*l));
		return;
	}
	if (l->state != NODE_LOAD_QUEUED && l->state != NODE_LOAD_ASKED)
		return;
	if (!l->unload) {
		/* the model turning resident ends a load (background_loads());
		 * the service's need may end first, the bound holds anyway */
		if (now - l->since_ms >= limit) {
			snprintf(why, sizeof(why), "not resident %llu ms after it was asked",
				 (unsigned long long)(now - l->since_ms));
			nodes__load_refused(d, n, why);
		}
		return;
	}
	if (l->state != NODE_LOAD_ASKED)
		return;
	/* the agent flags the model unloading until the engine has answered
	 * (ar_model.unloading): resident again after that, the engine kept
	 * it; neither, it is gone */
	m = n->have_rep && n->last_ok_ms >= l->since_ms ? rep_model(&n->rep, l->model) : -1;
	if (m == 0) {
		pr_info("node '%s': model '%s' unloaded %llu ms after it was asked; service '%s' "
			"is served by its other nodes",
			n->name, l->model, (unsigned long long)(now - l->since_ms), l->svc);
		aibld__bg_count(&d->st, true, BG_DONE);
		memset(l, 0, sizeof(*l));
	} else if (m == 2) {
		l->left = true;
	} else if (m == 1 && l->left) {
		nodes__load_refused(d, n, "the engine kept it: resident again after its drain");
	} else if (now - l->since_ms >= limit) {
		snprintf(why, sizeof(why), "still there %llu ms after it was asked",
			 (unsigned long long)(now - l->since_ms));
		nodes__load_refused(d, n, why);
	}
}

void nodes__load_refused(struct aibld *d, struct node_rt *n, const char *why)
{
	struct node_load *l = &n->load;

	aibld__bg_count(&d->st, l->unload, BG_REFUSED);
	if (l->unload) {
		struct node_held *h = nodes__held(n, l->svc, l->model);

		pr_warn("node '%s': unload of model '%s' refused: %s; it stays, and is asked "
			"again no sooner than %u ms on",
			n->name, l->model, why, d->cfg.ai.background_unload_ms);
		if (h) {
			h->quiet_ms = 0;
			h->retry_ms = clock_mono_ms() + d->cfg.ai.background_unload_ms;
		}
		memset(l, 0, sizeof(*l));
		return;
	}
	l->state = NODE_LOAD_REFUSED;
	l->retry_ms = clock_mono_ms() + d->cfg.ai.background_load_ms;
	snprintf(l->error, sizeof(l->error), "%s", why);
	pr_warn("node '%s': background load of model '%s' refused: %s; service '%s' sends it "
		"flows, which load the model (a cold start)",
		n->name, l->model, l->error, l->svc);
}

void nodes__backend_result(struct aibld *d, struct node_rt *n, bool ok, const char *err)
{
	n->be_checked = true;
	if (ok) {
		n->be_fails = 0;
		n->be_oks++;
	} else {
		n->be_oks = 0;
		/* counted an interval apart, as the agent's failures are
		 * (nodes__poll_fail): an unhealthy node's backend is checked
		 * every round, asked ones too */
		if (!d->round_early || !n->be_fails ||
		    d->round_t0_ms - n->be_fail_round_ms >= d->cfg.poll_interval_ms) {
			n->be_fails++;
			n->be_fail_round_ms = d->round_t0_ms;
		}
		pr_debug("node '%s': backend check: %s (%u in a row)", n->name, err, n->be_fails);
	}
	if (n->unhealthy && n->be_fails >= d->cfg.fail_after) {
		n->unhealthy = false;
		n->down = true;
		n->reason = NODE_FAIL_BACKEND;
		pr_warn("node '%s' is down: its backend failed %u checks in a row (%s)", n->name,
			n->be_fails, err);
	} else if (n->down && n->fails && n->be_oks >= d->cfg.rise_after) {
		n->down = false;
		n->unhealthy = true;
		pr_info("node '%s' is unhealthy: its backend answers again, its agent does not",
			n->name);
	}
}

/*
 * Each server's hit rate of n->rep, smoothed under its URL: the servers of
 * the last report and no others (one gone from it is gone from the node);
 * a server without a figure this time keeps its last one.
 */
static void srv_hit_update(struct node_rt *n, double alpha)
{
	struct node_srv_hit old[AR_MAX_SERVERS];
	int ns = n->rep.nservers < AR_MAX_SERVERS ? n->rep.nservers : AR_MAX_SERVERS;

	memcpy(old, n->srv_hit, sizeof(old));
	memset(n->srv_hit, 0, sizeof(n->srv_hit));
	for (int s = 0; s < ns; s++) {
		const struct ar_server *sv = &n->rep.servers[s];
		double was = -1;

		for (int k = 0; k < AR_MAX_SERVERS; k++)
			if (old[k].url[0] && !strcmp(old[k].url, sv->url))
				was = old[k].hit;
		memcpy(n->srv_hit[s].url, sv->url, sizeof(sv->url));
		n->srv_hit[s].hit = policy__ewma(was, sv->prefix_cache_hit_rate, alpha);
	}
}

double nodes__slots(const struct node_rt *n)
{
	if (n->slots >= 1)
		return n->slots;
	return n->have_rep && n->rep.slots >= 1 ? n->rep.slots : -1;
}

double nodes__model_hit(const struct node_rt *n, const char *model)
{
	const struct ar_model *m = NULL;

	for (int i = 0; n->have_rep && model && i < n->rep.nmodels && !m; i++)
		if (!strcmp(n->rep.models[i].name, model))
			m = &n->rep.models[i];
	for (int k = 0; m && m->server[0] && k < AR_MAX_SERVERS; k++)
		if (!strcmp(n->srv_hit[k].url, m->server) && n->srv_hit[k].hit >= 0)
			return n->srv_hit[k].hit;
	return n->hit_rate;
}

/*
 * The most and the fewest flows this balancer can have had open at the node
 * when its agent scraped the report: the report says how long ago (the
 * oldest of its servers' scrapes, age_ms) and the polls before kept what
 * was open and how many had been opened (ours_hist). No more than were open
 * at the last poll before the scrape plus all opened since, nor fewer than
 * now; no fewer than are open now less all opened since; the poll's own
 * time (up to poll_timeout_ms) is counted in. What the node ran beyond the
 * most is others' requests, and ours beyond what it ran carried none (kept
 * alive between requests), whatever our flows did in between (policy.c,
 * ai_others()). Unknown (-1) when the scrape is older than the history, a
 * server was not scraped, or a counter went back (its map made anew).
 */
static void ours_update(struct aibld *d, struct node_rt *n, const struct agent_report *rep)
{
	__u64 now = clock_mono_ms(), flows = n->traffic.new_flows, age = 0, at;
	const struct ours_snap *best = NULL;
	int up = 0;

	for (int i = 0; i < rep->nservers; i++) {
		if (!rep->servers[i].up)
			continue;
		up++;
		if (rep->servers[i].age_ms > age)
			age = rep->servers[i].age_ms;
	}
	age += d->cfg.poll_timeout_ms;
	at = now > age ? now - age : 0;
	for (int i = 0; i < OURS_HIST; i++) {
		const struct ours_snap *h = &n->ours_hist[i];

		if (h->t_ms && h->t_ms <= at && (!best || h->t_ms > best->t_ms))
			best = h;
	}
	n->ours_max = n->ours_min = -1;
	if (up && best && n->active >= 0 && best->active >= 0 && flows >= best->flows) {
		__s64 opened = (__s64)(flows - best->flows); /* since that poll */

		n->ours_max = best->active + opened;
		if (n->active > n->ours_max)
			n->ours_max = n->active;
		/* the flows open now were open then, but for those opened since */
		n->ours_min = n->active - opened;
		if (n->ours_min < 0)
			n->ours_min = 0;
	}
	n->ours_hist[n->ours_next] =
	    (struct ours_snap){.t_ms = now, .active = n->active, .flows = flows};
	n->ours_next = (n->ours_next + 1) % OURS_HIST;
}

/*
 * The node's decap program refusing packets (its drop_* counters grew
 * since the report before): said with what grew, at most once a minute a
 * node. A tunnel from an address outside the agent's --decap-source, or
 * to a VIP it does not hold, is lost there without a trace at the
 * balancer.
 */
static void decap_check(struct node_rt *n, const struct agent_report *rep)
{
	int64_t was = n->have_rep ? agent_report__decap_dropped(&n->rep) : -1;
	__u64 now = clock_mono_ms();
	char what[256] = "";
	size_t off = 0;

	if (was < 0 || agent_report__decap_dropped(rep) <= was ||
	    (n->decap_warned_ms && now - n->decap_warned_ms < 60000))
		return;
	n->decap_warned_ms = now;
	for (int i = 0; i < AIBL_NCNT__MAX && off < sizeof(what); i++) {
		const char *name = agent_report__decap_names[i];
		int64_t a = n->rep.decap_counters[i], b = rep->decap_counters[i];

		if (!strncmp(name, "drop_", 5) && a >= 0 && b > a)
			off += snprintf(what + off, sizeof(what) - off, "%s%s +%lld",
					off ? ", " : "", name, (long long)(b - a));
	}
	pr_warn("node '%s': its decap program on %s dropped packets since the poll before (%s; "
		"docs/dataplane.md \"Counters\")",
		n->name, rep->decap_if[0] ? rep->decap_if : "?", what);
}

void nodes__poll_ok(struct aibld *d, struct node_rt *n, struct agent_report *rep)
{
	/* reports at every poll, the hit rates smoothed over AI_REUSE_TAU_MS */
	double hit_alpha = 1 - exp(-(double)d->cfg.poll_interval_ms / AI_REUSE_TAU_MS);

	n->polls++;
	n->fails = 0;
	n->oks++;
	n->be_checked = false;
	n->last_ok_ms = clock_mono_ms();
	n->last_error[0] = 0;
	if (rep) {
		/* what the report before counted beyond this balancer's flows:
		 * ai believes only what two reports agree on (policy.c) */
		n->prev_other = n->have_rep && n->rep.in_flight >= 0 && n->rep_active >= 0
				    ? n->rep.in_flight - n->rep_active
				    : NAN;
		/* this balancer's counts as the report comes, not as the
		 * last recompute read them */
		tables__read_node(d, n);
		ours_update(d, n, rep);
		decap_check(n, rep);
		agent_report__free(&n->rep);
		n->rep = *rep;
		rep->hints = NULL;
		rep->nhints = 0;
		n->have_rep = true;
		n->ttft_ms = policy__ewma(n->ttft_ms, n->rep.ttft_avg_ms, d->cfg.lt_smoothing);
		n->lat_ms =
		    policy__lat_update(n->lat_ms, &n->lat_floor_ms, &n->rep, d->cfg.lt_smoothing);
		policy__slots_update(&n->slots, &n->ran, &n->rep, d->cfg.lt_smoothing);
		n->run_ms = policy__ewma(n->run_ms, n->rep.run_avg_ms, d->cfg.lt_smoothing);
		n->hit_rate = policy__ewma(n->hit_rate, n->rep.prefix_cache_hit_rate, hit_alpha);
		srv_hit_update(n, hit_alpha);
		if (policy__prefill_update(&n->pf, &n->rep, d->cfg.lt_smoothing))
			pr_info(
			    "node '%s': its prefills take turns on its compute (they waited "
			    "%.0f ms beyond %.0f ms of their own): its sessions' pins hold harder",
			    n->name, n->pf.wait_ms, n->pf.own_ms);
		n->rep_active = n->active;
	}
	if (n->unchecked) {
		n->unchecked = false;
		if (!n->down && !n->unhealthy)
			pr_info("node '%s' is up: its first poll answered", n->name);
	}
	if ((n->down || n->unhealthy) && n->oks >= d->cfg.rise_after) {
		pr_info("node '%s' is up (%u good polls; was %s)", n->name, n->oks,
			n->down ? "down" : "unhealthy");
		n->down = false;
		n->unhealthy = false;
		n->be_fails = n->be_oks = 0;
	}
}

void nodes__poll_fail(struct aibld *d, struct node_rt *n, enum node_fail kind, const char *fmt, ...)
{
	bool checked = n->be_checked, agent = nodes__has_agent(d, n);
	va_list ap;

	n->polls++;
	n->poll_errors++;
	d->st.poll_errors++;
	n->oks = 0;
	/* fail_after counts failures an interval apart: a round an agent's
	 * ask brought forward (anyone may ask, up to ten an interval) counts
	 * one only when the last one counted is an interval old, so asks
	 * cannot take a node out sooner than its scheduled rounds would */
	if (!d->round_early || !n->fails ||
	    d->round_t0_ms - n->fail_round_ms >= d->cfg.poll_interval_ms) {
		n->fails++;
		n->fail_round_ms = d->round_t0_ms;
	}
	n->be_checked = false;
	n->last_fail = kind;
	va_start(ap, fmt);
	vsnprintf(n->last_error, sizeof(n->last_error), fmt, ap);
	va_end(ap);
	pr_debug("node '%s': %s (%u in a row)", n->name, n->last_error, n->fails);
	/* an unhealthy node with an agent goes down by its backend checks only */
	if (n->down || (n->unhealthy && agent) || n->fails < d->cfg.fail_after)
		return;
	forget_report(n);
	n->reason = kind;
	n->unchecked = false; /* down or unhealthy from here, as any node */
	if (agent && checked && !n->be_fails) {
		n->unhealthy = true;
		pr_warn("node '%s' is unhealthy after %u failed agent polls (%s): its backend "
			"answers, so no new flows, established ones continue",
			n->name, n->fails, n->last_error);
		return;
	}
	n->unhealthy = false;
	n->down = true;
	if (agent && checked)
		n->reason = NODE_FAIL_BACKEND;
	pr_warn("node '%s' is down after %u failures: %s%s", n->name, n->fails, n->last_error,
		!agent	  ? ""
		: checked ? "; its backend does not answer either"
			  : "; no port to check its backend");
}

int nodes__set_drain(struct aibld *d, const char *name, bool drain)
{
	struct node_rt *n = aibld__node(d, name);

	if (!n || n->cfg_idx < 0)
		return -ENOENT;
	if (n->draining != drain)
		pr_info("node '%s' %s", name, drain ? "draining" : "no longer draining");
	n->draining = drain;
	return 0;
}

/* ---- cache hints -> pins ---- */

int nodes__pin_cmp_key(const void *a, const void *b)
{
	return memcmp(&((const struct pin_ent *)a)->key, &((const struct pin_ent *)b)->key,
		      sizeof(struct aibl_pin_key));
}

/* best first: score, then the hint that lives longer (the fresher one: a
 * session moved is pinned where it lands, though both nodes' servers gave
 * it score 1), then the earlier node index for determinism */
static int pin_cmp_score(const void *a, const void *b)
{
	const struct pin_ent *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->val.expires_ns != y->val.expires_ns)
		return x->val.expires_ns > y->val.expires_ns ? -1 : 1;
	return x->node - y->node;
}

static bool hint_matches(const struct cfg_service *s, const struct ar_hint *h)
{
	if (h->vip_family) {
		if (h->vip_family != s->vip.family || memcmp(&h->vip, &s->vip.addr, sizeof(h->vip)))
			return false;
		if (h->port && s->port && h->port != s->port)
			return false;
		if (h->proto && h->proto != s->proto)
			return false;
		/* a model named too: the VIP's services of another model
		 * (one address, a port each) hold no cache of it */
		return !h->model[0] || !s->model[0] || !strcmp(h->model, s->model);
	}
	return h->model[0] && !strcmp(h->model, s->model);
}

/* node idx's position in the service's node list, -1 none */
static int svc_node_pos(const struct cfg_service *s, int idx)
{
	for (int k = 0; k < s->nnodes; k++)
		if (s->nodes[k] == idx)
			return k;
	return -1;
}

/*
 * How many prefills a prefill waits for at the service's nodes whose
 * prefills share their compute (struct policy_prefill: the measured wait
 * over the own compute), their mean; 0 none measured
 */
static double svc_contention(const struct aibld *d, const struct cfg_service *s)
{
	double sum = 0;
	int n = 0;

	for (int k = 0; k < s->nnodes; k++) {
		const struct policy_prefill *pf = &d->nodes[s->nodes[k]].pf;

		if (pf->shared && pf->own_ms > 0 && pf->wait_ms >= 0) {
			sum += pf->wait_ms / pf->own_ms;
			n++;
		}
	}
	return n ? sum / n : 0;
}

/* this balancer takes the model off the node (take-back): from its ask on,
 * before the agent's report shows the drain, no session is pinned there */
static bool unloading_here(const struct node_rt *nd, const char *model)
{
	return nd->load.unload && nd->load.state != NODE_LOAD_NONE &&
	       !strcmp(nd->load.model, model);
}

/*
 * Desired pins from every usable node's latest hints: a hint names a VIP
 * (and port/proto) or only a model; it pins the client to the node in
 * every matching service the node belongs to. Per node the best
 * pins_per_node hints by score are kept, per service the best
 * pins_per_service, overall the map's capacity; the same client hinted by
 * two nodes goes to the higher score. Result sorted by key.
 */
int nodes__build_pins(struct aibld *d, struct pin_ent **out, int *count)
{
	const struct config *c = &d->cfg;
	__u64 now = clock_mono_ns();
	struct pin_ent *all = NULL;
	int n = 0, cap = 0, err = 0, kept;
	double *contention = calloc(c->nservices + 1, sizeof(double));

	*out = NULL;
	*count = 0;
	if (!contention)
		return -ENOMEM;
	for (int s = 0; s < c->nservices; s++) {
		d->svcs[s].npins = 0;
		contention[s] = svc_contention(d, &c->services[s]);
	}
	for (int i = 0; i < c->nnodes; i++) {
		struct node_rt *nd = &d->nodes[i];
		struct policy_node pn;
		int start = n;
		__u64 since;
		bool slower;

		nd->npins = 0;
		if (nd->down || nd->unhealthy || nd->draining || nd->unchecked || !nd->have_rep)
			continue;
		/* a hint's life counts from when its report came, not from
		 * this recompute: a report kept through failed polls would
		 * keep its pins alive past their hints */
		since = nd->last_ok_ms ? nd->last_ok_ms * 1000000ULL : now;
		pn = (struct policy_node){.cfg = &c->nodes[i], .rep = &nd->rep};
		for (int h = 0; h < nd->rep.nhints; h++) {
			const struct ar_hint *hint = &nd->rep.hints[h];
			__u64 ttl;

			/* agent_report__parse() parsed the addresses */
			if (!hint->ttl_ms || !hint->client_family)
				continue;
			ttl = hint->ttl_ms < c->pin_max_ttl_ms ? hint->ttl_ms : c->pin_max_ttl_ms;
			if (since + ttl * 1000000ULL <= now)
				continue; /* its life ended since the report */
			for (int s = 0; s < c->nservices; s++) {
				const struct cfg_service *cs = &c->services[s];
				struct pin_ent *p;
				int pos;

				/* cache awareness is the ai policy's: a classic
				 * policy's spread must follow its weights/counts */
				if (cs->policy != AIBL_POL_AI || !hint_matches(cs, hint))
					continue;
				/* a model unloaded since takes its sessions' caches
				 * with it: the pin would only buy a cold start.
				 * A node measured beyond the latency bound while the
				 * nodes inside it have room (policy_out.slow: a slower
				 * tier, e.g. one explored before anything was
				 * measured, or a spill of a burst now drained)
				 * loses its pins too: what the cached prefix saves
				 * is one prefill on a fast node, less than what
				 * every later turn loses there (the bound is
				 * latency_spread x the best node's whole request
				 * latency, prefill and decode). While the
				 * slower tier is open (the faster one busy) or the
				 * fast nodes are half full (a moved session's first
				 * turn is a full prefill others would wait for), its
				 * pins hold, so a session does not bounce with the
				 * load. A session moved is pinned where it lands.
				 * Where prefills take turns on the node's compute
				 * (struct policy_prefill) the pin holds either way:
				 * the move would cost the fast node a whole prefill
				 * that every request queued there waits for */
				/* a node the service may not use (standby at
				 * weight 0, another accelerator): the data plane
				 * checks a pin's backend, not its membership */
				pos = svc_node_pos(cs, i);
				if (pos < 0 || !config__may_serve(cs, &c->nodes[i]) ||
				    (d->svcs[s].slow[pos] && !nd->pf.shared) ||
				    policy__model_state(&pn, cs->model) != MODEL_RESIDENT ||
				    unloading_here(nd, cs->model))
					continue;
				if (n == cap) {
					int ncap = cap ? cap * 2 : 256;
					struct pin_ent *na = realloc(all, ncap * sizeof(*all));

					if (!na) {
						err = -ENOMEM;
						goto out;
					}
					all = na;
					cap = ncap;
				}
				p = &all[n++];
				memset(p, 0, sizeof(*p));
				p->key.svc_id = d->svcs[s].id;
				p->key.family = hint->client_family;
				p->key.client = hint->client;
				p->val.backend = nd->id;
				/* sticky until saturated: the data plane sends the
				 * session elsewhere while the queue its node has,
				 * with the flows it counts now, is pin_spill_ms
				 * longer than the p2c choice's; a report-driven
				 * release would lag a burst and drop the pin
				 * for every session at once */
				p->val.spill_ms = c->ai.pin_spill_ms;
				/* slower beside the nodes of its model */
				slower = policy__slower(&c->ai, nd->lat_floor_ms,
							d->svcs[s].best_floor_ms > 0
							    ? d->svcs[s].best_floor_ms
							    : d->best_lat_floor_ms);
				if (d->svcs[s].beyond[pos] || slower)
					p->val.flags = AIBL_PIN_F_SLOWER;
				if (nd->pf.shared) {
					p->val.spill_ms = policy__pin_spill(&c->ai, contention[s]);
					p->val.flags = 0;
				}
				p->val.expires_ns = since + ttl * 1000000ULL;
				p->score = hint->score;
				p->node = i;
			}
		}
		/* per node bound */
		if (n - start > (int)c->pins_per_node) {
			qsort(all + start, n - start, sizeof(*all), pin_cmp_score);
			n = start + c->pins_per_node;
		}
	}
	if (!n)
		goto out;
	/* one pin per (service, client): best score wins */
	qsort(all, n, sizeof(*all), pin_cmp_score);
	qsort(all, n, sizeof(*all), nodes__pin_cmp_key); /* not stable: re-pick below */
	kept = 0;
	for (int i = 0; i < n;) {
		int j = i, best = i;

		while (j < n && !nodes__pin_cmp_key(&all[i], &all[j])) {
			if (pin_cmp_score(&all[j], &all[best]) < 0)
				best = j;
			j++;
		}
		all[kept++] = all[best];
		i = j;
	}
	n = kept;
	/* per service and global bounds, by score */
	qsort(all, n, sizeof(*all), pin_cmp_score);
	kept = 0;
	for (int i = 0; i < n && kept < (int)d->max_pins; i++) {
		struct svc_rt *sr = NULL;

		for (int s = 0; s < c->nservices; s++)
			if (d->svcs[s].id == all[i].key.svc_id)
				sr = &d->svcs[s];
		/* every entry was built for a service of d->svcs above */
		if (!sr || sr->npins >= c->pins_per_service)
			continue;
		sr->npins++;
		d->nodes[all[i].node].npins++;
		all[kept++] = all[i];
	}
	n = kept;
	qsort(all, n, sizeof(*all), nodes__pin_cmp_key);
out:
	for (int s = 0; s < c->nservices; s++)
		d->svcs[s].npins = 0;
	for (int i = 0; i < n; i++)
		for (int s = 0; s < c->nservices; s++)
			if (d->svcs[s].id == all[i].key.svc_id)
				d->svcs[s].npins++;
	free(contention);
	if (err) {
		free(all);
		return err;
	}
	*out = all;
	*count = n;
	return 0;
}
