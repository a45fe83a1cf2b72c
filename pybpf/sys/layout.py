"""Flat C structs declared the way construct declares them, packed by one ``struct.Struct``.

The kernel's fixed-size structs (``union bpf_attr``'s members, ``bpf_prog_info``, ``nlmsghdr``,
``ifinfomsg``...) are rows of integers, padding, names and byte arrays. Declared with construct,
they read like the C header; but importing construct costs a short-lived process like ``pybpf
load`` more than the work it does, and each build or parse walks the declaration in Python. So
they are declared here with the same spelling (``"map_fd" / U32``, ``Padding(4)``,
``Default(Int8un, AF_UNSPEC)``) and packed by one precompiled ``struct.Struct`` a layout.

``Struct.construct()`` gives the construct declaration of the same layout: tests prove that both
build and parse the same bytes (tests/test_syscall.py), so construct remains the reference.
"""

from __future__ import annotations

import struct as _struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Optional

_REQUIRED = object()


class Field:
    """One member: a ``struct`` format code, its size, its default (``_REQUIRED`` if none)."""

    def __init__(self, code: str, size: int, kind: str, default: Any, arg: Any = None):
        self.code, self.size, self.kind, self.default, self.arg = code, size, kind, default, arg
        self.name: Optional[str] = None

    def __rtruediv__(self, name: str) -> Field:
        """``"name" / U32``: a named copy, as construct spells it."""
        named = Field(self.code, self.size, self.kind, self.default, self.arg)
        named.name = name
        return named

    def sizeof(self) -> int:
        return self.size

    def construct(self) -> Any:
        import construct as cs

        sub = {
            "int": lambda: getattr(cs, self.arg),
            "pad": lambda: cs.Padding(self.size),
            "bytes": lambda: cs.Bytes(self.size),
            "string": lambda: cs.PaddedString(self.size, self.arg),
            "struct": lambda: self.arg.construct(),
        }[self.kind]()
        if self.default is not _REQUIRED and self.kind != "pad":
            sub = cs.Default(sub, self.default)
        return self.name / sub if self.name else sub


def _int(code: str, construct_name: str) -> Field:
    return Field(code, _struct.calcsize("=" + code), "int", _REQUIRED, construct_name)


# Native byte order, as construct's ``Int32un`` (u: unsigned, s: signed; n: native).
Int8un = _int("B", "Int8un")
Int16un = _int("H", "Int16un")
Int32un = _int("I", "Int32un")
Int32sn = _int("i", "Int32sn")
Int64un = _int("Q", "Int64un")


def Default(field: Field, value: Any) -> Field:
    return Field(field.code, field.size, field.kind, value, field.arg)


def Padding(size: int) -> Field:
    return Field(f"{size}x", size, "pad", None)


def Bytes(size: int) -> Field:
    return Field(f"{size}s", size, "bytes", _REQUIRED)


def PaddedString(size: int, encoding: str) -> Field:
    """A NUL-padded string of ``size`` bytes (``char name[16]``)."""
    return Field(f"{size}s", size, "string", _REQUIRED, encoding)


class Container:
    """A parsed struct: fields by attribute or by key, as construct's ``Container`` (not a dict:
    a field named ``keys`` or ``values``, as in ``map_batch_attr``, stays a field)."""

    def __init__(self, fields: Any):
        self.__dict__.update(fields)

    def __getitem__(self, name: str) -> Any:
        return self.__dict__[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def __eq__(self, other: object) -> bool:
        return self.__dict__ == (other.__dict__ if isinstance(other, Container) else other)

    def __repr__(self) -> str:
        return "Container(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"


class Struct:
    """A fixed-size struct of the fields above, in native byte order without implicit padding
    (the kernel's structs spell their padding out, and so do these declarations)."""

    def __init__(self, *subcons: Field):
        self.subcons = subcons
        self._named = [f for f in subcons if f.name is not None and f.kind != "pad"]
        self._packer = _struct.Struct("=" + "".join(f.code for f in subcons))
        self._strings = [(f.name, f.arg) for f in self._named if f.kind == "string"]
        self._structs = [(f.name, f.arg) for f in self._named if f.kind == "struct"]

    def __rtruediv__(self, name: str) -> Field:
        """``"msg" / nlmsghdr``: this struct as a member of another."""
        return name / Field(f"{self.size}s", self.size, "struct", _REQUIRED, self)

    def sizeof(self) -> int:
        return self._packer.size

    def build(self, values: dict) -> bytes:
        out = []
        for f in self._named:
            v = values.get(f.name, f.default)
            if v is _REQUIRED:
                raise KeyError(f"no value for field {f.name!r}")
            if f.kind == "string":
                v = v.encode(f.arg)
                if len(v) > f.size:
                    raise ValueError(f"{f.name}: {len(v)} bytes do not fit in {f.size}")
            elif f.kind == "struct":
                v = f.arg.build(v)
            elif f.kind == "bytes" and len(v) != f.size:
                raise ValueError(f"{f.name}: {len(v)} bytes where {f.size} are declared")
            out.append(v)
        return self._packer.pack(*out)

    def parse(self, data: bytes) -> Container:
        out = Container(zip((f.name for f in self._named), self._packer.unpack(data[: self.size])))
        for name, encoding in self._strings:
            out[name] = out[name].rstrip(b"\0").decode(encoding)
        for name, inner in self._structs:
            out[name] = inner.parse(out[name])
        return out

    @property
    def size(self) -> int:
        return self._packer.size

    def construct(self) -> Any:
        """The same layout as a construct declaration (imports construct)."""
        import construct as cs

        return cs.Struct(*(f.construct() for f in self.subcons))
