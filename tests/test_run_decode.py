"""How ``pybpf run`` reads ring and perf buffer records by a struct (``pybpf.events.EventDecoder``),
on the BTF and DWARF of objects built from bpf/tests, with records made here byte by byte.

bpf/tests/run_maps.bpf.c sends 64-byte records: the size of ``struct trace_event_raw_sys_enter``,
the kernel type of its program's context, which CO-RE brought into its BTF; no struct of the
object's own has that size. Its ``struct slot`` (8 bytes) shares its size with another kernel
type of the BTF, ``struct trace_entry``. bpf/tests/run_execsnoop.bpf.c's ``struct event`` (168
bytes, a path in a char array) stands for bcc's execsnoop event, whose records are sent only as
long as their text is.
"""

from __future__ import annotations

import struct
from typing import Optional

import pytest

import pybpf
from pybpf.events import EventDecoder, perf_sample_size
from pybpf.object.dwarf import dwarf_types
from tests.conftest import bpf_object

ST_RUNNING = 1  # enum slot_state of run_maps.bpf.c
MSG = struct.pack("=I", 5) + b"pybpf\0".ljust(60, b"\0")  # run_maps' record: a struct text_msg


def decoder(
    name: str, event_type: Optional[str] = None, dwarf: bool = True, perf: bool = False
) -> tuple[EventDecoder, list[str]]:
    path = bpf_object(name)
    spec = pybpf.ObjectSpec.from_file(str(path))
    types = dwarf_types(path.read_bytes()) if dwarf else None
    notes: list[str] = []
    return EventDecoder(spec.btf, perf, event_type, notes.append, "rb", lambda: types), notes


def test_a_record_only_a_kernel_type_has_the_size_of_is_shown_as_hex() -> None:
    d, notes = decoder("tests/run_maps")
    kernel_type = d.btf.type(d.btf.find("trace_event_raw_sys_enter"))
    assert kernel_type.size == len(MSG)  # what a search by size alone would take
    assert d.decode(MSG) is None
    assert notes == [
        "events of map 'rb' (64 bytes): the object has no struct of its own of that size (in "
        "its BTF or DWARF), shown as hex (name one with --event-type)"
    ]


@pytest.mark.parametrize("dwarf", [True, False], ids=["dwarf", "kernel-btf"])
def test_the_only_struct_of_its_own_of_a_size_is_taken_beside_a_kernel_one(
    dwarf: bool, request: pytest.FixtureRequest
) -> None:
    """Without DWARF, the object's own structs are those the running kernel's BTF lacks."""
    if not dwarf:
        request.applymarker(pytest.mark.kernel_btf)
        from tests.conftest import kernel_btf_problem

        if kernel_btf_problem():
            pytest.skip(kernel_btf_problem())
    d, notes = decoder("tests/run_maps", dwarf=dwarf)
    assert d.btf.type(d.btf.find("trace_entry")).size == 8
    assert d.decode(struct.pack("=iI", ST_RUNNING, 3)) == {"state": "ST_RUNNING", "calls": 3}
    assert notes == [
        "events of map 'rb' (8 bytes) decoded as struct slot (the only struct of that size)"
    ]


def test_named_struct_longer_than_the_records_shows_the_members_they_hold() -> None:
    d, notes = decoder("tests/run_execsnoop", event_type="event")
    head = struct.pack("=iiI4xQ", 10, 1, 0, 7) + b"true".ljust(16, b"\0")
    first = d.decode(head + b"/usr/bin/true\0" + bytes(6))  # 60 bytes
    cut = d.decode(head + b"/usr/bin/t")  # the text runs to the record's end
    second = d.decode(head + b"/bin/true\0")
    common = {"pid": 10, "ppid": 1, "uid": 0, "ts_ns": 7, "comm": "true"}
    assert first == {**common, "filename": "/usr/bin/true"}  # no exit_event: past the end
    assert cut == {**common, "filename": "/usr/bin/t"}
    assert second == {**common, "filename": "/bin/true"}
    assert notes == [  # once for the map, not once per size
        "events of map 'rb' (60 bytes) are shorter than struct event (168 bytes): each shows "
        "the members it holds"
    ]
    assert d.decode(head[:20]) == {"pid": 10, "ppid": 1, "uid": 0}  # ts_ns cut: left out


def test_named_struct_shorter_than_the_records_reads_their_first_bytes() -> None:
    d, notes = decoder("tests/run_maps", event_type="text_msg")
    assert d.decode(MSG) == {"len": 5, "text": "pybpf"}  # the rest in the flexible array
    assert notes == [
        "events of map 'rb' (64 bytes) are longer than struct text_msg (4 bytes): each shows it "
        "from its first 4 bytes, the rest in its member 'text'"
    ]
    d, notes = decoder("tests/run_maps", event_type="slot")
    assert d.decode(struct.pack("=iI", ST_RUNNING, 3) + bytes(56)) == {
        "state": "ST_RUNNING",
        "calls": 3,
    }
    assert notes == [
        "events of map 'rb' (64 bytes) are longer than struct slot (8 bytes): each shows it "
        "from its first 8 bytes, the rest not shown"
    ]


def test_a_perf_sample_padded_to_8_bytes_fits_its_struct() -> None:
    d, notes = decoder("tests/run_maps", event_type="slot", perf=True)
    sample = struct.pack("=iI", ST_RUNNING, 3).ljust(perf_sample_size(8), b"\0")
    assert len(sample) == 12
    assert d.decode(sample) == {"state": "ST_RUNNING", "calls": 3}
    assert notes == []


FLOW = struct.pack("=IIHHII", 0x0100_12C6, 0x0200_12C6, 60, 6, 3, 0)  # run_uapi's struct flow


def test_a_struct_of_the_kernels_uapi_headers_is_not_the_programs_own_event() -> None:
    """bpf/tests/run_uapi.bpf.c includes <linux/ip.h>: its DWARF declares struct iphdr, of the
    size of its own struct flow (20 bytes), and its BTF holds struct xdp_md (its context)."""
    d, notes = decoder("tests/run_uapi")
    dwarf = d._dwarf()
    assert {"iphdr", "ethhdr", "xdp_md"} <= dwarf.system and "flow" not in dwarf.system
    assert [t.name for t in dwarf.types if getattr(t, "size", None) == 20] == ["iphdr", "flow"]
    assert d.decode(FLOW) == {
        "saddr": 0x0100_12C6, "daddr": 0x0200_12C6, "len": 60, "proto": 6, "ifindex": 3,
        "queue": 0,
    }  # fmt: skip
    assert notes == [
        "events of map 'rb' (20 bytes) decoded as struct flow in the DWARF (the only struct of "
        "that size)"
    ]
    # the context, 24 bytes, is in the BTF: a record of its size is no event the object made
    d, notes = decoder("tests/run_uapi")
    assert d.decode(bytes(24)) is None
    assert "no struct of its own of that size" in notes[0]


def test_a_uapi_struct_can_still_be_named_as_the_event_type() -> None:
    d, notes = decoder("tests/run_uapi", event_type="iphdr")
    got = d.decode(bytes.fromhex("4500003c0000400040060000010012c6020012c6"))
    assert (got["ttl"], got["protocol"]) == (64, 6)
    assert notes == []
