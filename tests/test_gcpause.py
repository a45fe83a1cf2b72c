"""The cyclic garbage collector while a command starts (``pybpf.gcpause``): paused from the
process's entry, running again (with what the start made frozen) once a long command has started
(``pybpf run``, ``xdptcp -i``, ``xdptcp --demo``, ``xdptcp -r``), and untouched for a program
using the library."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, bpf_object, scaled
from tests.hosts import make_veth

# The command's own entry point (what the console scripts call), the collector's state said at
# the process's end: "enabled objects-frozen-since-the-start" (CPython 3.12 starts with some
# objects frozen already).
ENTRY = """
import atexit, gc, sys
start = gc.get_freeze_count()
atexit.register(
    lambda: print("gc", gc.isenabled(), gc.get_freeze_count() - start, file=sys.stderr)
)
sys.argv = {argv!r}
from {tool}.entry import main
sys.exit(main())
"""


def command(tool: str, *args: str) -> list[str]:
    return [sys.executable, "-c", ENTRY.format(argv=[tool, *args], tool=tool)]


def gc_state(stderr: str) -> tuple[bool, int]:
    line = next(ln for ln in stderr.splitlines() if ln.startswith("gc "))
    _, enabled, frozen = line.split()
    return enabled == "True", int(frozen)


def empty_pcap(path: Path) -> Path:
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    return path


def test_xdptcp_r_collects_again_once_it_reads(tmp_path: Path) -> None:
    r = subprocess.run(
        command("xdptcp", "-r", str(empty_pcap(tmp_path / "empty.pcap"))),
        capture_output=True, text=True, cwd=ROOT, timeout=scaled(60),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    enabled, frozen = gc_state(r.stderr)
    assert enabled and frozen > 1000  # the modules and tables the start made are frozen


def test_a_command_that_ends_once_started_never_resumes_it() -> None:
    obj = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"
    r = subprocess.run(
        command("pybpf", "inspect", str(obj)),
        capture_output=True, text=True, cwd=ROOT, timeout=scaled(60),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "xdp_capture" in r.stdout
    assert gc_state(r.stderr) == (False, 0)


def test_a_library_user_keeps_the_collector_as_it_set_it() -> None:
    code = """
import gc
start = gc.get_freeze_count()  # CPython 3.12 starts with some frozen
from pybpf import gcpause
gcpause.resume()  # no pause before: nothing to do
print(gc.isenabled(), gc.get_freeze_count() - start)
gc.disable()
gcpause.pause(); gcpause.resume()  # the program's own choice stays
print(gc.isenabled(), gc.get_freeze_count() - start)
gc.enable()
gcpause.pause(); print(gc.isenabled()); gcpause.resume()
print(gc.isenabled(), gc.get_freeze_count() - start > 0)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.split("\n")[:4] == ["True 0", "False 0", "False", "True True"], r.stderr


@pytest.mark.system
def test_pybpf_run_collects_again_once_attached() -> None:
    r = subprocess.run(
        command("pybpf", "run", str(bpf_object("tests/run_execsnoop")), "-d", "0.3"),
        capture_output=True, text=True, cwd=ROOT, timeout=scaled(60),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "attached" in r.stderr
    enabled, frozen = gc_state(r.stderr)
    assert enabled and frozen > 1000


@pytest.mark.system
def test_xdptcp_i_collects_again_once_capturing() -> None:
    pair = make_veth("gc")
    try:
        p = subprocess.Popen(
            command("xdptcp", "-i", pair.outer),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        try:
            assert p.stderr is not None
            for line in p.stderr:
                if "capturing on" in line:
                    break
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=scaled(30))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, err
        enabled, frozen = gc_state(err)
        assert enabled and frozen > 1000
    finally:
        pair.remove()


@pytest.mark.system
def test_xdptcp_demo_collects_again_once_capturing() -> None:
    r = subprocess.run(
        command("xdptcp", "--demo"), capture_output=True, text=True, cwd=ROOT, timeout=scaled(90)
    )
    assert r.returncode == 0, r.stderr
    assert "test hosts removed" in r.stderr
    enabled, frozen = gc_state(r.stderr)
    assert enabled and frozen > 1000
