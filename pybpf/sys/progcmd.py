"""Program and BTF commands of bpf(2): load (with the verifier log), and test runs."""

from __future__ import annotations

import ctypes
import errno as _errno

from pybpf.errors import SyscallError
from pybpf.record import record
from pybpf.sys.attr import (
    btf_load_attr,
    prog_attach_attr,
    prog_load_attr,
    prog_query_attr,
    test_attr,
)
from pybpf.sys.syscall import (
    Prepared,
    addr_of,
    bpf,
    bpf_raw,
    in_buf,
    object_name,
    own_fd,
    quoted,
    type_name,
)
from pybpf.sys.uapi import (
    AttachType,
    BPFCmd,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Optional

# --- programs and BTF -----------------------------------------------------------------------------


@record
class ProgLoadResult:
    """The outcome of one BPF_PROG_LOAD attempt: fd (or -1), errno, and the log size needed."""

    fd: int
    errno: int
    log_true_size: int


def prog_load_attempt(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "GPL",
    log_level: int = 0,
    log_buf: Optional[ctypes.Array] = None,
    kern_version: int = 0,
    prog_flags: int = 0,
    prog_name: str = "",
    prog_ifindex: int = 0,
    expected_attach_type: int = 0,
    prog_btf_fd: int = 0,
    func_info: bytes = b"",
    func_info_rec_size: int = 0,
    line_info: bytes = b"",
    line_info_rec_size: int = 0,
    attach_btf_id: int = 0,
    attach_btf_obj_fd: int = 0,
    attach_prog_fd: int = 0,
    fd_array: Optional[list[int]] = None,
) -> ProgLoadResult:
    """One BPF_PROG_LOAD; never raises for a kernel refusal (the caller decides about logs).

    ``log_buf`` is a ctypes buffer for the verifier log; its length is the log size.

    The verifier gives up with EAGAIN when a signal is pending for the loading thread (a
    terminal resized, a child ended, a debugger's stop): the load is issued again, up to
    ``PROG_LOAD_ATTEMPTS`` times in all, as libbpf does. EAGAIN after the last attempt is left
    to the caller (``interrupted``).
    """
    ibuf = in_buf(insns)
    lic = ctypes.create_string_buffer(license.encode())
    fibuf = in_buf(func_info) if func_info else None
    libuf = in_buf(line_info) if line_info else None
    fda = (ctypes.c_int * len(fd_array))(*fd_array) if fd_array else None
    fields = dict(
        prog_type=int(prog_type),
        insn_cnt=len(insns) // 8,
        insns=addr_of(ibuf),
        license=addr_of(lic),
        log_level=log_level if log_buf is not None else 0,
        log_size=len(log_buf) if log_buf is not None else 0,
        log_buf=addr_of(log_buf),
        kern_version=kern_version,
        prog_flags=int(prog_flags),
        prog_name=object_name(prog_name),
        prog_ifindex=prog_ifindex,
        expected_attach_type=int(expected_attach_type),
        prog_btf_fd=prog_btf_fd,
        func_info_rec_size=func_info_rec_size if func_info else 0,
        func_info=addr_of(fibuf),
        func_info_cnt=len(func_info) // func_info_rec_size if func_info else 0,
        line_info_rec_size=line_info_rec_size if line_info else 0,
        line_info=addr_of(libuf),
        line_info_cnt=len(line_info) // line_info_rec_size if line_info else 0,
        attach_btf_id=attach_btf_id,
        attach_btf_obj_fd=attach_prog_fd or attach_btf_obj_fd,
        fd_array=addr_of(fda),
    )
    for _ in range(PROG_LOAD_ATTEMPTS):
        ret, err, out = bpf_raw(BPFCmd.PROG_LOAD, prog_load_attr, **fields)
        if err != _errno.EAGAIN:
            break
    fd = own_fd(ret) if ret >= 0 else -1
    return ProgLoadResult(fd, err, out.log_true_size)


# Loads a signal may interrupt before one is reported as interrupted (libbpf's count).
PROG_LOAD_ATTEMPTS = 5


def interrupted(what: str) -> SyscallError:
    """The error for a load the verifier gave up on ``PROG_LOAD_ATTEMPTS`` times (EAGAIN):
    signals kept arriving while it ran; nothing is wrong with the program."""
    return SyscallError(
        what,
        _errno.EAGAIN,
        f"the verifier was interrupted by a signal {PROG_LOAD_ATTEMPTS} times in a row; "
        "nothing was refused: try again",
    )


def prog_load(prog_type: int, insns: bytes, **kwargs: object) -> int:
    """BPF_PROG_LOAD without the verifier-log protocol (pybpf.program has that)."""
    res = prog_load_attempt(prog_type, insns, **kwargs)
    if res.fd < 0:
        name = str(kwargs.get("prog_name", ""))
        what = f"cannot load {quoted('program', name)}"
        raise interrupted(what) if res.errno == _errno.EAGAIN else SyscallError(what, res.errno)
    return res.fd


def btf_load(data: bytes, *, log_level: int = 0, log_size: int = 1 << 20) -> int:
    """Load raw BTF; on failure load again with a log and quote its last line in the error."""
    dbuf = in_buf(data)
    log = ctypes.create_string_buffer(log_size) if log_level else None
    ret, err, _ = bpf_raw(
        BPFCmd.BTF_LOAD,
        btf_load_attr,
        btf=addr_of(dbuf),
        btf_size=len(data),
        btf_log_buf=addr_of(log),
        btf_log_size=log_size if log is not None else 0,
        btf_log_level=log_level,
    )
    if ret >= 0:
        return own_fd(ret)
    if log is None:
        return btf_load(data, log_level=1, log_size=log_size)
    lines = [ln for ln in log.value.decode(errors="replace").splitlines() if ln.strip()]
    raise SyscallError("cannot load BTF", err, lines[-1] if lines else None)


# --- test run -------------------------------------------------------------------------------------


@record
class TestRunResult:
    __test__ = False  # not a pytest class

    retval: int
    duration_ns: int  # the kernel's average per repetition
    data_out: bytes
    ctx_out: bytes


def prog_test_run(
    prog_fd: int,
    data_in: bytes = b"",
    *,
    data_size_out: Optional[int] = None,
    ctx_in: Optional[bytes] = None,
    ctx_size_out: int = 0,
    repeat: int = 1,
    flags: int = 0,
    cpu: int = 0,
    batch_size: int = 0,
    name: str = "",
) -> TestRunResult:
    if data_size_out is None:
        # XDP may grow the frame (bpf_xdp_adjust_head/tail): leave room for that.
        data_size_out = len(data_in) + 256 if data_in else 0
    din = in_buf(data_in) if data_in else None
    dout = ctypes.create_string_buffer(data_size_out) if data_size_out else None
    cin = in_buf(ctx_in) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_size_out) if ctx_size_out else None
    _, out = bpf(
        BPFCmd.PROG_TEST_RUN,
        test_attr,
        f"cannot test-run {quoted('program', name)}",
        prog_fd=prog_fd,
        data_size_in=len(data_in),
        data_size_out=data_size_out,
        data_in=addr_of(din),
        data_out=addr_of(dout),
        repeat=repeat,
        ctx_size_in=len(ctx_in) if ctx_in else 0,
        ctx_size_out=ctx_size_out,
        ctx_in=addr_of(cin),
        ctx_out=addr_of(cout),
        flags=int(flags),
        cpu=cpu,
        batch_size=batch_size,
    )
    data = dout.raw[: out.data_size_out] if dout is not None else b""
    ctx = cout.raw[: out.ctx_size_out] if cout is not None else b""
    return TestRunResult(out.retval, out.duration, data, ctx)


def prog_run_in_place(prog_fd: int, ctx: ctypes.Array, name: str = "") -> Prepared:
    """BPF_PROG_TEST_RUN of a BPF_PROG_TYPE_SYSCALL program, prepared once: the kernel copies
    ``ctx`` in and, after the run, back to the same buffer, so each call of the result runs the
    program once and leaves its answer in ``ctx`` (no data, no repeat: the kernel refuses them
    for this type)."""
    return Prepared(
        BPFCmd.PROG_TEST_RUN,
        test_attr,
        f"cannot run {quoted('program', name)}",
        prog_fd=prog_fd,
        data_size_in=0,
        data_size_out=0,
        data_in=0,
        data_out=0,
        repeat=0,
        ctx_size_in=ctypes.sizeof(ctx),
        ctx_size_out=0,
        ctx_in=ctypes.addressof(ctx),
        ctx_out=0,
        flags=0,
        cpu=0,
        batch_size=0,
    )


# --- attach without a link (cgroups, sockmaps) ----------------------------------------------------


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, *, flags: int = 0) -> None:
    """BPF_PROG_ATTACH: the attachment belongs to the target (a cgroup, a map), not to an fd."""
    bpf(
        BPFCmd.PROG_ATTACH,
        prog_attach_attr,
        f"cannot attach a {type_name(AttachType, attach_type)} program to fd {target_fd}",
        target_fd=target_fd,
        attach_bpf_fd=prog_fd,
        attach_type=int(attach_type),
        attach_flags=int(flags),
    )


def prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    """BPF_PROG_DETACH of one program (with BPF_F_ALLOW_MULTI several may be attached)."""
    bpf(
        BPFCmd.PROG_DETACH,
        prog_attach_attr,
        f"cannot detach a {type_name(AttachType, attach_type)} program from fd {target_fd}",
        target_fd=target_fd,
        attach_bpf_fd=prog_fd,
        attach_type=int(attach_type),
    )


@record
class ProgQueryResult:
    """What BPF_PROG_QUERY says is attached at one attach point (ids, in run order)."""

    attach_flags: int
    prog_ids: tuple[int, ...]
    link_ids: tuple[int, ...]  # 0 for a program attached without a link (6.6+ kernels fill it)
    revision: int


def prog_query(target_fd: int, attach_type: int, *, query_flags: int = 0) -> ProgQueryResult:
    """BPF_PROG_QUERY: the programs attached to a cgroup/netns/map for ``attach_type``."""
    what = f"cannot query {type_name(AttachType, attach_type)} programs of fd {target_fd}"
    _, out = bpf(
        BPFCmd.PROG_QUERY, prog_query_attr, what, target_fd=target_fd, attach_type=attach_type
    )
    count = out.prog_cnt
    ids = (ctypes.c_uint32 * max(count, 1))()
    links = (ctypes.c_uint32 * max(count, 1))()
    fields = dict(
        target_fd=target_fd,
        attach_type=attach_type,
        query_flags=query_flags,
        prog_ids=addr_of(ids),
        link_ids=addr_of(links),
        prog_cnt=count,
    )
    ret, err, out = bpf_raw(BPFCmd.PROG_QUERY, prog_query_attr, **fields)
    if ret < 0 and err == _errno.EINVAL:
        # kernels before 6.6 know no link_ids, and refuse an attr that sets what they do not know
        fields["link_ids"] = 0
        ret, err, out = bpf_raw(BPFCmd.PROG_QUERY, prog_query_attr, **fields)
    if ret < 0:
        raise SyscallError(what, err)
    n = min(out.prog_cnt, count)
    return ProgQueryResult(out.attach_flags, tuple(ids[:n]), tuple(links[:n]), out.revision)
