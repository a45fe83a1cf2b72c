// A syscall program (BPF_PROG_TYPE_SYSCALL): run by BPF_PROG_TEST_RUN only, its one argument a
// context the caller hands in and reads back. This one adds two numbers into the third.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sum_args {
	__u32 a, b;
	__u64 sum;
};

SEC("syscall")
int add(struct sum_args *ctx)
{
	ctx->sum = (__u64)ctx->a + ctx->b;
	return 7;
}

char LICENSE[] SEC("license") = "GPL";
