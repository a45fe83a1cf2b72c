// SPDX-License-Identifier: GPL-2.0
/*
 * tc programs for the attach tests and docs: count the frames of one experimental ethertype
 * (0x88b5, IEEE 802 "local experimental") that pass each hook, and decide nothing:
 * TC_ACT_UNSPEC, which is also TCX_NEXT, lets the next program or filter decide.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_EXPERIMENTAL 0x88B5

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline int count(struct __sk_buff *skb, __u32 slot)
{
	__u64 *n;

	if (skb->protocol != bpf_htons(ETH_P_EXPERIMENTAL))
		return TC_ACT_UNSPEC;
	n = bpf_map_lookup_elem(&hits, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
	return TC_ACT_UNSPEC;
}

SEC("tc/ingress")
int tc_count_in(struct __sk_buff *skb)
{
	return count(skb, 0);
}

SEC("tc/egress")
int tc_count_out(struct __sk_buff *skb)
{
	return count(skb, 1);
}
