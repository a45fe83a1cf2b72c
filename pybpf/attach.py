"""Auto-attach: a loaded program attached where its section name says, the way libbpf reads it.

``SEC("tp/sched/sched_process_exec")`` is a tracepoint, ``SEC("uprobe//bin/bash:readline")`` a
uprobe on bash's readline, ``SEC("fentry/do_unlinkat")`` a trampoline on a kernel function.
:func:`attach` turns one program into its link; :func:`attach_all` does every program of a
loaded object and returns the links as one group.

Kinds are found in a registry keyed by what comes before the first ``/`` of the section name
(``tp``, ``uprobe.s``, ``cgroup_skb``...). Each entry is a function ``(program, target, **options)
-> link`` where ``target`` is what follows the ``/`` (empty when there is none). Other attach
kinds register themselves with :func:`register`::

    from pybpf.attach import register
    register("tc", attach_tc)      # SEC("tc/ingress") -> attach_tc(prog, "ingress", **options)

A section that names no target (``SEC("uprobe")``, ``SEC("perf_event")``) cannot be attached
from its name alone: :func:`attach` says which arguments it needs, :func:`attach_all` leaves such
programs out and lists them in ``skipped`` (as libbpf's skeletons do).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Protocol

from pybpf.errors import BPFError
from pybpf.object.sections import match_section
from pybpf.record import field, record
from pybpf.sys.uapi import AttachType


class AttachableProgram(Protocol):
    """What attaching needs of a program: its fd, its name and the section it came from."""

    @property
    def fd(self) -> int: ...

    @property
    def name(self) -> str: ...

    section: str


Attacher = Callable[..., Any]


class NeedsArguments(BPFError):
    """The section name does not say where to attach: the caller must (``attach(p, ...)``)."""


@record
class Kind:
    """One registered attach kind."""

    prefix: str
    attach: Attacher
    summary: str  # "tracepoint: tp/<category>/<name>", shown when arguments are missing


_REGISTRY: dict[str, Kind] = {}


def register(prefix: str, attach: Attacher, summary: str = "") -> None:
    """Make ``SEC("<prefix>")`` and ``SEC("<prefix>/<target>")`` attachable by ``attach``."""
    _REGISTRY[prefix] = Kind(prefix, attach, summary or prefix)


def kinds() -> dict[str, Kind]:
    """The registered kinds by section prefix."""
    return dict(_REGISTRY)


def split_section(section: str) -> tuple[str, str]:
    """``"tp/sched/sched_switch"`` -> ``("tp", "sched/sched_switch")``."""
    prefix, _, target = section.partition("/")
    return prefix, target


def attach(program: AttachableProgram, section: Optional[str] = None, **options: Any) -> Any:
    """Attach ``program`` where ``section`` (default: the section it was loaded from) says.

    ``options`` go to the kind (``pid=``, ``cookie=``, ``sample_freq=``...); a target given as
    ``target=`` replaces the one of the section name (``attach(p, target="/bin/bash:readline")``).
    Returns the link (an fd-owning object: close it to detach)."""
    section = section if section is not None else getattr(program, "section", "")
    name = getattr(program, "name", "?")
    if not section:
        raise BPFError(f"program '{name}': no section name to attach by; pass section=")
    prefix, target = split_section(section)
    kind = _REGISTRY.get(prefix)
    if kind is None:
        raise BPFError(
            f"program '{name}' (section {section}): pybpf does not know how to attach "
            f"'{prefix}' programs"
        )
    target = options.pop("target", target)
    return kind.attach(program, target, **options)


@record(frozen=False)
class AttachedObject:
    """The links of :func:`attach_all`, by program name, closed together."""

    links: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # program -> why it was left out

    def close(self) -> None:
        for link in reversed(list(self.links.values())):
            link.close()

    def __enter__(self) -> AttachedObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach_all(
    obj: Any,
    programs: Optional[Iterable[str]] = None,
    options: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> AttachedObject:
    """Attach every program of a loaded object (or those named) by its section name. Programs
    whose section needs arguments are skipped (see ``skipped``) unless named explicitly or
    given them in ``options``, keyword arguments of :func:`attach` by program name
    (``{"tc_ingress": {"interface": "lo"}}``)."""
    options = options or {}
    for pname in options:
        if pname not in obj.programs:
            raise BPFError(f"no program named '{pname}' is loaded")
    named = programs is not None
    wanted = list(programs) if named else list(obj.programs)
    out = AttachedObject()
    struct_ops = getattr(obj, "struct_ops", {})
    # struct_ops programs run once their map is registered (below): each map is one link
    by_map = {p for ops in struct_ops.values() for _, p in ops.spec.programs}
    try:
        for pname in wanted:
            prog = obj.programs.get(pname)
            if prog is None:
                raise BPFError(f"no program named '{pname}' is loaded")
            if pname in by_map and not named:
                continue
            kw = dict(options.get(pname, {}))
            try:
                out.links[pname] = attach(prog, **kw)
            except NeedsArguments as e:
                if named or kw:
                    raise
                out.skipped[pname] = str(e)
        if not named:
            for var, ops in struct_ops.items():
                out.links[var] = ops.register()
    except BaseException:
        out.close()
        raise
    return out


# --- the tracing kinds --------------------------------------------------------------------------


def _needs(program: AttachableProgram, what: str) -> NeedsArguments:
    name = getattr(program, "name", "?")
    section = getattr(program, "section", "?")
    return NeedsArguments(f"program '{name}' (section {section}): {what}")


def _tracepoint(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.tracepoint import tracepoint

    category, sep, name = target.replace(":", "/").partition("/")
    if target and (not sep or not category or not name):  # given, and not a tracepoint's name
        raise BPFError(
            f"program '{getattr(program, 'name', '?')}': tracepoint '{target}' is not "
            "<category>/<name> (sched/sched_switch)"
        )
    if not sep or not category or not name:
        raise _needs(program, "give the tracepoint as tp/<category>/<name> or target=")
    return tracepoint(program, category, name, **options)


def _raw_tracepoint(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.tracepoint import raw_tracepoint

    if not target:
        raise _needs(program, "give the tracepoint as raw_tp/<name> or target=")
    return raw_tracepoint(program, target, **options)


def _tracing(attach_type: AttachType) -> Attacher:
    def attach_tracing(program: AttachableProgram, target: str, **options: Any) -> Any:
        from pybpf.link.tracing import tracing

        # The target was fixed at load time (attach_btf_id): the name here only labels errors.
        return tracing(program, attach_type, target=target, **options)

    return attach_tracing


def _iter(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.tracing import iterator

    return iterator(program, target=target, **options)


def _perf_event(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.perf_event import perf_event

    if not (options.get("sample_period") or options.get("sample_freq")):
        raise _needs(
            program,
            "a perf_event program needs its event: attach(p, sample_freq=...) or "
            "sample_period=... (and type=/config=, default cpu-clock on every CPU)",
        )
    return perf_event(program, **options)


def _probe(retprobe: bool) -> Attacher:
    def attach_uprobe(program: AttachableProgram, target: str, **options: Any) -> Any:
        from pybpf.link.uprobe import UprobeTarget, uprobe_at

        if not target:
            raise _needs(
                program,
                "give the function as uprobe/<binary>:<function>[+<offset>] or "
                "target='<binary>:<function>'",
            )
        return uprobe_at(program, UprobeTarget.parse(target), retprobe=retprobe, **options)

    return attach_uprobe


def _probe_multi(retprobe: bool) -> Attacher:
    def attach_uprobe_multi(program: AttachableProgram, target: str, **options: Any) -> Any:
        from pybpf.link.uprobe import uprobe_multi

        binary, sep, pattern = target.rpartition(":")
        if not (sep and binary and pattern):
            raise _needs(
                program,
                "give the functions as uprobe.multi/<binary>:<pattern> or "
                "target='<binary>:<pattern>'",
            )
        return uprobe_multi(program, binary, pattern, retprobe=retprobe, **options)

    return attach_uprobe_multi


def _usdt(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.usdt import usdt

    binary, provider, name = (target.rsplit(":", 2) + ["", ""])[:3] if target else ("", "", "")
    if not (binary and provider and name):
        raise _needs(program, "give the probe as usdt/<binary>:<provider>:<name> or target=")
    if "specs_map_fd" in options:
        return usdt(program, binary, provider, name, **options)
    specs = _usdt_specs_map(program)
    try:
        links = usdt(program, binary, provider, name, specs_map_fd=specs.fd, **options)
    except BaseException:
        specs.close()
        raise
    links.hold(specs)  # our fd of the map goes with the links
    return links


def _usdt_specs_map(program: AttachableProgram) -> Any:
    """The ``__bpf_usdt_specs`` map the program uses, found in the kernel's list of its maps
    (which keeps the first 15 characters of a name)."""
    from pybpf.maps import Map
    from pybpf.sys.objinfo import prog_info

    for map_id in prog_info(program.fd).map_ids:
        m = Map.from_id(map_id)
        if m.name == "__bpf_usdt_specs"[:15]:
            return m
        m.close()
    name = getattr(program, "name", "?")
    raise BPFError(f"program '{name}' uses no __bpf_usdt_specs map: was it built with usdt.bpf.h?")


def _kprobe(retprobe: bool) -> Attacher:
    def attach_kprobe(program: AttachableProgram, target: str, **options: Any) -> Any:
        from pybpf.link.kprobe import kprobe

        if not target:
            raise _needs(program, "give the function as kprobe/<function>[+<offset>] or target=")
        func, plus, off = target.partition("+")
        return kprobe(program, func, offset=int(off, 0) if plus else 0, retprobe=retprobe,
                      **options)  # fmt: skip

    return attach_kprobe


def _ksyscall(retprobe: bool) -> Attacher:
    def attach_ksyscall(program: AttachableProgram, target: str, **options: Any) -> Any:
        from pybpf.link.kprobe import ksyscall

        if not target:
            raise _needs(program, "give the syscall as ksyscall/<name> or target=")
        return ksyscall(program, target, retprobe=retprobe, **options)

    return attach_ksyscall


def _kprobe_multi(retprobe: bool) -> Attacher:
    def attach_kprobe_multi(program: AttachableProgram, target: str, **options: Any) -> Any:
        from pybpf.link.kprobe import kprobe_multi

        if not target:
            raise _needs(program, "give the functions as kprobe.multi/<pattern> or target=")
        return kprobe_multi(program, target, retprobe=retprobe, **options)

    return attach_kprobe_multi


def _register_tracing() -> None:
    for prefix in ("tp", "tracepoint", "tp.s", "tracepoint.s"):
        register(prefix, _tracepoint, "tracepoint: tp/<category>/<name>")
    for prefix in ("raw_tp", "raw_tracepoint", "raw_tp.w", "raw_tracepoint.w"):
        register(prefix, _raw_tracepoint, "raw tracepoint: raw_tp/<name>")
    for prefix in ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm"):
        for p in (prefix, prefix + ".s"):
            sd = match_section(p + "/x")
            assert sd is not None and sd.attach_type is not None
            register(p, _tracing(AttachType[sd.attach_type]), f"{prefix}: {prefix}/<function>")
    register("iter", _iter, "iterator: iter/<target>")
    register("iter.s", _iter, "iterator: iter.s/<target>")
    register("perf_event", _perf_event, "perf_event: sample_freq= or sample_period=")
    for prefix, ret in (("uprobe", False), ("uretprobe", True)):
        for p in (prefix, prefix + ".s"):
            register(p, _probe(ret), f"{prefix}: {prefix}/<binary>:<function>[+<offset>]")
    for prefix, ret in (("uprobe.multi", False), ("uretprobe.multi", True)):
        for p in (prefix, prefix + ".s"):
            register(p, _probe_multi(ret), f"{prefix}: {prefix}/<binary>:<pattern>")
    register("usdt", _usdt, "usdt: usdt/<binary>:<provider>:<name>")
    for prefix, ret in (("kprobe", False), ("kretprobe", True)):
        register(prefix, _kprobe(ret), f"{prefix}: {prefix}/<function>[+<offset>]")
    for prefix, ret in (("ksyscall", False), ("kretsyscall", True)):
        register(prefix, _ksyscall(ret), f"{prefix}: {prefix}/<syscall>")
    for prefix, ret in (("kprobe.multi", False), ("kretprobe.multi", True)):
        register(prefix, _kprobe_multi(ret), f"{prefix}: {prefix}/<pattern>")


_register_tracing()


# --- the network kinds (cgroups, sockets, namespaces, netfilter) ---------------------------------


def _attach_type_of(program: AttachableProgram) -> AttachType:
    sd = match_section(getattr(program, "section", ""))
    if sd is None or sd.attach_type is None:
        raise _needs(program, "the section name says no attach type: pass section=")
    return AttachType[sd.attach_type]


def _cgroup(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.cgroup import attach_cgroup

    cgroup = options.pop("cgroup", None)
    if cgroup is None:
        raise _needs(program, "a cgroup program needs its cgroup: attach(p, cgroup=PATH or fd)")
    return attach_cgroup(program, cgroup, _attach_type_of(program), **options)


def _sockmap(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.sockmap import attach_sockmap

    sockmap = options.pop("map", None)
    if sockmap is None:
        raise _needs(program, "attach(p, map=SOCKMAP) names the sockmap/sockhash it runs for")
    return attach_sockmap(program, sockmap, _attach_type_of(program), **options)


def _socket_filter(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.sockfilter import SocketFilter, packet_socket_filter

    sock = options.pop("sock", None)
    interface = options.pop("interface", None)
    if sock is None and interface is None:
        raise _needs(
            program,
            "a socket filter needs its socket: attach(p, sock=SOCKET), or "
            "attach(p, interface=NAME) for a packet socket of that interface",
        )
    if sock is None:
        return packet_socket_filter(program, interface)
    return SocketFilter.attach(program, sock)


def _netns(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.netns import netns_link

    netns = options.pop("netns", None)
    if netns is None:
        raise _needs(program, "attach(p, netns=NAME, path or fd) names the network namespace")
    return netns_link(program, netns, _attach_type_of(program))


def _netfilter(program: AttachableProgram, target: str, **options: Any) -> Any:
    from pybpf.link.netfilter import netfilter_link

    if not {"pf", "hook", "priority"} <= set(options):
        raise _needs(program, "attach(p, pf=NFProto.IPV4, hook=NFInetHook.LOCAL_IN, priority=N)")
    return netfilter_link(program, **options)


def _struct_ops(program: AttachableProgram, target: str, **options: Any) -> Any:
    raise _needs(
        program,
        "a struct_ops program runs once its map is registered: obj.struct_ops[NAME].register() "
        "(attach_all does it)",
    )


def _register_net() -> None:
    for prefix in ("cgroup", "cgroup_skb", "sockops"):
        register(prefix, _cgroup, f"cgroup: {prefix}/<hook>, attach(p, cgroup=PATH)")
    for prefix in ("sk_msg", "sk_skb"):
        register(prefix, _sockmap, f"{prefix}: attach(p, map=SOCKMAP)")
    register("socket", _socket_filter, "socket filter: attach(p, sock=SOCKET or interface=NAME)")
    for prefix in ("sk_lookup", "flow_dissector"):
        register(prefix, _netns, f"{prefix}: attach(p, netns=NAME)")
    register("netfilter", _netfilter, "netfilter: attach(p, pf=, hook=, priority=)")
    for prefix in ("struct_ops", "struct_ops.s"):
        register(prefix, _struct_ops, "struct_ops: obj.struct_ops[NAME].register()")


_register_net()


# --- tc: the ingress and egress hooks of a network interface -------------------------------------


def _tc(mode: str) -> Attacher:
    """``tc/ingress``, ``tc/egress`` (libpcap's names for tcx where the kernel has it, a clsact
    filter where not), ``tcx/...`` (a tcx link only), and ``tc``/``classifier`` (the hook given
    as ``direction=``). The interface is ``ifindex=`` or ``interface=`` (a name)."""

    def attach_tc(program: AttachableProgram, target: str, **options: Any) -> Any:
        from pybpf.link import netlink, tc

        direction = options.pop("direction", None) or target
        if direction not in ("ingress", "egress"):
            raise _needs(program, 'which hook? SEC("tc/ingress") or attach(p, direction=...)')
        ifindex = options.pop("ifindex", None)
        name = options.pop("interface", None)
        if ifindex is None and name is None:
            raise _needs(program, "a tc program needs its interface: attach(p, interface=NAME)")
        if ifindex is None:
            ifindex = netlink.ifindex_of(name)
        return tc.tc_attach(program, ifindex, direction, mode=options.pop("mode", mode), **options)

    return attach_tc


def _xdp(program: AttachableProgram, target: str, **options: Any) -> Any:
    """``xdp``, ``xdp.frags``: a bpf_link on the interface ``interface=`` (a name) or
    ``ifindex=``, detached with its last fd; ``flags=`` an XDP mode (default: the best the
    driver has)."""
    from pybpf.link import netlink
    from pybpf.link.bpflink import xdp_link

    if target:  # xdp/devmap, xdp/cpumap: programs run by a map, not attached
        raise _needs(program, f"an xdp/{target} program runs from its map; it is not attached")
    ifindex = options.pop("ifindex", None)
    name = options.pop("interface", None)
    if ifindex is None and name is None:
        raise _needs(program, "an XDP program needs its interface: attach(p, interface=NAME)")
    if ifindex is None:
        ifindex = netlink.ifindex_of(name)
    return xdp_link(program, ifindex, options.pop("flags", 0))


def _register_tc() -> None:
    for prefix in ("xdp", "xdp.frags"):
        register(prefix, _xdp, f"{prefix}: attach(p, interface=NAME)")
    for prefix, mode in (("tc", "auto"), ("classifier", "auto"), ("tcx", "tcx")):
        register(prefix, _tc(mode), f"{prefix}: {prefix}/ingress|egress, attach(p, interface=NAME)")


_register_tc()
