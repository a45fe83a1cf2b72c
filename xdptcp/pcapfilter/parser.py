"""pcap-filter(7) parsed as libpcap's grammar.y parses it, lowered as its gencode.c lowers it.

The grammar, in libpcap's words (``and`` and ``or`` have *equal* precedence, left to right)::

    expr  := term { (and | or) (term | id) }        # `host A or B`: B reuses A's qualifiers
    term  := (not | !) term | rterm
    rterm := '(' expr ')' | arth relop arth | head id | pname | other
    arth  := arth op arth | - arth | pname '[' arth [':' size] ']' | len | NUM | '(' arth ')'

Arithmetic precedence (low to high): ``|``, ``&``, ``<< >>``, ``+ -``, ``* / %``, unary minus;
``^`` has no precedence in grammar.y, so bison shifts: ``a + b ^ c + d`` is ``a + (b ^ (c + d))``.

Lowering happens while parsing because libpcap's ``vlan`` changes the offsets of *everything
parsed after it* (the EtherType moves 4 bytes on, whatever the parentheses say).

Length and depth: a chain of ``and``/``or`` of any length is read in a loop into one n-ary node,
and ``not not ...`` in a loop too. Parentheses, ``[...]``, unary minus and arithmetic operators
nest, read by recursion: up to ``MAX_NESTING`` levels (libpcap's parser stack stops near 10000
tokens), with the room for it in Python's recursion limit (``room_for_nesting``); beyond that,
"filter nested too deeply", one line, never a crash.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Optional

from xdptcp.pcapfilter import ir
from xdptcp.pcapfilter.ir import Arith, Bin, Bool, Cmp, Len, Load, Never, Not, Num
from xdptcp.pcapfilter.lexer import EID, END, ESCID, HID, HID6, ID, NUM, OP, Token, number
from xdptcp.pcapfilter.names import (
    ARITH_PREC,
    ETH_ARP,
    ETH_IP,
    ETH_IP6,
    ETH_RARP,
    KEYWORDS,
    LINK_WORDS,
    NOT_TCP,
    PNAMES,
    RELOPS,
    TRANSPORT,
    UNDEF,
    FilterError,
    Quals,
    SemanticError,
)
from xdptcp.pcapfilter.primitives import Primitives

# Levels of parentheses, [...], unary minus and arithmetic operators. CPython 3.12 bounds the
# C recursion (hashing and comparing a deep tree) at a fixed depth that the recursion limit does
# not raise: there 400 levels fit, 500 do not.
MAX_NESTING = 400 if sys.version_info[:2] == (3, 12) else 1000
# Python frames a level takes at most in any stage (the parser's rterm-expr-term, the code
# generator's value-binary); a level of arithmetic costs the C stack about 0.5 KiB when it is
# hashed, so 1000 levels stay far from a crash (measured: 20000 crash in an 8 MiB thread).
FRAMES_PER_LEVEL = 8
_AND, _OR = ("and", "&&"), ("or", "||")


@contextmanager
def room_for_nesting() -> Iterator[None]:
    """Python's recursion limit raised, while compiling, so far that ``MAX_NESTING`` levels fit
    above the frames already in use; put back after."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    old = sys.getrecursionlimit()
    need = depth + 100 + MAX_NESTING * FRAMES_PER_LEVEL
    if need > old:
        sys.setrecursionlimit(need)
    try:
        yield
    finally:
        if need > old:
            sys.setrecursionlimit(old)


class Parser(Primitives):
    def __init__(self, tokens: list[Token], text: str) -> None:
        self.toks = tokens
        self.text = text
        self.i = 0
        self.linktype = 12  # offset of the EtherType; each `vlan` adds 4
        self.linkpl = 14  # offset of the network header
        self.last: Optional[Quals] = None  # qualifiers an `and`/`or` id reuses
        self.nesting = 0  # levels of recursion now open (MAX_NESTING at most)
        self.arith_depth = 0  # depth of the tree of the arithmetic value read last
        self._closing: Optional[dict[int, int]] = None  # index of '(' -> of its ')'
        # None for Ethernet; else the capture's link type, in libpcap's words: -r reads other
        # link types as Ethernet frames (xdptcp.linktypes), and libpcap refuses what needs a
        # MAC header on them
        self.link: Optional[str] = None

    # --- tokens ----------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def word(self, ahead: int = 0) -> str:
        """The keyword at the cursor (or ``ahead`` of it), '' when it is not one."""
        t = self.toks[min(self.i + ahead, len(self.toks) - 1)]
        if t.kind == OP:
            return t.text
        return t.text if t.kind == ID and t.text in KEYWORDS else ""

    def take(self) -> Token:
        t = self.tok
        if t.kind == END:
            raise FilterError("syntax error: unexpected end of filter", t.pos, t.text)
        self.i += 1
        return t

    def expect(self, text: str) -> Token:
        if self.word() != text:
            raise self.syntax()
        return self.take()

    def syntax(self, tok: Optional[Token] = None) -> FilterError:
        tok = tok or self.tok
        if tok.kind == END:
            return FilterError("syntax error: unexpected end of filter", tok.pos, tok.text)
        return FilterError("syntax error", tok.pos, tok.text)

    def error(self, message: str, tok: Optional[Token] = None) -> FilterError:
        tok = tok or self.tok
        return SemanticError(message, tok.pos, tok.text)

    def enter(self, tok: Token) -> None:
        """One level deeper (a '(' or '[', a unary minus); leave with ``self.nesting -= 1``."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.too_deep(tok)

    def too_deep(self, tok: Token) -> FilterError:
        return self.error(f"filter nested too deeply (more than {MAX_NESTING} levels)", tok)

    def closing(self, i: int) -> Optional[int]:
        """The index of the ')' that closes the '(' at token ``i`` (None if none does)."""
        if self._closing is None:
            self._closing, opened = {}, []
            for j, t in enumerate(self.toks):
                if t.kind == OP and t.text == "(":
                    opened.append(j)
                elif t.kind == OP and t.text == ")" and opened:
                    self._closing[opened.pop()] = j
        return self._closing.get(i)

    # --- boolean structure -----------------------------------------------------------------

    def parse(self) -> Optional[Bool]:
        if self.tok.kind == END:
            return None
        node = self.expr()
        if self.tok.kind != END:
            raise self.syntax()
        return node

    def expr(self) -> Bool:
        terms, ops = [self.term()], []
        while self.word() in (*_AND, *_OR):
            ops.append(self.take().text in _AND)
            terms.append(self.term_or_id())
        return ir.chain(terms, ops)

    def term_or_id(self) -> Bool:
        """After and/or: a term, or a bare id that reuses the last qualifiers (none after a
        term that has none, such as ``tcp`` or ``vlan 10``: then libpcap refuses the id)."""
        if self._id_ahead():
            last, state = self.last or Quals(None, None, UNDEF), self._state()
            try:  # `or (1 = 1)` is a term: bison decides by the token after the number
                return self.term()
            except SemanticError:
                raise
            except FilterError:
                self._restore(state)
            return self.id_with(last)
        return self.term()

    def _state(self) -> tuple:
        return self.i, self.linktype, self.linkpl, self.last, self.nesting

    def _restore(self, state: tuple) -> None:
        self.i, self.linktype, self.linkpl, self.last, self.nesting = state

    def _id_ahead(self) -> bool:
        j = self.i
        while self.toks[j].text in ("!", "(", "not") and self.toks[j].kind in (OP, ID):
            j += 1
        t = self.toks[j]
        if t.kind in (NUM, HID, HID6, EID, ESCID):
            return True
        return t.kind == ID and t.text not in KEYWORDS

    def term(self) -> Bool:
        negate = False  # `not not x` is x: thousands of `not` are one or none
        while self.word() in ("not", "!"):
            self.take()
            negate = not negate
        node = self.rterm()
        return Not(node) if negate else node

    def rterm(self) -> Bool:
        start = self.i
        rel = self.try_relation()
        if rel is not None:
            return rel
        self.i = start
        if self.word() == "(":
            self.enter(self.take())
            try:
                node = self.expr()
                self.expect(")")
            finally:
                self.nesting -= 1
            return node
        return self.primitive()

    # --- arithmetic ------------------------------------------------------------------------

    def try_relation(self) -> Optional[Bool]:
        """``arth relop arth`` if the tokens at the cursor are one, else None (cursor moved)."""
        w, t = self.word(), self.tok
        starts = t.kind == NUM or w in ("-", "(", "len") or (w in PNAMES and self.word(1) == "[")
        if not starts or (w == "(" and not self._arith_after_parens()):
            return None
        try:
            left = self.arith()
        except SemanticError:
            raise
        except FilterError:
            return None
        op = self.tok
        if op.kind != OP or op.text not in RELOPS:
            return None
        self.take()
        right = self.arith()
        name, negate = RELOPS[op.text]
        self.last = None
        return self._never_if_foreign(ir.relation(name, left, right, negate), left, right, t)

    def _arith_after_parens(self) -> bool:
        """Can the '(' at the cursor open arithmetic? Only if an operator follows its ')':
        ``(tcp[0] + 1) * 2 > 3``, ``(tcp[0]) = 1``. ``((((tcp))))`` is then not read once as
        arithmetic at every level."""
        close = self.closing(self.i)
        if close is None:
            return True  # let the arithmetic fail where it fails
        after = self.toks[close + 1]
        return after.kind == OP and (
            after.text in RELOPS or after.text in ARITH_PREC or after.text == "^"
        )

    def _never_if_foreign(self, node: Bool, a: Arith, b: Arith, tok: Token) -> Bool:
        foreign = self._foreign_load(a) or self._foreign_load(b)
        if foreign:
            return Never(node, f"'{foreign}[...]': {NOT_TCP}", tok.pos, tok.text, self.tags())
        return node

    def _foreign_load(self, a: Arith) -> str:
        if isinstance(a, Load):
            return getattr(a, "_proto", "") or self._foreign_load(a.off)
        if isinstance(a, Bin):
            return self._foreign_load(a.a) or self._foreign_load(a.b)
        if isinstance(a, ir.Neg):
            return self._foreign_load(a.a)
        return ""

    def arith(self, min_prec: int = 0) -> Arith:
        """Sets ``arith_depth`` to the depth of the tree it returns (``a + b + c ...`` is as
        deep as it is long; deeper than ``MAX_NESTING``, refused)."""
        left = self.operand()
        depth = self.arith_depth
        while True:
            op = self.tok.text if self.tok.kind == OP else ""
            prec = ARITH_PREC.get(op)
            if prec is None or prec < min_prec:
                self.arith_depth = depth
                return left
            tok = self.take()
            right = self.arith(prec + 1)
            left = self.binary(op, left, right, tok)
            depth = self.deeper(max(depth, self.arith_depth), tok)

    def deeper(self, depth: int, tok: Token) -> int:
        """The depth of a node one above a subtree ``depth`` deep, if allowed."""
        if depth + 1 > MAX_NESTING:
            raise self.too_deep(tok)
        return depth + 1

    def operand(self) -> Arith:
        """A unary operand; a following ``^`` takes everything to its right (bison shifts)."""
        node = self.unary()
        if self.word() == "^":
            tok = self.take()
            depth = self.arith_depth
            self.enter(tok)
            try:
                node = self.binary("^", node, self.arith(), tok)
            finally:
                self.nesting -= 1
            self.arith_depth = self.deeper(max(depth, self.arith_depth), tok)
        return node

    def unary(self) -> Arith:
        t, w = self.tok, self.word()
        if w in ("-", "("):
            self.enter(self.take())
            try:
                if w == "-":
                    node: Arith = ir.Neg(self.operand())
                    self.arith_depth = self.deeper(self.arith_depth, t)
                else:
                    node = self.arith()
                    self.expect(")")
            finally:
                self.nesting -= 1
            return node
        self.arith_depth = 1
        if t.kind == NUM:
            self.take()
            return Num(self._num(t))
        if w == "len":
            self.take()
            return Len()
        if w in PNAMES and self.word(1) == "[":
            return self.load()
        raise self.syntax()

    def binary(self, op: str, a: Arith, b: Arith, tok: Token) -> Arith:
        if isinstance(b, Num):
            if op == "/" and b.value == 0:
                raise self.error("division by zero", tok)
            if op == "%" and b.value == 0:
                raise self.error("modulus by zero", tok)
            if op in ("<<", ">>") and b.value > 31:
                raise self.error("shift by more than 31 bits", tok)
        return Bin(op, a, b)

    def load(self) -> Arith:
        ptok = self.take()
        proto = "link" if ptok.text in LINK_WORDS else ptok.text
        if proto == "link" and self.link:
            raise self.error(
                f"{ptok.text}[...] reads the link-layer header, which xdptcp does not keep for a "
                f"{self.link} capture",
                ptok,
            )
        self.enter(self.expect("["))
        try:
            index = self.arith()
        finally:
            self.nesting -= 1
        depth = self.arith_depth + 3  # the index, within an offset, within a load
        size = 1
        if self.word() == ":":
            self.take()
            st = self.tok
            if st.kind != NUM:
                raise self.syntax()
            self.take()
            size = self._num(st)
            if size not in (1, 2, 4):
                raise self.error("data size must be 1, 2, or 4", st)
        self.expect("]")
        if depth > MAX_NESTING:
            raise self.too_deep(ptok)
        self.arith_depth = depth
        return self._load_of(proto, index, size, ptok)

    def _load_of(self, proto: str, index: Arith, size: int, ptok: Token) -> Arith:
        if proto == "link":
            return Load(index, size)
        if proto in ("ip", "ip6", "arp", "rarp"):
            et = {"ip": ETH_IP, "ip6": ETH_IP6, "arp": ETH_ARP, "rarp": ETH_RARP}[proto]
            node = Load(ir.plus(Num(self.linkpl), index), size, self.ethertype(et))
        elif proto == "icmp6":
            checks = ir.And(self.ethertype(ETH_IP6), self.cmp_at(self.linkpl + 6, 1, 58))
            node = Load(ir.plus(Num(self.linkpl + 40), index), size, checks)
        else:
            ihl = self.ipv4_header_len()
            checks = ir.And(self.ethertype(ETH_IP), ir.And(self.proto_abbrev(proto), self.ipfrag()))
            off = ir.plus(ir.plus(ihl, index), Num(self.linkpl))
            node = Load(off, size, checks)
        if proto != "ip" and proto != "ip6" and proto != "tcp":
            object.__setattr__(node, "_proto", proto)
        return node

    def _num(self, t: Token) -> int:
        try:
            v = number(t.text)
        except ValueError:
            raise self.error(f"invalid number {t.text!r}", t) from None
        if v > 0xFFFFFFFF:
            raise self.error(f"number {t.text} does not fit in 32 bits", t)
        return v

    # --- the pieces gencode.c builds everything from ----------------------------------------

    def ethertype(self, value: int) -> Bool:
        return Cmp("eq", Load(Num(self.linktype), 2), Num(value))

    def cmp_at(self, off: int, size: int, value: int, mask: Optional[int] = None) -> Bool:
        load: Arith = Load(Num(off), size)
        if mask is not None:
            load = Bin("&", load, Num(mask))
        return Cmp("eq", load, Num(value))

    def ipv4_header_len(self) -> Arith:
        """``ldxb 4*([linkpl]&0xf)``: the IPv4 header length."""
        return Bin("<<", Bin("&", Load(Num(self.linkpl), 1), Num(0xF)), Num(2))

    def ipfrag(self) -> Bool:
        """Fragment offset 0: only the first fragment carries the transport header."""
        return Not(Cmp("set", Load(Num(self.linkpl + 6), 2), Num(0x1FFF)))

    def ip_proto(self, proto: int, version: str) -> Bool:
        """libpcap's gen_proto(): ``ip proto N``, ``ip6 proto N`` or both."""
        v4 = ir.And(self.ethertype(ETH_IP), self.cmp_at(self.linkpl + 9, 1, proto))
        nh = self.linkpl + 6
        frag = ir.And(self.cmp_at(nh, 1, 44), self.cmp_at(self.linkpl + 40, 1, proto))
        v6 = ir.And(self.ethertype(ETH_IP6), ir.Or(self.cmp_at(nh, 1, proto), frag))
        return {"ip": v4, "ip6": v6, "any": ir.Or(v4, v6)}[version]

    def proto_abbrev(self, name: str) -> Bool:
        number_, version = TRANSPORT[name]
        return self.ip_proto(number_, version)

    def never(self, code: Bool, what: str, tok: Token) -> Bool:
        return Never(code, f"{what}: {NOT_TCP}", tok.pos, tok.text, self.tags())

    def tags(self) -> int:
        """The ``vlan`` tags the offsets have moved past."""
        return (self.linktype - 12) // 4


def parse(text: str, link: Optional[str] = None) -> Optional[Bool]:
    """The meaning of ``text`` as a tree (``pybpf``-free); None for an empty filter. ``link``
    names a capture's link type other than Ethernet (libpcap refuses MAC-header primitives)."""
    from xdptcp.pcapfilter.lexer import LexError, tokenize

    try:
        tokens = tokenize(text)
    except LexError as e:
        raise FilterError(f"syntax error: illegal character {e.text!r}", e.pos, e.text) from None
    parser = Parser(tokens, text)
    parser.link = link
    with room_for_nesting():
        return parser.parse()
