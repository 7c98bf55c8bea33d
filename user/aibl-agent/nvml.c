// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <dlfcn.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nvml.h"

/* The NVML types and calls used, as nvml.h declares them (the header is
 * not packaged; the layouts are ABI, versioned structs carry their size). */
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
typedef struct {
	unsigned int version; /* nvmlMemory_v2 */
	unsigned long long total;
	unsigned long long reserved;
	unsigned long long free;
	unsigned long long used; /* reserved not included (nvmlMemory_t's is) */
} nvmlMemory_v2_t;
typedef struct {
	unsigned int version; /* nvmlTemperature_v1 */
	int sensorType;	      /* nvmlTemperatureSensors_t */
	int temperature;
} nvmlTemperature_v1_t;
typedef struct {
	char busIdLegacy[16];
	unsigned int domain;
	unsigned int bus;
	unsigned int device;
	unsigned int pciDeviceId;
	unsigned int pciSubSystemId;
	char busId[32];
} nvmlPciInfo_t;

/* NVML_STRUCT_VERSION(data, ver) */
#define NV_STRUCT_VERSION(t, ver) ((unsigned int)(sizeof(t) | ((ver) << 24U)))

#define NVML_SUCCESS			     0
#define NVML_ERROR_UNINITIALIZED	     1
#define NVML_ERROR_NOT_SUPPORTED	     3
#define NVML_ERROR_NO_PERMISSION	     4
#define NVML_ERROR_NOT_FOUND		     6
#define NVML_ERROR_DRIVER_NOT_LOADED	     9
#define NVML_ERROR_LIBRARY_NOT_FOUND	     12
#define NVML_ERROR_FUNCTION_NOT_FOUND	     13
#define NVML_ERROR_GPU_IS_LOST		     15
#define NVML_ERROR_RESET_REQUIRED	     16
#define NVML_ERROR_LIB_RM_VERSION_MISMATCH   18
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_TEMPERATURE_GPU		     0
#define NVML_DEVICE_MIG_ENABLE		     1
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE	     96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE	     96

struct agent_nvml {
	void *lib;
	bool inited;
	const char *busy; /* __atomic: the call in progress */
	/* required */
	nvmlReturn_t (*init)(void);
	nvmlReturn_t (*shutdown)(void);
	nvmlReturn_t (*count)(unsigned int *);
	nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t *);
	/* optional: NULL reads as NVML_ERROR_FUNCTION_NOT_FOUND */
	const char *(*error_string)(nvmlReturn_t);
	nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*pci)(nvmlDevice_t, nvmlPciInfo_t *);
	nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t *);
	nvmlReturn_t (*mem_v2)(nvmlDevice_t, nvmlMemory_v2_t *);
	nvmlReturn_t (*mem)(nvmlDevice_t, nvmlMemory_t *);
	nvmlReturn_t (*temp_v)(nvmlDevice_t, nvmlTemperature_v1_t *);
	nvmlReturn_t (*temp)(nvmlDevice_t, int, unsigned int *); /* deprecated in NVML 13 */
	nvmlReturn_t (*power)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*mig_mode)(nvmlDevice_t, unsigned int *, unsigned int *);
	nvmlReturn_t (*mig_max)(nvmlDevice_t, unsigned int *);
	nvmlReturn_t (*mig_handle)(nvmlDevice_t, unsigned int, nvmlDevice_t *);
};

static const struct {
	const char *name;
	size_t off;
	bool required;
} nv_syms[] = {
#define SYM(n, f, req)                                                                             \
	{                                                                                          \
		n, offsetof(struct agent_nvml, f), req                                             \
	}
    SYM("nvmlInit_v2", init, true),
    SYM("nvmlShutdown", shutdown, true),
    SYM("nvmlDeviceGetCount_v2", count, true),
    SYM("nvmlDeviceGetHandleByIndex_v2", handle, true),
    SYM("nvmlErrorString", error_string, false),
    SYM("nvmlDeviceGetName", name, false),
    SYM("nvmlDeviceGetUUID", uuid, false),
    SYM("nvmlDeviceGetPciInfo_v3", pci, false),
    SYM("nvmlDeviceGetUtilizationRates", util, false),
    SYM("nvmlDeviceGetMemoryInfo_v2", mem_v2, false),
    SYM("nvmlDeviceGetMemoryInfo", mem, false),
    SYM("nvmlDeviceGetTemperatureV", temp_v, false),
    SYM("nvmlDeviceGetTemperature", temp, false),
    SYM("nvmlDeviceGetPowerUsage", power, false),
    SYM("nvmlDeviceGetMigMode", mig_mode, false),
    SYM("nvmlDeviceGetMaxMigDeviceCount", mig_max, false),
    SYM("nvmlDeviceGetMigDeviceHandleByIndex", mig_handle, false),
#undef SYM
};

static const char *nv_err(const struct agent_nvml *nv, nvmlReturn_t r)
{
	const char *s;

	if (r == NVML_ERROR_FUNCTION_NOT_FOUND)
		return "Function Not Found"; /* also our missing symbol */
	s = nv->error_string ? nv->error_string(r) : NULL;
	return s ? s : "unknown NVML error";
}

/* NVML as a whole is unusable: reopening it is the only way back */
static bool nv_fatal(nvmlReturn_t r)
{
	return r == NVML_ERROR_UNINITIALIZED || r == NVML_ERROR_DRIVER_NOT_LOADED ||
	       r == NVML_ERROR_LIBRARY_NOT_FOUND || r == NVML_ERROR_LIB_RM_VERSION_MISMATCH;
}

static nvmlReturn_t nv_leave(struct agent_nvml *nv, nvmlReturn_t r)
{
	__atomic_store_n(&nv->busy, NULL, __ATOMIC_RELEASE);
	return r;
}

/* Call an NVML function (sym names it for the watchdog); a symbol the
 * library lacks answers FUNCTION_NOT_FOUND like NVML's own stubs do. */
#define NV_CALL(nv, f, sym, ...)                                                                   \
	(!(nv)->f ? NVML_ERROR_FUNCTION_NOT_FOUND                                                  \
		  : (__atomic_store_n(&(nv)->busy, sym, __ATOMIC_RELEASE),                         \
		     nv_leave(nv, (nv)->f(__VA_ARGS__))))

const char *agent_nvml__busy(const struct agent_nvml *nv)
{
	return nv ? __atomic_load_n(&nv->busy, __ATOMIC_ACQUIRE) : NULL;
}

int agent_nvml__open(const char *path, struct agent_nvml **out, char *msg, size_t msglen)
{
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
	for (size_t i = 0; i < sizeof(nv_syms) / sizeof(nv_syms[0]); i++) {
		void *f = dlsym(nv->lib, nv_syms[i].name);

		if (!f && nv_syms[i].required) {
			snprintf(msg, msglen, "%s: no symbol %s", path, nv_syms[i].name);
			err = -ENOENT;
			goto out;
		}
		memcpy((char *)nv + nv_syms[i].off, &f, sizeof(f));
	}
	r = NV_CALL(nv, init, "nvmlInit_v2");
	if (r != NVML_SUCCESS) {
		snprintf(msg, msglen, "nvmlInit_v2: %s", nv_err(nv, r));
		err = -EIO;
		goto out;
	}
	nv->inited = true;
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

struct nv_round {
	struct agent_nvml *nv;
	nvmlReturn_t fatal; /* NVML gone mid-sample */
	char fatal_msg[128];
};

/* Record a failed figure in g->error ("util: Not Supported; ..."); true
 * when the call succeeded. */
static bool nv_ok(struct nv_round *rd, struct ar_gpu *g, const char *what, const char *sym,
		  nvmlReturn_t r)
{
	size_t len = strlen(g->error);

	if (r == NVML_SUCCESS)
		return true;
	/* the one GPU is gone, not NVML: the others are still read */
	if (r == NVML_ERROR_GPU_IS_LOST || r == NVML_ERROR_RESET_REQUIRED)
		g->lost = true;
	if (nv_fatal(r) && !rd->fatal) {
		rd->fatal = r;
		snprintf(rd->fatal_msg, sizeof(rd->fatal_msg), "%s(%d): %s", sym, g->index,
			 nv_err(rd->nv, r));
	}
	if (len < sizeof(g->error) - 1)
		snprintf(g->error + len, sizeof(g->error) - len, "%s%s: %s", len ? "; " : "", what,
			 nv_err(rd->nv, r));
	return false;
}

static void nv_unknown(struct ar_gpu *g)
{
	g->util_pct = g->mem_used_bytes = g->mem_total_bytes = g->temp_c = g->power_w = NAN;
}

static void nv_ident(struct nv_round *rd, nvmlDevice_t dev, struct ar_gpu *g)
{
	struct agent_nvml *nv = rd->nv;
	char buf[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = "";
	nvmlPciInfo_t pci;
	nvmlReturn_t r;

	r = NV_CALL(nv, name, "nvmlDeviceGetName", dev, buf, sizeof(buf));
	if (nv_ok(rd, g, "name", "nvmlDeviceGetName", r))
		snprintf(g->name, sizeof(g->name), "%.*s", (int)sizeof(g->name) - 1, buf);
	buf[0] = '\0';
	r = NV_CALL(nv, uuid, "nvmlDeviceGetUUID", dev, buf, sizeof(buf));
	/* a UUID that does not fit is no UUID: a cut one would match nothing */
	if (nv_ok(rd, g, "uuid", "nvmlDeviceGetUUID", r) && strlen(buf) < sizeof(g->uuid))
		strcpy(g->uuid, buf);
	if (g->mig)
		return; /* the parent's bus id, copied by the caller */
	memset(&pci, 0, sizeof(pci));
	r = NV_CALL(nv, pci, "nvmlDeviceGetPciInfo_v3", dev, &pci);
	if (nv_ok(rd, g, "pci", "nvmlDeviceGetPciInfo_v3", r) &&
	    strnlen(pci.busId, sizeof(pci.busId)) < sizeof(g->pci_bus_id))
		memcpy(g->pci_bus_id, pci.busId, strnlen(pci.busId, sizeof(pci.busId)) + 1);
}

/*
 * Used: all a new allocation cannot have, total - free. The two structs
 * count the driver's reserved memory apart: on an H200 (driver 580.159.04,
 * 2026-12-04) v1's used was 615 MiB idle, v2's 0 with 615 reserved, and
 * nvidia-smi showed "Used 0 MiB, Reserved 616 MiB". v2's used alone said
 * 615 MiB more was free than was: a model load planned on that would not fit.
 */
static void nv_memory(struct nv_round *rd, nvmlDevice_t dev, struct ar_gpu *g)
{
	struct agent_nvml *nv = rd->nv;
	unsigned long long total, avail;
	nvmlMemory_v2_t m2 = {.version = NV_STRUCT_VERSION(nvmlMemory_v2_t, 2)};
	nvmlMemory_t m1;
	nvmlReturn_t r;

	r = NV_CALL(nv, mem_v2, "nvmlDeviceGetMemoryInfo_v2", dev, &m2);
	if (r == NVML_SUCCESS) {
		total = m2.total;
		avail = m2.free;
	} else if (r == NVML_ERROR_FUNCTION_NOT_FOUND ||
		   r == NVML_ERROR_ARGUMENT_VERSION_MISMATCH) {
		/* a driver older than the v2 struct */
		r = NV_CALL(nv, mem, "nvmlDeviceGetMemoryInfo", dev, &m1);
		if (!nv_ok(rd, g, "mem", "nvmlDeviceGetMemoryInfo", r))
			return;
		total = m1.total;
		avail = m1.free;
	} else {
		nv_ok(rd, g, "mem", "nvmlDeviceGetMemoryInfo_v2", r);
		return;
	}
	g->mem_total_bytes = total;
	g->mem_used_bytes = avail > total ? 0 : total - avail;
}

static void nv_figures(struct nv_round *rd, nvmlDevice_t dev, struct ar_gpu *g)
{
	struct agent_nvml *nv = rd->nv;
	nvmlTemperature_v1_t tv = {.version = NV_STRUCT_VERSION(nvmlTemperature_v1_t, 1),
				   .sensorType = NVML_TEMPERATURE_GPU};
	unsigned int t = 0, mw = 0;
	nvmlUtilization_t util;
	nvmlReturn_t r;

	/* NOT_SUPPORTED on MIG-enabled GPUs and on MIG instances */
	r = NV_CALL(nv, util, "nvmlDeviceGetUtilizationRates", dev, &util);
	if (nv_ok(rd, g, "util", "nvmlDeviceGetUtilizationRates", r))
		g->util_pct = util.gpu > 100 ? 100 : util.gpu;
	/* NOT_SUPPORTED on unified memory (GH200, GB10); NO_PERMISSION for a
	 * MIG parent read from a container that holds only a slice */
	nv_memory(rd, dev, g);
	if (g->mig)
		return; /* temperature and power are the parent's */
	r = NV_CALL(nv, temp_v, "nvmlDeviceGetTemperatureV", dev, &tv);
	if (r == NVML_SUCCESS) {
		g->temp_c = tv.temperature;
	} else if (r == NVML_ERROR_FUNCTION_NOT_FOUND ||
		   r == NVML_ERROR_ARGUMENT_VERSION_MISMATCH) {
		r = NV_CALL(nv, temp, "nvmlDeviceGetTemperature", dev, NVML_TEMPERATURE_GPU, &t);
		if (nv_ok(rd, g, "temp", "nvmlDeviceGetTemperature", r))
			g->temp_c = t;
	} else {
		nv_ok(rd, g, "temp", "nvmlDeviceGetTemperatureV", r);
	}
	/* vGPU guests have neither temperature nor power */
	r = NV_CALL(nv, power, "nvmlDeviceGetPowerUsage", dev, &mw);
	if (nv_ok(rd, g, "power", "nvmlDeviceGetPowerUsage", r))
		g->power_w = mw / 1000.0;
	/* a faulty sensor's reading is unknown, not a figure: the report's
	 * parser refuses a whole report with one out of range (report.c) */
	if (!(g->temp_c >= -100 && g->temp_c <= 300) && !isnan(g->temp_c)) {
		snprintf(g->error, sizeof(g->error), "temperature %.0f C out of range", g->temp_c);
		g->temp_c = NAN;
	}
	if (!(g->power_w >= 0 && g->power_w <= 1e6) && !isnan(g->power_w)) {
		snprintf(g->error, sizeof(g->error), "power %.0f W out of range", g->power_w);
		g->power_w = NAN;
	}
}

/* the next entry of s, or NULL (counted as omitted) when full */
static struct ar_gpu *nv_entry(struct agent_nvml_sample *s, unsigned int index)
{
	struct ar_gpu *g;

	if (s->n >= AR_MAX_GPUS) {
		s->omitted++;
		return NULL;
	}
	g = &s->gpus[s->n++];
	memset(g, 0, sizeof(*g));
	g->index = index;
	nv_unknown(g);
	return g;
}

/* the MIG instances of a GPU in MIG mode, each with its own memory */
static void nv_migs(struct nv_round *rd, struct agent_nvml_sample *s, nvmlDevice_t dev,
		    struct ar_gpu *parent)
{
	struct agent_nvml *nv = rd->nv;
	unsigned int max = 0;
	nvmlDevice_t mdev;
	nvmlReturn_t r;

	r = NV_CALL(nv, mig_max, "nvmlDeviceGetMaxMigDeviceCount", dev, &max);
	if (!nv_ok(rd, parent, "mig", "nvmlDeviceGetMaxMigDeviceCount", r))
		return;
	for (unsigned int k = 0; k < max && !rd->fatal; k++) {
		struct ar_gpu *g;

		r = NV_CALL(nv, mig_handle, "nvmlDeviceGetMigDeviceHandleByIndex", dev, k, &mdev);
		/* NOT_FOUND: no instance at k; NO_PERMISSION: not this container's */
		if (r == NVML_ERROR_NOT_FOUND || r == NVML_ERROR_NO_PERMISSION)
			continue;
		g = nv_entry(s, parent->index);
		if (!g)
			continue;
		g->mig = true;
		g->mig_index = k;
		memcpy(g->pci_bus_id, parent->pci_bus_id, sizeof(g->pci_bus_id));
		if (!nv_ok(rd, g, "handle", "nvmlDeviceGetMigDeviceHandleByIndex", r))
			continue;
		nv_ident(rd, mdev, g);
		nv_figures(rd, mdev, g);
	}
}

int agent_nvml__sample(struct agent_nvml *nv, struct agent_nvml_sample *s, char *msg, size_t msglen)
{
	struct nv_round rd = {.nv = nv};
	unsigned int count = 0;
	nvmlReturn_t r;

	s->n = s->omitted = s->denied = 0;
	r = NV_CALL(nv, count, "nvmlDeviceGetCount_v2", &count);
	if (r != NVML_SUCCESS) {
		snprintf(msg, msglen, "nvmlDeviceGetCount_v2: %s", nv_err(nv, r));
		return -EIO;
	}
	for (unsigned int i = 0; i < count && !rd.fatal; i++) {
		unsigned int cur = 0, pending = 0;
		nvmlDevice_t dev;
		struct ar_gpu *g;

		r = NV_CALL(nv, handle, "nvmlDeviceGetHandleByIndex_v2", i, &dev);
		/* the count includes GPUs this process may not open (cgroup
		 * device limits); NVML's documentation says to skip them */
		if (r == NVML_ERROR_NO_PERMISSION) {
			s->denied++;
			continue;
		}
		g = nv_entry(s, i);
		if (!g)
			continue;
		if (!nv_ok(&rd, g, "handle", "nvmlDeviceGetHandleByIndex_v2", r))
			continue;
		nv_ident(&rd, dev, g);
		/* mode query unsupported (pre-Ampere, vGPU): no MIG */
		r = NV_CALL(nv, mig_mode, "nvmlDeviceGetMigMode", dev, &cur, &pending);
		if (nv_fatal(r))
			nv_ok(&rd, g, "mig", "nvmlDeviceGetMigMode", r);
		g->mig_enabled = r == NVML_SUCCESS && cur == NVML_DEVICE_MIG_ENABLE;
		nv_figures(&rd, dev, g);
		if (g->mig_enabled && !rd.fatal)
			nv_migs(&rd, s, dev, g);
	}
	if (rd.fatal) {
		snprintf(msg, msglen, "%s", rd.fatal_msg);
		s->n = 0;
		return -EIO;
	}
	return 0;
}

void agent_nvml__close(struct agent_nvml *nv)
{
	if (!nv)
		return;
	if (nv->inited)
		nv->shutdown();
	dlclose(nv->lib);
	free(nv);
}
