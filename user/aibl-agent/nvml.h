/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * GPU figures through NVML, loaded at run time with dlopen() so the agent
 * runs (as a CPU node) where no NVIDIA driver is installed.
 */
#ifndef AIBL_AGENT_NVML_H
#define AIBL_AGENT_NVML_H

#include "report.h"

struct agent_nvml;

/* path NULL: "libnvidia-ml.so.1". 0, or -errno with msg saying why
 * (library missing, symbol missing, nvmlInit failing). */
int agent_nvml__open(const char *path, struct agent_nvml **out, char *msg, size_t msglen);
/* Fill gpus[AR_MAX_GPUS]; 0 with *n devices, or -EIO with msg naming the
 * failing call and NVML's error string (a lost GPU, a driver gone). */
int agent_nvml__sample(struct agent_nvml *nv, struct ar_gpu *gpus, int *n, char *msg,
		       size_t msglen);
void agent_nvml__close(struct agent_nvml *nv);

#endif
