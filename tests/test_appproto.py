"""Payloads on the ports tcpdump decodes: xdptcp's lines against tcpdump's on the same files.

tcpdump 4.99 goes on after ``length N`` for a payload on some well-known ports
(``xdptcp/appproto.py``). Frames of every kind of payload its text decoders and its SSH decoder
tell apart (requests, responses, lines ended by CR-LF, LF, a lone CR or nothing, tabs, binary
bytes, long words), on each port and on pairs of ports whose order in tcpdump's list decides,
are written to a file; each file is read whole and cut by ``tcpdump -s N`` at many lengths, and
``xdptcp -r`` must print what ``tcpdump -nn -r`` prints, line for line. The same for Redis's
requests and replies, telnet's commands, MSDP's messages, LDP's PDUs, OpenFlow's messages,
PPTP's control messages, BGP, RPKI-RTR and BEEP payloads, and on the ports of every decoder of
tcpdump's list for payloads the capture does not hold (xdptcp's default capture). DNS over TCP
has its own tests, tests/test_dns.py; mutated payloads on every port,
tests/test_appproto_mutated.py.
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


def frames_on(ports, payloads, v6_every: int = 3, seq: int = 2000) -> list[bytes]:
    """A segment of each payload between each pair of ports, some over IPv6."""
    out = []
    for i, (sport, dport) in enumerate(ports):
        for j, payload in enumerate(payloads):
            v6 = (i + j) % v6_every == 0
            src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("198.18.0.1", "198.18.0.2")
            out.append(
                tcp_frame(src, dst, sport, dport, seq=seq + j, ack=1, flags="P.", payload=payload)
            )
    return out


def frames() -> list[bytes]:
    return frames_on(PORTS, PAYLOADS, v6_every=5, seq=1000)


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
    assert decoder(23, 80) == "telnet"  # telnet comes before HTTP
    assert decoder(179, 22) == "bgp"
    assert decoder(53, 5001) == decoder(5001, 53) == "domain"  # DNS over TCP
    # a protocol whose line ends at "length N": it wins, and nothing is added
    assert decoder(2049, 40000) is None  # NFS
    assert decoder(139, 80) == "http"  # NetBIOS: not in the list of tcpdump's default build
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


def write_cut(path, snaplen: int, frames_=None) -> list:
    """The frames (``frames()`` by default) as a capture at ``snaplen`` holds them (0: whole):
    each record's captured bytes cut, its original length the frame's."""
    cut = [
        (i * 1_000_000, f[: snaplen or len(f)], len(f)) for i, f in enumerate(frames_ or frames())
    ]
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


# The ports of tcpdump's other decoders, and pairs whose order in its list decides.
OTHER_PORTS = [
    (40000, 23),
    (23, 80),
    (40000, 179),
    (179, 22),
    (40000, 1723),
    (6379, 40000),
    (40000, 139),
    (139, 80),
    (40000, 445),
    (40000, 10288),
    (40000, 6633),
    (6653, 40000),
    (53, 40000),
    (40000, 53),
    (40000, 639),
    (40000, 323),
    (40000, 646),
    (40000, 2049),
]

BEEP_PAYLOADS = [
    b"MSG\0 1 2 . 0 10\r\n",
    b"MSG 1 2 . 0 10\r\n",  # "MSG" then a space: not a match for print-beep.c
    b"RPY 0 0 . 0 5\r\n",
    b"ERR 0 0 . 0 5\r\n",
    b"ANS 1 0 . 0 5 0\r\n",
    b"NUL 1 0 . 0 0\r\n",
    b"SEQ 1 0 4096\r\n",
    b"END\0",
    b"END\r\n",
    b"RP",
    b"rpy 0 0 . 0 5\r\n",
]


def header_cut(frame: bytes) -> int:
    """The bytes of ``frame`` up to the end of its TCP header (tcp_frame's: Ethernet, IPv4 or
    IPv6 without extension headers, TCP of 20 bytes): xdptcp's default capture."""
    return 14 + (20 if frame[12:14] == b"\x08\x00" else 40) + 20


def test_payloads_not_captured_print_as_tcpdump_on_every_decoders_port(tmp_path) -> None:
    """Cut at the end of the TCP header, as xdptcp captures by default: tcpdump's line on every
    port of its list, `` [|domain]``, ``: BGP``, ``: RESP [|resp]``..."""
    frames_ = frames_on(OTHER_PORTS + PORTS, PAYLOADS + BEEP_PAYLOADS)
    cut = tmp_path / "headers.pcap"
    written = write_pcap(
        cut, [(i * 1_000_000, f[: header_cut(f)], len(f)) for i, f in enumerate(frames_)]
    )
    theirs = tcpdump_text(cut)
    assert len(theirs) == len(frames_)
    assert xdptcp_text(cut) == theirs
    fmt = TextFormatter()  # the per-frame path, as live records take it
    assert [fmt.format(f.ts_ns, f.data, f.wire_len) for f in written] == theirs
    ends = (" [|domain]", ": BGP", ": RESP [|resp]", " [|telnet]", " BEEP (payload or undecoded)")
    for end in ends:
        assert any(line.endswith(end) for line in theirs), end


@pytest.mark.parametrize("snaplen", [0, *SNAPLENS])
def test_protocols_decoded_whatever_the_payload_print_as_tcpdump(tmp_path, snaplen) -> None:
    """BGP and RPKI-RTR (their names alone without -v), BEEP (by its first four bytes) and
    telnet (nothing for a payload that starts with anything but a command) at every cut."""
    ports = [(40000, 179), (323, 40000), (40000, 10288), (10288, 40000), (40000, 23), (23, 22)]
    frames_ = frames_on(ports, PAYLOADS + BEEP_PAYLOADS)
    cut = tmp_path / "cut.pcap"
    write_cut(cut, snaplen, frames_)
    theirs = tcpdump_text(cut)
    assert xdptcp_text(cut) == theirs
    if snaplen in (0, 200):
        for said in ("MSG", "RPY", "ERR", "ANS", "NUL", "SEQ", "END"):
            assert any(line.endswith(f" BEEP {said}") for line in theirs), said


# Redis's requests and replies (RESP), well-formed and not, for print-resp.c's every way.
RESP_PAYLOADS = [
    b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
    b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*2\r\n$4\r\nINCR\r\n$1\r\nz\r\n",  # pipelined
    b"+OK\r\n",
    b"-ERR unknown command 'FOO'\r\n",
    b":1000\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"$0\r\n\r\n",
    b"*0\r\n",
    b"$-2\r\n+after\r\n",
    b"$99999999999\r\nx\r\n",
    b"$2147483647\r\n",
    b"$2147483648\r\n",
    b"$x\r\n",
    b"$12a\r\n",
    b"$3\rX",
    b"$5\r\nab\r\n",
    b"$2\r\nabc\r\nd\r\n",
    b"*2\r\n$1\r\na\r\n",
    b"*1\r\n*2\r\n:1\r\n:2\r\n",
    b"PING\r\n",
    b"\r\n\nPING\nPING\r\r\n",
    b"SET k \x01\x7f\x80\xff\r\n",
    b"+no end",
    b"+\r",
    b"*",
    b"$",
    b"-",
    b"PING",
]


@pytest.mark.parametrize("snaplen", [0, 54, 55, 56, 57, 58, 60, 62, 64, 66, 70, 75, 80, 90, 100])
def test_redis_payloads_print_as_tcpdump(tmp_path, snaplen) -> None:
    """Redis (port 6379) decoded as tcpdump decodes it, whole and cut at every length."""
    frames_ = frames_on([(40000, 6379), (6379, 40000)], RESP_PAYLOADS)
    cut = tmp_path / "resp.pcap"
    written = write_cut(cut, snaplen, frames_)
    theirs = tcpdump_text(cut)
    assert xdptcp_text(cut) == theirs
    fmt = TextFormatter()
    assert [fmt.format(f.ts_ns, f.data, f.wire_len) for f in written] == theirs
    if snaplen == 0:
        assert any(line.endswith(': RESP "SET" "key" "value"') for line in theirs)
        assert any(line.endswith(': RESP "SET k ^A^?M-^@M-^?"') for line in theirs)
        assert any(line.endswith(': RESP length negative and not -1 "after"') for line in theirs)


IAC, SB, SE = b"\xff", b"\xfa", b"\xf0"
# telnet's commands (IAC ...) as a session starts them, and what print-telnet.c does with the odd.
TELNET_PAYLOADS = [
    IAC + b"\xfd\x18" + IAC + b"\xfd\x20" + IAC + b"\xfb\x1f",  # DO TTYPE, DO TSPEED, WILL NAWS
    IAC + b"\xfa\x18\x01" + IAC + SE,  # SB TERMINAL TYPE SEND SE
    IAC + b"\xfa\x18\x00xterm" + IAC + SE + b"data after",
    IAC + b"\xfa\x1f\x00\x50\x00\x18" + IAC + SE,  # NAWS 80x24
    IAC + b"\xfa\x18\x00xterm-256color" + IAC + SE + IAC + b"\xfb\x18",  # -X: two hex lines
    IAC + b"\xfa\x18\x00xterm-256colour" + IAC + SE,  # an odd length after them
    IAC + b"\xfa\x25\x00\x02\x03" + IAC + SE,  # AUTHENTICATION IS KERBEROS_V5 ...
    IAC + b"\xfa\x25\x01\x08\x09\x0a" + IAC + SE,  # a hole in the names: a number
    IAC + b"\xfa\x26\x03\x05" + IAC + SE,  # ENCRYPT START, an unnamed type
    IAC + b"\xfa\x26" + IAC + SE,  # nothing between
    IAC + b"\xfa\x18\x01\x02",  # no IAC SE before the end
    IAC + b"\xfa\x18\x01" + IAC,  # an IAC at the very end
    IAC + b"\xfb\x63",  # an option with no name
    IAC + IAC + b"escaped",
    IAC + b"\xf1" + IAC + b"\xf9" + IAC + b"\xec",  # NOP, GA, EOF
    IAC + b"\x10",  # not a command
    IAC + b"\xfd",  # DO and the end
    IAC,
    b"login: ",
    b"\x00" + IAC + b"\xfb\x01",  # data first: nothing
]


@pytest.mark.parametrize("snaplen", [0, 54, 55, 56, 57, 58, 60, 62, 64, 66, 70, 74, 75, 78, 80, 90])
def test_telnet_commands_print_as_tcpdump(tmp_path, snaplen) -> None:
    """telnet (port 23) commands decoded as tcpdump decodes them, whole and cut."""
    frames_ = frames_on([(40000, 23), (23, 40000), (23, 80)], TELNET_PAYLOADS)
    cut = tmp_path / "telnet.pcap"
    write_cut(cut, snaplen, frames_)
    theirs = tcpdump_text(cut)
    assert xdptcp_text(cut) == theirs
    if snaplen == 0:
        assert any(
            line.endswith(" [telnet DO TERMINAL TYPE, DO TSPEED, WILL NAWS]") for line in theirs
        )
        assert any(line.endswith(" [telnet SB TERMINAL TYPE SEND SE]") for line in theirs)


@pytest.mark.parametrize("snaplen", [0, 56, 57, 58, 60, 62, 66, 70, 74, 78, 80, 90])
@pytest.mark.parametrize("flags", [["-X", "-vvv"], ["-XX", "-vvv"], ["-x", "-vvv"], ["-X", "-vv"]])
def test_telnet_commands_dumped_in_hex_with_X_and_vvv_print_as_tcpdump(
    tmp_path, snaplen, flags
) -> None:
    """-X with -vvv: after ``Telnet:``, each command's bytes in hex at their offset in the
    payload, then its text, as tcpdump prints them; whole and cut (a cut inside a command's
    bytes ends the dump there). Not with -x, nor with -vv: the usual `` [telnet ...]``."""
    cut = tmp_path / "telnet.pcap"
    write_cut(cut, snaplen, frames_on([(40000, 23), (23, 40000)], TELNET_PAYLOADS))
    tool = need_tool("tcpdump")
    theirs = run(tool, "-nn", *flags, "-r", str(cut), "tcp").stdout.splitlines()
    ours = run(sys.executable, "-m", "xdptcp", "-r", str(cut), *flags, cwd=ROOT).stdout
    assert ours.splitlines() == theirs
    if snaplen == 0:
        hexed = flags[0] in ("-X", "-XX") and flags[1] == "-vvv"
        assert ("Telnet:" in theirs) == hexed
        if hexed:
            assert "0x0000:  fffd 18               \tDO TERMINAL TYPE" in theirs
            # a command of 20 bytes on two lines, its text on a line of its own; the next
            # command at its offset
            at = theirs.index("0x0010:  6f72 fff0")
            assert theirs[at + 1].startswith("\t\t\t\tSB TERMINAL TYPE IS 0x78 ")
            assert theirs[at + 2] == "0x0014:  fffb 18               \tWILL TERMINAL TYPE"


# MSDP's messages (print-msdp.c): each kind, with data, two in a segment, and the odd.
MSDP_PAYLOADS = [
    b"\x01\x00\x14\x01" + bytes(16),  # SA, one entry
    b"\x01\x00\x20\x01" + bytes(28),  # SA with data after the entry
    b"\x03\x00\x14\x01" + bytes(16),  # SA-Response
    b"\x02\x00\x08\x00\xc6\x12\x00\x01",  # SA-Request for 198.18.0.1
    b"\x04\x00\x03",  # Keepalive
    b"\x04\x00\x05\x00\x00",  # Keepalive of another length
    b"\x04\x00\x03\x05\x00\x06\x00\x00\x00",  # Keepalive, then a Notification
    b"\x06\x00\x04\x00",  # a kind with no name
    b"\x07\x00\x03\x00\x00\x02",  # then a message shorter than 3
    b"\x08\x00\x03",  # not a kind MSDP has
    b"\x04\x05\xdc" + bytes(1497),  # 1500 bytes: " [len 1500]"
    b"\x04\x05\xdd" + bytes(10),  # over 1500: not MSDP
    b"\x04\x00\x09\x00",  # longer than the payload
    b"\x01\x00",
]


@pytest.mark.parametrize("snaplen", [0, 54, 55, 56, 57, 58, 60, 62, 66, 70, 74, 76, 78, 80, 90])
def test_msdp_messages_print_as_tcpdump(tmp_path, snaplen) -> None:
    """MSDP (port 639) decoded as tcpdump decodes it, whole and cut."""
    frames_ = frames_on([(40000, 639), (639, 40000)], MSDP_PAYLOADS)
    cut = tmp_path / "msdp.pcap"
    write_cut(cut, snaplen, frames_)
    theirs = tcpdump_text(cut)
    assert xdptcp_text(cut) == theirs
    if snaplen == 0:
        assert any(line.endswith(": msdp SA 1 entries [w/data]") for line in theirs)
        assert any(line.endswith(": msdp SA-Request for 198.18.0.1") for line in theirs)


def pptp_message(kind: int, body: bytes, cookie: int = 0x1A2B3C4D, reserved: int = 0) -> bytes:
    """A PPTP control message: its 12-byte header, then ``body``."""
    head = (12 + len(body)).to_bytes(2, "big") + b"\0\1" + cookie.to_bytes(4, "big")
    return head + kind.to_bytes(2, "big") + reserved.to_bytes(2, "big") + body


def pptp_text(s: bytes, size: int) -> bytes:
    return s.ljust(size, b"\0")


# PPTP control messages (print-pptp.c): each type, with odd values where tcpdump tells them.
PPTP_PAYLOADS = [
    pptp_message(1, b"\1\0\0\0" + bytes([0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 8, 0x70])
                 + pptp_text(b"", 64) + pptp_text(b"Microsoft Windows NT", 64)),
    pptp_message(1, b"\1\0\0\5" + bytes([0, 0, 0, 2, 0, 0, 0, 2, 0, 9, 0, 1])
                 + pptp_text(b"host\x01\x80name", 64) + b"v" * 64),  # no NUL in 64 bytes
    pptp_message(2, b"\1\0\1\0" + bytes(12) + pptp_text(b"pns", 64) + pptp_text(b"ven", 64)),
    pptp_message(3, b"\1\0\0\0"),
    pptp_message(3, b"\2\7\0\1"),  # both reserved fields not zero
    pptp_message(4, b"\1\0\0\0"),
    pptp_message(5, b"\0\0\0\7"),
    pptp_message(6, b"\0\0\0\7\1\0\0\0"),
    pptp_message(7, bytes([0, 1, 0, 2, 0, 0, 0, 0x64, 0, 0, 0x27, 0x10, 0, 0, 0, 3, 0, 0, 0, 2,
                           0, 64, 0, 0, 0, 5, 0, 0]) + pptp_text(b"5551234", 64)
                 + pptp_text(b"sub", 64)),  # a phone number longer than its length
    pptp_message(8, bytes([0, 1, 0, 2, 1, 0, 0, 0, 0, 1, 0x86, 0xA0, 0, 64, 0, 0, 0, 0, 0, 9])),
    pptp_message(9, bytes([0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 3, 0, 100])
                 + pptp_text(b"12345", 64) + pptp_text(b"67890", 64) + pptp_text(b"", 64)),
    pptp_message(10, bytes([0, 1, 0, 2, 1, 0, 0, 64, 0, 0, 0, 0])),
    pptp_message(11, bytes([0, 2, 0, 0, 0, 0, 0x27, 0x10, 0, 64, 0, 0, 0, 0, 0, 9])),
    pptp_message(12, b"\0\1\0\0"),
    pptp_message(13, b"\0\1\3\0\0\0\0\0" + pptp_text(b"stats", 128)),
    pptp_message(14, b"\0\2\0\0" + bytes(range(24))),
    pptp_message(15, b"\0\2\0\0\xff\xff\xff\xff\0\0\0\0"),
    pptp_message(0, b"", reserved=3),  # NOT_DEFINED, a reserved field not zero
    pptp_message(16, b"rest"),  # no such type
    pptp_message(5, b"\0\0\0\7", cookie=0x01020304),  # the wrong magic cookie
    pptp_message(1, b"\1\0"),  # a message shorter than its type
]  # fmt: skip


@pytest.mark.parametrize("snaplen", [0, 54, 60, 62, 63, 64, 66, 67, 68, 70, 72, 74, 76, 80, 84,
                                     90, 100, 120, 150, 200, 250])  # fmt: skip
def test_pptp_messages_print_as_tcpdump(tmp_path, snaplen) -> None:
    """PPTP (port 1723) decoded as tcpdump decodes it without -v, whole and cut inside its header
    and its fields; with xdptcp's default capture (no payload), ``: pptp [|pptp]``."""
    frames_ = frames_on([(40000, 1723), (1723, 40000)], PPTP_PAYLOADS + PAYLOADS[::4])
    cut = tmp_path / "pptp.pcap"
    written = write_cut(cut, snaplen, frames_)
    theirs = tcpdump_text(cut)
    assert xdptcp_text(cut) == theirs
    fmt = TextFormatter()
    assert [fmt.format(f.ts_ns, f.data, f.wire_len) for f in written] == theirs
    if snaplen == 0:
        shown = (": pptp CTRL_MSGTYPE=SCCRQ PROTO_VER(1.0) FRAME_CAP(A) BEARER_CAP(DA) MAX_CHAN(0)"
                 " FIRM_REV(2160) HOSTNAME() VENDOR(Microsoft Windows NT)")  # fmt: skip
        assert any(line.endswith(shown) for line in theirs)


def of_message(version: int, kind: int, body: bytes = b"", size: int = -1, xid: int = 1) -> bytes:
    """An OpenFlow message: its 8-byte header (``size``, when given, instead of its length)."""
    size = 8 + len(body) if size < 0 else size
    return bytes([version, kind]) + size.to_bytes(2, "big") + xid.to_bytes(4, "big") + body


# OpenFlow messages (print-openflow.c without -v: the headers), one or more to a segment.
OPENFLOW_PAYLOADS = [
    of_message(1, 0),  # 1.0 HELLO
    of_message(4, 0, bytes(8), xid=0xDEADBEEF),  # 1.3 HELLO with an element
    of_message(1, 2, b"ping") + of_message(1, 3, b"ping", xid=2),  # two messages
    of_message(1, 5) + of_message(1, 6, bytes(24)) + of_message(1, 18),  # three
    of_message(1, 5, bytes(4)),  # FEATURES_REQUEST has no body: invalid
    of_message(1, 6, bytes(20)),  # FEATURES_REPLY under its minimum: invalid
    of_message(1, 0x0B, bytes(80)) + of_message(1, 0x0B, bytes(81)),  # FLOW_REMOVED
    of_message(4, 0x0C, bytes(72)) + of_message(4, 0x0C, bytes(71)),  # 1.3 PORT_STATUS
    of_message(4, 0x0A, bytes(3)) + of_message(4, 0x1D, bytes(5)),  # any length
    of_message(4, 0x1E) + of_message(1, 0x16),  # unknown types
    of_message(2, 0) + of_message(7, 3, b"x"),  # 1.1: no types known; an unknown version
    of_message(1, 0, size=4) + of_message(1, 0),  # too short: the rest is not read
    of_message(1, 2, size=100),  # longer than the segment
    of_message(1, 0) + of_message(1, 2, b"abcd")[:-6],  # the next message cut short
    b"\x01",
    b"\x01\x00",
    b"\x04\x00\x00",
    b"\x04\x00\x00\x10\x00",
    of_message(1, 0) + b"\x01\x02\x00",  # the payload ends in a header
]


@pytest.mark.parametrize("snaplen", [0, 54, 55, 56, 58, 60, 62, 63, 66, 70, 74, 78, 90, 100, 120])
def test_openflow_messages_print_as_tcpdump(tmp_path, snaplen) -> None:
    """OpenFlow (ports 6633 and 6653) decoded as tcpdump decodes it without -v, whole and cut:
    each message's header on a line of its own."""
    ports = [(40000, 6653), (6633, 40000), (6653, 80)]
    frames_ = frames_on(ports, OPENFLOW_PAYLOADS + PAYLOADS[::4])
    cut = tmp_path / "openflow.pcap"
    written = write_cut(cut, snaplen, frames_)
    theirs = tcpdump_text(cut)
    assert xdptcp_text(cut) == theirs
    fmt = TextFormatter()
    assert "\n".join(fmt.format(f.ts_ns, f.data, f.wire_len) for f in written).split("\n") == theirs
    if snaplen == 0:
        header = "\tversion 1.3, type PORT_STATUS, length 80, xid 0x00000001"
        for line in (header, header.replace("80", "79") + " (invalid)", "\tversion 1.0, type"
                     " HELLO, length 4 (too short!), xid 0x00000001 (invalid)"):  # fmt: skip
            assert line in theirs, line


# LDP PDUs (print-ldp.c): their headers, and the ones it refuses.
LDP_PAYLOADS = [
    b"\0\1\0\x1e\xc6\x12\0\1\0\0" + b"\x02\x01\0\x14" + bytes(20),  # an Initialization
    b"\0\1\0\x1e\xc6\x12\0\2\0\5" + bytes(24),
    b"\0\2\0\x1e" + bytes(30),  # version 2
    b"\0\1\0\5" + bytes(30),  # a PDU length under 6
    bytes(18),  # too short for a PDU and a message header: nothing
    bytes(19),
]


@pytest.mark.parametrize("snaplen", [0, 54, 56, 58, 60, 62, 63, 64, 66, 70, 74, 76, 80, 84, 90])
def test_ldp_pdus_print_as_tcpdump(tmp_path, snaplen) -> None:
    """LDP (port 646) decoded as tcpdump decodes it without -v, whole and cut."""
    frames_ = frames_on([(40000, 646), (646, 40000)], LDP_PAYLOADS + PAYLOADS[::3])
    cut = tmp_path / "ldp.pcap"
    write_cut(cut, snaplen, frames_)
    theirs = tcpdump_text(cut)
    assert xdptcp_text(cut) == theirs
    if snaplen == 0:
        shown = "length 34LDP, Label-Space-ID: 198.18.0.1:0, pdu-length: 30"
        assert any(line.endswith(shown) for line in theirs)
