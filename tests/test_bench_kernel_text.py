"""bench/kernel_text.py: the lines bpf/bench/kernel_text.bpf.c makes are tcpdump's, also across
chunks of the file and runs that fill the text buffer, and a record it cannot print stops it
with a one-line error."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from bench import kernel_text

from conftest import ROOT, bpf_object, need_tool

SCRIPT = ROOT / "bench" / "kernel_text.py"


def _kernel_lines(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--print", str(path)],
                          capture_output=True, cwd=ROOT)  # fmt: skip


def _tcpdump_lines(path) -> bytes:
    return subprocess.run([need_tool("tcpdump"), "-nn", "-r", str(path)], capture_output=True,
                          check=True).stdout  # fmt: skip


def test_the_bulk_file_holds_the_records_it_says(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(kernel_text, "CACHE", tmp_path)
    path = kernel_text.bulk_pcap(130)
    data = path.read_bytes()
    assert len(data) == 24 + 130 * (16 + 66)
    for i in (0, 64, 129):
        at = 24 + i * 82
        sec, usec, incl, orig = struct.unpack_from("=IIII", data, at)
        assert (incl, orig) == (66, 1514)
        assert (sec * 1_000_000 + usec) - 1_700_000_000_000_000 == 3 * i
        sport, _, seq = struct.unpack_from("!HHI", data, at + 16 + 34)
        assert sport == 40000 + i % 64 and seq == 1_000_000 * (i % 64 + 1) + 1448 * (i // 64)


@pytest.mark.system
def test_the_kernels_lines_are_tcpdumps_across_chunks_and_full_buffers(tmp_path, monkeypatch):
    bpf_object("bench/kernel_text")
    monkeypatch.setattr(kernel_text, "CACHE", tmp_path)
    # 30,000 records of 82 bytes: three chunks of the file (1 MiB each); the 12,787 lines of a
    # whole chunk (some 145 bytes each) are more than the 1 MiB text buffer takes at once
    path = kernel_text.bulk_pcap(30_000)
    got = _kernel_lines(path)
    assert got.returncode == 0, got.stderr
    want = _tcpdump_lines(path)
    assert want.count(b"\n") == 30_000
    assert got.stdout == want
    assert got.stderr.decode().startswith("kernel_text: 30000 lines, ")


@pytest.mark.system
def test_a_record_of_another_shape_stops_it_with_one_line(tmp_path, monkeypatch) -> None:
    bpf_object("bench/kernel_text")
    monkeypatch.setattr(kernel_text, "CACHE", tmp_path)
    data = bytearray(kernel_text.bulk_pcap(10).read_bytes())
    at = 24 + 7 * 82 + 16 + 14 + 20 + 13  # the eighth record's TCP flags
    data[at] = 0x12  # SYN+ACK
    path = tmp_path / "syn.pcap"
    path.write_bytes(data)
    got = _kernel_lines(path)
    assert got.returncode == 1
    assert got.stderr.decode().splitlines() == [
        f"kernel_text: {path}: the record at byte {24 + 7 * 82} is of a shape the study does "
        "not print"
    ]
    # the seven before it were printed, as tcpdump prints them
    assert got.stdout == b"".join(_tcpdump_lines(path).splitlines(keepends=True)[:7])
