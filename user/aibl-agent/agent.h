/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * aibl-agent state, shared by its HTTP server (main.c) and its collector
 * thread (collect.c). The collector does everything slow (model server
 * scrapes with timeouts, NVML, the decap map) and publishes results under
 * `lock`; the HTTP side only ever copies them, so a hung model server can
 * never hold up a report. NVML has a thread of its own for the same
 * reason: a driver call that hangs holds up neither scrapes nor hints,
 * and the report names the call once it is past its deadline.
 */
#ifndef AIBL_AGENT_H
#define AIBL_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "clock.h"
#include "auth.h"
#include "hints.h"
#include "nvml.h"
#include "report.h"
#include "scrape.h"

#define AGENT_VERSION	 "aibl-agent 0.1"
#define AGENT_MAX_NOTIFY 8

struct agent_cfg {
	const char *name;
	const char *urls[AR_MAX_SERVERS];
	int nservers;
	unsigned int scrape_interval_ms;
	unsigned int scrape_timeout_ms;
	/* between scrapes, only the model lists, this often (0: not): a change
	 * scrapes at once and tells the controllers in notify[] */
	unsigned int watch_interval_ms;
	const char *notify[AGENT_MAX_NOTIFY]; /* aibld API base URLs */
	int nnotify;
	unsigned int stale_ms; /* a server not scraped for this long is down */
	const char *nvml_lib;  /* NULL: libnvidia-ml.so.1 */
	bool no_nvml;
	const char *accel; /* NULL: from NVML */
	int max_hints;
	double pressure_start, pressure_max_rate;
	unsigned int traffic_window_ms; /* traffic hint lifetime after last packet */
	/* NVML reopened after a failure at this backoff, doubling (0: defaults);
	 * a sample not back by the deadline is reported as hung */
	unsigned int nvml_retry_min_ms, nvml_retry_max_ms, nvml_deadline_ms;
	/* time one short request on each model server while it is idle, once
	 * it is up and again after it restarts (struct ar_server) */
	bool speed_probe;
	/* POST /v1/load: vLLM adapters are loaded from lora_dir/NAME (NULL:
	 * the name alone, for an engine that resolves it); a load may take
	 * this long before the agent gives up on it */
	const char *lora_dir;
	unsigned int load_timeout_ms;
	/* POST /v1/unload: once every balancer polling has a report without
	 * the model, at most drain_timeout_ms for the connections they hold
	 * for it to close (0: not waited for), then drain_ms for the flows
	 * they sent before to arrive */
	unsigned int drain_timeout_ms;
	unsigned int drain_ms;
};

#define AGENT_PROBE_TOKENS     16    /* max_tokens of the speed probe */
#define AGENT_PROBE_TIMEOUT_MS 30000 /* at most; and half of stale_ms */
#define AGENT_PROBE_RETRY_MS   60000 /* after a probe failed */
#define AGENT_INFO_EVERY_MS    60000 /* the engine's info page read again */
#define AGENT_INFO_RETRY_MS    10000 /* after its fetch failed */

#define AGENT_POLLERS	     16	   /* report fetchers remembered (addresses) */
#define AGENT_POLLER_GONE_MS 10000 /* one silent this long no longer polls */
#define AGENT_UNLOAD_HIDE_MS 10000 /* at most, after the engine's unload */

/*
 * A model load asked for through POST /v1/load (the controller's
 * background load), or an unload through POST /v1/unload (an operator's or
 * an autoscaler's): one at a time, on a thread of its own, as a load takes
 * seconds to minutes and must hold up neither scrapes nor reports. The
 * controller learns the outcome from the model lists: the model turns up
 * resident, or it does not.
 *
 * An unload drains first. From the ask on, the reports say the model is
 * not resident on that server (hidden), so the balancers stop sending its
 * requests here; the engine is asked to unload only once every balancer
 * that was polling has fetched such a report, every one of them that
 * counts connections (AR_OPEN_HEADER) has said it holds none of the
 * model's open to this node (or drain_timeout_ms passed), and drain_ms
 * more have passed for the flows they sent before. Unloaded on the engine at once,
 * a request already on its way found the model gone: an engine that loads
 * on demand loaded it again (seconds) and one that does not failed it.
 */
struct agent_load {
	bool busy;   /* the thread runs */
	bool unload; /* this one unloads */
	/* the unload's model is reported not resident on server: from the
	 * ask until the lists show it gone, or the unload failed, or a vLLM
	 * list asked for after the unload's answer holds it (loaded again),
	 * or hide_until_ms (monotonic) passed after the unload */
	bool hidden;
	uint64_t mark_seq; /* the last report built before the ask */
	uint64_t hide_until_ms;
	/* from the ask until the engine is asked: the reports say the model
	 * is unloading (ar_model.unloading) where it is not resident */
	bool draining;
	bool flagged; /* a report said so: the balancers count its connections */
	/* ms the drain waits for those connections at most (the ask's, else
	 * drain_timeout_ms); the most recent sum the balancers stated, -1
	 * none; whether the wait ended by the timeout with some still open */
	unsigned int open_wait_ms;
	long open;
	bool open_timed_out;
	char model[AR_MODEL_LEN];
	char server[AR_URL_LEN];
	char kind[16];
	uint64_t started_ms; /* monotonic */
	uint64_t ended_ms;   /* monotonic, 0 busy */
	/* the last one that ended: the engine's HTTP status (0: no answer)
	 * and why it failed, "" it did not */
	long status;
	char error[160];
};

#define AGENT_NVML_RETRY_MIN_MS 1000
#define AGENT_NVML_RETRY_MAX_MS 60000
#define AGENT_NVML_DEADLINE_MS	5000

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

	/* NVML belongs to the GPU thread once it runs (to collect_once before) */
	struct agent_nvml *nvml;
	bool nvml_ok;
	bool gpus_seen; /* a GPU node stays one while NVML is down or hung */
	char nvml_error[128];
	int ngpus, gpus_omitted, gpus_denied;
	struct ar_gpu gpus[AR_MAX_GPUS];
	unsigned int nvml_backoff_ms; /* 0: NVML fine */
	uint64_t nvml_retry_ms;	      /* reopen not before (monotonic ms) */
	uint64_t nvml_busy_ms;	      /* in an NVML call since, 0 not */
	const char *nvml_busy_call;   /* ... that call, while a->nvml is NULL */
	bool nvml_opened;	      /* NVML opened once (the GPU thread's) */

	struct agent_hints hints;
	int cli_fd; /* aibl_node_cli of the decap program, -1 none */
	uint64_t traffic_polls;
	uint64_t scrapes;

	pthread_t thread;
	bool thread_started;
	pthread_t gpu_thread;
	bool gpu_thread_started;
	bool gpu_thread_stuck; /* did not come back from NVML by agent__stop */

	struct agent_load load;
	pthread_t load_thread;
	bool load_joinable; /* a load thread ran and is not joined yet */
	bool notify_asked;  /* tell the --notify controllers now */

	/* who fetched reports (GET /v1/report), for an unload's drain */
	uint64_t report_seq; /* reports built so far */
	struct agent_poller {
		char addr[48];	  /* numeric, the port left out */
		uint64_t last_ms; /* monotonic */
		uint64_t seq;	  /* the report it got then */
		/* its last AR_OPEN_HEADER that parsed: stated at all (a
		 * balancer that counts connections), the count and the
		 * model ("" none), and the report it had fetched before
		 * (what the count is about) */
		bool counts;
		long open;
		char open_model[AR_MODEL_LEN];
		uint64_t open_seq;
	} pollers[AGENT_POLLERS];
	int npollers;
};

int agent__init(struct agent *a, const struct agent_cfg *cfg, char *msg, size_t msglen);
void agent__fini(struct agent *a);
/* the collector thread: start, one round (tests), stop */
int agent__start(struct agent *a);
void agent__collect_once(struct agent *a);
void agent__stop(struct agent *a);
/* a report of what is known now (never waits on a model server) */
int agent__report(struct agent *a, struct agent_report *r);
/* the same, and *seq: which report it is, for agent__served() */
int agent__report_seq(struct agent *a, struct agent_report *r, uint64_t *seq);
/* report seq went to the client at addr (numeric, no port), whose
 * request had open as its AR_OPEN_HEADER (NULL none) */
void agent__served(struct agent *a, const char *addr, uint64_t seq, const char *open);
/*
 * Start loading model on the model server that lists it (else the first
 * one up whose engine can load: vLLM's runtime adapter API, Ollama).
 * 0 started (*server: which), -EINPROGRESS it is loading already,
 * -EALREADY resident already, -EBUSY another model is loading, -EOPNOTSUPP no server up can load
 * models; msg says why.
 */
int agent__load(struct agent *a, const char *model, char *server, size_t serverlen, char *msg,
		size_t msglen);
/*
 * Drain model, then unload it from the server that has it resident (vLLM's
 * runtime adapter API, Ollama), as struct agent_load says. 0 started
 * (*server: which), -EINPROGRESS it is being unloaded already, -EALREADY
 * not resident on any server up, -EBUSY another load or unload runs,
 * -EOPNOTSUPP its server cannot unload; msg says why. open_wait_ms: how
 * long the drain waits for the balancers' open connections, < 0
 * cfg.drain_timeout_ms.
 */
int agent__unload(struct agent *a, const char *model, long open_wait_ms, char *server,
		  size_t serverlen, char *msg, size_t msglen);
/* what the last load or unload asked is doing (busy) or did */
void agent__load_state(struct agent *a, struct agent_load *out);
/* hints posted to /v1/hints */
void agent__put_hints(struct agent *a, const struct ar_hint *h, int n);

#endif
