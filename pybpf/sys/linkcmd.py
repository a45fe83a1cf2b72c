"""bpf_link commands of bpf(2): create, update, detach; and run-time statistics."""

from __future__ import annotations

from pybpf.sys.attr import (
    enable_stats_attr,
    link_create_attr,
    link_detach_attr,
    link_update_attr,
)
from pybpf.sys.syscall import (
    bpf,
    own_fd,
    type_name,
)
from pybpf.sys.uapi import (
    AttachType,
    BPFCmd,
    StatsType,
)

# --- links ----------------------------------------------------------------------------------------


def link_create(
    prog_fd: int, target: int, attach_type: int, *, flags: int = 0, target_btf_id: int = 0
) -> int:
    """BPF_LINK_CREATE. ``target`` is an fd, or an ifindex for XDP/TCX/netkit."""
    fd, _ = bpf(
        BPFCmd.LINK_CREATE,
        link_create_attr,
        f"cannot create a {type_name(AttachType, attach_type)} link to target {target}",
        prog_fd=prog_fd,
        target_fd=target,
        attach_type=int(attach_type),
        flags=int(flags),
        target_btf_id=target_btf_id,
    )
    return own_fd(fd)


def link_update(link_fd: int, new_prog_fd: int, *, flags: int = 0, old_prog_fd: int = 0) -> None:
    bpf(
        BPFCmd.LINK_UPDATE,
        link_update_attr,
        "cannot update link with a new program",
        link_fd=link_fd,
        new_prog_fd=new_prog_fd,
        flags=int(flags),
        old_prog_fd=old_prog_fd,
    )


def link_detach(link_fd: int) -> None:
    bpf(BPFCmd.LINK_DETACH, link_detach_attr, "cannot detach link", link_fd=link_fd)


def enable_stats(stats_type: StatsType = StatsType.RUN_TIME) -> int:
    """Turn on run-time statistics (run_cnt/run_time_ns) while the returned fd stays open."""
    fd, _ = bpf(
        BPFCmd.ENABLE_STATS, enable_stats_attr, "cannot enable BPF statistics", type=stats_type
    )
    return own_fd(fd)
