"""Two builds of xdptcp's BPF object side by side: the XDP program's cost per frame under
BPF_PROG_TEST_RUN, A and B alternating, for a change to bpf/ smaller than progcost's noise.

``progcost`` measures each of its rows a few times, a minute or more apart. The speed of a
shared machine drifts by several nanoseconds a frame over such a span, so a change of a few
nanoseconds is lost between its repeats. Here both builds are loaded side by side and every
round measures A and then B, or B and then A (the order is swapped each round, so neither always
runs first), each as progcost's `ring drained` rows measure xdptcp (the object's default ring,
configured as xdptcp configures it, emptied between test runs). Rounds are short and many (200
of 50,000 runs by default): the two measurements of a round are milliseconds apart. Both builds
are loaded anew every 20 rounds: where the kernel puts a program and its ring moves a load's
speed by a nanosecond or two (an object against itself, loaded once for all the rounds,
measured 2 ns apart in 126 of 200 rounds here), and ten loads of each average that out. The
table gives each build's median and best round and the median of the rounds' differences
B − A: what B changes, with the drift taken out of each pair.

    python -m bench progcost_ab              # the object HEAD ships against build/bpf's
    python bench/progcost_ab.py [A.o B.o] [--rounds 200] [--runs 50000] [--filter EXPR]
                                [--program NAME] [--frame 66|1500] [--write]

With no objects, A is the object HEAD ships (xdptcp/data/xdptcp.bpf.o as committed) and B the
one ``make bpf`` last built from the working tree (build/bpf/xdptcp.bpf.o): edit bpf/, run
``make bpf``, then this. ``--filter`` splices a filter in as xdptcp does (the program is then
xdp_capture, and the frame goes to port 443 with "GET " at the start of its payload, as
progcost's filter rows); ``--write`` has the program write pcapng blocks, as ``xdptcp -w``;
``--program`` names another program of the object. Needs root and ``make bpf``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a script: the tree's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, load_average, object_id, table  # noqa: E402

BUILT = ROOT / "build" / "bpf" / "xdptcp.bpf.o"
SHIPPED = "xdptcp/data/xdptcp.bpf.o"
PAYLOAD = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"  # (progcost's filter rows' frame)


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, int]:
    """The median of the rounds' differences b − a, and in how many rounds b was the faster."""
    diffs = [y - x for x, y in zip(a, b)]
    return statistics.median(diffs), sum(d < 0 for d in diffs)


def rounds_order(n: int) -> list[tuple[str, str]]:
    """Which build runs first in each of ``n`` rounds: A then B, B then A, and so on."""
    from bench.prog_cost import rotations

    return [tuple(order) for order in rotations(("A", "B"), n)]


def shipped_at_head(into: Path) -> Path:
    """The object HEAD ships, written to ``into``."""
    try:
        blob = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"HEAD:{SHIPPED}"], check=True, capture_output=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"progcost_ab: cannot read {SHIPPED} at HEAD: {e}") from None
    into.write_bytes(blob)
    return into


def objects_to_compare(objects: Sequence[Path], tmp: Path, tool: str) -> tuple[Path, Path, tuple]:
    """A and B, and their labels: the two ``objects`` named, or else the object HEAD ships
    (written into ``tmp``) and the one ``make bpf`` built. One line for a missing object."""
    if objects:
        (a, b), labels = objects, ()
    else:
        a, b = shipped_at_head(tmp / "head.bpf.o"), BUILT
        labels = (f"{SHIPPED} at HEAD", str(BUILT.relative_to(ROOT)))
    for path in (a, b):
        if not path.is_file():
            hint = ": run `make bpf` first" if path == BUILT else ""
            raise SystemExit(f"{tool}: {path}: no such object{hint}")
    return a, b, labels


def run(a: Path, b: Path, rounds: int, runs: int, expr: str, program: Optional[str],
        frame_size: int, write: bool, labels: Sequence[str] = ()) -> str:  # fmt: skip
    """The table: ``labels`` name A and B (default: their paths)."""
    from bench import prog_cost
    from xdptcp.record import OUT_NONE, OUT_PCAPNG

    frames = prog_cost.frames(443, PAYLOAD) if expr else prog_cost.frames()
    data = next(f for f in frames.values() if len(f) == frame_size)
    out = OUT_PCAPNG if write else OUT_NONE
    name = program or ("xdp_capture" if expr else prog_cost.UNFILTERED)
    load = load_average()
    paths = {"A": a, "B": b}
    openers = {
        build: (lambda stack, build=build: prog_cost.open_drained(
            stack, paths[build], expr, data, out, True, name))
        for build in "AB"
    }  # fmt: skip
    ns = prog_cost.in_turn(openers, rounds_order(rounds), runs, "progcost_ab")
    diff, faster = paired(ns["A"], ns["B"])
    what = f"{name}" + (f", filter '{expr}'" if expr else "") + (", pcapng blocks" if write else "")
    names = dict(zip("AB", labels or (str(a), str(b))))
    rows = [
        (build, names[build], object_id(paths[build]), statistics.median(ns[build]),
         min(ns[build]))
        for build in ("A", "B")
    ]  # fmt: skip
    title = (
        f"XDP program cost, A and B alternating: {what}, {frame_size} B frame, {rounds} rounds "
        f"of {runs:,} runs each (load average before: {load})"
    )
    text = table(title, ["build", "object", "sha256", "median ns", "best ns"], rows)
    return (
        f"{text.rstrip()}\n\nB − A, the median of the {rounds} rounds' differences: "
        f"{diff:+.2f} ns a frame; B was the faster in {faster} of {rounds} rounds.\n"
    )


def add_round_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the benchmarks that measure builds in rounds (this one, progcost_parts)."""
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--runs", type=int, default=50_000, help="test runs per measurement")
    p.add_argument("--filter", default="", help="a pcap-filter expression, spliced in")
    p.add_argument("--write", action="store_true", help="pcapng blocks, as xdptcp -w")


def check_round_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One line and exit 2 for a bad value of ``add_round_arguments``'s options."""
    if args.rounds < 1 or args.runs < 1:
        p.error("--rounds and --runs must be at least 1")
    if args.filter:
        from xdptcp.pcapfilter import FilterError, compile_filter

        try:
            compile_filter(args.filter)
        except FilterError as e:
            p.error(f"--filter: {e}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench/progcost_ab.py", description=__doc__.split("\n")[0])
    p.add_argument("objects", nargs="*", type=Path, help="A and B (default: HEAD's, build's)")
    add_round_arguments(p)
    p.add_argument("--program", help="the program to run (default: the one xdptcp loads)")
    p.add_argument("--frame", type=int, choices=(66, 1500), default=66)
    args = p.parse_args(argv)
    if len(args.objects) not in (0, 2):
        p.error("give two objects (A and B), or none")
    check_round_arguments(p, args)
    with tempfile.TemporaryDirectory() as tmp:
        a, b, labels = objects_to_compare(args.objects, Path(tmp), "progcost_ab")
        from pybpf.errors import BPFError

        try:
            print(run(a, b, args.rounds, args.runs, args.filter, args.program, args.frame,
                      args.write, labels))  # fmt: skip
        except BPFError as e:
            raise SystemExit(f"progcost_ab: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
