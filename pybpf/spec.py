"""What an object file says, as plain data: programs, maps, relocations, global variables.

Nothing here touches the kernel (rule 1 of the design): an ``ObjectSpec`` is built by
``pybpf.elf.read_object`` from the bytes of a file, can be inspected, and can have its ``.rodata``
constants changed before ``spec.load()`` makes it live.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Optional, Union

from pybpf.errors import BPFError
from pybpf.insn import Instruction

if TYPE_CHECKING:  # pragma: no cover
    from pybpf.btf import BTF
    from pybpf.btf_ext import BTFExt
    from pybpf.loader import LoadedObject


class RelocKind(Enum):
    """What a relocated instruction refers to; decided by the target's section, not the ELF type."""

    MAP = "map"  # ld_imm64 of a map (symbol in .maps or legacy maps)
    DATA = "data"  # ld_imm64 of a global variable (symbol in .rodata*/.data*/.bss)
    CALL = "call"  # bpf-to-bpf call into a subprogram
    FUNC = "func"  # ld_imm64 of a function's address (callback for bpf_loop & co)
    KCONFIG = "kconfig"  # ld_imm64 of a .kconfig extern
    KSYM = "ksym"  # ld_imm64 / call of a kernel symbol extern (.ksyms, kfuncs)


@dataclass(frozen=True)
class Relocation:
    """One relocation against an instruction of a section.

    ``insn_idx`` is the instruction's index in its section. ``symbol`` names what it refers to
    (a map, a variable, a function, or the section itself for section symbols). ``target_section``
    is the section the symbol lives in. ``offset`` is the symbol's value (st_value): for data the
    byte offset of the variable, for calls the callee's byte offset in its section.
    """

    insn_idx: int
    kind: RelocKind
    symbol: str
    target_section: str
    offset: int


@dataclass(frozen=True)
class Function:
    """A function symbol's instructions, cut out of its section."""

    name: str
    section: str
    insn_start: int  # index of the first instruction in the section
    insns: tuple[Instruction, ...]
    is_global: bool


@dataclass(frozen=True)
class ProgramSpec:
    """An entry point: a global function in an executable section other than ``.text``."""

    name: str
    section: str
    prog_type: str  # enum bpf_prog_type name without prefix, e.g. "XDP"
    attach_type: Optional[str]  # enum bpf_attach_type name, e.g. "XDP"
    attach_target: str  # what follows the type in the section name ("func" of "fentry/func")
    needs_btf_target: bool
    prog_flags: int
    insn_start: int  # where its instructions start in the section
    insns: tuple[Instruction, ...]
    license: str
    kern_version: int

    def __len__(self) -> int:
        return len(self.insns)


@dataclass(frozen=True)
class MapSpec:
    """A map the object asks for: from ``.maps`` (BTF), the legacy ``maps`` section, or a data
    section (``.rodata``, ``.data.foo``, ``.bss``, ``.kconfig``) that becomes a one-entry array."""

    name: str  # the name the kernel will be given (15 characters at most)
    origin: str  # ".maps", "maps" (legacy) or the data section's name
    map_type: str  # enum bpf_map_type name without prefix, e.g. "RINGBUF"
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    key_type_id: int = 0  # BTF type ids (0 when unknown)
    value_type_id: int = 0
    inner: Optional[MapSpec] = None  # the inner map's template (array/hash of maps)
    pinning: int = 0  # 1 = LIBBPF_PIN_BY_NAME
    map_extra: int = 0
    numa_node: int = 0
    # Initial contents: for data sections, the section's bytes; for prog arrays and
    # map-in-map, (index, symbol name) pairs from the `.values = { ... }` initialiser.
    data: bytes = b""
    init_slots: tuple[tuple[int, str], ...] = ()

    @property
    def is_data_section(self) -> bool:
        return self.origin not in (".maps", "maps")

    @property
    def frozen_after_fill(self) -> bool:
        """``.rodata*`` and ``.kconfig`` are read-only to programs and frozen from user space."""
        return self.origin.startswith(".rodata") or self.origin == ".kconfig"


@dataclass(frozen=True)
class SectionHeader:
    """An ELF section as ``pybpf inspect`` lists it."""

    index: int
    name: str
    type: str  # SHT_PROGBITS, SHT_NOBITS, SHT_REL, ...
    size: int
    flags: str  # "AX", "WA", ... as readelf spells sh_flags


@dataclass(frozen=True)
class Variable:
    """A global variable in a data section, as its symbol and BTF describe it."""

    name: str
    section: str
    offset: int
    size: int
    type_id: int = 0


class ObjectSpec:
    """Everything read from one BPF object file.

    ``programs``, ``maps`` and ``functions`` are immutable specs. The only thing a user changes
    between parse and load is the initial value of global variables: ``spec.rodata["cfg"] = 7``
    (or ``spec.variables``), which edits this spec's copy of the section bytes.
    """

    def __init__(
        self,
        *,
        path: str,
        name: str,
        little_endian: bool,
        license: str,
        kern_version: int,
        programs: dict[str, ProgramSpec],
        functions: dict[str, Function],
        sections: dict[str, tuple[Instruction, ...]],
        relocations: dict[str, tuple[Relocation, ...]],
        maps: dict[str, MapSpec],
        variables: dict[str, Variable],
        externs: dict[str, str],
        btf: Optional[BTF],
        btf_ext: Optional[BTFExt],
        section_headers: tuple[SectionHeader, ...] = (),
        weak_externs: frozenset = frozenset(),
    ) -> None:
        self.path = path
        self.name = name
        self.little_endian = little_endian
        self.license = license
        self.kern_version = kern_version
        self.programs = programs
        self.functions = functions
        self.sections = sections  # executable section name -> its instructions
        self.relocations = relocations  # executable section name -> its relocations
        self.maps = maps
        self.variables = variables
        self.externs = externs  # extern symbol name -> ".kconfig" / ".ksyms"
        self.btf = btf
        self.btf_ext = btf_ext
        self.section_headers = section_headers
        self.weak_externs = weak_externs  # externs that may be missing (resolved to 0)
        self._data = {m.origin: bytearray(m.data) for m in maps.values() if m.is_data_section}
        self.rodata = VariableView(self, readonly_sections=True)
        self.data = VariableView(self, readonly_sections=False)

    def set_max_entries(self, map_name: str, max_entries: int) -> None:
        """Resize a map before load (a ring buffer's size, a table's capacity)."""
        ms = self.maps.get(map_name)
        if ms is None:
            raise BPFError(f"{self.name}: no map named '{map_name}'")
        if max_entries < 1:
            raise BPFError(f"{self.name}: map '{map_name}': max_entries must be at least 1")
        self.maps[map_name] = dataclasses.replace(ms, max_entries=max_entries)

    def section_data(self, section: str) -> bytes:
        """The current initial contents of a data section (with any values set by the user)."""
        return bytes(self._data[section])

    def load(self, **kwargs) -> LoadedObject:
        """Create the maps and programs in the kernel. See ``pybpf.loader.load``."""
        from pybpf.loader import load

        return load(self, **kwargs)

    @classmethod
    def from_file(cls, path: str) -> ObjectSpec:
        from pybpf.elf import read_object

        return read_object(path)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "object") -> ObjectSpec:
        from pybpf.elf import read_object_bytes

        return read_object_bytes(data, name)

    def __repr__(self) -> str:
        return f"<ObjectSpec {self.name}: {len(self.programs)} programs, {len(self.maps)} maps>"


Value = Union[int, bytes, bytearray, str]


class VariableView:
    """``spec.rodata[name] = value``: set a global variable's initial value before load.

    Ints are encoded in the object's byte order with the variable's size; bytes must fit the
    variable (shorter values are zero-padded); str is encoded as UTF-8 bytes.
    """

    def __init__(self, spec: ObjectSpec, readonly_sections: bool) -> None:
        self.spec = spec
        self.readonly_sections = readonly_sections

    def _mine(self, var: Variable) -> bool:
        return var.section.startswith(".rodata") == self.readonly_sections

    def names(self) -> list[str]:
        return sorted(v.name for v in self.spec.variables.values() if self._mine(v))

    def _var(self, name: str) -> Variable:
        var = self.spec.variables.get(name)
        if var is None or not self._mine(var):
            where = ".rodata" if self.readonly_sections else ".data/.bss"
            known = self.names()
            raise BPFError(
                f"{self.spec.name}: no global variable '{name}' in {where}"
                + (f" (known: {', '.join(known)})" if known else "")
            )
        return var

    def __contains__(self, name: str) -> bool:
        var = self.spec.variables.get(name)
        return var is not None and self._mine(var)

    def __getitem__(self, name: str) -> bytes:
        var = self._var(name)
        buf = self.spec._data[var.section]
        return bytes(buf[var.offset : var.offset + var.size])

    def update_from(self, values: dict[str, Value]) -> None:
        """Set several variables; each as ``view[name] = value``."""
        for name, value in values.items():
            self[name] = value

    def get_int(self, name: str, signed: bool = False) -> int:
        order = "little" if self.spec.little_endian else "big"
        return int.from_bytes(self[name], order, signed=signed)

    def __setitem__(self, name: str, value: Value) -> None:
        var = self._var(name)
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            order = "little" if self.spec.little_endian else "big"
            try:
                raw = value.to_bytes(var.size, order, signed=value < 0)
            except OverflowError:
                raise BPFError(
                    f"{self.spec.name}: value {value} does not fit '{name}' ({var.size} bytes)"
                ) from None
        else:
            raw = value.encode() if isinstance(value, str) else bytes(value)
            if len(raw) > var.size:
                raise BPFError(
                    f"{self.spec.name}: {len(raw)} bytes do not fit '{name}' ({var.size} bytes)"
                )
            raw = raw.ljust(var.size, b"\0")
        self.spec._data[var.section][var.offset : var.offset + var.size] = raw
