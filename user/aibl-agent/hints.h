/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The agent's cache hints: which client sessions this node holds warm
 * context for. Two sources: traffic the node-side decap program has seen
 * (aibl_node_cli, refreshed every poll) and POST /v1/hints from model
 * servers that know better. Bounded: when full, the hint closest to
 * expiry goes. Hints age in "life" milliseconds; under KV-cache pressure
 * life runs faster (a full cache evicts prefixes, so the warmth a hint
 * promises fades sooner):
 *
 *   rate = 1                                 kv <= pressure_start
 *   rate = 1 + (max_rate - 1) * (kv - start) / (1 - start)   above
 *
 * Every call is O(log n) in the hints held but export and drop_if, which
 * walk them once. Not thread-safe: the agent holds its state lock around
 * every call.
 */
#ifndef AIBL_AGENT_HINTS_H
#define AIBL_AGENT_HINTS_H

#include <stdint.h>
#include "report.h"

/* GLib's, indexes of the hints (hints.c) */
struct _GHashTable;
struct _GSequence;

struct agent_hints {
	struct _GHashTable *by_key;   /* hint -> itself, by hint_equal()'s key */
	struct _GSequence *by_expiry; /* the hints, nearest to expiry first */
	int n, max;
	double pressure_start; /* kv usage where faster aging starts (0..1) */
	double max_rate;       /* aging rate at kv usage 1 */
	uint64_t last_tick_ms;
	double aged;	  /* aged milliseconds since init: the hints' clock */
	uint64_t seq;	  /* puts so far */
	uint64_t dropped; /* evicted because the table was full */
};

int agent_hints__init(struct agent_hints *t, int max, double pressure_start, double max_rate);
void agent_hints__fini(struct agent_hints *t);
/* aging rate for a KV-cache usage (-1 unknown: 1) */
double agent_hints__rate(const struct agent_hints *t, double kv);
/* Age every hint by (now - last tick) x rate(kv); drop the expired. */
void agent_hints__tick(struct agent_hints *t, uint64_t now_ms, double kv);
/* Insert or refresh (same client, vip, port, proto, model): life =
 * ttl_ms. ttl_ms 0 removes it. Evicts the soonest-expiring when full. */
void agent_hints__put(struct agent_hints *t, const struct ar_hint *h);
/* drop the hints gone() says are */
void agent_hints__drop_if(struct agent_hints *t, bool (*gone)(const struct ar_hint *h, void *arg),
			  void *arg);
/* Copy out (ttl_ms = remaining life) into out[max], the longest-lived
 * first; returns the count. */
int agent_hints__export(const struct agent_hints *t, struct ar_hint *out, int max);

#endif
