// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/*
 * Messages carry text from the network (URLs, node names in reports, error
 * strings of peers): a newline there would forge a log line, an escape
 * sequence would reach the terminal. Every byte outside printable ASCII is
 * written as \xNN; multiline keeps newlines (libbpf's verifier log).
 */
static void log_put_escaped(const char *s, size_t n, bool multiline)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch >= 0x20 && ch < 0x7f && ch != '\\') ||
		    (multiline && (ch == '\n' || ch == '\t')))
			fputc(ch, stderr);
		else if (ch == '\\')
			fputs("\\\\", stderr);
		else
			fprintf(stderr, "\\x%02x", ch);
	}
}

size_t log_escape(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	if (!outlen)
		return 0;
	for (; in && *in; in++) {
		unsigned char ch = (unsigned char)*in;
		char tmp[5];
		size_t k;

		if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
			tmp[0] = ch;
			k = 1;
		} else if (ch == '\\') {
			memcpy(tmp, "\\\\", 2);
			k = 2;
		} else {
			snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
			k = 4;
		}
		if (o + k >= outlen)
			break;
		memcpy(out + o, tmp, k);
		o += k;
	}
	out[o] = 0;
	return o;
}

static void log_vmsg_esc(enum log_level lvl, bool multiline, const char *fmt, va_list ap)
{
	char ts[32] = "", stackbuf[1024], *buf = stackbuf;
	va_list ap2;
	int n;

	if (log_ts) {
		struct timespec now;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		snprintf(ts, sizeof(ts), "%02d:%02d:%02d.%03ld ", tm.tm_hour, tm.tm_min, tm.tm_sec,
			 now.tv_nsec / 1000000);
	}
	va_copy(ap2, ap);
	n = vsnprintf(stackbuf, sizeof(stackbuf), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(stackbuf)) {
		buf = malloc((size_t)n + 1);
		if (!buf) {
			buf = stackbuf;
			n = sizeof(stackbuf) - 1;
		} else {
			vsnprintf(buf, (size_t)n + 1, fmt, ap);
		}
	}
	/* the line's own end is not the message's */
	while (n > 0 && buf[n - 1] == '\n')
		n--;
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s%s%s%s: ", ts, log_ident ? log_ident : "", log_ident ? " " : "",
		lvl_names[lvl]);
	log_put_escaped(buf, (size_t)n, multiline);
	fputc('\n', stderr);
	pthread_mutex_unlock(&log_lock);
	if (buf != stackbuf)
		free(buf);
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	log_vmsg_esc(lvl, false, fmt, ap);
}

void log_vmsg_multiline(enum log_level lvl, const char *fmt, va_list ap)
{
	log_vmsg_esc(lvl, true, fmt, ap);
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
