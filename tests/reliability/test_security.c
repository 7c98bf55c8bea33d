// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Security properties that are not one component's feature: what the data
 * plane leaves in bpffs and where it refuses to pin.
 *
 * /sys/fs/bpf is often mode 1777. Pins are reused by the next load, so a
 * pin directory another user owns or may write to would let them remove
 * the pins (and the connection table with them) or plant their own.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include "test.h"
#include "dataplane.h"
#include "log.h"

static char dir[64];

static void rm_dir(void)
{
	dp__teardown(dir);
	rmdir(dir);
}

/* every pin and the directory: owned by us, not writable by group/others */
static void bpffs_modes(void)
{
	struct dp_opts o = {.pin_dir = dir};
	struct dp *dp = NULL;
	struct dirent *e;
	struct stat sb;
	int entries = 0;
	DIR *d;

	if (!test__can_bpf())
		return SKIP("needs root");
	rm_dir();
	if (!ASSERT_OK(dp__open_load(&o, &dp), "load"))
		goto out;
	if (!ASSERT_OK(stat(dir, &sb), "stat dir"))
		goto out;
	ASSERT_EQ(sb.st_mode & 0077, 0, "pin directory private (0700)");
	ASSERT_EQ(sb.st_uid, geteuid(), "pin directory ours");
	d = opendir(dir);
	if (!ASSERT_OK_PTR(d, "opendir"))
		goto out;
	while ((e = readdir(d))) {
		char p[512];

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (!ASSERT_OK(stat(p, &sb), p))
			continue;
		entries++;
		if (sb.st_mode & 0022)
			printf("  %s: mode %03o\n", e->d_name, sb.st_mode & 0777);
		ASSERT_EQ(sb.st_mode & 0022, 0, "pin not writable by group/others");
	}
	closedir(d);
	ASSERT_GE(entries, 16, "maps and program pinned");
out:
	dp__close(dp);
	rm_dir();
}

/* a pin directory prepared by someone else is refused, nothing pinned in it */
static void bpffs_foreign_dir(void)
{
	struct dp_opts o = {.pin_dir = dir};
	struct dp *dp = NULL;
	char prog[256];

	if (!test__can_bpf())
		return SKIP("needs root");
	rm_dir();
	snprintf(prog, sizeof(prog), "%s/%s", dir, AIBL_PIN_PROG);
	if (!ASSERT_OK(mkdir(dir, 0700), "mkdir") || !ASSERT_OK(chmod(dir, 0777), "chmod 777"))
		goto out;
	ASSERT_EQ(dp__open_load(&o, &dp), -EPERM, "world-writable directory refused");
	ASSERT_NEQ(access(prog, F_OK), 0, "nothing pinned there");
	dp__close(dp);
	dp = NULL;
	/* private mode, but another user's */
	if (!ASSERT_OK(chmod(dir, 0700), "chmod 700") ||
	    !ASSERT_OK(chown(dir, 65534, 65534), "chown"))
		goto out;
	ASSERT_EQ(dp__open_load(&o, &dp), -EPERM, "another user's directory refused");
	ASSERT_NEQ(access(prog, F_OK), 0, "nothing pinned there");
	dp__close(dp);
	dp = NULL;
	/* ours again: fine */
	if (!ASSERT_OK(chown(dir, geteuid(), getegid()), "chown back"))
		goto out;
	ASSERT_OK(dp__open_load(&o, &dp), "own private directory accepted");
out:
	dp__close(dp);
	rm_dir();
}

static const struct test_case cases[] = {
    {"bpffs_modes", bpffs_modes},
    {"bpffs_foreign_dir", bpffs_foreign_dir},
};

int main(int argc, char **argv)
{
	log_setup_libbpf(getenv("AIBL_TEST_VERBOSE") != NULL);
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/aibl-t-rs-%d", getpid());
	return test__main(argc, argv, "security", cases, sizeof(cases) / sizeof(cases[0]));
}
