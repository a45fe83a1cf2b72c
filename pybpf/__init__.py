"""pybpf: a pure-Python eBPF loader.

Reading an object (``ObjectSpec.from_file``) makes no system call; ``spec.load()`` creates the maps
and programs in the kernel and returns objects that own their file descriptors.
"""

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
from pybpf.spec import MapSpec, ObjectSpec, ProgramSpec

__all__ = [
    "ObjectSpec",
    "ProgramSpec",
    "MapSpec",
    "BPFError",
    "BTFError",
    "CORERelocationError",
    "NetlinkError",
    "ParseError",
    "RelocationError",
    "SyscallError",
    "VerifierError",
]
