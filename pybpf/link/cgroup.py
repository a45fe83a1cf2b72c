"""cgroup programs: attached to a cgroup v2 directory, they run for every socket, packet, device
access or sysctl of the processes inside it (and of its descendants).

Two kernel interfaces exist. ``BPF_LINK_CREATE`` with the cgroup's fd (5.7+) makes a bpf_link:
the program is detached when the link's last fd closes — also when the process dies, even by
``kill -9``. ``BPF_PROG_ATTACH`` (the older way, still what ``bpftool cgroup attach`` does)
attaches the program to the cgroup itself: it stays after the process exits, until
``BPF_PROG_DETACH`` or the cgroup is removed. pybpf uses the link and falls back to
``BPF_PROG_ATTACH`` with ``BPF_F_ALLOW_MULTI`` (so others' programs stay) only where the kernel
has no cgroup links; a :class:`CgroupAttachment` detaches on ``close()``, and at interpreter exit,
but not after ``kill -9`` — then ``bpftool cgroup detach CGROUP TYPE id ID`` (or removing the
cgroup) cleans up.

The cgroup is a path in the cgroup v2 hierarchy (``/sys/fs/cgroup/...`` on a unified host,
``/sys/fs/cgroup/unified/...`` on a hybrid one), or an open fd of such a directory.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import weakref
from typing import TYPE_CHECKING, Optional, Union

from pybpf.errors import BPFError, SyscallError
from pybpf.link.bpflink import Link, ProgAttachment, _fd
from pybpf.link.support import create_link, has_link_type
from pybpf.sys import progcmd
from pybpf.sys.mounts import mount, mounts
from pybpf.sys.uapi import AttachFlags, AttachType

if TYPE_CHECKING:
    from pybpf.link.bpflink import ProgramLike

CgroupLike = Union[str, os.PathLike, int]

# Where a cgroup v2 hierarchy is mounted when none is: the systemd convention on unified hosts.
CGROUP2_MOUNT = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270


def cgroup2_root() -> str:
    """The mount point of the cgroup v2 hierarchy, mounting it at /sys/fs/cgroup when absent
    (or at /sys/fs/cgroup/unified when /sys/fs/cgroup holds v1 hierarchies)."""
    for point, fstype in mounts():
        if fstype == "cgroup2":
            return point
    target = CGROUP2_MOUNT
    if os.path.ismount(target):
        target = os.path.join(CGROUP2_MOUNT, "unified")
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as e:
        raise SyscallError(f"no cgroup v2 hierarchy, and cannot create {target}", e.errno) from None
    mount(
        "cgroup2", target, f"no cgroup v2 hierarchy is mounted, and mounting one at {target} failed"
    )
    return target


def open_cgroup(cgroup: CgroupLike) -> int:
    """An O_RDONLY fd of a cgroup v2 directory; a relative path is taken under the hierarchy's
    root (``"pybpf/test"`` -> ``/sys/fs/cgroup/unified/pybpf/test`` on a hybrid host)."""
    path = os.fspath(cgroup)
    if not os.path.isabs(path):
        path = os.path.join(cgroup2_root(), path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise BPFError(f"cgroup {path}: {e.strerror}") from None
    if _fs_magic(fd) not in (None, CGROUP2_SUPER_MAGIC):
        os.close(fd)
        raise BPFError(f"cgroup {path}: not a cgroup v2 directory (cgroup2 is at {cgroup2_root()})")
    return fd


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]


def _fs_magic(fd: int) -> Optional[int]:
    libc = ctypes.CDLL(None, use_errno=True)
    buf = _Statfs()
    if libc.fstatfs(fd, ctypes.byref(buf)) != 0:
        return None
    return buf.f_type & 0xFFFFFFFF


def _with_cgroup_fd(cgroup: CgroupLike) -> tuple[int, bool]:
    """(fd, whether we opened it and must close it)."""
    if isinstance(cgroup, int):
        return cgroup, False
    return open_cgroup(cgroup), True


def cgroup_link(program: ProgramLike, cgroup: CgroupLike, attach_type: AttachType) -> Link:
    """Attach through a bpf_link (BPF_LINK_CREATE with the cgroup's fd): several links of the
    same type coexist on one cgroup, as with BPF_F_ALLOW_MULTI."""
    fd, mine = _with_cgroup_fd(cgroup)
    try:
        return create_link(program, fd, attach_type)
    finally:
        if mine:
            os.close(fd)


def attach_cgroup(
    program: ProgramLike, cgroup: CgroupLike, attach_type: AttachType
) -> Union[Link, CgroupAttachment]:
    """A link where the kernel has cgroup links (5.7+); else a BPF_PROG_ATTACH attachment."""
    if not has_link_type("CGROUP"):  # before 5.7
        return CgroupAttachment.attach(program, cgroup, attach_type)
    return cgroup_link(program, cgroup, attach_type)


class CgroupAttachment(ProgAttachment):
    """A program attached with BPF_PROG_ATTACH (BPF_F_ALLOW_MULTI). It belongs to the cgroup, not
    to this object: ``close()`` detaches it (BPF_PROG_DETACH), as does interpreter exit; after
    ``kill -9`` it stays until ``bpftool cgroup detach`` or the cgroup's removal."""

    target_kind = "cgroup"

    _live: weakref.WeakSet = weakref.WeakSet()

    def __init__(self, cgroup_fd: int, prog_fd: int, attach_type: AttachType):
        super().__init__(cgroup_fd, prog_fd, attach_type)
        CgroupAttachment._live.add(self)

    @classmethod
    def attach(
        cls,
        program: ProgramLike,
        cgroup: CgroupLike,
        attach_type: AttachType,
        flags: int = AttachFlags.ALLOW_MULTI,
    ) -> CgroupAttachment:
        fd, mine = _with_cgroup_fd(cgroup)
        try:
            progcmd.prog_attach(fd, _fd(program), attach_type, flags=flags)
            cfd = os.dup(fd) if not mine else fd
            mine = False
            return cls(cfd, os.dup(_fd(program)), attach_type)
        finally:
            if mine:
                os.close(fd)


@atexit.register
def _detach_at_exit() -> None:
    for att in list(CgroupAttachment._live):
        try:
            att.close()
        except Exception:
            pass


def query_cgroup(cgroup: CgroupLike, attach_type: AttachType) -> progcmd.ProgQueryResult:
    """The programs (and their links) attached to a cgroup for one attach type."""
    fd, mine = _with_cgroup_fd(cgroup)
    try:
        return progcmd.prog_query(fd, attach_type)
    finally:
        if mine:
            os.close(fd)
