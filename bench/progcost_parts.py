"""Where the XDP program's time above its floor goes: xdptcp's program built from the working
tree, against builds of it with one part taken out, and against the floor, all measured in
turn within each round.

``progcost`` holds the program to its floor: the time stamp, the reservation, the copy of the
headers and the submission, which no capture can skip. This says what the rest costs, part by
part. Each round measures every build once, the order rotated from round to round (so no build
always runs first), each as progcost's `ring drained` row measures xdptcp (``xdp_capture_all``,
the 66-byte frame, the object's default ring, configured as xdptcp configures it, emptied
between test runs); the floor is one program doing the floor's work (``progcost``'s diagnostic
parts in one: ``bpf_ktime_get_ns``, a reservation of xdptcp's record, the 66 bytes copied with
8-byte loads and stores, the submission). For each build the table gives its median, its best
round, and the median of the rounds' own differences from the whole program: what the part
taken out costs, with the machine's drift taken out of each pair.

    python -m bench progcost_parts
    python bench/progcost_parts.py [--rounds 200] [--runs 50000] [--filter EXPR] [--write]

``--filter`` splices a filter in as xdptcp does (the program is then xdp_capture, on a frame to
port 443 with "GET " in its payload, as progcost's filter rows; one more row is the same build
without the filter), ``--write`` has the program write pcapng blocks, as ``xdptcp -w``.

A part is taken out of a copy of ``bpf/xdptcp.bpf.c`` by replacing a piece of its text, each
found exactly once (else the script names the part and stops: the source changed under it),
and the copy is built with the Makefile's flags (``make bpf-cflags``). Such a build is a
measurement, not a capture program: without the parse, every frame is taken for the bench's
IPv4 TCP frame. Needs root, clang and ``make bpf``.
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

from bench.common import ROOT, load_average, table  # noqa: E402

SOURCE = "xdptcp.bpf.c"
PROGRAM = "program"  # the whole program, as the working tree builds it
FLOOR = "floor program"  # (prog_cost.FLOOR_PROGRAM: prog_cost is imported only to run)
ALL = "all five parts"
FILTER = "filter"

# The parse: the offsets of the bench's frame (IPv4, TCP with 12 bytes of options), each through
# a register the compiler knows nothing of, so that what follows is built as for a parsed frame.
_CONSTANT_FRAME = """\
	{
		__u32 l3 = 14, l4 = 34, l4_len = 32;

		barrier_var(l3);
		barrier_var(l4);
		barrier_var(l4_len);
		f.l3_off = l3;
		f.l4_off = l4;
		f.l4_len = l4_len;
		f.ip_version = 4;
		v = V_TCP;
	}
	if (!select_frame(c, v, selected))
		return XDP_PASS;
	emit(ctx, HOOK_XDP"""


class Span(tuple):
    """The lines from one to another, both included: ``Span((first, last))``."""


# name: (what is taken out, the (text, replacement) pairs that take it out)
PARTS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "parse": (
        "the walk through the Ethernet, IP and TCP headers (the frame's offsets given)",
        (
            (
                "\tv = parse(data, data_end, &f);\n\tif (!select_frame(c, v, selected))\n"
                "\t\treturn XDP_PASS;\n\temit(ctx, HOOK_XDP",
                _CONSTANT_FRAME,
            ),
        ),
    ),
    "wakeups": (
        "the reader's batched wakeups (the kernel's own rule instead, as the floor's)",
        (("\tbpf_ringbuf_submit(rec, wakeup_flags(c));", "\tbpf_ringbuf_submit(rec, 0);"),),
    ),
    "first buffer": (
        "the look at whether the frame's first buffer is all of it",
        (
            (
                "if (xdptcp_xdp_frags && !asked && !first_buffer_is_all(data, data_end))",
                "if (xdptcp_xdp_frags && !asked && 0)",
            ),
        ),
    ),
    "counts": (
        "a captured frame's counts: packets, tcp, matched (emitted stays: the wakeups count by it)",
        (("\tc->packets++;\n", ""), ("\tc->tcp++;\n", ""), ("\tc->matched++;\n", "")),
    ),
    "record fields": (
        "the record header's fields but its time and captured length",
        ((Span(("\trec->ifindex = o->ifindex;\n", "\trec->reserved2 = 0;\n")), ""),),
    ),
}


class PartsError(Exception):
    """A part's text not found once in the source, or a build that failed: one line."""


def text_of(source: str, old) -> str:
    """The text a part replaces: ``old`` itself, or for a Span, the text of ``source`` from
    its first line to its last (where that is not found: the lines joined by an ellipsis)."""
    if not isinstance(old, Span):
        return old
    first, last = old
    start = source.find(first)
    end = source.find(last, start) if start >= 0 else -1
    return source[start : end + len(last)] if end >= 0 else f"{first}...\n{last}"


def take_out(source: str, name: str) -> str:
    """``source`` with the part ``name`` taken out (ALL: every part)."""
    names = list(PARTS) if name == ALL else [name]
    for part in names:
        for old, new in PARTS[part][1]:
            old = text_of(source, old)
            found = source.count(old)
            if found != 1:
                first = old.strip().splitlines()[0]
                raise PartsError(
                    f"part '{part}': '{first}' is found {found} times in bpf/{SOURCE}, not once "
                    "(the source changed: update bench/progcost_parts.py)"
                )
            source = source.replace(old, new)
    return source


def bpf_cflags() -> list[str]:
    """The flags ``make bpf`` builds the objects with."""
    p = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), "bpf-cflags"],
        capture_output=True, text=True,
    )  # fmt: skip
    if p.returncode != 0 or not p.stdout.strip():
        raise PartsError(f"make bpf-cflags failed: {p.stderr.strip() or 'no output'}")
    return p.stdout.split()


def build(name: str, tmp: Path, cflags: Sequence[str]) -> Path:
    """The working tree's program with ``name`` taken out (PROGRAM: nothing), built into
    ``tmp``. The copy of bpf/ holds its top-level sources; bpf/include is the tree's."""
    src = tmp / name.replace(" ", "_")
    src.mkdir()
    for path in (ROOT / "bpf").iterdir():
        if path.suffix in (".c", ".h"):
            text = path.read_text()
            if path.name == SOURCE and name != PROGRAM:
                text = take_out(text, name)
            (src / path.name).write_text(text)
    out = src / "xdptcp.bpf.o"
    cmd = ["clang", *cflags, "-I", str(src), "-c", str(src / SOURCE), "-o", str(out)]
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    except OSError as e:
        raise PartsError(f"clang: {e.strerror}") from None
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        raise PartsError(f"building without '{name}' failed: {last}")
    return out


def less_than_program(program: Sequence[float], other: Sequence[float]) -> tuple[float, int]:
    """The median of the rounds' differences program − other, and in how many rounds the
    program was the slower."""
    diffs = [p - o for p, o in zip(program, other)]
    return statistics.median(diffs), sum(d > 0 for d in diffs)


def run(rounds: int, runs: int, expr: str = "", write: bool = False) -> str:
    """The table. With ``expr``, the program is xdp_capture with that filter spliced in (on a
    frame to port 443 that it selects, as progcost's filter rows), and one more row is the same
    build without it (xdp_capture_all); with ``write``, the program writes pcapng blocks."""
    from bench import prog_cost
    from bench.progcost_ab import PAYLOAD
    from xdptcp.record import OUT_NONE, OUT_PCAPNG

    cflags = bpf_cflags()
    data = (prog_cost.frames(443, PAYLOAD) if expr else prog_cost.frames())["66 B"]
    out = OUT_PCAPNG if write else OUT_NONE
    names = [PROGRAM, *PARTS, *([FILTER] if expr else []), ALL, FLOOR]
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        objects = {n: build(n, Path(tmp), cflags) for n in names if n not in (FLOOR, FILTER)}
        objects[FILTER] = objects[PROGRAM]

        def opener(name: str):
            if name == FLOOR:
                return prog_cost.floor_program(data)
            flt = "" if name == FILTER else expr
            return lambda stack: prog_cost.open_drained(stack, objects[name], flt, data, out)

        openers = {name: opener(name) for name in names}
        ns = prog_cost.in_turn(openers, prog_cost.rotations(names, rounds), runs, "progcost_parts")
    whole = ns[PROGRAM]
    program = f"xdp_capture, filter '{expr}'" if expr else "xdp_capture_all"
    program += ", pcapng blocks" if write else ""
    rows = []
    for name in names:
        what = (
            f"{program} as the working tree builds it" if name == PROGRAM
            else "the filter (the same build's xdp_capture_all)" if name == FILTER
            else "bpf_ktime_get_ns, reserve, copy 66 bytes, submit" if name == FLOOR
            else "every part below the program at once" if name == ALL
            else PARTS[name][0]
        )  # fmt: skip
        less, slower = less_than_program(whole, ns[name])
        cells = ("-", "-") if name == PROGRAM else (f"{less:+.2f}", f"{slower} of {rounds}")
        label = name if name in (PROGRAM, FLOOR, ALL) else f"without {name}"
        rows.append((label, what, statistics.median(ns[name]), min(ns[name]), *cells))
    title = (
        f"XDP program cost by part, all builds in turn each round: {program}, 66 B frame, "
        f"{rounds} rounds of {runs:,} runs each (load average before: {load_before})"
    )
    text = table(
        title,
        ["build", "taken out", "median ns", "best ns", "program − build, ns", "program slower in"],
        rows,
    )
    above, _ = less_than_program(whole, ns[FLOOR])
    ratio = statistics.median(p / f for p, f in zip(whole, ns[FLOOR]))
    alone = [n for n in names if n not in (PROGRAM, ALL, FLOOR)]
    parts = sum(less_than_program(whole, ns[n])[0] for n in alone)
    together, _ = less_than_program(whole, ns[ALL])
    left, _ = less_than_program(ns[ALL], ns[FLOOR])
    return (
        f"{text.rstrip()}\n\nThe program is {above:.2f} ns above the floor program (the median "
        f"of the rounds' differences), {ratio:.3f}× it (the median of the rounds' ratios). The "
        f"{len(alone)} parts, each taken out alone, add up to {parts:.2f} ns; the five of the C "
        f"source taken out at once are {together:.2f} ns. With those five out the build is "
        f"still {left:.2f} ns above the floor: "
        "what remains of the program (the counters' lookup, its settings read, the record's "
        "length worked out and the bounds checks on it, its stores of the frame's length and "
        f"counts{', the pcapng block around the record' if write else ''}).\n"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    from bench.progcost_ab import add_round_arguments, check_round_arguments

    p = argparse.ArgumentParser(prog="bench/progcost_parts.py", description=__doc__.split("\n")[0])
    add_round_arguments(p)
    args = p.parse_args(argv)
    check_round_arguments(p, args)
    from pybpf.errors import BPFError

    try:
        print(run(args.rounds, args.runs, args.filter, args.write))
    except (PartsError, BPFError) as e:
        raise SystemExit(f"progcost_parts: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
