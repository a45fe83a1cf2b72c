"""uprobes: a BPF program on an instruction of a user-space binary or shared library.

The kernel names a uprobe by *file* and *offset in that file* (not by address: the same library
is mapped at a different address in every process). So a symbol is turned into a file offset
here, from the target's ELF with pyelftools: find the function in ``.symtab`` (or ``.dynsym`` for
stripped binaries), take its virtual address ``st_value``, and map it back through the
``PT_LOAD`` segment that contains it: ``offset = st_value - p_vaddr + p_offset``.

The probe itself is a perf event of the ``uprobe`` PMU (its type number in
``/sys/bus/event_source/devices/uprobe/type``, no tracefs needed): ``config1`` points at the path,
``config2`` is the offset, one ``config`` bit (``format/retprobe``) makes it a uretprobe, and the
upper 32 bits of ``config`` carry the offset of a USDT semaphore (a reference counter the kernel
increments while the probe is attached). The program is then attached to that perf event.

``uprobe.multi`` (6.6+) puts one program on many functions of one binary with one link
(``BPF_TRACE_UPROBE_MULTI``: the path, an array of file offsets, optional cookies), the functions
chosen by a glob as libbpf does (``SEC("uprobe.multi//usr/bin/x:parse_*")``).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import struct
import subprocess

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from pybpf.errors import BPFError, SyscallError
from pybpf.link.bpflink import Link, _fd
from pybpf.link.perf_event import PerfEventLink, attach_perf_event
from pybpf.record import record
from pybpf.sys import linkcmd, perf
from pybpf.sys.perf import PerfAttrFlag

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from pybpf.link.bpflink import ProgramLike

# Where the dynamic linker looks when /etc/ld.so.cache does not answer (ld.so(8)).
LIBRARY_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)
PERF_UPROBE_REF_CTR_OFFSET_SHIFT = 32


class SymbolError(BPFError):
    """The binary has no such function (or the binary is not there)."""


# --- finding the binary --------------------------------------------------------------------


def find_binary(name: str) -> str:
    """The file a uprobe target names: a path as is; a library (``libc.so.6``) through the
    dynamic linker's cache, ``LD_LIBRARY_PATH`` and the usual directories; a program through
    ``PATH``."""
    if "/" in name:
        if not os.path.isfile(name):
            what = (
                "a directory, not a program or library" if os.path.isdir(name) else "no such file"
            )
            raise SymbolError(f"uprobe target {name}: {what}")
        return os.path.abspath(name)
    found = _find_library(name) if ".so" in name else shutil.which(name)
    if found is None:
        raise SymbolError(f"uprobe target {name!r}: not found (give its full path)")
    return os.path.realpath(found)


def _find_library(name: str) -> Optional[str]:
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for d in dirs:
        if os.path.isfile(os.path.join(d, name)):
            return os.path.join(d, name)
    candidates = _ld_so_cache(name) + [os.path.join(d, name) for d in LIBRARY_DIRS]
    for path in candidates:
        if os.path.isfile(path) and _elf_class(path) == struct.calcsize("P") * 8:
            return path
    return None


def _elf_class(path: str) -> int:
    """32 or 64 (a 64-bit process cannot have its probes in a 32-bit library), 0 if not ELF."""
    with open(path, "rb") as f:
        ident = f.read(5)
    return {1: 32, 2: 64}.get(ident[4], 0) if ident[:4] == b"\x7fELF" else 0


def _ld_so_cache(name: str) -> list[str]:
    """The paths ``ldconfig -p`` lists for ``name`` (the dynamic linker's cache, read as text:
    "libc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6")."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        entry, arrow, path = line.strip().partition(" => ")
        if arrow and entry.split(" ", 1)[0] == name:
            found.append(path.strip())
    return found


# --- symbol -> file offset -----------------------------------------------------------------


def vaddr_to_offset(elf: ELFFile, vaddr: int) -> Optional[int]:
    """The file offset of a virtual address, through the PT_LOAD segment that maps it."""
    for seg in elf.iter_segments():
        if seg["p_type"] != "PT_LOAD":
            continue
        if seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_memsz"]:
            return vaddr - seg["p_vaddr"] + seg["p_offset"]
    return None


def symbol_offset(path: str, symbol: str) -> int:
    """The file offset of function ``symbol`` in the ELF file at ``path``."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            addresses = _function_addresses(elf, symbol)
            if not addresses:
                raise SymbolError(f"{path} has no function {symbol!r} (in .symtab or .dynsym)")
            if len(addresses) > 1:
                where = ", ".join(hex(a) for a in sorted(addresses))
                raise SymbolError(f"{path}: function {symbol!r} is defined at {where}: ambiguous")
            vaddr = addresses.pop()
            offset = vaddr_to_offset(elf, vaddr)
    except (ELFError, OSError) as e:
        raise SymbolError(f"cannot read {path} as ELF: {e}") from None
    if offset is None:
        raise SymbolError(f"{path}: function {symbol!r} at {vaddr:#x} is in no loadable segment")
    return offset


def _function_addresses(elf: ELFFile, symbol: str) -> set[int]:
    found: set[int] = set()
    for section_name in (".symtab", ".dynsym"):
        table = elf.get_section_by_name(section_name)
        if table is None:
            continue
        for sym in table.get_symbol_by_name(symbol) or ():
            if sym["st_shndx"] == "SHN_UNDEF" or sym["st_value"] == 0:
                continue
            if sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC"):
                found.add(sym["st_value"])
        if found:
            break  # .symtab says it all when it is there; .dynsym is for stripped files
    return found


@record
class UprobeTarget:
    """``PATH:SYMBOL+OFFSET`` (libbpf's ``SEC("uprobe/...")`` target) resolved to a file offset."""

    path: str
    symbol: str
    offset: int  # in the file

    @classmethod
    def parse(cls, target: str) -> UprobeTarget:
        """``/bin/bash:readline``, ``libc.so.6:malloc+4``, ``/bin/x:0x1130`` (a file offset)."""
        binary, sep, func = target.rpartition(":")
        if not sep or not binary or not func:
            raise SymbolError(f"uprobe target {target!r}: expected BINARY:FUNCTION[+OFFSET]")
        return cls.resolve(binary, func)

    @classmethod
    def resolve(cls, binary: str, func: str) -> UprobeTarget:
        path = find_binary(binary)
        name, plus, extra = func.partition("+")
        try:
            add = int(extra, 0) if plus else 0
        except ValueError:
            raise SymbolError(f"uprobe target {func!r}: bad offset {extra!r}") from None
        if name.startswith("0x") and not plus:
            return cls(path, "", int(name, 16))
        return cls(path, name, symbol_offset(path, name) + add)

    def __str__(self) -> str:
        return f"{self.path}:{self.symbol or hex(self.offset)}"


# --- attaching -----------------------------------------------------------------------------


def uprobe(
    program: ProgramLike,
    binary: str,
    func: str = "",
    *,
    offset: int = 0,
    retprobe: bool = False,
    pid: int = -1,
    ref_ctr_offset: int = 0,
    cookie: int = 0,
) -> PerfEventLink:
    """Attach a uprobe (``retprobe``: a uretprobe) to ``func`` (+``offset``) of ``binary``, or
    to the file offset ``offset`` when no ``func`` is given; ``pid`` limits it to one process."""
    if func:
        target = UprobeTarget.resolve(binary, func + (f"+{offset}" if offset else ""))
    else:
        target = UprobeTarget(find_binary(binary), "", offset)
    return uprobe_at(
        program, target, retprobe=retprobe, pid=pid, ref_ctr_offset=ref_ctr_offset, cookie=cookie
    )


def uprobe_at(
    program: ProgramLike,
    target: UprobeTarget,
    *,
    retprobe: bool = False,
    pid: int = -1,
    ref_ctr_offset: int = 0,
    cookie: int = 0,
) -> PerfEventLink:
    kind = "uretprobe" if retprobe else "uprobe"
    pmu = perf.pmu_type("uprobe")
    if pmu is None:
        raise SyscallError(
            f"{kind} {target}",
            errno.ENOENT,
            "this kernel has no uprobe PMU (CONFIG_UPROBE_EVENTS)",
        )
    config = ref_ctr_offset << PERF_UPROBE_REF_CTR_OFFSET_SHIFT
    if retprobe:
        config |= 1 << perf.pmu_retprobe_bit("uprobe")
    fd = perf.perf_event_open(
        f"cannot open {kind} {target}",
        type=pmu,
        config=config,
        config1=os.fsencode(target.path),
        config2=target.offset,
        pid=pid,
        cpu=0 if pid == -1 else -1,
        flags=PerfAttrFlag.DISABLED,
    )
    return attach_perf_event(program, fd, f"{kind} {target}", cookie=cookie)


# --- uprobe.multi --------------------------------------------------------------------------


def function_offsets(path: str, pattern: str) -> dict[str, int]:
    """The file offsets of the functions of an ELF file whose names match a glob (``*``, ``?``),
    from .symtab (or .dynsym when the file is stripped); one name per address."""
    found: dict[int, str] = {}
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for section_name in (".symtab", ".dynsym"):
                table = elf.get_section_by_name(section_name)
                for sym in table.iter_symbols() if table is not None else ():
                    if sym["st_shndx"] == "SHN_UNDEF" or sym["st_value"] == 0:
                        continue
                    if sym["st_info"]["type"] not in ("STT_FUNC", "STT_GNU_IFUNC"):
                        continue
                    if fnmatch.fnmatchcase(sym.name, pattern):
                        offset = vaddr_to_offset(elf, sym["st_value"])
                        if offset is not None:
                            found.setdefault(offset, sym.name)
                if found:
                    break
    except (ELFError, OSError) as e:
        raise SymbolError(f"cannot read {path} as ELF: {e}") from None
    return {name: offset for offset, name in sorted(found.items())}


class UprobeMultiLink(Link):
    """The link of a uprobe.multi: ``functions`` maps each probed name to its file offset."""

    def __init__(self, fd: int, target: str, functions: dict[str, int]):
        super().__init__(fd)
        self.target = target
        self.functions = functions

    def __repr__(self) -> str:
        return f"UprobeMultiLink({self.target!r}, {len(self.functions)} functions, fd={self._fd})"


def uprobe_multi(
    program: ProgramLike,
    binary: str,
    pattern: str,
    *,
    retprobe: bool = False,
    pid: int = -1,
    cookies: list[int] = (),
) -> UprobeMultiLink:
    """Attach to every function of ``binary`` matching ``pattern`` with one link (6.6+);
    ``cookies`` (one per function, in offset order) are read back by bpf_get_attach_cookie."""
    path = find_binary(binary)
    functions = function_offsets(path, pattern)
    kind = "uretprobe.multi" if retprobe else "uprobe.multi"
    if not functions:
        raise SymbolError(f"{path} has no function matching {pattern!r} (in .symtab or .dynsym)")
    if cookies and len(cookies) != len(functions):
        raise BPFError(
            f"{kind} {path}:{pattern}: {len(cookies)} cookies for {len(functions)} functions"
        )
    try:
        fd = linkcmd.link_create_uprobe_multi(
            _fd(program), path, list(functions.values()), retprobe=retprobe,
            pid=max(pid, 0), cookies=list(cookies),
        )  # fmt: skip
    except SyscallError as e:
        why = None
        if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            from pybpf.link.support import has_link_type

            if not has_link_type("UPROBE_MULTI"):
                why = "this kernel has no uprobe_multi links (6.6+)"
        raise SyscallError(f"cannot attach {kind} {path}:{pattern}", e.errno, why) from None
    return UprobeMultiLink(fd, f"{kind} {path}:{pattern}", functions)
