// SPDX-License-Identifier: GPL-2.0
/*
 * xdptcp's offline record walker: `xdptcp -r FILE -w OUT [EXPR]` hands the kernel a chunk of a
 * classic pcap file (this machine's byte order, Ethernet) that user space read into the mmapped
 * array map xdptcp_walk_in, and runs this program with BPF_PROG_TEST_RUN. For each record it
 * decides what xdptcp's Python walk (xdptcp/offline.py, _copy_records) decides: a plain TCP frame
 * (IPv4 without options or fragmenting, IPv6 without extension headers, untagged, whole TCP
 * header captured) that the filter accepts is kept, its header as it lies (a timestamp field of a
 * second or more, a wire length below the captured one: tcpdump's -w copies them so too);
 * anything it cannot decide exactly like Python (any other frame, a record captured longer than
 * the file's snapshot length, which libpcap hands over cut, or longer than any pcap record) is
 * handed back for Python to look at. The answer goes to the mmapped map xdptcp_walk_out as a
 * list of entries (start, end), offsets in the chunk: a run of kept records lying back to back,
 * or, with start == end, "Python looks at the record at start". Entries are in file order.
 *
 * The filter is the subprogram xdptcp_filter(), whose body user space replaces with the code the
 * filter compiler generates (the same code the capture program runs), called with data = the
 * record's frame in the map value and data_end = data + incl_len: a load past the captured bytes
 * rejects, as in the compiler's Python VM. Loads are map-value loads the verifier bounds: the
 * value has XDPTCP_WALK_SLACK bytes past the last record a chunk can hold, more than any load
 * the generated code can make beyond its record (constant offsets < 0x8000, variable ones
 * bounded below 0x10000).
 *
 * Not sleepable, needs no user memory: bpf_loop (Linux 5.17) runs one record per callback, so the
 * verifier walks the callback once whatever the chunk holds.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdptcp.h" /* the xdptcp_filter() stub */

char LICENSE[] SEC("license") = "GPL";

/* The largest record start a chunk can hold: xdptcp.mapped's CHUNK + MAX_RECORD + 16. */
#define XDPTCP_WALK_DATA ((1u << 20) + 262144u + 16u)
#define XDPTCP_WALK_SLACK 0x11000u
#define XDPTCP_MAX_RECORD 262144u
#define XDPTCP_WALK_ENTRIES 16384u

enum walk_stop {
	WALK_MORE = 0,     /* the next record is not all in the chunk (or there is none) */
	WALK_LIMIT = 1,    /* kept + looked-at records reached ctx->limit */
	WALK_FULL = 2,     /* the entries list is full: run again from ctx->pos */
	WALK_DAMAGED = 3,  /* a record longer than any pcap record: handed back, the walk ends */
};

/* BPF_PROG_TEST_RUN's context, read and written in place. */
struct walk_ctx {
	__u32 pos;    /* in: the first record to walk; out: the first one not walked */
	__u32 end;    /* in: the end of the bytes in the chunk */
	__u32 limit;  /* in: stop once kept + handed-back records reach this; 0: no limit */
	__u32 snap;   /* in: the file's snapshot length; a record captured longer is handed back */
	__u32 n;      /* out: entries written */
	__u32 kept;   /* out: records kept in runs */
	__u32 looks;  /* out: records handed back */
	__u32 stop;   /* out: enum walk_stop */
};

struct walk_buf {
	__u8 b[XDPTCP_WALK_DATA + 16 + XDPTCP_WALK_SLACK];
};

struct walk_state {
	__u32 pos, end, limit, snap;
	__u32 n, kept, looks, stop;
	__u32 run_start, run_end;
};

/* The walk's state lives in the map value, not on the stack: the verifier then knows nothing of
 * its values in the callback and verifies the callback once, not once per value it could hold
 * (a stack state that changes every iteration is "too complex" from Linux 6.8's loop checks on). */
struct walk_entries {
	struct walk_state st;
	struct {
		__u32 start, end;
	} e[XDPTCP_WALK_ENTRIES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct walk_buf);
} xdptcp_walk_in SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct walk_entries);
} xdptcp_walk_out SEC(".maps");

/* 1: call xdptcp_filter() (xdptcp.h) on each plain TCP frame; 0: keep them all. */
volatile const __u32 xdptcp_filter_on = 0;

static __always_inline int emit(struct walk_entries *out, __u32 a, __u32 b)
{
	struct walk_state *st = &out->st;
	__u32 n = st->n;

	if (n >= XDPTCP_WALK_ENTRIES)
		return -1;
	out->e[n].start = a;
	out->e[n].end = b;
	st->n = n + 1;
	return 0;
}

static __always_inline void close_run(struct walk_entries *out)
{
	struct walk_state *st = &out->st;

	if (st->run_start < st->run_end)
		emit(out, st->run_start, st->run_end);
	st->run_start = st->run_end = 0;
}

/* The plain-TCP test of _copy_records, on the frame's bytes (network order). */
static __always_inline int plain_tcp(const __u8 *d, __u32 incl)
{
	__u16 etype = (__u16)d[12] << 8 | d[13];
	__u32 ip_len, hlen;

	if (etype == 0x0800 && incl >= 54) {
		ip_len = (__u32)d[16] << 8 | d[17];
		hlen = (d[46] >> 4) * 4;
		return d[14] == 0x45 && d[23] == 6 && !(((__u32)d[20] << 8 | d[21]) & 0x1fff) &&
		       hlen >= 20 && hlen + 20 <= ip_len && ip_len + 14 <= incl;
	}
	if (etype == 0x86dd && incl >= 74) {
		ip_len = (__u32)d[18] << 8 | d[19];
		hlen = (d[66] >> 4) * 4;
		return d[14] >> 4 == 6 && d[20] == 6 && hlen >= 20 && hlen <= ip_len &&
		       ip_len + 54 <= incl;
	}
	return 0;
}

/* One record; 1 ends the walk. */
static long walk_one(__u32 index, void *unused)
{
	struct walk_entries *out;
	struct walk_state *st;
	__u32 zero = 0, pos, incl, orig, nxt;
	struct walk_buf *in;
	__u8 *rec;

	out = bpf_map_lookup_elem(&xdptcp_walk_out, &zero);
	if (!out)
		return 1;
	st = &out->st;
	pos = st->pos;

	if (st->n + 3 > XDPTCP_WALK_ENTRIES) {
		st->stop = WALK_FULL;
		return 1;
	}
	if (st->limit && st->kept + st->looks >= st->limit) {
		st->stop = WALK_LIMIT;
		return 1;
	}
	in = bpf_map_lookup_elem(&xdptcp_walk_in, &zero);
	if (!in || pos > XDPTCP_WALK_DATA || st->end - pos < 16 || st->end < pos)
		return 1;  /* WALK_MORE: the header goes on in the next chunk */
	rec = in->b + pos;
	incl = *(__u32 *)(rec + 8);
	orig = *(__u32 *)(rec + 12);
	if (incl > XDPTCP_MAX_RECORD) {
		close_run(out);
		emit(out, pos, pos);
		st->looks++;
		st->stop = WALK_DAMAGED;
		return 1;
	}
	nxt = pos + 16 + incl;
	if (nxt > st->end)
		return 1;  /* WALK_MORE */
	if (incl <= st->snap && plain_tcp(rec + 16, incl)) {
		if (xdptcp_filter_on && !call_filter(rec + 16, rec + 16 + incl, orig)) {
			st->pos = nxt;
			return 0;
		}
		if (st->run_end != pos) {
			close_run(out);
			st->run_start = pos;
		}
		st->run_end = nxt;
		st->kept++;
		st->pos = nxt;
		return 0;
	}
	close_run(out);
	emit(out, pos, pos);
	st->looks++;
	st->pos = nxt;
	return 0;
}

SEC("syscall")
int xdptcp_walk(struct walk_ctx *ctx)
{
	struct walk_entries *out;
	struct walk_state *st;
	__u32 zero = 0, pos = ctx->pos, end = ctx->end;

	out = bpf_map_lookup_elem(&xdptcp_walk_out, &zero);
	if (!out || end > XDPTCP_WALK_DATA + 16 || pos > end)
		return 1;
	st = &out->st;
	st->pos = pos;
	st->end = end;
	st->limit = ctx->limit;
	st->snap = ctx->snap;
	st->n = st->kept = st->looks = st->stop = 0;
	st->run_start = st->run_end = 0;
	bpf_loop((end - pos) / 16 + 1, walk_one, NULL, 0);
	close_run(out);
	ctx->pos = st->pos;
	ctx->n = st->n;
	ctx->kept = st->kept;
	ctx->looks = st->looks;
	ctx->stop = st->stop;
	return 0;
}
