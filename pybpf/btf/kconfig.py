"""Values for ``.kconfig`` externs: ``extern int LINUX_KERNEL_VERSION __kconfig;``.

A BPF object may read the running kernel's configuration and version as if they were constants:
each such extern lives in a ``.kconfig`` DATASEC, and the loader fills a read-only array map with
their values (laid out by ``BTF.with_datasec_fixup``) before the programs load. The extern's BTF
type decides the encoding, the way libbpf decides it:

- ``bool``: ``y`` → 1, ``n`` → 0 (``m`` is an error);
- ``enum libbpf_tristate``: ``n`` → 0, ``y`` → 1, ``m`` → 2;
- ``char`` (any 1-byte integer): the letter itself (``'y'``, ``'n'``, ``'m'``);
- an integer of 1, 2, 4 or 8 bytes: a number (``CONFIG_HZ=250``, ``0x10``), range-checked;
- ``char[N]``: a quoted string (``CONFIG_LOCALVERSION="-fc"``), NUL-terminated, cut to N-1.

Values come from ``/proc/config.gz`` or ``/boot/config-$(uname -r)``. A ``CONFIG_*`` that the
kernel does not have is 0 if the extern is ``__weak``, otherwise an error. ``LINUX_*`` names are
computed: ``LINUX_KERNEL_VERSION`` from ``uname -r`` as ``KERNEL_VERSION(a, b, min(c, 255))``.
"""

from __future__ import annotations

import gzip
import platform
import re
import sys
from pathlib import Path
from typing import Collection, Mapping, Optional

from pybpf.btf.model import Array, Datasec, Enum, Int, IntEncoding, TypeQueries, Var
from pybpf.errors import BPFError

CONFIG_PATHS = ("/proc/config.gz", "/boot/config-{release}")
TRISTATE = {"n": 0, "y": 1, "m": 2}  # enum libbpf_tristate: TRI_NO, TRI_YES, TRI_MODULE


class KconfigError(BPFError):
    """An extern's value is missing, or does not fit its declared type."""


def kernel_version(release: Optional[str] = None) -> int:
    """``KERNEL_VERSION(major, minor, patch)`` of ``uname -r`` (patch capped at 255), as libbpf
    computes it; Ubuntu's /proc/version_signature is preferred where it exists."""
    sig = Path("/proc/version_signature")
    if release is None and sig.exists():
        parts = sig.read_text().split()
        if len(parts) >= 3:
            release = parts[2]
    release = release or platform.release()
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", release)  # sscanf("%u.%u.%u"), as libbpf reads it
    if m is None:
        return 0
    a, b, c = (int(x) for x in m.groups())
    return (a << 16) + (b << 8) + min(c, 255)


def read_config(path: Optional[str] = None) -> dict[str, str]:
    """``CONFIG_*`` → raw value text from the kernel's config (``# ... is not set`` is absent)."""
    candidates = [path] if path else [p.format(release=platform.release()) for p in CONFIG_PATHS]
    for p in candidates:
        try:
            raw = Path(p).read_bytes()
        except OSError:
            continue
        text = (gzip.decompress(raw) if p.endswith(".gz") else raw).decode(errors="replace")
        out = {}
        for line in text.splitlines():
            if line.startswith("CONFIG_") and "=" in line:
                name, _, value = line.partition("=")
                out[name] = value.strip()
        return out
    raise KconfigError(
        "cannot read the kernel configuration: none of " + ", ".join(candidates) + " exists"
    )


def _linux_value(name: str, release: Optional[str]) -> Optional[str]:
    """The ``LINUX_*`` externs libbpf provides."""
    if name == "LINUX_KERNEL_VERSION":
        return str(kernel_version(release))
    if name == "LINUX_HAS_BPF_COOKIE":
        return "y" if kernel_version(release) >= (5 << 16) + (15 << 8) else "n"
    if name == "LINUX_HAS_SYSCALL_WRAPPER":
        return "y" if _has_syscall_wrapper() else "n"
    return None


def _has_syscall_wrapper() -> bool:
    """Syscalls are wrapped (``__x64_sys_bpf``) on x86-64, arm64, s390... since 4.17."""
    prefix = {"x86_64": "__x64_", "aarch64": "__arm64_", "s390x": "__s390x_"}.get(
        platform.machine(), ""
    )
    try:
        with open("/proc/kallsyms") as f:
            return (
                any(line.rstrip().endswith(f" {prefix}sys_bpf") for line in f) if prefix else False
            )
    except OSError:
        return False


def encode_value(btf: TypeQueries, name: str, type_id: int, text: str) -> bytes:
    """``text`` (``y``/``n``/``m``, a number, a quoted string) as the extern's type stores it."""
    tid = btf.resolve(type_id)
    t = btf.type(tid)
    size = btf.sizeof(tid)
    order = sys.byteorder
    if text in TRISTATE:
        if isinstance(t, Int) and t.encoding & IntEncoding.BOOL:
            if text == "m":
                raise KconfigError(f"extern '{name}' is a bool, and the kernel says 'm'")
            return bytes([text == "y"])
        if isinstance(t, Enum) and t.name == "libbpf_tristate":
            return TRISTATE[text].to_bytes(size, order)
        if isinstance(t, Int) and t.size == 1:  # any 1-byte integer is a "char" to libbpf
            return text.encode()
        raise KconfigError(f"extern '{name}' ({btf.format(type_id)}) cannot hold '{text}'")
    if text.startswith('"'):
        elem = btf.type(btf.resolve(t.type)) if isinstance(t, Array) else None
        if not (isinstance(elem, Int) and elem.size == 1):
            raise KconfigError(f"extern '{name}' ({btf.format(type_id)}) cannot hold a string")
        value = text.strip('"').encode()[: size - 1]
        return value + bytes(size - len(value))
    try:
        number = int(text, 0)
    except ValueError:
        raise KconfigError(f"extern '{name}': cannot read '{text}' as a number") from None
    if not isinstance(t, (Int, Enum)):
        raise KconfigError(f"extern '{name}' ({btf.format(type_id)}) cannot hold a number")
    signed = isinstance(t, Int) and bool(t.encoding & IntEncoding.SIGNED)
    if isinstance(t, Int) and t.encoding & IntEncoding.BOOL and number not in (0, 1):
        raise KconfigError(f"extern '{name}' is a bool, and the kernel says {number}")
    try:
        return number.to_bytes(size, order, signed=signed)
    except OverflowError:
        raise KconfigError(
            f"extern '{name}': {number} does not fit {btf.format(type_id)} ({size} bytes)"
        ) from None


def kconfig_values(
    btf: TypeQueries,
    externs: Mapping[str, int],
    weak: Collection[str] = (),
    config: Optional[Mapping[str, str]] = None,
    release: Optional[str] = None,
) -> dict[str, bytes]:
    """Encoded value of each extern (name → its VAR's type id); ``weak`` ones may be missing.

    ``config`` defaults to the running kernel's (read only when a ``CONFIG_*`` is asked for)."""
    out = {}
    for name, type_id in externs.items():
        text = _linux_value(name, release) if name.startswith("LINUX_") else None
        if text is None and name.startswith("LINUX_"):
            raise KconfigError(f"extern '{name}': not a LINUX_* value pybpf knows")
        if text is None:
            if config is None:
                config = read_config()
            text = config.get(name)
        if text is None:
            if name not in weak:
                raise KconfigError(
                    f"extern '{name}': the kernel's config has no value for it "
                    "(declare it __weak to read 0)"
                )
            out[name] = bytes(btf.sizeof(type_id))
            continue
        out[name] = encode_value(btf, name, type_id, text)
    return out


def kconfig_map_data(
    btf: TypeQueries,
    weak: Collection[str] = (),
    config: Optional[Mapping[str, str]] = None,
    release: Optional[str] = None,
) -> bytes:
    """The ``.kconfig`` map's value: every extern at its offset in the (fixed-up) DATASEC."""
    sec_id = btf.find(".kconfig", Datasec)
    if sec_id is None:
        return b""
    sec = btf.type(sec_id)
    placed = {}
    for v in sec.vars:
        var = btf.type(v.type_id)
        if isinstance(var, Var):
            placed[var.name] = (v.offset, var.type)
    values = kconfig_values(btf, {n: t for n, (_, t) in placed.items()}, weak, config, release)
    data = bytearray(sec.size)
    for name, (offset, _) in placed.items():
        data[offset : offset + len(values[name])] = values[name]
    return bytes(data)


__all__ = [
    "KconfigError",
    "encode_value",
    "kconfig_map_data",
    "kconfig_values",
    "kernel_version",
    "read_config",
]
