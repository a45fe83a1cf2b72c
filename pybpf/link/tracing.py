"""BTF-targeted tracing: ``tp_btf``, ``fentry``, ``fexit``, ``fmod_ret``, ``lsm`` and ``iter``.

These programs name their target when they are *loaded*: the loader finds the kernel function
(``do_unlinkat``), LSM hook (``bpf_lsm_file_open``), tracepoint typedef (``btf_trace_sched_switch``)
or iterator (``bpf_iter_task``) in the kernel's BTF and passes its id as ``attach_btf_id``; the
verifier then checks the program against that exact signature. Attaching needs nothing more than
the program and its attach type: ``BPF_LINK_CREATE`` (5.8+ for fentry & co), or on older kernels
``BPF_RAW_TRACEPOINT_OPEN`` with no name, which returns a link too.

An ``iter`` program does not run on an event: each ``BPF_ITER_CREATE`` on its link makes a new
file whose reads run the program over the kernel objects (tasks, maps, sockets...) and return
what it printed with ``bpf_seq_printf``. Pinning the link in bpffs makes that file visible to
anyone: ``cat /sys/fs/bpf/tasks``.
"""

from __future__ import annotations

import errno
import io
import os

from pybpf.errors import ENOTSUPP, SyscallError
from pybpf.link.bpflink import Link, _fd
from pybpf.link.perf_event import program_name
from pybpf.sys import linkcmd
from pybpf.sys.uapi import AttachType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from pybpf.link.bpflink import ProgramLike

TRACING_ATTACH_TYPES = (
    AttachType.TRACE_RAW_TP,
    AttachType.TRACE_FENTRY,
    AttachType.TRACE_FEXIT,
    AttachType.MODIFY_RETURN,
    AttachType.LSM_MAC,
)


def tracing(
    program: ProgramLike, attach_type: AttachType, *, target: str = "", cookie: int = 0
) -> Link:
    """Attach a tp_btf/fentry/fexit/fmod_ret/lsm program to the target it was loaded for
    (``target`` only names it in messages)."""
    what = f"cannot attach {program_name(program)} ({attach_type.name}"
    what += f" {target})" if target else ")"
    try:
        return Link(linkcmd.link_create_tracing(_fd(program), attach_type, cookie=cookie))
    except SyscallError as e:
        # Kernels before 5.10 create these links only through BPF_RAW_TRACEPOINT_OPEN.
        if e.errno != errno.EINVAL or cookie:
            raise SyscallError(what, e.errno, _why(e.errno, attach_type)) from None
    try:
        return Link(linkcmd.raw_tracepoint_open(_fd(program)))
    except SyscallError as e:
        raise SyscallError(what, e.errno, _why(e.errno, attach_type)) from None


def _why(err: int, attach_type: AttachType) -> str | None:
    if attach_type == AttachType.LSM_MAC and err == errno.EINVAL:
        return "is the BPF LSM enabled? ('bpf' must be in /sys/kernel/security/lsm or lsm=)"
    if err == ENOTSUPP:
        return "this kernel cannot attach trampolines here (no BPF JIT/ftrace direct calls?)"
    return None


class IterLink(Link):
    """The link of an ``iter`` program: each :meth:`open` is a fresh pass over the objects."""

    def __repr__(self) -> str:
        return f"IterLink(fd={self._fd})"

    def open(self) -> io.BufferedReader:
        """A new file whose reads run the iterator (read it to the end, then close it)."""
        return os.fdopen(linkcmd.iter_create(self.fd), "rb")

    def read(self) -> bytes:
        """One whole pass of the iterator: what the program printed."""
        with self.open() as f:
            return f.read()


def iterator(program: ProgramLike, *, iter_info: bytes = b"", target: str = "") -> IterLink:
    """Create the link of an ``iter/<target>`` program. ``iter_info`` (a ``union
    bpf_iter_link_info``) narrows some iterators: a map fd for ``bpf_map_elem``, a task or
    cgroup for ``task``/``cgroup``."""
    try:
        return IterLink(linkcmd.link_create_iter(_fd(program), iter_info))
    except SyscallError as e:
        where = f" ({target})" if target else ""
        raise SyscallError(
            f"cannot create the iterator link of {program_name(program)}{where}", e.errno
        ) from None
