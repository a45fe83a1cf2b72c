"""Map specs from an object: BTF-defined maps in ``.maps``, the legacy ``maps`` section, and the
data sections (``.rodata``, ``.data``, ``.bss``, ``.kconfig``) that become one-entry arrays.

Pure reading, like the rest of ``pybpf.object.elf`` (whose reader mixes this class in): a definition
becomes a ``MapSpec`` with the names the kernel will see, libbpf's way.
"""

from __future__ import annotations

import struct

from pybpf.btf.model import BTF, Datasec, Var
from pybpf.errors import ParseError
from pybpf.object.btfmaps import parse_btf_maps
from pybpf.object.records import MapSpec

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:  # pragma: no cover
    from typing import Optional

    from pybpf.object.elf import Section, Symbol

SHT_NOBITS = "SHT_NOBITS"
MAX_NOBITS = 1 << 28  # a .bss this big (256 MiB) is damage, not a program's globals
MAX_KCONFIG = 1 << 16  # kconfig externs are a few integers and strings
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10
OBJ_NAME_LEN = 16  # the kernel's BPF_OBJ_NAME_LEN, with the terminating NUL
# struct bpf_elf_map (iproute2): bpf_map_def + id, pinning, inner_id, inner_idx
IPROUTE2_MAP_DEF_SIZE = 36


def is_data_section(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in (".rodata", ".data", ".bss"))


class MapReader:
    """The map part of the object reader (``elf._Reader`` provides sections and symbols)."""

    def _maps(self, btf: Optional[BTF]) -> dict[str, MapSpec]:
        maps: dict[str, MapSpec] = {}
        for m in (
            self._btf_maps(btf)
            + self._legacy_maps()
            + self._data_maps(btf)
            + (self._kconfig_map(btf))
        ):
            if m.name in maps:
                raise ParseError(f"map '{m.name}' is defined twice")
            maps[m.name] = m
        return maps

    def _btf_maps(self, btf: Optional[BTF]) -> list[MapSpec]:
        sec = self.by_name.get(".maps")
        if sec is None:
            return []
        if btf is None:
            raise ParseError("section .maps needs BTF to describe its maps, and there is no .BTF")
        defs = parse_btf_maps(btf, ".maps")
        self._check_maps_zeroed(sec, defs)
        self._check_global_maps(
            [s for s in self.symbols if s.shndx == sec.index and s.type != "STT_SECTION"]
        )
        slots = self._map_init_slots(sec, defs)
        return [_map_spec_from_btf(d, ".maps", slots.get(d.name, ())) for d in defs]

    def _check_global_maps(self, syms: list[Symbol]) -> None:
        """A static map is reached through its section symbol and an offset; like libbpf,
        refuse it rather than guess which definition the offset lands in."""
        for sym in syms:
            if sym.bind == "STB_LOCAL":
                raise ParseError(f"map '{sym.name}' is static: maps must be global variables")

    def _check_maps_zeroed(self, sec: Section, defs: list) -> None:
        """``.maps`` holds zeros: a definition lives in BTF, initial values in relocations."""
        nonzero = next((i for i, b in enumerate(sec.data) if b), None)
        if nonzero is None:
            return
        owner = next((d.name for d in defs if d.offset <= nonzero < d.offset + d.size), "?")
        raise ParseError(
            f"map '{owner}': .maps has a non-zero byte at offset {nonzero}; a BTF map definition "
            "cannot carry values (only prog arrays and maps of maps, through .values)"
        )

    def _map_init_slots(self, sec: Section, defs: list) -> dict[str, tuple[tuple[int, str], ...]]:
        """``.values = { [0] = &prog }``: relocations in .maps say which slot holds what."""
        out: dict[str, list[tuple[int, str]]] = {}
        for r_offset, sym in self._rel_entries(sec):
            owner = next(
                (
                    d
                    for d in defs
                    if d.values_offset is not None
                    and d.offset + d.values_offset <= r_offset < d.offset + d.size
                ),
                None,
            )
            if owner is None:
                raise ParseError(f"relocation at .maps+{r_offset} is not inside a map's values")
            slot = (r_offset - owner.offset - owner.values_offset) // 8
            out.setdefault(owner.name, []).append((slot, sym.name))
        return {k: tuple(sorted(v)) for k, v in out.items()}

    def _legacy_maps(self) -> list[MapSpec]:
        """The pre-BTF ``maps`` section: an array of struct bpf_map_def, one symbol each.

        The five u32 of bpf_map_def (type, key_size, value_size, max_entries, map_flags) are
        understood; iproute2's longer definition adds id, pinning, inner_id and inner_idx. Any
        other non-zero byte is a field we would silently ignore: refuse the object instead.
        """
        sec = self.by_name.get("maps")
        if sec is None:
            return []
        syms = sorted(
            (
                s
                for s in self.symbols
                if s.shndx == sec.index and s.name and s.type != "STT_SECTION"
            ),
            key=lambda s: s.value,
        )
        if not syms:
            return []
        size = sec.size // len(syms)
        if size < 20 or size * len(syms) != sec.size:
            raise ParseError(f"legacy maps section: {len(syms)} maps in {sec.size} bytes")
        self._check_global_maps(syms)
        order = "<" if self.little else ">"
        out = []
        for sym in syms:
            raw = sec.data[sym.value : sym.value + size]
            mtype, ksize, vsize, entries, flags = struct.unpack_from(order + "5I", raw)
            pinning = 0
            if size == IPROUTE2_MAP_DEF_SIZE:
                pinning = struct.unpack_from(order + "I", raw, 24)[0]
            elif any(raw[20:]):
                raise ParseError(
                    f"map '{sym.name}': its definition has {size - 20} bytes beyond "
                    "struct bpf_map_def that are not zero (unknown fields)"
                )
            out.append(
                MapSpec(sym.name, "maps", mtype, ksize, vsize, entries, flags, pinning=pinning)
            )
        return out

    def _kconfig_map(self, btf: Optional[BTF]) -> list[MapSpec]:
        """``extern unsigned int LINUX_KERNEL_VERSION __kconfig``: the loader fills a read-only
        one-entry array with the running kernel's values, laid out like the .kconfig DATASEC."""
        found = _kconfig_datasec(btf)
        if found is None:
            return []
        sec_id, ds = found
        if ds.size > MAX_KCONFIG:
            raise ParseError(f".kconfig: its BTF says {ds.size} bytes of kconfig externs")
        return [
            MapSpec(
                internal_map_name(self.name, ".kconfig"),
                ".kconfig",
                MAP_TYPE_ARRAY,
                4,
                ds.size,
                1,
                BPF_F_RDONLY_PROG,
                value_type_id=sec_id,
                data=bytes(ds.size),
            )
        ]

    def _data_maps(self, btf: Optional[BTF]) -> list[MapSpec]:
        out = []
        for sec in self.sections:
            if not is_data_section(sec.name) or sec.size == 0:
                continue
            flags = BPF_F_RDONLY_PROG if sec.name.startswith(".rodata") else 0
            value_type = 0
            if btf is not None:
                ds = btf.find(sec.name, Datasec)
                if ds is not None:
                    value_type = ds
                    if _has_global_var(btf, ds):
                        flags |= BPF_F_MMAPABLE
            if sec.type == SHT_NOBITS and sec.size > MAX_NOBITS:
                # A damaged header: zero-filling gigabytes would stall the parse.
                raise ParseError(f"section {sec.name}: size {sec.size} is implausibly large")
            data = sec.data if sec.type != SHT_NOBITS else bytes(sec.size)
            if len(data) != sec.size:
                # A header that claims more than the file holds (a truncated or damaged object).
                raise ParseError(
                    f"section {sec.name}: its header says {sec.size} bytes, "
                    f"the file holds {len(data)}"
                )
            out.append(
                MapSpec(
                    internal_map_name(self.name, sec.name),
                    sec.name,
                    MAP_TYPE_ARRAY,
                    4,
                    sec.size,
                    1,
                    flags,
                    value_type_id=value_type,
                    data=data,
                )
            )
        return out


MAP_TYPE_ARRAY = 2


def _kconfig_datasec(btf: Optional[BTF]):
    """(type id, DATASEC) of ``.kconfig`` when the object declares kconfig externs."""
    if btf is None:
        return None
    sec_id = btf.find(".kconfig", Datasec)
    if sec_id is None or not btf.type(sec_id).vars:
        return None
    return sec_id, btf.type(sec_id)


def internal_map_name(obj_name: str, section: str) -> str:
    """The kernel name libbpf gives a data-section map: ``<object prefix><section>``.

    Up to 8 characters of the object's name, then the section name, 15 characters in all
    (``minimal.rodata`` for minimal.bpf.o); custom sections with a second dot
    (``.rodata.cfg``) get no prefix.
    """
    limit = OBJ_NAME_LEN - 1
    suffix = min(max(7, len(section)), limit)
    prefix = 0 if "." in section[1:] else min(limit - suffix, len(obj_name))
    return kernel_name(obj_name[:prefix] + section[:suffix])


def kernel_name(name: str) -> str:
    """Names the kernel accepts: letters, digits, '_' and '.', at most 15 characters."""
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name[: OBJ_NAME_LEN - 1])


def _map_spec_from_btf(d, origin: str, slots: tuple[tuple[int, str], ...]) -> MapSpec:
    inner = _map_spec_from_btf(d.inner, origin, ()) if d.inner is not None else None
    return MapSpec(
        name=d.name,
        origin=origin,
        map_type=d.map_type,
        key_size=d.key_size,
        value_size=d.value_size,
        max_entries=d.max_entries,
        flags=d.map_flags,
        key_type_id=d.key_type_id,
        value_type_id=d.value_type_id,
        inner=inner,
        pinning=d.pinning,
        map_extra=d.map_extra,
        numa_node=d.numa_node,
        init_slots=slots,
    )


def _has_global_var(btf: BTF, datasec_id: int) -> bool:
    """libbpf makes a data map mmap-able when one of its variables is not static."""
    ds = btf.type(datasec_id)
    return any(
        isinstance(btf.type(v.type_id), Var) and btf.type(v.type_id).linkage != 0 for v in ds.vars
    )
