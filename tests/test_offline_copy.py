"""xdptcp -r F -w OUT copies records without decoding when it can: the file it writes is the
file the general path (decode every frame, write each record) writes, byte for byte."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from xdptcp.offline import _copy, _copy_through
from xdptcp.options import OutputOptions
from xdptcp.pcapfilter import compile_filter
from xdptcp.readfile import ethernet_frames

import traffic


@pytest.fixture(scope="module", params=[False, True], ids=["micro", "nano"])
def varied(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "v.pcap"
    frames = traffic.varied_pcap(path, nano=request.param)
    return path, request.param, frames


def general(src, out: OutputOptions, keep) -> bytes:
    _copy(out, (f for f in ethernet_frames(str(src)) if keep is None or keep(f[1], f[2])))
    with open(out.write, "rb") as f:
        return f.read()


@pytest.mark.parametrize("expr", [None, "ip", "tcp[13] & 2 != 0", "ip6"])
@pytest.mark.parametrize("count", [None, 3])
def test_copy_through_writes_what_decoding_writes(varied, tmp_path, expr, count) -> None:
    src, nano, frames = varied
    flt = compile_filter(expr) if expr else None
    fast = OutputOptions(write=str(tmp_path / "fast.pcap"), nano=nano, count=count)
    slow = OutputOptions(write=str(tmp_path / "slow.pcap"), nano=nano, count=count)
    written = _copy_through(str(src), fast, flt.in_place if flt else None)
    assert written is not None and 0 < written <= len(frames)
    assert (tmp_path / "fast.pcap").read_bytes() == general(src, slow, flt.matches if flt else None)


def test_damaged_records_are_written_as_the_writer_would(tmp_path) -> None:
    """A fraction of a second past a second, a wire length below the captured one: kept, and
    normalised exactly as the general path does; other precisions and byte orders fall back."""
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
