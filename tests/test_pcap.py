"""pcap files we write are read by tcpdump and tshark; files from elsewhere are read by us."""

from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import sys

import pytest

from xdptcp.pcap import MAX_RECORD, PcapError, PcapReader, PcapWriter, read_pcap

import traffic
from conftest import need_tool


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return traffic.varied_pcap(tmp_path_factory.mktemp("p") / "v.pcap", nano=True)


def write(path, frames, **kw) -> None:
    with PcapWriter(path, **kw) as w:
        w.write_batch((f.ts_ns, f.data, f.wire_len) for f in frames[:100])
        for f in frames[100:]:
            w.write(f.ts_ns, f.data, f.wire_len)


def tshark_fields(path) -> list[tuple[str, int, int]]:
    tshark = need_tool("tshark")
    out = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len",
         "-e", "frame.cap_len"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [(t, int(n), int(c)) for t, n, c in (line.split("\t") for line in out.splitlines())]


@pytest.mark.parametrize("nano", [False, True])
def test_tshark_reads_what_we_write(tmp_path, frames, nano):
    path = tmp_path / "out.pcap"
    write(path, frames, nano=nano)
    got = tshark_fields(path)
    assert len(got) == len(frames)
    for f, (epoch, wire, cap) in zip(frames, got):
        sec, frac = divmod(f.ts_ns, 1_000_000_000)
        want = f"{sec}.{frac:09d}" if nano else f"{sec}.{frac // 1000:06d}"
        assert epoch.rstrip("0") == want.rstrip("0")
        assert (wire, cap) == (f.wire_len, len(f.data))


def test_tcpdump_reads_what_we_write(tmp_path, frames):
    path = tmp_path / "out.pcap"
    write(path, frames, nano=True)
    tcpdump = need_tool("tcpdump")
    mine = subprocess.run(
        [tcpdump, "-nn", "-tt", "--time-stamp-precision=nano", "-r", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    original = tmp_path / "orig.pcap"
    traffic.write_pcap(original, frames, nano=True)
    theirs = subprocess.run(
        [tcpdump, "-nn", "-tt", "--time-stamp-precision=nano", "-r", str(original)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert mine == theirs and mine.count("\n") >= len(frames)


def test_round_trip_and_snaplen(tmp_path, frames):
    path = tmp_path / "snap.pcap"
    write(path, frames, nano=True, snaplen=60)
    back = read_pcap(path)
    assert [(t, d, w) for t, d, w in back] == [(f.ts_ns, f.data[:60], f.wire_len) for f in frames]
    with PcapReader(path) as r:
        assert (r.nano, r.snaplen, r.linktype) == (True, 60, 1)


def test_microsecond_file_keeps_microseconds(tmp_path, frames):
    path = tmp_path / "us.pcap"
    write(path, frames)
    assert [t for t, _, _ in read_pcap(path)] == [f.ts_ns // 1000 * 1000 for f in frames]


def test_file_mode_respects_umask(tmp_path):
    old = os.umask(0o022)
    try:
        PcapWriter(tmp_path / "a.pcap").close()
        os.umask(0o077)
        PcapWriter(tmp_path / "b.pcap").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.pcap").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "b.pcap").st_mode) == 0o600


def test_symlink_is_refused_and_target_untouched(tmp_path):
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    link = tmp_path / "capture.pcap"
    link.symlink_to(target)
    with pytest.raises(PcapError, match="symbolic link"):
        PcapWriter(link)
    assert target.read_bytes() == b"keep me"


def test_dangling_symlink_is_refused(tmp_path):
    link = tmp_path / "capture.pcap"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(PcapError, match="symbolic link"):
        PcapWriter(link)
    assert not (tmp_path / "nowhere").exists()


def test_unwritable_place_is_a_clear_error(tmp_path):
    with pytest.raises(PcapError, match="cannot create the pcap file: No such file"):
        PcapWriter(tmp_path / "missing-dir" / "x.pcap")


def test_batch_is_one_write_call(frames):
    class Counting(io.BytesIO):
        writes = 0

        def write(self, b):
            Counting.writes += 1
            return super().write(b)

    out = Counting()
    w = PcapWriter(out)
    before = Counting.writes
    w.write_batch((f.ts_ns, f.data, f.wire_len) for f in frames)
    assert Counting.writes == before + 1
    out.seek(0)
    assert len(list(PcapReader(out))) == len(frames)


def test_dash_writes_to_stdout(tmp_path):
    code = (
        "from xdptcp.pcap import PcapWriter\n"
        "w = PcapWriter('-', nano=True)\n"
        "w.write_batch([(1_700_000_000_000_000_001, b'x' * 60, 60)])\n"
        "w.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    path = tmp_path / "stdout.pcap"
    path.write_bytes(out)
    assert read_pcap(path) == [(1_700_000_000_000_000_001, b"x" * 60, 60)]


@pytest.mark.parametrize("nano", [False, True])
def test_big_endian_files(tmp_path, frames, nano):
    path = tmp_path / "be.pcap"
    traffic.write_pcap(path, frames[:20], nano=nano, big_endian=True)
    unit = 1 if nano else 1000
    assert read_pcap(path) == [(f.ts_ns // unit * unit, f.data, f.wire_len) for f in frames[:20]]


def test_pcapng_from_editcap(tmp_path, frames):
    editcap = need_tool("editcap")
    src, dst = tmp_path / "v.pcap", tmp_path / "v.pcapng"
    traffic.write_pcap(src, frames, nano=True)
    subprocess.run([editcap, "-F", "pcapng", str(src), str(dst)], check=True)
    assert read_pcap(dst) == read_pcap(src)


def test_truncated_record_names_the_record(tmp_path, frames):
    path = tmp_path / "cut.pcap"
    traffic.write_pcap(path, frames[:3])
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    with pytest.raises(PcapError, match=r"record 3: truncated data \(\d+ of \d+ bytes\)"):
        read_pcap(path)
    path.write_bytes(data[: 24 + 16 + len(frames[0].data) + 7])
    with pytest.raises(PcapError, match=r"record 2: truncated record header \(7 of 16"):
        read_pcap(path)


def test_bogus_record_length_is_refused_without_allocating(tmp_path):
    path = tmp_path / "bogus.pcap"
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(head + struct.pack("<IIII", 1, 2, 0xFFFFFFF0, 0xFFFFFFF0) + b"x" * 10)
    with pytest.raises(PcapError, match=f"record 1: captured length {0xFFFFFFF0} is bogus"):
        read_pcap(path)
    assert MAX_RECORD == 262144


def test_other_link_types_are_read_and_non_pcap_refused(tmp_path):
    """The reader hands back every record with its link type (xdptcp.linktypes decides what
    it can print); what is not a capture at all is refused."""
    path = tmp_path / "raw.pcap"
    ip = bytes.fromhex("4500001400000000400600000a0000010a000002")
    path.write_bytes(
        struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
        + struct.pack("<IIII", 1, 2, len(ip), len(ip))
        + ip
    )
    with PcapReader(path) as reader:
        assert reader.linktype == 101
        assert list(reader.packets()) == [(1_000_002_000, ip, len(ip), 101)]
    path.write_bytes(b"hello, this is text and no capture")
    with pytest.raises(PcapError, match="not a pcap file"):
        PcapReader(path)
    with pytest.raises(PcapError, match="cannot open"):
        PcapReader(tmp_path / "absent.pcap")
    for data, said in ((b"", "only 0 bytes"), (b"\n", "only 1 byte\\)"), (b"ab", "only 2 bytes")):
        path.write_bytes(data)
        with pytest.raises(PcapError, match=f"not a pcap file \\({said}"):
            PcapReader(path)


def test_reads_a_pcap_tcpdump_wrote(tmp_path, frames):
    tcpdump = need_tool("tcpdump")
    src, dst = tmp_path / "src.pcap", tmp_path / "dst.pcap"
    traffic.write_pcap(src, frames, nano=True)
    subprocess.run([tcpdump, "-r", str(src), "-w", str(dst), "tcp"], check=True,
                   capture_output=True)  # fmt: skip
    got = read_pcap(dst)
    assert 0 < len(got) < len(frames)
    assert all(any(d == f.data for f in frames) for _, d, _ in got)
