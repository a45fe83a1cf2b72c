"""xdptcp capturing for real on test hosts, checked against tcpdump on the same packets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from background import read_until_ready, stop_all
from test_egress import assert_same_lines

from xdptcp.record import Verdict, parse_frame

from conftest import need_tool, scaled
from hosts import make_veth
from traffic import tcp_frame, varied_pcap, write_pcap

pytestmark = pytest.mark.system


_running: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_capture_left_running():
    """A failed test must not leave an xdptcp (and its XDP program) behind."""
    yield
    stop_all(_running)


class Xdptcp:
    """``xdptcp ARGS`` in the background, started and stopped the way a user would."""

    def __init__(self, *args: str, netns: str | None = None) -> None:
        cmd = [sys.executable, "-m", "xdptcp", *args]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        env = dict(os.environ, PYTHONPATH=os.getcwd(), TZ="UTC")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        _running.append(self.proc)
        self.err = b""
        self._wait_for(b"capturing on")

    def _wait_for(self, what: bytes, timeout: float = scaled(20)) -> None:
        self.err = read_until_ready(self.proc, what, timeout, "xdptcp", self.err)

    def stop(self, sig: int = signal.SIGINT) -> tuple[str, str, int]:
        time.sleep(scaled(0.5))  # let the last frames reach the ring
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=scaled(30))
        return out.decode(), (self.err + err).decode(), self.proc.returncode


@pytest.fixture
def veth():
    need_tool("tcpreplay")
    need_tool("tcpdump")
    pair = make_veth("live")
    try:
        for end in ((), ("ip", "netns", "exec", pair.ns)):
            name = pair.inner if end else pair.outer
            subprocess.run([*end, "ip", "link", "set", name, "mtu", "9000"], check=True)
        yield pair
    finally:
        pair.remove()


def replay(pair, pcap) -> None:
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            pair.ns,
            "tcpreplay",
            "-q",
            "--topspeed",
            "-i",
            pair.inner,
            str(pcap),
        ],
        check=True,
        capture_output=True,
    )


def beside_tcpdump(pair, pcap, args: tuple[str, ...], tcpdump_filter: str, xdptcp_args=None):
    """``xdptcp -i OUTER ARGS`` (or ``xdptcp_args``) and ``tcpdump -i OUTER ARGS -nn -l FILTER``
    both capturing while ``pcap`` is replayed: (xdptcp's output, its stderr, its exit status,
    tcpdump's output)."""
    dump = subprocess.Popen(
        [need_tool("tcpdump"), "-i", pair.outer, *args, "-nn", "-l", tcpdump_filter],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _running.append(dump)
    read_until_ready(dump, b"listening on", scaled(20), "tcpdump")
    cap = Xdptcp("-i", pair.outer, *(args if xdptcp_args is None else xdptcp_args))
    replay(pair, pcap)
    out, err, rc = cap.stop()
    dump.send_signal(signal.SIGINT)
    return out, err, rc, dump.communicate(timeout=scaled(10))[0].decode("latin-1")


def beside_tcpdump_tcp(pair, pcap, args: tuple[str, ...]):
    """``xdptcp -i OUTER -t ARGS`` beside ``tcpdump -i OUTER -t OPTIONS -nn -l 'tcp and (EXPR)'``
    (ARGS: options, then a filter expression; --json is xdptcp's only), as ``beside_tcpdump``,
    tcpdump's output without the empty line that ends a live capture."""
    opts = tuple(a for a in args if a.startswith("-") and a != "--json")
    expr = " ".join(a for a in args if not a.startswith("-"))
    tcp = f"tcp and ({expr})" if expr else "tcp"
    out, err, rc, ref = beside_tcpdump(pair, pcap, ("-t", *opts), tcp, ("-t", *args))
    return out, err, rc, ref.removesuffix("\n")


def tcpdump_lines(pcap, *args: str) -> dict[int, str]:
    """{frame number (1-based): line} as ``tcpdump -nn -# -r`` prints them."""
    res = subprocess.run(
        ["tcpdump", "-nn", "-#", "-r", str(pcap), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, TZ="UTC"),
        check=True,
    )
    out = {}
    for line in res.stdout.splitlines():
        m = re.match(r"\s*(\d+)  (.*)$", line)
        if m:  # other lines continue the one before (hex dumps of unknown frames)
            out[int(m.group(1))] = m.group(2)
    return out


def emitted(frames) -> list[int]:
    """1-based numbers of the frames the kernel program turns into records."""
    return [i for i, f in enumerate(frames, 1) if parse_frame(f.data)[0] is Verdict.TCP]


def header_end(frame: bytes) -> int:
    """Where the TCP header ends, as the kernel program finds it."""
    _, f = parse_frame(frame)
    return f.l4_off + f.l4_len if f is not None else len(frame)


def as_sent(frames, path):
    """The frames as they go on the wire: tcpreplay sends what the file holds, so a frame
    the file holds only in part (captured < wire length) is a shorter packet on the veth."""
    write_pcap(path, [(f.ts_ns, f.data) for f in frames], nano=True)
    return path


def selected_by(pcap, frames, expr: str) -> set[int]:
    """1-based numbers of the frames ``tcpdump -r pcap EXPR`` selects (told apart by their
    nanosecond timestamps, which are unique in the file)."""
    stamps = {f.ts_ns: i for i, f in enumerate(frames, 1)}
    assert len(stamps) == len(frames)
    res = subprocess.run(
        ["tcpdump", "-nn", "-tt", "--time-stamp-precision=nano", "-r", str(pcap), expr],
        capture_output=True,
        text=True,
        check=True,
    )
    out = set()
    for line in res.stdout.splitlines():
        m = re.match(r"(\d+)\.(\d{9}) ", line)
        if m:
            out.add(stamps[int(m.group(1)) * 1_000_000_000 + int(m.group(2))])
    return out


@pytest.mark.kmatrix
def test_replayed_capture_prints_tcpdumps_lines(veth, tmp_path):
    pcap = tmp_path / "varied.pcap"
    frames = varied_pcap(pcap)
    ref = tcpdump_lines(as_sent(frames, tmp_path / "sent.pcap"), "-t", "-S")
    expected = [ref[i] for i in emitted(frames)]
    assert len(expected) > 100
    cap = Xdptcp("-i", veth.outer, "-t", "-S")
    replay(veth, pcap)
    out, err, rc = cap.stop()
    assert rc == 0, err
    assert out.splitlines() == expected
    assert f"{len(expected)} packets captured" in err
    assert "0 packets dropped by kernel" in err


def test_relative_sequence_numbers_match_tcpdump_live(veth, tmp_path):
    pcap = tmp_path / "varied.pcap"
    frames = varied_pcap(pcap, n=2, seed=7)
    clean = [f for f in frames if f.tcp and parse_frame(f.data)[0] is Verdict.TCP]
    ref = tcpdump_lines(as_sent(clean, tmp_path / "clean.pcap"), "-t")
    cap = Xdptcp("-i", veth.outer, "-t")
    replay(veth, tmp_path / "clean.pcap")
    out, err, rc = cap.stop()
    assert rc == 0, err
    assert out.splitlines() == [ref[i] for i in sorted(ref)]


@pytest.mark.kmatrix
def test_written_pcap_reads_back_as_the_original(veth, tmp_path):
    pcap = tmp_path / "varied.pcap"
    frames = varied_pcap(pcap)
    # xdptcp keeps each frame up to the end of its TCP header (no -s): the reference is the
    # same frames, cut there, as tcpdump reads them.
    cut = [f._replace(data=f.data[: header_end(f.data)]) for f in frames]
    headers = tmp_path / "headers.pcap"
    write_pcap(headers, [(f.ts_ns, f.data, len(s.data)) for f, s in zip(cut, frames)], nano=True)
    ref = tcpdump_lines(headers, "-t", "-S")
    expected = [ref[i] for i in emitted(frames)]
    out_file = tmp_path / "live.pcap"
    cap = Xdptcp("-i", veth.outer, "-w", str(out_file))
    replay(veth, pcap)
    out, err, rc = cap.stop()
    assert rc == 0, err
    assert out == ""
    back = tcpdump_lines(out_file, "-t", "-S")
    assert [back[i] for i in sorted(back)] == expected
    from xdptcp.pcap import PcapReader

    with PcapReader(str(out_file)) as r:
        got = [(data, wire_len) for _, data, wire_len in r]
    assert got == [(cut[i - 1].data, len(frames[i - 1].data)) for i in emitted(frames)]
    assert (os.stat(out_file).st_mode & 0o777) & ~0o644 == 0


def test_json_objects_are_the_files_with_the_interface_and_the_wall_clock(veth, tmp_path):
    """Live --json: the lines of the frames as captured (cut after the TCP header), with the
    interface, the direction, and the time the program stamped (wall clock, nanoseconds)."""
    import json

    pcap = tmp_path / "varied.pcap"
    frames = varied_pcap(pcap, n=2, seed=11)
    sent = [frames[i - 1] for i in emitted(frames)]
    headers = tmp_path / "headers.pcap"
    write_pcap(headers, [(f.ts_ns, f.data[: header_end(f.data)], len(f.data)) for f in sent])
    res = subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(headers), "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    ref = res.stdout.splitlines()
    # A later fragment is captured (libpcap's `tcp`) but has no object: it holds no TCP header;
    # nor has a frame with malformed headers (the program captures it unwalked: l4_off 0).
    from xdptcp.jsonfmt import JsonFormatter

    fmt = JsonFormatter()
    none = [f for f in sent if fmt.format(0, f.data[: header_end(f.data)], len(f.data)) is None]
    later = sum(parse_frame(f.data)[1].l4_len == 0 for f in sent)
    assert all(parse_frame(f.data)[1].l4_len == 0 or not parse_frame(f.data)[1].l4_off
               for f in none)  # fmt: skip
    assert later > 0 and len(none) > later and len(ref) == len(sent) - len(none) > 50
    cap = Xdptcp("-i", veth.outer, "--json")
    before = time.time_ns()
    replay(veth, pcap)
    after = time.time_ns()
    out, err, rc = cap.stop()
    assert rc == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    for obj in got:
        assert (obj["ifname"], obj["direction"]) == (veth.outer, "in")
        assert before - 10**9 < obj["ts_ns"] < after + 10**9
        assert f"{obj['ts']:.6f}" == f"{obj['ts_ns'] // 10**9}.{obj['ts_ns'] // 1000 % 10**6:06d}"
        obj.update(ts=0, ts_ns=0, ifname="", direction="")
    assert got == [dict(json.loads(line), ts=0, ts_ns=0) for line in ref]
    assert len({line.split(",")[1] for line in out.splitlines()}) > len(got) // 2  # ns differ
    assert f"{len(got)} packets captured" in err
    no_object = f"{len(none)} packet{'s' * (len(none) != 1)} captured with no TCP header to show"
    assert no_object in err, err


FILTERS = [
    "port 5001",
    "src host 198.18.0.2",
    "dst net 198.18.0.0/24 and not dst port 5001",
    "ip6",
    "ip6 and port 5201",
    "vlan and port 9000",
    "vlan 20 and vlan 30",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "tcp[tcpflags] == tcp-syn or host 2001:db8::1",
    "portrange 44000-44001 and not ip6",
    "not (port 5001 or port 5201)",
]


@pytest.mark.parametrize("expr", FILTERS)
def test_kernel_filter_selects_what_tcpdump_selects(veth, tmp_path, expr):
    pcap = tmp_path / "varied.pcap"
    frames = varied_pcap(pcap, nano=True)  # nanosecond stamps tell every frame apart
    sent = as_sent(frames, tmp_path / "sent.pcap")
    ref_all = tcpdump_lines(sent, "-t", "-S")
    selected = selected_by(sent, frames, expr)
    expected = [ref_all[i] for i in emitted(frames) if i in selected]
    assert_filter_prints(veth, pcap, expr, expected)


def assert_filter_prints(veth, pcap, expr: str, expected: list[str]) -> None:
    """``xdptcp -i OUTER -t -S EXPR`` while ``pcap`` is replayed into OUTER: it prints the
    ``expected`` lines (a non-empty selection) and exits 0."""
    assert expected, f"{expr!r} selects nothing: the test would prove nothing"
    cap = Xdptcp("-i", veth.outer, "-t", "-S", expr)
    replay(veth, pcap)
    out, err, rc = cap.stop()
    assert rc == 0, err
    assert out.splitlines() == expected


def test_conversation_in_both_directions_matches_tcpdump(veth):
    """xdptcp on each side of a real TCP conversation (both directions by default: XDP in, tc
    out); tcpdump -Q inout on each side too."""
    mine = [
        Xdptcp("-i", veth.outer, "-t", "-S"),
        Xdptcp("-i", veth.inner, "-t", "-S", netns=veth.ns),
    ]
    dumps = [
        subprocess.Popen(
            [*prefix, "tcpdump", "-i", ifname, "-Q", "inout", "-nn", "-t", "-S", "-l", "tcp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix, ifname in (((), veth.outer), (("ip", "netns", "exec", veth.ns), veth.inner))
    ]
    server = None
    try:
        for d in dumps:  # (its readiness line is on stderr)
            read_until_ready(d, b"listening on", scaled(20), "tcpdump")
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import socket,sys;s=socket.socket();s.bind((sys.argv[1],5001));s.listen();"
                "print('ready',flush=True);c,_=s.accept();c.sendall(c.recv(100)*3);c.close()",
                veth.outer_ip,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert server.stdout.readline().strip() == "ready", server.stderr.read()
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                veth.ns,
                sys.executable,
                "-c",
                "import socket,sys;c=socket.create_connection((sys.argv[1],5001));"
                "c.sendall(b'hello');c.recv(100);c.close()",
                veth.outer_ip,
            ],
            check=True,
            timeout=scaled(20),
        )
        server.wait(timeout=scaled(10))
        time.sleep(scaled(0.5))
        results = [m.stop() for m in mine]
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        for m in mine:
            if m.proc.poll() is None:
                m.proc.kill()
        for d in dumps:
            d.send_signal(signal.SIGINT)
        refs = [
            [ln for ln in d.communicate(timeout=scaled(10))[0].splitlines() if ln] for d in dumps
        ]
    for (out, err, rc), ref in zip(results, refs):
        assert rc == 0, err
        assert len(ref) >= 4
        # every line, each direction in tcpdump's order (across directions two packets a few
        # microseconds apart may come in the other order: see test_egress.assert_same_lines)
        assert_same_lines(out.splitlines(), ref)


def test_snaplen_captures_payload_bytes(veth, tmp_path):
    frame = tcp_frame("198.18.0.2", "198.18.0.1", 40000, 5001, flags="PA", payload=b"x" * 300)
    write_pcap(tmp_path / "one.pcap", [frame])
    out_file = tmp_path / "snap.pcap"
    cap = Xdptcp("-i", veth.outer, "-s", "200", "-w", str(out_file))
    replay(veth, tmp_path / "one.pcap")
    out, err, rc = cap.stop()
    assert rc == 0, err
    from xdptcp.pcap import PcapReader

    with PcapReader(str(out_file)) as r:
        records = list(r)
    assert len(records) == 1
    _, data, wire_len = records[0]
    assert wire_len == len(frame)
    assert data == frame[:200]


@pytest.mark.parametrize("snap", [None, "0", "70"])
def test_payloads_on_decoded_ports_print_as_tcpdump_live(veth, tmp_path, snap):
    """HTTP, FTP, SMTP, WHOIS, RTSP and SSH payloads (tests/test_appproto.py's frames) replayed
    and captured: with -s 0 the lines are tcpdump's for the whole frames, with -s 70 for the
    frames cut to 70 bytes, and by default (headers only) for each frame cut where its TCP
    header ends (`: HTTP` with no request line, `[|ssh]`, as with tcpdump -s at that length).
    By default also on the ports of tcpdump's other decoders (`[|domain]`, `: BGP`...)."""
    from test_appproto import OTHER_PORTS, PAYLOADS, frames_on
    from test_appproto import frames as app_frames

    frames = app_frames()
    if snap is None:
        frames += frames_on(OTHER_PORTS, PAYLOADS[::4])
    pcap = tmp_path / "app.pcap"
    write_pcap(pcap, frames)
    if snap is None:
        cut = [(i * 1000, f[: header_end(f)], len(f)) for i, f in enumerate(frames)]
    else:
        n = int(snap) or len(max(frames, key=len))
        cut = [(i * 1000, f[:n], len(f)) for i, f in enumerate(frames)]
    write_pcap(tmp_path / "cut.pcap", cut)
    expected = list(tcpdump_lines(tmp_path / "cut.pcap", "-t").values())
    assert any(": HTTP" in line for line in expected)
    if snap is None:
        assert any(line.endswith(" [|domain]") for line in expected)
    cap = Xdptcp("-i", veth.outer, "-t", "-Q", "in", *(() if snap is None else ("-s", snap)))
    replay(veth, pcap)
    out, err, rc = cap.stop()
    assert rc == 0, err
    assert out.splitlines() == expected


def fragmented(pair) -> list[bytes]:
    """TCP packets in fragments, IPv4 and IPv6, and later fragments libpcap's `tcp` does not
    select: a UDP one, and an IPv6 one whose fragment header follows a hop-by-hop header."""
    from traffic import fragment, hop_by_hop, udp_frame

    data = bytes(range(256))

    def v4(sport: int, n: int, **kw) -> bytes:
        return tcp_frame(pair.inner_ip, pair.outer_ip, sport, 5201, flags="P.", payload=data[:n],
                         ident=9, **kw)  # fmt: skip

    def v6(sport: int, *ext) -> bytes:
        return tcp_frame(pair.inner_ip6, pair.outer_ip6, sport, 5201, flags="P.",
                         payload=data[:64], ipv6_ext=ext)  # fmt: skip

    return [
        v4(40000, 40, more_frags=True),
        v4(40000, 40, frag_offset=48, more_frags=True),
        v4(40000, 60, frag_offset=96),
        v6(40001, fragment(0, more=True, ident=77)),
        v6(40001, fragment(88, ident=77)),
        udp_frame(pair.inner_ip, pair.outer_ip, 53, 53, payload=data[:64], frag_offset=72),
        v6(40002, hop_by_hop(), fragment(88, ident=78)),
        tcp_frame(pair.inner_ip, pair.outer_ip, 40003, 5201, flags="S"),
    ]


ARGS = {
    "tcp": (),
    "v": ("-v",),
    "net": ("net", "198.18.0.0/15", "or", "net", "2001:db8::/32"),
    "port": ("port", "5201"),
    "json": ("--json",),
}


@pytest.mark.kmatrix
@pytest.mark.parametrize("args", ARGS.values(), ids=ARGS.keys())
def test_later_fragments_are_captured_as_tcpdump_tcp_captures_them(veth, tmp_path, args):
    """A later fragment of a TCP packet holds no TCP header, and libpcap's `tcp` selects it
    all the same (it reads the protocol, not the offset): tcpdump prints ``IP a > b:
    ip-proto-6`` or ``IP6 a > b: frag (off|len)``. xdptcp, capturing beside it, prints the
    same lines; `host` selects them too, `port` does not (the port is in the first fragment);
    --json has no object for them and says so in the summary."""
    pcap = tmp_path / "fragments.pcap"
    write_pcap(pcap, fragmented(veth))
    out, err, rc, ref = beside_tcpdump_tcp(veth, pcap, args)
    assert rc == 0, err
    later = len(re.findall(r": ip-proto-6$|: frag \((0x0000004d:)?88\|84\)$", ref, re.M))
    if args == ("port", "5201"):
        # the IPv4 first fragment and the SYN (libpcap's IPv6 `port` looks through no header)
        assert later == 0 and ref.count("\n") == 2, ref
    else:
        assert later == 3, ref  # not the UDP one, nor the one after a hop-by-hop header
    if "--json" in args:
        import json

        objs = [json.loads(line) for line in out.splitlines()]
        assert [(o["sport"], o["flags"]) for o in objs] == [
            (40000, "P."), (40001, "P."), (40003, "S")
        ]  # fmt: skip
        assert "6 packets captured" not in err and "3 packets captured" in err
        assert "3 packets captured with no TCP header to show" in err, err
        return
    assert out == ref
    assert f"{ref.count(chr(10)) - ref.count(chr(10) + '    ')} packets captured" in err, err


def cut_and_malformed(pair) -> list[bytes]:
    """TCP frames the program cannot walk, which libpcap's `tcp` selects all the same (it reads
    the protocol byte): cut short by the frame itself in the TCP header, before the ports and
    after them, over IPv4, IPv6 and IPv6 with a fragment header; an IPv4 header length below 20;
    a version nibble that contradicts the EtherType, both ways; a TCP data offset below 5. And
    two that `tcp` does not select: a UDP datagram cut short, and an IPv4 header cut short
    (which the program cannot read the protocol byte of: counted, not captured)."""
    from traffic import fragment, udp_frame

    def v4(sport: int, **kw) -> bytes:
        return tcp_frame(pair.inner_ip, pair.outer_ip, sport, 5201, flags="P.", payload=b"x" * 30,
                         **kw)  # fmt: skip

    def v6(sport: int, *ext) -> bytes:
        return tcp_frame(pair.inner_ip6, pair.outer_ip6, sport, 5201, flags="P.",
                         payload=b"x" * 30, ipv6_ext=ext)  # fmt: skip

    def patched(frame: bytes, at: int, value: int) -> bytes:
        return frame[:at] + bytes([value]) + frame[at + 1 :]

    return [
        v4(40010)[: 14 + 20 + 12],  # ports, then the TCP header cut
        v4(40011)[: 14 + 20 + 3],  # not even both ports
        v6(40012)[: 14 + 40 + 16],
        v6(40013, fragment(0, more=True, ident=5))[: 14 + 40 + 8 + 8],
        patched(v4(40014), 14, 0x44),  # IHL 4: 16 bytes
        patched(v4(40015), 14, 0x65),  # an IPv4 EtherType, version 6
        patched(v6(40016), 14, 0x40),  # an IPv6 EtherType, version 4
        patched(v4(40017), 14 + 20 + 12, 0x40),  # TCP data offset 4
        udp_frame(pair.inner_ip, pair.outer_ip, 53, 53, payload=b"y" * 30)[: 14 + 20 + 4],
        v4(40018)[: 14 + 15],  # the IPv4 header cut: tcpdump prints "IP  [|ip]"
        tcp_frame(pair.inner_ip, pair.outer_ip, 40019, 5201, flags="S"),
    ]


CUT_ARGS = {
    "tcp": (),
    "v": ("-v",),
    "port": ("port", "5201"),
    "net": ("net", "198.18.0.0/15", "or", "net", "2001:db8::/32"),
    "json": ("--json",),
}


@pytest.mark.kmatrix
@pytest.mark.parametrize("args", CUT_ARGS.values(), ids=CUT_ARGS.keys())
def test_cut_short_and_malformed_tcp_frames_are_captured_as_tcpdump_tcp_captures_them(
    veth, tmp_path, args
):
    """A frame whose TCP header the frame itself cuts short, or whose headers are malformed,
    is still TCP to libpcap's `tcp`, and `tcpdump -i IF tcp` prints it with `[|tcp]` or a note
    on what is wrong. xdptcp, capturing beside it, prints the same lines but one: that of the
    frame whose protocol byte the program does not read."""
    pcap = tmp_path / "cut.pcap"
    write_pcap(pcap, cut_and_malformed(veth))
    out, err, rc, ref = beside_tcpdump_tcp(veth, pcap, args)
    assert rc == 0, err
    # The one line xdptcp does not print: the IPv4 header cut short ("IP  [|ip]"), whose
    # protocol byte the program does not read (it reads no byte its parse did not check).
    cut_ip = [line for line in ref.splitlines() if line.endswith("[|ip]")]
    ref_lines = [line for line in ref.splitlines() if line not in cut_ip]
    heads = [line for line in ref_lines if not line.startswith(" ")]
    if args == ("port", "5201"):
        # libpcap's port reads the port where the IP header length says, whatever the version
        # nibble: the cut frames that hold both ports, the two versions at odds, data offset 4
        # and the SYN (not the IPv6 fragment: its port looks through no header)
        assert not cut_ip and len(heads) == 6, ref
    elif args[:1] == ("net",):
        assert not cut_ip and len(heads) == 9, ref  # (the cut IPv4 header has no addresses)
    else:  # every other frame libpcap's tcp selects
        assert len(cut_ip) == 1 and len(heads) == 9, ref
        assert sum("[|tcp]" in line for line in ref_lines) == 4, ref
    if "--json" in args:
        import json

        objs = [json.loads(line) for line in out.splitlines()]
        # the 4 cut short give objects, their fields past the capture null; the 4 malformed none
        assert [(o["sport"], o["flags"]) for o in objs] == [
            (40010, None), (None, None), (40012, None), (40013, None), (40019, "S")
        ]  # fmt: skip
        assert "5 packets captured\n" in err, err
        assert "4 packets captured with no TCP header to show" in err, err
        return
    assert out.splitlines() == ref_lines
