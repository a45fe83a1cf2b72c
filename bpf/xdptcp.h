/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Layouts shared by the xdptcp capture program (bpf/xdptcp.bpf.c) and user space
 * (xdptcp/record.py declares the same layouts with construct; a test compares them with the
 * BTF that clang emits for these structs), and the filter stub that the capture program and the
 * offline record walker (bpf/xdptcp_walk.bpf.c) both call.
 *
 * Every multi-byte field of a record or counter is in host byte order; the captured frame
 * bytes are as they were on the wire.
 */
#ifndef XDPTCP_H
#define XDPTCP_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/*
 * One ring-buffer record per emitted TCP frame. The reservation is always
 * sizeof(struct xdptcp_record) + xdptcp_capacity bytes, so every record of one loaded
 * program has the same size and user space unpacks it with one precompiled struct.
 */
struct xdptcp_record {
	__u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, not wall-clock time */
	__u32 ifindex;    /* ingress: ctx->ingress_ifindex; egress: skb->ifindex */
	__u32 rx_queue;   /* ingress: ctx->rx_queue_index; egress: skb->queue_mapping */
	__u32 wire_len;   /* the whole frame: all its buffers (XDP), skb->len (tc) */
	__u16 cap_len;    /* bytes of data[] that hold frame bytes; never more than read */
	__u16 l3_off;     /* offset of the IPv4/IPv6 header in the frame (14, 18 or 22) */
	__u16 l4_off;     /* offset of the TCP header in the frame; 0 when the headers were not
			   * walked (a TCP frame cut short or malformed: see bpf/xdptcp.bpf.c) */
	__u16 l4_len;     /* TCP header length in bytes (doff * 4, 20..60); 0 for a later
			   * fragment; the bytes read when l4_off is 0 (the frame's first buffer) */
	__u8 ip_version;  /* 4 or 6 */
	__u8 vlans;       /* number of 802.1Q/802.1ad tags before the IP header (0..2) */
	__u8 direction;   /* enum xdptcp_direction: which program saw the frame */
	__u8 reserved;    /* zero */
	/* Egress: a GSO packet (TSO "super-packet") that the kernel or the NIC will cut into
	 * gso_segs segments of gso_size payload bytes after the hook; 0 on ingress and for a
	 * packet that leaves as it is. */
	__u16 gso_segs;
	__u16 gso_size;
	__u32 reserved2;  /* zero */
	/*
	 * The record as the output file wants it, written only when xdptcp_out asks (else
	 * unspecified), so that user space writes spans of records without looking into them:
	 *   XDPTCP_OUT_PCAPNG: out[1..7] is a pcapng enhanced packet block's head (block type 6,
	 *     block length, interface 0, timestamp high and low word, captured length, wire
	 *     length); data[] follows, zero-padded to 4 bytes, then XDPTCP_EPB_TRAILER bytes:
	 *     the epb_flags option (direction), the end of options, the block length again.
	 *   XDPTCP_OUT_PCAP: out[4..7] is a classic pcap record header (seconds, micro- or
	 *     nanoseconds, captured length, wire length); data[] follows.
	 * Timestamps are wall-clock: ts_ns + xdptcp_clock_offset, in the file's precision.
	 */
	__u32 out[8];
	__u8 data[];      /* xdptcp_capacity bytes reserved, cap_len of them valid; 8-byte aligned */
};

/* xdptcp_out: the file format whose record head the program writes into each record. */
enum xdptcp_out {
	XDPTCP_OUT_NONE = 0,
	XDPTCP_OUT_PCAP = 1,
	XDPTCP_OUT_PCAPNG = 2,
};

/* Bytes after data[capacity] in every record when xdptcp_out is XDPTCP_OUT_PCAPNG: the enhanced
 * packet block's options and closing length (xdptcp_capacity is then a multiple of 4). */
#define XDPTCP_EPB_TRAILER 16

/*
 * Per-CPU counters, one array entry. Every frame the program sees is counted in `packets` and
 * in exactly one of `tcp` or the not_ip .. ext_too_deep reasons, so
 *   packets == tcp + not_ip + not_tcp + fragments + truncated + malformed
 *              + vlan_too_deep + ext_too_deep
 * and every TCP frame the filter accepts is either emitted or lost to a full ring:
 *   matched == emitted + ring_full
 */
struct xdptcp_counters {
	__u64 packets;       /* every frame the program ran on */
	__u64 tcp;           /* complete TCP header inside the frame, a later TCP fragment, or
			      * a frame libpcap's `tcp` selects whose headers are cut short by
			      * its end or malformed */
	__u64 matched;       /* TCP frames the filter accepted (all of them without a filter) */
	__u64 emitted;       /* records submitted to the ring */
	__u64 ring_full;     /* bpf_ringbuf_reserve() failed: the record was lost */
	__u64 not_ip;        /* ethertype after the tags is neither IPv4 nor IPv6 */
	__u64 not_tcp;       /* IP, but the transport is not TCP (or an unwalked IPv6 header) */
	__u64 fragments;     /* a later fragment (non-zero offset) libpcap's `tcp` does not select:
			      * of another protocol, or IPv6 behind another extension header */
	__u64 truncated;     /* a header runs past the end of the frame (or of the part of it
			      * the program can read), and libpcap's `tcp` does not select it */
	__u64 malformed;     /* IP version nibble wrong, IPv4 IHL < 5 or TCP doff < 5, and
			      * libpcap's `tcp` does not select it */
	__u64 vlan_too_deep; /* more than XDPTCP_MAX_VLANS tags */
	__u64 ext_too_deep;  /* more than XDPTCP_MAX_EXTHDRS IPv6 extension headers */
	/* Not a counter: the ring's unread bytes when this CPU last looked (XDPTCP_WAKEUP_AVAIL_STEP) */
	__u64 wake_avail;
	/* Not a counter: the filter's answer for the frame at hand (ask_filter, bpf/xdptcp.bpf.c) */
	__u64 filter_answer;
};

/* Where a record was made: XDP sees what arrives, the tc program what leaves. */
enum xdptcp_direction {
	XDPTCP_DIR_INGRESS = 0,
	XDPTCP_DIR_EGRESS = 1,
};

#define XDPTCP_MAX_VLANS 2
#define XDPTCP_MAX_EXTHDRS 6
/* Largest data capacity user space may configure; it bounds cap_len for the verifier. */
#define XDPTCP_MAX_CAPACITY 4096
#define XDPTCP_DEFAULT_CAPACITY 256
/* XDPTCP_WAKEUP_AVAIL_STEP looks at the ring once per this many records of a CPU (a power of 2) */
#define XDPTCP_WAKEUP_LOOK_EVERY 32

/* xdptcp_wakeup_mode: when the consumer is woken up after a record is submitted. */
enum xdptcp_wakeup {
	XDPTCP_WAKEUP_DEFAULT = 0,    /* the kernel's rule: wake when the ring was empty */
	XDPTCP_WAKEUP_EVERY_N = 1,    /* force a wakeup every xdptcp_wakeup_arg records per CPU */
	XDPTCP_WAKEUP_AVAIL_BYTES = 2, /* force when unread bytes >= xdptcp_wakeup_arg */
	/* force when the unread bytes have risen past a multiple of 1 << xdptcp_wakeup_arg since
	 * this CPU last looked (every XDPTCP_WAKEUP_LOOK_EVERY records it submits): a few wakeups
	 * per ring's worth, however far behind the reader */
	XDPTCP_WAKEUP_AVAIL_STEP = 3,
};

/*
 * The capture filter: a stub whose body xdptcp replaces before load with the eBPF instructions
 * it compiled from the user's pcap-filter expression (xdptcp/pcapfilter/, spliced in with
 * pybpf's ObjectSpec.replace_function). It reads the frame itself, as libpcap's filters do:
 * data and data_end bound the bytes it may read, wire_len is libpcap's `len`. Static, so the
 * verifier checks it at each call with the caller's pointers (a global function could not take
 * packet pointers), and both capture programs, XDP and tc, call the same code; the record walker
 * calls the same generated code on a record in its map value. The barriers keep clang from
 * dropping an argument or assuming the result. Non-zero means "capture".
 *
 * Each program calls it only when its own `xdptcp_filter_on` (.rodata, set by user space before
 * load) is 1. That flag stays in each program's source, among the program's other settings: its
 * place there is its offset in the program's .rodata.
 */
static __noinline __attribute__((used)) int xdptcp_filter(void *data, void *data_end, __u32 wire_len)
{
	int ret;

	barrier_var(data);
	barrier_var(data_end);
	barrier_var(wire_len);
	ret = data < data_end;
	barrier_var(ret);
	return ret;
}

/*
 * The programs call the filter through this: the call is made in an asm statement that says it
 * changes r0-r9, so the caller keeps nothing in r6-r9 across it (clang keeps what it needs on
 * the stack instead). The loader can then put the generated body in place of the call, with no
 * call and return (some 9 ns a frame here): the body may use r6-r9 as its own, and the caller
 * reads none of them after it (pybpf.object.inline). Made in C, the call would let clang keep
 * values in r6-r9, which a callee preserves. (The stub is `used`: clang sees no call to it.)
 */
static __always_inline int call_filter(void *data, void *data_end, __u32 wire_len)
{
	register __u64 r0 asm("r0");
	register void *r1 asm("r1") = data;
	register void *r2 asm("r2") = data_end;
	register __u64 r3 asm("r3") = wire_len;

	asm volatile("call xdptcp_filter"
		     : "=r"(r0), "+r"(r1), "+r"(r2), "+r"(r3)
		     :
		     : "r4", "r5", "r6", "r7", "r8", "r9");
	return (int)r0;
}

#endif /* XDPTCP_H */
