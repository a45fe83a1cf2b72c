"""netfilter programs (6.4+): a BPF program as a netfilter hook, beside nftables' chains.

``BPF_LINK_CREATE`` with attach type ``BPF_NETFILTER`` and the hook (protocol family, hook
number, priority) hooks the program into the *caller's* network namespace; it returns
``NF_ACCEPT`` (1) or ``NF_DROP`` (0) for each packet. The hook is removed when the link's last
fd closes. ``netns=`` makes the link from a thread that entered that namespace.
"""

from __future__ import annotations

import errno as _errno

from pybpf.errors import SyscallError
from pybpf.link.bpflink import Link, _fd
from pybpf.link.netns import NetnsLike, in_netns
from pybpf.link.support import missing_attach_type
from pybpf.sys import linkcmd
from pybpf.sys.uapi import AttachType, NetfilterLinkFlags, NFInetHook, NFProto

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from pybpf.link.bpflink import ProgramLike

__all__ = ["netfilter_link", "NFProto", "NFInetHook", "NetfilterLinkFlags"]


def netfilter_link(
    program: ProgramLike,
    pf: NFProto,
    hook: NFInetHook,
    priority: int,
    *,
    defrag: bool = False,
    netns: Optional[NetnsLike] = None,
) -> Link:
    """Hook ``program`` at (``pf``, ``hook``) with ``priority`` (the kernel refuses the
    priorities reserved for conntrack and defragmentation: INT_MIN, INT_MAX)."""
    flags = NetfilterLinkFlags.IP_DEFRAG if defrag else 0

    def create() -> Link:
        try:
            return Link(
                linkcmd.link_create_netfilter(_fd(program), pf, hook, priority, flags=flags)
            )
        except SyscallError as e:
            why = missing_attach_type(AttachType.NETFILTER) if e.errno == _errno.EINVAL else None
            if why:
                raise SyscallError(e.what, e.errno, why) from None
            raise

    if netns is None:
        return create()
    return in_netns(netns, create)
