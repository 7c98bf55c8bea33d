// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Prometheus text exposition format parser (see promtext.h). Works on a
 * private copy of the page: names and label values are cut out of it in
 * place (unescaping only ever shrinks a value), so a page costs one copy
 * plus three arrays, whatever its number of samples.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "promtext.h"

/* per histogram family: the bucket series being read */
struct pt_hist {
	long last; /* sample index of the last bucket, -1 none */
	double le, count;
	bool open; /* series started, no +Inf bucket yet */
};

struct pt_slot {
	uint64_t h;
	uint32_t idx1; /* index + 1, 0 empty */
};

struct pt {
	struct prom_page *pg;
	char *err;
	size_t errlen;
	unsigned int line;
	struct pt_slot *fam_ht, *ser_ht;
	size_t fam_cap, ser_cap;
	struct pt_hist *hist; /* parallel to families */
	size_t hist_cap;
};

static int pt_fail(struct pt *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int pt_fail(struct pt *t, int code, const char *fmt, ...)
{
	size_t n = 0;
	va_list ap;

	if (!t->err || !t->errlen)
		return code;
	if (t->line)
		n = snprintf(t->err, t->errlen, "line %u: ", t->line);
	if (n < t->errlen) {
		va_start(ap, fmt);
		vsnprintf(t->err + n, t->errlen - n, fmt, ap);
		va_end(ap);
	}
	return code;
}

const char *prom_type__str(enum prom_type t)
{
	switch (t) {
	case PROM_COUNTER:
		return "counter";
	case PROM_GAUGE:
		return "gauge";
	case PROM_HISTOGRAM:
		return "histogram";
	case PROM_SUMMARY:
		return "summary";
	default:
		return "untyped";
	}
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static char *skip_blanks(char *p)
{
	while (is_blank(*p))
		p++;
	return p;
}

static bool is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9');
}

static bool is_label_start(char c)
{
	return is_name_start(c) && c != ':';
}

static bool is_label_char(char c)
{
	return is_name_char(c) && c != ':';
}

/* Go's ParseFloat as Prometheus uses it: decimal, NaN, [+-]Inf */
static bool prom_float(const char *s, double *out)
{
	char *end;

	if (!*s || strpbrk(s, "xX()"))
		return false;
	errno = 0;
	*out = strtod(s, &end);
	/* overflow to +-Inf is what Go does too; underflow is fine */
	return *end == '\0';
}

/* ---- growable arrays and hash tables ---- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 64;
	void *p;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static uint64_t hash_str(const char *s)
{
	return XXH3_64bits(s, strlen(s));
}

/* insert (h, idx) into an open addressing table kept at most half full */
static int ht_put(struct pt_slot **ht, size_t *cap, size_t n, uint64_t h, uint32_t idx)
{
	size_t i, mask;

	if ((n + 1) * 2 > *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct pt_slot *nt = calloc(ncap, sizeof(*nt));

		if (!nt)
			return -ENOMEM;
		for (i = 0; i < *cap; i++) {
			size_t j = (*ht)[i].h & (ncap - 1);

			if (!(*ht)[i].idx1)
				continue;
			while (nt[j].idx1)
				j = (j + 1) & (ncap - 1);
			nt[j] = (*ht)[i];
		}
		free(*ht);
		*ht = nt;
		*cap = ncap;
	}
	mask = *cap - 1;
	for (i = h & mask; (*ht)[i].idx1; i = (i + 1) & mask)
		;
	(*ht)[i].h = h;
	(*ht)[i].idx1 = idx + 1;
	return 0;
}

static long fam_find(const struct pt *t, const char *name)
{
	uint64_t h = hash_str(name);
	size_t i, mask = t->fam_cap - 1;

	if (!t->fam_cap)
		return -1;
	for (i = h & mask; t->fam_ht[i].idx1; i = (i + 1) & mask)
		if (t->fam_ht[i].h == h &&
		    !strcmp(t->pg->families[t->fam_ht[i].idx1 - 1].name, name))
			return t->fam_ht[i].idx1 - 1;
	return -1;
}

static long fam_add(struct pt *t, const char *name)
{
	struct prom_page *pg = t->pg;
	struct prom_family *f;
	size_t n = pg->nfamilies;

	if (grow((void **)&pg->families, &pg->cap_families, n + 1, sizeof(*pg->families)) ||
	    grow((void **)&t->hist, &t->hist_cap, n + 1, sizeof(*t->hist)) ||
	    ht_put(&t->fam_ht, &t->fam_cap, n, hash_str(name), n))
		return -ENOMEM;
	f = &pg->families[n];
	memset(f, 0, sizeof(*f));
	f->name = name;
	t->hist[n] = (struct pt_hist){.last = -1};
	pg->nfamilies++;
	return n;
}

static const struct prom_label *sample_labels(const struct prom_page *pg,
					      const struct prom_sample *s)
{
	/* a page without any label has no labels array: NULL + 0 is undefined */
	return s->nlabels ? pg->labels + s->label_off : NULL;
}

const char *prom_sample__label(const struct prom_page *pg, const struct prom_sample *s,
			       const char *name)
{
	const struct prom_label *l = sample_labels(pg, s);

	for (unsigned int i = 0; i < s->nlabels; i++)
		if (!strcmp(l[i].name, name))
			return l[i].value;
	return NULL;
}

bool prom_sample__same_labels(const struct prom_page *pg, const struct prom_sample *a,
			      const struct prom_sample *b, bool (*ignore)(const char *name))
{
	const struct prom_label *la = sample_labels(pg, a), *lb = sample_labels(pg, b);
	unsigned int na = 0, nb = 0;
	const char *v;

	for (unsigned int i = 0; i < a->nlabels; i++) {
		if (ignore && ignore(la[i].name))
			continue;
		na++;
		v = prom_sample__label(pg, b, la[i].name);
		if (!v || strcmp(v, la[i].value))
			return false;
	}
	for (unsigned int i = 0; i < b->nlabels; i++)
		nb += !ignore || !ignore(lb[i].name);
	return na == nb;
}

uint64_t prom_sample__labels_hash(const struct prom_page *pg, const struct prom_sample *s,
				  bool (*ignore)(const char *name))
{
	const struct prom_label *l = sample_labels(pg, s);
	uint64_t h = 0;

	/* a sum: the labels' order does not matter, as for same_labels */
	for (unsigned int i = 0; i < s->nlabels; i++)
		if (!ignore || !ignore(l[i].name))
			h += (XXH64(l[i].name, strlen(l[i].name), 0) * 0x9e3779b97f4a7c15ULL) ^
			     XXH64(l[i].value, strlen(l[i].value), 1);
	return h;
}

/* a histogram's bucket bound: its buckets differ only in it */
static bool le_label(const char *name)
{
	return !strcmp(name, "le");
}

static uint64_t series_hash(const struct prom_page *pg, const struct prom_sample *s)
{
	const struct prom_label *l = sample_labels(pg, s);
	uint64_t h = hash_str(s->name);

	/* summed per label so the order labels are written in does not count */
	for (unsigned int i = 0; i < s->nlabels; i++)
		h += XXH3_64bits_withSeed(l[i].value, strlen(l[i].value), hash_str(l[i].name));
	return h;
}

static int series_check(struct pt *t, size_t idx)
{
	const struct prom_page *pg = t->pg;
	const struct prom_sample *s = &pg->samples[idx];
	uint64_t h = series_hash(pg, s);
	size_t i, mask = t->ser_cap - 1;

	for (i = h & mask; t->ser_cap && t->ser_ht[i].idx1; i = (i + 1) & mask) {
		const struct prom_sample *o = &pg->samples[t->ser_ht[i].idx1 - 1];

		if (t->ser_ht[i].h == h && !strcmp(o->name, s->name) &&
		    prom_sample__same_labels(pg, s, o, NULL))
			return pt_fail(t, -EINVAL, "duplicate series %s (first on line %u)",
				       s->name, o->line);
	}
	return ht_put(&t->ser_ht, &t->ser_cap, idx, h, idx) ? -ENOMEM : 0;
}

/* ---- lines ---- */

static int parse_type(struct pt *t, const char *tok, enum prom_type *type)
{
	static const char *const names[] = {"untyped", "counter", "gauge", "histogram", "summary"};

	/* OpenMetrics types a 0.0.4 reader has no use for: their samples are
	 * read as plain, untyped series (an info metric's payload is in its
	 * labels, a stateset is one 0/1 series per state) */
	static const char *const om_names[] = {"info", "stateset", "gaugehistogram", "unknown"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(tok, names[i])) {
			*type = i;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(om_names) / sizeof(om_names[0]); i++) {
		if (!strcmp(tok, om_names[i])) {
			*type = PROM_UNTYPED;
			return 0;
		}
	}
	return pt_fail(t, -EINVAL, "unknown metric type \"%s\"", tok);
}

/* "# ..." : HELP, TYPE or a plain comment */
static int parse_comment(struct pt *t, char *p)
{
	struct prom_family *f;
	char *kw, *name, *e;
	bool help;
	long fi;

	p = skip_blanks(p + 1);
	kw = p;
	while (*p && !is_blank(*p))
		p++;
	if (p - kw != 4 || (strncmp(kw, "HELP", 4) && strncmp(kw, "TYPE", 4)))
		return 0; /* comment */
	help = kw[0] == 'H';
	p = skip_blanks(p);
	if (!*p)
		return 0; /* a bare "# HELP" is a comment, as in Prometheus */
	name = p;
	if (!is_name_start(*p))
		return pt_fail(t, -EINVAL, "invalid metric name in %s line",
			       help ? "HELP" : "TYPE");
	while (is_name_char(*p))
		p++;
	if (*p && !is_blank(*p))
		return pt_fail(t, -EINVAL, "invalid character '%c' in metric name", *p);
	e = p;
	if (*p)
		p = skip_blanks(p + 1);
	*e = '\0';

	fi = fam_find(t, name);
	if (fi < 0 && (fi = fam_add(t, name)) < 0)
		return pt_fail(t, -ENOMEM, "out of memory");
	f = &t->pg->families[fi];
	if (help) {
		char *out = p;

		if (f->help)
			return pt_fail(t, -EINVAL, "second HELP line for %s", name);
		f->help = p;
		while (*p) {
			if (*p != '\\') {
				*out++ = *p++;
				continue;
			}
			/* HELP is documentation: a lone backslash (a regex, a
			 * Windows path) is kept as written, as Prometheus does,
			 * rather than refusing the page over a comment */
			if (p[1] == 'n') {
				*out++ = '\n';
				p += 2;
			} else if (p[1] == '\\') {
				*out++ = '\\';
				p += 2;
			} else {
				*out++ = *p++;
			}
		}
		*out = '\0';
		return 0;
	}
	if (f->typed)
		return pt_fail(t, -EINVAL, "second TYPE line for %s", name);
	if (f->sampled)
		return pt_fail(t, -EINVAL, "TYPE line for %s after its samples", name);
	e = p;
	while (*e && !is_blank(*e))
		e++;
	if (*skip_blanks(e))
		return pt_fail(t, -EINVAL, "trailing text after TYPE");
	*e = '\0';
	if (!*p)
		return pt_fail(t, -EINVAL, "TYPE line for %s without a type", name);
	f->typed = true;
	return parse_type(t, p, &f->type);
}

static bool has_suffix(const char *s, size_t len, const char *suf, size_t *base)
{
	size_t n = strlen(suf);

	if (len <= n || strcmp(s + len - n, suf))
		return false;
	*base = len - n;
	return true;
}

/* Which family a sample name belongs to; declares an untyped one if none. */
static long sample_family(struct pt *t, const char *name)
{
	static const char *const sufs[] = {"_bucket", "_sum", "_count"};
	size_t len = strlen(name), base;
	char tmp[256];
	long fi;

	fi = fam_find(t, name);
	if (fi >= 0)
		return fi;
	for (size_t i = 0; i < 3; i++) {
		if (!has_suffix(name, len, sufs[i], &base) || base >= sizeof(tmp))
			continue;
		memcpy(tmp, name, base);
		tmp[base] = '\0';
		fi = fam_find(t, tmp);
		if (fi < 0)
			continue;
		if (t->pg->families[fi].type == PROM_HISTOGRAM ||
		    (i > 0 && t->pg->families[fi].type == PROM_SUMMARY))
			return fi;
	}
	return fam_add(t, name);
}

static int check_bucket(struct pt *t, long fi, size_t idx)
{
	struct prom_page *pg = t->pg;
	struct prom_sample *s = &pg->samples[idx];
	struct pt_hist *hs = &t->hist[fi];
	const char *le_s = prom_sample__label(pg, s, "le");
	bool same;
	double le;

	if (!le_s)
		return pt_fail(t, -EINVAL, "histogram bucket %s without an le label", s->name);
	if (!prom_float(le_s, &le) || isnan(le))
		return pt_fail(t, -EINVAL, "histogram bucket %s: le=\"%s\" is not a number",
			       s->name, le_s);
	same = hs->last >= 0 && prom_sample__same_labels(pg, s, &pg->samples[hs->last], le_label);
	if (same && !hs->open)
		return pt_fail(t, -EINVAL, "histogram bucket %s after its le=\"+Inf\" bucket",
			       s->name);
	if (same) {
		if (!(le > hs->le))
			return pt_fail(t, -EINVAL,
				       "histogram %s: le=\"%s\" not above the previous bucket",
				       s->name, le_s);
		if (!(s->value >= hs->count))
			return pt_fail(
			    t, -EINVAL,
			    "histogram %s: bucket count %g below the previous bucket's %g", s->name,
			    s->value, hs->count);
	} else if (hs->open) {
		return pt_fail(t, -EINVAL,
			       "histogram %s: series on line %u has no le=\"+Inf\" bucket", s->name,
			       pg->samples[hs->last].line);
	} else if (isnan(s->value) || s->value < 0) {
		return pt_fail(t, -EINVAL, "histogram %s: bucket count %g", s->name, s->value);
	}
	hs->last = idx;
	hs->le = le;
	hs->count = s->value;
	hs->open = !isinf(le) || le < 0;
	return 0;
}

static int check_sample(struct pt *t, long fi, size_t idx)
{
	struct prom_page *pg = t->pg;
	struct prom_family *f = &pg->families[fi];
	struct prom_sample *s = &pg->samples[idx];
	const char *q;
	double qv;
	size_t base;

	if (f->type == PROM_HISTOGRAM) {
		if (!strcmp(s->name, f->name))
			return pt_fail(t, -EINVAL,
				       "histogram %s: sample without _bucket/_sum/_count suffix",
				       s->name);
		if (has_suffix(s->name, strlen(s->name), "_bucket", &base))
			return check_bucket(t, fi, idx);
	} else if (f->type == PROM_SUMMARY && !strcmp(s->name, f->name)) {
		q = prom_sample__label(pg, s, "quantile");
		if (!q)
			return pt_fail(t, -EINVAL, "summary %s: sample without a quantile label",
				       s->name);
		if (!prom_float(q, &qv) || !(qv >= 0 && qv <= 1))
			return pt_fail(t, -EINVAL, "summary %s: quantile=\"%s\" not in [0, 1]",
				       s->name, q);
	}
	return 0;
}

static int parse_labels(struct pt *t, char **pp, struct prom_sample *s)
{
	struct prom_page *pg = t->pg;
	char *p = *pp, *name, *e, *val, *out;

	for (;;) {
		p = skip_blanks(p);
		if (*p == '}') {
			p++;
			break;
		}
		if (!is_label_start(*p))
			return pt_fail(t, -EINVAL, "expected a label name or '}' at column %ld",
				       (long)(p - *pp) + 1);
		name = p;
		while (is_label_char(*p))
			p++;
		e = p;
		p = skip_blanks(p);
		if (*p != '=')
			return pt_fail(t, -EINVAL, "expected '=' after label name");
		p = skip_blanks(p + 1);
		*e = '\0';
		if (*p != '"')
			return pt_fail(t, -EINVAL, "expected '\"' to open the value of label %s",
				       name);
		val = out = ++p;
		for (;;) {
			if (!*p)
				return pt_fail(t, -EINVAL, "unterminated value of label %s", name);
			if (*p == '"')
				break;
			if (*p != '\\') {
				*out++ = *p++;
				continue;
			}
			if (p[1] == 'n')
				*out++ = '\n';
			else if (p[1] == '\\' || p[1] == '"')
				*out++ = p[1];
			else
				return pt_fail(t, -EINVAL,
					       "invalid escape \"\\%c\" in value of label %s",
					       p[1] ? p[1] : ' ', name);
			p += 2;
		}
		/* out <= p: the closing quote's byte or earlier becomes the NUL */
		*out = '\0';
		p++;
		if (s->nlabels >= PROM_MAX_LABELS)
			return pt_fail(t, -E2BIG, "more than %d labels", PROM_MAX_LABELS);
		for (unsigned int i = 0; i < s->nlabels; i++)
			if (!strcmp(pg->labels[s->label_off + i].name, name))
				return pt_fail(t, -EINVAL, "label %s given twice", name);
		if (grow((void **)&pg->labels, &pg->cap_labels, pg->nlabels + 1,
			 sizeof(*pg->labels)))
			return pt_fail(t, -ENOMEM, "out of memory");
		pg->labels[pg->nlabels++] = (struct prom_label){.name = name, .value = val};
		s->nlabels++;
		p = skip_blanks(p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p != '}')
			return pt_fail(t, -EINVAL, "expected ',' or '}' after value of label %s",
				       name);
	}
	*pp = p;
	return 0;
}

static int parse_sample(struct pt *t, char *p)
{
	struct prom_page *pg = t->pg;
	struct prom_sample *s;
	char *name = p, *tok, *e, c;
	long fi;
	int err;

	if (!is_name_start(*p))
		return pt_fail(t, -EINVAL, "expected a metric name, a comment or a blank line");
	if (pg->nsamples >= PROM_MAX_SAMPLES)
		return pt_fail(t, -E2BIG, "more than %d samples", PROM_MAX_SAMPLES);
	if (grow((void **)&pg->samples, &pg->cap_samples, pg->nsamples + 1, sizeof(*pg->samples)))
		return pt_fail(t, -ENOMEM, "out of memory");
	s = &pg->samples[pg->nsamples];
	memset(s, 0, sizeof(*s));
	s->line = t->line;
	s->label_off = pg->nlabels;
	while (is_name_char(*p))
		p++;
	e = p;
	p = skip_blanks(p);
	c = *p;
	if (c && c != '{' && p == e)
		return pt_fail(t, -EINVAL, "invalid character '%c' in metric name", c);
	*e = '\0';
	s->name = name;
	if (c == '{') {
		p++;
		if ((err = parse_labels(t, &p, s)))
			return err;
		p = skip_blanks(p);
	}
	tok = p;
	while (*p && !is_blank(*p))
		p++;
	if (p == tok)
		return pt_fail(t, -EINVAL, "%s: missing value", name);
	c = *p;
	*p = '\0';
	if (!prom_float(tok, &s->value))
		return pt_fail(t, -EINVAL, "%s: invalid value \"%s\"", name, tok);
	if (c) {
		tok = p = skip_blanks(p + 1);
		while (*p && !is_blank(*p))
			p++;
		/* an OpenMetrics exemplar ("# {trace_id=...} 0.67") ends the
		 * sample; what it says about one request is of no use here */
		if (*tok == '#')
			p = tok;
		if (p != tok) {
			c = *p;
			*p = '\0';
			double sec;

			errno = 0;
			s->ts_ms = strtoll(tok, &e, 10);
			/* the text format's are integer ms; OpenMetrics writes
			 * seconds, fractional ones too ("1520879607.789") */
			if ((errno || *e || e == tok) && prom_float(tok, &sec) && isfinite(sec) &&
			    fabs(sec) < 9e15) {
				s->ts_ms = llround(sec * 1000);
				e = tok + strlen(tok);
				errno = 0;
			}
			if (errno || *e || e == tok || *tok == '+')
				return pt_fail(t, -EINVAL, "%s: invalid timestamp \"%s\"", name,
					       tok);
			s->has_ts = true;
			if (c && (e = skip_blanks(p + 1)) && *e && *e != '#')
				return pt_fail(t, -EINVAL, "%s: trailing text after the timestamp",
					       name);
		}
	}

	fi = sample_family(t, name);
	if (fi < 0)
		return pt_fail(t, -ENOMEM, "out of memory");
	s->family = fi;
	pg->families[fi].sampled = true;
	pg->nsamples++;
	if ((err = check_sample(t, fi, pg->nsamples - 1)))
		return err;
	return series_check(t, pg->nsamples - 1);
}

void promtext__free(struct prom_page *pg)
{
	free(pg->buf);
	free(pg->families);
	free(pg->samples);
	free(pg->labels);
	memset(pg, 0, sizeof(*pg));
}

int promtext__parse(struct prom_page *pg, const char *text, size_t len, char *err, size_t errlen)
{
	struct pt t = {.pg = pg, .err = err, .errlen = errlen};
	char *line, *nl, *end, *p;
	int ret = 0;

	memset(pg, 0, sizeof(*pg));
	if (err && errlen)
		err[0] = '\0';
	if (len > PROM_MAX_BYTES)
		return pt_fail(&t, -E2BIG, "page of %zu bytes, limit %d", len, PROM_MAX_BYTES);
	pg->buf = malloc(len + 1);
	if (!pg->buf)
		return pt_fail(&t, -ENOMEM, "out of memory");
	memcpy(pg->buf, text, len);
	pg->buf[len] = '\0';
	end = pg->buf + len;

	for (line = pg->buf; line < end && !ret; line = nl + 1) {
		t.line++;
		nl = memchr(line, '\n', end - line);
		if (!nl)
			nl = end;
		if (memchr(line, '\0', nl - line)) {
			ret = pt_fail(&t, -EINVAL, "NUL byte");
			break;
		}
		*nl = '\0';
		/* tolerate CRLF pages; a lone CR elsewhere is garbage */
		if (nl > line && nl[-1] == '\r')
			nl[-1] = '\0';
		p = skip_blanks(line);
		if (!*p)
			continue;
		if (*p == '#')
			ret = parse_comment(&t, p);
		else
			ret = parse_sample(&t, p);
	}
	/* every histogram series must have been closed by its +Inf bucket */
	for (size_t i = 0; !ret && i < pg->nfamilies; i++) {
		if (t.hist[i].open) {
			t.line = pg->samples[t.hist[i].last].line;
			ret = pt_fail(&t, -EINVAL, "histogram %s: series has no le=\"+Inf\" bucket",
				      pg->families[i].name);
		}
	}
	free(t.fam_ht);
	free(t.ser_ht);
	free(t.hist);
	return ret;
}

const struct prom_family *promtext__family(const struct prom_page *pg, const char *name)
{
	for (size_t i = 0; i < pg->nfamilies; i++)
		if (!strcmp(pg->families[i].name, name))
			return &pg->families[i];
	return NULL;
}

int promtext__sum_where(const struct prom_page *pg, const char *name, const char *lname,
			const char *lvalue, double *sum)
{
	const char *v;
	int n = 0;

	*sum = 0;
	for (size_t i = 0; i < pg->nsamples; i++) {
		const struct prom_sample *s = &pg->samples[i];

		/* NaN (no data yet) and +-Inf (an overflowed or broken
		 * figure) say nothing usable; one must not poison a sum */
		if (strcmp(s->name, name) || !isfinite(s->value))
			continue;
		if (lname && (!(v = prom_sample__label(pg, s, lname)) || strcmp(v, lvalue)))
			continue;
		*sum += s->value;
		n++;
	}
	return n;
}

int promtext__sum(const struct prom_page *pg, const char *name, double *sum)
{
	return promtext__sum_where(pg, name, NULL, NULL, sum);
}
