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
import os
from enum import IntEnum

from pybpf.errors import SyscallError
from pybpf.sys.layout import Container, Struct
from pybpf.sys.uapi import (
    BPF_OBJ_NAME_LEN,
    BPFCmd,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

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


# --- the call itself ------------------------------------------------------------------------------


def _bpf_syscall_number() -> int:
    machine = os.uname().machine.lower()
    try:
        return _SYS_BPF[machine]
    except KeyError:
        raise SyscallError(
            f"bpf() syscall number unknown for architecture {machine!r}", _errno.ENOSYS
        ) from None


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR_BPF = _bpf_syscall_number()


def bpf(cmd: BPFCmd, layout: Struct, what: str, **fields: object) -> tuple[int, Container]:
    """Run one bpf() command. Returns (return value, the attr as the kernel left it).

    Raises SyscallError(what, errno) when the kernel answers -1.
    """
    ret, err, out = bpf_raw(cmd, layout, **fields)
    if ret < 0:
        raise SyscallError(what, err)
    return ret, out


def bpf_raw(cmd: BPFCmd, layout: Struct, **fields: object) -> tuple[int, int, Container]:
    """Like :func:`bpf` but hands back (ret, errno, attr) instead of raising."""
    packed = layout.build(fields)
    attr = ctypes.create_string_buffer(packed, len(packed))
    ret, err = _issue(_NR_BPF, int(cmd), attr, len(packed))
    return ret, err, layout.parse(attr.raw)


def _issue(*args: object) -> tuple[int, int]:
    """The bpf() system call with ``args``, again while a signal interrupts it: (ret, errno)."""
    while True:
        ret = _libc.syscall(*args)
        err = ctypes.get_errno() if ret < 0 else 0
        if err != _errno.EINTR:
            return ret, err


class Prepared:
    """One bpf() command whose attr is built once and issued many times (a program run in a
    loop): each call is the system call alone, no attr packed or parsed. Returns the kernel's
    return value; raises SyscallError(what, errno) when it answers -1."""

    def __init__(self, cmd: BPFCmd, layout: Struct, what: str, **fields: object) -> None:
        packed = layout.build(fields)
        self.attr = ctypes.create_string_buffer(packed, len(packed))
        self._args = (_NR_BPF, int(cmd), self.attr, len(packed))
        self.what = what

    def __call__(self) -> int:
        ret, err = _issue(*self._args)
        if ret < 0:
            raise SyscallError(self.what, err)
        return ret


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


def addr_of(buf: Optional[ctypes.Array]) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def in_buf(data: bytes) -> ctypes.Array:
    return ctypes.create_string_buffer(bytes(data), max(len(data), 1))


def key_buf(key: bytes) -> Optional[ctypes.Array]:
    # Maps without keys (queue, stack, bloom filter) want a NULL key pointer: non-NULL is EINVAL.
    return in_buf(key) if key else None


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


def object_name(name: str) -> str:
    """A map/program name as the kernel accepts it: [A-Za-z0-9_.], at most 15 bytes."""
    return "".join(c if c in _NAME_CHARS else "_" for c in name)[: BPF_OBJ_NAME_LEN - 1]


def quoted(kind: str, name: str) -> str:
    return f"{kind} '{name}'" if name else kind


def type_name(enum: type[IntEnum], value: int) -> str:
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
