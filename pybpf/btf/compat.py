"""When are two BTF types the same type? libbpf's two relations, used by CO-RE and by ``__ksym``.

*Compatible* (``types_are_compat``, ``fields_are_compat``) is the loose one CO-RE uses to pick
candidates and to accept a field: same kind, integers without bit offsets, pointers and arrays
compared through, function prototypes parameter by parameter. *Matching* (``types_match``, for
``bpf_core_type_matches``) is the strict one: the same shape by member names, enumerator names,
sizes. Both walk two BTF sources at once (the object's and the kernel's).
"""

from __future__ import annotations

from pybpf.btf.model import (
    Array,
    Enum,
    Float,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Ptr,
    Struct,
    UnionType,
    essential_name,
)
from pybpf.errors import BTFError


def _kinds_compat(a, b) -> bool:
    return a.kind == b.kind or (isinstance(a, Enum) and isinstance(b, Enum))


def types_are_compat(local, local_id: int, target, targ_id: int, level: int = 32) -> bool:
    """libbpf's loose compatibility for TYPE_EXISTS/TYPE_SIZE/TYPE_ID_TARGET."""
    if not _kinds_compat(local.type(local_id), target.type(targ_id)):
        return False
    for _ in range(32):
        local_id, targ_id = local.resolve(local_id), target.resolve(targ_id)
        lt, tt = local.type(local_id), target.type(targ_id)
        if not _kinds_compat(lt, tt):
            return False
        if isinstance(lt, (Struct, Enum, Fwd)) or lt.kind == Kind.UNKN:
            return True
        if isinstance(lt, Int):
            return lt.offset == 0 and tt.offset == 0
        if isinstance(lt, (Ptr, Array)):
            local_id, targ_id = lt.type, tt.type
            continue
        if isinstance(lt, FuncProto):
            if len(lt.params) != len(tt.params) or level <= 0:
                return False
            for lp, tp in zip(lt.params, tt.params):
                if not types_are_compat(local, lp.type, target, tp.type, level - 1):
                    return False
            local_id, targ_id = lt.return_type, tt.return_type
            continue
        return False
    raise BTFError("type compatibility check recursed too deep")


def fields_are_compat(local, local_id: int, target, targ_id: int) -> bool:
    """Can a field of local type be read as the target's? (names of enums/fwds matter)."""
    for _ in range(32):
        local_id, targ_id = local.resolve(local_id), target.resolve(targ_id)
        lt, tt = local.type(local_id), target.type(targ_id)
        if isinstance(lt, Struct) and isinstance(tt, Struct):
            return True
        if not _kinds_compat(lt, tt):
            return False
        if isinstance(lt, (Ptr, Float)):
            return True
        if isinstance(lt, (Fwd, Enum)):
            le, te = essential_name(lt.name), essential_name(tt.name)
            return not le or not te or le == te
        if isinstance(lt, Int):
            return lt.offset == 0 and tt.offset == 0
        if isinstance(lt, Array):
            local_id, targ_id = lt.type, tt.type
            continue
        return False
    return False


# --- TYPE_MATCHES: the strict relation --------------------------------------------------------


def _names_match(local_name: str, targ_name: str) -> bool:
    if not targ_name:
        return not local_name
    return essential_name(local_name) == essential_name(targ_name)


def types_match(
    local, local_id: int, target, targ_id: int, behind_ptr: bool = False, level: int = 32
) -> bool:
    """libbpf's ``bpf_core_types_match``: same shape, by names, through pointers loosely."""
    if level <= 0:
        raise BTFError("type match recursed too deep")
    for _ in range(32):
        local_id, targ_id = local.resolve(local_id), target.resolve(targ_id)
        lt, tt = local.type(local_id), target.type(targ_id)
        if not _names_match(lt.name, tt.name):
            return False
        if lt.kind == Kind.UNKN:
            return tt.kind == Kind.UNKN
        if isinstance(lt, Fwd):
            if isinstance(tt, Fwd):
                return lt.is_union == tt.is_union
            return (
                behind_ptr and isinstance(tt, Struct) and isinstance(tt, UnionType) == lt.is_union
            )
        if isinstance(lt, Enum):
            return isinstance(tt, Enum) and _enums_match(lt, tt)
        if isinstance(lt, Struct):
            if behind_ptr:
                if isinstance(tt, Fwd):
                    return isinstance(lt, UnionType) == tt.is_union
                return lt.kind == tt.kind
            return lt.kind == tt.kind and _composites_match(local, lt, target, tt, level)
        if lt.kind != tt.kind:
            return False
        if isinstance(lt, Int):
            signed = IntEncoding.SIGNED
            return lt.size == tt.size and (lt.encoding & signed) == (tt.encoding & signed)
        if isinstance(lt, Ptr):
            behind_ptr = True
            local_id, targ_id = lt.type, tt.type
            continue
        if isinstance(lt, Array):
            if lt.nelems != tt.nelems:
                return False
            local_id, targ_id = lt.type, tt.type
            continue
        if isinstance(lt, FuncProto):
            if len(lt.params) != len(tt.params):
                return False
            for lp, tp in zip(lt.params, tt.params):
                if not types_match(local, lp.type, target, tp.type, behind_ptr, level - 1):
                    return False
            local_id, targ_id = lt.return_type, tt.return_type
            continue
        return False
    raise BTFError("type match recursed too deep")


def _enums_match(lt: Enum, tt: Enum) -> bool:
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return False
    return all(any(_names_match(lv.name, tv.name) for tv in tt.values) for lv in lt.values)


def _composites_match(local, lt: Struct, target, tt: Struct, level: int) -> bool:
    if len(lt.members) > len(tt.members):
        return False
    for lm in lt.members:
        if not any(
            _names_match(lm.name, tm.name)
            and types_match(local, lm.type_id, target, tm.type_id, False, level - 1)
            for tm in tt.members
        ):
            return False
    return True
