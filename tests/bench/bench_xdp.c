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
 *   established  one hot flow, connection table hit
 *   new_flow     distinct SYNs (new client address each), table not full
 *   non_vip      traffic to an address that is not a VIP (XDP_PASS)
 * Output: "xdp <case> ratio=<cost/empty> ns=<ns per packet>" per case,
 * preceded by "#" lines describing the run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../bpf/xdp_env.h"

#define NBACKENDS 64
#define ROUNDS 7
#define PER_ROUND 20000

static int empty_fd = -1;

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

static int setup(void)
{
	struct aibl_vip_key k = {};
	struct aibl_vip v = { .svc_id = 0, .mode = AIBL_MODE_HASH,
			      .session_key = AIBL_KEY_SRC_IP };
	__u32 ids[NBACKENDS];
	int err;

	for (__u32 i = 0; i < NBACKENDS; i++) {
		struct aibl_backend b = { .family = AIBL_AF_INET, .flags = AIBL_BE_F_VALID };
		__u32 id = i + 1;

		b.addr.v4 = htonl(0x0a010000 + id);
		xe_be_mac(id, b.mac);
		if (bpf_map_update_elem(xe_fd(AIBL_MAP_BACKENDS), &id, &b, BPF_ANY))
			return -errno;
		ids[i] = id;
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
	return dp__vip_filter_rebuild(xe_fd(AIBL_MAP_FILTER), xe_fd(AIBL_MAP_VIPS)) ?:
	       xe_pin_filter();
}

enum bcase { B_ESTABLISHED, B_NEW_FLOW, B_NON_VIP };

static const char *const case_names[] = { "established", "new_flow", "non_vip" };

static __u32 flow_seq;

static void build(enum bcase c, struct pkt_buf *b)
{
	char src[INET_ADDRSTRLEN];
	struct in_addr a;

	pkt__init(b);
	pkt__eth(b, XE_MAC_LB, XE_MAC_RTR);
	switch (c) {
	case B_ESTABLISHED:
		pkt__ipv4(b, "192.0.2.10", "10.100.0.1", NULL);
		pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
		break;
	case B_NEW_FLOW:
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

/* entries in the connection table (a full walk: after a case only) */
static __u32 conns_count(void)
{
	struct aibl_flow_key k, next;
	int fd = xe_fd(AIBL_MAP_CONNS);
	__u32 n = 0;

	if (bpf_map_get_next_key(fd, NULL, &k))
		return 0;
	do
		n++;
	while (!bpf_map_get_next_key(fd, &k, &next) && (k = next, true));
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static struct pkt_buf pkts[PER_ROUND];
	struct bpf_object *eobj = NULL;
	int err, rc = 1;

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
	err = setup();
	if (err) {
		fprintf(stderr, "bench_xdp: setup maps: %s\n", strerror(-err));
		goto out;
	}
	printf("# aibl_xdp vs empty XDP_TX, BPF_PROG_TEST_RUN repeat=1 x %d packets x %d rounds, "
	       "kernel-reported duration, median of rounds\n",
	       PER_ROUND, ROUNDS);
	printf("# sizes: default (conns %u, services %u, backends %u, ring %u); service: %d "
	       "backends, hash, ipip, no session pins, vip and pin pre-filters on (as aibld); %zu-byte "
	       "frames\n",
	       xe_dp->sizes.max_conns, xe_dp->sizes.max_services, xe_dp->sizes.max_backends,
	       AIBL_RING_SIZE, NBACKENDS, (size_t)(14 + 20 + 20 + 64));

	for (int c = B_ESTABLISHED; c <= B_NON_VIP; c++) {
		__u32 want = c == B_NON_VIP ? XDP_PASS : XDP_TX;
		double prog[ROUNDS], empty[ROUNDS];
		/* aibl_conns keeps one LRU list per CPU (BPF_F_NO_COMMON_LRU), each
		 * with max_conns / CPUs entries; this process may run on one CPU
		 * only, so stay below 80% of one list: no insert may evict */
		__u32 lru_cpu = xe_dp->sizes.max_conns / libbpf_num_possible_cpus();
		int n = PER_ROUND;
		__u32 nconns = 0;

		if (c == B_NEW_FLOW && (__u32)n * ROUNDS > lru_cpu / 5 * 4)
			n = lru_cpu / 5 * 4 / ROUNDS;

		/* bench_xdp [CASE]: one case only (for perf record) */
		if (argc > 1 && strcmp(argv[1], case_names[c]))
			continue;

		if (c == B_ESTABLISHED) {
			/* the first packet opens the flow: later ones hit the table */
			build(c, &pkts[0]);
			if (measure(dp__prog_fd(xe_dp), c, XDP_TX, 1, pkts) < 0)
				goto out;
			for (int i = 1; i < PER_ROUND; i++)
				pkts[i] = pkts[0];
		}
		for (int r = 0; r < ROUNDS; r++) {
			if (c != B_ESTABLISHED)
				for (int i = 0; i < n; i++)
					build(c, &pkts[i]);
			/* the empty program sees the same frames first, then ours */
			empty[r] = measure(empty_fd, c, XDP_TX, n, pkts);
			prog[r] = measure(dp__prog_fd(xe_dp), c, want, n, pkts);
			if (empty[r] < 0 || prog[r] < 0)
				goto out;
		}
		qsort(prog, ROUNDS, sizeof(double), cmp_double);
		qsort(empty, ROUNDS, sizeof(double), cmp_double);
		if (c == B_NEW_FLOW)
			nconns = conns_count();
		if (c == B_NEW_FLOW)
			printf("# new_flow regime: %d x %d distinct SYNs inserted into a %u-entry LRU "
			       "(per-CPU lists of %u); table holds %u entries after: %s\n",
			       ROUNDS, n, xe_dp->sizes.max_conns, lru_cpu, nconns,
			       nconns >= flow_seq ? "not full, no evictions" : "EVICTED");
		printf("# %s: empty program %.1f ns\n", case_names[c], empty[ROUNDS / 2]);
		printf("xdp %s ratio=%.2f ns=%.1f\n", case_names[c],
		       prog[ROUNDS / 2] / empty[ROUNDS / 2], prog[ROUNDS / 2]);
		fflush(stdout);
	}
	rc = 0;
out:
	bpf_object__close(eobj);
	xe_down();
	return rc;
}
