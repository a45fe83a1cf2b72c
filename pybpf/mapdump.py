"""A loaded map's contents by its BTF types, as ``bpftool map dump`` shows them.

:func:`read_elements` reads every element's bytes; :func:`format_entries` formats keys and values
with :func:`pybpf.btf.dump.btf_value` (bpftool's rules), giving the same data as the "formatted"
part of ``bpftool map dump -j``: ``{"key": K, "value": V}``, or for per-CPU maps
``{"key": K, "values": [{"cpu": N, "value": V}, ...]}``. Without BTF for a key or value, the
bytes are given as bpftool gives them without BTF: a list of ``"0x.."`` strings.
:func:`dump_map` does both.

Some kinds of map cannot be listed from user space at all (a queue, a bloom filter, the
storage kept on each task or socket...): :func:`not_listable` says why, and reading one is an
error that says it.

:func:`format_map` writes a map for a terminal: one line per element, or — when the values are
libbpf-tools histograms (see :func:`pybpf.btf.dump.log2_hist_slots`) — one log2 histogram per
element, drawn as libbpf-tools draw them. :func:`bpftool_text` writes a map exactly as
``bpftool map dump`` without ``-j`` does: by its BTF, or in hex for a map the kernel holds
without BTF value type (maps of maps, among others).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

from pybpf.btf.dump import Bare, Pointer, ValueReader, format_log2_hist, log2_hist_slots
from pybpf.btf.model import TypeQueries
from pybpf.errors import BPFError, BTFError, SyscallError

# Map kinds whose elements user space cannot list, and why: the kernel has no "next key" for
# them, or gives no value back for a key (their elements are other objects, stored by fd).
NOT_LISTABLE = {
    "QUEUE": "a queue has no keys; its elements can only be taken out in order "
    "(Map.pop, bpftool map pop) or the next one read (bpftool map peek)",
    "STACK": "a stack has no keys; its elements can only be taken out in order "
    "(Map.pop, bpftool map pop) or the top one read (bpftool map peek)",
    "BLOOM_FILTER": "a bloom filter keeps no elements, only the bits their hashes set; it can "
    "only be asked whether it may hold a value",
    "TASK_STORAGE": "task storage is kept on each task and looked up by a pidfd of the task",
    "SK_STORAGE": "socket storage is kept on each socket and looked up by the socket's fd",
    "INODE_STORAGE": "inode storage is kept on each inode and looked up by an fd of the file",
    "CGRP_STORAGE": "cgroup storage is kept on each cgroup and looked up by an fd of its directory",
    "CGROUP_ARRAY": "its elements are cgroups, which the kernel does not give back",
    "XSKMAP": "its elements are AF_XDP sockets, which the kernel does not give back",
    "PERF_EVENT_ARRAY": "its elements are perf events, which the kernel does not give back "
    "(pybpf.perfbuf.PerfBuffer reads their samples)",
    "RINGBUF": "a ring buffer holds records to read in order (pybpf.ringbuf.RingBuffer)",
    "USER_RINGBUF": "a user ring buffer holds records user space writes for the program",
    "ARENA": "an arena is memory shared with user space, read by mapping it",
}

# Values that are the id of another object (user space stores an fd, reads back the id).
_ID_VALUES = {"array_of_maps": "map_id", "hash_of_maps": "map_id", "prog_array": "prog_id"}


def map_kind(bpf_map: Any) -> str:
    """The map's type as the kernel names it (``HASH``, ``ARRAY_OF_MAPS``...)."""
    return getattr(bpf_map.type, "name", None) or f"type {bpf_map.type}"


def not_listable(bpf_map: Any) -> Optional[str]:
    """Why user space cannot list this map's elements; None when it can."""
    return NOT_LISTABLE.get(map_kind(bpf_map))


def raw_bytes(data: bytes) -> list[str]:
    """bytes as bpftool shows them with no BTF: ``["0x01", "0x00", ...]``."""
    return [f"0x{b:02x}" for b in data]


def _fmt(reader: Optional[ValueReader], type_id: int, data: bytes) -> Any:
    if reader is None or not type_id:
        return raw_bytes(data)
    try:
        return reader(type_id, data)
    except BTFError:
        return raw_bytes(data)


def read_elements(bpf_map: Any) -> list[tuple[bytes, Any]]:
    """Every element of a :class:`pybpf.maps.Map` as bytes, in the kernel's order: (key,
    value), the value a list of each CPU's for per-CPU maps. Array maps hold every index (zeros
    included), hashes only what was stored, as bpftool shows them. BPFError for a map of a kind
    user space cannot list (:data:`NOT_LISTABLE`)."""
    why = not_listable(bpf_map)
    if why is not None:
        raise BPFError(
            f"cannot list the elements of map '{bpf_map.name}' ({map_kind(bpf_map)}): {why}"
        )
    return list(bpf_map.items())


def format_entries(
    elements: list[tuple[bytes, Any]],
    btf: Optional[TypeQueries],
    key_type_id: int = 0,
    value_type_id: int = 0,
) -> list[dict]:
    """Elements of :func:`read_elements`, formatted by the BTF types given."""
    reader = ValueReader(btf) if btf is not None else None
    out = []
    for key, value in elements:
        entry: dict = {"key": _fmt(reader, key_type_id, key)}
        if isinstance(value, list):
            entry["values"] = [
                {"cpu": cpu, "value": _fmt(reader, value_type_id, v)} for cpu, v in enumerate(value)
            ]
        else:
            entry["value"] = _fmt(reader, value_type_id, value)
        out.append(entry)
    return out


def dump_map(
    bpf_map: Any, btf: Optional[TypeQueries], key_type_id: int = 0, value_type_id: int = 0
) -> list[dict]:
    """Every element of a :class:`pybpf.maps.Map`, formatted by the BTF types given."""
    return format_entries(read_elements(bpf_map), btf, key_type_id, value_type_id)


def _scalar(value: Any) -> str:
    """A formatted value in a ``name=value`` line: plain when unambiguous, else JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        if value and value.isprintable() and not any(c in value for c in ' ="'):
            return value
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def fields_line(value: Any) -> str:
    """``a=1 b=bash c={"x":1}`` for a struct's value, the value itself for anything else."""
    if isinstance(value, dict):
        return " ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    return _scalar(value)


def _all_zero(value: Any) -> bool:
    """Whether a value's bytes (every CPU's) are all zero: not its formatted value, where an
    enum's 0 reads as its name."""
    if isinstance(value, list):
        return not any(any(v) for v in value)
    return not any(value)


def format_map(
    name: str,
    kind: str,
    elements: list[tuple[bytes, Any]],
    btf: Optional[TypeQueries],
    key_type_id: int = 0,
    value_type_id: int = 0,
    hist_label: str = "value",
) -> list[str]:
    """Lines for a terminal from the elements of :func:`read_elements`: a heading, then each
    element (``key=... value...``), or each element's log2 histogram. Elements of array maps
    whose value is all zero bytes are counted, not listed (an array map holds every index). The
    values of maps of maps and program arrays are ids: ``key=0 map_id=42``."""
    slots = log2_hist_slots(btf, value_type_id) if btf is not None and value_type_id else None
    entries = format_entries(elements, btf, key_type_id, value_type_id)
    count = len(entries)
    lines = [f"map {name} ({kind}, {count} {'entry' if count == 1 else 'entries'}):"]
    id_name = _ID_VALUES.get(kind)
    zero = 0
    for (_, raw), e in zip(elements, entries):
        # per-CPU values are shown summed (numbers, per field)
        value = _sum_cpus([v["value"] for v in e["values"]]) if "values" in e else e["value"]
        datasec = _is_datasec(value)
        value = _flatten_datasec(value)
        key = _scalar(_key_text(e["key"]))
        if kind.endswith("array") and not datasec and _all_zero(raw):
            zero += 1
        elif id_name is not None and isinstance(raw, bytes) and len(raw) == 4:
            lines.append(f"  key={key} {id_name}={int.from_bytes(raw, sys.byteorder)}")
        elif slots is not None:
            lines.extend(_hist_lines(e["key"], value, slots, hist_label))
        else:
            lines.append(f"  key={key} {_value_text(value)}")
    if zero:
        lines.append(f"  ({zero} element{'s' if zero > 1 else ''} of zeros not shown)")
    return lines


def _is_datasec(value: Any) -> bool:
    """A data section's value reads ``{".bss": [{"var": v}, ...]}`` (bpftool's shape)."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)).startswith(".")
        and isinstance(next(iter(value.values())), list)
    )


def _flatten_datasec(value: Any) -> Any:
    """``{".bss": [{"a": 1}, {"b": 2}]}`` as ``{"a": 1, "b": 2}``: a section's variables."""
    if not _is_datasec(value):
        return value
    out: dict = {}
    for var in next(iter(value.values())):
        if isinstance(var, dict):
            out.update(var)
    return out


def _key_text(key: Any) -> Any:
    """A key without BTF (data sections' 4-byte index) reads better as the number it is."""
    if isinstance(key, list) and len(key) in (4, 8) and all(isinstance(b, str) for b in key):
        return int.from_bytes(bytes(int(b, 16) for b in key), sys.byteorder)
    return key


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return fields_line(value)
    return f"value={_scalar(value)}"


def _sum_cpus(values: list[Any]) -> Any:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return sum(values)
    if all(isinstance(v, dict) for v in values) and values:
        return {k: _sum_cpus([v[k] for v in values]) for k in values[0]}
    if all(isinstance(v, list) for v in values) and values:
        return [_sum_cpus(list(col)) for col in zip(*values)]
    return values


def _hist_lines(key: Any, value: Any, slots: str, label: str) -> list[str]:
    counts = value[slots] if slots else value
    others = {k: v for k, v in value.items() if k != slots} if slots else {}
    head = f"key = {_scalar(key)}"
    if others:
        head += "  " + " ".join(f"{k} = {_scalar(v)}" for k, v in others.items())
    return ["", head, *format_log2_hist([int(c) for c in counts], label)]


# --- bpftool's plain text -------------------------------------------------------------------


class _PrettyWriter:
    """bpftool's json_writer in pretty mode (json_writer.c), whose plain-text map dumps are
    JSON-like: a member starts a new line indented four spaces a level, array elements follow
    each other on one line, a closing bracket goes on its own line when something came
    before it."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.depth = 0
        self.sep = ""

    def _eor(self) -> None:  # end of record: the separator, if a value came before
        self.out.append(self.sep)
        self.sep = ","

    def _eol(self) -> None:
        self.out.append("\n" + "    " * self.depth)

    def begin(self, char: str) -> None:
        self._eor()
        self.out.append(char)
        self.depth += 1
        self.sep = ""

    def end(self, char: str) -> None:
        self.depth -= 1
        if self.sep:
            self._eol()
        self.out.append(char)
        self.sep = ","

    def name(self, name: str) -> None:
        self._eor()
        self._eol()
        self.sep = ""
        self.out.append(json.dumps(name, ensure_ascii=False) + ": ")

    def value(self, value: Any) -> None:
        if isinstance(value, dict):
            self.begin("{")
            for k, v in value.items():
                self.name(k)
                self.value(v)
            self.end("}")
        elif isinstance(value, list):
            self.begin("[")
            for v in value:
                self.value(v)
            self.end("]")
        else:
            self._eor()
            self.out.append(_plain_scalar(value))


def _plain_scalar(value: Any) -> str:
    """A scalar as btf_dumper.c prints it in plain text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Pointer):
        return f"{value:#x}" if value else "(nil)"  # printf's %p
    if isinstance(value, Bare):
        return str(value)
    if isinstance(value, str) and len(value) == 1 and not value.isprintable():
        return f"{ord(value):#x}"  # an unprintable char: 0x%hhx
    return json.dumps(value, ensure_ascii=False)


def format_bpftool(entries: list[dict]) -> str:
    """The entries of :func:`dump_map` as ``bpftool map dump`` prints them without ``-j``
    (for a map with BTF): the same text, byte for byte."""
    w = _PrettyWriter()
    w.value(entries)
    return "".join(w.out) + "\n"


def bpftool_text(
    bpf_map: Any, btf: Optional[TypeQueries], key_type_id: int = 0, value_type_id: int = 0
) -> str:
    """The map as ``bpftool map dump`` prints it without ``-j``, byte for byte. bpftool takes the
    types from the map's BTF in the kernel, not from the object: a map the kernel holds without
    a BTF value type (maps of maps, device and socket maps, every map of an object without BTF)
    is printed in hex, ``key: 00 00 00 00  value: 2a 00 00 00`` and ``Found N elements``;
    with BTF, a key without a BTF type is left out, as for data sections."""
    info = bpf_map.info()
    if info.btf_value_type_id or map_kind(bpf_map) == "STRUCT_OPS":  # struct_ops: vmlinux's
        entries = dump_map(bpf_map, btf, key_type_id, value_type_id)
        if not info.btf_key_type_id:
            entries = [{k: v for k, v in e.items() if k != "key"} for e in entries]
        return format_bpftool(entries)
    if not_listable(bpf_map) is not None:
        read_elements(bpf_map)  # the error that says why
    text, found = _hex_elements(bpf_map)
    return f"{text}Found {found} element{'' if found == 1 else 's'}\n"


def _hex_elements(bpf_map: Any) -> tuple[str, int]:
    """bpftool's lines for the elements of a map without BTF, and how many it counts: an
    element it cannot read has a line saying why (``<no entry>``: none under that key), and is
    not counted; maps of maps and program arrays leave their empty slots out."""
    out: list[str] = []
    found = 0
    skip_empty = map_kind(bpf_map) in ("ARRAY_OF_MAPS", "HASH_OF_MAPS", "PROG_ARRAY")
    for key in bpf_map:
        try:
            value = bpf_map.lookup(key)
        except SyscallError as e:
            out.append(_hex_error(key, os.strerror(e.errno)))
            continue
        if value is None:
            if not skip_empty:
                out.append(_hex_error(key, "<no entry>"))
            continue
        found += 1
        out.append(_hex_entry(key, value, bpf_map.value_size))
    return "".join(out), found


def _hex(data: bytes) -> str:
    """Bytes as bpftool's fprint_hex writes them: 16 a line, two spaces after the eighth."""
    out = []
    for i, b in enumerate(data):
        out.append(("\n" if i % 16 == 0 else "  " if i % 8 == 0 else " ") if i else "")
        out.append(f"{b:02x}")
    return "".join(out)


def _hex_entry(key: bytes, value: Any, value_size: int) -> str:
    if isinstance(value, list):  # per CPU: the key, then each CPU's value on a line of its own
        head = f"key:\n{_hex(key)}\n" if key else ""
        sep = "\n" if value_size > 16 else " "
        return head + "".join(
            f"value (CPU {cpu:02d}):{sep}{_hex(v)}\n" for cpu, v in enumerate(value)
        )
    return _hex_pair(key, value_size, _hex(value) if value_size else None)


def _hex_error(key: bytes, message: str) -> str:
    return _hex_pair(key, len(message), message)


def _hex_pair(key: bytes, value_size: int, value: Optional[str]) -> str:
    """``key: .. value: ..`` on one line when both are short, each name on a line of its own
    when either is longer than 16 bytes."""
    break_names = len(key) > 16 or value_size > 16
    one_line = len(key) + value_size <= 24 and not break_names
    sep = "\n" if break_names else " "
    out = ""
    if key:
        out = f"key:{sep}{_hex(key)}" + ("  " if one_line else "\n")
    if value is not None:
        out += f"value:{sep}{value}"
    return out + "\n"
