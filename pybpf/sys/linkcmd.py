"""bpf_link commands of bpf(2): create, update, detach; and run-time statistics."""

from __future__ import annotations

import ctypes
import os

from pybpf.sys.attr import (
    enable_stats_attr,
    iter_create_attr,
    link_create_attr,
    link_create_iter_attr,
    link_create_kprobe_multi_attr,
    link_create_netfilter_attr,
    link_create_perf_event_attr,
    link_create_tracing_attr,
    link_create_uprobe_multi_attr,
    link_detach_attr,
    link_update_attr,
    raw_tracepoint_open_attr,
)
from pybpf.sys.layout import Struct
from pybpf.sys.syscall import (
    addr_of,
    bpf,
    own_fd,
    type_name,
)
from pybpf.sys.uapi import (
    AttachType,
    BPFCmd,
    StatsType,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional, Sequence

# --- links ----------------------------------------------------------------------------------------


def _link_create(
    layout: Struct, what: str, prog_fd: int, attach_type: int, **fields: object
) -> int:
    """BPF_LINK_CREATE with ``layout``, the attr's variant for one kind of target: the new link's
    fd. Every kind names the program and its attach type; the other fields are the kind's own."""
    fd, _ = bpf(
        BPFCmd.LINK_CREATE, layout, what, prog_fd=prog_fd, attach_type=int(attach_type), **fields
    )
    return own_fd(fd)


def link_create(
    prog_fd: int, target: int, attach_type: int, *, flags: int = 0, target_btf_id: int = 0
) -> int:
    """BPF_LINK_CREATE. ``target`` is an fd, or an ifindex for XDP/TCX/netkit."""
    return _link_create(
        link_create_attr,
        f"cannot create a {type_name(AttachType, attach_type)} link to target {target}",
        prog_fd,
        attach_type,
        target_fd=target,
        flags=int(flags),
        target_btf_id=target_btf_id,
    )


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


# --- tracing links --------------------------------------------------------------------------------


def link_create_perf_event(prog_fd: int, perf_fd: int, *, bpf_cookie: int = 0) -> int:
    """BPF_LINK_CREATE with BPF_PERF_EVENT (5.15+): a link holding the perf event."""
    return _link_create(
        link_create_perf_event_attr,
        "cannot create a PERF_EVENT link",
        prog_fd,
        AttachType.PERF_EVENT,
        target_fd=perf_fd,
        bpf_cookie=bpf_cookie,
    )


def link_create_tracing(
    prog_fd: int, attach_type: int, *, target_fd: int = 0, target_btf_id: int = 0, cookie: int = 0
) -> int:
    """BPF_LINK_CREATE for fentry/fexit/fmod_ret/tp_btf/lsm: the target is the program's own
    attach_btf_id, given at load; ``target_btf_id`` re-targets an freplace program."""
    return _link_create(
        link_create_tracing_attr,
        f"cannot create a {type_name(AttachType, attach_type)} link",
        prog_fd,
        attach_type,
        target_fd=target_fd,
        target_btf_id=target_btf_id,
        cookie=cookie,
    )


def link_create_iter(prog_fd: int, iter_info: bytes = b"") -> int:
    """BPF_LINK_CREATE with BPF_TRACE_ITER; ``iter_info`` is a ``union bpf_iter_link_info``."""
    buf = ctypes.create_string_buffer(iter_info, len(iter_info)) if iter_info else None
    return _link_create(
        link_create_iter_attr,
        "cannot create a TRACE_ITER link",
        prog_fd,
        AttachType.TRACE_ITER,
        iter_info=addr_of(buf),
        iter_info_len=len(iter_info),
    )


def link_create_kprobe_multi(
    prog_fd: int, symbols: list[str], *, retprobe: bool = False, cookies: list[int] = ()
) -> int:
    """BPF_LINK_CREATE with BPF_TRACE_KPROBE_MULTI (5.18+, needs CONFIG_FPROBE)."""
    names = [ctypes.create_string_buffer(s.encode()) for s in symbols]
    syms = _u64s([ctypes.addressof(n) for n in names])
    cbuf = _u64s(cookies)  # held here: the kernel reads it during the call
    return _link_create(
        link_create_kprobe_multi_attr,
        f"cannot create a TRACE_KPROBE_MULTI link on {len(names)} functions",
        prog_fd,
        AttachType.TRACE_KPROBE_MULTI,
        kprobe_multi_flags=1 if retprobe else 0,  # BPF_F_KPROBE_MULTI_RETURN
        cnt=len(names),
        syms=addr_of(syms),
        cookies=addr_of(cbuf),
    )


def link_create_uprobe_multi(
    prog_fd: int,
    path: str,
    offsets: list[int],
    *,
    retprobe: bool = False,
    pid: int = 0,
    cookies: list[int] = (),
) -> int:
    """BPF_LINK_CREATE with BPF_TRACE_UPROBE_MULTI (6.6+): one link, a uprobe at each file
    offset of one binary."""
    pbuf = ctypes.create_string_buffer(os.fsencode(path))
    obuf = _u64s(offsets)
    cbuf = _u64s(cookies)
    return _link_create(
        link_create_uprobe_multi_attr,
        f"cannot create a TRACE_UPROBE_MULTI link on {len(offsets)} offsets of {path}",
        prog_fd,
        AttachType.TRACE_UPROBE_MULTI,
        path=ctypes.addressof(pbuf),
        offsets=addr_of(obuf),
        cookies=addr_of(cbuf),
        cnt=len(offsets),
        uprobe_multi_flags=1 if retprobe else 0,  # BPF_F_UPROBE_MULTI_RETURN
        pid=pid,
    )


def _u64s(values: Sequence[int]) -> Optional[ctypes.Array]:
    """``values`` as a C array of __u64 for the kernel to read; None (NULL) when there are none."""
    return (ctypes.c_uint64 * len(values))(*values) if values else None


def raw_tracepoint_open(prog_fd: int, name: str = "", *, cookie: int = 0) -> int:
    """BPF_RAW_TRACEPOINT_OPEN: the oldest (4.17) way to get a link, for raw tracepoints by name
    and (name NULL) for BTF-targeted tracing programs."""
    nbuf = ctypes.create_string_buffer(name.encode()) if name else None
    fd, _ = bpf(
        BPFCmd.RAW_TRACEPOINT_OPEN,
        raw_tracepoint_open_attr,
        f"cannot open raw tracepoint {name!r}" if name else "cannot open a tracing link",
        name=addr_of(nbuf),
        prog_fd=prog_fd,
        cookie=cookie,
    )
    return own_fd(fd)


def iter_create(link_fd: int) -> int:
    """BPF_ITER_CREATE: a new readable fd that runs the iterator program as it is read."""
    fd, _ = bpf(BPFCmd.ITER_CREATE, iter_create_attr, "cannot create an iterator", link_fd=link_fd)
    return own_fd(fd)


def link_create_netfilter(
    prog_fd: int, pf: int, hooknum: int, priority: int, *, flags: int = 0
) -> int:
    """BPF_LINK_CREATE of a netfilter hook in the caller's network namespace."""
    return _link_create(
        link_create_netfilter_attr,
        f"cannot create a NETFILTER link (pf {pf}, hook {hooknum}, priority {priority})",
        prog_fd,
        AttachType.NETFILTER,
        pf=int(pf),
        hooknum=int(hooknum),
        priority=int(priority),
        netfilter_flags=int(flags),
    )
