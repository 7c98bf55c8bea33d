// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * What the programs that load BPF (aibld, aibl-agent, aiblctl) share about
 * libbpf, see bpfutil.h. Kept apart from log.c so that tools that load no
 * BPF (the lab's simnode and loadgen) do not link libbpf.
 */
#include <stdbool.h>
#include <stdarg.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpfutil.h"
#include "log.h"

static bool libbpf_verbose;

static int libbpf_print_fn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !libbpf_verbose)
		return 0;
	if (level == LIBBPF_INFO && !libbpf_verbose)
		return 0;
	log_vmsg_multiline(level == LIBBPF_WARN ? LOG_LVL_WARN : LOG_LVL_DEBUG, fmt, ap);
	return 0;
}

void log_setup_libbpf(bool verbose)
{
	libbpf_verbose = verbose;
	libbpf_set_print(libbpf_print_fn);
}

/* CAP_BPF, CAP_PERFMON (the verifier allows packet pointer arithmetic
 * only with it) and CAP_NET_ADMIN (XDP programs) all effective? */
bool bpf_capable(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[2] = {};
	__u64 eff, need = 1ULL << CAP_BPF | 1ULL << CAP_PERFMON | 1ULL << CAP_NET_ADMIN;

	if (syscall(SYS_capget, &h, c))
		return true; /* cannot tell: no hint */
	eff = c[0].effective | (__u64)c[1].effective << 32;
	return (eff & need) == need;
}

__u32 bpf_prog_fd_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return fd >= 0 && !bpf_obj_get_info_by_fd(fd, &info, &len) ? info.id : 0;
}
