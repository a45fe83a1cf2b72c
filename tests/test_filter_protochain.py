"""``protochain``: the chain of IPv4 AH headers and IPv6 extension headers walked as libpcap walks
it, on frames with none to several of each kind, and compared with tcpdump's selection of the
same frames; the eBPF the Python VM runs here also passes the kernel's verifier inside the
capture program and selects there what it selects here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pybpf import ObjectSpec, load
from tests import traffic as t
from tests.conftest import bpf_object
from tests.test_filter import tcpdump_selects, write_pcap
from xdptcp.pcapfilter import FilterError, compile_filter
from xdptcp.pcapfilter.ir import CHAIN_DEPTH
from xdptcp.record import Verdict, parse_frame, sum_counters

A4, B4 = "198.18.0.1", "198.18.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"
HBH, DST, FRAG = t.hop_by_hop(), t.dest_options(bytes((0x1E, 4)) + bytes(4)), t.fragment()
RT = t.routing(["2001:db8::9", "2001:db8::a"])
LATER = t.fragment(offset=1448, more=True)
AH, AH_LONG = t.auth_header(), t.auth_header(icv=bytes(20))


def tcp6(*ext: t.ExtHeader, dport: int = 443, vlans=()) -> bytes:
    return t.tcp_frame(A6, B6, 40000, dport, ipv6_ext=ext, vlans=vlans, flags="S")


def other6(proto: int, body: bytes, *ext: t.ExtHeader) -> bytes:
    return t.ethernet(t.ipv6_packet(A6, B6, proto, body, ext=ext), t.ETH_P_IPV6)


def ip4(proto: int, body: bytes, **kw) -> bytes:
    return t.ethernet(t.ipv4_packet(A4, B4, proto, body, **kw), t.ETH_P_IP)


def ah4(next_proto: int, body: bytes, ah: t.ExtHeader = AH, **kw) -> bytes:
    """IPv4 carrying AH, then ``next_proto``."""
    return ip4(t.IPPROTO_AH, bytes((next_proto,)) + ah.body + body, **kw)


SEGMENT = t.tcp_segment(A4, B4, 40000, 443, flags="S")
UDP = bytes.fromhex("9c41 01bb 000c 0000 78787878")

# Frames walked within CHAIN_DEPTH headers: xdptcp selects what tcpdump selects, every one
FRAMES = [
    # IPv4: the protocol, then AH headers (whose length libpcap reads as the next header's
    # offset from the IP header, not from the AH header)
    t.tcp_frame(A4, B4, 40000, 443, flags="S"),
    t.tcp_frame(A4, B4, 40000, 443, flags="S", ip_options=bytes(8)),
    t.tcp_frame(A4, B4, 40000, 443, flags="S", frag_offset=1480),
    t.udp_frame(A4, B4),
    ah4(6, SEGMENT),
    ah4(6, SEGMENT, ip_options=bytes(12)),
    ah4(17, UDP),
    ah4(51, bytes((6,)) + AH.body + SEGMENT),
    ah4(51, bytes((6,)) + AH.body + SEGMENT, AH_LONG),
    ah4(59, b""),
    ip4(59, b""),
    ah4(6, SEGMENT)[:40],  # cut inside AH
    # IPv6: hop-by-hop, destination options, routing, fragment and AH headers, each kind alone
    tcp6(),
    tcp6(HBH),
    tcp6(DST),
    tcp6(RT),
    tcp6(FRAG),
    tcp6(LATER),
    tcp6(AH),
    tcp6(AH_LONG),
    # ... and several together, in the orders RFC 8200 gives and others
    tcp6(HBH, DST, RT, FRAG),
    tcp6(HBH, DST, RT, FRAG, AH, DST),
    tcp6(HBH, AH),
    tcp6(AH, DST),
    tcp6(AH, AH),
    tcp6(FRAG, FRAG),
    tcp6(LATER, DST),
    tcp6(HBH, DST, vlans=[10]),
    tcp6(*[DST] * CHAIN_DEPTH),  # exactly as deep as xdptcp walks
    tcp6(*[HBH, RT, DST, AH] * (CHAIN_DEPTH // 4)),
    tcp6(HBH, DST, RT, FRAG)[:80],  # cut inside the routing header
    tcp6(HBH, DST)[:62],  # cut at the destination options' length byte
    # chains that end in something other than TCP
    other6(17, UDP),
    other6(17, UDP, HBH, DST),
    other6(17, UDP, AH),
    other6(58, bytes((128, 0, 0, 0, 0, 1, 0, 1)), HBH),
    other6(59, b"", HBH, DST),
    other6(59, b""),
    other6(50, bytes(16), DST),  # ESP: not walked
    other6(6, bytes(8), LATER),  # a later fragment: libpcap walks on to what its data says
]
# Deeper than CHAIN_DEPTH headers: xdptcp stops walking, tcpdump keeps going
DEEP = [
    tcp6(*[DST] * (CHAIN_DEPTH + 1)),
    tcp6(*[HBH, RT, DST] * CHAIN_DEPTH),
]

EXPRESSIONS = [
    "ip protochain 6",
    "ip6 protochain 6",
    "protochain 6",
    "protochain \\tcp",
    "ip6 protochain 6 and port 443",
    "not ip6 protochain 6",
    "vlan and ip6 protochain 6",
    "protochain 6 or 17",
    "ip6 protochain (17 or 58)",
    "ip6 protochain 0",
    "ip6 protochain 43",
    "ip6 protochain 44",
    "ip6 protochain 60",
    "protochain 51",
    "protochain \\ah",
    "ip6 protochain 59",
    "ip6 protochain 50",
    "ip6 protochain 256",
    # libpcap compiles a filter with protochain unoptimized: the TCP load is made, and a frame
    # without those bytes is rejected ('tcp[20:2] <= 64 or tcp' alone accepts it)
    "tcp[20:2] <= 64 or tcp or ip6 protochain 17",
]


@pytest.fixture(scope="module")
def pcap(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("protochain") / "chains.pcap"
    write_pcap(path, FRAMES + DEEP)
    return path


def selects(expr: str) -> set[int]:
    flt = compile_filter(expr)
    return {i for i, f in enumerate(FRAMES + DEEP) if flt.matches(f)}


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_protochain_selects_what_tcpdump_selects(pcap, expr: str) -> None:
    shallow = set(range(len(FRAMES)))
    assert selects(expr) & shallow == tcpdump_selects(pcap, expr) & shallow


def test_the_python_code_and_the_vm_agree_on_every_chain() -> None:
    from xdptcp.pcapfilter.vm import runner

    for expr in EXPRESSIONS:
        flt = compile_filter(expr)
        run = runner(flt.insns)
        for frame in FRAMES + DEEP:
            n = len(frame)
            assert (flt.in_place(frame, 0, n, n, n) != 0) == (run(frame, n, n) != 0), expr


def test_past_its_depth_the_chain_is_not_followed_where_tcpdump_follows_it(pcap) -> None:
    deep = set(range(len(FRAMES), len(FRAMES + DEEP)))
    assert tcpdump_selects(pcap, "ip6 protochain 6") >= deep
    assert selects("ip6 protochain 6") & deep == set()
    assert selects("not ip6 protochain 6") >= deep


@pytest.mark.parametrize(
    "expr, part, words",
    [
        ("ip protochain 17", "ip", "'ip protochain 17': it can never match a TCP frame"),
        ("ether protochain 6", "6", "bad protocol applied for 'protochain'"),
        ("tcp protochain 6", "6", "bad protocol applied for 'protochain'"),
        ("protochain foo", "foo", "unknown ip proto 'foo'"),
        ("protochain 198.18.0.1", "198.18.0.1", "'protochain' modifier applied to ip host"),
        ("protochain 2001:db8::1", "2001:db8::1", "invalid qualifier against IPv6 address"),
        ("ip6 protochain udp", "udp", "syntax error"),
        ("src protochain 6", "protochain", "syntax error"),
    ],
)
def test_protochain_refusals_are_libpcaps(pcap, expr: str, part: str, words: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    assert words in str(info.value) and info.value.part == part
    if "never match" in words:  # libpcap compiles it, and selects no TCP frame with it
        tcp = {i for i, f in enumerate(FRAMES + DEEP) if parse_frame(f)[0] is Verdict.TCP}
        assert not tcpdump_selects(pcap, expr) & tcp
    else:
        with pytest.raises(subprocess.CalledProcessError):
            tcpdump_selects(pcap, expr)


@pytest.mark.system
@pytest.mark.kmatrix
@pytest.mark.parametrize(
    "expr",
    ["protochain 6", "ip6 protochain 6 and port 443", "not ip6 protochain 44 or protochain 51"],
)
def test_protochain_verifies_in_the_capture_program_and_selects_as_the_vm(expr: str) -> None:
    """Both programs (XDP ingress, tc egress) call the filter; the kernel runs it on the TCP
    frames it finds, and counts one match for each frame the VM accepts."""
    flt = compile_filter(expr)
    spec = ObjectSpec.from_bytes(bpf_object("xdptcp").read_bytes(), "xdptcp.bpf.o")
    spec.replace_function("xdptcp_filter", flt.code()["xdptcp_filter"])
    spec.rodata.update_from(flt.rodata_values())
    frames = FRAMES + DEEP
    want = [parse_frame(f)[0] is Verdict.TCP and flt.matches(f) for f in frames]
    assert any(want)
    with load(spec) as obj:
        counters = obj.maps["xdptcp_counters"]
        for name in ("xdp_capture", "tc_capture"):
            got, before = [], sum_counters(counters[0])["matched"]
            for frame in frames:
                obj.programs[name].test_run(frame)
                now = sum_counters(counters[0])["matched"]
                got.append(now - before == 1)
                before = now
            assert got == want, name
