"""CO-RE: relocating field offsets, sizes, type and enum facts against the running kernel's BTF.

A program compiled against one kernel's headers reads ``task->pid`` at the offset *that* kernel
had. clang records, per such instruction, a ``bpf_core_relo`` (in ``.BTF.ext``): the local root
type, an *access string* (``"0:12"``: pointer index 0, then member 12) and what is wanted (the
byte offset, the size, whether it exists, an enum value...). Before loading we:

1. turn the access string into a *spec*: the chain of named members and array indexes, and the
   bit offset it reaches in the local type;
2. collect *candidates* in the target BTF: types of a compatible kind whose *essential* name
   matches (``task_struct___old`` is matched as ``task_struct``: flavors let one program carry
   several historical layouts);
3. match the spec against each candidate by member *names* (descending into anonymous
   structs/unions), checking the field types stay compatible;
4. compute the value for the local and the target spec; all matching candidates must agree,
   or the relocation is ambiguous;
5. patch the instruction: an ALU immediate, a load/store offset (and its size if the field was
   resized), or an ld_imm64 constant. When nothing matches, the instruction is *poisoned*: it
   becomes a call to helper 0xbad2310, harmless in dead code, and the verifier names it if
   reached ("invalid func unknown#195896080"). Each poisoning is kept as an ``Unresolved``, so
   that the loader can say which relocation a rejected program needed, and why it failed.

The rules are libbpf's (``relo_core.c``), so that an object behaves the same under both loaders.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from pybpf.asm.insn import Class, Instruction, Size, Source
from pybpf.btf.compat import _kinds_compat, fields_are_compat, types_are_compat, types_match
from pybpf.btf.core_poison import (  # noqa: F401  (POISON_HELPER_ID, poisoned: part of this stage)
    POISON_HELPER_ID,
    Unresolved,
    poison,
    poisoned,
)
from pybpf.btf.ext import CoreRelo, CoreReloKind
from pybpf.btf.model import (
    Array,
    Enum,
    Enum64,
    Int,
    IntEncoding,
    Ptr,
    Struct,
    TypeQueries,
    essential_name,
)
from pybpf.errors import BTFError, CORERelocationError
from pybpf.record import field, record, replace

MAX_SPEC_LEN = 64
M64 = (1 << 64) - 1
Log = Optional[Callable[[str], None]]

# enum bpf_core_relo_kind in three families: 0-5 are about a field, 10-11 an enum value,
# the rest a whole type.
FIELD_KINDS = frozenset(k for k in CoreReloKind if k <= CoreReloKind.FIELD_RSHIFT_U64)
ENUMVAL_KINDS = frozenset({CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE})
TYPE_KINDS = frozenset(CoreReloKind) - FIELD_KINDS - ENUMVAL_KINDS


class _Mismatch(Exception):
    """A spec does not fit: the candidate is skipped (not an error)."""


class _Poison(Exception):
    """No value can be computed for the target: poison the instruction."""


@record
class Accessor:
    """One meaningful step of a spec: a named member (``name``) or an array index."""

    type_id: int  # the struct/union the member is in, or the array's element type
    idx: int
    name: Optional[str] = None


@record(frozen=False)
class Spec:
    """An access string resolved in one BTF: high-level steps, raw indexes, bit offset."""

    btf: TypeQueries
    root_type_id: int
    kind: CoreReloKind
    accessors: list[Accessor] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    bit_offset: int = 0

    def describe(self) -> str:
        """``[114] struct task_struct.pid (0:56 @ offset 2512)``, like libbpf's debug log."""
        btf, root = self.btf, self.root_type_id
        head = f"[{root}] {btf.format(root)}"
        if self.kind in TYPE_KINDS:
            return head
        if self.kind in ENUMVAL_KINDS:
            acc = self.accessors[0]
            value = btf.type(acc.type_id).values[acc.idx].value
            return f"{head}::{acc.name} = {value}"
        path = ""
        for acc in self.accessors[1:]:
            path += f".{acc.name}" if acc.name else f"[{acc.idx}]"
        if self.accessors and self.accessors[0].idx:
            path = f"[{self.accessors[0].idx}]" + path
        where = f"{self.bit_offset // 8}" + (
            f".{self.bit_offset % 8}" if self.bit_offset % 8 else ""
        )
        return f"{head}{path} ({':'.join(map(str, self.raw))} @ offset {where})"


@record(frozen=False)
class Resolution:
    """What one relocation computes: the value the compiler wrote and the one to write."""

    orig: int = 0
    new: int = 0
    poison: bool = False
    validate: bool = True
    orig_sz: int = 0
    new_sz: int = 0
    orig_type_id: int = 0
    new_type_id: int = 0
    fail_memsz_adjust: bool = False
    why: str = ""  # when there is no value: what the target lacks
    local: str = ""  # the local spec, described (for the error naming a poisoned relocation)


# --- 1. parsing the local access string ---------------------------------------------------


def parse_spec(btf: TypeQueries, relo: CoreRelo) -> Spec:
    spec = Spec(btf, relo.type_id, relo.kind)
    text = relo.access_str
    if relo.kind in TYPE_KINDS:
        if text != "0":
            raise _bad(relo, f"type relocation with access string '{text}' (expected '0')")
        return spec
    try:
        spec.raw = [int(part) for part in text.split(":")]
    except ValueError:
        raise _bad(relo, f"malformed access string '{text}'") from None
    if not spec.raw or any(i < 0 for i in spec.raw) or len(spec.raw) > MAX_SPEC_LEN:
        raise _bad(relo, f"malformed access string '{text}'")
    type_id = btf.resolve(relo.type_id)
    t = btf.type(type_id)
    first = spec.raw[0]
    if relo.kind in ENUMVAL_KINDS:
        if not isinstance(t, Enum) or len(spec.raw) > 1 or first >= len(t.values):
            raise _bad(relo, f"enum value access '{text}' does not name a value of an enum")
        spec.accessors.append(Accessor(type_id, first, t.values[first].name))
        return spec
    spec.accessors.append(Accessor(type_id, first))
    spec.bit_offset = first * btf.sizeof(type_id) * 8
    for i in spec.raw[1:]:
        type_id = btf.resolve(type_id)
        t = btf.type(type_id)
        if isinstance(t, Struct):
            if i >= len(t.members):
                raise _bad(relo, f"member #{i} of {btf.format(type_id)} does not exist")
            m = t.members[i]
            spec.bit_offset += m.bit_offset
            if m.name:
                spec.accessors.append(Accessor(type_id, i, m.name))
            type_id = m.type_id
        elif isinstance(t, Array):
            type_id = btf.resolve(t.type)
            if not _is_flex_array(btf, spec.accessors[-1], t) and i >= t.nelems:
                raise _bad(relo, f"index {i} is past the end of {btf.format(type_id)}[{t.nelems}]")
            spec.accessors.append(Accessor(type_id, i))
            spec.bit_offset += i * btf.sizeof(type_id) * 8
        else:
            raise _bad(relo, f"access '{text}' steps into {btf.format(type_id)}")
    return spec


def _is_flex_array(btf: TypeQueries, acc: Accessor, arr: Array) -> bool:
    """``char data[]`` as the last member of a struct: any index is allowed."""
    if acc.name is None or arr.nelems > 0:
        return False
    return acc.idx == len(btf.type(acc.type_id).members) - 1


def _bad(relo: CoreRelo, why: str) -> CORERelocationError:
    return CORERelocationError(
        f"CO-RE relocation at insn {relo.insn_idx} ({relo.kind.name}, type [{relo.type_id}]): {why}"
    )


# --- 2./3. candidates and matching ----------------------------------------------------------


def candidates(local: TypeQueries, local_id: int, target: TypeQueries) -> list[int]:
    """Target types of a compatible kind whose essential name is the local type's."""
    t = local.type(local_id)
    ids = target.find_essential(t.name)
    return [i for i in ids if _kinds_compat(target.type(i), t)]


def _match_member(local_spec: Spec, acc: Accessor, target, targ_id: int, spec: Spec) -> int:
    """Find local member ``acc`` by name in target ``targ_id`` (through anonymous members),
    extending ``spec``; returns the member's type id, or raises _Mismatch."""
    targ_id = target.resolve(targ_id)
    tt = target.type(targ_id)
    if not isinstance(tt, Struct):
        raise _Mismatch
    local = local_spec.btf
    local_member = local.type(acc.type_id).members[acc.idx]
    name = local_member.name
    if tt.members and len(spec.raw) >= MAX_SPEC_LEN:
        raise CORERelocationError("CO-RE spec is nested too deeply")
    # Only anonymous members and the one of the same name matter: a kernel struct has hundreds.
    for i, m in enumerate(tt.members):
        if m.name and m.name != name:
            continue
        spec.bit_offset += m.bit_offset
        spec.raw.append(i)
        if not m.name:
            try:
                return _match_member(local_spec, acc, target, m.type_id, spec)
            except _Mismatch:
                pass
        else:
            if not fields_are_compat(local, local_member.type_id, target, m.type_id):
                raise _Mismatch
            spec.accessors.append(Accessor(targ_id, i, m.name))
            return m.type_id
        spec.bit_offset -= m.bit_offset
        spec.raw.pop()
    raise _Mismatch


def match_spec(local_spec: Spec, target, targ_id: int) -> Optional[Spec]:
    """The target's spec for ``local_spec`` rooted at candidate ``targ_id``, or None."""
    spec = Spec(target, targ_id, local_spec.kind)
    kind = local_spec.kind
    try:
        if kind in TYPE_KINDS:
            if kind == CoreReloKind.TYPE_MATCHES:
                ok = types_match(local_spec.btf, local_spec.root_type_id, target, targ_id)
            else:
                ok = types_are_compat(local_spec.btf, local_spec.root_type_id, target, targ_id)
            return spec if ok else None
        if kind in ENUMVAL_KINDS:
            return _match_enumval(local_spec, target, targ_id, spec)
        for n, acc in enumerate(local_spec.accessors):
            targ_id = target.resolve(targ_id)
            if acc.name is not None:
                targ_id = _match_member(local_spec, acc, target, targ_id, spec)
                continue
            if n > 0:
                arr = target.type(targ_id)
                if not isinstance(arr, Array):
                    return None
                if not _is_flex_array(target, spec.accessors[-1], arr) and acc.idx >= arr.nelems:
                    return None
                targ_id = target.resolve(arr.type)
            spec.accessors.append(Accessor(targ_id, acc.idx))
            spec.raw.append(acc.idx)
            spec.bit_offset += acc.idx * target.sizeof(targ_id) * 8
        return spec
    except _Mismatch:
        return None


def _match_enumval(local_spec: Spec, target, targ_id: int, spec: Spec) -> Optional[Spec]:
    targ_id = target.resolve(targ_id)
    tt = target.type(targ_id)
    if not isinstance(tt, Enum):
        return None
    want = essential_name(local_spec.accessors[0].name or "")
    for i, v in enumerate(tt.values):
        if essential_name(v.name) == want:
            spec.accessors.append(Accessor(targ_id, i, v.name))
            spec.raw.append(i)
            return spec
    return None


# --- 4. values --------------------------------------------------------------------------------


def _element_size(btf, type_id: int) -> tuple[int, int]:
    """(size, type id) of the innermost element: loads of arrays load one element."""
    type_id = btf.resolve(type_id)
    t = btf.type(type_id)
    while isinstance(t, Array):
        type_id = btf.resolve(t.type)
        t = btf.type(type_id)
    return btf.sizeof(type_id), type_id


def field_value(kind: CoreReloKind, spec: Optional[Spec]) -> tuple[int, int, int, bool]:
    """(value, memory size, field type id, validate?) of a field relocation for one spec."""
    if kind == CoreReloKind.FIELD_EXISTS:
        return (1 if spec else 0), 0, 0, True
    if spec is None:
        raise _Poison
    btf, acc = spec.btf, spec.accessors[-1]
    if acc.name is None:  # the spec ends in an array element
        if kind == CoreReloKind.FIELD_BYTE_OFFSET:
            size, _ = _element_size(btf, acc.type_id)
            return spec.bit_offset // 8, size, acc.type_id, True
        if kind == CoreReloKind.FIELD_BYTE_SIZE:
            return btf.sizeof(acc.type_id), 0, 0, True
        raise CORERelocationError(f"{kind.name} cannot be applied to an array element")
    member = btf.type(acc.type_id).members[acc.idx]
    field_id = btf.resolve(member.type_id)
    mt = btf.type(field_id)
    bit_off, bit_sz = spec.bit_offset, member.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = mt.size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        # the smallest load that covers the whole bitfield
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise CORERelocationError("bitfield cannot be read with a 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = btf.sizeof(field_id)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    # for bitfields the compiler may have chosen differently: check only what is unambiguous
    validate = not bitfield
    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        if bitfield:
            return byte_off, 0, 0, validate
        size, _ = _element_size(btf, field_id)
        return byte_off, size, field_id, validate
    if kind == CoreReloKind.FIELD_BYTE_SIZE:
        return byte_sz, 0, 0, validate
    if kind == CoreReloKind.FIELD_SIGNED:
        signed = (isinstance(mt, Enum) and mt.signed) or (
            isinstance(mt, Int) and bool(mt.encoding & IntEncoding.SIGNED)
        )
        return int(signed), 0, 0, True
    if kind == CoreReloKind.FIELD_LSHIFT_U64:
        # the program runs in the host's byte order: the bitfield's place in the loaded word
        if sys.byteorder == "little":
            return 64 - (bit_off + bit_sz - byte_off * 8), 0, 0, validate
        return (8 - byte_sz) * 8 + (bit_off - byte_off * 8), 0, 0, validate
    if kind == CoreReloKind.FIELD_RSHIFT_U64:
        return 64 - bit_sz, 0, 0, True
    raise CORERelocationError(f"unknown field relocation {kind!r}")


def type_value(kind: CoreReloKind, spec: Optional[Spec]) -> int:
    if spec is None:
        return 0  # the type does not exist: exists/matches/size/id are all 0
    if kind == CoreReloKind.TYPE_ID_TARGET:
        return spec.root_type_id
    if kind in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES):
        return 1
    if kind == CoreReloKind.TYPE_SIZE:
        return spec.btf.sizeof(spec.root_type_id)
    raise CORERelocationError(f"unexpected type relocation {kind.name}")


def enumval_value(kind: CoreReloKind, spec: Optional[Spec]) -> int:
    if kind == CoreReloKind.ENUMVAL_EXISTS:
        return 1 if spec else 0
    if spec is None:
        raise _Poison
    acc = spec.accessors[0]
    enum = spec.btf.type(acc.type_id)
    value = enum.values[acc.idx].value
    if not isinstance(enum, Enum64) and value >= 1 << 31:
        value -= 1 << 32  # btf_enum.val is an s32: libbpf sign-extends it
    return value & M64


def calc(relo: CoreRelo, local_spec: Spec, targ_spec: Optional[Spec]) -> Resolution:
    """Local (what the compiler wrote) and target values of one relocation for one candidate."""
    kind = relo.kind
    res = Resolution()
    try:
        if kind in FIELD_KINDS:
            res.orig, res.orig_sz, res.orig_type_id, res.validate = field_value(kind, local_spec)
            res.new, res.new_sz, res.new_type_id, _ = field_value(kind, targ_spec)
            if res.orig_sz != res.new_sz:
                res.fail_memsz_adjust = not _resize_is_safe(local_spec, targ_spec, res)
                if res.fail_memsz_adjust:
                    res.why = (
                        f"the kernel's field is {res.new_sz} bytes, not {res.orig_sz}, and not "
                        "an unsigned integer or a pointer: the access cannot be resized"
                    )
        elif kind in TYPE_KINDS:
            res.orig = type_value(kind, local_spec)
            res.new = type_value(kind, targ_spec)
            res.validate = kind != CoreReloKind.TYPE_ID_TARGET  # ids change when linking
        else:
            res.orig = enumval_value(kind, local_spec)
            res.new = enumval_value(kind, targ_spec)
    except _Poison:
        res.poison = True
    return res


def _resize_is_safe(local_spec: Spec, targ_spec: Optional[Spec], res: Resolution) -> bool:
    """A resized field can be loaded with the new size only if zero-extension keeps its value:
    pointers, and unsigned integers."""
    if targ_spec is None:
        return False
    lt = local_spec.btf.type(res.orig_type_id)
    tt = targ_spec.btf.type(res.new_type_id)
    if isinstance(lt, Ptr) and isinstance(tt, Ptr):
        return True
    return (
        isinstance(lt, Int)
        and isinstance(tt, Int)
        and lt.encoding != IntEncoding.SIGNED
        and tt.encoding != IntEncoding.SIGNED
    )


def resolve(
    relo: CoreRelo,
    local: TypeQueries,
    target: TypeQueries,
    log: Log = None,
    modules: Sequence[TypeQueries] = (),
) -> Resolution:
    """The relocation's resolution against ``target``, with libbpf's ambiguity checks; like
    libbpf, ``modules`` (split BTF of kernel modules) are searched only when ``target`` (vmlinux)
    has no candidate at all."""
    local_spec = parse_spec(local, relo)
    described = local_spec.describe()
    say = log or (lambda _msg: None)
    say(f"core: insn {relo.insn_idx}: {relo.kind.name} {described}")
    if relo.kind == CoreReloKind.TYPE_ID_LOCAL:
        return Resolution(relo.type_id, relo.type_id, validate=False)
    if not local.type(relo.type_id).name:
        raise _bad(relo, "relocations against anonymous types are not supported")
    chosen: Optional[Resolution] = None
    chosen_spec: Optional[Spec] = None
    cands = [(target, i) for i in candidates(local, relo.type_id, target)]
    for module in modules if not cands else ():
        cands += [(module, i) for i in candidates(local, relo.type_id, module)]
    for n, (btf, cand) in enumerate(cands):
        spec = match_spec(local_spec, btf, cand)
        if spec is None:
            say(f"core:   candidate #{n} [{cand}] {btf.format(cand)} does not match")
            continue
        say(f"core:   candidate #{n} matches: {spec.describe()}")
        res = calc(relo, local_spec, spec)
        if chosen is None:
            chosen, chosen_spec = res, spec
        elif chosen_spec is not None and spec.bit_offset != chosen_spec.bit_offset:
            raise _bad(
                relo,
                f"field offset ambiguity: candidates put it at bit {chosen_spec.bit_offset} "
                f"and bit {spec.bit_offset}",
            )
        elif (res.poison, res.new) != (chosen.poison, chosen.new):
            raise _bad(
                relo, f"relocation decision ambiguity: candidates give {chosen.new} and {res.new}"
            )
    if chosen is None:
        say(f"core:   none of {len(cands)} candidates matches")
        chosen = calc(relo, local_spec, None)
        if chosen.poison:
            chosen.why = _unmatched(local_spec, len(cands))
    chosen.local = described
    return chosen


def _unmatched(local_spec: Spec, n: int) -> str:
    """Why no target value exists, for the error of a program that reaches the poison."""
    local = local_spec.btf
    root = local.resolve(local_spec.root_type_id)
    words = local.format(root).split()
    keyword = words[0] + " " if len(words) > 1 else ""  # struct, union, enum
    target = f"{keyword}{essential_name(local.type(root).name)}"
    if n == 0:
        return f"the kernel's BTF has no {target}"
    if local_spec.kind in ENUMVAL_KINDS:
        item = f"value {essential_name(local_spec.accessors[0].name or '')}"
    else:
        path = ""
        for acc in local_spec.accessors[1:]:
            path += f".{acc.name}" if acc.name else f"[{acc.idx}]"
        item = f"field {path.lstrip('.')} of a compatible type"
    if n == 1:
        return f"the kernel's {target} has no {item}"
    return f"none of the kernel's {n} types {target} has a {item}"


# --- 5. patching ---------------------------------------------------------------------------


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


_SIZE_BYTES = {Size.DW: 8, Size.W: 4, Size.H: 2, Size.B: 1}
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}


def patch(insns: list[Instruction], idx: int, res: Resolution, relo: CoreRelo) -> str:
    """Apply ``res`` to ``insns[idx]`` in place; returns what was done, for the log."""
    if not 0 <= idx < len(insns):
        raise _bad(relo, f"instruction {idx} is outside the section ({len(insns)} instructions)")
    insn = insns[idx]
    cls = insn.code & 0x07
    if res.poison:
        return poison(insns, idx)
    if cls in (Class.ALU, Class.ALU64):
        if insn.code & Source.X:
            raise _bad(relo, f"insn {idx} is a register ALU operation; there is no immediate")
        _check(relo, res, insn.imm, "ALU imm")
        insns[idx] = replace(insn, imm=_s32(res.new))
        return f"patched insn {idx} (ALU) imm {insn.imm} -> {_s32(res.new)}"
    if cls in (Class.LDX, Class.ST, Class.STX):
        _check(relo, res, insn.off, "load/store offset")
        if res.new > 0x7FFF:
            raise _bad(relo, f"offset {res.new} does not fit a load/store at insn {idx}")
        if res.fail_memsz_adjust:
            return poison(insns, idx) + " (field changed size and type: cannot resize the access)"
        code = insn.code
        if res.new_sz != res.orig_sz:
            size = code & 0x18
            if _SIZE_BYTES[Size(size)] != res.orig_sz:
                raise _bad(
                    relo, f"insn {idx} accesses {_SIZE_BYTES[Size(size)]} bytes, not {res.orig_sz}"
                )
            if res.new_sz not in _BYTES_SIZE:
                raise _bad(relo, f"field has size {res.new_sz}, which no load/store can access")
            code = (code & ~0x18) | _BYTES_SIZE[res.new_sz]
        insns[idx] = replace(insn, off=res.new, code=code)
        return f"patched insn {idx} (LDX/ST/STX) off {insn.off} -> {res.new}" + (
            f", size {res.orig_sz} -> {res.new_sz}" if code != insn.code else ""
        )
    if insn.is_ld_imm64:
        nxt = insns[idx + 1] if idx + 1 < len(insns) else None
        if insn.src or insn.off or nxt is None or nxt.code or nxt.dst or nxt.src or nxt.off:
            raise _bad(relo, f"insn {idx} is an ld_imm64 of an unexpected form")
        value = (insn.imm & 0xFFFFFFFF) | (nxt.imm & 0xFFFFFFFF) << 32
        if res.validate and value != res.orig & M64:
            raise _bad(relo, f"insn {idx} loads {value}, expected {res.orig}")
        insns[idx] = replace(insn, imm=_s32(res.new))
        insns[idx + 1] = replace(nxt, imm=_s32(res.new >> 32))
        return f"patched insn {idx} (LDIMM64) imm64 {value} -> {res.new}"
    raise _bad(relo, f"insn {idx} (code {insn.code:#04x}) is not an instruction CO-RE can patch")


def _check(relo: CoreRelo, res: Resolution, got: int, what: str) -> None:
    if res.validate and got & M64 != res.orig & M64:
        raise _bad(
            relo,
            f"insn {relo.insn_idx} has {what} {got}, but the local type says {res.orig} "
            "(the object's BTF does not describe its code)",
        )


def relocate(
    insns: list[Instruction],
    relos: Sequence[CoreRelo],
    local: TypeQueries,
    target: TypeQueries,
    log: Log = None,
    modules: Sequence[TypeQueries] = (),
) -> list[Instruction]:
    """The section's instructions with every CO-RE relocation in ``relos`` applied."""
    return relocate_section(insns, relos, local, target, log, modules)[0]


def relocate_section(
    insns: list[Instruction],
    relos: Sequence[CoreRelo],
    local: TypeQueries,
    target: TypeQueries,
    log: Log = None,
    modules: Sequence[TypeQueries] = (),
) -> tuple[list[Instruction], dict[int, Unresolved]]:
    """``relocate``, and the relocations it poisoned by instruction (both halves of an
    ld_imm64). A relocation that cannot be resolved fails only the program that reaches it,
    as with libbpf; one that is malformed or ambiguous fails the load here."""
    out = list(insns)
    unresolved: dict[int, Unresolved] = {}
    for relo in relos:
        try:
            res = resolve(relo, local, target, log, modules)
        except CORERelocationError:
            raise
        except BTFError as e:  # a damaged type graph: say which relocation met it
            raise _bad(relo, str(e)) from None
        done = patch(out, relo.insn_idx, res, relo)
        if log:
            log(f"core:   {done}")
        if out[relo.insn_idx] == poisoned():
            why = Unresolved(relo.insn_idx, relo.kind, res.local, res.why)
            unresolved[relo.insn_idx] = why
            if insns[relo.insn_idx].is_ld_imm64:
                unresolved[relo.insn_idx + 1] = why
    return out, unresolved
