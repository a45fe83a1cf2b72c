"""Live text and JSON lines from the ring: the capture program writes a classic pcap record header
into each record (``xdptcp_out`` = OUT_PCAP) and the sink walks a drained batch with the ``-r``
walk (``mapped_lines`` over ``xdptcp.mapped.RingSpan``). Here batches are laid out as the program
lays them out (the ring's 8-byte headers, the program's record header with the pcap header at its
end, the frame, stale bytes up to the capacity, padding), drained by ``capture.file_batches``, and
held to the record-by-record path the sink takes for decoded records (``format`` per record,
itself held to tcpdump by test_tcpdump_format.py): every line, every count."""

from __future__ import annotations

import io
import random
import struct

import pytest
from test_mapped import option_frames

from pybpf.ringbuf import slot_size
from xdptcp.capture import file_batches
from xdptcp.clock import TS_MODES
from xdptcp.jsonfmt import JsonFormatter
from xdptcp.pcap import PcapReader
from xdptcp.record import _HEADER, OUT_PCAP, record_size
from xdptcp.sinks import TextSink
from xdptcp.tcpdump import TextFormatter

import traffic

OFFSET_NS = 1_600_000_000_123_456_789  # the wall clock's offset from CLOCK_MONOTONIC


@pytest.fixture(autouse=True)
def _utc(utc):
    """Local times printed in UTC."""


class FakeRing:
    """``peek_fixed`` over a prepared span of slots, a few records at a time."""

    def __init__(self, blob: bytes, slot: int, per_drain: int) -> None:
        self.blob, self.slot, self.per_drain, self.pos = blob, slot, per_drain, 0

    def peek_fixed(self, size: int, max_records=None) -> tuple[memoryview, int, int]:
        n = min(self.per_drain, max_records or self.per_drain)
        part = self.blob[self.pos : self.pos + n * self.slot]
        return memoryview(part), len(part) // self.slot, self.pos + len(part)

    def consume(self, pos: int) -> None:
        self.pos = pos

    @property
    def consumer_pos(self) -> int:
        return self.pos

    @property
    def producer_pos(self) -> int:
        return len(self.blob)


IFINDEXES = (7, 9, 9, 7, 12)  # the interfaces of several, record by record (12: not named)
NAMES = {7: "veth-r1", 9: "a-longer-name0"}


def ring_span(
    records, capacity: int, nano: bool, rnd: random.Random, several: bool = False
) -> tuple[bytes, int]:
    """The slots the program writes for ``(monotonic ns, frame, wire_len, direction)``: its
    header with write_out()'s pcap header (wall-clock time in micro- or nanoseconds), the frame
    cut at the capacity, stale bytes after it. The interface is 7, or with ``several`` each
    record's in ``IFINDEXES`` in turn."""
    size = record_size(capacity, OUT_PCAP)
    slot = slot_size(size)
    out = []
    for i, (ts, frame, wire, direction) in enumerate(records):
        data = frame[:capacity]
        t = ts + OFFSET_NS
        if not nano:
            t //= 1000
        per_sec = 1_000_000_000 if nano else 1_000_000
        ifindex = IFINDEXES[i % len(IFINDEXES)] if several else 7
        head = _HEADER.pack(ts, ifindex, 0, wire, len(data), 14, 34, 20, 4, 0, direction, 0, 0,
                            0, 0)  # fmt: skip
        head = head[:56] + struct.pack("=IIII", t // per_sec, t % per_sec, len(data), wire)
        stale = rnd.randbytes(capacity - len(data))
        rec = struct.pack("=II", size, 0) + head + data + stale
        out.append(rec.ljust(slot, b"\xee"))
    return b"".join(out), slot


def records_of(path, capacity: int, rnd: random.Random) -> list[tuple[int, bytes, int, int]]:
    with PcapReader(str(path)) as r:
        return [
            (ts - OFFSET_NS + rnd.randrange(1000), data, max(wire, len(data)), rnd.randrange(2))
            for ts, data, wire in r
        ]


def both(make, records, capacity: int, limit=None, per_drain: int = 37, several: bool = False):
    """(walked, record by record): the output and the (shown, used) of every batch. With
    ``several``, the records come from several interfaces (``IFINDEXES``), the walk told their
    names by index as a capture tells it (``NAMES``), the decoded records named as
    ``Capture.batches`` names them."""
    rnd = random.Random(3)
    ref_sink, walk_sink = TextSink(make(), io.StringIO()), TextSink(make(), io.StringIO())
    assert walk_sink.out_format == OUT_PCAP
    walk_sink.ifname = dict(NAMES) if several else "veth-r1"
    blob, slot = ring_span(records, capacity, walk_sink.out_nano, rnd, several)
    ring = FakeRing(blob, slot, per_drain)
    walked, ref = [], []
    done = 0

    def name(i: int) -> str:
        ifindex = IFINDEXES[i % len(IFINDEXES)]
        return (NAMES.get(ifindex) or f"if{ifindex}") if several else "veth-r1"

    for batch in file_batches(ring, record_size(capacity, OUT_PCAP), OUT_PCAP):
        decoded = [
            (ts + OFFSET_NS, name(done + i), frame[:capacity], wire, d)
            for i, (ts, frame, wire, d) in enumerate(records[done : done + len(batch)])
        ]
        done += len(batch)
        room = None if limit is None else limit
        walked.append(walk_sink.write(batch, room))
        ref.append(ref_sink.write(decoded, room))
    assert done == len(records)
    return (walk_sink.out.getvalue(), walked, walk_sink.unshown), (
        ref_sink.out.getvalue(),
        ref,
        ref_sink.unshown,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ring")
    varied = d / "varied.pcap"
    traffic.varied_pcap(varied)
    opts = d / "options.pcap"
    traffic.write_pcap(opts, option_frames(count=1500), step_ns=7_777_777)
    return {"varied": varied, "options": opts}


@pytest.mark.parametrize("name", ["varied", "options"])
@pytest.mark.parametrize("capacity", [64, 256, 4096])
def test_text_lines_from_the_ring_are_the_record_by_record_ones(files, name, capacity) -> None:
    records = records_of(files[name], capacity, random.Random(1))
    walked, ref = both(TextFormatter, records, capacity)
    assert walked == ref and ref[0].count("\n") > 100


@pytest.mark.parametrize("mode", TS_MODES)
@pytest.mark.parametrize("nano", [False, True])
def test_every_timestamp_mode(files, mode, nano) -> None:
    records = records_of(files["varied"], 256, random.Random(2))
    walked, ref = both(lambda: TextFormatter(ts_mode=mode, nano=nano, absolute_seq=nano),
                       records, 256)  # fmt: skip
    assert walked == ref


@pytest.mark.parametrize("name", ["varied", "options"])
@pytest.mark.parametrize("absolute", [False, True])
def test_json_objects_from_the_ring_are_the_record_by_record_ones(files, name, absolute) -> None:
    records = records_of(files[name], 256, random.Random(4))
    walked, ref = both(lambda: JsonFormatter(absolute_seq=absolute), records, 256)
    assert walked == ref
    assert '"ifname":"veth-r1","direction":"out"' in walked[0]
    assert '"ifname":"veth-r1","direction":"in"' in walked[0]


@pytest.mark.parametrize("make", [TextFormatter, JsonFormatter])
@pytest.mark.parametrize("limit", [1, 10, 36, 1000])
def test_a_count_takes_the_same_records(files, make, limit) -> None:
    records = records_of(files["varied"], 256, random.Random(5))
    walked, ref = both(make, records, 256, limit=limit)
    assert walked == ref


def test_several_interfaces_are_walked_but_for_a_file_and_the_record_by_record_lines() -> None:
    """Lines of several interfaces are walked from the ring, whose records carry their
    interface: the program is asked for record heads, but not for a file (pcapng's interface
    ids are the sink's), nor for lines made record by record (-e)."""
    from xdptcp.live import record_heads
    from xdptcp.options import OutputOptions
    from xdptcp.record import OUT_NONE

    assert TextSink(TextFormatter(show_ifname=True), io.StringIO()).out_format == OUT_PCAP
    assert record_heads(OutputOptions(), several=True, directions=True) == (OUT_PCAP, False)
    assert record_heads(OutputOptions(json=True), True, True) == (OUT_PCAP, True)
    assert record_heads(OutputOptions(link_level=True), True, True)[0] == OUT_NONE
    assert record_heads(OutputOptions(write="x.pcapng"), True, True)[0] == OUT_NONE


def any_devices(make):
    """``make``, its formatter told the interfaces' addresses (as AnyDevice reads them from
    /sys): frames to 02:00:00:00:00:02 are to veth-r1's own address, to another host's on
    a-longer-name0; if12 has none (gone)."""

    def made():
        f = make()
        f.any_device._devices.update({
            "veth-r1": (7, 1, bytes.fromhex("020000000002")),
            "a-longer-name0": (9, 1, bytes.fromhex("02aabbccddee")),
            "if12": (0, 1, b""),
        })  # fmt: skip
        return f

    return made


@pytest.mark.parametrize("name", ["varied", "options"])
@pytest.mark.parametrize("limit", [None, 1, 36])
def test_text_lines_of_several_interfaces_are_the_record_by_record_ones(files, name, limit):
    """Each line starts with its record's interface and packet type, as tcpdump -i any's."""
    records = records_of(files[name], 256, random.Random(7))
    make = any_devices(lambda: TextFormatter(show_ifname=True))
    walked, ref = both(make, records, 256, limit=limit, several=True)
    assert walked == ref
    if limit is None:
        lines = walked[0].splitlines()
        kinds = ["veth-r1 In  IP", "veth-r1 Out IP", "a-longer-name0 P   IP",
                 "a-longer-name0 Out IP", "if12  In  IP", "if12  Out IP"]  # fmt: skip
        for kind in kinds:
            assert any(kind in ln for ln in lines), kind


@pytest.mark.parametrize("name", ["varied", "options"])
@pytest.mark.parametrize("limit", [None, 1, 36])
def test_json_objects_of_several_interfaces_are_the_record_by_record_ones(files, name, limit):
    """JSON names the interface in a field: records of several interfaces are walked, each
    object given its record's interface by index (an index not named: "ifN", as the decoded
    records name it)."""
    records = records_of(files[name], 256, random.Random(6))
    walked, ref = both(JsonFormatter, records, 256, limit=limit, several=True)
    assert walked == ref
    if limit is None:
        for ifname in ("veth-r1", "a-longer-name0", "if12"):
            for d in ("in", "out"):
                assert f'"ifname":"{ifname}","direction":"{d}"' in walked[0]
