"""bench/filter_verify.py: the verifier's work on xdptcp's programs, per filter, two builds."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench import filter_verify
from bench.common import ROOT, object_id
from tests.conftest import bpf_object


@pytest.mark.system
def test_an_object_against_itself_gives_the_kernels_count_for_each_filter(tmp_path) -> None:
    obj = bpf_object("xdptcp")
    copy = tmp_path / "copy.bpf.o"
    copy.write_bytes(obj.read_bytes())
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "filter_verify.py"), str(obj), str(copy),
         "--repeat", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert f"A {obj} ({object_id(obj)}), B {copy} ({object_id(copy)})" in p.stdout
    row = (
        r"^\| (.+?) +\| (XDP|tc) +\| +([\d,]+) \| +([\d.]+) \| +([\d,]+) \| +([\d.]+) \| "
        r"+([\d.]+)x \|$"
    )
    rows = {(r[0], r[1]): r[2:] for r in re.findall(row, p.stdout, re.M)}
    assert list(rows) == [(f, prog) for f in filter_verify.FILTERS for prog in ("XDP", "tc")]
    for key, (a, _, b, _, ratio) in rows.items():
        assert a == b and ratio == "1.00", key  # the same object: the same count
    for prog in ("XDP", "tc"):
        count = {f: int(r[0].replace(",", "")) for (f, p_), r in rows.items() if p_ == prog}
        # A filter adds to the program, and a longer one more: the verifier follows it.
        assert count["(none)"] < count["port 443"] < count["80 hosts"] < count["1000 hosts"]
        assert count["1000 hosts"] < count["2000 hosts"] < 1_000_000, prog


@pytest.mark.parametrize(
    "args, said",
    [(["only-one.o"], "give two objects (A and B), or none"), (["--repeat", "0"], "at least 1")],
)
def test_bad_arguments_are_one_line(args, said) -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "filter_verify.py"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2 and said in p.stderr and "Traceback" not in p.stderr
