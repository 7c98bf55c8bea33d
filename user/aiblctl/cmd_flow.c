// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aiblctl flow list|lookup, pin list */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "ctl.h"

#define ERRLEN		   512
#define FLOW_LIMIT_DEFAULT 1000

static void flow_help(FILE *f)
{
	fprintf(f,
		"Usage: aiblctl flow list [--service S] [--limit N]\n"
		"       aiblctl flow lookup CLIENT_IP:PORT VIP:PORT [tcp|udp]\n"
		"\n"
		"list:   entries of the connection table (aibl_conns): client, VIP, service,\n"
		"        backend, flags (closing: FIN/RST seen; pinned: chosen by a session pin)\n"
		"        and idle time. Sorted by service and client; at most N rows\n"
		"        (default %d, 0: all).\n"
		"lookup: the backend one flow is on. IPv6 as [addr]:port; protocol tcp by\n"
		"        default. Exit status 1 when the flow is not in the table.\n",
		FLOW_LIMIT_DEFAULT);
}

/* JSON object of one connection entry */
static json_t *flow_json(const struct ctl_state *s, const struct aibl_flow_key *k,
			 const struct aibl_conn *c, __u64 now)
{
	int svc = ctl_state__flow_svc(s, k);
	char cli[64], vip[64], sname[48], bname[48], baddr[64] = "-";

	ctl_fmt_addr(cli, sizeof(cli), k->family, &k->src);
	ctl_fmt_addr(vip, sizeof(vip), k->family, &k->dst);
	if (svc >= 0)
		ctl_state__svc_name(s, svc, sname, sizeof(sname));
	ctl_state__be_name(s, c->backend, bname, sizeof(bname));
	if (c->backend < s->nbe)
		ctl_fmt_addr(baddr, sizeof(baddr), s->be[c->backend].family,
			     &s->be[c->backend].addr);
	return json_pack(
	    "{s:s,s:i,s:s,s:i,s:s,s:i,s:s?,s:o,s:i,s:s,s:s,s:b,s:b,s:I}", "client", cli,
	    "client_port", ntohs(k->sport), "vip", vip, "vip_port", ntohs(k->dport), "proto",
	    ctl_proto_str(k->proto), "family", k->family, "service", svc >= 0 ? sname : NULL,
	    "service_id", svc >= 0 ? json_integer(svc) : json_null(), "backend_id", c->backend,
	    "backend", bname, "backend_address", baddr, "closing",
	    !!(c->flags & AIBL_CONN_F_CLOSING), "pinned", !!(c->flags & AIBL_CONN_F_PINNED),
	    "idle_ms", (json_int_t)(now > c->last_seen_ns ? (now - c->last_seen_ns) / 1000000 : 0));
}

static void flow_row(struct ctl_table *t, const struct ctl_state *s, const struct aibl_flow_key *k,
		     const struct aibl_conn *c, __u64 now)
{
	int svc = ctl_state__flow_svc(s, k);
	char b[80];

	ctl_table__cell(t, "%s", ctl_fmt_endpoint(b, sizeof(b), k->family, &k->src, k->sport));
	ctl_table__cell(t, "%s", ctl_fmt_endpoint(b, sizeof(b), k->family, &k->dst, k->dport));
	ctl_table__cell(t, "%s", ctl_proto_str(k->proto));
	ctl_table__cell(t, "%s", svc >= 0 ? ctl_state__svc_name(s, svc, b, sizeof(b)) : "-");
	ctl_table__cell(t, "%s", ctl_state__be_name(s, c->backend, b, sizeof(b)));
	ctl_table__cell(t, "%s%s%s", c->flags & AIBL_CONN_F_CLOSING ? "closing" : "",
			(c->flags & AIBL_CONN_F_CLOSING) && (c->flags & AIBL_CONN_F_PINNED) ? ","
											    : "",
			c->flags & AIBL_CONN_F_PINNED	 ? "pinned"
			: c->flags & AIBL_CONN_F_CLOSING ? ""
							 : "-");
	ctl_table__cell(
	    t, "%s",
	    ctl_fmt_dur_ns(b, sizeof(b), now > c->last_seen_ns ? now - c->last_seen_ns : 0));
}

static const struct ctl_state *sort_state;

static int flow_cmp(const void *a, const void *b)
{
	__u32 ia = *(const __u32 *)a, ib = *(const __u32 *)b;
	const struct aibl_flow_key *x = &sort_state->ckeys[ia], *y = &sort_state->ckeys[ib];
	int sx = sort_state->csvc[ia], sy = sort_state->csvc[ib];

	if (sx != sy)
		return sx < sy ? -1 : 1;
	return memcmp(x, y, sizeof(*x));
}

/* the options of a list command: [--service S] [--limit N] */
struct list_args {
	const char *svc_opt; /* NULL: every service */
	__u32 svc;	     /* its id */
	unsigned long long limit;
};

/*
 * A list command's start after its help: the options (--limit where
 * with_limit), the maps read (ctl_load what) and the service named. 0 with
 * *s loaded (the caller frees it), or the exit status, the error reported.
 */
static int list_start(int argc, char **argv, bool with_limit, unsigned int what,
		      struct ctl_state *s, struct list_args *a)
{
	const char *limit_opt = NULL;
	const struct ctl_opt opts[] = {
	    {"--service", true, &a->svc_opt},
	    {"--limit", true, &limit_opt},
	};
	char *pos[1];
	int npos, ret;

	*a = (struct list_args){.limit = FLOW_LIMIT_DEFAULT};
	ret = ctl_parse_args(argc, argv, opts, with_limit ? 2 : 1, pos, &npos, 0);
	if (ret)
		return ret;
	if (limit_opt && ctl_parse_u64("--limit", limit_opt, 1ULL << 32, &a->limit))
		return CTL_EXIT_USAGE;
	ret = ctl_load(s, what);
	if (ret)
		return ret;
	if (a->svc_opt && ctl_find_service(s, a->svc_opt, &a->svc)) {
		ctl_state__free(s);
		return CTL_EXIT_FAIL;
	}
	return 0;
}

static const char *const flow_hdr[] = {"CLIENT",  "VIP",   "PROTO", "SERVICE",
				       "BACKEND", "FLAGS", "IDLE"};

static int flow_list(int argc, char **argv)
{
	struct ctl_table *t = NULL;
	json_t *arr = NULL;
	struct ctl_state s;
	struct list_args a;
	__u32 *idx = NULL, n = 0, shown;
	__u64 now = clock_mono_ns();
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(flow_help);
	ret = list_start(argc, argv, true, CTL_LOAD_CONNS, &s, &a);
	if (ret)
		return ret;
	idx = calloc(s.nconns + 1, sizeof(*idx));
	if (!idx) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	for (__u32 i = 0; i < s.nconns; i++)
		if (!a.svc_opt || s.csvc[i] == (int)a.svc)
			idx[n++] = i;
	sort_state = &s;
	qsort(idx, n, sizeof(*idx), flow_cmp);
	shown = a.limit && a.limit < n ? a.limit : n;
	if (ctl.json) {
		arr = json_array();
		for (__u32 i = 0; i < shown; i++)
			json_array_append_new(
			    arr, flow_json(&s, &s.ckeys[idx[i]], &s.cvals[idx[i]], now));
		ret = ctl_json_print(
		    json_pack("{s:o,s:i,s:i}", "flows", arr, "total", n, "shown", shown));
		goto out;
	}
	t = ctl_table__new(7, flow_hdr, "lllllll");
	for (__u32 i = 0; i < shown; i++)
		flow_row(t, &s, &s.ckeys[idx[i]], &s.cvals[idx[i]], now);
	ctl_table__print(t, stdout);
	if (shown < n)
		printf("%u of %u flows shown (--limit N, 0 for all)\n", shown, n);
	else
		printf("%u flow%s\n", n, n == 1 ? "" : "s");
out:
	ctl_table__free(t);
	free(idx);
	ctl_state__free(&s);
	return ret;
}

int ctl_parse_flow(int argc, char **argv, const char *verb, struct aibl_flow_key *k)
{
	union aibl_addr a;
	__u8 fam_c, fam_v, proto = IPPROTO_TCP;
	__u16 cport, vport;

	if (argc < 2 || argc > 3)
		return ctl_usage("%s needs CLIENT_IP:PORT VIP:PORT [tcp|udp]", verb);
	memset(k, 0, sizeof(*k));
	if (ctl_parse_endpoint(argv[0], true, &fam_c, &a, &cport))
		return ctl_usage("'%s' is not an address with a port (IPv6: [addr]:port)", argv[0]);
	k->src = a;
	if (ctl_parse_endpoint(argv[1], true, &fam_v, &a, &vport))
		return ctl_usage("'%s' is not an address with a port (IPv6: [addr]:port)", argv[1]);
	k->dst = a;
	if (fam_c != fam_v)
		return ctl_usage("client %s and VIP %s are not of the same address family", argv[0],
				 argv[1]);
	if (argc == 3 && ctl_parse_proto(argv[2], &proto))
		return ctl_usage("protocol '%s': expected tcp or udp", argv[2]);
	k->family = fam_c;
	k->sport = htons(cport);
	k->dport = htons(vport);
	k->proto = proto;
	return 0;
}

static int flow_lookup(int argc, char **argv)
{
	struct aibl_map cm = {.fd = -1};
	struct ctl_table *t = NULL;
	struct aibl_flow_key k;
	struct aibl_conn c;
	struct ctl_state s;
	char err[ERRLEN], a[80], b[80];
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(flow_help);
	ret = ctl_parse_flow(argc, argv, "flow lookup", &k);
	if (ret)
		return ret;
	ret = ctl_load(&s, 0);
	if (ret)
		return ret;
	if (aibl_map__open(&cm, ctl.bpffs, AIBL_MAP_CONNS, true, err, sizeof(err))) {
		ret = ctl_fail("%s", err);
		goto out;
	}
	if (bpf_map_lookup_elem(cm.fd, &k, &c)) {
		ret = errno;
		if (ret != ENOENT) {
			ret = ctl_fail("map %s: lookup failed: %s", AIBL_MAP_CONNS, strerror(ret));
			goto out;
		}
		ret = ctl_fail("flow %s -> %s %s is not in the connection table%s",
			       ctl_fmt_endpoint(a, sizeof(a), k.family, &k.src, k.sport),
			       ctl_fmt_endpoint(b, sizeof(b), k.family, &k.dst, k.dport),
			       ctl_proto_str(k.proto),
			       ctl_state__flow_svc(&s, &k) < 0 ? " (and no service has that VIP)"
							       : "");
		goto out;
	}
	if (ctl.json) {
		ret = ctl_json_print(
		    json_pack("{s:o}", "flow", flow_json(&s, &k, &c, clock_mono_ns())));
		goto out;
	}
	t = ctl_table__new(7, flow_hdr, "lllllll");
	flow_row(t, &s, &k, &c, clock_mono_ns());
	ctl_table__print(t, stdout);
out:
	ctl_table__free(t);
	aibl_map__close(&cm);
	ctl_state__free(&s);
	return ret;
}

int ctl_cmd_flow(int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
	    {"list", flow_list},
	    {"lookup", flow_lookup},
	    {NULL, NULL},
	};

	return ctl_dispatch("flow verb", cmds, argc, argv, flow_help);
}

static void pin_help(FILE *f)
{
	fprintf(f, "Usage: aiblctl pin list [--service S]\n"
		   "\n"
		   "Session pins (aibl_pins): new flows of a client to a service go to the pinned\n"
		   "backend (the node holding its KV/prefix cache) unless that backend is down,\n"
		   "draining or overloaded. Shows the time left before each pin expires and,\n"
		   "for a p2c (ai) service, SPILL: how much longer the queue at the pinned\n"
		   "backend may be than at the p2c choice (never: 0), and \"slower\" when the\n"
		   "backend is beyond the service's latency bound, so a cheaper p2c choice\n"
		   "with a free slot takes the flow.\n");
}

/* the keys pin_cmp sorts by index: aibl_pins' or aibl_affinity's */
static const struct aibl_pin_key *sort_pkeys;

/* by service, then family and client address */
static int pin_cmp(const void *a, const void *b)
{
	const struct aibl_pin_key *x = &sort_pkeys[*(const __u32 *)a];
	const struct aibl_pin_key *y = &sort_pkeys[*(const __u32 *)b];

	if (x->svc_id != y->svc_id)
		return x->svc_id < y->svc_id ? -1 : 1;
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(&x->client, &y->client, sizeof(x->client));
}

static int pin_list(int argc, char **argv)
{
	static const char *const hdr[] = {"SERVICE", "CLIENT",	"BACKEND",
					  "STATE",   "EXPIRES", "SPILL"};
	struct ctl_table *t = NULL;
	json_t *arr = NULL;
	struct ctl_state s;
	struct list_args a;
	__u64 now = clock_mono_ns();
	__u32 n = 0, *idx = NULL;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(pin_help);
	ret = list_start(argc, argv, false, CTL_LOAD_PINS, &s, &a);
	if (ret)
		return ret;
	idx = calloc(s.npins + 1, sizeof(*idx));
	if (!idx) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	for (__u32 i = 0; i < s.npins; i++)
		idx[i] = i;
	sort_pkeys = s.pkeys;
	qsort(idx, s.npins, sizeof(*idx), pin_cmp);
	if (ctl.json)
		arr = json_array();
	else
		t = ctl_table__new(6, hdr, "llllll");
	for (__u32 i = 0; i < s.npins; i++) {
		const struct aibl_pin_key *k = &s.pkeys[idx[i]];
		const struct aibl_pin *p = &s.pvals[idx[i]];
		bool expired = p->expires_ns && p->expires_ns <= now;
		char sn[48], cli[64], bn[48], d[32];
		const char *st;

		if (a.svc_opt && k->svc_id != a.svc)
			continue;
		n++;
		ctl_state__svc_name(&s, k->svc_id, sn, sizeof(sn));
		ctl_fmt_addr(cli, sizeof(cli), k->family, &k->client);
		ctl_state__be_name(&s, p->backend, bn, sizeof(bn));
		st = ctl_be_state(p->backend < s.nbe ? s.be[p->backend].flags : 0);
		if (arr) {
			json_array_append_new(
			    arr, json_pack("{s:s,s:i,s:s,s:i,s:i,s:s,s:s,s:o,s:b,s:i,s:b}",
					   "service", sn, "service_id", k->svc_id, "client", cli,
					   "family", k->family, "backend_id", p->backend, "backend",
					   bn, "state", st, "expires_in_ms",
					   p->expires_ns
					       ? json_integer(
						     expired ? 0
							     : (json_int_t)((p->expires_ns - now) /
									    1000000))
					       : json_null(),
					   "expired", expired, "spill_ms", p->spill_ms, "slower",
					   !!(p->flags & AIBL_PIN_F_SLOWER)));
			continue;
		}
		ctl_table__cell(t, "%s", sn);
		ctl_table__cell(t, "%s", cli);
		ctl_table__cell(t, "%s", bn);
		ctl_table__cell(t, "%s", st);
		if (!p->expires_ns)
			ctl_table__cell(t, "never");
		else if (expired)
			ctl_table__cell(t, "expired");
		else
			ctl_table__cell(t, "in %s",
					ctl_fmt_dur_ns(d, sizeof(d), p->expires_ns - now));
		/* when a p2c service's flow leaves the pin (docs/dataplane.md) */
		ctl_table__cell(t, "%s%s%s", p->spill_ms ? "" : "never",
				p->spill_ms ? ctl_fmt_dur_ns(d, sizeof(d), p->spill_ms * 1000000ULL)
					    : "",
				p->flags & AIBL_PIN_F_SLOWER ? ", slower" : "");
	}
	if (arr) {
		ret = ctl_json_print(json_pack("{s:o}", "pins", arr));
	} else {
		ctl_table__print(t, stdout);
		printf("%u pin%s\n", n, n == 1 ? "" : "s");
	}
out:
	ctl_table__free(t);
	free(idx);
	ctl_state__free(&s);
	return ret;
}

int ctl_cmd_pin(int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
	    {"list", pin_list},
	    {NULL, NULL},
	};

	return ctl_dispatch("pin verb", cmds, argc, argv, pin_help);
}

static void affinity_help(FILE *f)
{
	fprintf(f,
		"Usage: aiblctl affinity list [--service S] [--limit N]\n"
		"\n"
		"Client affinity (aibl_affinity), written by the data plane: an ai service's\n"
		"last p2c choice for each client address. The client's next new flow to the\n"
		"service follows it until it EXPIRES (aibld's ai.affinity_ms), while the\n"
		"backend is still in the service's table, takes new flows, and its expected\n"
		"wait is within the spill (ai.pin_spill_ms) of p2c's choice; a session pin\n"
		"(aiblctl pin list) wins over it. Expired entries are not followed; they stay\n"
		"until a new client's entry takes their way of the table (the way that\n"
		"expires first; a live one too where the bucket is full). Shows at most N\n"
		"entries, live ones first (default %d, 0 for all), then how many entries\n"
		"the table holds for all services (a table nearly full of live entries\n"
		"loses some to new clients).\n",
		FLOW_LIMIT_DEFAULT);
}

/* live entries first, then by service and client */
static __u64 aff_now;
static const struct aibl_affinity *sort_avals;

static int affinity_cmp(const void *a, const void *b)
{
	bool xl = sort_avals[*(const __u32 *)a].expires_ns > aff_now;
	bool yl = sort_avals[*(const __u32 *)b].expires_ns > aff_now;

	if (xl != yl)
		return xl ? -1 : 1;
	return pin_cmp(a, b);
}

static int affinity_list(int argc, char **argv)
{
	static const char *const hdr[] = {"SERVICE", "CLIENT", "BACKEND", "STATE", "EXPIRES"};
	struct ctl_table *t = NULL;
	json_t *arr = NULL;
	struct ctl_state s;
	struct list_args a;
	__u64 now = clock_mono_ns();
	__u32 n = 0, live = 0, shown, *idx = NULL;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(affinity_help);
	ret = list_start(argc, argv, true, CTL_LOAD_AFFINITY, &s, &a);
	if (ret)
		return ret;
	idx = calloc(s.naff + 1, sizeof(*idx));
	if (!idx) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	for (__u32 i = 0; i < s.naff; i++) {
		if (a.svc_opt && s.akeys[i].svc_id != a.svc)
			continue;
		idx[n++] = i;
		live += s.avals[i].expires_ns > now;
	}
	sort_pkeys = s.akeys;
	sort_avals = s.avals;
	aff_now = now;
	qsort(idx, n, sizeof(*idx), affinity_cmp);
	shown = a.limit && a.limit < n ? a.limit : n;
	if (ctl.json)
		arr = json_array();
	else
		t = ctl_table__new(5, hdr, "lllll");
	for (__u32 i = 0; i < shown; i++) {
		const struct aibl_pin_key *k = &s.akeys[idx[i]];
		const struct aibl_affinity *af = &s.avals[idx[i]];
		bool expired = af->expires_ns <= now;
		char sn[48], cli[64], bn[48], d[32];
		const char *st;

		ctl_state__svc_name(&s, k->svc_id, sn, sizeof(sn));
		ctl_fmt_addr(cli, sizeof(cli), k->family, &k->client);
		ctl_state__be_name(&s, af->backend, bn, sizeof(bn));
		st = ctl_be_state(af->backend < s.nbe ? s.be[af->backend].flags : 0);
		if (arr) {
			json_array_append_new(
			    arr,
			    json_pack("{s:s,s:i,s:s,s:i,s:i,s:s,s:s,s:I,s:b}", "service", sn,
				      "service_id", k->svc_id, "client", cli, "family", k->family,
				      "backend_id", af->backend, "backend", bn, "state", st,
				      "expires_in_ms",
				      (json_int_t)(expired ? 0 : (af->expires_ns - now) / 1000000),
				      "expired", expired));
			continue;
		}
		ctl_table__cell(t, "%s", sn);
		ctl_table__cell(t, "%s", cli);
		ctl_table__cell(t, "%s", bn);
		ctl_table__cell(t, "%s", st);
		if (expired)
			ctl_table__cell(t, "expired");
		else
			ctl_table__cell(t, "in %s",
					ctl_fmt_dur_ns(d, sizeof(d), af->expires_ns - now));
	}
	if (arr) {
		ret = ctl_json_print(json_pack("{s:o,s:i,s:i,s:i,s:i}", "affinities", arr, "total",
					       n, "live", live, "shown", shown, "capacity",
					       s.aff_capacity));
	} else {
		ctl_table__print(t, stdout);
		if (shown < n)
			printf("%u of %u affinities shown, %u live (--limit N, 0 for all)", shown,
			       n, live);
		else
			printf("%u affinit%s, %u live", n, n == 1 ? "y" : "ies", live);
		printf("; the table holds %u for all services\n", s.aff_capacity);
	}
out:
	ctl_table__free(t);
	free(idx);
	ctl_state__free(&s);
	return ret;
}

int ctl_cmd_affinity(int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
	    {"list", affinity_list},
	    {NULL, NULL},
	};

	return ctl_dispatch("affinity verb", cmds, argc, argv, affinity_help);
}
