"""``python -m bench [w1|progcost|loadtime|soak|offline|EXTRA...] [--repeat N] [--packets N]``

With no name, the five benchmarks of the performance issue run in sequence and their tables are
printed on stdout (progress goes to stderr). Other ``bench/*.py`` scripts present in the tree
(``ringbuf_drain``, ``core_resolve``, ``format_speed``, ``text_stages``, ``progcost_ab``,
``filter_verify``, ``codegen_ab``, ``progcost_parts``, ``veth_bulk``) can be run by name too:
they are run as their own process with no arguments.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from bench.common import PYTHON, ROOT, private_bpffs, say

EXTRAS = (
    "ringbuf_drain",
    "core_resolve",
    "format_speed",
    "text_stages",
    "progcost_ab",
    "filter_verify",
    "codegen_ab",
    "progcost_parts",
    "veth_bulk",
)


def _w1(args: argparse.Namespace) -> str:
    from bench import w1_flood

    return w1_flood.run(repeat=args.repeat or 3, packets=args.packets or 1_000_000)


def _progcost(args: argparse.Namespace) -> str:
    from bench import prog_cost

    return prog_cost.run(repeat=args.repeat or 5, runs=args.packets or 1_000_000)


def _loadtime(args: argparse.Namespace) -> str:
    from bench import load_time

    return load_time.run(repeat=args.repeat or 5)


def _offline(args: argparse.Namespace) -> str:
    from bench import offline

    return offline.run(repeat=args.repeat or 3, packets=args.packets or 1_000_000)


def _soak(args: argparse.Namespace) -> str:
    from bench import soak

    return soak.run(packets=args.packets or 10_000_000)


BENCHES: dict[str, Callable[[argparse.Namespace], str]] = {
    "w1": _w1,
    "progcost": _progcost,
    "loadtime": _loadtime,
    "soak": _soak,
    "offline": _offline,
}


def extras() -> list[str]:
    """The other benchmark scripts that exist in this tree."""
    here = Path(__file__).resolve().parent
    return [name for name in EXTRAS if (here / f"{name}.py").exists()]


def run_extra(name: str) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([PYTHON, str(ROOT / "bench" / f"{name}.py")], env=env).returncode


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of xdptcp and pybpf beside tcpdump, xdpdump and bpftool "
        "(see bench/README.md). With no name, all five run in turn.",
    )
    p.add_argument("names", nargs="*", help=f"benchmarks: {', '.join([*BENCHES, *extras()])}")
    p.add_argument("--repeat", type=int, help="repeats per measurement (default per benchmark)")
    p.add_argument("--packets", type=int, help="frames (W1, soak) or test runs (progcost)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "bench: needs root (BPF programs, network namespaces, packet capture)", file=sys.stderr
        )
        return 2
    # `make bench` stopped with SIGTERM cleans up like Ctrl-C does: the finally blocks run.
    signal.signal(signal.SIGTERM, _interrupt)
    # Started in the background of a script, SIGINT arrives ignored; a benchmark should still
    # stop (and clean up) on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    names = args.names or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES and n not in extras()]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    # Every tool runs with TZ set (to the host's own zone file, so times print as they would
    # unset): with TZ unset, glibc's localtime(), which tcpdump calls for each packet it prints,
    # stats /etc/localtime on every call. That system call was half of tcpdump's text cost on a
    # host where system calls are dear: the reference runs at its fastest. Python's
    # time.localtime (localtime_r) does not stat.
    os.environ.setdefault("TZ", TZ)
    # bpftool (loadtime) and iproute2 (W1's empty program) mount bpffs to pin, and libxdp and
    # iproute2 make directories in it: in a bpffs of the run's own, all of it goes with the run.
    if private_bpffs():
        return _run_all(names, args)
    bpffs_before = set(os.listdir(BPFFS))  # (no namespace to be had: the host's bpffs)
    try:
        return _run_all(names, args)
    finally:
        _remove_new_empty_dirs(bpffs_before)


BPFFS = "/sys/fs/bpf"
TZ = ":/etc/localtime"


def _remove_new_empty_dirs(before: set, root: str = BPFFS) -> None:
    """What the references made under ``root`` and left with nothing in it: xdpdump (libxdp)
    makes xdp/ for its pins; iproute2 makes tc/globals/, with ip and xdp linked to tc/. New
    symbolic links go, and new directories that hold no more than empty directories: leave
    bpffs as it was found (a pin is a file, and stays)."""
    new = sorted(set(os.listdir(root)) - before)
    for entry in new:
        path = os.path.join(root, entry)
        if os.path.islink(path):
            os.unlink(path)
    for entry in new:
        path = os.path.join(root, entry)
        if os.path.isdir(path) and not os.path.islink(path) and _only_dirs(path):
            for top, dirs, _ in os.walk(path, topdown=False):
                for d in dirs:
                    os.rmdir(os.path.join(top, d))
            os.rmdir(path)


def _only_dirs(path: str) -> bool:
    return all(not files for _, _, files in os.walk(path))


def _run_all(names: list, args: argparse.Namespace) -> int:
    status = 0
    for name in names:
        if name in BENCHES:
            try:
                print(BENCHES[name](args), flush=True)
            except KeyboardInterrupt:
                say(f"{name}: interrupted (everything it started has been removed)")
                return 130
            except Exception as e:  # report and go on with the next benchmark
                say(f"{name}: failed: {e}")
                status = 1
        else:
            status |= run_extra(name)
    return status


if __name__ == "__main__":
    sys.exit(main())
