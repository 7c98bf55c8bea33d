/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* libbpf glue shared by the programs that load BPF. */
#ifndef AIBL_BPFUTIL_H
#define AIBL_BPFUTIL_H

#include <stdbool.h>
#include <linux/types.h>

/* Route libbpf's own messages through log.h; shown only when verbose. */
void log_setup_libbpf(bool verbose);
/* CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN all effective (or cannot tell)?
 * Used to add a hint to a load that failed with EPERM. */
bool bpf_capable(void);
/* the id of the BPF program open at fd, 0 when it cannot be told */
__u32 bpf_prog_fd_id(int fd);

#endif
