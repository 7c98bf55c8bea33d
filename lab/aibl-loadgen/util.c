// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-loadgen building blocks: address lists, random numbers, SSE framing,
 * sample storage and percentiles, the progress line. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "loadgen.h"

/* ---- address lists ---- */

static int lg_addrs__push(struct lg_addrs *l, const struct lg_addr *a)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct lg_addr *p = realloc(l->a, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->a = p;
		l->cap = cap;
	}
	l->a[l->n++] = *a;
	return 0;
}

static int lg_addr__parse(const char *s, struct lg_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->v4) == 1) {
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a->v6) == 1) {
		a->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* a <= b as unsigned big-endian numbers of the family's width */
static int lg_addr__cmp(const struct lg_addr *a, const struct lg_addr *b)
{
	if (a->family == AF_INET)
		return memcmp(&a->v4, &b->v4, 4);
	return memcmp(&a->v6, &b->v6, 16);
}

static void lg_addr__inc(struct lg_addr *a)
{
	uint8_t *b = a->family == AF_INET ? (uint8_t *)&a->v4 : (uint8_t *)&a->v6;
	int i = a->family == AF_INET ? 3 : 15;

	for (; i >= 0; i--)
		if (++b[i])
			break;
}

int lg_addrs__parse(struct lg_addrs *l, const char *spec, char *err, size_t errlen)
{
	char *copy = strdup(spec), *save = NULL, *tok, *dash;
	struct lg_addr lo, hi;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		dash = strchr(tok, '-');
		if (dash)
			*dash = '\0';
		if (lg_addr__parse(tok, &lo)) {
			snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address", tok);
			ret = -EINVAL;
			goto out;
		}
		hi = lo;
		if (dash && (lg_addr__parse(dash + 1, &hi) || hi.family != lo.family ||
			     lg_addr__cmp(&lo, &hi) > 0)) {
			snprintf(err, errlen, "\"%s-%s\": a range is LOW-HIGH of one family", tok,
				 dash + 1);
			ret = -EINVAL;
			goto out;
		}
		for (;;) {
			if (l->n >= LG_MAX_ADDRS) {
				snprintf(err, errlen, "more than %u source addresses",
					 LG_MAX_ADDRS);
				ret = -E2BIG;
				goto out;
			}
			ret = lg_addrs__push(l, &lo);
			if (ret)
				goto out;
			if (!lg_addr__cmp(&lo, &hi))
				break;
			lg_addr__inc(&lo);
		}
	}
out:
	free(copy);
	return ret;
}

void lg_addrs__free(struct lg_addrs *l)
{
	free(l->a);
	memset(l, 0, sizeof(*l));
}

size_t lg_addrs__count(const struct lg_addrs *l, int family)
{
	size_t i, n = 0;

	for (i = 0; i < l->n; i++)
		n += l->a[i].family == family;
	return n;
}

void lg_addrs__interface(const struct lg_addrs *l, int family, size_t i, char *out, size_t len)
{
	size_t n = lg_addrs__count(l, family), k, seen = 0;
	char buf[INET6_ADDRSTRLEN];

	out[0] = '\0';
	if (!n)
		return;
	i %= n;
	for (k = 0; k < l->n; k++) {
		if (l->a[k].family != family)
			continue;
		if (seen++ == i) {
			inet_ntop(family,
				  family == AF_INET ? (void *)&l->a[k].v4 : (void *)&l->a[k].v6,
				  buf, sizeof(buf));
			snprintf(out, len, "host!%s", buf);
			return;
		}
	}
}

int lg_url_family(const char *url)
{
	const char *h = strstr(url, "://");

	h = h ? h + 3 : url;
	return *h == '[' ? AF_INET6 : AF_INET;
}

/* ---- random numbers ---- */

void lg_rng__seed(struct lg_rng *r, uint64_t seed, uint64_t stream)
{
	r->s = seed * 0x9e3779b97f4a7c15ULL ^ (stream + 1) * 0xbf58476d1ce4e5b9ULL;
	lg_rng__next(r);
}

uint64_t lg_rng__next(struct lg_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double lg_rng__uniform(struct lg_rng *r)
{
	return (lg_rng__next(r) >> 11) * 0x1.0p-53;
}

double lg_rng__exp(struct lg_rng *r, double mean)
{
	return -mean * log(1.0 - lg_rng__uniform(r));
}

/* ---- SSE ---- */

/*
 * Events end with a blank line; only "data:" fields matter to us (a
 * completion stream carries no event names or ids). \r\n line ends are
 * accepted as well as \n.
 */
int lg_sse__feed(struct lg_sse *s, const char *data, size_t len,
		 int (*cb)(const char *payload, void *ctx), void *ctx)
{
	size_t start = 0, i, out;
	int err;

	if (s->len + len + 1 > s->cap) {
		size_t cap = (s->len + len + 1) * 2;
		char *p = realloc(s->buf, cap);

		if (!p)
			return -ENOMEM;
		s->buf = p;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';

	for (;;) {
		char *end = NULL, *p = s->buf + start, *line, *next;
		size_t sep = 0;

		/* find the blank line ending the next event */
		for (i = start; i + 1 < s->len; i++) {
			if (s->buf[i] == '\n' && s->buf[i + 1] == '\n') {
				sep = 2;
			} else if (s->buf[i] == '\n' && s->buf[i + 1] == '\r' && i + 2 < s->len &&
				   s->buf[i + 2] == '\n') {
				sep = 3;
			}
			if (sep) {
				end = s->buf + i;
				break;
			}
		}
		if (!end)
			break;
		*end = '\0';
		/* join the event's data lines in place */
		out = 0;
		for (line = p; line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			if (line[0] && line[strlen(line) - 1] == '\r')
				line[strlen(line) - 1] = '\0';
			if (strncmp(line, "data:", 5))
				continue;
			line += 5;
			if (*line == ' ')
				line++;
			if (out)
				p[out++] = '\n';
			memmove(p + out, line, strlen(line));
			out += strlen(line);
		}
		p[out] = '\0';
		start = end - s->buf + sep;
		if (out) {
			err = cb(p, ctx);
			if (err) {
				s->len = 0;
				return err;
			}
		}
	}
	memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
	return 0;
}

void lg_sse__free(struct lg_sse *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

/* ---- names, samples, percentiles ---- */

int lg_names__intern(struct lg_names *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->name[i], name))
			return i;
	if (t->n >= UINT16_MAX)
		return -E2BIG;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		void *p = realloc(t->name, cap * sizeof(*t->name));

		if (!p)
			return -ENOMEM;
		t->name = p;
		t->cap = cap;
	}
	snprintf(t->name[t->n], LG_NAME_LEN, "%s", name);
	return t->n++;
}

void lg_names__free(struct lg_names *t)
{
	free(t->name);
	memset(t, 0, sizeof(*t));
}

int lg_samples__add(struct lg_samples *v, const struct lg_sample *s)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 1024;
		struct lg_sample *p = realloc(v->s, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		v->s = p;
		v->cap = cap;
	}
	v->s[v->n++] = *s;
	return 0;
}

static int lg_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double lg_percentile(double *v, size_t n, double p)
{
	size_t rank;

	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), lg_cmp_double);
	rank = (size_t)ceil(p / 100.0 * n);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

void lg_run__free(struct lg_run *run)
{
	lg_names__free(&run->nodes);
	free(run->samples.s);
	memset(&run->samples, 0, sizeof(run->samples));
}

/* ---- progress ---- */

void lg_progress__init(struct lg_progress *p, int mode, double now_ms)
{
	memset(p, 0, sizeof(*p));
	p->enabled = mode != 0;
	p->tty = isatty(STDERR_FILENO);
	p->start_ms = now_ms;
	p->last_ms = now_ms;
}

void lg_progress__update(struct lg_progress *p, double now_ms, const struct lg_run *run,
			 size_t inflight, bool final)
{
	double period = p->tty ? 250 : 5000, ttft_sum = 0, el;
	uint64_t ok = 0, failed = 0, tokens = 0, nttft = 0;
	size_t i;

	if (!p->enabled || (!final && now_ms - p->last_ms < period))
		return;
	p->last_ms = now_ms;
	for (i = 0; i < run->samples.n; i++) {
		const struct lg_sample *s = &run->samples.s[i];

		if (s->ok)
			ok++;
		else
			failed++;
		tokens += s->out_tokens;
		if (s->ok && s->ttft_ms >= 0) {
			ttft_sum += s->ttft_ms;
			nttft++;
		}
	}
	el = (now_ms - p->start_ms) / 1e3;
	fprintf(stderr, "%s[%6.1fs] %s: ", p->tty ? "\r\033[K" : "", el, run->mode);
	if (run->sessions_total)
		fprintf(stderr, "sessions %u/%u ", run->sessions_done, run->sessions_total);
	fprintf(stderr, "requests %llu ok %llu failed %llu in-flight %zu",
		(unsigned long long)(ok + failed), (unsigned long long)ok,
		(unsigned long long)failed, inflight);
	if (nttft)
		fprintf(stderr, " ttft-avg %.0f ms %.0f tok/s", ttft_sum / nttft,
			el > 0 ? tokens / el : 0);
	else if (el > 0)
		fprintf(stderr, " %.0f req/s", (ok + failed) / el);
	fprintf(stderr, "%s", p->tty && !final ? "" : "\n");
	fflush(stderr);
}
