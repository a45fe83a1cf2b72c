"""The ELF header and the section table, read with pyelftools' own declarations.

pybpf needs little of an ELF file from pyelftools: the header, and each section's header, name
and bytes (symbols and relocations it reads itself, with one ``struct`` each). ``ELFFile`` would
give them, but importing it imports pyelftools' DWARF, EHABI, dynamic-section, symbol-version and
note readers too — in a short process like ``pybpf load``, more time than the
whole parse of an object. So the same steps ``ELFFile`` takes are taken here with
``elftools.elf.structs`` (the ``Elf_Ehdr``/``Elf_Shdr`` declarations ``ELFFile`` parses with) and
its helpers: the same values, the same errors for a damaged header. A file with compressed
sections (``SHF_COMPRESSED``, e.g. ``clang -gz``) is handed to ``ELFFile``, which inflates them.

A well-formed 64-bit BPF object — what clang writes — does not even need that: ``ShortTable``
reads its header and section table with two ``struct`` formats (``Elf64_Ehdr``, ``Elf64_Shdr``),
giving the values pyelftools gives (a test compares them on every object the build makes), and
leaves pyelftools unimported: its construct library imports ``pprint``, which imports
``dataclasses`` and ``inspect``, ~10 ms of a ``pybpf load``. Anything unusual in the header (another
class or machine, extended section numbering, a table past the end of the file, compressed
sections) goes the way above, so damaged files get pyelftools' words as before.
"""

from __future__ import annotations

import io
import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Iterator, Optional

SHF_COMPRESSED = 0x800
SHN_XINDEX = 0xFFFF


def elf_sections(data: bytes) -> Any:
    """A reader of ``data``'s header and sections: ``elfclass``, ``little_endian``,
    ``header[...]`` and ``sections()`` yielding (index, name, section header, bytes)."""
    short = ShortTable.read(data)
    if short is not None:
        return short
    table = SectionTable(data)
    if table.elfclass == 64 and any(sh["sh_flags"] & SHF_COMPRESSED for sh in table.headers()):
        return _WholeFile(data)
    return table


EM_BPF = 247
ELFCLASS64 = 2
EHDR_FIELDS = (
    "e_type", "e_machine", "e_version", "e_entry", "e_phoff", "e_shoff", "e_flags", "e_ehsize",
    "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx",
)  # fmt: skip
SHDR_FIELDS = (
    "sh_name", "sh_type", "sh_flags", "sh_addr", "sh_offset", "sh_size", "sh_link", "sh_info",
    "sh_addralign", "sh_entsize",
)  # fmt: skip
EHDR_FORMAT, SHDR_FORMAT = (
    "16xHHIQQQIHHHHHH",
    "IIQQQQIIQQ",
)  # Elf64_Ehdr (after e_ident), Elf64_Shdr
SHDR_SIZE = 64
# ``sh_type`` by name, as pyelftools names them for a machine without types of its own (EM_BPF);
# other values stay numbers, as there.
SH_TYPE_NAMES = {
    0: "SHT_NULL", 1: "SHT_PROGBITS", 2: "SHT_SYMTAB", 3: "SHT_STRTAB", 4: "SHT_RELA",
    5: "SHT_HASH", 6: "SHT_DYNAMIC", 7: "SHT_NOTE", 8: "SHT_NOBITS", 9: "SHT_REL",
    10: "SHT_SHLIB", 11: "SHT_DYNSYM", 14: "SHT_INIT_ARRAY", 15: "SHT_FINI_ARRAY",
    16: "SHT_PREINIT_ARRAY", 17: "SHT_GROUP", 18: "SHT_SYMTAB_SHNDX", 19: "SHT_RELR",
    20: "SHT_NUM", 0x60000000: "SHT_LOOS", 0x6FFFFFF5: "SHT_GNU_ATTRIBUTES",
    0x6FFFFFF6: "SHT_GNU_HASH", 0x6FFFFFF7: "SHT_GNU_LIBLIST", 0x6FFFFFFD: "SHT_GNU_verdef",
    0x6FFFFFFE: "SHT_GNU_verneed", 0x6FFFFFFF: "SHT_GNU_versym", 0x80000000: "SHT_LOUSER",
    0xFFFFFFFF: "SHT_HIUSER", 0x6FFFFFF3: "SHT_SUNW_LDYNSYM", 0x6FFFFFFC: "SHT_SUNW_syminfo",
}  # fmt: skip


class ShortTable:
    """The header and section table of a plain 64-bit BPF object, read with ``struct``."""

    elfclass = 64

    def __init__(self, data: bytes, little: bool, header: dict, headers: list[dict]) -> None:
        self.data, self.little_endian = data, little
        self.header, self._headers = header, headers

    @classmethod
    def read(cls, data: bytes) -> Optional[ShortTable]:
        """The table, or None when the file needs pyelftools' reading (see the module's doc)."""
        if len(data) < 64 or data[4] != ELFCLASS64 or data[5] not in (1, 2):
            return None
        order = "<" if data[5] == 1 else ">"
        header = dict(zip(EHDR_FIELDS, struct.unpack_from(order + EHDR_FORMAT, data)))
        shoff, count, names = header["e_shoff"], header["e_shnum"], header["e_shstrndx"]
        if (
            header["e_machine"] != EM_BPF
            or header["e_shentsize"] != SHDR_SIZE
            or not shoff
            or not 0 < count <= 0xFF00
            or names >= count
            or shoff + count * SHDR_SIZE > len(data)
        ):
            return None
        header["e_machine"] = "EM_BPF"
        fmt = struct.Struct(order + SHDR_FORMAT)
        headers = [dict(zip(SHDR_FIELDS, h)) for h in fmt.iter_unpack(data[shoff:][: count * 64])]
        for sh in headers:
            if sh["sh_flags"] & SHF_COMPRESSED:
                return None
            sh["sh_type"] = SH_TYPE_NAMES.get(sh["sh_type"], sh["sh_type"])
        return cls(data, data[5] == 1, header, headers)

    def __getitem__(self, name: str) -> Any:
        return self.header[name]

    def headers(self) -> list[dict]:
        return self._headers

    def sections(self) -> Iterator[tuple[int, str, Any, bytes]]:
        data = self.data
        names_at = self._headers[self.header["e_shstrndx"]]["sh_offset"]
        for n, sh in enumerate(self._headers):
            start = names_at + sh["sh_name"]
            end = data.find(b"\0", start)
            raw = data[start:end] if 0 <= start < len(data) and end >= 0 else b""
            name = raw.decode("utf-8", errors="replace")
            body = b""
            if sh["sh_type"] != "SHT_NOBITS":
                body = data[sh["sh_offset"] :][: sh["sh_size"]]
            yield n, name, sh, body


class SectionTable:
    def __init__(self, data: bytes) -> None:
        from elftools.common.exceptions import ELFError
        from elftools.common.utils import struct_parse
        from elftools.elf.structs import ELFStructs

        self._parse = struct_parse
        self._headers: list[Any] | None = None
        self.stream = io.BytesIO(data)
        self.size = len(data)
        # e_ident is read before anything else: it says how the rest is laid out.
        ei_class, ei_data = data[4:5], data[5:6]
        if ei_class not in (b"\x01", b"\x02"):
            raise ELFError(f"Invalid EI_CLASS {ei_class!r}")
        if ei_data not in (b"\x01", b"\x02"):
            raise ELFError(f"Invalid EI_DATA {ei_data!r}")
        self.elfclass = 32 if ei_class == b"\x01" else 64
        self.little_endian = ei_data == b"\x01"
        self.structs = ELFStructs(little_endian=self.little_endian, elfclass=self.elfclass)
        self.structs.create_basic_structs()
        self.header = struct_parse(self.structs.Elf_Ehdr, self.stream, 0)
        self.structs.create_advanced_structs(
            self.header["e_type"], self.header["e_machine"], self.header["e_ident"]["EI_OSABI"]
        )

    def __getitem__(self, name: str) -> Any:
        return self.header[name]

    def num_sections(self) -> int:
        if self.header["e_shoff"] == 0:
            return 0
        if self.header["e_shnum"] == 0:  # 0xff00 or more: the count is in section 0's sh_size
            return self.section_header(0)["sh_size"]
        return self.header["e_shnum"]

    def section_header(self, n: int) -> Any:
        from elftools.common.exceptions import ELFError, ELFParseError

        shoff, entsize = self.header["e_shoff"], self.header["e_shentsize"]
        if shoff > 0 and entsize < self.structs.Elf_Shdr.sizeof():
            raise ELFError(f"Too small e_shentsize: {entsize}")
        pos = shoff + n * entsize
        if pos > self.size:
            raise ELFParseError(f"Reading section {n} at offset {pos} past EOF {self.size}")
        return self._parse(self.structs.Elf_Shdr, self.stream, pos)

    def headers(self) -> list[Any]:
        if self._headers is None:
            self._headers = [self.section_header(n) for n in range(self.num_sections())]
        return self._headers

    def sections(self) -> Iterator[tuple[int, str, Any, bytes]]:
        from elftools.common.exceptions import ELFParseError
        from elftools.common.utils import parse_cstring_from_stream

        index = self.header["e_shstrndx"]
        if index == SHN_XINDEX:  # 0xff00 or more: the index is in section 0's sh_link
            index = self.section_header(0)["sh_link"]
        try:
            names_at = self.section_header(index)["sh_offset"]
        except ELFParseError as e:
            raise ELFParseError("String Table not found") from e
        for n, sh in enumerate(self.headers()):
            raw = parse_cstring_from_stream(self.stream, names_at + sh["sh_name"])
            name = raw.decode("utf-8", errors="replace") if raw else ""
            data = b""
            if sh["sh_type"] != "SHT_NOBITS":
                self.stream.seek(sh["sh_offset"])
                data = self.stream.read(sh["sh_size"])
            yield n, name, sh, data


class _WholeFile:
    """``ELFFile`` behind the same face, for files whose sections need inflating."""

    def __init__(self, data: bytes) -> None:
        from elftools.elf.elffile import ELFFile

        self.elf = ELFFile(io.BytesIO(data))
        self.elfclass = self.elf.elfclass
        self.little_endian = self.elf.little_endian

    def __getitem__(self, name: str) -> Any:
        return self.elf[name]

    def sections(self) -> Iterator[tuple[int, str, Any, bytes]]:
        for n in range(self.elf.num_sections()):
            s = self.elf.get_section(n)
            data = b"" if s["sh_type"] == "SHT_NOBITS" else s.data()
            yield n, s.name, s.header, data
