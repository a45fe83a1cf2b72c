"""Values as their BTF type says: bytes of a map key, map value or event turned into JSON data.

The rules are bpftool's (``btf_dumper.c``, what ``bpftool map dump -j`` prints under
"formatted"), so a value reads the same in both tools:

- integers by their width and sign; a ``bool`` is true/false; a 128-bit integer, and a bitfield
  (an int that does not start or end on a byte boundary), is a hex string ``"0x1f"``;
- a ``char`` (BTF_INT_CHAR) is a one-character string, ``"\\u00XX"`` when not printable;
- an array of ``char`` is a string when a NUL ends a run of printable characters; any other
  array is a list;
- an enum is its enumerator's name, or the number when no enumerator has that value;
- a struct or union is an object of its members; a pointer is its value as a number;
- a variable (``.data``/``.bss`` section maps) is ``{name: value}``, a section
  ``{section: [vars]}``.

Where bpftool stops with "(unsupported-kind)" (floats), the value is the float. Nothing here
makes a system call (rule 1): the bytes come from whoever read them.

:func:`log2_hist_slots` recognises libbpf-tools' histogram values (``struct hist { __u32
slots[N]; ... }``) and :func:`format_log2_hist` draws them as ``print_log2_hist`` does.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Optional

from pybpf.btf.model import TypeQueries
from pybpf.btf.types import (
    MODIFIERS,
    Array,
    Datasec,
    Enum,
    Float,
    Fwd,
    Int,
    IntEncoding,
    Ptr,
    Struct,
    Typedef,
    Var,
    Void,
)
from pybpf.errors import BTFError

_MAX_DEPTH = 32  # nested types deeper than this are damage, not C


Reader = Callable[[bytes, int], Any]  # (data, byte offset) -> value


class Bare(str):
    """A hex string bpftool's plain text prints without quotes (a bitfield, a 128-bit int);
    in JSON it is the string it is."""


class Pointer(int):
    """A pointer's value: a number in JSON, ``%p`` (``(nil)``, ``0x7f...``) in plain text."""


def btf_value(btf: TypeQueries, type_id: int, data: bytes, little_endian: bool = True) -> Any:
    """The JSON value (dict/list/int/str/bool/float) of ``data`` read as type ``type_id``.

    ``data`` may be longer than the type (a padded perf sample); BTFError if it is shorter.
    To read many values of one type, keep a :class:`ValueReader`: it prepares each type once."""
    return ValueReader(btf, little_endian)(type_id, data)


class ValueReader:
    """Reads values of the types of one BTF. The first read of a type turns it into a tree of
    small functions (a struct's members with their offsets, an int's ``struct.Struct``...),
    kept for the next reads: the per-value work is then only the unpacking (an event of
    seven members: ~80 µs walking the types each time, ~10 µs prepared)."""

    def __init__(self, btf: TypeQueries, little_endian: bool = True) -> None:
        self.btf = btf
        self.little = little_endian
        self.order = "little" if little_endian else "big"
        self._endian = "<" if little_endian else ">"
        self._readers: dict[int, tuple[int, Reader]] = {}

    def __call__(self, type_id: int, data: bytes) -> Any:
        size, read = self.prepared(type_id)
        if len(data) < size:
            raise BTFError(
                f"{len(data)} bytes cannot hold {self.btf.format(type_id)} ({size} bytes)"
            )
        return read(bytes(data), 0)

    def prepared(self, type_id: int) -> tuple[int, Reader]:
        """(size, reader) of a type, prepared on first use."""
        got = self._readers.get(type_id)
        if got is None:
            got = self._readers[type_id] = (self.btf.sizeof(type_id), self._build(type_id, 0, 0))
        return got

    def _build(self, type_id: int, bit_off: int, depth: int) -> Reader:
        if depth > _MAX_DEPTH:
            raise BTFError(f"BTF type {type_id}: nested too deep to format")
        t = self.btf.type(type_id)
        if isinstance(t, MODIFIERS):
            return self._build(t.type, bit_off, depth + 1)
        if isinstance(t, Int):
            return self._int(t, bit_off)
        if isinstance(t, Struct):  # unions too: each member read from the same bytes
            return self._struct(t, depth)
        if isinstance(t, Array):
            return self._array(t, depth)
        if isinstance(t, Enum):  # and Enum64
            return self._enum(t)
        if isinstance(t, Ptr):
            value = self._unpack("Q")
            return lambda data, off: Pointer(value(data, off))
        if isinstance(t, Float):
            fmt = {2: "e", 4: "f", 8: "d"}.get(t.size)
            if fmt is None:
                size = t.size
                return lambda data, off: "0x" + data[off : off + size].hex()
            return self._unpack(fmt)
        if isinstance(t, Var):
            inner = self._build(t.type, bit_off, depth + 1)
            name = t.name
            return lambda data, off: {name: inner(data, off)}
        if isinstance(t, Datasec):
            parts = [(v.offset, self._build(v.type_id, 0, depth + 1)) for v in t.vars]
            sec = t.name
            return lambda data, off: {sec: [r(data, off + o) for o, r in parts]}
        if isinstance(t, Void):
            return lambda data, off: "(unknown)"
        if isinstance(t, Fwd):
            raise BTFError(f"BTF type {type_id}: a forward declaration has no value")
        raise BTFError(f"BTF type {type_id} ({t.kind.name}) has no value to format")

    def _unpack(self, fmt: str) -> Reader:
        unpack = struct.Struct(self._endian + fmt).unpack_from
        return lambda data, off: unpack(data, off)[0]

    def _int(self, t: Int, bit_off: int) -> Reader:
        bits = t.bits or t.size * 8
        if bit_off or t.offset or bits % 8:  # a bitfield: bpftool prints it in hex
            return self._bitfield(bit_off + t.offset, bits)
        if bits == 128:
            order = self.order
            return lambda data, off: Bare(hex(int.from_bytes(data[off : off + 16], order)))
        if t.encoding & IntEncoding.BOOL:
            n = bits // 8
            return lambda data, off: data[off : off + n] != bytes(n)
        if t.encoding & IntEncoding.CHAR:
            # json.dumps writes an unprintable one as \u00XX, as bpftool does
            return lambda data, off: chr(data[off])
        fmt = {8: "b", 16: "h", 32: "i", 64: "q"}.get(bits)
        if fmt is None:
            return self._bitfield(0, bits)
        return self._unpack(fmt if t.encoding & IntEncoding.SIGNED else fmt.upper())

    def _bitfield(self, bit_off: int, nbits: int) -> Reader:
        start, bit_off = bit_off // 8, bit_off % 8
        nbytes = (bit_off + nbits + 7) // 8
        # big-endian bitfields count from the most significant bit
        shift = bit_off if self.little else nbytes * 8 - bit_off - nbits
        mask, order = (1 << nbits) - 1, self.order

        def read(data: bytes, off: int) -> str:
            at = off + start
            return Bare(hex((int.from_bytes(data[at : at + nbytes], order) >> shift) & mask))

        return read

    def _struct(self, t: Struct, depth: int) -> Reader:
        members = []
        for m in t.members:
            if m.bitfield_size:
                read = self._bitfield(m.bit_offset % 8, m.bitfield_size)
            else:
                read = self._build(m.type_id, m.bit_offset % 8, depth + 1)
            members.append((m.name, read, m.bit_offset // 8))
        return lambda data, off: {name: r(data, off + o) for name, r, o in members}

    def _array(self, t: Array, depth: int) -> Reader:
        n = t.nelems
        if not n:
            return lambda data, off: []
        step = self.btf.sizeof(t.type)
        elem = self._build(t.type, 0, depth + 1)

        def read(data: bytes, off: int) -> list:
            return [elem(data, off + i * step) for i in range(n)]

        if not self._is_char(t.type):
            return read

        def read_chars(data: bytes, off: int) -> Any:
            text = data[off : off + n]
            end = text.find(b"\0")
            if end >= 0 and all(0x1F < c < 0x7F for c in text[:end]):
                return text[:end].decode("ascii")
            return read(data, off)

        return read_chars

    def _is_char(self, type_id: int) -> bool:
        # As bpftool: qualifiers are looked through, a typedef is not (a u8 array is no string).
        t = self.btf.type(type_id)
        for _ in range(_MAX_DEPTH):
            if not isinstance(t, MODIFIERS) or isinstance(t, Typedef):
                break
            t = self.btf.type(t.type)
        if not isinstance(t, Int) or t.size != 1:
            return False
        return bool(t.encoding & IntEncoding.CHAR) or t.name == "char"

    def _enum(self, t: Enum) -> Reader:
        size, order = t.size, self.order
        names: dict[int, str] = {}
        for v in reversed(t.values):  # the first enumerator of a value wins, as in bpftool
            names[v.value] = v.name
            names[v.value % (1 << (8 * size))] = v.name  # also as the unsigned bits read

        def read(data: bytes, off: int) -> Any:
            raw = data[off : off + size]
            unsigned = int.from_bytes(raw, order)
            name = names.get(unsigned)
            # bpftool's jsonw_int: signed, whatever the enum's size
            return name if name is not None else int.from_bytes(raw, order, signed=True)

        return read


# --- log2 histograms -------------------------------------------------------------------------


def log2_hist_slots(btf: TypeQueries, type_id: int) -> Optional[str]:
    """If values of ``type_id`` are libbpf-tools histograms, the name of their slot array.

    Recognised: a struct with a member ``slots`` that is an array of unsigned 32- or 64-bit
    integers (``struct hist { __u32 slots[MAX_SLOTS]; }``, runqlat's per-pid ``struct hist``
    with a ``comm`` beside it), or a value that is such an array itself (returned as "")."""
    t = btf.type(btf.resolve(type_id))
    if isinstance(t, Array):
        return "" if _is_counter_array(btf, t) else None
    if isinstance(t, Struct):
        for m in t.members:
            if m.name == "slots" and not m.bitfield_size:
                mt = btf.type(btf.resolve(m.type_id))
                if isinstance(mt, Array) and _is_counter_array(btf, mt):
                    return "slots"
    return None


def _is_counter_array(btf: TypeQueries, t: Array) -> bool:
    elem = btf.type(btf.resolve(t.type))
    return (
        t.nelems > 0
        and isinstance(elem, Int)
        and elem.size in (4, 8)
        and not elem.encoding & IntEncoding.SIGNED
    )


def format_log2_hist(counts: list[int], label: str = "value") -> list[str]:
    """The lines libbpf-tools' ``print_log2_hist(vals, n, label)`` prints (none when all zero).

    Slot i counts values in [2^i .. 2^(i+1)-1] (slot 0: 0..1), with a bar of up to 40 stars
    (20 when a slot past 32 is used) scaled to the largest count."""
    idx_max = max((i for i, v in enumerate(counts) if v > 0), default=-1)
    if idx_max < 0:
        return []
    val_max = max(counts)
    small = idx_max <= 32
    stars = 40 if small else 20
    width = 10 if small else 20
    lines = [f"{'':{5 if small else 15}}{label:<{19 if small else 29}} : count    distribution"]
    for i in range(idx_max + 1):
        low = (1 << (i + 1)) >> 1
        high = (1 << (i + 1)) - 1
        if low == high:
            low -= 1
        val = counts[i]
        # unsigned int arithmetic, as in the C original
        n = ((min(val, val_max) * stars) & 0xFFFFFFFF) // val_max
        bar = "*" * n + " " * (stars - n) + ("+" if val > val_max else "")
        lines.append(f"{low:>{width}} -> {high:<{width}} : {val:<8} |{bar}|")
    return lines
