/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A small client of etcd 3's v3 JSON gateway (/v3/kv, /v3/lease):
 * Debian has no C client, and the gateway is etcd's documented HTTP face.
 * libcurl carries it, jansson encodes it; keys and values travel base64,
 * 64-bit numbers as strings. Synchronous, one request at a time, each
 * bounded by the timeout given at open: the caller is the controller loop.
 * A watch (below) has its own connection and blocks until its event.
 */
#ifndef AIBLD_ETCD_H
#define AIBLD_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct etcd;

struct etcd_kv {
	char *key;
	char *val; /* NUL-terminated (values are JSON text here) */
	size_t vlen;
	__s64 create_rev, mod_rev, lease;
};

/* a compare of a txn: target "CREATE" (num: create_revision), "MOD"
 * (num: mod_revision) or "VALUE" (val) EQUAL */
struct etcd_cmp {
	const char *key;
	const char *target;
	__s64 num;
	const char *val;
};

int etcd__open(const char *url, unsigned int timeout_ms, struct etcd **out);
void etcd__close(struct etcd *e);
/* every key under prefix; *rev: the store's revision. 0 or -errno */
int etcd__range(struct etcd *e, const char *prefix, struct etcd_kv **kvs, int *n, __s64 *rev);
void etcd__kvs_free(struct etcd_kv *kvs, int n);
int etcd__put(struct etcd *e, const char *key, const char *val, __s64 lease);
int etcd__delete(struct etcd *e, const char *key);
/* drop the store's history before revision rev (every key keeps its value);
 * 0 also when it was compacted that far already */
int etcd__compact(struct etcd *e, __s64 rev);
/* put key=val (lease 0: none) if every compare holds; *ok says whether it did */
int etcd__txn_put(struct etcd *e, const struct etcd_cmp *cmp, int ncmp, const char *key,
		  const char *val, __s64 lease, bool *ok);
int etcd__lease_grant(struct etcd *e, unsigned int ttl_s, __s64 *id);
/* -ENOENT: the lease expired (or never was) */
int etcd__lease_keepalive(struct etcd *e, __s64 id);
int etcd__lease_revoke(struct etcd *e, __s64 id);

/*
 * A watch, for a thread of its own: a second connection, which may block
 * as long as the key stays. etcd__watch_absent returns 0 when key is absent:
 * at once when it is, else when etcd deletes it (a watch on the gateway's
 * /v3/watch stream from the revision read, so a deletion in between is not
 * missed). -ECANCELED once etcd__watch_stop was called (from any thread);
 * -errno when etcd cannot be asked. etcd__watch_sleep waits ms or until
 * stopped.
 */
struct etcd_watch;

int etcd__watch_open(const char *url, unsigned int timeout_ms, struct etcd_watch **out);
int etcd__watch_absent(struct etcd_watch *w, const char *key);
int etcd__watch_sleep(struct etcd_watch *w, unsigned int ms);
void etcd__watch_stop(struct etcd_watch *w);
void etcd__watch_close(struct etcd_watch *w);

/* base64 helpers, exposed for tests: malloc'd, NUL-terminated */
char *etcd__b64(const void *p, size_t n);
char *etcd__unb64(const char *s, size_t *n);

#endif
