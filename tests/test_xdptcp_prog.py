"""The capture program in the running kernel, driven by BPF_PROG_TEST_RUN.

Until pybpf can load it, the object is loaded by bpftool (which also proves libbpf agrees with
it); its .rodata configuration is set by patching a copy of the object, which is exactly what
a loader does with the section's initial bytes. Records are read straight from the mmap'd ring.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import mmap
import os
import shutil
import struct
from collections import Counter
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.conftest import IN_GUEST, bpf_object, need_tool, run
from tests.test_filter import ether, ipv4, ipv6, tcp_header, varied_frames
from xdptcp.record import RECORD_HEADER_SIZE, Verdict, decode, decode_counters, parse_frame

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]
XDP_PASS = 2
ETH_HLEN = 14  # BPF_PROG_TEST_RUN refuses shorter XDP frames (EINVAL)
_seq = itertools.count()


def patched_object(tmp: Path, values: dict[str, bytes | int]) -> Path:
    """A copy of the object whose .rodata variables start with ``values``."""
    src = bpf_object("xdptcp")
    blob = bytearray(src.read_bytes())
    with open(src, "rb") as f:
        elf = ELFFile(f)
        rodata = elf.get_section_by_name(".rodata")
        index = elf.get_section_index(".rodata")
        syms = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}
        for name, value in values.items():
            sym = syms[name]
            assert sym["st_shndx"] == index, name
            raw = struct.pack("=I", value) if isinstance(value, int) else value
            assert len(raw) == sym["st_size"], name
            start = rodata["sh_offset"] + sym["st_value"]
            blob[start : start + len(raw)] = raw
    out = tmp / f"xdptcp-{next(_seq)}.bpf.o"
    out.write_bytes(blob)
    return out


class Loaded:
    """The program pinned by `bpftool prog loadall`; unpinning at close frees it."""

    def __init__(self, tmp: Path, values: dict) -> None:
        self.pin = Path(f"/sys/fs/bpf/xdptcp_test_{os.getpid()}_{next(_seq)}")
        self.tmp = tmp
        obj = patched_object(tmp, values)
        run(need_tool("bpftool"), "prog", "loadall", str(obj), str(self.pin),
            "pinmaps", str(self.pin / "maps"))  # fmt: skip
        self.capacity = values.get("xdptcp_capacity", 256)

    def close(self) -> None:
        shutil.rmtree(self.pin, ignore_errors=True)

    def run(self, frame: bytes, repeat: int = 1, program: str = "xdp_capture") -> None:
        path = self.tmp / "frame.bin"
        path.write_bytes(frame)
        out = run("bpftool", "prog", "run", "pinned", str(self.pin / program),
                  "data_in", str(path), "repeat", str(repeat)).stdout  # fmt: skip
        assert f"Return value: {XDP_PASS}" in out

    def counters(self) -> dict[str, int]:
        out = run("bpftool", "map", "dump", "pinned", str(self.pin / "maps/xdptcp_counters"), "-j")
        total: Counter = Counter()
        for cpu in json.loads(out.stdout)[0]["values"]:
            total.update(decode_counters(bytes(int(b, 16) for b in cpu["value"])))
        return dict(total)

    def drain(self) -> list:
        return [decode(r) for r in read_ring(str(self.pin / "maps/xdptcp_ring"))]


def obj_get(path: str) -> int:
    """BPF_OBJ_GET (cmd 7) on a pinned map; x86-64 syscall number 321."""
    libc = ctypes.CDLL(None, use_errno=True)
    name = ctypes.create_string_buffer(path.encode())
    attr = struct.pack("=QII", ctypes.addressof(name), 0, 0).ljust(128, b"\0")
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = libc.syscall(321, 7, buf, len(attr))
    assert fd >= 0, os.strerror(ctypes.get_errno())
    return fd


def read_ring(path: str, size: int = 1 << 22) -> list[bytes]:
    """Every committed sample, in order; advances the consumer position past them."""
    page = mmap.PAGESIZE
    fd = obj_get(path)
    try:
        cons = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        prod = mmap.mmap(fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
    finally:
        os.close(fd)
    c, p = struct.unpack_from("=Q", cons)[0], struct.unpack_from("=Q", prod)[0]
    out = []
    while c < p:
        length, _ = struct.unpack_from("=II", prod, page + c % size)
        assert not length & (1 << 31), "busy record with nobody producing"
        if not length & (1 << 30):
            start = page + c % size + 8
            out.append(bytes(prod[start : start + length]))
        c += (length & 0x3FFFFFFF) + 8 + 7 & ~7
    struct.pack_into("=Q", cons, 0, c)
    cons.close()
    prod.close()
    return out


@pytest.fixture
def load(tmp_path):
    made = []

    def _load(**values) -> Loaded:
        made.append(Loaded(tmp_path, values))
        return made[-1]

    yield _load
    for lo in made:
        lo.close()


def edge_frames() -> list[bytes]:
    th = tcp_header(1234, 80, 0x12, 3)
    v4 = ether(ipv4("198.18.0.1", "198.18.0.2", th + b"payload", opt_words=2), 0x0800)
    v6 = ether(ipv6("2001:db8::1", "2001:db8::2", th, 0, bytes([6, 0]) + bytes(6)), 0x86DD,
               [(0x88A8, 5), (0x8100, 6)])  # fmt: skip
    bad_ihl = bytearray(v4)
    bad_ihl[14] = 0x44
    bad_doff = bytearray(v4)
    bad_doff[14 + 28 + 12] = 0x40
    frag = ether(ipv4("198.18.0.1", "198.18.0.2", th, frag=0x2001), 0x0800)
    first_frag = ether(ipv4("198.18.0.1", "198.18.0.2", th, frag=0x2000), 0x0800)
    v6frag = ether(ipv6("2001:db8::1", "2001:db8::2", th, 44, bytes([6, 0, 0, 0x18, 0, 0, 0, 1])),
                   0x86DD)  # fmt: skip
    deep = ether(ipv4("198.18.0.1", "198.18.0.2", th), 0x0800, [(0x8100, 1)] * 3)
    ext7 = ether(ipv6("2001:db8::1", "2001:db8::2", th, 60, (bytes([60, 0]) + bytes(6)) * 6
                      + bytes([6, 0]) + bytes(6)), 0x86DD)  # fmt: skip
    bogus_len = bytearray(v4)
    bogus_len[16:18] = b"\xff\xff"  # IPv4 total length claims 65535 bytes
    return [v4, v6, bytes(bad_ihl), bytes(bad_doff), frag, first_frag, v6frag, deep, ext7,
            bytes(bogus_len), bytes(ETH_HLEN)]  # fmt: skip


def runnable(frames: list[bytes]) -> list[bytes]:
    return [f for f in frames if len(f) >= ETH_HLEN]


def check_counters(c: dict[str, int]) -> None:
    assert c["matched"] == c["emitted"] + c["ring_full"]
    reasons = sum(
        v for k, v in c.items() if k not in ("packets", "matched", "emitted", "ring_full")
    )
    assert c["packets"] == reasons


def test_every_frame_is_passed_and_counted_like_the_reference(load) -> None:
    frames = runnable(varied_frames(count=120)) + edge_frames()
    prog = load()
    for frame in frames:
        prog.run(frame)
    c = prog.counters()
    check_counters(c)
    expected = Counter(parse_frame(f)[0].value for f in frames)
    assert {k: c[k] for k in expected} == dict(expected)
    assert c["packets"] == len(frames)
    assert c["tcp"] == c["matched"] == c["emitted"] == expected[Verdict.TCP.value]
    tcp = [f for f in frames if parse_frame(f)[0] is Verdict.TCP]
    records = prog.drain()
    assert [r.data for r in records] == [f[: parse_frame(f)[1].l4_off + parse_frame(f)[1].l4_len]
                                         for f in tcp]  # fmt: skip
    for rec, frame in zip(records, tcp):
        assert rec.wire_len == len(frame) and rec.cap_len == len(rec.data) <= rec.wire_len
        assert (rec.l3_off, rec.l4_off, rec.vlans) == (
            parse_frame(frame)[1].l3_off,
            parse_frame(frame)[1].l4_off,
            parse_frame(frame)[1].vlans,
        )
        assert rec.ts_ns > 0 and rec.ifindex == 1  # test runs arrive on the loopback device


def multi_buffer_frames() -> list[bytes]:
    """Frames longer than a test run's first buffer (a page less head- and tailroom): run
    through an "xdp.frags" program, the kernel hands them over in several buffers."""
    th = tcp_header(1234, 443, 0x18, 3)
    v4 = ether(ipv4("198.18.0.1", "198.18.0.2", th + bytes(8900)), 0x0800)
    v6 = ether(ipv6("2001:db8::1", "2001:db8::2", th + bytes(5000)), 0x86DD, [(0x8100, 6)])
    padded = v4 + bytes(64)  # bytes after the IP packet, in the last buffer
    header_only = ether(ipv4("198.18.0.1", "198.18.0.2", th), 0x0800) + bytes(6000)
    jumbogram = bytearray(v6)
    jumbogram[18 + 4 : 18 + 6] = b"\0\0"  # IPv6 payload length 0
    return [v4, v6, padded, header_only, bytes(jumbogram)]


def test_the_program_without_a_filter_records_what_the_filtered_one_records(load) -> None:
    """xdptcp loads xdp_capture_all when there is no filter: it asks a frame's whole length of
    the kernel only when the frame may reach past its first buffer (it is tagged, not IP, or its
    IP packet does not end right there). Every frame, multi-buffer ones too, gives the same
    counters and the same records (their times aside) as xdp_capture with a filter that reads
    the length, for which the length is asked of every frame (here the object's own filter,
    which takes every frame); and each record's wire length is the frame's."""
    # (fewer varied frames in an emulated kernel-matrix guest: each is two bpftool runs)
    varied = runnable(varied_frames(count=30 if IN_GUEST else 120))
    frames = varied + edge_frames() + multi_buffer_frames()
    got = {}
    for program in ("xdp_capture", "xdp_capture_all"):
        prog = load(xdptcp_xdp_frags=1, xdptcp_snaplen=128, xdptcp_filter_on=1,
                    xdptcp_filter_len=1)  # fmt: skip
        for frame in frames:
            prog.run(frame, program=program)
        got[program] = ([r._replace(ts_ns=0) for r in prog.drain()], prog.counters())
    assert got["xdp_capture_all"] == got["xdp_capture"]
    records, counters = got["xdp_capture_all"]
    tcp = [f for f in frames if parse_frame(f)[0] is Verdict.TCP]
    assert counters["emitted"] == len(records) == len(tcp)
    assert [r.wire_len for r in records] == [len(f) for f in tcp]
    assert [r.data for r in records] == [f[:128] for f in tcp]


def test_truncation_at_every_offset_never_claims_unread_bytes(load) -> None:
    # As xdptcp loads it: with the multi-buffer helpers, which take copies over 256 bytes.
    prog = load(xdptcp_snaplen=4096, xdptcp_capacity=4096, xdptcp_xdp_frags=1)
    for full in edge_frames()[:2]:
        for cut in range(ETH_HLEN, len(full) + 1):
            frame = full[:cut]
            prog.run(frame)
            records = prog.drain()
            is_tcp = parse_frame(frame)[0] is Verdict.TCP
            assert len(records) == int(is_tcp), cut
            for rec in records:
                assert rec.wire_len == cut and rec.cap_len == cut and rec.data == frame
    check_counters(prog.counters())


def test_snaplen_and_capacity_bound_the_capture(load) -> None:
    frame = edge_frames()[0] + bytes(200)
    prog = load(xdptcp_snaplen=100, xdptcp_capacity=64)
    prog.run(frame)
    (rec,) = prog.drain()
    assert (rec.cap_len, rec.data, rec.wire_len) == (64, frame[:64], len(frame))
    prog = load(xdptcp_snaplen=100)
    prog.run(frame)
    (rec,) = prog.drain()
    assert (rec.cap_len, rec.data) == (100, frame[:100])


@pytest.mark.parametrize("frags", [1, 0], ids=["frags", "no-frags"])
def test_every_snap_length_copies_exactly_its_bytes(load, frags) -> None:
    """The copy takes the 32-byte block that ends at the snap length, then whole blocks from the
    start up to it; under 32 bytes, the same with 8-byte words (one word under 8 bytes): every
    length, aligned or not, gets exactly the frame's first bytes."""
    frame = edge_frames()[0] + bytes(range(200))
    lengths = (1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 63, 64, 65, 95, 96, 97, 100, 127, 128)
    for snaplen in (*lengths, 129, 224, 255, 256, 257):
        prog = load(xdptcp_snaplen=snaplen, xdptcp_capacity=320, xdptcp_xdp_frags=frags)
        prog.run(frame)
        (rec,) = prog.drain()
        assert (rec.cap_len, rec.data) == (snaplen, frame[:snaplen]), snaplen
    # a capacity that is no multiple of the block stops the blocks early; one under a block
    # takes words
    for capacity in (8, 20, 31, 33, 61, 67, 95):
        prog = load(xdptcp_snaplen=100, xdptcp_capacity=capacity, xdptcp_xdp_frags=frags)
        prog.run(frame)
        (rec,) = prog.drain()
        assert (rec.cap_len, rec.data) == (capacity, frame[:capacity]), capacity


def test_full_ring_is_counted_and_the_invariant_holds(load) -> None:
    prog = load()
    record = RECORD_HEADER_SIZE + 256 + 8
    prog.run(edge_frames()[0], repeat=(1 << 22) // record + 500)
    c = prog.counters()
    check_counters(c)
    assert c["ring_full"] >= 500 and c["emitted"] == (1 << 22) // record
