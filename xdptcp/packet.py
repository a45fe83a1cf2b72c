"""The fast frame decoder: Ethernet (+VLAN tags) → IPv4/IPv6 (+extension headers) → TCP.

``Decoder.decode(frame, wire_len)`` turns captured bytes into a ``Packet`` or None when the frame
is not TCP as tcpdump would print it. The rules follow tcpdump 4.99 (print-ether.c, print-ip.c,
print-ip6.c, print-tcp.c) so that ``xdptcp.tcpdump`` can reproduce its lines:

- VLAN tags with TPID 0x8100, 0x88a8, 0x9100, 0x9200 are walked at any depth.
- IPv4 with any IHL; a non-first fragment is a ``Kind.FRAGMENT`` packet (no TCP header).
- IPv6 extension headers walked: hop-by-hop, destination options, routing types 0/2/4 and
  fragment (a non-first fragment is ``Kind.FRAGMENT``). Others (mobility, ESP, AH...) end the
  walk: not TCP.
- The bytes tcpdump may read end at ``snap_end``: the captured length cut to the IP datagram's
  length. A TCP header cut short is ``Kind.TRUNCATED``; a data offset below 5 ``Kind.BAD_HDR_LEN``.
- ``tcp_len`` is the TCP segment length from the IP header (what tcpdump's ``length`` is made
  from), never the captured length: XDP hands over headers only.

The layouts are declared with construct in ``xdptcp.layouts``; this module uses precompiled
``struct.Struct`` twins on the frame, and a test proves both decode the same.
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, inet_ntop  # not socket: see xdptcp.gso
from collections import namedtuple

from pybpf.enums import int_enum
from xdptcp import cutshort

# Cut and cut_short are this module's names too: the formatters and tests import them from here.
from xdptcp.cutshort import Cut, cut_short, hbh_ok, jumbo_length, missing4  # noqa: F401

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# The header layouts and numbers the cut walks (xdptcp.cutshort) read too.
_VLAN, _IPV4, _IPV6, _TPIDS = cutshort.VLAN, cutshort.IPV4, cutshort.IPV6, cutshort.TPIDS
_HOPOPTS, _TCP_PROTO, _ROUTING = cutshort.HOPOPTS, cutshort.TCP_PROTO, cutshort.ROUTING
_FRAGMENT, _DSTOPTS = cutshort.FRAGMENT, cutshort.DSTOPTS
_ETH_TYPE = struct.Struct("!H")
# source, dest, seq, ack_seq, doff/ae, flags, window, check, urg_ptr
_TCP = struct.Struct("!HHIIBBHHH")
_PORTS = struct.Struct("!HH")
# The common case in one unpack, from the IP header through the fixed TCP header (Decoder.fast).
_FAST4 = struct.Struct("!BxHxxHBB2x4s4sHHIIBBH2xH")
_FAST6 = struct.Struct("!IHBB16s16sHHIIBBH2xH")
_FRAG6 = struct.Struct("!BxHI")

_ADDR_CACHE_MAX = 1 << 16


@int_enum
class Kind:
    TCP = 0  # the fixed TCP header (and doff >= 5) is there
    FRAGMENT = 1  # a non-first IP fragment: addresses only
    TRUNCATED = 2  # the TCP header is cut before its 20th byte (sport/dport may be there)
    BAD_HDR_LEN = 3  # data offset < 5


Packet = namedtuple(
    "Packet",
    [
        "kind",  # Kind
        "ip_version",  # int
        "src",  # str
        "dst",  # str
        "ttl",  # int: hop limit for IPv6
        "vlans",  # tuple: VLAN ids, outermost first
        "l3_off",  # int
        "l4_off",  # int: where TCP starts (after IPv4 options / IPv6 extension headers)
        "tcp_len",  # int: TCP header + payload length by the IP header
        "sport",  # int
        "dport",  # int
        "seq",  # int
        "ack",  # int
        "flags",  # int: the 8 flag bits + AE as 0x100 (xdptcp.layouts.TCPFlag)
        "win",  # int
        "urg",  # int
        "tcp_hdr_len",  # int: data offset * 4
        "payload_len",  # int: tcp_len - tcp_hdr_len (may be negative for a lying header)
        "options",  # bytes: the option bytes that were captured (raw; walk with iter_options)
        "cap_len",  # int
        "wire_len",  # int
        "snap_end",  # int: end of the bytes a printer may read: capture cut to the IP length
        "ip_missing",  # int: bytes the IP length claims past the wire length (tcpdump: missing!)
        "ext",  # tuple: IPv6 extension headers before TCP: (protocol, raw bytes) each
        "frag_offset",  # int: bytes
        "more_frags",  # bool
        "first_nh",  # int: IPv6 next header of the fixed header (IPPROTO_TCP for IPv4)
    ],
)


def ethernet(frame) -> Optional[tuple[int, int, tuple[int, ...]]]:
    """(EtherType, offset of the network header, VLAN ids) of an Ethernet frame, after up to
    any number of 802.1Q/802.1ad tags; None when the frame ends inside them."""
    cap = len(frame)
    if cap < 14:
        return None
    (etype,) = _ETH_TYPE.unpack_from(frame, 12)
    off = 14
    vlans: tuple[int, ...] = ()
    while etype in _TPIDS:
        if off + 4 > cap:
            return None
        tci, etype = _VLAN.unpack_from(frame, off)
        vlans += (tci & 0x0FFF,)
        off += 4
    return etype, off, vlans


class Decoder:
    """Decodes frames; owns a small cache of address strings (formatting them is the slow bit)."""

    def __init__(self) -> None:
        self._addrs: dict[bytes, str] = {}

    def addr(self, raw: bytes) -> str:
        """inet_ntop, memoised: IPv6 in RFC 5952 form, as tcpdump prints it."""
        s = self._addrs.get(raw)
        if s is None:
            if len(self._addrs) >= _ADDR_CACHE_MAX:
                self._addrs.clear()
            s = inet_ntop(AF_INET if len(raw) == 4 else AF_INET6, raw)
            self._addrs[raw] = s
        return s

    def fast(self, frame, wire_len: int) -> Optional[tuple]:
        """The common case without building a Packet: VLAN tags, IPv4 without options or
        fragmenting, IPv6 without extension headers, a whole TCP header inside the capture and
        the IP length, nothing truncated. Anything else gives None: call ``decode``.

        Returns ``(ip_version, saddr, daddr, ttl, vlans, l4_off, tcp_len, tcp_hdr_len, sport,
        dport, seq, ack, offset_byte, flags_byte, win, urg)``; addresses are raw bytes.
        """
        n = len(frame)
        if n > wire_len or n < 54:
            return None
        etype = frame[12] << 8 | frame[13]
        l3, vlans = 14, ()
        while etype in _TPIDS:
            if n < l3 + 44:
                return None
            tci, etype = _VLAN.unpack_from(frame, l3)
            vlans += (tci & 0x0FFF,)
            l3 += 4
        if etype == 0x0800:
            if n < l3 + 40:
                return None
            vihl, ip_len, frag, ttl, proto, saddr, daddr, sport, dport, seq, ack, offx, flags, \
                win, urg = _FAST4.unpack_from(frame, l3)  # fmt: skip
            if vihl != 0x45 or proto != 6 or frag & 0x1FFF or ip_len > wire_len - l3:
                return None
            l4, end, tcp_len, version = l3 + 20, l3 + ip_len, ip_len - 20, 4
        elif etype == 0x86DD:
            if n < l3 + 60:
                return None
            vtf, plen, nh, ttl, saddr, daddr, sport, dport, seq, ack, offx, flags, win, urg = \
                _FAST6.unpack_from(frame, l3)  # fmt: skip
            if vtf >> 28 != 6 or nh != 6 or not plen or plen + 40 > wire_len - l3:
                return None
            l4, tcp_len, version = l3 + 40, plen, 6
            end = l4 + plen
        else:
            return None
        hlen = (offx >> 4) * 4
        if hlen < 20 or hlen > tcp_len or l4 + hlen > end or l4 + hlen > n:
            return None
        return (version, saddr, daddr, ttl, vlans, l4, tcp_len, hlen, sport, dport, seq, ack,
                offx, flags, win, urg)  # fmt: skip

    def decode(self, frame, wire_len: Optional[int] = None) -> Optional[Packet]:
        cap = len(frame)
        if wire_len is None:
            wire_len = cap
        if wire_len < cap:
            return None
        link = ethernet(frame)
        if link is None:
            return None
        etype, off, vlans = link
        if etype == 0x0800:
            return self._ipv4(frame, off, cap, wire_len, vlans)
        if etype == 0x86DD:
            return self._ipv6(frame, off, cap, wire_len, vlans)
        return None

    def _ipv4(self, frame, l3: int, cap: int, wire_len: int, vlans: tuple) -> Optional[Packet]:
        if l3 + 20 > cap or wire_len - l3 < 20:
            return None
        vihl, _, ip_len, _, frag, ttl, proto, _, saddr, daddr = _IPV4.unpack_from(frame, l3)
        hlen = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or hlen < 20 or ip_len < hlen or proto != _TCP_PROTO:
            return None
        length = wire_len - l3
        missing = ip_len - length if length < ip_len else 0
        snap_end = min(cap, l3 + ip_len)
        src, dst = self.addr(saddr), self.addr(daddr)
        frag_off = (frag & 0x1FFF) * 8
        if frag_off:
            return _short(Kind.FRAGMENT, 4, src, dst, ttl, vlans, l3, l3 + hlen, ip_len - hlen,
                          cap, wire_len, snap_end, missing, (), frag_off, bool(frag & 0x2000),
                          _TCP_PROTO)  # fmt: skip
        if l3 + hlen > cap:
            return None
        return self._tcp(frame, 4, src, dst, ttl, vlans, l3, l3 + hlen, ip_len - hlen, cap,
                         wire_len, snap_end, missing, (), 0, bool(frag & 0x2000),
                         _TCP_PROTO)  # fmt: skip

    def _ipv6(self, frame, l3: int, cap: int, wire_len: int, vlans: tuple) -> Optional[Packet]:
        if l3 + 40 > cap or wire_len - l3 < 40:
            return None
        vtf, plen, nh, hlim, saddr, daddr = _IPV6.unpack_from(frame, l3)
        if vtf >> 28 != 6:
            return None
        length = wire_len - l3
        first_nh = nh
        if not plen and nh == _HOPOPTS:
            plen = _jumbo(frame, l3, min(cap, wire_len))
        if plen:
            total = plen + 40
            missing = total - length if length < total else 0
            snap_end = min(cap, l3 + total)
        else:
            # No payload length and no jumbo payload option (as BIG TCP's GSO packets are
            # captured where the kernel adds no hop-by-hop header to them): tcpdump then cuts
            # the packet at the fixed header.
            total, missing, snap_end = 40, 0, min(cap, l3 + 40)
        src, dst = self.addr(saddr), self.addr(daddr)
        off, ext = l3 + 40, ()
        frag_off, more = 0, False
        while nh != _TCP_PROTO:
            if len(ext) == 16 or not plen or off + 8 > snap_end:
                return None
            if nh == _FRAGMENT:
                nxt, offlg, _ = _FRAG6.unpack_from(frame, off)
                ext += ((nh, bytes(frame[off : off + 8])),)
                frag_off, more = offlg & 0xFFF8, bool(offlg & 1)
                if frag_off:
                    if nxt != _TCP_PROTO:
                        return None  # a later fragment of another protocol's packet
                    return _short(Kind.FRAGMENT, 6, src, dst, hlim, vlans, l3, off + 8,
                                  total - (off + 8 - l3), cap, wire_len, snap_end, missing, ext,
                                  frag_off, more, first_nh)  # fmt: skip
                size = 8
            elif nh in (_HOPOPTS, _DSTOPTS, _ROUTING):
                nxt, size = frame[off], (frame[off + 1] + 1) * 8
                if off + size > snap_end or off + size - l3 > total:
                    return None
                raw = bytes(frame[off : off + size])
                if nh == _HOPOPTS and (ext or not hbh_ok(raw)):
                    return None
                if nh == _ROUTING and not _routing_ok(raw):
                    return None
                ext += ((nh, raw),)
            else:
                return None
            if off + size >= snap_end and nh == _FRAGMENT:
                return None  # tcpdump stops after "frag (0|n) " when nothing follows
            off += size
            nh = nxt
        return self._tcp(frame, 6, src, dst, hlim, vlans, l3, off, total - (off - l3), cap,
                         wire_len, snap_end, missing, ext, frag_off, more, first_nh)  # fmt: skip

    def _tcp(self, frame, version, src, dst, ttl, vlans, l3, l4, tcp_len, cap, wire_len,
             snap_end, missing, ext, frag_off, more, first_nh) -> Packet:  # fmt: skip
        if l4 + 20 > snap_end:
            ports = _PORTS.unpack_from(frame, l4) if l4 + 4 <= snap_end else (0, 0)
            return Packet(Kind.TRUNCATED, version, src, dst, ttl, vlans, l3, l4, tcp_len,
                          ports[0], ports[1], 0, 0, 0, 0, 0, 0, 0, b"", cap, wire_len, snap_end,
                          missing, ext, frag_off, more, first_nh)  # fmt: skip
        sport, dport, seq, ack, offx, flags, win, _, urg = _TCP.unpack_from(frame, l4)
        hlen = (offx >> 4) * 4
        kind = Kind.TCP if hlen >= 20 else Kind.BAD_HDR_LEN
        opts = bytes(frame[l4 + 20 : min(l4 + hlen, snap_end)]) if hlen > 20 else b""
        return Packet(kind, version, src, dst, ttl, vlans, l3, l4, tcp_len, sport, dport, seq,
                      ack, flags | (offx & 1) << 8, win, urg, hlen, tcp_len - hlen, opts, cap,
                      wire_len, snap_end, missing, ext, frag_off, more, first_nh)  # fmt: skip


def _short(kind, version, src, dst, ttl, vlans, l3, l4, tcp_len, cap, wire_len, snap_end,
           missing, ext, frag_off, more, first_nh) -> Packet:  # fmt: skip
    return Packet(kind, version, src, dst, ttl, vlans, l3, l4, tcp_len, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                  b"", cap, wire_len, snap_end, missing, ext, frag_off, more,
                  first_nh)  # fmt: skip


def _jumbo(frame, l3: int, end: int) -> int:
    """The payload length of a jumbogram (the fixed header's is 0) from the Jumbo Payload option
    of its hop-by-hop header, which ends before ``end``; 0 when there is none tcpdump takes."""
    if l3 + 42 > end:
        return 0
    stop = l3 + 40 + (frame[l3 + 41] + 1) * 8
    if stop > end:
        return 0
    raw = bytes(frame[l3 + 40 : stop])
    return jumbo_length(raw)


def _routing_ok(raw: bytes) -> bool:
    """Routing headers tcpdump prints and steps over: types 0, 2 and 4 with an even length."""
    return raw[2] in (0, 2, 4) and raw[1] % 2 == 0


def decode(frame, wire_len: Optional[int] = None) -> Optional[Packet]:
    """One frame, without a shared address cache (tests, one-off use)."""
    return Decoder().decode(frame, wire_len)


def is_tcp_frame(frame, wire_len: Optional[int] = None) -> bool:
    """True when the text formatter prints a line for the frame: it decodes as TCP, or it is
    one of the damaged or cut TCP packets tcpdump prints a note for (``malformed_tcp_text``),
    which libpcap's ``tcp`` selects too. What ``-r F -w OUT`` writes. A record whose wire
    length is below its captured length is judged by the bytes it holds, as libpcap's filter
    judges it."""
    if wire_len is not None and wire_len < len(frame):
        wire_len = None
    return (
        Decoder().decode(frame, wire_len) is not None
        or malformed_tcp_text(frame, wire_len) is not None
    )


def malformed_tcp_text(
    frame, wire_len: Optional[int] = None, known_tcp: bool = False, verbose: int = 0
) -> Optional[str]:
    """What tcpdump prints for a TCP packet the decoder refuses, when it prints anything.

    ip_print() for an IPv4 TCP packet whose header length is below 20 (``IP bad-hlen N``) or
    whose total length is below its header length (``IP bad-len N``), and nothing more (the
    capture program emits such frames: it never trusts IP length fields). For a packet whose
    version nibble contradicts its EtherType, which libpcap's ``tcp`` still selects (it looks
    at the protocol byte only), what ip_print and ip6_print say: ``IP6, wrong link-layer
    encapsulation (invalid)`` or ``IPn (invalid)`` under an IPv4 EtherType, ``IP6 version
    error: n != 6`` under IPv6's. And for a TCP packet whose capture ends in its link-layer or
    IP headers, ``cut_short``'s note (``known_tcp``, ``verbose``: see there)."""
    link = ethernet(frame)
    if link is not None:
        etype, off, _ = link
        cap = len(frame)
        if etype == 0x86DD and off + 42 <= cap and frame[off + 6] == _HOPOPTS:
            said = _hbh_stop(frame, off, wire_len, known_tcp, verbose)
            if said is not None:
                return said
        if etype == 0x86DD and off + 40 <= cap and _tcp6(frame, off, known_tcp):
            version = frame[off] >> 4
            if version != 6:
                return f"IP6 version error: {version} != 6"
        elif etype == 0x0800 and off + 10 <= cap and frame[off + 9] == 6:
            vihl = frame[off]
            if vihl >> 4 != 4:
                return _wrong_version(vihl >> 4)
            if off + 20 <= cap:
                ip_len = frame[off + 2] << 8 | frame[off + 3]
                if vihl & 0x0F < 5:
                    return f"IP bad-hlen {(vihl & 0x0F) * 4}"
                if ip_len < (vihl & 0x0F) * 4:
                    return f"IP {missing4(ip_len, off, cap, wire_len)}bad-len {ip_len}"
    cut = cut_short(frame, wire_len, known_tcp, verbose)
    return None if cut is None else cut.note


def _hbh_stop(frame, l3: int, wire_len: Optional[int], known: bool, verbose: int) -> Optional[str]:
    """ip6_print() for a TCP packet whose whole hop-by-hop header it stops at: options it gives
    up on, or no jumbo payload length where the fixed header's is 0 (``cutshort.hbh_note``)."""
    vtf, plen, _, _, saddr, daddr = _IPV6.unpack_from(frame, l3)
    length = (len(frame) if wire_len is None else wire_len) - l3
    stop = l3 + 40 + (frame[l3 + 41] + 1) * 8
    if vtf >> 28 != 6 or stop > min(len(frame), l3 + (plen + 40 if plen else length)):
        return None  # (cut in it: cut_short's)
    if not (known or frame[l3 + 40] == _TCP_PROTO):
        return None
    note = cutshort.hbh_note(bytes(frame[l3 + 40 : stop]), plen, verbose)
    if note is None:
        return None
    src, dst = inet_ntop(AF_INET6, saddr), inet_ntop(AF_INET6, daddr)
    missing = plen + 40 - length if plen else 0
    return cutshort.ip6_head(frame, l3, missing, src, dst, verbose) + note


def _tcp6(frame, l3: int, known: bool) -> bool:
    """libpcap's ``tcp`` on an IPv6 header: its next header, or a fragment header's after it."""
    nh = frame[l3 + 6]
    return (
        known
        or nh == _TCP_PROTO
        or (nh == _FRAGMENT and l3 + 40 < len(frame) and frame[l3 + 40] == _TCP_PROTO)
    )


def _wrong_version(version: int) -> str:
    """ip_print() for an IPv4 EtherType whose header says another version."""
    if version == 6:
        return "IP6, wrong link-layer encapsulation (invalid)"
    return f"IP{version} (invalid)"


def invalid_header_text(frame, wire_len: int, cap_len: Optional[int] = None) -> Optional[str]:
    """What tcpdump prints instead of a packet for a damaged file's record (print.c's
    pretty_print_packet: no timestamp, nothing of the packet): its original length below its
    captured length, ``[Invalid header: len(N) < caplen(M)]`` (``[Invalid header: len==0]``),
    or above the longest packet tcpdump takes (``xdptcp.pcap.MAX_RECORD``),
    ``[Invalid header: len(N) > 262144]``. None when the captured bytes are not TCP as
    libpcap's ``tcp`` reads them. ``wire_len`` and ``cap_len`` are the record's (``frame`` may
    be its packet behind another link layer)."""
    if not is_tcp_frame(frame):
        return None
    if not wire_len:
        return "[Invalid header: len==0]"
    cap_len = len(frame) if cap_len is None else cap_len
    if wire_len > cap_len:
        from xdptcp.pcap import MAX_RECORD

        return f"[Invalid header: len({wire_len}) > {MAX_RECORD}]"
    return f"[Invalid header: len({wire_len}) < caplen({cap_len})]"


def iter_options(opts: bytes):
    """Yield ``(kind, data)`` for each well-formed TCP option; stops at EOL or a bad length.

    A bad length ends the walk by yielding ``(kind, None)``.
    """
    i, end = 0, len(opts)
    while i < end:
        kind = opts[i]
        if kind == 0:
            yield 0, b""
            return
        if kind == 1:
            yield 1, b""
            i += 1
            continue
        if i + 1 >= end or opts[i + 1] < 2 or i + opts[i + 1] > end:
            yield kind, None
            return
        size = opts[i + 1]
        yield kind, opts[i + 2 : i + size]
        i += size
