"""The running kernel's BTF, read lazily: ``/sys/kernel/btf/vmlinux`` and module BTF.

vmlinux BTF is several megabytes and over a hundred thousand types; a CO-RE relocation needs a
handful of them. So this reader makes one pass over the type section that records only where
each record starts (from each record's kind and ``vlen`` the next one's start follows), builds a
name index the first time a name is asked for, and decodes a type only when it is asked for.

Module BTF (``/sys/kernel/btf/<module>``) is *split* BTF on top of vmlinux: its ids and string
offsets continue vmlinux's.
"""

from __future__ import annotations

import functools
import itertools
import operator
import sys
from array import array
from pathlib import Path
from typing import Any, Optional

from pybpf.btf.model import KindSpec, StringTable, TypeQueries, essential_name, parse_header
from pybpf.btf.types import Func, Kind, Type, TypeDecoder, Void
from pybpf.errors import BTFError

SYSFS_BTF = Path("/sys/kernel/btf")

# Words (u32) after the 3-word btf_type header: fixed, and per vlen item, by kind.
_FIXED = {Kind.INT: 1, Kind.ARRAY: 3, Kind.VAR: 1, Kind.DECL_TAG: 1}
_PER_ITEM = {
    Kind.STRUCT: 3,
    Kind.UNION: 3,
    Kind.ENUM: 2,
    Kind.FUNC_PROTO: 2,
    Kind.DATASEC: 3,
    Kind.ENUM64: 3,
}
_FIXED_WORDS = [_FIXED.get(k, 0) for k in range(32)]  # by kind number, for the hot loop
_ITEM_WORDS = [_PER_ITEM.get(k, 0) for k in range(32)]


class KernelBTF(TypeQueries):
    """Kernel BTF with types decoded on demand. ``KernelBTF.system()`` is vmlinux, read once."""

    def __init__(self, data: bytes, name: str = "vmlinux", base: Optional[KernelBTF] = None):
        self.name = name
        self.base = base
        little, type_data, str_data = parse_header(data, base is not None)
        self.strings = StringTable(str_data, base.strings if base is not None else None)
        self.first_id = base.count if base is not None else 1
        self._words = _words(type_data, little)
        self._starts = _record_starts(self._words, name)
        self._decoder = TypeDecoder(type_data, little, self.strings.get)
        self._cache: dict[int, Type] = {}
        self._first_last: Optional[tuple[array, dict[int, int], dict[int, int]]] = None
        self._strings_index: Optional[tuple[dict[bytes, int], dict[str, list[int]]]] = None

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
    def from_file(cls, path: str, base: Optional[KernelBTF] = None) -> KernelBTF:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise BTFError(f"cannot read kernel BTF {path}: {e.strerror}") from None
        return cls(data, Path(path).name, base)

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
        """Ids of this blob's types whose name is at string offset ``off``.

        Two dicts built by C-level zips (first and last type with each name offset) instead of
        a Python loop over every type; the few names shared by several types (a FWD and its
        STRUCT) are completed by a scan between the two.
        """
        if self._first_last is None:
            col = array("I", map(self._words.__getitem__, self._starts))
            first = dict(zip(reversed(col), range(len(col) - 1, -1, -1)))
            last = dict(zip(col, range(len(col))))
            self._first_last = col, first, last
        col, first, last = self._first_last
        lo = first.get(off)
        if lo is None:
            return []
        hi = last[off]
        if lo == hi:
            return [self.first_id + lo]
        # array.index takes no start/stop before Python 3.10: scan the (short) span instead.
        return [self.first_id + i for i in range(lo, hi + 1) if col[i] == off]

    def _string_index(self) -> tuple[dict[bytes, int], dict[str, list[int]]]:
        """String → offset for this blob's table, and essential name → offsets of the
        ``name___flavor`` strings; built with bytes.split and C-level helpers, no decoding."""
        if self._strings_index is None:
            chunks = self.strings.data.split(b"\0")
            # offset of chunk k = its predecessors' lengths + k separators (+ the table's start)
            lengths = itertools.accumulate(map(len, chunks), initial=self.strings.start)
            offsets = list(map(operator.add, lengths, itertools.count()))[: len(chunks)]
            # reversed, so that the first of two equal strings wins
            exact = dict(zip(reversed(chunks), reversed(offsets)))
            flavored: dict[str, list[int]] = {}
            for chunk in _with_triple_underscore(self.strings.data):
                name = chunk.decode()
                ess = essential_name(name)
                if ess != name:
                    flavored.setdefault(ess, []).append(exact[chunk])
            self._strings_index = exact, flavored
        return self._strings_index

    def _own_ids(self, text: str) -> list[int]:
        """This blob's types named ``text``; a split blob's names may live in the base's
        string table, so both offsets are looked up."""
        key = text.encode()
        offsets = [self._string_index()[0].get(key)]
        if isinstance(self.base, KernelBTF):
            offsets.insert(0, self.base._string_index()[0].get(key))
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
        for off in self._string_index()[1].get(ess, ()):
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


def _words(type_data: bytes, little: bool) -> array:
    words = array("I")
    if len(type_data) % 4:
        raise BTFError("kernel BTF type section is not a whole number of 32-bit words")
    words.frombytes(type_data)
    if little != (sys.byteorder == "little"):
        words.byteswap()
    return words


def _record_starts(words: array, name: str) -> array:
    """Word index of every record: the one pass over the type section."""
    starts = array("I")
    append = starts.append
    fixed, per_item = _FIXED_WORDS, _ITEM_WORDS
    i, n = 0, len(words)
    while i < n:
        append(i)
        info = words[i + 1]
        kind = (info >> 24) & 0x1F
        i += 3 + fixed[kind] + per_item[kind] * (info & 0xFFFF)
    if i != n:
        raise BTFError(f"{name} BTF: the last type record runs past the type section")
    return starts


@functools.cache
def _system_btf(path: str) -> KernelBTF:
    return KernelBTF.from_file(path)


@functools.cache
def _module_btf(path: str) -> KernelBTF:
    return KernelBTF.from_file(path, base=KernelBTF.system())
