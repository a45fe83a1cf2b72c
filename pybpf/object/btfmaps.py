"""BTF-defined maps: reading map definitions out of the ``.maps`` DATASEC.

``.maps`` holds only zeros; what a map is lives in the *type* of its variable, a struct whose
members encode the definition in their types, so the compiler records it in BTF:

- ``__uint(max_entries, 1024)`` is ``int (*max_entries)[1024]``: the number is the array length;
- ``__type(key, struct flow)`` is ``struct flow *key``: the key is the pointee (size = sizeof);
- ``__array(values, struct inner)`` is ``struct inner *values[]``: a zero-length array of pointers
  to the inner map's own definition struct (map-in-map), or to a function prototype (program
  array); initial entries (``.values = { [2] = &inner_b }``) are ELF relocations in ``.maps``.
- ``__ulong(map_extra, N)`` (newer headers) is an enum whose single value is N.
"""

from __future__ import annotations

from pybpf.btf.model import (
    BTF,
    Array,
    Datasec,
    Enum,
    FuncProto,
    Member,
    Ptr,
    Struct,
    UnionType,
    Var,
)
from pybpf.errors import BTFError
from pybpf.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

MAP_TYPE_PROG_ARRAY = 3
MAP_TYPE_ARRAY_OF_MAPS = 12
MAP_TYPE_HASH_OF_MAPS = 13
PIN_NONE, PIN_BY_NAME = 0, 1  # enum libbpf_pin_type
POINTER_SIZE = 8


@record
class BTFMapDef:
    """One map as its BTF definition describes it (0 where the definition is silent).

    ``offset``/``size`` place the map's variable in ``.maps``; ``values_offset`` is where its
    ``values`` array starts inside the variable (None without one) and ``values_stride`` the size
    of one slot, so a relocation at ``.maps+r`` initialises slot
    ``(r - offset - values_offset) // values_stride``.
    """

    name: str
    offset: int
    size: int
    map_type: int = 0
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    map_flags: int = 0
    numa_node: int = 0
    pinning: int = PIN_NONE
    map_extra: int = 0
    key_type_id: int = 0
    value_type_id: int = 0
    inner: Optional[BTFMapDef] = None
    values_offset: Optional[int] = None
    values_stride: int = POINTER_SIZE
    type_id: int = 0  # the definition struct's BTF id

    @property
    def offset_in_section(self) -> int:
        return self.offset


def parse_btf_maps(btf: BTF, section: str = ".maps") -> list[BTFMapDef]:
    """Every map variable of the DATASEC ``section``, in the order of their offsets."""
    sec_id = btf.find(section, Datasec)
    if sec_id is None:
        return []
    sec = btf.type(sec_id)
    out = []
    for vsi in sec.vars:
        var = btf.type(vsi.type_id)
        if not isinstance(var, Var):
            raise BTFError(f"{section}: entry {vsi.type_id} is a {var.kind.name}, not a VAR")
        def_id = btf.resolve(var.type)
        fields = _parse_def(btf, var.name, def_id, is_inner=False)
        out.append(BTFMapDef(var.name, vsi.offset, vsi.size, type_id=def_id, **fields))
    return out


def _parse_def(btf: BTF, name: str, def_id: int, is_inner: bool) -> dict:
    t = btf.type(def_id)
    if type(t) is not Struct:
        raise BTFError(
            f"map '{name}': its definition is {btf.format(def_id)}, not a struct "
            "(declare it with __uint/__type/__array members)"
        )
    f: dict = {}
    for i, m in enumerate(t.members):
        if not m.name:
            raise BTFError(f"map '{name}': member #{i} of its definition has no name")
        if m.name in _FIELD_KEYS:
            _set(f, name, _FIELD_KEYS[m.name], _int_field(btf, name, m))
        elif m.name in ("key", "value"):
            type_id, size = _type_field(btf, name, m)
            _set(f, name, f"{m.name}_size", size)
            f[f"{m.name}_type_id"] = type_id
        elif m.name == "values":
            if i != len(t.members) - 1:
                raise BTFError(f"map '{name}': 'values' must be the last member of the definition")
            _values_field(btf, name, m, f, is_inner)
        elif m.name == "pinning":
            if is_inner:
                raise BTFError(f"map '{name}': an inner map definition cannot be pinned")
            pinning = _int_field(btf, name, m)
            if pinning not in (PIN_NONE, PIN_BY_NAME):
                raise BTFError(
                    f"map '{name}': pinning {pinning} is neither NONE (0) nor BY_NAME (1)"
                )
            f["pinning"] = pinning
        elif m.name == "map_extra":
            f["map_extra"] = _long_field(btf, name, m)
        else:
            raise BTFError(
                f"map '{name}': unknown member '{m.name}' in its definition (known: "
                "type, key, value, key_size, value_size, max_entries, map_flags, numa_node, "
                "pinning, map_extra, values)"
            )
    if not f.get("map_type"):
        raise BTFError(
            f"map '{name}': the definition does not say the map's type (__uint(type, …))"
        )
    return f


# definition member -> BTFMapDef field
_FIELD_KEYS = {
    "type": "map_type",
    "max_entries": "max_entries",
    "map_flags": "map_flags",
    "numa_node": "numa_node",
    "key_size": "key_size",
    "value_size": "value_size",
}


def _set(f: dict, name: str, key: str, value: int) -> None:
    """Set a field; the same size said twice (``key`` and ``key_size``) must agree."""
    if key in f and f[key] != value:
        raise BTFError(f"map '{name}': conflicting {key} {f[key]} != {value}")
    f[key] = value


def _int_field(btf: BTF, name: str, m: Member) -> int:
    """``__uint(field, N)``: a pointer to an array of N elements."""
    t = btf.type(btf.resolve(m.type_id))
    if not isinstance(t, Ptr):
        raise BTFError(
            f"map '{name}': '{m.name}' is {btf.format(m.type_id)}; expected __uint({m.name}, N), "
            "a pointer to an array"
        )
    arr = btf.type(t.type)
    if not isinstance(arr, Array):
        raise BTFError(
            f"map '{name}': '{m.name}' points to {btf.format(t.type)}, not to an array "
            f"(write __uint({m.name}, N))"
        )
    return arr.nelems


def _long_field(btf: BTF, name: str, m: Member) -> int:
    """``__ulong(field, N)`` is an enum with one value N; ``__uint`` works too."""
    t = btf.type(btf.resolve(m.type_id))
    if isinstance(t, Ptr):
        return _int_field(btf, name, m)
    if isinstance(t, Enum) and len(t.values) == 1:
        return t.values[0].value
    raise BTFError(f"map '{name}': '{m.name}' is {btf.format(m.type_id)}; expected __ulong/__uint")


def _type_field(btf: BTF, name: str, m: Member) -> tuple[int, int]:
    """``__type(key, T)``: a pointer to T; returns (T's id, sizeof T)."""
    t = btf.type(btf.resolve(m.type_id))
    if not isinstance(t, Ptr):
        raise BTFError(
            f"map '{name}': '{m.name}' is {btf.format(m.type_id)}; expected __type({m.name}, T), "
            "a pointer to T"
        )
    try:
        size = btf.sizeof(t.type)
    except BTFError:
        raise BTFError(
            f"map '{name}': {m.name} type {btf.format(t.type)} has no size "
            "(a forward declaration or void?)"
        ) from None
    return t.type, size


def _values_field(btf: BTF, name: str, m: Member, f: dict, is_inner: bool) -> None:
    """``__array(values, T)``: inner map definition (map-in-map) or program type (prog array)."""
    if is_inner:
        raise BTFError(f"map '{name}': an inner map cannot have inner maps itself")
    map_type = f.get("map_type", 0)
    is_map_in_map = map_type in (MAP_TYPE_ARRAY_OF_MAPS, MAP_TYPE_HASH_OF_MAPS)
    if not is_map_in_map and map_type != MAP_TYPE_PROG_ARRAY:
        raise BTFError(
            f"map '{name}': only map-in-map and prog-array maps have 'values' "
            "(and __uint(type, …) must come before it)"
        )
    _set(f, name, "value_size", 4)  # the kernel stores a map or program fd/id
    arr = btf.type(m.type_id)
    if not isinstance(arr, Array) or arr.nelems:
        raise BTFError(f"map '{name}': 'values' must be a zero-length array (use __array)")
    ptr = btf.type(btf.resolve(arr.type))
    if not isinstance(ptr, Ptr):
        raise BTFError(f"map '{name}': 'values' holds {btf.format(arr.type)}, not pointers")
    target_id = btf.resolve(ptr.type)
    target = btf.type(target_id)
    f["values_offset"] = m.bit_offset // 8
    f["values_stride"] = btf.sizeof(arr.type)
    if not is_map_in_map:
        if not isinstance(target, FuncProto):
            raise BTFError(
                f"map '{name}': a prog array's values must point to a function prototype, "
                f"not {btf.format(target_id)}"
            )
        return
    if not isinstance(target, Struct) or isinstance(target, UnionType):
        raise BTFError(
            f"map '{name}': a map-in-map's values must point to an inner map definition "
            f"struct, not {btf.format(target_id)}"
        )
    inner_name = f"{name}.inner"
    inner_fields = _parse_def(btf, inner_name, target_id, is_inner=True)
    f["inner"] = BTFMapDef(inner_name, 0, 0, type_id=target_id, **inner_fields)
