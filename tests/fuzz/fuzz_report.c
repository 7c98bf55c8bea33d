// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness: agent_report__parse(), which the controller runs on
 * every agent's answer (network input, possibly hostile). Checks beyond the
 * sanitizers: refusals carry a message and leave the report empty; an
 * accepted report respects every schema limit, and serialising it gives a
 * body that parses again to the same counts (what the agent sends, the
 * controller reads). The same bytes go to agent_report__parse_open(), the
 * agent's reading of a balancer's X-Aibl-Open-Flows: what it accepts is a
 * count in range and a model name without spaces. The decap program's
 * counters (optional) survive the round trip, each a count or unknown.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "report.h"

static void check_limits(const struct agent_report *r)
{
	if (r->ngpus < 0 || r->ngpus > AR_MAX_GPUS || r->nservers < 0 ||
	    r->nservers > AR_MAX_SERVERS || r->nmodels < 0 || r->nmodels > AR_MAX_MODELS ||
	    r->nhints < 0 || r->nhints > AR_MAX_HINTS || (r->nhints && !r->hints))
		abort();
	if (!memchr(r->node, '\0', sizeof(r->node)) || !r->node[0])
		abort();
	for (int i = 0; i < r->nmodels; i++)
		if (!memchr(r->models[i].name, '\0', sizeof(r->models[i].name)) ||
		    (r->models[i].unloading && r->models[i].resident))
			abort();
	for (int i = 0; i < r->nhints; i++)
		if ((r->hints[i].client_family != AIBL_AF_INET &&
		     r->hints[i].client_family != AIBL_AF_INET6) ||
		    (r->hints[i].vip_family != AIBL_AF_NONE &&
		     r->hints[i].vip_family != AIBL_AF_INET &&
		     r->hints[i].vip_family != AIBL_AF_INET6))
			abort();
	if (!memchr(r->decap_if, '\0', sizeof(r->decap_if)))
		abort();
	for (int i = 0; i < AIBL_NCNT__MAX; i++)
		if (r->decap_counters[i] < -1 || (!r->decap && r->decap_counters[i] != -1))
			abort();
}

/* a header value is a C string: the bytes up to the first NUL */
static void check_open(const uint8_t *data, size_t size)
{
	char v[512], model[AR_MODEL_LEN];
	size_t n = size < sizeof(v) - 1 ? size : sizeof(v) - 1;
	long count = -1;

	memcpy(v, data, n);
	v[n] = '\0';
	if (agent_report__parse_open(v, &count, model, sizeof(model)))
		return;
	if (count < 0 || count > AR_OPEN_MAX || !memchr(model, '\0', sizeof(model)) ||
	    strchr(model, ' '))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_report r, again;
	char err[256];
	char *js;
	int ret;

	check_open(data, size);
	memset(err, 'x', sizeof(err));
	ret = agent_report__parse((const char *)data, size, &r, err, sizeof(err));
	if (ret) {
		if (ret != -EINVAL && ret != -E2BIG && ret != -EPROTO && ret != -ENOMEM)
			abort();
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		if (r.nhints || r.hints || r.ngpus || r.nmodels || r.nservers || r.decap)
			abort(); /* "on failure r is left initialised and empty" */
		agent_report__free(&r);
		return 0;
	}
	check_limits(&r);
	js = agent_report__to_json(&r);
	if (!js)
		abort();
	if (agent_report__parse(js, strlen(js), &again, err, sizeof(err)) != 0)
		abort(); /* what we would send, we must read back */
	if (again.ngpus != r.ngpus || again.nservers != r.nservers || again.nmodels != r.nmodels ||
	    again.nhints != r.nhints || strcmp(again.node, r.node) != 0 || again.decap != r.decap ||
	    memcmp(again.decap_counters, r.decap_counters, sizeof(r.decap_counters)))
		abort();
	agent_report__free(&again);
	free(js);
	agent_report__free(&r);
	return 0;
}
