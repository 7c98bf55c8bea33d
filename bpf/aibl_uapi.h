/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The uapi constants the BPF programs use that vmlinux.h cannot give them.
 *
 * The BPF programs take the kernel's types from vmlinux.h (generated from
 * the kernel's BTF, see the Makefile), as libbpf-bootstrap and the kernel's
 * BPF selftests do, and read no glibc or multiarch headers: the uapi headers
 * <linux/icmp.h> and <linux/in.h> pull in glibc's <sys/socket.h>, whose
 * 32-bit stubs a bare Debian lacks. BTF carries structs and enums (struct
 * iphdr, IPPROTO_TCP, XDP_TX, BPF_MAP_TYPE_*) but not #defines; these are
 * the #defines, each under the uapi header it comes from, values unchanged
 * since those headers were written.
 *
 * Include after vmlinux.h.
 */
#ifndef AIBL_UAPI_H
#define AIBL_UAPI_H

/* <linux/if_ether.h> */
#define ETH_ALEN     6
#define ETH_P_IP     0x0800
#define ETH_P_8021Q  0x8100
#define ETH_P_IPV6   0x86DD
#define ETH_P_8021AD 0x88A8

/*
 * <linux/in6.h>: the IPv6 extension header and ICMPv6 next-header values.
 * The IPv4 protocol numbers (IPPROTO_TCP, IPPROTO_AH, IPPROTO_IPV6, ...)
 * are an enum in <linux/in.h>, so they come with vmlinux.h.
 */
#define IPPROTO_HOPOPTS	 0
#define IPPROTO_ROUTING	 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_ICMPV6	 58
#define IPPROTO_DSTOPTS	 60

/* <linux/socket.h> */
#define AF_INET	 2
#define AF_INET6 10

/* <linux/icmp.h> */
#define ICMP_DEST_UNREACH  3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_FRAG_NEEDED   4 /* code of ICMP_DEST_UNREACH */

/* <linux/icmpv6.h>, including a field name of struct icmp6hdr that is a
 * #define there */
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG   2
#define ICMPV6_TIME_EXCEED  3
#define icmp6_mtu	    icmp6_dataun.un_data32[0]

/* <linux/pkt_cls.h> */
#define TC_ACT_OK   0
#define TC_ACT_SHOT 2

/* <asm-generic/errno-base.h> */
#define EINVAL 22

#endif /* AIBL_UAPI_H */
