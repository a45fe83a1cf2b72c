"""Run a piece of code inside a named network namespace (``ip netns add NAME``), then come back.

``setns(2)`` moves only the calling thread; xdptcp is single-threaded while it attaches and
detaches, so the whole process follows for that moment. A netlink socket opened inside stays
bound to that namespace. Used by ``xdptcp --demo`` to attach on both ends of a veth pair whose
ends live in two test namespaces, leaving the host's own namespace untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Iterator, Optional

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: Optional[str]) -> Iterator[None]:
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)
