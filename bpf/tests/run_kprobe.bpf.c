// A libbpf-bootstrap kprobe-like program for `pybpf run`: do_unlinkat's entry sends the pid and
// the file name through a ring buffer, its return records the result per process in a hash map.
// Kernels without kprobes load it but cannot attach it.
#ifndef __TARGET_ARCH_x86
#define __TARGET_ARCH_x86
#endif
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct event {
	int pid;
	char filename[64];
};

// Kept in the BTF (as for bpf2go and ecli): how `pybpf run` finds the layout of the events.
const struct event *unused __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} unlinks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, int);
	__type(value, int);
} last_ret SEC(".maps");

const volatile int targ_tgid = 0;

static __always_inline int mine(void)
{
	return !targ_tgid || (bpf_get_current_pid_tgid() >> 32) == targ_tgid;
}

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(unlink_entry, int dfd, struct filename *name)
{
	struct event *e;

	if (!mine())
		return 0;
	e = bpf_ringbuf_reserve(&unlinks, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(name, name));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int BPF_KRETPROBE(unlink_exit, int ret)
{
	int pid = bpf_get_current_pid_tgid() >> 32;

	if (mine())
		bpf_map_update_elem(&last_ret, &pid, &ret, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
