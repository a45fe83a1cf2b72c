"""The three ways to install, built from this tree and run as a user would run them.

- ``make pyz``: xdptcp.pyz and pybpf.pyz under ``python3 -I -S`` with every CPython 3.9-3.13
  present, giving the same output as the tree; built twice, the same bytes.
- ``make deb``: installed with apt, run from /usr/bin with Debian's python3, pyelftools and
  construct, then purged: nothing of it is left.
- ``make dist``: the wheel in a fresh venv.
- The man pages show every option ``--help`` shows; bash completion offers them, the interfaces
  for ``-i`` and files for ``-r``/``-w``.

Each form is built once per module (the builds take seconds; the wheel and the .deb's
dependencies come from PyPI and Debian's archive).
"""

from __future__ import annotations

import ast
import fcntl
import functools
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench.common import cpython

from conftest import ROOT, bpf_object, cannot_run, need_tool, run
from traffic import varied_pcap

sys.path.insert(0, str(ROOT / ".ci" / "dist"))
import common  # noqa: E402
import manpage  # noqa: E402

SHIPPED = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"
VERSION = common.version()
MINORS = (9, 10, 11, 12, 13)
NEWEST = MINORS[-1]
DEB_DEPS = ("python3-pyelftools", "python3-construct")


def default_python() -> str:
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@functools.cache
def tree(*args: str) -> subprocess.CompletedProcess:
    """The same command run from the tree, with the test suite's Python: the reference."""
    return run(sys.executable, "-m", *args, cwd=ROOT)


def build(script: str, out: Path, *args: str) -> None:
    res = run(sys.executable, str(ROOT / ".ci" / "dist" / script), "--out", str(out), *args,
              check=False)  # fmt: skip
    if res.returncode != 0:
        pytest.fail(f"{script} failed:\n{res.stdout}{res.stderr}")


# --- zipapps ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pyz")
    build("pyz.py", out)
    return out


def other_pythons() -> list[str]:
    """Every CPython 3.9-3.13 present but the one running the tests."""
    built = sys.version_info[:2]
    return [p for m in MINORS if (3, m) != built and (p := cpython(m))]


@pytest.fixture(scope="module")
def pyz_all(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zipapps with their modules compiled for every other CPython present too."""
    out = tmp_path_factory.mktemp("pyz-all")
    build("pyz.py", out, *(f"--python={p}" for p in other_pythons()))
    return out


COMPILES = """\
import collections, runpy, sys
compiled, pyz = collections.Counter(), sys.argv[1]
def hook(event, args):
    if event == "compile" and isinstance(args[1], str) and args[1].startswith(pyz + "/"):
        compiled[args[1][len(pyz) + 1 :]] += 1
sys.addaudithook(hook)
sys.argv = [pyz, "--version"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print(sorted(compiled.items()))
"""


def compiles(python: str, pyz: Path) -> list[tuple[str, int]]:
    """The archive's files that ``python`` compiles to run ``xdptcp.pyz --version``, and how
    many times each (the interpreter's own audit event, raised by every compile)."""
    out = run(python, "-I", "-S", "-c", COMPILES, str(pyz)).stdout.splitlines()
    assert out[0] == f"xdptcp {VERSION}", out
    return ast.literal_eval(out[1])


@pytest.fixture(scope="module")
def capture_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pcap") / "varied.pcap"
    varied_pcap(str(path))
    return path


def test_zipapps_built_twice_are_the_same_bytes(pyz: Path, tmp_path: Path) -> None:
    build("pyz.py", tmp_path)
    for name in ("xdptcp.pyz", "pybpf.pyz"):
        assert (tmp_path / name).read_bytes() == (pyz / name).read_bytes(), name


def test_zipapps_carry_the_packages_the_libraries_and_their_licences(pyz: Path) -> None:
    with zipfile.ZipFile(pyz / "xdptcp.pyz") as z:
        names = set(z.namelist())
    ours = {n for n in names if n.split("/")[0] in ("pybpf", "xdptcp") and n[-4:] != ".pyc"}
    assert ours == set(common.package_files())  # the very files the wheel carries, see below
    assert "xdptcp/data/xdptcp.bpf.o" in names
    assert {"elftools/__init__.py", "construct/__init__.py", "__main__.py"} <= names
    sources = {"source/bpf/xdptcp.bpf.c", "source/bpf/xdptcp_walk.bpf.c",
               "source/bpf/xdptcp_text.bpf.c", "source/bpf/xdptcp.h"}  # fmt: skip
    assert sources <= names  # the shipped objects' sources
    assert {"xdptcp/data/xdptcp.bpf.o", "xdptcp/data/xdptcp_walk.bpf.o",
            "xdptcp/data/xdptcp_text.bpf.o"} <= names  # fmt: skip
    assert any(re.match(r"pyelftools-[\d.]+\.dist-info/(licenses/)?LICENSE", n) for n in names)
    assert any(re.match(r"construct-[\d.]+\.dist-info/LICENSE", n) for n in names)
    # each module compiled beside its source (zipimport's layout), none in a __pycache__
    modules = {n for n in names if n.endswith(".py") and n != "__main__.py"}
    assert {n for n in names if n.endswith(".pyc")} == {n + "c" for n in modules}
    assert {"xdptcp/cli.pyc", "elftools/__init__.pyc", "construct/core.pyc"} <= names
    assert not [n for n in names if "__pycache__" in n]
    with zipfile.ZipFile(pyz / "pybpf.pyz") as z:
        assert not [n for n in z.namelist() if n.startswith("xdptcp/")]
    assert os.access(pyz / "xdptcp.pyz", os.X_OK)
    assert (pyz / "xdptcp.pyz").read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_zipapp_runs_its_compiled_modules_under_the_python_that_built_it_and_sources_else(
    pyz: Path, tmp_path: Path
) -> None:
    """The .pyc files are what the building CPython runs (zipimport writes none, so without
    them each run compiles every module it imports); any other CPython finds their magic number
    is not its own and runs the sources. Shown with a copy whose one source says which ran."""
    altered = tmp_path / "altered.pyz"
    with zipfile.ZipFile(pyz / "xdptcp.pyz") as src, zipfile.ZipFile(altered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "xdptcp/entry.py":
                data = b"def main():\n    print('from the source')\n    return 0\n"
            dst.writestr(name, data)
    built = sys.version_info[:2]
    assert run(sys.executable, "-I", "-S", str(altered), "--version").stdout == (
        f"xdptcp {VERSION}\n"
    )
    others = other_pythons()
    if not others:
        cannot_run(f"no CPython 3.9-3.13 on this machine but {built[0]}.{built[1]}")
    for python in others:
        assert run(python, "-I", "-S", str(altered), "--version").stdout == "from the source\n"


def test_zipapp_with_python_runs_modules_compiled_for_each_and_compiles_none(
    pyz: Path, pyz_all: Path
) -> None:
    """Built with ``--python`` for each other CPython, every one of them runs the modules
    compiled for it: at start only ``__main__.py`` is compiled (runpy compiles it twice, as any
    script's). Without, another CPython compiles each module it imports once: zipimport's own
    finder compiled each twice (once to name its file, once to run it)."""
    others = other_pythons()
    if not others:
        cannot_run("no CPython 3.9-3.13 on this machine but the one running the tests")
    main_only = [("__main__.py", 2)]
    for python in [sys.executable, *others]:
        assert compiles(python, pyz_all / "xdptcp.pyz") == main_only, python
    for python in others:
        once = compiles(python, pyz / "xdptcp.pyz")
        assert ("xdptcp/entry.py", 1) in once and ("pybpf/__init__.py", 1) in once, once
        assert {n for _, n in once} == {1, 2} and len(once) > 5, (python, once)
    assert compiles(sys.executable, pyz / "xdptcp.pyz") == main_only
    with zipfile.ZipFile(pyz_all / "xdptcp.pyz") as z, zipfile.ZipFile(pyz / "xdptcp.pyz") as z1:
        names = set(z.namelist())
        assert names > set(z1.namelist())
        tags = {n.split("/")[1] for n in names - set(z1.namelist())}
        assert {n.split("/")[0] for n in names - set(z1.namelist())} == {"__bytecode__"}
    assert len(tags) == len(others), tags
    for tag in tags:
        assert f"__bytecode__/{tag}/xdptcp/entry.pyc" in names
        assert f"__bytecode__/{tag}/elftools/__init__.pyc" in names


SOURCE_LINE = """\
import linecache, runpy, sys
pyz = sys.argv[1]
sys.argv = [pyz, "--version"]
try:
    runpy.run_path(pyz, run_name="__main__")
except SystemExit:
    pass
module = sys.modules["xdptcp.entry"]
code = module.main.__code__
print(module.__file__)
print(code.co_filename)
print(linecache.getline(code.co_filename, code.co_firstlineno, module.__dict__).strip())
"""


def test_zipapp_code_names_its_source_in_the_archive(pyz: Path, pyz_all: Path) -> None:
    """Whichever way a module came (compiled by the building CPython, by another with
    ``--python``, or from its source), its code is named by the source's path in the archive,
    so a traceback shows the lines."""
    pythons = [sys.executable, *other_pythons()]
    for python, build in [(p, b) for p in pythons for b in (pyz, pyz_all)]:
        where = f"{build / 'xdptcp.pyz'}/xdptcp/entry.py"
        out = run(python, "-I", "-S", "-c", SOURCE_LINE, str(build / "xdptcp.pyz")).stdout
        assert out.splitlines()[1:] == [where, where, "def main() -> int:"], (python, build)


def test_zipapps_built_with_python_twice_are_the_same_bytes(pyz_all: Path, tmp_path: Path) -> None:
    build("pyz.py", tmp_path, *(f"--python={p}" for p in other_pythons()))
    for name in ("xdptcp.pyz", "pybpf.pyz"):
        assert (tmp_path / name).read_bytes() == (pyz_all / name).read_bytes(), name


def test_make_pyz_passes_each_of_pyz_pythons_as_python() -> None:
    said = run("make", "-n", "-C", str(ROOT), "pyz", "PYZ_PYTHONS=python3.9 /opt/py/bin/python3")
    pyz_line = [line for line in said.stdout.splitlines() if ".ci/dist/pyz.py" in line]
    assert len(pyz_line) == 1, said.stdout
    assert pyz_line[0].endswith("--python=python3.9 --python=/opt/py/bin/python3"), pyz_line
    plain = run("make", "-n", "-C", str(ROOT), "pyz").stdout
    assert "--python" not in plain and ".ci/dist/pyz.py --out" in plain, plain


@pytest.mark.parametrize(
    "args, said",
    [
        (["--python", "/nonexistent/python3"], "pyz: "),
        (["--python", sys.executable, "--no-bytecode"], "not both"),
    ],
)
def test_pyz_bad_python_is_one_line(args: list[str], said: str, tmp_path: Path) -> None:
    res = run(sys.executable, str(ROOT / ".ci" / "dist" / "pyz.py"), "--out", str(tmp_path),
              *args, "xdptcp", check=False)  # fmt: skip
    assert res.returncode != 0 and said in res.stderr.splitlines()[-1], res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "xdptcp.pyz").exists()


def test_zipapp_imports_a_module_wanted_by_two_threads_at_once(pyz: Path, tmp_path: Path) -> None:
    """A capture attaches in a second thread while the first goes on, and both may import the
    same module for the first time (pybpf.link.netlink). CPython 3.9's zipimport ran a module
    with the old ``load_module()``: in sys.modules before its code had run, and not marked as
    being run, so the other thread took it half-made ("module 'pybpf.link.netlink' has no
    attribute 'link_info'"). Shown with a module that takes a while to run, imported by a
    thread and by the main thread meanwhile, under every CPython present."""
    altered = tmp_path / "altered.pyz"
    entry = (
        "import threading, time\n"
        "def main():\n"
        "    t = threading.Thread(target=__import__, args=('xdptcp.slow',))\n"
        "    t.start()\n"
        "    time.sleep(0.2)\n"
        "    from xdptcp import slow\n"
        "    print(slow.VALUE)\n"
        "    t.join()\n"
        "    return 0\n"
    )
    with zipfile.ZipFile(pyz / "xdptcp.pyz") as src, zipfile.ZipFile(altered, "w") as dst:
        for name in src.namelist():
            if name != "xdptcp/entry.pyc":  # the building CPython runs the source below too
                dst.writestr(name, entry if name == "xdptcp/entry.py" else src.read(name))
        dst.writestr("xdptcp/slow.py", "import time\ntime.sleep(0.6)\nVALUE = 'made whole'\n")
    pythons = {cpython(m) for m in MINORS} | {sys.executable}
    for python in sorted(p for p in pythons if p):
        res = run(python, "-I", "-S", str(altered), check=False)
        assert (res.returncode, res.stdout) == (0, "made whole\n"), (python, res.stderr)
    if cpython(MINORS[0]) is None:
        cannot_run("no CPython 3.9 on this machine: the one whose zipimport needs the help")


def test_zipapp_built_with_no_bytecode_carries_sources_only_and_runs(
    pyz: Path, tmp_path: Path
) -> None:
    build("pyz.py", tmp_path, "--no-bytecode", "xdptcp")
    with (
        zipfile.ZipFile(tmp_path / "xdptcp.pyz") as small,
        zipfile.ZipFile(pyz / "xdptcp.pyz") as z,
    ):
        assert set(small.namelist()) == {n for n in z.namelist() if not n.endswith(".pyc")}
    assert not (tmp_path / "pybpf.pyz").exists()  # only the one named
    res = run(sys.executable, "-I", "-S", str(tmp_path / "xdptcp.pyz"), "--version")
    assert res.stdout == f"xdptcp {VERSION}\n"


@pytest.mark.parametrize("minor", MINORS, ids=[f"3.{m}" for m in MINORS])
def test_zipapps_run_with_no_site_packages(
    minor: int, pyz_all: Path, capture_file: Path, tmp_path: Path
) -> None:
    """Each CPython runs the modules compiled for it (``pyz_all``; without them, the sources:
    test_xdptcp_zipapp_demo_captures_with_the_object_inside_it)."""
    pyz = pyz_all
    python = cpython(minor)
    if python is None:
        if minor in (9, NEWEST):  # the oldest and the newest promised must run under CI
            cannot_run(f"no CPython 3.{minor} on this machine")
        pytest.skip(f"no CPython 3.{minor} on this machine")
    isolated = (python, "-I", "-S")
    # proof that the libraries can only come from inside the zipapp
    res = run(*isolated, "-c", "import elftools", check=False)
    assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr
    xdptcp, pybpf = (*isolated, str(pyz / "xdptcp.pyz")), (*isolated, str(pyz / "pybpf.pyz"))

    assert run(*xdptcp, "--version").stdout == f"xdptcp {VERSION}\n"
    assert run(*pybpf, "--version").stdout == f"pybpf {VERSION}\n"

    helptext = run(*xdptcp, "--help").stdout
    assert helptext.startswith("usage: xdptcp")
    for action in manpage.parser_of("xdptcp")._actions:
        for opt in action.option_strings:
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", helptext), opt

    for obj in (SHIPPED, bpf_object("xdptcp")):
        for args in (("inspect", str(obj)), ("inspect", "--json", str(obj))):
            assert run(*pybpf, *args).stdout == tree("pybpf", *args).stdout
    # the whole decode and format path, against the tree's output for the same file
    for args in (("-r", str(capture_file)), ("--json", "-r", str(capture_file))):
        assert run(*xdptcp, *args).stdout == tree("xdptcp", *args).stdout

    # a user mistake is one line, as from the tree
    res = run(*pybpf, "inspect", str(tmp_path / "missing.o"), check=False)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


@pytest.mark.system
@pytest.mark.parametrize("which", ["default", "oldest", "newest"])
def test_xdptcp_zipapp_demo_captures_with_the_object_inside_it(which: str, pyz: Path) -> None:
    """The live path (load, attach, ring buffer) under the host's python3, 3.9 and 3.13."""
    minor = MINORS[0] if which == "oldest" else NEWEST
    python = default_python() if which == "default" else cpython(minor)
    if python is None:
        cannot_run(f"no CPython 3.{minor} on this machine")
    res = run(python, "-I", "-S", str(pyz / "xdptcp.pyz"), "--demo", check=False)
    assert res.returncode == 0, res.stderr
    assert_demo_output(res)


def assert_demo_output(res: subprocess.CompletedProcess) -> None:
    """What `make demo` shows: a handshake captured on both ends, the counts, hosts removed."""
    assert "Flags [S]," in res.stdout and "Flags [S.]," in res.stdout, res.stdout
    captured = re.search(r"^(\d+) packets captured$", res.stderr, re.M)  # as tcpdump: stderr
    assert captured and int(captured.group(1)) == len(res.stdout.splitlines()) >= 3, res.stderr
    assert "\n0 packets dropped by kernel" in res.stderr
    assert "xdptcp: test hosts removed" in res.stderr


# --- man pages and completion ----------------------------------------------------------------


def help_entries(text: str) -> list[tuple[str, str]]:
    """(invocation, help) for each argument in --help output, lines joined."""
    entries: list[list[str]] = []
    in_args = False
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):  # "options:", "positional arguments:"
            in_args = True
            continue
        if not in_args or not line.strip():
            continue
        if len(line) - len(line.lstrip()) <= 4:  # an argument, or a sub-command under COMMAND
            inv, _, helptext = line.strip().partition("  ")
            entries.append([inv, helptext])
        else:  # the help goes on (or starts below a long invocation)
            entries[-1][1] += " " + line
    return [(inv, " ".join(h.split())) for inv, h in entries]


def rendered(man_args: list[str]) -> str:
    # UTF-8, as a user's terminal: help texts may hold non-ASCII; Debian's groff keeps - and '
    env = {**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "200", "MANPAGER": "cat", "PAGER": "cat"}
    out = run("man", *man_args, env=env).stdout
    return " ".join(re.sub(r".\x08", "", out).split())  # no overstrike, one line


def assert_man_shows_help(name: str, man_text: str) -> None:
    parser = manpage.parser_of(name)
    parsers = [parser]
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):  # the sub-commands
            parsers += list(action.choices.values())
    for p in parsers:
        entries = help_entries(p.format_help())
        assert entries, p.prog
        for invocation, helptext in entries:
            if invocation.startswith("{"):  # "{inspect,disasm,...}": the commands, listed below
                continue
            assert invocation in man_text, f"{p.prog}: {invocation}"
            assert helptext in man_text, f"{p.prog}: {invocation}: {helptext}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("man")
    for name in ("xdptcp", "pybpf"):
        for script, sub in (("manpage.py", "man"), ("completion.py", "completion")):
            res = run(sys.executable, str(ROOT / ".ci" / "dist" / script), name,
                      "-o", str(out / sub / name), check=False)  # fmt: skip
            assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("name", ["xdptcp", "pybpf"])
def test_man_page_shows_every_option_help_shows(name: str, generated: Path) -> None:
    need_tool("man")
    man_text = rendered(["-l", str(generated / "man" / name)])
    assert man_text.startswith(f"{name.upper()}(8)")
    assert f"pybpf {VERSION}" in man_text
    assert_man_shows_help(name, man_text)
    # every sub-command is a section of its own, with its help line
    if name == "pybpf":
        commands = next(a.choices for a in manpage.parser_of("pybpf")._actions if a.choices)
        for sub in commands:
            assert f" {sub} pybpf {sub} [-h]" in man_text, sub


def complete(script: Path, *words: str, cwd: Path = ROOT) -> list[str]:
    """What bash offers for the last word, with the completion script sourced."""
    prog = (
        f'source "{script}"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
        f'_{words[0]}; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    res = run("bash", "--norc", "-c", prog, "complete", *words, cwd=cwd)
    return sorted(filter(None, res.stdout.split("\n")))


def test_bash_completion_offers_options_interfaces_files_and_commands(
    generated: Path, tmp_path: Path
) -> None:
    need_tool("bash")
    x, b = generated / "completion" / "xdptcp", generated / "completion" / "pybpf"
    parser = manpage.parser_of("xdptcp")
    longs = sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))
    assert complete(x, "xdptcp", "--") == longs
    assert complete(x, "xdptcp", "-i", "") == sorted(os.listdir("/sys/class/net"))
    assert complete(x, "xdptcp", "--interface", "=", "lo") == ["lo"]
    assert complete(x, "xdptcp", "--mode", "") == ["auto", "native", "skb"]
    (tmp_path / "cap1.pcap").touch()
    (tmp_path / "cap2.pcap").touch()
    assert complete(x, "xdptcp", "-r", "cap", cwd=tmp_path) == ["cap1.pcap", "cap2.pcap"]
    assert complete(x, "xdptcp", "-w", "cap1", cwd=tmp_path) == ["cap1.pcap"]
    assert complete(x, "xdptcp", "-c", "") == []

    commands = next(a.choices for a in manpage.parser_of("pybpf")._actions if a.choices)
    assert {"inspect", "disasm", "load", "test-run"} <= set(commands)
    assert complete(b, "pybpf", "") == sorted([*commands, "-h", "--help", "--version"])
    assert complete(b, "pybpf", "inspect", "--") == ["--help", "--json"]
    assert complete(b, "pybpf", "load", "-v", "cap", cwd=tmp_path) == ["cap1.pcap", "cap2.pcap"]
    (tmp_path / "pins").mkdir()
    assert complete(b, "pybpf", "load", "--pin", "p", cwd=tmp_path) == ["pins"]
    # after --data's file, the object; after the object, a program name: not a file
    assert complete(b, "pybpf", "test-run", "--data", "x", "ca", cwd=tmp_path) == [
        "cap1.pcap",
        "cap2.pcap",
    ]
    assert complete(b, "pybpf", "test-run", "obj.o", "ca", cwd=tmp_path) == []


# --- the Debian package ----------------------------------------------------------------------


def installed(package: str) -> bool:
    res = run("dpkg-query", "-W", "-f", "${Status}", package, check=False)
    return res.returncode == 0 and res.stdout.endswith(" installed")


def apt(*args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    res = run("apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *args, env=env, check=False)
    assert res.returncode == 0, f"apt-get {' '.join(args)}:\n{res.stdout[-2000:]}{res.stderr}"


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    build("deb.py", out)
    (path,) = out.glob("pybpf_*_all.deb")
    return path


def test_deb_built_twice_is_the_same_bytes(deb: Path, tmp_path: Path) -> None:
    need_tool("dpkg-deb")
    build("deb.py", tmp_path)
    assert (tmp_path / deb.name).read_bytes() == deb.read_bytes()


def test_deb_depends_only_on_debian_python_and_the_two_libraries(deb: Path) -> None:
    need_tool("dpkg-deb")
    fields = run("dpkg-deb", "-f", str(deb), "Architecture", "Depends", "Version").stdout
    assert "Architecture: all\n" in fields
    assert "Depends: python3 (>= 3.9), python3-pyelftools, python3-construct\n" in fields
    assert f"Version: {VERSION}-1\n" in fields
    paths = {
        line.split()[-1].lstrip(".") for line in run("dpkg-deb", "-c", str(deb)).stdout.splitlines()
    }
    site = "/usr/lib/python3/dist-packages"
    assert {f"{site}/{f}" for f in common.package_files()} <= paths
    for name in ("xdptcp", "pybpf"):
        assert {f"/usr/bin/{name}", f"/usr/share/man/man8/{name}.8.gz",
                f"/usr/share/bash-completion/completions/{name}"} <= paths  # fmt: skip
    doc = "/usr/share/doc/pybpf"
    # The program's sources, gzipped over 4 kB as Debian does with documentation.
    big = {
        n: (ROOT / "bpf" / n).stat().st_size > 4096
        for n in ("xdptcp.h", "xdptcp.bpf.c", "xdptcp_walk.bpf.c", "xdptcp_text.bpf.c")
    }
    sources = {f"{doc}/source/{name}" + (".gz" if gz else "") for name, gz in big.items()}
    assert {f"{doc}/copyright", f"{doc}/changelog.Debian.gz", *sources} <= paths
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")]


@pytest.fixture
def host_package_lock():
    """One install-run-purge at a time on this host, whichever checkout's tests run it."""
    with open("/run/lock/pybpf-deb-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.mark.system
@pytest.mark.usefixtures("host_package_lock")
def test_deb_installs_runs_with_debian_libraries_and_purges_clean(deb: Path) -> None:
    for tool in ("apt-get", "dpkg-query", "man"):
        need_tool(tool)
    if installed("pybpf"):
        cannot_run("a pybpf package is installed on this host: not touching it")
    deps_before = {d for d in DEB_DEPS if installed(d)}
    apt("install", "--no-install-recommends", str(deb))
    files = []
    try:
        files = run("dpkg", "-L", "pybpf").stdout.split()
        python = "/usr/bin/python3"
        libs = run(python, "-c", "import elftools, construct; "
                   "print(elftools.__file__, construct.__file__)").stdout.split()  # fmt: skip
        assert all(f.startswith("/usr/lib/python3/dist-packages/") for f in libs), libs
        assert run("head", "-1", "/usr/bin/xdptcp").stdout == f"#!{python}\n"
        assert run("/usr/bin/xdptcp", "--version").stdout == f"xdptcp {VERSION}\n"
        assert run("/usr/bin/pybpf", "--version").stdout == f"pybpf {VERSION}\n"
        obj = "/usr/lib/python3/dist-packages/xdptcp/data/xdptcp.bpf.o"
        for args in (("inspect", obj), ("disasm", obj)):
            assert run("/usr/bin/pybpf", *args).stdout == tree("pybpf", *args).stdout
        # a CO-RE load keeps the kernel BTF index in /var/cache/pybpf, which a purge removes
        core = bpf_object("tests/core_vmlinux")
        run("/usr/bin/pybpf", "load", str(core), env={
            k: v for k, v in os.environ.items() if k != "PYBPF_CACHE_DIR"})  # fmt: skip
        assert list(Path("/var/cache/pybpf").glob("vmlinux.btf-index*"))  # one per format
        res = run("/usr/bin/xdptcp", "--demo", check=False)
        assert res.returncode == 0, res.stderr
        assert_demo_output(res)
        # `man xdptcp` finds the installed page, and it shows what --help shows
        for name in ("xdptcp", "pybpf"):
            assert_man_shows_help(name, rendered([name]))
        # dpkg's checksums hold: nothing was rewritten after install
        assert run("dpkg", "--verify", "pybpf").stdout == ""
        assert list(Path("/usr/lib/python3/dist-packages/pybpf/__pycache__").glob("*.pyc"))
    finally:
        apt("purge", "pybpf")
        new_deps = [d for d in DEB_DEPS if d not in deps_before and installed(d)]
        if new_deps:  # leave the host as found
            apt("purge", *new_deps)
    assert not installed("pybpf")
    assert not os.path.exists("/var/cache/pybpf")
    left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
    assert not left
    for pkg in ("pybpf", "xdptcp", f"pybpf-{VERSION}.dist-info"):
        assert not os.path.exists(f"/usr/lib/python3/dist-packages/{pkg}"), pkg
    assert not os.path.exists("/usr/share/doc/pybpf")


# --- wheel and sdist -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dist dir with the wheel and the sdist, a fresh venv with the wheel installed)."""
    try:
        import build  # noqa: F401
    except ImportError:
        cannot_run("the 'build' package is missing: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("dist")
    res = run(sys.executable, "-m", "build", "--outdir", str(out), str(ROOT), check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    venv = out / "venv"
    run(default_python(), "-m", "venv", str(venv))
    (whl,) = out.glob("pybpf-*.whl")
    res = run(str(venv / "bin" / "pip"), "install", "-q", str(whl), check=False)
    assert res.returncode == 0, res.stderr
    return out, venv


def test_wheel_and_sdist_carry_the_packages_and_the_compiled_object(
    wheel_venv: tuple[Path, Path],
) -> None:
    out, _ = wheel_venv
    (whl,) = out.glob(f"pybpf-{VERSION}-py3-none-any.whl")
    with zipfile.ZipFile(whl) as z:
        ours = {n for n in z.namelist() if n.split("/")[0] in ("pybpf", "xdptcp")}
        assert z.read("xdptcp/data/xdptcp.bpf.o") == SHIPPED.read_bytes()
    assert ours == set(common.package_files())  # the zipapps and the .deb carry these too
    (sdist,) = out.glob(f"pybpf-{VERSION}.tar.gz")
    listing = run("tar", "tzf", str(sdist)).stdout.split()
    assert f"pybpf-{VERSION}/xdptcp/data/xdptcp.bpf.o" in listing


def test_wheel_in_a_fresh_venv_runs_both_commands(wheel_venv: tuple[Path, Path]) -> None:
    _, venv = wheel_venv
    bin_ = venv / "bin"
    assert run(str(bin_ / "xdptcp"), "--version").stdout == f"xdptcp {VERSION}\n"
    assert run(str(bin_ / "pybpf"), "--version").stdout == f"pybpf {VERSION}\n"
    args = ("inspect", str(SHIPPED))
    assert run(str(bin_ / "pybpf"), *args).stdout == tree("pybpf", *args).stdout


@pytest.mark.system
def test_wheel_in_a_fresh_venv_runs_the_demo(wheel_venv: tuple[Path, Path]) -> None:
    _, venv = wheel_venv
    res = run(str(venv / "bin" / "xdptcp"), "--demo", check=False)
    assert res.returncode == 0, res.stderr
    assert_demo_output(res)
