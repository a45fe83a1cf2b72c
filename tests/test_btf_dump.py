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
    value = {"slots": COUNTS, "comm": "sleepy"}
    entries = [{"key": 42, "value": value}]
    lines = format_map("hists", "hash", entries, btf, spec.maps["hists"].value_type_id, "usecs")
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
