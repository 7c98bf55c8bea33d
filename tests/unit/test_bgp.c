// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * VIP announcement through BIRD (user/aibld/bgp.c): the include file is
 * written whole and `birdc -s SOCKET configure` is run after it; a birdc
 * that fails is an error, and one that never answers (a wedged control
 * socket) is killed after its bound rather than stalling the controller
 * loop. The birdc here is a shell script standing in for BIRD's client
 * (the e2e tests run the real one: test_ecmp.sh).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "test.h"
#include "../../user/aibld/bgp.h"

static char dir[64];

/* a birdc that runs body (sh) with its arguments as "$@" */
static void fake_birdc(struct cfg_bgp *c, const char *body)
{
	FILE *f;

	snprintf(c->birdc, sizeof(c->birdc), "%s/birdc", dir);
	f = fopen(c->birdc, "w");
	if (!f)
		return;
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(c->birdc, 0755);
}

static char *slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return buf;
}

static void apply(void)
{
	static const char *const vips[] = {"10.100.0.1", "2001:db8::1"};
	struct cfg_bgp c = {};
	char args[128], *text, *got;

	snprintf(dir, sizeof(dir), "/tmp/aibl-bgp-XXXXXX");
	if (!ASSERT_OK_PTR(mkdtemp(dir), "tmp dir"))
		return;
	snprintf(c.include, sizeof(c.include), "%s/aibl.conf", dir);
	snprintf(c.bird_socket, sizeof(c.bird_socket), "%s/bird.ctl", dir);
	snprintf(args, sizeof(args), "%s/args", dir);
	text = bgp__render(vips, 2);
	if (!ASSERT_OK_PTR(text, "render"))
		goto out;
	ASSERT_TRUE(strstr(text, "10.100.0.1/32") && strstr(text, "2001:db8::1/128"),
		    "both families' routes");

	/* written, then birdc told: its arguments as BIRD's client takes them */
	fake_birdc(&c, "echo \"$@\" > \"$(dirname \"$0\")/args\"");
	ASSERT_OK(bgp__apply(&c, text), "apply");
	got = slurp(c.include);
	ASSERT_STREQ(got ? got : "", text, "the include as rendered");
	got = slurp(args);
	if (ASSERT_OK_PTR(got, "birdc ran")) {
		char want[sizeof(c.bird_socket) + 16];

		snprintf(want, sizeof(want), "-s %s configure\n", c.bird_socket);
		ASSERT_STREQ(got, want, "birdc -s SOCKET configure");
	}

	/* BIRD refuses the configuration: an error, the file written all the same */
	fake_birdc(&c, "exit 1");
	ASSERT_EQ(bgp__apply(&c, text), -EIO, "a failing birdc");

	/* a birdc that never answers is killed after its bound */
	fake_birdc(&c, "exec sleep 600");
	ASSERT_EQ(bgp__apply(&c, text), -ETIMEDOUT, "a hung birdc: killed");
out:
	free(text);
	unlink(c.include);
	unlink(c.birdc);
	unlink(args);
	rmdir(dir);
}

static const struct test_case cases[] = {
    {"apply", apply},
};

TEST_MAIN("bgp", cases)
