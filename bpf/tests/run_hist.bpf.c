// A runqlat-like histogram for `pybpf run`: the sleeps a process asks for (clock_nanosleep's
// requested duration, in microseconds; deadlines are left out), counted in log2 slots as
// libbpf-tools count them.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define MAX_SLOTS 26
#define TASK_COMM_LEN 16

struct hist {
	__u32 slots[MAX_SLOTS];
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} total_sleeps SEC(".maps");

const volatile int targ_tgid = 0;
static struct hist zero;

static __always_inline __u64 log2l(__u64 v)
{
	__u64 r = 0;

	for (int i = 0; i < 64 && v > 1; i++) {
		v >>= 1;
		r++;
	}
	return r;
}

SEC("tp/syscalls/sys_enter_clock_nanosleep")
int sleep_entry(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, key = 0;
	struct __kernel_timespec ts = {};
	struct hist *h;
	__u64 usecs, slot, *total;

	if (targ_tgid && tgid != targ_tgid)
		return 0;
	if (ctx->args[1] & 1) // TIMER_ABSTIME: a deadline, not a duration
		return 0;
	if (bpf_probe_read_user(&ts, sizeof(ts), (void *)ctx->args[2]))
		return 0;
	h = bpf_map_lookup_elem(&hists, &tgid);
	if (!h) {
		bpf_map_update_elem(&hists, &tgid, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &tgid);
		if (!h)
			return 0;
		bpf_get_current_comm(&h->comm, sizeof(h->comm));
	}
	usecs = (__u64)ts.tv_sec * 1000000 + (__u64)ts.tv_nsec / 1000;
	slot = log2l(usecs);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&h->slots[slot], 1);
	total = bpf_map_lookup_elem(&total_sleeps, &key);
	if (total)
		__sync_fetch_and_add(total, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
