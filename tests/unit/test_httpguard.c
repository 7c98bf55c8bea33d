// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * httpguard's accept policy without a server: a connection counts from
 * its accept, before MHD starts it, so two listener threads cannot both
 * admit a source's last allowed connection; one MHD never starts stops
 * counting after a while.
 */
#include <unistd.h>
#include <arpa/inet.h>
#include "test.h"
#include "clock.h"
#include "httpguard.h"

static struct sockaddr_in addr4(const char *a)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(40000)};

	inet_pton(AF_INET, a, &s.sin_addr);
	return s;
}

static enum MHD_Result accept_from(struct http_guard *g, const char *a)
{
	struct sockaddr_in s = addr4(a);

	return http_guard__accept(g, (const struct sockaddr *)&s, sizeof(s));
}

static void limits_count_at_accept(void)
{
	struct http_guard_cfg cfg = {
	    .what = "test",
	    .max_conns = 4,
	    .max_per_src = 2,
	    .reserve = 1,
	    .request_ms = 60000,
	};
	struct http_guard_stats st;
	struct http_guard *g;
	uint64_t until;

	if (!ASSERT_OK(http_guard__add_prio(&cfg, "10.0.0.9"), "priority address") ||
	    !ASSERT_OK(http_guard__new(&cfg, &g), "new guard"))
		return;
	/* accepted, none of them started by MHD yet */
	ASSERT_EQ(accept_from(g, "10.0.0.1"), MHD_YES, "first from .1");
	ASSERT_EQ(accept_from(g, "10.0.0.1"), MHD_YES, "second from .1");
	ASSERT_EQ(accept_from(g, "10.0.0.1"), MHD_NO, "third from .1: per-source limit");
	ASSERT_EQ(accept_from(g, "10.0.0.2"), MHD_YES, "first from .2");
	ASSERT_EQ(accept_from(g, "10.0.0.3"), MHD_YES, "first from .3");
	ASSERT_EQ(accept_from(g, "10.0.0.4"), MHD_NO, "fifth: connection limit");
	ASSERT_EQ(accept_from(g, "10.0.0.9"), MHD_YES, "the priority source: the reserve");
	ASSERT_EQ(accept_from(g, "10.0.0.9"), MHD_NO, "reserve full");
	http_guard__stats(g, &st);
	ASSERT_EQ(st.open, 4, "ordinary connections counted");
	ASSERT_EQ(st.open_prio, 1, "priority connection counted");
	ASSERT_EQ(st.refused_per_src, 1, "one refused per source");
	ASSERT_EQ(st.refused_total, 3, "three refused");
	/* MHD started none of them: they stop counting (after 1 s, the
	 * reaper's tick later) and the sources are admitted again */
	until = clock_mono_ms() + 5000;
	do {
		usleep(50 * 1000);
		http_guard__stats(g, &st);
	} while ((st.open || st.open_prio) && clock_mono_ms() < until);
	ASSERT_EQ(st.open + st.open_prio, 0, "accepted and never started: dropped");
	ASSERT_EQ(accept_from(g, "10.0.0.1"), MHD_YES, ".1 admitted again");
	http_guard__free(g);
}

/* the agent takes background loads from its --controller addresses */
static void is_prio(void)
{
	struct http_guard_cfg cfg = {.what = "test"};
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};

	if (!ASSERT_OK(http_guard__add_prio(&cfg, "10.0.0.9"), "IPv4 address") ||
	    !ASSERT_OK(http_guard__add_prio(&cfg, "fd00::9"), "IPv6 address"))
		return;
	inet_pton(AF_INET, "10.0.0.9", &v4.sin_addr);
	ASSERT_TRUE(http_guard__is_prio(&cfg, (struct sockaddr *)&v4), "10.0.0.9");
	inet_pton(AF_INET6, "::ffff:10.0.0.9", &v6.sin6_addr);
	ASSERT_TRUE(http_guard__is_prio(&cfg, (struct sockaddr *)&v6), "10.0.0.9 as v4-mapped");
	inet_pton(AF_INET6, "fd00::9", &v6.sin6_addr);
	ASSERT_TRUE(http_guard__is_prio(&cfg, (struct sockaddr *)&v6), "fd00::9");
	inet_pton(AF_INET, "10.0.0.8", &v4.sin_addr);
	ASSERT_FALSE(http_guard__is_prio(&cfg, (struct sockaddr *)&v4), "10.0.0.8");
	inet_pton(AF_INET6, "::a00:9", &v6.sin6_addr);
	ASSERT_FALSE(http_guard__is_prio(&cfg, (struct sockaddr *)&v6), "v4-compatible is not v4");
	ASSERT_FALSE(http_guard__is_prio(&cfg, NULL), "no address");
}

static const struct test_case cases[] = {
    {"limits_count_at_accept", limits_count_at_accept},
    {"is_prio", is_prio},
};

TEST_MAIN("httpguard", cases)
