"""Commands on any BPF object: pin to and get from bpffs, walk ids, open an fd by id."""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from pybpf.errors import SyscallError
from pybpf.sys.attr import (
    get_id_attr,
    obj_attr,
)
from pybpf.sys.syscall import (
    addr_of,
    bpf,
    bpf_raw,
    own_fd,
)
from pybpf.sys.uapi import (
    BPFCmd,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# --- pinning, ids, fds ----------------------------------------------------------------------------


def obj_pin(fd: int, path: str, what: str = "") -> None:
    """Pin the object ``fd`` refers to at ``path``; ``what`` names it in an error ("program
    'xdp_pass'"). A pin never replaces one: a path in use is an error that names it."""
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    failed = f"cannot pin {what} at {path}" if what else f"cannot pin to {path}"
    try:
        bpf(BPFCmd.OBJ_PIN, obj_attr, failed, pathname=addr_of(pbuf), bpf_fd=fd)
    except SyscallError as e:
        if e.errno != _errno.EEXIST:
            raise
        raise SyscallError(failed, e.errno, "the path exists already") from None


def obj_get(path: str, file_flags: int = 0) -> int:
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    fd, _ = bpf(
        BPFCmd.OBJ_GET,
        obj_attr,
        f"cannot open pinned object {path}",
        pathname=addr_of(pbuf),
        file_flags=file_flags,
    )
    return own_fd(fd)


def _next_id(cmd: BPFCmd, kind: str, start_id: int) -> Optional[int]:
    ret, err, out = bpf_raw(cmd, get_id_attr, start_id=start_id)
    if ret < 0:
        if err == _errno.ENOENT:
            return None
        raise SyscallError(f"cannot list {kind} ids", err)
    return out.next_id


def prog_get_next_id(start_id: int = 0) -> Optional[int]:
    return _next_id(BPFCmd.PROG_GET_NEXT_ID, "program", start_id)


def map_get_next_id(start_id: int = 0) -> Optional[int]:
    return _next_id(BPFCmd.MAP_GET_NEXT_ID, "map", start_id)


def btf_get_next_id(start_id: int = 0) -> Optional[int]:
    return _next_id(BPFCmd.BTF_GET_NEXT_ID, "BTF", start_id)


def link_get_next_id(start_id: int = 0) -> Optional[int]:
    return _next_id(BPFCmd.LINK_GET_NEXT_ID, "link", start_id)


def _fd_by_id(cmd: BPFCmd, kind: str, obj_id: int, open_flags: int = 0) -> int:
    fd, _ = bpf(
        cmd, get_id_attr, f"cannot open {kind} id {obj_id}", start_id=obj_id, open_flags=open_flags
    )
    return own_fd(fd)


def prog_get_fd_by_id(prog_id: int) -> int:
    return _fd_by_id(BPFCmd.PROG_GET_FD_BY_ID, "program", prog_id)


def map_get_fd_by_id(map_id: int, open_flags: int = 0) -> int:
    return _fd_by_id(BPFCmd.MAP_GET_FD_BY_ID, "map", map_id, open_flags)


def btf_get_fd_by_id(btf_id: int) -> int:
    return _fd_by_id(BPFCmd.BTF_GET_FD_BY_ID, "BTF", btf_id)


def link_get_fd_by_id(link_id: int) -> int:
    return _fd_by_id(BPFCmd.LINK_GET_FD_BY_ID, "link", link_id)
