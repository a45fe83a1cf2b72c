"""Record and counter layouts: construct declaration == struct twin == the BTF clang emits."""

from __future__ import annotations

import json
import random
import re

import pytest

from tests.conftest import ROOT, bpf_object, need_tool, run
from xdptcp.record import (
    COUNTER_NAMES,
    COUNTERS,
    COUNTERS_STRUCT,
    EGRESS,
    INGRESS,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    Record,
    decode,
    decode_counters,
    encode,
    record_layout,
    unpack_records,
)


def random_records(n: int, capacity: int) -> list[Record]:
    rnd = random.Random(n)
    out = []
    for _ in range(n):
        cap = rnd.randrange(0, capacity + 1)
        out.append(
            Record(
                ts_ns=rnd.getrandbits(64),
                ifindex=rnd.getrandbits(32),
                rx_queue=rnd.getrandbits(32),
                wire_len=rnd.getrandbits(32),
                cap_len=cap,
                l3_off=rnd.choice([14, 18, 22]),
                l4_off=rnd.getrandbits(16),
                l4_len=rnd.choice(range(20, 61, 4)),
                ip_version=rnd.choice([4, 6]),
                vlans=rnd.choice([0, 1, 2]),
                direction=rnd.choice([INGRESS, EGRESS]),
                gso_segs=rnd.choice([0, 2, 45]),
                gso_size=rnd.choice([0, 1448, 8948]),
                data=rnd.randbytes(cap),
            )
        )
    return out


@pytest.mark.parametrize("capacity", [64, 256, 4096])
def test_struct_twin_equals_construct_both_ways(capacity: int) -> None:
    layout = record_layout(capacity)
    for rec in random_records(200, capacity):
        raw = encode(rec, capacity)
        assert len(raw) == layout.sizeof() == RECORD_HEADER_SIZE + capacity
        parsed = layout.parse(raw)
        header = {k: v for k, v in parsed.header.items() if not k.startswith("_")}
        assert [header[f] for f in Record._fields[:-1]] == list(rec[:-1])
        assert parsed.captured == rec.data
        assert decode(raw) == rec
        header = {**rec._asdict(), "reserved": 0, "reserved2": 0}
        built = layout.build({"header": header, "data": raw[RECORD_HEADER_SIZE:]})
        assert built == raw


def test_batch_decoding_agrees_with_single_records() -> None:
    recs = random_records(50, 128)
    blob = b"".join(encode(r, 128) for r in recs)
    out = unpack_records(blob, 128, clock_offset_ns=5, names={recs[0].ifindex: "eth9"})
    assert [(ts - 5, data, wire, d) for ts, _, data, wire, d in out] == [
        (r.ts_ns, r.data, r.wire_len, r.direction) for r in recs
    ]
    assert out[0][1] == "eth9"


def test_counters_twin_equals_construct() -> None:
    rnd = random.Random(1)
    for _ in range(100):
        values = {name: rnd.getrandbits(64) for name in COUNTER_NAMES}
        whole = {**values, "wake_avail": rnd.getrandbits(64), "filter_answer": rnd.getrandbits(1)}
        raw = COUNTERS.build(whole)
        assert raw == COUNTERS.construct().build(whole) == COUNTERS_STRUCT.pack(*whole.values())
        assert decode_counters(raw) == values  # the last two fields are not counters


def btf_struct(obj, name: str) -> dict:
    out = run(need_tool("bpftool"), "btf", "dump", "file", str(obj), "-j").stdout
    types = json.loads(out)["types"]
    found = [t for t in types if t["kind"] == "STRUCT" and t["name"] == name]
    assert len(found) == 1, f"{name} not in the object's BTF"
    return found[0]


def construct_offsets(layout) -> dict[str, tuple[int, int]]:
    offsets, pos = {}, 0
    for sub in layout.subcons:
        offsets[sub.name] = (pos, sub.sizeof())
        pos += sub.sizeof()
    return offsets


def test_record_btf_matches_the_construct_layout() -> None:
    btf = btf_struct(bpf_object("xdptcp"), "xdptcp_record")
    assert btf["size"] == RECORD_HEADER_SIZE == 72
    ours = construct_offsets(RECORD_HEADER)
    members = {m["name"]: m["bits_offset"] // 8 for m in btf["members"]}
    assert members.pop("data") == RECORD_HEADER_SIZE  # the flexible array starts after the header
    assert members == {name: off for name, (off, _) in ours.items()}


def test_counters_btf_matches_the_construct_layout() -> None:
    btf = btf_struct(bpf_object("xdptcp"), "xdptcp_counters")
    assert btf["size"] == COUNTERS.sizeof()
    assert [(m["name"], m["bits_offset"] // 8) for m in btf["members"]] == [
        (name, off) for name, (off, _) in construct_offsets(COUNTERS).items()
    ]


def test_the_fast_readers_find_direction_and_interface_where_the_header_puts_them() -> None:
    """xdptcp.mapped reads a record's direction and interface index at a distance before the
    frame (data[]), without importing this layout: those distances are the header's offsets."""
    from xdptcp.mapped import DIRECTION_BEFORE, IFINDEX_BEFORE

    offsets = construct_offsets(RECORD_HEADER)
    assert offsets["direction"][0] == RECORD_HEADER_SIZE - DIRECTION_BEFORE
    assert offsets["ifindex"][0] == RECORD_HEADER_SIZE - IFINDEX_BEFORE


def test_the_wakeup_constants_are_the_headers() -> None:
    """xdptcp.capture restates bpf/xdptcp.h's wakeup modes and look interval (a #define leaves
    nothing in the object to read them from): the header's values are the Python ones."""
    from xdptcp import capture

    header = (ROOT / "bpf" / "xdptcp.h").read_text()
    defined = dict(re.findall(r"#define (XDPTCP_WAKEUP_\w+) (\d+)", header))
    enum = dict(re.findall(r"\b(XDPTCP_WAKEUP_\w+) = (\d+),", header))
    assert int(defined["XDPTCP_WAKEUP_LOOK_EVERY"]) == capture.WAKEUP_LOOK_EVERY
    assert int(enum["XDPTCP_WAKEUP_DEFAULT"]) == capture.WAKEUP_DEFAULT
    assert int(enum["XDPTCP_WAKEUP_AVAIL_STEP"]) == capture.WAKEUP_AVAIL_STEP


def test_a_gso_packet_whose_headers_were_not_walked_is_not_cut_into_segments():
    """The program captures a TCP frame with malformed headers unwalked (l4_off 0): there is no
    TCP header to repeat in each segment, so the record stays one packet."""
    from xdptcp.gso import segment
    from xdptcp.record import parse_frame

    from traffic import tcp_frame

    frame = bytearray(tcp_frame("198.18.0.1", "198.18.0.2", 40000, 80, payload=b"x" * 40))
    frame[14 + 20 + 12] = 0x40  # data offset 4
    frame = bytes(frame)
    assert parse_frame(frame)[1].l4_off == 0
    assert segment(frame, 3000, 1000) == [(frame, 3000)]
    whole = tcp_frame("198.18.0.1", "198.18.0.2", 40000, 80, payload=b"x" * 40)
    assert len(segment(whole, 14 + 20 + 20 + 3000, 1000)) == 3  # (a walked one is cut)


def test_a_big_tcp_packet_is_cut_without_its_hop_by_hop_header():
    """An IPv6 BIG TCP packet leaves the egress hook with a hop-by-hop header holding its
    length; the kernel takes that header off before it cuts the packet, so the segments (and
    tcpdump's lines of them) have none. Another hop-by-hop header stays."""
    from xdptcp.gso import segment
    from xdptcp.packet import Kind, decode

    from traffic import dest_options, jumbogram

    big = jumbogram(payload_len=70000)
    head = 14 + 40 + 8 + 32
    segments = segment(big.data[:head], big.wire_len, 1428)
    assert len(segments) == 50  # 70000 bytes: 49 of 1428, and 28
    for i, (frame, wire_len) in enumerate(segments):
        p = decode(frame, wire_len)
        size = 1428 if i < 49 else 28
        assert (p.kind, p.ext, p.first_nh) == (Kind.TCP, (), 6)
        assert (p.payload_len, p.ip_missing) == (size, 0)
        assert p.seq == 5 + i * 1428 and wire_len == head - 8 + size
        assert frame[14 + 4 : 14 + 6] == (32 + size).to_bytes(2, "big")
    other = jumbogram(payload_len=70000, extra=(dest_options(),))  # not the kernel's header
    assert all(decode(f, w).ext for f, w in segment(other.data[:200], other.wire_len, 1428))
