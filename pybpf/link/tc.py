"""tc: attach a ``SCHED_CLS`` program to the ingress or egress path of a network interface.

Two kernel interfaces do it, and both are here:

- **tcx** (Linux 6.6): ``BPF_LINK_CREATE`` with attach type ``BPF_TCX_INGRESS``/``BPF_TCX_EGRESS``
  and the ifindex as target. The result is a bpf_link: it detaches when its last fd closes, so a
  crashed process leaves nothing behind. Programs on one hook form an ordered list; each returns
  ``TCX_NEXT`` (-1) to let the next one decide. ``bpftool net`` lists them under ``tc:``.
- **clsact + cls_bpf** over rtnetlink (every kernel since 4.5): a ``clsact`` qdisc gives the
  interface an ingress and an egress hook; ``RTM_NEWTFILTER`` puts a filter of kind ``bpf`` on one
  with ``TCA_OPTIONS { TCA_BPF_FD, TCA_BPF_NAME, TCA_BPF_FLAGS = TCA_BPF_FLAG_ACT_DIRECT }``
  (direct action: the program's return value is the verdict, ``TC_ACT_UNSPEC`` = go on). Filters
  are ordered by priority, and a priority holds filters of one protocol, told apart by handle.
  Such a filter belongs to the interface: it outlives the process, so whoever adds one must
  remove it, and only it: a :class:`TCFilter` knows its priority and handle, and whether it created
  the clsact qdisc (removed on close only if no other filter is left on it).

:func:`tc_attach` takes the first that works: tcx where the kernel has it, else the filter.
"""

from __future__ import annotations

import _socket as socket  # not socket: its wrapper and enum conversions cost a start 2 ms
import errno as _errno
import functools
import os
import struct

from pybpf.enums import plain_enum
from pybpf.errors import BPFError, NetlinkError, SyscallError
from pybpf.link import bpflink
from pybpf.link.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    RtnlSocket,
    attr,
    attr_u32,
    nested,
    parse_attrs,
)
from pybpf.record import record
from pybpf.sys.layout import Default, Int8un, Int32sn, Int32un, Padding, Struct
from pybpf.sys.uapi import AttachFlags, AttachType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional, Union

# --- wire layouts (include/uapi/linux/rtnetlink.h, pkt_sched.h, pkt_cls.h) -------------------

tcmsg = Struct(
    "tcm_family" / Default(Int8un, socket.AF_UNSPEC),
    Padding(3),
    "tcm_ifindex" / Default(Int32sn, 0),
    "tcm_handle" / Default(Int32un, 0),
    "tcm_parent" / Default(Int32un, 0),
    "tcm_info" / Default(Int32un, 0),  # filters: priority << 16 | protocol (network order)
)
TCMSG_LEN = tcmsg.sizeof()

RTM_NEWQDISC = 36
RTM_DELQDISC = 37
RTM_GETQDISC = 38
RTM_NEWTFILTER = 44
RTM_DELTFILTER = 45
RTM_GETTFILTER = 46
NLM_F_EXCL = 0x200  # with NEW*: fail with EEXIST rather than change what is there
NLM_F_CREATE = 0x400

TCA_KIND = 1
TCA_OPTIONS = 2

TCA_BPF_FD = 6
TCA_BPF_NAME = 7
TCA_BPF_FLAGS = 8
TCA_BPF_ID = 11
TCA_BPF_FLAG_ACT_DIRECT = 1

# Handles are major:minor, 16 bits each. clsact is the special parent ffff:fff1; its two hooks
# are the minors fff2 (ingress) and fff3 (egress).
TC_H_CLSACT = 0xFFFFFFF1
TC_H_MIN_INGRESS = 0xFFF2
TC_H_MIN_EGRESS = 0xFFF3
CLSACT_HANDLE = 0xFFFF0000
ETH_P_ALL = 0x0003

# Where `tc filter add` without `prio` starts (tcf_auto_prio); we go before what is there.
AUTO_PRIO = 0xC000


@plain_enum
class Direction:
    """The two hooks of an interface: what arrives, and what leaves."""

    INGRESS = "ingress"
    EGRESS = "egress"

    @property
    def tcx_attach_type(self) -> AttachType:
        return AttachType.TCX_INGRESS if self is Direction.INGRESS else AttachType.TCX_EGRESS

    @property
    def clsact_parent(self) -> int:
        minor = TC_H_MIN_INGRESS if self is Direction.INGRESS else TC_H_MIN_EGRESS
        return (CLSACT_HANDLE & 0xFFFF0000) | minor


def _fd(program: bpflink.ProgramLike) -> int:
    return program if isinstance(program, int) else program.fd


def _direction(direction: Union[Direction, str]) -> Direction:
    try:
        return Direction(direction)
    except ValueError:
        raise BPFError(f"tc: unknown direction {direction!r} (ingress or egress)") from None


def _iface(ifindex: int) -> str:
    try:
        return f"{socket.if_indextoname(ifindex)} (ifindex {ifindex})"
    except OSError:
        return f"ifindex {ifindex}"


# --- tcx ---------------------------------------------------------------------------------------


def tcx_link(
    program: bpflink.ProgramLike,
    ifindex: int,
    direction: Union[Direction, str],
    *,
    first: bool = True,
) -> bpflink.Link:
    """Attach through a tcx bpf_link (Linux 6.6+). ``first`` puts the program before any other
    tcx program of the hook (BPF_F_BEFORE without a relative one), so that it sees every packet
    even when a later program ends the list with a verdict."""
    d = _direction(direction)
    flags = AttachFlags.BEFORE if first else 0
    try:
        return bpflink.Link.create(program, ifindex, d.tcx_attach_type, flags)
    except SyscallError as e:
        if e.errno == _errno.ENODEV:
            raise SyscallError(e.what, e.errno, f"no interface with ifindex {ifindex}") from None
        if e.errno == _errno.EINVAL and not tcx_supported():
            raise SyscallError(
                f"cannot attach to the tc {d.value} hook of {_iface(ifindex)} with tcx",
                e.errno,
                "this kernel has no tcx links (Linux 6.6); use a clsact filter",
            ) from None
        raise


@functools.cache
def tcx_supported() -> bool:
    """Does this kernel have tcx links? Asked the way libbpf probes features: a one-instruction
    classifier linked to ifindex 0. A kernel with tcx looks the interface up and answers ENODEV;
    an older one does not know the attach type (EINVAL)."""
    from pybpf.asm.insn import encode, exit_insn, mov64_imm
    from pybpf.sys import linkcmd, progcmd
    from pybpf.sys.uapi import ProgType

    code = encode([mov64_imm(0, -1), exit_insn()])
    prog = progcmd.prog_load(ProgType.SCHED_CLS, code, prog_name="tcx_probe")
    try:
        os.close(linkcmd.link_create(prog, 0, AttachType.TCX_INGRESS))
    except SyscallError as e:
        return e.errno == _errno.ENODEV
    finally:
        os.close(prog)
    return True  # pragma: no cover - no interface has ifindex 0


# --- clsact and cls_bpf over rtnetlink ---------------------------------------------------------


@record
class QdiscInfo:
    kind: str
    handle: int
    parent: int


@record
class FilterInfo:
    """One filter on a clsact hook, as RTM_GETTFILTER reports it."""

    kind: str  # "bpf", "matchall", "u32"...
    prio: int
    protocol: int  # ETH_P_*, host order
    handle: int
    prog_id: int = 0  # bpf filters: the program
    name: str = ""  # bpf filters: TCA_BPF_NAME


def qdiscs(ifindex: int) -> list[QdiscInfo]:
    """The qdiscs of an interface (an RTM_GETQDISC dump, filtered by ifindex here)."""
    what = f"cannot list the qdiscs of {_iface(ifindex)}"
    with RtnlSocket() as sock:
        bodies = sock.request(RTM_GETQDISC, NLM_F_DUMP, tcmsg.build(dict()), what)
    out = []
    for body in bodies:
        msg = tcmsg.parse(body[:TCMSG_LEN])
        if msg.tcm_ifindex != ifindex:
            continue
        kind = parse_attrs(body[TCMSG_LEN:]).get(TCA_KIND, b"")
        out.append(QdiscInfo(kind.rstrip(b"\0").decode(), msg.tcm_handle, msg.tcm_parent))
    return out


def has_clsact(ifindex: int) -> bool:
    return any(q.kind == "clsact" for q in qdiscs(ifindex))


# The clsact qdiscs this process added, by (network namespace, ifindex). Several filters may share
# one: whichever of them is closed last, when the qdisc holds nothing else, removes it. A qdisc
# that was there before us is never in this set, so never removed.
_ADDED_HERE: set[tuple[int, int]] = set()


def _qdisc_key(ifindex: int) -> tuple[int, int]:
    return os.stat("/proc/thread-self/ns/net").st_ino, ifindex


def add_clsact(ifindex: int) -> bool:
    """Give the interface a clsact qdisc; False when it already had one. One this process adds
    is removed by the last of its filters to close (:class:`TCFilter`), one that was there never."""
    msg = tcmsg.build(dict(tcm_ifindex=ifindex, tcm_handle=CLSACT_HANDLE, tcm_parent=TC_H_CLSACT))
    what = f"cannot add a clsact qdisc to {_iface(ifindex)}"
    try:
        with RtnlSocket() as sock:
            sock.request(
                RTM_NEWQDISC,
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                msg + attr(TCA_KIND, b"clsact\0"),
                what,
            )
    except NetlinkError as e:
        if e.errno == _errno.EEXIST:
            return False
        raise
    _ADDED_HERE.add(_qdisc_key(ifindex))
    return True


def del_clsact(ifindex: int) -> None:
    """Remove the clsact qdisc, and with it every filter on both hooks: callers check first."""
    msg = tcmsg.build(dict(tcm_ifindex=ifindex, tcm_handle=CLSACT_HANDLE, tcm_parent=TC_H_CLSACT))
    with RtnlSocket() as sock:
        sock.request(
            RTM_DELQDISC, NLM_F_ACK, msg, f"cannot remove the clsact qdisc of {_iface(ifindex)}"
        )


def filters(ifindex: int, direction: Union[Direction, str]) -> list[FilterInfo]:
    """The filters on one clsact hook (none when the interface has no clsact qdisc)."""
    d = _direction(direction)
    msg = tcmsg.build(dict(tcm_ifindex=ifindex, tcm_parent=d.clsact_parent))
    what = f"cannot list the tc {d.value} filters of {_iface(ifindex)}"
    try:
        with RtnlSocket() as sock:
            bodies = sock.request(RTM_GETTFILTER, NLM_F_DUMP, msg, what)
    except NetlinkError as e:
        if e.errno == _errno.EINVAL:  # no clsact qdisc: no such parent
            return []
        raise
    out = []
    for body in bodies:
        m = tcmsg.parse(body[:TCMSG_LEN])
        a = parse_attrs(body[TCMSG_LEN:])
        if not m.tcm_handle:
            continue  # the header of a priority's chain, not a filter
        kind = a.get(TCA_KIND, b"").rstrip(b"\0").decode()
        # TCA_OPTIONS are the classifier's own: read them as cls_bpf's only for "bpf".
        opts = parse_attrs(a.get(TCA_OPTIONS, b"")) if kind == "bpf" else {}
        prog_id = opts.get(TCA_BPF_ID)
        out.append(
            FilterInfo(
                kind=kind,
                prio=m.tcm_info >> 16,
                protocol=socket.ntohs(m.tcm_info & 0xFFFF),
                handle=m.tcm_handle,
                prog_id=struct.unpack("=I", prog_id[:4])[0] if prog_id else 0,
                name=opts.get(TCA_BPF_NAME, b"").rstrip(b"\0").decode(errors="replace"),
            )
        )
    return out


def _filter_msg(ifindex: int, d: Direction, prio: int, handle: int, protocol: int) -> bytes:
    info = (prio << 16) | socket.htons(protocol)
    return tcmsg.build(
        dict(tcm_ifindex=ifindex, tcm_handle=handle, tcm_parent=d.clsact_parent, tcm_info=info)
    )


def add_bpf_filter(
    prog_fd: int, ifindex: int, d: Direction, prio: int, handle: int, name: str
) -> None:
    """RTM_NEWTFILTER: a direct-action cls_bpf filter at (prio, handle), never replacing one."""
    options = (
        attr_u32(TCA_BPF_FD, prog_fd)
        + attr(TCA_BPF_NAME, name.encode() + b"\0")
        + attr_u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT)
    )
    payload = (
        _filter_msg(ifindex, d, prio, handle, ETH_P_ALL)
        + attr(TCA_KIND, b"bpf\0")
        + nested(TCA_OPTIONS, options)
    )
    what = f"cannot add a tc {d.value} filter to {_iface(ifindex)}"
    with RtnlSocket() as sock:
        sock.request(RTM_NEWTFILTER, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, payload, what)


def del_filter(
    ifindex: int,
    direction: Union[Direction, str],
    prio: int,
    handle: int,
    protocol: int = ETH_P_ALL,
) -> None:
    """RTM_DELTFILTER for exactly one filter: priority, protocol and handle all given."""
    d = _direction(direction)
    payload = _filter_msg(ifindex, d, prio, handle, protocol) + attr(TCA_KIND, b"bpf\0")
    what = f"cannot remove the tc {d.value} filter {prio}:{handle:#x} of {_iface(ifindex)}"
    with RtnlSocket() as sock:
        sock.request(RTM_DELTFILTER, NLM_F_ACK, payload, what)


def free_prio(existing: list[FilterInfo]) -> int:
    """A priority nobody uses, before every filter there (lower runs first): filters that end
    classification with a verdict (`action pass`) would otherwise hide packets from ours."""
    if not existing:
        return AUTO_PRIO
    used = {f.prio for f in existing}
    below = min(used) - 1
    if below >= 1:
        return below
    return next(p for p in range(AUTO_PRIO, 0xFFFF) if p not in used)


class TCFilter:
    """A cls_bpf filter we added, removed by :meth:`close` (and the clsact qdisc, if this process
    added it and no other filter is left on it). It does not die with the process: close it."""

    def __init__(
        self, ifindex: int, direction: Direction, prio: int, handle: int, created_qdisc: bool
    ) -> None:
        self.ifindex = ifindex
        self.direction = direction
        self.prio = prio
        self.handle = handle
        self.created_qdisc = created_qdisc
        self.closed = False

    def __repr__(self) -> str:
        return (
            f"TCFilter({_iface(self.ifindex)}, {self.direction.value}, "
            f"prio {self.prio}, handle {self.handle:#x})"
        )

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            del_filter(self.ifindex, self.direction, self.prio, self.handle)
        except NetlinkError as e:
            if e.errno not in (_errno.ENODEV, _errno.ENOENT, _errno.EINVAL):
                raise  # gone with the interface or the qdisc: nothing left to remove
        key = _qdisc_key(self.ifindex)
        if key in _ADDED_HERE and remove_clsact_if_empty(self.ifindex):
            _ADDED_HERE.discard(key)

    def __enter__(self) -> TCFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_clsact_if_empty(ifindex: int) -> bool:
    """Remove the clsact qdisc when neither hook has a filter left; True if it was removed."""
    try:
        if not has_clsact(ifindex):
            return False
        if filters(ifindex, Direction.INGRESS) or filters(ifindex, Direction.EGRESS):
            return False
        del_clsact(ifindex)
    except NetlinkError as e:
        if e.errno in (_errno.ENODEV, _errno.ENOENT, _errno.EINVAL):
            return False
        raise
    return True


def tc_filter(
    program: bpflink.ProgramLike,
    ifindex: int,
    direction: Union[Direction, str],
    *,
    name: str = "",
    prio: Optional[int] = None,
) -> TCFilter:
    """Attach as a direct-action cls_bpf filter on a clsact hook, adding clsact if absent.

    ``prio`` none: a free priority before every filter there. The filter is added with
    NLM_F_EXCL, so it can never replace another one; on failure the clsact qdisc we added (if any)
    is removed again."""
    d = _direction(direction)
    created = add_clsact(ifindex)
    try:
        if prio is None:
            prio = free_prio(filters(ifindex, d))
        add_bpf_filter(_fd(program), ifindex, d, prio, 1, name or "pybpf")
    except BaseException:
        if created and remove_clsact_if_empty(ifindex):
            _ADDED_HERE.discard(_qdisc_key(ifindex))
        raise
    return TCFilter(ifindex, d, prio, 1, created)


if TYPE_CHECKING:
    TCAttachment = Union[bpflink.Link, TCFilter]


def tc_attach(
    program: bpflink.ProgramLike,
    ifindex: int,
    direction: Union[Direction, str],
    *,
    mode: str = "auto",
    name: str = "",
) -> TCAttachment:
    """Attach a SCHED_CLS program: ``mode`` "tcx", "clsact", or "auto" (tcx where the kernel has
    it, else a clsact filter). Both kinds have ``close()``; only the tcx link dies with the
    process."""
    if mode not in ("auto", "tcx", "clsact"):
        raise BPFError(f"tc: unknown attach mode {mode!r} (auto, tcx or clsact)")
    if mode == "tcx" or (mode == "auto" and tcx_supported()):
        return tcx_link(program, ifindex, direction)
    return tc_filter(program, ifindex, direction, name=name)
