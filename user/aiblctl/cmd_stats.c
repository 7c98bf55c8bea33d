// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aiblctl stats: counters, and per-second rates when repeated */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"

#define ERRLEN 512

static const char *const cnt_names[AIBL_CNT__MAX] = {
#define AIBL_X_NAME(n, s, d) s,
    AIBL_COUNTERS(AIBL_X_NAME)
#undef AIBL_X_NAME
};

static const char *const cnt_descs[AIBL_CNT__MAX] = {
#define AIBL_X_DESC(n, s, d) d,
    AIBL_COUNTERS(AIBL_X_DESC)
#undef AIBL_X_DESC
};

static volatile sig_atomic_t stats_stop;

static void stats_sigint(int sig)
{
	stats_stop = 1;
}

static void stats_help(FILE *f)
{
	fprintf(f, "Usage: aiblctl stats [--interval SECS] [--count N]\n"
		   "\n"
		   "The data plane's counters (aibl_stats, summed over CPUs) and each service's\n"
		   "traffic. With --interval, print again every SECS seconds with per-second\n"
		   "rates since the previous sample: a live view (on a terminal the screen is\n"
		   "redrawn), until Ctrl-C or N samples (--count; default 1 without --interval,\n"
		   "unbounded with it; --count alone samples every second). In JSON mode each\n"
		   "sample is one JSON document on one line, --pretty or not.\n");
}

static double rate(__u64 now, __u64 before, double secs)
{
	return secs > 0 && now >= before ? (double)(now - before) / secs : 0.0;
}

/* a value, and its rate since the previous sample when repeating ("-" on the first) */
static void value_cells(struct ctl_table *t, bool rates, bool bytes, __u64 v, const __u64 *pv,
			double secs)
{
	char b[32];

	ctl_table__cell(t, "%s",
			bytes ? ctl_fmt_bytes(b, sizeof(b), v) : ctl_fmt_count(b, sizeof(b), v));
	if (!rates)
		return;
	if (!pv)
		ctl_table__cell(t, "-");
	else if (bytes)
		ctl_table__cell(t, "%s", ctl_fmt_byte_rate(b, sizeof(b), rate(v, *pv, secs)));
	else
		ctl_table__cell(t, "%s", ctl_fmt_rate(b, sizeof(b), rate(v, *pv, secs)));
}

static int stats_print(const struct ctl_state *s, const struct ctl_state *prev, double secs,
		       double interval, unsigned long long sample)
{
	static const char *const chdr[] = {"COUNTER", "VALUE", "RATE", "DESCRIPTION"};
	static const char *const shdr[] = {"SERVICE", "PACKETS",   "PKT/S", "BYTES",
					   "BYTES/S", "NEW FLOWS", "NEW/S", "PIN HITS"};
	struct ctl_table *t;
	char b1[32], name[48];

	if (ctl.json) {
		json_t *cnt = json_object(), *rates = prev ? json_object() : NULL;
		json_t *svcs = json_array();

		for (int i = 0; i < AIBL_CNT__MAX; i++) {
			json_object_set_new(cnt, cnt_names[i], json_integer(s->counters[i]));
			if (rates)
				json_object_set_new(
				    rates, cnt_names[i],
				    json_real(rate(s->counters[i], prev->counters[i], secs)));
		}
		for (__u32 id = 0; id < s->nsvc; id++) {
			const struct aibl_traffic *t = &s->svc_traffic[id];
			json_t *o;

			if (!ctl_state__svc_exists(s, id))
				continue;
			o = json_pack("{s:i,s:s,s:I,s:I,s:I,s:I}", "id", id, "name",
				      ctl_state__svc_name(s, id, name, sizeof(name)), "packets",
				      (json_int_t)t->packets, "bytes", (json_int_t)t->bytes,
				      "new_flows", (json_int_t)t->new_flows, "pin_hits",
				      (json_int_t)t->pin_hits);
			if (prev && id < prev->nsvc) {
				const struct aibl_traffic *p = &prev->svc_traffic[id];

				json_object_set_new(o, "packets_per_s",
						    json_real(rate(t->packets, p->packets, secs)));
				json_object_set_new(o, "bytes_per_s",
						    json_real(rate(t->bytes, p->bytes, secs)));
				json_object_set_new(
				    o, "new_flows_per_s",
				    json_real(rate(t->new_flows, p->new_flows, secs)));
			}
			json_array_append_new(svcs, o);
		}
		/* one sample a line, a stream a reader splits by lines */
		if (interval > 0)
			ctl.pretty = false;
		return ctl_json_print(json_pack("{s:I,s:f,s:o,s:o*,s:o}", "sample",
						(json_int_t)sample, "interval_s", interval,
						"counters", cnt, "rates", rates, "services", svcs));
	}

	if (interval > 0 && isatty(STDOUT_FILENO))
		fputs("\033[H\033[2J", stdout);
	if (interval > 0)
		printf("aibl stats from %s, every %.1fs, sample %llu%s\n\n", ctl.bpffs, interval,
		       sample, prev ? "" : " (rates from the next sample)");
	/* a single sample has no rates: leave the column out rather than fill it with dashes */
	if (interval > 0) {
		t = ctl_table__new(4, chdr, "lrrl");
	} else {
		static const char *const h3[] = {"COUNTER", "VALUE", "DESCRIPTION"};

		t = ctl_table__new(3, h3, "lrl");
	}
	for (int i = 0; i < AIBL_CNT__MAX; i++) {
		ctl_table__cell(t, "%s", cnt_names[i]);
		value_cells(t, interval > 0, false, s->counters[i],
			    prev ? &prev->counters[i] : NULL, secs);
		ctl_table__cell(t, "%s", cnt_descs[i]);
	}
	ctl_table__print(t, stdout);
	ctl_table__free(t);
	putchar('\n');
	if (interval > 0) {
		t = ctl_table__new(8, shdr, "lrrrrrrr");
	} else {
		static const char *const h5[] = {"SERVICE", "PACKETS", "BYTES", "NEW FLOWS",
						 "PIN HITS"};

		t = ctl_table__new(5, h5, "lrrrr");
	}
	for (__u32 id = 0; id < s->nsvc; id++) {
		const struct aibl_traffic *tr = &s->svc_traffic[id];
		const struct aibl_traffic *p =
		    prev && id < prev->nsvc ? &prev->svc_traffic[id] : NULL;

		if (!ctl_state__svc_exists(s, id))
			continue;
		ctl_table__cell(t, "%s", ctl_state__svc_name(s, id, name, sizeof(name)));
		value_cells(t, interval > 0, false, tr->packets, p ? &p->packets : NULL, secs);
		value_cells(t, interval > 0, true, tr->bytes, p ? &p->bytes : NULL, secs);
		value_cells(t, interval > 0, false, tr->new_flows, p ? &p->new_flows : NULL, secs);
		ctl_table__cell(t, "%s", ctl_fmt_count(b1, sizeof(b1), tr->pin_hits));
	}
	ctl_table__print(t, stdout);
	ctl_table__free(t);
	fflush(stdout);
	return 0;
}

int ctl_cmd_stats(int argc, char **argv)
{
	const char *int_opt = NULL, *count_opt = NULL;
	const struct ctl_opt opts[] = {
	    {"--interval", true, &int_opt},
	    {"--count", true, &count_opt},
	};
	struct ctl_state cur, prev;
	unsigned long long count = 1, sample = 0;
	double interval = 0;
	__u64 t_prev = 0;
	char err[ERRLEN];
	char *pos[1];
	int npos, ret;

	if (ctl_is_help(argc, argv))
		return ctl_help(stats_help);
	ret = ctl_parse_args(argc, argv, opts, 2, pos, &npos, 0);
	if (ret)
		return ret;
	if (int_opt && ctl_parse_seconds("--interval", int_opt, &interval))
		return CTL_EXIT_USAGE;
	if (count_opt && ctl_parse_u64("--count", count_opt, 1ULL << 40, &count))
		return CTL_EXIT_USAGE;
	if (count_opt && count == 0)
		return ctl_usage("--count: at least 1 sample");
	if (int_opt && !count_opt)
		count = 0; /* until interrupted */
	if (count_opt && count > 1 && !int_opt)
		interval = 1.0;

	ret = ctl_load(&cur, CTL_LOAD_STATS);
	if (ret)
		return ret;
	memset(&prev, 0, sizeof(prev));
	signal(SIGINT, stats_sigint);
	signal(SIGTERM, stats_sigint);
	for (;;) {
		__u64 now = clock_mono_ns();
		struct timespec ts;

		sample++;
		ret = stats_print(&cur, sample > 1 ? &prev : NULL, (now - t_prev) / 1e9, interval,
				  sample);
		if (ret || (count && sample >= count) || stats_stop)
			break;
		/* keep this sample to compute the next one's rates */
		free(prev.svc_traffic);
		free(prev.be_traffic);
		memcpy(prev.counters, cur.counters, sizeof(cur.counters));
		prev.nsvc = cur.nsvc;
		prev.svc_traffic = malloc((cur.nsvc + 1) * sizeof(*cur.svc_traffic));
		prev.be_traffic = NULL;
		if (!prev.svc_traffic) {
			ret = ctl_fail("out of memory");
			break;
		}
		memcpy(prev.svc_traffic, cur.svc_traffic,
		       (cur.nsvc + 1) * sizeof(*cur.svc_traffic));
		t_prev = now;
		ts.tv_sec = (time_t)interval;
		ts.tv_nsec = (long)((interval - (double)ts.tv_sec) * 1e9);
		while (nanosleep(&ts, &ts) && errno == EINTR && !stats_stop)
			;
		if (stats_stop)
			break;
		/* the services and nodes too, not the counters alone: one added
		 * by a reload meanwhile never showed, a removed one stayed, and
		 * a renamed one (its id kept) kept its old name */
		ctl_state__free(&cur);
		ret = ctl_state__load(&cur, CTL_LOAD_STATS, err, sizeof(err));
		if (ret) {
			ret = ctl_fail("%s", err);
			break;
		}
	}
	free(prev.svc_traffic);
	ctl_state__free(&cur);
	return ret;
}
