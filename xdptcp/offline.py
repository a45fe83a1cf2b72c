"""-r FILE: read a pcap file and print (or, with -w, copy) its TCP packets.

Captures of other link layers (Linux cooked, raw IP, loopback, PPP: ``xdptcp.linktypes``) are
read as XDP would have seen the same packets, Ethernet frames: that is what ``-w`` writes.

The filter, when given, runs in Python with the same compiled program the kernel would run, so
``xdptcp -r F EXPR`` selects exactly what a live ``xdptcp -i IFACE EXPR`` would.
"""

from __future__ import annotations

import sys

from xdptcp.options import EXIT_OK, OutputOptions
from xdptcp.process import stdout_gone


def read_file(path: str, out: OutputOptions, filt=None) -> int:
    """Print the TCP packets of the capture at ``path`` (or copy them to ``out.write``)."""
    from xdptcp.capture import CaptureError
    from xdptcp.pcap import PcapError
    from xdptcp.pcapfilter import FilterError
    from xdptcp.readfile import ethernet_frames, print_file

    keep = filt.matches_packet if filt is not None else None
    try:
        if out.write:
            frames = (f for f in ethernet_frames(path) if keep is None or filt.matches(f[1], f[2]))
            _copy(out, frames)
        else:
            print_file(path, out.formatter(), sys.stdout, out.count, keep)
    except PcapError as e:  # a missing or damaged file: exit 1 like tcpdump, its name in the text
        raise CaptureError(str(e)) from None
    except FilterError as e:  # what libpcap refuses on this file's link type (`vlan` on raw IP)
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
