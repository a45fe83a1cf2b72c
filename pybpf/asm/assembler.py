"""An assembler: BPF instructions written by name, with symbolic labels instead of offsets.

A program that generates code (a packet-filter compiler, a test) writes::

    a = Assembler()
    a.mov(R0, 0)
    a.jeq(R1, 0, "out")          # a jump names a label; its offset is computed at the end
    a.mov(R0, 1)
    a.label("out")
    a.exit()
    insns = a.assemble()

Registers are ``R0``..``R10`` (or ``"r3"``, or ``3``); ``R10`` is the read-only frame pointer and
is refused as the destination of anything but a store through it. Every ALU operation has a 64-bit
form (``add``) and a 32-bit one (``add32``: the kernel zero-extends the result into the upper
half); every conditional jump has a 64-bit form (``jgt``) and a 32-bit one (``jgt32``, JMP32 class,
Linux 5.1+). The second operand is a register or an immediate that fits 32 bits.

Offsets are 16-bit: a jump reaches at most 32767 instructions forward. ``assemble`` relaxes the
ones that do not fit, with nothing newer than Linux 6.1 needs: a conditional jump becomes the
inverse condition over an unconditional ``ja`` (``jset`` has no inverse and becomes three
instructions), and a ``ja`` that still cannot reach jumps to an *island*, a ``ja`` placed half way
and skipped by the code around it. (Linux 6.3 added ``gotol``, a ``ja`` with a 32-bit offset;
islands work everywhere.) Nothing here touches the kernel.
"""

from __future__ import annotations

from typing import Union

from pybpf.asm import insn as isa
from pybpf.asm.helpers import HELPER_IDS
from pybpf.asm.insn import ALUOp, Class, Instruction, JmpOp, Size, Source
from pybpf.enums import int_enum
from pybpf.errors import BPFError
from pybpf.record import record


class AssemblerError(BPFError):
    """A mistake in generated code: a bad register, an unknown label, an immediate too wide."""


@int_enum
class Reg:
    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg
FP = R10  # the frame pointer: read-only, the stack lies below it

RegLike = Union[Reg, int, str]
Operand = Union[Reg, int, str]  # a register (Reg or "rN") or an immediate (int)

SIZES = {"b": Size.B, "h": Size.H, "w": Size.W, "dw": Size.DW}

# The condition that holds exactly when the given one does not (none for jset).
_INVERSE = {
    JmpOp.JEQ: JmpOp.JNE,
    JmpOp.JNE: JmpOp.JEQ,
    JmpOp.JGT: JmpOp.JLE,
    JmpOp.JLE: JmpOp.JGT,
    JmpOp.JGE: JmpOp.JLT,
    JmpOp.JLT: JmpOp.JGE,
    JmpOp.JSGT: JmpOp.JSLE,
    JmpOp.JSLE: JmpOp.JSGT,
    JmpOp.JSGE: JmpOp.JSLT,
    JmpOp.JSLT: JmpOp.JSGE,
}
OFF_MIN, OFF_MAX = -(1 << 15), (1 << 15) - 1


def reg(r: RegLike) -> Reg:
    """A register from ``Reg.R3``, ``3`` or ``"r3"``."""
    if isinstance(r, str):
        name = r.lower()
        if name in ("fp", "r10"):
            return Reg.R10
        if name.startswith("r") and name[1:].isdigit():
            r = int(name[1:])
        else:
            raise AssemblerError(f"assembler: '{r}' is not a register (r0..r10)")
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 10:
        raise AssemblerError(f"assembler: {r!r} is not a register (r0..r10)")
    return Reg(r)


def _writable(r: RegLike) -> Reg:
    out = reg(r)
    if out == Reg.R10:
        raise AssemblerError("assembler: r10 is the read-only frame pointer, not a destination")
    return out


def _imm32(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AssemblerError(f"assembler: {value!r} is neither a register nor an integer")
    if not -(1 << 31) <= value < (1 << 32):
        raise AssemblerError(f"assembler: immediate {value} does not fit 32 bits (use ld_imm64)")
    return value - (1 << 32) if value >= (1 << 31) else value


def _is_reg(x: Operand) -> bool:
    return isinstance(x, (Reg, str))


@record(frozen=False)
class _Jump:
    """A jump waiting for its label to be placed. ``form`` says how it was relaxed."""

    code: int  # class | op (without the source bit)
    dst: int
    src: int
    imm: int
    source: int  # Source.K or Source.X
    target: str
    form: str = "short"  # "short", "inverse" (2 insns), "skip" (3 insns)

    @property
    def size(self) -> int:
        return {"short": 1, "inverse": 2, "skip": 3}[self.form]

    @property
    def is_ja(self) -> bool:
        return self.code == Class.JMP | JmpOp.JA


@record(frozen=False)
class _Label:
    name: str


Item = Union[Instruction, _Jump, _Label]


class Assembler:
    """Collects instructions and labels; ``assemble()`` resolves the labels into offsets."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self._labels: set[str] = set()
        self._islands = 0

    # --- labels and raw instructions ---------------------------------------------------------

    def label(self, name: str) -> None:
        """Mark the position of the next instruction."""
        if name in self._labels:
            raise AssemblerError(f"assembler: label '{name}' is placed twice")
        self._labels.add(name)
        self.items.append(_Label(name))

    def emit(self, *insns: Instruction) -> None:
        """Append ready-made instructions (their own offsets are left alone)."""
        self.items.extend(insns)

    # --- ALU ---------------------------------------------------------------------------------

    def alu(self, op: ALUOp, dst: RegLike, x: Operand, bits: int = 64) -> None:
        cls = Class.ALU64 if bits == 64 else Class.ALU
        if bits not in (32, 64):
            raise AssemblerError(f"assembler: ALU width {bits} is not 32 or 64")
        d = _writable(dst)
        if _is_reg(x):
            self.items.append(Instruction(cls | op | Source.X, d, reg(x)))
        else:
            if op in (ALUOp.DIV, ALUOp.MOD) and x == 0:
                raise AssemblerError("assembler: division by the constant 0")
            self.items.append(Instruction(cls | op | Source.K, d, 0, 0, _imm32(x)))

    def neg(self, dst: RegLike, bits: int = 64) -> None:
        cls = Class.ALU64 if bits == 64 else Class.ALU
        self.items.append(Instruction(cls | ALUOp.NEG, _writable(dst)))

    def ld_imm64(self, dst: RegLike, value: int) -> None:
        """Load a 64-bit constant (two instruction slots)."""
        if not -(1 << 63) <= value < (1 << 64):
            raise AssemblerError(f"assembler: {value} does not fit 64 bits")
        self.items.extend(isa.ld_imm64(_writable(dst), value))

    # --- memory ------------------------------------------------------------------------------

    def ldx(self, size: str, dst: RegLike, src: RegLike, off: int = 0) -> None:
        """``dst = *(size *)(src + off)`` (packet, stack, map value or context memory)."""
        self.items.append(isa.ldx_mem(_size(size), _writable(dst), reg(src), _off(off)))

    def stx(self, size: str, dst: RegLike, off: int, src: RegLike) -> None:
        """``*(size *)(dst + off) = src``; ``dst`` may be the frame pointer."""
        self.items.append(isa.stx_mem(_size(size), reg(dst), reg(src), _off(off)))

    def st(self, size: str, dst: RegLike, off: int, imm: int) -> None:
        self.items.append(isa.st_mem(_size(size), reg(dst), _off(off), _imm32(imm)))

    # --- jumps, calls ------------------------------------------------------------------------

    def jmp(self, op: JmpOp, dst: RegLike, x: Operand, target: str, bits: int = 64) -> None:
        if op in (JmpOp.CALL, JmpOp.EXIT, JmpOp.JA):
            raise AssemblerError(f"assembler: {op.name} is not a conditional jump")
        cls = Class.JMP if bits == 64 else Class.JMP32
        if _is_reg(x):
            self.items.append(_Jump(cls | op, reg(dst), reg(x), 0, Source.X, target))
        else:
            self.items.append(_Jump(cls | op, reg(dst), 0, _imm32(x), Source.K, target))

    def ja(self, target: str) -> None:
        self.items.append(_Jump(Class.JMP | JmpOp.JA, 0, 0, 0, Source.K, target))

    def call(self, helper: Union[str, int]) -> None:
        """Call a kernel helper by name (``"xdp_load_bytes"`` or ``"bpf_xdp_load_bytes"``) or id."""
        if isinstance(helper, str):
            name = helper[4:] if helper.startswith("bpf_") else helper
            if name not in HELPER_IDS:
                raise AssemblerError(f"assembler: no helper named '{helper}'")
            helper = HELPER_IDS[name]
        self.items.append(isa.call_helper(helper))

    def exit(self) -> None:
        self.items.append(isa.exit_insn())

    # --- resolution --------------------------------------------------------------------------

    def assemble(self) -> list[Instruction]:
        """The instructions, every label resolved; long jumps relaxed until all offsets fit."""
        missing = {i.target for i in self.items if isinstance(i, _Jump)} - self._labels
        if missing:
            raise AssemblerError(f"assembler: jump to undefined label '{sorted(missing)[0]}'")
        while True:
            where = self._layout()
            if not self._relax(where):
                break
        return self._emit(where)

    def _layout(self) -> dict[str, int]:
        where, pos = {}, 0
        for item in self.items:
            if isinstance(item, _Label):
                where[item.name] = pos
            elif isinstance(item, _Jump):
                pos += item.size
            else:
                pos += 1
        where[""] = pos
        return where

    def _relax(self, where: dict[str, int]) -> bool:
        """Widen the first jump that cannot reach; True when something changed."""
        pos = 0
        for n, item in enumerate(self.items):
            if isinstance(item, _Jump):
                last = pos + item.size - 1  # the instruction holding the far offset
                off = where[item.target] - (last + 1)
                if not OFF_MIN <= off <= OFF_MAX:
                    if item.is_ja or item.form != "short":
                        self._island(n, pos, where[item.target])
                    else:
                        op = JmpOp(item.code & 0xF0)
                        item.form = "inverse" if op in _INVERSE else "skip"
                    return True
                pos += item.size
            elif not isinstance(item, _Label):
                pos += 1
        return False

    def _island(self, n: int, pos: int, target: int) -> None:
        """Put ``skip: ja over; island: ja target; over:`` half way and aim jump ``n`` at it."""
        at = self._index_at(pos + (target - pos) // 2)
        self._islands += 1
        name, over = f".island{self._islands}", f".island{self._islands}.over"
        jump = self.items[n]
        island = [
            _Jump(Class.JMP | JmpOp.JA, 0, 0, 0, Source.K, over),
            _Label(name),
            _Jump(Class.JMP | JmpOp.JA, 0, 0, 0, Source.K, jump.target),
            _Label(over),
        ]
        self._labels.update((name, over))
        self.items[at:at] = island
        jump.target = name

    def _index_at(self, position: int) -> int:
        """Index in ``items`` of the first instruction at or after ``position``."""
        p = 0
        for at, item in enumerate(self.items):
            second_half = isinstance(item, Instruction) and item.code == 0  # of an ld_imm64
            if p >= position and not isinstance(item, _Label) and not second_half:
                return at
            if isinstance(item, _Jump):
                p += item.size
            elif not isinstance(item, _Label):
                p += 1
        return len(self.items)

    def _emit(self, where: dict[str, int]) -> list[Instruction]:
        out: list[Instruction] = []
        for item in self.items:
            if isinstance(item, _Label):
                continue
            if not isinstance(item, _Jump):
                out.append(item)
                continue
            far = where[item.target] - (len(out) + item.size)
            ja = Class.JMP | JmpOp.JA
            if item.form == "short":
                out.append(Instruction(item.code | item.source, item.dst, item.src, far, item.imm))
            elif item.form == "inverse":
                inv = (item.code & 0x0F) | _INVERSE[JmpOp(item.code & 0xF0)]
                out.append(Instruction(inv | item.source, item.dst, item.src, 1, item.imm))
                out.append(Instruction(ja, 0, 0, far))
            else:  # jset: jump over the skip to the far ja
                out.append(Instruction(item.code | item.source, item.dst, item.src, 1, item.imm))
                out.append(Instruction(ja, 0, 0, 1))
                out.append(Instruction(ja, 0, 0, far))
        return out


def _size(size: Union[str, Size]) -> Size:
    if isinstance(size, Size):
        return size
    try:
        return SIZES[size.lower()]
    except (KeyError, AttributeError):
        raise AssemblerError(f"assembler: size {size!r} is not one of b, h, w, dw") from None


def _off(off: int) -> int:
    if not OFF_MIN <= off <= OFF_MAX:
        raise AssemblerError(f"assembler: memory offset {off} does not fit 16 bits")
    return off


def _named(op: ALUOp, bits: int):
    def method(self: Assembler, dst: RegLike, x: Operand) -> None:
        self.alu(op, dst, x, bits)

    method.__name__ = op.name.lower() + ("32" if bits == 32 else "")
    method.__doc__ = f"``dst {op.name.lower()}= x`` on {bits} bits."
    return method


def _named_jump(op: JmpOp, bits: int):
    def method(self: Assembler, dst: RegLike, x: Operand, target: str) -> None:
        self.jmp(op, dst, x, target, bits)

    method.__name__ = op.name.lower() + ("32" if bits == 32 else "")
    method.__doc__ = f"Jump to ``target`` when ``dst {op.name} x`` ({bits}-bit compare)."
    return method


# add, add32, sub, ..., mov, mov32 and jeq, jeq32, ..., jsle32 as methods.
_ALU_NAMES = {op: op.name.lower() for op in ALUOp if op not in (ALUOp.NEG, ALUOp.END)}
_ALU_NAMES[ALUOp.AND] = "and_"
_ALU_NAMES[ALUOp.OR] = "or_"
for _op, _name in _ALU_NAMES.items():
    setattr(Assembler, _name, _named(_op, 64))
    setattr(Assembler, _name.rstrip("_") + "32", _named(_op, 32))
for _op in JmpOp:
    if _op not in (JmpOp.JA, JmpOp.CALL, JmpOp.EXIT):
        setattr(Assembler, _op.name.lower(), _named_jump(_op, 64))
        setattr(Assembler, _op.name.lower() + "32", _named_jump(_op, 32))


__all__ = [
    "FP",
    "R0",
    "R1",
    "R2",
    "R3",
    "R4",
    "R5",
    "R6",
    "R7",
    "R8",
    "R9",
    "R10",
    "Assembler",
    "AssemblerError",
    "Reg",
    "reg",
]
