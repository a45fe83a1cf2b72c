"""The live jobs of the command line: capture, -D, --detach."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Optional, TextIO

from xdptcp.capture import Capture, CaptureError, Counters, describe_program, interface
from xdptcp.cli import EXIT_OK, capacity_for, install_signal_handlers, make_formatter


def capture_live(args: argparse.Namespace, filt, netns: Optional[str] = None) -> int:
    ifaces = [interface(name, netns) for name in dict.fromkeys(args.interface)]
    snaplen, capacity, notice = capacity_for(args.snaplen)
    if notice:
        print(f"xdptcp: {notice}", file=sys.stderr)
    rodata: dict[str, object] = {"xdptcp_snaplen": snaplen, "xdptcp_capacity": capacity}
    if filt is not None:
        rodata.update(filt.rodata_values())
    stop = threading.Event()
    install_signal_handlers(stop)
    sink = open_sink(args, several=len(ifaces) > 1)
    cap = Capture(
        ifaces,
        mode=args.mode,
        rodata=rodata,
        ring_size=args.ring_size,
        replace=args.replace,
        use_link=args.link,
        notice=lambda msg: print(f"xdptcp: {msg}", file=sys.stderr),
    )
    with cap:
        names = ", ".join(f"{a.iface.name} ({a.mode})" for a in cap.attachments)
        print(f"xdptcp: capturing on {names}", file=sys.stderr)
        captured, unread, error = run_loop(cap, sink, args, stop)
        # Detach before the last drain and the final counts: nothing arrives after this.
        problems = cap.close_attachments()
        late, rest = drain_rest(cap, sink, args, captured)
        captured += late
        unread += rest
        counters = cap.counters()
    sink_problem = sink.close()
    for problem in problems:
        print(f"xdptcp: {problem}", file=sys.stderr)
    print_summary(captured, counters, unread, sys.stderr, sink.unshown)
    if error is not None:
        raise error
    if sink_problem:
        print(f"xdptcp: {sink_problem}", file=sys.stderr)
    return EXIT_OK


POLL_MS = 100


def run_loop(cap: Capture, sink, args, stop: threading.Event):
    """Drain batches until a signal, -c, or an output error. Returns (captured, unread, error)."""
    captured = unread = 0
    next_stats = time.monotonic() + 1.0
    try:
        while not stop.is_set():
            cap.wait(POLL_MS)
            for batch in cap.batches():
                room = None if args.count is None else args.count - captured
                shown, used = sink.write(batch, room)
                captured += shown
                if room is not None and captured >= args.count:
                    return captured, unread + len(batch) - used, None
            if time.monotonic() >= next_stats:
                next_stats += 1.0
                gone = cap.gone()  # a deleted interface sends nothing more: say so and stop
                if gone:
                    why = f"{', '.join(gone)}: the interface went away; capture stopped"
                    return captured, unread, CaptureError(why)
                if args.stats:
                    c = cap.counters()
                    print(
                        f"xdptcp: {captured} captured, {c.tcp} received by filter, "
                        f"{c.ring_full} dropped",
                        file=sys.stderr,
                    )
    except BrokenPipeError:
        sink.broken()
    except OSError as e:
        return captured, unread, e
    return captured, unread, None


def drain_rest(cap: Capture, sink, args, captured: int) -> tuple[int, int]:
    """Records still in the ring after detaching: written unless -c was reached or output broke.

    Returns (shown, left unread): both are in the summary, nothing is silently lost."""
    shown_total = unread = 0
    for batch in cap.batches():
        room = None if args.count is None else max(0, args.count - captured)
        if room == 0 or sink.is_broken:
            unread += len(batch)
            continue
        try:
            shown, used = sink.write(batch, room)
        except OSError:  # BrokenPipeError included
            sink.broken()
            unread += len(batch)
            continue
        captured += shown
        shown_total += shown
        unread += len(batch) - used
    return shown_total, unread


def print_summary(captured: int, c: Counters, unread: int, out: TextIO, unshown: int = 0) -> None:
    """tcpdump's three lines, with xdptcp's exact meanings (see docs/xdptcp.md).

    Every record the kernel emitted is in exactly one of: captured (shown or written),
    unshown (the printer has no line for it), unread (-c reached or output closed)."""

    def n(k: int) -> str:
        return f"{k} packet{'s' if k != 1 else ''}"

    out.write(f"{n(captured)} captured\n")
    out.write(f"{n(c.tcp)} received by filter\n")
    out.write(f"{n(c.ring_full)} dropped by kernel (ring buffer full)\n")
    if unread:
        out.write(f"{n(unread)} matched but not shown (count reached or output closed)\n")
    if unshown:
        out.write(f"{n(unshown)} matched but not printable as TCP (malformed headers)\n")
    out.flush()


class TextSink:
    """Formats records as text/JSON lines; one write per batch.

    ``write`` returns ``(shown, used)``: lines written and records consumed. A record the
    formatter cannot print (``None``) is used but not shown; ``unshown`` counts them, so the
    summary accounts for every record."""

    def __init__(self, formatter, out: TextIO) -> None:
        self.formatter = formatter
        self.out = out
        self.is_broken = False
        self.unshown = 0

    def write(self, batch, limit: Optional[int] = None) -> tuple[int, int]:
        fmt = self.formatter.format
        if limit is None:
            lines = [fmt(ts, frame, wire_len, ifname) for ts, ifname, frame, wire_len in batch]
            used = len(batch)
            lines = [line for line in lines if line is not None]
        else:
            lines, used = [], 0
            for ts, ifname, frame, wire_len in batch:
                if len(lines) >= limit:
                    break
                used += 1
                line = fmt(ts, frame, wire_len, ifname)
                if line is not None:
                    lines.append(line)
        self.unshown += used - len(lines)
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        return len(lines), used

    def broken(self) -> None:
        from xdptcp.cli import stdout_gone

        self.is_broken = True
        stdout_gone()

    def close(self) -> Optional[str]:
        return None


class PcapSink(TextSink):
    def __init__(self, writer) -> None:
        super().__init__(None, None)
        self.writer = writer

    def write(self, batch, limit: Optional[int] = None) -> tuple[int, int]:
        if limit is not None:
            batch = batch[:limit]
        self.writer.write_batch((ts, frame, wire_len) for ts, _, frame, wire_len in batch)
        self.writer.flush()
        return len(batch), len(batch)

    def close(self) -> Optional[str]:
        try:
            self.writer.close()
        except OSError as e:
            return f"closing the pcap file: {e.strerror}"
        return None


def open_sink(args: argparse.Namespace, several: bool):
    if args.write:
        from xdptcp.pcap import PcapError, PcapWriter

        snaplen = args.snaplen if args.snaplen else 262144
        try:
            return PcapSink(PcapWriter(args.write, snaplen=snaplen, nano=args.nano))
        except PcapError as e:  # the place is unwritable: an error (1), not a usage error (2)
            raise CaptureError(str(e)) from None
    return TextSink(make_formatter(args, several, live=True), sys.stdout)


def list_interfaces(out: TextIO) -> int:
    """-D: every interface, its state, and any XDP program on it."""
    from pybpf import netlink

    for n, link in enumerate(netlink.list_links(), 1):
        state = "Up" if link.up else "Down"
        xdp = "no XDP program"
        if link.xdp.prog_id:
            name, ours = describe_program(link.xdp.prog_id)
            mode = getattr(link.xdp.mode, "name", str(link.xdp.mode)).lower()
            xdp = f"XDP id {link.xdp.prog_id} '{name}' ({mode})" + (" [xdptcp]" if ours else "")
        kind = f", {link.kind}" if link.kind else ""
        out.write(f"{n}.{link.name} [{state}{kind}] {xdp}\n")
    return EXIT_OK


def detach_stale(names) -> int:
    """--detach: remove xdptcp programs left behind (a killed run). Never touches others'."""
    from pybpf import netlink
    from xdptcp.capture import _mode_flag, _mode_name

    for name in dict.fromkeys(names):
        iface = interface(name)
        current = netlink.xdp_query(iface.ifindex)
        if not current.prog_id:
            print(f"xdptcp: {name}: no XDP program attached", file=sys.stderr)
            continue
        prog_name, ours = describe_program(current.prog_id)
        if not ours:
            from xdptcp.capture import CaptureError

            raise CaptureError(
                f"{name}: the XDP program attached (id {current.prog_id}, '{prog_name}') is not "
                "xdptcp's; not touching it"
            )
        netlink.xdp_detach(iface.ifindex, _mode_flag(_mode_name(current.mode)))
        print(f"xdptcp: {name}: removed xdptcp program id {current.prog_id}", file=sys.stderr)
    return EXIT_OK
