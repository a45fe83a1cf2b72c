// CO-RE against local definitions that differ from the kernel's: fields in another order,
// renamed by flavor, missing, resized; enums with flavored values; a type that does not exist.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

// Fields declared in a different order than the kernel's task_struct, one that does not exist.
struct task_struct___reordered {
	char comm[16];
	int tgid;
	int pid;
	int no_such_field;
} __attribute__((preserve_access_index));

// An older layout, as a program built for several kernels would carry it.
struct task_struct___old {
	long state; // renamed to __state in 5.14
	unsigned int __state;
} __attribute__((preserve_access_index));

// A field the kernel has as u32, read here as a u64: the load must shrink to 4 bytes.
struct xdp_md___wide {
	unsigned long long data;
	unsigned long long ingress_ifindex;
} __attribute__((preserve_access_index));

struct xdp_rxq_info___bits {
	unsigned int queue_index;
} __attribute__((preserve_access_index));

struct does_not_exist___x {
	int a;
} __attribute__((preserve_access_index));

enum bpf_map_type___mine { BPF_MAP_TYPE_RINGBUF___mine = 99, BPF_MAP_TYPE_NOPE___mine = 1 };

enum {
	R_PID, R_TGID, R_COMM, R_MISSING_EXISTS, R_STATE_EXISTS, R___STATE_OFF,
	R_RINGBUF, R_NOPE_EXISTS, R_NOT_A_TYPE, R_WIDE_SIZE, R_QUEUE_INDEX_OFF,
	R_MISSING_OFF, R_COUNT,
};

__u64 results[R_COUNT];
__u64 loaded;

SEC("xdp")
int core_local(struct xdp_md *ctx)
{
	struct task_struct___reordered *t = 0;
	struct task_struct___old *old = 0;
	struct xdp_md___wide *wide = (void *)ctx;

	results[R_PID] = bpf_core_field_offset(t->pid);
	results[R_TGID] = bpf_core_field_offset(t->tgid);
	results[R_COMM] = bpf_core_field_offset(t->comm);
	results[R_MISSING_EXISTS] = bpf_core_field_exists(t->no_such_field);
	results[R_STATE_EXISTS] = bpf_core_field_exists(old->state);
	results[R___STATE_OFF] = bpf_core_field_offset(old->__state);
	results[R_RINGBUF] = bpf_core_enum_value(enum bpf_map_type___mine, BPF_MAP_TYPE_RINGBUF___mine);
	results[R_NOPE_EXISTS] =
		bpf_core_enum_value_exists(enum bpf_map_type___mine, BPF_MAP_TYPE_NOPE___mine);
	results[R_NOT_A_TYPE] = bpf_core_type_exists(struct does_not_exist___x);
	results[R_WIDE_SIZE] = bpf_core_field_size(wide->ingress_ifindex);
	results[R_QUEUE_INDEX_OFF] =
		bpf_core_field_offset(((struct xdp_rxq_info___bits *)0)->queue_index);
	if (bpf_core_field_exists(t->no_such_field))
		results[R_MISSING_OFF] = bpf_core_field_offset(t->no_such_field); // poisoned, dead
	loaded = wide->ingress_ifindex; // an 8-byte load of a 4-byte ctx field: shrunk to 4
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
