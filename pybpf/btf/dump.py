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
from typing import Any, Optional

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


def btf_value(btf: TypeQueries, type_id: int, data: bytes, little_endian: bool = True) -> Any:
    """The JSON value (dict/list/int/str/bool/float) of ``data`` read as type ``type_id``.

    ``data`` may be longer than the type (a padded perf sample); BTFError if it is shorter."""
    size = btf.sizeof(type_id)
    if len(data) < size:
        raise BTFError(f"{len(data)} bytes cannot hold {btf.format(type_id)} ({size} bytes)")
    return _Dumper(btf, little_endian).value(type_id, bytes(data), 0, 0, 0)


class _Dumper:
    def __init__(self, btf: TypeQueries, little_endian: bool) -> None:
        self.btf = btf
        self.order = "little" if little_endian else "big"
        self.little = little_endian

    def value(self, type_id: int, data: bytes, off: int, bit_off: int, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise BTFError(f"BTF type {type_id}: nested too deep to format")
        t = self.btf.type(type_id)
        if isinstance(t, MODIFIERS):
            return self.value(t.type, data, off, bit_off, depth + 1)
        if isinstance(t, Int):
            return self.int(t, data, off, bit_off)
        if isinstance(t, Struct):  # unions too: each member read from the same bytes
            return self.struct(t, data, off, depth)
        if isinstance(t, Array):
            return self.array(t, data, off, depth)
        if isinstance(t, Enum):  # and Enum64
            return self.enum(t, data, off)
        if isinstance(t, Ptr):
            return int.from_bytes(data[off : off + 8], self.order)
        if isinstance(t, Float):
            fmt = {4: "f", 8: "d"}.get(t.size)
            if fmt is None:
                return "0x" + data[off : off + t.size].hex()
            return struct.unpack_from(("<" if self.little else ">") + fmt, data, off)[0]
        if isinstance(t, Var):
            return {t.name: self.value(t.type, data, off, bit_off, depth + 1)}
        if isinstance(t, Datasec):
            return {
                t.name: [self.value(v.type_id, data, off + v.offset, 0, depth + 1) for v in t.vars]
            }
        if isinstance(t, Void):
            return "(unknown)"
        if isinstance(t, Fwd):
            raise BTFError(f"BTF type {type_id}: a forward declaration has no value")
        raise BTFError(f"BTF type {type_id} ({t.kind.name}) has no value to format")

    def int(self, t: Int, data: bytes, off: int, bit_off: int) -> Any:
        bits = t.bits or t.size * 8
        if bit_off or t.offset or bits % 8:  # a bitfield: bpftool prints it in hex
            return self.bitfield(data, off, bit_off + t.offset, bits)
        raw = data[off : off + bits // 8]
        if bits == 128:
            return hex(int.from_bytes(raw, self.order))
        if t.encoding & IntEncoding.BOOL:
            return raw != bytes(len(raw))
        if t.encoding & IntEncoding.CHAR:
            return chr(raw[0])  # json.dumps writes an unprintable one as \u00XX, as bpftool
        return int.from_bytes(raw, self.order, signed=bool(t.encoding & IntEncoding.SIGNED))

    def bitfield(self, data: bytes, off: int, bit_off: int, nbits: int) -> str:
        off += bit_off // 8
        bit_off %= 8
        nbytes = (bit_off + nbits + 7) // 8
        word = int.from_bytes(data[off : off + nbytes], self.order)
        # big-endian bitfields count from the most significant bit
        shift = bit_off if self.little else nbytes * 8 - bit_off - nbits
        value = word >> shift
        return hex(value & ((1 << nbits) - 1))

    def struct(self, t: Struct, data: bytes, off: int, depth: int) -> dict:
        out: dict = {}
        for m in t.members:
            at = off + m.bit_offset // 8
            if m.bitfield_size:
                out[m.name] = self.bitfield(data, at, m.bit_offset % 8, m.bitfield_size)
            else:
                out[m.name] = self.value(m.type_id, data, at, m.bit_offset % 8, depth + 1)
        return out

    def array(self, t: Array, data: bytes, off: int, depth: int) -> Any:
        if t.nelems and self._is_char(t.type):
            text = data[off : off + t.nelems]
            end = text.find(b"\0")
            if end >= 0 and all(0x1F < c < 0x7F for c in text[:end]):
                return text[:end].decode("ascii")
        if not t.nelems:
            return []
        step = self.btf.sizeof(t.type)
        return [self.value(t.type, data, off + i * step, 0, depth + 1) for i in range(t.nelems)]

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

    def enum(self, t: Enum, data: bytes, off: int) -> Any:
        raw = data[off : off + t.size]
        signed_value = int.from_bytes(raw, self.order, signed=True)
        unsigned_value = int.from_bytes(raw, self.order)
        for v in t.values:
            if v.value in (signed_value, unsigned_value):
                return v.name
        return signed_value  # bpftool's jsonw_int: signed, whatever the enum's size


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
