"""A spliced body put in place of a call to it (``pybpf.object.inline``): where the caller keeps
nothing in r6-r9 across the call, and only there; the jumps around it renumbered; the same
results in the kernel as with the call, and no call left in what the kernel runs."""

from __future__ import annotations

import pytest

from pybpf import ObjectSpec, load
from pybpf.asm import insn as isa
from pybpf.asm.assembler import R0, R1, R2, R6, R7, R10, Assembler
from pybpf.asm.insn import Class, Instruction, JmpOp
from pybpf.object import inline
from pybpf.object.linker import link_program
from tests.conftest import bpf_object

JA = Class.JMP | JmpOp.JA


def inline_spec(**bodies: list) -> ObjectSpec:
    spec = ObjectSpec.from_file(str(bpf_object("tests/inline")))
    for name, insns in bodies.items():
        spec.replace_function(name, insns)
    return spec


def pick_body() -> list:
    """pick(a, b) = a * 10 + b, with two exits."""
    a = Assembler()
    a.mov(R0, R1)
    a.mul(R0, 10)
    a.jeq(R2, 0, "none")
    a.add(R0, R2)
    a.exit()
    a.label("none")
    a.exit()
    return a.assemble()


def kept_body() -> list:
    """kept(a, 3) = a * 3 (clang passes no 3: it made kept() take one argument)."""
    a = Assembler()
    a.mov(R0, R1)
    a.mul(R0, 3)
    a.exit()
    return a.assemble()


def calls_in(insns) -> int:
    return sum(1 for ins in insns if ins.is_pseudo_call)


# --- liveness, renumbering ------------------------------------------------------------------


def test_a_register_read_after_a_call_on_some_path_is_found() -> None:
    a = Assembler()
    a.mov(R6, 1)
    a.call("ktime_get_ns")  # (index 1)
    a.jeq(R0, 0, "skip")
    a.mov(R0, R6)  # r6 read on this path only
    a.label("skip")
    a.exit()
    insns = a.assemble()
    assert inline.read_before_written(insns, 0, len(insns), 2, inline.R6_R9)
    assert not inline.read_before_written(insns, 0, len(insns), 2, 1 << 7)
    a = Assembler()
    a.call("ktime_get_ns")
    a.mov(R6, 2)  # written before any read: free after the call
    a.mov(R0, R6)
    a.exit()
    insns = a.assemble()
    assert not inline.read_before_written(insns, 0, len(insns), 1, inline.R6_R9)


def test_a_read_is_found_round_a_loop() -> None:
    a = Assembler()
    a.mov(R7, 0)
    a.label("top")
    a.call("ktime_get_ns")  # (index 1) r7 is read at the top of the next round
    a.add(R7, 1)
    a.jlt(R7, 10, "top")
    a.mov(R0, 0)
    a.exit()
    insns = a.assemble()
    assert inline.read_before_written(insns, 0, len(insns), 2, 1 << 7)
    assert not inline.read_before_written(insns, 0, len(insns), 2, 1 << 8)


def test_a_body_that_reads_more_than_its_arguments_or_uses_the_stack_is_not_put_in_place() -> None:
    a = Assembler()
    a.mov(R0, R6)  # the caller's r6 would be read
    a.exit()
    assert not inline.body_reads_only_arguments(a.assemble())
    a = Assembler()
    a.stx("dw", R10, -8, R1)
    a.mov(R0, 0)
    a.exit()
    assert not inline.body_reads_only_arguments(a.assemble())
    assert inline.body_reads_only_arguments(pick_body())


def test_expand_renumbers_the_jumps_around_the_call_and_turns_exits_into_jumps_past_the_body() -> (
    None
):
    mov = isa.mov64_imm
    insns = [
        isa.jmp_imm(JmpOp.JEQ, 1, 0, 3),  # 0: over the call, to 4
        isa.jmp_imm(JmpOp.JEQ, 1, 1, 1),  # 1: to the call itself
        mov(0, 1),  # 2
        Instruction(isa.CALL, src=isa.PSEUDO_CALL, imm=2),  # 3: the call (to 6)
        mov(0, 2),  # 4
        Instruction(JA, off=-5),  # 5: back to 1
        isa.exit_insn(),  # 6: the stub
    ]
    body = pick_body()  # 6 instructions, exits at 4 and 5
    out = inline.expand(insns, 3, body)
    n = len(body)
    assert len(out) == len(insns) + n - 1
    assert out[3 : 3 + n] == inline.in_place(body)
    assert [ins.code for ins in out[3 : 3 + n]].count(isa.EXIT) == 0
    assert out[3 + 4] == Instruction(JA, off=1) and out[3 + 5] == Instruction(JA, off=0)
    assert 0 + 1 + out[0].off == 3 + n  # the jump over the call lands after the body
    assert 1 + 1 + out[1].off == 3  # the jump to the call lands on the body's first
    assert (3 + n + 1) + 1 + out[3 + n + 1].off == 1  # the jump back still reaches 1


def test_a_jump_that_would_no_longer_reach_or_a_long_body_keeps_the_call() -> None:
    assert inline.fits(32767 - 100, 100, 101)
    assert not inline.fits(32767 - 100, 101, 102)
    assert inline.fits(0, 4095, 4096) and not inline.fits(0, 4096, 4097)


# --- linking ----------------------------------------------------------------------------------


def test_the_asm_call_sites_take_the_body_and_the_plain_call_keeps_its_call() -> None:
    spec = inline_spec(pick=pick_body(), kept=kept_body())
    before = link_program(inline_spec(), spec.programs["xdp_inline"])  # stubs as compiled
    linked = link_program(spec, spec.programs["xdp_inline"])
    inlined = [p for p in linked.pieces if p.inlined]
    assert [p.function for p in inlined] == ["pick", "pick"]
    for p in inlined:
        assert linked.insns[p.start : p.start + p.length] == tuple(inline.in_place(pick_body()))
    # kept(): the caller reads r6-r9 after it, so it is still called, and appended; first()
    # calls pick() as its first instruction (where first's func_info and line_info begin), so
    # that call stays too, and pick() is appended as well
    assert linked.subprograms == ["kept", "first", "pick"]
    assert [callee for _, _, callee in linked.calls] == ["kept", "first", "pick"]
    starts = {p.function: p.start for p in linked.pieces if not p.inlined}
    for call, _, callee in linked.calls:
        assert call + 1 + linked.insns[call].imm == starts[callee]
    assert linked.insns[starts["first"]].is_pseudo_call  # the call kept at first's start
    assert linked.insns[starts["pick"] : starts["pick"] + len(pick_body())] == tuple(pick_body())
    # func_info: the program and each function called, none for pick() in place; line_info in
    # order, none in a body put in place
    assert [f.insn_idx for f in linked.func_info] == [
        0, starts["kept"], starts["first"], starts["pick"]
    ]  # fmt: skip
    lines = [li.insn_idx for li in linked.line_info]
    assert lines == sorted(lines) and lines[0] == 0
    assert not [i for i in lines for p in inlined if p.start <= i < p.start + p.length]
    # the map references moved with the code after each body
    assert len(linked.relocations) == len(before.relocations)
    for r in linked.relocations:
        assert linked.insns[r.insn_idx].is_ld_imm64
    # not inlined without a replaced body: the stub is a function like any other
    assert before.subprograms == ["pick", "kept", "first"] and not any(
        p.inlined for p in before.pieces
    )


def test_a_global_function_is_not_put_in_place() -> None:
    """The verifier checks a global function once, on its own, for all callers: in place it
    would be checked at each call. (tests/subprog's global_add, whose caller keeps nothing in
    r6-r9 across the call.)"""
    spec = ObjectSpec.from_file(str(bpf_object("tests/subprog")))
    spec.replace_function("global_add", kept_body())
    linked = link_program(spec, spec.programs["xdp_calls"])
    assert "global_add" in linked.subprograms and not any(p.inlined for p in linked.pieces)


def test_pybpf_disasm_shows_the_body_in_place() -> None:
    from pybpf.describe import describe, disassemble_program

    spec = inline_spec(pick=pick_body())
    out = "\n".join(disassemble_program(spec, spec.programs["xdp_inline"]))
    assert out.count("pick (inlined: 6 generated instructions in place of the call") == 2
    assert out.count("xdp_inline (continued):") == 2
    (prog,) = describe(spec)["programs"]
    assert prog["inlined"] == ["pick", "pick"]
    assert prog["subprograms"] == ["kept", "first", "pick"]


# --- in the kernel ----------------------------------------------------------------------------


def run_inline(spec: ObjectSpec, frame_len: int) -> tuple[list[int], int]:
    """The three results for a frame, and how many bpf-to-bpf calls the kernel runs."""
    with load(spec, programs=["xdp_inline"]) as obj:
        prog = obj.programs["xdp_inline"]
        assert prog.test_run(bytes(frame_len)).retval == 2  # XDP_PASS
        results = [int.from_bytes(obj.maps["results"][k], "little") for k in range(4)]
        return results, calls_in(isa.decode(prog.xlated()))


@pytest.mark.system
@pytest.mark.kmatrix
@pytest.mark.parametrize("frame_len", [60, 200])
def test_in_place_the_kernel_gives_what_the_calls_gave(
    frame_len: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = inline_spec(pick=pick_body(), kept=kept_body())
    in_place, calls = run_inline(spec, frame_len)
    a = frame_len * 10 + 1
    want = [a, frame_len * 10 + 2 if frame_len <= 100 else 7, frame_len * 4, frame_len * 10 + a + 5]
    assert in_place == want
    assert calls == 3  # kept(), first() and its call of pick()
    monkeypatch.setattr(inline, "fits", lambda *args: False)  # every call kept
    called, calls = run_inline(inline_spec(pick=pick_body(), kept=kept_body()), frame_len)
    assert called == want and calls == 5


# --- xdptcp's capture programs ----------------------------------------------------------------


IN_PLACE = {"xdp_capture": 1, "xdptcp_walk": 1}


@pytest.mark.parametrize("hosts, sites", [(1, IN_PLACE), (330, IN_PLACE), (340, {})])
def test_xdptcps_filter_is_put_in_place_of_each_call_unless_it_is_long(
    hosts: int, sites: dict
) -> None:
    """The XDP program and the record walker call the filter so that its body can take the
    call's place (bpf/xdptcp.h, call_filter); the tc program calls it plainly (see ask_filter_
    called in bpf/xdptcp.bpf.c). Up to ``INLINE_MAX`` instructions: 330 hosts (3,997) go in
    place, 340 (4,117) stay a function."""
    from xdptcp.pcapfilter import compile_filter

    flt = compile_filter(" or ".join(f"host 198.18.{n // 250}.{n % 250 + 1}" for n in range(hosts)))
    for obj, programs in (
        ("xdptcp", ("xdp_capture", "tc_capture")),
        ("xdptcp_walk", ("xdptcp_walk",)),
    ):
        spec = ObjectSpec.from_file(str(bpf_object(obj)))
        spec.replace_function("xdptcp_filter", flt.code()["xdptcp_filter"])
        for name in programs:
            linked = link_program(spec, spec.programs[name])
            inlined = [p for p in linked.pieces if p.inlined]
            assert len(inlined) == sites.get(name, 0), name
            assert ("xdptcp_filter" in linked.subprograms) == (not inlined), name
