"""Linking: one program's instructions with every subprogram it calls appended, ready to patch.

A program section holds only its entry points; functions they call live in ``.text`` and are
copied after the program's own instructions, once per program that calls them (each program is
loaded on its own, so each carries its own copy). The order is libbpf's: depth first, a callee is
appended — and its own calls followed — at the first call that reaches it. Loading the same
instructions as libbpf matters: the kernel's program tag is a hash of them.

Everything here is pure computation on the spec: map and data references are listed with their
final instruction index, and the loader patches file descriptors into them afterwards.
"""

from __future__ import annotations

from pybpf.asm import insn as isa
from pybpf.asm.insn import Instruction
from pybpf.errors import RelocationError
from pybpf.object import inline
from pybpf.object.spec import Function, ObjectSpec, ProgramSpec, Relocation, RelocKind
from pybpf.record import record, replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Mapping, Optional, Sequence


@record
class Piece:
    """A run of a section's instructions placed in the linked program."""

    function: str
    section: str
    section_start: int  # index of its first instruction in its section
    length: int
    start: int  # index of its first instruction in the linked program
    replaced: bool = False  # generated code spliced in place of the compiled body
    inlined: bool = False  # that code put in place of a call to it (``pybpf.object.inline``)
    continues: bool = False  # the rest of the function after an inlined body


@record
class LinkedProgram:
    spec: ProgramSpec
    insns: tuple[Instruction, ...]
    pieces: tuple[Piece, ...]
    # References left for the loader, with ``insn_idx`` renumbered into ``insns``.
    relocations: tuple[Relocation, ...]
    func_info: tuple = ()  # btf_ext.FuncInfo records, renumbered
    line_info: tuple = ()  # btf_ext.LineInfo records, renumbered
    calls: tuple[tuple[int, str, str], ...] = ()  # (insn_idx, "call"/"func", callee)

    @property
    def subprograms(self) -> list[str]:
        """The functions appended after the program's own instructions, in order."""
        return [p.function for p in self.pieces[1:] if not (p.inlined or p.continues)]

    def source_of(self, idx: int) -> tuple[str, int]:
        """(section, index in section) of linked instruction ``idx``."""
        for p in self.pieces:
            if p.start <= idx < p.start + p.length:
                return p.section, p.section_start + idx - p.start
        raise IndexError(idx)


class _Linker:
    def __init__(
        self,
        spec: ObjectSpec,
        prog: ProgramSpec,
        code: Mapping[str, Sequence[Instruction]],
    ) -> None:
        self.spec = spec
        self.prog = prog
        self.code = code
        self.insns: list[Instruction] = list(
            code[prog.section][prog.insn_start : prog.insn_start + len(prog.insns)]
        )
        self.pieces = [Piece(prog.name, prog.section, prog.insn_start, len(prog.insns), 0)]
        self.placed: dict[str, int] = {prog.name: 0}
        self.refs: list[Relocation] = []
        self.calls: list[tuple[int, str, str]] = []
        self.relocs = {sec: {r.insn_idx: r for r in rels} for sec, rels in spec.relocations.items()}
        self.inline_at: list[tuple[int, Function]] = []  # (call's index, callee) to inline
        self.grown: dict[int, int] = {}  # piece start -> instructions its inlined bodies add

    def fail(self, piece: Piece, idx: int, msg: str) -> RelocationError:
        return RelocationError(
            f"program '{self.prog.name}': {msg} "
            f"(instruction {piece.section_start + idx} of section {piece.section})"
        )

    def link(self, piece: Piece) -> None:
        """Patch calls in ``piece``; append each callee at its first call, depth first."""
        rels = self.relocs.get(piece.section, {})
        for i in range(piece.length):
            at = piece.start + i
            ins = self.insns[at]
            rel = rels.get(piece.section_start + i)
            if rel is not None and rel.kind not in (RelocKind.CALL, RelocKind.FUNC):
                self.refs.append(replace(rel, insn_idx=at))
                continue
            if rel is None and not ins.is_pseudo_call:
                continue
            target = self.target_index(piece, i, ins, rel)
            callee = self.function_at(piece, i, target)
            if ins.is_call and target == callee.insn_start and self.may_inline(piece, at, callee):
                self.inline_at.append((at, callee))
                continue
            if callee.name not in self.placed:
                self.append(callee)
            dest = self.placed[callee.name] + (target - callee.insn_start)
            src = isa.PSEUDO_CALL if ins.is_call else isa.PseudoSrc.FUNC
            self.insns[at] = ins.with_(src=src, imm=dest - (at + 1))
            self.calls.append((at, "call" if ins.is_call else "func", callee.name))

    def target_index(
        self, piece: Piece, i: int, ins: Instruction, rel: Optional[Relocation]
    ) -> int:
        if rel is None:  # a call to a static function of the same section carries no relocation
            if piece.section != ".text":
                raise self.fail(piece, i, "call without relocation outside .text")
            return piece.section_start + i + ins.imm + 1
        if rel.target_section != ".text":
            raise self.fail(
                piece, i, f"call into section {rel.target_section}: callees must be in .text"
            )
        if rel.kind is RelocKind.CALL:
            # global callee: imm is -1 and the symbol's value is its offset; static callee:
            # the symbol is the section and imm is the callee's index minus one.
            return rel.offset // isa.INSN_SIZE + ins.imm + 1
        return (rel.offset + ins.imm) // isa.INSN_SIZE  # function address: byte offsets

    def may_inline(self, piece: Piece, at: int, callee: Function) -> bool:
        """Whether the call at ``at`` may become the replaced callee's body (see inline)."""
        body = self.spec.replaced.get(callee.name)
        # (a global function is checked on its own by the verifier, once for all its callers:
        # in place, it would be checked at each call, in each state that reaches it)
        if body is None or callee.is_global or len(body) > inline.INLINE_MAX:
            return False
        if not inline.body_reads_only_arguments(body):
            return False
        lo, hi = piece.start, piece.start + piece.length
        if at == lo:  # (the function's records start at its first instruction: keep it a call)
            return False
        if inline.read_before_written(self.insns, lo, hi, at + 1, inline.R6_R9):
            return False
        grown = self.grown.get(lo, 0) + len(body) - 1
        if not inline.fits(inline.crossing_span(self.insns, lo, hi, at), grown, len(body)):
            return False
        self.grown[lo] = grown
        return True

    def expand_inlined(self) -> None:
        """Put each body in place of its call, the last first: the indices before a call
        stay, those after it grow by the body's length less the call."""
        for at, callee in sorted(self.inline_at, key=lambda site: site[0], reverse=True):
            body = self.spec.replaced[callee.name]
            grow = len(body) - 1
            self.insns = inline.expand(self.insns, at, body)
            self.refs = [replace(r, insn_idx=r.insn_idx + grow) if r.insn_idx > at else r
                         for r in self.refs]  # fmt: skip
            self.calls = [(i + grow if i > at else i, kind, name) for i, kind, name in self.calls]
            pieces: list[Piece] = []
            for p in self.pieces:
                if p.start > at:
                    pieces.append(replace(p, start=p.start + grow))
                elif at < p.start + p.length:  # the caller's piece: before, the body, after
                    k = at - p.start
                    pieces.append(replace(p, length=k))
                    pieces.append(Piece(callee.name, callee.section, callee.insn_start,
                                        len(body), at, True, True))  # fmt: skip
                    pieces.append(replace(p, section_start=p.section_start + k + 1,
                                          length=p.length - k - 1, start=at + len(body),
                                          continues=True))  # fmt: skip
                else:
                    pieces.append(p)
            self.pieces = pieces  # (a part may be empty: a call first or last in its function)

    def function_at(self, piece: Piece, i: int, target: int) -> Function:
        for f in self.spec.functions.values():
            if f.section == ".text" and f.insn_start <= target < f.insn_start + len(f.insns):
                return f
        raise self.fail(piece, i, f"call to .text instruction {target}, which is in no function")

    def append(self, callee: Function) -> None:
        start = len(self.insns)
        self.placed[callee.name] = start
        body = self.spec.replaced.get(callee.name)
        if body is not None:  # spliced code: no calls or references of its own to patch
            self.insns.extend(body)
            piece = Piece(callee.name, callee.section, callee.insn_start, len(body), start, True)
            self.pieces.append(piece)
            return
        body = self.code[callee.section][callee.insn_start : callee.insn_start + len(callee.insns)]
        self.insns.extend(body)
        piece = Piece(callee.name, callee.section, callee.insn_start, len(callee.insns), start)
        self.pieces.append(piece)
        self.link(piece)


def link_program(
    spec: ObjectSpec,
    prog: ProgramSpec,
    code: Optional[Mapping[str, Sequence[Instruction]]] = None,
) -> LinkedProgram:
    """Link ``prog``: append its subprograms and list the references the loader must patch.

    ``code`` is the object's executable sections, by default as read from the file; the loader
    passes them after CO-RE relocation.
    """
    linker = _Linker(spec, prog, code if code is not None else spec.sections)
    linker.link(linker.pieces[0])
    linker.expand_inlined()
    pieces = tuple(linker.pieces)
    func_info = line_info = ()
    if spec.btf_ext is not None:
        func_info = _renumber(spec.btf_ext.func_info, pieces)
        line_info = _renumber(spec.btf_ext.line_info, pieces)
    return LinkedProgram(
        prog,
        tuple(linker.insns),
        pieces,
        tuple(linker.refs),
        func_info,
        line_info,
        tuple(sorted(linker.calls)),
    )


def _renumber(by_section: Mapping[str, Sequence], pieces: Sequence[Piece]) -> tuple:
    """Keep the records that fall in a placed piece, with their index in the linked program.

    Of a replaced piece only the record at its first instruction is kept: the kernel wants
    func_info and line_info where each function starts, and the rest described the old body."""
    out = []
    for p in pieces:
        shift = p.start - p.section_start
        if p.inlined:  # no longer a function: its records described the stub
            continue
        for rec in by_section.get(p.section, ()):
            if p.replaced and rec.insn_idx != p.section_start:
                continue
            if p.section_start <= rec.insn_idx < p.section_start + p.length:
                # a piece placed where it stood in its section (a program's own body, as a
                # rule) keeps its records: hundreds of line_info records, not copied
                out.append(replace(rec, insn_idx=rec.insn_idx + shift) if shift else rec)
    return tuple(out)
