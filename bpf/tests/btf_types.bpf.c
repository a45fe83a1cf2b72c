// Every BTF kind clang emits for BPF, for the BTF reader's tests (compared against bpftool).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef unsigned long long u64_t;
typedef int (*callback_t)(void *ctx, long n);

enum colour { RED, GREEN = 5, BLUE = -3 };
enum big : unsigned long long { SMALL = 1, HUGE = 0xfedcba9876543210ULL };
enum flags8 : unsigned char { F_ONE = 1, F_TWO = 2 };

struct bits {
	unsigned int a : 3;
	unsigned int b : 13;
	int c : 7;
	unsigned char d;
	unsigned long long e : 33;
};

union either {
	__u32 word;
	__u8 bytes[4];
	struct bits b;
};

struct __attribute__((packed)) packed {
	__u8 tag;
	__u32 value;
};

struct fwd_only;

struct event {
	u64_t ts;
	const volatile char comm[16];
	__u32 matrix[2][3];
	enum colour colour;
	enum big big;
	enum flags8 f8;
	union either u;
	struct packed p;
	struct fwd_only *opaque;
	callback_t cb;
	int *restrict rp;
	float ratio;
	double precise;
	struct {
		int x, y;
	} anon;
	int __attribute__((btf_decl_tag("tagged_member"))) tagged;
	int *__attribute__((btf_type_tag("user"))) user_ptr;
};

struct event last_event = {};
volatile const __u32 threshold = 7;
static volatile __u64 counter;
__u32 histogram[8] SEC(".data.hist");
char big_buffer[64];

static __noinline int helper(struct event *e, int n)
{
	return e->colour + n;
}

int __attribute__((btf_decl_tag("global_func"))) global_helper(struct event *e)
{
	return e->tagged + (int)e->big;
}

SEC("xdp")
int types_prog(struct xdp_md *ctx)
{
	struct event *e = &last_event;
	counter++;
	histogram[ctx->rx_queue_index & 7]++;
	big_buffer[0] = 1;
	return helper(e, threshold) + global_helper(e) > 100 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
