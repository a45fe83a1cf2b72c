// A tracepoint that no kernel has, for `pybpf run`'s error when attaching fails.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tp/pybpf_nosuch/nosuch_event")
int nosuch(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
