"""CO-RE's answer to a relocation the target cannot satisfy: poison the instruction, not the load.

A program built for several kernels reads a field only where ``bpf_core_field_exists`` says it
is there; on a kernel without it, the read is dead code. So, as libbpf does, a relocation with
no value does not fail the object: its instruction becomes a call to helper 0xbad2310, which no
kernel has. If the verifier never reaches it, the program loads; if it does, it refuses the
program with ``invalid func unknown#195896080``, and the loader, which kept an ``Unresolved``
for every poisoned instruction, says which relocation that was and what the kernel lacks.
"""

from __future__ import annotations

from pybpf.asm.insn import CALL, Instruction
from pybpf.btf.ext import CoreReloKind
from pybpf.errors import UnresolvedRelocationError, VerifierError
from pybpf.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional, Sequence

POISON_HELPER_ID = 0xBAD2310  # "bad relo": the verifier reports invalid func unknown#195896080


@record
class Unresolved:
    """A relocation no value was found for, so its instruction was poisoned. ``insn_idx`` is
    the instruction's index in its section, as the relocation record has it."""

    insn_idx: int
    kind: CoreReloKind
    spec: str  # the local spec, as core.Spec.describe() spells it
    why: str  # what the target lacks

    def __str__(self) -> str:
        return f"failed to resolve CO-RE relocation {self.kind.name} {self.spec}: {self.why}"


def poisoned() -> Instruction:
    return Instruction(CALL, 0, 0, 0, POISON_HELPER_ID)


def poison(insns: list[Instruction], idx: int) -> str:
    """Poison ``insns[idx]`` in place; returns what was done, for the log."""
    if insns[idx].is_ld_imm64 and idx + 1 < len(insns):
        insns[idx + 1] = poisoned()  # else the verifier complains of "unknown opcode 00"
    insns[idx] = poisoned()
    return f"poisoned insn {idx}: call to invalid helper {POISON_HELPER_ID:#x} if reached"


def explain_rejection(
    e: VerifierError, pieces: Sequence[Any], unresolved: Mapping[str, Mapping[int, Unresolved]]
) -> None:
    """Raise the error naming the relocation when the verifier's refusal ``e`` is that it
    reached a poisoned instruction (libbpf rewrites its log so); otherwise return."""
    found = poison_reached(e.log, pieces, unresolved)
    if found is not None:
        raise UnresolvedRelocationError(e, *found) from None


def poison_reached(
    verifier_log: str, pieces: Sequence[Any], unresolved: Mapping[str, Mapping[int, Unresolved]]
) -> Optional[tuple[str, str]]:
    """When the verifier rejected a program for reaching a poisoned call, the relocation and
    where it is: ("failed to resolve CO-RE relocation ...", "insn 7 (in second_member)").

    The log's last lines say ``7: (85) call unknown#195896080`` then ``invalid func
    unknown#195896080`` (where libbpf looks for them too); ``pieces`` (the linked program's
    ``object.linker.Piece``s) map the program's instruction 7 back to its section's, where
    ``unresolved`` (by section, then instruction) has the relocation that was poisoned."""
    lines = [ln.strip() for ln in verifier_log.splitlines() if ln.strip()][-10:]
    idx = None
    for call, refusal in zip(lines, lines[1:]):
        head, sep, rest = call.partition(": (85) call unknown#")
        if refusal == f"invalid func unknown#{POISON_HELPER_ID}" and head.isdigit() and sep:
            idx = int(head) if rest == str(POISON_HELPER_ID) else None
    for piece in pieces if idx is not None else ():
        if piece.start <= idx < piece.start + piece.length:
            found = unresolved.get(piece.section, {}).get(piece.section_start + idx - piece.start)
            where = f"insn {idx}" + (f" (in {piece.function})" if piece.start else "")
            return (str(found), where) if found is not None else None
    return None
