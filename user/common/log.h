/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef AIBL_LOG_H
#define AIBL_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

/* Messages at or below this level go to stderr (default: info). */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Prefix every line with the program name (and a timestamp when set). */
void log_set_ident(const char *ident, bool timestamps);

#include <stdarg.h>
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line: bytes outside printable ASCII (newlines included) and
 * backslashes are escaped (\xNN, \\), so text from the network cannot
 * forge a line. The level filter is the caller's. */
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);
/* the same, newlines kept: for libbpf's multi-line verifier log */
void log_vmsg_multiline(enum log_level lvl, const char *fmt, va_list ap);
/* in escaped the way log lines are, into out (truncated to outlen - 1);
 * returns the length written. For text echoed elsewhere (HTTP answers). */
#include <stddef.h>
size_t log_escape(const char *in, char *out, size_t outlen);

#define pr_err(...)   log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define pr_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define pr_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define pr_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
