// A stack-trace map whose depth and count the object leaves to its tool's own loader, as
// libbpf-tools' profile and offcputime do (bpf_map__set_value_size, bpf_map__set_max_entries
// before load): `pybpf load --map stacks.value_size=N --map stacks.max_entries=N` sets them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
} stacks SEC(".maps");

SEC("tracepoint/sched/sched_process_fork")
int fork_stack(void *ctx)
{
	bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
