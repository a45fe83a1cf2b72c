"""An object file as plain data: ``ObjectSpec``, what a loader turns into live kernel objects.

Nothing here touches the kernel (rule 1 of the design): ``ObjectSpec.from_file`` has
``pybpf.object.elf`` read the bytes of a file into the records of ``pybpf.object.records``; the
spec can then be inspected, and have its ``.rodata`` constants changed, before
``pybpf.load(spec)`` makes it live.
"""

from __future__ import annotations

from pybpf.asm.insn import Instruction
from pybpf.errors import BPFError
from pybpf.object.elf import read_elf, read_elf_bytes
from pybpf.object.records import (
    Function,
    MapSpec,
    ProgramSpec,
    Relocation,
    RelocKind,
    SectionHeader,
    Variable,
)
from pybpf.object.structops import StructOpsSpec
from pybpf.record import replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:  # pragma: no cover
    from typing import Iterable, Optional, Union

    from pybpf.btf.ext import BTFExt
    from pybpf.btf.model import BTF

__all__ = [
    "Function",
    "MapSpec",
    "ObjectSpec",
    "ProgramSpec",
    "Relocation",
    "RelocKind",
    "SectionHeader",
    "StructOpsSpec",
    "Variable",
    "VariableView",
]


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
        struct_ops: Optional[dict[str, StructOpsSpec]] = None,
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
        self.struct_ops = struct_ops or {}  # struct_ops variable name -> what it implements
        self._data = {m.origin: bytearray(m.data) for m in maps.values() if m.is_data_section}
        self.rodata = VariableView(self, readonly_sections=True)
        self.data = VariableView(self, readonly_sections=False)
        # subprogram name -> instructions the linker appends instead of its compiled body
        self.replaced: dict[str, tuple[Instruction, ...]] = {}

    def replace_function(self, name: str, insns: Iterable[Instruction]) -> None:
        """Load generated ``insns`` in place of subprogram ``name``'s body (a ``__noinline``
        stub in the C source); checked now, used by the linker (``pybpf.object.splice``)."""
        from pybpf.object.splice import check_replacement

        self.replaced[name] = check_replacement(self, name, insns)

    def set_max_entries(self, map_name: str, max_entries: int) -> None:
        """Resize a map before load (a ring buffer's size, a table's capacity)."""
        self.set_map_size(map_name, max_entries=max_entries)

    def set_map_size(
        self, map_name: str, *, max_entries: Optional[int] = None, value_size: Optional[int] = None
    ) -> None:
        """Size a map before load, as a tool's own loader does with libbpf's
        ``bpf_map__set_max_entries`` and ``bpf_map__set_value_size`` (a stack-trace map's count
        and depth, which the object may leave at 0)."""
        ms = self.maps.get(map_name)
        if ms is None:
            raise BPFError(f"{self.name}: no map named '{map_name}'")
        sizes = {"max_entries": max_entries, "value_size": value_size}
        sizes = {field: n for field, n in sizes.items() if n is not None}
        for field, n in sizes.items():
            if n < 1:
                raise BPFError(f"{self.name}: map '{map_name}': {field} must be at least 1")
        self.maps[map_name] = replace(ms, **sizes)

    def section_data(self, section: str) -> bytes:
        """The current initial contents of a data section (with any values set by the user)."""
        return bytes(self._data[section])

    @classmethod
    def from_file(cls, path: str) -> ObjectSpec:
        """Read the object at ``path``. Raises ``ParseError`` naming the file and the problem."""
        return cls(**read_elf(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "object") -> ObjectSpec:
        """Read an object held in memory (a zipapp's data, a test's mutant)."""
        return cls(**read_elf_bytes(data, name))

    def __repr__(self) -> str:
        return f"<ObjectSpec {self.name}: {len(self.programs)} programs, {len(self.maps)} maps>"


if TYPE_CHECKING:
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
