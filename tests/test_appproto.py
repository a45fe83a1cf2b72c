"""Payloads on the ports tcpdump decodes: xdptcp's lines against tcpdump's on the same files.

tcpdump 4.99 goes on after ``length N`` for a payload on some well-known ports
(``xdptcp/appproto.py``). Frames of every kind of payload its text decoders and its SSH decoder
tell apart (requests, responses, lines ended by CR-LF, LF, a lone CR or nothing, tabs, binary
bytes, long words), on each port and on pairs of ports whose order in tcpdump's list decides,
are written to a file; each file is read whole and cut by ``tcpdump -s N`` at many lengths, and
``xdptcp -r`` must print what ``tcpdump -nn -r`` prints, line for line.
"""

from __future__ import annotations

import sys

import pytest

from xdptcp.appproto import decoder
from xdptcp.tcpdump import TextFormatter

from conftest import ROOT, need_tool, run
from traffic import tcp_frame, write_pcap

PAYLOADS = [
    b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    b"get /lower-case HTTP/1.0\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 20 OK\r\n",
    b"HTTP/1.1 2000 OK\r\n",
    b"RTSP/1.0 404 Not Found\r\n",
    b"POST\r\n",
    b"GET  /two-spaces HTTP/1.1\r\n",
    b"GET\t/after-a-tab\r\n",
    b"GET /a\ttab\tinside\r\n",
    b"GET /no-line-end",
    b"GET /cr-alone\rX\n",
    b"GET /ends-with-cr\r",
    b"GET /bin\x01ary\r\n",
    b"\x80\x81\x82 not ascii\r\n",
    b"X" * 128 + b" 200 a word of 128\r\n",
    b"X" * 129 + b" 200 a word of 129\r\n",
    b"just a line of text\r\n",
    b"220 mail.example ESMTP ready\r\n",
    b"USER anonymous\r\n",
    b"DESCRIBE rtsp://example/ RTSP/1.0\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b"G",
    b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
    b"SSH-2.0-lf-only\n",
    b"SSH-1.99-no-end",
    b"SSH-2.0-bad\x01byte\r\n",
    b"SSH-2.0-cr\rX",
    b"SSX-2.0-no\r\n",
    b"SS",
]

# (client port, server port): each port xdptcp decodes, both ways, and pairs whose order in
# tcpdump's list decides (SMTP before SSH before FTP before HTTP before RTSP and DNS).
PORTS = [
    (40000, 80),
    (80, 40000),
    (40000, 8080),
    (40000, 21),
    (40000, 25),
    (40000, 43),
    (40000, 554),
    (40000, 8554),
    (40000, 22),
    (22, 40000),
    (22, 80),
    (80, 22),
    (25, 22),
    (21, 80),
    (554, 80),
    (8554, 8080),
    (53, 80),
    (43, 21),
    (40000, 5001),
]

SNAPLENS = [54, 55, 56, 58, 60, 62, 66, 70, 75, 80, 90, 100, 120, 140, 160, 200]


def frames() -> list[bytes]:
    out = []
    for i, (sport, dport) in enumerate(PORTS):
        for j, payload in enumerate(PAYLOADS):
            v6 = (i + j) % 5 == 0
            src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("198.18.0.1", "198.18.0.2")
            out.append(
                tcp_frame(src, dst, sport, dport, seq=1000 + j, ack=1, flags="P.", payload=payload)
            )
    return out


def tcpdump_text(path) -> list[str]:
    return run(need_tool("tcpdump"), "-nn", "-r", str(path), "tcp").stdout.splitlines()


def xdptcp_text(path) -> list[str]:
    return run(sys.executable, "-m", "xdptcp", "-r", str(path), cwd=ROOT).stdout.splitlines()


def test_the_decoder_is_tcpdumps_first_port_in_its_list() -> None:
    assert decoder(40000, 80) == decoder(80, 40000) == decoder(40000, 8080) == "http"
    assert decoder(22, 80) == decoder(80, 22) == "ssh"  # SSH comes first in print-tcp.c
    assert decoder(25, 22) == "smtp"
    assert decoder(21, 80) == "ftp"
    assert decoder(554, 80) == "http"
    assert decoder(43, 21) == "whois"
    # a protocol tcpdump decodes and xdptcp does not: it wins, and nothing is added
    assert decoder(23, 80) is None  # telnet
    assert decoder(53, 5001) is None  # DNS over TCP
    assert decoder(40000, 5001) is None
    assert decoder(443, 40000) is None  # no decoder in tcpdump


def test_payloads_on_decoded_ports_print_as_tcpdump(tmp_path) -> None:
    path = tmp_path / "app.pcap"
    write_pcap(path, frames())
    ours, theirs = xdptcp_text(path), tcpdump_text(path)
    assert len(ours) == len(PORTS) * len(PAYLOADS)
    assert ours == theirs
    # the lines that prove the decoders ran
    assert any(line.endswith("length 33: HTTP: GET / HTTP/1.1") for line in ours)
    assert any(": SSH: SSH-2.0-OpenSSH_9.2p1 Debian-2" in line for line in ours)
    assert any(line.endswith(": FTP: USER anonymous") for line in ours)
    assert any(line.endswith(": HTTP: GET /no-line-end [|http]") for line in ours)


def write_cut(path, snaplen: int) -> list:
    """The frames as a capture at ``snaplen`` holds them (0: whole): each record's captured
    bytes cut, its original length the frame's."""
    cut = [(i * 1_000_000, f[: snaplen or len(f)], len(f)) for i, f in enumerate(frames())]
    return write_pcap(path, cut, snaplen=snaplen or 262144)


@pytest.mark.parametrize("snaplen", SNAPLENS)
def test_payloads_cut_by_the_snap_length_print_as_tcpdump(tmp_path, snaplen) -> None:
    """The captured bytes end inside the payload, or before it: tcpdump's ``[|http]``."""
    cut = tmp_path / "cut.pcap"
    write_cut(cut, snaplen)
    theirs = tcpdump_text(cut)
    assert xdptcp_text(cut) == theirs
    if snaplen == 80:  # 6 payload bytes of an IPv6 "GET / HTTP/1.1": a request cut short
        assert any(line.endswith("length 33: HTTP [|http]") for line in theirs)


@pytest.mark.parametrize("snaplen", [0, 54, 60, 66, 80, 100])
def test_the_formatters_per_frame_path_prints_as_tcpdump(tmp_path, snaplen) -> None:
    """``TextFormatter.format`` (a frame at a time: pcapng files, live records) on the same
    records, against tcpdump's lines for them."""
    cut = tmp_path / "cut.pcap"
    written = write_cut(cut, snaplen)
    fmt = TextFormatter()
    assert [fmt.format(f.ts_ns, f.data, f.wire_len) for f in written] == tcpdump_text(cut)
