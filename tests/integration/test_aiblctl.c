// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aiblctl against the real data plane: the XDP program is loaded through
 * the data-plane loader with its maps pinned in a private bpffs directory,
 * the maps are filled with a fixture (services with IPv4 and IPv6 VIPs,
 * backends in every state, tables, members, names, connections, pins,
 * per-CPU counters), and build/aiblctl runs as a separate process, as an
 * operator would run it. Each command is checked in its human and its JSON
 * form, as tables of cases (arguments, exit code, checks on the JSON and
 * the text) that one runner executes; simulate runs the real program with
 * BPF_PROG_TEST_RUN. status and node drain talk to a test-local
 * libmicrohttpd server that implements the controller API (contract 3).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
#include <microhttpd.h>
#include <linux/types.h>
#include "aibl.h"
#include "aibl_hash.h"
#include "maps.h"
#include "../../user/aibld/dataplane.h"
#include "affinity.h"
#include "test.h"

#define TOKEN "cl-test-token-0123456789"

/* ring layout of the fixture's "chat" service: a 21-slot pattern, a at even slots */
#define PAT_LEN 21

enum { BE_A, BE_B, BE_C, BE_D, BE_E, NBE };
enum { SVC_CHAT, SVC_EMBED, SVC_BATCH, NSVC };

static const struct {
	const char *name;
	const char *addr;
	__u8 flags;
	__u8 accel;
	__u32 weight;
} fx_be[NBE] = {
    [BE_A] = {"gpu-a", "10.1.0.1", AIBL_BE_F_VALID, AIBL_ACCEL_GPU, 100},
    [BE_B] = {"gpu-b", "10.1.0.2", AIBL_BE_F_VALID | AIBL_BE_F_DRAINING, AIBL_ACCEL_GPU, 60},
    [BE_C] = {"gpu-c", "10.1.0.3", AIBL_BE_F_VALID | AIBL_BE_F_OVERLOADED, AIBL_ACCEL_GPU, 50},
    [BE_D] = {"gpu-d", "10.1.0.4", AIBL_BE_F_VALID | AIBL_BE_F_DOWN, AIBL_ACCEL_GPU, 10},
    [BE_E] = {"cpu-e", "fd00:1::5", AIBL_BE_F_VALID, AIBL_ACCEL_NONE, 1},
};

static char dir[128], dir_bad[160], dir_abi[160], dir_type[160];
static const char *ctl_bin;
static struct dp *dp;
static bool fx_ready;
static int fx_ncpus;
static __u32 chat_slots[NBE]; /* slots per backend in chat's active half */

/* ---------------- running aiblctl ---------------- */

struct run {
	int rc;
	char *out;
	char *err;
};

static char *slurp_fd(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	lseek(fd, 0, SEEK_SET);
	while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += n;
		if (cap - len < 2) {
			char *b = realloc(buf, cap * 2);

			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
	}
	if (buf)
		buf[len] = '\0';
	close(fd);
	return buf;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* aiblctl with the words of fmt (split on spaces); --bpffs of the fixture first */
static void ctl_run(struct run *r, const char *fmt, ...)
{
	char *line, *save = NULL, *argv[64];
	int argc = 0, ofd, efd, st;
	char otmp[] = "/tmp/aibl-t-cl-outXXXXXX", etmp[] = "/tmp/aibl-t-cl-errXXXXXX";
	va_list ap;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if (!ctl_bin) {
		static char bin[512];
		const char *b = getenv("AIBL_BUILD");

		snprintf(bin, sizeof(bin), "%s/aiblctl", b ? b : "build");
		ctl_bin = bin;
	}
	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	argv[argc++] = (char *)ctl_bin;
	if (!strstr(line, "--bpffs")) {
		argv[argc++] = "--bpffs";
		argv[argc++] = dir;
	}
	for (char *w = strtok_r(line, " ", &save); w && argc < 63; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc] = NULL;
	ofd = mkstemp(otmp);
	efd = mkstemp(etmp);
	unlink(otmp);
	unlink(etmp);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		execv(ctl_bin, argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	r->rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = slurp_fd(ofd);
	r->err = slurp_fd(efd);
	free(line);
}

/* ---------------- the case table and its runner ---------------- */

/*
 * A case runs aiblctl once and checks its exit code, then each of its
 * checks in turn: J_* ones on stdout parsed as one JSON object (the line
 * json_line of it when set), OUT_* and ERR_* ones on the text. A JSON path
 * is keys joined by dots, where key[N] takes an array's element N and
 * key[field=value] its element whose string member field is value:
 * "service.backends[name=gpu-a].slots".
 */
enum ck_kind {
	CK_END,
	J_EXISTS,	  /* the path leads somewhere */
	J_STR,		  /* a string equal to s */
	J_HAS,		  /* a string holding s */
	J_INT,		  /* an integer equal to i */
	J_INT_MIN,	  /* an integer >= i */
	J_INT_MAX,	  /* an integer <= i */
	J_NEAR,		  /* a real within 1e-9 of d */
	J_REAL,		  /* a real */
	J_REAL_MAX,	  /* a real <= d */
	J_TRUE,		  /* true */
	J_FALSE,	  /* false */
	J_NOT_TRUE,	  /* anything but true, absent included */
	J_NULL,		  /* null */
	J_NULL_OR_ABSENT, /* null or absent */
	J_ARRAY,	  /* an array */
	J_SIZE,		  /* an array or object of i members */
	OUT_HAS,	  /* stdout holds s */
	OUT_LACKS,	  /* stdout does not hold s */
	OUT_ROW,	  /* one line of stdout holds all of words */
	OUT_EMPTY,	  /* stdout is empty */
	ERR_HAS,	  /* stderr holds s */
	ERR_LACKS,	  /* stderr does not hold s */
	ERR_MAX,	  /* stderr is at most i bytes */
	ERR_EMPTY,	  /* stderr is empty */
};

struct ck {
	enum ck_kind kind;
	const char *path;
	const char *s;
	long long i;
	double d;
	const char *const *words;
	const char *what; /* "": the path or the text */
};

struct ctl_case {
	const char *args; /* aiblctl's words, split on spaces */
	int rc;
	int json_line;	     /* 0: all of stdout is the JSON document; N: line N of it is */
	const struct ck *ck; /* ends with CK_END */
};

/* the checks; a last argument, a string literal, says what a failure means */
/* clang-format off */
#define JEXISTS(p, ...)		{J_EXISTS, p, .what = "" __VA_ARGS__}
#define JSTR(p, v, ...)		{J_STR, p, .s = v, .what = "" __VA_ARGS__}
#define JHAS(p, v, ...)		{J_HAS, p, .s = v, .what = "" __VA_ARGS__}
#define JINT(p, v, ...)		{J_INT, p, .i = v, .what = "" __VA_ARGS__}
#define JINT_MIN(p, v, ...)	{J_INT_MIN, p, .i = v, .what = "" __VA_ARGS__}
#define JINT_MAX(p, v, ...)	{J_INT_MAX, p, .i = v, .what = "" __VA_ARGS__}
#define JNEAR(p, v, ...)	{J_NEAR, p, .d = v, .what = "" __VA_ARGS__}
#define JREAL(p, ...)		{J_REAL, p, .what = "" __VA_ARGS__}
#define JREAL_MAX(p, v, ...)	{J_REAL_MAX, p, .d = v, .what = "" __VA_ARGS__}
#define JTRUE(p, ...)		{J_TRUE, p, .what = "" __VA_ARGS__}
#define JFALSE(p, ...)		{J_FALSE, p, .what = "" __VA_ARGS__}
#define JNOT_TRUE(p, ...)	{J_NOT_TRUE, p, .what = "" __VA_ARGS__}
#define JNULL(p, ...)		{J_NULL, p, .what = "" __VA_ARGS__}
#define JNULL_OR_ABSENT(p, ...) {J_NULL_OR_ABSENT, p, .what = "" __VA_ARGS__}
#define JARRAY(p, ...)		{J_ARRAY, p, .what = "" __VA_ARGS__}
#define JSIZE(p, v, ...)	{J_SIZE, p, .i = v, .what = "" __VA_ARGS__}
#define OUT(v, ...)		{OUT_HAS, .s = v, .what = "" __VA_ARGS__}
#define OUT_NOT(v, ...)		{OUT_LACKS, .s = v, .what = "" __VA_ARGS__}
#define OUT_NONE(...)		{OUT_EMPTY, .what = "" __VA_ARGS__}
#define ERR(v, ...)		{ERR_HAS, .s = v, .what = "" __VA_ARGS__}
#define ERR_NOT(v, ...)		{ERR_LACKS, .s = v, .what = "" __VA_ARGS__}
#define ERR_MAXLEN(v, ...)	{ERR_MAX, .i = v, .what = "" __VA_ARGS__}
#define ERR_NONE(...)		{ERR_EMPTY, .what = "" __VA_ARGS__}
/* ROW(what, word, ...): a line of stdout holding every word */
#define ROW(w, ...) {OUT_ROW, .words = (const char *const[]){__VA_ARGS__, NULL}, .what = w}
#define CHECKS(...) ((const struct ck[]){__VA_ARGS__ __VA_OPT__(, ){CK_END}})
/* CASE("-j service list", 0, check, ...) */
#define CASE(a, code, ...) {.args = a, .rc = code, .ck = CHECKS(__VA_ARGS__)}
/* the same, the JSON being line n of stdout */
#define CASE_LINE(a, code, n, ...) {.args = a, .rc = code, .json_line = n, .ck = CHECKS(__VA_ARGS__)}
/* clang-format on */

static json_t *find_by(json_t *arr, const char *key, const char *val)
{
	size_t i;
	json_t *e;

	json_array_foreach(arr, i, e)
	{
		const char *s = json_string_value(json_object_get(e, key));

		if (s && strcmp(s, val) == 0)
			return e;
	}
	return NULL;
}

/* the member at path (see above), NULL when there is none */
static json_t *jget(json_t *j, const char *path)
{
	const char *p = path;

	while (j && *p) {
		size_t n = strcspn(p, ".[");
		char key[64];

		snprintf(key, sizeof(key), "%.*s", (int)n, p);
		if (n)
			j = json_object_get(j, key);
		p += n;
		while (j && *p == '[') {
			const char *e = strchr(p, ']'), *eq = memchr(p, '=', e ? e - p : 0);
			char k[64], v[64];

			if (!e)
				return NULL;
			if (eq) {
				snprintf(k, sizeof(k), "%.*s", (int)(eq - p - 1), p + 1);
				snprintf(v, sizeof(v), "%.*s", (int)(e - eq - 1), eq + 1);
				j = find_by(j, k, v);
			} else {
				j = json_array_get(j, strtoul(p + 1, NULL, 10));
			}
			p = e + 1;
		}
		if (*p == '.')
			p++;
	}
	return j;
}

static bool contains(const char *hay, const char *needle, const char *what)
{
	bool ok = hay && strstr(hay, needle);

	if (!ok)
		test__fail_msg(__FILE__, __LINE__, "%s: \"%s\" not in output:\n%s", what, needle,
			       hay ? hay : "(null)");
	return ok;
}

/* one output line holding all of the words */
static bool has_row(const char *out, const char *const *words, const char *what)
{
	const char *p = out;

	while (p && *p) {
		const char *e = strchr(p, '\n');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		char *line = strndup(p, l);
		bool all = true;

		for (const char *const *w = words; *w; w++)
			all &= strstr(line, *w) != NULL;
		free(line);
		if (all)
			return true;
		p = e ? e + 1 : NULL;
	}
	test__fail_msg(__FILE__, __LINE__, "%s: no row with all of the expected words in:\n%s",
		       what, out);
	return false;
}

/* stdout (line n of it when n > 0) parsed as one JSON object; NULL and a failure otherwise */
static json_t *run_json(const struct run *r, int n, const char *what)
{
	const char *s = r->out;
	json_error_t jerr = {};
	json_t *j = NULL;

	for (int i = 1; s && i < n; i++)
		if ((s = strchr(s, '\n')))
			s++;
	if (s)
		j = n ? json_loadb(s, strcspn(s, "\n"), 0, &jerr) : json_loads(s, 0, &jerr);
	if (!ASSERT_TRUE(json_is_object(j), what)) {
		printf("  stdout: %s\n  stderr: %s\n  json: %s\n", r->out, r->err, jerr.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

static bool check_one(const struct ck *k, const struct run *r, json_t *doc, const char *args)
{
	json_t *v = k->path ? jget(doc, k->path) : NULL;
	char what[256];

	snprintf(what, sizeof(what), "'%s': %s", args,
		 k->what[0] ? k->what
		 : k->path  ? k->path
		 : k->s	    ? k->s
			    : "output");
	switch (k->kind) {
	case J_EXISTS:
		return ASSERT_OK_PTR(v, what);
	case J_STR:
		return ASSERT_STREQ(json_string_value(v), k->s, what);
	case J_HAS:
		return contains(json_string_value(v), k->s, what);
	case J_INT:
		return ASSERT_EQ(json_integer_value(v), k->i, what);
	case J_INT_MIN:
		return ASSERT_GE(json_integer_value(v), k->i, what);
	case J_INT_MAX:
		return ASSERT_LE(json_integer_value(v), k->i, what);
	case J_NEAR:
		return ASSERT_LE(fabs(json_real_value(v) - k->d), 1e-9, what);
	case J_REAL:
		return ASSERT_TRUE(json_is_real(v), what);
	case J_REAL_MAX:
		return ASSERT_LE(json_real_value(v), k->d, what);
	case J_TRUE:
		return ASSERT_TRUE(json_is_true(v), what);
	case J_FALSE:
		return ASSERT_TRUE(json_is_false(v), what);
	case J_NOT_TRUE:
		return ASSERT_FALSE(json_is_true(v), what);
	case J_NULL:
		return ASSERT_TRUE(json_is_null(v), what);
	case J_NULL_OR_ABSENT:
		return ASSERT_TRUE(!v || json_is_null(v), what);
	case J_ARRAY:
		return ASSERT_TRUE(json_is_array(v), what);
	case J_SIZE:
		return ASSERT_EQ(json_is_object(v) ? json_object_size(v) : json_array_size(v), k->i,
				 what);
	case OUT_HAS:
		return contains(r->out, k->s, what);
	case OUT_LACKS:
		return ASSERT_FALSE(strstr(r->out, k->s), what);
	case OUT_ROW:
		return has_row(r->out, k->words, what);
	case OUT_EMPTY:
		return ASSERT_STREQ(r->out, "", what);
	case ERR_HAS:
		return contains(r->err, k->s, what);
	case ERR_LACKS:
		return ASSERT_FALSE(strstr(r->err, k->s), what);
	case ERR_MAX:
		return ASSERT_LE((long long)strlen(r->err), k->i, what);
	case ERR_EMPTY:
		return ASSERT_STREQ(r->err, "", what);
	case CK_END:
		break;
	}
	return true;
}

/* one case; false when a check failed */
static bool run_case(const struct ctl_case *c)
{
	struct run r;
	json_t *doc = NULL;
	bool ok, want_json = false, failed = false;

	for (const struct ck *k = c->ck; k->kind; k++)
		want_json |= k->path != NULL;
	ctl_run(&r, "%s", c->args);
	ok = ASSERT_EQ(r.rc, c->rc, c->args);
	if (ok && want_json)
		ok = (doc = run_json(&r, c->json_line, c->args)) != NULL;
	/* every check runs, once the exit code and the document are right */
	for (const struct ck *k = c->ck; ok && k->kind; k++)
		if (!check_one(k, &r, doc, c->args))
			failed = true;
	json_decref(doc);
	run_free(&r);
	return ok && !failed;
}

/* every case of a table, even after a failure: each prints its own */
static bool run_cases(const struct ctl_case *c, size_t n)
{
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		ok &= run_case(&c[i]);
	return ok;
}

#define RUN_CASES(table) run_cases(table, sizeof(table) / sizeof((table)[0]))

/* ---------------- the fixture ---------------- */

static void addr_of(const char *s, union aibl_addr *a, __u8 *family)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, &a->v4) == 1)
		*family = AIBL_AF_INET;
	else if (inet_pton(AF_INET6, s, a->b) == 1)
		*family = AIBL_AF_INET6;
	else
		*family = 0;
}

static int mfd(const char *name)
{
	return dp__map_fd(dp, name);
}

static int put(const char *map, const void *k, const void *v)
{
	int err = bpf_map_update_elem(mfd(map), k, v, BPF_ANY);

	if (err)
		printf("  update %s: %s\n", map, strerror(errno));
	return err;
}

static int put_vip(const char *addr, __u16 port, __u8 proto, __u32 svc, __u8 mode, __u8 key,
		   __u8 half, __u8 flags)
{
	struct aibl_vip_key k = {};
	struct aibl_vip v = {
	    .svc_id = svc, .mode = mode, .session_key = key, .ring_half = half, .flags = flags};

	addr_of(addr, &k.addr, &k.family);
	k.port = htons(port);
	k.proto = proto;
	return put(AIBL_MAP_VIPS, &k, &v);
}

static int put_svc_meta(__u32 id, const char *name, const char *model, __u8 policy, const char *vip,
			__u16 port, __u8 proto, __u16 nbe, __u32 gen)
{
	struct aibl_svc_meta m = {
	    .valid = 1, .policy = policy, .nbackends = nbe, .generation = gen};

	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.model, sizeof(m.model), "%s", model);
	addr_of(vip, &m.vip.addr, &m.vip.family);
	m.vip.port = htons(port);
	m.vip.proto = proto;
	return put(AIBL_MAP_SVC_META, &id, &m);
}

static int put_member(__u32 svc, __u32 be, __u32 w, __u32 cfg, __u32 slots)
{
	struct aibl_member_key k = {.svc_id = svc, .backend = be};
	struct aibl_member v = {.weight = w, .cfg_weight = cfg, .slots = slots};

	return put(AIBL_MAP_MEMBERS, &k, &v);
}

/* an entry last seen idle_ms ago */
static int put_conn_idle(const char *cli, __u16 cport, const char *vip, __u16 vport, __u8 proto,
			 __u32 be, __u32 flags, __u64 idle_ms)
{
	struct aibl_flow_key k = {};
	struct aibl_conn c = {.backend = be, .flags = flags};
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	addr_of(cli, &k.src, &k.family);
	addr_of(vip, &k.dst, &k.family);
	k.sport = htons(cport);
	k.dport = htons(vport);
	k.proto = proto;
	c.last_seen_ns = (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec - idle_ms * 1000000ULL;
	return put(AIBL_MAP_CONNS, &k, &c);
}

/* an entry idle for 2 s */
static int put_conn(const char *cli, __u16 cport, const char *vip, __u16 vport, __u8 proto,
		    __u32 be, __u32 flags)
{
	return put_conn_idle(cli, cport, vip, vport, proto, be, flags, 2000);
}

static int put_pin(__u32 svc, const char *cli, __u32 be, __u64 ttl_ns, __u16 spill_ms, __u16 flags)
{
	struct aibl_pin_key k = {.svc_id = svc};
	struct aibl_pin p = {.backend = be, .spill_ms = spill_ms, .flags = flags};
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	addr_of(cli, &k.client, &k.family);
	if (ttl_ns)
		p.expires_ns = (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec + ttl_ns;
	return put(AIBL_MAP_PINS, &k, &p);
}

/* ttl_ns 0: an entry that has lapsed a second ago */
static int put_affinity(__u32 svc, const char *cli, __u32 be, __u64 ttl_ns)
{
	struct aibl_affinity a = {.svc_id = svc, .backend = be};
	struct aibl_affinity_bucket b;
	struct timespec ts;
	__u32 idx;
	int err;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	addr_of(cli, &a.client, &a.family);
	a.expires_ns = (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	a.expires_ns = ttl_ns ? a.expires_ns + ttl_ns : a.expires_ns - 1000000000ULL;
	idx = aibl_affinity_index(svc, &a.client, a.family);
	if (bpf_map_lookup_elem(mfd(AIBL_MAP_AFFINITY), &idx, &b))
		return -errno;
	/* its own way, else the first empty one; -ENOSPC where the bucket's
	 * two ways hold other clients */
	err = test_affinity__put(&b, &a);
	if (err)
		return err;
	return put(AIBL_MAP_AFFINITY, &idx, &b);
}

/* per-CPU u64 fields: the total split over the first two CPUs so summing is exercised */
static int put_percpu(const char *map, __u32 idx, const __u64 *fields, int nfields)
{
	size_t stride = (size_t)nfields * 8;
	__u64 *v = calloc(fx_ncpus, stride);
	int err;

	if (!v)
		return -ENOMEM;
	for (int f = 0; f < nfields; f++) {
		if (fx_ncpus > 1) {
			v[f] = fields[f] / 3;
			v[nfields + f] = fields[f] - fields[f] / 3;
		} else {
			v[f] = fields[f];
		}
	}
	err = bpf_map_update_elem(mfd(map), &idx, v, BPF_ANY);
	free(v);
	return err;
}

static int fill_ring(__u32 svc, __u32 half, const __u32 *pat, __u32 plen, __u32 *counts)
{
	for (__u32 s = 0; s < AIBL_RING_SIZE; s++) {
		__u32 idx = AIBL_RING_INDEX(svc, half, s), b = pat[s % plen];

		if (bpf_map_update_elem(mfd(AIBL_MAP_RING), &idx, &b, BPF_ANY))
			return -errno;
		if (counts)
			counts[b]++;
	}
	return 0;
}

static int fixture(void)
{
	struct aibl_globals g = {.fwd_mode = AIBL_FWD_IPIP,
				 .ifindex = 0,
				 .if_mac = {0x02, 0, 0, 0, 0xc1, 0x01},
				 .gw_mac = {0x02, 0, 0, 0, 0xc1, 0xfe},
				 .hash_seed = 7};
	struct dp_opts o = {.pin_dir = dir,
			    .sizes = {.max_services = 8,
				      .max_backends = 64,
				      .max_conns = 4096,
				      .max_pins = 256,
				      .max_members = 256}};
	__u32 pat[PAT_LEN], down_pat = BE_D, one_e = BE_E, one_a = BE_A;
	__u32 cnt_idx;
	int err;

	snprintf(dir, sizeof(dir), "/sys/fs/bpf/aibl-t-cl-%d", getpid());
	/* pinned as an attached one is: aiblctl simulate runs it */
	err = dp__open_load(&o, &dp) ?: dp__pin_prog(dp);
	if (err)
		return err;
	fx_ncpus = libbpf_num_possible_cpus();
	inet_pton(AF_INET, "10.255.0.1", &g.src4);
	g.src4_mask = htonl(0xff);
	inet_pton(AF_INET6, "fd00:ff::1", g.src6);
	err = dp__globals_write(dp, &g);
	if (err)
		return err;

	for (int b = 0; b < NBE; b++) {
		struct aibl_backend be = {.flags = fx_be[b].flags,
					  .mac = {0x02, 0, 0, 0, 0xb0, (__u8)b}};
		struct aibl_be_meta m = {
		    .valid = 1, .accel = fx_be[b].accel, .cfg_weight = fx_be[b].weight};
		/* gpu-c priced by ai: 10 ms, 3 slots free, 40 ms a flow beyond,
		 * a slower node */
		struct aibl_cost c = {.cost = 5 * b,
				      .free = b == BE_C ? 3 : 0,
				      .per_flow = b == BE_C ? 40 : 0,
				      .flags = b == BE_C ? AIBL_COST_F_SLOWER : 0};
		struct aibl_load l = {.active = 0};
		__u32 id = b;

		addr_of(fx_be[b].addr, &be.addr, &be.family);
		snprintf(m.name, sizeof(m.name), "%s", fx_be[b].name);
		l.active = b == BE_A ? 2 : b == BE_B ? 1 : b == BE_E ? 1 : 0;
		if (put(AIBL_MAP_BACKENDS, &id, &be) || put(AIBL_MAP_BE_META, &id, &m) ||
		    put(AIBL_MAP_COST, &id, &c) || put(AIBL_MAP_LOAD, &id, &l))
			return -EIO;
	}

	/* chat: v4 and v6 VIPs, active half 1; half 0 holds a stale all-gpu-d table */
	for (int i = 0; i < PAT_LEN; i++)
		pat[i] = i == PAT_LEN - 1   ? BE_D
			 : i % 2 == 0	    ? BE_A
			 : (i / 2) % 2 == 0 ? BE_B
					    : BE_C;
	if (fill_ring(SVC_CHAT, 0, &down_pat, 1, NULL) ||
	    fill_ring(SVC_CHAT, 1, pat, PAT_LEN, chat_slots) ||
	    fill_ring(SVC_EMBED, 0, &one_e, 1, NULL) || fill_ring(SVC_BATCH, 0, &one_a, 1, NULL))
		return -EIO;
	if (put_vip("10.100.0.1", 80, IPPROTO_TCP, SVC_CHAT, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 1,
		    0) ||
	    put_vip("fd00:100::1", 80, IPPROTO_TCP, SVC_CHAT, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 1,
		    0) ||
	    put_vip("fd00:100::2", 443, IPPROTO_TCP, SVC_EMBED, AIBL_MODE_HASH, AIBL_KEY_FIVE_TUPLE,
		    0, 0) ||
	    put_vip("10.100.0.3", 0, IPPROTO_UDP, SVC_BATCH, AIBL_MODE_RR, AIBL_KEY_FIVE_TUPLE, 0,
		    AIBL_VIP_F_NO_CONNTRACK))
		return -EIO;
	if (put_svc_meta(SVC_CHAT, "chat", "llama-3-8b", AIBL_POL_AI, "10.100.0.1", 80, IPPROTO_TCP,
			 4, 7) ||
	    put_svc_meta(SVC_EMBED, "embed", "bge-large", AIBL_POL_HASH, "fd00:100::2", 443,
			 IPPROTO_TCP, 1, 1) ||
	    put_svc_meta(SVC_BATCH, "batch", "whisper", AIBL_POL_RR, "10.100.0.3", 0, IPPROTO_UDP,
			 1, 2))
		return -EIO;
	/* gpu-b's effective weight is below its configured one, as a policy would set it */
	if (put_member(SVC_CHAT, BE_A, 100, 100, chat_slots[BE_A]) ||
	    put_member(SVC_CHAT, BE_B, 50, 60, chat_slots[BE_B]) ||
	    put_member(SVC_CHAT, BE_C, 50, 50, chat_slots[BE_C]) ||
	    put_member(SVC_CHAT, BE_D, 10, 10, chat_slots[BE_D]) ||
	    put_member(SVC_EMBED, BE_E, 1, 1, AIBL_RING_SIZE) ||
	    put_member(SVC_BATCH, BE_A, 1, 1, AIBL_RING_SIZE))
		return -EIO;

	if (put_conn("10.0.0.5", 40000, "10.100.0.1", 80, IPPROTO_TCP, BE_A, 0) ||
	    put_conn("10.0.0.6", 40001, "10.100.0.1", 80, IPPROTO_TCP, BE_B, 0) ||
	    put_conn("10.0.0.9", 40002, "10.100.0.1", 80, IPPROTO_TCP, BE_A,
		     AIBL_CONN_F_PINNED | AIBL_CONN_F_CLOSING) ||
	    put_conn("fd00:200::5", 5555, "fd00:100::1", 80, IPPROTO_TCP, BE_A, 0) ||
	    put_conn("fd00:200::6", 5556, "fd00:100::2", 443, IPPROTO_TCP, BE_E, 0))
		return -EIO;
	if (put_pin(SVC_CHAT, "10.0.0.9", BE_A, 60ULL * 1000000000ULL, 500, AIBL_PIN_F_SLOWER) ||
	    put_pin(SVC_CHAT, "10.0.0.10", BE_B, 0, 500, 0) ||
	    put_pin(SVC_EMBED, "fd00:200::7", BE_E, 0, 0, 0) ||
	    put_affinity(SVC_CHAT, "10.0.0.11", BE_B, 2000000000ULL) ||
	    put_affinity(SVC_CHAT, "fd00:200::8", BE_A, 2000000000ULL) ||
	    put_affinity(SVC_CHAT, "10.0.0.5", BE_C, 0))
		return -EIO;

	{
		__u64 one;
		__u64 chat[4] = {1234567, 3650722202ULL, 12, 3};
		__u64 embed[4] = {10, 1000, 1, 0};
		__u64 be_a[4] = {5000, 7500000, 10, 3};

		cnt_idx = AIBL_CNT_PASS;
		one = 1000;
		if (put_percpu(AIBL_MAP_STATS, cnt_idx, &one, 1))
			return -EIO;
		cnt_idx = AIBL_CNT_VIP_PKTS;
		one = 123456;
		if (put_percpu(AIBL_MAP_STATS, cnt_idx, &one, 1))
			return -EIO;
		cnt_idx = AIBL_CNT_DROP_NO_BACKEND;
		one = 2;
		if (put_percpu(AIBL_MAP_STATS, cnt_idx, &one, 1) ||
		    put_percpu(AIBL_MAP_SVC_STATS, SVC_CHAT, chat, 4) ||
		    put_percpu(AIBL_MAP_SVC_STATS, SVC_EMBED, embed, 4) ||
		    put_percpu(AIBL_MAP_BE_STATS, BE_A, be_a, 4))
			return -EIO;
	}
	return 0;
}

/* Pin every map of dir again under d, except `swap`, replaced by map fd `repl`. */
static int repin(const char *d, const char *swap, int repl)
{
	static const char *const names[] = {
	    AIBL_MAP_VIPS,     AIBL_MAP_BACKENDS,  AIBL_MAP_RING,     AIBL_MAP_COST,
	    AIBL_MAP_LOAD,     AIBL_MAP_CONNS,	   AIBL_MAP_PINS,     AIBL_MAP_MEMBERS,
	    AIBL_MAP_STATS,    AIBL_MAP_SVC_STATS, AIBL_MAP_BE_STATS, AIBL_MAP_GLOBALS,
	    AIBL_MAP_SVC_META, AIBL_MAP_BE_META,
	};
	char p[300];

	if (mkdir(d, 0700) && errno != EEXIST)
		return -errno;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int fd = strcmp(names[i], swap) == 0 ? repl : mfd(names[i]);

		snprintf(p, sizeof(p), "%s/%s", d, names[i]);
		if (bpf_obj_pin(fd, p))
			return -errno;
	}
	return 0;
}

static void unpin_dir(const char *d)
{
	char p[300];
	static const char *const names[] = {
	    AIBL_MAP_VIPS,     AIBL_MAP_BACKENDS,  AIBL_MAP_RING,     AIBL_MAP_COST,
	    AIBL_MAP_LOAD,     AIBL_MAP_CONNS,	   AIBL_MAP_PINS,     AIBL_MAP_MEMBERS,
	    AIBL_MAP_STATS,    AIBL_MAP_SVC_STATS, AIBL_MAP_BE_STATS, AIBL_MAP_GLOBALS,
	    AIBL_MAP_SVC_META, AIBL_MAP_BE_META,
	};

	if (!d[0])
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", d, names[i]);
		unlink(p);
	}
	rmdir(d);
}

static void cleanup(void)
{
	/* debugging aid: AIBL_TEST_KEEP=1 leaves the fixture loaded to try aiblctl on */
	if (getenv("AIBL_TEST_KEEP")) {
		printf("# fixture kept under %s\n", dir);
		return;
	}
	unpin_dir(dir_bad);
	unpin_dir(dir_abi);
	unpin_dir(dir_type);
	if (dp) {
		dp__close(dp);
		dp = NULL;
	}
	if (dir[0])
		dp__teardown(dir);
}

/* true when the fixture is loaded; a skip (no root) or a failure otherwise */
static bool need_fixture(void)
{
	static bool tried;
	int err;

	if (fx_ready)
		return true;
	if (!test__can_bpf()) {
		SKIP("needs root for BPF");
		return false;
	}
	if (tried) {
		SKIP("fixture failed to load earlier");
		return false;
	}
	tried = true;
	atexit(cleanup);
	err = fixture();
	if (!ASSERT_OK(err, "fixture"))
		return false;
	fx_ready = true;
	return true;
}

/* ---------------- commands ---------------- */

/* aiblctl's words for a case, formatted; valid until 16 more calls */
static const char *argf(const char *fmt, ...)
{
	static char bufs[16][640];
	static unsigned int next;
	char *b = bufs[next++ % 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof(bufs[0]), fmt, ap);
	va_end(ap);
	return b;
}

static void test_service_list(void)
{
	const struct ctl_case cases[] = {
	    CASE("-j service list", 0, JSIZE("services", 3, "three services"),
		 JEXISTS("services[name=chat]", "chat"),
		 JSIZE("services[name=chat].vips", 2, "chat has a v4 and a v6 VIP"),
		 JEXISTS("services[name=chat].vips[address=10.100.0.1]", "v4 VIP address"),
		 JEXISTS("services[name=chat].vips[address=fd00:100::1]", "v6 VIP address"),
		 JSTR("services[name=chat].model", "llama-3-8b", "model"),
		 JSTR("services[name=chat].policy", "ai", "policy"),
		 JSTR("services[name=chat].mode", "hash", "mode"),
		 JINT("services[name=chat].backends", 4, "members"),
		 JINT("services[name=chat].backends_up", 1, "only gpu-a is up"),
		 /* three v4 entries + one on the v6 VIP, one of the v4 ones closing */
		 JINT("services[name=chat].flows", 3, "open flows"),
		 JINT("services[name=chat].pins", 2, "pins"),
		 JINT("services[name=chat].packets", 1234567, "packets summed over CPUs"),
		 JINT("services[name=chat].bytes", 3650722202LL, "bytes"),
		 JINT("services[name=chat].ring_half", 1, "active half"),
		 JFALSE("services[name=batch].conntrack", "batch is stateless")),
	    CASE("service list", 0,
		 ROW("header", "NAME", "VIPS", "POLICY", "BACKENDS", "PACKETS", "BYTES"),
		 ROW("chat row", "chat", "10.100.0.1:80/tcp", "[fd00:100::1]:80/tcp", "llama-3-8b",
		     "1/4 up", "1.2M", "3.4 GiB"),
		 ROW("embed row", "embed", "[fd00:100::2]:443/tcp", "1/1 up"),
		 ROW("batch row", "batch", "10.100.0.3:*/udp", "rr")),
	};
	/* a model name another tool wrote, not UTF-8, with a control byte:
	 * the service is listed all the same, its model as '?'s */
	const struct ctl_case odd[] = {
	    CASE("-j service list", 0, JSIZE("services", 3, "still three services"),
		 JSTR("services[name=batch].model", "wh?sper?", "model as printable text")),
	    CASE("-j service show batch", 0, JSTR("service.model", "wh?sper?", "shown too")),
	};

	if (!need_fixture())
		return;
	RUN_CASES(cases);
	if (ASSERT_OK(put_svc_meta(SVC_BATCH, "batch", "wh\xffsper\x01", AIBL_POL_RR, "10.100.0.3",
				   0, IPPROTO_UDP, 1, 2),
		      "odd model"))
		RUN_CASES(odd);
	ASSERT_OK(put_svc_meta(SVC_BATCH, "batch", "whisper", AIBL_POL_RR, "10.100.0.3", 0,
			       IPPROTO_UDP, 1, 2),
		  "model back");
}

static void test_service_show(void)
{
	static const char *const specs[] = {"chat", "10.100.0.1:80", "[fd00:100::1]:80/tcp",
					    "10.100.0.1:80/tcp"};
	/* chat by any of its names: the same JSON */
	const struct ck *chat =
	    CHECKS(JSTR("service.name", "chat", "name"),
		   JSTR("service.session_key", "src_ip", "session key"),
		   JSIZE("service.backends", 4, "four backends"),
		   JEXISTS("service.backends[name=gpu-a]", "gpu-a by name"),
		   JEXISTS("service.backends[name=gpu-b]", "gpu-b by name"),
		   JEXISTS("service.backends[name=gpu-c]", "gpu-c by name"),
		   JEXISTS("service.backends[name=gpu-d]", "gpu-d by name"),
		   JSTR("service.backends[name=gpu-a].state", "up", "a up"),
		   JSTR("service.backends[name=gpu-b].state", "draining", "b draining"),
		   JSTR("service.backends[name=gpu-c].state", "overloaded", "c overloaded"),
		   JSTR("service.backends[name=gpu-d].state", "down", "d down"),
		   JINT("service.backends[name=gpu-b].weight", 50, "b effective weight"),
		   JINT("service.backends[name=gpu-b].cfg_weight", 60, "b configured weight"),
		   JINT("service.backends[name=gpu-a].slots", chat_slots[BE_A], "a slots"),
		   JNEAR("service.backends[name=gpu-a].slot_share",
			 (double)chat_slots[BE_A] / AIBL_RING_SIZE, "a slot share"),
		   JINT("service.backends[name=gpu-a].flows", 2, "a open flows (v4 + v6 VIP)"),
		   JINT("service.backends[name=gpu-b].flows", 1, "b flows"),
		   JINT("service.backends[name=gpu-a].pins", 1, "a pins"),
		   JINT("service.backends[name=gpu-b].pins", 1, "b pins"),
		   JINT("service.backends[name=gpu-a].packets", 5000, "a packets"),
		   JINT("service.backends[name=gpu-a].active", 2, "a active"));
	const struct ctl_case cases[] = {
	    CASE("service show chat", 0, OUT("service chat (id 0)", "title"),
		 OUT("data plane mode hash, session key src_ip", "mode line"),
		 OUT("generation 7, active half 1", "table line"),
		 OUT("1.2M packets, 3.4 GiB", "traffic line"),
		 ROW("header", "BACKEND", "WEIGHT", "SLOTS", "SHARE", "STATE", "FLOWS", "PINS"),
		 ROW("gpu-a row", "gpu-a", "10.1.0.1", "up", "7801", "47.6%"),
		 ROW("gpu-b row", "gpu-b", "50 (cfg 60)", "draining"),
		 ROW("gpu-c row", "gpu-c", "overloaded"), ROW("gpu-d row", "gpu-d", "down")),
	    CASE("-j service show nosuch", 1, JHAS("error", "no service 'nosuch'", "message")),
	    CASE("service show 10.100.0.99:80", 1,
		 ERR("no service has VIP 10.100.0.99:80/tcp", "VIP message")),
	};

	if (!need_fixture())
		return;
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		struct ctl_case c = {.args = argf("-j se sh %s", specs[i]), .ck = chat};

		if (!run_case(&c))
			return;
	}
	RUN_CASES(cases);
}

static void test_backend_list(void)
{
	const struct ctl_case cases[] = {
	    CASE("-j backend list", 0, JSIZE("backends", NBE, "five backends"),
		 JEXISTS("backends[name=gpu-a]", "a by name"),
		 JEXISTS("backends[name=cpu-e]", "e by name"),
		 JINT("backends[name=gpu-a].active", 2, "a active (aibl_load)"),
		 JINT("backends[name=gpu-a].conns", 3, "a conn entries"),
		 JINT("backends[name=gpu-a].services", 2, "a in chat and batch"),
		 JINT("backends[name=gpu-a].bytes", 7500000, "a bytes"),
		 JSTR("backends[name=gpu-a].accel", "gpu", "accel"),
		 JSTR("backends[name=gpu-a].mac", "02:00:00:00:b0:00", "mac"),
		 JSTR("backends[name=cpu-e].address", "fd00:1::5", "v6 backend"),
		 JINT("backends[name=cpu-e].cost", 20, "e cost"),
		 JINT("backends[name=cpu-e].per_flow", 0, "e priced in flows"),
		 JINT("backends[name=gpu-c].cost", 10, "c cost (ms)"),
		 JINT("backends[name=gpu-c].free", 3, "c free slots"),
		 JINT("backends[name=gpu-c].per_flow", 40, "c ms per flow beyond them"),
		 JTRUE("backends[name=gpu-c].slower", "c a slower node"),
		 JFALSE("backends[name=gpu-a].slower", "a not flagged"),
		 JTRUE("backends[name=gpu-d].flags.down", "d down flag")),
	    CASE("backend list", 0,
		 ROW("header", "NAME", "ADDRESS", "STATE", "ACTIVE", "COST", "BYTES"),
		 ROW("gpu-a row", "gpu-a", "10.1.0.1", "gpu", "up", "7.2 MiB", "02:00:00:00:b0:00"),
		 ROW("gpu-b row", "gpu-b", "draining"),
		 ROW("gpu-c row", "gpu-c", "overloaded", "10 ms, 3 free, +40/flow, slower"),
		 ROW("cpu-e row", "cpu-e", "fd00:1::5", "none", "up")),
	};

	if (need_fixture())
		RUN_CASES(cases);
}

static void test_table_show(void)
{
	const struct ctl_case cases[] = {
	    CASE("-j table show chat --slots", 0,
		 JINT("table.ring_half", 1, "reads the active half"),
		 JINT("table.ring_size", AIBL_RING_SIZE, "ring size"),
		 JINT("table.empty_slots", 0, "no empty slot"),
		 JINT("table.backends[name=gpu-a].slots", chat_slots[BE_A], "gpu-a"),
		 JINT("table.backends[name=gpu-b].slots", chat_slots[BE_B], "gpu-b"),
		 JINT("table.backends[name=gpu-c].slots", chat_slots[BE_C], "gpu-c"),
		 JINT("table.backends[name=gpu-d].slots", chat_slots[BE_D], "gpu-d"),
		 /* weight share of gpu-a: 100 of 210 */
		 JNEAR("table.backends[name=gpu-a].weight_share", 100.0 / 210, "weight share"),
		 JSIZE("table.slots", AIBL_RING_SIZE, "raw table"),
		 JINT("table.slots[0]", BE_A, "slot 0"), JINT("table.slots[1]", BE_B, "slot 1"),
		 JINT("table.slots[3]", BE_C, "slot 3"), JINT("table.slots[20]", BE_D, "slot 20")),
	    CASE("table show 10.100.0.1:80 --slots", 0,
		 ROW("header", "BACKEND", "WEIGHT%", "SLOTS", "SLOT%", "DIFF"),
		 ROW("gpu-a", "gpu-a", "47.6%", "pp"), OUT("active half 1", "half"),
		 ROW("raw slots", "0", "gpu-a", "gpu-b", "gpu-c")),
	    CASE("table show", 2), /* missing SERVICE is misuse */
	};

	if (need_fixture())
		RUN_CASES(cases);
}

static void test_flow(void)
{
	const struct ctl_case cases[] = {
	    CASE("-j flow list", 0, JINT("total", 5, "all entries"),
		 JEXISTS("flows[client=10.0.0.9]", "closing pinned flow"),
		 JTRUE("flows[client=10.0.0.9].closing", "closing flag"),
		 JTRUE("flows[client=10.0.0.9].pinned", "pinned flag"),
		 JSTR("flows[client=10.0.0.9].service", "chat", "service"),
		 JINT_MIN("flows[client=10.0.0.9].idle_ms", 1900, "idle time")),
	    CASE("-j flow list --service embed", 0, JINT("total", 1, "embed flows"),
		 JSTR("flows[0].backend", "cpu-e", "embed backend")),
	    CASE("-j flow list --limit 2", 0, JSIZE("flows", 2, "limited"),
		 JINT("total", 5, "total still 5")),
	    CASE("flow list --limit 3", 0,
		 ROW("header", "CLIENT", "VIP", "SERVICE", "BACKEND", "FLAGS", "IDLE"),
		 ROW("v4 flow", "10.0.0.5:40000", "10.100.0.1:80", "tcp", "chat", "gpu-a"),
		 OUT("3 of 5 flows shown", "limit note")),
	    CASE("flow list", 0,
		 ROW("v6 flow", "[fd00:200::6]:5556", "[fd00:100::2]:443", "embed", "cpu-e"),
		 ROW("closing flow", "10.0.0.9:40002", "closing,pinned")),
	    CASE("-j flow lookup 10.0.0.6:40001 10.100.0.1:80 tcp", 0,
		 JSTR("flow.backend", "gpu-b", "on gpu-b"),
		 JSTR("flow.backend_address", "10.1.0.2", "address")),
	    CASE("flow lookup [fd00:200::5]:5555 [fd00:100::1]:80", 0,
		 ROW("v6 lookup", "[fd00:200::5]:5555", "chat", "gpu-a")),
	    /* the udp flow is another flow */
	    CASE("-j flow lookup 10.0.0.5:40000 10.100.0.1:80 udp", 1,
		 JHAS("error", "not in the connection table", "message")),
	    /* mixed families are misuse */
	    CASE("flow lookup 10.0.0.5:40000 [fd00:100::1]:80", 2,
		 ERR("same address family", "message")),
	};

	if (need_fixture())
		RUN_CASES(cases);
}

static void test_pin_list(void)
{
	const struct ctl_case cases[] = {
	    CASE("-j pin list", 0, JSIZE("pins", 3, "three pins"),
		 JEXISTS("pins[client=10.0.0.9]", "pin of 10.0.0.9"),
		 JINT_MIN("pins[client=10.0.0.9].expires_in_ms", 1, "expires from now"),
		 JINT_MAX("pins[client=10.0.0.9].expires_in_ms", 60000, "within the minute"),
		 JSTR("pins[client=10.0.0.9].backend", "gpu-a", "backend"),
		 JINT("pins[client=10.0.0.9].spill_ms", 500, "spill_ms"),
		 JTRUE("pins[client=10.0.0.9].slower", "a slower tier's pin"),
		 JFALSE("pins[client=10.0.0.10].slower", "not a slower tier"),
		 JEXISTS("pins[client=10.0.0.10]", "pin of 10.0.0.10"),
		 JNULL("pins[client=10.0.0.10].expires_in_ms", "no expiry"),
		 JSTR("pins[client=10.0.0.10].state", "draining", "backend state")),
	    CASE("-j pin list --service embed", 0,
		 JSTR("pins[0].client", "fd00:200::7", "embed pin"),
		 JSIZE("pins", 1, "one embed pin")),
	    CASE("pin list --service chat", 0,
		 ROW("expiring pin", "chat", "10.0.0.9", "gpu-a", "up", "in ", "500ms, slower"),
		 ROW("pin without expiry", "chat", "10.0.0.10", "gpu-b", "draining", "never",
		     "500ms"),
		 OUT("2 pins", "count")),
	};

	if (need_fixture())
		RUN_CASES(cases);
}

static void test_affinity_list(void)
{
	const struct ctl_case cases[] = {
	    CASE("-j affinity list", 0, JINT("total", 3, "every entry"),
		 JINT("live", 2, "two live"), JSIZE("affinities", 3, "all shown"),
		 JSTR("affinities[client=10.0.0.11].backend", "gpu-b", "backend"),
		 JSTR("affinities[client=10.0.0.11].service", "chat", "service"),
		 JINT_MIN("affinities[client=10.0.0.11].expires_in_ms", 1, "expires from now"),
		 JINT_MAX("affinities[client=10.0.0.11].expires_in_ms", 2000, "within 2 s"),
		 JFALSE("affinities[client=10.0.0.11].expired", "live"),
		 JTRUE("affinities[client=10.0.0.5].expired", "lapsed"),
		 JINT("affinities[client=10.0.0.5].expires_in_ms", 0, "no time left"),
		 JSTR("affinities[client=fd00:200::8].backend", "gpu-a", "v6 client"),
		 /* live entries first */
		 JTRUE("affinities[2].expired", "the lapsed one last"),
		 JINT("capacity", AIBL_MAX_AFFINITY, "the table's entries")),
	    CASE("-j affinity list --service embed", 0, JINT("total", 0, "none for embed"),
		 JSIZE("affinities", 0, "empty")),
	    CASE("-j affinity list --limit 1", 0, JSIZE("affinities", 1, "limited"),
		 JINT("total", 3, "total still 3"), JINT("shown", 1, "one shown")),
	    CASE("affinity list", 0,
		 ROW("header", "SERVICE", "CLIENT", "BACKEND", "STATE", "EXPIRES"),
		 ROW("live v4", "chat", "10.0.0.11", "gpu-b", "in "),
		 ROW("lapsed", "chat", "10.0.0.5", "gpu-c", "expired"),
		 OUT("3 affinities, 2 live; the table holds 65536 for all services", "count")),
	    CASE("affinity list --limit 2", 0,
		 OUT("2 of 3 affinities shown, 2 live", "limit note")),
	    CASE("affinity list --service nosuch", 1, ERR("nosuch", "unknown service")),
	    CASE("affinity list --limit x", 2, ERR("--limit", "bad number")),
	};

	if (!need_fixture())
		return;
	/* the live entries again, 2 s from now: the fixture wrote them some
	 * thirty aiblctl runs ago, which a slow machine may take 2 s for */
	if (!ASSERT_OK(put_affinity(SVC_CHAT, "10.0.0.11", BE_B, 2000000000ULL), "live v4") ||
	    !ASSERT_OK(put_affinity(SVC_CHAT, "fd00:200::8", BE_A, 2000000000ULL), "live v6"))
		return;
	RUN_CASES(cases);
}

/* the chat service renamed by a reload (its id kept) a second on, between
 * the two samples of the case below */
static void *rename_chat_later(void *arg)
{
	usleep(1000 * 1000);
	put_svc_meta(SVC_CHAT, arg, "llama-3-8b", AIBL_POL_AI, "10.100.0.1", 80, IPPROTO_TCP, 4, 7);
	return NULL;
}

static void test_stats(void)
{
	const struct ctl_case cases[] = {
	    CASE("-j stats", 0, JINT("counters.pass", 1000, "pass"),
		 JINT("counters.vip_packets", 123456, "vip_packets"),
		 JINT("counters.drop_no_backend", 2, "drop_no_backend"),
		 JSIZE("counters", AIBL_CNT__MAX, "every counter"),
		 JNULL_OR_ABSENT("rates", "no rates in one sample"),
		 JINT("services[name=chat].packets", 1234567, "chat packets")),
	    /* repeated: one JSON document per line, rates from the second on */
	    CASE_LINE("-j stats --interval 0.1 --count 2", 0, 2, JINT("sample", 2, "sample number"),
		      JREAL("rates.pass", "rate present"),
		      JREAL_MAX("rates.pass", 0.0, "idle: rate 0")),
	    CASE("stats --interval 0.1 --count 2", 0,
		 ROW("header", "COUNTER", "VALUE", "RATE", "DESCRIPTION"),
		 ROW("vip_packets", "vip_packets", "123k", "0/s", "packets addressed to a VIP"),
		 ROW("service traffic", "chat", "1.2M", "3.4 GiB"),
		 OUT("sample 2", "second sample")),
	    CASE("stats", 0,
		 ROW("single sample", "drop_no_backend", "2", "dropped: no usable backend")),
	    CASE("stats --interval abc", 2, ERR("--interval", "message")),
	};

	/* a service renamed while stats runs (a reload): the next sample
	 * names it as it is now, its traffic under the new name */
	const struct ctl_case renamed =
	    CASE_LINE("-j stats --interval 2 --count 2", 0, 2, JINT("sample", 2, "sample number"),
		      JINT("services[name=chat2].packets", 1234567, "renamed: the new name"));
	pthread_t th;

	if (!need_fixture())
		return;
	RUN_CASES(cases);
	if (ASSERT_OK(pthread_create(&th, NULL, rename_chat_later, "chat2"), "renamer")) {
		run_case(&renamed);
		pthread_join(th, NULL);
		/* as it was */
		put_svc_meta(SVC_CHAT, "chat", "llama-3-8b", AIBL_POL_AI, "10.100.0.1", 80,
			     IPPROTO_TCP, 4, 7);
	}
}

static __s64 load_of(__u32 b)
{
	struct aibl_load l = {};

	bpf_map_lookup_elem(mfd(AIBL_MAP_LOAD), &b, &l);
	return l.active;
}

static bool conn_exists(const char *cli, __u16 cport, const char *vip, __u16 vport, __u8 proto)
{
	struct aibl_flow_key k = {};
	struct aibl_conn c;

	addr_of(cli, &k.src, &k.family);
	addr_of(vip, &k.dst, &k.family);
	k.sport = htons(cport);
	k.dport = htons(vport);
	k.proto = proto;
	return bpf_map_lookup_elem(mfd(AIBL_MAP_CONNS), &k, &c) == 0;
}

/* set aibl_globals.max_conn_rate and fill every CPU's window (on) or clear it */
static int guard_engage(int on)
{
	struct aibl_rate *rv = calloc(fx_ncpus, sizeof(*rv));
	struct aibl_globals g;
	struct timespec ts;
	__u32 zero = 0;
	int err;

	if (!rv)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	for (int c = 0; on && c < fx_ncpus; c++) {
		rv[c].window_start_ns = (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
		rv[c].count = 1000;
	}
	err = bpf_map_update_elem(mfd(AIBL_MAP_RATE), &zero, rv, BPF_ANY);
	free(rv);
	if (err || bpf_map_lookup_elem(mfd(AIBL_MAP_GLOBALS), &zero, &g))
		return -errno;
	g.max_conn_rate = on ? 1 : 0;
	return bpf_map_update_elem(mfd(AIBL_MAP_GLOBALS), &zero, &g, BPF_ANY) ? -errno : 0;
}

static void test_simulate(void)
{
	/* new TCP flow to chat: only gpu-a is usable, bounded probing must find it */
	const struct ctl_case new_flow =
	    CASE("-j simulate 10.0.0.77:40000 10.100.0.1:80 tcp", 0,
		 JSTR("simulate.verdict", "XDP_TX", "verdict"),
		 JSTR("simulate.backend", "gpu-a", "the usable backend"),
		 JSTR("simulate.chosen_by", "conn_table", "found by its entry"),
		 JSTR("simulate.output.encap", "ipip", "ipip"),
		 JSTR("simulate.output.outer_dst", "10.1.0.1", "outer destination is the backend"),
		 JSTR("simulate.ack_verdict", "XDP_TX", "ACK verdict"),
		 JSTR("simulate.syn_backend", "gpu-a", "SYN on the same"),
		 JSTR("simulate.syn_chosen_by", "handshake_table", "recorded"),
		 JNOT_TRUE("simulate.split", "not split"),
		 /* the SYN is recorded without a connection lookup; its ACK misses
		  * and moves the handshake into the connection table */
		 JINT("simulate.counters.vip_packets", 2, "counted"),
		 JINT("simulate.counters.syn_record", 1, "SYN kept"),
		 JINT("simulate.counters.conn_miss", 1, "new flow"),
		 JINT("simulate.counters.syn_hit", 1, "ACK found it"),
		 JTRUE("simulate.conn_removed", "entry removed"),
		 JNOT_TRUE("simulate.handshake_removed", "the ACK took the record"),
		 JTRUE("simulate.load_restored", "load restored"));
	/* --keep leaves the flow: flow lookup finds it on the same backend */
	const struct ctl_case keep = CASE("simulate 10.0.0.78:40000 10.100.0.1:80 --keep", 0,
					  OUT("verdict     XDP_TX", "human verdict"),
					  OUT("gpu-a (id 0, 10.1.0.1) new flow", "human backend"),
					  OUT("connection entry kept", "kept"));
	const struct ctl_case kept[] = {
	    CASE("flow lookup 10.0.0.78:40000 10.100.0.1:80", 0,
		 ROW("kept flow", "10.0.0.78:40000", "gpu-a")),
	    /* the kept flow again: an established flow, nothing to undo */
	    CASE("-j simulate 10.0.0.78:40000 10.100.0.1:80", 0,
		 JTRUE("simulate.conn_existed", "existing"),
		 JINT("simulate.counters.conn_hit", 1, "hit"),
		 JNOT_TRUE("simulate.conn_removed", "entry stays"),
		 /* the SYN's record, which the ACK did not need, is taken back */
		 JTRUE("simulate.handshake_removed", "record removed")),
	};
	/* rate guard engaged on every CPU: a SYN goes by the hash choice (and is
	 * recorded). On a tuple whose entry (on gpu-b) is idle for 2 s, a port
	 * reused, its ACK takes the record and the handshake stays on gpu-a; on
	 * one whose entry was seen within the second, the ACK follows the entry,
	 * as with the guard off: simulate names both and flags the split */
	const struct ctl_case guarded[] = {
	    CASE("-j simulate 10.0.0.79:40000 10.100.0.1:80", 0,
		 JINT("simulate.counters.conn_untracked", 1, "the SYN untracked"),
		 JSTR("simulate.syn_backend", "gpu-a", "hash choice"),
		 JSTR("simulate.syn_chosen_by", "handshake_table", "recorded"),
		 JSTR("simulate.backend", "gpu-a", "ACK: the record, the entry rewritten"),
		 JSTR("simulate.chosen_by", "conn_table", "ACK: the entry"),
		 JNOT_TRUE("simulate.split", "not split")),
	};
	/* each run within a second of its entry's refresh */
	const struct ctl_case split[] = {
	    CASE("-j simulate 10.0.0.80:40000 10.100.0.1:80", 0,
		 JSTR("simulate.syn_backend", "gpu-a", "hash choice"),
		 JSTR("simulate.backend", "gpu-b", "ACK: the fresh entry"),
		 JTRUE("simulate.split", "split flagged")),
	    CASE("simulate 10.0.0.80:40000 10.100.0.1:80", 0,
		 OUT("warning     the SYN went to gpu-a, its ACK to gpu-b", "human warning")),
	};
	const struct ctl_case others[] = {
	    /* stateless UDP service: no entry, backend from the outer header */
	    CASE("-j simulate 10.0.0.8:5000 10.100.0.3:9000 udp", 0,
		 JSTR("simulate.verdict", "XDP_TX", "udp verdict"),
		 JSTR("simulate.backend", "gpu-a", "udp backend"),
		 JSTR("simulate.chosen_by", "outer_header", "stateless"),
		 JSTR("simulate.service", "batch", "wildcard port VIP")),
	    /* IPv6 VIP and backend */
	    CASE("-j simulate [fd00:200::9]:1234 [fd00:100::2]:443", 0,
		 JSTR("simulate.backend", "cpu-e", "v6 backend"),
		 JSTR("simulate.output.encap", "ip6ip6", "ip6ip6"),
		 JTRUE("simulate.conn_removed", "v6 entry removed")),
	    /* not a VIP: passed */
	    CASE("-j simulate 10.0.0.8:5000 10.100.0.200:80", 0,
		 JSTR("simulate.verdict", "XDP_PASS", "pass"),
		 JINT("simulate.counters.pass", 1, "pass counted")),
	    CASE("simulate help", 0,
		 OUT("What it changes in the maps", "help tells the side effects"),
		 OUT("aibl_conns", "help names the conn table")),
	};
	__s64 load_a;

	if (!need_fixture())
		return;
	load_a = load_of(BE_A);
	if (!run_case(&new_flow))
		return;
	ASSERT_FALSE(conn_exists("10.0.0.77", 40000, "10.100.0.1", 80, IPPROTO_TCP),
		     "no entry left behind");
	ASSERT_EQ(load_of(BE_A), load_a, "aibl_load as before");

	if (!run_case(&keep))
		return;
	ASSERT_TRUE(conn_exists("10.0.0.78", 40000, "10.100.0.1", 80, IPPROTO_TCP), "entry kept");
	ASSERT_EQ(load_of(BE_A), load_a + 1, "load counted");
	RUN_CASES(kept);
	ASSERT_TRUE(conn_exists("10.0.0.78", 40000, "10.100.0.1", 80, IPPROTO_TCP),
		    "existing entry untouched");

	if (!ASSERT_OK(put_conn("10.0.0.79", 40000, "10.100.0.1", 80, IPPROTO_TCP, BE_B, 0),
		       "entry on gpu-b") ||
	    !ASSERT_OK(guard_engage(1), "engage rate guard"))
		return;
	RUN_CASES(guarded);
	for (size_t i = 0; i < sizeof(split) / sizeof(split[0]); i++)
		/* seen 100 ms ago: the data plane's coarse clock may run a
		 * tick behind CLOCK_MONOTONIC, and an entry "seen" after its
		 * now would read as idle for ages */
		if (!ASSERT_OK(put_conn_idle("10.0.0.80", 40000, "10.100.0.1", 80, IPPROTO_TCP,
					     BE_B, 0, 100),
			       "fresh entry on gpu-b") ||
		    !run_case(&split[i]))
			break;
	ASSERT_OK(guard_engage(0), "release rate guard");
	ASSERT_TRUE(conn_exists("10.0.0.79", 40000, "10.100.0.1", 80, IPPROTO_TCP),
		    "entry untouched");

	RUN_CASES(others);
	ASSERT_FALSE(conn_exists("fd00:200::9", 1234, "fd00:100::2", 443, IPPROTO_TCP),
		     "no v6 entry left");

	/* a closed flow's tuple: the simulated handshake reuses it (its ACK
	 * acknowledges the SYN), which reopens the entry on the SYN's backend;
	 * simulate puts the closing entry back, and the open count with it */
	{
		const struct ctl_case closing = CASE("-j simulate 10.0.0.81:40000 10.100.0.1:80", 0,
						     JTRUE("simulate.conn_existed", "existing"),
						     JTRUE("simulate.conn_restored", "put back"));
		__s64 la = load_of(BE_A), lb = load_of(BE_B);
		struct aibl_flow_key k = {};
		struct aibl_conn c = {};

		if (ASSERT_OK(put_conn("10.0.0.81", 40000, "10.100.0.1", 80, IPPROTO_TCP, BE_B,
				       AIBL_CONN_F_CLOSING),
			      "closing entry on gpu-b") &&
		    run_case(&closing)) {
			addr_of("10.0.0.81", &k.src, &k.family);
			addr_of("10.100.0.1", &k.dst, &k.family);
			k.sport = htons(40000);
			k.dport = htons(80);
			k.proto = IPPROTO_TCP;
			ASSERT_OK(bpf_map_lookup_elem(mfd(AIBL_MAP_CONNS), &k, &c), "entry");
			ASSERT_TRUE(c.backend == BE_B && (c.flags & AIBL_CONN_F_CLOSING),
				    "still closing on gpu-b");
			ASSERT_EQ(load_of(BE_A), la, "gpu-a's count as before");
			ASSERT_EQ(load_of(BE_B), lb, "gpu-b's too");
		}
	}

	/* a p2c choice of a node whose prefills take turns adds the new
	 * session's prompt there (aibl_load.prefill_until_ns), and an ai
	 * service's becomes the client's affinity (aibl_affinity): simulate
	 * takes both back */
	{
		const struct ctl_case p2c =
		    CASE("-j simulate 10.0.0.80:40000 10.100.0.1:80", 0,
			 JSTR("simulate.verdict", "XDP_TX", "p2c verdict"),
			 JTRUE("simulate.affinity_restored", "affinity taken back"));
		union aibl_addr cli;
		__u8 fam;
		struct aibl_cost c, c0[NBE];
		struct aibl_load l0[NBE], l;
		struct aibl_affinity_bucket ab;
		__u32 aidx;
		struct aibl_globals g;
		__u32 zero = 0;

		for (__u32 b = 0; b < NBE; b++) {
			bpf_map_lookup_elem(mfd(AIBL_MAP_COST), &b, &c0[b]);
			bpf_map_lookup_elem(mfd(AIBL_MAP_LOAD), &b, &l0[b]);
			c = (struct aibl_cost){
			    .cost = 100, .free = 8, .per_flow = 50, .prefill_ms = 200};
			bpf_map_update_elem(mfd(AIBL_MAP_COST), &b, &c, 0);
		}
		addr_of("10.0.0.80", &cli, &fam);
		aidx = aibl_affinity_index(SVC_CHAT, &cli, fam);
		if (ASSERT_OK(bpf_map_lookup_elem(mfd(AIBL_MAP_GLOBALS), &zero, &g), "globals")) {
			g.affinity_ms = 60000;
			ASSERT_OK(bpf_map_update_elem(mfd(AIBL_MAP_GLOBALS), &zero, &g, BPF_ANY),
				  "affinity on");
		}
		if (ASSERT_OK(put_vip("10.100.0.1", 80, IPPROTO_TCP, SVC_CHAT, AIBL_MODE_P2C,
				      AIBL_KEY_SRC_IP, 1, AIBL_VIP_F_AFFINITY),
			      "chat by p2c, ai") &&
		    run_case(&p2c)) {
			for (__u32 b = 0; b < NBE; b++) {
				bpf_map_lookup_elem(mfd(AIBL_MAP_LOAD), &b, &l);
				ASSERT_EQ(l.prefill_until_ns, l0[b].prefill_until_ns,
					  "no prompt left behind");
			}
			if (ASSERT_OK(bpf_map_lookup_elem(mfd(AIBL_MAP_AFFINITY), &aidx, &ab),
				      "affinity bucket"))
				ASSERT_EQ(test_affinity__way(&ab, SVC_CHAT, fam, &cli), -1,
					  "no affinity left behind");
		}
		g.affinity_ms = 0;
		bpf_map_update_elem(mfd(AIBL_MAP_GLOBALS), &zero, &g, BPF_ANY);
		put_vip("10.100.0.1", 80, IPPROTO_TCP, SVC_CHAT, AIBL_MODE_HASH, AIBL_KEY_SRC_IP, 1,
			0);
		for (__u32 b = 0; b < NBE; b++)
			bpf_map_update_elem(mfd(AIBL_MAP_COST), &b, &c0[b], 0);
	}
}

/* ---------------- refusing maps of another layout ---------------- */

static void test_mismatch(void)
{
	struct aibl_globals g = {.abi_version = AIBL_ABI_VERSION + 98, .ring_size = AIBL_RING_SIZE};
	int bad = -1, gfd = -1, hfd = -1;
	__u32 zero = 0;
	char want[64];

	if (!need_fixture())
		return;
	snprintf(dir_bad, sizeof(dir_bad), "%s-badsize", dir);
	snprintf(dir_abi, sizeof(dir_abi), "%s-badabi", dir);
	snprintf(dir_type, sizeof(dir_type), "%s-badtype", dir);

	/* aibl_backends with 20-byte values: an older layout */
	bad = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aibl_backends", 4, 20, 64, NULL);
	if (!ASSERT_TRUE(bad >= 0, "create bad map") ||
	    !ASSERT_OK(repin(dir_bad, AIBL_MAP_BACKENDS, bad), "repin"))
		goto out;
	{
		const struct ctl_case cases[] = {
		    CASE(argf("--bpffs %s backend list", dir_bad), 1,
			 ERR("map aibl_backends", "names the map"),
			 ERR("value 24 B (struct aibl_backend)", "expected"),
			 ERR("value 20 B", "found"), OUT_NONE("nothing decoded on stdout")),
		    CASE(argf("-j --bpffs %s service list", dir_bad), 1,
			 JHAS("error", "aibl_backends", "json names the map")),
		    /* commands that do not need the bad map's fields still check it */
		    CASE(argf("--bpffs %s flow list", dir_bad), 1),
		};

		RUN_CASES(cases);
	}

	/* right layout, another ABI version in aibl_globals */
	gfd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aibl_globals", 4, sizeof(g), 1, NULL);
	if (!ASSERT_TRUE(gfd >= 0, "create globals") ||
	    !ASSERT_OK(bpf_map_update_elem(gfd, &zero, &g, BPF_ANY), "write globals") ||
	    !ASSERT_OK(repin(dir_abi, AIBL_MAP_GLOBALS, gfd), "repin abi"))
		goto out;
	snprintf(want, sizeof(want), "abi_version %d, expected %d", AIBL_ABI_VERSION + 98,
		 AIBL_ABI_VERSION);
	{
		const struct ctl_case c =
		    CASE(argf("--bpffs %s service list", dir_abi), 1, ERR(want, "abi message"));

		run_case(&c);
	}

	/* right sizes, wrong type: a plain hash as the connection table */
	hfd = bpf_map_create(BPF_MAP_TYPE_HASH, "aibl_conns", sizeof(struct aibl_flow_key),
			     sizeof(struct aibl_conn), 64, NULL);
	if (!ASSERT_TRUE(hfd >= 0, "create hash") ||
	    !ASSERT_OK(repin(dir_type, AIBL_MAP_CONNS, hfd), "repin type"))
		goto out;
	{
		const struct ctl_case cases[] = {
		    CASE(argf("--bpffs %s flow list", dir_type), 1,
			 ERR("expected lru_hash", "expected type"),
			 ERR("found hash", "found type")),
		    /* the good maps under the same dir still serve commands that do not read conns
		     */
		    CASE(argf("--bpffs %s pin list", dir_type), 0),
		};

		RUN_CASES(cases);
	}
out:
	if (bad >= 0)
		close(bad);
	if (gfd >= 0)
		close(gfd);
	if (hfd >= 0)
		close(hfd);
}

/* ---------------- misuse, help, prefixes ---------------- */

static void test_misuse(void)
{
	static const struct {
		const char *args;
		int rc;
		const char *msg;
	} cases[] = {
	    {"", 2, "Usage"},
	    {"bogus", 2, "unknown object 'bogus'"},
	    {"s list", 2, "ambiguous object 's': it could be service, stats, simulate, status"},
	    {"st", 2, "ambiguous object 'st'"},
	    {"service", 2, "service verb missing"},
	    {"service frob", 2, "unknown service verb 'frob'"},
	    {"service list extra", 2, "takes no arguments"},
	    {"service show", 2, "needs one NAME"},
	    {"flow lookup 1.2.3.4 10.100.0.1:80", 2, "not an address with a port"},
	    {"flow lookup 1.2.3.4:1 10.100.0.1:80 sctp", 2, "expected tcp or udp"},
	    {"flow list --limit", 2, "needs a value"},
	    {"flow list --limit -3", 2, "not a number"},
	    {"flow list --frob", 2, "unknown option '--frob'"},
	    {"stats --count 0", 2, "at least 1"},
	    {"node drain", 2, "needs one node NAME"},
	    {"node poll a b", 2, "needs one node NAME"},
	    {"simulate 10.0.0.1:1", 2, "needs CLIENT_IP:PORT VIP:PORT"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *msg = cases[i].msg;
		const struct ctl_case human = CASE(cases[i].args, cases[i].rc, ERR(msg));
		/* JSON mode: stdout is exactly one {"error": ...} */
		const struct ctl_case json = CASE(argf("-j %s", cases[i].args), cases[i].rc,
						  JHAS("error", msg, "json error"),
						  ERR_NONE("nothing on stderr in JSON mode"));

		run_case(&human);
		if (cases[i].args[0])
			run_case(&json);
	}
}

static void test_help_and_prefixes(void)
{
	static const char *const helps[] = {
	    "help",	   "service help", "backend help",     "table help",
	    "flow help",   "pin help",	   "stats help",       "simulate help",
	    "status help", "node help",	   "flow lookup help", "service show --help",
	};
	const struct ctl_case json_help =
	    CASE("-j flow help", 0, JHAS("help", "flow lookup", "json help text"));
	/* the overview names every verb (node poll and unload were only in
	 * 'node help') */
	const struct ctl_case overview[] = {
	    CASE("help", 0, OUT("node poll NAME", "node poll in the overview")),
	    CASE("help", 0, OUT("node unload NAME MODEL", "node unload in the overview")),
	};
	const struct ctl_case prefixes[] = {
	    /* unambiguous prefixes at both levels, global flags after the verb */
	    CASE("b l -j", 0, JARRAY("backends", "'b l' is backend list")),
	    CASE("stat", 2),  /* ambiguous: stats, status */
	    CASE("stats", 0), /* the exact name wins over the longer 'status' */
	    CASE("-p service list", 0, OUT("\n  \"services\"", "indented")),
	};

	for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
		const struct ctl_case c = CASE(helps[i], 0, OUT("Usage: aiblctl"));

		run_case(&c);
	}
	run_case(&json_help);
	RUN_CASES(overview);
	if (need_fixture())
		RUN_CASES(prefixes);
}

/* ---------------- controller API: a contract-3 server ---------------- */

static const char *status_doc =
    "{\"version\":\"0.1.0\",\"uptime_s\":3725,"
    "\"services\":[{\"name\":\"chat\",\"vip\":\"10.100.0.1\",\"port\":80,\"proto\":\"tcp\","
    "\"policy\":\"ai\",\"model\":\"llama-3-8b\",\"nodes\":[{\"name\":\"gpu-a\",\"weight\":100,"
    "\"slots\":7800,\"state\":\"up\"},{\"name\":\"gpu-b\",\"weight\":50,\"slots\":3900,"
    "\"state\":\"draining\"}],\"ai_prefix_hit\":0.713,\"ai_affinity\":true,\"ai_wait_ms\":1250},"
    "{\"name\":\"batch\",\"vip\":\"10.100.0.2\",\"port\":80,\"proto\":\"tcp\","
    "\"policy\":\"ai\",\"model\":\"whisper\",\"nodes\":[],\"ai_prefix_hit\":0.004,"
    "\"ai_affinity\":false,\"ai_wait_ms\":-1},"
    "{\"name\":\"web\",\"vip\":\"10.100.0.3\",\"port\":80,\"proto\":\"tcp\","
    "\"policy\":\"wrr\",\"model\":\"\",\"nodes\":[]},"
    "{\"name\":\"dns6\",\"vip\":\"fd00:100::1\",\"port\":0,\"proto\":\"udp\","
    "\"policy\":\"hash\",\"model\":\"\",\"nodes\":[]}],"
    "\"nodes\":[{\"name\":\"gpu-a\",\"address\":\"10.1.0.1\",\"state\":\"up\",\"healthy\":true,"
    "\"last_report_age_ms\":420,\"models\":[\"llama-3-8b\",\"bge-large\"],\"gpu_util_pct\":73.5,"
    "\"queue_depth\":4,\"in_flight\":12,\"kv_cache_usage\":0.625,\"ttft_avg_ms\":182.4,"
    "\"failures\":0,\"decap\":{\"interface\":\"eth0\",\"counters\":{\"pass\":812,"
    "\"decap_ipip\":51200,\"decap_ip6ip6\":300,\"decap_ip4ip6\":0,\"drop_source\":7,"
    "\"direct_vip\":2},\"dropped\":7},\"load\":{\"op\":\"unload\",\"model\":\"bge-large\","
    "\"service\":\"embed\",\"state\":\"unloading\",\"for_ms\":800,\"error\":\"\"},"
    "\"held\":[{\"model\":\"bge-large\",\"service\":\"embed\",\"resident_ms\":900000,"
    "\"quiet_ms\":600000}]},"
    "{\"name\":\"gpu-b\",\"address\":\"10.1.0.2\",\"state\":\"draining\",\"healthy\":true,"
    "\"last_report_age_ms\":380,\"models\":[\"llama-3-8b\"],\"gpu_util_pct\":12.0,"
    "\"queue_depth\":0,\"in_flight\":1,\"kv_cache_usage\":0.1,\"ttft_avg_ms\":95.0,"
    "\"failures\":2,\"unloading\":{\"model\":\"mistral-7b\",\"open_flows\":3},"
    "\"load\":{\"op\":\"unload\",\"model\":\"mistral-7b\",\"service\":\"mistral\","
    "\"state\":\"unloading\",\"for_ms\":2100,\"error\":\"\"}},"
    "{\"name\":\"cpu-c\",\"address\":\"10.1.0.3\",\"state\":\"down\",\"healthy\":false,"
    "\"last_report_age_ms\":-1,\"models\":[],\"gpu_util_pct\":-1,\"queue_depth\":-1,"
    "\"in_flight\":-1,\"kv_cache_usage\":-1,\"ttft_avg_ms\":-1,\"failures\":5},"
    /* names an engine listed: ten adapters of 36 bytes (past any fixed
     * line), one with a terminal escape, one with a newline, one C1 */
    "{\"name\":\"gpu-d\",\"address\":\"10.1.0.4\",\"state\":\"up\",\"healthy\":true,"
    "\"last_report_age_ms\":100,\"models\":[\"x\\u001b]0;pwned\\u0007\\u001b[2J\","
    "\"a\\nfake-node up\",\"c\\u009b31m\",\"adapter-00-meta-llama-3-8b-instruct\","
    "\"adapter-01-meta-llama-3-8b-instruct\",\"adapter-02-meta-llama-3-8b-instruct\","
    "\"adapter-03-meta-llama-3-8b-instruct\",\"adapter-04-meta-llama-3-8b-instruct\","
    "\"adapter-05-meta-llama-3-8b-instruct\",\"adapter-06-meta-llama-3-8b-instruct\","
    "\"adapter-07-meta-llama-3-8b-instruct\",\"adapter-08-meta-llama-3-8b-instruct\","
    "\"adapter-09-meta-llama-3-8b-instruct\"],\"gpu_util_pct\":5,\"queue_depth\":0,"
    "\"in_flight\":0,\"kv_cache_usage\":0,\"ttft_avg_ms\":-1,\"failures\":0,"
    "\"unloading\":{\"model\":\"adapter-10\",\"open_flows\":1}}]}";

static bool api_draining[2];

/* not fenced, yet not announcing: BIRD has not taken it */
static const char *cluster_doc =
    "{\"prefix\":\"/aibl\",\"version\":3,\"plan_digest\":\"d1\",\"plan_planner\":\"b1\","
    "\"planner\":\"b1\",\"name\":\"b1\",\"fenced\":false,\"announcing\":false,"
    "\"reason\":\"\",\"balancers\":[{\"name\":\"b1\",\"version\":3,\"digest\":\"d1\","
    "\"fenced\":false,\"announcing\":false,\"etcd_ok\":true,\"reason\":\"\"}]}";

/* 100 kB of a proxy's error page */
static const char *html_page(void)
{
	static char page[100 * 1024];

	if (!page[0]) {
		memset(page, 'x', sizeof(page) - 1);
		memcpy(page, "<html>\x1b[2J caf\xe9 bad gateway", 27);
	}
	return page;
}

static enum MHD_Result api_reply(struct MHD_Connection *c, unsigned int code, const char *body)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result api_handler(void *cls, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, const char *data,
				   size_t *size, void **state)
{
	char node[64], action[16], body[160];
	const char *auth;
	int idx;

	if (!*state) {
		/* first call: headers only; the (empty) body follows */
		*state = (void *)1;
		return MHD_YES;
	}
	if (*size) {
		*size = 0;
		return MHD_YES;
	}
	/* --api .../html: a web server's or a proxy's error page, long, with
	 * an escape sequence and a Latin-1 byte in it */
	if (!strncmp(url, "/html/", 6))
		return api_reply(c, 502, html_page());
	if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/status") == 0)
		return api_reply(c, 200, status_doc);
	if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/cluster") == 0)
		return api_reply(c, 200, cluster_doc);
	/* an unload under way; by the first look the agent is on to another
	 * balancer's load */
	if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/nodes/gpu-a/unload") == 0)
		return api_reply(c, 202,
				 "{\"agent_status\":202,\"agent\":{\"busy\":true,\"op\":\"unload\","
				 "\"model\":\"m1\",\"draining\":true}}");
	if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/nodes/gpu-a/load") == 0)
		return api_reply(c, 200,
				 "{\"agent_status\":200,\"agent\":{\"busy\":true,\"op\":\"load\","
				 "\"model\":\"other\",\"draining\":true,\"open_flows\":4}}");
	if (strcmp(method, "POST") != 0 ||
	    sscanf(url, "/v1/nodes/%63[^/]/%15s", node, action) != 2 ||
	    (strcmp(action, "drain") && strcmp(action, "undrain")))
		return api_reply(c, 404, "{\"error\":\"no such endpoint\"}");
	auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (!auth || strcmp(auth, "Bearer " TOKEN))
		return api_reply(c, 401, "{\"error\":\"missing or wrong bearer token\"}");
	idx = strcmp(node, "gpu-a") == 0 ? 0 : strcmp(node, "gpu-b") == 0 ? 1 : -1;
	if (idx < 0)
		return api_reply(c, 404, "{\"error\":\"unknown node\"}");
	api_draining[idx] = strcmp(action, "drain") == 0;
	snprintf(body, sizeof(body), "{\"node\":\"%s\",\"draining\":%s}", node,
		 api_draining[idx] ? "true" : "false");
	return api_reply(c, 200, body);
}

static struct MHD_Daemon *api_start(int *port)
{
	/* this suite's port range: 20000-20999 */
	for (int p = 20000 + getpid() % 900; p < 21000; p++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons(p),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		struct MHD_Daemon *d =
		    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, p, NULL, NULL, api_handler,
				     NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);

		if (d) {
			*port = p;
			return d;
		}
	}
	return NULL;
}

static void test_status_and_drain(void)
{
	char tokfile[] = "/tmp/aibl-t-cl-tokXXXXXX", api[64];
	struct MHD_Daemon *d;
	int port = 0, fd;

	d = api_start(&port);
	if (!ASSERT_OK_PTR(d, "api server"))
		return;
	snprintf(api, sizeof(api), "http://127.0.0.1:%d", port);
	fd = mkstemp(tokfile);
	if (!ASSERT_TRUE(fd >= 0, "token file"))
		goto out;
	ASSERT_EQ(write(fd, TOKEN "\n", strlen(TOKEN) + 1), (long)strlen(TOKEN) + 1, "write");
	close(fd);
	{
		const struct ctl_case cases[] = {
		    CASE(argf("-j --api %s status", api), 0, JSTR("version", "0.1.0", "version"),
			 JSIZE("nodes", 4, "nodes")),
		    CASE(argf("--api %s/ status", api), 0, OUT("aibld 0.1.0, up 1h02m", "title"),
			 ROW("service", "chat", "10.100.0.1:80/tcp", "ai", "71.3%, affinity",
			     "1.2s", "gpu-a(w100,7800 slots,up)"),
			 ROW("no prefix reuse", "batch", "ai", "0.4%, no affinity", "-"),
			 ROW("classic", "web", "wrr", "-"),
			 ROW("node a", "gpu-a", "10.1.0.1", "up", "yes", "420ms", "73.5%", "62.5%",
			     "182.4 ms", "51502 in, 7 dropped",
			     "llama-3-8b,bge-large* -bge-large (unloading)"),
			 ROW("node b", "gpu-b", "draining", "10.0%", "2  -",
			     "llama-3-8b -mistral-7b (draining, 3 open)"),
			 /* -1: never reported, not 584 years */
			 ROW("node c", "cpu-c", "10.1.0.3", "down", "no"),
			 OUT_NOT("213503", "no report age from -1"),
			 /* endpoints as service list writes them */
			 ROW("ipv6, every port", "dns6", "[fd00:100::1]:*/udp", "hash"),
			 /* the whole model list, its drain's mark after it; what
			  * the engine's names held prints as '?' */
			 ROW("node d", "gpu-d", "x?]0;pwned??[2J,a?fake-node up,c??31m,",
			     "adapter-09-meta-llama-3-8b-instruct -adapter-10 (draining, 1 open)"),
			 OUT_NOT("\x1b", "no escape reaches the terminal"),
			 OUT_NOT("\xc2\x9b", "nor a C1 control"),
			 OUT_NOT("\nfake-node", "nor a forged row")),
		    CASE(argf("-j --api %s --token-file %s node drain gpu-b", api, tokfile), 0,
			 JSTR("node", "gpu-b", "node"), JTRUE("draining", "draining")),
		};
		/* "u" is undrain or unload: ambiguous, the candidates named */
		const struct ctl_case undrain =
		    CASE(argf("--api %s no und gpu-b", api), 0,
			 OUT("node gpu-b: not draining", "human undrain"));
		const struct ctl_case refused[] = {
		    CASE(argf("--api %s node drain gpu-a", api), 1,
			 ERR("--token-file", "no token: says how to pass it")),
		    CASE(argf("-j --api %s --token-file %s node drain gpu-zz", api, tokfile), 1,
			 JHAS("error", "unknown node 'gpu-zz'", "message")),
		    CASE(argf("--api %s --token-file /nonexistent/tok node drain gpu-a", api), 1,
			 ERR("/nonexistent/tok", "names the missing token file")),
		    /* status needs no token: one that cannot be read does not stop it */
		    CASE(argf("-j --api %s --token-file /nonexistent/tok status", api), 0,
			 JSTR("version", "0.1.0", "status without the token")),
		    CASE(argf("--api %s no u gpu-b", api), 2,
			 ERR("unload", "u: ambiguous, names unload")),
		    CASE(argf("--api %s node unload gpu-b", api), 2,
			 ERR("a node NAME and a MODEL", "unload without a model: usage")),
		    CASE(argf("--api %s node unload gpu-b m1 --drain-timeout 5s", api), 2,
			 ERR("--drain-timeout: MS from 0 to 3600000", "a drain timeout in ms")),
		    CASE(argf("--api %s node unload gpu-b m1 --drain-timeout", api), 2,
			 ERR("--drain-timeout needs MS", "without its value")),
		    CASE(argf("--api %s node unload gpu-b m1 extra", api), 2,
			 ERR("--drain-timeout MS]", "a third word: usage")),
		};

		RUN_CASES(cases);
		ASSERT_TRUE(api_draining[1], "server saw the drain");
		/* undrain with the token from the environment */
		setenv("AIBL_API_TOKEN", TOKEN, 1);
		run_case(&undrain);
		unsetenv("AIBL_API_TOKEN");
		ASSERT_FALSE(api_draining[1], "server saw the undrain");
		RUN_CASES(refused);
		ASSERT_FALSE(api_draining[0], "nothing changed");
	}
	{
		/* argf's buffers hold 16 cases' words: these come after */
		const struct ctl_case pages[] = {
		    /* a page that is not the API's: its start, made printable */
		    CASE(argf("--api %s/html status", api), 1, ERR("HTTP 502: <html>?[2J caf"),
			 ERR("xxx...", "cut, and says so"), ERR_NOT("\x1b", "no escape"),
			 ERR_MAXLEN(600, "not the whole page")),
		    /* JSON holds UTF-8 only: the rest of the message kept */
		    CASE(
			argf("-j --api %s/html status", api), 1,
			JHAS("error", "HTTP 502: <html>?[2J caf?", "the error, not out of memory")),
		    CASE(argf("-j --api %s --token-file %s node drain caf\xe9", api, tokfile), 1,
			 JHAS("error", "unknown node 'caf?'", "a non-UTF-8 name in a JSON error")),
		    /* not fenced, not announcing: withdrawn, as its table row says */
		    CASE(argf("--api %s cluster show", api), 0, OUT("this balancer: b1, withdrawn"),
			 OUT_NOT(", announcing", "not announcing")),
		    /* the agent on to another operation: no wait on it, no word of
		     * its connections as this unload's */
		    CASE(argf("--api %s node unload gpu-a m1", api), 1,
			 ERR("last operation is load other now"),
			 OUT_NOT("open connection(s) of m1", "its connections not ours")),
		};
		const struct ctl_case proxied =
		    CASE(argf("-j --api %s --token-file %s node drain gpu-a", api, tokfile), 0,
			 JTRUE("draining", "drained past the proxy"));

		RUN_CASES(pages);
		/* a proxy in the environment (set for pip, model downloads) is
		 * not used: it would get the token, and cannot reach loopback */
		setenv("http_proxy", "http://127.0.0.1:1", 1);
		setenv("ALL_PROXY", "http://127.0.0.1:1", 1);
		run_case(&proxied);
		unsetenv("http_proxy");
		unsetenv("ALL_PROXY");
	}
out:
	MHD_stop_daemon(d);
	if (port) {
		/* nothing listens there any more: a clear error, not a hang */
		const struct ctl_case c = CASE(argf("-j --api %s status", api), 1,
					       JHAS("error", "is aibld running", "no controller"));

		run_case(&c);
	}
	unlink(tokfile);
}

/* ---------------- against the real controller ---------------- */

/* stands in for the nodes' model servers: accepts the controller's TCP checks */
static void *accept_loop(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		int c = accept(lfd, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		close(c);
	}
}

/* a TCP listener on 0.0.0.0:port for port in this suite's range, or -1 */
static int listen_in_range(int from, int *port)
{
	for (int p = from; p < 21000; p++) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(p)};
		int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fd >= 0 && !bind(fd, (void *)&sa, sizeof(sa)) && !listen(fd, 64)) {
			*port = p;
			return fd;
		}
		if (fd >= 0)
			close(fd);
	}
	return -1;
}

/* `aiblctl ARGS` until its JSON satisfies ok(), for at most ~10 s */
static json_t *poll_json(bool (*ok)(json_t *), const char *fmt, const char *a1, const char *a2)
{
	for (int i = 0; i < 100; i++) {
		struct run r;
		json_t *j;

		ctl_run(&r, fmt, a1, a2);
		j = r.rc == 0 ? json_loads(r.out, 0, NULL) : NULL;
		run_free(&r);
		if (j && ok(j))
			return j;
		json_decref(j);
		usleep(100000);
	}
	return NULL;
}

static bool status_all_up(json_t *j)
{
	size_t i, n = 0;
	json_t *node;

	json_array_foreach(jget(j, "nodes"), i, node) n +=
	    !strcmp(json_string_value(jget(node, "state")) ?: "", "up");
	return n == 2;
}

/*
 * Both nodes in the table as members with their weights: the controller
 * writes the ring and aibl_members one after the other, so a read can fall
 * between the two; wait for a settled table.
 */
static bool table_has_both(json_t *j)
{
	return json_array_size(jget(j, "table.backends")) == 2 &&
	       json_integer_value(jget(j, "table.backends[name=gpu-a].slots")) > 0 &&
	       json_integer_value(jget(j, "table.backends[name=gpu-b].slots")) > 0 &&
	       json_is_true(jget(j, "table.backends[name=gpu-a].member")) &&
	       json_is_true(jget(j, "table.backends[name=gpu-b].member")) &&
	       json_integer_value(jget(j, "table.backends[name=gpu-a].weight")) == 100 &&
	       json_integer_value(jget(j, "table.backends[name=gpu-b].weight")) == 200;
}

static bool b_draining(json_t *j)
{
	return json_is_true(jget(j, "backends[name=gpu-b].flags.draining"));
}

static bool b_not_draining(json_t *j)
{
	return jget(j, "backends[name=gpu-b]") && !b_draining(j);
}

static void test_real_aibld(void)
{
	char cfgpath[] = "/tmp/aibl-t-cl-cfgXXXXXX", tokfile[] = "/tmp/aibl-t-cl-tokXXXXXX";
	char bpffs[96], api[64], svc_port_s[16];
	const char *b = getenv("AIBL_BUILD");
	int lfd = -1, svc_port = 0, api_port = 0, fd, tmpfd = -1, st;
	bool veth = false, listening = false;
	char aibld[512], cmd[640];
	pthread_t th;
	pid_t pid = -1;
	json_t *j = NULL;
	FILE *f;

	snprintf(aibld, sizeof(aibld), "%s/aibld", b ? b : "build");
	if (access(aibld, X_OK)) {
		SKIP("build/aibld not built");
		return;
	}
	if (!test__can_bpf()) {
		SKIP("needs root for BPF");
		return;
	}
	snprintf(bpffs, sizeof(bpffs), "/sys/fs/bpf/aibl-t-cl-aibld-%d", getpid());
	/* service port: the nodes (127.0.0.1, 127.0.0.2) answer health checks on it */
	lfd = listen_in_range(20000 + getpid() % 400, &svc_port);
	if (!ASSERT_TRUE(lfd >= 0, "service port listener"))
		return;
	if (!ASSERT_OK(pthread_create(&th, NULL, accept_loop, &lfd), "accept thread"))
		goto out;
	listening = true;
	/* the API port: a free one of the range, released just before aibld binds it */
	tmpfd = listen_in_range(svc_port + 1, &api_port);
	if (!ASSERT_TRUE(tmpfd >= 0, "api port"))
		goto out;
	close(tmpfd);
	snprintf(api, sizeof(api), "http://127.0.0.1:%d", api_port);
	snprintf(svc_port_s, sizeof(svc_port_s), "%d", svc_port);

	if (!ASSERT_OK(system("ip link add cl-ae0 type veth peer name cl-ae1 && "
			      "ip link set cl-ae0 up && ip link set cl-ae1 up"),
		       "veth"))
		goto out;
	veth = true;
	fd = mkstemp(tokfile);
	if (!ASSERT_TRUE(fd >= 0, "token file"))
		goto out;
	ASSERT_EQ(write(fd, TOKEN "\n", strlen(TOKEN) + 1), (long)strlen(TOKEN) + 1, "write");
	close(fd);
	fd = mkstemp(cfgpath);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!ASSERT_OK_PTR(f, "config"))
		goto out;
	fprintf(f,
		"interface: cl-ae0\nxdp_mode: generic\nforwarding: ipip\nbpffs: %s\n"
		"poll_interval_ms: 100\npoll_timeout_ms: 100\nstatus_listen: 127.0.0.1:%d\n"
		"api_token_file: %s\ntunnel_source4: 10.99.0.1\n"
		"gateway_mac: 02:00:00:00:c1:01\n"
		"health:\n  fail_after: 3\n  rise_after: 1\n"
		"tables:\n  min_rewrite_interval_ms: 100\n"
		"services:\n  - name: chat\n    vip: 10.100.0.1\n    port: %d\n    proto: tcp\n"
		"    model: llama-3-8b\n    policy: wrr\n    session_key: src_ip\n"
		"nodes:\n  - name: gpu-a\n    address: 127.0.0.1\n    weight: 100\n"
		"  - name: gpu-b\n    address: 127.0.0.2\n    weight: 200\n",
		bpffs, api_port, tokfile, svc_port);
	fclose(f);

	pid = fork();
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);

		dup2(dn, 1);
		dup2(dn, 2);
		execl(aibld, aibld, "--config", cfgpath, (char *)NULL);
		_exit(127);
	}
	if (!ASSERT_TRUE(pid > 0, "fork aibld"))
		goto out;

	/* the API: both nodes up once their health checks pass */
	j = poll_json(status_all_up, "-j --api %s status%s", api, "");
	if (!ASSERT_OK_PTR(j, "status: both nodes up"))
		goto out;
	ASSERT_STREQ(json_string_value(jget(j, "services[0].name")), "chat", "status service");
	json_decref(j);
	j = NULL;
	{
		const struct ctl_case c = CASE(argf("--api %s status", api), 0,
					       ROW("node row", "gpu-b", "127.0.0.2", "up", "yes"),
					       /* no agent, no GPU figures: "-", not the API's -1 */
					       OUT_NOT("-1", "unknowns shown as -"));

		run_case(&c);
	}

	/* the maps the controller wrote, read with it running */
	j = poll_json(table_has_both, "--bpffs %s -j table show chat%s", bpffs, "");
	if (!ASSERT_OK_PTR(j, "table with both nodes")) {
		struct run r;

		ctl_run(&r, "--bpffs %s -j table show chat", bpffs);
		printf("  last table: %s\n", r.out);
		run_free(&r);
		goto out;
	}
	ASSERT_EQ(json_integer_value(jget(j, "table.empty_slots")), 0, "table full");
	/*
	 * Not asserted here: that the slot shares of the ring follow the weights
	 * 100:200. aiblctl reads them right (bpftool agrees), but aibld's first
	 * table currently does not (see the report); that is the controller's test.
	 */
	json_decref(j);
	j = NULL;
	{
		const struct ctl_case cases[] = {
		    CASE(argf("--bpffs %s service list", bpffs), 0,
			 ROW("chat row", "chat", "10.100.0.1:", "llama-3-8b", "wrr", "2/2 up")),
		    /* drain through the API: the maps show it, and a new flow avoids gpu-b */
		    CASE(argf("-j --api %s --token-file %s node drain gpu-b", api, tokfile), 0,
			 OUT("\"draining\":true", "drain answer")),
		};

		RUN_CASES(cases);
	}
	j = poll_json(b_draining, "--bpffs %s -j backend list%s", bpffs, "");
	ASSERT_OK_PTR(j, "gpu-b draining in aibl_backends");
	json_decref(j);
	j = NULL;
	for (int i = 0; i < 8; i++) {
		const struct ctl_case c =
		    CASE(argf("--bpffs %s -j simulate 10.0.7.%d:4%04d 10.100.0.1:%s", bpffs, i + 1,
			      i, svc_port_s),
			 0, JSTR("simulate.backend", "gpu-a", "drained: gpu-a"));

		if (!run_case(&c))
			break;
	}
	{
		const struct ctl_case c =
		    CASE(argf("--api %s --token-file %s node undrain gpu-b", api, tokfile), 0);

		run_case(&c);
	}
	j = poll_json(b_not_draining, "--bpffs %s -j backend list%s", bpffs, "");
	ASSERT_OK_PTR(j, "gpu-b back");
	{
		const struct ctl_case cases[] = {
		    /* the real API wants the token */
		    CASE(argf("--api %s node drain gpu-a", api), 1, ERR("HTTP 401", "401")),
		    CASE(argf("--api %s --token-file %s node drain nosuch", api, tokfile), 1,
			 ERR("unknown node 'nosuch'", "404")),
		    /* an early poll needs no token */
		    CASE(argf("--api %s node poll gpu-a", api), 0,
			 OUT("node gpu-a: poll asked for", "poll asked")),
		    CASE(argf("-j --api %s node poll gpu-b", api), 0, OUT("\"poll\":true", "json")),
		    CASE(argf("--api %s node poll nosuch", api), 1,
			 ERR("unknown node 'nosuch'", "poll: 404")),
		};

		RUN_CASES(cases);
	}
out:
	json_decref(j);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
		snprintf(cmd, sizeof(cmd), "%s --teardown --config %s >/dev/null 2>&1", aibld,
			 cfgpath);
		ASSERT_OK(system(cmd), "aibld --teardown");
	}
	if (veth && system("ip link del cl-ae0 2>/dev/null"))
		printf("  veth cl-ae0 already gone\n");
	if (listening) {
		pthread_cancel(th);
		pthread_join(th, NULL);
	}
	if (lfd >= 0)
		close(lfd);
	unlink(cfgpath);
	unlink(tokfile);
}

static void test_setup(void)
{
	struct run r;

	ctl_run(&r, "--version");
	ASSERT_OK(access(ctl_bin, X_OK), "aiblctl built");
	ASSERT_EQ(r.rc, 0, "runs");
	run_free(&r);
}

static const struct test_case cases[] = {
    {"setup", test_setup},
    {"misuse", test_misuse},
    {"help_and_prefixes", test_help_and_prefixes},
    {"service_list", test_service_list},
    {"service_show", test_service_show},
    {"backend_list", test_backend_list},
    {"table_show", test_table_show},
    {"flow", test_flow},
    {"pin_list", test_pin_list},
    {"affinity_list", test_affinity_list},
    {"stats", test_stats},
    {"simulate", test_simulate},
    {"mismatch", test_mismatch},
    {"status_and_drain", test_status_and_drain},
    {"real_aibld", test_real_aibld},
};

TEST_MAIN("aiblctl", cases)
