"""perf_event_open(2): the kernel's event sources that BPF programs hang from.

Tracepoints, kprobes, uprobes and software/hardware counters are all *perf events*: an fd from
``perf_event_open`` describing "this event, on this CPU and/or task". A BPF program is attached
to such an fd either with a bpf_link (``BPF_LINK_CREATE``, attach type ``BPF_PERF_EVENT``, 5.15+)
or, on older kernels, with the ``PERF_EVENT_IOC_SET_BPF`` ioctl; either way the attachment ends
when the perf event's last reference goes.

Which *kind* of event an fd is comes from ``perf_event_attr.type``: the fixed PERF_TYPE_*
values, or the dynamic type number of a PMU the kernel registered at boot (``kprobe``,
``uprobe``), published in ``/sys/bus/event_source/devices/<pmu>/type``. Tracepoints are named by
the id tracefs gives them (``events/<category>/<name>/id``).

``perf_event_attr`` is declared below as in ``include/uapi/linux/perf_event.h``; its one-bit
fields are the bits of ``flags`` (:class:`PerfAttrFlag`).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
import platform
from pathlib import Path
from typing import Optional

import construct as cs

from pybpf.enums import int_enum, int_flag
from pybpf.errors import SyscallError
from pybpf.sys.mounts import mount
from pybpf.sys.syscall import own_fd

# --- the constants of include/uapi/linux/perf_event.h ---------------------------------------------


@int_enum
class PerfType:
    """``enum perf_type_id`` (PERF_TYPE_*): the fixed event types; PMUs get dynamic ones."""

    HARDWARE = 0
    SOFTWARE = 1
    TRACEPOINT = 2
    HW_CACHE = 3
    RAW = 4
    BREAKPOINT = 5


@int_enum
class PerfCountSW:
    """``enum perf_sw_ids`` (PERF_COUNT_SW_*): the kernel's software events."""

    CPU_CLOCK = 0
    TASK_CLOCK = 1
    PAGE_FAULTS = 2
    CONTEXT_SWITCHES = 3
    CPU_MIGRATIONS = 4
    PAGE_FAULTS_MIN = 5
    PAGE_FAULTS_MAJ = 6
    ALIGNMENT_FAULTS = 7
    EMULATION_FAULTS = 8
    DUMMY = 9
    BPF_OUTPUT = 10
    CGROUP_SWITCHES = 11


@int_enum
class PerfCountHW:
    """``enum perf_hw_id`` (PERF_COUNT_HW_*)."""

    CPU_CYCLES = 0
    INSTRUCTIONS = 1
    CACHE_REFERENCES = 2
    CACHE_MISSES = 3
    BRANCH_INSTRUCTIONS = 4
    BRANCH_MISSES = 5
    BUS_CYCLES = 6
    STALLED_CYCLES_FRONTEND = 7
    STALLED_CYCLES_BACKEND = 8
    REF_CPU_CYCLES = 9


@int_flag
class PerfAttrFlag:
    """The one-bit fields of ``perf_event_attr`` after ``read_format``, in declaration order."""

    DISABLED = 1 << 0
    INHERIT = 1 << 1
    PINNED = 1 << 2
    EXCLUSIVE = 1 << 3
    EXCLUDE_USER = 1 << 4
    EXCLUDE_KERNEL = 1 << 5
    EXCLUDE_HV = 1 << 6
    EXCLUDE_IDLE = 1 << 7
    MMAP = 1 << 8
    COMM = 1 << 9
    FREQ = 1 << 10
    INHERIT_STAT = 1 << 11
    ENABLE_ON_EXEC = 1 << 12
    TASK = 1 << 13
    WATERMARK = 1 << 14
    # precise_ip takes bits 15-16
    MMAP_DATA = 1 << 17
    SAMPLE_ID_ALL = 1 << 18
    EXCLUDE_HOST = 1 << 19
    EXCLUDE_GUEST = 1 << 20
    EXCLUDE_CALLCHAIN_KERNEL = 1 << 21
    EXCLUDE_CALLCHAIN_USER = 1 << 22
    MMAP2 = 1 << 23
    COMM_EXEC = 1 << 24
    USE_CLOCKID = 1 << 25
    CONTEXT_SWITCH = 1 << 26
    WRITE_BACKWARD = 1 << 27
    NAMESPACES = 1 << 28
    KSYMBOL = 1 << 29
    BPF_EVENT = 1 << 30
    AUX_OUTPUT = 1 << 31
    CGROUP = 1 << 32
    TEXT_POKE = 1 << 33
    BUILD_ID = 1 << 34
    INHERIT_THREAD = 1 << 35
    REMOVE_ON_EXEC = 1 << 36
    SIGTRAP = 1 << 37


@int_flag
class PerfSampleType:
    """``enum perf_event_sample_format`` (PERF_SAMPLE_*), the ones BPF users meet."""

    IP = 1 << 0
    TID = 1 << 1
    TIME = 1 << 2
    ADDR = 1 << 3
    READ = 1 << 4
    CALLCHAIN = 1 << 5
    ID = 1 << 6
    CPU = 1 << 7
    PERIOD = 1 << 8
    STREAM_ID = 1 << 9
    RAW = 1 << 10


PERF_FLAG_FD_CLOEXEC = 1 << 3

# ioctls on a perf event fd: _IO('$', 0), _IO('$', 1), _IOW('$', 8, __u32).
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408

# --- struct perf_event_attr -----------------------------------------------------------------------

U16 = cs.Default(cs.Int16un, 0)
U32 = cs.Default(cs.Int32un, 0)
S32 = cs.Default(cs.Int32sn, 0)
U64 = cs.Default(cs.Int64un, 0)

# Unions are named by the member kprobes/uprobes use; comments give the others.
perf_event_attr = cs.Struct(
    "type" / U32,
    "size" / U32,
    "config" / U64,
    "sample_period" / U64,  # | sample_freq (when flags has FREQ)
    "sample_type" / U64,
    "read_format" / U64,
    "flags" / U64,  # disabled:1, inherit:1, ... sigtrap:1 (PerfAttrFlag)
    "wakeup_events" / U32,  # | wakeup_watermark
    "bp_type" / U32,
    "config1" / U64,  # | bp_addr | kprobe_func | uprobe_path: a pointer to a C string
    "config2" / U64,  # | bp_len | kprobe_addr | probe_offset
    "branch_sample_type" / U64,
    "sample_regs_user" / U64,
    "sample_stack_user" / U32,
    "clockid" / S32,
    "sample_regs_intr" / U64,
    "aux_watermark" / U32,
    "sample_max_stack" / U16,
    "__reserved_2" / U16,
    "aux_sample_size" / U32,
    "__reserved_3" / U32,
    "sig_data" / U64,
    "config3" / U64,
)
PERF_ATTR_SIZE = perf_event_attr.sizeof()  # 136: PERF_ATTR_SIZE_VER8

# --- the call -------------------------------------------------------------------------------------

_SYS_PERF_EVENT_OPEN = {
    "x86_64": 298,
    "amd64": 298,
    "i386": 336,
    "i686": 336,
    "aarch64": 241,
    "arm64": 241,
    "riscv64": 241,
    "loongarch64": 241,
    "armv7l": 364,
    "armv6l": 364,
    "ppc64le": 319,
    "ppc64": 319,
    "s390x": 331,
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def perf_event_open(
    what: str,
    *,
    type: int,
    config: int = 0,
    pid: int = -1,
    cpu: int = 0,
    group_fd: int = -1,
    config1: Optional[bytes] = None,
    **fields: int,
) -> int:
    """Open one perf event; return its fd (O_CLOEXEC). ``config1`` given as bytes is passed as a
    pointer to a NUL-terminated copy (the kprobe function name or the uprobe path)."""
    machine = platform.machine().lower()
    nr = _SYS_PERF_EVENT_OPEN.get(machine)
    if nr is None:
        raise SyscallError(f"{what}: perf_event_open() number unknown for {machine}", _errno.ENOSYS)
    keep = None
    if config1 is not None:
        keep = ctypes.create_string_buffer(config1)
        fields["config1"] = ctypes.addressof(keep)
    packed = perf_event_attr.build(dict(type=type, size=PERF_ATTR_SIZE, config=config, **fields))
    attr = ctypes.create_string_buffer(packed, len(packed))
    while True:
        fd = _libc.syscall(nr, attr, pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC)
        err = ctypes.get_errno() if fd < 0 else 0
        if err != _errno.EINTR:
            break
    del keep
    if fd < 0:
        raise SyscallError(what, err)
    return own_fd(fd)


def ioctl(fd: int, request: int, arg: int, what: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as e:
        raise SyscallError(what, e.errno) from None


def set_bpf(perf_fd: int, prog_fd: int) -> None:
    """The pre-bpf_link attachment: the program stays attached until the perf fd is closed."""
    ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd, "cannot attach program to perf event")


def enable(perf_fd: int) -> None:
    ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0, "cannot enable perf event")


def disable(perf_fd: int) -> None:
    ioctl(perf_fd, PERF_EVENT_IOC_DISABLE, 0, "cannot disable perf event")


# --- naming events: PMUs and tracepoints ----------------------------------------------------------

EVENT_SOURCES = Path("/sys/bus/event_source/devices")
TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def pmu_type(pmu: str) -> Optional[int]:
    """The dynamic ``perf_event_attr.type`` of a PMU (``kprobe``, ``uprobe``), or None when this
    kernel has no such PMU."""
    try:
        return int((EVENT_SOURCES / pmu / "type").read_text())
    except (OSError, ValueError):
        return None


def pmu_retprobe_bit(pmu: str) -> int:
    """The ``config`` bit that turns a kprobe/uprobe into a return probe: the PMU publishes it as
    ``config:N`` in ``format/retprobe``."""
    try:
        text = (EVENT_SOURCES / pmu / "format" / "retprobe").read_text().strip()
    except OSError as e:
        raise SyscallError(f"cannot read the {pmu} PMU's retprobe bit", e.errno or 0) from None
    _, _, bit = text.partition(":")
    return int(bit)


def _is_tracefs(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "events", "header_page")) or os.path.isdir(
        os.path.join(path, "events", "sched")
    )


def tracefs() -> str:
    """Where tracefs is mounted; mounted at /sys/kernel/tracing first when it is nowhere (a
    freshly booted host mounts it only on demand)."""
    for path in TRACEFS_CANDIDATES:
        if _is_tracefs(path):
            return path
    path = TRACEFS_CANDIDATES[0]
    mount("tracefs", path, "tracefs is not mounted and cannot be")
    return path


def tracepoint_id(category: str, name: str) -> int:
    """The id tracefs gives ``category/name`` (what perf_event_attr.config names for
    PERF_TYPE_TRACEPOINT)."""
    root = tracefs()
    path = os.path.join(root, "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise SyscallError(
            f"no tracepoint {category}:{name}", _errno.ENOENT, f"{path} does not exist"
        ) from None
    except OSError as e:
        raise SyscallError(f"cannot read the id of tracepoint {category}:{name}", e.errno) from None


def online_cpus() -> list[int]:
    """The CPUs perf events can be opened on (``/sys/devices/system/cpu/online``: "0-3,6")."""
    text = Path("/sys/devices/system/cpu/online").read_text().strip()
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus
