// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The node-side decap program (TC ingress) through BPF_PROG_TEST_RUN:
 * loaded and attached with decap__attach() on a veth in a private netns,
 * then fed tunnel frames; verdict and output bytes asserted, plus the
 * per-client record and counters.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "test.h"
#include "pkt.h"
#include "aibl.h"
#include "../../user/aibl-agent/decap.h"
#include "bpfutil.h"
#include "log.h"
#include "aibl_decap.skel.h"

static const uint8_t MAC_NODE[6] = {2, 0, 0, 0, 3, 1};
static const uint8_t MAC_LB[6] = {2, 0, 0, 0, 0, 1};

static struct decap *dc;

static bool env_up(void)
{
	if (!test__can_bpf()) {
		SKIP("needs root");
		return false;
	}
	log_setup_libbpf(getenv("AIBL_TEST_VERBOSE") != NULL);
	if (!ASSERT_OK(system("ip link add dpd0 type veth peer name dpd1"), "veth"))
		return false;
	return ASSERT_OK(decap__attach(if_nametoindex("dpd0"), NULL, &dc), "attach");
}

static void env_down(void)
{
	decap__detach(dc);
	dc = NULL;
	system("ip link del dpd0 2>/dev/null");
}

/* a counter, as the agent's GET /v1/decap reads them (decap__counters) */
static __u64 ncount(__u32 idx)
{
	__u64 v[AIBL_NCNT__MAX];

	return decap__counters(dc, v) ? 0 : v[idx];
}

struct run {
	int err;
	__u32 verdict, len;
	uint8_t data[PKT_MAX];
};

static void run(const struct pkt_buf *in, struct run *r)
{
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = in->buf, .data_size_in = in->len,
		    .data_out = r->data, .data_size_out = sizeof(r->data), .repeat = 1);

	r->err =
	    bpf_prog_test_run_opts(bpf_program__fd(dc->skel->progs.aibl_decap), &t) ? -errno : 0;
	r->verdict = t.retval;
	r->len = t.data_size_out;
}

/* inner: client -> vip:80 TCP with a payload */
static void inner4(struct pkt_buf *b)
{
	pkt__ipv4(b, "192.0.2.10", "10.100.0.1", NULL);
	pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
	pkt__fill(b, 20);
}

static void inner6(struct pkt_buf *b)
{
	pkt__ipv6(b, "2001:db8::10", "fd00:100::1", 0, 0);
	pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
	pkt__fill(b, 20);
}

struct dfix {
	const char *desc;
	int outer; /* 0 none, 4, 6 */
	int inner; /* 4, 6 */
	__u32 verdict;
	int counter;
};

static const struct dfix fixtures[] = {
    {"ipv4 in ipv4", 4, 4, TC_ACT_OK, AIBL_NCNT_DECAP4},
    {"ipv6 in ipv6", 6, 6, TC_ACT_OK, AIBL_NCNT_DECAP6},
    {"ipv4 in ipv6", 6, 4, TC_ACT_OK, AIBL_NCNT_DECAP46},
    {"plain ipv4: untouched", 0, 4, TC_ACT_OK, AIBL_NCNT_PASS},
    {"plain ipv6: untouched", 0, 6, TC_ACT_OK, AIBL_NCNT_PASS},
};

static void build(struct pkt_buf *b, int outer, int inner, bool with_outer)
{
	pkt__init(b);
	pkt__eth(b, MAC_NODE, MAC_LB);
	if (with_outer && outer == 4) {
		pkt__ipv4(b, "10.0.0.100", "10.1.0.1", NULL);
	} else if (with_outer && outer == 6) {
		pkt__ipv6(b, "fd00::100", "fd00:1::3", 0, 0x777);
	}
	if (inner == 4)
		inner4(b);
	else
		inner6(b);
	pkt__finish(b);
}

static void test_decap(void)
{
	struct pkt_buf in, exp;
	struct run r;

	if (!env_up())
		goto out;
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		const struct dfix *f = &fixtures[i];
		__u64 before = ncount(f->counter);

		build(&in, f->outer, f->inner, true);
		build(&exp, f->outer, f->inner, false);
		run(&in, &r);
		if (!ASSERT_OK(r.err, f->desc))
			continue;
		ASSERT_EQ(r.verdict, f->verdict, f->desc);
		if (!ASSERT_TRUE(r.len == exp.len && !memcmp(r.data, exp.buf, exp.len), f->desc)) {
			const void *fr[3] = {in.buf, exp.buf, r.data};
			size_t ln[3] = {in.len, exp.len, r.len};

			pkt__diff(f->desc, exp.buf, exp.len, r.data, r.len);
			pkt__pcap_write("/tmp/aibl-test-decap.pcap", fr, ln, 3);
		}
		ASSERT_EQ(ncount(f->counter), before + 1, f->desc);
	}
out:
	env_down();
}

/* the outer IPv4 header's checksum again, after a test changed it */
static void outer4_csum(struct pkt_buf *b)
{
	uint32_t sum = 0;

	b->buf[14 + 10] = b->buf[14 + 11] = 0;
	for (int i = 0; i < 20; i += 2)
		sum += b->buf[14 + i] << 8 | b->buf[14 + i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	b->buf[14 + 10] = ~sum >> 8;
	b->buf[14 + 11] = ~sum & 0xff;
}

/* 4in4 from src to node dst, inner client -> vip:80 */
static void tunnel4(struct pkt_buf *b, const char *src, const char *dst, const char *vip)
{
	pkt__init(b);
	pkt__eth(b, MAC_NODE, MAC_LB);
	pkt__ipv4(b, src, dst, NULL);
	pkt__ipv4(b, "192.0.2.10", vip, NULL);
	pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
	pkt__fill(b, 20);
	pkt__finish(b);
}

static void accept_case(const char *desc, const struct pkt_buf *in, __u32 verdict, int counter)
{
	__u64 before = ncount(counter);
	struct run r;

	run(in, &r);
	if (!ASSERT_OK(r.err, desc))
		return;
	ASSERT_EQ(r.verdict, verdict, desc);
	if (!ASSERT_EQ(ncount(counter), before + 1, desc))
		for (int i = 0; i < AIBL_NCNT__MAX; i++)
			printf("  counter %d: %llu\n", i, (unsigned long long)ncount(i));
	if (counter == AIBL_NCNT_NOT_LOCAL)
		ASSERT_TRUE(r.len == in->len && !memcmp(r.data, in->buf, in->len), "untouched");
}

/*
 * Only tunnels addressed to the node, from a balancer's source prefix,
 * whose inner destination is a VIP held here are opened; each refusal has
 * its counter, and no refused packet leaves a client record (hint).
 */
static void test_accept(void)
{
	struct decap_prefix local[2], vip[2], src[2], bad;
	struct aibl_node_client_key k, next;
	struct pkt_buf in;

	if (!env_up())
		goto out;
	if (!ASSERT_OK(decap__parse_prefix("10.1.0.1", &local[0]), "parse") ||
	    !ASSERT_OK(decap__parse_prefix("fd00:1::3", &local[1]), "parse") ||
	    !ASSERT_OK(decap__parse_prefix("10.100.0.1", &vip[0]), "parse") ||
	    !ASSERT_OK(decap__parse_prefix("fd00:100::1", &vip[1]), "parse") ||
	    !ASSERT_OK(decap__parse_prefix("10.0.0.100/32", &src[0]), "parse") ||
	    !ASSERT_OK(decap__parse_prefix("fd00::/96", &src[1]), "parse"))
		goto out;
	ASSERT_EQ(decap__parse_prefix("10.0.0.1/33", &bad), -EINVAL, "bad length refused");
	ASSERT_OK(decap__set_addrs(dc, AIBL_NODE_ADDR_LOCAL, local, 2), "local");
	ASSERT_OK(decap__set_addrs(dc, AIBL_NODE_ADDR_VIP, vip, 2), "vips");
	ASSERT_OK(decap__set_sources(dc, src, 2), "sources");

	tunnel4(&in, "10.0.0.100", "10.1.0.1", "10.100.0.1");
	accept_case("from a balancer to a vip here: opened", &in, TC_ACT_OK, AIBL_NCNT_DECAP4);
	build(&in, 6, 6, true);
	accept_case("6in6 from the balancer's /96: opened", &in, TC_ACT_OK, AIBL_NCNT_DECAP6);
	/* only refusals from here on: clear the records, none may come back */
	while (!bpf_map_get_next_key(decap__clients_fd(dc), NULL, &next))
		bpf_map_delete_elem(decap__clients_fd(dc), &next);

	tunnel4(&in, "10.0.0.100", "10.1.0.99", "10.100.0.1");
	accept_case("addressed to another host: passed, not opened", &in, TC_ACT_OK,
		    AIBL_NCNT_NOT_LOCAL);
	tunnel4(&in, "203.0.113.7", "10.1.0.1", "10.100.0.1");
	accept_case("from a foreign source: dropped", &in, TC_ACT_SHOT, AIBL_NCNT_DROP_SOURCE);
	tunnel4(&in, "10.0.0.100", "10.1.0.1", "10.100.0.9");
	accept_case("inner destination not a vip here: dropped", &in, TC_ACT_SHOT,
		    AIBL_NCNT_DROP_NOT_VIP);
	tunnel4(&in, "10.0.0.100", "10.1.0.1", "10.100.0.1");
	in.buf[14 + 10] ^= 0x5a;
	accept_case("bad outer checksum: dropped", &in, TC_ACT_SHOT, AIBL_NCNT_DROP_BAD_OUTER);
	tunnel4(&in, "10.0.0.100", "10.1.0.1", "10.100.0.1");
	in.buf[14 + 2] = 0x05; /* 1280+: beyond the frame */
	outer4_csum(&in);
	accept_case("outer length beyond the frame: dropped", &in, TC_ACT_SHOT,
		    AIBL_NCNT_DROP_BAD_OUTER);
	tunnel4(&in, "10.0.0.100", "10.1.0.1", "10.100.0.1");
	in.buf[14 + 20] = 0x65; /* inner version 6 in a 4in4 tunnel */
	accept_case("wrong inner version: dropped as such", &in, TC_ACT_SHOT,
		    AIBL_NCNT_DROP_BAD_INNER);
	ASSERT_ERR(bpf_map_get_next_key(decap__clients_fd(dc), NULL, &k),
		   "no client record from a refused packet");

	/* sets emptied: each check off again */
	ASSERT_OK(decap__set_sources(dc, NULL, 0), "no sources");
	tunnel4(&in, "203.0.113.7", "10.1.0.1", "10.100.0.1");
	accept_case("no sources configured: any", &in, TC_ACT_OK, AIBL_NCNT_DECAP4);
out:
	env_down();
}

static void test_bad(void)
{
	struct pkt_buf in;
	struct run r;

	if (!env_up())
		goto out;
	build(&in, 4, 4, true);
	in.len = 14 + 20 + 10; /* inner header cut */
	in.buf[14 + 3] = 30;
	outer4_csum(&in);
	run(&in, &r);
	ASSERT_OK(r.err, "run");
	ASSERT_EQ(r.verdict, TC_ACT_SHOT, "cut inner header dropped");
	ASSERT_EQ(ncount(AIBL_NCNT_DROP_TRUNC), 1, "drop_truncated");

	/* a fragmented outer header is the stack's to reassemble */
	build(&in, 4, 4, true);
	in.buf[14 + 6] = 0x20;
	in.buf[14 + 7] = 0;
	run(&in, &r);
	ASSERT_EQ(r.verdict, TC_ACT_OK, "outer fragment passed");
	ASSERT_TRUE(r.len == in.len && !memcmp(r.data, in.buf, in.len), "untouched");
out:
	env_down();
}

static void test_clients(void)
{
	struct aibl_node_client_key k = {}, next;
	struct aibl_node_client c;
	struct pkt_buf in;
	struct run r;
	int n = 0;

	if (!env_up())
		goto out;
	build(&in, 4, 4, true);
	run(&in, &r);
	run(&in, &r);
	build(&in, 6, 6, true);
	run(&in, &r);

	k.family = AIBL_AF_INET;
	inet_pton(AF_INET, "192.0.2.10", &k.client);
	inet_pton(AF_INET, "10.100.0.1", &k.vip);
	k.vport = htons(80);
	k.proto = IPPROTO_TCP;
	if (!ASSERT_OK(bpf_map_lookup_elem(decap__clients_fd(dc), &k, &c), "v4 client recorded"))
		goto out;
	ASSERT_EQ(c.packets, 2, "packets");
	ASSERT_EQ(c.bytes, 2 * (14 + 20 + 20 + 20), "bytes after decap");
	ASSERT_TRUE(c.first_seen_ns && c.last_seen_ns >= c.first_seen_ns, "times");
	memset(&k, 0, sizeof(k));
	while (bpf_map_get_next_key(decap__clients_fd(dc), n ? &k : NULL, &next) == 0) {
		k = next;
		n++;
	}
	ASSERT_EQ(n, 2, "two clients");
out:
	env_down();
}

/* a plain frame (l2dsr: the client's packet, MAC rewritten) to dst */
static void plain4(struct pkt_buf *b, const char *dst, __u8 proto)
{
	pkt__init(b);
	pkt__eth(b, MAC_NODE, MAC_LB);
	pkt__ipv4(b, "192.0.2.10", dst, NULL);
	if (proto == IPPROTO_ICMP)
		pkt__icmp(b, 8, 0, 0x10001); /* echo request */
	else if (proto == IPPROTO_UDP)
		pkt__udp(b, 40000, 53);
	else
		pkt__tcp(b, 40000, 80, PKT_TCP_SYN);
	pkt__fill(b, 20);
	pkt__finish(b);
}

/* client_ip's record on vip:port, or -ENOENT */
static int client_rec(__u8 family, const char *client_ip, const char *vip, __u16 port, __u8 proto,
		      struct aibl_node_client *c)
{
	struct aibl_node_client_key k = {.family = family, .vport = htons(port), .proto = proto};
	int af = family == AIBL_AF_INET ? AF_INET : AF_INET6;

	inet_pton(af, client_ip, &k.client);
	inet_pton(af, vip, &k.vip);
	return bpf_map_lookup_elem(decap__clients_fd(dc), &k, c) ? -errno : 0;
}

/* a tunnel frame of af in af whose inner packet is src:sport -> dst:dport,
 * TCP flags, 20 bytes of payload */
static void tunnel_tcp(struct pkt_buf *b, int af, const char *src, __u16 sport, const char *dst,
		       __u16 dport, __u8 flags)
{
	pkt__init(b);
	pkt__eth(b, MAC_NODE, MAC_LB);
	if (af == AF_INET) {
		pkt__ipv4(b, "10.0.0.100", "10.1.0.1", NULL);
		pkt__ipv4(b, src, dst, NULL);
	} else {
		pkt__ipv6(b, "fd00::100", "fd00:1::3", 0, 0);
		pkt__ipv6(b, src, dst, 0, 0);
	}
	pkt__tcp(b, sport, dport, flags);
	pkt__fill(b, 20);
	pkt__finish(b);
}

/* a listener on addr (loopback) and a connection to it; the client's
 * port in *cport, the server's in *sport; fds in fd[3] */
static bool loop_conn(int af, const char *addr, int fd[3], __u16 *sport, __u16 *cport)
{
	struct sockaddr_storage ss = {};
	socklen_t len = sizeof(ss);

	fd[0] = fd[1] = fd[2] = -1;
	ss.ss_family = af;
	if (af == AF_INET)
		inet_pton(af, addr, &((struct sockaddr_in *)&ss)->sin_addr);
	else
		inet_pton(af, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr);
	len = af == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	fd[0] = socket(af, SOCK_STREAM, 0);
	if (!ASSERT_GE(fd[0], 0, "listener") || !ASSERT_OK(bind(fd[0], (void *)&ss, len), "bind") ||
	    !ASSERT_OK(listen(fd[0], 4), "listen") ||
	    !ASSERT_OK(getsockname(fd[0], (void *)&ss, &len), "name"))
		return false;
	*sport = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset in _in6 */
	fd[1] = socket(af, SOCK_STREAM, 0);
	if (!ASSERT_GE(fd[1], 0, "client") ||
	    !ASSERT_OK(connect(fd[1], (void *)&ss, len), "connect"))
		return false;
	fd[2] = accept(fd[0], NULL, NULL);
	if (!ASSERT_GE(fd[2], 0, "accept") ||
	    !ASSERT_OK(getsockname(fd[1], (void *)&ss, &len), "client name"))
		return false;
	*cport = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return true;
}

/*
 * A forged source can send SYNs and stray segments but never completes a
 * handshake. Where a server here listens on the port, a new TCP client is
 * recorded only by a packet of an established connection: a SYN, or a
 * segment no connection here holds, from a client not yet recorded passes
 * unrecorded and is counted `unconfirmed'; a connection's packets record
 * their client. Where no socket here has the port (the server runs
 * elsewhere), the client is recorded as before. IPv4 and IPv6.
 */
static void test_unconfirmed(void)
{
	static const struct {
		int af, family;
		const char *addr, *other;
	} fams[] = {{AF_INET, AIBL_AF_INET, "127.0.0.1", "127.0.0.2"},
		    {AF_INET6, AIBL_AF_INET6, "::1", "2001:db8::66"}};
	struct aibl_node_client c;
	struct pkt_buf in;
	__u64 before;

	if (!env_up())
		goto out;
	/* the test's own netns (main()): its loopback starts down */
	if (!ASSERT_OK(system("ip link set lo up"), "lo up"))
		goto out;
	for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		int fd[3], af = fams[i].af, fam = fams[i].family;
		__u16 sport = 0, cport = 0;

		if (!loop_conn(af, fams[i].addr, fd, &sport, &cport))
			goto close;
		/* a SYN from another address: the listener's, unrecorded */
		before = ncount(AIBL_NCNT_UNCONFIRMED);
		tunnel_tcp(&in, af, fams[i].other, 40000, fams[i].addr, sport, PKT_TCP_SYN);
		accept_case("syn to a listener: decapsulated", &in, TC_ACT_OK,
			    af == AF_INET ? AIBL_NCNT_DECAP4 : AIBL_NCNT_DECAP6);
		ASSERT_EQ(client_rec(fam, fams[i].other, fams[i].addr, sport, IPPROTO_TCP, &c),
			  -ENOENT, "syn: not recorded");
		/* a segment of no connection (a forged ACK), twice */
		tunnel_tcp(&in, af, fams[i].other, 40000, fams[i].addr, sport, PKT_TCP_ACK);
		accept_case("stray ack: decapsulated", &in, TC_ACT_OK,
			    af == AF_INET ? AIBL_NCNT_DECAP4 : AIBL_NCNT_DECAP6);
		accept_case("stray ack again", &in, TC_ACT_OK,
			    af == AF_INET ? AIBL_NCNT_DECAP4 : AIBL_NCNT_DECAP6);
		ASSERT_EQ(client_rec(fam, fams[i].other, fams[i].addr, sport, IPPROTO_TCP, &c),
			  -ENOENT, "stray ack: not recorded");
		ASSERT_EQ(ncount(AIBL_NCNT_UNCONFIRMED), before + 3, "three counted unconfirmed");
		/* the established connection's packet: recorded */
		tunnel_tcp(&in, af, fams[i].addr, cport, fams[i].addr, sport, PKT_TCP_ACK);
		accept_case("established: decapsulated", &in, TC_ACT_OK,
			    af == AF_INET ? AIBL_NCNT_DECAP4 : AIBL_NCNT_DECAP6);
		if (ASSERT_OK(client_rec(fam, fams[i].addr, fams[i].addr, sport, IPPROTO_TCP, &c),
			      "established: recorded"))
			ASSERT_EQ(c.packets, 1, "one packet");
		ASSERT_EQ(ncount(AIBL_NCNT_UNCONFIRMED), before + 3, "none more unconfirmed");
	close:
		for (int k = 0; k < 3; k++)
			if (fd[k] >= 0)
				close(fd[k]);
	}
	/* nothing here on the port: recorded from its first packet */
	build(&in, 4, 4, true);
	accept_case("no socket here: decapsulated", &in, TC_ACT_OK, AIBL_NCNT_DECAP4);
	ASSERT_OK(client_rec(AIBL_AF_INET, "192.0.2.10", "10.100.0.1", 80, IPPROTO_TCP, &c),
		  "no socket here: recorded");
out:
	env_down();
}

/*
 * l2dsr: the balancer sends the client's packet itself. A plain TCP or UDP
 * packet to a VIP the node holds passes untouched and is recorded as a
 * client (the ai policy's traffic hints), IPv4 and IPv6; one to another
 * address, another protocol, a cut one, or any before the agent has said
 * which VIPs it holds passes unrecorded.
 */
static void test_l2dsr_clients(void)
{
	struct decap_prefix vip[2];
	struct aibl_node_client_key k;
	struct aibl_node_client c;
	struct pkt_buf in;
	struct run r;

	if (!env_up())
		goto out;
	plain4(&in, "10.100.0.1", IPPROTO_TCP);
	accept_case("no vips known yet: passed", &in, TC_ACT_OK, AIBL_NCNT_PASS);
	ASSERT_ERR(bpf_map_get_next_key(decap__clients_fd(dc), NULL, &k), "not recorded");

	if (!ASSERT_OK(decap__parse_prefix("10.100.0.1", &vip[0]), "parse") ||
	    !ASSERT_OK(decap__parse_prefix("fd00:100::1", &vip[1]), "parse") ||
	    !ASSERT_OK(decap__set_addrs(dc, AIBL_NODE_ADDR_VIP, vip, 2), "vips"))
		goto out;
	accept_case("tcp to a vip here: recorded", &in, TC_ACT_OK, AIBL_NCNT_DIRECT);
	run(&in, &r);
	ASSERT_TRUE(r.len == in.len && !memcmp(r.data, in.buf, in.len), "untouched");
	if (ASSERT_OK(client_rec(AIBL_AF_INET, "192.0.2.10", "10.100.0.1", 80, IPPROTO_TCP, &c),
		      "v4 client recorded")) {
		ASSERT_EQ(c.packets, 2, "packets");
		ASSERT_EQ(c.bytes, 2 * (14 + 20 + 20 + 20), "bytes");
	}
	plain4(&in, "10.100.0.1", IPPROTO_UDP);
	accept_case("udp to a vip here: recorded", &in, TC_ACT_OK, AIBL_NCNT_DIRECT);
	ASSERT_OK(client_rec(AIBL_AF_INET, "192.0.2.10", "10.100.0.1", 53, IPPROTO_UDP, &c),
		  "udp client recorded");
	pkt__init(&in);
	pkt__eth(&in, MAC_NODE, MAC_LB);
	inner6(&in);
	pkt__finish(&in);
	accept_case("ipv6 tcp to a vip here: recorded", &in, TC_ACT_OK, AIBL_NCNT_DIRECT);
	ASSERT_OK(client_rec(AIBL_AF_INET6, "2001:db8::10", "fd00:100::1", 80, IPPROTO_TCP, &c),
		  "v6 client recorded");

	/* from here on none may be recorded: clear the three records */
	while (!bpf_map_get_next_key(decap__clients_fd(dc), NULL, &k))
		bpf_map_delete_elem(decap__clients_fd(dc), &k);
	plain4(&in, "10.1.0.1", IPPROTO_TCP);
	accept_case("to the node's own address: passed", &in, TC_ACT_OK, AIBL_NCNT_PASS);
	plain4(&in, "10.100.0.1", IPPROTO_ICMP);
	accept_case("icmp to a vip: passed", &in, TC_ACT_OK, AIBL_NCNT_PASS);
	plain4(&in, "10.100.0.1", IPPROTO_TCP);
	in.buf[14] = 0x65; /* version 6 behind an IPv4 type (a cut header is
			    * refused by BPF_PROG_TEST_RUN itself) */
	accept_case("wrong ip version: passed", &in, TC_ACT_OK, AIBL_NCNT_PASS);
	plain4(&in, "10.100.0.1", IPPROTO_TCP);
	in.buf[14 + 2] = 0x05; /* total length 1280+: beyond the frame */
	accept_case("length beyond the frame: passed", &in, TC_ACT_OK, AIBL_NCNT_PASS);
	ASSERT_ERR(bpf_map_get_next_key(decap__clients_fd(dc), NULL, &k), "none recorded");
out:
	env_down();
}

static void test_attach_detach(void)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = 0xa1b1, .priority = 1);
	struct decap *d2 = NULL;
	__u32 id;
	int ifi;

	if (!env_up())
		goto out;
	ifi = if_nametoindex("dpd0");
	hook.ifindex = ifi;
	ASSERT_OK(bpf_tc_query(&hook, &q), "filter attached");
	id = q.prog_id;
	/* a second agent while this one runs (started by hand): refused,
	 * the running one's filter left in place */
	ASSERT_EQ(decap__attach(ifi, NULL, &d2), -EBUSY, "a second live one refused");
	q.prog_id = 0;
	ASSERT_OK(bpf_tc_query(&hook, &q), "still attached");
	ASSERT_EQ(q.prog_id, id, "the running one's program");
	/* its process gone (killed: the filter stays, the lock goes with it):
	 * a restart's attach replaces the program */
	close(dc->lock_fd);
	dc->lock_fd = -1;
	ASSERT_OK(decap__attach(ifi, NULL, &d2), "re-attach");
	/* the old handle's detach leaves the new program in place */
	ASSERT_OK(decap__detach(dc), "old handle's detach");
	dc = NULL;
	q.prog_id = 0;
	ASSERT_OK(bpf_tc_query(&hook, &q), "the new filter stays");
	ASSERT_NEQ(q.prog_id, id, "the new program");
	decap__close(d2);
	q.prog_id = 0;
	ASSERT_OK(bpf_tc_query(&hook, &q), "still attached after close");
	ASSERT_OK(decap__detach_ifindex(ifi, 0, 0), "detach by ifindex");
	ASSERT_EQ(decap__detach_ifindex(ifi, 0, 0), -ENOENT, "gone");
out:
	env_down();
}

/* pinned maps (--decap-pin-dir) survive an agent restart; an older
 * build's smaller counter map is replaced, not a reason to fail */
static void test_pins_upgrade(void)
{
	struct decap_opts o = {};
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), id0 = 0;
	struct decap *d2 = NULL;
	char dir[64], path[96];
	int fd, ifi;

	if (!env_up())
		goto out;
	ifi = if_nametoindex("dpd0");
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/aibl-t-dp-%d", getpid());
	if (!ASSERT_OK(mkdir(dir, 0700), "pin dir"))
		goto out;
	o.pin_dir = dir;
	/* what an agent with two counters fewer pinned */
	snprintf(path, sizeof(path), "%s/%s", dir, AIBL_MAP_NODE_STATS);
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, AIBL_MAP_NODE_STATS, 4, 8,
			    AIBL_NCNT__MAX - 2, NULL);
	if (!ASSERT_GE(fd, 0, "old counter map") || !ASSERT_OK(bpf_obj_pin(fd, path), "pin it"))
		goto rm;
	close(fd);
	/* the agent that attached dc gone (its lock with it) */
	close(dc->lock_fd);
	dc->lock_fd = -1;
	if (!ASSERT_OK(decap__attach(ifi, &o, &d2), "attach over the old pin"))
		goto rm;
	decap__close(d2);
	d2 = NULL;
	fd = bpf_obj_get(path);
	if (ASSERT_GE(fd, 0, "pinned again") &&
	    ASSERT_OK(bpf_obj_get_info_by_fd(fd, &info, &len), "info"))
		ASSERT_EQ(info.max_entries, AIBL_NCNT__MAX, "this build's size");
	id0 = info.id;
	if (fd >= 0)
		close(fd);
	/* a restart reuses it */
	if (ASSERT_OK(decap__attach(ifi, &o, &d2), "attach again")) {
		decap__close(d2);
		fd = bpf_obj_get(path);
		len = sizeof(info);
		if (ASSERT_GE(fd, 0, "still pinned") &&
		    ASSERT_OK(bpf_obj_get_info_by_fd(fd, &info, &len), "info"))
			ASSERT_EQ(info.id, id0, "the same map reused");
		if (fd >= 0)
			close(fd);
	}
rm:
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	system(path);
out:
	env_down();
}

/* build() with the ECN fields given: outer's and inner's low TOS / traffic
 * class bits */
static void build_ecn(struct pkt_buf *b, int outer, int inner, __u8 oecn, __u8 iecn,
		      bool with_outer)
{
	struct pkt_ip4_opts o4 = {.tos = oecn, .ttl = 64}, i4 = {.tos = iecn, .ttl = 64};

	pkt__init(b);
	pkt__eth(b, MAC_NODE, MAC_LB);
	if (with_outer && outer == 4)
		pkt__ipv4(b, "10.0.0.100", "10.1.0.1", &o4);
	else if (with_outer && outer == 6)
		pkt__ipv6(b, "fd00::100", "fd00:1::3", oecn, 0x777);
	if (inner == 4)
		pkt__ipv4(b, "192.0.2.10", "10.100.0.1", &i4);
	else
		pkt__ipv6(b, "2001:db8::10", "fd00:100::1", iecn, 0);
	pkt__tcp(b, 40000, 80, PKT_TCP_ACK);
	pkt__fill(b, 20);
	pkt__finish(b);
}

/*
 * RFC 6040 at the node: a CE mark on the outer header reaches the inner
 * one when that is ECN-capable (its IPv4 checksum mended: the expected
 * frame is built with CE and its own checksum); a not-ECN-capable inner
 * packet under an outer CE is dropped; no outer CE changes nothing.
 */
static void test_ecn(void)
{
	static const struct {
		const char *desc;
		int outer, inner;
		__u8 oecn, iecn, want; /* want: the inner ECN after */
		__u32 verdict;
		int counter; /* -1: none moves */
	} c[] = {
	    {"4in4 CE over ECT(0): CE", 4, 4, 3, 2, 3, TC_ACT_OK, AIBL_NCNT_ECN_CE},
	    {"4in4 CE over ECT(1): CE", 4, 4, 3, 1, 3, TC_ACT_OK, AIBL_NCNT_ECN_CE},
	    {"6in6 CE over ECT(1): CE", 6, 6, 3, 1, 3, TC_ACT_OK, AIBL_NCNT_ECN_CE},
	    {"4in6 CE over ECT(0): CE", 6, 4, 3, 2, 3, TC_ACT_OK, AIBL_NCNT_ECN_CE},
	    {"4in4 CE over CE: as it is", 4, 4, 3, 3, 3, TC_ACT_OK, -1},
	    {"4in4 ECT(0) over ECT(0): as it is", 4, 4, 2, 2, 2, TC_ACT_OK, -1},
	    {"4in4 CE over not-ECT: dropped", 4, 4, 3, 0, 0, TC_ACT_SHOT, AIBL_NCNT_DROP_ECN},
	    {"6in6 CE over not-ECT: dropped", 6, 6, 3, 0, 0, TC_ACT_SHOT, AIBL_NCNT_DROP_ECN},
	};
	struct pkt_buf in, exp;
	struct run r;

	if (!env_up())
		goto out;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		__u64 ce = ncount(AIBL_NCNT_ECN_CE), drop = ncount(AIBL_NCNT_DROP_ECN);

		build_ecn(&in, c[i].outer, c[i].inner, c[i].oecn, c[i].iecn, true);
		build_ecn(&exp, c[i].outer, c[i].inner, 0, c[i].want, false);
		run(&in, &r);
		if (!ASSERT_OK(r.err, c[i].desc))
			continue;
		ASSERT_EQ(r.verdict, c[i].verdict, c[i].desc);
		if (c[i].verdict == TC_ACT_OK &&
		    !ASSERT_TRUE(r.len == exp.len && !memcmp(r.data, exp.buf, exp.len), c[i].desc))
			pkt__diff(c[i].desc, exp.buf, exp.len, r.data, r.len);
		ASSERT_EQ(ncount(AIBL_NCNT_ECN_CE) - ce, c[i].counter == AIBL_NCNT_ECN_CE,
			  "ecn_ce counted for a copied mark only");
		ASSERT_EQ(ncount(AIBL_NCNT_DROP_ECN) - drop, c[i].counter == AIBL_NCNT_DROP_ECN,
			  "drop_ecn counted for a drop only");
	}
out:
	env_down();
}

/* decap_opts.prepare: whether a filter was attached when it ran, and
 * the balancer's source prefix set */
static int prepare_sources(struct decap *d, void *arg)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .attach_point = BPF_TC_INGRESS,
		    .ifindex = (int)if_nametoindex("dpd2"));
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = 0xa1b1, .priority = 1);
	struct decap_prefix p;
	bool *attached = arg;

	*attached = !bpf_tc_query(&hook, &q);
	return decap__parse_prefix("10.200.0.0/24", &p) ?: decap__set_sources(d, &p, 1);
}

/*
 * What the program accepts is set before it is attached: attached first,
 * its checks were off until the agent filled them, and a spoofed tunnel
 * from anywhere was opened (and fed the hints) meanwhile.
 */
static void test_prepare_first(void)
{
	struct decap_opts o = {.prepare = prepare_sources};
	struct aibl_node_cfg c = {};
	struct decap *d2 = NULL;
	bool attached = true;
	__u32 zero = 0;

	o.prepare_arg = &attached;
	if (!env_up())
		goto out;
	if (!ASSERT_OK(system("ip link add dpd2 type veth peer name dpd3"), "veth"))
		goto out;
	if (!ASSERT_OK(decap__attach(if_nametoindex("dpd2"), &o, &d2), "attach"))
		goto out;
	ASSERT_FALSE(attached, "prepared before the filter was attached");
	ASSERT_OK(bpf_map_lookup_elem(bpf_map__fd(d2->skel->maps.aibl_node_cfg), &zero, &c), "cfg");
	ASSERT_TRUE(c.flags & AIBL_NODE_F_CHECK_SOURCE, "the source check on from the start");
	decap__detach(d2);
out:
	system("ip link del dpd2 2>/dev/null");
	env_down();
}

/* an address of kind in aibl_node_addrs */
static bool addr_listed(const char *text, __u8 kind)
{
	struct aibl_node_addr_key k = {.kind = kind};
	__u8 v;

	if (strchr(text, ':')) {
		k.family = AIBL_AF_INET6;
		inet_pton(AF_INET6, text, &k.addr);
	} else {
		k.family = AIBL_AF_INET;
		inet_pton(AF_INET, text, &k.addr.v4);
	}
	return !bpf_map_lookup_elem(bpf_map__fd(dc->skel->maps.aibl_node_addrs), &k, &v);
}

/*
 * The node's VIPs, however many it has: 300 addresses on a NOARP device (as
 * kube-proxy's IPVS puts every ClusterIP on kube-ipvs0) and an IPv6 VIP
 * after them all go in; a fixed 256 left the rest out, the IPv6 one first,
 * and its tunnels were dropped. Past what the table holds, the VIP check is
 * off rather than dropping the tunnels to those left out.
 */
/* ip addr OP of n /32s 10.NET.x.y on dpv0, in one ip -batch: its status */
static int dpv0_addrs(const char *op, int net, int n)
{
	FILE *f = popen("ip -batch -", "w");

	if (!f)
		return -1;
	for (int i = 0; i < n; i++)
		fprintf(f, "addr %s 10.%d.%d.%d/32 dev dpv0\n", op, net, i / 250, 1 + i % 250);
	return pclose(f);
}

static void test_many_addrs(void)
{
	if (!env_up())
		goto out;
	/* no dummy module here: a veth without ARP is as NOARP */
	if (!ASSERT_OK(system("ip link add dpv0 type veth peer name dpv1 && "
			      "ip link set dpv0 arp off up && "
			      "ip addr add fd00:100::1/128 dev dpv0"),
		       "a NOARP device with an IPv6 VIP") ||
	    !ASSERT_OK(dpv0_addrs("add", 96, 300), "300 addresses"))
		goto out;
	ASSERT_OK(decap__refresh_addrs(dc), "refresh");
	ASSERT_TRUE(addr_listed("10.96.0.1", AIBL_NODE_ADDR_VIP), "the first VIP");
	ASSERT_TRUE(addr_listed("10.96.1.50", AIBL_NODE_ADDR_VIP), "the 300th VIP");
	ASSERT_TRUE(addr_listed("fd00:100::1", AIBL_NODE_ADDR_VIP), "the IPv6 VIP beside them");
	ASSERT_FALSE(dc->addrs_over, "within the table");
	/* the 300 replaced by 800 others: old and new together are past the
	 * table, the new set alone is not */
	if (!ASSERT_OK(dpv0_addrs("del", 96, 300), "the 300 gone") ||
	    !ASSERT_OK(dpv0_addrs("add", 97, 800), "800 others"))
		goto out;
	ASSERT_OK(decap__refresh_addrs(dc), "refresh: the set replaced");
	ASSERT_TRUE(addr_listed("10.97.3.50", AIBL_NODE_ADDR_VIP), "the 800th new VIP");
	ASSERT_FALSE(addr_listed("10.96.0.1", AIBL_NODE_ADDR_VIP), "an old one gone");
	ASSERT_TRUE(addr_listed("fd00:100::1", AIBL_NODE_ADDR_VIP), "the IPv6 VIP kept");
	/* past the table: the VIP check off, not a partial one */
	if (!ASSERT_OK(dpv0_addrs("add", 98, 300), "1101 addresses"))
		goto out;
	ASSERT_OK(decap__refresh_addrs(dc), "refresh");
	ASSERT_TRUE(dc->addrs_over, "past the table");
	ASSERT_FALSE(addr_listed("10.97.0.1", AIBL_NODE_ADDR_VIP), "no partial VIP set");
out:
	system("ip link del dpv0 2>/dev/null");
	env_down();
}

static const struct test_case cases[] = {
    {"decap_fixtures", test_decap},
    {"decap_ecn", test_ecn},
    {"decap_bad_input", test_bad},
    {"decap_accept", test_accept},
    {"decap_client_records", test_clients},
    {"decap_l2dsr_client_records", test_l2dsr_clients},
    {"decap_unconfirmed_clients", test_unconfirmed},
    {"decap_attach_detach", test_attach_detach},
    {"decap_pins_upgrade", test_pins_upgrade},
    {"decap_many_addrs", test_many_addrs},
    {"decap_prepare_first", test_prepare_first},
};

int main(int argc, char **argv)
{
	if (test__can_bpf() && unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return 1;
	}
	return test__main(argc, argv, "decap", cases, sizeof(cases) / sizeof(cases[0]));
}
