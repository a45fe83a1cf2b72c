"""Socket filters: a ``socket`` program attached to one socket with ``SO_ATTACH_BPF``.

It sees every packet the socket would receive and returns how many bytes to keep (0 drops the
packet). The filter belongs to the socket: it is gone when the socket is closed, or after
``SO_DETACH_BPF``, which :meth:`SocketFilter.close` does. No fd, no pin: nothing can outlive
the socket.
"""

from __future__ import annotations

import errno as _errno
import socket
from typing import Optional

from pybpf.errors import SyscallError
from pybpf.link.bpflink import ProgramLike, _fd

SO_ATTACH_BPF = 50  # asm-generic/socket.h
SO_DETACH_BPF = 27  # == SO_DETACH_FILTER: one detach for classic and eBPF filters


class SocketFilter:
    """The attachment of a socket filter; ``close()`` (or the socket's close) detaches it."""

    def __init__(self, sock: socket.socket):
        self._sock: Optional[socket.socket] = sock

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
