"""JSON objects: every field checked against the frame that built it, seq against tcpdump."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from xdptcp.jsonfmt import JsonFormatter

import traffic
from conftest import need_tool

KEYS = [
    "ts", "ts_ns", "ifname", "direction", "wire_len", "cap_len", "ip", "src", "dst", "sport",
    "dport", "seq", "ack", "flags", "flag_names", "win", "urg", "options", "tcp_hdr_len",
    "payload_len", "vlan",
]  # fmt: skip


def one(frame: bytes, wire_len=None, ifname="eth0", ts_ns=1_700_000_000_123_456_789, **kw):
    line = JsonFormatter(**kw).format(ts_ns, frame, wire_len or len(frame), ifname)
    assert "\n" not in line and ", " not in line.split('"options"')[0]
    return json.loads(line), line


def test_every_field_of_an_ipv4_segment():
    opts = (
        traffic.mss(1460),
        traffic.sack_ok(),
        traffic.timestamp(11, 22),
        traffic.nop(),
        traffic.wscale(7),
        traffic.tfo(b"\xaa" * 8),
        traffic.raw_option(99, b"\x01\x02"),
    )
    f = traffic.tcp_frame(
        "198.18.4.5", "198.19.6.7", 40123, 5001, seq=1000, ack=0, flags="SEW", win=29200, urg=0,
        options=opts, payload=b"hello", vlans=(42,), ttl=61,
    )  # fmt: skip
    obj, line = one(f[:-5], wire_len=len(f))
    assert list(obj) == KEYS + ["ttl"]
    assert obj["ts"] == 1700000000.123456 and obj["ts_ns"] == 1_700_000_000_123_456_789
    assert (obj["ifname"], obj["wire_len"], obj["cap_len"]) == ("eth0", len(f), len(f) - 5)
    assert (obj["ip"], obj["src"], obj["dst"], obj["ttl"]) == (4, "198.18.4.5", "198.19.6.7", 61)
    assert (obj["sport"], obj["dport"], obj["seq"], obj["ack"]) == (40123, 5001, 1000, 0)
    assert obj["flags"] == "SEW" and obj["flag_names"] == ["SYN", "ECE", "CWR"]
    assert (obj["win"], obj["urg"], obj["vlan"]) == (29200, 0, [42])
    assert obj["tcp_hdr_len"] == 20 + len(b"".join(opts)) + (-len(b"".join(opts)) % 4)
    assert obj["payload_len"] == 5
    assert obj["options"] == [
        {"kind": 2, "name": "mss", "values": [1460]},
        {"kind": 4, "name": "sackOK", "values": []},
        {"kind": 8, "name": "TS", "values": [11, 22]},
        {"kind": 1, "name": "nop", "values": []},
        {"kind": 3, "name": "wscale", "values": [7]},
        {"kind": 34, "name": "tfo", "values": ["aa" * 8]},
        {"kind": 99, "name": "unknown-99", "values": ["0102"]},
        {"kind": 0, "name": "eol", "values": []},
    ]
    assert line.startswith('{"ts":1700000000.123456,"ts_ns":')  # compact separators


def test_md5_uto_sack_values():
    opts = (traffic.md5(bytes(range(16))), traffic.uto(600), traffic.sack((7, 9)))
    f = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 40000, 5001, flags="R", options=opts)
    obj, _ = one(f)
    assert obj["options"] == [
        {"kind": 19, "name": "md5", "values": [bytes(range(16)).hex()]},
        {"kind": 28, "name": "uto", "values": [600]},
        {"kind": 5, "name": "sack", "values": [[7, 9]]},
    ]


def test_ipv6_qinq_and_flags():
    f = traffic.tcp_frame(
        "2001:db8::10", "2001:db8:0:1::20", 5001, 40000, seq=5, ack=6, flags="FSRP.UEWN",
        urg=9, vlans=(100, 200), qinq=True, ttl=3, payload=b"z" * 10,
    )  # fmt: skip
    obj, _ = one(f, absolute_seq=True)
    assert list(obj) == KEYS + ["hlim"]
    assert (obj["ip"], obj["src"], obj["dst"], obj["hlim"]) == (6, "2001:db8::10",
                                                                "2001:db8:0:1::20", 3)  # fmt: skip
    assert obj["flags"] == "FSRP.UEW"
    assert obj["flag_names"] == ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE"]
    assert (obj["seq"], obj["ack"], obj["urg"], obj["vlan"]) == (5, 6, 9, [100, 200])
    assert (obj["options"], obj["tcp_hdr_len"], obj["payload_len"]) == ([], 20, 10)


def test_malformed_option_ends_the_list():
    f = traffic.tcp_frame(
        "198.18.0.1",
        "198.18.0.2",
        40000,
        5001,
        options=(traffic.nop(), traffic.raw_option(8, b"\0" * 8, length=30)),
    )
    obj, _ = one(f)
    assert obj["options"] == [
        {"kind": 1, "name": "nop", "values": []},
        {"kind": 8, "name": "TS", "values": None},
    ]


def test_not_tcp_and_fragments_give_none():
    fmt = JsonFormatter()
    for f in (
        traffic.udp_frame("198.18.0.1", "198.18.0.2"),
        traffic.arp_frame("198.18.0.1", "198.18.0.2"),
        traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, frag_offset=8),
        traffic.tcp_frame("2001:db8::1", "2001:db8::2", 1, 2, ipv6_ext=(traffic.fragment(8),)),
        traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2)[:23],  # no protocol byte: unknown
    ):
        assert fmt.format(0, f, len(f), "") is None


NO_TCP = dict.fromkeys(
    ("seq", "ack", "flags", "flag_names", "win", "urg", "options", "tcp_hdr_len", "payload_len")
)


@pytest.mark.parametrize(
    "cut, ip_fields, ports",
    [
        (14 + 20 + 6, (4, "198.18.0.1", "198.18.0.2", 64), (1, 2)),  # ports, then [|tcp]
        (14 + 20 + 3, (4, "198.18.0.1", "198.18.0.2", 64), (None, None)),
        (14 + 20, (4, "198.18.0.1", "198.18.0.2", 64), (None, None)),
        (14 + 12, (4, None, None, None), (None, None)),  # IP  [|ip]
    ],
)
def test_a_capture_cut_in_the_headers_gives_nulls_for_what_it_lacks(cut, ip_fields, ports):
    """As an option cut short has "values": null, a field the capture did not reach is null:
    the ports need 4 bytes of TCP, the other TCP fields its 20, the addresses and the TTL the
    fixed IP header; keys and their order are the usual ones."""
    f = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, flags="S", vlans=(7,))
    cut += 4
    obj, _ = one(f[:cut], wire_len=len(f))
    assert list(obj) == KEYS + ["ttl"]
    assert (obj["wire_len"], obj["cap_len"], obj["vlan"]) == (len(f), cut, [7])
    assert (obj["ip"], obj["src"], obj["dst"], obj["ttl"]) == ip_fields
    assert (obj["sport"], obj["dport"]) == ports
    assert {k: obj[k] for k in NO_TCP} == NO_TCP


def test_a_cut_ipv6_header_and_a_live_record_cut_in_its_tags():
    f = traffic.tcp_frame("2001:db8::1", "2001:db8::2", 1, 2, ipv6_ext=(traffic.hop_by_hop(),))
    obj, _ = one(f[: 14 + 40 + 4], wire_len=len(f))  # IP6 a > b:  [|hbhopt]
    assert list(obj) == KEYS + ["hlim"]
    assert (obj["ip"], obj["src"], obj["dst"], obj["hlim"]) == (6, "2001:db8::1", "2001:db8::2", 64)
    assert obj["sport"] is None and obj["options"] is None
    # A live capture's record is TCP however short its snap length cut it (``known_tcp``).
    g = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, vlans=(7,))
    fmt = JsonFormatter()
    assert fmt.format(0, g[:16], len(g)) is None
    fmt.known_tcp = True
    obj = json.loads(fmt.format(0, g[:16], len(g), "eth0", "", 0))
    assert (obj["ip"], obj["vlan"], obj["ttl"], obj["direction"]) == (None, None, None, "in")
    assert (obj["wire_len"], obj["cap_len"]) == (len(g), 16)


def test_a_damaged_record_decodes_what_it_holds_with_its_own_lengths():
    """A record whose wire length is below its captured length (tcpdump prints only ``[Invalid
    header: len(10) < caplen(54)]``): the object of its bytes, its lengths as it gives them,
    seq and ack as the header holds them (tcpdump leaves it out of the relative numbering)."""
    fmt = JsonFormatter()
    syn = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, flags="S", seq=100)
    ack = traffic.tcp_frame("198.18.0.2", "198.18.0.1", 2, 1, flags="S.", seq=500, ack=101)
    late = traffic.tcp_frame("198.18.0.2", "198.18.0.1", 2, 1, flags=".", seq=501, ack=101)
    fmt.format(0, syn, len(syn))
    obj = json.loads(fmt.format(0, ack, 10))
    assert (obj["wire_len"], obj["cap_len"], obj["seq"], obj["ack"]) == (10, len(ack), 500, 101)
    obj = json.loads(fmt.format(0, late, 0))
    assert (obj["wire_len"], obj["seq"], obj["ack"], obj["flags"]) == (0, 501, 101, ".")
    # the relative numbering goes on as if they were not there, as tcpdump's: the S. set no
    # base (it would make these 1 and 1), the first whole ACK segment is printed absolute
    obj = json.loads(fmt.format(0, late, len(late)))
    assert (obj["seq"], obj["ack"]) == (501, 101)


def test_relative_seq_ack_and_sack_equal_tcpdump(tmp_path):
    path = tmp_path / "v.pcap"
    frames = [f for f in traffic.varied_pcap(path) if f.tcp]
    traffic.write_pcap(path, frames)
    tcpdump = need_tool("tcpdump")
    text = subprocess.run([tcpdump, "-nn", "-t", "-r", str(path)], capture_output=True,
                          text=True, check=True).stdout.splitlines()  # fmt: skip
    fmt = JsonFormatter()
    compared = 0
    for f, line in zip(frames, text):
        out = fmt.format(f.ts_ns, f.data, f.wire_len, "")
        if out is None:
            continue
        obj = json.loads(out)
        if obj["flags"] is None:  # the capture ends before the TCP fields: null (tested above)
            continue
        seq = re.search(r", seq (\d+)", line)
        if seq:
            assert obj["seq"] == int(seq.group(1)), line
        ack = re.search(r", ack (\d+)", line)
        assert (obj["ack"] == int(ack.group(1))) if ack else "ACK" not in obj["flag_names"], line
        sack = re.search(r"sack \d+ ((?:\{\d+:\d+\})+)", line)
        if sack:
            blocks = [[int(a), int(b)] for a, b in re.findall(r"\{(\d+):(\d+)\}", sack.group(1))]
            assert [o["values"] for o in obj["options"] if o["name"] == "sack"] == [blocks]
        length = re.search(r", length (\d+)$", line)
        if length:
            assert obj["payload_len"] == int(length.group(1))
        compared += 1
    assert compared > 200


@pytest.mark.parametrize("name", ["eth0", 'we"ird\\name'])
def test_ifname_is_escaped(name):
    f = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 40000, 5001)
    obj, _ = one(f, ifname=name)
    assert obj["ifname"] == name


def test_a_jumbogram_has_its_jumbo_payload_length():
    """An IPv6 jumbogram's lengths come from its hop-by-hop Jumbo Payload option, whole or as
    a live record of its headers; one without a length tcpdump takes gives none."""
    zoo = traffic.jumbo_zoo()
    fmt = JsonFormatter()
    for f in (zoo[0], zoo[2]):
        obj = json.loads(fmt.format(1, f.data, f.wire_len))
        assert (obj["ip"], obj["wire_len"], obj["cap_len"]) == (6, 70094, len(f.data))
        assert (obj["tcp_hdr_len"], obj["payload_len"], obj["sport"]) == (32, 70000, 41851)
    assert fmt.format(1, zoo[-1].data, zoo[-1].wire_len) is None
