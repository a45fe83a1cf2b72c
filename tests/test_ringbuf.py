"""The ring-buffer reader against a real ring filled by a real program.

The producer (bench/ringbuf_drain.py, the same one the benchmark measures) is an XDP program run
with BPF_PROG_TEST_RUN: each run takes a sequence number from an array map with an atomic
fetch-add and submits a record ``seq, ~seq`` (or discards it). So a reader that loses, repeats or
reorders a record, or reads a wrapped one wrongly, shows up as a broken sequence.
"""

from __future__ import annotations

import struct
import threading
import time

import pytest

from pybpf.ringbuf import BUSY, RingBuffer, slot_size

pytestmark = pytest.mark.system

MASK = (1 << 64) - 1


@pytest.fixture
def producer_factory():
    from bench.ringbuf_drain import make_producer

    made = []

    def make(ring_size: int, record_size: int, discard_every: int = 0):
        p = make_producer(ring_size, record_size, discard_every)
        made.append(p)
        return p, RingBuffer.from_map(p.ring_map)

    yield make
    for p in made:
        p.close()


def seqs_of(records: list[bytes], record_size: int) -> list[int]:
    out = []
    for r in records:
        assert len(r) == record_size
        seq, inv = struct.unpack_from("=QQ", r)
        assert inv == seq ^ MASK, "record body corrupted"
        out.append(seq)
    return out


def seqs_of_blob(blob: bytes, count: int, record_size: int) -> list[int]:
    slot = slot_size(record_size)
    assert len(blob) == count * slot
    rec = struct.Struct(f"=8xQQ{slot - 24}x")
    out = []
    for seq, inv in rec.iter_unpack(blob):
        assert inv == seq ^ MASK
        out.append(seq)
    return out


@pytest.mark.kmatrix
def test_every_record_read_once_in_order(producer_factory) -> None:
    prod, rb = producer_factory(1 << 20, 40)
    prod.run(5000)
    assert rb.available() == 5000 * slot_size(40)
    records = rb.drain()
    assert seqs_of(records, 40) == list(range(5000))
    assert rb.available() == 0
    assert rb.drain() == []
    rb.close()


def test_max_records_then_the_rest(producer_factory) -> None:
    prod, rb = producer_factory(1 << 16, 16)
    prod.run(100)
    first = rb.drain(max_records=30)
    rest = rb.drain()
    assert seqs_of(first + rest, 16) == list(range(100))
    rb.close()


@pytest.mark.kmatrix
def test_small_ring_wraps_and_records_straddle_the_end(producer_factory) -> None:
    # 4096-byte ring, 72-byte slots: 4096 is not a multiple of 72, so records cross the end of
    # the data area and read back whole only thanks to the double mapping.
    prod, rb = producer_factory(4096, 64)
    seen: list[int] = []
    for _ in range(50):
        prod.run(37)
        seen += seqs_of(rb.drain(), 64)
    assert seen == list(range(50 * 37))
    assert rb.consumer_pos > 10 * rb.size  # wrapped many times
    rb.close()


def test_drain_fixed_on_a_wrapping_ring(producer_factory) -> None:
    prod, rb = producer_factory(4096, 24)
    seen: list[int] = []
    for _ in range(40):
        prod.run(50)
        blob, count = rb.drain_fixed(24)
        assert count == 50
        seen += seqs_of_blob(blob, count, 24)
    assert seen == list(range(40 * 50))
    rb.close()


def peeked(rb: RingBuffer, record_size: int, max_records=None) -> list[int]:
    """``peek_fixed`` then ``consume``: the sequence numbers of the records seen."""
    view, count, pos = rb.peek_fixed(record_size, max_records)
    seqs = seqs_of_blob(bytes(view), count, record_size)
    view.release()
    rb.consume(pos)
    return seqs


def test_peek_fixed_on_a_wrapping_ring(producer_factory) -> None:
    prod, rb = producer_factory(4096, 24)
    seen: list[int] = []
    for _ in range(40):
        prod.run(50)
        while rb.available():  # one span per call: a wrap never splits it (mapped twice)
            seen += peeked(rb, 24, max_records=30)
    assert seen == list(range(40 * 50))
    rb.close()


def test_peeked_records_keep_their_space_until_consumed(producer_factory) -> None:
    """What ``peek_fixed`` hands out is the ring's memory: the producer must not reuse it
    before ``consume`` (xdptcp -w writes it to the file from there)."""
    from pybpf.ringbuf import buffer_address

    prod, rb = producer_factory(4096, 56)
    fits = (4096 - 1) // slot_size(56)
    prod.run(fits)
    view, count, pos = rb.peek_fixed(56)
    assert count == fits and buffer_address(view) != 0
    before = bytes(view)
    prod.run(5)  # no room: these reservations fail, the peeked records stay as they were
    assert bytes(view) == before
    assert seqs_of_blob(before, count, 56) == list(range(fits))
    view.release()
    rb.consume(pos)
    prod.run(2)
    assert peeked(rb, 56) == [fits + 5, fits + 6]
    with pytest.raises(ValueError, match="outside the records read"):
        rb.consume(rb.consumer_pos + 8)
    rb.close()


def slow_producer_insns(ring_fd: int, marker: int) -> list:
    """Reserve a record, write ``marker, ~marker``, spin in a may_goto loop (the kernel cuts it
    off after its fixed budget, a fraction of a second), then submit. While it spins, the record
    sits in the ring with its BUSY bit set."""
    from pybpf.asm import insn as isa
    from pybpf.asm.insn import ALUOp, Class, Instruction, JmpOp, Size

    jcond = Class.JMP | 0xE0  # BPF_JCOND with src_reg BPF_MAY_GOTO (0)
    return [
        *isa.ld_map_fd(1, ring_fd),
        isa.mov64_imm(2, 16),
        isa.mov64_imm(3, 0),
        isa.call_helper(131),  # bpf_ringbuf_reserve
        isa.jmp_imm(JmpOp.JEQ, 0, 0, 10),
        isa.mov64_reg(7, 0),
        isa.mov64_imm(1, marker),
        isa.stx_mem(Size.DW, 7, 1, 0),
        isa.alu64_imm(ALUOp.XOR, 1, -1),
        isa.stx_mem(Size.DW, 7, 1, 8),
        Instruction(jcond, 0, 0, 1, 0),  # may_goto pc+1: leave the loop when the budget is spent
        Instruction(Class.JMP, 0, 0, -2, 0),  # goto pc-2
        isa.mov64_reg(1, 7),
        isa.mov64_imm(2, 0),
        isa.call_helper(132),  # bpf_ringbuf_submit
        isa.mov64_imm(0, 2),
        isa.exit_insn(),
    ]


def _busy_round(producer_factory, method: str) -> tuple[list[int], list[int], bool]:
    """One try: records 0 and 1, then the slow program's record (BUSY while it spins), then
    record 2 submitted behind it. Returns (read during the spin, read after, still spinning?)."""
    from bench.ringbuf_drain import FRAME
    from pybpf.program import Program
    from pybpf.sys.uapi import ProgType

    prod, rb = producer_factory(1 << 16, 16)

    def read() -> list[int]:
        if method == "drain":
            return seqs_of(rb.drain(), 16)
        if method == "peek_fixed":
            return peeked(rb, 16)
        return seqs_of_blob(*rb.drain_fixed(16), 16)

    with Program.load(ProgType.XDP, slow_producer_insns(prod.ring_map.fd, 0xABCD)) as slow:
        prod.run(2)
        worker = threading.Thread(target=slow.test_run, args=(FRAME,))
        worker.start()
        try:
            deadline = time.monotonic() + 5
            while rb.available() <= 2 * slot_size(16) and time.monotonic() < deadline:
                pass  # until the slow program has reserved its record
            prod.run(1)  # submitted after the busy record, so it must wait behind it
            slow_pos = rb.consumer_pos + 2 * slot_size(16)
            # BUSY only ever turns into submitted: busy before and after means busy throughout.
            busy_before = bool(rb.header_at(slow_pos) & BUSY)
            during = read()
            busy_after = bool(rb.header_at(slow_pos) & BUSY)
        finally:
            worker.join()
        return during, read(), busy_before and busy_after


@pytest.mark.parametrize("method", ["drain", "drain_fixed", "peek_fixed"])
def test_reader_stops_at_a_busy_record_and_resumes(producer_factory, method) -> None:
    # The slow program spins for ~250 ms; on a loaded machine our thread may still miss that
    # window, so a few tries are allowed. Every try must read the records once and in order.
    caught = False
    for _ in range(5):
        during, after, spinning = _busy_round(producer_factory, method)
        assert during + after == [0, 1, 0xABCD, 2]
        if spinning:
            assert during == [0, 1]  # stopped at the BUSY record, not skipping to record 2
            caught = True
            break
    assert caught, "never read the ring while the slow program held its record"


def test_discarded_records_are_skipped(producer_factory) -> None:
    prod, rb = producer_factory(1 << 16, 16, discard_every=3)
    prod.run(300)
    expected = [s for s in range(300) if s % 3 != 2]
    assert seqs_of(rb.drain(), 16) == expected
    prod.run(300)
    blob, count = rb.drain_fixed(16)
    assert seqs_of_blob(blob, count, 16) == [s for s in range(300, 600) if s % 3 != 2]
    prod.run(300)  # peek_fixed: a span ends before a discarded record, the next starts past it
    seen: list[int] = []
    while rb.available():
        seen += peeked(rb, 16)
    assert seen == [s for s in range(600, 900) if s % 3 != 2]
    rb.close()


@pytest.mark.kmatrix
def test_full_ring_keeps_the_oldest_records(producer_factory) -> None:
    prod, rb = producer_factory(4096, 56)
    # The kernel lets the producer run at most size - 1 bytes ahead of the consumer.
    fits = (4096 - 1) // slot_size(56)
    prod.run(fits + 25)  # the last 25 reservations fail: the ring is full
    assert seqs_of(rb.drain(), 56) == list(range(fits))
    prod.run(3)
    assert seqs_of(rb.drain(), 56) == [fits + 25, fits + 26, fits + 27]
    rb.close()


def test_drain_fixed_refuses_a_record_of_another_size(producer_factory) -> None:
    prod, rb = producer_factory(4096, 32)
    prod.run(2)
    # 24-byte records would also take 32-byte slots; the length in the header tells them apart.
    with pytest.raises(ValueError, match="is 32 bytes, not the fixed size 24"):
        rb.drain_fixed(24)
    assert rb.available() == 2 * slot_size(32)  # nothing consumed
    blob, count = rb.drain_fixed(32)
    assert seqs_of_blob(blob, count, 32) == [0, 1]
    rb.close()


@pytest.mark.kmatrix
def test_poll_sleeps_without_data_and_wakes_when_data_arrives(producer_factory) -> None:
    prod, rb = producer_factory(1 << 16, 16)
    t0 = time.monotonic()
    assert rb.poll(100) is False
    assert time.monotonic() - t0 >= 0.09
    timer = threading.Timer(0.2, prod.run, args=(3,))
    timer.start()
    try:
        t0 = time.monotonic()
        assert rb.poll(10_000) is True
        woke = time.monotonic() - t0
    finally:
        timer.join()
    assert 0.15 <= woke < 5
    assert seqs_of(rb.drain(), 16) == [0, 1, 2]
    rb.close()


def test_close_is_idempotent_and_context_manager(producer_factory) -> None:
    prod, rb = producer_factory(4096, 16)
    with rb:
        prod.run(1)
        assert len(rb.drain()) == 1
    rb.close()
    with pytest.raises(ValueError, match="power of two"):
        RingBuffer(prod.ring_map.fd, 3000)


def test_open_by_map_object_or_by_fd(producer_factory) -> None:
    prod, rb = producer_factory(8192, 16)
    rb.close()
    with RingBuffer(prod.ring_map) as by_map, RingBuffer(prod.ring_map.fd) as by_fd:
        assert by_map.size == by_fd.size == 8192  # by fd: the size comes from the map's info
        prod.run(4)
        assert by_fd.available() == by_map.available() == 4 * slot_size(16)
        assert seqs_of(by_map.drain(), 16) == [0, 1, 2, 3]
        assert by_fd.available() == 0  # one ring, one consumer position


@pytest.mark.parametrize("method", ["drain", "drain_fixed"])
def test_concurrent_producer_records_arrive_once_in_order(producer_factory, method) -> None:
    """The program runs on one CPU (the test-run syscall releases the GIL) while we drain on the
    other: the ring moves under the reader. (A BUSY record is in flight for only a few dozen
    nanoseconds here, so this rarely meets one; it checks positions, wrap and publication.)"""
    prod, rb = producer_factory(1 << 22, 16)
    rounds, per_round = 40, 2500
    worker = threading.Thread(target=lambda: [prod.run(per_round) for _ in range(rounds)])
    seen: list[int] = []
    worker.start()
    try:
        while worker.is_alive() or rb.available():
            if method == "drain":
                seen += seqs_of(rb.drain(), 16)
            else:
                seen += seqs_of_blob(*rb.drain_fixed(16), 16)
    finally:
        worker.join()
    assert seen == list(range(rounds * per_round))
