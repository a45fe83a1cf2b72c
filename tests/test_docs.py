"""The documentation cannot drift from the code.

docs/regen.py runs every ``console`` and ``pycon`` example of docs/*.md and compares the output
with what the page shows (after hiding only the values listed in its NORMALISE rules). The system
test runs all of them against the real kernel; the unit tests prove that the checker notices a
changed output, a broken link and a missing heading, so a green run means something.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, bpf_object, need_tool

sys.path.insert(0, str(ROOT / "docs"))
import regen  # noqa: E402

DOCS = sorted((ROOT / "docs").glob("*.md"))


def _check(tmp_path: Path, text: str) -> list[str]:
    page = tmp_path / "page.md"
    page.write_text(text)
    lines = page.read_text().splitlines()
    blocks = regen.find_blocks(lines)
    regen.run_file(page, blocks, lambda _msg: None)
    return regen.differences(page, blocks)


def test_every_relative_link_points_to_a_file_or_heading() -> None:
    pages = [*DOCS, ROOT / "README.md", *sorted((ROOT / "bench").glob("*.md"))]
    assert ROOT / "bench" / "RESULTS.md" in pages
    problems = [msg for page in pages for msg in regen.broken_links(page)]
    assert problems == []


def test_the_docs_have_examples_to_check() -> None:
    for name in ("how-a-loader-works.md", "xdptcp.md"):
        lines = (ROOT / "docs" / name).read_text().splitlines()
        steps = [s for b in regen.find_blocks(lines) for s in b.steps]
        assert len(steps) >= 10, name


def test_a_changed_output_is_reported(tmp_path: Path) -> None:
    same = "```console\n$ echo hello; echo world\nhello\nworld\n```\n"
    assert _check(tmp_path, same) == []
    changed = "```console\n$ echo hello; echo world\nhello\nearth\n```\n"
    (problem,) = _check(tmp_path, changed)
    assert "$ echo hello" in problem and "-earth" in problem and "+world" in problem


def test_python_sessions_are_checked_like_the_interpreter(tmp_path: Path) -> None:
    ok = (
        "```pycon\n>>> x = 6 * 7\n>>> x\n42\n"
        ">>> for i in range(2):\n...     print(i)\n...\n0\n1\n```\n"
    )
    assert _check(tmp_path, ok) == []
    wrong = "```pycon\n>>> 6 * 7\n41\n```\n"
    assert len(_check(tmp_path, wrong)) == 1
    error = (
        "```pycon\n>>> 1 / 0\nTraceback (most recent call last):\n  ...\n"
        "ZeroDivisionError: division by zero\n```\n"
    )
    assert _check(tmp_path, error) == []


def test_only_per_run_values_are_normalised() -> None:
    assert regen.normalise("map 'm': created ARRAY id 12 fd 4") == regen.normalise(
        "map 'm': created ARRAY id 9071 fd 7"
    )
    assert regen.normalise("retval 2\nduration 153 ns") == regen.normalise(
        "retval 2\nduration 9 ns"
    )
    # the program tag is a hash of the instructions: it must not be hidden
    assert regen.normalise("tag ac38d5d611fb9f29") != regen.normalise("tag 122ab40345fa25d2")
    assert regen.normalise("insns 837") != regen.normalise("insns 838")


def test_write_puts_the_real_output_back(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("Intro.\n\n```console\n$ echo fresh\nstale\n```\n\nEnd.\n")
    assert regen.main(["--write", "-q", str(page)]) == 0
    assert page.read_text() == "Intro.\n\n```console\n$ echo fresh\nfresh\n```\n\nEnd.\n"
    assert regen.main(["--check", "-q", str(page)]) == 0


def test_a_missing_link_target_or_heading_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](nothere.md) [bad](#no-such-heading)\n")
    problems = regen.broken_links(page)
    assert len(problems) == 2
    assert "nothere.md does not exist" in problems[0]
    assert "#no-such-heading" in problems[1]


@pytest.mark.system
def test_every_command_in_the_docs_prints_what_the_docs_show() -> None:
    for name in ("xdptcp", "tests/subprog", "tests/verifier_reject"):
        bpf_object(name)
    for tool in ("bpftool", "tcpdump", "tshark", "file"):
        need_tool(tool)
    res = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "regen.py"), "--check", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
