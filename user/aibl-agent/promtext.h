/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Parser for the Prometheus text exposition format (version 0.0.4), the
 * /metrics page every inference server (vLLM, SGLang, TensorRT-LLM, Triton,
 * TGI) serves. Debian ships Prometheus client libraries that only write
 * this format, none that reads it, hence this one.
 *
 * Whole format: blank lines, comments, "# HELP name text" (escapes \\ \n;
 * any other backslash is kept as written), "# TYPE name
 * counter|gauge|histogram|summary|untyped" (once per name, before its
 * first sample; OpenMetrics' info, stateset, gaugehistogram and unknown
 * read as untyped), samples
 *     name{label="value",...} value [timestamp_ms]
 * with label value escapes \\ \" \n, a trailing comma in the label set,
 * values NaN/+Inf/-Inf, optional integer timestamps, an OpenMetrics
 * exemplar after them (" # {...} v [ts]", ignored). Histogram buckets
 * must carry le, rise in le and count per series and end with le="+Inf";
 * summary quantiles must be in [0, 1]. Duplicate series are refused.
 * Anything else is refused with the line number: a scrape is used whole
 * or not at all.
 */
#ifndef AIBL_PROMTEXT_H
#define AIBL_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_MAX_BYTES	 (16 * 1024 * 1024)
#define PROM_MAX_SAMPLES 200000
#define PROM_MAX_LABELS	 64 /* per sample */

enum prom_type {
	PROM_UNTYPED = 0,
	PROM_COUNTER,
	PROM_GAUGE,
	PROM_HISTOGRAM,
	PROM_SUMMARY,
};

struct prom_label {
	const char *name;
	const char *value; /* unescaped */
};

struct prom_family {
	const char *name;
	const char *help; /* unescaped, NULL when no HELP line */
	enum prom_type type;
	bool typed;   /* a TYPE line was seen */
	bool sampled; /* a sample of it was seen */
};

struct prom_sample {
	const char *name;	/* as written: foo_bucket, foo_sum, ... */
	int family;		/* index into families, -1 when none declared */
	unsigned int label_off; /* into page->labels */
	unsigned int nlabels;
	double value;
	bool has_ts;
	int64_t ts_ms;
	unsigned int line;
};

struct prom_page {
	char *buf; /* private copy of the text; all strings point into it */
	struct prom_family *families;
	size_t nfamilies, cap_families;
	struct prom_sample *samples;
	size_t nsamples, cap_samples;
	struct prom_label *labels;
	size_t nlabels, cap_labels;
};

/*
 * Parse text[len] into page (which need not be initialised; free it with
 * promtext__free() also on failure). 0, or -EINVAL malformed (err says
 * "line N: why"), -E2BIG over a limit, -ENOMEM.
 */
int promtext__parse(struct prom_page *page, const char *text, size_t len, char *err, size_t errlen);
void promtext__free(struct prom_page *page);

const char *prom_type__str(enum prom_type t);

/* the family a name belongs to (exact name), NULL when undeclared */
const struct prom_family *promtext__family(const struct prom_page *page, const char *name);

/* value of label `name` of sample s, NULL when absent */
const char *prom_sample__label(const struct prom_page *page, const struct prom_sample *s,
			       const char *name);
/* a hash of s's labels but those ignore() names, whatever their order:
 * equal for label sets prom_sample__same_labels() finds the same */
uint64_t prom_sample__labels_hash(const struct prom_page *pg, const struct prom_sample *s,
				  bool (*ignore)(const char *name));
/* a and b carry the same label set, order aside, not counting the labels
 * ignore() names (NULL: every label counts) */
bool prom_sample__same_labels(const struct prom_page *page, const struct prom_sample *a,
			      const struct prom_sample *b, bool (*ignore)(const char *name));

/*
 * Sum of every sample called `name` (over all label sets), NaN and
 * +-Inf samples skipped. Returns how many samples were summed (0: none, *sum = 0).
 */
int promtext__sum(const struct prom_page *page, const char *name, double *sum);

/* like promtext__sum, only samples whose label lname equals lvalue */
int promtext__sum_where(const struct prom_page *page, const char *name, const char *lname,
			const char *lvalue, double *sum);

#endif
