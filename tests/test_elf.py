"""Reading objects into specs: no root, no kernel — the parse step makes no system calls."""

from __future__ import annotations

import glob
import subprocess
import sys

import pytest

from pybpf import ObjectSpec, ParseError
from pybpf.asm.insn import LD_IMM64, PseudoSrc
from pybpf.object.linker import link_program
from pybpf.object.mapspecs import internal_map_name
from pybpf.object.spec import RelocKind

from conftest import bpf_object

CILIUM_TESTDATA = "/usr/share/gocode/src/github.com/cilium/ebpf"


def test_rejects_a_file_that_is_not_elf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ParseError, match="not an ELF file"):
        ObjectSpec.from_file(str(path))


def test_rejects_an_elf_that_is_not_bpf():
    with pytest.raises(ParseError, match="not a BPF object"):
        ObjectSpec.from_file(sys.executable)


def test_missing_file_is_a_parse_error(tmp_path):
    with pytest.raises(ParseError, match="cannot read"):
        ObjectSpec.from_file(str(tmp_path / "nope.o"))


def test_programs_come_from_sections_and_subprograms_from_text():
    spec = ObjectSpec.from_file(str(bpf_object("tests/subprog")))
    assert set(spec.programs) == {"xdp_calls", "xdp_calls_too"}
    assert all(p.prog_type == "XDP" and p.section == "xdp" for p in spec.programs.values())
    text = {f.name for f in spec.functions.values() if f.section == ".text"}
    assert {"middle", "leaf", "other", "global_add", "add_index"} <= text
    assert spec.license == "GPL"


def test_calls_are_linked_depth_first_like_libbpf():
    spec = ObjectSpec.from_file(str(bpf_object("tests/subprog")))
    linked = link_program(spec, spec.programs["xdp_calls"])
    order = [p.function for p in linked.pieces]
    # middle is called first and calls leaf: leaf is appended before other.
    assert order.index("middle") < order.index("leaf") < order.index("other")
    starts = {p.start for p in linked.pieces}
    for idx, kind, callee in linked.calls:
        ins = linked.insns[idx]
        target = idx + 1 + ins.imm
        assert target in starts, f"{kind} at {idx} lands at {target}, not a function start"
        assert linked.pieces[[p.start for p in linked.pieces].index(target)].function == callee
    kinds = {kind for _, kind, _ in linked.calls}
    assert kinds == {"call", "func"}  # bpf_loop's callback is a function address
    func_loads = [linked.insns[i] for i, k, _ in linked.calls if k == "func"]
    assert all(i.code == LD_IMM64 and i.src == PseudoSrc.FUNC for i in func_loads)


def test_each_program_gets_its_own_copy_of_a_shared_subprogram():
    spec = ObjectSpec.from_file(str(bpf_object("tests/subprog")))
    other = link_program(spec, spec.programs["xdp_calls_too"])
    assert [p.function for p in other.pieces] == ["xdp_calls_too", "other"]


def test_relocations_are_classified_by_target_section():
    spec = ObjectSpec.from_file(str(bpf_object("tests/globals")))
    kinds = {(r.kind, r.target_section) for r in spec.relocations["xdp"]}
    sections = {s for k, s in kinds if k is RelocKind.DATA}
    assert {".rodata", ".bss", ".data", ".data.stats"} <= sections
    maps = ObjectSpec.from_file(str(bpf_object("tests/maps_all")))
    map_refs = {r.symbol for r in maps.relocations["xdp"] if r.kind is RelocKind.MAP}
    assert {"m_array", "m_ringbuf", "m_progs", "m_array_of_maps"} <= map_refs


def test_data_sections_become_one_entry_array_maps():
    spec = ObjectSpec.from_file(str(bpf_object("tests/globals")))
    by_origin = {m.origin: m for m in spec.maps.values()}
    ro = by_origin[".rodata"]
    assert (ro.map_type, ro.key_size, ro.max_entries) == (2, 4, 1)  # BPF_MAP_TYPE_ARRAY
    assert ro.flags & (1 << 7)  # BPF_F_RDONLY_PROG
    assert ro.frozen_after_fill
    assert not by_origin[".bss"].frozen_after_fill
    assert by_origin[".bss"].data == bytes(by_origin[".bss"].value_size)
    assert ro.name == "globals.rodata"
    assert by_origin[".data.stats"].name == ".data.stats"


def test_internal_map_names_follow_libbpf():
    assert internal_map_name("my_object_name", ".rodata") == "my_objec.rodata"
    assert internal_map_name("my_object_name", ".bss") == "my_objec.bss"
    assert internal_map_name("my_object_name", ".kconfig") == "my_obje.kconfig"
    assert internal_map_name("x", ".rodata.abracadabra") == ".rodata.abracad"


def test_rodata_constants_are_set_before_load():
    spec = ObjectSpec.from_file(str(bpf_object("tests/globals")))
    assert spec.rodata.get_int("cfg_verdict") == 2  # XDP_PASS
    spec.rodata["cfg_verdict"] = 1
    spec.rodata["cfg_name"] = "custom"
    var = spec.variables["cfg_verdict"]
    data = spec.section_data(".rodata")
    assert data[var.offset : var.offset + 4] == (1).to_bytes(4, "little")
    assert spec.rodata["cfg_name"] == b"custom\0\0"
    with pytest.raises(Exception, match="does not fit"):
        spec.rodata["cfg_verdict"] = 1 << 40
    with pytest.raises(Exception, match="no global variable 'nope'"):
        spec.rodata["nope"] = 1
    with pytest.raises(Exception, match="no global variable 'runs' in .rodata"):
        spec.rodata["runs"] = 1  # a .bss variable is not a constant


def test_btf_maps_carry_key_value_types_and_inner_maps():
    spec = ObjectSpec.from_file(str(bpf_object("tests/maps_all")))
    arr = spec.maps["m_array"]
    assert (arr.key_size, arr.value_size, arr.max_entries) == (4, 8, 8)
    assert arr.key_type_id and arr.value_type_id
    outer = spec.maps["m_array_of_maps"]
    assert outer.inner is not None and outer.inner.value_size == 4
    assert outer.init_slots == ((0, "m_inner_a"), (1, "m_inner_b"))
    assert spec.maps["m_ringbuf"].max_entries == 4096


def test_prog_array_initialiser_names_the_program():
    spec = ObjectSpec.from_file(str(bpf_object("tests/tailcall")))
    assert spec.maps["jump_table"].init_slots == ((1, "xdp_target"),)


def _cilium_objects() -> list[str]:
    return sorted(glob.glob(f"{CILIUM_TESTDATA}/**/*.elf", recursive=True))


@pytest.mark.parametrize("path", _cilium_objects() or ["(cilium/ebpf testdata not installed)"])
def test_cilium_testdata_parses_or_fails_cleanly(path):
    if path.startswith("("):
        from conftest import cannot_run

        cannot_run("golang-github-cilium-ebpf-dev is not installed")
    res = subprocess.run(
        [sys.executable, "-m", "pybpf", "inspect", path], capture_output=True, text=True
    )
    assert "Traceback" not in res.stderr
    assert "internal error" not in res.stderr
    if "invalid" in path.rsplit("/", 1)[-1]:
        assert res.returncode == 1, res.stdout[-300:]
        assert res.stderr.startswith("pybpf: error: ")
        assert len(res.stderr.strip().splitlines()) == 1
    else:
        assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    "name", sorted({p.rsplit("/", 1)[-1].rsplit("-", 1)[0] for p in _cilium_objects()})
)
def test_big_and_little_endian_objects_read_the_same(name):
    from pybpf.describe import describe

    files = {
        order: glob.glob(f"{CILIUM_TESTDATA}/**/{name}-{order}.elf", recursive=True)
        for order in ("el", "eb")
    }
    if not files["el"] or not files["eb"]:
        pytest.skip(f"{name}: one byte order is missing")
    try:
        el = describe(ObjectSpec.from_file(files["el"][0]))
    except ParseError:
        with pytest.raises(ParseError):  # an invalid object is invalid in both byte orders
            ObjectSpec.from_file(files["eb"][0])
        return
    eb = describe(ObjectSpec.from_file(files["eb"][0]))
    for d in (el, eb):
        d.pop("object"), d.pop("endianness")
    assert el == eb
