// The cgroup sock_addr hooks beyond connect4, one program each, each with an effect a process
// in the cgroup sees: a connect or a datagram sent to from_port goes to to_port, a bind to
// deny_port is refused (EPERM), the source of a datagram from from_port and the addresses
// getpeername/getsockname return show fake_port instead of the real one. Ports in host order.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u16 from_port = 0;
const volatile __u16 to_port = 0;
const volatile __u16 deny_port = 0;
const volatile __u16 fake_port = 0;

// Rewrites made (or binds refused), read by the tests.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline int swap_port(struct bpf_sock_addr *ctx, __u16 from, __u16 to)
{
	__u32 key = 0;
	__u64 *n;

	if (ctx->user_port == bpf_htons(from)) {
		ctx->user_port = bpf_htons(to);
		n = bpf_map_lookup_elem(&hits, &key);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return 1;
}

static __always_inline int deny_bind(struct bpf_sock_addr *ctx)
{
	__u32 key = 0;
	__u64 *n;

	if (ctx->user_port != bpf_htons(deny_port))
		return 1;
	n = bpf_map_lookup_elem(&hits, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0; // EPERM for the caller
}

SEC("cgroup/connect6")
int connect6_redirect(struct bpf_sock_addr *ctx) { return swap_port(ctx, from_port, to_port); }

SEC("cgroup/bind4")
int bind4_deny(struct bpf_sock_addr *ctx) { return deny_bind(ctx); }

SEC("cgroup/bind6")
int bind6_deny(struct bpf_sock_addr *ctx) { return deny_bind(ctx); }

SEC("cgroup/sendmsg4")
int sendmsg4_redirect(struct bpf_sock_addr *ctx) { return swap_port(ctx, from_port, to_port); }

SEC("cgroup/sendmsg6")
int sendmsg6_redirect(struct bpf_sock_addr *ctx) { return swap_port(ctx, from_port, to_port); }

SEC("cgroup/recvmsg4")
int recvmsg4_disguise(struct bpf_sock_addr *ctx) { return swap_port(ctx, from_port, fake_port); }

SEC("cgroup/recvmsg6")
int recvmsg6_disguise(struct bpf_sock_addr *ctx) { return swap_port(ctx, from_port, fake_port); }

SEC("cgroup/getpeername4")
int getpeername4_disguise(struct bpf_sock_addr *ctx) { return swap_port(ctx, to_port, fake_port); }

SEC("cgroup/getpeername6")
int getpeername6_disguise(struct bpf_sock_addr *ctx) { return swap_port(ctx, to_port, fake_port); }

SEC("cgroup/getsockname4")
int getsockname4_disguise(struct bpf_sock_addr *ctx) { return swap_port(ctx, from_port, fake_port); }

SEC("cgroup/getsockname6")
int getsockname6_disguise(struct bpf_sock_addr *ctx) { return swap_port(ctx, from_port, fake_port); }
