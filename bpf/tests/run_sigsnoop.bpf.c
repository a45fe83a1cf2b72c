// A sigsnoop-like program for `pybpf run`: kill(2) calls sent as events through a perf buffer
// (bpf_perf_event_output, the way before ring buffers). struct event is used on the stack
// only, so it is not in the BTF: `pybpf run` finds it in the DWARF.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TASK_COMM_LEN 16

struct event {
	__u32 pid;
	__u32 tpid;
	int sig;
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

const volatile int targ_pid = 0; // only signals sent by this process (0: all)

SEC("tracepoint/syscalls/sys_enter_kill")
int kill_entry(struct trace_event_raw_sys_enter *ctx)
{
	struct event e = {};

	e.pid = bpf_get_current_pid_tgid() >> 32;
	if (targ_pid && e.pid != targ_pid)
		return 0;
	e.tpid = (__u32)ctx->args[0];
	e.sig = (int)ctx->args[1];
	bpf_get_current_comm(&e.comm, sizeof(e.comm));
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
