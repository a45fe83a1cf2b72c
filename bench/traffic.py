"""The W1 workload: a pcap of TCP frames with mixed header lengths, and a pcap record counter.

Frames are built here from the RFCs (Ethernet II, IPv4 RFC 791, IPv6 RFC 8200, TCP RFC 9293 with
the options of RFC 7323 and RFC 2018), with correct checksums so that any reader accepts them.
The mix cycles through every TCP header length from 20 to 60 bytes, one frame in five is IPv6,
and one in three carries a payload of 1 to 600 bytes. The destination MAC is a locally
administered unicast address that is not the capturing interface's, so the kernel stack drops
each frame after XDP instead of answering it (no RSTs mixed into the capture).

Generating a million frames takes some seconds, so files are cached under build/bench/ by name.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

PCAP_MAGIC_MICRO = 0xA1B2C3D4
PCAP_MAGIC_NANO = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
LINKTYPE_ETHERNET = 1
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
IPPROTO_TCP = 6
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

DST_MAC = bytes.fromhex("02aabbccdd01")
SRC_MAC = bytes.fromhex("02aabbccdd02")
FLAG_MIX = (TCP_ACK, TCP_PSH | TCP_ACK, TCP_ACK, TCP_SYN, TCP_SYN | TCP_ACK, TCP_FIN | TCP_ACK)
CACHE = Path(__file__).resolve().parent.parent / "build" / "bench"


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words."""
    if len(data) % 2:
        data += b"\0"
    words = array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_options(length: int, seq: int) -> bytes:
    """Options that fill exactly ``length`` bytes (a multiple of 4, at most 40): timestamps first,
    then MSS, window scale, SACK-permitted and SACK blocks, NOP padding last."""
    out = b""
    if length - len(out) >= 12:
        out += b"\x01\x01\x08\x0a" + struct.pack("!II", seq & 0xFFFFFFFF, (seq >> 3) & 0xFFFFFFFF)
    if length - len(out) >= 4:
        out += struct.pack("!BBH", 2, 4, 1460)
    if length - len(out) >= 4:
        out += b"\x01\x03\x03\x07"
    if length - len(out) >= 4:
        out += b"\x01\x01\x04\x02"
    blocks = (length - len(out) - 4) // 8
    if blocks > 0:
        out += b"\x01\x01" + struct.pack("!BB", 5, 2 + 8 * blocks)
        for i in range(blocks):
            out += struct.pack("!II", seq + 1000 * (i + 1), seq + 1000 * (i + 1) + 500)
    return out + b"\x01" * (length - len(out))


@dataclass(frozen=True)
class Flow:
    v6: bool
    src: bytes
    dst: bytes
    sport: int
    dport: int


def tcp_segment(flow: Flow, seq: int, ack: int, flags: int, opt_len: int, payload: bytes) -> bytes:
    opts = tcp_options(opt_len, seq)
    doff = (20 + len(opts)) // 4
    head = (
        struct.pack(
            "!HHIIBBHHH",
            flow.sport,
            flow.dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            doff << 4,
            flags,
            64240,
            0,
            0,
        )
        + opts
    )
    seg = head + payload
    if flow.v6:
        pseudo = flow.src + flow.dst + struct.pack("!IxxxB", len(seg), IPPROTO_TCP)
    else:
        pseudo = flow.src + flow.dst + struct.pack("!xBH", IPPROTO_TCP, len(seg))
    csum = checksum(pseudo + seg)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def frame(flow: Flow, seq: int, ack: int, flags: int, opt_len: int, payload: bytes) -> bytes:
    seg = tcp_segment(flow, seq, ack, flags, opt_len, payload)
    if flow.v6:
        ip = struct.pack("!IHBB", 6 << 28, len(seg), IPPROTO_TCP, 64) + flow.src + flow.dst
        return DST_MAC + SRC_MAC + struct.pack("!H", ETH_P_IPV6) + ip + seg
    ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(seg), seq & 0xFFFF, 0x4000, 64, IPPROTO_TCP, 0)
    ip += flow.src + flow.dst
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return DST_MAC + SRC_MAC + struct.pack("!H", ETH_P_IP) + ip + seg


def flows(n: int = 64) -> list[Flow]:
    """``n`` flows, every fifth over IPv6; addresses in 198.18.0.0/15 and 2001:db8::/32."""
    out = []
    for i in range(n):
        if i % 5 == 4:
            src = bytes.fromhex(f"20010db8000000010000000000{i:06x}")
            dst = bytes.fromhex("20010db8000000020000000000000001")
            out.append(Flow(True, src, dst, 40000 + i, 443))
        else:
            out.append(
                Flow(False, bytes([198, 18, 100, i + 1]), bytes([198, 19, 0, 1]), 40000 + i, 80)
            )
    return out


def w1_frames(count: int) -> Iterator[bytes]:
    """The W1 mix: 11 TCP header lengths (20..60 B), 1 in 5 IPv6, 1 in 3 with 1..600 B payload."""
    fl = flows()
    seqs = [1_000_000 * (i + 1) for i in range(len(fl))]
    for i in range(count):
        k = i % len(fl)
        opt_len = 4 * (i % 11)
        payload = _payload(i) if i % 3 == 0 else b""
        flags = FLAG_MIX[(i // len(fl)) % len(FLAG_MIX)]
        yield frame(fl[k], seqs[k], 5_000_000 + i, flags, opt_len, payload)
        seqs[k] += len(payload) or 1


_PATTERN = bytes(range(256)) * 4


def _payload(i: int) -> bytes:
    start = i % 256
    return _PATTERN[start : start + 1 + (i * 37) % 600]


def write_pcap(path: Path, frames: Iterator[bytes], start: float = 1_700_000_000.0) -> int:
    """A classic microsecond pcap, one record every 10 us of capture time. Returns the count."""
    n = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("=IHHiIII", PCAP_MAGIC_MICRO, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        usec = int(start * 1_000_000)
        rec = struct.Struct("=IIII")
        for data in frames:
            t = usec + 10 * n
            f.write(rec.pack(t // 1_000_000, t % 1_000_000, len(data), len(data)))
            f.write(data)
            n += 1
    tmp.rename(path)
    return n


def w1_pcap(count: int) -> Path:
    """The cached W1 pcap with ``count`` frames (built on first use)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"w1-{count}.pcap"
    if not path.exists():
        print(f"bench: building {path} ({count:,} frames)", file=sys.stderr, flush=True)
        write_pcap(path, w1_frames(count))
    return path


def count_pcap_records(path: Path) -> int:
    """Packets in a pcap or pcapng file, counted from the record headers alone (no decoding)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 4:
            return 0
        (magic,) = struct.unpack("<I", head[:4])
        if magic == PCAPNG_SHB:
            f.seek(0)
            return _count_pcapng(f)
        for order in "<>":
            (m,) = struct.unpack(order + "I", head[:4])
            if m in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO):
                break
        else:
            raise ValueError(f"{path}: not a pcap file (magic 0x{magic:08x})")
        rec = struct.Struct(order + "IIII")
        n = 0
        while True:
            hdr = f.read(16)
            if len(hdr) < 16:
                return n
            caplen = rec.unpack(hdr)[2]
            f.seek(caplen, 1)
            n += 1


def _count_pcapng(f) -> int:
    """Enhanced (6), simple (3) and obsolete (2) packet blocks; the byte order is per section."""
    n = 0
    order = "<"
    while True:
        hdr = f.read(12)
        if len(hdr) < 12:
            return n
        btype = struct.unpack("<I", hdr[:4])[0]
        if btype == PCAPNG_SHB:
            order = "<" if hdr[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        else:
            btype = struct.unpack(order + "I", hdr[:4])[0]
        length = struct.unpack(order + "I", hdr[4:8])[0]
        if btype in (2, 3, 6):
            n += 1
        f.seek(length - 12, 1)


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
