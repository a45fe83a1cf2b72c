"""Inlining: a replaced function's body put in place of a call to it, where the caller allows.

A call to a subprogram costs its call and its return: on x86-64 with the return-thunk
mitigations some 9 ns, a tenth of a capture program's time a frame (bench/README). For a body
spliced in at load time (``pybpf.object.splice``) the linker does what a compiler would and
puts the body where the call was, when four things hold:

* the caller keeps nothing in r6-r9 across the call. A callee's r6-r9 are its own (the JIT
  saves the caller's), so a body may write them; in place, it would write the caller's. Found by
  liveness over the caller's instructions: no path from the call reads r6-r9 before writing
  them. C code makes them free by making the call in an ``asm`` statement that says it
  changes r6-r9 (tests' ``bpf/tests/inline.bpf.c``); clang then keeps what it needs on the
  stack. A plain C call lets clang keep values in r6-r9, and stays a call;
* the body reads nothing but its arguments (r1-r5) before writing, and uses no stack (r10):
  its slots would be the caller's;
* every jump still reaches: a jump over the call grows by the body's length, and each of the
  body's exits becomes a jump to its end (16-bit offsets);
* the body is short: at most ``INLINE_MAX`` instructions. A longer one runs for microseconds
  on the inputs it goes through (a few tenths of a nanosecond an instruction), beside which
  the call's 9 ns are lost; and in place of its call, a packet filter of 2,000 terms (32,062
  instructions), called from a loop, made the verifier go through 2.4 times the instructions
  (95,881 against 40,575 on 6.18).

Each ``exit`` of the body becomes ``ja`` to the instruction after it, r0 holding the result as
a return leaves it. Where any of the four fails the call stays, as compiled. The verifier
follows an inlined body as it followed the call (a static subprogram is checked in its caller's
context either way); the kernel's program tag changes, since the instructions do.

Everything here is pure computation on instruction lists.
"""

from __future__ import annotations

from pybpf.asm import insn as isa
from pybpf.asm.insn import ALUOp, Class, Instruction, JmpOp, Mode, PseudoSrc, Source

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional, Sequence

R6_R9 = 0b1111 << 6
ARGS = 0b11111 << 1  # r1-r5
_CALL_DEFS = 0b111111  # r0-r5: a call's result and the argument registers it clobbers
_ALL = (1 << 11) - 1
_FETCH, _CMPXCHG = 0x01, 0xF0 | 0x01
MAX_OFF = 32767  # a jump's 16-bit offset
INLINE_MAX = 4096  # the longest body put in place of a call


def uses_defs(ins: Instruction) -> tuple[int, int]:
    """(registers read, registers written) by one instruction, as bit masks of r0-r10."""
    cls, op = ins.cls, ins.code & 0xF0
    dst, src = 1 << ins.dst, 1 << ins.src
    if cls in (Class.ALU, Class.ALU64):
        use = 0 if op == ALUOp.MOV else dst
        if ins.code & Source.X and op not in (ALUOp.NEG, ALUOp.END):  # (END's bit: byte order)
            use |= src
        return use, dst
    if cls == Class.LDX:
        return src, dst
    if cls == Class.ST:
        return dst, 0
    if cls == Class.STX:
        if ins.code & 0xE0 == Mode.ATOMIC and ins.imm & _FETCH:
            if ins.imm == _CMPXCHG:  # compares with r0, leaves the old value in r0
                return dst | src | 1, 1
            return dst | src, src
        return dst | src, 0
    if cls == Class.LD:
        if ins.is_ld_imm64:
            return 0, dst
        # legacy packet loads: the skb in r6, the value in r0, r1-r5 clobbered
        return (1 << 6) | (src if ins.code & 0xE0 == Mode.IND else 0), _CALL_DEFS
    if cls in (Class.JMP, Class.JMP32):
        if op == JmpOp.CALL:
            return ARGS, _CALL_DEFS
        if op == JmpOp.EXIT:
            return 1, 0
        if op == JmpOp.JA or op == 0xE0:  # (0xe0: may_goto, reads no register)
            return 0, 0
        return dst | (src if ins.code & Source.X else 0), 0
    return _ALL, 0  # unknown: taken to read everything


# (plain ints: an enum's member costs a lookup each time, and these run once an instruction)
_JMP_CLASSES = (int(Class.JMP), int(Class.JMP32))
_CALL_EXIT = (int(JmpOp.CALL), int(JmpOp.EXIT))
_GOTOL = int(Class.JMP32 | JmpOp.JA)  # a ja with a 32-bit offset, in imm
_CALL, _LD_IMM64, _FUNC = int(isa.CALL), int(isa.LD_IMM64), int(PseudoSrc.FUNC)


def _offset_in(code: int) -> Optional[str]:
    """Which field of an instruction with this opcode holds a relative target: "off" for a
    jump, "imm" for gotol; None for anything else (calls and function references: see target)."""
    if code & 0x07 not in _JMP_CLASSES or code & 0xF0 in _CALL_EXIT:
        return None
    return "imm" if code == _GOTOL else "off"


def target(insns: Sequence[Instruction], i: int) -> Optional[int]:
    """The instruction a jump, a bpf-to-bpf call or a function reference at ``i`` leads to."""
    ins = insns[i]
    field = _offset_in(ins.code)
    if field is not None:
        return i + 1 + (ins.imm if field == "imm" else ins.off)
    if (ins.code == _CALL and ins.src == isa.PSEUDO_CALL) or (
        ins.code == _LD_IMM64 and ins.src == _FUNC
    ):
        return i + 1 + ins.imm
    return None


def _successors(insns: Sequence[Instruction], i: int) -> tuple[int, ...]:
    ins = insns[i]
    if ins.is_ld_imm64:
        return (i + 2,)
    if ins.code == isa.EXIT:
        return ()
    if ins.is_jump:
        t = target(insns, i)
        return (t,) if ins.code & 0xF0 == JmpOp.JA else (i + 1, t)
    return (i + 1,)


def read_before_written(
    insns: Sequence[Instruction], lo: int, hi: int, start: int, regs: int
) -> bool:
    """Whether some path of the function at ``insns[lo:hi]`` from instruction ``start`` reads
    one of ``regs`` (a mask of r0-r10) before writing it. Each path is followed only until it
    has written them all, a few instructions as a rule, so this costs next to nothing beside a
    pass over the whole function. A path that leaves the function (which a function's own
    jumps never do) is taken to read them."""
    seen: set[tuple[int, int]] = set()
    todo = [(start, regs)]
    while todo:
        pc, pending = todo.pop()
        if (pc, pending) in seen:
            continue
        seen.add((pc, pending))
        if not lo <= pc < hi:
            return True
        use, defs = uses_defs(insns[pc])
        if use & pending:
            return True
        pending &= ~defs
        if pending:
            todo.extend((s, pending) for s in _successors(insns, pc))
    return False


def body_reads_only_arguments(body: Sequence[Instruction]) -> bool:
    """The body reads no register but r1-r5 before writing it, and never names r10."""
    if any(ins.dst == 10 or ins.src == 10 for ins in body if not ins.is_ld_imm64):
        return False
    return not read_before_written(body, 0, len(body), 0, _ALL & ~ARGS)


def crossing_span(insns: Sequence[Instruction], lo: int, hi: int, at: int) -> int:
    """The longest jump of the function at ``insns[lo:hi]`` that the body in place of the call
    at ``at`` would lengthen: one on either side of it (0: none)."""
    most = 0
    for i in range(lo, hi):
        ins = insns[i]
        if _offset_in(ins.code) == "off" and (i > at) != (i + 1 + ins.off > at):
            most = max(most, abs(ins.off))  # (gotol's offset is 32 bits)
    return most


def in_place(body: Sequence[Instruction]) -> list[Instruction]:
    """The body as it stands in its caller: each exit a jump to the instruction after it."""
    n = len(body)
    ja = isa.Class.JMP | JmpOp.JA
    return [Instruction(ja, off=n - k - 1) if ins.code == isa.EXIT else ins
            for k, ins in enumerate(body)]  # fmt: skip


def expand(insns: Sequence[Instruction], at: int, body: Sequence[Instruction]) -> list[Instruction]:
    """``insns`` with the call at ``at`` replaced by ``body`` (``in_place``), every jump, call
    and function reference of the rest renumbered. Index ``i`` after ``at`` becomes
    ``i + len(body) - 1``; a jump to the call goes to the body's first instruction."""
    grow = len(body) - 1

    def moved(i: int) -> int:
        return i if i <= at else i + grow

    out: list[Instruction] = []
    for i, ins in enumerate(insns):
        if i == at:
            out.extend(in_place(body))
            continue
        t = target(insns, i)
        if t is not None and (i > at) != (t > at):  # (else its offset stays)
            off = moved(t) - moved(i) - 1
            ins = ins.with_(off=off) if _offset_in(ins.code) == "off" else ins.with_(imm=off)
        out.append(ins)
    return out


def fits(span: int, grow: int, body_len: int) -> bool:
    """The body is short enough, and a jump of ``span`` over it still reaches (``grow``: what
    the bodies put in the same function add to it)."""
    return body_len <= INLINE_MAX and span + grow <= MAX_OFF
