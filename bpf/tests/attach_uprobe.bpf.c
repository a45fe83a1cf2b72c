// uprobes, uretprobes, a sleepable uprobe and a USDT probe on tests/targets/probed.c, each
// sending what it saw to user space as one ring buffer record.
/* bpf_tracing.h reads arguments from struct pt_regs by architecture (the tests run on x86-64;
 * libbpf 1.1's BPF_KPROBE serves uprobes too). */
#ifndef __TARGET_ARCH_x86
#define __TARGET_ARCH_x86
#endif
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0; /* getpid() of libc: only this process */

enum kind { K_ADD = 1, K_ADD_RET, K_GREET, K_TICK, K_GETPID, K_PYIMPORT };

struct event {
	__u32 kind;
	__u32 pid;
	__s64 a, b, c, d;
	__u64 cookie;
	char word[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline struct event *start(enum kind kind)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (e) {
		__builtin_memset(e, 0, sizeof(*e));
		e->kind = kind;
		e->pid = bpf_get_current_pid_tgid() >> 32;
	}
	return e;
}

SEC("uprobe")
int BPF_KPROBE(up_add, int a, int b)
{
	struct event *e = start(K_ADD);

	if (!e)
		return 0;
	e->a = a;
	e->b = b;
	e->cookie = bpf_get_attach_cookie(ctx);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(up_add_ret, int ret)
{
	struct event *e = start(K_ADD_RET);

	if (!e)
		return 0;
	e->a = ret;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Sleepable: may fault the user's page in to copy the string. */
SEC("uprobe.s")
int BPF_KPROBE(up_greet, const char *who)
{
	struct event *e = start(K_GREET);

	if (!e)
		return 0;
	bpf_copy_from_user(e->word, sizeof(e->word) - 1, who);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("usdt")
int BPF_USDT(usdt_tick, int n, long big, short neg, int constant)
{
	struct event *e = start(K_TICK);

	if (!e)
		return 0;
	e->a = n;
	e->b = big;
	e->c = neg;
	e->d = constant;
	e->cookie = bpf_usdt_cookie(ctx);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("uprobe/libc.so.6:getpid")
int up_getpid(struct pt_regs *ctx)
{
	struct event *e;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	e = start(K_GETPID);
	if (e)
		bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Debian's python3 has USDT probes: python:import__find__load__start(modulename) */
SEC("usdt")
int BPF_USDT(usdt_python_import, const char *modulename)
{
	struct event *e = start(K_PYIMPORT);

	if (!e)
		return 0;
	bpf_probe_read_user_str(e->word, sizeof(e->word), modulename);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
