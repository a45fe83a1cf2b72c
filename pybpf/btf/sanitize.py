"""BTF for an older kernel: rewrite the kinds it does not know, as libbpf does before ``BTF_LOAD``.

The kernel refuses a whole BTF blob for one record of a kind it does not know (``[7] Invalid
kind``), and without BTF a map loses its key/value types and a program its line info. libbpf's
``bpf_object__sanitize_btf`` therefore replaces each unknown kind with one that old kernels know
and that keeps every type id (records are replaced in place, never removed, so ids in map
definitions, ``.BTF.ext`` and CO-RE records stay right):

- ``VAR`` (no DATASEC support) and ``DECL_TAG`` → ``INT`` of 1 byte, 8 bits: 1 byte because a
  larger INT can be bigger than the variable it replaces, and the kernel checks sizes;
- ``DATASEC`` → ``STRUCT`` of the same size, a member per variable (``.`` in the name → ``_``,
  since a struct name must be a C identifier);
- ``FUNC_PROTO`` (no FUNC support) → ``ENUM`` of 4 bytes, a value per parameter; ``FUNC`` →
  ``TYPEDEF``; and where FUNC exists but global linkage does not, ``FUNC`` → static;
- ``FLOAT`` → an anonymous ``STRUCT`` of the same size with no members (``float`` is no struct
  name a C compiler would accept);
- ``TYPE_TAG`` → ``CONST`` (a modifier the kernel skips the same way);
- without ENUM64: a signed ``ENUM`` loses its kind_flag, and ``ENUM64`` → ``UNION`` of the same
  size whose members (named as the enumerators) are all a 1-byte ``enum64_placeholder`` INT at
  offset 0.

What the kernel supports is not known here (rule 1: no system calls); the caller says, in a
:class:`BTFSupport` that ``pybpf.sys.features`` fills from its probes.
"""

from __future__ import annotations

from collections import Counter

from pybpf.btf.model import (
    BTF,
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
    Int,
    IntEncoding,
    Member,
    Struct,
    Typedef,
    TypeTag,
    UnionType,
    Var,
)
from pybpf.record import field_names, record, replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from pybpf.btf.types import Type

ENUM64_PLACEHOLDER = "enum64_placeholder"


@record
class BTFSupport:
    """Which BTF features the kernel accepts (each True unless a probe said otherwise).

    The field names are the features' names without ``BTF_`` (``pybpf.sys.features.Feature``).
    """

    func: bool = True  # FUNC and FUNC_PROTO, func_info/line_info (Linux 5.0)
    datasec: bool = True  # DATASEC and VAR (5.2)
    global_func: bool = True  # FUNC with BTF_FUNC_GLOBAL linkage (5.6)
    float: bool = True  # FLOAT (5.13)
    decl_tag: bool = True  # DECL_TAG (5.16)
    type_tag: bool = True  # TYPE_TAG (5.17)
    enum64: bool = True  # ENUM64 and signed ENUM (6.0)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(n for n in field_names(self) if not getattr(self, n))


@record
class Change:
    """One kind of rewrite applied ``count`` times because the kernel lacks ``missing``."""

    missing: str  # a BTFSupport field name
    what: str  # "DECL_TAG"
    into: str  # "INT"
    count: int

    def __str__(self) -> str:
        noun = "type" if self.count == 1 else "types"
        return f"{self.count} {self.what} {noun} sanitised to {self.into}"


@record
class Sanitised:
    btf: BTF
    changes: tuple[Change, ...]


# (missing feature, what, into) for one type under ``support``, and its replacement; None when
# the type stays. libbpf's order: the first rule that matches a type is the one applied.
if TYPE_CHECKING:
    _Rule = Optional[tuple[tuple[str, str, str], Type]]


def _rule(t: Type, s: BTFSupport, placeholder: int) -> _Rule:
    if isinstance(t, Var) and not s.datasec:
        return ("datasec", "VAR", "INT"), _int1(t.name)
    if isinstance(t, DeclTag) and not s.decl_tag:
        return ("decl_tag", "DECL_TAG", "INT"), _int1(t.name)
    if isinstance(t, Datasec) and not s.datasec:
        return ("datasec", "DATASEC", "STRUCT"), _datasec_struct(t)
    if isinstance(t, FuncProto) and not s.func:
        values = tuple(EnumValue(p.name, p.type) for p in t.params)
        return ("func", "FUNC_PROTO", "ENUM"), Enum("", 4, False, values)
    if isinstance(t, Func) and not s.func:
        return ("func", "FUNC", "TYPEDEF"), Typedef(t.name, t.type)
    if isinstance(t, Func) and not s.global_func and t.linkage != FuncLinkage.STATIC:
        return ("global_func", "global FUNC", "static FUNC"), replace(t, linkage=FuncLinkage.STATIC)
    if isinstance(t, Float) and not s.float:
        return ("float", "FLOAT", "STRUCT"), Struct("", t.size, ())
    if isinstance(t, TypeTag) and not s.type_tag:
        return ("type_tag", "TYPE_TAG", "CONST"), Const(t.type)
    if type(t) is Enum and t.signed and not s.enum64:
        values = tuple(EnumValue(v.name, v.value & 0xFFFFFFFF) for v in t.values)
        return ("enum64", "signed ENUM", "unsigned ENUM"), Enum(t.name, t.size, False, values)
    if isinstance(t, Enum64) and not s.enum64:
        members = tuple(Member(v.name, placeholder, 0) for v in t.values)
        return ("enum64", "ENUM64", "UNION"), UnionType(t.name, t.size, members)
    return None


def _int1(name: str) -> Int:
    return Int(name, 1, IntEncoding.NONE, 0, 8)


def _datasec_struct(t: Datasec) -> Struct:
    # Members are named after the variables; the caller renames them (it has the BTF).
    name = t.name.replace(".", "_").replace("?", "_")
    return Struct(name, t.size, tuple(Member("", v.type_id, v.offset * 8) for v in t.vars))


def features_used(btf: BTF) -> frozenset[str]:
    """The :class:`BTFSupport` fields that matter to ``btf``: those of the kinds its own types
    use (a rule above can only rewrite a type of such a kind). The others need not be asked of
    the kernel: whatever it answers, nothing of theirs is there to rewrite."""
    used = set()
    for t in btf.own_types:
        if isinstance(t, (Var, Datasec)):
            used.add("datasec")
        elif isinstance(t, DeclTag):
            used.add("decl_tag")
        elif isinstance(t, FuncProto):
            used.add("func")
        elif isinstance(t, Func):
            used.add("func")
            if t.linkage != FuncLinkage.STATIC:
                used.add("global_func")
        elif isinstance(t, Float):
            used.add("float")
        elif isinstance(t, TypeTag):
            used.add("type_tag")
        elif isinstance(t, Enum64) or (type(t) is Enum and t.signed):
            used.add("enum64")
    return frozenset(used)


def sanitize(btf: BTF, support: BTFSupport) -> Sanitised:
    """``btf`` rewritten for a kernel with ``support``, and what was changed (by kind).

    The object's BTF is not modified; when nothing needs to change it is returned itself.
    """
    if not support.missing:
        return Sanitised(btf, ())
    placeholder = 0
    if not support.enum64 and any(isinstance(t, Enum64) for t in btf.own_types):
        placeholder = len(btf.types)  # appended after every existing type, as libbpf does
    changes: dict[int, Type] = {}
    counts: Counter = Counter()
    for tid, t in enumerate(btf.own_types, btf.first_id):
        found = _rule(t, support, placeholder)
        if found is None:
            continue
        key, new = found
        if isinstance(t, Datasec) and isinstance(new, Struct):
            members = tuple(replace(m, name=btf.name_of(m.type_id)) for m in new.members)
            new = replace(new, members=members)
        changes[tid] = new
        counts[key] += 1
    if not changes:
        return Sanitised(btf, ())
    added = [Int(ENUM64_PLACEHOLDER, 1, IntEncoding.NONE, 0, 8)] if placeholder else []
    report = tuple(Change(m, what, into, n) for (m, what, into), n in counts.items())
    return Sanitised(btf.replace_types(changes, added), report)
