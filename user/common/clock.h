/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one clock of every aibl program. Durations, deadlines and ages use
 * CLOCK_MONOTONIC: it is the clock bpf_ktime_get_ns() reads, so times the
 * data plane writes into maps (connection and pin ages, rate windows)
 * compare with these. Wall-clock time is only for what leaves the host
 * (report timestamps, logs, result files).
 */
#ifndef AIBL_CLOCK_H
#define AIBL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static inline uint64_t clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000;
}

/* fractional milliseconds, for latency measurements (lab tools) */
static inline double clock_mono_msf(void)
{
	return clock_mono_ns() / 1e6;
}

static inline double clock_wall_msf(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline uint64_t clock_wall_ms(void)
{
	return (uint64_t)clock_wall_msf();
}

#endif /* AIBL_CLOCK_H */
