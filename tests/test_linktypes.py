"""``xdptcp -r`` reads the link types tcpdump reads, and prints tcpdump's lines for them.

Each test rewrites the standard varied capture's frames under another link-layer header
(Linux cooked v1 and v2, raw IP, BSD and OpenBSD loopback, PPP, PPP in HDLC framing), in pcap
and pcapng, and compares ``xdptcp -r F`` with Debian's ``tcpdump -nn -r F tcp`` on the very same
file, line for line up to ``length N``.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from xdptcp import linktypes as lt
from xdptcp.linktypes import ethernet_view

from conftest import need_tool, run
from traffic import ETH_P_IP, ETH_P_IPV6, Frame, varied_pcap, write_pcap

_LENGTH = re.compile(r", length \d+")
MAC_A = bytes.fromhex("020000000a01")


def _upto_length(line: str) -> str:
    m = _LENGTH.search(line)
    return line[: m.end()] if m else line


def _network(frame: bytes) -> tuple[int, bytes]:
    """(EtherType, network layer) of an Ethernet frame with no VLAN tags."""
    return struct.unpack_from("!H", frame, 12)[0], frame[14:]


def _sll(frame: bytes, pkttype: int = 0) -> bytes:
    etype, l3 = _network(frame)
    return struct.pack("!HHH8sH", pkttype, 1, 6, MAC_A + b"\0\0", etype) + l3


def _sll2(frame: bytes, pkttype: int = 0, ifindex: int = 1) -> bytes:
    etype, l3 = _network(frame)
    return struct.pack("!HHIHBB8s", etype, 0, ifindex, 1, pkttype, 6, MAC_A + b"\0\0") + l3


def _null(frame: bytes) -> bytes:
    etype, l3 = _network(frame)
    return struct.pack("=I", 2 if etype == ETH_P_IP else 30) + l3


def _loop(frame: bytes) -> bytes:
    etype, l3 = _network(frame)
    return struct.pack("!I", 2 if etype == ETH_P_IP else 24) + l3


def _raw(frame: bytes) -> bytes:
    return _network(frame)[1]


def _ppp(frame: bytes) -> bytes:
    etype, l3 = _network(frame)
    return b"\xff\x03" + struct.pack("!H", 0x21 if etype == ETH_P_IP else 0x57) + l3


def _ppp_hdlc(frame: bytes) -> bytes:
    etype, l3 = _network(frame)
    if etype == ETH_P_IP:
        return b"\xff\x03\x00\x21" + l3
    return b"\x0f\x00" + struct.pack("!H", etype) + l3  # Cisco HDLC


def _untagged(frames: list[Frame], family: tuple[int, ...] = (ETH_P_IP, ETH_P_IPV6)) -> list:
    return [f for f in frames if struct.unpack_from("!H", f.data, 12)[0] in family]


CASES = {
    "sll": (lt.LINUX_SLL, _sll, None),
    "sll2": (lt.LINUX_SLL2, _sll2, None),
    "raw": (lt.RAW, _raw, None),
    "ipv4": (lt.IPV4, _raw, (ETH_P_IP,)),
    "ipv6": (lt.IPV6, _raw, (ETH_P_IPV6,)),
    "null": (lt.NULL, _null, None),
    "loop": (lt.LOOP, _loop, None),
    "ppp": (lt.PPP, _ppp, None),
    "ppp_hdlc": (lt.PPP_HDLC, _ppp_hdlc, None),
}


def _convert(frames: list[Frame], make, family) -> list[Frame]:
    out = []
    for f in _untagged(frames, family or (ETH_P_IP, ETH_P_IPV6)):
        data = make(f.data)
        out.append(Frame(f.ts_ns, data, f.wire_len - len(f.data) + len(data), f.tcp))
    return out


def _compare(
    path: Path, frames: list[Frame] | None = None, args: tuple[str, ...] = ()
) -> tuple[list[str], list[str]]:
    """(tcpdump's lines, xdptcp's lines), up to ``length N``, both run with ``args``.

    With ``frames`` (what the file holds), tcpdump runs unfiltered and its lines for the frames
    that carry TCP are kept: libpcap's ``tcp`` looks only at the first next-header of IPv6, so
    it would leave out TCP behind extension headers, which tcpdump prints and so must we."""
    tcpdump = need_tool("tcpdump")
    if frames is None:
        ref = run(tcpdump, "-nn", *args, "-r", str(path), "tcp").stdout.splitlines()
    else:
        lines = run(tcpdump, "-nn", *args, "-r", str(path)).stdout.splitlines()
        assert len(lines) == len(frames)
        ref = [line for line, f in zip(lines, frames) if f.tcp]
    got = run(sys.executable, "-m", "xdptcp", *args, "-r", str(path)).stdout.splitlines()
    if "-e" in args or "-q" in args:  # whole lines: -e says a length of its own first
        return ref, got
    return [_upto_length(x) for x in ref], [_upto_length(x) for x in got]


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> list[Frame]:
    return varied_pcap(tmp_path_factory.mktemp("varied") / "varied.pcap")


@pytest.mark.parametrize("name", sorted(CASES))
def test_link_type_prints_tcpdumps_lines(name: str, varied, tmp_path: Path) -> None:
    linktype, make, family = CASES[name]
    frames = _convert(varied, make, family)
    path = tmp_path / f"{name}.pcap"
    frames = write_pcap(path, frames, linktype=linktype)
    ref, got = _compare(path, frames)
    assert len(ref) > 50  # the capture holds many TCP packets of that link type
    assert got == ref


# -e, -q, and both: the link-level header, the short line, and the link-level header's short
# form.
E_Q = [("-e",), ("-q",), ("-e", "-q")]
E_Q_IDS = ["e", "q", "eq"]


@pytest.mark.parametrize("args", E_Q, ids=E_Q_IDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_e_and_q_print_as_tcpdump_does(name: str, args, varied, tmp_path) -> None:
    """-e: each link type's header before the network layer, which then leaves out its "IP";
    -q: "tcp N" after the ports, and with -e the link layer's shorter text."""
    linktype, make, family = CASES[name]
    frames = write_pcap(tmp_path / "e.pcap", _convert(varied, make, family), linktype=linktype)
    ref, got = _compare(tmp_path / "e.pcap", frames, args)
    assert len(ref) > 50
    if "-e" in args:
        assert not any(re.search(r": IP6? ", line) for line in ref)  # "IP" said by the link
    if "-q" in args:
        assert sum(bool(re.search(r": tcp \d+$", line)) for line in ref) > 50
    assert got == ref


# (TPID, tag) stacks put in front of the network layer of Ethernet frames: every type
# print-ether.c walks, priorities and the DEI bit.
_ETHER_TAGS = (
    (),
    ((0x8100, 100),),
    ((0x8100, 0x2000 | 0x1000 | 7),),
    ((0x88A8, 200), (0x8100, 4094)),
    ((0x9100, 0xE000 | 1),),
)


@pytest.mark.parametrize("args", E_Q, ids=E_Q_IDS)
def test_e_and_q_on_ethernet_frames_tagged_and_cut_short(args, varied, tmp_path: Path) -> None:
    """-e on Ethernet: the addresses, each tag with its type (the length said once), the
    network layer's type; and for frames cut short in their IP or TCP header, tcpdump's
    text after the link-level header. -q: the short line, and the types' names alone."""
    frames = []
    for i, f in enumerate(_untagged(varied)):
        stack = _ETHER_TAGS[i % len(_ETHER_TAGS)]
        types = [t for t, _ in stack] + [struct.unpack_from("!H", f.data, 12)[0]]
        tags = b"".join(struct.pack("!HH", tci, types[j + 1]) for j, (_, tci) in enumerate(stack))
        data = f.data[:12] + struct.pack("!H", types[0]) + tags + f.data[14:]
        wire = f.wire_len + len(tags)
        if i % 7 == 3 and f.tcp:  # cut in the IP header (IPv4) or just after it
            data = data[: 14 + len(tags) + (12 if types[-1] == ETH_P_IP else 44)]
        frames.append(Frame(f.ts_ns, data, wire, f.tcp))
    frames = write_pcap(tmp_path / "eth.pcap", frames)
    ref, got = _compare(tmp_path / "eth.pcap", frames, args)
    assert len(ref) > 50
    if args == ("-e",):
        assert any("802.1Q-QinQ (0x88a8), length" in line and ", DEI" not in line for line in ref)
        assert any(", DEI, ethertype IPv" in line for line in ref)
    elif "-e" in args:
        assert any("802.1Q-QinQ, length" in line for line in ref)
        assert any(", DEI, IPv6, " in line for line in ref)
    assert any(line.endswith("[|ip]") for line in ref) and any("[|tcp]" in line for line in ref)
    assert got == ref


def _tagged(frame: bytes, make, tags: tuple[int, ...]) -> bytes:
    """``make(frame)`` (a cooked header) with 802.1Q tags between it and the network layer,
    as libpcap writes a tagged packet captured in cooked mode."""
    etype, l3 = _network(frame)
    plain = make(frame)
    head = plain[: len(plain) - len(l3)]
    at = 0 if make is _sll2 else len(head) - 2  # where the header's protocol field is
    types = (0x8100,) * len(tags) + (etype,)
    head = head[:at] + struct.pack("!H", types[0]) + head[at + 2 :]
    body = b"".join(struct.pack("!HH", tci, types[i + 1]) for i, tci in enumerate(tags))
    return head + body + l3


@pytest.mark.parametrize("make", [_sll, _sll2], ids=["sll", "sll2"])
@pytest.mark.parametrize("args", [(), *E_Q], ids=["plain", *E_Q_IDS])
def test_tags_after_a_cooked_header(make, args, varied, tmp_path: Path) -> None:
    """print-sll.c walks 802.1Q tags after the cooked header and names the type each encloses
    (``ethertype IPv4, ``), with or without -e; -e adds each tag's own text first."""
    linktype = lt.LINUX_SLL if make is _sll else lt.LINUX_SLL2
    frames = []
    for i, f in enumerate(_untagged(varied)[:60]):
        tags = ((5, 0x2000 | 7 | 0x1000), (100,), (4094,))[i % 3]
        data = _tagged(f.data, make, tags)
        frames.append(Frame(f.ts_ns, data, f.wire_len - len(f.data) + len(data), f.tcp))
    frames = write_pcap(tmp_path / "tags.pcap", frames, linktype=linktype)
    ref, got = _compare(tmp_path / "tags.pcap", frames, args)
    assert len(ref) > 30
    assert all(("ethertype IPv" in line) != ("-q" in args) for line in ref)
    assert got == ref


def test_cooked_v2_lines_name_the_interface_and_direction(tmp_path: Path) -> None:
    """Every packet type of print-sll.c, and interfaces this host has and has not."""
    eth = next(
        f for f in varied_pcap(tmp_path / "v.pcap") if f.tcp and f.data[12:14] == b"\x08\x00"
    )
    frames = [
        Frame(0, _sll2(eth.data, pkttype, ifindex), 0)
        for pkttype in (0, 1, 2, 3, 4, 7)
        for ifindex in (1, 0, 99999)
    ]
    frames = [Frame(0, f.data, len(f.data)) for f in frames]
    path = tmp_path / "sll2.pcap"
    write_pcap(path, frames, linktype=lt.LINUX_SLL2)
    ref, got = _compare(path)
    assert len(ref) == len(frames)
    assert got == ref
    assert {line.split()[1] for line in got} == {"lo", "?"}


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _pcapng(
    path: Path,
    interfaces: list[int],
    packets: list[tuple[int, bytes]],
    snaplen: int = 262144,
    start_us: int = 1_700_000_000_000_000,
) -> None:
    """Enhanced packet blocks (an interface of -1: a simple packet block, on the first), a
    millisecond apart from ``start_us``."""
    out = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype in interfaces:
        out += _block(1, struct.pack("<HHI", linktype, 0, snaplen))
    for i, (iface, data) in enumerate(packets):
        ts = start_us + i * 1000
        if iface < 0:
            out += _block(3, struct.pack("<I", len(data)) + data)
            continue
        head = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
        out += _block(6, head + data)
    path.write_bytes(out)


def test_pcapng_packets_longer_than_the_interfaces_snapshot(varied, tmp_path: Path) -> None:
    """A simple packet block longer than the interface's snapshot length comes cut to it, as
    libpcap hands it to tcpdump; an enhanced packet block captured longer is an error in
    libpcap: the lines before it, then one line saying so, and a non-zero exit, as tcpdump."""
    frames = _untagged([f for f in varied if f.tcp and len(f.data) > 60])[:6]
    assert len(frames) == 6
    simple, enhanced = tmp_path / "spb.pcapng", tmp_path / "epb.pcapng"
    _pcapng(simple, [lt.ETHERNET], [(-1, f.data) for f in frames], snaplen=60)
    tcpdump = need_tool("tcpdump")
    ref = subprocess.run([tcpdump, "-nn", "-r", str(simple)], capture_output=True, text=True)
    got = run(sys.executable, "-m", "xdptcp", "-r", str(simple))
    assert ref.returncode == 0 and len(ref.stdout.splitlines()) == 6
    assert got.stdout == ref.stdout
    caps = run(sys.executable, "-m", "xdptcp", "-r", str(simple), "--json").stdout.splitlines()
    assert [json.loads(x)["cap_len"] for x in caps] == [60] * 6
    short = [(0, f.data[:60]) for f in frames[:3]]
    _pcapng(enhanced, [lt.ETHERNET], [*short, (0, frames[3].data), *short], snaplen=60)
    ref = subprocess.run([tcpdump, "-nn", "-r", str(enhanced)], capture_output=True, text=True)
    got = run(sys.executable, "-m", "xdptcp", "-r", str(enhanced), check=False)
    assert "bigger than snaplen of 60" in ref.stderr and ref.returncode == 1
    assert len(ref.stdout.splitlines()) == 3 and got.stdout == ref.stdout
    assert got.returncode == 1
    assert got.stderr.splitlines() == [
        f"xdptcp: {enhanced}: block 6: captured length {len(frames[3].data)} is more than the "
        "interface's snapshot length 60; the file is damaged"
    ]


@pytest.mark.parametrize("nano", [False, True], ids=["us-out", "ns-out"])
def test_pcapng_times_past_2106_are_copied_as_tcpdump_w_copies_them(varied, tmp_path, nano):
    """A pcapng timestamp is 64 bits; a classic pcap record's seconds are 32. For a time past
    2106 (a fuzzed or damaged file's), ``-r F -w OUT`` writes the low 32 bits of the seconds,
    as libpcap's writer does under tcpdump, rather than refusing the file."""
    frames = _untagged([f for f in varied if f.tcp])[:4]
    src, ref, out = tmp_path / "far.pcapng", tmp_path / "ref.pcap", tmp_path / "out.pcap"
    _pcapng(src, [lt.ETHERNET], [(0, f.data) for f in frames], start_us=(2**32 + 77) * 10**6)
    precision = ["--time-stamp-precision=nano"] if nano else []
    subprocess.run([need_tool("tcpdump"), *precision, "-r", str(src), "-w", str(ref)],
                   capture_output=True, check=True)  # fmt: skip
    run(sys.executable, "-m", "xdptcp", "-r", str(src), "-w", str(out),
        *(["--nano"] if nano else []))  # fmt: skip
    want = ref.read_bytes()
    assert len(want) > 24 + 16 * len(frames)
    assert struct.unpack_from("=I", want, 24)[0] == 77  # the seconds' low 32 bits
    assert out.read_bytes() == want


@pytest.mark.parametrize("snaplen", [1514, 0, 300000])
@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_pcapng_copy_has_the_first_interfaces_snapshot_length(varied, tmp_path, snaplen, stdin):
    """``-r F.pcapng -w OUT``: libpcap gives a pcapng file the snapshot length of its first
    interface (0 is 262144), and tcpdump's copy says it in its header; xdptcp's copy is the
    same file, read from a path or from the standard input (which cannot seek back)."""
    frames = _untagged([f for f in varied if f.tcp and len(f.data) <= 1514])[:5]
    src, ref, out = tmp_path / "one.pcapng", tmp_path / "ref.pcap", tmp_path / "out.pcap"
    _pcapng(src, [lt.ETHERNET], [(0, f.data) for f in frames], snaplen=snaplen)
    subprocess.run([need_tool("tcpdump"), "-r", str(src), "-w", str(ref)],
                   capture_output=True, check=True)  # fmt: skip
    if stdin:
        with open(src, "rb") as f:
            subprocess.run([sys.executable, "-m", "xdptcp", "-r", "-", "-w", str(out)],
                           stdin=f, check=True)  # fmt: skip
    else:
        run(sys.executable, "-m", "xdptcp", "-r", str(src), "-w", str(out))
    want = ref.read_bytes()
    assert struct.unpack_from("=I", want, 16)[0] == (snaplen or 262144)
    assert len(want) > 24 + 16 * len(frames)
    assert out.read_bytes() == want


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_pcapng_block_larger_than_any_packet_is_passed_over_in_a_pipe_too(varied, tmp_path, stdin):
    """A block of a kind xdptcp does not read, larger than any packet block may be, is skipped:
    by seeking in a file, by reading past it from the standard input (which cannot seek), as
    tcpdump reads on over it."""
    frames = _untagged([f for f in varied if f.tcp])[:4]
    src = tmp_path / "big.pcapng"
    _pcapng(src, [lt.ETHERNET], [(0, f.data) for f in frames])
    whole = src.read_bytes()
    at = 28 + 20  # after the section header and the interface description
    src.write_bytes(whole[:at] + _block(0x0BAD, bytes(300_000)) + whole[at:])
    ref = run(need_tool("tcpdump"), "-nn", "-r", str(src)).stdout
    assert len(ref.splitlines()) == 4
    if stdin:  # a pipe, as from `tcpdump -w - | xdptcp -r -` (a file as stdin could seek)
        got = subprocess.run([sys.executable, "-m", "xdptcp", "-r", "-"], input=src.read_bytes(),
                             capture_output=True)  # fmt: skip
        got = (got.returncode, got.stderr.decode(), got.stdout.decode())
    else:
        res = run(sys.executable, "-m", "xdptcp", "-r", str(src), check=False)
        got = (res.returncode, res.stderr, res.stdout)
    assert got == (0, "", ref)


def test_pcapng_of_a_cooked_capture(varied, tmp_path: Path) -> None:
    frames = _untagged([f for f in varied if f.tcp])[:40]
    path = tmp_path / "cooked.pcapng"
    _pcapng(
        path, [lt.LINUX_SLL2, lt.LINUX_SLL2], [(i % 2, _sll2(f.data)) for i, f in enumerate(frames)]
    )
    ref, got = _compare(path, frames)
    assert len(ref) == 40
    assert got == ref


def test_pcapng_with_interfaces_of_several_link_types(varied, tmp_path: Path) -> None:
    """libpcap refuses a pcapng whose interfaces differ in link type; xdptcp reads it, and
    prints the lines tcpdump prints for the same packets captured on Ethernet."""
    frames = _untagged([f for f in varied if f.tcp])[:40]
    mixed, plain = tmp_path / "mixed.pcapng", tmp_path / "plain.pcapng"
    views = [(f.data, _sll(f.data), _raw(f.data))[i % 3] for i, f in enumerate(frames)]
    _pcapng(mixed, [lt.ETHERNET, lt.LINUX_SLL, lt.RAW], [(i % 3, v) for i, v in enumerate(views)])
    _pcapng(plain, [lt.ETHERNET], [(0, f.data) for f in frames])
    got = [
        _upto_length(x)
        for x in run(sys.executable, "-m", "xdptcp", "-r", str(mixed)).stdout.splitlines()
    ]
    ref = _compare(plain, frames)[0]
    assert len(ref) == 40
    assert got == ref


def test_cooked_capture_written_with_w_is_the_ethernet_view(varied, tmp_path: Path) -> None:
    """-w writes what XDP would have seen: Ethernet frames carrying the same packets."""
    frames = _convert(varied, _sll, None)
    src, out = tmp_path / "cooked.pcap", tmp_path / "out.pcap"
    write_pcap(src, frames, linktype=lt.LINUX_SLL)
    res = run(sys.executable, "-m", "xdptcp", "-r", str(src), "-w", str(out))
    assert res.returncode == 0, res.stderr
    assert "link-type EN10MB" in run(need_tool("tcpdump"), "-nn", "-r", str(out)).stderr
    assert _compare(out)[0] == _compare(src)[0]


def test_unknown_link_type_is_one_line(varied, tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcap"
    write_pcap(path, [Frame(0, b"\x80" + bytes(40), 41)], linktype=105)
    res = run(sys.executable, "-m", "xdptcp", "-r", str(path), check=False)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "link type 105 is not one xdptcp reads" in res.stderr and "Linux cooked v2" in res.stderr


def test_views_keep_wire_lengths_of_cut_packets(varied) -> None:
    """A packet cut by the capture keeps its length on the wire, measured from the network
    layer: the Ethernet view's wire length is the cooked one less 16 plus 14."""
    f = next(f for f in varied if f.tcp and f.data[12:14] == b"\x08\x00")
    cooked = _sll(f.data)
    view = ethernet_view(lt.LINUX_SLL, cooked[:40], len(cooked) + 100)
    assert view is not None
    assert view.wire_len == len(cooked) + 100 - 16 + 14
    assert view.frame[12:14] == b"\x08\x00" and view.frame[14:] == cooked[16:40]


def test_version_contradicting_the_ethertype_prints_tcpdumps_line(varied, tmp_path: Path) -> None:
    """libpcap's ``tcp`` reads only the protocol byte, so it selects a packet whose version
    nibble contradicts its EtherType; tcpdump then prints ip_print's or ip6_print's complaint."""
    v4 = next(f.data for f in varied if f.tcp and f.data[12:14] == b"\x08\x00")
    v6 = next(f.data for f in varied if f.tcp and f.data[12:14] == b"\x86\xdd" and f.data[20] == 6)
    frames = []
    for base, versions in ((v4, (0, 5, 6, 15)), (v6, (0, 3, 4, 15))):
        for version in versions:
            data = bytearray(base)
            data[14] = version << 4 | data[14] & 0x0F
            frames.append(Frame(0, bytes(data), len(data)))
    path = tmp_path / "versions.pcap"
    write_pcap(path, frames)
    ref, got = _compare(path)
    assert len(ref) == len(frames)
    assert got == ref
