"""What a filter costs at load: the kernel verifier's work on xdptcp's programs, two builds.

The verifier follows a static subprogram, such as the spliced filter, once for each state of
its caller at the call that it cannot prune: where the program calls the filter decides how
often a filter of thousands of terms is followed, how long the load takes, and whether the
kernel takes the filter at all (a million instructions is its limit). Per filter, each build's
XDP program (the one xdptcp loads for the case) and tc program are loaded as xdptcp loads them
(multi-buffer code live, the filter spliced in with its .rodata switches), one at a time, and
the table gives the instructions the verifier processed (``verified_insns``, the kernel's own
count) and the load's wall time (the median of ``--repeat`` loads, A and B alternating), or the
kernel's refusal.

    python -m bench filter_verify            # the object HEAD ships against build/bpf's
    python bench/filter_verify.py [A.o B.o] [--repeat 3]

With no objects, A is the object HEAD ships (xdptcp/data/xdptcp.bpf.o as committed) and B the
one ``make bpf`` last built (build/bpf/xdptcp.bpf.o). Needs root and ``make bpf``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a script: the tree's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_average, object_id, say, table  # noqa: E402
from bench.progcost_ab import objects_to_compare  # noqa: E402


def hosts(n: int) -> str:
    return " or ".join(f"host 198.18.{i // 250}.{i % 250 + 1}" for i in range(n))


FILTERS = {
    "(none)": "",
    "port 443": "port 443",
    "greater 1000 (reads len)": "greater 1000",
    "80 hosts": hosts(80),
    "1000 hosts": hosts(1000),
    "2000 hosts": hosts(2000),
}


def load_once(path: Path, expr: str, tc: bool) -> tuple[int, float, str]:
    """(verified instructions, seconds, "") for one load of the XDP program (or with ``tc``,
    the tc program), or (0, seconds, the refusal)."""
    from pybpf import ObjectSpec, load
    from pybpf.errors import BPFError
    from xdptcp.attach import PROGRAM, PROGRAM_ALL, TC_PROGRAM

    spec = ObjectSpec.from_file(str(path))
    values = {"xdptcp_xdp_frags": 1}
    if expr:
        from xdptcp.pcapfilter import compile_filter

        flt = compile_filter(expr)
        for name, insns in flt.code().items():
            spec.replace_function(name, insns)
        values.update(flt.rodata_values())
    values = {k: v for k, v in values.items() if k in spec.rodata}  # (an older build's)
    spec.rodata.update_from(values)
    name = PROGRAM if expr or PROGRAM_ALL not in spec.programs else PROGRAM_ALL
    name = TC_PROGRAM if tc else name
    start = time.perf_counter()
    try:
        with load(spec, programs=[name]) as obj:
            took = time.perf_counter() - start
            return obj.programs[name].info().verified_insns, took, ""
    except BPFError as e:
        return 0, time.perf_counter() - start, str(e).split(": ")[-1][:60]


def run(a: Path, b: Path, repeat: int, labels: Sequence[str] = ()) -> str:
    load = load_average()
    names = dict(zip("AB", labels or (str(a), str(b))))
    rows = []
    for (label, expr), program in ((f, p) for f in FILTERS.items() for p in ("XDP", "tc")):
        got: dict[str, list] = {"A": [], "B": []}
        for i in range(repeat):
            say(f"filter_verify: {label}, {program} program, load {i + 1}/{repeat}")
            for build in ("A", "B") if i % 2 == 0 else ("B", "A"):
                got[build].append(load_once(a if build == "A" else b, expr, program == "tc"))
        cells, counts = [], []
        for build in ("A", "B"):
            insns, _, refused = got[build][0]
            counts.append(insns)
            ms = statistics.median(t for _, t, _ in got[build]) * 1000
            cells += [refused or f"{insns:,}", ms]
        ratio = f"{counts[1] / counts[0]:.2f}x" if all(counts) else "-"
        rows.append([label, program, *cells, ratio])
    title = (
        f"Filter verification, xdptcp's programs: A {names['A']} ({object_id(a)}), "
        f"B {names['B']} ({object_id(b)}), median of {repeat} loads "
        f"(load average before: {load})"
    )
    header = ["filter", "program", "A verified insns", "A load ms", "B verified insns",
              "B load ms", "B / A insns"]  # fmt: skip
    return table(title, header, rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench/filter_verify.py", description=__doc__.split("\n")[0])
    p.add_argument("objects", nargs="*", type=Path, help="A and B (default: HEAD's, build's)")
    p.add_argument("--repeat", type=int, default=3, help="loads per filter and build")
    args = p.parse_args(argv)
    if len(args.objects) not in (0, 2):
        p.error("give two objects (A and B), or none")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        a, b, labels = objects_to_compare(args.objects, Path(tmp), "filter_verify")
        print(run(a, b, args.repeat, labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
