// A struct_ops object (as schedulers, congestion controls and qdiscs are written) whose kernel
// struct does not exist on this kernel: libbpf refuses it before loading anything, and so must
// pybpf, with an error that names the struct.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct pybpf_absent_ops {
	int (*init)(void);
	char name[16];
};

SEC("struct_ops/absent_init")
int absent_init(unsigned long long *ctx)
{
	return 0;
}

SEC(".struct_ops")
struct pybpf_absent_ops absent_ops = {
	.init = (void *)absent_init,
	.name = "absent",
};

char LICENSE[] SEC("license") = "GPL";
