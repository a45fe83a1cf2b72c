// Rejected by the verifier on purpose: reads a packet byte without checking data_end first.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* A map and global data, so a test can check that a failed load closes what it created. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

__u64 hits = 0;

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	__u32 k = 0;

	bpf_map_lookup_elem(&seen, &k);
	hits++;

	return data[14] == 0x45 ? XDP_PASS : XDP_DROP;   /* no bounds check: invalid access */
}

char LICENSE[] SEC("license") = "GPL";
