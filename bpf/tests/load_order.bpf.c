// Three programs, the middle one rejected by the verifier: loading the object must fail on
// it alone, and leave neither of the others loaded (pybpf verifies programs side by side).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int lo_first(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int lo_rejected(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[14] == 0x45 ? XDP_PASS : XDP_DROP;   /* no bounds check: invalid access */
}

SEC("xdp")
int lo_last(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
