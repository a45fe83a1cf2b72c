"""The capture program wakes its reader in batches: once each time another eighth of the ring is
waiting (``xdptcp.capture.batched_wakeups``), not for every record, and not never.

A reader asleep in epoll on the ring is woken only by the producer's wakeups (data that arrives
while it sleeps does not wake it by itself), so these tests put a thread to sleep on the ring and
run the XDP program under BPF_PROG_TEST_RUN: records short of a mark must leave it asleep, the
records that carry the unread bytes past the mark must wake it.
"""

from __future__ import annotations

import select
import threading
import time

import pytest

from pybpf import ObjectSpec, load
from pybpf.ringbuf import slot_size
from tests.conftest import bpf_object, on_one_cpu, scaled
from tests.traffic import tcp_frame
from xdptcp.capture import batched_wakeups, wakeup_step
from xdptcp.record import record_size

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]

RING = 1 << 20  # the reader is woken at every 128 KiB waiting
CAPACITY = 256
SLOT = slot_size(record_size(CAPACITY))  # a record's bytes in the ring, its header included
PER_MARK = wakeup_step(RING) // SLOT + 1  # records that reach the first mark from empty


class Sleeper(threading.Thread):
    """Sleeps in epoll on the ring's fd and notes when it was woken."""

    def __init__(self, fd: int, timeout: float) -> None:
        super().__init__(daemon=True)
        self.ep = select.epoll()
        self.ep.register(fd, select.EPOLLIN)
        self.timeout = timeout
        self.woken_at = None

    def run(self) -> None:
        if self.ep.poll(self.timeout):
            self.woken_at = time.monotonic()


@pytest.fixture(autouse=True)
def one_cpu():
    """Every test run on one CPU: each CPU keeps its own last look at the ring, and a CPU that
    has not looked since another crossed a mark wakes the reader at its next look (a wakeup
    more, by design); these tests count the wakeups of one CPU that submits steadily."""
    with on_one_cpu():
        yield


def load_capture():
    spec = ObjectSpec.from_file(str(bpf_object("xdptcp")))
    spec.set_max_entries("xdptcp_ring", RING)
    spec.rodata.update_from(
        {"xdptcp_capacity": CAPACITY, "xdptcp_xdp_frags": 1, **batched_wakeups(RING)}
    )
    return load(spec)


def frame() -> bytes:
    """A pure ACK, as most of a busy link's frames are: each one a record."""
    return tcp_frame("198.18.0.1", "198.18.0.2", 40000, 443, flags="A", seq=1, ack=1)


def test_the_reader_sleeps_through_records_short_of_a_mark_and_wakes_at_it() -> None:
    with load_capture() as obj:
        prog, ring = obj.programs["xdp_capture_all"], obj.maps["xdptcp_ring"]
        sleeper = Sleeper(ring.fd, timeout=scaled(20.0))
        sleeper.start()
        time.sleep(scaled(0.3))  # asleep in epoll before any record is made
        short = PER_MARK // 2
        prog.test_run(frame(), repeat=short)
        time.sleep(scaled(0.5))
        assert sleeper.woken_at is None and sleeper.is_alive(), (
            f"{short} records ({short * SLOT} bytes, under the {wakeup_step(RING)}-byte mark) "
            "woke the reader"
        )
        sent = time.monotonic()
        prog.test_run(frame(), repeat=PER_MARK)  # the unread bytes pass the first mark
        sleeper.join(scaled(5.0))
        assert sleeper.woken_at is not None, "the reader slept through the mark"
        assert sleeper.woken_at - sent < scaled(2.0)


def test_a_reader_that_falls_behind_is_woken_at_each_mark_not_at_each_record() -> None:
    """Three marks' worth of records with the reader never reading: as many wakeups as marks
    crossed (each wakeup seen by a fresh sleeper), none in between."""
    with load_capture() as obj:
        prog, ring = obj.programs["xdp_capture_all"], obj.maps["xdptcp_ring"]
        woken = 0
        for _ in range(3):
            sleeper = Sleeper(ring.fd, timeout=scaled(5.0))
            # The ring is never read, and waiting data makes a level-triggered epoll report
            # at once: edge-triggered, with the readiness already there taken first, the
            # sleeper wakes only at the program's next wakeup.
            sleeper.ep.modify(ring.fd, select.EPOLLIN | select.EPOLLET)
            sleeper.ep.poll(0)
            sleeper.start()
            time.sleep(scaled(0.3))
            prog.test_run(frame(), repeat=PER_MARK // 4)
            time.sleep(scaled(0.3))
            assert sleeper.woken_at is None, "woken a quarter of a step after the last wakeup"
            prog.test_run(frame(), repeat=PER_MARK)
            sleeper.join(scaled(5.0))
            woken += sleeper.woken_at is not None
        assert woken == 3
