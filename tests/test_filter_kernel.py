"""The generated filters in the running kernel: every one passes the verifier, and the program
captures exactly the frames the Python VM (``xdptcp -r``) accepts, frame by frame."""

from __future__ import annotations

import pytest

from pybpf import ObjectSpec, load
from tests.conftest import bpf_object
from tests.filter_gen import expressions
from tests.test_filter import EXPRESSIONS, varied_frames
from xdptcp.pcapfilter import FilterError, compile_filter
from xdptcp.record import Verdict, parse_frame, sum_counters

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]
ETH_HLEN = 14  # BPF_PROG_TEST_RUN refuses shorter XDP frames


def compilable(exprs: list[str]) -> list[str]:
    out = []
    for e in exprs:
        try:
            compile_filter(e)
        except FilterError:
            continue
        out.append(e)
    return out


# Every hand-written expression, and every 30th generated one: each is a verifier run.
KERNEL_SET = list(dict.fromkeys(EXPRESSIONS + compilable(expressions())[::30]))


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return [f for f in varied_frames(count=150) if len(f) >= ETH_HLEN]


@pytest.fixture(scope="module")
def object_bytes() -> bytes:
    return bpf_object("xdptcp").read_bytes()


@pytest.mark.parametrize("expr", KERNEL_SET)
def test_generated_filter_verifies_and_matches_the_vm(object_bytes, frames, expr: str) -> None:
    flt = compile_filter(expr)
    spec = ObjectSpec.from_bytes(object_bytes, "xdptcp.bpf.o")
    for name, insns in flt.code().items():
        spec.replace_function(name, insns)
    spec.rodata.update_from(flt.rodata_values())
    with load(spec, programs=["xdp_capture"]) as obj:
        prog, counters = obj.programs["xdp_capture"], obj.maps["xdptcp_counters"]
        matched, disagree = 0, []
        for i, frame in enumerate(frames):
            prog.test_run(frame)
            now = sum_counters(counters[0])["matched"]
            kernel, matched = now - matched, now
            want = parse_frame(frame)[0] is Verdict.TCP and flt.matches(frame)
            if kernel != want:
                disagree.append(i)
    assert disagree == []


def test_http_request_filter_is_small_and_verifies(object_bytes) -> None:
    flt = compile_filter("tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420")
    assert len(flt.insns) < 80
    spec = ObjectSpec.from_bytes(object_bytes, "xdptcp.bpf.o")
    spec.replace_function("xdptcp_filter", flt.insns)
    spec.rodata.update_from(flt.rodata_values())
    with load(spec, programs=["xdp_capture"]):
        pass
