"""XDP over rtnetlink: attach, replace, detach and query the program of a network interface.

An XDP program is attached with ``RTM_SETLINK``: an ``ifinfomsg`` naming the interface, followed by
a nested ``IFLA_XDP`` attribute holding ``IFLA_XDP_FD`` (the program, or -1 to detach),
``IFLA_XDP_FLAGS`` (the mode, and UPDATE_IF_NOEXIST / REPLACE) and, for a safe replace,
``IFLA_XDP_EXPECTED_FD``. The kernel's answer is an ``NLMSG_ERROR`` message (error 0 is the ACK);
with ``NETLINK_EXT_ACK`` set it carries the kernel's own explanation ("XDP program already
attached"), which we put into :class:`~pybpf.errors.NetlinkError`.

Two traps a reader should know. The mode flag of a detach must be the one used to attach: a detach
in another mode answers success and detaches nothing. And a netlink attachment outlives the
process that made it; a bpf_link (pybpf.link.bpflink) is the alternative that does not.
"""

from __future__ import annotations

# _socket, not socket: its wrapper class and enum conversions (with selectors) are a
# millisecond and a half of a start, and a raw netlink socket needs none of them.
import _socket as socket
import errno as _errno
import itertools
import os
import struct

from pybpf.enums import int_enum, int_flag
from pybpf.errors import NetlinkError
from pybpf.record import record
from pybpf.sys.layout import Container, Default, Int8un, Int16un, Int32sn, Int32un, Padding, Struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Iterator, Optional

# --- wire layouts (include/uapi/linux/netlink.h, rtnetlink.h, if_link.h), host byte order ------

nlmsghdr = Struct(
    "nlmsg_len" / Int32un,
    "nlmsg_type" / Int16un,
    "nlmsg_flags" / Int16un,
    "nlmsg_seq" / Int32un,
    "nlmsg_pid" / Int32un,
)
NLMSG_HDRLEN = nlmsghdr.sizeof()

# NLMSG_ERROR's payload: the errno (negative, 0 for an ACK) and the header of the request. With
# NETLINK_CAP_ACK the request's payload is not echoed; with NETLINK_EXT_ACK attributes follow.
nlmsgerr = Struct(
    "error" / Int32sn,
    "msg" / nlmsghdr,
)

ifinfomsg = Struct(
    "ifi_family" / Default(Int8un, socket.AF_UNSPEC),
    Padding(1),
    "ifi_type" / Default(Int16un, 0),
    "ifi_index" / Default(Int32sn, 0),
    "ifi_flags" / Default(Int32un, 0),
    "ifi_change" / Default(Int32un, 0),
)
IFINFOMSG_LEN = ifinfomsg.sizeof()

nlattr = Struct(
    "nla_len" / Int16un,
    "nla_type" / Int16un,
)
NLA_HDRLEN = nlattr.sizeof()
NLA_F_NESTED = 1 << 15
NLA_F_NET_BYTEORDER = 1 << 14
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

# Message types and flags.
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_SETLINK = 19
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLM_F_CAPPED = 0x100  # in an NLMSG_ERROR: the request's payload was not echoed
NLM_F_ACK_TLVS = 0x200  # in an NLMSG_ERROR: extended-ACK attributes follow

# Socket options (SOL_NETLINK).
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

# Extended-ACK attributes.
NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2

# Link attributes we read or write.
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_EXT_MASK = 29
IFLA_XDP = 43
IFLA_INFO_KIND = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFF_UP = 1

# Members of the nested IFLA_XDP attribute.
IFLA_XDP_FD = 1
IFLA_XDP_ATTACHED = 2
IFLA_XDP_FLAGS = 3
IFLA_XDP_PROG_ID = 4
IFLA_XDP_DRV_PROG_ID = 5
IFLA_XDP_SKB_PROG_ID = 6
IFLA_XDP_HW_PROG_ID = 7
IFLA_XDP_EXPECTED_FD = 8


@int_flag
class XDPFlags:
    """``XDP_FLAGS_*``: where to attach (one mode at most) and how to treat an existing program."""

    UPDATE_IF_NOEXIST = 1 << 0
    SKB_MODE = 1 << 1  # generic XDP, in the stack after the skb is built; works everywhere
    DRV_MODE = 1 << 2  # native XDP, in the driver
    HW_MODE = 1 << 3  # offloaded to the NIC
    REPLACE = 1 << 4  # only if IFLA_XDP_EXPECTED_FD names the current program


MODE_FLAGS = XDPFlags.SKB_MODE | XDPFlags.DRV_MODE | XDPFlags.HW_MODE


@int_enum
class XDPAttachMode:
    """``XDP_ATTACHED_*``: what IFLA_XDP_ATTACHED reports."""

    NONE = 0
    DRV = 1
    SKB = 2
    HW = 3
    MULTI = 4  # more than one mode at once (e.g. SKB and HW)


@int_enum
class OperState:
    """RFC 2863 operational states (``IF_OPER_*``)."""

    UNKNOWN = 0
    NOTPRESENT = 1
    DOWN = 2
    LOWERLAYERDOWN = 3
    TESTING = 4
    DORMANT = 5
    UP = 6


@record
class XDPInfo:
    mode: XDPAttachMode
    prog_id: int  # 0 when nothing, or several modes, are attached
    skb_prog_id: int = 0
    drv_prog_id: int = 0
    hw_prog_id: int = 0


@record
class LinkInfo:
    """One network interface as RTM_GETLINK describes it."""

    ifindex: int
    name: str
    flags: int  # IFF_*
    mtu: int
    operstate: OperState
    kind: str  # "veth", "bridge"... ("" for a physical device)
    xdp: XDPInfo

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


# --- attributes ----------------------------------------------------------------------------------


def _align4(n: int) -> int:
    return (n + 3) & ~3


def attr(nla_type: int, payload: bytes) -> bytes:
    """One netlink attribute: header, payload, padding to 4 bytes."""
    length = NLA_HDRLEN + len(payload)
    head = nlattr.build(dict(nla_len=length, nla_type=nla_type))
    return head + payload + bytes(_align4(length) - length)


def nested(nla_type: int, *children: bytes) -> bytes:
    return attr(nla_type | NLA_F_NESTED, b"".join(children))


def attr_u32(nla_type: int, value: int) -> bytes:
    return attr(nla_type, struct.pack("=I", value))


def attr_s32(nla_type: int, value: int) -> bytes:
    return attr(nla_type, struct.pack("=i", value))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """type (without NESTED/BYTEORDER bits) -> payload; a later duplicate wins."""
    out = {}
    offset = 0
    while offset + NLA_HDRLEN <= len(data):
        head = nlattr.parse(data[offset : offset + NLA_HDRLEN])
        if head.nla_len < NLA_HDRLEN:
            break
        out[head.nla_type & NLA_TYPE_MASK] = data[offset + NLA_HDRLEN : offset + head.nla_len]
        offset += _align4(head.nla_len)
    return out


def _u32(payload: Optional[bytes]) -> int:
    return struct.unpack("=I", payload[:4])[0] if payload else 0


# --- the socket ----------------------------------------------------------------------------------


class RtnlSocket:
    """A NETLINK_ROUTE socket that sends one request at a time and collects its answer."""

    def __init__(self) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        try:
            # Extended ACKs carry the kernel's message; CAP_ACK keeps errors short.
            self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self._sock.bind((0, 0))
            self.portid = self._sock.getsockname()[0]
        except BaseException:
            self._sock.close()
            raise
        self._seq = itertools.count(int.from_bytes(os.urandom(2), "little") + 1)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RtnlSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg_type: int, flags: int, payload: bytes, what: str) -> list[bytes]:
        """Send one request; return the payloads of its answers (a dump may have many).

        Replies are matched by sequence number and port id: anything else on the socket (a
        late answer to an earlier request) is skipped.
        """
        seq = next(self._seq) & 0xFFFFFFFF
        hdr = nlmsghdr.build(
            dict(
                nlmsg_len=NLMSG_HDRLEN + len(payload),
                nlmsg_type=msg_type,
                nlmsg_flags=NLM_F_REQUEST | flags,
                nlmsg_seq=seq,
                nlmsg_pid=0,
            )
        )
        self._sock.sendto(hdr + payload, (0, 0))
        answers: list[bytes] = []
        while True:
            data = self._sock.recv(1 << 18)
            for head, body in _messages(data):
                if head.nlmsg_seq != seq or head.nlmsg_pid != self.portid:
                    continue
                if head.nlmsg_type == NLMSG_DONE:
                    return answers
                if head.nlmsg_type == NLMSG_ERROR:
                    _raise_for_error(head, body, what)
                    return answers  # error 0: the ACK
                answers.append(body)
                if not head.nlmsg_flags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return answers  # a single answer, and no ACK will follow


def _messages(data: bytes) -> Iterator[tuple[Container, bytes]]:
    offset = 0
    while offset + NLMSG_HDRLEN <= len(data):
        head = nlmsghdr.parse(data[offset : offset + NLMSG_HDRLEN])
        if head.nlmsg_len < NLMSG_HDRLEN:
            return
        yield head, data[offset + NLMSG_HDRLEN : offset + head.nlmsg_len]
        offset += _align4(head.nlmsg_len)


def _raise_for_error(head: Container, body: bytes, what: str) -> None:
    err = nlmsgerr.parse(body)
    if err.error == 0:
        return
    extack = None
    if head.nlmsg_flags & NLM_F_ACK_TLVS:
        # The echoed request follows the error header unless the kernel capped it.
        skip = nlmsgerr.sizeof()
        if not head.nlmsg_flags & NLM_F_CAPPED:
            skip += err.msg.nlmsg_len - NLMSG_HDRLEN
        msg = parse_attrs(body[skip:]).get(NLMSGERR_ATTR_MSG)
        if msg:
            extack = msg.rstrip(b"\0").decode(errors="replace")
    raise NetlinkError(what, -err.error, extack)


# --- XDP -----------------------------------------------------------------------------------------


def _iface(ifindex: int) -> str:
    try:
        return f"{socket.if_indextoname(ifindex)} (ifindex {ifindex})"
    except OSError:
        return f"ifindex {ifindex}"


def _setlink_xdp(ifindex: int, fd: int, flags: int, expected_fd: Optional[int], what: str) -> None:
    if ifindex <= 0:
        raise NetlinkError(what, _errno.ENODEV, "no such interface")
    children = [attr_s32(IFLA_XDP_FD, fd)]
    if expected_fd is not None:
        flags |= XDPFlags.REPLACE
        children.append(attr_s32(IFLA_XDP_EXPECTED_FD, expected_fd))
    if flags:
        children.append(attr_u32(IFLA_XDP_FLAGS, int(flags)))
    payload = ifinfomsg.build(dict(ifi_index=ifindex)) + nested(IFLA_XDP, *children)
    with RtnlSocket() as sock:
        sock.request(RTM_SETLINK, NLM_F_ACK, payload, what)


def xdp_attach(
    ifindex: int, prog_fd: int, flags: int = 0, expected_fd: Optional[int] = None
) -> None:
    """Attach (or replace) the XDP program of an interface.

    ``flags``: at most one of SKB_MODE/DRV_MODE/HW_MODE (none: native if the driver can, else
    generic), plus UPDATE_IF_NOEXIST to refuse replacing a program. ``expected_fd`` replaces only
    if that program is the one attached now (it sets REPLACE), so two tools cannot race.
    """
    what = f"cannot attach XDP program to {_iface(ifindex)}"
    _setlink_xdp(ifindex, prog_fd, flags, expected_fd, what)


def xdp_detach(ifindex: int, flags: int = 0, expected_fd: Optional[int] = None) -> None:
    """Detach the XDP program in the mode given by ``flags``.

    Give the mode flag used to attach: a detach in another mode is answered with success and
    leaves the program where it is. Use :func:`xdp_query` to check.
    """
    what = f"cannot detach XDP program from {_iface(ifindex)}"
    _setlink_xdp(ifindex, -1, flags, expected_fd, what)


def _xdp_info(data: Optional[bytes]) -> XDPInfo:
    if not data:
        return XDPInfo(XDPAttachMode.NONE, 0)
    a = parse_attrs(data)
    mode = a.get(IFLA_XDP_ATTACHED, b"\0")[0]
    return XDPInfo(
        mode=XDPAttachMode(mode) if mode <= XDPAttachMode.MULTI else mode,
        prog_id=_u32(a.get(IFLA_XDP_PROG_ID)),
        skb_prog_id=_u32(a.get(IFLA_XDP_SKB_PROG_ID)),
        drv_prog_id=_u32(a.get(IFLA_XDP_DRV_PROG_ID)),
        hw_prog_id=_u32(a.get(IFLA_XDP_HW_PROG_ID)),
    )


def _link_info(body: bytes) -> LinkInfo:
    msg = ifinfomsg.parse(body[:IFINFOMSG_LEN])
    a = parse_attrs(body[IFINFOMSG_LEN:])
    kind = parse_attrs(a.get(IFLA_LINKINFO, b"")).get(IFLA_INFO_KIND, b"")
    oper = a.get(IFLA_OPERSTATE, b"\0")[0]
    return LinkInfo(
        ifindex=msg.ifi_index,
        name=a.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace"),
        flags=msg.ifi_flags,
        mtu=_u32(a.get(IFLA_MTU)),
        operstate=OperState(oper) if oper <= OperState.UP else oper,
        kind=kind.rstrip(b"\0").decode(errors="replace"),
        xdp=_xdp_info(a.get(IFLA_XDP)),
    )


def _getlink(ifindex: int, flags: int, what: str) -> list[LinkInfo]:
    payload = ifinfomsg.build(dict(ifi_index=ifindex)) + attr_u32(
        IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS
    )
    with RtnlSocket() as sock:
        bodies = sock.request(RTM_GETLINK, flags, payload, what)
    return [_link_info(b) for b in bodies]


def link_info(ifindex: int) -> LinkInfo:
    """One interface by index (RTM_GETLINK)."""
    if ifindex <= 0:
        raise NetlinkError(f"cannot query ifindex {ifindex}", _errno.ENODEV, "no such interface")
    links = _getlink(ifindex, 0, f"cannot query {_iface(ifindex)}")
    if not links:
        raise NetlinkError(f"cannot query {_iface(ifindex)}", _errno.ENODEV)
    return links[0]


def xdp_query(ifindex: int) -> XDPInfo:
    """Which XDP program is attached to an interface, and in which mode."""
    return link_info(ifindex).xdp


def list_links() -> list[LinkInfo]:
    """Every interface of this network namespace (an RTM_GETLINK dump)."""
    return _getlink(0, NLM_F_DUMP, "cannot list network interfaces")


def ifindex_of(name: str) -> int:
    """The ifindex of an interface name in this network namespace."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise NetlinkError(
            f"no network interface named {name!r} in this namespace", _errno.ENODEV
        ) from None
