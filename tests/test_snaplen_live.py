"""A live capture with a snap length that cuts the headers (-s 10, -s 24...): every record is
a TCP packet the program found on the whole frame, and prints as ``tcpdump -i IF -s N tcp``
prints it (the kernel runs tcpdump's filter on the whole packet too, then cuts it)."""

from __future__ import annotations

import json
import os

import pytest
from background import stop_all
from test_xdptcp_live import Xdptcp, _running, beside_tcpdump, replay

from conftest import need_tool
from hosts import make_veth
from traffic import (
    A4,
    A6,
    B4,
    B6,
    dest_options,
    fragment,
    hop_by_hop,
    mss,
    tcp_frame,
    timestamp,
    write_pcap,
)

pytestmark = pytest.mark.system

# What tcpdump's filter selects of them: TCP, behind extension headers too (libpcap's tcp alone
# reads only the next header of the fixed header and of a fragment header after it).
TCPDUMP_FILTER = "tcp or ip6 protochain 6"


@pytest.fixture(autouse=True)
def _no_capture_left_running():
    yield
    stop_all(_running)


@pytest.fixture(scope="module")
def veth():
    need_tool("tcpreplay")
    need_tool("tcpdump")
    pair = make_veth("snap")
    try:
        yield pair
    finally:
        pair.remove()


def frames() -> list[bytes]:
    opts = (mss(1460), timestamp(7, 8))
    return [
        tcp_frame(A4, B4, 40000, 5001, flags="S", seq=1, options=opts),
        tcp_frame(A4, B4, 40001, 5001, flags="S", seq=2, ip_options=b"\x01\x01\x01\x00" * 2),
        tcp_frame(A6, B6, 40002, 5001, flags="S", seq=3, options=opts),
        tcp_frame(
            A6,
            B6,
            40003,
            5001,
            flags="S",
            seq=4,
            ipv6_ext=(fragment(more=True),),
            payload=b"x" * 16,
        ),  # fmt: skip
        tcp_frame(
            A6,
            B6,
            40004,
            5001,
            flags="S",
            seq=5,
            ipv6_ext=(hop_by_hop(b"\x05\x02\x00\x00"), dest_options()),
        ),  # fmt: skip
    ]


@pytest.mark.parametrize("snap", [10, 14, 20, 24, 30, 40, 54, 60, 70, 90])
def test_a_snap_length_inside_the_headers_prints_tcpdumps_lines(veth, tmp_path, snap):
    pcap = tmp_path / "f.pcap"
    sent = frames()
    write_pcap(pcap, sent)
    args = ("-Q", "in", "-s", str(snap), "-t")
    out, err, rc, ref_text = beside_tcpdump(veth, pcap, args, TCPDUMP_FILTER)
    ref = [ln for ln in ref_text.splitlines() if ln]
    assert rc == 0, err
    assert len(ref) == len(sent)
    assert out.splitlines() == ref
    assert f"{len(sent)} packets captured" in err
    assert "not printable" not in err  # every record has its line: none counted as malformed


def test_json_gives_an_object_for_every_record_however_cut(veth, tmp_path):
    pcap = tmp_path / "f.pcap"
    sent = frames()
    write_pcap(pcap, sent)
    cap = Xdptcp("-i", veth.outer, "-Q", "in", "-s", "20", "--json")
    replay(veth, pcap)
    out, err, rc = cap.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert [(o["cap_len"], o["wire_len"]) for o in objs] == [(20, len(f)) for f in sent]
    assert [o["ip"] for o in objs] == [4, 4, 6, 6, 6]
    assert all(o["src"] is None and o["sport"] is None and o["flags"] is None for o in objs)
    assert "not printable" not in err and os.path.exists(pcap)
