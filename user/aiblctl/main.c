// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aiblctl: inspect and debug a running aibl balancer.
 *
 *   aiblctl [OPTIONS] OBJECT VERB [ARGS]
 *
 * Reads the maps pinned under the bpffs directory directly, so it works
 * with the controller stopped; status and node drain go through the
 * controller's HTTP API. Dispatch and output follow bpftool: a {name, fn}
 * table per level with unambiguous prefixes, -j for JSON where stdout holds
 * only JSON (errors as {"error": ...}).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"
#include "bpfutil.h"
#include "log.h"

struct ctl_opts ctl = {
    .bpffs = AIBL_DEFAULT_BPFFS,
    .api = CTL_DEFAULT_API,
};

static void ctl_verror(const char *fmt, va_list ap)
{
	char *msg;

	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	/* it may quote what the API or an agent said */
	if (msg)
		ctl_printable(msg);
	if (ctl.json) {
		json_t *s = json_string(msg ? msg : "out of memory");

		/* JSON holds UTF-8 only: a message quoting other bytes (a
		 * Latin-1 name, a proxy's page) keeps its ASCII, the rest '?' */
		if (!s && msg) {
			for (unsigned char *c = (unsigned char *)msg; *c; c++)
				if (*c >= 0x80)
					*c = '?';
			s = json_string(msg);
		}
		ctl_json_print(s ? json_pack("{s:o}", "error", s) : NULL);
	} else {
		fprintf(stderr, "aiblctl: error: %s\n", msg ? msg : "out of memory");
	}
	free(msg);
}

int ctl_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_verror(fmt, ap);
	va_end(ap);
	return CTL_EXIT_FAIL;
}

int ctl_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_verror(fmt, ap);
	va_end(ap);
	return CTL_EXIT_USAGE;
}

int ctl_json_print(json_t *doc)
{
	size_t flags = JSON_ENCODE_ANY | (ctl.pretty ? JSON_INDENT(2) : JSON_COMPACT);
	int err;

	if (!doc) {
		fputs("{\"error\":\"out of memory\"}\n", stdout);
		return CTL_EXIT_FAIL;
	}
	err = json_dumpf(doc, stdout, flags);
	json_decref(doc);
	fputc('\n', stdout);
	fflush(stdout);
	return err ? CTL_EXIT_FAIL : 0;
}

int ctl_help(void (*help)(FILE *f))
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!ctl.json) {
		help(stdout);
		return 0;
	}
	f = open_memstream(&text, &len);
	if (!f)
		return ctl_fail("out of memory");
	help(f);
	fclose(f);
	ctl_json_print(json_pack("{s:s}", "help", text));
	free(text);
	return 0;
}

bool ctl_is_help(int argc, char **argv)
{
	return argc > 0 && (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "-h") == 0 ||
			    strcmp(argv[0], "--help") == 0);
}

int ctl_dispatch(const char *what, const struct ctl_cmd *cmds, int argc, char **argv,
		 void (*help)(FILE *f))
{
	const struct ctl_cmd *hit = NULL;
	char cands[256] = "";
	int nhit = 0;
	size_t len;

	if (argc < 1)
		return ctl_usage("%s missing; try 'help'", what);
	if (ctl_is_help(argc, argv))
		return ctl_help(help);
	len = strlen(argv[0]);
	for (const struct ctl_cmd *c = cmds; c->name; c++) {
		if (strcmp(c->name, argv[0]) == 0) {
			hit = c;
			nhit = 1;
			break;
		}
		if (len && strncmp(c->name, argv[0], len) == 0) {
			hit = c;
			nhit++;
			snprintf(cands + strlen(cands), sizeof(cands) - strlen(cands), "%s%s",
				 cands[0] ? ", " : "", c->name);
		}
	}
	if (nhit == 0)
		return ctl_usage("unknown %s '%s'; try 'help'", what, argv[0]);
	if (nhit > 1)
		return ctl_usage("ambiguous %s '%s': it could be %s", what, argv[0], cands);
	return hit->fn(argc - 1, argv + 1);
}

int ctl_parse_args(int argc, char **argv, const struct ctl_opt *opts, int nopts, char **pos,
		   int *npos, int maxpos)
{
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const struct ctl_opt *o = NULL;
		const char *a = argv[i];

		if (a[0] != '-' || a[1] == '\0') {
			if (*npos >= maxpos)
				return ctl_usage("unexpected argument '%s'; try 'help'", a);
			pos[(*npos)++] = argv[i];
			continue;
		}
		for (int k = 0; k < nopts; k++)
			if (strcmp(opts[k].name, a) == 0)
				o = &opts[k];
		if (!o)
			return ctl_usage("unknown option '%s'; try 'help'", a);
		if (!o->has_arg) {
			*o->val = "";
			continue;
		}
		if (i + 1 >= argc)
			return ctl_usage("option %s needs a value", a);
		*o->val = argv[++i];
	}
	return 0;
}

int ctl_parse_u64(const char *opt, const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || *out > max)
		return ctl_usage("%s: '%s' is not a number from 0 to %llu", opt, s, max);
	return 0;
}

int ctl_parse_seconds(const char *opt, const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || !(*out >= 0.05 && *out <= 86400))
		return ctl_usage("%s: '%s' is not a number of seconds from 0.05 to 86400", opt, s);
	return 0;
}

static void main_help(FILE *f)
{
	fprintf(
	    f,
	    "Usage: aiblctl [OPTIONS] OBJECT VERB [ARGS]\n"
	    "       aiblctl OBJECT help\n"
	    "\n"
	    "Inspect and debug a running aibl balancer. Reads the BPF maps pinned under\n"
	    "the bpffs directory (works with the controller stopped); 'status', 'node'\n"
	    "and 'cluster' talk to the controller's HTTP API.\n"
	    "\n"
	    "OBJECT VERB:\n"
	    "  service list                          services, VIPs, traffic\n"
	    "  service show NAME|VIP:PORT[/proto]    one service and its backends\n"
	    "  backend list                          every backend, state, load, traffic\n"
	    "  table show SERVICE [--slots]          Maglev slot shares against weights\n"
	    "  flow list [--service S] [--limit N]   connection table entries\n"
	    "  flow lookup CLIENT:PORT VIP:PORT [tcp|udp]   which backend a flow is on\n"
	    "  pin list [--service S]                session pins from cache hints\n"
	    "  affinity list [--service S] [--limit N]   ai clients' last p2c choices\n"
	    "  stats [--interval SECS] [--count N]   counters; rates when repeated\n"
	    "  simulate CLIENT:PORT VIP:PORT [tcp|udp] [--keep]   run a packet through the "
	    "program\n"
	    "  status                                controller status (HTTP API)\n"
	    "  node drain|undrain NAME               drain a node (HTTP API)\n"
	    "  node poll NAME                        the controller polls its nodes now\n"
	    "  node unload NAME MODEL [--no-wait] [--drain-timeout MS]   drain MODEL off a node, "
	    "then unload it\n"
	    "  cluster show                          ECMP group: balancers, plan, digests "
	    "(HTTP API)\n"
	    "\n"
	    "OPTIONS (anywhere on the line):\n"
	    "  -j, --json            JSON output; stdout holds only JSON\n"
	    "  -p, --pretty          indented JSON (implies --json)\n"
	    "  --bpffs DIR           pinned maps directory (default %s)\n"
	    "  --api URL             controller API (default %s)\n"
	    "  --token-file F        bearer token for the API (or env AIBL_API_TOKEN)\n"
	    "  -v, --verbose         show libbpf's messages\n"
	    "  -V, --version         print the version and ABI\n"
	    "\n"
	    "Names may be shortened to any unambiguous prefix: 'aiblctl se l'.\n"
	    "IPv6 addresses are written [addr]:port. Exit status: 0 ok, 1 failed,\n"
	    "2 misuse of the command line.\n",
	    AIBL_DEFAULT_BPFFS, CTL_DEFAULT_API);
}

static int cmd_help(int argc, char **argv)
{
	return ctl_help(main_help);
}

static const struct ctl_cmd objects[] = {
    {"service", ctl_cmd_service},
    {"backend", ctl_cmd_backend},
    {"table", ctl_cmd_table},
    {"flow", ctl_cmd_flow},
    {"pin", ctl_cmd_pin},
    {"stats", ctl_cmd_stats},
    {"simulate", ctl_cmd_simulate},
    {"status", ctl_cmd_status},
    {"node", ctl_cmd_node},
    {"cluster", ctl_cmd_cluster},
    {"affinity", ctl_cmd_affinity},
    {"help", cmd_help},
    {NULL, NULL},
};

/*
 * Pull the global flags out of argv wherever they are, so that both
 * 'aiblctl -j service list' and 'aiblctl service list -j' work; what is
 * left is OBJECT VERB ARGS for the dispatch tables.
 */
static int parse_globals(int argc, char **argv, int *nleft)
{
	static const struct option long_opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"pretty", no_argument, NULL, 'p'},
	    {"bpffs", required_argument, NULL, 'b'},
	    {"api", required_argument, NULL, 'a'},
	    {"token-file", required_argument, NULL, 't'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char **left = calloc(argc + 1, sizeof(*left));
	int n = 0, version = 0;

	if (!left)
		return -ENOMEM;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		const struct option *o = NULL;
		int c = 0;

		if (strcmp(a, "-j") == 0) {
			c = 'j';
		} else if (strcmp(a, "-p") == 0) {
			c = 'p';
		} else if (strcmp(a, "-v") == 0) {
			c = 'v';
		} else if (strcmp(a, "-V") == 0) {
			c = 'V';
		} else if (strncmp(a, "--", 2) == 0) {
			size_t l = strcspn(a + 2, "=");

			for (const struct option *lo = long_opts; lo->name; lo++)
				if (strlen(lo->name) == l && strncmp(lo->name, a + 2, l) == 0)
					o = lo;
			/* --help stays for the command level; others are the verbs' own */
			if (o && o->val != 'h') {
				c = o->val;
				if (o->has_arg) {
					if (a[2 + l] == '=')
						val = a + 3 + l;
					else if (i + 1 < argc)
						val = argv[++i];
					else {
						free(left);
						return ctl_usage("option --%s needs a value",
								 o->name);
					}
				}
			}
		}
		switch (c) {
		case 'j':
			ctl.json = true;
			break;
		case 'p':
			ctl.json = ctl.pretty = true;
			break;
		case 'v':
			ctl.verbose = true;
			break;
		case 'V':
			version = 1;
			break;
		case 'b':
			ctl.bpffs = val;
			break;
		case 'a':
			ctl.api = val;
			break;
		case 't':
			ctl.token_file = val;
			break;
		default:
			left[n++] = argv[i];
		}
	}
	memcpy(argv + 1, left, n * sizeof(*argv));
	argv[n + 1] = NULL;
	free(left);
	*nleft = n;
	return version ? -EALREADY : 0;
}

int main(int argc, char **argv)
{
	int err, n = 0;

	log_set_ident("aiblctl", false);
	err = parse_globals(argc, argv, &n);
	if (err == CTL_EXIT_USAGE)
		return err;
	log_setup_libbpf(ctl.verbose);
	if (!ctl.verbose)
		log_set_level(LOG_LVL_WARN);
	if (err == -EALREADY) {
		if (ctl.json)
			return ctl_json_print(json_pack("{s:s,s:i}", "version", CTL_VERSION, "abi",
							AIBL_ABI_VERSION));
		printf("aiblctl %s (map ABI %d)\n", CTL_VERSION, AIBL_ABI_VERSION);
		return 0;
	}
	if (err)
		return ctl_fail("%s", strerror(-err));
	if (n == 0) {
		if (ctl.json)
			return ctl_usage("OBJECT missing; try 'aiblctl help'");
		main_help(stderr);
		return CTL_EXIT_USAGE;
	}
	return ctl_dispatch("object", objects, n, argv + 1, main_help);
}
