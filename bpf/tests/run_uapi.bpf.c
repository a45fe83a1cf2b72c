// An XDP program built on the kernel's UAPI headers rather than vmlinux.h, as the xdp-tutorial
// and many tc/XDP tools are: its DWARF declares struct ethhdr and struct iphdr (<linux/*.h>)
// beside its own ring buffer event, struct flow, which has iphdr's size (20 bytes). `pybpf run`
// decodes the records as struct flow: a header's struct is no program's own event.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct flow {
	__u32 saddr;
	__u32 daddr;
	__u16 len;
	__u16 proto;
	__u32 ifindex;
	__u32 queue;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} rb SEC(".maps");

SEC("xdp")
int xdp_flows(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct flow *e;

	if ((void *)(ip + 1) > data_end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return XDP_PASS;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return XDP_PASS;
	e->saddr = ip->saddr;
	e->daddr = ip->daddr;
	e->len = data_end - data;
	e->proto = ip->protocol;
	e->ifindex = ctx->ingress_ifindex;
	e->queue = ctx->rx_queue_index;
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}
