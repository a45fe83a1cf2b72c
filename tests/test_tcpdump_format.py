"""Our text lines against tcpdump's own, packet by packet, on the same pcap files."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from xdptcp.packet import Decoder
from xdptcp.readfile import print_file
from xdptcp.tcpdump import TextFormatter

import traffic
from conftest import ROOT, need_tool

TS_FLAGS = {"-t": "none", "-tt": "epoch", "-ttt": "delta", "-tttt": "date", "-ttttt": "since_first"}
NANO = "--time-stamp-precision=nano"


@pytest.fixture(autouse=True)
def _utc(utc):
    """Every test here prints local times: in UTC, as the references were made."""


def tcpdump_by_packet(path, *args: str) -> list[str]:
    """tcpdump -nn's text for each packet (continuation lines such as hex dumps joined)."""
    tcpdump = need_tool("tcpdump")
    out = subprocess.run(
        [tcpdump, "-#", "-nn", "-r", str(path), *args], capture_output=True, text=True, check=True
    ).stdout
    packets: list[str] = []
    for line in out.splitlines():
        m = re.match(r"^ *(\d+)  (.*)$", line)
        if m and int(m.group(1)) == len(packets) + 1:
            packets.append(m.group(2))
        else:
            packets[-1] += "\n" + line
    return packets


def formatter_for(args) -> TextFormatter:
    mode = next((TS_FLAGS[a] for a in args if a in TS_FLAGS), "default")
    return TextFormatter(ts_mode=mode, absolute_seq="-S" in args, nano=NANO in args)


def compare(path, frames, *args: str) -> None:
    reference = tcpdump_by_packet(path, *args)
    assert len(reference) == len(frames)
    fmt = formatter_for(args)
    for number, (frame, expected) in enumerate(zip(frames, reference), 1):
        ours = fmt.format(frame.ts_ns, frame.data, frame.wire_len)
        if frame.tcp:
            assert ours == expected, f"packet {number}"
        else:
            assert ours is None, f"packet {number} is not TCP ({expected!r})"


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    path = tmp_path_factory.mktemp("varied") / "varied.pcap"
    return path, traffic.varied_pcap(path)


@pytest.fixture(scope="module")
def varied_nano(tmp_path_factory):
    path = tmp_path_factory.mktemp("varied") / "varied-ns.pcap"
    return path, traffic.varied_pcap(path, nano=True)


@pytest.mark.parametrize("args", [(), ("-S",), ("-t",), ("-tt",), ("-tttt",)])
def test_every_tcp_packet_prints_as_tcpdump(varied, args):
    compare(*varied, *args)


@pytest.mark.parametrize("args", [(NANO,), (NANO, "-tt"), (NANO, "-tttt", "-S")])
def test_nanosecond_file_prints_as_tcpdump_nano(varied_nano, args):
    compare(*varied_nano, *args)


def test_nanosecond_file_without_nano_truncates_to_microseconds(varied_nano):
    compare(*varied_nano)


@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("flag", ["-ttt", "-ttttt"])
def test_relative_timestamps_on_tcp_only_capture(tmp_path, nano, flag):
    # tcpdump counts every packet it prints for -ttt; our reference is a capture of TCP only.
    frames = [f for f in traffic.varied_pcap(tmp_path / "all.pcap", nano=nano) if f.tcp]
    frames[3] = frames[3]._replace(ts_ns=frames[2].ts_ns - 5000)  # a step back in time: "-"
    path = tmp_path / "tcp.pcap"
    traffic.write_pcap(path, frames, nano=nano)
    if not nano:
        frames = [f._replace(ts_ns=f.ts_ns // 1000 * 1000) for f in frames]
    compare(path, frames, flag, *((NANO,) if nano else ()))


def test_non_tcp_frames_give_none(varied):
    path, frames = varied
    noise = [f for f in frames if not f.tcp]
    assert len(noise) >= 6
    fmt = TextFormatter()
    for f in noise:
        assert fmt.format(f.ts_ns, f.data, f.wire_len) is None


def test_local_time_follows_tz(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: minutes move too
    time.tzset()
    path = tmp_path / "tz.pcap"
    frames = traffic.varied_pcap(path, n=1)
    compare(path, frames)


def test_fuzzed_frames_print_as_tcpdump(tmp_path, varied):
    """Cut and corrupted frames: every line we print is tcpdump's; where we print none,
    tcpdump's line is not TCP either."""
    rng = random.Random(7)
    base = [f for f in varied[1] if f.tcp]
    frames = []
    for i in range(3000):
        data = bytearray(rng.choice(base).data)
        wire = len(data)
        if rng.random() < 0.3:
            data = data[: rng.randrange(14, len(data) + 1)]
        else:
            special = (0, 1, 2, 5, 8, 30, 34, 254, 255, 0x45, 0x60, 6, 43, 44, 60)
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(14, len(data))
                data[pos] = rng.choice(special) if rng.random() < 0.4 else rng.getrandbits(8)
        frames.append(traffic.Frame(1_700_000_000_000_000_000 + i * 1000, bytes(data), wire))
    path = tmp_path / "fuzz.pcap"
    traffic.write_pcap(path, frames)
    reference = tcpdump_by_packet(path)
    fmt = TextFormatter()
    printed = 0
    for number, (f, expected) in enumerate(zip(frames, reference), 1):
        ours = fmt.format(f.ts_ns, f.data, f.wire_len)
        if ours is None:
            assert not (expected.split(" ", 1)[1].startswith("IP") and "Flags [" in expected), (
                f"packet {number}: tcpdump printed TCP: {expected!r}"
            )
        else:
            printed += 1
            assert ours == expected, f"packet {number}"
    assert printed > 2000


def test_fast_path_equals_general_path(varied):
    fast, general = TextFormatter(), TextFormatter()
    used = 0
    for f in varied[1]:
        line = fast._fast(f.data, f.wire_len)
        p = general.decoder.decode(f.data, f.wire_len)
        slow = None if p is None else general.body(p, f.data)
        if line is not None:
            used += 1
            assert line == slow
        elif p is not None:  # keep the two trackers in step
            fast.body(fast.decoder.decode(f.data, f.wire_len), f.data)
    assert used > 100


def test_flags_and_options_spelling():
    f = traffic.tcp_frame(
        "198.18.0.2",
        "198.18.0.1",
        40000,
        5001,
        seq=1,
        ack=2,
        flags="S.",
        win=512,
        options=(traffic.mss(1460), traffic.sack_ok(), traffic.timestamp(1, 2), traffic.nop(),
                 traffic.wscale(7)),
    )  # fmt: skip
    line = TextFormatter(ts_mode="epoch").format(1_700_000_000_123_456_789, f, len(f))
    assert line == (
        "1700000000.123456 IP 198.18.0.2.40000 > 198.18.0.1.5001: Flags [S.], seq 1, ack 2, "
        "win 512, options [mss 1460,sackOK,TS val 1 ecr 2,nop,wscale 7], length 0"
    )


def test_interface_name_and_packet_type_as_tcpdump_any():
    # print-sll.c (sll2_if_print): "%-5s " interface name, "%-3s " packet type: the kernel's,
    # as eth_type_trans() finds it from the destination address (lo's is all zeros); "Out" for
    # what left.
    f = traffic.tcp_frame("198.18.0.2", "198.18.0.1", 40000, 5001, flags="R", seq=9)
    fmt = TextFormatter(ts_mode="none", show_ifname=True)
    line = "IP 198.18.0.2.40000 > 198.18.0.1.5001: Flags [R], seq 9, win 65535, length 0"
    for dst, kind in (
        (bytes(6), "In "),
        (b"\xff" * 6, "B  "),
        (bytes.fromhex("01005e000001"), "M  "),
        (bytes.fromhex("020000000002"), "P  "),
    ):
        assert fmt.format(0, dst + f[6:], len(f), "lo") == f"lo    {kind} {line}"
        assert fmt.format(0, dst + f[6:], len(f), "lo", direction=1) == f"lo    Out {line}"
    # an interface this host does not have: its address unknown, what arrived is "In"
    assert fmt.format(0, f, len(f), "veth-long0").startswith("veth-long0 In  IP ")


def test_ipv6_addresses_compressed_like_inet_ntop():
    d = Decoder()
    assert d.addr(socket.inet_pton(socket.AF_INET6, "2001:db8:0:1:0:0:0:7")) == "2001:db8:0:1::7"
    assert d.addr(socket.inet_pton(socket.AF_INET6, "2001:db8:0:0:1:0:0:1")) == "2001:db8::1:0:0:1"


def test_unknown_timestamp_mode_is_refused():
    with pytest.raises(ValueError, match="timestamp mode 'weekly'"):
        TextFormatter(ts_mode="weekly")


# ---- real traffic, captured by tcpdump itself -------------------------------------------------


@pytest.mark.system
def test_tcpdump_capture_of_real_connection_reads_the_same(tmp_path):
    from hosts import make_veth

    tcpdump = need_tool("tcpdump")
    pair = make_veth("fmt")
    path = tmp_path / "real.pcap"
    cap = None
    try:
        cap = subprocess.Popen(
            [tcpdump, "-i", pair.outer, "--immediate-mode", "-U", "-w", str(path), "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_listening(cap)
        for host, family in ((pair.outer_ip, socket.AF_INET), (pair.outer_ip6, socket.AF_INET6)):
            _talk(pair, host, family)
        time.sleep(1.5)  # past libpcap's buffer timeout, should immediate mode be unavailable
    finally:
        if cap is not None:
            cap.terminate()
            cap.wait(timeout=10)
        pair.remove()
    reference = subprocess.run(
        [tcpdump, "-nn", "-r", str(path)], capture_output=True, text=True, check=True
    ).stdout
    out = _Collect()
    printed = print_file(path, TextFormatter(), out)
    assert printed >= 16  # two handshakes, data both ways, two closes
    assert "".join(out.parts) == reference


def _wait_listening(cap: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    line = b""
    while time.monotonic() < deadline and b"listening" not in line:
        line += cap.stderr.read1(200)
    time.sleep(0.2)


def _talk(pair, host: str, family: int) -> None:
    """A server in the root namespace, a client in the test namespace: data both ways."""
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 5001))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            data = conn.recv(1000)
            conn.sendall(data.upper() * 3)

    t = threading.Thread(target=serve)
    t.start()
    code = (
        "import socket,sys;"
        f"s=socket.create_connection(('{host}',5001));"
        "s.sendall(b'hello from the namespace');"
        "d=b''\nwhile len(d)<72: d+=s.recv(100)\n"
        "s.close()"
    )
    pair.in_ns("python3", "-c", code)
    t.join(timeout=10)
    srv.close()


class _Collect:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> None:
        self.parts.append(s)

    def flush(self) -> None:
        pass


def test_print_file_counts_and_stops(varied):
    path, frames = varied
    out = _Collect()
    assert print_file(path, TextFormatter(), out, count=5) == 5
    assert "".join(out.parts).count("\n") == 5
    out = _Collect()
    assert print_file(path, TextFormatter(), out) == sum(f.tcp for f in frames)
    assert os.path.exists(path)


# ---- timestamps tcpdump prints from the record's fields ---------------------------------------

# (seconds, fraction) fields of classic pcap records, in the file's unit: valid ones, fractions of
# a second or more (tcpdump's own tests/timestamp_invalid_*.pcap hold 10^6 and 2^31), seconds
# with bit 31 set, steps back for the relative modes.
_MICRO_FIELDS = [
    (1418145369, 999999), (1418145370, 1000000), (1418145370, 2147483648),
    (1418145371, 4294967295), (1418145372, 5), (2147483647, 999999), (2147483648, 1),
    (4294967295, 0), (1418145373, 7), (1418145360, 1500000), (1418145361, 2),
]  # fmt: skip
_NANO_FIELDS = [
    (1418145369, 999999999), (1418145370, 1000000000), (1418145370, 2147483648),
    (1418145371, 4294967295), (1418145372, 5), (2147483647, 999999999), (2147483648, 1),
    (4294967295, 0), (1418145373, 7), (1418145360, 1500000000), (1418145361, 2),
]  # fmt: skip


def _read_by_both(path, args) -> tuple[str, str]:
    """(``tcpdump -nn -r path ARGS``'s output, ``xdptcp -r path ARGS``'s), ``--nano`` for
    tcpdump's ``--time-stamp-precision=nano``."""
    tcpdump = need_tool("tcpdump")
    want = subprocess.run([tcpdump, "-nn", "-r", str(path), *args], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    ours = [a if a != NANO else "--nano" for a in args]
    got = subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(path), *ours],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip
    return want, got


def _fields_pcap(path, nano: bool, swapped: bool, fields=None) -> None:
    """A classic pcap of one conversation's segments with those timestamp fields, in this
    machine's byte order (read by the record walk, ``xdptcp.mapped``) or swapped (read by the
    general reader)."""
    order = ">" if swapped == (sys.byteorder == "little") else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1)]
    if fields is None:
        fields = _NANO_FIELDS if nano else _MICRO_FIELDS
    for i, (sec, frac) in enumerate(fields):
        f = traffic.tcp_frame("198.18.0.2", "198.18.0.1", 40000, 443, seq=1000 + i, ack=77,
                              flags="." if i % 3 else "P.", payload=b"x" * (i % 2))  # fmt: skip
        out.append(struct.pack(order + "IIII", sec, frac, len(f), len(f)) + f)
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


@pytest.mark.parametrize("swapped", [False, True], ids=["walk", "reader"])
@pytest.mark.parametrize("nano_file", [False, True], ids=["us-file", "ns-file"])
@pytest.mark.parametrize(
    "args", [(), ("-t",), ("-tt",), ("-ttt",), ("-tttt",), ("-ttttt",), (NANO,), (NANO, "-tt"),
             (NANO, "-ttt"), (NANO, "-tttt"), (NANO, "-ttttt")],
)  # fmt: skip
def test_timestamps_tcpdump_prints_from_the_fields_print_the_same(
    tmp_path, args, nano_file, swapped
):
    """A fraction field of a second or more prints as it is (``10.1000000``), seconds with bit
    31 set as ``[Error converting time]``, and the relative modes subtract the fields as
    tcpdump does, in every timestamp mode, micro- and nanosecond files, both readers."""
    path = tmp_path / "fields.pcap"
    _fields_pcap(path, nano_file, swapped)
    want, got = _read_by_both(path, args)
    assert got == want
    assert want.count("\n") == len(_MICRO_FIELDS)
    if not args:
        assert "[Error converting time] IP" in want and ".1000000 IP" in want


@pytest.mark.parametrize("walk", ["1", "0"], ids=["kernel-walk", "python-walk"])
@pytest.mark.parametrize("swapped", [False, True], ids=["native", "swapped"])
@pytest.mark.parametrize("nano_file", [False, True], ids=["us-file", "ns-file"])
@pytest.mark.parametrize("nano", [False, True], ids=["us-out", "ns-out"])
def test_copy_keeps_the_fields_as_tcpdump_w_does(tmp_path, nano, nano_file, swapped, walk):
    """``-r F -w OUT`` writes a record's timestamp fields as ``tcpdump -r F -w OUT tcp`` does:
    as libpcap read them (a fraction of a second or more, seconds with bit 31 set), scaled when
    the output's unit is not the file's, whichever way the file is walked."""
    src = tmp_path / "fields.pcap"
    _fields_pcap(src, nano_file, swapped)
    tcpdump = need_tool("tcpdump")
    ref, out = tmp_path / "ref.pcap", tmp_path / "out.pcap"
    precision = [NANO] if nano else []
    subprocess.run([tcpdump, *precision, "-r", str(src), "-w", str(ref), "tcp"],
                   capture_output=True, check=True)  # fmt: skip
    env = {**os.environ, "XDPTCP_OFFLINE_KERNEL": walk}
    subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(src), "-w", str(out),
                    *(["--nano"] if nano else [])], check=True, cwd=ROOT, env=env)  # fmt: skip
    want = ref.read_bytes()
    assert len(want) > 24 + 16 * len(_MICRO_FIELDS)
    assert out.read_bytes()[24:] == want[24:]


@pytest.mark.parametrize("walk", ["1", "0"], ids=["kernel-walk", "python-walk"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["native", "swapped"])
@pytest.mark.parametrize("snaplen", [96, 1518, 65535, 0, 300000])
@pytest.mark.parametrize("linktype", [1, 0x30000001], ids=["ethernet", "fcs-bits"])
@pytest.mark.parametrize("packets", [5, 0])
def test_copy_keeps_the_file_header_as_tcpdump_w_does(
    tmp_path, packets, linktype, snaplen, big_endian, walk
):
    """``-r F -w OUT`` writes the file ``tcpdump -r F -w OUT`` writes, header and all: the
    snapshot length is F's own (0 made 262144, as libpcap adjusts it; one above 262144 kept),
    and so are the link type's upper bits (an FCS length: libpcap's linktype_ext), whichever
    way the file is walked, a file in either byte order, with records or none."""
    frames = [
        traffic.tcp_frame("198.18.0.2", "198.18.0.1", 40000, 443, seq=1000 + 700 * i, ack=77,
                          flags="P.", payload=b"x" * (700 * i))  # fmt: skip
        for i in range(packets)
    ]  # fmt: skip
    src = tmp_path / "src.pcap"
    traffic.write_pcap(src, frames, snaplen=snaplen, big_endian=big_endian, linktype=linktype)
    tcpdump = need_tool("tcpdump")
    ref, out = tmp_path / "ref.pcap", tmp_path / "out.pcap"
    subprocess.run([tcpdump, "-r", str(src), "-w", str(ref)], capture_output=True, check=True)
    env = {**os.environ, "XDPTCP_OFFLINE_KERNEL": walk}
    subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(src), "-w", str(out)],
                   check=True, cwd=ROOT, env=env)  # fmt: skip
    want = ref.read_bytes()
    assert struct.unpack_from("=II", want, 16) == (snaplen or 262144, linktype)
    assert len(want) > 24 + 16 * packets or not packets
    assert out.read_bytes() == want


# A record at 0.000000 (a hand-made capture's or a clock that was never set: one of nDPI's test
# captures starts so) followed by others; one in the middle; a nanosecond field that is 0 once
# cut to microseconds.
_EPOCH_FIELDS = [(0, 0), (0, 2099), (0, 2106), (7, 5), (0, 0), (3, 1), (0, 500), (9, 999)]


@pytest.mark.parametrize("swapped", [False, True], ids=["walk", "reader"])
@pytest.mark.parametrize("nano_file", [False, True], ids=["us-file", "ns-file"])
@pytest.mark.parametrize("args", [("-ttt",), ("-ttttt",), (NANO, "-ttt"), (NANO, "-ttttt")])
def test_a_reference_at_the_epoch_is_unset_as_in_tcpdump(tmp_path, args, nano_file, swapped):
    """tcpdump's relative modes take a reference of 0 seconds and 0 fraction for no reference
    (netdissect_timevalisset): after a packet at the epoch, the next packet is the reference,
    and prints 0 where the difference would be its own time."""
    path = tmp_path / "epoch.pcap"
    _fields_pcap(path, nano_file, swapped, _EPOCH_FIELDS)
    want, got = _read_by_both(path, args)
    assert got == want
    lines = want.splitlines()
    assert len(lines) == len(_EPOCH_FIELDS)
    assert lines[1].startswith(" 00:00:00.000000")  # its own reference, not 0.002099 after 0


# ---- records captured longer than the file's snapshot length -----------------------------------


@pytest.mark.parametrize("snaplen", [40, 60, 75, 100, 0])
@pytest.mark.parametrize("big_endian", [False, True], ids=["little", "big"])
def test_records_longer_than_the_snapshot_read_as_libpcap_cuts_them(tmp_path, snaplen, big_endian):
    """A record captured longer than the file header's snapshot length (a damaged or fuzzed
    file's, or a writer's that got its header wrong) comes cut to it from libpcap: tcpdump
    prints, filters and writes the cut packet, exactly as it reads a file whose records were
    cut to that length. xdptcp reads the two files alike too: ``-r F`` (both walks: this
    machine's byte order takes the record walk), with filters, ``--json`` (``cap_len``), and
    ``-r F -w OUT`` with the kernel's walk and Python's. A snapshot length of 0 means none."""
    frames = [f for f in traffic.varied_pcap(tmp_path / "all.pcap") if f.tcp]
    long, cut = tmp_path / "long.pcap", tmp_path / "cut.pcap"
    traffic.write_pcap(long, frames, snaplen=snaplen, big_endian=big_endian)
    short = [f._replace(data=f.data[:snaplen]) for f in frames] if snaplen else frames
    traffic.write_pcap(cut, short, snaplen=snaplen, big_endian=big_endian)
    assert snaplen == 0 or max(len(f.data) for f in frames) > snaplen
    tcpdump = need_tool("tcpdump")

    def run(*args, **kw) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=True, **kw).stdout

    assert run(tcpdump, "-nn", "-r", str(long)) == run(tcpdump, "-nn", "-r", str(cut))
    xdptcp = [sys.executable, "-m", "xdptcp"]
    for args in ([], ["tcp[13] & 2 != 0"], ["tcp[40:2] = 0x0101"], ["--json"], ["-S", "ip6"]):
        ours = run(*xdptcp, "-r", str(long), *args, cwd=ROOT)
        assert ours == run(*xdptcp, "-r", str(cut), *args, cwd=ROOT), args
        if not args and snaplen != 40:  # (a cut inside an IPv6 extension header: no line)
            assert ours.count("\n") >= len(frames) - 4
        if args == ["--json"]:
            caps = [json.loads(x)["cap_len"] for x in ours.splitlines()]
            assert max(caps) == (snaplen or max(len(f.data) for f in frames))
    for walk in ("1", "0"):
        env = {**os.environ, "XDPTCP_OFFLINE_KERNEL": walk}
        outs = [tmp_path / "out-long.pcap", tmp_path / "out-cut.pcap"]
        for src, out in zip((long, cut), outs):
            subprocess.run([*xdptcp, "-r", str(src), "-w", str(out)], check=True, cwd=ROOT, env=env)
        assert outs[0].read_bytes() == outs[1].read_bytes(), f"XDPTCP_OFFLINE_KERNEL={walk}"
        assert len(outs[0].read_bytes()) > 24 + 16 * len(frames) // 2


@pytest.mark.parametrize("args", [(), ("-v",), ("-vv",), ("-S",), ("-q",), ("-x",)])
def test_jumbograms_print_as_tcpdump(tmp_path, args):
    """IPv6 jumbograms (BIG TCP's packets as kernels that add a hop-by-hop header capture
    them), whole, cut, lying, and without a jumbo payload length tcpdump takes: ``xdptcp -r``
    prints tcpdump's line for each, but, in a file, for the one cut before its hop-by-hop
    header's length (a capture cut there is not known to be TCP: `cut_short`)."""
    zoo = traffic.jumbo_zoo()
    path = tmp_path / "jumbo.pcap"
    traffic.write_pcap(path, [(1_700_000_000_000_000_000 + i * 1000, f.data, f.wire_len)
                              for i, f in enumerate(zoo)])  # fmt: skip
    reference = tcpdump_by_packet(path, "-tt", *args)
    got = subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(path), "-tt", *args],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip
    ours, last = {}, ""
    for line in got.splitlines():
        if line[:1].isspace():  # (a hex dump's lines: with the packet's)
            ours[last] += "\n" + line
        else:
            last = line.split(" ", 1)[0]
            ours[last] = line
    assert len(reference) == len(zoo)
    for number, expected in enumerate(reference):
        line = ours.get(expected.split(" ", 1)[0])
        if number == 4:
            assert line is None, f"frame {number}: {line!r}"
            assert "Flags [" not in expected and "[|tcp]" not in expected
        else:
            assert line == expected, f"frame {number}"
    assert "70000" in reference[0] and "HBH" in reference[0]
    first_line = reference[-1].split("\n")[0]  # (-x: the dump after it)
    assert first_line.endswith("[No valid Jumbo Payload Hop-by-Hop option found] (invalid)")


@pytest.mark.parametrize("args", [(), ("-v",)])
def test_hop_by_hop_options_tcpdump_gives_up_on_print_its_note(tmp_path, args):
    """A hop-by-hop header whose options tcpdump cannot read (a router alert, jumbo payload or
    home address option of the wrong length) ends its line with what it says and
    ``[|hbhopt]``, with -v or not; a destination options header only with -v (without, tcpdump
    does not read its options)."""
    from traffic import dest_options, hop_by_hop, jumbo_option

    bad = (b"\x05\x01\x00", jumbo_option(70000, length=3), b"\xc9\x02\x00\x00", b"\x05\x00")
    good = (b"\x01\x07" + bytes(7), b"\x07\x01\x00", jumbo_option(70000), b"\x05\x02\x00\x00")
    frames = [
        traffic.tcp_frame(traffic.A6, traffic.C6, 41000, 443, flags="S", ipv6_ext=(header(o),))
        for header in (hop_by_hop, dest_options)
        for o in bad + good
    ]
    path = tmp_path / "opts.pcap"
    traffic.write_pcap(path, frames)
    reference = tcpdump_by_packet(path, *args)
    fmt = TextFormatter(verbose=len(args))
    ours = [fmt.format(1_700_000_000_000_000_000 + i * 1_000_000, f, len(f))
            for i, f in enumerate(frames)]  # fmt: skip
    assert ours == reference
    assert sum(line.endswith(" [|hbhopt]") for line in ours) == len(bad)


def test_a_live_jumbogram_cut_in_its_hop_by_hop_header_prints_as_tcpdump(tmp_path):
    """A live record is known to be TCP (the program saw the whole frame): cut before its
    hop-by-hop header's length, or inside the header, it prints tcpdump's note."""
    from xdptcp.packet import malformed_tcp_text

    zoo = traffic.jumbo_zoo()
    path = tmp_path / "cut.pcap"
    frames = [zoo[4], zoo[3]]
    traffic.write_pcap(path, [(1_700_000_000_000_000_000 + i * 1000, f.data, f.wire_len)
                              for i, f in enumerate(frames)])  # fmt: skip
    for verbose, args in ((0, ()), (1, ("-v",))):
        reference = tcpdump_by_packet(path, "-t", *args)
        notes = [malformed_tcp_text(f.data, f.wire_len, True, verbose) for f in frames]
        assert notes == reference
    assert reference[1].endswith("[No valid Jumbo Payload Hop-by-Hop option found] (invalid)")


@pytest.mark.parametrize("verbose", [0, 1])
def test_fuzzed_jumbograms_print_as_tcpdump(tmp_path, verbose):
    """Jumbograms' headers (the rest of the frame on the wire only, as a live record), cut and
    corrupted in their IPv6 and hop-by-hop headers: each line printed is tcpdump's; where none
    is, tcpdump printed no TCP."""
    heads = traffic.mutated_jumbogram_heads(random.Random(13 + verbose), 1500)
    frames = [traffic.Frame(1_700_000_000_000_000_000 + i * 1000, data, 70094)
              for i, data in enumerate(heads)]  # fmt: skip
    path = tmp_path / "fuzz.pcap"
    traffic.write_pcap(path, frames)
    reference = tcpdump_by_packet(path, *(["-v"] if verbose else []))
    fmt = TextFormatter(verbose=verbose)
    printed = 0
    for number, (f, expected) in enumerate(zip(frames, reference), 1):
        ours = fmt.format(f.ts_ns, f.data, f.wire_len)
        if ours is None:
            assert "Flags [" not in expected, f"packet {number}: tcpdump printed TCP: {expected!r}"
        else:
            printed += 1
            assert ours == expected, f"packet {number}"
    assert printed > 700
