"""``-r F -w OUT [EXPR]`` with the record walk in the kernel.

The per-record work of ``offline._copy_records`` — is this a plain TCP frame, does the filter
accept it, can it be copied as it lies — runs in a BPF program (``bpf/xdptcp_walk.bpf.c``,
shipped compiled as ``xdptcp/data/xdptcp_walk.bpf.o``) over a chunk of the file read straight
into an mmapped array map. Its answer is a list of entries in file order: runs of records to
copy as they lie (the writer's ``copy_records``), and records it hands back, which this module
decides with the Python walk's own code (``look_record``): frames other than plain TCP
(VLAN tags, IP options, extension headers, fragments, anything not TCP), a record longer than
the file's snapshot (written cut to it, as libpcap hands it over) or than any pcap record.
So the output is the Python walk's, byte for byte. The filter is the same compiled program the
capture program runs, spliced into the walker's stub ``xdptcp_filter()``.

The walker is a ``BPF_PROG_TYPE_SYSCALL`` program run by ``BPF_PROG_TEST_RUN``: it needs
``CAP_BPF`` (root) and Linux 5.17 (``bpf_loop``; syscall programs 5.14). ``open_walker`` returns
None whenever it cannot load — not privileged, an older kernel, any refusal — or when
``XDPTCP_OFFLINE_KERNEL=0`` asks for the Python walk; the caller then walks in Python.
Nothing outlives the walk: no pin, no attachment, every fd closed by ``close``.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct

OBJECT = "xdptcp_walk.bpf.o"
PROGRAM = "xdptcp_walk"
IN_MAP, OUT_MAP = "xdptcp_walk_in", "xdptcp_walk_out"
ENV = "XDPTCP_OFFLINE_KERNEL"
# Bytes past a record start the generated filter may load (constant offsets < 0x8000, variable
# ones bounded to 0xffef, 4-byte loads): the input value must hold that past its last record.
FILTER_REACH = 0x10000
STATE = 40  # struct walk_state, in front of the entries in the output value
STOP_MORE, STOP_LIMIT, STOP_FULL, STOP_DAMAGED = 0, 1, 2, 3
NOT_RUN = 0xFF  # ctx.stop before a run: still there after it, the program refused its input

_REC = struct.Struct("=IIII").unpack_from


class WalkCtx(ctypes.Structure):
    """``struct walk_ctx``: the program's context, in and out."""

    _fields_ = [
        (name, ctypes.c_uint32)
        for name in ("pos", "end", "limit", "snap", "n", "kept", "looks", "stop")
    ]


class MappedObject:
    """A loaded object with an input map (``buf``) and an output one (``_out``) mapped, which
    closing unmaps before it closes the object. A context manager."""

    def __init__(self, obj) -> None:
        self._obj, self.buf, self._out = obj, None, None

    def close(self) -> None:
        for m in (self._out, self.buf):
            if m is not None:
                try:
                    m.close()
                except BufferError:  # a view kept by an exception's frames: freed with them
                    pass
        self._obj.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Walker(MappedObject):
    """The loaded walker: its two maps mapped, the run prepared once."""

    def __init__(self, obj) -> None:
        from pybpf.sys.progcmd import prog_run_in_place

        super().__init__(obj)
        try:
            inp, out = obj.maps[IN_MAP], obj.maps[OUT_MAP]
            self.buf = mmap.mmap(inp.fd, pages(inp.value_size))
            self._out = mmap.mmap(out.fd, pages(out.value_size), prot=mmap.PROT_READ)
            self.entries = (out.value_size - STATE) // 8
            self.ctx = WalkCtx()
            self.run = prog_run_in_place(obj.programs[PROGRAM].fd, self.ctx, PROGRAM)
        except BaseException:
            self.close()
            raise

    def entry_list(self, n: int) -> list[int]:
        """The first ``n`` entries, flat: start, end, start, end..."""
        with memoryview(self._out) as v, v[STATE : STATE + 8 * n] as part, part.cast("I") as e:
            return e.tolist()


def pages(n: int) -> int:
    """``n`` bytes rounded up to whole pages: what mmap maps of a map value of ``n``."""
    page = mmap.PAGESIZE
    return (n + page - 1) // page * page


def open_walker(filt):
    """The walker with ``filt`` (a ``CompiledFilter`` or None) spliced in, or None when it
    cannot be had here (the caller walks in Python): not root, no bpf_loop, any refusal."""
    if os.environ.get(ENV, "1") == "0":
        return None
    # Whatever stops it (BPFError from the kernel, OSError, a damaged package's object...), the
    # walker is only a faster way to the same file: the Python walk takes over, without a word.
    try:
        obj = _load(filt)
    except Exception:
        return None
    try:
        walker = Walker(obj)
    except Exception:
        return None
    from xdptcp.mapped import CHUNK
    from xdptcp.pcap import MAX_RECORD

    if len(walker.buf) < CHUNK + MAX_RECORD + 32 + FILTER_REACH:  # an object built otherwise
        walker.close()
        return None
    return walker


def _load(filt):
    from pybpf import load
    from xdptcp.capture import shipped_object

    spec = shipped_object(OBJECT)
    if filt is not None:
        for name, insns in filt.code().items():
            spec.replace_function(name, insns)
        for name, value in filt.rodata_values().items():
            if name in spec.rodata:  # (the walker asks no frame's length: it has the record's)
                spec.rodata[name] = value
    return load(spec)


def copy_records(mp, w, out, walker: Walker, filt) -> int:
    """``offline._copy_records`` with the walk in the kernel: the same records written, the
    same errors raised; returns how many were written."""
    count = out.count
    fd, written, ctx, run = mp.fileno(), 0, walker.ctx, walker.run
    ctx.snap = mp.limit
    keep = filt.in_place if filt is not None else None
    for mm, pos, end in mp.chunks(walker.buf):
        base = mp.base
        view = memoryview(mm)
        try:
            while True:
                ctx.pos, ctx.end = pos, end
                ctx.limit = 0 if count is None else count - written
                ctx.n = ctx.kept = 0
                ctx.stop = NOT_RUN
                run()
                if ctx.stop == NOT_RUN:  # (open_walker checks the sizes: cannot happen)
                    from pybpf import BPFError

                    raise BPFError(f"the offline walker refused the chunk {pos}..{end}")
                e = walker.entry_list(ctx.n)
                for i in range(0, len(e), 2):
                    a, b = e[i], e[i + 1]
                    if a != b:
                        w.copy_records(fd, base + a, view[a:b])
                    else:
                        written += look_record(mp, w, keep, mm, view, base, a, end)
                written += ctx.kept
                pos = ctx.pos
                if written == count:
                    return written
                if ctx.stop == STOP_MORE:
                    break
        finally:
            view.release()
        mp.rest = pos
    return written


def look_record(mp, w, keep, mm, view, base: int, pos: int, end: int) -> int:
    """One record the copy's walks do not copy in a run, decided as the general path decides
    it: 1 when written, 0 when not. Such a record is another frame than plain TCP (the kernel
    walker's), a record longer than the file's snapshot (written cut to it, with the fields of
    its header, as libpcap hands it to tcpdump's ``-w``), or one longer than any pcap record
    (``damaged``). ``mm[pos:]`` holds the whole record."""
    from xdptcp.mapped import damaged
    from xdptcp.packet import is_tcp_frame
    from xdptcp.pcap import MAX_RECORD, record_stamp

    sec, frac, incl, orig = _REC(mm, pos)
    at = pos + 16
    if incl > MAX_RECORD:
        raise damaged(mp, base + pos, end - at, incl)
    cut = min(incl, mp.limit)
    if not is_tcp_frame(mm[at : at + cut]):
        return 0
    if keep is not None and not keep(mm, at, cut, cut, orig):
        return 0
    if cut < incl:
        w.write(record_stamp(sec, frac, mp.nano), mm[at : at + cut], orig)
    else:
        w.copy_records(mp.fileno(), base + pos, view[pos : at + incl])
    return 1
