// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aibl-agent pieces: NVML through the fake library, metric extraction per
 * server kind, /v1/models, hint aging and bounds, hint posts. */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include <jansson.h>
#include <microhttpd.h>
#include "test.h"
#include "addr.h"
#include "../../user/aibl-agent/agent.h"
#include "../../user/aibl-agent/hints.h"
#include "../../user/aibl-agent/nvml.h"
#include "../../user/aibl-agent/scrape.h"

static const char *fake_nvml_path_of(const char *lib)
{
	static char path[2][512];
	static int k;
	const char *b = getenv("AIBL_BUILD");

	k ^= 1;
	snprintf(path[k], sizeof(path[k]), "%s/tests/%s", b ? b : "build", lib);
	return path[k];
}

static const char *fake_nvml_path(void)
{
	return fake_nvml_path_of("libfake_nvml.so");
}

static void fake_env_reset(void)
{
	static const char *const vars[] = {
	    "FAKE_NVML_INIT_ERR",     "FAKE_NVML_COUNT",
	    "FAKE_NVML_UTIL",	      "FAKE_NVML_MEM_USED_MB",
	    "FAKE_NVML_MEM_TOTAL_MB", "FAKE_NVML_TEMP",
	    "FAKE_NVML_POWER_MW",     "FAKE_NVML_FAIL",
	    "FAKE_NVML_NAME",	      "FAKE_NVML_MIG",
	    "FAKE_NVML_DRIVER",	      "FAKE_NVML_HANG",
	    "FAKE_NVML_CTL",	      "FAKE_NVML_MEM_RESERVED_MB",
	};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

static struct agent_nvml_sample smp;

static void nvml_fake_devices(void)
{
	struct ar_gpu *gpus = smp.gpus;
	struct agent_nvml *nv = NULL;
	char msg[256] = "";

	fake_env_reset();
	setenv("FAKE_NVML_COUNT", "3", 1);
	setenv("FAKE_NVML_UTIL", "10,55,100", 1);
	setenv("FAKE_NVML_MEM_USED_MB", "1024,2048", 1); /* third repeats the last */
	setenv("FAKE_NVML_MEM_TOTAL_MB", "81920", 1);
	setenv("FAKE_NVML_TEMP", "45,61,88", 1);
	setenv("FAKE_NVML_POWER_MW", "250500", 1);
	setenv("FAKE_NVML_NAME", "NVIDIA H100", 1);
	if (!ASSERT_OK(agent_nvml__open(fake_nvml_path(), &nv, msg, sizeof(msg)), msg))
		return;
	if (!ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg))
		goto out;
	ASSERT_EQ(smp.n, 3, "devices");
	ASSERT_STREQ(gpus[1].name, "NVIDIA H100 #1", "name");
	ASSERT_TRUE(gpus[0].util_pct == 10 && gpus[1].util_pct == 55 && gpus[2].util_pct == 100,
		    "util");
	ASSERT_TRUE(gpus[0].mem_used_bytes == 1024.0 * 1048576, "mem used 0");
	ASSERT_TRUE(gpus[2].mem_used_bytes == 2048.0 * 1048576, "mem used 2");
	ASSERT_TRUE(gpus[1].mem_total_bytes == 81920.0 * 1048576, "mem total");
	ASSERT_TRUE(gpus[2].temp_c == 88, "temp");
	ASSERT_TRUE(fabs(gpus[0].power_w - 250.5) < 1e-9, "power in W");
	ASSERT_EQ(gpus[2].index, 2, "index");
	ASSERT_STREQ(gpus[2].uuid, "GPU-fa4e0000-0000-4000-8000-000000000002", "uuid");
	ASSERT_STREQ(gpus[1].pci_bus_id, "00000000:19:00.0", "pci bus id");
	ASSERT_STREQ(gpus[0].error, "", "no error");
	ASSERT_FALSE(gpus[0].mig || gpus[0].mig_enabled, "no MIG");

	/* values are read at every sample: a change shows up */
	setenv("FAKE_NVML_UTIL", "99", 1);
	setenv("FAKE_NVML_COUNT", "1", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg)) {
		ASSERT_EQ(smp.n, 1, "one device now");
		ASSERT_TRUE(gpus[0].util_pct == 99, "new util");
	}

	/* an unsupported reading is unknown (NAN, null on the wire), with why */
	setenv("FAKE_NVML_FAIL", "power:0", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg)) {
		ASSERT_FALSE(ar_gpu_known(gpus[0].power_w), "power unknown, not 0");
		ASSERT_STREQ(gpus[0].error, "power: Not Supported", "why");
		ASSERT_TRUE(gpus[0].util_pct == 99 && gpus[0].temp_c == 45, "the rest read");
	}

	ASSERT_FALSE(gpus[0].lost, "a figure not supported: not lost");
	/* point 1: one lost GPU is that GPU's error, not the node's */
	setenv("FAKE_NVML_COUNT", "2", 1);
	setenv("FAKE_NVML_FAIL", "util:1,mem:1", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg) &&
	    ASSERT_EQ(smp.n, 2, "both listed")) {
		ASSERT_TRUE(gpus[0].util_pct == 99, "GPU 0 unaffected");
		ASSERT_FALSE(ar_gpu_known(gpus[1].util_pct), "GPU 1 util unknown");
		ASSERT_FALSE(ar_gpu_known(gpus[1].mem_used_bytes), "GPU 1 mem unknown");
		ASSERT_TRUE(gpus[1].temp_c == 61, "GPU 1 temperature still read");
		ASSERT_STREQ(gpus[1].error, "util: GPU is lost; mem: GPU is lost", "why");
		ASSERT_TRUE(gpus[1].lost && !gpus[0].lost, "GPU 1 lost, GPU 0 not");
	}
	/* as a GPU that fell off the bus answers: every call lost */
	setenv("FAKE_NVML_FAIL",
	       "name:1,uuid:1,pci:1,util:1,mem:1,memv2:1,temp:1=15,tempv:1=15,"
	       "power:1=15",
	       1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg) &&
	    ASSERT_EQ(smp.n, 2, "both listed")) {
		ASSERT_TRUE(gpus[1].lost, "lost");
		ASSERT_FALSE(ar_gpu_known(gpus[1].temp_c), "nothing read, not even heat");
		ASSERT_TRUE(gpus[0].util_pct == 99 && !gpus[0].lost, "GPU 0 read");
	}
	/* a GPU that needs a reset (an uncorrectable ECC error) */
	setenv("FAKE_NVML_FAIL", "util:0=16", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg))
		ASSERT_TRUE(gpus[0].lost && !gpus[1].lost, "reset required: lost");
	/* a handle that fails outright: listed, nothing known */
	setenv("FAKE_NVML_FAIL", "handle:0", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg) &&
	    ASSERT_EQ(smp.n, 2, "both listed")) {
		ASSERT_STREQ(gpus[0].error, "handle: GPU is lost", "handle error");
		ASSERT_TRUE(gpus[0].lost, "the handle's answer says so");
		ASSERT_FALSE(ar_gpu_known(gpus[0].temp_c), "nothing known");
		ASSERT_TRUE(gpus[1].util_pct == 99, "GPU 1 read");
	}
	/* without a device count there is nothing to sample */
	setenv("FAKE_NVML_FAIL", "count:0", 1);
	ASSERT_EQ(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), -EIO, "count fails");
	ASSERT_TRUE(strstr(msg, "nvmlDeviceGetCount_v2") != NULL, msg);

	/* more devices than a report carries: cut at the limit, and counted */
	unsetenv("FAKE_NVML_FAIL");
	setenv("FAKE_NVML_COUNT", "70", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg)) {
		ASSERT_EQ(smp.n, AR_MAX_GPUS, "capped");
		ASSERT_EQ(smp.omitted, 70 - AR_MAX_GPUS, "the cut is counted");
	}
out:
	agent_nvml__close(nv);
	fake_env_reset();
}

/* a faulty sensor (NVML's 0xFFFFFFFF mW, 400 C): the figure unknown, said
 * why, and the report still one aibld takes (its parser refuses a whole
 * report with a figure out of range) */
static void nvml_implausible(void)
{
	struct ar_gpu *gpus = smp.gpus;
	struct agent_nvml *nv = NULL;
	struct agent_report r, back;
	char msg[256] = "", *json = NULL;

	fake_env_reset();
	setenv("FAKE_NVML_COUNT", "2", 1);
	setenv("FAKE_NVML_TEMP", "400,50", 1);
	setenv("FAKE_NVML_POWER_MW", "4294967295,300000", 1);
	if (!ASSERT_OK(agent_nvml__open(fake_nvml_path(), &nv, msg, sizeof(msg)), msg))
		return;
	if (!ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg))
		goto out;
	ASSERT_FALSE(ar_gpu_known(gpus[0].temp_c), "400 C unknown");
	ASSERT_FALSE(ar_gpu_known(gpus[0].power_w), "4.3 MW unknown");
	ASSERT_TRUE(strstr(gpus[0].error, "out of range") != NULL, gpus[0].error);
	ASSERT_TRUE(gpus[1].temp_c == 50 && gpus[1].power_w == 300, "the other GPU read");
	agent_report__init(&r);
	agent_report__init(&back);
	snprintf(r.node, sizeof(r.node), "n");
	r.nvml = true;
	r.ngpus = smp.n;
	memcpy(r.gpus, gpus, smp.n * sizeof(*gpus));
	json = agent_report__to_json(&r);
	ASSERT_TRUE(json && agent_report__parse(json, strlen(json), &back, msg, sizeof(msg)) == 0,
		    msg);
	agent_report__free(&r);
	agent_report__free(&back);
	free(json);
out:
	agent_nvml__close(nv);
	fake_env_reset();
}

/* points 2, 3 and MIG: what H100/H200 nodes in containers look like */
static void nvml_mig_and_permissions(void)
{
	struct ar_gpu *g = smp.gpus;
	struct agent_nvml *nv = NULL;
	char msg[256] = "";

	fake_env_reset();
	setenv("FAKE_NVML_COUNT", "3", 1);
	setenv("FAKE_NVML_UTIL", "20,0,60", 1);
	setenv("FAKE_NVML_MEM_TOTAL_MB", "81920,81920,98304", 1);
	setenv("FAKE_NVML_MEM_USED_MB", "1024,30720,2048", 1);
	setenv("FAKE_NVML_MIG", "1:3", 1);
	if (!ASSERT_OK(agent_nvml__open(fake_nvml_path(), &nv, msg, sizeof(msg)), msg))
		return;
	/* GPU 1 in MIG mode: its utilisation is NOT_SUPPORTED, the node is fine */
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg) &&
	    ASSERT_EQ(smp.n, 6, "3 GPUs + 3 MIG instances")) {
		ASSERT_TRUE(g[0].util_pct == 20 && g[5].util_pct == 60, "others read");
		ASSERT_TRUE(g[1].mig_enabled && !g[1].mig, "parent in MIG mode");
		ASSERT_FALSE(ar_gpu_known(g[1].util_pct), "parent util unknown");
		ASSERT_STREQ(g[1].error, "util: Not Supported", "why");
		ASSERT_TRUE(g[1].temp_c == 40 && g[1].power_w == 100, "parent temp, power");
		ASSERT_TRUE(g[1].mem_used_bytes == 30720.0 * 1048576, "parent aggregate memory");
		for (int k = 0; k < 3; k++) {
			ASSERT_TRUE(g[2 + k].mig && g[2 + k].mig_index == k && g[2 + k].index == 1,
				    "instance under its parent");
			ASSERT_TRUE(fabs(g[2 + k].mem_total_bytes - 81920.0 / 3 * 1048576) < 1,
				    "memory per instance");
		}
		ASSERT_TRUE(g[3].mem_used_bytes == 10240.0 * 1048576, "instance used");
		ASSERT_STREQ(g[3].uuid, "MIG-fa4e0000-0000-4000-8000-000000010001", "MIG uuid");
		ASSERT_STREQ(g[3].pci_bus_id, g[1].pci_bus_id, "parent's bus id");
		ASSERT_FALSE(ar_gpu_known(g[3].util_pct) || ar_gpu_known(g[3].temp_c),
			     "no per-instance util or temperature");
		ASSERT_STREQ(g[3].name, "Fake GPU #1 MIG 1g.10gb", "MIG name");
		ASSERT_TRUE(g[5].index == 2 && !g[5].mig, "GPU 2 after the instances");
	}
	/* a container holding one slice: the parent's memory is NO_PERMISSION,
	 * the other slices' handles too; GPU 0 is cgroup-denied outright */
	setenv("FAKE_NVML_FAIL", "mem:1=4,mighandle:1/0=4,mighandle:1/2=4,handle:0=4", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg) &&
	    ASSERT_EQ(smp.n, 3, "GPU 1, its instance 1, GPU 2")) {
		ASSERT_EQ(smp.denied, 1, "GPU 0 left out");
		ASSERT_TRUE(g[0].index == 1 && g[1].mig && g[1].mig_index == 1 && g[2].index == 2,
			    "enumeration");
		ASSERT_FALSE(ar_gpu_known(g[0].mem_used_bytes), "parent memory unknown");
		ASSERT_STREQ(g[0].error, "util: Not Supported; mem: Insufficient Permissions",
			     "parent's why");
		ASSERT_TRUE(g[1].mem_used_bytes == 10240.0 * 1048576, "the slice's memory");
	}
	/* unified memory (GH200, GB10): no framebuffer figures */
	setenv("FAKE_NVML_FAIL", "mem:2=3", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg)) {
		ASSERT_FALSE(ar_gpu_known(g[5].mem_total_bytes), "memory unknown");
		ASSERT_TRUE(g[5].util_pct == 60, "util read");
		ASSERT_STREQ(g[5].error, "mem: Not Supported", "why");
	}
	/* a vGPU guest: neither temperature nor power */
	setenv("FAKE_NVML_FAIL", "tempv:0,power:0", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg)) {
		ASSERT_FALSE(ar_gpu_known(g[0].temp_c) || ar_gpu_known(g[0].power_w), "unknown");
		ASSERT_STREQ(g[0].error, "temp: Not Supported; power: Not Supported", "why");
	}
	/* NVML 13 deprecates nvmlDeviceGetTemperature: the V call is used */
	setenv("FAKE_NVML_FAIL", "temp:0=26", 1);
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg))
		ASSERT_TRUE(g[0].temp_c == 40, "nvmlDeviceGetTemperatureV read");
	/* a library gone uninitialised under us (someone's nvmlShutdown) */
	setenv("FAKE_NVML_FAIL", "util:2=1", 1);
	ASSERT_EQ(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), -EIO, "uninitialised");
	ASSERT_STREQ(msg, "nvmlDeviceGetUtilizationRates(2): Uninitialized", "says which");
	agent_nvml__close(nv);
	fake_env_reset();
}

/* point 5: a driver without the newer symbols still gives its figures */
static void nvml_old_driver(void)
{
	struct ar_gpu *g = smp.gpus;
	struct agent_nvml *nv = NULL;
	char msg[256] = "";

	fake_env_reset();
	setenv("FAKE_NVML_TEMP", "51", 1);
	setenv("FAKE_NVML_MEM_USED_MB", "512", 1);
	setenv("FAKE_NVML_MIG", "0:2", 1); /* ignored: no MIG symbols */
	if (!ASSERT_OK(
		agent_nvml__open(fake_nvml_path_of("libfake_nvml_old.so"), &nv, msg, sizeof(msg)),
		msg))
		return;
	if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg) &&
	    ASSERT_EQ(smp.n, 1, "one GPU")) {
		ASSERT_TRUE(g[0].temp_c == 51, "nvmlDeviceGetTemperature");
		ASSERT_TRUE(g[0].mem_used_bytes == 512.0 * 1048576, "nvmlDeviceGetMemoryInfo");
		ASSERT_STREQ(g[0].uuid, "", "no UUID");
		ASSERT_STREQ(g[0].error, "uuid: Function Not Found; pci: Function Not Found",
			     "why");
		ASSERT_FALSE(g[0].mig_enabled, "no MIG");
	}
	agent_nvml__close(nv);
	fake_env_reset();
}

/*
 * The memory the driver sets aside is not free: v1's used counts it, v2's
 * does not (the counts of a real driver, tests/fake/fake_nvml.c), and the
 * report's used is total - free with either
 */
static void nvml_reserved_memory(void)
{
	static const char *const libs[] = {"libfake_nvml.so", "libfake_nvml_old.so"};

	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		struct agent_nvml *nv = NULL;
		char msg[256] = "";

		fake_env_reset();
		setenv("FAKE_NVML_MEM_TOTAL_MB", "143771", 1);
		setenv("FAKE_NVML_MEM_USED_MB", "10858", 1);
		setenv("FAKE_NVML_MEM_RESERVED_MB", "615", 1);
		if (!ASSERT_OK(agent_nvml__open(fake_nvml_path_of(libs[i]), &nv, msg, sizeof(msg)),
			       msg))
			continue;
		if (ASSERT_OK(agent_nvml__sample(nv, &smp, msg, sizeof(msg)), msg) &&
		    ASSERT_EQ(smp.n, 1, "one GPU")) {
			ASSERT_TRUE(smp.gpus[0].mem_used_bytes == 11473.0 * 1048576, libs[i]);
			ASSERT_TRUE(smp.gpus[0].mem_total_bytes == 143771.0 * 1048576, "total");
		}
		agent_nvml__close(nv);
	}
	fake_env_reset();
}

static void nvml_absent_or_failing(void)
{
	struct agent_nvml *nv = NULL;
	char msg[256] = "";
	void *lib;
	int (*count)(unsigned int *);
	unsigned int n = 0;

	fake_env_reset();
	ASSERT_EQ(agent_nvml__open("/nonexistent/libnvidia-ml.so.1", &nv, msg, sizeof(msg)),
		  -ENOENT, "no library");
	ASSERT_TRUE(strstr(msg, "NVML not available") != NULL, msg);
	ASSERT_TRUE(nv == NULL, "no handle");

	/* a library without the NVML symbols */
	ASSERT_EQ(agent_nvml__open("libm.so.6", &nv, msg, sizeof(msg)), -ENOENT, "not NVML");
	ASSERT_TRUE(strstr(msg, "no symbol nvmlInit_v2") != NULL, msg);

	setenv("FAKE_NVML_INIT_ERR", "9", 1);
	ASSERT_EQ(agent_nvml__open(fake_nvml_path(), &nv, msg, sizeof(msg)), -EIO, "init fails");
	ASSERT_STREQ(msg, "nvmlInit_v2: Driver Not Loaded", "init message");
	unsetenv("FAKE_NVML_INIT_ERR");
	setenv("FAKE_NVML_DRIVER", "mismatch", 1);
	ASSERT_EQ(agent_nvml__open(fake_nvml_path(), &nv, msg, sizeof(msg)), -EIO, "mismatch");
	ASSERT_TRUE(strstr(msg, "version mismatch") != NULL, msg);

	/* the fake refuses calls before nvmlInit_v2, as NVML does */
	lib = dlopen(fake_nvml_path(), RTLD_NOW | RTLD_LOCAL);
	if (ASSERT_TRUE(lib != NULL, "dlopen")) {
		count = (int (*)(unsigned int *))dlsym(lib, "nvmlDeviceGetCount_v2");
		ASSERT_EQ(count ? count(&n) : -1, 1, "NVML_ERROR_UNINITIALIZED");
		dlclose(lib);
	}
	fake_env_reset();
}

static char ctl_path[64];

static void ctl_write(const char *text)
{
	char tmp[80];
	FILE *f;

	/* rename: a reader in another thread sees the old file or the new */
	snprintf(tmp, sizeof(tmp), "%s.tmp", ctl_path);
	f = fopen(tmp, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
		rename(tmp, ctl_path);
	}
}

static bool agent_nvml_setup(struct agent *a, const char *ctl, unsigned int retry_ms)
{
	struct agent_cfg cfg = {.name = "n",
				.scrape_interval_ms = 50,
				.scrape_timeout_ms = 100,
				.stale_ms = 1000,
				.max_hints = 16,
				.pressure_start = 0.5,
				.pressure_max_rate = 4,
				.traffic_window_ms = 1000,
				.nvml_lib = fake_nvml_path(),
				.nvml_retry_min_ms = retry_ms,
				.nvml_retry_max_ms = 4 * retry_ms,
				.nvml_deadline_ms = 300};
	char msg[256] = "";

	fake_env_reset();
	snprintf(ctl_path, sizeof(ctl_path), "/tmp/aibl-fake-nvml.%d", (int)getpid());
	ctl_write(ctl);
	setenv("FAKE_NVML_CTL", ctl_path, 1);
	return ASSERT_OK(agent__init(a, &cfg, msg, sizeof(msg)), msg);
}

static void agent_nvml_teardown(struct agent *a)
{
	agent__fini(a);
	unlink(ctl_path);
	fake_env_reset();
}

static bool report_of(struct agent *a, struct agent_report *r)
{
	agent_report__free(r);
	return ASSERT_OK(agent__report(a, r), "report");
}

/* point 4: NVML failing at boot, the driver going away and coming back,
 * a library/driver mismatch after an upgrade: reopened with backoff */
static void nvml_reinit(void)
{
	struct agent_report r = {};
	struct agent a;

	if (!agent_nvml_setup(&a, "FAKE_NVML_DRIVER=gone\nFAKE_NVML_COUNT=2\n", 100))
		return;
	/* boot before the driver: a CPU node for now, and the reason */
	agent__collect_once(&a);
	if (report_of(&a, &r)) {
		ASSERT_FALSE(r.nvml, "no NVML yet");
		ASSERT_STREQ(r.nvml_error, "nvmlInit_v2: Driver Not Loaded", "why");
		ASSERT_STREQ(r.accel, "cpu", "no GPU seen yet");
	}
	ctl_write("FAKE_NVML_COUNT=2\n");
	agent__collect_once(&a); /* within the backoff: not tried yet */
	if (report_of(&a, &r))
		ASSERT_FALSE(r.nvml, "backoff respected");
	usleep(150 * 1000);
	agent__collect_once(&a);
	if (report_of(&a, &r)) {
		ASSERT_TRUE(r.nvml, "driver loaded: NVML opened");
		ASSERT_EQ(r.ngpus, 2, "GPUs");
		ASSERT_STREQ(r.accel, "gpu", "a GPU node");
	}
	/* the driver goes away under a running agent */
	ctl_write("FAKE_NVML_COUNT=2\nFAKE_NVML_DRIVER=gone\n");
	agent__collect_once(&a);
	if (report_of(&a, &r)) {
		ASSERT_FALSE(r.nvml, "NVML down");
		ASSERT_STREQ(r.nvml_error, "nvmlDeviceGetCount_v2: Driver Not Loaded", "why");
		ASSERT_EQ(r.ngpus, 0, "no stale figures");
		ASSERT_STREQ(r.accel, "gpu", "still a GPU node");
	}
	/* upgraded without a reboot: the new library does not match */
	ctl_write("FAKE_NVML_COUNT=2\nFAKE_NVML_DRIVER=mismatch\n");
	usleep(150 * 1000);
	agent__collect_once(&a);
	if (report_of(&a, &r))
		ASSERT_TRUE(strstr(r.nvml_error, "nvmlInit_v2: RM has detected") == r.nvml_error,
			    r.nvml_error);
	ASSERT_EQ(a.nvml_backoff_ms, 200, "backoff doubled");
	/* and back */
	ctl_write("FAKE_NVML_COUNT=3\n");
	usleep(250 * 1000);
	agent__collect_once(&a);
	if (report_of(&a, &r)) {
		ASSERT_TRUE(r.nvml, "NVML back");
		ASSERT_EQ(r.ngpus, 3, "GPUs");
		ASSERT_STREQ(r.nvml_error, "", "no error");
	}
	ASSERT_EQ(a.nvml_backoff_ms, 0, "backoff reset");
	agent_report__free(&r);
	agent_nvml_teardown(&a);
}

/* an NVML call that hangs stalls neither scrapes nor reports, and the
 * report names it once past the deadline */
static void nvml_hang(void)
{
	struct agent_report r = {};
	uint64_t scrapes;
	struct agent a;
	int i;

	if (!agent_nvml_setup(&a, "FAKE_NVML_COUNT=2\n", 100))
		return;
	if (!ASSERT_OK(agent__start(&a), "start"))
		goto out;
	for (i = 0; i < 100 && !(report_of(&a, &r) && r.nvml); i++)
		usleep(10 * 1000);
	ASSERT_TRUE(r.nvml, "sampled");
	ctl_write("FAKE_NVML_COUNT=2\nFAKE_NVML_HANG=util:1\n");
	/* the GPU thread's next round enters the hung call; the report says so
	 * once the 300 ms deadline has passed (asked again for up to 3 s) */
	for (i = 0; i < 300 && !(report_of(&a, &r) && !r.nvml); i++)
		usleep(10 * 1000);
	pthread_mutex_lock(&a.lock);
	scrapes = a.scrapes;
	pthread_mutex_unlock(&a.lock);
	if (report_of(&a, &r)) {
		ASSERT_FALSE(r.nvml, "hung NVML is no news");
		ASSERT_TRUE(strstr(r.nvml_error,
				   "NVML call nvmlDeviceGetUtilizationRates has not returned") ==
				r.nvml_error,
			    r.nvml_error);
	}
	usleep(200 * 1000);
	pthread_mutex_lock(&a.lock);
	ASSERT_TRUE(a.scrapes > scrapes, "collector goes on");
	pthread_mutex_unlock(&a.lock);
	ctl_write("FAKE_NVML_COUNT=2\n");
	for (i = 0; i < 100 && !(report_of(&a, &r) && r.nvml); i++)
		usleep(10 * 1000);
	ASSERT_TRUE(r.nvml, "back once the call returns");
out:
	agent_report__free(&r);
	agent_nvml_teardown(&a);
}

struct releaser {
	pthread_t t;
	const char *ctl; /* written after ms, unless the test has written it */
	unsigned int ms;
	bool released, cancel;
};

/* the test's own clock on a hang: whatever it waits for must come first */
static void *release_later(void *arg)
{
	struct releaser *rl = arg;

	for (unsigned int i = 0; i < rl->ms / 10 && !__atomic_load_n(&rl->cancel, __ATOMIC_RELAXED);
	     i++)
		usleep(10 * 1000);
	ctl_write(rl->ctl);
	__atomic_store_n(&rl->released, true, __ATOMIC_RELAXED);
	return NULL;
}

static bool gpu_thread_idle(struct agent *a)
{
	bool idle;

	pthread_mutex_lock(&a->lock);
	idle = !a->nvml && !a->nvml_busy_ms;
	pthread_mutex_unlock(&a->lock);
	return idle;
}

/*
 * A driver that hangs in nvmlInit_v2 (a GPU fallen off the bus) holds up
 * neither the agent's start nor its scrapes, and the report names the call;
 * one that hangs in nvmlShutdown does not hold up its exit.
 */
static void nvml_hang_open_close(void)
{
	static struct agent *a; /* reachable while a stuck thread may touch it */
	struct releaser rl = {.ctl = "FAKE_NVML_COUNT=2\n", .ms = 5000};
	struct agent_report r = {};
	uint64_t scrapes;
	bool stuck, released;
	int i;

	a = calloc(1, sizeof(*a));
	if (!ASSERT_OK_PTR(a, "agent"))
		return;
	fake_env_reset();
	snprintf(ctl_path, sizeof(ctl_path), "/tmp/aibl-fake-nvml.%d", (int)getpid());
	ctl_write("FAKE_NVML_COUNT=2\nFAKE_NVML_HANG=init:-\n");
	if (!ASSERT_OK(-pthread_create(&rl.t, NULL, release_later, &rl), "releaser"))
		goto out_free;
	if (!agent_nvml_setup(a, "FAKE_NVML_COUNT=2\nFAKE_NVML_HANG=init:-\n", 100))
		goto out_join;
	released = __atomic_load_n(&rl.released, __ATOMIC_RELAXED);
	ASSERT_FALSE(released, "init did not wait for nvmlInit_v2");
	if (!ASSERT_OK(agent__start(a), "start"))
		goto out_fini;
	for (i = 0; i < 200 && !(report_of(a, &r) && strstr(r.nvml_error, "has not returned")); i++)
		usleep(10 * 1000);
	ASSERT_FALSE(r.nvml, "no GPU figures while the open hangs");
	ASSERT_TRUE(strstr(r.nvml_error, "NVML call nvmlInit_v2 has not returned") == r.nvml_error,
		    r.nvml_error);
	pthread_mutex_lock(&a->lock);
	scrapes = a->scrapes;
	pthread_mutex_unlock(&a->lock);
	usleep(200 * 1000);
	pthread_mutex_lock(&a->lock);
	ASSERT_TRUE(a->scrapes > scrapes, "scrapes go on");
	pthread_mutex_unlock(&a->lock);
	/* the driver answers: its GPUs are reported */
	ctl_write("FAKE_NVML_COUNT=2\n");
	for (i = 0; i < 200 && !(report_of(a, &r) && r.nvml); i++)
		usleep(10 * 1000);
	ASSERT_TRUE(r.nvml, "opened once the driver answers");
	ASSERT_EQ(r.ngpus, 2, "GPUs");
	/* and hangs in nvmlShutdown at exit: agent__stop gives up on it */
	ctl_write("FAKE_NVML_COUNT=2\nFAKE_NVML_HANG=shutdown:-\n");
	agent__stop(a);
	released = __atomic_load_n(&rl.released, __ATOMIC_RELAXED);
	stuck = a->gpu_thread_stuck;
	ASSERT_FALSE(released, "exit did not wait for nvmlShutdown");
	ASSERT_TRUE(stuck, "the GPU thread left behind");
	/* released: the thread finishes its close and leaves the agent */
	ctl_write("FAKE_NVML_COUNT=2\n");
	for (i = 0; i < 200 && stuck && !gpu_thread_idle(a); i++)
		usleep(10 * 1000);
	usleep(50 * 1000);
	a->gpu_thread_stuck = false;
out_fini:
	agent__fini(a);
out_join:
	__atomic_store_n(&rl.cancel, true, __ATOMIC_RELAXED);
	pthread_join(rl.t, NULL);
out_free:
	agent_report__free(&r);
	unlink(ctl_path);
	fake_env_reset();
	free(a);
	a = NULL;
}

static bool load_page(const char *file, struct prom_page *pg)
{
	const char *root = getenv("AIBL_ROOT");
	char path[512], err[256];
	static char buf[1 << 16];
	size_t n;
	FILE *f;

	memset(pg, 0, sizeof(*pg));
	snprintf(path, sizeof(path), "%s/tests/data/metrics/%s", root ? root : ".", file);
	f = fopen(path, "r");
	if (!ASSERT_OK_PTR(f, path))
		return false;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (!ASSERT_OK(promtext__parse(pg, buf, n, err, sizeof(err)), err))
		return false;
	return true;
}

static void new_server(struct agent_server *srv)
{
	memset(srv, 0, sizeof(*srv));
	strcpy(srv->s.url, "http://127.0.0.1:1");
	strcpy(srv->s.kind, "unknown");
}

/*
 * Every recorded page and the figures it must give: tests/data/metrics/
 * as a table (docs/engines.md says where each comes from). -1: the page
 * does not give it. models: what the page names as resident, in order.
 */
static void extract_kinds(void)
{
	static const struct {
		const char *file, *kind;
		double queue, running, kv, hit, ttft_ms;
		const char *models;
	} pages[] = {
	    /* vLLM V1: prefix hit rate from the counters, TTFT = sum/count */
	    {"vllm.txt", "vllm", 5, 3, 0.4213, 9600.0 / 12800, 5.25 / 42 * 1e3,
	     "meta-llama/Llama-3.1-8B-Instruct"},
	    /* V0 (0.5): gpu_cache_usage_perc; no hit rate gauge yet (the gauge:
	     * unrecorded_families) */
	    {"vllm-v0.txt", "vllm", 0, 0, 0, -1, 313.26723098754883, "facebook/opt-125m"},
	    /* 0.8.0 - 0.9.1: the counters before the 0.9.2 rename */
	    {"vllm-0.8-gpu-prefix.txt", "vllm", -1, -1, -1, 80.0 / 249, -1, ""},
	    /* the current label set is the newest one, not the last line */
	    {"vllm-lora-history.txt", "vllm", 30, 10, 0.4, -1, -1, "my_model"},
	    {"vllm-lora-pr9477.txt", "vllm", -1, -1, -1, -1, -1, ""},
	    /* Ray Serve: ray_vllm_ names */
	    {"ray-vllm-pr24267.txt", "vllm", -1, -1, -1, -1, -1, "qwen-0.5b"},
	    /* no token counters: the hit rate gauge; TTFT = sum/count */
	    {"sglang.txt", "sglang", 2826, 162, 0.28, 0.007507552643049313,
	     2.3518979474117756e+06 / 11008 * 1e3, "meta-llama/Llama-3.1-8B-Instruct"},
	    /* the router's "sglang_" page of two workers: their queues add up,
	     * the fuller one's KV usage, one model */
	    {"sglang-new.txt", "sglang", 2 * 2826, 2 * 162, 0.28, 0.007507552643049313,
	     2 * 2351897.9474117756 / (2 * 11008) * 1e3, "meta-llama/Llama-3.1-8B-Instruct"},
	    /* a percentage hit rate is refused, not clamped to 1 */
	    {"sglang-pr1461-percent.txt", "sglang", -1, -1, 0, -1, -1, "google/gemma-2-9b-it"},
	    {"sglang-pr7944.txt", "sglang", -1, 0, 0, -1, -1,
	     "/home/moyun.zty/models/deepseek-ai__DeepSeek-R1"},
	    {"trtllm.txt", "trtllm", -1, -1, 0.18, 0.72, 9.3 / 155 * 1e3, "Qwen/Qwen3-0.6B"},
	    /* trtllm-serve's first page: no prefix, engine_type set; no _sum
	     * shown for a TTFT; "undefined" is not a model */
	    {"trtllm-pr5785.txt", "trtllm", -1, -1, -1, -1, -1, ""},
	    {"pytrtllm-pr5560.txt", "trtllm", 0, 1, -1, -1, -1, "deepseek-ai/DeepSeek-V3-0324"},
	    /* no TensorRT-LLM backend: Triton's own pending count, its models */
	    {"triton.txt", "triton", 0, -1, -1, -1, -1,
	     "simple_string,simple_sequence,simple_int8,simple_identity,densenet_onnx,"
	     "simple_dyna_sequence,inception_graphdef,simple"},
	    /* the backend's own waiting count (1), not Triton's pending (0) */
	    {"triton-trtllm-readme.txt", "triton", 1, 0, 0.4875, -1, -1, "tensorrt_llm"},
	    {"triton-two-models.txt", "triton", -1, -1, -1, -1, -1, "mistral7b,llama2"},
	    {"tgi.txt", "tgi", 0, 0, -1, -1, -1, ""},
	    {"llamacpp-pr11512.txt", "llamacpp", 0, 0, -1, -1, -1, ""},
	    {"llamacpp-pr13196.txt", "llamacpp", -1, -1, -1, -1, -1, ""},
	};

	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		struct agent_server srv;
		struct prom_page pg;
		const struct ar_server *s = &srv.s;
		char what[128], models[1024] = "";

		if (!load_page(pages[i].file, &pg)) {
			promtext__free(&pg);
			continue;
		}
		new_server(&srv);
		agent_metrics__extract(&pg, &srv);
		snprintf(what, sizeof(what), "%s: kind", pages[i].file);
		ASSERT_STREQ(s->kind, pages[i].kind, what);
#define CHECK(field, want)                                                                         \
	do {                                                                                       \
		snprintf(what, sizeof(what), "%s: " #field " %g want %g", pages[i].file, s->field, \
			 (double)(want));                                                          \
		ASSERT_TRUE(fabs(s->field - (want)) < 1e-6, what);                                 \
	} while (0)
		CHECK(queue_depth, pages[i].queue);
		CHECK(running, pages[i].running);
		CHECK(kv_cache_usage, pages[i].kv);
		CHECK(prefix_cache_hit_rate, pages[i].hit);
		CHECK(ttft_avg_ms, pages[i].ttft_ms);
#undef CHECK
		for (int k = 0; k < srv.npage_models; k++)
			snprintf(models + strlen(models), sizeof(models) - strlen(models), "%s%s",
				 k ? "," : "", srv.page_models[k]);
		snprintf(what, sizeof(what), "%s: models", pages[i].file);
		ASSERT_STREQ(models, pages[i].models, what);
		promtext__free(&pg);
	}
}

/* parse one page of text and feed it to the server's windows */
static bool extract_text(struct agent_server *srv, const char *text)
{
	struct prom_page pg;
	char err[256];
	bool ok = ASSERT_OK(promtext__parse(&pg, text, strlen(text), err, sizeof(err)), err);

	if (ok)
		agent_metrics__extract(&pg, srv);
	promtext__free(&pg);
	return ok;
}

static void extract_windows(void)
{
	const char *p1 = "# TYPE vllm:time_to_first_token_seconds histogram\n"
			 "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} 10\n"
			 "vllm:time_to_first_token_seconds_sum 1.0\n"
			 "vllm:time_to_first_token_seconds_count 10\n"
			 "vllm:prefix_cache_queries_total 1000\nvllm:prefix_cache_hits_total 100\n";
	/* 10 more requests taking 0.5 s each; 1000 more queried tokens, 900 hit */
	const char *p2 =
	    "# TYPE vllm:time_to_first_token_seconds histogram\n"
	    "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} 20\n"
	    "vllm:time_to_first_token_seconds_sum 6.0\n"
	    "vllm:time_to_first_token_seconds_count 20\n"
	    "vllm:prefix_cache_queries_total 2000\nvllm:prefix_cache_hits_total 1000\n";
	/* restarted server: counters start over */
	const char *p3 = "# TYPE vllm:time_to_first_token_seconds histogram\n"
			 "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"
			 "vllm:time_to_first_token_seconds_sum 0.01\n"
			 "vllm:time_to_first_token_seconds_count 2\n"
			 "vllm:prefix_cache_queries_total 10\nvllm:prefix_cache_hits_total 0\n";
	const char *pages[] = {p1, p2, p2, p3};
	const double ttft[] = {100, 500, 500, 5}, hit[] = {0.1, 0.9, 0.9, 0};
	struct agent_server srv;

	new_server(&srv);
	for (int i = 0; i < 4; i++) {
		if (!extract_text(&srv, pages[i]))
			return;
		/* page 3 repeats page 2: no request in between keeps the last figure */
		if (!ASSERT_TRUE(fabs(srv.s.ttft_avg_ms - ttft[i]) < 1e-6, "ttft window"))
			fprintf(stderr, "  page %d: ttft %g want %g\n", i, srv.s.ttft_avg_ms,
				ttft[i]);
		if (!ASSERT_TRUE(fabs(srv.s.prefix_cache_hit_rate - hit[i]) < 1e-6, "hit window"))
			fprintf(stderr, "  page %d: hit %g want %g\n", i,
				srv.s.prefix_cache_hit_rate, hit[i]);
		ASSERT_TRUE(srv.s.queue_depth == -1, "no queue metric: unknown");
		/* page 4's counters went backwards: a new server, its caches gone */
		ASSERT_EQ(srv.restarted, i == 3, "restart seen on the page it happened");
	}
}

/*
 * A restart between pages whose count has since passed its old value
 * while its sum has not: the pair is one new process's, both whole.
 */
static void extract_window_pair_reset(void)
{
	const char *p1 = "vllm:time_to_first_token_seconds_sum 1.0\n"
			 "vllm:time_to_first_token_seconds_count 10\n"
			 "vllm:prefix_cache_queries_total 1000\nvllm:prefix_cache_hits_total 100\n";
	/* a new process: 12 requests of 50 ms; 1200 tokens queried, 60 hit */
	const char *p2 = "vllm:time_to_first_token_seconds_sum 0.6\n"
			 "vllm:time_to_first_token_seconds_count 12\n"
			 "vllm:prefix_cache_queries_total 1200\nvllm:prefix_cache_hits_total 60\n";
	struct agent_server srv;

	new_server(&srv);
	if (!extract_text(&srv, p1) || !extract_text(&srv, p2))
		return;
	ASSERT_TRUE(srv.restarted, "restart seen");
	if (!ASSERT_TRUE(fabs(srv.s.ttft_avg_ms - 50) < 1e-6, "ttft: the new process's mean"))
		fprintf(stderr, "  ttft %g want 50\n", srv.s.ttft_avg_ms);
	if (!ASSERT_TRUE(fabs(srv.s.prefix_cache_hit_rate - 0.05) < 1e-6,
			 "hit rate: the new process's"))
		fprintf(stderr, "  hit %g want 0.05\n", srv.s.prefix_cache_hit_rate);
}

/* request latency: the window's mean, -1 when nothing finished in it */
static void extract_e2e(void)
{
	const char *p1 = "vllm:num_requests_waiting 0\n"
			 "vllm:e2e_request_latency_seconds_sum 2.0\n"
			 "vllm:e2e_request_latency_seconds_count 10\n";
	/* 10 more requests of 0.5 s */
	const char *p2 = "vllm:num_requests_waiting 0\n"
			 "vllm:e2e_request_latency_seconds_sum 7.0\n"
			 "vllm:e2e_request_latency_seconds_count 20\n";
	const char *pages[] = {p1, p2, p2};
	const double want[] = {200, 500, -1};
	struct agent_server srv;

	new_server(&srv);
	for (int i = 0; i < 3; i++) {
		if (!extract_text(&srv, pages[i]))
			return;
		if (!ASSERT_TRUE(fabs(srv.s.e2e_avg_ms - want[i]) < 1e-6, "e2e window"))
			fprintf(stderr, "  page %d: e2e %g want %g\n", i, srv.s.e2e_avg_ms,
				want[i]);
	}
}

/* page i's run and e2e window means against what they should be */
static void check_run_e2e(const struct agent_server *srv, int i, double run, double e2e,
			  const char *run_what, const char *e2e_what)
{
	if (!ASSERT_TRUE(fabs(srv->s.run_avg_ms - run) < 1e-6, run_what) ||
	    !ASSERT_TRUE(fabs(srv->s.e2e_avg_ms - e2e) < 1e-6, e2e_what))
		fprintf(stderr, "  page %d: run %g want %g, e2e %g want %g\n", i, srv->s.run_avg_ms,
			run, srv->s.e2e_avg_ms, e2e);
}

/*
 * time requests ran (vLLM's request_inference_time_seconds: the RUNNING
 * phase, no queueing): the window's mean, -1 when nothing finished in it
 * or the engine does not export it. Names and labels as vLLM 0.10 serves
 * them (vllm/v1/metrics/loggers.py; a page pasted in
 * vllm-project/production-stack#617); values written for the test.
 */
static void extract_run(void)
{
	const char *p1 =
	    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3\n"
	    "vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"m\"} 30.0\n"
	    "vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"m\"} 10\n"
	    "vllm:request_queue_time_seconds_sum{engine=\"0\",model_name=\"m\"} 20.0\n"
	    "vllm:request_queue_time_seconds_count{engine=\"0\",model_name=\"m\"} 10\n"
	    "vllm:request_inference_time_seconds_sum{engine=\"0\",model_name=\"m\"} 10.0\n"
	    "vllm:request_inference_time_seconds_count{engine=\"0\",model_name=\"m\"} 10\n";
	/* 5 more requests that ran 2 s each (and waited 1 s) */
	const char *p2 =
	    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 0\n"
	    "vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"m\"} 45.0\n"
	    "vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"m\"} 15\n"
	    "vllm:request_queue_time_seconds_sum{engine=\"0\",model_name=\"m\"} 25.0\n"
	    "vllm:request_queue_time_seconds_count{engine=\"0\",model_name=\"m\"} 15\n"
	    "vllm:request_inference_time_seconds_sum{engine=\"0\",model_name=\"m\"} 20.0\n"
	    "vllm:request_inference_time_seconds_count{engine=\"0\",model_name=\"m\"} 15\n";
	/* an older vLLM, or a page that lost the histogram */
	const char *p3 =
	    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 0\n"
	    "vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"m\"} 48.0\n"
	    "vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"m\"} 16\n";
	const char *pages[] = {p1, p2, p2, p3};
	const double want[] = {1000, 2000, -1, -1}, e2e[] = {3000, 3000, -1, 3000};
	struct agent_server srv;

	new_server(&srv);
	for (int i = 0; i < 4; i++) {
		if (!extract_text(&srv, pages[i]))
			return;
		check_run_e2e(&srv, i, want[i], e2e[i], "run window", "e2e beside it");
	}
}

/*
 * The PREFILL phase (vLLM's request_prefill_time_seconds, from a slot to the
 * first token) and the prompt tokens it computed
 * (request_prefill_kv_computed_tokens, vllm-project/vllm#30189: prompt
 * tokens less the cached ones), both recorded as a request finishes: the
 * window's means, -1 when nothing finished or the engine predates them.
 * Names and labels as vLLM serves them (vllm/v1/metrics/loggers.py; the
 * prefill histogram on the page pasted in vllm-project/production-stack#617);
 * values written for the test.
 */
static void extract_prefill(void)
{
	const char *p1 =
	    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 0\n"
	    "vllm:request_prefill_time_seconds_sum{engine=\"0\",model_name=\"m\"} 1.0\n"
	    "vllm:request_prefill_time_seconds_count{engine=\"0\",model_name=\"m\"} 10\n"
	    "vllm:request_prefill_kv_computed_tokens_sum{engine=\"0\",model_name=\"m\"} 20000\n"
	    "vllm:request_prefill_kv_computed_tokens_count{engine=\"0\",model_name=\"m\"} 10\n";
	/* 4 more: 0.2 s each for 500 tokens each */
	const char *p2 =
	    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 0\n"
	    "vllm:request_prefill_time_seconds_sum{engine=\"0\",model_name=\"m\"} 1.8\n"
	    "vllm:request_prefill_time_seconds_count{engine=\"0\",model_name=\"m\"} 14\n"
	    "vllm:request_prefill_kv_computed_tokens_sum{engine=\"0\",model_name=\"m\"} 22000\n"
	    "vllm:request_prefill_kv_computed_tokens_count{engine=\"0\",model_name=\"m\"} 14\n";
	/* a vLLM before #30189: the prefill time alone says nothing */
	const char *p3 =
	    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 0\n"
	    "vllm:request_prefill_time_seconds_sum{engine=\"0\",model_name=\"m\"} 2.0\n"
	    "vllm:request_prefill_time_seconds_count{engine=\"0\",model_name=\"m\"} 15\n";
	const char *pages[] = {p1, p2, p2, p3};
	const double ms[] = {100, 200, -1, 200}, tok[] = {2000, 500, -1, -1};
	struct agent_server srv;

	new_server(&srv);
	for (int i = 0; i < 4; i++) {
		if (!extract_text(&srv, pages[i]))
			return;
		/* pages without vLLM's request_prompt_tokens */
		ASSERT_TRUE(srv.s.prompt_tokens_avg == -1, "no whole prompts");
		if (!ASSERT_TRUE(fabs(srv.s.prefill_avg_ms - ms[i]) < 1e-6, "prefill window") ||
		    !ASSERT_TRUE(fabs(srv.s.prefill_tokens_avg - tok[i]) < 1e-6, "tokens window"))
			fprintf(stderr, "  page %d: prefill %g want %g, tokens %g want %g\n", i,
				srv.s.prefill_avg_ms, ms[i], srv.s.prefill_tokens_avg, tok[i]);
	}
}

/*
 * The whole prompt of the window's finished requests, cached tokens too
 * (vLLM's request_prompt_tokens histogram, recorded as a request finishes):
 * the window's mean, -1 when nothing finished. The names and labels on a
 * real V0 page (tests/data/metrics/vllm-v0.txt: one request, 5 tokens), then
 * V1's names with values written for the test.
 */
static void extract_prompt(void)
{
	const char *p1 = "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 0\n"
			 "vllm:request_prompt_tokens_sum{engine=\"0\",model_name=\"m\"} 21000\n"
			 "vllm:request_prompt_tokens_count{engine=\"0\",model_name=\"m\"} 10\n";
	/* 4 more of 2,500 tokens each */
	const char *p2 = "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 0\n"
			 "vllm:request_prompt_tokens_sum{engine=\"0\",model_name=\"m\"} 31000\n"
			 "vllm:request_prompt_tokens_count{engine=\"0\",model_name=\"m\"} 14\n";
	const char *pages[] = {p1, p2, p2};
	const double want[] = {2100, 2500, -1};
	struct agent_server srv;
	struct prom_page pg;

	new_server(&srv);
	if (!load_page("vllm-v0.txt", &pg))
		return;
	agent_metrics__extract(&pg, &srv);
	promtext__free(&pg);
	ASSERT_TRUE(srv.s.prompt_tokens_avg == 5, "the V0 page's one request of 5 tokens");
	new_server(&srv);
	for (int i = 0; i < 3; i++) {
		if (!extract_text(&srv, pages[i]))
			return;
		if (!ASSERT_TRUE(fabs(srv.s.prompt_tokens_avg - want[i]) < 1e-6, "prompt window"))
			fprintf(stderr, "  page %d: %g want %g\n", i, srv.s.prompt_tokens_avg,
				want[i]);
	}
}

/*
 * TGI's tgi_request_inference_duration (from the batch's start to the last
 * token, queueing aside; seconds, router/src/server.rs) gives run_avg_ms as
 * vLLM's request_inference_time does. Page 1 is the recorded tgi.txt; the
 * pages after it carry its names, values written for the test.
 */
static void extract_run_tgi(void)
{
	/* 5 more requests that ran 2 s each and took 4 s in all; 3 queued
	 * behind a batch of 4 (the recorded page was idle) */
	const char *p2 = "tgi_queue_size 3\n"
			 "tgi_batch_current_size 4\n"
			 "tgi_request_duration_sum 561.2140316159999\n"
			 "tgi_request_duration_count 114\n"
			 "tgi_request_inference_duration_sum 255.91743839099996\n"
			 "tgi_request_inference_duration_count 114\n";
	/* a TGI without the histogram */
	const char *p3 = "tgi_queue_size 0\n"
			 "tgi_request_duration_sum 565.2140316159999\n"
			 "tgi_request_duration_count 115\n";
	const char *pages[] = {NULL, p2, p2, p3};
	const double want[] = {245.91743839099996 / 109 * 1e3, 2000, -1, -1},
		     e2e[] = {541.2140316159999 / 109 * 1e3, 4000, -1, 4000};
	struct agent_server srv;
	struct prom_page pg;

	new_server(&srv);
	for (int i = 0; i < 4; i++) {
		if (!pages[i]) {
			bool ok = load_page("tgi.txt", &pg);

			if (ok)
				agent_metrics__extract(&pg, &srv);
			promtext__free(&pg);
			if (!ok)
				return;
		} else if (!extract_text(&srv, pages[i])) {
			return;
		}
		ASSERT_STREQ(srv.s.kind, "tgi", "kind");
		if (pages[i] == p2)
			ASSERT_TRUE(srv.s.queue_depth == 3 && srv.s.running == 4,
				    "TGI queue, batch");
		check_run_e2e(&srv, i, want[i], e2e[i], "TGI run window", "TGI e2e beside it");
	}
}

/* how long a server has run requests without finishing one: the clock
 * starts when it is seen running, and starts again at every finish or
 * idle page; unknown without a request latency count */
static void since_finish(void)
{
	const char *idle = "vllm:num_requests_running 0\n"
			   "vllm:e2e_request_latency_seconds_sum 2.0\n"
			   "vllm:e2e_request_latency_seconds_count 10\n";
	const char *busy = "vllm:num_requests_running 4\n"
			   "vllm:e2e_request_latency_seconds_sum 2.0\n"
			   "vllm:e2e_request_latency_seconds_count 10\n";
	const char *done = "vllm:num_requests_running 4\n"
			   "vllm:e2e_request_latency_seconds_sum 9.0\n"
			   "vllm:e2e_request_latency_seconds_count 12\n";
	const char *blind = "vllm:num_requests_running 4\n";
	const struct {
		const char *page;
		uint64_t at;
		double want;
	} steps[] = {
	    {idle, 1000, 0}, /* nothing runs */
	    {busy, 1200, 0}, /* seen running: the clock starts */
	    {busy, 1400, 200}, {busy, 2400, 1200}, {done, 2600, 0}, /* two finished */
	    {done, 2800, 200}, {blind, 3000, -1},		    /* no latency count: unknown */
	    {busy, 3200, 0},
	};
	struct agent_server srv;

	new_server(&srv);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (!extract_text(&srv, steps[i].page))
			return;
		agent_server__since_finish(&srv, steps[i].at);
		if (!ASSERT_TRUE(fabs(srv.s.since_finish_ms - steps[i].want) < 1e-6,
				 "since finish"))
			fprintf(stderr, "  step %zu: %g want %g\n", i, srv.s.since_finish_ms,
				steps[i].want);
	}
}

static void loras_str(const struct agent_server *srv, char *out, size_t len)
{
	out[0] = '\0';
	for (int k = 0; k < srv->nloras; k++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s", k ? "," : "", srv->loras[k]);
}

/* issue #17 point 1: the running adapters are those of the newest label
 * set; an adapter that stopped is gone at the next page; a long list is
 * read whole */
static void lora_and_unknown(void)
{
	struct agent_server srv;
	struct prom_page pg;
	char err[256], got[4096], page[4096], want[4096] = "";
	const char *other = "# TYPE http_requests_total counter\nhttp_requests_total 5\n";
	/* lora4 was unloaded: the newest set no longer has it */
	const char *later =
	    "vllm:lora_requests_info{max_lora=\"1\",running_lora_adapters=\"lora4,"
	    "lora2\",waiting_lora_adapters=\"\"} 1.257894567e+09\n"
	    "vllm:lora_requests_info{max_lora=\"1\",running_lora_adapters=\"lora3\","
	    "waiting_lora_adapters=\"\"} 1.257894600e+09\n";
	char *p;

	new_server(&srv);
	if (load_page("vllm.txt", &pg)) {
		agent_metrics__extract(&pg, &srv);
		loras_str(&srv, got, sizeof(got));
		ASSERT_STREQ(got, "sql-lora,chat-lora", "running adapters");
	}
	promtext__free(&pg);
	if (load_page("vllm-lora-history.txt", &pg)) {
		agent_metrics__extract(&pg, &srv);
		loras_str(&srv, got, sizeof(got));
		ASSERT_STREQ(got, "lora4,lora3", "newest label set, not the last line");
	}
	promtext__free(&pg);
	if (extract_text(&srv, later)) {
		loras_str(&srv, got, sizeof(got));
		ASSERT_STREQ(got, "lora3", "unloaded adapter gone in one scrape");
	}
	/* 40 adapters of 9 characters: 399 characters, none cut, none made up */
	p = page +
	    sprintf(page, "vllm:lora_requests_info{max_lora=\"40\",running_lora_adapters=\"");
	for (int i = 0; i < 40; i++) {
		p += sprintf(p, "%sadapter%02d", i ? "," : "", i);
		if (i < AGENT_SERVER_MODELS)
			sprintf(want + strlen(want), "%sadapter%02d", i ? "," : "", i);
	}
	sprintf(p, "\",waiting_lora_adapters=\"\"} 1.7e9\n");
	if (extract_text(&srv, page)) {
		loras_str(&srv, got, sizeof(got));
		ASSERT_STREQ(got, want, "long list read whole (up to the per-server limit)");
	}
	if (ASSERT_OK(promtext__parse(&pg, other, strlen(other), err, sizeof(err)), err)) {
		agent_metrics__extract(&pg, &srv);
		ASSERT_STREQ(srv.s.kind, "unknown", "unknown kind");
		ASSERT_TRUE(srv.s.queue_depth == -1 && srv.s.kv_cache_usage == -1, "nothing known");
		ASSERT_TRUE(srv.s.ttft_avg_ms == -1, "kind changed: windows reset");
		ASSERT_EQ(srv.nloras, 0, "no adapters");
	}
	promtext__free(&pg);
}

/* point 3: SGLang's hit rate is the window's cached/prompt tokens, not
 * the gauge its scheduler resets to 0 while decoding */
static void sglang_hits(void)
{
	const char *p1 = "sglang:prompt_tokens_total{model_name=\"m\"} 1000\n"
			 "sglang:cached_tokens_total{model_name=\"m\"} 500\n"
			 "sglang:cache_hit_rate{model_name=\"m\"} 0\n";
	const char *p2 = "sglang:prompt_tokens_total{model_name=\"m\"} 2000\n"
			 "sglang:cached_tokens_total{model_name=\"m\"} 1400\n"
			 "sglang:cache_hit_rate{model_name=\"m\"} 0\n";
	struct agent_server srv;

	new_server(&srv);
	if (extract_text(&srv, p1))
		ASSERT_TRUE(fabs(srv.s.prefix_cache_hit_rate - 0.5) < 1e-9, "lifetime on page 1");
	if (extract_text(&srv, p2))
		ASSERT_TRUE(fabs(srv.s.prefix_cache_hit_rate - 0.9) < 1e-9, "window on page 2");
}

/* points 4 and 10: several models or engines of one server */
static void aggregation(void)
{
	/* Triton with two models: the fuller KV cache, not the sum */
	const char *triton =
	    "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\",model=\"a\","
	    "version=\"1\"} 0.4875\n"
	    "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\",model=\"b\","
	    "version=\"1\"} 0.6\n"
	    "nv_trt_llm_request_metrics{model=\"a\",request_type=\"waiting\",version=\"1\"} 1\n"
	    "nv_trt_llm_request_metrics{model=\"b\",request_type=\"waiting\",version=\"1\"} 3\n";
	/* vLLM with two data-parallel engines; one is full */
	const char *dp1 = "vllm:num_requests_waiting{engine=\"0\"} 2\n"
			  "vllm:num_requests_waiting{engine=\"1\"} 9\n"
			  "vllm:kv_cache_usage_perc{engine=\"0\"} 0.4375\n"
			  "vllm:kv_cache_usage_perc{engine=\"1\"} 1.0\n"
			  "vllm:prefix_cache_queries_total{engine=\"0\"} 1000\n"
			  "vllm:prefix_cache_hits_total{engine=\"0\"} 500\n"
			  "vllm:prefix_cache_queries_total{engine=\"1\"} 1000\n"
			  "vllm:prefix_cache_hits_total{engine=\"1\"} 500\n";
	/* engine 1 restarted (its counters start over); engine 0 went on */
	const char *dp2 = "vllm:num_requests_waiting{engine=\"0\"} 0\n"
			  "vllm:kv_cache_usage_perc{engine=\"0\"} 0.5\n"
			  "vllm:prefix_cache_queries_total{engine=\"0\"} 2000\n"
			  "vllm:prefix_cache_hits_total{engine=\"0\"} 1400\n"
			  "vllm:prefix_cache_queries_total{engine=\"1\"} 100\n"
			  "vllm:prefix_cache_hits_total{engine=\"1\"} 0\n";
	/*
	 * SGLang with --enable-metrics-for-all-schedulers: each tensor-parallel
	 * rank writes the same scheduler's figures (labels as SGLang's own
	 * metrics test expects them; values written for the test). Not summed;
	 * the fuller rank's KV usage, not their mean.
	 */
	const char *tp = "sglang:num_running_reqs{engine_type=\"unified\",model_name=\"m\","
			 "moe_ep_rank=\"0\",pp_rank=\"0\",tp_rank=\"0\"} 6\n"
			 "sglang:num_running_reqs{engine_type=\"unified\",model_name=\"m\","
			 "moe_ep_rank=\"0\",pp_rank=\"0\",tp_rank=\"1\"} 6\n"
			 "sglang:num_queue_reqs{engine_type=\"unified\",model_name=\"m\","
			 "moe_ep_rank=\"0\",pp_rank=\"0\",tp_rank=\"0\"} 2\n"
			 "sglang:num_queue_reqs{engine_type=\"unified\",model_name=\"m\","
			 "moe_ep_rank=\"0\",pp_rank=\"0\",tp_rank=\"1\"} 2\n"
			 "sglang:token_usage{engine_type=\"unified\",model_name=\"m\","
			 "moe_ep_rank=\"0\",pp_rank=\"0\",tp_rank=\"0\"} 0.25\n"
			 "sglang:token_usage{engine_type=\"unified\",model_name=\"m\","
			 "moe_ep_rank=\"0\",pp_rank=\"0\",tp_rank=\"1\"} 0.35\n";
	/*
	 * SGLang with --enable-priority-scheduling: the total under the
	 * scheduler's labels, priority="", and a breakdown per priority (as
	 * SchedulerMetricsCollector._log_gauge_queue_count() in
	 * python/sglang/srt/metrics/collector.py writes them; values written
	 * for the test). The total counts, the breakdown does not; a
	 * breakdown alone adds up.
	 */
	const char *prio = "sglang:num_running_reqs{model_name=\"m\",priority=\"\"} 5\n"
			   "sglang:num_running_reqs{model_name=\"m\",priority=\"0\"} 1\n"
			   "sglang:num_running_reqs{model_name=\"m\",priority=\"5\"} 4\n"
			   "sglang:num_queue_reqs{model_name=\"m\",priority=\"\"} 6\n"
			   "sglang:num_queue_reqs{model_name=\"m\",priority=\"0\"} 2\n"
			   "sglang:num_queue_reqs{model_name=\"m\",priority=\"5\"} 4\n";
	const char *prio_only = "sglang:num_queue_reqs{model_name=\"m\",priority=\"0\"} 2\n"
				"sglang:num_queue_reqs{model_name=\"m\",priority=\"5\"} 4\n";
	/* both prefixes on one page: the "sglang:" names, counted once */
	const char *both = "sglang:num_queue_reqs{model_name=\"m\"} 4\n"
			   "sglang_num_queue_reqs{model_name=\"m\"} 4\n";
	/* a broken figure on one engine wipes nothing */
	const char *inf = "vllm:num_requests_waiting{engine=\"0\"} 3\n"
			  "vllm:num_requests_waiting{engine=\"1\"} +Inf\n";
	struct agent_server srv;

	new_server(&srv);
	if (extract_text(&srv, triton)) {
		ASSERT_TRUE(fabs(srv.s.kv_cache_usage - 0.6) < 1e-9, "Triton KV: max over models");
		ASSERT_TRUE(srv.s.queue_depth == 4, "Triton queues add up");
	}
	new_server(&srv);
	if (extract_text(&srv, dp1)) {
		ASSERT_TRUE(srv.s.kv_cache_usage == 1.0, "one full engine: full");
		ASSERT_TRUE(srv.s.queue_depth == 11, "engines' queues add up");
	}
	if (extract_text(&srv, dp2)) {
		/* (900 + 0) / (1000 + 100), not the lifetime 1400/2100 */
		ASSERT_TRUE(fabs(srv.s.prefix_cache_hit_rate - 900.0 / 1100) < 1e-9,
			    "window survives one engine's restart");
		ASSERT_TRUE(srv.restarted, "the restart is seen");
	}
	new_server(&srv);
	if (extract_text(&srv, prio))
		ASSERT_TRUE(srv.s.queue_depth == 6 && srv.s.running == 5,
			    "priority breakdown: the totals alone");
	new_server(&srv);
	if (extract_text(&srv, prio_only))
		ASSERT_TRUE(srv.s.queue_depth == 6, "a breakdown alone adds up");
	new_server(&srv);
	if (extract_text(&srv, tp)) {
		ASSERT_TRUE(srv.s.queue_depth == 2 && srv.s.running == 6, "ranks counted once");
		ASSERT_TRUE(fabs(srv.s.kv_cache_usage - 0.35) < 1e-9, "the fuller rank's KV");
	}
	new_server(&srv);
	if (extract_text(&srv, both))
		ASSERT_TRUE(srv.s.queue_depth == 4, "two prefixes, one queue");
	new_server(&srv);
	if (extract_text(&srv, inf))
		ASSERT_TRUE(srv.s.queue_depth == 3, "+Inf skipped");
	/* point 9: a vLLM with no request yet has only HELP/TYPE lines */
	new_server(&srv);
	if (extract_text(&srv, "# HELP vllm:num_requests_running Running.\n"
			       "# TYPE vllm:num_requests_running gauge\n"))
		ASSERT_STREQ(srv.s.kind, "vllm", "kind from TYPE lines");
}

/* appends to a page being written, within its buffer */
static void page_add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void page_add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < cap - *len)
		*len += (size_t)n;
}

/* two pages of n engines' request latencies, each engine finishing 10
 * requests of 0.5 s between them, into a new server srv */
static bool engines_e2e(struct agent_server *srv, char *page, size_t cap, int n)
{
	size_t len;

	new_server(srv);
	for (int p = 0; p < 2; p++) {
		len = 0;
		for (int e = 0; e < n; e++)
			page_add(page, cap, &len,
				 "vllm:e2e_request_latency_seconds_sum{engine=\"%d\"} %d\n"
				 "vllm:e2e_request_latency_seconds_count{engine=\"%d\"} %d\n",
				 e, 100 + 5 * p, e, 1000 + 10 * p);
		if (!extract_text(srv, page))
			return false;
	}
	return true;
}

/*
 * Figures a page can hold and a report cannot: a count past the report's
 * bound (every balancer would refuse the node's whole report), negative
 * samples among good ones, more engines than the counters remember (their
 * whole values counted as growth on every page), more series of one gauge
 * than any engine writes (each compared with every other). Values written
 * for the test.
 */
static void hostile_figures(void)
{
	static char page[256 * 1024];
	struct agent_server srv;
	size_t len;

	new_server(&srv);
	if (extract_text(&srv, "vllm:num_requests_waiting 1e10\n"
			       "vllm:num_requests_running 5\n"))
		ASSERT_TRUE(srv.s.queue_depth == AR_MAX_FIGURE, "held at the report's bound");
	new_server(&srv);
	if (extract_text(&srv, "vllm:num_requests_waiting{engine=\"0\"} 5\n"
			       "vllm:num_requests_waiting{engine=\"1\"} -10\n"))
		ASSERT_TRUE(srv.s.queue_depth == 5, "a negative sample says nothing");

	/* 20 engines, each finishing 10 requests of 0.5 s between pages */
	if (engines_e2e(&srv, page, sizeof(page), 20))
		ASSERT_TRUE(fabs(srv.s.e2e_avg_ms - 500) < 1e-6, "20 engines: the window's mean");
	/* more engines than remembered: unknown, not a lifetime mean */
	if (engines_e2e(&srv, page, sizeof(page), AGENT_COUNTER_SERIES + 2))
		ASSERT_TRUE(srv.s.e2e_avg_ms == -1, "too many engines: unknown");
	/* one gauge in more series than summed */
	new_server(&srv);
	len = 0;
	for (int e = 0; e < AGENT_GAUGE_SERIES + 1; e++)
		page_add(page, sizeof(page), &len, "vllm:num_requests_waiting{x=\"%d\"} 1\n", e);
	if (extract_text(&srv, page))
		ASSERT_TRUE(srv.s.queue_depth == -1, "too many series: unknown");
	new_server(&srv);
	len = 0;
	for (int e = 0; e < AGENT_GAUGE_SERIES; e++)
		page_add(page, sizeof(page), &len, "vllm:num_requests_waiting{x=\"%d\"} 1\n", e);
	if (extract_text(&srv, page))
		ASSERT_TRUE(srv.s.queue_depth == AGENT_GAUGE_SERIES,
			    "as many as summed: their sum");
}

/*
 * Families no page in tests/data/metrics/ has (none recorded was found,
 * docs/engines.md): vLLM V0's prefix cache hit rate gauge (0.5.5 on; -1
 * while prefix caching is off) and Triton's time to first response histogram
 * (decoupled models, histogram metrics on). Names, HELP and labels as those
 * releases write them; values written for the test.
 */
static void unrecorded_families(void)
{
	const char *v0 = "# HELP vllm:gpu_prefix_cache_hit_rate GPU prefix cache block hit rate.\n"
			 "# TYPE vllm:gpu_prefix_cache_hit_rate gauge\n"
			 "vllm:gpu_prefix_cache_hit_rate{model_name=\"m\"} 0.31\n";
	const char *v0_off = "vllm:gpu_prefix_cache_hit_rate{model_name=\"m\"} -1.0\n";
	const char *triton =
	    "# HELP nv_inference_first_response_histogram_ms Duration from request to first "
	    "response in milliseconds\n"
	    "# TYPE nv_inference_first_response_histogram_ms histogram\n"
	    "nv_inference_first_response_histogram_ms_count{model=\"m\",version=\"1\"} 4\n"
	    "nv_inference_first_response_histogram_ms_sum{model=\"m\",version=\"1\"} 400\n"
	    "nv_inference_first_response_histogram_ms_bucket{model=\"m\",version=\"1\","
	    "le=\"100\"} 2\n"
	    "nv_inference_first_response_histogram_ms_bucket{model=\"m\",version=\"1\","
	    "le=\"+Inf\"} 4\n";
	struct agent_server srv;

	new_server(&srv);
	if (extract_text(&srv, v0))
		ASSERT_TRUE(fabs(srv.s.prefix_cache_hit_rate - 0.31) < 1e-9, "V0 hit rate gauge");
	if (extract_text(&srv, v0_off))
		ASSERT_TRUE(srv.s.prefix_cache_hit_rate == -1, "prefix caching off: unknown");
	new_server(&srv);
	if (extract_text(&srv, triton)) {
		ASSERT_STREQ(srv.s.kind, "triton", "kind");
		ASSERT_TRUE(fabs(srv.s.ttft_avg_ms - 100) < 1e-9, "Triton TTFT: ms, sum/count");
	}
}

/* a recorded page of tests/data/metrics/, whole, or NULL */
static char *data_file(const char *file)
{
	const char *root = getenv("AIBL_ROOT");
	char path[512], *buf = NULL;
	size_t len = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/data/metrics/%s", root ? root : ".", file);
	f = fopen(path, "r");
	if (!ASSERT_OK_PTR(f, path))
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* points 5-7: trtllm-serve, llama.cpp, Ollama; per-server settings */
static void other_engines(void)
{
	const char *unprefixed =
	    "# TYPE num_requests_running gauge\n"
	    "num_requests_running{model_name=\"q\",engine_type=\"trtllm\"} 4\n"
	    "kv_cache_utilization{model_name=\"q\",engine_type=\"trtllm\"} 0.25\n";
	const char *nim =
	    "# HELP num_requests_running Number of requests currently running on GPU.\n"
	    "# TYPE num_requests_running gauge\n"
	    "num_requests_running{model_name=\"meta/llama-3.1-8b-instruct\"} 1.0\n"
	    "time_to_first_token_seconds_count{model_name=\"meta/llama-3.1-8b-instruct\"} 5.0\n"
	    "time_to_first_token_seconds_sum{model_name=\"meta/llama-3.1-8b-instruct\"} "
	    "0.6119842529296875\n";
	const char *other_label = "requests_total{engine_type=\"undefined\"} 3\n";
	const char *l501 =
	    "{\"error\":{\"code\":501,\"message\":\"This server does not support "
	    "metrics endpoint. Start it with `--metrics`\",\"type\":\"not_supported_error\"}}";
	const char *tags =
	    "{\"models\":[{\"name\":\"gemma2:latest\",\"model\":\"gemma2:latest\","
	    "\"modified_at\":\"2024-10-09T23:40:13.775729056+10:00\",\"size\":5443152417}]}";
	struct agent_server srv;
	char msg[256], *ps;
	size_t len;

	new_server(&srv);
	if (extract_text(&srv, unprefixed)) {
		ASSERT_STREQ(srv.s.kind, "trtllm", "unprefixed trtllm-serve names");
		ASSERT_TRUE(srv.s.running == 4 && srv.s.kv_cache_usage == 0.25, "figures");
	}
	/* the same unprefixed names without engine_type: NVIDIA NIM's page
	 * (lines of the payload Datadog's nvidia_nim check replays) is not
	 * trtllm-serve's */
	new_server(&srv);
	if (extract_text(&srv, nim))
		ASSERT_STREQ(srv.s.kind, "unknown", "NIM: no engine_type");
	/* an engine_type label on another family says nothing */
	new_server(&srv);
	if (extract_text(&srv, other_label))
		ASSERT_STREQ(srv.s.kind, "unknown", "engine_type alone");
	/* trtllm-serve: /metrics is JSON, its Prometheus page is elsewhere */
	new_server(&srv);
	ASSERT_STREQ(agent_server__metrics_path(&srv), "/metrics", "first try");
	ASSERT_EQ(agent_metrics__take(&srv, 200, "[]", 2, 0, msg, sizeof(msg)), -EAGAIN, msg);
	ASSERT_STREQ(agent_server__metrics_path(&srv), "/prometheus/metrics", "then");
	ASSERT_EQ(agent_metrics__take(&srv, 404, "", 0, 0, msg, sizeof(msg)), -EAGAIN, msg);
	ASSERT_STREQ(agent_server__metrics_path(&srv), "/api/ps", "then Ollama's");
	/* llama.cpp without --metrics: up, no figures */
	new_server(&srv);
	ASSERT_OK(agent_metrics__take(&srv, 501, l501, strlen(l501), 0, msg, sizeof(msg)), msg);
	ASSERT_STREQ(srv.s.kind, "llamacpp", "llama.cpp recognised");
	ASSERT_TRUE(srv.s.queue_depth == -1, "no figures");
	/* settings */
	new_server(&srv);
	ASSERT_OK(agent_server__spec(&srv, "http://h:8000/,kind=trtllm", msg, sizeof(msg)), msg);
	ASSERT_STREQ(srv.s.url, "http://h:8000", "base URL");
	ASSERT_STREQ(agent_server__metrics_path(&srv), "/prometheus/metrics", "trtllm path");
	ASSERT_OK(agent_server__spec(&srv, "http://h:1,metrics=/m,kind=ollama", msg, sizeof(msg)),
		  msg);
	ASSERT_STREQ(agent_server__metrics_path(&srv), "/m", "path set");
	ASSERT_STREQ(agent_server__models_path(&srv), "/api/tags", "Ollama's list");
	ASSERT_EQ(agent_server__spec(&srv, "http://h:1,kind=foo", msg, sizeof(msg)), -EINVAL, msg);
	ASSERT_EQ(agent_server__spec(&srv, "http://h:1,path=/x", msg, sizeof(msg)), -EINVAL, msg);
	ASSERT_EQ(srv.slots_cfg, 0, "no slots stated");
	ASSERT_OK(agent_server__spec(&srv, "http://h:1,slots=256,kind=vllm", msg, sizeof(msg)),
		  msg);
	ASSERT_EQ(srv.slots_cfg, 256, "slots stated");
	ASSERT_STREQ(srv.kind_cfg, "vllm", "and the kind after them");
	for (int i = 0; i < 6; i++) {
		static const char *const bad[] = {"slots=0",  "slots=",	  "slots=-4",
						  "slots=8x", "slots=+8", "slots=100001"};
		char spec[64];

		snprintf(spec, sizeof(spec), "http://h:1,%s", bad[i]);
		ASSERT_EQ(agent_server__spec(&srv, spec, msg, sizeof(msg)), -EINVAL, spec);
		ASSERT_TRUE(strstr(msg, "slots= takes a count") != NULL, msg);
	}
	/* Ollama: loaded models from /api/ps, the rest from /api/tags */
	ps = data_file("ollama-ps.json");
	if (!ps)
		return;
	len = strlen(ps);
	new_server(&srv);
	if (ASSERT_OK(agent_ollama__ps(ps, len, &srv, 0, msg, sizeof(msg)), msg)) {
		ASSERT_STREQ(srv.s.kind, "ollama", "kind");
		ASSERT_EQ(srv.npage_models, 2, "two loaded");
		ASSERT_STREQ(srv.page_models[1], "mistral:7b-instruct", "name");
	}
	/* 18:48:00+02:00: the second one's keep-alive ran out at 18:47:46 */
	ASSERT_OK(agent_ollama__ps(ps, len, &srv, 1753894080000ULL, msg, sizeof(msg)), msg);
	ASSERT_EQ(srv.npage_models, 1, "expired one left out");
	free(ps);
	if (ASSERT_OK(agent_ollama__tags(tags, strlen(tags), &srv, msg, sizeof(msg)), msg)) {
		ASSERT_EQ(srv.nmodels, 1, "one on disk");
		ASSERT_FALSE(srv.models[0].resident, "not loaded");
	}
}

static int info_slots(const char *kind, const char *body, unsigned int *slots, char *msg,
		      size_t msglen)
{
	return agent_info__slots(kind, body, strlen(body), slots, msg, msglen);
}

/* the SGLang capture with its first state changed by edit(), as text */
static char *sglang_info_edited(const char *page, void (*edit)(json_t *root, json_t *state))
{
	json_t *root = json_loads(page, 0, NULL);
	char *out;

	edit(root, json_array_get(json_object_get(root, "internal_states"), 0));
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return out;
}

static void edit_two_dp(json_t *root, json_t *state)
{
	json_array_append(json_object_get(root, "internal_states"), state);
}

static void edit_no_per_dp(json_t *root, json_t *state)
{
	(void)root;
	json_object_del(state, "effective_max_running_requests_per_dp");
}

static void edit_nothing_said(json_t *root, json_t *state)
{
	json_object_del(state, "effective_max_running_requests_per_dp");
	json_object_set_new(root, "max_running_requests", json_null());
}

static void edit_bad_dp(json_t *root, json_t *state)
{
	(void)root;
	json_object_set_new(state, "effective_max_running_requests_per_dp", json_string("128"));
}

/* the pages the engine server of engine_slots serves, by path */
static struct {
	const char *metrics, *props, *server_info, *get_server_info;
	int hits;	    /* info pages asked for */
	bool props_stall;   /* /props answers after 1 s, past the agent's timeout */
	const char *models; /* /v1/models, NULL the default list of "m" */
	bool models_fail;   /* /v1/models answers 500 */
} eng;

static enum MHD_Result eng_handler(void *cls, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, const char *upload,
				   size_t *upload_len, void **con_cls)
{
	static const char models[] = "{\"object\":\"list\",\"data\":[{\"id\":\"m\"}]}";
	const char *body = NULL;
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls, (void)method, (void)version, (void)upload, (void)upload_len, (void)con_cls;
	if (!strcmp(url, "/metrics"))
		body = eng.metrics;
	else if (!strcmp(url, "/v1/models"))
		body = eng.models ?: models;
	else if (!strcmp(url, "/props"))
		body = eng.props;
	else if (!strcmp(url, "/server_info"))
		body = eng.server_info;
	else if (!strcmp(url, "/get_server_info"))
		body = eng.get_server_info;
	if (strcmp(url, "/metrics") && strcmp(url, "/v1/models"))
		__atomic_add_fetch(&eng.hits, 1, __ATOMIC_RELAXED);
	if (!strcmp(url, "/props") && eng.props_stall)
		sleep(1);
	r = MHD_create_response_from_buffer(body ? strlen(body) : 9, (void *)(body ?: "not found"),
					    MHD_RESPMEM_MUST_COPY);
	ret = MHD_queue_response(c,
				 !strcmp(url, "/v1/models") && eng.models_fail
				     ? MHD_HTTP_INTERNAL_SERVER_ERROR
				 : body ? MHD_HTTP_OK
					: MHD_HTTP_NOT_FOUND,
				 r);
	MHD_destroy_response(r);
	return ret;
}

/* an agent of one model server at url, no NVML, a 50 ms scrape */
static struct agent_cfg one_server_cfg(char *url)
{
	return (struct agent_cfg){.name = "n",
				  .urls = {url},
				  .nservers = 1,
				  .scrape_interval_ms = 50,
				  .scrape_timeout_ms = 500,
				  .stale_ms = 5000,
				  .max_hints = 16,
				  .pressure_start = 0.5,
				  .pressure_max_rate = 4,
				  .traffic_window_ms = 1000,
				  .no_nvml = true};
}

/* the engine server of eng_handler with this metrics page, its base URL
 * in url; NULL (asserted) when it does not start */
static struct MHD_Daemon *eng_start(const char *page, char *url, size_t len)
{
	struct MHD_Daemon *d =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
			     NULL, NULL, eng_handler, NULL, MHD_OPTION_END);

	if (!ASSERT_OK_PTR(d, "engine server"))
		return NULL;
	memset(&eng, 0, sizeof(eng));
	eng.metrics = page;
	snprintf(url, len, "http://127.0.0.1:%d",
		 MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
	return d;
}

/* an agent of one server, eng_handler's (its page and model list), and
 * the reports it gives */
struct eng_agent {
	struct MHD_Daemon *d; /* NULL once stopped */
	char url[96];
	struct agent a;
	bool init;
	struct agent_report r;
};

/* e up on this metrics page and /v1/models answer (NULL: the default
 * list), with stale_ms (0: one_server_cfg's); false (asserted) if not */
static bool eng_agent_up(struct eng_agent *e, const char *page, const char *models,
			 unsigned int stale_ms)
{
	struct agent_cfg cfg = one_server_cfg(e->url);
	char msg[256] = "";

	memset(e, 0, sizeof(*e));
	e->d = eng_start(page, e->url, sizeof(e->url));
	if (!e->d)
		return false;
	eng.models = models;
	if (stale_ms)
		cfg.stale_ms = stale_ms;
	e->init = ASSERT_OK(agent__init(&e->a, &cfg, msg, sizeof(msg)), msg);
	return e->init;
}

static void eng_agent_down(struct eng_agent *e)
{
	agent_report__free(&e->r);
	if (e->init)
		agent__fini(&e->a);
	if (e->d)
		MHD_stop_daemon(e->d);
	memset(&eng, 0, sizeof(eng));
}

/*
 * A failed scrape (HTTP 404 here, as a 500 or a timeout) is no news that the
 * server is down: it stays up, its figures aging, until --stale-ms passes
 * without a good one (docs/agent.md). Down at the first failure, one slow
 * page took its models out of the report, and a stale report counts as a
 * failed poll at aibld.
 */
static void failed_scrape_keeps_up(void)
{
	static const char page[] = "vllm:num_requests_running{model_name=\"m\"} 2\n"
				   "vllm:num_requests_waiting{model_name=\"m\"} 0\n";
	struct eng_agent e;
	struct agent_report *r = &e.r;

	if (!eng_agent_up(&e, page, NULL, 300))
		goto out;
	agent__collect_once(&e.a);
	if (!report_of(&e.a, r) || !ASSERT_TRUE(r->servers[0].up, "up after a good page"))
		goto out;
	eng.metrics = NULL; /* 404 from now on */
	agent__collect_once(&e.a);
	if (report_of(&e.a, r)) {
		ASSERT_TRUE(r->servers[0].up, "one failed scrape: still up");
		ASSERT_FALSE(r->stale, "the report not stale");
		ASSERT_TRUE(r->servers[0].error[0] != 0, "the failure said");
		ASSERT_TRUE(r->nmodels == 1 && r->models[0].resident, "its model still resident");
	}
	/* no good page for longer than stale_ms: down */
	usleep(400 * 1000);
	agent__collect_once(&e.a);
	if (report_of(&e.a, r)) {
		ASSERT_FALSE(r->servers[0].up, "down after stale_ms without a good page");
		ASSERT_TRUE(r->stale, "stale");
	}
	/* a refused connection is news at once: nothing listens (the 404s
	 * sent the agent round the usual metrics paths: back to /metrics
	 * within a few rounds) */
	eng.metrics = page;
	for (int i = 0; i < 4 && report_of(&e.a, r) && !r->servers[0].up; i++)
		agent__collect_once(&e.a);
	if (report_of(&e.a, r))
		ASSERT_TRUE(r->servers[0].up, "up again after a good page");
	MHD_stop_daemon(e.d);
	e.d = NULL;
	agent__collect_once(&e.a);
	if (report_of(&e.a, r))
		ASSERT_FALSE(r->servers[0].up, "refused: down at once");
out:
	eng_agent_down(&e);
}

static const struct ar_model *report_model(const struct agent_report *r, const char *name)
{
	for (int i = 0; i < r->nmodels; i++)
		if (!strcmp(r->models[i].name, name))
			return &r->models[i];
	return NULL;
}

/*
 * A model list that fails while the metrics page answers is no news for
 * stale_ms; past that, what it last said is not what is loaded now (the
 * engine restarted with other models, an adapter unloaded): its models
 * stay listed, not resident, but for those the metrics page names.
 */
static void failed_model_list_ages(void)
{
	static const char page[] = "vllm:num_requests_running{model_name=\"m\"} 0\n"
				   "vllm:num_requests_waiting{model_name=\"m\"} 0\n";
	const struct ar_model *m, *old;
	struct eng_agent e;
	struct agent_report *r = &e.r;

	/* stale_ms long enough that a loaded machine's two rounds fit in it */
	if (!eng_agent_up(&e, page,
			  "{\"object\":\"list\",\"data\":[{\"id\":\"m\"},{\"id\":\"old\"}]}", 1500))
		goto out;
	agent__collect_once(&e.a);
	if (!report_of(&e.a, r))
		goto out;
	old = report_model(r, "old");
	if (!ASSERT_TRUE(old && old->resident, "listed: resident"))
		goto out;
	eng.models_fail = true;
	agent__collect_once(&e.a);
	if (report_of(&e.a, r)) {
		old = report_model(r, "old");
		ASSERT_TRUE(old && old->resident, "one failed list: still resident");
	}
	usleep(1600 * 1000);
	agent__collect_once(&e.a);
	if (report_of(&e.a, r)) {
		m = report_model(r, "m");
		old = report_model(r, "old");
		ASSERT_TRUE(r->servers[0].up && !r->stale, "the metrics page keeps it up");
		ASSERT_TRUE(old && !old->resident, "no list for stale_ms: not resident");
		ASSERT_TRUE(m && m->resident, "the model the metrics page names: resident");
		ASSERT_TRUE(strstr(r->servers[0].error, "model list") != NULL, "the failure said");
	}
	eng.models_fail = false;
	agent__collect_once(&e.a);
	if (report_of(&e.a, r)) {
		old = report_model(r, "old");
		ASSERT_TRUE(old && old->resident, "read again: resident");
	}
out:
	eng_agent_down(&e);
}

/*
 * A hint naming a model lasts while the model is resident: unloaded, its
 * hints go for good, and loaded again it starts with none (its KV went).
 * Before, the hints were only left out while the model was away, and came
 * back with it: pins to a cold cache.
 */
static void hints_follow_model(void)
{
	static const char page[] = "vllm:num_requests_running{model_name=\"m\"} 0\n";
	static const char both[] = "{\"object\":\"list\",\"data\":[{\"id\":\"m\"},{\"id\":\"k\"}]}";
	struct ar_hint h = {0};
	struct eng_agent e;
	struct agent_report *r = &e.r;

	if (!eng_agent_up(&e, page, both, 0))
		goto out;
	agent__collect_once(&e.a);
	aibl_addr__parse("192.0.2.1", &h.client, &h.client_family);
	h.ttl_ms = 600000;
	h.score = 1;
	strcpy(h.model, "m");
	agent_hints__put(&e.a.hints, &h);
	strcpy(h.model, "k");
	agent_hints__put(&e.a.hints, &h);
	if (report_of(&e.a, r))
		ASSERT_EQ(r->nhints, 2, "both models resident: both hints");
	eng.models = "{\"object\":\"list\",\"data\":[{\"id\":\"k\"}]}";
	agent__collect_once(&e.a);
	if (report_of(&e.a, r))
		ASSERT_TRUE(r->nhints == 1 && !strcmp(r->hints[0].model, "k"),
			    "m unloaded: its hint gone");
	eng.models = both;
	agent__collect_once(&e.a);
	if (report_of(&e.a, r))
		ASSERT_TRUE(r->nhints == 1 && !strcmp(r->hints[0].model, "k"),
			    "m loaded again: cold, no hint back");
out:
	eng_agent_down(&e);
}

/* an agent (not started) of two servers on closed loopback ports, both up
 * and scraped just now; false (said) when it cannot start */
static bool two_servers_up(struct agent *a)
{
	static char u1[] = "http://127.0.0.1:9", u2[] = "http://127.0.0.1:10";
	struct agent_cfg cfg = one_server_cfg(u1);
	char msg[256] = "";

	cfg.urls[1] = u2;
	cfg.nservers = 2;
	if (!ASSERT_OK(agent__init(a, &cfg, msg, sizeof(msg)), msg))
		return false;
	for (int i = 0; i < 2; i++) {
		a->servers[i].s.up = true;
		a->servers[i].last_ok_ms = clock_mono_ms();
	}
	return true;
}

/* the node's requests in flight: every up server's running and waiting,
 * or unknown where one server's running count is (a Triton without
 * TensorRT-LLM's figures): counted as 0, a busy node read as idle */
static void in_flight_unknown(void)
{
	struct agent_report r = {0};
	struct agent a;

	if (!two_servers_up(&a))
		return;
	a.servers[0].s.running = 3;
	a.servers[0].s.queue_depth = 1;
	a.servers[1].s.running = -1; /* Triton: its pending requests alone */
	a.servers[1].s.queue_depth = 0;
	if (report_of(&a, &r))
		ASSERT_EQ(r.in_flight, -1, "one server's running unknown: the node's unknown");
	a.servers[1].s.running = 2;
	if (report_of(&a, &r))
		ASSERT_EQ(r.in_flight, 6, "both known: 3 + 1 + 2");
	agent_report__free(&r);
	agent__fini(&a);
}

/*
 * Two servers of 40 models each: a report carries 64, and the server whose
 * models were left out says so. Before, the 16 went unsaid.
 */
static void report_models_full(void)
{
	struct agent_report r = {0};
	struct agent a;

	if (!two_servers_up(&a))
		return;
	for (int i = 0; i < 2; i++) {
		struct agent_server *w = &a.servers[i];

		w->s.error[0] = '\0';
		w->models_ok_ms = w->last_ok_ms;
		w->nmodels = 40;
		for (int k = 0; k < 40; k++) {
			snprintf(w->models[k].name, sizeof(w->models[k].name), "s%d-lora-%d", i, k);
			w->models[k].resident = true;
		}
	}
	if (report_of(&a, &r)) {
		ASSERT_EQ(r.nmodels, AR_MAX_MODELS, "as many as a report carries");
		ASSERT_STREQ(r.servers[0].error, "", "the first server's all reported");
		ASSERT_TRUE(
		    strstr(r.servers[1].error, "'s1-lora-24' and any after it not reported"),
		    r.servers[1].error);
	}
	agent_report__free(&r);
	agent__fini(&a);
}

/*
 * A load asked of a model the engine holds already is answered so (200
 * resident), not started again: Ollama's loaded models are those of its
 * /api/ps (the page's), its /api/tags lists what it could load, none
 * resident. A new load there would call /api/generate again, and could
 * cut a keep_alive the operator set.
 */
static void load_held_ollama(void)
{
	char url[] = "http://127.0.0.1:9", server[AR_URL_LEN], msg[256] = "";
	struct agent_cfg cfg = one_server_cfg(url);
	struct agent a;
	struct agent_server *w;

	if (!ASSERT_OK(agent__init(&a, &cfg, msg, sizeof(msg)), msg))
		return;
	w = &a.servers[0];
	w->s.up = true;
	strcpy(w->s.kind, "ollama");
	w->nmodels = 1;
	strcpy(w->models[0].name, "llama3.2:1b"); /* from /api/tags */
	w->models[0].resident = false;
	w->npage_models = 1;
	strcpy(w->page_models[0], "llama3.2:1b"); /* from /api/ps */
	ASSERT_EQ(agent__load(&a, "llama3.2:1b", server, sizeof(server), msg, sizeof(msg)),
		  -EALREADY, "loaded already: resident");
	ASSERT_STREQ(server, url, "on that server");
	agent__fini(&a);
}

/* one agent on the engine server at port (spec options appended), `rounds`
 * rounds, then its report: the server's slots and the node's, and up */
static bool eng_report(int port, const char *opts, int rounds, double *srv_slots,
		       double *node_slots, bool *up)
{
	char url[96];
	struct agent_cfg cfg = one_server_cfg(url);
	struct agent a;
	struct agent_report r = {0};
	char msg[256] = "";
	bool ok;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, opts);
	if (!ASSERT_OK(agent__init(&a, &cfg, msg, sizeof(msg)), msg))
		return false;
	for (int i = 0; i < rounds; i++)
		agent__collect_once(&a);
	ok = report_of(&a, &r) && ASSERT_EQ(r.nservers, 1, "one server");
	if (ok) {
		*srv_slots = r.servers[0].slots;
		*node_slots = r.slots;
		*up = r.servers[0].up;
	}
	agent_report__free(&r);
	agent__fini(&a);
	return ok;
}

/*
 * The engine's own word on its batch limit: llama.cpp's /props
 * (total_slots) and SGLang's /server_info (the schedulers' limits), from
 * their recorded pages, then read live by an agent from a server that
 * serves them, where a stated slots=N wins and a missing or garbage page
 * leaves the slots unknown and the server up.
 */
static void engine_slots(void)
{
	char *props = data_file("llamacpp-props.json"),
	     *props4 = data_file("llamacpp-props-4slots.json");
	char *sgl = data_file("sglang-server-info.json"), *edited, msg[128];
	char *page_l = data_file("llamacpp-pr11512.txt"), *page_s = data_file("sglang.txt");
	static const char *const bad[] = {"{\"total_slots\": 0}",     "{\"total_slots\": -1}",
					  "{\"total_slots\": \"4\"}", "{\"total_slots\": 100001}",
					  "{\"total_slots\": 1.5}",   "[1, 2]",
					  "{\"total_slots\": 4",      "<html>not found</html>"};
	struct MHD_Daemon *d = NULL;
	struct agent_server srv;
	double ss = 0, ns = 0;
	unsigned int slots;
	bool up = false;
	int port;

	if (!props || !props4 || !sgl || !page_l || !page_s)
		goto out;
	ASSERT_OK(info_slots("llamacpp", props, &slots, msg, sizeof(msg)), msg);
	ASSERT_EQ(slots, 1, "llama.cpp README: total_slots 1");
	ASSERT_OK(info_slots("llamacpp", props4, &slots, msg, sizeof(msg)), msg);
	ASSERT_EQ(slots, 4, "llama-server b8681: 4 slots");
	ASSERT_OK(info_slots("sglang", sgl, &slots, msg, sizeof(msg)), msg);
	ASSERT_EQ(slots, 128, "SGLang: effective_max_running_requests_per_dp 128");
	/* two data-parallel schedulers run twice as many */
	edited = sglang_info_edited(sgl, edit_two_dp);
	ASSERT_OK(info_slots("sglang", edited, &slots, msg, sizeof(msg)), msg);
	ASSERT_EQ(slots, 256, "two schedulers");
	free(edited);
	/* a server from before the per-scheduler figure: its argument */
	edited = sglang_info_edited(sgl, edit_no_per_dp);
	ASSERT_OK(info_slots("sglang", edited, &slots, msg, sizeof(msg)), msg);
	ASSERT_EQ(slots, 128, "max_running_requests at the top");
	free(edited);
	edited = sglang_info_edited(sgl, edit_nothing_said);
	ASSERT_EQ(info_slots("sglang", edited, &slots, msg, sizeof(msg)), -ENOENT, "not said");
	ASSERT_EQ(slots, 0, "unknown");
	free(edited);
	edited = sglang_info_edited(sgl, edit_bad_dp);
	ASSERT_EQ(info_slots("sglang", edited, &slots, msg, sizeof(msg)), -EINVAL, "a string");
	ASSERT_TRUE(strstr(msg, "effective_max_running_requests_per_dp is not a count") != NULL,
		    msg);
	free(edited);
	ASSERT_EQ(info_slots("llamacpp", "{\"build_info\": \"b1\"}", &slots, msg, sizeof(msg)),
		  -ENOENT, "no total_slots");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(info_slots("llamacpp", bad[i], &slots, msg, sizeof(msg)), -EINVAL,
			  bad[i]);
		ASSERT_EQ(slots, 0, "nothing taken");
	}
	ASSERT_EQ(info_slots("vllm", props, &slots, msg, sizeof(msg)), -EINVAL, "no vLLM page");

	/* which page for which kind; SGLang's older path after a 404 */
	new_server(&srv);
	ASSERT_TRUE(agent_server__info_path(&srv) == NULL, "kind not known yet");
	strcpy(srv.s.kind, "vllm");
	ASSERT_TRUE(agent_server__info_path(&srv) == NULL, "vLLM says it nowhere");
	strcpy(srv.s.kind, "llamacpp");
	ASSERT_STREQ(agent_server__info_path(&srv), "/props", "llama.cpp");
	ASSERT_FALSE(agent_server__info_next(&srv), "no other");
	strcpy(srv.kind_cfg, "sglang");
	ASSERT_STREQ(agent_server__info_path(&srv), "/server_info", "kind=sglang wins");
	ASSERT_TRUE(agent_server__info_next(&srv), "an older one");
	ASSERT_STREQ(agent_server__info_path(&srv), "/get_server_info", "before 2026");
	ASSERT_FALSE(agent_server__info_next(&srv), "both asked: no other this time");
	ASSERT_STREQ(agent_server__info_path(&srv), "/server_info", "the newer first next time");

	/* live: a real agent reading them over HTTP */
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
			     NULL, NULL, eng_handler, NULL, MHD_OPTION_END);
	if (!ASSERT_OK_PTR(d, "engine server"))
		goto out;
	port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
	eng.metrics = page_l;
	eng.props = props4;
	/* the first round's page tells the kind, the second reads /props */
	if (eng_report(port, "", 2, &ss, &ns, &up)) {
		ASSERT_EQ(ss, 4, "llama.cpp: the engine's 4 slots");
		ASSERT_EQ(ns, 4, "the node's");
	}
	eng.hits = 0;
	if (eng_report(port, ",slots=6", 1, &ss, &ns, &up)) {
		ASSERT_EQ(ss, 6, "stated wins");
		ASSERT_EQ(eng.hits, 0, "and the engine is not asked");
	}
	eng.props = NULL; /* 404: a build without /props */
	if (eng_report(port, "", 2, &ss, &ns, &up)) {
		ASSERT_EQ(ss, -1, "unknown");
		ASSERT_TRUE(up, "still up");
	}
	eng.props = "{\"total_slots\": \"lots\"}";
	if (eng_report(port, "", 2, &ss, &ns, &up)) {
		ASSERT_EQ(ss, -1, "garbage: unknown");
		ASSERT_TRUE(up, "still up");
	}
	/* a /props that never answers in time: fetched with the round's pages,
	 * it costs the round no more than their timeout, and the server is up */
	eng.props = props4;
	eng.props_stall = true;
	if (eng_report(port, "", 2, &ss, &ns, &up)) {
		ASSERT_EQ(ss, -1, "stalled: unknown");
		ASSERT_TRUE(up, "still up");
	}
	eng.props_stall = false;
	/* an SGLang server from before /server_info: the older path next round */
	eng.metrics = page_s;
	eng.server_info = NULL;
	eng.get_server_info = sgl;
	eng.hits = 0;
	if (eng_report(port, "", 2, &ss, &ns, &up))
		ASSERT_EQ(ss, -1, "second round: /server_info 404");
	if (eng_report(port, "", 3, &ss, &ns, &up))
		ASSERT_EQ(ss, 128, "third round: /get_server_info");
	/* read once a minute, not every round */
	eng.hits = 0;
	eng.server_info = sgl;
	if (eng_report(port, "", 5, &ss, &ns, &up)) {
		ASSERT_EQ(ss, 128, "/server_info");
		ASSERT_EQ(eng.hits, 1, "one read in five rounds");
	}
out:
	if (d)
		MHD_stop_daemon(d);
	free(props);
	free(props4);
	free(sgl);
	free(page_l);
	free(page_s);
}

static void models_json(void)
{
	const char *vllm =
	    "{\"object\":\"list\",\"data\":[{\"id\":\"meta-llama/Llama-3.1-8B\","
	    "\"object\":\"model\",\"owned_by\":\"vllm\",\"max_model_len\":8192},"
	    "{\"id\":\"sql-lora\",\"object\":\"model\",\"parent\":\"meta-llama/Llama-3.1-8B\"}]}";
	const char *base = "{\"object\":\"list\",\"data\":[{\"id\":\"meta-llama/Llama-3.1-8B\","
			   "\"object\":\"model\",\"owned_by\":\"vllm\",\"max_model_len\":8192}]}";
	const char *sim = "{\"object\":\"list\",\"data\":[{\"id\":\"a\",\"resident\":true},"
			  "{\"id\":\"b\",\"resident\":false,\"loadable\":true}]}";
	/* the last: a good entry before a bad one takes nothing of it */
	static const char *const bad[] = {"",
					  "[]",
					  "{\"data\":{}}",
					  "{\"data\":[{\"id\":5}]}",
					  "{\"data\":[{\"name\":\"x\"}]}",
					  "{\"data\":[{\"id\":\"new\"},{\"id\":7}]}"};
	struct agent_server srv;
	char msg[256];

	new_server(&srv);
	if (ASSERT_OK(agent_models__parse(vllm, strlen(vllm), &srv, msg, sizeof(msg)), msg)) {
		ASSERT_EQ(srv.nmodels, 2, "two");
		ASSERT_STREQ(srv.models[0].name, "meta-llama/Llama-3.1-8B", "id");
		ASSERT_TRUE(srv.models[0].resident && srv.models[1].resident, "listed = resident");
		ASSERT_STREQ(srv.models[1].server, "http://127.0.0.1:1", "server url");
	}
	/* the adapter unloaded: the next list no longer has it */
	if (ASSERT_OK(agent_models__parse(base, strlen(base), &srv, msg, sizeof(msg)), msg)) {
		ASSERT_EQ(srv.nmodels, 1, "unloaded adapter gone in one scrape");
		ASSERT_STREQ(srv.models[0].name, "meta-llama/Llama-3.1-8B", "the base model stays");
	}
	if (ASSERT_OK(agent_models__parse(sim, strlen(sim), &srv, msg, sizeof(msg)), msg)) {
		ASSERT_EQ(srv.nmodels, 2, "sim two");
		ASSERT_TRUE(srv.models[0].resident, "a resident");
		ASSERT_FALSE(srv.models[1].resident, "b loadable only");
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(agent_models__parse(bad[i], strlen(bad[i]), &srv, msg, sizeof(msg)),
			  -EINVAL, bad[i]);
		ASSERT_EQ(srv.nmodels, 2, "previous list kept");
		ASSERT_STREQ(srv.models[0].name, "a", "its names too");
	}
	{
		/* a name no report can carry (a LoRA named by its path) is left
		 * out and said, the rest taken: refusing the list kept b, since
		 * unloaded, resident for good */
		char body[512], longid[131];

		memset(longid, 'x', 130);
		longid[130] = '\0';
		snprintf(body, sizeof(body), "{\"data\":[{\"id\":\"a\"},{\"id\":\"%s\"}]}", longid);
		if (ASSERT_OK(agent_models__parse(body, strlen(body), &srv, msg, sizeof(msg)),
			      msg)) {
			ASSERT_EQ(srv.nmodels, 1, "a alone: b gone, the long one left out");
			ASSERT_STREQ(srv.models[0].name, "a", "a");
			ASSERT_TRUE(strstr(msg, "data[1].id longer than 127 bytes") != NULL, msg);
		}
	}
	{
		/* as many models as a report carries (vLLM lists every
		 * adapter), and those beyond said: 32 were kept, unsaid */
		char body[8192];
		int len = snprintf(body, sizeof(body), "{\"data\":[");

		for (int i = 0; i < AR_MAX_MODELS + 6; i++)
			len += snprintf(body + len, sizeof(body) - len, "%s{\"id\":\"lora-%d\"}",
					i ? "," : "", i);
		snprintf(body + len, sizeof(body) - len, "]}");
		if (ASSERT_OK(agent_models__parse(body, strlen(body), &srv, msg, sizeof(msg)),
			      msg)) {
			ASSERT_EQ(srv.nmodels, AR_MAX_MODELS, "as many as a report carries");
			ASSERT_TRUE(strstr(msg, "70 models, a report carries 64") != NULL, msg);
		}
	}
}

static const char *client_str(const struct ar_hint *h)
{
	static char buf[INET6_ADDRSTRLEN];

	return aibl_addr__str(&h->client, h->client_family, buf, sizeof(buf));
}

static struct ar_hint mk(const char *client, uint32_t ttl)
{
	struct ar_hint h = {};

	aibl_addr__parse(client, &h.client, &h.client_family);
	aibl_addr__parse("10.100.0.1", &h.vip, &h.vip_family);
	h.port = 80;
	h.proto = 6;
	h.ttl_ms = ttl;
	h.score = 1;
	strcpy(h.source, "server");
	return h;
}

static void hints_aging(void)
{
	struct agent_hints t;
	struct ar_hint out[8], h;

	if (!ASSERT_OK(agent_hints__init(&t, 8, 0.5, 4), "init"))
		return;
	h = mk("10.0.0.1", 10000);
	agent_hints__put(&t, &h);
	h = mk("10.0.0.2", 3000);
	agent_hints__put(&t, &h);
	agent_hints__tick(&t, 1000, -1);  /* first tick only sets the clock */
	agent_hints__tick(&t, 3000, 0.2); /* 2 s at normal rate */
	ASSERT_EQ(agent_hints__export(&t, out, 8), 2, "both alive");
	ASSERT_EQ(out[0].ttl_ms, 8000, "aged 2 s");
	ASSERT_EQ(out[1].ttl_ms, 1000, "aged 2 s");
	/* KV cache full: 4x faster; 1 s later 4 s have gone */
	ASSERT_TRUE(agent_hints__rate(&t, 1.0) == 4, "max rate");
	ASSERT_TRUE(agent_hints__rate(&t, 0.75) == 2.5, "half way");
	ASSERT_TRUE(agent_hints__rate(&t, -1) == 1, "unknown kv");
	agent_hints__tick(&t, 4000, 1.0);
	ASSERT_EQ(agent_hints__export(&t, out, 8), 1, "short one expired");
	ASSERT_STREQ(client_str(&out[0]), "10.0.0.1", "long one left");
	ASSERT_EQ(out[0].ttl_ms, 4000, "aged 4 s in 1 s");
	/* refresh restores the lifetime; ttl 0 removes */
	h = mk("10.0.0.1", 9000);
	agent_hints__put(&t, &h);
	ASSERT_EQ(agent_hints__export(&t, out, 8), 1, "refreshed, not duplicated");
	ASSERT_EQ(out[0].ttl_ms, 9000, "new lifetime");
	h.ttl_ms = 0;
	agent_hints__put(&t, &h);
	ASSERT_EQ(agent_hints__export(&t, out, 8), 0, "forgotten");
	/* the clock going backwards ages nothing */
	h = mk("10.0.0.3", 500);
	agent_hints__put(&t, &h);
	agent_hints__tick(&t, 100, 0);
	ASSERT_EQ(agent_hints__export(&t, out, 8), 1, "kept");
	agent_hints__fini(&t);
}

static void hints_bounded(void)
{
	struct agent_hints t, bad;
	struct ar_hint out[4], h;
	char ip[32];

	ASSERT_EQ(agent_hints__init(&bad, AR_MAX_HINTS + 1, 0.5, 4), -EINVAL, "over the limit");
	ASSERT_EQ(agent_hints__init(&bad, 4, 1.0, 4), -EINVAL, "pressure 1");
	if (!ASSERT_OK(agent_hints__init(&t, 4, 0.5, 4), "init"))
		return;
	for (int i = 0; i < 4; i++) {
		snprintf(ip, sizeof(ip), "10.0.0.%d", i);
		h = mk(ip, 1000 * (i + 1));
		agent_hints__put(&t, &h);
	}
	/* full: a longer-lived hint replaces the one nearest expiry */
	h = mk("10.0.1.1", 3500);
	agent_hints__put(&t, &h);
	ASSERT_EQ(agent_hints__export(&t, out, 4), 4, "still 4");
	ASSERT_EQ(t.dropped, 1, "one dropped");
	for (int i = 0; i < 4; i++)
		ASSERT_TRUE(strcmp(client_str(&out[i]), "10.0.0.0"), "shortest went");
	/* a hint that would expire before all held ones is not taken */
	h = mk("10.0.1.2", 500);
	agent_hints__put(&t, &h);
	ASSERT_EQ(agent_hints__export(&t, out, 4), 4, "still 4");
	for (int i = 0; i < 4; i++)
		ASSERT_TRUE(strcmp(client_str(&out[i]), "10.0.1.2"), "short newcomer refused");
	agent_hints__fini(&t);
}

/*
 * A full table of AR_MAX_HINTS: keys that differ in one field only are
 * other hints; a refresh moves a hint in the expiry order; ticks expire
 * exactly the hints whose life has run out; a full table evicts the hint
 * nearest to expiry, whichever order they came in; export gives the
 * longest-lived first.
 */
static void hints_many(void)
{
	struct ar_hint *out = calloc(AR_MAX_HINTS, sizeof(*out)), h;
	struct agent_hints t;
	char ip[32];
	int n;

	if (!ASSERT_OK_PTR(out, "out") ||
	    !ASSERT_OK(agent_hints__init(&t, AR_MAX_HINTS, 0.5, 4), "init"))
		goto out;
	/* 512 clients x {port 80, port 81} x {no model, model m} x {tcp, udp}:
	 * ttl 1000 + 511 - the client's number, every variant of a client
	 * alike */
	for (int i = 0; i < 512; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 256, i % 256);
		for (int v = 0; v < 8; v++) {
			h = mk(ip, 1000 + (511 - i));
			h.port = v & 1 ? 81 : 80;
			if (v & 2)
				strcpy(h.model, "m");
			h.proto = v & 4 ? 17 : 6;
			agent_hints__put(&t, &h);
		}
	}
	ASSERT_EQ(t.n, AR_MAX_HINTS, "full, no variant taken for another");
	ASSERT_EQ(t.dropped, 0, "none dropped");
	/* the longest-lived client (10.1.0.0, 1511 ms) refreshed to live least */
	h = mk("10.1.0.0", 500);
	agent_hints__put(&t, &h);
	ASSERT_EQ(t.n, AR_MAX_HINTS, "a refresh adds none");
	n = agent_hints__export(&t, out, AR_MAX_HINTS);
	ASSERT_EQ(n, AR_MAX_HINTS, "all exported");
	for (int k = 1; k < n; k++)
		if (!ASSERT_TRUE(out[k - 1].ttl_ms >= out[k].ttl_ms, "longest-lived first"))
			break;
	ASSERT_EQ(out[n - 1].ttl_ms, 500, "the refreshed one last");
	ASSERT_STREQ(client_str(&out[n - 1]), "10.1.0.0", "it is 10.1.0.0");
	/* 600 ms on: the refreshed one (500) gone, every other (1000..) kept */
	agent_hints__tick(&t, 1000, -1);
	agent_hints__tick(&t, 1600, -1);
	ASSERT_EQ(t.n, AR_MAX_HINTS - 1, "the one due expired");
	/* 500 more: the clients of ttl 1000..1100 (numbers 411..511), 101
	 * clients x 8 variants, due at 1100 ms of age */
	agent_hints__tick(&t, 2100, -1);
	ASSERT_EQ(t.n, AR_MAX_HINTS - 1 - 101 * 8, "those due expired, no other");
	/* full again, then one more: the nearest to expiry (ttl 1101, 1 ms
	 * left now, client 410) makes room */
	for (int i = 0; i < 101 * 8 + 1; i++) {
		snprintf(ip, sizeof(ip), "10.2.%d.%d", i / 256, i % 256);
		h = mk(ip, 60000);
		agent_hints__put(&t, &h);
	}
	ASSERT_EQ(t.n, AR_MAX_HINTS, "full");
	ASSERT_EQ(t.dropped, 0, "room without eviction");
	h = mk("10.3.0.1", 60000);
	agent_hints__put(&t, &h);
	ASSERT_EQ(t.dropped, 1, "one evicted");
	n = agent_hints__export(&t, out, AR_MAX_HINTS);
	ASSERT_EQ(n, AR_MAX_HINTS, "still full");
	/* seven variants of client 410 left, 1 ms each, then client 409's */
	for (int k = 0; k < 7; k++) {
		ASSERT_EQ(out[n - 1 - k].ttl_ms, 1, "1 ms left");
		ASSERT_STREQ(client_str(&out[n - 1 - k]), "10.1.1.154", "client 410's");
	}
	ASSERT_EQ(out[n - 8].ttl_ms, 2, "2 ms left");
	ASSERT_STREQ(client_str(&out[n - 8]), "10.1.1.153", "client 409's");
	agent_hints__fini(&t);
out:
	free(out);
}

static void hints_post_body(void)
{
	const char *ok =
	    "{\"hints\":[{\"client\":\"10.0.0.5\",\"vip\":\"10.100.0.1\",\"port\":80,"
	    "\"proto\":\"tcp\",\"model\":\"m\",\"ttl_ms\":60000,\"score\":0.9},"
	    "{\"client\":\"fd00::7\",\"model\":\"m\",\"ttl_ms\":5,\"source\":\"traffic\"}]}";
	static const char *const bad[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"hints\":{}}",
	    "{\"hints\":[{\"client\":\"x\",\"model\":\"m\",\"ttl_ms\":1}]}",
	    "{\"hints\":[{\"client\":\"10.0.0.1\",\"ttl_ms\":1}]}",
	    "{\"hints\":[{\"client\":\"10.0.0.1\",\"model\":\"m\"}]}",
	};
	struct ar_hint *h = NULL;
	char err[256];
	int n = -1;

	if (ASSERT_OK(agent_hints__parse(ok, strlen(ok), &h, &n, err, sizeof(err)), err)) {
		ASSERT_EQ(n, 2, "two");
		ASSERT_TRUE(h[0].score == 0.9 && h[0].port == 80 && h[0].proto == 6, "first");
		ASSERT_TRUE(h[1].score == 1, "score defaults to 1");
		ASSERT_STREQ(h[1].source, "server", "posters cannot claim traffic");
	}
	free(h);
	{
		/* a server on a dual-stack socket names IPv4 peers ::ffff:a.b.c.d:
		 * an IPv4 client, as the data plane looks it up */
		const char *mapped = "{\"hints\":[{\"client\":\"::ffff:192.0.2.1\",\"vip\":"
				     "\"::ffff:10.100.0.1\",\"ttl_ms\":60000}]}";
		union aibl_addr v4;
		__u8 fam;

		h = NULL;
		aibl_addr__parse("192.0.2.1", &v4, &fam);
		if (ASSERT_OK(agent_hints__parse(mapped, strlen(mapped), &h, &n, err, sizeof(err)),
			      err)) {
			ASSERT_TRUE(h[0].client_family == AIBL_AF_INET &&
					!memcmp(&h[0].client, &v4, sizeof(v4)),
				    "mapped client: IPv4");
			ASSERT_EQ(h[0].vip_family, AIBL_AF_INET, "mapped VIP: IPv4");
		}
		free(h);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h = NULL;
		ASSERT_EQ(agent_hints__parse(bad[i], strlen(bad[i]), &h, &n, err, sizeof(err)),
			  -EINVAL, bad[i]);
		ASSERT_TRUE(h == NULL && n == 0, "nothing returned");
	}
}

static const struct test_case cases[] = {
    {"nvml_fake_devices", nvml_fake_devices},
    {"nvml_absent_or_failing", nvml_absent_or_failing},
    {"nvml_mig_and_permissions", nvml_mig_and_permissions},
    {"nvml_old_driver", nvml_old_driver},
    {"nvml_reserved_memory", nvml_reserved_memory},
    {"nvml_reinit", nvml_reinit},
    {"nvml_hang", nvml_hang},
    {"nvml_hang_open_close", nvml_hang_open_close},
    {"extract_kinds", extract_kinds},
    {"extract_windows", extract_windows},
    {"extract_window_pair_reset", extract_window_pair_reset},
    {"extract_e2e", extract_e2e},
    {"extract_prefill", extract_prefill},
    {"extract_prompt", extract_prompt},
    {"extract_run", extract_run},
    {"extract_run_tgi", extract_run_tgi},
    {"since_finish", since_finish},
    {"lora_and_unknown", lora_and_unknown},
    {"sglang_hits", sglang_hits},
    {"aggregation", aggregation},
    {"hostile_figures", hostile_figures},
    {"load_held_ollama", load_held_ollama},
    {"unrecorded_families", unrecorded_families},
    {"other_engines", other_engines},
    {"models_json", models_json},
    {"engine_slots", engine_slots},
    {"failed_scrape_keeps_up", failed_scrape_keeps_up},
    {"failed_model_list_ages", failed_model_list_ages},
    {"in_flight_unknown", in_flight_unknown},
    {"nvml_implausible", nvml_implausible},
    {"hints_aging", hints_aging},
    {"hints_bounded", hints_bounded},
    {"hints_many", hints_many},
    {"hints_post_body", hints_post_body},
    {"hints_follow_model", hints_follow_model},
    {"report_models_full", report_models_full},
};

TEST_MAIN("agent", cases)
