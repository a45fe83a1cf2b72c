"""The ELF header and the section table, read with pyelftools' own declarations.

pybpf needs little of an ELF file from pyelftools: the header, and each section's header, name
and bytes (symbols and relocations it reads itself, with one ``struct`` each). ``ELFFile`` would
give them, but importing it imports pyelftools' DWARF, EHABI, dynamic-section, symbol-version and
note readers too — in a short process like ``pybpf load``, more time than the
whole parse of an object. So the same steps ``ELFFile`` takes are taken here with
``elftools.elf.structs`` (the ``Elf_Ehdr``/``Elf_Shdr`` declarations ``ELFFile`` parses with) and
its helpers: the same values, the same errors for a damaged header. A file with compressed
sections (``SHF_COMPRESSED``, e.g. ``clang -gz``) is handed to ``ELFFile``, which inflates them.
"""

from __future__ import annotations

import io
from typing import Any, Iterator

SHF_COMPRESSED = 0x800
SHN_XINDEX = 0xFFFF


def elf_sections(data: bytes) -> Any:
    """A reader of ``data``'s header and sections: ``elfclass``, ``little_endian``,
    ``header[...]`` and ``sections()`` yielding (index, name, section header, bytes)."""
    table = SectionTable(data)
    if table.elfclass == 64 and any(sh["sh_flags"] & SHF_COMPRESSED for sh in table.headers()):
        return _WholeFile(data)
    return table


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
