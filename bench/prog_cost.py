"""XDP program cost: nanoseconds per packet of xdptcp's capture program under BPF_PROG_TEST_RUN.

The kernel runs the program ``repeat`` times on the same frame and reports the mean time per run.
Rows per frame size, all in the same process and run:

- empty XDP program (bpf/tests/xdp_empty.bpf.c): the floor of the test-run machinery itself;
- the rows without a filter run xdp_capture_all, the program xdptcp loads when there is no
  filter; the rows with one, xdp_capture;
- xdptcp, ring with room: one test run of ``repeat`` records into a ring large enough to take
  them all (hundreds of MB), so each run parses, reserves, copies the headers and submits. Every
  record goes to memory not touched before, so this row includes cache misses a live capture
  with a small ring would not pay;
- xdptcp, ring drained: the ring has the object's default size (4 MiB) and is emptied by a pybpf
  reader between test runs of as many records as it holds (the drain is outside the kernel's
  timing). Records land in memory that stays in the CPU caches, as with a live reader keeping up;
- xdptcp, ring full: the ring is filled first, so each run parses, fails the reservation and
  counts ``ring_full`` (what the program costs while user space is falling behind);
- xdptcp with a filter, ring drained: the filter compiled by xdptcp and spliced into the program,
  `port 443` and the HTTP request filter `tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420`, on
  frames of the same sizes sent to port 443 whose payload starts with "GET " (the 66-byte ACK has
  no payload: the HTTP filter reads past its end and rejects it, so nothing is emitted);
- diagnostic programs assembled here with pybpf.asm.insn, floors under xdptcp's cost: one that
  only calls bpf_ktime_get_ns(); one that only reserves a record of xdptcp's size and submits it
  untouched; one that also copies 66 frame bytes into it with bpf_xdp_load_bytes() (as xdptcp
  does with the headers), and one that copies them with 8-byte loads and stores through the
  packet pointer instead. Rings of xdptcp's default size, drained as above;
- diag: xdptcp, ring drained, without its forced wakeups: the program as in `ring drained`, but
  waking the reader by the kernel's own rule (only a reader that has caught up, so at most the
  first record of each test run) instead of each time another eighth of the ring is waiting.
  The floor wakes no one; this row shows what the batched wakeups cost here: the program's
  look at the ring's unread bytes every 32nd record (bpf_ringbuf_query(), a helper call) and
  the wakeups (each an interrupt the producing CPU sends itself, irq_work, dear under a
  hypervisor);
- diag: xdptcp + filter 'port 443', asking every length: as the `port 443` row, but the
  program asks the kernel each frame's whole length before the filter runs
  (bpf_xdp_get_buff_len(), a helper call), as it does for a filter that reads libpcap's `len`
  (and as it did for every filter before 2026-12-06 evening); for `port 443` it asks only of a
  frame that may have more than one buffer, as without a filter.

Frames: a 66-byte IPv4 TCP ACK with timestamps (the typical pure ACK) and a 1500-byte IPv4 TCP
segment (20-byte header, 1446 bytes payload). Loading goes through pybpf, as xdptcp does.

    python -m bench progcost [--repeat 5] [--packets 1000000]
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Optional, Sequence

from bench.common import (
    ROOT,
    Target,
    load_average,
    median,
    object_id,
    say,
    table,
    targets_table,
)
from bench.traffic import TCP_ACK, TCP_PSH, Flow, frame
from pybpf.loader import load
from xdptcp.capture import LIVE_RING_SIZE, WAKEUP_DEFAULT, WAKEUP_LOOK_EVERY, batched_wakeups
from xdptcp.record import OUT_NONE, OUT_PCAPNG, record_size

XDPTCP_OBJ = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"
EMPTY_OBJ = ROOT / "build" / "bpf" / "tests" / "xdp_empty.bpf.o"
RING = "xdptcp_ring"
CAPACITY = 256  # xdptcp's default record capacity (xdptcp.cli.DEFAULT_CAPACITY)
RECORD = record_size(CAPACITY) + 8  # struct xdptcp_record + data + ring-buffer header
WRITE_RECORD = record_size(CAPACITY, OUT_PCAPNG) + 8  # ... + the pcapng block's trailer
PAGE = 4096
XDP_PASS = 2
MAX_RING = 1 << 30  # the largest ring this benchmark asks the kernel for
KTIME = "diag: bpf_ktime_get_ns only"
RESERVE = "diag: reserve + submit only, drained"
HEADERS = 66  # bytes xdptcp copies from the 66-byte frame: Ethernet + IPv4 + TCP with options
COPY = f"diag: reserve + load_bytes({HEADERS}) + submit, drained"
DIRECT = f"diag: reserve + direct copy({HEADERS}) + submit, drained"


WRITE = "xdptcp -w (pcapng blocks), ring drained"
QUIET = "diag: xdptcp, ring drained, no forced wakeups"
UNFILTERED = "xdp_capture_all"  # the XDP program xdptcp loads when there is no filter
ASKS_LEN = "diag: xdptcp + filter 'port 443', asking every length, drained"
FLOOR = "floor: empty + ktime + reserve/copy/submit"
FILTERS = {
    "xdptcp + filter 'port 443', ring drained": "port 443",
    "xdptcp + HTTP request filter, ring drained": "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
}


def frames(port: int = 80, payload: bytes = b"") -> dict[str, bytes]:
    flow = Flow(False, bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]), 40000, port)
    ack = frame(flow, 1000, 2000, TCP_ACK, 12, b"")
    full = frame(flow, 1000, 2000, TCP_PSH | TCP_ACK, 0, payload.ljust(1446, b"\0"))
    assert len(ack) == 66 and len(full) == 1500, (len(ack), len(full))
    return {"66 B": ack, "1500 B": full}


def ring_bytes(records: int) -> int:
    """The smallest valid ring (a power of two, at least a page) that holds ``records`` records."""
    need = max(PAGE, records * RECORD)
    return 1 << (need - 1).bit_length()


def _spec(path: Path, ring: Optional[int] = None):
    from pybpf.object.spec import ObjectSpec

    spec = ObjectSpec.from_file(str(path))
    if ring is not None:
        spec.set_max_entries(RING, ring)
        _configure(spec)
    return spec


def _configure(spec, out: int = OUT_NONE) -> None:
    # The values xdptcp itself sets: default capacity, headers only, no filter, the reader
    # woken in batches, the multi-buffer code live (as xdptcp loads "xdp.frags" where the
    # kernel takes it: the frame's length asked of bpf_xdp_get_buff_len(), longer copies
    # through bpf_xdp_load_bytes()); with ``out``, the file record heads `xdptcp -w` has the
    # program write.
    values = {
        "xdptcp_xdp_frags": 1,
        "xdptcp_snaplen": 0,
        "xdptcp_capacity": CAPACITY,
        "xdptcp_out": out,
        "xdptcp_clock_offset": 1 << 60,
        **batched_wakeups(spec.maps[RING].max_entries),
    }
    for name, value in values.items():
        if name in spec.rodata:
            spec.rodata[name] = value


RELOAD_EVERY = 20  # rounds between loads of the builds


def in_turn(openers: dict, orders: Sequence[Sequence[str]], runs: int, tool: str,
            reload_every: int = RELOAD_EVERY) -> dict[str, list[float]]:  # fmt: skip
    """Each round of ``orders`` measures the builds it names in that order, ``runs`` runs each:
    ns per run by build, a value per round. ``openers`` load a build (as
    ``prog_cost.open_drained``) and give its measuring function. The builds are loaded anew
    every ``reload_every`` rounds: within a load a round is only test runs, its measurements
    milliseconds apart; across loads, where the kernel puts a program and its ring, which moves
    one load's speed by a nanosecond or two for as long as it lives, is averaged out."""
    ns: dict[str, list[float]] = {build: [] for build in openers}
    for start in range(0, len(orders), reload_every):
        block = orders[start : start + reload_every]
        say(f"{tool} rounds {start + 1}-{start + len(block)} of {len(orders)}")
        with ExitStack() as stack:
            measure = {build: opener(stack) for build, opener in openers.items()}
            for order in block:
                for build in order:
                    took, retval = measure[build](runs)
                    if retval != XDP_PASS:
                        raise SystemExit(f"{tool}: {build} returned {retval}, not XDP_PASS")
                    ns[build].append(took)
    return ns


def rotations(names: Sequence, rounds: int) -> list[list]:
    """The order of the builds in each round: each round starts one further along."""
    return [[names[(i + j) % len(names)] for j in range(len(names))] for i in range(rounds)]


def measure(
    path: Path, program: str, data: bytes, runs: int, ring: Optional[int], prefill: bool = False
) -> tuple[float, int]:
    """(ns per run as the kernel reports it, program's return value) on a fresh load."""
    with load(_spec(path, ring)) as obj:
        prog = obj.programs[program]
        if prefill:
            # Fill the ring: more runs than it has slots; after this every reservation fails.
            prog.test_run(data, repeat=(ring or PAGE) // RECORD + 16)
        result = prog.test_run(data, repeat=runs)
        return float(result.duration_ns), result.retval


def measure_drained(
    data: bytes,
    runs: int,
    expr: str = "",
    out: int = OUT_NONE,
    wakeups: bool = True,
    program: Optional[str] = None,
    path: Optional[Path] = None,
    rodata: Optional[dict] = None,
) -> tuple[float, int]:
    """Like :func:`measure` with xdptcp's default ring, drained between test runs; with
    ``expr``, the filter compiled and spliced in as xdptcp does; ``out`` as with -w; without
    ``wakeups``, the reader woken by the kernel's rule alone (``QUIET``). The program is the
    one xdptcp loads (xdp_capture with a filter, xdp_capture_all without) unless ``program``
    names another; the object is xdptcp's shipped one unless ``path`` names another build;
    ``rodata``: values set after xdptcp's."""
    with ExitStack() as stack:
        run = open_drained(stack, path, expr, data, out, wakeups, program, rodata)
        return run(runs)


def open_drained(
    stack,
    path: Optional[Path] = None,
    expr: str = "",
    data: bytes = b"",
    out: int = OUT_NONE,
    wakeups: bool = True,
    program: Optional[str] = None,
    rodata: Optional[dict] = None,
):
    """:func:`measure_drained`'s program loaded, and closed by the ExitStack ``stack``: a
    function of the number of runs that runs it on ``data`` with its ring drained and gives
    (ns per run, return value). For benchmarks that measure builds in turn many times over,
    without loading them each time."""
    spec = _spec(path or XDPTCP_OBJ, ring=None)
    _configure(spec, out)
    if not wakeups:
        spec.rodata["xdptcp_wakeup_mode"] = WAKEUP_DEFAULT
    if expr:
        from xdptcp.pcapfilter import compile_filter

        flt = compile_filter(expr)
        for name, insns in flt.code().items():
            spec.replace_function(name, insns)
        # (an older build, measured against this one by progcost_ab, has fewer switches)
        spec.rodata.update_from({k: v for k, v in flt.rodata_values().items() if k in spec.rodata})
        emitted = flt.matches(data)
    else:
        emitted = True
    spec.rodata.update_from(rodata or {})
    record = WRITE_RECORD if out == OUT_PCAPNG else RECORD
    program = program or ("xdp_capture" if expr else UNFILTERED)
    obj = stack.enter_context(load(spec, programs=[program]))
    prog, ring = obj.programs[program], obj.maps[RING]
    return lambda runs: _drained(prog, ring, data, runs, emitted, record)


def open_floor(stack, data: bytes, ktime: bool, reserve: bool, copy: str = ""):
    """:func:`measure_floor`'s program loaded, as :func:`open_drained`."""
    from pybpf.maps import Map
    from pybpf.program import Program
    from pybpf.sys.uapi import MapType, ProgType

    ring = stack.enter_context(
        Map.create(MapType.RINGBUF, 0, 0, _default_ring(), name="bench_ring")
    )
    code = floor_insns(ring.fd, ktime, reserve, copy)
    prog = stack.enter_context(Program.load(ProgType.XDP, code, name="bench_floor"))
    if reserve:
        return lambda runs: _drained(prog, ring, data, runs)

    def run(runs: int) -> tuple[float, int]:
        result = prog.test_run(data, repeat=runs)
        return float(result.duration_ns), result.retval

    return run


def _drained(prog, ring_map, data: bytes, runs: int, emitted: bool = True,
             record: int = RECORD) -> tuple[float, int]:  # fmt: skip
    """Test runs of as many records (ring slots of ``record`` bytes) as the ring holds, the ring
    emptied after each; the runs' mean ns weighted by their repeat counts."""
    from pybpf.ringbuf import RingBuffer

    with RingBuffer.from_map(ring_map) as ring:
        chunk = ring.size // record - 1
        total_ns = done = 0
        retval = XDP_PASS
        while done < runs:
            n = min(chunk, runs - done)
            result = prog.test_run(data, repeat=n)
            total_ns += result.duration_ns * n
            done += n
            retval = result.retval
            _, got = ring.drain_fixed(record - 8)
            if got != (n if emitted else 0):
                raise RuntimeError(f"ring drained: expected {n * emitted} records, read {got}")
        return total_ns / done, retval


def floor_insns(ring_fd: int, ktime: bool, reserve: bool, copy: str = "") -> list:
    """A diagnostic XDP program: optionally bpf_ktime_get_ns(); optionally reserve a record of
    xdptcp's size, copy HEADERS frame bytes into it (``copy``: "helper" with
    bpf_xdp_load_bytes(), "direct" with 8-byte loads and stores through the packet pointer) and
    submit it; then XDP_PASS. The floors under xdptcp's cost."""
    from pybpf.asm import insn as isa
    from pybpf.asm.insn import JmpOp

    prog = [isa.mov64_reg(6, 1)]  # keep ctx
    if ktime:
        prog.append(isa.call_helper(5))  # bpf_ktime_get_ns
    if not reserve:
        return prog + [isa.mov64_imm(0, XDP_PASS), isa.exit_insn()]
    submit = [isa.mov64_reg(1, 7), isa.mov64_imm(2, 0), isa.call_helper(132)]  # ringbuf_submit
    body = _copy_insns(copy) + submit
    prog += [
        *isa.ld_map_fd(1, ring_fd),
        isa.mov64_imm(2, RECORD - 8),
        isa.mov64_imm(3, 0),
        isa.call_helper(131),  # bpf_ringbuf_reserve
        isa.jmp_imm(JmpOp.JEQ, 0, 0, 1 + len(body)),  # NULL: to the exit
        isa.mov64_reg(7, 0),
        *body,
    ]
    return prog + [isa.mov64_imm(0, XDP_PASS), isa.exit_insn()]


def _copy_insns(how: str) -> list:
    """HEADERS bytes from the frame (ctx in r6) to the record (r7)."""
    from pybpf.asm import insn as isa
    from pybpf.asm.insn import ALUOp, JmpOp, Size

    if how == "helper":
        return [
            isa.mov64_reg(1, 6),
            isa.mov64_imm(2, 0),
            isa.mov64_reg(3, 7),
            isa.mov64_imm(4, HEADERS),
            isa.call_helper(189),  # bpf_xdp_load_bytes(ctx, 0, rec, HEADERS)
        ]
    if how != "direct":
        return []
    moves = []
    for off in range(0, HEADERS - HEADERS % 8, 8):
        moves += [isa.ldx_mem(Size.DW, 5, 2, off), isa.stx_mem(Size.DW, 7, 5, off)]
    for off in range(HEADERS - HEADERS % 8, HEADERS, 2):
        moves += [isa.ldx_mem(Size.H, 5, 2, off), isa.stx_mem(Size.H, 7, 5, off)]
    return [
        isa.ldx_mem(Size.W, 2, 6, 0),  # ctx->data
        isa.ldx_mem(Size.W, 3, 6, 4),  # ctx->data_end
        isa.mov64_reg(4, 2),
        isa.alu64_imm(ALUOp.ADD, 4, HEADERS),
        isa.jmp_reg(JmpOp.JGT, 4, 3, len(moves)),  # frame shorter than HEADERS: copy nothing
        *moves,
    ]


def measure_floor(
    data: bytes, runs: int, ktime: bool, reserve: bool, copy: str = ""
) -> tuple[float, int]:
    with ExitStack() as stack:
        return open_floor(stack, data, ktime, reserve, copy)(runs)


def run(repeat: int = 5, runs: int = 1_000_000) -> str:
    if not EMPTY_OBJ.exists():
        raise RuntimeError(f"{EMPTY_OBJ} is missing: run `make bpf` first")
    if ring_bytes(runs + 64) > MAX_RING:
        raise RuntimeError(
            f"progcost: {runs:,} runs need a ring over {MAX_RING >> 20} MiB for the 'ring with "
            f"room' row; use --packets {MAX_RING // RECORD - 64:,} or fewer"
        )
    load = load_average()
    cases = [
        ("empty XDP program", EMPTY_OBJ, "xdp_empty", None, False),
        ("xdptcp, ring with room", XDPTCP_OBJ, UNFILTERED, ring_bytes(runs + 64), False),
        ("xdptcp, ring drained", XDPTCP_OBJ, UNFILTERED, _default_ring(), False),
        ("xdptcp, ring full", XDPTCP_OBJ, UNFILTERED, 64 * 1024, True),
        (WRITE, XDPTCP_OBJ, UNFILTERED, _default_ring(), False),
        (QUIET, XDPTCP_OBJ, UNFILTERED, _default_ring(), False),
        (ASKS_LEN, XDPTCP_OBJ, "xdp_capture", _default_ring(), False),
        *((label, XDPTCP_OBJ, "xdp_capture", _default_ring(), False) for label in FILTERS),
        (KTIME, None, "", None, False),
        (RESERVE, None, "", _default_ring(), False),
        (COPY, None, "", _default_ring(), False),
        (DIRECT, None, "", _default_ring(), False),
    ]
    results: dict[tuple[str, str], list[float]] = {}
    to_443 = frames(443, b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    for i in range(repeat):
        for size, plain in frames().items():
            for label, path, prog, ring, prefill in cases:
                data = to_443[size] if label in FILTERS or label == ASKS_LEN else plain
                say(f"progcost repeat {i + 1}/{repeat}: {label}, {size} frame, {runs:,} runs")
                ns = measure_case(label, path, prog, ring, prefill, data, runs)
                results.setdefault((label, size), []).append(ns)
    rings = {c[0]: c[3] for c in cases}
    paired = {
        label: paired_with_floor(label, to_443["66 B"] if label in FILTERS else frames()["66 B"])
        for label in TARGETED
    }
    return report(results, rings, runs, repeat, load, paired)


PAIRED_ROUNDS = 100
PAIRED_RUNS = 50_000
FLOOR_PROGRAM = "floor program"


def paired_with_floor(label: str, data: bytes, rounds: int = PAIRED_ROUNDS,
                      runs: int = PAIRED_RUNS) -> float:  # fmt: skip
    """A targeted row's program against the floor as one program (``bpf_ktime_get_ns``, a
    reservation of xdptcp's record, the headers copied with 8-byte loads and stores, the
    submission), the two loaded side by side and measured in alternating rounds milliseconds
    apart (``in_turn``): the median of the rounds' ratios program / floor. The rows above are
    measured seconds apart, and their ratio moves with the machine's speed in between by more
    than the few nanoseconds that decide the target."""
    openers = {
        label: lambda stack: open_case(stack, label, data),
        FLOOR_PROGRAM: floor_program(data),
    }
    orders = rotations([label, FLOOR_PROGRAM], rounds)  # (two builds: each first in turn)
    ns = in_turn(openers, orders, runs, f"progcost paired: {label}")
    return median([p / f for p, f in zip(ns[label], ns[FLOOR_PROGRAM])])


def floor_program(data: bytes):
    """The floor as one program (``open_floor`` with every part: the time, the reservation, the
    headers copied with 8-byte loads and stores, the submission), an opener for ``in_turn``."""
    return lambda stack: open_floor(stack, data, True, True, "direct")


def open_case(stack, label: str, data: bytes):
    """A drained row's program (xdp_capture with a filter, xdp_capture_all without), loaded
    and configured as that row measures it, as a function of the number of runs."""
    out = OUT_PCAPNG if label == WRITE else OUT_NONE
    expr = "port 443" if label == ASKS_LEN else FILTERS.get(label, "")
    asks = {"xdptcp_filter_len": 1} if label == ASKS_LEN else None
    program = UNFILTERED if not expr else "xdp_capture"
    return open_drained(stack, None, expr, data, out, label != QUIET, program, asks)


def measure_case(label: str, path: Optional[Path], prog: str, ring: Optional[int],
                 prefill: bool, data: bytes, runs: int) -> float:  # fmt: skip
    if label in ("xdptcp, ring drained", WRITE, QUIET, ASKS_LEN) or label in FILTERS:
        with ExitStack() as stack:
            ns, retval = open_case(stack, label, data)(runs)
    elif path is None:
        copy = {COPY: "helper", DIRECT: "direct"}.get(label, "")
        ns, retval = measure_floor(data, runs, label == KTIME, label != KTIME, copy)
    else:
        ns, retval = measure(path, prog, data, runs, ring, prefill)
    if retval != XDP_PASS:
        raise RuntimeError(f"{label}: returned {retval}, expected XDP_PASS")
    return ns


def report(results: dict[tuple[str, str], list[float]], rings: dict[str, Optional[int]],
           runs: int, repeat: int, load: str, paired: dict[str, float]) -> str:  # fmt: skip
    rows = []
    sizes = list(dict.fromkeys(size for _, size in results))
    floors = {size: floor(results, size) for size in sizes}
    for (label, size), values in results.items():
        empty = median(results[("empty XDP program", size)])
        med = median(values)
        ring = rings[label]
        below = med - empty if label != "empty XDP program" else None
        judged = label in TARGETED or label in (QUIET, ASKS_LEN)
        of_floor = f"{of_own_floor(results, label, size):.2f}x" if judged else None
        rows.append([label, size, ring and f"{ring // 1024:,} KiB", med, min(values), below,
                     of_floor])  # fmt: skip
    for size in sizes:
        f = floors[size]
        rows.append([FLOOR, size, "-", f, None, f - median(results[("empty XDP program", size)]),
                     "1.00x"])  # fmt: skip
    header = ["program", "frame", "ring", "ns/packet", "min ns", "minus empty", "/ floor"]
    title = (
        f"XDP program cost: BPF_PROG_TEST_RUN, {runs:,} runs, median of {repeat} "
        f"(load average before: {load}; xdptcp.bpf.o {object_id(XDPTCP_OBJ)})"
    )
    text = table(title, header, rows)
    targets = [
        Target(f"{label}, 66 B frame / floor, paired", paired[label], 1.15, "x")
        for label in TARGETED
    ]
    port_443 = "xdptcp + filter 'port 443', ring drained"
    drained, quiet, asks, guesses = (
        median(results[(k, "66 B")]) for k in ("xdptcp, ring drained", QUIET, ASKS_LEN, port_443)
    )
    return (
        text
        + "\n"
        + targets_table("XDP program targets", targets)
        + "\nThe targets pair each program with the floor as one program (bpf_ktime_get_ns, a"
        " reservation of xdptcp's record, the 66 bytes copied with 8-byte loads and stores,"
        f" the submission), the two measured in {PAIRED_ROUNDS} alternating rounds of"
        f" {PAIRED_RUNS:,} runs, loaded anew every {RELOAD_EVERY}: the median of the rounds'"
        " ratios. The table's `/ floor` column pairs the repeats of its rows, which are"
        " measured seconds apart: "
        + " / ".join(f"{of_own_floor(results, label, '66 B'):.2f}x" for label in TARGETED)
        + " for the three.\n"
        + "\nAsking each frame's whole length: with `port 443`, which does not read libpcap's"
        " `len`, the program asks bpf_xdp_get_buff_len() only of a frame that may have more"
        f" than one buffer and takes {guesses:.1f} ns on the 66 B frame; asking every frame"
        f" first, as for a filter that reads `len`, {asks:.1f} ns ({asks - guesses:+.1f} ns).\n"
        + f"\nThe reader's wakeups: {drained - quiet:.1f} ns of the 66 B frame's {drained:.1f}"
        f" (without them the program is {of_own_floor(results, QUIET, '66 B'):.2f}x its floor,"
        " which wakes no one): the program's look at the ring's unread bytes every"
        f" {WAKEUP_LOOK_EVERY} records (a helper call) and the wakeups themselves, each an"
        " interrupt the producing CPU sends itself; the object's"
        f" {_default_ring() >> 20} MiB ring takes one every {_default_ring() // 8 // RECORD:,}"
        f" records here, the {LIVE_RING_SIZE >> 20} MiB ring `xdptcp -i` maps one every"
        f" {LIVE_RING_SIZE // 8 // RECORD:,}.\n"
    )


# Judged against the floor: no filter, `port 443`, and the -w configuration.
TARGETED = ("xdptcp, ring drained", "xdptcp + filter 'port 443', ring drained", WRITE)


FLOOR_PARTS = (KTIME, COPY, DIRECT, "empty XDP program")


def floor_of(ktime: float, helper_copy: float, direct_copy: float, empty: float) -> float:
    """What no capture program can skip: the empty program's run, plus the timestamp
    (``bpf_ktime_get_ns`` alone, less the empty program) plus the reservation, the copy of the
    headers and the submission (the cheaper of the helper's copy and the direct one, less the
    empty program: a program may copy either way)."""
    return ktime + min(helper_copy, direct_copy) - empty


def floor(results: dict[tuple[str, str], list[float]], size: str) -> float:
    """``floor_of`` the medians of this run's rows."""
    return floor_of(*(median(results[(k, size)]) for k in FLOOR_PARTS))


def of_own_floor(results: dict[tuple[str, str], list[float]], label: str, size: str) -> float:
    """The median over repeats of the program's time over the floor of the same repeat: the
    floor's parts are measured seconds apart, and a machine that is slower for a while is
    slower for the program and its floor alike (paired, the ratio does not see that drift)."""
    parts = zip(*(results[(k, size)] for k in FLOOR_PARTS))
    return median([p / floor_of(*f) for p, f in zip(results[(label, size)], parts)])


def _default_ring() -> int:
    return _spec(XDPTCP_OBJ).maps[RING].max_entries
