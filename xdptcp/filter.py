"""The capture filter: a pcap-filter subset compiled into the kernel program's decision graph.

``compile_filter("tcp port 80 and not src net 198.18.0.0/15")`` tokenizes and parses the text
into an AST, then compiles it into at most ``FILTER_MAX`` fixed-size instructions
(``struct xdptcp_filter_insn`` in ``bpf/xdptcp.h``) that the program evaluates from ``.rodata``:
non-matching frames never reach the ring buffer. ``CompiledFilter.matches(frame)`` runs the
*compiled* instructions in Python over a raw frame, with the same parsing rules as the C code,
so tests can hold the kernel, this evaluator and tcpdump against each other.

Semantics are libpcap's (checked against ``tcpdump -d``), including its surprises:

* ``and`` and ``or`` have equal precedence and associate left to right; ``not`` binds tightest.
* ``vlan`` shifts the offsets of every primitive written after it, whatever the parentheses:
  a primitive preceded by k ``vlan`` keywords only holds on a frame with exactly k tags. So
  ``host X`` never matches a tagged frame, and ``vlan or host X`` tests X one tag deep.
* ``tcp`` means IPv4 protocol 6, or IPv6 next header 6 directly or after one fragment header.
* ``port``/``portrange`` on IPv6 need TCP right after the fixed header (no extension headers).
* ``tcp[tcpflags]`` tests only IPv4 frames, as libpcap does.

Known difference: libpcap reads "the ethertype" at 12 + 4k even when the frame has fewer than k
tags, i.e. inside the IP header; xdptcp treats such a predicate as false.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

from xdptcp.record import Frame, Verdict, parse_frame

FILTER_MAX = 64  # XDPTCP_FILTER_MAX
ACCEPT = 254  # XDPTCP_FILTER_ACCEPT
REJECT = 255  # XDPTCP_FILTER_REJECT

# enum xdptcp_filter_op
OP_L3, OP_TCP, OP_SRC_ADDR, OP_DST_ADDR, OP_SRC_PORT, OP_DST_PORT, OP_FLAGS, OP_VLAN = range(1, 9)
# enum xdptcp_filter_cmp, by the operator a user writes
CMP = {"==": 0, "=": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}

# struct xdptcp_filter_insn: op, vlans, jt, jf, lo, hi (host order); addr, mask (network order)
INSN = struct.Struct("=BBBBHH16s16s")

TCP_FLAGS = {
    "tcp-fin": 0x01,
    "tcp-syn": 0x02,
    "tcp-rst": 0x04,
    "tcp-push": 0x08,
    "tcp-ack": 0x10,
    "tcp-urg": 0x20,
    "tcp-ece": 0x40,
    "tcp-cwr": 0x80,
}

SUPPORTED = "host, net, port, portrange, ip, ip6, tcp, vlan, tcp[tcpflags], and/or/not"


class FilterError(ValueError):
    """The filter text is not in the supported subset; the message is one line."""

    def __init__(self, message: str, position: int, part: str):
        self.position = position
        self.part = part
        super().__init__(f"filter: {message} (at position {position}: {part!r})")


# ---- tokens ---------------------------------------------------------------------------------

# A word is anything made of address, number, name or range characters: 198.18.0.0/15,
# 2001:db8::1, tcp-syn, 10-20, 0x12.
_TOKEN = re.compile(
    r"\s*(?:(?P<word>[A-Za-z0-9_.:/-]+)|(?P<op>&&|\|\||==|!=|<=|>=|[()!&|=<>\[\]]))"
)


class Token(NamedTuple):
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            start = len(text) - len(text[pos:].lstrip())
            raise FilterError("unexpected character", start, text[start])
        kind = "word" if m.group("word") else "op"
        tokens.append(Token(m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


# ---- AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pred:
    """One kernel predicate (one filter instruction before its jump targets are known)."""

    op: int
    vlans: int
    lo: int = 0
    hi: int = 0
    addr: bytes = bytes(16)
    mask: bytes = bytes(16)


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    child: Node


Node = Union[Pred, And, Or, Not]


@dataclass(frozen=True)
class Quals:
    """libpcap's qualifiers, remembered so that ``host A or B`` means ``host A or host B``."""

    proto: Optional[str] = None  # ip, ip6, tcp
    dir: str = "src or dst"
    kind: Optional[str] = None  # host, net, port, portrange


_PROTOS = ("ip", "ip6", "tcp")
# libpcap primitives and qualifiers outside the subset, for a clear error instead of a guess.
_UNSUPPORTED = frozenset(
    {
        "udp",
        "icmp",
        "icmp6",
        "igmp",
        "igrp",
        "pim",
        "vrrp",
        "carp",
        "sctp",
        "arp",
        "rarp",
        "ether",
        "fddi",
        "tr",
        "wlan",
        "link",
        "ppp",
        "slip",
        "ah",
        "esp",
        "proto",
        "protochain",
        "gateway",
        "broadcast",
        "multicast",
        "less",
        "greater",
        "len",
        "inbound",
        "outbound",
        "ifname",
        "on",
        "mpls",
        "pppoed",
        "pppoes",
        "geneve",
        "vxlan",
        "atalk",
        "aarp",
        "decnet",
        "iso",
        "stp",
        "ipx",
        "netbeui",
        "llc",
        "radio",
    }
)
_KINDS = ("host", "net", "port", "portrange")
_AND, _OR, _NOT = ("and", "&&"), ("or", "||"), ("not", "!")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.vlans = 0  # `vlan` keywords seen so far: libpcap's running offset shift
        self.last: Optional[Quals] = None

    # token helpers
    def peek(self, ahead: int = 0) -> Optional[str]:
        j = self.i + ahead
        return self.tokens[j].text.lower() if j < len(self.tokens) else None

    def here(self) -> Token:
        if self.i < len(self.tokens):
            return self.tokens[self.i]
        return Token("end of filter", len(self.text))

    def take(self) -> Token:
        tok = self.here()
        if self.i >= len(self.tokens):
            raise FilterError("unexpected end of filter", tok.pos, tok.text)
        self.i += 1
        return tok

    def expect(self, text: str) -> Token:
        tok = self.here()
        if self.peek() != text:
            raise FilterError(f"expected {text!r}", tok.pos, tok.text)
        return self.take()

    def fail(self, message: str, tok: Optional[Token] = None) -> FilterError:
        tok = tok or self.here()
        return FilterError(message, tok.pos, tok.text)

    # grammar
    def parse(self) -> Optional[Node]:
        if not self.tokens:
            return None
        node = self.expr()
        if self.i != len(self.tokens):
            raise self.fail("unexpected text after a complete expression")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek() in _AND + _OR:
            is_and = self.take().text.lower() in _AND
            right = self.term()
            node = And(node, right) if is_and else Or(node, right)
        return node

    def term(self) -> Node:
        word = self.peek()
        if word in _NOT:
            self.take()
            return Not(self.term())
        if word == "(":
            self.take()
            node = self.expr()
            self.expect(")")
            return node
        return self.primitive()

    def primitive(self) -> Node:
        word = self.peek()
        if word is None:
            raise self.fail("expected a primitive")
        if word in _UNSUPPORTED:
            raise self.fail(f"{word!r} is not supported; supported: {SUPPORTED}")
        if word in ("ip", "ip6") and self.peek(1) == "[":
            raise self.fail(f"{word}[...] is not supported, only tcp[tcpflags]")
        if word == "vlan":
            return self.vlan()
        if word == "tcp" and self.peek(1) == "[":
            return self.tcp_flags()
        if word in _PROTOS and self.peek(1) not in ("src", "dst", *_KINDS):
            self.take()
            return self.proto_only(word)
        quals, explicit = self.qualifiers()
        tok = self.here()
        if tok.text.lower() in _KINDS or not explicit and not _looks_like_id(tok.text):
            raise self.fail(f"unsupported primitive; supported: {SUPPORTED}")
        if not explicit:
            if self.last is None:
                if not _is_address(tok.text):
                    raise self.fail("needs a qualifier such as host, net or port")
                quals = Quals(kind="host")
            else:
                quals = self.last
        elif quals.kind is None:
            quals = Quals(quals.proto, quals.dir, "host")
        self.take()
        self.last = quals
        return self.with_id(quals, tok)

    def qualifiers(self) -> tuple[Quals, bool]:
        proto = dir_ = kind = None
        if self.peek() in _PROTOS:
            proto = self.take().text.lower()
        if self.peek() in ("src", "dst"):
            dir_ = self.take().text.lower()
            other = "dst" if dir_ == "src" else "src"
            if self.peek() in ("or", "and") and self.peek(1) == other:
                dir_ = f"src {self.take().text.lower()} dst"
                self.take()
        if self.peek() in _KINDS:
            kind = self.take().text.lower()
        explicit = proto is not None or dir_ is not None or kind is not None
        return Quals(proto, dir_ or "src or dst", kind), explicit

    def proto_only(self, proto: str) -> Node:
        if proto == "tcp":
            return Pred(OP_TCP, self.vlans)
        return Pred(OP_L3, self.vlans, lo=4 if proto == "ip" else 6)

    def vlan(self) -> Node:
        self.take()
        vlans = self.vlans
        self.vlans += 1
        if self.peek() is not None and self.peek().isdigit():
            tok = self.take()
            vid = _number(tok)
            if vid > 4095:
                raise FilterError("VLAN id greater than 4095", tok.pos, tok.text)
            return Pred(OP_VLAN, vlans, lo=vid)
        return Pred(OP_VLAN, vlans, hi=1)

    def tcp_flags(self) -> Node:
        start = self.take()
        self.expect("[")
        field = self.here()
        if self.peek() != "tcpflags":
            raise self.fail("only tcp[tcpflags] is supported, not other tcp[] offsets", field)
        self.take()
        self.expect("]")
        mask = 0xFF
        if self.peek() == "&":
            self.take()
            mask = self.flag_value()
        op = self.here()
        if op.text not in CMP:
            raise self.fail("expected a comparison (==, !=, <, <=, >, >=) after tcp[tcpflags]")
        self.take()
        value = self.flag_value()
        if value > 0xFF or mask > 0xFF:
            raise FilterError("tcp[tcpflags] is one byte", start.pos, "tcp[tcpflags]")
        return Pred(OP_FLAGS, self.vlans, lo=mask, hi=(CMP[op.text] << 8) | value)

    def flag_value(self) -> int:
        value = self.flag_atom()
        while self.peek() == "|":
            self.take()
            value |= self.flag_atom()
        return value

    def flag_atom(self) -> int:
        if self.peek() == "(":
            self.take()
            value = self.flag_value()
            self.expect(")")
            return value
        tok = self.take()
        if tok.text.lower() in TCP_FLAGS:
            return TCP_FLAGS[tok.text.lower()]
        return _number(tok)

    def with_id(self, q: Quals, tok: Token) -> Node:
        if q.kind in ("host", "net"):
            if q.proto == "tcp":
                raise FilterError(f"'tcp' cannot qualify '{q.kind}'", tok.pos, tok.text)
            version, addr, mask = _host(tok) if q.kind == "host" else self.net(tok)
            if q.proto is not None and q.proto != ("ip" if version == 4 else "ip6"):
                raise FilterError(f"'{q.proto}' does not match this address", tok.pos, tok.text)
            src = Pred(OP_SRC_ADDR, self.vlans, lo=version, addr=addr, mask=mask)
            dst = Pred(OP_DST_ADDR, self.vlans, lo=version, addr=addr, mask=mask)
        else:
            if q.proto not in (None, "tcp"):
                raise FilterError(f"'{q.proto}' cannot qualify '{q.kind}'", tok.pos, tok.text)
            lo, hi = _port_range(tok) if q.kind == "portrange" else (_port(tok),) * 2
            src = Pred(OP_SRC_PORT, self.vlans, lo=lo, hi=hi)
            dst = Pred(OP_DST_PORT, self.vlans, lo=lo, hi=hi)
        return {"src": src, "dst": dst, "src or dst": Or(src, dst), "src and dst": And(src, dst)}[
            q.dir
        ]

    def net(self, tok: Token) -> tuple[int, bytes, bytes]:
        text = tok.text
        if self.peek() == "mask":
            self.take()
            mask_tok = self.take()
            try:
                net = ipaddress.IPv4Address(".".join((text.split(".") + ["0"] * 3)[:4]))
                mask = ipaddress.IPv4Address(mask_tok.text)
            except ValueError:
                raise FilterError("net ... mask needs IPv4 addresses", tok.pos, text) from None
            return 4, _masked(tok, net.packed, mask.packed), mask.packed.ljust(16, b"\0")
        if "/" not in text and ":" not in text:
            parts = text.split(".")  # libpcap: `net 198.18` is 198.18.0.0/16
            if not 1 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
                raise FilterError("not a network", tok.pos, text)
            text = ".".join(parts + ["0"] * (4 - len(parts))) + f"/{8 * len(parts)}"
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise FilterError("not a network", tok.pos, tok.text) from None
        mask = net.netmask.packed
        return (
            net.version,
            _masked(tok, ipaddress.ip_address(text.split("/")[0]).packed, mask),
            (mask.ljust(16, b"\0")),
        )


def _masked(tok: Token, addr: bytes, mask: bytes) -> bytes:
    if any(a & ~m & 0xFF for a, m in zip(addr, mask)):
        raise FilterError("non-network bits set in the network address", tok.pos, tok.text)
    return addr.ljust(16, b"\0")


def _looks_like_id(text: str) -> bool:
    return text[:1].isalnum() or text[:1] == ":"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host(tok: Token) -> tuple[int, bytes, bytes]:
    try:
        addr = ipaddress.ip_address(tok.text)
    except ValueError:
        raise FilterError(
            "not an IPv4/IPv6 address (names are not resolved)", tok.pos, tok.text
        ) from None
    full = b"\xff" * len(addr.packed)
    return addr.version, addr.packed.ljust(16, b"\0"), full.ljust(16, b"\0")


def _number(tok: Token) -> int:
    try:
        return int(tok.text, 0) if not re.fullmatch(r"0[0-7]+", tok.text) else int(tok.text, 8)
    except ValueError:
        raise FilterError("expected a number", tok.pos, tok.text) from None


def _port(tok: Token, text: Optional[str] = None) -> int:
    text = tok.text if text is None else text
    if text.isdigit():
        port = int(text)
    else:
        try:
            port = socket.getservbyname(text, "tcp")
        except OSError:
            raise FilterError("unknown port name", tok.pos, text) from None
    if port > 0xFFFF:
        raise FilterError("port number greater than 65535", tok.pos, text)
    return port


def _port_range(tok: Token) -> tuple[int, int]:
    lo, sep, hi = tok.text.partition("-")
    if not sep:
        raise FilterError("portrange needs LOW-HIGH", tok.pos, tok.text)
    a, b = _port(tok, lo), _port(tok, hi)
    return min(a, b), max(a, b)


def parse(text: str) -> Optional[Node]:
    """The AST of a filter expression; None for an empty filter (capture every TCP frame)."""
    return _Parser(text).parse()


# ---- compiler -------------------------------------------------------------------------------


class Insn(NamedTuple):
    pred: Pred
    jt: int
    jf: int

    def pack(self) -> bytes:
        p = self.pred
        return INSN.pack(p.op, p.vlans, self.jt, self.jf, p.lo, p.hi, p.addr, p.mask)


def _compile(node: Optional[Node]) -> list[Insn]:
    """Lay the AST out as a forward-only decision graph.

    Code is generated back to front: a node is emitted after (i.e. before, once reversed) the
    nodes it jumps to, so every jump goes forward and the entry is instruction 0.
    """
    if node is None:
        return []
    emitted: list[tuple[Pred, int, int]] = []  # targets are emit indices or ACCEPT/REJECT

    def gen(n: Node, t: int, f: int) -> int:
        if isinstance(n, Pred):
            emitted.append((n, t, f))
            return len(emitted) - 1
        if isinstance(n, Not):
            return gen(n.child, f, t)
        right = gen(n.right, t, f)
        if isinstance(n, And):
            return gen(n.left, right, f)
        return gen(n.left, t, right)

    gen(node, ACCEPT, REJECT)
    last = len(emitted) - 1

    def final(target: int) -> int:
        return target if target in (ACCEPT, REJECT) else last - target

    return [Insn(p, final(t), final(f)) for p, t, f in reversed(emitted)]


@dataclass(frozen=True)
class CompiledFilter:
    """What the kernel program evaluates, and a Python twin of that evaluation."""

    text: str
    insns: tuple[Insn, ...]

    def rodata_values(self) -> dict[str, bytes]:
        """The ``.rodata`` variables of ``bpf/xdptcp.bpf.c`` to set before loading."""
        table = b"".join(i.pack() for i in self.insns).ljust(FILTER_MAX * INSN.size, b"\0")
        return {"xdptcp_filter": table, "xdptcp_filter_len": struct.pack("=I", len(self.insns))}

    def matches(self, frame: bytes) -> bool:
        """Would the kernel program emit this frame? (Same parse, same decision graph.)"""
        verdict, parsed = parse_frame(frame)
        if verdict is not Verdict.TCP:
            return False
        return self.accepts(parsed)

    def accepts(self, f: Frame) -> bool:
        pc = 0
        for _ in range(FILTER_MAX):  # forward-only: FILTER_MAX steps always reach a verdict
            if pc >= len(self.insns):
                return not self.insns
            insn = self.insns[pc]
            pc = insn.jt if _test(insn.pred, f) else insn.jf
            if pc in (ACCEPT, REJECT):
                return pc == ACCEPT
        return False


def _test(p: Pred, f: Frame) -> bool:
    """The C function test_insn(), line for line."""
    if p.op == OP_VLAN:
        return f.vlans > p.vlans and (p.hi != 0 or f.vids[p.vlans] == p.lo)
    if f.vlans != p.vlans:
        return False
    if p.op == OP_L3:
        return f.ip_version == p.lo
    if p.op == OP_TCP:
        return f.tcp_ok
    if p.op in (OP_SRC_ADDR, OP_DST_ADDR):
        have = f.saddr if p.op == OP_SRC_ADDR else f.daddr
        have = have.ljust(16, b"\0")
        return f.ip_version == p.lo and all(h & m == a for h, m, a in zip(have, p.mask, p.addr))
    if p.op in (OP_SRC_PORT, OP_DST_PORT):
        port = f.sport if p.op == OP_SRC_PORT else f.dport
        return f.port_ok and p.lo <= port <= p.hi
    if p.op == OP_FLAGS:
        have, want = f.tcp_flags & p.lo, p.hi & 0xFF
        cmp = p.hi >> 8
        ops = (
            have == want,
            have != want,
            have < want,
            have <= want,
            have > want,
            have >= want,
        )
        return f.ip_version == 4 and ops[cmp if cmp < 5 else 5]
    return False


def compile_filter(text: str) -> CompiledFilter:
    """Compile a pcap-filter expression; raises FilterError for anything outside the subset."""
    insns = _compile(parse(text))
    if len(insns) > FILTER_MAX:
        raise FilterError(
            f"filter needs {len(insns)} instructions, the program holds {FILTER_MAX}",
            0,
            text,
        )
    return CompiledFilter(text, tuple(insns))
