"""Text output identical to ``tcpdump -nn`` (4.99) for TCP over IPv4/IPv6.

``TextFormatter.format(ts_ns, frame, wire_len, ifname, direction)`` returns tcpdump's line for the
frame (without the newline), or None when the frame is not TCP as ``xdptcp.packet`` decodes it.

What tcpdump does, and so do we (print-tcp.c unless said otherwise):

- Relative sequence numbers: a conversation is keyed by both addresses and ports in one order
  (the lower port first; equal ports: the lower source address). Only segments with ACK set take
  part. The first ACK segment seen of a conversation, or any SYN, records the base and is printed
  absolute; later ones print ``seq - base``, ``ack - base`` and SACK blocks relative to the
  peer's base. ``-S`` (``absolute_seq``) prints the header's values.
- ``seq a:b`` appears when there is payload, or SYN/FIN/RST is set; ``length`` is the TCP payload
  length computed from the IP length, never from the capture.
- Options print as tcpdump spells them, including its checks: an option whose length byte is
  below 2 or beyond the header prints ``[bad opt]`` and ends the line, a length different from
  the kind's prints ``[len N]``, options cut by the capture end in `` [|tcp]``.
- A non-first IPv4 fragment prints ``IP a > b: ip-proto-6``; a non-first IPv6 fragment
  ``IP6 a > b: frag (off|len)``. IPv6 extension headers print their names (``HBH``, ``DSTOPT``,
  ``RT6 (...)``, ``frag (0|n)``) before the ports, and then tcpdump prints the ports without
  addresses.
- VLAN tags are not printed (tcpdump shows them only with -e).
- A frame whose capture ends in its link-layer or IP headers prints tcpdump's note (``IP
  [|ip]``, `` [|ip6]``, ``IP  [remaining caplen(20) < header length(28)] [|ip]``...), when
  it is TCP as far as its bytes go (``known_tcp``: whatever they hold), and a damaged file's
  record whose original length is below its captured length, tcpdump's ``[Invalid header:
  len(N) < caplen(M)]`` (``xdptcp.packet``).

Timestamps print as tcpdump prints them, in the modes of -t to -ttttt (``xdptcp.clock``).
``show_ifname`` puts the interface and the direction first as ``tcpdump -i any`` does (``%-5s In  ``
for what arrived, ``%-5s Out `` for what left); on a single interface tcpdump prints no direction,
and neither do we.
"""

from __future__ import annotations

import struct
import time

from xdptcp.appproto import WORDLESS, decoder, note
from xdptcp.clock import D3, Clock
from xdptcp.ip6ext import ext_text
from xdptcp.packet import Decoder, Kind, Packet, invalid_header_text, malformed_tcp_text
from xdptcp.payload import Jumped, LineEnds
from xdptcp.pcap import MAX_RECORD, record_stamp
from xdptcp.tcpopts import (
    TS_FIRST,
    fast_options,
    fast_options_sack,
    options_text,
    sack_plan,
    sack_plan_text,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from xdptcp.hexdump import Dump

M32 = 0xFFFFFFFF
SYN, FIN, RST, ACK, URG = 0x02, 0x01, 0x04, 0x10, 0x20

# bittok2str_nosep(tcp_flag_values): in this order, "none" when no bit is set.
_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
                 (0x40, "E"), (0x80, "W"))  # fmt: skip
FLAG_TEXT = tuple("".join(c for bit, c in _FLAG_LETTERS if f & bit) or "none" for f in range(256))
FLAG_CLOSE = tuple(t + "]" for t in FLAG_TEXT)


_NUMBERS: list[tuple[str, ...]] = []
_NUMBERS_MAKER: list = []  # the thread making the table (``make_numbers_early``), once started


def numbers() -> tuple[str, ...]:
    """``str(i)`` for every 16-bit ``i`` (4 MB; 5 ms to make on one host, 15-20 ms on a slower
    one): in an f-string, indexing it costs a quarter of formatting the int (measured: 15 against
    75 ns). Made here on first use, unless ``make_numbers_early`` has it made already."""
    if not _NUMBERS:
        if _NUMBERS_MAKER:
            _NUMBERS_MAKER[0].join()
        else:
            _make_numbers()
    return _NUMBERS[0]


def make_numbers_early() -> None:
    """Have ``numbers()`` made in a thread, for a live capture whose start waits in the kernel
    (verifying, attaching): its memory is then taken before the first packet, not at it, and
    its milliseconds are spent while the starting thread waits without the GIL."""
    if not _NUMBERS and not _NUMBERS_MAKER:
        import threading

        _NUMBERS_MAKER.append(threading.Thread(target=_make_numbers, name="xdptcp-numbers"))
        _NUMBERS_MAKER[0].start()


def _make_numbers() -> None:
    # A slice at a time: a thread that makes them in the background lets go of the GIL
    # between slices, where one call over all 65,536 would hold it for all of them.
    parts: list[str] = []
    for low in range(0, 1 << 16, 2048):
        parts += map(str, range(low, low + 2048))
    _NUMBERS.append(tuple(parts))


_TS = struct.Struct("!II")
_PORTS = struct.Struct("!HH")
OPTION_CACHE_MAX = 4096  # option texts remembered by their bytes, per formatter

FLOW_TABLE_MAX = 1 << 20  # conversations remembered; tcpdump never forgets, a live capture must


class SeqTracker:
    """tcpdump's table of initial sequence numbers (tcp_seq_hash4/6 in print-tcp.c)."""

    def __init__(self) -> None:
        self._flows: dict[tuple, tuple[int, int]] = {}

    def relative(self, p: Packet, frame) -> tuple[int, int, int, int, int]:
        """(seq, ack, rev, thseq, thack) as tcp_print computes them for an ACK segment."""
        src_above = False
        if p.sport == p.dport:
            a, n = (12, 4) if p.ip_version == 4 else (8, 16)
            at = p.l3_off + a
            src_above = bytes(frame[at : at + n]) > bytes(frame[at + n : at + 2 * n])
        return self.lookup(p.src, p.dst, p.sport, p.dport, p.seq, p.ack, p.flags, src_above)

    def lookup(self, src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
               src_above: bool) -> tuple[int, int, int, int, int]:  # fmt: skip
        """The conversation's bases, recorded or applied; ``src_above``: the raw source
        address compares above the destination (tcpdump's tie-break for equal ports)."""
        rev = sport > dport or (sport == dport and src_above)
        key = (dst, src, dport, sport) if rev else (src, dst, sport, dport)
        flows = self._flows
        base = flows.get(key)
        if base is None or flags & SYN:
            if len(flows) >= FLOW_TABLE_MAX:
                flows.clear()
            base = ((ack - 1) & M32, seq) if rev else (seq, (ack - 1) & M32)
            flows[key] = base
        elif rev:
            seq, ack = (seq - base[1]) & M32, (ack - base[0]) & M32
        else:
            seq, ack = (seq - base[0]) & M32, (ack - base[1]) & M32
        return seq, ack, rev, base[0], base[1]


def walked(dump: Optional[Dump], link_level: bool, quiet: bool, verbose: int, number: bool) -> bool:
    """Whether the record walks (``TextFormatter.mapped_lines``) can make the text lines these
    options ask for: not when a dump follows each line, nor for -e's, -q's, -v's or numbered
    lines, which are made record by record. (Lines that start with the interface, as tcpdump
    -i any's do, are walked from the ring, whose records carry it; a file's are not.)"""
    return not (dump is not None or link_level or quiet or verbose or number)


class TextFormatter:
    """tcpdump -nn lines for TCP frames; keeps tcpdump's per-conversation state."""

    def __init__(
        self,
        ts_mode: str = "default",
        absolute_seq: bool = False,
        show_ifname: bool = False,
        nano: bool = False,
        payload_elided: bool = False,
        dump=None,
        link_level: bool = False,
        quiet: bool = False,
        verbose: int = 0,
        number: bool = False,
        verify: bool = True,
    ) -> None:
        """``payload_elided``: frames were cut after the TCP header by the capture itself (xdptcp's
        default), not by a snaplen the user chose, so print what tcpdump prints for the whole
        packet (only the MD5 option's words depend on it). ``dump``: an ``xdptcp.hexdump.Dump``
        (-x, -X, -A), which whoever has the packet's own bytes adds after its line.
        ``link_level`` (-e): each line starts with the link-level header's text
        (``xdptcp.linklevel``), and the network layer's then leaves out its ``IP `` or ``IP6 ``
        as tcpdump's does. ``quiet`` (-q): after the addresses and ports, only ``tcp N`` (N the
        payload's length), as tcp_print() with -q; with -e, the link layer's shorter text.
        ``verbose`` (-v, -vv, -vvv: 1 to 3): the IP header's fields, the TCP checksum checked,
        a reset's text and the text protocols' every line, as tcpdump's (``xdptcp.verbose``);
        ``verify`` False (-K): no checksum is checked. ``number`` (-#): each line starts with the
        packet's number, from 1, as tcpdump's ``%5u  ``."""
        self.payload_elided = payload_elided
        self.quiet = quiet
        self.verbose = verbose
        self.verify = verify
        if verbose:
            from xdptcp import verbose as _verbose

            self._v = _verbose
        self.dump = dump
        self.link_level = link_level
        if link_level:
            from xdptcp.linklevel import ethernet

            self._ethernet = ethernet
        if show_ifname:  # tcpdump -i any's lines: the cooked header each packet then has
            from xdptcp.linklevel import AnyDevice

            self.any_device = AnyDevice()
        self.walks = walked(dump, link_level, quiet, verbose, number)
        # the walk's any_prefix texts, by (interface, destination address, direction)
        self._any_prefixes: dict[tuple, str] = {}
        if number:
            self._number(self.format, self.damaged)
        # Every frame is TCP, whatever its capture holds: a live capture's, whose program found
        # it TCP on the whole frame before cutting it to the snap length (``TextSink`` sets it;
        # see ``xdptcp.packet.cut_short``). Off, a frame is TCP as libpcap's ``tcp`` reads it.
        self.known_tcp = False
        self.clock = Clock(ts_mode, nano)
        self.shows_ns = nano  # records must carry nanoseconds
        self._stamp = self.clock.stamp
        self.absolute_seq = absolute_seq
        self.show_ifname = show_ifname
        self.decoder = Decoder()
        self.seqs = SeqTracker()
        self._seq_flows = self.seqs._flows
        self._flow_text: dict[tuple, tuple] = {}
        self._flow_raw: dict[bytes, tuple] = {}  # the same, by raw addresses and ports
        self._opt_cache: dict[bytes, str] = {}  # option text by the option bytes (no SACK)
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
        """tcpdump's line for an Ethernet frame; ``prefix`` is what tcpdump prints before the
        network layer for the link type the frame came from (``xdptcp.linktypes``; with
        ``link_level``, ``xdptcp.linklevel``'s text, and empty for the frame's own Ethernet
        header, which is then printed from the frame); ``direction``: 0 arrived (In), 1 left
        (Out) — xdptcp.record.INGRESS/EGRESS."""
        body = None if self.quiet or self.verbose else self._fast(frame, wire_len)
        if body is None:
            p = self.decoder.decode(frame, wire_len)
            if p is None:
                if wire_len < len(frame):
                    return invalid_header_text(frame, wire_len, len(frame))  # (``damaged``)
                body = malformed_tcp_text(frame, wire_len, self.known_tcp, self.verbose)
                if body is None:
                    return None
            else:
                body = self.body(p, frame)
        if self.link_level:
            return self._link_level_line(ts_ns, frame, wire_len, ifname, prefix, direction, body)
        if self.show_ifname:
            line = self._stamp(ts_ns) + self.any_prefix(ifname, frame, direction) + body
        else:
            line = self._stamp(ts_ns) + prefix + body
        return Jumped(line) if body.__class__ is Jumped else line  # (for -x, -X, -A)

    def any_prefix(self, ifname: str, frame, direction: Optional[int]) -> str:
        """What follows the time on a line of several interfaces, as tcpdump -i any prints it:
        the interface and the packet type (which only the frame's first 6 bytes, its
        destination, and the direction decide)."""
        return f"{ifname:<5} {self.any_device.direction(ifname, frame, direction)} "

    def _link_level_line(self, ts_ns, frame, wire_len, ifname, prefix, direction, body) -> str:
        """``format``'s line with -e: the link-level header's text, then the network layer's
        without the ``IP `` or ``IP6 `` that ip_print and ip6_print leave out with -e."""
        if body.startswith("IP "):
            body = Jumped(body[3:]) if body.__class__ is Jumped else body[3:]
        elif body.startswith("IP6 "):
            body = Jumped(body[4:]) if body.__class__ is Jumped else body[4:]
        if self.show_ifname:
            kind = self.any_device.direction(ifname, frame, direction)
            link = self.any_device.text(ifname, frame, wire_len, direction, self.quiet)
            prefix = f"{ifname:<5} {kind} {link}"
        elif not prefix:
            prefix = self._ethernet(frame, wire_len, self.quiet)
        line = self._stamp(ts_ns) + prefix + body
        return Jumped(line) if body.__class__ is Jumped else line

    def _number(self, format_line, damaged_line) -> None:
        """-#: ``format`` and ``damaged`` give their lines the packet's number first."""
        shown = 0

        def numbered(make):
            def line(*args):
                nonlocal shown
                text = make(*args)
                if text is None:
                    return None
                shown += 1
                said = f"{shown:5d}  {text}"
                return Jumped(said) if text.__class__ is Jumped else said

            return line

        self.format = numbered(format_line)
        self.damaged = numbered(damaged_line)

    def link_prefix(self, linktype: int, data, wire_len: int, view) -> str:
        """What this formatter's lines print before the network layer of a record of another
        link type than Ethernet (``view``: as ``linktypes.ethernet_view`` read it)."""
        if not (self.link_level or self.quiet):
            return view.prefix + view.tags
        from xdptcp.linklevel import other

        return other(linktype, data, wire_len, view, self.link_level, self.quiet)

    def damaged(self, ts_ns: int, frame, wire_len: int, cap_len: int) -> Optional[str]:
        """The line for a damaged file's record whose original length (``wire_len``) is below
        its captured length (``cap_len``; ``frame`` its packet as an Ethernet frame), or above
        ``MAX_RECORD``: what tcpdump prints in its place, ``[Invalid header: len(N) <
        caplen(M)]`` (``len(N) > 262144``), when the bytes are TCP. No timestamp: tcpdump
        prints none (nor is the record a ``-ttt`` reference)."""
        return invalid_header_text(frame, wire_len, cap_len)

    @staticmethod
    def record_lengths(line: str, wire_len: int, cap_len: int, rec_wire: int, rec_cap: int) -> str:
        """``line`` as it is: tcpdump's lines give no frame lengths (``JsonFormatter`` puts a
        record's own in place of its Ethernet view's)."""
        return line

    def _fast(self, frame, wire_len: int) -> Optional[str]:
        """The common segment (``Decoder.fast``) with no options or nop,nop,TS, in one pass.
        None: use the general path. A test runs both on every frame it has.
        """
        r = self.decoder.fast(frame, wire_len)
        if r is None:
            return None
        ver, saddr, daddr, _, _, l4, length, hlen, sport, dport, seq, ack, _, flags, win, urg = r
        if hlen == 20:
            opts = ""
        elif hlen == 32 and frame[l4 + 20 : l4 + 24] == b"\x01\x01\x08\x0a":
            val, ecr = _TS.unpack_from(frame, l4 + 24)
            opts = f", options [nop,nop,TS val {val} ecr {ecr}]"
        else:
            opts = None  # other well-formed options: after the sequence numbers (SACK needs them)
        # Per direction of a conversation: the line's start and the SeqTracker key, made once.
        flow = self._flow_text.get((saddr, daddr, sport, dport))
        if flow is None:
            flow = self._new_flow(ver, saddr, daddr, sport, dport)
        head, key, rev, app = flow
        if opts is None:
            # SACK blocks print relative to the conversation's bases: peek at them (the
            # table changes below, once we know this path prints the line).
            sack_base = 0
            if flags & ACK and not self.absolute_seq:
                base = self._seq_flows.get(key)
                if base is None or flags & SYN:
                    base = ((ack - 1) & M32, seq) if rev else (seq, (ack - 1) & M32)
                sack_base = base[0] if rev else base[1]
            opts = fast_options(bytes(frame[l4 + 20 : l4 + hlen]), hlen - 20, sack_base)
            if opts is None:
                return None
        if flags & ACK and not self.absolute_seq:
            # SeqTracker.lookup, inlined: this runs for nearly every packet of a capture.
            flows = self._seq_flows
            base = flows.get(key)
            if base is None or flags & SYN:
                if len(flows) >= FLOW_TABLE_MAX:
                    flows.clear()
                flows[key] = ((ack - 1) & M32, seq) if rev else (seq, (ack - 1) & M32)
            elif rev:
                seq, ack = (seq - base[1]) & M32, (ack - base[0]) & M32
            else:
                seq, ack = (seq - base[0]) & M32, (ack - base[1]) & M32
        length -= hlen
        if length > 0:
            seqs = f", seq {seq}:{(seq + length) & M32}"
        elif flags & 0x07:
            seqs = f", seq {seq}"
        else:
            seqs = ""
        line = (
            f"{head}{FLAG_TEXT[flags]}]{seqs}{f', ack {ack}' if flags & ACK else ''}, "
            f"win {win}{f', urg {urg}' if flags & URG else ''}{opts}, length {length}"
        )
        if app is not None and length > 0:
            said = note(app, frame, l4 + hlen, min(len(frame), l4 + hlen + length), length)
            return Jumped(line + said) if said.__class__ is Jumped else line + said
        return line

    def _new_flow(self, ver: int, saddr: bytes, daddr: bytes, sport: int, dport: int) -> tuple:
        if len(self._flow_text) >= FLOW_TABLE_MAX:
            self._flow_text.clear()
        src, dst = self.decoder.addr(saddr), self.decoder.addr(daddr)
        rev = sport > dport or (sport == dport and saddr > daddr)
        key = (dst, src, dport, sport) if rev else (src, dst, sport, dport)
        head = f"{'IP' if ver == 4 else 'IP6'} {src}.{sport} > {dst}.{dport}: Flags ["
        app = decoder(sport, dport)  # the payload's decoder (xdptcp.appproto), or None
        flow = self._flow_text[(saddr, daddr, sport, dport)] = (head, key, rev, app)
        return flow

    def mapped_lines(self, mp, keep, count: Optional[int]):
        """Batches of the lines of a mapped pcap's records (``xdptcp.mapped``): the common
        segment made in the loop, from the raw bytes, exactly as ``_fast`` makes it; anything
        else by ``format``. One function on purpose: it runs once per packet, and a call costs
        more than most of what it does."""
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
            DIRECTION_BEFORE,
            IFINDEX_BEFORE,
            damaged,
        )
        from xdptcp.readfile import BATCH

        stamp = record_stamp
        slot, nano, limit = mp.slot, mp.nano, mp.limit
        inline_clock = self.clock.mode == "default" and not self.clock.nano and not mp.nano
        # Lines that start with the interface: walked from a ring whose records name theirs
        # (multi: the interface and packet type after the time, ``any_prefix``), else all by
        # ``format``. name and d: the record's interface and direction, for ``format``.
        multi = self.show_ifname and mp.multi
        several = self.show_ifname and not multi
        names, name, d, pre = (mp.names if multi else None), "", None, ""
        prefixes = self._any_prefixes
        fmt, stamp_of, options = self.format, self._stamp, self._mapped_options
        flows_raw, seq_flows, absolute = self._flow_raw, self._seq_flows, self.absolute_seq
        opt_cache, ts_cache, sack_plans = self._opt_cache, self._ts_cache, self._sack_plans
        num = numbers()  # the text of 16-bit fields (window, payload length)
        wordless = WORDLESS
        lines: list[str] = []
        left, last_sec, sec_dot = (0 if count is None else max(count, 1)), -1, ""
        want = BATCH if count is None else min(BATCH, max(count, 1))  # lines before a yield
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
                    pos, incl = stop, limit
                    stop = at + incl
                else:  # ring slots have a stride; a file's records none
                    pos = pos + slot if slot else stop
                if multi:  # the program's own header: the direction and the interface
                    d = mm[at - DIRECTION_BEFORE]
                    name = names[_IFINDEX(mm, at - IFINDEX_BEFORE)[0]]
                # (the filter's data_end at the captured end: libpcap's bound, also for a
                # damaged record whose wire length is below it)
                if keep is not None and not keep(mm, at, incl, incl, orig):
                    continue
                hlen, ip = 0, at + 14  # ip: where the IP header starts
                if etype == _ETH_8021Q and at + 18 <= stop:  # one 802.1Q tag: 4 bytes more
                    etype, ip = 0 if multi else _INNER(mm, at + 16)[0], at + 18
                if etype == _ETH_IP and ip + 40 <= stop and incl <= orig <= MAX_RECORD:
                    if ip + 52 <= end:
                        vihl, ip_len, frag, _, proto, raw, seq, ack, offx, flags, win, urg, \
                            tsp, val, ecr = _FAST4X(mm, ip)  # fmt: skip
                    else:
                        vihl, ip_len, frag, _, proto, raw, seq, ack, offx, flags, win, urg = _FAST4(
                            mm, ip
                        )
                        tsp = None
                    hlen, l4, length = (offx >> 4) * 4, ip + 20, ip_len - 20
                    if vihl != 0x45 or proto != 6 or frag & 0x1FFF or ip + ip_len > at + orig:
                        hlen = 0
                elif etype == _ETH_IPV6 and ip + 60 <= stop and incl <= orig <= MAX_RECORD:
                    if ip + 72 <= end:
                        vtf, length, nh, _, raw, seq, ack, offx, flags, win, urg, tsp, val, ecr = (
                            _FAST6X(mm, ip)
                        )
                    else:
                        vtf, length, nh, _, raw, seq, ack, offx, flags, win, urg = _FAST6(mm, ip)
                        tsp = None
                    hlen, l4 = (offx >> 4) * 4, ip + 40
                    if vtf >> 28 != 6 or nh != 6 or not length or ip + length + 40 > at + orig:
                        hlen = 0
                if hlen < 20 or hlen > length or l4 + hlen > stop or several:  # not the common one
                    if orig <= MAX_RECORD:
                        line = fmt(stamp(sec, frac, nano), mm[at:stop], orig, name, "", d)
                    else:  # longer than tcpdump takes: its note in the packet's place
                        line = self.damaged(0, mm[at:stop], orig, incl)
                    if line is None:
                        continue
                else:
                    flow = flows_raw.get(raw)
                    if flow is None:
                        flow = self._raw_flow(raw)
                    head, key, rev, app = flow
                    if hlen == 20:
                        opts = ""
                    else:
                        if tsp == TS_FIRST and hlen >= 32:
                            # (nop,nop,TS alone, the usual data segment's: the list ends)
                            rest = "]" if hlen == 32 else ts_cache.get(mm[l4 + 32 : l4 + hlen])
                            opts = None
                            if rest is not None:
                                opts = f", options [nop,nop,TS val {val} ecr {ecr}{rest}"
                            else:  # one SACK block after it, in a layout seen before?
                                plan = sack_plans.get(hlen - 20)
                                if plan is not None and plan[-1] is not None:
                                    # (the sack_plan's fields: 2 and 6 the bytes around the
                                    # block, 7 and 8 their text, -1 its one_block_layout)
                                    _, _, _, b, sl, sr, a = plan[-1].unpack_from(mm, l4 + 20)
                                    if b == plan[2] and a == plan[6]:
                                        sb = 0  # the base as _mapped_options takes it
                                        if flags & ACK and not absolute:
                                            sb = seq_flows.get(key)
                                            if sb is None or flags & SYN:
                                                sb = (ack - 1) & M32
                                            else:
                                                sb = sb[0] if rev else sb[1]
                                        opts = (
                                            f", options [nop,nop,TS val {val} ecr {ecr}{plan[7]}"
                                            f"{{{(sl - sb) & M32}:{(sr - sb) & M32}}}{plan[8]}"
                                        )
                        else:
                            opts = opt_cache.get(mm[l4 + 20 : l4 + hlen])
                        if opts is None:
                            opts = options(mm[l4 + 20 : l4 + hlen], seq, ack, flags, key, rev)
                            if opts is None:
                                line = fmt(stamp(sec, frac, nano), mm[at:stop], orig, name, "", d)
                                if line is None:
                                    continue
                                opts = False
                    if opts is not False:
                        if multi:
                            kind = (name, mm[at : at + 6], d)  # the packet type: to whom, which way
                            pre = prefixes.get(kind)
                            if pre is None:
                                if len(prefixes) >= 4096:
                                    prefixes.clear()
                                pre = prefixes[kind] = self.any_prefix(*kind)
                        if flags & ACK and not absolute:  # SeqTracker.lookup, as in _fast
                            base = seq_flows.get(key)
                            if base is None or flags & SYN:
                                if len(seq_flows) >= FLOW_TABLE_MAX:
                                    seq_flows.clear()
                                seq_flows[key] = (
                                    ((ack - 1) & M32, seq) if rev else (seq, (ack - 1) & M32)
                                )
                            elif rev:
                                seq, ack = (seq - base[1]) & M32, (ack - base[0]) & M32
                            else:
                                seq, ack = (seq - base[0]) & M32, (ack - base[1]) & M32
                        length -= hlen
                        if length > 0:
                            seqs = f", seq {seq}:{(seq + length) & M32}"
                        elif flags & 0x07:
                            seqs = f", seq {seq}"
                        else:
                            seqs = ""
                        # (a fraction field of a second or more, or seconds tcpdump cannot
                        # convert: by the clock, as tcpdump prints them)
                        if (
                            not inline_clock
                            or frac >= 1_000_000
                            or sec >= 0x80000000
                            or (flags & URG)
                        ):
                            line = (
                                stamp_of(stamp(sec, frac, nano))
                                + pre
                                + _line(head, flags, seqs, ack, win, urg, opts, length)
                            )
                        else:
                            if sec != last_sec:
                                last_sec = sec
                                sec_dot = time.strftime("%H:%M:%S.", time.localtime(sec))
                            if flags & ACK:
                                line = (
                                    f"{sec_dot}{D3[frac // 1000]}{D3[frac % 1000]} {pre}{head}"
                                    f"{FLAG_CLOSE[flags]}{seqs}, ack {ack}, win {num[win]}{opts}, "
                                    f"length {num[length]}"
                                )
                            else:
                                line = (
                                    f"{sec_dot}{D3[frac // 1000]}{D3[frac % 1000]} {pre}{head}"
                                    f"{FLAG_CLOSE[flags]}{seqs}, win {num[win]}{opts}, "
                                    f"length {num[length]}"
                                )
                        if app is not None and length > 0:  # a payload tcpdump decodes
                            pay = l4 + hlen
                            said = wordless.get(app)
                            if said is not None and (pay >= stop or not 0x21 <= mm[pay] <= 0x7E):
                                line += said  # (appproto.note's first test, inline)
                            else:
                                line += note(app, mm, pay, min(stop, pay + length), length)
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
        """``_new_flow`` for the raw addresses and ports of an IPv4 (12 bytes) or IPv6 (36)
        segment."""
        a = 4 if len(raw) == 12 else 16
        saddr, daddr = raw[:a], raw[a : 2 * a]
        sport, dport = _PORTS.unpack_from(raw, 2 * a)
        flow = self._flow_text.get((saddr, daddr, sport, dport))
        if flow is None:
            flow = self._new_flow(4 if a == 4 else 6, saddr, daddr, sport, dport)
        if len(self._flow_raw) >= FLOW_TABLE_MAX:
            self._flow_raw.clear()
        self._flow_raw[raw] = flow
        return flow

    def _mapped_options(self, o: bytes, seq: int, ack: int, flags: int, key, rev) -> Optional[str]:
        """The options text where the caches of ``mapped_lines`` miss: ``fast_options`` with
        the SACK base ``_fast`` peeks at. A text without SACK blocks is the same whatever the
        base: remembered by the bytes (after nop,nop,TS: by the bytes that follow it); a text
        with one SACK option, by the bytes around its blocks (``_sack_plan``)."""
        sack_base = 0
        if flags & ACK and not self.absolute_seq:
            base = self._seq_flows.get(key)
            if base is None or flags & SYN:
                base = ((ack - 1) & M32, seq) if rev else (seq, (ack - 1) & M32)
            sack_base = base[0] if rev else base[1]
        plan = self._sack_plans.get(len(o))
        if plan is not None:
            text = sack_plan_text(plan, o, sack_base)
            if text is not None:
                return text
        found = fast_options_sack(o, len(o), sack_base)
        if found is None:
            return None
        text, sack = found
        ts_first = o[:4] == TS_FIRST and len(o) >= 12
        head = ", options ["
        if ts_first:
            head += "nop,nop,TS val {} ecr {}".format(*_TS.unpack_from(o, 4))
        if sack is None:
            if ts_first:
                if len(self._ts_cache) < OPTION_CACHE_MAX:
                    self._ts_cache[o[12:]] = text[len(head) :]
            elif len(self._opt_cache) < OPTION_CACHE_MAX:
                self._opt_cache[o] = text
        elif sack is not False and (not ts_first or sack >= 12):
            self._sack_plans[len(o)] = sack_plan(o, text, head, sack, ts_first, sack_base)
        return text

    # -- the line after the timestamp --------------------------------------------------------

    def body(self, p: Packet, frame) -> str:
        if p.ip_version == 4:
            ip = "IP "
            if p.ip_missing:
                ip += f"truncated-ip - {p.ip_missing} bytes missing! "
            if self.verbose:
                try:
                    ip += self._v.ip4_header(frame, p, self.verify)
                except LineEnds as e:
                    return ip + e.args[0]
            if p.kind == Kind.FRAGMENT:
                return f"{ip}{p.src} > {p.dst}: ip-proto-6"
            with_addrs = True
        else:
            ip, missing = "IP6 ", ""
            if p.ip_missing:
                missing = f"truncated-ip6 - {p.ip_missing} bytes missing!"
                l3 = p.l3_off
                if frame[l3 + 4] or frame[l3 + 5]:  # (a jumbogram's: after its extension headers)
                    ip, missing = ip + missing, ""
            if self.verbose:
                ip += self._v.ip6_header(frame, p.l3_off)
            with_addrs = p.first_nh == 6
            if not with_addrs:
                ip += f"{p.src} > {p.dst}: "
            if p.ext:
                try:
                    ip += ext_text(p, self.decoder, frame, self.verbose)
                except LineEnds as e:
                    return ip + e.args[0]
            if p.kind == Kind.FRAGMENT:
                return ip[:-1]  # tcpdump stops after "frag (off|len)", no trailing space
            ip += missing
        tcp = self.tcp(p, frame, with_addrs)
        return Jumped(ip + tcp) if tcp.__class__ is Jumped else ip + tcp

    def tcp(self, p: Packet, frame, with_addrs: bool) -> str:
        """tcp_print() of print-tcp.c."""
        if p.kind == Kind.TRUNCATED and p.l4_off + 4 > p.snap_end:
            return f"{p.src} > {p.dst}: [|tcp]"
        if with_addrs:
            out = f"{p.src}.{p.sport} > {p.dst}.{p.dport}: "
        else:
            out = f"{p.sport} > {p.dport}: "
        if p.kind == Kind.TRUNCATED:
            return out + " [|tcp]"
        hlen, length = p.tcp_hdr_len, p.tcp_len
        if hlen < 20:
            return out + (f" tcp {(length - hlen) & M32} [bad hdr length {hlen} - too short, < 20]")
        if self.quiet:
            out += f"tcp {(length - hlen) & M32}"
            if hlen > length:
                out += f" [bad hdr length {hlen} - too long, > {length}]"
            return out
        flags = p.flags & 0xFF
        out += f"Flags [{FLAG_TEXT[flags]}]"
        seq, ack, rev, thseq, thack = p.seq, p.ack, 0, 0, 0
        if flags & ACK and not self.absolute_seq:
            seq, ack, rev, thseq, thack = self.seqs.relative(p, frame)
        if hlen > length:
            return out + f" [bad hdr length {hlen} - too long, > {length}]"
        if self.verbose and self.verify:
            out += self._v.tcp_checksum(frame, p)
        length -= hlen
        if length > 0 or flags & (SYN | FIN | RST) or self.verbose > 1:
            out += f", seq {seq}" + (f":{(seq + length) & M32}" if length > 0 else "")
        if flags & ACK:
            out += f", ack {ack}"
        out += f", win {p.win}"
        if flags & URG:
            out += f", urg {p.urg}"
        proto = "tcp"
        if hlen > 20:
            text, proto, ended = options_text(
                p, frame, flags, rev, thseq, thack, self.payload_elided
            )
            out += text
            if ended:
                return Jumped(out) if text.__class__ is Jumped else out
        out += f", length {length}"
        if length and p.l4_off + hlen > p.snap_end:
            avail = p.snap_end - p.l4_off
            out += f" [remaining caplen({avail}) < header length({hlen})] [|{proto}]"
        elif length:
            if flags & RST and self.verbose:
                return out + self._v.rst_data(frame, p.l4_off + hlen, length, p.snap_end)
            app = decoder(p.sport, p.dport)
            if app is not None:
                said = note(app, frame, p.l4_off + hlen, p.snap_end, length, self.verbose,
                            self.dump is not None and self.dump.kind == "X")  # fmt: skip
                return Jumped(out + said) if said.__class__ is Jumped else out + said
        return out


def _line(head: str, flags: int, seqs: str, ack: int, win: int, urg: int, opts: str, n: int) -> str:
    """The line after the timestamp, as ``TextFormatter._fast`` ends it."""
    return (
        f"{head}{FLAG_TEXT[flags]}]{seqs}{f', ack {ack}' if flags & ACK else ''}, "
        f"win {win}{f', urg {urg}' if flags & URG else ''}{opts}, length {n}"
    )
