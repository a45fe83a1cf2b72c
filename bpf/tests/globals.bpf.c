// Global data: .rodata constants set before load, .data and .bss counters, a custom
// .data.stats section, and bpf_printk (whose format string lands in .rodata.str1.1).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

volatile const __u32 cfg_verdict = XDP_PASS;   /* .rodata: set by user space before load */
volatile const __u64 cfg_magic = 0x1122334455667788ULL;
volatile const char cfg_name[8] = "default";

__u64 runs = 0;                                  /* .bss */
__u64 last_len = 7;                              /* .data */
__u32 seen_magic SEC(".data.stats") = 0;         /* custom data section */
__u64 name_sum SEC(".data.stats") = 0;

SEC("xdp")
int xdp_globals(struct xdp_md *ctx)
{
	__u64 sum = 0;

	runs++;
	last_len = ctx->data_end - ctx->data;
	if (cfg_magic == 0x1122334455667788ULL)
		seen_magic = 1;
	else
		seen_magic = 2;
	for (int i = 0; i < 8; i++)
		sum += cfg_name[i];
	name_sum = sum;
	if (runs == 0xffffffff)
		bpf_printk("runs wrapped, len %llu", last_len);
	return cfg_verdict;
}

char LICENSE[] SEC("license") = "GPL";
