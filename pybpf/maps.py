"""Maps that live in the kernel: a :class:`Map` owns one map fd.

Keys and values are ``bytes`` in the layout the BPF program uses (host byte order). For per-CPU
maps the kernel copies one value per *possible* CPU, each padded to a multiple of 8 bytes, so a
lookup returns a list with one ``bytes`` per CPU. Maps of maps and program arrays take an fd as
the value on update but answer the inner object's *id* on lookup: that is the kernel's contract.
"""

from __future__ import annotations

import errno
import functools
import os
import sys

from pybpf.errors import SyscallError
from pybpf.sys import mapcmd, objcmd, objinfo
from pybpf.sys.fd import FDObject
from pybpf.sys.objinfo import MapInfo
from pybpf.sys.uapi import BPF_ANY, PERCPU_MAP_TYPES, MapType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Iterator, Optional, Union

    Value = Union[bytes, list[bytes]]

# Map types whose value, as user space writes it, is the fd of another object.
_FD_VALUE_TYPES = frozenset(
    {
        MapType.PROG_ARRAY,
        MapType.PERF_EVENT_ARRAY,
        MapType.ARRAY_OF_MAPS,
        MapType.HASH_OF_MAPS,
        MapType.CGROUP_ARRAY,
    }
)


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs, as the kernel sizes per-CPU values (not the online count)."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def key_of(value: int, size: int) -> bytes:
    """An int as a 4- or 8-byte key/value in host byte order (what a C ``__u32``/``__u64`` is)."""
    if size not in (4, 8):
        raise ValueError(f"an int can stand for a 4- or 8-byte key/value, not {size} bytes")
    return value.to_bytes(size, sys.byteorder, signed=value < 0)


def _round8(n: int) -> int:
    return (n + 7) & ~7


class Map(FDObject):
    """A BPF map owned through its fd. Use as a context manager or call :meth:`close`."""

    def __init__(self, fd: int, info: MapInfo):
        self._fd = fd
        self.name = info.name
        self.type = info.type
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.flags = info.map_flags
        self.id = info.id

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        flags: int = 0,
        name: str = "",
        btf_fd: int = 0,
        btf_key_type_id: int = 0,
        btf_value_type_id: int = 0,
        inner_map_fd: int = 0,
        map_extra: int = 0,
        ifindex: int = 0,
    ) -> Map:
        if map_type == MapType.PERF_EVENT_ARRAY and max_entries == 0:
            # libbpf's convention, which BPF objects rely on: one slot per possible CPU.
            max_entries = possible_cpus()
        fd = mapcmd.map_create(
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags=flags,
            name=name,
            btf_fd=btf_fd,
            btf_key_type_id=btf_key_type_id,
            btf_value_type_id=btf_value_type_id,
            inner_map_fd=inner_map_fd,
            map_extra=map_extra,
            map_ifindex=ifindex,
        )
        m = cls.from_fd(fd)
        # The kernel keeps only 15 sanitised characters; keep the caller's name for messages.
        m.name = name or m.name
        return m

    @classmethod
    def from_fd(cls, fd: int) -> Map:
        """Wrap an fd this object will own (and close); its shape is read from the kernel."""
        try:
            info = objinfo.map_info(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, info)

    @classmethod
    def from_pinned(cls, path: str) -> Map:
        return cls.from_fd(objcmd.obj_get(str(path)))

    @classmethod
    def from_id(cls, map_id: int) -> Map:
        return cls.from_fd(objcmd.map_get_fd_by_id(map_id))

    # --- fd ownership -----------------------------------------------------------------------

    def _describe(self) -> str:
        return f"map '{self.name}'"

    def __repr__(self) -> str:
        kind = self.type.name if isinstance(self.type, MapType) else self.type
        return f"Map({self.name!r}, {kind}, id={self.id}, fd={self._fd})"

    # --- elements ---------------------------------------------------------------------------

    @property
    def per_cpu(self) -> bool:
        return self.type in PERCPU_MAP_TYPES

    def _key(self, key: Union[bytes, int]) -> bytes:
        if isinstance(key, int):
            return key_of(key, self.key_size)
        if len(key) != self.key_size:
            raise ValueError(f"map '{self.name}': key is {len(key)} bytes, not {self.key_size}")
        return bytes(key)

    def _value(self, value: Union[Value, int, Map]) -> bytes:
        if self.type in _FD_VALUE_TYPES and hasattr(value, "fd"):
            value = value.fd  # maps of maps / program arrays store an fd
        if isinstance(value, int):
            return key_of(value, self.value_size)
        if self.per_cpu:
            return self._percpu_value(value)
        if len(value) != self.value_size:
            raise ValueError(
                f"map '{self.name}': value is {len(value)} bytes, not {self.value_size}"
            )
        return bytes(value)

    def _percpu_value(self, value: Value) -> bytes:
        ncpu, slot = possible_cpus(), _round8(self.value_size)
        values = [value] * ncpu if isinstance(value, (bytes, bytearray)) else list(value)
        if len(values) != ncpu:
            raise ValueError(
                f"map '{self.name}': per-CPU value needs {ncpu} entries (possible CPUs), "
                f"got {len(values)}"
            )
        for v in values:
            if len(v) != self.value_size:
                raise ValueError(
                    f"map '{self.name}': value is {len(v)} bytes, not {self.value_size}"
                )
        return b"".join(bytes(v).ljust(slot, b"\0") for v in values)

    def _buffer_size(self) -> int:
        if self.per_cpu:
            return _round8(self.value_size) * possible_cpus()
        return self.value_size

    def _split(self, raw: bytes) -> Value:
        if not self.per_cpu:
            return raw
        slot = _round8(self.value_size)
        return [raw[i : i + self.value_size] for i in range(0, len(raw), slot)]

    def lookup(self, key: Union[bytes, int]) -> Optional[Value]:
        """The value under ``key`` (a list of per-CPU values for per-CPU maps), or None."""
        raw = mapcmd.map_lookup_elem(self.fd, self._key(key), self._buffer_size(), name=self.name)
        return None if raw is None else self._split(raw)

    def __getitem__(self, key: Union[bytes, int]) -> Value:
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def update(
        self, key: Union[bytes, int], value: Union[Value, int, Map], flags: int = BPF_ANY
    ) -> None:
        """Store ``value``. For per-CPU maps give one value per possible CPU (or one ``bytes``
        to store on every CPU). Maps of maps and program arrays take a Map/Program (or fd)."""
        mapcmd.map_update_elem(
            self.fd, self._key(key), self._value(value), flags=flags, name=self.name
        )

    def __setitem__(self, key: Union[bytes, int], value: Union[Value, int, Map]) -> None:
        self.update(key, value)

    def delete(self, key: Union[bytes, int]) -> bool:
        """Delete ``key``; False when there was no such key."""
        return mapcmd.map_delete_elem(self.fd, self._key(key), name=self.name)

    def pop(self, key: Union[bytes, int] = b"") -> Optional[Value]:
        """Look up and delete in one step (a queue's or stack's pop; no key for those)."""
        raw = mapcmd.map_lookup_and_delete_elem(
            self.fd, self._key(key), self._buffer_size(), name=self.name
        )
        return None if raw is None else self._split(raw)

    def keys(self) -> Iterator[bytes]:
        """Keys in the kernel's order. A hash map changed while iterating may restart or skip
        (the kernel continues from the first key when the current one was deleted)."""
        key: Optional[bytes] = None
        while True:
            key = mapcmd.map_get_next_key(self.fd, key, self.key_size, name=self.name)
            if key is None:
                return
            yield key

    __iter__ = keys

    def items(self) -> Iterator[tuple[bytes, Value]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:  # deleted between the two calls
                yield key, value

    def lookup_batch(self, batch_size: int = 256) -> Iterator[tuple[bytes, Value]]:
        """All elements, ``batch_size`` per system call (BPF_MAP_LOOKUP_BATCH).

        A hash map is read a bucket at a time: a bucket holding more elements than the batch
        makes the kernel answer ENOSPC, and the batch then grows until the bucket fits."""
        token: Optional[bytes] = None
        while True:
            try:
                pairs, next_token = mapcmd.map_lookup_batch(
                    self.fd,
                    self.key_size,
                    self._buffer_size(),
                    batch_size,
                    token,
                    name=self.name,
                )
            except SyscallError as e:
                if e.errno != errno.ENOSPC or batch_size >= max(self.max_entries, 1):
                    raise
                batch_size *= 2
                continue
            token = next_token
            for k, v in pairs:
                yield k, self._split(v)
            if token is None:
                return

    # --- whole-map operations ---------------------------------------------------------------

    def freeze(self) -> None:
        """Make the map read-only for user space from now on (programs are not affected)."""
        mapcmd.map_freeze(self.fd, name=self.name)

    def pin(self, path: str) -> None:
        from pybpf.sys.bpffs import ensure_parent

        ensure_parent(str(path))
        objcmd.obj_pin(self.fd, str(path))

    def info(self) -> MapInfo:
        return objinfo.map_info(self.fd)
