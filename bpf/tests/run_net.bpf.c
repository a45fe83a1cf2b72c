// libbpf-bootstrap's tc and sockfilter shapes for `pybpf run` on an interface: a tc classifier
// in SEC("tc") (no hook named: ingress) that says what it saw with bpf_printk, and a socket
// filter that sends one ring buffer event per IPv4 packet of one UDP port.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TC_ACT_OK 0
#define ETH_P_IP 0x0800
#define ETH_HLEN 14

char LICENSE[] SEC("license") = "GPL";

const volatile __u16 port = 0; // host order: only UDP packets to this port are reported

struct so_event {
	__be32 src_addr;
	__be32 dst_addr;
	__be16 src_port;
	__be16 dst_port;
	__u32 ip_proto;
	__u32 pkt_type;
	__u32 ifindex;
	__u32 len;
};

// Kept in the BTF: how `pybpf run` finds the layout of the events.
const struct so_event *unused __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tc_seen SEC(".maps");

static __always_inline struct udphdr *udp_of(void *data, void *data_end, struct iphdr **ip)
{
	struct iphdr *l3 = data + ETH_HLEN;
	struct udphdr *l4;

	if ((void *)(l3 + 1) > data_end || l3->protocol != IPPROTO_UDP || l3->ihl != 5)
		return NULL;
	l4 = (void *)(l3 + 1);
	if ((void *)(l4 + 1) > data_end || l4->dest != bpf_htons(port))
		return NULL;
	*ip = l3;
	return l4;
}

SEC("tc")
int tc_udp(struct __sk_buff *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct iphdr *ip;
	struct udphdr *udp;
	__u32 key = 0;
	__u64 *seen;

	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	udp = udp_of(data, data_end, &ip);
	if (!udp)
		return TC_ACT_OK;
	seen = bpf_map_lookup_elem(&tc_seen, &key);
	if (seen)
		__sync_fetch_and_add(seen, 1);
	bpf_printk("pybpf tc: UDP to %d: tot_len: %d, ttl: %d", port, bpf_ntohs(ip->tot_len), ip->ttl);
	return TC_ACT_OK;
}

SEC("socket")
int sock_udp(struct __sk_buff *skb)
{
	struct so_event *e;
	struct iphdr ip;
	struct udphdr udp;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) || ip.protocol != IPPROTO_UDP)
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, &udp, sizeof(udp)))
		return 0;
	if (udp.dest != bpf_htons(port))
		return 0;
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (!e)
		return 0;
	e->src_addr = ip.saddr;
	e->dst_addr = ip.daddr;
	e->src_port = udp.source;
	e->dst_port = udp.dest;
	e->ip_proto = ip.protocol;
	e->pkt_type = skb->pkt_type;
	e->ifindex = skb->ifindex;
	e->len = skb->len;
	bpf_ringbuf_submit(e, 0);
	return skb->len; // kept: the socket's queue fills unless its reader drains it
}
