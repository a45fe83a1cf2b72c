"""bench/load_time.py's zipapp rows: the zipapp built as ``make pyz`` builds it, sources only,
and run by another CPython present, as built and built ``--python`` for it."""

from __future__ import annotations

import re
import zipfile

import pytest

from bench import load_time

from conftest import cannot_run


def test_the_other_python_is_another_cpython_3() -> None:
    found = load_time.other_python()
    if found is None:
        cannot_run("no CPython 3.9-3.13 on this machine but the one running the tests")
    python, version = found
    assert re.fullmatch(r"3\.(9|1[0-3])", version) and version != load_time.PYTHON_VERSION
    assert load_time.subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip() == version  # fmt: skip


@pytest.mark.system
def test_zipapp_rows_time_each_build_under_each_cpython() -> None:
    found = load_time.other_python()
    if found is None:
        cannot_run("no CPython 3.9-3.13 on this machine but the one running the tests")
    notes: list[str] = []
    rows = load_time.pyz_rows(1, notes)
    assert notes == []
    this, other = load_time.PYTHON_VERSION, found[1]
    assert [r[0] for r in rows] == [
        "xdptcp.pyz -i IFACE, compiled modules",
        "xdptcp.pyz -i IFACE, --no-bytecode",
        f"xdptcp.pyz -i IFACE, under {other}, compiled for {this} only",
        f"xdptcp.pyz -i IFACE, under {other}, --python for it",
    ]
    assert all(r[1] == "spawn to 'capturing on'" and float(r[2]) > 0 for r in rows), rows
    # the last row's zipapp carries the modules compiled for the other CPython; the third's not
    tag = "__bytecode__/cpython-" + other.replace(".", "") + "/xdptcp/entry.pyc"
    for build, has in (("pyz-other", True), ("pyz", False)):
        with zipfile.ZipFile(load_time.ROOT / "build" / "bench" / build / "xdptcp.pyz") as z:
            assert (tag in z.namelist()) is has, build


def test_the_spawn_row_is_the_median_of_more_spawns_than_the_other_rows(monkeypatch) -> None:
    """xdptcp -i's spawn is timed ``SPAWN_REPEAT`` times as often as the other rows, and the
    table's title says of how many its median is."""
    asked = []

    def start(repeat, command=None):
        asked.append(repeat)
        return [0.09 + i / 1000 for i in range(repeat)]

    monkeypatch.setattr(load_time, "compile_sources", lambda: None)
    monkeypatch.setattr(load_time, "object_rows", lambda *a, **k: ([], {}))
    monkeypatch.setattr(load_time, "pick_core_object", lambda: (None, "none here"))
    monkeypatch.setattr(load_time, "xdptcp_start", start)
    monkeypatch.setattr(load_time, "pyz_rows", lambda repeat, notes: [])
    monkeypatch.setattr(load_time, "interpreter_rows", lambda repeat: [])
    out = load_time.run(3)
    assert asked == [3 * load_time.SPAWN_REPEAT] and load_time.SPAWN_REPEAT > 1
    assert f"median of 3, xdptcp -i's of {3 * load_time.SPAWN_REPEAT} " in out
    row = next(line for line in out.splitlines() if line.startswith("| xdptcp -i IFACE "))
    assert " 95.5 " in row  # the median of 90..101 ms


def test_the_spawn_is_timed_as_a_user_runs_xdptcp(tmp_path) -> None:
    """The console script beside the interpreter when its first line names that interpreter;
    ``python -m xdptcp`` without one, or when it is another interpreter's."""
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    assert load_time.console_script(str(python)) == (str(python), "-m", "xdptcp")
    script = python.parent / "xdptcp"
    script.write_text(f"#!{python}\nimport sys\n")
    assert load_time.console_script(str(python)) == (str(script),)
    script.write_text("#!/usr/bin/python3\nimport sys\n")
    assert load_time.console_script(str(python)) == (str(python), "-m", "xdptcp")
    # (the venv the tests run from has one: make venv installs the package)
    installed = load_time.Path(load_time.PYTHON).parent / "xdptcp"
    if installed.exists():
        assert load_time.console_script() == (str(installed),)
