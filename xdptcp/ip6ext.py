"""What tcpdump prints for IPv6 extension headers before the TCP part of a line: ip6_print's
walk over them (print-ip6.c), with print-ip6opts.c (``HBH``, ``DSTOPT``), print-rt6.c (``RT6
(...)``) and print-frag6.c (``frag (off|len)``). ``xdptcp.packet`` has decoded them; this only
writes them out.
"""

from __future__ import annotations

import struct
from _socket import AF_INET6, inet_ntop  # not socket: see xdptcp.gso

from xdptcp.payload import LineEnds

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from xdptcp.packet import Decoder, Packet

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64_MAX = (1 << 64) - 1


def ext_text(p: Packet, dec: Decoder, frame=None, verbose: int = 0) -> str:
    """What ip6_print prints for each extension header (print-ip6opts.c, rt6, frag6); with
    ``verbose`` (-v) what it adds (``frame`` the packet's frame). Raises ``payload.LineEnds``
    (its argument the text of the headers so far) where -v's walk over a destination options
    header gives up."""
    out = ""
    l3 = p.l3_off
    pos = l3 + 40
    plen = _U16.unpack_from(frame, l3 + 4)[0] if frame is not None else -1
    for proto, raw in p.ext:
        if proto in (0, 60):
            try:
                out += header_options_text(proto, raw, plen, verbose)
            except LineEnds as e:
                raise LineEnds(out + e.args[0]) from None
        elif proto == 44:
            # what follows the fragment header by the fixed header's payload length, even a
            # jumbogram's 0 (tcpdump's unsigned 64-bit difference)
            rest = p.tcp_len + (p.l4_off - pos) if plen else 40 - (pos - l3)
            out += frag_text(raw, (rest - 8) & _U64_MAX, verbose) + " "
        else:
            out += rt6_text(raw, dec, verbose)
        pos += len(raw)
    return out


def header_options_text(proto: int, raw: bytes, payload_len: int, verbose: int) -> str:
    """A hop-by-hop (``proto`` 0) or destination options (60) header, ``raw`` whole: its name
    and, with -v, its options (``xdptcp.verbose.ip6_options``). Raises ``LineEnds`` with the
    text and ``[|dstopt]`` where tcpdump gives up on one."""
    name = "HBH " if proto == 0 else "DSTOPT "
    if not verbose:
        return name
    from xdptcp.verbose import ip6_options

    try:
        return name + ip6_options(raw, proto == 0, payload_len)
    except LineEnds as e:
        raise LineEnds(f"{name}{e.args[0]} [|dstopt]") from None


def frag_text(raw: bytes, rest: int, verbose: int) -> str:
    """frag6_print(): the offset and the length left (``rest``), with -v the identification
    first (``raw`` then holds its 8 bytes; otherwise its first 4 will do)."""
    offset = _U16.unpack_from(raw, 2)[0] & 0xFFF8
    if verbose:
        return f"frag (0x{_U32.unpack_from(raw, 4)[0]:08x}:{offset}|{rest})"
    return f"frag ({offset}|{rest})"


def rt6_text(raw: bytes, dec: Decoder, verbose: int = 0) -> str:
    """rt6_print() for a whole routing header the decoder accepted."""
    return rt6_fields(raw, dec.addr, verbose) + ") "


def rt6_fields(raw: bytes, addr=None, verbose: int = 0) -> Optional[str]:
    """What rt6_print() prints of a routing header, without its closing ``) ``, as far as
    ``raw`` holds it (a capture may end inside it); with -v the flags of a segment routing
    header and the reserved word of the others even when 0. None for a header tcpdump refuses
    (a type but 0, 2 and 4, an odd length). ``addr`` formats an IPv6 address."""
    n = len(raw)
    out = "RT6"
    if n < 2:
        return out
    if raw[1] % 2:
        return None
    out += f" (len={raw[1]}"
    if n < 3:
        return out
    rtype = raw[2]
    if rtype not in (0, 2, 4):
        return None
    out += f", type={rtype}" + (" [Deprecated]" if rtype == 0 else "")
    if n < 4:
        return out
    out += f", segleft={raw[3]}"
    if rtype == 4:
        if n < 5:
            return out
        out += f", last-entry={raw[4]}"
        if n < 6:
            return out
        if raw[5] or verbose:
            out += f", flags=0x{raw[5]:x}"
        if n < 8:
            return out
        out += f", tag={_U16.unpack_from(raw, 6)[0]:x}"
    else:
        if n < 8:
            return out
        reserved = _U32.unpack_from(raw, 4)[0]
        if reserved or verbose:
            out += f", rsv=0x{reserved:x}"
    for i in range(raw[1] // 2):
        if 24 + 16 * i > n:
            return out
        address = raw[8 + 16 * i : 24 + 16 * i]
        out += f", [{i}]{addr(address) if addr else inet_ntop(AF_INET6, address)}"
    return out
