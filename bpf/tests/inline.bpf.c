// Calls the loader may put a spliced body in place of (pybpf.object.inline), and two it may not.
// pick() is called from an asm statement that says it changes r6-r9, so nothing is kept in them
// across the call; kept() by a plain C call, with the frame's length kept in r6-r9 across it;
// first() calls pick() as its first instruction, where the function's own records begin.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

/* Stubs whose bodies the tests replace. `used`: clang sees no C call of pick(). */
static __noinline __attribute__((used)) __u64 pick(__u64 a, __u64 b)
{
	return a + b;
}

static __noinline __u64 kept(__u64 a, __u64 b)
{
	return a - b;
}

static __always_inline __u64 call_pick(__u64 a, __u64 b)
{
	register __u64 r0 asm("r0");
	register __u64 r1 asm("r1") = a;
	register __u64 r2 asm("r2") = b;

	asm volatile("call pick"
		     : "=r"(r0), "+r"(r1), "+r"(r2)
		     :
		     : "r3", "r4", "r5", "r6", "r7", "r8", "r9", "memory");
	return r0;
}

static __noinline __u64 first(__u64 a, __u64 b)
{
	return call_pick(a, b) + 5;
}

static __always_inline void store(__u32 key, __u64 value)
{
	__u64 *slot = bpf_map_lookup_elem(&results, &key);

	if (slot)
		*slot = value;
}

SEC("xdp")
int xdp_inline(struct xdp_md *ctx)
{
	__u64 len = ctx->data_end - ctx->data;
	__u64 a, b;

	a = call_pick(len, 1);
	if (len > 100) /* a jump over the second call */
		b = 7;
	else
		b = call_pick(len, 2);
	store(0, a);
	store(1, b);
	store(2, kept(len, 3) + len);
	store(3, first(len, a));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
