"""A bulk TCP transfer across a veth pair while each tool captures its receiving end.

W1 replays small frames; this is the other traffic a veth carries: a connection sending as
fast as it can, with TSO on the sending end (a veth's default), so that TCP hands the pair
packets of up to 64 KiB. Native XDP on a veth changes that: while a native program is attached,
the kernel turns TSO off on the peer (`ethtool -k`: `tx-tcp-segmentation: off [fixed]`), so
the sender cuts every packet to the MTU itself before it crosses. Generic (skb) XDP leaves the
peer alone.

For each tool, in every repeat (tools interleaved): start it on the outer end and wait for its
ready line, note the peer's TSO, send ``--megabytes`` from inside the namespace to a receiver on
the outer end, then stop the tool and count its records. The transfer's time is the sender's:
from connect to the receiver's one-byte answer once it has read everything. Sender and
receiver run on the first CPU, the tools on the others (``bench.common.cpu_split``).

    python -m bench veth_bulk
    python bench/veth_bulk.py [--repeat 5] [--megabytes 1000]
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from bench.common import (
    PYTHON,
    Hosts,
    Tool,
    cpu_split,
    load_average,
    make_hosts,
    median,
    pinned,
    ratio,
    say,
    sh,
    table,
)

PORT = 5001
NO_CAPTURE = "no capture"
# name: (argv with {dev} and {out} to fill in, ready marker); the snap length of tcpdump keeps
# its file small (xdptcp keeps headers only): the frames' lengths are counted, not their bytes
TOOLS: dict[str, tuple[list[str], str]] = {
    "tcpdump -w": (["tcpdump", "-s", "128", "-i", "{dev}", "-w", "{out}"], "listening on"),
    **{
        f"xdptcp -w --mode {mode}": (
            [PYTHON, "-m", "xdptcp", "-i", "{dev}", "-Q", "in", "--mode", mode, "-w", "{out}"],
            "xdptcp: capturing on",
        )
        for mode in ("native", "skb")
    },
}

RECEIVER = """\
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept()
while c.recv(1 << 20):
    pass
c.sendall(b"k"); c.close()
"""

SENDER = """\
import socket, sys, time
data = b"x" * (1 << 20)
t0 = time.monotonic()
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
for _ in range(int(sys.argv[3])):
    c.sendall(data)
c.shutdown(socket.SHUT_WR)
assert c.recv(1) == b"k"
print(f"{time.monotonic() - t0:.6f}")
"""


def pcap_frames(path: Path) -> tuple[int, int]:
    """(whole records, the largest frame's wire length) of a pcap file (either byte order)."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return 0, 0
        order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        rec = struct.Struct(order + "IIII")
        data = f.read()
    n = largest = pos = 0
    while pos + 16 <= len(data):
        _, _, incl, orig = rec.unpack_from(data, pos)
        if pos + 16 + incl > len(data):
            break  # cut short: the tool was stopped while writing it
        n, largest, pos = n + 1, max(largest, orig), pos + 16 + incl
    return n, largest


def peer_tso(hosts: Hosts) -> str:
    """The inner end's TSO, as ``ethtool -k`` says it: "on", or "off" under native XDP."""
    out = sh(*hosts.in_ns("ethtool", "-k", hosts.inner)).stdout
    for line in out.splitlines():
        if line.startswith("tcp-segmentation-offload:"):
            return line.split(":", 1)[1].strip()
    return "?"


def transfer(hosts: Hosts, address: str, megabytes: int, cpus: Optional[list[int]]) -> float:
    """Seconds to send ``megabytes`` MiB from the namespace to a receiver on the outer end."""
    recv = subprocess.Popen(pinned([PYTHON, "-c", RECEIVER, address, str(PORT)], cpus),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
        sent = subprocess.run(
            hosts.in_ns(*pinned([PYTHON, "-c", SENDER, address, str(PORT), str(megabytes)], cpus)),
            capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
        recv.wait(timeout=30)
        return float(sent.stdout)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()


def _times(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def run(repeat: int = 5, megabytes: int = 1000) -> str:
    sender_cpus, tool_cpus = cpu_split()
    names = [NO_CAPTURE, *TOOLS]
    seconds: dict[str, list[float]] = {n: [] for n in names}
    frames: dict[str, list[int]] = {n: [] for n in names}
    largest: dict[str, list[int]] = {n: [] for n in names}
    tso: dict[str, set[str]] = {n: set() for n in names}
    load = load_average()
    with make_hosts("vb") as hosts, tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        address = hosts.outer_addr
        for r in range(repeat):
            for name in names:
                say(f"veth_bulk: repeat {r + 1}/{repeat}: {name}")
                if name == NO_CAPTURE:
                    tso[name].add(peer_tso(hosts))
                    seconds[name].append(transfer(hosts, address, megabytes, sender_cpus))
                    continue
                argv, ready = TOOLS[name]
                out = Path(tmp) / "out.pcap"
                tool = Tool([a.format(dev=hosts.outer, out=out) for a in argv], cpus=tool_cpus)
                try:
                    tool.wait_ready(ready)
                    time.sleep(0.2)
                    tso[name].add(peer_tso(hosts))
                    seconds[name].append(transfer(hosts, address, megabytes, sender_cpus))
                    tool.wait_idle(settle=0.5)
                finally:
                    done = tool.stop()
                if done.returncode != 0:
                    raise RuntimeError(f"{name}: exit {done.returncode}: {done.stderr.strip()}")
                n, big = pcap_frames(out)
                frames[name].append(n)
                largest[name].append(big)
                out.unlink()
    base = median(seconds[NO_CAPTURE])
    rows = []
    for name in names:
        s = median(seconds[name])
        rows.append([
            name, s, _times(ratio(s, base)),
            f"{median(frames[name]):,.0f}" if frames[name] else "-",
            f"{median(largest[name]):,.0f}" if largest[name] else "-",
            ", ".join(sorted(tso[name])),
        ])  # fmt: skip
    where = "sender and receiver on CPU 0, tools on the others" if tool_cpus else "unpinned"
    return table(
        f"veth bulk transfer: {megabytes} MiB, median of {repeat} (load average before: "
        f"{load}; {where})",
        ["tool", "transfer s", "/ no capture", "records", "largest frame",
         "peer TSO while capturing"],
        rows,
    )  # fmt: skip


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench/veth_bulk.py", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--megabytes", type=int, default=1000)
    args = p.parse_args(argv)
    print(run(args.repeat, args.megabytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
