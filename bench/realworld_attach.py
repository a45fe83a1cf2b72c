"""bench/realworld_run.py's cases for programs that need a target their sections do not name:
libbpf-bootstrap's tc and sockfilter (an interface: ``pybpf run -i lo``) and uprobe (functions
of its own C binary: ``--exe`` and ``--attach``), each beside its own C loader."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from bench.realworld_common import (
    SCALE,
    Background,
    Result,
    first_error,
    parse_json,
    pybpf_run,
    trace_pipe_lines,
)


def send_udp(port: int, sizes: list[int], ttl: int) -> int:
    """Datagrams of these payload sizes to 127.0.0.1:port with this TTL; the source port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        s.bind(("127.0.0.1", 0))
        for n in sizes:
            s.sendto(b"x" * n, ("127.0.0.1", port))
            time.sleep(0.01)
        return s.getsockname()[1]


def _printk_messages(lines: list[str], needle: str) -> list[str]:
    return [ln.split("bpf_trace_printk: ", 1)[-1] for ln in lines if needle in ln]


def _lo_filters() -> str:
    """What tc shows on lo's ingress hook (the C loader's clsact filter, or nothing)."""
    r = subprocess.run(["tc", "filter", "show", "dev", "lo", "ingress"], capture_output=True)
    return r.stdout.decode().strip()


def case_tc(res: Result, obj: Path, tool: Optional[Path]) -> None:
    """tc: bpf_printk 'Got IP packet: tot_len: N, ttl: T' of datagrams sent on lo with an
    unusual TTL, from `pybpf run -i lo` and from the C loader (its own clsact filter on lo)."""
    sizes, ttl = [1, 100, 1000], 41
    needle = f"ttl: {ttl}"
    want = [f"Got IP packet: tot_len: {n + 28}, ttl: {ttl}" for n in sizes]
    py = pybpf_run(obj, "-i", "lo")
    if not py.wait_for("attached"):
        _, _, err = py.stop()
        res.status, res.detail = "differs", f"pybpf: {first_error(err)}"
        return
    send_udp(9, sizes, ttl)
    time.sleep(1.0 * SCALE)
    _, out, err = py.stop()
    _, printk, _ = parse_json(out)
    ours = _printk_messages(printk, needle)
    left = _lo_filters()
    theirs: list[str] = []
    if tool is not None:
        c = Background([str(tool)], cwd=tool.parent)
        time.sleep(1.5 * SCALE)
        t = threading.Thread(target=lambda: (time.sleep(0.5 * SCALE), send_udp(9, sizes, ttl)))
        t.start()
        theirs = _printk_messages(trace_pipe_lines(2.5 * SCALE), needle)
        t.join()
        c.stop()
    ok = ours == want and (tool is None or theirs == want) and not left
    res.status = "same events" if ok else "differs"
    res.detail = (
        f"bpf_printk of {len(sizes)} datagrams on lo (TTL {ttl}): pybpf run {len(ours)}/"
        f"{len(want)} lines"
        + (f", C loader {len(theirs)}/{len(want)}" if tool else "")
        + ("; nothing left on lo after pybpf run" if not left else f"; left on lo: {left}")
    )
    res.pybpf_lines = [ln for ln in printk if needle in ln][:3]


def _sockfilter_line(e: dict) -> Optional[str]:
    """An event as sockfilter.c's handle_event prints it (None where it prints nothing)."""
    protos = {1: "ICMP", 6: "TCP", 17: "UDP"}
    if e["pkt_type"] != 0 or e["ip_proto"] >= 263:  # PACKET_HOST only; IPPROTO_MAX
        return None
    ports = e[""]["port16"]

    def addr(v: int) -> str:
        return socket.inet_ntoa(v.to_bytes(4, sys.byteorder))

    return (
        f"interface: {socket.if_indextoname(e['ifindex'])}\tprotocol: "
        f"{protos.get(e['ip_proto'], '?')}\t{addr(e['src_addr'])}:{socket.ntohs(ports[0])}(src)"
        f" -> {addr(e['dst_addr'])}:{socket.ntohs(ports[1])}(dst)"
    )


def case_sockfilter(res: Result, obj: Path, tool: Optional[Path]) -> None:
    """sockfilter: the lines its C loader prints for datagrams of one source port on lo, and
    the same lines made from the events `pybpf run -i lo` printed (its own packet socket)."""
    py = pybpf_run(obj, "-i", "lo")
    if not py.wait_for("attached"):
        _, _, err = py.stop()
        res.status, res.detail = "differs", f"pybpf: {first_error(err)}"
        return
    sport = send_udp(9, [10, 20, 30], 64)
    time.sleep(1.0 * SCALE)
    _, out, _ = py.stop()
    events, _, _ = parse_json(out)
    ours = [ln for ln in map(_sockfilter_line, events) if ln and f":{sport}(src)" in ln]
    want = [f"interface: lo\tprotocol: UDP\t127.0.0.1:{sport}(src) -> 127.0.0.1:9(dst)"] * 3
    theirs: list[str] = []
    if tool is not None:
        c = Background([str(tool), "-i", "lo"], cwd=tool.parent)
        time.sleep(1.5 * SCALE)
        csport = send_udp(9, [10, 20, 30], 64)
        time.sleep(2.5 * SCALE)  # it polls its ring buffer once a second
        _, cout, _ = c.stop()
        theirs = [
            ln.replace(f":{csport}(src)", f":{sport}(src)")
            for ln in cout.splitlines()
            if f":{csport}(src)" in ln
        ]
    ok = ours == want and (tool is None or theirs == want)
    res.status = "same events" if ok else "differs"
    res.detail = (
        f"lines of 3 datagrams (PACKET_HOST): pybpf run {len(ours)}/3 (from its events)"
        + (f", C loader {len(theirs)}/3" if tool else "")
        + ("" if ok else f" pybpf {ours} C {theirs}")
    )
    res.pybpf_lines = ours[:2]


def case_uprobe(res: Result, obj: Path, tool: Optional[Path]) -> None:
    """uprobe: its programs probe functions of its own C binary. `pybpf run --exe BINARY`
    attaches them to that binary (the bare SEC("uprobe") pair with --attach); the C loader, run
    meanwhile, calls the functions once a second and attaches its own programs too, so every
    line shows twice: once from its programs, once from ours. Compared with the C loader alone."""
    if tool is None:
        res.status, res.detail = "skipped", "needs the C loader's binary"
        return
    expected: list[str] = []
    for i in range(3):
        expected += [
            f"uprobed_add ENTRY: a = {i}, b = {i + 1}",
            f"uprobed_add EXIT: return = {2 * i + 1}",
            f"uprobed_sub ENTRY: a = {i * i}, b = {i}",
            f"uprobed_sub EXIT: return = {i * i - i}",
        ]
    c = Background([str(tool)], cwd=tool.parent)
    theirs = _printk_messages(trace_pipe_lines(2.5 * SCALE), "uprobed_")
    c.stop()
    py = pybpf_run(
        obj, "--exe", str(tool), "--attach", "uprobe_add=uprobed_add",
        "--attach", "uretprobe_add=uprobed_add",
    )  # fmt: skip
    if not py.wait_for("attached"):
        _, _, err = py.stop()
        res.status, res.detail = "differs", f"pybpf: {first_error(err)}"
        return
    c = Background([str(tool)], cwd=tool.parent)
    time.sleep(2.5 * SCALE)
    c.stop()
    time.sleep(0.3 * SCALE)
    _, out, _ = py.stop()
    _, printk, _ = parse_json(out)
    both = _printk_messages(printk, "uprobed_")
    n = min(len(theirs), len(both) // 2) // 4 * 4  # whole loop turns seen by both
    doubled = [m for m in theirs[:n] for _ in (0, 1)]
    ok = n >= 8 and theirs[:n] == expected[:n] and sorted(both[: 2 * n]) == sorted(doubled)
    res.status = "same events" if ok else "differs"
    res.detail = (
        f"bpf_printk of uprobed_add/uprobed_sub ENTRY and EXIT, {n // 4} calls each: the C "
        f"loader's lines, each seen twice with pybpf run attached (its programs and ours)"
        if ok
        else f"C {theirs[:8]} pybpf+C {both[:16]}"
    )
    res.pybpf_lines = both[:4]
