// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * aiblctl simulate: build the first packet of a flow, run it through the
 * pinned XDP program with BPF_PROG_TEST_RUN and tell what the data plane
 * decided. The program runs for real against the live maps, so the run has
 * effects; those that change where later flows go are undone afterwards
 * (see simulate_help).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "ctl.h"
#include "aibl_hash.h"
#include "pktbuild.h"

#define ERRLEN	1536
#define OUT_MAX 768 /* room for the frame the program returns, encapsulated */

static const char *const cnt_names[AIBL_CNT__MAX] = {
#define AIBL_X_NAME(n, s, d) s,
    AIBL_COUNTERS(AIBL_X_NAME)
#undef AIBL_X_NAME
};

static void simulate_help(FILE *f)
{
	fprintf(f,
		"Usage: aiblctl simulate CLIENT_IP:PORT VIP:PORT [tcp|udp] [--keep]\n"
		"\n"
		"Build the opening of a flow from CLIENT to VIP: for TCP a SYN and then the\n"
		"ACK that completes the client's side of the handshake, for UDP one datagram.\n"
		"Run it through the loaded XDP program (<bpffs>/%s) with\n"
		"BPF_PROG_TEST_RUN, and print the verdict, the backend chosen and the counters\n"
		"the packets moved. The ACK is run only when the SYN was forwarded. Nothing is\n"
		"sent on the wire. When the SYN and its ACK would go to different backends\n"
		"(the entry of an earlier flow on the same tuple, seen within the last\n"
		"second), both are named: such a handshake fails and the client retries.\n"
		"\n"
		"What it changes in the maps: the program runs against the live maps, so\n"
		"  - the counters (aibl_stats, aibl_svc_stats, aibl_be_stats) count the packets;\n"
		"  - a SYN's choice goes into the handshake table (aibl_syns), and the ACK\n"
		"    moves it into a connection entry (aibl_conns) and raises the backend's\n"
		"    active-flow count (aibl_load); a UDP flow gets its entry at once; a\n"
		"    stateless service gets neither;\n"
		"  - in rr mode the service's round-robin position (aibl_rr_pos) moves on;\n"
		"  - an ai service's p2c choice becomes the client's affinity (aibl_affinity).\n"
		"Afterwards aiblctl deletes the connection entry and any handshake record it\n"
		"created, takes the aibl_load increment back and puts the client's affinity\n"
		"back as it was, so flows stay as they were;\n"
		"counters and the rr position are left as the run set them, and so is a p2c\n"
		"SYN's handshake count (aibl_load.syn_new), which lapses within 134 ms. These "
		"undos are\n"
		"read-modify-writes from userspace: a flow the data plane opens on the same\n"
		"backend (or in the same handshake bucket) in that same instant could be\n"
		"miscounted by one (or lose its handshake record). --keep leaves the entry\n"
		"and the count in place (then 'flow lookup' finds the flow).\n",
		AIBL_PIN_PROG);
}

/*
 * Ethernet + IPv4/IPv6 + TCP SYN (ack: the handshake's ACK) or UDP with a
 * short payload, checksums right. Returns its length.
 */
static size_t build_packet(struct pkt_buf *b, const struct aibl_flow_key *k, const __u8 dst_mac[6],
			   bool ack)
{
	static const __u8 src_mac[6] = {0x02, 0x00, 0x00, 0xa1, 0xb1, 0x01};
	static const char payload[] = "aiblctl simulate";
	/* no DF; an IP id that marks the frame as aiblctl's */
	const struct pkt_ip4_opts ip4 = {.id = 0xa1b1, .ttl = 64, .no_df = true};

	pkt__init(b);
	pkt__eth(b, dst_mac, src_mac);
	if (k->family == AIBL_AF_INET)
		pkt__ipv4_bin(b, &k->src.v4, &k->dst.v4, &ip4);
	else
		pkt__ipv6_bin(b, k->src.b, k->dst.b, 0, 0);
	if (k->proto == IPPROTO_TCP) {
		pkt__tcp_seq(b, ntohs(k->sport), ntohs(k->dport), ack ? PKT_TCP_ACK : PKT_TCP_SYN,
			     ack ? 2 : 1, ack ? 0x5eed0002 : 0, 64240);
	} else {
		pkt__udp(b, ntohs(k->sport), ntohs(k->dport));
		pkt__payload(b, payload, sizeof(payload) - 1);
	}
	pkt__finish(b);
	return b->len;
}

static const char *verdict_str(__u32 v)
{
	static const char *const names[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX",
					    "XDP_REDIRECT"};

	return v < 5 ? names[v] : "unknown";
}

/* summed global counters */
static int read_counters(const struct aibl_map *m, __u64 *out)
{
	void *raw = calloc(m->max_entries ? m->max_entries : 1, m->value_stride);
	int err;

	if (!raw)
		return -ENOMEM;
	memset(out, 0, sizeof(__u64) * AIBL_CNT__MAX);
	err = aibl_map__read_array(m, 0, m->max_entries, raw);
	for (__u32 i = 0; !err && i < m->max_entries && i < AIBL_CNT__MAX; i++)
		aibl_map__sum_u64(m, (char *)raw + (size_t)i * m->value_stride, &out[i]);
	free(raw);
	return err;
}

/* what the output frame says about its destination */
struct sim_out {
	char encap[16]; /* "ipip", "ip6ip6", "ip4ip6", "" */
	__u8 family;
	union aibl_addr src, dst;
	__u8 dst_mac[6];
};

static void parse_output(const __u8 *p, size_t len, struct sim_out *o)
{
	const struct ethhdr *eth = (const void *)p;

	memset(o, 0, sizeof(*o));
	if (len < sizeof(*eth))
		return;
	memcpy(o->dst_mac, eth->h_dest, 6);
	if (eth->h_proto == htons(ETH_P_IP) && len >= sizeof(*eth) + sizeof(struct iphdr)) {
		const struct iphdr *ip = (const void *)(p + sizeof(*eth));

		o->family = AIBL_AF_INET;
		o->src.v4 = ip->saddr;
		o->dst.v4 = ip->daddr;
		if (ip->protocol == IPPROTO_IPIP)
			strcpy(o->encap, "ipip");
		else if (ip->protocol == IPPROTO_IPV6)
			strcpy(o->encap, "ip6ip4");
	} else if (eth->h_proto == htons(ETH_P_IPV6) &&
		   len >= sizeof(*eth) + sizeof(struct ipv6hdr)) {
		const struct ipv6hdr *ip6 = (const void *)(p + sizeof(*eth));

		o->family = AIBL_AF_INET6;
		memcpy(o->src.b, &ip6->saddr, 16);
		memcpy(o->dst.b, &ip6->daddr, 16);
		if (ip6->nexthdr == IPPROTO_IPV6)
			strcpy(o->encap, "ip6ip6");
		else if (ip6->nexthdr == IPPROTO_IPIP)
			strcpy(o->encap, "ip4ip6");
	}
}

static int open_prog(char *err, size_t errlen)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", ctl.bpffs, AIBL_PIN_PROG);
	fd = bpf_obj_get(path);
	if (fd < 0) {
		snprintf(err, errlen, "program %s: cannot open %.1024s: %s%s", AIBL_PIN_PROG, path,
			 strerror(errno),
			 errno == ENOENT ? " (the controller pins it when it loads the data plane)"
					 : "");
		return -1;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != BPF_PROG_TYPE_XDP) {
		snprintf(err, errlen, "%.1024s is not an XDP program", path);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Run the packet; with the interface's index as ingress when it exists in
 * this network namespace (the program may use it for its FIB lookup).
 */
static int run_prog(int fd, const __u8 *pkt, size_t len, __u8 *out, __u32 *out_len, __u32 ifindex,
		    __u32 *retval, bool *used_ifindex)
{
	struct xdp_md ctx = {.data_end = len, .ingress_ifindex = ifindex};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len, .data_out = out,
		    .data_size_out = *out_len, .repeat = 1);
	int err;

	*used_ifindex = false;
	if (ifindex) {
		opts.ctx_in = &ctx;
		opts.ctx_size_in = sizeof(ctx);
		err = bpf_prog_test_run_opts(fd, &opts);
		if (!err) {
			*used_ifindex = true;
			goto done;
		}
		/* ENODEV: the interface is in another namespace; fall back to lo */
		if (errno != ENODEV && errno != EINVAL)
			return -errno;
		opts.ctx_in = NULL;
		opts.ctx_size_in = 0;
		opts.data_size_out = *out_len;
	}
	err = bpf_prog_test_run_opts(fd, &opts);
	if (err)
		return -errno;
done:
	*retval = opts.retval;
	*out_len = opts.data_size_out;
	return 0;
}

/* the backend a forwarded frame goes to: by its outer destination (ipip),
 * else by its destination MAC */
static __s64 backend_by_output(const struct ctl_state *s, __u32 retval, const struct sim_out *so,
			       const char **how)
{
	if (so->encap[0]) {
		for (__u32 b = 0; b < s->nbe; b++)
			if ((s->be[b].flags & AIBL_BE_F_VALID) && s->be[b].family == so->family &&
			    memcmp(&s->be[b].addr, &so->dst, sizeof(so->dst)) == 0) {
				*how = "outer_header";
				return b;
			}
	} else if (retval == XDP_TX || retval == XDP_REDIRECT) {
		for (__u32 b = 0; b < s->nbe; b++)
			if ((s->be[b].flags & AIBL_BE_F_VALID) &&
			    memcmp(s->be[b].mac, so->dst_mac, 6) == 0) {
				*how = "dst_mac";
				return b;
			}
	}
	return -1;
}

/* the way of bucket idx holding tag (bucket read into b), else -1 */
static int syn_way(int fd, __u32 idx, __u32 tag, struct aibl_syn_bucket *b)
{
	if (bpf_map_lookup_elem(fd, &idx, b))
		return -1;
	for (int w = 0; w < AIBL_SYN_WAYS; w++)
		if ((__u32)b->tag[w] == tag)
			return w;
	return -1;
}

/* one open flow's count moved back from backend `from` to `to` in
 * aibl_load, mapped (ld, n entries; -1: none counted there, or none to
 * count back), by atomic adds as the data plane's own: a flow it counts
 * meanwhile is kept; true when each count was there to move */
static bool load_move(struct aibl_load *ld, __u32 n, __s64 from, __s64 to)
{
	bool ok = true;

	if (from == to)
		return true;
	if (from >= 0) {
		__s64 v = (__u64)from < n ? __atomic_load_n(&ld[from].active, __ATOMIC_RELAXED) : 0;

		do {
			ok = v > 0;
		} while (ok && !__atomic_compare_exchange_n(&ld[from].active, &v, v - 1, false,
							    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	}
	if (to >= 0) {
		if ((__u64)to < n)
			__atomic_fetch_add(&ld[to].active, 1, __ATOMIC_RELAXED);
		else
			ok = false;
	}
	return ok;
}

/* the packets of one run and what came out of the last one */
struct sim_run {
	struct pkt_buf pkt;
	__u8 out_buf[OUT_MAX + 2] __attribute__((aligned(4)));
	size_t len;
	__u32 out_len, retval;
	bool used_ifindex;
	struct sim_out so;
};

/*
 * One packet of the flow through the program. The output buffer starts 2
 * bytes in, like the kernel's NET_IP_ALIGN: the IP header after the 14-byte
 * Ethernet header lands 4-byte aligned for struct iphdr in parse_output.
 */
static int sim_packet(int fd, const struct ctl_state *s, const struct aibl_flow_key *k, bool ack,
		      struct sim_run *r)
{
	__u8 *out = r->out_buf + 2;
	int err;

	r->len = build_packet(&r->pkt, k, s->g.if_mac, ack);
	r->out_len = sizeof(r->out_buf) - 2;
	err = run_prog(fd, r->pkt.buf, r->len, out, &r->out_len, s->g.ifindex, &r->retval,
		       &r->used_ifindex);
	if (!err)
		parse_output(out, r->out_len, &r->so);
	return err;
}

int ctl_cmd_simulate(int argc, char **argv)
{
	const char *keep_opt = NULL;
	const struct ctl_opt opts[] = {{"--keep", false, &keep_opt}};
	struct aibl_map cm = {.fd = -1}, lm = {.fd = -1}, sm = {.fd = -1}, ym = {.fd = -1};
	struct aibl_map am = {.fd = -1};
	struct aibl_affinity_bucket aff_before, aff_after;
	bool aff_had = false, aff_restored = false;
	__u64 before[AIBL_CNT__MAX], mid[AIBL_CNT__MAX], after[AIBL_CNT__MAX];
	static struct sim_run syn_run, ack_run;
	struct sim_run *last = &syn_run;
	__s64 backend = -1, syn_backend = -1;
	const char *chosen_by = "none", *syn_how = "none";
	bool existed, created = false, conn_removed = false, load_restored = false;
	bool have_now = false, conn_restored = false;
	struct aibl_conn conn_before = {};
	__u64 syn_prefill = 0;	       /* syn_backend's prefill wait after the SYN */
	struct aibl_load *load = NULL; /* aibl_load, mapped */
	__u32 nload = 0;
	bool acked = false, syn_pinned = false, syn_removed = false, tcp;
	struct aibl_syn_bucket sb;
	struct aibl_conn conn = {};
	struct aibl_flow_key k;
	struct ctl_state s;
	char err[ERRLEN], cli[80], vip[80], sname[48] = "-", bname[48] = "-", baddr[64] = "-";
	char sbname[48] = "-";
	char *pos[3];
	int npos, ret, fd = -1, svc, way;
	__u32 syn_idx, aff_idx;
	__u32 syn_tag;

	if (ctl_is_help(argc, argv))
		return ctl_help(simulate_help);
	ret = ctl_parse_args(argc, argv, opts, 1, pos, &npos, 3);
	if (ret)
		return ret;
	ret = ctl_parse_flow(npos, pos, "simulate", &k);
	if (ret)
		return ret;
	tcp = k.proto == IPPROTO_TCP;
	/* aibl_load as it was (s.load): a new session sent to a node whose
	 * prefills take turns adds its prompt there (prefill_until_ns), undone
	 * on the node the SYN went to */
	ret = ctl_load(&s, CTL_LOAD_LOAD);
	if (ret)
		return ret;
	if (aibl_map__open(&cm, ctl.bpffs, AIBL_MAP_CONNS, false, err, sizeof(err)) ||
	    aibl_map__open(&lm, ctl.bpffs, AIBL_MAP_LOAD, false, err, sizeof(err)) ||
	    aibl_map__open(&sm, ctl.bpffs, AIBL_MAP_STATS, true, err, sizeof(err)) ||
	    aibl_map__open(&ym, ctl.bpffs, AIBL_MAP_SYNS, false, err, sizeof(err)) ||
	    aibl_map__open(&am, ctl.bpffs, AIBL_MAP_AFFINITY, false, err, sizeof(err))) {
		ret = ctl_fail("%s", err);
		goto out;
	}
	load = aibl_load__mmap(lm.fd, &nload);
	if (!load) {
		ret = ctl_fail("map %s: cannot map it: %s (pinned by an older aibld: restart it)",
			       AIBL_MAP_LOAD, strerror(errno));
		goto out;
	}
	fd = open_prog(err, sizeof(err));
	if (fd < 0) {
		ret = ctl_fail("%s", err);
		goto out;
	}
	svc = ctl_state__flow_svc(&s, &k);
	if (svc >= 0)
		ctl_state__svc_name(&s, svc, sname, sizeof(sname));
	existed = bpf_map_lookup_elem(cm.fd, &k, &conn) == 0;
	conn_before = conn;
	/* the bucket of the client's affinity for the service (aibl_affinity),
	 * as it was: the SYN may write the client's way, or take another
	 * client's */
	aff_idx = aibl_affinity_index(svc >= 0 ? (__u32)svc : 0, &k.src, k.family);
	aff_had = svc >= 0 && bpf_map_lookup_elem(am.fd, &aff_idx, &aff_before) == 0;
	syn_idx = aibl_syn_index(aibl_hash_flow(&k, s.g.hash_seed), &syn_tag);
	ret = read_counters(&sm, before);
	if (ret) {
		ret = ctl_fail("map %s: read failed: %s", AIBL_MAP_STATS, strerror(-ret));
		goto out;
	}
	/* each backend's prefill wait just before the SYN (s.load is older:
	 * real sessions may have moved it since) */
	for (__u32 b = 0; b < s.nbe && b < nload; b++)
		s.load[b].prefill_until_ns =
		    __atomic_load_n(&load[b].prefill_until_ns, __ATOMIC_RELAXED);
	ret = sim_packet(fd, &s, &k, false, &syn_run);
	if (ret) {
		ret = ctl_fail("BPF_PROG_TEST_RUN failed: %s", strerror(-ret));
		goto out;
	}
	if (tcp) {
		/* where the SYN went: its handshake record, else its frame */
		way = syn_way(ym.fd, syn_idx, syn_tag, &sb);
		if (way >= 0) {
			syn_backend = sb.backend[way] & AIBL_SYN_ID_MASK;
			syn_pinned = sb.backend[way] & AIBL_SYN_F_PINNED;
			syn_how = "handshake_table";
		} else {
			syn_backend = backend_by_output(&s, syn_run.retval, &syn_run.so, &syn_how);
		}
	}
	if (syn_backend >= 0 && syn_backend < s.nbe && syn_backend < nload)
		syn_prefill =
		    __atomic_load_n(&load[syn_backend].prefill_until_ns, __ATOMIC_RELAXED);
	read_counters(&sm, mid);
	if (tcp && (syn_run.retval == XDP_TX || syn_run.retval == XDP_REDIRECT)) {
		ret = sim_packet(fd, &s, &k, true, &ack_run);
		if (ret) {
			ret = ctl_fail("BPF_PROG_TEST_RUN (ACK) failed: %s", strerror(-ret));
			goto undo;
		}
		acked = true;
		last = &ack_run;
	}
	read_counters(&sm, after);

	/* a flow the rate guard left untracked went by the hash choice, whatever
	 * entry its tuple may have: the output names the backend, not the table */
	have_now = bpf_map_lookup_elem(cm.fd, &k, &conn) == 0;
	/* the guard's counter is every CPU's: another flow it turned away
	 * meanwhile must not leave this one's entry behind */
	created = !existed && have_now;
	if (after[AIBL_CNT_CONN_UNTRACKED] == (acked ? mid : before)[AIBL_CNT_CONN_UNTRACKED] &&
	    have_now) {
		backend = conn.backend;
		chosen_by = "conn_table";
	} else {
		backend = backend_by_output(&s, last->retval, &last->so, &chosen_by);
	}
undo:
	if (!keep_opt && (way = syn_way(ym.fd, syn_idx, syn_tag, &sb)) >= 0) {
		/* a handshake record the ACK did not take (or no ACK ran) */
		sb.tag[way] = 0;
		syn_removed = bpf_map_update_elem(ym.fd, &syn_idx, &sb, BPF_EXIST) == 0;
	}
	if (!keep_opt && syn_backend >= 0 && syn_backend < s.nbe && syn_backend < nload &&
	    syn_prefill != s.load[syn_backend].prefill_until_ns) {
		__u64 was = syn_prefill;

		/* only the SYN's own move: a real session's since stays */
		__atomic_compare_exchange_n(&load[syn_backend].prefill_until_ns, &was,
					    s.load[syn_backend].prefill_until_ns, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	if (!keep_opt && svc >= 0) {
		if (aff_had && bpf_map_lookup_elem(am.fd, &aff_idx, &aff_after) == 0 &&
		    memcmp(&aff_after, &aff_before, sizeof(aff_after)))
			aff_restored =
			    bpf_map_update_elem(am.fd, &aff_idx, &aff_before, BPF_EXIST) == 0;
	}
	if (existed && have_now && !keep_opt && memcmp(&conn, &conn_before, sizeof(conn))) {
		/* a closing or idle entry the ACK took for a reused tuple
		 * (the data plane reopens it, maybe on another backend): put
		 * back, and its open count with it */
		conn_restored = bpf_map_update_elem(cm.fd, &k, &conn_before, BPF_EXIST) == 0;
		if (conn_restored && tcp) {
			load_move(load, nload,
				  conn.flags & AIBL_CONN_F_CLOSING ? -1 : (__s64)conn.backend,
				  conn_before.flags & AIBL_CONN_F_CLOSING
				      ? -1
				      : (__s64)conn_before.backend);
		}
	}
	if (created && !keep_opt) {
		conn_removed = bpf_map_delete_elem(cm.fd, &k) == 0;
		/* the program counts open TCP flows only; a closing one is already out */
		if (conn_removed && tcp && !(conn.flags & AIBL_CONN_F_CLOSING))
			load_restored = load_move(load, nload, conn.backend, -1);
	}
	if (ret)
		goto out;
	if (backend >= 0) {
		ctl_state__be_name(&s, backend, bname, sizeof(bname));
		if (backend < s.nbe)
			ctl_fmt_addr(baddr, sizeof(baddr), s.be[backend].family,
				     &s.be[backend].addr);
	}
	if (syn_backend >= 0)
		ctl_state__be_name(&s, syn_backend, sbname, sizeof(sbname));
	ctl_fmt_endpoint(cli, sizeof(cli), k.family, &k.src, k.sport);
	ctl_fmt_endpoint(vip, sizeof(vip), k.family, &k.dst, k.dport);
	if (ctl.json) {
		json_t *cnt = json_object();
		char a1[64], a2[64];

		for (int i = 0; i < AIBL_CNT__MAX; i++)
			if (after[i] != before[i])
				json_object_set_new(cnt, cnt_names[i],
						    json_integer(after[i] - before[i]));
		ctl_fmt_addr(a1, sizeof(a1), last->so.family, &last->so.src);
		ctl_fmt_addr(a2, sizeof(a2), last->so.family, &last->so.dst);
		ret = ctl_json_print(json_pack(
		    "{s:{s:s,s:s,s:s,s:s?,s:s,s:i,s:s?,s:o,s:s?,s:s?,s:s,s:o,s:s?,s:s,s:b,s:b,s:b,"
		    "s:i,s:i,s:{s:s?,s:s?,s:s?},s:o,s:b,s:b,s:b,s:b,s:b,s:b,s:o}}",
		    "simulate", "client", cli, "vip", vip, "proto", ctl_proto_str(k.proto),
		    "service", svc >= 0 ? sname : NULL, "verdict", verdict_str(syn_run.retval),
		    "retval", syn_run.retval, "ack_verdict",
		    acked ? verdict_str(ack_run.retval) : NULL, "backend_id",
		    backend >= 0 ? json_integer(backend) : json_null(), "backend",
		    backend >= 0 ? bname : NULL, "backend_address", backend >= 0 ? baddr : NULL,
		    "chosen_by", chosen_by, "syn_backend_id",
		    syn_backend >= 0 ? json_integer(syn_backend) : json_null(), "syn_backend",
		    syn_backend >= 0 ? sbname : NULL, "syn_chosen_by", syn_how, "split",
		    acked && syn_backend >= 0 && backend >= 0 && syn_backend != backend, "pinned",
		    (!!(conn.flags & AIBL_CONN_F_PINNED) && created) || syn_pinned, "conn_existed",
		    existed, "input_len", (int)syn_run.len, "output_len", last->out_len, "output",
		    "encap", last->so.encap[0] ? last->so.encap : NULL, "outer_src",
		    last->so.encap[0] ? a1 : NULL, "outer_dst", last->so.encap[0] ? a2 : NULL,
		    "counters", cnt, "conn_removed", conn_removed, "conn_restored", conn_restored,
		    "load_restored", load_restored, "handshake_removed", syn_removed,
		    "affinity_restored", aff_restored, "kept", keep_opt != NULL, "ingress_ifindex",
		    syn_run.used_ifindex ? json_integer(s.g.ifindex) : json_null()));
		goto out;
	}
	printf("simulate    %s %s -> %s (service %s)%s\n", ctl_proto_str(k.proto), cli, vip, sname,
	       acked ? ", SYN then its ACK" : "");
	printf("verdict     %s", verdict_str(syn_run.retval));
	if (acked && ack_run.retval != syn_run.retval)
		printf(" (ACK: %s)", verdict_str(ack_run.retval));
	printf("\n");
	if (backend >= 0) {
		const char *age = existed ? " existing flow" : created ? " new flow" : "";
		const char *why = "its destination MAC";

		if (!strcmp(chosen_by, "conn_table"))
			why = conn.flags & AIBL_CONN_F_PINNED ? "a session pin (connection entry)"
							      : "the connection table entry";
		else if (!strcmp(chosen_by, "outer_header"))
			why = "its outer header (no connection entry)";
		printf("backend     %s (id %lld, %s)%s, chosen by %s\n", bname, (long long)backend,
		       baddr, age, why);
	} else
		printf("backend     none\n");
	if (acked && syn_backend >= 0 && backend >= 0 && syn_backend != backend)
		printf(
		    "warning     the SYN went to %s, its ACK to %s: this handshake fails and the "
		    "client retries\n",
		    sbname, bname);
	if (last->so.encap[0]) {
		char a1[64], a2[64];

		printf("output      %u B, %s %s -> %s\n", last->out_len, last->so.encap,
		       ctl_fmt_addr(a1, sizeof(a1), last->so.family, &last->so.src),
		       ctl_fmt_addr(a2, sizeof(a2), last->so.family, &last->so.dst));
	} else {
		char m[24];

		printf("output      %u B, to MAC %s\n", last->out_len,
		       ctl_fmt_mac(m, sizeof(m), last->so.dst_mac));
	}
	printf("counters   ");
	for (int i = 0, first = 1; i < AIBL_CNT__MAX; i++) {
		if (after[i] == before[i])
			continue;
		printf("%s %s +%llu", first ? "" : ",", cnt_names[i],
		       (unsigned long long)(after[i] - before[i]));
		first = 0;
	}
	printf("\n");
	if (created && keep_opt)
		printf("maps        connection entry kept (--keep)\n");
	else if (created)
		printf("maps        connection entry %s, aibl_load %s\n",
		       conn_removed ? "removed" : "NOT removed",
		       load_restored ? "restored" : "left as the program set it");
	else if (conn_restored)
		printf("maps        the flow's connection entry put back as it was\n");
	else if (existed)
		printf("maps        the flow already had a connection entry; left unchanged\n");
	if (syn_removed)
		printf("maps        handshake record removed\n");
	if (aff_restored)
		printf("maps        the client's affinity put back as it was\n");
out:
	if (fd >= 0)
		close(fd);
	aibl_map__close(&cm);
	aibl_load__munmap(load, nload);
	aibl_map__close(&lm);
	aibl_map__close(&sm);
	aibl_map__close(&ym);
	aibl_map__close(&am);
	ctl_state__free(&s);
	return ret;
}
