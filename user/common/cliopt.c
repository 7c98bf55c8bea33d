// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include "cliopt.h"
#include "mac.h"

#define CLIOPT_VAL0	256 /* getopt value of row i without a short name: 256 + i */
#define CLIOPT_HELP_COL 32  /* help text starts here at most */
#define CLIOPT_LINE	100 /* a default that would end a line past this gets its own */

static void *opt_dst(const struct cliopt *o, void *base)
{
	return o->ptr ? o->ptr : (char *)base + o->off;
}

static const char *opt_metavar(const struct cliopt *o)
{
	static const char *const by_type[] = {
	    [CLIOPT_INT] = "N",
	    [CLIOPT_UINT] = "N",
	    [CLIOPT_UNUM] = "N",
	    [CLIOPT_DOUBLE] = "NUM",
	    [CLIOPT_STR] = "TEXT",
	    [CLIOPT_PATH] = "PATH",
	    [CLIOPT_LISTEN] = "ADDR:PORT",
	    [CLIOPT_IPADDR] = "ADDR",
	    [CLIOPT_MACADDR] = "MAC",
	    [CLIOPT_ENUM] = "NAME",
	    [CLIOPT_STRV] = "TEXT",
	    [CLIOPT_FUNC] = "VALUE",
	};

	if (o->metavar)
		return o->metavar;
	return o->type < sizeof(by_type) / sizeof(by_type[0]) ? by_type[o->type] : NULL;
}

static bool opt_is_whole(const struct cliopt *o)
{
	return o->type == CLIOPT_INT || o->type == CLIOPT_UINT || o->type == CLIOPT_UNUM;
}

/* 1e+09 rather than 1000000000, where that is exact */
static int opt_num(double v, char *buf, size_t len)
{
	char *end;
	int n = snprintf(buf, len, "%.16g", v);

	if (n > 8 && (size_t)n < len && snprintf(NULL, 0, "%g", v) < n) {
		char g[32];

		snprintf(g, sizeof(g), "%g", v);
		if (strtod(g, &end) == v)
			n = snprintf(buf, len, "%s", g);
	}
	return n;
}

static void opt_range(const struct cliopt *o, char *buf, size_t len)
{
	char lo[40], hi[40];

	opt_num(o->min, lo, sizeof(lo));
	opt_num(o->max, hi, sizeof(hi));
	snprintf(buf, len, "%s..%s", lo, hi);
}

static void opt_enum_names(const struct cliopt *o, char *buf, size_t len, const char *sep)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; o->names && o->names[i] && n < len; i++)
		n += snprintf(buf + n, len - n, "%s%s", i ? sep : "", o->names[i]);
}

/* the value of a numeric row, or -EINVAL with why */
static int opt_number(const struct cliopt *o, const char *arg, double *v, char *why, size_t len)
{
	char range[96], *end;
	const char *s = arg;

	while (*s == ' ' || *s == '\t')
		s++;
	errno = 0;
	end = (char *)s;
	if (o->type == CLIOPT_INT)
		*v = strtol(s, &end, 10);
	else if (o->type == CLIOPT_UINT && *s != '-') /* strtoul would wrap it */
		*v = strtoul(s, &end, 10);
	else if (o->type != CLIOPT_UINT)
		*v = strtod(s, &end);
	if (errno || end == s || *end || !(*v >= o->min && *v <= o->max)) {
		opt_range(o, range, sizeof(range));
		snprintf(why, len, "must be a %snumber %s",
			 o->type == CLIOPT_INT || o->type == CLIOPT_UINT ? "whole " : "", range);
		return -EINVAL;
	}
	return 0;
}

/* arg into the row's member, or -EINVAL with why */
static int opt_store(const struct cliopt *o, const char *arg, void *base, char *why, size_t len)
{
	void *dst = opt_dst(o, base);
	double v;
	int i, *count;

	switch (o->type) {
	case CLIOPT_FLAG:
		if (o->size == sizeof(bool))
			*(bool *)dst = !o->neg;
		else
			*(int *)dst = !o->neg;
		return 0;
	case CLIOPT_INT:
	case CLIOPT_UINT:
	case CLIOPT_UNUM:
	case CLIOPT_DOUBLE:
		if (opt_number(o, arg, &v, why, len))
			return -EINVAL;
		if (o->type == CLIOPT_INT)
			*(int *)dst = v;
		else if (o->type == CLIOPT_UINT)
			*(unsigned int *)dst = v;
		else if (o->type == CLIOPT_DOUBLE)
			*(double *)dst = v;
		else if (o->size == sizeof(uint64_t))
			*(uint64_t *)dst = v;
		else
			*(uint32_t *)dst = v;
		return 0;
	case CLIOPT_PATH:
		if (!arg[0]) {
			snprintf(why, len, "must not be empty");
			return -EINVAL;
		}
		/* fall through */
	case CLIOPT_STR:
		*(const char **)dst = arg;
		return 0;
	case CLIOPT_LISTEN: {
		struct listen_addr *la = dst;

		if (listen_addr__parse(arg, &la->ss, &la->len, why, len))
			return -EINVAL;
		la->spec = arg;
		return 0;
	}
	case CLIOPT_IPADDR: {
		struct cliopt_ipaddr *ip = dst;

		memset(ip, 0, sizeof(*ip));
		if (inet_pton(AF_INET, arg, &ip->v4) == 1) {
			ip->family = AF_INET;
		} else if (inet_pton(AF_INET6, arg, &ip->v6) == 1) {
			ip->family = AF_INET6;
		} else {
			snprintf(why, len, "not an IPv4 or IPv6 address");
			return -EINVAL;
		}
		return 0;
	}
	case CLIOPT_MACADDR:
		if (aibl_mac__parse(arg, dst)) {
			snprintf(why, len, "not a MAC address like 02:00:00:00:00:01");
			return -EINVAL;
		}
		return 0;
	case CLIOPT_ENUM:
		for (i = 0; o->names && o->names[i]; i++) {
			if (!strcmp(arg, o->names[i])) {
				*(int *)dst = i;
				return 0;
			}
		}
		i = snprintf(why, len, "must be one of ");
		opt_enum_names(o, why + i, len - i, ", ");
		return -EINVAL;
	case CLIOPT_STRV:
		count = (int *)((char *)base + o->count_off);
		if (*count < 0 || (size_t)*count >= o->size / sizeof(const char *)) {
			snprintf(why, len, "given more than %zu times",
				 o->size / sizeof(const char *));
			return -EINVAL;
		}
		((const char **)dst)[(*count)++] = arg;
		return 0;
	case CLIOPT_FUNC:
		why[0] = '\0';
		if (o->fn(arg, dst, why, len)) {
			if (!why[0])
				snprintf(why, len, "invalid");
			return -EINVAL;
		}
		return 0;
	}
	snprintf(why, len, "row of unknown type %d", o->type);
	return -EINVAL;
}

static int opt_set(const struct cliopt_prog *p, const struct cliopt *o, const char *arg, void *base,
		   bool is_def)
{
	char why[512];

	if (!opt_store(o, arg, base, why, sizeof(why)))
		return 0;
	fprintf(p->err ? p->err : stderr, "%s: %s--%s%s%s: %s\n", p->name,
		is_def ? "the default of " : "", o->name, o->type == CLIOPT_FLAG ? "" : " ",
		o->type == CLIOPT_FLAG ? ""
		: arg[0]	       ? arg
				       : "''",
		why);
	return -EINVAL;
}

static int usage_error(const struct cliopt_prog *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const struct cliopt_prog *p, const char *fmt, ...)
{
	FILE *f = p->err ? p->err : stderr;
	va_list ap;

	fprintf(f, "%s: ", p->name);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fprintf(f, "\nTry '%s --help'.\n", p->name);
	return -EINVAL;
}

static int opt_by_val(const struct cliopt_prog *p, int val)
{
	if (val >= CLIOPT_VAL0 && (size_t)(val - CLIOPT_VAL0) < p->nopts)
		return val - CLIOPT_VAL0;
	for (size_t i = 0; val > 0 && i < p->nopts; i++)
		if (p->opts[i].short_name == val)
			return i;
	return -1;
}

int cliopt__parse(const struct cliopt_prog *p, int argc, char **argv, void *base)
{
	struct option *lo = calloc(p->nopts + 2, sizeof(*lo));
	char *optstr = malloc(2 * p->nopts + 4);
	bool *seen = calloc(p->nopts + 1, sizeof(*seen));
	const struct cliopt *o;
	size_t k = 0;
	int c, i, ret = 0;

	if (!lo || !optstr || !seen) {
		fprintf(p->err ? p->err : stderr, "%s: out of memory\n", p->name);
		ret = -ENOMEM;
		goto out;
	}
	optstr[k++] = ':'; /* ':' for a missing value, '?' for the rest */
	for (size_t j = 0; j < p->nopts; j++) {
		o = &p->opts[j];
		lo[j].name = o->name;
		lo[j].has_arg = o->type == CLIOPT_FLAG ? no_argument : required_argument;
		lo[j].val = o->short_name ? o->short_name : CLIOPT_VAL0 + (int)j;
		if (o->short_name) {
			optstr[k++] = o->short_name;
			if (o->type != CLIOPT_FLAG)
				optstr[k++] = ':';
		}
	}
	lo[p->nopts] = (struct option){"help", no_argument, NULL, 'h'};
	optstr[k++] = 'h';
	optstr[k] = '\0';

	optind = 0; /* glibc: start afresh, also after an earlier parse */
	opterr = 0;
	while ((c = getopt_long(argc, argv, optstr, lo, NULL)) != -1) {
		if (c == 'h') {
			cliopt__usage(p, p->out ? p->out : stdout);
			ret = 1;
			goto out;
		}
		if (c == ':' || c == '?') {
			i = opt_by_val(p, optopt);
			if (c == ':' && i >= 0)
				ret = usage_error(p, "--%s needs a value", p->opts[i].name);
			else if (i >= 0) /* only a long flag given "=VALUE" */
				ret = usage_error(p, "--%s takes no value", p->opts[i].name);
			else if (optopt > 0 && optopt < CLIOPT_VAL0)
				ret = usage_error(p, "unknown option -%c", optopt);
			else
				ret = usage_error(p, "unknown option %s", argv[optind - 1]);
			goto out;
		}
		i = opt_by_val(p, c);
		if (i < 0) {
			ret = usage_error(p, "getopt returned %d", c);
			goto out;
		}
		o = &p->opts[i];
		if (o->group && o->group != p->group) {
			ret = usage_error(p, "--%s is %s option", o->name,
					  o->group <= p->ngroups && p->groups
					      ? p->groups[o->group].name
					      : "another mode's");
			goto out;
		}
		seen[i] = true;
		if (opt_set(p, o, optarg, base, false)) {
			ret = -EINVAL;
			goto out;
		}
	}
	if (optind < argc) {
		ret = usage_error(p, "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	for (size_t j = 0; j < p->nopts; j++) {
		o = &p->opts[j];
		if (seen[j] || (o->group && o->group != p->group))
			continue;
		if (o->required) {
			ret = usage_error(p, "--%s is required", o->name);
			goto out;
		}
		if (o->def && opt_set(p, o, o->def, base, true)) {
			ret = -EINVAL;
			goto out;
		}
	}
out:
	free(lo);
	free(optstr);
	free(seen);
	return ret;
}

/* ---- usage ---- */

static int opt_left(const struct cliopt *o, char *buf, size_t len)
{
	const char *mv = o->type == CLIOPT_FLAG ? NULL : opt_metavar(o);
	char names[256];

	if (o->type == CLIOPT_ENUM && !o->metavar) {
		opt_enum_names(o, names, sizeof(names), "|");
		mv = names;
	}
	if (o->short_name)
		return snprintf(buf, len, "  -%c, --%s%s%s", o->short_name, o->name, mv ? " " : "",
				mv ? mv : "");
	return snprintf(buf, len, "      --%s%s%s", o->name, mv ? " " : "", mv ? mv : "");
}

/* "(default 1000; 10..60000)" and the like; "" when there is nothing to say */
static void opt_notes(const struct cliopt *o, char *buf, size_t len)
{
	const char *def = o->def_help ? o->def_help : o->def;
	char range[96];
	size_t n = 0;

	buf[0] = '\0';
	if (o->required)
		n += snprintf(buf + n, len - n, "%srequired", n ? "; " : "(");
	if (def && n < len)
		n += snprintf(buf + n, len - n, "%sdefault %s", n ? "; " : "(", def);
	if ((opt_is_whole(o) || o->type == CLIOPT_DOUBLE) && n < len) {
		opt_range(o, range, sizeof(range));
		n += snprintf(buf + n, len - n, "%s%s", n ? "; " : "(", range);
	}
	if (o->type == CLIOPT_STRV && n < len)
		n += snprintf(buf + n, len - n, "%sup to %zu times", n ? "; " : "(",
			      o->size / sizeof(const char *));
	if (n && n < len)
		snprintf(buf + n, len - n, ")");
}

static void opt_usage(FILE *f, const struct cliopt *o, int col)
{
	const char *h = o->help ? o->help : "", *nl;
	char left[320], notes[256];
	int n = opt_left(o, left, sizeof(left)), last;

	opt_notes(o, notes, sizeof(notes));
	fputs(left, f);
	if (n + 2 > col) {
		fputc('\n', f);
		n = 0;
	}
	for (;;) {
		nl = strchr(h, '\n');
		last = nl ? (int)(nl - h) : (int)strlen(h);
		fprintf(f, "%*s%.*s", col - n, "", last, h);
		if (!nl)
			break;
		fputc('\n', f);
		h = nl + 1;
		n = 0;
	}
	if (notes[0]) {
		if (col + last + 1 + (int)strlen(notes) > CLIOPT_LINE)
			fprintf(f, "\n%*s%s", col, "", notes);
		else
			fprintf(f, "%s%s", last ? " " : "", notes);
	}
	fputc('\n', f);
}

void cliopt__usage(const struct cliopt_prog *p, FILE *f)
{
	static const struct cliopt help = {
	    .name = "help", .short_name = 'h', .type = CLIOPT_FLAG, .help = "this text"};
	char left[320];
	int col = 0, n;

	for (size_t i = 0; i < p->nopts; i++) {
		n = opt_left(&p->opts[i], left, sizeof(left)) + 2;
		if (n > col)
			col = n;
	}
	if (col > CLIOPT_HELP_COL)
		col = CLIOPT_HELP_COL;
	if (p->synopsis)
		fprintf(f, "%s\n", p->synopsis);
	for (unsigned int g = 0; g <= p->ngroups; g++) {
		fprintf(f, "\n%s\n", g ? p->groups[g].title : p->title ? p->title : "Options:");
		for (size_t i = 0; i < p->nopts; i++)
			if (p->opts[i].group == g)
				opt_usage(f, &p->opts[i], col);
		if (!g)
			opt_usage(f, &help, col);
	}
	if (p->epilog)
		fprintf(f, "\n%s\n", p->epilog);
}
