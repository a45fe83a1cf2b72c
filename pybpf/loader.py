"""Loading: from an ``ObjectSpec`` to maps and programs that live in the kernel.

The steps, in the order libbpf takes them:

1. load the object's BTF (``BPF_BTF_LOAD``) so maps and programs can refer to its types;
2. create every map; fill the data-section maps with their initial bytes, freeze ``.rodata``;
3. for each program: CO-RE-relocate the code, link its subprograms, patch each map reference
   with a file descriptor, and ``BPF_PROG_LOAD`` it with its func_info/line_info;
4. fill prog arrays and map-in-map slots that the object initialised (``.values = {...}``);
5. when asked, pin every program in a directory of bpffs (``bpftool prog loadall``).

If any step fails, everything created so far is closed again (in reverse order), what the load
pinned is unpinned (never what was pinned before it), and the error names the map or program,
the step and the kernel's words.
"""

from __future__ import annotations

import errno
import os
import sys

from pybpf import compat
from pybpf.compat import say
from pybpf.errors import BPFError, SyscallError, VerifierError
from pybpf.mapload import create_maps, fill_slots
from pybpf.object.linker import LinkedProgram, link_program
from pybpf.object.spec import ObjectSpec, ProgramSpec
from pybpf.references import patch_references

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Mapping, Optional

    Log = Optional[Callable[[str], None]]

DEFAULT_PIN_ROOT = "/sys/fs/bpf"  # where libbpf pins maps by name unless told otherwise


class LoadedObject:
    """Maps and programs of one object, alive in the kernel. Closing releases every fd.

    ``maps`` and ``programs`` are dicts by name (the names of the C source). Use as a context
    manager: ``with spec.load() as obj: obj.programs["xdp_capture"].test_run(frame)``.
    """

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self.btf_fd: Optional[int] = None
        self.maps: dict = {}
        self.programs: dict = {}
        self.linked: dict[str, LinkedProgram] = {}
        self.struct_ops: dict = {}  # struct_ops variable -> pybpf.structops.StructOps
        self.warnings: list[str] = []
        self.btf_func_info = True  # does the kernel take func_info/line_info (BTF FUNC)?
        self.skipped_maps: dict = {}  # name -> the Feature the kernel lacks to create it
        self.code: dict = {}  # section -> its instructions after CO-RE, for load_program
        self.unresolved: dict = {}  # section -> {insn: core_poison.Unresolved} CO-RE poisoned
        self.pinned: list[str] = []  # what this object pinned: maps by name, pin_programs
        self.pin_dirs: list[str] = []  # the directories it created for them
        self.pending: list = []  # load_program(wait=False) not taken yet

    def load_program(
        self, name: str, *, log: Log = None, log_level: Optional[int] = None, wait: bool = True
    ):
        """Load one more of the object's programs, with this object's maps: after
        ``load(spec, programs=[])``, the programs can be loaded one by one as they are needed,
        and from several threads at once (the kernel verifies them side by side).

        ``wait=False``: link it here, hand the verifier's part to a thread, and return at once
        something whose ``result()`` waits and gives the Program (or raises the load's error);
        ``close()`` waits for it too."""
        return load_program(self, name, log=log, log_level=log_level, wait=wait)

    def pin_programs(self, directory: str) -> None:
        """Pin every loaded program at ``directory/<name>`` (libbpf's bpf_object__pin_programs),
        all or none: when one cannot be pinned (a pin of that name exists already), those pinned
        here are unpinned again and the directories made here removed. Nothing that was in the
        directory before is touched."""
        from pybpf.sys import bpffs

        progs = [(f"program '{name}'", p.fd, name) for name, p in self.programs.items()]
        pinned, dirs = bpffs.pin_all(directory, progs)
        self.pinned += pinned
        self.pin_dirs += dirs

    def unpin(self) -> None:
        """Remove the pins this object made (its maps pinned by name, its programs pinned by
        ``pin_programs``) and the directories made for them, once empty. A map it reused from
        an earlier pin stays pinned: that pin is not this object's."""
        from pybpf.sys import bpffs

        bpffs.remove_pins(self.pinned, self.pin_dirs)
        self.pinned.clear()
        self.pin_dirs.clear()

    def close(self) -> None:
        """Close programs, then maps, then BTF: the reverse of creation."""
        for job in self.pending:  # loads still running in a thread: wait, then close them
            job.discard()
        self.pending.clear()
        for prog in reversed(list(self.programs.values())):
            prog.close()
        for m in reversed(list(self.maps.values())):
            m.close()
        if self.btf_fd is not None:
            os.close(self.btf_fd)
            self.btf_fd = None
        self.programs.clear()
        self.maps.clear()

    def __enter__(self) -> LoadedObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def load(
    spec: ObjectSpec,
    *,
    programs: Optional[Iterable[str]] = None,
    log: Log = None,
    log_level: Optional[int] = None,
    kernel_btf: object = None,
    pin_root: str = DEFAULT_PIN_ROOT,
    maps: Optional[Mapping[str, Any]] = None,
    pin_programs: Optional[str] = None,
) -> LoadedObject:
    """Make ``spec`` live. ``programs`` limits which programs are loaded (all by default);
    ``log`` receives a line for each step (``pybpf load -v``); ``log_level`` asks the verifier
    for its log on success too. Maps defined with ``pinning = LIBBPF_PIN_BY_NAME`` are pinned
    at ``pin_root/<name>``, and reused from there when already pinned (as libbpf does).
    ``maps``: live maps (``pybpf.maps.Map``) to use instead of creating the object's map of
    the same name, as libbpf's ``bpf_map__reuse_fd``: each must have the shape the object
    asks for; the object holds a duplicate of its fd, the caller still closes its own.
    ``pin_programs``: a directory on bpffs to pin every program in once all are loaded
    (``LoadedObject.pin_programs``); it is checked to be on bpffs before anything is loaded. If
    the load fails at any step, what it pinned so far is unpinned again."""
    if spec.little_endian != (sys.byteorder == "little"):
        order = "little" if spec.little_endian else "big"
        raise BPFError(f"{spec.name}: the object is {order}-endian, this host is not")
    wanted = list(spec.programs) if programs is None else list(programs)
    for name in wanted:
        if name not in spec.programs:
            raise BPFError(f"{spec.name}: no program named '{name}'")
    for name in maps or ():
        if name not in spec.maps:
            raise BPFError(f"{spec.name}: no map named '{name}'")
    if pin_programs is not None:
        from pybpf.sys import bpffs

        bpffs.check_dir(pin_programs)
    obj = LoadedObject(spec)
    try:
        _load_btf(obj, log)
        create_maps(obj, log, pin_root, maps or {})
        code = obj.code = _core_relocate(spec, obj, log, kernel_btf)
        _load_programs(obj, [spec.programs[name] for name in wanted], code, log, log_level)
        fill_slots(obj, log)
        if spec.struct_ops:
            from pybpf import structops

            structops.create_maps(obj, log)
        if pin_programs is not None:
            obj.pin_programs(pin_programs)
            say(log, f"pinned {len(obj.programs)} programs in {pin_programs}")
    except BaseException:
        obj.unpin()
        obj.close()
        raise
    return obj


# --- BTF -----------------------------------------------------------------------------------


def _load_btf(obj: LoadedObject, log: Log) -> None:
    from pybpf.sys import progcmd

    if obj.spec.btf is None:
        return
    # A kernel older than a kind in the object refuses the whole blob: the kinds it lacks are
    # rewritten into ones it knows, every type id kept (libbpf's bpf_object__sanitize_btf).
    btf, obj.btf_func_info = compat.btf_for_kernel(obj.spec.btf, log)
    try:
        obj.btf_fd = progcmd.btf_load(btf.encode())
    except SyscallError as e:
        # Like libbpf: without BTF, maps and programs still load (with less information).
        obj.warnings.append(f"BTF not loaded, continuing without it: {e}")
        say(log, f"btf: kernel refused the object's BTF ({e}); continuing without it")
        return
    say(log, f"btf: loaded {len(btf.types) - 1} types, fd {obj.btf_fd}")


# --- programs ------------------------------------------------------------------------------


def _core_relocate(spec: ObjectSpec, obj: LoadedObject, log: Log, kernel_btf: object) -> dict:
    """The code of every executable section after CO-RE relocation against the kernel's BTF."""
    ext = spec.btf_ext
    relos = getattr(ext, "core_relos", None) if ext is not None else None
    if not relos:
        return dict(spec.sections)
    from pybpf.btf import core

    if kernel_btf is None:
        kernel_btf = compat.kernel_btf_for_core(spec.name, sum(len(r) for r in relos.values()))
    code = dict(spec.sections)
    for section, records in relos.items():
        if section in code and records:
            say(log, f"core: section {section}: {len(records)} relocations")
            insns, unresolved = core.relocate_section(
                list(code[section]), records, spec.btf, kernel_btf, log
            )
            code[section] = tuple(insns)
            if unresolved:
                obj.unresolved[section] = unresolved
    return code


def _load_programs(
    obj: LoadedObject, specs: list, code: dict, log: Log, log_level: Optional[int]
) -> None:
    """Load the programs, the kernel verifying one while Python prepares the next.

    The verifier runs inside BPF_PROG_LOAD, in the calling thread, and ctypes lets go of the
    GIL for the call: so every program but the last is handed to a thread of its own once
    linked, and its verifier runs beside the linking of the next program and beside the other
    verifiers (the kernel verifies a privileged caller's programs in parallel). Outcomes are
    taken in the object's order, and each program's log lines are held until its turn, so the
    log and the error raised are those of loading one program after the other; a program that
    was loaded after one that failed is closed again."""
    jobs: list[_ProgramLoad] = []
    try:
        for n, ps in enumerate(specs):
            job = _ProgramLoad(ps, log_level)
            jobs.append(job)
            try:
                job.prepare(obj, code, log)
            except BaseException:
                for earlier in jobs[:-1]:  # an earlier program's error comes first
                    earlier.take(obj, log)
                job.flush(log)
                raise
            job.run(in_thread=n < len(specs) - 1)
        for job in jobs:
            job.take(obj, log)
    except BaseException:
        for job in jobs:
            job.discard()
        raise


def load_program(
    obj: LoadedObject,
    name: str,
    *,
    log: Log = None,
    log_level: Optional[int] = None,
    wait: bool = True,
):
    """``LoadedObject.load_program``. A program that fails to load leaves the object as it was."""
    if name not in obj.spec.programs:
        raise BPFError(f"{obj.spec.name}: no program named '{name}'")
    if name in obj.programs or any(job.ps.name == name for job in obj.pending):
        raise BPFError(f"{obj.spec.name}: program '{name}' is loaded already")
    job = _ProgramLoad(obj.spec.programs[name], log_level)
    try:
        job.prepare(obj, obj.code, log)
    except BaseException:
        job.flush(log)
        raise
    pending = _Pending(obj, job, log)
    if not wait:
        obj.pending.append(job)
        job.run(in_thread=True)
        return pending
    job.run(in_thread=False)
    return pending.result()


class _Pending:
    """A program handed to the verifier in a thread (``load_program(wait=False)``)."""

    def __init__(self, obj: LoadedObject, job: _ProgramLoad, log: Log) -> None:
        self.obj, self.job, self.log = obj, job, log

    def result(self):
        """Wait for the load; the Program, now the object's, or the load's error."""
        if self.job in self.obj.pending:
            self.obj.pending.remove(self.job)
        self.job.take(self.obj, self.log)
        fill_slots(self.obj, self.log)
        return self.obj.programs[self.job.ps.name]


class _ProgramLoad:
    """One program: prepared (linked, patched) in the caller's thread, then its BPF_PROG_LOAD run
    there or in a thread of its own; ``take`` hands the Program to the object or raises the
    load's error, explained."""

    def __init__(self, ps: ProgramSpec, log_level: Optional[int]) -> None:
        self.ps = ps
        self.log_level = log_level
        self.lines: list[str] = []  # log lines held until the program's turn
        self.prepared: Optional[tuple] = None
        self.prog = None
        self.error: Optional[BaseException] = None
        self.thread = None
        self.taken = False

    def prepare(self, obj: LoadedObject, code: dict, log: Log) -> None:
        hold = self.lines.append if log is not None else None
        self.prepared = _prepare_program(obj, self.ps, code, hold)

    def run(self, in_thread: bool) -> None:
        if not in_thread:
            self._load()
            return
        import threading

        self.thread = threading.Thread(target=self._load, name=f"pybpf-load-{self.ps.name}")
        self.thread.start()

    def _load(self) -> None:
        insns, attach, kwargs = self.prepared
        try:
            self.prog = _load(self.ps, insns, attach, self.log_level, kwargs)
        except BaseException as e:  # raised in the caller's thread by take()
            self.error = e

    def _wait(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def flush(self, log: Log) -> None:
        for line in self.lines:
            say(log, line)
        self.lines.clear()

    def take(self, obj: LoadedObject, log: Log) -> None:
        if self.taken:
            return
        self._wait()
        self.flush(log)
        if self.error is not None:
            e, self.error = self.error, None
            if isinstance(e, VerifierError) and obj.unresolved:
                from pybpf.btf.core_poison import explain_rejection

                explain_rejection(e, obj.linked[self.ps.name].pieces, obj.unresolved)
            if isinstance(e, SyscallError):
                compat.explain_prog_refusal(self.ps, e)
                _explain_missing_type(self.ps, e)
            raise e
        if self.prog is None:
            return  # never prepared (an error before it)
        self.taken = True
        prog, name, insns = self.prog, self.ps.name, self.prepared[0]
        obj.programs[name] = prog
        say(
            log,
            f"program '{name}': loaded {self.ps.prog_type} id {prog.id} tag {prog.tag}, "
            f"{len(insns)} instructions ({len(obj.linked[name].subprograms)} subprograms appended)",
        )

    def discard(self) -> None:
        """After an error: close the program unless the object already owns it."""
        self._wait()
        if self.prog is not None and not self.taken:
            self.prog.close()
            self.prog = None


def _prepare_program(obj: LoadedObject, ps: ProgramSpec, code: dict, log: Log) -> tuple:
    """Link a program and patch in its map fds: (instructions, attach type, load arguments)."""
    from pybpf.btf import ext as btf_ext
    from pybpf.sys.uapi import AttachType

    if not ps.prog_type:
        raise BPFError(f"program '{ps.name}': section '{ps.section}' names no known program type")
    linked = link_program(obj.spec, ps, code)
    pieces = ", ".join(
        f"{p.function} ({'inlined' if p.inlined else p.section})"
        for p in linked.pieces
        if not p.continues
    )
    say(log, f"program '{ps.name}': linked {len(linked.insns)} instructions: {pieces}")
    insns = patch_references(obj, linked, log)
    obj.linked[ps.name] = linked
    kwargs = {}
    if obj.btf_fd is not None and obj.btf_func_info and linked.func_info:
        fi, fi_size = btf_ext.encode_func_info(linked.func_info)
        li, li_size = btf_ext.encode_line_info(linked.line_info, obj.spec.btf)
        kwargs = dict(
            btf_fd=obj.btf_fd,
            func_info=fi,
            func_info_rec_size=fi_size,
            line_info=li,
            line_info_rec_size=li_size,
        )
    attach = AttachType[ps.attach_type] if ps.attach_type else 0
    if ps.needs_btf_target:
        kwargs.update(_attach_target(ps))
    if ps.prog_type == "STRUCT_OPS":
        from pybpf import structops

        # the kernel struct, and the member the program implements (checked by the verifier)
        kwargs["attach_btf_id"], attach = structops.program_target(obj.spec, ps)
    return insns, attach, kwargs


def _load(ps: ProgramSpec, insns: list, attach: int, log_level: Optional[int], kwargs: dict):
    from pybpf.program import Program
    from pybpf.sys.uapi import ProgType

    return Program.load(
        ProgType[ps.prog_type],
        insns,
        license=ps.license,
        name=ps.name,
        expected_attach_type=attach,
        prog_flags=ps.prog_flags,
        kern_version=ps.kern_version,
        section=ps.section,
        log_level=log_level,
        **kwargs,
    )


def _explain_missing_type(ps: ProgramSpec, e: SyscallError) -> None:
    """The kernel's bare EINVAL for a program type it does not have becomes one line naming
    the type (the kernel's BTF lists the types it has)."""
    if e.errno != errno.EINVAL:
        return
    from pybpf.link.support import missing_prog_type

    why = missing_prog_type(ps.prog_type)
    if why:
        raise BPFError(f"program '{ps.name}' (section {ps.section}): {why}") from None


def _attach_target(ps: ProgramSpec) -> dict:
    """fentry/, fexit/, tp_btf/, lsm/, iter/ need the kernel BTF id of what they attach to."""
    from pybpf.btf.kernel import KernelBTF

    if not ps.attach_target:
        raise BPFError(f"program '{ps.name}': section '{ps.section}' names no attach target")
    return KernelBTF.system().attach_btf_id(ps)
