"""bpf_link: an attachment that is itself a kernel object with an fd.

A netlink XDP attachment belongs to the interface and stays after the process exits. A bpf_link
(``BPF_LINK_CREATE``, attach type ``BPF_XDP``) belongs to its fds (and pins): when the last one
is closed the program is detached, so a crash cannot leave a program behind. While a link holds
an interface, netlink attach/detach on it is refused (EBUSY), which protects it from other tools.
"""

from __future__ import annotations

import _socket as socket  # not socket: its wrapper and enum conversions cost a start 2 ms
import errno
import os

from pybpf.errors import SyscallError
from pybpf.sys import features, linkcmd, objcmd, objinfo, progcmd
from pybpf.sys.fd import FDObject
from pybpf.sys.objinfo import BPFLinkInfo
from pybpf.sys.uapi import AttachFlags, AttachType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional, Protocol, Union

    class HasFd(Protocol):
        """Anything with an ``fd`` attribute: a Program."""

        @property
        def fd(self) -> int: ...

    ProgramLike = Union[int, HasFd]


def _fd(obj: ProgramLike) -> int:
    return obj if isinstance(obj, int) else obj.fd


class Link(FDObject):
    """A bpf_link owned through its fd. Closing the last fd (and removing pins) detaches it."""

    def __init__(self, fd: int):
        self._fd = fd

    @classmethod
    def create(
        cls, program: ProgramLike, target: int, attach_type: AttachType, flags: int = 0
    ) -> Link:
        return cls(linkcmd.link_create(_fd(program), target, attach_type, flags=flags))

    @classmethod
    def from_pinned(cls, path: str) -> Link:
        return cls(objcmd.obj_get(str(path)))

    @classmethod
    def from_id(cls, link_id: int) -> Link:
        return cls(objcmd.link_get_fd_by_id(link_id))

    def __repr__(self) -> str:
        return f"Link(fd={self._fd})"

    def info(self) -> BPFLinkInfo:
        """Link id, type, program id and (for XDP) the interface."""
        return objinfo.link_info(self.fd)

    @property
    def id(self) -> int:
        return self.info().id

    def update(self, program: ProgramLike, old_program: Optional[ProgramLike] = None) -> None:
        """Swap the program atomically; with ``old_program`` only if that one is attached."""
        if old_program is None:
            linkcmd.link_update(self.fd, _fd(program))
        else:
            linkcmd.link_update(
                self.fd, _fd(program), flags=AttachFlags.REPLACE, old_prog_fd=_fd(old_program)
            )

    def detach(self) -> None:
        """Detach now, even while other fds or pins still hold the link (it becomes defunct)."""
        linkcmd.link_detach(self.fd)

    def pin(self, path: str) -> None:
        """Pin the link: the attachment then survives this process until the pin is removed."""
        from pybpf.sys.bpffs import ensure_parent

        ensure_parent(str(path))
        objcmd.obj_pin(self.fd, str(path))


def xdp_link(program: ProgramLike, ifindex: int, flags: int = 0) -> Link:
    """Attach an XDP program to an interface through a bpf_link.

    ``flags`` takes one XDP mode flag (pybpf.link.netlink.XDPFlags.SKB_MODE / DRV_MODE) or 0 for the
    best mode the driver supports.
    """
    try:
        return Link.create(program, ifindex, AttachType.XDP, flags)
    except SyscallError as e:
        # The kernel answers a bare EINVAL for an ifindex that does not exist: say so.
        if e.errno == errno.EINVAL and not _interface_exists(ifindex):
            raise SyscallError(e.what, e.errno, f"no interface with ifindex {ifindex}") from None
        if e.errno == errno.EINVAL and not features.has(features.Feature.XDP_LINK):
            raise features.missing(features.Feature.XDP_LINK, e.what) from None
        if e.errno in (errno.EBUSY, errno.EEXIST):
            # EBUSY: a program attached in this mode; EEXIST: in another mode, or a link
            raise SyscallError(_xdp_what(ifindex), e.errno, _xdp_holder(ifindex)) from None
        raise


def _xdp_what(ifindex: int) -> str:
    try:
        return f"cannot attach XDP to {socket.if_indextoname(ifindex)}"
    except OSError:
        return f"cannot attach XDP to ifindex {ifindex}"


def _xdp_holder(ifindex: int) -> str:
    """What holds the interface's XDP hook, as ``ip link`` would name it."""
    from pybpf.link import netlink

    try:
        info = netlink.xdp_query(ifindex)
    except SyscallError:
        return "the interface already has an XDP program"
    ids = [
        f"id {pid} ({mode})"
        for pid, mode in (
            (info.skb_prog_id, "generic"),
            (info.drv_prog_id, "native"),
            (info.hw_prog_id, "offloaded"),
        )
        if pid
    ] or ([f"id {info.prog_id}"] if info.prog_id else [])
    held = f": {', '.join(ids)}" if ids else ""
    return f"the interface already has an XDP program{held}; one XDP program per interface"


def _interface_exists(ifindex: int) -> bool:
    try:
        socket.if_indextoname(ifindex)
    except OSError:
        return False
    return True


class ProgAttachment(FDObject):
    """A program attached with BPF_PROG_ATTACH to a target that is not a link (a cgroup, a
    sockmap): the attachment belongs to the target, not to an fd, so ``close()`` detaches it with
    BPF_PROG_DETACH. The object owns a dup of the target's fd (``fd``) and of the program's, so
    the detach names exactly this pair even after the caller closed theirs."""

    target_kind = "target"

    def __init__(self, target_fd: int, prog_fd: int, attach_type: AttachType):
        self._fd = target_fd
        self._prog_fd = prog_fd
        self.attach_type = attach_type

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.attach_type.name}, {self.target_kind} fd {self._fd})"

    def close(self) -> None:
        """Detach the program from the target, then drop both fds."""
        if self._fd < 0:
            return
        try:
            progcmd.prog_detach(self._fd, self._prog_fd, self.attach_type)
        except SyscallError as e:
            if e.errno != errno.ENOENT:  # already detached by someone else
                raise
        finally:
            os.close(self._prog_fd)
            self._prog_fd = -1
            super().close()
