"""``-r F`` text with the record walk, and most lines, made in the kernel.

``xdptcp -r F`` spends most of its time making each line in Python. Where it can, this module
has a BPF program make them (``bpf/xdptcp_text.bpf.c``, shipped compiled as
``xdptcp/data/xdptcp_text.bpf.o``): a chunk of the file read straight into an mmapped array
map, as the record walker of ``-r F -w OUT`` reads it (``xdptcp.walk``), the program run over
it with ``BPF_PROG_TEST_RUN``, its lines read back from its mmapped .bss. It prints the usual
segment (see the program's text); every other record it hands back, and
``TextFormatter.format`` prints it here, in its place. A payload that tcpdump decodes by its
ports (``xdptcp.appproto``) gets the decoder's text from Python, after the program's line. So
the lines are the Python walk's, byte for byte; tests compare the two, and tcpdump's.

One table of relative sequence numbers serves both: the program keeps it (a hash map), and
while the walk lasts the formatter's ``SeqTracker`` reads and writes that map
(``KernelConversations``) for the records Python prints. The program stops after each record
it hands back that may be TCP, so that Python's line reads and changes the table in file order.
The local time's offset from UTC is given to the program for a span of time without a change
of zone (``time_span``); it stops at a record outside it, and goes on with the next span's.
IPv6 addresses are written by Python (RFC 5952): the program stops at the first segment of
each IPv6 direction until it has its text.

Used by ``xdptcp -r`` (``kernel_batches``, which ``xdptcp.mapped.print_mapped`` asks) for a
classic Ethernet pcap in this machine's byte order with microsecond times, printed as
tcpdump's default lines (no -t options, -e, -q, -v, -x..., -#) without a filter, when the
file is large enough for the program's load to pay (``MIN_FILE``). It needs ``CAP_BPF`` (root)
and Linux 5.17 (``bpf_loop``); ``open_text_walker`` returns None whenever it cannot load, and
``XDPTCP_OFFLINE_KERNEL=0`` asks for the Python walk (as for ``xdptcp.walk``): the Python walk
then prints everything. Nothing outlives the walk: no pin, no attachment, every fd closed.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
import time
from _socket import AF_INET, AF_INET6, inet_pton  # not socket: see xdptcp.gso

OBJECT = "xdptcp_text.bpf.o"
PROGRAM, CLEAR = "xdptcp_text", "xdptcp_text_clear"
IN_MAP = "xdptcp_text_in"
CONV_MAP, HEADS_MAP = "xdptcp_text_conv", "xdptcp_text_heads"
FLAGS_MAP, PORTS_MAP, SAID_MAP = "xdptcp_text_flags", "xdptcp_text_ports", "xdptcp_text_said"
ENV = "XDPTCP_OFFLINE_KERNEL"  # 0: never; 1: whatever the file's size; unset: MIN_FILE on
# The program's load and verification take some 70 ms here; Python makes a line in some 1.8 µs
# and the program in 0.4: below this many bytes of records it does not pay.
MIN_FILE = 4 << 20

# The variable xt of .bss: struct xt_state, then the entries, then the text
# (bpf/xdptcp_text.bpf.c); where xt lies in .bss, its symbol says (TextWalker's ``at``)
STATE = 72
COUNT_AT = 52  # xt_state.count
ENTRIES, ENTRY = 8192, 16  # XT_ENTRIES, and the bytes of one
TEXT_AT = STATE + ENTRY * ENTRIES
STOP_MORE, STOP_LIMIT, STOP_FULL, STOP_HEAD, STOP_TIME, STOP_LOOK = range(6)
NOT_RUN = 0xFF

_REC = struct.Struct("=IIII").unpack_from
_KEY = struct.Struct("=BBHH16s16s")  # struct xt_key
_BASES = struct.Struct("=II")  # struct xt_bases
_WORD = struct.Struct("=I16s")  # struct xt_word
_COUNT = struct.Struct("=I")


def __getattr__(name: str):
    """``TextCtx`` and ``TextWalker``, made on first use: they need ctypes, which a ``-r`` of a
    file the program does not print has no use for (some 3 ms of its start)."""
    if name in ("TextCtx", "TextWalker"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_CLASSES: dict = {}


def _classes() -> dict:
    if _CLASSES:
        return _CLASSES
    import ctypes

    from xdptcp.walk import MappedObject, pages

    class TextCtx(ctypes.Structure):
        """``struct xt_ctx``: the program's context, in and out."""

        _fields_ = [
            ("pos", ctypes.c_uint32),
            ("end", ctypes.c_uint32),
            ("limit", ctypes.c_uint32),
            ("snap", ctypes.c_uint32),
            ("tz_off", ctypes.c_int32),
            ("tz_lo", ctypes.c_uint32),
            ("tz_hi", ctypes.c_uint32),
            ("absolute", ctypes.c_uint32),
            ("conv_max", ctypes.c_uint32),
            ("n", ctypes.c_uint32),
            ("lines", ctypes.c_uint32),
            ("looks", ctypes.c_uint32),
            ("len", ctypes.c_uint32),
            ("stop", ctypes.c_uint32),
        ]

    class TextWalker(MappedObject):
        """The loaded program: its maps filled and mapped, its runs prepared once."""

        def __init__(self, obj, at: int) -> None:
            """``at``: the offset of the variable ``xt`` in .bss."""
            from pybpf.sys.progcmd import prog_run_in_place

            super().__init__(obj)
            self._state, self._text, self._count = at + STATE, at + TEXT_AT, at + COUNT_AT
            try:
                inp = obj.maps[IN_MAP]
                bss = next(m for name, m in obj.maps.items() if name.endswith(".bss"))
                self.buf = mmap.mmap(inp.fd, pages(inp.value_size))
                self._out = mmap.mmap(bss.fd, pages(bss.value_size))
                self.conv = obj.maps[CONV_MAP]
                self.heads = obj.maps[HEADS_MAP]
                self.ctx = TextCtx()
                self.run = prog_run_in_place(obj.programs[PROGRAM].fd, self.ctx, PROGRAM)
                self._clear = prog_run_in_place(obj.programs[CLEAR].fd, TextCtx(), CLEAR)
                _fill(obj)
            except BaseException:
                self.close()
                raise

        def entries(self, n: int) -> list[int]:
            """The first ``n`` entries, flat, four numbers each (``struct xt_out``'s text)."""
            at = self._state
            with memoryview(self._out) as whole:
                part = whole[at : at + ENTRY * n]
                with part, part.cast("I") as e:
                    return e.tolist()

        def text(self, n: int) -> str:
            return self._out[self._text : self._text + n].decode("ascii")

        @property
        def count(self) -> int:
            return _COUNT.unpack_from(self._out, self._count)[0]

        @count.setter
        def count(self, n: int) -> None:
            _COUNT.pack_into(self._out, self._count, n)

        def clear(self) -> None:
            self._clear()

    _CLASSES.update(TextCtx=TextCtx, TextWalker=TextWalker)
    return _CLASSES


def _fill(obj) -> None:
    """What the program looks up: tcpdump's flags texts, the decoders by port, their words."""
    from pybpf.sys import mapcmd
    from xdptcp.appproto import _PORTS, WORDLESS
    from xdptcp.tcpdump import FLAG_CLOSE

    flags, ports, said = obj.maps[FLAGS_MAP], obj.maps[PORTS_MAP], obj.maps[SAID_MAP]
    for f, text in enumerate(FLAG_CLOSE):
        raw = text.encode("ascii")
        mapcmd.map_update_elem(flags.fd, struct.pack("=I", f), _WORD.pack(len(raw), raw))
    words = list(WORDLESS.items())
    if len(words) > 8:
        raise ValueError("more decoders that print their name alone than the program holds")
    for i, (_, text) in enumerate(words):
        raw = text.encode("ascii")
        mapcmd.map_update_elem(said.fd, struct.pack("=I", i), _WORD.pack(len(raw), raw))
    kinds = {name: 2 + i for i, (name, _) in enumerate(words)}
    for port, (rank, name) in _PORTS.items():
        kind = 0 if not name else kinds.get(name, 1)
        value = 0x8000 | rank << 4 | kind
        mapcmd.map_update_elem(ports.fd, struct.pack("=I", port), struct.pack("=H", value))


def open_text_walker():
    """The program, loaded, or None when it cannot be had here (the caller walks in Python):
    not root, no bpf_loop, any refusal, or ``XDPTCP_OFFLINE_KERNEL=0``."""
    if os.environ.get(ENV, "1") == "0":
        return None
    # Whatever stops it (BPFError from the kernel, OSError, a damaged package's object...), the
    # program is only a faster way to the same lines: the Python walk takes over, without a word.
    try:
        from pybpf import load
        from xdptcp.capture import shipped_object

        spec = shipped_object(OBJECT)
        obj = load(spec)
    except Exception:
        return None
    try:
        walker = _classes()["TextWalker"](obj, spec.variables["xt"].offset)
    except Exception:
        return None
    from xdptcp.mapped import CHUNK
    from xdptcp.pcap import MAX_RECORD

    if len(walker.buf) < CHUNK + MAX_RECORD + 16 + 256:  # an object built otherwise
        walker.close()
        return None
    return walker


def usable(formatter, mp, keep) -> bool:
    """Whether the program can print ``mp``'s lines as ``formatter`` makes them: a file of
    microsecond times, large enough, tcpdump's default lines, no filter."""
    from xdptcp.tcpdump import TextFormatter

    if keep is not None or type(formatter) is not TextFormatter or not formatter.walks:
        return False
    if formatter.show_ifname or formatter.clock.mode != "default" or formatter.clock.nano:
        return False
    if mp.nano or getattr(mp, "slot", 0) or not hasattr(mp, "fileno"):
        return False
    asked = os.environ.get(ENV)
    if asked is not None:
        return asked != "0"
    try:
        return os.fstat(mp.fileno()).st_size >= MIN_FILE
    except OSError:
        return False


TZ_PYTHON = 0x7FFFFFFF  # XT_TZ_PYTHON: the program hands the span's records back


def time_span(sec: int) -> tuple[int, int, int]:
    """(offset, lo, hi): the time of day ``time.localtime`` gives is (``t`` + offset) modulo a
    day for every second ``t`` in [lo, hi), which holds ``sec``: the hour around it when both
    its ends have the same offset (zones change at most a few times a year), else ``sec``
    alone (a zone's change within the hour, or a zone that counts leap seconds). A leap
    second, which such a zone prints as 23:59:60, is left to Python (TZ_PYTHON)."""
    lo = sec - sec % 3600
    off = _offset(lo)
    if off == _offset(lo + 3599):
        return off, lo, lo + 3600
    if time.localtime(sec).tm_sec == 60:
        return TZ_PYTHON, sec, sec + 1
    return _offset(sec), sec, sec + 1


def _offset(sec: int) -> int:
    """The offset, from 0 to a day less a second, that gives ``time.localtime(sec)``'s time of
    day."""
    t = time.localtime(sec)
    return (t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec - sec) % 86400


class KernelConversations:
    """``SeqTracker``'s table as the program keeps it: what ``TextFormatter`` asks of its dict
    (``get``, ``len``, set, ``clear``), answered from the program's hash map, for the records
    Python prints while the program walks."""

    def __init__(self, walker) -> None:
        from pybpf.sys import mapcmd

        self._w, self._fd, self._cmd = walker, walker.conv.fd, mapcmd
        self._keys: dict[tuple, bytes] = {}

    def _key(self, key: tuple) -> bytes:
        raw = self._keys.get(key)
        if raw is None:
            src, dst, sport, dport = key
            family, ver = (AF_INET6, 6) if ":" in src else (AF_INET, 4)
            raw = _KEY.pack(ver, 0, sport, dport, inet_pton(family, src), inet_pton(family, dst))
            if len(self._keys) >= 4096:
                self._keys.clear()
            self._keys[key] = raw
        return raw

    def get(self, key: tuple, default=None):
        found = self._cmd.map_lookup_elem(self._fd, self._key(key), _BASES.size)
        return default if found is None else _BASES.unpack(found)

    def __len__(self) -> int:
        return self._w.count

    def __setitem__(self, key: tuple, bases: tuple) -> None:
        from pybpf.errors import SyscallError
        from pybpf.sys.uapi import BPF_EXIST, BPF_NOEXIST

        raw, value = self._key(key), _BASES.pack(*bases)
        try:
            self._cmd.map_update_elem(self._fd, raw, value, flags=BPF_NOEXIST)
        except SyscallError as e:
            if e.errno != errno.EEXIST:
                raise
            self._cmd.map_update_elem(self._fd, raw, value, flags=BPF_EXIST)
            return
        self._w.count += 1

    def clear(self) -> None:
        self._w.clear()


class Batch(list):
    """Lines to write, joined by newlines: an item may hold the lines of several records
    (``records`` of them in all)."""

    records = 0


def kernel_batches(formatter, mp, keep, count):
    """``formatter.mapped_lines(mp, keep, count)``'s batches made by the program, or None when
    it cannot make them (``usable``, ``open_text_walker``)."""
    if not usable(formatter, mp, keep):
        return None
    walker = open_text_walker()
    if walker is None:
        return None
    return _closing(walker, kernel_lines(formatter, mp, walker, count))


def _closing(walker, batches):
    with walker:
        yield from batches


def kernel_lines(formatter, mp, walker, count):
    """``TextFormatter.mapped_lines`` with the program making the lines it can: ``Batch``es,
    the same text in the same order."""
    from xdptcp import tcpdump
    from xdptcp.appproto import _ORDER, note
    from xdptcp.mapped import damaged
    from xdptcp.pcap import MAX_RECORD, record_stamp

    ctx, run = walker.ctx, walker.run
    ctx.snap, ctx.absolute = mp.limit, 1 if formatter.absolute_seq else 0
    ctx.conv_max = tcpdump.FLOW_TABLE_MAX
    ctx.tz_off = ctx.tz_lo = ctx.tz_hi = 0
    fmt, nano, limit = formatter.format, mp.nano, mp.limit
    left = None if count is None else max(count, 1)
    seqs = formatter.seqs
    table = KernelConversations(walker)
    python_flows = seqs._flows
    seqs._flows = formatter._seq_flows = table
    try:
        for mm, pos, end in mp.chunks(walker.buf):
            while True:
                ctx.pos, ctx.end = pos, end
                ctx.limit = 0 if left is None else left
                ctx.n = ctx.lines = ctx.looks = ctx.len = 0
                ctx.stop = NOT_RUN
                run()
                if ctx.stop == NOT_RUN:  # (open_text_walker checks the sizes: cannot happen)
                    from pybpf import BPFError

                    raise BPFError(f"the offline text walk refused the chunk {pos}..{end}")
                text = walker.text(ctx.len)
                lines = Batch()
                counts: list[int] = []  # the records each item of lines holds
                e = walker.entries(ctx.n)
                done = 0
                for i in range(0, len(e), 4):
                    upto, at, pay, word = e[i : i + 4]
                    if pay:  # the decoder's text, before the line's newline at upto
                        length, app = word & 0xFFFF, _ORDER[word >> 20 & 0xFF][1]
                        cap = at + 16 + _REC(mm, at)[2]  # the record's captured end
                        made = text[done:upto]
                        lines.append(made + note(app, mm, pay, min(cap, pay + length), length))
                        counts.append(made.count("\n") + 1)
                        done = upto + 1
                        continue
                    if upto > done:
                        lines.append(text[done : upto - 1])
                        counts.append(text.count("\n", done, upto))
                        done = upto
                    sec, frac, incl, orig = _REC(mm, at)
                    if incl > MAX_RECORD:
                        if lines:
                            yield lines
                        raise damaged(mp, mp.base + at, end - at - 16, incl)
                    stop = at + 16 + min(incl, limit)
                    if orig <= MAX_RECORD:
                        line = fmt(record_stamp(sec, frac, nano), mm[at + 16 : stop], orig, "",
                                   "", None)  # fmt: skip
                    else:  # longer than tcpdump takes: its note in the packet's place
                        line = formatter.damaged(0, mm[at + 16 : stop], orig, incl)
                    if line is not None:
                        lines.append(line)
                        counts.append(1)
                if ctx.len > done:
                    lines.append(text[done : ctx.len - 1])
                    counts.append(text.count("\n", done, ctx.len))
                pos = ctx.pos
                if lines:
                    if left is not None:
                        lines, left = _upto(lines, counts, left)
                    lines.records = sum(counts)  # (left None: _upto cut nothing)
                    yield lines
                    if left == 0:
                        return
                if ctx.stop == STOP_HEAD:
                    _make_head(formatter, walker, mm, pos)
                elif ctx.stop == STOP_TIME:
                    ctx.tz_off, ctx.tz_lo, ctx.tz_hi = time_span(_REC(mm, pos)[0])
                elif ctx.stop not in (STOP_FULL, STOP_LIMIT, STOP_LOOK):
                    break
            mp.rest = pos
    finally:
        seqs._flows = formatter._seq_flows = python_flows


def _upto(lines: list[str], counts: list[int], left: int) -> tuple[Batch, int]:
    """The batch cut to ``left`` records' lines, and how many are left after it; ``counts``
    (how many records each item holds) cut with it. An item of several records holds one line
    each but its last, which may be a line and a decoder's lines."""
    out = Batch()
    for i, (item, n) in enumerate(zip(lines, counts)):
        if n >= left:
            if n > left:  # the first left lines (each a record's, the last one's not among them)
                item = "\n".join(item.split("\n", left)[:left])
                counts[i] = left
            out.append(item)
            del counts[i + 1 :]
            return out, 0
        out.append(item)
        left -= n
    return out, left


def _make_head(formatter, walker, mm, pos: int) -> None:
    """The text of an IPv6 direction's addresses and ports, for the record at ``pos``."""
    from pybpf.sys import mapcmd

    at = pos + 16 + 14
    src, dst = bytes(mm[at + 8 : at + 24]), bytes(mm[at + 24 : at + 40])
    sport, dport = struct.unpack_from("!HH", mm, at + 40)
    # the formatter's own start of the line for the direction (what its fast path prints)
    head = formatter._new_flow(6, src, dst, sport, dport)[0].encode("ascii")
    key = _KEY.pack(6, 0, sport, dport, src, dst)
    mapcmd.map_update_elem(walker.heads.fd, key, struct.pack("=I124s", len(head), head))
