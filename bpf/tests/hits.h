/* What the attach test programs share: they count the calls of one process (target_tgid, set
 * in .rodata before load) in an array `hits` indexed by the including file's `enum hit`, which
 * must be declared first and end with HIT_MAX. */
#ifndef PYBPF_TESTS_HITS_H
#define PYBPF_TESTS_HITS_H

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HIT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline void hit(__u32 what, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &what);

	if (v)
		__sync_fetch_and_add(v, n);
}

#endif
