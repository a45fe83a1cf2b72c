"""Timestamps as tcpdump prints them: ts_print() of util-print.c (4.99).

The modes: ``default`` local time ``HH:MM:SS.ffffff`` (``TZ`` is honoured), ``none`` (-t),
``epoch`` (-tt), ``delta`` (-ttt, since the previous packet printed, with a sign column),
``date`` (-tttt), ``since_first`` (-ttttt); ``nano=True`` prints nine digits as tcpdump's
``--time-stamp-precision=nano``. ``xdptcp.tcpdump.TextFormatter`` holds one :class:`Clock` per
output stream; the per-packet loops of the formatters print the default mode's common case
themselves, with the same table of digits (``D3``, which the JSON times use too).
"""

from __future__ import annotations

import time

TS_MODES = ("default", "none", "epoch", "delta", "date", "since_first")
# Microseconds as two 3-digit halves: format(frac, "06d") costs more than both lookups.
D3 = tuple(f"{i:03d}" for i in range(1000))
BAD_SECONDS_NS = 0x80000000 * 1_000_000_000  # from here on tcpdump cannot convert the seconds


class Clock:
    """ts_print() of tcpdump's util-print.c (4.99), for one output stream.

    tcpdump works on the record's two fields, seconds and the fraction in the output's unit, as
    the capture file holds them: a fraction field of a second or more (a damaged or hand-made
    file) prints as it is (``10.1000000``), seconds with bit 31 set print ``[Error converting
    time]``, and the relative modes subtract the fields with one borrow. A timestamp is an int
    of nanoseconds; a file's record whose fraction field is out of range comes as a
    ``xdptcp.pcap.FieldStamp``, which keeps the fields. Valid timestamps take the short way."""

    def __init__(self, mode: str = "default", nano: bool = False) -> None:
        if mode not in TS_MODES:
            raise ValueError(f"unknown timestamp mode '{mode}' (one of {', '.join(TS_MODES)})")
        self.mode, self.nano = mode, nano
        self._unit = 1 if nano else 1000
        self._per_sec = 1_000_000_000 // self._unit
        self._frac = "{:09d}" if nano else "{:06d}"
        # (seconds, fraction) of the reference. tcpdump's reference is a timeval, and one of 0
        # seconds and 0 fraction is none (netdissect_timevalisset): after a packet at the epoch
        # the next packet becomes the reference.
        self._ref = (0, 0)
        self._sec = -1
        self._sec_text = ""

        if mode == "default" and not nano:
            self.stamp = self._default_micro  # the usual case, measured: keep it short

    def _default_micro(self, ts_ns: int) -> str:
        if ts_ns.__class__ is not int or ts_ns >= BAD_SECONDS_NS:  # FieldStamp, or bit 31
            return Clock.stamp(self, ts_ns)
        sec, frac = divmod(ts_ns // 1000, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._sec_text = time.strftime("%H:%M:%S", time.localtime(sec))
        return f"{self._sec_text}.{D3[frac // 1000]}{D3[frac % 1000]} "

    def fields(self, ts_ns: int) -> tuple[int, int]:
        """(seconds, fraction in the output's unit), as libpcap hands them to tcpdump: a
        classic pcap's fields (a ``FieldStamp``) as it reads them (``FieldStamp.fields``)."""
        if ts_ns.__class__ is int:
            return divmod(ts_ns // self._unit, self._per_sec)
        return ts_ns.fields(self.nano)

    def stamp(self, ts_ns: int) -> str:
        """The timestamp and its trailing space ('' for mode none)."""
        mode = self.mode
        if mode == "none":
            return ""
        sec, frac = self.fields(ts_ns)
        if mode == "default" or mode == "date":
            return self._hmsfrac(sec, frac, mode == "date", True) + " "
        if mode == "epoch":
            if sec & 0x80000000:
                return "[Error converting time] "
            return f"{sec & 0xFFFFFFFF}.{self._frac.format(frac & 0xFFFFFFFF)} "
        rsec, rfrac = self._ref
        if not (rsec or rfrac):
            self._ref = rsec, rfrac = sec, frac
        # netdissect_timevalcmp and netdissect_timevalsub: the later minus the earlier, one
        # borrow of a second at most
        negative = sec < rsec or (sec == rsec and frac < rfrac)
        dsec, dfrac = (rsec - sec, rfrac - frac) if negative else (sec - rsec, frac - rfrac)
        if dfrac < 0:
            dsec, dfrac = dsec - 1, dfrac + self._per_sec
        if mode == "delta":
            self._ref = (sec, frac)
        return ("-" if negative else " ") + self._hmsfrac(dsec, dfrac, False, False) + " "

    def _hmsfrac(self, sec: int, frac: int, date: bool, local: bool) -> str:
        """ts_date_hmsfrac_print: the time of day (and the date), then the fraction; local
        time (remembered for the second) or UTC (a relative mode's difference)."""
        if sec & 0x80000000:
            return "[Error converting time]"
        if local and sec == self._sec:
            text = self._sec_text
        else:
            tm = time.localtime(sec) if local else time.gmtime(sec)
            text = time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", tm)
            if local:
                self._sec, self._sec_text = sec, text
        return f"{text}.{self._frac.format(frac & 0xFFFFFFFF)}"
