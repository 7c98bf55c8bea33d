/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-service policies: which nodes take new flows, with which table
 * weight, and what each node costs the data plane's power-of-two choice.
 * Pure functions of the config and the nodes' latest reports, so every
 * formula is unit-tested; README.md ("Policies") documents them.
 */
#ifndef AIBLD_POLICY_H
#define AIBLD_POLICY_H

#include <stdbool.h>
#include <linux/types.h>
#include "config.h"
#include "report.h"

/* what the controller knows of one node when it computes a service */
struct policy_node {
	const struct cfg_node *cfg;
	bool usable; /* up and not draining */
	bool overloaded; /* AIBL_BE_F_OVERLOADED as last decided */
	const struct agent_report *rep; /* NULL: no agent or no good report yet */
	double ttft_ms; /* smoothed time to first token, < 0 unknown */
	__s64 active; /* data-plane active flows */
};

enum model_state {
	MODEL_ABSENT = 0,
	MODEL_LOADABLE = 1,
	MODEL_RESIDENT = 2,
};

struct policy_out {
	__u32 weight; /* table weight, 0: no new flows */
	bool cold; /* chosen although the model must be loaded first */
};

/* enum aibl_mode the data plane runs for this policy */
__u8 policy__mode(int policy);
enum model_state policy__model_state(const struct policy_node *n, const char *model);
/* combined pressure 0..1 of the ai policy; 0 with nothing reported */
double policy__ai_load(const struct cfg_ai *ai, const struct agent_report *r);
/* bounded load: true when the node should take no new flows while others can */
bool policy__overloaded(const struct cfg_ai *ai, const struct agent_report *r, bool was);
/* p2c cost of a node in units of one active flow, for the given policy */
__u32 policy__cost(const struct config *cfg, int policy, const struct policy_node *n);
/* weights for every node of svc (in[k] is svc->nodes[k]); 0 or -errno */
int policy__weights(const struct config *cfg, const struct cfg_service *svc,
		    const struct policy_node *in, struct policy_out *out);
/* applied weight after hysteresis: keep old unless target moved > pct % */
__u32 policy__hysteresis(__u32 applied, __u32 target, unsigned int pct);
/* smoothed least_time sample */
double policy__ewma(double old, double sample, double alpha);

#endif
