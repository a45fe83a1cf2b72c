"""bpffs: the filesystem where BPF objects are pinned so they outlive the process.

A fresh host (or a container) may not have it mounted. Whatever pins mounts it when it can
(root, at the conventional /sys/fs/bpf) and otherwise says clearly that it is missing.
"""

from __future__ import annotations

import errno as _errno
import os
from pathlib import Path

from pybpf.errors import SyscallError
from pybpf.sys.mounts import filesystem_of, mount

BPFFS_ROOT = "/sys/fs/bpf"


def is_bpffs(path: str) -> bool:
    """True when ``path`` lies on a bpffs mount. On several hosts /sys/fs/bpf is a sysfs
    directory with bpffs mounted on top; the later, deeper mount is the one that counts."""
    return filesystem_of(path) == "bpf"


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
    mount("bpf", root, f"cannot mount bpffs at {root}")
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
