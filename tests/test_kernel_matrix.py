"""The kernel matrix (tests/vm/kmatrix.py) as part of the suite: Debian's 6.1 and 6.12 kernels are
booted with virtme-ng and every test marked ``kmatrix`` must pass inside both.

The guests are emulated and the matrix takes about 20 minutes (both kernels at once on a 2-core
machine), so it runs when ``PYBPF_KMATRIX=1`` (then under ``CI=true`` a missing
kernel, qemu or virtme-ng fails it); ``make kmatrix`` runs the matrix alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, cannot_run, need_tool

pytestmark = pytest.mark.system


def test_kmatrix_tests_pass_on_debians_6_1_and_6_12_kernels(capsys) -> None:
    if os.environ.get("PYBPF_KMATRIX_GUEST"):
        pytest.skip("already inside a kernel-matrix guest")
    if os.environ.get("PYBPF_KMATRIX") != "1":
        pytest.skip("the kernel matrix runs with PYBPF_KMATRIX=1 (or alone: make kmatrix)")
    need_tool("qemu-system-x86_64")
    need_tool("busybox")
    need_tool("depmod")
    vng = ROOT / ".venv" / "bin" / "vng"
    if not vng.exists() and shutil.which("vng") is None:
        cannot_run("virtme-ng (vng) is not installed: `make venv` installs it")
    res = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "vm" / "kmatrix.py")],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    with capsys.disabled():  # the tables are the matrix's report: shown when it passes too
        print("\n" + res.stdout, end="")
    assert res.returncode == 0, res.stdout + res.stderr
