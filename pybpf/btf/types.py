"""The BTF type model: one frozen dataclass per ``BTF_KIND_*``, named as the kernel names them.

BTF (``include/uapi/linux/btf.h``) describes C types as a flat array of records; a record refers to
another by its index in that array, its *type id* (0 is ``void``). The classes here are what one
record says once its string offsets are turned into strings: ``Struct("event", 32, members)``.
They hold type ids, not Python references, because ids are what the kernel, ``.BTF.ext`` and map
definitions speak, and because BTF graphs have cycles (``struct list_head { struct list_head
*next; }``).
"""

from __future__ import annotations

import struct

from pybpf.enums import int_enum, int_flag
from pybpf.errors import BTFError
from pybpf.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    import typing
    from typing import Any, Callable, ClassVar, Iterable


@int_enum
class Kind:
    """``BTF_KIND_*``: bits 24..28 of ``btf_type.info``."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


@int_flag
class IntEncoding:
    """``BTF_INT_*``: how an INT's bits are meant (bits 24..27 of its extra word)."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


@int_enum
class FuncLinkage:
    """``BTF_FUNC_*``: a FUNC record keeps its linkage in ``vlen``."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


@int_enum
class VarLinkage:
    """``BTF_VAR_*``."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


@record
class Void:
    """Type id 0. Never stored in a blob; ``BTF.types[0]`` holds it so ids index the list."""

    kind: ClassVar[Kind] = Kind.UNKN
    name: ClassVar[str] = ""


@record
class Int:
    name: str
    size: int
    encoding: IntEncoding = IntEncoding.NONE
    offset: int = 0  # bit offset of the value inside its storage; 0 in practice
    bits: int = 0  # number of value bits; size * 8 unless a bitfield base type
    kind: ClassVar[Kind] = Kind.INT


@record
class Ptr:
    type: int
    kind: ClassVar[Kind] = Kind.PTR
    name: ClassVar[str] = ""


@record
class Array:
    type: int  # element type
    index_type: int
    nelems: int
    kind: ClassVar[Kind] = Kind.ARRAY
    name: ClassVar[str] = ""


@record
class Member:
    """A struct/union member. ``bitfield_size`` is 0 unless the member is a bitfield."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@record
class Struct:
    name: str
    size: int
    members: tuple[Member, ...]
    kind: ClassVar[Kind] = Kind.STRUCT

    @property
    def kind_flag(self) -> bool:
        # With kind_flag set, each member's offset word packs bitfield_size:8 | bit_offset:24;
        # compilers set it exactly when some member is a bitfield, and so do we.
        return any(m.bitfield_size for m in self.members)


@record
class Union(Struct):
    kind: ClassVar[Kind] = Kind.UNION


@record
class EnumValue:
    name: str
    value: int


@record
class Enum:
    name: str
    size: int
    signed: bool  # kind_flag: the values are signed
    values: tuple[EnumValue, ...]
    kind: ClassVar[Kind] = Kind.ENUM


@record
class Enum64(Enum):
    kind: ClassVar[Kind] = Kind.ENUM64


@record
class Fwd:
    name: str
    is_union: bool  # kind_flag: `union foo;` rather than `struct foo;`
    kind: ClassVar[Kind] = Kind.FWD


@record
class Typedef:
    name: str
    type: int
    kind: ClassVar[Kind] = Kind.TYPEDEF


@record
class Volatile:
    type: int
    kind: ClassVar[Kind] = Kind.VOLATILE
    name: ClassVar[str] = ""


@record
class Const:
    type: int
    kind: ClassVar[Kind] = Kind.CONST
    name: ClassVar[str] = ""


@record
class Restrict:
    type: int
    kind: ClassVar[Kind] = Kind.RESTRICT
    name: ClassVar[str] = ""


@record
class Func:
    name: str
    type: int  # a FUNC_PROTO
    linkage: FuncLinkage = FuncLinkage.STATIC
    kind: ClassVar[Kind] = Kind.FUNC


@record
class Param:
    name: str
    type: int  # 0 with no name marks a trailing `...`


@record
class FuncProto:
    return_type: int
    params: tuple[Param, ...]
    kind: ClassVar[Kind] = Kind.FUNC_PROTO
    name: ClassVar[str] = ""


@record
class Var:
    name: str
    type: int
    linkage: VarLinkage = VarLinkage.STATIC
    kind: ClassVar[Kind] = Kind.VAR


@record
class VarSecinfo:
    """Where one variable of a DATASEC lives: ``type_id`` is a VAR (or a FUNC for ``.ksyms``)."""

    type_id: int
    offset: int
    size: int


@record
class Datasec:
    name: str
    size: int
    vars: tuple[VarSecinfo, ...]
    kind: ClassVar[Kind] = Kind.DATASEC


@record
class Float:
    name: str
    size: int
    kind: ClassVar[Kind] = Kind.FLOAT


@record
class DeclTag:
    """``__attribute__((btf_decl_tag("name")))`` on a type (component_idx -1) or a member/param."""

    name: str
    type: int
    component_idx: int
    attr: bool = False  # kind_flag: the tag is a C attribute to print verbatim
    kind: ClassVar[Kind] = Kind.DECL_TAG


@record
class TypeTag:
    """``__attribute__((btf_type_tag("name")))``, e.g. ``__user``/``__rcu`` on a pointee."""

    name: str
    type: int
    attr: bool = False
    kind: ClassVar[Kind] = Kind.TYPE_TAG


# The kinds a decoded type is one of: ``Type``, for annotations, is their typing.Union.
TYPE_CLASSES = (
    Void,
    Int,
    Ptr,
    Array,
    Struct,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
)

if TYPE_CHECKING:
    Type = typing.Union[
        Void,
        Int,
        Ptr,
        Array,
        Struct,
        Enum,
        Fwd,
        Typedef,
        Volatile,
        Const,
        Restrict,
        Func,
        FuncProto,
        Var,
        Datasec,
        Float,
        DeclTag,
        TypeTag,
    ]


def __getattr__(name: str) -> Any:
    """``Type``, made when it is first asked for: at import it would cost the import of
    ``typing``, which annotations (strings here) do not need."""
    if name == "Type":
        import typing

        globals()["Type"] = alias = typing.Union[TYPE_CLASSES]
        return alias
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Kinds that only qualify another type: what BTF.resolve() skips.
MODIFIERS = (Typedef, Volatile, Const, Restrict, TypeTag)


# --- decoding the type section --------------------------------------------------------------


class TypeDecoder:
    """One pass over the type section; each record is decoded by the function for its kind."""

    def __init__(self, data: bytes, little: bool, name_of: Callable[[int], str]):
        self.data = data
        self.o = "<" if little else ">"
        self.name_of = name_of
        self.pos = 0
        self.starts: list[int] = []
        self.u32 = struct.Struct(self.o + "I")
        self.u32x2 = struct.Struct(self.o + "II")
        self.u32x3 = struct.Struct(self.o + "III")
        self.i32 = struct.Struct(self.o + "i")

    def types(self) -> list[Type]:
        """Every record, decoded; ``starts`` is left holding where each began, and the section's
        end after them."""
        out = []
        starts = self.starts = []
        while self.pos < len(self.data):
            starts.append(self.pos)
            out.append(self.one())
        starts.append(self.pos)
        return out

    def take(self, st: struct.Struct, count: int = 1) -> list[tuple]:
        end = self.pos + st.size * count
        if end > len(self.data):
            raise BTFError(
                f"BTF type section is truncated: a record at byte {self.pos} needs {end} bytes, "
                f"the section has {len(self.data)}"
            )
        out = list(st.iter_unpack(self.data[self.pos : end])) if count else []
        self.pos = end
        return out

    def one(self) -> Type:
        start = self.pos
        name_off, info, size_or_type = self.take(self.u32x3)[0]
        vlen = info & 0xFFFF
        kind_flag = bool(info >> 31)
        try:
            kind = Kind((info >> 24) & 0x1F)
            decode = _DECODERS[kind]
        except (ValueError, KeyError):
            raise BTFError(
                f"BTF type at byte {start} has unknown kind {(info >> 24) & 0x1F}"
            ) from None
        return decode(self, self.name_of(name_off), vlen, kind_flag, size_or_type)


def _d_int(d: TypeDecoder, name: str, vlen: int, kf: bool, size: int) -> Type:
    (word,) = d.take(d.u32)[0]
    return Int(name, size, IntEncoding((word >> 24) & 0xF), (word >> 16) & 0xFF, word & 0xFF)


def _d_array(d: TypeDecoder, name: str, vlen: int, kf: bool, _: int) -> Type:
    return Array(*d.take(d.u32x3)[0])


def _d_composite(d: TypeDecoder, name: str, vlen: int, kf: bool, size: int, cls: type) -> Type:
    members = []
    get = d.name_of
    for m_name, m_type, off in d.take(d.u32x3, vlen):
        if kf:
            members.append(Member(get(m_name), m_type, off & 0xFFFFFF, off >> 24))
        else:
            members.append(Member(get(m_name), m_type, off))
    return cls(name, size, tuple(members))


def _d_enum(d: TypeDecoder, name: str, vlen: int, kf: bool, size: int) -> Type:
    return Enum(name, size, kf, _enum_values(d, d.take(d.u32x2, vlen), kf, 32))


def _d_enum64(d: TypeDecoder, name: str, vlen: int, kf: bool, size: int) -> Type:
    rows = ((v_name, hi << 32 | lo) for v_name, lo, hi in d.take(d.u32x3, vlen))
    return Enum64(name, size, kf, _enum_values(d, rows, kf, 64))


def _enum_values(
    d: TypeDecoder, rows: Iterable[tuple[int, int]], signed: bool, bits: int
) -> tuple[EnumValue, ...]:
    # The words are unsigned on the wire; kind_flag says the enum is signed, so a value with
    # the top bit set is negative in two's complement.
    get = d.name_of
    top, wrap = 1 << bits - 1, 1 << bits
    values = []
    for v_name, raw in rows:
        if signed and raw >= top:
            raw -= wrap
        values.append(EnumValue(get(v_name), raw))
    return tuple(values)


def _d_func_proto(d: TypeDecoder, name: str, vlen: int, kf: bool, ret: int) -> Type:
    get = d.name_of
    return FuncProto(ret, tuple(Param(get(n), t) for n, t in d.take(d.u32x2, vlen)))


def _d_var(d: TypeDecoder, name: str, vlen: int, kf: bool, type_id: int) -> Type:
    (linkage,) = d.take(d.u32)[0]
    return Var(name, type_id, _enum_or_int(VarLinkage, linkage))


def _d_datasec(d: TypeDecoder, name: str, vlen: int, kf: bool, size: int) -> Type:
    return Datasec(name, size, tuple(VarSecinfo(*v) for v in d.take(d.u32x3, vlen)))


def _d_decl_tag(d: TypeDecoder, name: str, vlen: int, kf: bool, type_id: int) -> Type:
    (idx,) = d.take(d.i32)[0]
    return DeclTag(name, type_id, idx, kf)


def _enum_or_int(enum: type, value: int):
    try:
        return enum(value)
    except ValueError:
        return value  # the kernel will say what is wrong with it; keep the bits


_DECODERS = {
    Kind.INT: _d_int,
    Kind.PTR: lambda d, n, v, kf, t: Ptr(t),
    Kind.ARRAY: _d_array,
    Kind.STRUCT: lambda d, n, v, kf, s: _d_composite(d, n, v, kf, s, Struct),
    Kind.UNION: lambda d, n, v, kf, s: _d_composite(d, n, v, kf, s, Union),
    Kind.ENUM: _d_enum,
    Kind.FWD: lambda d, n, v, kf, _: Fwd(n, kf),
    Kind.TYPEDEF: lambda d, n, v, kf, t: Typedef(n, t),
    Kind.VOLATILE: lambda d, n, v, kf, t: Volatile(t),
    Kind.CONST: lambda d, n, v, kf, t: Const(t),
    Kind.RESTRICT: lambda d, n, v, kf, t: Restrict(t),
    Kind.FUNC: lambda d, n, v, kf, t: Func(n, t, _enum_or_int(FuncLinkage, v)),
    Kind.FUNC_PROTO: _d_func_proto,
    Kind.VAR: _d_var,
    Kind.DATASEC: _d_datasec,
    Kind.FLOAT: lambda d, n, v, kf, s: Float(n, s),
    Kind.DECL_TAG: _d_decl_tag,
    Kind.TYPE_TAG: lambda d, n, v, kf, t: TypeTag(n, t, kf),
    Kind.ENUM64: _d_enum64,
}


# --- encoding the type section --------------------------------------------------------------


def encode_type(t: Type, o: str, name_offset: Callable[[str], int]) -> bytes:
    """One ``btf_type`` record and its trailing data, in byte order ``o``."""

    def head(vlen: int, size_or_type: int, kind_flag: bool = False, n: str = t.name) -> bytes:
        info = int(t.kind) << 24 | int(kind_flag) << 31 | vlen
        return struct.pack(o + "III", name_offset(n), info, size_or_type)

    if isinstance(t, Int):
        return head(0, t.size) + struct.pack(
            o + "I", int(t.encoding) << 24 | t.offset << 16 | t.bits
        )
    if isinstance(t, (Ptr, Typedef, Volatile, Const, Restrict)):
        return head(0, t.type)
    if isinstance(t, TypeTag):
        return head(0, t.type, t.attr)
    if isinstance(t, Array):
        return head(0, 0) + struct.pack(o + "III", t.type, t.index_type, t.nelems)
    if isinstance(t, Struct):
        kf = t.kind_flag
        out = [head(len(t.members), t.size, kf)]
        for m in t.members:
            off = m.bitfield_size << 24 | m.bit_offset if kf else m.bit_offset
            out.append(struct.pack(o + "III", name_offset(m.name), m.type_id, off))
        return b"".join(out)
    if isinstance(t, Enum64):
        out = [head(len(t.values), t.size, t.signed)]
        for v in t.values:
            raw = v.value & (1 << 64) - 1
            out.append(struct.pack(o + "III", name_offset(v.name), raw & 0xFFFFFFFF, raw >> 32))
        return b"".join(out)
    if isinstance(t, Enum):
        out = [head(len(t.values), t.size, t.signed)]
        for v in t.values:
            out.append(struct.pack(o + "II", name_offset(v.name), v.value & 0xFFFFFFFF))
        return b"".join(out)
    if isinstance(t, Fwd):
        return head(0, 0, t.is_union)
    if isinstance(t, Func):
        return head(int(t.linkage), t.type)
    if isinstance(t, FuncProto):
        params = b"".join(struct.pack(o + "II", name_offset(p.name), p.type) for p in t.params)
        return head(len(t.params), t.return_type) + params
    if isinstance(t, Var):
        return head(0, t.type) + struct.pack(o + "I", int(t.linkage))
    if isinstance(t, Datasec):
        secinfo = b"".join(struct.pack(o + "III", v.type_id, v.offset, v.size) for v in t.vars)
        return head(len(t.vars), t.size) + secinfo
    if isinstance(t, Float):
        return head(0, t.size)
    if isinstance(t, DeclTag):
        return head(0, t.type, t.attr) + struct.pack(o + "i", t.component_idx)
    raise BTFError(f"cannot encode BTF type {t!r}")


# --- spelling types as C -------------------------------------------------------------------


def format_type(btf: Any, type_id: int, depth: int = 0) -> str:
    """A C-ish spelling of a type (``struct event``, ``char[16]``); ``btf`` answers
    ``type(id)``."""
    if depth > 32:
        return "..."
    t = btf.type(type_id)
    if isinstance(t, Void):
        return "void"
    if isinstance(t, Union):
        return f"union {t.name or '(anon)'}"
    if isinstance(t, Struct):
        return f"struct {t.name or '(anon)'}"
    if isinstance(t, Enum):
        return f"enum {t.name or '(anon)'}"
    if isinstance(t, Fwd):
        return f"{'union' if t.is_union else 'struct'} {t.name}"
    if isinstance(t, Ptr):
        target = btf.type(t.type)
        if isinstance(target, FuncProto):
            return _format_proto(btf, target, "(*)", depth)
        inner = format_type(btf, t.type, depth + 1)
        return inner + ("*" if inner.endswith("*") else " *")
    if isinstance(t, Array):
        dims = []
        while isinstance(t, Array) and len(dims) < 32:  # bounded: a damaged blob may loop
            dims.append(f"[{t.nelems}]")
            elem = t.type
            t = btf.type(elem)
        return format_type(btf, elem, depth + 1) + "".join(dims)
    if isinstance(t, (Const, Volatile, Restrict)):
        word = {Const: "const", Volatile: "volatile", Restrict: "restrict"}[type(t)]
        inner = format_type(btf, t.type, depth + 1)
        return f"{inner} {word}" if inner.endswith("*") else f"{word} {inner}"
    if isinstance(t, TypeTag):
        return f"{format_type(btf, t.type, depth + 1)} __tag({t.name})"
    if isinstance(t, FuncProto):
        return _format_proto(btf, t, "", depth)
    if isinstance(t, Func):
        proto = btf.type(t.type)
        if isinstance(proto, FuncProto):
            return _format_proto(btf, proto, t.name, depth)
        return t.name
    if isinstance(t, Var):
        return f"{format_type(btf, t.type, depth + 1)} {t.name}"
    if isinstance(t, Datasec):
        return f"SEC {t.name}"
    return t.name


def _format_proto(btf: Any, p: FuncProto, middle: str, depth: int) -> str:
    params = []
    for prm in p.params:
        if prm.type == 0:
            params.append("...")
        else:
            params.append(
                format_type(btf, prm.type, depth + 1) + (f" {prm.name}" if prm.name else "")
            )
    ret = format_type(btf, p.return_type, depth + 1)
    return f"{ret} {middle}({', '.join(params) or 'void'})".replace("  ", " ")
