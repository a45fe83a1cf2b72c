"""Splicing: generated instructions in place of a stub subprogram's body, before linking.

A C program leaves a hole for code that is only known at run time (a packet filter typed by a
user) as a small ``__noinline`` function that the program calls::

    __noinline int my_filter(struct xdp_md *ctx) { return 1; }   /* replaced at load */

``spec.replace_function("my_filter", insns)`` records instructions made with
``pybpf.asm.assembler``; when the linker appends ``my_filter`` to a program that calls it, it
appends those instructions instead of the compiled body. Everything else is as usual: the
caller's ``call`` is pointed at the new body, func_info keeps the stub's BTF type (for a global
function the verifier checks the new body against that prototype, on its own), and line_info
keeps the one record at the function's first instruction (the kernel wants one there). The
stub's own relocations and later line_info records described the old body; they are dropped.

This is what pwru and xdpcap do with libpcap's output; here the check happens before anything
reaches the kernel, so a mistake is named in words instead of by the verifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from pybpf.asm import insn as isa
from pybpf.asm.insn import Instruction
from pybpf.errors import BPFError
from pybpf.object import inline

if TYPE_CHECKING:  # pragma: no cover
    from pybpf.object.spec import ObjectSpec


class SpliceError(BPFError):
    """Generated code cannot replace the named function; the message says why."""


def check_replacement(
    spec: ObjectSpec, name: str, insns: Iterable[Instruction]
) -> tuple[Instruction, ...]:
    """The instructions, once checked to be a self-contained body for subprogram ``name``."""
    where = f"{spec.name}: cannot replace '{name}'"
    func = spec.functions.get(name)
    if func is None:
        subs = sorted(f.name for f in spec.functions.values() if f.section == ".text")
        known = f" (subprograms: {', '.join(subs)})" if subs else " (the object has none)"
        raise SpliceError(f"{where}: no such function{known}")
    if name in spec.programs or func.section != ".text":
        raise SpliceError(f"{where}: it is a program ({func.section}), not a subprogram in .text")
    body = tuple(insns)
    if not body or not all(isinstance(i, Instruction) for i in body):
        raise SpliceError(f"{where}: the new body must be a non-empty list of Instructions")
    if body[-1].code != isa.EXIT and body[-1].code != isa.Class.JMP | isa.JmpOp.JA:
        raise SpliceError(f"{where}: the new body must end in exit (or a jump back)")
    for i, ins in enumerate(body):
        _check_insn(where, body, i, ins)
    return body


def _check_insn(where: str, body: tuple[Instruction, ...], i: int, ins: Instruction) -> None:
    if ins.is_call and ins.src != 0:
        raise SpliceError(
            f"{where}: instruction {i} calls a subprogram or kfunc; only helper calls can be "
            "spliced (nothing would relocate the call)"
        )
    if ins.is_ld_imm64 and ins.src != 0:
        raise SpliceError(
            f"{where}: instruction {i} loads a map or symbol reference; spliced code has no "
            "relocations (pass values in registers or set .rodata instead)"
        )
    if ins.is_jump:
        target = inline.target(body, i)
        if not 0 <= target < len(body):
            raise SpliceError(f"{where}: instruction {i} jumps to {target}, outside the new body")
