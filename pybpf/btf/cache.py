"""A small on-disk cache for what is slow to compute and cheap to check: the kernel BTF index.

vmlinux BTF never changes while a kernel runs, yet every process that does CO-RE used to walk its
hundred thousand records again. The index of that walk (where each record starts, the types by
name, the strings in order) is kept here between processes, keyed by the running kernel's build ID
(``build_id_key``) or, for a blob without one, by a checksum of the BTF itself (``digest``), so a
new kernel (or a rebuilt one with the same version string) simply misses.

A cache that another user can write is a way to feed a privileged loader wrong type ids, so an
entry is used only when it is safe and sound; otherwise it is ignored (and rewritten when the
directory is ours):

- the directory is ``$PYBPF_CACHE_DIR``, else ``/var/cache/pybpf`` for root and
  ``$XDG_CACHE_HOME/pybpf`` (``~/.cache/pybpf``) for anyone else; it must be a real directory
  (not a symlink) owned by the caller and writable by nobody else (created 0700).
  ``PYBPF_CACHE_DIR=`` (empty) turns the cache off;
- an entry must be a regular file owned by the caller, writable by nobody else (written 0600);
- it starts with a magic, the format version and the key, and carries a CRC-32 of its payload:
  a stale, truncated, corrupt or older-format entry is a miss;
- writing goes to a temporary file in the same directory, renamed over the entry: a reader sees
  the old entry or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Optional

MAGIC = b"PYBPFCCH"
# magic, format version, key (32 bytes), payload CRC-32, payload length. The CRC catches damage;
# what keeps others' entries out is ownership and mode, checked before reading.
_HEAD = struct.Struct("<8sI32sIQ")


def cache_dir() -> Optional[Path]:
    """Where entries live, or None when the cache is turned off."""
    env = os.environ.get("PYBPF_CACHE_DIR")
    if env is not None:
        return Path(env) if env else None
    if os.geteuid() == 0:
        return Path("/var/cache/pybpf")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "pybpf"


def digest(data: bytes) -> bytes:
    """The key of ``data``: a SHA-256 of its length, its CRC-32 and its first and last 4 KiB.

    The CRC covers every byte (1 ms for vmlinux's 6 MB, where a SHA-256 of it all costs 3.5 ms
    with the CPU's SHA instructions and 15 without): two kernels whose BTF differs anywhere are
    told apart but for a 2**-32 chance. The key guards against stale entries, not against
    forged ones: only the caller can write its directory (see ``_ours``)."""
    view = memoryview(data)
    h = hashlib.sha256(struct.pack("<QI", len(view), zlib.crc32(view)))
    h.update(view[:4096])
    h.update(view[-4096:])
    return h.digest()


def build_id_key(build_id: bytes, data: bytes) -> bytes:
    """The key of the running kernel's BTF ``data``: a SHA-256 of the kernel's build ID, the
    blob's length and its first and last 4 KiB.

    The build ID is the hash the linker writes into the kernel image, computed over all of it,
    its .BTF section included: another kernel, or the same one rebuilt with other BTF, has
    another. So the blob's megabytes need not be read (``digest``) to tell them apart."""
    view = memoryview(data)
    h = hashlib.sha256(b"build-id" + struct.pack("<Q", len(view)) + build_id)
    h.update(view[:4096])
    h.update(view[-4096:])
    return h.digest()


def _ours(st: os.stat_result) -> bool:
    """Owned by us and writable by nobody else."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _safe_dir(create: bool) -> Optional[Path]:
    path = cache_dir()
    if path is None:
        return None
    if create:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return path if stat.S_ISDIR(st.st_mode) and _ours(st) else None


def load(name: str, version: int, key: bytes) -> Optional[memoryview]:
    """The payload stored under ``name`` for ``key``, or None (missing, stale, unsafe, corrupt)."""
    folder = _safe_dir(create=False)
    if folder is None:
        return None
    try:
        fd = os.open(folder / name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _ours(st):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            blob = f.read()
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(blob) < _HEAD.size:
        return None
    magic, ver, k, check, length = _HEAD.unpack_from(blob)
    payload = memoryview(blob)[_HEAD.size :]
    if magic != MAGIC or ver != version or k != key or length != len(payload):
        return None
    return payload if zlib.crc32(payload) == check else None


def store(name: str, version: int, key: bytes, payload: bytes) -> bool:
    """Write an entry atomically; False (and nothing written) when the directory is not safe
    or not writable — a cache that cannot be written costs the next process time, nothing else."""
    folder = _safe_dir(create=True)
    if folder is None:
        return False
    import tempfile  # only when writing: its imports cost a hit the time it saves

    head = _HEAD.pack(MAGIC, version, key, zlib.crc32(payload), len(payload))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)  # 0600, O_EXCL
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(payload)
        os.replace(tmp, folder / name)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
