"""bench/veth_bulk.py: the records of a capture and its largest frame, read from the pcap file
each tool wrote."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from bench.veth_bulk import pcap_frames


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("magic", [0xA1B2C3D4, 0xA1B23C4D], ids=["micro", "nano"])
def test_records_and_the_largest_wire_length(tmp_path: Path, order: str, magic: int) -> None:
    head = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 128, 1)
    # (captured, on the wire): a super-packet cut to the snap length, a segment, an ACK
    frames = [(128, 65226), (128, 1514), (66, 66)]
    body = b"".join(struct.pack(order + "IIII", 1, 0, c, w) + bytes(c) for c, w in frames)
    path = tmp_path / "out.pcap"
    path.write_bytes(head + body)
    assert pcap_frames(path) == (3, 65226)
    path.write_bytes(head + body[:-10])  # the last record cut short: not counted
    assert pcap_frames(path) == (2, 65226)
    path.write_bytes(head)
    assert pcap_frames(path) == (0, 0)
