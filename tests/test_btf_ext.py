""".BTF.ext: func_info and line_info checked against the ELF symbols and the C source itself."""

from __future__ import annotations

import glob
import struct
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.btf.ext import (
    BTFExt,
    CoreRelo,
    CoreReloKind,
    FuncInfo,
    LineInfo,
    encode_func_info,
    encode_line_info,
)
from pybpf.btf.model import BTF, Func
from pybpf.errors import BTFError

from conftest import ROOT, bpf_object

CILIUM = "/usr/share/gocode/src/github.com/cilium/ebpf"
CILIUM_EL = sorted(glob.glob(f"{CILIUM}/**/*-el.elf", recursive=True))
OBJECTS = ["tests/btf_types", "tests/btf_maps", "tests/subprog", "xdptcp"]


def read(path) -> tuple[BTF, BTFExt, dict[tuple[str, str], int]]:
    """BTF, .BTF.ext, and the instruction index where each function symbol starts."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        btf = BTF.parse(elf.get_section_by_name(".BTF").data(), elf.little_endian)
        ext = BTFExt.parse(elf.get_section_by_name(".BTF.ext").data(), elf.little_endian, btf)
        starts = {
            (elf.get_section(s["st_shndx"]).name, s.name): s["st_value"] // 8
            for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s["st_info"]["type"] == "STT_FUNC"
        }
    return btf, ext, starts


@pytest.mark.parametrize("name", OBJECTS)
def test_func_info_names_the_function_at_each_instruction(name):
    """Every func_info record is a FUNC whose ELF symbol starts at that instruction."""
    btf, ext, starts = read(bpf_object(name))
    assert ext.func_info
    for section, records in ext.func_info.items():
        assert records[0].insn_idx == 0
        for r in records:
            func = btf.type(r.type_id)
            assert isinstance(func, Func)
            assert starts[(section, func.name)] == r.insn_idx


@pytest.mark.parametrize("name", ["tests/btf_types", "tests/btf_maps", "tests/subprog"])
def test_line_info_quotes_the_source_line(name):
    """line_text is the C line at line_num of file_name: read the source and compare."""
    btf, ext, _ = read(bpf_object(name))
    checked = 0
    for section, records in ext.line_info.items():
        assert [r.insn_idx for r in records] == sorted(r.insn_idx for r in records)
        for r in records:
            if r.line_num == 0:
                continue  # compiler-made code with no source line
            src = Path(r.file_name)
            if not src.is_absolute():
                src = ROOT / src
            lines = src.read_text().splitlines()
            assert lines[r.line_num - 1].strip() == r.line_text.strip(), (section, r)
            assert r.col <= len(lines[r.line_num - 1]) + 1
            assert btf.strings.get(r.file_name_off) == r.file_name
            assert btf.strings.get(r.line_off) == r.line_text
            checked += 1
    assert checked > 10


@pytest.mark.parametrize("el_path", CILIUM_EL, ids=lambda p: Path(p).name)
def test_big_and_little_endian_ext_read_the_same(el_path):
    eb_path = el_path.replace("-el.elf", "-eb.elf")
    with open(el_path, "rb") as fl, open(eb_path, "rb") as fb:
        el, eb = ELFFile(fl), ELFFile(fb)
        if el.get_section_by_name(".BTF.ext") is None:  # none in either byte order
            assert eb.get_section_by_name(".BTF.ext") is None
            return
        exts = []
        for elf in (el, eb):
            btf = BTF.parse(elf.get_section_by_name(".BTF").data(), elf.little_endian)
            exts.append(
                BTFExt.parse(elf.get_section_by_name(".BTF.ext").data(), elf.little_endian, btf)
            )
    assert exts[0] == exts[1]
    assert exts[0].func_info


def test_core_relocations_are_read():
    btf, ext, _ = read(f"{CILIUM}/btf/testdata/relocs-el.elf")
    relos = [r for rs in ext.core_relos.values() for r in rs]
    assert len(relos) > 20
    kinds = {r.kind for r in relos}
    assert {CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.TYPE_EXISTS} <= kinds
    for r in relos:
        assert all(part.isdigit() for part in r.access_str.split(":"))
        assert 0 < r.type_id < len(btf.types)


def test_records_are_in_instruction_units_not_bytes():
    """The file says byte 16; the loader and the kernel mean instruction 2."""
    btf = BTF([Func("f", 0)])
    sec_off = btf.strings.offset_of("f")
    fi = struct.pack("<I", 8) + struct.pack("<IIII", sec_off, 1, 16, 1)
    blob = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(fi), len(fi), 0) + fi
    ext = BTFExt.parse(blob, True, btf)
    assert ext.func_info == {"f": (FuncInfo(2, 1),)}
    assert ext.line_info == {} and ext.core_relos == {}


def test_longer_records_from_newer_compilers_still_parse():
    btf = BTF([Func("f", 0)])
    sec = btf.strings.offset_of("f")
    fi = struct.pack("<I", 12) + struct.pack("<IIIII", sec, 1, 8, 1, 0xDEAD)
    blob = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(fi), len(fi), 0) + fi
    assert BTFExt.parse(blob, True, btf).func_info == {"f": (FuncInfo(1, 1),)}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"\x00\x00" + b[2:], "magic"),
        (lambda b: b[:2] + b"\x02" + b[3:], "version 2"),
        (lambda b: b[:24] + struct.pack("<I", 3) + b[28:], "record size 3"),
        (lambda b: b[:28] + struct.pack("<I", 999) + b[32:], "string offset 999"),
        (lambda b: b[:32] + struct.pack("<I", 50) + b[36:], "bad count 50"),
        (lambda b: b[:36] + struct.pack("<I", 13) + b[40:], "not on an instruction"),
    ],
)
def test_malformed_ext_is_named(mutate, message):
    btf = BTF([Func("f", 0)])
    sec = btf.strings.offset_of("f")
    fi = struct.pack("<I", 8) + struct.pack("<IIII", sec, 1, 8, 1)
    blob = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(fi), len(fi), 0) + fi
    with pytest.raises(BTFError, match=message):
        BTFExt.parse(mutate(blob), True, btf)


def test_encoders_produce_the_kernel_records():
    o = "<" if sys.byteorder == "little" else ">"
    data, size = encode_func_info([FuncInfo(0, 5), FuncInfo(12, 9)])
    assert size == 8 and data == struct.pack(o + "IIII", 0, 5, 12, 9)
    btf = BTF([Func("main.c", 0)])
    off = btf.strings.offset_of("main.c")
    li = LineInfo(3, "main.c", "main.c", 42, 7, off, off)
    data, size = encode_line_info([li], btf)
    assert size == 16 and data == struct.pack(o + "IIII", 3, off, off, 42 << 10 | 7)


def test_line_info_strings_are_found_again_when_offsets_moved():
    btf = BTF([Func("x.c", 0), Func("return 0;", 0)])
    li = LineInfo(0, "x.c", "return 0;", 1, 1, 999, 999)  # stale offsets
    data, _ = encode_line_info([li], btf)
    _, file_off, line_off, _ = struct.unpack("=IIII", data)
    assert btf.strings.get(file_off) == "x.c" and btf.strings.get(line_off) == "return 0;"
    with pytest.raises(BTFError, match="not in the BTF"):
        encode_line_info([LineInfo(0, "y.c", "?", 1, 1)], btf)


def test_core_relo_kinds_have_libbpf_numbers():
    assert CoreReloKind.FIELD_BYTE_OFFSET == 0
    assert CoreReloKind.TYPE_ID_LOCAL == 6
    assert CoreReloKind.ENUMVAL_VALUE == 11
    assert CoreReloKind.TYPE_MATCHES == 12
    assert CoreRelo(1, 2, "0:1", CoreReloKind.FIELD_EXISTS).insn_idx == 1
