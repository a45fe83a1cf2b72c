"""The filesystems a loader needs and a fresh host may not have mounted yet: bpffs (pins),
tracefs (tracepoint ids, trace_pipe, legacy probe events) and cgroup v2 (cgroup programs).

Each user finds its filesystem in the mount table and, when it is absent, mounts it where the
distributions do — what bpftool and libbpf-based tools do too — or fails in one line giving the
command that would mount it.
"""

from __future__ import annotations

import ctypes
import os

from pybpf.errors import SyscallError


def mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) in mount order, from /proc/self/mounts."""
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                # /proc/mounts escapes spaces and friends as octal (\040).
                out.append((fields[1].encode().decode("unicode_escape"), fields[2]))
    return out


def filesystem_of(path: str) -> str:
    """The type of the filesystem ``path`` lies on: the deepest mount containing it (a later
    mount over the same point wins, as it hides the earlier one)."""
    path = os.path.realpath(path)
    fstype, depth = "", -1
    for point, kind in mounts():
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= depth:
            fstype, depth = kind, len(point)
    return fstype


def mount(fstype: str, target: str, failed: str) -> None:
    """``mount -t FSTYPE FSTYPE TARGET``; on failure a SyscallError reading ``failed`` and the
    command a user would run."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(fstype.encode(), os.fsencode(target), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise SyscallError(f"{failed} (mount -t {fstype} {fstype} {target})", err)
