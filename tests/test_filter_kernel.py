"""The generated filters in the running kernel: every one passes the verifier, and the program
captures exactly the frames the Python VM (``xdptcp -r``) accepts, frame by frame."""

from __future__ import annotations

import pytest

from pybpf import ObjectSpec, load
from tests.conftest import IN_GUEST, bpf_object
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
# Also a filter the optimizer reduces to "accept": its function has no reject path at all (the
# verifier refuses unreachable instructions).
ACCEPT_ALL = "!(tcp[13] == 80) or not dst 2001:db8::1"
if IN_GUEST:
    # Two verifier runs take seconds in an emulated kernel-matrix guest (and compiling every
    # generated expression to pick some, minutes): every 7th hand-written expression there, the
    # compilable ones of every 210th generated, and the accept-all filter.
    KERNEL_SET = list(
        dict.fromkeys(EXPRESSIONS[::7] + compilable(expressions()[::210]) + [ACCEPT_ALL])
    )
else:
    KERNEL_SET = list(dict.fromkeys(EXPRESSIONS + compilable(expressions())[::30] + [ACCEPT_ALL]))


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return [f for f in varied_frames(count=150) if len(f) >= ETH_HLEN]


@pytest.fixture(scope="module")
def object_bytes() -> bytes:
    return bpf_object("xdptcp").read_bytes()


@pytest.mark.parametrize("expr", KERNEL_SET)
def test_generated_filter_verifies_and_matches_the_vm(object_bytes, frames, expr: str) -> None:
    """Both programs (XDP ingress, tc egress) call the same spliced filter. Loaded as xdptcp
    loads them where the kernel has multi-buffer XDP (5.18): the XDP program asks a frame's
    whole length before the filter when the filter reads it, and else works it out from the
    headers; every fifth filter also as on older kernels, without the helpers."""
    verifies_and_matches(object_bytes, frames, expr, frags=1)
    if KERNEL_SET.index(expr) % 5 == 0:
        verifies_and_matches(object_bytes, frames, expr, frags=0)


@pytest.mark.parametrize("expr", KERNEL_SET[::4])
def test_a_filter_laid_out_spread_verifies_and_matches_the_vm(
    object_bytes, frames, monkeypatch, expr: str
) -> None:
    """Every fourth of them laid out spread, as the long filters are (``codegen.generate``)."""
    from xdptcp.pcapfilter import codegen

    monkeypatch.setattr(codegen, "SPREAD_FROM", -1)
    verifies_and_matches(object_bytes, frames, expr, frags=1)


def verifies_and_matches(object_bytes, frames, expr: str, frags: int = 0) -> None:
    flt = compile_filter(expr)
    spec = ObjectSpec.from_bytes(object_bytes, "xdptcp.bpf.o")
    for name, insns in flt.code().items():
        spec.replace_function(name, insns)
    spec.rodata.update_from({**flt.rodata_values(), "xdptcp_xdp_frags": frags})
    want = [parse_frame(f)[0] is Verdict.TCP and flt.matches(f) for f in frames]
    with load(spec) as obj:
        counters = obj.maps["xdptcp_counters"]
        for prog_name in ("xdp_capture", "tc_capture"):
            prog, matched, got = obj.programs[prog_name], sum_counters(counters[0])["matched"], []
            for frame in frames:
                prog.test_run(frame)
                now = sum_counters(counters[0])["matched"]
                got.append(now - matched == 1)
                matched = now
            assert [i for i, (g, w) in enumerate(zip(got, want)) if g != w] == [], prog_name


def test_the_kernel_runs_the_filter_in_place_of_its_call(object_bytes) -> None:
    """A call and its return cost some 9 ns a frame here, a tenth of the XDP program's time
    (bench/README): the XDP program calls the filter from an asm statement that leaves r6-r9
    free (bpf/xdptcp.h, call_filter), and the loader puts its body in place of the call
    (pybpf.object.inline). What the kernel runs holds no bpf-to-bpf call. The tc program keeps
    its two calls (ask_filter_called in bpf/xdptcp.bpf.c)."""
    from pybpf.asm import insn as isa

    flt = compile_filter("port 443")
    spec = ObjectSpec.from_bytes(object_bytes, "xdptcp.bpf.o")
    spec.replace_function("xdptcp_filter", flt.code()["xdptcp_filter"])
    spec.rodata.update_from({**flt.rodata_values(), "xdptcp_xdp_frags": 1})
    with load(spec, programs=["xdp_capture", "tc_capture"]) as obj:
        calls = {}
        for name in ("xdp_capture", "tc_capture"):
            xlated = isa.decode(obj.programs[name].xlated())
            calls[name] = len([i for i in xlated if i.is_pseudo_call])
        assert calls == {"xdp_capture": 0, "tc_capture": 2}


def test_a_filter_that_reads_len_is_told_a_multi_buffer_frames_whole_length(object_bytes):
    """libpcap's `len` is the whole frame's length, which only bpf_xdp_get_buff_len() knows for
    a frame in several buffers: the XDP program asks it of every frame, before the filter, when
    the filter reads `len` (`greater`, `less`). For a filter that does not, it asks only of a
    frame that may reach past its first buffer. A frame made to look whole in its first buffer
    (its IP packet ends right there, and more bytes follow in the next) is then recorded with
    its first buffer's length, as without a filter: the limit bpf/xdptcp.bpf.c names."""
    from pybpf.ringbuf import RingBuffer
    from tests.test_filter import ether, ipv4, tcp_header
    from xdptcp.record import decode

    def frame(first: int, more: int) -> bytes:
        """An IPv4 TCP frame whose IP packet ends at byte ``first``, then ``more`` bytes."""
        th = tcp_header(40000, 443, 0x10)
        return ether(ipv4("198.18.0.1", "198.18.0.2", th + bytes(first - 54)), 0x800) + bytes(more)

    def capture(expr: str, frames: list[bytes]) -> list[tuple[int, int]]:
        """(matched, recorded wire length or 0) for each frame."""
        flt = compile_filter(expr)
        spec = ObjectSpec.from_bytes(object_bytes, "xdptcp.bpf.o")
        spec.replace_function("xdptcp_filter", flt.code()["xdptcp_filter"])
        spec.rodata.update_from({**flt.rodata_values(), "xdptcp_xdp_frags": 1})
        out = []
        with load(spec, programs=["xdp_capture"]) as obj:
            prog, counters = obj.programs["xdp_capture"], obj.maps["xdptcp_counters"]
            with RingBuffer.from_map(obj.maps["xdptcp_ring"]) as ring:
                for f in frames:
                    before = sum_counters(counters[0])["matched"]
                    prog.test_run(f)
                    records = [decode(r) for r in ring.drain()]
                    matched = sum_counters(counters[0])["matched"] - before
                    out.append((matched, records[0].wire_len if records else 0))
        return out

    assert not compile_filter("tcp").reads_len and compile_filter("greater 4000").reads_len
    # The kernel's test run puts the first page's worth of a long frame (less its head- and
    # tailroom) in the first buffer: found as the one place where the frame looks whole.
    more = 600
    probes = capture("tcp", [frame(first, more) for first in range(3000, 4097)])
    short = [first for first, (_, wire) in zip(range(3000, 4097), probes) if wire != first + more]
    assert len(short) == 1, short
    first = short[0]
    assert probes[first - 3000] == (1, first)  # taken for the first buffer's length
    whole = frame(first, more)
    # Told the whole length, `greater` selects it, and the record has it.
    assert capture(f"greater {first + 1}", [whole, frame(first + 8, more)]) == [
        (1, first + more),
        (1, first + 8 + more),
    ]
    assert capture(f"less {first}", [whole]) == [(0, 0)]


def test_http_request_filter_is_small_and_verifies(object_bytes) -> None:
    flt = compile_filter("tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420")
    assert len(flt.insns) < 80
    spec = ObjectSpec.from_bytes(object_bytes, "xdptcp.bpf.o")
    spec.replace_function("xdptcp_filter", flt.insns)
    spec.rodata.update_from(flt.rodata_values())
    with load(spec) as obj:
        assert set(obj.programs) == {"xdp_capture", "xdp_capture_all", "tc_capture"}


def test_a_chain_of_3000_hosts_verifies_and_matches_the_vm(object_bytes, frames) -> None:
    """48,000 instructions: accept and reject copied every few thousand (jumps reach 32767).
    Loaded as xdptcp loads it where the kernel has multi-buffer XDP (5.18): its copy loop
    then covers 256 bytes, not the whole capacity, for the verifier to follow.

    Both programs ask the filter before their parser, where they are in one state, so the
    verifier follows the filter once (Linux 6.1's gave up on 1000 hosts at its million
    instructions when the filter came after the parser). Each term jumps on to the next and
    falls through to its way out, so the verifier keeps a few branches waiting: with jumps out,
    the tc program, which asks the filter again after pulling headers, left more than 8192
    waiting at 3000 hosts ("The sequence of 8193 jumps is too complex")."""
    hosts = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(3000)]
    text = " or ".join(f"host {h}" for h in hosts)
    verifies_and_matches(object_bytes, frames, text, frags=1)


def test_a_filter_too_large_for_the_kernel_is_one_line_naming_the_limit(
    object_bytes, monkeypatch
) -> None:
    """9000 terms laid out as a short filter is (not spread): each jumps out to accept, and
    leaves a branch waiting until the chain ends, more than the kernel keeps (8192). Refused
    before loading, in one line; the kernel refuses it too. (A shape spreading cannot help,
    pairs of alternatives joined by `and`, took 6.1's emulated verifier 20 minutes to refuse:
    test_filter checks it without the kernel.)"""
    from pybpf.errors import BPFError
    from xdptcp.pcapfilter import FilterTooLarge, codegen

    monkeypatch.setattr(codegen, "SPREAD_FROM", 10**9)
    flt = compile_filter(" or ".join(f"ip[16:4] = {i}" for i in range(9000)))
    with pytest.raises(FilterTooLarge) as info:
        flt.code()
    assert "\n" not in str(info.value) and "8000" in str(info.value)
    spec = ObjectSpec.from_bytes(object_bytes, "xdptcp.bpf.o")  # the kernel agrees
    spec.replace_function("xdptcp_filter", flt.insns)
    spec.rodata.update_from(flt.rodata_values())
    with pytest.raises(BPFError):
        load(spec).close()
