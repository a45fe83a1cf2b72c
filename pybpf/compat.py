"""What loading does differently on a kernel older than the object, as libbpf does it.

The kernel's own answer to something it does not know is a bare ``EINVAL`` (or, for BTF, the
refusal of the whole blob). The loader asks ``pybpf.sys.features`` instead, and either adapts —
BTF kinds rewritten into older ones, data maps without ``BPF_F_MMAPABLE`` — or fails with one
line that names the feature and the first Linux that has it ("BPF ring buffers need Linux 5.8").
"""

from __future__ import annotations

import errno
import os

from pybpf.btf.model import BTF
from pybpf.errors import SyscallError
from pybpf.object.spec import MapSpec, ProgramSpec
from pybpf.record import replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Callable, Optional

    Log = Optional[Callable[[str], None]]

# Map types that are a feature of their own, by MapType name.
_MAP_FEATURES = {"RINGBUF": "RINGBUF", "USER_RINGBUF": "USER_RINGBUF"}


def say(log: Log, msg: str) -> None:
    """One step of loading told to ``log`` (``pybpf load -v``), when there is one."""
    if log is not None:
        log(msg)


def btf_for_kernel(btf: BTF, log: Log) -> tuple[BTF, bool]:
    """The object's BTF as the running kernel accepts it, and whether the kernel takes
    func_info/line_info (BTF FUNC, Linux 5.0)."""
    from pybpf.btf.sanitize import features_used, sanitize
    from pybpf.sys import features

    # "func" always: it also says whether the kernel takes func_info and line_info
    support = features.btf_support(features_used(btf) | {"func"})
    sane = sanitize(btf, support)
    for change in sane.changes:
        f = features.btf_feature(change.missing)
        say(log, f"btf: kernel lacks {f.value.kind} (Linux {f.since}): {change}")
    return sane.btf, support.func


def kernel_btf_for_core(name: str, count: int):
    """The kernel's BTF for CO-RE; on a kernel without it (no CONFIG_DEBUG_INFO_BTF), one line
    that says what needs it — objects without CO-RE records load there."""
    from pybpf.btf.kernel import KernelBTF
    from pybpf.errors import BTFError

    try:
        return KernelBTF.system()
    except BTFError as e:
        raise BTFError(
            f"{name}: {count} CO-RE relocations need the kernel's BTF, which this kernel does not "
            f"offer (built without CONFIG_DEBUG_INFO_BTF?): {e}"
        ) from None


def global_data_ok(ms: MapSpec, log: Log):
    """None when the kernel can have this data map; else the Feature it lacks (global data:
    before Linux 5.2 no program can address a map value). Like libbpf, the loader then skips
    the map and fails only a program that uses it."""
    from pybpf.sys.features import Feature, has

    if has(Feature.GLOBAL_DATA):
        return None
    say(log, f"map '{ms.name}': not created, {Feature.GLOBAL_DATA.needs()}")
    return Feature.GLOBAL_DATA


def map_for_kernel(ms: MapSpec, log: Log) -> MapSpec:
    """Data maps are mmap()-able where the kernel allows it (5.5); before, the flag goes."""
    from pybpf.sys.features import Feature, has
    from pybpf.sys.uapi import MapFlags

    if ms.is_data_section and ms.flags & MapFlags.MMAPABLE and not has(Feature.ARRAY_MMAP):
        say(log, f"map '{ms.name}': not mmap()-able, {Feature.ARRAY_MMAP.needs()}")
        return replace(ms, flags=ms.flags & ~MapFlags.MMAPABLE)
    return ms


# The first mainline Linux of the map types newer than BPF itself (the kernel's git history, as
# bcc's docs/kernel-versions.md lists it). Used only to explain a refusal: a distribution kernel
# may have a type earlier (backports), so a type is never refused on its version alone.
MAP_TYPE_SINCE = {
    "PROG_ARRAY": "4.2",
    "PERF_EVENT_ARRAY": "4.3",
    "PERCPU_HASH": "4.6",
    "PERCPU_ARRAY": "4.6",
    "STACK_TRACE": "4.6",
    "CGROUP_ARRAY": "4.8",
    "LRU_HASH": "4.10",
    "LRU_PERCPU_HASH": "4.10",
    "LPM_TRIE": "4.11",
    "ARRAY_OF_MAPS": "4.12",
    "HASH_OF_MAPS": "4.12",
    "DEVMAP": "4.14",
    "SOCKMAP": "4.14",
    "CPUMAP": "4.15",
    "XSKMAP": "4.18",
    "SOCKHASH": "4.18",
    "CGROUP_STORAGE": "4.19",
    "REUSEPORT_SOCKARRAY": "4.19",
    "PERCPU_CGROUP_STORAGE": "4.20",
    "QUEUE": "4.20",
    "STACK": "4.20",
    "SK_STORAGE": "5.2",
    "DEVMAP_HASH": "5.4",
    "STRUCT_OPS": "5.6",
    "RINGBUF": "5.8",
    "INODE_STORAGE": "5.10",
    "TASK_STORAGE": "5.11",
    "BLOOM_FILTER": "5.16",
    "USER_RINGBUF": "6.1",
    "CGRP_STORAGE": "6.2",
    "ARENA": "6.9",
}


def running_linux() -> tuple[int, int]:
    """(major, minor) of the running kernel, from uname -r ("6.1.0-57-amd64" → (6, 1))."""
    head = os.uname().release.split("-")[0].split(".")
    try:
        return int(head[0]), int(head[1])
    except (IndexError, ValueError):
        return (0, 0)


def _version(since: str) -> tuple[int, int]:
    major, minor = since.split(".")
    return int(major), int(minor)


def explain_map_refusal(ms: MapSpec, type_name: str, e: SyscallError) -> None:
    """A map type newer than the kernel is a bare EINVAL: raise FeatureError naming it — from a
    probe where pybpf has one, else when the kernel is older than the type's first Linux."""
    from pybpf.errors import FeatureError
    from pybpf.sys import features

    if e.errno != errno.EINVAL:
        return
    need = _MAP_FEATURES.get(type_name)
    if need is not None:
        feature = features.Feature[need]
        if not features.has(feature):
            raise features.missing(feature, f"map '{ms.name}'") from None
        return
    since = MAP_TYPE_SINCE.get(type_name)
    if since is not None and running_linux() < _version(since):
        raise FeatureError(
            f"map '{ms.name}': BPF_MAP_TYPE_{type_name} maps need Linux {since} "
            f"(this kernel is {os.uname().release})"
        ) from None


def explain_prog_refusal(ps: ProgramSpec, e: SyscallError) -> None:
    """A prog_flags bit newer than the kernel is a bare EINVAL: raise FeatureError naming it."""
    from pybpf.sys import features
    from pybpf.sys.uapi import ProgFlags

    if e.errno != errno.EINVAL or not ps.prog_flags & ProgFlags.XDP_HAS_FRAGS:
        return
    if not features.has(features.Feature.XDP_FRAGS):
        where = f"program '{ps.name}' (section {ps.section})"
        raise features.missing(features.Feature.XDP_FRAGS, where) from None
