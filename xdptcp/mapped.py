"""``-r FILE`` on a classic pcap, and live text and JSON: the record walk and the formatters'
common case in one loop, so that a usual packet costs one pass of Python with no call in it.

For a classic pcap of Ethernet frames in this machine's byte order (what tcpdump and xdptcp
write here), read in chunks (``MappedPcap``), or a batch drained from the capture's ring whose
program wrote a pcap record header into each record (``RingSpan``), the formatters'
``mapped_lines`` walk the records and, for a frame of the common shape (IPv4 without options
or fragmenting, IPv6 without extension headers, untagged or behind one 802.1Q tag, whole TCP
header captured), make the line right there:

* the start of the line (addresses, ports) and the conversation's key are made once per
  direction of a conversation, keyed by the raw address and port bytes;
* options are looked up by their bytes: lists without SACK blocks give the same text whatever
  the sequence bases, and the usual nop,nop,TS first is split off so the rest of the list is
  found by its bytes too; after nop,nop,TS, a list with one SACK block in a layout seen before
  (by TCP header length) is found by the bytes around the block, whose edges are printed from
  the sequence base;
* anything else (two VLAN tags or an 802.1ad one, a tagged frame on a text line of several
  interfaces, IPv4 options, extension headers, odd lengths, SACK blocks, other timestamp
  modes...) goes to the formatter's own ``format``, which tests prove this agrees with record
  for record.

The line is what ``format`` returns; lines are written in batches like ``readfile.print_file``.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import sys
from typing import Callable, Optional

from xdptcp.pcap import (
    LINKTYPE_ETHERNET,
    MAX_RECORD,
    PCAP_MAGIC_MICRO,
    PCAP_MAGIC_NANO,
    PcapError,
    destination,
    named,
    snapshot_limit,
)

_HEAD = struct.Struct("=IHHiIII")
_REC = struct.Struct("=IIII").unpack_from
_REC_ETYPE = struct.Struct("=IIII12xH").unpack_from  # the EtherType in this machine's order
_ETH_IP = int.from_bytes(b"\x08\x00", sys.byteorder)
_ETH_IPV6 = int.from_bytes(b"\x86\xdd", sys.byteorder)
_ETH_8021Q = int.from_bytes(b"\x81\x00", sys.byteorder)
# After one 802.1Q tag: its TCI (network order: the VLAN id is its low 12 bits), and the
# EtherType that follows it (this machine's order, as _REC_ETYPE's).
_TCI = struct.Struct("!H").unpack_from
_INNER = struct.Struct("=H").unpack_from
# From the IP header through the fixed TCP header; addresses and ports as one raw key.
_FAST4 = struct.Struct("!BxHxxHBB2x12sIIBBH2xH").unpack_from
_FAST6 = struct.Struct("!IHBB36sIIBBH2xH").unpack_from
# The same and the first 12 option bytes as nop,nop,TS would hold them (prefix, val, ecr): read
# when the file goes on that far, used when the header is long enough to hold them.
_FAST4X = struct.Struct("!BxHxxHBB2x12sIIBBH2xH4sII").unpack_from
_FAST6X = struct.Struct("!IHBB36sIIBBH2xH4sII").unpack_from

# JSON's interface and direction, by the direction byte of a ring record ([2]: a file's record).
_NO_IFDIR = ('"ifname":"","direction":""',) * 3

Keep = Optional[Callable[[object, int, int, int, int], int]]  # CompiledFilter.in_place


# Bytes read at a time: more than a record can hold (MAX_RECORD + its header), so that every
# record fits in one chunk with what is left of the one before.
CHUNK = 1 << 20


class MappedPcap:
    """A classic Ethernet pcap in this machine's byte order, read in chunks of ``CHUNK`` bytes;
    ``None`` from ``open`` for anything else (the general reader takes it).

    Read, not mapped: a mapped file that another process cuts short kills the reader with SIGBUS
    at the first page past the new end; a read just ends there, and the record cut is reported
    like any damaged file's."""

    start, slot = 24, 0  # the first record; records back to back
    ifname, ifdirs = "", _NO_IFDIR  # what a file says of interfaces (JSON): nothing
    multi = False  # (RingSpan: records of several interfaces)
    # defer: a record the file's end cuts ends ``chunks`` quietly, its error left in ``damage``
    # (``print_mapped``: the lines of the records before it are written first, as tcpdump's)
    defer, damage = False, None

    def __init__(self, path: str, f, head: bytes) -> None:
        self.name, self._f, self._head = path, f, head
        magic, _, _, _, _, snaplen, self.linktype = _HEAD.unpack_from(head)
        # a record captured longer than this is handed over cut to it, as libpcap does
        self.snaplen, self.limit = snaplen, snapshot_limit(snaplen)
        self.nano = magic == PCAP_MAGIC_NANO
        self.rest = 0  # set by the walk: where the first record it could not finish starts
        self.base = 0  # the file offset of the buffer's first byte

    @classmethod
    def open(cls, path) -> Optional[MappedPcap]:
        if not isinstance(path, str) or path == "-":
            return None
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        except OSError:
            return None  # the general reader names the error
        try:
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                head = f.read(24)
                if len(head) == 24:
                    magic, _, _, _, _, _, linktype = _HEAD.unpack(head)
                    if magic in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO) and (
                        linktype & 0xFFFF == LINKTYPE_ETHERNET
                    ):
                        return cls(path, f, head)
        except OSError:
            pass
        f.close()
        return None

    def chunks(self, into: Optional[mmap.mmap] = None):
        """``(buffer, first record, end)`` until the file ends: the walk reads the records that
        end in the buffer and sets ``rest`` to where the next one starts. A record the file's
        end cuts is the error ``damaged`` names. One buffer, read into: fresh memory per chunk
        costs a page fault per 4 KiB (measured: 6 % of ``-r``). ``into``: the caller's buffer
        of at least ``CHUNK + MAX_RECORD + 16`` bytes (a BPF map's, for ``xdptcp.walk``)."""
        size = CHUNK + MAX_RECORD + 16  # what is left of a record, and a chunk after it
        buf = mmap.mmap(-1, size) if into is None else into
        try:
            with memoryview(buf) as view:
                buf[:24] = self._head
                end = 24 + self._f.readinto(view[24 : 24 + CHUNK])
                pos, self.base = 24, 0
                while True:
                    yield buf, pos, end
                    rest = self.rest
                    left = end - rest
                    if rest:
                        buf.move(0, rest, left)
                        self.base += rest
                    got = self._f.readinto(view[left : left + CHUNK])
                    if not got:
                        if left:
                            want = _REC(buf, 0)[2] if left >= 16 else -1
                            err = damaged(self, self.base, left - 16 if want >= 0 else left, want)
                            if not self.defer:
                                raise err
                            self.damage = err  # raised by the caller after what it holds
                        return
                    pos, end = 0, left + got
        finally:
            try:
                if into is None:
                    buf.close()
            except BufferError:  # a view of it kept by an exception's frames: freed with them
                pass

    def fileno(self) -> int:
        return self._f.fileno()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> MappedPcap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def damaged(mp, at: int, have: int, want: int) -> PcapError:
    """The reader's error for the record at file offset ``at``: ``want`` < 0 for a cut record
    header. The record's number is counted here (the file read again), not on the way."""
    n, pos = 1, 24
    with open(mp.name, "rb") as f:
        buf, base = b"", 24  # base: the file offset of buf[0]
        while pos < at:
            if pos + 16 > base + len(buf):
                f.seek(pos)
                buf, base = f.read(CHUNK), pos
                if len(buf) < 16:
                    break  # shorter now than when it was read
            pos += 16 + _REC(buf, pos - base)[2]
            n += 1
    path = mp.name
    if want < 0:
        return PcapError(f"{path}: record {n}: truncated record header ({have} of 16 bytes)")
    if want > MAX_RECORD:
        return PcapError(
            f"{path}: record {n}: captured length {want} is bogus "
            f"(more than {MAX_RECORD}); the file is damaged"
        )
    return PcapError(f"{path}: record {n}: truncated data ({have} of {want} bytes)")


def print_mapped(
    mp: MappedPcap, formatter, out, count: Optional[int], keep: Keep, kernel=None
) -> int:
    """``print_file`` on a mapped pcap: the lines of ``formatter`` (a ``TextFormatter`` or a
    ``JsonFormatter``, which make them: ``mapped_lines``) in batches of ``readfile.BATCH``, as
    ``print_file`` writes them; returns how many were printed. ``kernel``: a function that
    gives the same batches with the lines made in the kernel, or None where it cannot
    (``xdptcp.textwalk.kernel_batches``); its batches say how many records' lines they hold."""
    from xdptcp.process import write_all

    printed = 0
    mp.defer = True  # a record cut by the file's end: its error after the last batch
    batches = kernel(formatter, mp, keep, count) if kernel is not None else None
    if batches is None:
        batches = formatter.mapped_lines(mp, keep, count)
    for lines in batches:
        printed += getattr(lines, "records", len(lines))
        lines.append("")  # the last newline, without copying the batch again
        try:  # the write only: an error reading the file is not out's
            write_all(out, "\n".join(lines))
        except OSError as e:
            named(e, destination(out))
            raise
    out.flush()  # (write_all flushed it: this one has nothing to write)
    if mp.damage is not None:
        raise mp.damage
    return printed


# In a ring record whose program wrote a pcap record header (OUT_PCAP), the program's own
# header's direction byte and interface index, by their distance before the frame.
DIRECTION_BEFORE = 42
IFINDEX_BEFORE = 64
_IFINDEX = struct.Struct("=I").unpack_from


class RingSpan:
    """Records drained from the ring (``capture.FileRecords``) whose program wrote a classic pcap
    record header in front of each frame (``xdptcp_out`` = ``OUT_PCAP``), seen as the walk of
    ``mapped_lines`` sees a file: ``start`` the first record header, ``slot`` the stride between
    records (the ring's 8-byte header and the program's own record header lie between them);
    the direction byte of the program's header sits 42 bytes before the frame.

    ``ifname`` is the one interface's name, or the names by interface index (several
    interfaces: ``multi``; an ``IfNames``, made once per capture, keeps what the walks make of
    each interface across batches). ``ifdirs`` holds JSON's '"ifname":..,"direction":..' by the
    direction byte, or by ``direction | ifindex << 2`` when there are several (``IfDirs``)."""

    def __init__(self, batch, nano: bool, ifname) -> None:
        self.mm, self.start, self.slot = batch.blob, batch.start, batch.slot
        self.damage = None  # (whole records: nothing cut)
        self.limit = MAX_RECORD  # (the program's records: none longer)
        self.nano, self.name, self.base = nano, "ring", 0
        self.multi = isinstance(ifname, dict)
        if self.multi:
            self.names = ifname if isinstance(ifname, IfNames) else IfNames(ifname)
            self.ifname, self.ifdirs = "", self.names.ifdirs
        else:
            self.ifname, self.ifdirs = ifname, ifdirs_of(ifname)

    def chunks(self):
        """The walk's buffers: the batch, whole (the program writes whole records)."""
        yield self.mm, self.start, len(self.mm)


def ifdirs_of(ifname: str) -> tuple[str, str, str]:
    """JSON's interface and direction fields for ``ifname``, by the direction byte ([2]: none
    known)."""
    import json  # (not at start-up: text needs none of it)

    name = json.dumps(ifname)
    return tuple(f'"ifname":{name},"direction":"{d}"' for d in ("in", "out", ""))


class IfNames(dict):
    """Interface names by index; an index the capture did not attach to (none should come)
    named as ``Capture.batches`` names it. Its ``ifdirs`` are JSON's fields for them."""

    def __init__(self, names: dict) -> None:
        super().__init__(names)
        self.ifdirs = IfDirs(self)

    def __missing__(self, ifindex: int) -> str:
        return f"if{ifindex}"


class IfDirs(dict):
    """``ifdirs_of`` for several interfaces, by ``direction | ifindex << 2``, made for each
    interface the first time one of its records comes; ``after_ns`` the same with what
    surrounds them in JSON's object (from "ts_ns" to "wire_len")."""

    def __init__(self, names: IfNames) -> None:
        super().__init__()
        self.names = names
        self.after_ns = _Around(self, ',{},"wire_len":')

    def __missing__(self, key: int) -> str:
        text = self[key] = ifdirs_of(self.names[key >> 2])[key & 3]
        return text


class _Around(dict):
    """``texts[key]`` put into ``form``, made for each key the first time it is asked."""

    def __init__(self, texts: dict, form: str) -> None:
        super().__init__()
        self.texts, self.form = texts, form

    def __missing__(self, key: int) -> str:
        text = self[key] = self.form.format(self.texts[key])
        return text


def print_ring(batch, formatter, out, nano: bool, ifname) -> int:
    """The lines of a drained batch of records with pcap headers (``RingSpan``) by the
    formatter's ``mapped_lines``, the walk ``-r`` uses; returns how many were printed.
    ``ifname``: the one interface's name, or the names by interface index."""
    return print_mapped(RingSpan(batch, nano, ifname), formatter, out, None, None)


def ring_records(batch, nano: bool, ifname) -> list[tuple[int, str, bytes, int, int]]:
    """The same batch as a capture's decoded records ``(ts_ns, ifname, frame, wire_len,
    direction)``, for the record-by-record path (a count to stop at). ``ifname`` as for
    ``print_ring``."""
    blob, mult = batch.blob, 1 if nano else 1000
    names = None
    if isinstance(ifname, dict):
        names = ifname if isinstance(ifname, IfNames) else IfNames(ifname)
    out = []
    for pos in range(batch.start, len(blob), batch.slot):
        sec, frac, incl, orig = _REC(blob, pos)
        at = pos + 16
        if names is not None:
            ifname = names[_IFINDEX(blob, at - IFINDEX_BEFORE)[0]]
        out.append((sec * 1_000_000_000 + frac * mult, ifname, blob[at : at + incl], orig,
                    blob[at - DIRECTION_BEFORE]))  # fmt: skip
    return out
