"""How ``pybpf run`` reads the records of ring buffers and perf buffers: each decoded from a
struct of the object's BTF (:class:`EventDecoder` says how the struct is found), or shown as
hex when none fits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from pybpf.btf.dump import ValueReader
from pybpf.btf.model import TypeQueries
from pybpf.btf.types import MODIFIERS, Array, Int, IntEncoding, Ptr, Struct, Typedef, Union, Var
from pybpf.errors import BPFError

if TYPE_CHECKING:
    from pybpf.object.dwarf import DwarfTypes


def perf_sample_size(struct_size: int) -> int:
    """The size a perf sample of ``struct_size`` bytes arrives with: the kernel pads the u32
    size word plus the data to a multiple of 8."""
    return ((4 + struct_size + 7) & ~7) - 4


Found = tuple  # (types, type id): the BTF (the object's, or its DWARF's) and the struct


class EventDecoder:
    """Turns the records of one ring/perf buffer into JSON data by a struct.

    The struct is the one named with ``event_type`` if given. Otherwise, at the first record of
    each size, a named struct whose size matches the record (exactly for a ring buffer; for a
    perf buffer once padded as the kernel pads samples), looked for in this order:

    1. in the object's BTF, a struct a global variable points at
       (``const struct event *unused __attribute__((unused));``: the convention of bpf2go and
       ecli, which keeps a struct used only through local pointers in the BTF);
    2. in the BTF, a struct named ``event``; then the only struct of that size among the
       object's own: not the kernel types CO-RE brought into the BTF (``task_struct`` and every
       struct it holds), but those the object's DWARF declares outside vmlinux.h and the
       system's and UAPI headers, as in 3 (an object without DWARF: those the running kernel's
       BTF does not define);
    3. in the object's DWARF (``-g``), which holds the structs the BTF leaves out: one named
       ``event``, then the only one of that size declared outside vmlinux.h and the system's
       and UAPI headers (``struct iphdr`` of ``<linux/ip.h>`` is no program's event).

    Records no struct fits are shown as hex. A record of another size than the struct named
    with ``event_type`` is decoded as far as it goes (see :meth:`_unfit`)."""

    def __init__(
        self,
        btf: Optional[TypeQueries],
        perf: bool,
        event_type: Optional[str] = None,
        note: Callable[[str], None] = lambda msg: None,
        map_name: str = "",
        dwarf: Callable[[], Optional[DwarfTypes]] = lambda: None,
    ) -> None:
        self.btf = btf
        self.perf = perf
        self.note = note
        self.map_name = map_name
        self._dwarf = dwarf
        self._decoders: dict[int, Callable[[bytes], Any]] = {}  # by record size
        self._readers: dict[int, ValueReader] = {}  # by id() of the types they read
        self._own: Optional[Callable[[str], bool]] = None
        self._said: set[str] = set()  # the notes on records the named struct does not fit
        self._forced: Optional[Found] = None
        if event_type:
            self._forced = self._named(event_type)

    def _named(self, name: str) -> Found:
        name = name.removeprefix("struct ").strip()
        for types in (self.btf, self._dwarf()):
            if types is None:
                continue
            ids = [i for i in types.find_all(name, Struct) if types.type(i).size]
            if ids:
                return types, ids[0]
        raise BPFError(f"--event-type: the object has no struct named '{name}'")

    def decode(self, data: bytes) -> Any:
        """The record's JSON data, or None (shown as hex) when no struct fits it."""
        decode = self._decoders.get(len(data))
        if decode is None:
            decode = self._decoders[len(data)] = self._decoder_for(len(data))
        try:
            return decode(data)
        except BPFError:
            return None

    def _decoder_for(self, size: int) -> Callable[[bytes], Any]:
        found = self._forced or self._find(size)
        if found is None:
            return lambda data: None
        types, type_id = found
        read = self._reader(types)
        if self._forced is None or self._fits(types.type(type_id).size, size):
            return lambda data: read(type_id, data)
        return self._unfit(types, type_id, size)

    def _reader(self, types: TypeQueries) -> ValueReader:
        reader = self._readers.get(id(types))
        if reader is None:
            reader = self._readers[id(types)] = ValueReader(types)
        return reader

    def _fits(self, struct_size: int, size: int) -> bool:
        return (perf_sample_size(struct_size) if self.perf else struct_size) == size

    def _find(self, size: int) -> Optional[Found]:
        found = self._find_in(self.btf, size, "", self._is_own) if self.btf is not None else None
        if found is None:
            dwarf = self._dwarf()
            if dwarf is not None:
                system = dwarf.system
                found = self._find_in(dwarf, size, " in the DWARF", lambda n: n not in system)
        if found is None:
            self.note(
                f"events of map '{self.map_name}' ({size} bytes): the object has no struct of "
                "its own of that size (in its BTF or DWARF), shown as hex (name one with "
                "--event-type)"
            )
        return found

    def _find_in(
        self,
        types: TypeQueries,
        size: int,
        where: str,
        own: Callable[[str], bool] = lambda name: True,
    ) -> Optional[Found]:
        for why, fits in self._choices(types, size, own):
            if len(fits) == 1 or (fits and why != "the only struct of that size"):
                self.note(
                    f"events of map '{self.map_name}' ({size} bytes) decoded as struct "
                    f"{types.type(fits[0]).name}{where} ({why})"
                )
                return types, fits[0]
        return None

    def _choices(
        self, types: TypeQueries, size: int, own: Callable[[str], bool]
    ) -> Iterator[tuple[str, list[int]]]:
        """The structs of each step that fit, a step at a time (``own`` may read the DWARF)."""
        hinted, named = _candidate_structs(types)

        def fitting(ids: list[int]) -> list[int]:
            return list(dict.fromkeys(i for i in ids if self._fits(types.type(i).size, size)))

        yield "pointed at by a global variable", fitting(hinted)
        sized = fitting(named)
        yield "named event", [i for i in sized if types.type(i).name == "event"]
        yield "the only struct of that size", [i for i in sized if own(types.type(i).name)]

    def _is_own(self, name: str) -> bool:
        """Whether a struct of the object's BTF is the object's own, not a kernel type that
        CO-RE brought in: one its DWARF declares outside vmlinux.h and the system's headers
        (what the DWARF search takes), or for an object without DWARF, one the running kernel's
        BTF does not define (neither known: none is, and no struct is chosen by its size
        alone)."""
        if self._own is None:
            dwarf = self._dwarf()
            kernel = _kernel_btf() if dwarf is None else None
            if dwarf is not None:
                own = {t.name for t in dwarf.types if isinstance(t, Struct)}
                own -= dwarf.system
                self._own = own.__contains__
            elif kernel is not None:
                self._own = lambda n: not kernel.find_all(n, Struct)
            else:
                self._own = lambda n: False
        return self._own(name)

    def _unfit(self, types: TypeQueries, type_id: int, size: int) -> Callable[[bytes], Any]:
        """How records of ``size`` bytes read as the named struct of another size, said once
        per map for each way. A shorter record gives the members it holds whole, and of an
        array it ends inside the elements it holds (a string or buffer sent only as far as it
        is used); a longer one gives the struct from its first bytes, and the rest to the
        struct's flexible array member (``char args[]``) if it ends with one, else leaves it
        out."""
        struct, read = types.type(type_id), self._reader(types)
        what = f"events of map '{self.map_name}' ({size} bytes) are"
        if size < struct.size:
            self._note_once(
                "shorter",
                f"{what} shorter than struct {struct.name} ({struct.size} bytes): each shows "
                "the members it holds",
            )
            past, cut = _members_past(types, struct, size)

            def shorter(data: bytes) -> Any:
                value = read(type_id, data.ljust(struct.size, b"\0"))
                for name in past:
                    value.pop(name, None)
                if cut is not None:
                    name, elem_id, start = cut
                    value[name] = _elements_of(read, types, elem_id, data[start:])
                return value

            return shorter
        flexible = _flexible_member(types, struct)
        rest = f"in its member '{flexible[0]}'" if flexible else "not shown"
        self._note_once(
            "longer",
            f"{what} longer than struct {struct.name} ({struct.size} bytes): each shows it "
            f"from its first {struct.size} bytes, the rest {rest}",
        )
        if flexible is None:
            return lambda data: read(type_id, data)
        name, elem_id = flexible

        def longer(data: bytes) -> Any:
            value = read(type_id, data)
            value[name] = _elements_of(read, types, elem_id, data[struct.size :])
            return value

        return longer

    def _note_once(self, way: str, msg: str) -> None:
        if way not in self._said:
            self._said.add(way)
            self.note(msg)


def _candidate_structs(btf: TypeQueries) -> tuple[list[int], list[int]]:
    types = getattr(btf, "types", [])
    hinted: list[int] = []
    named: list[int] = []
    for tid, t in enumerate(types):
        if isinstance(t, Struct) and not isinstance(t, Union) and t.name and t.size:
            named.append(tid)
        elif isinstance(t, Var):
            ptr = btf.type(btf.resolve(t.type))
            if isinstance(ptr, Ptr):
                target = btf.resolve(ptr.type)
                if isinstance(btf.type(target), Struct):
                    hinted.append(target)
    return hinted, named


def _flexible_member(types: TypeQueries, struct: Struct) -> Optional[tuple[str, int]]:
    """(name, element type) of the flexible array member a struct ends with (``char args[]``),
    or None."""
    if not struct.members:
        return None
    last = struct.members[-1]
    t = types.type(types.resolve(last.type_id))
    return (last.name, t.type) if isinstance(t, Array) and t.nelems == 0 else None


def _members_past(
    types: TypeQueries, struct: Struct, size: int
) -> tuple[list[str], Optional[tuple[str, int, int]]]:
    """The members of a struct that ``size`` bytes do not hold whole, but for the array they
    end inside, given apart as (name, element type, offset)."""
    past: list[str] = []
    cut = None
    for m in struct.members:
        start = m.bit_offset // 8
        if m.bitfield_size:
            end = (m.bit_offset + m.bitfield_size + 7) // 8
        else:
            end = start + types.sizeof(m.type_id)
        t = types.type(types.resolve(m.type_id))
        if end <= size:
            continue
        if start < size and isinstance(t, Array) and not m.bitfield_size:
            cut = (m.name, t.type, start)
        else:
            past.append(m.name)
    return past, cut


def _elements_of(read: ValueReader, types: TypeQueries, elem_id: int, data: bytes) -> Any:
    """``data`` read as the elements of an array that ends with the record: as many as it
    holds whole, and for a char array a string when it holds printable characters up to a NUL
    or its end (bpftool's rule for char arrays, the record's end standing for the array's)."""
    t = types.type(elem_id)
    while isinstance(t, MODIFIERS) and not isinstance(t, Typedef):  # as bpftool
        t = types.type(t.type)
    if isinstance(t, Int) and t.size == 1 and (t.name == "char" or t.encoding & IntEncoding.CHAR):
        text = data.split(b"\0", 1)[0]
        if all(0x1F < c < 0x7F for c in text):
            return text.decode("ascii")
    size = types.sizeof(elem_id)
    return [read(elem_id, data[i : i + size]) for i in range(0, len(data) - size + 1, size)]


def _kernel_btf() -> Optional[TypeQueries]:
    from pybpf.btf.kernel import KernelBTF

    try:
        return KernelBTF.system()
    except (OSError, BPFError):
        return None
