"""-r FILE: read a pcap file and print (or, with -w, copy) its TCP packets.

Captures of other link layers (Linux cooked, raw IP, loopback, PPP: ``xdptcp.linktypes``) are
read as XDP would have seen the same packets, Ethernet frames: that is what ``-w`` writes.

The filter, when given, runs in Python with the same compiled program the kernel would run, so
``xdptcp -r F EXPR`` selects exactly what a live ``xdptcp -i IFACE EXPR`` would.
"""

from __future__ import annotations

import struct
import sys

from pybpf.gcpause import resume
from xdptcp.options import EXIT_OK, OutputOptions
from xdptcp.process import stdout_gone


def read_file(path: str, out: OutputOptions, filt=None) -> int:
    """Print the TCP packets of the capture at ``path`` (or copy them to ``out.write``)."""
    from xdptcp.pcap import PcapError

    # Only a filter raises FilterError (`except ()` catches nothing): without one, -r loads
    # no part of the filter compiler.
    filter_error: tuple = ()
    if filt is not None:
        from xdptcp.pcapfilter import FilterError

        filter_error = (FilterError,)
    keep = filt.matches_packet if filt is not None else None
    resume()  # started: collect again what the packets leave (pybpf.gcpause)
    try:
        if out.write:
            if _copy_through(path, out, filt) is not None:
                return EXIT_OK
            from xdptcp.readfile import EthernetFrames

            frames = source = EthernetFrames(path)
            if filt is not None:
                # loads bounded by the bytes the record holds, ``len`` its wire length: as
                # libpcap runs a filter, on a damaged record (wire length below the captured) too
                run = filt.in_place
                frames = (
                    (ts, data, wire)
                    for ts, data, wire in frames
                    if run(data, 0, len(data), max(wire, len(data)), wire)
                )
            _copy(out, frames, source.snaplen, source.linktype)
        else:
            from xdptcp.readfile import print_file
            from xdptcp.textwalk import kernel_batches

            in_place = filt.in_place if filt is not None else None
            print_file(path, out.formatter(), sys.stdout, out.count, keep, in_place,
                       kernel_batches)  # fmt: skip
    except PcapError as e:  # a missing or damaged file: exit 1 like tcpdump, its name in the text
        from xdptcp.capture import CaptureError  # not imported before: it loads pybpf

        raise CaptureError(str(e)) from None
    except filter_error as e:  # what libpcap refuses on this file's link type (`vlan` on raw IP)
        from xdptcp.capture import CaptureError

        raise CaptureError(str(e)) from None
    except BrokenPipeError:
        stdout_gone()
    return EXIT_OK


def _copy(out: OutputOptions, frames, snaplen: int, linktype: int) -> int:
    """Write the TCP frames of ``frames``; the file's header says ``linktype`` and, unless
    ``-s`` gives one, ``snaplen`` (``EthernetFrames``)."""
    from xdptcp.packet import is_tcp_frame
    from xdptcp.pcap import PcapWriter

    written = 0
    snap = out.snaplen or snaplen
    with PcapWriter(out.write, snaplen=snap, nano=out.nano, linktype=linktype) as w:
        for ts, data, wire_len in frames:
            if not is_tcp_frame(data):
                continue
            w.write(ts, data, wire_len)
            written += 1
            if out.count is not None and written >= out.count:
                break
    return written


_HEAD = struct.Struct("=IHHiIII")
_REC = struct.Struct("=IIII")
# A frame ``Decoder.fast`` would take (so a line is printed for it) in its two plainest forms,
# read in one unpack: IPv4 without options or fragmenting, IPv6 without extension headers, no
# VLAN tag, nothing truncated. Anything else is asked of the decoder.
_V6 = struct.Struct("!12xHB3xHB45xB").unpack_from  # etype, version byte, plen, next, offx
# The record header and IPv4's in one unpack, all in this machine's byte order (the record
# header's): the EtherType and fragment field are compared in that order, the IP length read
# as two bytes. sec, frac, incl, orig, etype, vihl, ip_len high, low, frag, proto, offx.
_REC_V4 = struct.Struct("=IIII12xHBxBB2xHxB22xB").unpack_from
_ETH_IP = int.from_bytes(b"\x08\x00", sys.byteorder)
_ETH_IPV6 = int.from_bytes(b"\x86\xdd", sys.byteorder)
_FRAG_OFFSET = int.from_bytes(b"\x1f\xff", sys.byteorder)  # the 13 offset bits


def _copy_through(path: str, out: OutputOptions, filt) -> int | None:
    """``-r F -w OUT`` without decoding what need not be: when F is a classic pcap of Ethernet
    frames in this machine's byte order and OUT's time precision, and no snaplen cuts records,
    the TCP records are copied as they are, runs of them by the kernel (``copy_records``).
    The walk over the records runs in the kernel where the walker loads (``xdptcp.walk``: root,
    Linux 5.17), in Python otherwise, with the same result.
    Returns how many were written, or None (having written nothing) when the file is not of
    that kind. The file is read in chunks (``MappedPcap.chunks``), not mapped: one that another
    process cuts short ends with the damaged-file error, not SIGBUS."""
    from xdptcp.mapped import MappedPcap
    from xdptcp.pcap import LINKTYPE_ETHERNET, PcapWriter, copied_snaplen

    if out.snaplen is not None or path == "-":
        return None
    mp = MappedPcap.open(path)
    if mp is None:
        return None
    with mp:
        if mp.nano != out.nano or mp.linktype != LINKTYPE_ETHERNET:
            return None
        from xdptcp.walk import copy_records, open_walker

        walker = open_walker(filt)
        snaplen = copied_snaplen(mp.snaplen)  # the file's own, as tcpdump's copy keeps it
        if walker is None:
            with PcapWriter(out.write, snaplen=snaplen, nano=out.nano) as w:
                return _copy_records(mp, w, out, filt.in_place if filt is not None else None)
        with walker, PcapWriter(out.write, snaplen=snaplen, nano=out.nano) as w:
            return copy_records(mp, w, out, walker, filt)


def _copy_records(mp, w, out: OutputOptions, keep) -> int:
    """The record walk of ``_copy_through``: runs of kept records are copied as they lie in
    the file (a timestamp field of a second or more, a wire length below the captured one
    too: tcpdump's ``-w`` writes the fields libpcap read); ``keep(buf, at, n, wire_len,
    length)`` is a filter run in place (``CompiledFilter.in_place``). The plain-TCP test is
    inlined, and for IPv4 read in the same unpack as the record header (``_REC_V4``): this loop
    runs once per record."""
    from xdptcp.packet import is_tcp_frame
    from xdptcp.pcap import MAX_RECORD
    from xdptcp.walk import look_record

    rec, rec4, v6 = _REC.unpack_from, _REC_V4, _V6
    eth_ip, eth_ipv6, frag_offset = _ETH_IP, _ETH_IPV6, _FRAG_OFFSET
    count = -1 if out.count is None else out.count
    fd, written, limit = mp.fileno(), 0, mp.limit
    for mm, pos, end in mp.chunks():
        base, start = mp.base, pos
        lim = end - 63  # records from here on are read in two steps (the unpack would run off)
        view = memoryview(mm)
        try:
            while pos < end:
                if pos <= lim:
                    _, _, incl, orig, etype, vihl, hi, lo, frag, proto, offx = rec4(mm, pos)
                elif end - pos >= 16:
                    (_, _, incl, orig), etype = rec(mm, pos), 0
                else:
                    break  # the header goes on in the next chunk
                at = pos + 16
                nxt = at + incl
                if incl > limit:  # longer than the file's snapshot, or than any record
                    if nxt > end and incl <= MAX_RECORD:
                        break  # the data goes on in the next chunk (or the file ends)
                    if start < pos:
                        w.copy_records(fd, base + start, view[start:pos])
                    written += look_record(mp, w, keep, mm, view, base, pos, end)
                    start = pos = nxt
                    if written == count:
                        return written
                    continue
                if nxt > end:
                    break  # the data goes on in the next chunk (or the file ends: chunks says)
                if etype == eth_ip:  # (past a short record these are not its bytes: then
                    ip_len = hi << 8 | lo  # ip_len <= incl - 14 fails)
                    plain = (
                        vihl == 0x45 and proto == 6 and not frag & frag_offset
                        and 20 <= (offx >> 4) * 4 <= ip_len - 20 and ip_len <= incl - 14
                    )  # fmt: skip
                elif etype == eth_ipv6 and incl >= 74:
                    _, ver, plen, nh, offx = v6(mm, at)
                    hlen = (offx >> 4) * 4
                    plain = ver >> 4 == 6 and nh == 6 and 20 <= hlen <= plen <= incl - 54
                else:
                    plain = False
                if (
                    not plain
                    and not is_tcp_frame(mm[at:nxt])
                    or (keep is not None and not keep(mm, at, incl, incl, orig))
                ):
                    if start < pos:
                        w.copy_records(fd, base + start, view[start:pos])
                    start = pos = nxt
                    continue
                pos = nxt
                written += 1
                if written == count:
                    return written
        finally:
            try:
                if start < pos:
                    w.copy_records(fd, base + start, view[start:pos])
            finally:
                view.release()
        mp.rest = pos
    return written
