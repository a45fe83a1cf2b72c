"""tcpdump's -x, -X and -A: each packet's bytes after its line, in hex, hex and ASCII, or ASCII.

Once (-x, -X, -A) the bytes after the link-layer header, twice (-xx, -XX, -AA) the whole
packet; -X wins over -x, and -x over -A, as in tcpdump. The text is tcpdump's to the byte
(print-ascii.c): lines of 16 bytes, each led by a tab and its offset; the hex in groups of two
bytes; the ASCII column with a '.' for any byte outside '!'..'~'. -A prints the bytes as they
are where they are printable, a tab, a space or a newline, drops a carriage return before a
newline, and prints '.' for any other byte.
"""

from __future__ import annotations

from pybpf.record import record
from xdptcp.cutshort import TPIDS  # the tags tcpdump's Ethernet printer walks, as packet.py does
from xdptcp.payload import Jumped

_GRAPH = bytes(c if 0x21 <= c <= 0x7E else 0x2E for c in range(256))  # ND_ASCII_ISGRAPH, else '.'
# -A: tab, newline and space print as they are too
_TEXT = bytes(c if 0x21 <= c <= 0x7E or c in (0x09, 0x0A, 0x20) else 0x2E for c in range(256))
# ip_print and tcp_print say this, then abandon the packet (nd_trunc_longjmp)
_ABANDONED = " [remaining caplen("


def ethernet_header_length(frame) -> int:
    """The Ethernet header's length as tcpdump's Ethernet printer counts it (ndo_ll_hdr_len):
    14 bytes and 4 for each VLAN tag, as far as the frame holds them."""
    n, end = 14, len(frame)
    while n + 4 <= end and int.from_bytes(frame[n - 2 : n], "big") in TPIDS:
        n += 4
    return n


def hex_and_ascii(data) -> str:
    """-X: ``hex_and_ascii_print``."""
    return _hex(data, True)


def hex_only(data, ident: str = "\n\t", offset: int = 0) -> str:
    """-x: ``hex_print``; with another ``ident`` before each line, tcpdump's dumps of a
    payload's part (print_unknown_data); with ``offset``, the lines numbered from it
    (hex_print_with_offset)."""
    return _hex(data, False, ident, offset)


def unknown_data(buf, at: int, cap: int, ident: str, n: int) -> str:
    """print_unknown_data(): as many of the ``n`` bytes at ``buf[at]`` as were captured (those
    before ``cap``) in hex, each line led by ``ident``; a decoder's dump of what it does not
    decode."""
    if at > cap:
        return f"{ident}Dissector error: print_unknown_data called with pointer past end of packet"
    return hex_only(buf[at : min(at + n, cap)], ident)


def _hex(data, ascii_too: bool, ident: str = "\n\t", offset: int = 0) -> str:
    """Lines of 16 bytes: ``ident`` (a new line and a tab), the offset, the bytes in groups of
    two, and with ``ascii_too`` the hex padded to its full width and the bytes as ASCII."""
    out = []
    for off in range(0, len(data), 16):
        chunk = bytes(data[off : off + 16])
        groups = " ".join(chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
        if ascii_too:
            groups = f"{groups:<39}  {chunk.translate(_GRAPH).decode()}"
        out.append(f"{ident}0x{offset + off:04x}:  {groups}")
    return "".join(out)


def ascii_only(data) -> str:
    """-A: ``ascii_print``. A carriage return prints nothing when a newline follows it, or
    when it is the packet's last byte or the one before it (tcpdump's test is on the bytes
    left after the one that follows), and '.' otherwise."""
    data = bytes(data)
    out = bytearray(b"\n")
    n = len(data)
    for i, c in enumerate(data):
        if c == 0x0D:
            if n - i - 1 > 1 and data[i + 1] != 0x0A:
                out.append(0x2E)
        else:
            out.append(_TEXT[c])
    return out.decode()


_PRINTERS = {"X": hex_and_ascii, "x": hex_only, "A": ascii_only}


@record
class Dump:
    """What to print after each packet's line: ``kind`` "X", "x" or "A", of the whole packet
    (``whole``: -XX, -xx, -AA) or of what follows its link-layer header."""

    kind: str
    whole: bool = False

    @classmethod
    def from_counts(cls, X: int, x: int, A: int) -> Dump | None:
        """From the number of times each flag was given, as tcpdump ranks them."""
        for kind, n in (("X", X), ("x", x), ("A", A)):
            if n:
                return cls(kind, n > 1)
        return None

    def text(self, line: str, packet, link_header: int) -> str:
        """The dump of ``packet`` (its captured bytes), whose link-layer header is
        ``link_header`` bytes long, to follow ``line``, its line: nothing when nothing follows
        that header. Where tcpdump's printer was abandoned for want of captured bytes (its
        longjmp: ``line`` ends where a read failed, ``payload.Jumped``, or says that the
        headers were not all captured), tcpdump shows the whole packet, and so does this."""
        if self.whole or line.__class__ is Jumped or _ABANDONED in line:
            return _PRINTERS[self.kind](packet)
        if len(packet) <= link_header:
            return ""
        return _PRINTERS[self.kind](memoryview(packet)[link_header:])
