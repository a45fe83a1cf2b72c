"""bench/progcost_ab.py: two builds of xdptcp's object measured alternately, with the paired
differences a change to bpf/ is judged by."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench import prog_cost, progcost_ab
from bench.common import ROOT, object_id
from tests.conftest import bpf_object


def test_the_difference_is_the_median_of_each_rounds_own() -> None:
    # A drifts from 100 to 140 over the rounds; B is 2 ns dearer than A in each round but one.
    a = [100.0, 110.0, 120.0, 130.0, 140.0]
    b = [102.0, 112.0, 119.0, 132.0, 142.0]
    assert progcost_ab.paired(a, b) == (2.0, 1)
    # (the medians alone, 120 against 119, would have called B the cheaper)


def test_each_build_runs_first_in_every_other_round() -> None:
    order = progcost_ab.rounds_order(5)
    assert order == [("A", "B"), ("B", "A"), ("A", "B"), ("B", "A"), ("A", "B")]


@pytest.mark.system
def test_an_object_against_itself_prints_both_rows_and_the_rounds(tmp_path) -> None:
    obj = bpf_object("xdptcp")
    copy = tmp_path / "copy.bpf.o"
    copy.write_bytes(obj.read_bytes())
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "progcost_ab.py"), str(obj), str(copy),
         "--rounds", "3", "--runs", "2000", "--filter", "port 443"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    sha = object_id(obj)
    row = r"^\| ([AB]) +\| (\S+) +\| (\w+) +\| +([\d.]+) \| +([\d.]+) \|$"
    rows = re.findall(row, p.stdout, re.M)
    assert [(r[0], r[1], r[2]) for r in rows] == [("A", str(obj), sha), ("B", str(copy), sha)]
    assert all(float(best) <= float(med) for *_, med, best in rows)
    assert "xdp_capture, filter 'port 443', 66 B frame, 3 rounds of 2,000 runs each" in p.stdout
    said = (
        r"B − A, the median of the 3 rounds' differences: [+-]\d+\.\d\d ns a frame; B was the "
        r"faster in [0-3] of 3 rounds\."
    )
    assert re.search(said, p.stdout), p.stdout
    assert p.stderr.count("progcost_ab rounds 1-3 of 3") == 1


@pytest.mark.parametrize(
    "script, args, said",
    [
        ("progcost_ab", ["only-one.o"], "give two objects (A and B), or none"),
        ("progcost_ab", ["--filter", "port"], "--filter: "),
        ("progcost_ab", ["--rounds", "0"], "--rounds and --runs must be at least 1"),
        ("progcost_parts", ["--runs", "0"], "--rounds and --runs must be at least 1"),
        ("progcost_parts", ["--filter", "port"], "--filter: "),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(script, args, said) -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{script}.py"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2 and said in p.stderr.splitlines()[-1], p.stderr
    assert "Traceback" not in p.stderr


def test_a_missing_object_is_named(tmp_path) -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "progcost_ab.py"), str(tmp_path / "a.o"),
         str(tmp_path / "b.o")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 1
    assert p.stderr.strip() == f"progcost_ab: {tmp_path / 'a.o'}: no such object"


def test_builds_are_measured_in_each_rounds_order_and_loaded_anew_every_block() -> None:
    opened, ran = [], []

    def opener(build):
        def open_(stack):
            opened.append(build)
            stack.callback(lambda: opened.append(f"closed {build}"))
            return lambda runs: ran.append((build, runs)) or (10.0 + len(ran), 2)

        return open_

    orders = progcost_ab.rounds_order(5)
    ns = prog_cost.in_turn({"A": opener("A"), "B": opener("B")}, orders, 7, "t", reload_every=2)
    assert [b for b, _ in ran] == [b for order in orders for b in order]
    assert {runs for _, runs in ran} == {7}
    assert ns == {"A": [11.0, 14.0, 15.0, 18.0, 19.0], "B": [12.0, 13.0, 16.0, 17.0, 20.0]}
    # three loads of each (rounds 1-2, 3-4, 5), each closed before the next
    assert opened == ["A", "B", "closed B", "closed A"] * 3


def test_progcosts_targets_are_the_median_of_paired_ratios_to_a_floor_program(monkeypatch) -> None:
    seen = {}

    def in_turn(openers, orders, runs, tool, reload_every=prog_cost.RELOAD_EVERY):
        seen.update(builds=sorted(openers), orders=orders, runs=runs)
        # the program: 110, 120, 130 ns; the floor drifts with it, 100, 100, 104
        return {"xdptcp, ring drained": [110.0, 120.0, 130.0],
                prog_cost.FLOOR_PROGRAM: [100.0, 100.0, 104.0]}  # fmt: skip

    monkeypatch.setattr(prog_cost, "in_turn", in_turn)
    ratio = prog_cost.paired_with_floor("xdptcp, ring drained", b"", rounds=3, runs=7)
    assert ratio == 1.2  # the median of 1.10, 1.20, 1.25
    assert seen["builds"] == sorted(["xdptcp, ring drained", prog_cost.FLOOR_PROGRAM])
    assert seen["orders"] == [
        ["xdptcp, ring drained", prog_cost.FLOOR_PROGRAM],
        [prog_cost.FLOOR_PROGRAM, "xdptcp, ring drained"],
        ["xdptcp, ring drained", prog_cost.FLOOR_PROGRAM],
    ]
    assert seen["runs"] == 7
