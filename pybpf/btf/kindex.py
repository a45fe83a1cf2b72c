"""The index of a kernel BTF blob: where each record starts, types by name, strings in order.

Built with one walk over the type section (each record's kind and ``vlen`` say where the next one
starts) and two sorts; all of it in flat ``array('I')`` columns, so that a name lookup is a binary
search and the whole index can be kept on disk (``pybpf.btf.cache``) and read back in a
millisecond instead of being rebuilt by every process.
"""

from __future__ import annotations

import itertools
import operator
import struct
import sys
from array import array
from typing import Any, Sequence

from pybpf.btf import cache
from pybpf.btf.types import Kind
from pybpf.errors import BTFError
from pybpf.record import record

# Words (u32) after the 3-word btf_type header: fixed, and per vlen item, by kind.
_FIXED = {Kind.INT: 1, Kind.ARRAY: 3, Kind.VAR: 1, Kind.DECL_TAG: 1}
_PER_ITEM = {
    Kind.STRUCT: 3,
    Kind.UNION: 3,
    Kind.ENUM: 2,
    Kind.FUNC_PROTO: 2,
    Kind.DATASEC: 3,
    Kind.ENUM64: 3,
}
_FIXED_WORDS = [_FIXED.get(k, 0) for k in range(32)]  # by kind number, for the hot loop
_ITEM_WORDS = [_PER_ITEM.get(k, 0) for k in range(32)]

# Bump when the layout of a cached index or its key changes. Each version has its own entry, so
# two pybpf versions on one host (a system package and a venv) do not keep replacing each
# other's.
VERSION = 3
# Written in host order: an index cached by a host of the other byte order reads back wrong.
_ORDER_MARK = 0x01020304
_COUNTS = struct.Struct("=IIII")  # order mark, types, strings, words


@record
class Index:
    """``starts[i]``: word index of local type i's record. ``by_name``: local type indexes in
    the order of their name offsets (``name_keys``, ascending; ties by index). ``strings``: the
    string table's offsets in the order of the strings they start (ties by offset)."""

    starts: Sequence[int]  # array('I'), or a u32 view of a cached entry
    by_name: Sequence[int]
    name_keys: Sequence[int]
    strings: Sequence[int]

    @classmethod
    def get(
        cls,
        data: bytes,
        words: Sequence[int],
        strings: Any,
        name: str,
        use_cache: bool,
        build_id: bytes = b"",
    ) -> Index:
        """The index of ``data``, from the cache when ``use_cache`` and it holds this blob's.
        ``build_id``: the running kernel's, when ``data`` is its vmlinux BTF (the entry is then
        found without reading the whole blob: ``cache.build_id_key``)."""
        if not use_cache:
            return cls.build(words, strings, name)
        key = cache.build_id_key(build_id, data) if build_id else cache.digest(data)
        entry = f"{name}.btf-index.{VERSION}"
        payload = cache.load(entry, VERSION, key)
        index = cls.from_bytes(payload, len(words)) if payload is not None else None
        if index is None:
            index = cls.build(words, strings, name)
            cache.store(entry, VERSION, key, index.to_bytes(len(words)))
        return index

    @classmethod
    def build(cls, words: Sequence[int], strings: Any, name: str) -> Index:
        starts = record_starts(words, name)
        col = array("I", map(words.__getitem__, starts))  # name_off of each record
        by_name = array("I", sorted(range(len(col)), key=col.__getitem__))
        name_keys = array("I", map(col.__getitem__, by_name))
        # The table ends with a NUL, so split's last piece is the nothing after it.
        chunks = strings.data.split(b"\0")[:-1]
        # offset of chunk k = its predecessors' lengths + k separators (+ the table's start)
        lengths = itertools.accumulate(map(len, chunks), initial=strings.start)
        offsets = list(map(operator.add, lengths, itertools.count()))[: len(chunks)]
        order = sorted(range(len(chunks)), key=chunks.__getitem__)
        return cls(starts, by_name, name_keys, array("I", map(offsets.__getitem__, order)))

    def to_bytes(self, nwords: int) -> bytes:
        counts = _COUNTS.pack(_ORDER_MARK, len(self.starts), len(self.strings), nwords)
        cols = (self.starts, self.by_name, self.name_keys, self.strings)
        return counts + b"".join(array("I", c).tobytes() for c in cols)

    @classmethod
    def from_bytes(cls, payload: Any, nwords: int) -> Index | None:
        """An index read back, or None when it does not fit this blob."""
        if len(payload) < _COUNTS.size:
            return None
        mark, ntypes, nstrings, words = _COUNTS.unpack_from(payload)
        if mark != _ORDER_MARK or words != nwords:
            return None
        if len(payload) != _COUNTS.size + 4 * (3 * ntypes + nstrings):
            return None
        cols = []
        pos = _COUNTS.size
        view = memoryview(payload)  # the columns are read in place, not copied
        for n in (ntypes, ntypes, ntypes, nstrings):
            cols.append(view[pos : pos + 4 * n].cast("I"))
            pos += 4 * n
        starts = cols[0]
        if ntypes and (starts[0] != 0 or starts[-1] >= nwords):
            return None
        return cls(*cols)


def record_starts(words: Sequence[int], name: str) -> array:
    """Word index of every record: the one pass over the type section."""
    starts = array("I")
    append = starts.append
    fixed, per_item = _FIXED_WORDS, _ITEM_WORDS
    i, n = 0, len(words)
    while i < n:
        append(i)
        info = words[i + 1]
        kind = (info >> 24) & 0x1F
        i += 3 + fixed[kind] + per_item[kind] * (info & 0xFFFF)
    if i != n:
        raise BTFError(f"{name} BTF: the last type record runs past the type section")
    return starts


def host_words(type_data: Any, little: bool) -> Sequence[int]:
    """The type section as u32 words in host order: a view of it when the orders agree (vmlinux
    is megabytes), else a byte-swapped copy."""
    if len(type_data) % 4:
        raise BTFError("kernel BTF type section is not a whole number of 32-bit words")
    if little == (sys.byteorder == "little"):
        return memoryview(type_data).cast("B").cast("I")
    words = array("I")
    words.frombytes(type_data)
    words.byteswap()
    return words
