"""The live capture: load the capture programs, attach them, drain the ring, detach on every exit.

This module is a user of pybpf's public API like any other: it opens the shipped object, sets the
``.rodata`` configuration, loads it, has the XDP program attached to each interface for what
arrives and the tc program for what leaves (``xdptcp.attach``, which also keeps the promise that
only what we attached is detached), and reads records from the one ring buffer in batches.
``close()`` detaches on every way out: a signal, ``-c`` reached, a broken pipe, an error in an
output writer.
"""

from __future__ import annotations

import errno
import os
import struct
import time

from pybpf import ObjectSpec, load
from pybpf.asm.insn import Instruction
from pybpf.errors import SyscallError
from pybpf.record import field_names, record
from pybpf.record import replace as replace_fields
from xdptcp.attach import (
    PROGRAM,
    PROGRAM_ALL,
    RING,
    TC_PROGRAM,
    Attachment,
    CaptureError,
    Interface,
    attach_egress,
    attach_xdp,
    detach,
    gone,
    is_loopback,
    link_query,
)
from xdptcp.netns import in_netns
from xdptcp.record import OUT_NONE, OUT_PCAP, OUT_START, RECORD_HEADER_SIZE, record_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Callable, Iterator, Optional, Sequence

COUNTERS = "xdptcp_counters"
OBJECT = "xdptcp.bpf.o"

MODES = ("auto", "native", "skb")
DIRECTIONS = ("in", "out", "inout")  # tcpdump's -Q
TC_MODES = ("auto", "tcx", "clsact")
WAKEUP_DEFAULT = 0  # XDPTCP_WAKEUP_DEFAULT: the kernel's rule, no forced wakeup
WAKEUP_AVAIL_STEP = 3  # XDPTCP_WAKEUP_AVAIL_STEP in bpf/xdptcp.h
WAKEUP_LOOK_EVERY = 32  # XDPTCP_WAKEUP_LOOK_EVERY: records of a CPU between its looks
# The ring of a live capture unless --ring-size says otherwise. 16 MiB holds some 47,000 records
# of the default size: 70 ms of a 700,000 packets/s flood, room to ride out the reader being
# descheduled on a busy machine. (The object's own 4 MiB lost W1 packets on 2 vCPUs shared
# with other work; the ring is mapped whole at start, so this is resident memory, not growth.)
LIVE_RING_SIZE = 16 << 20


def shipped_object(name: str = OBJECT) -> ObjectSpec:
    """A compiled program that ships inside the package (by default the capture program's
    object; ``xdptcp.walk`` reads its own the same way), read as bytes: the package
    may be a directory, or live inside a zip file (xdptcp.pyz) where it has no path. The
    package's loader reads it, as ``pkgutil.get_data`` would ask it to (pkgutil itself costs a
    millisecond of every start; importlib.resources would import zipfile, tempfile...)."""
    import xdptcp

    loader = getattr(xdptcp.__spec__, "loader", None)
    if not hasattr(loader, "get_data") or not xdptcp.__file__:
        raise CaptureError(f"the package has no data/{name}")
    path = os.path.join(os.path.dirname(xdptcp.__file__), "data", name)
    data = loader.get_data(path)
    return ObjectSpec.from_bytes(data, name.split(".")[0])  # named as from_file names it


@record
class Counters:
    packets: int = 0
    tcp: int = 0
    matched: int = 0
    emitted: int = 0
    ring_full: int = 0

    @classmethod
    def from_values(cls, values: dict[str, int]) -> Counters:
        return cls(**{k: values.get(k, 0) for k in field_names(cls)})


class Capture:
    """One capture session over one or more interfaces."""

    def __init__(
        self,
        interfaces: Sequence[Interface],
        *,
        mode: str = "auto",
        rodata: Optional[dict[str, object]] = None,
        ring_size: Optional[int] = None,
        replace: bool = False,
        use_link: bool = False,
        notice: Callable[[str], None] = lambda msg: None,
        object_path: Optional[str] = None,
        direction: Optional[str] = None,
        tc_mode: str = "auto",
        code: Optional[dict[str, Sequence[Instruction]]] = None,
        prepare: Optional[Callable[[], None]] = None,
    ) -> None:
        """``direction``: "in", "out" or "inout" (tcpdump's -Q); None is "inout" where the
        egress hook can be attached, and "in" with a notice where it cannot. ``prepare``: called
        once by ``open`` after the programs are handed to the verifier and before the XDP
        program is attached (the caller's work that the programs do not depend on, done
        meanwhile); what it raises undoes the capture, an egress hook attached by then too."""
        if mode not in MODES:
            raise CaptureError(f"unknown mode '{mode}' (choose from {', '.join(MODES)})")
        if direction is not None and direction not in DIRECTIONS:
            raise CaptureError(f"unknown direction '{direction}' (in, out or inout)")
        if tc_mode not in TC_MODES:
            raise CaptureError(f"unknown tc mode '{tc_mode}' (auto, tcx or clsact)")
        self.direction = direction
        self.tc_mode = tc_mode
        self.interfaces = list(interfaces)
        self.mode = mode
        self.replace = replace
        self.use_link = use_link
        self.notice = notice
        self.prepare = prepare
        # The ring is made in a thread while the object is read: the kernel's allocating a
        # 16 MiB ring (some 4 ms) overlaps Python's work instead of following it.
        self.early_ring = None
        if ring_size and not object_path:
            from xdptcp.sidebyside import EarlyRing

            self.early_ring = EarlyRing(ring_size, RING)
        try:
            self._read_object(object_path, ring_size, rodata, code)
        except BaseException:
            self._drop_early_ring()
            raise
        self.obj = None
        self.ring = None
        self.attachments: list[Attachment] = []
        # ifindexes whose device has no TSO: the kernel segments GSO packets after our hook
        self.gso_split: set[int] = set()

    def _read_object(self, object_path, ring_size, rodata, code) -> None:
        self.spec = ObjectSpec.from_file(object_path) if object_path else shipped_object()
        if ring_size is not None:
            self.spec.set_max_entries(RING, ring_size)
        self.spec.rodata.update_from(batched_wakeups(self.spec.maps[RING].max_entries))
        for name, value in (rodata or {}).items():
            self.spec.rodata[name] = value
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC; records get wall-clock time by this offset,
        # here and in the file record heads the program writes (xdptcp_out).
        self.clock_offset_ns = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()
        if "xdptcp_clock_offset" in self.spec.rodata:
            self.spec.rodata["xdptcp_clock_offset"] = self.clock_offset_ns
        for name, insns in (code or {}).items():  # generated code: the compiled filter
            self.spec.replace_function(name, insns)
        # Without a filter, the XDP program made without the filter's call (bpf/xdptcp.bpf.c);
        # from an object without it (one given by path), xdp_capture, whose filter call is
        # then dead code.
        unfiltered = not (rodata or {}).get("xdptcp_filter_on")
        self.xdp_program = (
            PROGRAM_ALL if unfiltered and PROGRAM_ALL in self.spec.programs else PROGRAM
        )

    # --- life cycle ---------------------------------------------------------------------

    def open(self) -> Capture:
        try:
            check_ringbuf_support()
            if self.direction == "in" or not self._open_side_by_side():
                from pybpf.ringbuf import RingBuffer

                self.obj = self._load()
                self.ring = RingBuffer.from_map(self.obj.maps[RING])
                self._prepared()
                for iface in self.interfaces:
                    if self.direction != "out":
                        self._attach(iface)
                    self._add(self._egress_if_wanted(iface))
        except BaseException:
            self.close()
            raise
        finally:
            self._drop_early_ring()
        return self

    def _prepared(self) -> None:
        prepare, self.prepare = self.prepare, None
        if prepare is not None:
            prepare()

    def _given_maps(self) -> dict:
        """The ring made early, for ``load(maps=...)``, if it is the ring the object asks for
        (else, or if it could not be made, the loader makes the ring and reports in its own
        words)."""
        ring = self.early_ring.result() if self.early_ring is not None else None
        ms = self.spec.maps[RING]
        if ring is None or (ring.type, ring.max_entries, ring.flags) != (
            ms.map_type,
            ms.max_entries,
            ms.flags,
        ):
            return {}
        return {RING: ring}

    def _drop_early_ring(self) -> None:
        if self.early_ring is not None:
            self.early_ring.close()  # the object holds its own fd of it
            self.early_ring = None

    def _open_side_by_side(self) -> bool:
        """Load and attach the two programs side by side: the maps first, then the tc program
        loaded and attached on egress in a thread while the XDP program is verified and attached
        here (the verifier and the attaching run in bpf(2) and netlink calls, which let go of
        the GIL). The attachments are kept in the order of one after the other, XDP first.
        False when the XDP program needs loading without multi-buffer support (an older
        kernel): everything is undone and the caller loads the way that finds out."""
        self.spec.rodata["xdptcp_xdp_frags"] = 1
        self.obj = load(self.spec, programs=[], maps=self._given_maps())
        # Both programs are linked here and verified in threads side by side, the tc program
        # first; the tc program's tcx link (an RCU grace period under RTNL) is made as soon as
        # it is verified, and the XDP attach, which waits for a grace period of its own under
        # RTNL, follows it. The ring is mapped while they run. (Alone, each is verified in 7-9
        # ms here, side by side in 11-15. Verifying the tc program alone first, and the XDP
        # program during the tcx link's grace period, made the start slower: bench/RESULTS.md.)
        from xdptcp.sidebyside import EgressSide

        egress = EgressSide(self, TC_PROGRAM)
        try:
            xdp = None
            if self.direction != "out":
                xdp = self.obj.load_program(self.xdp_program, wait=False)
            egress.start()
            from pybpf.ringbuf import RingBuffer

            self.ring = RingBuffer.from_map(self.obj.maps[RING])
            if xdp is not None:
                # what is on each interface now, asked while the verifier runs (a program found
                # there is dealt with after it, as before: removed or replaced only once ours
                # has loaded)
                found = [link_query(iface) for iface in self.interfaces]
                egress.wait_attaching()
                self._prepared()
                try:
                    xdp.result()
                except SyscallError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    egress.finish()
                    self.close()
                    return False
                for iface, current in zip(self.interfaces, found):
                    self._attach(iface, current)
            else:
                egress.wait_attaching()
                self._prepared()
        finally:
            egress.finish()
        egress.raise_error()
        return True

    def _egress_if_wanted(self, iface: Interface, notice=None) -> Optional[Attachment]:
        if not self._egress_wanted(iface):
            return None
        return self._attach_egress(iface, notice)

    def _egress_wanted(self, iface: Interface) -> bool:
        return self.direction != "in" and not self._loopback_default(iface)

    def _add(self, att: Optional[Attachment]) -> None:
        if att is not None:
            self.attachments.append(att)

    def _load(self):
        """Load the programs the direction needs. The XDP program is "xdp.frags" (multi-buffer
        frames, Linux 5.18): where the kernel refuses the flag, it is loaded without, and its
        multi-buffer code stays dead (``xdptcp_xdp_frags`` = 0)."""
        from pybpf.object.sections import F_XDP_HAS_FRAGS

        xdp = self.xdp_program
        wanted = [p for p, d in ((xdp, "out"), (TC_PROGRAM, "in")) if self.direction != d]
        self.spec.rodata["xdptcp_xdp_frags"] = 1
        try:
            return load(self.spec, programs=wanted, maps=self._given_maps())
        except SyscallError as e:
            if xdp not in wanted or e.errno != errno.EINVAL:
                raise
        ps = self.spec.programs[xdp]
        self.spec.programs[xdp] = replace_fields(ps, prog_flags=ps.prog_flags & ~F_XDP_HAS_FRAGS)
        self.spec.rodata["xdptcp_xdp_frags"] = 0
        return load(self.spec, programs=wanted)

    def close_attachments(self) -> list[str]:
        """Detach everything we attached; the ring and the counters stay readable.

        Returns the problems met on the way (never raises): this runs on error paths."""
        problems = []
        for att in reversed(self.attachments):
            try:
                detach(att)
            except Exception as e:  # keep detaching the others
                problems.append(f"{att.iface.name}: {e}")
        self.attachments.clear()
        return problems

    def close(self) -> list[str]:
        """Detach, then release the ring and the object (maps and program)."""
        problems = self.close_attachments()
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        if self.obj is not None:
            self.obj.close()
            self.obj = None
        self._drop_early_ring()  # a capture made and closed without being opened
        return problems

    def __enter__(self) -> Capture:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sees_egress(self) -> bool:
        """True when outgoing packets are captured on some interface."""
        return any(a.egress for a in self.attachments)

    def describe(self) -> str:
        """Where each direction is captured: "eth0 (in: native XDP, out: tcx)"."""
        parts = []
        for iface in self.interfaces:
            hooks = []
            for a in self.attachments:
                if a.iface is iface:
                    hooks.append(f"out: {a.mode}" if a.egress else f"in: {a.mode} XDP")
            parts.append(f"{iface.name} ({', '.join(hooks)})")
        return ", ".join(parts)

    # --- attach / detach (xdptcp.attach) ------------------------------------------------

    def _attach(self, iface: Interface, link=None) -> None:
        """Attach the XDP program; ``link``: what ``link_query`` said of the interface, if it
        was asked already."""
        link = link or link_query(iface)
        self.attachments.append(
            attach_xdp(
                self.obj.programs[self.xdp_program],
                iface,
                link,
                mode=self.mode,
                use_link=self.use_link,
                replace=self.replace,
                notice=self.notice,
            )
        )
        if not link.up:  # attached, but nothing will arrive yet
            self.notice(
                f"{iface.name} is down: packets arrive once it is up "
                f"(ip link set dev {iface.name} up)"
            )

    def _loopback_default(self, iface: Interface) -> bool:
        """On a loopback device every packet leaves and arrives: tcpdump (libpcap) shows only the
        arriving copy, so by default only XDP is attached there (-Q out still asks for egress)."""
        return self.direction is None and is_loopback(iface)

    def _attach_egress(self, iface: Interface, notice=None) -> Optional[Attachment]:
        """The tc program on the egress hook (``attach.attach_egress``); a device that segments
        GSO packets after it is noted for ``batches``."""
        att = attach_egress(
            self.obj.programs[TC_PROGRAM],
            iface,
            tc_mode=self.tc_mode,
            asked=self.direction is not None,
            notice=notice or self.notice,
        )
        if att is not None:
            from xdptcp.gso import device_segments

            with in_netns(iface.netns):
                if device_segments(iface.name):
                    self.gso_split.add(iface.ifindex)
        return att

    def gone(self) -> list[str]:
        """Interfaces deleted while capturing: the kernel took our programs with them. Each
        named once, though it had two (in and out)."""
        return gone(self.attachments)

    # --- reading --------------------------------------------------------------------------

    def counters(self) -> Counters:
        """The per-CPU counters, summed over CPUs."""
        from xdptcp.record import sum_counters

        return Counters.from_values(sum_counters(self.obj.maps[COUNTERS].lookup(b"\0\0\0\0")))

    def wait(self, timeout_ms: int) -> bool:
        """Until the program's next wakeup (another eighth of the ring waiting,
        ``batched_wakeups``) or the timeout; at once when that much is waiting already. Records
        are taken in batches of thousands under load: one reader that came back for every few
        records would spend more on the calls than on the records."""
        return self.ring.poll(timeout_ms, wakeup_step(self.ring.size))

    def _out_format(self) -> int:
        """enum xdptcp_out the program was loaded with (0 for an object without it)."""
        rodata = self.spec.rodata
        return rodata.get_int("xdptcp_out") if "xdptcp_out" in rodata else OUT_NONE

    def batches(self) -> Iterator[list]:
        """Records available now, in batches (one drain of the ring each).

        Each item is ``(wall-clock ns, interface name, captured bytes, wire length, direction)``,
        direction being ``xdptcp.record.INGRESS`` or ``EGRESS``. A GSO packet leaving a device
        that segments it in the kernel (no TSO) becomes its segments, as tcpdump shows them.

        When the program writes the file's record heads (``xdptcp_out``) and no packet needs
        segmenting here, a batch is a :class:`FileRecords` instead: the records as the file
        wants them, taken from the drained span without decoding."""
        capacity = self.spec.rodata.get_int("xdptcp_capacity")
        out = self._out_format()
        size = record_size(capacity, out)
        if out != OUT_NONE and not self.gso_split:
            yield from file_batches(self.ring, size, out)
            return
        slot = struct.Struct(_slot_format(capacity, size))
        names = {i.ifindex: i.name for i in self.interfaces}
        offset = self.clock_offset_ns
        while True:
            blob, count = self.ring.drain_fixed(size, max_records=BATCH)
            if not count:
                return
            if self.gso_split:
                yield self._segmented(slot.iter_unpack(blob), names)
                continue
            yield [
                (ts + offset, names.get(ifindex) or f"if{ifindex}", data[:cap_len], wire_len, d)
                for ts, ifindex, wire_len, cap_len, d, _, _, data in slot.iter_unpack(blob)
            ]

    def _segmented(self, rows, names: dict[int, str]) -> list:
        """The slow path of ``batches``: some interface segments GSO packets after the hook."""
        from xdptcp.gso import segment

        out = []
        for ts, ifindex, wire_len, cap_len, d, segs, size, data in rows:
            name = names.get(ifindex) or f"if{ifindex}"
            if segs > 1 and ifindex in self.gso_split:
                for frame, wire in segment(data[:cap_len], wire_len, size):
                    out.append((ts + self.clock_offset_ns, name, frame, wire, d))
            else:
                out.append((ts + self.clock_offset_ns, name, data[:cap_len], wire_len, d))
        return out


# Records per drain. It bounds the memory of one batch: for text and JSON the records become
# Python objects, then lines, and the allocator keeps that peak as resident memory afterwards;
# 4,096 instead cost 1.5 MB more for no speed. For -w it is also the most one writev(2) takes.
BATCH = 1024


class FileRecords:
    """Records drained from the ring whose heads the program wrote in the output file's form:
    record ``i`` is ``blob[start + i * slot :]``, ``lengths[i] + extra`` bytes long.

    ``blob`` is the ring's own memory (``file_batches``), valid until the batch generator is
    resumed; ``owned()`` is the same records in bytes of their own, for a reader that keeps
    them longer (the text and JSON walks)."""

    __slots__ = ("blob", "start", "slot", "lengths", "extra")

    def __init__(self, blob, start: int, slot: int, lengths: list, extra: int) -> None:
        self.blob, self.start, self.slot, self.lengths, self.extra = (
            blob, start, slot, lengths, extra
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.lengths)

    def owned(self) -> FileRecords:
        if isinstance(self.blob, bytes):
            return self
        return FileRecords(self.blob.tobytes(), self.start, self.slot, self.lengths, self.extra)

    def _pieces(self, limit: Optional[int]) -> tuple[range, list]:
        lengths = self.lengths if limit is None else self.lengths[:limit]
        if self.extra:
            lengths = [n + self.extra for n in lengths]
        return range(self.start, self.start + len(lengths) * self.slot, self.slot), lengths

    def join(self, limit: Optional[int] = None) -> bytes:
        """The first ``limit`` records (all by default) back to back, as the file holds them."""
        blob = self.blob
        offsets, lengths = self._pieces(limit)
        return b"".join([blob[o : o + n] for o, n in zip(offsets, lengths)])

    def write_to(self, fd: int, limit: Optional[int] = None) -> None:
        """``join(limit)`` written to ``fd``, gathered by the kernel from where the records lie
        (writev): no copy of the records is made here."""
        from pybpf.ringbuf import buffer_address
        from xdptcp.process import write_gathered

        offsets, lengths = self._pieces(limit)
        write_gathered(fd, self.blob, buffer_address(self.blob), offsets, lengths)


def file_batches(ring, size: int, out: int) -> Iterator[FileRecords]:
    """Drain ``ring``, whose records of ``size`` bytes carry file record heads (``out``: the
    program's ``xdptcp_out``), in batches of :class:`FileRecords`: the records there when it
    starts (``Capture.wait`` decides when to come back). Per record only its length is read,
    with one strided slice of the whole batch. A batch is the ring's memory itself, consumed
    when the generator goes on (or is closed): nothing is copied to hand it over."""
    from pybpf.ringbuf import slot_size

    slot = slot_size(size)
    start = 8 + OUT_START[out]  # past the ring's own 8-byte record header
    # The u32 giving each record's length in the file: the block length (pcapng), the captured
    # length (pcap: 16 bytes of header more).
    word = (start + (8 if out == OUT_PCAP else 4)) // 4
    extra = 16 if out == OUT_PCAP else 0
    end = ring.producer_pos  # what is there now: a reader that keeps up under a flood would
    while True:  # otherwise go on taking the few records that came meanwhile, one call each
        room = (end - ring.consumer_pos) // slot
        if room <= 0:
            return
        view, count, pos = ring.peek_fixed(size, max_records=min(room, BATCH))
        if not count:
            return
        try:
            with view.cast("I") as words:
                lengths = words[word :: slot // 4].tolist()
            yield FileRecords(view, start, slot, lengths, extra)
        finally:
            ring.consume(pos)


def batched_wakeups(ring_size: int) -> dict[str, int]:
    """The .rodata that wakes the reader each time another eighth of the ring is waiting, not
    for every record: under load each wakeup is an interrupt on the CPU that runs the program.
    A quiet link is read anyway by the reader's poll timeout, so a lone packet still shows
    promptly. The program looks at the ring's unread bytes once every ``WAKEUP_LOOK_EVERY``
    records of a CPU, so a wakeup comes at most that many records of each CPU after the mark.
    (``ring_size`` is a power of two: the step is one too.)"""
    step = wakeup_step(ring_size)
    return {"xdptcp_wakeup_mode": WAKEUP_AVAIL_STEP, "xdptcp_wakeup_arg": step.bit_length() - 1}


def wakeup_step(ring_size: int) -> int:
    """Bytes waiting between two of the program's wakeups (``batched_wakeups``)."""
    return max(ring_size // 8, 1)


def _slot_format(capacity: int, size: int) -> str:
    """One ring slot: the ring's 8-byte header, struct xdptcp_record, data[capacity], padding
    (``size``: the record's whole reservation).

    Only the fields a capture needs are unpacked; the rest is skipped (``x``)."""
    from pybpf.ringbuf import slot_size

    pad = slot_size(size) - 8 - RECORD_HEADER_SIZE - capacity
    # 8x ring header | ts_ns Q | ifindex I | rx_queue 4x | wire_len I | cap_len H |
    # l3_off..vlans 8x | direction B | reserved x | gso_segs H | gso_size H | reserved2 4x |
    # out 32x | data
    return f"=8xQI4xIH8xBxHH4x32x{capacity}s{pad}x"


def check_ringbuf_support() -> None:
    """Without a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) nothing can be captured: say so first.

    pybpf probes for it once (an older kernel answers EINVAL for the unknown map type); a probe
    that cannot tell (EPERM for an unprivileged user) leaves the real load to report in its own
    words."""
    from pybpf.sys.features import Feature, has

    if not has(Feature.RINGBUF):
        raise CaptureError(
            f"this kernel ({os.uname().release}) has no BPF ring buffer, which xdptcp needs to "
            f"capture: {Feature.RINGBUF.needs()}; run it on a newer kernel"
        )
