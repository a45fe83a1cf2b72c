"""Reading a BPF ELF object into an ``ObjectSpec`` — no system calls (rule 1).

The object is what ``clang -target bpf -c`` writes: executable sections whose names say the program
type (``xdp``, ``fentry/tcp_connect``), ``.text`` with the subprograms they call, ``.maps`` (map
definitions, described in BTF), data sections (``.rodata``, ``.data``, ``.bss``) that become array
maps, ``license``, ``.BTF``/``.BTF.ext``, and ``.rel<section>`` relocation sections that say which
instructions refer to which symbol. Relocations are classified by the section of their symbol and
the instruction they patch — never applied the way a linker would (pyelftools' relocation recipes
compute linker values; they are not used here).
"""

from __future__ import annotations

import os
import struct
import sys
import types

from pybpf.asm import insn as isa
from pybpf.btf.ext import BTFExt
from pybpf.btf.model import BTF, Datasec, Var
from pybpf.errors import BPFError, ParseError
from pybpf.object.mapspecs import MapReader, is_data_section
from pybpf.object.records import (
    Function,
    ProgramSpec,
    Relocation,
    RelocKind,
    SectionHeader,
    Variable,
)
from pybpf.object.sections import match_section
from pybpf.object.structops import read_struct_ops
from pybpf.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Optional

SHT_PROGBITS = "SHT_PROGBITS"
SHF_EXECINSTR = 0x4


@record
class Section:
    index: int
    name: str
    type: str
    flags: int
    size: int
    data: bytes  # empty for SHT_NOBITS
    info: int  # sh_info: for a relocation section, the section it applies to
    link: int = 0  # sh_link: for a symbol table, its string table

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)


@record
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: str  # STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE
    bind: str  # STB_GLOBAL, STB_LOCAL, STB_WEAK
    shndx: object  # section index, or "SHN_UNDEF"/"SHN_ABS"/"SHN_COMMON"
    visibility: str = "STV_DEFAULT"  # STV_HIDDEN: global to the linker, private to the object


def read_elf(path: str) -> dict[str, Any]:
    """Read the object at ``path`` into the fields of an ``ObjectSpec``. Raises ``ParseError``
    naming the file and the problem."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ParseError(f"cannot read {path}: {e.strerror}") from None
    name = os.path.basename(path).split(".", 1)[0] or "object"
    return read_elf_bytes(data, name, path=path)


def read_elf_bytes(data: bytes, name: str, path: str = "") -> dict[str, Any]:
    label = path or name
    try:
        return _Reader(data, name, path).read()
    except BPFError as e:
        if str(e).startswith(label):
            raise
        raise type(e)(f"{label}: {e}") from None
    except RecursionError:
        raise ParseError(f"{label}: malformed object (nesting too deep)") from None
    except (ImportError, NameError):
        raise  # a bug of ours, not a property of the file
    except Exception as e:  # pyelftools and construct raise many kinds on malformed files
        raise ParseError(f"{label}: malformed ELF object ({type(e).__name__}: {e})") from None


def _elf_file(data: bytes) -> Any:
    """pyelftools' reading of ``data``'s header and sections (imported on first use, after the
    stand-in below)."""
    from pybpf.object.elfheaders import elf_sections

    return elf_sections(data)


class _Deferred(types.ModuleType):
    """A module not imported yet: the first attribute asked of it imports the real module, which
    takes its place in ``sys.modules``; this one forwards to it from then on. (``import pdb`` only
    looks at ``__spec__``, which a fresh module has: None.)"""

    def __getattr__(self, attr: str) -> Any:
        real = self.__dict__.get("_real")
        if real is None:
            import importlib

            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = self.__dict__["_real"] = importlib.import_module(self.__name__)
        return getattr(real, attr)


# pyelftools' bundled construct (and construct itself) import pdb, for a debugging aid pybpf
# never uses; pdb and what it imports (bdb, cmd, code, glob, tokenize...) are a good part of a
# short process's start, so a stand-in takes its place until someone uses it.
if "pdb" not in sys.modules:
    sys.modules["pdb"] = _Deferred("pdb")


class _Reader(MapReader):
    def __init__(self, data: bytes, name: str, path: str) -> None:
        self.name = name
        self.path = path
        if data[:4] != b"\x7fELF":
            raise ParseError("not an ELF file")
        self.elf = _elf_file(data)
        if self.elf.elfclass != 64:
            raise ParseError(f"not a 64-bit ELF object (ELFCLASS{self.elf.elfclass})")
        machine = self.elf["e_machine"]
        if machine != "EM_BPF":
            raise ParseError(f"not a BPF object (e_machine is {machine}, expected EM_BPF)")
        self.little = self.elf.little_endian
        self.sections = self._sections()
        self.by_name = {s.name: s for s in self.sections}
        self.symbols = self._symbols()

    # --- raw ELF -------------------------------------------------------------------------------

    def _sections(self) -> list[Section]:
        out = []
        for i, name, sh, data in self.elf.sections():
            out.append(
                Section(
                    i,
                    name,
                    _type_name(sh["sh_type"]),
                    sh["sh_flags"],
                    sh["sh_size"],
                    data,
                    sh["sh_info"],
                    sh["sh_link"],
                )
            )
        return out

    def _symbols(self) -> list[Symbol]:
        """The symbol table, read with one struct over its bytes (Elf64_Sym is 24 bytes)."""
        tabs = [s for s in self.sections if s.type == "SHT_SYMTAB"]
        if not tabs:
            raise ParseError("no symbol table (.symtab): was the object stripped?")
        tab = tabs[0]
        if not 0 < tab.link < len(self.sections):
            raise ParseError(f"symbol table names string table #{tab.link}, which does not exist")
        names = self.sections[tab.link].data
        order = "<" if self.little else ">"
        data = tab.data[: len(tab.data) // 24 * 24]
        out = []
        for i, (name, info, other, shndx, value, size) in enumerate(
            struct.iter_unpack(order + "IBBHQQ", data)
        ):
            end = names.find(b"\0", name)
            text = names[name : end if end >= 0 else len(names)].decode("utf-8", "replace")
            out.append(
                Symbol(
                    i,
                    text,
                    value,
                    size,
                    _STT.get(info & 0xF, f"STT_{info & 0xF}"),
                    _STB.get(info >> 4, f"STB_{info >> 4}"),
                    _SHN.get(shndx, shndx),
                    _STV[other & 3],
                )
            )
        return out

    def section_of(self, sym: Symbol) -> Optional[Section]:
        if isinstance(sym.shndx, int) and 0 < sym.shndx < len(self.sections):
            return self.sections[sym.shndx]
        return None

    # --- the object ----------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        license = self._license()
        kern_version = self._kern_version()
        btf, btf_ext = self._btf()
        self._externs_by_section = _extern_sections(btf)
        code = {s.name: s for s in self.sections if s.executable and s.size > 0}
        sections = {n: tuple(isa.decode(s.data, self.little)) for n, s in code.items()}
        functions = self._functions(code, sections)
        programs = self._programs(code, functions, license, kern_version)
        relocations = {n: self._relocations(s, sections[n]) for n, s in code.items()}
        variables = self._variables(btf)
        maps = self._maps(btf)
        externs = self._externs(btf)
        return dict(
            path=self.path,
            name=self.name,
            little_endian=self.little,
            license=license,
            kern_version=kern_version,
            programs=programs,
            functions=functions,
            sections=sections,
            relocations=relocations,
            maps=maps,
            variables=variables,
            externs=externs,
            weak_externs=frozenset(
                s.name for s in self.symbols if s.shndx == "SHN_UNDEF" and s.bind == "STB_WEAK"
            ),
            btf=btf,
            btf_ext=btf_ext,
            struct_ops=read_struct_ops(self, btf),
            section_headers=tuple(
                SectionHeader(s.index, s.name, s.type, s.size, _flag_letters(s.flags))
                for s in self.sections[1:]
            ),
        )

    def _license(self) -> str:
        sec = self.by_name.get("license")
        if sec is None:
            return ""
        return sec.data.split(b"\0", 1)[0].decode("utf-8", "replace")

    def _kern_version(self) -> int:
        sec = self.by_name.get("version")
        if sec is None or len(sec.data) != 4:
            return 0
        return struct.unpack("<I" if self.little else ">I", sec.data)[0]

    def _functions(
        self, code: dict[str, Section], sections: dict[str, tuple[isa.Instruction, ...]]
    ) -> dict[str, Function]:
        funcs: dict[str, Function] = {}
        for sec in code.values():
            syms = sorted(
                (s for s in self.symbols if s.shndx == sec.index and s.type == "STT_FUNC"),
                key=lambda s: s.value,
            )
            insns = sections[sec.name]
            for n, sym in enumerate(syms):
                if sym.value % 8:
                    raise ParseError(f"function '{sym.name}' is not instruction-aligned")
                start = sym.value // 8
                end = (sym.value + sym.size) // 8 if sym.size else None
                if end is None:  # old objects leave st_size 0: run to the next function
                    end = syms[n + 1].value // 8 if n + 1 < len(syms) else len(insns)
                if not 0 <= start < end <= len(insns):
                    raise ParseError(
                        f"function '{sym.name}' lies outside section {sec.name} "
                        f"(instructions {start}..{end} of {len(insns)})"
                    )
                if sym.name in funcs:
                    raise ParseError(f"function '{sym.name}' is defined twice")
                funcs[sym.name] = Function(
                    sym.name, sec.name, start, insns[start:end], sym.bind != "STB_LOCAL"
                )
        return funcs

    def _programs(
        self,
        code: dict[str, Section],
        functions: dict[str, Function],
        license: str,
        kern_version: int,
    ) -> dict[str, ProgramSpec]:
        programs: dict[str, ProgramSpec] = {}
        for sec in code.values():
            if sec.name == ".text":
                continue
            sdef = match_section(sec.name)
            if sdef is None:
                # Unknown section: libbpf refuses to load such a program; keep reading the
                # object so that inspect can still show it, and let load() report it.
                sdef = None
            entries = [f for f in functions.values() if f.section == sec.name]
            for f in entries:
                # libbpf refuses static functions here; cilium/ebpf loads them as programs.
                # Reading them as programs lets inspect show them and the kernel judge them.
                programs[f.name] = ProgramSpec(
                    name=f.name,
                    section=sec.name,
                    prog_type=sdef.prog_type if sdef else "",
                    attach_type=sdef.attach_type if sdef else None,
                    attach_target=sdef.target if sdef else "",
                    needs_btf_target=sdef.needs_btf_target if sdef else False,
                    prog_flags=sdef.flags if sdef else 0,
                    insn_start=f.insn_start,
                    insns=f.insns,
                    license=license,
                    kern_version=kern_version,
                )
        return programs

    # --- relocations ---------------------------------------------------------------------------

    def _rel_entries(self, target: Section) -> list[tuple[int, Symbol]]:
        """(r_offset, symbol) of every relocation that applies to ``target`` (Elf64_Rel is
        r_offset and r_info, the symbol's index in r_info's upper 32 bits)."""
        out = []
        order = "<" if self.little else ">"
        for s in self.sections:
            if s.type not in ("SHT_REL", "SHT_RELA") or s.info != target.index:
                continue
            size = 16 if s.type == "SHT_REL" else 24
            fmt = order + ("QQ" if size == 16 else "QQq")
            for entry in struct.iter_unpack(fmt, s.data[: len(s.data) // size * size]):
                r_offset, idx = entry[0], entry[1] >> 32
                if idx >= len(self.symbols):
                    raise ParseError(
                        f"relocation in {s.name} names symbol #{idx}, which does not exist"
                    )
                out.append((r_offset, self.symbols[idx]))
        return out

    def _relocations(
        self, sec: Section, insns: tuple[isa.Instruction, ...]
    ) -> tuple[Relocation, ...]:
        out = []
        for r_offset, sym in self._rel_entries(sec):
            where = f"section {sec.name}, offset {r_offset}"
            if r_offset % 8 or r_offset // 8 >= len(insns):
                raise ParseError(f"relocation at {where} does not point at an instruction")
            idx = r_offset // 8
            ins = insns[idx]
            kind, target = self._reloc_kind(sym, ins, where)
            if ins.is_ld_imm64 and idx + 1 >= len(insns):
                raise ParseError(f"ld_imm64 at {where} has no second half")
            name = sym.name or (target.name if target is not None else "")
            out.append(
                Relocation(idx, kind, name, target.name if target is not None else "", sym.value)
            )
        return tuple(out)

    def _reloc_kind(
        self, sym: Symbol, ins: isa.Instruction, where: str
    ) -> tuple[RelocKind, Optional[Section]]:
        """Classify by the symbol's section and the instruction, never by the ELF reloc type."""
        target = self.section_of(sym)
        if sym.shndx == "SHN_UNDEF":
            kind = (
                RelocKind.KCONFIG
                if self._extern_section(sym.name) == ".kconfig"
                else RelocKind.KSYM
            )
            if not (ins.is_ld_imm64 or ins.is_call):
                raise ParseError(
                    f"extern '{sym.name}' used by an instruction that is neither ld_imm64 "
                    f"nor call ({where})"
                )
            return kind, None
        if target is None:
            raise ParseError(f"relocation at {where} against symbol '{sym.name}' with no section")
        if target.executable:
            if ins.is_call:
                return RelocKind.CALL, target
            if ins.is_ld_imm64:
                return RelocKind.FUNC, target
            raise ParseError(
                f"relocation at {where} to code, but the instruction is not a call or ld_imm64"
            )
        if not ins.is_ld_imm64:
            raise ParseError(
                f"relocation at {where} against '{sym.name or target.name}' patches an instruction "
                f"that is not ld_imm64 (opcode {ins.code:#04x})"
            )
        if target.name in (".maps", "maps"):
            return RelocKind.MAP, target
        if is_data_section(target.name) or target.name == ".kconfig":
            return RelocKind.DATA, target
        raise ParseError(
            f"relocation at {where} against '{sym.name or target.name}' in section {target.name}, "
            "which is neither a map nor a data section"
        )

    # --- BTF, variables, externs ---------------------------------------------------------------

    def _btf(self) -> tuple[Optional[BTF], Optional[BTFExt]]:
        sec = self.by_name.get(".BTF")
        if sec is None:
            return None, None
        btf = BTF.parse(sec.data, self.little)
        sizes = {s.name: s.size for s in self.sections if s.name}
        offsets: dict[str, dict[str, int]] = {}
        for sym in self.symbols:
            target = self.section_of(sym)
            if target is not None and sym.type == "STT_OBJECT" and sym.name:
                if sym.value + sym.size > target.size:  # damage: BTF would carry the offset
                    raise ParseError(
                        f"symbol '{sym.name}' (offset {sym.value}, size {sym.size}) lies outside "
                        f"its section {target.name} ({target.size} bytes)"
                    )
                offsets.setdefault(target.name, {})[sym.name] = sym.value
        hidden = {s.name for s in self.symbols if s.visibility in ("STV_HIDDEN", "STV_INTERNAL")}
        btf = btf.with_datasec_fixup(sizes, offsets, hidden)
        # `__hidden` global subprograms are private to the object: static for the verifier
        text = self.by_name.get(".text")
        btf = btf.with_static_funcs(
            {
                s.name
                for s in self.symbols
                if text is not None
                and s.shndx == text.index
                and s.type == "STT_FUNC"
                and s.bind != "STB_LOCAL"
                and s.name in hidden
            }
        )
        ext = self.by_name.get(".BTF.ext")
        btf_ext = BTFExt.parse(ext.data, self.little, btf) if ext is not None else None
        return btf, btf_ext

    def _extern_section(self, name: str) -> str:
        """ ".kconfig" or ".ksyms": which BTF DATASEC lists the extern ``name``."""
        return self._externs_by_section.get(name, ".ksyms")

    def _externs(self, btf: Optional[BTF]) -> dict[str, str]:
        return {
            s.name: self._extern_section(s.name)
            for s in self.symbols
            if s.shndx == "SHN_UNDEF" and s.name and s.bind in ("STB_GLOBAL", "STB_WEAK")
        }

    def _variables(self, btf: Optional[BTF]) -> dict[str, Variable]:
        types = {(sec, var): tid for sec, var, tid in datasec_vars(btf)}
        out = {}
        for sym in self.symbols:
            target = self.section_of(sym)
            if target is None or sym.type != "STT_OBJECT" or not sym.name:
                continue
            if not is_data_section(target.name):
                continue
            out[sym.name] = Variable(
                sym.name, target.name, sym.value, sym.size, types.get((target.name, sym.name), 0)
            )
        return out


def datasec_vars(btf: Optional[BTF]):
    """(section name, variable name, variable type id) for every variable of every DATASEC."""
    if btf is None:
        return
    for t in btf.types:
        if isinstance(t, Datasec):
            for v in t.vars:
                var = btf.type(v.type_id)
                if isinstance(var, Var):
                    yield t.name, var.name, var.type


def _extern_sections(btf: Optional[BTF]) -> dict[str, str]:
    return {var: sec for sec, var, _ in datasec_vars(btf) if sec in (".kconfig", ".ksyms")}


# Symbol fields by their ELF names (elf.h), for a table read with struct.
_STT = {0: "STT_NOTYPE", 1: "STT_OBJECT", 2: "STT_FUNC", 3: "STT_SECTION", 4: "STT_FILE"}
_STB = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK"}
_STV = ("STV_DEFAULT", "STV_INTERNAL", "STV_HIDDEN", "STV_PROTECTED")
_SHN = {0: "SHN_UNDEF", 0xFFF1: "SHN_ABS", 0xFFF2: "SHN_COMMON"}

# Section types pyelftools does not name (it hands back the number).
_EXTRA_SHT = {0x6FFF4C03: "SHT_LLVM_ADDRSIG", 0x6FFF4C00: "SHT_LLVM_ODRTAB"}


def _type_name(sh_type: object) -> str:
    if isinstance(sh_type, int):
        return _EXTRA_SHT.get(sh_type, f"{sh_type:#x}")
    return str(sh_type)


def _flag_letters(flags: int) -> str:
    """sh_flags the way readelf prints them: W(rite) A(lloc) X(ecute) M(erge) S(trings)."""
    letters = ((0x1, "W"), (0x2, "A"), (0x4, "X"), (0x10, "M"), (0x20, "S"), (0x40, "I"))
    return "".join(ch for bit, ch in letters if flags & bit)
