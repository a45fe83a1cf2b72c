// CO-RE relocations the running kernel cannot satisfy. The loader poisons each such instruction
// (as libbpf does) instead of failing the object: a program that reaches one is rejected by the
// verifier, and the loader names the relocation; a program that only has one in dead code loads.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

// The kernel's task_struct, with a field it does not have.
struct task_struct___missing {
	int no_such_field;
} __attribute__((preserve_access_index));

// A struct the kernel does not have at all.
struct no_such_struct___x {
	int a;
	int b;
} __attribute__((preserve_access_index));

__u64 out;

SEC("xdp")
int reads_missing_field(struct xdp_md *ctx)
{
	struct task_struct___missing *t = 0;

	out = bpf_core_field_offset(t->no_such_field); // always reached
	return XDP_PASS;
}

// In a subprogram: its instruction numbers in the program are not those of its section.
static __noinline __u64 second_member(void)
{
	struct no_such_struct___x *s = 0;

	return bpf_core_field_offset(s->b);
}

SEC("xdp")
int reads_missing_struct(struct xdp_md *ctx)
{
	out = second_member() + 1;
	return XDP_PASS;
}

SEC("xdp")
int guards_missing_field(struct xdp_md *ctx)
{
	struct task_struct___missing *t = 0;

	if (bpf_core_field_exists(t->no_such_field))
		out = bpf_core_field_offset(t->no_such_field); // dead: removed by the relocation above
	else
		out = 7;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
