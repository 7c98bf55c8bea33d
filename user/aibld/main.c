// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aibld: the aibl controller. `aibld --check --config FILE` validates a
 * configuration; the daemon mode follows in the next change.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include "log.h"
#include "config.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: aibld --config FILE [--check] [-v]\n"
		   "  -c, --config FILE  configuration (YAML)\n"
		   "      --check        validate the configuration and exit\n"
		   "  -v, --verbose      debug logging and libbpf's log\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *path = NULL;
	char err[CFG_ERR_LEN];
	struct config cfg;
	bool check = false;
	int c;

	log_set_ident("aibld", false);
	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'v':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path || !check) {
		usage(stderr);
		return 2;
	}
	if (config__load(&cfg, path, err, sizeof(err))) {
		pr_err("%s", err);
		return 1;
	}
	printf("%s: ok (%d services, %d nodes)\n", path, cfg.nservices, cfg.nnodes);
	config__free(&cfg);
	return 0;
}
