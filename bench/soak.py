"""Soak: ten million frames through a running ``xdptcp -w``, its resident set sampled every second.

The W1 pcap is replayed in a loop (``tcpreplay --loop``) until the frame count is reached. RSS is
VmRSS from /proc/PID/status, once a second from the moment xdptcp is ready until it is stopped;
"start" is the first sample after its "capturing on" line (attached, before any traffic), "end"
the last one before SIGINT. Growth is end - start: what a leak would show. Max - start is shown
beside it.

    python -m bench soak [--packets 10000000]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional

from bench.common import (
    PYTHON,
    Target,
    Tool,
    ToolRun,
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


HEADER = ["offered", "captured", "captured %", "tool drops", "replay s", "CPU s", "samples",
          "start MB", "max MB", "end MB", "growth MB", "max - start MB"]  # fmt: skip


def run(packets: int = 10_000_000) -> str:
    per_loop = min(packets, W1_FRAMES)
    loops = max(1, -(-packets // per_loop))
    pcap = w1_pcap(per_loop)
    load = load_average()
    hosts = make_hosts("s")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
            out = Path(tmp) / "soak.pcap"
            argv = [PYTHON, "-m", "xdptcp", "-i", hosts.outer, "-w", str(out)]
            tool = Tool(argv, sample_rss=True)
            try:
                tool.wait_ready(XDPTCP_READY)
                time.sleep(1.5)  # at least one RSS sample before traffic
                say(f"soak: replaying {per_loop:,} frames x {loops} into xdptcp -w")
                r = replay(hosts, pcap, loops=loops)
                tool.wait_idle()
                time.sleep(1.0)  # one more sample once drained
            finally:
                res = tool.stop()
            captured = count_pcap_records(out) if out.exists() else None
    finally:
        hosts.remove()
    return report(tool, res, r, captured, load)


def report(tool: Tool, res: ToolRun, r: Replay, captured: Optional[int], load: str) -> str:
    # Between the ready line and SIGINT: after SIGINT xdptcp unmaps its ring and frees memory.
    ready, stopped = tool.ready_at or 0.0, tool.stopped_at or float("inf")
    samples = [kb for t, kb in res.rss_samples if ready <= t < stopped]
    if not samples:
        raise RuntimeError(f"xdptcp: no RSS samples (stderr: {res.stderr.strip()[-300:]})")
    start, peak, end = samples[0] / 1024, max(samples) / 1024, samples[-1] / 1024
    row = [r.sent, captured, _pct(captured, r.sent), own_drops(res.stderr), r.seconds, res.cpu_s,
           len(samples), start, peak, end, end - start, peak - start]  # fmt: skip
    title = (
        f"Soak: {r.sent:,} frames through xdptcp -w (load average before: {load}; "
        f"xdptcp.bpf.o {object_id()})"
    )
    text = table(title, HEADER, [row])
    text += "\nRSS MB, one sample a second: " + " ".join(f"{kb / 1024:.1f}" for kb in samples)
    text += "\n"
    if res.returncode != 0:
        text += f"\nxdptcp exited with {res.returncode}: {res.stderr.strip()[-300:]}\n"
    growth = Target("xdptcp -w RSS growth (end - start)", end - start, 5.0, " MB")
    return text + "\n" + targets_table("Soak targets", [growth])


def _pct(part: Optional[int], whole: int) -> Optional[str]:
    return None if part is None or not whole else f"{100.0 * part / whole:.2f}%"
