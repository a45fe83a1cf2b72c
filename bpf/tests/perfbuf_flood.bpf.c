// Perf buffer samples on demand, for the perf buffer reader's tests: each run of the XDP
// program (BPF_PROG_TEST_RUN) sends one sample whose size cycles through a few values, so that
// records wrap around the end of a small ring; the sample starts with a sequence number.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define SCRATCH 512

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[SCRATCH]);
} scratch SEC(".maps");

const volatile __u32 base_size = 20; // bytes of the first sample
const volatile __u32 size_step = 12; // each next sample is this much longer, 4 sizes in turn
__u64 seq;
__u64 failed; // samples bpf_perf_event_output refused (no reader on that CPU)

SEC("xdp")
int flood(struct xdp_md *ctx)
{
	__u32 key = 0, size;
	__u64 n = __sync_fetch_and_add(&seq, 1);
	__u8 *buf = bpf_map_lookup_elem(&scratch, &key);

	if (!buf)
		return XDP_PASS;
	size = (base_size + (n & 3) * size_step) & (SCRATCH - 1);
	if (size < 8)
		size = 8;
	*(__u64 *)buf = n;
	for (int i = 8; i < 64; i++)
		buf[i] = (__u8)(n + i);
	if (bpf_perf_event_output(ctx, &samples, BPF_F_CURRENT_CPU, buf, size))
		__sync_fetch_and_add(&failed, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
