"""A program on a perf event: the attachment under tracepoints, kprobes, uprobes, USDT and
``perf_event`` programs.

The perf event (an fd from perf_event_open) is the event source; the program is hung on it with
a bpf_link (``BPF_LINK_CREATE``, ``BPF_PERF_EVENT``, kernels 5.15+), which also carries the
*bpf cookie* a program reads with ``bpf_get_attach_cookie()``. Older kernels only know the
``PERF_EVENT_IOC_SET_BPF`` ioctl: there the attachment lives exactly as long as the perf event fd,
so closing it (or the process dying) detaches too, but it cannot be pinned.

``perf_event`` programs sample: one perf event per CPU (cpu-clock every N ns or at F Hz), each
with its own link, returned together as a :class:`~pybpf.link.group.LinkGroup`.
"""

from __future__ import annotations

import errno
import os

from pybpf.errors import BPFError, SyscallError
from pybpf.link.bpflink import Link, _fd
from pybpf.link.group import LinkGroup
from pybpf.sys import linkcmd, perf
from pybpf.sys.objinfo import BPFLinkInfo
from pybpf.sys.perf import PerfAttrFlag, PerfCountSW, PerfType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Callable, Optional

    from pybpf.link.bpflink import ProgramLike


def program_name(program: ProgramLike) -> str:
    name = getattr(program, "name", "")
    return f"program '{name}'" if name else "program"


class PerfEventLink(Link):
    """A program attached to a perf event. Owns the perf event fd and, where the kernel has them,
    the bpf_link fd (``legacy`` is True when attached by ioctl: then ``fd`` is the perf fd)."""

    def __init__(self, fd: int, perf_fd: int, target: str, legacy: bool = False):
        super().__init__(fd)
        self._perf_fd = perf_fd
        self.target = target
        self.legacy = legacy
        # A probe event made in tracefs for this link ("kprobes/pybpf_..."), removed on close
        # by ``on_close``, which runs after the fds are closed.
        self.event = ""
        self.on_close: Optional[Callable[[], None]] = None

    def _describe(self) -> str:
        return f"link of {self.target}"

    def __repr__(self) -> str:
        kind = "legacy" if self.legacy else f"fd={self._fd}"
        return f"PerfEventLink({self.target!r}, {kind})"

    @property
    def perf_fd(self) -> int:
        return self._perf_fd if not self.legacy else self.fd

    def _no_link(self, what: str) -> BPFError:
        return BPFError(
            f"{self.target}: attached with PERF_EVENT_IOC_SET_BPF, without a bpf_link: {what}"
        )

    def pin(self, path: str) -> None:
        if self.legacy:
            raise self._no_link("nothing to pin")
        super().pin(path)

    def info(self) -> BPFLinkInfo:
        if self.legacy:
            raise self._no_link("no link info (bpftool perf show lists it)")
        return super().info()

    def detach(self) -> None:
        if self.legacy:
            # No link to detach: the program leaves with the perf event's last reference.
            self.close()
            return
        super().detach()

    def close(self) -> None:
        super().close()
        fd, self._perf_fd = self._perf_fd, -1
        if fd >= 0:
            os.close(fd)
        cleanup, self.on_close = self.on_close, None
        if cleanup is not None:
            cleanup()


def attach_perf_event(
    program: ProgramLike, perf_fd: int, target: str, *, cookie: int = 0, use_link: bool = True
) -> PerfEventLink:
    """Hang ``program`` on the perf event ``perf_fd`` (which this call takes ownership of, also
    on failure) and enable the event. ``target`` names the event in messages. ``use_link=False``
    attaches the pre-5.15 way (ioctl, no link) even where links exist."""
    what = f"cannot attach {program_name(program)} to {target}"
    try:
        if not use_link:
            if cookie:
                raise BPFError(f"{what}: a bpf cookie needs a link (use_link=True)")
            _ioctl_attach(program, perf_fd, what)
            return PerfEventLink(perf_fd, -1, target, legacy=True)
        try:
            link_fd = linkcmd.link_create_perf_event(_fd(program), perf_fd, bpf_cookie=cookie)
        except SyscallError as e:
            # EINVAL: a kernel before 5.15 does not know BPF_PERF_EVENT links.
            if e.errno != errno.EINVAL or cookie:
                raise SyscallError(what, e.errno) from None
            _ioctl_attach(program, perf_fd, what)
            return PerfEventLink(perf_fd, -1, target, legacy=True)
        link = PerfEventLink(link_fd, perf_fd, target)
    except BaseException:
        os.close(perf_fd)
        raise
    try:
        perf.enable(perf_fd)
    except BaseException:
        link.close()
        raise
    return link


def _ioctl_attach(program: ProgramLike, perf_fd: int, what: str) -> None:
    """PERF_EVENT_IOC_SET_BPF then ENABLE: attached until the perf event's fd is closed."""
    try:
        perf.set_bpf(perf_fd, _fd(program))
        perf.enable(perf_fd)
    except SyscallError as e:
        raise SyscallError(what, e.errno) from None


def perf_event(
    program: ProgramLike,
    *,
    type: int = PerfType.SOFTWARE,
    config: int = PerfCountSW.CPU_CLOCK,
    sample_period: int = 0,
    sample_freq: int = 0,
    cpus: Optional[list[int]] = None,
    pid: int = -1,
) -> LinkGroup:
    """Run a ``perf_event`` program on a sampling event on every CPU (or those in ``cpus``):
    every ``sample_period`` events (for cpu-clock: nanoseconds) or ``sample_freq`` times a
    second. One perf event and one link per CPU, returned as one group."""
    if bool(sample_period) == bool(sample_freq):
        raise BPFError("perf_event: give exactly one of sample_period and sample_freq")
    flags = PerfAttrFlag.DISABLED | (PerfAttrFlag.FREQ if sample_freq else 0)
    name = _event_name(type, config)
    links = LinkGroup()
    try:
        for cpu in cpus if cpus is not None else perf.online_cpus():
            target = f"perf event {name} on CPU {cpu}"
            fd = perf.perf_event_open(
                f"cannot open {target}",
                type=type,
                config=config,
                pid=pid,
                cpu=cpu,
                sample_period=sample_freq or sample_period,
                flags=flags,
            )
            links.append(attach_perf_event(program, fd, target))
    except BaseException:
        links.close()
        raise
    return links


def _event_name(type: int, config: int) -> str:
    try:
        if type == PerfType.SOFTWARE:
            return PerfCountSW(config).name.lower().replace("_", "-")
        if type == PerfType.HARDWARE:
            return perf.PerfCountHW(config).name.lower().replace("_", "-")
    except ValueError:
        pass
    return f"type {type} config {config}"
