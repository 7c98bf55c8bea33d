// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Controller recompute benchmark: the real data plane maps (loaded, not
 * attached, pinned under a private bpffs dir), S services over N nodes,
 * every service listing every node with its own weights, policies mixed,
 * every node reporting load. One measured run = aibld__recompute() with
 * force: every policy evaluated, every table built and written to its
 * inactive half and flipped, members/meta/backends/cost/pins written.
 * Prints the median of the runs, plus the steady-state (nothing changed:
 * tables compared, no write) time and the kernel memory of the maps.
 *
 *   bench_controller [RUNS [SERVICES NODES]]      (root: loads BPF)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "../../user/aibld/aibld.h"
#include "../../user/aibld/maglev.h"
#include "../../user/aibld/dataplane.h"
#include "addr.h"
#include "bpfutil.h"
#include "log.h"

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int make_config(struct config *cfg, int S, int N)
{
	static const int pols[] = {AIBL_POL_AI, AIBL_POL_HASH, AIBL_POL_WRR, AIBL_POL_LEAST_CONN};

	config__defaults(cfg);
	snprintf(cfg->interface, sizeof(cfg->interface), "lo");
	cfg->nodes = calloc(N, sizeof(*cfg->nodes));
	cfg->services = calloc(S, sizeof(*cfg->services));
	if (!cfg->nodes || !cfg->services)
		return -1;
	cfg->nnodes = N;
	cfg->nservices = S;
	for (int i = 0; i < N; i++) {
		struct cfg_node *n = &cfg->nodes[i];

		snprintf(n->name, sizeof(n->name), "node-%04d", i);
		snprintf(n->address.text, sizeof(n->address.text), "10.%d.%d.%d", 1 + i / 65536,
			 (i / 256) % 256, i % 256);
		aibl_addr__parse(n->address.text, &n->address.addr, &n->address.family);
		n->accel = AIBL_ACCEL_GPU;
		n->weight = 50 + (i * 37) % 200;
	}
	for (int s = 0; s < S; s++) {
		struct cfg_service *c = &cfg->services[s];

		snprintf(c->name, sizeof(c->name), "svc-%03d", s);
		snprintf(c->vip.text, sizeof(c->vip.text), "10.200.%d.%d", s / 256, s % 256);
		aibl_addr__parse(c->vip.text, &c->vip.addr, &c->vip.family);
		c->port = 8000;
		c->proto = 6;
		c->accel = -1;
		c->policy = pols[s % 4];
		c->conntrack = true;
		snprintf(c->model, sizeof(c->model), "model-%d", s % 8);
		c->nnodes = N;
		c->nodes = malloc(N * sizeof(int));
		if (!c->nodes)
			return -1;
		for (int k = 0; k < N; k++)
			c->nodes[k] = k;
	}
	return 0;
}

/* every node reports load; each node serves four of the eight models */
static void fake_reports(struct aibld *d, int round)
{
	for (int i = 0; i < d->cfg.nnodes; i++) {
		struct agent_report *r = &d->nodes[i].rep;

		agent_report__init(r);
		snprintf(r->node, sizeof(r->node), "%s", d->nodes[i].name);
		r->nvml = true;
		r->ngpus = 1;
		r->gpus[0].util_pct = (i * 13 + round * 7) % 100;
		r->gpus[0].mem_total_bytes = 80e9;
		r->gpus[0].mem_used_bytes = 80e9 * ((i * 7) % 100) / 100.0;
		r->gpus[0].temp_c = 50 + i % 30;
		r->queue_depth = (i + round) % 20;
		r->in_flight = (i * 3 + round) % 60;
		r->kv_cache_usage = ((i * 11) % 90) / 100.0;
		r->nmodels = 4;
		for (int m = 0; m < 4; m++) {
			snprintf(r->models[m].name, sizeof(r->models[m].name), "model-%d",
				 (i + m * 2) % 8);
			r->models[m].resident = true;
		}
		d->nodes[i].have_rep = true;
	}
}

static int one(int S, int N, int runs, const char *dir, bool print_mem)
{
	struct dp_opts o = {.pin_dir = dir};
	struct aibld d = {};
	struct config cfg;
	struct dp *dp = NULL;
	double *ms = calloc(runs, sizeof(double)), steady, table_ms = 1;
	int err;

	if (!ms || make_config(&cfg, S, N))
		return -1;
	err = dp__open_load(&o, &dp);
	if (err)
		goto out;
	err = aibld__init(&d, &cfg, dp);
	if (err)
		goto out;
	/* every node answered its first poll (aibld polls once before its
	 * first recompute): none pending, every table full */
	for (int i = 0; i < d.nnodes; i++)
		if (d.nodes[i].unchecked)
			nodes__poll_ok(&d, &d.nodes[i], NULL);
	for (int r = 0; r < runs + 1; r++) {
		__u64 t0;

		fake_reports(&d, r);
		t0 = clock_mono_ns();
		err = aibld__recompute(&d, true);
		if (err)
			goto out;
		if (r) /* the first run also pays for page faults of fresh maps */
			ms[r - 1] = (clock_mono_ns() - t0) / 1e6;
	}
	qsort(ms, runs, sizeof(double), dcmp);
	/* reference in the same run: one service's table built alone, single
	 * threaded, S times; the ratio says what policies, writes and the
	 * threads add or save, whatever the machine's load */
	{
		struct maglev_in *mg = calloc(N, sizeof(*mg));
		__u32 *t = malloc(AIBL_RING_SIZE * sizeof(__u32));
		double ref[3];

		for (int k = 0; mg && t && k < 3; k++) {
			__u64 t0;

			for (int i = 0; i < N; i++)
				mg[i] = (struct maglev_in){d.nodes[i].name, d.cfg.nodes[i].weight};
			t0 = clock_mono_ns();
			for (int s = 0; s < S; s++)
				maglev__build(mg, N, d.cfg.hash_seed, t, AIBL_RING_SIZE);
			ref[k] = (clock_mono_ns() - t0) / 1e6;
		}
		qsort(ref, 3, sizeof(double), dcmp);
		table_ms = ref[1];
		free(mg);
		free(t);
	}
	{
		__u64 t0 = clock_mono_ns();

		aibld__recompute(&d, false);
		steady = (clock_mono_ns() - t0) / 1e6;
	}
	printf("controller recompute services=%d nodes=%d ms=%.2f (median of %d; min %.2f max "
	       "%.2f; %.2fx the %.2f ms of %d single-thread table builds; unchanged %.2f ms; "
	       "ring by %s%s)\n",
	       S, N, ms[runs / 2], runs, ms[0], ms[runs - 1], ms[runs / 2] / table_ms, table_ms, S,
	       steady, d.ring_mmap ? "mmap" : "batch update",
	       d.st.member_errors ? "; aibl_members full: S x N > its capacity" : "");
	if (print_mem) {
		static const char *const names[] = {
		    AIBL_MAP_VIPS,   AIBL_MAP_BACKENDS,	 AIBL_MAP_RING,	    AIBL_MAP_COST,
		    AIBL_MAP_LOAD,   AIBL_MAP_CONNS,	 AIBL_MAP_PINS,	    AIBL_MAP_MEMBERS,
		    AIBL_MAP_STATS,  AIBL_MAP_SVC_STATS, AIBL_MAP_BE_STATS, AIBL_MAP_GLOBALS,
		    AIBL_MAP_RR_POS, AIBL_MAP_SVC_META,	 AIBL_MAP_BE_META,
		};
		unsigned long long total = 0, ring = 0;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			char path[64], line[256];
			unsigned long long v;
			FILE *f;

			snprintf(path, sizeof(path), "/proc/self/fdinfo/%d",
				 dp__map_fd(dp, names[i]));
			f = fopen(path, "r");
			while (f && fgets(line, sizeof(line), f))
				if (sscanf(line, "memlock: %llu", &v) == 1) {
					total += v;
					if (!strcmp(names[i], AIBL_MAP_RING))
						ring = v;
				}
			if (f)
				fclose(f);
		}
		printf("controller maps memory bytes=%llu (%.1f MiB; ring %.1f MiB) at default "
		       "sizes: services=%u backends=%u conns=%u pins=%u ring=%u\n",
		       total, total / 1048576.0, ring / 1048576.0, dp->sizes.max_services,
		       dp->sizes.max_backends, dp->sizes.max_conns, dp->sizes.max_pins,
		       AIBL_RING_SIZE);
	}
out:
	if (err)
		fprintf(stderr, "bench: services=%d nodes=%d: %s\n", S, N, strerror(-err));
	if (d.nodes)
		aibld__fini(&d);
	else
		config__free(&cfg);
	dp__close(dp);
	dp__teardown(dir);
	free(ms);
	return err;
}

int main(int argc, char **argv)
{
	static const int svcs[] = {16, 64, 256}, nodes[] = {64, 256, 1024};
	int runs = argc > 1 ? atoi(argv[1]) : 5, err = 0;
	char dir[64];

	log_set_ident("bench", false);
	/* capacity warnings are summarised in the result line */
	log_set_level(LOG_LVL_ERROR);
	log_setup_libbpf(false);
	if (runs < 1)
		runs = 1;
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/aibl-t-ct-bench-%d", getpid());
	if (argc > 3)
		return one(atoi(argv[2]), atoi(argv[3]), runs, dir, false) ? 1 : 0;
	for (int s = 0; s < 3; s++)
		for (int n = 0; n < 3; n++)
			err |= one(svcs[s], nodes[n], runs, dir, s == 2 && n == 2);
	return err ? 1 : 0;
}
