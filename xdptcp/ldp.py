"""LDP (port 646) with -v, as tcpdump 4.99's ldp_print (print-ldp.c) prints it: each PDU's
header, each message's header and each TLV's header and fields on lines of their own; with -vv
each message's bytes in hex too. Without -v, ``xdptcp.appproto`` prints the first PDU's header
alone, as tcpdump does.

A read past the captured bytes ends the line with ``[|ldp]`` (tcpdump's printer is abandoned
there: ``payload.Unread``).
"""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_ntop  # not socket: see xdptcp.gso

from xdptcp.hexdump import unknown_data
from xdptcp.payload import Truncated, Unread, be16, be32, gave_up, text, u8

_MESSAGES = {0x0001: "Notification", 0x0100: "Hello", 0x0200: "Initialization",
             0x0201: "Keepalive", 0x0300: "Address", 0x0301: "Address Withdraw",
             0x0400: "Label Mapping", 0x0401: "Label Request", 0x0402: "Label Withdraw",
             0x0403: "Label Release", 0x0404: "Label Abort Request"}  # fmt: skip
# Messages whose TLVs are decoded (the others are dumped in hex with -v).
_WITH_TLVS = frozenset((0x0001, 0x0100, 0x0200, 0x0201, 0x0300, 0x0400, 0x0301, 0x0402))
_TLVS = {0x0100: "FEC", 0x0101: "Address List", 0x0103: "Hop Count", 0x0104: "Path Vector",
         0x0200: "Generic Label", 0x0201: "ATM Label", 0x0202: "Frame-Relay Label",
         0x0300: "Status", 0x0301: "Extended Status", 0x0302: "Returned PDU",
         0x0303: "Returned Message", 0x0400: "Common Hello Parameters",
         0x0401: "IPv4 Transport Address", 0x0402: "Configuration Sequence Number",
         0x0403: "IPv6 Transport Address", 0x0500: "Common Session Parameters",
         0x0501: "ATM Session Parameters", 0x0502: "Frame-Relay Session Parameters",
         0x0503: "Fault-Tolerant Session Parameters", 0x0600: "Label Request Message ID",
         0x0601: "MTU"}  # fmt: skip
_FECS = {0x01: "Wildcard", 0x02: "Prefix", 0x03: "Host address", 0x80: "Martini VC"}
_FAMILIES = {0: "Reserved", 1: "IPv4", 2: "IPv6", 3: "NSAP", 4: "HDLC", 5: "BBN 1822",
             6: "802", 7: "E.163", 8: "E.164", 9: "F.69", 10: "X.121", 11: "Novell IPX",
             12: "Appletalk", 13: "Decnet IV", 14: "Banyan Vines",
             15: "E.164 with NSAP subaddress", 196: "Layer-2 VPN", 25: "VPLS"}  # fmt: skip
_PW_TYPES = dict(enumerate((
    "Reserved", "Frame Relay DLCI (Martini Mode)", "ATM AAL5 SDU VCC transport",
    "ATM transparent cell transport", "Ethernet VLAN", "Ethernet", "Cisco-HDLC", "PPP",
    "SONET/SDH Circuit Emulation Service over MPLS", "ATM n-to-one VCC cell transport",
    "ATM n-to-one VPC cell transport", "IP Layer2 Transport", "ATM one-to-one VCC Cell Mode",
    "ATM one-to-one VPC Cell Mode", "ATM AAL5 PDU VCC transport", "Frame-Relay Port mode",
    "SONET/SDH Circuit Emulation over Packet", "Structure-agnostic E1 over Packet",
    "Structure-agnostic T1 (DS1) over Packet", "Structure-agnostic E3 over Packet",
    "Structure-agnostic T3 (DS3) over Packet", "CESoPSN basic mode", "TDMoIP basic mode",
    "CESoPSN TDM with CAS", "TDMoIP TDM with CAS", "Frame Relay DLCI")))  # fmt: skip
_PW_TYPES[0x40] = "IP-interworking"
_IFPARMS = {0x01: "MTU", 0x03: "Description", 0x0C: "VCCV"}
_VCCV_CC = ((0x01, "PWE3 control word"), (0x02, "MPLS Router Alert Label"),
            (0x04, "MPLS inner label TTL = 1"))  # fmt: skip
_VCCV_CV = ((0x01, "ICMP Ping"), (0x02, "LSP Ping"), (0x04, "BFD"))


class _Trunc(Exception):
    """tcpdump's ``goto trunc`` to nd_trunc_longjmp(): the line ends with ``[|ldp]``."""


def ldp(buf, start: int, cap: int, length: int, verbose: int) -> str:
    """ldp_print() with -v: the PDUs in the ``length`` payload bytes at ``start`` (those before
    ``cap`` captured)."""
    out: list[str] = []
    try:
        while length > 18:  # a PDU header and a message header
            size = _pdu(buf, start, cap, verbose, out)
            if not size:
                break
            if length < size:
                out.append(f" [remaining length {length} < {size}] (invalid)")
                break
            start, length = start + size, length - size
    except (Truncated, _Trunc) as e:  # (both a read past the capture: tcpdump's longjmp)
        return gave_up("".join(out) + " [|ldp]", e if isinstance(e, Truncated) else Unread(""))
    return "".join(out)


def _pdu(buf, at: int, cap: int, verbose: int, out: list) -> int:
    """ldp_pdu_print(): its length and 4 (0 where tcpdump stops)."""
    if at + 10 > cap:
        raise _Trunc
    version, pdu_len = be16(buf, at, cap), be16(buf, at + 2, cap)
    if version != 1:
        out.append(f"\n\tLDP version {version} packet not supported")
        return 0
    if pdu_len < 6:
        out.append(f"\n\tLDP, pdu-length: {pdu_len} (too short, < 6)")
        return 0
    lsr = inet_ntop(AF_INET, bytes(buf[at + 4 : at + 8]))
    out.append(f"\n\tLDP, Label-Space-ID: {lsr}:{be16(buf, at + 8, cap)}, pdu-length: {pdu_len}")
    pos, left = at + 10, pdu_len - 6
    while left > 0:
        if pos + 8 > cap:
            raise _Trunc
        raw_type, msg_len = be16(buf, pos, cap), be16(buf, pos + 2, cap)
        kind = raw_type & 0x7FFF
        name = _MESSAGES.get(kind, "Unknown")
        if msg_len < 4:
            out.append(f"\n\t  {name} Message (0x{kind:04x}), length: {msg_len} (too short, < 4)")
            return 0
        ident = be32(buf, pos + 4, cap)
        flag = "continue processing" if raw_type & 0x8000 else "ignore"
        out.append(f"\n\t  {name} Message (0x{kind:04x}), length: {msg_len}, "
                   f"Message ID: 0x{ident:08x}, Flags: [{flag} if unknown]")  # fmt: skip
        tlv_at, tlv_left = pos + 8, msg_len - 4
        if pos + msg_len > cap:  # (the check counts from the message's start)
            raise _Trunc
        if kind in _WITH_TLVS:
            while tlv_left >= 4:
                used = _tlv(buf, tlv_at, cap, tlv_left, verbose, out)
                if not used:
                    break
                tlv_at, tlv_left = tlv_at + used, tlv_left - used
        elif verbose <= 1:
            out.append(unknown_data(buf, tlv_at, cap, "\n\t  ", tlv_left))
        if verbose > 1:
            out.append(unknown_data(buf, pos + 8, cap, "\n\t  ", msg_len))
        pos += msg_len + 4
        left = (left - (msg_len + 4)) & 0xFFFF  # (an unsigned short in tcpdump)
    return pdu_len + 4


def _tlv(buf, at: int, cap: int, msg_left: int, verbose: int, out: list) -> int:
    """ldp_tlv_print(): its length and 4 (0 when it runs past its message)."""
    if at + 4 > cap:
        raise _Trunc
    raw_type, tlv_len = be16(buf, at, cap), be16(buf, at + 2, cap)
    if tlv_len + 4 > msg_left:
        out.append("\n\t\t TLV contents go past end of message")
        return 0
    kind = raw_type & 0x3FFF
    unknown = "continue processing" if raw_type & 0x8000 else "ignore"
    forward = "do" if raw_type & 0x4000 else "don't"
    out.append(f"\n\t    {_TLVS.get(kind, 'Unknown')} TLV (0x{kind:04x}), length: {tlv_len}, "
               f"Flags: [{unknown} and {forward} forward if unknown]")  # fmt: skip
    p, left = at + 4, tlv_len
    try:
        if kind == 0x0400:
            _need(left, 4, out)
            hold, flags = be16(buf, p, cap), be16(buf, p + 2, cap)
            out.append(f"\n\t      Hold Time: {hold}s, Flags: ["
                       f"{'Targeted' if flags & 0x8000 else 'Link'} Hello"
                       f"{', Request for targeted Hellos' if flags & 0x4000 else ''}]")  # fmt: skip
        elif kind in _ONE_VALUE:
            size, label, read = _ONE_VALUE[kind]
            _need(left, size, out)
            out.append(f"\n\t      {label}: {read(buf, p, cap)}")
        elif kind == 0x0101:
            _need(left, 2, out)
            family = be16(buf, p, cap)
            p, left = p + 2, left - 2
            name = _FAMILIES.get(family, f"Unknown ({family})")
            out.append(f"\n\t      Address Family: {name}, addresses")
            width = {1: 4, 2: 16}.get(family)
            while width and left >= width:
                out.append(" " + _addr(buf, p, cap, width))
                p, left = p + width, left - width
        elif kind == 0x0500:
            _need(left, 8, out)
            version, keepalive = be16(buf, p, cap), be16(buf, p + 2, cap)
            flags = be16(buf, p + 6, cap)
            mode = "On Demand" if flags & 0x8000 else "Unsolicited"
            loops = "Enabled" if flags & 0x4000 else "Disabled"
            out.append(f"\n\t      Version: {version}, Keepalive: {keepalive}s, Flags: "
                       f"[Downstream {mode}, Loop Detection {loops}]")  # fmt: skip
        elif kind == 0x0100:
            _fec(buf, p, cap, left, out)
        elif kind == 0x0300:
            _need(left, 8, out)
            status = be32(buf, p, cap)
            level = "Fatal error" if status & 0x80000000 else "Advisory Notification"
            forward = "do" if status & 0x40000000 else "don't"
            out.append(f"\n\t      Status: 0x{status & 0x3FFFFFFF:02x}, Flags: [{level} and "
                       f"{forward} forward]")  # fmt: skip
            cause = be32(buf, p + 4, cap)
            if cause:
                out.append(f", causing Message ID: 0x{cause:08x}")
        elif kind == 0x0503:
            _need(left, 12, out)
            f = be16(buf, p, cap)
            dont = ("", "Don't ")
            out.append(
                f"\n\t      Flags: [{'' if f & 0x8000 else 'No '}Reconnect, "
                f"{dont[not f & 0x8]}Save State, "
                f"{'' if f & 0x4 else 'No '}All-Label Protection, "
                f"{'Sequence Numbered Label' if f & 0x2 else 'All Labels'} Checkpoint, "
                f"{dont[not f & 0x1]}Re-Learn State]"
            )
            reconnect, recovery = be32(buf, p + 4, cap), be32(buf, p + 8, cap)
            if reconnect:
                out.append(f", Reconnect Timeout: {reconnect}ms")
            if recovery:
                out.append(f", Recovery Time: {recovery}ms")
        elif verbose <= 1:
            out.append(unknown_data(buf, p, cap, "\n\t      ", left))
    except _Invalid:
        pass
    return tlv_len + 4


class _Invalid(Exception):
    """TLV_TCHECK() failed: tcpdump said so and goes on after the TLV."""


def _need(left: int, n: int, out: list) -> None:
    """TLV_TCHECK()."""
    if left < n:
        out.append(f" [tlv length {left} < {n}] (invalid)")
        raise _Invalid


def _addr(buf, at: int, cap: int, width: int) -> str:
    """GET_IPADDR_STRING(), GET_IP6ADDR_STRING()."""
    if at + width > cap:
        raise Unread("")
    return inet_ntop(AF_INET if width == 4 else AF_INET6, bytes(buf[at : at + width]))


# The TLVs of one value: (the length they need, its label, how it is read).
_ONE_VALUE = {
    0x0401: (4, "IPv4 Transport Address", lambda buf, p, cap: _addr(buf, p, cap, 4)),
    0x0403: (16, "IPv6 Transport Address", lambda buf, p, cap: _addr(buf, p, cap, 16)),
    0x0402: (4, "Sequence Number", be32),
    0x0200: (4, "Label", lambda buf, p, cap: be32(buf, p, cap) & 0xFFFFF),
    0x0601: (2, "MTU", be16),
}


def _fec(buf, p: int, cap: int, left: int, out: list) -> None:
    """An FEC TLV's first element."""
    _need(left, 1, out)
    fec = u8(buf, p, cap)
    out.append(f"\n\t      {_FECS.get(fec, 'Unknown')} FEC (0x{fec:02x})")
    p, left = p + 1, (left - 1) & 0xFFFF
    if fec == 0x02:
        _need(left, 2, out)
        family = be16(buf, p, cap)
        p, left = p + 2, (left - 2) & 0xFFFF
        if family in (1, 2):
            said = _prefix(buf, p, cap, left, 4 if family == 1 else 16)
            name = "IPv4" if family == 1 else "IPv6"
            out.append(f": {name} prefix (invalid length)" if said is None else
                       f": {name} prefix {said}")  # fmt: skip
        else:
            out.append(f": Address family {family} prefix")
    elif fec == 0x80:
        _martini(buf, p, cap, left, out)


def _prefix(buf, p: int, cap: int, left: int, width: int):
    """decode_prefix4() and decode_prefix6(): ``address/length``; None for a length past the
    address's bits."""
    if left < 1:
        raise _Trunc
    bits = u8(buf, p, cap)
    if bits > width * 8:
        return None
    n = (bits + 7) // 8
    if left - 1 < n:
        raise _Trunc
    if p + 1 + n > cap:
        raise Unread("")
    raw = bytearray(width)
    raw[:n] = buf[p + 1 : p + 1 + n]
    if bits % 8:
        raw[n - 1] &= (0xFF00 >> (bits % 8)) & 0xFF
    return f"{inet_ntop(AF_INET if width == 4 else AF_INET6, bytes(raw))}/{bits}"


def _martini(buf, p: int, cap: int, left: int, out: list) -> None:
    """A Martini VC FEC element and its interface parameters."""
    _need(left, 7, out)
    info_len = u8(buf, p + 2, cap)
    kind = be16(buf, p, cap)
    pw = _PW_TYPES.get(kind & 0x7FFF, "Unknown")
    cw = "" if kind & 0x8000 else "no "
    if not info_len:
        group = be32(buf, p + 3, cap)
        out.append(f": {pw}, {cw}control word, group-ID {group}, VC-info-length: {info_len}")
        return
    _need(left, 11, out)
    group, vc_id = be32(buf, p + 3, cap), be32(buf, p + 7, cap)
    out.append(f": {pw}, {cw}control word, group-ID {group}, VC-ID {vc_id}, "
               f"VC-info-length: {info_len}")  # fmt: skip
    if info_len < 4:
        out.append(" (invalid, < 4")
        return
    info_len -= 4
    p, left = p + 11, (left - 11) & 0xFFFF
    _need(left, info_len, out)
    while info_len > 2:
        kind, size = u8(buf, p, cap), u8(buf, p + 1, cap)
        if size < 2 or info_len < size:
            break
        out.append(f"\n\t\tInterface Parameter: {_IFPARMS.get(kind, 'Unknown')} "
                   f"(0x{kind:02x}), len {size}")  # fmt: skip
        if kind == 0x01:
            out.append(f": {be16(buf, p + 2, cap)}")
        elif kind == 0x03:
            out.append(": ")
            end = p + size
            out.append(text(buf, p + 2, min(end, cap)))
            if end > cap:
                raise Unread("")
        elif kind == 0x0C:
            cc, cv = u8(buf, p + 2, cap), u8(buf, p + 3, cap)
            out.append(f"\n\t\t  Control Channels (0x{cc:02x}) = [{_bits(_VCCV_CC, cc)}]")
            out.append(f"\n\t\t  CV Types (0x{cv:02x}) = [{_bits(_VCCV_CV, cv)}]")
        else:
            out.append(unknown_data(buf, p + 2, cap, "\n\t\t  ", size - 2))
        info_len -= size
        p += size


def _bits(names, value: int) -> str:
    """bittok2str() with "none" for no bit set."""
    return ", ".join(name for bit, name in names if value & bit) or "none"
