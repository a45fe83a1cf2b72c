// cgroup programs, one per kind, each with an effect a test can see from user space.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// connect4: a connect() to rewrite_from_port goes to rewrite_ip:rewrite_port instead.
const volatile __u16 rewrite_from_port = 0; // host order
const volatile __u32 rewrite_ip = 0;        // network order
const volatile __u16 rewrite_port = 0;      // host order
// sock_create: the mark every new socket gets.
const volatile __u32 sock_mark = 0;
// device: the character device (major:minor) no one in the cgroup may create or open.
const volatile __u32 deny_major = 0;
const volatile __u32 deny_minor = 0;

// Counters, read by the tests: [0] connect4 rewrites, [1] egress packets, [2] egress bytes,
// [3] sysctl writes denied, [4] sysctl reads, [5] devices denied, [6] setsockopt denied,
// [7] getsockopt rewritten.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

// sock_ops: how many times each callback ran, by op (BPF_SOCK_OPS_*).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} sockops_ops SEC(".maps");

static void bump(__u32 key, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &key);

	if (v)
		__sync_fetch_and_add(v, by);
}

SEC("cgroup/connect4")
int connect4_rewrite(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port == bpf_htons(rewrite_from_port)) {
		ctx->user_ip4 = rewrite_ip;
		ctx->user_port = bpf_htons(rewrite_port);
		bump(0, 1);
	}
	return 1;
}

SEC("cgroup_skb/egress")
int skb_egress_count(struct __sk_buff *skb)
{
	bump(1, 1);
	bump(2, skb->len);
	return 1;
}

SEC("cgroup/sock_create")
int sock_create_mark(struct bpf_sock *sk)
{
	sk->mark = sock_mark;
	return 1;
}

SEC("cgroup/sysctl")
int sysctl_deny_write(struct bpf_sysctl *ctx)
{
	if (ctx->write) {
		bump(3, 1);
		return 0; // EPERM for the writer
	}
	bump(4, 1);
	return 1;
}

#ifndef BPF_DEVCG_DEV_CHAR
#define BPF_DEVCG_DEV_CHAR 2 // an anonymous enum of the uapi: not in vmlinux.h
#endif

SEC("cgroup/dev")
int dev_deny(struct bpf_cgroup_dev_ctx *ctx)
{
	__u32 type = ctx->access_type & 0xFFFF;

	if (type == BPF_DEVCG_DEV_CHAR && ctx->major == deny_major && ctx->minor == deny_minor) {
		bump(5, 1);
		return 0;
	}
	return 1;
}

#define SOL_IP 0
#define IP_TOS 1

// setsockopt(IP_TOS) with a value of 0xfc is refused (EPERM); any other value passes.
SEC("cgroup/setsockopt")
int setsockopt_deny(struct bpf_sockopt *ctx)
{
	__u8 *val = ctx->optval;

	if (ctx->level == SOL_IP && ctx->optname == IP_TOS) {
		if (val + 1 > (__u8 *)ctx->optval_end)
			return 1;
		if (*val == 0xfc) {
			bump(6, 1);
			return 0;
		}
	}
	return 1;
}

// getsockopt(IP_TOS) answers 0x28 whatever the socket holds.
SEC("cgroup/getsockopt")
int getsockopt_rewrite(struct bpf_sockopt *ctx)
{
	__u8 *val = ctx->optval;

	if (ctx->level == SOL_IP && ctx->optname == IP_TOS) {
		if (val + 1 > (__u8 *)ctx->optval_end)
			return 1;
		*val = 0x28;
		ctx->optlen = 1;
		ctx->retval = 0;
		bump(7, 1);
	}
	return 1;
}

SEC("sockops")
int sockops_count(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;
	__u64 *v;

	if (op < 32) {
		v = bpf_map_lookup_elem(&sockops_ops, &op);
		if (v)
			__sync_fetch_and_add(v, 1);
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
