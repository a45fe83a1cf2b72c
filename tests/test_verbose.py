"""-v, -vv, -vvv: the IP header's fields, the TCP checksum checked, a reset's text, every line of
a text protocol's request, DNS's fuller records, as tcpdump prints them.

Each case is a frame whose verbose text differs from the plain line in its own way; the whole
file is read by xdptcp and by tcpdump at each level and the outputs compared. Captures made by
others are compared in tests/test_realworld.py; here also the live capture beside tcpdump and
the options' usage.
"""

from __future__ import annotations

import os
import struct
import sys

import pytest
import test_hexdump
from test_xdptcp_live import beside_tcpdump

from xdptcp.cli import build_parser, output_options
from xdptcp.verbose import checksum_text, ones_sum

from conftest import ROOT, need_tool, run
from traffic import (
    A4,
    A6,
    B4,
    B6,
    C6,
    Frame,
    dest_options,
    ethernet,
    fragment,
    hop_by_hop,
    ipv4_packet,
    ipv6_packet,
    routing,
    tcp_frame,
    tcp_segment,
    timestamp,
    write_pcap,
)

veth = test_hexdump.veth  # the fixture: a veth pair, tcpreplay at hand, removed after
UTC = dict(os.environ, TZ="UTC")


def _damaged(frame: bytes, at: int) -> bytes:
    """The frame with one byte at ``at`` changed: a checksum that no longer adds up."""
    return frame[:at] + bytes((frame[at] ^ 0x5A,)) + frame[at + 1 :]


def _source_routed(route: bytes, final: str) -> bytes:
    """An IPv4 frame with a source route whose TCP checksum is taken, as it must be, with the
    route's last address for the destination."""
    segment = tcp_segment(A4, final, 40000, 5001, flags="S", options=[timestamp(1, 0)])
    return ethernet(ipv4_packet(A4, B4, 6, segment, ip_options=route), 0x0800)


def _routed6(addresses: list[str]) -> bytes:
    segment = tcp_segment(A6, addresses[-1], 40000, 5001, flags="S")
    packet = ipv6_packet(A6, B6, 6, segment, ext=[routing(addresses, segleft=len(addresses))])
    return ethernet(packet, 0x86DD)


def _dns_response() -> bytes:
    """A DNS response over TCP: one question, an A answer, an SOA in the authority section and
    an A record in the additional one."""
    name = b"\x07example\x03com\x00"
    question = name + struct.pack("!HH", 1, 1)
    answer = b"\xc0\x0c" + struct.pack("!HHIH4s", 1, 1, 3725, 4, bytes((198, 18, 0, 9)))
    soa = b"\x02ns\xc0\x0c" + b"\x04host\xc0\x0c" + struct.pack("!5I", 2026, 7200, 900, 86400, 60)
    authority = b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 90061, len(soa)) + soa
    extra = b"\xc0\x0c" + struct.pack("!HHIH4s", 1, 1, 0, 4, bytes((198, 18, 0, 10)))
    header = struct.pack("!6H", 0x1234, 0x8180, 1, 1, 1, 1)
    message = header + question + answer + authority + extra
    return struct.pack("!H", len(message)) + message


def _dns_query() -> bytes:
    question = b"\x07example\x03com\x00" + struct.pack("!HH", 28, 1)
    message = struct.pack("!6H", 0x4321, 0x0100, 1, 0, 0, 0) + question
    return struct.pack("!H", len(message)) + message


# IP options: a record route with two addresses recorded, timestamps alone (two recorded), an
# address and a timestamp (one recorded, three hops that could not record).
RR = b"\x07\x0b\x08" + bytes((198, 18, 0, 7, 198, 18, 0, 8))
TS_ONLY = b"\x44\x0c\x09\x00" + struct.pack("!II", 1000, 2000)
TS_ADDR = b"\x44\x0c\x05\x31" + bytes((198, 18, 0, 7)) + struct.pack("!I", 9)
RESPONSE = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\nhi"
# A PPTP Start-Control-Connection-Reply (result 1, error 0) and two MSDP keepalives.
PPTP = (struct.pack("!HHIHH", 156, 1, 0x1A2B3C4D, 2, 0) + struct.pack("!HBBIIHH", 0x100, 1, 0, 1, 1,
        1, 0) + b"pac".ljust(64, b"\0") + b"vendor".ljust(64, b"\0"))  # fmt: skip
MSDP = b"\x04\x00\x03" * 2
# RPKI-RTR (RFC 8210's version 0): a Serial Notify, an IPv4 and an IPv6 prefix, an Error Report
# carrying the PDU it is about and a text, a PDU of a kind not defined.
_NOTIFY = struct.pack("!BBHII", 0, 0, 0x1234, 12, 77)
_V6 = bytes.fromhex("20010db8" + "00" * 12)
RPKI = (
    _NOTIFY
    + struct.pack("!BBHIBBBB4sI", 0, 4, 0, 20, 1, 24, 32, 0, bytes((198, 18, 0, 0)), 64500)
    + struct.pack("!BBHIBBBB16sI", 0, 6, 0, 32, 0, 32, 48, 0, _V6, 64501)
    + struct.pack("!BBHII", 0, 10, 6, 8 + 4 + 12 + 4 + 5, 12)
    + _NOTIFY
    + struct.pack("!I", 5)
    + b"stale"
    + struct.pack("!BBHI", 0, 99, 0, 10)
    + b"\x01\x02"
)


def _ldp_tlv(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _ldp_pdu(*messages: tuple[int, bytes]) -> bytes:
    """An LDP PDU of messages (type, TLVs) from LSR 198.18.0.1, label space 0."""
    body = b"".join(
        struct.pack("!HHI", kind, len(tlvs) + 4, 0x100 + i) + tlvs
        for i, (kind, tlvs) in enumerate(messages)
    )
    return struct.pack("!HH4sH", 1, len(body) + 6, bytes((198, 18, 0, 1)), 0) + body


_VC = (
    struct.pack("!HBI", 0x8005, 4 + 4 + 8 + 4, 7)  # Ethernet, control word; VC info length
    + struct.pack("!I", 1001)  # VC ID
    + b"\x01\x04\x05\xdc"  # MTU 1500
    + b"\x03\x08eth0/1"  # a description
    + b"\x0c\x04\x05\x06"  # VCCV
)
LDP = _ldp_pdu(
    (0x0100, _ldp_tlv(0x0400, struct.pack("!HH", 15, 0xC000))
     + _ldp_tlv(0x0401, bytes((198, 18, 0, 1))) + _ldp_tlv(0x0403, _V6)
     + _ldp_tlv(0x0402, struct.pack("!I", 9))),
    (0x0001, _ldp_tlv(0x4300, struct.pack("!II", 0x80000019, 0x104))
     + _ldp_tlv(0x0503, struct.pack("!HHII", 0x800B, 0, 120000, 0))),
    (0x0400, _ldp_tlv(0x0100, b"\x80" + _VC) + _ldp_tlv(0x0200, b"\x00\x01\x00\x10")
     + _ldp_tlv(0x0601, b"\x05\xdc") + _ldp_tlv(0x8333, b"\xab\xcd")),
    (0x0400, _ldp_tlv(0x0100, b"\x02\x00\x01\x15\xc6\x12\x07")
     + _ldp_tlv(0x0100, b"\x02\x00\x01\x40")
     + _ldp_tlv(0x0100, b"\x02\x00\x02\x40\x20\x01\x0d\xb8\x00\x00\x00\x01")
     + _ldp_tlv(0x0200, b"\x01")),
    (0x0401, _ldp_tlv(0x0100, b"\x01")),  # a Label Request: dumped, not decoded
    (0x0301, _ldp_tlv(0x0101, b"\x00\x01") + struct.pack("!HH", 0x0101, 40)),  # past its end
)  # fmt: skip
# A message shorter than its header says it can be, then a PDU of another version.
LDP_SHORT = (struct.pack("!HH4sH", 1, 14, bytes(4), 0) + struct.pack("!HHI", 0x0201, 2, 1)
             + b"\0" * 4 + struct.pack("!HH4sH", 2, 6, bytes(4), 0))  # fmt: skip
HTTP = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"


def frames() -> list[Frame]:
    ipv4 = [
        tcp_frame(A4, B4, 40000, 5001, flags="S", dont_frag=True, ident=4660),
        tcp_frame(A4, B4, 40000, 5001, flags="A", tos=0x02, ttl=1),  # ECT(0)
        tcp_frame(A4, B4, 40000, 5001, flags="A", tos=0xB9),  # ECT(1), DSCP
        tcp_frame(A4, B4, 40000, 5001, flags="A", tos=0x03, ttl=0),  # CE; no ttl printed
        _damaged(tcp_frame(A4, B4, 40000, 5001, flags="PA", payload=b"data"), 14 + 40 + 2),
        _damaged(tcp_frame(A4, B4, 40000, 5001, flags="A"), 14 + 8),  # the IP header's
        tcp_frame(A4, B4, 40000, 5001, flags="A", ip_options=b"\x94\x04\x00\x00"),  # RA
        tcp_frame(A4, B4, 40000, 5001, flags="A", ip_options=b"\x94\x04\x00\x07"),  # RA value
        tcp_frame(A4, B4, 40000, 5001, flags="A", ip_options=RR),
        tcp_frame(A4, B4, 40000, 5001, flags="A", ip_options=TS_ONLY),
        tcp_frame(A4, B4, 40000, 5001, flags="A", ip_options=TS_ADDR),
        tcp_frame(A4, B4, 40000, 5001, flags="A", ip_options=b"\x01\x01\x88\x04\x00\x01"),
        _source_routed(b"\x83\x07\x04" + bytes((198, 18, 0, 50)), "198.18.0.50"),  # LSRR
        _source_routed(b"\x89\x0b\x04" + bytes((198, 18, 0, 50, 198, 18, 0, 51)), "198.18.0.51"),
        tcp_frame(A4, B4, 40000, 5001, flags="PA", payload=b"x" * 8, more_frags=True),
        tcp_frame(A4, B4, 40000, 5001, flags="PA", payload=b"x" * 8, frag_offset=64),
        tcp_frame(A4, B4, 40000, 5001, flags="A", dont_frag=True, more_frags=True),
    ]
    ipv6 = [
        tcp_frame(A6, B6, 40000, 443, flags="S", flow=0x0B812345),  # class 0xb8, a flow label
        tcp_frame(A6, B6, 40000, 443, flags="A", flow=0x00012345),
        _damaged(tcp_frame(A6, B6, 40000, 443, flags="PA", payload=b"abc"), 14 + 40 + 20),
        tcp_frame(A6, B6, 40000, 443, flags="A", ipv6_ext=[hop_by_hop(b"\x05\x02\x00\x00")]),
        tcp_frame(A6, B6, 40000, 443, flags="A", ipv6_ext=[dest_options(b"\x1e\x02\x00\x00")]),
        tcp_frame(A6, B6, 40000, 443, flags="A", ipv6_ext=[hop_by_hop(), dest_options()]),
        _routed6([C6, "2001:db8::77"]),
        tcp_frame(A6, B6, 40000, 443, flags="A", ipv6_ext=[fragment(ident=0xABCDEF)]),
    ]
    tcp = [
        tcp_frame(A4, B4, 40000, 5001, flags="R", payload=b"connection refused"),
        tcp_frame(A4, B4, 40000, 5001, flags="RA", payload=b"a reason longer than thirty bytes"),
        tcp_frame(A6, B6, 40000, 5001, flags="R", payload=b"\x01bin\xffary"),
        tcp_frame(A4, B4, 40000, 80, flags="PA", payload=HTTP),
        tcp_frame(A4, B4, 80, 40000, flags="PA", payload=RESPONSE),
        tcp_frame(A4, B4, 40000, 80, flags="PA", payload=b"GET / HTTP/1.0\r\nHost: a"),
        tcp_frame(A4, B4, 21, 40000, flags="PA", payload=b"220 ready\r\n230 in\r\n"),
        tcp_frame(A4, B4, 40000, 80, flags="PA", payload=b"not a request\r\n"),
        tcp_frame(A4, B4, 53, 40000, flags="PA", payload=_dns_response()),
        tcp_frame(A6, B6, 40000, 53, flags="PA", payload=_dns_query()),
        tcp_frame(A4, B4, 1723, 40000, flags="PA", payload=PPTP),
        tcp_frame(A4, B4, 639, 40000, flags="PA", payload=MSDP),
        tcp_frame(A4, B4, 323, 40000, flags="PA", payload=RPKI),
        tcp_frame(A4, B4, 323, 40000, flags="PA", payload=RPKI[:30] + b"\x07"),  # cut PDU
        tcp_frame(A4, B4, 646, 40000, flags="PA", payload=LDP),
        tcp_frame(A4, B4, 646, 40000, flags="PA", payload=LDP_SHORT),
        tcp_frame(A4, B4, 40000, 5001, flags="A"),  # -vv: the sequence number of a pure ACK
    ]
    ts = 1_700_000_000 * 10**9
    out = [Frame(ts + i * 1000, f, len(f)) for i, f in enumerate(ipv4 + ipv6 + tcp)]
    # A segment the capture cut short: no checksum (it cannot be checked).
    whole = tcp_frame(A4, B4, 40000, 5001, flags="PA", payload=b"y" * 100)
    out.append(Frame(ts + 10**9, whole[:80], len(whole)))
    # Headers the capture cuts: IPv4 options cut before an option's type, before its length,
    # inside it, and after an EOL; IPv6 extension headers cut, each where -v reads more.
    options = tcp_frame(A4, B4, 40000, 5001, flags="A", ip_options=b"\x01" + RR)
    eol = tcp_frame(A4, B4, 40000, 5001, flags="A", ip_options=b"\x01\x00\x00\x00" + RR)
    frag6 = tcp_frame(A6, B6, 40000, 443, flags="A", ipv6_ext=[fragment(ident=7)])
    route6 = _routed6([C6, "2001:db8::77"])
    rpki = tcp_frame(A4, B4, 323, 40000, flags="PA", payload=RPKI)
    ldp = tcp_frame(A4, B4, 646, 40000, flags="PA", payload=LDP)
    for frame, cut in (
        (options, 34),
        (options, 35),
        (options, 36),
        (options, 40),
        (eol, 40),
        (frag6, 14 + 40 + 6),
        (route6, 14 + 40 + 8),
        (route6, 14 + 40 + 30),
        (rpki, 54 + 12 + 15),  # in a prefix
        (rpki, 54 + 64 + 24),  # in the error text
        (ldp, 54 + 10 + 30),  # in a message
        (ldp, 54 + 10 + 116),  # in the Martini VC's description
    ):
        out.append(Frame(ts + 2 * 10**9 + cut, frame[:cut], len(frame)))
    # A destination option whose length runs past its header: tcpdump -v gives up there.
    bad = tcp_frame(A6, B6, 40000, 443, flags="A", ipv6_ext=[dest_options(b"\x1e\x09\x00")])
    out.append(Frame(ts + 3 * 10**9, bad, len(bad)))
    return out


@pytest.fixture(scope="module")
def verbose_pcap(tmp_path_factory):
    path = tmp_path_factory.mktemp("verbose") / "v.pcap"
    write_pcap(path, frames())
    return path


@pytest.mark.parametrize("level", ["-v", "-vv", "-vvv"])
def test_each_level_prints_what_tcpdump_prints(verbose_pcap, level) -> None:
    ref = run(need_tool("tcpdump"), "-nn", level, "-r", str(verbose_pcap), env=UTC)
    got = run(sys.executable, "-m", "xdptcp", level, "-r", str(verbose_pcap), cwd=ROOT,
              env=UTC)  # fmt: skip
    assert got.stdout == ref.stdout
    # the cases are there (each line a test of its own)
    for said in ("(correct)", "(incorrect -> 0x", ", bad cksum ", "flags [DF]", ",ECT(0)", ",CE",
                 "options (RA)", "options (RA value 7)", "options (RR 198.18.0.7, 198.18.0.8,EOL)",
                 "TS{TSONLY", "TS{TS+ADDR", "LSRR 198.18.0.50", "SSRR", "class 0xb8",
                 "flowlabel 0x12345", "HBH (rtalert: 0x0000) ", "DSTOPT (opt_type 0x1e: len=2)",
                 "frag (0x00abcdef:0|20)", "rsv=0x0", "[RST connection refused]",
                 "[RST+ a reason longer than thirty by]", "HTTP, length: 60\n\tGET /index.html",
                 "\tAccept: */*\n\t\n", " [|http]", "FTP, length: 19\n\t220 ready\n\t230 in",
                 "[RST ^AbinM-^?ary]", ": msdp [len 3] Keepalive [len 3] Keepalive",
                 ": pptp Length=156 CTRL-MSG Magic-Cookie=1a2b3c4d CTRL_MSGTYPE=SCCRP",
                 " RESULT_CODE(1:Successful channel establishment) ERR_CODE(0:None)",
                 "RT6 (len=4, type=0 [Deprecated], segleft=2, rsv=0x0,",
                 "IPV6 Prefix PDU (6), length: 32\n\t  IPv6 Prefix 2001:db8::/32-48",
                 "IPv4 Prefix 198.18.0.0/24-32, origin-as 64500, flags 0x01",
                 "Unknown PDU (99), length: 10\n\t  0x0000:  0063 0000 0000 000a 0102",
                 "length: 20 (invalid)", " [|rpki_rtr]",
                 "\n\t  Hello Message (0x0100), length: 48, Message ID: 0x00000100",
                 "\n\t      Hold Time: 15s, Flags: [Targeted Hello, Request for targeted Hellos]",
                 "Status: 0x19, Flags: [Fatal error and don't forward], causing Message ID: ",
                 "Martini VC FEC (0x80): Ethernet, control word, group-ID 7, VC-ID 1001,",
                 "\n\t\t  CV Types (0x06) = [LSP Ping, BFD]", "IPv4 prefix 198.18.0.0/21",
                 "IPv4 prefix (invalid length)", "IPv6 prefix 2001:db8:0:1::/64",
                 " TLV contents go past end of message", "length: 2 (too short, < 4)",
                 "Flags: [ignore if unknown] [|ldp]"):  # fmt: skip
        assert said in got.stdout, said
    if level == "-v":  # (-vv dumps each PDU after its fields)
        assert (
            "\n\t    -----encapsulated PDU-----\n\tRPKI-RTRv0, Serial Notify PDU (0), length: 12"
            "\n\t    Session ID: 0x1234, Serial: 77\n\t  Error text: stale"
        ) in got.stdout
    else:
        assert "\n\t  0x0000:  000a 0006 0000 0021 0000 000c 0000 1234" in got.stdout
    if level != "-vvv":
        assert "example.com. A 198.18.0.9" in got.stdout
    if level != "-v":
        assert " q: A? example.com." in got.stdout
        assert " ns: example.com. " in got.stdout and " ar: example.com. " in got.stdout
        assert " SOA ns.example.com. host.example.com. 2026 7200 900 86400 60" in got.stdout
        assert "Flags [.], cksum 0x" in got.stdout and ", seq 0, ack 0, win" in got.stdout
    if level == "-vvv":
        assert "example.com. [1h2m5s] A 198.18.0.9" in got.stdout
        assert "[1d1h1m1s] SOA" in got.stdout and "[0s] A 198.18.0.10" in got.stdout


def test_the_checksum_arithmetic() -> None:
    assert ones_sum(b"") == 0 and ones_sum(b"\xff\xff") == 0xFFFF
    assert ones_sum(b"\x00\x01\xf2\x03\xf4\xf5\xf6\xf7") == 0xDDF2  # RFC 1071's example
    assert ones_sum(b"\x01") == 0x0100  # an odd byte is the high half of a last word
    assert checksum_text(0x1234, 0xFFFF) == " (correct)"
    # A field of 0x1234 in bytes summing to 0xfffe: it should have held 0x1235.
    assert checksum_text(0x1234, 0xFFFE) == " (incorrect -> 0x1235)"


def _parsed(*argv: str):
    return output_options(build_parser().parse_args(list(argv)))


def test_the_options() -> None:
    assert _parsed("-r", "f", "-vvv").verbose == 3
    # live, the whole frame is kept so that the checksum can be checked, as with a dump
    assert _parsed("-i", "lo", "-v").snaplen == 0 and _parsed("-i", "lo").snaplen is None
    assert _parsed("-i", "lo", "-v", "-s", "96").snaplen == 96
    # tcpdump -w F -v counts what it writes once a second: --stats
    assert _parsed("-i", "lo", "-w", "f", "-v").stats
    assert not _parsed("-r", "f", "-w", "g", "-v").stats
    assert _parsed("-r", "f", "-v").by_record
    got = run(sys.executable, "-m", "xdptcp", "-r", "-", "--json", "-v", cwd=ROOT, check=False)
    assert (got.returncode, got.stderr) == (2, "xdptcp: -v adds to text lines, not to --json\n")


@pytest.mark.system
def test_a_live_capture_prints_what_tcpdump_v_prints(veth, tmp_path) -> None:
    """Live, the frame is kept whole with -v: the checksums are checked as tcpdump checks
    them, right or wrong."""
    pcap = tmp_path / "v.pcap"
    sent = [
        tcp_frame(A4, B4, 40000, 80, flags="S", dont_frag=True, ident=99, tos=0x10),
        tcp_frame(A6, B6, 40001, 80, flags="PA", payload=HTTP, flow=0x00054321),
        _damaged(tcp_frame(A4, B4, 40002, 22, flags="PA", payload=b"SSH-2.0-x\r\n"), 14 + 40 + 3),
        _damaged(tcp_frame(A4, B4, 40003, 22, flags="A"), 14 + 5),
        tcp_frame(A4, B4, 40004, 5001, flags="R", payload=b"gone", vlans=(100,)),
    ]
    write_pcap(pcap, sent)
    out, err, rc, ref = beside_tcpdump(veth, pcap, ("-Q", "in", "-t", "-vv"), "tcp or vlan")
    assert rc == 0, err
    assert f"{len(sent)} packets captured" in err
    assert ref.count("(correct)") == 4 and ref.count("(incorrect -> ") == 1
    assert "bad cksum" in ref and "[RST gone]" in ref
    assert out + "\n" == ref
