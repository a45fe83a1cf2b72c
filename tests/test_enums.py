"""pybpf.enums: every enum pybpf makes with ``@int_enum``/``@int_flag``/``@plain_enum`` is the
class its ordinary class statement would make, as a user of it can tell."""

from __future__ import annotations

import enum
import importlib
import pickle
import pkgutil
import sys

import pytest

import pybpf
from pybpf import enums
from pybpf.enums import int_enum, int_flag, ordinary, plain_enum


def _import_all() -> None:
    for mod in pkgutil.walk_packages(pybpf.__path__, "pybpf."):
        if mod.name not in ("pybpf.__main__",):
            importlib.import_module(mod.name)
    importlib.import_module("xdptcp.layouts")  # xdptcp's enums are made the same way
    importlib.import_module("xdptcp.packet")


def _made() -> list[tuple[type, type, type]]:
    _import_all()
    return list(enums.MADE)


def _behaviour(cls: type, etype: type) -> dict:
    """What a user of the class sees, as plain data."""
    members = list(cls)
    seen = {
        "name": cls.__name__,
        "qualname": cls.__qualname__,
        "module": cls.__module__,
        "doc": cls.__doc__,
        "mro": [c.__name__ for c in cls.__mro__],
        "members": [(m.name, m.value) for m in members],
        "all names": [(n, m.name) for n, m in cls.__members__.items()],  # aliases included
        "repr": [repr(m) for m in members],
        "str": [str(m) for m in members],
        "format": [f"{m}|{m!s}|{m!r}" for m in members],
        "by value": [cls(m.value) is m for m in members],
        "by name": [cls[m.name] is m for m in members],
        "hash": [hash(m) == hash(m.value) for m in members if issubclass(etype, int)],
        "contains": [m in cls for m in members],
        "attributes": sorted(
            n for n in vars(cls) if not n.startswith("_") and n not in cls.__members__
        ),
    }
    if issubclass(cls, int):
        seen["int"] = [(int(m), m == m.value, m + 0) for m in members]
        seen["missing"] = _outcome(cls, max(m.value for m in members) + 1000)
    else:
        seen["missing"] = _outcome(cls, "no such value")
    if issubclass(etype, enum.Flag):
        values = [m.value for m in members]
        pairs = [(a, b) for a in members for b in members][:400]
        seen["or"] = [repr(a | b) for a, b in pairs]
        seen["and"] = [repr(a & b) for a, b in pairs]
        seen["xor"] = [repr(a ^ b) for a, b in pairs]
        seen["invert"] = [repr(~m) for m in members]
        seen["combined"] = [repr(cls(v | w)) for v in values for w in values][:400]
        seen["unknown bit"] = repr(cls(1 << 40))
        seen["with int"] = [repr(m | 1 << 40) for m in members]
    return seen


def _outcome(cls: type, value: object) -> str:
    try:
        return repr(cls(value))
    except ValueError as e:
        return f"ValueError: {e}"


def test_pybpf_makes_its_enums_with_these_decorators():
    made = _made()
    from pybpf.asm.insn import ALUOp
    from pybpf.btf.types import Kind
    from pybpf.sys.uapi import AttachType, MapFlags, ProgType

    for cls in (ProgType, AttachType, MapFlags, ALUOp, Kind):
        assert any(m is cls for _, _, m in made), cls
    # (a module imported again, as some tests do, adds its classes again)
    assert len({m.__qualname__ for _, _, m in made}) >= 35


@pytest.mark.parametrize(
    "etype, plain, made", _made(), ids=lambda v: getattr(v, "__qualname__", "")
)
def test_each_enum_is_what_its_class_statement_makes(etype, plain, made):
    assert _behaviour(made, etype) == _behaviour(ordinary(etype, plain), etype)
    # (the twin cannot be pickled: it is not the class its module names)
    assert all(pickle.loads(pickle.dumps(m)) is m for m in made)


def test_the_decorators_keep_methods_properties_aliases_and_the_docstring():
    @int_flag
    class Bits:
        """Some bits."""

        A = 1
        B = 2
        C = 4
        AB = 3  # a combination is an alias of no single member, but a name of the value

        @property
        def low(self) -> bool:
            return bool(self & 1)

    @int_enum
    class Numbers:
        ONE = 1
        UNO = 1  # an alias

        def double(self) -> int:
            return self * 2

    @plain_enum
    class Words:
        HELLO = ("hello", 5)

        @property
        def length(self) -> int:
            return self.value[1]

    assert Bits.__doc__ == "Some bits." and Numbers.__doc__ is None
    assert (Bits.A | Bits.B) is Bits.AB and Bits.AB.low and not Bits.C.low
    assert Bits.A | Bits.C == 5 and isinstance(Bits.A | Bits.C, Bits)
    assert Numbers.UNO is Numbers.ONE and list(Numbers) == [Numbers.ONE]
    assert Numbers(1).double() == 2 and Numbers["UNO"] is Numbers.ONE
    assert Words.HELLO.length == 5 and Words(("hello", 5)) is Words.HELLO
    with pytest.raises(ValueError):
        Numbers(3)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="enum._simple_enum is CPython 3.11's")
def test_from_3_11_the_classes_are_made_without_the_class_statement(monkeypatch):
    """The point of the module: the cheaper way is the one the decorators take where it exists."""
    real, asked = enums._simple, []
    assert real is not None

    def spy(etype):
        asked.append(etype)
        return real(etype)

    monkeypatch.setattr(enums, "_simple", spy)

    @int_flag
    class Probe:
        A = 1
        B = 2

    assert asked == [enum.IntFlag] and Probe.A | Probe.B == 3
