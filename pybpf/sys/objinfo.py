"""``BPF_OBJ_GET_INFO_BY_FD``: what the kernel says about a program, map, BTF or link."""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import sys

from pybpf.errors import SyscallError
from pybpf.record import field_names, record
from pybpf.sys.attr import (
    OBJ_NAME,
    PTR,
    U32,
    U64,
    info_attr,
)
from pybpf.sys.layout import Bytes, Container, Default, Padding, Struct
from pybpf.sys.syscall import (
    addr_of,
    as_enum,
    bpf,
)
from pybpf.sys.uapi import (
    BPF_TAG_SIZE,
    BPFCmd,
    LinkType,
    MapType,
    ProgType,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any

# --- object info (BPF_OBJ_GET_INFO_BY_FD) ---------------------------------------------------------
# The kernel copies min(info_len, its own size) bytes, so a declaration shorter than a newer
# kernel's is fine, and pointer fields left at 0 are simply not filled.

bpf_prog_info = Struct(
    "type" / U32,
    "id" / U32,
    "tag" / Default(Bytes(BPF_TAG_SIZE), bytes(BPF_TAG_SIZE)),
    "jited_prog_len" / U32,
    "xlated_prog_len" / U32,
    "jited_prog_insns" / PTR,
    "xlated_prog_insns" / PTR,
    "load_time" / U64,  # ns since boot
    "created_by_uid" / U32,
    "nr_map_ids" / U32,
    "map_ids" / PTR,
    "name" / OBJ_NAME,
    "ifindex" / U32,
    "gpl_compatible" / U32,  # bit 0; the rest is padding
    "netns_dev" / U64,
    "netns_ino" / U64,
    "nr_jited_ksyms" / U32,
    "nr_jited_func_lens" / U32,
    "jited_ksyms" / PTR,
    "jited_func_lens" / PTR,
    "btf_id" / U32,
    "func_info_rec_size" / U32,
    "func_info" / PTR,
    "nr_func_info" / U32,
    "nr_line_info" / U32,
    "line_info" / PTR,
    "jited_line_info" / PTR,
    "nr_jited_line_info" / U32,
    "line_info_rec_size" / U32,
    "jited_line_info_rec_size" / U32,
    "nr_prog_tags" / U32,
    "prog_tags" / PTR,
    "run_time_ns" / U64,
    "run_cnt" / U64,
    "recursion_misses" / U64,
    "verified_insns" / U32,
    "attach_btf_obj_id" / U32,
    "attach_btf_id" / U32,
    Padding(4),
)

bpf_map_info = Struct(
    "type" / U32,
    "id" / U32,
    "key_size" / U32,
    "value_size" / U32,
    "max_entries" / U32,
    "map_flags" / U32,
    "name" / OBJ_NAME,
    "ifindex" / U32,
    "btf_vmlinux_value_type_id" / U32,
    "netns_dev" / U64,
    "netns_ino" / U64,
    "btf_id" / U32,
    "btf_key_type_id" / U32,
    "btf_value_type_id" / U32,
    "btf_vmlinux_id" / U32,
    "map_extra" / U64,
)

bpf_btf_info = Struct(
    "btf" / PTR,
    "btf_size" / U32,
    "id" / U32,
    "name" / PTR,
    "name_len" / U32,
    "kernel_btf" / U32,
)

# The tail of bpf_link_info is a union per link type; XDP's member is just ``__u32 ifindex``.
bpf_link_info = Struct(
    "type" / U32,
    "id" / U32,
    "prog_id" / U32,
    Padding(4),
    "union" / Default(Bytes(32), bytes(32)),
)


@record
class ProgInfo:
    type: int  # a ProgType when this module knows it
    id: int
    tag: str  # hex, as bpftool prints it
    name: str
    jited_prog_len: int
    xlated_prog_len: int
    load_time: int
    created_by_uid: int
    map_ids: tuple[int, ...]
    ifindex: int
    gpl_compatible: bool
    btf_id: int
    run_time_ns: int
    run_cnt: int
    verified_insns: int
    attach_btf_id: int


@record
class MapInfo:
    type: int  # a MapType when this module knows it
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    ifindex: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    map_extra: int


@record
class BTFInfo:
    id: int
    size: int
    name: str
    kernel_btf: bool


@record
class BPFLinkInfo:
    type: int  # a LinkType when this module knows it
    id: int
    prog_id: int
    ifindex: int  # for XDP/TCX/netkit links, else 0


def _get_info(fd: int, layout: Struct, kind: str, **fields: object) -> Container:
    packed = layout.build(fields)
    buf = ctypes.create_string_buffer(packed, len(packed))
    bpf(
        BPFCmd.OBJ_GET_INFO_BY_FD,
        info_attr,
        f"cannot read {kind} info of fd {fd}",
        bpf_fd=fd,
        info_len=len(packed),
        info=addr_of(buf),
    )
    return layout.parse(buf.raw)


def _from_info(cls: type, info: Container, **given: object) -> Any:
    """A ``cls`` record whose fields are the kernel's info fields of the same names, except
    those ``given`` (converted, or read from elsewhere)."""
    return cls(**{name: given[name] if name in given else info[name] for name in field_names(cls)})


def prog_info(fd: int) -> ProgInfo:
    first = _get_info(fd, bpf_prog_info, "program")
    # A second call with room for the map ids: the first one said how many there are.
    ids = (ctypes.c_uint32 * max(first.nr_map_ids, 1))()
    info = _get_info(
        fd, bpf_prog_info, "program", nr_map_ids=first.nr_map_ids, map_ids=addr_of(ids)
    )
    return _from_info(
        ProgInfo,
        info,
        type=as_enum(ProgType, info.type),
        tag=info.tag.hex(),
        map_ids=tuple(ids[: min(info.nr_map_ids, first.nr_map_ids)]),
        gpl_compatible=bool(info.gpl_compatible & 1),
    )


def prog_xlated_insns(fd: int) -> bytes:
    """The program as the verifier rewrote it (what ``bpftool prog dump xlated`` shows)."""
    size = _get_info(fd, bpf_prog_info, "program").xlated_prog_len
    buf = ctypes.create_string_buffer(max(size, 1))
    info = _get_info(
        fd, bpf_prog_info, "program", xlated_prog_len=size, xlated_prog_insns=addr_of(buf)
    )
    code = buf.raw[: min(size, info.xlated_prog_len)]
    if code and not any(code):
        # The kernel zeroes translated code for readers without CAP_SYS_ADMIN / CAP_PERFMON.
        raise SyscallError(f"cannot read the translated code of program fd {fd}", _errno.EPERM)
    return code


def map_info(fd: int) -> MapInfo:
    info = _get_info(fd, bpf_map_info, "map")
    return _from_info(MapInfo, info, type=as_enum(MapType, info.type))


def btf_info(fd: int) -> BTFInfo:
    name = ctypes.create_string_buffer(64)
    info = _get_info(fd, bpf_btf_info, "BTF", name=addr_of(name), name_len=len(name))
    return BTFInfo(info.id, info.btf_size, name.value.decode(), bool(info.kernel_btf))


def link_info(fd: int) -> BPFLinkInfo:
    info = _get_info(fd, bpf_link_info, "link")
    link_type = as_enum(LinkType, info.type)
    ifindex = 0
    if link_type in (LinkType.XDP, LinkType.TCX, LinkType.NETKIT):
        ifindex = int.from_bytes(info.union[:4], sys.byteorder)
    return BPFLinkInfo(link_type, info.id, info.prog_id, ifindex)


# --- who holds an object (/proc) ------------------------------------------------------------------
# What bpftool lists as an object's "pids". Each fd of a BPF object is an anonymous inode whose
# /proc/PID/fd link names its kind, and whose /proc/PID/fdinfo holds its id ("prog_id:\t7").

_FD_KINDS = {
    "prog": ("anon_inode:bpf-prog", "prog_id"),
    "map": ("anon_inode:bpf-map", "map_id"),
    "link": ("anon_inode:bpf_link", "link_id"),
}


def holders(kind: str, obj_id: int) -> list[int]:
    """The processes other than this one that hold a file descriptor of the ``kind`` object
    ``obj_id`` ("prog", "map" or "link"), in /proc's order. An object attached with no holder
    is kept only by its attachment (a process that attached it and went away); processes that
    end while they are read, or whose fds another user's privileges cannot read, are skipped."""
    target, key = _FD_KINDS[kind]
    me, out = os.getpid(), []
    want = f"{key}:\t{obj_id}\n"
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        fds = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fds)
        except OSError:
            continue
        for fd in names:
            try:
                if os.readlink(f"{fds}/{fd}") != target:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    if want in f.read():
                        out.append(int(pid))
                        break
            except OSError:
                continue
    return out
