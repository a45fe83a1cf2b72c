"""``@record``: a dataclass whose methods are not compiled when its module is imported.

``dataclasses`` writes each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__`` and ``__delattr__`` as Python source and compiles it with ``exec``: about half a
millisecond a class. pybpf's specs are frozen dataclasses (a BTF kind, an ELF record, an
instruction...), some sixty of them on the way to ``pybpf load``, and that compiling was half of
the command's imports. ``record`` lets ``dataclasses`` read the fields — so ``fields()``,
``replace()``, ``asdict()`` and ``is_dataclass()`` work as on any dataclass — but has it write
none of the methods, and gives the class the same methods made of closures instead:

- ``__init__`` takes the fields positionally or by keyword, with their defaults and
  ``default_factory``; the values go straight into the instance's ``__dict__``;
- ``__repr__`` is ``Name(field=value, ...)`` over the fields with ``repr=True``;
- ``__eq__`` compares the tuples of the ``compare=True`` fields of two instances of the same
  class (anything else: ``NotImplemented``); ``__hash__`` hashes that tuple when frozen, and is
  ``None`` (unhashable) when not;
- frozen: assigning or deleting a field raises ``dataclasses.FrozenInstanceError``.

``@record`` is ``@dataclass(frozen=True)``; ``@record(frozen=False)`` is ``@dataclass``;
``@record(eq=False)`` keeps identity comparison and hashing. A method the class defines itself is
kept, as ``dataclasses`` keeps it. Not supported (a ``TypeError`` says so): ``field(init=False)``,
``InitVar``, keyword-only fields.
"""

from __future__ import annotations

import dataclasses
from _thread import get_ident
from operator import attrgetter
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T", bound=type)

_PLACEHOLDER_DOC = "\0record"  # keeps dataclasses from computing a docstring with inspect


def record(
    cls: Optional[T] = None, /, *, frozen: bool = True, eq: bool = True
) -> Any:  # T, or a decorator of T
    """Make ``cls`` a dataclass (frozen unless ``frozen=False``) without compiling code."""

    def wrap(c: T) -> T:
        return _make(c, frozen, eq)

    return wrap if cls is None else wrap(cls)


def _make(cls: T, frozen: bool, eq: bool) -> T:
    own = set(cls.__dict__)
    undocumented = cls.__dict__.get("__doc__") is None
    if undocumented:
        cls.__doc__ = _PLACEHOLDER_DOC
    # dataclasses finds the fields and sets class defaults; it compiles nothing with every
    # method turned off. A frozen base forbids a non-frozen subclass, so a subclass of a frozen
    # record is declared frozen (dataclasses then writes its two frozen methods itself).
    frozen_base = any(_params(b, "frozen") for b in cls.__mro__[1:])
    dataclasses.dataclass(cls, init=False, repr=False, eq=False, frozen=frozen and frozen_base)
    fields = dataclasses.fields(cls)
    for f in fields:
        if not f.init or getattr(f, "kw_only", False) is True:
            raise TypeError(f"{cls.__qualname__}.{f.name}: @record supports plain fields only")
    methods = {
        "__init__": _init(cls, fields),
        "__repr__": _repr(cls, [f.name for f in fields if f.repr]),
    }
    if eq:
        key = _key([f.name for f in fields if f.compare])
        methods["__eq__"] = _eq(key)
        methods["__hash__"] = _hash(key) if frozen else None
    if frozen:
        methods.update(_frozen(cls, frozenset(f.name for f in fields)))
    for name, fn in methods.items():
        if name in own and not (name == "__hash__" and cls.__dict__[name] is None):
            continue  # the class's own method wins, as with dataclasses
        if fn is not None:
            fn.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, fn)
    params = cls.__dataclass_params__  # what the class is, not what dataclasses was asked
    params.init = params.repr = True
    params.eq, params.frozen = eq, frozen
    if undocumented:
        cls.__doc__ = cls.__name__ + "(" + ", ".join(map(_param_text, fields)) + ")"
    return cls


def _params(cls: type, name: str) -> bool:
    params = cls.__dict__.get("__dataclass_params__")
    return bool(getattr(params, name, False))


def _param_text(f: dataclasses.Field) -> str:
    """A field as ``inspect.signature`` shows the generated ``__init__``'s parameter."""
    text = f"{f.name}: {f.type!r}" if isinstance(f.type, str) else f"{f.name}: {f.type}"
    if f.default is not dataclasses.MISSING:
        return f"{text} = {f.default!r}"
    if f.default_factory is not dataclasses.MISSING:
        return f"{text} = <factory>"
    return text


def _init(cls: type, fields: tuple) -> Callable:
    names = tuple(f.name for f in fields)
    count = len(names)
    defaults: dict[str, tuple[bool, Any]] = {}
    for f in fields:
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = (False, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = (True, f.default_factory)
        elif defaults:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    where = f"{cls.__qualname__}.__init__()"

    def bind(args: tuple, kwargs: dict) -> tuple:
        """The values in field order, as Python binds a signature (and its errors)."""
        given = len(args)
        if given > count:
            least = count - len(defaults)
            takes = f"{count + 1}" if least == count else f"from {least + 1} to {count + 1}"
            raise TypeError(
                f"{where} takes {takes} positional arguments but {given + 1} were given"
            )
        rest = names[given:]
        if given + len(kwargs) == count and all(n in kwargs for n in rest):
            return args + tuple([kwargs[n] for n in rest])  # by keyword: every field named
        for n in names[:given]:
            if n in kwargs:
                raise TypeError(f"{where} got multiple values for argument {n!r}")
        unknown = [k for k in kwargs if k not in rest]
        if unknown:
            raise TypeError(f"{where} got an unexpected keyword argument {unknown[0]!r}")
        values, missing = list(args), []
        for n in rest:
            if n in kwargs:
                values.append(kwargs[n])
            elif n in defaults:
                factory, value = defaults[n]
                values.append(value() if factory else value)
            else:
                missing.append(n)
        if missing:
            quoted = [repr(n) for n in missing]
            listed = (
                quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
            )
            s = "" if len(missing) == 1 else "s"
            raise TypeError(
                f"{where} missing {len(missing)} required positional argument{s}: {listed}"
            )
        return tuple(values)

    def __init__(self, /, *args: Any, **kwargs: Any) -> None:
        if kwargs or len(args) != count:
            args = bind(args, kwargs)
        # the instance's dict directly: what object.__setattr__ would store, past a frozen
        # class's __setattr__
        self.__dict__.update(zip(names, args))

    return __init__


def _repr(cls: type, names: list[str]) -> Callable:
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


def _frozen(cls: type, names: frozenset) -> dict[str, Callable]:
    def __setattr__(self, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return {"__setattr__": __setattr__, "__delattr__": __delattr__}
