"""bench/progcost_parts.py: the XDP program built with one part taken out at a time, measured
in turn with the whole program and the floor, each round's differences giving a part's cost."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench import prog_cost
from bench import progcost_parts as parts
from bench.common import ROOT

SOURCE = (ROOT / "bpf" / "xdptcp.bpf.c").read_text()


@pytest.mark.parametrize("name", list(parts.PARTS))
def test_each_part_is_found_once_in_the_program_and_taken_out(name) -> None:
    out = parts.take_out(SOURCE, name)
    assert out != SOURCE
    for old, new in parts.PARTS[name][1]:
        old = parts.text_of(SOURCE, old)
        assert SOURCE.count(old) == 1
        assert (old in out) is (old in new)  # gone, unless the replacement keeps it
    # the other parts are still there
    for other in parts.PARTS:
        if other != name:
            assert all(parts.text_of(SOURCE, old) in out for old, _ in parts.PARTS[other][1])


def test_all_parts_at_once_take_out_every_one() -> None:
    out = parts.take_out(SOURCE, parts.ALL)
    for name in parts.PARTS:
        assert parts.take_out(SOURCE, name) != SOURCE
        assert all(parts.text_of(SOURCE, old) not in out for old, _ in parts.PARTS[name][1])
    assert "c->emitted++;" in out and "bpf_ringbuf_submit(rec, 0);" in out
    assert "rec->ts_ns = bpf_ktime_get_ns();" in out and "rec->l4_len" not in out


def test_a_span_is_the_text_from_its_first_line_to_its_last() -> None:
    ((span, _),) = parts.PARTS["record fields"][1]
    text = parts.text_of(SOURCE, span)
    assert text.startswith("\trec->ifindex = o->ifindex;\n") and text.endswith("reserved2 = 0;\n")
    assert len(text.splitlines()) == 13
    cut = SOURCE.replace("\trec->reserved2 = 0;\n", "")
    with pytest.raises(parts.PartsError, match="'rec->ifindex = o->ifindex;' is found 0 times"):
        parts.take_out(cut, "record fields")


def test_a_part_the_source_no_longer_has_is_named() -> None:
    changed = SOURCE.replace("\tc->tcp++;\n", "\tc->tcp += 1;\n")
    with pytest.raises(parts.PartsError) as e:
        parts.take_out(changed, "counts")
    assert str(e.value) == (
        "part 'counts': 'c->tcp++;' is found 0 times in bpf/xdptcp.bpf.c, not once (the source "
        "changed: update bench/progcost_parts.py)"
    )


def test_each_build_runs_first_in_turn() -> None:
    order = prog_cost.rotations(["p", "a", "b"], 4)
    assert order == [["p", "a", "b"], ["a", "b", "p"], ["b", "p", "a"], ["p", "a", "b"]]


def test_a_parts_cost_is_the_median_of_each_rounds_own_difference() -> None:
    # the machine drifts from 100 to 140; without the part each round is 3 ns faster but one
    program = [100.0, 110.0, 120.0, 130.0, 140.0]
    without = [97.0, 107.0, 121.0, 127.0, 137.0]
    assert parts.less_than_program(program, without) == (3.0, 4)


def run_parts(*args: str) -> str:
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "progcost_parts.py"), "--runs", "2000", *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    rounds = args[args.index("--rounds") + 1]
    assert p.stderr.count(f"progcost_parts rounds 1-{rounds} of {rounds}") == 1
    return p.stdout


ROW = r"^\| (.+?) +\| .+? \| +([\d.]+) \| +([\d.]+) \| +(-|[+-][\d.]+) \| (- +|\d+ of \d+) *\|$"


@pytest.mark.system
def test_a_short_run_measures_every_build_and_says_what_is_left() -> None:
    out = run_parts("--rounds", "2")
    rows = {r[0]: r[1:] for r in re.findall(ROW, out, re.M)}
    builds = [f"without {n}" for n in parts.PARTS]
    assert list(rows) == [parts.PROGRAM, *builds, parts.ALL, parts.FLOOR]
    assert all(float(best) <= float(med) for med, best, *_ in rows.values())
    assert all(r[3].strip() in ("-", "0 of 2", "1 of 2", "2 of 2") for r in rows.values())
    assert "xdp_capture_all, 66 B frame, 2 rounds of 2,000 runs each" in out
    said = (
        r"The program is -?[\d.]+ ns above the floor program \(the median of the rounds' "
        r"differences\), [\d.]+× it \(the median of the rounds' ratios\)\. The 5 parts, each "
        r"taken out alone, add up to -?[\d.]+ ns; the five of the C source taken out at once "
        r"are -?[\d.]+ ns\. With those five out the build is still -?[\d.]+ ns above the floor"
    )
    assert re.search(said, " ".join(out.split())), out


@pytest.mark.system
def test_with_a_filter_the_filter_is_one_more_part() -> None:
    out = run_parts("--rounds", "1", "--filter", "port 443", "--write")
    rows = [r[0] for r in re.findall(ROW, out, re.M)]
    assert rows[-4:] == ["without record fields", "without filter", parts.ALL, parts.FLOOR]
    assert "xdp_capture, filter 'port 443', pcapng blocks, 66 B frame, 1 rounds" in out
    assert "The 6 parts, each taken out alone" in " ".join(out.split())


# (bad arguments: tests/test_progcost_ab.py, for both scripts)
