"""Link layers of the captures ``-r`` reads, and how tcpdump prints what they carry.

XDP hands xdptcp Ethernet frames, so the decoder, the formatters and the filter work on Ethernet.
A capture made elsewhere may start with another link-layer header: Linux cooked headers from
``tcpdump -i any`` (v1 and v2), none at all (raw IP), a BSD loopback address family, or PPP.
``ethernet_view`` finds the network layer under each of them and hands back the same packet
behind a 14-byte Ethernet header (source address from the cooked header when it has one,
EtherType from the link layer), with what tcpdump prints before the network layer for that
link type: for cooked v2 the interface and the packet's direction (``lo    In  ``, as tcpdump
4.99's print-sll.c does without ``-e``), for PPP in HDLC framing ``IP: `` (print-ppp.c's
handle_ppp), nothing for the others.

The numbers are libpcap's LINKTYPE_ values (https://www.tcpdump.org/linktypes.html).
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import NamedTuple, Optional

ETHERNET = 1
NULL = 0  # BSD loopback: a 4-byte address family in the writer's byte order
PPP = 9
RAW_OLD_12 = 12  # DLT_RAW on some BSDs; libpcap maps it to LINKTYPE_RAW
RAW_OLD_14 = 14  # DLT_RAW on OpenBSD
PPP_HDLC = 50  # PPP in HDLC-like framing (RFC 1662), or Cisco HDLC
RAW = 101  # raw IP: IPv4 or IPv6 by the version nibble
LOOP = 108  # OpenBSD loopback: the address family in network byte order
LINUX_SLL = 113
IPV4 = 228
IPV6 = 229
LINUX_SLL2 = 276

NAMES = {
    ETHERNET: "Ethernet",
    NULL: "BSD loopback (NULL)",
    PPP: "PPP",
    RAW_OLD_12: "raw IP",
    RAW_OLD_14: "raw IP",
    PPP_HDLC: "PPP in HDLC framing",
    RAW: "raw IP",
    LOOP: "OpenBSD loopback (LOOP)",
    LINUX_SLL: "Linux cooked v1",
    IPV4: "raw IPv4",
    IPV6: "raw IPv6",
    LINUX_SLL2: "Linux cooked v2",
}
SUPPORTED = frozenset(NAMES)

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
# Address families that mean IPv6 in a loopback header: Linux/BSD-independent values that
# libpcap's gen_loopback_linktype accepts (AF_INET6 on NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30).
_AF_INET = 2
_AF_INET6 = frozenset({10, 24, 28, 30})
_PPP_IP, _PPP_IPV6 = 0x0021, 0x0057
# print-sll.c's sll_pkttype_values: what cooked v2 lines say of the packet's direction.
SLL_PKTTYPE = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}

# print-ether.c's ethertype_values, for the types a TCP line can come through.
ETHERTYPES = {
    0x0800: "IPv4",
    0x86DD: "IPv6",
    0x8100: "802.1Q",
    0x9100: "802.1Q-9100",
    0x88A8: "802.1Q-QinQ",
    0x9200: "802.1Q-9200",
}
_SLL_VLAN = 0x8100  # the one tag print-sll.c walks
_SLL_P_802_2 = 4

SLL_HEADER = struct.Struct("!HHH8sH")  # pkttype, hatype, halen, address, protocol
# protocol, reserved, ifindex, hatype, pkttype, halen, address
SLL2_HEADER = struct.Struct("!HHIHBB8s")
_ZERO_MAC = bytes(6)


class View(NamedTuple):
    """A packet seen as an Ethernet frame, and what tcpdump prints before its network layer:
    ``prefix`` for its link-layer header, then ``tags`` for the 802.1Q tags after a cooked
    header (``cooked_tags``; -q leaves them out, -e prints more of them); ``header``: the
    length of the packet's own link-layer header, which the frame's first 14 bytes stand
    for."""

    frame: bytes
    wire_len: int
    prefix: str
    header: int = 14
    tags: str = ""


def describe(linktype: int) -> str:
    return f"{NAMES.get(linktype, 'unknown')} ({linktype})"


def unsupported(linktype: int) -> str:
    """The one line saying a link type cannot be read, and which can."""
    known = ", ".join(f"{NAMES[n]} ({n})" for n in sorted(SUPPORTED) if n not in (12, 14))
    return f"link type {linktype} is not one xdptcp reads (it reads {known})"


def _eth(dst: bytes, src: bytes, etype: int, rest) -> bytes:
    return dst + src + struct.pack("!H", etype) + bytes(rest)


def _ip_etype(first: int) -> Optional[int]:
    version = first >> 4
    return ETH_P_IP if version == 4 else ETH_P_IPV6 if version == 6 else None


class Interfaces:
    """if_indextoname as tcpdump uses it for cooked v2 lines: names of *this* host's interfaces
    (tcpdump warns that they may be wrong for a file made elsewhere), cached per run."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}

    def name(self, ifindex: int) -> str:
        name = self._names.get(ifindex)
        if name is None:
            try:
                name = socket.if_indextoname(ifindex) if ifindex > 0 else "?"
            except OSError:
                name = "?"
            self._names[ifindex] = name
        return name


def ethernet_view(
    linktype: int, data: bytes, wire_len: int, ifaces: Optional[Interfaces] = None
) -> Optional[View]:
    """``data`` (a packet of ``linktype``) as an Ethernet frame; None when its link layer does
    not carry IPv4 or IPv6 (or is cut short): tcpdump prints no TCP line for it either."""
    if linktype == ETHERNET:
        return View(data, wire_len, "")
    reader = _READERS.get(linktype)
    if reader is None:
        return None
    found = reader(data, ifaces)
    if found is None:
        return None
    hlen, etype, src, prefix = found
    frame = _eth(_ZERO_MAC, src, etype, data[hlen:])
    tags = cooked_tags(data, hlen, etype) if linktype in (LINUX_SLL, LINUX_SLL2) else ""
    return View(frame, wire_len - hlen + 14, prefix, hlen, tags)


_Found = Optional[tuple[int, int, bytes, str]]  # header length, EtherType, source MAC, prefix


def _raw(data: bytes, ifaces) -> _Found:
    if not data:
        return None
    etype = _ip_etype(data[0])
    return None if etype is None else (0, etype, _ZERO_MAC, "")


def _raw4(data: bytes, ifaces) -> _Found:
    return (0, ETH_P_IP, _ZERO_MAC, "") if data else None


def _raw6(data: bytes, ifaces) -> _Found:
    return (0, ETH_P_IPV6, _ZERO_MAC, "") if data else None


def _family(af: int) -> Optional[int]:
    if af == _AF_INET:
        return ETH_P_IP
    if af in _AF_INET6:
        return ETH_P_IPV6
    return None


def _null(data: bytes, ifaces) -> _Found:
    # The writer's byte order: a family above 0xFFFF read one way is a small number the other.
    if len(data) < 4:
        return None
    (af,) = struct.unpack_from("=I", data)
    if af & 0xFFFF0000:
        af = int.from_bytes(data[:4], "big" if sys.byteorder == "little" else "little")
    etype = _family(af)
    return None if etype is None else (4, etype, _ZERO_MAC, "")


def _loop(data: bytes, ifaces) -> _Found:
    if len(data) < 4:
        return None
    etype = _family(struct.unpack_from("!I", data)[0])
    return None if etype is None else (4, etype, _ZERO_MAC, "")


def tci(tag: int) -> str:
    """addrtoname.c's ieee8021q_tci_string: a VLAN tag's identifier, priority and DEI bit."""
    return f"vlan {tag & 0xFFF}, p {tag >> 13}{', DEI' if tag & 0x1000 else ''}"


def cooked_tags(data, at: int, proto: int, link_level: bool = False, quiet: bool = False) -> str:
    """What print-sll.c prints for the 802.1Q tags after a cooked header (at ``at``, the
    header's protocol ``proto``): ``ethertype IPv4, `` for each, with or without ``-e`` but not
    with -q (``quiet``), after the tag's own text with ``-e`` (``link_level``)."""
    out = ""
    while proto == _SLL_VLAN and at + 4 <= len(data):
        tag = data[at] << 8 | data[at + 1]
        proto = data[at + 2] << 8 | data[at + 3]
        if proto <= 1500:
            proto = _SLL_P_802_2
        if link_level:
            out += f"{tci(tag)}, "
        if not quiet:
            out += f"ethertype {ETHERTYPES.get(proto, 'Unknown')}, "
        at += 4
    return out


def _sll(data: bytes, ifaces) -> _Found:
    if len(data) < SLL_HEADER.size:
        return None
    _, hatype, halen, addr, proto = SLL_HEADER.unpack_from(data)
    src = addr[:6] if hatype == 1 and halen == 6 else _ZERO_MAC
    return SLL_HEADER.size, proto, src, ""


def _sll2(data: bytes, ifaces) -> _Found:
    if len(data) < SLL2_HEADER.size:
        return None
    proto, _, ifindex, hatype, pkttype, halen, addr = SLL2_HEADER.unpack_from(data)
    src = addr[:6] if hatype == 1 and halen == 6 else _ZERO_MAC
    name = (ifaces or Interfaces()).name(ifindex)
    prefix = f"{name:<5} {SLL_PKTTYPE.get(pkttype, '?'):<3} "
    return SLL2_HEADER.size, proto, src, prefix


def _ppp_protocol(data: bytes, at: int) -> Optional[tuple[int, int]]:
    """(protocol, header end): RFC 1661 allows a one-byte protocol when its low bit is set."""
    if at >= len(data):
        return None
    if data[at] & 1:
        return data[at], at + 1
    if at + 2 > len(data):
        return None
    return data[at] << 8 | data[at + 1], at + 2


def _ppp_etype(proto: int) -> Optional[int]:
    return ETH_P_IP if proto == _PPP_IP else ETH_P_IPV6 if proto == _PPP_IPV6 else None


def _ppp(data: bytes, ifaces) -> _Found:
    # print-ppp.c ppp_print: an optional 0xff 0x03 address/control pair, then the protocol.
    at = 2 if data[:2] == b"\xff\x03" else 0
    found = _ppp_protocol(data, at)
    if found is None:
        return None
    etype = _ppp_etype(found[0])
    return None if etype is None else (found[1], etype, _ZERO_MAC, "")


def _ppp_hdlc(data: bytes, ifaces) -> _Found:
    # print-ppp.c ppp_hdlc_if_print: 0xff 0x03 is PPP in HDLC framing (its lines start with the
    # protocol's name, "IP: "), 0x0f/0x8f is Cisco HDLC with an EtherType; anything else prints
    # "unknown addr", not a TCP line.
    if len(data) < 4:
        return None
    if data[0] == 0xFF and data[1] == 0x03:
        proto = data[2] << 8 | data[3]
        etype = _ppp_etype(proto)
        if etype is None:
            return None
        return 4, etype, _ZERO_MAC, "IP: " if etype == ETH_P_IP else "IPv6: "
    if data[0] in (0x0F, 0x8F):
        etype = data[2] << 8 | data[3]
        if etype not in (ETH_P_IP, ETH_P_IPV6):
            return None
        return 4, etype, _ZERO_MAC, ""
    return None


_READERS = {
    NULL: _null,
    PPP: _ppp,
    RAW_OLD_12: _raw,
    RAW_OLD_14: _raw,
    PPP_HDLC: _ppp_hdlc,
    RAW: _raw,
    LOOP: _loop,
    LINUX_SLL: _sll,
    IPV4: _raw4,
    IPV6: _raw6,
    LINUX_SLL2: _sll2,
}
