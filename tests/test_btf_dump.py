"""Map contents formatted by their BTF types, compared with ``bpftool map dump -j``'s "formatted".

bpf/tests/dump_kinds.bpf.c declares maps whose keys and values use every kind a map value can
hold (signed/unsigned ints of each width, bool, char, char arrays, byte arrays, nested arrays,
signed and 64-bit enums, a union, bitfields, pointers, a 128-bit int, an anonymous struct), a
per-CPU array and a plain array. The test fills them with random bytes (and some chosen ones:
strings, enumerator values) and asks bpftool how it reads them.
"""

from __future__ import annotations

import json
import random
import re
import struct

import pytest

import pybpf
from pybpf.btf.dump import btf_value, format_log2_hist, log2_hist_slots
from pybpf.btf.types import Struct
from pybpf.mapdump import dump_map, format_map
from pybpf.object.dwarf import dwarf_types
from tests.conftest import bpf_object, need_tool, run


def spec_of(name: str) -> pybpf.ObjectSpec:
    return pybpf.ObjectSpec.from_file(str(bpf_object(name)))


def _value_offsets(spec: pybpf.ObjectSpec) -> dict[str, int]:
    btf = spec.btf
    t = btf.type(btf.find("dvalue"))
    return {m.name: m.bit_offset // 8 for m in t.members}


def _random_value(rng: random.Random, off: dict[str, int], i: int) -> bytes:
    v = bytearray(rng.randbytes(176))
    v[off["flag"]] = rng.randrange(2)  # C's bool holds 0 or 1
    if i % 2:  # a NUL-terminated printable name reads as a string, like bpftool's
        v[off["name"] : off["name"] + 12] = b"bash\0".ljust(12, b"\0")
    if i % 3 == 0:  # an enumerator's value reads as its name
        v[off["colour"] : off["colour"] + 4] = struct.pack("=i", [0, 5, -3][i % 9 // 3])
        v[off["wide"] : off["wide"] + 8] = struct.pack("=Q", 1)
    return bytes(v)


def _bpftool_dump(map_id: int) -> list:
    out = run(need_tool("bpftool"), "map", "dump", "id", str(map_id), "-j").stdout
    return [e["formatted"] for e in json.loads(out)]


def canon(entries: list) -> list[str]:
    return sorted(json.dumps(e, sort_keys=True) for e in entries)


@pytest.mark.system
def test_every_kind_formats_as_bpftool_formats_it() -> None:
    spec = spec_of("tests/dump_kinds")
    rng = random.Random(13)
    off = _value_offsets(spec)
    with pybpf.load(spec) as obj:
        kinds = obj.maps["kinds"]
        for i in range(40):
            key = struct.pack("=I", i) + (b"ab\0\0" if i % 2 else rng.randbytes(4))
            kinds.update(key, _random_value(rng, off, i))
        ms = spec.maps["kinds"]
        ours = dump_map(kinds, spec.btf, ms.key_type_id, ms.value_type_id)
        theirs = _bpftool_dump(kinds.id)
    assert len(ours) == 40
    assert canon(ours) == canon(theirs)
    # the test exercises what it says it does
    flat = json.dumps(ours)
    assert '"name": "bash"' in flat and '"D_BLUE"' in flat and '"D_SMALL"' in flat
    assert '"tag": "ab"' in flat


@pytest.mark.system
def test_per_cpu_and_plain_arrays_format_as_bpftool_formats_them() -> None:
    spec = spec_of("tests/dump_kinds")
    rng = random.Random(7)
    with pybpf.load(spec) as obj:
        pc, plain = obj.maps["per_cpu"], obj.maps["plain"]
        ncpu = len(pc.lookup(0))
        pc.update(
            1, [struct.pack("=Q", rng.getrandbits(64)) + b"ok".ljust(8, b"\0") for _ in range(ncpu)]
        )
        plain.update(2, struct.pack("=q", -12345678901))
        for m in (pc, plain):
            ms = spec.maps[m.name]
            ours = dump_map(m, spec.btf, ms.key_type_id, ms.value_type_id)
            assert ours == _bpftool_dump(m.id)
    assert ours[2]["value"] == -12345678901


def test_bitfields_read_as_hex_of_their_bits() -> None:
    spec = spec_of("tests/dump_kinds")
    btf = spec.btf
    bits = btf.find("dbits")
    # a=5 (3 bits), b=0x1abc (13 bits), c=-1 (7 bits, shown as its bits), d=9 (the byte after
    # c's bits), e=2^32+1 (33 bits of the next u64)
    word = 5 | (0x1ABC << 3) | (0x7F << 16) | (9 << 24)
    data = struct.pack("=I", word) + bytes(4) + struct.pack("=Q", (1 << 32) + 1)
    assert btf_value(btf, bits, data) == {
        "a": "0x5",
        "b": "0x1abc",
        "c": "0x7f",
        "d": 9,
        "e": "0x100000001",
    }


def test_dwarf_types_format_as_the_btf_types_do() -> None:
    """The object's DWARF, translated, reads every kind as its BTF does (bitfields included,
    which DWARF numbers from the other end)."""
    path = bpf_object("tests/dump_kinds")
    spec = pybpf.ObjectSpec.from_file(str(path))
    dwarf = dwarf_types(path.read_bytes())
    rng = random.Random(3)
    for _ in range(20):
        data = rng.randbytes(176)
        assert btf_value(dwarf, dwarf.find("dvalue"), data) == btf_value(
            spec.btf, spec.btf.find("dvalue"), data
        )
    only = dwarf_types(path.read_bytes(), sizes={176})  # dvalue, and the types it uses
    names = {t.name for t in only.types if isinstance(t, Struct)}
    assert "dvalue" in names and "dbits" in names and not {"dkey", "dsmall"} & names


def test_a_value_too_short_for_its_type_is_an_error() -> None:
    spec = spec_of("tests/dump_kinds")
    with pytest.raises(pybpf.BTFError, match="cannot hold"):
        btf_value(spec.btf, spec.btf.find("dvalue"), bytes(10))


# --- log2 histograms ---------------------------------------------------------------------------

# What libbpf-tools' print_log2_hist(vals, 26, "usecs") prints for these counts (runqlat's
# output shape: 5 spaces, the label padded to 19, bars of 40 stars scaled to the largest count).
COUNTS = [0, 3, 1, 0, 8, 16] + [0] * 20
LIBBPF_TOOLS_OUTPUT = """\
     usecs               : count    distribution
         0 -> 1          : 0        |                                        |
         2 -> 3          : 3        |*******                                 |
         4 -> 7          : 1        |**                                      |
         8 -> 15         : 0        |                                        |
        16 -> 31         : 8        |********************                    |
        32 -> 63         : 16       |****************************************|"""


def test_log2_histogram_drawn_as_libbpf_tools_draw_it() -> None:
    assert "\n".join(format_log2_hist(COUNTS, "usecs")) == LIBBPF_TOOLS_OUTPUT


def test_log2_histogram_past_slot_32_uses_the_wide_layout() -> None:
    lines = format_log2_hist([0] * 33 + [2], "nsecs")
    assert lines[0] == " " * 15 + "nsecs".ljust(29) + " : count    distribution"
    assert lines[-1] == (f"{1 << 33:>20} -> {(1 << 34) - 1:<20} : 2        |{'*' * 20}|")
    assert format_log2_hist([0] * 26) == []


def test_histogram_values_are_recognised_by_their_slots_member() -> None:
    spec = spec_of("tests/run_hist")
    btf = spec.btf
    assert log2_hist_slots(btf, spec.maps["hists"].value_type_id) == "slots"
    assert log2_hist_slots(btf, spec.maps["total_sleeps"].value_type_id) is None
    ms = spec.maps["hists"]
    value = struct.pack("=26I", *COUNTS) + b"sleepy".ljust(16, b"\0")
    elements = [(struct.pack("=I", 42), value)]
    lines = format_map("hists", "hash", elements, btf, ms.key_type_id, ms.value_type_id, "usecs")
    assert lines[:3] == ["map hists (hash, 1 entry):", "", "key = 42  comm = sleepy"]
    assert "\n".join(lines[3:]) == LIBBPF_TOOLS_OUTPUT


def _bpftool_text(map_id: int) -> str:
    return run(need_tool("bpftool"), "map", "dump", "id", str(map_id)).stdout


@pytest.mark.system
def test_plain_text_is_bpftools_byte_for_byte() -> None:
    """``bpftool map dump`` without -j (a map with BTF): the same text from format_bpftool, on
    random values of every kind (pointers as %p, bitfields unquoted), per-CPU values, an array
    of every index, and an empty hash."""
    from pybpf.mapdump import format_bpftool

    spec = spec_of("tests/dump_kinds")
    rng = random.Random(21)
    off = _value_offsets(spec)
    texts = {}
    with pybpf.load(spec) as obj:
        kinds, pc, plain = obj.maps["kinds"], obj.maps["per_cpu"], obj.maps["plain"]
        ms = spec.maps["kinds"]
        empty = format_bpftool(dump_map(kinds, spec.btf, ms.key_type_id, ms.value_type_id))
        assert empty == _bpftool_text(kinds.id) == "[]\n"
        for i in range(12):
            key = struct.pack("=I", i) + (b"ab\0\0" if i % 2 else rng.randbytes(4))
            value = bytearray(_random_value(rng, off, i))
            if i == 4:  # a NULL pointer reads (nil)
                value[off["ptr"] : off["ptr"] + 8] = bytes(8)
            kinds.update(key, bytes(value))
        ncpu = len(pc.lookup(0))
        pc.update(2, [rng.randbytes(8) + b"ok".ljust(8, b"\0") for _ in range(ncpu)])
        plain.update(1, struct.pack("=q", -5))
        for m in (kinds, pc, plain):
            ms = spec.maps[m.name]
            texts[m.name] = format_bpftool(dump_map(m, spec.btf, ms.key_type_id, ms.value_type_id))
            assert texts[m.name] == _bpftool_text(m.id), m.name
    # the kinds exercised: a NULL and a non-NULL pointer, unquoted bitfields, strings
    kinds_text = texts["kinds"]
    assert '"ptr": (nil)' in kinds_text and re.search(r'"ptr": 0x[0-9a-f]+', kinds_text)
    assert re.search(r'"a": 0x[0-9a-f]+,', kinds_text) and '"name": "bash"' in kinds_text


# --- maps bpftool prints without BTF, maps it cannot list, elements of zeros -------------------


@pytest.mark.system
def test_maps_without_btf_print_as_bpftool_prints_them() -> None:
    """A map the kernel holds without BTF value type (an array of maps, a device map, any map of
    an object without BTF) is hex in bpftool's text: its line layouts by key and value size,
    per-CPU values, empty slots, the count at the end."""
    from pybpf.mapdump import bpftool_text
    from pybpf.maps import Map
    from pybpf.sys.uapi import MapType

    spec = spec_of("tests/run_maps")
    with pybpf.load(spec) as obj:
        made = [
            Map.create(MapType.ARRAY, 4, 20, 2, name="wide_value"),
            Map.create(MapType.HASH, 20, 4, 4, name="wide_key"),
            Map.create(MapType.HASH, 4, 40, 4, name="long_value"),
            Map.create(MapType.PERCPU_ARRAY, 4, 24, 2, name="per_cpu"),
            Map.create(MapType.PERCPU_HASH, 8, 4, 2, name="per_cpu_hash"),
            Map.create(MapType.DEVMAP, 4, 4, 2, name="devices"),
        ]
        try:
            made[0].update(1, bytes(range(20)))
            made[1].update(bytes(range(20)), b"abcd")
            made[2].update(3, bytes(range(40)))
            made[4].update(b"12345678", b"wxyz")
            for m in [obj.maps["outer"], *made]:
                assert bpftool_text(m, spec.btf) == _bpftool_text(m.id), m.name
        finally:
            for m in made:
                m.close()
        outer = _bpftool_text(obj.maps["outer"].id)
        assert outer.endswith("Found 2 elements\n")


@pytest.mark.system
def test_an_array_of_maps_lists_the_ids_of_its_maps() -> None:
    from pybpf.mapdump import format_map, read_elements

    spec = spec_of("tests/run_maps")
    ms = spec.maps["outer"]
    with pybpf.load(spec) as obj:
        elements = read_elements(obj.maps["outer"])
        lines = format_map("outer", "array_of_maps", elements, spec.btf, ms.key_type_id, 0)
        ids = obj.maps["inner_a"].id, obj.maps["inner_b"].id
    assert lines == [
        "map outer (array_of_maps, 2 entries):",
        f"  key=0 map_id={ids[0]}",
        f"  key=1 map_id={ids[1]}",
    ]


@pytest.mark.system
def test_maps_user_space_cannot_list_are_an_error_that_says_why() -> None:
    """What bpftool map dump lists of them: nothing (an error per element, or no key at all),
    though the queue holds a value (bpftool map peek shows it)."""
    from pybpf.errors import BPFError
    from pybpf.mapdump import NOT_LISTABLE, bpftool_text

    spec = spec_of("tests/run_maps")
    names = ["queue", "stack", "bloom", "task_store", "sk_store", "inode_store", "cgrp_store"]
    with pybpf.load(spec) as obj:
        obj.maps["queue"].update(b"", struct.pack("=I", 7))
        peek = run(need_tool("bpftool"), "map", "peek", "id", str(obj.maps["queue"].id))
        assert peek.stdout.split() == ["value:", "07", "00", "00", "00"]
        for name in [*names, "cgroups", "xsks", "rb"]:
            m = obj.maps[name]
            kind = m.type.name
            why = f"cannot list the elements of map '{name}' ({kind}): {NOT_LISTABLE[kind]}"
            with pytest.raises(BPFError) as e:
                dump_map(m, spec.btf)
            assert str(e.value) == why
            with pytest.raises(BPFError, match="cannot list"):
                bpftool_text(m, spec.btf)
            said = run(need_tool("bpftool"), "map", "dump", "id", str(m.id), check=False).stdout
            assert said.endswith("Found 0 elements\n") or said.strip() == "[]", said


def test_array_elements_of_zero_bytes_are_counted_not_listed() -> None:
    """Elements of zeros are told by their bytes: an enum's 0 reads as its name."""
    spec = spec_of("tests/run_maps")
    ms = spec.maps["slots"]
    zero, running = bytes(8), struct.pack("=iI", 1, 3)
    elements = [(struct.pack("=I", i), running if i == 1 else zero) for i in range(4)]
    lines = format_map("slots", "array", elements, spec.btf, ms.key_type_id, ms.value_type_id)
    assert lines == [
        "map slots (array, 4 entries):",
        "  key=1 state=ST_RUNNING calls=3",
        "  (3 elements of zeros not shown)",
    ]
    per_cpu = [(struct.pack("=I", i), [zero, running if i == 2 else zero]) for i in range(3)]
    lines = format_map("p", "percpu_array", per_cpu, spec.btf, ms.key_type_id, ms.value_type_id)
    assert lines[1:] == [  # per CPU: numbers summed, others listed
        '  key=2 state=["ST_IDLE","ST_RUNNING"] calls=3',
        "  (2 elements of zeros not shown)",
    ]
