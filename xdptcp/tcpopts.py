"""TCP options as ``tcpdump -nn`` prints them: the byte-for-byte walk of tcp_print's option loop
(with its length checks, ``[bad opt]``, ``[len N]`` and truncation marks), MPTCP, TCP-AO, TFO,
and a fast path for the options nearly every segment carries (``fast_options``), which a test
proves equal to the walk.
"""

from __future__ import annotations

import struct

from xdptcp.packet import Decoder, Packet
from xdptcp.payload import Jumped

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

M32 = 0xFFFFFFFF
SYN, FIN, RST, ACK, URG = 0x02, 0x01, 0x04, 0x10, 0x20

OPTION_NAMES = {0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack", 6: "echo",
                7: "echoreply", 8: "TS", 11: "cc", 12: "ccnew", 13: "", 19: "md5", 20: "scps",
                28: "uto", 29: "tcp-ao", 30: "mptcp", 34: "tfo", 254: "exp"}  # fmt: skip

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_TS = struct.Struct("!II")
TS_FIRST = b"\x01\x01\x08\x0a"  # nop,nop,TS: how Linux starts the options of every segment


class _Bad(Exception):
    """tcpdump's `goto bad`: a length that does not fit."""


class _Trunc(Exception):
    """tcpdump's `goto trunc` (LENCHECK on uncaptured bytes)."""


class _Jump(Exception):
    """tcpdump's longjmp from a GET_ macro past the captured bytes."""


def options_text(
    p: Packet, frame, flags: int, rev, thseq: int, thack: int, elided: bool = False
) -> tuple[str, str, bool]:
    """The options list: (text, protocol name for truncation, whether the line ends here)."""
    opts = p.options  # captured option bytes (cut at the capture / IP end)
    text = fast_options(opts, p.tcp_hdr_len - 20, thseq if rev else thack)
    if text is not None:
        return text, "tcp", False
    # The walk may read past the header (a lying length): up to the capture end, like tcpdump.
    walk = _OptionWalk(p, bytes(frame[p.l4_off + 20 : p.snap_end]), flags, rev, thseq, thack)
    walk.elided = elided
    try:
        walk.run()
    except _Bad:
        return ", options [" + "".join(walk.out) + "[bad opt]" + ("]" if walk.ch else ""), "", True
    except _Trunc:
        tail = f" [|{walk.proto}]" + (">" if walk.ch else "")
        return ", options [" + "".join(walk.out) + tail, walk.proto, True
    except _Jump:  # (-x, -X and -A then show the whole frame: ``payload.Jumped``)
        return Jumped(", options [" + "".join(walk.out) + f" [|{walk.proto}]"), walk.proto, True
    return ", options [" + "".join(walk.out) + "]", walk.proto, False


class _OptionWalk:
    """The option loop of tcp_print, byte for byte, including its length arithmetic."""

    def __init__(self, p: Packet, o: bytes, flags: int, rev, thseq: int, thack: int) -> None:
        self.p, self.flags, self.rev, self.thseq, self.thack = p, flags, rev, thseq, thack
        self.o = o
        self.out: list[str] = []
        self.ch = False
        self.proto = "tcp"
        self.hlen = p.tcp_hdr_len - 20
        self.cp = 0
        self.elided = False  # payload cut by the capture design, not by a user's snaplen

    def byte(self, i: int) -> int:
        if i >= len(self.o):
            raise _Jump
        return self.o[i]

    def lencheck(self, n: int) -> None:
        if n > self.hlen:
            raise _Bad
        if self.cp + n > len(self.o):
            raise _Trunc

    def run(self) -> None:
        out = self.out
        while self.hlen > 0:
            if self.ch:
                out.append(",")
            opt = self.byte(self.cp)
            self.cp += 1
            if opt <= 1:
                length = 1
            else:
                length = self.byte(self.cp)
                self.cp += 1
                if length < 2 or length > self.hlen:
                    raise _Bad
                self.hlen -= 1
            self.hlen -= 1
            name = OPTION_NAMES.get(opt)
            out.append(f"unknown-{opt}" if name is None else name)
            datalen = self.one(opt, length)
            self.cp += datalen
            self.hlen -= datalen
            datalen += 1 if opt <= 1 else 2
            if datalen != length:
                out.append(f"[len {length}]")
            self.ch = True
            if opt == 0:
                break

    def one(self, opt: int, length: int) -> int:
        """Print one option's data; return the data length tcpdump steps over."""
        o, cp, out = self.o, self.cp, self.out
        if opt in (0, 1, 4):
            return 0
        if opt == 2 or opt == 28 or opt == 20:
            self.lencheck(2)
            v = _U16.unpack_from(o, cp)[0]
            if opt == 2:
                out.append(f" {v}")
            elif opt == 20:
                out.append(f" cap {o[cp]:02x} id {o[cp + 1]}")
            else:
                minutes = (v >> 1) * 60 if v & 1 else v >> 1
                out.append(f" 0x{v:x} {minutes}")
            return 2
        if opt == 3:
            self.lencheck(1)
            out.append(f" {o[cp]}")
            return 1
        if opt == 8:
            self.lencheck(8)
            out.append(" val {} ecr {}".format(*_TS.unpack_from(o, cp)))
            return 8
        if opt in (6, 7, 11, 12, 13):
            self.lencheck(4)
            out.append(f" {_U32.unpack_from(o, cp)[0]}")
            return 4
        datalen = length - 2
        if opt == 5:
            return self.sack(datalen)
        if opt == 19:
            self.lencheck(16)
            out.append(" " + self.md5_words() + o[cp : cp + 16].hex())
            return 16
        if opt == 29:
            return self.tcp_ao(datalen)
        if opt == 30:
            self.lencheck(datalen)
            text, ok = _mptcp(o[cp - 2 : cp + datalen], length, self.flags)
            self.proto = "mptcp"
            out.append(text)
            if not ok:
                raise _Bad
            return datalen
        if opt == 34:
            self.lencheck(datalen)
            out.append(" " + _fastopen(o[cp : cp + datalen], False))
            return datalen
        if opt == 254:
            self.lencheck(datalen)
            if datalen < 2:
                raise _Bad
            magic = _U16.unpack_from(o, cp)[0]
            if magic == 0xF989:
                out.append("-" + _fastopen(o[cp + 2 : cp + datalen], True))
            else:
                out.append(f"-{magic:04x}")
            return datalen
        if datalen:
            out.append(" 0x")
        for i in range(datalen):
            self.lencheck(i + 1)
            out.append(f"{o[cp + i]:02x}")
        return datalen

    def sack(self, datalen: int) -> int:
        if datalen % 8:
            self.out.append(" invalid sack")
            return datalen
        self.out.append(f" {datalen // 8} ")
        base = self.thseq if self.rev else self.thack
        for i in range(0, datalen, 8):
            self.lencheck(i + 4)
            self.lencheck(i + 8)
            s, e = _TS.unpack_from(self.o, self.cp + i)
            self.out.append(f"{{{(s - base) & M32}:{(e - base) & M32}}}")
        return datalen

    def tcp_ao(self, datalen: int) -> int:
        o, cp = self.o, self.cp
        if datalen < 2:
            self.out.append(" (invalid)")
            return datalen
        self.lencheck(1)
        self.out.append(f" keyid {o[cp]}")
        self.lencheck(2)
        self.out.append(f" rnextkeyid {o[cp + 1]}")
        if datalen > 2:
            self.out.append(" mac 0x")
            for i in range(2, datalen):
                self.lencheck(i + 1)
                self.out.append(f"{o[cp + i]:02x}")
        return datalen

    def md5_words(self) -> str:
        """tcp_verify_signature() without a secret (-M): it only says why it cannot check."""
        p = self.p
        if not self.elided and p.l4_off + p.tcp_len > p.snap_end:
            return "snaplen too short, can't check - "
        return "shared secret not supplied with -M, can't check - "


def _fastopen(cookie: bytes, exp: bool) -> str:
    """print_tcp_fastopen_option()."""
    out = "tfo" if exp else ""
    n = len(cookie)
    if n == 0:
        return out + " cookiereq"
    if n % 2 or n < 4 or n > 16:
        return out + " (invalid)"
    return out + " cookie " + cookie.hex()


_MPTCP_NAMES = ("capable", "join", "dss", "add-addr", "rem-addr", "prio", "fail", "fast-close",
                "unknown")  # fmt: skip


def _mptcp(opt: bytes, length: int, flags: int) -> tuple[str, bool]:
    """mptcp_print() of print-mptcp.c: (text, ok); not ok where it returns 0 (bad opt)."""
    if length < 3:
        return "", False
    subtype = min(opt[2] >> 4, 8)
    head = f" {length} {_MPTCP_NAMES[subtype]}"
    body = _MPTCP_PRINTERS[subtype](opt, length, flags)
    if isinstance(body, tuple):
        return head + body[0], body[1]
    return (head, False) if body is None else (head + body, True)


def _mp_capable(opt: bytes, n: int, flags: int) -> Optional[str]:
    if not ((n in (12, 4) and flags & SYN) or (n in (20, 22) and flags & (SYN | ACK) == ACK)):
        return None
    version = opt[2] & 0xF
    if version > 1:
        return f" Unknown Version ({version})"
    out = f" v{version}"
    if opt[3] & 0x80:
        out += " csum"
    if n == 12 or n >= 20:
        out += f" {{0x{_U64.unpack_from(opt, 4)[0]:x}"
        if n >= 20:
            out += f",0x{_U64.unpack_from(opt, 12)[0]:x}"
        out += "}"
    return out


def _mp_join(opt: bytes, n: int, flags: int) -> Optional[str]:
    if not ((n == 12 and flags & SYN) or (n == 16 and flags & (SYN | ACK) == SYN | ACK)
            or (n == 24 and flags & ACK)):  # fmt: skip
        return None
    out = ""
    if n != 24:
        out += (" backup" if opt[2] & 1 else "") + f" id {opt[3]}"
    if n == 12:
        out += f" token 0x{_U32.unpack_from(opt, 4)[0]:x} nonce 0x{_U32.unpack_from(opt, 8)[0]:x}"
    elif n == 16:
        out += f" hmac 0x{_U64.unpack_from(opt, 4)[0]:x} nonce 0x{_U32.unpack_from(opt, 12)[0]:x}"
    else:
        out += " hmac 0x" + opt[4:24].hex()
    return out


def _mp_dss(opt: bytes, n: int, flags: int) -> tuple[str, bool]:
    """Prints as it parses: a short option fails after part of it was printed."""
    if n < 4 or flags & SYN:
        return "", False
    f = opt[3]
    out = " fin" if f & 0x10 else ""
    i, left = 4, n - 4
    if f & 0x01:
        out += " ack "
        size = 8 if f & 0x02 else 4
        if left < size:
            return out, False
        out += str(int.from_bytes(opt[i : i + size], "big"))
        i, left = i + size, left - size
    if f & 0x04:
        out += " seq "
        size = 8 if f & 0x08 else 4
        if left < size:
            return out, False
        out += str(int.from_bytes(opt[i : i + size], "big"))
        i, left = i + size, left - size
        if left < 4:
            return out, False
        out += f" subseq {_U32.unpack_from(opt, i)[0]}"
        i, left = i + 4, left - 4
        if left < 2:
            return out, False
        out += f" len {_U16.unpack_from(opt, i)[0]}"
        i, left = i + 2, left - 2
        if left >= 2:
            out += f" csum 0x{_U16.unpack_from(opt, i)[0]:x}"
            left -= 2
    return out, not left


_ADD_ADDR_ECHO = {0x6: "v0-ip6", 0x4: "v0-ip4", 0x1: "v1-echo", 0x0: "v1"}


def _mp_add_addr(opt: bytes, n: int, flags: int) -> Optional[str]:
    if n not in (8, 10, 16, 18, 20, 22, 28, 30):
        return None
    out = f" {_ADD_ADDR_ECHO.get(opt[2] & 0xF, '[bad version/echo]')} id {opt[3]}"
    v6 = n >= 20
    alen = 16 if v6 else 4
    out += " " + Decoder().addr(bytes(opt[4 : 4 + alen]))
    if n in (10, 18, 22, 30):
        out += f":{_U16.unpack_from(opt, 4 + alen)[0]}"
    if n in (16, 28):
        out += f" hmac 0x{_U64.unpack_from(opt, 4 + alen)[0]:x}"
    if n in (18, 30):
        out += f" hmac 0x{_U64.unpack_from(opt, 6 + alen)[0]:x}"
    return out


def _mp_remove_addr(opt: bytes, n: int, flags: int) -> Optional[str]:
    if n < 4:
        return None
    return " id" + "".join(f" {b}" for b in opt[3:n])


def _mp_prio(opt: bytes, n: int, flags: int) -> Optional[str]:
    if n not in (3, 4):
        return None
    out = " backup" if opt[2] & 1 else " non-backup"
    return out + (f" id {opt[3]}" if n == 4 else "")


def _mp_fail(opt: bytes, n: int, flags: int) -> Optional[str]:
    return f" seq {_U64.unpack_from(opt, 4)[0]}" if n == 12 else None


def _mp_fast_close(opt: bytes, n: int, flags: int) -> Optional[str]:
    return f" key 0x{_U64.unpack_from(opt, 4)[0]:x}" if n == 12 else None


_MPTCP_PRINTERS = (_mp_capable, _mp_join, _mp_dss, _mp_add_addr, _mp_remove_addr, _mp_prio,
                   _mp_fail, _mp_fast_close, lambda opt, n, flags: "")  # fmt: skip


# Well-formed options in their canonical lengths: kind -> (length, name).
_SIMPLE_OPTS = {2: 4, 3: 3, 4: 2, 8: 10}


def fast_options(o: bytes, n: int, sack_base: int) -> Optional[str]:
    """``, options [...]`` for ``n`` option bytes made only of eol, nop, mss, wscale, sackOK,
    sack and TS in their canonical lengths, all captured — what nearly every segment carries.

    None for anything else (another kind, an odd length, a cut): the caller then runs the
    byte-for-byte walk of tcp_print, which a test proves this agrees with."""
    found = fast_options_sack(o, n, sack_base)
    return None if found is None else found[0]


def fast_options_sack(o: bytes, n: int, sack_base: int) -> Optional[tuple[str, object]]:
    """``fast_options``, and where its SACK blocks are, the only part of the text that depends
    on ``sack_base``: None when there are none (the text can be remembered by the bytes), the
    offset of the SACK option when there is one, False when there are several."""
    if len(o) < n:
        return None
    out = []
    sack = None
    cp = 0
    while cp < n:
        kind = o[cp]
        if kind == 1:
            out.append("nop")
            cp += 1
            continue
        if kind == 0:
            out.append("eol")
            break
        if cp + 2 > n:
            return None
        length = o[cp + 1]
        if cp + length > n:
            return None
        if kind == 8 and length == 10:
            val, ecr = _TS.unpack_from(o, cp + 2)
            out.append(f"TS val {val} ecr {ecr}")
        elif kind == 2 and length == 4:
            out.append(f"mss {o[cp + 2] << 8 | o[cp + 3]}")
        elif kind == 3 and length == 3:
            out.append(f"wscale {o[cp + 2]}")
        elif kind == 4 and length == 2:
            out.append("sackOK")
        elif kind == 5 and length >= 10 and (length - 2) % 8 == 0:
            blocks = [
                f"{{{(s - sack_base) & M32}:{(e - sack_base) & M32}}}"
                for s, e in _TS.iter_unpack(o[cp + 2 : cp + length])
            ]
            out.append(f"sack {len(blocks)} " + "".join(blocks))
            sack = cp if sack is None else False
        else:
            return None
        cp += length
    return ", options [" + ",".join(out) + "]", sack


def _sack_blocks(o: bytes, at: int, nblocks: int, base: int) -> str:
    if nblocks == 1:  # the usual: one block, without a generator
        s, e = _TS.unpack_from(o, at + 2)
        return f"{{{(s - base) & M32}:{(e - base) & M32}}}"
    return "".join(
        f"{{{(s - base) & M32}:{(e - base) & M32}}}"
        for s, e in _TS.iter_unpack(o[at + 2 : at + 2 + 8 * nblocks])
    )


def sack_plan(o: bytes, text: str, head: str, at: int, ts_first: bool, base: int) -> tuple:
    """An option list with one SACK option as what stays (the bytes before and after the
    blocks, and their text) and what varies (the blocks; TS's values when it comes first)."""
    nblocks = (o[at + 1] - 2) // 8
    sack = f"sack {nblocks} "
    start = text.index(sack, len(head))
    stop = start + len(sack) + len(_sack_blocks(o, at, nblocks, base))
    a = 12 if ts_first else 0
    tail = at + 2 + 8 * nblocks
    return (ts_first, a, o[a : at + 2], at, nblocks, tail, o[tail:], text[len(head) : start] + sack,
            text[stop:], one_block_layout(o, at, ts_first, nblocks))  # fmt: skip


def one_block_layout(o: bytes, at: int, ts_first: bool, nblocks: int):
    """For the usual SACK segment (nop,nop,TS first, one block): the struct that unpacks the
    whole list in one call, to (nop,nop,TS kind and length, val, ecr, bytes up to the block, its
    edges, bytes after); the record walks unpack it from the record itself."""
    if not ts_first or nblocks != 1:
        return None
    return struct.Struct(f"!4sII{at + 2 - 12}sII{len(o) - at - 10}s")


def sack_plan_text(plan: tuple, o: bytes, base: int) -> Optional[str]:
    """The text of ``o`` by ``plan``, or None when ``o`` is not of its layout."""
    ts_first, a, before, at, nblocks, tail, after, before_text, after_text, one = plan
    if one is not None:
        tsp, val, ecr, b, s, e, f = one.unpack(o)
        if tsp != TS_FIRST or b != before or f != after:
            return None
        s, e = (s - base) & M32, (e - base) & M32
        return f", options [nop,nop,TS val {val} ecr {ecr}{before_text}{{{s}:{e}}}{after_text}"
    if o[a : at + 2] != before or o[tail:] != after or (ts_first and o[:4] != TS_FIRST):
        return None
    blocks = _sack_blocks(o, at, nblocks, base)
    if ts_first:
        val, ecr = _TS.unpack_from(o, 4)
        return f", options [nop,nop,TS val {val} ecr {ecr}{before_text}{blocks}{after_text}"
    return f", options [{before_text}{blocks}{after_text}"
