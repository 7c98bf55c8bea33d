// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Baseline for bench_xdp: the cheapest program that still forwards. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_empty(struct xdp_md *ctx)
{
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
