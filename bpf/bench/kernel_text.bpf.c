// SPDX-License-Identifier: GPL-2.0
/*
 * A study, not part of xdptcp (bench/kernel_text.py runs it): tcpdump's `-nn` line of the usual
 * data segment, made in the kernel. How much of the per-packet cost of `xdptcp -r F` is Python's,
 * and what a line costs when a BPF program makes it instead.
 *
 * Like xdptcp's record walker (bpf/xdptcp_walk.bpf.c), user space reads a chunk of a classic
 * pcap file (this machine's byte order, Ethernet, microseconds) into the mmapped array map
 * kt_in and runs this syscall program with BPF_PROG_TEST_RUN; bpf_loop walks the records. For
 * each record the program writes tcpdump's line into the mmapped map kt_out, exactly as
 * `tcpdump -nn -r` prints it, and stops at the first record it does not know how to print.
 *
 * What it knows how to print is one shape, the segment of a bulk transfer as xdptcp -w keeps
 * it (headers only): untagged Ethernet, IPv4 without options or fragmenting, TCP with ACK (PSH
 * allowed; no SYN, FIN, RST, URG, ECE or CWR), a 32-byte header whose options are nop,nop,TS,
 * and a payload. The relative sequence numbers are tcpdump's (print-tcp.c's tcp_seq_hash: the
 * first segment of a conversation seen sets its bases and prints them as they are), the time is
 * the local time of day, from an offset user space gives for the whole file.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define KT_CHUNK (1u << 20)       /* bytes of records in one chunk, at most */
#define KT_SLACK 256u             /* past the chunk: the longest read of a record's header */
#define KT_OUT (1u << 20)         /* text of one run, a power of two (the stores' mask) */
#define KT_LINE 256u              /* the longest line made, with room to spare */
#define KT_FLOWS 65536u

enum kt_stop {
	KT_MORE = 0,   /* the chunk is walked: the next record is not all in it */
	KT_FULL = 1,   /* the text buffer is full: run again from ctx->pos */
	KT_OTHER = 2,  /* the record at ctx->pos is of another shape */
};

/* BPF_PROG_TEST_RUN's context, read and written in place. */
struct kt_ctx {
	__u32 pos;     /* in: the first record to walk; out: the first one not printed */
	__u32 end;     /* in: the end of the records in the chunk */
	__s32 tz_off;  /* in: the local time's offset from UTC, seconds */
	__u32 len;     /* out: bytes of text in kt_out */
	__u32 lines;   /* out: lines made */
	__u32 stop;    /* out: enum kt_stop */
};

struct kt_in_buf {
	__u8 b[KT_CHUNK + KT_SLACK];
};

/* The walk's state in a map value (.bss) rather than on the stack: the verifier then checks the
 * loop's callback once, whatever values the state takes (as bpf/xdptcp_walk.bpf.c). */
struct kt_state {
	__u32 pos, end, o, lines, stop, last_sec;
	__s32 tz_off;
	__u32 pad;
	__u64 hms;  /* "HH:MM:SS" of last_sec, 8 bytes as one word */
};

struct kt_out_buf {
	struct kt_state st;
	char t[KT_OUT + 64];  /* 64: a word stored at the last masked offset stays inside */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kt_in_buf);
} kt_in SEC(".maps");

/* The only variable of .bss (an mmapped array map, as every data section pybpf loads): at offset
 * 0 of it. A global rather than a map of its own so that the global functions below, which the
 * verifier checks once each rather than at every call, can write it without a pointer argument
 * (a global function's pointer argument is checked against its type's size: one char). */
struct kt_out_buf kt_out;

/* Addresses as they lie in the frame; ports in host order. */
struct kt_key {
	__u32 a, b;
	__u16 pa, pb;
};

/* tcpdump's conversation: the bases of the side with the lower port (then address). */
struct kt_bases {
	__u32 seq, ack;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KT_FLOWS);
	__type(key, struct kt_key);
	__type(value, struct kt_bases);
} kt_conv SEC(".maps");

/* Per direction: "198.18.0.2.40000 > 198.18.0.1.5001: Flags [", made once. */
struct kt_head {
	__u32 len;
	char t[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KT_FLOWS);
	__type(key, struct kt_key);
	__type(value, struct kt_head);
} kt_heads SEC(".maps");

#define MASK (KT_OUT - 1)

static __always_inline __u32 put(__u32 o, char c)
{
	kt_out.t[o & MASK] = c;
	return o + 1;
}

/* Decimal digits of v. Division by ten as a multiplication and a shift, where a divide
 * instruction would be: it saved some 0.04 µs a line of seven numbers here. */
__noinline __u32 put_dec(__u32 o, __u32 v)
{
	char d[10];
	int n = 0;

	for (int i = 0; i < 10; i++) {
		__u32 q = ((__u64)v * 0xCCCCCCCDull) >> 35; /* v / 10 for every 32-bit v */

		d[i] = '0' + (v - q * 10);
		v = q;
		n = i + 1;
		if (!v)
			break;
	}
	for (int i = 9; i >= 0; i--)
		if (i < n)
			o = put(o, d[i]);
	return o;
}

static __always_inline __u32 put2(__u32 o, __u32 v)
{
	o = put(o, '0' + v / 10);
	return put(o, '0' + v % 10);
}

/* n bytes of s (n below 64), a word at a time: s must have 64 readable bytes. */
static __noinline __u32 put_words(__u32 o, const char *s, __u32 n)
{
	for (__u32 i = 0; i < 64; i += 8) {
		if (i >= n)
			break;
		*(__u64 *)&kt_out.t[(o + i) & MASK] = *(const __u64 *)(s + i);
	}
	return o + n;
}

static __noinline __u32 put_str(__u32 o, const char *s, __u32 n)
{
	for (__u32 i = 0; i < 32 && i < n; i++)
		o = put(o, s[i]);
	return o;
}

#define PUT_LIT(o, s) put_str(o, s, sizeof(s) - 1)

static const char s_ip[] = " IP ";
static const char s_to[] = " > ";
static const char s_flags[] = ": Flags [";
static const char s_seq[] = "], seq ";
static const char s_ack[] = ", ack ";
static const char s_win[] = ", win ";
static const char s_ts[] = ", options [nop,nop,TS val ";
static const char s_ecr[] = " ecr ";
static const char s_len[] = "], length ";

static __always_inline __u32 be16(const __u8 *p)
{
	return (__u32)p[0] << 8 | p[1];
}

static __always_inline __u32 be32(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

__noinline __u32 put_ip(__u32 o, __u32 a)
{
	o = put_dec(o, a >> 24);
	o = put(o, '.');
	o = put_dec(o, (a >> 16) & 0xff);
	o = put(o, '.');
	o = put_dec(o, (a >> 8) & 0xff);
	o = put(o, '.');
	return put_dec(o, a & 0xff);
}

/* The direction's head text: made past the line being written, then kept. */
static __always_inline struct kt_head *head_of(struct kt_key *k, __u32 o)
{
	struct kt_head *h = bpf_map_lookup_elem(&kt_heads, k), made = {};
	__u32 q, start = o + KT_LINE;

	if (h)
		return h;
	q = put_ip(start, k->a);
	q = put(q, '.');
	q = put_dec(q, k->pa);
	q = PUT_LIT(q, s_to);
	q = put_ip(q, k->b);
	q = put(q, '.');
	q = put_dec(q, k->pb);
	q = PUT_LIT(q, s_flags);
	made.len = q - start;
	if (made.len > 56)
		return NULL;
	for (int i = 0; i < 56; i++)
		made.t[i] = kt_out.t[(start + i) & MASK];
	bpf_map_update_elem(&kt_heads, k, &made, BPF_ANY);
	return bpf_map_lookup_elem(&kt_heads, k);
}

/* One record; 1 ends the walk. */
static long one(__u32 index, void *unused)
{
	__u32 zero = 0, pos, incl, orig, ip_len, seq, ack, len, o;
	struct kt_state *st = &kt_out.st;
	struct kt_bases *b, nb;
	struct kt_in_buf *in;
	struct kt_head *h;
	struct kt_key k, dk;
	const __u8 *rec, *d;
	__u8 fl;
	int rev;

	in = bpf_map_lookup_elem(&kt_in, &zero);
	if (!in)
		return 1;
	pos = st->pos;
	o = st->o;
	if (o > KT_OUT - 2 * KT_LINE - 64) {
		st->stop = KT_FULL;
		return 1;
	}
	if (pos > KT_CHUNK || st->end < pos || st->end - pos < 16)
		return 1; /* KT_MORE */
	rec = in->b + pos;
	incl = *(const __u32 *)(rec + 8);
	orig = *(const __u32 *)(rec + 12);
	if (incl != 66) {
		st->stop = KT_OTHER;
		return 1;
	}
	if (st->end - pos - 16 < 66)
		return 1; /* KT_MORE */
	d = rec + 16;
	/* The one shape (see the top of the file); anything else stops the walk. */
	ip_len = be16(d + 16);
	fl = d[47];
	if (d[12] != 0x08 || d[13] != 0x00 || d[14] != 0x45 || d[23] != 6 ||
	    (be16(d + 20) & 0x3fff) || d[46] != 0x80 || be32(d + 54) != 0x0101080a ||
	    (fl & ~0x08) != 0x10 || ip_len <= 52 || orig != 14 + ip_len) {
		st->stop = KT_OTHER;
		return 1;
	}
	dk.a = be32(d + 26);
	dk.b = be32(d + 30);
	dk.pa = be16(d + 34);
	dk.pb = be16(d + 36);
	seq = be32(d + 38);
	ack = be32(d + 42);
	len = ip_len - 52;

	h = head_of(&dk, o);
	if (!h) {
		st->stop = KT_OTHER;
		return 1;
	}
	/* tcpdump's conversation: keyed by the side with the lower port, then address */
	rev = dk.pa > dk.pb || (dk.pa == dk.pb && dk.a > dk.b);
	if (rev) {
		k.a = dk.b, k.b = dk.a, k.pa = dk.pb, k.pb = dk.pa;
	} else {
		k = dk;
	}
	b = bpf_map_lookup_elem(&kt_conv, &k);
	if (!b) {
		nb.seq = rev ? ack - 1 : seq;
		nb.ack = rev ? seq : ack - 1;
		if (bpf_map_update_elem(&kt_conv, &k, &nb, BPF_NOEXIST)) {
			st->stop = KT_OTHER; /* the table is full */
			return 1;
		}
	} else if (rev) {
		seq -= b->ack;
		ack -= b->seq;
	} else {
		seq -= b->seq;
		ack -= b->ack;
	}

	/* HH:MM:SS, made once a second, then the microseconds */
	if (*(const __u32 *)rec != st->last_sec || !st->hms) {
		__u32 day = (*(const __u32 *)rec + st->tz_off) % 86400, q;

		q = put2(o, day / 3600);
		q = put(q, ':');
		q = put2(q, day / 60 % 60);
		q = put(q, ':');
		put2(q, day % 60);
		st->hms = *(__u64 *)&kt_out.t[o & MASK];
		st->last_sec = *(const __u32 *)rec;
	}
	*(__u64 *)&kt_out.t[o & MASK] = st->hms;
	o = put(o + 8, '.');
	{
		__u32 us = *(const __u32 *)(rec + 4);

		o = put2(o, us / 10000);
		o = put2(o, us / 100 % 100);
		o = put2(o, us % 100);
	}
	o = PUT_LIT(o, s_ip);
	o = put_words(o, h->t, h->len & 63);
	if (fl & 0x08)
		o = put(o, 'P');
	o = put(o, '.');
	o = PUT_LIT(o, s_seq);
	o = put_dec(o, seq);
	o = put(o, ':');
	o = put_dec(o, seq + len);
	o = PUT_LIT(o, s_ack);
	o = put_dec(o, ack);
	o = PUT_LIT(o, s_win);
	o = put_dec(o, be16(d + 48));
	o = PUT_LIT(o, s_ts);
	o = put_dec(o, be32(d + 58));
	o = PUT_LIT(o, s_ecr);
	o = put_dec(o, be32(d + 62));
	o = PUT_LIT(o, s_len);
	o = put_dec(o, len);
	o = put(o, '\n');

	st->o = o;
	st->pos = pos + 16 + incl;
	st->lines++;
	return 0;
}

SEC("syscall")
int kernel_text(struct kt_ctx *ctx)
{
	struct kt_state *st = &kt_out.st;

	if (ctx->end > KT_CHUNK + 16 || ctx->pos > ctx->end)
		return 1;
	st->pos = ctx->pos;
	st->end = ctx->end;
	st->tz_off = ctx->tz_off;
	st->o = st->lines = st->stop = 0;
	st->hms = 0;
	bpf_loop((ctx->end - ctx->pos) / 16 + 1, one, NULL, 0);
	ctx->pos = st->pos;
	ctx->len = st->o;
	ctx->lines = st->lines;
	ctx->stop = st->stop;
	return 0;
}
