// A TCP congestion control in a plain `.struct_ops` section (no link): the map update alone
// registers it, and it stays registered until the element is deleted.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("struct_ops/plain_ssthresh")
__u32 plain_ssthresh(unsigned long long *ctx)
{
	return 2;
}

SEC("struct_ops/plain_undo_cwnd")
__u32 plain_undo_cwnd(unsigned long long *ctx)
{
	return 2;
}

SEC("struct_ops/plain_cong_avoid")
void plain_cong_avoid(unsigned long long *ctx)
{
}

SEC(".struct_ops")
struct tcp_congestion_ops plain_cc = {
	.ssthresh = (void *)plain_ssthresh,
	.undo_cwnd = (void *)plain_undo_cwnd,
	.cong_avoid = (void *)plain_cong_avoid,
	.name = "pybpf_plain",
};

char LICENSE[] SEC("license") = "GPL";
