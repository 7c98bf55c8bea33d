/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibl-agent state, shared by its HTTP server (main.c) and its collector
 * thread (collect.c). The collector does everything slow (model server
 * scrapes with timeouts, NVML, the decap map) and publishes results under
 * `lock`; the HTTP side only ever copies them, so a hung model server can
 * never hold up a report.
 */
#ifndef AIBL_AGENT_H
#define AIBL_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "auth.h"
#include "hints.h"
#include "nvml.h"
#include "report.h"
#include "scrape.h"

#define AGENT_VERSION "aibl-agent 0.1"

struct agent_cfg {
	const char *name;
	const char *urls[AR_MAX_SERVERS];
	int nservers;
	unsigned int scrape_interval_ms;
	unsigned int scrape_timeout_ms;
	unsigned int stale_ms; /* a server not scraped for this long is down */
	const char *nvml_lib; /* NULL: libnvidia-ml.so.1 */
	bool no_nvml;
	const char *accel; /* NULL: from NVML */
	int max_hints;
	double pressure_start, pressure_max_rate;
	unsigned int traffic_window_ms; /* traffic hint lifetime after last packet */
};

struct agent {
	struct agent_cfg cfg;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	uint64_t start_ms;
	/* traffic seen before this (monotonic ms) says nothing of the caches:
	 * the agent started, or a model server restarted and lost them */
	uint64_t caches_since_ms;

	struct agent_server servers[AR_MAX_SERVERS];

	struct agent_nvml *nvml;
	bool nvml_ok;
	char nvml_error[128];
	int ngpus, gpus_omitted;
	struct ar_gpu gpus[AR_MAX_GPUS];

	struct agent_hints hints;
	int cli_fd; /* aibl_node_cli of the decap program, -1 none */
	uint64_t traffic_polls;
	uint64_t scrapes;

	pthread_t thread;
	bool thread_started;
};

uint64_t agent__mono_ms(void);
int agent__init(struct agent *a, const struct agent_cfg *cfg, char *msg, size_t msglen);
void agent__fini(struct agent *a);
/* the collector thread: start, one round (tests), stop */
int agent__start(struct agent *a);
void agent__collect_once(struct agent *a);
void agent__stop(struct agent *a);
/* a report of what is known now (never waits on a model server) */
int agent__report(struct agent *a, struct agent_report *r);
/* hints posted to /v1/hints */
void agent__put_hints(struct agent *a, const struct ar_hint *h, int n);

#endif
