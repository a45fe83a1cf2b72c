"""kprobes: a BPF program on (almost) any kernel function, and multi-kprobes on many at once.

A kprobe is a perf event of the ``kprobe`` PMU (type in
``/sys/bus/event_source/devices/kprobe/type``): ``config1`` points at the function's name,
``config2`` is an offset into it, the ``format/retprobe`` bit of ``config`` makes it a kretprobe.
(``maxactive``, how many kretprobe instances may be pending at once, exists only for probes
made through tracefs' ``kprobe_events``; the PMU uses the kernel's default.)

``kprobe.multi`` (5.18+) attaches one program to many functions with one link
(``BPF_TRACE_KPROBE_MULTI``) through fprobe, given the function names; a pattern such as
``tcp_*`` is matched here against ``/proc/kallsyms`` (or ``available_filter_functions``).

A kernel built without kprobes (``CONFIG_KPROBE_EVENTS``) has no ``kprobe`` PMU: that is said in
one line.
"""

from __future__ import annotations

import errno
import fnmatch
import itertools
import os
import platform

from pybpf.errors import BPFError, SyscallError
from pybpf.link.bpflink import Link, _fd
from pybpf.link.perf_event import PerfEventLink, attach_perf_event, program_name
from pybpf.sys import linkcmd, perf
from pybpf.sys.perf import PerfAttrFlag

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from pybpf.link.bpflink import ProgramLike


def no_kprobes(kind: str = "kprobes") -> SyscallError:
    return SyscallError(
        kind, errno.EOPNOTSUPP, "this kernel has no kprobe support (CONFIG_KPROBE_EVENTS)"
    )


def kprobe(
    program: ProgramLike,
    func: str,
    *,
    offset: int = 0,
    retprobe: bool = False,
    maxactive: int = 0,
    cookie: int = 0,
) -> PerfEventLink:
    """Attach a kprobe (``retprobe``: a kretprobe) to kernel function ``func`` (+``offset``).
    ``maxactive`` (kretprobes) makes the probe through tracefs, the only interface that has it."""
    kind = "kretprobe" if retprobe else "kprobe"
    if maxactive:
        return kprobe_tracefs(program, func, offset=offset, retprobe=retprobe,
                              maxactive=maxactive, cookie=cookie)  # fmt: skip
    pmu = perf.pmu_type("kprobe")
    if pmu is None:
        raise no_kprobes(f"cannot attach {program_name(program)} to {kind} {func}")
    config = 1 << perf.pmu_retprobe_bit("kprobe") if retprobe else 0
    target = f"{kind} {func}" + (f"+{offset:#x}" if offset else "")
    try:
        fd = perf.perf_event_open(
            f"cannot open {target}",
            type=pmu,
            config=config,
            config1=func.encode(),
            config2=offset,
            pid=-1,
            cpu=0,
            flags=PerfAttrFlag.DISABLED,
        )
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            raise SyscallError(
                f"cannot open {target}", e.errno, f"no kernel function {func!r} to probe"
            ) from None
        raise
    return attach_perf_event(program, fd, target, cookie=cookie)


def kprobe_tracefs(
    program: ProgramLike,
    func: str,
    *,
    offset: int = 0,
    retprobe: bool = False,
    maxactive: int = 0,
    cookie: int = 0,
) -> PerfEventLink:
    """A kprobe made the way older tools (and kernels before 4.17) make them: a line written to
    tracefs' ``kprobe_events`` defines a probe event ``kprobes/<name>``, which is then opened as a
    tracepoint. The event is removed again when the link is closed; a process killed with the
    event defined leaves the (program-less) definition in ``kprobe_events``, named after its pid.
    """
    kind = "kretprobe" if retprobe else "kprobe"
    what = f"cannot attach {program_name(program)} to {kind} {func}"
    if maxactive and not retprobe:
        raise BPFError(f"{what}: maxactive is for kretprobes only")
    root = perf.tracefs()
    events = os.path.join(root, "kprobe_events")
    if not os.path.exists(events):
        raise no_kprobes(what)
    name = f"pybpf_{os.getpid()}_{next(_event_numbers)}"
    probe = ("r" + (str(maxactive) if maxactive else "")) if retprobe else "p"
    place = func + (f"+{offset:#x}" if offset else "")
    _write_event(events, f"{probe}:kprobes/{name} {place}", what)
    try:
        tp_id = perf.tracepoint_id("kprobes", name)
        fd = perf.perf_event_open(
            f"cannot open {kind} {place}", type=perf.PerfType.TRACEPOINT, config=tp_id,
            pid=-1, cpu=0, flags=PerfAttrFlag.DISABLED,
        )  # fmt: skip
        link = attach_perf_event(program, fd, f"{kind} {place} (kprobe_events)", cookie=cookie)
    except BaseException:
        _write_event(events, f"-:kprobes/{name}", what)
        raise
    link.on_close = lambda: _write_event(events, f"-:kprobes/{name}", f"cannot remove {name}")
    link.event = f"kprobes/{name}"
    return link


_event_numbers = itertools.count()


def _write_event(path: str, line: str, what: str) -> None:
    # One write(2) on an O_APPEND fd: Python's open(path, "a") seeks to the end first, which
    # tracefs refuses (EINVAL); and O_TRUNC would delete every probe event on the host.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        detail = f"{os.path.basename(path)} refused {line!r}"
        if e.errno == errno.ENOENT:
            detail = "no such kernel function (or it cannot be probed)"
        raise SyscallError(what, e.errno or errno.EINVAL, detail) from None


# The prefix of a syscall's entry function where the kernel wraps syscalls (4.17+): the wrapper
# takes the user's registers as one struct pt_regs, which BPF_KSYSCALL unpacks.
_SYSCALL_PREFIX = {
    "x86_64": "__x64_sys_",
    "aarch64": "__arm64_sys_",
    "s390x": "__s390x_sys_",
    "riscv64": "__riscv_sys_",
    "ppc64le": "sys_",
    "loongarch64": "sys_",
}


def syscall_function(name: str) -> str:
    """The kernel function of syscall ``name`` (``openat`` -> ``__x64_sys_openat``), as
    libbpf's ``ksyscall/`` finds it."""
    return _SYSCALL_PREFIX.get(platform.machine().lower(), "sys_") + name


def ksyscall(
    program: ProgramLike, name: str, *, retprobe: bool = False, cookie: int = 0
) -> PerfEventLink:
    """A kprobe on the entry function of syscall ``name`` (``ksyscall/``, ``kretsyscall/``)."""
    return kprobe(program, syscall_function(name), retprobe=retprobe, cookie=cookie)


def kprobe_multi(
    program: ProgramLike, pattern: str, *, retprobe: bool = False, cookies: list[int] = ()
) -> Link:
    """Attach to every kernel function matching ``pattern`` (a glob) with one link."""
    what = f"cannot attach {program_name(program)} to kprobe.multi {pattern!r}"
    if perf.pmu_type("kprobe") is None:
        raise no_kprobes(what)
    symbols = matching_functions(pattern)
    if not symbols:
        raise SyscallError(what, errno.ENOENT, "no kernel function matches")
    try:
        return Link(
            linkcmd.link_create_kprobe_multi(
                _fd(program), symbols, retprobe=retprobe, cookies=list(cookies)
            )
        )
    except SyscallError as e:
        raise SyscallError(what, e.errno, _multi_why(e.errno)) from None


def _multi_why(err: int) -> str | None:
    if err in (errno.EOPNOTSUPP, errno.EINVAL):
        return "multi-kprobes need 5.18+ with CONFIG_FPROBE"
    return None


def matching_functions(pattern: str) -> list[str]:
    """Kernel functions matching a glob, from ``available_filter_functions`` when tracefs is
    there (the functions fprobe can attach to), else ``/proc/kallsyms`` text symbols."""
    names: set[str] = set()
    try:
        path = os.path.join(perf.tracefs(), "available_filter_functions")
        with open(path) as f:
            lines = [line.split()[0] for line in f if line.strip()]
    except (OSError, SyscallError):
        with open("/proc/kallsyms") as f:
            lines = [p[2] for p in (line.split() for line in f) if p[1] in "tT"]
    for name in lines:
        if fnmatch.fnmatchcase(name, pattern) and "." not in name:
            names.add(name)
    return sorted(names)
