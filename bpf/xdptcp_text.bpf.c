// SPDX-License-Identifier: GPL-2.0
/*
 * xdptcp's offline text walk: `xdptcp -r FILE` (text, tcpdump's default time, no filter) hands
 * the kernel a chunk of a classic pcap file (this machine's byte order, Ethernet, microseconds)
 * that user space read into the mmapped array map xdptcp_text_in, as for the record walker
 * (bpf/xdptcp_walk.bpf.c), and runs this program with BPF_PROG_TEST_RUN. For each record of the
 * usual shape it writes tcpdump's `-nn` line into the text buffer of .bss (mmapped too), exactly
 * as xdptcp's Python walk (xdptcp/tcpdump.py, TextFormatter.mapped_lines) makes it; every other
 * record it hands back: user space prints it with the Python code, in its place. The shape:
 *
 *   - untagged Ethernet; IPv4 without options or fragmenting, or IPv6 without extension
 *     headers; the IP lengths within the frame's wire length; the whole TCP header captured;
 *   - options of the kinds tcpdump's fast path knows in their usual lengths (eol, nop, mss,
 *     wscale, sackOK, sack, TS: xdptcp.tcpopts.fast_options);
 *   - a record no longer than the file's snapshot, with a time tcpdump prints as usual, within
 *     the span user space gave the local time's offset for.
 *
 * A payload that tcpdump decodes by its ports (xdptcp.appproto) is printed here only when that
 * decoder prints the protocol's name alone for it (HTTP or RTSP text that starts no word, or
 * nothing: NFS's); for any other, user space puts the decoder's text after the line.
 *
 * Relative sequence numbers are tcpdump's (print-tcp.c's tcp_seq_hash, xdptcp.tcpdump's
 * SeqTracker), kept in the hash map xdptcp_text_conv: the one table of the walk. User space
 * reads and writes it for the records it prints itself (xdptcp.textwalk), and empties it when
 * it is full, as SeqTracker does; so that it does in file order, the walk stops after each
 * record it hands back that may be TCP. The text of the addresses and ports of each direction
 * is made once and kept in xdptcp_text_heads; an IPv6 direction's is made by user space (RFC
 * 5952 text): the walk stops for it, and goes on once it is there.
 *
 * Output, in .bss: the text, and a list of entries in file order (struct xt_out).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* The largest record start a chunk can hold: xdptcp.mapped's CHUNK + MAX_RECORD + 16. */
#define XT_DATA ((1u << 20) + 262144u + 16u)
#define XT_SLACK 256u          /* past a record's start: more than any read of its headers */
#define XT_MAX_RECORD 262144u
#define XT_TEXT (1u << 21)      /* the text buffer, a power of two (the stores' mask) */
#define XT_LINE 512u            /* room for the longest line made */
#define XT_ENTRIES 8192u
#define XT_ENTRY_WORDS 4u
#define XT_CONVERSATIONS (1u << 20) /* xdptcp.tcpdump.FLOW_TABLE_MAX */
#define XT_HEADS 65536u
#define MASK (XT_TEXT - 1)
#define XT_TZ_PYTHON 0x7fffffff

enum xt_stop {
	XT_MORE = 0,   /* the chunk is walked: the next record is not all in it */
	XT_LIMIT = 1,  /* lines + records handed back reached ctx->limit */
	XT_FULL = 2,   /* the text or the entries are full: run again from ctx->pos */
	XT_HEAD = 3,   /* the record at ctx->pos needs its direction's text (IPv6) */
	XT_TIME = 4,   /* the record at ctx->pos is outside [tz_lo, tz_hi) */
	XT_LOOK = 5,   /* the last entry's record may change the conversations: user space
			* prints it before the walk goes on from ctx->pos */
};

/* BPF_PROG_TEST_RUN's context, read and written in place. */
struct xt_ctx {
	__u32 pos;       /* in: the first record; out: the first one not walked */
	__u32 end;       /* in: the end of the bytes in the chunk */
	__u32 limit;     /* in: stop once lines + handed back reach this; 0: no limit */
	__u32 snap;      /* in: the file's snapshot length; a record captured longer: handed back */
	__s32 tz_off;    /* in: the local time's offset from UTC, seconds, for seconds in (or
			  * XT_TZ_PYTHON: user space prints them; a leap second's 23:59:60): */
	__u32 tz_lo;     /* [tz_lo, */
	__u32 tz_hi;     /* tz_hi) */
	__u32 absolute;  /* in: -S, sequence numbers as they are */
	__u32 conv_max;  /* in: conversations the table holds before SeqTracker empties it */
	__u32 n;         /* out: entries */
	__u32 lines;     /* out: lines made */
	__u32 looks;     /* out: records handed back */
	__u32 len;       /* out: bytes of text */
	__u32 stop;      /* out: enum xt_stop */
};

struct xt_in_buf {
	__u8 b[XT_DATA + XT_SLACK];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct xt_in_buf);
} xdptcp_text_in SEC(".maps");

/* A conversation: the side with the lower port first (then the lower address), as SeqTracker
 * keys it. IPv4 addresses in the first 4 bytes of a and b. */
struct xt_key {
	__u8 ver;
	__u8 pad;
	__u16 pa, pb;
	__u8 a[16], b[16];
};

/* SeqTracker's tuple: (seq base, ack base) of the key's side. */
struct xt_bases {
	__u32 b0, b1;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XT_CONVERSATIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xt_key);
	__type(value, struct xt_bases);
} xdptcp_text_conv SEC(".maps");

/* A direction's "IP 198.18.0.1.40000 > 198.18.0.2.80: Flags [" (keyed by source first). */
struct xt_head {
	__u32 len;
	char t[124];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XT_HEADS);
	__type(key, struct xt_key);
	__type(value, struct xt_head);
} xdptcp_text_heads SEC(".maps");

/* tcpdump's flags text and "]", by the flags byte (xdptcp.tcpdump.FLAG_CLOSE): user space fills it. */
struct xt_word {
	__u32 len;
	char t[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct xt_word);
} xdptcp_text_flags SEC(".maps");

/* By port: 0, no decoder; else 0x8000 | the decoder's place in tcpdump's order << 4 | what it
 * prints for a payload: 0 nothing, 1 (user space decodes it), 2 + i: xdptcp_text_said[i] when
 * the payload starts no word (its first byte is not captured, or not printable). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u16);
} xdptcp_text_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct xt_word);
} xdptcp_text_said SEC(".maps");

/* The walk's state and output, the only variable of .bss (an mmapped array map at its offset
 * 0). A global, so that the global functions below, which the verifier checks once each rather
 * than at every call, write the text without a pointer argument; and a map value rather than
 * the stack, so that the loop's callback is checked once whatever values the state takes. */
struct xt_state {
	__u32 pos, end, limit, snap;
	__s32 tz_off;
	__u32 tz_lo, tz_hi, absolute;
	__u32 n, lines, looks, o, stop;
	__u32 count;     /* conversations in xdptcp_text_conv: user space writes it too */
	__u32 last_sec;
	__u32 conv_max;
	__u64 hms;       /* "HH:MM:SS" of last_sec as one word (0: none yet) */
};

struct xt_out {
	struct xt_state st;
	/* Per record handed back: (where in the text, the record, 0, 0), its line goes there;
	 * per payload user space decodes: (the line's newline, the record, the payload's start in
	 * the chunk, its length | the decoder's xdptcp_text_ports value << 16), its text goes
	 * before that newline. */
	__u32 e[XT_ENTRY_WORDS * XT_ENTRIES];
	char t[XT_TEXT + 64];       /* 64: a word stored at the last masked offset stays inside */
};

struct xt_out xt;

/* The options' walk, one option a step (xt_opt_step). */
struct xt_opts {
	__u32 at;      /* the options' first byte in the chunk */
	__u32 n;       /* their length */
	__u32 cp;      /* the next option */
	__u32 o;       /* the text's end */
	__u32 base;    /* SACK blocks print relative to it */
	__u32 bad;     /* 1: not of the fast path's kinds and lengths */
	__u32 first;   /* 1 before the first option's text */
};

struct xt_opts xt_o;

static __always_inline __u32 put(__u32 o, char c)
{
	xt.t[o & MASK] = c;
	return o + 1;
}

/* Decimal digits of v; division by ten as a multiplication and a shift. */
__noinline __u32 xt_dec(__u32 o, __u32 v)
{
	__u32 end = o + 1 + (v >= 10) + (v >= 100) + (v >= 1000) + (v >= 10000) + (v >= 100000) +
		    (v >= 1000000) + (v >= 10000000) + (v >= 100000000) + (v >= 1000000000);

	for (__u32 i = 1; i <= 10; i++) {
		__u32 q = ((__u64)v * 0xCCCCCCCDull) >> 35; /* v / 10 for every 32-bit v */

		xt.t[(end - i) & MASK] = '0' + (v - q * 10);
		v = q;
		if (!v)
			break;
	}
	return end;
}

/* A literal's n bytes (n a constant), a word at a time: s is padded to hold its last word. */
static __always_inline __u32 put_lit(__u32 o, const char *s, __u32 n)
{
	for (__u32 i = 0; i < n; i += 8)
		*(__u64 *)&xt.t[(o + i) & MASK] = *(const __u64 *)(s + i);
	return o + n;
}

#define LITERAL(name, text)                                                                 \
	static const char name[] = text "\0\0\0\0\0\0\0";                                   \
	enum { name##_len = sizeof(text) - 1 }
#define PUT_LIT(o, name) put_lit(o, name, name##_len)

/* n (below 128) bytes of s, a word at a time: s must have n rounded up to 8 readable bytes. */
static __always_inline __u32 put_words(__u32 o, const char *s, __u32 n, __u32 room)
{
	for (__u32 i = 0; i < 128; i += 8) {
		if (i >= n || i + 8 > room)
			break;
		*(__u64 *)&xt.t[(o + i) & MASK] = *(const __u64 *)(s + i);
	}
	return o + n;
}

static __always_inline __u32 be16(const __u8 *p)
{
	return (__u32)p[0] << 8 | p[1];
}

static __always_inline __u32 be32(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

LITERAL(s_to, " > ");
LITERAL(s_flags, ": Flags [");
LITERAL(s_seq, ", seq ");
LITERAL(s_ack, ", ack ");
LITERAL(s_win, ", win ");
LITERAL(s_urg, ", urg ");
LITERAL(s_opts, ", options [");
LITERAL(s_len, ", length ");
LITERAL(s_ts, "TS val ");
LITERAL(s_ecr, " ecr ");
LITERAL(s_mss, "mss ");
LITERAL(s_wscale, "wscale ");
LITERAL(s_sackok, "sackOK");
LITERAL(s_sack, "sack ");
LITERAL(s_nop, "nop");
LITERAL(s_eol, "eol");

__noinline __u32 xt_ip4(__u32 o, __u32 a)
{
	o = xt_dec(o, a >> 24);
	o = put(o, '.');
	o = xt_dec(o, (a >> 16) & 0xff);
	o = put(o, '.');
	o = xt_dec(o, (a >> 8) & 0xff);
	o = put(o, '.');
	return xt_dec(o, a & 0xff);
}

/* One option of the list (see xdptcp.tcpopts.fast_options_sack); 1 ends the walk. */
static long xt_opt_step(__u32 index, void *unused)
{
	struct xt_opts *w = &xt_o;
	__u32 zero = 0, cp = w->cp, n = w->n, o = w->o, len, kind;
	struct xt_in_buf *in;
	const __u8 *p;

	if (cp >= n || n > 40)
		return 1;
	in = bpf_map_lookup_elem(&xdptcp_text_in, &zero);
	if (!in || w->at > XT_DATA + 128)
		return 1;
	p = in->b + w->at + (cp & 63);
	kind = p[0];
	if (!w->first)
		o = put(o, ',');
	w->first = 0;
	if (kind == 1) {
		w->o = PUT_LIT(o, s_nop);
		w->cp = cp + 1;
		return 0;
	}
	if (kind == 0) {
		w->o = PUT_LIT(o, s_eol);
		return 1;
	}
	if (cp + 2 > n)
		goto bad;
	len = p[1];
	if (cp + len > n)
		goto bad;
	if (kind == 8 && len == 10) {
		o = PUT_LIT(o, s_ts);
		o = xt_dec(o, be32(p + 2));
		o = PUT_LIT(o, s_ecr);
		o = xt_dec(o, be32(p + 6));
	} else if (kind == 2 && len == 4) {
		o = PUT_LIT(o, s_mss);
		o = xt_dec(o, be16(p + 2));
	} else if (kind == 3 && len == 3) {
		o = PUT_LIT(o, s_wscale);
		o = xt_dec(o, p[2]);
	} else if (kind == 4 && len == 2) {
		o = PUT_LIT(o, s_sackok);
	} else if (kind == 5 && len >= 10 && (len - 2) % 8 == 0) {
		__u32 blocks = (len - 2) / 8;

		o = PUT_LIT(o, s_sack);
		o = xt_dec(o, blocks);
		o = put(o, ' ');
		for (__u32 i = 0; i < 4 && i < blocks; i++) {
			o = put(o, '{');
			o = xt_dec(o, be32(p + 2 + 8 * i) - w->base);
			o = put(o, ':');
			o = xt_dec(o, be32(p + 6 + 8 * i) - w->base);
			o = put(o, '}');
		}
	} else {
		goto bad;
	}
	w->o = o;
	w->cp = cp + len;
	return 0;
bad:
	w->bad = 1;
	return 1;
}

/* An entry (see struct xt_out); 1 when the entries are full. */
static __always_inline int entry(struct xt_state *st, __u32 at, __u32 pos, __u32 pay, __u32 len)
{
	__u32 n = st->n, i = (XT_ENTRY_WORDS * n) & (XT_ENTRY_WORDS * XT_ENTRIES - 1);

	if (n >= XT_ENTRIES)
		return 1;
	xt.e[i] = at;
	xt.e[(i + 1) & (XT_ENTRY_WORDS * XT_ENTRIES - 1)] = pos;
	xt.e[(i + 2) & (XT_ENTRY_WORDS * XT_ENTRIES - 1)] = pay;
	xt.e[(i + 3) & (XT_ENTRY_WORDS * XT_ENTRIES - 1)] = len;
	st->n = n + 1;
	return 0;
}

/* Hand the record at pos back; 1 when the entries are full (the walk stops before it). */
static __always_inline int hand_back(struct xt_state *st, __u32 pos)
{
	if (entry(st, st->o, pos, 0, 0))
		return 1;
	st->looks++;
	return 0;
}

/* Whether Python's line for the frame d (incl bytes) may change the conversations: not when
 * it is plainly no TCP (ARP, or ICMP or UDP in a whole IP header). */
static __always_inline int may_be_tcp(const __u8 *d, __u32 incl)
{
	if (incl < 14)
		return 1;
	if (d[12] == 0x08 && d[13] == 0x06)
		return 0;
	if (d[12] == 0x08 && d[13] == 0x00 && incl >= 34 && (d[14] >> 4) == 4)
		return d[23] != 1 && d[23] != 17;
	if (d[12] == 0x86 && d[13] == 0xdd && incl >= 54 && (d[14] >> 4) == 6)
		return d[20] != 17 && d[20] != 58;
	return 1;
}

/* The record being printed, for the global functions below (which take no pointers). */
struct xt_cur {
	struct xt_key dk;   /* its direction: source first */
	struct xt_key k;    /* its conversation: the side with the lower port first */
	struct xt_bases nb; /* the conversation's new bases, when it gets them */
	__u32 sec, usec, seq, ack, flags, win, urg, payload, app, sack_base;
	__u32 rev;
	__u32 insert;       /* 1: nb goes into the table once the line is made */
};

struct xt_cur xt_c;

#define XT_NONE 0xffffffffu

/* The head text of xt_c's direction at o: kept, or made now (IPv4). XT_NONE: user space makes
 * it (IPv6), or it does not fit. */
__noinline __u32 xt_head(__u32 o)
{
	struct xt_key *dk = &xt_c.dk;
	struct xt_head *h = bpf_map_lookup_elem(&xdptcp_text_heads, dk);
	__u32 q, start = o + XT_LINE;
	struct xt_head made = {};

	if (!h) {
		if (dk->ver != 4)
			return XT_NONE;
		q = put(start, 'I');
		q = put(q, 'P');
		q = put(q, ' ');
		q = xt_ip4(q, be32(dk->a));
		q = put(q, '.');
		q = xt_dec(q, dk->pa);
		q = PUT_LIT(q, s_to);
		q = xt_ip4(q, be32(dk->b));
		q = put(q, '.');
		q = xt_dec(q, dk->pb);
		q = PUT_LIT(q, s_flags);
		made.len = q - start;
		if (made.len > 120)
			return XT_NONE;
		for (int i = 0; i < 120; i++)
			made.t[i] = xt.t[(start + i) & MASK];
		bpf_map_update_elem(&xdptcp_text_heads, dk, &made, BPF_ANY);
		h = bpf_map_lookup_elem(&xdptcp_text_heads, dk);
		if (!h)
			return XT_NONE;
	}
	return put_words(o, h->t, h->len & 127, sizeof(h->t));
}

/* "HH:MM:SS.uuuuuu " of xt_c's time at o, the first eight made once a second. */
__noinline __u32 xt_time(__u32 o)
{
	struct xt_state *st = &xt.st;
	__u32 sec = xt_c.sec, usec = xt_c.usec;

	if (sec != st->last_sec || !st->hms) {
		/* (two days on: positive whatever the offset, which is below a day) */
		__u64 t = (__u64)sec + 2 * 86400 + (__s64)st->tz_off;
		__u32 day = t % 86400, q;

		q = put(o, '0' + day / 36000);
		q = put(q, '0' + day / 3600 % 10);
		q = put(q, ':');
		q = put(q, '0' + day / 600 % 6);
		q = put(q, '0' + day / 60 % 10);
		q = put(q, ':');
		q = put(q, '0' + day % 60 / 10);
		put(q, '0' + day % 10);
		st->hms = *(__u64 *)&xt.t[o & MASK];
		st->last_sec = sec;
	}
	*(__u64 *)&xt.t[o & MASK] = st->hms;
	o = put(o + 8, '.');
	o = put(o, '0' + usec / 100000);
	o = put(o, '0' + usec / 10000 % 10);
	o = put(o, '0' + usec / 1000 % 10);
	o = put(o, '0' + usec / 100 % 10);
	o = put(o, '0' + usec / 10 % 10);
	o = put(o, '0' + usec % 10);
	return put(o, ' ');
}

/* The flags' text and "]", the sequence numbers, the window, the urgent pointer. */
__noinline __u32 xt_numbers(__u32 o)
{
	__u32 flags = xt_c.flags, payload = xt_c.payload, seq = xt_c.seq;
	struct xt_word *w = bpf_map_lookup_elem(&xdptcp_text_flags, &flags);

	if (!w)
		return o;
	o = put_words(o, w->t, w->len & 15, sizeof(w->t));
	if (payload) {
		o = PUT_LIT(o, s_seq);
		o = xt_dec(o, seq);
		o = put(o, ':');
		o = xt_dec(o, seq + payload);
	} else if (flags & 0x07) {
		o = PUT_LIT(o, s_seq);
		o = xt_dec(o, seq);
	}
	if (flags & 0x10) {
		o = PUT_LIT(o, s_ack);
		o = xt_dec(o, xt_c.ack);
	}
	o = PUT_LIT(o, s_win);
	o = xt_dec(o, xt_c.win);
	if (flags & 0x20) {
		o = PUT_LIT(o, s_urg);
		o = xt_dec(o, xt_c.urg);
	}
	return o;
}

/* ", options [...]" of the n option bytes at the chunk's offset at; XT_NONE when they are not
 * of the fast path's kinds and lengths. nop,nop,TS alone, the usual, is made in one go. */
__noinline __u32 xt_options(__u32 o, __u32 at, __u32 n)
{
	__u32 zero = 0;
	struct xt_in_buf *in = bpf_map_lookup_elem(&xdptcp_text_in, &zero);
	const __u8 *p;

	__u64 a = at;

	/* one register, checked and used: clang would otherwise check one copy and add another */
	asm volatile("" : "+r"(a));
	if (!in || a > XT_DATA + 128)
		return XT_NONE;
	p = in->b + a;
	if (n == 12 && p[0] == 1 && p[1] == 1 && p[2] == 8 && p[3] == 10) {
		__u32 val = be32(p + 4), ecr = be32(p + 8);

		o = PUT_LIT(o, s_opts);
		o = PUT_LIT(o, s_nop);
		o = put(o, ',');
		o = PUT_LIT(o, s_nop);
		o = put(o, ',');
		o = PUT_LIT(o, s_ts);
		o = xt_dec(o, val);
		o = PUT_LIT(o, s_ecr);
		o = xt_dec(o, ecr);
		return put(o, ']');
	}
	o = PUT_LIT(o, s_opts);
	xt_o.at = at;
	xt_o.n = n;
	xt_o.cp = 0;
	xt_o.o = o;
	xt_o.base = xt_c.sack_base;
	xt_o.bad = 0;
	xt_o.first = 1;
	bpf_loop(40, xt_opt_step, NULL, 0);
	if (xt_o.bad)
		return XT_NONE;
	return put(xt_o.o, ']');
}

/* ", length N", and what the payload's decoder says of it, and the newline. */
__noinline __u32 xt_end(__u32 o)
{
	__u32 app = xt_c.app;

	o = PUT_LIT(o, s_len);
	o = xt_dec(o, xt_c.payload);
	if ((app & 0xf) >= 2) {
		__u32 i = (app & 0xf) - 2;
		struct xt_word *said = bpf_map_lookup_elem(&xdptcp_text_said, &i);

		if (said)
			o = put_words(o, said->t, said->len & 15, sizeof(said->t));
	}
	return put(o, '\n');
}

/* SeqTracker.lookup without its change: xt_c's seq and ack made relative to the
 * conversation's bases, the SACK base, and whether new bases go in once the line is made. */
__noinline int xt_lookup(void)
{
	struct xt_bases *b = bpf_map_lookup_elem(&xdptcp_text_conv, &xt_c.k);
	__u32 seq = xt_c.seq, ack = xt_c.ack, rev = xt_c.rev;

	if (!b || (xt_c.flags & 0x02)) {
		xt_c.nb.b0 = rev ? ack - 1 : seq;
		xt_c.nb.b1 = rev ? seq : ack - 1;
		xt_c.sack_base = ack - 1;
		xt_c.insert = b ? 1 : 2;
		return 0;
	}
	xt_c.insert = 0;
	if (rev) {
		xt_c.sack_base = b->b0;
		xt_c.seq = seq - b->b1;
		xt_c.ack = ack - b->b0;
	} else {
		xt_c.sack_base = b->b1;
		xt_c.seq = seq - b->b0;
		xt_c.ack = ack - b->b1;
	}
	return 0;
}

/* The change xt_lookup left: 1 when it cannot be made here (user space goes on: the table is
 * full, and SeqTracker empties it first). */
__noinline int xt_commit(void)
{
	struct xt_state *st = &xt.st;

	if (!xt_c.insert)
		return 0;
	if (st->count >= st->conv_max)
		return 1;
	if (bpf_map_update_elem(&xdptcp_text_conv, &xt_c.k, &xt_c.nb, BPF_ANY))
		return 1;
	if (xt_c.insert == 2)
		st->count++;
	return 0;
}

/* The payload's decoder, by tcpdump's order of its ports (xdptcp.appproto.decoder). */
__noinline __u32 xt_app(void)
{
	__u32 ps = xt_c.dk.pa, pd = xt_c.dk.pb;
	__u16 *vs = bpf_map_lookup_elem(&xdptcp_text_ports, &ps);
	__u16 *vd = bpf_map_lookup_elem(&xdptcp_text_ports, &pd);
	__u16 s = vs ? *vs : 0, t = vd ? *vd : 0;

	if (s && (!t || (s & 0x0ff0) <= (t & 0x0ff0)))
		return s;
	return t;
}

/* The source address above the destination, byte by byte (SeqTracker's tie-break). */
__noinline int xt_src_above(void)
{
	for (int i = 0; i < 16; i++)
		if (xt_c.dk.a[i] != xt_c.dk.b[i])
			return xt_c.dk.a[i] > xt_c.dk.b[i];
	return 0;
}

/* One record; 1 ends the walk. */
static long xt_record(__u32 index, void *unused)
{
	__u32 zero = 0, pos, incl, orig, sec, usec, ip_len, length, hlen, l4, nxt, o, app = 0;
	struct xt_state *st = &xt.st;
	struct xt_in_buf *in;
	const __u8 *rec, *d;
	int track, note;

	in = bpf_map_lookup_elem(&xdptcp_text_in, &zero);
	if (!in)
		return 1;
	pos = st->pos;
	o = st->o;
	if (st->limit && st->lines + st->looks >= st->limit) {
		st->stop = XT_LIMIT;
		return 1;
	}
	if (o > XT_TEXT - 2 * XT_LINE - 64 || st->n >= XT_ENTRIES) {
		st->stop = XT_FULL;
		return 1;
	}
	if (pos > XT_DATA || st->end < pos || st->end - pos < 16)
		return 1; /* XT_MORE */
	rec = in->b + pos;
	sec = *(const __u32 *)rec;
	usec = *(const __u32 *)(rec + 4);
	incl = *(const __u32 *)(rec + 8);
	orig = *(const __u32 *)(rec + 12);
	if (incl > XT_MAX_RECORD) {
		hand_back(st, pos); /* user space says the file is damaged */
		st->pos = st->end;
		return 1;
	}
	nxt = pos + 16 + incl;
	if (nxt > st->end)
		return 1; /* XT_MORE */
	d = rec + 16;
	/* what the Python walk's fast path takes (mapped_lines), untagged */
	if (incl > st->snap || incl > orig || orig > XT_MAX_RECORD || sec >= 0x80000000 ||
	    usec >= 1000000)
		goto python;
	if (d[12] == 0x08 && d[13] == 0x00) {
		if (incl < 14 + 40 || d[14] != 0x45 || d[23] != 6 || (be16(d + 20) & 0x1fff))
			goto python;
		ip_len = be16(d + 16);
		if (ip_len < 40 || 14 + ip_len > orig)
			goto python; /* (below 40: no room for a header of 20; Python says which) */
		length = ip_len - 20;
		l4 = 14 + 20;
		xt_c.dk.ver = 4;
		__builtin_memcpy(xt_c.dk.a, d + 26, 4);
		__builtin_memcpy(xt_c.dk.b, d + 30, 4);
		__builtin_memset(xt_c.dk.a + 4, 0, 12);
		__builtin_memset(xt_c.dk.b + 4, 0, 12);
	} else if (d[12] == 0x86 && d[13] == 0xdd) {
		if (incl < 14 + 60 || d[14] >> 4 != 6 || d[20] != 6)
			goto python;
		length = be16(d + 18);
		if (!length || 14 + 40 + length > orig)
			goto python;
		l4 = 14 + 40;
		xt_c.dk.ver = 6;
		__builtin_memcpy(xt_c.dk.a, d + 22, 16);
		__builtin_memcpy(xt_c.dk.b, d + 38, 16);
	} else {
		goto python;
	}
	xt_c.dk.pad = 0;
	hlen = (d[l4 + 12] >> 4) * 4;
	if (hlen < 20 || hlen > length || l4 + hlen > incl)
		goto python;
	if (sec < st->tz_lo || sec >= st->tz_hi) {
		st->stop = XT_TIME;
		return 1;
	}
	if (st->tz_off == XT_TZ_PYTHON)
		goto python;
	xt_c.sec = sec;
	xt_c.usec = usec;
	xt_c.dk.pa = be16(d + l4);
	xt_c.dk.pb = be16(d + l4 + 2);
	xt_c.seq = be32(d + l4 + 4);
	xt_c.ack = be32(d + l4 + 8);
	xt_c.flags = d[l4 + 13];
	xt_c.win = be16(d + l4 + 14);
	xt_c.urg = be16(d + l4 + 18);
	xt_c.payload = length - hlen;
	xt_c.sack_base = 0;
	xt_c.insert = 0;

	/* the payload's decoder: its name alone, made here; its text, made by user space */
	note = 0;
	if (xt_c.payload) {
		app = xt_app();
		if (app) {
			__u32 kind = app & 0xf, at = l4 + hlen;

			if (kind == 1 ||
			    (kind >= 2 && at < incl && d[at & 0x7f] >= 0x21 && d[at & 0x7f] <= 0x7e))
				note = 1; /* a decoder that reads the payload, or a word it reads */
		}
	}
	xt_c.app = note ? 0 : app;

	/* the conversation: the side with the lower port first (then the lower address) */
	xt_c.rev = xt_c.dk.pa > xt_c.dk.pb || (xt_c.dk.pa == xt_c.dk.pb && xt_src_above());
	track = (xt_c.flags & 0x10) && !st->absolute;
	if (track) {
		if (xt_c.rev) {
			xt_c.k.ver = xt_c.dk.ver;
			xt_c.k.pad = 0;
			xt_c.k.pa = xt_c.dk.pb;
			xt_c.k.pb = xt_c.dk.pa;
			__builtin_memcpy(xt_c.k.a, xt_c.dk.b, 16);
			__builtin_memcpy(xt_c.k.b, xt_c.dk.a, 16);
		} else {
			xt_c.k = xt_c.dk;
		}
		xt_lookup();
	}

	/* the line, in its order; the table changes only once it is made */
	{
		__u32 h = xt_head(o + 16);

		if (h == XT_NONE) {
			if (xt_c.dk.ver == 6) {
				st->stop = XT_HEAD;
				return 1;
			}
			goto python;
		}
		xt_time(o);
		h = xt_numbers(h);
		if (hlen > 20) {
			h = xt_options(h, pos + 16 + l4 + 20, hlen - 20);
			if (h == XT_NONE)
				goto python;
		}
		h = xt_end(h);
		if (xt_commit())
			goto python;
		if (note)
			entry(st, h - 1, pos, pos + 16 + l4 + hlen, xt_c.payload | app << 16);
		o = h;
	}
	st->o = o;
	st->lines++;
	st->pos = nxt;
	return 0;

python:
	if (hand_back(st, pos)) {
		st->stop = XT_FULL;
		return 1;
	}
	st->pos = nxt;
	if (may_be_tcp(d, incl)) {
		st->stop = XT_LOOK; /* in file order: the conversations are one table */
		return 1;
	}
	return 0;
}

SEC("syscall")
int xdptcp_text(struct xt_ctx *ctx)
{
	struct xt_state *st = &xt.st;

	if (ctx->end > XT_DATA + 16 || ctx->pos > ctx->end)
		return 1;
	st->pos = ctx->pos;
	st->end = ctx->end;
	st->limit = ctx->limit;
	st->snap = ctx->snap;
	st->tz_off = ctx->tz_off;
	st->tz_lo = ctx->tz_lo;
	st->tz_hi = ctx->tz_hi;
	st->absolute = ctx->absolute;
	st->conv_max = ctx->conv_max < XT_CONVERSATIONS ? ctx->conv_max : XT_CONVERSATIONS;
	st->n = st->lines = st->looks = st->o = st->stop = 0;
	st->hms = 0;
	bpf_loop((ctx->end - ctx->pos) / 16 + 1, xt_record, NULL, 0);
	ctx->pos = st->pos;
	ctx->n = st->n;
	ctx->lines = st->lines;
	ctx->looks = st->looks;
	ctx->len = st->o;
	ctx->stop = st->stop;
	return 0;
}

static long xt_forget(void *map, struct xt_key *key, struct xt_bases *val, void *unused)
{
	bpf_map_delete_elem(map, key);
	return 0;
}

/* SeqTracker's clear(): every conversation forgotten. */
SEC("syscall")
int xdptcp_text_clear(void *ctx)
{
	bpf_for_each_map_elem(&xdptcp_text_conv, xt_forget, NULL, 0);
	xt.st.count = 0;
	return 0;
}
