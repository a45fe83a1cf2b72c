"""The filter: parse errors name the part, and the compiled form selects what tcpdump selects."""

from __future__ import annotations

import random
import struct
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_tool
from xdptcp.filter import ACCEPT, FILTER_MAX, INSN, REJECT, FilterError, compile_filter
from xdptcp.record import Verdict, parse_frame

# ---- frames (a private builder: enough variety to exercise every predicate) -----------------

V4 = ["198.18.0.1", "198.18.0.2", "198.19.5.5", "198.18.200.9"]
V6 = ["2001:db8::1", "2001:db8::2", "2001:db8:1::2", "2001:db8:ffff::9"]
PORTS = [80, 443, 22, 15, 1234, 1500, 50000]
FLAGS = [0x02, 0x12, 0x10, 0x04, 0x11, 0x18, 0x20, 0xC2, 0x14, 0x01, 0x08, 0x00]
TAGS = [[], [], [(0x8100, 10)], [(0x8100, 20)], [(0x88A8, 100), (0x8100, 10)], [(0x8100, 10)] * 3]


def _ip(addr: str) -> bytes:
    import ipaddress

    return ipaddress.ip_address(addr).packed


def _csum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_header(sport: int, dport: int, flags: int, opt_words: int = 0) -> bytes:
    opts = b"\x01" * (4 * opt_words)
    doff = 5 + opt_words
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 2, doff << 4, flags, 512, 0, 0) + opts


def ipv4(src: str, dst: str, payload: bytes, proto: int = 6, opt_words: int = 0, frag=0) -> bytes:
    ihl = 5 + opt_words
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 7, frag, 64, proto, 0,
        _ip(src), _ip(dst),
    ) + b"\x01" * (4 * opt_words)  # fmt: skip
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src: str, dst: str, payload: bytes, nexthdr: int = 6, ext: bytes = b"") -> bytes:
    return struct.pack("!IHBB", 6 << 28, len(ext) + len(payload), nexthdr, 64) + (
        _ip(src) + _ip(dst) + ext + payload
    )


def ether(l3: bytes, ethertype: int, tags=()) -> bytes:
    out = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", ethertype) + l3


def varied_frames(seed: int = 7, count: int = 400) -> list[bytes]:
    rnd = random.Random(seed)
    frames = []
    for i in range(count):
        tags = rnd.choice(TAGS)
        th = tcp_header(
            rnd.choice(PORTS), rnd.choice(PORTS), rnd.choice(FLAGS), rnd.choice([0, 0, 3, 10])
        )
        payload = th + bytes(rnd.choice([0, 0, 10]))
        kind = i % 10
        if kind < 5:
            l3 = ipv4(rnd.choice(V4), rnd.choice(V4), payload, opt_words=rnd.choice([0, 0, 2, 10]))
            frame = ether(l3, 0x0800, tags)
        elif kind < 8:
            ext, nexthdr = b"", 6
            shape = rnd.choice(["none", "none", "hop", "frag", "dst+rt"])
            if shape == "hop":
                ext, nexthdr = bytes([6, 0]) + bytes(6), 0
            elif shape == "frag":
                ext, nexthdr = bytes([6, 0, 0, 1]) + b"\0\0\0\x2a", 44
            elif shape == "dst+rt":
                ext, nexthdr = bytes([43, 1]) + bytes(14) + bytes([6, 0, 0, 0]) + bytes(4), 60
            frame = ether(ipv6(rnd.choice(V6), rnd.choice(V6), payload, nexthdr, ext), 0x86DD, tags)
        elif kind == 8:
            udp = struct.pack("!HHHH", 80, 80, 8, 0)
            frame = ether(ipv4(rnd.choice(V4), rnd.choice(V4), udp, proto=17), 0x0800, tags)
        else:
            frame = ether(ipv4(rnd.choice(V4), rnd.choice(V4), payload), 0x0800, tags)
            frame = frame[: rnd.randrange(len(frame))]  # truncated somewhere
        frames.append(frame)
    return frames


def write_pcap(path: Path, frames: list[bytes]) -> None:
    """Frame i gets timestamp 1_000_000 + i seconds, so tcpdump's output maps back to it."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1_000_000 + i, 0, len(frame), len(frame)))
            f.write(frame)


def tcpdump_selects(pcap: Path, expr: str) -> set[int]:
    out = subprocess.run(
        [need_tool("tcpdump"), "-r", str(pcap), "-nn", "-tt", expr],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {int(float(line.split()[0])) - 1_000_000 for line in out.splitlines() if line}


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> tuple[Path, list[bytes]]:
    frames = varied_frames()
    path = tmp_path_factory.mktemp("filter") / "varied.pcap"
    write_pcap(path, frames)
    return path, frames


def tcp_indices(frames: list[bytes]) -> set[int]:
    return {i for i, f in enumerate(frames) if parse_frame(f)[0] is Verdict.TCP}


EXPRESSIONS = [
    "host 198.18.0.1",
    "src host 198.18.0.1",
    "dst host 2001:db8::1",
    "host 2001:db8::1 or host 198.18.0.2",
    "host 198.18.0.1 or 198.18.0.2",
    "net 198.18.0.0/16",
    "src net 198.18.0.0/15",
    "dst net 2001:db8:1::/48",
    "net 198.19.0.0 mask 255.255.0.0",
    "net 198.18",
    "src and dst net 198.18.0.0/16",
    "port 80",
    "src port 443",
    "dst port 22",
    "tcp port 80",
    "port http",
    "portrange 10-20",
    "src portrange 1000-2000",
    "dst portrange 2000-1000",
    "ip",
    "ip6",
    "tcp",
    "tcp and ip",
    "ip host 198.18.0.1",
    "ip6 and not dst port 80",
    "vlan",
    "not vlan",
    "vlan 10",
    "vlan and host 198.18.0.1",
    "vlan 100 and vlan 10 and port 80",
    "vlan or host 198.18.0.1",
    "vlan and ip6",
    "vlan 20 or vlan 10 and tcp",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) != 0",
    "tcp[tcpflags] == tcp-syn",
    "tcp[tcpflags] & tcp-rst == 0",
    "tcp[tcpflags] & 0x12 = 0x12",
    "tcp[tcpflags] & (tcp-ece|tcp-cwr) != 0",
    "tcp[tcpflags] & tcp-fin != 0 or tcp[tcpflags] & tcp-push != 0",
    "tcp[tcpflags] & tcp-urg != 0 && tcp[tcpflags] & tcp-ack = 0",
    "tcp[tcpflags] > 16",
    "not port 80",
    "!(host 198.18.0.1 || port 22)",
    "host 198.18.0.1 and (port 80 or port 443)",
    "port 80 or port 443 and host 198.18.0.2",
    "src or dst port 80 and not tcp[tcpflags] & tcp-ack != 0",
    "not (net 2001:db8::/48 and (src port 15 or dst portrange 1-100)) and not vlan 20",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_compiled_filter_selects_what_tcpdump_selects(varied, expr: str) -> None:
    pcap, frames = varied
    tcp = tcp_indices(frames)
    flt = compile_filter(expr)
    ours = {i for i in tcp if flt.matches(frames[i])}
    assert ours == tcpdump_selects(pcap, expr) & tcp


def test_varied_frames_cover_every_case(varied) -> None:
    """The comparison means little unless the pcap has each kind of frame and both answers."""
    _, frames = varied
    verdicts = {parse_frame(f)[0] for f in frames}
    assert {Verdict.TCP, Verdict.NOT_TCP, Verdict.TRUNCATED, Verdict.VLAN_TOO_DEEP} <= verdicts
    parsed = [parse_frame(f)[1] for f in frames if parse_frame(f)[0] is Verdict.TCP]
    assert {p.vlans for p in parsed} == {0, 1, 2}
    assert {p.ip_version for p in parsed} == {4, 6}
    assert any(not p.port_ok for p in parsed) and any(p.tcp_ok and not p.port_ok for p in parsed)
    for expr in EXPRESSIONS:
        flt = compile_filter(expr)
        hits = sum(flt.matches(f) for f in frames)
        assert 0 < hits < len(parsed), expr


def test_no_filter_matches_every_tcp_frame(varied) -> None:
    _, frames = varied
    flt = compile_filter("")
    assert flt.insns == () and flt.rodata_values()["xdptcp_filter_len"] == b"\0\0\0\0"
    assert {i for i, f in enumerate(frames) if flt.matches(f)} == tcp_indices(frames)


@pytest.mark.parametrize(
    "expr, part",
    [
        ("udp", "udp"),
        ("ether host 02:00:00:00:00:01", "ether"),
        ("tcp[13] & 2 != 0", "13"),
        ("greater 100", "greater"),
        ("ip[0] = 0x45", "ip"),
        ("port 80 and udp", "udp"),
        ("host", "end of filter"),
        ("(port 80", "end of filter"),
        ("host example.com", "example.com"),
        ("net 198.18.0.1/15", "198.18.0.1/15"),
        ("vlan 4096", "4096"),
        ("port 65536", "65536"),
        ("ip port 80", "80"),
        ("ip6 host 198.18.0.1", "198.18.0.1"),
        ("tcp[tcpflags] & tcp-syn", "end of filter"),
        ("port 80 $", "$"),
        ("80", "80"),
        ("port 80 port 81", "port"),
    ],
)
def test_unsupported_filter_is_one_line_naming_the_part(expr: str, part: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    msg = str(info.value)
    assert "\n" not in msg
    assert repr(part) in msg
    assert info.value.part == part
    assert expr[info.value.position :].startswith(part) or part == "end of filter"


def test_and_or_have_equal_precedence_left_to_right() -> None:
    """libpcap: `a or b and c` is `(a or b) and c`."""
    frame = ether(ipv4("198.18.0.9", "198.18.0.8", tcp_header(80, 1, 2)), 0x0800)
    assert compile_filter("port 80 or port 443 and host 198.18.0.2").matches(frame) is False
    assert compile_filter("port 80 or (port 443 and host 198.18.0.2)").matches(frame) is True


def test_jumps_only_go_forward_and_fit_the_rodata_table() -> None:
    flt = compile_filter(EXPRESSIONS[-1])
    for pc, insn in enumerate(flt.insns):
        for target in (insn.jt, insn.jf):
            assert target in (ACCEPT, REJECT) or pc < target < len(flt.insns)
    values = flt.rodata_values()
    assert len(values["xdptcp_filter"]) == FILTER_MAX * INSN.size == 64 * 40
    assert struct.unpack("=I", values["xdptcp_filter_len"])[0] == len(flt.insns)


def test_filter_larger_than_the_program_table_is_refused() -> None:
    text = " or ".join(f"host 198.18.0.{i}" for i in range(1, 40))  # 2 instructions each
    with pytest.raises(FilterError, match="instructions"):
        compile_filter(text)
