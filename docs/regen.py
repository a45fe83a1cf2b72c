"""Keep the outputs shown in docs/*.md true: run every example and compare, or refresh them.

    python3 docs/regen.py --check [FILE.md ...]   run each example, report what differs (exit 1)
    python3 docs/regen.py --write [FILE.md ...]   run each example, write its real output back
    python3 docs/regen.py --links [FILE.md ...]   check that every relative link points somewhere

Without FILE arguments: every ``docs/*.md``. Links are checked in those and in ``README.md``.

Two kinds of fenced block are examples; every other block is left alone.

``console``
    Lines starting with ``$ `` (any user) or ``# `` (root) are commands, run by bash in the
    repository's root directory with ``.venv/bin`` first on ``PATH``. The lines up to the next
    prompt are what the command prints, stdout and stderr together as a terminal shows them.
``pycon``
    A Python session: ``>>> `` and ``... `` lines are code, the lines after them its output,
    as the interactive interpreter prints it (doctest's convention). All sessions of one file
    share one namespace and run in the file's order, interleaved with its console blocks.

Some values change from run to run (the ids the kernel gives, file descriptors, addresses,
clocks). They are shown as they came out of a real run, and compared after both the expected
and the actual text went through ``NORMALISE`` below: each rule names what it hides and why.
Everything else must be identical.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TIMEOUT = 120  # seconds per command

# (pattern, replacement, why): applied to expected and actual output before comparing.
NORMALISE: list[tuple[re.Pattern, str, str]] = [
    (re.compile(r"\b(id|fd)([ =])\d+"), r"\1\2N", "ids and fds the kernel hands out"),
    (re.compile(r"\b0x(?:ffff)?[0-9a-f]{12}\b"), "0xADDR", "kernel addresses in the verifier log"),
    (re.compile(r"duration \d+ ns"), "duration N ns", "BPF_PROG_TEST_RUN's measured time"),
    (re.compile(r"verification time \d+ usec"), "verification time N usec", "verifier speed"),
    (re.compile(r"\b\d\d:\d\d:\d\d\.\d{6,9}\b"), "HH:MM:SS.frac", "wall-clock timestamps"),
    (re.compile(r"ts_ns( = |=)\d+"), r"ts_ns\1N", "bpf_ktime_get_ns() in a record"),
    (re.compile(r"\[file:\S*?/bpf/"), "[file:.../bpf/", "bpftool prints the path it was built in"),
    (re.compile(r"xdptcp-demo-\d+"), "xdptcp-demo-PID", "--demo names its hosts by process id"),
    (re.compile(r"(198\.18\.0\.1)\.\d{4,5}\b"), r"\1.PORT", "the demo client's ephemeral port"),
    (re.compile(r"TS val \d+ ecr \d+"), "TS val N ecr N", "TCP timestamps come from a clock"),
    (re.compile(r"\b(seq|ack) \d{5,}"), r"\1 ISN", "initial sequence numbers are random"),
]


def normalise(text: str) -> str:
    for pattern, replacement, _why in NORMALISE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


# --- reading the examples out of a Markdown file ---------------------------------------------


@dataclass
class Step:
    """One command or one Python statement, with the output the document shows for it."""

    kind: str  # "console" or "pycon"
    source: list[str]  # the lines as written, prompt included
    expected: list[str]
    line: int  # 1-based line of the first source line in the file
    actual: Optional[list[str]] = None

    @property
    def code(self) -> str:
        if self.kind == "console":
            return self.source[0][2:]
        return "\n".join(ln[4:] for ln in self.source)

    @property
    def as_root(self) -> bool:
        return self.kind == "console" and self.source[0].startswith("# ")


@dataclass
class Block:
    kind: str
    start: int  # index of the first line inside the fence
    end: int  # index of the closing fence
    steps: list[Step] = field(default_factory=list)


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def find_blocks(lines: list[str]) -> list[Block]:
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3)
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if lang in ("console", "pycon"):
            block = Block(lang, i + 1, j)
            block.steps = _steps(lang, lines[i + 1 : j], i + 2)
            blocks.append(block)
        i = j + 1
    return blocks


def _is_prompt(kind: str, line: str) -> bool:
    if kind == "console":
        return line.startswith(("$ ", "# "))
    return line.startswith(">>> ")


def _steps(kind: str, body: list[str], first_line: int) -> list[Step]:
    steps: list[Step] = []
    for n, line in enumerate(body):
        if _is_prompt(kind, line):
            steps.append(Step(kind, [line], [], first_line + n))
        elif not steps:
            raise ValueError(f"line {first_line + n}: a {kind} block must start with a prompt")
        elif kind == "pycon" and not steps[-1].expected and line.startswith(("... ", "...")):
            if line.rstrip() == "...":
                line = "... "
            steps[-1].source.append(line)
        else:
            steps[-1].expected.append(line)
    for s in steps:
        while s.expected and not s.expected[-1].strip():
            s.expected.pop()
    return steps


# --- running them ------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = ROOT / ".venv" / "bin"
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"  # argparse's help wraps at the terminal width
    env.pop("PYTHONSTARTUP", None)
    # Under `make test`, make's own variables would make a `make` shown in the docs print
    # "Entering/Leaving directory" lines that a reader running it by hand never sees.
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(var, None)
    return env


def run_command(command: str) -> list[str]:
    res = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
    )
    return res.stdout.rstrip("\n").splitlines()


class Session:
    """One file's Python namespace; runs statements the way the interactive interpreter does."""

    def __init__(self) -> None:
        self.namespace: dict = {"__name__": "__doc_session__"}

    def run(self, code: str) -> list[str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                exec(compile(code + "\n", "<stdin>", "single"), self.namespace)  # noqa: S102
            except Exception as e:
                # doctest's form: the frames change with the code, the last line is what counts
                last = traceback.format_exception_only(type(e), e)[-1].rstrip("\n")
                print("Traceback (most recent call last):\n  ...\n" + last)
        return out.getvalue().rstrip("\n").splitlines()


def run_file(path: Path, blocks: list[Block], say: Callable[[str], None]) -> None:
    session = Session()
    old = os.getcwd()
    os.chdir(ROOT)  # sessions use paths relative to the repository, as a reader would
    sys.path.insert(0, str(ROOT))
    try:
        for block in blocks:
            for step in block.steps:
                if step.as_root and os.geteuid() != 0:
                    raise SystemExit(f"{path}:{step.line}: needs root: {step.code}")
                say(f"{path.name}:{step.line}: {step.source[0]}")
                if step.kind == "console":
                    step.actual = run_command(step.code)
                else:
                    step.actual = session.run(step.code)
    finally:
        os.chdir(old)
        sys.path.remove(str(ROOT))


# --- check and write ---------------------------------------------------------------------------


def differences(path: Path, blocks: list[Block]) -> list[str]:
    import difflib

    problems = []
    for block in blocks:
        for step in block.steps:
            want = normalise("\n".join(step.expected))
            have = normalise("\n".join(step.actual or []))
            if want != have:
                diff = difflib.unified_diff(
                    want.splitlines(), have.splitlines(), "shown", "now", lineterm="", n=1
                )
                rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                problems.append(f"{rel}:{step.line}: {step.source[0]}\n" + "\n".join(diff))
    return problems


def rewrite(lines: list[str], blocks: list[Block]) -> list[str]:
    out = list(lines)
    for block in reversed(blocks):
        body: list[str] = []
        for step in block.steps:
            body.extend(step.source)
            body.extend(step.actual or [])
        out[block.start : block.end] = body
    return out


# --- links -------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img [^>]*src=\"([^\"]+)\"")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    problems = []
    text = path.read_text()
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", text, flags=re.S | re.M)  # not inside code
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        if not dest.exists():
            problems.append(f"{rel}: link to {target}: {file_part} does not exist")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{rel}: link to {target}: no heading #{fragment} in {dest.name}")
    return problems


# --- main --------------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--check", action="store_true", help="compare each output (exit 1 if any differ)"
    )
    mode.add_argument("--write", action="store_true", help="write the real outputs into the files")
    mode.add_argument("--links", action="store_true", help="check relative links only")
    p.add_argument("-q", "--quiet", action="store_true", help="do not list each command")
    p.add_argument("files", nargs="*", type=Path)
    args = p.parse_args(argv)
    files = [f.resolve() for f in args.files] or sorted(DOCS.glob("*.md"))

    if args.links:
        problems = [
            msg for f in [*files, ROOT / "README.md"] if f.exists() for msg in broken_links(f)
        ]
        for msg in problems:
            print(msg)
        return 1 if problems else 0

    say = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    problems = []
    for path in files:
        lines = path.read_text().splitlines()
        blocks = find_blocks(lines)
        if not blocks:
            continue
        run_file(path, blocks, say)
        if args.write:
            path.write_text("\n".join(rewrite(lines, blocks)) + "\n")
        else:
            problems.extend(differences(path, blocks))
    for msg in problems:
        print(msg + "\n")
    if problems:
        print(f"{len(problems)} example(s) differ; `python3 docs/regen.py --write` refreshes them")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
