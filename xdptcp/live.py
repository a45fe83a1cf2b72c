"""The live jobs of the command line: capture, -D, --detach."""

from __future__ import annotations

import sys
import time

from pybpf.errors import BPFError
from pybpf.gcpause import resume
from pybpf.record import replace
from xdptcp.attach import CaptureError, describe_program, interface
from xdptcp.capture import LIVE_RING_SIZE, Capture
from xdptcp.options import EXIT_OK, LiveOptions, OutputOptions
from xdptcp.process import StopFlag, install_signal_handlers
from xdptcp.record import OUT_NONE, OUT_PCAP, OUT_PCAPNG, capacity_for
from xdptcp.sinks import open_sink, print_summary

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from collections.abc import Sized
    from typing import Optional, TextIO


def capture_live(
    opts: LiveOptions, out: OutputOptions, filt=None, netns: Optional[str] = None
) -> int:
    """Capture on ``opts.interfaces`` until a signal, ``out.count`` packets, or an output error;
    print the summary. The program is detached on every way out."""
    ifaces = [interface(name, netns) for name in dict.fromkeys(opts.interfaces)]
    snaplen, capacity, notice = capacity_for(out.snaplen)
    if notice:
        print(f"xdptcp: {notice}", file=sys.stderr)
        out = replace(out, snaplen=snaplen)  # what a file's header says too
    rodata: dict[str, object] = {"xdptcp_snaplen": snaplen, "xdptcp_capacity": capacity}
    code = {}
    if filt is not None:
        rodata.update(filt.rodata_values())
        code = filt.code()
    stop = install_signal_handlers()
    several, directions = len(ifaces) > 1, opts.direction != "in"
    heads = record_heads(out, several, directions)
    if heads[0] != OUT_NONE:
        # The program writes each record's file header itself (one interface: pcapng's
        # interface 0); the file is then written from the ring with no work per packet, and
        # lines are made by the one pass over pcap records that -r makes.
        rodata.update(xdptcp_out=heads[0], xdptcp_out_nano=int(heads[1]))
    sinks = []

    def open_output() -> None:
        # pcapng keeps each packet's direction (with the default, -Q inout, it holds what was
        # seen). Opened while the XDP program is verified, before it is attached: an unwritable
        # file is refused before any other program is touched, and the egress hook the other
        # thread may have attached by then is removed again.
        sink = open_sink(out, several=several, directions=directions)
        sinks.append(sink)
        if _heads_of(sink, out, several) != heads:  # record_heads and the sinks disagree
            raise RuntimeError(f"the output wants record heads {_heads_of(sink, out, several)}")
        if heads[0] != OUT_NONE:  # the walk's interface: the one, or each by its index
            sink.ifname = ifaces[0].name
            if several:  # (made once: what the walks make of each interface is kept in it)
                from xdptcp.mapped import IfNames

                sink.ifname = IfNames({i.ifindex: i.name for i in ifaces})
        if getattr(sink, "pcapng", False):  # named before any packet: see describe_interfaces
            sink.writer.describe_interfaces([iface.name for iface in ifaces])

    cap = Capture(
        ifaces,
        mode=opts.mode,
        rodata=rodata,
        code=code,
        ring_size=opts.ring_size or LIVE_RING_SIZE,
        replace=opts.replace,
        use_link=opts.use_link,
        notice=lambda msg: print(f"xdptcp: {msg}", file=sys.stderr),
        direction=opts.direction,
        tc_mode=opts.tc_mode,
        prepare=open_output,
    )
    try:
        cap.open()
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    sink = sinks[0]
    try:
        sink.ready()
        print(f"xdptcp: capturing on {cap.describe()}", file=sys.stderr)
        resume()  # started: collect again what the packets leave (pybpf.gcpause)
        captured, unread, error = run_loop(cap, sink, out, stop)
        # Detach before the last drain and the final counts: nothing arrives after this.
        problems = cap.close_attachments()
        # after a failed write nothing more is written (an interface gone is no such error)
        writing = not isinstance(error, OSError)
        late, rest, late_error = drain_rest(cap, sink, out.count, captured, writing)
        error = error or late_error
        captured += late
        unread += rest
        counters = cap.counters()
    finally:
        cap.close()
    sink_problem = sink.close()
    for problem in problems:
        print(f"xdptcp: {problem}", file=sys.stderr)
    print_summary(captured, counters, unread, sys.stderr, sink.unshown)
    if error is not None:
        raise error
    if sink_problem:
        print(f"xdptcp: {sink_problem}", file=sys.stderr)
    return EXIT_OK


def record_heads(out: OutputOptions, several: bool, directions: bool) -> tuple[int, bool]:
    """``(xdptcp_out, nanoseconds)``: the file record heads the program is to write for the
    sink ``open_sink(out, several, directions)`` makes, told before it is made (the program is
    configured, and verified, while the sink is opened). A pcap file: pcapng when both
    directions are captured, else classic pcap; with several interfaces, none (pcapng's
    interface ids are the sink's to give). Lines (text or JSON) are made by the walk over
    classic pcap records (several interfaces: each record's by its interface index); JSON's
    ``ts_ns`` needs nanoseconds; a dump (-x, -X, -A) and the lines of -e and -q are made
    record by record. tests/test_startup.py holds this to the sinks themselves."""
    if (several and out.write) or (not out.write and out.by_record):
        return OUT_NONE, False
    if out.write:
        return (OUT_PCAPNG if directions else OUT_PCAP), bool(out.nano)
    return OUT_PCAP, bool(out.nano or out.json)


def _heads_of(sink, out: OutputOptions, several: bool) -> tuple[int, bool]:
    """What ``record_heads`` says, as the sink itself tells it (a file's sink has no
    formatter)."""
    if (several and sink.formatter is None) or not sink.out_format:
        return OUT_NONE, False
    return sink.out_format, bool(out.nano or sink.out_nano)


POLL_MS = 100


def run_loop(cap: Capture, sink, out: OutputOptions, stop: StopFlag):
    """Drain batches until a signal, -c, or an output error. Returns (captured, unread, error)."""
    captured = unread = 0
    batch: Sized = ()
    next_stats = time.monotonic() + 1.0
    try:
        while not stop.is_set():
            cap.wait(POLL_MS)
            for batch in cap.batches():
                room = None if out.count is None else out.count - captured
                shown, used = sink.write(batch, room)
                captured += shown
                if room is not None and captured >= out.count:
                    return captured, unread + len(batch) - used, None
            if time.monotonic() >= next_stats:
                next_stats += 1.0
                gone = cap.gone()  # a deleted interface sends nothing more: say so and stop
                if gone:
                    why = f"{', '.join(gone)}: the interface went away; capture stopped"
                    return captured, unread, CaptureError(why)
                if out.stats:
                    c = cap.counters()
                    print(
                        f"xdptcp: {captured} captured, {c.tcp} received by filter, "
                        f"{c.ring_full} dropped",
                        file=sys.stderr,
                    )
    except BrokenPipeError:  # the batch whose write found no reader: matched, not shown
        sink.broken()
        unread += len(batch)
    except OSError as e:
        return captured, unread, e
    return captured, unread, None


def drain_rest(
    cap: Capture, sink, count: Optional[int], captured: int, writing: bool = True
) -> tuple[int, int, Optional[OSError]]:
    """Records still in the ring after detaching: written unless -c was reached, the output
    broke, or (``writing`` False) a write failed before. Returns (shown, left unread, the error
    of a failed write): both counts are in the summary, nothing is silently lost, and a full
    disk met here is reported as one met earlier is."""
    shown_total = unread = 0
    error: Optional[OSError] = None
    for batch in cap.batches():
        room = None if count is None else max(0, count - captured)
        if room == 0 or sink.is_broken or not writing:
            unread += len(batch)
            continue
        try:
            shown, used = sink.write(batch, room)
        except BrokenPipeError:  # the reader went away: matched, not shown
            sink.broken()
            unread += len(batch)
            continue
        except OSError as e:  # a full disk, an I/O error: the rest is not written either
            error, writing = e, False
            unread += len(batch)
            continue
        captured += shown
        shown_total += shown
        unread += len(batch) - used
    return shown_total, unread, error


def list_interfaces(out: TextIO) -> int:
    """-D: every interface, its state, any XDP program on it, and the tc programs (tcx links,
    clsact filters) when there are any."""
    from pybpf.link import netlink

    for n, link in enumerate(netlink.list_links(), 1):
        state = "Up" if link.up else "Down"
        xdp = "no XDP program"
        if link.xdp.prog_id:
            name, ours = describe_program(link.xdp.prog_id)
            mode = getattr(link.xdp.mode, "name", str(link.xdp.mode)).lower()
            xdp = f"XDP id {link.xdp.prog_id} '{name}' ({mode})" + (" [xdptcp]" if ours else "")
        kind = f", {link.kind}" if link.kind else ""
        hooks = "".join(f"; {h}" for h in tc_hooks(link.ifindex))
        out.write(f"{n}.{link.name} [{state}{kind}] {xdp}{hooks}\n")
    return EXIT_OK


def tc_hooks(ifindex: int) -> list[str]:
    """What runs on the interface's tc hooks: "tc egress tcx id 7 'tc_capture' [xdptcp]", and
    clsact filters ("tc egress bpf id 9 'tc_capture' prio 49152", "tc egress u32 prio 7")."""
    from pybpf.link import tc
    from pybpf.sys import progcmd

    def program(prog_id: int) -> str:
        name, ours = describe_program(prog_id)
        return f"id {prog_id} '{name}'" + (" [xdptcp]" if ours else "")

    found = []
    for d in tc.Direction:
        if tc.tcx_supported():
            try:
                ids = progcmd.prog_query(ifindex, d.tcx_attach_type).prog_ids
            except BPFError:
                ids = ()
            found += [f"tc {d.value} tcx {program(i)}" for i in ids]
        try:
            filters = tc.filters(ifindex, d)
        except BPFError:
            filters = []
        for f in filters:
            what = program(f.prog_id) + " " if f.kind == "bpf" else ""
            found.append(f"tc {d.value} {f.kind} {what}prio {f.prio}")
    return list(dict.fromkeys(found))  # a u32 filter's hash table and its entry: one line


def detach_stale(names) -> int:
    """--detach: remove xdptcp programs left behind (a killed run): the XDP program and the tc
    egress filters. Never touches others'."""
    from pybpf.link import netlink
    from pybpf.sys import objinfo
    from xdptcp.attach import mode_flag as _mode_flag
    from xdptcp.attach import mode_name as _mode_name
    from xdptcp.attach import remove_filter, stale_filters

    for name in dict.fromkeys(names):
        iface = interface(name)
        for f in stale_filters(iface.ifindex):
            remove_filter(iface.ifindex, f)
            print(
                f"xdptcp: {name}: removed xdptcp tc filter (program id {f.prog_id})",
                file=sys.stderr,
            )
        current = netlink.xdp_query(iface.ifindex)
        if not current.prog_id:
            print(f"xdptcp: {name}: no XDP program attached", file=sys.stderr)
            continue
        prog_name, ours = describe_program(current.prog_id)
        if not ours:
            raise CaptureError(
                f"{name}: the XDP program attached (id {current.prog_id}, '{prog_name}') is not "
                "xdptcp's; not touching it"
            )
        holders = objinfo.holders("prog", current.prog_id)  # a running capture's
        if holders:
            raise CaptureError(
                f"{name}: the xdptcp program attached (id {current.prog_id}) belongs to a "
                f"running capture (pid {holders[0]}); stop that capture instead"
            )
        netlink.xdp_detach(iface.ifindex, _mode_flag(_mode_name(current.mode)))
        print(f"xdptcp: {name}: removed xdptcp program id {current.prog_id}", file=sys.stderr)
    return EXIT_OK
