/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet helpers for tests: the builder is user/common/pktbuild.h (shared
 * with aiblctl simulate); this adds a pcap writer, used to dump a failing
 * case for tcpdump/wireshark, and a text diff of two frames.
 */
#ifndef AIBL_TEST_PKT_H
#define AIBL_TEST_PKT_H

#include <stddef.h>
#include <stdint.h>
#include "pktbuild.h"

/* Appends frames to a pcap file (created when missing). 0 or -errno. */
int pkt__pcap_write(const char *path, const void *const *frames, const size_t *lens, int n);

/* Text dump of the first difference between two frames, for test logs. */
void pkt__diff(const char *what, const uint8_t *exp, size_t exp_len, const uint8_t *got,
	       size_t got_len);

#endif /* AIBL_TEST_PKT_H */
