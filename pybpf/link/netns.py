"""Programs attached to a network namespace: ``sk_lookup`` (chooses the socket that receives a
new connection or datagram, 5.9+) and ``flow_dissector`` (replaces the kernel's packet parser
for that namespace, 5.7+ as a link).

Both attach with ``BPF_LINK_CREATE`` and a namespace fd (``/run/netns/NAME`` as ``ip netns``
makes them, or ``/proc/PID/ns/net``): the program is detached when the link's last fd closes.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import TYPE_CHECKING, Callable, TypeVar, Union

from pybpf.errors import BPFError, SyscallError
from pybpf.link.bpflink import Link
from pybpf.link.support import create_link

if TYPE_CHECKING:
    from pybpf.link.bpflink import ProgramLike

NetnsLike = Union[str, os.PathLike, int]

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"  # where `ip netns add NAME` bind-mounts a namespace

T = TypeVar("T")


def netns_path(netns: Union[str, os.PathLike]) -> str:
    """A namespace name (``ip netns``) or a path to a namespace file."""
    path = os.fspath(netns)
    return path if "/" in path else os.path.join(NETNS_RUN_DIR, path)


def open_netns(netns: NetnsLike) -> tuple[int, bool]:
    """(fd, whether we opened it and must close it)."""
    if isinstance(netns, int):
        return netns, False
    path = netns_path(netns)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise BPFError(f"network namespace {path}: {e.strerror}") from None
    if _ns_type(fd) != CLONE_NEWNET:  # the kernel's own answer would be a bare EINVAL
        os.close(fd)
        raise BPFError(
            f"{path} is not a network namespace (give a name of `ip netns` or /proc/PID/ns/net)"
        )
    return fd, True


NS_GET_NSTYPE = 0xB703  # ioctl on a namespace file: its CLONE_NEW* type (Linux 4.11)


def _ns_type(fd: int) -> int:
    import fcntl

    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:  # not a namespace file (ENOTTY)
        return 0


def netns_link(program: ProgramLike, netns: NetnsLike, attach_type) -> Link:
    """Attach a SK_LOOKUP or FLOW_DISSECTOR program to a network namespace."""
    fd, mine = open_netns(netns)
    try:
        return create_link(program, fd, attach_type)
    finally:
        if mine:
            os.close(fd)


def in_netns(netns: NetnsLike, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that has entered ``netns``; this thread's namespace is untouched.

    setns(2) changes only the calling thread, and what is made there (sockets, netfilter links)
    stays in that namespace after the thread ends.
    """
    fd, mine = open_netns(netns)
    result: list = []
    failure: list = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise SyscallError("cannot enter the network namespace (setns)", ctypes.get_errno())
            result.append(fn())
        except BaseException as e:  # handed to the caller's thread
            failure.append(e)

    try:
        t = threading.Thread(target=run, name="pybpf-netns")
        t.start()
        t.join()
    finally:
        if mine:
            os.close(fd)
    if failure:
        raise failure[0]
    return result[0]
