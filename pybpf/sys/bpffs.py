"""bpffs: the filesystem where BPF objects are pinned so they outlive the process.

A fresh host (or a container) may not have it mounted. Whatever pins mounts it when it can
(root, at the conventional /sys/fs/bpf) and otherwise says clearly that it is missing.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from pathlib import Path

from pybpf.errors import SyscallError

BPFFS_ROOT = "/sys/fs/bpf"


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) in mount order, from /proc/self/mounts."""
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                # /proc/mounts escapes spaces and friends as octal (\040).
                out.append((fields[1].encode().decode("unicode_escape"), fields[2]))
    return out


def is_bpffs(path: str) -> bool:
    """True when ``path`` lies on a bpffs mount: the deepest mount containing it is bpf.

    On several hosts /sys/fs/bpf is a sysfs directory with bpffs mounted on top; the later,
    deeper mount is the one that counts.
    """
    path = os.path.realpath(path)
    fstype, depth = "", -1
    for point, kind in _mounts():
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= depth:
            fstype, depth = kind, len(point)
    return fstype == "bpf"


def ensure_mounted(root: str = BPFFS_ROOT) -> str:
    """Mount bpffs at ``root`` unless it is already there; return ``root``."""
    if is_bpffs(root):
        return root
    if os.geteuid() != 0:
        raise SyscallError(
            f"bpffs is not mounted at {root}",
            _errno.EPERM,
            f"mount it as root: mount -t bpf bpf {root}",
        )
    os.makedirs(root, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", os.fsencode(root), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise SyscallError(f"cannot mount bpffs at {root} (mount -t bpf bpf {root})", err)
    return root


def ensure_dir(path: str) -> Path:
    """Create a pin directory (mode 0700: pinned objects grant access to whoever can open them).

    The directory must be on bpffs; when it would be under /sys/fs/bpf and bpffs is not mounted
    there yet, it is mounted first.
    """
    p = Path(path)
    if str(p).startswith(BPFFS_ROOT + "/") or str(p) == BPFFS_ROOT:
        ensure_mounted(BPFFS_ROOT)
    missing = []
    q = p
    while not q.exists():
        missing.append(q)
        q = q.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700)
    if not is_bpffs(str(p)):
        raise SyscallError(
            f"cannot pin under {p}",
            _errno.EINVAL,
            f"{p} is not on a bpffs mount (pin under {BPFFS_ROOT})",
        )
    return p


def ensure_parent(path: str) -> Path:
    """Make sure the directory a pin at ``path`` goes into exists and is on bpffs."""
    return ensure_dir(str(Path(path).parent))
