// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aiblctl's human formatting and address parsing at their boundaries: the
 * integration test sees them only at the fixture's values.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include "../../user/aiblctl/ctl.h"
#include "test.h"

static void test_numbers(void)
{
	char b[32];

	ASSERT_STREQ(ctl_fmt_count(b, sizeof(b), 0), "0", "zero");
	ASSERT_STREQ(ctl_fmt_count(b, sizeof(b), 9999), "9999", "exact below 10k");
	ASSERT_STREQ(ctl_fmt_count(b, sizeof(b), 10000), "10.0k", "10k");
	ASSERT_STREQ(ctl_fmt_count(b, sizeof(b), 123456), "123k", "three digits");
	ASSERT_STREQ(ctl_fmt_count(b, sizeof(b), 1234567), "1.2M", "1.2M");
	ASSERT_STREQ(ctl_fmt_count(b, sizeof(b), 18446744073709551615ULL), "18447P",
		     "u64 max stays in the largest unit");
	ASSERT_STREQ(ctl_fmt_bytes(b, sizeof(b), 1023), "1023 B", "bytes");
	ASSERT_STREQ(ctl_fmt_bytes(b, sizeof(b), 1024), "1.0 KiB", "KiB");
	ASSERT_STREQ(ctl_fmt_bytes(b, sizeof(b), 3650722202ULL), "3.4 GiB", "GiB");
	ASSERT_STREQ(ctl_fmt_bytes(b, sizeof(b), 150ULL << 20), "150 MiB", "no decimal >= 100");
	/* just below a unit, printed whole: the next unit's 1.0 */
	ASSERT_STREQ(ctl_fmt_count(b, sizeof(b), 999950), "1.0M", "999.95k reads 1.0M");
	ASSERT_STREQ(ctl_fmt_bytes(b, sizeof(b), 1048575), "1.0 MiB", "1048575 B reads 1.0 MiB");
	ASSERT_STREQ(ctl_fmt_rate(b, sizeof(b), 999.7), "1.0k/s", "999.7/s reads 1.0k/s");
	ASSERT_STREQ(ctl_fmt_pct(b, sizeof(b), 0.125), "12.5%", "percent");
	ASSERT_STREQ(ctl_fmt_rate(b, sizeof(b), 0.5), "0.5/s", "slow rate");
	ASSERT_STREQ(ctl_fmt_rate(b, sizeof(b), 35100), "35.1k/s", "fast rate");
	ASSERT_STREQ(ctl_fmt_rate(b, sizeof(b), -3), "0/s", "counter reset: no negative rate");
	ASSERT_STREQ(ctl_fmt_byte_rate(b, sizeof(b), 2048), "2.0 KiB/s", "byte rate");
	ASSERT_STREQ(ctl_fmt_dur_ns(b, sizeof(b), 420000000ULL), "420ms", "ms");
	ASSERT_STREQ(ctl_fmt_dur_ns(b, sizeof(b), 5600000000ULL), "5.6s", "s");
	ASSERT_STREQ(ctl_fmt_dur_ns(b, sizeof(b), 183ULL * 1000000000ULL), "3m03s", "m");
	ASSERT_STREQ(ctl_fmt_dur_ns(b, sizeof(b), 3725ULL * 1000000000ULL), "1h02m", "h");
	ASSERT_STREQ(ctl_fmt_dur_ns(b, sizeof(b), 100000ULL * 1000000000ULL), "1d03h", "d");
}

static void test_states(void)
{
	ASSERT_STREQ(ctl_be_state(0), "unused", "not valid");
	ASSERT_STREQ(ctl_be_state(AIBL_BE_F_VALID), "up", "up");
	ASSERT_STREQ(ctl_be_state(AIBL_BE_F_VALID | AIBL_BE_F_DRAINING | AIBL_BE_F_UNHEALTHY),
		     "unhealthy", "agent not trusted");
	ASSERT_STREQ(ctl_be_state(AIBL_BE_F_VALID | AIBL_BE_F_DOWN | AIBL_BE_F_DRAINING |
				  AIBL_BE_F_UNHEALTHY),
		     "down", "down beats unhealthy");
	ASSERT_STREQ(ctl_be_state(AIBL_BE_F_VALID | AIBL_BE_F_OVERLOADED), "overloaded", "ovl");
	ASSERT_STREQ(ctl_be_state(AIBL_BE_F_VALID | AIBL_BE_F_OVERLOADED | AIBL_BE_F_DRAINING),
		     "draining", "draining beats overloaded");
	ASSERT_STREQ(ctl_be_state(AIBL_BE_F_VALID | AIBL_BE_F_DOWN | AIBL_BE_F_DRAINING), "down",
		     "down beats draining");
}

static void test_endpoints(void)
{
	union aibl_addr a;
	__u8 fam;
	__u16 port;
	char b[80];

	ASSERT_OK(ctl_parse_endpoint("10.0.0.1:80", true, &fam, &a, &port), "v4");
	ASSERT_EQ(fam, AIBL_AF_INET, "v4 family");
	ASSERT_EQ(port, 80, "v4 port");
	ASSERT_STREQ(ctl_fmt_endpoint(b, sizeof(b), fam, &a, htons(port)), "10.0.0.1:80",
		     "v4 back");
	ASSERT_OK(ctl_parse_endpoint("[fd00::1]:443", true, &fam, &a, &port), "v6");
	ASSERT_EQ(fam, AIBL_AF_INET6, "v6 family");
	ASSERT_STREQ(ctl_fmt_endpoint(b, sizeof(b), fam, &a, htons(port)), "[fd00::1]:443",
		     "v6 back");
	ASSERT_STREQ(ctl_fmt_endpoint(b, sizeof(b), fam, &a, 0), "[fd00::1]:*", "wildcard port");
	ASSERT_OK(ctl_parse_endpoint("fd00::1", false, &fam, &a, &port), "bare v6, no port");
	ASSERT_OK(ctl_parse_endpoint("[fd00::1]", false, &fam, &a, &port), "bracketed, no port");
	ASSERT_ERR(ctl_parse_endpoint("fd00::1", true, &fam, &a, &port), "port required");
	ASSERT_ERR(ctl_parse_endpoint("10.0.0.1:65536", true, &fam, &a, &port), "port range");
	ASSERT_ERR(ctl_parse_endpoint("10.0.0.1:8x", true, &fam, &a, &port), "port digits");
	ASSERT_ERR(ctl_parse_endpoint("10.0.0.256:80", true, &fam, &a, &port), "bad v4");
	ASSERT_ERR(ctl_parse_endpoint("[fd00::1:80", true, &fam, &a, &port), "no bracket");
	ASSERT_ERR(ctl_parse_endpoint("[fd00::1]x80", true, &fam, &a, &port), "junk after ]");
	ASSERT_ERR(ctl_parse_endpoint(":80", true, &fam, &a, &port), "no host");
	ASSERT_ERR(ctl_parse_endpoint("chat", false, &fam, &a, &port), "a name");
}

static const struct test_case cases[] = {
    {"numbers", test_numbers},
    {"states", test_states},
    {"endpoints", test_endpoints},
};

TEST_MAIN("aiblctl_fmt", cases)
