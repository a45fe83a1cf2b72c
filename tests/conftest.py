"""Shared fixtures.

System tests (marker ``system``) need root and the running kernel. Outside CI they skip with the
reason; under ``CI=true`` a system test that cannot run fails, so a green CI always means they ran.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "bpf"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The kernel matrix runs tests in emulated guests where Python is 10-20x slower (tests/vm).
TIME_SCALE = float(os.environ.get("PYBPF_TEST_TIME_SCALE") or 1)
# Inside a kernel-matrix guest (tests/vm/guest.sh): there, a test that moves a lot of data through
# Python may take a smaller workload; what it checks stays the same.
IN_GUEST = bool(os.environ.get("PYBPF_KMATRIX_GUEST"))


def _private_bpffs() -> None:
    """Give this test session a bpffs of its own at /sys/fs/bpf (``bench.common.private_bpffs``).

    Tests pin (maps pinned by name, iproute2's tc/ and xdp/ directories, explicit pins) and the
    fixture below removes whatever a test added; with several sessions on one host (a developer's
    runs beside the kernel matrix, say) a shared bpffs would let one session's clean-up remove
    another's pins. A bpffs mount is a separate instance, so each session's pins are its own, and
    the host's bpffs (or its absence, on a freshly booted machine) is left exactly as it was. The
    tests of a host without bpffs make their own namespaces with it unmounted. Every process a
    test starts (bpftool, xdptcp, ip) inherits the namespace. Where it cannot be had (in a
    container without CAP_SYS_ADMIN, say) the host's bpffs is used as before.
    PYBPF_TEST_SHARED_BPFFS=1 keeps the host's mount table."""
    if os.environ.get("PYBPF_TEST_SHARED_BPFFS") == "1":
        return
    from bench.common import private_bpffs

    private_bpffs()


def pytest_configure(config) -> None:
    _private_bpffs()


def pytest_collection_modifyitems(config, items) -> None:
    # The kernel matrix (~20 minutes of emulated guests) last: the host's own results come first.
    items.sort(key=lambda item: item.path.name == "test_kernel_matrix.py")


def scaled(seconds: float) -> float:
    """A test's timeout or settling delay, stretched by PYBPF_TEST_TIME_SCALE on slow machines."""
    return seconds * TIME_SCALE


@contextmanager
def on_one_cpu() -> Iterator[int]:
    """Run the block on one CPU, the lowest this process may use, and yield it. Perf rings and
    the capture program's wakeup state are per CPU: a test that counts what one CPU's ring holds
    fails now and then if the scheduler moves the process to another CPU in the middle."""
    allowed = os.sched_getaffinity(0)
    cpu = min(allowed)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, allowed)


def cannot_run(reason: str) -> None:
    """Skip outside CI, fail under CI."""
    if IN_CI:
        pytest.fail(f"system test cannot run under CI: {reason}")
    pytest.skip(reason)


def system_problem() -> str | None:
    """Why system tests cannot run here. The kernel's own BTF is not required: most of pybpf
    (and xdptcp) work without it; tests that need it are marked ``kernel_btf``."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def kernel_btf_problem() -> str | None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "kernel has no BTF (/sys/kernel/btf/vmlinux)"
    return None


@pytest.fixture(autouse=True)
def _system_gate(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("system") is not None:
        problem = system_problem()
        if problem:
            cannot_run(problem)
    if request.node.get_closest_marker("kernel_btf") is not None:
        problem = kernel_btf_problem()
        if problem:
            cannot_run(problem)


_cgroups = itertools.count()
BPFFS = Path("/sys/fs/bpf")
# What the kernel itself puts in a bpffs when it is mounted (the bpf_preload iterators): when a
# test is the first to mount bpffs on a fresh host they appear, and they are not ours to remove.
KERNEL_ENTRIES = frozenset({"maps.debug", "progs.debug"})


@pytest.fixture(autouse=True)
def _no_pins_left_behind():
    """Loading an object pins its LIBBPF_PIN_BY_NAME maps under /sys/fs/bpf (pybpf does, as
    libbpf and bpftool do), and iproute2 makes its tc/ and xdp/ directories there: whatever a
    test adds is removed after it, so tests neither leak pins nor see each other's. (The bpffs is
    the session's own, see ``_private_bpffs``: what is new there is this test's.)"""
    try:
        before = set(os.listdir(BPFFS))
    except OSError:
        yield
        return
    yield
    for entry in set(os.listdir(BPFFS)) - before - KERNEL_ENTRIES:
        path = BPFFS / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@pytest.fixture
def cgroup():
    """A fresh cgroup v2 directory for one test (the hierarchy mounted first where it is not),
    removed afterwards."""
    import time

    from pybpf.link.cgroup import cgroup2_root

    path = Path(cgroup2_root()) / f"pybpf-test-{os.getpid()}-{next(_cgroups)}"
    path.mkdir()
    try:
        yield path
    finally:
        for _ in range(50):  # its processes have exited; the kernel frees them a moment later
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.05)


@pytest.fixture
def utc(monkeypatch):
    """The process's local time is UTC for the test (tcpdump's -tttt prints local time)."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def bpf_object(name: str) -> Path:
    """Path of an object built by `make bpf` from bpf/<name>.bpf.c."""
    path = BUILD / f"{name}.bpf.o"
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing: `make bpf` did not build it")
        pytest.skip(f"{path} is missing: run `make bpf`")
    return path


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        cannot_run(f"{name} is not installed")
    return path


def run(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command, its output captured; with check, a failure names the command and shows
    what it printed (a bare CalledProcessError would hide the tool's own explanation)."""
    res = subprocess.run(args, check=False, capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        said = (res.stderr or res.stdout or "").strip().splitlines()[-5:]
        raise AssertionError(
            f"{shlex.join(map(str, args))} exited {res.returncode}"
            + "".join(f"\n  {x}" for x in said)
        )
    return res
