"""BTF-defined maps: the definitions in bpf/tests/btf_maps.bpf.c, and what libbpf makes of them."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
from test_btf import elf_layout, object_btf

from pybpf.btf.model import (
    BTF,
    Array,
    Datasec,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Member,
    Ptr,
    Struct,
    Var,
    VarLinkage,
    VarSecinfo,
)
from pybpf.errors import BTFError
from pybpf.object.btfmaps import BTFMapDef, parse_btf_maps
from pybpf.sys import bpffs

from conftest import bpf_object, need_tool, run

# enum bpf_map_type
HASH, ARRAY, PROG_ARRAY, PERCPU_ARRAY, LRU_HASH = 1, 2, 3, 6, 9
ARRAY_OF_MAPS, RINGBUF, BLOOM_FILTER = 12, 27, 30
F_NO_PREALLOC = 1


@pytest.fixture(scope="module")
def maps() -> dict[str, BTFMapDef]:
    path = bpf_object("tests/btf_maps")
    btf = object_btf(path).with_datasec_fixup(*elf_layout(path))
    return {d.name: d for d in parse_btf_maps(btf)}


@pytest.fixture(scope="module")
def maps_btf() -> BTF:
    path = bpf_object("tests/btf_maps")
    return object_btf(path).with_datasec_fixup(*elf_layout(path))


def test_hash_with_typed_key_and_value(maps, maps_btf):
    m = maps["flows"]
    assert (m.map_type, m.max_entries, m.map_flags) == (HASH, 1024, F_NO_PREALLOC)
    assert (m.key_size, m.value_size) == (12, 16)  # sizeof(struct flow), sizeof(struct stats)
    assert maps_btf.format(m.key_type_id) == "struct flow"
    assert maps_btf.format(m.value_type_id) == "struct stats"


def test_sizes_without_types_carry_no_type_ids(maps):
    m = maps["percpu"]
    assert (m.map_type, m.key_size, m.value_size, m.max_entries) == (PERCPU_ARRAY, 4, 16, 4)
    assert m.key_type_id == m.value_type_id == 0


def test_ringbuf_has_only_a_size(maps):
    m = maps["events"]
    assert (m.map_type, m.max_entries, m.key_size, m.value_size) == (RINGBUF, 1 << 16, 0, 0)


def test_pinning_numa_and_map_extra(maps):
    assert maps["pinned_lru"].pinning == 1 and maps["pinned_lru"].map_type == LRU_HASH
    assert maps["bloom"].map_extra == 3 and maps["bloom"].map_type == BLOOM_FILTER
    assert maps["bloom"].key_size == 0 and maps["bloom"].value_size == 4


def test_map_in_map_has_an_inner_definition(maps):
    outer = maps["outer"]
    assert outer.map_type == ARRAY_OF_MAPS and outer.value_size == 4
    inner = outer.inner
    assert inner is not None and inner.name == "outer.inner"
    assert (inner.map_type, inner.key_size, inner.value_size, inner.max_entries) == (
        ARRAY,
        4,
        8,
        2,
    )
    # .values starts after type, max_entries, key: three pointers in
    assert (outer.values_offset, outer.values_stride) == (24, 8)


def test_prog_array_values_point_to_a_function_prototype(maps):
    jumps = maps["jumps"]
    assert (jumps.map_type, jumps.max_entries, jumps.value_size) == (PROG_ARRAY, 3, 4)
    assert jumps.inner is None and jumps.values_offset == 24


def test_maps_are_placed_where_the_symbols_are(maps):
    _, offsets = elf_layout(bpf_object("tests/btf_maps"))
    assert {name: m.offset for name, m in maps.items()} == offsets[".maps"]
    assert all(m.offset_in_section == m.offset for m in maps.values())


@pytest.mark.system
@pytest.mark.kmatrix
def test_libbpf_creates_the_same_maps(maps):
    """bpftool (libbpf) loads the object; the maps it creates are what we read."""
    bpftool = need_tool("bpftool")
    path = bpf_object("tests/btf_maps")
    progs = Path(f"/sys/fs/bpf/pybpf_btfmaps_{uuid.uuid4().hex[:8]}")
    by_name = Path("/sys/fs/bpf/pinned_lru")  # LIBBPF_PIN_BY_NAME pins at the default path
    bpffs.ensure_mounted()  # libbpf pins by name under /sys/fs/bpf but does not mount it
    if by_name.exists():
        pytest.skip(f"{by_name} exists already; not touching it")
    try:
        run(bpftool, "prog", "loadall", str(path), str(progs))
        prog = json.loads(
            run(bpftool, "prog", "show", "pinned", str(progs / "maps_prog"), "-j").stdout
        )
        seen = set()
        for map_id in prog["map_ids"]:
            info = json.loads(run(bpftool, "map", "show", "id", str(map_id), "-j").stdout)
            m = maps.get(info["name"])
            if m is None:
                continue  # a data-section map, not a BTF-defined one
            seen.add(m.name)
            assert info["bytes_key"] == m.key_size, m.name
            assert info["bytes_value"] == m.value_size, m.name
            assert info["max_entries"] == m.max_entries, m.name
            assert info["flags"] == m.map_flags, m.name
        assert seen == {"flows", "percpu", "events", "pinned_lru", "bloom", "outer", "jumps"}
    finally:
        shutil.rmtree(progs, ignore_errors=True)
        if by_name.exists():
            os.unlink(by_name)


# --- malformed definitions -------------------------------------------------------------------


def definition(*members: tuple[str, int], extra=()) -> BTF:
    """A .maps DATASEC with one map 'bad' whose definition struct has ``members``.

    Type ids: 1 int, 2 int[7], 3 int(*)[7] (=__uint(x, 7)), 4 int *, 5 struct fwd, 6 fwd *,
    7 int (*)[1] (=__uint(type, HASH)), then ``extra``, the struct and the var.
    """
    base = [
        Int("int", 4, IntEncoding.SIGNED, 0, 32),
        Array(1, 1, 7),
        Ptr(2),
        Ptr(1),
        Fwd("fwd", False),
        Ptr(5),
        Ptr(8 + len(extra)),
        *extra,
        Array(1, 1, HASH),
    ]
    struct_id = len(base) + 1
    ms = tuple(Member(n, t, 64 * i) for i, (n, t) in enumerate(members))
    types = base + [
        Struct("", 8 * len(ms), ms),
        Var("bad", struct_id, VarLinkage.GLOBAL_ALLOCATED),
        Datasec(".maps", 8 * len(ms), (VarSecinfo(struct_id + 1, 0, 8 * len(ms)),)),
    ]
    return BTF(types)


def test_a_good_synthetic_definition_parses():
    (d,) = parse_btf_maps(definition(("type", 7), ("max_entries", 3), ("key", 4)))
    assert (d.map_type, d.max_entries, d.key_size, d.key_type_id) == (HASH, 7, 4, 1)


@pytest.mark.parametrize(
    "members, message",
    [
        ((("type", 7), ("colour", 3)), "unknown member 'colour'"),
        ((("type", 7), ("key", 6)), "key type struct fwd has no size"),
        ((("max_entries", 3),), "does not say the map's type"),
        ((("type", 7), ("max_entries", 4)), "points to int, not to an array"),
        ((("type", 7), ("key", 3)), None),  # a pointer to int[7]: 28-byte key, fine
        ((("type", 7), ("key", 4), ("key_size", 3)), "conflicting key_size 4 != 7"),
        ((("type", 7), ("key", 1)), "expected __type\\(key, T\\)"),
        ((("type", 7), ("values", 2)), "only map-in-map and prog-array"),
    ],
)
def test_malformed_definitions_are_named(members, message):
    btf = definition(*members)
    if message is None:
        (d,) = parse_btf_maps(btf)
        assert d.key_size == 28
        return
    with pytest.raises(BTFError, match=f"map 'bad': .*{message}"):
        parse_btf_maps(btf)


def test_values_must_come_last():
    proto_ptr = Ptr(9)  # id 8 -> FuncProto at 9
    btf = definition(
        ("type", 7), ("values", 10), ("max_entries", 3), extra=(proto_ptr, FuncProto(1, ()))
    )
    # id 10 is the Array(int, HASH) helper; the point is the position check fires first
    with pytest.raises(BTFError, match="'values' must be the last member"):
        parse_btf_maps(btf)


def test_no_maps_section_means_no_maps():
    assert parse_btf_maps(BTF([Int("int", 4, IntEncoding.SIGNED, 0, 32)])) == []
