// A USDT program built as against libbpf 1.7's usdt.bpf.h, whose argument specs can say
// "base + index * scale + offset" (SIB operands); Debian's libbpf 1.1 header predates them.
// The spec layout is 1.7's (declared here as that header declares it), and the reading of each
// argument is written here the way 1.7's bpf_usdt_arg() reads it. tests/targets/sib.c's probe
// passes three arguments; the program sends them to user space.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

enum __bpf_usdt_arg_type {
	BPF_USDT_ARG_CONST,
	BPF_USDT_ARG_REG,
	BPF_USDT_ARG_REG_DEREF,
	BPF_USDT_ARG_SIB,
};

struct __bpf_usdt_arg_spec {
	__u64 val_off;
	enum __bpf_usdt_arg_type arg_type : 8;
	__u16 idx_reg_off : 12;
	__u16 scale_bitshift : 4;
	__u8 __reserved : 8;
	short reg_off;
	bool arg_signed;
	char arg_bitshift;
};

struct __bpf_usdt_spec {
	struct __bpf_usdt_arg_spec args[12];
	__u64 usdt_cookie;
	short arg_cnt;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, int);
	__type(value, struct __bpf_usdt_spec);
} __bpf_usdt_specs SEC(".maps");

struct sib_event {
	__s64 value[3];
	__u32 arg_type[3];
	__u32 arg_cnt;
};

const struct sib_event *unused __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} sib_events SEC(".maps");

static __always_inline long read_arg(struct pt_regs *ctx, struct __bpf_usdt_arg_spec *arg)
{
	unsigned long val = 0, idx = 0;

	switch (arg->arg_type) {
	case BPF_USDT_ARG_CONST:
		val = arg->val_off;
		break;
	case BPF_USDT_ARG_REG:
		bpf_probe_read_kernel(&val, sizeof(val), (void *)ctx + arg->reg_off);
		break;
	case BPF_USDT_ARG_REG_DEREF:
		bpf_probe_read_kernel(&val, sizeof(val), (void *)ctx + arg->reg_off);
		bpf_probe_read_user(&val, sizeof(val), (void *)(val + arg->val_off));
		break;
	case BPF_USDT_ARG_SIB:
		bpf_probe_read_kernel(&val, sizeof(val), (void *)ctx + arg->reg_off);
		bpf_probe_read_kernel(&idx, sizeof(idx), (void *)ctx + arg->idx_reg_off);
		bpf_probe_read_user(&val, sizeof(val),
				    (void *)(val + (idx << arg->scale_bitshift) + arg->val_off));
		break;
	}
	// keep the argument's own size: shift its bits to the top, then back, with its sign
	val <<= arg->arg_bitshift;
	if (arg->arg_signed)
		return ((long)val) >> arg->arg_bitshift;
	return val >> arg->arg_bitshift;
}

SEC("usdt")
int sib_probe(struct pt_regs *ctx)
{
	int id = bpf_get_attach_cookie(ctx);
	struct __bpf_usdt_spec *spec = bpf_map_lookup_elem(&__bpf_usdt_specs, &id);
	struct sib_event *e;

	if (!spec)
		return 0;
	e = bpf_ringbuf_reserve(&sib_events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->arg_cnt = spec->arg_cnt;
	for (int n = 0; n < 3; n++) {
		e->value[n] = read_arg(ctx, &spec->args[n]);
		e->arg_type[n] = spec->args[n].arg_type;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}
