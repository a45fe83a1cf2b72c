"""The kernel matrix (tests/vm/kmatrix.py) as part of the suite: Debian's 6.1 and 6.12 kernels are
booted with virtme-ng and every test marked ``kmatrix`` must pass inside both.

The guests are emulated and the matrix takes about 20 minutes (both kernels at once on a 2-core
machine). It is part of ``make test`` and of CI: a missing qemu or virtme-ng skips it outside CI
(with what installs them) and fails it under ``CI=true``; the kernels are fetched with apt when
absent. ``PYBPF_KMATRIX=0 make test`` leaves it out; ``make kmatrix`` runs the matrix alone."""

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
    if os.environ.get("PYBPF_KMATRIX") == "0":
        pytest.skip("PYBPF_KMATRIX=0 leaves the kernel matrix out (make kmatrix runs it alone)")
    need_tool("qemu-system-x86_64")
    need_tool("busybox")
    need_tool("depmod")
    vng = ROOT / ".venv" / "bin" / "vng"
    if not vng.exists() and shutil.which("vng") is None:
        cannot_run("virtme-ng (vng) is not installed: `make venv` installs it")
    out: list[str] = []
    # The tables are the matrix's report: shown as each guest ends (after a quiet ~20 minutes),
    # when it passes too, and kept for the failure message.
    with capsys.disabled():
        print(
            "\nkernel matrix: Debian's 6.1 and 6.12 kernels under qemu, about 20 minutes",
            flush=True,
        )
        with subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "vm" / "kmatrix.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.append(line)
                print(line, end="", flush=True)
            rc = proc.wait(timeout=3600)
    assert rc == 0, "".join(out)
