"""The end of a TCP line for a payload on a port tcpdump decodes: ``: HTTP: GET / HTTP/1.1``.

After ``length N``, when N is not 0, tcpdump 4.99's tcp_print (print-tcp.c) hands the payload
to a decoder chosen by port: the first protocol in its list whose port either end uses. xdptcp
ends the line as tcpdump does for the text protocols of that list and for SSH's version line:

- HTTP (80, 8080) and RTSP (554, 8554): ``: HTTP``, then ``: `` and the first line when the
  payload starts as a request (a method tcpdump knows) or a response (a three-digit code as
  the second word);
- FTP (21), SMTP (25), WHOIS (43): ``: FTP``, then ``: `` and the first line;
- SSH (22): ``: SSH: SSH-2.0-...`` when the payload is a version line, else nothing.

A line is printed only when it is printable ASCII (tabs allowed) up to a CR-LF or LF. A
payload whose captured bytes end before the decoder is done ends with tcpdump's ``[|http]``
note (in the decoder's name): with xdptcp's default capture, which keeps no payload, an HTTP
segment prints ``: HTTP`` and an SSH one ``[|ssh]``, as with ``tcpdump -s`` at the same length.
With -v the text protocols print every line of a request or response, each on a line of its
own after ``: HTTP, length: N`` (txtproto_print()).

The other protocols of the list, as without -v (what -v changes: DNS's records, ``xdptcp.dns``;
PPTP's header and codes; MSDP's lengths; RPKI-RTR's PDUs and LDP's messages, decoded
(``xdptcp.ldp``); telnet's commands in hex with -X -vvv; BGP and OpenFlow print as without it):

- BGP (179) and RPKI-RTR (323): ``: BGP`` and ``, RPKI-RTR`` whatever the payload (tcpdump
  decodes their messages only with -v);
- BEEP (10288): ``BEEP MSG``, ``BEEP RPY``... by the first four bytes, as tcpdump tells them;
- Redis (6379): its requests and replies as tcpdump prints them (``: RESP "SET" "key" "1"``);
- telnet (23): the commands a payload starts with (`` [telnet DO ECHO, WILL NAWS]``; with -X
  and -vvv each on a line of its own, its bytes in hex first, as tcpdump dumps them);
- MSDP (639): its messages' kinds (``: msdp SA 2 entries``);
- DNS over TCP (53): queries and responses, `` 4660+ A? example.com. (29)`` (``xdptcp.dns``);
- LDP (646): the first PDU's header (``LDP, Label-Space-ID: 198.18.0.1:0, pdu-length: 30``);
- OpenFlow (6633, 6653): each message's header, on a line of its own as in tcpdump
  (``\n\tversion 1.0, type HELLO, length 8, xid 0x00000001``);
- PPTP (1723): its control messages' fields (``: pptp CTRL_MSGTYPE=SCCRQ PROTO_VER(1.0) ...``);
- NFS (2049): nothing, as tcpdump for fewer than 12 payload bytes. NFS calls and replies
  with more are not decoded.

NetBIOS (139) and SMB (445) are not in the list of tcpdump built without its SMB decoder (its
default, and Debian's build): nothing, and a segment from port 139 to port 80 is HTTP's.

Their ports take precedence as in tcpdump's list (a segment from port 23 to port 80 is
telnet's, not HTTP's).
"""

from __future__ import annotations

import re
from _socket import AF_INET, AF_INET6, inet_ntop  # not socket: see xdptcp.gso

from xdptcp.payload import Truncated, Unread, be16, be32, gave_up, text, u8

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# print-tcp.c's order: the first entry either port matches decides. None: a protocol tcpdump
# decodes whose line xdptcp ends at "length N" (see the module's text).
_ORDER: tuple[tuple[tuple[int, ...], Optional[str]], ...] = (
    ((23,), "telnet"),
    ((25,), "smtp"),
    ((43,), "whois"),
    ((179,), "bgp"),
    ((1723,), "pptp"),
    ((6379,), "resp"),
    ((22,), "ssh"),
    # (NetBIOS 139 and SMB 445 come here in a tcpdump built with its SMB decoder: not
    # tcpdump's default build, nor Debian's.)
    ((10288,), "beep"),
    ((6633, 6653), "openflow"),
    ((21,), "ftp"),
    ((80, 8080), "http"),
    ((554, 8554), "rtsp"),
    ((53,), "domain"),
    ((639,), "msdp"),
    ((323,), "rpki-rtr"),
    ((646,), "ldp"),
    ((2049,), None),  # NFS: nothing for fewer than 12 payload bytes; not decoded beyond
)

# What tcpdump prints, without -v, for any payload of these.
_ALWAYS = {"bgp": ": BGP", "rpki-rtr": ", RPKI-RTR"}
# print-beep.c's first words, each compared with strncmp(word, payload, 4): the comparison takes
# the word's NUL too, so "MSG" and "END" match only when a NUL byte follows them.
_BEEP = {b"MSG\0": " BEEP MSG", b"RPY ": " BEEP RPY", b"ERR ": " BEEP ERR", b"ANS ": " BEEP ANS",
         b"NUL ": " BEEP NUL", b"SEQ ": " BEEP SEQ", b"END\0": " BEEP END"}  # fmt: skip

# print-http.c's and print-rtsp.c's request methods.
# fmt: off
_HTTP_METHODS = frozenset((
    "GET", "PUT", "COPY", "HEAD", "LOCK", "MOVE", "POLL", "POST", "BCOPY", "BMOVE", "MKCOL",
    "TRACE", "LABEL", "MERGE", "DELETE", "SEARCH", "UNLOCK", "REPORT", "UPDATE", "NOTIFY",
    "BDELETE", "CONNECT", "OPTIONS", "CHECKIN", "PROPFIND", "CHECKOUT", "CCM_POST", "SUBSCRIBE",
    "PROPPATCH", "BPROPFIND", "BPROPPATCH", "UNCHECKOUT", "MKACTIVITY", "MKWORKSPACE",
    "UNSUBSCRIBE", "RPC_CONNECT", "VERSION-CONTROL", "BASELINE-CONTROL",
))
_RTSP_METHODS = frozenset((
    "DESCRIBE", "ANNOUNCE", "GET_PARAMETER", "OPTIONS", "PAUSE", "PLAY", "RECORD", "REDIRECT",
    "SETUP", "SET_PARAMETER", "TEARDOWN",
))
# fmt: on
# Request methods of the protocols that are more than requests and responses (None: every
# payload is a request or a response).
_METHODS = {"http": _HTTP_METHODS, "rtsp": _RTSP_METHODS, "ftp": None, "smtp": None, "whois": None}

_TOKEN_MAX = 128  # fetch_token(): a 129-byte buffer, the NUL included


# Port -> (its entry's place in _ORDER, the decoder or "").
_PORTS = {port: (rank, name or "") for rank, (ports, name) in enumerate(_ORDER) for port in ports}


def decoder(sport: int, dport: int) -> Optional[str]:
    """The decoder tcpdump picks for a segment between these ports ("http", "domain"...: see
    ``_ORDER``). None for any other port, and for a pair whose first port in tcpdump's list is
    one whose line ends at ``length N`` (NFS)."""
    s, d = _PORTS.get(sport), _PORTS.get(dport)
    if s is None and d is None:
        return None
    first = s if d is None or (s is not None and s[0] <= d[0]) else d
    return first[1] or None


_SAID = {name: f": {name.upper()}" for name in _METHODS}
# What a protocol with request methods prints for a payload whose first byte starts no word
# (or is not captured): its name alone. Tested first, inline, by TextFormatter.mapped_lines.
WORDLESS = {name: said for name, said in _SAID.items() if _METHODS[name] is not None}


class _Done(Exception):
    """telnet_parse()'s pktend: the payload ends inside a telnet command."""


# Two words of printable ASCII but the space, and the spaces between them.
_TWO_WORDS = re.compile(rb"([\x21-\x7e]*)( *)([\x21-\x7e]*)")
_TEXT = re.compile(rb"[\x20-\x7e\t]*")  # a line of text: printable ASCII and tabs
_VERSION = re.compile(rb"[\x20-\x7e]*")  # SSH's version line: printable ASCII


def note(proto: str, buf, start: int, end: int, length: int, verbose: int = 0,
         hexed: bool = False) -> str:  # fmt: skip
    """What tcpdump prints after ``length N`` for a payload of ``length`` bytes (N) decoded as
    ``proto``, of which ``buf[start:end]`` were captured. ``verbose``: -v's level, for the
    decoders whose text it changes (the module's text says which); ``hexed``: -X was given,
    which with -vvv has telnet's commands dumped in hex too."""
    stop = start + length
    cap = min(end, stop)
    first = buf[start] if start < cap else -1
    if proto == "telnet" and hexed and verbose > 2:
        return _telnet(buf, start, cap, length, True)
    if proto == "domain":
        from xdptcp.dns import domain  # (imported by the first DNS payload)

        return domain(buf, start, cap, length, verbose)
    if verbose and proto in _VERBOSE:
        return _VERBOSE[proto](buf, start, cap, length, verbose)
    if proto not in _SAID and proto != "ssh":
        return _other(proto, buf, start, cap, length)
    try:
        if proto == "ssh":
            if first == -1:  # tcpdump reads the first byte whatever the payload's length
                raise Unread("")
            return "" if first != 0x53 else _ssh(buf, start, cap, stop)  # "S"
        said = WORDLESS.get(proto)
        if said is not None and not 0x21 <= first <= 0x7E:  # no word: not a request
            return said
        return _text(proto, buf, start, cap, stop, verbose)
    except Truncated as e:
        return gave_up(f"{e.args[0]} [|{proto}]", e)


def _other(proto: str, buf, start: int, cap: int, length: int) -> str:
    """``note`` for the protocols of the list but the text ones and SSH."""
    decode = _DECODERS.get(proto)
    if decode is not None:
        return decode(buf, start, cap, length)
    return _ALWAYS[proto]


def _word(buf, i: int, j: int, cap: int, stop: int) -> bool:
    """fetch_token() found a word at ``buf[i:j]`` (a run of printable ASCII but the space):
    one of at most _TOKEN_MAX bytes, ended by a space, tab, CR or LF, or by the payload's end
    (not by the captured bytes' end before it)."""
    if j == i or j - i > _TOKEN_MAX:
        return False
    if j < cap:
        return buf[j] in (0x20, 0x09, 0x0D, 0x0A)
    return j >= stop


def _line_end(buf, start: int, cap: int, stop: int, said: str) -> Optional[int]:
    """print_txt_line(): the end of the first line (before its CR-LF or LF) when the payload
    starts with one of printable ASCII and tabs, else None. Raises Truncated where tcpdump
    stops for want of captured bytes, and for a line with no end inside the payload."""
    j = _TEXT.match(buf, start, cap).end()
    if j < cap:
        c = buf[j]
        if c == 0x0A:
            return j
        if c != 0x0D or j + 1 >= stop:
            return None
        if j + 1 >= cap:
            raise Unread(said)
        return j if buf[j + 1] == 0x0A else None
    if j < stop:
        raise Unread(said)
    raise Truncated(f"{said}: {bytes(buf[start:j]).decode('ascii')}")  # (no line end: its own)


def _text(proto: str, buf, start: int, cap: int, stop: int, verbose: int = 0) -> str:
    """txtproto_print()."""
    said, methods = _SAID[proto], _METHODS[proto]
    if methods is not None:
        # A request's method, or a response's code as the second word. (After the first
        # word fetch_token() skips spaces only: a tab, CR or LF there is no second word.)
        m = _TWO_WORDS.match(buf, start, cap)
        i, j = m.span(1)
        if not _word(buf, i, j, cap, stop):
            return said
        if bytes(buf[i:j]).decode("ascii").upper() not in methods:
            i, j = m.span(3)
            if j - i != 3 or not _word(buf, i, j, cap, stop) or not bytes(buf[i:j]).isdigit():
                return said
    if verbose:
        return _lines(said, buf, start, cap, stop)
    end = _line_end(buf, start, cap, stop, said)
    return said if end is None else f"{said}: {bytes(buf[start:end]).decode('ascii')}"


def _lines(said: str, buf, start: int, cap: int, stop: int) -> str:
    """txtproto_print() with -v: the payload's length, then each line of text on a line of its
    own, up to the first that is not text (print_txt_line())."""
    out = f"{said}, length: {stop - start}"
    i = start
    while i < stop:
        j = _TEXT.match(buf, i, cap).end()
        if j >= cap:
            if j < stop:
                raise Unread(out)
            # printable to the end, no line end: printed, then tcpdump's truncation note
            raise Truncated(f"{out}\n\t{bytes(buf[i:j]).decode('ascii')}")
        c = buf[j]
        if c == 0x0D:
            if j + 1 >= stop:
                return out
            if j + 1 >= cap:
                raise Unread(out)
            if buf[j + 1] != 0x0A:
                return out
            out += f"\n\t{bytes(buf[i:j]).decode('ascii')}"
            i = j + 2
        elif c == 0x0A:
            out += f"\n\t{bytes(buf[i:j]).decode('ascii')}"
            i = j + 1
        else:
            return out
    return out


def _ssh(buf, start: int, cap: int, stop: int) -> str:
    """ssh_print_version(): the version line, when the payload is one (it starts with "S")."""
    for i, c in enumerate(b"SSH-"):  # tcpdump reads these four whatever the length
        if start + i >= cap:
            raise Unread("")
        if buf[start + i] != c:
            return ""
    j = _VERSION.match(buf, start + 4, cap).end()
    if j >= cap:  # no line end in the captured bytes
        if j < stop:
            raise Unread("")
        return ""
    if buf[j] == 0x0D and j + 1 < stop:  # a CR-LF?
        if j + 1 >= cap:
            raise Unread("")
        if buf[j + 1] == 0x0A:
            return f": SSH: {bytes(buf[start:j]).decode('ascii')}"
    return f": SSH: {bytes(buf[start:j]).decode('ascii')}" if buf[j] == 0x0A else ""


def _quoted(buf, i: int, j: int) -> str:
    """RESP_PRINT_SEGMENT(): `` "text"``."""
    return f' "{text(buf, i, j)}"'


def _resp(buf, start: int, cap: int, length: int) -> str:
    """resp_print() (print-resp.c): the payload's RESP items one after the other, each as
    tcpdump prints it; where tcpdump gives up (bytes not captured, the payload's end inside an
    item, or an item it cannot parse), what was printed and `` [|resp]``."""
    out = [": RESP"]
    pos, left = start, length
    try:
        while left > 0:
            used = _resp_item(buf, pos, left, cap, out)
            pos, left = pos + used, left - used
    except Truncated as e:
        return gave_up("".join(out) + " [|resp]", e)
    return "".join(out)


def _resp_item(buf, pos: int, left: int, cap: int, out: list) -> int:
    """resp_parse(): print the item at ``pos`` (``left`` bytes of payload from there); the
    bytes it took."""
    if left < 1:
        raise Truncated("")
    op = u8(buf, pos, cap)
    if op in b"+-:":  # simple string, error, integer: the text up to CR-LF
        end = _crlf(buf, pos + 1, left - 1, cap)[0]
        out.append(_quoted(buf, pos + 1, end))
        return end - pos + 2
    if op in b"$*":  # bulk string, array: a length first
        count, at = _resp_length(buf, pos + 1, left - 1, cap)
        rest = left - (at - pos)
        if op == 0x24 and count >= 0:  # "$"
            if count == 0:
                out.append(" empty")
            else:
                if rest < count or at + count > cap:
                    raise Truncated("")
                out.append(_quoted(buf, at, at + count))
                at, rest = at + count, rest - count
            at, rest = _crlf(buf, at, rest, cap)  # (whatever precedes it is skipped)
            return at + 2 - pos
        if op == 0x2A and count > 0:  # "*": its items
            for _ in range(count):
                used = _resp_item(buf, at, rest, cap, out)
                at, rest = at + used, rest - used
            return at - pos
        if count == -2:
            raise Truncated("")
        out.append(_RESP_LENGTHS.get(count, " invalid"))
        return at - pos
    # an inline command: a line, after any CRs and LFs, up to its CR or LF
    at, rest = _cr_or_lf(buf, pos, left, cap)
    end = at
    while True:
        if rest < 1:
            raise Truncated("")
        if u8(buf, end, cap) in (0x0D, 0x0A):
            break
        end, rest = end + 1, rest - 1
    out.append(_quoted(buf, at, end))
    return _cr_or_lf(buf, end, rest, cap)[0] - pos


# resp_get_length()'s codes but -2 (the length not captured: tcpdump gives up); 0 is an empty
# array (an empty bulk string is a length of 0 followed by its CR-LF).
_RESP_LENGTHS = {
    0: " empty",
    -1: " null",
    -3: " length too large",
    -4: " length negative and not -1",
}


def _crlf(buf, at: int, rest: int, cap: int) -> tuple[int, int]:
    """FIND_CRLF(): where the next CR-LF starts, and the payload left from there."""
    while True:
        if rest < 2 or at + 2 > cap:
            raise Truncated("")
        if buf[at] == 0x0D and buf[at + 1] == 0x0A:
            return at, rest
        at, rest = at + 1, rest - 1


def _cr_or_lf(buf, at: int, rest: int, cap: int) -> tuple[int, int]:
    """CONSUME_CR_OR_LF(): past the CRs and LFs at ``at``, of which there must be one unless
    the payload or the captured bytes end there."""
    found = False
    while True:
        if rest == 0 or at >= cap:
            if found:
                return at, rest
            raise Truncated("")
        if buf[at] not in (0x0D, 0x0A):
            return at, rest
        found, at, rest = True, at + 1, rest - 1


_INT_MAX = 0x7FFFFFFF


def _resp_length(buf, at: int, rest: int, cap: int) -> tuple[int, int]:
    """resp_get_length(): (the length, where its line ends); the length is -1 for null, -3 too
    large, -4 negative and not -1, -5 not a number, -2 cut short."""
    if rest == 0:
        return -2, at
    neg = u8(buf, at, cap) == 0x2D  # "-"
    if neg:
        at, rest = at + 1, rest - 1
    value, digits, too_large = 0, False, False
    while True:
        if rest == 0:
            return -2, at
        c = u8(buf, at, cap)
        if not 0x30 <= c <= 0x39:
            if not digits:
                return -5, at + 1
            break
        c -= 0x30
        if value > _INT_MAX // 10:
            too_large = True
        else:
            value *= 10
            if value == (_INT_MAX // 10) * 10 and c > _INT_MAX % 10:
                too_large = True
            else:
                value += c
        at, rest, digits = at + 1, rest - 1, True
    if u8(buf, at, cap) != 0x0D:
        return -5, at + 1
    at, rest = at + 1, rest - 1
    if rest == 0:
        return -2, at
    if u8(buf, at, cap) != 0x0A:
        return -5, at + 1
    at += 1
    if neg:
        if too_large or value != 1:
            return -4, at
        value = -1
    return (-3 if too_large else value), at


# print-telnet.c's names: commands from 236 (xEOF) to 255 (IAC), options, and the words of the
# suboptions it names (None: a number where the table has a hole).
# fmt: off
_TELCMDS = ("EOF", "SUSP", "ABORT", "EOR", "SE", "NOP", "DMARK", "BRK", "IP", "AO", "AYT", "EC",
            "EL", "GA", "SB", "WILL", "WONT", "DO", "DONT", "IAC")
_TELOPTS = (
    "BINARY", "ECHO", "RCP", "SUPPRESS GO AHEAD", "NAME", "STATUS", "TIMING MARK", "RCTE", "NAOL",
    "NAOP", "NAOCRD", "NAOHTS", "NAOHTD", "NAOFFD", "NAOVTS", "NAOVTD", "NAOLFD", "EXTEND ASCII",
    "LOGOUT", "BYTE MACRO", "DATA ENTRY TERMINAL", "SUPDUP", "SUPDUP OUTPUT", "SEND LOCATION",
    "TERMINAL TYPE", "END OF RECORD", "TACACS UID", "OUTPUT MARKING", "TTYLOC", "3270 REGIME",
    "X.3 PAD", "NAWS", "TSPEED", "LFLOW", "LINEMODE", "XDISPLOC", "OLD-ENVIRON",
    "AUTHENTICATION", "ENCRYPT", "NEW-ENVIRON",
)
_SUBOPTION_WORDS = {
    37: (("IS", "SEND", "REPLY", "NAME"),
         ("NULL", "KERBEROS_V4", "KERBEROS_V5", "SPX", "MINK", "SRP", "RSA", "SSL", None, None,
          "LOKI", "SSA", "KEA_SJ", "KEA_SJ_INTEG", "DSS", "NTLM")),
    38: (("IS", "SUPPORT", "REPLY", "START", "END", "REQUEST-START", "REQUEST-END", "END_KEYID",
          "DEC_KEYID"),
         ("NULL", "DES_CFB64", "DES_OFB64", "DES3_CFB64", "DES3_OFB64", None, "CAST5_40_CFB64",
          "CAST5_40_OFB64", "CAST128_CFB64", "CAST128_OFB64")),
}
_SUBOPTION_IS = (("IS", "SEND", "INFO"),)  # any other option: its first byte only
# fmt: on
_IAC, _SB, _SE = 255, 250, 240


def _hex(x: int) -> str:
    """C's ``%#x``: ``0`` for zero, else ``0x`` and the digits."""
    return f"{x:#x}" if x else "0"


def _telnet(buf, start: int, cap: int, length: int, hexed: bool = False) -> str:
    """telnet_print(): the commands the payload starts with, `` [telnet DO ECHO, ...]``;
    nothing when it starts with data. ``hexed`` (-X -vvv): after ``\nTelnet:``, each command
    on a line of its own, its bytes in hex (at their offset in the payload) before its text."""
    out: list[str] = []
    pos = start
    try:
        while length > 0 and u8(buf, pos, cap) == _IAC:
            text: list[str] = []
            used = _telnet_command(buf, pos, length, cap, text)
            if used < 0:
                break
            if hexed:
                if not out:
                    out.append("\nTelnet:")
                _hex_lines(buf, pos, used, pos - start, cap, out)
                out.append("\n\t\t\t\t" if used > 8 else " " * ((8 - used) * 3) + "\t")
            else:
                out.append(", " if out else " [telnet ")
            out.extend(text)
            length = (length - used) & 0xFFFFFFFF  # (a u_int: past the payload, it wraps)
            pos += used
    except Truncated as e:  # (no closing bracket: tcpdump stops there)
        return gave_up("".join(out) + " [|telnet]", e)
    if not out:
        return ""
    return "".join(out) + ("\n" if hexed else "]")


def _hex_lines(buf, at: int, size: int, offset: int, cap: int, out: list) -> None:
    """hex_print_with_offset(): ``size`` bytes from ``at`` as 16-bit words, eight a line, each
    line after ``\n`` and the offset of its first byte (from ``offset``); as far as the capture
    goes (``cap``), then ``Unread`` if it ends first (tcpdump's longjmp)."""
    from xdptcp.hexdump import hex_only

    n = min(size, max(cap - at, 0))
    out.append(hex_only(buf[at : at + n], "\n", offset))
    if n < size:
        raise Unread("")


def _telnet_command(buf, pos: int, left: int, cap: int, text: list) -> int:
    """telnet_parse(): the bytes of the command at ``pos`` (-1: not one tcpdump prints), its
    text appended to ``text``."""
    at = pos

    def fetch() -> int:
        nonlocal at, left
        if left < 1:
            raise _Done
        c = u8(buf, at, cap)
        at, left = at + 1, left - 1
        return c

    try:
        fetch()  # the IAC
        c = fetch()
        if c == _IAC:
            text.append("IAC IAC")
        elif c < 236:
            return -1
        elif c not in (251, 252, 253, 254, _SB):  # WILL, WONT, DO, DONT, SB
            text.append(_TELCMDS[c - 236])
        else:
            x = fetch()
            name = _TELOPTS[x] if x < len(_TELOPTS) else _hex(x)
            text.append(f"{_TELCMDS[c - 236]} {name}")
            if c == _SB:  # up to IAC SE: the suboption's bytes
                end = at
                while left > end + 1 - at:
                    if u8(buf, end, cap) == _IAC and u8(buf, end + 1, cap) == _SE:
                        break
                    end += 1
                if u8(buf, end, cap) != _IAC:
                    return -1
                for words in _SUBOPTION_WORDS.get(x, _SUBOPTION_IS):
                    if end <= at:
                        break
                    w = fetch()
                    text.append(" " + (words[w] if w < len(words) and words[w] else _hex(w)))
                while end > at:
                    text.append(" " + _hex(fetch()))
                text.append(" SE")
                at += 2  # the IAC SE, whether the payload holds it or not
    except _Done:
        return -1
    return at - pos


_MSDP_KINDS = {1: " SA", 2: " SA-Request", 3: " SA-Response", 4: " Keepalive", 5: " Notification"}


def _msdp(buf, start: int, cap: int, length: int, verbose: int = 0) -> str:
    """msdp_print(): each message's kind; `` [|msdp]`` where the payload is no MSDP message
    (a first one of a kind or length that cannot be) or its bytes run out. With -v each
    message's length too (with -vv tcpdump also decodes the datagram a Source-Active message
    carries: not here)."""
    out = [": msdp"]
    pos = start
    try:
        kind, size = u8(buf, pos, cap), be16(buf, pos + 1, cap)
        if size > 1500 or size < 3 or kind == 0 or kind > 7:
            raise Truncated("")
        while length:
            kind, size = u8(buf, pos, cap), be16(buf, pos + 1, cap)
            if size > 1400 or verbose:
                out.append(f" [len {size}]")
            if size < 3 or length < size:
                raise Truncated("")
            pos, length = pos + 3, length - 3
            out.append(_MSDP_KINDS.get(kind, f" [type={kind} len={size}]"))
            if kind in (1, 3):
                entries = u8(buf, pos, cap)
                out.append(f" {entries} entries")
                if entries * 12 + 8 < size:
                    out.append(" [w/data]")
            elif kind == 2:
                if pos + 5 > cap:  # (GET_IPADDR_STRING: the whole address, or nothing)
                    raise Unread("")
                out.append(" for " + inet_ntop(AF_INET, bytes(buf[pos + 1 : pos + 5])))
            elif kind == 4 and size != 3:
                out.append(f"[len={size}] ")
            pos, length = pos + size - 3, length - (size - 3)
    except Truncated as e:
        return gave_up("".join(out) + " [|msdp]", e)
    return "".join(out)


_OF_VERSIONS = {1: "1.0", 2: "1.1", 3: "1.2", 4: "1.3", 5: "1.4", 6: "1.5"}
_ANY = 0xFFFF  # a body of any length
# print-openflow-1.0.c's and print-openflow-1.3.c's message types, by number: the name, and the
# shortest and longest body (the message less its 8-byte header) tcpdump accepts for the type
# (REQ_FIXLEN: one length, REQ_MINLEN: from a length up, REQ_NONE: any).
# fmt: off
_OF_TYPES = {
    1: (("HELLO", 0, _ANY), ("ERROR", 4, _ANY), ("ECHO_REQUEST", 0, _ANY), ("ECHO_REPLY", 0, _ANY),
        ("VENDOR", 4, _ANY), ("FEATURES_REQUEST", 0, 0), ("FEATURES_REPLY", 24, _ANY),
        ("GET_CONFIG_REQUEST", 0, 0), ("GET_CONFIG_REPLY", 4, 4), ("SET_CONFIG", 4, 4),
        ("PACKET_IN", 10, _ANY), ("FLOW_REMOVED", 80, 80), ("PORT_STATUS", 56, 56),
        ("PACKET_OUT", 8, _ANY), ("FLOW_MOD", 64, _ANY), ("PORT_MOD", 24, 24),
        ("STATS_REQUEST", 4, _ANY), ("STATS_REPLY", 4, _ANY), ("BARRIER_REQUEST", 0, 0),
        ("BARRIER_REPLY", 0, 0), ("QUEUE_GET_CONFIG_REQUEST", 4, 4),
        ("QUEUE_GET_CONFIG_REPLY", 8, _ANY)),
    4: (("HELLO", 0, _ANY), ("ERROR", 4, _ANY), ("ECHO_REQUEST", 0, _ANY), ("ECHO_REPLY", 0, _ANY),
        ("EXPERIMENTER", 8, _ANY), ("FEATURES_REQUEST", 0, 0), ("FEATURES_REPLY", 24, 24),
        ("GET_CONFIG_REQUEST", 0, 0), ("GET_CONFIG_REPLY", 4, 4), ("SET_CONFIG", 4, 4),
        ("PACKET_IN", 0, _ANY), ("FLOW_REMOVED", 0, _ANY), ("PORT_STATUS", 72, 72),
        ("PACKET_OUT", 0, _ANY), ("FLOW_MOD", 0, _ANY), ("GROUP_MOD", 0, _ANY),
        ("PORT_MOD", 32, 32), ("TABLE_MOD", 8, 8), ("MULTIPART_REQUEST", 0, _ANY),
        ("MULTIPART_REPLY", 0, _ANY), ("BARRIER_REQUEST", 0, 0), ("BARRIER_REPLY", 0, 0),
        ("QUEUE_GET_CONFIG_REQUEST", 8, 8), ("QUEUE_GET_CONFIG_REPLY", 0, _ANY),
        ("ROLE_REQUEST", 16, 16), ("ROLE_REPLY", 16, 16), ("GET_ASYNC_REQUEST", 0, 0),
        ("GET_ASYNC_REPLY", 24, 24), ("SET_ASYNC", 24, 24), ("METER_MOD", 0, _ANY)),
}
# fmt: on


def _openflow(buf, start: int, cap: int, length: int) -> str:
    """openflow_print() without -v: each message's header on a line of its own (tcpdump decodes
    the bodies only with -v); `` (invalid)`` after a body of a length its type cannot have,
    `` (end of TCP payload)`` after a header the payload ends inside."""
    out = [": OpenFlow"]
    pos, left = start, length
    try:
        while left:
            version = u8(buf, pos, cap)
            out.append("\n\tversion " + _OF_VERSIONS.get(version, f"unknown (0x{version:02x})"))
            pos, left = pos + 1, left - 1
            if left < 1:
                return _of_ends_in_header(out, pos, left, cap)
            kind = u8(buf, pos, cap)
            types = _OF_TYPES.get(version, ())
            known = types[kind] if kind < len(types) else None
            out.append(f", type {known[0]}" if known else f", type unknown (0x{kind:02x})")
            pos, left = pos + 1, left - 1
            if left < 2:
                return _of_ends_in_header(out, pos, left, cap)
            size = be16(buf, pos, cap)
            out.append(f", length {size}" if size >= 8 else f", length {size} (too short!)")
            pos, left = pos + 2, left - 2
            if left < 4:
                return _of_ends_in_header(out, pos, left, cap)
            out.append(f", xid 0x{be32(buf, pos, cap):08x}")
            pos, left = pos + 4, left - 4
            if size < 8:  # the rest of the segment is not read
                out.append(" (invalid)")
                body = left
            else:
                body = size - 8
                if known is not None and not known[1] <= body <= known[2]:
                    out.append(" (invalid)")
            if pos + body > cap:  # the body must be captured, even past the segment's end
                raise Unread("")  # (ND_TCHECK_LEN: abandoned)
            if size < 8 or body > left:
                break
            pos, left = pos + body, left - body
    except Truncated as e:
        return gave_up("".join(out) + " [|openflow]", e)
    return "".join(out)


def _of_ends_in_header(out: list, pos: int, left: int, cap: int) -> str:
    """The payload ends inside a message's header: the rest of it must have been captured."""
    out.append(
        " (end of TCP payload)" if pos + left <= cap else " (end of TCP payload) [|openflow]"
    )
    return "".join(out)


_PPTP_TYPES = ("NOT_DEFINED", "SCCRQ", "SCCRP", "StopCCRQ", "StopCCRP", "ECHORQ", "ECHORP",
               "OCRQ", "OCRP", "ICRQ", "ICRP", "ICCN", "CCRQ", "CDN", "WEN", "SLI")  # fmt: skip
# print-pptp.c's control messages without -v: each field in turn, (label, width, how). How:
# "u" ``LABEL(n)``; "x" ``LABEL(0x%08x)``; "-" reserved, printed only when not zero; "s" text up
# to its first NUL; a label: text up to its first NUL and at most as long as that field says.
_PPTP_FIELDS: dict[int, tuple[tuple[str, int, str], ...]] = {
    1: (("PROTO_VER", 2, "ver"), ("", 2, "-"), ("FRAME_CAP", 4, "fcap"), ("BEARER_CAP", 4, "bcap"),
        ("MAX_CHAN", 2, "u"), ("FIRM_REV", 2, "u"), ("HOSTNAME", 64, "s"), ("VENDOR", 64, "s")),
    2: (("PROTO_VER", 2, "ver"), ("RESULT_CODE", 1, "u"), ("ERR_CODE", 1, "u"),
        ("FRAME_CAP", 4, "fcap"), ("BEARER_CAP", 4, "bcap"), ("MAX_CHAN", 2, "u"),
        ("FIRM_REV", 2, "u"), ("HOSTNAME", 64, "s"), ("VENDOR", 64, "s")),
    3: (("REASON", 1, "u"), ("", 1, "-"), ("", 2, "-")),
    4: (("RESULT_CODE", 1, "u"), ("ERR_CODE", 1, "u"), ("", 2, "-")),
    5: (("ID", 4, "u"),),
    6: (("ID", 4, "u"), ("RESULT_CODE", 1, "u"), ("ERR_CODE", 1, "u"), ("", 2, "-")),
    7: (("CALL_ID", 2, "u"), ("CALL_SER_NUM", 2, "u"), ("MIN_BPS", 4, "u"), ("MAX_BPS", 4, "u"),
        ("BEARER_TYPE", 4, "btype"), ("FRAME_TYPE", 4, "ftype"), ("RECV_WIN", 2, "u"),
        ("PROC_DELAY", 2, "u"), ("PHONE_NO_LEN", 2, "u"), ("", 2, "-"),
        ("PHONE_NO", 64, "PHONE_NO_LEN"), ("SUB_ADDR", 64, "s")),
    8: (("CALL_ID", 2, "u"), ("PEER_CALL_ID", 2, "u"), ("RESULT_CODE", 1, "u"),
        ("ERR_CODE", 1, "u"), ("CAUSE_CODE", 2, "u"), ("CONN_SPEED", 4, "u"), ("RECV_WIN", 2, "u"),
        ("PROC_DELAY", 2, "u"), ("PHY_CHAN_ID", 4, "u")),
    9: (("CALL_ID", 2, "u"), ("CALL_SER_NUM", 2, "u"), ("BEARER_TYPE", 4, "btype"),
        ("PHY_CHAN_ID", 4, "u"), ("DIALED_NO_LEN", 2, "u"), ("DIALING_NO_LEN", 2, "u"),
        ("DIALED_NO", 64, "DIALED_NO_LEN"), ("DIALING_NO", 64, "DIALING_NO_LEN"),
        ("SUB_ADDR", 64, "s")),
    10: (("CALL_ID", 2, "u"), ("PEER_CALL_ID", 2, "u"), ("RESULT_CODE", 1, "u"),
         ("ERR_CODE", 1, "u"), ("RECV_WIN", 2, "u"), ("PROC_DELAY", 2, "u"), ("", 2, "-")),
    11: (("PEER_CALL_ID", 2, "u"), ("", 2, "-"), ("CONN_SPEED", 4, "u"), ("RECV_WIN", 2, "u"),
         ("PROC_DELAY", 2, "u"), ("FRAME_TYPE", 4, "ftype")),
    12: (("CALL_ID", 2, "u"), ("", 2, "-")),
    13: (("CALL_ID", 2, "u"), ("RESULT_CODE", 1, "u"), ("ERR_CODE", 1, "u"),
         ("CAUSE_CODE", 2, "u"), ("", 2, "-"), ("CALL_STATS", 128, "s")),
    14: (("PEER_CALL_ID", 2, "u"), ("", 2, "-"), ("CRC_ERR", 4, "u"), ("FRAMING_ERR", 4, "u"),
         ("HARDWARE_OVERRUN", 4, "u"), ("BUFFER_OVERRUN", 4, "u"), ("TIMEOUT_ERR", 4, "u"),
         ("ALIGN_ERR", 4, "u")),
    15: (("PEER_CALL_ID", 2, "u"), ("", 2, "-"), ("SEND_ACCM", 4, "x"), ("RECV_ACCM", 4, "x")),
}  # fmt: skip
# With -v: the message's kind by the header's type, and the meaning of a code by its field and
# the control message it is in (print-pptp.c's tables).
_PPTP_KINDS = {1: " CTRL-MSG", 2: " MGMT-MSG"}
_PPTP_ERRORS = dict(enumerate(("None", "Not-Connected", "Bad-Format", "Bad-Value", "No-Resource",
                               "Bad-Call-ID", "PAC-Error")))  # fmt: skip
_PPTP_ECHO = {1: "OK", 2: "General Error"}
_PPTP_CODES = {
    ("RESULT_CODE", 2): {1: "Successful channel establishment", 2: "General error",
                         3: "Command channel already exists",
                         4: "Requester is not authorized to establish a command channel",
                         5: "The protocol version of the requester is not supported"},
    ("RESULT_CODE", 4): _PPTP_ECHO,
    ("RESULT_CODE", 6): _PPTP_ECHO,
    ("RESULT_CODE", 8): {1: "Connected", 2: "General Error", 3: "No Carrier", 4: "Busy",
                         5: "No Dial Tone", 6: "Time-out", 7: "Do Not Accept"},
    ("RESULT_CODE", 10): {1: "Connect", 2: "General Error", 3: "Do Not Accept"},
    ("RESULT_CODE", 13): {1: "Lost Carrier", 2: "General Error", 3: "Admin Shutdown",
                          4: "Request"},
    ("REASON", 3): {1: "None", 2: "Stop-Protocol", 3: "Stop-Local-Shutdown"},
    **{("ERR_CODE", kind): _PPTP_ERRORS for kind in (2, 4, 6, 8, 10, 13)},
}  # fmt: skip
_PPTP_BEARER_TYPES = {1: "A", 2: "D", 3: "Any"}
_PPTP_FRAME_TYPES = {1: "A", 2: "S", 3: "E"}
_PPTP_COOKIE = 0x1A2B3C4D
_READ = {1: u8, 2: be16, 4: be32}


def _pptp(buf, start: int, cap: int, length: int, verbose: int = 0) -> str:
    """pptp_print(): the control message's type and each of its fields in turn; with -v the
    message's length and kind, the magic cookie, and the meaning of its codes."""
    out = [": pptp"]
    try:
        if verbose:
            out.append(f" Length={be16(buf, start, cap)}")
            out.append(_PPTP_KINDS.get(be16(buf, start + 2, cap), " UNKNOWN-MSG-TYPE"))
        cookie = be32(buf, start + 4, cap)
        if cookie != _PPTP_COOKIE:
            out.append(f" UNEXPECTED Magic-Cookie!!({cookie:08x})")
        if verbose or cookie != _PPTP_COOKIE:
            out.append(f" Magic-Cookie={cookie:08x}")
        kind = be16(buf, start + 8, cap)
        out.append(f" CTRL_MSGTYPE={_PPTP_TYPES[kind]}" if kind < 16 else
                   f" UNKNOWN_CTRL_MSGTYPE({kind})")  # fmt: skip
        _pptp_reserved(be16(buf, start + 10, cap), out)
        pos, said = start + 12, {}
        for label, width, how in _PPTP_FIELDS.get(kind, ()):
            if width > 4:  # text
                most = width if how == "s" else min(width, said[how])
                out.append(f" {label}(")
                end = pos
                try:  # (a byte at a time: what was printed stays when the bytes run out)
                    while end < pos + most and u8(buf, end, cap):
                        end += 1
                finally:
                    out.append(text(buf, pos, end))
                out.append(")")
            else:
                if how == "fcap":  # (pptp_framing_cap_print prints its label, then reads)
                    out.append(f" {label}(")
                value = said[label] = _READ[width](buf, pos, cap)
                if how == "-":
                    _pptp_reserved(value, out)
                elif how == "u":
                    names = _PPTP_CODES.get((label, kind)) if verbose else None
                    said_name = "" if names is None else f":{names.get(value, '?')}"
                    out.append(f" {label}({value}{said_name})")
                elif how == "x":
                    out.append(f" {label}(0x{value:08x})")
                elif how == "ver":
                    out.append(f" {label}({value >> 8}.{value & 0xFF})")
                elif how == "fcap":
                    out.append(f"{'A' if value & 1 else ''}{'S' if value & 2 else ''})")
                elif how == "bcap":
                    out.append(f" {label}({'D' if value & 2 else ''}{'A' if value & 1 else ''})")
                else:
                    names = _PPTP_BEARER_TYPES if how == "btype" else _PPTP_FRAME_TYPES
                    out.append(f" {label}({names.get(value, '?')})")
            pos += width
    except Truncated as e:
        return gave_up("".join(out) + " [|pptp]", e)
    return "".join(out)


def _pptp_reserved(value: int, out: list) -> None:
    """PRINT_RESERVED_IF_NOT_ZERO_1/2."""
    if value:
        out.append(f" [ERROR: reserved={value} must be zero]")


def _rpki_rtr(buf, start: int, cap: int, length: int, verbose: int) -> str:
    """rpki_rtr_print() with -v: each PDU's header and fields, each on a line of its own; with
    -vv (and for a PDU of a kind it does not know) its bytes in hex."""
    out: list[str] = []
    try:
        while length:
            size = _rpki_pdu(buf, start, cap, length, True, 8, verbose, out)
            start, length = start + size, length - size
    except Truncated as e:
        return gave_up("".join(out) + " [|rpki_rtr]", e)
    return "".join(out)


_RPKI_PDUS = {0: "Serial Notify", 1: "Serial Query", 2: "Reset Query", 3: "Cache Response",
              4: "IPV4 Prefix", 6: "IPV6 Prefix", 7: "End of Data", 8: "Cache Reset",
              10: "Error Report"}  # fmt: skip
_RPKI_ERRORS = dict(enumerate(("Corrupt Data", "Internal Error", "No Data Available",
                               "Invalid Request", "Unsupported Protocol Version",
                               "Unsupported PDU Type", "Withdrawal of Unknown Record",
                               "Duplicate Announcement Received")))  # fmt: skip


def _indent(n: int) -> str:
    """indent_string(): a new line, a tab for each 8, a space for each 1 left."""
    return "\n" + "\t" * (n // 8) + " " * (n % 8)


def _rpki_pdu(buf, at: int, cap: int, length: int, recurse: bool, indent: int, verbose: int,
              out: list) -> int:  # fmt: skip
    """rpki_rtr_pdu_print(): one PDU at ``at`` of the ``length`` bytes left; its length (all
    that is left when it cannot be decoded)."""
    version = u8(buf, at, cap)
    if version:
        out.append(f"{_indent(8)}RPKI-RTRv{version} (unknown)")
        return length
    if length < 8:
        out.append(f"({length} bytes is too few to decode)")
        return _rpki_invalid(at, cap, length, out)
    if at + 8 > cap:
        raise Unread("")
    kind, code, size = buf[at + 1], be16(buf, at + 2, cap), be32(buf, at + 4, cap)
    out.append(f"{_indent(8)}RPKI-RTRv0, {_RPKI_PDUS.get(kind, 'Unknown')} PDU ({kind}), "
               f"length: {size}")  # fmt: skip
    if size < 8 or size > length:
        return _rpki_invalid(at, cap, length, out)
    fields, dump = _indent(indent + 2), False
    if kind in (0, 1, 7):
        if size != 12:
            return _rpki_invalid(at, cap, length, out)
        out.append(f"{fields}Session ID: 0x{code:04x}, Serial: {be32(buf, at + 8, cap)}")
    elif kind in (2, 8):
        if size != 8:
            return _rpki_invalid(at, cap, length, out)
    elif kind == 3:
        if size != 8:
            return _rpki_invalid(at, cap, length, out)
        out.append(f"{fields}Session ID: 0x{code:04x}")
    elif kind in (4, 6):
        width = 4 if kind == 4 else 16
        if size != 16 + width:
            return _rpki_invalid(at, cap, length, out)
        if at + 16 + width > cap:
            raise Unread("")
        prefix = inet_ntop(
            AF_INET if kind == 4 else AF_INET6, bytes(buf[at + 12 : at + 12 + width])
        )
        flags, plen, most = buf[at + 8], buf[at + 9], buf[at + 10]
        origin = be32(buf, at + 12 + width, cap)
        out.append(f"{fields}IPv{kind} Prefix {prefix}/{plen}-{most}, origin-as {origin}, "
                   f"flags 0x{flags:02x}")  # fmt: skip
    elif kind == 10:
        used = 8
        if size < used + 4:
            return _rpki_invalid(at, cap, length, out)
        if at + used + 4 > cap:
            raise Unread("")
        inner = be32(buf, at + 8, cap)
        used += 4
        out.append(f"{fields}Error code: {_RPKI_ERRORS.get(code, 'Unknown')} ({code}), "
                   f"Encapsulated PDU length: {inner}")  # fmt: skip
        if inner:
            if size < used + inner:
                return _rpki_invalid(at, cap, length, out)
            if not recurse:
                if at + used + inner > cap:
                    raise Unread("")
            else:
                out.append(f"{_indent(indent + 4)}-----encapsulated PDU-----")
                _rpki_pdu(buf, at + used, cap, inner, False, indent + 2, verbose, out)
            used += inner
        if size < used + 4:
            return _rpki_invalid(at, cap, length, out)
        if at + used + 4 > cap:
            raise Unread("")
        text_length = be32(buf, at + used, cap)
        used += 4
        if text_length:
            if size < used + text_length:
                return _rpki_invalid(at, cap, length, out)
            out.append(f"{fields}Error text: ")
            end = at + used + text_length
            out.append(text(buf, at + used, min(end, cap)))
            if end > cap:  # nd_printn() reads a byte at a time, to the first not captured
                raise Unread("")
    else:
        if at + size > cap:
            raise Unread("")
        dump = True
    if verbose > 1 or dump:
        from xdptcp.hexdump import unknown_data

        out.append(unknown_data(buf, at, cap, "\n\t  ", size))
    return size


def _rpki_invalid(at: int, cap: int, length: int, out: list) -> int:
    """nd_print_invalid(), then the check that what is left was captured."""
    out.append(" (invalid)")
    if at + length > cap:
        raise Unread("")
    return length


def _beep(buf, start: int, cap: int, length: int) -> str:
    """beep_print(): the message's kind by its first word (fewer than four bytes captured:
    none can match)."""
    head = bytes(buf[start : start + 4]) if cap - start >= 4 else b""
    return _BEEP.get(head, " BEEP (payload or undecoded)")


def _ldp(buf, start: int, cap: int, length: int) -> str:
    """ldp_print() without -v: the first PDU's header (no space before it, as in tcpdump);
    nothing for a payload too short for a PDU and a message header."""
    if length <= 18:
        return ""
    if cap - start < 10:
        return " [|ldp]"
    version, size = be16(buf, start, cap), be16(buf, start + 2, cap)
    if version != 1:
        return f"LDP version {version} packet not supported"
    if size < 6:
        return f"LDP, pdu-length: {size} (too short, < 6)"
    lsr = inet_ntop(AF_INET, bytes(buf[start + 4 : start + 8]))
    return f"LDP, Label-Space-ID: {lsr}:{be16(buf, start + 8, cap)}, pdu-length: {size}"


# The protocols decoded here whole (as tcpdump does without -v), each by its function.
_DECODERS = {
    "beep": _beep,
    "resp": _resp,
    "telnet": _telnet,
    "msdp": _msdp,
    "ldp": _ldp,
    "openflow": _openflow,
    "pptp": _pptp,
}


# The decoders whose text -v changes, given the level.
def _ldp_verbose(buf, start: int, cap: int, length: int, verbose: int) -> str:
    from xdptcp.ldp import ldp  # (imported by the first LDP payload with -v)

    return ldp(buf, start, cap, length, verbose)


_VERBOSE = {"msdp": _msdp, "pptp": _pptp, "rpki-rtr": _rpki_rtr, "ldp": _ldp_verbose}
