"""USDT probes: the static tracepoints of user-space programs (``DTRACE_PROBE``/``STAP_PROBE``).

A program built with ``<sys/sdt.h>`` leaves a ``nop`` at each probe site and an ELF note in
``.note.stapsdt`` describing it: the site's address, the provider and probe names, an optional
*semaphore* (a counter the program tests to skip expensive argument preparation; the kernel
increments it while a uprobe names it), and how to find each argument, as assembler operands:
``-4@%eax`` (a signed 4-byte value in eax), ``8@-16(%rbp)`` (8 bytes at rbp-16), ``-4@$77`` (the
constant 77). The notes are read here as libbpf's ``usdt.c`` reads them.

Attaching is a uprobe on each site. The BPF side (libbpf's ``usdt.bpf.h``, ``BPF_USDT(...)``)
decodes the arguments at run time from a *spec* that user space stores in the object's
``__bpf_usdt_specs`` array map; the uprobe's bpf cookie carries the spec's index there.
``__bpf_usdt_ip_to_spec_id`` is only read by kernels without bpf cookies (before 5.15), on
which pybpf attaches no perf-event links at all, so it is left empty.
"""

from __future__ import annotations

import re
import struct

import construct as cs
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from pybpf.elfnote import elf_notes
from pybpf.link.group import LinkGroup
from pybpf.link.uprobe import SymbolError, UprobeTarget, find_binary, uprobe_at, vaddr_to_offset
from pybpf.record import record
from pybpf.sys import mapcmd
from pybpf.sys.objinfo import map_info

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from pybpf.link.bpflink import ProgramLike

NT_STAPSDT = 3

# --- libbpf's usdt.bpf.h -------------------------------------------------------------------


class ArgType:
    """``enum __bpf_usdt_arg_type``."""

    CONST = 0
    REG = 1
    REG_DEREF = 2
    SIB = 3  # base + (index << scale_bitshift) + val_off: the usdt.bpf.h of libbpf 1.7+


BPF_USDT_MAX_ARG_CNT = 12

usdt_arg_spec = cs.Struct(  # struct __bpf_usdt_arg_spec
    "val_off" / cs.Int64un,  # the constant, or the offset added to the register for a deref
    "arg_type" / cs.Int32un,
    "reg_off" / cs.Int16sn,  # offsetof(struct pt_regs, <register>)
    "arg_signed" / cs.Flag,
    "arg_bitshift" / cs.Int8sn,  # 64 - 8 * size: shifted left then right to cast
)

usdt_spec = cs.Struct(  # struct __bpf_usdt_spec
    "args" / cs.Array(BPF_USDT_MAX_ARG_CNT, usdt_arg_spec),
    "usdt_cookie" / cs.Int64un,
    "arg_cnt" / cs.Int16sn,
    cs.Padding(6),
)
USDT_SPEC_SIZE = usdt_spec.sizeof()

# libbpf 1.7 added SIB operands with bit-fields after val_off (arg_type:8, then idx_reg_off:12
# and scale_bitshift:4 in a __u16, then __reserved:8). Compilers start the __u16 fields at the
# next 16-bit unit, so the struct grew: reg_off moved from offset 12 to 14 and each argument
# spec from 16 to 24 bytes (as clang's BTF of that header says). The size of __bpf_usdt_specs'
# values tells which header a program was built with.
usdt_arg_spec_sib = cs.Struct(  # struct __bpf_usdt_arg_spec, libbpf 1.7+ (little-endian)
    "val_off" / cs.Int64un,
    "arg_type" / cs.Int8un,
    cs.Padding(1),
    "idx_scale" / cs.Int16un,  # idx_reg_off (low 12 bits) | scale_bitshift << 12
    "reserved" / cs.Int8un,
    cs.Padding(1),
    "reg_off" / cs.Int16sn,
    "arg_signed" / cs.Flag,
    "arg_bitshift" / cs.Int8sn,
    cs.Padding(6),
)
usdt_spec_sib = cs.Struct(
    "args" / cs.Array(BPF_USDT_MAX_ARG_CNT, usdt_arg_spec_sib),
    "usdt_cookie" / cs.Int64un,
    "arg_cnt" / cs.Int16sn,
    cs.Padding(6),
)
USDT_SPEC_SIB_SIZE = usdt_spec_sib.sizeof()

# offsetof(struct pt_regs, x) on x86-64 (arch/x86/include/asm/ptrace.h)...
_PT_REGS_X86_64 = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112, "ip": 128,
    "sp": 152,
}  # fmt: skip
# ...and every name an operand may give each register (64-, 32-, 16-, 8-bit), as libbpf lists them.
_X86_64_NAMES = {
    "ip": ("rip", "eip"),
    "ax": ("rax", "eax", "ax", "al"),
    "bx": ("rbx", "ebx", "bx", "bl"),
    "cx": ("rcx", "ecx", "cx", "cl"),
    "dx": ("rdx", "edx", "dx", "dl"),
    "si": ("rsi", "esi", "si", "sil"),
    "di": ("rdi", "edi", "di", "dil"),
    "bp": ("rbp", "ebp", "bp", "bpl"),
    "sp": ("rsp", "esp", "sp", "spl"),
    **{f"r{n}": (f"r{n}", f"r{n}d", f"r{n}w", f"r{n}b") for n in range(8, 16)},
}
_REGISTER = {alias: reg for reg, aliases in _X86_64_NAMES.items() for alias in aliases}


def pt_regs_offset(reg: str) -> int:
    """``%eax``/``%rax``/``%ax``/``%al`` -> offsetof(struct pt_regs, ax)."""
    name = _REGISTER.get(reg.lstrip("%"))
    if name is None:
        raise SymbolError(f"USDT argument register {reg!r} is not one pybpf knows (x86-64)")
    return _PT_REGS_X86_64[name]


@record
class ArgSpec:
    """One decoded argument operand."""

    text: str  # as the note writes it: "-4@8(%rsp)"
    arg_type: int
    val_off: int
    reg_off: int
    signed: bool
    size: int
    idx_reg_off: int = 0  # SIB: the index register
    scale_bitshift: int = 0  # SIB: log2 of the scale (1, 2, 4, 8)

    @classmethod
    def parse(cls, text: str) -> ArgSpec:
        m = re.fullmatch(r"\s*(-?\d+)\s*@\s*(.+?)\s*", text)
        if not m:
            raise SymbolError(f"USDT argument {text!r}: not SIZE@OPERAND")
        size, operand = int(m.group(1)), m.group(2)
        signed, size = size < 0, abs(size)
        if size not in (1, 2, 4, 8):
            raise SymbolError(f"USDT argument {text!r}: size {size} is not 1, 2, 4 or 8")
        if m2 := re.fullmatch(r"\$(-?(?:0x[0-9a-fA-F]+|\d+))", operand):
            return cls(text, ArgType.CONST, int(m2.group(1), 0), 0, signed, size)
        if m2 := re.fullmatch(r"(-?(?:0x[0-9a-fA-F]+|\d+))?\(\s*(%\w+)\s*\)", operand):
            off = int(m2.group(1), 0) if m2.group(1) else 0
            return cls(text, ArgType.REG_DEREF, off, pt_regs_offset(m2.group(2)), signed, size)
        if m2 := re.fullmatch(r"%\w+", operand):
            return cls(text, ArgType.REG, 0, pt_regs_offset(operand), signed, size)
        # base + index * scale + offset: "-4@-4(%rbp,%rax,8)", "8@(%rdi,%rax)" (scale 1)
        sib = r"(-?(?:0x[0-9a-fA-F]+|\d+))?\(\s*(%\w+)\s*,\s*(%\w+)\s*(?:,\s*(\d+)\s*)?\)"
        if m2 := re.fullmatch(sib, operand):
            scale = int(m2.group(4) or 1)
            if scale not in (1, 2, 4, 8):
                raise SymbolError(f"USDT argument {text!r}: scale {scale} is not 1, 2, 4 or 8")
            off = int(m2.group(1), 0) if m2.group(1) else 0
            base, index = pt_regs_offset(m2.group(2)), pt_regs_offset(m2.group(3))
            shift = scale.bit_length() - 1
            return cls(text, ArgType.SIB, off, base, signed, size, index, shift)
        raise SymbolError(f"USDT argument {text!r}: operand form not supported")

    def encode(self) -> dict:
        """The fields of libbpf's struct __bpf_usdt_arg_spec (before 1.7: no SIB)."""
        return dict(
            val_off=self.val_off & 0xFFFFFFFFFFFFFFFF,
            arg_type=self.arg_type,
            reg_off=self.reg_off,
            arg_signed=self.signed,
            arg_bitshift=64 - 8 * self.size,
        )

    def encode_sib(self) -> dict:
        """The fields of libbpf 1.7's struct __bpf_usdt_arg_spec."""
        fields = self.encode()
        fields.update(idx_scale=self.idx_reg_off | self.scale_bitshift << 12, reserved=0)
        return fields


# --- the notes -----------------------------------------------------------------------------


@record
class USDTNote:
    """One probe site, addresses already turned into file offsets."""

    provider: str
    name: str
    offset: int  # the site, as a file offset (what the uprobe needs)
    semaphore_offset: int  # the semaphore, as a file offset; 0 without one
    args: tuple[ArgSpec, ...]

    def spec(self, cookie: int = 0, sib_layout: bool = False) -> bytes:
        """The ``struct __bpf_usdt_spec`` of this site: libbpf's layout before 1.7 (208 bytes,
        no SIB operands) or, with ``sib_layout``, 1.7's (304 bytes)."""
        if len(self.args) > BPF_USDT_MAX_ARG_CNT:
            raise SymbolError(f"USDT {self.provider}:{self.name}: more than 12 arguments")
        if sib_layout:
            args = [a.encode_sib() for a in self.args]
            empty = dict(val_off=0, arg_type=0, idx_scale=0, reserved=0, reg_off=0,
                         arg_signed=False, arg_bitshift=0)  # fmt: skip
            layout = usdt_spec_sib
        else:
            sib = [a.text for a in self.args if a.arg_type == ArgType.SIB]
            if sib:
                raise SymbolError(
                    f"USDT {self.provider}:{self.name}: argument {sib[0]!r} is a SIB operand, "
                    f"which the program's usdt.bpf.h ({USDT_SPEC_SIZE}-byte specs) cannot read: "
                    f"build it with libbpf 1.7's ({USDT_SPEC_SIB_SIZE}-byte specs)"
                )
            args = [a.encode() for a in self.args]
            empty = dict(val_off=0, arg_type=0, reg_off=0, arg_signed=False, arg_bitshift=0)
            layout = usdt_spec
        args += [empty] * (BPF_USDT_MAX_ARG_CNT - len(args))
        return layout.build(dict(args=args, usdt_cookie=cookie, arg_cnt=len(self.args)))


def read_notes(path: str) -> list[USDTNote]:
    """Every USDT probe of the ELF file at ``path``."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            return _notes(elf, path)
    except (ELFError, OSError) as e:
        raise SymbolError(f"cannot read {path} as ELF: {e}") from None


def _notes(elf: ELFFile, path: str) -> list[USDTNote]:
    sec = elf.get_section_by_name(".note.stapsdt")
    if sec is None:
        return []
    base = elf.get_section_by_name(".stapsdt.base")
    order = "<" if elf.little_endian else ">"
    addr = "Q" if elf.elfclass == 64 else "I"
    out = []
    for owner, ntype, desc in elf_notes(sec.data(), order):
        if owner != b"stapsdt" or ntype != NT_STAPSDT:
            continue
        pc, base_addr, sema = struct.unpack_from(order + addr * 3, desc)
        provider, name, args = (desc[struct.calcsize(addr * 3) :].split(b"\0") + [b"", b""])[:3]
        # Prelink may have moved the file: .stapsdt.base says where the note's base went.
        if base is not None and base_addr:
            pc += base["sh_addr"] - base_addr
            if sema:
                sema += base["sh_addr"] - base_addr
        offset = vaddr_to_offset(elf, pc)
        if offset is None:
            raise SymbolError(f"{path}: USDT {provider.decode()}:{name.decode()} at {pc:#x} "
                              "is in no loadable segment")  # fmt: skip
        sema_off = (vaddr_to_offset(elf, sema) or 0) if sema else 0
        specs = tuple(ArgSpec.parse(a) for a in args.decode().split())
        out.append(USDTNote(provider.decode(), name.decode(), offset, sema_off, specs))
    return out


# --- attaching -----------------------------------------------------------------------------


def usdt(
    program: ProgramLike,
    binary: str,
    provider: str,
    name: str,
    *,
    specs_map_fd: int,
    pid: int = -1,
    cookie: int = 0,
) -> LinkGroup:
    """Attach a ``BPF_USDT`` program to every site of ``provider:name`` in ``binary``.

    ``specs_map_fd`` is the object's ``__bpf_usdt_specs`` map, where the argument specs go;
    ``cookie`` is what the program's ``bpf_usdt_cookie()`` returns."""
    path = find_binary(binary)
    notes = [n for n in read_notes(path) if n.provider == provider and n.name == name]
    if not notes:
        raise SymbolError(f"{path} has no USDT probe {provider}:{name} (in .note.stapsdt)")
    info = map_info(specs_map_fd)
    if info.value_size not in (USDT_SPEC_SIZE, USDT_SPEC_SIB_SIZE):
        raise SymbolError(
            f"__bpf_usdt_specs holds {info.value_size}-byte specs; pybpf writes libbpf's "
            f"{USDT_SPEC_SIZE}-byte struct __bpf_usdt_spec (or 1.7's {USDT_SPEC_SIB_SIZE} bytes)"
        )
    sib_layout = info.value_size == USDT_SPEC_SIB_SIZE
    specs = [note.spec(cookie, sib_layout) for note in notes]  # a bad operand: nothing attached
    links = LinkGroup()
    try:
        for note, spec in zip(notes, specs):
            spec_id = _spec_id(specs_map_fd, info.max_entries, spec)
            target = UprobeTarget(path, f"{provider}:{name}", note.offset)
            links.append(
                uprobe_at(
                    program,
                    target,
                    pid=pid,
                    ref_ctr_offset=note.semaphore_offset,
                    cookie=spec_id,
                )
            )
    except BaseException:
        links.close()
        raise
    return links


def _spec_id(map_fd: int, max_entries: int, spec: bytes) -> int:
    """An index of the specs array holding ``spec``: one that already holds the same bytes (specs
    are read-only, so equal ones are shared, as libbpf shares them), else the first empty one."""
    empty: Optional[int] = None
    zero = bytes(len(spec))
    for i in range(max_entries):
        key = struct.pack("=i", i)
        value = mapcmd.map_lookup_elem(map_fd, key, len(spec), name="__bpf_usdt_specs")
        if value == spec:
            return i
        if value == zero and empty is None:
            empty = i
    if empty is None:
        raise SymbolError(f"__bpf_usdt_specs is full ({max_entries} specs)")
    mapcmd.map_update_elem(map_fd, struct.pack("=i", empty), spec, name="__bpf_usdt_specs")
    return empty
