"""The perf buffer reader against real perf rings filled by a real program.

The producer is bpf/tests/perfbuf_flood.bpf.c, an XDP program run with BPF_PROG_TEST_RUN: each
run sends one sample through ``bpf_perf_event_output`` — a sequence number and bytes derived
from it — in one of four sizes, so samples of every padding case wrap around a small ring. The
kernel runs a test run on the calling CPU: the test pins itself to one CPU so that lost counts
are those of one ring.
"""

from __future__ import annotations

import os
import struct

import pytest

import pybpf
from pybpf.events import perf_sample_size
from pybpf.perfbuf import PerfBuffer
from tests.conftest import bpf_object, on_one_cpu

# also in the kernel matrix: perf rings read the same on 6.1 and 6.12 (both pass there)
pytestmark = [pytest.mark.system, pytest.mark.kmatrix]

FRAME = bytes(64)
SIZES = [20, 32, 44, 56]  # base_size 20 + n * size_step 12, n = seq % 4


@pytest.fixture
def flood():
    spec = pybpf.ObjectSpec.from_file(str(bpf_object("tests/perfbuf_flood")))
    with on_one_cpu(), pybpf.load(spec) as obj:
        yield obj


def send(obj, n: int) -> None:
    obj.programs["flood"].test_run(FRAME, repeat=n)


def global_u64(obj, name: str) -> int:
    var = obj.spec.variables[name]
    bss = next(m for n, m in obj.maps.items() if n.endswith(".bss"))
    return struct.unpack_from("=Q", bss.lookup(0), var.offset)[0]


def check_samples(records: list[bytes]) -> list[int]:
    """Each sample's size (as padded by the kernel) and bytes match its sequence number."""
    seqs = []
    for r in records:
        (seq,) = struct.unpack_from("=Q", r)
        assert len(r) == perf_sample_size(SIZES[seq % 4]), (seq, len(r))
        body = r[8 : SIZES[seq % 4]]
        assert body == bytes((seq + i) & 0xFF for i in range(8, 8 + len(body))), seq
        seqs.append(seq)
    return seqs


def test_samples_arrive_once_in_order_padded_as_the_kernel_pads(flood) -> None:
    with PerfBuffer(flood.maps["samples"], page_count=8) as pb:
        send(flood, 40)
        records = pb.drain()
    assert check_samples(records) == list(range(40))
    assert [len(r) for r in records[:4]] == [20, 36, 44, 60]  # 4-byte size word + data, /8
    assert pb.lost == 0


def test_records_wrap_around_a_one_page_ring(flood) -> None:
    seqs: list[int] = []
    with PerfBuffer(flood.maps["samples"], page_count=1) as pb:
        assert pb.ring_size == os.sysconf("SC_PAGE_SIZE")
        for _ in range(40):  # ~2.7 KiB per round in a 4 KiB ring: wraps every other round
            send(flood, 50)
            seqs += check_samples(pb.drain())
        assert pb.lost == 0
    assert seqs == list(range(2000))


def test_max_records_then_the_rest(flood) -> None:
    with PerfBuffer(flood.maps["samples"], page_count=4) as pb:
        send(flood, 30)
        first = pb.drain(max_records=7)
        rest = pb.drain()
    assert check_samples(first + rest) == list(range(30))
    assert len(first) == 7


def test_lost_samples_are_counted_under_a_flood(flood) -> None:
    """A one-page ring takes ~90 samples: the kernel counts the rest as lost, writes a
    PERF_RECORD_LOST once there is room again, and the program saw each one fail."""
    with PerfBuffer(flood.maps["samples"], page_count=1) as pb:
        send(flood, 3000)
        got = check_samples(pb.drain())
        send(flood, 1)  # room again: the kernel writes the lost-record before this sample
        got += check_samples(pb.drain())
        failed = global_u64(flood, "failed")
        assert 0 < len(got) < 3001
        assert pb.lost == failed == 3001 - len(got)
        assert pb.take_lost() == failed and pb.take_lost() == 0
        assert pb.lost_by_cpu()[min(os.sched_getaffinity(0))] == failed


def test_poll_sleeps_without_data_and_wakes_with_it(flood) -> None:
    with PerfBuffer(flood.maps["samples"], page_count=1) as pb:
        assert pb.poll(50) is False
        send(flood, 1)
        assert pb.poll(1000) is True
        assert len(pb.drain()) == 1


def test_closing_takes_the_rings_out_of_the_map(flood) -> None:
    pb = PerfBuffer(flood.maps["samples"], page_count=1)
    send(flood, 1)
    assert len(pb.drain()) == 1
    pb.close()
    pb.close()  # idempotent
    before = global_u64(flood, "failed")
    send(flood, 5)  # no ring in the map: bpf_perf_event_output fails (ENOENT)
    assert global_u64(flood, "failed") == before + 5


def test_bad_page_count_is_refused(flood) -> None:
    with pytest.raises(ValueError, match="power of two"):
        PerfBuffer(flood.maps["samples"], page_count=3)
