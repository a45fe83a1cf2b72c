"""Tracepoints: the kernel's stable, named hooks (``sched:sched_process_exec``).

A ``tracepoint`` program sees the event's record as tracefs formats it
(``events/CAT/NAME/format``); it is attached through a perf event of type PERF_TYPE_TRACEPOINT
whose ``config`` is the tracepoint's id from tracefs (so tracefs must be mounted — done here when
it is not). The perf event is opened for every task (pid -1) on CPU 0: for tracepoints the program
runs wherever the event fires, the CPU only says where the (unused) samples would go.

A ``raw_tracepoint`` program sees the tracepoint's raw arguments (``u64 args[]``) and needs no
tracefs: ``BPF_RAW_TRACEPOINT_OPEN`` takes the name alone and hands back a bpf_link.
"""

from __future__ import annotations

import errno

from pybpf.errors import SyscallError
from pybpf.link.bpflink import Link, _fd
from pybpf.link.perf_event import PerfEventLink, attach_perf_event, program_name
from pybpf.sys import linkcmd, perf
from pybpf.sys.perf import PerfAttrFlag, PerfType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from pybpf.link.bpflink import ProgramLike


def tracepoint(
    program: ProgramLike, category: str, name: str, *, cookie: int = 0, use_link: bool = True
) -> PerfEventLink:
    """Attach a ``tracepoint`` program to ``category:name`` (``"sched", "sched_process_exec"``).
    ``use_link=False``: the ioctl attachment of kernels before 5.15, even where links exist."""
    target = f"tracepoint {category}:{name}"
    tp_id = perf.tracepoint_id(category, name)
    fd = perf.perf_event_open(
        f"cannot open a perf event for {target}",
        type=PerfType.TRACEPOINT,
        config=tp_id,
        pid=-1,
        cpu=0,
        flags=PerfAttrFlag.DISABLED,
    )
    return attach_perf_event(program, fd, target, cookie=cookie, use_link=use_link)


def raw_tracepoint(program: ProgramLike, name: str, *, cookie: int = 0) -> Link:
    """Attach a ``raw_tracepoint`` program to the tracepoint ``name`` (``"sched_switch"``)."""
    try:
        return Link(linkcmd.raw_tracepoint_open(_fd(program), name, cookie=cookie))
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            raise SyscallError(
                f"cannot attach {program_name(program)}", e.errno, f"no raw tracepoint {name!r}"
            ) from None
        raise SyscallError(
            f"cannot attach {program_name(program)} to raw tracepoint {name!r}", e.errno
        ) from None
