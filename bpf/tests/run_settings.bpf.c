// Settings of every kind `pybpf run --set` reads by their BTF type: an int, an unsigned, a
// bool, an enum, a char array, and a struct it cannot set from the command line. A tracepoint
// that counts the processes created, filtered on them, so that the program uses every one.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum verbosity { QUIET, NORMAL, LOUD = 7 };
struct window { __u32 lo, hi; };

const volatile int targ_tgid = 0;
const volatile __u32 min_children = 0;
const volatile bool only_threads = false;
const volatile enum verbosity level = NORMAL;
const volatile char comm_prefix[8] = "";
const volatile struct window window = {};

__u64 created = 0;

SEC("tracepoint/sched/sched_process_fork")
int count_forks(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (targ_tgid && tgid != targ_tgid)
		return 0;
	if (only_threads || level == QUIET || comm_prefix[0] || window.hi || min_children > 1000)
		return 0;
	__sync_fetch_and_add(&created, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
