/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the test_xdp_* cases share on top of xdp_env.h: the standard
 * services they start from, a run-and-compare step that writes a pcap of
 * a failing case, packet builders and flows opened from numbered clients.
 * Every test_xdp_* binary runs its cases in a network namespace of its
 * own, so bpf_fib_lookup sees a known, empty routing table (and a lab
 * route where a case adds one).
 */
#ifndef AIBL_TEST_XDP_FIXTURE_H
#define AIBL_TEST_XDP_FIXTURE_H

#include "test.h"
#include "xdp_env.h"

#define VIP4  "10.100.0.1"  /* tcp/80 hash src_ip, svc 0 */
#define VIP4W "10.100.0.2"  /* udp/any hash src_ip, svc 2 */
#define VIP4T "10.100.0.3"  /* udp/any hash 5-tuple, svc 3 */
#define VIP6  "fd00:100::1" /* tcp/80 hash src_ip, svc 1 */
#define VIP6W "fd00:100::2" /* tcp/any hash src_ip, svc 4 */
#define CLI4  "192.0.2.10"
#define CLI6  "2001:db8::10"

/* table patterns: every slot backend 1, 2 or 3 */
extern const __u32 RING_B1[1], RING_B2[1], RING_B3[1];

/* Loads the program with the services above and backends 1..XE_NBE-1
 * valid, with their MACs; false (failed or skipped) when the case cannot
 * run. */
bool std_env(void);

/* Runs in and checks verdict and bytes (exp NULL: in unchanged). */
bool expect(const char *desc, const struct pkt_buf *in, __u32 verdict, const struct pkt_buf *exp,
	    struct xe_result *r);

void tcp4(struct pkt_buf *b, const char *src, const char *dst, __u16 sport, __u16 dport,
	  __u8 flags);

void tcp6(struct pkt_buf *b, const char *src, const char *dst, __u16 sport, __u16 dport,
	  __u8 flags);

void in_v4_syn(struct pkt_buf *b);
/* in_v4_syn's flow through a whole handshake: SYN, then the ACK that puts
 * it into the connection table; in and r hold the ACK and its result */
void open_v4_flow(struct pkt_buf *in, struct xe_result *r);

void in_v4_options(struct pkt_buf *b);

void in_v4_qinq(struct pkt_buf *b);

void in_v4_udp_wild(struct pkt_buf *b);

void in_v6_ext(struct pkt_buf *b);

/* A TCP packet with flags of client c's (198.18.x) flow; returns the
 * backend it went to, -1 on an error. */
int tcp_from(__u32 c, __u16 sport, const char *vip, __u16 dport, __u8 flags, struct xe_result *r);

/* Opens a flow from client c: SYN, then the handshake's ACK (which moves
 * it into the connection table); returns the backend both went to, -1 on
 * an error or when they differ. */
int syn_from(__u32 c, __u16 sport, const char *vip, __u16 dport, struct xe_result *r);

/* A packet (ACK) of client c's flow; returns the backend it went to. */
int ack_from(__u32 c, __u16 sport, const char *vip, __u16 dport, struct xe_result *r);

__u32 client_hash(__u32 c);

int pin_cpu0(void);

/* main() of a test_xdp_* binary: its cases as suite "xdp", in a network
 * namespace of its own */
int xf_main(int argc, char **argv, const struct test_case *cases, size_t n);

#define XF_MAIN(cases)                                                                             \
	int main(int argc, char **argv)                                                            \
	{                                                                                          \
		return xf_main(argc, argv, cases, sizeof(cases) / sizeof((cases)[0]));             \
	}

#endif /* AIBL_TEST_XDP_FIXTURE_H */
