"""``pybpf run``: load an object, attach its programs, print what they report, clean up.

What eunomia-bpf's ``ecli`` does for a compiled object with no user-space code of its own:

1. load every map and program (:func:`pybpf.load`);
2. attach each program by its section name (:func:`pybpf.attach.attach_all`, libbpf's rules);
3. read every ring buffer and perf buffer map and print each event decoded from its BTF struct
   (see :class:`EventDecoder` for how the struct is found), and the ``bpf_printk`` lines of
   ``trace_pipe`` when a program calls ``bpf_trace_printk``;
4. at the end (Ctrl-C, SIGTERM, or ``duration`` seconds): print the maps by their BTF types,
   histograms drawn as libbpf-tools draw them, then detach and close everything.

Links are bpf_link fds (or perf event fds) owned by this process: they go away when it exits,
however it exits (``kill -9`` included), so nothing stays attached. A tracefs that had to be
mounted for ``trace_pipe`` or a tracepoint is unmounted again at the end.
"""

from __future__ import annotations

import collections
import ctypes
import datetime
import errno
import json
import os
import select
import signal
import sys
import time
from typing import Any, Optional, TextIO

from pybpf.errors import BPFError
from pybpf.events import EventDecoder
from pybpf.gcpause import resume
from pybpf.mapdump import (
    bpftool_text,
    dump_map,
    fields_line,
    format_map,
    not_listable,
    read_elements,
)
from pybpf.object.spec import ObjectSpec
from pybpf.record import record
from pybpf.targets import Targets, attach_options, hint

# Map types whose contents are not data to print at the end: read live, or the fds of other
# objects that user space put there. (The other kinds of pybpf.mapdump.NOT_LISTABLE are named
# in a note saying why they are not shown.)
_NOT_DUMPED = {
    "RINGBUF",
    "USER_RINGBUF",
    "PERF_EVENT_ARRAY",
    "PROG_ARRAY",
    "STACK_TRACE",
    "CGROUP_ARRAY",
    "XSKMAP",
}
_PRINTK_HELPERS = {6, 177}  # bpf_trace_printk, bpf_trace_vprintk
TRACEFS = "/sys/kernel/tracing"


@record
class RunOptions:
    programs: tuple[str, ...] = ()  # attach only these (default: every program)
    json: bool = False  # JSON lines instead of text
    event_type: Optional[str] = None  # the struct events are decoded as (default: found)
    show_maps: bool = True  # print the maps at the end
    duration: Optional[float] = None  # seconds, then stop as on Ctrl-C
    verbose: bool = False  # also dump data sections (.rodata, .bss...) and say more
    hist_label: str = "value"  # the unit printed over log2 histograms (libbpf-tools: usecs...)
    perf_pages: int = 64  # data pages per CPU for each perf buffer
    targets: Targets = Targets()  # where programs go that their sections do not place
    map_format: str = "lines"  # text maps: "lines" (key=... a line) or "bpftool" (its layout)


class Stop(Exception):
    """SIGTERM or SIGHUP: end the run as Ctrl-C does."""


# --- the trace pipe ------------------------------------------------------------------------------


def uses_printk(obj: Any) -> bool:
    """Whether a loaded program calls bpf_trace_printk/bpf_trace_vprintk (what bpf_printk is)."""
    for linked in obj.linked.values():
        for insn in linked.insns:
            if insn.is_call and insn.src == 0 and insn.imm in _PRINTK_HELPERS:
                return True
    return False


def tracefs_mounted(path: str = TRACEFS) -> bool:
    return os.path.exists(os.path.join(path, "trace_pipe"))


def mount_tracefs(path: str = TRACEFS) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tracefs", path.encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise BPFError(
            f"bpf_printk output: tracefs is not mounted and cannot be "
            f"(mount -t tracefs tracefs {path}): {os.strerror(err)}"
        )


def unmount_tracefs(path: str = TRACEFS) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(path.encode(), 2)  # MNT_DETACH: whoever still has a file open keeps it


class TracePipe:
    """``trace_pipe`` read without blocking, in whole lines. Reading consumes the lines: any
    other reader of the pipe misses the ones we read (as with ``bpftool prog tracelog``)."""

    def __init__(self, path: str = TRACEFS) -> None:
        self.fd = os.open(os.path.join(path, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        self._rest = b""

    def read_lines(self) -> list[str]:
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:
            return []
        data = self._rest + b"".join(chunks)
        *lines, self._rest = data.split(b"\n")
        return [ln.decode(errors="replace").strip() for ln in lines if ln.strip()]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _type_name(m: Any) -> str:
    return m.type.name if hasattr(m.type, "name") else str(m.type)


# --- the run -------------------------------------------------------------------------------------


class _Source:
    """One ring or perf buffer being read, with its decoder, and the records taken from it that
    are not printed yet (``Runner.pump``)."""

    def __init__(self, name: str, reader: Any, decoder: EventDecoder) -> None:
        self.name = name
        self.reader = reader
        self.decoder = decoder
        self.pending: collections.deque = collections.deque()


class Runner:
    """``pybpf run`` as an object: :meth:`start`, :meth:`loop`, :meth:`finish` (or a ``with``
    block around start and loop). Output goes to ``out`` (events, maps) and ``err`` (notes)."""

    def __init__(
        self,
        spec: ObjectSpec,
        options: RunOptions = RunOptions(),
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
    ) -> None:
        self.spec = spec
        self.opts = options
        self.out = out
        self.err = err
        self.obj: Any = None
        self.attached: Any = None
        self.sources: list[_Source] = []
        self.trace_pipe: Optional[TracePipe] = None
        self.events = 0
        self.sockets: list[Any] = []  # socket filters' own packet sockets, drained
        self.only_iterators = False  # then the run ends once they are read
        self.stop_requested = False  # set by request_stop: the loop ends at its next turn
        self._later: list[str] = []  # notes said once attached
        self._tracefs_was_mounted = tracefs_mounted()
        self._finished = False
        self._dwarf_types: Any = False  # not read yet

    def _dwarf(self) -> Any:
        """The object's DWARF types, read once on first need (a second or two for objects
        built against vmlinux.h)."""
        if self._dwarf_types is False:
            from pybpf.object.dwarf import dwarf_types

            try:
                with open(self.spec.path, "rb") as f:
                    self._dwarf_types = dwarf_types(f.read())
            except OSError:  # an object read from memory, or moved since
                self._dwarf_types = None
        return self._dwarf_types

    def note(self, msg: str) -> None:
        print(f"pybpf: {msg}", file=self.err, flush=True)

    # --- start ---

    def start(self) -> None:
        from pybpf.attach import attach_all
        from pybpf.loader import load

        self.obj = load(self.spec)
        for w in self.obj.warnings:
            self.note(f"warning: {w}")
        self._open_sources()  # before attaching: no event may find its buffer unread
        if uses_printk(self.obj):
            self._open_trace_pipe()
        wanted = list(self.opts.programs) or None
        options = attach_options(self.obj, self.opts.targets, wanted)
        self.attached = attach_all(self.obj, wanted, options)
        left_out = self._left_out()
        links = getattr(self.attached, "links", {})
        if not links:
            self.attached = None
            raise BPFError(
                f"{self.spec.name}: no program could be attached"
                + (f" ({left_out})" if left_out else "")
            )
        if left_out:
            self.note(f"not attached, their sections name no target: {left_out}")
        progs = ", ".join(self._described(n, options.get(n, {})) for n in links)
        self._watch_sockets(links)
        self.note(
            f"attached {progs}; reading "
            + (", ".join(s.name for s in self.sources) or "no event buffers")
            + (" and trace_pipe" if self.trace_pipe else "")
            + (f" and {len(self.sockets)} packet socket(s)" if self.sockets else "")
            + "; Ctrl-C to stop"
        )
        for msg in self._later:
            self.note(msg)
        self._read_iterators(links)

    def _left_out(self) -> str:
        """The skipped programs in one line, grouped by the option that would attach them."""
        by_hint: dict[str, list[str]] = {}
        for name in getattr(self.attached, "skipped", {}):
            by_hint.setdefault(hint(self.obj.programs[name].section), []).append(name)
        return "; ".join(f"{', '.join(names)} ({h})" for h, names in by_hint.items())

    def _described(self, name: str, options: dict) -> str:
        if name not in self.obj.programs:
            return f"struct_ops {name} (map id {self.obj.maps[name].id})"
        where = " ".join(
            str(options[k]) for k in ("interface", "direction", "cgroup", "netns", "target")
            if k in options
        )  # fmt: skip
        if "map" in options:
            where = f"map {getattr(options['map'], 'name', '?')}"
        return f"{name} (prog id {self.obj.programs[name].id})" + (f" on {where}" if where else "")

    def _watch_sockets(self, links: dict) -> None:
        """Packet sockets opened for socket filters: read (and dropped) as they fill."""
        self.sockets = [lk for lk in links.values() if getattr(lk, "owns_socket", False)]

    def _read_iterators(self, links: dict) -> None:
        """An iterator prints when it is read: one pass each, as `cat` of its pinned link."""
        from pybpf.link.tracing import IterLink

        iters = {n: lk for n, lk in links.items() if isinstance(lk, IterLink)}
        for name, link in iters.items():
            text = link.read().decode(errors="backslashreplace")
            if self.opts.json:
                for line in text.splitlines():
                    self._emit({"iter": name, "line": line}, line)
            else:
                self.out.write(text)
        self.out.flush()
        self.only_iterators = len(iters) == len(links) and not self.sources

    def _open_sources(self) -> None:
        from pybpf.perfbuf import PerfBuffer
        from pybpf.ringbuf import RingBuffer

        btf = self.spec.btf
        for name, m in self.obj.maps.items():
            kind = _type_name(m)
            if kind == "RINGBUF":
                reader: Any = RingBuffer(m)
            elif kind == "PERF_EVENT_ARRAY":
                reader = PerfBuffer(m, page_count=self.opts.perf_pages)
            else:
                continue
            decoder = EventDecoder(
                btf, kind == "PERF_EVENT_ARRAY", self.opts.event_type, self.note, name, self._dwarf
            )
            self.sources.append(_Source(name, reader, decoder))

    def _open_trace_pipe(self) -> None:
        """Open trace_pipe before attaching (so no line of ours is taken for an old one). What
        there is to say about it is said once attached: a run that fails says one line."""
        if not self._tracefs_was_mounted:
            try:
                mount_tracefs()
            except BPFError as e:
                self._later.append(f"{e}; bpf_printk output not shown")
                return
        try:
            self.trace_pipe = TracePipe()
        except OSError as e:
            # The kernel lets one process at a time read trace_pipe (EBUSY for the next).
            why = "another process is reading it" if e.errno == errno.EBUSY else e.strerror
            self._later.append(f"bpf_printk output not shown: {TRACEFS}/trace_pipe: {why}")
            return
        # trace_pipe is the host's: lines left unread by an earlier user are not ours
        stale = len(self.trace_pipe.read_lines())
        if stale:
            self._later.append(f"skipped {stale} trace_pipe lines written before this run")

    # --- loop ---

    def request_stop(self) -> None:
        """End :meth:`loop` at its next turn (within a second). Safe from a signal handler or
        another thread; what is still in the rings is printed by :meth:`finish`."""
        self.stop_requested = True

    def loop(self) -> None:
        """Print events until SIGINT (KeyboardInterrupt), SIGTERM, SIGHUP, the duration's end
        or :meth:`request_stop`."""
        resume()  # started: collect again what the events leave (pybpf.gcpause)
        deadline = None if self.opts.duration is None else time.monotonic() + self.opts.duration
        ep = select.epoll()
        try:
            for s in self.sources:
                ep.register(s.reader.fileno(), select.EPOLLIN)
            if self.trace_pipe is not None:  # trace_pipe polls readable when lines arrive
                ep.register(self.trace_pipe.fd, select.EPOLLIN)
            for filt in self.sockets:
                ep.register(filt.socket.fileno(), select.EPOLLIN)
            while not (self.only_iterators or self.stop_requested):
                self.pump()
                timeout = 1.0
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    timeout = min(timeout, left)
                ep.poll(timeout)
        finally:
            ep.close()

    def pump(self) -> int:
        """Print what is pending now; the number of events printed.

        A record leaves ``pending`` once its line is made: the first of a size waits for the
        search of the object's BTF and DWARF for its struct (seconds on a slow machine), and a
        Ctrl-C meanwhile leaves it, and those after it, to the pump of ``finish``, which runs
        with the stop signals ignored. The ring has let go of them already."""
        n = 0
        for s in self.sources:
            pending = s.pending
            pending.extend(s.reader.drain())
            while pending:
                line = self._event_line(s, pending[0])
                pending.popleft()
                self.out.write(line)
                n += 1
            lost = s.reader.take_lost() if hasattr(s.reader, "take_lost") else 0
            if lost:
                self._print_lost(s, lost)
        for filt in self.sockets:
            filt.drain()
        printed = n
        if self.trace_pipe is not None:
            for line in self.trace_pipe.read_lines():
                self._emit({"printk": line}, f"printk {line}")
                printed += 1
        if printed:
            # One write for the lot: a program tracing write(2) sees ours too, and a write per
            # line would feed it a line per line it printed.
            self.out.flush()
        self.events += n
        return n

    def _emit(self, fields: dict, text: str) -> None:
        self.out.write(self._line(fields, text))

    def _line(self, fields: dict, text: str) -> str:
        """One output line, its newline included (written in one piece)."""
        now = datetime.datetime.now()
        if self.opts.json:
            return json.dumps({"time": now.isoformat(timespec="microseconds"), **fields}) + "\n"
        return f"{now:%H:%M:%S.%f} {text}\n"

    def _event_line(self, s: _Source, rec: bytes) -> str:
        value = s.decoder.decode(rec)
        if value is None:
            return self._line({"map": s.name, "data": rec.hex()}, f"{s.name} data={rec.hex()}")
        return self._line({"map": s.name, "event": value}, f"{s.name} {fields_line(value)}")

    def _print_lost(self, s: _Source, lost: int) -> None:
        self._emit({"map": s.name, "lost": lost}, f"{s.name} lost {lost} events (ring full)")

    # --- finish ---

    def finish(self) -> None:
        """Drain what is left, print the maps, detach, close, unmount what we mounted."""
        if self._finished:
            return
        self._finished = True
        try:
            if self.obj is not None and self.attached is not None:  # not after a failed start
                self.pump()
                if self.opts.show_maps:
                    self.print_maps()
        finally:
            self.close()

    def print_maps(self) -> None:
        """Each map's contents, as the options say. A map user space cannot list is named in a
        note saying why; a map that cannot be read does not keep the others from being
        printed: its error is raised once they are (all of them in one line)."""
        failed = []
        for name, m in self.obj.maps.items():
            ms = self.spec.maps.get(name)
            kind = _type_name(m)
            if ms is None or kind in _NOT_DUMPED or (ms.is_data_section and not self.opts.verbose):
                continue
            why = not_listable(m)
            if why is not None:
                self.note(f"map {name} ({kind.lower()}) not shown: {why}")
                continue
            try:
                self._print_map(name, m, kind.lower(), ms)
            except BPFError as e:
                failed.append(str(e))
        self.out.flush()
        if failed:
            raise BPFError("; ".join(failed))

    def _print_map(self, name: str, m: Any, kind: str, ms: Any) -> None:
        btf, key_id, value_id = self.spec.btf, ms.key_type_id, ms.value_type_id
        if self.opts.json:
            entries = dump_map(m, btf, key_id, value_id)
            text = json.dumps({"map": name, "type": kind, "entries": entries})
        elif self.opts.map_format == "bpftool":
            text = f"map {name} ({kind}):\n" + bpftool_text(m, btf, key_id, value_id).rstrip("\n")
        else:
            elements = read_elements(m)
            label = self.opts.hist_label
            text = "\n".join(format_map(name, kind, elements, btf, key_id, value_id, label))
        print(text, file=self.out)

    def close(self) -> None:
        self.sockets = []
        if self.attached is not None:
            self.attached.close()
            self.attached = None
        for s in self.sources:
            s.reader.close()
        self.sources = []
        if self.trace_pipe is not None:
            self.trace_pipe.close()
            self.trace_pipe = None
        if self.obj is not None:
            self.obj.close()
            self.obj = None
        if not self._tracefs_was_mounted and tracefs_mounted():
            unmount_tracefs()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def run(spec: ObjectSpec, options: RunOptions = RunOptions()) -> int:
    """The whole ``pybpf run``: start, print events until Ctrl-C/SIGTERM/duration, finish.
    Returns the number of events printed.

    The first SIGINT, SIGTERM or SIGHUP (the terminal closed) ends the run; those that come
    while it cleans up are ignored, so that a Ctrl-C pressed again cannot stop the detaching
    half-way: a clsact filter (tc on a kernel without tcx) outlives the process, unlike a
    link."""
    stopping = False
    runner = Runner(spec, options)

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        # The loop checks the request too: the exception raised here is lost when the signal
        # lands where CPython only prints exceptions (a __del__, an import's module-lock
        # callback), and a run that relied on it alone would then go on, deaf to every later
        # signal.
        runner.request_stop()
        raise KeyboardInterrupt if signum == signal.SIGINT else Stop()

    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {sig: signal.signal(sig, on_signal) for sig in stops}
    try:
        with runner:
            try:  # a signal just after the "attached" note, before the loop, ends it alike
                runner.start()
                runner.loop()
            except (KeyboardInterrupt, Stop):
                pass
            finally:
                stopping = True  # the end of the duration, or an error: clean-up from here on
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return runner.events
