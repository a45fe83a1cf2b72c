"""``pybpf``: show each stage of loading a BPF object, or load it.

    pybpf inspect OBJ [--json]          what the object holds: sections, programs, maps, relocations
    pybpf disasm OBJ [PROGRAM]          linked instructions, relocations marked, source lines
    pybpf load OBJ [--pin DIR] [-v]     load every map and program; -v shows each step
    pybpf test-run OBJ PROGRAM --data FILE [--repeat N]
    pybpf run OBJ [--prog NAME ...] [--attach PROG=TARGET ...] [-i IFACE] [--cgroup PATH]
              [--netns PATH] [--exe PATH] [--json] [--event-type TYPE] [--no-maps] [-d SECONDS]

A thin layer over the library: each command is a few calls to ``pybpf.ObjectSpec`` and friends.
A user mistake gives one line ``pybpf: error: ...`` and exit status 1 (2 for bad usage).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys

from pybpf.argparser import ArgumentParser
from pybpf.errors import BPFError, VerifierError
from pybpf.loader import load
from pybpf.object.spec import ObjectSpec
from pybpf.sys.uapi import ProgType
from pybpf.version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see pybpf/__init__.py
if TYPE_CHECKING:
    from typing import NoReturn, Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command and return its exit status. Without ``argv`` this is the process itself
    (the console script, ``python -m pybpf``, the zipapp, the .deb's wrapper): it reads
    ``sys.argv`` and ends the process when the command is done (see ``_end_process``)."""
    code = _command(argv)
    if argv is None:
        _end_process(code)
    return code


def _command(argv: Optional[Sequence[str]]) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    # Only the command given gets its options: the others' are argparse work no command needs
    # (``pybpf --help`` lists the commands from their one-line helps, which every command has).
    try:
        parser = build_parser(only=args[0] if args and args[0] in COMMANDS else None)
        args = parser.parse_args(args)
        return args.func(args)
    except BPFError as e:
        _error(str(e))
    except BrokenPipeError:
        # the reader went away (pybpf inspect | head): not an error. Before OSError, whose
        # subclass it is, or it would be reported as one.
        _quiet_stdout()
        return 0
    except OSError as e:
        _error(f"{e.filename or ''}: {e.strerror}" if e.filename else str(e))
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of ours: still one line, and say so
        _error(f"internal error ({type(e).__name__}: {e}); please report it with the object")
    return 1


def _quiet_stdout() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _end_process(code: int) -> NoReturn:
    """Exit without the interpreter's teardown (freeing every module and object one by one:
    about 5 ms of a 60 ms ``pybpf load``). What of it matters is done here first: the atexit
    handlers (cgroup attachments detached, struct_ops unregistered) and standard output and
    error flushed, a reader that went away being no error (as in ``_command``). The kernel
    objects' file descriptors are closed by the kernel as the process ends, which is all their
    finalizers would do. Every thread pybpf starts has been joined by the time a command
    returns."""
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except OSError as e:
        _error(f"standard output: {e.strerror}")
        code = code or 1
    try:
        sys.stderr.flush()
    except OSError:
        code = code or 1
    os._exit(code)


def _error(msg: str) -> None:
    # Names read from a damaged object may hold control characters: escape them so the
    # error stays one line and cannot drive the terminal.
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)
    print(f"pybpf: error: {safe}", file=sys.stderr)


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The command line; also read by the build to write pybpf(8) and its bash completion. With
    ``only``, every command is listed but only that one gets its options."""
    p = ArgumentParser(prog="pybpf", description="A pure-Python eBPF loader.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_options) in COMMANDS.items():
        s = sub.add_parser(name, help=help_text)
        if only is None or only == name:
            add_options(s)
    return p


OBJ_HELP = "a BPF object file, as clang -target bpf builds it"


def _inspect_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("object", help=OBJ_HELP)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_inspect)


def _disasm_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("object", help=OBJ_HELP)
    s.add_argument("program", nargs="?", help="the program to show (default: all of them)")
    s.set_defaults(func=cmd_disasm)


def _map_option(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="NAME.FIELD=N",
        help="size a map before load (FIELD: max_entries or value_size), as a tool's own loader "
        "does; e.g. stackmap.value_size=1016",
    )


def _map_sizes(spec: ObjectSpec, settings: Sequence[str]) -> None:
    """``--map NAME.FIELD=N``: ``ObjectSpec.set_map_size``."""
    for setting in settings:
        target, eq, text = setting.partition("=")
        name, dot, field = target.rpartition(".")
        if not (eq and dot and name) or field not in ("max_entries", "value_size"):
            raise BPFError(f"--map {setting}: expected NAME.max_entries=N or NAME.value_size=N")
        try:
            value = int(text, 0)
        except ValueError:
            raise BPFError(f"--map {setting}: {field} must be a number") from None
        spec.set_map_size(name, **{field: value})


def _load_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("object", help=OBJ_HELP)
    s.add_argument("--pin", metavar="DIR", help="pin each program at DIR/<name>")
    _map_option(s)
    s.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show each loading step (and the whole verifier log if a program is rejected)",
    )
    s.set_defaults(func=cmd_load)


def _test_run_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("object", help=OBJ_HELP)
    s.add_argument("program", help="the program to run")
    s.add_argument(
        "--data", required=True, metavar="FILE", help="the packet (a syscall program: its context)"
    )
    s.add_argument("--repeat", type=int, default=1, metavar="N", help="run it N times (default 1)")
    s.set_defaults(func=cmd_test_run)


def _run_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("object")
    _map_option(s)
    s.add_argument(
        "--prog", action="append", default=[], metavar="NAME", help="attach only this program"
    )
    s.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="PROG=TARGET",
        help="where PROG goes: an interface (xdp, tc as IFACE[:egress], socket), "
        "BINARY:FUNCTION (uprobe), a cgroup, a netns, a sockmap, freq=HZ (perf_event)",
    )
    s.add_argument(
        "-i",
        "--interface",
        metavar="IFACE",
        help="the interface of xdp, tc (ingress unless the section says) and socket programs",
    )
    s.add_argument("--cgroup", metavar="PATH", help="the cgroup v2 directory of cgroup programs")
    s.add_argument(
        "--netns", metavar="PATH", help="the network namespace of sk_lookup/flow_dissector"
    )
    s.add_argument(
        "--exe", metavar="PATH", help="the binary /proc/self/exe stands for in uprobe sections"
    )
    s.add_argument("--json", action="store_true", help="JSON lines instead of text")
    s.add_argument(
        "--event-type", metavar="TYPE", help="decode events as this struct (default: found)"
    )
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a global variable (const volatile: .rodata) before load, e.g. targ_pid=42",
    )
    s.add_argument("--no-maps", action="store_true", help="do not print the maps at the end")
    s.add_argument(
        "--map-format",
        choices=("lines", "bpftool"),
        default="lines",
        help="maps at the end as a line per element (default) or as bpftool map dump prints them",
    )
    s.add_argument("-d", "--duration", type=float, metavar="SECONDS", help="stop after SECONDS")
    s.add_argument(
        "--hist-unit", default="value", metavar="LABEL", help="label of log2 histograms (usecs…)"
    )
    s.add_argument(
        "-v", "--verbose", action="store_true", help="also print data sections (.rodata, .bss…)"
    )
    s.set_defaults(func=cmd_run)


# name: (the one line `pybpf --help` shows, what adds the command's options)
COMMANDS = {
    "inspect": ("show sections, programs, maps and relocations", _inspect_options),
    "disasm": ("disassemble programs after linking", _disasm_options),
    "load": ("load every map and program into the kernel", _load_options),
    "test-run": ("run a program once (or N times) on given data", _test_run_options),
    "run": (
        "load, attach every program, print its events and bpf_printk lines; "
        "on Ctrl-C print the maps and detach",
        _run_options,
    ),
}


# --- inspect -------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from pybpf.describe import describe, format_description

    spec = ObjectSpec.from_file(args.object)
    desc = describe(spec)
    if args.json:
        import json

        print(json.dumps(desc, indent=2))
    else:
        print(format_description(desc))
    return 0


# --- disasm --------------------------------------------------------------------------------


def cmd_disasm(args: argparse.Namespace) -> int:
    from pybpf.describe import disassemble_program

    spec = ObjectSpec.from_file(args.object)
    names = [args.program] if args.program else list(spec.programs)
    for name in names:
        if name not in spec.programs:
            raise BPFError(f"{spec.name}: no program named '{name}'")
    for n, name in enumerate(names):
        if n:
            print()
        print("\n".join(disassemble_program(spec, spec.programs[name])))
    return 0


# --- load ----------------------------------------------------------------------------------


def cmd_load(args: argparse.Namespace) -> int:
    spec = ObjectSpec.from_file(args.object)
    _map_sizes(spec, args.map)
    log = (lambda line: print(f"  {line}", file=sys.stderr)) if args.verbose else None
    try:
        # all or nothing: a program that cannot be pinned unpins what this load pinned
        obj = load(spec, log=log, pin_programs=args.pin)
    except VerifierError as e:
        if args.verbose:  # the whole log first, then the one-line summary as the error
            print(e.log.rstrip(), file=sys.stderr)
        raise
    with obj:
        for name, prog in obj.programs.items():
            n = len(obj.linked[name].insns)
            ps = spec.programs[name]
            print(f"{name}: {ps.prog_type.lower()} id {prog.id} tag {prog.tag} insns {n}")
        for warning in obj.warnings:
            print(f"pybpf: warning: {warning}", file=sys.stderr)
    return 0


# --- test-run ------------------------------------------------------------------------------


def cmd_test_run(args: argparse.Namespace) -> int:
    spec = ObjectSpec.from_file(args.object)
    if args.program not in spec.programs:
        raise BPFError(f"{spec.name}: no program named '{args.program}'")
    if not 1 <= args.repeat <= 0xFFFFFFFF:  # bpf_attr.test.repeat is a u32
        raise BPFError(f"--repeat must be from 1 to {0xFFFFFFFF} (got {args.repeat})")
    with open(args.data, "rb") as f:
        data = f.read()
    with load(spec) as obj:  # the whole object: tail calls may jump to its other programs
        prog = obj.programs[args.program]
        if prog.type == ProgType.SYSCALL:
            return _test_run_syscall(prog, data, args.repeat)
        res = prog.test_run(data, repeat=args.repeat)
    print(f"retval {res.retval}")
    print(f"duration {res.duration_ns} ns")
    print(f"data_out {len(res.data_out)} bytes: {res.data_out[:64].hex()}")
    return 0


def _test_run_syscall(prog, data: bytes, repeat: int) -> int:
    """A syscall program (``SEC("syscall")``) has no packet: its one argument is a context,
    which the kernel copies in and, after the run, back over the caller's buffer. ``--data``
    is that context; the kernel takes no repeat count for this type."""
    import ctypes

    from pybpf.sys import progcmd

    if repeat != 1:
        raise BPFError("--repeat: the kernel runs a syscall program once a test run")
    if not data:
        raise BPFError("--data: a syscall program's data is its context, and this is empty")
    ctx = ctypes.create_string_buffer(data, len(data))
    run = progcmd.prog_run_in_place(prog.fd, ctx, prog.name)
    run()
    retval = int.from_bytes(run.attr.raw[4:8], sys.byteorder)  # bpf_attr.test.retval
    print(f"retval {retval}")
    print(f"ctx_out {len(ctx.raw)} bytes: {ctx.raw[:64].hex()}")
    return 0


# --- run -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from pybpf.run import RunOptions, run
    from pybpf.targets import Targets

    if args.duration is not None and args.duration <= 0:
        raise BPFError("--duration must be a positive number of seconds")
    spec = ObjectSpec.from_file(args.object)
    for name in args.prog:
        if name not in spec.programs:
            raise BPFError(f"{spec.name}: no program named '{name}'")
        if args.prog.count(name) > 1:
            raise BPFError(f"--prog: program '{name}' is given twice")
    for assignment in args.set:
        _set_global(spec, assignment)
    _map_sizes(spec, args.map)
    attach = Targets.parse_attach(args.attach)
    for name, _ in attach:
        if name not in spec.programs:
            known = ", ".join(spec.programs)
            raise BPFError(f"--attach {name}=...: no program named '{name}' (programs: {known})")
        if args.prog and name not in args.prog:  # it would not be attached: say so
            raise BPFError(
                f"--attach {name}=...: '{name}' is not one of the programs --prog attaches "
                f"({', '.join(args.prog)}); add --prog {name}"
            )
    targets = Targets(attach, args.interface, args.cgroup, args.netns, args.exe)
    options = RunOptions(
        targets=targets,
        programs=tuple(args.prog),
        json=args.json,
        event_type=args.event_type,
        show_maps=not args.no_maps,
        duration=args.duration,
        verbose=args.verbose,
        hist_label=args.hist_unit,
        map_format=args.map_format,
    )
    run(spec, options)
    return 0


def _set_global(spec: ObjectSpec, assignment: str) -> None:
    """``NAME=VALUE`` into .rodata or .data/.bss, read as the variable's BTF type says
    (``_global_value``)."""
    name, eq, text = assignment.partition("=")
    if not eq or not name:
        raise BPFError(f"--set {assignment}: expected NAME=VALUE")
    if name not in spec.rodata and name not in spec.data:
        # a function's static (handle_exec.____fmt, bpf_printk's format) is no setting
        named = {
            where: [n for n in view.names() if "." not in n]
            for where, view in ((".rodata", spec.rodata), (".data/.bss", spec.data))
        }
        known = [f"{where}: {', '.join(names)}" for where, names in named.items() if names]
        raise BPFError(
            f"--set {name}: {spec.name} has no global variable '{name}'"
            + (f" (known: {'; '.join(known)})" if known else " (it has none)")
        )
    view = spec.rodata if name in spec.rodata else spec.data
    view[name] = _global_value(spec, name, text)


def _global_value(spec: ObjectSpec, name: str, text: str) -> object:
    """What ``--set NAME=TEXT`` means for the variable's type: a number for an integer (0x,
    0o, 0b prefixes; leading zeros are decimal, as ``atoi`` reads them in a C tool's options),
    true/false (or 1/0) for a bool, an enumerator's name or number for an enum, the text for a
    char array. Anything else, or a text that is not of the type, is a one-line error: a typo
    must not become the bytes of a pid. Without BTF, a number if it reads as one, else text."""
    from pybpf.btf.types import Array, Enum, Int, IntEncoding

    var = spec.variables[name]
    btf = spec.btf
    t = btf.type(btf.resolve(var.type_id)) if btf is not None and var.type_id else None

    def number() -> Optional[int]:
        for base in (0, 10):
            try:
                return int(text.strip(), base)
            except ValueError:
                pass
        return None

    if t is None:
        value = number()
        return text if value is None else value
    if isinstance(t, Int) and t.encoding & IntEncoding.BOOL:
        truth = {"true": 1, "1": 1, "false": 0, "0": 0}.get(text.strip().lower())
        if truth is None:
            raise BPFError(f"--set {name}={text}: '{name}' is a bool: give true or false")
        return truth
    if isinstance(t, Enum):
        by_name = {v.name: v.value for v in t.values}
        value = by_name.get(text.strip(), number())
        if value is None:
            raise BPFError(
                f"--set {name}={text}: '{name}' is an enum: give one of "
                f"{', '.join(by_name)} or a number"
            )
        return value
    if isinstance(t, Int):
        value = number()
        if value is None:
            raise BPFError(f"--set {name}={text}: '{name}' is an integer: give a number")
        if value < 0 and not t.encoding & IntEncoding.SIGNED:
            raise BPFError(f"--set {name}={text}: '{name}' is unsigned")
        return value
    elem = btf.type(btf.resolve(t.type)) if isinstance(t, Array) else None
    if isinstance(elem, Int) and elem.size == 1:
        return text  # a char array: the text, zero-padded (too long is an error of its own)
    raise BPFError(
        f"--set {name}: '{name}' is not a number, bool, enum or char array; set it from "
        "Python (ObjectSpec.rodata / .data)"
    )


if __name__ == "__main__":
    sys.exit(main())
