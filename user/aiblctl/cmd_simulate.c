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
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "ctl.h"

#define ERRLEN	1536
#define PKT_MAX 512

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
		"Build the first packet of a flow (TCP SYN, or a UDP datagram) from CLIENT to\n"
		"VIP, run it through the loaded XDP program (<bpffs>/%s) with\n"
		"BPF_PROG_TEST_RUN, and print the verdict, the backend chosen and the counters\n"
		"the packet moved. Nothing is sent on the wire.\n"
		"\n"
		"What it changes in the maps: the program runs against the live maps, so\n"
		"  - the counters (aibl_stats, aibl_svc_stats, aibl_be_stats) count the packet;\n"
		"  - a new flow gets a connection entry (aibl_conns) unless the service is\n"
		"    stateless, and a new TCP flow raises its backend's active-flow count\n"
		"    (aibl_load);\n"
		"  - in rr mode the service's round-robin position (aibl_rr_pos) moves on.\n"
		"Afterwards aiblctl deletes the connection entry it created and takes the\n"
		"aibl_load increment back, so flows stay as they were; counters and the rr\n"
		"position are left as the run set them. The aibl_load correction is a\n"
		"read-modify-write from userspace: a flow the data plane opens on the same\n"
		"backend in that same instant could be miscounted by one. --keep leaves the\n"
		"entry and the count in place (then 'flow lookup' finds the flow).\n",
		AIBL_PIN_PROG);
}

static __u16 csum_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __u32 csum_add(__u32 sum, const void *data, size_t len)
{
	const __u8 *p = data;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (__u32)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (__u32)p[len - 1] << 8;
	return sum;
}

/* Ethernet + IPv4/IPv6 + TCP SYN or UDP, checksums right. Returns its length. */
static size_t build_packet(__u8 *pkt, const struct aibl_flow_key *k, const __u8 dst_mac[6])
{
	static const __u8 src_mac[6] = {0x02, 0x00, 0x00, 0xa1, 0xb1, 0x01};
	static const char payload[] = "aiblctl simulate";
	struct ethhdr *eth = (void *)pkt;
	size_t l3 = sizeof(*eth), l4, plen = k->proto == IPPROTO_UDP ? sizeof(payload) - 1 : 0;
	size_t l4len =
	    (k->proto == IPPROTO_TCP ? sizeof(struct tcphdr) : sizeof(struct udphdr)) + plen;
	__u32 sum = 0;
	__u8 *l4p;

	memset(pkt, 0, PKT_MAX);
	memcpy(eth->h_dest, dst_mac, 6);
	memcpy(eth->h_source, src_mac, 6);
	if (k->family == AIBL_AF_INET) {
		struct iphdr *ip = (void *)(pkt + l3);

		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = k->proto;
		ip->tot_len = htons(sizeof(*ip) + l4len);
		ip->id = htons(0xa1b1);
		ip->saddr = k->src.v4;
		ip->daddr = k->dst.v4;
		ip->check = htons(csum_fold(csum_add(0, ip, sizeof(*ip))));
		l4 = l3 + sizeof(*ip);
		sum = csum_add(sum, &ip->saddr, 8);
	} else {
		struct ipv6hdr *ip6 = (void *)(pkt + l3);

		eth->h_proto = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->hop_limit = 64;
		ip6->nexthdr = k->proto;
		ip6->payload_len = htons(l4len);
		memcpy(&ip6->saddr, k->src.b, 16);
		memcpy(&ip6->daddr, k->dst.b, 16);
		l4 = l3 + sizeof(*ip6);
		sum = csum_add(sum, &ip6->saddr, 32);
	}
	l4p = pkt + l4;
	if (k->proto == IPPROTO_TCP) {
		struct tcphdr *th = (void *)l4p;

		th->source = k->sport;
		th->dest = k->dport;
		th->seq = htonl(1);
		th->doff = sizeof(*th) / 4;
		th->syn = 1;
		th->window = htons(64240);
	} else {
		struct udphdr *uh = (void *)l4p;

		uh->source = k->sport;
		uh->dest = k->dport;
		uh->len = htons(l4len);
		memcpy(l4p + sizeof(*uh), payload, plen);
	}
	sum += k->proto + l4len;
	sum = csum_add(sum, l4p, l4len);
	if (k->proto == IPPROTO_TCP)
		((struct tcphdr *)l4p)->check = htons(csum_fold(sum));
	else
		((struct udphdr *)l4p)->check = htons(csum_fold(sum) ?: 0xffff);
	return l4 + l4len;
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

int ctl_cmd_simulate(int argc, char **argv)
{
	const char *keep_opt = NULL;
	const struct ctl_opt opts[] = {{"--keep", false, &keep_opt}};
	struct aibl_map cm = {.fd = -1}, lm = {.fd = -1}, sm = {.fd = -1};
	__u64 before[AIBL_CNT__MAX], after[AIBL_CNT__MAX];
	/* 2 bytes in, like the kernel's NET_IP_ALIGN: the IP header after the
	 * 14-byte Ethernet header lands 4-byte aligned for struct iphdr */
	__u8 pkt_buf[PKT_MAX + 2] __attribute__((aligned(4))), *pkt = pkt_buf + 2;
	__u8 out_buf[PKT_MAX + 256 + 2] __attribute__((aligned(4))), *out = out_buf + 2;
	__u32 out_len = sizeof(out_buf) - 2, retval = 0;
	__s64 backend = -1;
	const char *chosen_by = "none";
	bool existed, created = false, conn_removed = false, load_restored = false;
	bool used_ifindex = false;
	struct aibl_conn conn = {};
	struct aibl_flow_key k;
	struct sim_out so;
	struct ctl_state s;
	char err[ERRLEN], cli[80], vip[80], sname[48] = "-", bname[48] = "-", baddr[64] = "-";
	char *pos[3];
	int npos, ret, fd = -1, svc;
	size_t len;

	if (ctl_is_help(argc, argv))
		return ctl_help(simulate_help);
	ret = ctl_parse_args(argc, argv, opts, 1, pos, &npos, 3);
	if (ret)
		return ret;
	ret = ctl_parse_flow(npos, pos, "simulate", &k);
	if (ret)
		return ret;
	ret = ctl_load(&s, 0);
	if (ret)
		return ret;
	if (aibl_map__open(&cm, ctl.bpffs, AIBL_MAP_CONNS, false, err, sizeof(err)) ||
	    aibl_map__open(&lm, ctl.bpffs, AIBL_MAP_LOAD, false, err, sizeof(err)) ||
	    aibl_map__open(&sm, ctl.bpffs, AIBL_MAP_STATS, true, err, sizeof(err))) {
		ret = ctl_fail("%s", err);
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
	len = build_packet(pkt, &k, s.g.if_mac);
	if (read_counters(&sm, before)) {
		ret = ctl_fail("map %s: read failed: %s", AIBL_MAP_STATS, strerror(errno));
		goto out;
	}
	ret = run_prog(fd, pkt, len, out, &out_len, s.g.ifindex, &retval, &used_ifindex);
	if (ret) {
		ret = ctl_fail("BPF_PROG_TEST_RUN failed: %s", strerror(-ret));
		goto out;
	}
	read_counters(&sm, after);
	parse_output(out, out_len, &so);

	/* a flow the rate guard left untracked went by the hash choice, whatever
	 * entry its tuple may have: the output names the backend, not the table */
	if (after[AIBL_CNT_CONN_UNTRACKED] == before[AIBL_CNT_CONN_UNTRACKED] &&
	    bpf_map_lookup_elem(cm.fd, &k, &conn) == 0) {
		backend = conn.backend;
		chosen_by = "conn_table";
		created = !existed;
	} else if (so.encap[0]) {
		/* stateless service: find the backend by the outer destination */
		for (__u32 b = 0; b < s.nbe; b++)
			if ((s.be[b].flags & AIBL_BE_F_VALID) && s.be[b].family == so.family &&
			    memcmp(&s.be[b].addr, &so.dst, sizeof(so.dst)) == 0) {
				backend = b;
				chosen_by = "outer_header";
				break;
			}
	} else if (retval == XDP_TX || retval == XDP_REDIRECT) {
		for (__u32 b = 0; b < s.nbe; b++)
			if ((s.be[b].flags & AIBL_BE_F_VALID) &&
			    memcmp(s.be[b].mac, so.dst_mac, 6) == 0) {
				backend = b;
				chosen_by = "dst_mac";
				break;
			}
	}
	if (created && !keep_opt) {
		__u32 b = conn.backend;
		struct aibl_load ld;

		conn_removed = bpf_map_delete_elem(cm.fd, &k) == 0;
		/* the program counts open TCP flows only; a closing one is already out */
		if (conn_removed && k.proto == IPPROTO_TCP && !(conn.flags & AIBL_CONN_F_CLOSING) &&
		    b < lm.max_entries && bpf_map_lookup_elem(lm.fd, &b, &ld) == 0 &&
		    ld.active > 0) {
			ld.active--;
			load_restored = bpf_map_update_elem(lm.fd, &b, &ld, BPF_EXIST) == 0;
		}
	}
	if (backend >= 0) {
		ctl_state__be_name(&s, backend, bname, sizeof(bname));
		if (backend < s.nbe)
			ctl_fmt_addr(baddr, sizeof(baddr), s.be[backend].family,
				     &s.be[backend].addr);
	}
	ctl_fmt_endpoint(cli, sizeof(cli), k.family, &k.src, k.sport);
	ctl_fmt_endpoint(vip, sizeof(vip), k.family, &k.dst, k.dport);
	if (ctl.json) {
		json_t *cnt = json_object();
		char a1[64], a2[64];

		for (int i = 0; i < AIBL_CNT__MAX; i++)
			if (after[i] != before[i])
				json_object_set_new(cnt, cnt_names[i],
						    json_integer(after[i] - before[i]));
		ctl_fmt_addr(a1, sizeof(a1), so.family, &so.src);
		ctl_fmt_addr(a2, sizeof(a2), so.family, &so.dst);
		ret = ctl_json_print(json_pack(
		    "{s:{s:s,s:s,s:s,s:s?,s:s,s:i,s:o,s:s?,s:s?,s:s,s:b,s:b,s:i,s:i,s:{s:s?,s:s?,"
		    "s:s?},s:o,s:b,s:b,s:b,s:o}}",
		    "simulate", "client", cli, "vip", vip, "proto", ctl_proto_str(k.proto),
		    "service", svc >= 0 ? sname : NULL, "verdict", verdict_str(retval), "retval",
		    retval, "backend_id", backend >= 0 ? json_integer(backend) : json_null(),
		    "backend", backend >= 0 ? bname : NULL, "backend_address",
		    backend >= 0 ? baddr : NULL, "chosen_by", chosen_by, "pinned",
		    !!(conn.flags & AIBL_CONN_F_PINNED) && created, "conn_existed", existed,
		    "input_len", (int)len, "output_len", out_len, "output", "encap",
		    so.encap[0] ? so.encap : NULL, "outer_src", so.encap[0] ? a1 : NULL,
		    "outer_dst", so.encap[0] ? a2 : NULL, "counters", cnt, "conn_removed",
		    conn_removed, "load_restored", load_restored, "kept", keep_opt != NULL,
		    "ingress_ifindex", used_ifindex ? json_integer(s.g.ifindex) : json_null()));
		goto out;
	}
	printf("simulate    %s %s -> %s (service %s)\n", ctl_proto_str(k.proto), cli, vip, sname);
	printf("verdict     %s\n", verdict_str(retval));
	if (backend >= 0) {
		const char *age = existed ? " existing flow" : created ? " new flow" : "";
		const char *why = "its destination MAC";

		if (!strcmp(chosen_by, "conn_table"))
			why = conn.flags & AIBL_CONN_F_PINNED ? "a session pin (connection entry)"
							      : "the connection table entry";
		else if (!strcmp(chosen_by, "outer_header"))
			why = "its outer header (service without conntrack)";
		printf("backend     %s (id %lld, %s)%s, chosen by %s\n", bname, (long long)backend,
		       baddr, age, why);
	} else
		printf("backend     none\n");
	if (so.encap[0]) {
		char a1[64], a2[64];

		printf("output      %u B, %s %s -> %s\n", out_len, so.encap,
		       ctl_fmt_addr(a1, sizeof(a1), so.family, &so.src),
		       ctl_fmt_addr(a2, sizeof(a2), so.family, &so.dst));
	} else {
		char m[24];

		printf("output      %u B, to MAC %s\n", out_len,
		       ctl_fmt_mac(m, sizeof(m), so.dst_mac));
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
	else if (existed)
		printf("maps        the flow already had a connection entry; left unchanged\n");
out:
	if (fd >= 0)
		close(fd);
	aibl_map__close(&cm);
	aibl_map__close(&lm);
	aibl_map__close(&sm);
	ctl_state__free(&s);
	return ret;
}
