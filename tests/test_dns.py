"""DNS over TCP (port 53): xdptcp's lines against tcpdump's on the same files.

tcpdump 4.99 prints a DNS message after ``length N`` (print-domain.c, without -v:
``xdptcp/dns.py``). Messages of every kind it tells apart (queries and responses, opcodes,
flags, counts, each record type it prints, EDNS options, compressed and damaged names, bit
labels, extended response codes) are sent in segments to and from port 53, read whole and cut
at many lengths, and ``xdptcp -r`` must print what ``tcpdump -nn -r`` prints, line for line.
"""

from __future__ import annotations

import struct

import pytest
from test_appproto import frames_on, tcpdump_text, write_cut, xdptcp_text

from xdptcp.tcpdump import TextFormatter


def name(text: str) -> bytes:
    """A name as labels, ending with the root."""
    out = b""
    for label in text.strip(".").split(".") if text.strip(".") else []:
        out += bytes([len(label)]) + label.encode("latin-1")
    return out + b"\0"


def ptr(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def rr(owner: bytes, rtype: int, data: bytes, rclass: int = 1, ttl: int = 300) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(data)) + data


def header(ident: int, flags: int, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def question(qname: str = "www.example.com", qtype: int = 1, qclass: int = 1) -> bytes:
    return name(qname) + struct.pack("!HH", qtype, qclass)


def opt(options: bytes = b"", udp: int = 1232, ext_rcode: int = 0, do: bool = False) -> bytes:
    """An OPT record (EDNS): the class is the UDP size, the TTL the extended code and flags."""
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return rr(b"\0", 41, options, rclass=udp, ttl=ttl)


def eopt(code: int, data: bytes) -> bytes:
    return struct.pack("!HH", code, len(data)) + data


def response(answers: list[bytes], flags: int = 0x8180, extra: list[bytes] = (), qd=None):
    """A response to question() with these answers (owner: a pointer to the question's name)."""
    q = question() if qd is None else qd
    nq = 1 if qd is None else q.count(b"\0\0\x01\0\x01")
    body = q + b"".join(answers) + b"".join(extra)
    return header(0x1234, flags, nq, len(answers), 0, len(extra)) + body


Q = ptr(12)  # the question's name, right after the header
A = lambda text: bytes(int(x) for x in text.split("."))  # noqa: E731


MESSAGES = [
    # queries
    header(0x1234, 0x0100) + question(),
    header(0x1234, 0x0000) + question("example.com", 28),
    header(1, 0x0110) + question("example.com", 15, 3),  # CHAOS, checking disabled
    header(2, 0x0100, ar=1) + question("example.org", 255) + opt(do=True),
    header(3, 0x0100, qd=2) + question("a.example") + question("b.example", 28),
    header(4, 0x0100, qd=0),
    header(5, 0x0800, qd=0, an=1) + rr(name("x.example"), 1, A("198.18.0.1")),  # inverse query
    header(6, 0x1000) + question(),  # status
    header(7, 0x2000, ns=1) + question("example.com", 6),  # notify
    header(8, 0x2800, an=1, ns=2) + question("example.com", 6),  # update
    header(9, 0x01C3) + question(),  # odd bits in the flags
    header(10, 0x0100) + question("", 2),  # the root
    header(11, 0x0100) + question("tab\tand\x7fdel\xff.example"),
    header(12, 0x0100) + question("example.com", 999),
    header(13, 0x0100) + question("example.com", 252, 255),  # AXFR, ANY
    # responses
    response([rr(Q, 1, A("198.18.0.1")), rr(Q, 1, A("198.18.0.2"))]),
    response([rr(Q, 28, bytes(15) + b"\1")], flags=0x8580),  # AA
    response([rr(Q, 28, bytes(10) + b"\xff\xff" + A("198.18.0.9"))]),
    response([rr(Q, 28, bytes.fromhex("20010db8000000000001000000000001"))]),
    response([rr(Q, 5, name("web.example.net")), rr(ptr(45), 1, A("198.18.1.1"))]),
    response([rr(Q, 5, b"\3web" + ptr(16))]),  # a name ending in a pointer
    response([rr(Q, 2, name("ns1.example.com")), rr(Q, 12, b"\4host" + ptr(12))]),
    response([rr(Q, 39, name("other.example"))]),  # DNAME
    response([rr(Q, 15, b"\0\x0a" + name("mx.example.com"))]),
    response([rr(Q, 16, b'\x05hello\x00\x04a"b\x01')]),  # TXT: three strings
    response([rr(Q, 16, b"\x09short")]),  # a string longer than the record
    response([rr(Q, 33, struct.pack("!HHH", 10, 60, 5060) + name("sip.example"))]),
    response([rr(Q, 6, name("ns.example") + name("host.example") + bytes(20))]),  # SOA
    response([rr(Q, 256, struct.pack("!HH", 1, 2) + b"https://example/")]),  # URI
    response([rr(Q, 256, b"\0\1")]),  # URI shorter than its fixed part
    response([rr(Q, 104, b"some \x01text")]),  # UNSPECA
    response([rr(Q, 250, name("key.example") + bytes(20))]),  # TSIG
    response([rr(Q, 38, b"\0" + bytes(15) + b"\1")]),  # A6, no prefix
    response([rr(Q, 38, b"\x40" + bytes(7) + b"\1" + name("p.example"))]),
    response([rr(Q, 38, b"\x80" + name("p.example"))]),
    response([rr(Q, 38, b"\xc8")]),  # a prefix over 128
    response([rr(Q, 999, b"\1\2\3")]),
    response([rr(Q, 1, A("198.18.0.1"), rclass=3)]),  # CHAOS
    response([rr(Q, 1, A("198.18.0.1"), rclass=77)]),
    response([]),
    response([], flags=0x8183),  # NXDomain
    response([], flags=0x8205),  # Refused, no recursion, truncated
    response([], flags=0x81A0),  # authentic data
    response([], flags=0x8180, extra=[opt(ext_rcode=1)]),  # BADVERS: 16
    response([], flags=0x8181, extra=[opt(ext_rcode=1)]),  # 17: "Resp17"
    response([], flags=0x8187, extra=[opt(ext_rcode=1)]),  # 23: BadCookie
    response([], flags=0x8180, extra=[opt(ext_rcode=0xAB)]),  # far beyond the names
    response([], flags=0x9180),  # an opcode's name in a response
    response([rr(Q, 1, A("198.18.0.1"))], qd=question("a.example") + question("b.example")),
    response([rr(Q, 1, A("198.18.0.1"))], qd=b""),
    # EDNS options in an answer (printed, unlike the additional section's)
    response([opt(eopt(8, b"\0\1\x18\0" + A("198.18.0.0")[:3]), do=True)]),
    response([opt(eopt(8, b"\0\2\x38\0" + bytes.fromhex("20010db80000ab")))]),
    response([opt(eopt(8, b"\0\1\x21\0" + bytes(4)))]),  # a source length over 32
    response([opt(eopt(8, b"\0\3\0\0"))]),
    response([opt(eopt(10, bytes(range(8))) + eopt(10, bytes(range(24))))]),
    response([opt(eopt(10, bytes(10)))]),
    response([opt(eopt(11, b"\0\x96") + eopt(11, b"\1"))]),
    response([opt(eopt(9, b"\0\0\x0e\x10") + eopt(12, bytes(5)) + eopt(14, b"\0\1\x12\x34"))]),
    response([opt(eopt(14, b"\0\1\2"))]),
    response([opt(eopt(5, b"\x08\x0d\x63") + eopt(6, b"\1\2\x09") + eopt(7, b"\1\2"))]),
    response([opt(eopt(3, b"ns1") + eopt(13, name("chain.example")) + eopt(99, b""))]),
    response([opt(eopt(3, b"ns1abc"))[:-3]]),  # an option longer than the record
    # damaged names
    response([rr(ptr(200), 1, A("198.18.0.1"))]),  # a pointer forward
    response([rr(Q, 5, b"\3abc" + ptr(60))]),
    header(20, 0x0100) + b"\x80abc\0\0\1\0\1",  # a reserved label type
    header(21, 0x0100) + b"\x42\x08\xff\0\0\1\0\1",  # an extended label of another kind
    header(22, 0x0100) + b"\x41\x08\xab\0\0\1\0\1",  # bit labels: 8 bits,
    header(23, 0x0100) + b"\x41\x04\xa0\0\0\1\0\1",  # 4,
    header(24, 0x0100) + b"\x41\x0c\xab\xc0\0\0\1\0\1",  # 12,
    header(25, 0x0100) + b"\x41\x06\xfc\0\0\1\0\1",  # 6,
    header(26, 0x0100) + b"\x41\x00" + bytes(range(32)) + b"\0\0\1\0\1",  # 256
    header(27, 0x0100) + question(".".join(["a" * 60] * 5)),  # a name over 255 characters
    header(28, 0x0100) + question(".".join(["b" * 63] * 4)),
    # short and odd
    header(30, 0x8180, qd=0, an=3) + rr(name("x"), 1, A("198.18.0.1")),  # fewer than counted
    header(31, 0x0100)[:8],
    b"",
]


def segment(message: bytes, prefix: int = -1) -> bytes:
    """A DNS-over-TCP payload: the message's length (``prefix``: another), then the message."""
    return struct.pack("!H", len(message) if prefix < 0 else prefix) + message


PAYLOADS = [segment(m) for m in MESSAGES] + [
    segment(MESSAGES[0], 7),  # a length that is not the message's
    b"\0",  # under 2 bytes
]

SNAPLENS = [0, 54, 55, 56, 58, 60, 62, 66, 70, 74, 80, 90, 100, 110, 120, 140, 160, 200]


@pytest.mark.parametrize("snaplen", SNAPLENS)
def test_dns_messages_print_as_tcpdump(tmp_path, snaplen) -> None:
    frames = frames_on([(40000, 53), (53, 40000)], PAYLOADS)
    cut = tmp_path / "dns.pcap"
    written = write_cut(cut, snaplen, frames)
    theirs = tcpdump_text(cut)
    assert len(theirs) == len(frames)
    assert xdptcp_text(cut) == theirs
    fmt = TextFormatter()  # the per-frame path, as live records take it
    assert [fmt.format(f.ts_ns, f.data, f.wire_len) for f in written] == theirs
    if snaplen == 0:  # what the messages were made to show
        for shown in (
            " 4660+ A? www.example.com. (33)",
            " 4660 2/0/0 A 198.18.0.1, A 198.18.0.2 (65)",
            " CNAME web.example.net., A 198.18.1.1 (78)",
            ' TXT "hello" "" "a"b^A" (57)',
            " 4660Resp17 0/0/1 (44)",
            " CNAME abc.<BAD PTR> [|domain]",
            " [ECS 198.18.0.0/24/0] (55)",
            " A? \\[xab/8]. (20)",
            ".aaaaaaaaaaa<DOMAIN NAME TOO LONG> (322)",
        ):
            assert any(line.endswith(shown) for line in theirs), shown
