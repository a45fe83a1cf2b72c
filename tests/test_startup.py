"""Start-up: what a short process (``pybpf load``, ``xdptcp -i``) imports, and what it must not.

The time of these processes is mostly imports (bench/load_time.py measures it beside bpftool);
these tests keep the expensive ones that the work does not need off the path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, bpf_object, cannot_run, need_tool, run, scaled
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


def test_parsing_an_object_imports_neither_construct_nor_pyelftools_nor_dataclasses():
    mods = imported(
        ["-c", f"from pybpf import ObjectSpec; ObjectSpec.from_file({str(XDPTCP_OBJ)!r})"]
    )
    assert "pybpf.object.elfheaders" in mods  # struct reads a plain object's headers
    # ... so neither pyelftools' construct (which imports pprint, hence dataclasses and inspect)
    # nor ELFFile and its DWARF readers
    assert not {"construct", "pdb", "bdb", "elftools", "dataclasses", "inspect"} & mods


def test_a_damaged_header_is_left_to_pyelftools():
    """Anything unusual in the header goes to pyelftools' reading, and its words for errors."""
    from pybpf import BPFError, ObjectSpec
    from pybpf.object.elfheaders import ShortTable

    data = XDPTCP_OBJ.read_bytes()
    assert ShortTable.read(data) is not None
    for at, value in (
        (0x3C, (0).to_bytes(2, "little")),  # e_shnum 0: the count would be in section 0
        (0x3A, (32).to_bytes(2, "little")),  # e_shentsize too small
        (0x28, len(data).to_bytes(8, "little")),  # e_shoff: the table past the end
        (0x12, (62).to_bytes(2, "little")),  # e_machine EM_X86_64
    ):
        bad = data[:at] + value + data[at + len(value) :]
        assert ShortTable.read(bad) is None
        with pytest.raises(BPFError):
            ObjectSpec.from_bytes(bad, "damaged")


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

    from pybpf.object.elfheaders import SectionTable, ShortTable

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
        short = ShortTable.read(data)  # clang's objects: read with struct alone
        assert short is not None, path.name
        got = [(n, name, dict(sh), d) for n, name, sh, d in short.sections()]
        assert got == want, path.name
        assert short["e_machine"] == elf["e_machine"] and short.little_endian == elf.little_endian


def test_section_type_names_are_pyelftools_names():
    from elftools.elf.enums import ENUM_SH_TYPE_BASE

    from pybpf.object.elfheaders import SH_TYPE_NAMES

    assert {v: k for k, v in ENUM_SH_TYPE_BASE.items() if k != "_default_"} == SH_TYPE_NAMES


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
def test_pybpf_load_imports_neither_construct_nor_pdb_nor_dataclasses_nor_typing():
    mods = imported(["-m", "pybpf", "load", str(XDPTCP_OBJ)])
    assert "pybpf.loader" in mods
    assert not {"construct", "pdb", "bdb", "elftools", "dataclasses", "inspect"} & mods
    assert "typing" not in mods  # annotations are for type checkers (pybpf/__init__.py)


def pybpf_process(*args: str) -> subprocess.Popen:
    """``python -m pybpf ARGS`` with its output to pipes, block-buffered as a user's would be
    (without the PYTHONUNBUFFERED a test environment may set)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.Popen([sys.executable, "-m", "pybpf", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_a_pybpf_process_ends_with_all_its_output_and_its_status(capsys):
    """The process skips the interpreter's teardown (pybpf.cli._end_process): what it writes to a
    pipe is still all there (disasm is far more than a pipe's buffer), as the command wrote it in
    a process that does not end; an error still exits 1 with its one line."""
    from pybpf.cli import main

    assert main(["disasm", str(XDPTCP_OBJ)]) == 0
    expected = capsys.readouterr().out
    out, err = pybpf_process("disasm", str(XDPTCP_OBJ)).communicate(timeout=scaled(60))
    assert len(out) > 65536 and out.decode() == expected and err == b""
    p = pybpf_process("load", str(ROOT / "no-such-object.o"))
    out, err = p.communicate(timeout=scaled(60))
    assert p.returncode == 1 and out == b""
    assert err.decode().splitlines() == [
        f"pybpf: error: cannot read {ROOT / 'no-such-object.o'}: No such file or directory"
    ]


def test_a_pybpf_process_whose_reader_goes_away_exits_quietly():
    """``pybpf disasm OBJ | head -1``: the rest of the output has nowhere to go, which is no
    error (status 0, nothing on stderr), whether that is found by one of the command's writes
    (disasm's output is many buffers) or only by the flush at the process's end (inspect's
    fits in one buffer, and its reader is gone before it is written)."""
    for args, read_first in (
        (("disasm", str(XDPTCP_OBJ)), True),
        (("inspect", str(XDPTCP_OBJ)), False),
    ):
        p = pybpf_process(*args)
        if read_first:
            assert p.stdout.readline()
        p.stdout.close()
        assert p.wait(timeout=scaled(60)) == 0, args
        assert p.stderr.read() == b"", args


def test_a_pybpf_process_runs_the_atexit_handlers():
    """What pybpf registers with atexit (cgroup programs detached, struct_ops unregistered at
    exit) runs at the end of a pybpf process as at any other's."""
    code = (
        "import atexit, sys; atexit.register(lambda: print('atexit ran', flush=True)); "
        f"sys.argv = ['pybpf', 'inspect', {str(XDPTCP_OBJ)!r}]; "
        "from pybpf.cli import main; main()"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "atexit ran"


# Raises KeyboardInterrupt, as a SIGINT would, when the command line's modules are imported: a
# Ctrl-C at the start of a command lands in those imports (tens of milliseconds), and it cannot
# be timed to land there reliably with a real signal.
INTERRUPT_IMPORTS = """\
import sys


class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "argparse":
            raise KeyboardInterrupt


sys.meta_path.insert(0, Interrupt())
"""


@pytest.mark.parametrize("command, status", [("xdptcp", 0), ("pybpf", 130)])
def test_a_ctrl_c_while_a_command_starts_ends_it_without_a_traceback(tmp_path, command, status):
    """As the console script (from the venv it was installed into), as ``python -m``: the
    status of a Ctrl-C at any later moment (xdptcp's is tcpdump's 0), nothing on stderr."""
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT_IMPORTS)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    script = os.path.join(os.path.dirname(sys.executable), command)
    ways = [[sys.executable, "-m", command]]
    if os.path.exists(script):  # the venv's console script (not there for a bare interpreter)
        ways.append([script])
    for argv in ways:
        res = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, cwd=ROOT, env=env
        )
        assert (res.returncode, res.stderr, res.stdout) == (status, "", ""), argv
    # without the interruption, the same command runs: the test is not passed by a broken start
    res = subprocess.run([sys.executable, "-m", command, "--version"], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    assert res.returncode == 0 and res.stdout.startswith(command), res.stderr


@pytest.mark.system
def test_xdptcp_start_imports_neither_construct_nor_pdb_nor_zipfile_nor_typing_nor_socket():
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
    assert not {"elftools", "dataclasses", "inspect"} & mods  # pybpf.record, ShortTable
    assert "typing" not in mods  # annotations are for type checkers (pybpf/__init__.py)
    # _socket is enough for netlink, ioctls and addresses; socket's wrapper, its enum
    # conversions and selectors cost a start 2 ms
    assert not {"socket", "selectors"} & mods and "_socket" in mods


@pytest.mark.parametrize("columns", [None, "50", "132", "0", "wide"])
def test_help_is_argparses_at_every_width_without_shutil(monkeypatch, columns):
    """pybpf.argparser finds the width as shutil does; the help texts are argparse's own."""
    import argparse
    import shutil

    from pybpf.argparser import terminal_columns
    from pybpf.cli import build_parser as pybpf_parser
    from xdptcp.cli import build_parser as xdptcp_parser

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == shutil.get_terminal_size().columns
    for build in (pybpf_parser, xdptcp_parser):
        ours = build()
        stock = build()
        stock.formatter_class = argparse.HelpFormatter
        assert ours.format_help() == stock.format_help()
        assert ours.format_usage() == stock.format_usage()
    assert "shutil" not in imported(
        [
            "-c",
            "import sys; sys.argv = ['pybpf', 'inspect', 'x']; import pybpf.cli as c; "
            "c.build_parser().parse_args(sys.argv[1:])",
        ]
    )


@pytest.mark.parametrize("several", [False, True])
@pytest.mark.parametrize("directions", [False, True])
@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("ts_mode", ["default", "none", "epoch", "delta", "date", "since_first"])
@pytest.mark.parametrize(
    "how",
    ["text", "json", "write", "dump", "write and dump", "e", "write and e", "q", "json q", "v",
     "write and v", "#"],
)  # fmt: skip
def test_the_record_heads_configured_before_the_sink_is_opened_are_the_sinks(
    tmp_path, how, ts_mode, nano, directions, several
):
    """xdptcp -i configures the program's record heads (``xdptcp_out``) before it opens the
    sink, which it does while the program is verified: ``record_heads`` must say what the sink
    will want, in every output mode."""
    from xdptcp.hexdump import Dump
    from xdptcp.live import _heads_of, record_heads
    from xdptcp.options import OutputOptions
    from xdptcp.sinks import open_sink

    out = OutputOptions(
        write=str(tmp_path / "out.pcap") if how.startswith("write") else None,
        json=how.startswith("json"),
        ts_mode=ts_mode,
        nano=nano,
        dump=Dump("X") if how.endswith("dump") else None,  # (-X: ignored by -w, as by tcpdump)
        link_level=how.endswith("e"),  # (-e: the same)
        quiet=how.endswith("q"),
        verbose=int(how.endswith("v")),
        number=how == "#",
    )
    sink = open_sink(out, several=several, directions=directions)
    try:
        assert record_heads(out, several, directions) == _heads_of(sink, out, several)
    finally:
        sink.close()


@pytest.mark.system
def test_a_capture_opened_side_by_side_leaves_the_host_and_the_process_as_found_on_error():
    """``Capture.open`` verifies, asks and attaches in threads, with a shorter GIL switch
    interval meanwhile: what ``prepare`` raises (xdptcp -i's sink, opened while the XDP
    program is verified) leaves nothing attached, and the interval is CPython's again; a
    capture that opens attaches both hooks, and the interval is restored too."""
    from pybpf.link import netlink, tc
    from pybpf.sys import progcmd
    from xdptcp.attach import interface
    from xdptcp.capture import LIVE_RING_SIZE, Capture

    if not tc.tcx_supported():
        cannot_run("this kernel has no tcx links (Linux 6.6)")

    def hooks(ifindex: int) -> tuple[int, tuple]:
        """The kernel's answers: the XDP program id, the tcx egress programs' ids."""
        egress = tc.Direction.EGRESS.tcx_attach_type
        return netlink.xdp_query(ifindex).prog_id, progcmd.prog_query(ifindex, egress).prog_ids

    def refuse() -> None:
        raise OSError(13, "Permission denied", "out.pcap")

    switch = sys.getswitchinterval()
    pair = make_veth("sb")
    try:
        iface = interface(pair.outer)
        cap = Capture([iface], ring_size=LIVE_RING_SIZE, prepare=refuse)
        with pytest.raises(OSError, match="Permission denied"):
            cap.open()
        assert hooks(iface.ifindex) == (0, ())
        assert sys.getswitchinterval() == switch
        prepared = []
        with Capture([iface], ring_size=LIVE_RING_SIZE, prepare=lambda: prepared.append(1)) as cap:
            assert prepared == [1]
            assert sys.getswitchinterval() == switch
            programs = cap.obj.programs
            ids = programs["xdp_capture_all"].id, (programs["tc_capture"].id,)
            assert hooks(iface.ifindex) == ids
        assert hooks(iface.ifindex) == (0, ())
        Capture([iface], ring_size=LIVE_RING_SIZE).close()  # never opened: its ring is closed
        assert sys.getswitchinterval() == switch
    finally:
        pair.remove()
