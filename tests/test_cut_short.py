"""Frames a snap length cut inside their headers, and damaged records, against tcpdump.

xdptcp shows TCP only: its reference for a file is ``tcpdump -nn -r F tcp``, which selects a
frame when it can read the IPv4 protocol byte or the IPv6 next header (the one of a fragment
header right after the fixed header too), and prints for it ``IP  [|ip]``, `` [|ip6]``, ``IP6 a
> b:  [|frag6]``... Behind other extension headers the reference is ``ip6 protochain 6``, under
VLAN tags ``vlan and tcp``. Every frame is cut at every length from 0 to its end, and the whole
file compared line for line, by the mapped walk (a file in this machine's byte order) and by
the general reader (the other byte order, other link types).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from xdptcp.jsonfmt import JsonFormatter
from xdptcp.tcpdump import TextFormatter

import traffic
from conftest import ROOT, need_tool
from traffic import (
    A4,
    A6,
    B4,
    B6,
    dest_options,
    fragment,
    hop_by_hop,
    routing,
    tcp_frame,  # fmt: skip
)

OPTS = (traffic.mss(1460), traffic.sack_ok(), traffic.timestamp(1, 2), traffic.wscale(7))
SRH = traffic.ExtHeader(43, bytes((2, 4, 1, 0, 0x80, 0, 7)) + bytes(16))  # segment routing

# name: (frame, tcpdump's filter for the same selection)
KINDS = {
    "ipv4": (tcp_frame(A4, B4, 40000, 80, flags="S", options=OPTS), "tcp"),
    "ipv4 options": (tcp_frame(A4, B4, 40000, 80, flags="S", ip_options=b"\x01" * 8), "tcp"),
    "ipv4 length below the capture": (
        tcp_frame(A4, B4, 40000, 80, flags="S", ip_options=b"\x01" * 8, total_length=26), "tcp"),
    "ipv4 later fragment": (
        tcp_frame(A4, B4, 40000, 80, flags="S", ip_options=b"\x01" * 4, frag_offset=8), "tcp"),
    "ipv6": (tcp_frame(A6, B6, 40000, 80, flags="S", options=OPTS), "tcp"),
    "ipv6 fragment": (tcp_frame(A6, B6, 40000, 80, flags="S", ipv6_ext=(fragment(),)), "tcp"),
    "ipv6 later fragment": (
        tcp_frame(A6, B6, 40000, 80, flags="S", ipv6_ext=(fragment(8, more=True),)), "tcp"),
    "ipv6 hop-by-hop": (tcp_frame(A6, B6, 40000, 80, flags="S", ipv6_ext=(hop_by_hop(),)),
                        "ip6 protochain 6"),
    "ipv6 chain": (
        tcp_frame(A6, B6, 40000, 80, flags="S",
                  ipv6_ext=(hop_by_hop(b"\x05\x02\x00\x00"), dest_options(), fragment())),
        "ip6 protochain 6"),
    "ipv6 routing 0": (
        tcp_frame(A6, B6, 40000, 80, flags="S", ipv6_ext=(routing([B6, "2001:db8::7"]),)),
        "ip6 protochain 6"),
    "ipv6 routing 4": (tcp_frame(A6, B6, 40000, 80, flags="S", ipv6_ext=(SRH,)),
                       "ip6 protochain 6"),
    "ipv6 length below the headers": (
        tcp_frame(A6, B6, 40000, 80, flags="S", ipv6_ext=(hop_by_hop(), dest_options()),
                  payload_length=12), "ip6 protochain 6"),
    "vlan ipv4": (tcp_frame(A4, B4, 40000, 80, flags="S", vlans=(5,)), "vlan and tcp"),
    "qinq ipv6": (tcp_frame(A6, B6, 40000, 80, flags="S", vlans=(5, 6), qinq=True),
                  "vlan and vlan and tcp"),
}  # fmt: skip


def every_cut(frame: bytes, start: int = 0) -> list[traffic.Frame]:
    """The frame cut at every length (the wire length is the whole frame's), 1 µs apart."""
    return [traffic.Frame(1_700_000_000_000_000_000 + n * 1000, frame[:n], len(frame))
            for n in range(start, len(frame) + 1)]  # fmt: skip


def tcpdump(path, *args: str) -> str:
    cmd = [need_tool("tcpdump"), "-nn", "-r", str(path), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TZ="UTC"))
    assert res.returncode == 0, res.stderr
    return res.stdout


def xdptcp(path, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(path), *args],
                         capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, TZ="UTC"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("big_endian", [False, True], ids=["walk", "reader"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_frame_cut_anywhere_prints_what_tcpdump_tcp_prints(tmp_path, kind, big_endian):
    frame, selection = KINDS[kind]
    path = tmp_path / "cut.pcap"
    traffic.write_pcap(path, every_cut(frame), big_endian=big_endian)
    want = tcpdump(path, selection)
    assert want.count("\n") > 10
    assert xdptcp(path) == want


@pytest.mark.parametrize("args", [("-S",), ("-t",), ("-tt",), ("-ttt",), ("-tttt",), ("-ttttt",)])
def test_cut_frames_with_tcpdumps_other_flags(tmp_path, args):
    frames = [f for kind in ("ipv4 options", "ipv6 fragment", "ipv6 hop-by-hop")
              for f in every_cut(KINDS[kind][0])]  # fmt: skip
    frames = [f._replace(ts_ns=1_700_000_000_000_000_000 + i * 1000) for i, f in enumerate(frames)]
    path = tmp_path / "cut.pcap"
    traffic.write_pcap(path, frames)
    assert xdptcp(path, *args) == tcpdump(path, *args, "tcp or ip6 protochain 6")


def test_nanosecond_file(tmp_path):
    path = tmp_path / "cut.pcap"
    traffic.write_pcap(path, every_cut(KINDS["ipv4 options"][0]), nano=True)
    assert xdptcp(path, "--nano") == tcpdump(path, "--time-stamp-precision=nano", "tcp")


@pytest.mark.parametrize(
    "expr", ["port 80", "src host 198.18.0.2 or src host 2001:db8::2", "tcp[13] & 2 != 0",
             "greater 30", "ip", "ip6", "ip[9] = 6"],
)  # fmt: skip
def test_a_filter_selects_cut_frames_as_tcpdump_does(tmp_path, expr):
    """``xdptcp -r F EXPR`` prints what ``tcpdump -r F 'tcp and (EXPR)'`` does: a filter that
    reads a byte the capture lacks rejects the frame, in both."""
    frames = [f for kind in ("ipv4", "ipv4 options", "ipv6", "ipv6 fragment")
              for f in every_cut(KINDS[kind][0])]  # fmt: skip
    frames = [f._replace(ts_ns=1_700_000_000_000_000_000 + i * 1000) for i, f in enumerate(frames)]
    path = tmp_path / "cut.pcap"
    traffic.write_pcap(path, frames)
    want = tcpdump(path, f"tcp and ({expr})")
    assert want
    assert xdptcp(path, expr) == want


def sll(proto: int) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, bytes(range(1, 9)), proto)


def sll2(proto: int) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 1, 1, 4, 6, bytes(range(1, 9)))


IP4 = KINDS["ipv4 options"][0][14:]
IP6 = KINDS["ipv6 fragment"][0][14:]
LINKS = {
    "null": (0, struct.pack("=I", 2), IP4),
    "null ipv6": (0, struct.pack("=I", 30), IP6),
    "loop": (108, struct.pack("!I", 2), IP4),
    "raw": (101, b"", IP4),
    "raw ipv6": (101, b"", IP6),
    "ipv4": (228, b"", IP4),
    "ipv6": (229, b"", IP6),
    "cooked": (113, sll(0x800), IP4),
    "cooked ipv6": (113, sll(0x86DD), IP6),
    "cooked v2": (276, sll2(0x800), IP4),
    "cooked v2 ipv6": (276, sll2(0x86DD), IP6),
    "ppp": (9, b"\xff\x03\x00\x21", IP4),
    "ppp hdlc": (50, b"\xff\x03\x00\x21", IP4),
}


@pytest.mark.parametrize("link", list(LINKS))
def test_other_link_types_cut_anywhere(tmp_path, link):
    linktype, head, packet = LINKS[link]
    path = tmp_path / "cut.pcap"
    traffic.write_pcap(path, every_cut(head + packet, 1), linktype=linktype)
    want = tcpdump(path, "tcp")
    assert want.count("\n") > 10
    assert xdptcp(path) == want


@pytest.mark.parametrize("kind", list(KINDS))
def test_json_has_an_object_where_text_has_a_cut_line(tmp_path, kind):
    """One object per line of text, but for the notes on later fragments and damaged IP
    lengths (no TCP header to give, cut or whole); what the capture lacks is null."""
    frame, _ = KINDS[kind]
    path = tmp_path / "cut.pcap"
    traffic.write_pcap(path, every_cut(frame))
    text = xdptcp(path).splitlines()
    objs = [json.loads(line) for line in xdptcp(path, "--json").splitlines()]
    notes = ("frag (8|", "bad-len", "ip-proto-6")
    shown = [line for line in text if not any(n in line for n in notes)]
    assert len(objs) == len(shown)
    for obj, line in zip(objs, shown):
        assert obj["ts_ns"] // 1000 % 1000 == int(line[12:15]), line
        assert (obj["flags"] is None) == ("Flags [" not in line), line
        if "[remaining caplen" in line:  # the fixed IPv4 header is there, its options cut
            assert obj["src"] == A4, line
        elif line.endswith(("IP  [|ip]", " [|ip6]")):
            assert obj["src"] is None and obj["ip"] in (4, 6), line


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_live_record_cut_anywhere_prints_what_tcpdump_prints_for_it(tmp_path, kind):
    """A live capture's records are TCP however its snap length cut them (the program parsed
    the whole frame; tcpdump's filter, in the kernel, runs on the whole packet too): every cut,
    down to one byte, prints tcpdump's line for it (`` [|ether]``, `` [|vlan]``, ``IP  [|ip]``),
    and gives a JSON object."""
    frame, _ = KINDS[kind]
    path = tmp_path / "cut.pcap"
    frames = every_cut(frame, 1)
    traffic.write_pcap(path, frames)
    want = tcpdump(path).splitlines()
    fmt, js = TextFormatter(), JsonFormatter()
    fmt.known_tcp = js.known_tcp = True
    assert [fmt.format(f.ts_ns, f.data, f.wire_len) for f in frames] == want
    objs = [js.format(f.ts_ns, f.data, f.wire_len) for f in frames]
    notes = ("frag (8|", "bad-len", "ip-proto-6")  # no TCP header to give, cut or whole
    assert [o is not None for o in objs] == [not any(n in line for n in notes) for line in want]


def damaged_pcap(path, frame: bytes, *, big_endian=False, linktype=1) -> None:
    """Records of ``frame`` whose original length is below the captured one (10, 0, one byte
    short), between whole ones."""
    order = ">" if big_endian else "<"
    n = len(frame)
    out = [struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for usec, wire in enumerate((n, 10, 0, n - 1, n, 3)):
        out.append(struct.pack(order + "IIII", 1_700_000_000, usec, n, wire) + frame)
    path.write_bytes(b"".join(out))


@pytest.mark.parametrize("expr", [None, "tcp[13] & 2 != 0", "greater 20", "less 5"])
@pytest.mark.parametrize(
    "link", ["ethernet", "ethernet, other byte order", "raw", "cooked", "udp"]
)  # fmt: skip
def test_a_damaged_record_prints_tcpdumps_invalid_header_note(tmp_path, link, expr):
    """A record whose original length is below its captured length: tcpdump prints
    ``[Invalid header: len(10) < caplen(54)]`` (``len==0``), no timestamp, when the captured
    bytes pass its filter (its loads bounded by them, ``len`` the record's)."""
    frame = tcp_frame(A4, B4, 40000, 80, flags="S", seq=1)
    if link == "udp":
        frame = traffic.udp_frame(A4, B4)
    linktype = {"raw": 101, "cooked": 113}.get(link, 1)
    if linktype != 1:
        frame = (sll(0x800) if link == "cooked" else b"") + frame[14:]
    path = tmp_path / "damaged.pcap"
    damaged_pcap(path, frame, big_endian="other" in link, linktype=linktype)
    want = tcpdump(path, "tcp" if expr is None else f"tcp and ({expr})")
    if link != "udp":
        assert "[Invalid header: len" in want
    assert xdptcp(path, *([expr] if expr else [])) == want


def test_damaged_ipv4_header_lengths(tmp_path):
    """Damaged, not cut: a header length below 20 (``IP bad-hlen 16``), a total length below
    the header's and beyond the frame (``IP truncated-ip - 6 bytes missing! bad-len 30``)."""
    base = tcp_frame(A4, B4, 40000, 80, flags="S")
    bad_hlen = base[:14] + bytes([0x44]) + base[15:]
    opts = tcp_frame(A4, B4, 40000, 80, flags="S", ip_options=b"\x01" * 20)
    # IHL 10 (40 bytes), total length 30, the frame 14 + 24 on the wire, 14 + 24 captured
    bad_len = opts[:16] + struct.pack("!H", 30) + opts[18:38]
    frames = [traffic.Frame(1_700_000_000_000_000_000 + i * 1000, d, len(d))
              for i, d in enumerate((bad_hlen, bad_len, bad_len[:34]))]  # fmt: skip
    path = tmp_path / "damaged.pcap"
    traffic.write_pcap(path, frames)
    want = tcpdump(path, "tcp")
    assert "IP bad-hlen 16" in want and "bytes missing! bad-len 30" in want
    assert xdptcp(path) == want


@pytest.mark.parametrize("expr", [None, "greater 100000", "tcp[13] & 16 != 0", "port 53"])
@pytest.mark.parametrize("link", ["ethernet", "ethernet, other byte order", "raw", "cooked"])
def test_a_record_longer_than_tcpdump_takes_prints_its_note(tmp_path, link, expr):
    """A record whose original length is above 262144 (tcpdump's MAXIMUM_SNAPLEN; a damaged
    file, or a BIG TCP packet): tcpdump prints ``[Invalid header: len(N) > 262144]`` in its
    place when it passes the filter, and the packet takes no part in the relative sequence
    numbers: the ACK after two such records is its conversation's first, its ack absolute
    (after a packet it would be relative). 262144 itself is a packet."""
    first = tcp_frame(A4, B4, 40000, 80, flags=".", seq=1001, ack=5000)
    second = tcp_frame(A4, B4, 40000, 80, flags=".", seq=1001, ack=6000)
    linktype = {"raw": 101, "cooked": 113}.get(link, 1)
    strip = {"raw": lambda f: f[14:], "cooked": lambda f: sll(0x800) + f[14:]}.get(link)
    records = [(first, 300_000), (second, 262_145), (second, 262_144)]
    frames = [traffic.Frame(1_700_000_000_000_000_000 + i * 1000, strip(f) if strip else f, n)
              for i, (f, n) in enumerate(records)]  # fmt: skip
    path = tmp_path / "long.pcap"
    traffic.write_pcap(path, frames, big_endian="other" in link, linktype=linktype)
    want = tcpdump(path, "tcp" if expr is None else f"tcp and ({expr})")
    if expr != "port 53":
        assert want.startswith(
            "[Invalid header: len(300000) > 262144]\n[Invalid header: len(262145) > 262144]\n"
        ), want
        assert "Flags [.], ack 6000," in want, want
    args = [expr] if expr else []
    assert xdptcp(path, *args) == want
    with open(path, "rb") as f:  # the reader of a stream, not of a mapped file
        res = subprocess.run([sys.executable, "-m", "xdptcp", "-r", "-", *args], stdin=f,
                             capture_output=True, text=True, cwd=ROOT,
                             env=dict(os.environ, TZ="UTC"))  # fmt: skip
    assert res.returncode == 0 and res.stdout == want, res.stderr
    # --json: an object for every record, the long ones as a damaged record's (their own
    # numbers), the packet's ack as the text line has it
    objs = [json.loads(line) for line in xdptcp(path, "--json", *args).splitlines()]
    if expr == "port 53":
        assert objs == []
        return
    assert [(o["wire_len"], o["ack"]) for o in objs] == [(300_000, 5000), (262_145, 6000),
                                                          (262_144, 6000)]  # fmt: skip
    assert objs[-1]["cap_len"] == len(frames[-1].data)  # the record's, not its Ethernet view's
