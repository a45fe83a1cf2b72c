// Maps pinned by name (`__uint(pinning, LIBBPF_PIN_BY_NAME)`) whose pinned shape is not the one
// written in the source: a perf event array sized by the loader (one slot per CPU), an array
// programs may only read (BPF_F_RDONLY_PROG), a bloom filter with its hash count (map_extra).
// A second load must reuse each, as libbpf does. A program the verifier rejects shows what a
// failed load leaves pinned.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pin_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
	__uint(map_flags, BPF_F_RDONLY_PROG);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pin_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 64);
	__type(value, __u32);
	__uint(map_extra, 3);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pin_seen SEC(".maps");

SEC("xdp")
int pin_ok(struct xdp_md *ctx)
{
	__u32 key = 0, port = 80;
	__u64 *limit = bpf_map_lookup_elem(&pin_config, &key);

	if (limit && *limit && bpf_map_peek_elem(&pin_seen, &port) == 0)
		bpf_perf_event_output(ctx, &pin_events, BPF_F_CURRENT_CPU, &port, sizeof(port));
	return XDP_PASS;
}

SEC("xdp")
int pin_rejected(struct xdp_md *ctx)
{
	return *(__u8 *)(long)ctx->data; // no bounds check: the verifier refuses it
}

char LICENSE[] SEC("license") = "GPL";
