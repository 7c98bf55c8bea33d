// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include "log.h"

static enum log_level cur_level = LOG_LVL_INFO;
static const char *log_ident;
static bool log_ts;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const lvl_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level lvl)
{
	cur_level = lvl;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_set_ident(const char *ident, bool timestamps)
{
	log_ident = ident;
	log_ts = timestamps;
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char ts[32] = "";
	size_t n = strlen(fmt);

	if (log_ts) {
		struct timespec now;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		snprintf(ts, sizeof(ts), "%02d:%02d:%02d.%03ld ", tm.tm_hour, tm.tm_min, tm.tm_sec,
			 now.tv_nsec / 1000000);
	}
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s%s%s%s: ", ts, log_ident ? log_ident : "", log_ident ? " " : "",
		lvl_names[lvl]);
	vfprintf(stderr, fmt, ap);
	if (n == 0 || fmt[n - 1] != '\n')
		fputc('\n', stderr);
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (lvl > cur_level)
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}
