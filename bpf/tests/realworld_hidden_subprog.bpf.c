// Global subprograms with hidden visibility, the way helper libraries shipped as headers write
// them (`__weak __hidden` in a header, so that every object including it links to one copy).
// Global linkage alone makes the verifier check a function once, on its own, with pointer
// arguments that may be NULL: `fill` writes through `res` without a NULL check and is refused
// that way. Hidden visibility means "private to this object", and a loader marks such functions
// static in the BTF it hands the kernel, so they are verified in their caller's context, where
// `res` points to the stack.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __hidden __attribute__((visibility("hidden")))

__weak __hidden __noinline int fill(struct xdp_md *ctx, __u32 which, long *res)
{
	*res = 0;
	if (which > 3)
		return -1;
	*res = ctx->ingress_ifindex + which;
	return 0;
}

__hidden __noinline int bump(long *v)
{
	*v += 1;
	return 0;
}

SEC("xdp")
int xdp_hidden_subprog(struct xdp_md *ctx)
{
	long v;

	if (fill(ctx, 2, &v))
		return XDP_ABORTED;
	bump(&v);
	return v ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
