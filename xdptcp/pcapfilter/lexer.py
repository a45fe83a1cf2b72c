"""The words of a pcap-filter expression, as libpcap's scanner.l cuts them.

The longest match wins, as in flex: ``tcp-syn`` is one word, ``10-20`` too (a port range), and
so is ``5-3`` — which libpcap, like this lexer, then fails to read as arithmetic. Named constants
(``tcp-syn``, ``tcpflags``, ``icmp-echo``) are numbers wherever they appear.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

NUM, ID, ESCID, HID, HID6, EID, OP, END = "NUM", "ID", "ESCID", "HID", "HID6", "EID", "OP", "END"

NAMED_NUMBERS = {
    "tcpflags": 13,
    "tcp-fin": 0x01,
    "tcp-syn": 0x02,
    "tcp-rst": 0x04,
    "tcp-push": 0x08,
    "tcp-ack": 0x10,
    "tcp-urg": 0x20,
    "tcp-ece": 0x40,
    "tcp-cwr": 0x80,
    "icmptype": 0,
    "icmpcode": 1,
    "icmp-echoreply": 0,
    "icmp-unreach": 3,
    "icmp-sourcequench": 4,
    "icmp-redirect": 5,
    "icmp-echo": 8,
    "icmp-routeradvert": 9,
    "icmp-routersolicit": 10,
    "icmp-timxceed": 11,
    "icmp-paramprob": 12,
    "icmp-tstamp": 13,
    "icmp-tstampreply": 14,
    "icmp-ireq": 15,
    "icmp-ireqreply": 16,
    "icmp-maskreq": 17,
    "icmp-maskreply": 18,
    "icmp6type": 0,
    "icmp6code": 1,
    "icmp6-echo": 128,
    "icmp6-echoreply": 129,
}

_N = r"(?:0[xX][0-9A-Fa-f]+|[0-9]+)"
_W = r"[0-9A-Fa-f]{1,4}"
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<op>&&|\|\||==|!=|<=|>=|<<|>>|[()\[\]!&|=<>+\-*/%^:])
  | (?P<esc>\\[^ !()\n\t]+)
  | (?P<word>[A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])?)
    """,
    re.VERBOSE,
)
_HID = re.compile(rf"{_N}(?:\.{_N}){{0,3}}")
_NUMBER = re.compile(_N)
_COLON_WORD = re.compile(r"[0-9A-Fa-f.:]+")
_MAC = re.compile(
    r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){5}|[0-9A-Fa-f]{1,2}(?:-[0-9A-Fa-f]{1,2}){5}"
    r"|[0-9A-Fa-f]{1,2}(?:\.[0-9A-Fa-f]{1,2}){5}|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){2}"
    r"|[0-9A-Fa-f]{12}"
)


class Token(NamedTuple):
    kind: str
    text: str
    pos: int


class LexError(ValueError):
    def __init__(self, pos: int, text: str) -> None:
        super().__init__(f"illegal character {text!r}")
        self.pos = pos
        self.text = text


def tokenize(text: str) -> list[Token]:
    out, pos = [], 0
    while pos < len(text):
        colon = _COLON_WORD.match(text, pos)
        if colon and ":" in colon.group() and _is_colon_address(colon.group()):
            word = colon.group()
            out.append(Token(EID if _MAC.fullmatch(word) else HID6, word, pos))
            pos = colon.end()
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            raise LexError(pos, text[pos])
        kind = m.lastgroup
        word = m.group(kind)
        if kind == "op":
            out.append(Token(OP, word, pos))
        elif kind == "esc":
            out.append(Token(ESCID, word[1:], pos + 1))  # never a keyword
        elif kind == "word":
            out.append(Token(_classify(word), word, pos))
        pos = m.end()
    out.append(Token(END, "end of filter", len(text)))
    return out


def _is_colon_address(word: str) -> bool:
    """An IPv6 address or a MAC address with colons (``tcp[0:2]`` is neither)."""
    if _MAC.fullmatch(word):
        return True
    try:
        ipaddress.IPv6Address(word)
    except ValueError:
        return False
    return True


def _classify(word: str) -> str:
    # scanner.l lists its MAC rule before numbers, IPv4 addresses and names, and flex takes
    # the first of equally long matches: 020000000001, 0200.0000.0001, deadbeefcafe and
    # 2.0.0.0.0.1 are MAC addresses wherever they appear
    if _MAC.fullmatch(word) and word not in NAMED_NUMBERS:
        return EID
    if word in NAMED_NUMBERS or _NUMBER.fullmatch(word):
        return NUM
    if _HID.fullmatch(word):
        return HID
    return ID


def number(word: str) -> int:
    """A NUM token's value: decimal, 0x hex, or octal with a leading 0 (as libpcap's stoulen)."""
    if word in NAMED_NUMBERS:
        return NAMED_NUMBERS[word]
    if word[:2].lower() == "0x":
        return int(word, 16)
    if len(word) > 1 and word[0] == "0":
        return int(word, 8)
    return int(word)
