"""The fast decoder (struct twins) against the construct declarations of xdptcp.layouts."""

from __future__ import annotations

import ipaddress
import random

import pytest
from construct import StreamError

from xdptcp import layouts as L
from xdptcp.packet import Cut, Kind, cut_short, decode, is_tcp_frame, iter_options

import traffic


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def oracle(frame: bytes, wire_len: int):
    """The decoding rules of xdptcp.packet, restated slowly with the construct layouts.

    Returns None or a dict of the Packet fields it determines.
    """
    cap = len(frame)
    if cap < 14 or wire_len < cap:
        return None
    eth = L.ethhdr.parse(frame)
    proto, off, vlans = eth.h_proto, 14, []
    while proto in L.VLAN_TPIDS:
        if off + 4 > cap:
            return None
        tag = L.vlan_tag.parse(frame[off:])
        vlans.append(tag.tci.vid)
        proto, off = tag.encapsulated_proto, off + 4
    if proto == L.EtherType.IP:
        got = _oracle_ipv4(frame, off, wire_len)
    elif proto == L.EtherType.IPV6:
        got = _oracle_ipv6(frame, off, wire_len)
    else:
        return None
    if got is None:
        return None
    got.update(vlans=tuple(vlans), l3_off=off, cap_len=cap, wire_len=wire_len)
    if got.get("kind") == Kind.FRAGMENT:
        return got
    return _oracle_tcp(frame, got)


def _oracle_ipv4(frame, l3, wire_len):
    if l3 + 20 > len(frame) or wire_len - l3 < 20:
        return None
    ip = L.iphdr.parse(frame[l3 : l3 + 20] + bytes(40))
    hlen = ip.vi.ihl * 4
    if ip.vi.version != 4 or hlen < 20 or ip.tot_len < hlen or ip.protocol != L.IPProto.TCP:
        return None
    got = dict(
        ip_version=4, src=_addr(ip.saddr), dst=_addr(ip.daddr), ttl=ip.ttl,
        tcp_len=ip.tot_len - hlen, snap_end=min(len(frame), l3 + ip.tot_len),
        ip_missing=max(0, ip.tot_len - (wire_len - l3)), ext=(), frag_offset=ip.frag.frag_off * 8,
        more_frags=ip.frag.mf, first_nh=6, l4_off=l3 + hlen,
    )  # fmt: skip
    if ip.frag.frag_off:
        got["kind"] = Kind.FRAGMENT
        return got
    return got if l3 + hlen <= len(frame) else None


def _oracle_ipv6(frame, l3, wire_len):
    if l3 + 40 > len(frame) or wire_len - l3 < 40:
        return None
    ip = L.ipv6hdr.parse(frame[l3:])
    if ip.vtf.version != 6:
        return None
    payload_len = ip.payload_len
    if not payload_len and ip.nexthdr == L.IPProto.HOPOPTS:
        payload_len = _jumbo(frame[l3 + 40 : min(len(frame), wire_len)])
    total = payload_len + 40 if payload_len else 40
    snap_end = min(len(frame), l3 + total)
    got = dict(
        ip_version=6, src=_addr(ip.saddr), dst=_addr(ip.daddr), ttl=ip.hop_limit,
        snap_end=snap_end, ip_missing=max(0, total - (wire_len - l3)) if payload_len else 0,
        frag_offset=0, more_frags=False, first_nh=ip.nexthdr,
    )  # fmt: skip
    nh, off, ext = ip.nexthdr, l3 + 40, []
    while nh != L.IPProto.TCP:
        if len(ext) == 16 or not payload_len or off + 8 > snap_end:
            return None
        if nh == L.IPProto.FRAGMENT:
            fh = L.frag_hdr.parse(frame[off:])
            ext.append((nh, frame[off : off + 8]))
            got.update(frag_offset=fh.frag.frag_off * 8, more_frags=fh.frag.mf)
            if fh.frag.frag_off:
                if fh.nexthdr != L.IPProto.TCP:
                    return None  # a later fragment of another protocol's packet
                got.update(kind=Kind.FRAGMENT, ext=tuple(ext), l4_off=off + 8,
                           tcp_len=total - (off + 8 - l3))  # fmt: skip
                return got
            if off + 8 >= snap_end:
                return None
            nh, off = fh.nexthdr, off + 8
            continue
        if nh not in (L.IPProto.HOPOPTS, L.IPProto.DSTOPTS, L.IPProto.ROUTING):
            return None
        try:
            h = L.ipv6_opt_hdr.parse(frame[off:snap_end])
        except StreamError:
            return None
        size = h.hdrlen * 8 + 8
        if off + size - l3 > total:
            return None
        if nh == L.IPProto.HOPOPTS and (ext or not _options_ok(h.data)):
            return None
        if nh == L.IPProto.ROUTING:
            rt = L.ipv6_rt_hdr.parse(frame[off:snap_end])
            if rt.type not in (0, 2, 4) or rt.hdrlen % 2:
                return None
        ext.append((nh, frame[off : off + size]))
        nh, off = h.nexthdr, off + size
    got.update(ext=tuple(ext), l4_off=off, tcp_len=total - (off - l3))
    return got


def _options_ok(data: bytes) -> bool:
    i = 0
    while i < len(data):
        if data[i] == 0:
            i += 1
            continue
        if i + 1 >= len(data) or i + data[i + 1] + 2 > len(data):
            return False
        kind, size = data[i], data[i + 1] + 2
        if kind == 0xC2 and size != 6:  # a jumbo payload length is 4 bytes
            return False
        if (kind == 5 and size != 4) or (kind == 0xC9 and size < 18):
            return False
        i += size
    return True


def _jumbo(hbh: bytes) -> int:
    """RFC 2675 as tcpdump reads it: the first Jumbo Payload option of a whole, well-formed
    hop-by-hop header gives the length, if at least 65536."""
    try:
        h = L.ipv6_opt_hdr.parse(hbh)
    except StreamError:
        return 0
    size = h.hdrlen * 8 + 8
    if size > len(hbh) or not _options_ok(h.data):
        return 0
    opts, i = h.data, 0
    while i < len(opts):
        if opts[i] == 0:
            i += 1
        elif opts[i] == 0xC2:
            value = int.from_bytes(opts[i + 2 : i + 6], "big")
            return value if value >= 65536 else 0
        else:
            i += opts[i + 1] + 2
    return 0


def _oracle_tcp(frame, got):
    l4, end = got["l4_off"], got["snap_end"]
    zero = dict(seq=0, ack=0, flags=0, win=0, urg=0, tcp_hdr_len=0, payload_len=0, options=b"")
    if l4 + 20 > end:
        ports = L.tcphdr.parse(frame[l4 : l4 + 4] + bytes(16)) if l4 + 4 <= end else None
        got.update(zero, kind=Kind.TRUNCATED, sport=ports.source if ports else 0,
                   dport=ports.dest if ports else 0)  # fmt: skip
        return got
    t = L.tcphdr.parse(frame[l4:])
    hlen = t.off.doff * 4
    bits = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ae")
    flags = sum(1 << i for i, b in enumerate(bits) if t.off[b])
    got.update(
        kind=Kind.TCP if hlen >= 20 else Kind.BAD_HDR_LEN, sport=t.source, dport=t.dest,
        seq=t.seq, ack=t.ack_seq, flags=flags, win=t.window, urg=t.urg_ptr, tcp_hdr_len=hlen,
        payload_len=got["tcp_len"] - hlen,
        options=frame[l4 + 20 : min(l4 + hlen, end)] if hlen > 20 else b"",
    )  # fmt: skip
    return got


def assert_same(frame: bytes, wire_len: int) -> bool:
    ours, expected = decode(frame, wire_len), oracle(frame, wire_len)
    if expected is None:
        assert ours is None, frame.hex()
        return False
    assert ours is not None, frame.hex()
    got = ours._asdict()
    for key, value in expected.items():
        assert got[key] == value, f"{key}: {got[key]!r} != {value!r} in {frame.hex()}"
    if ours.kind == Kind.TCP:
        assert ours.payload_len == ours.tcp_len - ours.tcp_hdr_len
    return True


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    return traffic.varied_pcap(tmp_path_factory.mktemp("p") / "v.pcap")


def test_decoder_equals_construct_layouts_on_varied_capture(varied):
    decoded = sum(assert_same(f.data, f.wire_len) for f in varied)
    assert decoded == sum(f.tcp for f in varied)


def test_decoder_equals_construct_layouts_on_fuzzed_frames(varied):
    rng = random.Random(11)
    kinds = set()
    for _ in range(4000):
        data = bytearray(rng.choice(varied).data)
        wire = len(data)
        if rng.random() < 0.3:
            data = data[: rng.randrange(0, len(data) + 1)]
        for _ in range(rng.randint(0, 4)):
            if len(data) > 12:
                pos = rng.randrange(12, len(data))
                data[pos] = rng.choice(
                    (0, 6, 43, 44, 60, 0x81, 0x86, 0x45, 0x60, rng.getrandbits(8))
                )
        if assert_same(bytes(data), max(wire, len(data))):
            kinds.add(decode(bytes(data), max(wire, len(data))).kind)
    assert kinds == set(Kind)


def test_fields_of_a_built_frame():
    f = traffic.tcp_frame(
        "198.18.1.2", "198.19.3.4", 40000, 5001, seq=0xFFFFFFF0, ack=77, flags="P.EWN", win=1234,
        urg=5, payload=b"abcdef", vlans=(100, 200), qinq=True, ttl=9,
        options=(traffic.mss(1400), traffic.wscale(3)),
    )  # fmt: skip
    p = decode(f)
    assert (p.kind, p.ip_version, p.src, p.dst, p.ttl, p.vlans) == (
        Kind.TCP, 4, "198.18.1.2", "198.19.3.4", 9, (100, 200),
    )  # fmt: skip
    assert (p.sport, p.dport, p.seq, p.ack, p.win, p.urg) == (40000, 5001, 0xFFFFFFF0, 77, 1234, 5)
    assert p.flags == L.TCPFlag.PSH | L.TCPFlag.ACK | L.TCPFlag.ECE | L.TCPFlag.CWR | L.TCPFlag.AE
    assert (p.tcp_hdr_len, p.payload_len, p.l3_off, p.l4_off) == (28, 6, 22, 42)
    assert list(iter_options(p.options)) == [(2, b"\x05\x78"), (3, b"\x03"), (0, b"")]


def test_ipv6_extension_headers_are_walked():
    ext = (traffic.hop_by_hop(), traffic.routing(["2001:db8::9"]), traffic.dest_options())
    f = traffic.tcp_frame("2001:db8::1", "2001:db8::2", 40000, 5001, ipv6_ext=ext, payload=b"x")
    p = decode(f)
    assert p.kind == Kind.TCP and [e[0] for e in p.ext] == [0, 43, 60]
    assert p.l4_off == 14 + 40 + 8 + 24 + 8 and p.tcp_len == 21 and p.first_nh == 0


def test_non_first_fragments_have_no_tcp_header():
    v4 = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2, frag_offset=1480)
    v6 = traffic.tcp_frame("2001:db8::1", "2001:db8::2", 1, 2, ipv6_ext=(traffic.fragment(8),))
    assert decode(v4).kind == Kind.FRAGMENT and decode(v4).frag_offset == 1480
    assert decode(v6).kind == Kind.FRAGMENT and decode(v6).frag_offset == 8


@pytest.mark.parametrize(
    "frame",
    [
        traffic.udp_frame("198.18.0.1", "198.18.0.2"),
        traffic.icmp_frame("2001:db8::1", "2001:db8::2"),
        traffic.arp_frame("198.18.0.1", "198.18.0.2"),
        traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2)[:20],
        b"",
    ],
)
def test_not_tcp(frame):
    assert decode(frame) is None
    assert not is_tcp_frame(frame)


def test_is_tcp_frame_on_the_varied_capture(varied):
    assert [is_tcp_frame(f.data, f.wire_len) for f in varied] == [f.tcp for f in varied]


def test_option_walk_equals_construct():
    raw = b"".join(
        (traffic.nop(), traffic.mss(1), traffic.sack((1, 2)), traffic.timestamp(3, 4),
         traffic.raw_option(99, b"zz"), traffic.eol(), b"\x02\x04")
    )  # fmt: skip
    walked = list(iter_options(raw))
    i, expected = 0, []
    while i < len(raw):
        if raw[i] <= 1:
            expected.append((raw[i], b""))
            if raw[i] == 0:
                break
            i += 1
            continue
        opt = L.tcp_option.parse(raw[i:])
        expected.append((opt.kind, opt.data))
        i += opt.length
    assert walked == expected
    assert list(iter_options(b"\x02\x01\x00"))[-1] == (2, None)


def test_a_frame_cut_in_its_ip_header_is_tcp_once_the_protocol_is_captured():
    """As libpcap's ``tcp`` reads it: the IPv4 protocol byte (frame byte 23), the IPv6 next
    header (byte 20), or a first fragment header's next header (byte 54); what ``-r -w``
    copies. Unless the frame is known to be TCP (a live record), which any cut leaves it."""
    v4 = traffic.tcp_frame("198.18.0.1", "198.18.0.2", 1, 2)
    v6 = traffic.tcp_frame("2001:db8::1", "2001:db8::2", 1, 2, ipv6_ext=(traffic.fragment(),))
    assert [is_tcp_frame(v4[:n], len(v4)) for n in (22, 23, 24, 33)] == [False] * 2 + [True] * 2
    plain6 = traffic.tcp_frame("2001:db8::1", "2001:db8::2", 1, 2)
    assert [is_tcp_frame(plain6[:n], len(v6)) for n in (20, 21)] == [False, True]
    assert [is_tcp_frame(v6[:n], len(v6)) for n in (21, 54, 55)] == [False, False, True]
    assert cut_short(v4[:24]) == Cut(4, (), note="IP  [|ip]")
    assert cut_short(plain6[:40]) == Cut(6, (), note=" [|ip6]")
    assert cut_short(v6[:56], len(v6)).note == "IP6 2001:db8::1 > 2001:db8::2:  [|frag6]"
    assert cut_short(v6[:56])[2:5] == ("2001:db8::1", "2001:db8::2", 64)
    assert cut_short(v4[:5]) is None and cut_short(v4[:5], known_tcp=True).note == " [|ether]"
    udp6 = traffic.udp_frame("2001:db8::1", "2001:db8::2")
    assert not is_tcp_frame(udp6[:40]) and cut_short(udp6[:40], known_tcp=True) is not None


def test_a_later_ipv6_fragment_is_tcp_only_when_its_fragment_header_says_so():
    frag = traffic.tcp_frame("2001:db8::1", "2001:db8::2", 1, 2, ipv6_ext=(traffic.fragment(8),))
    udp = frag[:54] + bytes([17]) + frag[55:]
    assert decode(frag).kind == Kind.FRAGMENT
    assert decode(udp) is None and not is_tcp_frame(udp)


def test_decoder_equals_construct_layouts_on_jumbograms():
    """IPv6 jumbograms (a hop-by-hop Jumbo Payload option, fixed payload length 0), whole, cut
    and corrupted: the decoder and the layouts agree; the whole ones decode with their length."""
    zoo = traffic.jumbo_zoo()
    assert assert_same(zoo[0].data, zoo[0].wire_len)
    whole = decode(zoo[0].data, zoo[0].wire_len)
    assert (whole.kind, whole.tcp_len - whole.tcp_hdr_len, whole.ip_missing) == (Kind.TCP, 70000, 0)
    lying = decode(zoo[7].data, zoo[7].wire_len)  # says 5 bytes more than the frame holds
    assert (lying.payload_len, lying.ip_missing) == (70005, 5)
    frames = traffic.mutated_jumbogram_heads(random.Random(12), 3000)
    assert sum(assert_same(data, 70094) for data in frames) > 1000
