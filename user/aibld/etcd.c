// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * etcd v3 through its JSON gateway (see etcd.h). Every call is one POST of
 * a JSON body; an answer that is not 200 with a JSON object is an error,
 * and so is one that carries an "error" member (the gateway's gRPC status).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "etcd.h"
#include "httpbody.h"
#include "log.h"
#include "curlopt.h"

#define ETCD_MAX_BODY (16 << 20)

struct etcd {
	CURL *h;
	char url[256];
	unsigned int timeout_ms;
};

char *etcd__b64(const void *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, p, n);
	return out;
}

char *etcd__unb64(const char *s, size_t *n)
{
	size_t len = strlen(s), pad = 0;
	unsigned char *out = malloc(3 * (len / 4) + 1);
	int got;

	if (!out)
		return NULL;
	if (len % 4) {
		free(out);
		return NULL;
	}
	while (pad < 2 && len > pad && s[len - 1 - pad] == '=')
		pad++;
	got = EVP_DecodeBlock(out, (const unsigned char *)s, len);
	if (got < 0 || (size_t)got < pad) {
		free(out);
		return NULL;
	}
	got -= pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	out[got] = 0;
	if (n)
		*n = got;
	return (char *)out;
}

int etcd__open(const char *url, unsigned int timeout_ms, struct etcd **out)
{
	struct etcd *e = calloc(1, sizeof(*e));
	size_t n = strlen(url);

	if (!e)
		return -ENOMEM;
	while (n && url[n - 1] == '/')
		n--;
	if (n >= sizeof(e->url)) {
		free(e);
		return -ENAMETOOLONG;
	}
	memcpy(e->url, url, n);
	e->timeout_ms = timeout_ms;
	e->h = curl_easy_init();
	if (!e->h) {
		free(e);
		return -ENOMEM;
	}
	*out = e;
	return 0;
}

void etcd__close(struct etcd *e)
{
	if (!e)
		return;
	curl_easy_cleanup(e->h);
	free(e);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct http_body *b = ud;
	size_t n = size * nmemb;

	if (http_body__feed(b, ptr, n, ETCD_MAX_BODY) || b->too_big)
		return 0;
	return n;
}

/* POST req (stolen) to path; *resp the answer's JSON object */
static int call(struct etcd *e, const char *path, json_t *req, json_t **resp)
{
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	char url[320], errbuf[CURL_ERROR_SIZE] = "";
	struct http_body body = {};
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_error_t jerr;
	long code = 0;
	CURLcode rc;
	int err = 0;

	json_decref(req);
	*resp = NULL;
	if (!text || !hdrs) {
		err = -ENOMEM;
		goto out;
	}
	snprintf(url, sizeof(url), "%s%s", e->url, path);
	curl_easy_reset(e->h);
	aibl_curl__direct(e->h);
	curl_easy_setopt(e->h, CURLOPT_URL, url);
	curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
	curl_easy_setopt(e->h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
	curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e->h, CURLOPT_WRITEDATA, &body);
	rc = curl_easy_perform(e->h);
	if (rc != CURLE_OK) {
		pr_debug("etcd %s: %s", path, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		err = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
		goto out;
	}
	curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &code);
	*resp = json_loads(http_body__str(&body), 0, &jerr);
	if (!*resp || !json_is_object(*resp)) {
		pr_debug("etcd %s: HTTP %ld, not JSON", path, code);
		err = -EPROTO;
		goto out;
	}
	if (code != 200 || json_object_get(*resp, "error")) {
		json_t *m = json_object_get(*resp, "message");

		if (!m)
			m = json_object_get(*resp, "error");
		pr_debug("etcd %s: HTTP %ld: %s", path, code,
			 json_is_string(m) ? json_string_value(m) : "?");
		/* the gateway's words for an expired or unknown lease */
		err = !json_is_string(m)				   ? -EPROTO
		      : strstr(json_string_value(m), "lease not found")	   ? -ENOENT
		      : strstr(json_string_value(m), "has been compacted") ? -ESTALE
									   : -EPROTO;
		goto out;
	}
out:
	if (err) {
		json_decref(*resp);
		*resp = NULL;
	}
	http_body__free(&body);
	curl_slist_free_all(hdrs);
	free(text);
	return err;
}

/* an int64 member: the gateway writes them as strings, absent when 0 */
static __s64 jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	if (json_is_integer(v))
		return json_integer_value(v);
	return 0;
}

static json_t *jb64(const char *s)
{
	char *b = etcd__b64(s, strlen(s));
	json_t *j = b ? json_string(b) : NULL;

	free(b);
	return j;
}

static json_t *jnum(__s64 v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_string(buf);
}

/* the key after every key that starts with prefix */
static char *range_end(const char *prefix)
{
	char *end = strdup(prefix);
	size_t n = strlen(prefix);

	while (end && n) {
		if ((unsigned char)end[n - 1] < 0xff) {
			end[n - 1]++;
			end[n] = 0;
			return end;
		}
		n--;
	}
	free(end);
	return NULL;
}

void etcd__kvs_free(struct etcd_kv *kvs, int n)
{
	for (int i = 0; kvs && i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].val);
	}
	free(kvs);
}

int etcd__range(struct etcd *e, const char *prefix, struct etcd_kv **kvs, int *n, __s64 *rev)
{
	char *end = range_end(prefix);
	json_t *req, *resp, *arr, *it;
	struct etcd_kv *out = NULL;
	size_t i;
	int err;

	*kvs = NULL;
	*n = 0;
	if (!end)
		return -EINVAL;
	req = json_pack("{s:o,s:o}", "key", jb64(prefix), "range_end", jb64(end));
	free(end);
	err = call(e, "/v3/kv/range", req, &resp);
	if (err)
		return err;
	if (rev)
		*rev = jint(json_object_get(resp, "header"), "revision");
	arr = json_object_get(resp, "kvs");
	out = calloc(json_array_size(arr) + 1, sizeof(*out));
	if (!out) {
		json_decref(resp);
		return -ENOMEM;
	}
	json_array_foreach(arr, i, it)
	{
		const char *k = json_string_value(json_object_get(it, "key"));
		const char *v = json_string_value(json_object_get(it, "value"));
		struct etcd_kv *kv = &out[*n];

		kv->key = k ? etcd__unb64(k, NULL) : NULL;
		kv->val = etcd__unb64(v ? v : "", &kv->vlen);
		if (!kv->key || !kv->val) {
			free(kv->key);
			free(kv->val);
			continue;
		}
		kv->create_rev = jint(it, "create_revision");
		kv->mod_rev = jint(it, "mod_revision");
		kv->lease = jint(it, "lease");
		(*n)++;
	}
	json_decref(resp);
	*kvs = out;
	return 0;
}

static json_t *put_req(const char *key, const char *val, __s64 lease)
{
	json_t *r = json_pack("{s:o,s:o}", "key", jb64(key), "value", jb64(val));

	if (r && lease)
		json_object_set_new(r, "lease", jnum(lease));
	return r;
}

int etcd__put(struct etcd *e, const char *key, const char *val, __s64 lease)
{
	json_t *resp;
	int err = call(e, "/v3/kv/put", put_req(key, val, lease), &resp);

	json_decref(resp);
	return err;
}

int etcd__delete(struct etcd *e, const char *key)
{
	json_t *resp;
	int err = call(e, "/v3/kv/deleterange", json_pack("{s:o}", "key", jb64(key)), &resp);

	json_decref(resp);
	return err;
}

int etcd__compact(struct etcd *e, __s64 rev)
{
	json_t *resp;
	int err = call(e, "/v3/kv/compaction", json_pack("{s:o}", "revision", jnum(rev)), &resp);

	json_decref(resp);
	/* "mvcc: required revision has been compacted": etcd or another
	 * client went as far or further */
	return err == -ESTALE ? 0 : err;
}

int etcd__txn_put(struct etcd *e, const struct etcd_cmp *cmp, int ncmp, const char *key,
		  const char *val, __s64 lease, bool *ok)
{
	json_t *cmps = json_array(), *req, *resp;
	int err;

	*ok = false;
	for (int i = 0; i < ncmp; i++) {
		json_t *c = json_pack("{s:o,s:s,s:s}", "key", jb64(cmp[i].key), "result", "EQUAL",
				      "target", cmp[i].target);

		if (!strcmp(cmp[i].target, "VALUE"))
			json_object_set_new(c, "value", jb64(cmp[i].val));
		else if (!strcmp(cmp[i].target, "CREATE"))
			json_object_set_new(c, "create_revision", jnum(cmp[i].num));
		else
			json_object_set_new(c, "mod_revision", jnum(cmp[i].num));
		json_array_append_new(cmps, c);
	}
	req = json_pack("{s:o,s:[{s:o}]}", "compare", cmps, "success", "request_put",
			put_req(key, val, lease));
	err = call(e, "/v3/kv/txn", req, &resp);
	if (err)
		return err;
	*ok = json_is_true(json_object_get(resp, "succeeded"));
	json_decref(resp);
	return 0;
}

int etcd__lease_grant(struct etcd *e, unsigned int ttl_s, __s64 *id)
{
	json_t *resp;
	int err = call(e, "/v3/lease/grant", json_pack("{s:o}", "TTL", jnum(ttl_s)), &resp);

	if (err)
		return err;
	*id = jint(resp, "ID");
	json_decref(resp);
	return *id ? 0 : -EPROTO;
}

int etcd__lease_keepalive(struct etcd *e, __s64 id)
{
	json_t *resp;
	__s64 ttl;
	int err = call(e, "/v3/lease/keepalive", json_pack("{s:o}", "ID", jnum(id)), &resp);

	if (err)
		return err;
	/* a stream of one message: {"result": {"ID", "TTL"}}; no TTL: expired */
	ttl = jint(json_object_get(resp, "result"), "TTL");
	json_decref(resp);
	return ttl > 0 ? 0 : -ENOENT;
}

int etcd__lease_revoke(struct etcd *e, __s64 id)
{
	json_t *resp;
	int err = call(e, "/v3/lease/revoke", json_pack("{s:o}", "ID", jnum(id)), &resp);

	json_decref(resp);
	return err;
}

/* ---- a watch: its own connection, a stream read until the key is gone ---- */

struct etcd_watch {
	struct etcd *e; /* the range before the watch, bounded by the timeout */
	CURLM *m;
	CURL *h;
	atomic_bool stop;
};

/* the stream's messages, one JSON object a line */
struct wstream {
	struct http_body buf;
	size_t done; /* bytes of buf already parsed */
	bool gone, bad;
};

static void wstream_line(struct wstream *s, const char *line)
{
	json_t *j = json_loads(line, 0, NULL), *r = json_object_get(j, "result");

	/* only deletions come (filter NOPUT): any event is the one */
	if (json_array_size(json_object_get(r, "events")))
		s->gone = true;
	else if (!r || json_is_true(json_object_get(r, "canceled")))
		s->bad = true; /* an error, or compacted past our revision */
	json_decref(j);
}

static size_t on_stream(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct wstream *s = ud;
	size_t n = size * nmemb;
	char *nl;

	if (http_body__feed(&s->buf, ptr, n, ETCD_MAX_BODY) || s->buf.too_big)
		return 0;
	while (!s->gone && !s->bad &&
	       (nl = memchr(s->buf.buf + s->done, '\n', s->buf.len - s->done))) {
		*nl = 0;
		wstream_line(s, s->buf.buf + s->done);
		s->done = nl + 1 - s->buf.buf;
	}
	return s->gone || s->bad ? 0 : n; /* 0: ends the transfer */
}

int etcd__watch_open(const char *url, unsigned int timeout_ms, struct etcd_watch **out)
{
	struct etcd_watch *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	err = etcd__open(url, timeout_ms, &w->e);
	if (err) {
		free(w);
		return err;
	}
	w->m = curl_multi_init();
	w->h = curl_easy_init();
	if (!w->m || !w->h) {
		etcd__watch_close(w);
		return -ENOMEM;
	}
	*out = w;
	return 0;
}

void etcd__watch_stop(struct etcd_watch *w)
{
	atomic_store(&w->stop, true);
	curl_multi_wakeup(w->m);
}

int etcd__watch_sleep(struct etcd_watch *w, unsigned int ms)
{
	if (!atomic_load(&w->stop))
		curl_multi_poll(w->m, NULL, 0, ms, NULL);
	return atomic_load(&w->stop) ? -ECANCELED : 0;
}

int etcd__watch_absent(struct etcd_watch *w, const char *key)
{
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	struct wstream s = {};
	struct etcd_kv *kvs;
	char url[320], *text = NULL;
	json_t *req;
	__s64 rev;
	int n, err, running = 1;
	CURLMsg *msg;

	if (atomic_load(&w->stop)) {
		err = -ECANCELED;
		goto out;
	}
	err = etcd__range(w->e, key, &kvs, &n, &rev);
	if (err)
		goto out;
	etcd__kvs_free(kvs, n);
	if (!n)
		goto out; /* absent now */
	req = json_pack("{s:{s:o,s:o,s:[s]}}", "create_request", "key", jb64(key), "start_revision",
			jnum(rev + 1), "filters", "NOPUT");
	text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text || !hdrs) {
		err = -ENOMEM;
		goto out;
	}
	snprintf(url, sizeof(url), "%s/v3/watch", w->e->url);
	curl_easy_reset(w->h);
	aibl_curl__direct(w->h);
	curl_easy_setopt(w->h, CURLOPT_URL, url);
	curl_easy_setopt(w->h, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(w->h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(w->h, CURLOPT_CONNECTTIMEOUT_MS, (long)w->e->timeout_ms);
	/* a dead etcd host sends no RST: keepalive probes tell within seconds */
	curl_easy_setopt(w->h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(w->h, CURLOPT_TCP_KEEPIDLE, 2L);
	curl_easy_setopt(w->h, CURLOPT_TCP_KEEPINTVL, 1L);
	curl_easy_setopt(w->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, &s);
	curl_multi_add_handle(w->m, w->h);
	while (running && !atomic_load(&w->stop)) {
		if (curl_multi_perform(w->m, &running) != CURLM_OK)
			break;
		if (running)
			curl_multi_poll(w->m, NULL, 0, 1000, NULL);
	}
	err = -EPROTO;
	while ((msg = curl_multi_info_read(w->m, &n)))
		if (msg->msg == CURLMSG_DONE && msg->data.result != CURLE_OK &&
		    msg->data.result != CURLE_WRITE_ERROR)
			err = -ECONNREFUSED;
	curl_multi_remove_handle(w->m, w->h);
	if (s.gone)
		err = 0;
	else if (atomic_load(&w->stop))
		err = -ECANCELED;
out:
	http_body__free(&s.buf);
	curl_slist_free_all(hdrs);
	free(text);
	return err;
}

void etcd__watch_close(struct etcd_watch *w)
{
	if (!w)
		return;
	if (w->h)
		curl_easy_cleanup(w->h);
	if (w->m)
		curl_multi_cleanup(w->m);
	etcd__close(w->e);
	free(w);
}
