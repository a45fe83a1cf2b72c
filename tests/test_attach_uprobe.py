"""uprobes, uretprobes and USDT probes, for real: a program built here with gcc (and
<sys/sdt.h>) is driven line by line while the probes report what they saw through a ring
buffer; the notes are compared with readelf's reading, counts with bpftrace's."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from test_attach_tracing import (
    bpftool_links,
    bpftool_perf,
    killed_holder,
    loaded_for_this_process,
    start_bpftrace,
    stop_bpftrace,
)

import pybpf
from pybpf.attach import NeedsArguments, attach
from pybpf.errors import BPFError
from pybpf.link.uprobe import symbol_offset
from pybpf.link.usdt import read_notes
from pybpf.ringbuf import RingBuffer

from conftest import ROOT, bpf_object, cannot_run, need_tool, run

pytestmark = pytest.mark.system

K_ADD, K_ADD_RET, K_GREET, K_TICK, K_GETPID = 1, 2, 3, 4, 5
EVENT = struct.Struct("<IIqqqqQ16s")


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> str:
    """tests/targets/probed.c built with gcc -O2 (symbols kept, USDT notes and semaphores)."""
    gcc = need_tool("gcc")
    include = run(gcc, "-print-multiarch", check=False).stdout.strip()
    if not any(Path(d, "sys/sdt.h").exists() for d in ("/usr/include", f"/usr/include/{include}")):
        cannot_run("<sys/sdt.h> is missing (apt install systemtap-sdt-dev)")
    out = tmp_path_factory.mktemp("probed") / "probed"
    run(gcc, "-O2", "-g", "-o", str(out), str(ROOT / "tests/targets/probed.c"))
    return str(out)


@pytest.fixture
def uprobe_obj() -> Iterator:
    yield from loaded_for_this_process("attach_uprobe")


def drive(binary: str, *lines: str) -> list[str]:
    """Run the probed program on ``lines``; its answers ("sum len semaphore")."""
    out = subprocess.run([binary], input="".join(f"{x}\n" for x in lines), text=True,
                         capture_output=True, check=True, timeout=30).stdout  # fmt: skip
    return out.splitlines()


def events(ring: RingBuffer) -> list[tuple]:
    return [EVENT.unpack(r[: EVENT.size]) for r in ring.drain()]


def test_uprobe_and_uretprobe_see_arguments_return_value_and_cookie(uprobe_obj, probed) -> None:
    progs = uprobe_obj.programs
    with RingBuffer.from_map(uprobe_obj.maps["events"]) as ring:
        entry = attach(progs["up_add"], target=f"{probed}:pybpf_add", cookie=0xC0FFEE)
        ret = attach(progs["up_add_ret"], target=f"{probed}:pybpf_add")
        with entry, ret:
            ids = {entry.id, ret.id}
            shown = bpftool_links()
            assert shown[entry.id]["type"] == "perf_event"
            assert shown[ret.id]["prog_id"] == progs["up_add_ret"].id
            mine = [p for p in bpftool_perf() if p["pid"] == os.getpid()]
            assert sorted((p["fd_type"], p["filename"], p["offset"]) for p in mine) == [
                ("uprobe", probed, symbol_offset(probed, "pybpf_add")),
                ("uretprobe", probed, symbol_offset(probed, "pybpf_add")),
            ]
            answers = drive(probed, "5 x", "-3 y", "40 z")
            got = events(ring)
        pids = {e[1] for e in got}
        assert len(pids) == 1 and pids != {os.getpid()}
        assert [(e[0], e[2], e[3], e[6]) for e in got if e[0] == K_ADD] == [
            (K_ADD, 5, 1000, 0xC0FFEE),
            (K_ADD, -3, 1000, 0xC0FFEE),
            (K_ADD, 40, 1000, 0xC0FFEE),
        ]
        rets = [e[2] for e in got if e[0] == K_ADD_RET]
        assert rets == [int(a.split()[0]) for a in answers] == [1005, 997, 1040]
        drive(probed, "1 after")
        assert events(ring) == []
        assert not ids & set(bpftool_links())


def test_sleepable_uprobe_copies_user_memory(uprobe_obj, probed) -> None:
    with RingBuffer.from_map(uprobe_obj.maps["events"]) as ring:
        with attach(uprobe_obj.programs["up_greet"], target=f"{probed}:pybpf_greet"):
            drive(probed, "1 hello", "2 sleepable")
        words = [e[7].rstrip(b"\0") for e in events(ring)]
    assert words == [b"hello", b"sleepable"]


def test_uprobe_with_pid_sees_only_that_process(uprobe_obj, probed) -> None:
    watched = subprocess.Popen([probed], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen([probed], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with RingBuffer.from_map(uprobe_obj.maps["events"]) as ring:
            prog = uprobe_obj.programs["up_add"]
            with attach(prog, target=f"{probed}:pybpf_add", pid=watched.pid):
                for proc, n in ((watched, 1), (other, 2), (watched, 3)):
                    proc.stdin.write(f"{n} w\n")
                    proc.stdin.flush()
                    proc.stdout.readline()
            got = [(e[1], e[2]) for e in events(ring)]
    finally:
        for proc in (watched, other):
            proc.stdin.close()
            proc.wait()
    assert got == [(watched.pid, 1), (watched.pid, 3)]


def test_uprobe_on_a_shared_library_found_by_name(uprobe_obj) -> None:
    prog = uprobe_obj.programs["up_getpid"]
    assert prog.section == "uprobe/libc.so.6:getpid"
    with RingBuffer.from_map(uprobe_obj.maps["events"]) as ring, attach(prog) as link:
        assert "libc.so.6:getpid" in link.target
        events(ring)
        for _ in range(11):
            os.getpid()
        got = events(ring)
    assert [(e[0], e[1]) for e in got] == [(K_GETPID, os.getpid())] * 11


def test_uprobe_errors_are_one_line(uprobe_obj, probed) -> None:
    prog = uprobe_obj.programs["up_add"]
    with pytest.raises(BPFError, match=r"has no function 'no_such_function' \(in \.symtab"):
        attach(prog, target=f"{probed}:no_such_function")
    with pytest.raises(BPFError, match="/no/such/binary: no such file"):
        attach(prog, target="/no/such/binary:main")
    with pytest.raises(BPFError, match="'libnosuch.so.9': not found"):
        attach(prog, target="libnosuch.so.9:f")
    with pytest.raises(NeedsArguments, match="uprobe/<binary>:<function>"):
        attach(prog)


def test_usdt_notes_read_as_readelf_reads_them(probed) -> None:
    text = run(need_tool("readelf"), "-n", probed).stdout
    theirs = re.findall(
        r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: \S+, "
        r"Semaphore: (0x[0-9a-f]+)\s+Arguments: ?([^\n]*)",
        text,
    )
    ours = read_notes(probed)
    assert [(n.provider, n.name) for n in ours] == [(p, n) for p, n, *_ in theirs]
    assert [" ".join(a.text for a in n.args) for n in ours] == [t[4].strip() for t in theirs]
    # A PIE's text and .probes are mapped at their file offsets plus the segment's delta.
    sections = run("readelf", "-SW", probed).stdout
    probes = re.search(r"\.probes\s+PROGBITS\s+([0-9a-f]+) ([0-9a-f]+)", sections)
    delta = int(probes.group(1), 16) - int(probes.group(2), 16)
    assert [n.semaphore_offset for n in ours] == [int(t[3], 16) - delta for t in theirs]


def test_usdt_arguments_decoded_in_the_program(uprobe_obj, probed) -> None:
    prog = uprobe_obj.programs["usdt_tick"]
    with RingBuffer.from_map(uprobe_obj.maps["events"]) as ring:
        with attach(prog, target=f"{probed}:pybpf:tick") as links:
            assert len(links) == 1
            answers = drive(probed, "5 a", "7 b")
        after = drive(probed, "9 c")
        got = events(ring)
    # register-relative (-4@4(%rsp)), 8 bytes in memory, a 2-byte register (-2@%bx), a constant
    assert [e[2:6] for e in got] == [(5, 1 << 40 | 5, -5, 77), (7, 1 << 40 | 7, -7, 77)]
    # The semaphore counts attached probes: the program saw 1 while attached, 0 after.
    assert [a.split()[2] for a in answers] == ["1", "1"] and after[0].split()[2] == "0"


def test_usdt_probe_missing_is_one_line(uprobe_obj, probed) -> None:
    with pytest.raises(BPFError, match="has no USDT probe pybpf:nope"):
        attach(uprobe_obj.programs["usdt_tick"], target=f"{probed}:pybpf:nope")


def test_uprobe_counts_agree_with_bpftrace(uprobe_obj, probed) -> None:
    tracer = start_bpftrace(f"uprobe:{probed}:pybpf_add {{ @calls = count(); @sum = sum(arg0); }}")
    try:
        theirs_offset = [p for p in bpftool_perf() if p["pid"] == tracer.pid][0]["offset"]
        with RingBuffer.from_map(uprobe_obj.maps["events"]) as ring:
            with attach(uprobe_obj.programs["up_add"], target=f"{probed}:pybpf_add"):
                drive(probed, *(f"{n} w" for n in range(1, 21)))
            ours = [e[2] for e in events(ring)]
    finally:
        out = stop_bpftrace(tracer)
    theirs = dict(re.findall(r"@(\w+): (\d+)", out))
    assert theirs_offset == symbol_offset(probed, "pybpf_add")
    assert len(ours) == int(theirs["calls"]) == 20
    assert sum(ours) == int(theirs["sum"]) == 210


def test_probed_binary_is_found_through_path(uprobe_obj, probed, monkeypatch) -> None:
    monkeypatch.setenv("PATH", f"{os.path.dirname(probed)}:{os.environ['PATH']}")
    assert shutil.which("probed") == probed
    with attach(uprobe_obj.programs["up_add"], target="probed:pybpf_add") as link:
        assert link.target == f"uprobe {probed}:pybpf_add"


HOLDER = """
import sys, pybpf
from pybpf.attach import attach
obj = pybpf.load(pybpf.ObjectSpec.from_file(sys.argv[1]))
usdt = attach(obj.programs["usdt_tick"], target=sys.argv[2] + ":pybpf:tick")
up = attach(obj.programs["up_add"], target=sys.argv[2] + ":pybpf_add")
print(" ".join(str(link.id) for link in [*usdt, up]), flush=True)
sys.stdin.read()
"""


def test_probes_and_semaphores_are_released_when_the_holder_is_killed(probed) -> None:
    path = str(bpf_object("tests/attach_uprobe"))
    with killed_holder(HOLDER, path, probed) as (holder, ids):
        assert len(ids) == 2 and ids <= set(bpftool_links())
        assert drive(probed, "1 a")[0].split()[2] == "1"  # the semaphore, while attached
    assert not [p for p in bpftool_perf() if p["pid"] == holder.pid]
    assert drive(probed, "1 a")[0].split()[2] == "0"


PYTHON_WITH_USDT = "/usr/bin/python3.11"  # Debian builds its python3 with <sys/sdt.h> probes
CHILD = """
import sys
print("ready", flush=True)
for line in sys.stdin:
    before = set(sys.modules)
    exec(line)
    print(" ".join(sorted(set(sys.modules) - before)), flush=True)
"""


def test_usdt_probe_of_debians_python_sees_its_imports(uprobe_obj) -> None:
    """A binary built by someone else: Debian's non-PIE python3.11, whose probes fire only while
    their semaphore says someone listens. Each module an import loads is one event."""
    if not any(n.name == "import__find__load__start" for n in read_notes(PYTHON_WITH_USDT)):
        cannot_run(f"{PYTHON_WITH_USDT} has no python:import__find__load__start probe")
    child = subprocess.Popen([PYTHON_WITH_USDT, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout.readline() == "ready\n"  # its own start-up imports are over
        prog = uprobe_obj.programs["usdt_python_import"]
        target = f"{PYTHON_WITH_USDT}:python:import__find__load__start"
        with RingBuffer.from_map(uprobe_obj.maps["events"]) as ring:
            with attach(prog, target=target, pid=child.pid):
                child.stdin.write("import json, fractions\n")
                child.stdin.flush()
                loaded = child.stdout.readline().split()
            got = [(e[1], e[7].rstrip(b"\0").decode()) for e in events(ring)]
    finally:
        child.stdin.close()
        child.wait()
    assert {"json", "json.decoder", "fractions", "decimal"} <= set(loaded)
    assert {pid for pid, _ in got} == {child.pid}
    # module names are cut at 15 bytes by the program's record
    assert sorted(name for _, name in got) == sorted(name[:15] for name in loaded)


# --- uprobe.multi ----------------------------------------------------------------------------

CALL = struct.Struct("<QiiiI")  # struct call of attach_uprobe_multi.bpf.c


@pytest.fixture(scope="module")
def uprobed(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("uprobed") / "uprobed"
    run(need_tool("gcc"), "-O2", "-o", str(out), str(ROOT / "tests/targets/uprobed.c"))
    return str(out)


def test_uprobe_multi_puts_one_link_on_every_function_matching_a_glob(uprobed) -> None:
    from pybpf.link import support

    if not support.has_link_type("UPROBE_MULTI"):
        pytest.skip("this kernel has no uprobe_multi links (6.6+)")
    obj = pybpf.load(pybpf.ObjectSpec.from_file(str(bpf_object("tests/attach_uprobe_multi"))))
    with obj, RingBuffer.from_map(obj.maps["calls"]) as ring:
        entry = attach(obj.programs["uprobed_entry"], target=f"{uprobed}:uprobed_*", cookies=[1, 2])
        leave = attach(obj.programs["uprobed_exit"], target=f"{uprobed}:uprobed_*")
        with entry, leave:
            # the offsets of the single-function resolver (tested against bpftool's), in order
            assert entry.functions == {
                name: symbol_offset(uprobed, name) for name in ("uprobed_add", "uprobed_sub")
            }
            shown = bpftool_links()
            assert shown[entry.id]["type"] in ("uprobe_multi", 12)
            assert shown[leave.id]["prog_id"] == obj.programs["uprobed_exit"].id
            out = subprocess.run([uprobed, "3"], capture_output=True, text=True, check=True)
            calls = [CALL.unpack(r[: CALL.size]) for r in ring.drain()]
        want = []
        for i, line in enumerate(out.stdout.splitlines()):
            total, diff = (int(x) for x in line.split())
            want += [(1, i, i + 1, 0, 0), (0, 0, 0, total, 1)]
            want += [(2, i * i, i, 0, 0), (0, 0, 0, diff, 1)]
        assert calls == want
        subprocess.run([uprobed, "1"], capture_output=True, check=True)
        assert ring.drain() == [], "closed links see nothing"
        with pytest.raises(BPFError, match=r"has no function matching 'nomatch\*'"):
            attach(obj.programs["uprobed_exit"], target=f"{uprobed}:nomatch*")


# --- USDT arguments as SIB operands ----------------------------------------------------------

SIB_EVENT = struct.Struct("<qqqIIII")  # struct sib_event of attach_usdt_sib.bpf.c


@pytest.fixture(scope="module")
def sib(tmp_path_factory: pytest.TempPathFactory, probed: str) -> str:
    """tests/targets/sib.c: gcc -O2 passes array elements as base + index * scale operands."""
    out = tmp_path_factory.mktemp("sib") / "sib"
    run(need_tool("gcc"), "-O2", "-o", str(out), str(ROOT / "tests/targets/sib.c"))
    return str(out)


def test_usdt_sib_specs_are_laid_out_as_the_programs_btf_says() -> None:
    """libbpf 1.7's struct __bpf_usdt_arg_spec, as clang laid it out in the object's BTF: each
    member read back from the bytes pybpf writes at the BTF's bit offset and width."""
    from pybpf.btf.types import Struct
    from pybpf.link.usdt import ArgSpec, usdt_arg_spec_sib, usdt_spec_sib

    spec = pybpf.ObjectSpec.from_file(str(bpf_object("tests/attach_usdt_sib")))
    btf = spec.btf
    arg_struct = btf.type(btf.find("__bpf_usdt_arg_spec", Struct))
    assert arg_struct.size == usdt_arg_spec_sib.sizeof()
    assert btf.type(btf.find("__bpf_usdt_spec", Struct)).size == usdt_spec_sib.sizeof()
    arg = ArgSpec.parse("-2@-24(%rbp,%r11,8)")
    raw = int.from_bytes(usdt_arg_spec_sib.build(arg.encode_sib()), "little")
    want = {
        "val_off": -24 & (2**64 - 1),
        "arg_type": 3,
        "idx_reg_off": 48,  # offsetof(struct pt_regs, r11)
        "scale_bitshift": 3,
        "__reserved": 0,
        "reg_off": 32,  # offsetof(struct pt_regs, bp)
        "arg_signed": 1,
        "arg_bitshift": 48,
    }
    seen = {}
    for m in arg_struct.members:
        width = m.bitfield_size or btf.sizeof(m.type_id) * 8
        seen[m.name] = (raw >> m.bit_offset) & ((1 << width) - 1)
    assert seen == want


def test_usdt_sib_operands_are_read_by_a_program_built_for_them(sib: str) -> None:
    notes = [n for n in read_notes(sib) if n.name == "sib"]
    assert len(notes) == 1
    assert any(a.arg_type == 3 for a in notes[0].args), [a.text for a in notes[0].args]
    obj = pybpf.load(pybpf.ObjectSpec.from_file(str(bpf_object("tests/attach_usdt_sib"))))
    with obj, RingBuffer.from_map(obj.maps["sib_events"]) as ring:
        with attach(obj.programs["sib_probe"], target=f"{sib}:pybpf:sib"):
            out = subprocess.run([sib, "5"], capture_output=True, text=True, check=True).stdout
        (event,) = [SIB_EVENT.unpack(r[: SIB_EVENT.size]) for r in ring.drain()]
    assert list(event[:3]) == [int(x) for x in out.split()]
    assert list(event[3:6]) == [a.arg_type for a in notes[0].args] and event[6] == 3


def test_usdt_sib_operands_for_an_older_usdt_header_are_one_line(uprobe_obj, sib: str) -> None:
    with pytest.raises(BPFError) as e:
        attach(uprobe_obj.programs["usdt_tick"], target=f"{sib}:pybpf:sib")
    assert re.fullmatch(
        r"USDT pybpf:sib: argument '.*' is a SIB operand, which the program's usdt.bpf.h "
        r"\(208-byte specs\) cannot read: build it with libbpf 1\.7's \(304-byte specs\)",
        str(e.value),
    )
