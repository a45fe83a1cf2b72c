"""Reading a payload as tcpdump's decoders read it, for ``xdptcp.appproto`` and ``xdptcp.dns``:
extract.h's GET_U_1, GET_BE_U_2 and GET_BE_U_4, which give up at the first byte not captured, and
util-print.c's fn_print_char, which prints a byte inside a name or quoted text."""

from __future__ import annotations


class Truncated(Exception):
    """A read past the captured bytes: tcpdump gives up and ends the line with its
    ``[|proto]`` note. The argument, when there is one, is what the decoder printed first."""


class Unread(Truncated):
    """``Truncated`` by one of the GET_ macros (``u8``, ``be16``, ``be32``): tcpdump's printer is
    abandoned there (its longjmp), and -x, -X and -A then show the whole packet, its link-layer
    header too (``Jumped``). A decoder's own test that gives up raises ``Truncated``."""


class LineEnds(Exception):
    """A printer ends the line by a check of its own (tcpdump's ``goto trunc`` and return, no
    longjmp): an IPv4 option that records more than the capture holds, a destination options
    header whose option runs past it. The argument is the rest of the line, from where the
    raiser's text starts."""


class Jumped(str):
    """A decoder's text that ends where an ``Unread`` stopped it."""


def gave_up(said: str, e: Truncated) -> str:
    """What a decoder printed, ``[|proto]`` included, where ``e`` stopped it: ``Jumped`` when
    a GET_ read did."""
    return Jumped(said) if isinstance(e, Unread) else said


def u8(buf, i: int, cap: int) -> int:
    """GET_U_1(): the byte at ``i`` (the captured bytes end at ``cap``)."""
    if i >= cap:
        raise Unread("")
    return buf[i]


def be16(buf, i: int, cap: int) -> int:
    """GET_BE_U_2()."""
    if i + 2 > cap:
        raise Unread("")
    return (buf[i] << 8) | buf[i + 1]


def be32(buf, i: int, cap: int) -> int:
    """GET_BE_U_4()."""
    if i + 4 > cap:
        raise Unread("")
    return int.from_bytes(buf[i : i + 4], "big")


# fn_print_char(): "M-" for the high bit, "^" for a control character.
_CHARS = []
for _c in range(256):
    _hi, _c7 = ("M-", _c & 0x7F) if _c & 0x80 else ("", _c)
    _CHARS.append(_hi + (chr(_c7) if 0x20 <= _c7 <= 0x7E else "^" + chr(_c7 ^ 0x40)))
del _c, _hi, _c7


def text(buf, i: int, j: int) -> str:
    """``buf[i:j]`` as tcpdump prints it, a byte at a time with fn_print_char()."""
    return "".join([_CHARS[c] for c in bytes(buf[i:j])])
