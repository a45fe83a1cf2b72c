"""Where programs go whose section name does not say: the targets a user gives ``pybpf run``.

libbpf's skeletons auto-attach what a section names fully (``SEC("tp/sched/sched_switch")``)
and leave the rest to the tool's own C code: the interface of an XDP or tc program, the cgroup
of a ``cgroup/connect4`` program, the binary of a bare ``SEC("uprobe")``. A generic loader has
no such code, so the user says it on the command line:

- ``--attach PROG=TARGET`` for one program, ``TARGET`` read by the program's kind: an interface
  (``lo``; ``lo:egress`` for tc) for xdp, tc and socket filters, ``/path/bin:symbol[+off]`` for
  uprobes, ``/path/bin:provider:name`` for USDT probes, a cgroup directory for cgroup programs,
  a network namespace (a name of ``ip netns`` or a path) for sk_lookup and flow_dissector, a map
  name for sk_msg and sk_skb, ``freq=HZ`` or ``period=N`` for perf_event, and for the other
  kinds what their section would name (``sched/sched_switch``...);
- ``-i IFACE``, ``--cgroup PATH``, ``--netns PATH`` for every program of those kinds;
- ``--exe PATH``: what ``/proc/self/exe`` in a uprobe section stands for. libbpf resolves it to
  the binary of the loader (libbpf-bootstrap's uprobe probes functions of its own C program);
  for ``pybpf run`` it would be the Python interpreter.

:func:`attach_options` turns these into the keyword arguments of :func:`pybpf.attach.attach`
for each program, which :func:`pybpf.attach.attach_all` takes as ``options``.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from pybpf.attach import split_section
from pybpf.errors import BPFError
from pybpf.record import record

IFACE_KINDS = frozenset({"xdp", "xdp.frags", "tc", "classifier", "tcx", "socket"})
TC_KINDS = frozenset({"tc", "classifier", "tcx"})
CGROUP_KINDS = frozenset({"cgroup", "cgroup_skb", "sockops"})
NETNS_KINDS = frozenset({"sk_lookup", "flow_dissector"})
SOCKMAP_KINDS = frozenset({"sk_msg", "sk_skb"})
UPROBE_KINDS = frozenset(
    k + m + s for k in ("uprobe", "uretprobe") for m in ("", ".multi") for s in ("", ".s")
)
PROBE_KINDS = UPROBE_KINDS | {"usdt"}
# Kinds whose target is fixed at load (from kernel BTF) or that have none to give.
NO_TARGET_KINDS = frozenset(
    {"iter", "iter.s", "struct_ops", "struct_ops.s"}
    | {k + s for k in ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm") for s in ("", ".s")}
)
SELF_EXE = "/proc/self/exe"
SOCKMAP_TYPES = ("SOCKMAP", "SOCKHASH")


@record
class Targets:
    """What the user said about where programs go (see the module's text)."""

    attach: tuple[tuple[str, str], ...] = ()  # (program, TARGET), from --attach PROG=TARGET
    interface: Optional[str] = None
    cgroup: Optional[str] = None
    netns: Optional[str] = None
    exe: Optional[str] = None

    @staticmethod
    def parse_attach(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
        """``["prog=lo", ...]`` -> ``(("prog", "lo"), ...)``; one line for a malformed one."""
        out: dict[str, str] = {}
        for item in items:
            name, eq, target = item.partition("=")
            if not eq or not name or not target:
                raise BPFError(f"--attach {item}: expected PROGRAM=TARGET")
            if name in out:
                raise BPFError(f"--attach: program '{name}' is given twice")
            out[name] = target
        return tuple(out.items())


def attach_options(
    obj: Any, targets: Targets, programs: Optional[Iterable[str]] = None
) -> dict[str, dict[str, Any]]:
    """The keyword arguments of :func:`pybpf.attach.attach` for each program of a loaded
    object (or of those named) that ``targets`` says something about."""
    wanted = set(obj.programs if programs is None else programs)
    given = dict(targets.attach)
    for name in given:
        if name not in obj.programs:
            known = ", ".join(obj.programs) or "none"
            raise BPFError(f"--attach {name}=...: no program named '{name}' (programs: {known})")
    out: dict[str, dict[str, Any]] = {}
    for name, prog in obj.programs.items():
        if name not in wanted:
            continue
        section = getattr(prog, "section", "")
        if name in given:
            out[name] = target_options(name, section, given[name], obj, targets.exe)
            if section == "netfilter" and targets.netns:  # a hook of that namespace's stack
                out[name]["netns"] = targets.netns
            continue
        kw = default_options(name, section, obj, targets)
        if kw:
            out[name] = kw
    return out


def target_options(
    name: str, section: str, target: str, obj: Any = None, exe: Optional[str] = None
) -> dict[str, Any]:
    """``TARGET`` of ``--attach NAME=TARGET`` read by the kind of ``section``."""
    kind, section_target = split_section(section)
    what = f"--attach {name}={target}"
    if kind in IFACE_KINDS:
        return _interface(kind, section_target, target, what)
    if kind in CGROUP_KINDS:
        return {"cgroup": target}
    if kind in NETNS_KINDS:
        return {"netns": target}
    if kind in SOCKMAP_KINDS:
        maps = getattr(obj, "maps", {})
        if target not in maps:
            known = ", ".join(n for n, m in maps.items() if _map_type(m) in SOCKMAP_TYPES)
            raise BPFError(f"{what}: no map named '{target}' (sockmaps: {known or 'none'})")
        return {"map": maps[target]}
    if kind == "perf_event":
        return _perf_event(target, what)
    if kind == "netfilter":
        return _netfilter(target, what)
    if kind in NO_TARGET_KINDS:
        raise BPFError(f"{what}: a {kind} program's target is fixed at load; it takes none")
    if kind in PROBE_KINDS:
        return {"target": _probe_target(kind, target, exe, what)}
    return {"target": target}


def default_options(name: str, section: str, obj: Any, targets: Targets) -> dict[str, Any]:
    """What ``-i``, ``--cgroup``, ``--netns`` and ``--exe`` give a program not named with
    ``--attach`` (nothing: attach it as its section says)."""
    kind, section_target = split_section(section)
    if kind in IFACE_KINDS and targets.interface and not section_target.startswith(("dev", "cpu")):
        return _interface(kind, section_target, targets.interface, f"-i {targets.interface}")
    if kind in CGROUP_KINDS and targets.cgroup:
        return {"cgroup": targets.cgroup}
    if kind in NETNS_KINDS and targets.netns:
        return {"netns": targets.netns}
    if kind in SOCKMAP_KINDS:
        # One sockmap in the object: the programs can only be meant for it.
        maps = [m for m in getattr(obj, "maps", {}).values() if _map_type(m) in SOCKMAP_TYPES]
        return {"map": maps[0]} if len(maps) == 1 else {}
    if kind in PROBE_KINDS and _names_self(kind, section_target):
        if not targets.exe:
            raise BPFError(
                f"program '{name}' (section {section}) probes {SELF_EXE}, the binary of its "
                f"own loader (for pybpf run: Python): name that binary with --exe PATH, or "
                f"give the target with --attach {name}=BINARY:..."
            )
        return {"target": targets.exe + section_target[len(SELF_EXE) :]}
    return {}


def hint(section: str) -> str:
    """The option that attaches a program of this section that was left out."""
    kind, _ = split_section(section)
    if kind in IFACE_KINDS:
        return "-i IFACE"
    if kind in CGROUP_KINDS:
        return "--cgroup PATH"
    if kind in NETNS_KINDS:
        return "--netns PATH"
    if kind in SOCKMAP_KINDS:
        return "--attach PROG=SOCKMAP"
    if kind == "perf_event":
        return "--attach PROG=freq=HZ"
    if kind in UPROBE_KINDS:
        return "--attach PROG=BINARY:" + ("PATTERN" if ".multi" in kind else "FUNCTION")
    if kind == "netfilter":
        return "--attach PROG=FAMILY:HOOK:PRIORITY"
    return "--attach PROG=TARGET"


def _interface(kind: str, section_target: str, target: str, what: str) -> dict[str, Any]:
    iface, colon, direction = target.partition(":")
    if not iface:
        raise BPFError(f"{what}: expected an interface name")
    if kind not in TC_KINDS:
        if colon:
            raise BPFError(f"{what}: a {kind} program takes an interface alone")
        return {"interface": iface}
    # SEC("tc") names no hook: ingress, as libbpf-bootstrap's tc loader attaches it.
    direction = direction or section_target or "ingress"
    if direction not in ("ingress", "egress"):
        raise BPFError(f"{what}: the hook is ingress or egress, not '{direction}'")
    return {"interface": iface, "direction": direction}


def _perf_event(target: str, what: str) -> dict[str, Any]:
    key, eq, value = target.partition("=")
    names = {"freq": "sample_freq", "period": "sample_period"}
    try:
        number = int(value, 0)
    except ValueError:
        number = 0
    if not eq or key not in names or number <= 0:
        raise BPFError(f"{what}: expected freq=HZ or period=N (cpu-clock on every CPU)")
    return {names[key]: number}


def _netfilter(target: str, what: str) -> dict[str, Any]:
    """``ipv4:local_in:-100``: family, hook (NF_INET_*), priority; in --netns when given."""
    from pybpf.sys.uapi import NFInetHook, NFProto

    hooks_by_name = {h.name.replace("_", "").lower(): h for h in NFInetHook}  # local_in, localin
    try:
        pf, hook, priority = target.split(":")
        return {
            "pf": NFProto[pf.upper()],
            "hook": hooks_by_name[hook.replace("_", "").lower()],
            "priority": int(priority, 0),
        }
    except (KeyError, ValueError):
        hooks = ", ".join(h.name.lower() for h in NFInetHook)
        raise BPFError(
            f"{what}: expected FAMILY:HOOK:PRIORITY (ipv4 or ipv6; {hooks}; a number), "
            "e.g. ipv4:local_in:-100"
        ) from None


def _names_self(kind: str, target: str) -> bool:
    return target == SELF_EXE or target.startswith(SELF_EXE + ":")


def _probe_target(kind: str, target: str, exe: Optional[str], what: str) -> str:
    if _names_self(kind, target) and exe:
        return exe + target[len(SELF_EXE) :]
    parts = 3 if kind == "usdt" else 2
    if target.count(":") < parts - 1:  # no binary: the --exe one
        shape = "BINARY:PROVIDER:NAME" if kind == "usdt" else "BINARY:FUNCTION"
        if not exe:
            raise BPFError(f"{what}: expected {shape} (or --exe BINARY)")
        return f"{exe}:{target}"
    return target


def _map_type(m: Any) -> str:
    t = getattr(m, "type", None)
    return getattr(t, "name", str(t))
