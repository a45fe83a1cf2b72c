"""pcap files: writers for captures (classic pcap, and pcapng when directions are to be kept) and
a reader for ``-r`` (classic pcap and pcapng).

Classic pcap (draft-ietf-opsawg-pcap): a 24-byte file header, then per packet a 16-byte record
header and the captured bytes; the magic number gives the byte order and whether the fraction
is micro- or nanoseconds (layouts in ``xdptcp.layouts``). pcapng (draft-ietf-opsawg-pcapng) is
read too: section header, interface description (link type, ``if_tsresol``), enhanced and simple
packet blocks; other blocks are skipped.

The writer opens a path with ``O_NOFOLLOW`` so that a symlink planted where the capture goes is
never followed (writing as root through someone else's symlink would clobber its target), and
creates the file with mode 0644 minus the umask. ``-`` writes to standard output. A write that
fails raises its OSError with the output's name as ``filename`` (the path, or ``standard output``),
as the text writers of ``-r`` and the live sinks do (``named``).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
from collections.abc import Iterable, Iterator

PCAP_MAGIC_MICRO = 0xA1B2C3D4
PCAP_MAGIC_NANO = 0xA1B23C4D
PCAPNG_MAGIC = 0x0A0D0D0A  # section header block type: the start of a pcapng file
LINKTYPE_ETHERNET = 1

MAX_RECORD = 262144  # tcpdump's MAXIMUM_SNAPLEN: no record is allowed to be longer


def snapshot_limit(snaplen: int) -> int:
    """The longest record libpcap hands over from a file (or a pcapng interface) whose header
    gives this snapshot length: a record captured longer (a damaged or fuzzed file's, or one of
    a writer that got its header wrong) comes cut to it. pcap_adjust_snapshot: 0, or more than
    INT_MAX, is MAX_RECORD; above MAX_RECORD nothing is cut (longer records are errors)."""
    return MAX_RECORD if snaplen == 0 or snaplen > MAX_RECORD else snaplen


def copied_snaplen(snaplen: int) -> int:
    """The snapshot length in the header of ``tcpdump -r F -w OUT``'s copy of a file whose
    header gives ``snaplen``: libpcap's pcap_adjust_snapshot (0, or more than INT_MAX, is
    MAX_RECORD), which a copy keeps."""
    return MAX_RECORD if snaplen == 0 or snaplen > 0x7FFFFFFF else snaplen


_FILE_HEADER = {"<": struct.Struct("<IHHiIII"), ">": struct.Struct(">IHHiIII")}
_RECORD = {"<": struct.Struct("<IIII"), ">": struct.Struct(">IIII")}
_NATIVE_RECORD = struct.Struct("=IIII")

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Optional, Union

    PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]


class FieldStamp(int):
    """The timestamp of a classic pcap record that tcpdump prints from its fields rather than
    from the time they stand for: a fraction field of a second or more, or seconds with bit 31
    set (a damaged or hand-made file). As an int, the nanoseconds the fields stand for (the
    excess fraction carried into the seconds); ``sec`` and ``frac`` (in the file's unit,
    ``nano``) are the fields as the file holds them, which tcpdump prints as they are
    (``xdptcp.clock.Clock``). libpcap reads them as signed 32-bit numbers from a file in the
    machine's byte order and as unsigned ones from a file it byte-swaps: ``signed``."""

    def __new__(cls, sec: int, frac: int, nano: bool, signed: bool = True) -> FieldStamp:
        self = super().__new__(cls, sec * 1_000_000_000 + frac * (1 if nano else 1000))
        self.sec, self.frac, self.nano, self.signed = sec, frac, nano, signed
        return self

    def fields(self, nano: bool) -> tuple[int, int]:
        """(seconds, fraction) as libpcap hands them to tcpdump when it reads at this time
        precision (``nano``): signed or not, the fraction scaled as C does when the file's
        unit is not the one asked for. tcpdump prints them, and its ``-w`` writes them."""
        sec, frac = self.sec, self.frac
        if self.signed:
            sec -= (sec & 0x80000000) << 1
            frac -= (frac & 0x80000000) << 1
        if self.nano and not nano:
            frac = frac // 1000 if frac >= 0 else -(-frac // 1000)  # C's division: toward 0
        elif nano and not self.nano:
            frac *= 1000
        return sec, frac


def record_stamp(sec: int, frac: int, nano: bool) -> int:
    """A classic pcap record's timestamp from its fields (a file in this machine's byte order):
    nanoseconds, or a ``FieldStamp`` when tcpdump would print the fields as they are."""
    if frac >= (1_000_000_000 if nano else 1_000_000) or sec >= 0x80000000:
        return FieldStamp(sec, frac, nano)
    return sec * 1_000_000_000 + frac * (1 if nano else 1000)


class PcapError(Exception):
    """A pcap file that cannot be written or read; the message names the file and record."""


STANDARD_OUTPUT = "standard output"  # what an error writing to stdout names


def named(error: OSError, name: Optional[str]) -> None:
    """Give ``error``, raised by a write to ``name``, that name (``filename``, which the command
    line prints before the kernel's words): the kernel's answer to a write says what went wrong
    (a full disk, an I/O error), never where. Called on the error path only."""
    if name and not error.filename:
        error.filename = name


def destination(out) -> Optional[str]:
    """The name a text stream's write errors are given: ``standard output`` for stdout, else the
    name of the file it writes (None when it has none)."""
    name = getattr(out, "name", None)
    if name == "<stdout>":
        return STANDARD_OUTPUT
    return name if isinstance(name, str) else None


class _StdoutFile:
    """Standard output for a capture file: buffered here, written with ``os.write`` to the end.
    CPython's buffered writer drops the rest of a write that a signal interrupts part way (a full
    pipe, then SIGINT to stop the capture) though the handler returns: a slow reader of
    ``xdptcp -w -`` lost the file's last records."""

    def __init__(self, fd: int) -> None:
        self._fd, self._buf = fd, bytearray()

    def write(self, data) -> int:
        self._buf += data
        if len(self._buf) >= 1 << 16:
            self.flush()
        return len(data)

    def flush(self) -> None:
        from xdptcp.process import write_fd

        try:
            write_fd(self._fd, self._buf)
        except OSError as e:
            named(e, STANDARD_OUTPUT)
            raise
        self._buf.clear()

    def fileno(self) -> int:
        return self._fd


def _stdout():
    """Standard output's bytes: ``_StdoutFile`` on its descriptor (what Python buffered is
    written first), or ``sys.stdout.buffer`` where there is no descriptor (a test's capture)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdout.buffer
    sys.stdout.flush()
    return _StdoutFile(fd)


class _Output:
    """Where a capture file goes: a path (opened safely, see ``_open_no_follow``), ``-`` for
    standard output (flushed after every write, for a pipe), or a binary file given by the
    caller (left open). Records keep at most ``snaplen`` bytes of each packet and stamps in
    microseconds, or nanoseconds with ``nano``. The file starts with the subclass's
    ``_header()``. Closed once; a context manager."""

    def __init__(
        self,
        file_or_path: PathOrFile,
        snaplen: int = 262144,
        nano: bool = False,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> None:
        self.snaplen = snaplen
        self.nano = nano
        self.linktype = linktype
        self._div = 1 if nano else 1000  # nanoseconds (the kernel's stamps) per unit of the file
        self._per_sec = 1_000_000_000 // self._div
        self._is_stdout = file_or_path == "-"
        self._owned = isinstance(file_or_path, (str, os.PathLike)) and not self._is_stdout
        if self._is_stdout:
            self._out: Optional[BinaryIO] = _stdout()
        elif self._owned:
            self._out = _open_no_follow(os.fspath(file_or_path))
        else:
            self._out = file_or_path
        if self._is_stdout:
            self.name = STANDARD_OUTPUT
        else:  # what errors name: the path, or the name of the caller's file
            self.name = str(getattr(self._out, "name", "pcap file"))
        self._emit(self._header())

    def _header(self) -> bytes:
        raise NotImplementedError

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        if self._is_stdout:
            self._out.flush()

    def flush(self) -> None:
        self._out.flush()

    def _gather(self, records, limit: Optional[int]) -> None:
        """Records in this file's form, still where the capture put them (``FileRecords``):
        written by the kernel from there (writev) after what is buffered here; joined and
        written through the buffer where the output has no descriptor."""
        try:
            fd = self._out.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            self._out.write(records.join(limit))
            return
        self._out.flush()
        try:
            records.write_to(fd, limit)
        except OSError as e:  # written to the descriptor here, past the file object
            named(e, self.name)
            raise

    def close(self) -> None:
        if self._out is None:
            return
        try:
            self._out.flush()
        finally:
            if self._owned:
                self._out.close()
            self._out = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PcapWriter(_Output):
    """Writes a classic pcap file in the machine's byte order; a context manager."""

    def _header(self) -> bytes:
        magic = PCAP_MAGIC_NANO if self.nano else PCAP_MAGIC_MICRO
        return struct.pack("=IHHiIII", magic, 2, 4, 0, 0, self.snaplen, self.linktype)

    def _record(self, ts_ns: int, data, wire_len: int) -> bytes:
        if ts_ns.__class__ is FieldStamp:  # a damaged -r input's fields: copied, as tcpdump -w
            sec, frac = ts_ns.fields(self.nano)  # does (libpcap writes the 32 bits it read)
            sec, frac = sec & 0xFFFFFFFF, frac & 0xFFFFFFFF
        else:
            sec, frac = divmod(ts_ns // self._div, self._per_sec)
            # A pcapng input's time can lie past 2106 (or, with an interface's offset, before
            # 1970): libpcap writes the low 32 bits of its seconds, and so does this.
            sec &= 0xFFFFFFFF
        incl = min(len(data), self.snaplen)
        return _NATIVE_RECORD.pack(sec, frac, incl, wire_len) + bytes(data[:incl])

    def write(self, ts_ns: int, data, wire_len: int) -> None:
        """One record; ``wire_len`` as given, even below the captured length (a damaged record
        that ``-r F -w OUT`` copies keeps its lengths, as tcpdump's copy does)."""
        self._out.write(self._record(ts_ns, data, wire_len))

    def write_records(self, raw) -> None:
        """Records already in this file's form (native byte order, this time precision, none
        longer than the snaplen), headers and bytes: written as they are."""
        self._out.write(raw)

    def write_file_records(self, records, limit: Optional[int] = None) -> None:
        """``write_records`` for ``capture.FileRecords`` (the first ``limit`` of them)."""
        self._gather(records, limit)

    def copy_records(self, fd: int, offset: int, raw) -> None:
        """``write_records(raw)`` for records that are the bytes of the file ``fd`` at
        ``offset``: the kernel copies them from file to file (copy_file_range) without passing
        them through this process; through a write where it cannot (stdout, a pipe), and for
        short runs, which the buffered write costs less than three system calls."""
        if len(raw) >= 1 << 16 and self._owned and not getattr(self, "_no_copy", False):
            self._out.flush()
            done, out = 0, self._out.fileno()
            try:
                while done < len(raw):
                    k = os.copy_file_range(fd, out, len(raw) - done, offset + done)
                    if not k:
                        break
                    done += k
            except OSError:  # not between these two files: write them instead
                self._no_copy = True
            self._out.seek(0, os.SEEK_END)  # the buffered file's idea of where it is
            raw = raw[done:]
        if len(raw):
            self.write_records(raw)

    def write_batch(self, records: Iterable[tuple[int, bytes, int]]) -> None:
        """Many (ts_ns, data, wire_len) in one write call; stdout is flushed per batch.

        The per-record work of ``_record``, inlined: this is the hot path of ``xdptcp -w``."""
        pack = _NATIVE_RECORD.pack
        div, per_sec, snap = self._div, self._per_sec, self.snaplen
        parts: list = []
        append = parts.append
        for ts, data, wire in records:
            t = ts // div
            sec = t // per_sec
            if not 0 <= sec <= 0xFFFFFFFF:
                self._record(ts, data, wire)  # raises the one-line error
            n = len(data)
            if n > snap:
                data, n = data[:snap], snap
            append(pack(sec, t - sec * per_sec, n, wire if wire > n else n))
            append(data)
        self._out.write(b"".join(parts))
        if self._is_stdout:
            self._out.flush()


class PcapngWriter(_Output):
    """Writes a pcapng file that keeps what classic pcap cannot: the interface of each packet
    (an interface description block per interface, ``if_name``) and its direction (the enhanced
    packet block's ``epb_flags``: 01 inbound, 10 outbound), which Wireshark and tshark show.
    ``tcpdump -r`` and ``xdptcp -r`` read it like a pcap file. Blocks are in the machine's byte
    order, which the section header's byte-order magic tells the reader."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._ifaces: dict[str, int] = {}  # the section numbers its interfaces from 0
        super().__init__(*args, **kwargs)

    def _header(self) -> bytes:
        # Section header: byte-order magic, version 1.0, section length unknown (-1).
        return _block(PCAPNG_MAGIC, struct.pack("=IHHq", 0x1A2B3C4D, 1, 0, -1))

    def _interface(self, ifname: str) -> tuple[int, bytes]:
        """The interface id of ``ifname``, and its description block when it is new."""
        if ifname in self._ifaces:
            return self._ifaces[ifname], b""
        self._ifaces[ifname] = len(self._ifaces)
        opts = _option(2, ifname.encode()) if ifname else b""  # if_name
        tsresol = 9 if self.nano else 6  # if_tsresol: 10^-N seconds
        opts += _option(9, bytes([tsresol])) + _option(0, b"")  # if_tsresol, end
        idb = struct.pack("=HHI", self.linktype, 0, self.snaplen) + opts
        return self._ifaces[ifname], _block(1, idb)

    def describe_interfaces(self, names: Iterable[str]) -> None:
        """The description blocks of the capture's interfaces, now, in this order (ids 0, 1,
        ...): a file that ends before its first packet still names them, and a reader of
        pcapng (libpcap's, tcpdump's) refuses a section that has none."""
        self._out.write(b"".join([self._interface(name)[1] for name in names]))
        if self._is_stdout:
            self._out.flush()

    def write_blocks(self, raw, ifname: str) -> None:
        """Enhanced packet blocks already in this file's form (byte order, precision, interface
        id 0, no packet longer than the snaplen), all of ``ifname``: written as they are, after
        the interface's description block the first time."""
        self._first_interface(ifname)
        self._out.write(raw)
        if self._is_stdout:
            self._out.flush()

    def write_block_records(self, records, limit: Optional[int], ifname: str) -> None:
        """``write_blocks`` for ``capture.FileRecords`` (the first ``limit`` of them)."""
        self._first_interface(ifname)
        self._gather(records, limit)

    def _first_interface(self, ifname: str) -> None:
        iface, idb = self._interface(ifname)
        if iface != 0:
            raise ValueError(f"{ifname} is not this file's first interface")
        if idb:
            self._out.write(idb)

    def write_batch(self, records: Iterable[tuple[int, str, bytes, int, int]]) -> None:
        """Many (ts_ns, ifname, data, wire_len, direction) in one write; direction is
        0 (arrived) or 1 (left), as xdptcp.record.INGRESS/EGRESS."""
        parts: list[bytes] = []
        for ts, ifname, data, wire, direction in records:
            iface, idb = self._interface(ifname)
            if idb:
                parts.append(idb)
            t = ts // self._div
            data = bytes(data[: self.snaplen])
            n = len(data)
            head = struct.pack("=IIIII", iface, t >> 32, t & 0xFFFFFFFF, n, max(wire, n))
            flags = _option(2, struct.pack("=I", 2 if direction else 1)) + _option(0, b"")
            parts.append(_block(6, head + data + bytes(-n % 4) + flags))
        self._out.write(b"".join(parts))
        if self._is_stdout:
            self._out.flush()


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("=HH", code, len(value)) + value + bytes(-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    """A pcapng block: type, total length, body, the total length again."""
    total = 12 + len(body)
    return struct.pack("=II", btype, total) + body + struct.pack("=I", total)


def _open_no_follow(path: str) -> BinaryIO:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if os.path.islink(path):
            raise PcapError(
                f"{path}: is a symbolic link; refusing to write a capture through it "
                "(name the target itself)"
            ) from None
        raise PcapError(f"{path}: cannot create the pcap file: {e.strerror}") from None
    # An existing file keeps its mode through O_TRUNC: a capture must not stay writable by
    # group or others (0644 or tighter), whoever made the file first.
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o022:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~0o022)
    return io.BufferedWriter(_OutputFile(fd, path), 1 << 16)


class _OutputFile(io.FileIO):
    """The descriptor of a capture file, under the file's path: an error from a write or the
    close names the path (``named``). It lies beneath the 64 KiB buffer, so it runs once per
    buffer written, not once per record."""

    def __init__(self, fd: int, path: str) -> None:
        super().__init__(fd, "wb")
        self.name = path

    def write(self, data) -> Optional[int]:
        try:
            return super().write(data)
        except OSError as e:
            named(e, self.name)
            raise

    def close(self) -> None:
        try:
            super().close()
        except OSError as e:
            named(e, self.name)
            raise


class PcapReader:
    """Iterates ``(ts_ns, data, wire_len)`` over a pcap or pcapng file; ``packets()`` adds each
    record's link type (``xdptcp.linktypes`` reads what they carry)."""

    def __init__(self, file_or_path: PathOrFile) -> None:
        if file_or_path == "-":  # tcpdump's `-r -`: the standard input
            file_or_path = sys.stdin.buffer
        self._owned = isinstance(file_or_path, (str, os.PathLike))
        if self._owned:
            self.name = os.fspath(file_or_path)
            try:
                self._in: BinaryIO = open(self.name, "rb")  # noqa: SIM115 (closed by close())
            except OSError as e:
                raise PcapError(f"{self.name}: cannot open: {e.strerror}") from None
        else:
            self._in = file_or_path
            name = getattr(file_or_path, "name", "pcap file")
            self.name = "-" if name == "<stdin>" else str(name)
        head = self._in.read(24)
        if len(head) < 4:
            self.close()
            n = len(head)
            raise PcapError(f"{self.name}: not a pcap file (only {n} byte{'' if n == 1 else 's'})")
        (magic,) = struct.unpack("<I", head[:4])
        self.pcapng = magic == PCAPNG_MAGIC
        if self.pcapng:
            self._head, first = _first_interface(self._in, head)
            self.nano, self.snaplen, self.linktype = False, MAX_RECORD, LINKTYPE_ETHERNET
            self.linktype_ext = 0
            # libpcap takes a pcapng file's link type and snapshot length from its first
            # interface (what ``tcpdump -r F -w OUT`` writes in the copy's header)
            self.first_interface = first
            return
        for order in "<>":
            (m,) = struct.unpack(order + "I", head[:4])
            if m in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO):
                break
        else:
            self.close()
            raise PcapError(f"{self.name}: not a pcap file (magic 0x{magic:08x})")
        if len(head) < 24:
            self.close()
            raise PcapError(f"{self.name}: truncated pcap file header ({len(head)} of 24 bytes)")
        self._order = order
        _, _, _, _, _, self.snaplen, linktype = _FILE_HEADER[order].unpack(head)
        self.nano = m == PCAP_MAGIC_NANO
        # libpcap's linktype_ext: the upper bits (an FCS length), which a copy's header keeps
        self.linktype, self.linktype_ext = linktype & 0xFFFF, linktype & 0xFFFF0000

    def __iter__(self) -> Iterator[tuple[int, bytes, int]]:
        """(ts_ns, data, wire_len) of every record, whatever its link type."""
        for ts, data, wire, _ in self.packets():
            yield ts, data, wire

    def packets(self) -> Iterator[tuple[int, bytes, int, int]]:
        """(ts_ns, data, wire_len, link type) of every record: a pcapng file may hold
        interfaces of several link types."""
        if self.pcapng:
            f = _Prefixed(self._head[24:], self._in) if len(self._head) > 24 else self._in
            yield from _pcapng_records(f, self._head[:24], self.name)
            return
        linktype = self.linktype
        read, rec = self._in.read, _RECORD[self._order]
        nano, limit = self.nano, snapshot_limit(self.snaplen)
        mult, per_sec = (1, 1_000_000_000) if nano else (1000, 1_000_000)
        native = self._order == ("<" if sys.byteorder == "little" else ">")
        n = 0
        while True:
            head = read(16)
            n += 1
            if not head:
                return
            if len(head) < 16:
                raise PcapError(
                    f"{self.name}: record {n}: truncated record header ({len(head)} of 16 bytes)"
                )
            sec, frac, incl, orig = rec.unpack(head)
            if incl > MAX_RECORD:
                raise PcapError(
                    f"{self.name}: record {n}: captured length {incl} is bogus "
                    f"(more than {MAX_RECORD}); the file is damaged"
                )
            data = read(incl)
            if len(data) < incl:
                raise PcapError(
                    f"{self.name}: record {n}: truncated data ({len(data)} of {incl} bytes)"
                )
            if incl > limit:  # longer than the file's snapshot: libpcap hands it over cut
                data = data[:limit]
            if frac < per_sec and sec < 0x80000000:
                yield (sec * 1_000_000_000 + frac * mult, data, orig, linktype)
            else:
                yield (FieldStamp(sec, frac, nano, native), data, orig, linktype)

    def close(self) -> None:
        if self._owned and self._in is not None:
            self._in.close()
        self._in = None

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_pcap(path: PathOrFile) -> list[tuple[int, bytes, int]]:
    """Every record of a file (small files and tests)."""
    with PcapReader(path) as r:
        return list(r)


# ---- pcapng ----------------------------------------------------------------------------------

_SHB, _IDB, _SPB, _EPB = 0x0A0D0D0A, 1, 3, 6
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_MAX_BLOCK = MAX_RECORD + 4096  # a packet block never needs more; anything else is skipped


_PEEK = 1 << 16  # the most bytes read ahead for the first interface


def _first_interface(f: BinaryIO, head: bytes) -> tuple[bytes, Optional[tuple[int, int]]]:
    """``(bytes read, (link type, snaplen))`` of the interface description block right after
    the first section header, read ahead of the packets; None in its place when the block
    after the section header is something else, or anything looks damaged (the records'
    reader reports that where it comes)."""
    if len(head) < 24:
        return head, None
    order = "<" if struct.unpack_from("<I", head, 8)[0] == _BYTE_ORDER_MAGIC else ">"
    (shb_len,) = struct.unpack_from(order + "I", head, 4)
    if shb_len < 28 or shb_len % 4 or shb_len > _PEEK:
        return head, None
    data = head + f.read(shb_len + 16 - len(head))  # the section header, the next block's head
    if len(data) < shb_len + 16:
        return data, None
    btype, blen, linktype, _, snaplen = struct.unpack_from(order + "IIHHI", data, shb_len)
    if btype != _IDB or blen < 20 or blen % 4 or blen > _PEEK:
        return data, None
    data += f.read(blen - 16)
    if len(data) < shb_len + blen:
        return data, None
    return data, (linktype, snaplen)


class _Prefixed:
    """A file's ``read`` and ``seek`` (forward, from the current position) with bytes already
    read from it in front. Once those are used up, ``read`` is the file's own: the records'
    reader calls it twice a packet."""

    def __init__(self, prefix: bytes, f: BinaryIO) -> None:
        self._prefix, self._f = prefix, f

    def read(self, n: int) -> bytes:
        got, self._prefix = self._prefix[:n], self._prefix[n:]
        if not self._prefix:
            self.read = self._f.read  # the prefix is spent
        return got + self._f.read(n - len(got)) if len(got) < n else got

    def seek(self, n: int, whence: int) -> None:
        done = min(n, len(self._prefix))
        self._prefix = self._prefix[done:]
        if not self._prefix:
            self.read = self._f.read
        if n > done:
            _skip(self._f, n - done)


def _skip(f: Any, n: int) -> None:
    """Pass over ``n`` bytes of ``f``: seeking where it can, reading where it cannot (a pipe,
    ``-r -``). Bytes the file does not have end it, as a seek past its end does."""
    try:
        f.seek(n, os.SEEK_CUR)
        return
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        pass
    while n > 0:
        chunk = f.read(min(n, 1 << 16))
        if not chunk:
            return
        n -= len(chunk)


def _pcapng_records(f: BinaryIO, head: bytes, name: str) -> Iterator[tuple[int, bytes, int, int]]:
    """Enhanced/simple packet blocks of every section, timestamps scaled by ``if_tsresol``."""
    buf = head
    order = "<"
    # (linktype, ticks per second, snapshot_limit of its snaplen) per interface
    ifaces: list[tuple[int, int, int]] = []
    n = 0
    while True:
        need = 8 - len(buf)
        if need > 0:
            buf += f.read(need)
        if not buf:
            return
        n += 1
        if len(buf) < 8:
            raise PcapError(f"{name}: block {n}: truncated block header ({len(buf)} of 8 bytes)")
        btype = struct.unpack_from("<I", buf)[0]
        if btype == _SHB:
            rest = buf[8:12] if len(buf) >= 12 else buf[8:] + f.read(12 - len(buf))
            if len(rest) < 4:
                raise PcapError(f"{name}: block {n}: truncated section header")
            order = "<" if struct.unpack("<I", rest)[0] == _BYTE_ORDER_MAGIC else ">"
            ifaces = []
        btype, blen = struct.unpack_from(order + "II", buf)
        if blen < max(12, len(buf)) or blen % 4 or blen > 1 << 24:
            raise PcapError(f"{name}: block {n}: bogus block length {blen}; the file is damaged")
        body = f.read(blen - len(buf)) if btype in (_SHB, _IDB, _SPB, _EPB) else None
        if body is None:
            if blen > _MAX_BLOCK:
                _skip(f, blen - len(buf))
            else:
                body = f.read(blen - len(buf))
                if len(body) < blen - len(buf):
                    raise PcapError(f"{name}: block {n}: truncated block")
            buf = b""
            continue
        block = buf[8:] + body
        buf = b""
        if len(block) < blen - 8:
            raise PcapError(f"{name}: block {n}: truncated ({len(block) + 8} of {blen} bytes)")
        if btype == _IDB:
            ifaces.append(_interface(block, order, name, n))
        elif btype == _EPB:
            iface, hi, lo, incl, orig = struct.unpack_from(order + "IIIII", block)
            if iface >= len(ifaces) or incl > MAX_RECORD or 20 + incl > len(block):
                raise PcapError(f"{name}: block {n}: bad enhanced packet block")
            linktype, per_second, snap = ifaces[iface]
            if incl > snap:  # libpcap refuses it (a classic pcap's it cuts)
                raise PcapError(
                    f"{name}: block {n}: captured length {incl} is more than the interface's "
                    f"snapshot length {snap}; the file is damaged"
                )
            yield _ns((hi << 32) | lo, per_second), block[20 : 20 + incl], orig, linktype
        elif btype == _SPB and ifaces:
            (orig,) = struct.unpack_from(order + "I", block)
            incl = min(orig, len(block) - 8, ifaces[0][2])
            yield 0, block[4 : 4 + incl], orig, ifaces[0][0]


def _interface(block: bytes, order: str, name: str, n: int) -> tuple[int, int, int]:
    if len(block) < 12:  # link type, reserved, snaplen and the closing length
        raise PcapError(f"{name}: block {n}: bad interface description block")
    linktype, _, snaplen = struct.unpack_from(order + "HHI", block)
    ticks, i = 1_000_000, 8
    while i + 4 <= len(block) - 4:
        code, olen = struct.unpack_from(order + "HH", block, i)
        if code == 0:
            break
        if code == 9 and olen >= 1:  # if_tsresol: 10^-v, or 2^-v with the top bit set
            v = block[i + 4]
            ticks = 1 << (v & 0x7F) if v & 0x80 else 10**v
        i += 4 + (olen + 3) // 4 * 4
    return linktype, ticks, snapshot_limit(snaplen)


def _ns(ticks: int, per_second: int) -> int:
    sec, frac = divmod(ticks, per_second)
    return sec * 1_000_000_000 + frac * 1_000_000_000 // per_second
