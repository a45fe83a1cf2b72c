"""Build xdptcp.pyz and pybpf.pyz: single-file zipapps carrying pyelftools and construct.

    python .ci/dist/pyz.py [--out dist] [--wheels build/dist/wheels] [--python INTERP]...
                           [--no-bytecode] [NAME...]

Each runs as ``python3 xdptcp.pyz ...`` (or ``./xdptcp.pyz``) under any CPython 3.9+, with no
site-packages (``python3 -I -S`` works): the two libraries come from their PyPI wheels, pinned
with hashes in vendor.txt. The archive is written entry by entry in sorted order with the last
commit's time and fixed modes, then zipapp prepends the interpreter line: two builds of one
commit are the same bytes (zipapp's own directory walk follows the file system's order and each
file's local mtime, so it is not used for the body).
"""

from __future__ import annotations

import argparse
import io
import marshal
import shutil
import subprocess
import sys
import time
import zipapp
import zipfile
from pathlib import Path
from typing import Sequence

from common import BPF_SOURCES, ROOT, package_files, source_date_epoch

VENDOR = Path(__file__).with_name("vendor.txt")
VENDORED_TOPS = ("elftools/", "construct/")  # what the zipapps take from the wheels

MAIN = """\
# {name}.pyz: {what}, with pyelftools and construct, in one file.
import sys

if sys.version_info < (3, 9):
    sys.exit("{name}: needs Python 3.9 or later (this is %d.%d)" % sys.version_info[:2])
import _imp
import marshal
import zipimport
from _frozen_importlib_external import MAGIC_NUMBER

# The modules compiled for this CPython, when the archive carries them (.ci/dist/pyz.py
# --python): the building CPython's lie beside their sources, where zipimport itself looks.
TREE = "__bytecode__/" + sys.implementation.cache_tag + "/"


class ZipImporter(zipimport.zipimporter):
    def _source(self, fullname):
        name = fullname.replace(".", "/")
        return name + ("/__init__.py" if self.is_package(fullname) else ".py")

    def get_filename(self, fullname):
        # The source's path. zipimport's own compiles the module to tell which file it is
        # made from, and the import compiles it again to run it: twice for each module.
        return self.archive + "/" + self._source(fullname)

    def get_code(self, fullname):
        # This CPython's compiled module, else the building one's if it is this one, named by
        # the source's path (a traceback shows its lines), else the source compiled
        source = self._source(fullname)
        for pyc in (TREE + source + "c", source + "c"):
            try:
                data = self.get_data(pyc)
            except OSError:
                continue
            if data[:4] == MAGIC_NUMBER:
                code = marshal.loads(memoryview(data)[16:])
                _imp._fix_co_filename(code, self.archive + "/" + source)
                return code
        return super().get_code(fullname)

    if sys.version_info < (3, 10):
        # 3.9's zipimport runs a module with load_module(): the module is in sys.modules
        # before its code has run, not marked as running, and another thread importing it
        # meanwhile takes it half-made. With exec_module() (3.10's zipimport has it) the import
        # system makes that thread wait for the module, as for modules loaded from files.
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            exec(self.get_code(module.__name__), module.__dict__)


sys.path_hooks[sys.path_hooks.index(zipimport.zipimporter)] = ZipImporter
for path, finder in list(sys.path_importer_cache.items()):
    if type(finder) is zipimport.zipimporter:
        del sys.path_importer_cache[path]

from {package}.entry import main

sys.exit(main())
"""

APPS = {
    # name: (packages carried, what it is)
    "xdptcp": (("pybpf", "xdptcp"), "TCP capture at XDP"),
    "pybpf": (("pybpf",), "a pure-Python eBPF loader"),
}


def fetch_wheels(dest: Path) -> list[Path]:
    """The pinned wheels, downloaded once into dest (pip checks each hash)."""
    names = [line.split("==")[0] for line in VENDOR.read_text().splitlines() if "==" in line]
    found = [next(iter(sorted(dest.glob(f"{n}-*.whl"))), None) for n in names]
    if None in found:
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             "--require-hashes", "-r", str(VENDOR), "-d", str(dest)],
            check=True,
        )  # fmt: skip
        found = [next(iter(sorted(dest.glob(f"{n}-*.whl")))) for n in names]
    return found


def entries(packages: tuple[str, ...], wheels: list[Path], main_py: str) -> dict[str, bytes]:
    """Archive name -> contents: our packages from the tree, the libraries from their wheels
    (with their licences, in the .dist-info directories)."""
    out = {"__main__.py": main_py.encode()}
    for rel in package_files(packages):
        out[rel] = (ROOT / rel).read_bytes()
    if "xdptcp" in packages:  # the capture object's source travels with it
        for rel in BPF_SOURCES:
            out[f"source/{rel}"] = (ROOT / rel).read_bytes()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                top = name.split("/")[0] + "/"
                if name.endswith("/") or "__pycache__" in name:
                    continue
                if top in VENDORED_TOPS or (top.endswith(".dist-info/") and "RECORD" not in name):
                    out[name] = z.read(name)
    return out


# Run by each CPython that compiles the modules: the sources in (a marshalled dict, name ->
# bytes), the .pyc files out with the interpreter's cache tag. Hash-based and unchecked (PEP
# 552): the header holds the source's hash, not a time. Compiled at optimization level 0
# whatever the builder's -O or PYTHONOPTIMIZE, so two builds are the same bytes (and ``assert``
# stays, as in a run from source).
COMPILE = """\
import importlib.util, marshal, sys
files = marshal.loads(sys.stdin.buffer.read())
head = importlib.util.MAGIC_NUMBER + (0b01).to_bytes(4, "little")
out = {}
for name, source in files.items():
    code = compile(source, name, "exec", dont_inherit=True, optimize=0)
    out[name + "c"] = head + importlib.util.source_hash(source) + marshal.dumps(code)
sys.stdout.buffer.write(marshal.dumps((sys.implementation.cache_tag, out)))
"""


def compiled(python: str, sources: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
    """``sources`` compiled by the CPython ``python``: its cache tag, and name.pyc -> bytes."""
    python = shutil.which(python) or python  # (found on PATH here: the child has none)
    try:
        # (-S -s, not -I: -I would ignore PYTHONHASHSEED. Before 3.11 the order a set's
        # constant is written in follows the strings' hashes, random in each process.)
        res = subprocess.run([python, "-S", "-s", "-c", COMPILE], input=marshal.dumps(sources),
                             capture_output=True, env={"PYTHONHASHSEED": "0"}, cwd="/")  # fmt: skip
    except OSError as e:
        raise SystemExit(f"pyz: cannot run {python}: {e.strerror}") from None
    if res.returncode != 0:
        last = res.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"pyz: {python} could not compile the modules: {' '.join(last)}")
    return marshal.loads(res.stdout)


def with_bytecode(files: dict[str, bytes], pythons: list[str]) -> dict[str, bytes]:
    """Each module also compiled. The building CPython's ``.pyc`` lies beside its ``.py``, the
    layout zipimport reads (it writes no bytecode of its own, so without these every run
    compiles every module it imports); another CPython's zipimport finds a magic number that is
    not its own there. Each of ``pythons`` (another CPython 3.9+) compiles them too, into
    ``__bytecode__/<its cache tag>/``, where ``__main__.py`` finds what the running one can
    use."""
    out = dict(files)
    sources = {n: s for n, s in files.items() if n.endswith(".py") and n != "__main__.py"}
    own, pycs = compiled(sys.executable, sources)
    out.update(pycs)
    for python in pythons:
        tag, pycs = compiled(python, sources)
        if tag != own:
            out.update((f"__bytecode__/{tag}/{name}", pyc) for name, pyc in pycs.items())
    return out


def write_zip(files: dict[str, bytes], epoch: int) -> bytes:
    stamp = time.gmtime(max(epoch, 315532800))[:6]  # zip times start in 1980
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            info.create_system = 3  # Unix, whatever system builds it
            z.writestr(info, files[name], compresslevel=9)
    return buf.getvalue()


def build(name: str, out_dir: Path, wheels: list[Path], epoch: int, bytecode: bool = True,
          pythons: Sequence[str] = ()) -> Path:  # fmt: skip
    packages, what = APPS[name]
    main_py = MAIN.format(name=name, what=what, package=name)
    files = entries(packages, wheels, main_py)
    body = write_zip(with_bytecode(files, list(pythons)) if bytecode else files, epoch)
    target = out_dir / f"{name}.pyz"
    tmp = target.with_suffix(".pyz.tmp")
    zipapp.create_archive(io.BytesIO(body), str(tmp), interpreter="/usr/bin/env python3")
    tmp.chmod(0o755)  # zipapp sets only the owner's x bit
    tmp.replace(target)
    return target


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "dist")
    p.add_argument("--wheels", type=Path, default=ROOT / "build" / "dist" / "wheels")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(APPS)} (default: all)")
    p.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="INTERP",
        help="another CPython 3.9+ to compile the modules for too (repeatable): the zipapp then "
        "starts as fast under it as under the one that builds it",
    )
    p.add_argument(
        "--no-bytecode",
        action="store_true",
        help="sources only: a third of the size, and every module compiled at each start",
    )
    args = p.parse_args()
    if args.no_bytecode and args.python:
        p.error("--python compiles the modules, --no-bytecode leaves them out: not both")
    args.out.mkdir(parents=True, exist_ok=True)
    wheels = fetch_wheels(args.wheels)
    epoch = source_date_epoch()
    for name in args.names or APPS:
        if name not in APPS:
            p.error(f"no zipapp named {name!r}")
        target = build(name, args.out, wheels, epoch, not args.no_bytecode, args.python)
        print(f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}: "
              f"{target.stat().st_size} bytes")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
