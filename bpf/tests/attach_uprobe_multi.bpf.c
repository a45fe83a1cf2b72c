// uprobe.multi and uretprobe.multi (6.6+): one link each on every function of
// tests/targets/uprobed.c matching a glob; each call sent to user space with its arguments (or
// its return value) and the bpf cookie of the function it came from.
#ifndef __TARGET_ARCH_x86
#define __TARGET_ARCH_x86
#endif
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct call {
	__u64 cookie;
	__s32 a;
	__s32 b;
	__s32 ret;
	__u32 exit;
};

const struct call *unused __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024);
} calls SEC(".maps");

static __always_inline void send(struct pt_regs *ctx, __u32 exit)
{
	struct call *c = bpf_ringbuf_reserve(&calls, sizeof(*c), 0);

	if (!c)
		return;
	c->cookie = bpf_get_attach_cookie(ctx);
	c->exit = exit;
	c->a = exit ? 0 : (__s32)PT_REGS_PARM1(ctx);
	c->b = exit ? 0 : (__s32)PT_REGS_PARM2(ctx);
	c->ret = exit ? (__s32)PT_REGS_RC(ctx) : 0;
	bpf_ringbuf_submit(c, 0);
}

SEC("uprobe.multi")
int uprobed_entry(struct pt_regs *ctx)
{
	send(ctx, 0);
	return 0;
}

SEC("uretprobe.multi")
int uprobed_exit(struct pt_regs *ctx)
{
	send(ctx, 1);
	return 0;
}
