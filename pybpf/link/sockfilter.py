"""Socket filters: a ``socket`` program attached to one socket with ``SO_ATTACH_BPF``.

It sees every packet the socket would receive and returns how many bytes to keep (0 drops the
packet). The filter belongs to the socket: it is gone when the socket is closed, or after
``SO_DETACH_BPF``, which :meth:`SocketFilter.close` does. No fd, no pin: nothing can outlive
the socket.

A filter needs a socket to run for. Given an interface instead, :func:`packet_socket_filter`
opens the socket itself, as libbpf-bootstrap's ``sockfilter`` does: an ``AF_PACKET`` raw socket
bound to the interface (every frame it sends or receives), non-blocking, owned by the
attachment and closed with it. Whoever holds it reads it (:meth:`SocketFilter.drain`) so that
its queue never fills.
"""

from __future__ import annotations

import errno as _errno
import socket

from pybpf.errors import SyscallError
from pybpf.link.bpflink import _fd

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from pybpf.link.bpflink import ProgramLike

SO_ATTACH_BPF = 50  # asm-generic/socket.h
SO_DETACH_BPF = 27  # == SO_DETACH_FILTER: one detach for classic and eBPF filters
ETH_P_ALL = 0x0003  # linux/if_ether.h: every protocol


class SocketFilter:
    """The attachment of a socket filter; ``close()`` (or the socket's close) detaches it."""

    def __init__(self, sock: socket.socket, owns_socket: bool = False):
        self._sock: Optional[socket.socket] = sock
        self.owns_socket = owns_socket  # opened for the filter: closed with it

    @property
    def socket(self) -> Optional[socket.socket]:
        return self._sock

    def drain(self) -> int:
        """Read (and drop) what the socket has queued; the number of packets. The filter's
        verdict decides what is queued: a filter that keeps packets fills the queue otherwise."""
        n = 0
        while self._sock is not None:
            try:
                self._sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            n += 1
        return n

    @classmethod
    def attach(cls, program: ProgramLike, sock: socket.socket) -> SocketFilter:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, _fd(program))
        except OSError as e:
            raise SyscallError(
                f"cannot attach a socket filter to socket fd {sock.fileno()} (SO_ATTACH_BPF)",
                e.errno or _errno.EINVAL,
            ) from None
        return cls(sock)

    @property
    def closed(self) -> bool:
        return self._sock is None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None or sock.fileno() < 0:
            return  # a closed socket took its filter with it
        if self.owns_socket:
            sock.close()  # the filter goes with its socket
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)
        except OSError as e:
            if e.errno != _errno.ENOENT:  # nothing attached any more
                raise

    def __enter__(self) -> SocketFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach_socket_filter(program: ProgramLike, sock: socket.socket) -> SocketFilter:
    return SocketFilter.attach(program, sock)


def packet_socket(interface: str) -> socket.socket:
    """An ``AF_PACKET`` raw socket for every protocol, bound to ``interface``, non-blocking."""
    from pybpf.link.netlink import ifindex_of

    ifindex = ifindex_of(interface)  # one line for a name that does not exist
    sock = socket.socket(
        socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.htons(ETH_P_ALL)
    )
    try:
        sock.bind((socket.if_indextoname(ifindex), ETH_P_ALL))
    except OSError as e:
        sock.close()
        raise SyscallError(
            f"cannot bind a packet socket to {interface}", e.errno or _errno.EINVAL
        ) from None
    return sock


def packet_socket_filter(program: ProgramLike, interface: str) -> SocketFilter:
    """A socket filter on a packet socket of ``interface`` opened for it (see above)."""
    sock = packet_socket(interface)
    try:
        filt = SocketFilter.attach(program, sock)
    except BaseException:
        sock.close()
        raise
    filt.owns_socket = True
    return filt
