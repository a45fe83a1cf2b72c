"""Where captured records go: lines on a terminal (text or JSON) or a pcap file; and the summary.

A sink takes batches of ``(timestamp, ifname, frame, wire_len, direction)`` and reports how many
it showed
and how many it used, so that the summary accounts for every record the kernel emitted.
"""

from __future__ import annotations

import sys

from xdptcp.capture import CaptureError, Counters, FileRecords
from xdptcp.options import OutputOptions
from xdptcp.process import stdout_gone, write_all
from xdptcp.record import OUT_NONE, OUT_PCAP, OUT_PCAPNG

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional, TextIO


def print_summary(captured: int, c: Counters, unread: int, out: TextIO, unshown: int = 0) -> None:
    """tcpdump's three lines, with xdptcp's exact meanings (see docs/xdptcp.md).

    Every record the kernel emitted is in exactly one of: captured (shown or written),
    unshown (the printer has no line for it: JSON's for a later fragment), unread (-c reached
    or output closed)."""

    def n(k: int) -> str:
        return f"{k} packet{'s' if k != 1 else ''}"

    out.write(f"{n(captured)} captured\n")
    out.write(f"{n(c.tcp)} received by filter\n")
    out.write(f"{n(c.ring_full)} dropped by kernel (ring buffer full)\n")
    if unread:
        out.write(f"{n(unread)} matched but not shown (count reached or output closed)\n")
    if unshown:
        # JSON has no object for a later fragment, malformed headers, or IP lengths that
        # contradict the frame
        out.write(f"{n(unshown)} captured with no TCP header to show\n")
    out.flush()


class TextSink:
    """Formats records as text/JSON lines; one write per batch.

    ``write`` returns ``(shown, used)``: lines written and records consumed. A record the
    formatter cannot print (``None``) is used but not shown; ``unshown`` counts them, so the
    summary accounts for every record."""

    def __init__(self, formatter, out: TextIO) -> None:
        self.formatter = formatter
        if formatter is not None:
            # The program found each record TCP on the whole frame, then cut it to the snap
            # length: a record cut anywhere (-s 20) is still a TCP packet, printed as tcpdump
            # prints it (xdptcp.packet.cut_short).
            formatter.known_tcp = True
        self.out = out
        self.is_broken = False
        self.unshown = 0
        # A formatter that walks pcap records (``mapped_lines``, as for ``-r``) reads the ring's
        # batches in one pass when the program writes a pcap header in each record (OUT_PCAP),
        # in nanoseconds when its output shows them; of several interfaces too, each record's
        # interface read from the program's own header by its index (``ifname``).
        self.dump = getattr(formatter, "dump", None)  # -x, -X, -A: record by record
        if self.dump is not None:
            from xdptcp.hexdump import ethernet_header_length

            self._link_header = ethernet_header_length
        walks = hasattr(formatter, "mapped_lines") and formatter.walks
        self.out_format = OUT_PCAP if walks else OUT_NONE
        self.out_nano = bool(getattr(formatter, "shows_ns", False))
        # when the program writes the record heads: the one interface's name, or (JSON from
        # several interfaces) the names by interface index
        self.ifname = ""
        self.walks = walks
        if walks:  # the walk's table of number texts, made while the capture starts
            from xdptcp.tcpdump import make_numbers_early

            make_numbers_early()

    def ready(self) -> None:
        """Wait for what the sink makes in the background as it opens (the walk's table of
        number texts): called before the capture says it is capturing, so that what a capture
        holds from its first packet on is held by then."""
        if self.walks:
            from xdptcp.tcpdump import numbers

            numbers()

    def write(self, batch, limit: Optional[int] = None) -> tuple[int, int]:
        if isinstance(batch, FileRecords):
            from xdptcp.mapped import print_ring, ring_records

            batch = batch.owned()  # the walk keeps slices of it: out of the ring first

            if limit is None:
                shown = print_ring(batch, self.formatter, self.out, self.out_nano, self.ifname)
                self.unshown += len(batch) - shown
                return shown, len(batch)
            batch = ring_records(batch, self.out_nano, self.ifname)
        fmt = self.formatter.format
        if self.dump is not None:
            fmt = self._dumped
        if limit is None:
            lines = [fmt(ts, frame, wire, ifname, "", d) for ts, ifname, frame, wire, d in batch]
            used = len(batch)
            lines = [line for line in lines if line is not None]
        else:
            lines, used = [], 0
            for ts, ifname, frame, wire_len, d in batch:
                if len(lines) >= limit:
                    break
                used += 1
                line = fmt(ts, frame, wire_len, ifname, "", d)
                if line is not None:
                    lines.append(line)
        self.unshown += used - len(lines)
        if lines:
            try:
                write_all(self.out, "\n".join(lines) + "\n")
            except OSError as e:
                from xdptcp.pcap import destination, named

                named(e, destination(self.out))
                raise
        return len(lines), used

    def _dumped(self, ts, frame, wire_len, ifname, prefix, d) -> Optional[str]:
        """The formatter's line and, after it, the record's bytes as -x, -X or -A asks."""
        line = self.formatter.format(ts, frame, wire_len, ifname, prefix, d)
        if line is None:
            return None
        if self.formatter.show_ifname and len(frame) >= 14:  # tcpdump -i any's cooked packet
            packet, header = self.formatter.any_device.packet(ifname, frame, d)
            return line + self.dump.text(line, packet, header)
        return line + self.dump.text(line, frame, self._link_header(frame))

    def broken(self) -> None:
        self.is_broken = True
        stdout_gone()

    def close(self) -> Optional[str]:
        return None


class PcapSink(TextSink):
    """Writes a pcap or pcapng file. ``out_format`` tells the capture which record heads the
    program may write itself (``xdptcp_out``); batches of such records (``FileRecords``) are
    written as they come, ``ifname`` being their one interface."""

    def __init__(self, writer, pcapng: bool = False) -> None:
        super().__init__(None, None)
        self.writer = writer
        self.pcapng = pcapng
        self.out_format = OUT_PCAPNG if pcapng else OUT_PCAP
        self.ifname = ""

    def write(self, batch, limit: Optional[int] = None) -> tuple[int, int]:
        if isinstance(batch, FileRecords):
            if self.pcapng:
                self.writer.write_block_records(batch, limit, self.ifname)
            else:
                self.writer.write_file_records(batch, limit)
            self.writer.flush()
            n = len(batch) if limit is None else min(limit, len(batch))
            return n, n
        if limit is not None:
            batch = batch[:limit]
        if self.pcapng:  # interface and direction are kept
            self.writer.write_batch(batch)
        else:
            self.writer.write_batch((ts, frame, wire) for ts, _, frame, wire, _ in batch)
        self.writer.flush()
        return len(batch), len(batch)

    def close(self) -> Optional[str]:
        try:
            self.writer.close()
        except OSError as e:  # named by the writer (xdptcp.pcap.named)
            return f"closing {e.filename or 'the pcap file'}: {e.strerror}"
        return None


def open_sink(out: OutputOptions, several: bool, directions: bool = False):
    """The sink ``out`` asks for: a pcap file, or lines on stdout. ``directions``: the capture
    sees both ways, so a file is pcapng, which records each packet's direction (classic pcap
    has no field for it)."""
    if out.write:
        from xdptcp.pcap import PcapError, PcapngWriter, PcapWriter

        snaplen = out.snaplen if out.snaplen else 262144
        writer = PcapngWriter if directions else PcapWriter
        try:
            return PcapSink(writer(out.write, snaplen=snaplen, nano=out.nano), directions)
        except PcapError as e:  # the place is unwritable: an error (1), not a usage error (2)
            raise CaptureError(str(e)) from None
    return TextSink(out.formatter(several, live=True), sys.stdout)
