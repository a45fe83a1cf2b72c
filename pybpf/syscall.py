"""The bpf(2) system call: commands, the ``union bpf_attr`` variants, and thin wrappers.

Every command takes a pointer to ``union bpf_attr`` and its size. The kernel reads only the part of
the union that belongs to the command (and insists that anything past the fields it knows is zero),
so each command gets its own declaration below, named as in ``include/uapi/linux/bpf.h``. We pass
the size of our declaration: a shorter attr than the kernel's is zero-filled by the kernel, so one
declaration works on old and new kernels. Pointers inside an attr are user-space addresses carried
in ``__aligned_u64`` fields; the buffers they point at are ctypes objects kept alive for the call.

Wrappers take keyword arguments and raise :class:`~pybpf.errors.SyscallError` naming the step
("cannot create map 'events'") with the errno name and a hint. Every fd handed back is O_CLOEXEC and
never below 3 (see :func:`own_fd`).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import functools
import os
import platform
import sys
from dataclasses import dataclass
from enum import IntEnum
from typing import Optional

import construct as cs

from pybpf.errors import SyscallError
from pybpf.uapi import (  # noqa: F401  (re-exported: pybpf.syscall.MapType etc.)
    BPF_ANY,
    BPF_EXIST,
    BPF_LOG_MAX,
    BPF_LOG_MIN,
    BPF_NOEXIST,
    BPF_OBJ_NAME_LEN,
    BPF_TAG_SIZE,
    PERCPU_MAP_TYPES,
    AttachFlags,
    AttachType,
    BPFCmd,
    LinkType,
    MapFlags,
    MapType,
    ProgFlags,
    ProgType,
    StatsType,
    TestRunFlags,
    UpdateFlags,
)

# The bpf() syscall number differs per architecture (asm-generic architectures share 280).
_SYS_BPF = {
    "x86_64": 321,
    "amd64": 321,
    "i386": 357,
    "i686": 357,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "armv7l": 386,
    "armv6l": 386,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
}

# --- union bpf_attr, one declaration per command -------------------------------------------------
# Host byte order throughout: the kernel reads these in its own order. ``PTR`` is an
# ``__aligned_u64`` holding a user-space address. Every field defaults to 0.

U32 = cs.Default(cs.Int32un, 0)
U64 = cs.Default(cs.Int64un, 0)
PTR = U64
OBJ_NAME = cs.Default(cs.PaddedString(BPF_OBJ_NAME_LEN, "ascii"), "")

map_create_attr = cs.Struct(
    "map_type" / U32,
    "key_size" / U32,
    "value_size" / U32,
    "max_entries" / U32,
    "map_flags" / U32,
    "inner_map_fd" / U32,
    "numa_node" / U32,
    "map_name" / OBJ_NAME,
    "map_ifindex" / U32,
    "btf_fd" / U32,
    "btf_key_type_id" / U32,
    "btf_value_type_id" / U32,
    "btf_vmlinux_value_type_id" / U32,
    "map_extra" / U64,
)

# BPF_MAP_*_ELEM, BPF_MAP_GET_NEXT_KEY and BPF_MAP_FREEZE: ``value`` doubles as ``next_key``.
map_elem_attr = cs.Struct(
    "map_fd" / U32,
    cs.Padding(4),
    "key" / PTR,
    "value" / PTR,
    "flags" / U64,
)

map_batch_attr = cs.Struct(
    "in_batch" / PTR,
    "out_batch" / PTR,
    "keys" / PTR,
    "values" / PTR,
    "count" / U32,
    "map_fd" / U32,
    "elem_flags" / U64,
    "flags" / U64,
)

prog_load_attr = cs.Struct(
    "prog_type" / U32,
    "insn_cnt" / U32,
    "insns" / PTR,
    "license" / PTR,
    "log_level" / U32,
    "log_size" / U32,
    "log_buf" / PTR,
    "kern_version" / U32,
    "prog_flags" / U32,
    "prog_name" / OBJ_NAME,
    "prog_ifindex" / U32,
    "expected_attach_type" / U32,
    "prog_btf_fd" / U32,
    "func_info_rec_size" / U32,
    "func_info" / PTR,
    "func_info_cnt" / U32,
    "line_info_rec_size" / U32,
    "line_info" / PTR,
    "line_info_cnt" / U32,
    "attach_btf_id" / U32,
    "attach_btf_obj_fd" / U32,  # a union with attach_prog_fd
    "core_relo_cnt" / U32,
    "fd_array" / PTR,
    "core_relos" / PTR,
    "core_relo_rec_size" / U32,
    "log_true_size" / U32,  # out (6.4+): the buffer size the whole log needs
)

obj_attr = cs.Struct(
    "pathname" / PTR,
    "bpf_fd" / U32,
    "file_flags" / U32,
)

test_attr = cs.Struct(
    "prog_fd" / U32,
    "retval" / U32,
    "data_size_in" / U32,
    "data_size_out" / U32,
    "data_in" / PTR,
    "data_out" / PTR,
    "repeat" / U32,
    "duration" / U32,
    "ctx_size_in" / U32,
    "ctx_size_out" / U32,
    "ctx_in" / PTR,
    "ctx_out" / PTR,
    "flags" / U32,
    "cpu" / U32,
    "batch_size" / U32,
    cs.Padding(4),
)

# BPF_*_GET_NEXT_ID and BPF_*_GET_FD_BY_ID: ``start_id`` is a union with prog_id/map_id/...
get_id_attr = cs.Struct(
    "start_id" / U32,
    "next_id" / U32,
    "open_flags" / U32,
)

info_attr = cs.Struct(
    "bpf_fd" / U32,
    "info_len" / U32,
    "info" / PTR,
)

btf_load_attr = cs.Struct(
    "btf" / PTR,
    "btf_log_buf" / PTR,
    "btf_size" / U32,
    "btf_log_size" / U32,
    "btf_log_level" / U32,
    "btf_log_true_size" / U32,
)

link_create_attr = cs.Struct(
    "prog_fd" / U32,
    "target_fd" / U32,  # a union with target_ifindex
    "attach_type" / U32,
    "flags" / U32,
    "target_btf_id" / U32,
    cs.Padding(4),
)

link_update_attr = cs.Struct(
    "link_fd" / U32,
    "new_prog_fd" / U32,
    "flags" / U32,
    "old_prog_fd" / U32,
)

link_detach_attr = cs.Struct("link_fd" / U32)
enable_stats_attr = cs.Struct("type" / U32)


# --- the call itself ------------------------------------------------------------------------------


def _bpf_syscall_number() -> int:
    machine = platform.machine().lower()
    try:
        return _SYS_BPF[machine]
    except KeyError:
        raise SyscallError(
            f"bpf() syscall number unknown for architecture {machine!r}", _errno.ENOSYS
        ) from None


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR_BPF = _bpf_syscall_number()


_uses: dict[int, int] = {}
_COMPILE_AFTER = 8  # uses of one layout before compiling it pays off


def _compiled(layout: cs.Struct) -> cs.Construct:
    """construct's compiled twin of a declaration — the same bytes, a few times faster per
    call — for the layouts a program uses often (map lookups); compiling costs milliseconds,
    so a layout used a few times (loading an object) is used as declared."""
    n = _uses.get(id(layout), 0) + 1
    _uses[id(layout)] = n
    if n < _COMPILE_AFTER:
        return layout
    return _compile(layout)


@functools.cache
def _compile(layout: cs.Struct) -> cs.Construct:
    return layout.compile()


def bpf(cmd: BPFCmd, layout: cs.Struct, what: str, **fields: object) -> tuple[int, cs.Container]:
    """Run one bpf() command. Returns (return value, the attr as the kernel left it).

    Raises SyscallError(what, errno) when the kernel answers -1.
    """
    ret, err, out = bpf_raw(cmd, layout, **fields)
    if ret < 0:
        raise SyscallError(what, err)
    return ret, out


def bpf_raw(cmd: BPFCmd, layout: cs.Struct, **fields: object) -> tuple[int, int, cs.Container]:
    """Like :func:`bpf` but hands back (ret, errno, attr) instead of raising."""
    layout = _compiled(layout)
    packed = layout.build(fields)
    attr = ctypes.create_string_buffer(packed, len(packed))
    while True:
        ret = _libc.syscall(_NR_BPF, int(cmd), attr, len(packed))
        err = ctypes.get_errno() if ret < 0 else 0
        if err != _errno.EINTR:
            break
    return ret, err, layout.parse(attr.raw)


def own_fd(fd: int) -> int:
    """Make an fd from the kernel safe to keep: CLOEXEC and never 0, 1 or 2.

    A BPF fd that lands on 0-2 (because the process closed stdin, say) would later be written to
    by code that thinks it is stdout, or be handed to the kernel as "fd 0", which several commands
    read as "no fd". bpf() already returns O_CLOEXEC fds; F_DUPFD_CLOEXEC keeps that.
    """
    if fd >= 3:
        return fd
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def _addr(buf: Optional[ctypes.Array]) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def _in_buf(data: bytes) -> ctypes.Array:
    return ctypes.create_string_buffer(bytes(data), max(len(data), 1))


def _key_buf(key: bytes) -> Optional[ctypes.Array]:
    # Maps without keys (queue, stack, bloom filter) want a NULL key pointer: non-NULL is EINVAL.
    return _in_buf(key) if key else None


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


def object_name(name: str) -> str:
    """A map/program name as the kernel accepts it: [A-Za-z0-9_.], at most 15 bytes."""
    return "".join(c if c in _NAME_CHARS else "_" for c in name)[: BPF_OBJ_NAME_LEN - 1]


def _quoted(kind: str, name: str) -> str:
    return f"{kind} '{name}'" if name else kind


def _type_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def as_enum(enum: type[IntEnum], value: int) -> int:
    """The enum member for ``value`` when this module knows it, else the plain int."""
    try:
        return enum(value)
    except ValueError:
        return value


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
        f"cannot create {_quoted('map', name)} ({_type_name(MapType, map_type)})",
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


def map_lookup_elem(
    map_fd: int, key: bytes, value_size: int, *, flags: int = 0, name: str = ""
) -> Optional[bytes]:
    """The value stored under ``key``, or None when there is none (ENOENT)."""
    kbuf = _key_buf(key)
    vbuf = ctypes.create_string_buffer(max(value_size, 1))
    ret, err, _ = bpf_raw(
        BPFCmd.MAP_LOOKUP_ELEM,
        map_elem_attr,
        map_fd=map_fd,
        key=_addr(kbuf),
        value=_addr(vbuf),
        flags=flags,
    )
    if ret < 0:
        if err == _errno.ENOENT:
            return None
        raise SyscallError(f"cannot look up an element of {_quoted('map', name)}", err)
    return vbuf.raw[:value_size]


def map_lookup_and_delete_elem(
    map_fd: int, key: bytes, value_size: int, *, name: str = ""
) -> Optional[bytes]:
    """Take the value under ``key`` out of the map (for a queue or stack: pop). None if empty."""
    kbuf = _key_buf(key)
    vbuf = ctypes.create_string_buffer(max(value_size, 1))
    ret, err, _ = bpf_raw(
        BPFCmd.MAP_LOOKUP_AND_DELETE_ELEM,
        map_elem_attr,
        map_fd=map_fd,
        key=_addr(kbuf),
        value=_addr(vbuf),
    )
    if ret < 0:
        if err == _errno.ENOENT:
            return None
        raise SyscallError(f"cannot take an element out of {_quoted('map', name)}", err)
    return vbuf.raw[:value_size]


def map_update_elem(
    map_fd: int, key: bytes, value: bytes, *, flags: int = BPF_ANY, name: str = ""
) -> None:
    kbuf, vbuf = _key_buf(key), _in_buf(value)
    bpf(
        BPFCmd.MAP_UPDATE_ELEM,
        map_elem_attr,
        f"cannot update an element of {_quoted('map', name)}",
        map_fd=map_fd,
        key=_addr(kbuf),
        value=_addr(vbuf),
        flags=int(flags),
    )


def map_delete_elem(map_fd: int, key: bytes, *, name: str = "") -> bool:
    """Delete ``key``. False when it was not there (ENOENT)."""
    kbuf = _key_buf(key)
    ret, err, _ = bpf_raw(BPFCmd.MAP_DELETE_ELEM, map_elem_attr, map_fd=map_fd, key=_addr(kbuf))
    if ret < 0:
        if err == _errno.ENOENT:
            return False
        raise SyscallError(f"cannot delete an element of {_quoted('map', name)}", err)
    return True


def map_get_next_key(
    map_fd: int, key: Optional[bytes], key_size: int, *, name: str = ""
) -> Optional[bytes]:
    """The key after ``key`` (the first key when ``key`` is None); None at the end."""
    kbuf = _key_buf(key) if key is not None else None
    nbuf = ctypes.create_string_buffer(max(key_size, 1))
    ret, err, _ = bpf_raw(
        BPFCmd.MAP_GET_NEXT_KEY,
        map_elem_attr,
        map_fd=map_fd,
        key=_addr(kbuf),
        value=_addr(nbuf),
    )
    if ret < 0:
        if err == _errno.ENOENT:
            return None
        raise SyscallError(f"cannot iterate the keys of {_quoted('map', name)}", err)
    return nbuf.raw[:key_size]


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
    in_buf = _in_buf(in_batch) if in_batch is not None else None
    out_buf = ctypes.create_string_buffer(token_size)
    keys = ctypes.create_string_buffer(max(key_size * count, 1))
    values = ctypes.create_string_buffer(max(value_size * count, 1))
    ret, err, out = bpf_raw(
        BPFCmd.MAP_LOOKUP_BATCH,
        map_batch_attr,
        in_batch=_addr(in_buf),
        out_batch=_addr(out_buf),
        keys=_addr(keys),
        values=_addr(values),
        count=count,
        map_fd=map_fd,
    )
    if ret < 0 and err != _errno.ENOENT:
        raise SyscallError(f"cannot batch-read {_quoted('map', name)}", err)
    kraw, vraw = keys.raw, values.raw
    pairs = [
        (kraw[i * key_size : (i + 1) * key_size], vraw[i * value_size : (i + 1) * value_size])
        for i in range(out.count)
    ]
    # ENOENT means "this was the last batch" (it may still carry elements).
    return pairs, (None if ret < 0 else out_buf.raw)


def map_freeze(map_fd: int, *, name: str = "") -> None:
    bpf(BPFCmd.MAP_FREEZE, map_elem_attr, f"cannot freeze {_quoted('map', name)}", map_fd=map_fd)


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


# --- programs and BTF -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgLoadResult:
    """The outcome of one BPF_PROG_LOAD attempt: fd (or -1), errno, and the log size needed."""

    fd: int
    errno: int
    log_true_size: int


def prog_load_attempt(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "GPL",
    log_level: int = 0,
    log_buf: Optional[ctypes.Array] = None,
    kern_version: int = 0,
    prog_flags: int = 0,
    prog_name: str = "",
    prog_ifindex: int = 0,
    expected_attach_type: int = 0,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    attach_prog_fd: int = 0,
    fd_array: Optional[list[int]] = None,
) -> ProgLoadResult:
    """One BPF_PROG_LOAD; never raises for a kernel refusal (the caller decides about logs).

    ``log_buf`` is a ctypes buffer for the verifier log; its length is the log size.
    """
    ibuf = _in_buf(insns)
    lic = ctypes.create_string_buffer(license.encode())
    fibuf = _in_buf(func_info) if func_info else None
    libuf = _in_buf(line_info) if line_info else None
    fda = (ctypes.c_int * len(fd_array))(*fd_array) if fd_array else None
    ret, err, out = bpf_raw(
        BPFCmd.PROG_LOAD,
        prog_load_attr,
        prog_type=int(prog_type),
        insn_cnt=len(insns) // 8,
        insns=_addr(ibuf),
        license=_addr(lic),
        log_level=log_level if log_buf is not None else 0,
        log_size=len(log_buf) if log_buf is not None else 0,
        log_buf=_addr(log_buf),
        kern_version=kern_version,
        prog_flags=int(prog_flags),
        prog_name=object_name(prog_name),
        prog_ifindex=prog_ifindex,
        expected_attach_type=int(expected_attach_type),
        prog_btf_fd=prog_btf_fd,
        func_info_rec_size=func_info_rec_size if func_info else 0,
        func_info=_addr(fibuf),
        func_info_cnt=len(func_info) // func_info_rec_size if func_info else 0,
        line_info_rec_size=line_info_rec_size if line_info else 0,
        line_info=_addr(libuf),
        line_info_cnt=len(line_info) // line_info_rec_size if line_info else 0,
        attach_btf_id=attach_btf_id,
        attach_btf_obj_fd=attach_prog_fd or attach_btf_obj_fd,
        fd_array=_addr(fda),
    )
    fd = own_fd(ret) if ret >= 0 else -1
    return ProgLoadResult(fd, err, out.log_true_size)


def prog_load(prog_type: int, insns: bytes, **kwargs: object) -> int:
    """BPF_PROG_LOAD without the verifier-log protocol (pybpf.program has that)."""
    res = prog_load_attempt(prog_type, insns, **kwargs)
    if res.fd < 0:
        name = str(kwargs.get("prog_name", ""))
        raise SyscallError(f"cannot load {_quoted('program', name)}", res.errno)
    return res.fd


def btf_load(data: bytes, *, log_level: int = 0, log_size: int = 1 << 20) -> int:
    """Load raw BTF; on failure load again with a log and quote its last line in the error."""
    dbuf = _in_buf(data)
    log = ctypes.create_string_buffer(log_size) if log_level else None
    ret, err, _ = bpf_raw(
        BPFCmd.BTF_LOAD,
        btf_load_attr,
        btf=_addr(dbuf),
        btf_size=len(data),
        btf_log_buf=_addr(log),
        btf_log_size=log_size if log is not None else 0,
        btf_log_level=log_level,
    )
    if ret >= 0:
        return own_fd(ret)
    if log is None:
        return btf_load(data, log_level=1, log_size=log_size)
    lines = [ln for ln in log.value.decode(errors="replace").splitlines() if ln.strip()]
    raise SyscallError("cannot load BTF", err, lines[-1] if lines else None)


# --- pinning, ids, fds ----------------------------------------------------------------------------


def obj_pin(fd: int, path: str) -> None:
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    bpf(BPFCmd.OBJ_PIN, obj_attr, f"cannot pin to {path}", pathname=_addr(pbuf), bpf_fd=fd)


def obj_get(path: str, file_flags: int = 0) -> int:
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    fd, _ = bpf(
        BPFCmd.OBJ_GET,
        obj_attr,
        f"cannot open pinned object {path}",
        pathname=_addr(pbuf),
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


# --- test run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestRunResult:
    __test__ = False  # not a pytest class

    retval: int
    duration_ns: int  # the kernel's average per repetition
    data_out: bytes
    ctx_out: bytes


def prog_test_run(
    prog_fd: int,
    data_in: bytes = b"",
    *,
    data_size_out: Optional[int] = None,
    ctx_in: Optional[bytes] = None,
    ctx_size_out: int = 0,
    repeat: int = 1,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
    name: str = "",
) -> TestRunResult:
    if data_size_out is None:
        # XDP may grow the frame (bpf_xdp_adjust_head/tail): leave room for that.
        data_size_out = len(data_in) + 256 if data_in else 0
    din = _in_buf(data_in) if data_in else None
    dout = ctypes.create_string_buffer(data_size_out) if data_size_out else None
    cin = _in_buf(ctx_in) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_size_out) if ctx_size_out else None
    _, out = bpf(
        BPFCmd.PROG_TEST_RUN,
        test_attr,
        f"cannot test-run {_quoted('program', name)}",
        prog_fd=prog_fd,
        data_size_in=len(data_in),
        data_size_out=data_size_out,
        data_in=_addr(din),
        data_out=_addr(dout),
        repeat=repeat,
        ctx_size_in=len(ctx_in) if ctx_in else 0,
        ctx_size_out=ctx_size_out,
        ctx_in=_addr(cin),
        ctx_out=_addr(cout),
        flags=int(flags),
        cpu=cpu,
        batch_size=batch_size,
    )
    data = dout.raw[: out.data_size_out] if dout is not None else b""
    ctx = cout.raw[: out.ctx_size_out] if cout is not None else b""
    return TestRunResult(out.retval, out.duration, data, ctx)


# --- links ----------------------------------------------------------------------------------------


def link_create(
    prog_fd: int, target: int, attach_type: int, *, flags: int = 0, target_btf_id: int = 0
) -> int:
    """BPF_LINK_CREATE. ``target`` is an fd, or an ifindex for XDP/TCX/netkit."""
    fd, _ = bpf(
        BPFCmd.LINK_CREATE,
        link_create_attr,
        f"cannot create a {_type_name(AttachType, attach_type)} link to target {target}",
        prog_fd=prog_fd,
        target_fd=target,
        attach_type=int(attach_type),
        flags=int(flags),
        target_btf_id=target_btf_id,
    )
    return own_fd(fd)


def link_update(link_fd: int, new_prog_fd: int, *, flags: int = 0, old_prog_fd: int = 0) -> None:
    bpf(
        BPFCmd.LINK_UPDATE,
        link_update_attr,
        "cannot update link with a new program",
        link_fd=link_fd,
        new_prog_fd=new_prog_fd,
        flags=int(flags),
        old_prog_fd=old_prog_fd,
    )


def link_detach(link_fd: int) -> None:
    bpf(BPFCmd.LINK_DETACH, link_detach_attr, "cannot detach link", link_fd=link_fd)


def enable_stats(stats_type: StatsType = StatsType.RUN_TIME) -> int:
    """Turn on run-time statistics (run_cnt/run_time_ns) while the returned fd stays open."""
    fd, _ = bpf(
        BPFCmd.ENABLE_STATS, enable_stats_attr, "cannot enable BPF statistics", type=stats_type
    )
    return own_fd(fd)


# --- object info (BPF_OBJ_GET_INFO_BY_FD) ---------------------------------------------------------
# The kernel copies min(info_len, its own size) bytes, so a declaration shorter than a newer
# kernel's is fine, and pointer fields left at 0 are simply not filled.

bpf_prog_info = cs.Struct(
    "type" / U32,
    "id" / U32,
    "tag" / cs.Default(cs.Bytes(BPF_TAG_SIZE), bytes(BPF_TAG_SIZE)),
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
    cs.Padding(4),
)

bpf_map_info = cs.Struct(
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

bpf_btf_info = cs.Struct(
    "btf" / PTR,
    "btf_size" / U32,
    "id" / U32,
    "name" / PTR,
    "name_len" / U32,
    "kernel_btf" / U32,
)

# The tail of bpf_link_info is a union per link type; XDP's member is just ``__u32 ifindex``.
bpf_link_info = cs.Struct(
    "type" / U32,
    "id" / U32,
    "prog_id" / U32,
    cs.Padding(4),
    "union" / cs.Default(cs.Bytes(32), bytes(32)),
)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class BTFInfo:
    id: int
    size: int
    name: str
    kernel_btf: bool


@dataclass(frozen=True)
class BPFLinkInfo:
    type: int  # a LinkType when this module knows it
    id: int
    prog_id: int
    ifindex: int  # for XDP/TCX/netkit links, else 0


def _get_info(fd: int, layout: cs.Struct, kind: str, **fields: object) -> cs.Container:
    layout = _compiled(layout)
    packed = layout.build(fields)
    buf = ctypes.create_string_buffer(packed, len(packed))
    bpf(
        BPFCmd.OBJ_GET_INFO_BY_FD,
        info_attr,
        f"cannot read {kind} info of fd {fd}",
        bpf_fd=fd,
        info_len=len(packed),
        info=_addr(buf),
    )
    return layout.parse(buf.raw)


def prog_info(fd: int) -> ProgInfo:
    first = _get_info(fd, bpf_prog_info, "program")
    # A second call with room for the map ids: the first one said how many there are.
    ids = (ctypes.c_uint32 * max(first.nr_map_ids, 1))()
    info = _get_info(fd, bpf_prog_info, "program", nr_map_ids=first.nr_map_ids, map_ids=_addr(ids))
    return ProgInfo(
        type=as_enum(ProgType, info.type),
        id=info.id,
        tag=info.tag.hex(),
        name=info.name,
        jited_prog_len=info.jited_prog_len,
        xlated_prog_len=info.xlated_prog_len,
        load_time=info.load_time,
        created_by_uid=info.created_by_uid,
        map_ids=tuple(ids[: min(info.nr_map_ids, first.nr_map_ids)]),
        ifindex=info.ifindex,
        gpl_compatible=bool(info.gpl_compatible & 1),
        btf_id=info.btf_id,
        run_time_ns=info.run_time_ns,
        run_cnt=info.run_cnt,
        verified_insns=info.verified_insns,
        attach_btf_id=info.attach_btf_id,
    )


def prog_xlated_insns(fd: int) -> bytes:
    """The program as the verifier rewrote it (what ``bpftool prog dump xlated`` shows)."""
    size = _get_info(fd, bpf_prog_info, "program").xlated_prog_len
    buf = ctypes.create_string_buffer(max(size, 1))
    info = _get_info(
        fd, bpf_prog_info, "program", xlated_prog_len=size, xlated_prog_insns=_addr(buf)
    )
    code = buf.raw[: min(size, info.xlated_prog_len)]
    if code and not any(code):
        # The kernel zeroes translated code for readers without CAP_SYS_ADMIN / CAP_PERFMON.
        raise SyscallError(f"cannot read the translated code of program fd {fd}", _errno.EPERM)
    return code


def map_info(fd: int) -> MapInfo:
    info = _get_info(fd, bpf_map_info, "map")
    return MapInfo(
        type=as_enum(MapType, info.type),
        id=info.id,
        key_size=info.key_size,
        value_size=info.value_size,
        max_entries=info.max_entries,
        map_flags=info.map_flags,
        name=info.name,
        ifindex=info.ifindex,
        btf_id=info.btf_id,
        btf_key_type_id=info.btf_key_type_id,
        btf_value_type_id=info.btf_value_type_id,
        map_extra=info.map_extra,
    )


def btf_info(fd: int) -> BTFInfo:
    name = ctypes.create_string_buffer(64)
    info = _get_info(fd, bpf_btf_info, "BTF", name=_addr(name), name_len=len(name))
    return BTFInfo(info.id, info.btf_size, name.value.decode(), bool(info.kernel_btf))


def link_info(fd: int) -> BPFLinkInfo:
    info = _get_info(fd, bpf_link_info, "link")
    link_type = as_enum(LinkType, info.type)
    ifindex = 0
    if link_type in (LinkType.XDP, LinkType.TCX, LinkType.NETKIT):
        ifindex = int.from_bytes(info.union[:4], sys.byteorder)
    return BPFLinkInfo(link_type, info.id, info.prog_id, ifindex)
