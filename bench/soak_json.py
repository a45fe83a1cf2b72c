"""Soak of ``xdptcp --json`` to a file under a W1-like flood, for minutes, run by hand.

The W1 pcap (bench.traffic: 64 TCP flows, options, payloads up to 700 bytes) is replayed at top
speed in an endless loop (``tcpreplay --loop=0 --duration``) into a veth pair while
``xdptcp -i OUTER --json`` writes to a file. Once a second the tool's resident set (VmRSS) is
sampled; once a minute a row shows it with the file's size. At the end xdptcp is stopped with
SIGINT and its exit summary is checked:

- captured + dropped (ring full) == received by filter (every W1 frame is TCP, no filter),
- received by filter == the frames tcpreplay sent, less what the veth itself dropped,
- the file holds exactly ``captured`` JSON lines, the first and last of which parse,
- exit status 0, no XDP program left on the interface.

    python -m bench.soak_json [--minutes 10] [--frames 200000]

Not run in CI: ten minutes at top speed writes tens of gigabytes (the file is removed at the
end); the run refuses to start with less than ``--min-free-gb`` free where the file goes.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from bench.common import (
    PYTHON,
    Tool,
    compile_sources,
    load_average,
    make_hosts,
    rss_kb,
    say,
    table,
    xdp_attached,
)
from bench.traffic import w1_pcap

READY = "xdptcp: capturing on"
SUMMARY = {
    "captured": r"(\d+) packets? captured",
    "received": r"(\d+) packets? received by filter",
    "dropped": r"(\d+) packets? dropped by kernel",
}


def summary(stderr: str) -> dict[str, Optional[int]]:
    out: dict[str, Optional[int]] = {}
    for key, pattern in SUMMARY.items():
        m = re.search(pattern, stderr)
        out[key] = int(m.group(1)) if m else None
    return out


def count_lines(path: Path) -> tuple[int, Optional[str], Optional[str]]:
    """(lines, first line, last line) of a file too big to hold in memory."""
    n, first, last, tail = 0, None, None, b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
            if first is None:
                first = chunk.split(b"\n", 1)[0].decode()
            tail = (tail + chunk)[-8192:]
    if n:
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()
    return n, first, last


def replayer(hosts, pcap: Path, seconds: int) -> subprocess.Popen:
    argv = ["tcpreplay", "-i", hosts.inner, "--topspeed", "--preload-pcap", "--loop=0",
            f"--duration={seconds}", str(pcap)]  # fmt: skip
    return subprocess.Popen(
        hosts.in_ns(*argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def sent_by(output: str) -> int:
    m = re.search(r"Successful packets:\s+(\d+)", output)
    if not m:
        raise RuntimeError(f"tcpreplay: unexpected output: {output[-500:]}")
    return int(m.group(1))


def run(minutes: float, frames: int, min_free_gb: float) -> tuple[str, bool]:
    compile_sources()
    seconds = max(10, round(minutes * 60))
    pcap = w1_pcap(frames)
    load = load_average()
    hosts = make_hosts("j")
    rows, ok = [], True
    try:
        with tempfile.TemporaryDirectory(prefix="bench-soak-json-") as tmp:
            free_gb = shutil.disk_usage(tmp).free / 1e9
            if free_gb < min_free_gb:
                raise RuntimeError(f"only {free_gb:.0f} GB free in {tmp} (need {min_free_gb})")
            out = Path(tmp) / "soak.json"
            with open(out, "wb") as sink:
                tool = Tool([PYTHON, "-m", "xdptcp", "-i", hosts.outer, "--json"], stdout=sink)
            try:
                tool.wait_ready(READY)
                before = hosts.link_stats()
                rss0 = rss_kb(tool.pid) or 0
                say(f"soak: {seconds} s of W1 at top speed into xdptcp --json > {out}")
                replay = replayer(hosts, pcap, seconds)
                samples: list[int] = []
                start = time.monotonic()
                every = min(60.0, seconds / 10)  # a row a minute; ten rows in a short run
                next_row = every
                while replay.poll() is None:
                    time.sleep(1.0)
                    kb = rss_kb(tool.pid)
                    if kb is None:
                        raise RuntimeError(f"xdptcp died: {tool.stderr_text()[-500:]}")
                    samples.append(kb)
                    elapsed = time.monotonic() - start
                    if elapsed >= next_row:
                        next_row += every
                        size = out.stat().st_size / 1e9
                        rows.append([f"{elapsed:.0f} s", f"{kb / 1024:.1f}",
                                     f"{max(samples) / 1024:.1f}", f"{size:.2f}"])  # fmt: skip
                        say(f"soak: {rows[-1]}")
                sent = sent_by(replay.stdout.read())
                after = hosts.link_stats()
                veth_drops = sum(
                    after[k] - before[k] for k in ("outer_rx_dropped", "inner_tx_dropped")
                )
                time.sleep(2.0)  # let the tool drain the ring
            finally:
                res = tool.stop(timeout=120)
            lines, first, last = count_lines(out)
            attached_after = xdp_attached(hosts.outer)
    finally:
        hosts.remove()
    s = summary(res.stderr)
    checks = {
        "exit status 0": res.returncode == 0,
        "captured + dropped == received": None not in s.values()
        and s["captured"] + s["dropped"] == s["received"],
        "received == sent - veth drops": s["received"] == sent - veth_drops,
        "file lines == captured": lines == s["captured"],
        "first and last lines are JSON": _json(first) and _json(last),
        "no XDP program left": not attached_after,
    }
    ok = all(checks.values())
    growth = (samples[-1] - samples[0]) / 1024 if samples else 0.0
    text = "\n".join([
        table(f"xdptcp --json soak, {seconds} s of W1 at top speed (load average {load})",
              ["elapsed", "RSS MB", "max RSS MB", "file GB"], rows),  # fmt: skip
        table("counts", ["sent", "veth drops", "received by filter", "captured", "dropped",
                         "JSON lines"],
              [[sent, veth_drops, s["received"], s["captured"], s["dropped"], lines]]),  # fmt: skip
        table("memory", ["RSS at start MB", "first sample MB", "last sample MB", "growth MB",
                         "max MB"],
              [[f"{rss0 / 1024:.1f}", f"{samples[0] / 1024:.1f}", f"{samples[-1] / 1024:.1f}",
                f"{growth:+.1f}", f"{max(samples) / 1024:.1f}"]]),  # fmt: skip
        table("checks", ["check", "result"],
              [[k, "ok" if v else "FAILED"] for k, v in checks.items()]),
    ])  # fmt: skip
    if res.returncode != 0:
        text += f"\nxdptcp stderr:\n{res.stderr}"
    return text, ok


def _json(line: Optional[str]) -> bool:
    try:
        return line is not None and isinstance(json.loads(line), dict)
    except ValueError:
        return False


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.soak_json", description=__doc__.split("\n")[0]
    )
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--frames", type=int, default=200_000, help="W1 frames per loop of the pcap")
    p.add_argument("--min-free-gb", type=float, default=40.0)
    args = p.parse_args(argv)
    # Ctrl-C: the finally blocks stop the tool and remove the hosts.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    text, ok = run(args.minutes, args.frames, args.min_free_gb)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
