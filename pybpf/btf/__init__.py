"""Stage 2: BTF, the type information that travels with an object and with the kernel.

``types`` is the type model (one frozen dataclass per BTF kind), ``model`` parses a ``.BTF``
section in either byte order and answers questions about it, ``ext`` reads ``.BTF.ext`` (function
and line info, CO-RE records), ``kernel`` reads the running kernel's BTF lazily, ``compat`` says
when two types are the same type, ``core`` relocates an object's field accesses against the
kernel's types, and ``kconfig`` supplies ``.kconfig`` externs. Only ``kernel`` and ``kconfig``
read files of the running system; nothing here makes a system call.
"""

from pybpf.btf.model import (  # noqa: F401  (the BTF model, re-exported for ``from pybpf.btf import``)
    BTF,
    Array,
    Datasec,
    Enum,
    Func,
    FuncProto,
    Int,
    Kind,
    Ptr,
    Struct,
    Var,
)
