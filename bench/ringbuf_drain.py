"""How fast does pybpf.ringbuf drain a real ring buffer? Prints records/s per method.

A small XDP program, assembled with pybpf.asm.insn, reserves one fixed-size record per run, writes a
sequence number into it (taken with an atomic fetch-add from an array map) and submits it (or
discards every Nth). BPF_PROG_TEST_RUN with ``repeat`` fills the ring; we then time the drain.

    .venv/bin/python bench/ringbuf_drain.py [--size 64] [--ring 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

from pybpf.asm import insn as isa
from pybpf.asm.insn import ALUOp, Class, Instruction, JmpOp, Mode, Size
from pybpf.maps import Map
from pybpf.program import Program
from pybpf.ringbuf import RingBuffer, slot_size
from pybpf.sys.uapi import MapType, ProgType

XDP_PASS = 2
FETCH = 0x01
FRAME = bytes(64)  # XDP test runs need at least an Ethernet header


@dataclass
class Producer:
    """A loaded producer: ``run(n)`` emits n records (minus the discarded ones) into ``ring``."""

    program: Program
    ring_map: Map
    counter: Map
    record_size: int

    def run(self, n: int) -> None:
        self.program.test_run(FRAME, repeat=n)

    def close(self) -> None:
        self.program.close()
        self.ring_map.close()
        self.counter.close()


def producer_insns(ring_fd: int, counter_fd: int, record_size: int, discard_every: int = 0):
    """seq = counter[0]++ (atomic); rec = reserve(record_size); rec[0:8] = seq; rec[8:16] = ~seq;
    discard if discard_every and seq % discard_every == discard_every - 1, else submit."""
    prog = [
        isa.st_mem(Size.W, 10, -4, 0),
        isa.mov64_reg(2, 10),
        isa.alu64_imm(ALUOp.ADD, 2, -4),
        *isa.ld_map_fd(1, counter_fd),
        isa.call_helper(1),  # bpf_map_lookup_elem
        isa.jmp_imm(JmpOp.JEQ, 0, 0, 0),  # patched below: to the exit
        isa.mov64_imm(8, 1),
        Instruction(Class.STX | Size.DW | Mode.ATOMIC, 0, 8, 0, ALUOp.ADD | FETCH),
        *isa.ld_map_fd(1, ring_fd),
        isa.mov64_imm(2, record_size),
        isa.mov64_imm(3, 0),
        isa.call_helper(131),  # bpf_ringbuf_reserve
        isa.jmp_imm(JmpOp.JEQ, 0, 0, 0),  # patched below: to the exit
        isa.stx_mem(Size.DW, 0, 8, 0),
        isa.mov64_reg(9, 8),
        isa.alu64_imm(ALUOp.XOR, 9, -1),
        isa.stx_mem(Size.DW, 0, 9, 8),
        isa.mov64_reg(1, 0),
        isa.mov64_imm(2, 0),
    ]
    if discard_every:
        prog += [
            isa.mov64_reg(9, 8),
            isa.alu64_imm(ALUOp.MOD, 9, discard_every),
            isa.jmp_imm(JmpOp.JEQ, 9, discard_every - 1, 2),
            isa.call_helper(132),  # bpf_ringbuf_submit
            Instruction(Class.JMP | JmpOp.JA, off=1),
            isa.call_helper(133),  # bpf_ringbuf_discard
        ]
    else:
        prog.append(isa.call_helper(132))
    exit_at = len(prog)
    prog += [isa.mov64_imm(0, XDP_PASS), isa.exit_insn()]
    # The two "r0 == NULL" checks jump to the exit; offsets count slots from the next one.
    for i, ins in enumerate(prog):
        if ins.code == Class.JMP | JmpOp.JEQ and ins.off == 0 and ins.dst == 0:
            prog[i] = ins.with_(off=exit_at - i - 1)
    return prog


def make_producer(ring_size: int, record_size: int, discard_every: int = 0) -> Producer:
    with ExitStack() as stack:
        ring = stack.enter_context(Map.create(MapType.RINGBUF, 0, 0, ring_size, name="bench_ring"))
        counter = stack.enter_context(Map.create(MapType.ARRAY, 4, 8, 1, name="bench_seq"))
        code = producer_insns(ring.fd, counter.fd, record_size, discard_every)
        prog = Program.load(ProgType.XDP, code, name="ringbuf_prod")
        stack.pop_all()
    return Producer(prog, ring, counter, record_size)


def _fill(prod: Producer, rb: RingBuffer) -> int:
    n = (rb.size - 1) // slot_size(prod.record_size)  # a producer stays < size bytes ahead
    prod.run(n)
    return n


def bench(record_size: int, ring_size: int, rounds: int) -> list[tuple[str, float]]:
    prod = make_producer(ring_size, record_size)
    rb = RingBuffer.from_map(prod.ring_map)
    rec = struct.Struct(
        f"8xQQ{record_size - 16}x" + "x" * (slot_size(record_size) - 8 - record_size)
    )
    results = []
    try:
        for label, consume in (
            ("drain() -> list[bytes]", lambda: len(rb.drain())),
            ("drain_fixed() -> blob", lambda: rb.drain_fixed(record_size)[1]),
            (
                "drain_fixed + iter_unpack",
                lambda: sum(1 for _ in rec.iter_unpack(rb.drain_fixed(record_size)[0])),
            ),  # fmt: skip
        ):
            total, spent = 0, 0.0
            for _ in range(rounds):
                _fill(prod, rb)
                t0 = time.perf_counter()
                total += consume()
                spent += time.perf_counter() - t0
            results.append((label, total / spent))
    finally:
        rb.close()
        prod.close()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs="+", default=[16, 64, 256], help="record bytes")
    ap.add_argument("--ring", type=int, default=16, help="ring size in MiB (power of two)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"{'record':>7}  {'method':<28} {'records/s':>14}")
    for size in args.size:
        for label, rate in bench(size, args.ring << 20, args.rounds):
            print(f"{size:>6}B  {label:<28} {rate:>14,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
