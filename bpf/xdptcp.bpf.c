// SPDX-License-Identifier: GPL-2.0
/*
 * xdptcp: observe TCP in both directions. Two programs share everything below: the XDP program
 * sees every frame that arrives (the earliest point of ingress), the tc classifier every frame
 * that leaves (the tc egress hook, before the device and before tcpdump's taps). Every frame is
 * parsed; each TCP frame the in-kernel filter accepts becomes one fixed-size record in the one
 * ring buffer, counted in the one counters map, marked with its direction. Neither program ever
 * drops: XDP returns XDP_PASS, the classifier TC_ACT_UNSPEC (= TCX_NEXT: the next program or
 * filter decides).
 *
 * What counts as a TCP frame: Ethernet, up to XDPTCP_MAX_VLANS 802.1Q/802.1ad tags, IPv4 (IHL
 * 5..15) or IPv6 (fixed header, then at most XDPTCP_MAX_EXTHDRS of hop-by-hop, routing,
 * destination options and fragment headers with offset 0), then a TCP header with doff 5..15
 * that lies entirely inside the frame. A later fragment of a TCP packet (IPv4 protocol 6 with
 * a non-zero offset; IPv6 whose first extension header is a fragment header with a non-zero
 * offset and TCP next) is a TCP frame without a TCP header, as libpcap's `tcp` and so `tcpdump
 * tcp` take it: its headers are its IP header's. So is a frame whose headers this program
 * cannot walk, cut short by the end of the frame itself or malformed (a version nibble that
 * contradicts the EtherType, IPv4 IHL < 5, TCP doff < 5), when libpcap's `tcp` selects it
 * (the IPv4 protocol byte, the IPv6 next header or the one in a fragment header right after
 * the fixed header, says TCP): the record holds what the program can read of the frame, as
 * far as the capacity goes, for user space to print as tcpdump does (`[|tcp]`, `IP bad-hlen
 * 16`...). On a multi-buffer frame whose first buffer ends in its headers, that is the first
 * buffer (the tc program first pulls an skb's headers into its linear part): the record says so
 * (cap_len < wire_len), as a record never claims bytes that were not read.
 * IP length fields are not trusted; the frame's own length is what bounds every read.
 *
 * Headers are parsed where the program can read them directly: the linear part of the frame.
 * On ingress the section is "xdp.frags": a multi-buffer (jumbo) frame reaches the program, its
 * headers are in the first buffer, wire_len counts every buffer and bytes beyond the first are
 * copied with bpf_xdp_load_bytes(). On egress an skb whose headers are not all linear is pulled
 * (bpf_skb_pull_data) once, only then; a GSO/TSO super-packet is seen whole, before
 * segmentation, as tcpdump on a TSO-capable device shows it.
 *
 * Configuration is read from .rodata, set by user space before load. The verifier sees frozen
 * .rodata values as constants: the ring reservation size is a constant, and with no filter the
 * call of the filter is dead and removed at load time.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdptcp.h"

char LICENSE[] SEC("license") = "GPL";

/* 0: capture from the start of the frame to the end of the TCP header; N: N bytes of the frame. */
volatile const __u32 xdptcp_snaplen = 0;
/* Bytes of frame reserved in every record (1..XDPTCP_MAX_CAPACITY). */
volatile const __u32 xdptcp_capacity = XDPTCP_DEFAULT_CAPACITY;
volatile const __u32 xdptcp_wakeup_mode = XDPTCP_WAKEUP_DEFAULT;
volatile const __u32 xdptcp_wakeup_arg = 0;
/* 1: call xdptcp_filter() (xdptcp.h) on each frame; 0: no filter, the call is dead code at
 * load. */
volatile const __u32 xdptcp_filter_on = 0;
/* 1: the filter may read libpcap's `len` (`len`, `greater`, `less`), and the XDP program asks
 * every frame's whole length before the filter runs; 0: it does not, and the length is asked
 * only of a frame that may span buffers. */
volatile const __u32 xdptcp_filter_len = 1;
/* 1 when loaded with BPF_F_XDP_HAS_FRAGS (Linux 5.18): the multi-buffer helpers may be called.
 * 0 leaves them as dead code, so the object still loads where they do not exist. */
volatile const __u32 xdptcp_xdp_frags = 0;
/* enum xdptcp_out: also write each record's head as the output file wants it (xdptcp.h), so
 * that `-w` writes the ring's records with no work per packet in user space. */
volatile const __u32 xdptcp_out = XDPTCP_OUT_NONE;
/* 1: the file's timestamps are in nanoseconds; 0: microseconds. */
volatile const __u32 xdptcp_out_nano = 0;
/* Wall-clock time minus CLOCK_MONOTONIC (bpf_ktime_get_ns) in ns, measured by user space just
 * before load: the file's timestamps are the same wall-clock times user space would compute. */
volatile const __u64 xdptcp_clock_offset = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* 4 MiB by default; a loader may resize it before load (a power-of-two number of pages). */
	__uint(max_entries, 1 << 22);
} xdptcp_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdptcp_counters);
} xdptcp_counters SEC(".maps");

/* Names the record type in .rodata so its layout is in the object's BTF for tools and tests
 * (a type used only inside inlined code leaves no BTF behind). */
struct xdptcp_record *const xdptcp_record_type = 0;


/* The longest copy made with direct packet loads where the helper exists (see copy_frame). */
#define XDPTCP_DIRECT_COPY 256
#define ETH_P_8021AD_ 0x88A8
#define ETH_P_QINQ_9100 0x9100
#define IPV6_FRAG_OFFSET_MASK 0xfff8 /* fragment offset bits of frag_off, network order */
#define IPV4_FRAG_OFFSET_MASK 0x1fff

/* Why a frame is not a TCP frame: each reason is one counter. */
enum verdict {
	V_TCP = 0,
	V_NOT_IP,
	V_NOT_TCP,
	V_FRAGMENT,
	V_TRUNCATED,
	V_MALFORMED,
	V_VLAN_TOO_DEEP,
	V_EXT_TOO_DEEP,
	/* A later fragment of a TCP packet: libpcap's `tcp` selects it (it reads the protocol, not
	 * the offset), so it is captured as one, with no TCP header to read. Never counted as a
	 * reason: parse() makes it V_TCP. */
	V_LATER_FRAGMENT,
	/* A TCP frame whose headers were not walked (parse()): V_TCP to select_frame(), and to
	 * the tc program a reason to pull the skb's headers first. */
	V_UNWALKED,
};

/* What the parser learned. */
struct frame {
	__u32 l3_off;
	__u32 l4_off;
	__u32 l4_len;
	__u8 vlans;
	__u8 ip_version;
	__u8 tcp_flags;
	/* libpcap `port`: IPv4, or IPv6 whose fixed header says TCP */
	__u8 port_ok;
	/* libpcap `tcp`: IPv4, or IPv6 with TCP next, directly or after one fragment header */
	__u8 tcp_ok;
	__u16 sport;
	__u16 dport;
	__u16 vid[XDPTCP_MAX_VLANS];
};

static __always_inline int is_vlan_tpid(__u16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD_) ||
	       proto == bpf_htons(ETH_P_QINQ_9100);
}

/* One tag: a straight-line step, called twice, so no loop is needed for the VLAN stack. */
static __always_inline int pop_vlan(void *data, void *data_end, __u32 *off, __u16 *proto,
				    struct frame *f, int i)
{
	__u8 *tag = data + *off;

	if ((void *)(tag + 4) > data_end)
		return V_TRUNCATED;
	f->vid[i] = ((tag[0] << 8) | tag[1]) & 0x0fff;
	*proto = *(__u16 *)(tag + 2);
	*off += 4;
	f->vlans = i + 1;
	return V_TCP;
}

static __always_inline int parse_ipv4(void *data, void *data_end, struct frame *f)
{
	struct iphdr *ip = data + f->l3_off;
	__u32 ihl;

	if ((void *)(ip + 1) > data_end)
		return V_TRUNCATED;
	if (ip->version != 4 || ip->ihl < 5)
		return V_MALFORMED;
	ihl = ip->ihl * 4;
	if ((void *)ip + ihl > data_end)
		return V_TRUNCATED;
	if (ip->protocol != IPPROTO_TCP)
		return ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET_MASK) ? V_FRAGMENT : V_NOT_TCP;
	f->ip_version = 4;
	f->port_ok = 1;
	f->tcp_ok = 1;
	f->l4_off = f->l3_off + ihl;
	if (ip->frag_off & bpf_htons(IPV4_FRAG_OFFSET_MASK))
		return V_LATER_FRAGMENT;
	return V_TCP;
}

/*
 * Walk the IPv6 extension headers this program understands: hop-by-hop (0), routing (43),
 * destination options (60) — length (hdrlen + 1) * 8 — and fragment (44, 8 bytes; only the
 * first fragment, offset 0, carries the TCP header; a later one is V_LATER_FRAGMENT when it is
 * the first extension header and says TCP next, V_FRAGMENT else). Anything else that is not TCP
 * (ESP, AH, no-next-header, mobility, ...) ends the walk as not TCP.
 */
static __always_inline int walk_ipv6_ext(void *data, void *data_end, struct frame *f, __u8 nexthdr,
					 __u32 *off)
{
	for (int i = 0; i < XDPTCP_MAX_EXTHDRS; i++) {
		__u8 *h;

		if (nexthdr == IPPROTO_TCP)
			return V_TCP;
		h = data + *off;
		if ((void *)(h + 8) > data_end)
			return V_TRUNCATED;
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			*off += (h[1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			/* libpcap's `tcp` looks through exactly one fragment header, whatever
			 * its offset. */
			if (i == 0 && h[0] == IPPROTO_TCP)
				f->tcp_ok = 1;
			*off += 8;
			if (*(__u16 *)(h + 2) & bpf_htons(IPV6_FRAG_OFFSET_MASK))
				return f->tcp_ok ? V_LATER_FRAGMENT : V_FRAGMENT;
			break;
		default:
			return V_NOT_TCP;
		}
		nexthdr = h[0];
	}
	return nexthdr == IPPROTO_TCP ? V_TCP : V_EXT_TOO_DEEP;
}

static __always_inline int parse_ipv6(void *data, void *data_end, struct frame *f)
{
	struct ipv6hdr *ip6 = data + f->l3_off;
	__u32 off;
	int v;

	if ((void *)(ip6 + 1) > data_end)
		return V_TRUNCATED;
	if (ip6->version != 6)
		return V_MALFORMED;
	f->ip_version = 6;
	f->port_ok = ip6->nexthdr == IPPROTO_TCP;
	f->tcp_ok = f->port_ok;
	off = f->l3_off + sizeof(*ip6);
	v = walk_ipv6_ext(data, data_end, f, ip6->nexthdr, &off);
	if (v != V_TCP && v != V_LATER_FRAGMENT)
		return v;
	f->l4_off = off;
	return v;
}

static __always_inline int parse_tcp(void *data, void *data_end, struct frame *f)
{
	struct tcphdr *th = data + f->l4_off;
	__u8 *raw = (__u8 *)th;
	__u32 len;

	if ((void *)(th + 1) > data_end)
		return V_TRUNCATED;
	if (th->doff < 5)
		return V_MALFORMED;
	len = th->doff * 4;
	if ((void *)th + len > data_end)
		return V_TRUNCATED;
	f->l4_len = len;
	f->sport = bpf_ntohs(th->source);
	f->dport = bpf_ntohs(th->dest);
	f->tcp_flags = raw[13];
	return V_TCP;
}

/*
 * libpcap's `tcp` on the bytes after the EtherType: the IPv4 protocol byte; the IPv6 next header,
 * or the next header of a fragment header right after the fixed header. Whatever the version
 * nibble says: the frames the parser refuses that tcpdump's `tcp` would still print.
 */
static __always_inline int pcap_tcp(void *data, void *data_end, __u32 l3, __u16 proto)
{
	__u8 *ip = data + l3;

	/* (Only reads the parse has checked already: a check of its own would give the verifier
	 * one more way to follow the filter for each.) */
	if (proto == bpf_htons(ETH_P_IP))
		return (void *)(ip + 20) <= data_end && ip[9] == IPPROTO_TCP;
	if ((void *)(ip + 40) > data_end)
		return 0;
	if (ip[6] == IPPROTO_FRAGMENT)
		return (void *)(ip + 48) <= data_end && ip[40] == IPPROTO_TCP;
	return ip[6] == IPPROTO_TCP;
}

static __always_inline int parse(void *data, void *data_end, struct frame *f)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;
	int v;

	if ((void *)(eth + 1) > data_end)
		return V_TRUNCATED;
	proto = eth->h_proto;
	if (is_vlan_tpid(proto)) {
		v = pop_vlan(data, data_end, &off, &proto, f, 0);
		if (v != V_TCP)
			return v;
		if (is_vlan_tpid(proto)) {
			v = pop_vlan(data, data_end, &off, &proto, f, 1);
			if (v != V_TCP)
				return v;
			if (is_vlan_tpid(proto))
				return V_VLAN_TOO_DEEP;
		}
	}
	f->l3_off = off;
	if (proto == bpf_htons(ETH_P_IP))
		v = parse_ipv4(data, data_end, f);
	else if (proto == bpf_htons(ETH_P_IPV6))
		v = parse_ipv6(data, data_end, f);
	else
		return V_NOT_IP;
	if (v == V_LATER_FRAGMENT)
		return V_TCP; /* addresses only: the TCP header is in the first fragment */
	if (v == V_TCP)
		v = parse_tcp(data, data_end, f);
	if ((v == V_TRUNCATED || v == V_MALFORMED) && pcap_tcp(data, data_end, off, proto)) {
		/* Headers not walked: the record takes what the program can read of the frame.
		 * (That length as a value the verifier knows nothing of, not a constant: it follows
		 * the filter once for each way into it that it cannot prune, and this way prunes
		 * many. Measured on 6.18, multi-buffer code live: a filter of 2000 hosts verified
		 * in 199,000 instructions instead of the 872,000 before this path.) */
		f->ip_version = proto == bpf_htons(ETH_P_IP) ? 4 : 6;
		f->l4_off = 0;
		f->l4_len = data_end - data;
		return V_UNWALKED;
	}
	return v;
}

static __always_inline __u64 wakeup_flags(struct xdptcp_counters *c)
{
	__u64 avail, before, step;

	switch (xdptcp_wakeup_mode) {
	case XDPTCP_WAKEUP_EVERY_N:
		if (xdptcp_wakeup_arg <= 1 || c->emitted % xdptcp_wakeup_arg == 0)
			return BPF_RB_FORCE_WAKEUP;
		return BPF_RB_NO_WAKEUP;
	case XDPTCP_WAKEUP_AVAIL_BYTES:
		if (bpf_ringbuf_query(&xdptcp_ring, BPF_RB_AVAIL_DATA) >= xdptcp_wakeup_arg)
			return BPF_RB_FORCE_WAKEUP;
		return BPF_RB_NO_WAKEUP;
	case XDPTCP_WAKEUP_AVAIL_STEP:
		/*
		 * Asking the ring how much is unread is a helper call, as dear as a tenth of the
		 * whole program: ask once every XDPTCP_WAKEUP_LOOK_EVERY records of this CPU, and
		 * wake the reader when a mark was crossed upwards since this CPU last asked. Marks
		 * crossed, not passed: while the reader is behind, a wakeup at every look would be
		 * an interrupt every few packets on this CPU. The looks see the ring's total, other
		 * CPUs' records included, so one CPU that submits steadily sees every mark (and with
		 * several CPUs submitting, each may wake the reader once for the same mark); a mark
		 * missed between looks is caught at the next one, and a reader that sleeps through
		 * both still wakes at its poll timeout.
		 */
		if (c->emitted & (XDPTCP_WAKEUP_LOOK_EVERY - 1))
			return BPF_RB_NO_WAKEUP;
		avail = bpf_ringbuf_query(&xdptcp_ring, BPF_RB_AVAIL_DATA);
		/* Read here, not before the switch: there clang loads it ahead of the capture's
		 * other work, and the verifier followed a filter of 2000 hosts past its million
		 * instructions (199,000 with it here, on 6.18). */
		step = xdptcp_wakeup_arg & 63;
		before = c->wake_avail;
		c->wake_avail = avail;
		if ((avail >> step) > (before >> step))
			return BPF_RB_FORCE_WAKEUP;
		return BPF_RB_NO_WAKEUP;
	default:
		return 0;
	}
}

/* Copy 32 bytes as four 8-byte words (no alignment needed: loads and stores of packet and
 * ring memory may be unaligned). */
#define COPY_BLOCK(to, from)                                                               \
	do {                                                                               \
		((__u64 *)(to))[0] = ((__u64 *)(from))[0];                                 \
		((__u64 *)(to))[1] = ((__u64 *)(from))[1];                                 \
		((__u64 *)(to))[2] = ((__u64 *)(from))[2];                                 \
		((__u64 *)(to))[3] = ((__u64 *)(from))[3];                                 \
	} while (0)

/*
 * copy_frame() for a length under a block: whole 8-byte words, the last of them ending at len
 * (a snap length under 8: one word, the frame has at least an Ethernet header).
 */
static __always_inline __u64 copy_words(void *data, void *data_end, __u8 *dst, __u64 len,
					__u64 capacity)
{
	__u64 off = 0, last;
	void *src;
	int i;

	if (len < 8) {
		if (8 > capacity || data + 8 > data_end)
			return 0;
		*(__u64 *)dst = *(__u64 *)data;
		return len;
	}
	last = len - 8;
	barrier_var(last);
	if (last > capacity - 8 || last > 32 - 8)
		return 0;
	src = data + last;
	barrier_var(src);
	if (src + 8 > data_end)
		return 0;
	*(__u64 *)(dst + last) = *(__u64 *)src;
	for (i = 0; i < 4; i++) {
		if (off + 8 >= len)
			return len;
		if (off + 8 > capacity || data + off + 8 > data_end)
			return off;
		*(__u64 *)(dst + off) = *(__u64 *)(data + off);
		off += 8;
	}
	return off;
}

/*
 * Copy the first len bytes of the frame into the record and return how many were copied.
 * 32-byte blocks straight from packet memory, the last of them ending at len: kernels before
 * 5.18 lack bpf_xdp_load_bytes(), and where it exists it costs more than this (a helper call
 * and a copy of its own). Every load is checked against data_end and every store against the
 * capacity, with bounds the verifier can follow. A block, not a word, per step: a TCP segment's
 * headers (54 to 114 bytes) take two to four steps, each with its checks, not seven to fourteen.
 */
static __always_inline __u64 copy_frame(void *data, void *data_end, __u8 *dst, __u64 len,
					__u64 capacity)
{
	/*
	 * Where bpf_xdp_load_bytes() exists (xdptcp_xdp_frags), longer copies go through it: the
	 * verifier checks this loop once per way out of it, and 128 of them (a 4096-byte
	 * capacity), each after every way through the parser, are more than 6.1's verifier will
	 * look at. Without the helper the loop covers the whole capacity.
	 */
	int blocks = xdptcp_xdp_frags ? XDPTCP_DIRECT_COPY / 32 : XDPTCP_MAX_CAPACITY / 32;
	__u64 off = 0, last;
	void *src;
	int i;

	if (len < 32 || capacity < 32)
		return copy_words(data, data_end, dst, len, capacity);
	/*
	 * The last block first: the 32 bytes that end at len (at most the capacity, and here the
	 * frame's length too: the caller saw to both; if not, nothing is copied). The blocks from
	 * the start then only have to reach it. Copied after them piece by piece, those last bytes
	 * were checked by the verifier once per way out of the loop; this way, once. Its offset is
	 * checked in the register that is used: 6.1's verifier does not carry a bound learnt on
	 * len to a copy kept on the stack.
	 */
	last = len - 32;
	barrier_var(last);
	if (last > capacity - 32 || last > XDPTCP_MAX_CAPACITY - 32)
		return 0;
	src = data + last;
	barrier_var(src); /* checked as itself: the verifier takes no negative offset */
	if (src + 32 > data_end)
		return 0;
	COPY_BLOCK(dst + last, src);
	for (i = 0; i < blocks && i < XDPTCP_MAX_CAPACITY / 32; i++) {
		if (off + 32 >= len)
			return len; /* the rest is in the last block */
		if (off + 32 > capacity || data + off + 32 > data_end)
			return off; /* never (len is within both), but what was copied is right */
		COPY_BLOCK(dst + off, data + off);
		off += 32;
	}
	return off; /* never: the caller copies no more than the blocks with this loop */
}

/* The bytes reserved after data[capacity]: the pcapng block's trailer when that is the output. */
static __always_inline __u64 trailer_size(void)
{
	return xdptcp_out == XDPTCP_OUT_PCAPNG ? XDPTCP_EPB_TRAILER : 0;
}

/*
 * The record's head in the output file's form (see struct xdptcp_record): a classic pcap record
 * header, or a pcapng enhanced packet block around data[] (head, zero padding to 4 bytes, the
 * direction in epb_flags, the closing length). Divisions by constants: the verifier sees frozen
 * .rodata, so these are divisions by immediates.
 */
static __always_inline void write_out(struct xdptcp_record *rec, __u64 capacity, __u32 wire_len,
				      __u8 direction)
{
	/*
	 * The captured length read back from the record, not the copy's own count: the verifier
	 * then knows only its range, and every way out of the copy loop shares one check of the
	 * code below (with the count, a 4096-byte capacity is more paths than it will explore).
	 */
	__u64 copied = *(volatile __u16 *)&rec->cap_len;
	__u64 t = rec->ts_ns + xdptcp_clock_offset;
	__u64 per_sec = xdptcp_out_nano ? 1000000000ULL : 1000000ULL;
	__u64 padded, sec;
	__u8 *tail;

	if (!xdptcp_out_nano)
		t /= 1000;
	if (xdptcp_out == XDPTCP_OUT_PCAP) {
		sec = t / per_sec;
		rec->out[4] = sec;
		rec->out[5] = t - sec * per_sec;
		rec->out[6] = copied;
		rec->out[7] = wire_len;
		return;
	}
	/* Never true (copied <= capacity, a multiple of 4 here): tells the verifier the trailer
	 * lies inside the reservation. */
	padded = (copied + 3) & ~3ULL;
	if (copied > capacity || padded > capacity || padded > XDPTCP_MAX_CAPACITY)
		return;
	rec->out[1] = 6; /* enhanced packet block */
	rec->out[2] = 28 + padded + XDPTCP_EPB_TRAILER;
	rec->out[3] = 0; /* interface 0: the one interface description block */
	rec->out[4] = t >> 32;
	rec->out[5] = (__u32)t;
	rec->out[6] = copied;
	rec->out[7] = wire_len;
	for (int i = 0; i < 3; i++) {
		if (copied + i >= padded)
			break;
		rec->data[copied + i] = 0;
	}
	tail = rec->data + padded;
	((__u16 *)tail)[0] = 2; /* epb_flags: inbound 1, outbound 2 */
	((__u16 *)tail)[1] = 4;
	((__u32 *)tail)[1] = direction == XDPTCP_DIR_EGRESS ? 2 : 1;
	((__u32 *)tail)[2] = 0; /* opt_endofopt */
	((__u32 *)tail)[3] = 28 + padded + XDPTCP_EPB_TRAILER;
}

/* The two hooks: what differs between them is only where the frame's bytes and facts are. */
enum hook {
	HOOK_XDP,
	HOOK_TC,
};

/* What the hook knows about the frame besides its bytes. */
struct origin {
	__u32 wire_len;
	__u32 ifindex;
	__u32 queue;
	__u8 direction;
	__u16 gso_segs;
	__u16 gso_size;
};

/*
 * Copy len bytes of a frame that reach past its linear part, with the hook's helper. The
 * helpers take a non-zero length the verifier can bound: len is checked against the capacity,
 * a constant once .rodata is frozen.
 */
static __always_inline __u64 load_frame(void *ctx, enum hook hook, __u8 *dst, __u64 len,
					__u64 capacity)
{
	long err;

	/*
	 * A signed test the compiler may not turn into "len == 0" (it knows len is a zero-extended
	 * u32): verifiers before 6.8 learn no lower bound from "len == 0" being false and refuse a
	 * helper a length that may be zero; from "len s< 1" being false they learn len >= 1.
	 */
	barrier_var(len);
	if ((__s64)len < 1 || len > capacity || len > XDPTCP_MAX_CAPACITY)
		return 0;
	if (hook == HOOK_XDP)
		err = bpf_xdp_load_bytes(ctx, 0, dst, len);
	else
		err = bpf_skb_load_bytes(ctx, 0, dst, len);
	return err ? 0 : len;
}

/*
 * Reserve a record, fill it and submit it. XDP copies straight from packet memory when the
 * first buffer holds all the bytes wanted and they are at most XDPTCP_DIRECT_COPY (the usual
 * case: headers), through load_frame() else where the helper exists; tc always through
 * load_frame(), which reads the paged part of an skb too, and keeps the classifier small enough
 * for the verifier on every kernel.
 */
static __always_inline void emit(void *ctx, enum hook hook, void *data, void *data_end,
				 const struct frame *f, const struct origin *o,
				 struct xdptcp_counters *c)
{
	/* Clamp the capacity itself so a bogus configuration cannot make the reservation huge. */
	__u64 capacity = xdptcp_capacity;
	struct xdptcp_record *rec;
	/* 64-bit on purpose: a 32-bit length makes clang check a truncated copy of the value it
	 * passes to the helper, and the verifier then cannot bound the one it sees. */
	__u64 len, copied = 0;
	__u64 size;

	if (capacity < 8 || capacity > XDPTCP_MAX_CAPACITY)
		capacity = XDPTCP_DEFAULT_CAPACITY;
	size = sizeof(*rec) + capacity + trailer_size();
	rec = bpf_ringbuf_reserve(&xdptcp_ring, size, 0);
	if (!rec) {
		c->ring_full++;
		return;
	}
	rec->ts_ns = bpf_ktime_get_ns();
	rec->ifindex = o->ifindex;
	rec->rx_queue = o->queue;
	rec->wire_len = o->wire_len;
	rec->l3_off = f->l3_off;
	rec->l4_off = f->l4_off;
	rec->l4_len = f->l4_len;
	rec->ip_version = f->ip_version;
	rec->vlans = f->vlans;
	rec->direction = o->direction;
	rec->reserved = 0;
	rec->gso_segs = o->gso_segs;
	rec->gso_size = o->gso_size;
	rec->reserved2 = 0;
	len = xdptcp_snaplen ? xdptcp_snaplen : f->l4_off + f->l4_len;
	if (len > o->wire_len)
		len = o->wire_len;
	if (len > capacity)
		len = capacity;
	/*
	 * The length read back from the record: where it came from (which way through the parser)
	 * is then nothing the verifier has to tell apart, so the copy below is checked once for
	 * every frame layout instead of once per layout. The bounds are checked again there. Not
	 * for XDP without the multi-buffer helpers: its copy loop covers the whole capacity, and
	 * for a length it knows nothing of, the verifier follows every word of it.
	 */
	if (hook == HOOK_TC || xdptcp_xdp_frags) {
		rec->cap_len = len;
		len = *(volatile __u16 *)&rec->cap_len;
	}
	/*
	 * The copy last, and nothing after it that depends on how far it got but the stored
	 * length: each of its ways out (one per word copied) then reaches the same verifier
	 * state, which is checked once, instead of the code after it being checked once per way.
	 */
	if (hook == HOOK_TC)
		copied = load_frame(ctx, hook, rec->data, len, capacity);
	else if ((data + len > data_end || len > XDPTCP_DIRECT_COPY) && xdptcp_xdp_frags)
		copied = load_frame(ctx, hook, rec->data, len, capacity);
	else
		copied = copy_frame(data, data_end, rec->data, len, capacity);
	rec->cap_len = copied;
	if (xdptcp_out)
		write_out(rec, capacity, o->wire_len, o->direction);
	c->emitted++;
	bpf_ringbuf_submit(rec, wakeup_flags(c));
}

static __always_inline void count_verdict(struct xdptcp_counters *c, int v)
{
	switch (v) {
	case V_NOT_IP:
		c->not_ip++;
		break;
	case V_NOT_TCP:
		c->not_tcp++;
		break;
	case V_FRAGMENT:
		c->fragments++;
		break;
	case V_TRUNCATED:
		c->truncated++;
		break;
	case V_MALFORMED:
		c->malformed++;
		break;
	case V_VLAN_TOO_DEEP:
		c->vlan_too_deep++;
		break;
	default:
		c->ext_too_deep++;
		break;
	}
}

/* Count a parsed frame and decide: 1 when it is to be emitted, `selected` being the filter's
 * answer (1 without a filter). Both programs decide here, so both directions are counted and
 * filtered by the same rules. */
static __always_inline int select_frame(struct xdptcp_counters *c, int v, int selected)
{
	c->packets++;
	if (v == V_UNWALKED)
		v = V_TCP;
	if (v != V_TCP) {
		count_verdict(c, v);
		return 0;
	}
	c->tcp++;
	if (!selected)
		return 0;
	c->matched++;
	return 1;
}

/*
 * The filter's answer for the frame. Both programs ask before they parse, on the frame as it
 * came: the verifier follows the filter (thousands of instructions, for thousands of terms)
 * once for each state of the program at the call, and before the parser the program is in one
 * state, after it in as many as there are ways through it. The answer is read back from the
 * counters' map value, where the verifier knows nothing of it: as the constant 0 or 1 the
 * filter returned, it would make two states of every state after it, and the parser would be
 * followed once for each. (The map value is this CPU's, and nothing else runs our programs on
 * this CPU between the store and the load.)
 */
static __always_inline int ask_filter(struct xdptcp_counters *c, void *data, void *data_end,
				      __u32 wire_len)
{
	c->filter_answer = call_filter(data, data_end, wire_len);
	return *(volatile __u64 *)&c->filter_answer;
}

/*
 * The same with a plain C call, which the loader leaves a call (clang keeps values in r6-r9
 * across it, as a callee preserves them): the tc program's. With call_filter() there, clang's
 * code around its two calls made the verifier go through twice the instructions for a filter of
 * 2,000 hosts (178,474 against 89,417 on 6.18): each of the filter's ways out went on to the
 * code after the second call, where before they met at its end. Egress capture keeps the call
 * and the reach in filter length.
 */
static __always_inline int ask_filter_called(struct xdptcp_counters *c, void *data,
					     void *data_end, __u32 wire_len)
{
	c->filter_answer = xdptcp_filter(data, data_end, wire_len);
	return *(volatile __u64 *)&c->filter_answer;
}

static __always_inline struct xdptcp_counters *counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&xdptcp_counters, &zero);
}

/*
 * 1 when the frame's first buffer (the bytes from data to data_end) is surely all of it: the
 * frame is untagged IPv4 or IPv6 and its IP packet, by its own header, ends right at the
 * buffer's end, or ends in a buffer of at most 64 bytes (an Ethernet frame padded to its
 * minimum). Bytes after the IP packet are not taken to end with the buffer: a frame may carry
 * thousands. Asked before the parse, of the bytes at fixed offsets: the parse's ways through a
 * frame then meet again here, and the verifier follows each of them once. Not for an IPv6
 * jumbogram (payload length 0), a tagged frame or anything else, which are asked.
 */
static __always_inline int first_buffer_is_all(void *data, void *data_end)
{
	__u64 first = data_end - data;
	struct ethhdr *eth = data;
	__u64 end;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *h = (void *)(eth + 1);

		if ((void *)(h + 1) > data_end)
			return 0;
		end = bpf_ntohs(h->tot_len);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *h = (void *)(eth + 1);

		if ((void *)(h + 1) > data_end)
			return 0;
		end = bpf_ntohs(h->payload_len);
		if (!end)
			return 0;
		end += sizeof(*h);
	} else {
		return 0;
	}
	end += sizeof(*eth);
	return end == first || (end <= first && first <= 64);
}

/*
 * The XDP programs' one body: xdp_capture is this with the filter, xdp_capture_all without
 * (xdptcp loads one of the two). The filter, where there is one, is asked first (ask_filter).
 *
 * A frame's whole length (libpcap's `len`, the record's wire length) is known for a
 * multi-buffer frame only to bpf_xdp_get_buff_len(), a helper call (some 11 ns a frame here:
 * bench/README). It is asked of every frame only for a filter that reads it
 * (xdptcp_filter_len); else only of a frame that may reach past its first buffer
 * (first_buffer_is_all). A multi-buffer frame whose IP packet ends right at its first buffer's
 * end, or in a first buffer of at most 64 bytes, with more bytes in the buffers after, is then
 * recorded with its first buffer's length: no stack sends one, but a frame can be made so.
 *
 * Two programs rather than one with a branch on xdptcp_filter_on: such a branch changed clang's
 * code for the path without a filter too, and the verifier followed that path through nearly
 * twice the instructions (15,600 against 8,700).
 */
static __always_inline int capture_xdp(struct xdp_md *ctx, const int filtered)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xdptcp_counters *c = counters();
	struct origin o = {
		.wire_len = data_end - data,
		.ifindex = ctx->ingress_ifindex,
		.queue = ctx->rx_queue_index,
		.direction = XDPTCP_DIR_INGRESS,
	};
	struct frame f = {};
	int v, selected = 1, asked = 0;

	if (!c)
		return XDP_PASS;
	if (filtered && xdptcp_filter_on) {
		if (xdptcp_filter_len && xdptcp_xdp_frags) {
			o.wire_len = bpf_xdp_get_buff_len(ctx);
			asked = 1;
		}
		selected = ask_filter(c, data, data_end, o.wire_len);
		barrier_var(ctx); /* the frame's bounds read anew: see ask_filter */
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
	}
	if (xdptcp_xdp_frags && !asked && !first_buffer_is_all(data, data_end))
		o.wire_len = bpf_xdp_get_buff_len(ctx);
	v = parse(data, data_end, &f);
	if (!select_frame(c, v, selected))
		return XDP_PASS;
	emit(ctx, HOOK_XDP, data, data_end, &f, &o, c);
	return XDP_PASS;
}

SEC("xdp.frags")
int xdp_capture(struct xdp_md *ctx)
{
	return capture_xdp(ctx, 1);
}

SEC("xdp.frags")
int xdp_capture_all(struct xdp_md *ctx)
{
	return capture_xdp(ctx, 0);
}

/* Enough for Ethernet, two tags, IPv6 with a few extension headers and the longest TCP header. */
#define XDPTCP_PULL_LEN 256

SEC("tc")
int tc_capture(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct xdptcp_counters *c = counters();
	struct origin o = {
		.wire_len = skb->len,
		.ifindex = skb->ifindex,
		.queue = skb->queue_mapping,
		.direction = XDPTCP_DIR_EGRESS,
		/* skb->gso_segs is 0 or 1 for a packet that leaves as it is */
		.gso_segs = skb->gso_size ? skb->gso_segs : 0,
		.gso_size = skb->gso_size,
	};
	struct frame f = {};
	int v, selected = 1;

	if (!c)
		return TC_ACT_UNSPEC;
	if (xdptcp_filter_on)
		selected = ask_filter_called(c, data, data_end, o.wire_len);
	v = parse(data, data_end, &f);
	if ((v == V_TRUNCATED || v == V_UNWALKED) && skb->len > data_end - data) {
		/* Headers in the paged part of the skb: make them linear once, then ask the filter
		 * again and parse again. Only then: pulling unclones the skb, which TCP's own
		 * clones make costly. */
		bpf_skb_pull_data(skb, skb->len < XDPTCP_PULL_LEN ? skb->len : XDPTCP_PULL_LEN);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		__builtin_memset(&f, 0, sizeof(f));
		if (xdptcp_filter_on)
			selected = ask_filter_called(c, data, data_end, o.wire_len);
		v = parse(data, data_end, &f);
	}
	if (!select_frame(c, v, selected))
		return TC_ACT_UNSPEC;
	emit(skb, HOOK_TC, data, data_end, &f, &o, c);
	return TC_ACT_UNSPEC;
}
