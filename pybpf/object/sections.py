"""From an ELF section name to a program type, the way libbpf reads ``SEC("...")``.

A rule is either exact (``xdp`` matches only ``xdp``) or a prefix (``kprobe+`` matches ``kprobe``
and ``kprobe/<anything>``). The first matching rule wins, so longer, more specific names come first.
What follows the ``/`` is the attach target (a kernel function for ``fentry/``, a tracepoint for
``tracepoint/``), kept in ``SectionDef.target``.
"""

from __future__ import annotations

from pybpf.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# Program flags the section implies (values of BPF_F_* prog_flags).
F_SLEEPABLE = 1 << 4
F_XDP_HAS_FRAGS = 1 << 5

# (pattern, program type, expected attach type, flags, needs a BTF attach target)
# Names are those of enum bpf_prog_type / bpf_attach_type without the BPF_PROG_TYPE_ / BPF_ prefix.
_RULES: tuple[tuple[str, str, Optional[str], int, bool], ...] = (
    ("socket", "SOCKET_FILTER", None, 0, False),
    ("sk_reuseport/migrate", "SK_REUSEPORT", "SK_REUSEPORT_SELECT_OR_MIGRATE", 0, False),
    ("sk_reuseport", "SK_REUSEPORT", "SK_REUSEPORT_SELECT", 0, False),
    ("kprobe+", "KPROBE", None, 0, False),
    ("uprobe+", "KPROBE", None, 0, False),
    ("uprobe.s+", "KPROBE", None, F_SLEEPABLE, False),
    ("kretprobe+", "KPROBE", None, 0, False),
    ("uretprobe+", "KPROBE", None, 0, False),
    ("uretprobe.s+", "KPROBE", None, F_SLEEPABLE, False),
    ("uprobe.multi+", "KPROBE", "TRACE_UPROBE_MULTI", 0, False),
    ("uprobe.multi.s+", "KPROBE", "TRACE_UPROBE_MULTI", F_SLEEPABLE, False),
    ("uretprobe.multi+", "KPROBE", "TRACE_UPROBE_MULTI", 0, False),
    ("uretprobe.multi.s+", "KPROBE", "TRACE_UPROBE_MULTI", F_SLEEPABLE, False),
    ("kprobe.multi+", "KPROBE", "TRACE_KPROBE_MULTI", 0, False),
    ("kretprobe.multi+", "KPROBE", "TRACE_KPROBE_MULTI", 0, False),
    ("ksyscall+", "KPROBE", None, 0, False),
    ("kretsyscall+", "KPROBE", None, 0, False),
    ("usdt+", "KPROBE", None, 0, False),
    ("tc/ingress", "SCHED_CLS", "TCX_INGRESS", 0, False),
    ("tc/egress", "SCHED_CLS", "TCX_EGRESS", 0, False),
    ("tcx/ingress", "SCHED_CLS", "TCX_INGRESS", 0, False),
    ("tcx/egress", "SCHED_CLS", "TCX_EGRESS", 0, False),
    ("tc", "SCHED_CLS", None, 0, False),
    ("classifier", "SCHED_CLS", None, 0, False),
    ("action", "SCHED_ACT", None, 0, False),
    ("netkit/primary", "SCHED_CLS", "NETKIT_PRIMARY", 0, False),
    ("netkit/peer", "SCHED_CLS", "NETKIT_PEER", 0, False),
    ("tracepoint+", "TRACEPOINT", None, 0, False),
    ("tp+", "TRACEPOINT", None, 0, False),
    ("tracepoint.s+", "TRACEPOINT", None, F_SLEEPABLE, False),
    ("tp.s+", "TRACEPOINT", None, F_SLEEPABLE, False),
    ("raw_tracepoint+", "RAW_TRACEPOINT", None, 0, False),
    ("raw_tp+", "RAW_TRACEPOINT", None, 0, False),
    ("raw_tracepoint.w+", "RAW_TRACEPOINT_WRITABLE", None, 0, False),
    ("raw_tp.w+", "RAW_TRACEPOINT_WRITABLE", None, 0, False),
    ("tp_btf+", "TRACING", "TRACE_RAW_TP", 0, True),
    ("tp_btf.s+", "TRACING", "TRACE_RAW_TP", F_SLEEPABLE, True),
    ("fentry+", "TRACING", "TRACE_FENTRY", 0, True),
    ("fmod_ret+", "TRACING", "MODIFY_RETURN", 0, True),
    ("fexit+", "TRACING", "TRACE_FEXIT", 0, True),
    ("fentry.s+", "TRACING", "TRACE_FENTRY", F_SLEEPABLE, True),
    ("fmod_ret.s+", "TRACING", "MODIFY_RETURN", F_SLEEPABLE, True),
    ("fexit.s+", "TRACING", "TRACE_FEXIT", F_SLEEPABLE, True),
    ("freplace+", "EXT", None, 0, True),
    ("lsm+", "LSM", "LSM_MAC", 0, True),
    ("lsm.s+", "LSM", "LSM_MAC", F_SLEEPABLE, True),
    ("lsm_cgroup+", "LSM", "LSM_CGROUP", 0, True),
    ("iter+", "TRACING", "TRACE_ITER", 0, True),
    ("iter.s+", "TRACING", "TRACE_ITER", F_SLEEPABLE, True),
    ("syscall", "SYSCALL", None, F_SLEEPABLE, False),
    ("xdp.frags/devmap", "XDP", "XDP_DEVMAP", F_XDP_HAS_FRAGS, False),
    ("xdp/devmap", "XDP", "XDP_DEVMAP", 0, False),
    ("xdp.frags/cpumap", "XDP", "XDP_CPUMAP", F_XDP_HAS_FRAGS, False),
    ("xdp/cpumap", "XDP", "XDP_CPUMAP", 0, False),
    ("xdp.frags", "XDP", "XDP", F_XDP_HAS_FRAGS, False),
    ("xdp", "XDP", "XDP", 0, False),
    ("perf_event", "PERF_EVENT", None, 0, False),
    ("lwt_in", "LWT_IN", None, 0, False),
    ("lwt_out", "LWT_OUT", None, 0, False),
    ("lwt_xmit", "LWT_XMIT", None, 0, False),
    ("lwt_seg6local", "LWT_SEG6LOCAL", None, 0, False),
    ("sockops", "SOCK_OPS", "CGROUP_SOCK_OPS", 0, False),
    ("sk_skb/stream_parser", "SK_SKB", "SK_SKB_STREAM_PARSER", 0, False),
    ("sk_skb/stream_verdict", "SK_SKB", "SK_SKB_STREAM_VERDICT", 0, False),
    ("sk_skb/verdict", "SK_SKB", "SK_SKB_VERDICT", 0, False),
    ("sk_skb", "SK_SKB", None, 0, False),
    ("sk_msg", "SK_MSG", "SK_MSG_VERDICT", 0, False),
    ("lirc_mode2", "LIRC_MODE2", "LIRC_MODE2", 0, False),
    ("flow_dissector", "FLOW_DISSECTOR", "FLOW_DISSECTOR", 0, False),
    ("cgroup_skb/ingress", "CGROUP_SKB", "CGROUP_INET_INGRESS", 0, False),
    ("cgroup_skb/egress", "CGROUP_SKB", "CGROUP_INET_EGRESS", 0, False),
    ("cgroup/skb", "CGROUP_SKB", None, 0, False),
    ("cgroup/sock_create", "CGROUP_SOCK", "CGROUP_INET_SOCK_CREATE", 0, False),
    ("cgroup/sock_release", "CGROUP_SOCK", "CGROUP_INET_SOCK_RELEASE", 0, False),
    ("cgroup/sock", "CGROUP_SOCK", "CGROUP_INET_SOCK_CREATE", 0, False),
    ("cgroup/post_bind4", "CGROUP_SOCK", "CGROUP_INET4_POST_BIND", 0, False),
    ("cgroup/post_bind6", "CGROUP_SOCK", "CGROUP_INET6_POST_BIND", 0, False),
    ("cgroup/bind4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_BIND", 0, False),
    ("cgroup/bind6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_BIND", 0, False),
    ("cgroup/connect4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_CONNECT", 0, False),
    ("cgroup/connect6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_CONNECT", 0, False),
    ("cgroup/connect_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_CONNECT", 0, False),
    ("cgroup/sendmsg4", "CGROUP_SOCK_ADDR", "CGROUP_UDP4_SENDMSG", 0, False),
    ("cgroup/sendmsg6", "CGROUP_SOCK_ADDR", "CGROUP_UDP6_SENDMSG", 0, False),
    ("cgroup/sendmsg_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_SENDMSG", 0, False),
    ("cgroup/recvmsg4", "CGROUP_SOCK_ADDR", "CGROUP_UDP4_RECVMSG", 0, False),
    ("cgroup/recvmsg6", "CGROUP_SOCK_ADDR", "CGROUP_UDP6_RECVMSG", 0, False),
    ("cgroup/recvmsg_unix", "CGROUP_SOCK_ADDR", "CGROUP_UNIX_RECVMSG", 0, False),
    ("cgroup/getpeername4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_GETPEERNAME", 0, False),
    ("cgroup/getpeername6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_GETPEERNAME", 0, False),
    ("cgroup/getsockname4", "CGROUP_SOCK_ADDR", "CGROUP_INET4_GETSOCKNAME", 0, False),
    ("cgroup/getsockname6", "CGROUP_SOCK_ADDR", "CGROUP_INET6_GETSOCKNAME", 0, False),
    ("cgroup/sysctl", "CGROUP_SYSCTL", "CGROUP_SYSCTL", 0, False),
    ("cgroup/getsockopt", "CGROUP_SOCKOPT", "CGROUP_GETSOCKOPT", 0, False),
    ("cgroup/setsockopt", "CGROUP_SOCKOPT", "CGROUP_SETSOCKOPT", 0, False),
    ("cgroup/dev", "CGROUP_DEVICE", "CGROUP_DEVICE", 0, False),
    ("struct_ops+", "STRUCT_OPS", None, 0, False),
    ("struct_ops.s+", "STRUCT_OPS", None, F_SLEEPABLE, False),
    ("sk_lookup", "SK_LOOKUP", "SK_LOOKUP", 0, False),
    ("netfilter", "NETFILTER", "NETFILTER", 0, False),
)


@record
class SectionDef:
    """What a section name says about the programs in it."""

    prog_type: str  # e.g. "XDP" (enum bpf_prog_type without BPF_PROG_TYPE_)
    attach_type: Optional[str]  # e.g. "XDP" (enum bpf_attach_type without BPF_), or None
    flags: int  # prog_flags implied by the name (sleepable, xdp frags)
    needs_btf_target: bool  # fentry/, lsm/, tp_btf/...: the target is a kernel BTF id
    target: str  # what follows "<type>/", or ""


def match_section(name: str) -> Optional[SectionDef]:
    """The definition of the first rule matching ``name``, or None for an unknown section."""
    for pattern, ptype, atype, flags, btf_target in _RULES:
        if pattern.endswith("+"):
            base = pattern[:-1]
            if name == base:
                return SectionDef(ptype, atype, flags, btf_target, "")
            if name.startswith(base + "/"):
                return SectionDef(ptype, atype, flags, btf_target, name[len(base) + 1 :])
        elif name == pattern:
            return SectionDef(ptype, atype, flags, btf_target, "")
    return None
