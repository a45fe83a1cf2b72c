"""What ``-v`` adds to a line, as tcpdump 4.99 prints it with -v (and -vv, -vvv).

- IPv4 (ip_print in print-ip.c): the header's fields in parentheses after ``IP``, the options
  by name, a wrong header checksum, and the rest of the line on a line of its own:

      IP (tos 0x0, ttl 64, id 4660, offset 0, flags [DF], proto TCP (6), length 60)
          198.18.0.1.40954 > 198.18.0.2.5001: Flags [S], cksum 0x1c46 (correct), ...

- IPv6 (ip6_print in print-ip6.c): traffic class, flow label, hop limit, the next header and
  the payload length on the same line; the extension headers' options (print-ip6opts.c), the
  fragment's identification (print-frag6.c), the routing header's reserved word (print-rt6.c).
- TCP (tcp_print in print-tcp.c): the checksum after the flags, ``(correct)`` or ``(incorrect
  -> 0x....)``, when the whole segment was captured and the datagram is not a fragment; with
  -vv the sequence number on every segment; a reset's payload as text, ``[RST reason]``.

The checksums are computed here, on the captured bytes, as tcpdump's in_cksum() does.
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, inet_ntop  # not socket: see xdptcp.gso

from xdptcp.payload import Jumped, LineEnds, text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from xdptcp.packet import Packet

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

# print-ip.c's ip_option_values.
_IP_OPTIONS = {0: "EOL", 1: "NOP", 68: "timestamp", 130: "security", 7: "RR", 137: "SSRR",
               131: "LSRR", 148: "RA", 82: "traceroute"}  # fmt: skip
_ECN = ("", ",ECT(1)", ",ECT(0)", ",CE")
# ipproto.c's names of what an IPv6 header's next-header field may hold before TCP.
_NEXT_HEADER = {0: "Options", 6: "TCP", 43: "Routing", 44: "Fragment"}
MAX_RST_DATA = 30  # print-tcp.c's MAX_RST_DATA_LEN


def ones_sum(data) -> int:
    """The one's-complement sum of ``data`` as 16-bit big-endian words (a zero byte added to an
    odd length), folded to 16 bits: a whole number taken modulo 0xffff, as 2**16 is 1 there."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    n = int.from_bytes(data, "big")
    s = n % 0xFFFF
    return 0xFFFF if s == 0 and n else s


def _fold(x: int) -> int:
    x = (x & 0xFFFF) + (x >> 16)
    return (x & 0xFFFF) + (x >> 16)


def checksum_text(field: int, total: int) -> str:
    """in_cksum()'s verdict on bytes whose one's-complement sum (the checksum field included)
    is ``total``: ``(correct)``, or what the field should have held (in_cksum_shouldbe)."""
    computed = ~total & 0xFFFF
    if computed == 0:
        return " (correct)"
    return f" (incorrect -> 0x{_fold(field + computed):04x})"


def _ip4_fields(frame, l3: int) -> str:
    """ip_print's parenthesis with -v, opened, up to the total length."""
    _, tos, ip_len, ip_id, off, ttl, proto, _, _, _ = _IPV4.unpack_from(frame, l3)
    flags = ", ".join(
        name for bit, name in ((0x2000, "+"), (0x4000, "DF"), (0x8000, "rsvd")) if off & bit
    )
    out = f"(tos 0x{tos:x}{_ECN[tos & 3]}"
    if ttl:
        out += f", ttl {ttl}"
    out += f", id {ip_id}, offset {(off & 0x1FFF) * 8}, flags [{flags or 'none'}], "
    return out + f"proto TCP ({proto}), length {ip_len}"


def ip4_header(frame, p: Packet, verify: bool = True) -> str:
    """ip_print's parenthesis with -v, up to and including the new line it ends with (the
    header checksum checked unless ``verify`` is False: -K). Raises ``LineEnds`` where tcpdump
    ends the line in it."""
    l3 = p.l3_off
    hlen = (frame[l3] & 0x0F) * 4
    out = _ip4_fields(frame, l3)
    if hlen > 20:
        text, state = ip_options(bytes(frame[l3 + 20 : p.snap_end]), hlen - 20)
        if state == "cut":  # an option recording more than the capture holds
            out += f", options ({text} [truncated-option]))\n    "
            raise LineEnds(f"{out}{p.src} > {p.dst}:  [|ip]")
        out += f", options ({text})"
    if verify and l3 + hlen <= p.snap_end:
        computed = ~ones_sum(frame[l3 : l3 + hlen]) & 0xFFFF
        if computed:
            ip_sum = frame[l3 + 10] << 8 | frame[l3 + 11]
            out += f", bad cksum {ip_sum:x} (->{_fold(ip_sum + computed):x})!"
    return out + ")\n    "


def ip4_cut(frame, l3: int, hlen: int, end: int, src: str, dst: str) -> str:
    """What ip_print prints with -v, after ``IP ``, for a header whose options the capture
    (or the total length) cuts, ``end`` the last byte it may read: the options up to there;
    then ``[|ip]`` where it could not read an option's first two bytes, or a note that the
    option is cut and the addresses, or, when an option ended the list before the cut, the
    note that the header is longer than what was captured."""
    text, state = ip_options(bytes(frame[l3 + 20 : end]), hlen - 20)  # (state: not "ok")
    out = f"{_ip4_fields(frame, l3)}, options ({text}"
    if state == "unread":
        return Jumped(out + " [|ip]")
    if state == "cut":
        return f"{out} [truncated-option]))\n    {src} > {dst}:  [|ip]"
    return f"{out}))\n     [remaining caplen({end - l3}) < header length({hlen})] [|ip]"


def ip_options(raw: bytes, length: int) -> tuple[str, str]:
    """ip_optprint() over the ``length`` bytes of options; ``raw`` holds what may be read from
    the first option on (to the end of the capture, cut to the IP length). Each option's name,
    the routes and timestamps some record; with how the walk ended: "ok", "unread" (an
    option's type or length byte not captured: tcpdump's printer stops there) or "cut" (an
    option, or an address or timestamp it records, runs past the captured bytes)."""
    out, sep, i, avail = "", "", 0, len(raw)
    while length > 0:
        out += sep
        sep = ","
        if i >= avail:
            return out, "unread"
        code = raw[i]
        out += _IP_OPTIONS.get(code, f"unknown {code}")
        if code in (0, 1):
            size = 1
        else:
            if i + 1 >= avail:
                return out, "unread"
            size = raw[i + 1]
            if size < 2:
                return out + f" [bad length {size}]", "ok"
        if size > length:
            return out + f" [bad length {size}]", "ok"
        if i + size > avail:
            return out, "cut"
        if code == 0:
            return out, "ok"
        said = ""
        if code == 68:
            said = _timestamps(raw, i, size)
        elif code in (7, 131, 137):
            said = _route(raw, i, size)
        elif code == 148:
            if size < 4:
                said = f" [bad length {size}]"
            elif raw[i + 2] << 8 | raw[i + 3]:
                said = f" value {raw[i + 2] << 8 | raw[i + 3]}"
        if said is None:
            return out, "cut"
        out += said
        i += size
        length -= size
    return out, "ok"


def _ip4(raw: bytes, at: int) -> str:
    return inet_ntop(AF_INET, raw[at : at + 4])


def _route(raw: bytes, i: int, length: int) -> Optional[str]:
    """ip_printroute() for the option at ``raw[i]``; None where it reads past the capture (an
    address its length says is there: the reads are not bounded by the option)."""
    if length < 3:
        return f" [bad length {length}]"
    out = f" [bad length {length}]" if (length + 1) & 3 else ""
    ptr = raw[i + 2] - 1
    if ptr < 3 or (ptr + 1) & 3 or ptr > length + 1:
        out += f" [bad ptr {raw[i + 2]}]"
    for at in range(3, length, 4):
        if i + at + 4 > len(raw):
            return None
        out += " " + _ip4(raw, i + at) + ("," if ptr > at else "")
    return out


def _timestamps(raw: bytes, i: int, length: int) -> Optional[str]:
    """ip_printts() for the option at ``raw[i]``; None where it reads past the capture."""
    if length < 4:
        return f"[bad length {length}]"
    out = " TS{"
    flags = raw[i + 3]
    hoplen = 4 if flags & 0xF == 0 else 8
    if (length - 4) & (hoplen - 1):
        out += f"[bad length {length}]"
    ptr = raw[i + 2] - 1
    if ptr < 4 or (ptr - 4) & (hoplen - 1) or ptr > length + 1:
        out += f"[bad ptr {raw[i + 2]}]"
    at = 0
    if flags & 0xF in (0, 1, 3):
        out += ("TSONLY", "TS+ADDR", "", "PRESPEC")[flags & 0xF]
        kind, at = " ", 4
        while at < length:
            if ptr == at:
                kind = " ^ "
            if i + at + hoplen > len(raw):
                return None
            stamp = _U32.unpack_from(raw, i + at + hoplen - 4)[0]
            out += f"{kind}{stamp}@{_ip4(raw, i + at) if hoplen == 8 else ''}"
            kind = " "
            at += hoplen
    else:
        out += f"[bad ts type {flags & 0xF}]"
    if ptr == at:
        out += " ^ "
    return out + (f" [{flags >> 4} hops not recorded]}} " if flags >> 4 else "}")


def ip6_header(frame, l3: int) -> str:
    """ip6_print's parenthesis with -v (on the same line as the rest), for the IPv6 header at
    ``l3``."""
    flow, plen, nh, hlim = struct.unpack_from("!IHBB", frame, l3)
    out = "("
    if flow & 0x0FF00000:
        out += f"class 0x{(flow & 0x0FF00000) >> 20:02x}, "
    if flow & 0x000FFFFF:
        out += f"flowlabel 0x{flow & 0x000FFFFF:05x}, "
    name = _NEXT_HEADER.get(nh, "unknown")
    return out + f"hlim {hlim}, next-header {name} ({nh}) payload length: {plen}) "


def ip6_options(raw: bytes, hop_by_hop: bool, payload_len: int) -> str:
    """ip6_opt_process() with -v: the options of a hop-by-hop or destination options header
    (``raw`` the whole header), then a space. Raises ``LineEnds`` where tcpdump gives up."""
    out, i, n = "", 2, len(raw)
    jumbo_seen = False
    while i < n:
        kind = raw[i]
        if kind == 0:
            out += "(pad1)"
            i += 1
            continue
        if i + 1 >= n or i + raw[i + 1] + 2 > n:
            raise LineEnds(out)
        size = raw[i + 1] + 2
        if kind == 1:
            if n - i < 2:
                raise LineEnds(out + "(padn: trunc)")
            out += "(padn)"
        elif kind == 5:
            if n - i < 4:
                raise LineEnds(out + "(rtalert: trunc)")
            if size != 4:
                raise LineEnds(out + f"(rtalert: invalid len {raw[i + 1]})")
            out += f"(rtalert: 0x{raw[i + 2] << 8 | raw[i + 3]:04x}) "
        elif kind == 0xC2:
            if n - i < 6:
                raise LineEnds(out + "(jumbo: trunc)")
            if size != 6:
                raise LineEnds(out + f"(jumbo: invalid len {raw[i + 1]})")
            value = _U32.unpack_from(raw, i + 2)[0]
            if jumbo_seen:
                out += f"(jumbo: {value} - already seen) "
            elif not hop_by_hop:
                out += f"(jumbo: {value} - not a hop-by-hop option) "
            elif payload_len:
                out += f"(jumbo: {value} - payload len != 0) "
            elif value < 65536:
                out += f"(jumbo: {value} - < 65536) "
            else:
                out += f"(jumbo: {value}) "
            jumbo_seen = True
        elif kind == 0xC9:
            if n - i < 18:
                raise LineEnds(out + "(homeaddr: trunc)")
            if size < 18:
                raise LineEnds(out + f"(homeaddr: invalid len {raw[i + 1]})")
            home = inet_ntop(AF_INET6, raw[i + 2 : i + 18])
            out += f"(homeaddr: {home}{_sub_options(raw[i + 18 : i + size])})"
        else:
            out += f"(opt_type 0x{kind:02x}: len={raw[i + 1]})"
        i += size
    return out + " "


def _sub_options(raw: bytes) -> str:
    """ip6_sopt_print(): a home address option's sub-options."""
    out, i = "", 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            out += ", pad1"
            i += 1
            continue
        if i + 1 >= len(raw):
            break
        out += ", padn" if kind == 1 else f", sopt_type 0x{kind:02x}: len={raw[i + 1]}"
        i += raw[i + 1] + 2
    return out


def tcp_checksum(frame, p: Packet) -> str:
    """tcp_print's ``, cksum 0x.... (correct)`` with -v: only when the whole segment was
    captured and the datagram is not a fragment (nothing, else)."""
    if p.more_frags or p.frag_offset or (p.ip_version == 6 and any(h == 44 for h, _ in p.ext)):
        return ""
    l4, length = p.l4_off, p.tcp_len
    if l4 + length > p.snap_end:
        return ""
    field = frame[l4 + 16] << 8 | frame[l4 + 17]
    l3 = p.l3_off
    if p.ip_version == 4:
        src = frame[l3 + 12 : l3 + 16]
        dst = _ip4_final_destination(frame, p) or frame[l3 + 16 : l3 + 20]
        pseudo = bytes(src) + bytes(dst) + struct.pack("!BBH", 0, 6, length & 0xFFFF)
    else:
        src = frame[l3 + 8 : l3 + 24]
        dst = _ip6_final_destination(p) or frame[l3 + 24 : l3 + 40]
        pseudo = bytes(src) + bytes(dst) + struct.pack("!I3xB", length, 6)
    total = _fold(ones_sum(pseudo) + ones_sum(frame[l4 : l4 + length]))
    return f", cksum 0x{field:04x}" + checksum_text(field, total)


def _ip4_final_destination(frame, p: Packet):
    """ip_finddst(): the last address of a loose or strict source route, which the TCP
    checksum's pseudo-header takes for the destination."""
    l3 = p.l3_off
    hlen = (frame[l3] & 0x0F) * 4
    raw, i = bytes(frame[l3 + 20 : l3 + hlen]), 0
    while i < len(raw):
        code = raw[i]
        if code == 0:
            break
        if code == 1:
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            break
        size = raw[i + 1]
        if size > len(raw) - i:
            break
        if code in (131, 137) and size >= 7:
            return raw[i + size - 4 : i + size]
        i += size
    return None


def _ip6_final_destination(p: Packet):
    """ip6_finddst(): the final address a routing header of type 0, 2 (the last one listed) or
    4 (the first segment) names."""
    for proto, raw in p.ext:
        if proto != 43:
            continue
        count = raw[1] // 2
        if raw[1] % 2 or not count:
            return None
        if raw[2] == 4:
            return raw[8:24]
        if raw[2] in (0, 2):
            return raw[8 + 16 * (count - 1) : 8 + 16 * count]
        return None
    return None


def rst_data(frame, start: int, length: int, snap_end: int) -> str:
    """print_tcp_rst_data(): a reset's payload as text, at most 30 bytes of it."""
    out = " [RST" if start + length <= snap_end else " [!RST"
    if length > MAX_RST_DATA:
        length = MAX_RST_DATA
        out += "+"
    return out + " " + text(frame, start, min(start + length, snap_end)) + "]"
