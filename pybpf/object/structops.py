"""struct_ops variables as plain data: what a ``.struct_ops`` section asks the loader to build.

A struct_ops object implements a kernel interface (``struct tcp_congestion_ops``,
``struct sched_ext_ops``...) in BPF::

    SEC(".struct_ops.link")
    struct tcp_congestion_ops rw_cc = { .ssthresh = (void *)rw_ssthresh, .name = "pybpf_rw" };

The variable's bytes hold its data members (``name``); each function pointer member is a
relocation in ``.rel.struct_ops.link`` naming the program that implements it. Each variable
becomes one ``BPF_MAP_TYPE_STRUCT_OPS`` map at load time (``pybpf.structops``); here it is only
read: the section's bytes, the struct's local BTF type, and which member each program fills.
"""

from __future__ import annotations

import struct

from pybpf.btf.model import BTF, Datasec, Struct, Var
from pybpf.errors import BPFError, ParseError
from pybpf.record import record, replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Optional

STRUCT_OPS_SEC = ".struct_ops"
STRUCT_OPS_LINK_SEC = ".struct_ops.link"


@record
class StructOpsSpec:
    """One struct_ops variable of an object (a future STRUCT_OPS map)."""

    name: str  # the variable's name, also the map's
    section: str  # ".struct_ops" or ".struct_ops.link"
    type_name: str  # the kernel struct it implements, e.g. "tcp_congestion_ops"
    type_id: int  # that struct in the object's BTF
    data: bytes  # the variable's initial bytes (data members; function pointers are 0)
    programs: tuple[tuple[str, str], ...]  # (member name, program name) per function pointer

    def with_member(self, btf: BTF, member: str, value: bytes) -> StructOpsSpec:
        """A copy with a data member set (``name`` of a congestion control, say), as a libbpf
        skeleton's ``skel->struct_ops.var->member = ...`` before load. ``value`` is
        zero-padded to the member's size."""
        st = btf.type(self.type_id)
        m = next((m for m in st.members if m.name == member), None)
        if m is None:
            raise BPFError(
                f"struct_ops variable '{self.name}': struct {self.type_name} has no "
                f"member '{member}'"
            )
        off, size = m.bit_offset // 8, btf.sizeof(m.type_id)
        if len(value) > size:
            raise BPFError(
                f"struct_ops variable '{self.name}': {len(value)} bytes do not fit "
                f"'{member}' ({size} bytes)"
            )
        data = self.data[:off] + value.ljust(size, b"\0") + self.data[off + size :]
        return replace(self, data=data)

    @property
    def link(self) -> bool:
        """``.struct_ops.link``: registered by a bpf_link, unregistered when it closes."""
        return self.section.startswith(STRUCT_OPS_LINK_SEC)


def is_struct_ops_section(name: str) -> bool:
    return name == STRUCT_OPS_SEC or name.startswith(STRUCT_OPS_SEC + ".")


def read_struct_ops(reader: Any, btf: Optional[BTF]) -> dict[str, StructOpsSpec]:
    """Every struct_ops variable of the object ``reader`` (pybpf.object.elf's reader) holds."""
    out: dict[str, StructOpsSpec] = {}
    for sec in reader.sections:
        if not is_struct_ops_section(sec.name) or not sec.size:
            continue
        if btf is None:
            raise ParseError(f"section {sec.name}: struct_ops variables need the object's BTF")
        ds_id = btf.find(sec.name, Datasec)
        if ds_id is None:
            raise ParseError(f"section {sec.name} has no BTF DATASEC describing its variables")
        relocs = reader._rel_entries(sec)
        for vsi in btf.type(ds_id).vars:
            var = btf.type(vsi.type_id)
            if not isinstance(var, Var):
                continue
            sid = btf.resolve(var.type)
            st = btf.type(sid)
            if not isinstance(st, Struct):
                raise ParseError(f"struct_ops variable '{var.name}' is not a struct")
            programs = _member_programs(reader, sec, btf, st, var.name, vsi.offset, relocs)
            data = sec.data[vsi.offset : vsi.offset + vsi.size]
            out[var.name] = StructOpsSpec(var.name, sec.name, st.name, sid, data, programs)
    return out


def _member_programs(
    reader: Any, sec: Any, btf: BTF, st: Struct, var: str, var_off: int, relocs: list
) -> tuple[tuple[str, str], ...]:
    """(member, program) for each relocation inside the variable: the member at the
    relocation's offset points at the program's function."""
    by_offset = {m.bit_offset // 8: m.name for m in st.members}
    out = []
    for r_offset, sym in relocs:
        moff = r_offset - var_off
        if not 0 <= moff < st.size:
            continue
        member = by_offset.get(moff)
        if member is None:
            raise ParseError(
                f"struct_ops variable '{var}': relocation at offset {moff} is not at a member"
            )
        out.append((member, _program_at(reader, sec, sym, r_offset)))
    return tuple(out)


def _program_at(reader: Any, sec: Any, sym: Any, r_offset: int) -> str:
    """The program a function-pointer relocation names: the function symbol itself, or (for a
    section symbol) the function at the addend stored in the pointer's bytes (SHT_REL)."""
    if sym.type == "STT_FUNC":
        return sym.name
    target = reader.section_of(sym)
    if target is None:
        raise ParseError(f"section {sec.name}: relocation against '{sym.name}' with no section")
    order = "<" if reader.little else ">"
    (addend,) = struct.unpack_from(order + "Q", sec.data, r_offset)
    for s in reader.symbols:
        if s.type == "STT_FUNC" and s.shndx == target.index and s.value == sym.value + addend:
            return s.name
    raise ParseError(f"section {sec.name}: no function at {target.name}+{addend}")
