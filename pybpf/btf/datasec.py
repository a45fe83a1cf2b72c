"""DATASEC layout: what libbpf does to an object's DATASECs before the kernel sees them.

clang leaves each DATASEC's size and its variables' offsets 0, and marks the externs of
``.kconfig`` and ``.ksyms`` ``extern``, which the kernel refuses. The sizes come from the ELF
section headers, the offsets from the symbols' ``st_value``, and the two extern sections, which
have no ELF section, are laid out the way libbpf lays them out. The kernel wants each DATASEC's
variables sorted by offset. ``BTF.with_datasec_fixup`` is the way in.
"""

from __future__ import annotations

from pybpf.btf.types import (
    Datasec,
    Func,
    FuncLinkage,
    FuncProto,
    Int,
    IntEncoding,
    Param,
    Var,
    VarLinkage,
    VarSecinfo,
)
from pybpf.errors import BTFError
from pybpf.record import replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Collection, Iterable, Mapping

    from pybpf.btf.model import BTF
    from pybpf.btf.types import Type


def fixup(
    btf: BTF,
    section_sizes: Mapping[str, int],
    symbol_offsets: Mapping[str, Mapping[str, int]],
    hidden: Collection[str] = (),
) -> BTF:
    """``btf`` with its own DATASECs laid out (see ``BTF.with_datasec_fixup``), or ``btf``
    itself when nothing changes."""
    changes: dict[int, Type] = {}
    added: list[Type] = []
    for tid, t in enumerate(btf.own_types, btf.first_id):
        if not isinstance(t, Datasec):
            continue
        if t.name == ".kconfig":
            changes.update(_kconfig_layout(btf, tid, t))
        elif t.name == ".ksyms":
            changes.update(_ksyms_layout(btf, tid, t, added))
        else:
            changes.update(_section_layout(btf, tid, t, section_sizes, symbol_offsets))
            changes.update(_hide(btf, t, hidden))
    return btf.replace_types(changes, added) if changes or added else btf


_U32 = 0xFFFFFFFF


def _sorted_datasec(t: Datasec, size: int, vars: Iterable[VarSecinfo]) -> Datasec:
    return Datasec(t.name, size, tuple(sorted(vars, key=lambda v: v.offset)))


def _section_layout(
    btf: BTF,
    tid: int,
    t: Datasec,
    section_sizes: Mapping[str, int],
    symbol_offsets: Mapping[str, Mapping[str, int]],
) -> dict[int, Type]:
    size = t.size
    fixup_offsets = size == 0
    if fixup_offsets:
        size = section_sizes.get(t.name, 0)
        if not size and t.vars:
            raise BTFError(
                f"BTF DATASEC {t.name}: the object has no section of that name to take its "
                "size from"
            )
    offsets = symbol_offsets.get(t.name, {})
    vars = []
    for v in t.vars:
        var = btf.type(v.type_id)
        offset = v.offset
        if isinstance(var, Var) and var.linkage != VarLinkage.GLOBAL_EXTERN and fixup_offsets:
            if var.name not in offsets:
                raise BTFError(
                    f"BTF DATASEC {t.name}: variable '{var.name}' has no symbol in the ELF "
                    "symbol table to take its offset from"
                )
            offset = offsets[var.name]
        vars.append(VarSecinfo(v.type_id, offset, v.size))
    if size > _U32 or any(v.offset > _U32 for v in vars):
        # A damaged ELF header or symbol: BTF holds sizes and offsets in 32 bits.
        raise BTFError(f"BTF DATASEC {t.name}: size or offset does not fit in 32 bits ({size})")
    new = _sorted_datasec(t, size, vars)
    return {tid: new} if new != t else {}


def _hide(btf: BTF, t: Datasec, hidden: Collection[str]) -> dict[int, Type]:
    changes: dict[int, Type] = {}
    for v in t.vars:
        var = btf.type(v.type_id)
        if (
            isinstance(var, Var)
            and var.name in hidden
            and var.linkage == VarLinkage.GLOBAL_ALLOCATED
        ):
            changes[v.type_id] = replace(var, linkage=VarLinkage.STATIC)
    return changes


def _kconfig_layout(btf: BTF, tid: int, t: Datasec) -> dict[int, Type]:
    """libbpf's .kconfig map: most-aligned first, then smaller first, then by name."""
    externs = []
    for v in t.vars:
        var = btf.type(v.type_id)
        if not isinstance(var, Var):
            raise BTFError(f"BTF DATASEC .kconfig: entry {v.type_id} is not a VAR")
        externs.append((-btf.alignof(var.type), btf.sizeof(var.type), var.name, v.type_id, var))
    changes: dict[int, Type] = {}
    offset = 0
    placed = []
    for neg_align, size, _, var_id, var in sorted(externs):
        align = -neg_align
        offset = (offset + align - 1) // align * align
        placed.append(VarSecinfo(var_id, offset, size))
        changes[var_id] = replace(var, linkage=VarLinkage.GLOBAL_ALLOCATED)
        offset += size
    changes[tid] = _sorted_datasec(t, offset, placed)
    return changes


def _ksyms_layout(btf: BTF, tid: int, t: Datasec, added: list[Type]) -> dict[int, Type]:
    """libbpf's .ksyms: every extern becomes a 4-byte int slot; functions point at a dummy var.

    The kernel checks a DATASEC entry's size against its type, and a typed ksym's local type
    (``struct rq``) says nothing true about the kernel's, so the entry is given an int to hold.
    """
    int_id = next((i for i, x in enumerate(btf.types) if isinstance(x, Int) and x.bits == 32), None)
    if int_id is None:
        int_id = len(btf.types) + len(added)
        added.append(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    changes: dict[int, Type] = {}
    dummy_id = None
    vars = []
    for i, v in enumerate(t.vars):
        x = btf.type(v.type_id)
        type_id = v.type_id
        if isinstance(x, Func):
            if dummy_id is None:
                dummy_id = len(btf.types) + len(added)
                added.append(Var("dummy_ksym", int_id, VarLinkage.GLOBAL_ALLOCATED))
            changes[v.type_id] = replace(x, linkage=FuncLinkage.GLOBAL)
            proto = btf.type(x.type)
            if isinstance(proto, FuncProto):
                # a global func's arguments must have names; reuse the dummy's, as libbpf does
                params = tuple(
                    Param(p.name or ("dummy_ksym" if p.type else ""), p.type) for p in proto.params
                )
                changes[x.type] = FuncProto(proto.return_type, params)
            type_id = dummy_id
        elif isinstance(x, Var):
            changes[v.type_id] = Var(x.name, int_id, VarLinkage.GLOBAL_ALLOCATED)
        vars.append(VarSecinfo(type_id, 4 * i, 4))
    changes[tid] = Datasec(t.name, 4 * len(vars), tuple(vars))
    return changes
