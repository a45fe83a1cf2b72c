"""What every benchmark shares: test hosts, measuring a tool's process, medians, tables, targets.

A benchmark here runs real programs (tcpdump, xdpdump, xdptcp, tcpreplay) against a veth pair whose
inner end lives in a network namespace made for the run. Everything started is stopped and
everything created is removed in ``finally`` blocks, so Ctrl-C or a failing tool leaves no
namespace, link, XDP program or process behind.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
_names = itertools.count()


def cpython(minor: int) -> Optional[str]:
    """A CPython 3.minor on this machine: pyenv's newest first, else ``python3.minor`` on the
    PATH."""
    import glob
    import shutil

    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(f"{pyenv}/versions/3.{minor}.*/bin/python3"),
                   key=lambda p: int(p.split(f"/3.{minor}.")[1].split("/")[0]))  # fmt: skip
    return found[-1] if found else shutil.which(f"python3.{minor}")


def private_bpffs() -> bool:
    """Give this process a bpffs of its own at /sys/fs/bpf, in a mount namespace of its own;
    False where it cannot (not root, or no CAP_SYS_ADMIN, as in some containers).

    What is pinned or mounted there from then on (pybpf's pins, bpftool's and iproute2's
    bpffs mounts, iproute2's tc/ and xdp/ directories) belongs to this process and the ones it
    starts, which inherit the namespace, and goes with them: the host's bpffs, or its absence
    on a freshly booted machine, is left exactly as it was. The test session (tests/conftest.py)
    and the benchmarks (bench/__main__.py) both run in one."""
    if os.geteuid() != 0:
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private = 0x00020000, 0x4000, 0x40000
    if libc.unshare(clone_newns) != 0:
        return False
    # Private, not slave: a bpffs the host mounts later must not land on top of ours.
    if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
        raise OSError(ctypes.get_errno(), "cannot make the mount namespace private")
    if libc.mount(b"bpf", b"/sys/fs/bpf", b"bpf", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "cannot mount a bpffs of our own at /sys/fs/bpf")
    return True


def say(msg: str) -> None:
    """Progress goes to stderr so that stdout carries only the tables."""
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def compile_sources() -> None:
    """Write the .pyc files an installed package has, before any xdptcp or pybpf process is
    measured. Without them (a fresh clone run with PYTHONDONTWRITEBYTECODE=1, as some shells
    set it) each process compiles the modules it imports from source: at its start, and, for
    the modules a capture imports at its first packet, while packets arrive (W1 live text on a
    fresh clone here: 1.98 against 1.75 µs of CPU a captured packet, 98.8 against 100 %
    captured, start-up 0.16 against 0.10 s)."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", "pybpf", "xdptcp"], cwd=ROOT, check=True)


# --- test hosts ----------------------------------------------------------------------------------


@dataclass
class Hosts:
    """A veth pair: ``outer`` in the root namespace (where the tools capture), ``inner`` in ``ns``.

    Frames sent from inside ``ns`` on ``inner`` arrive on ``outer`` and run its XDP program.
    Addresses come only from 198.18.0.0/15 and 2001:db8::/32.
    """

    ns: str
    outer: str
    inner: str
    outer_addr: str = ""  # the outer end's IPv4 address (make_hosts gives it one)

    def in_ns(self, *args: str) -> list[str]:
        """A command line that runs ``args`` inside the namespace."""
        return ["ip", "netns", "exec", self.ns, *args]

    def link_stats(self) -> dict[str, int]:
        """Drop counters on both ends: frames lost on the veth itself, before any tool saw them."""
        out = _read_stat(self.outer, "rx_dropped")
        inner = sh(*self.in_ns("cat", f"/sys/class/net/{self.inner}/statistics/tx_dropped"))
        return {
            "outer_rx_dropped": out,
            "inner_tx_dropped": int(inner.stdout),
            "backlog_dropped": backlog_drops(),
        }

    def remove(self) -> None:
        sh("ip", "link", "del", self.outer, check=False)
        sh("ip", "netns", "del", self.ns, check=False)

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def backlog_drops() -> int:
    """Frames dropped because a CPU's input backlog was full (/proc/net/softnet_stat, column 2).

    Without XDP, veth hands each frame to netif_rx; a full backlog drops it there, where no
    interface counter sees it.
    """
    lines = Path("/proc/net/softnet_stat").read_text().splitlines()
    return sum(int(line.split()[1], 16) for line in lines)


def _read_stat(dev: str, name: str) -> int:
    return int(Path(f"/sys/class/net/{dev}/statistics/{name}").read_text())


def make_hosts(tag: str, mtu: int = 1500) -> Hosts:
    """Namespace + veth pair, both ends up, IPv4 addresses in 198.19.0.0/16 (the half of
    198.18.0.0/15 the tests, which take 198.18.N.0/24, never use: a benchmark beside a test run
    routes no subnet twice).

    The MTU stays at 1500: veth refuses a non-frags XDP program (ERANGE) when the peer MTU
    exceeds a page minus headroom, and the W1 frames are at most 714 bytes. IPv6 is disabled on
    both ends, so the kernel's own neighbour discovery stays quiet during a measurement.
    """
    uid = f"{os.getpid() % 10000}{next(_names)}"
    subnet = 200 + (os.getpid() + int(uid[-1])) % 50
    hosts = Hosts(ns=f"bench{tag}{uid}", outer=f"bn{tag}{uid}o"[:15], inner=f"bn{tag}{uid}i"[:15],
                  outer_addr=f"198.19.{subnet}.1")  # fmt: skip
    try:
        sh("ip", "netns", "add", hosts.ns)
        sh(
            "ip",
            "link",
            "add",
            hosts.outer,
            "mtu",
            str(mtu),
            "type",
            "veth",
            "peer",
            "name",
            hosts.inner,
            "mtu",
            str(mtu),
        )
        sh("ip", "link", "set", hosts.inner, "netns", hosts.ns)
        for dev, run in ((hosts.outer, []), (hosts.inner, hosts.in_ns())):
            sh(*run, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
        sh("ip", "addr", "add", f"{hosts.outer_addr}/24", "dev", hosts.outer)
        sh(*hosts.in_ns("ip", "addr", "add", f"198.19.{subnet}.2/24", "dev", hosts.inner))
        sh("ip", "link", "set", hosts.outer, "up")
        sh(*hosts.in_ns("ip", "link", "set", hosts.inner, "up"))
    except BaseException:
        hosts.remove()
        raise
    return hosts


def xdp_attached(dev: str) -> bool:
    return "xdp" in sh("ip", "-o", "link", "show", "dev", dev, check=False).stdout


# --- measuring a process -------------------------------------------------------------------------


def cpu_seconds(pid: int, children: bool = False) -> float:
    """user + system CPU time of ``pid`` from /proc/PID/stat (fields 14-17), in seconds.

    With ``children``, the time of reaped children (cutime + cstime) is added.
    """
    return sum(user_system_seconds(pid, children))


def user_system_seconds(pid: int, children: bool = False) -> tuple[float, float]:
    """``cpu_seconds`` as its two parts: the time ``pid`` ran its own code (user) and the time
    the kernel ran for it, in its system calls and faults (system)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    if children:
        utime, stime = utime + cutime, stime + cstime
    return utime / CLK_TCK, stime / CLK_TCK


def peak_rss_kb(pid: int) -> Optional[int]:
    """VmHWM (the resident set's high-water mark) of a live process, in KiB; None once it exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def rss_kb(pid: int) -> Optional[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


@dataclass
class ToolRun:
    """What a finished tool reported and used."""

    returncode: int
    cpu_s: float
    peak_rss_kb: int
    stderr: str
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    system_s: Optional[float] = None  # of cpu_s, the kernel's time in the tool's system calls


class Tool:
    """A capture tool started in the background: wait until it is ready, stop it, measure it.

    CPU time is read from /proc/PID/stat of the exited but not yet reaped process (a zombie keeps
    its final utime/stime), so the work done while draining after SIGINT is counted too, with
    that of any children the tool started and waited for. Peak RSS
    is VmHWM, sampled until the process exits (a zombie has no memory to report).
    """

    def __init__(
        self,
        argv: Sequence[str],
        stdout: Optional[IO] = None,
        sample_rss: bool = False,
        cpus: Optional[list[int]] = None,
    ):
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            pinned(self.argv, cpus),
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C on the terminal reaches us, not the tool
        )
        self._err: list[str] = []
        self._err_lock = threading.Condition()
        self._hwm = 0
        self._rss: list[tuple[float, int]] = []
        self._sample_rss = sample_rss
        self._t0 = time.monotonic()
        self._done = threading.Event()
        self._result: Optional[ToolRun] = None
        self.ready_at: Optional[float] = None  # seconds after start when the ready line came
        self.stopped_at: Optional[float] = None  # seconds after start when SIGINT was sent
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        threading.Thread(target=self._sample, daemon=True).start()

    @property
    def name(self) -> str:
        """The tool's name for messages: ``xdptcp`` for ``python -m xdptcp``."""
        if len(self.argv) > 2 and self.argv[1] == "-m":
            return self.argv[2]
        return os.path.basename(self.argv[0])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._err_lock:
                self._err.append(raw.decode(errors="replace"))
                self._err_lock.notify_all()
        with self._err_lock:
            self._done.set()
            self._err_lock.notify_all()

    def _sample(self) -> None:
        while not self._done.is_set() and self.proc.returncode is None:
            hwm = peak_rss_kb(self.pid)
            if hwm is None:
                return
            self._hwm = max(self._hwm, hwm)
            if self._sample_rss:
                rss = rss_kb(self.pid)
                if rss is not None:
                    self._rss.append((time.monotonic() - self._t0, rss))
                time.sleep(1.0)
            else:
                time.sleep(0.05)

    def stderr_text(self) -> str:
        with self._err_lock:
            return "".join(self._err)

    def wait_ready(self, marker: str, timeout: float = 20.0) -> None:
        """Block until ``marker`` appears on the tool's stderr; raise with its stderr if it died."""
        deadline = time.monotonic() + timeout
        with self._err_lock:
            while marker not in "".join(self._err):
                left = deadline - time.monotonic()
                if self._done.is_set() or left <= 0:
                    self.stop()
                    why = "exited" if self._done.is_set() else f"not ready after {timeout:.0f} s"
                    raise RuntimeError(
                        f"{self.name} {why} (waiting for {marker!r}): {''.join(self._err)}"
                    )
                self._err_lock.wait(min(left, 0.1))
        self.ready_at = time.monotonic() - self._t0

    def cpu(self) -> float:
        return cpu_seconds(self.pid, children=True)

    def wait_idle(
        self, settle: float = 2.0, quiet: float = 0.5, threshold: float = 0.02, limit: float = 60.0
    ) -> None:
        """Give the tool time to drain: wait at least ``settle`` seconds, then until it used less
        than ``threshold`` CPU seconds during ``quiet`` seconds of wall time (at most ``limit``).

        The floor matters for libpcap: with TPACKET_V3 a partly filled block is handed to user
        space only when its timeout (tcpdump: 1 s) expires, and tcpdump exits on SIGINT without
        reading it, so stopping it earlier loses the last few hundred packets.
        """
        deadline = time.monotonic() + limit
        time.sleep(settle)
        last = self.cpu()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.cpu()
            if now - last < threshold:
                return
            last = now

    def stop(self, timeout: float = 60.0) -> ToolRun:
        """SIGINT, wait for the exit, read the final CPU time from the zombie, then reap it.

        Calling it again returns the same result.
        """
        if self._result is not None:
            return self._result
        if self.stopped_at is None:
            self.stopped_at = time.monotonic() - self._t0
        if self.proc.returncode is None:
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while True:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
            time.sleep(0.01)
        self._done.set()
        user, system = user_system_seconds(self.pid, children=True)
        rc = self.proc.wait()
        self._drain_stderr()
        self._result = ToolRun(
            rc, user + system, self._hwm, self.stderr_text(), list(self._rss), system
        )
        return self._result

    def _drain_stderr(self) -> None:
        # The reader thread ends on EOF, which comes right after the exit.
        self._reader.join(timeout=2.0)

    def kill(self) -> None:
        """On an error path: make sure the tool is gone (its XDP program with it)."""
        try:
            self.stop(timeout=10)
        except (ProcessLookupError, ChildProcessError):
            pass


def cpu_split() -> tuple[Optional[list[int]], Optional[list[int]]]:
    """(the sender's CPUs, the capture tool's CPUs): disjoint, so that the receive path's
    softirq work, which runs on the sending CPU, is not charged to the tool being measured.

    On veth the receive side's work (XDP, AF_PACKET's copy) runs in a softirq on the CPU that
    sent the frame, and CPU time is sampled at the tick: whatever process runs on that CPU is
    charged for it. With the sender and the tool on the same CPU the tool's figure moves with
    the sender's rate. ``(None, None)`` (no pinning) on a single-CPU machine or when
    ``BENCH_PIN=0``."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or os.environ.get("BENCH_PIN", "1") == "0":
        return None, None
    return cpus[:1], cpus[1:]


def pinned(argv: Sequence[str], cpus: Optional[list[int]]) -> list[str]:
    """``argv`` run on ``cpus`` (``taskset``), or as it is when ``cpus`` is None."""
    if cpus is None:
        return list(argv)
    return ["taskset", "-c", ",".join(map(str, cpus)), *argv]


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews every number here.

    Says so on stderr when the machine is busy (more than half a CPU's worth of other work).
    """
    load = Path("/proc/loadavg").read_text().split()[0]
    if float(load) > 0.5:
        say(f"the machine is busy (load average {load}): expect noisy numbers")
    return load


XDPTCP_OBJECT = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"


def object_id(path: Path = XDPTCP_OBJECT) -> str:
    """The first 12 hex digits of an object's sha256: which build of the program was measured."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError:
        return "missing"


# --- numbers and tables --------------------------------------------------------------------------


def median(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table; numbers right-aligned. Also valid Markdown (for bench/README.md)."""
    cells = [[str(h) for h in header]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_looks_numeric(r[i]) for r in cells[1:]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric))
        + "|"
    )
    return "\n".join([f"### {title}", "", line(cells[0]), rule, *map(line, cells[1:]), ""])


_NUM = re.compile(r"^[-+]?[\d,]*\.?\d+(%|x| ms| ns| s)?$|^-$")


def _looks_numeric(text: str) -> bool:
    return bool(_NUM.match(text))


@dataclass
class Target:
    """One line of the issue's targets: a measured value against a limit."""

    name: str
    measured: Optional[float]
    limit: float
    unit: str = ""
    higher_is_better: bool = False

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return "n/a"
        ok = self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit
        return "PASS" if ok else "FAIL"

    def row(self) -> list[object]:
        op = ">=" if self.higher_is_better else "<="
        return [
            self.name,
            _with_unit(self.measured, self.unit),
            f"{op} {self.limit:g}{self.unit}",
            self.verdict,
        ]


def _with_unit(value: Optional[float], unit: str) -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def targets_table(title: str, targets: Sequence[Target]) -> str:
    return table(title, ["target", "measured", "limit", "verdict"], [t.row() for t in targets])
