// A device map pinned by name, as XDP redirect tools share their port maps between loads
// (`__uint(pinning, LIBBPF_PIN_BY_NAME)`). The kernel adds BPF_F_RDONLY_PROG to every devmap's
// flags, so the pinned map reports flags the object never asked for; reusing it must still work.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rw_pin_devmap SEC(".maps");

SEC("xdp")
int xdp_pinned_redirect(struct xdp_md *ctx)
{
	return bpf_redirect_map(&rw_pin_devmap, ctx->rx_queue_index & 7, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
