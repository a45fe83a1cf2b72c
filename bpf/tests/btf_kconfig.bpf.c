// .kconfig externs of every encoding libbpf knows, loadable as is (no .ksyms): the kconfig map
// libbpf fills for it is the reference for pybpf.kconfig.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h> // declares enum libbpf_tristate


extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;
extern char CONFIG_XDP_SOCKETS __kconfig __weak;
extern unsigned long long CONFIG_HZ __kconfig __weak;
extern int CONFIG_NR_CPUS __kconfig __weak;
extern char CONFIG_LOCALVERSION[16] __kconfig __weak;
extern int CONFIG_PYBPF_DOES_NOT_EXIST __kconfig __weak;

__u64 seen;

SEC("xdp")
int kconfig_prog(struct xdp_md *ctx)
{
	seen = LINUX_KERNEL_VERSION + CONFIG_BPF_SYSCALL + CONFIG_BPF_JIT + CONFIG_XDP_SOCKETS +
	       CONFIG_HZ + CONFIG_NR_CPUS + CONFIG_LOCALVERSION[0] + CONFIG_PYBPF_DOES_NOT_EXIST;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
