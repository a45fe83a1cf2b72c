"""xdptcp -r F -w OUT copies records without decoding when it can: the file it writes is the
file the general path (decode every frame, write each record) writes, byte for byte."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from xdptcp.offline import _copy, _copy_through
from xdptcp.options import OutputOptions
from xdptcp.pcapfilter import compile_filter
from xdptcp.readfile import EthernetFrames

import traffic
from conftest import need_tool


@pytest.fixture(scope="module", params=[False, True], ids=["micro", "nano"])
def varied(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "v.pcap"
    frames = traffic.varied_pcap(path, nano=request.param)
    return path, request.param, frames


def general(src, out: OutputOptions, keep) -> bytes:
    frames = EthernetFrames(str(src))
    _copy(out, (f for f in frames if keep is None or keep(f[1], f[2])), frames.snaplen, 1)
    with open(out.write, "rb") as f:
        return f.read()


@pytest.mark.parametrize("expr", [None, "ip", "tcp[13] & 2 != 0", "ip6"])
@pytest.mark.parametrize("count", [None, 3])
def test_copy_through_writes_what_decoding_writes(varied, tmp_path, expr, count) -> None:
    src, nano, frames = varied
    flt = compile_filter(expr) if expr else None
    fast = OutputOptions(write=str(tmp_path / "fast.pcap"), nano=nano, count=count)
    slow = OutputOptions(write=str(tmp_path / "slow.pcap"), nano=nano, count=count)
    written = _copy_through(str(src), fast, flt)
    assert written is not None and 0 < written <= len(frames)
    assert (tmp_path / "fast.pcap").read_bytes() == general(src, slow, flt.matches if flt else None)


def test_damaged_records_are_written_as_the_writer_would(tmp_path) -> None:
    """A fraction of a second past a second, a wire length below the captured one: kept, and
    written exactly as the general path writes them (as they lie, as tcpdump's -w does); other
    precisions and byte orders fall back."""
    frame = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1000, 443, flags="A")
    frame = getattr(frame, "data", frame)
    src = tmp_path / "odd.pcap"
    head = struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    recs = [(5, 2_500_000, len(frame), len(frame)), (6, 7, len(frame), 10), (7, 8, 20, 20)]
    body = b"".join(struct.pack("=IIII", *r) + frame[: r[2]] for r in recs)
    src.write_bytes(head + body)
    fast = OutputOptions(write=str(tmp_path / "fast.pcap"))
    assert _copy_through(str(src), fast, None) == 2
    slow = OutputOptions(write=str(tmp_path / "slow.pcap"))
    assert (tmp_path / "fast.pcap").read_bytes() == general(src, slow, None)
    assert (
        _copy_through(str(src), OutputOptions(write=str(tmp_path / "n"), nano=True), None) is None
    )
    assert (
        _copy_through(str(src), OutputOptions(write=str(tmp_path / "s"), snaplen=64), None) is None
    )


@pytest.mark.parametrize(
    "args", [[], ["--json"], ["tcp[13] & 2 != 0"]], ids=["text", "json", "filter"]
)
def test_standard_input_reads_as_the_file_does(varied, tmp_path, args) -> None:
    """`-r -` reads the standard input, as tcpdump's does: what a pipe gives prints and writes
    what the file itself does."""
    src, _, _ = varied
    xdptcp = [sys.executable, "-m", "xdptcp"]
    from_file = subprocess.run([*xdptcp, "-r", str(src), *args], capture_output=True, check=True)
    with open(src, "rb") as f:  # a pipe, not a file: nothing can be mapped or sought
        cat = subprocess.Popen(["cat"], stdin=f, stdout=subprocess.PIPE)
        piped = subprocess.run([*xdptcp, "-r", "-", *args], stdin=cat.stdout, capture_output=True)
        cat.stdout.close()
        cat.wait()
    assert piped.returncode == 0, piped.stderr
    assert from_file.stdout and piped.stdout == from_file.stdout
    assert piped.stderr == from_file.stderr
    wargs = [a for a in args if a != "--json"]
    out = tmp_path / "piped.pcap"
    with open(src, "rb") as f:
        subprocess.run([*xdptcp, "-r", "-", "-w", str(out), *wargs], stdin=f, check=True)
    ref = tmp_path / "file.pcap"
    subprocess.run([*xdptcp, "-r", str(src), "-w", str(ref), *wargs], check=True)
    assert out.read_bytes() == ref.read_bytes()


@pytest.mark.parametrize("chunk", [97, 4096])
@pytest.mark.parametrize("expr", [None, "tcp[13] & 2 != 0"])
def test_copy_through_across_chunks(varied, tmp_path, monkeypatch, chunk, expr) -> None:
    """The file is read in chunks: records cut by a chunk's end, and records longer than a
    chunk, are copied as the general path writes them."""
    monkeypatch.setattr("xdptcp.mapped.CHUNK", chunk)
    src, nano, frames = varied
    flt = compile_filter(expr) if expr else None
    fast = OutputOptions(write=str(tmp_path / "fast.pcap"), nano=nano)
    slow = OutputOptions(write=str(tmp_path / "slow.pcap"), nano=nano)
    assert _copy_through(str(src), fast, flt)
    assert (tmp_path / "fast.pcap").read_bytes() == general(src, slow, flt.matches if flt else None)


@pytest.mark.parametrize("chunk", [97, 1 << 20])
@pytest.mark.parametrize("cut", [3, 20, "bogus"])
def test_a_damaged_file_stops_the_copy_as_the_general_path_does(
    varied, tmp_path, monkeypatch, chunk, cut
) -> None:
    """A record header or record cut by the file's end, or a bogus captured length: the records
    before it are written, then the one-line error of the general reader."""
    from xdptcp.pcap import PcapError

    monkeypatch.setattr("xdptcp.mapped.CHUNK", chunk)
    src, nano, frames = varied
    bad = traffic.damaged_pcap(src, tmp_path / "bad.pcap", 2, cut)  # the third record
    errors = []
    for name, copy in (
        ("fast", lambda o: _copy_through(str(bad), o, None)),
        ("slow", lambda o: general(bad, o, None)),
    ):
        with pytest.raises(PcapError) as e:
            copy(OutputOptions(write=str(tmp_path / f"{name}.pcap"), nano=nano))
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "record 3" in errors[0]
    assert (tmp_path / "fast.pcap").read_bytes() == (tmp_path / "slow.pcap").read_bytes()


def test_a_file_cut_while_it_is_copied(tmp_path) -> None:
    """Another process cuts the file short while ``xdptcp -r F -w -`` copies it: the records
    before the cut are written, then one line names the record cut (a mapped file's reader
    would die of SIGBUS at the first page past the new end)."""
    import os

    from bench.traffic import w1_frames, write_pcap

    path = tmp_path / "long.pcap"
    write_pcap(path, w1_frames(150_000))  # some 19 MB: several chunks
    size = os.path.getsize(path)
    cmd = [sys.executable, "-m", "xdptcp", "-r", str(path), "-w", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # it runs; then blocks on the full pipe, inside chunk 1 (read from the pipe itself: what a
    # buffered read takes beyond 4096 bytes, communicate() would not see)
    first = os.read(proc.stdout.fileno(), 4096)
    os.truncate(path, size * 2 // 3 + 5)  # past the first chunk, inside a record
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    ref = subprocess.run(cmd, capture_output=True)
    assert ref.returncode == 1
    assert first + out == ref.stdout
    lines = err.decode().splitlines()
    assert len(lines) == 1 and ": truncated data (" in lines[0], err
    assert lines[0] == ref.stderr.decode().splitlines()[0]


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "pipe"])
@pytest.mark.parametrize("expr", [None, "tcp[13] & 2 != 0"], ids=["all", "filter"])
def test_a_file_cut_in_its_last_record_prints_every_whole_one(tmp_path, stdin, expr) -> None:
    """A file whose last record is cut short (a killed tcpdump's): every whole record before it
    is printed, as tcpdump prints them (lines are written in batches: the last one partly
    filled), then the one line naming the record cut, exit 1; --json as many objects."""
    tcpdump = need_tool("tcpdump")
    frames = [
        traffic.tcp_frame("198.18.0.1", "198.18.0.2", 40000 + i % 7, 5001, seq=1000 + i,
                          flags="S" if i % 5 == 0 else "A")
        for i in range(300)
    ]  # fmt: skip
    src = tmp_path / "cut.pcap"
    traffic.write_pcap(src, frames)
    os.truncate(src, os.path.getsize(src) - 10)
    env = dict(os.environ, TZ="UTC")
    filt = [expr] if expr else []
    ref = subprocess.run([tcpdump, "-nn", "-r", str(src), *filt], capture_output=True, env=env)
    want = ref.stdout.decode().splitlines()
    assert ref.returncode == 1 and "truncated dump file" in ref.stderr.decode()
    assert len(want) == (299 if expr is None else 60)

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "xdptcp", "-r", "-" if stdin else str(src), *args, *filt]
        with open(src, "rb") as f:
            return subprocess.run(cmd, stdin=f if stdin else None, capture_output=True, env=env)

    for args in ((), ("--json",)):
        res = run(*args)
        assert res.returncode == 1, res.stderr
        got = res.stdout.decode().splitlines()
        assert (len(got) == len(want)) if args else (got == want)
        err = res.stderr.decode().splitlines()
        assert len(err) == 1 and err[0].endswith(": record 300: truncated data (44 of 54 bytes)")


@pytest.mark.parametrize("expr", [None, "port 443"], ids=["all", "filtered"])
@pytest.mark.parametrize("walk", ["kernel", "python", "reader"])
def test_cut_and_damaged_records_copy_as_tcpdump_copies_them(tmp_path, walk, expr) -> None:
    """``-r F -w OUT`` writes the records ``tcpdump -r F -w OUT tcp`` writes: frames a snap
    length cut in their IP headers once the protocol byte is there (or the next header), and
    a damaged record (original length below the captured one) unchanged, as tcpdump copies it.
    By the kernel's walk (where it loads), Python's, and the general reader (the other byte
    order)."""
    tcpdump = need_tool("tcpdump")
    frames = []
    for frame in (traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1000, 443, flags="S",
                                    ip_options=b"\x01" * 8),
                  traffic.tcp_frame("2001:db8::1", "2001:db8::2", 1000, 443, flags="S",
                                    ipv6_ext=(traffic.fragment(),))):  # fmt: skip
        frames += [(frame[:n], len(frame)) for n in range(len(frame) + 1)]
        frames += [(frame, 10), (frame, 0), (frame, len(frame) - 1)]  # damaged
    frames = [traffic.Frame(1_700_000_000_000_000_000 + i * 1000, d, w)
              for i, (d, w) in enumerate(frames)]  # fmt: skip
    src, ref, out = tmp_path / "src.pcap", tmp_path / "ref.pcap", tmp_path / "out.pcap"
    traffic.write_pcap(src, frames, big_endian=walk == "reader")
    # a filter reads the bytes a damaged record holds, past its original length
    ref_expr, filt = (f"tcp and ({expr})", [expr]) if expr else ("tcp", [])
    subprocess.run([tcpdump, "-r", str(src), "-w", str(ref), ref_expr], check=True,
                   capture_output=True)  # fmt: skip
    env = dict(os.environ, XDPTCP_OFFLINE_KERNEL="0" if walk == "python" else "1")
    subprocess.run([sys.executable, "-m", "xdptcp", "-r", str(src), "-w", str(out), *filt],
                   check=True, env=env)  # fmt: skip
    want = ref.read_bytes()[24:]  # (both write this machine's byte order)
    assert out.read_bytes()[24:] == want
    assert len(want) > 60 * 16
