/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * GPU figures through NVML, loaded at run time with dlopen() so the agent
 * runs (as a CPU node) where no NVIDIA driver is installed.
 *
 * Only nvmlInit_v2, nvmlShutdown, nvmlDeviceGetCount_v2 and
 * nvmlDeviceGetHandleByIndex_v2 are required; every figure comes from a
 * symbol resolved on its own, so a driver that lacks one (or has
 * deprecated it) loses that figure, not the node.
 */
#ifndef AIBL_AGENT_NVML_H
#define AIBL_AGENT_NVML_H

#include "report.h"

struct agent_nvml;

struct agent_nvml_sample {
	struct ar_gpu gpus[AR_MAX_GPUS]; /* each GPU, then its MIG instances */
	int n;
	int omitted; /* GPUs and MIG instances beyond AR_MAX_GPUS */
	int denied;  /* GPUs NVML refuses (NO_PERMISSION: cgroup device limits), left out */
};

/* path NULL: "libnvidia-ml.so.1". 0, or -errno with msg saying why
 * (-ENOENT library or a required symbol missing, -EIO nvmlInit failing). */
int agent_nvml__open(const char *path, struct agent_nvml **out, char *msg, size_t msglen);
/*
 * Read every GPU and MIG instance. A GPU or figure NVML cannot read is
 * NAN / "" with ar_gpu.error naming the call and NVML's reason; that is
 * still 0. -EIO, msg naming the call, when NVML itself failed (device
 * count refused, driver not loaded, library/driver version mismatch):
 * close it and open it again later.
 */
int agent_nvml__sample(struct agent_nvml *nv, struct agent_nvml_sample *s, char *msg,
		       size_t msglen);
/* The NVML function being called now (NULL none): readable from another
 * thread while agent_nvml__sample runs, to name a call that hangs. */
const char *agent_nvml__busy(const struct agent_nvml *nv);
void agent_nvml__close(struct agent_nvml *nv);

#endif
