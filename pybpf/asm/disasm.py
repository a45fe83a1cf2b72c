"""A disassembler that speaks the kernel verifier's notation (kernel/bpf/disasm.c).

This is the text ``bpftool prog dump xlated`` and the verifier log print, so what a user sees from
pybpf reads the same as what the kernel tells them: ``r1 = *(u32 *)(r6 +4)``,
``if r2 > r3 goto pc+5``, ``w0 = 1``, ``call bpf_ringbuf_reserve#131``, ``exit``. A ``w`` register
is the 32-bit half of an ``r`` register (ALU/JMP32 classes); ``pc+N`` is relative to the next
instruction.

An ld_imm64 takes two slots; its first slot prints the whole constant and its second slot prints
nothing, so :func:`disassemble` returns one entry per slot and indexes stay equal to the kernel's.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from pybpf.asm.helpers import helper_name
from pybpf.asm.insn import (
    PSEUDO_CALL,
    PSEUDO_KFUNC_CALL,
    ALUOp,
    Class,
    Instruction,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
    ld_imm64_value,
)

# Given (src_reg of the ld_imm64, its imm), what goes between the brackets of ``map[...]``.
MapNamer = Callable[[int, int], str]

_ALU = {
    ALUOp.ADD: "+=",
    ALUOp.SUB: "-=",
    ALUOp.MUL: "*=",
    ALUOp.DIV: "/=",
    ALUOp.OR: "|=",
    ALUOp.AND: "&=",
    ALUOp.LSH: "<<=",
    ALUOp.RSH: ">>=",
    ALUOp.MOD: "%=",
    ALUOp.XOR: "^=",
    ALUOp.MOV: "=",
    ALUOp.ARSH: "s>>=",
}
_SIGNED_ALU = {ALUOp.DIV: "s/=", ALUOp.MOD: "s%="}  # cpu v4: off == 1 makes div/mod signed
_MOVSX = {8: "(s8)", 16: "(s16)", 32: "(s32)"}  # cpu v4: mov with off 8/16/32 sign-extends
_JMP = {
    JmpOp.JEQ: "==",
    JmpOp.JGT: ">",
    JmpOp.JGE: ">=",
    JmpOp.JSET: "&",
    JmpOp.JNE: "!=",
    JmpOp.JSGT: "s>",
    JmpOp.JSGE: "s>=",
    JmpOp.JLT: "<",
    JmpOp.JLE: "<=",
    JmpOp.JSLT: "s<",
    JmpOp.JSLE: "s<=",
}
_SIZE = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_SSIZE = {Size.W: "s32", Size.H: "s16", Size.B: "s8"}  # BPF_MEMSX loads

# Atomic operations (class STX, mode ATOMIC): the operation is in imm.
FETCH = 0x01
XCHG = 0xE0 | FETCH
CMPXCHG = 0xF0 | FETCH
LOAD_ACQ = 0x100
STORE_REL = 0x110
_ATOMIC_ALU = {ALUOp.ADD: "add", ALUOp.AND: "and", ALUOp.OR: "or", ALUOp.XOR: "xor"}

JCOND = 0xE0  # BPF_JMP | BPF_JCOND with src_reg BPF_MAY_GOTO
MAY_GOTO = 0
ADDR_SPACE_CAST = 1  # off of an ALU64 mov: arena pointer cast
ADDR_PERCPU = -1  # off of an ALU64 mov: per-CPU address


def default_map_namer(src: int, imm: int) -> str:
    """``fd:5`` before load (imm is the map fd the loader patched in)."""
    return f"fd:{imm}"


def format_insn(
    insn: Instruction,
    next_insn: Optional[Instruction] = None,
    *,
    map_namer: MapNamer = default_map_namer,
    opcode: bool = False,
    xlated: bool = False,
) -> str:
    """One instruction in the verifier's notation. ``next_insn`` is the second slot of an
    ld_imm64. With ``opcode=True`` the line starts with ``(xx) `` as in bpftool's output.

    ``xlated=True`` reads code the kernel gave back after JIT (``bpftool prog dump xlated ...
    file``): there a bpf-to-bpf call keeps the callee's subprogram index in ``imm`` and its
    relative offset in ``off``.
    """
    if xlated and insn.is_pseudo_call:
        insn = insn.with_(imm=insn.off)
    text = _format(insn, next_insn, map_namer)
    return f"({insn.code:02x}) {text}" if opcode else text


def disassemble(
    insns: Sequence[Instruction],
    *,
    map_namer: MapNamer = default_map_namer,
    opcode: bool = False,
    xlated: bool = False,
) -> list[str]:
    """One string per instruction slot; the second slot of an ld_imm64 is the empty string."""
    out: list[str] = []
    skip = False
    for i, insn in enumerate(insns):
        if skip:
            out.append("")
            skip = False
            continue
        nxt = insns[i + 1] if i + 1 < len(insns) else None
        out.append(format_insn(insn, nxt, map_namer=map_namer, opcode=opcode, xlated=xlated))
        skip = insn.is_ld_imm64
    return out


def listing(insns: Sequence[Instruction], **kw: object) -> str:
    """``   0: r0 = 1`` lines, bpftool style, without the empty second slots."""
    lines = disassemble(insns, **kw)  # type: ignore[arg-type]
    return "\n".join(f"{i:4d}: {text}" for i, text in enumerate(lines) if text)


def _format(insn: Instruction, nxt: Optional[Instruction], map_namer: MapNamer) -> str:
    cls = insn.cls
    if cls in (Class.ALU, Class.ALU64):
        return _alu(insn)
    if cls == Class.STX:
        return _stx(insn)
    if cls == Class.ST:
        return _st(insn)
    if cls == Class.LDX:
        return _ldx(insn)
    if cls == Class.LD:
        return _ld(insn, nxt, map_namer)
    return _jmp(insn)


def _alu(insn: Instruction) -> str:
    op, is64 = insn.code & 0xF0, insn.cls == Class.ALU64
    r = "r" if is64 else "w"
    d, s = insn.dst, insn.src
    if op == ALUOp.END:
        if is64:  # cpu v4: unconditional byte swap
            return f"r{d} = bswap{insn.imm} r{d}"
        order = "be" if insn.code & Source.X else "le"  # BPF_TO_BE shares the bit with BPF_X
        return f"r{d} = {order}{insn.imm} r{d}"
    if op == ALUOp.NEG:
        return f"{r}{d} = -{r}{d}"
    x = insn.code & Source.X
    if is64 and x and op == ALUOp.MOV:
        if insn.off == ADDR_SPACE_CAST:
            imm = insn.imm & 0xFFFFFFFF
            return f"r{d} = addr_space_cast(r{s}, {imm >> 16}, {imm & 0xFFFF})"
        if insn.off == ADDR_PERCPU:
            return f"r{d} = &(void __percpu *)(r{s})"
    sym = _SIGNED_ALU.get(op) if insn.off == 1 else None
    sym = sym or _ALU.get(op, f"BUG_alu_{op:02x}")
    if x:
        ext = _MOVSX.get(insn.off, "") if op == ALUOp.MOV else ""
        return f"{r}{d} {sym} {ext}{r}{s}"
    return f"{r}{d} {sym} {insn.imm}"


def _mem(size: int, reg: int, off: int, names: dict = _SIZE) -> str:
    return f"*({names[size]} *)(r{reg} {off:+d})"


def _stx(insn: Instruction) -> str:
    size, mode = insn.code & 0x18, insn.code & 0xE0
    d, s, off = insn.dst, insn.src, insn.off
    if mode == Mode.MEM:
        return f"{_mem(size, d, off)} = r{s}"
    if mode != Mode.ATOMIC:
        return f"BUG_{insn.code:02x}"
    imm, bits = insn.imm, "64" if size == Size.DW else ""
    ptr = f"({_SIZE[size]} *)(r{d} {off:+d})"
    if imm in _ATOMIC_ALU:
        return f"lock {_mem(size, d, off)} {_ALU[imm]} r{s}"
    if imm & FETCH and (imm & ~FETCH) in _ATOMIC_ALU:
        return f"r{s} = atomic{bits}_fetch_{_ATOMIC_ALU[imm & ~FETCH]}({ptr}, r{s})"
    if imm == CMPXCHG:
        return f"r0 = atomic{bits}_cmpxchg({ptr}, r0, r{s})"
    if imm == XCHG:
        return f"r{s} = atomic{bits}_xchg({ptr}, r{s})"
    if imm == LOAD_ACQ:
        return f"r{d} = load_acquire(({_SIZE[size]} *)(r{s} {off:+d}))"
    if imm == STORE_REL:
        return f"store_release({ptr}, r{s})"
    return f"BUG_{insn.code:02x}"


def _st(insn: Instruction) -> str:
    mode = insn.code & 0xE0
    if mode == Mode.MEM:
        return f"{_mem(insn.code & 0x18, insn.dst, insn.off)} = {insn.imm}"
    if mode == 0xC0:  # BPF_NOSPEC, inserted by the verifier, not UAPI
        return "nospec"
    return f"BUG_st_{insn.code:02x}"


def _ldx(insn: Instruction) -> str:
    mode, size = insn.code & 0xE0, insn.code & 0x18
    if mode == Mode.MEM:
        return f"r{insn.dst} = {_mem(size, insn.src, insn.off)}"
    if mode == Mode.MEMSX and size in _SSIZE:
        return f"r{insn.dst} = {_mem(size, insn.src, insn.off, _SSIZE)}"
    return f"BUG_ldx_{insn.code:02x}"


def _ld(insn: Instruction, nxt: Optional[Instruction], map_namer: MapNamer) -> str:
    mode, size = insn.code & 0xE0, insn.code & 0x18
    if mode == Mode.ABS:  # legacy packet access of socket filters
        return f"r0 = *({_SIZE[size]} *)skb[{insn.imm}]"
    if mode == Mode.IND:
        return f"r0 = *({_SIZE[size]} *)skb[r{insn.src} + {insn.imm}]"
    if not insn.is_ld_imm64:
        return f"BUG_ld_{insn.code:02x}"
    second = nxt if nxt is not None else Instruction(0)
    d, src = insn.dst, insn.src
    if src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
        return f"r{d} = map[{_map_ref(map_namer, src, insn.imm)}]"
    if src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
        return f"r{d} = map[{_map_ref(map_namer, src, insn.imm)}][0]+{second.imm}"
    if src == PseudoSrc.FUNC:
        return f"r{d} = subprog[{insn.imm:+d}]"
    if src == PseudoSrc.BTF_ID:
        return f"r{d} = btf_id[{insn.imm}]"
    return f"r{d} = 0x{ld_imm64_value((insn, second)):x}"


def _map_ref(map_namer: MapNamer, src: int, imm: int) -> str:
    if src in (PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE):
        return f"idx:{imm}"  # an index into fd_array, not an fd
    return map_namer(src, imm)


def _jmp(insn: Instruction) -> str:
    op, is32 = insn.code & 0xF0, insn.cls == Class.JMP32
    if op == JmpOp.CALL:
        if insn.src == PSEUDO_CALL:
            return f"call pc{insn.imm:+d}"
        if insn.src == PSEUDO_KFUNC_CALL:
            return f"call kfunc#{insn.imm}"
        return f"call {helper_name(insn.imm) or 'unknown'}#{insn.imm}"
    if op == JmpOp.EXIT:
        return "exit"
    if op == JmpOp.JA:
        return f"gotol pc{insn.imm:+d}" if is32 else f"goto pc{insn.off:+d}"
    if op == JCOND and insn.src == MAY_GOTO:
        return f"may_goto pc{insn.off:+d}"
    r = "w" if is32 else "r"
    sym = _JMP.get(op, f"BUG_jmp_{op:02x}")
    if insn.code & Source.X:
        return f"if {r}{insn.dst} {sym} {r}{insn.src} goto pc{insn.off:+d}"
    return f"if {r}{insn.dst} {sym} 0x{insn.imm & 0xFFFFFFFF:x} goto pc{insn.off:+d}"
