// A TCP congestion control as a struct_ops object (the kernel has struct tcp_congestion_ops).
// `.struct_ops.link`: filling the map in does not register the algorithm; the link does, and
// closing the link (or the death of the process holding it) unregisters it.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("struct_ops/rw_ssthresh")
__u32 rw_ssthresh(unsigned long long *ctx)
{
	return 2;
}

SEC("struct_ops/rw_undo_cwnd")
__u32 rw_undo_cwnd(unsigned long long *ctx)
{
	return 2;
}

SEC("struct_ops/rw_cong_avoid")
void rw_cong_avoid(unsigned long long *ctx)
{
}

SEC(".struct_ops.link")
struct tcp_congestion_ops rw_cc = {
	.ssthresh = (void *)rw_ssthresh,
	.undo_cwnd = (void *)rw_undo_cwnd,
	.cong_avoid = (void *)rw_cong_avoid,
	.name = "pybpf_rw",
};

char LICENSE[] SEC("license") = "GPL";
