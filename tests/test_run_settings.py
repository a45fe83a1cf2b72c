"""``pybpf run --set NAME=VALUE``: the value read as the variable's BTF type says, the way the
load then shows it (``-v`` prints .rodata's values); a value not of the type is one line, never
bytes the program would take for a number (``abc`` for a pid)."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT, bpf_object, run

pytestmark = [pytest.mark.system, pytest.mark.kmatrix]  # on 6.1 and 6.12 too


def pybpf_run(*sets: str):
    args = [a for s in sets for a in ("--set", s)]
    return run(sys.executable, "-m", "pybpf", "run", str(bpf_object("tests/run_settings")),
               "-d", "0.2", "-v", *args, check=False, cwd=ROOT)  # fmt: skip


def rodata_line(stdout: str) -> str:
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("map run_sett.rodata"))
    return lines[at + 1].strip()


def test_each_type_takes_its_own_spelling() -> None:
    res = pybpf_run("targ_tgid=-5", "min_children=010", "only_threads=true", "level=LOUD",
                    "comm_prefix=sh")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert rodata_line(res.stdout) == (
        "key=0 targ_tgid=-5 min_children=10 only_threads=true level=LOUD comm_prefix=sh "
        'window={"lo":0,"hi":0}'
    )
    res = pybpf_run("min_children=0x20", "only_threads=0", "level=0")
    assert res.returncode == 0, res.stderr
    assert "min_children=32 only_threads=false level=QUIET" in rodata_line(res.stdout)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("targ_tgid=abc", "--set targ_tgid=abc: 'targ_tgid' is an integer: give a number"),
        ("targ_tgid=1e3", "'targ_tgid' is an integer: give a number"),
        ("targ_tgid=", "'targ_tgid' is an integer: give a number"),
        ("min_children=-1", "--set min_children=-1: 'min_children' is unsigned"),
        ("only_threads=2", "'only_threads' is a bool: give true or false"),
        ("level=LOUDER", "'level' is an enum: give one of QUIET, NORMAL, LOUD or a number"),
        ("window=1", "'window' is not a number, bool, enum or char array"),
        ("comm_prefix=much-too-long", "do not fit 'comm_prefix' (8 bytes)"),
    ],
)
def test_a_value_not_of_the_type_is_one_line(setting, message) -> None:
    res = pybpf_run(setting)
    assert res.returncode == 1
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("pybpf: error: ")
    assert message in res.stderr, res.stderr
