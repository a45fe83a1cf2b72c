"""Does this kernel have a program type, an attach type, a link type? Its BTF says: the enums
``bpf_prog_type``, ``bpf_attach_type`` and ``bpf_link_type`` list what the running kernel knows.

The kernel answers a bare EINVAL for a kind it lacks; asking its BTF turns that into one line
naming what is missing, and lets an attach take the older interface where the newer one does
not exist (a cgroup link needs BPF_LINK_TYPE_CGROUP, 5.7; a sockmap link BPF_LINK_TYPE_SOCKMAP,
6.10).
"""

from __future__ import annotations

import errno as _errno

from pybpf.errors import BPFError, SyscallError
from pybpf.link.bpflink import Link
from pybpf.sys.uapi import AttachType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

    from pybpf.link.bpflink import ProgramLike


def kernel_knows(enum: str, value: str) -> Optional[bool]:
    """Whether ``enum`` of the kernel's BTF has ``value``; None when the kernel has no BTF."""
    from pybpf.btf.kernel import KernelBTF
    from pybpf.btf.model import Enum

    try:
        kernel = KernelBTF.system()
    except (BPFError, OSError):
        return None
    tid = kernel.find(enum, Enum)
    if tid is None:
        return None
    return any(v.name == value for v in kernel.type(tid).values)


def missing_prog_type(prog_type: str) -> Optional[str]:
    """A one-line reason when the kernel lacks BPF_PROG_TYPE_<prog_type>, else None."""
    if kernel_knows("bpf_prog_type", f"BPF_PROG_TYPE_{prog_type}") is False:
        return f"this kernel has no {prog_type} programs (no BPF_PROG_TYPE_{prog_type} in its BTF)"
    return None


def missing_attach_type(attach_type: AttachType) -> Optional[str]:
    if kernel_knows("bpf_attach_type", f"BPF_{attach_type.name}") is False:
        return f"this kernel has no BPF_{attach_type.name} attach type"
    return None


def has_link_type(name: str) -> bool:
    """True unless the kernel's BTF says it has no BPF_LINK_TYPE_<name>."""
    return kernel_knows("bpf_link_type", f"BPF_LINK_TYPE_{name}") is not False


def create_link(program: ProgramLike, target: int, attach_type: AttachType) -> Link:
    """``Link.create``, with a bare EINVAL explained when the kernel lacks the attach type."""
    try:
        return Link.create(program, target, attach_type)
    except SyscallError as e:
        if e.errno == _errno.EINVAL:
            why = missing_attach_type(attach_type)
            if why:
                raise SyscallError(e.what, e.errno, why) from None
        raise
