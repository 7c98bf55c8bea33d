// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aiblctl service list|show, backend list, table show */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "ctl.h"

#define ERRLEN 512

/* per-service figures derived from the conns, pins and members maps */
struct svc_sum {
	__u32 backends;
	__u32 up;
	__u64 flows;
	__u64 pins;
	__u64 weight; /* sum of effective weights of the members */
};

static void svc_sum(const struct ctl_state *s, __u32 id, struct svc_sum *o)
{
	memset(o, 0, sizeof(*o));
	for (__u32 i = 0; i < s->nmembers; i++) {
		__u32 b = s->mkeys[i].backend;

		if (s->mkeys[i].svc_id != id)
			continue;
		o->backends++;
		o->weight += s->mvals[i].weight;
		if (b < s->nbe && strcmp(ctl_be_state(s->be[b].flags), "up") == 0)
			o->up++;
	}
	for (__u32 i = 0; i < s->nconns; i++)
		if (s->csvc[i] == (int)id && ctl_conn_open(&s->cvals[i]))
			o->flows++;
	for (__u32 i = 0; i < s->npins; i++)
		if (s->pkeys[i].svc_id == id)
			o->pins++;
}

/* "10.100.0.1:80/tcp, [fd00::1]:80/tcp" into buf; also the JSON array when j */
static void svc_vips(const struct ctl_state *s, __u32 id, char *buf, size_t len, json_t *j)
{
	size_t off = 0;

	buf[0] = '\0';
	for (__u32 i = 0; i < s->nvips; i++) {
		const struct ctl_vip *v = &s->vips[i];
		char ep[80];

		if (v->val.svc_id != id)
			continue;
		ctl_fmt_endpoint(ep, sizeof(ep), v->key.family, &v->key.addr, v->key.port);
		if (off < len)
			off += snprintf(buf + off, len - off, "%s%s/%s", off ? "," : "", ep,
					ctl_proto_str(v->key.proto));
		if (j)
			json_array_append_new(j, ctl_json_vip(v));
	}
	if (!buf[0])
		snprintf(buf, len, "-");
}

static json_t *svc_json(const struct ctl_state *s, __u32 id, const struct svc_sum *sum)
{
	const struct aibl_svc_meta *m = id < s->nsvc ? &s->svc_meta[id] : NULL;
	const struct ctl_vip *v = ctl_state__svc_vip(s, id);
	const struct aibl_traffic *t = &s->svc_traffic[id < s->nsvc ? id : s->nsvc];
	json_t *vips = json_array();
	char name[AIBL_NAME_LEN + 8], model[AIBL_MODEL_LEN + 1], dummy[512];

	ctl_state__svc_name(s, id, name, sizeof(name));
	ctl_state__svc_model(s, id, model, sizeof(model));
	svc_vips(s, id, dummy, sizeof(dummy), vips);
	return json_pack("{s:i,s:s,s:s,s:s,s:s?,s:s?,s:b,s:o,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:i,"
			 "s:i}",
			 "id", id, "name", name, "model", model, "policy",
			 m && m->valid ? ctl_policy_str(m->policy) : "?", "mode",
			 v ? ctl_mode_str(v->val.mode) : NULL, "session_key",
			 v ? ctl_key_str(v->val.session_key) : NULL, "conntrack",
			 !(v && (v->val.flags & AIBL_VIP_F_NO_CONNTRACK)), "vips", vips, "backends",
			 sum->backends, "backends_up", sum->up, "flows", (json_int_t)sum->flows,
			 "pins", (json_int_t)sum->pins, "packets", (json_int_t)t->packets, "bytes",
			 (json_int_t)t->bytes, "new_flows", (json_int_t)t->new_flows, "pin_hits",
			 (json_int_t)t->pin_hits, "generation", m ? m->generation : 0, "ring_half",
			 v ? v->val.ring_half : 0);
}

static void service_help(FILE *f)
{
	fprintf(f,
		"Usage: aiblctl service list\n"
		"       aiblctl service show NAME|VIP:PORT[/tcp|udp]\n"
		"\n"
		"list: every service with its VIPs, policy, data-plane mode, backends up/total,\n"
		"      active flows (connection-table entries not closing), packets, bytes and\n"
		"      session pins.\n"
		"show: one service: mode, session key, table generation and, per backend,\n"
		"      weight, slot share, state (up/draining/overloaded/down), active flows,\n"
		"      packets, bytes and pins.\n");
}

static int service_list(int argc, char **argv)
{
	static const char *const hdr[] = {"NAME",     "VIPS",  "MODEL",	  "POLICY", "MODE",
					  "BACKENDS", "FLOWS", "PACKETS", "BYTES",  "PINS"};
	struct ctl_table *t = NULL;
	struct ctl_state s;
	json_t *arr = NULL;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(service_help);
	if (argc)
		return ctl_usage("service list takes no arguments");
	ret = ctl_load(&s, CTL_LOAD_CONNS | CTL_LOAD_PINS | CTL_LOAD_STATS);
	if (ret)
		return ret;
	if (ctl.json)
		arr = json_array();
	else
		t = ctl_table__new(10, hdr, "lllllrrrrr");
	for (__u32 id = 0; id < s.nsvc; id++) {
		const struct ctl_vip *v;
		struct svc_sum sum;
		char name[48], model[AIBL_MODEL_LEN + 1], vips[512], b1[32], b2[32];

		if (!ctl_state__svc_exists(&s, id))
			continue;
		svc_sum(&s, id, &sum);
		if (arr) {
			json_array_append_new(arr, svc_json(&s, id, &sum));
			continue;
		}
		v = ctl_state__svc_vip(&s, id);
		svc_vips(&s, id, vips, sizeof(vips), NULL);
		ctl_table__cell(t, "%s", ctl_state__svc_name(&s, id, name, sizeof(name)));
		ctl_table__cell(t, "%s", vips);
		ctl_table__cell(
		    t, "%s", ctl_state__svc_model(&s, id, model, sizeof(model))[0] ? model : "-");
		ctl_table__cell(t, "%s",
				s.svc_meta[id].valid ? ctl_policy_str(s.svc_meta[id].policy) : "-");
		ctl_table__cell(t, "%s", v ? ctl_mode_str(v->val.mode) : "-");
		ctl_table__cell(t, "%u/%u up", sum.up, sum.backends);
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), sum.flows));
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), s.svc_traffic[id].packets));
		ctl_table__cell(t, "%s", ctl_fmt_bytes(b2, sizeof(b2), s.svc_traffic[id].bytes));
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), sum.pins));
	}
	if (arr) {
		ret = ctl_json_print(json_pack("{s:o}", "services", arr));
	} else {
		ctl_table__print(t, stdout);
		ctl_table__free(t);
	}
	ctl_state__free(&s);
	return ret;
}

static int member_cmp(const void *a, const void *b)
{
	const struct aibl_member_key *x = a, *y = b;

	return x->backend < y->backend ? -1 : x->backend > y->backend;
}

/* (key, value) pairs of the service's members, sorted by backend id */
static __u32 svc_members(const struct ctl_state *s, __u32 id, struct aibl_member_key *keys,
			 struct aibl_member *vals)
{
	struct {
		struct aibl_member_key k;
		struct aibl_member v;
	} *tmp = calloc(s->nmembers + 1, sizeof(*tmp));
	__u32 n = 0;

	if (!tmp)
		return 0;
	for (__u32 i = 0; i < s->nmembers; i++) {
		if (s->mkeys[i].svc_id != id)
			continue;
		tmp[n].k = s->mkeys[i];
		tmp[n].v = s->mvals[i];
		n++;
	}
	qsort(tmp, n, sizeof(*tmp), member_cmp);
	for (__u32 i = 0; i < n; i++) {
		keys[i] = tmp[i].k;
		vals[i] = tmp[i].v;
	}
	free(tmp);
	return n;
}

static int service_show(int argc, char **argv)
{
	static const char *const hdr[] = {"ID",	   "BACKEND", "ADDRESS", "WEIGHT", "SLOTS", "SHARE",
					  "STATE", "FLOWS",   "PACKETS", "BYTES",  "PINS"};
	struct aibl_member_key *mk = NULL;
	struct aibl_member *mv = NULL;
	struct ctl_table *t = NULL;
	char b1[64], b2[64], name[48];
	json_t *doc = NULL, *bes = NULL;
	struct ctl_state s;
	struct svc_sum sum;
	__u32 id, n;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(service_help);
	if (argc != 1)
		return ctl_usage("service show needs one NAME or VIP:PORT[/proto]");
	ret = ctl_load(&s, CTL_LOAD_CONNS | CTL_LOAD_PINS | CTL_LOAD_STATS | CTL_LOAD_LOAD);
	if (ret)
		return ret;
	if (ctl_find_service(&s, argv[0], &id)) {
		ret = CTL_EXIT_FAIL;
		goto out;
	}
	svc_sum(&s, id, &sum);
	mk = calloc(s.nmembers + 1, sizeof(*mk));
	mv = calloc(s.nmembers + 1, sizeof(*mv));
	if (!mk || !mv) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	n = svc_members(&s, id, mk, mv);
	if (ctl.json) {
		doc = svc_json(&s, id, &sum);
		bes = json_array();
		if (!doc || !bes) {
			json_decref(doc);
			json_decref(bes);
			ret = ctl_fail("service %s: cannot write it as JSON", argv[0]);
			goto out;
		}
		json_object_set_new(doc, "backends", bes);
	} else {
		/* an id from a VIP entry may lie beyond the services' maps */
		static const struct aibl_traffic no_traffic;
		static const struct aibl_svc_meta no_meta;
		const struct ctl_vip *v = ctl_state__svc_vip(&s, id);
		const struct aibl_traffic *tr = id < s.nsvc ? &s.svc_traffic[id] : &no_traffic;
		const struct aibl_svc_meta *m = id < s.nsvc ? &s.svc_meta[id] : &no_meta;
		char vips[512], model[AIBL_MODEL_LEN + 1], b3[32], b4[32];

		svc_vips(&s, id, vips, sizeof(vips), NULL);
		printf("service %s (id %u)\n", ctl_state__svc_name(&s, id, name, sizeof(name)), id);
		printf("  model       %s\n",
		       ctl_state__svc_model(&s, id, model, sizeof(model))[0] ? model : "-");
		printf("  policy      %s (data plane mode %s, session key %s)\n",
		       m->valid ? ctl_policy_str(m->policy) : "-",
		       v ? ctl_mode_str(v->val.mode) : "-",
		       v ? ctl_key_str(v->val.session_key) : "-");
		printf("  vips        %s\n", vips);
		printf("  conntrack   %s\n",
		       v && (v->val.flags & AIBL_VIP_F_NO_CONNTRACK) ? "off (stateless)" : "on");
		printf("  table       generation %u, active half %u, %u slots\n", m->generation,
		       v ? v->val.ring_half : 0, AIBL_RING_SIZE);
		printf("  traffic     %s packets, %s, %s new flows, %s pin hits\n",
		       ctl_fmt_count(b1, sizeof(b1), tr->packets),
		       ctl_fmt_bytes(b2, sizeof(b2), tr->bytes),
		       ctl_fmt_count(b3, sizeof(b3), tr->new_flows),
		       ctl_fmt_count(b4, sizeof(b4), tr->pin_hits));
		printf("  flows       %llu active\n", (unsigned long long)sum.flows);
		printf("  pins        %llu\n", (unsigned long long)sum.pins);
		printf("  backends    %u/%u up\n\n", sum.up, sum.backends);
		t = ctl_table__new(11, hdr, "rllrrrlrrrr");
	}
	for (__u32 i = 0; i < n; i++) {
		__u32 b = mk[i].backend;
		const struct aibl_backend *be = b < s.nbe ? &s.be[b] : NULL;
		const struct aibl_traffic *tr = b < s.nbe ? &s.be_traffic[b] : &s.be_traffic[s.nbe];
		__u64 flows = 0, pins = 0;
		double share = (double)mv[i].slots / AIBL_RING_SIZE;

		for (__u32 c = 0; c < s.nconns; c++)
			if (s.cvals[c].backend == b && s.csvc[c] == (int)id &&
			    ctl_conn_open(&s.cvals[c]))
				flows++;
		for (__u32 p = 0; p < s.npins; p++)
			if (s.pkeys[p].svc_id == id && s.pvals[p].backend == b)
				pins++;
		ctl_state__be_name(&s, b, name, sizeof(name));
		if (be)
			ctl_fmt_addr(b1, sizeof(b1), be->family, &be->addr);
		else
			snprintf(b1, sizeof(b1), "-");
		if (bes) {
			json_array_append_new(
			    bes,
			    json_pack("{s:i,s:s,s:s,s:i,s:i,s:i,s:f,s:f,s:s,s:I,s:I,s:I,s:I,s:I}",
				      "id", b, "name", name, "address", b1, "weight", mv[i].weight,
				      "cfg_weight", mv[i].cfg_weight, "slots", mv[i].slots,
				      "slot_share", share, "weight_share",
				      sum.weight ? (double)mv[i].weight / sum.weight : 0.0, "state",
				      ctl_be_state(be ? be->flags : 0), "flows", (json_int_t)flows,
				      "active", (json_int_t)(b < s.nbe ? s.load[b].active : 0),
				      "packets", (json_int_t)tr->packets, "bytes",
				      (json_int_t)tr->bytes, "pins", (json_int_t)pins));
			continue;
		}
		ctl_table__cell(t, "%u", b);
		ctl_table__cell(t, "%s", name);
		ctl_table__cell(t, "%s", b1);
		if (mv[i].weight != mv[i].cfg_weight)
			ctl_table__cell(t, "%u (cfg %u)", mv[i].weight, mv[i].cfg_weight);
		else
			ctl_table__cell(t, "%u", mv[i].weight);
		ctl_table__cell(t, "%u", mv[i].slots);
		ctl_table__cell(t, "%s", ctl_fmt_pct(b2, sizeof(b2), share));
		ctl_table__cell(t, "%s", ctl_be_state(be ? be->flags : 0));
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), flows));
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), tr->packets));
		ctl_table__cell(t, "%s", ctl_fmt_bytes(b2, sizeof(b2), tr->bytes));
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), pins));
	}
	if (doc) {
		ret = ctl_json_print(json_pack("{s:o}", "service", doc));
	} else {
		ctl_table__print(t, stdout);
		printf("\nPACKETS and BYTES are each backend's totals over all its services.\n");
	}
out:
	ctl_table__free(t);
	free(mk);
	free(mv);
	ctl_state__free(&s);
	return ret;
}

int ctl_cmd_service(int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
	    {"list", service_list},
	    {"show", service_show},
	    {NULL, NULL},
	};

	return ctl_dispatch("service verb", cmds, argc, argv, service_help);
}

static void backend_help(FILE *f)
{
	fprintf(f, "Usage: aiblctl backend list\n"
		   "\n"
		   "Every backend (inference node) with its address, accelerator, configured\n"
		   "weight, state (up/draining/overloaded/down), active flows as the data plane\n"
		   "counts them (aibl_load), connection-table entries, the controller's p2c cost,\n"
		   "services it serves, traffic and next-hop MAC. A cost priced by the ai policy\n"
		   "reads \"120 ms, 6 free, +31/flow\": the latency a new request can expect\n"
		   "while the node has slots free, and the ms each flow beyond them adds.\n");
}

static int backend_list(int argc, char **argv)
{
	static const char *const hdr[] = {"ID",	     "NAME",   "ADDRESS", "ACCEL", "WEIGHT",
					  "STATE",   "ACTIVE", "CONNS",	  "COST",  "SERVICES",
					  "PACKETS", "BYTES",  "NEW",	  "MAC"};
	struct ctl_table *t = NULL;
	__u64 *conns = NULL;
	__u32 *nsvc = NULL;
	json_t *arr = NULL;
	struct ctl_state s;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(backend_help);
	if (argc)
		return ctl_usage("backend list takes no arguments");
	ret = ctl_load(&s, CTL_LOAD_CONNS | CTL_LOAD_STATS | CTL_LOAD_LOAD);
	if (ret)
		return ret;
	conns = calloc(s.nbe + 1, sizeof(*conns));
	nsvc = calloc(s.nbe + 1, sizeof(*nsvc));
	if (!conns || !nsvc) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	for (__u32 i = 0; i < s.nconns; i++)
		if (s.cvals[i].backend < s.nbe)
			conns[s.cvals[i].backend]++;
	for (__u32 i = 0; i < s.nmembers; i++)
		if (s.mkeys[i].backend < s.nbe)
			nsvc[s.mkeys[i].backend]++;
	if (ctl.json)
		arr = json_array();
	else
		t = ctl_table__new(14, hdr, "rlllrlrrrrrrrl");
	for (__u32 b = 0; b < s.nbe; b++) {
		const struct aibl_backend *be = &s.be[b];
		const struct aibl_be_meta *m = &s.be_meta[b];
		const struct aibl_traffic *tr = &s.be_traffic[b];
		const char *slower = s.cost[b].flags & AIBL_COST_F_SLOWER ? ", slower" : "";
		char name[48], addr[64], mac[24], b1[32];

		if (!(be->flags & AIBL_BE_F_VALID) && !m->valid)
			continue;
		ctl_state__be_name(&s, b, name, sizeof(name));
		ctl_fmt_addr(addr, sizeof(addr), be->family, &be->addr);
		ctl_fmt_mac(mac, sizeof(mac), be->mac);
		if (arr) {
			json_array_append_new(
			    arr,
			    json_pack(
				"{s:i,s:s,s:s,s:i,s:s,s:i,s:s,s:{s:b,s:b,s:b,s:b},s:I,s:I,"
				"s:i,s:i,s:i,s:i,s:b,s:i,s:I,s:I,s:I,s:I,s:s?}",
				"id", b, "name", name, "address", addr, "family", be->family,
				"accel", ctl_accel_str(m->accel), "cfg_weight", m->cfg_weight,
				"state", ctl_be_state(be->flags), "flags", "valid",
				!!(be->flags & AIBL_BE_F_VALID), "down",
				!!(be->flags & AIBL_BE_F_DOWN), "draining",
				!!(be->flags & AIBL_BE_F_DRAINING), "overloaded",
				!!(be->flags & AIBL_BE_F_OVERLOADED), "active",
				(json_int_t)s.load[b].active, "conns", (json_int_t)conns[b], "cost",
				s.cost[b].cost, "free", s.cost[b].free, "per_flow",
				s.cost[b].per_flow, "prefill_ms", s.cost[b].prefill_ms, "slower",
				!!(s.cost[b].flags & AIBL_COST_F_SLOWER), "services", nsvc[b],
				"packets", (json_int_t)tr->packets, "bytes", (json_int_t)tr->bytes,
				"new_flows", (json_int_t)tr->new_flows, "pin_hits",
				(json_int_t)tr->pin_hits, "mac", strcmp(mac, "-") ? mac : NULL));
			continue;
		}
		ctl_table__cell(t, "%u", b);
		ctl_table__cell(t, "%s", name);
		ctl_table__cell(t, "%s", addr);
		ctl_table__cell(t, "%s", ctl_accel_str(m->accel));
		ctl_table__cell(t, "%u", m->cfg_weight);
		ctl_table__cell(t, "%s", ctl_be_state(be->flags));
		ctl_table__cell(t, "%lld", (long long)s.load[b].active);
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), conns[b]));
		if (s.cost[b].per_flow && s.cost[b].prefill_ms)
			ctl_table__cell(t, "%u ms, %u free, +%u/flow, +%u/prompt%s", s.cost[b].cost,
					s.cost[b].free, s.cost[b].per_flow, s.cost[b].prefill_ms,
					slower);
		else if (s.cost[b].per_flow)
			ctl_table__cell(t, "%u ms, %u free, +%u/flow%s", s.cost[b].cost,
					s.cost[b].free, s.cost[b].per_flow, slower);
		else
			ctl_table__cell(t, "%u", s.cost[b].cost);
		ctl_table__cell(t, "%u", nsvc[b]);
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), tr->packets));
		ctl_table__cell(t, "%s", ctl_fmt_bytes(b1, sizeof(b1), tr->bytes));
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), tr->new_flows));
		ctl_table__cell(t, "%s", mac);
	}
	if (arr) {
		ret = ctl_json_print(json_pack("{s:o}", "backends", arr));
	} else {
		ctl_table__print(t, stdout);
		ctl_table__free(t);
	}
out:
	free(conns);
	free(nsvc);
	ctl_state__free(&s);
	return ret;
}

int ctl_cmd_backend(int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
	    {"list", backend_list},
	    {NULL, NULL},
	};

	return ctl_dispatch("backend verb", cmds, argc, argv, backend_help);
}

static void table_help(FILE *f)
{
	fprintf(f,
		"Usage: aiblctl table show SERVICE [--slots]\n"
		"\n"
		"Count the slots of the service's active Maglev table half (aibl_ring) per\n"
		"backend and set each backend's slot share against its weight share. With\n"
		"--slots, also print the raw table: the backend of every slot (%u slots).\n"
		"SERVICE is a name or VIP:PORT[/proto].\n",
		AIBL_RING_SIZE);
}

/* the VIP entry as it is now in the map: 0, or -1 when unreadable */
static int vip_half_now(const struct aibl_vip_key *k, struct aibl_vip *v)
{
	struct aibl_map vm = {.fd = -1};
	char err[256];
	int ret = -1;

	if (!aibl_map__open(&vm, ctl.bpffs, AIBL_MAP_VIPS, false, err, sizeof(err)))
		ret = bpf_map_lookup_elem(vm.fd, k, v) ? -1 : 0;
	aibl_map__close(&vm);
	return ret;
}

static int table_show(int argc, char **argv)
{
	static const char *const hdr[] = {"ID",	     "BACKEND", "STATE", "WEIGHT",
					  "WEIGHT%", "SLOTS",	"SLOT%", "DIFF"};
	const char *slots_opt = NULL;
	const struct ctl_opt opts[] = {{"--slots", false, &slots_opt}};
	struct aibl_member_key *mk = NULL;
	struct aibl_member *mv = NULL;
	struct ctl_table *t = NULL;
	json_t *doc = NULL, *bes = NULL;
	__u32 *ring = NULL, *count = NULL;
	__u32 id, n, empty = 0, half;
	struct aibl_map rm = {.fd = -1};
	const struct ctl_vip *v;
	char err[ERRLEN], name[48];
	struct ctl_state s;
	__u64 wsum = 0;
	char *pos[1];
	int npos, ret;
	bool mixed = false;

	if (ctl_is_help(argc, argv))
		return ctl_help(table_help);
	ret = ctl_parse_args(argc, argv, opts, 1, pos, &npos, 1);
	if (ret)
		return ret;
	if (npos != 1)
		return ctl_usage("table show needs a SERVICE");
	ret = ctl_load(&s, 0);
	if (ret)
		return ret;
	if (ctl_find_service(&s, pos[0], &id)) {
		ret = CTL_EXIT_FAIL;
		goto out;
	}
	v = ctl_state__svc_vip(&s, id);
	half = v ? v->val.ring_half & 1 : 0;
	for (__u32 i = 0; i < s.nvips; i++)
		if (s.vips[i].val.svc_id == id && (s.vips[i].val.ring_half & 1) != half)
			mixed = true;
	if (aibl_map__open(&rm, ctl.bpffs, AIBL_MAP_RING, true, err, sizeof(err))) {
		ret = ctl_fail("%s", err);
		goto out;
	}
	ring = calloc(AIBL_RING_SIZE, sizeof(*ring));
	count = calloc(s.nbe + 1, sizeof(*count));
	mk = calloc(s.nmembers + 1, sizeof(*mk));
	mv = calloc(s.nmembers + 1, sizeof(*mv));
	if (!ring || !count || !mk || !mv) {
		ret = ctl_fail("out of memory");
		goto out;
	}
	if (((__u64)id * 2 + 2) * AIBL_RING_SIZE > rm.max_entries) {
		ret = ctl_fail("map %s has %u entries, too few for service id %u", AIBL_MAP_RING,
			       rm.max_entries, id);
		goto out;
	}
	for (int tries = 0;; tries++) {
		struct aibl_vip now;

		ret = aibl_map__read_array(&rm, AIBL_RING_INDEX(id, half, 0), AIBL_RING_SIZE, ring);
		if (ret) {
			ret = ctl_fail("map %s: read failed: %s", AIBL_MAP_RING, strerror(-ret));
			goto out;
		}
		/* aibld flipped to the other half while it was read: the half
		 * read is the one it rewrites next, read the new one */
		if (!v || tries == 2 || vip_half_now(&v->key, &now) || (now.ring_half & 1) == half)
			break;
		half = now.ring_half & 1;
	}
	for (__u32 i = 0; i < AIBL_RING_SIZE; i++) {
		if (ring[i] < s.nbe)
			count[ring[i]]++;
		else
			empty++;
	}
	n = svc_members(&s, id, mk, mv);
	for (__u32 i = 0; i < n; i++)
		wsum += mv[i].weight;
	ctl_state__svc_name(&s, id, name, sizeof(name));
	if (ctl.json) {
		bes = json_array();
		doc = json_pack("{s:i,s:s,s:i,s:i,s:b,s:i,s:i,s:o}", "id", id, "name", name,
				"ring_size", AIBL_RING_SIZE, "ring_half", half, "halves_agree",
				!mixed, "generation", id < s.nsvc ? s.svc_meta[id].generation : 0,
				"empty_slots", empty, "backends", bes);
		if (!doc) {
			ret = ctl_fail("table %s: cannot write it as JSON", argv[0]);
			goto out;
		}
	} else {
		printf("service %s: table generation %u, active half %u, %u slots, %u empty\n",
		       name, id < s.nsvc ? s.svc_meta[id].generation : 0, half, AIBL_RING_SIZE,
		       empty);
		if (mixed)
			printf("warning: the service's VIP entries disagree on the active half "
			       "(a table flip in progress?)\n");
		t = ctl_table__new(8, hdr, "rllrrrrr");
	}
	/* members first (sorted by id), then backends in the table without membership */
	for (__u32 pass = 0; pass < 2; pass++) {
		for (__u32 i = 0; i < (pass ? s.nbe : n); i++) {
			__u32 b = pass ? i : mk[i].backend;
			__u32 w = pass ? 0 : mv[i].weight;
			double ws = wsum ? (double)w / wsum : 0.0;
			double ss = b < s.nbe ? (double)count[b] / AIBL_RING_SIZE : 0.0;
			__u32 slots = b < s.nbe ? count[b] : 0;
			char bn[48], b1[32], b2[32];
			bool member = !pass;

			if (pass) {
				bool seen = false;

				for (__u32 k = 0; k < n; k++)
					seen |= mk[k].backend == b;
				if (seen || !slots)
					continue;
			}
			ctl_state__be_name(&s, b, bn, sizeof(bn));
			if (bes) {
				json_array_append_new(
				    bes,
				    json_pack("{s:i,s:s,s:s,s:b,s:i,s:f,s:i,s:f,s:f}", "id", b,
					      "name", bn, "state",
					      ctl_be_state(b < s.nbe ? s.be[b].flags : 0), "member",
					      member, "weight", w, "weight_share", ws, "slots",
					      slots, "slot_share", ss, "diff", ss - ws));
				continue;
			}
			ctl_table__cell(t, "%u", b);
			ctl_table__cell(t, "%s%s", bn, member ? "" : " (not a member)");
			ctl_table__cell(t, "%s", ctl_be_state(b < s.nbe ? s.be[b].flags : 0));
			ctl_table__cell(t, "%u", w);
			ctl_table__cell(t, "%s", ctl_fmt_pct(b1, sizeof(b1), ws));
			ctl_table__cell(t, "%u", slots);
			ctl_table__cell(t, "%s", ctl_fmt_pct(b2, sizeof(b2), ss));
			/* percentage points; no "-0.00" for a share that is only a hair under */
			ctl_table__cell(t, "%+.2fpp",
					fabs(ss - ws) < 0.00005 ? 0.0 : (ss - ws) * 100.0);
		}
	}
	if (slots_opt) {
		if (doc) {
			json_t *arr = json_array();

			for (__u32 i = 0; i < AIBL_RING_SIZE; i++)
				json_array_append_new(arr, ring[i] == AIBL_NO_BACKEND
							       ? json_null()
							       : json_integer(ring[i]));
			json_object_set_new(doc, "slots", arr);
		}
	}
	if (doc) {
		ret = ctl_json_print(json_pack("{s:o}", "table", doc));
		goto out;
	}
	ctl_table__print(t, stdout);
	if (slots_opt) {
		int w = 4;
		char bn[48];

		for (__u32 b = 0; b < s.nbe; b++)
			if (count[b]) {
				int l = strlen(ctl_state__be_name(&s, b, bn, sizeof(bn)));

				w = l > w ? l : w;
			}
		printf("\nslots of half %u (backend per slot, %u per line):\n", half, 8);
		for (__u32 i = 0; i < AIBL_RING_SIZE; i++) {
			if (i % 8 == 0)
				printf("%6u ", i);
			printf(" %-*s", w,
			       ring[i] == AIBL_NO_BACKEND
				   ? "-"
				   : ctl_state__be_name(&s, ring[i], bn, sizeof(bn)));
			if (i % 8 == 7 || i == AIBL_RING_SIZE - 1)
				putchar('\n');
		}
	}
out:
	aibl_map__close(&rm);
	ctl_table__free(t);
	free(ring);
	free(count);
	free(mk);
	free(mv);
	ctl_state__free(&s);
	return ret;
}

int ctl_cmd_table(int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
	    {"show", table_show},
	    {NULL, NULL},
	};

	return ctl_dispatch("table verb", cmds, argc, argv, table_help);
}
