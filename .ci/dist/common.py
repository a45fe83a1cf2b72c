"""What the build scripts under .ci/dist share: the tree, its version, the files each form ships,
and the time that stamps every file (the last commit's, so two builds of one commit are equal).
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pybpf", "xdptcp")
# Non-Python files the packages carry: mirrors [tool.setuptools.package-data] in pyproject.toml.
PACKAGE_DATA = {"xdptcp": ("data/*.bpf.o", "data/*.sha256")}
# The sources of the compiled objects (GPL-2.0: the capture programs, the offline walks),
# shipped beside them by the .deb and xdptcp.pyz.
BPF_SOURCES = ("bpf/xdptcp.bpf.c", "bpf/xdptcp_walk.bpf.c", "bpf/xdptcp_text.bpf.c", "bpf/xdptcp.h")
# 1980-01-01, the earliest time a zip entry can hold: used when the tree is not a git clone.
ZIP_EPOCH = 315532800


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH if set (reproducible-builds.org), else the time of the last commit."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return max(int(out.strip()), ZIP_EPOCH)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return ZIP_EPOCH


def version() -> str:
    """pybpf/version.py's __version__, read without importing (the build may run without the
    dependencies)."""
    tree = ast.parse((ROOT / "pybpf" / "version.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise SystemExit("no __version__ in pybpf/version.py")


def package_files(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The files the packages ship, as sorted paths relative to the tree: every module of every
    sub-package, and the package data. Caches and stray files are never shipped."""
    files: set[str] = set()
    for pkg in packages:
        for path in (ROOT / pkg).rglob("*.py"):
            if "__pycache__" not in path.parts:
                files.add(path.relative_to(ROOT).as_posix())
        for pattern in PACKAGE_DATA.get(pkg, ()):
            for path in (ROOT / pkg).glob(pattern):
                files.add(path.relative_to(ROOT).as_posix())
    return sorted(files)


def stamp_tree(top: Path, epoch: int) -> None:
    """Give every file and directory under top the same time and plain modes."""
    for path in sorted(top.rglob("*"), reverse=True):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
            os.utime(path, (epoch, epoch))
    os.utime(top, (epoch, epoch))
