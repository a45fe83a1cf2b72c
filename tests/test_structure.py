"""The house: pybpf's folders are the loader's stages, each importing only from those beneath it.

The ranks are the order of the tutorial (docs/how-a-loader-works.md): instructions, BTF, the
object file, the system call, attaching, then the objects a user holds, then the command line.
A module may import from its own stage and from lower ones, never from a higher one, and the
module graph has no circles (lazy imports inside functions included: a circle hidden in a
function is still a circle for the reader).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

STAGES = ["errors", "asm", "btf", "object", "sys", "link", "root", "cli"]
# Beneath every stage: the exceptions, the decorators that make the stages' records and enums,
# and the walk over ELF note records (btf reads the kernel's, link a program's USDT probes).
BASE_MODULES = {"pybpf.errors", "pybpf.record", "pybpf.enums", "pybpf.elfnote"}
CLI_MODULES = {"pybpf.cli", "pybpf.__main__", "pybpf.entry", "pybpf.describe", "pybpf.argparser"}


def _stage(module: str) -> int:
    parts = module.split(".")
    if module in BASE_MODULES:
        return STAGES.index("errors")
    if module in CLI_MODULES:
        return STAGES.index("cli")
    if len(parts) > 2 or (len(parts) == 2 and (ROOT / "pybpf" / parts[1]).is_dir()):
        return STAGES.index(parts[1])
    return STAGES.index("root")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, package: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import of ``package`` in the file, type-only ones
    (under ``if TYPE_CHECKING:``) excepted: they cost nothing at run time."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    type_only.add(id(sub))
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith(package)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith(package):
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                target = sub if _is_module(sub) else node.module
                found.append((target, node.lineno))
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _graph(package: str) -> dict[str, list[tuple[str, int]]]:
    return {_module_name(p): _imports(p, package) for p in sorted((ROOT / package).rglob("*.py"))}


def test_pybpf_imports_only_downwards() -> None:
    upward = []
    for module, imports in _graph("pybpf").items():
        if module == "pybpf":
            continue  # the package's front door re-exports the public API from every stage
        for target, line in imports:
            if target == "pybpf":
                upward.append(f"{module}:{line} imports the package front door 'pybpf'")
            elif _stage(target) > _stage(module):
                upward.append(
                    f"{module}:{line} ({STAGES[_stage(module)]}) imports {target} "
                    f"({STAGES[_stage(target)]})"
                )
    assert not upward, "imports that go up a stage:\n" + "\n".join(upward)


def _cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    edges = {m: sorted({t for t, _ in imps if t in graph and t != m}) for m, imps in graph.items()}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in edges:
        if node not in state:
            visit(node, [node])
    return cycles


@pytest.mark.parametrize("package", ["pybpf", "xdptcp"])
def test_no_import_circles(package: str) -> None:
    graph = _graph(package)
    # A package's __init__ importing its own submodules is how re-exports work, not a circle.
    for module in graph:
        graph[module] = [
            (t, line) for t, line in graph[module] if not (t.startswith(module + ".") and module)
        ]
    cycles = _cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_pybpf_never_mentions_xdptcp() -> None:
    """Rule 2: the loader knows nothing of the capture tool."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "pybpf").rglob("*.py")
        if "xdptcp" in p.read_text() or "import xdptcp" in p.read_text()
    ]
    assert not offenders


def test_only_the_cli_sees_argparse() -> None:
    users = sorted(
        _module_name(p)
        for pkg in ("pybpf", "xdptcp")
        for p in (ROOT / pkg).rglob("*.py")
        if any(t == "argparse" for t, _ in _imports(p, "argparse"))
    )
    # pybpf.argparser: the two command lines' parser class (a help formatter without shutil)
    assert users == ["pybpf.argparser", "pybpf.cli", "xdptcp.cli"]


# A classic-BPF seccomp filter that makes bpf(2) fail with EPERM and lets everything else
# through: the real kernel mechanism, so "parsing makes no system calls" is checked by the
# kernel rather than by reading our own code.
SECCOMP_PARSE = textwrap.dedent(
    """
    import ctypes, errno, os, struct, sys
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    AUDIT_ARCH_X86_64, NR_BPF = 0xC000003E, 321
    def stmt(code, k): return struct.pack("HBBI", code, 0, 0, k)
    def jump(code, k, jt, jf): return struct.pack("HBBI", code, jt, jf, k)
    prog = b"".join([
        stmt(0x20, 4),                          # ld arch
        jump(0x15, AUDIT_ARCH_X86_64, 1, 0),    # jeq x86_64 ? next : allow
        stmt(0x06, 0x7FFF0000),                 # ret ALLOW
        stmt(0x20, 0),                          # ld syscall nr
        jump(0x15, NR_BPF, 0, 1),               # jeq bpf ? errno : allow
        stmt(0x06, 0x00050000 | errno.EPERM),   # ret ERRNO(EPERM)
        stmt(0x06, 0x7FFF0000),                 # ret ALLOW
    ])
    buf = ctypes.create_string_buffer(prog)
    class FProg(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fprog = FProg(len(prog) // 8, ctypes.addressof(buf))
    assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0
    # The filter works: bpf() is refused.
    assert libc.syscall(NR_BPF, 0, None, 0) == -1 and ctypes.get_errno() == errno.EPERM
    import pybpf.object
    from pybpf.object.spec import ObjectSpec
    from pybpf.asm.disasm import format_insn
    spec = ObjectSpec.from_file(sys.argv[1])
    prog = next(iter(spec.programs.values()))
    print(len(spec.programs), len(spec.maps), format_insn(prog.insns[0]))
    print(sorted(m for m in sys.modules if m.startswith("pybpf")))
    """
)


@pytest.mark.skipif(
    sys.platform != "linux" or __import__("platform").machine() != "x86_64",
    reason="the seccomp filter is written for x86-64",
)
def test_object_reads_with_bpf_syscall_forbidden() -> None:
    """``import pybpf.object`` and a whole parse work where the kernel refuses bpf(2)."""
    obj = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"
    r = subprocess.run(
        [sys.executable, "-c", SECCOMP_PARSE, str(obj)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    counts, modules = r.stdout.splitlines()
    programs, maps, first = counts.split(" ", 2)
    assert int(programs) >= 1 and int(maps) >= 1 and first
    loaded = eval(modules)  # a list of module names printed by the child
    assert not [m for m in loaded if m.startswith(("pybpf.sys", "pybpf.link", "pybpf.loader"))]
