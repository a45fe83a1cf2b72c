// Programs attached to a network namespace (sk_lookup, flow_dissector) and a netfilter hook.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// sk_lookup: connections to steer_port go to the socket in steer_map[0].
const volatile __u16 steer_port = 0; // host order

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} steer_map SEC(".maps");

// [0] sk_lookup steered, [1] flow dissector runs, [2] netfilter packets, [3] netfilter bytes
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} ns_counts SEC(".maps");

static void bump(__u32 key, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&ns_counts, &key);

	if (v)
		__sync_fetch_and_add(v, by);
}

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0;
	struct bpf_sock *sk;
	long err;

	if (ctx->local_port != steer_port)
		return SK_PASS;
	sk = bpf_map_lookup_elem(&steer_map, &zero);
	if (!sk)
		return SK_PASS;
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (!err)
		bump(0, 1);
	return SK_PASS;
}

// Counts every dissection in the namespace; leaves the parsing to the kernel's own dissector
// (BPF_FLOW_DISSECTOR_CONTINUE, 6.2+).
SEC("flow_dissector")
int dissect(struct __sk_buff *skb)
{
	bump(1, 1);
	return BPF_FLOW_DISSECTOR_CONTINUE;
}

// (attach_netns_nonf.bpf.c is this object without it, for kernels before 6.4)
#ifndef ATTACH_NETNS_NO_NETFILTER
#define NF_ACCEPT 1

SEC("netfilter")
int nf_count(struct bpf_nf_ctx *ctx)
{
	bump(2, 1);
	bump(3, ctx->skb->len);
	return NF_ACCEPT;
}
#endif

char LICENSE[] SEC("license") = "GPL";
