"""The shipped capture program cannot go stale: its recorded hash is the hash of the sources."""

from __future__ import annotations

from elftools.elf.elffile import ELFFile

from xdptcp import objhash


def test_recorded_hash_equals_the_current_sources() -> None:
    assert objhash.recorded_hash() == objhash.sources_hash(), "run `make shipped`"


def test_hash_changes_when_a_source_changes(tmp_path) -> None:
    for name in objhash.SOURCES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((objhash.ROOT / name).read_bytes())
    before = objhash.sources_hash(tmp_path)
    assert before == objhash.sources_hash()
    (tmp_path / "bpf/xdptcp.h").write_bytes((tmp_path / "bpf/xdptcp.h").read_bytes() + b"\n")
    assert objhash.sources_hash(tmp_path) != before


def test_shipped_object_is_a_bpf_elf_with_the_capture_program() -> None:
    with open(objhash.OBJECT, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_BPF"
        assert elf.get_section_by_name("xdp.frags") is not None
        assert elf.get_section_by_name("tc") is not None
        symbols = elf.get_section_by_name(".symtab")
        funcs = {s.name for s in symbols.iter_symbols() if s["st_info"]["type"] == "STT_FUNC"}
        assert {"xdp_capture", "tc_capture"} <= funcs
        names = {s.name for s in symbols.iter_symbols()}
        assert {"xdptcp_ring", "xdptcp_counters", "xdptcp_filter", "xdptcp_capacity"} <= names
        assert elf.get_section_by_name(".BTF") is not None


def test_shipped_text_walk_is_a_bpf_elf_with_its_two_programs() -> None:
    from pybpf import ObjectSpec

    spec = ObjectSpec.from_file(str(objhash.DATA / "xdptcp_text.bpf.o"))
    assert {n: p.section for n, p in spec.programs.items()} == {
        "xdptcp_text": "syscall",
        "xdptcp_text_clear": "syscall",
    }
    assert {"xdptcp_text_in", "xdptcp_text_conv", "xdptcp_text_heads"} <= set(spec.maps)
    assert "xt" in spec.variables


def test_shipped_walker_is_a_bpf_elf_with_the_walk_program() -> None:
    from pybpf import ObjectSpec

    spec = ObjectSpec.from_file(str(objhash.DATA / "xdptcp_walk.bpf.o"))
    assert spec.programs["xdptcp_walk"].section == "syscall"
    assert {"xdptcp_walk_in", "xdptcp_walk_out"} <= set(spec.maps)
    from xdptcp.pcapfilter import compile_filter

    spec.replace_function("xdptcp_filter", compile_filter("port 443").insns)  # the stub
