"""What tcpdump prints for IPv6 extension headers before the TCP part of a line: ip6_print's
walk over them (print-ip6.c), with print-ip6opts.c (``HBH``, ``DSTOPT``), print-rt6.c (``RT6
(...)``) and print-frag6.c (``frag (off|len)``). ``xdptcp.packet`` has decoded them; this only
writes them out.
"""

from __future__ import annotations

import struct

from xdptcp.payload import LineEnds

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from xdptcp.packet import Decoder, Packet

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def ext_text(p: Packet, dec: Decoder, frame=None, verbose: int = 0) -> str:
    """What ip6_print prints for each extension header (print-ip6opts.c, rt6, frag6); with
    ``verbose`` (-v) what it adds (``frame`` the packet's frame). Raises ``payload.LineEnds``
    (its argument the text of the headers so far) where -v's walk over a destination options
    header gives up."""
    out = ""
    pos = p.l3_off + 40
    plen = _U16.unpack_from(frame, p.l3_off + 4)[0] if verbose else 0
    for proto, raw in p.ext:
        if proto in (0, 60):
            try:
                out += header_options_text(proto, raw, plen, verbose)
            except LineEnds as e:
                raise LineEnds(out + e.args[0]) from None
        elif proto == 44:
            out += frag_text(raw, p.tcp_len + (p.l4_off - pos) - 8, verbose) + " "
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


def rt6_text(raw: bytes, dec: Decoder, verbose: bool = False) -> str:
    """rt6_print(): with -v, the flags of a segment routing header and the reserved word of
    the others even when 0."""
    length, rtype, segleft = raw[1], raw[2], raw[3]
    out = f"RT6 (len={length}, type={rtype}"
    if rtype == 0:
        out += " [Deprecated]"
    out += f", segleft={segleft}"
    if rtype == 4:
        out += f", last-entry={raw[4]}"
        if raw[5] or verbose:
            out += f", flags=0x{raw[5]:x}"
        out += f", tag={_U16.unpack_from(raw, 6)[0]:x}"
    else:
        reserved = _U32.unpack_from(raw, 4)[0]
        if reserved or verbose:
            out += f", rsv=0x{reserved:x}"
    for i in range(length // 2):
        out += f", [{i}]{dec.addr(raw[8 + 16 * i : 24 + 16 * i])}"
    return out + ") "
