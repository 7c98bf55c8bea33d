// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Human-readable numbers, addresses and aligned tables for aiblctl. JSON
 * output never goes through here: it carries exact values.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

/* scale v by 1000 (or 1024) until it fits in three significant digits */
static char *fmt_scaled(char *buf, size_t len, double v, double base, const char *const *units,
			int nunits, const char *sep)
{
	int u = 0;

	while (v >= base && u < nunits - 1) {
		v /= base;
		u++;
	}
	/* printed whole, 999.95k would read "1000k": the next unit's 1.0M */
	if (u < nunits - 1 && v >= base - 0.5) {
		v /= base;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f%s%s", v, sep, units[0]);
	else if (v < 99.95)
		snprintf(buf, len, "%.1f%s%s", v, sep, units[u]);
	else
		snprintf(buf, len, "%.0f%s%s", v, sep, units[u]);
	return buf;
}

char *ctl_fmt_count(char *buf, size_t len, __u64 v)
{
	static const char *const units[] = {"", "k", "M", "G", "T", "P"};

	/* small counts read best exact */
	if (v < 10000) {
		snprintf(buf, len, "%llu", (unsigned long long)v);
		return buf;
	}
	return fmt_scaled(buf, len, (double)v, 1000, units, 6, "");
}

char *ctl_fmt_bytes(char *buf, size_t len, __u64 v)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};

	return fmt_scaled(buf, len, (double)v, 1024, units, 6, " ");
}

char *ctl_fmt_pct(char *buf, size_t len, double fraction)
{
	snprintf(buf, len, "%.1f%%", fraction * 100.0);
	return buf;
}

char *ctl_fmt_rate(char *buf, size_t len, double per_s)
{
	static const char *const units[] = {"/s", "k/s", "M/s", "G/s", "T/s"};

	if (per_s < 0)
		per_s = 0;
	if (per_s < 100 && per_s != (__u64)per_s) {
		snprintf(buf, len, "%.1f/s", per_s);
		return buf;
	}
	return fmt_scaled(buf, len, per_s, 1000, units, 5, "");
}

char *ctl_fmt_byte_rate(char *buf, size_t len, double per_s)
{
	static const char *const units[] = {"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"};

	return fmt_scaled(buf, len, per_s < 0 ? 0 : per_s, 1024, units, 5, " ");
}

char *ctl_fmt_dur_ns(char *buf, size_t len, __u64 ns)
{
	__u64 s = ns / 1000000000ULL;

	if (ns < 1000000ULL)
		snprintf(buf, len, "%lluus", (unsigned long long)(ns / 1000));
	else if (ns < 1000000000ULL)
		snprintf(buf, len, "%llums", (unsigned long long)(ns / 1000000));
	else if (s < 60)
		snprintf(buf, len, "%.1fs", ns / 1e9);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%llud%02lluh", s / 86400, s / 3600 % 24);
	return buf;
}

char *ctl_fmt_addr(char *buf, size_t len, __u8 family, const union aibl_addr *a)
{
	if (family == AIBL_AF_INET) {
		if (!inet_ntop(AF_INET, &a->v4, buf, len))
			snprintf(buf, len, "?");
	} else if (family == AIBL_AF_INET6) {
		if (!inet_ntop(AF_INET6, a->b, buf, len))
			snprintf(buf, len, "?");
	} else {
		snprintf(buf, len, "-");
	}
	return buf;
}

char *ctl_fmt_endpoint(char *buf, size_t len, __u8 family, const union aibl_addr *a, __be16 port)
{
	char addr[INET6_ADDRSTRLEN], p[8];

	ctl_fmt_addr(addr, sizeof(addr), family, a);
	if (port)
		snprintf(p, sizeof(p), "%u", ntohs(port));
	else
		snprintf(p, sizeof(p), "*");
	if (family == AIBL_AF_INET6)
		snprintf(buf, len, "[%s]:%s", addr, p);
	else
		snprintf(buf, len, "%s:%s", addr, p);
	return buf;
}

char *ctl_fmt_mac(char *buf, size_t len, const __u8 mac[6])
{
	static const __u8 zero[6];

	if (memcmp(mac, zero, 6) == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
			 mac[4], mac[5]);
	return buf;
}

static const char *name_of(const char *const *names, size_t n, unsigned int v)
{
	return v < n && names[v] ? names[v] : "?";
}

#define NAME_OF(tbl, v) name_of(tbl, sizeof(tbl) / sizeof(tbl[0]), v)

const char *ctl_proto_str(__u8 proto)
{
	static const char *const names[] = {[IPPROTO_TCP] = "tcp", [IPPROTO_UDP] = "udp"};

	return NAME_OF(names, proto);
}

#define AIBL_X_NAME(n, v, s) [v] = s,

const char *ctl_mode_str(__u8 mode)
{
	static const char *const names[] = {AIBL_MODES(AIBL_X_NAME)};

	return NAME_OF(names, mode);
}

const char *ctl_key_str(__u8 key)
{
	static const char *const names[] = {AIBL_SESSION_KEYS(AIBL_X_NAME)};

	return NAME_OF(names, key);
}

const char *ctl_policy_str(__u8 policy)
{
	static const char *const names[] = {AIBL_POLICIES(AIBL_X_NAME)};

	return NAME_OF(names, policy);
}

const char *ctl_accel_str(__u8 accel)
{
	static const char *const names[] = {AIBL_ACCELS(AIBL_X_NAME)};

	return NAME_OF(names, accel);
}

#undef AIBL_X_NAME

const char *ctl_be_state(__u8 flags)
{
	/* the order the data plane cares about: down beats draining beats overloaded */
	if (!(flags & AIBL_BE_F_VALID))
		return "unused";
	if (flags & AIBL_BE_F_DOWN)
		return "down";
	/* aibld drains a node whose agent it cannot trust but whose backend
	 * answers, and marks it so; an operator drain writes DRAINING alone */
	if ((flags & (AIBL_BE_F_DRAINING | AIBL_BE_F_UNHEALTHY)) ==
	    (AIBL_BE_F_DRAINING | AIBL_BE_F_UNHEALTHY))
		return "unhealthy";
	if (flags & AIBL_BE_F_DRAINING)
		return "draining";
	if (flags & AIBL_BE_F_OVERLOADED)
		return "overloaded";
	return "up";
}

int ctl_parse_endpoint(const char *s, bool need_port, __u8 *family, union aibl_addr *a, __u16 *port)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *p = NULL, *h = s;
	size_t hl;
	char *end;
	long v;

	memset(a, 0, sizeof(*a));
	*port = 0;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return -EINVAL;
		h = s + 1;
		hl = close - h;
		if (close[1] == ':')
			p = close + 2;
		else if (close[1])
			return -EINVAL;
	} else {
		const char *colon = strchr(s, ':');

		/* a bare IPv6 address has several colons: no port there */
		if (colon && !strchr(colon + 1, ':')) {
			hl = colon - s;
			p = colon + 1;
		} else {
			hl = strlen(s);
		}
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, &a->v4) == 1)
		*family = AIBL_AF_INET;
	else if (inet_pton(AF_INET6, host, a->b) == 1)
		*family = AIBL_AF_INET6;
	else
		return -EINVAL;
	if (!p)
		return need_port ? -EINVAL : 0;
	errno = 0;
	v = strtol(p, &end, 10);
	if (errno || end == p || *end || v < 0 || v > 65535)
		return -EINVAL;
	*port = (__u16)v;
	return 0;
}

int ctl_parse_proto(const char *s, __u8 *proto)
{
	if (strcasecmp(s, "tcp") == 0)
		*proto = IPPROTO_TCP;
	else if (strcasecmp(s, "udp") == 0)
		*proto = IPPROTO_UDP;
	else
		return -EINVAL;
	return 0;
}

struct ctl_table {
	int ncols;
	const char *align;
	char **cells; /* row-major, headers first */
	size_t ncells, cap;
};

static void table_push(struct ctl_table *t, char *s)
{
	if (t->ncells == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **c = realloc(t->cells, cap * sizeof(*c));

		if (!c) {
			free(s);
			return;
		}
		t->cells = c;
		t->cap = cap;
	}
	t->cells[t->ncells++] = s;
}

struct ctl_table *ctl_table__new(int ncols, const char *const *headers, const char *align)
{
	struct ctl_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ncols = ncols;
	t->align = align;
	for (int i = 0; i < ncols; i++)
		table_push(t, strdup(headers[i]));
	return t;
}

void ctl_printable(char *s)
{
	for (unsigned char *c = (unsigned char *)s; *c; c++) {
		if (*c < 0x20 || *c == 0x7f)
			*c = '?';
		else if (*c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f)
			c[0] = c[1] = '?';
	}
}

void ctl_table__cell(struct ctl_table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	/* a cell's text can come from elsewhere (a model name an engine
	 * listed, an agent's error) */
	if (s)
		ctl_printable(s);
	table_push(t, s ? s : strdup("?"));
}

void ctl_table__print(struct ctl_table *t, FILE *f)
{
	size_t *w = calloc(t->ncols, sizeof(*w));

	if (!w)
		return;
	for (size_t i = 0; i < t->ncells; i++) {
		size_t l = t->cells[i] ? strlen(t->cells[i]) : 0;

		if (l > w[i % t->ncols])
			w[i % t->ncols] = l;
	}
	for (size_t i = 0; i < t->ncells; i++) {
		int c = i % t->ncols;
		const char *s = t->cells[i] ? t->cells[i] : "";
		bool last = c == t->ncols - 1 || i == t->ncells - 1;

		if (t->align && t->align[c] == 'r')
			fprintf(f, "%*s", (int)w[c], s);
		else if (last)
			fputs(s, f);
		else
			fprintf(f, "%-*s", (int)w[c], s);
		fputs(last ? "\n" : "  ", f);
	}
	free(w);
}

void ctl_table__free(struct ctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
