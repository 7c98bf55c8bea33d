// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cliopt: one table row per option makes the getopt entry, the parse and the usage */
#include <stdlib.h>
#include <arpa/inet.h>
#include "test.h"
#include "cliopt.h"

struct t_opts {
	unsigned int interval_ms;
	int hints;
	uint32_t sessions;
	uint64_t seed;
	double ratio;
	const char *name, *file;
	bool verbose;
	int progress;
	int mode;
	const char *urls[3];
	int nurls;
	struct listen_addr listen;
	struct cliopt_ipaddr vip;
	uint8_t mac[6];
	int sum;
	const char *path;
};

static char t_global[16];

static int t_add(const char *arg, void *dst, char *msg, size_t msglen)
{
	int *sum = dst;

	if (strcmp(arg, "1") && strcmp(arg, "2")) {
		snprintf(msg, msglen, "only 1 or 2");
		return -EINVAL;
	}
	*sum += atoi(arg);
	return 0;
}

static int t_copy(const char *arg, void *dst, char *msg, size_t msglen)
{
	snprintf(dst, sizeof(t_global), "%s", arg);
	return 0;
}

static const char *const t_modes[] = {"fast", "slow", "off", NULL};

static const struct cliopt t_rows[] = {
    CLIOPT("interval-ms", UINT, struct t_opts, interval_ms, .min = 10, .max = 60000, .def = "1000",
	   .metavar = "MS", .help = "collection period"),
    CLIOPT("hints", INT, struct t_opts, hints, .min = 1, .max = 4096, .def = "1024",
	   .help = "hints held"),
    CLIOPT("sessions", UNUM, struct t_opts, sessions, .min = 1, .max = 1e7, .def = "64",
	   .help = "sessions", .group = 1),
    CLIOPT("seed", UNUM, struct t_opts, seed, .min = 0, .max = 9007199254740992.0, .def = "1",
	   .help = "seed"),
    CLIOPT("ratio", DOUBLE, struct t_opts, ratio, .min = 0, .max = 0.99, .def = "0.7",
	   .help = "a ratio\nover two lines"),
    CLIOPT("name", STR, struct t_opts, name, .short_name = 'n', .required = true,
	   .help = "node name"),
    CLIOPT("file", PATH, struct t_opts, file, .help = "a file", .def_help = "none"),
    CLIOPT("verbose", FLAG, struct t_opts, verbose, .short_name = 'v', .help = "more"),
    CLIOPT("no-progress", FLAG, struct t_opts, progress, .neg = true, .help = "quiet"),
    CLIOPT("mode", ENUM, struct t_opts, mode, .names = t_modes, .def = "slow", .help = "how"),
    CLIOPT("url", STRV, struct t_opts, urls, .count_off = CLIOPT_COUNT(struct t_opts, nurls),
	   .help = "a URL"),
    CLIOPT("listen", LISTEN, struct t_opts, listen, .def = "127.0.0.1:8000", .help = "where"),
    CLIOPT("vip", IPADDR, struct t_opts, vip, .help = "an address"),
    CLIOPT("mac", MACADDR, struct t_opts, mac, .help = "a MAC"),
    CLIOPT("add", FUNC, struct t_opts, sum, .fn = t_add, .help = "adds", .group = 1),
    CLIOPT("path", STR, struct t_opts, path, .help = "a path", .group = 2),
    CLIOPT_VAR("global", FUNC, t_global, .fn = t_copy, .def = "dflt", .help = "global"),
};

static const struct cliopt_group t_groups[] = {
    {},
    {"a chat", "chat options:"},
    {"an http", "http options:"},
};

struct t_run {
	int ret;
	char *err, *out;
	char *args; /* the values point into it */
	struct t_opts o;
};

/* parses "ARGS..." (split at spaces) with the rows above in group 1 */
static struct t_run t_parse(const char *args)
{
	struct cliopt_prog p = {.name = "t",
				.synopsis = "Usage: t [OPTIONS]",
				.opts = t_rows,
				.nopts = CLIOPT_NOPTS(t_rows),
				.groups = t_groups,
				.ngroups = 2,
				.group = 1};
	struct t_run r = {.o = {.progress = 1}, .args = strdup(args)};
	char *argv[64] = {"t"}, *save = NULL;
	size_t errlen, outlen;
	int argc = 1;

	for (char *t = strtok_r(r.args, " ", &save); t && argc < 63; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	p.err = open_memstream(&r.err, &errlen);
	p.out = open_memstream(&r.out, &outlen);
	r.ret = cliopt__parse(&p, argc, argv, &r.o);
	fclose(p.err);
	fclose(p.out);
	return r;
}

static void t_free(struct t_run *r)
{
	free(r->err);
	free(r->out);
	free(r->args);
}

static void defaults_and_values(void)
{
	struct t_run r = t_parse("--name n1 --interval-ms 250 --hints=7 --sessions 1e3 "
				 "--seed 42 --ratio 0.5 --file /x -v --no-progress --mode off "
				 "--url a --url b --listen [::1]:81 --vip 10.0.0.1 "
				 "--mac 02:00:00:00:00:0a --add 1 --add 2 --global g");

	if (!ASSERT_EQ(r.ret, 0, r.err))
		goto out;
	ASSERT_STREQ(r.o.name, "n1", "name");
	ASSERT_EQ(r.o.interval_ms, 250, "uint");
	ASSERT_EQ(r.o.hints, 7, "int, --x=v");
	ASSERT_EQ(r.o.sessions, 1000, "unum takes 1e3");
	ASSERT_EQ(r.o.seed, 42, "unum 64 bits");
	ASSERT_TRUE(r.o.ratio == 0.5, "double");
	ASSERT_STREQ(r.o.file, "/x", "path");
	ASSERT_TRUE(r.o.verbose, "flag sets");
	ASSERT_EQ(r.o.progress, 0, "neg flag clears an int");
	ASSERT_EQ(r.o.mode, 2, "enum index");
	ASSERT_EQ(r.o.nurls, 2, "repeatable count");
	ASSERT_STREQ(r.o.urls[1], "b", "repeatable order");
	ASSERT_EQ(r.o.listen.ss.ss_family, AF_INET6, "listen");
	ASSERT_STREQ(r.o.listen.spec, "[::1]:81", "listen text");
	ASSERT_EQ(r.o.vip.family, AF_INET, "ip");
	ASSERT_EQ(ntohl(r.o.vip.v4.s_addr), 0x0a000001, "ip value");
	ASSERT_EQ(r.o.mac[5], 0x0a, "mac");
	ASSERT_EQ(r.o.sum, 3, "func, repeated");
	ASSERT_STREQ(t_global, "g", "a variable, not a member");
	t_free(&r);

	r = t_parse("-n n2");
	if (!ASSERT_EQ(r.ret, 0, r.err))
		goto out;
	ASSERT_EQ(r.o.interval_ms, 1000, "default uint");
	ASSERT_EQ(r.o.hints, 1024, "default int");
	ASSERT_EQ(r.o.sessions, 64, "default unum");
	ASSERT_TRUE(r.o.ratio == 0.7, "default double");
	ASSERT_EQ(r.o.mode, 1, "default enum");
	ASSERT_EQ(r.o.progress, 1, "flag not given");
	ASSERT_FALSE(r.o.verbose, "flag not given");
	ASSERT_EQ(r.o.nurls, 0, "no repeats");
	ASSERT_STREQ(r.o.listen.spec, "127.0.0.1:8000", "default listen");
	ASSERT_EQ(r.o.listen.ss.ss_family, AF_INET, "default listen parsed");
	ASSERT_STREQ(t_global, "dflt", "default of a func");
	ASSERT_TRUE(r.o.file == NULL, "def_help only shows");
out:
	t_free(&r);
}

/* each bad command line and the message it must give */
static const struct {
	const char *args, *msg;
} t_errors[] = {
    {"-n a --interval-ms 0", "t: --interval-ms 0: must be a whole number 10..60000\n"},
    {"-n a --interval-ms 60001", "t: --interval-ms 60001: must be a whole number 10..60000"},
    {"-n a --interval-ms -5", "t: --interval-ms -5: must be a whole number"},
    {"-n a --interval-ms 10.5", "t: --interval-ms 10.5: must be a whole number"},
    {"-n a --interval-ms x", "must be a whole number"},
    {"-n a --hints 0", "t: --hints 0: must be a whole number 1..4096"},
    {"-n a --ratio 1", "t: --ratio 1: must be a number 0..0.99"},
    {"-n a --ratio nan", "must be a number 0..0.99"},
    {"-n a --sessions 0.5", "t: --sessions 0.5: must be a number 1..10000000"},
    {"-n a --bogus", "t: unknown option --bogus\nTry 't --help'.\n"},
    {"-n a -x", "t: unknown option -x"},
    {"-n a --verbose=1", "t: --verbose takes no value"},
    {"-n a --interval-ms", "t: --interval-ms needs a value"},
    {"-n", "t: --name needs a value"},
    {"-n a extra", "t: unexpected argument \"extra\""},
    {"--hints 3", "t: --name is required"},
    {"-n a --mode medium", "t: --mode medium: must be one of fast, slow, off\n"},
    {"-n a --url 1 --url 2 --url 3 --url 4", "t: --url 4: given more than 3 times"},
    {"-n a --listen 7070", "t: --listen 7070: invalid listen address \"7070\""},
    {"-n a --vip 10.0.0.300", "t: --vip 10.0.0.300: not an IPv4 or IPv6 address"},
    {"-n a --mac 02:00", "t: --mac 02:00: not a MAC address"},
    /* sscanf's %x took a sign (-1 read as ff) and a '+' */
    {"-n a --mac -1:-1:-1:-1:-1:-1", "t: --mac -1:-1:-1:-1:-1:-1: not a MAC address"},
    {"-n a --mac +f:0:0:0:0:1", "t: --mac +f:0:0:0:0:1: not a MAC address"},
    {"-n a --add 3", "t: --add 3: only 1 or 2"},
    {"-n a --path /x", "t: --path is an http option"},
    {"-n a --file=", "t: --file '': must not be empty"},
};

static void errors(void)
{
	for (size_t i = 0; i < sizeof(t_errors) / sizeof(t_errors[0]); i++) {
		struct t_run r = t_parse(t_errors[i].args);

		ASSERT_EQ(r.ret, -EINVAL, t_errors[i].args);
		if (!ASSERT_TRUE(r.err && strstr(r.err, t_errors[i].msg), t_errors[i].args))
			fprintf(stderr, "  got: %s", r.err ? r.err : "(nothing)\n");
		ASSERT_STREQ(r.out, "", "nothing on stdout");
		t_free(&r);
	}
}

static void help_lists_every_row(void)
{
	struct t_run r = t_parse("--interval-ms 50 --help");
	char want[64];

	ASSERT_EQ(r.ret, 1, "help: exit 0 without parsing on");
	ASSERT_STREQ(r.err, "", "nothing on stderr");
	if (!ASSERT_TRUE(r.out != NULL, "usage"))
		goto out;
	for (size_t i = 0; i < CLIOPT_NOPTS(t_rows); i++) {
		snprintf(want, sizeof(want), "--%s", t_rows[i].name);
		ASSERT_TRUE(strstr(r.out, want), want);
	}
	ASSERT_TRUE(strstr(r.out, "-h, --help"), "--help itself");
	ASSERT_TRUE(!strncmp(r.out, "Usage: t [OPTIONS]\n", 19), "synopsis first");
	ASSERT_TRUE(strstr(r.out, "\nchat options:\n") && strstr(r.out, "\nhttp options:\n"),
		    "group headings");
	ASSERT_TRUE(strstr(r.out, "  -v, --verbose"), "short and long name");
	ASSERT_TRUE(strstr(r.out, "--interval-ms MS"), "metavar");
	ASSERT_TRUE(strstr(r.out, "--mode fast|slow|off"), "enum names");
	ASSERT_TRUE(strstr(r.out, "collection period (default 1000; 10..60000)\n"),
		    "default and range");
	ASSERT_TRUE(strstr(r.out, "(required)"), "required");
	ASSERT_TRUE(strstr(r.out, "(default none)"), "def_help");
	ASSERT_TRUE(strstr(r.out, "(up to 3 times)"), "repeatable");
	ASSERT_TRUE(strstr(r.out, "a ratio\n") && strstr(r.out, "  over two lines (default 0.7"),
		    "continuation line");
	if (test__case_failed)
		fprintf(stderr, "%s", r.out);
out:
	t_free(&r);
}

static void parse_twice(void)
{
	/* getopt state is reset: a second parse sees its own argv from the start */
	struct t_run r = t_parse("-n a --bogus");

	t_free(&r);
	r = t_parse("-n b --hints 9");
	ASSERT_EQ(r.ret, 0, r.err);
	ASSERT_EQ(r.o.hints, 9, "second parse");
	t_free(&r);
}

static const struct test_case cases[] = {
    {"defaults_and_values", defaults_and_values},
    {"errors", errors},
    {"help_lists_every_row", help_lists_every_row},
    {"parse_twice", parse_twice},
};

TEST_MAIN("cliopt", cases)
