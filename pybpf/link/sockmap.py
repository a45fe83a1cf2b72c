"""``sk_msg`` and ``sk_skb`` programs: attached to a sockmap or sockhash, they run for the
sockets stored in it (sk_msg on every sendmsg; sk_skb stream_parser/stream_verdict/verdict on
received data), and may redirect data between those sockets in the kernel.

Kernels 6.10+ offer a bpf_link for this (``BPF_LINK_CREATE`` with the map's fd, link type
SOCKMAP); older ones only ``BPF_PROG_ATTACH`` to the map fd. That attachment belongs to the
map: it ends when the map is freed (its last fd closed, when no program uses it) or on
``BPF_PROG_DETACH``, which :class:`MapAttachment` does on ``close()``.
"""

from __future__ import annotations

import os

from pybpf.link.bpflink import Link, ProgAttachment, _fd
from pybpf.link.support import create_link, has_link_type
from pybpf.sys import progcmd
from pybpf.sys.uapi import AttachType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Union

    from pybpf.link.bpflink import HasFd, ProgramLike

if TYPE_CHECKING:
    MapLike = Union[int, HasFd]

SOCKMAP_ATTACH_TYPES = frozenset(
    {
        AttachType.SK_MSG_VERDICT,
        AttachType.SK_SKB_STREAM_PARSER,
        AttachType.SK_SKB_STREAM_VERDICT,
        AttachType.SK_SKB_VERDICT,
    }
)


def sockmap_link(program: ProgramLike, sockmap: MapLike, attach_type: AttachType) -> Link:
    """A bpf_link (6.10+): detached when its last fd closes."""
    return create_link(program, _fd(sockmap), attach_type)


def attach_sockmap(
    program: ProgramLike, sockmap: MapLike, attach_type: AttachType
) -> Union[Link, MapAttachment]:
    """A link where the kernel has sockmap links (6.10+), else BPF_PROG_ATTACH to the map."""
    if has_link_type("SOCKMAP"):
        return sockmap_link(program, sockmap, attach_type)
    return MapAttachment.attach(program, sockmap, attach_type)


class MapAttachment(ProgAttachment):
    """A program attached to a sockmap with BPF_PROG_ATTACH; ``close()`` detaches it."""

    target_kind = "map"

    @classmethod
    def attach(
        cls, program: ProgramLike, sockmap: MapLike, attach_type: AttachType
    ) -> MapAttachment:
        progcmd.prog_attach(_fd(sockmap), _fd(program), attach_type)
        return cls(os.dup(_fd(sockmap)), os.dup(_fd(program)), attach_type)
