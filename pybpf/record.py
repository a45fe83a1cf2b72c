"""``@record``: a dataclass made without ``dataclasses`` at import.

``dataclasses`` writes each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__`` and ``__delattr__`` as Python source and compiles it with ``exec`` — about half a
millisecond a class — and importing it imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``):
7 ms more. pybpf's specs are frozen dataclasses (a BTF kind, an ELF record, an instruction...),
some sixty of them on the way to ``pybpf load``, and the two were most of that command's imports.

``record`` reads the fields from the class's annotations itself and gives the class the same
methods made of closures:

- ``__init__`` takes the fields positionally or by keyword, with their defaults and
  ``default_factory``; the values go straight into the instance's ``__dict__``;
- ``__repr__`` is ``Name(field=value, ...)`` over the fields with ``repr=True``;
- ``__eq__`` compares the tuples of the ``compare=True`` fields of two instances of the same
  class (anything else: ``NotImplemented``); ``__hash__`` hashes that tuple when frozen, and is
  ``None`` (unhashable) when not;
- frozen: assigning or deleting a field raises ``dataclasses.FrozenInstanceError``.

The class is still a dataclass to the standard library: ``__dataclass_fields__`` and
``__dataclass_params__`` are made by ``dataclasses`` on first use (so ``dataclasses.fields()``,
``replace()``, ``asdict()`` and ``is_dataclass()`` work, and import it then). pybpf itself uses
this module's ``replace`` and ``field_names``, which need nothing of ``dataclasses``.

A record's fields are its instance's ``__dict__`` entries, and nothing else is kept per
instance: a parser that makes thousands of records at once (``pybpf.asm.insn.decode``, an
object's instructions) may make each with ``blank(cls)`` and put every field into its
``__dict__``, without the call to ``__init__``; the instance is then the one ``cls(...)`` makes.

``@record`` is ``@dataclass(frozen=True)``; ``@record(frozen=False)`` is ``@dataclass``;
``@record(eq=False)`` keeps identity comparison and hashing. ``field(...)`` takes ``default``,
``default_factory``, ``repr`` and ``compare`` as ``dataclasses.field`` does. A method the class
defines itself is kept, as ``dataclasses`` keeps it. Annotations must be strings (``from
__future__ import annotations``); ``ClassVar[...]`` ones are not fields. Not supported (a
``TypeError`` says so): ``InitVar``, keyword-only fields, fields left out of ``__init__``.
"""

from __future__ import annotations

import builtins
import re
import sys
import types
from _thread import get_ident
from operator import attrgetter

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

MISSING = object()  # no default (dataclasses.MISSING's role)

# What dataclasses takes for ClassVar in a string annotation: ClassVar or typing.ClassVar.
_CLASSVAR = re.compile(r"\s*(?:typing\s*\.\s*)?ClassVar\b")
_INITVAR = re.compile(r"\s*(?:dataclasses\s*\.\s*)?InitVar\b")


class _Field:
    """One field: what ``dataclasses.Field`` holds that the methods need."""

    __slots__ = ("name", "type", "default", "default_factory", "repr", "compare")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        repr: bool = True,
        compare: bool = True,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name, self.type = "", ""
        self.default, self.default_factory = default, default_factory
        self.repr, self.compare = repr, compare


def field(
    *,
    default: Any = MISSING,
    default_factory: Any = MISSING,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """A field with options, as ``dataclasses.field``: ``x: list = field(default_factory=list)``."""
    return _Field(default, default_factory, repr, compare)


def record(cls: Optional[type] = None, /, *, frozen: bool = True, eq: bool = True) -> Any:
    """Make ``cls`` a dataclass (frozen unless ``frozen=False``) without ``dataclasses``."""

    def wrap(c: type) -> type:
        return _make(c, frozen, eq)

    return wrap if cls is None else wrap(cls)


def replace(obj: Any, /, **changes: Any) -> Any:
    """``dataclasses.replace`` for records: a copy of ``obj`` with ``changes``."""
    names = type(obj).__record_fields__
    values = [changes.pop(n) if n in changes else getattr(obj, n) for n in names]
    if changes:
        raise TypeError(
            f"{type(obj).__qualname__}.__init__() got an unexpected keyword argument "
            f"{next(iter(changes))!r}"
        )
    return obj.__class__(*values)


# An instance with no field set yet, for a maker of many records (see the module's docstring).
blank = object.__new__


def field_names(obj: Any) -> tuple[str, ...]:
    """The names of a record's (or a record class's) fields, in order."""
    return obj.__record_fields__


# --- making the class -----------------------------------------------------------------------


def _make(cls: type, frozen: bool, eq: bool) -> type:
    bases = [b for b in cls.__mro__[-1:0:-1] if "__record_fields__" in b.__dict__]
    frozen_bases = [b.__dict__["__record_params__"][0] for b in bases]
    if frozen_bases and any(frozen_bases) and not frozen:
        raise TypeError("cannot inherit non-frozen dataclass from a frozen one")
    if frozen_bases and not any(frozen_bases) and frozen:
        raise TypeError("cannot inherit frozen dataclass from a non-frozen one")
    fields: dict[str, _Field] = {}
    for b in bases:
        for f in b.__dict__["__record_field_specs__"]:
            fields[f.name] = f
    for f in _own_fields(cls):
        fields[f.name] = f
    specs = tuple(fields.values())
    cls.__record_fields__ = tuple(fields)
    cls.__record_field_specs__ = specs
    cls.__record_params__ = (frozen, eq)
    own = set(cls.__dict__)
    methods: dict[str, Any] = {
        "__init__": _positional_init(cls, specs) or _init(cls, specs),
        "__repr__": _repr([f.name for f in specs if f.repr]),
    }
    if eq:
        key = _key([f.name for f in specs if f.compare])
        methods["__eq__"] = _eq(key)
        methods["__hash__"] = _hash(key) if frozen else None
    if frozen:
        methods.update(_frozen(cls, frozenset(fields)))
    for name, fn in methods.items():
        if name in own and not (name == "__hash__" and cls.__dict__[name] is None):
            continue  # the class's own method wins, as with dataclasses
        if fn is not None:
            fn.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, fn)
    if sys.version_info >= (3, 10) and "__match_args__" not in own:
        cls.__match_args__ = tuple(fields)
    if cls.__dict__.get("__doc__") is None:  # what dataclasses writes: the signature
        cls.__doc__ = cls.__name__ + "(" + ", ".join(map(_param_text, specs)) + ")"
    cls.__dataclass_fields__ = _Lazy(cls, "__dataclass_fields__")
    cls.__dataclass_params__ = _Lazy(cls, "__dataclass_params__")
    return cls


def _own_fields(cls: type) -> list[_Field]:
    fields = []
    for name, ann in cls.__dict__.get("__annotations__", {}).items():
        if not isinstance(ann, str):
            raise TypeError(f"{cls.__qualname__}.{name}: @record needs string annotations")
        if _CLASSVAR.match(ann):
            continue
        if _INITVAR.match(ann):
            raise TypeError(f"{cls.__qualname__}.{name}: @record does not support InitVar")
        f = cls.__dict__.get(name, MISSING)
        if type(f).__module__ == "dataclasses":
            raise TypeError(f"{cls.__qualname__}.{name}: use pybpf.record.field with @record")
        if not isinstance(f, _Field):
            f = _Field(default=f)
        f.name, f.type = name, ann
        d = f.default
        if d is not MISSING and d.__class__.__hash__ is None:  # list, dict, set...
            raise ValueError(
                f"mutable default {type(d)} for field {name} is not allowed: use default_factory"
            )
        # the class attribute is the default, or nothing (dataclasses does the same)
        if d is MISSING:
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, d)
        fields.append(f)
    return fields


class _Lazy:
    """``__dataclass_fields__`` / ``__dataclass_params__``, made by ``dataclasses`` on first use:
    a twin class with the same fields goes through ``dataclasses.dataclass``, and what it gets
    is kept on the record class."""

    def __init__(self, cls: type, attr: str) -> None:
        self.cls, self.attr = cls, attr

    def __get__(self, obj: object, owner: Optional[type] = None) -> Any:
        cls = self.cls
        made = _dataclass_twin(cls)
        cls.__dataclass_fields__ = made.__dataclass_fields__
        cls.__dataclass_params__ = made.__dataclass_params__
        return cls.__dict__[self.attr]


def _dataclass_twin(cls: type) -> type:
    import dataclasses

    frozen, eq = cls.__dict__["__record_params__"]
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__annotations__": {},
    }
    for f in cls.__dict__["__record_field_specs__"]:
        namespace["__annotations__"][f.name] = f.type
        namespace[f.name] = dataclasses.field(
            default=dataclasses.MISSING if f.default is MISSING else f.default,
            default_factory=(
                dataclasses.MISSING if f.default_factory is MISSING else f.default_factory
            ),
            repr=f.repr,
            compare=f.compare,
        )
    twin = dataclasses.dataclass(type(cls.__name__, (), namespace), frozen=frozen, eq=eq)
    return twin


def _param_text(f: _Field) -> str:
    """A field as ``inspect.signature`` shows the generated ``__init__``'s parameter."""
    text = f"{f.name}: {f.type!r}"
    if f.default is not MISSING:
        return f"{text} = {f.default!r}"
    if f.default_factory is not MISSING:
        return f"{text} = <factory>"
    return text


# --- the methods ----------------------------------------------------------------------------


# The __init__ of a record whose defaults are plain values: one function per number of fields,
# whose parameters are renamed to the fields for each class (``code.replace(co_varnames=...)``),
# so that Python itself binds positions, keywords and defaults, with its own errors, as in the
# __init__ dataclasses compiles (and twice as fast as binding ``*args, **kwargs`` by hand). The
# body stores the values under the names in ``_FIELDS``, a global of the function's own namespace.
# Records with more fields, or a ``default_factory``, get the general closure below.
_FIELDS: tuple = ()  # each template's own namespace has the record's field names here


def _i0(self):
    pass


def _i1(self, f0):
    self.__dict__.update(zip(_FIELDS, (f0,)))


def _i2(self, f0, f1):
    self.__dict__.update(zip(_FIELDS, (f0, f1)))


def _i3(self, f0, f1, f2):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2)))


def _i4(self, f0, f1, f2, f3):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3)))


def _i5(self, f0, f1, f2, f3, f4):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4)))


def _i6(self, f0, f1, f2, f3, f4, f5):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5)))


def _i7(self, f0, f1, f2, f3, f4, f5, f6):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6)))


def _i8(self, f0, f1, f2, f3, f4, f5, f6, f7):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7)))


def _i9(self, f0, f1, f2, f3, f4, f5, f6, f7, f8):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8)))


def _i10(self, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9)))


def _i11(self, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10)))


def _i12(self, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11)))


def _i13(self, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12)))


def _i14(self, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13):
    self.__dict__.update(zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13)))


def _i15(self, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14):
    self.__dict__.update(
        zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14))
    )


def _i16(self, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15):
    self.__dict__.update(
        zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15))
    )


def _i17(self, f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16):
    self.__dict__.update(
        zip(_FIELDS, (f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16))
    )


_TEMPLATES = (
    _i0,
    _i1,
    _i2,
    _i3,
    _i4,
    _i5,
    _i6,
    _i7,
    _i8,
    _i9,
    _i10,
    _i11,
    _i12,
    _i13,
    _i14,
    _i15,
    _i16,
    _i17,
)


def _positional_init(cls: type, fields: tuple) -> Optional[Callable]:
    """The fast ``__init__`` (see above), or None when the record needs the general one."""
    names = tuple(f.name for f in fields)
    if len(names) >= len(_TEMPLATES) or any(f.default_factory is not MISSING for f in fields):
        return None
    defaults = tuple(f.default for f in fields if f.default is not MISSING)
    template = _TEMPLATES[len(names)]
    me = "__record_self" if "self" in names else "self"  # as dataclasses names it then
    code = template.__code__.replace(co_varnames=(me, *names))
    namespace = {"_FIELDS": names, "__builtins__": builtins}
    return types.FunctionType(code, namespace, "__init__", defaults or None)


def _init(cls: type, fields: tuple) -> Callable:
    names = tuple(f.name for f in fields)
    count = len(names)
    defaults: dict[str, tuple[bool, Any]] = {}
    for f in fields:
        if f.default is not MISSING:
            defaults[f.name] = (False, f.default)
        elif f.default_factory is not MISSING:
            defaults[f.name] = (True, f.default_factory)
        elif defaults:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    least = count - len(defaults)  # the fields without a default come first
    # trailing defaults that are plain values: positional calls that leave them out are filled
    # from this tuple (a factory's value is made per call, in bind)
    specs = tuple(defaults.values())  # (is it a factory, the value or the factory)
    tail = tuple(value for factory, value in specs)
    plain_tail = not any(factory for factory, _ in defaults.values())
    where = f"{cls.__qualname__}.__init__()"

    def bind(args: tuple, kwargs: dict) -> tuple:
        """The values in field order, as Python binds a signature."""
        given = len(args)
        if given > count:
            takes = f"{count + 1}" if least == count else f"from {least + 1} to {count + 1}"
            raise TypeError(
                f"{where} takes {takes} positional arguments but {given + 1} were given"
            )
        values = list(args)
        used = 0
        for n in names[given:]:
            value = kwargs.get(n, MISSING)
            if value is MISSING:
                default = defaults.get(n)
                if default is None:
                    return _bind_error(where, names, defaults, args, kwargs)
                factory, value = default
                if factory:
                    value = value()
            else:
                used += 1
            values.append(value)
        if used != len(kwargs):  # a keyword that names no field, or one given by position
            return _bind_error(where, names, defaults, args, kwargs)
        return tuple(values)

    def __init__(self, /, *args: Any, **kwargs: Any) -> None:
        n = len(args)
        if n != count or kwargs:
            if least <= n < count and not kwargs:  # the rest from the defaults
                if plain_tail:
                    args += tail[n - least :]
                else:
                    args += tuple([v() if f else v for f, v in specs[n - least :]])
            else:
                args = bind(args, kwargs)
        # the instance's dict directly: what object.__setattr__ would store, past a frozen
        # class's __setattr__
        self.__dict__.update(zip(names, args))

    return __init__


def _bind_error(where: str, names: tuple, defaults: dict, args: tuple, kwargs: dict) -> tuple:
    """The TypeError Python gives for a call that does not fit the fields."""
    given = len(args)
    for n in names[:given]:
        if n in kwargs:
            raise TypeError(f"{where} got multiple values for argument {n!r}")
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        raise TypeError(f"{where} got an unexpected keyword argument {unknown[0]!r}")
    missing = [n for n in names[given:] if n not in kwargs and n not in defaults]
    raise TypeError(f"{where} missing {_count_of(missing)}")


def _count_of(missing: list[str]) -> str:
    """Python's words for missing arguments: "2 required positional arguments: 'a' and 'b'"."""
    quoted = [repr(n) for n in missing]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    s = "" if len(missing) == 1 else "s"
    return f"{len(missing)} required positional argument{s}: {listed}"


def _repr(names: list[str]) -> Callable:
    running: set[tuple[int, int]] = set()

    def __repr__(self) -> str:
        key = (id(self), get_ident())
        if key in running:  # an instance that holds itself
            return "..."
        running.add(key)
        try:
            inner = ", ".join([f"{n}={getattr(self, n)!r}" for n in names])
        finally:
            running.discard(key)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _key(names: list[str]) -> Callable[[Any], tuple]:
    """The tuple that equality and the hash are about."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return lambda obj: ()


def _eq(key: Callable[[Any], tuple]) -> Callable:
    def __eq__(self, other: object) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _hash(key: Callable[[Any], tuple]) -> Callable:
    def __hash__(self) -> int:
        return hash(key(self))

    return __hash__


def _frozen_error(message: str) -> Exception:
    from dataclasses import FrozenInstanceError  # only when someone tries

    return FrozenInstanceError(message)


def _frozen(cls: type, names: frozenset) -> dict[str, Callable]:
    def __setattr__(self, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise _frozen_error(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if type(self) is cls or name in names:
            raise _frozen_error(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return {"__setattr__": __setattr__, "__delattr__": __delattr__}
