"""The kernel matrix: boot Debian's 6.1 and 6.12 kernels with virtme-ng and run the kernel-dependent
tests (marker ``kmatrix``) inside each, with this machine's filesystem as the guest's root.

    python tests/vm/kmatrix.py [--kernel VERSION]... [--serial] [-- pytest arguments]

Prints one table per kernel (test module, tests, passed, failed, skipped, seconds) and exits 1 if a
kernel did not boot, or a test failed or errored in a guest. ``make kmatrix`` runs it.

The guests run under TCG (``--disable-kvm``): on this machine kind nested KVM is far slower than
plain emulation. Python is 10-20x slower in such a guest than on the host, so the tests' timeouts
are multiplied by ``PYBPF_TEST_TIME_SCALE`` (see ``conftest.scaled``).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TIME_SCALE = 10
# One guest, boot to power-off; a guest that has not finished by then counts as failed. Under
# the whole matrix's hour (tests/test_kernel_matrix.py): guests took 1,700-1,760 s on this
# machine kind, and one over 2,400 s while the host ran slow.
GUEST_TIMEOUT = 3300
# The table lists this many of the slowest tests (where the matrix's minutes go).
SLOWEST = 10
# The shared directory must be under /tmp, the directory the guest gets read-write (--rwdir).
SHARED_TMP = "/tmp"


@dataclass(frozen=True)
class Kernel:
    version: str
    boot: Path  # holds vmlinuz-VERSION and config-VERSION

    @property
    def vmlinuz(self) -> Path:
        return self.boot / f"vmlinuz-{self.version}"


@dataclass
class Row:
    tests: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0


@dataclass
class Result:
    kernel: Kernel
    seconds: float = 0.0
    problem: str | None = None  # set when the guest gave no usable result
    modules: dict[str, Row] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    durations: list[tuple[float, str]] = field(default_factory=list)  # (seconds, test id)

    @property
    def total(self) -> Row:
        total = Row(seconds=self.seconds)
        for row in self.modules.values():
            total.tests += row.tests
            total.passed += row.passed
            total.failed += row.failed
            total.skipped += row.skipped
        return total

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.failures and self.total.tests > 0


def fetch_kernels() -> list[Kernel]:
    out = subprocess.run(
        ["bash", str(HERE / "kernels.sh"), "fetch"], check=True, capture_output=True, text=True
    )
    kernels = []
    for line in out.stdout.splitlines():
        version, boot = line.split()
        kernels.append(Kernel(version, Path(boot)))
    return kernels


# Parametrisations that cost a guest a minute each and ask nothing of the kernel that the kept
# ones do not: deselected in the guests (they run on the host like every test).
GUEST_DESELECT = [
    # Kept: inout with TSO (IPv4), in, out without TSO, inout without TSO over IPv6.
    "tests/test_egress.py::test_a_conversation_prints_tcpdumps_lines_for_each_direction[out-on-4]",
    "tests/test_egress.py::test_a_conversation_prints_tcpdumps_lines_for_each_direction[inout-off-4]",
    "tests/test_egress.py::test_a_conversation_prints_tcpdumps_lines_for_each_direction[inout-on-6]",
    # The filter itself is one program for both hooks, tested in the guest by test_filter_kernel.
    "tests/test_egress.py::test_filters_apply_to_both_directions[flags]",
    "tests/test_egress.py::test_filters_apply_to_both_directions[src]",
    # Both signals, both hooks: SIGINT on tcx, SIGTERM on clsact.
    "tests/test_egress.py::test_nothing_is_left_after_a_signal[tcx-SIGTERM]",
    "tests/test_egress.py::test_nothing_is_left_after_a_signal[clsact-SIGINT]",
    # auto is tcx or clsact, both run; test_tc_attach_auto_takes_tcx... checks auto's choice.
    "tests/test_tc.py::test_auto_attach_by_section_name_counts_each_hook[auto]",
    # pybpf run's argument errors, read before anything is loaded: the same on every kernel.
    *(
        f"tests/test_run_targets.py::test_bad_targets_are_one_line_errors[args{case}]"
        for case in (
            "1---attach nosuch=...: no program named",
            "2-the hook is ingress or egress",
            "3---attach tc_udp: expected PROGRAM=TARGET",
            "4-takes an interface alone",
            "5-no program could be attached (tc_udp, sock_udp (-i IFACE))",
            "8-target is fixed at load",
        )
    ),
    "tests/test_run_targets.py::test_a_proc_self_exe_section_without_exe_is_one_line",
]


def default_pytest_args() -> list[str]:
    deselect = [arg for test in GUEST_DESELECT for arg in ("--deselect", test)]
    return ["-m", "kmatrix", *deselect, *marked_modules()]


def marked_modules() -> list[str]:
    """The test modules that have kmatrix tests: collecting only those saves the guest from
    importing every other module (each import is slow there)."""
    tests = REPO / "tests"
    return sorted(
        str(p.relative_to(REPO)) for p in tests.glob("test_*.py") if "mark.kmatrix" in p.read_text()
    )


def precompile(modules: list[str]) -> None:
    """Write the bytecode the guests will need: they see the tree read-only, and compiling every
    module again in each Python a test starts costs seconds there. Also pytest's rewritten test
    modules, by collecting them once here."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    site = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    for cmd in (
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "pybpf", "xdptcp", "tests", *site],
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--collect-only",
            "-p",
            "no:cacheprovider",
            *modules,
        ],
    ):
        subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, check=False)


def find_vng() -> str | None:
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.exists() else shutil.which("vng")


def vng_command(vng: str, kernel: Kernel, out: Path, pytest_args: list[str]) -> list[str]:
    # The guest runs its own copy: bash reads a script as it goes, and the tree may change.
    shutil.copy(HERE / "guest.sh", out / "guest.sh")
    # pytest's arguments go in a file: virtme-ng hands the guest its command on the kernel's
    # command line, which the kernel cuts at 2048 bytes (a guest given more never runs it).
    (out / "pytest-args").write_text("".join(f"{arg}\n" for arg in pytest_args))
    guest = [
        "bash",
        str(out / "guest.sh"),
        str(REPO),
        str(out),
        str(kernel.boot),
        os.environ.get("CI", ""),
        str(TIME_SCALE),
        str(GUEST_TIMEOUT - 360),  # booting takes up to minutes on a busy machine
    ]
    # A second, read-only export of the host's root, which guest.sh mounts with caching on.
    cached_root = (
        "-fsdev local,id=pybpfhost,path=/,security_model=none,readonly=on,multidevs=remap "
        "-device virtio-9p-pci,fsdev=pybpfhost,mount_tag=pybpfhost"
    )
    return [
        vng,
        "--run",
        str(kernel.vmlinuz),
        "--disable-kvm",
        "--force-9p",
        "--rwdir",
        SHARED_TMP,
        "--memory",
        "2G",
        "--cpus",
        "2",
        f"--qemu-opts={cached_root}",
        "--",
        shlex.join(guest),
    ]


def run_guest(vng: str, kernel: Kernel, pytest_args: list[str]) -> Result:
    result = Result(kernel)
    out = Path(tempfile.mkdtemp(prefix=f"pybpf-kmatrix-{kernel.version}-", dir=SHARED_TMP))
    env = dict(os.environ, PATH=f"{Path(vng).parent}:{os.environ.get('PATH', '')}")
    start = time.monotonic()
    with open(out / "console.log", "wb") as console:
        proc = subprocess.Popen(
            vng_command(vng, kernel, out, pytest_args),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # qemu with it, so a timeout ends both
        )
        try:
            proc.wait(GUEST_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            result.problem = f"guest still running after {GUEST_TIMEOUT} s"
    result.seconds = time.monotonic() - start
    read_results(result, out)
    if result.ok:
        shutil.rmtree(out, ignore_errors=True)
    else:
        result.problem = result.problem or "tests failed"
        result.problem += f" (logs in {out})"
    return result


def read_results(result: Result, out: Path) -> None:
    junit = out / "junit.xml"
    if not junit.exists() and (out / "pytest.log").exists():
        read_progress(result, out / "pytest.log")
    if not junit.exists():
        said = ""
        for log in ("guest.log", "console.log"):
            lines = (
                (out / log).read_text(errors="replace").splitlines() if (out / log).exists() else []
            )
            said = said or " | ".join(lines[-3:])
        result.problem = result.problem or (
            "pytest did not finish (counts from its log)"
            if result.modules
            else "the guest did not boot or ran no test"
        )
        result.problem += f": {said}" if said else ""
        return
    rc = (out / "rc").read_text().strip() if (out / "rc").exists() else "?"
    if rc not in ("0", "1"):  # 1: tests failed, listed below; anything else: pytest did not finish
        result.problem = (
            result.problem or f"pytest exited {rc} (2: interrupted, by the time limit or errors)"
        )
    for case in ET.parse(junit).iter("testcase"):
        # A module that failed to import is reported with its path as the name, no class.
        module = (case.get("classname") or case.get("name", "?")).split(".")[-1]
        row = result.modules.setdefault(module, Row())
        row.tests += 1
        row.seconds += float(case.get("time", 0))
        result.durations.append((float(case.get("time", 0)), f"{module}::{case.get('name')}"))
        outcome = {child.tag for child in case}
        if outcome & {"failure", "error"}:
            # A test that passed and then errored in teardown appears twice: count the test once.
            row.failed += 1
            result.failures.append(f"{case.get('classname')}::{case.get('name')}")
        elif "skipped" in outcome:
            row.skipped += 1
        else:
            row.passed += 1


def read_progress(result: Result, log: Path) -> None:
    """The outcomes pytest -v printed so far, for a guest stopped before it wrote junit.xml."""
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"(tests/\S+?)\.py::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", line)
        if not m:
            continue
        row = result.modules.setdefault(m.group(1).split("/")[-1], Row())
        row.tests += 1
        if m.group(3) == "PASSED":
            row.passed += 1
        elif m.group(3) == "SKIPPED":
            row.skipped += 1
        else:
            row.failed += 1
            result.failures.append(f"{m.group(1)}.py::{m.group(2)}")


def table(result: Result) -> str:
    header = ("module", "tests", "passed", "failed", "skipped", "seconds")
    rows = [
        (name, r.tests, r.passed, r.failed, r.skipped, f"{r.seconds:.1f}")
        for name, r in sorted(result.modules.items())
    ]
    t = result.total
    rows.append(
        ("total (boot to power-off)", t.tests, t.passed, t.failed, t.skipped, f"{t.seconds:.1f}")
    )
    width = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [f"kernel {result.kernel.version}"]
    for i, row in enumerate([header, *rows]):
        cells = [str(row[0]).ljust(width[0])] + [
            str(c).rjust(w) for c, w in zip(row[1:], width[1:])
        ]
        lines.append("  " + "  ".join(cells))
        if i == 0 or i == len(rows) - 1:
            lines.append("  " + "  ".join("-" * w for w in width))
    slowest = sorted(result.durations, reverse=True)[:SLOWEST]
    if slowest:
        lines.append(f"  the {len(slowest)} slowest tests:")
        lines.extend(f"  {seconds:8.1f} s  {name}" for seconds, name in slowest)
    lines.extend(f"  FAILED {name}" for name in result.failures)
    if result.problem:
        lines.append(f"  PROBLEM {result.problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", action="append", help="only this kernel version (repeatable)")
    parser.add_argument("--serial", action="store_true", help="one guest after the other")
    parser.add_argument("pytest_args", nargs="*", help="default: -m kmatrix")
    args = parser.parse_args(argv)

    vng = find_vng()
    if vng is None:
        print("kmatrix: vng (virtme-ng) is not installed: run `make venv`", file=sys.stderr)
        return 1
    try:
        kernels = fetch_kernels()
    except subprocess.CalledProcessError as e:
        print(f"kmatrix: cannot fetch the kernels: {e.stderr.strip()}", file=sys.stderr)
        return 1
    if args.kernel:
        kernels = [k for k in kernels if k.version in args.kernel]
    pytest_args = args.pytest_args or default_pytest_args()
    precompile([a for a in pytest_args if a.startswith("tests/") and "::" not in a])

    start = time.monotonic()
    results: dict[str, Result] = {}

    def one(kernel: Kernel) -> None:
        results[kernel.version] = run_guest(vng, kernel, pytest_args)
        print(table(results[kernel.version]), end="\n\n", flush=True)

    if args.serial:
        for kernel in kernels:
            one(kernel)
    else:
        threads = [threading.Thread(target=one, args=(k,)) for k in kernels]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ok = all(r.ok for r in results.values()) and len(results) == len(kernels)
    print(
        f"kmatrix: {len(kernels)} kernels in {time.monotonic() - start:.0f} s: "
        + ("ok" if ok else "FAILED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
