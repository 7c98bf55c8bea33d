// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include "test.h"

const char *test__suite;
const char *test__case;
int test__case_failed;
int test__case_skipped;
static char skip_reason[256];

void test__fail_msg(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	test__case_failed = 1;
	fprintf(stdout, "  %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

void test__skip(const char *fmt, ...)
{
	va_list ap;

	test__case_skipped = 1;
	va_start(ap, fmt);
	vsnprintf(skip_reason, sizeof(skip_reason), fmt, ap);
	va_end(ap);
}

bool test__can_bpf(void)
{
	return geteuid() == 0;
}

int test__main(int argc, char **argv, const char *suite, const struct test_case *cases, size_t n)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	test__suite = suite;
	for (size_t i = 0; i < n; i++) {
		if (filter && !strstr(cases[i].name, filter))
			continue;
		test__case = cases[i].name;
		test__case_failed = 0;
		test__case_skipped = 0;
		skip_reason[0] = '\0';
		cases[i].fn();
		if (test__case_failed) {
			printf("FAIL %s/%s\n", suite, cases[i].name);
			failed = 1;
		} else if (test__case_skipped) {
			printf("SKIP %s/%s (%s)\n", suite, cases[i].name, skip_reason);
		} else {
			printf("PASS %s/%s\n", suite, cases[i].name);
		}
	}
	return failed;
}
