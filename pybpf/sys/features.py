"""What the running kernel supports, asked the way libbpf asks: by trying it (``features.c``).

A kernel version number says little (distributions backport BPF features, and configs differ),
so each feature is probed with the smallest thing that needs it: a tiny BTF blob of one new kind,
a map of a new type, a two-instruction program with a new flag. The kernel's answer is one of:

- it worked: the feature is there;
- ``EINVAL`` / ``E2BIG`` / ``EOPNOTSUPP``: the kernel does not know what it was asked — missing;
- anything else (``EPERM`` for an unprivileged user, ``ENOMEM``...): the probe could not tell.
  Such a feature counts as present: the real operation will fail in its own words, which is
  better than blaming a kernel version for a missing capability.

Each feature is probed at most once per process (``has`` caches, as libbpf's feature cache
does); ``assume`` replaces probe results for a block of code — the seam tests use to play an
older kernel. Every feature carries the first mainline Linux that has it, so a refusal can say
"BPF ring buffers need Linux 5.8".
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import os
import threading
from collections.abc import Iterator, Mapping

from pybpf.asm import insn as isa
from pybpf.btf.model import (
    BTF,
    Datasec,
    DeclTag,
    Enum64,
    Float,
    Func,
    FuncLinkage,
    FuncProto,
    Int,
    IntEncoding,
    Param,
    Ptr,
    TypeTag,
    Var,
    VarSecinfo,
)
from pybpf.btf.sanitize import BTFSupport
from pybpf.enums import plain_enum
from pybpf.errors import ENOTSUPP, FeatureError, SyscallError
from pybpf.record import field_names, record
from pybpf.sys import mapcmd, progcmd
from pybpf.sys.attr import btf_load_attr
from pybpf.sys.syscall import addr_of, bpf_raw, in_buf
from pybpf.sys.uapi import AttachType, BPFCmd, MapFlags, MapType, ProgFlags, ProgType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Callable, Iterable, Optional


@record
class FeatureInfo:
    what: str  # how a sentence names it: "BPF ring buffers"
    since: str  # the first mainline Linux release that has it
    kind: str = ""  # for BTF kinds: the kind's name, as the sanitiser reports it
    plural: bool = True  # "... need Linux" or "... needs Linux"


@plain_enum
class Feature:
    """Kernel features an object may need, named as libbpf's ``FEAT_*`` where it has one."""

    BTF = FeatureInfo("BTF", "4.18", plural=False)
    BTF_FUNC = FeatureInfo("BTF functions (FUNC, FUNC_PROTO, func and line info)", "5.0", "FUNC")
    BTF_DATASEC = FeatureInfo("BTF data sections (DATASEC, VAR)", "5.2", "DATASEC")
    BTF_GLOBAL_FUNC = FeatureInfo("global functions in BTF", "5.6", "global FUNC linkage")
    BTF_FLOAT = FeatureInfo("BTF floating-point types (FLOAT)", "5.13", "FLOAT")
    BTF_DECL_TAG = FeatureInfo("BTF declaration tags (DECL_TAG)", "5.16", "DECL_TAG")
    BTF_TYPE_TAG = FeatureInfo("BTF type tags (TYPE_TAG)", "5.17", "TYPE_TAG")
    BTF_ENUM64 = FeatureInfo("64-bit BTF enums (ENUM64)", "6.0", "ENUM64")
    GLOBAL_DATA = FeatureInfo("global variables (.data, .rodata, .bss maps)", "5.2")
    ARRAY_MMAP = FeatureInfo("mmap()-able array maps (BPF_F_MMAPABLE)", "5.5")
    RINGBUF = FeatureInfo("BPF ring buffers", "5.8")
    USER_RINGBUF = FeatureInfo("user ring buffers (BPF_MAP_TYPE_USER_RINGBUF)", "6.1")
    XDP_LINK = FeatureInfo("bpf_link attachments of XDP programs", "5.9")
    XDP_FRAGS = FeatureInfo("XDP programs for multi-buffer frames (BPF_F_XDP_HAS_FRAGS)", "5.18")
    LOG_TRUE_SIZE = FeatureInfo("verifier log sizes (log_true_size)", "6.4")

    @property
    def since(self) -> str:
        return self.value.since

    def needs(self) -> str:
        """``BPF ring buffers need Linux 5.8``."""
        verb = "need" if self.value.plural else "needs"
        return f"{self.value.what} {verb} Linux {self.value.since}"


# --- the probes ----------------------------------------------------------------------------------

_MISSING = frozenset({_errno.EINVAL, _errno.E2BIG, _errno.EOPNOTSUPP, ENOTSUPP})
if TYPE_CHECKING:
    Verdict = Optional[bool]  # True: present, False: missing, None: the probe could not tell


def _verdict(err: int) -> Verdict:
    return False if err in _MISSING else None


def _btf_loads(*types) -> Verdict:
    """Does the kernel accept a BTF blob of these types? (libbpf's probe_kern_btf_*)."""
    blob = BTF(types).encode()
    buf = in_buf(blob)
    ret, err, _ = bpf_raw(BPFCmd.BTF_LOAD, btf_load_attr, btf=addr_of(buf), btf_size=len(blob))
    if ret >= 0:
        os.close(ret)
        return True
    return _verdict(err)


_INT = Int("int", 4, IntEncoding.SIGNED, 0, 32)  # [1] in every blob below


def _func(linkage: FuncLinkage) -> Verdict:
    # void x(int a) {}
    return _btf_loads(_INT, FuncProto(0, (Param("a", 1),)), Func("x", 2, linkage))


def _datasec() -> Verdict:
    # static int x; in .data
    return _btf_loads(_INT, Var("x", 1), Datasec(".data", 4, (VarSecinfo(2, 0, 4),)))


def _map(map_type: int, key: int, value: int, entries: int, flags: int = 0) -> Verdict:
    try:
        fd = mapcmd.map_create(map_type, key, value, entries, map_flags=flags, name="pybpf_probe")
    except SyscallError as e:
        return _verdict(e.errno)
    os.close(fd)
    return True


_RETURN_0 = [isa.mov64_imm(0, 0), isa.exit_insn()]


def _prog(prog_type: int, insns: list, **kwargs) -> Verdict:
    res = progcmd.prog_load_attempt(prog_type, isa.encode(insns), prog_name="pybpf_probe", **kwargs)
    if res.fd < 0:
        return _verdict(res.errno)
    os.close(res.fd)
    return True


def _global_data() -> Verdict:
    """An ld_imm64 of a map value (BPF_PSEUDO_MAP_VALUE), as .data/.rodata/.bss accesses are."""
    try:
        fd = mapcmd.map_create(MapType.ARRAY, 4, 32, 1, name="pybpf_probe")
    except SyscallError as e:
        return _verdict(e.errno)
    try:
        insns = [
            *isa.ld_imm64(1, fd | 16 << 32, isa.PseudoSrc.MAP_VALUE),  # r1 = &value[16]
            isa.st_mem(isa.Size.DW, 1, 0, 42),
            *_RETURN_0,
        ]
        return _prog(ProgType.SOCKET_FILTER, insns)
    finally:
        os.close(fd)


def _log_true_size() -> Verdict:
    buf = ctypes.create_string_buffer(4096)
    code = isa.encode(_RETURN_0)
    res = progcmd.prog_load_attempt(ProgType.SOCKET_FILTER, code, log_level=1, log_buf=buf)
    if res.fd < 0:
        return _verdict(res.errno)
    os.close(res.fd)
    return res.log_true_size > 0  # older kernels leave the field as we sent it: 0


_CLONE_NEWNET = 0x40000000
_XDP_FLAGS_SKB_MODE = 1 << 1
_LOOPBACK_IFINDEX = 1  # in every network namespace


def _xdp_link() -> Verdict:
    """Attach an XDP program with a bpf_link to the loopback of a network namespace of our own.

    The kernel answers EINVAL both for "no XDP links" and for a wrong ifindex, so the probe needs
    a real interface; a private namespace (in a thread of its own: namespaces are per thread,
    and the thread's namespace disappears with it) keeps every real interface untouched.
    """
    from pybpf.sys import linkcmd

    result: list[Verdict] = [None]

    def probe() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWNET) != 0:
            return  # no CAP_SYS_ADMIN: cannot tell
        code = isa.encode([isa.mov64_imm(0, 2), isa.exit_insn()])  # XDP_PASS
        res = progcmd.prog_load_attempt(ProgType.XDP, code, expected_attach_type=AttachType.XDP)
        if res.fd < 0:
            return
        try:
            link = linkcmd.link_create(
                res.fd, _LOOPBACK_IFINDEX, AttachType.XDP, flags=_XDP_FLAGS_SKB_MODE
            )
            os.close(link)
            result[0] = True
        except SyscallError as e:
            result[0] = _verdict(e.errno)
        finally:
            os.close(res.fd)

    t = threading.Thread(target=probe, name="pybpf-xdp-link-probe")
    t.start()
    t.join()
    return result[0]


_PROBES: dict[Feature, Callable[[], Verdict]] = {
    Feature.BTF: lambda: _btf_loads(_INT),
    Feature.BTF_FUNC: lambda: _func(FuncLinkage.STATIC),
    Feature.BTF_DATASEC: _datasec,
    Feature.BTF_GLOBAL_FUNC: lambda: _func(FuncLinkage.GLOBAL),
    Feature.BTF_FLOAT: lambda: _btf_loads(Float("float", 4)),
    Feature.BTF_DECL_TAG: lambda: _btf_loads(_INT, Var("x", 1), DeclTag("tag", 2, -1)),
    Feature.BTF_TYPE_TAG: lambda: _btf_loads(_INT, TypeTag("tag", 1), Ptr(2)),
    Feature.BTF_ENUM64: lambda: _btf_loads(Enum64("enum64", 8, False, ())),
    Feature.GLOBAL_DATA: _global_data,
    Feature.ARRAY_MMAP: lambda: _map(MapType.ARRAY, 4, 4, 1, MapFlags.MMAPABLE),
    Feature.RINGBUF: lambda: _map(MapType.RINGBUF, 0, 0, os.sysconf("SC_PAGE_SIZE")),
    Feature.USER_RINGBUF: lambda: _map(MapType.USER_RINGBUF, 0, 0, os.sysconf("SC_PAGE_SIZE")),
    Feature.XDP_LINK: _xdp_link,
    Feature.XDP_FRAGS: lambda: _prog(
        ProgType.XDP,
        [isa.mov64_imm(0, 2), isa.exit_insn()],
        expected_attach_type=AttachType.XDP,
        prog_flags=ProgFlags.XDP_HAS_FRAGS,
    ),
    Feature.LOG_TRUE_SIZE: _log_true_size,
}


# --- the cache -----------------------------------------------------------------------------------


class FeatureProbes:
    """Probe results of one kernel, each probed on first use; ``assume`` overrides them."""

    def __init__(self) -> None:
        self._results: dict[Feature, Verdict] = {}
        self._assumed: dict[Feature, bool] = {}
        self._lock = threading.Lock()

    def probe(self, feature: Feature) -> Verdict:
        """True, False, or None (the probe could not tell); an assumed value wins."""
        if feature in self._assumed:
            return self._assumed[feature]
        with self._lock:
            if feature not in self._results:
                self._results[feature] = _PROBES[feature]()
            return self._results[feature]

    def has(self, feature: Feature) -> bool:
        return self.probe(feature) is not False

    @contextlib.contextmanager
    def assume(self, results: Mapping[Feature, bool]) -> Iterator[None]:
        saved = dict(self._assumed)
        self._assumed.update(results)
        try:
            yield
        finally:
            self._assumed = saved


_kernel = FeatureProbes()  # the running kernel's, shared by the process (libbpf's feature_cache)


def probe(feature: Feature) -> Verdict:
    return _kernel.probe(feature)


def has(feature: Feature) -> bool:
    """Does the running kernel support ``feature``? Probed once per process."""
    return _kernel.has(feature)


def assume(results: Mapping[Feature, bool]):
    """``with features.assume({Feature.BTF_ENUM64: False}):`` — play a kernel without it."""
    return _kernel.assume(results)


def require(feature: Feature, who: str) -> None:
    """Raise FeatureError("who: BPF ring buffers need Linux 5.8 (this kernel is 5.4.0)")."""
    if not has(feature):
        raise missing(feature, who)


def missing(feature: Feature, who: str) -> FeatureError:
    prefix = f"{who}: " if who else ""
    return FeatureError(f"{prefix}{feature.needs()} (this kernel is {os.uname().release})")


def btf_support(only: Optional[Iterable[str]] = None) -> BTFSupport:
    """What the sanitiser needs to know, from the probes (BTF kinds only). With ``only`` (the
    ``BTFSupport`` fields an object's BTF uses: ``sanitize.features_used``), just those are
    probed and the rest count as present: each probe is a ``BTF_LOAD`` of its own."""
    wanted = set(field_names(BTFSupport) if only is None else only)
    return BTFSupport(**{name: has(btf_feature(name)) for name in wanted})


def btf_feature(support_field: str) -> Feature:
    """The Feature behind a ``BTFSupport`` field (``decl_tag`` → ``BTF_DECL_TAG``)."""
    return Feature["BTF_" + support_field.upper()]


def report() -> list[str]:
    """One line per feature: name, first Linux, and what the running kernel answered."""
    words = {True: "yes", False: "no", None: "cannot tell (not root?)"}
    lines = [f"{'feature':<16} {'since':>5}  this kernel ({os.uname().release})"]
    for f in Feature:
        lines.append(f"{f.name:<16} {f.since:>5}  {words[probe(f)]}")
    return lines


if __name__ == "__main__":  # python3 -m pybpf.sys.features: what this kernel supports
    print("\n".join(report()))
