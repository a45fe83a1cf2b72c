"""The filter written out as Python (``pycode``) answers what the instruction-by-instruction VM
answers, on every expression of the filter corpus and every frame, also cut short by a snap
length and with a wire length other than the captured one; and it runs in place, on a record
inside a larger buffer. The VM stays the reference (test_filter_generated.py holds it to
libpcap)."""

from __future__ import annotations

import os
import random

import pytest

from tests.filter_gen import expressions
from tests.test_filter import varied_frames
from tests.test_filter_generated import regression_list
from xdptcp.pcapfilter import FilterError, compile_filter, pycode
from xdptcp.pcapfilter.vm import runner


def cases() -> list[tuple[bytes, int]]:
    """(captured bytes, wire length): whole frames, frames cut by a snap length, frames whose
    wire length is below what was captured (a damaged record), and empty ones."""
    rnd = random.Random(3)
    out = []
    for f in varied_frames():
        out.append((f, len(f)))
        cut = rnd.randrange(len(f) + 1)
        out.append((f[:cut], len(f)))
        out.append((f, rnd.randrange(len(f) + 1)))
    return out + [(b"", 0), (b"", 60)]


@pytest.fixture(scope="module")
def frames() -> list[tuple[bytes, int]]:
    return cases()


def disagreements(expr: str, frames) -> list[int]:
    try:
        flt = compile_filter(expr)
    except FilterError:
        return []
    ref = runner(flt.insns)
    fast = pycode.translate(flt.insns)
    if fast is None:
        why = "translated, yet no function"
        try:
            pycode.source(flt.insns)
        except pycode.Unsupported as e:
            why = str(e)
        # protochain's unrolled walk of IPv6 headers has too many paths to write out: -r runs
        # the VM. Nothing else may be left to it, nor that for any other reason.
        assert "protochain" in expr and why in ("too many paths", "paths nested too deeply"), (
            f"{expr!r} is not written out: {why}"
        )
        return []
    pad = b"\xa5" * 7  # the record sits inside a buffer: nothing outside it may be read
    out = []
    for i, (d, w) in enumerate(frames):
        for length in (w, w + 1000):
            if fast(pad + d + pad, len(pad), len(d), w, length) != ref(d, w, length):
                out.append(i)
    return out


@pytest.mark.parametrize("expr", regression_list() + ["port 443", "tcp", "ip6 and len > 100"])
def test_regressions_answer_as_the_vm(frames, expr: str) -> None:
    assert disagreements(expr, frames) == []


def test_generated_expressions_answer_as_the_vm(frames) -> None:
    exprs = expressions()
    step = 1 if os.environ.get("XDPTCP_FILTER_ALL") else 4
    bad = {e: d[:5] for e in exprs[::step] if (d := disagreements(e, frames))}
    assert bad == {}


def test_matches_runs_the_written_out_function() -> None:
    flt = compile_filter("tcp port 80")
    assert pycode.translate(flt.insns) is not None
    assert "def prog(buf, at, n, wire_len, length):" in pycode.source(flt.insns)
    assert "pc" not in pycode.source(flt.insns)  # no program counter: paths written out


def test_programs_outside_the_model_are_left_to_the_vm() -> None:
    from pybpf.asm.insn import Class, Instruction, JmpOp

    back = [Instruction(Class.JMP | JmpOp.JA, off=-1), Instruction(Class.JMP | JmpOp.EXIT)]
    assert pycode.translate(back) is None
