"""-e: the link-level header at the start of each line, as ``tcpdump -e`` prints it.

Files of every link type xdptcp reads are compared with tcpdump in tests/test_linktypes.py
(``test_e_*``), and several interfaces with -e beside ``tcpdump -i any -e`` in
tests/test_egress.py; here, what a user sees live: one interface beside ``tcpdump -i IF -e``,
several beside ``tcpdump -i any`` (the packet types every line shows, ``In``, ``B``, ``M``,
``P``, and the cooked header -e shows and -xx dumps), and the one-line refusal with --json.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import test_hexdump
from background import read_until_ready
from test_xdptcp_live import Xdptcp, _running, beside_tcpdump, replay

from xdptcp.linklevel import ethernet

from conftest import ROOT, need_tool, run, scaled
from hosts import make_veth
from traffic import A4, A6, B4, B6, tcp_frame, timestamp, write_pcap

veth = test_hexdump.veth  # the fixture: a veth pair, tcpreplay at hand, removed after


@pytest.mark.parametrize(
    "flag, said", [("-e", "-e prints in text lines, not with --json"),
                   ("-q", "-q shortens text lines, not --json")],
)  # fmt: skip
def test_json_refuses_e_and_q(flag, said) -> None:
    got = run(sys.executable, "-m", "xdptcp", "-r", "-", "--json", flag, cwd=ROOT, check=False)
    assert got.returncode == 2
    assert got.stderr == f"xdptcp: {said}\n"


def test_ethernet_text() -> None:
    frame = tcp_frame(A4, B4, 1, 2, vlans=(5, 6))
    src, dst = frame[6:12].hex(":"), frame[0:6].hex(":")
    assert ethernet(frame, 80) == (
        f"{src} > {dst}, ethertype 802.1Q (0x8100), length 80: vlan 5, p 0, "
        "ethertype 802.1Q (0x8100), vlan 6, p 0, ethertype IPv4 (0x0800), "
    )
    assert ethernet(frame[:13], 80) == ""  # tcpdump prints " [|ether]" alone
    assert ethernet(frame[:16], 80) == f"{src} > {dst}, "  # and here " [|vlan]" after them


@pytest.mark.system
@pytest.mark.parametrize(
    "args", [("-e",), ("-e", "-q"), ("-q",), ()], ids=["e", "eq", "q", "plain"]
)
def test_a_live_capture_prints_the_link_level_header_as_tcpdump_does(veth, tmp_path, args):
    """-e, -q, and the plain lines of tagged frames (one tag: walked from the ring), as
    tcpdump prints them."""
    pcap = tmp_path / "f.pcap"
    ts = [b"\x01\x01" + timestamp(7, 9)]
    sent = [
        tcp_frame(A4, B4, 40000, 80, flags="S"),
        tcp_frame(A6, B6, 40001, 443, flags="PA", payload=b"x" * 20),
        tcp_frame(A4, B4, 40002, 22, flags="A", vlans=(100,)),
        tcp_frame(A6, B6, 40003, 8080, flags="A", vlans=(7, 4094)),
        tcp_frame(A6, B6, 40004, 443, flags="PA", vlans=(9,), options=ts, payload=b"y" * 9),
    ]
    write_pcap(pcap, sent)
    out, err, rc, ref = beside_tcpdump(veth, pcap, ("-Q", "in", "-t", *args), "tcp or vlan")
    assert rc == 0, err
    assert f"{len(sent)} packets captured" in err
    if args == ("-e",):
        assert "vlan 7, p 0, ethertype 802.1Q (0x8100), vlan 4094" in ref
    assert out + "\n" == ref


@pytest.mark.system
@pytest.mark.parametrize(
    "args", [("-e", "-XX"), ("-xx",), (), ("-e", "-q")], ids=["e-XX", "xx", "plain", "eq"]
)
def test_several_interfaces_show_the_packet_tcpdump_any_has(veth, tmp_path, args) -> None:
    """Frames to this interface's address, to the broadcast address, to a multicast group and
    to another host: ``tcpdump -i any`` says ``In``, ``B``, ``M``, ``P`` (the kernel's packet
    type), shows each packet's cooked v2 header with -e and dumps it with -xx or -XX."""
    other = make_veth("lnk3")
    try:
        with open(f"/sys/class/net/{veth.outer}/address") as f:
            here = bytes.fromhex(f.read().strip().replace(":", ""))
        to = [here, b"\xff" * 6, bytes.fromhex("01005e000001"), bytes.fromhex("020000000002")]
        sent = []
        for i, dst in enumerate(to):
            # (A frame of two tags is left out: what the kernel's packet socket makes of it has
            # changed between kernels.)
            for src, dst_ip, vlans in ((A4, B4, ()), (A6, B6, ()), (A4, B4, (100,))):
                frame = tcp_frame(src, dst_ip, 40000 + i, 80, flags="PA", payload=b"GET /\r\n",
                                  vlans=vlans)  # fmt: skip
                sent.append(dst + frame[6:])
        pcap = tmp_path / "to.pcap"
        write_pcap(pcap, sent)
        dump = subprocess.Popen(
            [need_tool("tcpdump"), "-i", "any", *args, "-t", "-nn", "-l", "tcp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _running.append(dump)
        read_until_ready(dump, b"listening on", scaled(20), "tcpdump")
        cap = Xdptcp("-i", veth.outer, "-i", other.outer, "-Q", "in", "-t", "-s", "0", *args)
        replay(veth, pcap)
        out, err, rc = cap.stop()
        dump.send_signal(signal.SIGINT)
        ref = dump.communicate(timeout=scaled(10))[0].decode("latin-1")
    finally:
        other.remove()
    assert rc == 0, err
    # tcpdump's lines (each with its dump) of that interface
    records: list[str] = []
    for line in ref.splitlines():
        if line.startswith("\t") and records:
            records[-1] += "\n" + line
        elif line:
            records.append(line)
    ref = "".join(r + "\n" for r in records if r.startswith(veth.outer))
    kinds = [line.split()[1] for line in ref.splitlines() if line.startswith(veth.outer)]
    assert kinds == [k for k in ("In", "B", "M", "P") for _ in range(3)]
    assert out == ref
