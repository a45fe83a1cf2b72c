"""Two builds of the filter compiler's code generator, side by side: the one at a git revision
(A, default HEAD) and the working tree's (B), on xdptcp's shipped object.

    python -m bench codegen_ab                      # HEAD's codegen against the tree's
    python bench/codegen_ab.py [--rev REV] [--repeat 3] [--rounds 20] [--skip-cost]

For each filter, each build's instructions, the branches they leave the verifier waiting on one
path (``branches_waiting``), and per program (XDP, tc, loaded as xdptcp loads them) the
instructions the verifier processed (``verified_insns``, the kernel's count) or its refusal,
and the median load time of ``--repeat`` loads, A and B alternating. Then the XDP program's
cost per frame with each build's filter (``BPF_PROG_TEST_RUN``, 66-byte frame, ``--rounds``
alternating rounds, as ``progcost_ab``): ``port 443`` on a frame it selects, and 200 hosts on a
frame none of them names, where every term is tested. xdptcp's bounds on a filter's size are
lifted for both builds, so that the kernel answers. Needs root.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a script: the tree's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_average, say, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OBJECT = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"


def hosts(n: int) -> str:
    """``n`` host terms from 198.18.100.1 on: none is an address of progcost's frames."""
    return " or ".join(f"host 198.18.{100 + i // 250}.{i % 250 + 1}" for i in range(n))


def ports(n: int) -> str:
    return " or ".join(f"port {i + 1}" for i in range(n))


FILTERS = {
    "port 443": "port 443",
    "tcp[13] & 2 != 0": "tcp[13] & 2 != 0",
    "80 hosts": hosts(80),
    "2000 hosts": hosts(2000),
    "3000 hosts": hosts(3000),
    "10000 hosts": hosts(10000),
    "1000 ports": ports(1000),
    "2000 ports": ports(2000),
}


def generator_at(rev: str, into: Path):
    """The ``generate`` function of codegen.py as it is at ``rev``."""
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:xdptcp/pcapfilter/codegen.py"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = into / "codegen_a.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("codegen_a", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def verify_table(generators: dict, repeat: int) -> str:
    from bench.filter_verify import load_once
    from xdptcp.pcapfilter import codegen, compile_filter

    rows = []
    for label, expr in FILTERS.items():
        shape = {}
        for build, gen in generators.items():
            codegen.generate = gen
            insns = compile_filter(expr).insns
            shape[build] = (len(insns), codegen.branches_waiting(insns))
        for program in ("XDP", "tc"):
            got: dict[str, list] = {b: [] for b in generators}
            for i in range(repeat):
                say(f"codegen_ab: {label}, {program} program, load {i + 1}/{repeat}")
                for build in ("A", "B") if i % 2 == 0 else ("B", "A"):
                    codegen.generate = generators[build]
                    got[build].append(load_once(OBJECT, expr, program == "tc"))
            cells = []
            for build in ("A", "B"):
                verified, _, refusal = got[build][0]
                ms = statistics.median(g[1] for g in got[build]) * 1000
                cells += [f"{shape[build][0]:,}", f"{shape[build][1]:,}",
                          f"{verified:,}" if verified else f"refused: {refusal}", ms]  # fmt: skip
            rows.append((label, program, *cells))
    head = ["filter", "program", "A insns", "A waiting", "A verified", "A load ms",
            "B insns", "B waiting", "B verified", "B load ms"]  # fmt: skip
    return table(
        f"Filter code, A and B: verifier, median of {repeat} loads (load average before: "
        f"{load_average()})",
        head,
        rows,
    )


def cost_lines(generators: dict, rounds: int) -> str:
    from bench import prog_cost
    from bench.progcost_ab import paired, rounds_order
    from xdptcp.pcapfilter import codegen

    out = []
    cases = (
        ("port 443", "port 443", 443, 300_000),
        ("200 hosts, none matching", hosts(200), 80, 100_000),
    )
    for label, expr, port, runs in cases:
        data = prog_cost.frames(port)["66 B"]
        ns: dict[str, list[float]] = {"A": [], "B": []}
        for i, order in enumerate(rounds_order(rounds)):
            say(f"codegen_ab: {label}, round {i + 1}/{rounds}")
            for build in order:
                codegen.generate = generators[build]
                took, _ = prog_cost.measure_drained(data, runs, expr, program="xdp_capture")
                ns[build].append(took)
        diff, faster = paired(ns["A"], ns["B"])
        out.append(
            f"xdp_capture with {label}, 66 B frame, {rounds} alternating rounds: A "
            f"{statistics.median(ns['A']):.2f} ns, B {statistics.median(ns['B']):.2f} ns a "
            f"frame; B − A {diff:+.2f} ns (the median of the rounds' differences), B the faster "
            f"in {faster} of {rounds}."
        )
    return "\n".join(out) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench/codegen_ab.py", description=__doc__.split("\n")[0])
    p.add_argument("--rev", default="HEAD", help="the revision of A's codegen.py (HEAD)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--skip-cost", action="store_true", help="the verifier's table only")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.rounds < 1:
        p.error("--repeat and --rounds must be at least 1")
    import xdptcp.pcapfilter as pcapfilter
    from xdptcp.pcapfilter import codegen

    pcapfilter.KERNEL_MAX_INSNS = pcapfilter.KERNEL_MAX_BRANCHES = 10**9  # the kernel answers
    with tempfile.TemporaryDirectory() as tmp:
        try:
            a = generator_at(args.rev, Path(tmp))
        except subprocess.CalledProcessError as e:
            raise SystemExit(f"codegen_ab: {args.rev}: {e.stderr.strip()}") from None
        generators = {"A": a, "B": codegen.generate}
        print(verify_table(generators, args.repeat))
        if not args.skip_cost:
            print(cost_lines(generators, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
