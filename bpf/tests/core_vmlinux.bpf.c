// CO-RE against the running kernel's types (vmlinux.h): every value lands in results[],
// in the order of the R_* indexes, so a test can compare them with the kernel's BTF.
// (TYPE_MATCHES needs clang 15; it is tested on hand-made BTF.)
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

enum {
	R_PID_OFF, R_TGID_OFF, R_COMM_OFF, R_COMM_SIZE, R_MM_OFF, R_MM_SIZE,
	R_PARENT_OFF, R_FLAGS_SIZE, R_PID_EXISTS, R_PID_SIGNED, R_FLAGS_SIGNED,
	R_SKB_LEN_OFF, R_SKB_PKT_TYPE_SIZE, R_SKB_PKT_TYPE_LSHIFT, R_SKB_PKT_TYPE_RSHIFT,
	R_SKB_PKT_TYPE_OFF, R_TASK_EXISTS, R_TASK_SIZE, R_TASK_ID, R_RINGBUF_VALUE,
	R_LOOKUP_VALUE, R_RINGBUF_EXISTS, R_XDP_MD_SIZE, R_COMM3_OFF,
	R_PID_T_SIZE, R_PID_T_EXISTS,
	R_COUNT,
};

__u64 results[R_COUNT];

SEC("xdp")
int core_vmlinux(struct xdp_md *ctx)
{
	struct task_struct *t = 0;
	struct sk_buff *skb = 0;

	results[R_PID_OFF] = bpf_core_field_offset(t->pid);
	results[R_TGID_OFF] = bpf_core_field_offset(t->tgid);
	results[R_COMM_OFF] = bpf_core_field_offset(t->comm);
	results[R_COMM_SIZE] = bpf_core_field_size(t->comm);
	results[R_MM_OFF] = bpf_core_field_offset(t->mm);
	results[R_MM_SIZE] = bpf_core_field_size(t->mm);
	results[R_PARENT_OFF] = bpf_core_field_offset(t->real_parent);
	results[R_FLAGS_SIZE] = bpf_core_field_size(t->flags);
	results[R_PID_EXISTS] = bpf_core_field_exists(t->pid);
	results[R_PID_SIGNED] = __builtin_preserve_field_info(t->pid, BPF_FIELD_SIGNED);
	results[R_FLAGS_SIGNED] = __builtin_preserve_field_info(t->flags, BPF_FIELD_SIGNED);
	results[R_SKB_LEN_OFF] = bpf_core_field_offset(skb->len);
	results[R_SKB_PKT_TYPE_SIZE] = bpf_core_field_size(skb->pkt_type);
	results[R_SKB_PKT_TYPE_LSHIFT] = __builtin_preserve_field_info(skb->pkt_type, BPF_FIELD_LSHIFT_U64);
	results[R_SKB_PKT_TYPE_RSHIFT] = __builtin_preserve_field_info(skb->pkt_type, BPF_FIELD_RSHIFT_U64);
	results[R_SKB_PKT_TYPE_OFF] = __builtin_preserve_field_info(skb->pkt_type, BPF_FIELD_BYTE_OFFSET);
	results[R_TASK_EXISTS] = bpf_core_type_exists(struct task_struct);
	results[R_TASK_SIZE] = bpf_core_type_size(struct task_struct);
	results[R_TASK_ID] = bpf_core_type_id_kernel(struct task_struct);
	results[R_RINGBUF_VALUE] = bpf_core_enum_value(enum bpf_map_type, BPF_MAP_TYPE_RINGBUF);
	results[R_LOOKUP_VALUE] = bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_map_lookup_elem);
	results[R_RINGBUF_EXISTS] = bpf_core_enum_value_exists(enum bpf_map_type, BPF_MAP_TYPE_RINGBUF);
	results[R_XDP_MD_SIZE] = bpf_core_type_size(struct xdp_md);
	results[R_COMM3_OFF] = bpf_core_field_offset(t->comm[3]);
	results[R_PID_T_SIZE] = bpf_core_type_size(pid_t);
	results[R_PID_T_EXISTS] = bpf_core_type_exists(pid_t);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
