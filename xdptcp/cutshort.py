"""A TCP frame whose capture ends before its TCP header, in its link-layer or IP headers, and
what tcpdump 4.99 prints for it instead of a TCP line: `` [|ether]``, ``IP  [|ip]``, ``IP6 a > b:
frag (0|20) ``... (print-ether.c, print-ip.c, print-ip6.c, print-rt6.c, print-frag6.c).

``xdptcp.packet`` decodes the frames that reach TCP; it asks this module about the ones that do
not (``malformed_tcp_text``) and hands out ``Cut`` and ``cut_short`` with its own names. The
header layouts are struct twins of ``xdptcp.layouts``, as in ``xdptcp.packet``.

A note is a ``payload.Jumped`` where tcpdump's printer was abandoned by a read past the captured
bytes (its longjmp), rather than by a check of its own: -x, -X and -A then show the whole
packet, its link-layer header too.
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, inet_ntop  # not socket: see xdptcp.gso
from collections import namedtuple

from xdptcp.ip6ext import frag_text, header_options_text, rt6_fields
from xdptcp.payload import Jumped, LineEnds

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# The header layouts and numbers the cut walks read (xdptcp.packet's decoder uses them too).
VLAN = struct.Struct("!HH")
# version/ihl, tos, tot_len, id, frag_off, ttl, protocol, check, saddr, daddr
IPV4 = struct.Struct("!BBHHHBBH4s4s")
# version/class/flow, payload_len, nexthdr, hop_limit, saddr, daddr
IPV6 = struct.Struct("!IHBB16s16s")
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")
U64_MAX = (1 << 64) - 1

TPIDS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
HOPOPTS, TCP_PROTO, ROUTING, FRAGMENT, DSTOPTS = 0, 6, 43, 44, 60


Cut = namedtuple(
    "Cut",
    [
        "ip_version",  # int: 4 or 6; 0 when the frame ends before its EtherType
        "vlans",  # tuple: VLAN ids, outermost first; None when the frame ends in its tags
        "src",  # str: None unless the fixed IP header was captured
        "dst",  # str, or None: the same
        "ttl",  # int, or None: the same (the hop limit for IPv6)
        "note",  # str: tcpdump's text for the frame, after what it prints of the link layer
        "frag_offset",  # int: bytes; not 0 for a later IPv6 fragment (no TCP header in it)
    ],
    defaults=(None, None, None, None, "", 0),
)


def cut_short(
    frame, wire_len: Optional[int] = None, known_tcp: bool = False, verbose: int = 0
) -> Optional[Cut]:
    """A TCP frame whose capture (or IP length) ends before its TCP header, in its link-layer or
    IP headers, and tcpdump 4.99's text for it: `` [|ether]``, `` [|vlan]``, ``IP  [|ip]``,
    ``IP  [remaining caplen(20) < header length(28)] [|ip]``, `` [|ip6]``, ``IP6 a > b:
    [|hbhopt]``, ``IP6 a > b: frag (0|20) ``... None for any other frame.

    Which frames are TCP: without ``known_tcp``, those whose captured bytes say so as libpcap's
    ``tcp`` reads them (the IPv4 protocol byte; IPv6's next header, or the one in a fragment
    header right after the fixed header): ``tcpdump -r F tcp`` prints nothing for a frame that
    ends before them. Behind other extension headers, the chain as ``ip6 protochain 6`` walks
    it: a header counts once its next-header byte and the one after it (a length) are
    captured. With ``known_tcp`` every frame is TCP: a live capture's records, which the
    program found TCP on the whole frame before cutting them to the snap length (as the kernel
    runs ``tcpdump -i IF -s N tcp``'s filter on the whole packet). ``verbose``: the note as
    tcpdump -v prints it (``xdptcp.verbose``: the IP header's fields first).
    """
    cap = len(frame)
    if cap < 14:
        return Cut(0, note=" [|ether]") if known_tcp and cap else None
    etype = frame[12] << 8 | frame[13]
    l3, vlans = 14, ()
    while etype in TPIDS:
        if l3 + 4 > cap:
            return Cut(0, note=" [|vlan]") if known_tcp else None
        tci, etype = VLAN.unpack_from(frame, l3)
        vlans += (tci & 0x0FFF,)
        l3 += 4
    if wire_len is None or wire_len < cap:
        wire_len = cap
    if etype == 0x0800:
        return _cut_ipv4(frame, l3, wire_len, vlans, known_tcp, verbose)
    if etype == 0x86DD:
        return _cut_ipv6(frame, l3, wire_len, vlans, known_tcp, verbose)
    return None


def _cut_ipv4(
    frame, l3: int, wire_len: int, vlans: tuple, known: bool, verbose: int
) -> Optional[Cut]:
    cap = len(frame)
    if cap == l3:  # ip_print's first read, of the version, fails
        return Cut(4, vlans, note=Jumped(" [|ip]")) if known else None
    if not known and (l3 + 10 > cap or frame[l3 + 9] != TCP_PROTO):
        return None  # libpcap's tcp cannot read the protocol byte, or it is another's
    if frame[l3] >> 4 != 4:
        return None  # (malformed_tcp_text)
    if l3 + 20 > cap:
        return Cut(4, vlans, note="IP  [|ip]")
    vihl, _, ip_len, _, frag, ttl, _, _, saddr, daddr = IPV4.unpack_from(frame, l3)
    hlen = (vihl & 0x0F) * 4
    end = min(cap, l3 + ip_len)
    if hlen < 20 or ip_len < hlen or frag & 0x1FFF or l3 + hlen <= end:
        return None  # the decoder's, or malformed_tcp_text's
    missing = missing4(ip_len, l3, cap, wire_len)
    src, dst = inet_ntop(AF_INET, saddr), inet_ntop(AF_INET, daddr)
    if verbose:
        from xdptcp.verbose import ip4_cut

        said = ip4_cut(frame, l3, hlen, end, src, dst)
        note = f"IP {missing}{said}"
        if said.__class__ is Jumped:
            note = Jumped(note)
    else:
        note = f"IP {missing} [remaining caplen({end - l3}) < header length({hlen})] [|ip]"
    return Cut(4, vlans, src, dst, ttl, note)


def _cut_ipv6(
    frame, l3: int, wire_len: int, vlans: tuple, known: bool, verbose: int
) -> Optional[Cut]:
    cap = len(frame)
    if l3 + 40 > cap:
        if known or (l3 + 7 <= cap and frame[l3 + 6] == TCP_PROTO):
            return Cut(6, vlans, note=" [|ip6]")
        return None
    vtf, plen, nh, hlim, saddr, daddr = IPV6.unpack_from(frame, l3)
    if vtf >> 28 != 6 or nh == TCP_PROTO:
        return None  # malformed_tcp_text's, the decoder's
    jumbo = not plen
    if jumbo:  # a jumbogram's length is in its hop-by-hop header
        if nh != HOPOPTS:
            return None  # (tcpdump cuts the packet at its fixed header)
        end = min(cap, wire_len)
        stop = l3 + 40 + (frame[l3 + 41] + 1) * 8 if l3 + 42 <= end else end + 1
        raw = bytes(frame[l3 + 40 : stop]) if stop <= end else b""
        plen = jumbo_length(raw) if raw else 0
        if not plen:  # none there, or cut in it: tcpdump walks as far as the packet goes
            plen = wire_len - l3
    total = plen + 40
    src, dst = inet_ntop(AF_INET6, saddr), inet_ntop(AF_INET6, daddr)
    # (a jumbogram's missing bytes are told where its TCP header starts)
    head = ip6_head(frame, l3, 0 if jumbo else total - (wire_len - l3), src, dst, verbose)
    walked = _cut_ext(frame, l3, nh, total, known, head, verbose)
    return None if walked is None else Cut(6, vlans, src, dst, hlim, *walked)


def ip6_head(frame, l3: int, missing: int, src: str, dst: str, verbose: int) -> str:
    """ip6_print()'s text before what follows the fixed header: ``IP6``, the note of the
    ``missing`` bytes (when there are any), -v's fields of the header, the addresses."""
    head = f"IP6 truncated-ip6 - {missing} bytes missing!" if missing > 0 else "IP6 "
    if verbose:
        from xdptcp.verbose import ip6_header

        head += ip6_header(frame, l3)
    return f"{head}{src} > {dst}: "


def _cut_ext(frame, l3: int, nh: int, total: int, known: bool, note: str, verbose: int = 0):
    """ip6_print()'s walk over the extension headers, for a frame that ends before its TCP
    header: (the note, the fragment offset), or None when it is not TCP (or not cut)."""
    cap = len(frame)
    end = min(cap, l3 + total)  # what tcpdump reads: the capture, cut to the IP length
    off = l3 + 40
    plen = U16.unpack_from(frame, l3 + 4)[0]  # the fixed header's: 0 for a jumbogram
    while nh != TCP_PROTO:
        if nh == FRAGMENT:
            # libpcap's tcp reads the next header of a fragment header after the fixed one;
            # ip6 protochain, the next header and the byte after it of one further on
            if not known and (off + (1 if off == l3 + 40 else 2) > cap or frame[off] != TCP_PROTO):
                return None
            if off + (8 if verbose else 4) > end:  # (-v prints the identification too)
                return Jumped(note + " [|frag6]"), 0
            offset = U16.unpack_from(frame, off + 2)[0] & 0xFFF8
            # (what follows by the fixed header's length: tcpdump's unsigned 64-bit difference)
            rest = (plen + 40 - (off - l3) - 8) & U64_MAX
            note += frag_text(bytes(frame[off : off + 8]), rest, verbose)
            if offset:  # a later fragment: nothing of TCP in it (the decoder's when whole)
                return None if off + 8 <= end else (note, offset)
            note += " "
            if off + 8 >= end:  # tcpdump stops after "frag (0|n) " when nothing follows
                return note, 0
            size = 8
        elif nh in (HOPOPTS, DSTOPTS, ROUTING):
            if nh == HOPOPTS and off != l3 + 40:
                return None  # tcpdump: it must come first; not TCP
            size = (frame[off + 1] + 1) * 8 if off + 2 <= end else 0
            whole = size and off + size <= end
            if not whole and not (known or off + 2 <= cap and frame[off] == TCP_PROTO):
                return None
            if nh == ROUTING:
                if off >= end:  # ip6_print's own check of its first byte fails
                    return note + " [|ip6]", 0
                text = rt6_fields(bytes(frame[off : off + size if whole else end]), None, verbose)
                if text is None:
                    return None  # a routing header tcpdump refuses: not TCP
                if not whole:
                    return Jumped(note + text + " [|rt6]"), 0
                note += text + ") "
            elif not whole:  # (its length byte not captured: a read that fails)
                said = f"{note} [|{'hbhopt' if nh == HOPOPTS else 'dstopt'}]"
                if size and nh == HOPOPTS and not plen:  # a jumbogram's length not found
                    said += NO_JUMBO
                return (said if size else Jumped(said)), 0
            elif nh == HOPOPTS and hbh_note(bytes(frame[off : off + size]), plen, 0) is not None:
                return None  # tcpdump stops at it (malformed_tcp_text's)
            else:
                try:
                    note += header_options_text(nh, bytes(frame[off : off + size]), plen, verbose)
                except LineEnds as e:  # (destination options only: hbh_ok above)
                    return note + e.args[0], 0
        else:
            return None
        nh, off = frame[off], off + size
    return None  # the TCP header is reached: the decoder's


def missing4(ip_len: int, l3: int, cap: int, wire_len: Optional[int]) -> str:
    """ip_print()'s note on an IPv4 total length beyond the frame's."""
    length = (cap if wire_len is None else wire_len) - l3
    return f"truncated-ip - {ip_len - length} bytes missing! " if ip_len > length else ""


def hbh_ok(raw: bytes) -> bool:
    """Hop-by-hop options tcpdump accepts silently: each option whole, and those it checks
    (jumbo payload, router alert, home address) of their length."""
    return _hbh_walk(raw)[0] is None


def _hbh_walk(raw: bytes) -> tuple[Optional[str], int]:
    """ip6_opt_process() over a whole hop-by-hop header (``raw``): (where it gives up, what it
    prints then without -v: ``(rtalert: invalid len 1)``, or "" for an option that runs past
    the header, None when it reads every option; the payload length of the first Jumbo Payload
    option read before it gives up, 0 for none or one below ``JUMBO_MIN``)."""
    i, end, jumbo, seen = 2, len(raw), 0, False
    while i < end:
        kind = raw[i]
        if kind == 0:  # Pad1
            i += 1
            continue
        if i + 1 >= end:
            return "", jumbo
        size = raw[i + 1] + 2
        if i + size > end:
            return "", jumbo
        if kind == 0x05:  # router alert is exactly 4 bytes
            if end - i < 4:
                return "(rtalert: trunc)", jumbo
            if size != 4:
                return f"(rtalert: invalid len {raw[i + 1]})", jumbo
        elif kind == 0xC2:  # jumbo payload: a 32-bit length
            if end - i < 6:
                return "(jumbo: trunc)", jumbo
            if size != 6:
                return f"(jumbo: invalid len {raw[i + 1]})", jumbo
            if not seen:  # (a later one is "already seen")
                value = U32.unpack_from(raw, i + 2)[0]
                jumbo, seen = (value if value >= JUMBO_MIN else 0), True
        elif kind == 0xC9:  # home address
            if end - i < 18:
                return "(homeaddr: trunc)", jumbo
            if size < 18:
                return f"(homeaddr: invalid len {raw[i + 1]})", jumbo
        i += size
    return None, jumbo


def hbh_note(raw: bytes, payload_len: int, verbose: int) -> Optional[str]:
    """tcpdump's text for a whole hop-by-hop header it does not step over: one whose options it
    gives up on (`` [|hbhopt]`` after them), or, where the fixed header's payload length is 0,
    one without a jumbo payload length (``NO_JUMBO``). None for a header it steps over."""
    refused, jumbo = _hbh_walk(raw)
    if refused is None and (payload_len or jumbo):
        return None
    if verbose:
        from xdptcp.verbose import ip6_options

        try:
            text = ip6_options(raw, True, payload_len)
        except LineEnds as e:
            text = e.args[0]
    else:
        text = refused or ""
    if refused is not None:
        text += " [|hbhopt]"
    return "HBH " + text + ("" if payload_len or jumbo else NO_JUMBO)


# The least payload length a Jumbo Payload option may give (RFC 2675): shorter ones fit in the
# fixed header's 16-bit field.
JUMBO_MIN = 65536
NO_JUMBO = "[No valid Jumbo Payload Hop-by-Hop option found] (invalid)"


def jumbo_length(raw: bytes) -> int:
    """The payload length that the Jumbo Payload option of a hop-by-hop header (``raw``, whole)
    gives a packet whose fixed header says 0 (a jumbogram: BIG TCP's GSO packets as a capture
    gets them from a kernel that adds the header), as tcpdump takes it: the first such
    option's, when it is at least ``JUMBO_MIN``; 0 for none, or for a header whose options
    tcpdump gives up on (``hbh_ok`` false; tcpdump then prints ``hbh_note``)."""
    refused, jumbo = _hbh_walk(raw)
    return jumbo if refused is None else 0
