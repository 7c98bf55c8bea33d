// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Per-packet cost of aibl_xdp through BPF_PROG_TEST_RUN, beside an empty
 * XDP_TX program measured the same way in the same run.
 *
 * The program rewrites the packet (encapsulation), so repeat > 1 would
 * measure the already-encapsulated frame after the first pass. Every
 * packet is therefore one test run with repeat = 1 and the kernel's
 * reported duration (the time around the program run alone, not the
 * syscall), and every verdict is checked. Rounds alternate the two
 * programs; the per-packet cost of each is the median over rounds.
 *
 * Setup: default sizes from aibl.h, one service with 64 backends (hash
 * mode, client-address key), ipip forwarding. Cases:
 *   established  one hot flow: from the flow cache (aibl_fcache)
 *   established_full_path  the same with the flow cache off: the VIP and
 *                connection table lookups on every packet
 *   established_64k  MANY_FLOWS established flows (32x the flow cache's
 *                entries), each packet the next flow: the cache misses, so
 *                it is bypassed (aibl_fcache_ctl) but for its samples; the
 *                cost of the cache where it cannot help, beside
 *                established_64k_full_path (cache off)
 *   new_flow     distinct SYNs (new client address each), rate guard off:
 *                each recorded in the handshake table (aibl_syns), none in
 *                the connection table (that happens at the handshake's ACK)
 *   new_flow_guarded  the same SYNs with the rate guard engaged
 *                (max_conn_rate 1/s per CPU, each CPU's window filled
 *                before every round, as a burst of completed handshakes
 *                would): forwarded by the hash choice (and recorded)
 *   new_conn     the whole cost of a tracked new connection: its SYN, then
 *                its handshake's ACK, which moves it into the connection
 *                table (lookup miss + insert); ns and ratio per packet
 *   non_vip      traffic to an address that is not a VIP (XDP_PASS)
 * Output: "xdp <case> ratio=<cost/empty> ns=<ns per packet>" per case,
 * preceded by "#" lines describing the run.
 *
 * --mode hash|p2c|ai (default hash): the service's mode (setup()); new_flow
 * under "p2c" and "ai" gives the cost of client affinity on a new flow.
 *
 * --katran OBJ (lab/bench-xdp.sh --katran DIR): Katran's balancer.bpf.o
 * (katran_env.c) is measured on the same frames in the same rounds
 * ("katran <case>" lines; established_full_path, established_64k_full_path
 * and new_flow_guarded have no Katran counterpart of their own), then the
 * like-for-like pairs are named ("pair" lines). The process is pinned to
 * CPU 0 then, for both: Katran's LRU is per CPU.
 *
 * Not used for the main lines: BPF_F_TEST_XDP_LIVE_FRAMES. Its pages are
 * recycled within one run without their content being reset (only the
 * data pointers are), so an encapsulating program sees its own rewritten
 * frame again: with repeat 10000 only 5 x 256 of 50000 established frames
 * were forwarded (tx counter), the rest were passed as garbage. With
 * repeat <= batch size every frame is fresh, but the per-frame page-pool
 * and veth redirect work (260-540 ns, varying by 200 ns between rounds on
 * this VM) buries the program's ~60 ns.
 *
 * Secondary "#" line for non_vip: repeat = WARM_REPEAT in one run, not
 * live. Exact for that case, since the program passes the frame without
 * touching it (every repetition sees the original), and both programs are
 * measured so; the pass counter must grow by every repetition. It shows
 * the warm-cache cost without the ~30 ns of timer overhead that repeat = 1
 * puts into both sides of the ratio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>
#include "../bpf/xdp_env.h"
#include "katran_env.h"

#define NBACKENDS   64
#define ROUNDS	    7
#define PER_ROUND   20000
#define WARM_REPEAT 100000

static int empty_fd = -1;
static int katran_fd = -1;

/*
 * Engage the rate guard on every CPU: a window opened now (the program's
 * clock, bpf_ktime_get_coarse_ns, is CLOCK_MONOTONIC_COARSE) and already
 * at the limit, as after a burst of completed handshakes. SYNs alone never
 * fill it, since they insert nothing.
 */
static int rate_fill(__u64 limit)
{
	struct aibl_rate r = {.count = limit};
	struct timespec ts;
	int err;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	r.window_start_ns = (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	err = xe_percpu_set(AIBL_MAP_RATE, 0, &r, sizeof(r));
	if (err)
		fprintf(stderr, "bench_xdp: aibl_rate: %s\n", strerror(-err));
	return err ? -1 : 0;
}

static int load_empty(struct bpf_object **obj)
{
	const char *build = getenv("AIBL_BUILD") ?: "build";
	char path[512];
	int err;

	snprintf(path, sizeof(path), "%s/tests/bench/xdp_empty.bpf.o", build);
	*obj = bpf_object__open_file(path, NULL);
	if (!*obj)
		return -errno;
	err = bpf_object__load(*obj);
	if (err)
		return err;
	empty_fd = bpf_program__fd(bpf_object__find_program_by_name(*obj, "xdp_empty"));
	return empty_fd < 0 ? -ENOENT : 0;
}

/*
 * The service: NBACKENDS backends, hash on the client address. mode "p2c"
 * and "ai" run it as aibld runs an ai service: p2c over priced backends
 * with free slots (struct aibl_cost, every backend a member of the table),
 * "ai" with client affinity on (aibl_affinity: each new client of new_flow
 * reads its bucket, finds no entry and writes one in place).
 */
static int setup(const char *mode)
{
	struct aibl_vip_key k = {};
	struct aibl_vip v = {.svc_id = 0, .mode = AIBL_MODE_HASH, .session_key = AIBL_KEY_SRC_IP};
	bool p2c = !strcmp(mode, "p2c") || !strcmp(mode, "ai");
	__u32 ids[NBACKENDS];
	int err;

	for (__u32 i = 0; i < NBACKENDS; i++) {
		struct aibl_backend b = {.family = AIBL_AF_INET, .flags = AIBL_BE_F_VALID};
		__u32 id = i + 1;

		b.addr.v4 = htonl(0x0a010000 + id);
		xe_be_mac(id, b.mac);
		if (bpf_map_update_elem(xe_fd(AIBL_MAP_BACKENDS), &id, &b, BPF_ANY))
			return -errno;
		ids[i] = id;
		if (p2c) {
			struct aibl_cost c = {.cost = 100, .free = 65535, .per_flow = 50};
			struct aibl_member_key mk = {.svc_id = 0, .backend = id};
			struct aibl_member m = {.weight = 1, .slots = 1};

			if (bpf_map_update_elem(xe_fd(AIBL_MAP_COST), &id, &c, BPF_ANY) ||
			    bpf_map_update_elem(xe_fd(AIBL_MAP_MEMBERS), &mk, &m, BPF_ANY))
				return -errno;
		}
	}
	if (p2c)
		v.mode = AIBL_MODE_P2C;
	if (!strcmp(mode, "ai")) {
		v.flags = AIBL_VIP_F_AFFINITY;
		xe_glob.affinity_ms = 2000;
		xe_glob.affinity_spill_ms = 500;
		err = xe_globals_write();
		if (err)
			return err;
	}
	/* interleaved like a Maglev table of equal weights */
	err = xe_ring(0, 0, ids, NBACKENDS);
	if (err)
		return err;
	k.family = AIBL_AF_INET;
	xe_addr(&k.addr, AIBL_AF_INET, "10.100.0.1");
	k.port = htons(80);
	k.proto = IPPROTO_TCP;
	if (bpf_map_update_elem(xe_fd(AIBL_MAP_VIPS), &k, &v, BPF_ANY))
		return -errno;
	/* xe_up() turned both pre-filters on, as aibld runs them */
	return dp__vip_filter_rebuild(xe_fd(AIBL_MAP_FILTER), xe_fd(AIBL_MAP_VIPS))
		   ?: xe_pin_filter();
}

enum bcase {
	B_ESTABLISHED,
	B_ESTABLISHED_FULL,
	B_MANY,
	B_MANY_FULL,
	B_NEW_FLOW,
	B_NEW_FLOW_GUARDED,
	B_NEW_CONN,
	B_NON_VIP
};

static const char *const case_names[] = {
    "established", "established_full_path", "established_64k", "established_64k_full_path",
    "new_flow",	   "new_flow_guarded",	    "new_conn",	       "non_vip"};

/* established_64k: flows in the connection table, cycled */
#define MANY_FLOWS 65536

/* client of established_64k flow i: 172.16.0.0/12 */
static void many_src(__u32 i, char *src)
{
	struct in_addr a = {htonl(0xac100000u + i)};

	inet_ntop(AF_INET, &a, src, INET_ADDRSTRLEN);
}

/* the flow keys of the MANY_FLOWS flows */
static struct aibl_flow_key *many_keys(void)
{
	static struct aibl_flow_key keys[MANY_FLOWS];
	char src[INET_ADDRSTRLEN];

	for (__u32 i = 0; i < MANY_FLOWS; i++) {
		many_src(i, src);
		keys[i] = xe_fk(src, "10.100.0.1", 40000, 80, IPPROTO_TCP);
	}
	return keys;
}

/* the MANY_FLOWS flows straight into the connection table, spread over
 * the backends, as if their handshakes were done */
static int many_insert(void)
{
	static struct aibl_conn vals[MANY_FLOWS];
	struct aibl_flow_key *keys = many_keys();
	__u32 count = MANY_FLOWS;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	for (__u32 i = 0; i < MANY_FLOWS; i++)
		vals[i] = (struct aibl_conn){.backend = 1 + i % NBACKENDS};
	if (bpf_map_update_batch(xe_fd(AIBL_MAP_CONNS), keys, vals, &count, &bo)) {
		fprintf(stderr, "bench_xdp: insert %d flows: %s\n", MANY_FLOWS, strerror(errno));
		return -1;
	}
	return 0;
}

/* the MANY_FLOWS flows out of the table again, so later cases start as
 * before */
static int many_delete(void)
{
	__u32 count = MANY_FLOWS;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	if (bpf_map_delete_batch(xe_fd(AIBL_MAP_CONNS), many_keys(), &count, &bo)) {
		fprintf(stderr, "bench_xdp: delete %d flows: %s\n", MANY_FLOWS, strerror(errno));
		return -1;
	}
	return xe_epoch_bump();
}

/* the flow cache on or off for the next case */
static int fcache_set(bool on)
{
	if (on)
		xe_glob.flags |= AIBL_G_F_FLOW_CACHE;
	else
		xe_glob.flags &= ~AIBL_G_F_FLOW_CACHE;
	return xe_globals_write();
}

/* new_flow_guarded's limit: small, so nearly every measured SYN is refused */
#define GUARD_RATE 1

static __u32 flow_seq;

static void build(enum bcase c, struct pkt_buf *b)
{
	char src[INET_ADDRSTRLEN];
	struct in_addr a;

	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	switch (c) {
	case B_ESTABLISHED:
	case B_ESTABLISHED_FULL:
		pkt__ipv4(b, "192.0.2.10", "10.100.0.1", NULL);
		pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
		break;
	case B_MANY:
	case B_MANY_FULL:
		many_src(flow_seq++ % MANY_FLOWS, src);
		pkt__ipv4(b, src, "10.100.0.1", NULL);
		pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
		break;
	case B_NEW_FLOW:
	case B_NEW_FLOW_GUARDED:
	case B_NEW_CONN:
		/* a new client each time: 100.64.0.0/10 holds 4M of them */
		a.s_addr = htonl(0x64400000u + ++flow_seq);
		inet_ntop(AF_INET, &a, src, sizeof(src));
		pkt__ipv4(b, src, "10.100.0.1", NULL);
		pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
		break;
	case B_NON_VIP:
		pkt__ipv4(b, "192.0.2.10", "10.200.0.1", NULL);
		pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
		break;
	}
	pkt__fill(b, 64); /* a small request segment */
	pkt__finish(b);
}

/* average kernel-reported ns per packet over n single runs; -1 on a wrong
 * verdict or error */
static double measure(int fd, enum bcase c, __u32 want, int n, struct pkt_buf *pkts)
{
	static struct xe_result r;
	__u64 total = 0;

	for (int i = 0; i < n; i++) {
		xe_run_fd(fd, pkts[i].buf, pkts[i].len, &r);
		if (r.err || r.verdict != want) {
			fprintf(stderr, "bench_xdp: %s packet %d: err %d verdict %u, want %u\n",
				case_names[c], i, r.err, r.verdict, want);
			return -1;
		}
		total += r.duration;
	}
	return (double)total / n;
}

/*
 * established_64k's frames with the flow cache off, in the same round as
 * with it on: whether the cache (and its bypass) costs anything where it
 * cannot help, without the drift between cases. The second aibl run of a
 * round finds the flows' table lines warmed by the first, so the caller
 * alternates the order by round. Its connection-table hits are taken out
 * of *chit0's count, which is the cache-on runs'. 0 or -1.
 */
static int many_off(int r, int n, struct pkt_buf *pkts, double *off, __u64 *chit0)
{
	__u64 h0 = xe_counter(AIBL_CNT_CONN_HIT);

	if (fcache_set(false))
		return -1;
	off[r] = measure(dp__prog_fd(xe_dp), B_MANY, XDP_TX, n, pkts);
	if (off[r] < 0 || fcache_set(true))
		return -1;
	*chit0 += xe_counter(AIBL_CNT_CONN_HIT) - h0;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ns per packet of one run of repeat packets (not live: for a frame the
 * program leaves as it is); -1 on error */
static double measure_warm(int fd, const struct pkt_buf *b, int repeat, __u32 want)
{
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = b->buf, .data_size_in = b->len,
		    .repeat = repeat);

	if (bpf_prog_test_run_opts(fd, &t)) {
		fprintf(stderr, "bench_xdp: warm run: %s\n", strerror(errno));
		return -1;
	}
	if (t.retval != want) {
		fprintf(stderr, "bench_xdp: warm run: verdict %u, want %u\n", t.retval, want);
		return -1;
	}
	return t.duration;
}

/* the non_vip case warm (see the top); 0 or -1 with a message */
static int non_vip_warm(struct pkt_buf *b)
{
	double prog[ROUNDS], empty[ROUNDS];

	for (int r = 0; r < ROUNDS; r++) {
		__u64 pass0 = xe_counter(AIBL_CNT_PASS), vip0 = xe_counter(AIBL_CNT_VIP_PKTS);

		empty[r] = measure_warm(empty_fd, b, WARM_REPEAT, XDP_TX);
		prog[r] = measure_warm(dp__prog_fd(xe_dp), b, WARM_REPEAT, XDP_PASS);
		if (empty[r] < 0 || prog[r] < 0)
			return -1;
		if (xe_counter(AIBL_CNT_PASS) - pass0 != WARM_REPEAT ||
		    xe_counter(AIBL_CNT_VIP_PKTS) != vip0) {
			fprintf(stderr, "bench_xdp: non_vip warm: %llu of %d packets passed\n",
				(unsigned long long)(xe_counter(AIBL_CNT_PASS) - pass0),
				WARM_REPEAT);
			return -1;
		}
	}
	qsort(prog, ROUNDS, sizeof(double), cmp_double);
	qsort(empty, ROUNDS, sizeof(double), cmp_double);
	printf("# non_vip warm (repeat=%d in one run, not live, frame unchanged; pass counter "
	       "checked): empty %.0f ns, aibl_xdp %.0f ns, ratio %.2f\n",
	       WARM_REPEAT, empty[ROUNDS / 2], prog[ROUNDS / 2],
	       prog[ROUNDS / 2] / empty[ROUNDS / 2]);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_xdp [--mode hash|p2c|ai] [--katran BALANCER.bpf.o] [CASE]\n"
		   "  per-packet cost of aibl_xdp beside an empty XDP_TX program; CASE, one of:\n");
	for (int c = B_ESTABLISHED; c <= B_NON_VIP; c++)
		fprintf(f, "    %s\n", case_names[c]);
}

int main(int argc, char **argv)
{
	static struct pkt_buf pkts[PER_ROUND];
	struct bpf_object *eobj = NULL;
	double kratio[B_NON_VIP + 1] = {}, aratio[B_NON_VIP + 1] = {};
	const char *katran = NULL, *only = NULL, *mode = "hash";
	int err, rc = 1, only_case = -1; /* bench_xdp CASE: its index */

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--katran") && i + 1 < argc)
			katran = argv[++i];
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			mode = argv[++i];
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage(stdout), 0;
		else if (argv[i][0] == '-' || only)
			return usage(stderr), 2;
		else
			only = argv[i];
	}
	for (int c = B_ESTABLISHED; only && only_case < 0 && c <= B_NON_VIP; c++)
		if (!strcmp(only, case_names[c]))
			only_case = c;
	if (only && only_case < 0) {
		fprintf(stderr, "bench_xdp: no case '%s'\n", only);
		return usage(stderr), 2;
	}

	if (strcmp(mode, "hash") && strcmp(mode, "p2c") && strcmp(mode, "ai")) {
		fprintf(stderr, "bench_xdp: --mode: hash, p2c or ai\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "bench_xdp: needs root (BPF_PROG_TEST_RUN)\n");
		return 2;
	}
	err = xe_up(NULL);
	if (err) {
		fprintf(stderr, "bench_xdp: load aibl_xdp: %s\n", strerror(-err));
		goto out;
	}
	err = load_empty(&eobj);
	if (err) {
		fprintf(stderr, "bench_xdp: load xdp_empty.bpf.o: %s\n", strerror(-err));
		goto out;
	}
	err = setup(mode);
	if (err) {
		fprintf(stderr, "bench_xdp: setup maps: %s\n", strerror(-err));
		goto out;
	}
	if (katran) {
		cpu_set_t set;

		err = katran__load(katran, XE_MAC_GW);
		if (err) {
			fprintf(stderr, "bench_xdp: load and set up %s: %s\n", katran,
				strerror(-err));
			goto out;
		}
		katran_fd = katran__fd();
		CPU_ZERO(&set);
		CPU_SET(0, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			perror("bench_xdp: pin to cpu 0");
		printf(
		    "# katran lines: %s (default constants, 1M-entry LRU per CPU, 65537-slot "
		    "ring, 100 reals, ipip), same frames, same rounds; process pinned to CPU 0\n",
		    katran);
	}
	printf(
	    "# xdp lines: aibl_xdp vs empty XDP_TX, BPF_PROG_TEST_RUN repeat=1 x %d packets x %d "
	    "rounds, "
	    "kernel-reported duration, median of rounds\n",
	    PER_ROUND, ROUNDS);
	printf("# sizes: default (conns %u, services %u, backends %u, ring %u); service: %d "
	       "backends, %s, ipip, no session pins, vip and pin pre-filters on (as aibld); "
	       "%zu-byte "
	       "frames\n",
	       xe_dp->sizes.max_conns, xe_dp->sizes.max_services, xe_dp->sizes.max_backends,
	       AIBL_RING_SIZE, NBACKENDS,
	       !strcmp(mode, "ai")    ? "p2c priced as ai with client affinity"
	       : !strcmp(mode, "p2c") ? "p2c priced as ai, no client affinity"
				      : "hash",
	       (size_t)(14 + 20 + 20 + 64));
	printf("# rate guard: off for new_flow (the tracked regime, every SYN recorded for its "
	       "handshake), engaged for new_flow_guarded (SYNs forwarded untracked); a balancer "
	       "whose flood guard engages during a SYN benchmark measures the guarded regime, not "
	       "the tracked one\n");

	for (int c = B_ESTABLISHED; c <= B_NON_VIP; c++) {
		__u32 want = c == B_NON_VIP ? XDP_PASS : XDP_TX;
		double prog[ROUNDS], empty[ROUNDS];
		/* aibl_conns keeps one LRU list per CPU (BPF_F_NO_COMMON_LRU), each
		 * with max_conns / CPUs entries; this process may run on one CPU
		 * only, so stay below 80% of one list: no insert may evict */
		__u32 lru_cpu = xe_dp->sizes.max_conns / libbpf_num_possible_cpus();
		int n = PER_ROUND;
		__u32 nconns = 0, conns0 = 0;
		__u64 untracked0 = 0, hit0, fill0, chit0, byp0;
		bool many = c == B_MANY || c == B_MANY_FULL;
		bool full_path = c == B_ESTABLISHED_FULL || c == B_MANY_FULL;

		/* bench_xdp [CASE]: one case only (for perf record) */
		if (only_case >= 0 && c != only_case)
			continue;
		/* Katran's counterpart of this case, when it has one of its own */
		int kfd = katran_fd >= 0 && c != B_ESTABLISHED_FULL && c != B_MANY_FULL &&
				  c != B_NEW_FLOW_GUARDED
			      ? katran_fd
			      : -1;
		double kat[ROUNDS], off[ROUNDS];

		/* the full-path cases with the flow cache off, the others on */
		if (fcache_set(!full_path))
			goto out;
		if (c == B_ESTABLISHED || c == B_ESTABLISHED_FULL) {
			/* the first packet opens the flow, the second writes its
			 * flow cache entry: later ones hit the cache */
			build(c, &pkts[0]);
			if (measure(dp__prog_fd(xe_dp), c, XDP_TX, 1, pkts) < 0 ||
			    measure(dp__prog_fd(xe_dp), c, XDP_TX, 1, pkts) < 0 ||
			    (kfd >= 0 && measure(kfd, c, XDP_TX, 1, pkts) < 0))
				goto out;
			for (int i = 1; i < PER_ROUND; i++)
				pkts[i] = pkts[0];
		}
		if (many && many_insert())
			goto out;
		if (many) {
			flow_seq = 0;
			conns0 = xe_conns_count();
		}
		if (many && kfd >= 0) {
			/* Katran's LRU learns the flows from their first packets */
			for (__u32 i = 0; i < MANY_FLOWS; i++) {
				build(c, &pkts[0]);
				if (measure(kfd, c, XDP_TX, 1, pkts) < 0)
					goto out;
			}
			flow_seq = 0;
		}
		if (c == B_MANY) {
			/* and aibl's flow cache learns that it misses here: one
			 * pass over the flows, so the rounds measure its steady
			 * bypass, not its first samples */
			for (__u32 i = 0; i < MANY_FLOWS; i++) {
				build(c, &pkts[0]);
				if (measure(dp__prog_fd(xe_dp), c, XDP_TX, 1, pkts) < 0)
					goto out;
			}
			flow_seq = 0;
		}
		hit0 = xe_counter(AIBL_CNT_FCACHE_HIT);
		fill0 = xe_counter(AIBL_CNT_FCACHE_FILL);
		chit0 = xe_counter(AIBL_CNT_CONN_HIT);
		byp0 = xe_counter(AIBL_CNT_FCACHE_BYPASS);
		if (c == B_NEW_FLOW_GUARDED) {
			/* the refused SYNs are not inserted: no LRU bound on n */
			n = PER_ROUND;
			conns0 = xe_conns_count();
			untracked0 = xe_counter(AIBL_CNT_CONN_UNTRACKED);
			xe_glob.max_conn_rate = GUARD_RATE;
			if (xe_globals_write())
				goto out;
		}
		if (c == B_NEW_CONN) {
			/* n / 2 connections per round, each inserted at its ACK */
			n = PER_ROUND;
			if ((__u32)n / 2 * ROUNDS > lru_cpu / 5 * 4)
				n = lru_cpu / 5 * 4 / ROUNDS * 2;
			conns0 = xe_conns_count();
		}
		for (int r = 0; r < ROUNDS; r++) {
			if (c == B_NEW_FLOW_GUARDED && rate_fill(GUARD_RATE))
				goto out;
			if (c == B_NEW_CONN) {
				/* SYN, then its handshake's ACK (the same frame
				 * with ACK instead of SYN: same length) */
				for (int i = 0; i + 1 < n; i += 2) {
					build(c, &pkts[i]);
					pkts[i + 1] = pkts[i];
					pkts[i + 1].buf[14 + 20 + 13] = PKT_TCP_ACK;
				}
			} else if (c != B_ESTABLISHED && c != B_ESTABLISHED_FULL) {
				for (int i = 0; i < n; i++)
					build(c, &pkts[i]);
			}
			/* the empty program sees the same frames first, then ours */
			empty[r] = measure(empty_fd, c, XDP_TX, n, pkts);
			if (c == B_MANY && r % 2 == 1 && many_off(r, n, pkts, off, &chit0))
				goto out;
			prog[r] = measure(dp__prog_fd(xe_dp), c, want, n, pkts);
			if (empty[r] < 0 || prog[r] < 0)
				goto out;
			if (kfd >= 0 && (kat[r] = measure(kfd, c, want, n, pkts)) < 0)
				goto out;
			if (c == B_MANY && r % 2 == 0 && many_off(r, n, pkts, off, &chit0))
				goto out;
		}
		qsort(prog, ROUNDS, sizeof(double), cmp_double);
		qsort(empty, ROUNDS, sizeof(double), cmp_double);
		if (c == B_NEW_FLOW || c == B_NEW_FLOW_GUARDED || c == B_NEW_CONN || many)
			nconns = xe_conns_count();
		if (c <= B_MANY_FULL) {
			__u64 hits = xe_counter(AIBL_CNT_FCACHE_HIT) - hit0;
			__u64 full = xe_counter(AIBL_CNT_CONN_HIT) - chit0;
			__u64 total = (__u64)ROUNDS * n;

			__u64 fills = xe_counter(AIBL_CNT_FCACHE_FILL) - fill0;
			/* every lookup that missed here filled: the rest went past */
			__u64 past = full_path ? 0 : total - hits - fills;

			printf("# %s regime: %s, flow cache %s; %d x %d packets: %llu from the "
			       "flow cache (%.1f%%), %llu connection-table hits, %llu entries "
			       "written, %llu past the cache while it was bypassed (%.1f%%, %llu "
			       "bypasses)\n",
			       case_names[c], many ? "65536 flows cycled" : "one flow",
			       full_path ? "off" : "on", ROUNDS, n, (unsigned long long)hits,
			       100.0 * hits / total, (unsigned long long)full,
			       (unsigned long long)fills, (unsigned long long)past,
			       100.0 * past / total,
			       (unsigned long long)(xe_counter(AIBL_CNT_FCACHE_BYPASS) - byp0));
			/* every packet an established one, by either path */
			if (hits + full != total || (many && nconns != conns0)) {
				fprintf(stderr,
					"bench_xdp: %s: not every packet was an established "
					"hit\n",
					case_names[c]);
				goto out;
			}
			if (many && many_delete())
				goto out;
		}
		if (c == B_NEW_FLOW && xe_counter(AIBL_CNT_CONN_UNTRACKED)) {
			fprintf(stderr, "bench_xdp: new_flow: the rate guard refused SYNs\n");
			goto out;
		}
		if (c == B_NEW_FLOW_GUARDED) {
			__u64 refused = xe_counter(AIBL_CNT_CONN_UNTRACKED) - untracked0;

			xe_glob.max_conn_rate = 0;
			if (xe_globals_write())
				goto out;
			printf("# new_flow_guarded regime: max_conn_rate=%d/s per CPU; %d x %d "
			       "distinct SYNs: %llu untracked (conn_untracked), %u inserted (table "
			       "%u -> %u entries): %s\n",
			       GUARD_RATE, ROUNDS, n, (unsigned long long)refused, nconns - conns0,
			       conns0, nconns,
			       refused * 100 >= (__u64)ROUNDS * n * 99 ? "guard engaged"
								       : "GUARD NOT ENGAGED");
		}
		if (c == B_NEW_FLOW) {
			printf("# new_flow regime: %d x %d distinct SYNs, each recorded in the "
			       "handshake table (%u x %u ways), none in the connection table (%u "
			       "entries after)\n",
			       ROUNDS, n, AIBL_SYN_BUCKETS, AIBL_SYN_WAYS, nconns);
			if (xe_counter(AIBL_CNT_SYN_RECORD) < (__u64)ROUNDS * n || nconns > 1) {
				fprintf(stderr, "bench_xdp: new_flow: SYNs not recorded as such\n");
				goto out;
			}
		}
		if (c == B_NEW_CONN) {
			printf(
			    "# new_conn regime: %d x %d new connections, SYN then its handshake's "
			    "ACK (which inserts into the %u-entry LRU, per-CPU lists of %u); "
			    "table %u -> %u entries: %s; ns and ratio per packet\n",
			    ROUNDS, n / 2, xe_dp->sizes.max_conns, lru_cpu, conns0, nconns,
			    nconns - conns0 == (__u32)ROUNDS * (n / 2)
				? "every connection inserted, no evictions"
				: "NOT ALL INSERTED");
			if (nconns - conns0 != (__u32)ROUNDS * (n / 2))
				goto out;
		}
		printf("# %s: empty program %.1f ns, aibl_xdp %.1f ns above it\n", case_names[c],
		       empty[ROUNDS / 2], prog[ROUNDS / 2] - empty[ROUNDS / 2]);
		if (c == B_NON_VIP && non_vip_warm(&pkts[0]))
			goto out;
		if (c == B_MANY) {
			qsort(off, ROUNDS, sizeof(double), cmp_double);
			printf("# established_64k in the same rounds: flow cache on %.2f, off %.2f "
			       "(%s)\n",
			       prog[ROUNDS / 2] / empty[ROUNDS / 2],
			       off[ROUNDS / 2] / empty[ROUNDS / 2],
			       prog[ROUNDS / 2] <= off[ROUNDS / 2] ? "on <= off" : "on > off");
		}
		printf("xdp %s ratio=%.2f ns=%.1f\n", case_names[c],
		       prog[ROUNDS / 2] / empty[ROUNDS / 2], prog[ROUNDS / 2]);
		aratio[c] = prog[ROUNDS / 2] / empty[ROUNDS / 2];
		if (kfd >= 0) {
			qsort(kat, ROUNDS, sizeof(double), cmp_double);
			kratio[c] = kat[ROUNDS / 2] / empty[ROUNDS / 2];
			printf("katran %s ratio=%.2f ns=%.1f\n", case_names[c], kratio[c],
			       kat[ROUNDS / 2]);
		}
		fflush(stdout);
	}
	if (katran_fd >= 0) {
		/* like for like: aibl's case, Katran's case doing the same work */
		static const struct {
			int a, k;
			const char *what;
		} pairs[] = {
		    {B_ESTABLISHED, B_ESTABLISHED, "one hot flow (aibl: flow cache)"},
		    {B_ESTABLISHED_FULL, B_ESTABLISHED, "one hot flow, full path (cache off)"},
		    {B_MANY, B_MANY, "65536 established flows cycled"},
		    {B_MANY_FULL, B_MANY, "65536 flows cycled, aibl cache off"},
		    {B_NEW_FLOW, B_NEW_FLOW, "a SYN from a new client per packet"},
		    {B_NEW_CONN, B_NEW_CONN, "new connection (SYN + ACK), per packet"},
		    {B_NON_VIP, B_NON_VIP, "not for a VIP"},
		};

		for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
			if (aratio[pairs[i].a] > 0 && kratio[pairs[i].k] > 0)
				printf("pair %-26s aibl %.2f katran %.2f %s  (%s)\n",
				       case_names[pairs[i].a], aratio[pairs[i].a],
				       kratio[pairs[i].k],
				       aratio[pairs[i].a] <= kratio[pairs[i].k] ? "<=" : "> ",
				       pairs[i].what);
	}
	rc = 0;
out:
	bpf_object__close(eobj);
	katran__close();
	xe_down();
	return rc;
}
