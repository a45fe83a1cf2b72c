"""The .BTF reader and encoder, checked against bpftool's reading of the same bytes."""

from __future__ import annotations

import glob
import json
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.btf.model import (
    BTF,
    Array,
    Datasec,
    Enum,
    Enum64,
    EnumValue,
    Func,
    FuncLinkage,
    FuncProto,
    Int,
    IntEncoding,
    Kind,
    Member,
    Param,
    Ptr,
    Struct,
    Typedef,
    TypeTag,
    UnionType,
    Var,
    VarLinkage,
    VarSecinfo,
)
from pybpf.errors import BTFError

from conftest import bpf_object, need_tool, run

VMLINUX = Path("/sys/kernel/btf/vmlinux")
CILIUM = "/usr/share/gocode/src/github.com/cilium/ebpf"
CILIUM_EL = sorted(glob.glob(f"{CILIUM}/**/*-el.elf", recursive=True))
OBJECTS = ["tests/btf_types", "tests/btf_maps", "tests/btf_externs", "tests/globals", "xdptcp"]


def elf_sections(path, *names):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        little = elf.little_endian
        return little, [
            elf.get_section_by_name(n) and elf.get_section_by_name(n).data() for n in names
        ]


def object_btf(path) -> BTF:
    little, (data,) = elf_sections(path, ".BTF")
    return BTF.parse(data, little)


def bpftool_types(path, *extra) -> list[dict]:
    out = run(need_tool("bpftool"), "btf", "dump", *extra, "file", str(path), "-j").stdout
    return json.loads(out)["types"]


def as_bpftool(btf: BTF, tid: int) -> dict:
    """Our reading of one type, spelled the way `bpftool btf dump -j` spells it."""
    t = btf.type(tid)
    d = {"id": tid, "kind": t.kind.name, "name": t.name or "(anon)"}
    if isinstance(t, Int):
        enc = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}[int(t.encoding)]
        d.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits, encoding=enc)
    elif isinstance(t, Array):
        d.update(type_id=t.type, index_type_id=t.index_type, nr_elems=t.nelems)
    elif isinstance(t, Struct):
        members = []
        for m in t.members:
            md = {"name": m.name or "(anon)", "type_id": m.type_id, "bits_offset": m.bit_offset}
            if m.bitfield_size:
                md["bitfield_size"] = m.bitfield_size
            members.append(md)
        d.update(size=t.size, vlen=len(members), members=members)
    elif isinstance(t, Enum):
        mask = (1 << (64 if isinstance(t, Enum64) else 32)) - 1
        values = [{"name": v.name, "val": v.value & mask} for v in t.values]
        d.update(encoding="SIGNED" if t.signed else "UNSIGNED", size=t.size)
        d.update(vlen=len(values), values=values)
    elif t.kind == Kind.FWD:
        d["fwd_kind"] = "union" if t.is_union else "struct"
    elif isinstance(t, FuncProto):
        params = [{"name": p.name or "(anon)", "type_id": p.type} for p in t.params]
        d.update(ret_type_id=t.return_type, vlen=len(params), params=params)
    elif t.kind == Kind.FUNC or isinstance(t, Var):
        d.update(type_id=t.type, linkage=["static", "global", "extern"][t.linkage])
    elif isinstance(t, Datasec):
        vars = [{"type_id": v.type_id, "offset": v.offset, "size": v.size} for v in t.vars]
        d.update(size=t.size, vlen=len(vars), vars=vars)
    elif t.kind == Kind.FLOAT:
        d["size"] = t.size
    elif t.kind == Kind.DECL_TAG:
        d.update(type_id=t.type, component_idx=t.component_idx)
    else:  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
        d["type_id"] = t.type
    return d


def normalise(d: dict) -> dict:
    """bpftool prints an unsigned 32-bit enum value sign-extended to 64 bits; compare raw bits."""
    if d["kind"] == "ENUM":
        d = dict(d, values=[dict(v, val=v["val"] & 0xFFFFFFFF) for v in d["values"]])
    return d


def assert_same_as_bpftool(btf: BTF, reference: list[dict]) -> None:
    assert len(btf.types) - btf.first_id == len(reference)
    for ref in reference:
        assert normalise(as_bpftool(btf, ref["id"])) == normalise(ref)


# --- against bpftool ---------------------------------------------------------------------


@pytest.mark.parametrize("name", OBJECTS)
def test_every_type_reads_as_bpftool_reads_it(name):
    path = bpf_object(name)
    assert_same_as_bpftool(object_btf(path), bpftool_types(path))


def test_vmlinux_reads_as_bpftool_reads_it():
    if not VMLINUX.exists():
        pytest.skip("kernel has no BTF")
    btf = BTF.parse(VMLINUX.read_bytes())
    reference = bpftool_types(VMLINUX)
    assert len(btf.types) - 1 == len(reference) > 10000
    assert_same_as_bpftool(btf, reference)
    kinds = {type(t) for t in btf.types}
    assert {Enum64, TypeTag, Datasec} <= kinds  # the kinds clang 14 objects lack


def test_the_test_object_has_every_kind_clang_emits():
    btf = object_btf(bpf_object("tests/btf_types"))
    kinds = {t.kind for t in btf.types[1:]}
    assert kinds >= set(Kind) - {Kind.UNKN, Kind.ENUM64, Kind.TYPE_TAG}


# --- the type model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def types_btf() -> BTF:
    return object_btf(bpf_object("tests/btf_types"))


def test_bitfields_follow_kind_flag(types_btf):
    bits = types_btf.type(types_btf.find("bits", Struct))
    assert bits.kind_flag
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in bits.members] == [
        ("a", 0, 3),
        ("b", 3, 13),
        ("c", 16, 7),
        ("d", 24, 0),
        ("e", 64, 33),
    ]


def test_find_distinguishes_kinds(types_btf):
    either = types_btf.find("either")
    assert isinstance(types_btf.type(either), UnionType)
    assert types_btf.find("either", Struct) is None
    assert types_btf.find("either", Kind.UNION) == either
    assert types_btf.find("no_such_type") is None


def test_format_spells_types_like_c(types_btf):
    b = types_btf
    event = b.find("event", Struct)
    member = {m.name: m.type_id for m in b.type(event).members}
    assert b.format(event) == "struct event"
    assert b.format(member["ts"]) == "u64_t"
    assert b.format(member["comm"]) == "const volatile char[16]"
    assert b.format(member["matrix"]) == "__u32[2][3]"
    assert b.format(member["opaque"]) == "struct fwd_only *"
    assert b.format(member["rp"]) == "int * restrict"
    assert b.format(member["u"]) == "union either"
    assert b.format(member["colour"]) == "enum colour"
    assert b.format(b.resolve(member["cb"])) == "int (*)(void *, long)"
    assert b.format(b.find("global_helper")) == "int global_helper(struct event * e)"


def test_sizeof_and_alignof_agree_with_the_compiler(types_btf):
    b = types_btf
    event = b.find("event", Struct)
    member = {m.name: m for m in b.type(event).members}
    assert b.sizeof(event) == 160  # what clang laid out (bpftool: size=160)
    assert b.sizeof(member["matrix"].type_id) == 24
    assert b.sizeof(member["opaque"].type_id) == 8
    assert b.alignof(b.find("packed", Struct)) == 1
    assert b.sizeof(b.find("packed", Struct)) == 5
    assert b.alignof(event) == 8
    assert b.alignof(member["comm"].type_id) == 1
    assert b.resolve(member["ts"].type_id) == b.find("unsigned long long", Int)
    with pytest.raises(BTFError, match="has no size"):
        b.sizeof(b.type(member["opaque"].type_id).type)


def test_enum_signedness_and_values(types_btf):
    colour = types_btf.type(types_btf.find("colour", Enum))
    assert colour.values == (
        EnumValue("RED", 0),
        EnumValue("GREEN", 5),
        EnumValue("BLUE", 2**32 - 3),
    )
    assert not colour.signed


# --- encoding ----------------------------------------------------------------------------


def afresh(btf: BTF) -> BTF:
    """The same types in a BTF made from them, not parsed: ``encode`` then writes every record
    itself instead of giving back the bytes ``parse`` read."""
    return BTF(btf.own_types, btf.strings, btf.base)


@pytest.mark.parametrize("name", OBJECTS)
def test_unmodified_object_btf_encodes_to_the_same_bytes(name):
    little, (data,) = elf_sections(bpf_object(name), ".BTF")
    btf = BTF.parse(data, little)
    assert btf.encode(little) == data
    assert afresh(btf).encode(little) == data
    assert BTF.parse(btf.encode(not little)) == btf


def test_vmlinux_encodes_to_the_same_bytes():
    if not VMLINUX.exists():
        pytest.skip("kernel has no BTF")
    data = VMLINUX.read_bytes()
    btf = BTF.parse(data)
    assert btf.encode() == data
    assert afresh(btf).encode() == data


def test_types_not_replaced_are_written_as_they_were_read(monkeypatch):
    """An object's BTF goes to the kernel as it was read, but for the types changed since: only
    those are encoded again (a thousand types from vmlinux.h are not re-encoded at each load)."""
    from pybpf.btf import model

    little, (data,) = elf_sections(bpf_object("tests/btf_types"), ".BTF")
    btf = BTF.parse(data, little)
    encoded = []
    real = model.encode_type

    def counting(t, o, name_offset):
        encoded.append(t)
        return real(t, o, name_offset)

    monkeypatch.setattr(model, "encode_type", counting)
    assert btf.encode(little) == data
    assert encoded == []
    tid = btf.find("int", Int)
    changed = Typedef("renamed_int", tid)
    added = Typedef("brand_new_name", tid)
    last = len(btf.types) - 1
    other = btf.replace_types({last: changed}, [added])
    blob = other.encode(little)
    assert encoded == [changed, added]
    again = BTF.parse(blob, little)
    assert again == other and again.type(last) == changed
    assert blob == afresh(other).encode(little)
    encoded.clear()
    assert BTF.parse(btf.encode(not little)) == btf  # the other byte order: every type encoded
    assert len(encoded) == len(btf.own_types)


def test_new_names_are_appended_to_the_string_table(types_btf):
    added = Typedef("brand_new_name", types_btf.find("int", Int))
    btf = types_btf.replace_types({}, [added])
    again = BTF.parse(btf.encode())
    assert again.type(len(again.types) - 1) == added
    assert again.strings.data.startswith(types_btf.strings.data)


# --- the cilium/ebpf corpus, both byte orders ----------------------------------------------


@pytest.mark.parametrize("el_path", CILIUM_EL, ids=lambda p: Path(p).name)
def test_big_and_little_endian_objects_read_the_same(el_path):
    eb_path = el_path.replace("-el.elf", "-eb.elf")
    el_little, (el_data,) = elf_sections(el_path, ".BTF")
    eb_little, (eb_data,) = elf_sections(eb_path, ".BTF")
    if el_data is None:  # an old object without BTF: in both byte orders
        assert eb_data is None
        return
    assert el_little and not eb_little
    el, eb = BTF.parse(el_data, True), BTF.parse(eb_data, False)
    assert el == eb
    assert eb.encode(False) == eb_data and el.encode(True) == el_data
    assert afresh(eb).encode(False) == eb_data and afresh(el).encode(True) == el_data


# --- header checks -------------------------------------------------------------------------


def header(**kw) -> bytes:
    f = dict(magic=0xEB9F, version=1, flags=0, hdr_len=24, type_off=0, type_len=0)
    f.update(str_off=0, str_len=1)
    f.update(kw)
    return struct.pack("<HBBIIIII", *f.values()) + b"\0"


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"\x9f\xeb\x01", "shorter than"),
        (header(magic=0x1234), "magic is 3412"),
        (header(version=2), "version 2"),
        (header(hdr_len=99), "header length 99"),
        (header(type_len=40), "type section .* runs past"),
        (header(str_off=1), "string section .* runs past"),
        (header()[:-1] + b"x", "does not start with the empty string"),
    ],
)
def test_malformed_headers_are_named(blob, message):
    with pytest.raises(BTFError, match=message):
        BTF.parse(blob)


def test_byte_order_disagreement_is_an_error(types_btf):
    with pytest.raises(BTFError, match="big-endian but its object is little-endian"):
        BTF.parse(types_btf.encode(False), True)


def test_truncated_records_and_unknown_kinds_are_named():
    good = BTF([Struct("s", 4, (Member("a", 1, 0),))]).encode()
    hdr = bytearray(good[:24])
    struct.pack_into("<I", hdr, 12, 16)  # type_len: cut the member off
    with pytest.raises(BTFError, match="truncated"):
        BTF.parse(bytes(hdr) + good[24:])
    bad = bytearray(good)
    bad[24 + 7] = 25  # kind 25 in the info word's top byte
    with pytest.raises(BTFError, match="unknown kind 25"):
        BTF.parse(bytes(bad))


def test_string_offset_past_the_table_is_named():
    blob = bytearray(BTF([Int("int", 4, IntEncoding.SIGNED, 0, 32)]).encode())
    struct.pack_into("<I", blob, 24, 999)
    with pytest.raises(BTFError, match="string offset 999"):
        BTF.parse(bytes(blob))


# --- split BTF -----------------------------------------------------------------------------


def test_split_btf_continues_the_base_ids_and_strings(tmp_path):
    base = BTF([Int("int", 4, IntEncoding.SIGNED, 0, 32), Ptr(1)])
    base_blob = base.encode()
    split = BTF(
        [Struct("module_thing", 16, (Member("n", 1, 0), Member("p", 2, 64))), Ptr(3)],
        base=base,
    )
    blob = split.encode()
    back = BTF.parse(blob, base=base)
    assert back == split
    assert back.first_id == 3
    assert back.find("module_thing") == 3 and back.find("int") == 1
    assert back.format(4) == "struct module_thing *"
    assert back.strings.offset_of("module_thing") >= len(base.strings.data)
    # bpftool reads our split blob on top of our base the same way.
    (tmp_path / "base").write_bytes(base_blob)
    (tmp_path / "split").write_bytes(blob)
    reference = json.loads(
        run(
            need_tool("bpftool"),
            "btf",
            "dump",
            "-B",
            str(tmp_path / "base"),
            "file",
            str(tmp_path / "split"),
            "-j",
        ).stdout
    )["types"]
    assert [r["id"] for r in reference] == [3, 4]
    assert_same_as_bpftool(back, reference)


# --- datasec fixup -------------------------------------------------------------------------


def elf_layout(path):
    """Section sizes and symbol offsets, as the ELF reader hands them to with_datasec_fixup."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sizes = {s.name: s["sh_size"] for s in elf.iter_sections()}
        offsets: dict[str, dict[str, int]] = {}
        for sym in elf.get_section_by_name(".symtab").iter_symbols():
            shndx = sym["st_shndx"]
            if sym["st_info"]["type"] == "STT_OBJECT" and isinstance(shndx, int):
                sec = elf.get_section(shndx).name
                offsets.setdefault(sec, {})[sym.name] = sym["st_value"]
    return sizes, offsets


def datasecs(btf: BTF) -> dict[str, list[tuple[str, int, int]]]:
    return {
        t.name: [(btf.name_of(v.type_id), v.offset, v.size) for v in t.vars]
        for t in btf.types
        if isinstance(t, Datasec)
    } | {f"{t.name} size": t.size for t in btf.types if isinstance(t, Datasec)}


def test_datasec_fixup_matches_libbpf_linker(tmp_path):
    """`bpftool gen object` runs libbpf's static linker, which fills the same sizes/offsets."""
    path = bpf_object("tests/btf_types")
    linked = tmp_path / "linked.o"
    run(need_tool("bpftool"), "gen", "object", str(linked), str(path))
    ours = object_btf(path).with_datasec_fixup(*elf_layout(path))
    assert datasecs(ours) == datasecs(object_btf(linked))


def test_kconfig_and_ksyms_are_laid_out_like_libbpf():
    path = bpf_object("tests/btf_externs")
    btf = object_btf(path).with_datasec_fixup(*elf_layout(path))
    ds = datasecs(btf)
    # most aligned first, then smaller, then by name
    assert ds[".kconfig"] == [
        ("CONFIG_HZ", 0, 8),
        ("LINUX_KERNEL_VERSION", 8, 4),
        ("CONFIG_BPF_SYSCALL", 12, 1),
        ("CONFIG_LOCALVERSION", 13, 16),
    ]
    assert ds[".kconfig size"] == 29
    # a kfunc's entry points at a dummy int var (the FUNC keeps its name in BTF), as libbpf does
    assert ds[".ksyms"] == [("dummy_ksym", 0, 4), ("bpf_prog_active", 4, 4)]
    assert ds[".ksyms size"] == 8
    kfunc = btf.type(btf.find("bpf_task_acquire", Func))
    assert kfunc.linkage == FuncLinkage.GLOBAL  # the kernel refuses extern funcs
    assert all(p.name for p in btf.type(kfunc.type).params)  # global funcs name their args
    for t in btf.types:
        if isinstance(t, Var):
            assert t.linkage != VarLinkage.GLOBAL_EXTERN  # the kernel refuses extern vars
    ksym = btf.type(btf.find("bpf_prog_active", Var))
    assert btf.sizeof(ksym.type) == 4


def test_fixup_names_a_variable_without_a_symbol(types_btf):
    sizes, offsets = elf_layout(bpf_object("tests/btf_types"))
    offsets[".bss"].pop("counter")
    with pytest.raises(BTFError, match="DATASEC .bss: variable 'counter' has no symbol"):
        types_btf.with_datasec_fixup(sizes, offsets)


def test_fixup_returns_a_new_object(types_btf):
    fixed = types_btf.with_datasec_fixup(*elf_layout(bpf_object("tests/btf_types")))
    bss = types_btf.type(types_btf.find(".bss", Datasec))
    assert bss.size == 0  # the parsed object is unchanged
    assert fixed.type(fixed.find(".bss", Datasec)).size == 232


@pytest.mark.system
@pytest.mark.parametrize("name", ["tests/btf_types", "tests/btf_maps", "tests/btf_externs"])
@pytest.mark.kmatrix
def test_kernel_accepts_the_fixed_up_btf(name):
    from pybpf.sys import progcmd

    path = bpf_object(name)
    btf = object_btf(path).with_datasec_fixup(*elf_layout(path))
    fd = progcmd.btf_load(btf.encode())
    assert fd > 0
    import os

    os.close(fd)


@pytest.mark.system
@pytest.mark.kmatrix
def test_kernel_refuses_unfixed_datasecs():
    """The reason for the fixup: a zero-sized DATASEC is rejected by the kernel."""
    from pybpf.errors import SyscallError
    from pybpf.sys import progcmd

    with pytest.raises(SyscallError, match="cannot load BTF"):
        progcmd.btf_load(object_btf(bpf_object("tests/btf_types")).encode())


def test_func_proto_params_round_trip():
    btf = BTF(
        [Int("int", 4, IntEncoding.SIGNED, 0, 32), FuncProto(1, (Param("a", 1), Param("", 0)))]
    )
    assert BTF.parse(btf.encode(False)) == btf
    assert btf.format(2) == "int (int a, ...)"


def two_globals(section: str, first: str, second: str) -> BTF:
    """Two int globals, ``first`` (type id 2) and ``second`` (3), in DATASEC ``section`` (4) as
    clang leaves it for libbpf to fix up: size and offsets 0."""
    return BTF(
        [
            Int("int", 4, IntEncoding.SIGNED, 0, 32),
            Var(first, 1, VarLinkage.GLOBAL_ALLOCATED),
            Var(second, 1, VarLinkage.GLOBAL_ALLOCATED),
            Datasec(section, 0, (VarSecinfo(2, 0, 4), VarSecinfo(3, 0, 4))),
        ]
    )


def test_datasec_vars_are_sorted_by_offset():
    btf = two_globals(".data", "b", "a")
    fixed = btf.with_datasec_fixup({".data": 8}, {".data": {"a": 0, "b": 4}})
    assert fixed.type(4) == Datasec(".data", 8, (VarSecinfo(3, 0, 4), VarSecinfo(2, 4, 4)))


def test_damaged_type_graphs_fail_cleanly():
    """A damaged blob can make a type contain itself: every question ends in a BTFError."""
    loop = BTF([Array(1, 1, 2), Struct("s", 4, (Member("x", 2, 0),))])
    with pytest.raises(BTFError, match="too deep"):
        loop.sizeof(1)
    with pytest.raises(BTFError, match="too deep"):
        loop.alignof(2)
    assert loop.format(1).endswith("[2][2]")


def test_hidden_globals_become_static_like_libbpf():
    btf = two_globals(".bss", "shown", "secret")
    fixed = btf.with_datasec_fixup({".bss": 8}, {".bss": {"shown": 0, "secret": 4}}, {"secret"})
    assert fixed.type(2).linkage == VarLinkage.GLOBAL_ALLOCATED
    assert fixed.type(3).linkage == VarLinkage.STATIC


def test_datasec_sizes_and_offsets_past_32_bits_are_named():
    """A damaged section header (a flipped bit in sh_size) must not reach the encoder."""
    btf = BTF(
        [
            Int("int", 4, IntEncoding.SIGNED, 0, 32),
            Var("x", 1, VarLinkage.GLOBAL_ALLOCATED),
            Datasec(".data", 0, (VarSecinfo(2, 0, 4),)),
        ]
    )
    with pytest.raises(BTFError, match="DATASEC .data: size or offset does not fit in 32 bits"):
        btf.with_datasec_fixup({".data": 1 << 45}, {".data": {"x": 0}})
    with pytest.raises(BTFError, match="does not fit in 32 bits"):
        btf.with_datasec_fixup({".data": 8}, {".data": {"x": 1 << 33}})
    assert btf.with_datasec_fixup({".data": 8}, {".data": {"x": 4}}).encode()
