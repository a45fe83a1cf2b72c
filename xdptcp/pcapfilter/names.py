"""The fixed vocabulary of pcap-filter: keywords, protocol numbers, EtherTypes, service names."""

from __future__ import annotations

import socket
from typing import Optional


class FilterError(ValueError):
    """The filter cannot be compiled; the message is one line naming the part and position."""

    def __init__(self, message: str, position: int, part: str) -> None:
        self.message = message
        self.position = position
        self.part = part
        super().__init__(f"filter: {message} (at position {position}: {part!r})")


class SemanticError(FilterError):
    """An error libpcap reports after recognising the syntax: never retried another way."""


ETH_IP, ETH_IP6, ETH_ARP, ETH_RARP = 0x0800, 0x86DD, 0x0806, 0x8035
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
# An EtherType field of at most 1500 is an 802.3 frame's length: an 802.2 LLC header follows,
# and `ether proto N` then means its SAP (libpcap's gen_ether_linktype)
ETHERMTU = 1500
LLCSAP_IP, LLCSAP_IPX, LLCSAP_NETBEUI, LLCSAP_ISONS = 0x06, 0xE0, 0xF0, 0xFE
ETH_IPX = 0x8137
LINK_WORDS = ("ether", "link", "ppp", "slip", "fddi", "tr", "wlan")
# pname -> (ip protocol number, which IP versions gen_proto_abbrev checks)
TRANSPORT = {
    "tcp": (6, "any"),
    "udp": (17, "any"),
    "sctp": (132, "any"),
    "icmp": (1, "ip"),
    "igmp": (2, "ip"),
    "igrp": (9, "ip"),
    "pim": (103, "any"),
    "vrrp": (112, "ip"),
    "carp": (112, "ip"),
    "icmp6": (58, "ip6"),
    "ah": (51, "any"),
    "esp": (50, "any"),
}
PNAMES = frozenset(("ip", "ip6", "arp", "rarp", *TRANSPORT, *LINK_WORDS))
# Valid pcap-filter words for frames xdptcp never sees (or that need a live interface).
FOREIGN = frozenset(
    [
        "atalk",
        "aarp",
        "decnet",
        "lat",
        "sca",
        "moprc",
        "mopdl",
        "iso",
        "esis",
        "es-is",
        "isis",
        "is-is",
        "l1",
        "l2",
        "iih",
        "lsp",
        "snp",
        "csnp",
        "psnp",
        "clnp",
        "stp",
        "ipx",
        "netbeui",
        "radio",
        "mpls",
        "pppoed",
        "pppoes",
        "geneve",
        "inbound",
        "outbound",
        "ifindex",
        "llc",
        "lane",
        "oam",
        "oamf4",
        "metac",
        "bcc",
        "sc",
        "ilmic",
        "connectmsg",
        "metaconnect",
        "vpi",
        "vci",
        "byte",
        "ifname",
        "on",
        "rnr",
        "rulenum",
        "reason",
        "rset",
        "ruleset",
        "srnr",
        "subrulenum",
        "action",
        "type",
        "subtype",
        "dir",
        "address1",
        "addr1",
        "address2",
        "addr2",
        "address3",
        "addr3",
        "address4",
        "addr4",
        "ra",
        "ta",
    ]
)
KEYWORDS = (
    PNAMES
    | FOREIGN
    | frozenset(
        [
            "src",
            "dst",
            "host",
            "net",
            "port",
            "portrange",
            "proto",
            "protochain",
            "mask",
            "and",
            "or",
            "not",
            "broadcast",
            "multicast",
            "less",
            "greater",
            "len",
            "vlan",
            "gateway",
        ]
    )
)
RELOPS = {">": ("gt", False), ">=": ("ge", False), "=": ("eq", False), "==": ("eq", False),
          "<=": ("gt", True), "<": ("ge", True), "!=": ("eq", True)}  # fmt: skip
# precedence of binary arithmetic operators (higher binds tighter); ^ is handled apart
ARITH_PREC = {"|": 1, "&": 2, "<<": 3, ">>": 3, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5}
NOT_TCP = "it can never match a TCP frame"


class Quals:
    """libpcap's ``struct qual``: protocol, direction and address kind of an id."""

    def __init__(
        self, proto: Optional[str], dir: Optional[str], addr: Optional[str], start=None
    ) -> None:
        self.proto, self.dir, self.addr = proto, dir, addr
        self.start = start  # the first word of the qualifiers: where a refusal points


# The address kind of an id after a term that leaves no qualifiers (``tcp or 80``): libpcap's
# Q_UNDEF, which its code generator refuses for each kind of id in its own words
UNDEF = "undef"


# libpcap's descriptions of the link types -r reads besides Ethernet (the words of its errors)
LINK_DESCRIPTIONS = {0: "BSD loopback", 9: "PPP", 12: "Raw IP", 14: "Raw IP", 50: "PPP over serial",
                     101: "Raw IP", 108: "OpenBSD loopback", 113: "Linux cooked v1",
                     228: "Raw IPv4", 229: "Raw IPv6", 276: "Linux cooked v2"}  # fmt: skip

# `proto \tcp`, `ip proto \udp`: names of IP protocols, as libpcap reads them (pcap_nametoproto).
IPPROTOS = {"ip": 0, "icmp": 1, "igmp": 2, "tcp": 6, "egp": 8, "igrp": 9, "udp": 17,
            "ipv6": 41, "ip6": 41, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "icmp6": 58,
            "pim": 103, "vrrp": 112, "carp": 112, "sctp": 132}  # fmt: skip
# `ether proto \arp`: EtherType names (pcap_nametoeproto)
ETHERTYPES = {"ip": 0x0800, "ip6": 0x86DD, "arp": 0x0806, "rarp": 0x8035, "atalk": 0x809B,
              "aarp": 0x80F3, "sca": 0x6007, "lat": 0x6004, "mopdl": 0x6001, "moprc": 0x6002,
              "decnet": 0x6003, "loopback": 0x9000}  # fmt: skip
# the names `ether proto \iso` takes when no EtherType has it (pcap_nametollc)
LLC_SAPS = {"iso": LLCSAP_ISONS, "stp": 0x42, "ipx": LLCSAP_IPX, "netbeui": LLCSAP_NETBEUI}
# Used when /etc/services is missing (a container): the names people type most.
SERVICES = {"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
            "http": 80, "www": 80, "pop3": 110, "sunrpc": 111, "auth": 113, "nntp": 119,
            "imap": 143, "imap2": 143, "bgp": 179, "ldap": 389, "https": 443,
            "microsoft-ds": 445, "submission": 587, "ldaps": 636, "imaps": 993,
            "pop3s": 995, "mysql": 3306, "postgresql": 5432, "http-alt": 8080}  # fmt: skip


def service_port(name: str) -> Optional[int]:
    """The TCP (else UDP) port of a service name, as libpcap's pcap_nametoport finds it."""
    for proto in ("tcp", "udp"):
        try:
            return socket.getservbyname(name, proto)
        except OSError:
            continue
    return SERVICES.get(name)
