"""Thousands of generated filter expressions against libpcap itself, packet by packet.

For every expression of tests/filter_gen.py (and every line of tests/filter_regressions.txt):
libpcap compiles it (pcap_compile, optimized, netmask 0, as ``tcpdump -r``) and filters each
frame (pcap_offline_filter); xdptcp compiles it to eBPF and its VM runs it on the same frames.
On every TCP frame the two must agree; what libpcap refuses, xdptcp must refuse; what xdptcp
refuses as never matching a TCP frame, libpcap must select no TCP frame with.

Known differences, each from libpcap's optimizer rather than from the filter language, are
listed in KNOWN below with the reason; they are counted, not failed. XDPTCP_FILTER_PCAPS (a list
of pcap files, colon-separated) adds frames from real captures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.filter_gen import expressions
from tests.libpcap import LibPcap
from tests.test_filter import varied_frames
from xdptcp.pcapfilter import FilterError, compile_filter
from xdptcp.record import Verdict, parse_frame

REGRESSIONS = Path(__file__).with_name("filter_regressions.txt")
# libpcap refuses after optimizing: "expression rejects all packets" when its optimizer proves
# the filter false, and "division by zero"/"modulus by zero" when it folds a divisor it wrongly
# takes for the constant 0 (ether[12:2] / tcp[0]). xdptcp compiles these; the first kind
# selects nothing on TCP frames, as libpcap would have.
OPTIMIZER_REFUSES = ("expression rejects all packets", "division by zero", "modulus by zero")
# libpcap's optimizer removes a comparison whose both outcomes lead to the same place, and its
# loads with it: `tcp[20:2] <= 64 or tcp` never reads tcp[20:2], so a frame without those bytes
# is not rejected. xdptcp keeps classic BPF's rule (a load past the end rejects).
OPTIMIZER_DROPS_LOADS = "optimizer drops a load"


def regression_list() -> list[str]:
    lines = REGRESSIONS.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def tcp_frames() -> list[tuple[bytes, int]]:
    frames = [(f, len(f)) for f in varied_frames()]
    for path in filter(None, os.environ.get("XDPTCP_FILTER_PCAPS", "").split(":")):
        from xdptcp.pcap import PcapReader

        with PcapReader(path) as reader:
            frames += [(data, wire) for _, data, wire in reader]
    return [(d, w) for d, w in frames if parse_frame(d)[0] is Verdict.TCP]


def compare(libpcap: LibPcap, frames, expr: str) -> str:
    """'' when xdptcp agrees with libpcap on ``expr``, else what differs."""
    prog, err = libpcap.compile(expr)
    try:
        ours = compile_filter(expr)
    except FilterError as e:
        if prog is None:
            return ""
        # xdptcp proves some filters empty that libpcap's optimizer does not (`vlan 10 and
        # ether[12:2] == 2048`): refused here, compiled there, the same packets either way.
        if "rejects all packets" in str(e) and not any(
            libpcap.matches(prog, d, w) for d, w in frames
        ):
            libpcap.free(prog)
            return ""
        try:
            if "never match" in str(e) and not any(libpcap.matches(prog, d, w) for d, w in frames):
                return ""
            return f"xdptcp refuses ({e}), libpcap compiles it"
        finally:
            libpcap.free(prog)
    if prog is None:
        if err.endswith(OPTIMIZER_REFUSES):
            return "" if not any(ours.matches(d, w) for d, w in frames) else f"known: {err}"
        return f"libpcap refuses ({err}), xdptcp compiles it"
    try:
        differ = [
            i
            for i, (d, w) in enumerate(frames)
            if ours.matches(d, w) != libpcap.matches(prog, d, w)
        ]
    finally:
        libpcap.free(prog)
    if not differ:
        return ""
    for i in differ:  # explained only if every difference is a load past the end
        d, w = frames[i]
        if ours.matches(d, w) or not ours.matches(d + bytes(4096), w):
            return f"{len(differ)} frames differ (first: {i})"
    return f"known: {OPTIMIZER_DROPS_LOADS} ({len(differ)} frames)"


@pytest.fixture(scope="module")
def libpcap() -> LibPcap:
    return LibPcap()


@pytest.fixture(scope="module")
def frames() -> list[tuple[bytes, int]]:
    return tcp_frames()


@pytest.mark.parametrize("expr", regression_list())
def test_expressions_that_once_disagreed_agree(libpcap, frames, expr: str) -> None:
    assert compare(libpcap, frames, expr) == ""


def test_generated_expressions_select_what_libpcap_selects(libpcap, frames) -> None:
    exprs = expressions()
    step = 1 if os.environ.get("XDPTCP_FILTER_ALL") else 3  # the whole set takes ~45 s
    results = {e: compare(libpcap, frames, e) for e in exprs[::step]}
    unexplained = {e: r for e, r in results.items() if r and not r.startswith("known:")}
    known = sum(1 for r in results.values() if r.startswith("known:"))
    print(f"{len(results)} expressions on {len(frames)} TCP frames: {known} known differences")
    assert len(results) > 900 and known < len(results) // 20
    assert unexplained == {}
