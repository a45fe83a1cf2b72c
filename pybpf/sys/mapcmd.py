"""Map commands of bpf(2): create, look up, update, delete, iterate, batch, freeze."""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from pybpf.errors import SyscallError
from pybpf.sys.attr import (
    map_batch_attr,
    map_create_attr,
    map_elem_attr,
)
from pybpf.sys.syscall import (
    addr_of,
    bpf,
    bpf_raw,
    in_buf,
    key_buf,
    object_name,
    own_fd,
    quoted,
    type_name,
)
from pybpf.sys.uapi import (
    BPF_ANY,
    BPFCmd,
    MapFlags,
    MapType,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# --- maps -----------------------------------------------------------------------------------------


def map_create(
    map_type: int,
    key_size: int,
    value_size: int,
    max_entries: int,
    *,
    map_flags: int = 0,
    name: str = "",
    inner_map_fd: int = 0,
    numa_node: int = 0,
    map_ifindex: int = 0,
    btf_fd: int = 0,
    btf_key_type_id: int = 0,
    btf_value_type_id: int = 0,
    btf_vmlinux_value_type_id: int = 0,
    map_extra: int = 0,
) -> int:
    fd, _ = bpf(
        BPFCmd.MAP_CREATE,
        map_create_attr,
        f"cannot create {quoted('map', name)} ({type_name(MapType, map_type)})",
        map_type=map_type,
        key_size=key_size,
        value_size=value_size,
        max_entries=max_entries,
        map_flags=int(map_flags),
        inner_map_fd=inner_map_fd,
        numa_node=numa_node,
        map_name=object_name(name),
        map_ifindex=map_ifindex,
        btf_fd=btf_fd,
        btf_key_type_id=btf_key_type_id,
        btf_value_type_id=btf_value_type_id,
        btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
        map_extra=map_extra,
    )
    return own_fd(fd)


def _read_elem(
    cmd: BPFCmd, map_fd: int, key: Optional[bytes], out_size: int, failed: str, **attr: int
) -> Optional[bytes]:
    """The element commands that hand back ``out_size`` bytes (a value, or the next key): None
    when the kernel answers ENOENT (no such key, an empty queue, the last key)."""
    kbuf = key_buf(key) if key else None  # keyless maps (queue, stack) want NULL
    out = ctypes.create_string_buffer(max(out_size, 1))
    ret, err, _ = bpf_raw(
        cmd, map_elem_attr, map_fd=map_fd, key=addr_of(kbuf), value=addr_of(out), **attr
    )
    if ret < 0:
        if err == _errno.ENOENT:
            return None
        raise SyscallError(failed, err)
    return out.raw[:out_size]


def map_lookup_elem(
    map_fd: int, key: bytes, value_size: int, *, flags: int = 0, name: str = ""
) -> Optional[bytes]:
    """The value stored under ``key``, or None when there is none (ENOENT)."""
    failed = f"cannot look up an element of {quoted('map', name)}"
    return _read_elem(BPFCmd.MAP_LOOKUP_ELEM, map_fd, key, value_size, failed, flags=flags)


def map_lookup_and_delete_elem(
    map_fd: int, key: bytes, value_size: int, *, name: str = ""
) -> Optional[bytes]:
    """Take the value under ``key`` out of the map (for a queue or stack: pop). None if empty."""
    failed = f"cannot take an element out of {quoted('map', name)}"
    return _read_elem(BPFCmd.MAP_LOOKUP_AND_DELETE_ELEM, map_fd, key, value_size, failed)


def map_update_elem(
    map_fd: int, key: bytes, value: bytes, *, flags: int = BPF_ANY, name: str = ""
) -> None:
    kbuf, vbuf = key_buf(key), in_buf(value)
    bpf(
        BPFCmd.MAP_UPDATE_ELEM,
        map_elem_attr,
        f"cannot update an element of {quoted('map', name)}",
        map_fd=map_fd,
        key=addr_of(kbuf),
        value=addr_of(vbuf),
        flags=int(flags),
    )


def map_delete_elem(map_fd: int, key: bytes, *, name: str = "") -> bool:
    """Delete ``key``. False when it was not there (ENOENT)."""
    kbuf = key_buf(key)
    ret, err, _ = bpf_raw(BPFCmd.MAP_DELETE_ELEM, map_elem_attr, map_fd=map_fd, key=addr_of(kbuf))
    if ret < 0:
        if err == _errno.ENOENT:
            return False
        raise SyscallError(f"cannot delete an element of {quoted('map', name)}", err)
    return True


def map_get_next_key(
    map_fd: int, key: Optional[bytes], key_size: int, *, name: str = ""
) -> Optional[bytes]:
    """The key after ``key`` (the first key when ``key`` is None); None at the end."""
    failed = f"cannot iterate the keys of {quoted('map', name)}"
    return _read_elem(BPFCmd.MAP_GET_NEXT_KEY, map_fd, key, key_size, failed)


def map_lookup_batch(
    map_fd: int,
    key_size: int,
    value_size: int,
    count: int,
    in_batch: Optional[bytes] = None,
    *,
    name: str = "",
) -> tuple[list[tuple[bytes, bytes]], Optional[bytes]]:
    """Up to ``count`` (key, value) pairs in one call, and the token for the next call (None
    after the last batch). ``value_size`` is the whole per-element size (per-CPU maps: the
    rounded size times the possible CPUs). The token is a key for hash maps, a u32 for arrays.
    """
    token_size = max(key_size, 8)
    batch_buf = in_buf(in_batch) if in_batch is not None else None
    out_buf = ctypes.create_string_buffer(token_size)
    keys = ctypes.create_string_buffer(max(key_size * count, 1))
    values = ctypes.create_string_buffer(max(value_size * count, 1))
    ret, err, out = bpf_raw(
        BPFCmd.MAP_LOOKUP_BATCH,
        map_batch_attr,
        in_batch=addr_of(batch_buf),
        out_batch=addr_of(out_buf),
        keys=addr_of(keys),
        values=addr_of(values),
        count=count,
        map_fd=map_fd,
    )
    if ret < 0 and err != _errno.ENOENT:
        raise SyscallError(f"cannot batch-read {quoted('map', name)}", err)
    kraw, vraw = keys.raw, values.raw
    pairs = [
        (kraw[i * key_size : (i + 1) * key_size], vraw[i * value_size : (i + 1) * value_size])
        for i in range(out.count)
    ]
    # ENOENT means "this was the last batch" (it may still carry elements).
    return pairs, (None if ret < 0 else out_buf.raw)


def map_freeze(map_fd: int, *, name: str = "") -> None:
    bpf(BPFCmd.MAP_FREEZE, map_elem_attr, f"cannot freeze {quoted('map', name)}", map_fd=map_fd)


def kernel_supports_map_type(map_type: MapType) -> bool:
    """Create a tiny map of this type and close it: the only reliable probe.

    Types that need BTF for their key/value (sk/inode/task storage) report False here.
    """
    key, value, entries, flags = 4, 4, 1, 0
    if map_type in (MapType.RINGBUF, MapType.USER_RINGBUF):
        key, value, entries = 0, 0, os.sysconf("SC_PAGE_SIZE")
    elif map_type in (MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER):
        key = 0
    elif map_type == MapType.LPM_TRIE:
        key, flags = 8, MapFlags.NO_PREALLOC
    elif map_type in (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE):
        entries, flags = 0, MapFlags.NO_PREALLOC
    elif map_type == MapType.ARENA:
        key, value, flags = 0, 0, MapFlags.MMAPABLE
    try:
        fd = map_create(map_type, key, value, entries, map_flags=flags)
    except SyscallError:
        return False
    os.close(fd)
    return True
