"""What a capturing process does about signals and an output that goes away."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TextIO


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT, SIGTERM, SIGHUP end the capture cleanly: the loop sees the flag and unwinds."""

    def handler(signum, frame):  # noqa: ARG001
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


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
