"""A live capture's memory: what it needs is taken before it says "capturing on", so that it
does not grow with traffic (``make bench``'s soak measures the same over 10 M packets).

The tool's resident set (VmRSS, /proc/PID/status) is read at its "capturing on" line and again
after a few thousand packets, replayed from the test host's namespace, have been printed or
written: the difference is what the packets cost, which must stay small in every output mode.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import scaled
from tests.hosts import make_veth
from tests.test_reliability import Xdptcp, frames, replay, summary
from tests.traffic import write_pcap

pytestmark = pytest.mark.system
PACKETS = 3000
GROWTH_MAX_KB = 2048  # the 16-bit number texts alone are 5 MB: made late, this fails


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def pair():
    p = make_veth("mem")
    try:
        yield p
    finally:
        p.remove()


@pytest.mark.parametrize("how", ["text", "json", "write"])
def test_a_capture_does_not_grow_with_its_first_packets(pair, tmp_path: Path, how) -> None:
    flood = tmp_path / "flood.pcap"
    write_pcap(flood, frames(pair, PACKETS, payload=bytes(100)))
    args = {"text": (), "json": ("--json",), "write": ("-w", str(tmp_path / "out.pcap"))}[how]
    x = Xdptcp("-i", pair.outer, *args, stdout=subprocess.DEVNULL)
    try:
        x.attached()
        before = rss_kb(x.proc.pid)
        assert replay(pair, flood) == PACKETS
        time.sleep(scaled(1.0))  # the reader wakes at least every 100 ms
        after = rss_kb(x.proc.pid)
        x.proc.send_signal(signal.SIGINT)
        assert x.finish() == 0, x.stderr
    finally:
        x.kill()
    assert summary(x.stderr)["captured"] == PACKETS, x.stderr
    print(f"{how}: VmRSS {before} kB at 'capturing on', {after} kB after {PACKETS} packets")
    assert after - before < GROWTH_MAX_KB, f"{how}: grew {after - before} kB"
