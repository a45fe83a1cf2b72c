"""The object's C types from its DWARF (``-g``), as BTF types: for structs the BTF left out.

clang writes into ``.BTF`` only the types that globals, functions and map definitions use. The
``struct event`` a program fills through a pointer from ``bpf_ringbuf_reserve`` — or on its
stack for ``bpf_perf_event_output`` — is used by nothing of that sort, so it is in the DWARF
only (libbpf-bootstrap's bootstrap, the tutorial's execsnoop and exitsnoop). bpf2go and ecli ask
authors to add ``const struct event *unused;``; reading the DWARF, which every ``-g`` object
carries anyway, spares them that.

:func:`dwarf_types` returns a :class:`pybpf.btf.model.BTF` holding every named struct and
union of the DWARF with the types they use, translated kind for kind (base types, typedefs,
qualifiers, arrays, enums, pointers — the pointee is not followed: a pointer value prints as a
number), and the names of those declared in headers of the system or of the kernel's UAPI
(``struct iphdr`` of ``<linux/ip.h>``), which are no program's own event. Nothing here makes a
system call (rule 1).
"""

from __future__ import annotations

import io
from typing import Any, Collection, Optional

from pybpf.btf.model import BTF
from pybpf.btf.types import (
    Array,
    Const,
    Enum,
    EnumValue,
    Float,
    Int,
    IntEncoding,
    Member,
    Ptr,
    Struct,
    Typedef,
    Union,
    Volatile,
)

# DW_ATE_*: what a DW_TAG_base_type's bits mean
_DW_ATE_BOOLEAN = 0x02
_DW_ATE_FLOAT = 0x04
_DW_ATE_SIGNED = 0x05
_DW_ATE_SIGNED_CHAR = 0x06
_AGGREGATES = ("DW_TAG_structure_type", "DW_TAG_union_type")


class DwarfTypes(BTF):
    """The DWARF's types as BTF; ``system``: the names of its structs and unions declared in a
    system or UAPI header (``_system_header``)."""

    def __init__(self, types: list, system: frozenset) -> None:
        super().__init__(types)
        self.system = system


def dwarf_types(data: bytes, sizes: Optional[Collection[int]] = None) -> Optional[DwarfTypes]:
    """The named structs and unions declared at file scope in an object's DWARF (only those of
    ``sizes`` bytes if given), or None when it has no DWARF."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        if not elf.has_dwarf_info():
            return None
        # BPF objects use REL relocations whose addends sit in place: the unrelocated sections
        # already hold the right offsets (and pyelftools knows no BPF relocation types).
        dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
        builder = _Builder(elf.little_endian, sizes)
        system = set()
        for cu in dwarf.iter_CUs():
            files = _file_names(dwarf, cu)
            for die in cu.get_top_DIE().iter_children():
                if not builder.wanted(die):
                    continue
                path = _decl_file(die, files)
                if path.endswith("vmlinux.h"):
                    continue
                builder.id_of(die)
                if _system_header(path):
                    system.add(_name(die))
    except (ELFError, KeyError, ValueError, AttributeError):
        return None  # damaged or unusual DWARF: the events are shown as hex
    return DwarfTypes(builder.types, frozenset(system)) if builder.types else None


def _file_names(dwarf: Any, cu: Any) -> list[str]:
    """The paths of the line program's files, each with its directory."""
    try:
        program = dwarf.line_program_for_CU(cu)
        if program is None:
            return []
        dirs = [d.decode(errors="replace") for d in program["include_directory"]]
        # DWARF 5 numbers directories from 0 (the compilation's); earlier versions from 1
        first = 0 if program["version"] >= 5 else 1
        out = []
        for e in program["file_entry"]:
            i = e.dir_index - first
            d = dirs[i] if 0 <= i < len(dirs) else ""
            name = e.name.decode(errors="replace")
            out.append(f"{d}/{name}" if d and not name.startswith("/") else name)
        return out
    except (KeyError, AttributeError, ValueError):
        return []


def _decl_file(die: Any, files: list[str]) -> str:
    """The path of the file a DIE is declared in ("" when unknown)."""
    index = _attr(die, "DW_AT_decl_file")
    if index is None or not files:
        return ""
    # DWARF 5 numbers files from 0, earlier versions from 1 (0: none)
    version = die.cu.header.version
    i = index if version >= 5 else index - 1
    return files[i] if 0 <= i < len(files) else ""


def _system_header(path: str) -> bool:
    """A header of the system (under /usr/include) or of the kernel's UAPI (in a ``linux``,
    ``asm`` or ``asm-generic`` directory, a project's copy of them too): its structs are the
    kernel's or the C library's, not the program's own. Kernel types from a vmlinux.h are left
    out of the DWARF's types altogether, which keeps "the only struct of that size" meaningful."""
    if path.startswith(("/usr/include/", "/usr/local/include/")):
        return True
    parent = path.rsplit("/", 2)[-2] if path.count("/") >= 1 else ""
    return parent in ("linux", "asm", "asm-generic")


def _name(die: Any) -> str:
    attr = die.attributes.get("DW_AT_name")
    if attr is None:
        return ""
    value = attr.value
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _attr(die: Any, name: str, default: Any = None) -> Any:
    attr = die.attributes.get(name)
    return default if attr is None else attr.value


class _Builder:
    def __init__(self, little_endian: bool, sizes: Optional[Collection[int]]) -> None:
        self.little = little_endian
        self.sizes = sizes
        self.types: list = []
        self._ids: dict[int, int] = {}  # DIE offset -> type id
        self._index_type = 0

    def wanted(self, die: Any) -> bool:
        return (
            die.tag in _AGGREGATES
            and "DW_AT_name" in die.attributes
            and "DW_AT_declaration" not in die.attributes
            and (self.sizes is None or _attr(die, "DW_AT_byte_size") in self.sizes)
        )

    def _add(self, t: Any) -> int:
        self.types.append(t)
        return len(self.types)  # ids start at 1: 0 is void

    def _type_of(self, die: Any) -> int:
        if "DW_AT_type" not in die.attributes:
            return 0  # void
        return self.id_of(die.get_DIE_from_attribute("DW_AT_type"))

    def id_of(self, die: Any) -> int:
        if die.offset in self._ids:
            return self._ids[die.offset]
        if die.tag in _AGGREGATES:
            # reserve the id first: members may refer back (through pointers, not followed)
            tid = self._add(None)
            self._ids[die.offset] = tid
            self.types[tid - 1] = self._aggregate(die)
            return tid
        tid = self._make(die)
        self._ids[die.offset] = tid
        return tid

    def _make(self, die: Any) -> int:
        tag = die.tag
        if tag == "DW_TAG_base_type":
            return self._add(self._base(die))
        if tag == "DW_TAG_pointer_type":
            return self._add(Ptr(0))
        if tag == "DW_TAG_typedef":
            return self._add(Typedef(_name(die), self._type_of(die)))
        if tag == "DW_TAG_const_type":
            return self._add(Const(self._type_of(die)))
        if tag == "DW_TAG_volatile_type":
            return self._add(Volatile(self._type_of(die)))
        if tag == "DW_TAG_array_type":
            return self._array(die)
        if tag == "DW_TAG_enumeration_type":
            values = tuple(
                EnumValue(_name(c), int(_attr(c, "DW_AT_const_value", 0)))
                for c in die.iter_children()
                if c.tag == "DW_TAG_enumerator"
            )
            signed = any(v.value < 0 for v in values)
            return self._add(Enum(_name(die), _attr(die, "DW_AT_byte_size", 4), signed, values))
        return 0  # functions, subroutine types...: nothing a value needs

    def _base(self, die: Any) -> Any:
        size = _attr(die, "DW_AT_byte_size", 0)
        enc = _attr(die, "DW_AT_encoding", 0)
        if enc == _DW_ATE_FLOAT:
            return Float(_name(die), size)
        flags = IntEncoding.NONE
        if enc in (_DW_ATE_SIGNED, _DW_ATE_SIGNED_CHAR):
            flags = IntEncoding.SIGNED
        elif enc == _DW_ATE_BOOLEAN:
            flags = IntEncoding.BOOL
        return Int(_name(die), size, flags, 0, size * 8)

    def _array(self, die: Any) -> int:
        elem = self._type_of(die)
        dims = []
        for c in die.iter_children():
            if c.tag == "DW_TAG_subrange_type":
                count = _attr(c, "DW_AT_count")
                if count is None:
                    upper = _attr(c, "DW_AT_upper_bound")
                    count = 0 if upper is None else upper + 1
                dims.append(int(count))
        if not self._index_type:
            self._index_type = self._add(Int("__ARRAY_SIZE_TYPE__", 4, IntEncoding.NONE, 0, 32))
        tid = elem
        for n in reversed(dims or [0]):  # int m[2][3]: an array of 2 arrays of 3
            tid = self._add(Array(tid, self._index_type, n))
        return tid

    def _aggregate(self, die: Any) -> Struct:
        members = []
        for c in die.iter_children():
            if c.tag != "DW_TAG_member":
                continue
            bit_size = _attr(c, "DW_AT_bit_size", 0)
            bit_off = _attr(c, "DW_AT_data_bit_offset")
            if bit_off is None:
                bit_off = 8 * int(_attr(c, "DW_AT_data_member_location", 0))
                old_style = _attr(c, "DW_AT_bit_offset")  # DWARF 2/3: counted from the MSB
                if old_style is not None:
                    unit = 8 * int(_attr(c, "DW_AT_byte_size", 0))
                    bit_off += old_style if not self.little else unit - old_style - bit_size
            members.append(Member(_name(c), self._type_of(c), int(bit_off), int(bit_size)))
        cls = Union if die.tag == "DW_TAG_union_type" else Struct
        return cls(_name(die), int(_attr(die, "DW_AT_byte_size", 0)), tuple(members))
