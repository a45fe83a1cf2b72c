"""What the capture program writes: ring-buffer records, per-CPU counters, and its frame rules.

The layouts are declared once in construct's spelling (``RECORD_HEADER``, ``COUNTERS``: readable;
``pybpf.sys.layout``, so that starting xdptcp does not import construct; their ``.construct()`` is
the test oracle) and mirrored by precompiled ``struct.Struct`` twins for the hot path; a test proves
the twins equal to the construct declarations and to the BTF clang emits for ``bpf/xdptcp.h``.
All integers are in host byte order; the captured frame bytes are as on the wire.

``parse_frame`` restates in Python how ``bpf/xdptcp.bpf.c`` parses a frame and which counter it
lands in; the filter's Python evaluator and the tests use it as the reference.
"""

from __future__ import annotations

import enum
import struct
from collections import namedtuple

from pybpf.sys.layout import Bytes, Default, Int8un, Int16un, Int32un, Int64un, Struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# struct xdptcp_record (without data[]): 72 bytes, so data[] starts 8-byte aligned.
RECORD_HEADER = Struct(
    "ts_ns" / Int64un,  # bpf_ktime_get_ns(): CLOCK_MONOTONIC
    "ifindex" / Int32un,
    "rx_queue" / Int32un,
    "wire_len" / Int32un,
    "cap_len" / Int16un,
    "l3_off" / Int16un,
    "l4_off" / Int16un,
    "l4_len" / Int16un,
    "ip_version" / Int8un,
    "vlans" / Int8un,
    "direction" / Int8un,  # enum xdptcp_direction: INGRESS (XDP) or EGRESS (tc)
    "reserved" / Int8un,
    "gso_segs" / Int16un,  # egress GSO packet: segments it becomes after the hook (0: none)
    "gso_size" / Int16un,  # ... and payload bytes per segment
    "reserved2" / Int32un,
    # The output file's record head (pcap or pcapng), written when xdptcp_out asks (OUT_*)
    "out" / Default(Bytes(32), bytes(32)),
)
RECORD_HEADER_SIZE = RECORD_HEADER.sizeof()
OUT_NONE, OUT_PCAP, OUT_PCAPNG = 0, 1, 2  # enum xdptcp_out
EPB_TRAILER = 16  # XDPTCP_EPB_TRAILER: bytes after data[capacity] with OUT_PCAPNG
# Where the file's record starts in a record: pcapng's block at out[1], pcap's header at out[4].
OUT_START = {OUT_PCAPNG: RECORD_HEADER_SIZE - 28, OUT_PCAP: RECORD_HEADER_SIZE - 16}

# struct xdptcp_counters: one per-CPU array entry.
COUNTER_NAMES = (
    "packets",
    "tcp",
    "matched",
    "emitted",
    "ring_full",
    "not_ip",
    "not_tcp",
    "fragments",
    "truncated",
    "malformed",
    "vlan_too_deep",
    "ext_too_deep",
)
# After the counters, two fields that are not counters: the ring's unread bytes when that CPU
# last looked (the program's XDPTCP_WAKEUP_AVAIL_STEP), and the filter's answer for the frame at
# hand (both programs read it back from there). Never added up nor shown.
COUNTERS = Struct(
    *(name / Int64un for name in COUNTER_NAMES), "wake_avail" / Int64un, "filter_answer" / Int64un
)

INGRESS, EGRESS = 0, 1  # enum xdptcp_direction
DEFAULT_CAPACITY = 256  # XDPTCP_DEFAULT_CAPACITY
MAX_CAPACITY = 4096  # XDPTCP_MAX_CAPACITY
MAX_VLANS = 2  # XDPTCP_MAX_VLANS
MAX_EXTHDRS = 6  # XDPTCP_MAX_EXTHDRS


def capacity_for(snaplen: Optional[int]) -> tuple[int, int, Optional[str]]:
    """For a -s value: (snaplen for the kernel, record capacity, a notice for the user or None)."""
    if snaplen is None:
        return 0, DEFAULT_CAPACITY, None
    if snaplen == 0 or snaplen > MAX_CAPACITY:
        return MAX_CAPACITY, MAX_CAPACITY, f"snaplen limited to {MAX_CAPACITY} bytes per packet"
    capacity = max(64, (snaplen + 7) // 8 * 8)
    return snaplen, capacity, None


def record_size(capacity: int, out: int = OUT_NONE) -> int:
    """Bytes the program reserves per record (without the ring's own 8-byte header)."""
    return RECORD_HEADER_SIZE + capacity + (EPB_TRAILER if out == OUT_PCAPNG else 0)


def record_layout(capacity: int = DEFAULT_CAPACITY):
    """A whole ring-buffer record as reserved by a program loaded with this capacity (a construct
    declaration: the reference the tests hold the fast decoder to)."""
    from construct import Bytes, Computed, Struct

    return Struct(
        "header" / RECORD_HEADER.construct(),
        "data" / Bytes(capacity),
        "captured" / Computed(lambda ctx: ctx.data[: ctx.header.cap_len]),
    )


Record = namedtuple(
    "Record",
    [
        "ts_ns",  # int
        "ifindex",  # int
        "rx_queue",  # int
        "wire_len",  # int
        "cap_len",  # int
        "l3_off",  # int
        "l4_off",  # int
        "l4_len",  # int
        "ip_version",  # int
        "vlans",  # int
        "direction",  # int: INGRESS or EGRESS
        "gso_segs",  # int: egress GSO packets: segments after the hook (0: leaves as it is)
        "gso_size",  # int: ... payload bytes per segment
        "data",  # bytes: the cap_len captured bytes, from the start of the frame
    ],
)
Record.__doc__ = """One record of the ring (struct xdptcp_record), decoded."""


def _truncated(self: Record) -> bool:
    """True when the record holds less than the whole frame."""
    return self.cap_len < self.wire_len


Record.truncated = property(_truncated)


# The hot-path twin of RECORD_HEADER: "=" is native order with no padding, like the C layout.
_HEADER = struct.Struct("=QIIIHHHHBBBBHHI32x")
assert _HEADER.size == RECORD_HEADER_SIZE
COUNTERS_STRUCT = struct.Struct("=" + "Q" * (len(COUNTER_NAMES) + 2))


def decode(buf: bytes) -> Record:
    """One record from a ring-buffer sample (any length >= header + cap_len)."""
    h = _HEADER.unpack_from(buf)
    cap_len = h[4]
    end = RECORD_HEADER_SIZE + cap_len
    if len(buf) < end:
        raise ValueError(f"record claims {cap_len} captured bytes but the sample has {len(buf)}")
    return Record(*h[:11], h[12], h[13], bytes(buf[RECORD_HEADER_SIZE:end]))


def encode(rec: Record, capacity: int = DEFAULT_CAPACITY) -> bytes:
    """The bytes the program would write for ``rec`` (tests and replay)."""
    head = _HEADER.pack(*rec[:11], 0, rec.gso_segs, rec.gso_size, 0)
    return head + rec.data.ljust(capacity, b"\0")


HEADER_SIZE = RECORD_HEADER_SIZE
# Just what a capture loop needs per record: ts_ns, ifindex, rx_queue, wire_len, cap_len, direction.
_BATCH = struct.Struct("=QIIIH8xB")


def unpack_records(
    blob: bytes,
    capacity: int,
    clock_offset_ns: int = 0,
    names: Optional[dict[int, str]] = None,
) -> list[tuple[int, str, bytes, int, int]]:
    """Decode back-to-back records of one capacity, the hot path of a capture loop.

    Returns ``(ts_ns + clock_offset_ns, interface name, captured bytes, wire_len, direction)``
    per record;
    ``clock_offset_ns`` turns CLOCK_MONOTONIC into wall-clock time, ``names`` maps ifindex to a
    name (``if<N>`` when missing).
    """
    size = RECORD_HEADER_SIZE + capacity
    names = names or {}
    view = memoryview(blob)
    out = []
    for off in range(0, len(blob) - size + 1, size):
        ts, ifindex, _, wire_len, cap_len, direction = _BATCH.unpack_from(blob, off)
        start = off + RECORD_HEADER_SIZE
        data = bytes(view[start : start + min(cap_len, capacity)])
        name = names.get(ifindex) or f"if{ifindex}"
        out.append((ts + clock_offset_ns, name, data, wire_len, direction))
    return out


def decode_counters(value: bytes) -> dict[str, int]:
    """One CPU's struct xdptcp_counters as a dict."""
    return dict(zip(COUNTER_NAMES, COUNTERS_STRUCT.unpack_from(value)))  # the last two left out


def sum_counters(per_cpu: list[bytes]) -> dict[str, int]:
    """Add up the per-CPU values of the counters map into one dict."""
    total = [0] * len(COUNTER_NAMES)
    for value in per_cpu:
        for i, n in zip(range(len(total)), COUNTERS_STRUCT.unpack_from(value)):
            total[i] += n  # (the last two fields are not counters)
    return dict(zip(COUNTER_NAMES, total))


# ---- the program's frame rules --------------------------------------------------------------


class Verdict(enum.Enum):
    """Where the program counts a frame (the counter of the same name)."""

    TCP = "tcp"
    NOT_IP = "not_ip"
    NOT_TCP = "not_tcp"
    FRAGMENT = "fragments"
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    VLAN_TOO_DEEP = "vlan_too_deep"
    EXT_TOO_DEEP = "ext_too_deep"


Frame = namedtuple(
    "Frame",
    [
        "vlans",  # int
        "vids",  # tuple[int, ...]
        "ip_version",  # int
        "l3_off",  # int
        "l4_off",  # int
        "l4_len",  # int
        "saddr",  # bytes
        "daddr",  # bytes
        "sport",  # int
        "dport",  # int
        "tcp_flags",  # int
        "port_ok",  # bool: libpcap `port`: IPv4, or IPv6 whose fixed header says TCP
        "tcp_ok",  # bool: libpcap `tcp`: also IPv6 -> fragment header -> TCP
    ],
)
Frame.__doc__ = """struct frame of the C program: what the filter may look at."""


_TPIDS = (0x8100, 0x88A8, 0x9100)
_IPV6_EXT_LEN = (0, 43, 60)  # hop-by-hop, routing, destination options: (len + 1) * 8
_IPV6_FRAGMENT = 44
# V_LATER_FRAGMENT: a later fragment of a TCP packet, which parse_frame makes Verdict.TCP
_LATER_FRAGMENT = object()


def parse_frame(frame: bytes) -> tuple[Verdict, Optional[Frame]]:
    """Classify a frame exactly as bpf/xdptcp.bpf.c does; a Frame only for Verdict.TCP."""
    n = len(frame)
    if n < 14:
        return Verdict.TRUNCATED, None
    proto, off, vids = int.from_bytes(frame[12:14], "big"), 14, []
    while proto in _TPIDS:
        if len(vids) == MAX_VLANS:
            return Verdict.VLAN_TOO_DEEP, None
        if off + 4 > n:
            return Verdict.TRUNCATED, None
        vids.append(int.from_bytes(frame[off : off + 2], "big") & 0x0FFF)
        proto, off = int.from_bytes(frame[off + 2 : off + 4], "big"), off + 4
    if proto == 0x0800:
        verdict, l3 = _ipv4(frame, off)
    elif proto == 0x86DD:
        verdict, l3 = _ipv6(frame, off)
    else:
        return Verdict.NOT_IP, None
    if verdict is _LATER_FRAGMENT:  # a TCP frame with no TCP header: its IP header's
        version, l4, saddr, daddr, port_ok, tcp_ok = l3
        return Verdict.TCP, Frame(
            len(vids), tuple(vids), version, off, l4, 0, saddr, daddr, 0, 0, 0, port_ok, tcp_ok
        )
    if verdict is Verdict.TCP:
        version, l4, saddr, daddr, port_ok, tcp_ok = l3
        if l4 + 20 > n:
            verdict = Verdict.TRUNCATED
        elif frame[l4 + 12] >> 4 < 5:
            verdict = Verdict.MALFORMED
        elif l4 + (frame[l4 + 12] >> 4) * 4 > n:
            verdict = Verdict.TRUNCATED
    if verdict in (Verdict.TRUNCATED, Verdict.MALFORMED) and _pcap_tcp(frame, off, proto):
        # headers not walked: the record holds the frame, as far as the program reads it
        version = 4 if proto == 0x0800 else 6
        return Verdict.TCP, Frame(
            len(vids), tuple(vids), version, off, 0, n, b"", b"", 0, 0, 0, True, True
        )
    if verdict is not Verdict.TCP:
        return verdict, None
    doff = frame[l4 + 12] >> 4
    sport, dport = struct.unpack_from("!HH", frame, l4)
    return Verdict.TCP, Frame(
        len(vids), tuple(vids), version, off, l4, doff * 4, saddr, daddr,
        sport, dport, frame[l4 + 13], port_ok, tcp_ok,
    )  # fmt: skip


def _pcap_tcp(frame: bytes, l3: int, proto: int) -> bool:
    """libpcap's ``tcp`` after the EtherType (pcap_tcp of the C program): the IPv4 protocol
    byte; the IPv6 next header, or a fragment header's right after the fixed header. Only
    where the fixed header (and that fragment header) is whole: the program reads no byte its
    parse did not check."""
    n = len(frame)
    if proto == 0x0800:
        return l3 + 20 <= n and frame[l3 + 9] == 6
    if l3 + 40 > n:
        return False
    if frame[l3 + 6] == _IPV6_FRAGMENT:
        return l3 + 48 <= n and frame[l3 + 40] == 6
    return frame[l3 + 6] == 6


def _ipv4(frame: bytes, off: int) -> tuple[Verdict, Optional[tuple]]:
    if off + 20 > len(frame):
        return Verdict.TRUNCATED, None
    version, ihl = frame[off] >> 4, frame[off] & 0x0F
    if version != 4 or ihl < 5:
        return Verdict.MALFORMED, None
    if off + ihl * 4 > len(frame):
        return Verdict.TRUNCATED, None
    later = int.from_bytes(frame[off + 6 : off + 8], "big") & 0x1FFF
    if frame[off + 9] != 6:
        return (Verdict.FRAGMENT if later else Verdict.NOT_TCP), None
    addrs = bytes(frame[off + 12 : off + 16]), bytes(frame[off + 16 : off + 20])
    return (_LATER_FRAGMENT if later else Verdict.TCP), (4, off + ihl * 4, *addrs, True, True)


def _ipv6(frame: bytes, off: int) -> tuple[Verdict, Optional[tuple]]:
    if off + 40 > len(frame):
        return Verdict.TRUNCATED, None
    if frame[off] >> 4 != 6:
        return Verdict.MALFORMED, None
    nexthdr = frame[off + 6]
    port_ok = tcp_ok = nexthdr == 6
    addrs = bytes(frame[off + 8 : off + 24]), bytes(frame[off + 24 : off + 40])
    pos = off + 40
    for i in range(MAX_EXTHDRS):
        if nexthdr == 6:
            break
        if pos + 8 > len(frame):
            return Verdict.TRUNCATED, None
        if nexthdr in _IPV6_EXT_LEN:
            step = (frame[pos + 1] + 1) * 8
        elif nexthdr == _IPV6_FRAGMENT:
            tcp_ok = tcp_ok or (i == 0 and frame[pos] == 6)
            if int.from_bytes(frame[pos + 2 : pos + 4], "big") & 0xFFF8:
                if not tcp_ok:
                    return Verdict.FRAGMENT, None
                return _LATER_FRAGMENT, (6, pos + 8, *addrs, port_ok, tcp_ok)
            step = 8
        else:
            return Verdict.NOT_TCP, None
        nexthdr, pos = frame[pos], pos + step
    if nexthdr != 6:
        return Verdict.EXT_TOO_DEEP, None
    return Verdict.TCP, (6, pos, *addrs, port_ok, tcp_ok)
