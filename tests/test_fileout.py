"""The file record heads the capture program writes itself (``xdptcp_out``), byte for byte.

``xdptcp -w`` on one interface has the program write each record as the file wants it (a pcap
record header, or a pcapng enhanced packet block with padding, direction and closing length), and
writes the drained records without decoding them. Here both programs run on many frames under
BPF_PROG_TEST_RUN and the one drained span is written twice: as the program wrote it, and through
the decoding path (the pcap writers fed with the decoded records). The two files must be equal.
"""

from __future__ import annotations

import errno
import io
import struct

import pytest

from pybpf import ObjectSpec, load
from pybpf.errors import SyscallError
from pybpf.ringbuf import RingBuffer
from tests.conftest import bpf_object
from tests.test_filter import varied_frames
from xdptcp.capture import _slot_format, file_batches
from xdptcp.pcap import PcapngWriter, PcapReader, PcapWriter
from xdptcp.record import EGRESS, INGRESS, OUT_PCAP, OUT_PCAPNG, capacity_for, record_size

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]
OFFSET = 1_700_000_000_123_456_789  # any wall-clock offset: the files must agree on it
IFNAME = "eth7"


def frames() -> list[bytes]:
    """Varied TCP frames and cuts of one of every length, so every padding of 0..3 bytes shows."""
    out = [f for f in varied_frames(11, 200) if len(f) >= 14]
    big = varied_frames(3, 1)[0] + bytes(range(256)) * 2
    return out + [big[:n] for n in range(54, len(big), 7)]


def capture(out: int, snaplen, nano: bool) -> tuple[bytes, int, int, list]:
    """Load xdptcp with the program writing ``out`` heads, run every frame through the XDP
    program a capture without a filter loads and the tc program, and return (the drained span,
    its slot size, the number of records, the records decoded)."""
    kernel_snaplen, capacity, _ = capacity_for(snaplen)
    spec = ObjectSpec.from_file(str(bpf_object("xdptcp")))
    spec.rodata.update_from(
        {"xdptcp_snaplen": kernel_snaplen, "xdptcp_capacity": capacity, "xdptcp_out": out,
         "xdptcp_out_nano": int(nano), "xdptcp_clock_offset": OFFSET,
         "xdptcp_xdp_frags": 1}  # as xdptcp loads it (the section is xdp.frags)
    )  # fmt: skip
    size = record_size(capacity, out)
    with load(spec) as obj, RingBuffer.from_map(obj.maps["xdptcp_ring"]) as ring:
        for f in frames():
            obj.programs["xdp_capture_all"].test_run(f)
            try:
                obj.programs["tc_capture"].test_run(f)
            except SyscallError as e:  # the kernel's test run wants whole IP headers for skbs
                assert e.errno == errno.EINVAL
        blob, count = ring.drain_fixed(size)
        assert ring.available() == 0
    return blob, size, count, decoded(blob, capacity, size)


class Replay:
    """A drained span handed out again, as the ring would."""

    def __init__(self, blob: bytes) -> None:
        self.blob, self.consumer_pos, self.producer_pos = blob, 0, len(blob)

    def peek_fixed(self, size: int, max_records=None) -> tuple[memoryview, int, int]:
        blob = self.blob[self.consumer_pos :]
        return memoryview(blob), len(blob) // ((size + 15) & ~7), self.producer_pos

    def consume(self, pos: int) -> None:
        self.consumer_pos = pos


def written(to: str, tmp_path, writer, **kw) -> tuple:
    """(writer on a buffer or a file, a function giving what was written)."""
    if to == "buffer":
        out = io.BytesIO()
        return writer(out, **kw), out.getvalue
    path = tmp_path / "out.pcap"
    return writer(str(path), **kw), path.read_bytes


def decoded(blob: bytes, capacity: int, size: int) -> list[tuple[int, str, bytes, int, int]]:
    slot = struct.Struct(_slot_format(capacity, size))
    return [
        (ts + OFFSET, IFNAME, data[:cap_len], wire, d)
        for ts, _, wire, cap_len, d, _, _, data in slot.iter_unpack(blob)
    ]


@pytest.mark.parametrize("to", ["buffer", "file"])
@pytest.mark.parametrize("snaplen", [None, 61, 0])
@pytest.mark.parametrize("nano", [False, True])
def test_pcapng_blocks_written_by_the_program_equal_the_writers(snaplen, nano, to, tmp_path):
    blob, size, count, records = capture(OUT_PCAPNG, snaplen, nano)
    assert count == len(records) > 300
    assert {d for *_, d in records} == {INGRESS, EGRESS}
    if snaplen == 0:  # whole frames (headers only: Ethernet + IP + TCP leave 2 bytes, always)
        assert len({len(data) % 4 for _, _, data, _, _ in records}) == 4  # every padding
    w, ours = written(to, tmp_path, PcapngWriter, snaplen=262144, nano=nano)
    with w:  # a file: the kernel gathers the records from the ring (writev)
        for batch in file_batches(Replay(blob), size, OUT_PCAPNG):
            w.write_block_records(batch, None, IFNAME)
    theirs = io.BytesIO()
    with PcapngWriter(theirs, snaplen=262144, nano=nano) as w:
        w.write_batch(records)
    assert ours() == theirs.getvalue()
    assert [(ts, data, wire) for ts, data, wire in PcapReader(io.BytesIO(ours()))] == [
        (ts // 1000 * 1000 if not nano else ts, data, wire) for ts, _, data, wire, _ in records
    ]


@pytest.mark.parametrize("to", ["buffer", "file"])
@pytest.mark.parametrize("snaplen", [None, 200, 0])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_headers_written_by_the_program_equal_the_writers(snaplen, nano, to, tmp_path):
    blob, size, count, records = capture(OUT_PCAP, snaplen, nano)
    w, ours = written(to, tmp_path, PcapWriter, nano=nano)
    with w:
        for batch in file_batches(Replay(blob), size, OUT_PCAP):
            assert len(batch) == count
            w.write_file_records(batch, count - 5)  # a -c limit: the first records only
    theirs = io.BytesIO()
    with PcapWriter(theirs, nano=nano) as w:
        w.write_batch((ts, data, wire) for ts, _, data, wire, _ in records[: count - 5])
    assert ours() == theirs.getvalue()
