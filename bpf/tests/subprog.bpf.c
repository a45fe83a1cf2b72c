// bpf-to-bpf calls: static and global subprograms in .text, a call chain that checks the
// depth-first append order, a callback passed by address (bpf_loop), two programs sharing
// subprograms.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

static __noinline __u64 leaf(__u64 x)
{
	return x * 3 + 1;
}

static __noinline __u64 middle(__u64 x)
{
	return leaf(x) + 10;
}

__noinline int global_add(int a, int b)
{
	return a + b;
}

static __noinline __u64 other(__u64 x)
{
	return x ^ 0xff;
}

struct loop_ctx {
	__u64 sum;
};

static long add_index(__u64 index, void *data)
{
	struct loop_ctx *c = data;

	c->sum += index;
	return 0;
}

static __always_inline void store(__u32 slot, __u64 v)
{
	bpf_map_update_elem(&results, &slot, &v, BPF_ANY);
}

SEC("xdp")
int xdp_calls(struct xdp_md *ctx)
{
	struct loop_ctx c = { 0 };
	__u64 len = ctx->data_end - ctx->data;

	store(0, middle(len));            /* middle, then leaf (depth first), then ... */
	store(1, other(len));             /* ... other */
	store(2, global_add(len, 100));
	bpf_loop(10, add_index, &c, 0);   /* callback: ld_imm64 of a function's address */
	store(3, c.sum);
	return XDP_PASS;
}

SEC("xdp")
int xdp_calls_too(struct xdp_md *ctx)
{
	return other(1) == 0xfe ? XDP_PASS : XDP_DROP;   /* its own copy of other() */
}

char LICENSE[] SEC("license") = "GPL";
