"""bench/codegen_ab.py: two builds of the filter code generator, side by side."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import codegen_ab
from bench.common import ROOT
from xdptcp.pcapfilter import codegen, compile_filter


def test_a_revisions_generator_is_the_one_in_that_revisions_file(tmp_path) -> None:
    """HEAD's generate(), loaded from git, makes what HEAD's module makes, and the tree's when
    the tree's codegen.py is HEAD's."""
    head = codegen_ab.generator_at("HEAD", tmp_path)
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "xdptcp/pcapfilter/codegen.py"]
    ).returncode  # fmt: skip
    if changed:
        pytest.skip("codegen.py differs from HEAD's in this tree")
    tree = codegen.generate
    try:
        for expr in ("port 443", "tcp[13] & 2 != 0", codegen_ab.hosts(3000)):
            made = compile_filter(expr).insns
            codegen.generate = head
            assert compile_filter(expr).insns == made, expr[:40]
            codegen.generate = tree
    finally:
        codegen.generate = tree


@pytest.mark.parametrize(
    "args, said",
    [(["--repeat", "0"], "at least 1"), (["--rev", "no-such-revision"], "no-such-revision")],
)
def test_bad_arguments_are_one_line(args, said) -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "codegen_ab.py"), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert said in p.stderr.strip().splitlines()[-1]  # (after argparse's usage, if any)
