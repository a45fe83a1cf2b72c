"""Stage 3: the ELF object as plain data — no system calls (rule 1 of the design).

``elf`` reads sections, symbols and relocations; ``sections`` maps section names to program types
the libbpf way; ``btfmaps`` and ``mapspecs`` find the maps (BTF-defined, legacy, global data);
``records`` holds the frozen records they produce and ``spec`` the ``ObjectSpec`` that gathers
them; ``linker`` appends the subprograms each program calls. A test imports this package, and
parses objects with it, in a process where the bpf() system call is forbidden.
"""

from pybpf.object.records import MapSpec, ProgramSpec  # noqa: F401
from pybpf.object.spec import ObjectSpec  # noqa: F401
