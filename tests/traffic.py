"""Traffic built from Python: frames for unit tests, filter tests and live replay.

Everything here is plain bytes on the wire, checksums correct unless asked otherwise:

    frame = tcp_frame("198.18.0.2", "198.18.0.1", 40000, 5001, flags="S",
                      options=(mss(1460), sack_ok(), timestamp(1, 0), nop(), wscale(7)))
    write_pcap("x.pcap", [frame])

Addresses come only from 198.18.0.0/15 and 2001:db8::/32. Ports avoid every port tcpdump 4.99
decodes as an application protocol (print-tcp.c: 21 22 23 25 43 53 80 139 179 323 445 554 639
646 1723 2049 6379 6633 6653 8080 8554 10288): xdptcp ends a line as tcpdump does for some of
them only (``xdptcp/appproto.py``; tests/test_appproto.py compares those), so a payload on the
others would make tcpdump's line longer than ours and the comparison meaningless.

``varied_pcap`` writes the standard varied capture (deterministic for a given seed) and returns
what it wrote, each frame marked with whether it is a TCP line (``Frame.tcp``).
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Union

# Ports tcpdump 4.99 hands to an application printer (print-tcp.c, tcp.h). Never use them.
TCPDUMP_DECODED_PORTS = frozenset(
    (21, 22, 23, 25, 43, 53, 80, 139, 179, 323, 445, 554, 639, 646, 1723, 2049, 6379, 6633, 6653,
     8080, 8554, 10288)
)  # fmt: skip

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")

# tcpdump's flag letters, bit values from the TCP header's flags byte; "N" is the AE (ex-NS)
# bit, which lives in the data-offset byte and tcpdump 4.99 does not print.
FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "A": 0x10, "U": 0x20,
             "E": 0x40, "W": 0x80, "N": 0x100}  # fmt: skip


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _addr(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


def _is6(a: str) -> bool:
    return ipaddress.ip_address(a).version == 6


# --- TCP options (each returns the option's bytes) --------------------------------------------


def eol() -> bytes:
    return b"\x00"


def nop() -> bytes:
    return b"\x01"


def raw_option(kind: int, data: bytes = b"", length: int | None = None) -> bytes:
    """Any option; ``length`` overrides the length byte (for malformed options)."""
    return bytes((kind, len(data) + 2 if length is None else length)) + data


def mss(value: int) -> bytes:
    return raw_option(2, struct.pack("!H", value))


def wscale(shift: int) -> bytes:
    return raw_option(3, bytes((shift,)))


def sack_ok() -> bytes:
    return raw_option(4)


def sack(*blocks: tuple[int, int]) -> bytes:
    return raw_option(5, b"".join(struct.pack("!II", a, b) for a, b in blocks))


def timestamp(val: int, ecr: int) -> bytes:
    return raw_option(8, struct.pack("!II", val, ecr))


def md5(signature: bytes = bytes(range(16))) -> bytes:
    return raw_option(19, signature)


def uto(value: int) -> bytes:
    return raw_option(28, struct.pack("!H", value))


def tfo(cookie: bytes = b"") -> bytes:
    """RFC 7413 Fast Open; an empty cookie is a cookie request."""
    return raw_option(34, cookie)


def tfo_experimental(cookie: bytes = b"") -> bytes:
    """The pre-RFC experimental encoding (kind 254, magic 0xF989)."""
    return raw_option(254, b"\xf9\x89" + cookie)


def mptcp(subtype: int, rest: bytes = b"", low_bits: int = 0) -> bytes:
    return raw_option(30, bytes(((subtype << 4) | low_bits,)) + rest)


def tcp_ao(keyid: int, rnext: int, mac: bytes = b"") -> bytes:
    return raw_option(29, bytes((keyid, rnext)) + mac)


# --- headers -----------------------------------------------------------------------------------


def flag_bits(flags: Union[str, int]) -> int:
    if isinstance(flags, int):
        return flags
    return sum(FLAG_BITS[c] for c in set(flags))


def tcp_segment(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    *,
    seq: int = 0,
    ack: int = 0,
    flags: Union[str, int] = "S",
    win: int = 65535,
    options: Sequence[bytes] = (),
    payload: bytes = b"",
    urg: int = 0,
    doff: int | None = None,
) -> bytes:
    """TCP header + payload with a correct checksum; options padded with EOL to 4 bytes."""
    opts = b"".join(options)
    opts += b"\0" * (-len(opts) % 4)
    bits = flag_bits(flags)
    offset = (5 + len(opts) // 4) if doff is None else doff
    header = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        (offset << 4) | (bits >> 8),
        bits & 0xFF,
        win,
        0,
        urg,
    )
    segment = header + opts + payload
    return _with_l4_checksum(segment, 16, src, dst, IPPROTO_TCP)


def _with_l4_checksum(segment: bytes, at: int, src: str, dst: str, proto: int) -> bytes:
    if _is6(src):
        pseudo = _addr(src) + _addr(dst) + struct.pack("!IxxxB", len(segment), proto)
    else:
        pseudo = _addr(src) + _addr(dst) + struct.pack("!xBH", proto, len(segment) & 0xFFFF)
    csum = checksum(pseudo + segment)
    if proto == IPPROTO_UDP and csum == 0:
        csum = 0xFFFF
    return segment[:at] + struct.pack("!H", csum) + segment[at + 2 :]


def ipv4_packet(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ttl: int = 64,
    ip_options: bytes = b"",
    ident: int = 1,
    frag_offset: int = 0,
    more_frags: bool = False,
    dont_frag: bool = False,
    tos: int = 0,
    total_length: int | None = None,
) -> bytes:
    """IPv4 header (options padded to 4 bytes with EOL) + payload; ``frag_offset`` in bytes."""
    opts = ip_options + b"\0" * (-len(ip_options) % 4)
    ihl = 5 + len(opts) // 4
    length = ihl * 4 + len(payload) if total_length is None else total_length
    off = (frag_offset // 8) | (0x2000 if more_frags else 0) | (0x4000 if dont_frag else 0)
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, tos, length, ident, off, ttl, proto, 0, _addr(src),
        _addr(dst),
    )  # fmt: skip
    header += opts
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


class ExtHeader(NamedTuple):
    """An IPv6 extension header: its protocol number and body after the next-header byte."""

    proto: int
    body: bytes


def _padded_options(options: bytes) -> bytes:
    """Options area of HBH/DSTOPT: total header length a multiple of 8, padded with PadN/Pad1."""
    pad = -(2 + len(options)) % 8
    if pad == 1:
        return options + b"\x00"
    if pad:
        return options + bytes((1, pad - 2)) + bytes(pad - 2)
    return options


def hop_by_hop(options: bytes = b"") -> ExtHeader:
    opts = _padded_options(options)
    return ExtHeader(IPPROTO_HOPOPTS, bytes(((2 + len(opts)) // 8 - 1,)) + opts)


def dest_options(options: bytes = b"") -> ExtHeader:
    opts = _padded_options(options)
    return ExtHeader(IPPROTO_DSTOPTS, bytes(((2 + len(opts)) // 8 - 1,)) + opts)


def routing(addresses: Sequence[str], rtype: int = 0, segleft: int = 0) -> ExtHeader:
    """Type 0 / 2 routing header (type 0 is deprecated but tcpdump still prints it)."""
    addrs = b"".join(_addr(a) for a in addresses)
    return ExtHeader(
        IPPROTO_ROUTING, bytes((2 * len(addresses), rtype, segleft)) + bytes(4) + addrs
    )


def fragment(offset: int = 0, more: bool = False, ident: int = 0x1234) -> ExtHeader:
    """``offset`` in bytes (a multiple of 8)."""
    return ExtHeader(IPPROTO_FRAGMENT, struct.pack("!xHI", (offset & ~7) | int(more), ident))


def auth_header(icv: bytes = bytes(12), spi: int = 0x100, seq: int = 1) -> ExtHeader:
    """IPsec AH (RFC 4302): its length field counts 4-byte words, minus 2. As an IPv4 payload:
    ``bytes((next_proto,)) + auth_header().body``."""
    length = (12 + len(icv)) // 4 - 2
    return ExtHeader(IPPROTO_AH, struct.pack("!BHII", length, 0, spi, seq) + icv)


def ipv6_packet(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    hlim: int = 64,
    ext: Sequence[ExtHeader] = (),
    payload_length: int | None = None,
    flow: int = 0,
) -> bytes:
    chain = [h.proto for h in ext] + [proto]
    body = b"".join(bytes((chain[i + 1],)) + h.body for i, h in enumerate(ext)) + payload
    plen = len(body) if payload_length is None else payload_length
    header = struct.pack("!IHBB16s16s", 0x60000000 | flow, plen, chain[0], hlim, _addr(src),
                         _addr(dst))  # fmt: skip
    return header + body


def ethernet(
    payload: bytes, ethertype: int, vlans: Sequence[int] = (), qinq: bool = False
) -> bytes:
    """Ethernet II; ``vlans`` outermost first. With ``qinq`` the outer tag is 802.1ad (0x88a8)."""
    tags = b""
    for i, vid in enumerate(vlans):
        tpid = ETH_P_8021AD if (qinq and i == 0 and len(vlans) > 1) else ETH_P_8021Q
        tags += struct.pack("!HH", tpid, vid & 0xFFFF)
    return DST_MAC + SRC_MAC + tags + struct.pack("!H", ethertype) + payload


_V4_KEYS = ("ip_options", "ident", "frag_offset", "more_frags", "dont_frag", "tos",
            "total_length", "ttl")  # fmt: skip
_V6_KEYS = ("ipv6_ext", "payload_length", "flow", "ttl")


def _ip(src: str, dst: str, proto: int, l4: bytes, vlans, qinq, kw) -> bytes:
    unknown = set(kw) - set(_V6_KEYS if _is6(src) else _V4_KEYS)
    if unknown:
        family = "IPv6" if _is6(src) else "IPv4"
        raise TypeError(f"{family} frame: unknown keyword(s) {', '.join(sorted(unknown))}")
    if _is6(src):
        ext = kw.pop("ipv6_ext", ())
        v6 = {k: kw[k] for k in ("payload_length", "flow") if k in kw}
        packet = ipv6_packet(src, dst, proto, l4, hlim=kw.get("ttl", 64), ext=ext, **v6)
        return ethernet(packet, ETH_P_IPV6, vlans, qinq)
    v4 = {k: kw[k] for k in ("ip_options", "ident", "frag_offset", "more_frags", "dont_frag",
                             "tos", "total_length", "ttl") if k in kw}  # fmt: skip
    return ethernet(ipv4_packet(src, dst, proto, l4, **v4), ETH_P_IP, vlans, qinq)


_TCP_KEYS = ("seq", "ack", "flags", "win", "options", "payload", "urg", "doff")


def tcp_frame(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    *,
    vlans: Sequence[int] = (),
    qinq: bool = False,
    **fields: object,
) -> bytes:
    """A whole Ethernet frame carrying TCP over IPv4 or IPv6 (chosen by the address family).

    TCP keywords are ``tcp_segment``'s (``seq``, ``ack``, ``flags``, ``win``, ``options``,
    ``payload``, ``urg``, ``doff``). IP keywords: ``ttl`` (hop limit for IPv6), IPv4
    ``ip_options``, ``frag_offset`` (bytes), ``more_frags``, ``dont_frag``, ``ident``, ``tos``,
    ``total_length``; IPv6 ``ipv6_ext`` (a sequence of ``hop_by_hop()``/``dest_options()``/
    ``routing()``/``fragment()``), ``payload_length``, ``flow``.
    """
    tcp = {k: fields.pop(k) for k in _TCP_KEYS if k in fields}
    segment = tcp_segment(src, dst, sport, dport, **tcp)
    return _ip(src, dst, IPPROTO_TCP, segment, vlans, qinq, fields)


def udp_frame(src: str, dst: str, sport: int = 40001, dport: int = 40002, payload: bytes = b"x",
              *, vlans: Sequence[int] = (), **ip: object) -> bytes:  # fmt: skip
    datagram = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    datagram = _with_l4_checksum(datagram, 6, src, dst, IPPROTO_UDP)
    return _ip(src, dst, IPPROTO_UDP, datagram, vlans, False, dict(ip))


def icmp_frame(src: str, dst: str, *, ident: int = 7, seq: int = 1, payload: bytes = b"ping",
               vlans: Sequence[int] = ()) -> bytes:  # fmt: skip
    """An echo request (ICMP for IPv4, ICMPv6 for IPv6)."""
    if _is6(src):
        msg = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload
        msg = _with_l4_checksum(msg, 2, src, dst, IPPROTO_ICMPV6)
        return _ip(src, dst, IPPROTO_ICMPV6, msg, vlans, False, {})
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
    return _ip(src, dst, IPPROTO_ICMP, msg, vlans, False, {})


def arp_frame(sender: str, target: str, *, vlans: Sequence[int] = ()) -> bytes:
    """An ARP who-has request, broadcast."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, SRC_MAC, _addr(sender), bytes(6),
                       _addr(target))  # fmt: skip
    frame = ethernet(body, ETH_P_ARP, vlans)
    return b"\xff" * 6 + frame[6:]


# --- pcap files ---------------------------------------------------------------------------------

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1

FrameLike = Union[bytes, tuple]


class Frame(NamedTuple):
    ts_ns: int
    data: bytes
    wire_len: int
    tcp: bool = True  # does tcpdump print a TCP line for it (our formatter must too)


def _frames(frames: Iterable[FrameLike], start_ns: int, step_ns: int) -> list[Frame]:
    """Accept bytes, (ts_ns, data), (ts_ns, data, wire_len) or Frame."""
    out = []
    ts = start_ns
    for f in frames:
        if isinstance(f, Frame):
            out.append(f)
        elif isinstance(f, (bytes, bytearray)):
            out.append(Frame(ts, bytes(f), len(f)))
        elif len(f) == 2:
            out.append(Frame(f[0], bytes(f[1]), len(f[1])))
        else:
            out.append(Frame(f[0], bytes(f[1]), f[2]))
        ts += step_ns
    return out


def write_pcap(
    path,
    frames: Iterable[FrameLike],
    start_ts: float = 1_700_000_000.0,
    nano: bool = False,
    step_ns: int = 1_000_000,
    snaplen: int = 262144,
    big_endian: bool = False,
    linktype: int = LINKTYPE_ETHERNET,
) -> list[Frame]:
    """Write a classic pcap file; frames without a timestamp get start_ts + i*step_ns.

    Timestamps are truncated to microseconds unless ``nano``. Returns the frames written.
    """
    order = ">" if big_endian else "<"
    start_ns = round(start_ts * 1_000_000_000)
    written = _frames(frames, start_ns, step_ns)
    magic = PCAP_MAGIC_NS if nano else PCAP_MAGIC_US
    chunks = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for f in written:
        sec, frac = divmod(f.ts_ns, 1_000_000_000)
        if not nano:
            frac //= 1000
        chunks.append(struct.pack(order + "IIII", sec, frac, len(f.data), f.wire_len) + f.data)
    with open(path, "wb") as out:
        out.write(b"".join(chunks))
    return written


def damaged_pcap(src, dst, record: int, cut: Union[int, str]):
    """A copy of the classic pcap file ``src`` (this machine's byte order) at ``dst``, damaged at
    record ``record`` (0 is the first): the file ends ``cut`` bytes into that record (its header
    or its frame cut short), or, with ``cut="bogus"``, the record claims a captured length of
    1 GiB. Returns ``dst``."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    pos = 24
    for _ in range(record):
        pos += 16 + struct.unpack_from("=I", data, pos + 8)[0]
    if cut == "bogus":
        struct.pack_into("=I", data, pos + 8, 1 << 30)
    else:
        del data[pos + cut :]
    with open(dst, "wb") as f:
        f.write(bytes(data))
    return dst


# --- the standard varied capture ----------------------------------------------------------------

A4, B4, C4, D4 = "198.18.0.2", "198.18.0.1", "198.19.7.9", "198.18.200.33"
A6, B6, C6 = "2001:db8::2", "2001:db8::1", "2001:db8:0:1:0:0:0:7"


def _handshake_and_data(rng: random.Random, src, dst, sport, dport, **kw) -> list[bytes]:
    """SYN, SYN-ACK, ACK, a few data segments both ways with TS, a SACK, FIN exchange."""
    isn_c, isn_s = rng.getrandbits(32), rng.getrandbits(32)
    ts_c, ts_s = rng.getrandbits(32), rng.getrandbits(32)
    syn_opts = (mss(1460), sack_ok(), timestamp(ts_c, 0), nop(), wscale(7))
    c, s = isn_c + 1, isn_s + 1
    frames = [
        tcp_frame(src, dst, sport, dport, seq=isn_c, flags="S", win=64240, options=syn_opts, **kw),
        tcp_frame(dst, src, dport, sport, seq=isn_s, ack=c, flags="S.", win=65160,
                  options=(mss(1400), sack_ok(), timestamp(ts_s, ts_c), nop(), wscale(9)), **kw),
        tcp_frame(src, dst, sport, dport, seq=c, ack=s, flags=".", win=502,
                  options=(nop(), nop(), timestamp(ts_c + 1, ts_s)), **kw),
    ]  # fmt: skip
    for i in range(rng.randint(2, 5)):
        n = rng.randint(1, 300)
        frames.append(
            tcp_frame(
                src,
                dst,
                sport,
                dport,
                seq=c,
                ack=s,
                flags="P.",
                win=502,
                options=(nop(), nop(), timestamp(ts_c + 2 + i, ts_s)),
                payload=bytes(rng.getrandbits(8) for _ in range(n)),
                **kw,
            )
        )
        c += n
        m = rng.choice((0, 0, rng.randint(1, 200)))
        frames.append(tcp_frame(dst, src, dport, sport, seq=s, ack=c, flags="P." if m else ".",
                                win=509, options=(nop(), nop(), timestamp(ts_s + 1 + i, ts_c + 2)),
                                payload=b"r" * m, **kw))  # fmt: skip
        s += m
    frames.append(tcp_frame(dst, src, dport, sport, seq=s, ack=c, flags=".", win=509,
                            options=(nop(), nop(), sack((c + 100, c + 200), (c + 300, c + 400))),
                            **kw))  # fmt: skip
    frames.append(tcp_frame(src, dst, sport, dport, seq=c, ack=s, flags="F.", win=502, **kw))
    frames.append(tcp_frame(dst, src, dport, sport, seq=s, ack=c + 1, flags="F.", win=509, **kw))
    frames.append(tcp_frame(src, dst, sport, dport, seq=c + 1, ack=s + 1, flags=".", win=502, **kw))
    return frames


def _option_zoo() -> list[bytes]:
    """One frame per option shape tcpdump names, plus malformed lengths."""
    mk = lambda opts, flags="S.", **kw: tcp_frame(A4, B4, 41000, 5001, seq=7, ack=9,  # noqa: E731
                                                   flags=flags, options=opts, **kw)  # fmt: skip
    return [
        mk((mss(536),)),
        mk((wscale(14), sack_ok(), eol())),
        mk((nop(), nop(), sack((1, 2)))),
        mk((sack((10, 20), (30, 40), (50, 60)),), flags="."),
        mk((tfo(),), flags="S"),
        mk((tfo(bytes.fromhex("0102030405060708")),), flags="S"),
        mk((tfo(b"\x01\x02\x03"),), flags="S"),  # odd cookie length: invalid
        mk((tfo_experimental(bytes.fromhex("a1a2a3a4")),), flags="S"),
        mk((tfo_experimental(),), flags="S"),
        mk((raw_option(254, b"\x12\x34\x56"),), flags="S"),
        mk((uto(0x8001),)),
        mk((uto(600),)),
        mk((md5(),)),
        mk((md5(),), payload=b"signed"),
        mk((raw_option(6, b"\x00\x00\x00\x2a"), raw_option(7, b"\x00\x00\x00\x2b"))),
        mk((raw_option(11, b"\x00\x00\x01\x00"), raw_option(12, b"\x00\x00\x01\x01"))),
        mk((raw_option(13, b"\x00\x00\x01\x02"),)),
        mk((raw_option(20, b"\x0f\x03"),)),
        mk((tcp_ao(3, 4, bytes(range(12))),)),
        mk((tcp_ao(3, 4),)),
        mk((raw_option(29, b""),)),
        mk((raw_option(99, b"\xde\xad"), raw_option(200))),
        mk((mptcp(0, b"\x81" + bytes(range(8)), low_bits=1),), flags="S"),
        mk((mptcp(0, b"\x01", low_bits=1),), flags="S"),
        mk((mptcp(0, b"\x01" + bytes(range(16)), low_bits=0),), flags="."),
        mk((mptcp(1, b"\x05" + bytes(range(8)), low_bits=1),), flags="S"),
        mk((mptcp(1, b"\x05" + bytes(range(12))),), flags="S."),
        mk((mptcp(1, b"\x00" + bytes(range(20))),), flags="."),
        mk((mptcp(2, b"\x15" + bytes(range(4)) + bytes(range(10, 20))),), flags="."),
        mk(
            (
                mptcp(
                    2, b"\x0f" + bytes(range(8)) + bytes(range(8)) + bytes(range(6)) + b"\x12\x34"
                ),
            ),
            flags=".",
        ),  # fmt: skip
        mk((mptcp(3, b"\x07" + _addr("198.18.3.4")),), flags="."),
        mk((mptcp(3, b"\x07" + _addr("198.18.3.4") + b"\x13\x89"),), flags="."),
        mk((mptcp(3, b"\x07" + _addr("2001:db8::9") + bytes(8), low_bits=0),), flags="."),
        mk((mptcp(4, b"\x01\x02\x03"),), flags="."),
        mk((mptcp(5, b"\x04", low_bits=1),), flags="."),
        mk((mptcp(5, b""),), flags="."),
        mk((mptcp(6, b"\x00" + bytes(range(8))),), flags="."),
        mk((mptcp(7, b"\x00" + bytes(range(8))),), flags="."),
        mk((mptcp(9, b"\x00"),), flags="."),
        mk((mptcp(2, b"\x01"),), flags="S"),  # dss on SYN: tcpdump says bad opt
        # malformed lengths
        mk((raw_option(2, b"\x05\xb4\x00", length=5),)),
        mk((raw_option(2, b"", length=2),)),
        mk((raw_option(8, b"\x00" * 8, length=1),)),
        mk(
            (
                nop(),
                raw_option(3, b"\x07", length=40),
            )
        ),
        mk((raw_option(5, b"\x00" * 6),)),
        mk((timestamp(5, 6), raw_option(8, b"\x00" * 4))),
        mk((eol(), mss(1460))),
        mk((nop(),) * 8),
    ]


def _flag_zoo() -> list[bytes]:
    mk = lambda flags, **kw: tcp_frame(C4, D4, 5001, 5002, seq=1000, ack=2000,  # noqa: E731
                                        flags=flags, **kw)  # fmt: skip
    return [
        mk(0),
        mk("FSRP.UEW", urg=7),
        mk("SEW"),
        mk("S.E"),
        mk(".W", payload=b"ecn"),
        mk(".N"),
        mk("SN"),
        mk("P.U", urg=3, payload=b"urgent"),
        mk("U", urg=65535),
        mk("R"),
        mk("R.", payload=b"reset data"),
        mk("F"),
        mk("FP.", payload=b"bye"),
    ]


def _odd_frames() -> list[Frame]:
    """Truncations, bad header lengths, fragments: (data, wire_len) pairs."""
    full = tcp_frame(A4, B4, 42000, 5001, seq=5, ack=6, flags="P.",
                     options=(nop(), nop(), timestamp(1, 2)), payload=b"p" * 100)  # fmt: skip
    full6 = tcp_frame(A6, B6, 42000, 5001, seq=5, ack=6, flags="P.",
                      options=(nop(), nop(), timestamp(1, 2)), payload=b"p" * 100)  # fmt: skip
    odd = [
        (full[: 14 + 20 + 2], len(full)),  # only the source port
        (full[: 14 + 20 + 4], len(full)),  # ports, no more
        (full[: 14 + 20 + 13], len(full)),
        (full[: 14 + 20 + 20], len(full)),  # header without options
        (full[: 14 + 20 + 26], len(full)),  # options cut mid-TS
        (full[: 14 + 20 + 32], len(full)),  # whole header, no payload (what XDP hands over)
        (full6[: 14 + 40 + 31], len(full6)),
        (full6[: 14 + 40 + 32], len(full6)),
    ]
    frames = [(d, w) for d, w in odd]
    frames += [(f, len(f)) for f in (
        tcp_frame(A4, B4, 42001, 5001, flags="S", doff=4),
        tcp_frame(A4, B4, 42001, 5001, flags=".", doff=2, payload=b"xy"),
        tcp_frame(A4, B4, 42001, 5001, flags="S", doff=15),
        tcp_frame(A4, B4, 42001, 5001, flags="S", doff=15, payload=bytes(60)),
        tcp_frame(A6, B6, 42001, 5001, flags="S", doff=3),
        tcp_frame(A4, B4, 42002, 5001, flags="P.", ack=1, payload=b"f" * 64, more_frags=True,
                  ident=77),
        tcp_frame(A4, B4, 42002, 5001, flags="P.", ack=1, payload=b"g" * 64, frag_offset=800,
                  ident=77),
        tcp_frame(A4, B4, 42003, 5001, flags="S", ip_options=b"\x94\x04\x00\x00"),  # router alert
        tcp_frame(A4, B4, 42003, 5001, flags="S", ip_options=b"\x01\x01\x01\x00"),
        tcp_frame(A4, B4, 42003, 5001, flags="S", ip_options=bytes((7, 11, 4)) + bytes(8),
                  ttl=1),  # record route
        tcp_frame(A4, B4, 42004, 5001, flags="P.", ack=1, payload=b"z" * 10,
                  total_length=20 + 20 + 4),  # IP length says 4 bytes of payload
    )]  # fmt: skip
    return [Frame(0, d, w) for d, w in frames]


def _ipv6_zoo() -> list[bytes]:
    mk = lambda ext, **kw: tcp_frame(A6, C6, 43000, 5001, seq=11, ack=12, flags="S.",  # noqa: E731
                                      options=(mss(1440),), ipv6_ext=ext, **kw)  # fmt: skip
    return [
        mk(()),
        mk((hop_by_hop(),)),
        mk((hop_by_hop(b"\x05\x02\x00\x00"),)),  # router alert
        mk((dest_options(),)),
        mk((hop_by_hop(), dest_options())),
        mk((fragment(0, more=True),), payload=b"first"),
        mk((fragment(0, more=False),)),
        mk((routing([B6, "2001:db8:ffff::1"], rtype=0, segleft=1),)),
        mk((hop_by_hop(), routing([B6], rtype=2, segleft=1), dest_options())),
        tcp_frame(A6, C6, 43001, 5001, flags="S", ttl=255, flow=0xABCDE),
        tcp_frame("2001:db8:0:0:1::1", "2001:db8::", 43002, 5001, flags="R.", seq=1, ack=1),
    ]


def jumbo_option(value: int, length: int = 4) -> bytes:
    """The hop-by-hop Jumbo Payload option (RFC 2675); ``length`` other than 4 is malformed."""
    return bytes((0xC2, length)) + value.to_bytes(4, "big")[:length] + bytes(max(0, length - 4))


def jumbogram(payload_len: int = 70000, *, extra: Sequence[ExtHeader] = (),
              jumbo: int | None = None, options: bytes = b"", header_payload_length: int = 0,
              cap: int | None = None) -> Frame:  # fmt: skip
    """A TCP segment over IPv6 longer than 65535 bytes, as a capture gets BIG TCP's GSO packets
    from a kernel that adds a hop-by-hop header to them (6.1 to 6.18 do): fixed payload length
    0, and a hop-by-hop header whose Jumbo Payload option holds the length (``jumbo``: that value
    instead of the true one; ``options``: other options after it; ``extra``: extension headers
    after it). ``cap``: bytes captured (the rest of the frame only on the wire)."""
    segment = tcp_segment(A6, C6, 41851, 443, seq=5, ack=9, flags="P.", win=2128,
                          options=(nop(), nop(), timestamp(1186840160, 4237097528)),
                          payload=bytes(payload_len))  # fmt: skip
    headers = (hop_by_hop(jumbo_option(0) + options), *extra)
    length = sum(len(h.body) + 1 for h in headers) + len(segment)
    ext = (hop_by_hop(jumbo_option(length if jumbo is None else jumbo) + options), *extra)
    frame = ethernet(ipv6_packet(A6, C6, IPPROTO_TCP, segment, ext=ext,
                                 payload_length=header_payload_length), ETH_P_IPV6)  # fmt: skip
    return Frame(0, frame if cap is None else frame[:cap], len(frame))


def jumbo_zoo() -> list[Frame]:
    """Jumbograms carrying TCP: whole, captured in part, lying about their length, behind
    further extension headers; the last three have no jumbo payload length tcpdump takes (it
    prints "[No valid Jumbo Payload Hop-by-Hop option found]" and no TCP)."""
    h = 14 + 40 + 8  # Ethernet, the fixed IPv6 header, the hop-by-hop header
    no_jumbo = []
    for opt in (b"", jumbo_option(70000, length=3)):
        f = tcp_frame(A6, C6, 41851, 443, flags="P.", payload=b"x" * 100, payload_length=0,
                      ipv6_ext=(hop_by_hop(opt),))  # fmt: skip
        no_jumbo.append(Frame(0, f, len(f)))
    return [
        jumbogram(),
        jumbogram(cap=200),  # captured in part, as by a snap length
        jumbogram(cap=h + 32),  # its headers only, as a live capture's record
        jumbogram(cap=14 + 40 + 4),  # cut in its hop-by-hop header
        jumbogram(cap=14 + 40 + 1),  # before that header's length
        jumbogram(cap=h),  # right after it
        jumbogram(cap=h + 10),  # in the TCP header
        jumbogram(jumbo=70045),  # says more than the frame holds
        jumbogram(jumbo=70035),  # less
        jumbogram(jumbo=65536),  # the least a jumbogram may say
        jumbogram(options=jumbo_option(5)),  # a second option: ignored
        jumbogram(header_payload_length=1000),  # the fixed header's length then counts
        jumbogram(extra=(dest_options(),)),
        jumbogram(extra=(dest_options(),), cap=h + 4),
        jumbogram(extra=(routing([B6], rtype=2, segleft=1),)),
        jumbogram(extra=(fragment(0, more=True),)),
        jumbogram(extra=(fragment(0, more=True),), cap=h + 8),
        jumbogram(extra=(fragment(1448),)),  # a later fragment: no TCP header
        jumbogram(payload_len=59960, jumbo=60000),  # too short for a jumbogram
        *no_jumbo,
    ]


def mutated_jumbogram_heads(rng: random.Random, n: int) -> list[bytes]:
    """``n`` frames made of a ``jumbo_zoo`` frame's first 200 bytes (a live record's headers:
    the rest on the wire only), cut short or with bytes of the IPv6 and hop-by-hop headers
    changed."""
    heads = [f.data[:200] for f in jumbo_zoo()]
    out = []
    for _ in range(n):
        data = bytearray(rng.choice(heads))
        if rng.random() < 0.3:
            data = data[: rng.randrange(54, len(data) + 1)]
        for _ in range(rng.randint(0, 3)):
            pos = rng.randrange(14 + 4, min(len(data), 14 + 40 + 16))
            data[pos] = rng.choice((0, 1, 4, 5, 6, 0xC2, 0x60, rng.getrandbits(8)))
        out.append(bytes(data))
    return out


def _noise(rng: random.Random) -> list[bytes]:
    return [
        udp_frame(A4, B4, 40001, 40002, b"udp payload"),
        udp_frame(A6, B6, 40001, 40002, b"udp6"),
        icmp_frame(A4, B4),
        icmp_frame(A6, B6),
        arp_frame(A4, B4),
        udp_frame(A4, B4, 40003, 40004, b"vlan udp", vlans=(100,)),
        ethernet(bytes(46), 0x88B5),  # local experimental ethertype
    ]


def _interleave(rng: random.Random, flows: list[list[bytes]]) -> list[bytes]:
    """Mix the flows' packets at random, each flow keeping its own order."""
    pending = [list(reversed(f)) for f in flows if f]
    out = []
    while pending:
        k = rng.randrange(len(pending))
        out.append(pending[k].pop())
        if not pending[k]:
            pending.pop(k)
    return out


def varied_pcap(path, n: int = 4, seed: int = 20261127, nano: bool = False) -> list[Frame]:
    """Write the standard varied capture; ``n`` is the number of full TCP conversations per kind.

    Returns every frame written, in order, with ``tcp`` telling whether tcpdump prints a TCP line
    (over IPv4/IPv6, any VLAN depth) for it; the others are noise (UDP, ICMP, ARP, other types).
    """
    rng = random.Random(seed)
    flows: list[list[bytes]] = []
    for i in range(n):
        port = 44000 + i
        flows.append(_handshake_and_data(rng, A4, B4, port, 5001))
        flows.append(_handshake_and_data(rng, A6, B6, port, 5201))
        flows.append(_handshake_and_data(rng, C4, D4, port, 9000, vlans=(10,)))
        flows.append(_handshake_and_data(rng, A6, C6, port, 9001, vlans=(20, 30), qinq=True))
        flows.append(_handshake_and_data(rng, B6, A6, port, port, ipv6_ext=(hop_by_hop(),)))
    tcp = [(f, len(f)) for f in _interleave(rng, flows)]
    tcp += [(f, len(f)) for f in _option_zoo() + _flag_zoo() + _ipv6_zoo()]
    tcp += [(f.data, f.wire_len) for f in _odd_frames()]
    frames: list[Frame] = [Frame(0, d, w, True) for d, w in tcp]
    noise = _noise(rng)
    for k, f in enumerate(noise):
        frames.insert(rng.randrange(len(frames)) if k else 0, Frame(0, f, len(f), False))
    ts = 1_700_000_000_000_000_000 + 123_456_789
    stamped = []
    for f in frames:
        ts += rng.choice((1, 999, 1_000, 123_457, 2_000_000_001))
        stamped.append(f._replace(ts_ns=ts))
    write_pcap(path, stamped, nano=nano)
    if not nano:
        stamped = [f._replace(ts_ns=f.ts_ns // 1000 * 1000) for f in stamped]
    return stamped
