"""Stage 1 of the lesson: BPF instructions as data.

``insn`` encodes and decodes the 8-byte instructions (and the 16-byte ``ld_imm64``), ``disasm``
prints them in the verifier's notation, ``helpers`` names the kernel's helper functions,
``assembler`` writes new code with labels. Nothing here touches the kernel.
"""
