/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The floor for bench/prog_cost.py: what BPF_PROG_TEST_RUN costs with a program that does nothing. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_empty(struct xdp_md *ctx)
{
	return XDP_PASS;
}
