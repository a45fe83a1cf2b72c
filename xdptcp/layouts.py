"""Wire layouts xdptcp reads, declared once with construct and named as the RFCs name the fields.

These declarations are the documentation of what ``xdptcp.packet`` decodes and the oracle its
tests compare against; the hot path never uses construct (10-25 µs a structure here) but
precompiled ``struct.Struct`` twins in ``xdptcp/packet.py`` and ``xdptcp/pcap.py``.

All network headers are big-endian (network byte order). pcap headers are in the byte order of
the machine that wrote the file: the magic number tells which, so both orders are declared.
"""

from __future__ import annotations

from construct import (
    BitsInteger,
    BitStruct,
    Bytes,
    Flag,
    Int8ub,
    Int16ub,
    Int16ul,
    Int32sb,
    Int32sl,
    Int32ub,
    Int32ul,
    Struct,
    this,
)

from pybpf.enums import int_enum, int_flag


@int_enum
class EtherType:
    """ETH_P_* of include/uapi/linux/if_ether.h."""

    IP = 0x0800
    ARP = 0x0806
    IPV6 = 0x86DD
    P_8021Q = 0x8100  # 802.1Q VLAN tag
    P_8021AD = 0x88A8  # 802.1ad service tag (QinQ outer)
    QINQ1 = 0x9100  # pre-standard QinQ tags tcpdump also walks
    QINQ2 = 0x9200


VLAN_TPIDS = frozenset((EtherType.P_8021Q, EtherType.P_8021AD, EtherType.QINQ1, EtherType.QINQ2))


@int_enum
class IPProto:
    """IPPROTO_* of include/uapi/linux/in.h and in6.h."""

    HOPOPTS = 0
    ICMP = 1
    TCP = 6
    UDP = 17
    ROUTING = 43
    FRAGMENT = 44
    ICMPV6 = 58
    NONE = 59
    DSTOPTS = 60


@int_enum
class TCPOpt:
    """TCP option kinds (IANA "TCP Option Kind Numbers"; tcpdump's tcp.h names)."""

    EOL = 0
    NOP = 1
    MAXSEG = 2
    WSCALE = 3
    SACKOK = 4
    SACK = 5
    ECHO = 6
    ECHOREPLY = 7
    TIMESTAMP = 8
    CC = 11
    CCNEW = 12
    CCECHO = 13
    SIGNATURE = 19  # TCP MD5 signature, RFC 2385
    SCPS = 20
    UTO = 28  # user timeout, RFC 5482
    TCPAO = 29  # RFC 5925
    MPTCP = 30  # RFC 8684
    FASTOPEN = 34  # RFC 7413
    EXPERIMENT2 = 254  # RFC 6994 shared experimental (magic 0xF989 = TFO)


@int_flag
class TCPFlag:
    """The flag bits of the TCP header: the 8 of byte 13, and AE (ex-NS, RFC 3540/9438) as bit 8."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80
    AE = 0x100


# ---- link layer ------------------------------------------------------------------------------

ethhdr = Struct(
    "h_dest" / Bytes(6),
    "h_source" / Bytes(6),
    "h_proto" / Int16ub,
)

# 802.1Q tag as it follows a TPID: the TCI and the encapsulated type.
vlan_tag = Struct(
    "tci" / BitStruct("pcp" / BitsInteger(3), "dei" / Flag, "vid" / BitsInteger(12)),
    "encapsulated_proto" / Int16ub,
)

# ---- IPv4 (RFC 791) --------------------------------------------------------------------------

iphdr = Struct(
    "vi" / BitStruct("version" / BitsInteger(4), "ihl" / BitsInteger(4)),
    "tos" / Int8ub,
    "tot_len" / Int16ub,
    "id" / Int16ub,
    "frag"
    / BitStruct(
        "reserved" / Flag,
        "df" / Flag,
        "mf" / Flag,
        "frag_off" / BitsInteger(13),  # in units of 8 bytes
    ),
    "ttl" / Int8ub,
    "protocol" / Int8ub,
    "check" / Int16ub,
    "saddr" / Bytes(4),
    "daddr" / Bytes(4),
    "options" / Bytes(lambda ctx: max(0, ctx.vi.ihl * 4 - 20)),
)

# ---- IPv6 (RFC 8200) -------------------------------------------------------------------------

ipv6hdr = Struct(
    "vtf"
    / BitStruct(
        "version" / BitsInteger(4),
        "traffic_class" / BitsInteger(8),
        "flow_lbl" / BitsInteger(20),
    ),
    "payload_len" / Int16ub,
    "nexthdr" / Int8ub,
    "hop_limit" / Int8ub,
    "saddr" / Bytes(16),
    "daddr" / Bytes(16),
)

# Hop-by-hop, destination options and routing headers share this shape: length in 8-byte units
# not counting the first 8 bytes.
ipv6_opt_hdr = Struct(
    "nexthdr" / Int8ub,
    "hdrlen" / Int8ub,
    "data" / Bytes(this.hdrlen * 8 + 6),
)

ipv6_rt_hdr = Struct(
    "nexthdr" / Int8ub,
    "hdrlen" / Int8ub,
    "type" / Int8ub,
    "segments_left" / Int8ub,
    "reserved" / Int32ub,
    "addresses" / Bytes(this.hdrlen * 8),
)

frag_hdr = Struct(
    "nexthdr" / Int8ub,
    "reserved" / Int8ub,
    "frag" / BitStruct("frag_off" / BitsInteger(13), "res" / BitsInteger(2), "mf" / Flag),
    "identification" / Int32ub,
)

# ---- TCP (RFC 9293) --------------------------------------------------------------------------

tcphdr = Struct(
    "source" / Int16ub,
    "dest" / Int16ub,
    "seq" / Int32ub,
    "ack_seq" / Int32ub,
    "off"
    / BitStruct(
        "doff" / BitsInteger(4),  # header length in 32-bit words
        "reserved" / BitsInteger(3),
        "ae" / Flag,
        "cwr" / Flag,
        "ece" / Flag,
        "urg" / Flag,
        "ack" / Flag,
        "psh" / Flag,
        "rst" / Flag,
        "syn" / Flag,
        "fin" / Flag,
    ),
    "window" / Int16ub,
    "check" / Int16ub,
    "urg_ptr" / Int16ub,
)

# A TCP option with a length byte (every kind but EOL and NOP, which are one byte).
tcp_option = Struct(
    "kind" / Int8ub,
    "length" / Int8ub,  # counts kind and length bytes
    "data" / Bytes(lambda ctx: max(0, ctx.length - 2)),
)

tcp_option_mss = Struct("mss" / Int16ub)
tcp_option_wscale = Struct("shift" / Int8ub)
tcp_option_timestamp = Struct("tsval" / Int32ub, "tsecr" / Int32ub)
tcp_option_sack_block = Struct("left" / Int32ub, "right" / Int32ub)
tcp_option_uto = Struct("granularity_timeout" / Int16ub)  # low bit: minutes

# ---- pcap (draft-ietf-opsawg-pcap) ----------------------------------------------------------

# The magic numbers live in xdptcp.pcap (which reads and writes files without construct).
from xdptcp.pcap import LINKTYPE_ETHERNET, PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO, PCAPNG_MAGIC  # noqa: E402, F401, I001


def _pcap_file_header(u16, u32, s32):
    return Struct(
        "magic" / u32,
        "version_major" / u16,
        "version_minor" / u16,
        "thiszone" / s32,  # always 0 in practice
        "sigfigs" / u32,  # always 0
        "snaplen" / u32,
        "linktype" / u32,  # low 16 bits; upper bits carry FCS information
    )


def _pcap_record(u32):
    return Struct(
        "ts_sec" / u32,
        "ts_frac" / u32,  # microseconds or nanoseconds, by the file's magic
        "incl_len" / u32,  # bytes stored in the file
        "orig_len" / u32,  # bytes on the wire
        "data" / Bytes(this.incl_len),
    )


pcap_file_header_le = _pcap_file_header(Int16ul, Int32ul, Int32sl)
pcap_file_header_be = _pcap_file_header(Int16ub, Int32ub, Int32sb)
pcap_record_le = _pcap_record(Int32ul)
pcap_record_be = _pcap_record(Int32ub)

__all__ = [
    "EtherType",
    "IPProto",
    "TCPFlag",
    "TCPOpt",
    "VLAN_TPIDS",
    "ethhdr",
    "frag_hdr",
    "iphdr",
    "ipv6_opt_hdr",
    "ipv6_rt_hdr",
    "ipv6hdr",
    "pcap_file_header_be",
    "pcap_file_header_le",
    "pcap_record_be",
    "pcap_record_le",
    "tcp_option",
    "tcphdr",
    "vlan_tag",
]
