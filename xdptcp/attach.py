"""The capture programs on an interface's hooks: attached, recognised, detached.

The XDP program takes what arrives, attached with rtnetlink (by default) or a bpf_link; the tc
program takes what leaves, on a tcx link where the kernel has one, else as a clsact filter.
``xdptcp.capture`` decides what goes where and keeps the :class:`Attachment` records; this
module does the attaching and keeps the promise to the user: whatever ends a capture, what we
attached is detached, and only what we attached.

A program that an earlier, killed xdptcp left behind is recognised (its name and its ring map's
name, and no process holding it) and removed; somebody else's program is never touched unless
``replace`` is asked, and then it is put back on exit. The same holds for tc: a tcx link dies
with the process; a clsact filter does not, so ours are named ``xdptcp:PID`` (``+clsact`` when we
added the qdisc) and a filter whose process is gone is removed by the next run, with the qdisc
when it was ours and is left empty. Other filters and qdiscs are never touched.
"""

from __future__ import annotations

import errno
import os

from pybpf.errors import BPFError, NetlinkError, SyscallError
from pybpf.record import record
from xdptcp.netns import in_netns

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Callable, Optional

# The names in the capture object by which a program found attached is known for ours: the XDP
# program with the filter, the one a capture without a filter loads instead, and the tc program.
PROGRAM = "xdp_capture"
PROGRAM_ALL = "xdp_capture_all"
TC_PROGRAM = "tc_capture"
RING = "xdptcp_ring"

FILTER_NAME = "xdptcp"  # TCA_BPF_NAME of our clsact filters: "xdptcp:PID[+clsact]"
IFF_LOOPBACK = 0x8  # linux/if.h


class CaptureError(BPFError):
    """A problem the user can act on; its text is one line."""


@record(frozen=False)
class Interface:
    name: str
    ifindex: int
    netns: Optional[str] = None  # a named network namespace (used by --demo), or the current one


@record(frozen=False)
class Attachment:
    iface: Interface
    mode: str  # "native" or "skb"; egress: "tcx" or "clsact"
    flags: int  # the mode flag used to attach: the same one must detach
    link: object = None  # a pybpf Link when attached with bpf_link (or tcx)
    restore: object = None  # the program we replaced (--replace), put back on exit
    prog_id: int = 0
    egress: bool = False  # the tc program on the egress hook
    tc_filter: object = None  # a pybpf TCFilter (clsact): removed on close


def interface(name: str, netns: Optional[str] = None) -> Interface:
    """Resolve an interface name, with a clear error for one that does not exist. (Asked with
    if_nametoindex, as pybpf.link.netlink.ifindex_of asks, without importing the netlink module
    before the programs are handed to the verifier: it is imported while they are verified.)"""
    from _socket import if_nametoindex

    with in_netns(netns):
        try:
            return Interface(name, if_nametoindex(name), netns)
        except OSError:
            if name == "any":  # tcpdump's pseudo-interface: XDP has no such hook
                raise CaptureError(
                    "no interface 'any': XDP and tc attach to each interface on its own; "
                    "name them with -i, once each (xdptcp -D lists the interfaces)"
                ) from None
            raise CaptureError(
                f"no such interface '{name}' (xdptcp -D lists the interfaces)"
            ) from None


def link_query(iface: Interface):
    """The interface as the kernel has it (RTM_GETLINK): what XDP program is on it, and
    whether it is up."""
    from pybpf.link import netlink

    with in_netns(iface.netns):
        return netlink.link_info(iface.ifindex)


def is_loopback(iface: Interface) -> bool:
    from pybpf.link import netlink

    with in_netns(iface.netns):
        return bool(netlink.link_info(iface.ifindex).flags & IFF_LOOPBACK)


def describe_program(prog_id: int) -> tuple[str, bool]:
    """(name, is it an xdptcp capture program) for a program attached somewhere."""
    from pybpf.maps import Map
    from pybpf.program import Program

    try:
        with Program.from_id(prog_id) as prog:
            info = prog.info()
            name = info.name
            ours = name in (PROGRAM, PROGRAM_ALL, TC_PROGRAM) and any(
                _map_name(Map, map_id) == RING for map_id in info.map_ids
            )
            return name, ours
    except BPFError:
        return "?", False


def _map_name(map_cls: type, map_id: int) -> str:
    try:
        with map_cls.from_id(map_id) as m:
            return m.name
    except BPFError:
        return ""


# --- XDP, for what arrives ----------------------------------------------------------------


def attach_xdp(
    prog,
    iface: Interface,
    link,
    *,
    mode: str,
    use_link: bool,
    replace: bool,
    notice: Callable[[str], None],
) -> Attachment:
    """Attach the XDP program ``prog`` in ``mode`` ("auto", "native", "skb"); ``link``: what
    ``link_query`` said of the interface (attaching with XDP_FLAGS_UPDATE_IF_NOEXIST refuses a
    program that arrived since). A program already there is dealt with first
    (``_handle_existing``)."""
    with in_netns(iface.netns):
        current = link.xdp
        restore = None
        if current.prog_id:
            restore = _handle_existing(iface, current, replace, notice)
        if use_link:
            att = _attach_link(iface, prog, mode)
        else:
            att = _attach_netlink(iface, prog, restore, mode)
        att.prog_id = prog.id
        att.restore = restore
        return att


def _handle_existing(iface: Interface, current, replace: bool, notice) -> object:
    """Stale xdptcp program: remove it. Someone else's: refuse, or take it for --replace."""
    from pybpf.link import netlink
    from pybpf.program import Program
    from pybpf.sys import objinfo

    name, ours = describe_program(current.prog_id)
    mode = mode_name(current.mode)
    # a running xdptcp holds its programs for as long as it captures: one of ours with
    # no holder is a killed run's, one with a holder a live capture's
    holders = objinfo.holders("prog", current.prog_id) if ours else []
    if ours and not holders:
        netlink.xdp_detach(iface.ifindex, mode_flag(mode))
        notice(
            f"removed a stale xdptcp program (id {current.prog_id}) left on {iface.name} "
            "by an earlier run"
        )
        return None
    if not replace:
        whose = f"; an xdptcp running as pid {holders[0]} captures with it" if holders else ""
        raise CaptureError(
            f"{iface.name} already has an XDP program attached (id {current.prog_id}, "
            f"'{name}', {mode} mode){whose}; use --replace to replace it while capturing"
        )
    old = Program.from_id(current.prog_id)
    netlink.xdp_detach(iface.ifindex, mode_flag(mode))
    notice(f"replacing '{name}' (id {current.prog_id}) on {iface.name}; it is put back on exit")
    return (old, mode)


def _attach_netlink(iface: Interface, prog, restore, mode: str) -> Attachment:
    from pybpf.link import netlink

    modes = ("native", "skb") if mode == "auto" else (mode,)
    last: Optional[BPFError] = None
    for m in modes:
        flags = mode_flag(m)
        try:
            netlink.xdp_attach(iface.ifindex, prog.fd, flags | netlink.XDPFlags.UPDATE_IF_NOEXIST)
            return Attachment(iface, m, flags)
        except NetlinkError as e:
            last = e
    _put_back(iface, restore)
    hint = "; --mode skb (generic XDP) works on any interface" if mode == "native" else ""
    raise CaptureError(f"cannot attach to {iface.name}: {last}{hint}")


def _attach_link(iface: Interface, prog, mode: str) -> Attachment:
    from pybpf.link import bpflink as link

    modes = ("native", "skb") if mode == "auto" else (mode,)
    last: Optional[BPFError] = None
    for m in modes:
        try:
            lk = link.xdp_link(prog, iface.ifindex, mode_flag(m))
            return Attachment(iface, m, mode_flag(m), link=lk)
        except (SyscallError, NetlinkError) as e:
            last = e
    raise CaptureError(f"cannot attach to {iface.name} with bpf_link: {last}")


def _put_back(iface: Interface, restore) -> None:
    from pybpf.link import netlink

    if not restore:
        return
    old, mode = restore
    try:
        netlink.xdp_attach(iface.ifindex, old.fd, mode_flag(mode))
    finally:
        old.close()


def mode_flag(mode: str) -> int:
    from pybpf.link.netlink import XDPFlags

    return {"native": XDPFlags.DRV_MODE, "skb": XDPFlags.SKB_MODE, "hw": XDPFlags.HW_MODE}[mode]


def mode_name(attach_mode) -> str:
    name = getattr(attach_mode, "name", str(attach_mode)).lower()
    return {"drv": "native", "skb": "skb", "hw": "hw"}.get(name, "native")


# --- tc, for what leaves ------------------------------------------------------------------


def attach_egress(
    prog, iface: Interface, *, tc_mode: str, asked: bool, notice: Callable[[str], None]
) -> Optional[Attachment]:
    """The tc program ``prog`` on the egress hook: a tcx link, or a clsact filter named for us.
    ``asked``: the user asked for outgoing packets (-Q); if not, a hook that cannot be attached
    is a notice and None (what arrives is still captured), else an error."""
    from pybpf.link import tc

    with in_netns(iface.netns):
        _remove_stale_filters(iface, notice)
        try:
            if tc_mode == "tcx" or (tc_mode == "auto" and tc.tcx_supported()):
                lk = tc.tcx_link(prog, iface.ifindex, tc.Direction.EGRESS)
                att = Attachment(iface, "tcx", 0, link=lk, egress=True)
            else:
                att = _attach_clsact(iface, prog)
        except BPFError as e:
            if not asked:
                notice(
                    f"cannot capture outgoing packets on {iface.name} ({e}); "
                    "capturing incoming packets only (-Q in)"
                )
                return None
            raise CaptureError(f"cannot capture outgoing packets on {iface.name}: {e}") from None
        att.prog_id = prog.id
        return att


def _attach_clsact(iface: Interface, prog) -> Attachment:
    from pybpf.link import tc

    created = tc.add_clsact(iface.ifindex)
    name = f"{FILTER_NAME}:{os.getpid()}" + ("+clsact" if created else "")
    try:
        filt = tc.tc_filter(prog, iface.ifindex, tc.Direction.EGRESS, name=name)
    except BaseException:
        if created:
            tc.remove_clsact_if_empty(iface.ifindex)
        raise
    return Attachment(iface, "clsact", 0, egress=True, tc_filter=filt)


def _remove_stale_filters(iface: Interface, notice) -> None:
    """Remove the clsact filters a killed xdptcp left on the egress hook (see stale_filters)."""
    for f in stale_filters(iface.ifindex):
        remove_filter(iface.ifindex, f)
        notice(
            f"removed a stale xdptcp tc filter (program id {f.prog_id}) left on "
            f"{iface.name} by an earlier run"
        )


def stale_filters(ifindex: int) -> list:
    """Our clsact egress filters whose xdptcp process is gone (killed before it could remove
    them). A filter is ours when its program is an xdptcp capture program (name and ring map) and
    its name is ``xdptcp:PID``; one whose PID still runs belongs to a live capture: left alone."""
    from pybpf.link import tc

    out = []
    for f in tc.filters(ifindex, tc.Direction.EGRESS):
        if f.kind != "bpf" or not f.name.startswith(FILTER_NAME + ":"):
            continue
        if not describe_program(f.prog_id)[1]:
            continue
        pid = f.name[len(FILTER_NAME) + 1 :].split("+")[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        out.append(f)
    return out


def remove_filter(ifindex: int, f) -> None:
    """Remove one stale filter of ours, and the clsact qdisc when that run had added it and
    nothing else is left on it."""
    from pybpf.link import tc

    tc.del_filter(ifindex, tc.Direction.EGRESS, f.prio, f.handle, f.protocol)
    if f.name.endswith("+clsact"):
        tc.remove_clsact_if_empty(ifindex)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- detaching ----------------------------------------------------------------------------


def detach(att: Attachment) -> None:
    """Undo one attachment: the link closed, the filter removed, or the XDP program detached
    if it is still ours (and the program we replaced put back)."""
    from pybpf.link import netlink

    if att.link is not None:
        att.link.close()  # the last fd of a bpf_link: the kernel detaches
        return
    if att.tc_filter is not None:
        with in_netns(att.iface.netns):
            att.tc_filter.close()  # our filter, and clsact if we added it and it is empty
        return
    with in_netns(att.iface.netns):
        try:
            current = netlink.xdp_query(att.iface.ifindex)
        except (NetlinkError, BPFError) as e:
            if getattr(e, "errno", None) in (19, 2):  # ENODEV, ENOENT: interface gone
                return
            raise
        if current.prog_id == att.prog_id:
            netlink.xdp_detach(att.iface.ifindex, att.flags)
        _put_back(att.iface, att.restore)


def gone(attachments: list[Attachment]) -> list[str]:
    """The interfaces of ``attachments`` deleted since: the kernel took our programs with
    them. Each named once, though it had two (in and out)."""
    from pybpf.link import netlink

    lost = []
    for att in attachments:
        if att.iface.name in lost:
            continue
        with in_netns(att.iface.netns):
            try:
                netlink.xdp_query(att.iface.ifindex)
            except NetlinkError as e:
                if e.errno not in (errno.ENODEV, errno.ENOENT):
                    raise
                lost.append(att.iface.name)
    return lost
