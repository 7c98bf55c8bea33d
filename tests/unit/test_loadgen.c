// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-loadgen building blocks: address ranges, seeded randomness, SSE
 * framing across arbitrary chunk boundaries, percentiles. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "test.h"
#include "../../lab/aibl-loadgen/loadgen.h"

static void test_addr_ranges(void)
{
	struct lg_addrs l = {0};
	char err[128], buf[64];

	if (!ASSERT_OK(lg_addrs__parse(&l, "10.0.0.254-10.0.1.2,fd00::fffe-fd00::1:1, 192.0.2.7",
				       err, sizeof(err)),
		       "parse"))
		goto out;
	/* .254 .255 1.0 1.1 1.2 | fffe ffff 1:0 1:1 | 192.0.2.7 */
	ASSERT_EQ(l.n, 10, "count");
	ASSERT_EQ(lg_addrs__count(&l, AF_INET), 6, "v4");
	ASSERT_EQ(lg_addrs__count(&l, AF_INET6), 4, "v6");
	lg_addrs__interface(&l, AF_INET, 2, buf, sizeof(buf));
	ASSERT_STREQ(buf, "host!10.0.1.0", "carry into the next octet");
	lg_addrs__interface(&l, AF_INET, 5, buf, sizeof(buf));
	ASSERT_STREQ(buf, "host!192.0.2.7", "single address");
	lg_addrs__interface(&l, AF_INET, 6, buf, sizeof(buf));
	ASSERT_STREQ(buf, "host!10.0.0.254", "wraps around");
	lg_addrs__interface(&l, AF_INET6, 2, buf, sizeof(buf));
	ASSERT_STREQ(buf, "host!fd00::1:0", "v6 carry");
	lg_addrs__free(&l);

	ASSERT_ERR(lg_addrs__parse(&l, "10.0.0.5-10.0.0.1", err, sizeof(err)), "reversed range");
	lg_addrs__free(&l);
	ASSERT_ERR(lg_addrs__parse(&l, "10.0.0.1-fd00::1", err, sizeof(err)), "mixed families");
	lg_addrs__free(&l);
	ASSERT_ERR(lg_addrs__parse(&l, "10.0.0.300", err, sizeof(err)), "bad address");
	ASSERT_TRUE(strstr(err, "10.0.0.300") != NULL, "message names the address");
	lg_addrs__free(&l);
	ASSERT_ERR(lg_addrs__parse(&l, "0.0.0.0-255.255.255.255", err, sizeof(err)), "too many");
out:
	lg_addrs__free(&l);
}

static void test_rng_deterministic(void)
{
	struct lg_rng a, b, c;
	double sum = 0;
	int i, same = 1;

	lg_rng__seed(&a, 42, 7);
	lg_rng__seed(&b, 42, 7);
	lg_rng__seed(&c, 42, 8);
	for (i = 0; i < 1000; i++) {
		uint64_t x = lg_rng__next(&a);

		if (x != lg_rng__next(&b))
			same = 0;
		if (x == lg_rng__next(&c))
			same = 2;
	}
	ASSERT_EQ(same, 1, "same seed and stream: same sequence; other stream differs");
	for (i = 0; i < 20000; i++)
		sum += lg_rng__exp(&a, 100);
	/* mean of 20000 exponential draws: within 5% of 100 (sd of mean 0.7%) */
	ASSERT_TRUE(fabs(sum / 20000 - 100) < 5, "exponential mean");
}

struct sse_seen {
	char ev[8][64];
	int n;
};

static int sse_cb(const char *payload, void *ctx)
{
	struct sse_seen *s = ctx;

	if (s->n < 8)
		snprintf(s->ev[s->n], sizeof(s->ev[0]), "%s", payload);
	s->n++;
	return 0;
}

static void test_sse_framing(void)
{
	const char *stream = "data: {\"a\":1}\n\n: comment\n\ndata: x\ndata: y\n\n"
			     "data:{\"b\":2}\r\n\r\nevent: e\ndata: [DONE]\n\ndata: partial";
	size_t len = strlen(stream), cut;

	/* every split point of the stream gives the same events */
	for (cut = 0; cut <= len; cut++) {
		struct lg_sse sse = {0};
		struct sse_seen seen = {0};

		if (!ASSERT_OK(lg_sse__feed(&sse, stream, cut, sse_cb, &seen), "feed 1") ||
		    !ASSERT_OK(lg_sse__feed(&sse, stream + cut, len - cut, sse_cb, &seen),
			       "feed 2")) {
			lg_sse__free(&sse);
			return;
		}
		lg_sse__free(&sse);
		if (!ASSERT_EQ(seen.n, 4, "events (the unterminated one is held back)"))
			return;
		if (!ASSERT_STREQ(seen.ev[0], "{\"a\":1}", "first") ||
		    !ASSERT_STREQ(seen.ev[1], "x\ny", "multi-line data joined") ||
		    !ASSERT_STREQ(seen.ev[2], "{\"b\":2}", "CRLF, no space after colon") ||
		    !ASSERT_STREQ(seen.ev[3], "[DONE]", "done"))
			return;
	}
}

static void test_percentile(void)
{
	double v[100];
	int i;

	for (i = 0; i < 100; i++)
		v[i] = 100 - i; /* 100..1, unsorted */
	ASSERT_EQ((int)lg_percentile(v, 100, 50), 50, "p50 nearest rank");
	ASSERT_EQ((int)lg_percentile(v, 100, 99), 99, "p99");
	ASSERT_EQ((int)lg_percentile(v, 100, 100), 100, "max");
	ASSERT_EQ((int)lg_percentile(v, 1, 99), 1, "single value");
	ASSERT_TRUE(isnan(lg_percentile(v, 0, 50)), "empty: NAN");
}

static void test_names(void)
{
	struct lg_names t = {0};

	ASSERT_EQ(lg_names__intern(&t, "n1"), 0, "first");
	ASSERT_EQ(lg_names__intern(&t, "n2"), 1, "second");
	ASSERT_EQ(lg_names__intern(&t, "n1"), 0, "again");
	ASSERT_EQ(lg_url_family("http://[fd00:200::1]:8000"), AF_INET6, "v6 url");
	ASSERT_EQ(lg_url_family("http://10.200.0.1:8000"), AF_INET, "v4 url");
	lg_names__free(&t);
}

/* a request that waited for a model load and then failed counts as a cold
 * start: a policy's failures must not hide its cold starts */
static void test_cold_counts_failed(void)
{
	struct lg_run run = {.mode = "chat"};
	struct lg_sample ok = {.ok = true, .cold = true, .status = 200, .out_tokens = 1},
			 failed = {.ok = false, .cold = true, .status = 0};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!ASSERT_TRUE(f != NULL, "memstream"))
		return;
	ASSERT_OK(lg_samples__add(&run.samples, &ok), "add");
	ASSERT_OK(lg_samples__add(&run.samples, &failed), "add");
	run.wall_s = 1;
	ASSERT_OK(lg_report__json(f, &run, NULL), "json");
	fclose(f);
	ASSERT_TRUE(buf && strstr(buf, "\"cold_starts\": 2"), "both cold starts counted");
	ASSERT_TRUE(buf && strstr(buf, "\"failed\": 1"), "one failed");
	free(buf);
	lg_run__free(&run);
}

static const struct test_case cases[] = {
    {"cold_counts_failed", test_cold_counts_failed},
    {"addr_ranges", test_addr_ranges},
    {"rng_deterministic", test_rng_deterministic},
    {"sse_framing", test_sse_framing},
    {"percentile", test_percentile},
    {"names", test_names},
};

TEST_MAIN("loadgen", cases)
