"""Reading a BPF perf buffer (BPF_MAP_TYPE_PERF_EVENT_ARRAY) from user space through mmap.

Before ring buffers (5.8), programs sent events with ``bpf_perf_event_output(ctx, &map, flags,
data, size)``: the map holds, at each CPU's index, the fd of a perf event of the software type
``PERF_COUNT_SW_BPF_OUTPUT`` opened by user space on that CPU, and the kernel appends the data as
a ``PERF_RECORD_SAMPLE`` to that event's ring. So a reader owns one perf event and one ring per
CPU, and waits on all of them with one epoll.

Each ring is mmap'd from its perf event fd: one metadata page (``struct perf_event_mmap_page``)
followed by 2^n data pages::

    metadata page   data_head (u64, at 1024): where the kernel will write next, only grows
                    data_tail (u64, at 1032): how far we have read, ours to advance
                    data_offset, data_size (u64, at 1040, 1048): where the data area is
    data pages      records, each starting with ``struct perf_event_header``:
                    u32 type, u16 misc, u16 size (the whole record, a multiple of 8)

Positions are byte counts; ``pos % data_size`` is the offset in the data area. The data area is
mapped once, so a record that runs past the end continues at its start: it is copied in two
pieces. The record types a BPF output event produces:

    PERF_RECORD_SAMPLE (9)  u32 size, then ``size`` bytes: the program's data, padded by the kernel
                            so that the 4-byte size plus the data is a multiple of 8
    PERF_RECORD_LOST (2)    u64 id, u64 lost: that many samples did not fit in the ring

The reader copies the records between data_tail and data_head, then stores the new data_tail;
the kernel may reuse the space as soon as it sees that store, so it comes after every read.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
from typing import Any, Optional, Union

from pybpf.errors import BPFError
from pybpf.sys import mapcmd
from pybpf.sys.perf import (
    PerfAttrFlag,
    PerfCountSW,
    PerfSampleType,
    PerfType,
    disable,
    enable,
    online_cpus,
    perf_event_open,
)

_DATA_HEAD = 1024 // 8  # u64 index of data_head in struct perf_event_mmap_page
_DATA_TAIL = 1032 // 8
_DATA_OFFSET = 1040 // 8
_DATA_SIZE = 1048 // 8
_HEADER = struct.Struct("=IHH")  # struct perf_event_header
_U32 = struct.Struct("=I")
_LOST = struct.Struct("=QQ")  # id, lost
# enum perf_event_type: the records a BPF output event writes
PERF_RECORD_LOST = 2  # u64 id, u64 lost: samples the kernel dropped because the ring was full
PERF_RECORD_SAMPLE = 9


class CPURing:
    """One CPU's perf event and its mmap'd ring. Owns the perf event fd."""

    def __init__(self, cpu: int, page_count: int, wakeup_events: int, watermark: int):
        flags = PerfAttrFlag.WATERMARK if watermark else 0
        self.cpu = cpu
        self.fd = perf_event_open(
            f"cannot open the perf event of CPU {cpu} for a perf buffer",
            cpu=cpu,
            type=PerfType.SOFTWARE,
            config=PerfCountSW.BPF_OUTPUT,
            sample_period=1,
            sample_type=PerfSampleType.RAW,
            flags=flags,
            wakeup_events=watermark or wakeup_events,
        )
        page = mmap.PAGESIZE
        try:
            self._map = mmap.mmap(
                self.fd, page * (1 + page_count), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
        except OSError as e:
            os.close(self.fd)
            raise BPFError(
                f"cannot map the perf ring of CPU {cpu} ({page_count} pages): {e.strerror}"
            ) from None
        self._meta = memoryview(self._map)[:page].cast("Q")
        offset = self._meta[_DATA_OFFSET] or page  # 0 on kernels before 4.1: right after meta
        self.size = self._meta[_DATA_SIZE] or page * page_count
        self._data = memoryview(self._map)[offset : offset + self.size]
        self.lost = 0

    def available(self) -> int:
        return self._meta[_DATA_HEAD] - self._meta[_DATA_TAIL]

    def drain(self, out: list[bytes], room: int) -> int:
        """Append up to ``room`` samples (-1: no limit) to ``out``; count lost ones. Returns
        how many were appended."""
        # data_head is read once, before the records: x86-64 does not reorder loads with loads,
        # so the records we read are at least as new as this head (libbpf: smp_load_acquire).
        head = self._meta[_DATA_HEAD]
        tail = start = self._meta[_DATA_TAIL]
        if head == tail:
            return 0
        span = self._copy(tail, head - tail)  # one copy of everything pending
        pos, end, taken = 0, len(span), 0
        while pos < end and taken != room:
            rtype, _misc, rsize = _HEADER.unpack_from(span, pos)
            if rsize < _HEADER.size or pos + rsize > end:
                break  # a record still being written (cannot happen below data_head) or damage
            if rtype == PERF_RECORD_SAMPLE:
                (n,) = _U32.unpack_from(span, pos + 8)
                out.append(span[pos + 12 : pos + 12 + n])
                taken += 1
            elif rtype == PERF_RECORD_LOST:
                self.lost += _LOST.unpack_from(span, pos + 8)[1]
            pos += rsize
        self._publish(start + pos)
        return taken

    def _copy(self, pos: int, length: int) -> bytes:
        off = pos % self.size
        if off + length <= self.size:
            return self._data[off : off + length].tobytes()
        # The span runs past the end of the data area: its rest is at the start.
        first = self._data[off:].tobytes()
        return first + self._data[: length - len(first)].tobytes()

    def _publish(self, tail: int) -> None:
        # One aligned 8-byte store after all our loads: x86-64 (TSO) keeps stores after earlier
        # loads, so the kernel cannot overwrite a record we still read. Weakly ordered CPUs need
        # a store-release here (libbpf: smp_store_release); see ringbuf.py.
        self._meta[_DATA_TAIL] = tail

    def close(self) -> None:
        if self.fd < 0:
            return
        for view in (self._meta, self._data):
            view.release()
        try:
            self._map.close()
        except BufferError:  # a caller still holds a view: unmapped when it goes away
            pass
        os.close(self.fd)
        self.fd = -1


class PerfBuffer:
    """The reader side of one perf event array map: a ring per online CPU, one epoll.

    Same batch interface as :class:`pybpf.ringbuf.RingBuffer`: ``drain()`` returns the samples
    available now, each as ``bytes`` (the kernel pads each to a multiple of 8 with its 4-byte
    size word: a 20-byte event arrives as 20 bytes, a 24-byte one as 28), in CPU order — each
    CPU's samples in the order they were written, not merged by time. Samples the kernel could
    not store (a full ring) arrive as lost-records: ``lost`` counts them, per CPU in
    ``lost_by_cpu()``; ``take_lost()`` hands over the count since its last call.

    ``page_count`` data pages per CPU (a power of two; libbpf-tools use 64 = 256 KiB);
    ``wakeup_events`` samples per wakeup (1: each sample wakes the reader, lowest latency), or
    ``watermark`` bytes per wakeup instead (fewer wakeups under load).
    """

    def __init__(
        self,
        perf_map: Union[int, Any],
        page_count: int = 64,
        wakeup_events: int = 1,
        watermark: int = 0,
        cpus: Optional[list[int]] = None,
    ):
        if page_count <= 0 or page_count & (page_count - 1):
            raise ValueError(f"perf buffer page count {page_count} is not a power of two")
        self.fd = perf_map if isinstance(perf_map, int) else perf_map.fd
        self.name = getattr(perf_map, "name", "")
        if isinstance(perf_map, int):
            from pybpf.sys.objinfo import map_info

            max_entries = map_info(self.fd).max_entries
        else:
            max_entries = perf_map.max_entries
        self._rings: list[CPURing] = []
        self._reported_lost = 0
        self._epoll = select.epoll()
        try:
            for cpu in cpus if cpus is not None else online_cpus():
                if cpu >= max_entries:  # a map sized for fewer CPUs: those CPUs cannot output
                    continue
                self._add_ring(cpu, page_count, wakeup_events, watermark)
        except BaseException:
            self.close()
            raise

    def _add_ring(self, cpu: int, page_count: int, wakeup_events: int, watermark: int) -> None:
        ring = CPURing(cpu, page_count, wakeup_events, watermark)
        self._rings.append(ring)
        enable(ring.fd)
        # The program finds the ring through the map: store the perf event fd at the CPU index.
        mapcmd.map_update_elem(self.fd, _U32.pack(cpu), _U32.pack(ring.fd), name=self.name)
        self._epoll.register(ring.fd, select.EPOLLIN)

    @classmethod
    def from_map(cls, bpf_map: Any, **kwargs: Any) -> PerfBuffer:
        return cls(bpf_map, **kwargs)

    @property
    def cpus(self) -> list[int]:
        return [r.cpu for r in self._rings]

    @property
    def ring_size(self) -> int:
        """Bytes of data area per CPU."""
        return self._rings[0].size if self._rings else 0

    # --- reading --------------------------------------------------------------------------------

    def available(self) -> int:
        """Bytes written by the kernel and not read yet, over all CPUs (lost-records included)."""
        return sum(r.available() for r in self._rings)

    def drain(self, max_records: Optional[int] = None) -> list[bytes]:
        """The samples available now (up to ``max_records``), each copied once."""
        out: list[bytes] = []
        room = -1 if max_records is None else max_records
        for ring in self._rings:
            if room == 0:
                break
            taken = ring.drain(out, room)
            if room > 0:
                room -= taken
        return out

    @property
    def lost(self) -> int:
        """Samples the kernel dropped so far (reported as read: drain first)."""
        return sum(r.lost for r in self._rings)

    def lost_by_cpu(self) -> dict[int, int]:
        return {r.cpu: r.lost for r in self._rings}

    def take_lost(self) -> int:
        """Samples lost since the previous call."""
        total = self.lost
        new, self._reported_lost = total - self._reported_lost, total
        return new

    # --- waiting ----------------------------------------------------------------------------------

    def poll(self, timeout_ms: int = -1) -> bool:
        """Wait until a ring has data; True if one has. Returns at once if data is pending."""
        if self.available():
            return True
        try:
            events = self._epoll.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            events = []
        return bool(events) or self.available() > 0

    def fileno(self) -> int:
        """The epoll fd, for a caller's own select/poll loop."""
        return self._epoll.fileno()

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Take the rings out of the map (programs then get ENOENT, as with no reader), disable
        and close them."""
        rings, self._rings = self._rings, []
        for ring in rings:
            try:
                mapcmd.map_delete_elem(self.fd, _U32.pack(ring.cpu), name=self.name)
            except BPFError:
                pass  # the map is gone already: its entries went with it
            try:
                disable(ring.fd)
            except BPFError:
                pass
            ring.close()
        if not self._epoll.closed:
            self._epoll.close()

    def __enter__(self) -> PerfBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        epoll = getattr(self, "_epoll", None)
        if epoll is not None and not epoll.closed:
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"PerfBuffer(map fd={self.fd}, cpus={self.cpus}, lost={self.lost})"
