// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A stand-in for libnvidia-ml.so.1 where there is no NVIDIA GPU: the NVML
 * entry points aibl-agent uses, driven by environment variables read at
 * every call so one test process can change them between samples:
 *
 *   FAKE_NVML_INIT_ERR=N     nvmlInit_v2 returns N (e.g. 9, driver not loaded)
 *   FAKE_NVML_COUNT=N        devices (default 1)
 *   FAKE_NVML_NAME=S         device name (default "Fake GPU"), "#i" appended
 *   FAKE_NVML_UTIL=a,b,...   GPU utilisation per device (default 0)
 *   FAKE_NVML_MEM_USED_MB=a,b,...  FAKE_NVML_MEM_TOTAL_MB=a,b,... (default 0 / 81920)
 *   FAKE_NVML_TEMP=a,b,...   degrees C (default 40)
 *   FAKE_NVML_POWER_MW=a,b,...  milliwatts (default 100000)
 *   FAKE_NVML_FAIL=CALL:IDX  CALL (count, handle, util, mem, temp, power) on
 *                            device IDX returns 15 (GPU is lost)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fake_dev *nvmlDevice_t;
struct fake_dev {
	unsigned int index;
};
typedef struct {
	unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;

#define FAKE_MAX 64
static struct fake_dev devs[FAKE_MAX];
static int initialised;

static unsigned long long list_at(const char *var, unsigned int i, unsigned long long dflt)
{
	const char *s = getenv(var);
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

static int fails(const char *call, unsigned int idx)
{
	const char *s = getenv("FAKE_NVML_FAIL");
	size_t n = strlen(call);

	return s && !strncmp(s, call, n) && s[n] == ':' && (unsigned int)atoi(s + n + 1) == idx;
}

int nvmlInit_v2(void)
{
	const char *e = getenv("FAKE_NVML_INIT_ERR");

	if (e && atoi(e))
		return atoi(e);
	initialised++;
	return 0;
}

int nvmlShutdown(void)
{
	if (!initialised)
		return 1; /* uninitialized */
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
	case 3:
		return "Not Supported";
	case 9:
		return "Driver Not Loaded";
	case 15:
		return "GPU is lost";
	default:
		return "Unknown Error";
	}
}

int nvmlDeviceGetCount_v2(unsigned int *count)
{
	if (!initialised)
		return 1;
	if (fails("count", 0))
		return 15;
	*count = list_at("FAKE_NVML_COUNT", 0, 1);
	if (*count > FAKE_MAX)
		*count = FAKE_MAX;
	return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *dev)
{
	if (!initialised)
		return 1;
	if (i >= FAKE_MAX || i >= list_at("FAKE_NVML_COUNT", 0, 1))
		return 2; /* invalid argument */
	if (fails("handle", i))
		return 15;
	devs[i].index = i;
	*dev = &devs[i];
	return 0;
}

int nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len)
{
	const char *n = getenv("FAKE_NVML_NAME");

	snprintf(name, len, "%s #%u", n ? n : "Fake GPU", d->index);
	return 0;
}

int nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u)
{
	if (fails("util", d->index))
		return 15;
	u->gpu = list_at("FAKE_NVML_UTIL", d->index, 0);
	u->memory = u->gpu / 2;
	return 0;
}

int nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
	if (fails("mem", d->index))
		return 15;
	m->total = list_at("FAKE_NVML_MEM_TOTAL_MB", d->index, 81920) << 20;
	m->used = list_at("FAKE_NVML_MEM_USED_MB", d->index, 0) << 20;
	m->free = m->total > m->used ? m->total - m->used : 0;
	return 0;
}

int nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t)
{
	if (sensor != 0)
		return 2;
	if (fails("temp", d->index))
		return 3;
	*t = list_at("FAKE_NVML_TEMP", d->index, 40);
	return 0;
}

int nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw)
{
	if (fails("power", d->index))
		return 3;
	*mw = list_at("FAKE_NVML_POWER_MW", d->index, 100000);
	return 0;
}
