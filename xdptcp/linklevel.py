"""``-e``: the link-level header at the start of each line, as ``tcpdump -nn -e`` prints it.

tcpdump prints it in its link-layer printers, before the network layer, and with ``-e`` its IP
printers leave out their own ``IP `` and ``IP6 `` (print-ip.c, print-ip6.c: "if (!eflag)"): the
link layer has named the protocol already. So a line's network-layer text is the usual one less
that word (``TextFormatter`` with ``link_level``), after the text made here from the packet's
own link-layer header:

- Ethernet (print-ether.c): ``SRC > DST, ethertype IPv4 (0x0800), length N: ``; each VLAN tag
  adds ``ethertype 802.1Q (0x8100), length N: vlan V, p P[, DEI], `` before the next type,
  which then ends in ``, `` (the length is said once);
- Linux cooked v1 and v2 (print-sll.c): the direction (v1; v2 has it before, with the
  interface, ``-e`` or not), v2's ``ifindex I``, the address, then ``ethertype ...,
  length N: ``;
- BSD loopback (print-null.c): ``AF IPv4 (2), length N: ``; raw IP (print-raw.c): ``ip: ``;
- PPP (print-ppp.c): ``IP (0x0021), length N: ``; in HDLC framing ``ff 03 N `` before its
  ``IP: ``; Cisco HDLC (print-chdlc.c): ``unicast, ethertype IPv4 (0x0800), length N: ``.

N is the packet's length on the wire with its own link-layer header, as the record says. MAC
addresses print as tcpdump ``-n`` prints them: six lower-case hex pairs. With ``-q`` the texts
are shorter where tcpdump's are (``quiet``): a type by its name alone, nothing of a cooked
header's type and length. Lines of several interfaces are ``tcpdump -i any``'s, whose packets
have a cooked header in place of the Ethernet one: ``AnyDevice`` makes it.
"""

from __future__ import annotations

import socket
import struct
import sys

from xdptcp import linktypes as lt
from xdptcp.cutshort import TPIDS  # the tags print-ether.c walks, as the decoder does

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# af.c's bsd_af_values, the IP ones: AF_INET, and AF_INET6 of NetBSD/OpenBSD, FreeBSD, Darwin.
_BSD_AF = {2: "IPv4", 24: "IPv6", 28: "IPv6", 30: "IPv6"}
# print-ppp.c's ppptype2str for the network layers a TCP line can come through.
_PPP_TYPES = {0x0021: "IP", 0x0057: "IP6"}
_CHDLC_CAST = {0x0F: "unicast", 0x8F: "bcast"}


def mac(b) -> str:
    """tcpdump -n's text of a 6-byte hardware address."""
    return bytes(b[:6]).hex(":")


def ethertype(t: int, quiet: bool = False) -> str:
    """print-ether.c's ether_type_print: with -q (``quiet``) the name alone."""
    if quiet:
        return lt.ETHERTYPES.get(t, f"Unknown Ethertype (0x{t:04x})")
    return f"ethertype {lt.ETHERTYPES.get(t, 'Unknown')} (0x{t:04x})"


def ethernet(frame, wire_len: int, quiet: bool = False) -> str:
    """What ``tcpdump -e`` prints of an Ethernet frame's header before the network layer.
    Empty for a frame shorter than the header (tcpdump prints only `` [|ether]``); for one cut
    short inside a tag, the text up to that tag (tcpdump's `` [|vlan]`` follows). ``quiet``:
    as with -q, the types' names alone."""
    cap = len(frame)
    if cap < 14:
        return ""
    out = f"{mac(frame[6:12])} > {mac(frame[0:6])}, "
    etype = frame[12] << 8 | frame[13]
    at = 14
    said_length = False
    while etype in TPIDS:
        if cap - at < 4:
            return out
        out += ethertype(etype, quiet) + (", " if said_length else f", length {wire_len}: ")
        said_length = True
        out += lt.tci(frame[at] << 8 | frame[at + 1]) + ", "
        etype = frame[at + 2] << 8 | frame[at + 3]
        at += 4
    return out + ethertype(etype, quiet) + (", " if said_length else f", length {wire_len}: ")


def _cooked(proto: int, data, at: int, wire_len: int, quiet: bool) -> str:
    """print-sll.c's sll_print and sll2_print from the protocol field on (nothing with -q),
    and the 802.1Q tags after the header (at ``at``)."""
    if quiet:
        return lt.cooked_tags(data, at, proto, True, quiet)
    if proto <= 1500:
        said = {1: "802.3", 4: "802.2"}.get(proto, f"ethertype Unknown (0x{proto:04x})")
    else:
        said = ethertype(proto)
    return f"{said}, length {wire_len}: " + lt.cooked_tags(data, at, proto, True)


def _sll(data, wire_len: int, view, quiet: bool) -> str:
    pkttype, _, halen, addr, proto = lt.SLL_HEADER.unpack_from(data)
    out = f"{lt.SLL_PKTTYPE.get(pkttype, '?'):>3} " + (f"{mac(addr)} " if halen == 6 else "")
    return out + _cooked(proto, data, 16, wire_len, quiet)


def _sll2(data, wire_len: int, view, quiet: bool) -> str:
    proto, _, ifindex, _, _, halen, addr = lt.SLL2_HEADER.unpack_from(data)
    # The interface and the direction, which tcpdump prints with -e or not, then -e's own.
    out = f"{view.prefix}ifindex {ifindex} " + (f"{mac(addr)} " if halen == 6 else "")
    return out + _cooked(proto, data, 20, wire_len, quiet)


def _null(data, wire_len: int, view, quiet: bool) -> str:
    # print-null.c reads the family in this host's order (DLT_LOOP's too), and swaps it when
    # its upper half is not zero.
    (af,) = struct.unpack_from("=I", data)
    if af & 0xFFFF0000:
        af = int.from_bytes(data[:4], "big" if sys.byteorder == "little" else "little")
    if quiet:
        return f"{_BSD_AF.get(af, f'Unknown AF {af}')}, length {wire_len}: "
    return f"AF {_BSD_AF.get(af, 'Unknown')} ({af}), length {wire_len}: "


def _raw(data, wire_len: int, view, quiet: bool) -> str:
    return "ip: "


def _ppp(data, wire_len: int, view, quiet: bool) -> str:
    at = 2 if data[:2] == b"\xff\x03" else 0
    proto = data[at] if data[at] & 1 else data[at] << 8 | data[at + 1]
    return f"{_PPP_TYPES.get(proto, 'unknown')} (0x{proto:04x}), length {wire_len}: "


def _ppp_hdlc(data, wire_len: int, view, quiet: bool) -> str:
    # (print-chdlc.c and print-ppp.c print the same with -q)
    if data[0] in _CHDLC_CAST:
        proto = data[2] << 8 | data[3]
        return f"{_CHDLC_CAST[data[0]]}, {ethertype(proto)}, length {wire_len}: "
    return f"{data[0]:02x} {data[1]:02x} {wire_len} {view.prefix}"


_TEXTS = {
    lt.NULL: _null,
    lt.LOOP: _null,
    lt.PPP: _ppp,
    lt.PPP_HDLC: _ppp_hdlc,
    lt.RAW: _raw,
    lt.RAW_OLD_12: _raw,
    lt.RAW_OLD_14: _raw,
    lt.IPV4: _raw,
    lt.IPV6: _raw,
    lt.LINUX_SLL: _sll,
    lt.LINUX_SLL2: _sll2,
}


def other(linktype: int, data, wire_len: int, view, link_level: bool, quiet: bool) -> str:
    """What tcpdump prints before the network layer of a record of another link type than
    Ethernet, which ``linktypes.ethernet_view`` has read as ``view`` (so its header is whole),
    with -e (``link_level``), -q (``quiet``) or both."""
    if link_level:
        return _TEXTS[linktype](data, wire_len, view, quiet)
    return view.prefix if quiet else view.prefix + view.tags


class AnyDevice:
    """Lines of several interfaces, as ``tcpdump -i any`` prints them: its packets have a Linux
    cooked v2 header in place of the Ethernet one (20 bytes for 14), made by the kernel's packet
    socket. Made here from the Ethernet frame a record holds and the device it came through:
    the packet type (``In``, or for an arriving frame ``B`` broadcast, ``M`` multicast, ``P``
    to another host's address, as eth_type_trans() tells them apart; ``Out`` for a leaving
    one), the interface's index and hardware type, the frame's source address. Each
    interface's facts are read once per name."""

    def __init__(self) -> None:
        self._devices: dict[str, tuple[int, int, bytes]] = {}

    def _device(self, ifname: str) -> tuple[int, int, bytes]:
        """(ifindex, ARPHRD_ type, hardware address) of an interface; (0, 1, b"") once gone."""
        dev = self._devices.get(ifname)
        if dev is None:
            try:
                index = socket.if_nametoindex(ifname)
                with open(f"/sys/class/net/{ifname}/type") as f:
                    hatype = int(f.read())
                with open(f"/sys/class/net/{ifname}/address") as f:
                    address = bytes.fromhex(f.read().strip().replace(":", ""))
            except (OSError, ValueError):
                index, hatype, address = 0, 1, b""
            dev = self._devices[ifname] = (index, hatype, address)
        return dev

    def pkttype(self, ifname: str, frame, direction: Optional[int]) -> int:
        """PACKET_HOST (0), _BROADCAST (1), _MULTICAST (2), _OTHERHOST (3), _OUTGOING (4)."""
        if direction:
            return 4
        if len(frame) < 6 or frame[0] & 1 == 0:
            address = self._device(ifname)[2]
            return 0 if len(frame) < 6 or not address or frame[:6] == address else 3
        return 1 if frame[:6] == b"\xff" * 6 else 2

    def direction(self, ifname: str, frame, direction: Optional[int]) -> str:
        """The packet type as print-sll.c prints it after the interface, padded to three."""
        return f"{lt.SLL_PKTTYPE[self.pkttype(ifname, frame, direction)]:<3}"

    def text(self, ifname: str, frame, wire_len: int, direction: Optional[int], quiet: bool) -> str:
        """-e's cooked v2 header (``ifindex 2 SRC ethertype IPv4 (0x0800), length N: ``; with
        -q, ``quiet``, without the type and the length)."""
        if len(frame) < 14:
            return ""
        frame, wire_len = _untagged(frame, wire_len, direction)
        etype = frame[12] << 8 | frame[13]
        index = self._device(ifname)[0]
        link = _cooked(etype, frame, 14, wire_len + 6, quiet)
        return f"ifindex {index} {mac(frame[6:12])} {link}"

    def packet(self, ifname: str, frame, direction: Optional[int]) -> tuple[bytes, int]:
        """The packet as tcpdump -i any has it: the cooked v2 header, then what followed the
        Ethernet header (the tags left in it included; the header's protocol the first type);
        and the length of its link-layer header as print-sll.c counts it (the 802.1Q tags it
        walks included)."""
        index, hatype, _ = self._device(ifname)
        kind = self.pkttype(ifname, frame, direction)
        frame = _untagged(frame, 0, direction)[0]
        proto = frame[12] << 8 | frame[13]
        head = lt.SLL2_HEADER.pack(proto, 0, index, hatype, kind, 6, frame[6:12] + b"\0\0")
        packet = head + frame[14:]
        head_len = lt.SLL2_HEADER.size
        while proto == 0x8100 and head_len + 4 <= len(packet):
            proto = packet[head_len + 2] << 8 | packet[head_len + 3]
            head_len += 4
        return packet, head_len


# The tags the kernel takes out of an arriving frame before its packet sockets see it
# (eth_type_vlan(): skb_vlan_untag() keeps the tag beside the packet), one per frame.
_KERNEL_TAGS = frozenset((0x8100, 0x88A8))


def _untagged(frame, wire_len: int, direction: Optional[int]) -> tuple[bytes, int]:
    """An arriving frame as tcpdump -i any has it: its first tag taken out by the kernel
    (libpcap does not put it back in a cooked v2 packet), 4 bytes shorter."""
    frame = bytes(frame)
    if direction or len(frame) < 18 or (frame[12] << 8 | frame[13]) not in _KERNEL_TAGS:
        return frame, wire_len
    return frame[:12] + frame[16:], wire_len - 4
