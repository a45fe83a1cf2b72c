"""What a filter means, as a small tree: byte loads, 32-bit arithmetic and comparisons.

The parser lowers every primitive into this form with libpcap's meaning (``port 80`` becomes
"EtherType 0x0800, protocol 6, fragment offset 0, then the halfword at the TCP header's start
is 80, or ..."), exactly as libpcap's gencode.c lowers it into classic BPF. The code generator
turns the tree into eBPF. Offsets are absolute: from the first byte of the Ethernet frame.

Two rules of classic BPF carry over, because libpcap's meaning depends on them:
* arithmetic is unsigned 32-bit; a shift by 32 or more gives 0; dividing by 0 rejects the packet;
* a load past the end of the packet rejects the packet, whatever ``not`` or ``or`` surround it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass(frozen=True)
class Num:
    value: int


@dataclass(frozen=True)
class Load:
    """``size`` bytes (1, 2 or 4, big-endian) at frame offset ``off``; valid only if ``checks``
    hold (libpcap tests them before any load of the comparison that uses this value)."""

    off: Arith
    size: int
    checks: Optional[Bool] = None


@dataclass(frozen=True)
class Len:
    """The frame's length on the wire."""


@dataclass(frozen=True)
class Bin:
    op: str  # + - * / % & | ^ << >>
    a: Arith
    b: Arith


@dataclass(frozen=True)
class Neg:
    a: Arith


Arith = Union[Num, Load, Len, Bin, Neg]


@dataclass(frozen=True)
class Cmp:
    """``a OP b`` unsigned, OP one of classic BPF's jumps: eq, gt, ge, set (a & b != 0)."""

    op: str
    a: Arith
    b: Arith


@dataclass(frozen=True, init=False)
class And:
    """Every part holds, tested in order (``and`` short-circuits). N-ary, so a chain of
    thousands of terms is one node, not thousands nested: ``And(And(a, b), c)`` is
    ``And(a, b, c)``, the same test in the same order."""

    parts: tuple[Bool, ...]

    def __init__(self, *parts: Bool) -> None:
        object.__setattr__(self, "parts", _flat(And, parts))


@dataclass(frozen=True, init=False)
class Or:
    """Some part holds, tested in order (``or`` short-circuits); n-ary as ``And``."""

    parts: tuple[Bool, ...]

    def __init__(self, *parts: Bool) -> None:
        object.__setattr__(self, "parts", _flat(Or, parts))


def _flat(kind: type, parts: tuple) -> tuple:
    out: list = []
    for p in parts:
        if isinstance(p, kind):
            out.extend(p.parts)
        else:
            out.append(p)
    return tuple(out)


@dataclass(frozen=True)
class Not:
    a: Bool


@dataclass(frozen=True)
class Const:
    value: bool


@dataclass(frozen=True)
class Never:
    """A primitive that is false on every TCP frame (``udp``, ``arp``, ``ip proto 17``): kept with
    its real code in ``code`` and its words in ``what``, so a filter that can only be false is
    refused by name instead of capturing nothing."""

    code: Bool
    what: str
    pos: int = field(default=0, compare=False)
    part: str = field(default="", compare=False)  # the word as typed
    # the ``vlan`` tags the offsets had moved past when it was made: its code reads the protocol
    # where it is only on a frame with that many tags, and may hold on another one's bytes
    tags: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Tag:
    """``vlan [ID]``'s test (``code``): a VLAN TPID where the EtherType is after ``depth - 1``
    tags. Kept apart so that a ``Never`` made after it is known to read a tagged frame's
    protocol fields only where this test holds too (``never_on_tcp``)."""

    code: Bool
    depth: int


@dataclass(frozen=True)
class ProtoChain:
    """libpcap's ``ip protochain N`` / ``ip6 protochain N`` after its EtherType test: from the IP
    header at frame offset ``at``, the protocol (IPv4) or next header (IPv6) is followed through
    the headers gen_protochain() walks, until ``proto`` (true) or a header it does not walk
    (false). libpcap loops without end; here at most ``CHAIN_DEPTH`` headers are walked, and a
    chain still going after them counts as not holding ``proto``."""

    proto: int
    ip6: bool
    at: int


# Headers a ``protochain`` walks past before it gives up (libpcap: as many as the frame holds)
CHAIN_DEPTH = 8

Bool = Union[Cmp, And, Or, Not, Const, Never, Tag, ProtoChain]


def has_chain(root: Bool) -> bool:
    """Does ``root`` use ``protochain``? libpcap then compiles the whole filter unoptimized
    (its optimizer takes no loops), which changes what some filters select."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, ProtoChain):
            return True
        stack.extend(_kids(node, (Never, Tag)))
    return False


def chain(terms: list[Bool], is_and: list[bool]) -> Bool:
    """``t0 op0 t1 op1 t2 ...`` with libpcap's meaning (``and`` and ``or`` of equal precedence,
    left to right): each run of one operator is one n-ary node, in one pass."""
    run, kind = [terms[0]], None
    for term, op in zip(terms[1:], is_and):
        if kind is not None and op != kind:
            run = [And(*run) if kind else Or(*run)]
        kind = op
        run.append(term)
    if kind is None:
        return run[0]
    return And(*run) if kind else Or(*run)


def plus(a: Arith, b: Arith) -> Arith:
    """``a + b`` with the constants folded (offsets like ``14 + 8`` become one number)."""
    if isinstance(a, Num) and isinstance(b, Num):
        return Num((a.value + b.value) & 0xFFFFFFFF)
    if isinstance(a, Num):
        a, b = b, a
    if isinstance(b, Num) and isinstance(a, Bin) and a.op == "+" and isinstance(a.b, Num):
        return Bin("+", a.a, Num((a.b.value + b.value) & 0xFFFFFFFF))
    return Bin("+", a, b)


def loads_checks(a: Arith, out: list) -> list:
    """The protocol checks that libpcap keeps for ``a``, in its order (an index's first).

    libpcap's gen_arth() keeps the checks of its left operand only: in ``ip[0] + tcp[0]`` the
    TCP load is made on every IPv4 frame, TCP or not. Reproduced, since it decides matches."""
    if isinstance(a, Load):
        loads_checks(a.off, out)
        if a.checks is not None:
            out.append(a.checks)
    elif isinstance(a, (Bin, Neg)):
        loads_checks(a.a, out)
    return out


def all_of(parts: list) -> Optional[Bool]:
    return None if not parts else parts[0] if len(parts) == 1 else And(*parts)


def any_of(parts: list) -> Optional[Bool]:
    return None if not parts else parts[0] if len(parts) == 1 else Or(*parts)


def relation(op: str, a: Arith, b: Arith, negate: bool = False) -> Bool:
    """libpcap's gen_relation: the checks of both sides, then the comparison."""
    cmp: Bool = Cmp(op, a, b)
    if negate:
        cmp = Not(cmp)
    checks = all_of(loads_checks(a, []) + loads_checks(b, []))
    return cmp if checks is None else And(checks, cmp)


def never_on_tcp(node: Bool) -> Optional[Never]:
    """The primitive that makes ``node`` false on every TCP frame, or None if it can match.

    A primitive made after ``vlan`` reads its fields 4 bytes on per tag: on a frame with fewer
    tags it reads other bytes (an untagged frame's IP header), which may hold on a TCP frame.
    Such a ``Never`` counts only where ``vlan`` tests that hold before it in an ``and`` (of its
    own or around it) say the frame has every tag it reads past: ``vlan and udp`` is never a
    TCP frame, ``not vlan and udp`` and ``vlan or udp`` may be, as libpcap runs them."""
    return _verdict(node)[0]


def _tags_held(node: Bool, held: dict) -> frozenset:
    """The tag depths that ``node`` holding proves (its ``Tag`` tests that must all hold)."""
    if isinstance(node, Tag):
        return frozenset((node.depth,)) | held.get(id(node.code), frozenset())
    if isinstance(node, And):
        out: frozenset = frozenset()
        for p in node.parts:
            out |= held.get(id(p), frozenset())
        return out
    if isinstance(node, Or):
        sets = [held.get(id(p), frozenset()) for p in node.parts]
        return frozenset.intersection(*sets) if sets else frozenset()
    return frozenset()


def _tag_context(root: Bool) -> dict:
    """For each ``Never`` (by id): the tag depths known to be there whenever its value decides
    anything, from the ``Tag`` tests before it in the ``and`` nodes on its way from ``root``
    (a node met on two ways keeps what both give)."""
    # bottom-up: what each node's holding proves
    held: dict[int, frozenset] = {}
    stack: list = [root]
    while stack:
        node = stack[-1]
        kids = _kids(node)
        todo = [k for k in kids if id(k) not in held]
        if todo:
            stack.extend(todo)
            continue
        held[id(node)] = _tags_held(node, held)
        stack.pop()
    # top-down: what holds around each node
    context: dict[int, frozenset] = {}
    work: list = [(root, frozenset())]
    while work:
        node, known = work.pop()
        seen = context.get(id(node))
        if seen is not None:
            if seen <= known:
                continue
            known = seen & known
        context[id(node)] = known
        if isinstance(node, And):
            for p in node.parts:
                work.append((p, known))
                known = known | held[id(p)]
        else:
            work.extend((k, known) for k in _kids(node))
    return context


def _kids(node: Bool, enter: tuple = (Tag,)) -> tuple:
    """The nodes ``node`` is made of: an ``and``'s or ``or``'s parts, a ``not``'s operand, and
    the ``code`` of the kinds in ``enter`` (``Tag``, ``Never``: the walks differ there)."""
    if isinstance(node, (And, Or)):
        return node.parts
    if isinstance(node, Not):
        return (node.a,)
    if isinstance(node, enter):
        return (node.code,)
    return ()


def _verdict(root: Bool) -> tuple:
    """(Never that forces false, Never that forces true) for ``root``: the first part's of an
    ``and`` that some part forces false, ... Worked out bottom-up with a stack of its own, so
    a tree of any depth (``a and b or c and d ...`` nests one level a term) is no recursion.
    A ``Never`` past ``vlan`` tags forces nothing where ``_tag_context`` does not find them all
    (worked out for the first such ``Never``: most filters have none)."""
    done: dict[int, tuple] = {}
    context: Optional[dict] = None
    stack = [root]
    while stack:
        node = stack[-1]
        if isinstance(node, Never):
            sure = True
            if node.tags:
                if context is None:
                    context = _tag_context(root)
                known = context.get(id(node), frozenset())
                sure = all(d in known for d in range(1, node.tags + 1))
            done[id(node)] = (node, None) if sure else (None, None)
        elif isinstance(node, (Not, And, Or)):
            kids = _kids(node, ())
            todo = [k for k in kids if id(k) not in done]
            if todo:
                stack.extend(reversed(todo))
                continue
            got = [done[id(k)] for k in kids]
            if isinstance(node, Not):
                done[id(node)] = got[0][::-1]
            elif isinstance(node, And):  # false if one part is; true if every part is
                false = next((f for f, _ in got if f is not None), None)
                true = got[-1][1] if all(t is not None for _, t in got) else None
                done[id(node)] = (false, true)
            else:
                false = got[0][0] if all(f is not None for f, _ in got) else None
                true = next((t for _, t in got if t is not None), None)
                done[id(node)] = (false, true)
        else:
            done[id(node)] = (None, None)
        stack.pop()
    return done[id(root)]
