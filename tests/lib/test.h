/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Minimal test runner in the spirit of the kernel's test_progs: one binary
 * per suite, a table of cases, ASSERT_* macros that log and return false so
 * a case can `goto out` to its cleanup. Output lines understood by
 * tests/run.sh:  PASS suite/case | FAIL suite/case | SKIP suite/case (why)
 */
#ifndef AIBL_TEST_H
#define AIBL_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

/* state of the running case */
extern const char *test__suite;
extern const char *test__case;
extern int test__case_failed;
extern int test__case_skipped;

void test__fail_msg(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void test__skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs the cases whose name contains argv[1] (all when absent). Returns the
 * process exit code: 0 all passed/skipped, 1 a failure. */
int test__main(int argc, char **argv, const char *suite, const struct test_case *cases, size_t n);
/* true when the process may load BPF programs (root / CAP_BPF) */
bool test__can_bpf(void);

#define TEST_MAIN(suite, cases)                                                                    \
	int main(int argc, char **argv)                                                            \
	{                                                                                          \
		return test__main(argc, argv, suite, cases, sizeof(cases) / sizeof((cases)[0]));   \
	}

#define SKIP(...) test__skip(__VA_ARGS__)

#define ASSERT_TRUE(cond, name)                                                                    \
	({                                                                                         \
		bool ___ok = !!(cond);                                                             \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: unexpected false", name);          \
		___ok;                                                                             \
	})

#define ASSERT_FALSE(cond, name) ASSERT_TRUE(!(cond), name)

#define ASSERT_OK(res, name)                                                                       \
	({                                                                                         \
		long long ___r = (long long)(res);                                                 \
		bool ___ok = ___r == 0;                                                            \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: error %lld (%s)", name, ___r,      \
				       strerror(___r < 0 ? (int)-___r : errno));                   \
		___ok;                                                                             \
	})

#define ASSERT_ERR(res, name)                                                                      \
	({                                                                                         \
		long long ___r = (long long)(res);                                                 \
		bool ___ok = ___r != 0;                                                            \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: unexpected success", name);        \
		___ok;                                                                             \
	})

#define ASSERT_EQ(a, b, name)                                                                      \
	({                                                                                         \
		long long ___a = (long long)(a), ___b = (long long)(b);                            \
		bool ___ok = ___a == ___b;                                                         \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: %lld != %lld", name, ___a, ___b);  \
		___ok;                                                                             \
	})

#define ASSERT_NEQ(a, b, name)                                                                     \
	({                                                                                         \
		long long ___a = (long long)(a), ___b = (long long)(b);                            \
		bool ___ok = ___a != ___b;                                                         \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: both %lld", name, ___a);           \
		___ok;                                                                             \
	})

#define ASSERT_LE(a, b, name)                                                                      \
	({                                                                                         \
		double ___a = (double)(a), ___b = (double)(b);                                     \
		bool ___ok = ___a <= ___b;                                                         \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: %g > %g", name, ___a, ___b);       \
		___ok;                                                                             \
	})

#define ASSERT_GE(a, b, name) ASSERT_LE(b, a, name)

#define ASSERT_STREQ(a, b, name)                                                                   \
	({                                                                                         \
		const char *___a = (a), *___b = (b);                                               \
		bool ___ok = ___a && ___b && strcmp(___a, ___b) == 0;                              \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: \"%s\" != \"%s\"", name,           \
				       ___a ? ___a : "(null)", ___b ? ___b : "(null)");            \
		___ok;                                                                             \
	})

#define ASSERT_MEMEQ(a, b, len, name)                                                              \
	({                                                                                         \
		bool ___ok = memcmp((a), (b), (len)) == 0;                                         \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: %zu bytes differ", name,           \
				       (size_t)(len));                                             \
		___ok;                                                                             \
	})

#define ASSERT_OK_PTR(p, name)                                                                     \
	({                                                                                         \
		const void *___p = (p);                                                            \
		bool ___ok = ___p != NULL;                                                         \
		if (!___ok)                                                                        \
			test__fail_msg(__FILE__, __LINE__, "%s: NULL (%s)", name,                  \
				       strerror(errno));                                           \
		___ok;                                                                             \
	})

#endif /* AIBL_TEST_H */
