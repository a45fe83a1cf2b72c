"""How fast xdptcp turns frames into output, against tcpdump reading the same packets.

    .venv/bin/python bench/format_speed.py [--packets N]

For each packet mix it prints µs per packet for the text formatter, the JSON formatter and the
pcap writer (write_batch of 1024 records), and the time ``tcpdump -nn -r FILE > /dev/null``
takes per packet of the same pcap (its start-up time, measured on a one-packet file, taken
off), and the ratio text/tcpdump. Formatter state is fresh for each run, as for a new capture.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from xdptcp.jsonfmt import JsonFormatter  # noqa: E402
from xdptcp.pcap import PcapWriter  # noqa: E402
from xdptcp.tcpdump import TextFormatter  # noqa: E402

import traffic  # noqa: E402

A, B = "198.18.0.2", "198.18.0.1"


def ack_ts(n: int) -> list[traffic.Frame]:
    """The typical segment at speed: an ACK with timestamps, 64 flows, headers only captured."""
    out = []
    for i in range(n):
        f = traffic.tcp_frame(A, B, 40000 + i % 64, 5001, seq=1000 + 1448 * i, ack=77 + i,
                              flags=".", win=501,
                              options=(traffic.nop(), traffic.nop(), traffic.timestamp(i, i + 1)),
                              payload=b"x" * 1448)  # fmt: skip
        out.append(traffic.Frame(1_700_000_000_000_000_000 + 700 * i, f[:66], len(f)))
    return out


def mixed(n: int, tmp: Path) -> list[traffic.Frame]:
    """The conversations of the varied capture (IPv4/IPv6, VLANs, handshakes, data, SACK)."""
    frames = [f for f in traffic.varied_pcap(tmp / "flows.pcap", n=20) if f.tcp][:300]
    return [frames[i % len(frames)]._replace(ts_ns=1_700_000_000_000_000_000 + 700 * i)
            for i in range(n)]  # fmt: skip


def varied(n: int, tmp: Path) -> list[traffic.Frame]:
    """Everything of the varied capture, odd options and noise included."""
    frames = traffic.varied_pcap(tmp / "all.pcap")
    return [frames[i % len(frames)]._replace(ts_ns=1_700_000_000_000_000_000 + 700 * i)
            for i in range(n)]  # fmt: skip


def per_packet(fn, frames) -> float:
    start = time.perf_counter()
    fn(frames)
    return (time.perf_counter() - start) / len(frames) * 1e6


def run_formatter(make):
    def go(frames):
        fmt = make().format
        for f in frames:
            fmt(f.ts_ns, f.data, f.wire_len, "")

    return go


def run_pcap(frames):
    w = PcapWriter(io.BytesIO(), nano=True)
    for i in range(0, len(frames), 1024):
        w.write_batch((f.ts_ns, f.data, f.wire_len) for f in frames[i : i + 1024])


def tcpdump_us(path: Path, one: Path, n: int) -> float:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        return float("nan")

    def t(p: Path) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([tcpdump, "-nn", "-r", str(p)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)  # fmt: skip
            best = min(best, time.perf_counter() - start)
        return best

    return max(t(path) - t(one), 0.0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=100_000)
    n = ap.parse_args().packets
    os.environ.setdefault("TZ", "UTC")
    time.tzset()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        mixes = {"ack+TS": ack_ts(n), "flows": mixed(n, tmp), "varied": varied(n, tmp)}
        print(f"{n} packets per mix; µs per packet (lower is better)")
        print(f"{'mix':<8} {'text':>7} {'json':>7} {'pcap':>7} {'tcpdump':>8} {'text/tcpdump':>13}")
        for name, frames in mixes.items():
            path, one = tmp / f"{name}.pcap", tmp / f"{name}-1.pcap"
            traffic.write_pcap(path, frames)
            traffic.write_pcap(one, frames[:1])
            text = per_packet(run_formatter(TextFormatter), frames)
            js = per_packet(run_formatter(JsonFormatter), frames)
            pcap = per_packet(run_pcap, frames)
            ref = tcpdump_us(path, one, n)
            print(f"{name:<8} {text:7.2f} {js:7.2f} {pcap:7.2f} {ref:8.2f} {text / ref:12.1f}x")


if __name__ == "__main__":
    main()
