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
