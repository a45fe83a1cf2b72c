"""struct_ops: a kernel interface (``struct tcp_congestion_ops``...) implemented in BPF.

What libbpf does, step by step:

1. The kernel describes each struct it lets BPF implement with a *value type* in its BTF,
   ``struct bpf_struct_ops_<name> { struct bpf_struct_ops_common_value common; struct <name>
   data; }``: the value of a ``BPF_MAP_TYPE_STRUCT_OPS`` map (one entry, key 0), created with
   ``btf_vmlinux_value_type_id`` naming it.
2. Each program that fills a function pointer is loaded with ``attach_btf_id`` = the kernel
   struct's BTF id and ``expected_attach_type`` = the member's index in it: the verifier checks
   it against that member's prototype.
3. The value is laid out from the kernel's struct, member by member *by name* (the object's
   copy of the struct may be older or newer): data members copied from the variable's bytes,
   each function pointer replaced by its program's fd.
4. ``BPF_MAP_UPDATE_ELEM`` hands it to the kernel. A plain ``.struct_ops`` map is registered by
   that update (the kernel then holds the map: it stays registered after the process exits,
   until the element is deleted — ``bpftool struct_ops unregister``); a ``.struct_ops.link`` map
   (``BPF_F_LINK``) only when ``BPF_LINK_CREATE`` is given the map's fd, and unregistered when the
   link's last fd closes — also when the process dies.

The loader creates the maps (steps 1-3, :func:`create_maps`); :meth:`StructOps.register` is the
attach step (4).
"""

from __future__ import annotations

import atexit
import errno as _errno
import os
import sys
import weakref
from typing import Any, Optional, Union

from pybpf.btf.kernel import KernelBTF
from pybpf.btf.model import Ptr, Struct
from pybpf.errors import BPFError, BTFError, SyscallError
from pybpf.link.bpflink import Link
from pybpf.maps import Map
from pybpf.object.spec import ObjectSpec, ProgramSpec, StructOpsSpec
from pybpf.record import record
from pybpf.sys import linkcmd, mapcmd
from pybpf.sys.fd import FDObject
from pybpf.sys.syscall import object_name
from pybpf.sys.uapi import AttachType, MapFlags, MapType

VALUE_PREFIX = "bpf_struct_ops_"


@record
class KernelStruct:
    """Where the kernel keeps one struct_ops struct: its BTF id, its value type."""

    name: str
    type_id: int
    struct: Struct
    value_type_id: int
    value_size: int
    data_offset: int  # of ``data`` (the struct) inside the value


def kernel_struct(name: str, where: str, kernel: Optional[KernelBTF] = None) -> KernelStruct:
    """Find ``struct name`` and its value type in the kernel's BTF, or say what is missing."""
    kernel = kernel or KernelBTF.system()
    sid = kernel.find(name, Struct)
    if sid is None:
        for mod in KernelBTF.modules():
            if mod.find(name, Struct) is not None:
                raise BTFError(
                    f"{where}: struct {name} is in module {mod.name}'s BTF; pybpf registers "
                    "struct_ops of vmlinux only"
                )
        raise BTFError(f"{where}: implements struct {name}, which the kernel's BTF does not have")
    vid = kernel.find(VALUE_PREFIX + name, Struct)
    if vid is None:
        raise BTFError(
            f"{where}: the kernel has struct {name} but no {VALUE_PREFIX}{name}: it does not let "
            "BPF implement it"
        )
    value = kernel.type(vid)
    data = next((m for m in value.members if m.name == "data"), None)
    if data is None:
        raise BTFError(f"{where}: {VALUE_PREFIX}{name} has no 'data' member")
    return KernelStruct(name, sid, kernel.type(sid), vid, value.size, data.bit_offset // 8)


def _user(spec: ObjectSpec, ps: ProgramSpec) -> tuple[StructOpsSpec, str]:
    """The struct_ops variable whose member ``ps`` fills, and that member's name."""
    for so in spec.struct_ops.values():
        for member, prog in so.programs:
            if prog == ps.name:
                return so, member
    known = ", ".join(f"'{n}'" for n in spec.struct_ops) or "none"
    raise BPFError(
        f"program '{ps.name}' (section {ps.section}): no struct_ops variable uses it "
        f"(struct_ops variables: {known})"
    )


def program_target(spec: ObjectSpec, ps: ProgramSpec) -> tuple[int, int]:
    """(attach_btf_id, expected_attach_type) of a struct_ops program: the kernel struct's id
    and the index of the member the program implements."""
    so, member = _user(spec, ps)
    ks = kernel_struct(so.type_name, f"struct_ops variable '{so.name}'")
    for index, m in enumerate(ks.struct.members):
        if m.name == member:
            return ks.type_id, index
    raise BTFError(
        f"program '{ps.name}': struct {so.type_name} of this kernel has no member '{member}'"
    )


def build_value(so: StructOpsSpec, spec: ObjectSpec, ks: KernelStruct, prog_fds: dict) -> bytes:
    """The map value: the kernel's layout, filled member by member by name from the object."""
    kernel = KernelBTF.system()
    btf = spec.btf
    local = btf.type(so.type_id)
    kmembers = {m.name: m for m in ks.struct.members}
    progs = dict(so.programs)
    value = bytearray(ks.value_size)
    where = f"struct_ops variable '{so.name}' (struct {so.type_name})"
    for m in local.members:
        off = m.bit_offset // 8
        size = btf.sizeof(m.type_id)
        raw = so.data[off : off + size]
        km = kmembers.get(m.name)
        if km is None:
            if m.name in progs or any(raw):
                raise BTFError(f"{where}: this kernel's struct has no member '{m.name}'")
            continue  # a member the kernel does not know, left zero: harmless (libbpf too)
        kdst = ks.data_offset + km.bit_offset // 8
        if m.name in progs:
            fd = prog_fds[progs[m.name]]
            value[kdst : kdst + 8] = fd.to_bytes(8, sys.byteorder)  # the kernel reads a long
            continue
        if m.bitfield_size or km.bitfield_size:
            raise BTFError(f"{where}: bit-field member '{m.name}' is not supported")
        if isinstance(btf.type(btf.resolve(m.type_id)), Ptr):
            continue  # a function pointer no program fills
        if kernel.sizeof(km.type_id) != size:
            raise BTFError(
                f"{where}: member '{m.name}' is {size} bytes in the object, "
                f"{kernel.sizeof(km.type_id)} in the kernel"
            )
        value[kdst : kdst + size] = raw
    return bytes(value)


class StructOps:
    """A loaded struct_ops map, ready to be registered with :meth:`register`."""

    def __init__(self, spec: StructOpsSpec, map: Map, value: bytes):
        self.spec = spec
        self.map = map
        self.value = value

    def __repr__(self) -> str:
        return f"StructOps('{self.spec.name}', struct {self.spec.type_name})"

    def register(self) -> Union[Link, StructOpsRegistration]:
        """Hand the value to the kernel. ``.struct_ops.link`` maps: a Link (closing it, or the
        process's death, unregisters); plain maps: a StructOpsRegistration (``close()``
        unregisters; it outlives the process otherwise)."""
        try:
            self.map.update(0, self.value)
        except SyscallError as e:
            raise SyscallError(
                f"cannot register struct_ops '{self.spec.name}' (struct {self.spec.type_name})",
                e.errno,
                e.detail or _hint(e.errno),
            ) from None
        if not self.spec.link:
            return StructOpsRegistration(os.dup(self.map.fd), self.spec.name)
        fd = linkcmd.link_create(self.map.fd, 0, AttachType.STRUCT_OPS)
        return Link(fd)


def _hint(err: int) -> Optional[str]:
    if err == _errno.EEXIST:
        return "one with the same name is registered already"
    return None


class StructOpsRegistration(FDObject):
    """A plain struct_ops map registered by its update: ``close()`` deletes the element, which
    unregisters it (done at interpreter exit too; after ``kill -9`` it stays registered until
    ``bpftool struct_ops unregister name NAME``)."""

    _live: weakref.WeakSet = weakref.WeakSet()

    def __init__(self, map_fd: int, name: str):
        self._fd = map_fd
        self.name = name
        StructOpsRegistration._live.add(self)

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            mapcmd.map_delete_elem(self._fd, (0).to_bytes(4, sys.byteorder), name=self.name)
        finally:
            super().close()


@atexit.register
def _unregister_at_exit() -> None:
    for reg in list(StructOpsRegistration._live):
        try:
            reg.close()
        except Exception:
            pass


def create_maps(obj: Any, log: Any = None) -> None:
    """One STRUCT_OPS map per struct_ops variable whose programs were all loaded; the value is
    kept on ``obj.struct_ops[name]`` for :meth:`StructOps.register`."""
    spec = obj.spec
    for so in spec.struct_ops.values():
        fds = {p: obj.programs[p].fd for _, p in so.programs if p in obj.programs}
        if len(fds) < len(so.programs):
            continue  # the caller left its programs out
        ks = kernel_struct(so.type_name, f"struct_ops variable '{so.name}'")
        value = build_value(so, spec, ks, fds)
        try:
            fd = mapcmd.map_create(
                MapType.STRUCT_OPS,
                4,
                ks.value_size,
                1,
                map_flags=MapFlags.LINK if so.link else 0,
                name=object_name(so.name),
                btf_fd=obj.btf_fd or 0,
                btf_vmlinux_value_type_id=ks.value_type_id,
            )
        except SyscallError as e:
            detail = _why_no_link_map(so, ks, obj) if e.errno == _errno.EINVAL else None
            raise SyscallError(
                f"cannot create struct_ops map '{so.name}'", e.errno, detail
            ) from None
        m = Map.from_fd(fd)
        m.name = so.name
        obj.maps[so.name] = m
        obj.struct_ops[so.name] = StructOps(so, m, value)
        if log is not None:
            log(f"struct_ops '{so.name}': map id {m.id} implements struct {so.type_name}")


def _why_no_link_map(so: StructOpsSpec, ks: KernelStruct, obj: Any) -> Optional[str]:
    """A ``.struct_ops.link`` map refused with EINVAL where the same map without BPF_F_LINK is
    accepted: the kernel predates struct_ops links (6.4)."""
    if not so.link:
        return None
    try:
        fd = mapcmd.map_create(
            MapType.STRUCT_OPS,
            4,
            ks.value_size,
            1,
            name=object_name(so.name),
            btf_fd=obj.btf_fd or 0,
            btf_vmlinux_value_type_id=ks.value_type_id,
        )
    except SyscallError:
        return None
    os.close(fd)
    return "this kernel has no struct_ops links (.struct_ops.link needs BPF_F_LINK, Linux 6.4)"
