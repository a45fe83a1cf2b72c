"""What tcpdump prints for IPv6 extension headers before the TCP part of a line: ip6_print's
walk over them (print-ip6.c), with print-ip6opts.c (``HBH``, ``DSTOPT``), print-rt6.c (``RT6
(...)``) and print-frag6.c (``frag (off|len)``). ``xdptcp.packet`` has decoded them; this only
writes them out.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from xdptcp.packet import Decoder, Packet

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def ext_text(p: Packet, dec: Decoder) -> str:
    """What ip6_print prints for each extension header (print-ip6opts.c, rt6, frag6)."""
    out = ""
    pos = p.l3_off + 40
    for proto, raw in p.ext:
        if proto == 0:
            out += "HBH "
        elif proto == 60:
            out += "DSTOPT "
        elif proto == 44:
            offlg = _U16.unpack_from(raw, 2)[0] & 0xFFF8
            rest = 40 + (p.tcp_len + (p.l4_off - p.l3_off) - 40) - (pos - p.l3_off) - 8
            out += f"frag ({offlg}|{rest}) "
        else:
            out += rt6_text(raw, dec)
        pos += len(raw)
    return out


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
