"""The running kernel's BTF, read lazily: ``/sys/kernel/btf/vmlinux`` and module BTF.

vmlinux BTF is several megabytes and over a hundred thousand types; a CO-RE relocation needs a
handful of them. So this reader keeps an index (``pybpf.btf.kindex``: where each record starts,
the types by name, the strings in order; for vmlinux cached on disk between processes) and
decodes a type only when it is asked for.

Module BTF (``/sys/kernel/btf/<module>``) is *split* BTF on top of vmlinux: its ids and string
offsets continue vmlinux's.

Where the kernel allows it (vmlinux, Linux 6.16 and later), the sysfs file is mapped rather than
read: its pages are the kernel's own copy of the BTF, so no megabytes are copied, as libbpf does
too; elsewhere (older kernels, module BTF) it is read.
"""

from __future__ import annotations

import bisect
import functools
import mmap
import os
from pathlib import Path

from pybpf.btf.kindex import Index, host_words
from pybpf.btf.model import StringTable, TypeQueries, essential_name, parse_header
from pybpf.btf.types import Func, Kind, TypeDecoder, Void
from pybpf.elfnote import elf_notes
from pybpf.errors import BTFError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Optional

    from pybpf.btf.model import KindSpec
    from pybpf.btf.types import Type

SYSFS_BTF = Path("/sys/kernel/btf")


class KernelBTF(TypeQueries):
    """Kernel BTF with types decoded on demand. ``KernelBTF.system()`` is vmlinux, read once."""

    def __init__(
        self,
        data: bytes,
        name: str = "vmlinux",
        base: Optional[KernelBTF] = None,
        cache: bool = False,
        build_id: bytes = b"",
    ):
        """``cache``: keep this blob's index on disk between processes (``pybpf.btf.cache``);
        ``system()`` does so for vmlinux, keyed by the kernel's ``build_id`` where it has one."""
        self.name = name
        self.base = base
        # Views, not copies: vmlinux is megabytes (the strings are copied once, by StringTable).
        little, type_data, str_data = parse_header(memoryview(data), base is not None)
        self.strings = StringTable(str_data, base.strings if base is not None else None)
        self.first_id = base.count if base is not None else 1
        self._words = host_words(type_data, little)
        self._index = Index.get(data, self._words, self.strings, name, cache, build_id)
        self._starts = self._index.starts
        self._decoder = TypeDecoder(type_data, little, self.strings.get)
        self._cache: dict[int, Type] = {}
        self._flavored: Optional[dict[str, list[int]]] = None

    @classmethod
    def system(cls) -> KernelBTF:
        """vmlinux BTF of the running kernel, read once per process."""
        return _system_btf(str(SYSFS_BTF / "vmlinux"))

    @classmethod
    def module(cls, name: str) -> KernelBTF:
        """A module's split BTF on top of vmlinux (``/sys/kernel/btf/<name>``)."""
        return _module_btf(str(SYSFS_BTF / name))

    @classmethod
    def modules(cls) -> list[KernelBTF]:
        """Every loaded module's BTF (what CO-RE searches when vmlinux has no candidate)."""
        if not SYSFS_BTF.is_dir():
            return []
        names = sorted(p.name for p in SYSFS_BTF.iterdir() if p.name != "vmlinux")
        return [cls.module(name) for name in names]

    @classmethod
    def from_file(
        cls, path: str, base: Optional[KernelBTF] = None, cache: bool = False, build_id: bytes = b""
    ) -> KernelBTF:
        try:
            data = _mapped(path) if Path(path).parent == SYSFS_BTF else Path(path).read_bytes()
        except OSError as e:
            raise BTFError(f"cannot read kernel BTF {path}: {e.strerror}") from None
        return cls(data, Path(path).name, base, cache, build_id)

    @property
    def count(self) -> int:
        """One past the last type id (the base's ids included)."""
        return self.first_id + len(self._starts)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"<KernelBTF {self.name}: {len(self._starts)} types>"

    # --- types ---

    def type(self, type_id: int) -> Type:
        if type_id < self.first_id:
            if self.base is not None:
                return self.base.type(type_id)
            if type_id == 0:
                return Void()
        t = self._cache.get(type_id)
        if t is None:
            if not 0 <= type_id - self.first_id < len(self._starts):
                raise BTFError(
                    f"{self.name} BTF has no type id {type_id} (last is {self.count - 1})"
                )
            self._decoder.pos = self._starts[type_id - self.first_id] * 4
            t = self._cache[type_id] = self._decoder.one()
        return t

    def kind_of(self, type_id: int) -> Kind:
        """The kind of a type without decoding it."""
        if type_id < self.first_id:
            return self.base.kind_of(type_id) if self.base is not None else Kind.UNKN
        info = self._words[self._starts[type_id - self.first_id] + 1]
        return Kind((info >> 24) & 0x1F)

    def _ids_named_at(self, off: int) -> list[int]:
        """Ids of this blob's types whose name is at string offset ``off`` (ascending)."""
        keys = self._index.name_keys
        lo = bisect.bisect_left(keys, off)
        hi = bisect.bisect_right(keys, off, lo)
        return [self.first_id + i for i in self._index.by_name[lo:hi]]

    def _string_offset(self, key: bytes) -> Optional[int]:
        """Where string ``key`` starts in this blob's table (the first copy), or None: a binary
        search over the offsets sorted by the strings they start."""
        data, start, order = self.strings.data, self.strings.start, self._index.strings
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            local = order[mid] - start
            if data[local : data.index(b"\0", local)] < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(order):
            local = order[lo] - start
            if data[local : data.index(b"\0", local)] == key:
                return order[lo]
        return None

    def _flavored_index(self) -> dict[str, list[int]]:
        """Essential name → offsets of the ``name___flavor`` strings (a few dozen in vmlinux)."""
        if self._flavored is None:
            flavored: dict[str, list[int]] = {}
            for chunk in sorted(_with_triple_underscore(self.strings.data)):
                name = chunk.decode()
                ess = essential_name(name)
                if ess != name:
                    flavored.setdefault(ess, []).append(self._string_offset(chunk))
            self._flavored = flavored
        return self._flavored

    def _own_ids(self, text: str) -> list[int]:
        """This blob's types named ``text``; a split blob's names may live in the base's
        string table, so both offsets are looked up."""
        key = text.encode()
        offsets = [self._string_offset(key)]
        if isinstance(self.base, KernelBTF):
            offsets.insert(0, self.base._string_offset(key))
        return sorted(i for off in offsets if off for i in self._ids_named_at(off))

    def find_all(self, name: str, kind: KindSpec = None) -> list[int]:
        ids = self._own_ids(name)
        if self.base is not None:
            ids = self.base.find_all(name) + ids
        if kind is None:
            return ids
        want = kind if isinstance(kind, Kind) else kind.kind
        return [i for i in ids if self.kind_of(i) == want]

    def find_essential(self, name: str) -> list[int]:
        """Ids of the types whose essential name (``___flavor`` stripped) is ``name``'s:
        ``foo`` and every ``foo___flavor``, the candidates CO-RE considers."""
        ess = essential_name(name)
        ids = set(self._own_ids(ess))
        for off in self._flavored_index().get(ess, ()):
            ids.update(self._ids_named_at(off))
        if self.base is not None:
            ids.update(self.base.find_essential(name))
        return sorted(ids)

    # --- what the loader asks ---

    def ksym(self, name: str, local: Optional[TypeQueries] = None, local_id: int = 0) -> int:
        """Kernel BTF id of a ``__ksym`` extern: a FUNC (kfunc, for a ``PSEUDO_KFUNC_CALL``) or
        a VAR (typed ksym, for an ld_imm64 ``PSEUDO_BTF_ID``). Given the object's own FUNC
        (``local``, ``local_id``), its prototype must be CO-RE compatible with the kernel's, as
        libbpf requires."""
        from pybpf.btf.compat import types_are_compat

        want = Kind.FUNC if local is not None and isinstance(local.type(local_id), Func) else None
        ids = [i for i in self.find_all(name) if self.kind_of(i) in (Kind.FUNC, Kind.VAR)]
        if want is not None:
            ids = [i for i in ids if self.kind_of(i) == want]
        if not ids:
            raise BTFError(
                f"extern '{name}' (ksym): the kernel's BTF has no function or variable so named"
            )
        found = ids[0]
        if want is not None:
            local_proto, kernel_proto = local.type(local_id).type, self.type(found).type
            if not types_are_compat(local, local_proto, self, kernel_proto):
                raise BTFError(
                    f"extern '{name}' (kfunc): the object declares {local.format(local_id)}, "
                    f"the kernel has {self.format(found)}"
                )
        return found

    def attach_btf_id(self, ps: Any) -> dict[str, int]:
        """``attach_btf_id`` for fentry/fexit/lsm/tp_btf/iter programs, named as libbpf does:
        ``tp_btf/x`` is the typedef ``btf_trace_x``, ``lsm/x`` the function ``bpf_lsm_x``,
        ``iter/x`` the function ``bpf_iter_x``, fentry/fexit the function itself."""
        prefix, kind = {
            "TRACE_RAW_TP": ("btf_trace_", Kind.TYPEDEF),
            "LSM_MAC": ("bpf_lsm_", Kind.FUNC),
            "LSM_CGROUP": ("bpf_lsm_", Kind.FUNC),
            "TRACE_ITER": ("bpf_iter_", Kind.FUNC),
        }.get(ps.attach_type or "", ("", Kind.FUNC))
        target = prefix + ps.attach_target
        found = self.find(target, kind)
        if found is None:
            raise BTFError(
                f"program '{ps.name}' (section {ps.section}): the kernel's BTF has no "
                f"{kind.name} '{target}' to attach to"
            )
        return {"attach_btf_id": found}


def _with_triple_underscore(data: bytes) -> set[bytes]:
    """The strings that contain ``___`` (few: flavored names), found without a Python loop
    over every string."""
    out = set()
    pos = data.find(b"___")
    while pos >= 0:
        start = data.rfind(b"\0", 0, pos) + 1
        end = data.index(b"\0", pos)
        out.add(data[start:end])
        pos = data.find(b"___", end)
    return out


def _mapped(path: str) -> Any:
    """The file mapped read-only (MAP_PRIVATE, PROT_READ: what the kernel allows for
    /sys/kernel/btf/vmlinux since 6.16), or its bytes read where it may not be mapped. Only for
    sysfs, whose BTF cannot change under the mapping; the mapping lives as long as what views
    it."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size:
            try:
                return mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
            except (OSError, ValueError):
                pass  # EACCES before 6.16, EINVAL/ENODEV for a file sysfs will not map
        return f.read()


@functools.cache
def _system_btf(path: str) -> KernelBTF:
    return KernelBTF.from_file(path, cache=True, build_id=kernel_build_id())


NOTES = "/sys/kernel/notes"
NT_GNU_BUILD_ID = 3


def kernel_build_id(path: str = NOTES) -> bytes:
    """The running kernel's GNU build ID, from the ELF notes it exports (in the host's byte
    order). Empty when the file cannot be read or has none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return b""
    for owner, ntype, desc in elf_notes(data):
        if ntype == NT_GNU_BUILD_ID and owner == b"GNU":
            return desc
    return b""


@functools.cache
def _module_btf(path: str) -> KernelBTF:
    return KernelBTF.from_file(path, base=KernelBTF.system())
