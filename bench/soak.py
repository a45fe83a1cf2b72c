"""Soak: ten million frames through a running xdptcp in each output mode (``-w``, text,
``--json``), its resident set sampled every second.

The W1 pcap is replayed in a loop (``tcpreplay --loop``) until the frame count is reached. RSS is
VmRSS from /proc/PID/status, once a second from the moment xdptcp is ready until it is stopped;
"start" is the first sample after its "capturing on" line (attached, before any traffic), "end"
the last one before SIGINT. Growth is end - start: what a leak would show. Max - start is shown
beside it.

    python -m bench soak [--packets 10000000]
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from bench.common import (
    PYTHON,
    Target,
    Tool,
    ToolRun,
    compile_sources,
    load_average,
    make_hosts,
    object_id,
    say,
    table,
    targets_table,
)
from bench.traffic import count_pcap_records, w1_pcap
from bench.w1_flood import XDPTCP_READY, Replay, own_drops, replay

W1_FRAMES = 1_000_000


HEADER = ["mode", "offered", "captured", "captured %", "tool drops", "replay s", "CPU s",
          "samples", "start MB", "max MB", "end MB", "growth MB", "max - start MB"]  # fmt: skip
# Output modes: the extra arguments, and whether the output is a pcap file (else lines).
MODES = {"-w": True, "text": False, "--json": False}


@dataclass
class Soak:
    mode: str
    tool: Tool
    res: ToolRun
    replay: Replay
    captured: Optional[int]


def run(packets: int = 10_000_000, modes: Sequence[str] = tuple(MODES)) -> str:
    compile_sources()
    per_loop = min(packets, W1_FRAMES)
    loops = max(1, -(-packets // per_loop))
    pcap = w1_pcap(per_loop)
    load = load_average()
    soaks = []
    for mode in modes:
        hosts = make_hosts("s")
        try:
            with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
                soaks.append(soak_one(mode, hosts, pcap, loops, per_loop, Path(tmp)))
        finally:
            hosts.remove()
    return report(soaks, load)


def soak_one(mode: str, hosts, pcap: Path, loops: int, per_loop: int, tmp: Path) -> Soak:
    """One running xdptcp in ``mode`` through the whole replay. Text and JSON lines go to
    /dev/null (billions of bytes otherwise); they are counted by xdptcp's own summary."""
    out = tmp / "soak.pcap"
    extra = {"-w": ["-w", str(out)], "text": [], "--json": ["--json"]}[mode]
    argv = [PYTHON, "-m", "xdptcp", "-i", hosts.outer, *extra]
    with open(os.devnull, "wb") as devnull:
        tool = Tool(argv, stdout=devnull, sample_rss=True)
        try:
            tool.wait_ready(XDPTCP_READY)
            time.sleep(1.5)  # at least one RSS sample before traffic
            say(f"soak: replaying {per_loop:,} frames x {loops} into xdptcp {mode}")
            r = replay(hosts, pcap, loops=loops)
            tool.wait_idle()
            time.sleep(1.0)  # one more sample once drained
        finally:
            res = tool.stop()
    if MODES[mode]:
        captured = count_pcap_records(out) if out.exists() else None
    else:
        m = re.search(r"(\d+) packets? captured", res.stderr)
        captured = int(m.group(1)) if m else None
    return Soak(mode, tool, res, r, captured)


def report(soaks: list[Soak], load: str) -> str:
    rows, targets, notes = [], [], ""
    for s in soaks:
        # Between the ready line and SIGINT: after SIGINT xdptcp unmaps its ring, frees memory.
        ready, stopped = s.tool.ready_at or 0.0, s.tool.stopped_at or float("inf")
        samples = [kb for t, kb in s.res.rss_samples if ready <= t < stopped]
        if not samples:
            raise RuntimeError(f"xdptcp {s.mode}: no RSS samples ({s.res.stderr.strip()[-300:]})")
        start, peak, end = samples[0] / 1024, max(samples) / 1024, samples[-1] / 1024
        r = s.replay
        rows.append([f"xdptcp {s.mode}", r.sent, s.captured, _pct(s.captured, r.sent),
                     own_drops(s.res.stderr), r.seconds, s.res.cpu_s, len(samples), start, peak,
                     end, end - start, peak - start])  # fmt: skip
        notes += f"\nxdptcp {s.mode}, RSS MB, one sample a second: "
        notes += " ".join(f"{kb / 1024:.1f}" for kb in samples) + "\n"
        if s.res.returncode != 0:
            notes += f"\nxdptcp {s.mode} exited with {s.res.returncode}: "
            notes += s.res.stderr.strip()[-300:] + "\n"
        growth = f"xdptcp {s.mode} RSS growth (end - start)"
        targets.append(Target(growth, end - start, 5.0, " MB"))
    sent = max((s.replay.sent for s in soaks), default=0)
    title = (
        f"Soak: {sent:,} frames through xdptcp in each output mode (load average before: "
        f"{load}; xdptcp.bpf.o {object_id()})"
    )
    text = table(title, HEADER, rows) + notes
    return text + "\n" + targets_table("Soak targets", targets)


def _pct(part: Optional[int], whole: int) -> Optional[str]:
    return None if part is None or not whole else f"{100.0 * part / whole:.2f}%"
