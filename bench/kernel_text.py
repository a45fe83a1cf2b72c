"""A study: tcpdump's text lines made by a BPF program, against tcpdump and ``xdptcp -r F``.

``xdptcp -r F`` spends most of its time making each line in Python (the offline target asks
for 0.8x tcpdump's CPU; it stands near 1.9x on W1). This measures what the same lines cost when
the kernel makes them: ``bpf/bench/kernel_text.bpf.c``, a syscall program run with
BPF_PROG_TEST_RUN over the file's records, read a chunk at a time into an mmapped map as
xdptcp's record walker reads them, writes tcpdump's ``-nn`` line of each into another mmapped
map, which this script writes out. It knows one shape of segment (see the program's text) and
stops at any other, so it is a measurement, not a capture tool.

The file: ``--packets`` (1,000,000) headers-only segments of a bulk transfer as ``xdptcp -w``
keeps them (66 of 1,514 bytes: IPv4, ACK or PSH+ACK, nop,nop,TS, 1,448 bytes of payload not
captured), 64 conversations in turn, built on first use under ``build/bench/``. The TCP
checksum is not computed: the payload it covers is not in the file, and tcpdump checks it only
with -v.

First the three outputs are compared, whole: tcpdump's, the kernel's and ``xdptcp -r F``'s must
be the same lines, or the script stops. Then each repeat runs the three in turn, each as a
process of its own writing to /dev/null, on the CPUs ``bench.common.cpu_split`` leaves to tools,
and each once more on a file of no record (its start-up). CPU is user + system of the process
(``bench.offline``'s measure); the kernel's work is system time of the process that runs it.

    python -m bench kernel_text
    python bench/kernel_text.py [--repeat 5] [--packets 1000000]
    python bench/kernel_text.py --print FILE     # the kernel's lines of FILE, on stdout

Needs root, ``tcpdump`` and the object (``make bpf``: ``build/bpf/bench/kernel_text.bpf.o``).
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a script: the tree's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    PYTHON,
    ROOT,
    compile_sources,
    cpu_split,
    load_average,
    median,
    pinned,
    ratio,
    say,
    table,
)
from bench.traffic import CACHE  # noqa: E402

OBJECT = ROOT / "build" / "bpf" / "bench" / "kernel_text.bpf.o"
CHUNK = 1 << 20  # KT_CHUNK
CONTEXT = struct.Struct("=IIiIII")  # struct kt_ctx: pos, end, tz_off, len, lines, stop
TEXT_AT = 40  # in .bss: the text after struct kt_state
FLOWS = 64
MSS = 1448


class KernelTextError(Exception):
    """The study cannot run here, or the kernel's lines are not tcpdump's."""


def bulk_pcap(count: int) -> Path:
    """The study's file (cached): ``count`` headers-only segments, 64 conversations in turn."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"bulk-{count}.pcap"
    if path.exists():
        return path
    say(f"building {path} ({count:,} records)")
    # Ethernet: destination, source, IPv4
    eth = bytes.fromhex("020000000002") + bytes.fromhex("020000000001") + b"\x08\x00"
    ip = struct.Struct("!BBHHHBBH4s4s")
    tcp = struct.Struct("!HHIIBBHHH")
    ts = struct.Struct("!BBBBII")
    rec = struct.Struct("=IIII")
    dst = bytes([198, 18, 0, 1])
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i in range(count):
            k = i % FLOWS
            src = bytes([198, 18, 1, 1 + k])
            head = ip.pack(0x45, 0, 20 + 32 + MSS, i & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
            s = sum(struct.unpack("!10H", head))
            s = (s & 0xFFFF) + (s >> 16)
            head = head[:10] + struct.pack("!H", ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF) + head[12:]
            n = i // FLOWS  # the conversation's segment number
            flags = 0x18 if n % 3 == 0 else 0x10
            seg = tcp.pack(40000 + k, 5001, (1_000_000 * (k + 1) + MSS * n) & 0xFFFFFFFF,
                           77 + n, 8 << 4, flags, 501, 0, 0)  # fmt: skip
            seg += ts.pack(1, 1, 8, 10, 5_000_000 + i, 4_000_000 + i)
            usec = 1_700_000_000_000_000 + 3 * i
            f.write(rec.pack(usec // 1_000_000, usec % 1_000_000, 66, 14 + 20 + 32 + MSS))
            f.write(eth + head + seg)
    tmp.rename(path)
    return path


def print_lines(path: Path, out=None) -> tuple[int, float]:
    """Write the kernel's lines of ``path`` to ``out`` (stdout); returns (lines, the system CPU
    seconds from the first chunk read to the last line written). Raises KernelTextError at a
    record of another shape."""
    import pybpf
    from pybpf.object.spec import ObjectSpec
    from pybpf.sys import progcmd

    out = out or sys.stdout.buffer
    if not OBJECT.exists():
        raise KernelTextError(f"{OBJECT.relative_to(ROOT)} is missing: run make bpf")
    with pybpf.load(ObjectSpec.from_file(str(OBJECT))) as obj, open(path, "rb") as f:
        prog = obj.programs["kernel_text"]
        in_map = obj.maps["kt_in"]
        out_map = next(m for name, m in obj.maps.items() if name.endswith(".bss"))
        src = mmap.mmap(in_map.fd, in_map.value_size, mmap.MAP_SHARED)
        text = mmap.mmap(out_map.fd, out_map.value_size, mmap.MAP_SHARED, mmap.PROT_READ)
        ctx = ctypes.create_string_buffer(CONTEXT.size)
        run = progcmd.prog_run_in_place(prog.fd, ctx, prog.name)
        magic, *_, linktype = struct.unpack("=IHHiIII", f.read(24).ljust(24, b"\0"))
        if magic != 0xA1B2C3D4 or linktype != 1:
            raise KernelTextError(f"{path}: not a microsecond Ethernet pcap in this byte order")
        tz = time.localtime(1_700_000_000).tm_gmtoff  # the study's file: within one day
        view = memoryview(src)
        lines, offset = 0, 24
        before = os.times()
        while True:  # a chunk a run: the next starts where this one stopped
            f.seek(offset)
            got = f.readinto(view[:CHUNK])
            if not got:
                break
            CONTEXT.pack_into(ctx, 0, 0, got, tz, 0, 0, 0)
            run()
            pos, _, _, length, n, stop = CONTEXT.unpack_from(ctx)
            out.write(text[TEXT_AT : TEXT_AT + length])
            lines += n
            if stop == 2:
                raise KernelTextError(
                    f"{path}: the record at byte {offset + pos} is of a shape the study does "
                    "not print"
                )
            if pos == 0:
                break  # the file ends in a cut record
            offset += pos
        after = os.times()
        out.flush()
    return lines, after.system - before.system


def _commands(pcap: Path) -> dict[str, list[str]]:
    f = str(pcap)
    return {
        "tcpdump -nn -r F": [shutil.which("tcpdump") or "tcpdump", "-nn", "-r", f],
        "xdptcp -r F": [PYTHON, "-m", "xdptcp", "-r", f],
        "kernel_text.bpf.o": [PYTHON, str(Path(__file__).resolve()), "--print", f],
    }


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have .pyc files: measure with them
    env.setdefault("TZ", ":/etc/localtime")  # (bench/README.md: tcpdump at its fastest)
    return env


def same_lines(pcap: Path, tmp: Path) -> int:
    """The lines the three print, compared whole; returns their number."""
    outs = {}
    for name, argv in _commands(pcap).items():
        path = tmp / f"{len(outs)}.txt"
        with open(path, "wb") as f:
            p = subprocess.run(argv, stdout=f, stderr=subprocess.PIPE, env=_env(), text=True)
        if p.returncode != 0:
            raise KernelTextError(f"{name}: exit {p.returncode}: {p.stderr.strip()}")
        outs[name] = path
    ref = outs["tcpdump -nn -r F"].read_bytes()
    for name, path in outs.items():
        if path.read_bytes() != ref:
            raise KernelTextError(f"{name}'s lines are not tcpdump's")
    return ref.count(b"\n")


def run(repeat: int = 5, packets: int = 1_000_000) -> str:
    from bench.offline import _cpu

    compile_sources()
    load = load_average()
    pcap = bulk_pcap(packets)
    _, cpus = cpu_split()
    os.environ.update(_env())  # _cpu passes this process's environment on
    times: dict[str, list[float]] = {}
    starts: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-kt-") as tmp:
        say("kernel_text: the three outputs, compared")
        lines = same_lines(pcap, Path(tmp))
        empty = Path(tmp) / "empty.pcap"
        with open(pcap, "rb") as f:
            empty.write_bytes(f.read(24))  # the same file header, no record: start-up alone
        for r in range(repeat):
            for name, argv in _commands(pcap).items():
                say(f"kernel_text: repeat {r + 1}/{repeat}: {name}")
                times.setdefault(name, []).append(_cpu(pinned(argv, cpus), None))
                bare = [str(empty) if a == str(pcap) else a for a in argv]
                starts.setdefault(name, []).append(_cpu(pinned(bare, cpus), None))
    ref = median(times["tcpdump -nn -r F"])
    rows = []
    for name, v in times.items():
        m, s = median(v), median(starts[name])
        rows.append([name, m, s, (m - s) * 1e6 / packets, f"{ratio(m, ref):.2f}x"])
    where = "on the tools' CPUs" if cpus else "unpinned"
    return table(
        f"Lines of {packets:,} headers-only data segments ({lines:,} lines, the same from all "
        f"three), CPU s, median of {repeat} (load average before: {load}; {where})",
        ["command", "CPU s", "start-up s", "µs / line", "/ tcpdump"],
        rows,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench/kernel_text.py", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--packets", type=int, default=1_000_000)
    p.add_argument("--print", dest="print_file", metavar="FILE",
                   help="write the kernel's lines of FILE to stdout")  # fmt: skip
    args = p.parse_args(argv)
    try:
        if args.print_file:
            lines, system = print_lines(Path(args.print_file))
            print(f"kernel_text: {lines} lines, {system:.3f} s of system CPU reading, walking and "
                  "writing",
                  file=sys.stderr)  # fmt: skip
            return 0
        print(run(args.repeat, args.packets))
    except KernelTextError as e:
        print(f"kernel_text: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
