"""The records an object file is made of, as frozen data: programs, maps, relocations, variables.

``pybpf.object.elf`` fills them from an ELF file; ``pybpf.object.spec.ObjectSpec`` holds them
together. Nothing here touches the kernel (rule 1 of the design).
"""

from __future__ import annotations

from pybpf.asm.insn import Instruction
from pybpf.enums import plain_enum
from pybpf.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional


@plain_enum
class RelocKind:
    """What a relocated instruction refers to; decided by the target's section, not the ELF type."""

    MAP = "map"  # ld_imm64 of a map (symbol in .maps or legacy maps)
    DATA = "data"  # ld_imm64 of a global variable (symbol in .rodata*/.data*/.bss)
    CALL = "call"  # bpf-to-bpf call into a subprogram
    FUNC = "func"  # ld_imm64 of a function's address (callback for bpf_loop & co)
    KCONFIG = "kconfig"  # ld_imm64 of a .kconfig extern
    KSYM = "ksym"  # ld_imm64 / call of a kernel symbol extern (.ksyms, kfuncs)


@record
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


@record
class Function:
    """A function symbol's instructions, cut out of its section."""

    name: str
    section: str
    insn_start: int  # index of the first instruction in the section
    insns: tuple[Instruction, ...]
    is_global: bool


@record
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


@record
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


@record
class SectionHeader:
    """An ELF section as ``pybpf inspect`` lists it."""

    index: int
    name: str
    type: str  # SHT_PROGBITS, SHT_NOBITS, SHT_REL, ...
    size: int
    flags: str  # "AX", "WA", ... as readelf spells sh_flags


@record
class Variable:
    """A global variable in a data section, as its symbol and BTF describe it."""

    name: str
    section: str
    offset: int
    size: int
    type_id: int = 0
