// One map of every common type, defined in .maps through BTF, used by one program.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8);
	 __type(key, __u32); __type(value, __u64); } m_array SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
	 __type(key, __u32); __type(value, __u64); } m_hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 2);
	 __type(key, __u32); __type(value, __u64); } m_percpu_array SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 16);
	 __type(key, __u32); __type(value, __u64); } m_percpu_hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 16);
	 __type(key, __u64); __type(value, __u32); } m_lru_hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, __u32); __type(value, __u32); } m_hash_noprealloc SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } m_ringbuf SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, sizeof(__u32));
	 __uint(value_size, sizeof(__u32)); } m_perf SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 4);
	 __uint(key_size, sizeof(__u32)); __uint(value_size, sizeof(__u32)); } m_progs SEC(".maps");

struct inner_array { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
	 __type(key, __u32); __type(value, __u32); } m_inner_a SEC(".maps"), m_inner_b SEC(".maps");

struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 2); __type(key, __u32);
	 __array(values, struct inner_array); } m_array_of_maps SEC(".maps") = {
	.values = { [0] = &m_inner_a, [1] = &m_inner_b },
};
struct { __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS); __uint(max_entries, 4); __type(key, __u32);
	 __array(values, struct inner_array); } m_hash_of_maps SEC(".maps");

SEC("xdp")
int xdp_maps(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 one = 1, *v;
	__u64 key64 = 7;
	__u32 val32 = 9;
	void *inner;

	v = bpf_map_lookup_elem(&m_array, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	bpf_map_update_elem(&m_hash, &k, &one, BPF_ANY);
	v = bpf_map_lookup_elem(&m_percpu_array, &k);
	if (v)
		*v += 1;
	bpf_map_update_elem(&m_percpu_hash, &k, &one, BPF_ANY);
	bpf_map_update_elem(&m_lru_hash, &key64, &val32, BPF_ANY);
	bpf_map_update_elem(&m_hash_noprealloc, &k, &val32, BPF_ANY);
	bpf_ringbuf_output(&m_ringbuf, &one, sizeof(one), 0);
	bpf_perf_event_output(ctx, &m_perf, BPF_F_CURRENT_CPU, &one, sizeof(one));
	inner = bpf_map_lookup_elem(&m_array_of_maps, &k);
	if (inner) {
		__u32 *iv = bpf_map_lookup_elem(inner, &k);
		if (iv)
			*iv = 42;
	}
	inner = bpf_map_lookup_elem(&m_hash_of_maps, &k);
	if (inner)
		bpf_map_lookup_elem(inner, &k);
	bpf_tail_call(ctx, &m_progs, 3);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
