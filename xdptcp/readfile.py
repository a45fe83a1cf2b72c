"""The ``-r FILE`` job: read a capture file and print its TCP packets with a formatter.

``formatter`` is anything with ``format(ts_ns, frame, wire_len, ifname) -> str | None``
(``xdptcp.tcpdump.TextFormatter``, ``xdptcp.jsonfmt.JsonFormatter``); frames it answers None for
(not TCP) are skipped. Output is written in batches: one write call per batch of lines.
"""

from __future__ import annotations

from collections.abc import Callable

from xdptcp.linktypes import ETHERNET, Interfaces, ethernet_view, unsupported
from xdptcp.pcap import PcapError, PcapReader

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
) -> int:
    """Print the TCP packets of ``path`` to ``out``; stop after ``count``. Returns how many.

    ``keep(frame, wire_len, linktype, captured length)`` selects frames (a compiled filter's
    ``matches_packet``); by default every frame. ``keep_in_place``, the same filter's
    ``in_place``, lets a classic Ethernet pcap be read mapped (``xdptcp.mapped``)."""
    if hasattr(formatter, "mapped_lines") and (keep is None or keep_in_place is not None):
        from xdptcp.mapped import MappedPcap, print_mapped

        mp = MappedPcap.open(path)
        if mp is not None:
            with mp:
                return print_mapped(mp, formatter, out, count, keep_in_place)
    printed = 0
    lines: list[str] = []
    fmt = formatter.format
    ifaces = Interfaces()
    with PcapReader(path) as reader:
        try:
            for ts_ns, data, wire_len, linktype in reader.packets():
                prefix, orig_len = "", wire_len
                if linktype != ETHERNET:
                    view = ethernet_view(linktype, data, wire_len, ifaces)
                    if view is None:
                        check_linktype(reader.name, linktype)
                        continue
                    data, wire_len, prefix = view
                if keep is not None and not keep(data, wire_len, linktype, orig_len):
                    continue
                line = fmt(ts_ns, data, wire_len, "", prefix)
                if line is None:
                    continue
                lines.append(line)
                printed += 1
                if count is not None and printed >= count:
                    break
                if len(lines) >= BATCH:
                    out.write("\n".join(lines) + "\n")
                    lines = []
        except PcapError:  # a damaged record: the lines before it are printed, then the error
            if lines:
                out.write("\n".join(lines) + "\n")
                out.flush()
            raise
    if lines:
        out.write("\n".join(lines) + "\n")
    out.flush()
    return printed


def check_linktype(name: str, linktype: int) -> None:
    """A record of a link type xdptcp cannot read: one line naming it, and what can be read."""
    from xdptcp.linktypes import SUPPORTED

    if linktype not in SUPPORTED:
        raise PcapError(f"{name}: {unsupported(linktype)}")


def ethernet_frames(path: PathOrFile):
    """(ts_ns, Ethernet frame, wire_len) of every IPv4/IPv6 packet of a capture of any link
    type ``-r`` reads: what ``-r F -w OUT`` writes (XDP's view: an Ethernet capture)."""
    ifaces = Interfaces()
    with PcapReader(path) as reader:
        for ts_ns, data, wire_len, linktype in reader.packets():
            if linktype == ETHERNET:
                yield ts_ns, data, wire_len
                continue
            view = ethernet_view(linktype, data, wire_len, ifaces)
            if view is None:
                check_linktype(reader.name, linktype)
                continue
            yield ts_ns, view.frame, view.wire_len
