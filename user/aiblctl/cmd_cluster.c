// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aiblctl cluster show: an ECMP group's state as one balancer sees it
 * (GET /v1/cluster, docs/cluster.md): the plan, the planner, and every
 * balancer's applied version, digest, and announcing or fenced.
 */
#include <string.h>
#include "ctl.h"

static void cluster_help(FILE *f)
{
	fprintf(f,
		"Usage: aiblctl [--api URL] cluster show\n"
		"\n"
		"Cluster mode (an etcd section in aibld's config): the plan version and digest,\n"
		"the planner, and each balancer of the group with the plan version it applied,\n"
		"the digest of the tables it loaded, and whether it announces its VIPs or is\n"
		"fenced (and why). Needs aibld running (default API %s).\n",
		CTL_DEFAULT_API);
}

static const char *s_of(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s && *s ? s : "-";
}

static int cluster_show(int argc, char **argv)
{
	static const char *const hdr[] = {"BALANCER", "PLAN", "DIGEST", "STATE", "ETCD", "WHY"};
	struct ctl_table *t;
	json_t *doc, *bals, *b;
	size_t i;
	int ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(cluster_help);
	if (argc)
		return ctl_usage("cluster show takes no arguments");
	ret = ctl_api_get("/v1/cluster", &doc);
	if (ret)
		return ret;
	if (ctl.json)
		return ctl_json_print(doc);
	printf("group %s: plan %lld (digest %s) by %s; planner now %s\n", s_of(doc, "prefix"),
	       (long long)json_integer_value(json_object_get(doc, "version")),
	       s_of(doc, "plan_digest"), s_of(doc, "plan_planner"), s_of(doc, "planner"));
	/* not fenced is not announcing: BIRD may not have taken it yet (a
	 * birdc run failed), and the table below says "withdrawn" then too */
	printf("this balancer: %s, %s%s%s\n\n", s_of(doc, "name"),
	       json_is_true(json_object_get(doc, "fenced"))	  ? "fenced"
	       : json_is_true(json_object_get(doc, "announcing")) ? "announcing"
								  : "withdrawn",
	       json_is_true(json_object_get(doc, "fenced")) ? ": " : "",
	       json_is_true(json_object_get(doc, "fenced")) ? s_of(doc, "reason") : "");
	bals = json_object_get(doc, "balancers");
	t = ctl_table__new(6, hdr, "lrllll");
	json_array_foreach(bals, i, b)
	{
		bool same = !strcmp(s_of(b, "digest"), s_of(doc, "plan_digest"));

		ctl_table__cell(t, "%s%s", s_of(b, "name"),
				!strcmp(s_of(b, "name"), s_of(doc, "planner")) ? " (planner)" : "");
		ctl_table__cell(t, "%lld",
				(long long)json_integer_value(json_object_get(b, "version")));
		ctl_table__cell(t, "%s%s", s_of(b, "digest"), same ? "" : " (differs)");
		ctl_table__cell(t, "%s",
				json_is_true(json_object_get(b, "fenced"))	 ? "fenced"
				: json_is_true(json_object_get(b, "announcing")) ? "announcing"
										 : "withdrawn");
		ctl_table__cell(t, "%s",
				json_is_true(json_object_get(b, "etcd_ok")) ? "ok" : "lost");
		ctl_table__cell(t, "%s", s_of(b, "reason"));
	}
	ctl_table__print(t, stdout);
	ctl_table__free(t);
	json_decref(doc);
	return 0;
}

int ctl_cmd_cluster(int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
	    {"show", cluster_show},
	    {NULL, NULL},
	};

	return ctl_dispatch("cluster verb", cmds, argc, argv, cluster_help);
}
