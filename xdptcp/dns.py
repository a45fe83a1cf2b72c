"""DNS over TCP as tcpdump 4.99 prints it without -v (print-domain.c's domain_print).

After ``length N`` of a segment to or from port 53 (``xdptcp.appproto``): the message's
two-byte length must be the rest of the payload's (`` [prefix length(A) != length(B)]
(invalid)`` else), then a query is printed as `` 4660+ A? example.com. (29)`` (id, opcode,
flags, odd counts, each question) and a response as `` 4660* 2/0/1 A 198.18.0.1, CNAME
x.example. (64)`` (id, opcode, the response code with the OPT record's extended bits, flags,
the counts of answers, authority and additional records, each answer). The number in
parentheses is the message's length. Where tcpdump stops for want of captured bytes (or at a
name it cannot follow), what it printed so far and `` [|domain]``.

The questions of a response and the records after the answers are printed only with -v in
tcpdump, and so not here.
"""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_ntop  # not socket: see xdptcp.gso

from xdptcp.payload import Truncated, be16, be32, gave_up, text, u8

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# fmt: off
_OPS = ("", " inv_q", " stat", " op3", " notify", " update", " op6", " op7", " op8", " updateA",
        " updateD", " updateDA", " updateM", " updateMA", " zoneInit", " zoneRef")
# (two of them without their space, as in tcpdump)
_RCODES = ("", " FormErr", " ServFail", " NXDomain", " NotImp", " Refused", " YXDomain",
           " YXRRSet", " NXRRSet", " NotAuth", " NotZone", " Resp11", " Resp12", " Resp13",
           " Resp14", " NoChange", " BadVers", "Resp17", " Resp18", " Resp19", " Resp20",
           "Resp21", " Resp22", " BadCookie")
_TYPES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR",
    10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP",
    18: "AFSDB", 19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP_PTR", 24: "SIG",
    25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC",
    33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK",
    41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC",
    48: "DNSKEY", 99: "SPF", 100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC",
    104: "UNSPECA", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB",
    254: "MAILA", 255: "ANY", 256: "URI",
}
_CLASSES = {1: "IN", 3: "CHAOS", 4: "HS", 255: "ANY"}
_EDNS_OPTIONS = {1: "LLQ", 2: "UL", 3: "NSID", 5: "DAU", 6: "DHU", 7: "N3U", 8: "ECS",
                 9: "EXPIRE", 10: "COOKIE", 11: "KEEPALIVE", 12: "PADDING", 13: "CHAIN",
                 14: "KEY-TAG", 16: "CLIENT-TAG", 17: "SERVER-TAG"}
_ALGORITHMS = {  # the DAU, DHU and N3U options' lists
    5: {0: "DELETE", 1: "RSAMD5", 2: "DH", 3: "DS", 5: "RSASHA1", 6: "DSA-NSEC3-SHA1",
        7: "RSASHA1-NSEC3-SHA1", 8: "RSASHA256", 10: "RSASHA512", 12: "ECC-GOST",
        13: "ECDSAP256SHA256", 14: "ECDSAP384SHA384", 15: "ED25519", 16: "ED448",
        252: "INDIRECT", 253: "PRIVATEDNS", 254: "PRIVATEOID"},
    6: {1: "SHA-1", 2: "SHA-256", 3: "GOST_R_34.11-94", 4: "SHA-384"},
    7: {1: "SHA-1"},
}
# fmt: on
_T_A, _T_NS, _T_CNAME, _T_PTR, _T_MX, _T_TXT, _T_AAAA = 1, 2, 5, 12, 15, 16, 28
_T_SRV, _T_A6, _T_DNAME, _T_OPT, _T_UNSPECA, _T_URI = 33, 38, 39, 41, 104, 256
_T_SOA, _T_TSIG = 6, 250
# unsigned_relts_print(): a TTL in years, weeks, days, hours, minutes and seconds (-vvv).
_SPANS = ((31536000, "y"), (604800, "w"), (86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
_MAXCDNAME = 255
_INVALID = " (invalid)"


class _NoName(Exception):
    """fqdn_print() returns NULL: the name is not printed further."""


class _Message:
    """The payload's bytes (those before ``cap`` captured: tcpdump's snapend) and the text
    printed so far."""

    def __init__(self, buf, cap: int, verbose: int = 0) -> None:
        self.buf, self.cap = buf, cap
        self.verbose = verbose  # -v: 1, -vv: 2, -vvv: 3
        self.out: list[str] = []

    def has(self, i: int, n: int = 1) -> bool:
        """ND_TTEST_LEN()."""
        return i >= 0 and i + n <= self.cap

    def u8(self, i: int) -> int:
        return u8(self.buf, i, self.cap)

    def u16(self, i: int) -> int:
        return be16(self.buf, i, self.cap)

    def printn(self, i: int, n: int) -> bool:
        """nd_printn(): up to ``n`` bytes as text, as many as were captured; True when the
        captured bytes ended first."""
        j = min(i + n, self.cap) if n > 0 else i
        if j > i:
            self.out.append(text(self.buf, i, j))
        return j < i + n


def domain(buf, start: int, cap: int, length: int, verbose: int = 0) -> str:
    """What tcpdump prints after ``length N`` for the ``length`` payload bytes at ``start`` of a
    segment to or from port 53, of which those before ``cap`` were captured. ``verbose`` (-v):
    each record's owner name, SOA's and TSIG's fields; -vv: the questions of a response and
    every section; -vvv: the TTLs."""
    m = _Message(buf, cap, verbose)
    try:
        if length < 2:
            return f" [DNS over TCP: length {length} < 2]{_INVALID}"
        length -= 2
        prefix = m.u16(start)
        if prefix != length:
            return f" [prefix length({prefix}) != length({length})]{_INVALID}"
        m.out.append(" ")
        if not _message(m, start + 2, length):
            m.out.append(" [|domain]")
    except Truncated as e:
        return gave_up("".join(m.out) + " [|domain]", e)
    return "".join(m.out)


def _message(m: _Message, np: int, length: int) -> bool:
    """domain_print() from the header on; False where tcpdump gives up (its ``trunc``)."""
    out = m.out
    if length < 12:
        out.append(f"domain [length {length} < 12]{_INVALID}")
        return True
    if not m.has(np, 12):
        return False
    flags = m.u16(np + 2)
    qd, an, ns, ar = (m.u16(np + i) for i in (4, 6, 8, 10))
    rcode = _rcode(m, np, flags, qd, an + ns, ar)
    cp: Optional[int] = np + 12
    if flags & 0x8000:  # a response
        out.append(
            f"{m.u16(np)}{_OPS[(flags >> 11) & 0xF]}"
            + (_RCODES[rcode] if rcode < len(_RCODES) else f" Resp{rcode & 0xFFF}")
            + ("*" if flags & 0x0400 else "")
            + ("" if flags & 0x0080 else "-")
            + ("|" if flags & 0x0200 else "")
            + ("$" if flags & 0x0020 else "")
        )
        if qd != 1:
            out.append(f" [{qd}q]")
        for i in range(qd):  # skipped without -vv, but for the commas
            if i:
                out.append(",")
            if m.verbose > 1:
                out.append(" q:")
                cp = _qprint(m, cp, np)
                if cp is None:
                    return False
                continue
            cp = _nskip(m, cp)
            if cp is None:
                return False
            cp += 4
        out.append(f" {an}/{ns}/{ar}")
        cp = _each(m, _rprint, cp, an, np, ",")
        if cp is None or (m.verbose > 1 and not _more_sections(m, cp, ns, ar, np)):
            return False
    else:  # a query
        opcode = (flags >> 11) & 0xF
        out.append(
            f"{m.u16(np)}{_OPS[opcode]}"
            + ("+" if flags & 0x0100 else "")
            + ("%" if flags & 0x0010 else "")
        )
        if flags & 0x6CF:
            out.append(f" [b2&3={flags:#x}]")
        if opcode == 1:  # an inverse query
            if qd:
                out.append(f" [{qd}q]")
            if an != 1:
                out.append(f" [{an}a]")
        else:
            if an:
                out.append(f" [{an}a]")
            if qd != 1:
                out.append(f" [{qd}q]")
        if ns:
            out.append(f" [{ns}n]")
        if ar:
            out.append(f" [{ar}au]")
        cp = _each(m, _qprint, cp, qd, np, "")
        if cp is None:
            return False
        if m.verbose > 1:  # the other sections
            cp = _each(m, _rprint, cp, an, np, ",")
            if cp is None or not _more_sections(m, cp, ns, ar, np):
                return False
    out.append(f" ({length})")
    return True


def _each(m: _Message, item, cp: int, count: int, bp: int, between: str) -> Optional[int]:
    """A section's ``count`` items printed by ``item``, as tcpdump's loops do: the first, then
    the others while captured bytes are left; where the section ends. None where tcpdump gives
    up: an item it cannot print, or items left when the captured bytes end."""
    while count:
        cp = item(m, cp, bp)
        if cp is None:
            return None
        count -= 1
        if not count or cp >= m.cap:
            break
        m.out.append(between)
    return cp if count == 0 else None


def _more_sections(m: _Message, cp: int, ns: int, ar: int, bp: int) -> bool:
    """The authority and additional sections with -vv, `` ns: ...`` and `` ar: ...``, each
    begun only while captured bytes are left; False where tcpdump gives up."""
    for label, count in ((" ns:", ns), (" ar:", ar)):
        if cp < m.cap and count:
            m.out.append(label)
            end = _each(m, _rprint, cp, count, bp, ",")
            if end is None:
                return False
            cp = end
        elif count:
            return False
    return True


def _rcode(m: _Message, np: int, flags: int, qd: int, an_ns: int, ar: int) -> int:
    """The response code: the header's, with the high bits of an OPT record's extended code
    when one is found among the additional records (where the captured bytes allow)."""
    rcode = flags & 0xF
    cp: Optional[int] = np + 12
    for _ in range(qd):
        cp = _nskip(m, cp)
        if cp is None:
            return rcode
        cp += 4
        if cp >= m.cap:
            return rcode
    for n in range(an_ns + ar):
        cp = _nskip(m, cp)
        if cp is None:
            return rcode
        if n >= an_ns:  # an additional record: an OPT's TTL starts with the extended code
            if cp + 5 > m.cap:
                return rcode
            if m.u16(cp) == _T_OPT:
                return rcode | (m.u8(cp + 4) << 4)
        cp += 8  # type, class, TTL
        if cp + 2 > m.cap:
            return rcode
        cp += 2 + m.u16(cp)
        if cp >= m.cap:
            return rcode
    return rcode


def _nskip(m: _Message, cp: int) -> Optional[int]:
    """ns_nskip(): past the name at ``cp``; None where it cannot be followed."""
    if not m.has(cp):
        return None
    i = m.buf[cp]
    cp += 1
    while i:
        kind = i & 0xC0
        if kind == 0xC0:  # a pointer: the name ends with it
            return cp + 1
        if kind == 0x40:  # an extended label: only bit labels
            if i & 0x3F != 1 or not m.has(cp):
                return None
            bits = m.buf[cp] or 256
            cp += 1 + (bits + 7) // 8
        elif kind == 0x80:
            return None
        else:
            cp += i
        if not m.has(cp):
            return None
        i = m.buf[cp]
        cp += 1
    return cp


def _labellen(m: _Message, cp: int) -> int:
    """labellen(): the bytes of the label at ``cp`` after its first (-1: none to print)."""
    if not m.has(cp):
        return -1
    i = m.buf[cp]
    kind = i & 0xC0
    if kind == 0x40:
        if i & 0x3F != 1:
            m.out.append(f"<ELT {i & 0x3F}>")
            return -1
        if not m.has(cp + 1):
            return -1
        return ((m.buf[cp + 1] or 256) + 7) // 8 + 1
    if kind == 0x80:
        m.out.append("<BAD LABEL TYPE>")
        return -1
    return i


def _label(m: _Message, cp: int) -> tuple[int, int]:
    """The label at ``cp``: its first byte and ``_labellen``; none, and the name is not
    printed further."""
    size = _labellen(m, cp)
    if size == -1:
        raise _NoName
    return m.buf[cp], size


def _bitlabel(m: _Message, cp: int) -> None:
    """blabel_print(): a bit-string label as ``\\[x<hex>/<bits>]``."""
    if not m.has(cp):
        raise _NoName
    bits = m.buf[cp] or 256
    m.out.append("\\[x")
    at, b = cp + 1, bits
    lim = cp + 1 + (bits + 3) // 4
    while at < lim and b > 7:
        m.out.append(f"{m.u8(at):02x}")
        b, at = b - 8, at + 1
    if b > 4:
        m.out.append(f"{m.u8(at) & (0xFF << (8 - b)) & 0xFF:02x}")
    elif b > 0:
        m.out.append(f"{((m.u8(at) >> 4) & 0x0F) & (0x0F << (4 - b)):1x}")
    m.out.append(f"/{bits}]")


def _fqdn(m: _Message, cp: int, bp: int) -> Optional[int]:
    """fqdn_print(): the name at ``cp`` (pointers are offsets from ``bp``) followed by a dot,
    ``.`` for the root; where the name ends in the record, None where tcpdump gives up."""
    try:
        return _fqdn_print(m, cp, bp)
    except _NoName:
        return None


def _fqdn_print(m: _Message, cp: int, bp: int) -> Optional[int]:
    out = m.out
    i, size = _label(m, cp)
    max_offset = (cp - bp) & 0xFFFFFFFF
    cp += 1
    compress = False
    rp = cp + size if i & 0xC0 != 0xC0 else None  # (a pointer first: set in the loop)
    if i == 0:
        out.append(".")
        return rp
    chars = 0
    while i and cp < m.cap:
        kind = i & 0xC0
        if kind == 0xC0:
            if not compress:
                rp, compress = cp + 1, True
            if not m.has(cp):
                raise _NoName
            offset = ((i << 8) | m.buf[cp]) & 0x3FFF
            if offset >= max_offset:
                out.append("<BAD PTR>")
                raise _NoName
            max_offset = offset
            cp = bp + offset
            i, size = _label(m, cp)
            cp += 1
            continue
        if kind == 0x40:
            if i & 0x3F != 1:
                out.append(f"<ELT {i & 0x3F}>")
                raise _NoName
            _bitlabel(m, cp)
        elif kind == 0x80:
            out.append("<BAD LABEL TYPE>")
            raise _NoName
        else:
            if chars + size <= _MAXCDNAME:
                if m.printn(cp, size):
                    raise _NoName
            elif chars < _MAXCDNAME and m.printn(cp, _MAXCDNAME - chars):
                raise _NoName
            chars += size
        cp += size
        if chars <= _MAXCDNAME:
            out.append(".")
        chars += 1
        i, size = _label(m, cp)
        cp += 1
        if not compress:
            rp += size + 1
    if chars > _MAXCDNAME:
        out.append("<DOMAIN NAME TOO LONG>")
    return rp


def _type(t: int) -> str:
    return _TYPES.get(t) or f"Type{t}"


def _class(c: int) -> str:
    return _CLASSES.get(c) or f"(Class {c})"


def _qprint(m: _Message, cp: int, bp: int) -> Optional[int]:
    """ns_qprint(): `` A? name.`` (the class when not IN); where the question ends."""
    at = _nskip(m, cp)
    if at is None or not m.has(at, 4):
        return None
    m.out.append(" " + _type(m.u16(at)))
    qclass = m.u16(at + 2)
    if qclass != 1:
        m.out.append(" " + _class(qclass))
    m.out.append("? ")
    end = _fqdn(m, cp, bp)
    return None if end is None else end + 4


def _rprint(m: _Message, cp: int, bp: int) -> Optional[int]:
    """ns_rprint() without -v: an answer's type and data; where its data ends (tcpdump's own
    guess), the captured end when its name or fixed fields are not captured, None where tcpdump
    gives up."""
    out = m.out
    if m.verbose:  # the owner's name first
        out.append(" ")
        at = _fqdn(m, cp, bp)
        if at is None:
            return None
    else:
        at = _nskip(m, cp)
    if at is None or not m.has(at, 10):
        return m.cap
    rtype, rclass = m.u16(at), m.u16(at + 2)
    if rclass != 1 and rtype != _T_OPT:
        out.append(" " + _class(rclass))
    if m.verbose > 2 and rtype != _T_OPT:
        out.append(" [" + _span(int.from_bytes(m.buf[at + 4 : at + 8], "big")) + "]")
    opt_flags = m.u16(at + 6) if rtype == _T_OPT else 0
    size = m.u16(at + 8)
    cp = at + 10
    rp = cp + size
    out.append(" " + _type(rtype))
    if rp > m.cap:
        return None
    if rtype == _T_A:
        if not m.has(cp, 4):
            return None
        out.append(" " + inet_ntop(AF_INET, bytes(m.buf[cp : cp + 4])))
    elif rtype in (_T_NS, _T_CNAME, _T_PTR, _T_DNAME):
        out.append(" ")
        if _fqdn(m, cp, bp) is None:
            return None
    elif rtype in (_T_MX, _T_SRV):  # the name after the numbers, printed before them
        fixed = 2 if rtype == _T_MX else 6
        out.append(" ")
        if not m.has(cp, fixed) or _fqdn(m, cp + fixed, bp) is None:
            return None
        if rtype == _T_MX:
            out.append(f" {m.u16(cp)}")  # the preference
        else:
            out.append(f":{m.u16(cp + 4)} {m.u16(cp)} {m.u16(cp + 2)}")  # port, priority, weight
    elif rtype == _T_TXT:
        while cp < rp:
            out.append(' "')
            if not m.has(cp):
                return None
            n = m.buf[cp]
            if m.printn(cp + 1, n):
                return None
            cp += 1 + n
            out.append('"')
    elif rtype == _T_AAAA:
        if not m.has(cp, 16):
            return None
        out.append(" " + inet_ntop(AF_INET6, bytes(m.buf[cp : cp + 16])))
    elif rtype == _T_A6:
        if not _a6(m, cp, bp):
            return None
    elif rtype == _T_URI:
        if not m.has(cp, size):
            return None
        out.append(f" {m.u16(cp)} {m.u16(cp + 2)} ")
        if m.printn(cp + 4, (size - 4) & 0xFFFFFFFF):
            return None
    elif rtype == _T_OPT:
        out.append(f" UDPsize={rclass}")
        if opt_flags & 0x8000:
            out.append(" DO")
        if cp < rp:
            out.append(" [")
            while cp < rp:
                cp = _eopt(m, cp)
                if cp is None:
                    return None
                if cp < rp:
                    out.append(",")
            out.append("]")
    elif rtype == _T_UNSPECA and (not m.has(cp, size) or m.printn(cp, size)):
        return None
    elif rtype == _T_SOA and m.verbose:
        return rp if _soa(m, cp, bp) else None
    elif rtype == _T_TSIG and m.verbose:
        return rp if _tsig(m, cp, bp) else None
    # (SOA and TSIG: nothing without -v; TSIG's data was checked above with the rest)
    return rp


def _span(secs: int) -> str:
    """unsigned_relts_print()."""
    if not secs:
        return "0s"
    out = ""
    for size, unit in _SPANS:
        if secs >= size:
            out += f"{secs // size}{unit}"
            secs %= size
    return out


def _soa(m: _Message, cp: int, bp: int) -> bool:
    """An SOA record with -v: the two names and the five numbers."""
    for _ in range(2):
        m.out.append(" ")
        cp = _fqdn(m, cp, bp)
        if cp is None:
            return False
    if not m.has(cp, 20):
        return False
    m.out.append("".join(f" {be32(m.buf, i, m.cap)}" for i in range(cp, cp + 20, 4)))
    return True


def _tsig(m: _Message, cp: int, bp: int) -> bool:
    """A TSIG record with -v: the algorithm's name, fudge, MAC length, original ID, error and
    other length."""
    m.out.append(" ")
    cp = _fqdn(m, cp, bp)
    if cp is None:
        return False
    cp += 6  # the time signed
    for name in ("fudge", "maclen", "origid", "error", "otherlen"):
        if not m.has(cp, 2):
            return False
        value = m.u16(cp)
        m.out.append(f" {name}={value}")
        cp += 2 + (value if name == "maclen" else 0)
    return True


def _a6(m: _Message, cp: int, bp: int) -> bool:
    """An A6 record: the prefix length, the address's suffix, the prefix's name."""
    if not m.has(cp):
        return False
    pbit = m.buf[cp]
    pbyte = (pbit & ~7) // 8
    if pbit > 128:
        m.out.append(f" {pbit}(bad plen)")
        return True
    if pbit < 128:
        addr = bytes(pbyte) + bytes(m.u8(cp + 1 + i) for i in range(16 - pbyte))
        m.out.append(f" {pbit} {inet_ntop(AF_INET6, addr)}")
    if pbit > 0:
        m.out.append(" ")
        if _fqdn(m, cp + 1 + 16 - pbyte, bp) is None:
            return False
    return True


def _eopt(m: _Message, cp: int) -> Optional[int]:
    """eopt_print(): an EDNS option of an OPT record, its name and data."""
    out = m.out
    if not m.has(cp, 2):
        return None
    opt = m.u16(cp)
    out.append(_EDNS_OPTIONS.get(opt) or f"Opt{opt}")
    if not m.has(cp + 2, 2):
        return None
    n = m.u16(cp + 2)
    cp += 4
    if not m.has(cp, n):
        return None
    if n:
        out.append(" ")
        data = bytes(m.buf[cp : cp + n])
        if opt == 8:
            out.append(_ecs(data))
        elif opt == 10:
            if n < 8 or 8 < n < 16 or n > 40:
                out.append(_INVALID)
            else:
                out.append(data[:8].hex() + (" " + data[8:].hex() if n > 8 else ""))
        elif opt == 11:
            out.append(f"{int.from_bytes(data, 'big') / 10.0:0.1f} sec" if n == 2 else _INVALID)
        elif opt == 9:
            out.append(f"{int.from_bytes(data, 'big')} sec" if n == 4 else _INVALID)
        elif opt == 12:
            out.append(f"({n})")
        elif opt == 14:
            if n % 2:
                out.append(_INVALID)
            else:
                tags = (int.from_bytes(data[i : i + 2], "big") for i in range(0, n, 2))
                out.append(" ".join(map(str, tags)))
        elif opt in _ALGORITHMS:
            names = _ALGORITHMS[opt]
            out.append(" ".join(names.get(a) or f"Alg_{a}" for a in data))
        elif opt == 13:
            _fqdn(m, cp, cp + n)
        else:
            out.append(data.hex())
    return cp + n


def _ecs(data: bytes) -> str:
    """print_eopt_ecs(): the client subnet option, ``198.18.0.0/24/0``."""
    n = len(data)
    if n < 4:
        return _INVALID
    family, src, scope = int.from_bytes(data[:2], "big"), data[2], data[3]
    bits = {1: 32, 2: 128}.get(family)
    if bits is None or n - 4 > bits // 8:
        return _INVALID
    if src > bits or scope > bits or (src + 7) // 8 != n - 4:
        return _INVALID
    addr = data[4:].ljust(bits // 8, b"\0")
    return f"{inet_ntop(AF_INET if family == 1 else AF_INET6, addr)}/{src}/{scope}"
