"""GSO: what the kernel does to an outgoing TCP "super-packet" after the tc egress hook, done
again in user space so that lines are what tcpdump shows.

TCP hands the device packets of up to 64 KiB and lets segmentation happen late: in the NIC (TSO)
or, on a device without TSO, in the kernel just before the device (software GSO:
``validate_xmit_skb``), which is after the tc egress hook but before tcpdump's tap
(``dev_queue_xmit_nit``). So on a device with TSO, tcpdump shows the super-packet as one line;
without TSO it shows each segment, while the egress program saw only the super-packet. The program
records ``gso_segs`` and ``gso_size`` (the skb's); :func:`segment` cuts a captured super-packet as
``tcp_gso_segment``/``inet_gso_segment`` do:

* segment *i* carries ``gso_size`` bytes of payload (the last one the rest), ``seq`` advanced by
  ``i * gso_size``;
* CWR stays on the first segment only, FIN and PSH on the last only;
* IPv4: total length per segment, the id incremented per segment, the header checksum redone;
  IPv6: the payload length per segment, and a BIG TCP packet's hop-by-hop header (the Jumbo
  Payload option that holds its length over 64 KiB) taken off first, as ``ipv6_gso_segment``
  does.

TCP checksums are left as they were (tcpdump does not check them by default). The payload bytes
of a segment are those the capture holds at that place (none, by default: xdptcp keeps headers).
"""

from __future__ import annotations

import _socket  # not socket: its wrapper and enum conversions cost a start 2 ms
import array
import fcntl
import struct

from xdptcp.record import Verdict, parse_frame
from xdptcp.verbose import ones_sum

SIOCETHTOOL = 0x8946
ETHTOOL_GTSO = 0x1E  # struct ethtool_value: is any TCP segmentation offload on?
CWR, PSH, FIN = 0x80, 0x08, 0x01
# An IPv6 GSO packet longer than this (its link-layer header counted, as the skb's length) may
# carry BIG TCP's hop-by-hop header: TCP next, no more than the one Jumbo Payload option.
BIG = 65536
JUMBO_HBH = b"\x06\x00\xc2"
M32 = 0xFFFFFFFF


def device_segments(ifname: str) -> bool:
    """True when the kernel cuts GSO packets before ``ifname`` (its TSO is off), so tcpdump on
    it shows segments. Asked with the ``ETHTOOL_GTSO`` ioctl in the current namespace."""
    value = array.array("I", [ETHTOOL_GTSO, 0])  # struct ethtool_value { cmd; data; }
    ifreq = struct.pack("16sP", ifname.encode()[:15], value.buffer_info()[0]).ljust(40, b"\0")
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
    except OSError:
        return False  # no ethtool for this device: nothing to say, keep packets whole
    finally:
        s.close()
    return not value[1]


def segment(frame: bytes, wire_len: int, gso_size: int) -> list[tuple[bytes, int]]:
    """The segments of one captured GSO packet as ``(captured bytes, wire length)``; the packet
    itself when it is not a whole TCP header or carries no more than one segment of payload."""
    verdict, f = parse_frame(frame)
    if verdict is not Verdict.TCP or gso_size <= 0 or f.l4_len < 20 or not f.l4_off:
        return [(frame, wire_len)]  # (no TCP header walked: a later fragment, a cut frame)
    l3 = f.l3_off
    if (
        f.ip_version == 6
        and wire_len > BIG
        and frame[l3 + 6] == 0
        and frame[l3 + 40 : l3 + 43] == JUMBO_HBH
        and f.l4_off == l3 + 48
    ):
        # BIG TCP's hop-by-hop header, which the kernel takes off before it cuts the packet
        frame = frame[: l3 + 6] + b"\x06" + frame[l3 + 7 : l3 + 40] + frame[l3 + 48 :]
        return segment(frame, wire_len - 8, gso_size)
    head = f.l4_off + f.l4_len
    payload = wire_len - head
    if payload <= gso_size:
        return [(frame, wire_len)]
    seq = struct.unpack_from("!I", frame, f.l4_off + 4)[0]
    flags = frame[f.l4_off + 13]
    count = -(-payload // gso_size)
    out = []
    for i in range(count):
        size = min(gso_size, payload - i * gso_size)
        h = bytearray(frame[:head])
        struct.pack_into("!I", h, f.l4_off + 4, (seq + i * gso_size) & M32)
        seg_flags = flags
        if i:
            seg_flags &= ~CWR
        if i < count - 1:
            seg_flags &= ~(FIN | PSH)
        h[f.l4_off + 13] = seg_flags
        if f.ip_version == 4:
            _ipv4(h, f.l3_off, head - f.l3_off + size, i)
        else:
            struct.pack_into("!H", h, f.l3_off + 4, head - f.l3_off - 40 + size)
        start = head + i * gso_size
        out.append((bytes(h) + frame[start : start + size], head + size))
    return out


def _ipv4(h: bytearray, l3: int, total: int, i: int) -> None:
    ident = struct.unpack_from("!H", h, l3 + 4)[0]
    struct.pack_into("!HH", h, l3 + 2, total, (ident + i) & 0xFFFF)
    struct.pack_into("!H", h, l3 + 10, 0)
    ihl = (h[l3] & 0x0F) * 4
    struct.pack_into("!H", h, l3 + 10, ~ones_sum(h[l3 : l3 + ihl]) & 0xFFFF)
