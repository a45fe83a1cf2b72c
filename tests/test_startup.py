"""Start-up: what a short process (``pybpf load``, ``xdptcp -i``) imports, and what it must not.

The time of these processes is mostly imports (bench/load_time.py measures it beside bpftool);
these tests keep the expensive ones that the work does not need off the path.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

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
