"""The filter: libpcap's errors with their position, and the generated eBPF selects what tcpdump
selects (run here by the Python VM; tests/test_filter_kernel.py runs it in the kernel)."""

from __future__ import annotations

import ipaddress
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need_tool
from xdptcp.pcapfilter import FilterError, compile_filter
from xdptcp.pcapfilter.parser import MAX_NESTING as DEEP  # 1000 (400 on CPython 3.12)
from xdptcp.record import Verdict, parse_frame

# ---- frames (a private builder: enough variety to exercise every predicate) -----------------

V4 = ["198.18.0.1", "198.18.0.2", "198.19.5.5", "198.18.200.9", "224.0.0.9"]
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


MACS = [bytes.fromhex(m) for m in ("020000000002", "020000000001", "ffffffffffff", "3333000000fb")]


def ether(l3: bytes, ethertype: int, tags=(), dst: bytes = MACS[0], src: bytes = MACS[1]) -> bytes:
    out = dst + src
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
        payload = th + rnd.choice([b"", b"", bytes(10), b"GET / HTTP/1.1\r\n"])
        kind = i % 10
        if kind < 5:
            l3 = ipv4(rnd.choice(V4), rnd.choice(V4), payload, opt_words=rnd.choice([0, 0, 2, 10]))
            frame = ether(l3, 0x0800, tags, rnd.choice(MACS), rnd.choice(MACS[:2]))
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
    """Indices of the frames libpcap's filter keeps: tcpdump copies them (-w -), and each
    record's timestamp second says which frame it was."""
    out = subprocess.run(
        [need_tool("tcpdump"), "-r", str(pcap), "-w", "-", "--", expr],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return set(pcap_seconds(out))


def pcap_seconds(data: bytes) -> list[int]:
    """Frame indices (timestamp seconds - 1_000_000) of a little-endian pcap's records."""
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, _, incl, _ = struct.unpack_from("<IIII", data, pos)
        out.append(sec - 1_000_000)
        pos += 16 + incl
    return out


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
    # the whole language beyond the old subset
    "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    "tcp[13] & 2 != 0",
    "ip[6:2] & 0x1fff = 0",
    "len > 100",
    "greater 80",
    "less 80",
    "ether src 02:00:00:00:00:01",
    "ether dst 02:00:00:00:00:02 and ether multicast or ether broadcast",
    "ip multicast or ip broadcast",
    "ip proto 6",
    "ip6 proto 6",
    "proto \\tcp",
    "tcp[0:2] - tcp[2:2] > 100",
    "-tcp[0] < 5",
    "tcp[0] ^ 1 + 2 = 3",
    "tcp[tcp[0] & 0x1f] = 0",
    "ether[tcp[0] << 2] = 0",
    "tcp[2] << (tcp[3] & 0x27) > 0x40",
    "tcp[2:2] % (tcp[1] & 7) = 0",
    "tcp[12] * 3 - 7 & 0xf0 | 1 = 0xe1",
    "ip6[6] = 6 and ip6[40] = 0",
    "ether[12:2] = 0x8100",
    "vlan and tcp[13] = 2",
    "vlan and ip[9] = 6",
    "tcp dst port 80 or 443",
    "host 198.18.0.1 and not 198.18.0.2",
    "port 80 and (443 or 22)",
    "ip6 net 2001:db8::/32",
    "tcp portrange http-https",
    "ether proto 0x800",
    "ether proto \\ip6",
    # at most 1500 is an 802.3 length, and N the LLC SAP: after `vlan`, read in an untagged
    # frame's IP header (its total length, then the first byte of its id)
    "not vlan and ether proto 0",
    "len - 14 > 60 and len <= 200",
    "tcp[100] = 0 or port 80",
    "not tcp[100] = 0",
    "host 198.18",
    "net 198",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_compiled_filter_selects_what_tcpdump_selects(varied, expr: str) -> None:
    pcap, frames = varied
    tcp = tcp_indices(frames)
    flt = compile_filter(expr)
    ours = {i for i in tcp if flt.matches(frames[i])}
    assert ours == tcpdump_selects(pcap, expr) & tcp


def test_spreading_a_short_filter_changes_its_code(monkeypatch) -> None:
    """The tests below force the spread layout through ``SPREAD_FROM``; were that to stop
    working they would compare a layout with itself. `port 443` spread has a `ja` out after
    each test that can end it, and the same meaning."""
    from xdptcp.pcapfilter import codegen

    usual = compile_filter("port 443").insns
    monkeypatch.setattr(codegen, "SPREAD_FROM", -1)
    spread = compile_filter("port 443").insns
    assert len(spread) > len(usual) + 5


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_a_filter_laid_out_spread_selects_the_same(varied, monkeypatch, expr: str) -> None:
    """Each filter laid out spread, as the long ones are (``codegen.generate``): every frame,
    TCP or not, selected as by the usual layout, which the test above checks against tcpdump."""
    from xdptcp.pcapfilter import codegen

    _, frames = varied
    usual = compile_filter(expr)
    monkeypatch.setattr(codegen, "SPREAD_FROM", -1)
    spread = compile_filter(expr)
    assert [spread.matches(f) for f in frames] == [usual.matches(f) for f in frames]


def test_varied_frames_cover_every_case(varied) -> None:
    """The comparison means little unless the pcap has each kind of frame and both answers."""
    _, frames = varied
    verdicts = {parse_frame(f)[0] for f in frames}
    assert {Verdict.TCP, Verdict.NOT_TCP, Verdict.TRUNCATED, Verdict.VLAN_TOO_DEEP} <= verdicts
    parsed = [parse_frame(f)[1] for f in frames if parse_frame(f)[0] is Verdict.TCP]
    assert {p.vlans for p in parsed} == {0, 1, 2}
    assert {p.ip_version for p in parsed} == {4, 6}
    tcp = tcp_indices(frames)
    for expr in EXPRESSIONS:
        flt = compile_filter(expr)
        hits = sum(flt.matches(frames[i]) for i in tcp)
        assert 0 < hits < len(tcp), expr


def test_empty_filter_accepts_every_tcp_frame(varied) -> None:
    _, frames = varied
    flt = compile_filter("")
    assert all(flt.matches(frames[i]) for i in tcp_indices(frames))
    # the three arguments kept, then r0 = 1; exit (no "reject": the verifier refuses dead code)
    assert len(flt.insns) == 5


@pytest.mark.parametrize(
    "expr, part, words",
    [
        # libpcap's own complaints, at the token that causes them
        ("host", "end of filter", "syntax error"),
        ("(port 80", "end of filter", "syntax error"),
        ("port 80 $", "$", "illegal character"),
        ("80", "80", "syntax error"),
        ("port 80 port 81", "port", "syntax error"),
        ("tcp or 80", "80", "syntax error in filter expression"),
        ("net 198.18.0.1/15", "198.18.0.1", 'non-network bits set in "198.18.0.1/15"'),
        ("vlan 4096", "4096", "VLAN tag 4096 greater than maximum 4095"),
        ("port 65536", "65536", "illegal port number 65536 > 65535"),
        ("ip port 80", "80", "illegal qualifier of 'port'"),
        ("ip6 host 198.18.0.1", "198.18.0.1", "'ip6' modifier applied to ip host"),
        ("tcp src 198.18.0.1", "198.18.0.1", "'tcp' modifier applied to host"),
        ("host 02:00:00:00:00:01", "02:00:00:00:00:01", "ethernet address used in non-ether"),
        ("ether[0:3] = 1", "3", "data size must be 1, 2, or 4"),
        ("tcp[0] / 0 = 1", "/", "division by zero"),
        ("tcp[0] % 0 = 1", "%", "modulus by zero"),
        ("tcp[0] << 32 = 1", "<<", "shift by more than 31 bits"),
        ("tcp broadcast", "broadcast", "only link-layer/IP broadcast filters supported"),
        ("tcp proto 6", "6", "'tcp proto' is bogus"),
        ("port foo-bar-baz", "foo-bar-baz", "unknown port 'foo-bar-baz'"),
        ("tcp[0] = 5-3", "5-3", "syntax error"),
        ("host example.com", "example.com", "unknown host 'example.com'"),
        # what can never match a TCP frame
        ("udp", "udp", "'udp': it can never match a TCP frame"),
        ("icmp", "icmp", "'icmp'"),
        ("arp", "arp", "'arp'"),
        ("port 53 and udp", "udp", "'udp'"),
        ("icmp[icmptype] = icmp-echo", "icmp", "'icmp[...]'"),
        ("ip proto 17", "ip", "'ip proto 17'"),
        ("udp port 53", "udp", "'udp port'"),
        ("ether proto \\arp", "ether", "'ether proto 0x0806'"),
        ("ether proto 1", "ether", "'ether proto 1' (802.3 frames with LLC SAP 1)"),
        ("ether proto \\iso", "ether", "'ether proto 254' (802.3 frames with LLC SAP 254)"),
        # after `vlan`, where `vlan` tests that hold before it say the frame has the tags
        ("vlan and udp", "udp", "'udp'"),
        ("vlan 10 and vlan and (udp or arp)", "udp", "'udp'"),
        ("(vlan and vlan) and udp port 53", "udp", "'udp port'"),
        ("vlan and ether proto 0", "ether", "'ether proto 0' (802.3 frames with LLC SAP 0)"),
        ("vlan and udp[0] = 1", "udp", "'udp[...]'"),
        # valid pcap-filter that xdptcp cannot see
        ("mpls", "mpls", "not supported by xdptcp"),
        ("inbound", "inbound", "not supported by xdptcp"),
    ],
)
def test_refused_filter_is_one_line_naming_the_part(expr: str, part: str, words: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    msg = str(info.value)
    assert "\n" not in msg and words in msg
    assert info.value.part == part, msg
    assert expr[info.value.position :].startswith(part) or part == "end of filter"


@pytest.mark.parametrize(
    "expr",
    ["host", "(port 80", "80", "port 80 port 81", "tcp or 80", "net 198.18.0.1/15", "vlan 4096",
     "port 65536", "ip port 80", "ip6 host 198.18.0.1", "tcp src 198.18.0.1", "ether[0:3] = 1",
     "tcp[0] / 0 = 1", "tcp[0] << 32 = 1", "tcp broadcast", "tcp proto 6", "tcp[0] = 5-3"],
)  # fmt: skip
def test_what_we_refuse_for_syntax_tcpdump_refuses_too(varied, expr: str) -> None:
    pcap, _ = varied
    done = subprocess.run(
        [need_tool("tcpdump"), "-r", str(pcap), "-d", "--", expr], capture_output=True, text=True
    )
    assert done.returncode != 0, done.stdout


def test_and_or_have_equal_precedence_left_to_right() -> None:
    """libpcap: `a or b and c` is `(a or b) and c`."""
    frame = ether(ipv4("198.18.0.9", "198.18.0.8", tcp_header(80, 1, 2)), 0x0800)
    assert compile_filter("port 80 or port 443 and host 198.18.0.2").matches(frame) is False
    assert compile_filter("port 80 or (port 443 and host 198.18.0.2)").matches(frame) is True


def test_xor_takes_everything_to_its_right() -> None:
    """grammar.y gives ^ no precedence, so bison shifts: `a ^ 1 + 2` is `a ^ (1 + 2)`."""
    frame = ether(ipv4("198.18.0.9", "198.18.0.8", tcp_header(0x0500, 1, 2)), 0x0800)
    assert compile_filter("tcp[0] ^ 4 + 1 = 0").matches(frame)  # 5 ^ 5
    assert compile_filter("(tcp[0] ^ 4) + 1 = 2").matches(frame)
    assert not compile_filter("tcp[0] ^ 4 + 1 = 2").matches(frame)


def test_a_load_past_the_end_rejects_even_under_not() -> None:
    """Classic BPF ends the filter with 0 at an out-of-bounds load, whatever surrounds it."""
    frame = ether(ipv4("198.18.0.9", "198.18.0.8", tcp_header(80, 1, 2)), 0x0800)
    assert not compile_filter("not tcp[100] = 1").matches(frame)
    assert not compile_filter("tcp[100] = 1 or port 80").matches(frame)
    assert compile_filter("port 80 or tcp[100] = 1").matches(frame)


def test_len_is_the_wire_length_and_uncaptured_bytes_reject() -> None:
    frame = ether(ipv4("198.18.0.9", "198.18.0.8", tcp_header(80, 1, 2)), 0x0800)
    flt = compile_filter("greater 1000")
    assert not flt.matches(frame) and flt.matches(frame, wire_len=1500)
    assert not compile_filter("ether[200] = 0").matches(frame, wire_len=1500)


# ---- -r on other link types: read as Ethernet, with libpcap's rules for that link type ----

LINKTYPES = {
    101: lambda l3, v: l3,  # raw IP
    113: lambda l3, v: struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x86DD if v == 6 else 0x0800) + l3,
    0: lambda l3, v: struct.pack("<I", 30 if v == 6 else 2) + l3,  # BSD loopback (Linux AF_INET6)
}


def linktype_pcap(path: Path, linktype: int, frames: list[bytes]) -> None:
    """The untagged IP frames of ``frames`` without their Ethernet header, in ``linktype``'s
    framing; frame i at second 1_000_000 + i."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for i, frame in enumerate(frames):
            etype = frame[12:14]
            if etype not in (b"\x08\x00", b"\x86\xdd"):
                continue
            pkt = LINKTYPES[linktype](frame[14:], 6 if etype == b"\x86\xdd" else 4)
            f.write(struct.pack("<IIII", 1_000_000 + i, 0, len(pkt), len(pkt)) + pkt)


def xdptcp_selects(pcap: Path, expr: str) -> set[int]:
    out = subprocess.run(
        [sys.executable, "-m", "xdptcp", "-r", str(pcap), "-tt", expr],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {int(line.split(".")[0]) - 1_000_000 for line in out.splitlines() if line}


@pytest.mark.parametrize("linktype", sorted(LINKTYPES))
@pytest.mark.parametrize(
    "expr",
    ["len > 100 and ip[0] & 0xf > 5", "ip6 and tcp port 80 or host 198.18.0.1",
     "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420"],
)  # fmt: skip
def test_other_link_types_select_what_tcpdump_selects(tmp_path, varied, linktype, expr) -> None:
    _, frames = varied
    pcap = tmp_path / f"lt{linktype}.pcap"
    linktype_pcap(pcap, linktype, frames)
    assert xdptcp_selects(pcap, expr) == tcpdump_selects(pcap, expr) & xdptcp_selects(pcap, "")


@pytest.mark.parametrize("linktype", sorted(LINKTYPES))
@pytest.mark.parametrize(
    "expr, words",
    [("ether host 02:00:00:00:00:01", "ethernet addresses supported only on ethernet"),
     ("vlan", "no VLAN support for"), ("broadcast", "not a broadcast link")],
)  # fmt: skip
def test_other_link_types_refuse_what_libpcap_refuses(tmp_path, varied, linktype, expr, words):
    _, frames = varied
    pcap = tmp_path / f"lt{linktype}.pcap"
    linktype_pcap(pcap, linktype, frames)
    done = subprocess.run(
        [sys.executable, "-m", "xdptcp", "-r", str(pcap), expr], capture_output=True, text=True
    )
    assert done.returncode == 1 and words in done.stderr and len(done.stderr.splitlines()) == 1
    ref = subprocess.run([need_tool("tcpdump"), "-r", str(pcap), expr], capture_output=True)
    assert ref.returncode != 0 and words.encode() in ref.stderr


# ---- long and deep filters: thousands of terms, hundreds of levels -------------------------


def many_hosts(n: int) -> list[str]:
    return [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(n)]


@pytest.fixture(scope="module")
def crowd(tmp_path_factory) -> tuple[Path, list[bytes]]:
    """TCP frames between 6000 addresses (IPv4, some in VLANs, some IPv6 and ARP beside)."""
    rnd = random.Random(11)
    hosts = many_hosts(6000)
    frames = []
    for i in range(600):
        th = tcp_header(rnd.choice(PORTS), rnd.choice(PORTS), rnd.choice(FLAGS))
        if i % 7 == 6:
            l3 = ipv6(rnd.choice(V6), rnd.choice(V6), th)
            frames.append(ether(l3, 0x86DD))
            continue
        l3 = ipv4(rnd.choice(hosts), rnd.choice(hosts), th)
        frames.append(ether(l3, 0x0800, rnd.choice(TAGS[:4])))
    path = tmp_path_factory.mktemp("crowd") / "crowd.pcap"
    write_pcap(path, frames)
    return path, frames


def tcpdump_unoptimized_selects(pcap: Path, expr: str) -> set[int]:
    """tcpdump_selects with libpcap's optimizer off (-O): with it, a filter of 1000 hosts
    takes libpcap more than a minute; without, 3 s. Host chains load nothing it would drop."""
    out = subprocess.run(
        [need_tool("tcpdump"), "-O", "-r", str(pcap), "-w", "-", "--", expr],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return set(pcap_seconds(out))


def test_a_chain_of_1000_hosts_selects_what_tcpdump_selects(crowd) -> None:
    pcap, frames = crowd
    expr = " or ".join(f"host {h}" for h in many_hosts(1000))
    selected = xdptcp_selects(pcap, expr)
    assert selected == tcpdump_unoptimized_selects(pcap, expr) & tcp_indices(frames)
    assert 20 < len(selected) < len(frames) - 20


@pytest.mark.parametrize("op", ["or", "and not"])
def test_a_chain_of_5000_terms_compiles_and_selects_by_its_meaning(crowd, op: str) -> None:
    """Five thousand `or`s (libpcap takes minutes for these: the meaning is checked instead)."""
    pcap, frames = crowd
    hosts = many_hosts(5000)
    expr = f"host {hosts[0]} " + " ".join(f"{op} host {h}" for h in hosts[1:])
    listed = {ipaddress.ip_address(h).packed for h in hosts}

    def addresses(f: bytes) -> tuple[bytes, bytes]:
        return f[26:30], f[30:34]

    # without `vlan`, libpcap's `host` looks at untagged IPv4 (and ARP) only
    v4 = [i for i in tcp_indices(frames) if frames[i][12:14] == b"\x08\x00"]
    if op == "or":
        want = {i for i in v4 if set(addresses(frames[i])) & listed}
    else:  # the first host, and none of the others
        first = ipaddress.ip_address(hosts[0]).packed
        others = listed - {first}
        want = {i for i in v4 if first in addresses(frames[i])}
        want = {i for i in want if not set(addresses(frames[i])) & others}
    assert xdptcp_selects(pcap, expr) == want
    if op == "or":
        assert 100 < len(want) < len(frames) - 50


@pytest.mark.parametrize(
    "expr",
    [
        "(" * (DEEP // 2) + "tcp port 80" + ")" * (DEEP // 2),
        "not " * 5001 + "port 80",
        "!" * 4000 + "port 80",
        "(" * 300 + "tcp[13] & 2 != 0" + ")" * 300,
        "(" * 200 + "tcp[0:2]" + ")" * 200 + " = 80",
        "".join(f"(port {p} or " for p in range(1, 301)) + "port 22" + ")" * 300,
        " ".join(f"{'and' if i % 2 else 'or'} port {PORTS[i % 7]}" for i in range(1, 41))[3:],
        "host 198.18.0.1 or " + "(198.18.0.2 or " * 400 + "224.0.0.9" + ")" * 400,
        "tcp[0]" + " + 1" * (DEEP - 10) + " > 20",
        "-" * (DEEP - 100) + "tcp[0] != 0",
    ],
    ids=["parens500", "not5001", "bang4000", "relation300", "arith200", "nested300", "mixed40",
         "id400", "sum990", "minus900"],
)  # fmt: skip
def test_long_and_deep_filters_select_what_tcpdump_selects(varied, expr: str) -> None:
    pcap, frames = varied
    assert xdptcp_selects(pcap, expr) == tcpdump_selects(pcap, expr) & xdptcp_selects(pcap, "")


def test_a_mixed_chain_of_2000_terms_selects_what_tcpdump_selects(varied) -> None:
    """`a or b and c or d ...` (equal precedence, left to right) nests one level a term."""
    pcap, frames = varied
    ops = " ".join(f"{'and' if i % 2 else 'or'} port {PORTS[i % 7]}" for i in range(1, 2001))
    expr = ops[3:]
    everything = xdptcp_selects(pcap, "")
    assert xdptcp_selects(pcap, expr) == tcpdump_unoptimized_selects(pcap, expr) & everything


@pytest.mark.parametrize(
    "expr, part",
    [
        ("(" * (DEEP + 1) + "tcp" + ")" * (DEEP + 1), "("),
        ("tcp[0]" + " + 1" * (DEEP + 1) + " = 3", "+"),
        ("-" * (DEEP + 1) + "tcp[0] = 1", "-"),
        ("port (" + "(" * DEEP + "80" + ")" * (DEEP + 1), "("),
        ("tcp[" * 400 + "0" + "]" * 400 + " = 1", "tcp"),
    ],
    ids=["parens", "sum", "minus", "ids", "loads"],
)
def test_deeper_than_1000_levels_is_one_line_naming_the_limit(expr: str, part: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xdptcp", "-d", expr], capture_output=True, text=True
    )
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.startswith(f"xdptcp: filter: filter nested too deeply (more than {DEEP}")
    assert len(done.stderr.splitlines()) == 1 and f"'{part}')" in done.stderr


def test_the_deepest_filters_compile_in_a_thread() -> None:
    """1000 levels, in a thread (its own C stack): no crash hidden by the recursion limit."""
    import threading

    chain = "".join(f"(port {p} or " for p in range(DEEP - 1)) + "port 22" + ")" * (DEEP - 1)
    exprs = ["(" * DEEP + "tcp" + ")" * DEEP, "tcp[0]" + " + tcp[1]" * (DEEP - 10) + " = 3",
             chain]  # fmt: skip
    errors = []

    def run() -> None:
        try:
            for e in exprs:
                compile_filter(e).in_place  # noqa: B018 (written out, or the VM's)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e)[:200])

    limit = sys.getrecursionlimit()
    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert errors == [] and sys.getrecursionlimit() == limit


def test_a_1000_term_filter_compiles_in_reasonable_time() -> None:
    import time

    start = time.monotonic()
    flt = compile_filter(" or ".join(f"host {h}" for h in many_hosts(1000)))
    assert flt.in_place is not None
    assert time.monotonic() - start < 10  # about 1 s on a laptop


def test_a_chain_of_thousands_of_terms_leaves_the_verifier_few_branches_waiting() -> None:
    """The verifier keeps at most 8192 branches waiting on one path, and follows a jump's
    fall-through first. Chains this long are laid out spread: each term's way out to accept
    (and each bounds check's to reject) falls through to a `ja`, and its conditional jump goes
    on to the next term. 4000 hosts or 1500 ports leave a few waiting, where jumps out left one
    a jump (8,005 and 9,006, more than the kernel takes)."""
    from xdptcp.pcapfilter.codegen import branches_waiting

    hosts = " or ".join(f"host {h}" for h in many_hosts(4000))
    ports = " or ".join(f"port {p}" for p in range(1, 1501))
    for expr in (hosts, ports):
        assert branches_waiting(compile_filter(expr).insns) < 10


def test_a_filter_past_the_kernels_size_is_refused_before_loading_in_one_line() -> None:
    """10,000 hosts load in both programs on Linux 6.1 and 6.18 (test_filter_live runs them on
    the host's kernel); 10,500 are past the bound set from that, and refused before the kernel
    is asked, in one line naming it. -r still runs them."""
    from xdptcp.pcapfilter import KERNEL_MAX_INSNS, FilterTooLarge

    hosts = [f"198.18.{100 + i // 250}.{i % 250 + 1}" for i in range(10_500)]
    flt = compile_filter(" or ".join(f"host {h}" for h in hosts))
    assert len(flt.insns) > KERNEL_MAX_INSNS
    with pytest.raises(FilterTooLarge) as info:
        flt.code()
    assert "\n" not in str(info.value) and f"{KERNEL_MAX_INSNS}" in str(info.value)
    assert flt.matches(bytes(12) + b"\x08\x00" + bytes(12) + bytes([198, 18, 141, 250]) + bytes(40))


def test_pairs_of_alternatives_past_the_kernels_branches_are_refused_in_one_line() -> None:
    """Alternatives joined by `and` leave the verifier branches waiting, two a pair (the first
    alternative's jumps forward: to the next pair when it holds, and to the second alternative
    for a frame that is not IPv4), spread or not: 4500 pairs leave 9000, more than the kernel
    keeps (8192; Linux 6.18 took 3500 pairs and refused 4100)."""
    from xdptcp.pcapfilter import KERNEL_MAX_BRANCHES, FilterTooLarge

    pairs = " and ".join(f"(ip[16:4] != {i} or ip[12:4] != {i})" for i in range(4500))
    with pytest.raises(FilterTooLarge) as info:
        compile_filter(pairs).code()
    assert "\n" not in str(info.value) and f"{KERNEL_MAX_BRANCHES}" in str(info.value)


def test_an_offset_the_verifier_bounds_is_not_checked_again() -> None:
    """A variable offset is compared with MAX_VAR_OFF before it is added to the packet pointer,
    unless it is made of bytes and constants, which the verifier bounds too: it would know the
    comparison's outcome and remove the dead way out, one instruction at a time, moving the
    rest of the program each time (a filter of 1000 ports took it 0.32 s instead of 0.07)."""
    from pybpf.asm.insn import Class, JmpOp
    from xdptcp.pcapfilter.codegen import MAX_VAR_OFF

    def checks(expr: str) -> int:
        return sum(
            1
            for i in compile_filter(expr).insns
            if i.code & 0x07 == Class.JMP and i.code & 0xF0 == JmpOp.JGT and i.imm == MAX_VAR_OFF
        )

    assert checks("tcp dst port 80") == 0  # after IPv4's header length: a byte, & 0xf, << 2
    assert checks("tcp[(tcp[12] >> 4) * 4] = 0x47") == 0
    assert checks("tcp[tcp[0:2]] = 1") == 1  # 16 bits, byte-swapped: unknown to 6.1's verifier
    assert checks("ip[ip[0] * 300] = 1") == 1  # up to 76,500
    assert checks("ip[len] = 1") == 1


# ---- every spelling of a MAC address that libpcap's scanner takes ----------------------------


@pytest.mark.parametrize(
    "expr",
    ["ether host 0200.0000.0001", "ether src 020000000001", "ether dst 02-00-00-00-00-02",
     "ether host 2.0.0.0.0.1 or 0200.0000.0002", "ether dst 2:0:0:0:0:2 and not 0200.0000.0001",
     "ether src 02.00.00.00.00.01 and tcp port 80", "ether host FFFF.FFFF.FFFF"],
)  # fmt: skip
def test_mac_address_spellings_select_what_tcpdump_selects(varied, expr: str) -> None:
    pcap, frames = varied
    selected = xdptcp_selects(pcap, expr)
    assert selected == tcpdump_selects(pcap, expr) & xdptcp_selects(pcap, "")
    assert selected


@pytest.mark.parametrize(
    "expr, part, words",
    [
        ("ether host 198.18.0.1", "198.18.0.1", "illegal link layer address"),
        ("ether src 5", "5", "illegal link layer address"),
        ("ether net 198.18", "198.18", "illegal link layer address"),
        ("host 020000000001", "020000000001", "ethernet address used in non-ether expression"),
        ("port 123456789012", "123456789012", "ethernet address used in non-ether expression"),
        # a link-layer name alone is a term only where a term may end (then libpcap says
        # 'link layer applied in wrong context'); before anything else, a syntax error
        ("ether 198.18.0.1", "198.18.0.1", "syntax error"),
        ("ether 1", "1", "syntax error"),
        ("link (tcp)", "(", "syntax error"),
        ("ether not tcp", "not", "syntax error"),
        # an address in two pairs of parentheses, a list in two: syntax errors at their token
        ("host ((198.18.0.1))", "198.18.0.1", "syntax error"),
        ("port ((80 or 81))", "or", "syntax error"),
        ("host ((example.com))", "example.com", "syntax error"),
        ("net 198/8", "/", "syntax error"),
        ("host 198.18.0.0/16", "198.18.0.0", "Mask syntax for networks only"),
        ("ether host 198.18.0.999", "198.18.0.999", "invalid IPv4 address '198.18.0.999'"),
        # an id after a term that leaves no qualifiers: refused by libpcap's code generator,
        # in its words for each kind of id (a syntax error of the grammar says "can't parse")
        ("vlan 10 or (20)", "20", "syntax error in filter expression"),
        ("tcp or not foo", "foo", "syntax error in filter expression"),
        ("len > 60 or 198.18", "198.18", "syntax error in filter expression"),
        ("tcp or 020000000001", "020000000001", "ethernet address used in non-ether expression"),
        ("ip or 2001:db8::1", "2001:db8::1", "invalid qualifier against IPv6 address"),
        ("tcp or 198.18.0.0/16", "198.18.0.0", "Mask syntax for networks only"),
        # ... but a bare number may start a relation (`tcp or 80 > len`): libpcap looks at the
        # token after it first, and one no term goes on with is a syntax error there
        ("tcp or 80 81", "81", "syntax error"),
        ("tcp or (80 81)", "81", "syntax error"),
        ("len > 60 or 80 !", "!", "syntax error"),
        ("gateway 80 81", "80", "'gateway' requires a name"),
        # an IPv6 address: its mask first, then any qualifier but host or net is refused
        ("port 2001:db8::/32", "2001:db8::", "invalid qualifier against IPv6 address"),
        ("tcp portrange 2001:db8::1", "2001:db8::1", "invalid qualifier against IPv6 address"),
        ("port 2001:db8::1/32", "2001:db8::1", 'non-network bits set in "2001:db8::1/32"'),
        # libpcap built with IPv6 (as tcpdump is) refuses `gateway`, for each kind of id
        ("ether gateway foo", "foo", "'gateway' not supported in this configuration"),
        ("tcp or gateway (foo)", "foo", "'gateway' not supported in this configuration"),
        ("ether gateway 198.18", "198.18", "'gateway' requires a name"),
        ("gateway 80", "80", "'gateway' requires a name"),
        ("gateway 2001:db8::1", "2001:db8::1", "invalid qualifier against IPv6 address"),
    ],
)
def test_forms_tcpdump_takes_or_refuses_get_its_words(varied, expr, part, words) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    assert words in str(info.value) and info.value.part == part
    if words == "syntax error":  # the grammar's own, not the code generator's
        assert "in filter expression" not in str(info.value)
    pcap, _ = varied
    ref = subprocess.run(
        [need_tool("tcpdump"), "-r", str(pcap), "-d", "--", expr], capture_output=True, text=True
    )
    assert ref.returncode != 0 and words in ref.stderr


# Four `not vlan` move the EtherType and the LLC header onto an untagged IPv6 frame's source
# address: bytes 6-7 of it (at most 1500: an 802.3 length) and 8-15 (an LLC and SNAP header)
_MOVED = "not vlan and not vlan and not vlan and not vlan and "
_SNAP_SOURCES = [
    "2001:db8:0:1:aaaa:308:7:809b",  # AA AA 03, OUI 08:00:07, AppleTalk
    "2001:db8:0:1:aaaa:300:0:80f3",  # AA AA 03, OUI 0, AARP
    "2001:db8:0:1:aaaa:308:7:809c",  # another type
    "2001:db8:0:1:aaaa:300:7:809b",  # another OUI
    "2001:db8:0:809b::1",  # the EtherType itself
    "2001:db8:0:5dd:aaaa:308:7:809b",  # 1501: not an 802.3 length
    "2001:db8:0:5dc:aaaa:300:0:80f3",  # 1500: still one
]


@pytest.mark.parametrize(
    "expr",
    [f"port 80 or ({_MOVED}ether proto \\atalk)", f"not ({_MOVED}ether proto \\aarp)",
     f"port 80 or ({_MOVED}ether proto 0x809b)"],
)  # fmt: skip
def test_appletalk_ether_protos_take_their_snap_form_as_libpcap_does(tmp_path, expr) -> None:
    """gen_ether_linktype: ``ether proto \\atalk`` and ``\\aarp`` also match an 802.3 frame with
    an LLC SNAP header of their OUI (08:00:07, 0) and type."""
    from tests import traffic as t

    frames = [t.tcp_frame(s, "2001:db8::2", 40000, 443, flags="S") for s in _SNAP_SOURCES]
    frames.append(t.tcp_frame("198.18.0.1", "198.18.0.2", 40000, 80, flags="S"))
    pcap = tmp_path / "snap.pcap"
    write_pcap(pcap, frames)
    flt = compile_filter(expr)
    mine = {i for i, f in enumerate(frames) if flt.matches(f)}
    assert mine == tcpdump_selects(pcap, expr)
    assert mine == xdptcp_selects(pcap, expr)  # -r, with the filter written out in Python


@pytest.mark.parametrize(
    "expr",
    [f"{_MOVED}ether proto \\atalk", f"{_MOVED}ether proto \\aarp",
     "vlan or not vlan and not vlan and not vlan and ether proto \\aarp",
     "not vlan and (vlan or len > 0) and not vlan and not vlan and ether proto \\atalk"],
)  # fmt: skip
def test_a_term_read_past_tags_the_frame_may_lack_is_run_not_refused(tmp_path, expr) -> None:
    """A term that never matches TCP, read 4 bytes on per ``vlan`` before it, reads other
    bytes on a frame without those tags: there it can match a TCP frame, and tcpdump selects
    what the bytes say. Refused only where ``vlan`` tests that hold say the tags are there
    (``vlan and udp``: test_refused_filter_is_one_line_naming_the_part)."""
    from tests import traffic as t

    frames = [t.tcp_frame(s, "2001:db8::2", 40000, 443, flags="S") for s in _SNAP_SOURCES]
    pcap = tmp_path / "moved.pcap"
    write_pcap(pcap, frames)
    flt = compile_filter(expr)
    mine = {i for i, f in enumerate(frames) if flt.matches(f)}
    assert mine, "the moved term matches some of these frames"
    assert mine == tcpdump_selects(pcap, expr)
    assert mine == xdptcp_selects(pcap, expr)
