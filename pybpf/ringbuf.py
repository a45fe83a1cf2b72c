"""Reading a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) from user space through mmap.

The kernel lays the ring out for user space like this (kernel/bpf/ringbuf.c)::

    offset 0          one page, read-write: the consumer position (u64), ours to advance
    offset page       one page, read-only: the producer position (u64), advanced by programs
    offset 2 * page   the data area, max_entries bytes, mapped twice in a row

Positions only grow; ``pos & (max_entries - 1)`` is the offset in the data area. Because the data
area is mapped twice back to back, a record that wraps past the end still reads as one contiguous
slice: no special case for wrap-around.

Each record is an 8-byte header followed by the data, padded to a multiple of 8::

    u32 len     bit 31 BUSY (reserved, not yet submitted), bit 30 DISCARD (skip it)
    u32 pgoff   where the kernel finds the ring from the record; of no use to us

A reader stops at the first BUSY record (records are consumed in order), steps over DISCARD ones,
copies each record before moving the consumer position past it (the space may be reused at once),
and re-reads the producer position before it goes to sleep in epoll.
"""

from __future__ import annotations

import mmap
import select
import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Optional, Union

BUSY = 1 << 31
DISCARD = 1 << 30
HDR_SIZE = 8
_LEN_MASK = ~(BUSY | DISCARD) & 0xFFFFFFFF
_U32 = struct.Struct("=I")


def slot_size(record_size: int) -> int:
    """Bytes one record of ``record_size`` occupies in the ring: header + data, rounded to 8."""
    return (HDR_SIZE + record_size + 7) & ~7


class RingBuffer:
    """The consumer side of one ring buffer map. Does not own the map fd (keep the map open).

    ``drain()`` returns each record as ``bytes``; ``drain_fixed(size)`` is the fast path for
    rings whose records all have one size: it returns the raw span (headers included, one slot
    of :func:`slot_size` bytes per record) copied in one slice, for ``struct.iter_unpack``.
    """

    def __init__(self, ring_map: Union[int, Any], max_entries: Optional[int] = None):
        """``ring_map`` is a :class:`pybpf.maps.Map` of type RINGBUF or a map fd; the size is
        read from the map (or its info) unless given."""
        if isinstance(ring_map, int):
            map_fd = ring_map
        else:
            map_fd = ring_map.fd
            max_entries = max_entries or ring_map.max_entries
        if max_entries is None:
            from pybpf.sys.objinfo import map_info

            max_entries = map_info(map_fd).max_entries
        if max_entries <= 0 or max_entries & (max_entries - 1):
            raise ValueError(f"ring buffer size {max_entries} is not a power of two")
        page = mmap.PAGESIZE
        self.fd = map_fd
        self.size = max_entries
        self._mask = max_entries - 1
        self._cons_map = mmap.mmap(
            map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        self._prod_map = mmap.mmap(
            map_fd, page + 2 * max_entries, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
        )
        # 8-byte aligned views: each read or write of [0] is one machine load or store.
        self._cons = memoryview(self._cons_map)[:8].cast("Q")
        self._prod = memoryview(self._prod_map)[:8].cast("Q")
        self._data = memoryview(self._prod_map)[page:]
        self._words = self._data.cast("I")  # u32 view for headers (host byte order)
        self._epoll = select.epoll()
        # Edge-triggered: a wait reports wakeups that came since the last one, and sleeps even
        # with records pending (``poll``'s ``min_bytes``); nothing is missed, as ``poll`` looks
        # at the positions itself before it sleeps.
        self._epoll.register(map_fd, select.EPOLLIN | select.EPOLLET)
        self._closed = False

    @classmethod
    def from_map(cls, bpf_map: Any) -> RingBuffer:
        """From a :class:`pybpf.maps.Map` of type RINGBUF (same as ``RingBuffer(bpf_map)``)."""
        return cls(bpf_map)

    # --- positions ----------------------------------------------------------------------------

    @property
    def consumer_pos(self) -> int:
        return self._cons[0]

    @property
    def producer_pos(self) -> int:
        return self._prod[0]

    def available(self) -> int:
        """Bytes written by producers and not consumed yet (headers and BUSY records included)."""
        return self._prod[0] - self._cons[0]

    def header_at(self, pos: Optional[int] = None) -> int:
        """The raw ``len`` word (BUSY and DISCARD bits included) of the record at ``pos``
        (default: the next one to read). Only meaningful for a position not yet consumed."""
        pos = self._cons[0] if pos is None else pos
        return self._words[(pos & self._mask) >> 2]

    def _publish(self, pos: int) -> None:
        # One aligned 8-byte store, which x86-64 makes visible atomically and in program order
        # after our loads of the record (TSO), so the producer never reuses space we still read.
        # Weakly ordered CPUs (arm64, ppc64, riscv) need a store-release here (libbpf uses
        # smp_store_release); CPython cannot emit one, so a port there would need a tiny C helper.
        self._cons[0] = pos

    # --- reading --------------------------------------------------------------------------------

    def drain(self, max_records: Optional[int] = None) -> list[bytes]:
        """The submitted records available now (up to ``max_records``), each copied once.

        One pass up to the producer position read on entry: a producer faster than us cannot
        keep a call from returning. ``poll()`` looks at the producer position again before it
        sleeps, so nothing that arrives meanwhile is left waiting for a wakeup.
        """
        out: list[bytes] = []
        append = out.append  # the loop below runs a million times a second: keep it local
        data, words, mask = self._data, self._words, self._mask
        room = -1 if max_records is None else max_records
        cons = start = self._cons[0]
        prod = self._prod[0]
        while cons < prod and room:
            off = cons & mask
            hdr = words[off >> 2]
            if hdr & BUSY:  # reserved but not submitted yet: later records must wait
                break
            length = hdr & _LEN_MASK
            if not hdr & DISCARD:
                off += HDR_SIZE
                append(data[off : off + length].tobytes())
                room -= 1
            cons += (length + HDR_SIZE + 7) & ~7
        if cons != start:
            self._publish(cons)
        return out

    def drain_fixed(self, record_size: int, max_records: Optional[int] = None) -> tuple[bytes, int]:
        """Fast path for fixed-size records: ``(blob, count)``.

        ``blob`` holds ``count`` slots of ``slot_size(record_size)`` bytes: the 8-byte header,
        the record, padding. Unpack with a ``struct.Struct("8x" + record_format + padding)``.
        A span of records whose headers all say "submitted, length record_size" (checked with one
        strided comparison, not a Python loop) is copied with one slice; a DISCARD record is
        dropped from the blob, a BUSY one ends the drain, a record of another size is an error.
        """
        slot = slot_size(record_size)
        parts: list[bytes] = []
        count = 0
        cons = self._cons[0]
        prod = self._prod[0]
        if max_records is not None:
            prod = min(prod, cons + max_records * slot)
        while cons < prod:
            off, good, hdr = self._span(cons, prod, record_size)
            if good:
                parts.append(self._data[off : off + good * slot].tobytes())
                count += good
                cons += good * slot
            if hdr == record_size or hdr & BUSY:  # all of them read, or one being written
                break
            if not hdr & DISCARD:
                if parts:  # hand over what we have; the next call reports the odd record
                    break
                raise _odd_record(cons, hdr, record_size)
            cons += (HDR_SIZE + (hdr & _LEN_MASK) + 7) & ~7
        self._publish(cons)
        blob = parts[0] if len(parts) == 1 else b"".join(parts)
        return blob, count

    def peek_fixed(
        self, record_size: int, max_records: Optional[int] = None
    ) -> tuple[memoryview, int, int]:
        """``drain_fixed`` without the copy: ``(view, count, pos)``.

        ``view`` is the ring's own memory holding ``count`` submitted slots of
        ``slot_size(record_size)`` bytes (headers included), the first span of them (a DISCARD
        record at the head is stepped over; one further on, or a BUSY one, ends the span);
        ``pos`` is the consumer position past them. The records are not consumed: their space
        stays the reader's, and the view valid, until ``consume(pos)`` — use them, then consume
        promptly, as producers cannot reuse that space meanwhile. ``buffer_address(view)``
        hands the records to a system call such as writev(2) without copying them here."""
        slot = slot_size(record_size)
        cons = self._cons[0]
        prod = self._prod[0]
        while cons < prod:
            end = prod if max_records is None else min(prod, cons + max_records * slot)
            off, good, hdr = self._span(cons, end, record_size)
            if good:
                return self._data[off : off + good * slot], good, cons + good * slot
            if hdr & BUSY:
                break
            if not hdr & DISCARD:
                raise _odd_record(cons, hdr, record_size)
            cons += (HDR_SIZE + (hdr & _LEN_MASK) + 7) & ~7
            self._publish(cons)  # nothing before it is held: step over the discarded record
        return self._data[0:0], 0, cons

    def _span(self, cons: int, end: int, record_size: int) -> tuple[int, int, int]:
        """``(offset, good, hdr)`` for the slots of ``record_size`` records from position
        ``cons`` up to ``end`` (at least one): ``good`` submitted records in a row from data
        offset ``offset``, and ``hdr``, the header word of the slot after them —
        ``record_size`` itself when all were good. The headers are read in one strided
        snapshot (producers keep writing them while we look) and compared whole."""
        slot = slot_size(record_size)
        stride = slot >> 2
        off = cons & self._mask
        n = max(1, (end - cons) // slot)
        with self._words[off >> 2 : (off >> 2) + n * stride : stride] as headers:
            snap = headers.tobytes()
        if snap == _U32.pack(record_size) * n:
            return off, n, record_size
        good = _first_mismatch(snap, record_size)
        return off, good, _U32.unpack_from(snap, 4 * good)[0]

    def consume(self, pos: int) -> None:
        """Hand the space up to consumer position ``pos`` back to the producers (after
        ``peek_fixed``)."""
        if not self._cons[0] <= pos <= self._prod[0]:
            raise ValueError(f"consumer position {pos} is outside the records read")
        self._publish(pos)

    # --- waiting ----------------------------------------------------------------------------------

    def poll(self, timeout_ms: int = -1, min_bytes: int = 1) -> bool:
        """Wait until data is available; True if there is some. Returns at once when at least
        ``min_bytes`` are pending (by default: any record; the kernel only wakes a consumer
        that has caught up). With fewer pending, sleeps until the producer's next wakeup or
        the timeout: for producers that wake the reader themselves at marks of their choice
        (``BPF_RB_FORCE_WAKEUP``), so that a reader which keeps up takes the records in
        batches instead of a few at a time (each batch costs a system call or two)."""
        if self.available() >= min_bytes:
            return True
        try:
            events = self._epoll.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            events = []
        return bool(events) or self.available() > 0

    def fileno(self) -> int:
        """The epoll fd, for a caller's own select/poll loop."""
        return self._epoll.fileno()

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._epoll.close()
        for view in (self._cons, self._prod, self._words, self._data):
            view.release()
        for m in (self._cons_map, self._prod_map):
            try:
                m.close()
            except BufferError:  # a caller still holds a view: unmapped when that goes away
                pass

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

    def __repr__(self) -> str:
        return f"RingBuffer(fd={self.fd}, size={self.size}, available={self.available()})"


def _odd_record(pos: int, hdr: int, record_size: int) -> ValueError:
    return ValueError(
        f"ring record at position {pos} is {hdr & _LEN_MASK} bytes, "
        f"not the fixed size {record_size}"
    )


def _first_mismatch(headers: bytes, record_size: int) -> int:
    """Index of the first u32 in ``headers`` that is not a submitted record of ``record_size``
    (the caller knows there is one). A binary search on prefixes compared whole: a reader that
    keeps up with the producer ends nearly every span at a BUSY record, and a scan one header
    at a time would cost more than the rest of the drain."""
    good = _U32.pack(record_size) * (len(headers) // 4)
    lo, hi = 0, len(headers) // 4  # the first lo headers are good, the first hi are not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if headers.startswith(good[: 4 * mid]):
            lo = mid
        else:
            hi = mid
    return lo


def buffer_address(obj: Any) -> int:
    """The address of the first byte of a buffer object (a read-only mapping included, which
    ``ctypes``' ``from_buffer`` refuses), through the buffer protocol's own C call. Valid while
    ``obj``'s memory stays mapped."""
    import ctypes

    if not _GET_BUFFER:
        _GET_BUFFER.append(_buffer_api())
    get, release, view_type = _GET_BUFFER[0]
    view = view_type()
    get(obj, ctypes.byref(view), 0)  # PyBUF_SIMPLE; raises (TypeError) for a non-buffer
    try:
        return view.buf or 0
    finally:
        release(ctypes.byref(view))


_GET_BUFFER: list = []


def _buffer_api() -> tuple:
    import ctypes

    class PyBuffer(ctypes.Structure):  # Py_buffer, include/pybuffer.h (stable since 3.3)
        _fields_ = [
            ("buf", ctypes.c_void_p),
            ("obj", ctypes.c_void_p),
            ("len", ctypes.c_ssize_t),
            ("itemsize", ctypes.c_ssize_t),
            ("readonly", ctypes.c_int),
            ("ndim", ctypes.c_int),
            ("format", ctypes.c_char_p),
            ("shape", ctypes.c_void_p),
            ("strides", ctypes.c_void_p),
            ("suboffsets", ctypes.c_void_p),
            ("internal", ctypes.c_void_p),
        ]

    get, release = ctypes.pythonapi.PyObject_GetBuffer, ctypes.pythonapi.PyBuffer_Release
    get.argtypes = [ctypes.py_object, ctypes.POINTER(PyBuffer), ctypes.c_int]
    release.argtypes = [ctypes.POINTER(PyBuffer)]
    release.restype = None
    return get, release, PyBuffer
