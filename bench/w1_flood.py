"""W1 flood: the same pcap replayed at top speed into a veth pair while each tool captures.

For every tool, in every repeat (tools interleaved so that drift on the machine hits all alike):
start the tool on the outer end and wait for its "ready" line, replay the W1 pcap with
``tcpreplay --topspeed`` from inside the namespace, wait until the tool stops using CPU (drained),
SIGINT it, and record packets captured (pcap records or output lines), the tool's own drop
report, its CPU seconds (user + sys from /proc; the sys part, the kernel's time in the tool's
system calls and faults, also on its own), peak RSS (VmHWM) and the replay's wall time.

    python -m bench w1 [--repeat 3] [--packets 1000000]
"""

from __future__ import annotations

import functools
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from bench.common import (
    PYTHON,
    ROOT,
    Hosts,
    Target,
    Tool,
    compile_sources,
    cpu_split,
    load_average,
    make_hosts,
    median,
    object_id,
    pinned,
    ratio,
    say,
    sh,
    table,
    targets_table,
    xdp_attached,
)
from bench.traffic import count_lines, count_pcap_records, w1_pcap

XDPTCP_READY = "xdptcp: capturing on"
TCPDUMP_READY = "listening on"


@dataclass(frozen=True)
class ToolSpec:
    """How to run one capture tool: its argv, whether stdout is the output, how to count."""

    name: str
    argv: Callable[[str, Path], list[str]]  # (interface, output file) -> argv
    ready: str
    stdout_is_output: bool  # text tools: stdout redirected to the output file
    counts: str  # "pcap" or "lines"


def _xdptcp(*extra: str) -> Callable[[str, Path], list[str]]:
    return lambda dev, out: [PYTHON, "-m", "xdptcp", "-i", dev, *extra]


TOOLS: list[ToolSpec] = [
    ToolSpec(
        "tcpdump -w", lambda d, o: ["tcpdump", "-i", d, "-w", str(o)], TCPDUMP_READY, False, "pcap"
    ),
    ToolSpec(
        "tcpdump text", lambda d, o: ["tcpdump", "-nn", "-i", d], TCPDUMP_READY, True, "lines"
    ),
    ToolSpec(
        "xdpdump -w",
        lambda d, o: ["xdpdump", "-i", d, "-w", str(o), "--load-xdp-program"],
        TCPDUMP_READY,
        False,
        "pcap",
    ),
    ToolSpec("xdptcp -w", lambda d, o: _xdptcp("-w", str(o))(d, o), XDPTCP_READY, False, "pcap"),
    ToolSpec(
        "xdptcp -w, 4M ring",
        lambda d, o: _xdptcp("--ring-size", "4M", "-w", str(o))(d, o),
        XDPTCP_READY,
        False,
        "pcap",
    ),
    ToolSpec(
        "xdptcp -w --mode skb",
        lambda d, o: _xdptcp("--mode", "skb", "-w", str(o))(d, o),
        XDPTCP_READY,
        False,
        "pcap",
    ),
    ToolSpec("xdptcp text", _xdptcp(), XDPTCP_READY, True, "lines"),
    ToolSpec("xdptcp --json", _xdptcp("--json"), XDPTCP_READY, True, "lines"),
]

EMPTY_XDP = "empty XDP program"  # no tool: bpf/tests/xdp_empty.bpf.o attached, native mode
EMPTY_XDP_SKB = "empty XDP program, skb mode"  # the same in generic XDP
EMPTY_OBJ = ROOT / "build" / "bpf" / "tests" / "xdp_empty.bpf.o"
# No tool: the floor of a capture that keeps a record per frame, attached as xdptcp attaches its
# program (native and skb mode): bpf_ktime_get_ns(), a ring record of xdptcp's size reserved,
# the frame's first 66 bytes copied into it, submitted (bench/prog_cost.py's floor program,
# loaded with BPF_F_XDP_HAS_FRAGS as xdptcp loads its XDP program where the kernel takes it).
FLOOR_XDP = "floor XDP program"
FLOOR_XDP_SKB = "floor XDP program, skb mode"
_DROPS = re.compile(r"(\d+) packets? dropped by ([a-z ]+)")


@dataclass
class Sample:
    """One tool in one repeat."""

    tool: str
    offered: int
    captured: Optional[int]
    drops: Optional[int]  # the tool's own report
    veth_drops: int  # frames lost on the veth pair before any tool saw them
    cpu_s: Optional[float]
    replay_s: float
    peak_rss_kb: Optional[int]
    error: str = ""
    startup_cpu_s: Optional[float] = None  # CPU used before the replay began (start-up)
    system_s: Optional[float] = None  # of cpu_s, the kernel's, in the tool's system calls


@dataclass
class Replay:
    sent: int
    failed: int
    seconds: float


def replay(hosts: Hosts, pcap: Path, loops: int = 1) -> Replay:
    """tcpreplay from inside the namespace; the pcap is preloaded so disk reads are not timed."""
    argv = ["tcpreplay", "-i", hosts.inner, "--topspeed", "--preload-pcap"]
    if loops > 1:
        argv.append(f"--loop={loops}")
    out = sh(*hosts.in_ns(*pinned([*argv, str(pcap)], cpu_split()[0]))).stdout
    sent = re.search(r"Successful packets:\s+(\d+)", out)
    failed = re.search(r"Failed packets:\s+(\d+)", out)
    secs = re.search(r"sent in ([\d.]+) seconds", out)
    if not (sent and failed and secs):
        raise RuntimeError(f"tcpreplay: unexpected output: {out}")
    return Replay(int(sent.group(1)), int(failed.group(1)), float(secs.group(1)))


def own_drops(stderr: str) -> Optional[int]:
    """The drop count from a tool's exit summary (tcpdump, xdpdump and xdptcp all print one)."""
    found = _DROPS.findall(stderr)
    return sum(int(n) for n, _ in found) if found else None


def run_one(spec: Optional[ToolSpec], hosts: Hosts, pcap: Path, workdir: Path) -> Sample:
    """One replay with ``spec`` capturing (or nothing, for the baseline)."""
    before = hosts.link_stats()
    if spec is None:
        r = replay(hosts, pcap)
        return Sample("no capture", r.sent, None, None, _veth(hosts, before), None, r.seconds, None)
    if spec.name in (EMPTY_XDP, EMPTY_XDP_SKB):
        # The floor of any XDP capture on veth: with a program attached in native mode the
        # receiving side runs veth's XDP path (a NAPI poll per batch, an xdp_buff per frame,
        # the frame copied to a page of its own) for every frame; in skb mode the program runs
        # on the skb in the receive path.
        mode = "xdpdrv" if spec.name == EMPTY_XDP else "xdpgeneric"
        sh("ip", "link", "set", "dev", hosts.outer, mode, "obj", str(EMPTY_OBJ), "sec", "xdp")
        try:
            r = replay(hosts, pcap)
        finally:
            sh("ip", "link", "set", "dev", hosts.outer, mode, "off")
        return Sample(spec.name, r.sent, None, None, _veth(hosts, before), None, r.seconds, None)
    if spec.name in (FLOOR_XDP, FLOOR_XDP_SKB):
        r = _floor_replay(hosts, pcap, skb=spec.name == FLOOR_XDP_SKB)
        return Sample(spec.name, r.sent, None, None, _veth(hosts, before), None, r.seconds, None)
    out = workdir / (re.sub(r"\W+", "_", spec.name) + ".out")
    out.unlink(missing_ok=True)
    stdout = open(out, "wb") if spec.stdout_is_output else None  # noqa: SIM115 (closed below)
    tool = Tool(spec.argv(hosts.outer, out), stdout=stdout, cpus=cpu_split()[1])
    try:
        tool.wait_ready(spec.ready)
        time.sleep(0.2)  # past the ready line: let the first poll/epoll wait begin
        startup = tool.cpu()
        r = replay(hosts, pcap)
        tool.wait_idle()
        res = tool.stop()
    except Exception as e:  # a tool that cannot run is a row with its error, not a crash
        tool.kill()
        return Sample(spec.name, 0, None, None, 0, None, 0.0, None, error=str(e).strip()[-300:])
    except BaseException:  # Ctrl-C: the tool is in its own session and did not see it
        tool.kill()
        raise
    finally:
        if stdout is not None:
            stdout.close()
    if xdp_attached(hosts.outer):
        raise RuntimeError(f"{spec.name} left an XDP program on {hosts.outer}")
    captured = count_pcap_records(out) if spec.counts == "pcap" else count_lines(out)
    error = "" if res.returncode == 0 else f"exit {res.returncode}: {res.stderr.strip()[-200:]}"
    out.unlink(missing_ok=True)
    return Sample(
        spec.name,
        r.sent,
        captured,
        own_drops(res.stderr),
        _veth(hosts, before),
        res.cpu_s,
        r.seconds,
        res.peak_rss_kb,
        error,
        startup,
        res.system_s,
    )


def _floor_replay(hosts: Hosts, pcap: Path, skb: bool) -> Replay:
    """One replay with the floor program attached to the outer end. Its ring holds a record
    for every frame of the pcap, so no reservation fails for want of room (a reservation that
    fails skips the copy, and would make the floor cheaper than it is). No reader drains it:
    with xdptcp, stopping the reader (SIGSTOP) for the whole replay left the replay's time as
    it was, so reading is not part of what the sender pays."""
    from bench.prog_cost import floor_insns, ring_bytes
    from pybpf.errors import SyscallError
    from pybpf.link.netlink import XDPFlags, xdp_attach, xdp_detach
    from pybpf.maps import Map
    from pybpf.object.sections import F_XDP_HAS_FRAGS
    from pybpf.program import Program
    from pybpf.sys.uapi import MapType, ProgType

    ifindex = socket.if_nametoindex(hosts.outer)
    mode = XDPFlags.SKB_MODE if skb else XDPFlags.DRV_MODE
    size = ring_bytes(_records(pcap))
    with Map.create(MapType.RINGBUF, 0, 0, size, name="w1_floor") as ring:
        code = floor_insns(ring.fd, ktime=True, reserve=True, copy="direct")
        try:
            prog = Program.load(ProgType.XDP, code, name="w1_floor", prog_flags=F_XDP_HAS_FRAGS)
        except SyscallError:  # a kernel before 5.18: xdptcp loads without the flag there too
            prog = Program.load(ProgType.XDP, code, name="w1_floor")
        with prog:
            xdp_attach(ifindex, prog.fd, mode)
            try:
                return replay(hosts, pcap)
            finally:
                xdp_detach(ifindex, mode)


@functools.cache
def _records(pcap: Path) -> int:
    """The pcap's record count, read once: each floor replay sizes its ring by it."""
    return count_pcap_records(pcap)


def _veth(hosts: Hosts, before: dict[str, int]) -> int:
    after = hosts.link_stats()
    return sum(after[k] - before[k] for k in after)


def run(repeat: int = 3, packets: int = 1_000_000, tools: Optional[list[str]] = None) -> str:
    compile_sources()
    pcap = w1_pcap(packets)
    load = load_average()
    empty = ToolSpec(EMPTY_XDP, lambda d, o: [], "", False, "")
    empty_skb = ToolSpec(EMPTY_XDP_SKB, lambda d, o: [], "", False, "")
    floor = ToolSpec(FLOOR_XDP, lambda d, o: [], "", False, "")
    floor_skb = ToolSpec(FLOOR_XDP_SKB, lambda d, o: [], "", False, "")
    specs: list[Optional[ToolSpec]] = [None, empty, empty_skb, floor, floor_skb]
    specs += [t for t in TOOLS if not tools or t.name in tools]
    samples: list[Sample] = []
    hosts = make_hosts("w")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-w1-") as tmp:
            for i in range(repeat):
                for spec in specs:
                    name = spec.name if spec else "no capture"
                    say(f"W1 repeat {i + 1}/{repeat}: {name}")
                    s = run_one(spec, hosts, pcap, Path(tmp))
                    if s.error:
                        say(f"  {name}: {s.error}")
                    samples.append(s)
    finally:
        hosts.remove()
    return report(samples, packets, repeat, load)


def summarize(samples: list[Sample]) -> dict[str, dict[str, Optional[float]]]:
    """Medians per tool."""
    out: dict[str, dict[str, Optional[float]]] = {}
    for name in dict.fromkeys(s.tool for s in samples):
        mine = [s for s in samples if s.tool == name and not s.error]
        pct = [100.0 * s.captured / s.offered for s in mine if s.captured is not None and s.offered]
        out[name] = {
            "ok": float(len(mine)),
            "offered": median([s.offered for s in mine]),
            "captured": median([s.captured for s in mine]),
            "pct": median(pct),
            "drops": median([s.drops for s in mine]),
            "veth": median([s.veth_drops for s in mine]),
            "cpu": median([s.cpu_s for s in mine]),
            "startup": median([s.startup_cpu_s for s in mine]),
            "system": median([s.system_s for s in mine]),
            "us_per_pkt": median([_us_per_packet(s) for s in mine]),
            "replay": median([s.replay_s for s in mine]),
            "rss": median([s.peak_rss_kb / 1024 if s.peak_rss_kb else None for s in mine]),
        }
    return out


def _us_per_packet(s: Sample) -> Optional[float]:
    """CPU after start-up per captured packet: comparable when tools capture different counts."""
    if s.cpu_s is None or not s.captured:
        return None
    return 1e6 * (s.cpu_s - (s.startup_cpu_s or 0.0)) / s.captured


def _int(v: Optional[float]) -> Optional[int]:
    return None if v is None else int(v)


def report(samples: list[Sample], packets: int, repeat: int, load: str) -> str:
    m = summarize(samples)
    base = m["no capture"]["replay"]
    rows = []
    for name, v in m.items():
        rows.append(
            [
                name,
                f"{int(v['ok'])}/{repeat}",
                _int(v["offered"]),
                _int(v["captured"]),
                _pct(v["pct"]),
                _int(v["drops"]),
                _int(v["veth"]),
                v["cpu"],
                v["startup"],
                v["system"],
                v["us_per_pkt"],
                v["replay"],
                _x(ratio(v["replay"], base)),
                v["rss"],
            ]
        )
    header = [
        "tool",
        "runs ok",
        "offered",
        "captured",
        "captured %",
        "tool drops",
        "veth drops",
        "CPU s",
        "of which start-up",
        "of which system",
        "µs / captured",
        "replay s",
        "replay / none",
        "peak RSS MB",
    ]
    sender, tools = cpu_split()
    where = (
        f"tcpreplay on CPU {','.join(map(str, sender))}, tools on {','.join(map(str, tools))}"
        if sender and tools
        else "no CPU pinning"
    )
    title = (
        f"W1 flood: {packets:,} frames, median of {repeat} (load average before: {load}; "
        f"{where}; xdptcp.bpf.o {object_id()})"
    )
    text = table(title, header, rows)
    text += "\n" + ratios_table(m) + "\n" + targets_table("W1 targets", targets(m))
    text += floor_note(m)
    errors = sorted({f"{s.tool}: {s.error}" for s in samples if s.error})
    if errors:
        text += "\nErrors:\n" + "\n".join(f"- {e}" for e in errors) + "\n"
    return text


def floor_note(m: dict[str, dict[str, Optional[float]]]) -> str:
    """What the replay target is measured against: the same ratio for the floor program."""
    base = m.get("no capture", {}).get("replay")
    native = ratio(m.get(FLOOR_XDP, {}).get("replay"), base)
    skb = ratio(m.get(FLOOR_XDP_SKB, {}).get("replay"), base)
    if native is None or skb is None:
        return ""
    return (
        f"\nUnder the replay target: the floor XDP program alone (a timestamp, a record reserved, "
        f"66 bytes copied, submitted) makes the replay {native:.2f}x in native mode, the mode "
        f"`xdptcp -w` attaches in here, and {skb:.2f}x in skb mode.\n"
    )


def ratios_table(m: dict[str, dict[str, Optional[float]]]) -> str:
    pairs = [
        ("xdptcp -w", "xdpdump -w"),
        ("xdptcp -w", "tcpdump -w"),
        ("xdptcp text", "tcpdump text"),
        ("xdptcp --json", "tcpdump text"),
    ]
    rows = []
    for a, b in pairs:
        va, vb = m.get(a, {}), m.get(b, {})
        rows.append(
            [
                f"{a} / {b}",
                _x(ratio(va.get("cpu"), vb.get("cpu"))),
                _x(ratio(va.get("rss"), vb.get("rss"))),
                _x(ratio(va.get("captured"), vb.get("captured"))),
            ]
        )
    return table("W1 ratios (xdptcp / reference)", ["pair", "CPU", "peak RSS", "captured"], rows)


def targets(m: dict[str, dict[str, Optional[float]]]) -> list[Target]:
    """The issue's live targets. Per-packet CPU is the µs / captured column (start-up left
    out: it is the same whatever the traffic, and judged by the load-time benchmark)."""

    def get(tool: str, key: str) -> Optional[float]:
        return m.get(tool, {}).get(key)

    def per_packet(tool: str) -> Optional[float]:
        return ratio(get(tool, "us_per_pkt"), get("tcpdump text", "us_per_pkt"))

    base = get("no capture", "replay")
    return [
        Target("xdptcp -w captured", get("xdptcp -w", "pct"), 100.0, " %", higher_is_better=True),
        Target(
            "xdptcp -w CPU / tcpdump -w CPU",
            ratio(get("xdptcp -w", "cpu"), get("tcpdump -w", "cpu")),
            3.0,
            "x",
        ),
        Target(
            "xdptcp text captured", get("xdptcp text", "pct"), 100.0, " %", higher_is_better=True
        ),
        Target("xdptcp text µs / captured, / tcpdump text's", per_packet("xdptcp text"), 1.0, "x"),
        Target(
            "xdptcp --json captured",
            get("xdptcp --json", "pct"),
            100.0,
            " %",
            higher_is_better=True,
        ),
        Target(
            "xdptcp --json µs / captured, / tcpdump text's", per_packet("xdptcp --json"), 1.3, "x"
        ),
        Target(
            "replay with xdptcp -w / no capture", ratio(get("xdptcp -w", "replay"), base), 1.25, "x"
        ),
    ]


def _pct(v: Optional[float]) -> Optional[str]:
    return None if v is None else f"{v:.2f}%"


def _x(v: Optional[float]) -> Optional[str]:
    return None if v is None else f"{v:.2f}x"
