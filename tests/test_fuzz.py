"""Damaged input files never crash the tools: a seeded, bounded fuzz run.

Valid BPF objects (every object `make bpf` builds, and the shipped capture program) and valid
pcap/pcapng files are mutated where parsers are most easily fooled — ELF header fields, section
headers, symbols, relocation entries, BTF and .BTF.ext headers and bodies, pcap file and record
headers, pcapng block lengths — and by plain byte flips and truncations. Each case goes through
the command lines a user would run (``pybpf inspect``/``disasm``, ``pybpf load`` for the cases
that still parse, ``xdptcp -r``), called in-process through their ``main(argv)`` with stdout and
stderr captured and a time budget per case.

A case passes when the tool exits 0, or exits 1 with exactly one line on stderr that is not an
"internal error" (the tools' name for a bug of their own). An exception escaping ``main``, a
case over its time budget, or a multi-line error is a failure; the input is saved so it can be
committed under tests/fuzz_corpus/ as a regression case.

``FUZZ_CASES`` (default 10000 per corpus) and ``FUZZ_SEED`` change the run.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.conftest import BUILD, ROOT
from tests.traffic import varied_pcap, write_pcap

CASES = int(os.environ.get("FUZZ_CASES", "10000"))
SEED = int(os.environ.get("FUZZ_SEED", "20261127"))
BUDGET_S = 2.0  # per case: parsing a 50 KiB object takes ~30 ms, so 2 s is a hang
LOAD_CASES = int(os.environ.get("FUZZ_LOAD_CASES", "600"))  # loads are ~10x slower than parses
CORPUS = Path(__file__).parent / "fuzz_corpus"

INTERESTING = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 63, (1 << 64) - 1)  # fmt: skip


class CaseTimeout(BaseException):
    """Raised by the timer inside the tool: BaseException, so no ``except Exception`` eats it."""


@dataclass
class Outcome:
    status: object  # exit status, or the exception that escaped
    stdout: str
    stderr: str
    seconds: float

    def problem(self, tool: str) -> str | None:
        """Why this outcome is a failure, or None."""
        if isinstance(self.status, BaseException):
            return f"{type(self.status).__name__} escaped: {self.status}"
        if self.status not in (0, 1):
            return f"exit status {self.status}"
        lines = self.stderr.splitlines()
        if "Traceback" in self.stderr or "internal error" in self.stderr:
            return f"bug reported: {self.stderr.strip()[:300]}"
        if self.status == 1 and (len(lines) != 1 or not lines[0].startswith(f"{tool}: ")):
            return f"error is not one '{tool}: ' line: {self.stderr[:300]!r}"
        return None


def call(main: Callable, argv: list[str], budget: float = BUDGET_S) -> Outcome:
    """``main(argv)`` in-process with captured output and an interval timer as the budget."""

    def expired(signum, frame):  # noqa: ARG001
        raise CaseTimeout(f"over {budget} s")

    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, expired)
    start = time.perf_counter()
    status: object
    try:
        signal.setitimer(signal.ITIMER_REAL, budget)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as e:
                status = e.code
    except BaseException as e:  # noqa: BLE001 — any escape is the finding
        status = e
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return Outcome(status, out.getvalue(), err.getvalue(), time.perf_counter() - start)


# --- mutations of ELF objects ------------------------------------------------------------------


@dataclass
class ElfSeed:
    name: str
    data: bytes
    shoff: int
    sections: list[tuple[str, int, int, int]]  # (name, header offset, data offset, size)
    symtab: tuple[int, int]  # (offset, size)
    rels: list[tuple[int, int]]  # (offset, size) of each SHT_REL section


def elf_seed(path: Path) -> ElfSeed:
    data = path.read_bytes()
    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == 64, path
        shoff, shentsize = elf["e_shoff"], elf["e_shentsize"]
        sections, rels, symtab = [], [], (0, 0)
        for i, s in enumerate(elf.iter_sections()):
            entry = (s.name, shoff + i * shentsize, s["sh_offset"], s["sh_size"])
            sections.append(entry)
            if s["sh_type"] == "SHT_REL":
                rels.append((s["sh_offset"], s["sh_size"]))
            elif s["sh_type"] == "SHT_SYMTAB":
                symtab = (s["sh_offset"], s["sh_size"])
    return ElfSeed(path.name, data, shoff, sections, symtab, rels)


# (offset, size) of the fields of Elf64_Ehdr after e_ident, and e_ident's class/data/version
EHDR_FIELDS = ((4, 1), (5, 1), (6, 1), (16, 2), (18, 2), (20, 4), (24, 8), (32, 8), (40, 8),
               (48, 4), (52, 2), (54, 2), (56, 2), (58, 2), (60, 2), (62, 2))  # fmt: skip
SHDR_FIELDS = ((0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8),
               (56, 8))  # fmt: skip
SYM_FIELDS = ((0, 4), (4, 1), (5, 1), (6, 2), (8, 8), (16, 8))
REL_FIELDS = ((0, 8), (8, 4), (12, 4))  # r_offset, r_info's type, r_info's symbol index
BTF_HEADER = ((0, 2), (2, 1), (3, 1), (4, 4), (8, 4), (12, 4), (16, 4), (20, 4))
BTF_EXT_HEADER = ((0, 2), (2, 1), (3, 1), (4, 4), (8, 4), (12, 4), (16, 4), (20, 4), (24, 4),
                  (28, 4))  # fmt: skip


def put(blob: bytearray, at: int, size: int, rng: random.Random, order: str = "<") -> None:
    """Overwrite an integer field: an interesting value, a neighbour of the old one, or noise."""
    if at + size > len(blob):
        return
    fmt = order + {1: "B", 2: "H", 4: "I", 8: "Q"}[size]
    mask = (1 << (8 * size)) - 1
    (old,) = struct.unpack_from(fmt, blob, at)
    choice = rng.random()
    if choice < 0.5:
        value = rng.choice(INTERESTING)
    elif choice < 0.8:
        value = old + rng.choice((-8, -4, -1, 1, 4, 8, len(blob), -len(blob)))
    else:
        value = rng.getrandbits(8 * size)
    struct.pack_into(fmt, blob, at, value & mask)


def flip(blob: bytearray, rng: random.Random, start: int = 0, end: int | None = None) -> None:
    end = len(blob) if end is None else min(end, len(blob))
    if end <= start:
        return
    for _ in range(rng.randint(1, 8)):
        blob[rng.randrange(start, end)] ^= 1 << rng.randrange(8)


def mutate_elf(seed: ElfSeed, rng: random.Random) -> tuple[str, bytes]:
    blob = bytearray(seed.data)
    by_name = {s[0]: s for s in seed.sections}
    kind = rng.choice(("ehdr", "shdr", "shdr", "sym", "rel", "rel", "btf", "btf", "btf_ext",
                       "btf_ext", "flip", "truncate"))  # fmt: skip
    if kind == "ehdr":
        at, size = rng.choice(EHDR_FIELDS)
        put(blob, at, size, rng)
    elif kind == "shdr":
        _, hdr, _, _ = rng.choice(seed.sections)
        at, size = rng.choice(SHDR_FIELDS)
        put(blob, hdr + at, size, rng)
    elif kind == "sym" and seed.symtab[1]:
        off, size = seed.symtab
        entry = off + 24 * rng.randrange(size // 24)
        at, fsize = rng.choice(SYM_FIELDS)
        put(blob, entry + at, fsize, rng)
    elif kind == "rel" and seed.rels:
        off, size = rng.choice(seed.rels)
        if size >= 16:
            entry = off + 16 * rng.randrange(size // 16)
            at, fsize = rng.choice(REL_FIELDS)
            put(blob, entry + at, fsize, rng)
    elif kind in ("btf", "btf_ext"):
        section = by_name.get(".BTF" if kind == "btf" else ".BTF.ext")
        if section is not None:
            _, _, off, size = section
            header = BTF_HEADER if kind == "btf" else BTF_EXT_HEADER
            if rng.random() < 0.4:
                at, fsize = rng.choice(header)
                put(blob, off + at, fsize, rng)
            elif rng.random() < 0.6 and size > 32:
                put(blob, off + 24 + 4 * rng.randrange((size - 24) // 4), 4, rng)
            else:
                flip(blob, rng, off, off + size)
    elif kind == "truncate":
        del blob[rng.randrange(len(blob)) :]
    if bytes(blob) == seed.data or kind == "flip":
        flip(blob, rng)
    return kind, bytes(blob)


# --- mutations of pcap files -------------------------------------------------------------------


def pcapng_from(frames) -> bytes:
    """A little-endian pcapng: section header, one Ethernet interface (ns resolution), EPBs."""

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    out += block(1, struct.pack("<HHI", 1, 0, 262144) + tsresol)
    for f in frames:
        ts_hi, ts_lo = divmod(f.ts_ns, 1 << 32)
        head = struct.pack("<IIIII", 0, ts_hi, ts_lo, len(f.data), f.wire_len)
        out += block(6, head + f.data)
    return out


def record_offsets(data: bytes) -> list[int]:
    """Offsets of the record headers of a little-endian classic pcap."""
    offsets, at = [], 24
    while at + 16 <= len(data):
        offsets.append(at)
        at += 16 + struct.unpack_from("<I", data, at + 8)[0]
    return offsets


def block_offsets(data: bytes) -> list[int]:
    offsets, at = [], 0
    while at + 8 <= len(data):
        offsets.append(at)
        at += struct.unpack_from("<I", data, at + 4)[0]
    return offsets


def mutate_pcap(seed: bytes, rng: random.Random) -> tuple[str, bytes]:
    blob = bytearray(seed)
    ng = seed[:4] == b"\n\r\r\n"
    kind = rng.choice(("file", "record", "record", "data", "data", "flip", "truncate"))
    if kind == "file":
        if ng:
            put(blob, rng.choice((4, 8, 12, 16, 28, 32, 36)), 4, rng)
        else:
            at, size = rng.choice(((0, 4), (4, 2), (6, 2), (8, 4), (12, 4), (16, 4), (20, 4)))
            put(blob, at, size, rng)
    elif kind == "record":
        at = rng.choice(block_offsets(seed) if ng else record_offsets(seed))
        field = rng.choice((0, 4, 8, 12, 16, 20, 24) if ng else (0, 4, 8, 12))
        put(blob, at + field, 4, rng)
    elif kind == "data":
        # Damage inside a frame: the decoder and the formatters meet impossible headers.
        at = rng.choice(block_offsets(seed) if ng else record_offsets(seed))
        start = at + (28 if ng else 16)
        flip(blob, rng, start + 12, start + 80)
    elif kind == "truncate":
        del blob[rng.randrange(len(blob)) :]
    else:
        flip(blob, rng)
    return kind, bytes(blob)


# --- the runs --------------------------------------------------------------------------------


def object_seeds() -> list[ElfSeed]:
    paths = sorted(BUILD.rglob("*.bpf.o")) or [ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"]
    return [elf_seed(p) for p in paths]


def pcap_seeds(tmp: Path) -> list[bytes]:
    # Sixty frames of the varied capture (options, VLANs, IPv6, odd headers): small files keep
    # a case at a millisecond, and every mutation lands near something interesting.
    frames = varied_pcap(tmp / "varied.pcap", n=1)[:60]
    seeds = []
    for name, nano in (("us", False), ("ns", True)):
        write_pcap(tmp / f"seed-{name}.pcap", frames, nano=nano)
        seeds.append((tmp / f"seed-{name}.pcap").read_bytes())
    seeds.append(pcapng_from(frames))
    return seeds


@dataclass
class Failure:
    case: int
    kind: str
    argv: list[str]
    problem: str
    saved: Path


class Run:
    """Cases of one corpus: writes each input to one path, checks, keeps the failures."""

    def __init__(self, tmp: Path, suffix: str) -> None:
        self.tmp = tmp
        self.path = tmp / f"case{suffix}"
        self.suffix = suffix
        self.failures: list[Failure] = []
        self.slowest = 0.0
        self.statuses: dict[object, int] = {}

    def check(self, n: int, kind: str, blob: bytes, main, argv: list[str], tool: str) -> Outcome:
        out = call(main, argv)
        self.slowest = max(self.slowest, out.seconds)
        key = out.status if isinstance(out.status, int) else type(out.status).__name__
        self.statuses[key] = self.statuses.get(key, 0) + 1
        problem = out.problem(tool)
        if problem:
            saved = self.tmp / f"failure-{n}-{kind}{self.suffix}"
            saved.write_bytes(blob)
            self.failures.append(Failure(n, kind, argv, problem, saved))
        return out

    def report(self) -> str:
        lines = [f"{len(self.failures)} failing cases; statuses {self.statuses}"]
        lines += [f"  case {f.case} ({f.kind}) {f.argv[0]} {f.argv[2:]}: {f.problem} [{f.saved}]"
                  for f in self.failures[:15]]  # fmt: skip
        return "\n".join(lines)


def object_cases(rng: random.Random, count: int) -> Iterator[tuple[int, str, bytes]]:
    seeds = object_seeds()
    for n in range(count):
        kind, blob = mutate_elf(rng.choice(seeds), rng)
        yield n, kind, blob


def test_damaged_objects_give_one_line_errors(tmp_path: Path) -> None:
    """pybpf inspect (and disasm, on the cases that parse) over CASES mutated objects."""
    from pybpf.cli import main

    run = Run(tmp_path, ".o")
    parsed = 0
    for n, kind, blob in object_cases(random.Random(SEED), CASES):
        run.path.write_bytes(blob)
        out = run.check(n, kind, blob, main, ["inspect", str(run.path)], "pybpf")
        if out.status == 0:
            parsed += 1
            if n % 8 == 0:  # disassembly walks every instruction: an eighth of them is enough
                run.check(n, kind, blob, main, ["disasm", str(run.path)], "pybpf")
    assert not run.failures, run.report()
    # The mutations must reach past the first check: a fuzzer that only makes unreadable
    # files tests nothing but the magic number.
    assert CASES // 10 < parsed < CASES, f"{parsed} of {CASES} damaged objects parsed"
    assert run.statuses.get(1, 0) > CASES // 10, run.statuses
    assert run.slowest < BUDGET_S


def _asks_for_much_memory(spec, limit: int = 64 << 20) -> bool:
    return any(
        (m.key_size + m.value_size) * m.max_entries > limit or m.max_entries > limit
        for m in spec.maps.values()
    )


@pytest.mark.system
def test_damaged_objects_that_parse_load_or_fail_in_one_line(tmp_path: Path) -> None:
    """pybpf load on the damaged objects that still parse: the kernel sees them, nothing escapes."""
    from pybpf.cli import main
    from pybpf.errors import BPFError
    from pybpf.object.spec import ObjectSpec

    run = Run(tmp_path, ".o")
    loaded = tried = 0
    for n, kind, blob in object_cases(random.Random(SEED + 1), CASES):
        if tried >= LOAD_CASES:
            break
        run.path.write_bytes(blob)
        try:
            spec = ObjectSpec.from_file(str(run.path))
        except (BPFError, OSError):
            continue
        except Exception:  # noqa: BLE001, S112 — the parse test reports these
            continue
        if _asks_for_much_memory(spec):
            # A mutated size can ask for a legal but huge map (a 1 GiB ring): the kernel then
            # spends seconds zeroing it. That is the object's request, not a hang of ours.
            continue
        tried += 1
        out = run.check(n, kind, blob, main, ["load", str(run.path)], "pybpf")
        loaded += out.status == 0
    assert not run.failures, run.report()
    assert tried == LOAD_CASES, f"only {tried} damaged objects parsed"
    assert 0 < loaded < tried, f"{loaded} of {tried} loaded"


def test_damaged_pcaps_give_one_line_errors(tmp_path: Path) -> None:
    """xdptcp -r (text, JSON, with a filter, copying with -w, verbose) over CASES mutated capture
    files."""
    from xdptcp.cli import main

    rng = random.Random(SEED + 2)
    seeds = pcap_seeds(tmp_path)
    run = Run(tmp_path, ".pcap")
    copy = tmp_path / "copy.pcap"
    modes = ([], ["--json"], ["tcp port 5001 or ip6"], ["-w", str(copy)], ["-tttt", "-S"],
             ["-vvv", "-X", "-#"])  # fmt: skip
    printed = 0
    for n in range(CASES):
        kind, blob = mutate_pcap(rng.choice(seeds), rng)
        run.path.write_bytes(blob)
        out = run.check(n, kind, blob, main, ["-r", str(run.path), *modes[n % 6]], "xdptcp")
        printed += bool(out.stdout)
    assert not run.failures, run.report()
    assert run.statuses.get(0, 0) > CASES // 10 and run.statuses.get(1, 0) > CASES // 10
    assert printed > CASES // 10
    assert run.slowest < BUDGET_S


REGRESSIONS = sorted(CORPUS.glob("*")) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_fuzz_corpus_regressions(path: Path) -> None:
    """Inputs that once crashed a tool: each now gives a clean answer."""
    if path.suffix == ".o":
        from pybpf.cli import main

        for argv in (["inspect", str(path)], ["disasm", str(path)]):
            assert call(main, argv).problem("pybpf") is None, argv
    else:
        from xdptcp.cli import main

        for extra in ([], ["--json"], ["-vvv", "-X"]):
            out = call(main, ["-r", str(path), *extra])
            assert out.problem("xdptcp") is None, (extra, out)
