"""The unprivileged tests under every CPython 3.9-3.13 on this machine (``make pymatrix``).

Each interpreter gets its own venv under build/py3.X with the project's dependencies from PyPI;
the tree itself is imported through PYTHONPATH, so every run tests the same files. The runs go
two at a time (the machine has two cores) and print one table at the end. The default
interpreter (the one running this script) is left out: ``make test`` runs everything under it.

Left out under every interpreter: tests/test_dist.py (it runs its zipapps under each CPython
itself) and tests/test_fuzz.py (thousands of cases with per-case time limits: it tests input
handling, not the language, and runs under the default).

Outside CI an interpreter that is missing is reported in one line and skipped; under CI=true
3.9 (the oldest declared) and 3.13 (the newest) must run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import cpython  # noqa: E402 (as tests/test_dist.py and bench/load_time.py find them)

MINORS = (9, 10, 11, 12, 13)
REQUIRED_IN_CI = (9, 13)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DEPS = ("pyelftools", "construct", "pytest")  # pyproject's dependencies and the test runner
PYTEST_ARGS = (
    "-q",
    "-m",
    "not system",
    "-p",
    "no:cacheprovider",
    "--ignore=tests/test_dist.py",
    "--ignore=tests/test_fuzz.py",
)


def venv(minor: int, python: str) -> Path:
    """build/py3.X with DEPS installed; made again when the interpreter or DEPS change."""
    where = ROOT / "build" / f"py3.{minor}"
    stamp = where / ".installed"
    key = hashlib.sha256(" ".join((python, *DEPS)).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == key:
        return where
    for cmd in (
        [python, "-m", "venv", "--clear", str(where)],
        [str(where / "bin" / "python"), "-m", "pip", "install", "-q", *DEPS],
    ):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:  # pip's own words, the last of them
            lines = (res.stderr or res.stdout).strip().splitlines()
            raise RuntimeError(f"{' '.join(cmd[:3])}: {lines[-1] if lines else res.returncode}")
    stamp.write_text(key)
    return where


def run(minor: int, python: str) -> dict:
    start = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    try:
        where = venv(minor, python)
    except RuntimeError as e:
        return dict(minor=minor, python=python, error=f"venv: {e}", seconds=0.0)
    res = subprocess.run(
        [str(where / "bin" / "python"), "-m", "pytest", *PYTEST_ARGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    log = ROOT / "build" / f"pymatrix-3.{minor}.log"
    log.write_text(res.stdout + res.stderr)
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error")}
    tail = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail):
        counts[what.rstrip("s") if what.startswith("error") else what] += int(n)
    version = subprocess.run([python, "-V"], capture_output=True, text=True).stdout.split()[-1]
    return dict(
        minor=minor,
        python=version,
        rc=res.returncode,
        seconds=time.monotonic() - start,
        log=str(log.relative_to(ROOT)),
        **counts,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", "--jobs", type=int, default=2, help="interpreters at once (2)")
    ap.add_argument("--all", action="store_true", help="include the default interpreter")
    args = ap.parse_args()
    default = sys.version_info[:2]
    todo, problems = [], []
    for minor in MINORS:
        if (3, minor) == default and not args.all:
            print(f"pymatrix: CPython 3.{minor} is the default: make test runs it")
            continue
        python = cpython(minor)
        if python is None:
            line = f"pymatrix: CPython 3.{minor} not found (pyenv or python3.{minor}): not tested"
            print(line, file=sys.stderr)
            if IN_CI and minor in REQUIRED_IN_CI:
                problems.append(line)
            continue
        todo.append((minor, python))
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(lambda mp: run(*mp), todo))
    print(f"{'Python':<9} {'passed':>6} {'failed':>6} {'skipped':>7} {'seconds':>7}  log")
    for r in results:
        if "error" in r and isinstance(r["error"], str):
            print(f"{r['python']:<9} {r['error']}")
            problems.append(f"CPython 3.{r['minor']}: {r['error']}")
            continue
        failed = r["failed"] + r["error"]
        print(
            f"{r['python']:<9} {r['passed']:>6} {failed:>6} {r['skipped']:>7} "
            f"{r['seconds']:>7.0f}  {r['log']}"
        )
        if r["rc"] != 0 or failed or not r["passed"]:
            problems.append(f"CPython {r['python']}: failed (see {r['log']})")
    for p in problems:
        print(f"pymatrix: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
