"""What bench/realworld_run.py's cases share: the result of a case, processes run in the
background with their output collected, ``pybpf run --json`` and its output, trace_pipe."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VMLINUX = ROOT / "build" / "vmlinux.h"
MULTIARCH = f"/usr/include/{os.uname().machine}-linux-gnu"
ME = os.getpid()
# Slow machines (the kernel matrix's emulated guests) stretch every wait, as the tests do.
SCALE = float(os.environ.get("PYBPF_TEST_TIME_SCALE", "1"))
MY_COMM = Path(f"/proc/{ME}/comm").read_text().strip()


@dataclass
class Result:
    name: str
    source: str
    status: str = "?"  # "same events", "runs", "fails alike", "pybpf only fails", ...
    detail: str = ""
    pybpf_lines: list[str] = field(default_factory=list)


# --- running --------------------------------------------------------------------------------------


class Background:
    """A process whose stdout and stderr are collected by threads as it runs (a tool blocked on
    a full pipe would stop reading its trace_pipe or buffers, and lose events)."""

    def __init__(self, argv: list[str], **kw) -> None:
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _collect(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_for(self, pattern: str, timeout: float = 20) -> bool:
        """Wait until stderr shows ``pattern`` (pybpf run's "attached" line)."""
        end = time.monotonic() + timeout * SCALE
        while time.monotonic() < end and self.proc.poll() is None:
            if any(re.search(pattern, line) for line in list(self.err)):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20 * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=10)
        return self.proc.returncode, "".join(self.out), "".join(self.err)


def pybpf_run(obj: Path, *args: str) -> Background:
    return Background([sys.executable, "-m", "pybpf", "run", str(obj), "--json", *args], cwd=ROOT)


def parse_json(out: str) -> tuple[list[dict], list[str], dict]:
    events, printk, maps = [], [], {}
    for line in out.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if "entries" in d:
            maps[d["map"]] = d
        elif "printk" in d:
            printk.append(d["printk"])
        elif "event" in d:
            events.append(d["event"])
    return events, printk, maps


def first_error(text: str) -> str:
    for line in text.splitlines():
        if "error" in line.lower() or "failed" in line.lower():
            return line.strip()
    return text.strip().splitlines()[-1] if text.strip() else ""


def trace_pipe_lines(seconds: float) -> list[str]:
    """What trace_pipe shows for a while (for C tools that only bpf_printk)."""
    fd = os.open("/sys/kernel/tracing/trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
    data = b""
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            try:
                data += os.read(fd, 65536)
            except BlockingIOError:
                time.sleep(0.05)
    finally:
        os.close(fd)
    return data.decode(errors="replace").splitlines()
