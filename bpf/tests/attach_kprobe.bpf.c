// kprobe, kretprobe and multi-kprobe programs on do_unlinkat, counting the calls of one process
// (target_tgid, set before load) in `hits`. Kernels without kprobes load them but cannot attach.
#ifndef __TARGET_ARCH_x86
#define __TARGET_ARCH_x86
#endif
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

enum hit { HIT_KPROBE, HIT_KRETPROBE, HIT_KRETPROBE_ERR, HIT_MULTI, HIT_MULTI_COOKIE, HIT_MAX };

#include "hits.h"

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(kprobe_unlinkat, int dfd)
{
	if (mine())
		hit(HIT_KPROBE, 1);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int BPF_KRETPROBE(kretprobe_unlinkat, int ret)
{
	if (mine()) {
		hit(HIT_KRETPROBE, 1);
		hit(HIT_KRETPROBE_ERR, -ret); /* sums the errnos returned */
	}
	return 0;
}

SEC("kprobe.multi/do_unlinka?")
int kprobe_multi_unlinkat(struct pt_regs *ctx)
{
	if (mine()) {
		hit(HIT_MULTI, 1);
		hit(HIT_MULTI_COOKIE, bpf_get_attach_cookie(ctx));
	}
	return 0;
}
