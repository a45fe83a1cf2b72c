"""The disassembler prints what the kernel prints.

Unit tests pin single instructions to the kernel's notation (kernel/bpf/disasm.c). The system tests
use the kernel itself as the reference: programs are loaded (by bpftool, and by pybpf for cpu-v4
instructions clang 14 does not emit), ``bpftool prog dump xlated`` prints them, and our
disassembly of the same xlated bytes must agree line by line.

Normalisations, and why:
- bpftool prints a helper call as ``call <kernel symbol>#<imm>``: in xlated code the verifier has
  replaced the helper id by the offset of the kernel function (sometimes an inlined variant such as
  ``array_map_update_elem``), and bpftool names it from /proc/kallsyms. We cannot know kernel
  symbols from the bytes, so both sides become ``call #<imm>`` (the imm itself must match).
- bpftool appends ``#bpf_prog_<tag>_<name>`` to a bpf-to-bpf ``call pc+N`` (from the program's
  jited symbols); both sides become ``call pc+N``. (In xlated code of a JITed program the offset
  is in ``off``, the subprogram index in ``imm``: we disassemble with ``xlated=True``.)
- bpftool here is v7.1, whose copy of disasm.c predates cpu v4 (it prints ``s/=`` as ``/=``), so
  cpu-v4 instructions are checked against the running kernel's own disassembler instead: the
  verifier log at level 2 lists every instruction ("Live regs before insn", Linux 6.15+).
  For the same reason the per-CPU address move the verifier inlines for per-CPU map lookups
  (``r0 = &(void __percpu *)(r0)``, Linux 6.9) is printed by bpftool 7.1 as ``r0 = r0``; both sides
  drop the cast.
- maps: xlated code carries map ids, so we pass a map namer printing ``id:N`` (no normalisation).
- ``; source`` lines and function headers come from BTF line/func info, not from instructions.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from pathlib import Path

import pytest

from pybpf.asm import insn as isa
from pybpf.asm.disasm import CMPXCHG, FETCH, XCHG, disassemble, format_insn, listing
from pybpf.asm.insn import ALUOp, Class, Instruction, JmpOp, Mode, Size, Source
from tests.conftest import bpf_object, need_tool, run

LE = sys.byteorder == "little"


def alu(cls: int, op: int, src: int, dst: int, s: int = 0, off: int = 0, imm: int = 0):
    return Instruction(cls | op | src, dst, s, off, imm)


CASES = [
    (isa.mov64_imm(0, 1), "r0 = 1"),
    (alu(Class.ALU, ALUOp.MOV, Source.K, 0, imm=1), "w0 = 1"),
    (isa.mov64_reg(6, 1), "r6 = r1"),
    (alu(Class.ALU64, ALUOp.ADD, Source.K, 2, imm=-4), "r2 += -4"),
    (alu(Class.ALU, ALUOp.XOR, Source.X, 3, 4), "w3 ^= w4"),
    (alu(Class.ALU64, ALUOp.ARSH, Source.K, 0, imm=32), "r0 s>>= 32"),
    (alu(Class.ALU64, ALUOp.NEG, Source.K, 5), "r5 = -r5"),
    (alu(Class.ALU, ALUOp.END, Source.X, 0, imm=16), "r0 = be16 r0"),
    (alu(Class.ALU, ALUOp.END, Source.K, 0, imm=64), "r0 = le64 r0"),
    (alu(Class.ALU64, ALUOp.END, Source.K, 1, imm=32), "r1 = bswap32 r1"),
    (alu(Class.ALU64, ALUOp.DIV, Source.X, 1, 2, off=1), "r1 s/= r2"),
    (alu(Class.ALU, ALUOp.MOD, Source.K, 1, off=1, imm=7), "w1 s%= 7"),
    (alu(Class.ALU64, ALUOp.MOV, Source.X, 1, 2, off=8), "r1 = (s8)r2"),
    (alu(Class.ALU, ALUOp.MOV, Source.X, 1, 2, off=16), "w1 = (s16)w2"),
    (isa.ldx_mem(Size.W, 1, 6, 4), "r1 = *(u32 *)(r6 +4)"),
    (Instruction(Class.LDX | Size.H | Mode.MEMSX, 1, 10, -2), "r1 = *(s16 *)(r10 -2)"),
    (isa.stx_mem(Size.DW, 10, 1, -8), "*(u64 *)(r10 -8) = r1"),
    (isa.st_mem(Size.B, 10, -1, -3), "*(u8 *)(r10 -1) = -3"),
    (
        Instruction(Class.STX | Size.DW | Mode.ATOMIC, 1, 2, 0, ALUOp.ADD),
        "lock *(u64 *)(r1 +0) += r2",
    ),
    (
        Instruction(Class.STX | Size.W | Mode.ATOMIC, 1, 2, 8, ALUOp.OR),
        "lock *(u32 *)(r1 +8) |= r2",
    ),
    (
        Instruction(Class.STX | Size.DW | Mode.ATOMIC, 1, 2, 0, ALUOp.ADD | FETCH),
        "r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)",
    ),
    (
        Instruction(Class.STX | Size.W | Mode.ATOMIC, 1, 2, 0, ALUOp.AND | FETCH),
        "r2 = atomic_fetch_and((u32 *)(r1 +0), r2)",
    ),
    (
        Instruction(Class.STX | Size.DW | Mode.ATOMIC, 1, 3, -8, XCHG),
        "r3 = atomic64_xchg((u64 *)(r1 -8), r3)",
    ),
    (
        Instruction(Class.STX | Size.DW | Mode.ATOMIC, 1, 3, 0, CMPXCHG),
        "r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r3)",
    ),
    (isa.jmp_reg(JmpOp.JGT, 2, 3, 5), "if r2 > r3 goto pc+5"),
    (isa.jmp_imm(JmpOp.JSLT, 1, -1, -3), "if r1 s< 0xffffffff goto pc-3"),
    (Instruction(Class.JMP32 | JmpOp.JNE | Source.K, 1, 0, 2, 0x10), "if w1 != 0x10 goto pc+2"),
    (Instruction(Class.JMP | JmpOp.JA, off=0), "goto pc+0"),
    (Instruction(Class.JMP32 | JmpOp.JA, imm=70000), "gotol pc+70000"),
    (Instruction(Class.JMP | 0xE0, off=3), "may_goto pc+3"),
    (Instruction(Class.ST | 0xC0), "nospec"),
    (alu(Class.ALU64, ALUOp.MOV, Source.X, 1, 2, off=1, imm=1), "r1 = addr_space_cast(r2, 0, 1)"),
    (alu(Class.ALU64, ALUOp.MOV, Source.X, 0, 0, off=-1), "r0 = &(void __percpu *)(r0)"),
    (isa.call_helper(131), "call bpf_ringbuf_reserve#131"),
    (Instruction(isa.CALL, 0, isa.PSEUDO_CALL, 0, 4), "call pc+4"),
    (isa.exit_insn(), "exit"),
]


@pytest.mark.parametrize("ins,text", CASES, ids=[t for _, t in CASES])
def test_single_instruction_matches_kernel_notation(ins: Instruction, text: str) -> None:
    assert format_insn(ins) == text


def test_ld_imm64_constant_and_second_slot_prints_nothing() -> None:
    lines = disassemble([*isa.ld_imm64(1, 0x1122334455667788), isa.exit_insn()])
    assert lines == ["r1 = 0x1122334455667788", "", "exit"]


def test_map_references_before_load_and_with_names() -> None:
    value = [*isa.ld_imm64(1, 5, isa.PseudoSrc.MAP_VALUE)]
    value[1] = value[1].with_(imm=16)
    prog = [*isa.ld_map_fd(1, 5), *value]
    assert disassemble(prog) == ["r1 = map[fd:5]", "", "r1 = map[fd:5][0]+16", ""]
    names = {5: "events"}
    named = disassemble(prog, map_namer=lambda src, imm: names[imm])
    assert named[0] == "r1 = map[events]"
    assert named[2] == "r1 = map[events][0]+16"


def test_opcode_prefix_and_listing() -> None:
    assert format_insn(isa.mov64_imm(0, 2), opcode=True) == "(b7) r0 = 2"
    text = listing([*isa.ld_imm64(0, 1), isa.exit_insn()])
    assert text.splitlines() == ["   0: r0 = 0x1", "   2: exit"]


# --- against the kernel, through bpftool ---------------------------------------------------

_LINE = re.compile(r"^\s*(\d+): (\(\w\w\) .*)$")
_HELPER_CALL = re.compile(r"call (?!pc)\S*#(-?\d+)$")
_PC_CALL = re.compile(r"call pc([+-]\d+)#.*$")


_PERCPU = re.compile(r"&\(void __percpu \*\)\((r\d+)\)")


def normalise(text: str) -> str:
    text = _PERCPU.sub(r"\1", text)
    text = _PC_CALL.sub(r"call pc\1", text)
    return _HELPER_CALL.sub(r"call #\1", text)


def bpftool_listing(prog_id: int) -> dict[int, str]:
    out = run("bpftool", "prog", "dump", "xlated", "id", str(prog_id)).stdout
    lines = {}
    for line in out.splitlines():
        m = _LINE.match(line)
        if m:
            lines[int(m.group(1))] = normalise(m.group(2))
    return lines


def our_listing(prog_id: int, tmp_path: Path) -> dict[int, str]:
    raw = tmp_path / f"xlated-{prog_id}.bin"
    run("bpftool", "prog", "dump", "xlated", "id", str(prog_id), "file", str(raw))
    insns = isa.decode(raw.read_bytes(), little_endian=LE)
    lines = disassemble(insns, map_namer=lambda src, imm: f"id:{imm}", opcode=True, xlated=True)
    return {i: normalise(t) for i, t in enumerate(lines) if t}


@pytest.fixture
def pin_dir():
    path = Path("/sys/fs/bpf") / f"pybpf-disasm-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield path
    finally:
        run("rm", "-rf", str(path), check=False)


def _pinned_ids(path: Path) -> list[int]:
    import json

    ids = []
    for p in sorted(path.iterdir()):
        ids.append(json.loads(run("bpftool", "prog", "show", "pinned", str(p), "-j").stdout)["id"])
    return ids


@pytest.mark.system
@pytest.mark.parametrize(
    "obj", ["tests/subprog", "tests/maps_all", "tests/globals", "tests/tailcall", "xdptcp"]
)
@pytest.mark.kmatrix
def test_disassembly_equals_bpftool_xlated(obj: str, pin_dir: Path, tmp_path: Path) -> None:
    need_tool("bpftool")
    path = bpf_object(obj)
    run("bpftool", "prog", "loadall", str(path), str(pin_dir))
    ids = _pinned_ids(pin_dir)
    assert ids
    for prog_id in ids:
        theirs, ours = bpftool_listing(prog_id), our_listing(prog_id, tmp_path)
        assert theirs
        assert ours == theirs


# "   12: 0.....6... (bf) r6 = r0"; instructions inside a loop carry its number in front.
_LIVE = re.compile(r"^\s*(?:\d+\s+)?(\d+): [.0-9]{10} (\(\w\w\) .*)$")


def kernel_listing(log: str) -> dict[int, str]:
    """The instructions as the kernel printed them in a level-2 verifier log."""
    if "Live regs before insn:" not in log:
        pytest.skip("this kernel's verifier log has no 'Live regs before insn' listing")
    lines = {}
    for line in log.split("Live regs before insn:", 1)[1].splitlines():
        m = _LIVE.match(line)
        if m:
            lines[int(m.group(1))] = m.group(2).rstrip()
        elif lines:
            break
    return lines


@pytest.mark.system
@pytest.mark.kmatrix
def test_cpu_v4_and_atomics_equal_the_kernel_disassembler() -> None:
    """Instructions clang 14 never emits, assembled by hand and loaded through pybpf."""
    release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    if release < (6, 9):  # cpu v4 (sdiv, movsx, bswap, gotol...) came in 6.6, may_goto in 6.9
        pytest.skip(f"cpu v4 instructions and may_goto need Linux 6.9 (this is {release})")
    from pybpf.program import Program
    from pybpf.sys.uapi import ProgType

    atomic = Class.STX | Size.DW | Mode.ATOMIC
    prog = [
        isa.call_helper(7),  # bpf_get_prandom_u32: a value the verifier cannot predict
        isa.mov64_reg(6, 0),
        isa.mov64_reg(7, 0),
        alu(Class.ALU64, ALUOp.OR, Source.K, 7, imm=1),
        alu(Class.ALU64, ALUOp.DIV, Source.X, 6, 7, off=1),  # sdiv
        alu(Class.ALU64, ALUOp.MOD, Source.K, 6, off=1, imm=3),  # smod
        alu(Class.ALU64, ALUOp.MOV, Source.X, 3, 6, off=8),  # movsx
        alu(Class.ALU, ALUOp.MOV, Source.X, 3, 6, off=16),
        alu(Class.ALU64, ALUOp.END, Source.K, 3, imm=16),  # bswap16
        alu(Class.ALU, ALUOp.END, Source.X, 3, imm=32),  # be32
        alu(Class.ALU64, ALUOp.NEG, Source.K, 3),
        alu(Class.ALU64, ALUOp.ARSH, Source.K, 3, imm=3),
        isa.stx_mem(Size.DW, 10, 3, -8),
        isa.st_mem(Size.W, 10, -16, -7),
        Instruction(Class.LDX | Size.B | Mode.MEMSX, 4, 10, -8),
        Instruction(atomic, 10, 6, -8, ALUOp.ADD),
        Instruction(atomic, 10, 6, -8, ALUOp.XOR | FETCH),
        Instruction(atomic, 10, 6, -8, XCHG),
        isa.mov64_imm(0, 0),
        Instruction(atomic, 10, 6, -8, CMPXCHG),
        Instruction(Class.JMP32 | JmpOp.JGT | Source.K, 6, 0, 1, 5),
        isa.mov64_imm(4, 1),
        isa.jmp_reg(JmpOp.JSGT, 6, 7, 1),
        isa.mov64_imm(4, 2),
        isa.jmp_imm(JmpOp.JSET, 6, -2, 0),
        Instruction(Class.JMP | 0xE0, 0, 0, 1, 0),  # may_goto pc+1
        Instruction(Class.JMP, 0, 0, -2, 0),  # goto pc-2
        Instruction(Class.JMP32, 0, 0, 0, 0),  # gotol pc+0
        *isa.ld_imm64(5, 0x1122334455667788),
        isa.mov64_imm(0, 2),
        isa.exit_insn(),
    ]
    with Program.load(ProgType.XDP, prog, name="disasm_v4", log_level=2) as p:
        theirs = kernel_listing(p.verifier_log)
    ours = {i: t for i, t in enumerate(disassemble(prog, opcode=True)) if t}
    assert "(3f) r6 s/= r7" in theirs.values()
    assert "(e5) may_goto pc+1" in theirs.values()
    assert ours == theirs
