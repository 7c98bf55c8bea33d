// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * One poll round: every node at once through one libcurl multi handle,
 * each transfer bounded by poll_timeout_ms. Nodes with an agent get
 * GET <agent>/v1/report with a fresh X-Aibl-Nonce; the answer must be a
 * schema-1 report (agent_report__parse) for this node. With
 * agent_key_file, the request is signed with the node's key (derived from
 * the file's master key and the node's name, auth.h) and the report must
 * be signed with that key for that nonce. Nodes without an agent get a TCP
 * connect (CURLOPT_CONNECT_ONLY) to health_port, or the port of the first
 * service that lists them. Nodes with an agent get that TCP check too
 * while their agent is failing (nodes__want_backend_check): it tells an
 * agent fault (UNHEALTHY) from a dead backend (DOWN). The round's checks
 * are recorded before the agents' answers, which the state change uses.
 * A node whose background load is queued (struct node_load) gets
 * POST <agent>/v1/load in the same round, signed for AIBL_AUTH_REQ_LOAD
 * and the model with agent_key_file (an unload that takes one back:
 * POST <agent>/v1/unload, AIBL_AUTH_REQ_UNLOAD); its answer changes only
 * the load's state, never the node's health.
 *
 * Runs on the controller thread, which is also the only thread that
 * changes the config and the node list, so reading them needs no lock;
 * recording results does (the API thread reads node state).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "aibld.h"
#include "httpbody.h"
#include "log.h"
#include "curlopt.h"

struct job {
	struct node_rt *n;
	CURL *h;
	bool tcp;     /* a TCP connect: the poll of an agent-less node, or a backend check */
	bool backend; /* the backend check of a node with an agent */
	bool load;    /* a background load: POST <agent>/v1/load */
	char *post;   /* its body */
	bool done;
	CURLcode rc;
	char url[CFG_URL_LEN + 32];
	char nonce[AIBL_AUTH_NONCE_MAX];
	struct aibl_key key; /* the node's, derived from agent_key_file */
	struct curl_slist *hdrs;
	struct http_body body;
	char sig[AIBL_AUTH_HDR_MAX];
	char errbuf[CURL_ERROR_SIZE];
};

int poller__init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) ? -EIO : 0;
}

void poller__fini(void)
{
	curl_global_cleanup();
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct job *j = ud;
	size_t n = size * nmemb;

	/* over the limit or out of memory: returning 0 aborts the transfer */
	if (http_body__feed(&j->body, ptr, n, AR_MAX_BYTES) || j->body.too_big)
		return 0;
	return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
	static const char name[] = AIBL_AUTH_HEADER ":";
	struct job *j = ud;
	size_t n = size * nitems, vlen;
	const char *v;

	if (n <= sizeof(name) - 1 || strncasecmp(buf, name, sizeof(name) - 1))
		return n;
	v = buf + sizeof(name) - 1;
	vlen = n - (sizeof(name) - 1);
	while (vlen && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	if (vlen < sizeof(j->sig)) {
		memcpy(j->sig, v, vlen);
		j->sig[vlen] = 0;
	}
	return n;
}

/* a header line "NAME: VALUE" onto j->hdrs */
static int job_header(struct job *j, const char *name, const char *value)
{
	char line[AIBL_AUTH_HDR_MAX + 64];
	struct curl_slist *l;

	snprintf(line, sizeof(line), "%s: %s", name, value);
	l = curl_slist_append(j->hdrs, line);
	if (!l)
		return -ENOMEM;
	j->hdrs = l;
	return 0;
}

void poller__agent_url(char *buf, size_t len, const char *agent, const char *path)
{
	size_t al = strlen(agent);

	snprintf(buf, len, "%s%s%s", agent, al && agent[al - 1] == '/' ? "" : "/", path);
}

static void agent_url(struct job *j, const char *agent, const char *path)
{
	poller__agent_url(j->url, sizeof(j->url), agent, path);
}

int poller__sign(const struct aibld *d, const char *node, const char *nonce, const char *what,
		 struct aibl_key *key, char *sig, size_t siglen)
{
	sig[0] = '\0';
	if (!d->have_key)
		return 0;
	if (aibl_key__derive(&d->key, node, key) ||
	    aibl_auth__sign_req(key, (__u64)time(NULL), nonce, what, sig, siglen))
		return -EIO;
	return 0;
}

/*
 * With agent_key_file: sign the request for what, with a fresh nonce
 * (j->nonce), by the node's own key (j->key, which the report's signature
 * is checked with): the agent takes only one signed with it.
 */
static int job_sign(struct aibld *d, struct job *j, const char *what)
{
	char sig[AIBL_AUTH_HDR_MAX];

	if (poller__sign(d, j->n->name, j->nonce, what, &j->key, sig, sizeof(sig)))
		return -EIO;
	return sig[0] ? job_header(j, AIBL_AUTH_HEADER, sig) : 0;
}

/* POST <agent>/v1/load {"model": ...}, or /v1/unload for an unload,
 * signed with the node's key */
static int load_setup(struct aibld *d, struct job *j, const char *agent)
{
	const struct node_load *l = &j->n->load;
	char what[AIBL_AUTH_WHAT_MAX];
	json_t *o;
	int err;

	agent_url(j, agent, l->unload ? "v1/unload" : "v1/load");
	o = json_pack("{s:s}", "model", l->model);
	j->post = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!j->post || job_header(j, "Content-Type", "application/json"))
		return -ENOMEM;
	if (aibl_auth__nonce(j->nonce, sizeof(j->nonce)))
		return -EIO;
	/* a take-back's unload states no drain bound: the agent's own */
	if (l->unload)
		aibl_auth__unload_what(what, sizeof(what), l->model, -1);
	else
		snprintf(what, sizeof(what), "%s%s", AIBL_AUTH_REQ_LOAD, l->model);
	err = job_sign(d, j, what);
	if (err)
		return err;
	curl_easy_setopt(j->h, CURLOPT_HTTPHEADER, j->hdrs);
	curl_easy_setopt(j->h, CURLOPT_POSTFIELDS, j->post);
	curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
	return 0;
}

/* the connections this balancer holds of the model the node's agent
 * drains (tables__count_open), or "0": none drains, or its tables still
 * give the node a share of the model's flows; nothing when not counted.
 * With a key, signed for the poll's nonce (after job_sign(), which derived
 * j->key), so that nobody on the way can end or stretch the drain */
static int open_header(const struct aibld *d, struct job *j)
{
	const struct node_rt *n = j->n;
	char v[32 + AR_MODEL_LEN], what[sizeof(AIBL_AUTH_REQ_OPEN) + sizeof(v)];
	char sig[AIBL_AUTH_HDR_MAX];

	if (!n->open_ok)
		return 0;
	if (n->open_model[0] && n->open_flows >= 0)
		snprintf(v, sizeof(v), "%ld %s", n->open_flows, n->open_model);
	else
		snprintf(v, sizeof(v), "0");
	if (d->have_key) {
		snprintf(what, sizeof(what), "%s%s", AIBL_AUTH_REQ_OPEN, v);
		if (aibl_auth__sign_req(&j->key, (__u64)time(NULL), j->nonce, what, sig,
					sizeof(sig)))
			return -EIO;
		if (job_header(j, AIBL_OPEN_SIG_HEADER, sig))
			return -ENOMEM;
	}
	return job_header(j, AR_OPEN_HEADER, v);
}

static int job_setup(struct aibld *d, struct job *j)
{
	const struct cfg_node *cn = &d->cfg.nodes[j->n->cfg_idx];
	long to = d->cfg.poll_timeout_ms;

	j->h = curl_easy_init();
	if (!j->h)
		return -ENOMEM;
	if (j->load) {
		int err = load_setup(d, j, cn->agent);

		if (err)
			return err;
	} else if (cn->agent[0] && !j->backend) {
		int err;

		agent_url(j, cn->agent, "v1/report");
		if (aibl_auth__nonce(j->nonce, sizeof(j->nonce)))
			return -EIO;
		if (job_header(j, AIBL_NONCE_HEADER, j->nonce))
			return -ENOMEM;
		err = job_sign(d, j, AIBL_AUTH_REQ_REPORT);
		if (err)
			return err;
		err = open_header(d, j);
		if (err)
			return err;
		curl_easy_setopt(j->h, CURLOPT_HTTPHEADER, j->hdrs);
		curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
		curl_easy_setopt(j->h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(j->h, CURLOPT_HEADERDATA, j);
	} else {
		__u16 port = config__check_port(&d->cfg, j->n->cfg_idx);

		if (!port)
			return -ENOENT;
		j->tcp = true;
		snprintf(j->url, sizeof(j->url),
			 cn->address.family == AIBL_AF_INET6 ? "http://[%s]:%u/" : "http://%s:%u/",
			 cn->address.text, port);
		curl_easy_setopt(j->h, CURLOPT_CONNECT_ONLY, 1L);
	}
	curl_easy_setopt(j->h, CURLOPT_URL, j->url);
	/* the config takes only http(s) agent URLs; libcurl is held to that too,
	 * so no URL can make it open a file or speak another protocol */
	aibl_curl__direct(j->h);
	curl_easy_setopt(j->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->h, CURLOPT_TIMEOUT_MS, to);
	curl_easy_setopt(j->h, CURLOPT_CONNECTTIMEOUT_MS, to);
	curl_easy_setopt(j->h, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(j->h, CURLOPT_PRIVATE, j);
	curl_easy_setopt(j->h, CURLOPT_USERAGENT, "aibld/" AIBLD_VERSION);
	return 0;
}

/* why a transfer failed: libcurl's detailed message, else its code's */
static const char *job_error(const struct job *j, CURLcode rc)
{
	return j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc);
}

/* judge one finished transfer; caller holds d->lock */
static void job_result(struct aibld *d, struct job *j, CURLcode rc)
{
	struct node_rt *n = j->n;
	const char *unloading;
	struct agent_report rep;
	char err[256];
	long status = 0;
	int e;

	if (j->backend) {
		nodes__backend_result(d, n, rc == CURLE_OK, job_error(j, rc));
		return;
	}
	if (j->load) {
		if (rc == CURLE_OK)
			curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
		if (n->load.unload && (status == 200 || status == 202)) {
			/* 200: no server has it (gone already); 202: draining */
			n->load.state = NODE_LOAD_ASKED;
			pr_info(
			    "node '%s': its agent drains model '%s', then unloads it (HTTP %ld)",
			    n->name, n->load.model, status);
			return;
		}
		if (status == 200 || status == 202) {
			n->load.state = NODE_LOAD_ASKED;
			pr_info("node '%s': its agent loads model '%s' (HTTP %ld)", n->name,
				n->load.model, status);
			return;
		}
		if (status) {
			/* the agent's words, printable: the status JSON carries them */
			int o = snprintf(err, sizeof(err), "HTTP %ld: ", status);
			const char *b = http_body__str(&j->body);

			for (size_t i = 0; i < j->body.len && i < 120 && o < (int)sizeof(err) - 1;
			     i++)
				err[o++] = b[i] >= 0x20 && b[i] < 0x7f ? b[i] : '?';
			err[o] = '\0';
		} else
			snprintf(err, sizeof(err), "%s", job_error(j, rc));
		nodes__load_refused(d, n, err);
		return;
	}
	if (j->body.too_big) {
		nodes__poll_fail(d, n, NODE_FAIL_TOO_LARGE, "report larger than %d bytes",
				 AR_MAX_BYTES);
		return;
	}
	if (rc != CURLE_OK) {
		bool to = rc == CURLE_OPERATION_TIMEDOUT;

		nodes__poll_fail(d, n, to ? NODE_FAIL_TIMEOUT : NODE_FAIL_UNREACHABLE, "%s: %s",
				 to ? "timeout" : "unreachable", job_error(j, rc));
		return;
	}
	if (j->tcp) {
		nodes__poll_ok(d, n, NULL);
		return;
	}
	curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
	if (status == 401 && d->have_key) {
		/* the agent has another key than this node's (or none of ours) */
		__atomic_fetch_add(&d->st.auth_fail_agent, 1, __ATOMIC_RELAXED);
		if (!n->fails)
			pr_warn("node '%s': the agent refused our signed request: its --key is "
				"not this node's key (aibl-agent --derive-key)",
				n->name);
		nodes__poll_fail(d, n, NODE_FAIL_AUTH,
				 "agent refused the signed request (HTTP 401): wrong node key");
		return;
	}
	if (status != 200) {
		nodes__poll_fail(d, n, NODE_FAIL_HTTP, "agent answered HTTP %ld", status);
		return;
	}
	if (d->have_key) {
		e = j->sig[0]
			? aibl_auth__verify(&j->key, j->sig, j->nonce, http_body__str(&j->body),
					    j->body.len, (__u64)time(NULL), AIBL_AUTH_WINDOW_S)
			: -ENOKEY;
		if (e) {
			/* counted always, logged when a run of failures starts */
			__atomic_fetch_add(&d->st.auth_fail_agent, 1, __ATOMIC_RELAXED);
			if (!n->fails)
				pr_warn("node '%s': report refused: %s", n->name,
					e == -ENOKEY ? "unsigned" : "bad signature");
			if (e == -ENOKEY)
				nodes__poll_fail(d, n, NODE_FAIL_AUTH,
						 "unsigned report (agent_key_file is set)");
			else
				nodes__poll_fail(d, n, NODE_FAIL_AUTH, "bad report signature: %s",
						 e == -EPERM ? "wrong key or altered body"
						 : e == -ESTALE
						     ? "signed for another nonce (replay?)"
						 : e == -ETIME ? "timestamp outside the window"
							       : "malformed header");
			return;
		}
	}
	agent_report__init(&rep);
	e = agent_report__parse(http_body__str(&j->body), j->body.len, &rep, err, sizeof(err));
	if (e) {
		nodes__poll_fail(d, n, NODE_FAIL_BAD_REPORT, "bad report: %s", err);
		return;
	}
	if (strcmp(rep.node, n->name)) {
		nodes__poll_fail(d, n, NODE_FAIL_FOREIGN, "report is for node '%.64s'", rep.node);
		agent_report__free(&rep);
		return;
	}
	if (rep.stale) {
		nodes__poll_fail(d, n, NODE_FAIL_STALE,
				 "agent reaches no model server (stale report)");
		agent_report__free(&rep);
		return;
	}
	/* an agent begins to drain a model: the next round states this
	 * balancer's connections of it soon, not an interval later */
	unloading = agent_report__unloading(&rep);
	if (unloading && strcmp(unloading, n->open_model))
		aibld__wake(d->poll_fd);
	nodes__poll_ok(d, n, &rep);
	agent_report__free(&rep);
}

int poller__run(struct aibld *d)
{
	struct job *jobs = NULL;
	CURLM *multi = NULL;
	int njobs = 0, running = 0, err = 0;
	CURLMsg *msg;
	int left;

	tables__count_open(d);
	/* at most three per node: the poll, a backend check and a load */
	jobs = calloc(3 * d->cfg.nnodes + 1, sizeof(*jobs));
	multi = curl_multi_init();
	if (!jobs || !multi) {
		err = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < d->nnodes; i++) {
		for (int k = 0; k < 3; k++) {
			struct job *j = &jobs[njobs];
			const struct node_rt *n = &d->nodes[i];

			if (n->cfg_idx < 0 || (k == 1 && !nodes__want_backend_check(d, n)) ||
			    (k == 2 && (n->load.state != NODE_LOAD_QUEUED ||
					!d->cfg.nodes[n->cfg_idx].agent[0])))
				continue;
			j->n = &d->nodes[i];
			j->backend = k == 1;
			j->load = k == 2;
			err = job_setup(d, j);
			if (err) {
				/* -ENOENT: nothing to check (no health_port, no TCP
				 * service); else that job alone is skipped, the
				 * round goes on for the others */
				if (err != -ENOENT)
					pr_warn("node '%s': %s not asked this round: %s", n->name,
						k == 0	 ? "poll"
						: k == 1 ? "backend check"
							 : "load",
						strerror(-err));
				curl_easy_cleanup(j->h);
				curl_slist_free_all(j->hdrs);
				free(j->post);
				OPENSSL_cleanse(&j->key, sizeof(j->key));
				memset(j, 0, sizeof(*j));
				err = 0;
				continue;
			}
			curl_multi_add_handle(multi, j->h);
			njobs++;
		}
	}
	do {
		CURLMcode mc = curl_multi_perform(multi, &running);

		if (mc != CURLM_OK) {
			pr_warn("poll: %s", curl_multi_strerror(mc));
			break;
		}
		if (running)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	} while (running);

	while ((msg = curl_multi_info_read(multi, &left))) {
		struct job *j;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		j->done = true;
		j->rc = msg->data.result;
	}
	/* backend checks first: an agent failure that opens the breaker reads them */
	pthread_mutex_lock(&d->lock);
	for (int pass = 1; pass >= 0; pass--)
		for (int i = 0; i < njobs; i++)
			if (jobs[i].done && jobs[i].backend == pass)
				job_result(d, &jobs[i], jobs[i].rc);
	/* a load that never finished (the round's transfers all end within
	 * poll_timeout_ms, so this is an error of the round itself) */
	for (int i = 0; i < njobs; i++)
		if (jobs[i].load && !jobs[i].done)
			nodes__load_refused(d, jobs[i].n, "the request did not complete");
	pthread_mutex_unlock(&d->lock);
out:
	for (int i = 0; jobs && i <= njobs && i < 3 * d->cfg.nnodes + 1; i++) {
		if (!jobs[i].h)
			continue;
		if (multi)
			curl_multi_remove_handle(multi, jobs[i].h);
		curl_easy_cleanup(jobs[i].h);
		curl_slist_free_all(jobs[i].hdrs);
		free(jobs[i].post);
		OPENSSL_cleanse(&jobs[i].key, sizeof(jobs[i].key));
		http_body__free(&jobs[i].body);
	}
	free(jobs);
	if (multi)
		curl_multi_cleanup(multi);
	return err;
}
