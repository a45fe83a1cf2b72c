"""A loaded map's contents by its BTF types, as ``bpftool map dump`` shows them.

:func:`dump_map` reads every element and formats keys and values with
:func:`pybpf.btf.dump.btf_value` (bpftool's rules), giving the same data as the "formatted"
part of ``bpftool map dump -j``: ``{"key": K, "value": V}``, or for per-CPU maps
``{"key": K, "values": [{"cpu": N, "value": V}, ...]}``. Without BTF for a key or value, the
bytes are given as bpftool gives them without BTF: a list of ``"0x.."`` strings.

:func:`format_map` writes a map for a terminal: one line per element, or — when the values are
libbpf-tools histograms (see :func:`pybpf.btf.dump.log2_hist_slots`) — one log2 histogram per
element, drawn as libbpf-tools draw them. :func:`format_bpftool` writes the entries exactly as
``bpftool map dump`` without ``-j`` writes a map with BTF.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Iterator, Optional

from pybpf.btf.dump import Bare, Pointer, ValueReader, format_log2_hist, log2_hist_slots
from pybpf.btf.model import TypeQueries
from pybpf.errors import BTFError


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


def dump_map(
    bpf_map: Any, btf: Optional[TypeQueries], key_type_id: int = 0, value_type_id: int = 0
) -> list[dict]:
    """Every element of a :class:`pybpf.maps.Map`, formatted by the BTF types given."""
    reader = ValueReader(btf) if btf is not None else None
    out = []
    for key, value in _elements(bpf_map):
        entry: dict = {"key": _fmt(reader, key_type_id, key)}
        if isinstance(value, list):
            entry["values"] = [
                {"cpu": cpu, "value": _fmt(reader, value_type_id, v)} for cpu, v in enumerate(value)
            ]
        else:
            entry["value"] = _fmt(reader, value_type_id, value)
        out.append(entry)
    return out


def _elements(bpf_map: Any) -> Iterator[tuple[bytes, Any]]:
    # Array maps hold every index (zeros included), hashes only what was stored, as bpftool shows.
    yield from bpf_map.items()


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


def _is_zero(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_zero(v) for v in value.values())
    if isinstance(value, list):
        return all(_is_zero(v) for v in value)
    return value in (0, "", False, "0x0", "0x00")


def format_map(
    name: str,
    kind: str,
    entries: list[dict],
    btf: Optional[TypeQueries],
    value_type_id: int = 0,
    hist_label: str = "value",
) -> list[str]:
    """Lines for a terminal: a heading, then each element (``key=... value...``), or each
    element's log2 histogram. Elements of array maps whose value is all zeros are counted, not
    listed (an array map holds every index)."""
    slots = log2_hist_slots(btf, value_type_id) if btf is not None and value_type_id else None
    count = len(entries)
    lines = [f"map {name} ({kind}, {count} {'entry' if count == 1 else 'entries'}):"]
    zero = 0
    for e in entries:
        # per-CPU values are shown summed (numbers, per field)
        value = _sum_cpus([v["value"] for v in e["values"]]) if "values" in e else e["value"]
        datasec = _is_datasec(value)
        value = _flatten_datasec(value)
        if kind.endswith("array") and _is_zero(value) and not datasec:
            zero += 1
            continue
        if slots is not None:
            lines.extend(_hist_lines(e["key"], value, slots, hist_label))
        else:
            lines.append(f"  key={_scalar(_key_text(e['key']))} {_value_text(value)}")
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
