"""``xdptcp -r F -w OUT [EXPR]`` with the record walk in the kernel (``xdptcp.walk``): the file
it writes is the Python walk's (``XDPTCP_OFFLINE_KERNEL=0``) byte for byte, and tcpdump's
records where tcpdump's filter means the same; where the walker cannot load, the Python walk
writes the same file."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from xdptcp import walk
from xdptcp.offline import _copy_through
from xdptcp.options import OutputOptions
from xdptcp.pcap import MAX_RECORD
from xdptcp.pcapfilter import compile_filter

import traffic
from conftest import ROOT, cannot_run, need_tool

# The kernel matrix (6.1, 6.12 guests, Python 10-20x slower there) runs the compact tests marked
# kmatrix below: every filter through the verifier and the walk; the host runs them all.
pytestmark = [pytest.mark.system]

PORTS20 = " or ".join(f"port {p}" for p in range(5001, 5021))
GET = "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420"
FILTERS = [
    None,
    "port 5001",
    "host 198.18.0.1",
    "net 2001:db8::/48",
    "tcp[13] & 2 != 0",
    "len > 100",
    "vlan and tcp",
    "ip6",
    PORTS20,
    GET,
    "port 7",  # valid, and nothing in these files has it
]


@pytest.fixture(autouse=True)
def walker_loads() -> None:
    """The kernel path must be the one these tests exercise: a walker that cannot load here
    is a failure under CI, not a quiet fallback."""
    w = walk.open_walker(compile_filter(PORTS20))
    if w is None:
        cannot_run("the offline walker does not load here (needs root and Linux 5.17)")
    w.close()


def copy(src, tmp_path, monkeypatch, expr, kernel: bool, **opts) -> tuple[bytes, int]:
    """The file ``_copy_through`` writes, and how many records, by the path asked for."""
    used = []
    real = walk.copy_records

    def counted(*args):
        used.append(1)
        return real(*args)

    with monkeypatch.context() as m:
        m.setenv(walk.ENV, "1" if kernel else "0")
        m.setattr(walk, "copy_records", counted)
        out = tmp_path / f"{'k' if kernel else 'p'}.pcap"
        o = OutputOptions(write=str(out), **opts)
        n = _copy_through(str(src), o, compile_filter(expr) if expr else None)
    assert bool(used) == kernel
    return out.read_bytes(), n


def same_both_ways(src, tmp_path, monkeypatch, expr, **opts) -> bytes:
    k, nk = copy(src, tmp_path, monkeypatch, expr, True, **opts)
    p, np_ = copy(src, tmp_path, monkeypatch, expr, False, **opts)
    assert nk == np_
    assert k == p
    return k


@pytest.fixture(scope="module", params=[False, True], ids=["micro", "nano"])
def varied(request, tmp_path_factory):
    """VLAN and QinQ, IPv6 extension headers, fragments, IP options, cut frames, UDP, ICMP,
    ARP, other EtherTypes: the tests' standard varied capture."""
    path = tmp_path_factory.mktemp("w") / "v.pcap"
    traffic.varied_pcap(path, nano=request.param)
    return path, request.param


@pytest.mark.parametrize("expr", FILTERS)
@pytest.mark.parametrize("count", [None, 1, 7, 40])
def test_varied_capture_kernel_walk_writes_the_python_walks_file(
    varied, tmp_path, monkeypatch, expr, count
) -> None:
    src, nano = varied
    same_both_ways(src, tmp_path, monkeypatch, expr, nano=nano, count=count)


@pytest.mark.kmatrix
def test_every_filter_walks_on_this_kernel(tmp_path, monkeypatch) -> None:
    """Each filter, the 20-term one and the variable-offset one included, through this kernel's
    verifier and walk, on the varied capture and on W1's mix; a record crosses a chunk's end."""
    src = tmp_path / "v.pcap"
    traffic.varied_pcap(src, n=1)
    for expr in FILTERS:
        same_both_ways(src, tmp_path, monkeypatch, expr)
    w1 = w1_file(tmp_path, 3000)
    monkeypatch.setattr("xdptcp.mapped.CHUNK", 4096)
    for expr in (None, "port 443", GET):
        assert same_both_ways(w1, tmp_path, monkeypatch, expr)[24:] == tcpdump_records(
            w1, tmp_path, expr
        )


@pytest.mark.parametrize("chunk", [97, 600, 4096])
@pytest.mark.parametrize("expr", [None, "tcp[13] & 2 != 0", GET])
def test_records_longer_than_a_chunk_and_cut_by_one(
    varied, tmp_path, monkeypatch, chunk, expr
) -> None:
    monkeypatch.setattr("xdptcp.mapped.CHUNK", chunk)
    src, nano = varied
    same_both_ways(src, tmp_path, monkeypatch, expr, nano=nano)


def w1_file(tmp_path, n: int, **kw):
    from bench.traffic import w1_frames, write_pcap

    path = tmp_path / "w1.pcap"
    write_pcap(path, w1_frames(n), **kw)
    return path


def tcpdump_records(src, tmp_path, expr) -> bytes:
    """What ``tcpdump -r F -w OUT`` keeps of F's TCP, without its file header (tcpdump copies
    the input's snap length there, xdptcp writes its own)."""
    tcpdump = need_tool("tcpdump")
    out = tmp_path / "td.pcap"
    filt = "tcp" if expr is None else f"tcp and ({expr})"
    subprocess.run([tcpdump, "-r", str(src), "-w", str(out), filt], check=True,
                   capture_output=True)  # fmt: skip
    return out.read_bytes()[24:]


@pytest.mark.parametrize("expr", [None, "port 443", "port 80 and tcp[13] & 2 != 0", PORTS20, GET])
def test_w1_as_tcpdump_writes_it(tmp_path, monkeypatch, expr) -> None:
    """W1's mix, 1 in 5 frames IPv6, across several 1 MiB chunks; a record crosses each
    chunk's end."""
    src = w1_file(tmp_path, 30_000)
    ours = same_both_ways(src, tmp_path, monkeypatch, expr)
    assert ours[24:] == tcpdump_records(src, tmp_path, expr)
    if expr == "port 443":
        assert 0 < len(ours) < src.stat().st_size // 3


@pytest.mark.parametrize("count", [1, 2, 5000, 29_999])
def test_w1_counts(tmp_path, monkeypatch, count) -> None:
    src = w1_file(tmp_path, 30_000)
    out = same_both_ways(src, tmp_path, monkeypatch, "port 443", count=count)
    tcpdump = need_tool("tcpdump")
    ref = tmp_path / "c.pcap"
    subprocess.run([tcpdump, "-r", str(src), "-c", str(count), "-w", str(ref), "tcp port 443"],
                   check=True, capture_output=True)  # fmt: skip
    assert out[24:] == ref.read_bytes()[24:]


def test_snapped_records_from_tcpdump_s(tmp_path, monkeypatch) -> None:
    """A capture file whose records tcpdump -s cut (incl_len < orig_len), some inside the TCP
    header: the filter sees only the captured bytes."""
    tcpdump = need_tool("tcpdump")
    full = w1_file(tmp_path, 3000)
    for snap in (54, 66, 80):
        src = tmp_path / f"s{snap}.pcap"
        subprocess.run([tcpdump, "-r", str(full), "-s", str(snap), "-w", str(src)], check=True,
                       capture_output=True)  # fmt: skip
        for expr in (None, "port 443", GET, "len > 200", "tcp[20] = 1"):
            ours = same_both_ways(src, tmp_path, monkeypatch, expr)
            assert ours[24:] == tcpdump_records(src, tmp_path, expr), (snap, expr)


def test_records_the_writer_rewrites_are_handed_back(tmp_path, monkeypatch) -> None:
    """A timestamp fraction out of range, orig_len < incl_len: the Python walk writes its own
    record for these (not a copy), and so does the kernel path."""
    frames = [traffic.tcp_frame(traffic.A4, traffic.B4, 40000 + i, 5001, flags="S")
              for i in range(6)]  # fmt: skip
    path = tmp_path / "odd.pcap"
    traffic.write_pcap(path, frames)
    data = bytearray(path.read_bytes())
    pos, k = 24, 0
    while pos < len(data):
        incl = struct.unpack_from("=I", data, pos + 8)[0]
        if k == 1:
            struct.pack_into("=I", data, pos + 4, 1_500_000)  # usec >= 1 s
        if k == 3:
            struct.pack_into("=I", data, pos + 12, incl - 10)  # orig < incl
        pos += 16 + incl
        k += 1
    path.write_bytes(bytes(data))
    for expr in (None, "port 5001", "tcp[13] & 2 = 0"):
        out = same_both_ways(path, tmp_path, monkeypatch, expr)
        assert (len(out) > 24) == (expr != "tcp[13] & 2 = 0")


@pytest.mark.parametrize("chunk", [97, 1 << 20])
@pytest.mark.parametrize("cut", [3, 20, "bogus"])
def test_a_damaged_file_ends_the_kernel_walk_as_the_python_walk(
    varied, tmp_path, monkeypatch, chunk, cut
) -> None:
    from xdptcp.pcap import PcapError

    monkeypatch.setattr("xdptcp.mapped.CHUNK", chunk)
    src, nano = varied
    bad = traffic.damaged_pcap(src, tmp_path / "bad.pcap", 5, cut)  # the sixth record
    errors, files = [], []
    for kernel in (True, False):
        with pytest.raises(PcapError) as e:
            copy(bad, tmp_path, monkeypatch, "tcp[13] & 2 != 0", kernel, nano=nano)
        errors.append(str(e.value))
        files.append((tmp_path / f"{'k' if kernel else 'p'}.pcap").read_bytes())
    assert errors[0] == errors[1] and "record 6" in errors[0]
    assert files[0] == files[1]


def test_more_entries_than_one_walk_holds(tmp_path, monkeypatch) -> None:
    """Tiny frames that are not TCP, each one handed back, between TCP frames kept one by one:
    a chunk holds more answers than the walker's list, which it then fills more than once."""
    tcp = [traffic.tcp_frame(traffic.A4, traffic.B4, 40000 + i % 7, 5001 + i % 2, flags="S")
           for i in range(20)]  # fmt: skip
    odd = traffic.ethernet(b"", 0x88B5)  # 14 bytes, an experimental EtherType
    frames = [odd if i % 4 else tcp[(i // 4) % 20] for i in range(80_000)]
    src = tmp_path / "many.pcap"
    traffic.write_pcap(src, frames)
    assert src.stat().st_size > 1 << 20  # several walks in the first chunk alone
    for expr in (None, "port 5001"):
        out = same_both_ways(src, tmp_path, monkeypatch, expr)
        assert out[24:] == tcpdump_records(src, tmp_path, expr)


def test_nothing_is_left_behind(varied, tmp_path, monkeypatch) -> None:
    """The walker's fds are closed and its maps unmapped when the copy ends, by an error too."""
    src, nano = varied
    before, maps = set(os.listdir("/proc/self/fd")), bpf_maps_mapped()
    same_both_ways(src, tmp_path, monkeypatch, GET, nano=nano)
    bad = tmp_path / "cut.pcap"
    bad.write_bytes(src.read_bytes()[:-5])
    from xdptcp.pcap import PcapError

    with pytest.raises(PcapError):
        copy(bad, tmp_path, monkeypatch, None, True, nano=nano)
    assert set(os.listdir("/proc/self/fd")) == before
    assert bpf_maps_mapped() == maps


def bpf_maps_mapped() -> int:
    with open("/proc/self/maps") as f:
        return sum("bpf-map" in line for line in f)


def xdptcp(*args: str, env=None, no_caps: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "xdptcp", *args]
    if no_caps:  # still uid 0 (the tree and the files stay readable), without any capability
        cmd = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", *cmd]
    return subprocess.run(cmd, capture_output=True, env={**os.environ, **(env or {})})


def test_cli_kernel_python_and_unprivileged_write_the_same_file(tmp_path) -> None:
    """Through the command line: the kernel path, the Python path asked for, and a process
    without capabilities, which cannot load BPF programs (the walker falls back without a
    word), write the same file."""
    need_tool("setpriv")
    src = w1_file(tmp_path, 20_000)
    outs = {}
    for name, env, no_caps in (("kernel", None, False), ("python", {walk.ENV: "0"}, False),
                               ("no caps", None, True)):  # fmt: skip
        out = tmp_path / f"{name}.pcap"
        r = xdptcp("-r", str(src), "-w", str(out), "-c", "3000", "port 443", env=env,
                   no_caps=no_caps)  # fmt: skip
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        outs[name] = out.read_bytes()
    assert outs["kernel"] == outs["python"] == outs["no caps"]
    probe = "from xdptcp import walk; print(walk.open_walker(None) is None)"
    cmd = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all",
           sys.executable, "-c", probe]  # fmt: skip
    assert subprocess.run(cmd, capture_output=True, text=True).stdout == "True\n"  # it fell back
    assert outs["kernel"][24:] == tcpdump_records_c(src, tmp_path, 3000, "port 443")


def tcpdump_records_c(src, tmp_path, count: int, expr: str) -> bytes:
    out = tmp_path / "tdc.pcap"
    subprocess.run([need_tool("tcpdump"), "-r", str(src), "-c", str(count), "-w", str(out),
                    f"tcp and ({expr})"], check=True, capture_output=True)  # fmt: skip
    return out.read_bytes()[24:]


def test_a_real_capture_by_tcpdump(tmp_path, monkeypatch) -> None:
    """Frames the kernel made (HTTP over IPv4 and IPv6 between two namespaces' stacks, UDP and
    the ICMP errors answering it, ARP and neighbour discovery), captured by tcpdump: the kernel
    walk keeps what tcpdump keeps."""
    from hosts import make_veth

    tcpdump = need_tool("tcpdump")
    src = tmp_path / "real.pcap"
    pair = make_veth("wk")
    server = None
    try:
        cmd = [tcpdump, "-i", pair.outer, "--immediate-mode", "-U", "-w", str(src)]
        cap = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            server = subprocess.Popen(
                ["ip", "netns", "exec", pair.ns, sys.executable, "-m", "http.server", "8080",
                 "--bind", "::"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd=str(tmp_path))  # fmt: skip
            import socket

            for host in (pair.inner_ip, pair.inner_ip6) * 3:
                for _ in range(50):
                    try:
                        http_get(host, 8080)
                        break
                    except OSError:
                        time.sleep(0.1)
            for fam, host in ((socket.AF_INET, pair.inner_ip), (socket.AF_INET6, pair.inner_ip6)):
                with socket.socket(fam, socket.SOCK_DGRAM) as u:  # answered by ICMP unreachable
                    u.sendto(b"udp noise", (host, 9))
            time.sleep(1.5)  # (what the capture buffer holds is lost at SIGINT)
        finally:
            cap.send_signal(signal.SIGINT)
            cap.wait(timeout=10)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        pair.remove()
    assert src.stat().st_size > 2000
    for expr in (None, "port 8080", "tcp[13] & 2 != 0", "ip6", f"host {pair.inner_ip}", GET):
        ours = same_both_ways(src, tmp_path, monkeypatch, expr)
        assert ours[24:] == tcpdump_records(src, tmp_path, expr), expr
        if expr is None:
            assert len(ours) > 1000


def http_get(host: str, port: int) -> bytes:
    import socket

    with socket.create_connection((host, port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        got = []
        while True:
            b = c.recv(65536)
            if not b:
                return b"".join(got)
            got.append(b)


def test_the_walkers_answer_for_a_chunk() -> None:
    """The program's own answer, run on a chunk laid out by hand (``prog_run_in_place``: the
    context read and written back in place): runs of kept records merged (a damaged timestamp
    field too: copied as it lies), records handed back (all of them when they are longer than
    the file's snapshot length), and where and why it stops."""
    keep = lambda port: traffic.tcp_frame(traffic.A4, traffic.B4, 40000, port, flags="S")  # noqa: E731
    recs = [(0, keep(5001)), (0, keep(5001)), (0, traffic.arp_frame(traffic.A4, traffic.B4)),
            (0, keep(6000)), (0, keep(5001)), (2_000_000, keep(5001))]  # fmt: skip
    chunk, starts = bytearray(), []
    for frac, frame in recs:
        starts.append(len(chunk))
        chunk += struct.pack("=IIII", 1, frac, len(frame), len(frame)) + frame
    starts.append(len(chunk))
    chunk += struct.pack("=IIII", 1, 0, 1 << 30, 60)  # longer than any pcap record
    s = starts
    with walk.open_walker(compile_filter("port 5001")) as w:
        w.buf[: len(chunk)] = chunk

        def answer(end, limit=0, snap=MAX_RECORD):
            w.ctx.pos, w.ctx.end, w.ctx.limit, w.ctx.snap = 0, end, limit, snap
            w.run()
            e = w.entry_list(w.ctx.n)
            pairs = list(zip(e[::2], e[1::2]))
            return pairs, w.ctx.kept, w.ctx.looks, w.ctx.stop, w.ctx.pos

        # (the last kept record's fraction field holds two seconds: kept in its run as it lies)
        assert answer(len(chunk) + 16) == (
            [(s[0], s[2]), (s[2], s[2]), (s[4], s[6]), (s[6], s[6])],
            4,
            2,
            walk.STOP_DAMAGED,
            s[6],
        )
        assert answer(len(chunk), limit=2) == ([(s[0], s[2])], 2, 0, walk.STOP_LIMIT, s[2])
        assert answer(s[4] + 20) == ([(s[0], s[2]), (s[2], s[2])], 2, 1, walk.STOP_MORE, s[4])
        assert answer(s[0] + 15) == ([], 0, 0, walk.STOP_MORE, 0)
        # a snapshot length below the frames': every record handed back, to be written cut
        short = len(keep(5001)) - 1
        assert answer(len(chunk) + 16, snap=short) == (
            [(x, x) for x in s], 0, 7, walk.STOP_DAMAGED, s[6]
        )  # fmt: skip


def test_damaged_tcp_packets_tcpdump_prints_a_note_for_are_written_too(tmp_path, monkeypatch):
    """An IPv4 total length of 0 (BIG TCP and TSO captures: ``IP bad-len 0``), a version nibble
    that contradicts the EtherType (``IP6, wrong link-layer encapsulation``, ``IP6 version
    error``): ``-r F`` prints a line for each, as tcpdump does, so ``-r F -w OUT`` writes them,
    as ``tcpdump -r F -w OUT tcp`` does, whichever walk reads the file."""
    good = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1000, 443, flags="A", seq=5, ack=9)
    six = traffic.tcp_frame("2001:db8::1", "2001:db8::2", 1000, 443, flags="A", seq=5, ack=9)
    bad_len = good[:16] + b"\x00\x00" + good[18:]  # IPv4 total length 0
    v6_in_v4 = good[:14] + bytes([0x65]) + good[15:]  # version 6 under the IPv4 EtherType
    v4_in_v6 = six[:14] + bytes([0x40 | six[14] & 0x0F]) + six[15:]  # version 4 under IPv6's
    frames = [good, bad_len, good, v6_in_v4, v4_in_v6, good]
    src = tmp_path / "damaged.pcap"
    traffic.write_pcap(src, frames)
    ours = same_both_ways(src, tmp_path, monkeypatch, None)
    assert ours[24:] == tcpdump_records(src, tmp_path, None)
    out = tmp_path / "ours.pcap"
    out.write_bytes(ours)
    lines = subprocess.run([need_tool("tcpdump"), "-nn", "-r", str(out)], capture_output=True,
                           text=True, check=True).stdout.splitlines()  # fmt: skip
    assert len(lines) == 6 and "IP bad-len 0" in lines[1], lines
    assert "IP6, wrong link-layer encapsulation" in lines[3] and "IP6 version error" in lines[4]
    printed = subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(src)], capture_output=True,
                             text=True, check=True, cwd=ROOT).stdout.splitlines()  # fmt: skip
    assert len(printed) == 6
