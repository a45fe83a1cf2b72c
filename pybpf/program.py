"""Programs that live in the kernel: load with the verifier log, test-run, pin.

Loading follows the verifier-log protocol libbpf and cilium/ebpf use: try without a log first
(cheap, and a log buffer makes the verifier slower), and only when the kernel refuses, load again
with ``log_level`` 1 and a buffer that grows until the whole log fits, so the error can quote the
verifier's reason and keep the whole log for whoever wants to read it.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from pybpf.asm.insn import Instruction, encode
from pybpf.errors import SyscallError, VerifierError
from pybpf.sys import objcmd, objinfo, progcmd, uapi
from pybpf.sys.fd import FDObject
from pybpf.sys.objinfo import ProgInfo
from pybpf.sys.progcmd import TestRunResult
from pybpf.sys.uapi import ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional, Sequence, Union

# The first log buffer; it grows (to log_true_size, or doubling on older kernels) on ENOSPC.
DEFAULT_LOG_SIZE = 64 * 1024

# log_level bits: 1 = the instructions the verifier walks and why it stops; 2 = every state;
# 4 = statistics only.
LOG_LEVEL_BRANCHES = 1
LOG_LEVEL_STATES = 2
LOG_LEVEL_STATS = 4

__all__ = ["Program", "TestRunResult", "DEFAULT_LOG_SIZE"]


class Program(FDObject):
    """A loaded BPF program owned through its fd. Use as a context manager or call close()."""

    def __init__(self, fd: int, name: str = "", section: str = "", verifier_log: str = ""):
        self._fd = fd
        self._info: Optional[ProgInfo] = None
        self._name = name
        self.section = section
        # The log of a successful load, when one was asked for (log_level=...).
        self.verifier_log = verifier_log

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        prog_type: int,
        insns: Union[bytes, Sequence[Instruction]],
        license: str = "GPL",
        name: str = "",
        *,
        expected_attach_type: int = 0,
        prog_flags: int = 0,
        btf_fd: int = 0,
        func_info: bytes = b"",
        func_info_rec_size: int = 0,
        line_info: bytes = b"",
        line_info_rec_size: int = 0,
        attach_btf_id: int = 0,
        attach_btf_obj_fd: int = 0,
        attach_prog_fd: int = 0,
        kern_version: int = 0,
        ifindex: int = 0,
        fd_array: Optional[list[int]] = None,
        section: str = "",
        log_level: Optional[int] = None,
        log_size: int = DEFAULT_LOG_SIZE,
    ) -> Program:
        """Load a program. On refusal raise VerifierError with the verifier's whole log.

        ``log_level`` asks for the log of a successful load too (kept in ``verifier_log``);
        ``log_size`` is the first log buffer's size (it grows as needed).
        """
        code = insns if isinstance(insns, (bytes, bytearray)) else encode(insns)
        args = dict(
            license=license,
            kern_version=kern_version,
            prog_flags=prog_flags,
            prog_name=name,
            prog_ifindex=ifindex,
            expected_attach_type=expected_attach_type,
            prog_btf_fd=btf_fd,
            func_info=func_info,
            func_info_rec_size=func_info_rec_size,
            line_info=line_info,
            line_info_rec_size=line_info_rec_size,
            attach_btf_id=attach_btf_id,
            attach_btf_obj_fd=attach_btf_obj_fd,
            attach_prog_fd=attach_prog_fd,
            fd_array=fd_array,
        )
        if log_level is None:
            res = progcmd.prog_load_attempt(prog_type, bytes(code), **args)
            if res.fd >= 0:
                return cls(res.fd, name, section)
            if res.errno == _errno.EAGAIN:  # signals, not a refusal: a log would show a cut
                raise progcmd.interrupted(_what(name, section))
            if res.errno in (_errno.EPERM, _errno.EBADF):
                # Nothing the verifier would explain: no point in a second load with a log.
                # (E2BIG and EFAULT may be the verifier's: "BPF program is too large.
                # Processed 1000001 insn", a jump sequence too complex; the load with a log
                # says which, and an empty log leaves the bare errno.)
                raise SyscallError(_what(name, section), res.errno)
            log_level = LOG_LEVEL_BRANCHES
        fd, log = _load_with_log(prog_type, bytes(code), args, log_level, log_size, name, section)
        return cls(fd, name, section, log)

    @classmethod
    def from_fd(cls, fd: int, section: str = "") -> Program:
        """Wrap an fd this object will own (and close)."""
        prog = cls(fd, "", section)
        try:
            prog._name = prog.info().name
        except BaseException:
            os.close(fd)
            raise
        return prog

    @classmethod
    def from_pinned(cls, path: str) -> Program:
        return cls.from_fd(objcmd.obj_get(str(path)))

    @classmethod
    def from_id(cls, prog_id: int) -> Program:
        return cls.from_fd(objcmd.prog_get_fd_by_id(prog_id))

    # --- fd ownership -----------------------------------------------------------------------

    def _describe(self) -> str:
        return f"program '{self._name}'"

    def __repr__(self) -> str:
        return f"Program({self._name!r}, fd={self._fd})"

    # --- what the kernel knows about it -----------------------------------------------------

    def info(self) -> ProgInfo:
        """Fresh info from the kernel (run counters change; id, tag and type do not)."""
        self._info = objinfo.prog_info(self.fd)
        return self._info

    def _cached_info(self) -> ProgInfo:
        return self._info or self.info()

    @property
    def id(self) -> int:
        return self._cached_info().id

    @property
    def tag(self) -> str:
        """The kernel's SHA-1-based tag in hex, as ``bpftool prog show`` prints it."""
        return self._cached_info().tag

    @property
    def type(self) -> int:
        return self._cached_info().type

    @property
    def name(self) -> str:
        return self._name or self._cached_info().name

    def xlated(self) -> bytes:
        """The instructions after the verifier's rewrites (``bpftool prog dump xlated``)."""
        return objinfo.prog_xlated_insns(self.fd)

    # --- running and pinning ----------------------------------------------------------------

    def test_run(
        self,
        data: bytes = b"",
        repeat: int = 1,
        data_size_out: Optional[int] = None,
        ctx_in: Optional[bytes] = None,
        flags: int = 0,
        ctx_size_out: Optional[int] = None,
    ) -> TestRunResult:
        """Run the program once (or ``repeat`` times) on ``data`` with BPF_PROG_TEST_RUN.

        ``duration_ns`` is the kernel's average per run; ``data_out`` the packet afterwards.
        What the kernel refuses with a bare errno is said in words (``explain_test_run``).
        """
        try:
            return progcmd.prog_test_run(
                self.fd,
                data,
                data_size_out=data_size_out,
                ctx_in=ctx_in,
                ctx_size_out=ctx_size_out if ctx_size_out is not None else len(ctx_in or b""),
                repeat=repeat,
                flags=flags,
                name=self.name,
            )
        except SyscallError as e:
            why = explain_test_run(self.type, len(data), e.errno)
            if why is None:
                raise
            raise SyscallError(e.what, e.errno, why) from None

    def pin(self, path: str) -> None:
        from pybpf.sys.bpffs import ensure_parent

        ensure_parent(str(path))
        objcmd.obj_pin(self.fd, str(path))


# The program types whose test run is on a packet the kernel builds from the data: an skb (a
# page: its head room, the data, the skb_shared_info after it), an XDP frame (a page, then up
# to MAX_SKB_FRAGS pages as fragments), the flow dissector's (a page, no room). Each needs an
# Ethernet header at least (net/bpf/test_run.c, bpf_test_init).
_SKB_TEST_RUN = frozenset(
    (
        ProgType.SOCKET_FILTER,
        ProgType.SCHED_CLS,
        ProgType.SCHED_ACT,
        ProgType.CGROUP_SKB,
        ProgType.LWT_IN,
        ProgType.LWT_OUT,
        ProgType.LWT_XMIT,
        ProgType.LWT_SEG6LOCAL,
        ProgType.FLOW_DISSECTOR,
    )
)
ETH_HLEN = 14
MAX_SKB_FRAGS = 17  # the kernel's default (CONFIG_MAX_SKB_FRAGS, Linux 6.7+, may raise it)


ENOTSUPP = 524  # the kernel's internal "not supported", which reaches user space as is


def explain_test_run(prog_type: int, size: int, err: int) -> Optional[str]:
    """Why BPF_PROG_TEST_RUN refused a run with ``err``: a program type the kernel has no test
    run for, or ``size`` bytes of packet data when the size is the likely reason; None
    otherwise. The kernel's own answer (ENOTSUPP, EFAULT, EINVAL, ENOMEM) names neither."""
    if err == ENOTSUPP:
        return f"the kernel has no test run for {program_type_name(prog_type)} programs"
    if err == _errno.EFAULT and prog_type == ProgType.TRACING:
        # bpf_prog_test_run_tracing answers EFAULT for every other attach type
        return (
            "of the tracing programs the kernel test-runs fentry, fexit and fmod_ret only (an "
            "iterator runs when it is read)"
        )
    page = os.sysconf("SC_PAGE_SIZE")
    if prog_type != ProgType.XDP and prog_type not in _SKB_TEST_RUN:
        return None
    if err == _errno.EINVAL and size < ETH_HLEN:
        return (
            f"{size} bytes of data: a test run's packet needs at least an Ethernet header "
            f"({ETH_HLEN} bytes)"
        )
    if err == _errno.EINVAL and prog_type in _SKB_TEST_RUN and size > page - 1024:
        return (
            f"{size} bytes of data: the kernel runs a {program_type_name(prog_type)} program "
            f"on one page ({page} bytes) less the packet's head and tail room"
        )
    if err == _errno.EINVAL and prog_type == ProgType.XDP and size > page - 1024:
        return (
            f"{size} bytes of data: before Linux 5.18 (fragments) an XDP test run's frame is "
            f"one page ({page} bytes) less its head and tail room"
        )
    if err == _errno.ENOMEM and prog_type == ProgType.XDP and size > page:
        return (
            f"{size} bytes of data: an XDP frame is one page and at most {MAX_SKB_FRAGS} "
            f"fragments of a page (about {(MAX_SKB_FRAGS + 1) * page // 1024} KiB, less head "
            "and tail room)"
        )
    return None


def _what(name: str, section: str) -> str:
    where = f" (section {section})" if section else ""
    return f"cannot load program '{name or '?'}'{where}"


def _load_with_log(
    prog_type: int,
    code: bytes,
    args: dict,
    log_level: int,
    log_size: int,
    name: str,
    section: str,
) -> tuple[int, str]:
    """Load with a verifier log, growing the buffer until the whole log fits.

    Returns (fd, log) on success; raises VerifierError with the whole log on refusal.
    """
    size = min(max(log_size, uapi.BPF_LOG_MIN), uapi.BPF_LOG_MAX)
    while True:
        buf = ctypes.create_string_buffer(size)
        res = progcmd.prog_load_attempt(prog_type, code, log_level=log_level, log_buf=buf, **args)
        log = buf.value.decode(errors="replace")
        # Since 6.4 the kernel reports the size the whole log needs and answers ENOSPC when it
        # did not fit (even for a program it accepted); older kernels only say ENOSPC.
        truncated = res.errno == _errno.ENOSPC or res.log_true_size > size
        if truncated and size < uapi.BPF_LOG_MAX:
            if res.fd >= 0:
                os.close(res.fd)
            wanted = res.log_true_size if res.log_true_size > size else size * 2
            size = min(wanted, uapi.BPF_LOG_MAX)
            continue
        if res.fd >= 0:
            return res.fd, log
        if res.errno == _errno.EAGAIN:  # the log stops where a signal cut the verifier short
            raise progcmd.interrupted(_what(name, section))
        if not log.strip():
            raise SyscallError(_what(name, section), res.errno)
        raise VerifierError(name or "?", section or "?", res.errno, log)


def program_type_name(prog_type: int) -> str:
    try:
        return ProgType(prog_type).name.lower()
    except ValueError:
        return str(prog_type)
