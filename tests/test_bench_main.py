"""bench/__main__.py: the host as the run found it. bpftool and iproute2, two of the references
the benchmarks run, mount bpffs at /sys/fs/bpf to pin (iproute2 over a bind mount of the
directory onto itself) and leave directories in it: the run has a bpffs of its own, in a mount
namespace of its own (``bench.common.private_bpffs``, as the test session has), and without
one removes what the references left empty."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import _remove_new_empty_dirs
from bench.common import ROOT

from conftest import cannot_run

AS_A_RUN = """\
import os, subprocess, sys
from bench.common import private_bpffs
if not private_bpffs():
    sys.exit(3)
# as bpftool and iproute2 do: a bpffs mounted, a pin directory made
subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
os.makedirs("/sys/fs/bpf/tc/globals")
print(sorted(os.listdir("/sys/fs/bpf")))
"""


def bpffs_state() -> tuple[list[str], list[str]]:
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[2] for line in f if line.split()[4] == "/sys/fs/bpf"]
    return mounts, sorted(p.name for p in Path("/sys/fs/bpf").iterdir())


@pytest.mark.system
def test_what_a_run_mounts_and_pins_in_its_bpffs_goes_with_it() -> None:
    before = bpffs_state()
    res = subprocess.run([sys.executable, "-c", AS_A_RUN], cwd=ROOT, capture_output=True,
                         text=True)  # fmt: skip
    if res.returncode == 3:
        cannot_run("no mount namespace of its own to be had here")
    assert res.returncode == 0, res.stderr
    assert "tc" in res.stdout  # it was there, in the run's own bpffs
    assert bpffs_state() == before


def test_what_iproute2_and_libxdp_made_and_left_empty_is_removed(tmp_path: Path) -> None:
    (tmp_path / "theirs").mkdir()  # there before the run: stays, empty or not
    (tmp_path / "maps.debug").write_text("")
    before = {"theirs", "maps.debug"}
    (tmp_path / "tc" / "globals").mkdir(parents=True)  # iproute2's
    (tmp_path / "ip").symlink_to(tmp_path / "tc")
    (tmp_path / "xdp").symlink_to(tmp_path / "tc")
    (tmp_path / "pins" / "deep").mkdir(parents=True)  # a new directory holding a pin
    (tmp_path / "pins" / "deep" / "a_map").write_text("")
    _remove_new_empty_dirs(before, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.debug", "pins", "theirs"]
    assert (tmp_path / "pins" / "deep" / "a_map").exists()
