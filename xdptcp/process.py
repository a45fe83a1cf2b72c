"""What a capturing process does about signals and an output that goes away."""

from __future__ import annotations

import errno
import os
import signal
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import TextIO


class StopFlag:
    """Set by the signal handlers, read by the capture loop between two waits.

    Not a ``threading.Event``: its ``set()`` takes a lock, and Python runs a signal handler in
    the main thread between any two of its bytecodes, so a second signal (Ctrl-C pressed twice)
    that arrives while the first handler is inside ``set()`` runs a handler that waits for the
    lock the first one holds: forever, with the program still attached. Setting an attribute
    takes no lock."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def install_signal_handlers() -> StopFlag:
    """SIGINT, SIGTERM, SIGHUP end the capture cleanly: they set the flag returned, which the
    loop reads, and it unwinds."""
    stop = StopFlag()

    def handler(signum, frame):  # noqa: ARG001
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    return stop


def stdout_gone() -> None:
    """After a broken pipe: send the rest of our output nowhere, so exiting flushes nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def write_all(out: TextIO, text: str) -> None:
    """``out.write(text)`` and flush, for live lines. To a file with a descriptor (stdout) the
    bytes go with ``os.write`` until all are written: CPython's buffered writer drops the rest of
    a write that a signal interrupts part way (a full pipe, then SIGINT to stop the capture),
    though the handler returns and the write reports every character written."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        out.write(text)
        out.flush()
        return
    out.flush()
    write_fd(fd, text.encode(getattr(out, "encoding", None) or "utf-8", "replace"))


def write_fd(fd: int, data) -> None:
    """All of ``data`` to ``fd``, following ``os.write``'s partial counts (see ``write_all``)."""
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])


IOV_MAX = 1024  # the most iovecs one writev(2) takes on Linux (UIO_MAXIOV)


def write_gathered(fd: int, blob, address: int, offsets: range, lengths: list) -> None:
    """Write the pieces ``blob[o : o + n]`` (for ``o, n`` in ``zip(offsets, lengths)``) back to
    back to ``fd`` with writev(2), ``blob`` lying at ``address``: the kernel copies each piece
    from where it lies, and the iovec array is built by C loops (``array``), not one Python
    statement per piece. Partial writes (a pipe interrupted by a signal) are finished with
    ``write_fd``, as ``write_all`` explains."""
    import ctypes
    from array import array

    n = len(lengths)
    if not n:
        return
    iov = array("Q", bytes(16 * n))
    start = address + offsets.start
    iov[0::2] = array("Q", range(start, start + n * offsets.step, offsets.step))
    iov[1::2] = array("Q", lengths)
    writev = _writev()
    iov_at = iov.buffer_info()[0]
    i = 0
    while i < n:
        k = min(n - i, IOV_MAX)
        done = writev(fd, iov_at + 16 * i, k)
        if done < 0:
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            raise OSError(err, os.strerror(err))
        want = sum(iov[2 * i + 1 : 2 * (i + k) : 2])
        if done < want:  # finish the piece it stopped in, then go on with writev
            for j in range(i, i + k):
                if done < lengths[j]:
                    o = offsets[j]
                    write_fd(fd, blob[o + done : o + lengths[j]])
                    k = j + 1 - i
                    break
                done -= lengths[j]
        i += k


_WRITEV = []


def _writev():
    if not _WRITEV:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        f = libc.writev
        f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        f.restype = ctypes.c_ssize_t
        _WRITEV.append(f)
    return _WRITEV[0]
