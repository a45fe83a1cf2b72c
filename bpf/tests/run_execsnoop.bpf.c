// An execsnoop/bootstrap-like program for `pybpf run`: a tracepoint sends one event per exec
// through a ring buffer, counts execs per parent in a hash map, and says so with bpf_printk.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16
#define MAX_FILENAME_LEN 127

struct event {
	int pid;
	int ppid;
	unsigned int uid;
	unsigned long long ts_ns;
	char comm[TASK_COMM_LEN];
	char filename[MAX_FILENAME_LEN];
	bool exit_event;
};

// Kept in the BTF (as for bpf2go and ecli): how `pybpf run` finds the layout of the events.
const struct event *unused __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, int);
	__type(value, __u64);
} execs_by_ppid SEC(".maps");

const volatile int targ_ppid = 0; // only children of this process (0: every exec)

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	int ppid = BPF_CORE_READ(task, real_parent, tgid);
	unsigned int fname_off = ctx->__data_loc_filename & 0xFFFF;
	struct event *e;
	__u64 one = 1, *count;
	int pid = bpf_get_current_pid_tgid() >> 32;

	if (targ_ppid && ppid != targ_ppid)
		return 0;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = pid;
	e->ppid = ppid;
	e->uid = (unsigned int)bpf_get_current_uid_gid();
	e->ts_ns = bpf_ktime_get_ns();
	e->exit_event = false;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	bpf_probe_read_str(&e->filename, sizeof(e->filename), (void *)ctx + fname_off);
	bpf_ringbuf_submit(e, 0);

	count = bpf_map_lookup_elem(&execs_by_ppid, &ppid);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&execs_by_ppid, &ppid, &one, BPF_ANY);
	bpf_printk("pybpf-test exec pid %d ppid %d", pid, ppid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
