"""The maps stage of loading (``pybpf.loader``, step 2 and 4): every map of an object
created, or reused (one given by the caller, or pinned by name under ``pin_root``), the
data-section maps filled with their initial bytes and ``.rodata`` frozen; and, once the programs
are loaded, the slots the object initialised (``.values = {...}``) filled.
"""

from __future__ import annotations

import errno
import os
import sys

from pybpf import compat
from pybpf.compat import say
from pybpf.errors import BPFError, RelocationError, SyscallError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional

    from pybpf.loader import LoadedObject
    from pybpf.object.spec import MapSpec, ObjectSpec

    Log = Optional[Callable[[str], None]]

PIN_BY_NAME = 1  # __uint(pinning, LIBBPF_PIN_BY_NAME)

# Map types whose key/value types the kernel does not accept as BTF (libbpf clears them too).
_NO_BTF_KV = {
    "PERF_EVENT_ARRAY",
    "CGROUP_ARRAY",
    "STACK_TRACE",
    "ARRAY_OF_MAPS",
    "HASH_OF_MAPS",
    "DEVMAP",
    "DEVMAP_HASH",
    "CPUMAP",
    "XSKMAP",
    "SOCKMAP",
    "SOCKHASH",
    "QUEUE",
    "STACK",
    "ARENA",
    "RINGBUF",
    "USER_RINGBUF",
}


# --- maps ----------------------------------------------------------------------------------


def create_maps(obj: LoadedObject, log: Log, pin_root: str, given: Mapping[str, Any]) -> None:
    for ms in obj.spec.maps.values():
        if ms.name in given:
            obj.maps[ms.name] = _reuse(ms, given[ms.name])
            say(log, f"map '{ms.name}': using the map given for it (id {obj.maps[ms.name].id})")
            continue
        if ms.pinning == PIN_BY_NAME:
            reused = _open_pinned(ms, pin_root)
            if reused is not None:
                obj.maps[ms.name] = reused
                say(log, f"map '{ms.name}': reusing the map pinned at {pin_root}/{ms.name}")
                continue
        lacking = compat.global_data_ok(ms, log) if ms.is_data_section else None
        if lacking is not None:
            obj.skipped_maps[ms.name] = lacking
            continue
        m = _create_map(obj, compat.map_for_kernel(ms, log))
        obj.maps[ms.name] = m
        if ms.is_data_section:
            m.update(b"\0\0\0\0", _initial_data(obj.spec, ms))
            if ms.frozen_after_fill:
                m.freeze()
        say(log, f"map '{ms.name}': created {_type_name(ms)} id {m.id} fd {m.fd}")
        if ms.pinning == PIN_BY_NAME:
            from pybpf.sys import bpffs

            pinned, dirs = bpffs.pin_all(pin_root, [(f"map '{ms.name}'", m.fd, ms.name)])
            obj.pinned += pinned
            obj.pin_dirs += dirs
            say(log, f"map '{ms.name}': pinned at {pinned[0]}")


def _open_pinned(ms: MapSpec, pin_root: str):
    """A map pinned by name earlier (by this loader, libbpf or bpftool) is shared, as libbpf
    does — if it has the shape the object asks for; otherwise that is an error, not a guess."""
    from pybpf.maps import Map

    path = os.path.join(pin_root, ms.name)
    if not os.path.exists(path):
        return None
    m = Map.from_pinned(path)
    return _same_shape(ms, m, f"the map pinned at {path}", "pinned")


def _reuse(ms: MapSpec, given: Any):
    """A map the caller made for ``ms`` (``load(maps=...)``), checked; the object's own fd."""
    from pybpf.maps import Map

    try:
        m = Map.from_fd(os.dup(given.fd))
    except OSError as e:
        raise BPFError(f"map '{ms.name}': the map given for it: {e.strerror}") from None
    return _same_shape(ms, m, "the map given for it", "given")


def _same_shape(ms: MapSpec, m: Any, what: str, how: str):
    """``m`` if it has the shape ``ms`` asks for, as libbpf's map_is_reuse_compat judges it
    (the size the loader gives a perf event array or ring buffer is the one asked for); else it
    is closed and that is an error."""
    from pybpf.sys.uapi import MapFlags, MapType

    want = (ms.map_type, ms.key_size, ms.value_size, _max_entries(ms, _type_name(ms)), ms.flags)
    have_flags = m.flags
    if m.type in (MapType.DEVMAP, MapType.DEVMAP_HASH):
        # The kernel adds BPF_F_RDONLY_PROG to every devmap it creates: not a difference.
        have_flags &= ~MapFlags.RDONLY_PROG
    have = (m.type, m.key_size, m.value_size, m.max_entries, int(have_flags))
    extra = m.info().map_extra
    if want != have or extra != ms.map_extra:
        m.close()
        raise BPFError(
            f"map '{ms.name}': {what} does not match the object's definition "
            f"(type, key, value, entries, flags, extra: {how} {(*have, extra)}, "
            f"object {(*want, ms.map_extra)})"
        )
    return m


def _initial_data(spec: ObjectSpec, ms: MapSpec) -> bytes:
    """A data map's value: the section's bytes, or for .kconfig the running kernel's values."""
    if ms.origin != ".kconfig":
        return spec.section_data(ms.origin)
    from pybpf.btf.kconfig import kconfig_map_data

    return kconfig_map_data(spec.btf, spec.weak_externs)


def _type_name(ms: MapSpec) -> str:
    from pybpf.sys.uapi import MapType

    try:
        return MapType(ms.map_type).name
    except ValueError:
        return f"type {ms.map_type}"


def _create_map(obj: LoadedObject, ms: MapSpec, inner: bool = False):
    from pybpf.maps import Map

    kernel_name = obj_map_name(ms)
    type_name = _type_name(ms)
    max_entries = _max_entries(ms, type_name)
    use_btf = obj.btf_fd is not None and type_name not in _NO_BTF_KV and not inner
    inner_map = _create_map(obj, ms.inner, inner=True) if ms.inner is not None else None
    kwargs = dict(
        map_type=ms.map_type,
        key_size=ms.key_size,
        value_size=ms.value_size,
        max_entries=max_entries,
        flags=ms.flags,
        name=kernel_name,
        inner_map_fd=inner_map.fd if inner_map is not None else 0,
        map_extra=ms.map_extra,
    )
    try:
        if use_btf and (ms.key_type_id or ms.value_type_id):
            try:
                return Map.create(
                    **kwargs,
                    btf_fd=obj.btf_fd,
                    btf_key_type_id=ms.key_type_id,
                    btf_value_type_id=ms.value_type_id,
                )
            except SyscallError as e:
                # libbpf retries without BTF: older kernels reject some key/value types.
                obj.warnings.append(f"map '{ms.name}': created without BTF ({e})")
        return Map.create(**kwargs)
    except SyscallError as e:
        compat.explain_map_refusal(ms, type_name, e)
        detail = e.detail
        if e.errno == errno.EINVAL and detail is None:
            detail = _left_to_the_tool(ms, type_name, max_entries)
        raise SyscallError(
            f"cannot create map '{ms.name}' ({type_name})", e.errno, detail
        ) from None
    finally:
        if inner_map is not None:
            inner_map.close()  # the outer map holds its own reference to the template


# Types whose value size is 0 by nature (the size of a ring is its max_entries).
_NO_VALUE = {"RINGBUF", "USER_RINGBUF", "ARENA"}


def _left_to_the_tool(ms: MapSpec, type_name: str, max_entries: int) -> Optional[str]:
    """An EINVAL for a map the object leaves a size of at 0: libbpf-tools' stack-trace maps
    (``profile``, ``offcputime``) get their value size and max_entries from the tool's own C
    code before load (``bpf_map__set_value_size``, ``bpf_map__set_max_entries``)."""
    zero = [
        field
        for field, value in (("value_size", ms.value_size), ("max_entries", max_entries))
        if value == 0 and not (field == "value_size" and type_name in _NO_VALUE)
    ]
    if not zero:
        return None
    sets = " and ".join(f"{f}" for f in zero)
    return (
        f"its {sets} {'is' if len(zero) == 1 else 'are'} 0 in the object, for the tool's own "
        f"loader to set before load; give {'it' if len(zero) == 1 else 'them'} with "
        + " ".join(f"--map {ms.name}.{f}=N" for f in zero)
        + " (ObjectSpec.set_map_size in Python)"
    )


def obj_map_name(ms: MapSpec) -> str:
    from pybpf.object.mapspecs import kernel_name

    return ms.name if ms.is_data_section else kernel_name(ms.name)


def _max_entries(ms: MapSpec, type_name: str) -> int:
    """Sizes the kernel wants that objects often leave to the loader."""
    if type_name == "PERF_EVENT_ARRAY" and ms.max_entries == 0:
        from pybpf.maps import possible_cpus

        return possible_cpus()  # one slot per CPU
    if type_name in ("RINGBUF", "USER_RINGBUF"):
        # a power-of-two multiple of the page size
        page = os.sysconf("SC_PAGE_SIZE")
        size = max(ms.max_entries, page)
        return 1 << (size - 1).bit_length()
    return ms.max_entries


def fill_slots(obj: LoadedObject, log: Log) -> None:
    """``.values = { [i] = &x }``: prog arrays get program fds, map-in-maps get map fds."""
    for ms in obj.spec.maps.values():
        for slot, target in ms.init_slots:
            src = obj.programs.get(target) or obj.maps.get(target)
            if src is None:
                if target in obj.spec.programs:
                    continue  # a program the caller chose not to load
                raise RelocationError(f"map '{ms.name}': slot {slot} refers to unknown '{target}'")
            m = obj.maps[ms.name]
            m.update(slot.to_bytes(4, sys.byteorder), src.fd.to_bytes(4, sys.byteorder))
            say(log, f"map '{ms.name}': slot {slot} = {target}")
