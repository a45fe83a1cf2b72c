"""Patching a linked program with what only the load knows: the fds of the maps its ``ld_imm64``
instructions name (and the offset into a data map's value), ``.kconfig`` offsets, and the
kernel's BTF ids and addresses of the ``__ksym`` externs it calls or reads.

Relocation records (``pybpf.object``) say which instruction names what; the fds exist only once
``pybpf.loader`` has created the maps, so this is the last step before ``BPF_PROG_LOAD``.
"""

from __future__ import annotations

from pybpf.asm import insn as isa
from pybpf.errors import BPFError, RelocationError
from pybpf.object.linker import LinkedProgram
from pybpf.object.spec import ObjectSpec, ProgramSpec, Relocation, RelocKind

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Optional

    from pybpf.loader import LoadedObject

    Log = Optional[Callable[[str], None]]


def patch_references(
    obj: LoadedObject, linked: LinkedProgram, log: Log = None
) -> list[isa.Instruction]:
    """Write map fds (and value offsets) into the ld_imm64 instructions that name maps/data."""
    insns = list(linked.insns)
    for rel in linked.relocations:
        _patch_one(obj, linked.spec, insns, rel)
        if log is not None:
            i = rel.insn_idx
            log(
                f"  insn {i}: {rel.kind.value} '{rel.symbol}' -> ld_imm64 src_reg "
                f"{insns[i].src}, imm {insns[i].imm}, next imm {insns[i + 1].imm}"
            )
    return insns


def _patch_one(obj: LoadedObject, ps: ProgramSpec, insns: list, rel: Relocation) -> None:
    i = rel.insn_idx
    first, second = insns[i], insns[i + 1]
    if rel.kind is RelocKind.MAP:
        m = _map_for(obj, ps, rel)
        insns[i] = first.with_(src=isa.PseudoSrc.MAP_FD, imm=m.fd)
    elif rel.kind is RelocKind.DATA:
        m = _data_map_for(obj, ps, rel.target_section, rel)
        # section symbols carry the variable's offset in imm; named symbols in st_value
        insns[i] = first.with_(src=isa.PseudoSrc.MAP_VALUE, imm=m.fd)
        insns[i + 1] = second.with_(imm=first.imm + rel.offset)
    elif rel.kind is RelocKind.KCONFIG:
        m = _data_map_for(obj, ps, ".kconfig", rel)
        insns[i] = first.with_(src=isa.PseudoSrc.MAP_VALUE, imm=m.fd)
        insns[i + 1] = second.with_(imm=first.imm + _kconfig_offset(obj.spec, rel.symbol))
    else:
        _patch_ksym(obj.spec, ps, insns, rel)


def _kconfig_offset(spec: ObjectSpec, name: str) -> int:
    """Where the extern lives in the .kconfig map (the fixed-up DATASEC says)."""
    from pybpf.btf.model import Datasec

    ds = spec.btf.type(spec.btf.find(".kconfig", Datasec))
    for v in ds.vars:
        if spec.btf.name_of(v.type_id) == name:
            return v.offset
    raise RelocationError(f"extern '{name}' is not in the .kconfig section")


def _patch_ksym(spec: ObjectSpec, ps: ProgramSpec, insns: list, rel: Relocation) -> None:
    """``__ksym`` externs: a kfunc call gets the kernel's BTF id of the function; an ld_imm64 of
    a kernel variable gets its BTF id (typed) or, failing that, its address from kallsyms."""
    from pybpf.btf.kernel import KernelBTF
    from pybpf.btf.model import Func

    i, name = rel.insn_idx, rel.symbol
    first = insns[i]
    kernel = KernelBTF.system()
    try:
        if first.is_call:
            local_id = spec.btf.find(name, Func) if spec.btf is not None else None
            func_id = kernel.ksym(name, spec.btf, local_id or 0) if local_id else kernel.ksym(name)
            insns[i] = first.with_(src=isa.PSEUDO_KFUNC_CALL, imm=func_id, off=0)
            return
        var_id = kernel.find(name)
        if var_id is not None:
            insns[i] = first.with_(src=isa.PseudoSrc.BTF_ID, imm=kernel.ksym(name))
            insns[i + 1] = insns[i + 1].with_(imm=0)  # 0: vmlinux, not a module's BTF
            return
        addr = _kallsyms(name)
    except BPFError as e:
        if name in spec.weak_externs and not first.is_call:
            addr = 0  # a weak extern the kernel lacks reads as 0, as in libbpf
        else:
            raise RelocationError(f"program '{ps.name}': {e}") from None
    if addr is None:
        if name not in spec.weak_externs:
            raise RelocationError(
                f"program '{ps.name}': extern '{name}' (ksym) is neither in the kernel's BTF "
                "nor in /proc/kallsyms"
            )
        addr = 0
    insns[i] = first.with_(src=0, imm=addr & 0xFFFFFFFF)
    insns[i + 1] = insns[i + 1].with_(imm=(addr >> 32) & 0xFFFFFFFF)


def _kallsyms(name: str) -> Optional[int]:
    """The address of a kernel symbol, for typeless ``__ksym`` externs (needs root to be real)."""
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == name:
                    return int(parts[0], 16)
    except OSError:
        return None
    return None


def _map_for(obj: LoadedObject, ps: ProgramSpec, rel: Relocation):
    m = obj.maps.get(rel.symbol)
    if m is None:
        raise RelocationError(
            f"program '{ps.name}': instruction {rel.insn_idx} refers to map '{rel.symbol}', "
            "which the object does not define"
        )
    return m


def _data_map_for(obj: LoadedObject, ps: ProgramSpec, section: str, rel: Relocation):
    from pybpf.sys import features

    for ms in obj.spec.maps.values():
        if ms.origin == section:
            if ms.name in obj.skipped_maps:
                feature = obj.skipped_maps[ms.name]
                raise features.missing(feature, f"program '{ps.name}' uses {section}")
            return obj.maps[ms.name]
    raise RelocationError(
        f"program '{ps.name}': instruction {rel.insn_idx} refers to '{rel.symbol}' in "
        f"section {section}, which has no data"
    )
