"""Start-up: what a short process (``pybpf load``, ``xdptcp -i``) imports, and what it must not.

The time of these processes is mostly imports (bench/load_time.py measures it beside bpftool);
these tests keep the expensive ones that the work does not need off the path.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from conftest import ROOT, scaled
from hosts import make_veth

XDPTCP_OBJ = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"


def imported(argv: list[str]) -> set[str]:
    """The modules a Python process imports, from ``-X importtime``."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip()
        for line in res.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_parsing_an_object_imports_neither_construct_nor_pdb():
    mods = imported(
        ["-c", f"from pybpf import ObjectSpec; ObjectSpec.from_file({str(XDPTCP_OBJ)!r})"]
    )
    assert "elftools.elf.elffile" in mods  # pyelftools reads the file
    assert not {"construct", "pdb", "bdb"} & mods


def test_pdb_works_after_pyelftools_was_imported():
    code = (
        f"import sys; from pybpf import ObjectSpec; ObjectSpec.from_file({str(XDPTCP_OBJ)!r}); "
        "import pdb; from pdb import post_mortem; "
        "print(pdb.Pdb.__module__, post_mortem.__name__, type(sys.modules['pdb']).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.split()
    assert out == ["pdb", "post_mortem", "module"]


@pytest.mark.system
def test_pybpf_load_imports_neither_construct_nor_pdb():
    mods = imported(["-m", "pybpf", "load", str(XDPTCP_OBJ)])
    assert "pybpf.loader" in mods
    assert not {"construct", "pdb", "bdb"} & mods


@pytest.mark.system
def test_xdptcp_start_imports_neither_construct_nor_pdb_nor_zipfile():
    pair = make_veth("st")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "xdptcp", "-i", pair.outer],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            lines = []
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if "xdptcp: capturing on" in line:
                    break
            proc.send_signal(signal.SIGINT)
            lines += proc.communicate(timeout=scaled(20))[1].splitlines()
        finally:
            proc.kill()
            proc.wait()
    finally:
        pair.remove()
    assert any("capturing on" in line for line in lines), "".join(lines)[-2000:]
    mods = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
    assert {"xdptcp.capture", "pybpf.loader"} <= mods
    assert not {"construct", "pdb", "bdb", "zipfile", "tempfile"} & mods
