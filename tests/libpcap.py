"""libpcap itself, through ctypes: the reference the filter compiler is held against.

tcpdump filters with libpcap (pcap_compile, then pcap_offline_filter on each record of a file);
calling the same two functions in-process compares thousands of expressions in seconds, where
running tcpdump once per expression would take minutes. tests/test_filter.py checks a set of
expressions with the tcpdump binary as well, so the two references are held together too.
"""

from __future__ import annotations

import ctypes
from typing import Optional

DLT_EN10MB = 1
SNAPLEN = 262144


class BPFProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class PktHdr(ctypes.Structure):
    _fields_ = [
        ("tv_sec", ctypes.c_long),
        ("tv_usec", ctypes.c_long),
        ("caplen", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
    ]


class LibPcap:
    def __init__(self, linktype: int = DLT_EN10MB) -> None:
        self.lib = ctypes.CDLL("libpcap.so.0.8")
        self.lib.pcap_open_dead.restype = ctypes.c_void_p
        self.lib.pcap_geterr.restype = ctypes.c_char_p
        self.lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        self.lib.pcap_compile.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(BPFProgram), ctypes.c_char_p, ctypes.c_int,
            ctypes.c_uint32,
        ]  # fmt: skip
        self.lib.pcap_offline_filter.argtypes = [
            ctypes.POINTER(BPFProgram), ctypes.POINTER(PktHdr), ctypes.c_char_p,
        ]  # fmt: skip
        self.pcap = self.lib.pcap_open_dead(linktype, SNAPLEN)

    def compile(self, expr: str) -> tuple[Optional[BPFProgram], str]:
        """(program, "") or (None, libpcap's error); optimized, netmask 0, as tcpdump -r does."""
        prog = BPFProgram()
        if self.lib.pcap_compile(self.pcap, ctypes.byref(prog), expr.encode(), 1, 0) != 0:
            return None, self.lib.pcap_geterr(self.pcap).decode()
        return prog, ""

    def matches(self, prog: BPFProgram, frame: bytes, wire_len: Optional[int] = None) -> bool:
        hdr = PktHdr(0, 0, len(frame), len(frame) if wire_len is None else wire_len)
        return self.lib.pcap_offline_filter(ctypes.byref(prog), ctypes.byref(hdr), frame) != 0

    def free(self, prog: BPFProgram) -> None:
        self.lib.pcap_freecode(ctypes.byref(prog))
