"""The compiled filter as straight-line Python: what ``xdptcp -r`` runs on every frame.

``vm.translate`` turns each instruction into a line guarded by a program counter, which is
simple to trust but pays for every instruction on every frame. The compiler's programs only
jump forward, so here each path through the program is written out once, as nested ``if``s
with early returns, and what is known along a path is used while writing it:

* pointers are symbolic (``data + k``, ``data_end``), so a bounds check of the program becomes
  ``if k > wire_len: return 0`` and a load at ``data + k`` reads ``buf[at + k]``;
* a load and the byte swap after it become one big-endian read (``unpack_from``);
* a byte the capture may not hold is checked once per path against the captured length (a load
  past it ends the filter with 0, as in ``vm``), not on every load;
* a register reloaded with the value it already holds is not read again.

The function is ``f(buf, at, n, wire_len, length) -> r0`` on the ``n`` bytes of ``buf`` from
``at``, so a caller walking a mapped file filters records in place. When the program does
something this translation does not model, or its paths would be too many to write out,
``translate`` returns None and the caller keeps ``vm``'s function, which tests prove this one
equal to on every filter of the test corpus.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

from pybpf.asm.insn import ALUOp, Class, Instruction, JmpOp, Source

M32, M64 = (1 << 32) - 1, (1 << 64) - 1
_SIZES = {0x10: 1, 0x08: 2, 0x00: 4, 0x18: 8}
_READ = {1: "buf[{a}]", 2: "U16(buf, {a})[0]", 4: "U32(buf, {a})[0]", 8: "U64(buf, {a})[0]"}
_READ_LE = {2: "L16(buf, {a})[0]", 4: "L32(buf, {a})[0]", 8: "L64(buf, {a})[0]"}
_CMPS = {JmpOp.JEQ: "==", JmpOp.JNE: "!=", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JLT: "<",
         JmpOp.JLE: "<="}  # fmt: skip
_OPS = {ALUOp.ADD: "{d} + {s}", ALUOp.SUB: "{d} - {s}", ALUOp.MUL: "{d} * {s}",
        ALUOp.OR: "{d} | {s}", ALUOp.AND: "{d} & {s}", ALUOp.XOR: "{d} ^ {s}",
        ALUOp.MOV: "{s}", ALUOp.NEG: "-{d}",
        ALUOp.DIV: "({d} // {s} if {s} else 0)", ALUOp.MOD: "({d} % {s} if {s} else {d})",
        ALUOp.LSH: "{d} << ({s} % {bits})", ALUOp.RSH: "{d} >> ({s} % {bits})"}  # fmt: skip
_SIMPLE = re.compile(r"[A-Za-z_]\w*|\d+")
# beyond this many lines (or as many as the program has instructions, if more) the paths share
# too much: keep vm's function
MAX_LINES = 3000
# ``if``s nested deeper than this: vm's function (Python's parser stops at 100 indentation
# levels, and each level is a frame of ``path`` here)
MAX_DEPTH = 60
_SCOPE = {
    "U16": struct.Struct("!H").unpack_from,
    "U32": struct.Struct("!I").unpack_from,
    "U64": struct.Struct("!Q").unpack_from,
    "L16": struct.Struct("<H").unpack_from,
    "L32": struct.Struct("<I").unpack_from,
    "L64": struct.Struct("<Q").unpack_from,
}


class Unsupported(Exception):
    """An instruction or a use of a pointer this translation does not model."""


@dataclass(frozen=True)
class Ptr:
    """``data + var + k`` (``var``: a Python name holding a bounded offset, or None), or
    ``data_end + k`` when ``end``."""

    k: int = 0
    var: Optional[str] = None
    end: bool = False

    def offset(self) -> str:
        base = "wire_len" if self.end else self.var
        if base is None:
            return str(self.k)
        return f"{base} + {self.k}" if self.k else base


@dataclass
class State:
    """What is known at one point of one path."""

    regs: dict[int, object] = field(default_factory=dict)  # Ptr, or a tag for a scalar
    bound: dict[int, int] = field(default_factory=dict)  # scalars: an upper bound of the value
    const: dict[int, int] = field(default_factory=dict)  # scalars: the value, when known
    expr: dict[int, str] = field(default_factory=dict)  # scalars: a Python expression of it
    captured: int = 0  # bytes known to be in the capture (n >= captured)

    def copy(self) -> State:
        return State(
            dict(self.regs), dict(self.bound), dict(self.const), dict(self.expr), self.captured
        )

    def scalar(self, r: int, expr: str, bound: int = M64, tag: object = None) -> None:
        """``r`` now holds ``expr``: written where it is used (an expression refers only to
        the frame, the arguments, constants and names assigned once, so it can wait)."""
        self.regs[r] = tag
        self.bound[r] = bound
        self.const.pop(r, None)
        self.expr[r] = expr

    def constant(self, r: int, v: int) -> None:
        self.regs[r] = None
        self.bound[r] = v
        self.const[r] = v
        self.expr[r] = str(v)

    def small(self, r: int) -> bool:
        return self.bound.get(r, M64) <= M32


class _Writer:
    def __init__(self, insns: Sequence[Instruction]) -> None:
        self.insns = insns
        self.max_lines = max(MAX_LINES, len(insns))
        self.lines: list[str] = []
        self.temps = 0

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)
        if len(self.lines) > self.max_lines:
            raise Unsupported("too many paths")
        if depth > MAX_DEPTH:
            raise Unsupported("paths nested too deeply")

    def temp(self) -> str:
        self.temps += 1
        return f"t{self.temps}"

    def path(self, pc: int, st: State, depth: int) -> None:
        """Write the program from instruction ``pc`` on, until every way out returns."""
        insns = self.insns
        while True:
            if pc >= len(insns):
                raise Unsupported("falls off the end")
            ins = insns[pc]
            cls = ins.code & 0x07
            if cls in (Class.ALU, Class.ALU64):
                self.alu(ins, st, depth)
            elif cls == Class.LDX:
                pc = self.load(pc, st, depth)
            elif cls in (Class.JMP, Class.JMP32):
                op = ins.code & 0xF0
                if op == JmpOp.EXIT:
                    self.emit(depth, f"return {self.value(0, st)}")
                    return
                target = pc + 1 + ins.off
                if target <= pc or target > len(insns):
                    raise Unsupported("jumps backwards or out")
                if op == JmpOp.JA:
                    pc = target
                    continue
                pc = self.branch(pc, st, depth, target)
                continue
            else:
                raise Unsupported(f"instruction class {cls}")
            pc += 1

    # --- values ------------------------------------------------------------------------------

    def value(self, r: int, st: State) -> str:
        if isinstance(st.regs.get(r), Ptr):
            raise Unsupported("a pointer used as a number")
        if r not in st.expr:
            raise Unsupported(f"r{r} read before it is set")
        return st.expr[r]

    def settle(self, r: int, st: State, depth: int) -> str:
        """``r``'s value as a name or a number: an expression is computed here, once, into a
        name of its own (before a comparison or a second use)."""
        e = self.value(r, st)
        if not _SIMPLE.fullmatch(e):
            name = self.temp()
            self.emit(depth, f"{name} = {e}")
            st.expr[r] = e = name
        return e

    def operand(self, ins: Instruction, st: State, mask: int, depth: int = 0):
        """(text, upper bound, constant or None) of the source operand under ``mask``."""
        if ins.code & Source.X:
            r = ins.src
            if r in st.const:
                c = st.const[r] & mask
                return str(c), c, c
            v = self.settle(r, st, depth)
            if mask == M32 and not st.small(r):
                return f"({v} & {mask})", M32, None
            return v, st.bound.get(r, M64), None
        c = ins.imm & mask
        return str(c), c, c

    def alu(self, ins: Instruction, st: State, depth: int) -> None:
        cls, op, d = ins.code & 0x07, ins.code & 0xF0, ins.dst
        if cls == Class.ALU64 and self.pointer_alu(ins, st, depth):
            return
        mask, bits = (M32, 32) if cls == Class.ALU else (M64, 64)
        if op == ALUOp.END:
            if ins.imm not in (16, 32, 64):
                raise Unsupported(f"byte swap of {ins.imm} bits")
            v, nbytes = self.value(d, st), ins.imm // 8
            st.scalar(d, f"int.from_bytes(({v} & {(1 << ins.imm) - 1}).to_bytes({nbytes}, "
                         f"'little'), 'big')", (1 << ins.imm) - 1)  # fmt: skip
            return
        if op not in _OPS:
            raise Unsupported(f"ALU op {op:#x}")
        s, sb, sc = self.operand(ins, st, mask, depth)
        if op == ALUOp.MOV:
            if sc is not None:
                st.constant(d, sc)
            else:
                st.scalar(d, s, min(sb, mask))
            return
        dv = self.settle(d, st, depth) if op == ALUOp.MOD else self.value(d, st)
        db = st.bound.get(d, M64)
        if db > mask:
            dv, db = f"({dv} & {mask})", mask
        bound = _bound(op, db, sb, sc, bits)
        if op in (ALUOp.LSH, ALUOp.RSH) and sc is not None:  # a known count: no modulo
            text = f"{dv} {'<<' if op == ALUOp.LSH else '>>'} {sc % bits}"
        else:
            text = _OPS[op].format(d=dv, s=s, bits=bits)
        st.scalar(d, f"({text})" if bound <= mask else f"(({text}) & {mask})", min(bound, mask))
        if len(st.expr[d]) > 160:  # long enough: compute it now
            self.settle(d, st, depth)

    def pointer_alu(self, ins: Instruction, st: State, depth: int) -> bool:
        """64-bit moves and additions of pointers: tracked, nothing written (except a name
        for a variable offset). False when neither operand is a pointer."""
        op, d = ins.code & 0xF0, ins.dst
        src = st.regs.get(ins.src) if ins.code & Source.X else None
        dst = st.regs.get(d)
        if op == ALUOp.MOV and isinstance(src, Ptr):
            st.regs[d] = src
            st.bound.pop(d, None)
            st.const.pop(d, None)
            return True
        if op == ALUOp.MOV or not isinstance(dst, Ptr):
            if isinstance(src, Ptr):
                raise Unsupported("a pointer added to a number")
            return False
        if op != ALUOp.ADD or isinstance(src, Ptr):
            raise Unsupported("pointer arithmetic other than adding a number")
        if not ins.code & Source.X:
            if not 0 <= ins.imm < 1 << 16:
                raise Unsupported("a pointer moved by a large constant")
            st.regs[d] = replace(dst, k=dst.k + ins.imm)
            return True
        if dst.var is not None or dst.end or st.bound.get(ins.src, 1 << 64) > 0xFFFF:
            raise Unsupported("a pointer moved by an unbounded number")
        name = self.settle(ins.src, st, depth)
        if not name.isidentifier():
            raise Unsupported("a pointer moved by a constant in a register")
        st.regs[d] = Ptr(dst.k, name)
        return True

    def load(self, pc: int, st: State, depth: int) -> int:
        """A load, fused with the byte swap that follows it; returns the last pc used."""
        ins = self.insns[pc]
        size = _SIZES[ins.code & 0x18]
        p = st.regs.get(ins.src)
        if not isinstance(p, Ptr) or p.end:
            raise Unsupported("a load from something other than the frame")
        at = replace(p, k=p.k + ins.off)
        nxt = self.insns[pc + 1] if pc + 1 < len(self.insns) else None
        swap = (
            nxt is not None and nxt.code == Class.ALU | ALUOp.END | Source.X
            and nxt.dst == ins.dst and nxt.imm == 8 * size and size > 1
        )  # fmt: skip
        tag = ("load", at, size, swap)
        if st.regs.get(ins.dst) == tag:  # already holds it
            return pc + 1 if swap else pc
        if at.var is None:
            if at.k < 0:
                self.emit(depth, "return 0")  # before the frame: vm's NotCaptured
                raise _PathEnds
            if at.k + size > st.captured:
                self.emit(depth, f"if n < {at.k + size}: return 0")
                st.captured = at.k + size
        elif at.k < 0:
            raise Unsupported("a load before a variable offset")
        else:
            self.emit(depth, f"if {at.offset()} + {size} > n: return 0")
        addr = f"at + {at.offset()}"
        read = (_READ if swap or size == 1 else _READ_LE)[size].format(a=addr)
        st.scalar(ins.dst, read, (1 << (8 * size)) - 1, tag)  # read where it is used
        return pc + 1 if swap else pc

    # --- jumps -------------------------------------------------------------------------------

    def branch(self, pc: int, st: State, depth: int, target: int) -> int:
        """A conditional jump: the taken side written under an ``if``; returns where the
        path goes on (the target itself when the condition is known to hold)."""
        ins = self.insns[pc]
        op = ins.code & 0xF0
        a, b = st.regs.get(ins.dst), st.regs.get(ins.src) if ins.code & Source.X else None
        if isinstance(a, Ptr) or isinstance(b, Ptr):
            cond = self.pointer_cond(ins, a, b)
        else:
            mask = M32 if ins.code & 0x07 == Class.JMP32 else M64
            if ins.dst in st.const:
                left = str(st.const[ins.dst] & mask)
            else:
                left = self.settle(ins.dst, st, depth)
                if not st.small(ins.dst) and mask == M32:
                    left = f"({left} & {mask})"
            right, _, rc = self.operand(ins, st, mask, depth)
            if op == JmpOp.JSET:
                cond = f"{left} & {right}"
            elif op in _CMPS:
                cond = f"{left} {_CMPS[op]} {right}"
            else:
                raise Unsupported(f"jump op {op:#x}")
            if ins.dst in st.const and rc is not None:  # both known: no test at run time
                return target if eval(cond) else self.fell_through(pc, ins, st, op)  # noqa: S307
            beyond = rc is not None and op in (JmpOp.JGT, JmpOp.JGE)
            if beyond and st.bound.get(ins.dst, M64) < rc + (op == JmpOp.JGT):
                return self.fell_through(pc, ins, st, op)  # the value's bound says: never
        self.emit(depth, f"if {cond}:")
        start = len(self.lines)
        try:
            self.path(target, st.copy(), depth + 1)
        except _PathEnds:
            pass
        if len(self.lines) == start + 1:  # one return: on the line of its condition
            self.lines[start - 1] += " " + self.lines.pop().strip()
        return self.fell_through(pc, ins, st, op)

    def pointer_cond(self, ins: Instruction, a, b) -> str:
        op = ins.code & 0xF0
        if not (isinstance(a, Ptr) and isinstance(b, Ptr)) or op not in _CMPS:
            raise Unsupported("a pointer compared with a number")
        if ins.code & 0x07 != Class.JMP:
            raise Unsupported("a 32-bit pointer comparison")
        return f"{a.offset()} {_CMPS[op]} {b.offset()}"

    def fell_through(self, pc: int, ins: Instruction, st: State, op: int) -> int:
        """The instruction after a jump not taken; what ``if r > K`` teaches there: r <= K
        (which bounds a pointer move)."""
        if op == JmpOp.JGT and not ins.code & Source.X and ins.imm >= 0:
            wide = ins.code & 0x07 == Class.JMP or st.small(ins.dst)
            if wide and not isinstance(st.regs.get(ins.dst), Ptr):
                st.bound[ins.dst] = min(st.bound.get(ins.dst, M64), ins.imm)
        return pc + 1


def _bound(op: int, db: int, sb: int, sc: Optional[int], bits: int) -> int:
    """An upper bound of ``d op s`` before masking, from the operands' bounds (M64 + 1 and
    above: unknown, mask it)."""
    if op == ALUOp.ADD:
        return db + sb
    if op == ALUOp.MUL:
        return db * sb
    if op in (ALUOp.OR, ALUOp.XOR):
        return (1 << max(db, sb).bit_length()) - 1
    if op == ALUOp.AND:
        return min(db, sb)
    if op == ALUOp.DIV:
        return db
    if op == ALUOp.MOD:
        return db
    if op == ALUOp.RSH:
        return db
    if op == ALUOp.LSH and sc is not None:
        return db << (sc % bits)
    return 1 << 128  # SUB, NEG, a shift by a register: can wrap


class _PathEnds(Exception):
    """This path returned early (written already): stop writing it."""


def source(insns: Sequence[Instruction]) -> str:
    """The Python text of the program (raises Unsupported)."""
    w = _Writer(insns)
    st = State()
    st.regs[1], st.regs[2] = Ptr(), Ptr(end=True)
    for r in (0, 4, 5, 6, 7, 8, 9):
        st.constant(r, 0)
    st.scalar(3, "length")
    w.lines = ["def prog(buf, at, n, wire_len, length):"]
    try:
        w.path(0, st, 1)
    except _PathEnds:
        pass
    return "\n".join(_merge_returns(w.lines))


def _merge_returns(lines: list[str]) -> list[str]:
    """``if a: return 0`` followed by ``if b: return 0`` as ``if a or b: return 0``."""
    out: list[str] = []
    for line in lines:
        prev = out[-1] if out else ""
        if (
            line.endswith(": return 0") and prev.endswith(": return 0")
            and line.strip().startswith("if ") and prev.strip().startswith("if ")
            and len(line) - len(line.lstrip()) == len(prev) - len(prev.lstrip())
        ):  # fmt: skip
            out[-1] = f"{prev[: -len(': return 0')]} or {line.strip()[3:]}"
        else:
            out.append(line)
    return out


def translate(insns: Sequence[Instruction]) -> Optional[Callable[..., int]]:
    """``f(buf, at, n, wire_len, length) -> r0``, or None when the program is not of the kind
    written out here (then use ``vm``)."""
    try:
        text = source(insns)
    except Unsupported:
        return None
    scope = dict(_SCOPE)
    exec(compile(text, "<filter>", "exec"), scope)  # noqa: S102 (our own code)
    return scope["prog"]
