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

A frame whose capture ends before the end of its fixed TCP header (tcpdump's ``[|tcp]``, ``IP
[|ip]``, `` [|ip6]``...: ``xdptcp.packet.cut_short``) gives an object with the same keys, in
which what the capture did not reach is null, as an option cut short has ``"values": null``:
``sport``/``dport`` need 4 bytes of TCP, the other TCP fields (``options`` too) its 20, ``src``,
``dst`` and the TTL the fixed IP header, ``ip`` and ``vlan`` the EtherType (and the tags; a live
record may end before them). A damaged file's record whose original length is below its
captured length gives the object of its captured bytes, ``wire_len`` as the record says, its
``seq``/``ack`` the header's. Later fragments and bad-offset or bad-length headers give None
(no TCP header, cut or whole); the text formatter is the one that prints tcpdump's notes on
them. Separators are compact (``,`` and ``:``).
"""

from __future__ import annotations

import json
import struct

from xdptcp.packet import Decoder, Kind, cut_short, iter_options
from xdptcp.tcpdump import (
    ACK,
    D3,
    FLAG_TEXT,
    FLOW_TABLE_MAX,
    OPTION_CACHE_MAX,
    TS_FIRST,
    SeqTracker,
    numbers,
)
from xdptcp.tcpopts import OPTION_NAMES, one_block_layout

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

_TS = struct.Struct("!II")  # timestamp values, SACK blocks
_PORTS = struct.Struct("!HH")
_NOP_NOP_TS = (
    '[{"kind":1,"name":"nop","values":[]},{"kind":1,"name":"nop","values":[]},'
    '{"kind":8,"name":"TS","values":['
)
_DIRECTIONS = {0: "in", 1: "out"}  # xdptcp.record.INGRESS, EGRESS
FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE")
_FLAG_LISTS = tuple(
    json.dumps([n for i, n in enumerate(FLAG_NAMES) if f & (1 << i)], separators=(",", ":"))
    for f in range(512)
)
# "flags" and "flag_names" together, by the flag byte and AE as 0x100.
_FLAGS_JSON = tuple(
    f'"flags":"{FLAG_TEXT[f & 0xFF]}","flag_names":{_FLAG_LISTS[f]},' for f in range(512)
)
M32 = 0xFFFFFFFF


class JsonFormatter:
    """One JSON object per TCP packet (see the module docstring for the fields)."""

    shows_ns = True  # "ts_ns": records must carry nanoseconds
    walks = True  # every line can be made by the record walks (``mapped_lines``)

    def __init__(self, absolute_seq: bool = False) -> None:
        self.absolute_seq = absolute_seq
        self.known_tcp = False  # every frame is TCP, however cut: as TextFormatter's
        self.decoder = Decoder()
        self._addrs = self.decoder._addrs
        self.seqs = SeqTracker()
        self._names: dict[str, str] = {}
        self._flow_raw: dict[bytes, tuple] = {}  # mapped_lines: per direction of a conversation
        self._opt_cache: dict[bytes, str] = {}  # options by their bytes (no SACK blocks)
        self._ts_cache: dict[bytes, str] = {}  # what follows nop,nop,TS, by its bytes
        self._sack_plans: dict[int, tuple] = {}  # the last layout with SACK blocks, by length

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
                return self._not_whole(p, ts_ns, frame, wire_len, ifname, direction)
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
            f'{{"ts":{sec}.{D3[frac // 1000]}{D3[frac % 1000]},"ts_ns":{ts_ns},"ifname":{name},'
            f'"direction":"{_DIRECTIONS.get(direction, "")}",'
            f'"wire_len":{wire_len},"cap_len":{len(frame)},"ip":{ver},'
            f'"src":"{src}","dst":"{dst}","sport":{sport},"dport":{dport},'
            f'"seq":{seq},"ack":{ack},"flags":"{FLAG_TEXT[flags & 0xFF]}",'
            f'"flag_names":{_FLAG_LISTS[flags]},"win":{win},"urg":{urg},'
            f'"options":{_options(opts, sack_base) if opts else "[]"},"tcp_hdr_len":{hlen},'
            f'"payload_len":{tcp_len - hlen},"vlan":[{",".join(map(str, vlans))}],'
            f'"{"ttl" if ver == 4 else "hlim"}":{ttl}}}'
        )

    def damaged(self, ts_ns: int, frame, wire_len: int, cap_len: int) -> Optional[str]:
        """The object for a damaged file's record whose original length (``wire_len``) is
        below its captured length (``cap_len``; ``frame`` its packet as an Ethernet frame), or
        above the longest packet tcpdump takes (``xdptcp.pcap.MAX_RECORD``):
        what its captured bytes decode to, with the record's lengths as it gives them. tcpdump
        prints none of it, so it takes no part in the relative sequence numbers: its seq and
        ack are the header's."""
        n = len(frame)
        line = JsonFormatter(absolute_seq=True).format(ts_ns, frame, n)
        if line is None:
            return None
        return self.record_lengths(line, n, n, wire_len, cap_len)

    @staticmethod
    def record_lengths(line: str, wire_len: int, cap_len: int, rec_wire: int, rec_cap: int) -> str:
        """``line``, the object of a frame of ``wire_len``/``cap_len`` bytes (a record's packet
        seen as an Ethernet frame: ``xdptcp.linktypes.ethernet_view``), with the lengths of the
        record itself, as its file gives them."""
        return line.replace(
            f'"wire_len":{wire_len},"cap_len":{cap_len},',
            f'"wire_len":{rec_wire},"cap_len":{rec_cap},',
            1,
        )

    def _not_whole(self, p, ts_ns, frame, wire_len, ifname, direction) -> Optional[str]:
        """The object for a TCP frame without its whole fixed TCP header: the capture ends in
        the TCP, IP or link-layer headers (``Kind.TRUNCATED``, ``xdptcp.packet.cut_short``).
        The fields it did not reach are null, as an option cut short has ``"values": null``:
        sport and dport need 4 bytes of TCP, the other TCP fields its 20, src, dst and the TTL
        the fixed IP header; ip and vlan only the EtherType (and the tags). None for any
        other frame, and for a damaged record (``damaged``)."""
        if p is not None:
            if p.kind != Kind.TRUNCATED:
                return None  # a later fragment, a data offset below 5: no TCP header to give
            ports = (p.sport, p.dport) if p.l4_off + 4 <= p.snap_end else (None, None)
            found = (p.ip_version, p.vlans, p.src, p.dst, p.ttl, *ports)
        else:
            if wire_len < len(frame):
                return self.damaged(ts_ns, frame, wire_len, len(frame))
            cut = cut_short(frame, wire_len, self.known_tcp)
            if cut is None or cut.frag_offset:
                return None  # (a later fragment: none when whole either)
            found = (cut.ip_version, cut.vlans, cut.src, cut.dst, cut.ttl, None, None)
        ver, vlans, src, dst, ttl, sport, dport = found
        src, dst, ttl, sport, dport = ("null" if v is None else json.dumps(v)
                                       for v in (src, dst, ttl, sport, dport))  # fmt: skip
        vlan = "null" if vlans is None else f"[{','.join(map(str, vlans))}]"
        sec, frac = divmod(ts_ns // 1000, 1_000_000)
        return (
            f'{{"ts":{sec}.{D3[frac // 1000]}{D3[frac % 1000]},"ts_ns":{ts_ns},'
            f'"ifname":{json.dumps(ifname)},"direction":"{_DIRECTIONS.get(direction, "")}",'
            f'"wire_len":{wire_len},"cap_len":{len(frame)},"ip":{ver or "null"},'
            f'"src":{src},"dst":{dst},"sport":{sport},"dport":{dport},"seq":null,"ack":null,'
            '"flags":null,"flag_names":null,"win":null,"urg":null,"options":null,'
            f'"tcp_hdr_len":null,"payload_len":null,"vlan":{vlan},'
            f'"{"hlim" if ver == 6 else "ttl"}":{ttl}}}'
        )

    def mapped_lines(self, mp, keep, count: Optional[int]):
        """Batches of the objects of a mapped pcap's records (``xdptcp.mapped``): the common
        segment made in the loop, from the raw bytes, exactly as ``format`` makes it;
        anything else by ``format``. One function on purpose: it runs once per packet."""
        from xdptcp.mapped import (
            _ETH_8021Q,
            _ETH_IP,
            _ETH_IPV6,
            _FAST4,
            _FAST4X,
            _FAST6,
            _FAST6X,
            _IFINDEX,
            _INNER,
            _REC,
            _REC_ETYPE,
            _TCI,
            DIRECTION_BEFORE,
            IFINDEX_BEFORE,
            damaged,
        )
        from xdptcp.pcap import MAX_RECORD
        from xdptcp.readfile import BATCH

        slot, limit = mp.slot, mp.limit
        # '"ifname":..,"direction":..' by the record's direction byte (a ring's), or [2]: a file's;
        # records of several interfaces (multi) by the direction byte | the ifindex << 2
        ifdirs, ifname, multi = mp.ifdirs, mp.ifname, mp.multi
        names = mp.names if multi else None
        mult = 1 if mp.nano else 1000
        fmt, flows_raw, seq_flows = self.format, self._flow_raw, self.seqs._flows
        absolute, opt_cache, ts_cache = self.absolute_seq, self._opt_cache, self._ts_cache
        sack_plans = self._sack_plans
        options = self._mapped_options
        num = numbers()  # the text of 16-bit fields (window, lengths, TTL)
        lines: list[str] = []
        left = 0 if count is None else max(count, 1)
        want = BATCH if count is None else min(BATCH, max(count, 1))  # lines before a yield
        micro, last_sec = not mp.nano, -1
        frac_end = 1_000_000 if micro else 1_000_000_000
        ts_head = ts_mid = ""  # '{"ts":SEC.' and ',"ts_ns":SEC', made once per second
        ns3 = "000"  # the last three digits of "ts_ns" (a file's in microseconds: 000)
        # what follows "ts_ns": the interface and direction, by the direction byte, to "wire_len"
        # (several interfaces: made as each comes, as ifdirs)
        after_ns = ifdirs.after_ns if multi else tuple(f',{x},"wire_len":' for x in ifdirs)
        d3, flags_json = D3, _FLAGS_JSON
        for mm, pos, end in mp.chunks():
            while pos < end:
                if pos + 30 <= end:
                    sec, frac, incl, orig, etype = _REC_ETYPE(mm, pos)
                elif end - pos >= 16:
                    (sec, frac, incl, orig), etype = _REC(mm, pos), 0
                else:
                    break  # the header goes on in the next chunk, or the file ends there
                at = pos + 16
                stop = at + incl  # the end of the captured bytes
                if incl > limit or stop > end:
                    if incl > MAX_RECORD:
                        if lines:  # the records before it are printed, then the error
                            yield lines
                        raise damaged(mp, mp.base + pos, end - at, incl)
                    if stop > end:
                        break  # the record goes on in the next chunk, or the file ends there
                    # longer than the file's snapshot: libpcap hands it over cut (a file's)
                    pos, d, incl = stop, 2, limit
                    stop = at + incl
                elif slot:  # a ring's slots: a stride, the direction in the program's own header
                    pos, d = pos + slot, mm[at - DIRECTION_BEFORE]
                    if multi:
                        d |= _IFINDEX(mm, at - IFINDEX_BEFORE)[0] << 2
                else:
                    pos, d = stop, 2
                # (the filter's data_end at the captured end: libpcap's bound, also for a
                # damaged record whose wire length is below it)
                if keep is not None and not keep(mm, at, incl, incl, orig):
                    continue
                hlen, ip, vlan = 0, at + 14, "[]"  # ip: where the IP header starts
                if etype == _ETH_8021Q and at + 18 <= stop:  # one 802.1Q tag: 4 bytes more
                    etype, ip = _INNER(mm, at + 16)[0], at + 18
                    vlan = f"[{_TCI(mm, at + 14)[0] & 0xFFF}]"
                if etype == _ETH_IP and ip + 40 <= stop and incl <= orig <= 0xFFFF:  # 16-bit: num
                    if ip + 52 <= end:
                        vihl, ip_len, frag, ttl, proto, raw, seq, ack, offx, flags, win, urg, tsp, \
                            val, ecr = _FAST4X(mm, ip)  # fmt: skip
                    else:
                        vihl, ip_len, frag, ttl, proto, raw, seq, ack, offx, flags, win, urg = (
                            _FAST4(mm, ip)
                        )
                        tsp = None
                    hlen, l4, length = (offx >> 4) * 4, ip + 20, ip_len - 20
                    if vihl != 0x45 or proto != 6 or frag & 0x1FFF or ip + ip_len > at + orig:
                        hlen = 0
                elif etype == _ETH_IPV6 and ip + 60 <= stop and incl <= orig <= 0xFFFF:
                    if ip + 72 <= end:
                        (
                            vtf,
                            length,
                            nh,
                            ttl,
                            raw,
                            seq,
                            ack,
                            offx,
                            flags,
                            win,
                            urg,
                            tsp,
                            val,
                            ecr,
                        ) = _FAST6X(mm, ip)
                    else:
                        vtf, length, nh, ttl, raw, seq, ack, offx, flags, win, urg = _FAST6(mm, ip)
                        tsp = None
                    hlen, l4 = (offx >> 4) * 4, ip + 40
                    if vtf >> 28 != 6 or nh != 6 or not length or ip + length + 40 > at + orig:
                        hlen = 0
                # not the common segment, or a time outside the record fields' usual range
                if hlen < 20 or hlen > length or l4 + hlen > stop or not sec or frac >= frac_end:
                    if orig <= MAX_RECORD:
                        line = fmt(
                            sec * 1_000_000_000 + frac * mult,
                            mm[at:stop],
                            orig,
                            names[d >> 2] if multi else ifname,
                            "",
                            None if d == 2 else d & 3,
                        )
                    else:  # longer than tcpdump takes: as a damaged record (``damaged``)
                        line = self.damaged(sec * 1_000_000_000 + frac * mult, mm[at:stop], orig,
                                            incl)  # fmt: skip
                    if line is None:
                        continue
                else:
                    flow = flows_raw.get(raw)
                    if flow is None:
                        flow = self._raw_flow(raw)
                    head, key, rev, tail = flow
                    base = None
                    if flags & ACK and not absolute:  # SeqTracker.lookup, inlined
                        base = seq_flows.get(key)
                        if base is None or flags & 0x02:
                            if len(seq_flows) >= FLOW_TABLE_MAX:
                                seq_flows.clear()
                            base = ((ack - 1) & M32, seq) if rev else (seq, (ack - 1) & M32)
                            seq_flows[key] = base
                        elif rev:
                            seq, ack = (seq - base[1]) & M32, (ack - base[0]) & M32
                        else:
                            seq, ack = (seq - base[0]) & M32, (ack - base[1]) & M32
                    rest = None  # what follows nop,nop,TS, when the list is found that way
                    if hlen == 20:
                        opts = "[]"
                    elif tsp == TS_FIRST and hlen >= 32:
                        # (nop,nop,TS alone, the usual data segment's: the list ends there)
                        rest = "]" if hlen == 32 else ts_cache.get(mm[l4 + 32 : l4 + hlen])
                        if rest is None:  # one SACK block after it, in a layout seen before?
                            plan = sack_plans.get(hlen - 20)
                            if plan is not None and plan[-1] is not None:
                                # (_plan's fields: 2 and 6 the bytes around the block, 7 and 8
                                # their text, -1 its one_block_layout)
                                _, _, _, b, sl, sr, a = plan[-1].unpack_from(mm, l4 + 20)
                                if b == plan[2] and a == plan[6]:
                                    sb = 0 if base is None else base[0] if rev else base[1]
                                    sl, sr = (sl - sb) & M32, (sr - sb) & M32
                                    rest = f"{plan[7]}[[{sl},{sr}]]{plan[8]}"
                        if rest is None:
                            opts = options(mm[l4 + 20 : l4 + hlen], base, rev)
                    else:
                        opts = opt_cache.get(mm[l4 + 20 : l4 + hlen])
                        if opts is None:
                            opts = options(mm[l4 + 20 : l4 + hlen], base, rev)
                    if sec != last_sec:
                        last_sec = sec
                        ts_head, ts_mid = f'{{"ts":{sec}.', f',"ts_ns":{sec}'
                    if micro:  # the microseconds as two groups of three digits
                        ms, us = d3[frac // 1000], d3[frac % 1000]
                    else:
                        usec = frac // 1000
                        ms, us, ns3 = d3[usec // 1000], d3[usec % 1000], d3[frac % 1000]
                    if rest is not None:  # the same object, the options made in it
                        line = (
                            f"{ts_head}{ms}{us}{ts_mid}{ms}{us}{ns3}{after_ns[d]}"
                            f'{num[orig]},"cap_len":{num[incl]},{head}"seq":{seq},"ack":{ack},'
                            f'{flags_json[flags | (offx & 1) << 8]}"win":{num[win]},'
                            f'"urg":{num[urg]},"options":[{{"kind":1,"name":"nop","values":[]}},'
                            f'{{"kind":1,"name":"nop","values":[]}},{{"kind":8,"name":"TS",'
                            f'"values":[{val},{ecr}]}}{rest},"tcp_hdr_len":{num[hlen]},'
                            f'"payload_len":{num[length - hlen]},"vlan":{vlan},{tail}{num[ttl]}}}'
                        )
                    else:
                        line = (
                            f"{ts_head}{ms}{us}{ts_mid}{ms}{us}{ns3}{after_ns[d]}"
                            f'{num[orig]},"cap_len":{num[incl]},{head}"seq":{seq},"ack":{ack},'
                            f'{flags_json[flags | (offx & 1) << 8]}"win":{num[win]},'
                            f'"urg":{num[urg]},'
                            f'"options":{opts},"tcp_hdr_len":{num[hlen]},'
                            f'"payload_len":{num[length - hlen]},"vlan":{vlan},{tail}{num[ttl]}}}'
                        )
                lines.append(line)
                if len(lines) >= want:  # a whole batch, or the count reached
                    if left > 0:
                        left -= len(lines)
                        if left <= 0:
                            yield lines
                            return
                        want = min(BATCH, left)
                    yield lines
                    lines = []
            mp.rest = pos
        if lines:
            yield lines

    def _raw_flow(self, raw: bytes) -> tuple:
        """Per direction of a conversation: the object's address part, the SeqTracker key and
        direction, the TTL's name; by the raw addresses and ports (12 bytes IPv4, 36 IPv6)."""
        a = 4 if len(raw) == 12 else 16
        saddr, daddr = raw[:a], raw[a : 2 * a]
        sport, dport = _PORTS.unpack_from(raw, 2 * a)
        src, dst = self.decoder.addr(saddr), self.decoder.addr(daddr)
        rev = sport > dport or (sport == dport and saddr > daddr)
        key = (dst, src, dport, sport) if rev else (src, dst, sport, dport)
        head = (
            f'"ip":{4 if a == 4 else 6},"src":"{src}","dst":"{dst}","sport":{sport},'
            f'"dport":{dport},'
        )
        if len(self._flow_raw) >= FLOW_TABLE_MAX:
            self._flow_raw.clear()
        flow = self._flow_raw[raw] = (head, key, rev, '"ttl":' if a == 4 else '"hlim":')
        return flow

    def _mapped_options(self, o: bytes, base: Optional[tuple], rev: bool) -> str:
        """``_options`` where the caches of ``mapped_lines`` miss. The caches learn what does
        not depend on the SACK base (after nop,nop,TS: what follows it, by its bytes); a list
        with one SACK option is remembered by the bytes around its blocks (a plan)."""
        sack_base = 0 if base is None else base[0] if rev else base[1]
        plan = self._sack_plans.get(len(o))
        if plan is not None:
            text = _plan_text(plan, o, sack_base)
            if text is not None:
                return text
        text = _options(o, sack_base)
        sacks = _sack_blocks_at(o)
        ts_first = o[:4] == TS_FIRST and len(o) >= 12
        if not sacks:
            if ts_first:
                if len(self._ts_cache) < OPTION_CACHE_MAX:
                    rest = _options(o[12:], 0) if len(o) > 12 else "[]"
                    self._ts_cache[o[12:]] = ("," + rest[1:]) if rest != "[]" else "]"
            elif len(self._opt_cache) < OPTION_CACHE_MAX:
                self._opt_cache[o] = text
        elif len(sacks) == 1 and (not ts_first or sacks[0][0] >= 12):
            self._sack_plans[len(o)] = _plan(o, text, ts_first, *sacks[0], sack_base)
        return text


def _sack_blocks_at(o: bytes) -> list[tuple[int, int]]:
    """(offset, blocks) of each SACK option whose values print relative to the base."""
    out, i = [], 0
    for kind, data in iter_options(o):
        if kind == 5 and data and len(data) % 8 == 0:
            out.append((i, len(data) // 8))
        i += 1 if kind <= 1 else 2 + len(data or b"")
    return out


def _blocks(o: bytes, at: int, nblocks: int, base: int) -> str:
    if nblocks == 1:  # the usual: one block, without a generator
        a, b = _TS.unpack_from(o, at + 2)
        return f"[[{(a - base) & M32},{(b - base) & M32}]]"
    return "[" + ",".join(
        f"[{(a - base) & M32},{(b - base) & M32}]"
        for a, b in _TS.iter_unpack(o[at + 2 : at + 2 + 8 * nblocks])
    ) + "]"  # fmt: skip


def _ts_head(o: bytes) -> str:
    val, ecr = _TS.unpack_from(o, 4)
    return f"{_NOP_NOP_TS}{val},{ecr}]}}"


def _plan(o: bytes, text: str, ts_first: bool, at: int, nblocks: int, base: int) -> tuple:
    """A list with one SACK option as what stays (the bytes around its blocks, and their text)
    and what varies (the blocks; TS's values when it comes first)."""
    head = _ts_head(o) if ts_first else "["
    item = '{"kind":5,"name":"sack","values":'
    start = text.index(item, len(head)) + len(item)
    stop = start + len(_blocks(o, at, nblocks, base))
    a, tail = (12 if ts_first else 0), at + 2 + 8 * nblocks
    return (ts_first, a, o[a : at + 2], at, nblocks, tail, o[tail:], text[len(head) : start],
            text[stop:], one_block_layout(o, at, ts_first, nblocks))  # fmt: skip


def _plan_text(plan: tuple, o: bytes, base: int) -> Optional[str]:
    """The options of ``o`` by ``plan``; None when ``o`` is not of its layout."""
    ts_first, a, before, at, nblocks, tail, after, before_text, after_text, one = plan
    if one is not None:  # the usual SACK segment: nop,nop,TS first, one block
        tsp, val, ecr, b, s, e, f = one.unpack(o)
        if tsp != TS_FIRST or b != before or f != after:
            return None
        s, e = (s - base) & M32, (e - base) & M32
        return f"{_NOP_NOP_TS}{val},{ecr}]}}{before_text}[[{s},{e}]]{after_text}"
    if o[a : at + 2] != before or o[tail:] != after or (ts_first and o[:4] != TS_FIRST):
        return None
    head = _ts_head(o) if ts_first else "["
    return f"{head}{before_text}{_blocks(o, at, nblocks, base)}{after_text}"


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
