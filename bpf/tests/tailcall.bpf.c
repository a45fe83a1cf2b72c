// Tail calls through a prog array initialised in the object (.values = { [1] = &prog }).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_target(struct xdp_md *ctx)
{
	return XDP_DROP;   /* reached only through the tail call */
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} jump_table SEC(".maps") = {
	.values = { [1] = (void *)&xdp_target },
};

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jump_table, 1);
	return XDP_PASS;   /* the tail call failed */
}

char LICENSE[] SEC("license") = "GPL";
