// Programs for sockets: sk_msg and sk_skb on sockmaps, a socket filter.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

// sk_msg runs on sendmsg of the sockets in msg_map.
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} msg_map SEC(".maps");

// sk_skb runs on data received by the sockets in echo_map.
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} echo_map SEC(".maps");

// sk_skb/verdict runs on data received by the sockets in pass_map.
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} pass_map SEC(".maps");

// [0] sk_msg messages, [1] sk_msg bytes, [2] sk_skb stream verdicts, [3] socket filter kept,
// [4] socket filter dropped, [5] stream parser runs, [6] sk_skb verdicts, [7] their bytes.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} sock_counts SEC(".maps");

static void bump(__u32 key, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&sock_counts, &key);

	if (v)
		__sync_fetch_and_add(v, by);
}

SEC("sk_msg")
int msg_count(struct sk_msg_md *msg)
{
	bump(0, 1);
	bump(1, msg->size);
	return SK_PASS;
}

// What a socket in echo_map receives, it sends back out (slot 0 is the socket itself): an
// echo server with no user space reading.
SEC("sk_skb/stream_verdict")
int skb_echo(struct __sk_buff *skb)
{
	bump(2, 1);
	return bpf_sk_redirect_map(skb, &echo_map, 0, 0);
}

// A stream parser: each record is what has arrived so far (the kernel then asks the verdict).
SEC("sk_skb/stream_parser")
int skb_parse(struct __sk_buff *skb)
{
	bump(5, 1);
	return skb->len;
}

// sk_skb/verdict (no parser, 5.13+): count, and pass everything on to the socket.
SEC("sk_skb/verdict")
int skb_pass(struct __sk_buff *skb)
{
	bump(6, 1);
	bump(7, skb->len);
	return SK_PASS;
}

// Keep datagrams with an even number of bytes, drop odd ones (UDP and IP headers are even, so
// the parity is the payload's).
SEC("socket")
int even_only(struct __sk_buff *skb)
{
	if (skb->len & 1) {
		bump(4, 1);
		return 0;
	}
	bump(3, 1);
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
