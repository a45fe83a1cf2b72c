"""The ``-r FILE`` job: read a capture file and print its TCP packets with a formatter.

``formatter`` is anything with ``format(ts_ns, frame, wire_len, ifname) -> str | None``
(``xdptcp.tcpdump.TextFormatter``, ``xdptcp.jsonfmt.JsonFormatter``); frames it answers None for
(not TCP) are skipped. Output is written in batches: one write call per batch of lines.
"""

from __future__ import annotations

from collections.abc import Callable

from xdptcp.linktypes import ETHERNET, Interfaces, ethernet_view, unsupported
from xdptcp.pcap import MAX_RECORD, PcapError, PcapReader, copied_snaplen, destination, named

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional, TextIO

    from xdptcp.pcap import PathOrFile

# Lines per write: a batch of JSON lines stays below glibc's mmap threshold (128 KiB), so its
# strings come from the heap; bigger ones were mapped and unmapped per batch (page faults
# measured at a tenth of the JSON time).
BATCH = 128


def print_file(
    path: PathOrFile,
    formatter,
    out: TextIO,
    count: Optional[int] = None,
    keep: Optional[Callable[[bytes, int, int, int], bool]] = None,
    keep_in_place: Optional[Callable[[object, int, int, int, int], int]] = None,
    kernel=None,
) -> int:
    """Print the TCP packets of ``path`` to ``out``; stop after ``count``. Returns how many.

    ``keep(frame, wire_len, linktype, captured length)`` selects frames (a compiled filter's
    ``matches_packet``); by default every frame. ``keep_in_place``, the same filter's
    ``in_place``, lets a classic Ethernet pcap be read mapped (``xdptcp.mapped``), and
    ``kernel`` have the kernel make its lines there (``xdptcp.mapped.print_mapped``)."""
    dump = getattr(formatter, "dump", None)  # -x, -X, -A: after each line (xdptcp.hexdump)
    if dump is not None:
        from xdptcp.hexdump import ethernet_header_length
    if (
        hasattr(formatter, "mapped_lines")
        and formatter.walks
        and (keep is None or keep_in_place is not None)
    ):
        from xdptcp.mapped import MappedPcap, print_mapped

        mp = MappedPcap.open(path)
        if mp is not None:
            with mp:
                return print_mapped(mp, formatter, out, count, keep_in_place, kernel)
    printed = 0
    lines: list[str] = []
    fmt = formatter.format
    ifaces = Interfaces()
    with PcapReader(path) as reader:
        try:
            for ts_ns, data, wire_len, linktype in reader.packets():
                if linktype == ETHERNET:
                    if (
                        keep is not None
                        and not keep(data, wire_len, linktype, wire_len)
                        and (wire_len >= len(data) or not _keeps_damaged(keep, keep_in_place,
                                                                         data, wire_len))
                    ):  # fmt: skip
                        continue
                    if wire_len <= MAX_RECORD:
                        line = fmt(ts_ns, data, wire_len, "", "")
                        if dump is not None and line is not None and wire_len >= len(data):
                            line += dump.text(line, data, ethernet_header_length(data))
                    else:  # longer than tcpdump takes: its note in the packet's place
                        line = formatter.damaged(ts_ns, data, wire_len, len(data))
                else:
                    line = _other_link(formatter, keep, ifaces, reader.name, ts_ns, data,
                                       wire_len, linktype)  # fmt: skip
                if line is None:
                    continue
                lines.append(line)
                printed += 1
                if count is not None and printed >= count:
                    break
                if len(lines) >= BATCH:
                    _write(out, lines, flush=False)
                    lines = []
        except PcapError:  # a damaged record: the lines before it are printed, then the error
            _write(out, lines)
            raise
    _write(out, lines)
    return printed


def _write(out: TextIO, lines: list[str], flush: bool = True) -> None:
    """A batch of lines (and the flush after the last); an error writing them names ``out``
    (``pcap.named``). Apart from the reading loop: an error reading the capture is not out's."""
    try:
        if lines:
            out.write("\n".join(lines) + "\n")
        if flush:
            out.flush()
    except OSError as e:
        named(e, destination(out))
        raise


def _keeps_damaged(keep, keep_in_place, data, wire_len: int) -> bool:
    """The filter on a damaged Ethernet record (its wire length below its captured length), as
    libpcap runs it: loads bounded by the captured bytes, ``len`` the record's wire length."""
    if keep_in_place is not None:
        return bool(keep_in_place(data, 0, len(data), len(data), wire_len))
    return keep(data, len(data), ETHERNET, wire_len)


def _other_link(formatter, keep, ifaces, name, ts_ns, data, wire_len, linktype) -> Optional[str]:
    """``print_file``'s line for a record of a link type other than Ethernet: its packet seen
    as an Ethernet frame (``ethernet_view``). A damaged record (its original length below its
    captured length, or above ``MAX_RECORD``) is shown by the formatter's ``damaged``, with the
    record's own lengths."""
    view = ethernet_view(linktype, data, wire_len, ifaces)
    if view is None:
        check_linktype(name, linktype)
        return None
    if wire_len < len(data):  # a damaged record: the filter reads what it holds, as libpcap's
        if keep is not None and not keep(view.frame, len(view.frame), linktype, wire_len):
            return None
        return formatter.damaged(ts_ns, view.frame, wire_len, len(data))
    if keep is not None and not keep(view.frame, view.wire_len, linktype, wire_len):
        return None
    if wire_len > MAX_RECORD:  # longer than tcpdump takes: its note in the packet's place
        return formatter.damaged(ts_ns, view.frame, wire_len, len(data))
    link_prefix = getattr(formatter, "link_prefix", None)  # (JSON objects have none)
    prefix = view.prefix if link_prefix is None else link_prefix(linktype, data, wire_len, view)
    line = formatter.format(ts_ns, view.frame, view.wire_len, "", prefix)
    if line is None or view.frame is data:
        return line
    dump = getattr(formatter, "dump", None)
    if dump is not None:  # the packet's own bytes, after its own link-layer header
        from xdptcp.hexdump import ethernet_header_length

        line += dump.text(line, data, view.header + ethernet_header_length(view.frame) - 14)
    return formatter.record_lengths(line, view.wire_len, len(view.frame), wire_len, len(data))


def check_linktype(name: str, linktype: int) -> None:
    """A record of a link type xdptcp cannot read: one line naming it, and what can be read."""
    from xdptcp.linktypes import SUPPORTED

    if linktype not in SUPPORTED:
        raise PcapError(f"{name}: {unsupported(linktype)}")


class EthernetFrames:
    """Iterated, (ts_ns, Ethernet frame, wire_len) of every IPv4/IPv6 packet of a capture of any
    link type ``-r`` reads: what ``-r F -w OUT`` writes (XDP's view: an Ethernet capture). The
    file is opened and its header read when this is made, so that a file that is no capture
    fails before OUT is made, as in tcpdump. ``snaplen`` and ``linktype`` are the copy's
    header's: a classic pcap of Ethernet frames keeps its own, as tcpdump's copy does, and so
    does a pcapng file whose first interface is Ethernet (libpcap's header for such a file is
    that interface's); frames made Ethernet get MAX_RECORD."""

    def __init__(self, path: PathOrFile) -> None:
        self._reader = r = PcapReader(path)
        self.snaplen, self.linktype = MAX_RECORD, ETHERNET
        if not r.pcapng and r.linktype == ETHERNET:
            self.snaplen, self.linktype = copied_snaplen(r.snaplen), ETHERNET | r.linktype_ext
        elif r.pcapng and r.first_interface is not None and r.first_interface[0] == ETHERNET:
            self.snaplen = copied_snaplen(r.first_interface[1])

    def __iter__(self):
        ifaces = Interfaces()
        with self._reader as reader:
            for ts_ns, data, wire_len, linktype in reader.packets():
                if linktype == ETHERNET:
                    yield ts_ns, data, wire_len
                    continue
                view = ethernet_view(linktype, data, wire_len, ifaces)
                if view is None:
                    check_linktype(reader.name, linktype)
                    continue
                yield ts_ns, view.frame, view.wire_len
