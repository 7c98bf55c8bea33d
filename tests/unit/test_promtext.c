// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Prometheus text format parser: recorded pages of every server kind,
 * the corners of the format, and pages it must refuse. */
#include <math.h>
#include <stdlib.h>
#include "test.h"
#include "../../user/aibl-agent/promtext.h"

static char *read_page(const char *name, size_t *len)
{
	const char *root = getenv("AIBL_ROOT");
	char path[512];
	char *buf = NULL;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/tests/data/metrics/%s", root ? root : ".", name);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(n + 1);
		if (buf && fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[n] = '\0';
			*len = n;
		}
	}
	fclose(f);
	return buf;
}

static bool parse_file(const char *name, struct prom_page *pg)
{
	char err[256];
	size_t len = 0;
	char *text = read_page(name, &len);
	int ret;

	memset(pg, 0, sizeof(*pg));
	if (!ASSERT_OK_PTR(text, name))
		return false;
	ret = promtext__parse(pg, text, len, err, sizeof(err));
	free(text);
	if (!ASSERT_OK(ret, name)) {
		fprintf(stderr, "  %s: %s\n", name, err);
		return false;
	}
	return true;
}

static bool near(double a, double b)
{
	return fabs(a - b) < 1e-9;
}

static void page_vllm(void)
{
	const struct prom_family *f;
	struct prom_page pg;
	double v;

	if (!parse_file("vllm.txt", &pg))
		goto out;
	ASSERT_EQ(promtext__sum(&pg, "vllm:num_requests_waiting", &v), 1, "waiting");
	ASSERT_TRUE(near(v, 5), "waiting value");
	ASSERT_EQ(promtext__sum(&pg, "vllm:num_requests_running", &v), 1, "running");
	ASSERT_TRUE(near(v, 3), "running value");
	ASSERT_EQ(promtext__sum(&pg, "vllm:kv_cache_usage_perc", &v), 1, "kv");
	ASSERT_TRUE(near(v, 0.4213), "kv value");
	ASSERT_EQ(promtext__sum(&pg, "vllm:gpu_cache_usage_perc", &v), 1, "old kv");
	ASSERT_EQ(promtext__sum(&pg, "vllm:prefix_cache_hits_total", &v), 1, "hits");
	ASSERT_TRUE(near(v, 9600), "hits value");
	ASSERT_EQ(promtext__sum(&pg, "vllm:prefix_cache_queries_total", &v), 1, "queries");
	ASSERT_TRUE(near(v, 12800), "queries value");
	/* histogram: samples belong to the family through their suffix */
	f = promtext__family(&pg, "vllm:time_to_first_token_seconds");
	if (ASSERT_OK_PTR(f, "ttft family")) {
		ASSERT_EQ(f->type, PROM_HISTOGRAM, "ttft type");
		ASSERT_STREQ(f->help, "Histogram of time to first token in seconds.", "help");
	}
	ASSERT_EQ(promtext__sum(&pg, "vllm:time_to_first_token_seconds_bucket", &v), 13, "buckets");
	ASSERT_EQ(
	    promtext__sum_where(&pg, "vllm:time_to_first_token_seconds_bucket", "le", "+Inf", &v),
	    1, "+Inf bucket");
	ASSERT_TRUE(near(v, 42), "+Inf count");
	ASSERT_EQ(promtext__sum(&pg, "vllm:time_to_first_token_seconds_sum", &v), 1, "sum");
	ASSERT_TRUE(near(v, 5.25), "sum value");
	/* the _created gauge python emits is its own family, not the histogram's */
	f = promtext__family(&pg, "vllm:time_to_first_token_seconds_created");
	if (ASSERT_OK_PTR(f, "created"))
		ASSERT_EQ(f->type, PROM_GAUGE, "created is a gauge");
	/* an info metric: the payload is in labels, one empty */
	for (size_t i = 0; i < pg.nsamples; i++) {
		const struct prom_sample *s = &pg.samples[i];

		if (strcmp(s->name, "vllm:lora_requests_info"))
			continue;
		ASSERT_STREQ(prom_sample__label(&pg, s, "running_lora_adapters"),
			     "sql-lora,chat-lora", "lora running");
		ASSERT_STREQ(prom_sample__label(&pg, s, "waiting_lora_adapters"), "",
			     "empty label");
		ASSERT_EQ(s->nlabels, 3, "lora labels");
	}
	/* NaN is a value, skipped by sums */
	ASSERT_EQ(promtext__sum(&pg, "vllm:spec_decode_draft_acceptance_rate", &v), 0,
		  "NaN skipped");
	ASSERT_EQ(promtext__sum(&pg, "python_gc_objects_collected_total", &v), 3, "gc");
	ASSERT_TRUE(near(v, 12875 + 2310 + 87), "gc sum");
out:
	promtext__free(&pg);
}

static void page_others(void)
{
	static const struct {
		const char *file, *metric;
		int n;
		double sum;
	} pages[] = {
	    {"vllm-v0.txt", "vllm:gpu_cache_usage_perc", 1, 0},
	    {"vllm-v0.txt", "vllm:time_to_first_token_seconds_count", 1, 1},
	    {"vllm-v0.txt", "vllm:time_to_first_token_seconds_sum", 1, 0.31326723098754883},
	    {"vllm-v0.txt", "vllm:time_to_first_token_seconds_bucket", 17, 8},
	    {"vllm-v0.txt", "process_max_fds", 1, 1048576},
	    {"sglang.txt", "sglang:num_queue_reqs", 1, 2826},
	    {"sglang.txt", "sglang:num_running_reqs", 1, 162},
	    {"sglang.txt", "sglang:token_usage", 1, 0.28},
	    {"sglang.txt", "sglang:cache_hit_rate", 1, 0.007507552643049313},
	    /* exponent notation */
	    {"sglang.txt", "sglang:prompt_tokens_total", 1, 8128902},
	    {"sglang.txt", "sglang:time_to_first_token_seconds_sum", 1, 2351897.9474117756},
	    /* the router's page: one series per worker */
	    {"sglang-new.txt", "sglang_num_running_reqs", 2, 324},
	    {"sglang-new.txt", "sglang_num_queue_reqs", 2, 5652},
	    {"sglang-new.txt", "sglang_cache_hit_rate", 2, 2 * 0.007507552643049313},
	    {"trtllm.txt", "trtllm_time_to_first_token_seconds_sum", 1, 9.3},
	    {"trtllm.txt", "trtllm_kv_cache_utilization", 1, 0.18},
	    /* one series per model, eight models */
	    {"triton.txt", "nv_inference_pending_request_count", 8, 0},
	    {"triton.txt", "nv_inference_request_duration_us", 8, 1327965},
	    {"triton.txt", "nv_gpu_utilization", 1, 0},
	    {"triton.txt", "nv_gpu_memory_total_bytes", 1, 16106127360},
	    {"triton.txt", "nv_cache_util", 1, 0.0001220703125},
	    /* no TYPE line: each name its own untyped series */
	    {"trtllm-pr5785.txt", "time_to_first_token_seconds_bucket", 11, 22},
	    {"trtllm-pr5785.txt", "time_to_first_token_seconds_count", 1, 2},
	    {"tgi.txt", "tgi_queue_size", 1, 0},
	    {"tgi.txt", "tgi_batch_current_size", 1, 0},
	    {"tgi.txt", "tgi_request_count", 1, 111},
	    /* a summary's quantiles, and its count */
	    {"tgi.txt", "tgi_request_skipped_tokens", 7, 0},
	    {"tgi.txt", "tgi_request_skipped_tokens_count", 1, 3423},
	    {"tgi.txt", "tgi_request_inference_duration_sum", 1, 245.91743839099996},
	    {"tgi.txt", "tgi_request_inference_duration_bucket", 36,
	     2 + 83 + 103 + 104 * 4 + 109 * 7},
	};
	struct prom_page pg;
	double v;

	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		if (!parse_file(pages[i].file, &pg))
			continue;
		ASSERT_EQ(promtext__sum(&pg, pages[i].metric, &v), pages[i].n, pages[i].metric);
		if (!ASSERT_TRUE(near(v, pages[i].sum), pages[i].metric))
			fprintf(stderr, "  %s: got %g want %g\n", pages[i].metric, v, pages[i].sum);
		promtext__free(&pg);
	}
}

static void triton_timestamps_and_summary(void)
{
	const struct prom_family *f;
	struct prom_page pg;
	const char *text;
	char err[256] = "";
	double v;

	if (!parse_file("triton-trtllm-readme.txt", &pg))
		goto out;
	ASSERT_EQ(
	    promtext__sum_where(&pg, "nv_trt_llm_request_metrics", "request_type", "waiting", &v),
	    1, "waiting");
	ASSERT_TRUE(near(v, 1), "waiting value");
	promtext__free(&pg);

	/* Triton writes no timestamps; the text format's own example does
	 * (prometheus.io/docs/instrumenting/exposition_formats, "Text format
	 * example"), blanks before one value included */
	if (!parse_file("triton.txt", &pg))
		goto out;
	ASSERT_FALSE(pg.samples[0].has_ts, "Triton: no timestamp");
	promtext__free(&pg);
	text = "# HELP http_requests_total The total number of HTTP requests.\n"
	       "# TYPE http_requests_total counter\n"
	       "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
	       "http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n";
	if (!ASSERT_OK(promtext__parse(&pg, text, strlen(text), err, sizeof(err)), err))
		goto out;
	ASSERT_TRUE(pg.samples[0].has_ts, "timestamp seen");
	ASSERT_EQ(pg.samples[0].ts_ms, 1395066363000LL, "timestamp value");
	ASSERT_TRUE(pg.samples[1].value == 3 && pg.samples[1].ts_ms == 1395066363000LL,
		    "blanks before the value");
	promtext__free(&pg);
	/* OpenMetrics writes seconds, fractional ones too: the counter line of
	 * Prometheus' own OpenMetrics parser test
	 * (prometheus/prometheus model/textparse/openmetricsparse_test.go) */
	text = "# TYPE foo counter\nfoo_total 17.0 1520879607.789 # {id=\"counter-test\"} 5\n"
	       "# EOF\n";
	if (!ASSERT_OK(promtext__parse(&pg, text, strlen(text), err, sizeof(err)), err))
		goto out;
	ASSERT_TRUE(pg.nsamples == 1 && pg.samples[0].has_ts &&
			pg.samples[0].ts_ms == 1520879607789LL,
		    "fractional seconds");
	promtext__free(&pg);

	if (!parse_file("tgi.txt", &pg))
		goto out;
	f = promtext__family(&pg, "tgi_request_skipped_tokens");
	if (ASSERT_OK_PTR(f, "summary"))
		ASSERT_EQ(f->type, PROM_SUMMARY, "summary type");
	ASSERT_EQ(promtext__sum(&pg, "tgi_request_skipped_tokens_count", &v), 1, "count");
	ASSERT_EQ(promtext__sum_where(&pg, "tgi_request_skipped_tokens", "quantile", "0.999", &v),
		  1, "one quantile");
	f = promtext__family(&pg, "tgi_request_queue_duration");
	if (ASSERT_OK_PTR(f, "histogram"))
		ASSERT_EQ(f->type, PROM_HISTOGRAM, "histogram type");
	ASSERT_EQ(pg.samples[0].has_ts, false, "no timestamp");
	/* two histogram series in one family, split by a label */
	ASSERT_EQ(promtext__sum_where(&pg, "tgi_batch_inference_duration_bucket", "le", "+Inf", &v),
		  2, "two series");
out:
	promtext__free(&pg);
}

static void format_corners(void)
{
	const char *text = "  # a comment with \"quotes\" and \\ backslashes\n"
			   "#HELP not_help: no blank after the hash is still HELP\n"
			   "# HELPER is only a comment\n"
			   "# HELP\n"
			   "# HELP esc Line one\\nline two \\\\ end\n"
			   "# TYPE esc gauge\n"
			   "esc{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\",} 1\n"
			   "\n"
			   "\t\n"
			   "plain 2.5e3\n"
			   "neg -0.5 -1000\n"
			   "pinf{a=\"1\"} +Inf\n"
			   "ninf{a=\"1\"} -Inf\n"
			   "nan NaN\n"
			   "spaced { a = \"x\" , b=\"y\" }   7   \n"
			   "empty_labels{} 3\r\n"
			   "utf8{v=\"\xc3\xa9t\xc3\xa9 \xe2\x9c\x93\"} 4\n"
			   "colon:name:x 5";
	struct prom_page pg;
	const struct prom_sample *s;
	char err[256] = "";
	int ret;

	ret = promtext__parse(&pg, text, strlen(text), err, sizeof(err));
	if (!ASSERT_OK(ret, err))
		goto out;
	ASSERT_EQ(pg.nsamples, 10, "samples");
	ASSERT_STREQ(promtext__family(&pg, "esc")->help, "Line one\nline two \\ end",
		     "help escapes");
	ASSERT_OK_PTR(promtext__family(&pg, "not_help:"), "hash without blank");
	s = &pg.samples[0];
	ASSERT_STREQ(prom_sample__label(&pg, s, "path"), "C:\\dir", "backslash");
	ASSERT_STREQ(prom_sample__label(&pg, s, "quote"), "say \"hi\"", "quote");
	ASSERT_STREQ(prom_sample__label(&pg, s, "nl"), "a\nb", "newline");
	ASSERT_EQ(s->nlabels, 3, "trailing comma");
	ASSERT_TRUE(pg.samples[1].value == 2500, "exponent");
	ASSERT_TRUE(pg.samples[2].value == -0.5 && pg.samples[2].ts_ms == -1000, "negative ts");
	ASSERT_TRUE(isinf(pg.samples[3].value) && pg.samples[3].value > 0, "+Inf");
	ASSERT_TRUE(isinf(pg.samples[4].value) && pg.samples[4].value < 0, "-Inf");
	ASSERT_TRUE(isnan(pg.samples[5].value), "NaN");
	s = &pg.samples[6];
	ASSERT_STREQ(prom_sample__label(&pg, s, "a"), "x", "spaced a");
	ASSERT_STREQ(prom_sample__label(&pg, s, "b"), "y", "spaced b");
	ASSERT_TRUE(s->value == 7, "spaced value");
	ASSERT_TRUE(pg.samples[7].value == 3, "CRLF");
	ASSERT_STREQ(prom_sample__label(&pg, &pg.samples[8], "v"), "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93",
		     "utf8");
	ASSERT_STREQ(pg.samples[9].name, "colon:name:x", "no final newline");
out:
	promtext__free(&pg);
}

static const struct bad_page {
	const char *name;
	const char *text;
	int err;
	const char *msg;
} bad_pages[] = {
    {"garbage", "hello world\n", -EINVAL, "line 1: hello: invalid value \"world\""},
    {"html", "ok 1\n<html><body>502 Bad Gateway</body></html>\n", -EINVAL,
     "line 2: expected a metric"},
    {"json", "{\"error\":\"nope\"}", -EINVAL, "line 1: expected a metric"},
    {"no value", "a 1\nb\n", -EINVAL, "line 2: b: missing value"},
    {"no value after labels", "a{x=\"1\"}\n", -EINVAL, "line 1: a: missing value"},
    {"bad value", "a 1.2.3\n", -EINVAL, "invalid value \"1.2.3\""},
    {"hex value", "a 0x10\n", -EINVAL, "invalid value"},
    {"bad timestamp", "a 1 12x\n", -EINVAL, "invalid timestamp"},
    {"timestamp not a number", "a 1 nan\n", -EINVAL, "invalid timestamp"},
    {"trailing text", "a 1 100 extra\n", -EINVAL, "trailing text"},
    {"bad name char", "a-b 1\n", -EINVAL, "invalid character '-'"},
    {"digit start", "1abc 1\n", -EINVAL, "expected a metric name"},
    {"unterminated labels", "a{x=\"1\" 1\n", -EINVAL, "expected ',' or '}'"},
    {"unterminated value", "a{x=\"1} 1\n", -EINVAL, "unterminated value of label x"},
    {"unquoted value", "a{x=1} 1\n", -EINVAL, "expected '\"'"},
    {"bad escape", "a{x=\"\\t\"} 1\n", -EINVAL, "invalid escape \"\\t\""},
    {"label colon", "a{x:y=\"1\"} 1\n", -EINVAL, "expected '='"},
    {"double comma", "a{x=\"1\",,} 1\n", -EINVAL, "expected a label name"},
    {"duplicate label", "a{x=\"1\",x=\"2\"} 1\n", -EINVAL, "label x given twice"},
    {"duplicate series", "a{x=\"1\",y=\"2\"} 1\nb 2\na{y=\"2\",x=\"1\"} 3\n", -EINVAL,
     "line 3: duplicate series a (first on line 1)"},
    {"unknown type", "# TYPE a gaugeish\n", -EINVAL, "unknown metric type"},
    {"type twice", "# TYPE a gauge\n# TYPE a counter\n", -EINVAL, "line 2: second TYPE"},
    {"type after sample", "a 1\n# TYPE a gauge\n", -EINVAL, "after its samples"},
    {"help twice", "# HELP a x\n# HELP a y\n", -EINVAL, "second HELP"},
    {"type no type", "# TYPE a\n", -EINVAL, "without a type"},
    {"type trailing", "# TYPE a gauge extra\n", -EINVAL, "trailing text after TYPE"},
    {"histogram no le", "# TYPE h histogram\nh_bucket 1\n", -EINVAL, "without an le label"},
    {"histogram bad le", "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", -EINVAL, "not a number"},
    {"histogram le order",
     "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 1\n",
     -EINVAL, "line 3: histogram h_bucket: le=\"0.5\" not above"},
    {"histogram count drops", "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 4\n",
     -EINVAL, "below the previous"},
    {"histogram no +Inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_sum 3\nh_count 5\n", -EINVAL,
     "line 2: histogram h: series has no le=\"+Inf\""},
    {"histogram next series without +Inf",
     "# TYPE h histogram\nh_bucket{m=\"a\",le=\"1\"} 5\nh_bucket{m=\"b\",le=\"1\"} 5\n"
     "h_bucket{m=\"b\",le=\"+Inf\"} 5\n",
     -EINVAL, "line 3: histogram h_bucket: series on line 2 has no"},
    {"histogram bare sample", "# TYPE h histogram\nh 1\n", -EINVAL, "without _bucket"},
    {"summary no quantile", "# TYPE s summary\ns 1\n", -EINVAL, "without a quantile"},
    {"summary quantile 2", "# TYPE s summary\ns{quantile=\"2\"} 1\n", -EINVAL, "not in [0, 1]"},
    {"NUL byte", "a 1\nb\0 2\n", -EINVAL, "line 2: NUL byte"},
    {"lone CR", "a 1\rb 2\n", -EINVAL, "line 1:"},
};

static void malformed(void)
{
	for (size_t i = 0; i < sizeof(bad_pages) / sizeof(bad_pages[0]); i++) {
		const struct bad_page *b = &bad_pages[i];
		/* the NUL case needs its real length */
		size_t len = strcmp(b->name, "NUL byte") ? strlen(b->text) : 10;
		struct prom_page pg;
		char err[256] = "";

		ASSERT_EQ(promtext__parse(&pg, b->text, len, err, sizeof(err)), b->err, b->name);
		if (!ASSERT_TRUE(strstr(err, b->msg) != NULL, b->name))
			fprintf(stderr, "  %s: message was: %s\n", b->name, err);
		promtext__free(&pg);
	}
}

static void malformed_file(void)
{
	struct prom_page pg;
	char err[256] = "", *text;
	size_t len = 0;

	text = read_page("malformed-truncated.txt", &len);
	if (!ASSERT_OK_PTR(text, "read"))
		return;
	ASSERT_EQ(promtext__parse(&pg, text, len, err, sizeof(err)), -EINVAL, "truncated scrape");
	ASSERT_TRUE(strstr(err, "line 10:") != NULL, err);
	ASSERT_TRUE(strstr(err, "unterminated value of label model_name") != NULL, err);
	promtext__free(&pg);
	free(text);
}

static void limits(void)
{
	struct prom_page pg;
	char err[256], *text, *p;
	size_t n = PROM_MAX_SAMPLES + 1;

	/* one sample over the limit is refused, not truncated */
	text = malloc(n * 24 + 1);
	if (!ASSERT_OK_PTR(text, "alloc"))
		return;
	p = text;
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "m{i=\"%zu\"} 1\n", i);
	ASSERT_EQ(promtext__parse(&pg, text, p - text, err, sizeof(err)), -E2BIG, "samples");
	ASSERT_TRUE(strstr(err, "more than") != NULL, err);
	promtext__free(&pg);
	/* at the limit it parses */
	p = strstr(text, "m{i=\"200000\"}");
	if (ASSERT_OK_PTR(p, "find last")) {
		ASSERT_OK(promtext__parse(&pg, text, p - text, err, sizeof(err)), err);
		ASSERT_EQ(pg.nsamples, PROM_MAX_SAMPLES, "all kept");
		promtext__free(&pg);
	}
	free(text);

	ASSERT_EQ(promtext__parse(&pg, "", PROM_MAX_BYTES + 1, err, sizeof(err)), -E2BIG, "bytes");
	promtext__free(&pg);
}

/* issue #17 point 9: OpenMetrics features a page may carry are read past,
 * not a reason to refuse the page (and mark the server down) */
static void openmetrics_tolerated(void)
{
	const char *text = "# HELP build_info Build, with a regex \\d+ and C:\\x in its help\n"
			   "# TYPE build_info info\n"
			   "build_info{version=\"0.9.1\"} 1\n"
			   "# TYPE state stateset\n"
			   "state{state=\"ready\"} 1\n"
			   "# TYPE lat histogram\n"
			   "lat_bucket{le=\"1\"} 3 # {trace_id=\"abc\"} 0.67 1520879607\n"
			   "lat_bucket{le=\"+Inf\"} 4 100 # {trace_id=\"def\"} 2.5\n"
			   "lat_sum 4.2\nlat_count 4\n"
			   "q{engine=\"0\"} 2\nq{engine=\"1\"} +Inf\nq{engine=\"2\"} -Inf\n"
			   "# EOF\n";
	struct prom_page pg;
	char err[256] = "";
	double v;

	if (!ASSERT_OK(promtext__parse(&pg, text, strlen(text), err, sizeof(err)), err))
		goto out;
	ASSERT_STREQ(promtext__family(&pg, "build_info")->help,
		     "Build, with a regex \\d+ and C:\\x in its help", "backslash kept");
	ASSERT_EQ(promtext__family(&pg, "build_info")->type, PROM_UNTYPED, "info read as untyped");
	ASSERT_EQ(promtext__sum(&pg, "lat_bucket", &v), 2, "exemplars ignored");
	ASSERT_TRUE(v == 7, "bucket values");
	ASSERT_TRUE(pg.samples[3].has_ts && pg.samples[3].ts_ms == 100,
		    "timestamp before exemplar");
	/* one +-Inf sample must not make a sum infinite */
	ASSERT_EQ(promtext__sum(&pg, "q", &v), 1, "Inf skipped");
	ASSERT_TRUE(v == 2, "finite sum");
out:
	promtext__free(&pg);
}

static const struct test_case cases[] = {
    {"openmetrics_tolerated", openmetrics_tolerated},
    {"page_vllm", page_vllm},
    {"page_others", page_others},
    {"triton_timestamps_and_summary", triton_timestamps_and_summary},
    {"format_corners", format_corners},
    {"malformed", malformed},
    {"malformed_file", malformed_file},
    {"limits", limits},
};

TEST_MAIN("promtext", cases)
