// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include "cliopt.h"
#include "log.h"

int cliopt__double(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || *end || end == s || !(*out >= lo && *out <= hi)) {
		pr_err("%s: \"%s\" is not a number in [%g, %g]\n", opt, s, lo, hi);
		return -EINVAL;
	}
	return 0;
}

int cliopt__uint(const char *opt, const char *s, unsigned long lo, unsigned long hi,
		 unsigned int *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || v < lo || v > hi) {
		pr_err("%s: \"%s\" is not a whole number in [%lu, %lu]\n", opt, s, lo, hi);
		return -EINVAL;
	}
	*out = v;
	return 0;
}
