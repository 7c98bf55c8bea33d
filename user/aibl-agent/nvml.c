// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <dlfcn.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nvml.h"

/* The few NVML types and calls used, as nvml.h declares them (ABI stable
 * since the _v2 entry points; the header itself is not packaged). */
typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
	unsigned int gpu;
	unsigned int memory;
} nvmlUtilization_t;
typedef struct {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
} nvmlMemory_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_TEMPERATURE_GPU 0
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96

struct agent_nvml {
	void *lib;
	nvmlReturn_t (*init)(void);
	nvmlReturn_t (*shutdown)(void);
	const char *(*error_string)(nvmlReturn_t);
	nvmlReturn_t (*count)(unsigned int *);
	nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t *);
	nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t *);
	nvmlReturn_t (*mem)(nvmlDevice_t, nvmlMemory_t *);
	nvmlReturn_t (*temp)(nvmlDevice_t, int, unsigned int *);
	nvmlReturn_t (*power)(nvmlDevice_t, unsigned int *);
};

static const char *nv_err(const struct agent_nvml *nv, nvmlReturn_t r)
{
	const char *s = nv->error_string ? nv->error_string(r) : NULL;

	return s ? s : "unknown NVML error";
}

int agent_nvml__open(const char *path, struct agent_nvml **out, char *msg, size_t msglen)
{
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define SYM(n, f) { n, offsetof(struct agent_nvml, f) }
		SYM("nvmlInit_v2", init),
		SYM("nvmlShutdown", shutdown),
		SYM("nvmlErrorString", error_string),
		SYM("nvmlDeviceGetCount_v2", count),
		SYM("nvmlDeviceGetHandleByIndex_v2", handle),
		SYM("nvmlDeviceGetName", name),
		SYM("nvmlDeviceGetUtilizationRates", util),
		SYM("nvmlDeviceGetMemoryInfo", mem),
		SYM("nvmlDeviceGetTemperature", temp),
		SYM("nvmlDeviceGetPowerUsage", power),
#undef SYM
	};
	struct agent_nvml *nv;
	nvmlReturn_t r;
	int err = 0;

	*out = NULL;
	if (!path)
		path = "libnvidia-ml.so.1";
	nv = calloc(1, sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!nv->lib) {
		snprintf(msg, msglen, "NVML not available: %s", dlerror());
		err = -ENOENT;
		goto out;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *f = dlsym(nv->lib, syms[i].name);

		if (!f) {
			snprintf(msg, msglen, "%s: no symbol %s", path, syms[i].name);
			err = -ENOENT;
			goto out;
		}
		memcpy((char *)nv + syms[i].off, &f, sizeof(f));
	}
	r = nv->init();
	if (r != NVML_SUCCESS) {
		snprintf(msg, msglen, "nvmlInit_v2: %s", nv_err(nv, r));
		err = -EIO;
		goto out;
	}
out:
	if (err) {
		if (nv->lib)
			dlclose(nv->lib);
		free(nv);
		return err;
	}
	*out = nv;
	return 0;
}

int agent_nvml__sample(struct agent_nvml *nv, struct ar_gpu *gpus, int *n, char *msg,
		       size_t msglen)
{
	unsigned int count = 0, temp = 0, mw = 0;
	nvmlUtilization_t util;
	nvmlDevice_t dev;
	nvmlMemory_t mem;
	nvmlReturn_t r;

	*n = 0;
	r = nv->count(&count);
	if (r != NVML_SUCCESS) {
		snprintf(msg, msglen, "nvmlDeviceGetCount_v2: %s", nv_err(nv, r));
		return -EIO;
	}
	if (count > AR_MAX_GPUS)
		count = AR_MAX_GPUS; /* the report's limit; more is not a GPU node we know */
	for (unsigned int i = 0; i < count; i++) {
		struct ar_gpu *g = &gpus[i];
		char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = "";

		memset(g, 0, sizeof(*g));
		g->index = i;
		r = nv->handle(i, &dev);
		if (r != NVML_SUCCESS) {
			snprintf(msg, msglen, "nvmlDeviceGetHandleByIndex_v2(%u): %s", i, nv_err(nv, r));
			return -EIO;
		}
		/* utilisation and memory are what steering needs: their failure
		 * (a GPU fallen off the bus) fails the sample */
		r = nv->util(dev, &util);
		if (r != NVML_SUCCESS) {
			snprintf(msg, msglen, "nvmlDeviceGetUtilizationRates(%u): %s", i, nv_err(nv, r));
			return -EIO;
		}
		r = nv->mem(dev, &mem);
		if (r != NVML_SUCCESS) {
			snprintf(msg, msglen, "nvmlDeviceGetMemoryInfo(%u): %s", i, nv_err(nv, r));
			return -EIO;
		}
		g->util_pct = util.gpu > 100 ? 100 : util.gpu;
		g->mem_total_bytes = mem.total;
		g->mem_used_bytes = mem.used > mem.total ? mem.total : mem.used;
		/* name, temperature and power are informative; boards that do not
		 * support a reading leave it 0 */
		if (nv->name(dev, name, sizeof(name)) == NVML_SUCCESS)
			snprintf(g->name, sizeof(g->name), "%s", name);
		if (nv->temp(dev, NVML_TEMPERATURE_GPU, &temp) == NVML_SUCCESS)
			g->temp_c = temp;
		if (nv->power(dev, &mw) == NVML_SUCCESS)
			g->power_w = mw / 1000.0;
		*n = i + 1;
	}
	return 0;
}

void agent_nvml__close(struct agent_nvml *nv)
{
	if (!nv)
		return;
	nv->shutdown();
	dlclose(nv->lib);
	free(nv);
}
