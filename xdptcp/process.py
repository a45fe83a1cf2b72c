"""What a capturing process does about signals and an output that goes away."""

from __future__ import annotations

import os
import signal
import sys
import threading


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
