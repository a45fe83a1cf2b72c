"""-x, -X and -A (and -xx, -XX, -AA): each packet's bytes after its line, as tcpdump prints them.

Every test compares xdptcp's whole output with Debian's tcpdump's on the same packets: read from
a file of every link type xdptcp reads, cut by a snap length where tcpdump abandons a packet
(and then shows it whole, link-layer header included), and captured live.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from background import stop_all
from test_linktypes import _null, _ppp, _raw, _sll, _sll2
from test_xdptcp_live import _running, beside_tcpdump

from xdptcp import linktypes as lt
from xdptcp.hexdump import Dump, ascii_only, ethernet_header_length, hex_and_ascii, hex_only

from conftest import ROOT, need_tool, run
from hosts import make_veth
from traffic import A4, A6, B4, B6, Frame, mss, tcp_frame, timestamp, write_pcap

FLAGS = ["-x", "-X", "-A", "-xx", "-XX", "-AA", "-Xx", "-xA"]

# Payloads that reach each corner of the three printers: odd and even lengths, a last line of
# fewer than 16 bytes, every byte value, and carriage returns where -A drops or dots them (before
# a newline, in the middle, as the last byte and as the one before it).
PAYLOADS = [
    b"GET /index.html HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab\rc",
    bytes(range(256)),
    b"x",
    b"line one\rline two\n\ttabbed \x7f\x80\xff\r",
    b"ends with CR then one byte\rZ",
    b"\r",
]


def _frames() -> list[bytes]:
    opts = (mss(1460), timestamp(7, 8))
    out = []
    for i, payload in enumerate(PAYLOADS):
        src, dst = (A4, B4) if i % 2 == 0 else (A6, B6)
        out.append(tcp_frame(src, dst, 40000 + i, 80, flags="P.", seq=1000, ack=1,
                             options=opts if i % 3 else (), payload=payload))  # fmt: skip
    out.append(tcp_frame(A4, B4, 40100, 80, flags="S", seq=5))  # padded to 60 bytes below
    out[-1] = out[-1] + bytes(60 - len(out[-1]))
    out.append(tcp_frame(A4, B4, 40101, 80, flags="P.", seq=1, ack=1, payload=b"tagged\n",
                         vlans=(100,)))  # fmt: skip
    out.append(tcp_frame(A6, B6, 40102, 80, flags="P.", seq=1, ack=1, payload=b"two tags\n",
                         vlans=(100, 200), qinq=True))  # fmt: skip
    return out


def _both(path, flag: str, *more: str) -> tuple[str, str]:
    tcpdump = need_tool("tcpdump")
    ref = subprocess.run([tcpdump, "-nn", flag, *more, "-r", str(path)], capture_output=True,
                         check=True).stdout.decode("latin-1")  # fmt: skip
    got = run(sys.executable, "-m", "xdptcp", flag, *more, "-r", str(path), cwd=ROOT)
    return ref, got.stdout


@pytest.mark.parametrize("flag", FLAGS)
def test_a_file_dumps_as_tcpdump_dumps_it(tmp_path, flag) -> None:
    path = tmp_path / "f.pcap"
    sent = _frames()
    write_pcap(path, sent)
    ref, got = _both(path, flag)
    assert got == ref
    assert ref.count("\n") > len(sent) * 2  # the dumps are there
    ref, got = _both(path, flag, "-t", "-S", "tcp[13] & 8 != 0")  # the general path, filtered
    assert got == ref


_LINKS = {
    "raw": (lt.RAW, _raw),
    "sll": (lt.LINUX_SLL, _sll),
    "sll2": (lt.LINUX_SLL2, _sll2),
    "null": (lt.NULL, _null),
    "ppp": (lt.PPP, _ppp),
}


@pytest.mark.parametrize("link", _LINKS)
@pytest.mark.parametrize("flag", ["-x", "-XX", "-A"])
def test_other_link_types_dump_after_their_own_header(tmp_path, link, flag) -> None:
    """The dump starts after the link-layer header the file holds (none for raw IP, 16 bytes for
    Linux cooked v1...), not after the Ethernet header xdptcp reads the packet under."""
    linktype, rewrite = _LINKS[link]
    path = tmp_path / "f.pcap"
    write_pcap(path, [rewrite(f) for f in _frames()[:-2]], linktype=linktype)  # (untagged)
    ref, got = _both(path, flag)
    assert got == ref
    assert "0x0000:" in ref or flag == "-A"


def test_an_abandoned_packet_is_dumped_whole(tmp_path) -> None:
    """Where tcpdump's printer runs out of captured bytes and gives the packet up (an HTTP
    request's first line cut by the snap length, a TCP header cut short), it dumps the whole
    packet, its link-layer header too, even with a single -x; so does xdptcp."""
    request = tcp_frame(A4, B4, 40000, 80, flags="P.", seq=1, ack=1,
                        payload=b"GET /a/long/path HTTP/1.1\r\n")  # fmt: skip
    options = tcp_frame(A4, B4, 40001, 80, flags="P.", seq=1, ack=1,
                        options=(mss(1460), timestamp(1, 2)), payload=b"data")  # fmt: skip
    ended = tcp_frame(A4, B4, 40002, 80, flags="P.", seq=1, ack=1,
                      options=(mss(1460), b"\0" * 8), payload=b"data")  # fmt: skip
    frames = [
        Frame(0, request[:70], len(request)),  # the line cut: [|http]
        Frame(1000, ended[:59], len(ended)),  # the header past its options cut: [remaining ...]
        Frame(2000, options[:60], len(options)),  # an option cut: [|tcp]>, not abandoned
        Frame(3000, request, len(request)),  # whole: from the IP header
        Frame(4000, options[:54], len(options)),  # no option byte: options [ [|tcp], abandoned
    ]
    path = tmp_path / "cut.pcap"
    write_pcap(path, frames)
    for flag in ("-x", "-X", "-A"):
        ref, got = _both(path, flag)
        assert got == ref, flag
    ref, _ = _both(path, "-x")
    records: list[list[str]] = []
    for line in ref.splitlines():
        if line.startswith("\t"):
            records[-1].append(line)
        else:
            records.append([line])
    firsts = [r[1][1:14] for r in records]
    assert records[0][0].endswith(" [|http]") and "[remaining caplen(" in records[1][0]
    assert records[4][0].endswith("options [ [|tcp]")
    mac = "0x0000:  " + request[:2].hex()  # the destination MAC: the whole packet
    assert firsts == [mac, mac, "0x0000:  4500", "0x0000:  4500", mac]


def test_the_printers_match_tcpdumps_text() -> None:
    """print-ascii.c's layouts on a few bytes (tcpdump's own test in its MAIN)."""
    data = b"Hello, World!\n"
    assert hex_only(data) == "\n\t0x0000:  4865 6c6c 6f2c 2057 6f72 6c64 210a"
    assert hex_and_ascii(data) == (
        "\n\t0x0000:  4865 6c6c 6f2c 2057 6f72 6c64 210a       Hello,.World!."
    )
    assert ascii_only(data) == "\nHello, World!\n"
    assert ascii_only(b"a\r\nb\rc\r") == "\na\nb.c"
    assert ethernet_header_length(tcp_frame(A4, B4, 1, 2, vlans=(5, 6))) == 22
    assert Dump.from_counts(0, 2, 1) == Dump("x", True)  # -x wins over -A, as in tcpdump
    assert Dump.from_counts(1, 1, 0) == Dump("X", False)
    assert Dump.from_counts(0, 0, 0) is None


def test_json_refuses_a_dump() -> None:
    got = run(sys.executable, "-m", "xdptcp", "-r", "-", "--json", "-X", cwd=ROOT, check=False)
    assert got.returncode == 2
    assert got.stderr == "xdptcp: -x, -X and -A print after text lines, not with --json\n"


# ---- live ----------------------------------------------------------------------------------


@pytest.fixture
def veth():
    need_tool("tcpreplay")
    pair = make_veth("hexd")
    try:
        yield pair
    finally:
        stop_all(_running)
        pair.remove()


@pytest.mark.system
@pytest.mark.parametrize("flag", ["-X", "-A", "-xx"])
def test_a_live_capture_dumps_as_tcpdump_does(veth, tmp_path, flag) -> None:
    """Without -s, a dump captures as much of each packet as a live record holds (4096 bytes),
    so that what follows the headers is there to see."""
    pcap = tmp_path / "f.pcap"
    sent = _frames()
    write_pcap(pcap, sent)
    out, err, rc, ref = beside_tcpdump(veth, pcap, ("-Q", "in", "-t", flag), "tcp or vlan")
    assert rc == 0, err
    assert f"{len(sent)} packets captured" in err
    assert out + "\n" == ref  # (tcpdump ends a live capture with a newline, "just in case")
