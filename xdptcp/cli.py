"""``xdptcp``: capture TCP at XDP and print it the way ``tcpdump -nn`` does.

    xdptcp -i IFACE [-i IFACE ...] [options] [filter expression]
    xdptcp -r FILE [options] [filter expression]
    xdptcp -D | --detach -i IFACE | --demo

Everything here is argument handling and output plumbing; the work is done by
``xdptcp.capture`` (kernel side, through pybpf) and the formatters.
"""

from __future__ import annotations

import argparse
import os
import sys

from pybpf.argparser import ArgumentParser
from pybpf.errors import BPFError
from pybpf.version import __version__
from xdptcp.options import EXIT_ERROR, EXIT_OK, EXIT_USAGE, TS_MODES, LiveOptions, OutputOptions

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional, Sequence


MAX_RING_SIZE = 1 << 31
MAXIMUM_SNAPLEN = 262144  # libpcap's and tcpdump's


class UsageError(Exception):
    """Bad command line: one line on stderr, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="xdptcp",
        error_prefix="",
        description="Capture TCP at XDP, the earliest point of ingress, and at the tc egress "
        "hook, and print it like tcpdump -nn.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "-i",
        "--interface",
        action="append",
        default=[],
        metavar="IFACE",
        help="capture on IFACE (repeat for several)",
    )
    p.add_argument(
        "-r", dest="read", metavar="FILE", help="read packets from a pcap file ('-' = stdin)"
    )
    p.add_argument("-w", dest="write", metavar="FILE", help="write a pcap file ('-' = stdout)")
    p.add_argument("-c", dest="count", type=int, metavar="N", help="stop after N packets")
    p.add_argument(
        "-d",
        dest="dump",
        action="store_true",
        help="print the filter's eBPF instructions and exit (like tcpdump -d)",
    )
    p.add_argument(
        "-s",
        dest="snaplen",
        type=int,
        metavar="SNAPLEN",
        help="capture SNAPLEN bytes of each frame (default: headers through TCP)",
    )
    p.add_argument(
        "-S", dest="absolute", action="store_true", help="print absolute TCP sequence numbers"
    )
    p.add_argument(
        "-t",
        dest="ts",
        action="count",
        default=0,
        help="-t no timestamp, -tt epoch, -ttt delta, -tttt date, -ttttt since first",
    )
    p.add_argument(
        "-n",
        dest="numeric",
        action="count",
        default=0,
        help="accepted for tcpdump habits: output is always numeric",
    )
    for flag, dest, what in (("-x", "hex", "hex"), ("-X", "hex_ascii", "hex and ASCII"),
                             ("-A", "ascii", "ASCII")):  # fmt: skip
        p.add_argument(
            flag,
            dest=dest,
            action="count",
            default=0,
            help=f"after each line, the packet in {what} from its network header ({flag}{flag[1]}: "
            "from its link-layer header)",
        )
    p.add_argument(
        "-e",
        dest="link_level",
        action="store_true",
        help="print the link-level header on each line (MAC addresses, VLAN tags, EtherType)",
    )
    p.add_argument(
        "-q",
        dest="quiet",
        action="store_true",
        help="quiet: after the addresses and ports, only the payload's length (tcp N)",
    )
    p.add_argument(
        "-v",
        dest="verbose",
        action="count",
        default=0,
        help="verbose: the IP header's fields and the TCP checksum checked (-vv: each segment's "
        "seq); with -w, the packet counts every second (as --stats)",
    )
    p.add_argument(
        "-K",
        "--dont-verify-checksums",
        dest="verify",
        action="store_false",
        help="with -v, check no checksum",
    )
    p.add_argument(
        "-#",
        "--number",
        dest="number",
        action="store_true",
        help="start each line with the packet's number",
    )
    p.add_argument(
        "-l",
        dest="line_buffered",
        action="store_true",
        help="accepted for tcpdump habits: lines are written as each batch is read",
    )
    p.add_argument(
        "-U",
        "--packet-buffered",
        dest="packet_buffered",
        action="store_true",
        help="accepted for tcpdump habits: -w writes each batch as it is read",
    )
    p.add_argument(
        "-p",
        "--no-promiscuous-mode",
        dest="no_promiscuous",
        action="store_true",
        help="accepted for tcpdump habits: xdptcp never makes an interface promiscuous",
    )
    p.add_argument(
        "-F",
        dest="filter_file",
        metavar="FILE",
        help="read the filter expression from FILE ('#' starts a comment)",
    )
    p.add_argument("--nano", action="store_true", help="nanosecond timestamps (text and pcap)")
    p.add_argument("--json", action="store_true", help="one JSON object per packet")
    p.add_argument(
        "-D",
        "--list-interfaces",
        action="store_true",
        help="list interfaces and the XDP and tc programs on each",
    )
    p.add_argument(
        "--mode",
        choices=("auto", "native", "skb"),
        default="auto",
        help="XDP mode: native (driver), skb (generic), auto tries native first",
    )
    p.add_argument(
        "-Q",
        "--direction",
        choices=("in", "out", "inout"),
        help="capture packets that arrive (in: XDP), leave (out: tc egress) or both "
        "(default: inout where the egress hook can be attached, else in)",
    )
    p.add_argument(
        "--tc",
        dest="tc_mode",
        choices=("auto", "tcx", "clsact"),
        default="auto",
        help="how the egress program is attached: a tcx link (Linux 6.6+, gone with the "
        "process), a clsact filter (removed on exit and by the next run), auto: tcx if possible",
    )
    p.add_argument(
        "--ring-size",
        type=_size,
        metavar="BYTES",
        help="ring buffer size (power of two, multiple of the page size; K/M suffix)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace another XDP program while capturing; it is put back on exit",
    )
    p.add_argument(
        "--link",
        action="store_true",
        help="attach with a bpf_link (detached by the kernel when xdptcp dies)",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="remove an xdptcp program left on the -i interfaces, then exit",
    )
    p.add_argument(
        "--stats",
        action="store_true",
        help="with -w: print a line of counts on stderr every second",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="make two test hosts, capture a short TCP conversation, clean up",
    )
    p.add_argument("expression", nargs="*", help="filter (pcap-filter(7), compiled to eBPF)")
    return p


def _size(text: str) -> int:
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    try:
        return int(text[:-1] if mult > 1 else text) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: '{text}'") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        check_usage(args)
        return run(args)
    except UsageError as e:
        print(f"xdptcp: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BPFError as e:
        print(f"xdptcp: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:  # a failed write names its file itself (xdptcp.pcap.named)
        where = f"{e.filename}: " if e.filename else ""
        print(f"xdptcp: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as e:  # a bug of ours: still one line (the capture has been detached)
        print(
            f"xdptcp: internal error ({type(e).__name__}: {e}); please report it", file=sys.stderr
        )
        return EXIT_ERROR


def check_usage(args: argparse.Namespace) -> None:
    if args.filter_file is not None and args.expression:
        raise UsageError("give the filter in -F FILE or on the command line, not both")
    if args.dump:
        return
    jobs = [bool(args.interface) or args.detach, bool(args.read), args.list_interfaces, args.demo]
    if args.detach and not args.interface:
        raise UsageError("--detach needs -i IFACE")
    if sum(bool(j) for j in jobs) > 1:
        raise UsageError("choose one of -i, -r, -D and --demo")
    if not any(jobs):
        raise UsageError("nothing to do: give -i IFACE, -r FILE, -D or --demo (see --help)")
    if args.count is not None and args.count < 1:
        raise UsageError(f"-c must be at least 1 (got {args.count})")
    if args.snaplen is not None and args.snaplen < 0:
        raise UsageError(f"-s must not be negative (got {args.snaplen})")
    page = os.sysconf("SC_PAGE_SIZE")
    size = args.ring_size
    if size is not None and (size < page or size & (size - 1)):
        # The kernel takes only a power-of-two multiple of the page: say so rather than round.
        raise UsageError(
            f"--ring-size must be a power of two and at least the page size, {page} (got {size})"
        )
    if size is not None and size > MAX_RING_SIZE:
        # max_entries is a u32: the largest power of two it holds is 2 GiB
        raise UsageError(f"--ring-size must be at most 2G, {MAX_RING_SIZE} (got {size})")
    if args.ts > 5:
        raise UsageError("-t may be given at most five times")
    if args.json and args.write:
        raise UsageError("--json and -w both choose the output: pick one")
    if args.json and (args.hex or args.hex_ascii or args.ascii):
        raise UsageError("-x, -X and -A print after text lines, not with --json")
    if args.json and args.link_level:
        raise UsageError("-e prints in text lines, not with --json")
    if args.json and args.quiet:
        raise UsageError("-q shortens text lines, not --json")
    if args.json and args.verbose:
        raise UsageError("-v adds to text lines, not to --json")
    if args.json and args.number:
        raise UsageError("-# numbers text lines, not --json")
    if args.stats and not args.write:
        raise UsageError("--stats goes with -w (text output already shows each packet)")


def output_options(args: argparse.Namespace) -> OutputOptions:
    dump = None
    if args.hex_ascii or args.hex or args.ascii:
        from xdptcp.hexdump import Dump

        dump = Dump.from_counts(args.hex_ascii, args.hex, args.ascii)
    snaplen = args.snaplen
    if snaplen is not None and snaplen > MAXIMUM_SNAPLEN:
        snaplen = 0  # beyond the largest snapshot length libpcap reads: all of it, as tcpdump
    elif snaplen is None and (dump is not None or args.verbose) and not (args.read or args.write):
        # A dump of the headers alone would show little, and -v checks the TCP checksum, which
        # needs the whole segment: as much as a record keeps.
        snaplen = 0
    return OutputOptions(
        write=args.write,
        json=args.json,
        absolute_seq=args.absolute,
        ts_mode=TS_MODES[args.ts],
        nano=args.nano,
        count=args.count,
        snaplen=snaplen,
        # tcpdump -w -v counts the packets it has written once a second
        stats=args.stats or bool(args.write and args.verbose and not args.read),
        dump=dump,
        link_level=args.link_level,
        quiet=args.quiet,
        verbose=args.verbose,
        verify=args.verify,
        number=args.number,
    )


def live_options(args: argparse.Namespace) -> LiveOptions:
    return LiveOptions(
        interfaces=tuple(args.interface),
        mode=args.mode,
        ring_size=args.ring_size,
        replace=args.replace,
        use_link=args.link,
        direction=args.direction,
        tc_mode=args.tc_mode,
    )


def run(args: argparse.Namespace) -> int:
    """The job the arguments ask for, handed typed options: nothing below sees argparse."""
    if args.list_interfaces:
        from xdptcp.live import list_interfaces

        return list_interfaces(sys.stdout)
    out = output_options(args)
    if args.demo:
        from xdptcp.demo import run_demo

        return run_demo(out, mode=args.mode)
    filt = compile_expression(args.expression if args.filter_file is None else
                              filter_file(args.filter_file))  # fmt: skip
    if args.dump:
        from xdptcp.pcapfilter import compile_filter
        from xdptcp.process import stdout_gone

        try:
            print((filt or compile_filter("")).listing(), flush=True)
        except BrokenPipeError:  # `xdptcp -d ... | head`: the reader had enough
            stdout_gone()
        return 0
    if args.read:
        from xdptcp.offline import read_file

        return read_file(args.read, out, filt)
    if args.detach:
        from xdptcp.live import detach_stale

        return detach_stale(args.interface)
    from xdptcp.live import capture_live

    return capture_live(live_options(args), out, filt)


def filter_file(path: str) -> list[str]:
    """-F: the filter expression in a file, each ``#`` to the end of its line a comment, as
    tcpdump reads it."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        raise UsageError(f"-F {path}: {e.strerror or e}") from None
    return [line.split("#", 1)[0] for line in text.splitlines()]


def compile_expression(words: Sequence[str]):
    """The filter, compiled; None when there is none. Bad filters are usage errors."""
    text = " ".join(words).strip()
    if not text:
        return None
    from xdptcp.pcapfilter import FilterError, compile_filter

    try:
        return compile_filter(text)
    except FilterError as e:
        raise UsageError(str(e)) from None  # FilterError says "filter: ..." itself


if __name__ == "__main__":
    sys.exit(main())
