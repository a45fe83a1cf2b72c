""".BTF.ext: what ties BTF to instructions — func_info, line_info and CO-RE relocations.

The section is ``btf_ext_header`` (magic 0xeB9F, version 1, flags, hdr_len, then offset/length
pairs relative to the end of the header for func_info, line_info and, when ``hdr_len`` reaches
that far, core_relo). Each of those three is ``u32 rec_size`` followed by groups of
``{u32 sec_name_off; u32 num_info; rec_size * num_info bytes}``: one group per ELF section,
its name an offset into the ``.BTF`` string table. The record size comes from the file, so a
newer compiler's longer records still parse (we read the fields we know, at the start).

In the file, ``insn_off`` is a **byte** offset into the section; here it becomes ``insn_idx``
(``insn_off // 8``), the unit the loader and the kernel's ``BPF_PROG_LOAD`` use.
"""

from __future__ import annotations

import struct
import sys

from pybpf.btf.model import BTF
from pybpf.enums import int_enum
from pybpf.errors import BTFError
from pybpf.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Callable, Iterable, Optional, Sequence

BTF_EXT_MAGIC = 0xEB9F
INSN_SIZE = 8
# struct btf_ext_header up to line_info_len, then optionally core_relo_off/len
_HEADER = "HBBIIIII"
_HEADER_SIZE = 24
_HEADER_CORE_SIZE = 32
HOST_ORDER = "<" if sys.byteorder == "little" else ">"
# What the kernel takes in BPF_PROG_LOAD: struct bpf_func_info / struct bpf_line_info.
FUNC_INFO_REC_SIZE = 8
LINE_INFO_REC_SIZE = 16


@int_enum
class CoreReloKind:
    """``enum bpf_core_relo_kind``: what a CO-RE relocation asks of the target BTF."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


@record
class FuncInfo:
    """``bpf_func_info``: the function (a BTF FUNC id) that starts at instruction ``insn_idx``."""

    insn_idx: int
    type_id: int


@record
class LineInfo:
    """``bpf_line_info``: the source line of instruction ``insn_idx``.

    ``file_name_off``/``line_off`` are the strings' offsets in the object's ``.BTF``, which is
    what the kernel wants (it checks them against the BTF loaded with the program).
    """

    insn_idx: int
    file_name: str
    line_text: str
    line_num: int
    col: int
    file_name_off: int = 0
    line_off: int = 0


@record
class CoreRelo:
    """``bpf_core_relo``: patch instruction ``insn_idx`` with ``kind`` of the field/type/enum
    value that ``access_str`` (``"0:1:2"``: member/array indexes) reaches from ``type_id``."""

    insn_idx: int
    type_id: int
    access_str: str
    kind: CoreReloKind


@record
class BTFExt:
    """Per ELF section name: func_info, line_info and CO-RE relocation records, in file order."""

    func_info: dict[str, tuple[FuncInfo, ...]]
    line_info: dict[str, tuple[LineInfo, ...]]
    core_relos: dict[str, tuple[CoreRelo, ...]]

    @classmethod
    def parse(cls, data: bytes, little_endian: Optional[bool], btf: BTF) -> BTFExt:
        """Parse a ``.BTF.ext`` blob; names are looked up in ``btf`` (the object's ``.BTF``)."""
        order = _byte_order(data, little_endian)
        magic, version, _flags, hdr_len = struct.unpack_from(order + "HBBI", data)
        if version != 1:
            raise BTFError(f".BTF.ext version {version} is not supported (only 1)")
        if hdr_len < _HEADER_SIZE or hdr_len > len(data):
            raise BTFError(f".BTF.ext header length {hdr_len} does not fit {len(data)} bytes")
        fi_off, fi_len, li_off, li_len = struct.unpack_from(order + "IIII", data, 8)
        core_off = core_len = 0
        if hdr_len >= _HEADER_CORE_SIZE:
            core_off, core_len = struct.unpack_from(order + "II", data, 24)
        body = data[hdr_len:]
        reader = _Reader(body, order, btf)
        return cls(
            reader.groups("func_info", fi_off, fi_len, 8, reader.func_info),
            reader.groups("line_info", li_off, li_len, 16, reader.line_info),
            reader.groups("core_relo", core_off, core_len, 16, reader.core_relo),
        )


def _byte_order(data: bytes, little_endian: Optional[bool]) -> str:
    if len(data) < _HEADER_SIZE:
        raise BTFError(f".BTF.ext is {len(data)} bytes, shorter than its header")
    if struct.unpack_from("<H", data)[0] == BTF_EXT_MAGIC:
        little = True
    elif struct.unpack_from(">H", data)[0] == BTF_EXT_MAGIC:
        little = False
    else:
        raise BTFError(f".BTF.ext magic is {data[:2].hex()}, not 0xeb9f in either byte order")
    if little_endian is not None and little != little_endian:
        raise BTFError(".BTF.ext byte order differs from its object's")
    return "<" if little else ">"


class _Reader:
    def __init__(self, body: bytes, order: str, btf: BTF):
        self.body = body
        self.order = order
        self.btf = btf

    def string(self, off: int, what: str) -> str:
        try:
            return self.btf.strings.get(off)
        except BTFError as e:
            raise BTFError(f".BTF.ext {what}: {e}") from None

    def groups(
        self,
        what: str,
        off: int,
        length: int,
        min_rec: int,
        decode: Callable[[Iterable[tuple]], list],
    ) -> dict:
        if length == 0:
            return {}
        if off + length > len(self.body):
            raise BTFError(f".BTF.ext {what} ({off}+{length}) runs past the end of the section")
        blob = self.body[off : off + length]
        (rec_size,) = struct.unpack_from(self.order + "I", blob)
        if rec_size < min_rec or rec_size % 4:
            raise BTFError(f".BTF.ext {what}: record size {rec_size} is invalid (min {min_rec})")
        rec = struct.Struct(self.order + "I" * (min_rec // 4))
        out: dict[str, tuple] = {}
        pos = 4
        while pos < len(blob):
            if pos + 8 > len(blob):
                raise BTFError(f".BTF.ext {what}: truncated group header at byte {pos}")
            name_off, num = struct.unpack_from(self.order + "II", blob, pos)
            pos += 8
            section = self.string(name_off, what)
            end = pos + num * rec_size
            if num == 0 or end > len(blob):
                raise BTFError(f".BTF.ext {what}: section {section} has a bad count {num}")
            if rec_size == min_rec:  # the records back to back: one pass in C
                rows: Iterable[tuple] = rec.iter_unpack(blob[pos:end])
            else:  # a newer, longer record: read the fields this version knows
                rows = (rec.unpack_from(blob, p) for p in range(pos, end, rec_size))
            try:
                records = decode(rows)
            except BTFError as e:
                raise BTFError(f".BTF.ext {what}: {e}") from None
            out[section] = out.get(section, ()) + tuple(records)
            pos = end
        return out

    # Each decoder takes a group's records as tuples of their fields and returns the records.

    def func_info(self, rows: Iterable[tuple]) -> list:
        return [FuncInfo(_insn_idx(insn_off), type_id) for insn_off, type_id in rows]

    def line_info(self, rows: Iterable[tuple]) -> list:
        string = self.btf.strings.get
        return [
            LineInfo(
                _insn_idx(insn_off),
                string(file_off),
                string(line_off),
                line_col >> 10,  # BPF_LINE_INFO_LINE_NUM
                line_col & 0x3FF,  # BPF_LINE_INFO_LINE_COL
                file_off,
                line_off,
            )
            for insn_off, file_off, line_off, line_col in rows
        ]

    def core_relo(self, rows: Iterable[tuple]) -> list:
        string = self.btf.strings.get
        out = []
        for insn_off, type_id, access_off, kind in rows:
            try:
                k = CoreReloKind(kind)
            except ValueError:
                raise BTFError(f"record at byte {insn_off}: unknown kind {kind}") from None
            out.append(CoreRelo(_insn_idx(insn_off), type_id, string(access_off), k))
        return out


def _insn_idx(insn_off: int) -> int:
    if insn_off % INSN_SIZE:
        raise BTFError(f"record at byte offset {insn_off} is not on an instruction")
    return insn_off // INSN_SIZE


# --- what BPF_PROG_LOAD takes -----------------------------------------------------------------


def encode_func_info(records: Iterable[FuncInfo]) -> tuple[bytes, int]:
    """``bpf_func_info[]`` for ``BPF_PROG_LOAD`` (host order, instruction indexes): (bytes,
    rec_size). The first record must be at instruction 0 and they must ascend; the kernel checks."""
    rec = struct.Struct(HOST_ORDER + "II")
    return b"".join(rec.pack(r.insn_idx, r.type_id) for r in records), FUNC_INFO_REC_SIZE


def encode_line_info(records: Sequence[LineInfo], btf: Optional[BTF] = None) -> tuple[bytes, int]:
    """``bpf_line_info[]`` for ``BPF_PROG_LOAD``: (bytes, rec_size).

    The string offsets must point into the BTF loaded with the program. Records keep their
    offsets from the file; given ``btf`` (what will be loaded), each is checked there and looked
    up again by text when it moved.
    """
    rec = struct.Struct(HOST_ORDER + "IIII")
    out = []
    for r in records:
        file_off, line_off = r.file_name_off, r.line_off
        if btf is not None:
            file_off = _string_offset(btf, file_off, r.file_name)
            line_off = _string_offset(btf, line_off, r.line_text)
        out.append(rec.pack(r.insn_idx, file_off, line_off, r.line_num << 10 | r.col))
    return b"".join(out), LINE_INFO_REC_SIZE


def _string_offset(btf: BTF, off: int, text: str) -> int:
    try:
        if btf.strings.get(off) == text:
            return off
    except BTFError:
        pass
    found = btf.strings.offset_of(text)
    if found is None:
        raise BTFError(f"line_info string {text[:40]!r} is not in the BTF to be loaded")
    return found
