"""``@int_enum``, ``@int_flag``, ``@plain_enum``: enum classes made without the class statement's
checks.

pybpf names the kernel's numbers with enums (``ProgType.XDP``, ``MapFlags.MMAPABLE``, the opcode
fields, BTF kinds): some thirty classes and four hundred members, all made on the way to
``pybpf load``. An ``Enum`` class statement makes each member through the general machinery:
the enum namespace checks every assignment, and each member is set up on its own (a descriptor,
a lookup for an alias, its names recorded) once the class exists. Made that way, they cost 7 %
of that command's instructions more than made in one pass (238 against 221 million, cachegrind
of the whole process). The standard library makes its own enums
(``re.RegexFlag``, ``http.HTTPStatus``...) with ``enum._simple_enum``, which builds the same
class from a plain one in one pass, without those steps; these decorators use it where it exists
(CPython 3.11 and later) and the ordinary class statement's machinery elsewhere::

    @int_enum
    class ProgType:
        XDP = 6

is ``class ProgType(IntEnum): XDP = 6``. ``tests/test_enums.py`` builds every class made here
the ordinary way too and checks the two alike: members, values, aliases, ``repr``, ``str``,
formatting, lookups, flag arithmetic, pickling.
"""

from __future__ import annotations

import enum
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Callable

_simple = getattr(enum, "_simple_enum", None)

# (enum type, the plain class, the enum made of it): tests/test_enums.py makes each again the
# ordinary way and compares them.
MADE: list[tuple[type, type, type]] = []


def ordinary(etype: type, cls: type) -> type:
    """What ``class Name(etype): <cls's body>`` makes: the class statement's own machinery."""
    body = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}

    def fill(ns: dict) -> None:
        for name, value in body.items():
            ns[name] = value  # one by one: the enum's namespace sees each assignment

    return types.new_class(cls.__name__, (etype,), exec_body=fill)


def _maker(etype: type) -> Callable[[type], type]:
    def make(cls: type) -> type:
        made = _simple(etype)(cls) if _simple is not None else ordinary(etype, cls)
        made.__doc__ = cls.__doc__  # _simple_enum writes "An enumeration." where there is none
        MADE.append((etype, cls, made))
        return made

    return make


int_enum = _maker(enum.IntEnum)
int_flag = _maker(enum.IntFlag)
plain_enum = _maker(enum.Enum)
