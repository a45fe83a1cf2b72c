"""pybpf: a pure-Python eBPF loader.

Reading an object (``ObjectSpec.from_file``) makes no system call; ``pybpf.load(spec)`` creates
the maps and programs in the kernel and returns objects that own their file descriptors.

The package is laid out as the stages of loading, each importing only from those beneath it:
``asm`` (instructions) < ``btf`` (types, CO-RE) < ``object`` (the ELF file as data) < ``sys``
(the bpf(2) system call) < ``link`` (attaching) < the objects users hold (``maps``, ``program``,
``loader``, ``ringbuf``) < ``cli``.
"""

from __future__ import annotations

from pybpf.errors import (
    BPFError,
    BTFError,
    CORERelocationError,
    NetlinkError,
    ParseError,
    RelocationError,
    SyscallError,
    VerifierError,
)
from pybpf.version import __version__

# typing.TYPE_CHECKING, without importing typing. Every module on the way to a load does this:
# its annotations are strings (``from __future__ import annotations``) that only a type checker
# reads, and a type checker takes any TYPE_CHECKING to be true; importing typing would be ~3 ms
# of every process that loads a program (tests/test_startup.py keeps it off that path).
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from pybpf.loader import LoadedObject
    from pybpf.object.spec import MapSpec, ObjectSpec, ProgramSpec

_SPECS = ("ObjectSpec", "ProgramSpec", "MapSpec")


def __getattr__(name: str) -> Any:
    """The spec classes, imported on first use: ``import pybpf.errors`` (which runs this file)
    then costs no ELF or BTF parser, for a command that only needs the exceptions."""
    if name in _SPECS:
        from pybpf.object import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'pybpf' has no attribute {name!r}")


__all__ = [
    "__version__",
    "ObjectSpec",
    "ProgramSpec",
    "MapSpec",
    "load",
    "BPFError",
    "BTFError",
    "CORERelocationError",
    "NetlinkError",
    "ParseError",
    "RelocationError",
    "SyscallError",
    "VerifierError",
]


def load(spec: ObjectSpec, **kwargs: Any) -> LoadedObject:
    """Create the object's maps and programs in the kernel: see ``pybpf.loader.load``.

    Imported on first use, so that reading objects (``import pybpf.object``) never loads the
    system-call layer."""
    from pybpf.loader import load as _load

    return _load(spec, **kwargs)
