"""``pybpf.record``: each class behaves as the same class made by ``dataclasses.dataclass``.

Every check builds a class twice from one body — once with the standard library's decorator
(and ``dataclasses.field``), once with ``record`` (and ``pybpf.record.field``) — and compares what
a user of the class sees.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from enum import IntEnum
from typing import ClassVar, Optional

import pytest

from pybpf import record as records
from pybpf.record import record

from conftest import ROOT

XDPTCP_OBJ = ROOT / "xdptcp" / "data" / "xdptcp.bpf.o"


class Color(IntEnum):
    RED = 1
    BLUE = 2


def body_plain(field):
    class Plain:
        """A record with defaults of every sort."""

        name: str
        size: int
        color: Color = Color.RED
        tags: tuple = ()
        extra: Optional[dict] = None
        kind: ClassVar[int] = 7

    return Plain


def body_factory(field):
    class WithFactory:
        name: str
        items: list = field(default_factory=list)
        note: str = field(default="", compare=False)
        hidden: int = field(default=0, repr=False)

    return WithFactory


def body_empty(field):
    class Empty:
        pass

    return Empty


def twins(make, **kw):
    """(the stdlib dataclass, the record) of one class body."""
    frozen = kw.get("frozen", True)
    eq = kw.get("eq", True)
    std = dataclasses.dataclass(frozen=frozen, eq=eq)(make(dataclasses.field))
    ours = record(frozen=frozen, eq=eq)(make(records.field))
    return std, ours


BODIES = [body_plain, body_factory, body_empty]
FLAVOURS = [{}, {"frozen": False}, {"eq": False}]


def build(cls, kind):
    if cls.__name__ == "Plain":
        args = {"short": ("a", 4), "long": ("a", 4, Color.BLUE, (1, 2), {"k": 1})}[kind]
        kwargs = {"short": {}, "long": {}}[kind]
        return cls(*args, **kwargs)
    if cls.__name__ == "WithFactory":
        return cls("w", note="n") if kind == "short" else cls(name="w", items=[1], hidden=3)
    return cls()


@pytest.mark.parametrize("make", BODIES)
@pytest.mark.parametrize("flavour", FLAVOURS, ids=["frozen", "mutable", "frozen-noeq"])
def test_a_record_behaves_as_its_dataclass(make, flavour):
    std, ours = twins(make, **flavour)
    assert dataclasses.is_dataclass(ours)
    assert [(f.name, f.type, f.default, f.compare, f.repr) for f in dataclasses.fields(ours)] == [
        (f.name, f.type, f.default, f.compare, f.repr) for f in dataclasses.fields(std)
    ]
    assert ours.__doc__ == std.__doc__
    assert getattr(ours, "__match_args__", None) == getattr(std, "__match_args__", None)
    for name in ("frozen", "eq", "init", "repr"):
        assert getattr(ours.__dataclass_params__, name) == getattr(std.__dataclass_params__, name)
    for kind in ("short", "long"):
        a, b = build(std, kind), build(ours, kind)
        a2, b2 = build(std, kind), build(ours, kind)
        assert repr(b) == repr(a)
        assert vars(b) == vars(a)
        assert (b == b2) == (a == a2)
        assert (b != b2) == (a != a2)
        assert (b == object()) == (a == object())
        assert dataclasses.asdict(b) == dataclasses.asdict(a)
        assert dataclasses.astuple(b) == dataclasses.astuple(a)
        assert (std.__hash__ is None) == (ours.__hash__ is None)
        if std.__hash__ is not None and flavour.get("eq", True):
            _same_error(hash, a, b)  # unhashable fields (a list) make both unhashable
            if _hashable(a):
                assert hash(b) == hash(a) == hash(b2)
        assert repr(copy.copy(b)) == repr(b)
        assert repr(copy.deepcopy(b)) == repr(b)
        fields = dataclasses.fields(ours)
        assert records.field_names(b) == tuple(f.name for f in fields)
        if fields:
            f = fields[0]
            changed = dataclasses.replace(b, **{f.name: "z"})
            assert repr(changed) == repr(dataclasses.replace(a, **{f.name: "z"}))
            assert repr(records.replace(b, **{f.name: "z"})) == repr(changed)
            assert getattr(b, f.name) != "z"  # the original is untouched
            _same_error(lambda o, f=f: setattr(o, f.name, 1), a, b)
            _same_error(lambda o, f=f: delattr(o, f.name), a, b)
        _same_error(lambda o: setattr(o, "other", 1), a, b)


def test_records_with_a_factory_get_a_fresh_value_each():
    _, ours = twins(body_factory)
    a, b = ours("a"), ours("b")
    assert a.items == [] and a.items is not b.items


def test_compare_false_fields_are_left_out_of_eq_and_hash():
    _, ours = twins(body_factory)
    assert ours("w", note="x") == ours("w", note="y")
    assert hash(ours("w", (), note="x")) == hash(ours("w", (), note="y"))
    assert ours("w", hidden=1) != ours("w", hidden=2)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c(),
        lambda c: c("a"),
        lambda c: c("a", 1, Color.RED, (), None, 9),
        lambda c: c("a", 1, name="b"),
        lambda c: c("a", 1, nope=3),
        lambda c: c(size=1),
    ],
)
def test_bad_calls_raise_the_same_type_error(call):
    std, ours = twins(body_plain)
    with pytest.raises(TypeError) as want:
        call(std)
    with pytest.raises(TypeError) as got:
        call(ours)
    # the messages name the same thing; Python's own say "__init__()" with the class's name
    assert str(got.value).split("()", 1)[-1] == str(want.value).split("()", 1)[-1]


def test_keywords_and_positions_bind_alike():
    std, ours = twins(body_plain)
    for args, kwargs in [
        (("a",), {"size": 3}),
        ((), {"size": 3, "name": "a", "extra": {}}),
        (("a", 2), {"tags": (1,)}),
        ((), {"name": "a", "size": 1, "color": Color.BLUE, "tags": (), "extra": None}),
    ]:
        assert repr(ours(*args, **kwargs)) == repr(std(*args, **kwargs))


def test_a_subclass_of_a_frozen_record_is_frozen_and_keeps_its_class_in_eq():
    @record
    class Base:
        name: str
        size: int
        kind: ClassVar[int] = 1

    @record
    class Sub(Base):
        kind: ClassVar[int] = 2

    s = Sub("a", 1)
    assert repr(s).endswith(".<locals>.Sub(name='a', size=1)")
    assert s != Base("a", 1) and s == Sub("a", 1)
    assert hash(s) == hash(Sub("a", 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "b"
    with pytest.raises(TypeError, match="non-frozen"):

        @record(frozen=False)
        class Mutable(Base):
            pass

    with pytest.raises(TypeError, match="frozen dataclass from a frozen one|non-frozen"):

        @dataclasses.dataclass
        class StdMutable(Base):
            pass


def test_a_method_the_class_defines_is_kept():
    @record
    class Own:
        name: str

        def __repr__(self) -> str:
            return "mine"

    assert repr(Own("x")) == "mine" and Own("x") == Own("x")


def test_a_record_that_holds_itself_repr_stops():
    @record(frozen=False)
    class Node:
        child: object = None

    n = Node()
    n.child = n
    assert repr(n) == f"{Node.__qualname__}(child=...)"


def test_reading_an_object_and_the_loader_import_neither_dataclasses_nor_inspect():
    """The point of ``record``: what ``pybpf load`` imports, and a parse, leave ``dataclasses``
    (with ``inspect``, ``ast``, ``dis``, ``tokenize``) unimported until something asks for it."""
    code = (
        "import sys\n"
        "import pybpf.cli, pybpf.loader, pybpf.maps, pybpf.program, pybpf.sys.features\n"
        "from pybpf import ObjectSpec\n"
        f"spec = ObjectSpec.from_file({str(XDPTCP_OBJ)!r})\n"
        "print(sorted({'dataclasses', 'inspect'} & set(sys.modules)))\n"
        "import dataclasses\n"
        "print(len(dataclasses.fields(spec.programs['xdp_capture'])))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0] == "[]"
    assert int(lines[1]) > 5  # and the records are dataclasses once it is imported


def test_a_replaced_record_is_a_new_equal_record():
    @record
    class Point:
        x: int
        y: int = 0

    p = Point(1, 2)
    assert records.replace(p, y=5) == Point(1, 5) and p == Point(1, 2)
    assert records.replace(p) == p and records.replace(p) is not p
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        records.replace(p, z=1)


def test_a_blank_record_given_its_fields_is_the_one_init_makes():
    """What a maker of many records does (``blank`` and the fields into ``__dict__``): the
    instance compares, hashes, prints, replaces and refuses assignment as ``__init__``'s."""

    @record
    class Point:
        x: int
        y: int = 0

    p = records.blank(Point)
    p.__dict__.update(x=1, y=2)
    made = Point(1, 2)
    assert p == made and hash(p) == hash(made) and repr(p) == repr(made)
    assert repr(p).endswith("Point(x=1, y=2)")
    assert vars(p) == vars(made) and dataclasses.astuple(p) == (1, 2)
    assert records.replace(p, y=3) == Point(1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 5


def test_dataclasses_field_in_a_record_is_refused():
    with pytest.raises(TypeError, match="pybpf.record.field"):

        @record
        class Wrong:
            items: list = dataclasses.field(default_factory=list)


def _hashable(obj) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True


def _same_error(action, a, b):
    """``action`` fails on both objects with the same exception type and message, or on
    neither."""
    errors = []
    for obj in (a, b):
        try:
            action(obj)
            errors.append(None)
        except Exception as e:
            errors.append((type(e), str(e)))
    assert errors[1] == errors[0]
