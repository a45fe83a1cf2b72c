"""Offline W1: ``-r F`` in each output mode, xdptcp beside tcpdump on the same pcap in one run.

Each repeat runs every command once, one after the other (so drift on the machine hits them
alike); a command's cost is the user + system CPU of its process (``os.wait4``'s rusage), start-up
included. Each is also run on a file with the same header and no record: its start-up alone,
from which the cost per packet is worked out. Output goes to /dev/null (text, JSON) or to a file
in a temporary directory (``-w``). The ratios divide xdptcp's median by the reference's median.

    python -m bench offline [--repeat 3] [--packets 1000000]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from bench.common import (
    PYTHON,
    ROOT,
    Target,
    compile_sources,
    load_average,
    median,
    ratio,
    say,
    table,
    targets_table,
)
from bench.traffic import w1_pcap

FILTER = "port 443"


def _cpu(argv: list[str], stdout_path: Optional[str]) -> float:
    """CPU seconds (user + system) of one run of ``argv``; raises if it fails."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have .pyc files: measure with them
    out = open(stdout_path or os.devnull, "wb")  # noqa: SIM115 (closed below)
    try:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {err.strip()}")
    finally:
        out.close()
    return usage.ru_utime + usage.ru_stime


def commands(pcap: Path, tmp: Path) -> dict[str, list[str]]:
    tcpdump = shutil.which("tcpdump") or "tcpdump"
    xdptcp = [PYTHON, "-m", "xdptcp"]
    f, w = str(pcap), str(tmp / "out.pcap")
    return {
        "tcpdump -nn -r F": [tcpdump, "-nn", "-r", f],
        "xdptcp -r F": [*xdptcp, "-r", f],
        "xdptcp -r F --json": [*xdptcp, "-r", f, "--json"],
        "tcpdump -r F -w OUT": [tcpdump, "-r", f, "-w", w],
        "xdptcp -r F -w OUT": [*xdptcp, "-r", f, "-w", w],
        f"tcpdump -r F -w OUT '{FILTER}'": [tcpdump, "-r", f, "-w", w, FILTER],
        f"xdptcp -r F -w OUT '{FILTER}'": [*xdptcp, "-r", f, "-w", w, FILTER],
    }


def run(repeat: int = 3, packets: int = 1_000_000) -> str:
    compile_sources()
    load = load_average()
    pcap = w1_pcap(packets)
    times: dict[str, list[float]] = {}
    starts: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        empty = Path(tmp) / "empty.pcap"  # the same file header, no record: start-up alone
        with open(pcap, "rb") as f:
            empty.write_bytes(f.read(24))
        cmds = commands(pcap, Path(tmp))
        for i in range(repeat):
            for name, argv in cmds.items():
                say(f"offline repeat {i + 1}/{repeat}: {name}")
                times.setdefault(name, []).append(_cpu(argv, None))
                bare = [str(empty) if a == str(pcap) else a for a in argv]
                starts.setdefault(name, []).append(_cpu(bare, None))
    m = {name: median(v) for name, v in times.items()}
    s = {name: median(v) for name, v in starts.items()}
    rows = [
        [name, m[name], s[name], (m[name] - s[name]) * 1e6 / packets, len(times[name])]
        for name in cmds
    ]
    text = table(
        f"Offline W1: {packets:,} frames, CPU s, median of {repeat} (load average before: {load})",
        ["command", "CPU s", "start-up s", "µs / packet", "runs"],
        rows,
    )
    tcpdump_text = m["tcpdump -nn -r F"]
    pairs = [
        ("-r F text vs tcpdump -nn -r F", m["xdptcp -r F"], tcpdump_text, 0.8),
        ("-r F -w OUT vs tcpdump -r F -w OUT", m["xdptcp -r F -w OUT"],
         m["tcpdump -r F -w OUT"], 3.0),
        (f"-r F -w OUT '{FILTER}' vs tcpdump's", m[f"xdptcp -r F -w OUT '{FILTER}'"],
         m[f"tcpdump -r F -w OUT '{FILTER}'"], 3.0),
        ("-r F --json vs tcpdump -nn -r F", m["xdptcp -r F --json"], tcpdump_text, 1.3),
    ]  # fmt: skip
    targets = [Target(name, ratio(a, b), limit, "x") for name, a, b, limit in pairs]
    return text + "\n" + targets_table("Offline targets (xdptcp CPU / tcpdump CPU)", targets)


if __name__ == "__main__":
    print(run())
