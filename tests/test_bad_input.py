"""Malformed frames on a real interface: xdptcp never shows a byte it did not receive, never
mis-decodes, never crashes.

The frames are the ones a parser gets wrong: IPv4 IHL below 5 or beyond the frame, TCP data
offset below 5 or beyond the frame, one frame cut at every byte offset, IPv4 and IPv6 fragments
(first and later), IPv6 extension-header chains up to and past what the program walks, VLAN
stacks deeper than it supports, IPv4 total lengths and IPv6 payload lengths that lie. They are
replayed with tcpreplay into a veth pair while xdptcp captures at XDP, twice: once as text, once
to a pcap file.

- Every record xdptcp writes is a prefix of a frame that was sent, with that frame's length as
  its wire length (the kernel program's bounds checks, seen from outside).
- Every line xdptcp prints is the line ``tcpdump -nn`` prints for one of the frames, in order.
- Well-formed controls mixed in are all captured, so the test cannot pass by capturing nothing.

BPF_PROG_TEST_RUN checks of the same program, record by record, are in test_xdptcp_prog.py.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import need_tool, run
from tests.hosts import VethPair, make_veth
from tests.test_reliability import Xdptcp
from tests.traffic import (
    dest_options,
    fragment,
    hop_by_hop,
    mss,
    nop,
    routing,
    sack_ok,
    tcp_frame,
    timestamp,
    write_pcap,
)
from xdptcp.pcap import read_pcap

pytestmark = pytest.mark.system
CONTROL_PORT = 45000  # the well-formed frames: every one must be captured


def bad_frames(src: str, dst: str, src6: str, dst6: str) -> list[bytes]:
    port = iter(range(30000, 40000))  # each frame its own source port, to tell lines apart

    def v4(**kw) -> bytes:
        return tcp_frame(src, dst, next(port), 5201, seq=7, ack=9, flags="P.", **kw)

    def v6(**kw) -> bytes:
        return tcp_frame(src6, dst6, next(port), 5201, seq=7, ack=9, flags="P.", **kw)

    out: list[bytes] = []
    # IPv4 IHL 0..4 (impossible) and 15 (60 bytes of header the frame does not have)
    for ihl in (0, 1, 4, 15):
        f = bytearray(v4(payload=b"ihl"))
        f[14] = 0x40 | ihl
        out.append(bytes(f))
    # TCP doff below 5, and 15 with the frame ending after 20 bytes of header
    out += [v4(doff=d, payload=b"doff") for d in (0, 1, 4)]
    out += [v4(doff=15), v4(doff=15, payload=bytes(20)), v6(doff=3), v6(doff=15)]
    # One frame with options and payload, cut at every byte offset from the Ethernet header on
    whole = tcp_frame(src, dst, next(port), 5201, seq=1, ack=2, flags="S.",
                      options=(mss(1460), sack_ok(), timestamp(5, 6), nop(), nop()),
                      payload=b"cut here")  # fmt: skip
    out += [whole[:n] for n in range(14, len(whole) + 1)]
    whole6 = v6(options=(nop(), nop(), timestamp(5, 6)), payload=b"cut6")
    out += [whole6[:n] for n in range(14 + 36, len(whole6) + 1)]
    # IPv4 fragments: first (MF), later ones (offset), a later one whose bytes look like TCP
    out += [v4(payload=b"a" * 40, more_frags=True, ident=5),
            v4(payload=b"b" * 40, frag_offset=48, ident=5),
            v4(payload=b"c" * 40, frag_offset=8, more_frags=True, ident=6)]  # fmt: skip
    # IPv6 extension headers: each kind, a long chain, and fragments first and later
    chain = [hop_by_hop(), dest_options(), routing([dst6], rtype=0, segleft=0)]
    out += [v6(ipv6_ext=(h,)) for h in chain]
    out += [v6(ipv6_ext=tuple(chain)), v6(ipv6_ext=(hop_by_hop(),) + (dest_options(),) * 6)]
    out += [v6(ipv6_ext=(fragment(0, more=True),), payload=b"first"),
            v6(ipv6_ext=(fragment(64, more=False),), payload=b"later")]  # fmt: skip
    # VLAN stacks: one and two tags (supported), three and four (deeper than supported)
    out += [v4(vlans=tags) for tags in ((7,), (7, 8), (7, 8, 9), (7, 8, 9, 10))]
    out += [v4(vlans=(7, 8), qinq=True), v6(vlans=(7, 8, 9))]
    # Lying lengths: IPv4 total length below the header, beyond the frame, and zero;
    # IPv6 payload length zero and beyond the frame
    out += [v4(payload=b"len", total_length=n) for n in (0, 19, 40, 41, 1500, 65535)]
    out += [v6(payload=b"len6", payload_length=n) for n in (0, 19, 20, 1400, 65535)]
    return out


def controls(src: str, dst: str, src6: str, dst6: str) -> list[bytes]:
    return [
        tcp_frame(src, dst, CONTROL_PORT, 5201, flags="S", options=(mss(1460),)),
        tcp_frame(src6, dst6, CONTROL_PORT, 5201, flags="S", options=(mss(1440),)),
        tcp_frame(src, dst, CONTROL_PORT, 5201, flags="P.", seq=1, ack=1, payload=b"ok"),
    ]


@pytest.fixture
def pair():
    p = make_veth("bi")
    try:
        yield p
    finally:
        p.remove()


@pytest.fixture
def sent(pair: VethPair, tmp_path: Path) -> tuple[Path, list[bytes]]:
    """The file to replay: controls between every few bad frames."""
    addrs = (pair.inner_ip, pair.outer_ip, pair.inner_ip6, pair.outer_ip6)
    bad, good = bad_frames(*addrs), controls(*addrs)
    frames = list(good)
    for i, f in enumerate(bad):
        frames.append(f)
        if i % 40 == 39:
            frames += good
    frames += good
    path = tmp_path / "bad.pcap"
    write_pcap(path, frames)
    return path, frames


def capture(pair: VethPair, pcap: Path, *args: str) -> tuple[str, str]:
    """xdptcp on the outer end while tcpreplay sends ``pcap`` from the inner one."""
    need_tool("tcpreplay")
    x = Xdptcp("-i", pair.outer, *args).attached()
    try:
        res = pair.in_ns("tcpreplay", "-i", pair.inner, str(pcap))
        assert re.search(r"Failed packets:\s+0\b", res.stdout), res.stdout
        time.sleep(0.5)
        x.proc.send_signal(signal.SIGINT)
        out = x.proc.stdout.read()
        assert x.finish() == 0, x.stderr
    finally:
        x.kill()
    assert "Traceback" not in x.stderr and "internal error" not in x.stderr, x.stderr
    return out, x.stderr


def tcpdump_lines(pcap: Path) -> list[str]:
    res = run("tcpdump", "-nn", "-t", "-S", "-r", str(pcap), env=dict(os.environ, TZ="UTC"))
    return res.stdout.splitlines()


def test_records_are_prefixes_of_frames_that_were_sent(pair, sent, tmp_path) -> None:
    path, frames = sent
    out_file = tmp_path / "captured.pcap"
    _, err = capture(pair, path, "-s", "0", "-w", str(out_file))
    records = read_pcap(out_file)
    by_length: dict[int, list[bytes]] = {}
    for f in frames:
        by_length.setdefault(len(f), []).append(f)
    for n, (_, data, wire_len) in enumerate(records, 1):
        candidates = by_length.get(wire_len, [])
        assert any(f.startswith(data) for f in candidates), (
            f"record {n} ({len(data)} of {wire_len} bytes) is not the start of any frame sent "
            f"with that length: {data.hex()}"
        )
    good = set(controls(pair.inner_ip, pair.outer_ip, pair.inner_ip6, pair.outer_ip6))
    captured_controls = sum(data in good for _, data, _ in records)  # -s 0: whole frames
    assert captured_controls == sum(f in good for f in frames) > 0, "controls were missed"
    assert f"{len(records)} packets captured" in err


def test_lines_are_tcpdumps_lines_in_order(pair, sent) -> None:
    path, frames = sent
    out, err = capture(pair, path, "-t", "-S")
    ours = out.splitlines()
    reference = tcpdump_lines(path)
    assert len(reference) == len(frames)
    at = 0
    for line in ours:
        while at < len(reference) and reference[at] != line:
            at += 1
        assert at < len(reference), f"xdptcp printed a line tcpdump never printed: {line!r}"
        at += 1
    controls_seen = sum(f".{CONTROL_PORT} > " in line for line in ours)
    assert controls_seen == sum(f".{CONTROL_PORT} > " in line for line in reference) > 0
    assert len(ours) > 40, "hardly anything was shown"


def test_summary_counts_the_lines_shown(pair, sent) -> None:
    path, _ = sent
    out, err = capture(pair, path, "-t", "-S")
    assert f"{len(out.splitlines())} packets captured" in err, err
