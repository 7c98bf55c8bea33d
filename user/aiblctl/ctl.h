/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aiblctl internals shared by its command files. Names start with ctl_, as
 * each module's names start with its own prefix (aibld__, agent_, sim__).
 */
#ifndef AIBL_CTL_H
#define AIBL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include <jansson.h>
#include "clock.h"
#include "aibl.h"
#include "maps.h"

/* exit codes: a command that ran but failed, and misuse of the command line */
#define CTL_EXIT_FAIL  1
#define CTL_EXIT_USAGE 2

#define CTL_DEFAULT_API "http://127.0.0.1:7070"
#define CTL_VERSION	"0.1.0"

struct ctl_opts {
	bool json;
	bool pretty;
	bool verbose;
	const char *bpffs;
	const char *api;
	const char *token_file;
};

extern struct ctl_opts ctl;

/* ---- dispatch (main.c) ---- */
struct ctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
};

/*
 * Run the command whose name argv[0] is an unambiguous prefix of (an exact
 * name always wins). what: "object" or "service verb", for messages. help
 * is printed by "help" and when argv is empty.
 */
int ctl_dispatch(const char *what, const struct ctl_cmd *cmds, int argc, char **argv,
		 void (*help)(FILE *f));
/* Print help through f (text, or {"help": text} in JSON mode); returns 0. */
int ctl_help(void (*help)(FILE *f));
/* argv[0] is "help", "-h" or "--help" */
bool ctl_is_help(int argc, char **argv);

/* Report an error: {"error": msg} on stdout in JSON mode, else on stderr. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A command-line misuse: like ctl_fail, but returns CTL_EXIT_USAGE. */
int ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a JSON document (steals the reference); 0 or CTL_EXIT_FAIL. */
int ctl_json_print(json_t *doc);

/*
 * Parse a verb's own options. spec: "--name" flags; those ending in '='
 * take a value. Positional words are collected into pos (up to maxpos).
 * Returns 0 or a usage error already reported.
 */
struct ctl_opt {
	const char *name; /* "--limit" */
	bool has_arg;
	const char **val; /* set to the argument, or to "" for a flag */
};
int ctl_parse_args(int argc, char **argv, const struct ctl_opt *opts, int nopts, char **pos,
		   int *npos, int maxpos);
/* Unsigned number with optional bounds; a clear usage error otherwise. */
int ctl_parse_u64(const char *opt, const char *s, unsigned long long max, unsigned long long *out);
int ctl_parse_seconds(const char *opt, const char *s, double *out);

/* ---- formatting (fmt.c) ---- */
/* 987, 12.3k, 1.2M, 3.4G */
char *ctl_fmt_count(char *buf, size_t len, __u64 v);
/* 512 B, 1.5 KiB, 3.4 GiB */
char *ctl_fmt_bytes(char *buf, size_t len, __u64 v);
/* 12.5% */
char *ctl_fmt_pct(char *buf, size_t len, double fraction);
/* 1.2k/s from a per-second rate */
char *ctl_fmt_rate(char *buf, size_t len, double per_s);
/* 3.4 MiB/s */
char *ctl_fmt_byte_rate(char *buf, size_t len, double per_s);
/* 350ms, 12.0s, 5m03s, 2h01m, 3d04h */
char *ctl_fmt_dur_ns(char *buf, size_t len, __u64 ns);
/* 10.0.0.1 / fd00::1 */
char *ctl_fmt_addr(char *buf, size_t len, __u8 family, const union aibl_addr *a);
/* 10.0.0.1:80 / [fd00::1]:80 (port in network order; 0 printed as "*") */
char *ctl_fmt_endpoint(char *buf, size_t len, __u8 family, const union aibl_addr *a, __be16 port);
const char *ctl_proto_str(__u8 proto);
const char *ctl_mode_str(__u8 mode);
const char *ctl_key_str(__u8 key);
const char *ctl_policy_str(__u8 policy);
const char *ctl_accel_str(__u8 accel);
/* up / unhealthy / draining / overloaded / down / unused, from AIBL_BE_F_* */
const char *ctl_be_state(__u8 flags);
/* a connection-table entry of an open flow: the data plane saw no FIN/RST yet
 * (closed flows stay in the LRU until evicted) */
static inline bool ctl_conn_open(const struct aibl_conn *c)
{
	return !(c->flags & AIBL_CONN_F_CLOSING);
}
/* 02:00:00:00:00:01, or "-" when all zero */
char *ctl_fmt_mac(char *buf, size_t len, const __u8 mac[6]);

/* "10.0.0.1:80", "[fd00::1]:80", "10.0.0.1" (port optional unless need_port) */
int ctl_parse_endpoint(const char *s, bool need_port, __u8 *family, union aibl_addr *a,
		       __u16 *port);
/* tcp / udp -> IPPROTO_* */
int ctl_parse_proto(const char *s, __u8 *proto);

/* Aligned text table: columns right-aligned where align[i] == 'r'. */
struct ctl_table;
struct ctl_table *ctl_table__new(int ncols, const char *const *headers, const char *align);
/* text from elsewhere (a model name an engine listed, an agent's error, a
 * proxy's page) made safe for a terminal: a control character would move
 * the cursor, forge rows or drive the terminal. C0, DEL and C1 (in UTF-8,
 * 0xc2 0x80..0x9f) become '?', in place */
void ctl_printable(char *s);
void ctl_table__cell(struct ctl_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ctl_table__print(struct ctl_table *t, FILE *f);
void ctl_table__free(struct ctl_table *t);

/* ---- the maps, read at once (state.c) ---- */
enum {
	CTL_LOAD_CONNS = 1 << 0,
	CTL_LOAD_PINS = 1 << 1,
	CTL_LOAD_STATS = 1 << 2, /* global counters, per service / backend traffic */
	CTL_LOAD_LOAD = 1 << 3,	 /* aibl_load and aibl_cost */
	CTL_LOAD_AFFINITY = 1 << 4,
};

struct ctl_vip {
	struct aibl_vip_key key;
	struct aibl_vip val;
};

struct ctl_state {
	struct aibl_globals g;
	__u32 nsvc; /* entries of per-service arrays */
	__u32 nbe;  /* entries of per-backend arrays */
	struct aibl_svc_meta *svc_meta;
	struct aibl_be_meta *be_meta;
	struct aibl_backend *be;
	struct ctl_vip *vips; /* sorted by key */
	__u32 nvips;
	struct aibl_member_key *mkeys;
	struct aibl_member *mvals;
	__u32 nmembers;
	/* CTL_LOAD_STATS */
	__u64 counters[AIBL_CNT__MAX];
	struct aibl_traffic *svc_traffic;
	struct aibl_traffic *be_traffic;
	/* CTL_LOAD_LOAD */
	struct aibl_load *load;
	struct aibl_cost *cost;
	/* CTL_LOAD_CONNS */
	struct aibl_flow_key *ckeys;
	struct aibl_conn *cvals;
	int *csvc; /* service of each entry (-1: none), looked up once */
	__u32 nconns;
	/* CTL_LOAD_PINS */
	struct aibl_pin_key *pkeys;
	struct aibl_pin *pvals;
	__u32 npins;
	/* CTL_LOAD_AFFINITY */
	struct aibl_pin_key *akeys;
	struct aibl_affinity *avals;
	__u32 naff;
	__u32 aff_capacity; /* entries aibl_affinity holds, all services */
};

/* Open the maps under ctl.bpffs (checked), read them; message in err. */
int ctl_state__load(struct ctl_state *s, unsigned int what, char *err, size_t errlen);
void ctl_state__free(struct ctl_state *s);
/* ctl_state__load, the error reported (ctl_fail); 0 or CTL_EXIT_FAIL */
int ctl_load(struct ctl_state *s, unsigned int what);
/* ctl_state__find_service, the error reported; 0 or CTL_EXIT_FAIL */
int ctl_find_service(const struct ctl_state *s, const char *spec, __u32 *id);
/* A service exists when its meta is valid or a VIP points at it. */
bool ctl_state__svc_exists(const struct ctl_state *s, __u32 id);
const char *ctl_state__svc_name(const struct ctl_state *s, __u32 id, char *buf, size_t len);
/* the service's model as aiblctl prints it (printable ASCII), "" none */
const char *ctl_state__svc_model(const struct ctl_state *s, __u32 id, char *buf, size_t len);
const char *ctl_state__be_name(const struct ctl_state *s, __u32 id, char *buf, size_t len);
/* The VIP entry of a packet to (family, addr, port, proto), port-0 wildcard included. */
const struct ctl_vip *ctl_state__vip_lookup(const struct ctl_state *s, __u8 family,
					    const union aibl_addr *a, __be16 port, __u8 proto);
/* svc_id of a connection entry, or -1 when no VIP matches any more. */
int ctl_state__flow_svc(const struct ctl_state *s, const struct aibl_flow_key *k);
/* First VIP entry of a service (the one its meta names when present). */
const struct ctl_vip *ctl_state__svc_vip(const struct ctl_state *s, __u32 id);
/*
 * Resolve NAME, or VIP:PORT[/proto] (proto tcp when absent), or a numeric
 * id to a service id. -ENOENT with a message when nothing matches.
 */
int ctl_state__find_service(const struct ctl_state *s, const char *spec, __u32 *id, char *err,
			    size_t errlen);
/* {"address", "port", "proto", "family"} of a VIP entry */
json_t *ctl_json_vip(const struct ctl_vip *v);

/* CLIENT:PORT VIP:PORT [tcp|udp] into a connection-table key (cmd_flow.c) */
int ctl_parse_flow(int argc, char **argv, const char *verb, struct aibl_flow_key *k);

/* GET PATH of the controller API (--api): *doc its JSON object, or a reported error */
int ctl_api_get(const char *path, json_t **doc);

/* ---- commands ---- */
int ctl_cmd_service(int argc, char **argv);
int ctl_cmd_backend(int argc, char **argv);
int ctl_cmd_table(int argc, char **argv);
int ctl_cmd_flow(int argc, char **argv);
int ctl_cmd_pin(int argc, char **argv);
int ctl_cmd_affinity(int argc, char **argv);
int ctl_cmd_stats(int argc, char **argv);
int ctl_cmd_simulate(int argc, char **argv);
int ctl_cmd_status(int argc, char **argv);
int ctl_cmd_node(int argc, char **argv);
int ctl_cmd_cluster(int argc, char **argv);

#endif
