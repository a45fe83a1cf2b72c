"""The ``-r FILE`` job: read a capture file and print its TCP packets with a formatter.

``formatter`` is anything with ``format(ts_ns, frame, wire_len, ifname) -> str | None``
(``xdptcp.tcpdump.TextFormatter``, ``xdptcp.jsonfmt.JsonFormatter``); frames it answers None for
(not TCP) are skipped. Output is written in batches: one write call per batch of lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional, TextIO

from xdptcp.pcap import PathOrFile, PcapReader

BATCH = 1024


def print_file(
    path: PathOrFile,
    formatter,
    out: TextIO,
    count: Optional[int] = None,
    keep: Optional[Callable[[bytes], bool]] = None,
) -> int:
    """Print the TCP packets of ``path`` to ``out``; stop after ``count``. Returns how many.

    ``keep`` selects frames (a compiled filter's ``matches``); by default every frame."""
    printed = 0
    lines: list[str] = []
    fmt = formatter.format
    with PcapReader(path) as reader:
        for ts_ns, data, wire_len in reader:
            if keep is not None and not keep(data):
                continue
            line = fmt(ts_ns, data, wire_len, "")
            if line is None:
                continue
            lines.append(line)
            printed += 1
            if count is not None and printed >= count:
                break
            if len(lines) >= BATCH:
                out.write("\n".join(lines) + "\n")
                lines = []
    if lines:
        out.write("\n".join(lines) + "\n")
    out.flush()
    return printed
