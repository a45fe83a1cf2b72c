"""The assembler (labels, long jumps, registers, helpers) and splicing generated code into an
object's stub subprogram, checked in both byte orders and, in the kernel, by the verifier."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable, Optional

import pytest

from pybpf import ObjectSpec, load
from pybpf.asm import insn as isa
from pybpf.asm.assembler import R0, R1, R2, R6, R10, Assembler, AssemblerError
from pybpf.asm.disasm import listing
from pybpf.asm.insn import Class, JmpOp
from pybpf.object.linker import link_program
from pybpf.object.splice import SpliceError
from tests.conftest import ROOT, bpf_object, cannot_run


def target_of(insns: list, i: int) -> int:
    ins = insns[i]
    return i + 1 + ins.off


def follow(insns: list, i: int) -> int:
    """Where control ends up from jump ``i`` taken, through any chain of ``ja``."""
    j = target_of(insns, i)
    while insns[j].code == Class.JMP | JmpOp.JA:
        j = target_of(insns, j)
    return j


def test_labels_resolve_forward_and_backward() -> None:
    a = Assembler()
    a.mov(R0, 0)
    a.label("top")
    a.add(R0, 1)
    a.jlt(R0, 10, "top")  # backward
    a.jeq(R1, 0, "out")  # forward
    a.mov(R0, 2)
    a.label("out")
    a.exit()
    insns = a.assemble()
    assert [i.off for i in insns if i.is_jump] == [-2, 1]
    assert listing(insns).splitlines()[2].endswith("if r0 < 0xa goto pc-2")


def far_target(
    a: Assembler, gap: int, filler: Optional[Callable[[Assembler], object]] = None
) -> list:
    """``a``'s code (which jumps to "far"), ``gap`` filler instructions (``r0 = 0`` unless
    ``filler`` adds another), then at "far": ``r0 = 42; exit``. Assembled."""
    fill = filler or (lambda a: a.mov(R0, 0))
    for _ in range(gap):
        fill(a)
    a.label("far")
    a.mov(R0, 42)
    a.exit()
    return a.assemble()


def test_far_conditional_jump_becomes_inverse_over_ja() -> None:
    a = Assembler()
    a.jeq(R1, 7, "far")
    insns = far_target(a, 40000)
    assert insns[0].code == Class.JMP | JmpOp.JNE | isa.Source.K and insns[0].off == 1
    assert insns[1].code == Class.JMP | JmpOp.JA
    assert insns[follow(insns, 1)] == isa.mov64_imm(0, 42)
    assert insns[target_of(insns, 0)] == isa.mov64_imm(0, 0)  # r1 != 7: over the ja


def test_far_jset_has_no_inverse_and_takes_three_instructions() -> None:
    a = Assembler()
    a.jset(R1, 4, "far")
    a.mov(R0, 1)
    insns = far_target(a, 33000)
    assert [i.off for i in insns[:2]] == [1, 1] and insns[2].code == Class.JMP | JmpOp.JA
    assert insns[follow(insns, 0)] == isa.mov64_imm(0, 42)
    assert insns[target_of(insns, 1)] == isa.mov64_imm(0, 1)  # not taken: falls through


def test_a_ja_beyond_16_bits_goes_through_an_island() -> None:
    """No gotol (Linux 6.3+): a ja half way, jumped over by the code around it."""
    a = Assembler()
    a.ja("far")
    insns = far_target(a, 70000)
    assert all(-(1 << 15) <= i.off < (1 << 15) for i in insns)
    assert insns[follow(insns, 0)] == isa.mov64_imm(0, 42)
    islands = [j for j, i in enumerate(insns) if i.code == Class.JMP | JmpOp.JA and j]
    skip = islands[0]  # the code before the island jumps over it
    assert insns[skip].off == 1 and insns[skip + 2] == isa.mov64_imm(0, 0)
    assert len(insns) == 70003 + len(islands)  # each island: a skip and a ja


def test_an_island_never_splits_an_ld_imm64() -> None:
    a = Assembler()
    a.ja("far")
    insns = far_target(a, 20000, lambda a: a.ld_imm64(R2, 0x1122334455667788))
    for j, i in enumerate(insns):
        if i.code == 0:  # the second half must follow its first half
            assert insns[j - 1].is_ld_imm64
    assert insns[follow(insns, 0)] == isa.mov64_imm(0, 42)


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda a: a.mov(R10, 1), "read-only frame pointer"),
        (lambda a: a.ldx("w", R10, R1, 0), "read-only frame pointer"),
        (lambda a: a.add("r11", 1), "not a register"),
        (lambda a: a.mov("x1", 1), "not a register"),
        (lambda a: a.mov(R0, 1 << 32), "does not fit 32 bits"),
        (lambda a: a.div(R0, 0), "division by the constant 0"),
        (lambda a: a.ldx("q", R0, R1, 0), "size 'q'"),
        (lambda a: a.ldx("w", R0, R1, 1 << 15), "does not fit 16 bits"),
        (lambda a: a.call("no_such_helper"), "no helper named"),
        (lambda a: (a.label("x"), a.label("x")), "placed twice"),
        (lambda a: a.ja("nowhere"), "undefined label 'nowhere'"),
    ],
)
def test_mistakes_are_named(build, words: str) -> None:
    a = Assembler()
    with pytest.raises(AssemblerError, match=words):
        build(a)
        a.assemble()


def test_registers_by_name_and_stores_through_the_frame_pointer() -> None:
    a = Assembler()
    a.mov("r6", "r1")
    a.stx("dw", R10, -8, R6)
    a.st("w", "fp", -12, 7)
    a.call("bpf_ktime_get_ns")
    a.call("xdp_load_bytes")
    a.exit()
    out = listing(a.assemble())
    assert "r6 = r1" in out and "*(u64 *)(r10 -8) = r6" in out and "*(u32 *)(r10 -12) = 7" in out
    assert "call bpf_ktime_get_ns#5" in out and "call bpf_xdp_load_bytes#189" in out


@pytest.mark.parametrize("little", [True, False])
def test_assembled_code_encodes_in_both_byte_orders(little: bool) -> None:
    a = Assembler()
    a.ldx("h", R0, R6, 12)
    a.jne32(R0, 0x0008, "out")
    a.ld_imm64(R1, -2)
    a.label("out")
    a.exit()
    insns = a.assemble()
    raw = isa.encode(insns, little_endian=little)
    assert isa.decode(raw, little_endian=little) == insns
    assert raw[1] == ((6 << 4 | 0) if little else (0 << 4 | 6))  # the register nibbles swap


# --- splicing -------------------------------------------------------------------------------


def body(value: int) -> list:
    a = Assembler()
    a.mov(R0, value)
    a.exit()
    return a.assemble()


def subprog_spec(order: str = "el") -> ObjectSpec:
    if order == "el":
        return ObjectSpec.from_file(str(bpf_object("tests/subprog")))
    clang = shutil.which("clang")
    if clang is None:
        cannot_run("clang is not installed")
    out = Path(f"/tmp/subprog-eb-{__import__('os').getpid()}.bpf.o")
    subprocess.run(
        [clang, "-O2", "-g", "-target", "bpfeb", "-I", str(ROOT / "bpf/include"), "-I",
         "/usr/include/x86_64-linux-gnu", "-c", str(ROOT / "bpf/tests/subprog.bpf.c"),
         "-o", str(out)],
        check=True,
    )  # fmt: skip
    try:
        return ObjectSpec.from_file(str(out))
    finally:
        out.unlink()


@pytest.mark.parametrize("order", ["el", "eb"])
def test_a_spliced_body_replaces_the_stub_in_the_linked_program(order: str) -> None:
    spec = subprog_spec(order)
    before = link_program(spec, spec.programs["xdp_calls"])
    spec.replace_function("global_add", body(7))
    after = link_program(spec, spec.programs["xdp_calls"])
    (piece,) = [p for p in after.pieces if p.function == "global_add"]
    assert piece.replaced and after.insns[piece.start : piece.start + piece.length] == tuple(
        body(7)
    )
    (old,) = [p for p in before.pieces if p.function == "global_add"]
    assert len(after.insns) == len(before.insns) - old.length + 2
    # the call lands on the new body; func_info and line_info each keep one record there
    (call,) = [i for i, kind, callee in after.calls if callee == "global_add"]
    assert call + 1 + after.insns[call].imm == piece.start
    assert [f.insn_idx for f in after.func_info].count(piece.start) == 1
    inside = [
        li.insn_idx
        for li in after.line_info
        if piece.start <= li.insn_idx < piece.start + piece.length
    ]
    assert inside == [piece.start]
    # relocations of other pieces moved with them, none points into the new body
    assert all(
        not piece.start <= r.insn_idx < piece.start + piece.length for r in after.relocations
    )
    assert len(after.relocations) == len(before.relocations)


@pytest.mark.parametrize(
    "name, insns, words",
    [
        ("nope", body(1), "no such function"),
        ("xdp_calls", body(1), "it is a program"),
        ("global_add", [], "non-empty"),
        ("global_add", body(1)[:1], "must end in exit"),
        ("global_add", [isa.Instruction(isa.CALL, 0, isa.PSEUDO_CALL, 0, 3), *body(1)], "calls a"),
        ("global_add", [*isa.ld_map_fd(1, 3), *body(1)], "map or symbol"),
        ("global_add", [isa.jmp_imm(JmpOp.JEQ, 1, 0, 5), *body(1)], "outside the new body"),
    ],
)
def test_a_bad_splice_is_refused_by_name(name: str, insns: list, words: str) -> None:
    spec = subprog_spec()
    with pytest.raises(SpliceError, match=words):
        spec.replace_function(name, insns)


@pytest.mark.system
def test_a_spliced_program_passes_the_verifier_and_runs() -> None:
    spec = subprog_spec()
    a = Assembler()  # global_add(a, b) becomes a * b + 1, with a jump and a label
    a.mov(R0, R1)
    a.mul(R0, R2)
    a.jeq(R0, 0, "zero")
    a.add(R0, 1)
    a.label("zero")
    a.exit()
    spec.replace_function("global_add", a.assemble())
    with load(spec, programs=["xdp_calls"]) as obj:
        frame = bytes(60)
        res = obj.programs["xdp_calls"].test_run(frame)
        assert res.retval == 2  # XDP_PASS
        slot2 = obj.maps["results"][2]
        assert int.from_bytes(slot2, "little") == 60 * 100 + 1  # len * 100 + 1


def test_pybpf_disasm_marks_the_spliced_function() -> None:
    from pybpf.describe import disassemble_program

    spec = subprog_spec()
    spec.replace_function("global_add", body(5))
    out = "\n".join(disassemble_program(spec, spec.programs["xdp_calls"]))
    assert "global_add (from .text, replaced by 2 generated instructions):" in out
    after = out.split("replaced by 2 generated instructions):")[1]
    assert [line.split(": ", 1)[1] for line in after.splitlines() if ": " in line][:2] == [
        "r0 = 5",
        "exit",
    ]
