"""From the filter's tree to eBPF instructions, with pybpf's assembler.

The generated function is the body of ``xdptcp_filter(void *data, void *data_end, __u32
wire_len)`` in ``bpf/xdptcp.bpf.c``, called by the XDP and the tc program alike. Its shape:

* r6 = data, r7 = data_end, r8 = wire_len (libpcap's ``len``), kept for the whole function;
* booleans become jumps (``and``/``or`` short-circuit, ``not`` swaps the targets);
* arithmetic is 32-bit (``w`` registers), as in classic BPF; values go to r0..r5, r8, r9;
* every packet load is bounds-checked against data_end first, and a load past the end jumps to
  ``reject``, as classic BPF ends the whole filter with 0 there. A variable offset is bounded
  (<= 0xffef) before it is added to the packet pointer, so the verifier can follow it on every
  kernel from 6.1 on, unless it is made of bytes and constants that the verifier bounds itself
  (``bounded``);
* a test with one way on to the code that follows and the other out to accept or reject jumps
  out, and the way on falls through. The verifier keeps each conditional jump's target waiting
  while it follows the fall-through, at most 8192 at a time, and in a chain of thousands of
  terms the jumps out would wait until its end: such a filter is laid out ``spread``, each test
  jumping on and falling through to a ``ja`` out (``leave``, ``generate``);
* a check is left out where the bytes are already proven there on every path that leads to the
  load (the proof is carried forward through the jumps; code only jumps forward). Nothing is
  assumed about the frame's length: the kernel calls the function on whole TCP headers only,
  but ``-r`` also on frames a capture cut short, and both must mean the same;
* results: ``accept`` returns 1, ``reject`` 0. A jump reaches at most 32767 instructions
  forward, so a long filter (thousands of terms) gets a copy of the two every
  ``EXITS_EVERY`` instructions, and each jump to them goes to the next copy;
* the boolean tree and the decision graph are walked with stacks of their own, so a filter of
  any length is no Python recursion.
"""

from __future__ import annotations

from itertools import count
from typing import Optional

from pybpf.asm.assembler import R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, Assembler, Reg
from pybpf.asm.insn import ALUOp, Class, Instruction, JmpOp, Source
from xdptcp.pcapfilter import ir
from xdptcp.pcapfilter.names import FilterError

VALUE_REGS = (R0, R1, R2, R3, R4, R5)
MAX_VAR_OFF = 0xFFEF  # bounded below MAX_PACKET_OFF (0xffff) minus the largest load (4)
_ALU = {"+": "add32", "-": "sub32", "*": "mul32", "&": "and32", "|": "or32", "^": "xor32"}
_SIZE = {1: "b", 2: "h", 4: "w"}
_NO_PROOF = ("accept", "reject")
_TOP = 0x7FFFFFFF  # what ``_upper`` takes for bounded
# Branches left waiting (see generate) past which a filter is laid out spread. The tc program
# calls the filter twice on one path, and the verifier keeps at most 8192 waiting in all: a
# filter of 2000 hosts laid out with jumps out (4005) loaded on every kernel, 3000 (6005) did
# not (tc, 6.18).
SPREAD_FROM = 4000
EXITS_EVERY = 4096  # assembler items between copies of accept/reject: far below 32767 insns


class CodeGen:
    def __init__(self, spread: bool = False) -> None:
        self.spread = spread  # tests that may end the filter laid out by leave()
        self.a = Assembler()
        self._n = count()
        self.known: Optional[int] = 0  # bytes proven present here; None: unreachable
        self.pending: dict[str, list[int]] = {}  # label -> bytes proven on jumps to it
        self.exits = {"accept": "accept", "reject": "reject"}  # the copies jumps go to now
        self.used: set[str] = set()  # of those, the ones a jump goes to
        self.exits_at = 0  # where in the code the last copies are

    def new(self, what: str) -> str:
        return f"{what}{next(self._n)}"

    def function(self, node: Optional[ir.Bool], graph=None) -> list[Instruction]:
        """The body for ``node``; from its optimized decision ``graph`` when there is one."""
        a = self.a
        a.mov(R6, R1)  # data
        a.mov(R7, R2)  # data_end
        a.mov32(R8, R3)  # wire_len
        if graph is not None:
            self.decisions(graph)
        elif node is not None:
            self.bool(node, "accept", "reject", "accept")
        a.label(self.exits["accept"])
        a.mov(R0, 1)
        a.exit()
        if "reject" in self.used:  # the verifier refuses unreachable code
            a.label(self.exits["reject"])
            a.mov(R0, 0)
            a.exit()
        return a.assemble()

    def to(self, target: str) -> str:
        """The label a jump to ``target`` names: for accept and reject, their next copy."""
        if target in self.exits:
            self.used.add(target)
            return self.exits[target]
        return target

    def exits_here(self, label: str) -> None:
        """Copies of accept and reject (those jumped to since the last copies), put before
        ``label`` when the last copies are ``EXITS_EVERY`` items back; code that would fall
        through into ``label`` jumps over them."""
        if len(self.a.items) - self.exits_at < EXITS_EVERY or not self.used:
            return
        a = self.a
        if self.known is not None:
            a.ja(label)
            self.jumped(label, always=True)
        for what, r0 in (("accept", 1), ("reject", 0)):
            if what in self.used:
                a.label(self.exits[what])
                a.mov(R0, r0)
                a.exit()
                self.exits[what] = self.new(what)
        self.used.clear()
        self.exits_at = len(a.items)

    # --- what is proven where -----------------------------------------------------------------

    def jumped(self, target: str, always: bool = False) -> None:
        """Record the proof carried to ``target`` by a jump just emitted."""
        if target not in _NO_PROOF and self.known is not None:
            self.pending.setdefault(target, []).append(self.known)
        if always:
            self.known = None

    def place(self, label: str) -> None:
        self.exits_here(label)
        here = self.pending.pop(label, [])
        if self.known is not None:
            here.append(self.known)
        self.known = min(here) if here else None
        self.a.label(label)

    def check(self, end: int) -> None:
        """Make sure bytes [0, end) are in the frame, or reject."""
        if self.known is not None and end <= self.known:
            return
        a = self.a
        a.mov(R9, R6)  # r9: only ever this scratch
        a.add(R9, end)
        self.out_if(a.jgt, a.jle, R9, R7, "reject")
        self.known = max(self.known or 0, end)

    def out_if(self, jump, inverse, left, right, out: str) -> None:
        """Out to ``out`` (accept or reject) where ``jump(left, right, label)`` jumps, else
        on: a jump out, or spread, ``leave`` by the ``inverse``."""
        if self.spread:
            self.leave(inverse, left, right, out)
        else:
            jump(left, right, self.to(out))
            self.jumped(out)

    def leave(self, stay, left, right, out: str) -> None:
        """Go on where ``stay(left, right, label)`` jumps, else out to ``out`` (accept or
        reject): the conditional jump goes on, and the way out falls through to a ``ja``. The
        verifier follows a fall-through first and keeps the jump's target waiting, at most 8192
        at a time (it refuses the program past that). Jumps out, one for each term of a chain
        of ``or`` and each bounds check, would all wait until the chain ends (3000 hosts, or
        1,400 ports, were more than the kernel took); jumps on wait one at a time."""
        on = self.new("on")
        stay(left, right, on)
        self.jumped(on)
        self.a.ja(self.to(out))
        self.jumped(out, always=True)
        self.place(on)

    # --- booleans ---------------------------------------------------------------------------

    def decisions(self, root) -> None:
        """Lay out an optimized decision graph: each decision once, in topological order."""
        from xdptcp.pcapfilter.optimize import topological

        if isinstance(root, bool):
            if not root:
                self.a.ja(self.to("reject"))
                self.jumped("reject", always=True)
            return
        order = topological(root)
        labels = {id(d): f"d{i}" for i, d in enumerate(order)}

        def target(node) -> str:
            if isinstance(node, bool):
                return "accept" if node else "reject"
            return labels[id(node)]

        for i, d in enumerate(order):
            if i:
                self.place(labels[id(d)])
            nxt = labels[id(order[i + 1])] if i + 1 < len(order) else "accept"
            self.compare(d.cmp, target(d.t), target(d.f), nxt)

    def bool(self, root: ir.Bool, t: str, f: str, nxt: str) -> None:
        """Jump to ``t`` when ``root`` holds, to ``f`` otherwise; ``nxt`` is the label that
        follows. What is left to write is a stack of (node, t, f, nxt) and labels to place."""
        a = self.a
        work: list = [(root, t, f, nxt)]
        while work:
            item = work.pop()
            if isinstance(item, str):
                self.place(item)
                continue
            n, t, f, nxt = item
            if isinstance(n, (ir.Never, ir.Tag)):
                work.append((n.code, t, f, nxt))
            elif isinstance(n, ir.Not):
                work.append((n.a, f, t, nxt))
            elif isinstance(n, ir.Const):
                target = t if n.value else f
                if target != nxt:
                    a.ja(self.to(target))
                    self.jumped(target, always=True)
            elif isinstance(n, ir.ProtoChain):
                self.protochain(n, t, f, nxt)
            elif isinstance(n, (ir.And, ir.Or)):
                steps: list = []
                for part in n.parts[:-1]:  # each part but the last decides or goes on
                    mid = self.new("m")
                    steps += [(part, mid, f, mid) if isinstance(n, ir.And) else (part, t, mid, mid)]
                    steps.append(mid)
                steps.append((n.parts[-1], t, f, nxt))
                work += reversed(steps)
            else:
                self.compare(n, t, f, nxt)

    def compare(self, n: ir.Cmp, t: str, f: str, nxt: str) -> None:
        a = self.a
        left = self.value(n.a, 0)
        right = n.b.value if isinstance(n.b, ir.Num) else self.value(n.b, 1)
        jump = {"eq": a.jeq32, "gt": a.jgt32, "ge": a.jge32, "set": a.jset32}[n.op]
        inverse = {"eq": a.jne32, "gt": a.jle32, "ge": a.jlt32}.get(n.op)
        if self.spread and nxt not in self.exits:  # one way goes on, the other out: leave()
            if t == nxt and f in self.exits:
                self.leave(jump, left, right, f)
                return
            if f == nxt and t in self.exits and inverse is not None:
                self.leave(inverse, left, right, t)
                return
        if t == nxt and inverse is not None:
            inverse(left, right, self.to(f))
            self.jumped(f)
            return
        jump(left, right, self.to(t))
        self.jumped(t)
        if f != nxt:
            a.ja(self.to(f))
            self.jumped(f, always=True)

    # --- arithmetic -------------------------------------------------------------------------

    def reg(self, depth: int) -> Reg:
        if depth >= len(VALUE_REGS):
            raise FilterError(
                f"arithmetic nested more than {len(VALUE_REGS)} deep", 0, "expression"
            )
        return VALUE_REGS[depth]

    def value(self, n: ir.Arith, depth: int) -> Reg:
        """Compute ``n`` into the register for ``depth`` (registers above it are free)."""
        a, r = self.a, self.reg(depth)
        if isinstance(n, ir.Num):
            a.mov32(r, n.value & 0xFFFFFFFF if n.value < 1 << 31 else n.value - (1 << 32))
        elif isinstance(n, ir.Len):
            a.mov32(r, R8)  # the frame's length on the wire
        elif isinstance(n, ir.Neg):
            self.value(n.a, depth)
            a.neg(r, 32)
        elif isinstance(n, ir.Load):
            self.load(n, depth)
        else:
            self.binary(n, depth)
        return r

    def binary(self, n: ir.Bin, depth: int) -> None:
        a, r = self.a, self.reg(depth)
        self.value(n.a, depth)
        if isinstance(n.b, ir.Num) and n.op not in ("/", "%"):
            other = n.b.value
        else:
            other = self.value(n.b, depth + 1)
        if n.op in _ALU:
            getattr(a, _ALU[n.op])(r, _imm(other))
        elif n.op in ("/", "%"):
            if not isinstance(n.b, ir.Num):
                a.jeq32(
                    other, 0, self.to("reject")
                )  # classic BPF: dividing by 0 rejects the packet
            getattr(a, "div32" if n.op == "/" else "mod32")(r, other)
        else:  # << >>: 32 or more gives 0 (bpf_filter.c), the eBPF shift would wrap
            op = "lsh32" if n.op == "<<" else "rsh32"
            if isinstance(n.b, ir.Num):
                getattr(a, op)(r, other)
                return
            big, done = self.new("big"), self.new("shifted")
            a.jgt32(other, 31, big)
            self.jumped(big)
            getattr(a, op)(r, other)
            a.ja(done)
            self.jumped(done, always=True)
            self.place(big)
            a.mov32(r, 0)
            self.place(done)

    def load(self, n: ir.Load, depth: int) -> None:
        a, r = self.a, self.reg(depth)
        size = n.size
        if isinstance(n.off, ir.Num) and n.off.value + size <= 0x7FFF:
            k = n.off.value
            self.check(k + size)
            a.ldx(_SIZE[size], r, R6, k)
        else:
            self.value(n.off, depth)
            self.load_at(r, size, self.reg(depth + 1), bounded(n.off))
        if size > 1:  # network byte order, as classic BPF loads
            a.emit(Instruction(Class.ALU | ALUOp.END | Source.X, r, 0, 0, 8 * size))

    def load_at(self, r: Reg, size: int, p: Reg, known: bool = False) -> None:
        """``r`` = the ``size`` bytes at the frame offset held in ``r`` (``p``: scratch);
        ``known``: the offset is at most ``MAX_VAR_OFF`` as the verifier sees it (``bounded``)."""
        a = self.a
        if not known:
            a.jgt(r, MAX_VAR_OFF, self.to("reject"))
        a.mov(p, R6)
        a.add(p, r)  # packet pointer + bounded offset
        a.mov(r, p)
        a.add(r, size)
        self.out_if(a.jgt, a.jle, r, R7, "reject")
        a.ldx(_SIZE[size], r, p, 0)

    # --- protochain ---------------------------------------------------------------------------

    def protochain(self, n: ir.ProtoChain, t: str, f: str, nxt: str) -> None:
        """libpcap's protochain loop, unrolled: at most ``ir.CHAIN_DEPTH`` headers walked.
        r0 is the protocol in hand (libpcap's A), r1 the offset from the IP header of the header
        it names (X). IPv6 extension headers are (length + 1) * 8 bytes long and X moves past
        them; after AH, X is (length + 2) * 4 alone, not added to where AH started: libpcap's
        code does so, and what it selects follows from it."""
        a, nh, x = self.a, R0, R1
        if n.ip6:
            self.check(n.at + 7)
            a.ldx("b", nh, R6, n.at + 6)
            a.mov32(x, 40)
        else:
            self.check(n.at + 10)
            a.ldx("b", nh, R6, n.at + 9)
            a.ldx("b", x, R6, n.at)
            a.and32(x, 0xF)
            a.lsh32(x, 2)
        for walked in range(ir.CHAIN_DEPTH + 1):
            a.jeq32(nh, _imm(n.proto), self.to(t))
            self.jumped(t)
            if walked == ir.CHAIN_DEPTH:  # the protocol after the last header walked: tested
                break
            if n.proto != 59:  # no next header: the chain ends here
                a.jeq32(nh, 59, self.to(f))
                self.jumped(f)
            ext, step = self.new("ext"), self.new("step")
            if n.ip6:  # hop-by-hop, destination options, routing, fragment
                for kind in (0, 60, 43, 44):
                    a.jeq32(nh, kind, ext)
                    self.jumped(ext)
            a.jne32(nh, 51, self.to(f))  # AH, or the end of the chain
            self.jumped(f)
            self.next_header(x, n.at, 2, 4)
            a.mov32(x, R3)
            if n.ip6:
                a.ja(step)
                self.jumped(step, always=True)
                self.place(ext)
                self.next_header(x, n.at, 1, 8)
                a.add32(x, R3)
            self.place(step)
        if f != nxt:  # more than CHAIN_DEPTH headers before it: not found
            a.ja(self.to(f))
            self.jumped(f, always=True)

    def next_header(self, x: Reg, at: int, plus: int, unit: int) -> None:
        """r0 = the next header field of the header ``x`` bytes after the IP header (at frame
        offset ``at``), r3 = (its length byte + ``plus``) * ``unit``."""
        a = self.a
        a.mov32(R0, x)
        a.add32(R0, at)
        self.load_at(R0, 1, R2)
        a.mov32(R3, x)
        a.add32(R3, at + 1)
        self.load_at(R3, 1, R4)
        a.add32(R3, plus)
        a.mul32(R3, unit)


def bounded(n: ir.Arith) -> bool:
    """Is the offset ``n`` at most ``MAX_VAR_OFF`` whatever the frame holds, as the verifier
    works it out too (32-bit arithmetic on bytes and constants: ``tcp[(tcp[12] >> 4) * 4]``,
    the ports after an IPv4 header)? The check is then left out: the verifier knows its
    outcome, and removes the code it makes dead one instruction at a time, each time moving
    the rest of the program (a filter of 1,000 ports took it 0.32 s against 0.07)."""
    top = _upper(n)
    return top is not None and top <= MAX_VAR_OFF


def _upper(n: ir.Arith) -> Optional[int]:
    """The largest value of ``n``, where the verifier also bounds it, else None. A byte: 255;
    a wider load is byte-swapped, and swaps leave the value unknown to 6.1's verifier. Values
    stay below 2**31 on the way, where the verifier's bounds of a shift or a product hold."""
    if isinstance(n, ir.Num):
        return n.value if 0 <= n.value <= _TOP else None
    if isinstance(n, ir.Load):
        return 0xFF if n.size == 1 else None
    if not isinstance(n, ir.Bin):
        return None
    b = n.b.value if isinstance(n.b, ir.Num) else None
    if n.op == "&" and b is not None and 0 <= b <= _TOP:
        return b
    a = _upper(n.a)
    if a is None:
        return None
    if n.op in ("<<", ">>") and b is not None and 0 <= b < 32:
        top = a << b if n.op == "<<" else a >> b
    elif n.op in ("+", "*", "|"):
        other = _upper(n.b)
        if other is None or (n.op == "*" and max(a, other) > 0xFFFF):
            return None
        top = a + other if n.op == "+" else a * other if n.op == "*" else _ones(max(a, other))
    else:
        return None
    return top if top <= _TOP else None


def _ones(v: int) -> int:
    return (1 << v.bit_length()) - 1


def _imm(v):
    if not isinstance(v, Reg) and v >= 1 << 31:
        return v - (1 << 32)
    return v


def generate(
    node: Optional[ir.Bool], graph=None, spread: Optional[bool] = None
) -> list[Instruction]:
    """The body of ``xdptcp_filter()`` for a parsed filter (None: accept everything), laid out
    from its optimized decision graph (``optimize``) when given. Tests that may end the filter
    jump out, the usual frame's way through falling through each; a filter that leaves the
    verifier more than ``SPREAD_FROM`` branches waiting that way (some 2,000 `host` terms) is
    laid out again, ``spread``: each such test jumps on and falls through to a ``ja`` out.
    That takes a jump more a test on the way through (200 hosts: 24 ns a frame more, 0.06 a
    test), and lets the verifier take chains of 10,000 terms."""
    if spread is None:
        insns = CodeGen().function(node, graph)
        if branches_waiting(insns) <= SPREAD_FROM:
            return insns
        spread = True
    return CodeGen(spread).function(node, graph)


def branches_waiting(insns: tuple[Instruction, ...]) -> int:
    """How many branches the verifier keeps waiting at most: it follows the fall-through of
    each conditional jump first and keeps the jump's target for later, until the path ends
    (an exit, or a place it has seen, taken here as seen in the same state)."""
    seen: set[int] = set()
    waiting, most = [0], 0
    while waiting:
        pc = waiting.pop()
        while pc not in seen and pc < len(insns):
            seen.add(pc)
            code = insns[pc].code
            if code & 0x07 not in (Class.JMP, Class.JMP32) or code & 0xF0 == JmpOp.CALL:
                pc += 1
            elif code & 0xF0 == JmpOp.EXIT:
                break
            elif code & 0xF0 == JmpOp.JA:
                pc += 1 + insns[pc].off
            else:
                waiting.append(pc + 1 + insns[pc].off)
                most = max(most, len(waiting))
                pc += 1
    return most
