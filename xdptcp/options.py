"""What a capture is asked to do, as typed options.

``xdptcp.cli`` builds these from the command line; a Python user builds them directly and calls
``xdptcp.live.capture_live``, ``xdptcp.offline.read_file`` or ``xdptcp.demo.run_demo`` with no
command line at all.
"""

from __future__ import annotations

from pybpf.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from xdptcp.hexdump import Dump

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

# tcpdump's -t, -tt, -ttt, -tttt, -ttttt, by the number of t's.
TS_MODES = ("default", "none", "epoch", "delta", "date", "since_first")


@record
class OutputOptions:
    """How packets are shown (text lines, JSON lines) or written (a pcap file)."""

    write: Optional[str] = None  # pcap file path, "-" for stdout; None: print lines
    json: bool = False
    absolute_seq: bool = False  # -S
    ts_mode: str = "default"  # one of TS_MODES
    nano: bool = False
    count: Optional[int] = None  # -c: stop after this many packets
    snaplen: Optional[int] = None  # -s: None is "headers through TCP"
    stats: bool = False  # with write: a line of counts on stderr every second
    dump: Optional[Dump] = None  # -x, -X, -A (text lines only)
    link_level: bool = False  # -e: each text line starts with the link-level header
    quiet: bool = False  # -q: text lines end after the ports with "tcp N"
    verbose: int = 0  # -v, -vv, -vvv: the IP header's fields, the TCP checksum... (text lines)
    verify: bool = True  # False (-K): -v checks no checksum
    number: bool = False  # -#: each text line starts with the packet's number

    @property
    def by_record(self) -> bool:
        """Text lines the record walks cannot make (``xdptcp.tcpdump.walked``). JSON objects
        are all walked."""
        if self.json:
            return False
        from xdptcp.tcpdump import walked

        o = self
        return not walked(o.dump, o.link_level, o.quiet, o.verbose, o.number)

    def formatter(self, several_interfaces: bool = False, live: bool = False):
        """The line formatter these options ask for (text or JSON)."""
        if self.json:
            from xdptcp.jsonfmt import JsonFormatter

            return JsonFormatter(absolute_seq=self.absolute_seq)
        from xdptcp.tcpdump import TextFormatter

        return TextFormatter(
            ts_mode=self.ts_mode,
            absolute_seq=self.absolute_seq,
            show_ifname=several_interfaces,
            nano=self.nano,
            # live captures stop at the TCP header unless -s says otherwise
            payload_elided=live and self.snaplen is None,
            dump=self.dump,
            link_level=self.link_level,
            quiet=self.quiet,
            verbose=self.verbose,
            number=self.number,
            verify=self.verify,
        )


@record
class LiveOptions:
    """Where and how the capture program is attached."""

    interfaces: tuple[str, ...]
    mode: str = "auto"  # "auto", "native" (driver) or "skb" (generic)
    ring_size: Optional[int] = None  # bytes; None: sized from the record capacity
    replace: bool = False  # replace another XDP program, put it back on exit
    use_link: bool = False  # attach with a bpf_link instead of netlink
    direction: Optional[str] = None  # -Q: "in", "out", "inout"; None: inout where possible
    tc_mode: str = "auto"  # the egress hook: "tcx" link, "clsact" filter, or auto
