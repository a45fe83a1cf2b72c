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

    try:
        reader = PcapReader(args.read)
    except PcapError as e:  # a missing or damaged file is not a usage error: exit 1, like tcpdump
        raise CaptureError(str(e)) from None
    written = 0
    try:
        with reader:
            frames = (
                (ts, data, wire_len)
                for ts, data, wire_len in reader
                if filt is None or filt.matches(data)
            )
            written = _copy(args, frames) if args.write else _print(args, frames)
    except PcapError as e:  # its message names the file and the record
        raise CaptureError(str(e)) from None
    except BrokenPipeError:
        stdout_gone()
    del written
    return EXIT_OK


def _print(args: argparse.Namespace, frames) -> int:
    fmt = make_formatter(args).format
    out = sys.stdout
    printed = 0
    lines = []
    for ts, data, wire_len in frames:
        line = fmt(ts, data, wire_len, "")
        if line is None:
            continue
        lines.append(line)
        printed += 1
        if len(lines) >= 1024:
            out.write("\n".join(lines) + "\n")
            lines.clear()
        if args.count is not None and printed >= args.count:
            break
    if lines:
        out.write("\n".join(lines) + "\n")
    out.flush()
    return printed


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
