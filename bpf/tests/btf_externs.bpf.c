// .kconfig and .ksyms externs: DATASECs with no ELF section, laid out by the loader.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern unsigned long long CONFIG_HZ __kconfig __weak;
extern char CONFIG_LOCALVERSION[16] __kconfig __weak;
extern const int bpf_prog_active __ksym;
struct task_struct;
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;

__u64 seen;

SEC("xdp")
int externs_prog(struct xdp_md *ctx)
{
	seen = LINUX_KERNEL_VERSION + CONFIG_BPF_SYSCALL + CONFIG_HZ + CONFIG_LOCALVERSION[0] +
	       (__u64)&bpf_prog_active;
	if (ctx->rx_queue_index == 12345) // a kfunc, so .ksyms holds a FUNC too
		bpf_task_acquire(0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
