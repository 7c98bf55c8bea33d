// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A stand-in for libnvidia-ml.so.1 where there is no NVIDIA GPU: the NVML
 * entry points aibl-agent uses, with NVML's return codes and versioned
 * structs (nvml.h as of NVML 13). Every call re-reads its controls, so one
 * test can change them between samples. A control comes from the file
 * named by FAKE_NVML_CTL (lines KEY=VALUE, re-read at every call: safe to
 * rewrite while another thread or process calls in), else the environment.
 *
 *   FAKE_NVML_INIT_ERR=N     nvmlInit_v2 returns N (e.g. 9, driver not loaded)
 *   FAKE_NVML_DRIVER=S       "gone": driver unloaded (init and every call 9);
 *                            "mismatch": driver replaced under the library (18)
 *   FAKE_NVML_COUNT=N        devices (default 1)
 *   FAKE_NVML_NAME=S         device name (default "Fake GPU"), " #i" appended
 *   FAKE_NVML_UTIL=a,b,...   GPU utilisation per device (default 0)
 *   FAKE_NVML_MEM_USED_MB=a,b,...  FAKE_NVML_MEM_TOTAL_MB=a,b,... (default 0 / 81920)
 *   FAKE_NVML_MEM_RESERVED_MB=a,b,...  memory the driver sets aside (default
 *                            0), counted as a real driver counts it (below)
 *   FAKE_NVML_TEMP=a,b,...   degrees C (default 40)
 *   FAKE_NVML_POWER_MW=a,b,...  milliwatts (default 100000)
 *   FAKE_NVML_MIG=i:n,...    GPU i in MIG mode with n instances (1..7): its
 *                            utilisation and its instances' are NOT_SUPPORTED,
 *                            instance k has 1/n of the GPU's memory
 *   FAKE_NVML_FAIL=CALL:DEV[=CODE],...  CALL on DEV ("i", or "i/k" for MIG
 *                            instance k of GPU i) returns CODE; default 15
 *                            (GPU is lost), 3 (not supported) for temp,
 *                            tempv and power. CALL: count, handle, name,
 *                            uuid, pci, util, mem, memv2, temp, tempv, power,
 *                            migmode, mighandle
 *   FAKE_NVML_HANG=CALL:DEV  that call blocks while this control says so;
 *                            init and shutdown (nvmlInit_v2, nvmlShutdown)
 *                            take DEV "-"; unloading the library (exit())
 *                            waits for the calls stuck so, 30 s at most
 *                            (fake_fini)
 *
 * Built twice: libfake_nvml.so, and with FAKE_NVML_OLD libfake_nvml_old.so,
 * a driver before nvmlDeviceGetTemperatureV, nvmlDeviceGetMemoryInfo_v2,
 * UUIDs, PCI info v3 and MIG (those symbols absent).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NVML_SUCCESS			     0
#define NVML_ERROR_UNINITIALIZED	     1
#define NVML_ERROR_INVALID_ARGUMENT	     2
#define NVML_ERROR_NOT_SUPPORTED	     3
#define NVML_ERROR_NO_PERMISSION	     4
#define NVML_ERROR_NOT_FOUND		     6
#define NVML_ERROR_INSUFFICIENT_SIZE	     7
#define NVML_ERROR_DRIVER_NOT_LOADED	     9
#define NVML_ERROR_GPU_IS_LOST		     15
#define NVML_ERROR_LIB_RM_VERSION_MISMATCH   18
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25

#define FAKE_MAX     128
#define FAKE_MIG_MAX 7 /* nvmlDeviceGetMaxMigDeviceCount on an H100 */

typedef struct fake_dev *nvmlDevice_t;
struct fake_dev {
	unsigned int index;
	int mig; /* -1 the GPU, else its MIG instance */
};
typedef struct {
	unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
	unsigned int version;
	unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
	unsigned int version;
	int sensorType;
	int temperature;
} nvmlTemperature_v1_t;
typedef struct {
	char busIdLegacy[16];
	unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
	char busId[32];
} nvmlPciInfo_t;

static struct fake_dev devs[FAKE_MAX];
static int initialised;

/* a control's value: the control file's line, else the environment */
static const char *ctl(const char *var)
{
	static __thread char val[512];
	const char *path = getenv("FAKE_NVML_CTL");
	size_t n = strlen(var);
	char line[600];
	FILE *f;

	if (!path)
		return getenv(var);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, var, n) || line[n] != '=')
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(val, sizeof(val), "%s", line + n + 1);
		fclose(f);
		return val;
	}
	fclose(f);
	return NULL;
}

static unsigned long long list_at(const char *var, unsigned int i, unsigned long long dflt)
{
	const char *s = ctl(var);
	unsigned long long v = dflt;

	for (unsigned int k = 0; s && *s; k++) {
		char *end;
		unsigned long long x = strtoull(s, &end, 10);

		if (end == s)
			break;
		v = x; /* a short list repeats its last value */
		if (k == i)
			return x;
		s = *end == ',' ? end + 1 : end;
		if (!*end)
			break;
	}
	return v;
}

/* "i" or "i/k" for a device */
static void dev_id(const struct fake_dev *d, char *out, size_t len)
{
	if (d->mig < 0)
		snprintf(out, len, "%u", d->index);
	else
		snprintf(out, len, "%u/%d", d->index, d->mig);
}

/* the entry "CALL:DEV[=CODE]" of control var matching call and dev */
static const char *entry(const char *var, const char *call, const char *dev)
{
	const char *s = ctl(var);
	size_t nc = strlen(call), nd = strlen(dev);

	while (s && *s) {
		if (!strncmp(s, call, nc) && s[nc] == ':' && !strncmp(s + nc + 1, dev, nd) &&
		    (s[nc + 1 + nd] == '=' || s[nc + 1 + nd] == ',' || !s[nc + 1 + nd]))
			return s + nc + 1 + nd;
		s = strchr(s, ',');
		s = s ? s + 1 : NULL;
	}
	return NULL;
}

/* calls now stuck in hang() */
static int hanging;

/* a driver stuck in call: blocks while FAKE_NVML_HANG names it */
static void hang(const char *call, const char *dev)
{
	__atomic_fetch_add(&hanging, 1, __ATOMIC_SEQ_CST);
	while (entry("FAKE_NVML_HANG", call, dev)) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	__atomic_fetch_sub(&hanging, 1, __ATOMIC_SEQ_CST);
}

/*
 * The library unloaded (exit(), dlclose()) while a call is stuck inside:
 * like a driver whose teardown takes the lock that call holds, it waits
 * for the call, so a process that exits normally with a thread stuck in
 * the driver does not end. Here for 30 s at most: a test that failed with
 * a thread left stuck still ends, and reports.
 */
__attribute__((destructor)) static void fake_fini(void)
{
	for (int i = 0; i < 3000 && __atomic_load_n(&hanging, __ATOMIC_SEQ_CST); i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
}

/* What the driver says before the call does anything: not initialised,
 * gone, replaced, a hang, a failure set by the test. 0: go on. */
static int gate(const char *call, const struct fake_dev *d, int dflt_fail)
{
	const char *drv, *e;
	char id[32] = "0";

	if (!initialised)
		return NVML_ERROR_UNINITIALIZED;
	drv = ctl("FAKE_NVML_DRIVER");
	if (drv && !strcmp(drv, "gone"))
		return NVML_ERROR_DRIVER_NOT_LOADED;
	if (drv && !strcmp(drv, "mismatch"))
		return NVML_ERROR_LIB_RM_VERSION_MISMATCH;
	if (d)
		dev_id(d, id, sizeof(id));
	hang(call, id);
	e = entry("FAKE_NVML_FAIL", call, id);
	if (e)
		return *e == '=' ? atoi(e + 1) : dflt_fail;
	return 0;
}

static int mig_count(unsigned int i)
{
#ifdef FAKE_NVML_OLD
	const char *s = NULL; /* a driver before MIG */
#else
	const char *s = ctl("FAKE_NVML_MIG");
#endif

	while (s && *s) {
		char *end;
		unsigned long gpu = strtoul(s, &end, 10);

		if (*end == ':' && gpu == i) {
			int n = atoi(end + 1);

			return n < 0 ? 0 : n > FAKE_MIG_MAX ? FAKE_MIG_MAX : n;
		}
		s = strchr(s, ',');
		s = s ? s + 1 : NULL;
	}
	return 0;
}

int nvmlInit_v2(void)
{
	const char *e = ctl("FAKE_NVML_INIT_ERR");
	const char *drv = ctl("FAKE_NVML_DRIVER");

	hang("init", "-");
	if (e && atoi(e))
		return atoi(e);
	if (drv && !strcmp(drv, "gone"))
		return NVML_ERROR_DRIVER_NOT_LOADED;
	if (drv && !strcmp(drv, "mismatch"))
		return NVML_ERROR_LIB_RM_VERSION_MISMATCH;
	initialised++; /* reference counted, as NVML's is */
	return 0;
}

int nvmlShutdown(void)
{
	hang("shutdown", "-");
	if (!initialised)
		return NVML_ERROR_UNINITIALIZED;
	initialised--;
	return 0;
}

const char *nvmlErrorString(int r)
{
	switch (r) {
	case 0:
		return "Success";
	case 1:
		return "Uninitialized";
	case 2:
		return "Invalid Argument";
	case 3:
		return "Not Supported";
	case 4:
		return "Insufficient Permissions";
	case 6:
		return "Not Found";
	case 7:
		return "Insufficient Size";
	case 9:
		return "Driver Not Loaded";
	case 15:
		return "GPU is lost";
	case 18:
		return "RM has detected an NVML/RM version mismatch.";
	case 25:
		return "Argument version mismatch";
	default:
		return "Unknown Error";
	}
}

int nvmlDeviceGetCount_v2(unsigned int *count)
{
	int r = gate("count", NULL, NVML_ERROR_GPU_IS_LOST);

	if (r)
		return r;
	*count = list_at("FAKE_NVML_COUNT", 0, 1);
	if (*count > FAKE_MAX)
		*count = FAKE_MAX;
	return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *dev)
{
	struct fake_dev probe = {.index = i, .mig = -1};
	int r;

	if (!initialised)
		return NVML_ERROR_UNINITIALIZED;
	if (i >= FAKE_MAX || i >= list_at("FAKE_NVML_COUNT", 0, 1))
		return NVML_ERROR_INVALID_ARGUMENT;
	r = gate("handle", &probe, NVML_ERROR_GPU_IS_LOST);
	if (r)
		return r;
	devs[i] = probe;
	*dev = &devs[i];
	return 0;
}

int nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len)
{
	const char *n = ctl("FAKE_NVML_NAME");
	int r = gate("name", d, NVML_ERROR_GPU_IS_LOST), k;

	if (r)
		return r;
	if (d->mig < 0)
		k = snprintf(name, len, "%s #%u", n ? n : "Fake GPU", d->index);
	else
		k = snprintf(name, len, "%s #%u MIG 1g.10gb", n ? n : "Fake GPU", d->index);
	return k >= (int)len ? NVML_ERROR_INSUFFICIENT_SIZE : 0;
}

/* utilisation is not available per MIG instance, nor on a MIG-mode GPU */
int nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u)
{
	int r = gate("util", d, NVML_ERROR_GPU_IS_LOST);

	if (r)
		return r;
	if (d->mig >= 0 || mig_count(d->index))
		return NVML_ERROR_NOT_SUPPORTED;
	u->gpu = list_at("FAKE_NVML_UTIL", d->index, 0);
	u->memory = u->gpu / 2;
	return 0;
}

/*
 * total, what processes allocated, and what the driver set aside. A real
 * driver (580.159.04, NVIDIA H200, 2026-12-04, with pynvml and nvidia-smi
 * -q): idle, nvmlDeviceGetMemoryInfo gave used 615 MiB, free total - 615;
 * nvmlDeviceGetMemoryInfo_v2 used 0, reserved 615, the same free; nvidia-smi
 * "Used 0 MiB, Reserved 616 MiB". With 10 GiB held by PyTorch: v1 used
 * 11,473, v2 used 10,858 and reserved 615. v1's used counts the reserved
 * memory, v2's does not; free is the same.
 */
static void fake_mem(nvmlDevice_t d, unsigned long long *total, unsigned long long *used,
		     unsigned long long *reserved)
{
	int n = d->mig >= 0 ? mig_count(d->index) : 0;

	*total = list_at("FAKE_NVML_MEM_TOTAL_MB", d->index, 81920) << 20;
	*used = list_at("FAKE_NVML_MEM_USED_MB", d->index, 0) << 20;
	*reserved = list_at("FAKE_NVML_MEM_RESERVED_MB", d->index, 0) << 20;
	if (n) {
		*total /= n;
		*used /= n;
		*reserved /= n;
	}
}

int nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
	int r = gate("mem", d, NVML_ERROR_GPU_IS_LOST);
	unsigned long long reserved;

	if (r)
		return r;
	fake_mem(d, &m->total, &m->used, &reserved);
	m->used += reserved;
	m->free = m->total > m->used ? m->total - m->used : 0;
	return 0;
}

/* nvmlDeviceGetTemperature, deprecated in NVML 13 but still exported */
int nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t)
{
	int r = gate("temp", d, NVML_ERROR_NOT_SUPPORTED);

	if (r)
		return r;
	if (sensor != 0 || d->mig >= 0)
		return NVML_ERROR_INVALID_ARGUMENT;
	*t = list_at("FAKE_NVML_TEMP", d->index, 40);
	return 0;
}

int nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw)
{
	int r = gate("power", d, NVML_ERROR_NOT_SUPPORTED);

	if (r)
		return r;
	if (d->mig >= 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*mw = list_at("FAKE_NVML_POWER_MW", d->index, 100000);
	return 0;
}

#ifndef FAKE_NVML_OLD
static struct fake_dev migs[FAKE_MAX][FAKE_MIG_MAX];

int nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m)
{
	int r = gate("memv2", d, NVML_ERROR_GPU_IS_LOST);

	if (!r)
		r = gate("mem", d, NVML_ERROR_GPU_IS_LOST); /* the same reading */
	if (r)
		return r;
	if (m->version != (unsigned int)(sizeof(*m) | 2U << 24))
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	fake_mem(d, &m->total, &m->used, &m->reserved);
	m->free = m->total > m->used + m->reserved ? m->total - m->used - m->reserved : 0;
	return 0;
}

int nvmlDeviceGetTemperatureV(nvmlDevice_t d, nvmlTemperature_v1_t *t)
{
	int r = gate("tempv", d, NVML_ERROR_NOT_SUPPORTED);

	if (r)
		return r;
	if (t->version != (unsigned int)(sizeof(*t) | 1U << 24))
		return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
	if (t->sensorType != 0 || d->mig >= 0)
		return NVML_ERROR_INVALID_ARGUMENT;
	t->temperature = list_at("FAKE_NVML_TEMP", d->index, 40);
	return 0;
}

int nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int len)
{
	int r = gate("uuid", d, NVML_ERROR_GPU_IS_LOST), k;

	if (r)
		return r;
	if (d->mig < 0)
		k = snprintf(uuid, len, "GPU-fa4e0000-0000-4000-8000-%012x", d->index);
	else
		k = snprintf(uuid, len, "MIG-fa4e0000-0000-4000-8000-%08x%04x", d->index, d->mig);
	return k >= (int)len ? NVML_ERROR_INSUFFICIENT_SIZE : 0;
}

int nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p)
{
	int r = gate("pci", d, NVML_ERROR_GPU_IS_LOST);

	if (r)
		return r;
	memset(p, 0, sizeof(*p));
	p->bus = 0x18 + d->index;
	p->pciDeviceId = 0x233010de;
	snprintf(p->busIdLegacy, sizeof(p->busIdLegacy), "0000:%02X:00.0", p->bus);
	snprintf(p->busId, sizeof(p->busId), "00000000:%02X:00.0", p->bus);
	return 0;
}

int nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *cur, unsigned int *pending)
{
	int r = gate("migmode", d, NVML_ERROR_NOT_SUPPORTED);

	if (r)
		return r;
	if (d->mig >= 0)
		return NVML_ERROR_INVALID_ARGUMENT;
	*cur = *pending = mig_count(d->index) > 0;
	return 0;
}

int nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count)
{
	int r = gate("migmax", d, NVML_ERROR_GPU_IS_LOST);

	if (r)
		return r;
	*count = mig_count(d->index) ? FAKE_MIG_MAX : 0;
	return 0;
}

int nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int k, nvmlDevice_t *out)
{
	struct fake_dev probe = {.index = d->index, .mig = k};
	int r;

	if (!initialised)
		return NVML_ERROR_UNINITIALIZED;
	if (d->mig >= 0 || k >= FAKE_MIG_MAX)
		return NVML_ERROR_INVALID_ARGUMENT;
	r = gate("mighandle", &probe, NVML_ERROR_GPU_IS_LOST);
	if (r)
		return r;
	if ((int)k >= mig_count(d->index))
		return NVML_ERROR_NOT_FOUND;
	migs[d->index][k] = probe;
	*out = &migs[d->index][k];
	return 0;
}
#endif
