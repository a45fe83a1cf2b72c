"""pcap-filter expressions compiled to eBPF, with libpcap's meaning.

``compile_filter("tcp port 80 and tcp[13] & 2 != 0")`` parses the text as libpcap's grammar does
(``parser``, ``primitives``), lowers it to a small tree of loads and comparisons (``ir``),
generates eBPF instructions with pybpf's assembler (``codegen``), and returns them in a
``CompiledFilter``. Live, the instructions replace the body of the stub ``xdptcp_filter()`` in
the capture program; offline (``-r``), the very same instructions run in Python: written out
once as a function (``pycode``), with ``vm`` (one line per instruction) as the reference. One
compiler for both, so a live capture and a file read select the same packets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Optional

from pybpf.asm.insn import Instruction
from pybpf.errors import BPFError
from xdptcp.pcapfilter import ir
from xdptcp.pcapfilter.names import FilterError

STUB = "xdptcp_filter"  # the subprogram of bpf/xdptcp.bpf.c whose body is replaced
ETHERNET_LINKTYPE = 1
# What the kernel's verifier takes of a filter: it follows the filter once for each state of
# the capture program at the call it cannot prune, within 1,000,000 instructions in all, and
# keeps at most 8192 branches waiting to be followed (each conditional jump can leave one;
# ``codegen.CodeGen.leave`` lays a chain of terms out so that few wait). Both programs call
# the filter before their parser, in one state (tc a second time after pulling headers).
# Measured with chains of `host` terms (16 instructions a term, laid out spread), both
# programs loaded: 10,000 hosts (160,163 instructions) verified in 356,754 (XDP) and 510,202
# (tc) instructions on 6.1, 338,636 and 510,142 on 6.18, which also takes 12,000 hosts and
# refused 16,000 (tc, at its million). The bound is a little above 10,000 hosts.
KERNEL_MAX_INSNS = 165_000
KERNEL_MAX_BRANCHES = 8_000


class FilterTooLarge(BPFError):
    """The filter compiles (``-r`` runs it) but is more than the kernel's verifier can check:
    reported as the kernel's refusals are, before the kernel is asked."""


@dataclass(frozen=True)
class CompiledFilter:
    text: str
    insns: tuple[Instruction, ...]

    def rodata_values(self) -> dict[str, int]:
        """The ``.rodata`` switches: the program calls the filter, and its XDP program asks each
        frame's whole length before the filter runs only when the filter reads it."""
        return {"xdptcp_filter_on": 1, "xdptcp_filter_len": int(self.reads_len)}

    @cached_property
    def reads_len(self) -> bool:
        """Does the filter read libpcap's ``len`` (``len``, ``greater``, ``less``)? The generated
        code keeps the length in r8 and reads that register for nothing else (``codegen``)."""
        return any(insn.src == 8 for insn in self.insns)

    def code(self) -> dict[str, tuple[Instruction, ...]]:
        """Generated bodies by subprogram name (``ObjectSpec.replace_function``); raises
        ``FilterTooLarge`` for a filter the kernel would refuse (thousands of terms)."""
        from xdptcp.pcapfilter.codegen import branches_waiting

        n, waiting = len(self.insns), branches_waiting(self.insns)
        if n > KERNEL_MAX_INSNS or waiting > KERNEL_MAX_BRANCHES:
            raise FilterTooLarge(
                f"filter: too large for the kernel: {n} eBPF instructions, {waiting} branches "
                f"left waiting on one path, where its verifier takes about {KERNEL_MAX_INSNS} "
                f"and {KERNEL_MAX_BRANCHES} (xdptcp -r reads a file with it)"
            )
        return {STUB: self.insns}

    def matches(self, frame: bytes, wire_len: Optional[int] = None) -> bool:
        """Would the filter accept this frame? Runs the generated eBPF (``vm``)."""
        return self._run(frame, len(frame) if wire_len is None else wire_len) != 0

    def matches_packet(self, frame: bytes, wire_len: int, linktype: int, orig_len: int) -> bool:
        """``matches`` for ``-r``: ``frame`` is a packet of ``linktype`` seen as Ethernet
        (``xdptcp.linktypes``), ``orig_len`` its length as captured, libpcap's ``len``. On a link
        type other than Ethernet the filter is compiled again with that link type's rules."""
        if linktype == ETHERNET_LINKTYPE:
            return self.matches(frame, wire_len)
        if linktype not in self._per_link:
            self._per_link[linktype] = compile_filter(self.text, linktype)
        return self._per_link[linktype]._run(frame, wire_len, orig_len) != 0

    @cached_property
    def _per_link(self) -> dict:
        return {}

    @cached_property
    def in_place(self) -> Callable[[bytes, int, int, int, int], int]:
        """``f(buf, at, n, wire_len, length) -> r0`` on the ``n`` bytes of ``buf`` from ``at``
        (a record in a mapped file, filtered without copying it): the program written out as
        Python (``pycode``), or run by ``vm`` when it cannot be."""
        from xdptcp.pcapfilter import pycode

        fast = pycode.translate(self.insns)
        if fast is not None:
            return fast
        from xdptcp.pcapfilter.vm import runner

        run = runner(self.insns)
        return lambda buf, at, n, wire_len, length: run(bytes(buf[at : at + n]), wire_len, length)

    def _run(self, frame, wire_len: int, length: Optional[int] = None) -> int:
        length = wire_len if length is None else length
        return self.in_place(frame, 0, len(frame), wire_len, length)

    def listing(self) -> str:
        """The instructions as the verifier prints them (``xdptcp -d``)."""
        from pybpf.asm.disasm import listing

        return listing(list(self.insns))


def compile_filter(text: str, linktype: int = ETHERNET_LINKTYPE) -> CompiledFilter:
    """Compile ``text``; raises ``FilterError`` (one line, position and part) when it cannot.
    ``linktype``: the capture's, when it is not Ethernet (-r reads others as Ethernet)."""
    from xdptcp.pcapfilter.codegen import generate
    from xdptcp.pcapfilter.names import LINK_DESCRIPTIONS
    from xdptcp.pcapfilter.optimize import optimize
    from xdptcp.pcapfilter.parser import parse, room_for_nesting

    link = None
    if linktype != ETHERNET_LINKTYPE:
        link = LINK_DESCRIPTIONS.get(linktype, f"DLT {linktype}")
    with room_for_nesting():  # each stage recurses as deep as the filter nests
        node = parse(text, link)
        graph = None
        if node is not None:
            never = ir.never_on_tcp(node)
            if never is not None:
                raise FilterError(f"{never.what}; xdptcp captures only TCP", never.pos, never.part)
            graph = None if ir.has_chain(node) else optimize(node)
            if graph is False:  # libpcap's optimizer refuses these too, in these words
                raise FilterError("expression rejects all packets", 0, text)
        return CompiledFilter(text, tuple(generate(node, graph)))


__all__ = ["CompiledFilter", "FilterError", "FilterTooLarge", "compile_filter"]
