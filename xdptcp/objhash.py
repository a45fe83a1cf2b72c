"""The shipped-object check: are ``xdptcp/data/xdptcp.bpf.o`` (the capture program),
``xdptcp_walk.bpf.o`` (the offline record walker) and ``xdptcp_text.bpf.o`` (the offline text
walk) built from the current sources?

A user's host has no clang, so all three ship compiled. Its sources' sha256 is
recorded next to it (``xdptcp/data/xdptcp.bpf.o.sha256``) by ``make shipped``, which runs
``python -m xdptcp.objhash --write``; a test compares the record with the sources so that a
change to the C code without a rebuild of the shipped object fails.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("bpf/xdptcp.bpf.c", "bpf/xdptcp.h", "bpf/xdptcp_walk.bpf.c", "bpf/xdptcp_text.bpf.c")
DATA = Path(__file__).resolve().parent / "data"
OBJECT = DATA / "xdptcp.bpf.o"
HASH_FILE = DATA / "xdptcp.bpf.o.sha256"


def sources_hash(root: Path = ROOT) -> str:
    """sha256 over each source's name and contents, in a fixed order."""
    h = hashlib.sha256()
    for name in SOURCES:
        data = (root / name).read_bytes()
        # Name and length first, so moving bytes between files changes the hash.
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def recorded_hash(path: Path = HASH_FILE) -> str:
    """The hash written by the last `make shipped` (first word of the file)."""
    return path.read_text().split()[0]


def write(path: Path = HASH_FILE, root: Path = ROOT) -> str:
    digest = sources_hash(root)
    path.write_text(f"{digest}  {' '.join(SOURCES)}\n")
    return digest


def main(argv: list[str] | None = None) -> int:
    """``python -m xdptcp.objhash [--write]``: check the shipped object, or record its hash."""
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([], ["--write"]):
        print("usage: python -m xdptcp.objhash [--write]", file=sys.stderr)
        return 2
    if argv:
        print(f"{HASH_FILE.relative_to(ROOT)}: {write()}")
        return 0
    try:
        recorded = recorded_hash()
    except FileNotFoundError:
        print(f"{HASH_FILE} is missing: run `make shipped`", file=sys.stderr)
        return 1
    current = sources_hash()
    if recorded != current:
        print(
            f"shipped object is stale: sources hash {current}, recorded {recorded}; "
            "run `make shipped`",
            file=sys.stderr,
        )
        return 1
    print(f"shipped object matches the sources ({current})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
