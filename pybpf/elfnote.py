"""ELF note records, as ``PT_NOTE`` segments and ``SHT_NOTE`` sections hold them.

A record is a 12-byte header (the owner's name size, the descriptor size, the type: the same
three 32-bit words in 32- and 64-bit files), then the owner's name and the descriptor, each
padded to 4 bytes. pybpf reads two kinds: the running kernel's GNU build ID, from the notes it
exports in ``/sys/kernel/notes`` (btf, to key the kernel BTF cache), and the USDT probes a
program declares in ``.note.stapsdt`` (link). Beneath every stage, so both use this one walk.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator


def elf_notes(data: bytes, order: str = "=") -> Iterator[tuple[bytes, int, bytes]]:
    """``(owner, type, descriptor)`` of each record in ``data``, the owner without its
    terminating NUL; ``order`` is the file's byte order as struct spells it. A record that
    runs past the end of ``data`` ends the walk: what it would hold is not there."""
    header = struct.Struct(order + "III")
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = header.unpack_from(data, pos)
        name_at = pos + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        pos = desc_at + (descsz + 3) // 4 * 4
        if desc_at + descsz > len(data):
            return
        yield (
            data[name_at : name_at + namesz].rstrip(b"\0"),
            ntype,
            data[desc_at : desc_at + descsz],
        )
