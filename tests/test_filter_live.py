"""The compiled filter live: frames replayed over a veth pair (tcpreplay) into xdptcp attached
at XDP print exactly the lines tcpdump prints for the TCP frames its filter selects — the whole
language, the HTTP request filter included."""

from __future__ import annotations

import pytest

from tests.test_filter import varied_frames
from tests.test_xdptcp_live import (
    Xdptcp,
    as_sent,
    assert_filter_prints,
    emitted,
    header_end,
    replay,
    selected_by,
    tcpdump_lines,
    veth,
)
from tests.traffic import Frame, write_pcap

pytestmark = pytest.mark.system
__all__ = ["veth"]  # the fixture, used by name

LIVE = [
    "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    "tcp[13] & 2 != 0",
    "ip[6:2] & 0x1fff = 0 and len > 100",
    "ether src 02:00:00:00:00:01 and ether multicast",
    "tcp port http or tcp portrange 15-22",
    "ip proto 6 and greater 80",
    "vlan 10 and host 198.18.0.1",
    "ip multicast or ip6 and tcp[tcpflags] & tcp-ack != 0",
    "tcp[((tcp[12] >> 4) * 4) + 6:2] = 0x4854",
    "port 80 or 443 and not src host 198.18.0.2",
    "ether[12:2] = 0x86dd and ip6[6] = 6",
    "(tcp[0:2] + tcp[2:2]) % 7 = 3 or less 70",
]


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    ts = 1_700_000_000_000_000_000
    sendable = [f for f in varied_frames(count=300) if len(f) >= 14]  # tcpreplay's minimum
    return [Frame(ts + 1_001 * i, f, len(f)) for i, f in enumerate(sendable)]


@pytest.mark.parametrize("expr", LIVE)
def test_live_filter_prints_what_tcpdump_selects(veth, tmp_path, frames, expr: str) -> None:
    sent = as_sent(frames, tmp_path / "sent.pcap")
    selected = selected_by(sent, frames, expr)
    # By default xdptcp keeps each frame up to the end of its TCP header: its lines are
    # tcpdump's for the frames cut there (a payload tcpdump decodes: `: HTTP`, `[|ssh]`).
    cut = tmp_path / "cut.pcap"
    write_pcap(cut, [(f.ts_ns, f.data[: header_end(f.data)], f.wire_len) for f in frames])
    lines = tcpdump_lines(cut, "-t", "-S")
    expected = [lines[i] for i in emitted(frames) if i in selected]
    assert_filter_prints(veth, sent, expr, expected)


def test_a_filter_of_10000_hosts_from_a_file_captures_live(veth, tmp_path, frames) -> None:
    """A list the size of a blocklist, read with -F: 10,000 `host` terms, the one address the
    frames carry last, and both programs loaded (XDP in, tc out). Each term jumps on to the
    next and falls through to its way out, so the verifier keeps a few branches waiting, not
    one a term: the tc program's refused 3000 hosts before ("The sequence of 8193 jumps is
    too complex")."""
    listed = [f"198.18.{100 + i // 250}.{i % 250 + 1}" for i in range(9999)] + ["198.18.200.9"]
    hosts = tmp_path / "hosts"
    hosts.write_text(" or ".join(f"host {h}" for h in listed) + "\n")
    sent = as_sent(frames, tmp_path / "sent.pcap")
    selected = selected_by(sent, frames, "host 198.18.200.9")
    cut = tmp_path / "cut.pcap"
    write_pcap(cut, [(f.ts_ns, f.data[: header_end(f.data)], f.wire_len) for f in frames])
    lines = tcpdump_lines(cut, "-t", "-S")
    expected = [lines[i] for i in emitted(frames) if i in selected]
    assert expected
    cap = Xdptcp("-i", veth.outer, "-t", "-S", "-F", str(hosts))
    replay(veth, sent)
    out, err, rc = cap.stop()
    assert rc == 0, err
    assert out.splitlines() == expected
