"""-r FILE: read a pcap file and print (or, with -w, copy) its TCP packets.

Captures of other link layers (Linux cooked, raw IP, loopback, PPP: ``xdptcp.linktypes``) are
read as XDP would have seen the same packets, Ethernet frames: that is what ``-w`` writes.

The filter, when given, runs in Python with the same compiled program the kernel would run, so
``xdptcp -r F EXPR`` selects exactly what a live ``xdptcp -i IFACE EXPR`` would.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import sys

from xdptcp.options import EXIT_OK, OutputOptions
from xdptcp.process import stdout_gone


def read_file(path: str, out: OutputOptions, filt=None) -> int:
    """Print the TCP packets of the capture at ``path`` (or copy them to ``out.write``)."""
    from xdptcp.pcap import PcapError
    from xdptcp.pcapfilter import FilterError
    from xdptcp.readfile import ethernet_frames, print_file

    keep = filt.matches_packet if filt is not None else None
    try:
        if out.write:
            if _copy_through(path, out, filt.in_place if filt is not None else None) is not None:
                return EXIT_OK
            frames = (f for f in ethernet_frames(path) if keep is None or filt.matches(f[1], f[2]))
            _copy(out, frames)
        else:
            in_place = filt.in_place if filt is not None else None
            print_file(path, out.formatter(), sys.stdout, out.count, keep, in_place)
    except PcapError as e:  # a missing or damaged file: exit 1 like tcpdump, its name in the text
        from xdptcp.capture import CaptureError  # not imported before: it loads pybpf

        raise CaptureError(str(e)) from None
    except FilterError as e:  # what libpcap refuses on this file's link type (`vlan` on raw IP)
        from xdptcp.capture import CaptureError

        raise CaptureError(str(e)) from None
    except BrokenPipeError:
        stdout_gone()
    return EXIT_OK


def _copy(out: OutputOptions, frames) -> int:
    from xdptcp.packet import is_tcp_frame
    from xdptcp.pcap import PcapWriter

    written = 0
    with PcapWriter(out.write, snaplen=out.snaplen or 262144, nano=out.nano) as w:
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
_V4 = struct.Struct("!12xHBxH2xHxB22xB").unpack_from  # etype, vihl, ip_len, frag, proto, offx
_V6 = struct.Struct("!12xHB3xHB45xB").unpack_from  # etype, version byte, plen, next, offx


def _copy_through(path: str, out: OutputOptions, keep) -> int | None:
    """``-r F -w OUT`` without decoding what need not be: when F is a classic pcap of Ethernet
    frames in this machine's byte order and OUT's time precision, and no snaplen cuts records,
    the TCP records are copied as they are, runs of them by the kernel (``copy_records``).
    Returns how many were written, or None (having written nothing) when the file is not of
    that kind."""
    from xdptcp.pcap import LINKTYPE_ETHERNET, PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO, PcapWriter

    if out.snaplen is not None or path == "-":
        return None
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; runs of records are copied from it)
    except OSError:
        return None  # the general path names the error
    with f:
        try:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size < 24:
                return None
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None
        with mm:
            magic, _, _, _, _, _, linktype = _HEAD.unpack_from(mm)
            if magic != (PCAP_MAGIC_NANO if out.nano else PCAP_MAGIC_MICRO):
                return None
            if linktype != LINKTYPE_ETHERNET:
                return None
            with PcapWriter(out.write, nano=out.nano) as w, memoryview(mm) as view:
                return _copy_records(path, mm, view, f.fileno(), w, out, keep)


def _copy_records(path: str, mm, view, fd: int, w, out: OutputOptions, keep) -> int:
    """The record walk of ``_copy_through``: runs of kept records are written as they lie in
    the file; ``keep(buf, at, n, wire_len, length)`` is a filter run in place
    (``CompiledFilter.in_place``). The plain-TCP test (``_V4``, ``_V6``) is inlined: this loop
    runs once per record and a call costs as much as the test."""
    from xdptcp.packet import is_tcp_frame
    from xdptcp.pcap import MAX_RECORD

    rec, v4, v6 = _REC.unpack_from, _V4, _V6
    per_sec = 1_000_000_000 if out.nano else 1_000_000
    mult = 1_000_000_000 // per_sec
    count = -1 if out.count is None else out.count
    pos, end, start, written, n = 24, len(mm), 24, 0, 0
    try:
        while pos < end:
            n += 1
            if end - pos < 16:
                _damaged(path, n, "header", end - pos, 0)
            sec, frac, incl, orig = rec(mm, pos)
            at = pos + 16
            nxt = at + incl
            if incl > MAX_RECORD or nxt > end:
                _damaged(path, n, "data", end - at, incl)
            if incl < 54 or incl >= 74 and mm[at + 12] == 0x86:
                etype = 0  # short or IPv6: the one-unpack test below, or the decoder
                if incl >= 74:
                    etype, ver, plen, nh, offx = v6(mm, at)
                    hlen = (offx >> 4) * 4
                    plain = etype == 0x86DD and ver >> 4 == 6 and nh == 6
                    plain = plain and 20 <= hlen <= plen <= incl - 54
                else:
                    plain = False
            else:
                etype, vihl, ip_len, frag, proto, offx = v4(mm, at)
                plain = (
                    etype == 0x0800 and vihl == 0x45 and proto == 6 and not frag & 0x1FFF
                    and 20 <= (offx >> 4) * 4 <= ip_len - 20 and ip_len <= incl - 14
                )  # fmt: skip
            if (not plain and not is_tcp_frame(mm[at:nxt])) or (
                keep is not None and not keep(mm, at, incl, orig, orig)
            ):
                if start < pos:
                    w.copy_records(fd, start, view[start:pos])
                start = pos = nxt
                continue
            if frac >= per_sec or orig < incl:  # damaged: the writer's own record for it
                if start < pos:
                    w.copy_records(fd, start, view[start:pos])
                w.write(sec * 1_000_000_000 + frac * mult, mm[at:nxt], orig)
                start = nxt
            pos = nxt
            written += 1
            if written == count:
                break
    finally:
        if start < pos:
            w.copy_records(fd, start, view[start:pos])
    return written


def _damaged(path: str, n: int, what: str, have: int, want: int) -> None:
    from xdptcp.pcap import MAX_RECORD, PcapError

    if what == "header":
        raise PcapError(f"{path}: record {n}: truncated record header ({have} of 16 bytes)")
    if want > MAX_RECORD:
        raise PcapError(
            f"{path}: record {n}: captured length {want} is bogus "
            f"(more than {MAX_RECORD}); the file is damaged"
        )
    raise PcapError(f"{path}: record {n}: truncated data ({have} of {want} bytes)")
