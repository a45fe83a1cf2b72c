"""-r FILE: read a pcap file and print (or, with -w, copy) its TCP packets.

The filter, when given, runs in Python with the same compiled program the kernel would run, so
``xdptcp -r F EXPR`` selects exactly what a live ``xdptcp -i IFACE EXPR`` would.
"""

from __future__ import annotations

import argparse
import sys

from xdptcp.cli import EXIT_OK, make_formatter, stdout_gone


def read_file(args: argparse.Namespace, filt) -> int:
    from xdptcp.capture import CaptureError
    from xdptcp.pcap import PcapError, PcapReader
    from xdptcp.readfile import print_file

    keep = filt.matches if filt is not None else None
    try:
        if args.write:
            with PcapReader(args.read) as reader:
                frames = (f for f in reader if keep is None or keep(f[1]))
                _copy(args, frames)
        else:
            print_file(args.read, make_formatter(args), sys.stdout, args.count, keep)
    except PcapError as e:  # a missing or damaged file: exit 1 like tcpdump, its name in the text
        raise CaptureError(str(e)) from None
    except BrokenPipeError:
        stdout_gone()
    return EXIT_OK


def _copy(args: argparse.Namespace, frames) -> int:
    from xdptcp.packet import is_tcp_frame
    from xdptcp.pcap import PcapWriter

    written = 0
    with PcapWriter(args.write, snaplen=args.snaplen or 262144, nano=args.nano) as w:
        for ts, data, wire_len in frames:
            if not is_tcp_frame(data):
                continue
            w.write(ts, data, wire_len)
            written += 1
            if args.count is not None and written >= args.count:
                break
    return written
