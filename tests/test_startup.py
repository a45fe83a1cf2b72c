"""Start-up: what a short process (``pybpf load``, ``xdptcp -i``) imports, and what it must not.

The time of these processes is mostly imports (bench/load_time.py measures it beside bpftool);
these tests keep the expensive ones that the work does not need off the path.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from conftest import ROOT, bpf_object, need_tool, run, scaled
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
    assert "elftools.elf.structs" in mods  # pyelftools' declarations read the headers
    # ... without ELFFile and the DWARF readers it imports
    assert not {"construct", "pdb", "bdb", "elftools.elf.elffile", "elftools.dwarf"} & mods


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


def test_sections_read_like_elffile_reads_them():
    """The section table read with pyelftools' declarations equals ELFFile's reading of it."""
    import io

    from elftools.elf.elffile import ELFFile

    from pybpf.object.elfheaders import SectionTable

    for path in sorted((ROOT / "build" / "bpf").glob("**/*.bpf.o")) + [XDPTCP_OBJ]:
        data = path.read_bytes()
        elf = ELFFile(io.BytesIO(data))
        want = []
        for n in range(elf.num_sections()):
            s = elf.get_section(n)
            want.append(
                (n, s.name, dict(s.header), b"" if s["sh_type"] == "SHT_NOBITS" else s.data())
            )
        got = [(n, name, dict(sh), d) for n, name, sh, d in SectionTable(data).sections()]
        assert got == want, path.name


def test_an_object_with_compressed_sections_reads_the_same(tmp_path):
    """``llvm-objcopy --compress-debug-sections`` (like ``clang -gz``): ELFFile inflates them."""
    from pybpf import ObjectSpec

    plain = bpf_object("tests/globals")
    packed = tmp_path / "globals.bpf.o"
    run(need_tool("llvm-objcopy"), "--compress-debug-sections=zlib", str(plain), str(packed))
    assert packed.read_bytes() != plain.read_bytes()
    a, b = ObjectSpec.from_file(str(plain)), ObjectSpec.from_file(str(packed))
    assert a.programs == b.programs
    assert a.maps == b.maps
    assert a.btf_ext is not None and b.btf_ext is not None


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
