/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Numeric command-line option values, range-checked, with one message. */
#ifndef AIBL_CLIOPT_H
#define AIBL_CLIOPT_H

/* 0, or -EINVAL after logging "OPT: "S" is not ... in [lo, hi]" */
int cliopt__double(const char *opt, const char *s, double lo, double hi, double *out);
int cliopt__uint(const char *opt, const char *s, unsigned long lo, unsigned long hi,
		 unsigned int *out);

#endif
