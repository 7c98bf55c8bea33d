/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Command-line options from one table: a CLIOPT() row per option gives its
 * name, type, place in the program's options struct, range, default and
 * help, and cliopt__parse() builds getopt_long's array and optstring from
 * the rows, parses and range-checks the values, applies the defaults of
 * the options not given and prints the usage. The model is xdp-tools'
 * lib/util/params.h (DEFINE_OPTION); the row checks the member's C type
 * at compile time.
 *
 *	struct opts { unsigned int interval_ms; const char *name; bool verbose; };
 *	static const struct cliopt rows[] = {
 *		CLIOPT("interval-ms", UINT, struct opts, interval_ms, .min = 10,
 *		       .max = 60000, .def = "1000", .metavar = "MS", .help = "period"),
 *		...
 *	};
 */
#ifndef AIBL_CLIOPT_H
#define AIBL_CLIOPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include "listen.h"

enum cliopt_type {
	CLIOPT_FLAG,	/* no value: sets a bool (or int) member to !neg */
	CLIOPT_INT,	/* int, decimal, min..max */
	CLIOPT_UINT,	/* unsigned int, decimal, min..max */
	CLIOPT_UNUM,	/* a number as strtod reads it (1e6), min..max, its whole part
			 * stored in a uint32_t or uint64_t (the lab tools' counts) */
	CLIOPT_DOUBLE,	/* double, min..max */
	CLIOPT_STR,	/* const char *, the argument itself */
	CLIOPT_PATH,	/* const char *, not empty */
	CLIOPT_LISTEN,	/* struct listen_addr (listen.h): HOST:PORT, [HOST]:PORT, :PORT */
	CLIOPT_IPADDR,	/* struct cliopt_ipaddr: an IPv4 or IPv6 address */
	CLIOPT_MACADDR, /* uint8_t[6]: aa:bb:cc:dd:ee:ff */
	CLIOPT_ENUM,	/* int: the index of the argument in .names */
	CLIOPT_STRV,	/* const char *[N], repeatable: appends, .count_off counts */
	CLIOPT_FUNC,	/* .fn parses the argument into the member (repeatable or not) */
};

struct cliopt_ipaddr {
	int family; /* AF_INET, AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct cliopt {
	const char *name; /* long name, without "--" */
	char short_name;  /* 0: none */
	enum cliopt_type type;
	size_t off;		  /* of the member in the options struct */
	size_t size;		  /* of the member */
	void *ptr;		  /* instead of off: the variable itself (CLIOPT_VAR) */
	size_t count_off;	  /* CLIOPT_STRV: the int counting the entries (CLIOPT_COUNT) */
	double min, max;	  /* numeric types */
	const char *const *names; /* CLIOPT_ENUM: NULL-terminated */
	/* CLIOPT_FUNC: 0, or -errno with msg saying why */
	int (*fn)(const char *arg, void *dst, char *msg, size_t msglen);
	const char *def;      /* parsed like an argument when the option is not given */
	const char *def_help; /* shown as the default when the program works it out */
	const char *metavar;  /* the value in the help (default: from the type) */
	const char *help;     /* "\n" starts a new help line */
	unsigned int group;   /* 0: always; else only when cliopt_prog.group is it */
	bool neg;	      /* CLIOPT_FLAG: clears the member (--no-progress) */
	bool required;
};

struct cliopt_group {
	const char *name;  /* in "--x is a NAME option" */
	const char *title; /* heading in the usage */
};

struct cliopt_prog {
	const char *name;     /* prefix of the messages: "aibl-agent" */
	const char *synopsis; /* printed first: "Usage: ..." lines */
	const char *epilog;   /* printed last (may be NULL) */
	const struct cliopt *opts;
	size_t nopts;
	const char *title;		   /* heading of the group 0 options (default "Options:") */
	const struct cliopt_group *groups; /* [1..ngroups] used, [0] ignored */
	unsigned int ngroups;
	unsigned int group; /* the group this run allows, besides 0 */
	FILE *out, *err;    /* usage and messages (NULL: stdout, stderr) */
};

#define CLIOPT_NOPTS(rows) (sizeof(rows) / sizeof((rows)[0]))

/*
 * 0: parsed (optind is argc); 1: --help printed the usage, exit 0;
 * -EINVAL: a usage error, already reported, exit 2. argv[0] is skipped
 * (a subcommand's argv may start at its name). Arguments that are not
 * options are errors.
 */
int cliopt__parse(const struct cliopt_prog *p, int argc, char **argv, void *base);
void cliopt__usage(const struct cliopt_prog *p, FILE *f);

/* ---- rows ---- */

#define CLIOPT__IS(v, t)      __builtin_types_compatible_p(typeof(v), t)
#define CLIOPT__OK_FLAG(v)    (CLIOPT__IS(v, bool) || CLIOPT__IS(v, int))
#define CLIOPT__OK_INT(v)     CLIOPT__IS(v, int)
#define CLIOPT__OK_UINT(v)    CLIOPT__IS(v, unsigned int)
#define CLIOPT__OK_UNUM(v)    (CLIOPT__IS(v, uint32_t) || CLIOPT__IS(v, uint64_t))
#define CLIOPT__OK_DOUBLE(v)  CLIOPT__IS(v, double)
#define CLIOPT__OK_STR(v)     CLIOPT__IS(v, const char *)
#define CLIOPT__OK_PATH(v)    CLIOPT__IS(v, const char *)
#define CLIOPT__OK_LISTEN(v)  CLIOPT__IS(v, struct listen_addr)
#define CLIOPT__OK_IPADDR(v)  CLIOPT__IS(v, struct cliopt_ipaddr)
#define CLIOPT__OK_MACADDR(v) (CLIOPT__IS(v, uint8_t[6]) || CLIOPT__IS(v, unsigned char[6]))
#define CLIOPT__OK_ENUM(v)    CLIOPT__IS(v, int)
#define CLIOPT__OK_STRV(v)    CLIOPT__IS((v)[0], const char *)
#define CLIOPT__OK_FUNC(v)    1

/* 0, or a compile error when ok is false */
#define CLIOPT__CHECK(ok, what)                                                                    \
	(0 * sizeof(struct {                                                                       \
		 _Static_assert(ok, "cliopt: wrong C type for " what);                             \
		 int x;                                                                            \
	 }))

/* a member of the options struct st: m may name a nested one (cfg.stale_ms) */
#define CLIOPT(_name, _type, st, m, ...)                                                           \
	{                                                                                          \
		.name = (_name), .type = CLIOPT_##_type,                                           \
		.off = offsetof(st, m) + CLIOPT__CHECK(CLIOPT__OK_##_type(((st *)0)->m), #m),      \
		.size = sizeof(((st *)0)->m), __VA_ARGS__                                          \
	}

/* a variable (a global buffer) instead of a member */
#define CLIOPT_VAR(_name, _type, var, ...)                                                         \
	{                                                                                          \
		.name = (_name), .type = CLIOPT_##_type,                                           \
		.off = CLIOPT__CHECK(CLIOPT__OK_##_type(var), #var), .ptr = &(var),                \
		.size = sizeof(var), __VA_ARGS__                                                   \
	}

/* .count_off of a CLIOPT_STRV row: an int member */
#define CLIOPT_COUNT(st, m) (offsetof(st, m) + CLIOPT__CHECK(CLIOPT__IS(((st *)0)->m, int), #m))

#endif
