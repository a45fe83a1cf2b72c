"""JSON output: one object per TCP packet, one line each, keys always in this order.

``ts``
    seconds since the epoch, a float (microsecond precision; nanoseconds are in ``ts_ns``)
``ts_ns``
    nanoseconds since the epoch, an integer
``ifname``
    the interface ("" when reading a file)
``direction``
    ``"in"`` (arrived, seen by XDP), ``"out"`` (left, seen by the tc egress program), ``""``
    when unknown (reading a file)
``wire_len``, ``cap_len``
    frame length on the wire, bytes captured
``ip``
    4 or 6
``src``, ``dst``
    addresses as tcpdump prints them (IPv6 in RFC 5952 form)
``sport``, ``dport``, ``seq``, ``ack``, ``win``, ``urg``
    TCP header fields; ``seq``/``ack`` relative per conversation exactly as tcpdump computes them
    unless ``absolute_seq`` (-S)
``flags``
    tcpdump's letters (``"S."``, ``"none"``)
``flag_names``
    the set flags' names in header order, ``["FIN","SYN","RST","PSH","ACK","URG","ECE","CWR","AE"]``
``options``
    a list of ``{"kind": n, "name": tcpdump's name, "values": [...]}``: mss/wscale/uto
    ``[n]``, TS ``[val, ecr]``, sack ``[[left, right], ...]`` (relative like seq), md5/tfo/
    mptcp/unknown kinds ``["hex"]`` of their data, nop/eol/sackOK ``[]``. A malformed option
    (length below 2 or past the header) ends the list with ``"values": null``.
``tcp_hdr_len``, ``payload_len``
    TCP header length (data offset * 4) and payload length by the IP header
``vlan``
    VLAN ids, outermost first (``[]`` untagged)
``ttl`` (IPv4) or ``hlim`` (IPv6)
    time to live / hop limit

Only frames with a whole fixed TCP header give an object (non-first fragments, truncated or
bad-offset headers give None); the text formatter is the one that prints tcpdump's notes on them.
Separators are compact (``,`` and ``:``).
"""

from __future__ import annotations

import json
import struct
from typing import Optional

from xdptcp.packet import Decoder, Kind, iter_options
from xdptcp.tcpdump import ACK, FLAG_TEXT, SeqTracker
from xdptcp.tcpopts import OPTION_NAMES

_TS = struct.Struct("!II")  # timestamp values, SACK blocks
_DIRECTIONS = {0: "in", 1: "out"}  # xdptcp.record.INGRESS, EGRESS
FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE")
_FLAG_LISTS = tuple(
    json.dumps([n for i, n in enumerate(FLAG_NAMES) if f & (1 << i)], separators=(",", ":"))
    for f in range(512)
)
M32 = 0xFFFFFFFF


class JsonFormatter:
    """One JSON object per TCP packet (see the module docstring for the fields)."""

    def __init__(self, absolute_seq: bool = False) -> None:
        self.absolute_seq = absolute_seq
        self.decoder = Decoder()
        self._addrs = self.decoder._addrs
        self.seqs = SeqTracker()
        self._names: dict[str, str] = {}

    def format(
        self,
        ts_ns: int,
        frame,
        wire_len: int,
        ifname: str = "",
        prefix: str = "",
        direction: Optional[int] = None,
    ) -> Optional[str]:
        r = self.decoder.fast(frame, wire_len)
        if r is not None:
            ver, saddr, daddr, ttl, vlans, l4, tcp_len, hlen, sport, dport, seq, ack, offx, \
                flags, win, urg = r  # fmt: skip
            addrs = self._addrs
            src = addrs.get(saddr) or self.decoder.addr(saddr)
            dst = addrs.get(daddr) or self.decoder.addr(daddr)
            rel = None
            if flags & ACK and not self.absolute_seq:
                rel = self.seqs.lookup(src, dst, sport, dport, seq, ack, flags, saddr > daddr)
            opts = bytes(frame[l4 + 20 : l4 + hlen]) if hlen > 20 else b""
            flags |= (offx & 1) << 8
        else:
            p = self.decoder.decode(frame, wire_len)
            if p is None or p.kind != Kind.TCP:
                return None
            ver, src, dst, ttl, vlans, tcp_len, hlen, opts = (
                p.ip_version, p.src, p.dst, p.ttl, p.vlans, p.tcp_len, p.tcp_hdr_len, p.options
            )  # fmt: skip
            sport, dport, seq, ack, flags, win, urg = p.sport, p.dport, p.seq, p.ack, p.flags, \
                p.win, p.urg  # fmt: skip
            rel = None
            if flags & ACK and not self.absolute_seq:
                rel = self.seqs.relative(p, frame)
        sack_base = 0
        if rel is not None:
            seq, ack, rev, thseq, thack = rel
            sack_base = thseq if rev else thack
        name = self._names.get(ifname)
        if name is None:
            name = self._names[ifname] = json.dumps(ifname)
        sec, frac = divmod(ts_ns // 1000, 1_000_000)
        return (
            f'{{"ts":{sec}.{frac:06d},"ts_ns":{ts_ns},"ifname":{name},'
            f'"direction":"{_DIRECTIONS.get(direction, "")}",'
            f'"wire_len":{wire_len},"cap_len":{len(frame)},"ip":{ver},'
            f'"src":"{src}","dst":"{dst}","sport":{sport},"dport":{dport},'
            f'"seq":{seq},"ack":{ack},"flags":"{FLAG_TEXT[flags & 0xFF]}",'
            f'"flag_names":{_FLAG_LISTS[flags]},"win":{win},"urg":{urg},'
            f'"options":{_options(opts, sack_base) if opts else "[]"},"tcp_hdr_len":{hlen},'
            f'"payload_len":{tcp_len - hlen},"vlan":[{",".join(map(str, vlans))}],'
            f'"{"ttl" if ver == 4 else "hlim"}":{ttl}}}'
        )


def _options(raw: bytes, sack_base: int) -> str:
    if raw == b"\x01\x01\x08\x0a" + raw[4:] and len(raw) == 12:
        val, ecr = _TS.unpack_from(raw, 4)
        return (
            '[{"kind":1,"name":"nop","values":[]},{"kind":1,"name":"nop","values":[]},'
            f'{{"kind":8,"name":"TS","values":[{val},{ecr}]}}]'
        )
    items = []
    for kind, data in iter_options(raw):
        name = OPTION_NAMES.get(kind, f"unknown-{kind}")
        items.append(f'{{"kind":{kind},"name":"{name}","values":{_values(kind, data, sack_base)}}}')
    return "[" + ",".join(items) + "]"


def _values(kind: int, data: Optional[bytes], sack_base: int) -> str:
    if data is None:
        return "null"
    n = len(data)
    if kind in (2, 28) and n == 2 or kind == 3 and n == 1:
        return f"[{int.from_bytes(data, 'big')}]"
    if kind == 8 and n == 8:
        return "[{},{}]".format(*_TS.unpack(data))
    if kind == 5 and n % 8 == 0:
        blocks = (_TS.unpack_from(data, i) for i in range(0, n, 8))
        return (
            "["
            + ",".join(f"[{(a - sack_base) & M32},{(b - sack_base) & M32}]" for a, b in blocks)
            + "]"
        )
    if not data:
        return "[]"
    return f'["{data.hex()}"]'
