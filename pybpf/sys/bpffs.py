"""bpffs: the filesystem where BPF objects are pinned so they outlive the process.

A fresh host (or a container) may not have it mounted. Whatever pins mounts it when it can
(root, at the conventional /sys/fs/bpf) and otherwise says clearly that it is missing.
"""

from __future__ import annotations

import errno as _errno
import os
from pathlib import Path

from pybpf.errors import SyscallError
from pybpf.sys import objcmd
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
    make_dirs(path)
    return Path(path)


def make_dirs(path: str) -> list[str]:
    """``ensure_dir``, returning the directories it created (outermost first), so that a
    caller whose pinning fails can remove them again. Nothing is created unless the directory
    will be on bpffs."""
    _, missing = check_dir(path)
    created = []
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by someone else: theirs, and fine
            continue
        created.append(str(d))
    return created


def check_dir(path: str) -> tuple[Path, list[Path]]:
    """Would a pin directory at ``path`` be on bpffs? Answered before anything is created, from
    the deepest part of the path that exists (bpffs is mounted first where it belongs at
    /sys/fs/bpf). Returns that part and the missing directories below it, deepest first."""
    p = Path(path)
    if str(p).startswith(BPFFS_ROOT + "/") or str(p) == BPFFS_ROOT:
        ensure_mounted(BPFFS_ROOT)
    missing = []
    existing = p
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise SyscallError(
            f"cannot pin under {p}", _errno.ENOTDIR, f"{existing} is not a directory"
        )
    fstype = filesystem_of(str(existing))
    if fstype != "bpf":
        on = f"{existing} is on {fstype}" if fstype else f"{existing} is on no known filesystem"
        raise SyscallError(
            f"cannot pin under {p}",
            _errno.EINVAL,
            f"not on a bpffs mount ({on}); pin under {BPFFS_ROOT} "
            "(or mount a bpffs: mount -t bpf bpf DIR)",
        )
    return existing, missing


def pin_all(directory: str, objects: list[tuple[str, int, str]]) -> tuple[list[str], list[str]]:
    """Pin each of ``objects`` (what, fd, name) at ``directory/name``, the directory made first;
    returns the paths pinned and the directories made. All or none: when one cannot be pinned
    (a pin of that name exists already), what this call pinned and made is removed again, and
    what was there before is left as it was."""
    dirs = make_dirs(directory)
    pinned: list[str] = []
    try:
        for what, fd, name in objects:
            path = os.path.join(directory, name)
            objcmd.obj_pin(fd, path, what)
            pinned.append(path)
    except BaseException:
        remove_pins(pinned, dirs)
        raise
    return pinned, dirs


def remove_pins(paths: list[str], dirs: list[str]) -> None:
    """Take back what one load pinned: the pins at ``paths``, then the directories ``dirs`` it
    created, once empty (latest first). A pin already gone is no error; a directory that holds
    something else stays."""
    for path in reversed(paths):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    for d in reversed(dirs):
        try:
            os.rmdir(d)
        except OSError:
            pass


def ensure_parent(path: str) -> Path:
    """Make sure the directory a pin at ``path`` goes into exists and is on bpffs."""
    return ensure_dir(str(Path(path).parent))
