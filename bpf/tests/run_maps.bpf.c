// What `pybpf run` prints at the end for maps of every kind, and how it decodes records no
// struct of the object describes. On getppid() by the process `targ_tgid` names, it:
// - counts the call in a hash map and in an array whose value holds an enum (the other indexes
//   stay zero: their enum reads as its name, ST_IDLE, which is not what makes them zero);
// - stores 42 in the inner map of an array of maps (index 0), and pushes the count onto a
//   queue, a stack and a bloom filter, whose elements user space cannot list; the task, socket,
//   inode and cgroup storage maps, the cgroup array and the XSK map are declared only;
// - sends a ring buffer record of exactly sizeof(struct trace_event_raw_sys_enter) bytes:
//   the kernel type of its own context, which CO-RE brought into the BTF, and no struct of the
//   object has that size. Its bytes are a struct text_msg (a length, then text in a flexible array).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

enum slot_state { ST_IDLE, ST_RUNNING };

struct slot {
	enum slot_state state;
	__u32 calls;
};

struct text_msg {
	__u32 len;
	char text[];
};

#define RECORD_SIZE sizeof(struct trace_event_raw_sys_enter)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct slot);
} slots SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [1] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 4);
	__type(value, __u32);
} queue SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, 4);
	__type(value, __u32);
} stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 4);
	__type(value, __u32);
} bloom SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} task_store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} sk_store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_INODE_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} inode_store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} cgrp_store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

const volatile int targ_tgid = 0;
char record[RECORD_SIZE];

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(struct trace_event_raw_sys_enter *ctx)
{
	__u32 key = 1, zero = 0, value = 42;
	struct text_msg *m = (struct text_msg *)record;
	struct slot *s;
	__u64 one = 1, *n;
	void *inner;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_tgid || BPF_CORE_READ(ctx, id) < 0)
		return 0;
	n = bpf_map_lookup_elem(&calls, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &zero, &one, BPF_ANY);
	s = bpf_map_lookup_elem(&slots, &key);
	if (s) {
		s->state = ST_RUNNING;
		s->calls++;
		value = s->calls;
	}
	inner = bpf_map_lookup_elem(&outer, &zero);
	if (inner)
		bpf_map_update_elem(inner, &zero, &(__u32){ 42 }, BPF_ANY);
	bpf_map_push_elem(&queue, &value, BPF_EXIST);
	bpf_map_push_elem(&stack, &value, BPF_EXIST);
	bpf_map_push_elem(&bloom, &value, 0);
	m->len = 5;
	__builtin_memcpy(m->text, "pybpf", 6);
	bpf_ringbuf_output(&rb, record, RECORD_SIZE, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
