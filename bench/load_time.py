"""Load time: how long pybpf takes to turn an object file into loaded programs, beside bpftool.

Rows per object (xdptcp's shipped object; the test object with the most CO-RE relocations):

- pybpf in-process, first load: a new Python process imports every pybpf module (not timed),
  then times ``ObjectSpec.from_file`` through ``pybpf.load(spec)`` returning: the first load of a
  process, which includes first-use costs (feature probes, reading the kernel's BTF when the
  object needs CO-RE). The targets are judged on this row;
- pybpf in-process, first load, lazy imports: the same without importing first, so the modules
  pybpf imports lazily on the way are timed too (what a script that just calls ``load`` sees);
- pybpf in-process, first load, no BTF cache: the first load with the kernel BTF index cache
  turned off (``PYBPF_CACHE_DIR=``), so the kernel's BTF is indexed from scratch, as on the first
  CO-RE load after a kernel change (only objects with CO-RE relocations);
- pybpf in-process, warm: the same, a second time in the same process;
- ``python -m pybpf load OBJ``: the whole process, interpreter start and imports included;
- ``bpftool prog loadall OBJ DIR``: the whole process (libbpf), pins removed afterwards.

And ``xdptcp -i IFACE``: wall time from spawning the process (``console_script``) to its
"capturing on" line (the median of ``SPAWN_REPEAT`` times the repeats: see there); the same
for the zipapp (``.ci/dist/pyz.py``), with its modules compiled and with sources only, and run
by another CPython present: built as ``make pyz`` builds it, and built ``--python`` for it.

    python -m bench loadtime [--repeat 5]
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from bench.common import (
    PYTHON,
    ROOT,
    Target,
    Tool,
    compile_sources,
    cpython,
    load_average,
    make_hosts,
    median,
    object_id,
    ratio,
    say,
    table,
    targets_table,
)
from bench.w1_flood import XDPTCP_READY

XDPTCP_OBJ = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"
PYTHON_VERSION = "{}.{}".format(*sys.version_info[:2])
TEST_OBJS = ROOT / "build" / "bpf" / "tests"
BPFFS = Path("/sys/fs/bpf")

# Run in a child so that "cold" really is the first load of a process. With "preload", every
# pybpf module is imported before the clock starts (pybpf imports some lazily, e.g. the system-call
# layer on the first load): that import time is interpreter start-up, which the whole-process row
# shows.
_CHILD = """
import importlib, json, pkgutil, sys, time
import pybpf
from pybpf.object.spec import ObjectSpec
if sys.argv[3] == "preload":
    for mod in pkgutil.walk_packages(pybpf.__path__, "pybpf."):
        if mod.name not in ("pybpf.__main__", "pybpf.cli"):
            importlib.import_module(mod.name)
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    spec = ObjectSpec.from_file(sys.argv[1])
    obj = pybpf.load(spec)
    times.append(time.perf_counter() - t0)
    obj.close()
print(json.dumps(times))
"""


def core_relocations(path: Path) -> int:
    """CO-RE relocation records in an object's .BTF.ext (0 when it has none).

    .BTF.ext starts with magic 0xeB9F, version, flags, hdr_len, then offset/length pairs for
    func_info, line_info and (when hdr_len >= 32) core_relo; offsets count from the header's end.
    core_relo is a u32 record size, then per section {u32 sec_name_off, u32 num_info, records}.
    """
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".BTF.ext")
        if sec is None:
            return 0
        data = sec.data()
    order = "<" if data[:2] == b"\x9f\xeb" else ">"
    hdr_len = struct.unpack_from(order + "I", data, 4)[0]
    if hdr_len < 32:
        return 0
    off, length = struct.unpack_from(order + "II", data, 24)
    if length == 0:
        return 0
    pos, end = hdr_len + off, hdr_len + off + length
    rec_size = struct.unpack_from(order + "I", data, pos)[0]
    pos += 4
    count = 0
    while pos < end:
        num = struct.unpack_from(order + "I", data, pos + 4)[0]
        count += num
        pos += 8 + num * rec_size
    return count


def pick_core_object() -> tuple[Optional[Path], str]:
    """The test object with the most CO-RE relocations, or None and the reason."""
    candidates = sorted(TEST_OBJS.glob("core_*.bpf.o")) if TEST_OBJS.exists() else []
    if not candidates:
        candidates = sorted(TEST_OBJS.glob("*.bpf.o")) if TEST_OBJS.exists() else []
    counted = [(core_relocations(p), p) for p in candidates]
    counted = [c for c in counted if c[0] > 0]
    if not counted:
        return None, f"no object under {TEST_OBJS} has CO-RE relocations (run `make bpf`)"
    n, path = max(counted)
    return path, f"{n} CO-RE relocations"


def in_process(path: Path, loads: int, preload: bool, btf_cache: bool = True) -> list[float]:
    """Seconds per load in one fresh process: [cold, warm, warm, ...]."""
    how = "preload" if preload else "lazy"
    env = None if btf_cache else dict(os.environ, PYBPF_CACHE_DIR="")
    out = subprocess.run(
        [PYTHON, "-c", _CHILD, str(path), str(loads), how],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"pybpf could not load {path.name}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout)


def whole_process(argv: list[str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}: {out.stderr.strip()[-300:]}")
    return elapsed


def bpftool_loadall(path: Path) -> float:
    pin = BPFFS / f"bench-load-{os.getpid()}"
    try:
        return whole_process(["bpftool", "prog", "loadall", str(path), str(pin)])
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def object_rows(
    label: str, path: Path, repeat: int, core: bool = False
) -> tuple[list[list[object]], dict]:
    keys = ("first", "cold", "nocache", "warm", "cli", "bpftool")
    got: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(repeat):
        say(f"loadtime repeat {i + 1}/{repeat}: {label}")
        got["first"].append(in_process(path, 1, preload=False)[0])
        if core:
            got["nocache"].append(in_process(path, 1, preload=True, btf_cache=False)[0])
        times = in_process(path, 3, preload=True)
        got["cold"].append(times[0])
        got["warm"].extend(times[1:])
        got["cli"].append(whole_process([PYTHON, "-m", "pybpf", "load", str(path)]))
        got["bpftool"].append(bpftool_loadall(path))
    m = {k: median(v) for k, v in got.items()}
    hows = [
        ("first", "pybpf in-process, first load, lazy imports"),
        ("cold", "pybpf in-process, first load"),
        ("nocache", "pybpf in-process, first load, no BTF cache"),
        ("warm", "pybpf in-process, warm"),
        ("cli", "python -m pybpf load (process)"),
        ("bpftool", "bpftool prog loadall (process)"),
    ]
    rows = [[label, how, _ms(m[k]), _x(ratio(m[k], m["bpftool"]))] for k, how in hows if got[k]]
    return rows, m


# The spawn of xdptcp -i is timed this many times the repeats of the other rows. Its time is
# spread wide here: 86 to 177 ms in 120 spawns of one build in a row (2026-12-07; the attaches
# wait for RCU grace periods). The medians of their blocks of 5 ranged from 96 to 136 ms
# (standard deviation 11), those of their blocks of 20 from 106 to 128 (8): the machine's drift
# is left, but less of the luck of five draws.
SPAWN_REPEAT = 4


def console_script(python: str = PYTHON) -> tuple[str, ...]:
    """The command a user types, ``xdptcp``: the console script pip installed beside
    ``python`` (when its first line names that interpreter), else ``python -m xdptcp``, which
    also imports runpy and importlib.util on the way (some 3-5 ms more here)."""
    script = Path(python).parent / "xdptcp"
    try:
        with open(script, "rb") as f:
            first = f.readline().strip()
    except OSError:
        return (python, "-m", "xdptcp")
    if first == b"#!" + os.fsencode(python):
        return (str(script),)
    return (python, "-m", "xdptcp")


def xdptcp_start(repeat: int, command: Sequence[str] = (PYTHON, "-m", "xdptcp")) -> list[float]:
    """Seconds from spawning ``xdptcp -i IFACE`` (``command``) to its "capturing on" line."""
    hosts = make_hosts("l")
    times = []
    try:
        for i in range(repeat):
            say(f"loadtime repeat {i + 1}/{repeat}: {Path(command[-1]).name} start to attached")
            t0 = time.perf_counter()
            tool = Tool([*command, "-i", hosts.outer])
            try:
                tool.wait_ready(XDPTCP_READY)
                times.append(time.perf_counter() - t0)
            finally:
                tool.kill()
    finally:
        hosts.remove()
    return times


def other_python() -> Optional[tuple[str, str]]:
    """The newest CPython 3.9-3.13 present other than this one (pyenv's, else on PATH), and
    its version: the interpreter of the zipapp rows for a host whose CPython did not build it."""
    for minor in (13, 12, 11, 10, 9):
        python = cpython(minor) if (3, minor) != sys.version_info[:2] else None
        if python:
            return python, f"3.{minor}"
    return None


def pyz_rows(repeat: int, notes: list[str]) -> list[list]:
    """``xdptcp.pyz -i IFACE`` run with ``-I -S`` (nothing from site-packages), spawn to
    capturing: by this interpreter, the zipapp as ``make pyz`` builds it (each module compiled
    for the building interpreter) and built ``--no-bytecode`` (sources only, compiled at each
    start); by another CPython (``other_python``), the ``make pyz`` build (its modules compiled
    for another version: it compiles the sources) and one built ``--python`` for it too. The
    builds go to build/bench/; the libraries' wheels come from PyPI once."""
    other = other_python()
    if other is None:
        notes.append("no CPython 3.9-3.13 but this one: the zipapp rows under another left out")
    runs = [("compiled modules", (), PYTHON, "pyz"), ("--no-bytecode", ("--no-bytecode",),
            PYTHON, "pyz-sources")]  # fmt: skip
    if other is not None:
        python, version = other
        runs += [
            (f"under {version}, compiled for {PYTHON_VERSION} only", (), python, "pyz"),
            (f"under {version}, --python for it", (f"--python={python}",), python, "pyz-other"),
        ]
    rows = []
    for how, extra, python, out_name in runs:
        out = ROOT / "build" / "bench" / out_name
        built = subprocess.run(
            [PYTHON, str(ROOT / ".ci" / "dist" / "pyz.py"), "--out", str(out), *extra, "xdptcp"],
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            notes.append(f"xdptcp.pyz ({how}) not built: {built.stderr.strip()[-200:]}")
            continue
        try:
            start = xdptcp_start(repeat, (python, "-I", "-S", str(out / "xdptcp.pyz")))
        except RuntimeError as e:
            notes.append(f"xdptcp.pyz ({how}) start failed: {e}")
            continue
        rows.append([f"xdptcp.pyz -i IFACE, {how}", "spawn to 'capturing on'",
                     _ms(median(start)), "-"])  # fmt: skip
    return rows


def interpreter_rows(repeat: int) -> list[list]:
    """The interpreter's own start, the floor under every Python row: ``python -c pass``, and
    with ``-S`` (no ``site``: no site-packages, no .pth hooks), which no installed command gets."""
    rows = []
    for how, argv in (
        ("-c pass", [PYTHON, "-c", "pass"]),
        ("-S -c pass", [PYTHON, "-S", "-c", "pass"]),
    ):
        times = [whole_process(argv) for _ in range(repeat)]
        rows.append(
            ["(no object)", f"python {how}: the interpreter's start", _ms(median(times)), "-"]
        )
    return rows


def site_hooks() -> list[str]:
    """The .pth files in site-packages with an ``import`` line: code ``site`` runs at each start
    of this interpreter (a package's, or the host's), counted in every whole-process row."""
    import site

    found = []
    for d in site.getsitepackages():
        for pth in sorted(Path(d).glob("*.pth")):
            try:
                lines = pth.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if any(line.startswith(("import ", "import\t")) for line in lines):
                found.append(pth.name)
    return found


def run(repeat: int = 5) -> str:
    compile_sources()
    load = load_average()
    rows, notes = [], []
    xm = {}
    if XDPTCP_OBJ.exists():
        r, xm = object_rows("xdptcp.bpf.o", XDPTCP_OBJ, repeat)
        rows += r
    else:
        notes.append(f"skipped xdptcp.bpf.o: {XDPTCP_OBJ} is missing")
    core, why = pick_core_object()
    cm: dict = {}
    if core is None:
        notes.append(f"skipped the CO-RE row: {why}")
    else:
        try:
            r, cm = object_rows(f"{core.name} ({why})", core, repeat, core=True)
            rows += r
        except RuntimeError as e:
            notes.append(f"CO-RE row failed: {e}")
    start: list[float] = []
    try:
        command = console_script()
        start = xdptcp_start(repeat * SPAWN_REPEAT, command)
        rows.append(["xdptcp -i IFACE", "spawn to 'capturing on'", _ms(median(start)), "-"])
        notes.append(f"xdptcp -i IFACE: spawned as {' '.join(command)} -i IFACE")
    except RuntimeError as e:
        notes.append(f"xdptcp start failed: {e}")
    rows += pyz_rows(repeat, notes)
    rows += interpreter_rows(repeat)
    hooks = site_hooks()
    if hooks:
        notes.append(f"this interpreter's site runs at each start: {', '.join(hooks)}")
    title = (
        f"Load time, median of {repeat}, xdptcp -i's of {repeat * SPAWN_REPEAT} (load average "
        f"before: {load}; xdptcp.bpf.o {object_id(XDPTCP_OBJ)})"
    )
    text = table(title, ["object", "how", "ms", "/ bpftool"], rows)
    targets = [
        Target("xdptcp -i: spawn to capturing", _msf(median(start) if start else None), 100, " ms"),
        Target(
            "pybpf load process / bpftool process, xdptcp object",
            ratio(xm.get("cli"), xm.get("bpftool")),
            4.0,
            "x",
        ),
        Target(
            "CO-RE object, pybpf in-process first load / bpftool process",
            ratio(cm.get("cold"), cm.get("bpftool")),
            2.0,
            "x",
        ),
    ]
    text += "\n" + targets_table("Load time targets", targets)
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return text


def _ms(v: Optional[float]) -> Optional[str]:
    return None if v is None else f"{v * 1000:.1f}"


def _msf(v: Optional[float]) -> Optional[float]:
    return None if v is None else v * 1000


def _x(v: Optional[float]) -> Optional[str]:
    return None if v is None else f"{v:.2f}x"
