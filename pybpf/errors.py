"""One exception hierarchy for everything pybpf raises.

Every error names what it was working on (object, program, map, interface), the step, and the
kernel's own words, so that a command-line tool can print ``str(err)`` as a single line.
"""

from __future__ import annotations

import errno as _errno
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# What a user can do about the errno values the bpf() syscall and netlink answer most often (none
# for those whose strerror text says it all: ENODEV, EBADF).
ERRNO_HINTS = {
    _errno.EPERM: "needs root, or CAP_BPF with CAP_NET_ADMIN / CAP_PERFMON",
    _errno.EACCES: "the kernel refused access (verifier, or missing CAP_BPF/CAP_SYS_ADMIN)",
    _errno.E2BIG: "a size or count is larger than this kernel accepts",
    _errno.ENOSPC: "out of space (log buffer, map entries, or ring buffer)",
    _errno.EINVAL: "the kernel rejected an argument (unsupported on this kernel, or malformed)",
    _errno.ENOENT: "no such object",
    _errno.EBUSY: "already in use (for XDP: another program is attached)",
    _errno.EEXIST: "already exists",
    _errno.ENOTSUPP
    if hasattr(_errno, "ENOTSUPP")
    else 524: "not supported by this kernel or driver",
    _errno.EOPNOTSUPP: "operation not supported (driver or mode)",
    _errno.ENOMEM: "out of memory (or RLIMIT_MEMLOCK on kernels before 5.11)",
    _errno.EFAULT: "bad address passed to the kernel",
}

ENOTSUPP = 524  # kernel-internal errno that leaks to user space from BPF code paths


def _hint(err: int) -> Optional[str]:
    if err == _errno.EPERM and _privileged():
        # The process has the capabilities: privileges are not the answer, a policy or the
        # kernel is.
        return (
            "refused although the process has CAP_BPF/CAP_SYS_ADMIN: a security policy "
            "(kernel lockdown, an LSM) or this kernel does not allow it"
        )
    return ERRNO_HINTS.get(err)


CAP_SYS_ADMIN, CAP_BPF = 21, 39


def _privileged() -> bool:
    """Does this process hold CAP_SYS_ADMIN or CAP_BPF (effective set)?"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    return bool(caps & (1 << CAP_SYS_ADMIN | 1 << CAP_BPF))
    except (OSError, ValueError):
        pass
    return False


def errno_name(err: int) -> str:
    if err == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, f"errno {err}")


class BPFError(Exception):
    """Root of every error pybpf raises."""


class ParseError(BPFError):
    """The object file is not something pybpf can read (not ELF, not BPF, malformed section...)."""


class BTFError(ParseError):
    """BTF or .BTF.ext is malformed or uses something not understood."""


class RelocationError(BPFError):
    """A relocation cannot be applied (unknown symbol, bad instruction, unsupported target)."""


class CORERelocationError(RelocationError):
    """A CO-RE relocation cannot be resolved against the target BTF."""


class FeatureError(BPFError):
    """The running kernel lacks what the object needs; the message names the feature and the
    first Linux release that has it ("BPF ring buffers need Linux 5.8")."""


class SyscallError(BPFError):
    """A bpf() (or other) system call failed; carries errno and a hint."""

    def __init__(self, what: str, err: int, detail: Optional[str] = None):
        self.what = what
        self.errno = err
        self.detail = detail
        msg = f"{what}: {errno_name(err)} ({os.strerror(err)})"
        if detail:
            msg += f": {detail}"
        hint = _hint(err)
        if hint and not detail:
            msg += f" — {hint}"
        super().__init__(msg)


class VerifierError(SyscallError):
    """The verifier rejected a program. ``log`` is the whole log, ``summary`` its last lines."""

    def __init__(self, program: str, section: str, err: int, log: str):
        self.program = program
        self.section = section
        self.log = log
        lines = [ln for ln in log.splitlines() if ln.strip()]
        self.summary = "\n".join(lines[-4:]) if lines else "(the verifier wrote no log)"
        last = _last_meaningful_line(lines)
        self.insn = _failing_insn(lines)
        at = f" at insn {self.insn}" if self.insn is not None else ""
        detail = f'the verifier rejected it{at}: "{last}"' if last else None
        super().__init__(f"cannot load program '{program}' (section {section})", err, detail)


class UnresolvedRelocationError(VerifierError, CORERelocationError):
    """The verifier rejected a program where it reached an instruction whose CO-RE relocation
    found nothing in the kernel's BTF. The loader poisons such an instruction instead of failing
    (as libbpf does), so that a program that never reaches it still loads; when one does, this
    names the relocation (kind, local type and access string) and what the kernel lacks.
    ``relocation`` is that text; ``log`` is still the verifier's whole log."""

    def __init__(self, rejected: VerifierError, relocation: str, where: str):
        super().__init__(rejected.program, rejected.section, rejected.errno, rejected.log)
        self.relocation = relocation
        detail = f"{relocation}; the verifier rejected the program at {where}, which uses it"
        SyscallError.__init__(self, rejected.what, rejected.errno, detail)


def _failing_insn(lines: list[str]) -> Optional[int]:
    """The index of the last instruction the verifier printed before giving up."""
    for ln in reversed(lines):
        head, sep, rest = ln.partition(": (")
        if sep and head.strip().isdigit():
            return int(head)
    return None


def _last_meaningful_line(lines: list[str]) -> Optional[str]:
    """The verifier's reason is the last line that is not a statistics line."""
    for ln in reversed(lines):
        s = ln.strip()
        if s.startswith(("processed ", "verification time", "stack depth", "mark_precise")):
            continue
        return s
    return None


class NetlinkError(BPFError):
    """rtnetlink answered an error; carries the kernel's extack message when there is one."""

    def __init__(self, what: str, err: int, extack: Optional[str] = None):
        self.what = what
        self.errno = err
        self.extack = extack
        msg = f"{what}: {errno_name(err)} ({os.strerror(err)})"
        if extack:
            msg += f": {extack}"
        elif _hint(err):
            msg += f" — {_hint(err)}"
        super().__init__(msg)
