// Maps whose keys and values use every kind of BTF type a map can hold, for comparing
// pybpf's formatting of map contents with `bpftool map dump -j`.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

enum dcolour { D_RED, D_GREEN = 5, D_BLUE = -3 };
enum dwide : unsigned long long { D_SMALL = 1, D_HUGE = 0xfedcba9876543210ULL };

struct dbits {
	unsigned int a : 3;
	unsigned int b : 13;
	int c : 7;
	unsigned char d;
	unsigned long long e : 33;
};

union deither {
	__u32 word;
	__u8 bytes[4];
	struct dbits b;
};

struct dkey {
	__u32 id;
	char tag[4];
};

struct dvalue {
	__s8 s8;
	__u8 u8;
	__s16 s16;
	__u16 u16;
	__s32 s32;
	__u32 u32;
	__s64 s64;
	__u64 u64;
	bool flag;
	char c;
	char name[12];
	unsigned char raw[3];
	__u32 matrix[2][3];
	enum dcolour colour;
	enum dwide wide;
	union deither u;
	struct dbits bits;
	void *ptr;
	int *iptr;
	unsigned __int128 huge;
	struct {
		int x, y;
	} anon;
};

struct dsmall {
	__u64 n;
	char s[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct dkey);
	__type(value, struct dvalue);
} kinds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct dsmall);
} per_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __s64);
} plain SEC(".maps");

SEC("xdp")
int touch(struct xdp_md *ctx)
{
	struct dkey k = {};
	__u32 i = 0;

	return bpf_map_lookup_elem(&kinds, &k) || bpf_map_lookup_elem(&per_cpu, &i) ||
			       bpf_map_lookup_elem(&plain, &i)
		       ? XDP_PASS
		       : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
