"""BPF instructions: the 8-byte encoding, decoding and the opcode constants.

An instruction is ``code:8 dst:4 src:4 off:16 imm:32``. The two register nibbles swap places on a
big-endian object (dst is the high nibble there), so decoding needs the object's byte order; what
we hand to the kernel is always in the host's order. ``ld_imm64`` is the one 16-byte instruction:
its second half carries the upper 32 bits of the constant in ``imm``, and is kept here as a second
``Instruction`` with ``code == 0`` so that instruction indexes stay equal to the kernel's.
"""

from __future__ import annotations

import struct
import sys

from pybpf.enums import int_enum
from pybpf.record import blank, record, replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Iterable, Sequence

INSN_SIZE = 8


@int_enum
class Class:
    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


@int_enum
class Size:
    W = 0x00  # 4 bytes
    H = 0x08  # 2 bytes
    B = 0x10  # 1 byte
    DW = 0x18  # 8 bytes


@int_enum
class Mode:
    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


@int_enum
class Source:
    K = 0x00  # immediate operand
    X = 0x08  # register operand


@int_enum
class ALUOp:
    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


@int_enum
class JmpOp:
    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0


@int_enum
class PseudoSrc:
    """``src_reg`` values that tell the kernel how to read an ld_imm64 or a call."""

    MAP_FD = 1  # imm is a map fd
    MAP_VALUE = 2  # imm is a map fd, insn[1].imm an offset into its (single) value
    BTF_ID = 3  # imm is a kernel BTF type id (typed ksym)
    FUNC = 4  # imm is a relative instruction offset of a subprogram (function pointer)
    MAP_IDX = 5  # imm is an index into fd_array
    MAP_IDX_VALUE = 6


# src_reg values of a call instruction
PSEUDO_CALL = 1  # bpf-to-bpf call, imm is the relative offset of the callee
PSEUDO_KFUNC_CALL = 2  # imm is a kernel BTF func id

LD_IMM64 = Class.LD | Size.DW | Mode.IMM  # 0x18
CALL = Class.JMP | JmpOp.CALL  # 0x85
EXIT = Class.JMP | JmpOp.EXIT  # 0x95


@record
class Instruction:
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    @property
    def cls(self) -> int:
        return self.code & 0x07

    @property
    def is_ld_imm64(self) -> bool:
        return self.code == LD_IMM64

    @property
    def is_call(self) -> bool:
        return self.code == CALL

    @property
    def is_pseudo_call(self) -> bool:
        return self.code == CALL and self.src == PSEUDO_CALL

    @property
    def is_jump(self) -> bool:
        """A jump with an offset (not call, not exit)."""
        if self.cls not in (Class.JMP, Class.JMP32):
            return False
        return (self.code & 0xF0) not in (JmpOp.CALL, JmpOp.EXIT)

    def with_(self, **changes: int) -> Instruction:
        return replace(self, **changes)


_LE = struct.Struct("<BBhi")
_BE = struct.Struct(">BBhi")
_HOST_LITTLE = sys.byteorder == "little"


def decode(data: bytes, little_endian: bool = True) -> list[Instruction]:
    """Decode raw instruction bytes of an object in the given byte order."""
    if len(data) % INSN_SIZE:
        raise ValueError(f"instruction bytes ({len(data)}) are not a multiple of {INSN_SIZE}")
    # Every instruction of an object is decoded when it is read (thousands for a large one, on
    # the way to every load): the instances are made as __init__ would make them, without its
    # call (pybpf.record's blank), a third faster.
    new = blank
    out = []
    append = out.append
    if little_endian:  # the registers byte: dst in the low nibble, src in the high one
        for code, regs, off, imm in _LE.iter_unpack(data):
            insn = new(Instruction)
            insn.__dict__.update(code=code, dst=regs & 0x0F, src=regs >> 4, off=off, imm=imm)
            append(insn)
    else:
        for code, regs, off, imm in _BE.iter_unpack(data):
            insn = new(Instruction)
            insn.__dict__.update(code=code, dst=regs >> 4, src=regs & 0x0F, off=off, imm=imm)
            append(insn)
    return out


def encode(insns: Iterable[Instruction], little_endian: bool = _HOST_LITTLE) -> bytes:
    """Encode instructions; by default in the host's byte order, as the kernel wants them."""
    layout = _LE if little_endian else _BE
    parts = []
    for i in insns:
        regs = (i.src << 4 | i.dst) if little_endian else (i.dst << 4 | i.src)
        parts.append(layout.pack(i.code, regs, i.off, _s32(i.imm)))
    return b"".join(parts)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def ld_imm64_value(pair: Sequence[Instruction]) -> int:
    """The 64-bit constant of an ld_imm64 (two slots)."""
    return (pair[0].imm & 0xFFFFFFFF) | ((pair[1].imm & 0xFFFFFFFF) << 32)


# Small constructors, used by tests and by code that emits instructions.


def mov64_imm(dst: int, imm: int) -> Instruction:
    return Instruction(Class.ALU64 | ALUOp.MOV | Source.K, dst, 0, 0, imm)


def mov64_reg(dst: int, src: int) -> Instruction:
    return Instruction(Class.ALU64 | ALUOp.MOV | Source.X, dst, src)


def alu64_imm(op: ALUOp, dst: int, imm: int) -> Instruction:
    return Instruction(Class.ALU64 | op | Source.K, dst, 0, 0, imm)


def ld_imm64(dst: int, value: int, src: int = 0) -> list[Instruction]:
    value &= (1 << 64) - 1
    return [
        Instruction(LD_IMM64, dst, src, 0, _s32(value & 0xFFFFFFFF)),
        Instruction(0, 0, 0, 0, _s32(value >> 32)),
    ]


def ld_map_fd(dst: int, fd: int) -> list[Instruction]:
    return ld_imm64(dst, fd, PseudoSrc.MAP_FD)


def ldx_mem(size: Size, dst: int, src: int, off: int) -> Instruction:
    return Instruction(Class.LDX | size | Mode.MEM, dst, src, off)


def stx_mem(size: Size, dst: int, src: int, off: int) -> Instruction:
    return Instruction(Class.STX | size | Mode.MEM, dst, src, off)


def st_mem(size: Size, dst: int, off: int, imm: int) -> Instruction:
    return Instruction(Class.ST | size | Mode.MEM, dst, 0, off, imm)


def jmp_imm(op: JmpOp, dst: int, imm: int, off: int) -> Instruction:
    return Instruction(Class.JMP | op | Source.K, dst, 0, off, imm)


def jmp_reg(op: JmpOp, dst: int, src: int, off: int) -> Instruction:
    return Instruction(Class.JMP | op | Source.X, dst, src, off)


def call_helper(helper_id: int) -> Instruction:
    return Instruction(CALL, 0, 0, 0, helper_id)


def exit_insn() -> Instruction:
    return Instruction(EXIT)
