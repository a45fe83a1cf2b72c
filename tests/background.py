"""Processes tests run in the background: tools started once they say on stderr that they are
ready, none left running after a test whether it passed or failed, and Python children that hold
kernel objects until a signal ends them."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from typing import Iterator

from conftest import scaled


def read_until_ready(
    proc: subprocess.Popen, ready: bytes, timeout: float, name: str, seen: bytes = b""
) -> bytes:
    """What ``proc`` wrote on stderr (after ``seen``) up to and including ``ready``. A tool
    that closes stderr or stays silent past ``timeout`` is killed, and the test fails with
    everything it said."""
    deadline = time.monotonic() + timeout
    while ready not in seen:
        left = deadline - time.monotonic()
        readable, _, _ = select.select([proc.stderr], [], [], max(0, left))
        chunk = os.read(proc.stderr.fileno(), 4096) if readable else b""
        if not chunk:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"{name} did not start: {(seen + err).decode()}")
        seen += chunk
    return seen


def stop_all(running: list[subprocess.Popen]) -> None:
    """Interrupt (SIGINT, as a user's Ctrl-C) every process still running, kill any that
    does not end."""
    while running:
        proc = running.pop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def signalled_child(code: str, sig: int) -> Iterator[str]:
    """``python -c code`` in the background: yields the first line it prints (printed once it
    holds what it made), then sends it ``sig`` and waits for it to end; killed if it does not."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline()
        proc.send_signal(sig)
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
