"""BTF: reading and writing the ``.BTF`` blob, and questions about its types.

A ``.BTF`` section is ``btf_header`` (magic 0xeB9F, version 1, offsets of two sections relative to
the end of the header), a *type section* of variable-length records, and a *string section* of
NUL-terminated names that records point into by byte offset. Type ids are positions in the type
section, counting from 1; id 0 is ``void``.

*Split* BTF (a kernel module's, under ``/sys/kernel/btf/<module>``) continues a base BTF
(vmlinux): its first type id is one past the base's last, and its string offsets start at the
base's string section size, so one id or offset space covers both.

The blob is written in the byte order of the object that carries it; the magic, read in either
order, says which. What goes to the kernel (``BTF_LOAD``) must be in the host's order.
"""

from __future__ import annotations

import struct
import sys

from pybpf.btf.types import (
    MODIFIERS,
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    TypeDecoder,
    Typedef,
    TypeTag,
    Var,
    VarLinkage,
    VarSecinfo,
    Void,
    Volatile,
    encode_type,
    format_type,
)
from pybpf.btf.types import Union as UnionType
from pybpf.errors import BTFError
from pybpf.record import replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Collection, Iterable, Mapping, Optional, Sequence, Union

    from pybpf.btf.types import Type

__all__ = [
    "BTF",
    "BTF_MAGIC",
    "StringTable",
    # the type model, re-exported so users import one module
    "Array",
    "Const",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumValue",
    "Float",
    "Func",
    "FuncLinkage",
    "FuncProto",
    "Fwd",
    "Int",
    "IntEncoding",
    "Kind",
    "Member",
    "Param",
    "Ptr",
    "Restrict",
    "Struct",
    "Type",
    "Typedef",
    "TypeTag",
    "UnionType",
    "Var",
    "VarLinkage",
    "VarSecinfo",
    "Void",
    "Volatile",
]


def __getattr__(name: str) -> Any:
    """``Type``, re-exported from pybpf.btf.types, which makes it on first use."""
    if name == "Type":
        from pybpf.btf import types

        return types.Type
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
# struct btf_header: magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_HEADER = "HBBIIIII"
HEADER_SIZE = struct.calcsize("<" + _HEADER)
POINTER_SIZE = 8  # BPF is a 64-bit machine whatever the host is
HOST_LITTLE = sys.byteorder == "little"


class StringTable:
    """The string section: names by byte offset, continuing a base table for split BTF."""

    def __init__(self, data: bytes, base: Optional[StringTable] = None):
        self.data = bytes(data)
        self.base = base
        self.start = base.size if base is not None else 0
        self._cache: dict[int, str] = {}
        self._index: Optional[dict[str, int]] = None

    @property
    def size(self) -> int:
        """One past the last offset this table (with its base) covers."""
        return self.start + len(self.data)

    def get(self, offset: int) -> str:
        if offset < self.start:
            assert self.base is not None
            return self.base.get(offset)
        s = self._cache.get(offset)
        if s is None:
            local = offset - self.start
            end = self.data.find(b"\0", local)
            if local >= len(self.data) or end < 0:
                raise BTFError(
                    f"BTF string offset {offset} is outside the string section "
                    f"({self.start}..{self.size})"
                )
            s = self._cache[offset] = self.data[local:end].decode("utf-8", "replace")
        return s

    def offset_of(self, s: str) -> Optional[int]:
        """Where ``s`` starts (base first, as libbpf looks), or None when it is not there."""
        if self.base is not None:
            off = self.base.offset_of(s)
            if off is not None:
                return off
        if self._index is None:
            self._index = {}
            pos = 0
            for chunk in self.data.split(b"\0"):
                self._index.setdefault(chunk.decode("utf-8", "replace"), self.start + pos)
                pos += len(chunk) + 1
        return self._index.get(s)

    def __iter__(self) -> Iterable[tuple[int, str]]:
        """(offset, string) of every string of this table (not its base)."""
        pos = 0
        for chunk in self.data.split(b"\0")[:-1]:
            yield self.start + pos, chunk.decode("utf-8", "replace")
            pos += len(chunk) + 1


class _Parsed:
    """What ``BTF.parse`` read: the byte order, the types it made and the type section with
    where each record starts (and, last, where the section ends). Its records' name offsets are
    into the string table of every BTF that carries it: ``parse`` and ``replace_types`` hand it
    only to a BTF with that same table."""

    __slots__ = ("order", "types", "data", "starts")

    def __init__(self, order: str, types: list[Type], data: bytes, starts: list[int]) -> None:
        self.order, self.types, self.data, self.starts = order, types, data, starts


class _StringBuilder:
    """Offsets for names when encoding: the original table first, so offsets stay put."""

    def __init__(self, table: StringTable):
        self.table = table
        self.extra = bytearray()
        self.added: dict[str, int] = {}
        if not table.data and table.base is None:
            self.extra += b"\0"  # a base table must start with the empty string

    def offset(self, s: str) -> int:
        if not s:
            return 0
        off = self.table.offset_of(s)
        if off is None:
            off = self.added.get(s)
        if off is None:
            off = self.added[s] = self.table.size + len(self.extra)
            self.extra += s.encode() + b"\0"
        return off

    def data(self) -> bytes:
        return self.table.data + bytes(self.extra)


# --- the BTF object -------------------------------------------------------------------------

if TYPE_CHECKING:
    KindSpec = Union[Kind, type, None]


def essential_name(name: str) -> str:
    """``task_struct___v1`` → ``task_struct``: CO-RE ignores a ``___flavor`` suffix (the last
    ``x___y`` where neither x nor y is an underscore)."""
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1 : i + 4] == "___" and name[i + 4] != "_":
            return name[: i + 1]
    return name


class TypeQueries:
    """Questions answered from ``type(id)`` and ``find_all(name)`` alone, shared by ``BTF`` and
    the lazily read kernel BTF (``pybpf.btf.kernel.KernelBTF``)."""

    def type(self, type_id: int) -> Type:
        raise NotImplementedError

    def find_all(self, name: str, kind: KindSpec = None) -> list[int]:
        raise NotImplementedError

    def name_of(self, type_id: int) -> str:
        return self.type(type_id).name

    def find(self, name: str, kind: KindSpec = None) -> Optional[int]:
        """Id of the first type called ``name`` (of ``kind``: a Kind or a class), or None."""
        ids = self.find_all(name, kind)
        return ids[0] if ids else None

    def find_essential(self, name: str) -> list[int]:
        """Ids of the types whose essential name (``___flavor`` stripped) is ``name``'s."""
        raise NotImplementedError

    def resolve(self, type_id: int) -> int:
        """Skip typedef/const/volatile/restrict/type_tag down to the type they qualify."""
        seen = 0
        t = self.type(type_id)
        while isinstance(t, MODIFIERS):
            type_id = t.type
            t = self.type(type_id)
            seen += 1
            if seen > 64:
                raise BTFError(f"BTF type {type_id}: modifier chain is a loop")
        return type_id

    def sizeof(self, type_id: int) -> int:
        """Size in bytes, as the C compiler for BPF would say; BTFError for sizeless types."""
        size = 1
        for _ in range(64):  # bounded: a damaged blob can make a type contain itself
            t = self.type(type_id)
            if isinstance(t, (Int, Struct, Enum, Float, Datasec)):
                return size * t.size
            if isinstance(t, Ptr):
                return size * POINTER_SIZE
            if isinstance(t, Array):
                size *= t.nelems
                type_id = t.type
                continue
            if isinstance(t, (*MODIFIERS, Var)):
                type_id = t.type
                continue
            raise BTFError(f"BTF type {type_id} ({self.format(type_id)}) has no size")
        raise BTFError(f"BTF type {type_id}: type chain too deep")

    def alignof(self, type_id: int, _depth: int = 0) -> int:
        """Alignment in bytes; 1 for a packed struct (a member off its natural alignment)."""
        if _depth > 32:
            raise BTFError(f"BTF type {type_id}: nested too deep to align")
        t = self.type(self.resolve(type_id))
        if isinstance(t, (Int, Enum, Float)):
            return min(t.size, POINTER_SIZE) or 1
        if isinstance(t, Ptr):
            return POINTER_SIZE
        if isinstance(t, Array):
            return self.alignof(t.type, _depth + 1)
        if isinstance(t, Struct):
            align = 1
            for m in t.members:
                a = self.alignof(m.type_id, _depth + 1)
                if not m.bitfield_size and m.bit_offset % (8 * a):
                    return 1
                align = max(align, a)
            return 1 if t.size % align else align
        raise BTFError(f"BTF type {type_id} ({self.format(type_id)}) has no alignment")

    def format(self, type_id: int) -> str:
        """A C-ish spelling: ``struct event``, ``__u32``, ``char[16]``, ``struct bpf_map *``."""
        return format_type(self, type_id)


class BTF(TypeQueries):
    """Parsed BTF: ``types[id]`` for every id (the base's too, for split BTF), and strings.

    Treat it as immutable: methods that change something (``with_datasec_fixup``) return a new
    object. ``types[0]`` is ``Void()``.
    """

    def __init__(
        self,
        types: Sequence[Type],
        strings: Optional[StringTable] = None,
        base: Optional[BTF] = None,
    ):
        self.base = base
        head = base.types if base is not None else [Void()]
        self.first_id = len(head)
        self.types: list[Type] = list(head) + list(types)
        if strings is None:
            # Built from types alone: give the names their offsets now, so that a split BTF
            # made on top of this one sees the string table that encode() will write.
            builder = _StringBuilder(StringTable(b"", base.strings if base else None))
            for t in types:
                encode_type(t, "<", builder.offset)
            strings = StringTable(builder.data(), base.strings if base else None)
        self.strings = strings
        self._by_name: Optional[dict[str, list[int]]] = None
        self._by_essential: Optional[dict[str, list[int]]] = None
        self._parsed: Optional[_Parsed] = None  # set by parse(), kept by replace_types()

    # --- reading and writing ---

    @classmethod
    def parse(
        cls, data: bytes, little_endian: Optional[bool] = None, base: Optional[BTF] = None
    ) -> BTF:
        """Parse a ``.BTF`` blob. The magic decides the byte order; ``little_endian``, when
        given, is what the carrying ELF says, and a disagreement is an error."""
        little = _byte_order(data)
        if little_endian is not None and little != little_endian:
            raise BTFError(
                f"BTF is {'little' if little else 'big'}-endian but its object is "
                f"{'little' if little_endian else 'big'}-endian"
            )
        _, type_data, raw_strings = parse_header(data, base is not None)
        strings = StringTable(raw_strings, base.strings if base is not None else None)
        decoder = TypeDecoder(type_data, little, strings.get)
        types = decoder.types()
        btf = cls(types, strings, base)
        btf._parsed = _Parsed("<" if little else ">", types, type_data, decoder.starts)
        return btf

    def encode(self, little_endian: bool = HOST_LITTLE) -> bytes:
        """The blob again (only this object's own types when split); names keep their offsets.

        A type still the very object ``parse`` made, written in the order it was read, is its
        record's bytes as they were read: a clang object's BTF comes back byte for byte either
        way (tests/test_btf.py), and an object with a thousand types from vmlinux.h is written in
        a fraction of the time. Types replaced since, and all of them in the other byte order,
        are encoded."""
        o = "<" if little_endian else ">"
        names = _StringBuilder(self.strings)
        own = self.own_types
        parsed = self._parsed
        if parsed is not None and parsed.order == o:
            kept, data, starts = parsed.types, parsed.data, parsed.starts
            n = len(kept)
            type_data = b"".join(
                data[starts[i] : starts[i + 1]]
                if i < n and t is kept[i]
                else encode_type(t, o, names.offset)
                for i, t in enumerate(own)
            )
        else:
            type_data = b"".join(encode_type(t, o, names.offset) for t in own)
        str_data = names.data()
        header = struct.pack(
            o + _HEADER,
            BTF_MAGIC,
            BTF_VERSION,
            0,
            HEADER_SIZE,
            0,
            len(type_data),
            len(type_data),
            len(str_data),
        )
        return header + type_data + str_data

    @property
    def own_types(self) -> list[Type]:
        """The types this blob defines: all but void, or the ones after the base's."""
        return self.types[self.first_id :]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BTF):
            return NotImplemented
        return self.first_id == other.first_id and self.own_types == other.own_types

    def __repr__(self) -> str:
        split = f", split on {self.first_id - 1} base types" if self.base is not None else ""
        return f"<BTF {len(self.types) - self.first_id} types{split}>"

    def replace_types(self, changes: Mapping[int, Type], added: Sequence[Type] = ()) -> BTF:
        """A new BTF with some types replaced by id and others appended (ids continue)."""
        for tid in changes:
            if tid < self.first_id:
                raise BTFError(f"type id {tid} belongs to the base BTF and cannot be replaced")
        own = [changes.get(i, t) for i, t in enumerate(self.own_types, self.first_id)]
        btf = BTF(own + list(added), self.strings, self.base)
        btf._parsed = self._parsed  # the types not replaced keep their records' bytes
        return btf

    # --- questions ---

    def type(self, type_id: int) -> Type:
        if not 0 <= type_id < len(self.types):
            raise BTFError(f"BTF type id {type_id} does not exist (last is {len(self.types) - 1})")
        return self.types[type_id]

    def find_all(self, name: str, kind: KindSpec = None) -> list[int]:
        if self._by_name is None:
            index: dict[str, list[int]] = {}
            for i, t in enumerate(self.types):
                if t.name:
                    index.setdefault(t.name, []).append(i)
            self._by_name = index
        ids = self._by_name.get(name, [])
        if kind is None:
            return list(ids)
        want = kind if isinstance(kind, Kind) else kind.kind
        return [i for i in ids if self.types[i].kind == want]

    # --- what libbpf does to an object's BTF before the kernel sees it ---

    def find_essential(self, name: str) -> list[int]:
        if self._by_essential is None:
            index: dict[str, list[int]] = {}
            for i, t in enumerate(self.types):
                if t.name:
                    index.setdefault(essential_name(t.name), []).append(i)
            self._by_essential = index
        return list(self._by_essential.get(essential_name(name), []))

    def with_datasec_fixup(
        self,
        section_sizes: Mapping[str, int],
        symbol_offsets: Mapping[str, Mapping[str, int]],
        hidden: Collection[str] = (),
    ) -> BTF:
        """What libbpf does to DATASECs before the kernel sees them, as a new BTF.

        clang leaves each DATASEC's size and its variables' offsets 0: the sizes come from the ELF
        section headers (``section_sizes``) and the offsets from the symbols' ``st_value``
        (``symbol_offsets[section][name]``); the kernel wants the variables sorted by offset.
        ``.kconfig`` and ``.ksyms`` have no ELF section: their externs are laid out the way
        libbpf lays them out, and their ``extern`` linkage (which the kernel refuses) becomes
        allocated/global. Variables whose symbols are ``hidden`` (STV_HIDDEN/STV_INTERNAL
        visibility) become static, which keeps their data map from being mmap-able, as in libbpf.
        """
        from pybpf.btf import datasec  # on first use: importing the BTF model does not need it

        return datasec.fixup(self, section_sizes, symbol_offsets, hidden)

    def with_static_funcs(self, names: Collection[str]) -> BTF:
        """Global FUNCs of these names become static, as a new BTF (libbpf's rule for hidden
        subprograms): the verifier then checks each in its caller's context, not on its own
        with arguments it knows nothing of. The first global FUNC of a name changes, as in libbpf.
        """
        changes: dict[int, Type] = {}
        for name in names:
            for tid in self.find_all(name, Kind.FUNC):
                t = self.type(tid)
                if tid >= self.first_id and t.linkage == FuncLinkage.GLOBAL:
                    changes[tid] = replace(t, linkage=FuncLinkage.STATIC)
                    break
        return self.replace_types(changes) if changes else self


def parse_header(data: bytes, split: bool = False) -> tuple[bool, bytes, bytes]:
    """Check ``btf_header`` and return (little endian?, type section, string section)."""
    little = _byte_order(data)
    o = "<" if little else ">"
    _, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        o + _HEADER, data
    )
    if version != BTF_VERSION:
        raise BTFError(f"BTF version {version} is not supported (only {BTF_VERSION})")
    if hdr_len < HEADER_SIZE or hdr_len > len(data):
        raise BTFError(f"BTF header length {hdr_len} does not fit a {len(data)}-byte blob")
    body = data[hdr_len:]
    _check_section(body, "type", type_off, type_len)
    _check_section(body, "string", str_off, str_len)
    if type_off % 4:
        raise BTFError(f"BTF type section at offset {type_off} is not 4-byte aligned")
    raw_strings = body[str_off : str_off + str_len]
    if not split and (not raw_strings or raw_strings[0] != 0):
        raise BTFError("BTF string section does not start with the empty string")
    if raw_strings and raw_strings[-1] != 0:
        raise BTFError("BTF string section does not end with a NUL")
    return little, body[type_off : type_off + type_len], raw_strings


def _byte_order(data: bytes) -> bool:
    if len(data) < HEADER_SIZE:
        raise BTFError(f"BTF blob is {len(data)} bytes, shorter than its {HEADER_SIZE}-byte header")
    if struct.unpack_from("<H", data)[0] == BTF_MAGIC:
        return True
    if struct.unpack_from(">H", data)[0] == BTF_MAGIC:
        return False
    raise BTFError(f"BTF magic is {data[:2].hex()}, not 0xeb9f in either byte order")


def _check_section(body: bytes, what: str, off: int, length: int) -> None:
    if off + length > len(body):
        raise BTFError(
            f"BTF {what} section ({off}+{length}) runs past the end of the blob "
            f"({len(body)} bytes after the header)"
        )
